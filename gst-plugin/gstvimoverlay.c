/* gst-vim plugin: vimoverlay, draws gst-vim results into the frames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-vimoverlay
 * @title: vimoverlay
 * @short_description: draws segmentation masks and class labels that
 *     gst-vim elements attached to the frames
 *
 * vimoverlay draws, in place, what the gst-vim result metas of a frame say:
 *
 * - a #GstVimSegmentationMeta (from `vimsegment`): the class mask, blended
 *   over the frame rectangle the mask covers with one colour per class
 *   (`palette`, `alpha`), optionally only some classes (`classes`) and the
 *   class boundaries drawn opaque (`contours`); with `show-legend`, the
 *   names and colours of the classes present in the mask;
 * - a #GstVimClassificationMeta (from `vimclassify`): the top-k classes as
 *   text, one "label score" per line, in a corner of the frame
 *   (`text-position`, `font-desc`). The text is rendered with Pango once and
 *   reused while it does not change. On a host without any font (fontconfig
 *   lists none) the masks are still drawn and the text is left out, with one
 *   warning.
 *
 * Frames without these metas pass untouched. Frames in system memory and in
 * `memory:CUDAMemory` are drawn where they are: CUDA frames are drawn on the
 * GPU in the CUDA context their memory belongs to, without a copy to the
 * host.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     vimsegment model-file=vim-camvid-segmentation.safetensors ! \
 *     vimoverlay alpha=0.4 show-legend=true ! videoconvert ! autovideosink
 * ]| shows the segmentation of a file with a legend.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! parsebin ! nvh264dec ! \
 *     vimsegment device=cuda ! vimclassify device=cuda ! \
 *     vimoverlay classes=road,car contours=true text-position=bottom-right ! \
 *     cudadownload ! videoconvert ! autovideosink
 * ]| draws two classes and the frame's top classes on the GPU.
 *
 * Since: 0.1
 */

#include "vim-build-config.h"

#include <string.h>
#include <stdlib.h>
#include <fontconfig/fontconfig.h>
#include <pango/pangocairo.h>
#include <gst/vim/vimmeta.h>

#include "gstvimoverlay.h"
#include "gstvimelements.h"
#include "gstvimframe.h"
#include "gstvimcudacontext.h"

#ifdef HAVE_GST_CUDA
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_vim_overlay_debug);
#define GST_CAT_DEFAULT gst_vim_overlay_debug

#define DEFAULT_ALPHA 0.5
#define DEFAULT_PALETTE ""
#define DEFAULT_CLASSES ""
#define DEFAULT_CONTOURS FALSE
#define DEFAULT_SHOW_MASK TRUE
#define DEFAULT_SHOW_LABELS TRUE
#define DEFAULT_SHOW_LEGEND FALSE
#define DEFAULT_TEXT_POSITION GST_VIM_OVERLAY_POSITION_TOP_LEFT
#define DEFAULT_FONT_DESC "Sans 14"

/* distance of the text boxes from the frame edges, and padding inside them */
#define MARGIN 8
#define PADDING 6
/* a mask holds uint8 class ids */
#define MAX_CLASSES 256

enum
{
  PROP_0,
  PROP_ALPHA,
  PROP_PALETTE,
  PROP_CLASSES,
  PROP_CONTOURS,
  PROP_SHOW_MASK,
  PROP_SHOW_LABELS,
  PROP_SHOW_LEGEND,
  PROP_TEXT_POSITION,
  PROP_FONT_DESC,
};

/* A rendered text box, kept while the text that made it is the same. */
typedef struct
{
  gchar *key;
  cairo_surface_t *surface;     /* CAIRO_FORMAT_ARGB32, premultiplied */
} CachedImage;

struct _GstVimOverlay
{
  GstVideoFilter parent;

  /* properties, under the object lock */
  gdouble alpha;
  gchar *palette_str;
  guint8 *palette;              /* parsed palette_str; NULL = vim_default_palette */
  gint n_palette;
  gchar *classes_str;
  gchar **class_tokens;         /* parsed classes_str; NULL = all classes */
  gboolean contours;
  gboolean show_mask;
  gboolean show_labels;
  gboolean show_legend;
  GstVimOverlayPosition text_position;
  gchar *font_desc;

  /* streaming thread */
  VimPixelFormat pixel_format;
  gboolean cuda_caps;
  CachedImage labels_image;
  CachedImage legend_image;
  gboolean text_failed;         /* warned once that text can't be rendered */

#ifdef HAVE_GST_CUDA
  GstCudaContext *cuda_ctx;     /* under the object lock for queries */
#endif
};

