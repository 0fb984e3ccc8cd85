/* gst-vim GStreamer tests: vimoverlay with GstHarness.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The tests attach the metas themselves (known masks on known pixels) and
 * check the overlay's output pixel by pixel: against the engine's
 * vim_blend_mask on the same input (byte for byte), against the blending
 * formula, and against the input where nothing may change. The text
 * checks run twice (meson's vimoverlay and vimoverlay-nofonts): with the
 * host's fonts the text must be drawn, and with a fontconfig setup without
 * any font it must be left out and nothing else change.
 */
#include <math.h>
#include <string.h>
#include <fontconfig/fontconfig.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

#include "vimtestutil.h"

/* frame, and the rectangle the 16x12 mask covers: 3x3 frame pixels per mask
 * pixel, even offsets so that 2x2 chroma blocks don't straddle its edge */
#define W 64
#define H 48
#define MASK_W 16
#define MASK_H 12
#define RECT_X 8
#define RECT_Y 6
#define RECT_W 48
#define RECT_H 36
#define N_CLASSES 4

static const gchar *labels[N_CLASSES] = { "void", "road", "car", "sky" };

static const GstVideoFormat formats[] = {
  GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_RGBx,
  GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_BGRx,
  GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_I420,
};

/* ---- helpers --------------------------------------------------------------- */

/* Whether fontconfig knows any font: decides what the text checks expect. */
static gboolean
have_fonts (void)
{
  FcPattern *pattern = FcPatternCreate ();
  FcObjectSet *objects = FcObjectSetBuild (FC_FAMILY, NULL);
  FcFontSet *fonts = FcFontList (NULL, pattern, objects);
  gboolean found = fonts && fonts->nfont > 0;

  if (fonts)
    FcFontSetDestroy (fonts);
  FcObjectSetDestroy (objects);
  FcPatternDestroy (pattern);
  return found;
}

static guint8
mask_class (gint mx, gint my)
{
  return (guint8) ((mx / 4 + my / 3) % N_CLASSES);
}

static GstBuffer *
make_mask (void)
{
  GstBuffer *mask = gst_vim_segmentation_mask_new (MASK_W, MASK_H);
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (mask);
  GstMapInfo map;
  gint x, y;

  fail_unless (vmeta != NULL);
  fail_unless (gst_buffer_map (mask, &map, GST_MAP_WRITE));
  for (y = 0; y < MASK_H; y++)
    for (x = 0; x < MASK_W; x++)
      map.data[vmeta->offset[0] + y * vmeta->stride[0] + x] = mask_class (x, y);
  gst_buffer_unmap (mask, &map);
  return mask;
}

/* class under frame pixel (x, y), -1 outside the mask's rectangle */
static gint
class_at (gint x, gint y)
{
  if (x < RECT_X || x >= RECT_X + RECT_W || y < RECT_Y || y >= RECT_Y + RECT_H)
    return -1;
  return mask_class ((x - RECT_X) / 3, (y - RECT_Y) / 3);
}

static GstBuffer *
frame_with_mask (GstVideoFormat format, guint seed)
{
  GstBuffer *buf = vim_test_make_frame (format, W, H, seed);
  GstBuffer *mask = make_mask ();

  fail_unless (gst_buffer_add_vim_segmentation_meta (buf, mask, NULL, RECT_X,
          RECT_Y, RECT_W, RECT_H, "test", N_CLASSES, labels, NULL) != NULL);
  gst_buffer_unref (mask);
  return buf;
}

static GstHarness *
overlay_harness (const gchar * props, GstVideoFormat format, gint width,
    gint height)
{
  GstHarness *h;
  gchar *launch = g_strdup_printf ("vimoverlay %s", props ? props : "");
  gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1", gst_video_format_to_string (format), width, height);

  h = gst_harness_new_parse (launch);
  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  g_free (launch);
  return h;
}

/* Pushes @in (keeping a reference) and returns the output buffer. */
static GstBuffer *
overlay_one (GstHarness * h, GstBuffer * in)
{
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_ref (in)),
      GST_FLOW_OK);
  return gst_harness_pull (h);
}