/* The same formats in system memory and in CUDA memory: the engine draws
 * all of them on both. */
#define OVERLAY_FORMATS "{ RGB, RGBA, RGBx, BGR, BGRA, BGRx, NV12, I420 }"
#ifdef HAVE_GST_CUDA
#define CUDA_CAPS \
    GST_VIDEO_CAPS_MAKE_WITH_FEATURES ("memory:CUDAMemory", OVERLAY_FORMATS) "; "
#else
#define CUDA_CAPS
#endif
#define VIM_OVERLAY_CAPS CUDA_CAPS GST_VIDEO_CAPS_MAKE (OVERLAY_FORMATS)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIM_OVERLAY_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIM_OVERLAY_CAPS));

#define parent_class gst_vim_overlay_parent_class
G_DEFINE_TYPE (GstVimOverlay, gst_vim_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (vimoverlay, "vimoverlay", GST_RANK_NONE,
    GST_TYPE_VIM_OVERLAY);

GType
gst_vim_overlay_position_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VIM_OVERLAY_POSITION_TOP_LEFT, "Top left corner", "top-left"},
    {GST_VIM_OVERLAY_POSITION_TOP_RIGHT, "Top right corner", "top-right"},
    {GST_VIM_OVERLAY_POSITION_BOTTOM_LEFT, "Bottom left corner",
        "bottom-left"},
    {GST_VIM_OVERLAY_POSITION_BOTTOM_RIGHT, "Bottom right corner",
        "bottom-right"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVimOverlayPosition", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ---- property parsing ---------------------------------------------------- */

/* "#rrggbb", "0xrrggbb" or "rrggbb", separated by commas, semicolons or
 * spaces. Returns the number of colours, 0 for an empty list, -1 for a
 * malformed one. */
static gint
parse_palette (const gchar * str, guint8 ** out)
{
  gchar **tokens = g_strsplit_set (str ? str : "", ",; \t", -1);
  GByteArray *rgb = g_byte_array_new ();
  gint i, n = 0;

  for (i = 0; tokens[i]; i++) {
    const gchar *t = tokens[i];
    gchar *end = NULL;
    guint64 v;
    guint8 c[3];

    if (*t == '\0')
      continue;
    if (*t == '#')
      t++;
    else if (g_ascii_strncasecmp (t, "0x", 2) == 0)
      t += 2;
    if (strlen (t) != 6 || !g_ascii_isxdigit (*t)) {
      n = -1;
      break;
    }
    v = g_ascii_strtoull (t, &end, 16);
    if (*end != '\0') {
      n = -1;
      break;
    }
    c[0] = (v >> 16) & 0xff;
    c[1] = (v >> 8) & 0xff;
    c[2] = v & 0xff;
    g_byte_array_append (rgb, c, 3);
    n++;
  }
  g_strfreev (tokens);
  if (n <= 0) {
    g_byte_array_unref (rgb);
    *out = NULL;
    return n;
  }
  *out = g_byte_array_free (rgb, FALSE);
  return n;
}

static gchar **
parse_classes (const gchar * str)
{
  gchar **tokens = g_strsplit (str ? str : "", ",", -1);
  GPtrArray *kept = g_ptr_array_new ();
  gint i;

  for (i = 0; tokens[i]; i++) {
    gchar *t = g_strstrip (tokens[i]);

    if (*t)
      g_ptr_array_add (kept, g_strdup (t));
  }
  g_strfreev (tokens);
  if (kept->len == 0) {
    g_ptr_array_free (kept, TRUE);
    return NULL;
  }
  g_ptr_array_add (kept, NULL);
  return (gchar **) g_ptr_array_free (kept, FALSE);
}

/* Which class ids the `classes` tokens name on a mask of this meta: a
 * number is an id, anything else a label. */
static void
resolve_classes (GstVimOverlay * self, gchar ** tokens,
    const GstVimSegmentationMeta * meta, guint8 * visible)
{
  guint i, c;

  if (!tokens) {
    memset (visible, 1, MAX_CLASSES);
    return;
  }
  memset (visible, 0, MAX_CLASSES);
  for (i = 0; tokens[i]; i++) {
    gchar *end = NULL;
    guint64 id = g_ascii_strtoull (tokens[i], &end, 10);
    gboolean found = FALSE;

    if (end != tokens[i] && *end == '\0') {
      if (id < MAX_CLASSES)
        visible[id] = 1;
      continue;
    }
    for (c = 0; meta->labels && c < MIN (meta->n_classes, MAX_CLASSES); c++) {
      if (meta->labels[c] && g_strcmp0 (meta->labels[c], tokens[i]) == 0) {
        visible[c] = 1;
        found = TRUE;
      }
    }
    if (!found)
      GST_LOG_OBJECT (self, "no class is labelled \"%s\"", tokens[i]);
  }
}

/* ---- text images ----------------------------------------------------------- */

static void
cached_image_clear (CachedImage * image)
{
  g_clear_pointer (&image->key, g_free);
  g_clear_pointer (&image->surface, cairo_surface_destroy);
}

/* Text boxes: light text on a dark translucent box, readable on any frame.
 * A row may start with a colour swatch (legend). */
typedef struct
{
  gchar *text;
  gboolean swatch;
  guint8 rgb[3];
} TextRow;

/* Whether fontconfig knows any font (asked once per process). Without one
 * Pango still lists its generic families, but its text extents are garbage
 * that changes from call to call, so the text would differ between two runs
 * of one stream. */
static gboolean
have_fonts (void)
{
  static gsize checked = 0;
  static gboolean found = FALSE;

  if (g_once_init_enter (&checked)) {
    FcPattern *pattern = FcPatternCreate ();
    FcObjectSet *objects = FcObjectSetBuild (FC_FAMILY, NULL);
    FcFontSet *fonts = FcFontList (NULL, pattern, objects);

    found = fonts && fonts->nfont > 0;
    GST_DEBUG ("fontconfig lists %d fonts", fonts ? fonts->nfont : 0);
    if (fonts)
      FcFontSetDestroy (fonts);
    FcObjectSetDestroy (objects);
    FcPatternDestroy (pattern);
    g_once_init_leave (&checked, 1);
  }
  return found;
}

/* The rows as one ARGB image, or NULL when no text can be rendered. */
static cairo_surface_t *
render_rows (const gchar * font_desc, const TextRow * rows, guint n_rows)
{
  cairo_surface_t *probe, *surface;
  cairo_t *cr;
  PangoFontDescription *desc;
  PangoLayout **layouts;
  gint *heights;
  gint width = 0, height = 0, swatch = 0, i, y;

  if (!have_fonts ())
    return NULL;
  probe = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 1, 1);
  cr = cairo_create (probe);
  desc = pango_font_description_from_string (font_desc);
  layouts = g_new0 (PangoLayout *, n_rows);
  heights = g_new0 (gint, n_rows);

  for (i = 0; i < (gint) n_rows; i++) {
    PangoRectangle ink, logical;

    layouts[i] = pango_cairo_create_layout (cr);
    pango_layout_set_font_description (layouts[i], desc);
    pango_layout_set_text (layouts[i], rows[i].text, -1);
    pango_layout_get_pixel_extents (layouts[i], &ink, &logical);
    heights[i] = logical.height;
    if (rows[i].swatch)
      swatch = MAX (swatch, logical.height);
    width = MAX (width, logical.width);
    height += logical.height;
  }
  cairo_destroy (cr);
  cairo_surface_destroy (probe);

  if (swatch > 0)
    width += swatch + PADDING;
  width += 2 * PADDING;
  height += 2 * PADDING;

  surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  cr = cairo_create (surface);
  cairo_set_source_rgba (cr, 0.0, 0.0, 0.0, 0.6);
  cairo_paint (cr);

  y = PADDING;
  for (i = 0; i < (gint) n_rows; i++) {
    gint x = PADDING;

    if (swatch > 0) {
      if (rows[i].swatch) {
        cairo_set_source_rgb (cr, rows[i].rgb[0] / 255.0,
            rows[i].rgb[1] / 255.0, rows[i].rgb[2] / 255.0);
        cairo_rectangle (cr, x + 2, y + 2, swatch - 4, heights[i] - 4);
        cairo_fill (cr);
      }
      x += swatch + PADDING;
    }
    cairo_set_source_rgb (cr, 1.0, 1.0, 1.0);
    cairo_move_to (cr, x, y);
    /* the layouts were made on the probe context; update them for this one */
    pango_cairo_update_layout (cr, layouts[i]);
    pango_cairo_show_layout (cr, layouts[i]);
    y += heights[i];
    g_object_unref (layouts[i]);
  }
  cairo_destroy (cr);
  cairo_surface_flush (surface);

  pango_font_description_free (desc);
  g_free (layouts);
  g_free (heights);
  return surface;
}

/* Renders the rows unless the cached image was made from the same key. */
static cairo_surface_t *
cached_render (CachedImage * image, const gchar * key, const gchar * font_desc,
    const TextRow * rows, guint n_rows)
{
  if (image->key && g_str_equal (image->key, key))
    return image->surface;
  cached_image_clear (image);
  image->surface = render_rows (font_desc, rows, n_rows);
  image->key = g_strdup (key);
  return image->surface;
}

static void
free_rows (TextRow * rows, guint n)
{
  guint i;

  for (i = 0; i < n; i++)
    g_free (rows[i].text);
  g_free (rows);
}

/* Where a box of w x h goes for a corner. */
static void
place (GstVimOverlayPosition pos, gint frame_w, gint frame_h, gint w, gint h,
    gint * x, gint * y)
{
  gboolean right = pos == GST_VIM_OVERLAY_POSITION_TOP_RIGHT ||
      pos == GST_VIM_OVERLAY_POSITION_BOTTOM_RIGHT;
  gboolean bottom = pos == GST_VIM_OVERLAY_POSITION_BOTTOM_LEFT ||
      pos == GST_VIM_OVERLAY_POSITION_BOTTOM_RIGHT;

  *x = right ? frame_w - w - MARGIN : MARGIN;
  *y = bottom ? frame_h - h - MARGIN : MARGIN;
}