static gboolean
is_rgb (GstVideoFormat format)
{
  return format != GST_VIDEO_FORMAT_NV12 && format != GST_VIDEO_FORMAT_I420;
}

/* byte offsets of R, G, B in a pixel, and the pixel size */
static void
rgb_layout (GstVideoFormat format, gint * r, gint * g, gint * b, gint * bpp)
{
  gboolean bgr = format == GST_VIDEO_FORMAT_BGR ||
      format == GST_VIDEO_FORMAT_BGRA || format == GST_VIDEO_FORMAT_BGRx;

  *bpp = (format == GST_VIDEO_FORMAT_RGB || format == GST_VIDEO_FORMAT_BGR) ?
      3 : 4;
  *r = bgr ? 2 : 0;
  *g = 1;
  *b = bgr ? 0 : 2;
}

static void
assert_frames_equal (GstVideoFormat format, gint width, gint height,
    GstBuffer * a, GstBuffer * b, const gchar * what)
{
  GstVideoInfo info;
  GstVideoFrame fa, fb;
  guint p, y;

  gst_video_info_set_format (&info, format, width, height);
  fail_unless (gst_video_frame_map (&fa, &info, a, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&fb, &info, b, GST_MAP_READ));
  for (p = 0; p < GST_VIDEO_FRAME_N_PLANES (&fa); p++) {
    gint row_bytes = GST_VIDEO_FRAME_COMP_WIDTH (&fa, p == 0 ? 0 : 1) *
        GST_VIDEO_FRAME_COMP_PSTRIDE (&fa, p == 0 ? 0 : 1);

    if (format == GST_VIDEO_FORMAT_I420)
      row_bytes = GST_VIDEO_FRAME_COMP_WIDTH (&fa, p);
    for (y = 0; y < (guint) GST_VIDEO_FRAME_COMP_HEIGHT (&fa, p); y++) {
      const guint8 *ra = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fa, p) +
          y * GST_VIDEO_FRAME_PLANE_STRIDE (&fa, p);
      const guint8 *rb = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fb, p) +
          y * GST_VIDEO_FRAME_PLANE_STRIDE (&fb, p);

      fail_unless (memcmp (ra, rb, row_bytes) == 0,
          "%s, %s: plane %u row %u differs", what,
          gst_video_format_to_string (format), p, y);
    }
  }
  gst_video_frame_unmap (&fb);
  gst_video_frame_unmap (&fa);
}

/* What the engine makes of @in with these options (a copy of @in). */
static GstBuffer *
engine_blend (GstVideoFormat format, GstBuffer * in, float alpha,
    const guint8 * visible, gboolean contours)
{
  GstBuffer *out = gst_buffer_copy_deep (in);
  GstBuffer *mask = make_mask ();
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (mask);
  GstVideoInfo info;
  GstVideoFrame vf;
  GstMapInfo map;
  VimFrame frame;
  VimMaskGeometry geo = { MASK_W, MASK_H, RECT_X, RECT_Y, RECT_W, RECT_H };
  VimBlendOptions opt = { 0 };
  GError *err = NULL;
  guint i;

  gst_video_info_set_format (&info, format, W, H);
  fail_unless (gst_video_frame_map (&vf, &info, out, GST_MAP_READWRITE));
  memset (&frame, 0, sizeof (frame));
  frame.width = W;
  frame.height = H;
  frame.memory = VIM_MEMORY_HOST;
  switch (format) {
    case GST_VIDEO_FORMAT_RGB: frame.format = VIM_PIXEL_RGB; break;
    case GST_VIDEO_FORMAT_RGBA: frame.format = VIM_PIXEL_RGBA; break;
    case GST_VIDEO_FORMAT_RGBx: frame.format = VIM_PIXEL_RGBX; break;
    case GST_VIDEO_FORMAT_BGR: frame.format = VIM_PIXEL_BGR; break;
    case GST_VIDEO_FORMAT_BGRA: frame.format = VIM_PIXEL_BGRA; break;
    case GST_VIDEO_FORMAT_BGRx: frame.format = VIM_PIXEL_BGRX; break;
    case GST_VIDEO_FORMAT_NV12: frame.format = VIM_PIXEL_NV12; break;
    default: frame.format = VIM_PIXEL_I420; break;
  }
  for (i = 0; i < GST_VIDEO_FRAME_N_PLANES (&vf); i++) {
    frame.planes[i] = GST_VIDEO_FRAME_PLANE_DATA (&vf, i);
    frame.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&vf, i);
  }
  opt.alpha = alpha;
  opt.palette = vim_default_palette ();
  opt.n_palette = 256;
  opt.class_visible = visible;
  opt.n_classes = visible ? 256 : 0;
  opt.contours = contours;
  fail_unless (gst_buffer_map (mask, &map, GST_MAP_READ));
  fail_unless (vim_blend_mask (&frame, map.data + vmeta->offset[0],
          vmeta->stride[0], VIM_MEMORY_HOST, &geo, &opt, NULL, &err),
      "vim_blend_mask: %s", err ? err->message : "?");
  gst_buffer_unmap (mask, &map);
  gst_buffer_unref (mask);
  gst_video_frame_unmap (&vf);
  return out;
}

/* Checks every pixel of an RGB-like output: unchanged where @visible says
 * no class is drawn, (1 - alpha) * in + alpha * colour (+-1) elsewhere.
 * Returns how many pixels changed. */
static guint
check_rgb_formula (GstVideoFormat format, GstBuffer * in, GstBuffer * out,
    gdouble alpha, const guint8 * palette, guint n_palette,
    const guint8 * visible)
{
  GstVideoInfo info;
  GstVideoFrame fi, fo;
  gint x, y, c, r_off, g_off, b_off, bpp;
  guint changed = 0;

  rgb_layout (format, &r_off, &g_off, &b_off, &bpp);
  gst_video_info_set_format (&info, format, W, H);
  fail_unless (gst_video_frame_map (&fi, &info, in, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&fo, &info, out, GST_MAP_READ));
  for (y = 0; y < H; y++) {
    const guint8 *pi = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fi, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fi, 0);
    const guint8 *po = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fo, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fo, 0);

    for (x = 0; x < W; x++) {
      gint cls = class_at (x, y);
      const gint offs[3] = { r_off, g_off, b_off };

      if (cls < 0 || (visible && !visible[cls])) {
        fail_unless (memcmp (pi + bpp * x, po + bpp * x, MIN (bpp, 3)) == 0,
            "%s: pixel %d,%d (class %d) changed",
            gst_video_format_to_string (format), x, y, cls);
        continue;
      }
      for (c = 0; c < 3; c++) {
        gdouble want = (1.0 - alpha) * pi[bpp * x + offs[c]] +
            alpha * palette[3 * (cls % n_palette) + c];

        fail_unless (fabs (po[bpp * x + offs[c]] - want) <= 1.0,
            "%s: pixel %d,%d class %d channel %d: %u, want %.2f",
            gst_video_format_to_string (format), x, y, cls, c,
            po[bpp * x + offs[c]], want);
      }
      if (memcmp (pi + bpp * x, po + bpp * x, 3) != 0)
        changed++;
    }
  }
  gst_video_frame_unmap (&fo);
  gst_video_frame_unmap (&fi);
  return changed;
}

/* For YUV output: the luma of every pixel outside the drawn classes is
 * unchanged, inside it moves towards the class colour's BT.601 luma. */
static void
check_yuv_luma (GstVideoFormat format, GstBuffer * in, GstBuffer * out,
    gdouble alpha, const guint8 * palette)
{
  GstVideoInfo info;
  GstVideoFrame fi, fo;
  gint x, y;

  gst_video_info_set_format (&info, format, W, H);
  fail_unless (gst_video_frame_map (&fi, &info, in, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&fo, &info, out, GST_MAP_READ));
  for (y = 0; y < H; y++) {
    const guint8 *yi = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fi, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fi, 0);
    const guint8 *yo = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fo, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&fo, 0);

    for (x = 0; x < W; x++) {
      gint cls = class_at (x, y);
      const guint8 *rgb;
      gdouble luma, want;

      if (cls < 0) {
        fail_unless_equals_int (yi[x], yo[x]);
        continue;
      }
      rgb = palette + 3 * cls;
      luma = 16.0 + (65.481 * rgb[0] + 128.553 * rgb[1] + 24.966 * rgb[2]) /
          255.0;
      want = (1.0 - alpha) * yi[x] + alpha * luma;
      fail_unless (fabs (yo[x] - want) <= 2.0,
          "%s: luma %d,%d class %d: %u, want %.2f",
          gst_video_format_to_string (format), x, y, cls, yo[x], want);
    }
  }
  gst_video_frame_unmap (&fo);
  gst_video_frame_unmap (&fi);
}