/* ---- drawing --------------------------------------------------------------- */

/* Settings of one frame, copied from the properties under the lock. */
typedef struct
{
  gdouble alpha;
  guint8 *palette;
  gint n_palette;
  gchar **class_tokens;
  gboolean contours, show_mask, show_labels, show_legend;
  GstVimOverlayPosition text_position;
  gchar *font_desc;
} Settings;

static void
settings_load (GstVimOverlay * self, Settings * s)
{
  GST_OBJECT_LOCK (self);
  s->alpha = self->alpha;
  s->n_palette = self->n_palette;
  s->palette = self->palette ? g_memdup2 (self->palette, 3 * self->n_palette)
      : NULL;
  s->class_tokens = g_strdupv (self->class_tokens);
  s->contours = self->contours;
  s->show_mask = self->show_mask;
  s->show_labels = self->show_labels;
  s->show_legend = self->show_legend;
  s->text_position = self->text_position;
  s->font_desc = g_strdup (self->font_desc);
  GST_OBJECT_UNLOCK (self);

  if (!s->palette && vim_default_palette ()) {
    s->palette = g_memdup2 (vim_default_palette (), 3 * 256);
    s->n_palette = 256;
  }
}

static void
settings_clear (Settings * s)
{
  g_free (s->palette);
  g_strfreev (s->class_tokens);
  g_free (s->font_desc);
}

static gboolean
blend_image (GstVimOverlay * self, const VimFrame * frame,
    cairo_surface_t * surface, GstVimOverlayPosition pos, GError ** error)
{
  gint w, h, x, y;

  /* text is decoration: without fonts (a bare host has no fontconfig
   * setup) the masks are still drawn, with one warning */
  if (surface == NULL || cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS
      || cairo_image_surface_get_data (surface) == NULL) {
    if (!self->text_failed) {
      self->text_failed = TRUE;
      GST_ELEMENT_WARNING (self, LIBRARY, FAILED,
          ("Could not render text; drawing without labels."),
          ("%s (are fonts and a fontconfig configuration installed?)",
              surface ? cairo_status_to_string (cairo_surface_status (surface))
              : "fontconfig found no font"));
    }
    return TRUE;
  }
  w = cairo_image_surface_get_width (surface);
  h = cairo_image_surface_get_height (surface);

  place (pos, frame->width, frame->height, w, h, &x, &y);
  GST_LOG_OBJECT (self, "text image %dx%d at %d,%d (%s memory)", w, h, x, y,
      frame->memory == VIM_MEMORY_HOST ? "system" : "CUDA");
  return vim_blend_argb (frame, cairo_image_surface_get_data (surface), w, h,
      cairo_image_surface_get_stride (surface), x, y, NULL, error);
}

static gboolean
draw_segmentation (GstVimOverlay * self, const VimFrame * frame,
    GstVimSegmentationMeta * meta, const Settings * s, GError ** error)
{
  GstVideoMeta *vmeta;
  GstMapInfo map;
  VimMaskGeometry geometry;
  VimBlendOptions options;
  guint8 visible[MAX_CLASSES];
  gint mask_w, mask_h;
  gsize mask_stride;
  gboolean ok = TRUE;

  if (!meta->mask)
    return TRUE;
  if (!s->palette) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "the engine has no default palette");
    return FALSE;
  }
  vmeta = gst_buffer_get_video_meta (meta->mask);
  if (vmeta) {
    mask_w = vmeta->width;
    mask_h = vmeta->height;
    mask_stride = vmeta->stride[0];
  } else {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "segmentation mask without a GstVideoMeta");
    return FALSE;
  }
  if (!gst_buffer_map (meta->mask, &map, GST_MAP_READ)) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "could not map the segmentation mask");
    return FALSE;
  }
  if (mask_w <= 0 || mask_h <= 0 ||
      map.size < vmeta->offset[0] + (mask_h - 1) * mask_stride + mask_w) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "segmentation mask of %" G_GSIZE_FORMAT " bytes is too small for "
        "%dx%d with stride %" G_GSIZE_FORMAT, map.size, mask_w, mask_h,
        mask_stride);
    gst_buffer_unmap (meta->mask, &map);
    return FALSE;
  }

  geometry.width = mask_w;
  geometry.height = mask_h;
  geometry.x = meta->x;
  geometry.y = meta->y;
  geometry.w = meta->width;
  geometry.h = meta->height;
  resolve_classes (self, s->class_tokens, meta, visible);

  if (s->show_mask) {
    memset (&options, 0, sizeof (options));
    options.alpha = (float) s->alpha;
    options.palette = s->palette;
    options.n_palette = s->n_palette;
    options.class_visible = visible;
    options.n_classes = MAX_CLASSES;
    options.contours = s->contours;
    ok = vim_blend_mask (frame, (const uint8_t *) map.data + vmeta->offset[0],
        mask_stride, VIM_MEMORY_HOST, &geometry, &options, NULL, error);
  }

  if (ok && s->show_legend) {
    GString *key = g_string_new (s->font_desc);
    TextRow *rows = g_new0 (TextRow, MAX_CLASSES);
    guint64 counts[MAX_CLASSES] = { 0 };
    guint n_rows = 0, c;
    gint i, j;

    /* the classes present: the meta's fractions, else a count */
    if (!meta->fractions) {
      const guint8 *data = map.data + vmeta->offset[0];

      for (j = 0; j < mask_h; j++)
        for (i = 0; i < mask_w; i++)
          counts[data[j * mask_stride + i]]++;
    }
    for (c = 0; c < MAX_CLASSES; c++) {
      gboolean present = meta->fractions ?
          (c < meta->n_classes && meta->fractions[c] > 0.0f) : counts[c] > 0;
      const guint8 *rgb = s->palette + 3 * (c % s->n_palette);

      if (!present || !visible[c])
        continue;
      rows[n_rows].text = meta->labels && c < meta->n_classes &&
          meta->labels[c] ? g_strdup (meta->labels[c]) :
          g_strdup_printf ("class %u", c);
      rows[n_rows].swatch = TRUE;
      memcpy (rows[n_rows].rgb, rgb, 3);
      g_string_append_printf (key, "|%02x%02x%02x %s", rgb[0], rgb[1], rgb[2],
          rows[n_rows].text);
      n_rows++;
    }
    if (n_rows > 0) {
      /* the corner across from the classification text */
      GstVimOverlayPosition pos = s->text_position ^ 1;
      cairo_surface_t *img = cached_render (&self->legend_image, key->str,
          s->font_desc, rows, n_rows);

      ok = blend_image (self, frame, img, pos, error);
    }
    free_rows (rows, MAX_CLASSES);
    g_string_free (key, TRUE);
  }

  gst_buffer_unmap (meta->mask, &map);
  return ok;
}

static gboolean
draw_classification (GstVimOverlay * self, const VimFrame * frame,
    GstVimClassificationMeta * meta, const Settings * s, GError ** error)
{
  GString *key;
  TextRow *rows;
  cairo_surface_t *img;
  guint i;
  gboolean ok;

  if (meta->n_results == 0)
    return TRUE;

  key = g_string_new (s->font_desc);
  rows = g_new0 (TextRow, meta->n_results);
  for (i = 0; i < meta->n_results; i++) {
    const GstVimClassification *r = &meta->results[i];

    rows[i].text = r->label ? g_strdup_printf ("%s %.2f", r->label, r->score)
        : g_strdup_printf ("class %d %.2f", r->class_id, r->score);
    g_string_append_printf (key, "\n%s", rows[i].text);
  }
  img = cached_render (&self->labels_image, key->str, s->font_desc, rows,
      meta->n_results);
  ok = blend_image (self, frame, img, s->text_position, error);
  free_rows (rows, meta->n_results);
  g_string_free (key, TRUE);
  return ok;
}