/* ---- tests ----------------------------------------------------------------- */

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("vimoverlay", NULL);
  gdouble alpha;
  gchar *palette, *classes, *font;
  gboolean contours, show_mask, show_labels, show_legend;
  gint pos;

  fail_unless (e != NULL);
  g_object_get (e, "alpha", &alpha, "palette", &palette, "classes", &classes,
      "contours", &contours, "show-mask", &show_mask, "show-labels",
      &show_labels, "show-legend", &show_legend, "text-position", &pos,
      "font-desc", &font, NULL);
  fail_unless_equals_float (alpha, 0.5);
  fail_unless_equals_string (palette, "");
  fail_unless_equals_string (classes, "");
  fail_unless (!contours && show_mask && show_labels && !show_legend);
  fail_unless_equals_int (pos, 0);
  fail_unless_equals_string (font, "Sans 14");
  g_free (palette);
  g_free (classes);
  g_free (font);

  /* a malformed palette is refused, the last good one kept */
  g_object_set (e, "palette", "#ff0000, 00ff00;0x0000ff", NULL);
  g_object_set (e, "palette", "red,green", NULL);
  g_object_get (e, "palette", &palette, NULL);
  fail_unless_equals_string (palette, "#ff0000, 00ff00;0x0000ff");
  g_free (palette);

  gst_util_set_object_arg (G_OBJECT (e), "text-position", "bottom-right");
  g_object_get (e, "text-position", &pos, NULL);
  fail_unless_equals_int (pos, 3);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_mask_all_formats)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstVideoFormat format = formats[i];
    GstHarness *h = overlay_harness (NULL, format, W, H);
    GstBuffer *in = frame_with_mask (format, 3 + i);
    GstBuffer *out = overlay_one (h, in);
    GstBuffer *want = engine_blend (format, in, 0.5f, NULL, FALSE);

    assert_frames_equal (format, W, H, out, want, "overlay vs vim_blend_mask");
    if (is_rgb (format))
      fail_unless (check_rgb_formula (format, in, out, 0.5,
              vim_default_palette (), 256, NULL) > W * H / 4);
    else
      check_yuv_luma (format, in, out, 0.5, vim_default_palette ());
    /* the meta stays on the buffer for whoever comes next */
    fail_unless (gst_buffer_get_vim_segmentation_meta (out) != NULL);

    gst_buffer_unref (want);
    gst_buffer_unref (out);
    gst_buffer_unref (in);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_palette_opaque)
{
  static const guint8 palette[] = { 255, 0, 0, 0, 255, 0 };
  GstHarness *h = overlay_harness ("alpha=1.0 palette=#ff0000,#00ff00",
      GST_VIDEO_FORMAT_RGB, W, H);
  GstBuffer *in = frame_with_mask (GST_VIDEO_FORMAT_RGB, 1);
  GstBuffer *out = overlay_one (h, in);

  /* alpha 1: exactly the colours, class c taking colour c mod 2 */
  check_rgb_formula (GST_VIDEO_FORMAT_RGB, in, out, 1.0, palette, 2, NULL);
  {
    GstMapInfo map;
    gint x = RECT_X + 1, y = RECT_Y + 1;        /* class 0 */

    fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
    fail_unless_equals_int (map.data[3 * (y * W + x)], 255);
    fail_unless_equals_int (map.data[3 * (y * W + x) + 1], 0);
    x = RECT_X + 13;            /* class 1 */
    fail_unless_equals_int (class_at (x, y), 1);
    fail_unless_equals_int (map.data[3 * (y * W + x)], 0);
    fail_unless_equals_int (map.data[3 * (y * W + x) + 1], 255);
    gst_buffer_unmap (out, &map);
  }
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_class_filter)
{
  static const gchar *filters[] = { "1,car", "road, 2", "1,2,nosuchclass" };
  guint8 visible[256] = { 0 };
  guint i;

  visible[1] = visible[2] = 1;
  for (i = 0; i < G_N_ELEMENTS (filters); i++) {
    gchar *props = g_strdup_printf ("classes=\"%s\"", filters[i]);
    GstHarness *h = overlay_harness (props, GST_VIDEO_FORMAT_RGBA, W, H);
    GstBuffer *in = frame_with_mask (GST_VIDEO_FORMAT_RGBA, 5);
    GstBuffer *out = overlay_one (h, in);
    GstBuffer *want = engine_blend (GST_VIDEO_FORMAT_RGBA, in, 0.5f, visible,
        FALSE);

    /* classes 0 and 3 untouched, 1 and 2 blended */
    fail_unless (check_rgb_formula (GST_VIDEO_FORMAT_RGBA, in, out, 0.5,
            vim_default_palette (), 256, visible) > 0);
    assert_frames_equal (GST_VIDEO_FORMAT_RGBA, W, H, out, want, filters[i]);
    gst_buffer_unref (want);
    gst_buffer_unref (out);
    gst_buffer_unref (in);
    gst_harness_teardown (h);
    g_free (props);
  }
}