static GstFlowReturn
gst_vim_overlay_transform_ip (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstVimOverlay *self = GST_VIM_OVERLAY (trans);
  GstVideoFilter *filter = GST_VIDEO_FILTER (trans);
  GstVimSegmentationMeta *seg;
  GstVimClassificationMeta *cls;
  GstMapFlags flags = GST_MAP_READWRITE;
  VimMemory memory = VIM_MEMORY_HOST;
  GstVideoFrame vframe;
  VimFrame frame;
  Settings s;
  GError *err = NULL;
  gboolean ok = TRUE;
#ifdef HAVE_GST_CUDA
  GstCudaContext *ctx = NULL;
#endif

  seg = gst_buffer_get_vim_segmentation_meta (buffer);
  cls = gst_buffer_get_vim_classification_meta (buffer);

  settings_load (self, &s);
  if (!s.show_mask && !s.show_legend)
    seg = NULL;
  if (!s.show_labels)
    cls = NULL;
  if (!seg && !cls) {
    /* nothing to draw: not even mapped */
    settings_clear (&s);
    return GST_FLOW_OK;
  }

#ifdef HAVE_GST_CUDA
  if (self->cuda_caps && gst_buffer_n_memory (buffer) > 0 &&
      gst_is_cuda_memory (gst_buffer_peek_memory (buffer, 0))) {
    /* drawn in the context the memory belongs to, which may be the
     * decoder's own rather than the one we share with the pipeline */
    ctx = GST_CUDA_MEMORY_CAST (gst_buffer_peek_memory (buffer, 0))->context;
    flags |= GST_MAP_CUDA;
    memory = VIM_MEMORY_CUDA;
  }
#endif

  if (!gst_video_frame_map (&vframe, &filter->in_info, buffer, flags)) {
    settings_clear (&s);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map a video frame."),
        ("frame %" GST_PTR_FORMAT, buffer));
    return GST_FLOW_ERROR;
  }
  gst_vim_frame_from_video_frame (&vframe, memory, &frame);

#ifdef HAVE_GST_CUDA
  if (ctx)
    gst_cuda_context_push (ctx);
#endif
  if (seg)
    ok = draw_segmentation (self, &frame, seg, &s, &err);
  if (ok && cls)
    ok = draw_classification (self, &frame, cls, &s, &err);
#ifdef HAVE_GST_CUDA
  if (ctx)
    gst_cuda_context_pop (NULL);
#endif

  gst_video_frame_unmap (&vframe);
  settings_clear (&s);

  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Could not draw the results into a frame."),
        ("%s", err ? err->message : "no reason given"));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

/* ---- caps, CUDA context ------------------------------------------------------ */

static gboolean
gst_vim_overlay_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstVimOverlay *self = GST_VIM_OVERLAY (filter);
  GstCapsFeatures *features = gst_caps_get_features (incaps, 0);

  if (!gst_vim_pixel_format_from_video (GST_VIDEO_INFO_FORMAT (in_info),
          &self->pixel_format)) {
    GST_ERROR_OBJECT (self, "unusable caps %" GST_PTR_FORMAT, incaps);
    return FALSE;
  }
  self->cuda_caps = features &&
      gst_caps_features_contains (features, "memory:CUDAMemory");

#ifdef HAVE_GST_CUDA
  /* join the pipeline's CUDA context, so that our neighbours find it */
  if (self->cuda_caps) {
    GstCudaContext *ctx = NULL;

    GST_OBJECT_LOCK (self);
    if (self->cuda_ctx)
      ctx = gst_object_ref (self->cuda_ctx);
    GST_OBJECT_UNLOCK (self);
    if (!ctx && (!gst_cuda_load_library () ||
            !gst_cuda_ensure_element_context (GST_ELEMENT (self), -1, &ctx))) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("memory:CUDAMemory frames but no CUDA context."), (NULL));
      return FALSE;
    }
    GST_OBJECT_LOCK (self);
    gst_object_replace ((GstObject **) & self->cuda_ctx, GST_OBJECT (ctx));
    GST_OBJECT_UNLOCK (self);
    gst_object_unref (ctx);
  }
#endif
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, incaps);
  return TRUE;
}

static gboolean
gst_vim_overlay_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
#ifdef HAVE_GST_CUDA
  GstVimOverlay *self = GST_VIM_OVERLAY (trans);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CONTEXT &&
      gst_vim_cuda_context_query (GST_ELEMENT (self), query, &self->cuda_ctx))
    return TRUE;