GST_END_TEST;

GST_START_TEST (test_alpha_zero_and_hidden)
{
  static const gchar *props[] = { "alpha=0", "show-mask=false",
    "classes=nosuchclass"
  };
  guint i, f;

  for (i = 0; i < G_N_ELEMENTS (props); i++) {
    for (f = 0; f < G_N_ELEMENTS (formats); f++) {
      GstHarness *h = overlay_harness (props[i], formats[f], W, H);
      GstBuffer *in = frame_with_mask (formats[f], 9);
      GstBuffer *out = overlay_one (h, in);

      assert_frames_equal (formats[f], W, H, out, in, props[i]);
      gst_buffer_unref (out);
      gst_buffer_unref (in);
      gst_harness_teardown (h);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_contours)
{
  GstHarness *h = overlay_harness ("alpha=0 contours=true",
      GST_VIDEO_FORMAT_RGB, W, H);
  GstBuffer *in = frame_with_mask (GST_VIDEO_FORMAT_RGB, 2);
  GstBuffer *out = overlay_one (h, in);
  GstBuffer *want = engine_blend (GST_VIDEO_FORMAT_RGB, in, 0.0f, NULL, TRUE);
  const guint8 *pal = vim_default_palette ();
  GstMapInfo mi, mo;
  gint x, y, changed = 0;

  assert_frames_equal (GST_VIDEO_FORMAT_RGB, W, H, out, want, "contours");
  fail_unless (gst_buffer_map (in, &mi, GST_MAP_READ));
  fail_unless (gst_buffer_map (out, &mo, GST_MAP_READ));
  for (y = 0; y < H; y++) {
    for (x = 0; x < W; x++) {
      gint cls = class_at (x, y), dx, dy;
      gboolean near_edge = FALSE;
      const guint8 *po = mo.data + 3 * (y * W + x);

      if (memcmp (mi.data + 3 * (y * W + x), po, 3) == 0)
        continue;
      changed++;
      /* only pixels next to another class, painted opaque */
      fail_unless (cls >= 0, "pixel %d,%d outside the mask changed", x, y);
      for (dy = -1; dy <= 1; dy++)
        for (dx = -1; dx <= 1; dx++)
          if (class_at (x + dx, y + dy) != cls)
            near_edge = TRUE;
      fail_unless (near_edge, "pixel %d,%d inside a class changed", x, y);
      fail_unless (memcmp (po, pal + 3 * cls, 3) == 0,
          "contour pixel %d,%d not its class colour", x, y);
    }
  }
  fail_unless (changed > 0, "no contour drawn");
  gst_buffer_unmap (out, &mo);
  gst_buffer_unmap (in, &mi);
  gst_buffer_unref (want);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_no_meta_untouched)
{
  guint f;

  for (f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstHarness *h = overlay_harness ("alpha=1 contours=true show-legend=true",
        formats[f], W, H);
    GstBuffer *in = vim_test_make_frame (formats[f], W, H, 11);
    GstBuffer *out = overlay_one (h, in);

    assert_frames_equal (formats[f], W, H, out, in, "no meta");
    gst_buffer_unref (out);
    gst_buffer_unref (in);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* Bounding box of the pixels that differ (RGB frames of w x h). */
static gint
changed_box (GstBuffer * a, GstBuffer * b, gint w, gint h, gint box[4])
{
  GstMapInfo ma, mb;
  gint x, y, n = 0;

  box[0] = w;
  box[1] = h;
  box[2] = -1;
  box[3] = -1;
  fail_unless (gst_buffer_map (a, &ma, GST_MAP_READ));
  fail_unless (gst_buffer_map (b, &mb, GST_MAP_READ));
  for (y = 0; y < h; y++)
    for (x = 0; x < w; x++)
      if (memcmp (ma.data + 3 * (y * w + x), mb.data + 3 * (y * w + x), 3)) {
        n++;
        box[0] = MIN (box[0], x);
        box[1] = MIN (box[1], y);
        box[2] = MAX (box[2], x);
        box[3] = MAX (box[3], y);
      }
  gst_buffer_unmap (b, &mb);
  gst_buffer_unmap (a, &ma);
  return n;
}

static GstBuffer *
frame_with_classes (GstVideoFormat format, gint w, gint h)
{
  static const GstVimClassification results[] = {
    {7, 0.93f, "class_7"}, {1, 0.05f, "class_1"}, {4, 0.01f, NULL},
  };
  GstBuffer *buf = vim_test_make_frame (format, w, h, 4);

  fail_unless (gst_buffer_add_vim_classification_meta (buf, "test", 10,
          results, G_N_ELEMENTS (results)) != NULL);
  return buf;
}

GST_START_TEST (test_classification_text)
{
  static const gchar *positions[] = { "top-left", "top-right", "bottom-left",
    "bottom-right"
  };
  const gint w = 320, h = 240, margin = 8;
  guint i;

  for (i = 0; i < G_N_ELEMENTS (positions); i++) {
    gchar *props = g_strdup_printf ("text-position=%s font-desc=\"Sans 10\"",
        positions[i]);
    GstHarness *hn = overlay_harness (props, GST_VIDEO_FORMAT_RGB, w, h);
    GstBuffer *in = frame_with_classes (GST_VIDEO_FORMAT_RGB, w, h);
    GstBuffer *out = overlay_one (hn, in);
    GstBuffer *out2 = overlay_one (hn, in);
    gboolean right = i % 2 == 1, bottom = i >= 2;
    gint box[4], n;

    n = changed_box (in, out, w, h, box);
    GST_INFO ("%s: %d pixels changed in %d,%d - %d,%d", positions[i], n,
        box[0], box[1], box[2], box[3]);
    if (!have_fonts ()) {
      /* no font: the text is left out, the frame passes unchanged */
      fail_unless_equals_int (n, 0);
      assert_frames_equal (GST_VIDEO_FORMAT_RGB, w, h, out, out2, "no fonts");
      goto next;
    }
    /* a box of three lines of text, in its corner, at the margin */
    fail_unless (n > 500, "%s: only %d pixels changed", positions[i], n);
    fail_unless (box[2] - box[0] > 40 && box[3] - box[1] > 30);
    if (right) {
      fail_unless_equals_int (box[2], w - 1 - margin);
      fail_unless (box[0] >= w / 2);
    } else {
      fail_unless_equals_int (box[0], margin);
      fail_unless (box[2] < w / 2);
    }
    if (bottom) {
      fail_unless_equals_int (box[3], h - 1 - margin);
      fail_unless (box[1] >= h / 2);
    } else {
      fail_unless_equals_int (box[1], margin);
      fail_unless (box[3] < h / 2);
    }
    /* the cached text image gives the same pixels again */
    assert_frames_equal (GST_VIDEO_FORMAT_RGB, w, h, out, out2, "cached text");
  next:
    fail_unless (gst_buffer_get_vim_classification_meta (out) != NULL);

    gst_buffer_unref (out2);
    gst_buffer_unref (out);
    gst_buffer_unref (in);
    gst_harness_teardown (hn);
    g_free (props);
  }
}

GST_END_TEST;

GST_START_TEST (test_classification_yuv_and_hidden)
{
  const gint w = 320, h = 240;
  guint f;

  for (f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstHarness *hn = overlay_harness (NULL, formats[f], w, h);
    GstHarness *hh = overlay_harness ("show-labels=false", formats[f], w, h);
    GstBuffer *in = frame_with_classes (formats[f], w, h);
    GstBuffer *out = overlay_one (hn, in);
    GstBuffer *hidden = overlay_one (hh, in);
    GstMapInfo mi, mo;

    /* some bytes change (none without a font); with show-labels=false none */
    fail_unless (gst_buffer_map (in, &mi, GST_MAP_READ));
    fail_unless (gst_buffer_map (out, &mo, GST_MAP_READ));
    fail_unless (mi.size == mo.size);
    if (have_fonts ())
      fail_unless (memcmp (mi.data, mo.data, mi.size) != 0, "%s: text not drawn",
          gst_video_format_to_string (formats[f]));
    else
      fail_unless (memcmp (mi.data, mo.data, mi.size) == 0,
          "%s: text drawn without a font", gst_video_format_to_string (formats[f]));
    gst_buffer_unmap (out, &mo);
    gst_buffer_unmap (in, &mi);
    assert_frames_equal (formats[f], w, h, hidden, in, "show-labels=false");

    gst_buffer_unref (hidden);
    gst_buffer_unref (out);
    gst_buffer_unref (in);
    gst_harness_teardown (hh);
    gst_harness_teardown (hn);
  }
}

GST_END_TEST;

GST_START_TEST (test_legend)
{
  const gint w = 320, h = 240, margin = 8;
  GstHarness *hn = overlay_harness ("show-mask=false show-legend=true "
      "font-desc=\"Sans 10\"", GST_VIDEO_FORMAT_RGB, w, h);
  GstBuffer *in = vim_test_make_frame (GST_VIDEO_FORMAT_RGB, w, h, 6);
  GstBuffer *mask = make_mask ();
  GstBuffer *out;
  gint box[4], n;

  fail_unless (gst_buffer_add_vim_segmentation_meta (in, mask, NULL, 0, 0, w,
          h, "test", N_CLASSES, labels, NULL) != NULL);
  gst_buffer_unref (mask);
  out = overlay_one (hn, in);
  n = changed_box (in, out, w, h, box);
  GST_INFO ("legend: %d pixels changed in %d,%d - %d,%d", n, box[0], box[1],
      box[2], box[3]);
  if (have_fonts ()) {
    /* four rows in the top right corner, the mask itself not drawn */
    fail_unless (n > 500);
    fail_unless_equals_int (box[2], w - 1 - margin);
    fail_unless_equals_int (box[1], margin);
    fail_unless (box[0] >= w / 2 && box[3] < h / 2);
  } else {
    /* no font: no legend, and the mask is off, so nothing at all */
    fail_unless_equals_int (n, 0);
  }
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (hn);
}

GST_END_TEST;

static Suite *
vimoverlay_suite (void)
{
  Suite *s = suite_create ("vimoverlay");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_mask_all_formats);
  tcase_add_test (tc, test_palette_opaque);
  tcase_add_test (tc, test_class_filter);
  tcase_add_test (tc, test_alpha_zero_and_hidden);
  tcase_add_test (tc, test_contours);
  tcase_add_test (tc, test_no_meta_untouched);
  tcase_add_test (tc, test_classification_text);
  tcase_add_test (tc, test_classification_yuv_and_hidden);
  tcase_add_test (tc, test_legend);
  return s;
}

GST_CHECK_MAIN (vimoverlay);