#endif
  return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction,
      query);
}

static void
gst_vim_overlay_set_context (GstElement * element, GstContext * context)
{
#ifdef HAVE_GST_CUDA
  GstVimOverlay *self = GST_VIM_OVERLAY (element);

  GST_OBJECT_LOCK (self);
  gst_cuda_handle_set_context (element, context, -1, &self->cuda_ctx);
  GST_OBJECT_UNLOCK (self);
#endif
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static gboolean
gst_vim_overlay_stop (GstBaseTransform * trans)
{
  GstVimOverlay *self = GST_VIM_OVERLAY (trans);

  cached_image_clear (&self->labels_image);
  cached_image_clear (&self->legend_image);
#ifdef HAVE_GST_CUDA
  GST_OBJECT_LOCK (self);
  gst_clear_object (&self->cuda_ctx);
  GST_OBJECT_UNLOCK (self);
#endif
  return TRUE;
}

/* ---- properties --------------------------------------------------------------- */

static void
gst_vim_overlay_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVimOverlay *self = GST_VIM_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_ALPHA:
      self->alpha = g_value_get_double (value);
      break;
    case PROP_PALETTE:{
      guint8 *palette = NULL;
      gint n = parse_palette (g_value_get_string (value), &palette);

      if (n < 0) {
        GST_WARNING_OBJECT (self, "palette \"%s\" is not a list of RRGGBB "
            "colours, keeping \"%s\"", g_value_get_string (value),
            self->palette_str);
        break;
      }
      g_free (self->palette_str);
      self->palette_str = g_value_dup_string (value);
      g_free (self->palette);
      self->palette = palette;
      self->n_palette = n;
      break;
    }
    case PROP_CLASSES:
      g_free (self->classes_str);
      self->classes_str = g_value_dup_string (value);
      g_strfreev (self->class_tokens);
      self->class_tokens = parse_classes (self->classes_str);
      break;
    case PROP_CONTOURS:
      self->contours = g_value_get_boolean (value);
      break;
    case PROP_SHOW_MASK:
      self->show_mask = g_value_get_boolean (value);
      break;
    case PROP_SHOW_LABELS:
      self->show_labels = g_value_get_boolean (value);
      break;
    case PROP_SHOW_LEGEND:
      self->show_legend = g_value_get_boolean (value);
      break;
    case PROP_TEXT_POSITION:
      self->text_position = g_value_get_enum (value);
      break;
    case PROP_FONT_DESC:
      g_free (self->font_desc);
      self->font_desc = g_value_dup_string (value);
      if (!self->font_desc || !*self->font_desc) {
        g_free (self->font_desc);
        self->font_desc = g_strdup (DEFAULT_FONT_DESC);
      }
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vim_overlay_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVimOverlay *self = GST_VIM_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_ALPHA:
      g_value_set_double (value, self->alpha);
      break;
    case PROP_PALETTE:
      g_value_set_string (value, self->palette_str);
      break;
    case PROP_CLASSES:
      g_value_set_string (value, self->classes_str);
      break;
    case PROP_CONTOURS:
      g_value_set_boolean (value, self->contours);
      break;
    case PROP_SHOW_MASK:
      g_value_set_boolean (value, self->show_mask);
      break;
    case PROP_SHOW_LABELS:
      g_value_set_boolean (value, self->show_labels);
      break;
    case PROP_SHOW_LEGEND:
      g_value_set_boolean (value, self->show_legend);
      break;
    case PROP_TEXT_POSITION:
      g_value_set_enum (value, self->text_position);
      break;
    case PROP_FONT_DESC:
      g_value_set_string (value, self->font_desc);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vim_overlay_finalize (GObject * object)
{
  GstVimOverlay *self = GST_VIM_OVERLAY (object);

  g_free (self->palette_str);
  g_free (self->palette);
  g_free (self->classes_str);
  g_strfreev (self->class_tokens);
  g_free (self->font_desc);
  cached_image_clear (&self->labels_image);
  cached_image_clear (&self->legend_image);
#ifdef HAVE_GST_CUDA
  gst_clear_object (&self->cuda_ctx);
#endif
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vim_overlay_class_init (GstVimOverlayClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;

  GST_DEBUG_CATEGORY_INIT (gst_vim_overlay_debug, "vimoverlay", 0,
      "Vision Mamba result overlay");

  gobject_class->set_property = gst_vim_overlay_set_property;
  gobject_class->get_property = gst_vim_overlay_get_property;
  gobject_class->finalize = gst_vim_overlay_finalize;

  /**
   * GstVimOverlay:alpha:
   *
   * Weight of the class colour in a masked pixel: 0 leaves the frame as it
   * is, 1 paints the class colour.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_ALPHA,
      g_param_spec_double ("alpha", "Alpha",
          "Opacity of the class colours over the frame", 0.0, 1.0,
          DEFAULT_ALPHA, flags));

  /**
   * GstVimOverlay:palette:
   *
   * Class colours as a list of RRGGBB hexadecimal values (each optionally
   * prefixed with "#" or "0x"), separated by commas, semicolons or spaces:
   * class c gets colour c modulo the length of the list. Empty: 256
   * distinct colours, CamVid's usual colours first. A malformed list is
   * ignored with a warning.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_PALETTE,
      g_param_spec_string ("palette", "Palette",
          "Class colours, e.g. \"#ff0000,#00ff00\" (class c takes colour "
          "c mod N); empty = built-in 256-colour palette", DEFAULT_PALETTE,
          flags));

  /**
   * GstVimOverlay:classes:
   *
   * The classes to draw, as a comma-separated list of class ids (0..255) or
   * labels (as the segmentation meta names them), e.g. "road,car,3". Empty:
   * all classes.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_CLASSES,
      g_param_spec_string ("classes", "Classes",
          "Classes to draw: comma-separated class ids (0-255) or labels; "
          "empty = all", DEFAULT_CLASSES, flags));

  /**
   * GstVimOverlay:contours:
   *
   * Draw the boundaries between classes in the opaque class colour.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_CONTOURS,
      g_param_spec_boolean ("contours", "Contours",
          "Draw class boundaries opaque", DEFAULT_CONTOURS, flags));

  /**
   * GstVimOverlay:show-mask:
   *
   * Draw the segmentation mask.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_SHOW_MASK,
      g_param_spec_boolean ("show-mask", "Show mask",
          "Draw the segmentation mask", DEFAULT_SHOW_MASK, flags));

  /**
   * GstVimOverlay:show-labels:
   *
   * Draw the classification result (top-k labels and scores).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_SHOW_LABELS,
      g_param_spec_boolean ("show-labels", "Show labels",
          "Draw the classification labels and scores", DEFAULT_SHOW_LABELS,
          flags));

  /**
   * GstVimOverlay:show-legend:
   *
   * Draw a legend of the classes present in the segmentation mask (among
   * those drawn) with their colours, in the corner across from the
   * classification text.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_SHOW_LEGEND,
      g_param_spec_boolean ("show-legend", "Show legend",
          "Draw the names and colours of the classes in the mask",
          DEFAULT_SHOW_LEGEND, flags));

  /**
   * GstVimOverlay:text-position:
   *
   * The corner of the classification text.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_TEXT_POSITION,
      g_param_spec_enum ("text-position", "Text position",
          "Corner of the classification text", GST_TYPE_VIM_OVERLAY_POSITION,
          DEFAULT_TEXT_POSITION, flags));

  /**
   * GstVimOverlay:font-desc:
   *
   * Pango font description of the text, e.g. "Sans Bold 18".
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_FONT_DESC,
      g_param_spec_string ("font-desc", "Font description",
          "Pango font description of the text (family, style, size), e.g. "
          "\"Sans 18\"", DEFAULT_FONT_DESC, flags));

  element_class->set_context = GST_DEBUG_FUNCPTR (gst_vim_overlay_set_context);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_vim_overlay_transform_ip);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_vim_overlay_query);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_vim_overlay_stop);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_vim_overlay_set_info);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Vision Mamba overlay", "Filter/Effect/Video",
      "Draws gst-vim segmentation masks and classification labels into the "
      "frames", "gst-vim developers");

  gst_type_mark_as_plugin_api (GST_TYPE_VIM_OVERLAY_POSITION, 0);
}

static void
gst_vim_overlay_init (GstVimOverlay * self)
{
  self->alpha = DEFAULT_ALPHA;
  self->palette_str = g_strdup (DEFAULT_PALETTE);
  self->classes_str = g_strdup (DEFAULT_CLASSES);
  self->contours = DEFAULT_CONTOURS;
  self->show_mask = DEFAULT_SHOW_MASK;
  self->show_labels = DEFAULT_SHOW_LABELS;
  self->show_legend = DEFAULT_SHOW_LEGEND;
  self->text_position = DEFAULT_TEXT_POSITION;
  self->font_desc = g_strdup (DEFAULT_FONT_DESC);
}
