/* gst-vim GStreamer tests: vimsegment with GstHarness.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

#include "vimtestutil.h"

/* Made by the build (tests/gst/meson.build): 64x64 input, 16-pixel
 * patches (a 4x4 grid), 11 classes; stretch and short-side-crop. */
#define N_CLASSES 11
#define GRID 4

static const GstVideoFormat all_formats[] = {
  GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_RGBx,
  GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_BGRx,
  GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_GRAY8,
};

static const gchar *
seg_model_path (void)
{
  const gchar *p = g_getenv ("VIM_TEST_SEG_MODEL");

  fail_unless (p != NULL, "VIM_TEST_SEG_MODEL is not set");
  return p;
}

static const gchar *
seg_crop_model_path (void)
{
  const gchar *p = g_getenv ("VIM_TEST_SEG_CROP_MODEL");

  fail_unless (p != NULL, "VIM_TEST_SEG_CROP_MODEL is not set");
  return p;
}

/* vimsegment on the CPU with the test segmenter and "name=value ..." @props. */
static GstElement *
make_segment (const gchar * props)
{
  GstElement *e = gst_element_factory_make ("vimsegment", NULL);

  fail_unless (e != NULL);
  g_object_set (e, "model-file", seg_model_path (), "device", 1 /* cpu */ ,
      NULL);
  vim_test_set_props (e, props);
  return e;
}

static GstHarness *
segment_harness (const gchar * props, GstVideoFormat format, gint width,
    gint height)
{
  GstElement *e = make_segment (props);
  GstHarness *h = vim_test_video_harness (e, format, width, height);

  gst_object_unref (e);
  return h;
}

static GstVimSegmentationMeta *
get_meta (GstBuffer * buf)
{
  GstVimSegmentationMeta *meta = gst_buffer_get_vim_segmentation_meta (buf);

  fail_unless (meta != NULL, "buffer without GstVimSegmentationMeta");
  return meta;
}

/* ---- the engine, called directly ---------------------------------------- */

typedef struct
{
  VimMaskGeometry geometry;
  guint8 *classes;              /* width * height, tight */
  guint8 *confidence;
  gfloat fractions[N_CLASSES];
} EngineMask;

static void
engine_mask_free (EngineMask * m)
{
  g_free (m->classes);
  g_free (m->confidence);
  g_free (m);
}

static VimPixelFormat
pixel_format (GstVideoFormat f)
{
  switch (f) {
    case GST_VIDEO_FORMAT_RGB:
      return VIM_PIXEL_RGB;
    case GST_VIDEO_FORMAT_RGBA:
      return VIM_PIXEL_RGBA;
    case GST_VIDEO_FORMAT_RGBx:
      return VIM_PIXEL_RGBX;
    case GST_VIDEO_FORMAT_BGR:
      return VIM_PIXEL_BGR;
    case GST_VIDEO_FORMAT_BGRA:
      return VIM_PIXEL_BGRA;
    case GST_VIDEO_FORMAT_BGRx:
      return VIM_PIXEL_BGRX;
    case GST_VIDEO_FORMAT_NV12:
      return VIM_PIXEL_NV12;
    case GST_VIDEO_FORMAT_I420:
      return VIM_PIXEL_I420;
    case GST_VIDEO_FORMAT_GRAY8:
      return VIM_PIXEL_GRAY8;
    default:
      fail ("format not handled by the test");
      return VIM_PIXEL_RGB;
  }
}

/* vim_runner_segment on a CPU runner of @model_path, on the pixels of
 * @buffer (unmodified by vimsegment). */
static EngineMask *
engine_segment (const gchar * model_path, GstVideoFormat format, gint width,
    gint height, GstBuffer * buffer, const VimMaskSpec * spec)
{
  static GHashTable *runners;   /* path -> runner, for the whole run */
  EngineMask *m = g_new0 (EngineMask, 1);
  VimRunner *runner;
  VimSegResult res = { 0 };
  GstVideoFrame vframe;
  GstVideoInfo info;
  VimFrame frame = { 0 };
  GError *err = NULL;
  guint i;

  if (!runners)
    runners = g_hash_table_new (g_str_hash, g_str_equal);
  runner = g_hash_table_lookup (runners, model_path);
  if (!runner) {
    VimModel *model = vim_model_open (model_path, &err);
    VimRunnerOptions opt;

    fail_unless (model != NULL, "%s", err ? err->message : "?");
    vim_runner_options_init (&opt);
    opt.device = VIM_DEVICE_CPU;
    /* kept, with its model, for the whole run */
    runner = vim_runner_new (model, &opt, &err);
    fail_unless (runner != NULL, "%s", err ? err->message : "?");
    g_hash_table_insert (runners, (gpointer) model_path, runner);
  }

  fail_unless (vim_model_mask_geometry (vim_runner_get_model (runner), width,
          height, spec, &m->geometry, &err), "%s", err ? err->message : "?");
  m->classes = g_malloc (m->geometry.width * m->geometry.height);
  m->confidence = g_malloc (m->geometry.width * m->geometry.height);
  res.memory = VIM_MEMORY_HOST;
  res.classes = m->classes;
  res.classes_stride = m->geometry.width;
  res.confidence = m->confidence;
  res.confidence_stride = m->geometry.width;
  res.fractions = m->fractions;

  gst_video_info_set_format (&info, format, width, height);
  fail_unless (gst_video_frame_map (&vframe, &info, buffer, GST_MAP_READ));
  frame.format = pixel_format (format);
  frame.width = width;
  frame.height = height;
  frame.memory = VIM_MEMORY_HOST;
  for (i = 0; i < GST_VIDEO_FRAME_N_PLANES (&vframe); i++) {
    frame.planes[i] = GST_VIDEO_FRAME_PLANE_DATA (&vframe, i);
    frame.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&vframe, i);
  }
  fail_unless (vim_runner_segment (runner, &frame, 1, spec, &res, &err),
      "%s", err ? err->message : "?");
  gst_video_frame_unmap (&vframe);
  return m;
}

/* Every byte of a GRAY8 mask buffer equals @expect (tight rows). */
static void
assert_mask_equals (GstBuffer * mask, const guint8 * expect, gint width,
    gint height, const gchar * what)
{
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (mask);
  GstMapInfo map;
  gint y, x;

  fail_unless (vmeta != NULL, "%s without GstVideoMeta", what);
  fail_unless_equals_int (vmeta->format, GST_VIDEO_FORMAT_GRAY8);
  fail_unless_equals_int (vmeta->width, width);
  fail_unless_equals_int (vmeta->height, height);
  fail_unless (vmeta->stride[0] >= width && vmeta->stride[0] % 4 == 0,
      "stride %d", vmeta->stride[0]);
  fail_unless (gst_buffer_map (mask, &map, GST_MAP_READ));
  for (y = 0; y < height; y++)
    for (x = 0; x < width; x++) {
      guint8 got = map.data[vmeta->offset[0] + y * vmeta->stride[0] + x];
      fail_unless_equals_int_hex (got, expect[y * width + x]);
    }
  gst_buffer_unmap (mask, &map);
}

/* The meta on @out is what the engine computes for the same pixels. */
static void
assert_matches_engine (const gchar * model_path, GstBuffer * out,
    GstVideoFormat format, gint width, gint height, const VimMaskSpec * spec)
{
  GstVimSegmentationMeta *meta = get_meta (out);
  EngineMask *m = engine_segment (model_path, format, width, height, out,
      spec);
  guint i;

  fail_unless_equals_int (meta->mask_width, m->geometry.width);
  fail_unless_equals_int (meta->mask_height, m->geometry.height);
  fail_unless_equals_float (meta->x, m->geometry.x);
  fail_unless_equals_float (meta->y, m->geometry.y);
  fail_unless_equals_float (meta->width, m->geometry.w);
  fail_unless_equals_float (meta->height, m->geometry.h);
  assert_mask_equals (meta->mask, m->classes, m->geometry.width,
      m->geometry.height, "mask");
  if (meta->confidence)
    assert_mask_equals (meta->confidence, m->confidence, m->geometry.width,
        m->geometry.height, "confidence");
  fail_unless_equals_int (meta->n_classes, N_CLASSES);
  fail_unless (meta->fractions != NULL);
  for (i = 0; i < N_CLASSES; i++)
    fail_unless_equals_float (meta->fractions[i], m->fractions[i]);
  engine_mask_free (m);
}

/* ---- results ------------------------------------------------------------ */

GST_START_TEST (test_formats_match_engine)
{
  static const gint sizes[][2] = { {64, 64}, {97, 61} };
  VimMaskSpec grid = { VIM_MASK_SIZE_GRID, 0, 0 };
  guint f, s, seed;

  for (f = 0; f < G_N_ELEMENTS (all_formats); f++) {
    for (s = 0; s < G_N_ELEMENTS (sizes); s++) {
      GstVideoFormat format = all_formats[f];
      gint w = sizes[s][0], hgt = sizes[s][1];
      GstHarness *h = segment_harness (NULL, format, w, hgt);

      for (seed = 0; seed < 2; seed++) {
        GstBuffer *out = gst_harness_push_and_pull (h,
            vim_test_frame_at (format, w, hgt, seed + 10 * s, seed));
        GstVimSegmentationMeta *meta = get_meta (out);

        /* grid: the model's token grid over the whole frame */
        fail_unless_equals_int (meta->mask_width, GRID);
        fail_unless_equals_int (meta->mask_height, GRID);
        fail_unless_equals_float (meta->x, 0.0);
        fail_unless_equals_float (meta->y, 0.0);
        fail_unless_equals_float (meta->width, w);
        fail_unless_equals_float (meta->height, hgt);
        fail_unless (meta->confidence == NULL);
        fail_unless (meta->fresh);
        fail_unless_equals_uint64 (meta->frame_number, seed);
        assert_matches_engine (seg_model_path (), out, format, w, hgt, &grid);
        gst_buffer_unref (out);
      }
      gst_harness_teardown (h);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_mask_sizes)
{
  static const struct
  {
    const gchar *props;
    VimMaskSpec spec;
    gint w, h;
  } cases[] = {
    {"mask-size=grid", {VIM_MASK_SIZE_GRID, 0, 0}, GRID, GRID},
    {"mask-size=frame", {VIM_MASK_SIZE_FRAME, 0, 0}, 97, 61},
    {"mask-size=33x17", {VIM_MASK_SIZE_FIXED, 33, 17}, 33, 17},
    {"mask-size=1x1", {VIM_MASK_SIZE_FIXED, 1, 1}, 1, 1},
    {"mask-size=FRAME confidence=true", {VIM_MASK_SIZE_FRAME, 0, 0}, 97, 61},
    {"mask-size=200X150 confidence=true", {VIM_MASK_SIZE_FIXED, 200, 150},
        200, 150},
  };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstHarness *h = segment_harness (cases[c].props, GST_VIDEO_FORMAT_RGB, 97,
        61);
    GstBuffer *out = gst_harness_push_and_pull (h,
        vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 97, 61, 5 + c, 0));
    GstVimSegmentationMeta *meta = get_meta (out);
    gboolean conf = strstr (cases[c].props, "confidence") != NULL;

    GST_INFO ("%s: %ux%u", cases[c].props, meta->mask_width,
        meta->mask_height);
    fail_unless_equals_int (meta->mask_width, cases[c].w);
    fail_unless_equals_int (meta->mask_height, cases[c].h);
    fail_unless_equals_float (meta->width, 97);
    fail_unless_equals_float (meta->height, 61);
    fail_unless_equals_int (meta->confidence != NULL, conf);
    assert_matches_engine (seg_model_path (), out, GST_VIDEO_FORMAT_RGB, 97,
        61, &cases[c].spec);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* The meta's own values: labels, fractions, the class lookup. */
GST_START_TEST (test_meta_values)
{
  GstHarness *h = segment_harness ("mask-size=frame confidence=true",
      GST_VIDEO_FORMAT_BGRx, 80, 60);
  GstBuffer *out = gst_harness_push_and_pull (h,
      vim_test_frame_at (GST_VIDEO_FORMAT_BGRx, 80, 60, 1, 0));
  GstVimSegmentationMeta *meta = get_meta (out);
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (meta->mask);
  GstVideoMeta *cmeta = gst_buffer_get_video_meta (meta->confidence);
  GstMapInfo map, cmap;
  gdouble sum = 0.0;
  guint counts[N_CLASSES] = { 0 };
  guint i, x, y;

  fail_unless (meta->model != NULL && *meta->model);
  fail_unless (meta->labels != NULL);
  for (i = 0; i < N_CLASSES; i++) {
    gchar *expect = g_strdup_printf ("class_%u", i);

    fail_unless_equals_string (meta->labels[i], expect);
    g_free (expect);
    sum += meta->fractions[i];
  }
  fail_unless (fabs (sum - 1.0) < 1e-5, "fractions sum to %g", sum);

  fail_unless (gst_buffer_map (meta->mask, &map, GST_MAP_READ));
  fail_unless (gst_buffer_map (meta->confidence, &cmap, GST_MAP_READ));
  for (y = 0; y < 60; y++)
    for (x = 0; x < 80; x++) {
      guint8 c = map.data[vmeta->offset[0] + y * vmeta->stride[0] + x];
      guint8 p = cmap.data[cmeta->offset[0] + y * cmeta->stride[0] + x];

      fail_unless (c < N_CLASSES, "class %u", c);
      /* the argmax takes at least 1 / K of the softmax */
      fail_unless (p >= 255 / N_CLASSES, "confidence %u", p);
      counts[c]++;
      /* one mask pixel per frame pixel */
      fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
              x + 0.5, y + 0.5), c);
    }
  gst_buffer_unmap (meta->mask, &map);
  gst_buffer_unmap (meta->confidence, &cmap);
  for (i = 0; i < N_CLASSES; i++)
    fail_unless (fabs (meta->fractions[i] - counts[i] / 4800.0) < 1e-6,
        "class %u: fraction %g, counted %u of 4800", i, meta->fractions[i],
        counts[i]);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta, 80,
          10), -1);

  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A short-side-crop model sees the centre crop: the mask covers only it. */
GST_START_TEST (test_crop_rectangle)
{
  GstElement *e = make_segment ("mask-size=frame");
  GstHarness *h;
  GstBuffer *out;
  GstVimSegmentationMeta *meta;
  VimMaskSpec frame = { VIM_MASK_SIZE_FRAME, 0, 0 };

  g_object_set (e, "model-file", seg_crop_model_path (), NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=I420,width=128,height=64,framerate=30/1");
  out = gst_harness_push_and_pull (h, vim_test_frame_at (GST_VIDEO_FORMAT_I420, 128, 64,
          3, 0));
  meta = get_meta (out);
  GST_INFO ("crop rectangle %g,%g %gx%g", meta->x, meta->y, meta->width,
      meta->height);
  /* narrower than the frame, centred */
  fail_unless (meta->width < 128 && meta->x > 0);
  fail_unless (fabs (meta->x + meta->width / 2 - 64) < 1.0);
  assert_matches_engine (seg_crop_model_path (), out, GST_VIDEO_FORMAT_I420,
      128, 64, &frame);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta, 0.5,
          32), -1);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- interval and batching ---------------------------------------------- */

GST_START_TEST (test_interval_stale)
{
  GstHarness *h = segment_harness ("inference-interval=3 mask-size=frame",
      GST_VIDEO_FORMAT_NV12, 64, 48);
  VimMaskSpec frame = { VIM_MASK_SIZE_FRAME, 0, 0 };
  GstBuffer *fresh_buf = NULL;
  guint i;

  for (i = 0; i < 8; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        vim_test_frame_at (GST_VIDEO_FORMAT_NV12, 64, 48, 100 + i, i));
    GstVimSegmentationMeta *meta = get_meta (out);

    fail_unless_equals_uint64 (meta->frame_number, i);
    if (i % 3 == 0) {
      fail_unless (meta->fresh, "frame %u should be fresh", i);
      fail_unless_equals_int (meta->age, 0);
      assert_matches_engine (seg_model_path (), out, GST_VIDEO_FORMAT_NV12,
          64, 48, &frame);
      if (fresh_buf)            /* a new mask, not the old one */
        fail_unless (meta->mask != get_meta (fresh_buf)->mask);
      gst_clear_buffer (&fresh_buf);
      fresh_buf = gst_buffer_ref (out);
    } else {
      GstVimSegmentationMeta *fm = get_meta (fresh_buf);

      fail_unless (!meta->fresh, "frame %u should be stale", i);
      fail_unless_equals_int (meta->age, i % 3);
      /* the last fresh mask itself, shared */
      fail_unless (meta->mask == fm->mask);
      fail_unless_equals_float (meta->width, fm->width);
      fail_unless_equals_float (meta->fractions[0], fm->fractions[0]);
    }
    gst_buffer_unref (out);
  }
  gst_clear_buffer (&fresh_buf);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_batch_eos)
{
  GstHarness *h = segment_harness ("batch-size=4 mask-size=24x20",
      GST_VIDEO_FORMAT_RGBA, 64, 64);
  VimMaskSpec fixed = { VIM_MASK_SIZE_FIXED, 24, 20 };
  GstBuffer *outs[6];
  GstEvent *ev;
  guint i;

  /* held until the batch is full */
  for (i = 0; i < 3; i++)
    fail_unless_equals_int (gst_harness_push (h, vim_test_frame_at
            (GST_VIDEO_FORMAT_RGBA, 64, 64, 200 + i, i)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  fail_unless_equals_int (gst_harness_push (h, vim_test_frame_at (GST_VIDEO_FORMAT_RGBA,
              64, 64, 203, 3)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  /* a partial batch goes out at EOS */
  for (i = 4; i < 6; i++)
    fail_unless_equals_int (gst_harness_push (h, vim_test_frame_at
            (GST_VIDEO_FORMAT_RGBA, 64, 64, 200 + i, i)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 6);

  for (i = 0; i < 6; i++) {
    GstVimSegmentationMeta *meta;

    outs[i] = gst_harness_pull (h);
    meta = get_meta (outs[i]);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (outs[i]), i * GST_SECOND / 30);
    fail_unless_equals_uint64 (meta->frame_number, i);
    fail_unless (meta->fresh);
    /* each frame its own mask, as if run alone */
    assert_matches_engine (seg_model_path (), outs[i], GST_VIDEO_FORMAT_RGBA,
        64, 64, &fixed);
    if (i > 0)
      fail_unless (meta->mask != get_meta (outs[i - 1])->mask);
  }
  for (i = 0; i < 6; i++)
    gst_buffer_unref (outs[i]);
  while ((ev = gst_harness_try_pull_event (h))) {
    GstEventType type = GST_EVENT_TYPE (ev);
    gst_event_unref (ev);
    if (type == GST_EVENT_EOS)
      break;
  }
  fail_unless (ev != NULL, "no EOS");
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- messages ----------------------------------------------------------- */

GST_START_TEST (test_messages)
{
  GstHarness *h = segment_harness ("post-messages=true inference-interval=2",
      GST_VIDEO_FORMAT_RGB, 64, 64);
  GstBus *bus = gst_bus_new ();
  guint i;

  gst_element_set_bus (h->element, bus);
  for (i = 0; i < 3; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64, 7 + i, i));
    GstVimSegmentationMeta *meta = get_meta (out);
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
    const GstStructure *s;
    const GValue *fractions, *labels;
    guint64 frame_number, ts;
    gboolean fresh;
    guint age, k, top = 0;
    gint mw, mh, top_id;
    gdouble width, top_fraction;

    fail_unless (msg != NULL, "no message for frame %u", i);
    s = gst_message_get_structure (msg);
    fail_unless (gst_structure_has_name (s, "vim-segmentation"));
    fail_unless (gst_structure_get_uint64 (s, "frame-number", &frame_number));
    fail_unless_equals_uint64 (frame_number, i);
    fail_unless (gst_structure_get_uint64 (s, "timestamp", &ts));
    fail_unless_equals_uint64 (ts, GST_BUFFER_PTS (out));
    fail_unless (gst_structure_get_boolean (s, "fresh", &fresh));
    fail_unless_equals_int (fresh, meta->fresh);
    fail_unless_equals_int (fresh, i % 2 == 0);
    fail_unless (gst_structure_get_uint (s, "age", &age));
    fail_unless_equals_int (age, meta->age);
    fail_unless_equals_string (gst_structure_get_string (s, "model"),
        meta->model);
    fail_unless (gst_structure_get_int (s, "mask-width", &mw));
    fail_unless (gst_structure_get_int (s, "mask-height", &mh));
    fail_unless_equals_int (mw, GRID);
    fail_unless_equals_int (mh, GRID);
    fail_unless (gst_structure_get_double (s, "width", &width));
    fail_unless_equals_float (width, 64.0);
    fractions = gst_structure_get_value (s, "fractions");
    labels = gst_structure_get_value (s, "labels");
    fail_unless_equals_int (gst_value_array_get_size (fractions), N_CLASSES);
    fail_unless_equals_int (gst_value_array_get_size (labels), N_CLASSES);
    for (k = 0; k < N_CLASSES; k++) {
      gdouble f = g_value_get_double (gst_value_array_get_value (fractions, k));

      fail_unless_equals_float (f, meta->fractions[k]);
      fail_unless_equals_string (g_value_get_string (gst_value_array_get_value
              (labels, k)), meta->labels[k]);
      if (meta->fractions[k] > meta->fractions[top])
        top = k;
    }
    fail_unless (gst_structure_get_int (s, "top-class-id", &top_id));
    fail_unless_equals_int (top_id, top);
    fail_unless (gst_structure_get_double (s, "top-fraction", &top_fraction));
    fail_unless_equals_float (top_fraction, meta->fractions[top]);
    fail_unless_equals_string (gst_structure_get_string (s, "top-label"),
        meta->labels[top]);
    gst_message_unref (msg);
    gst_buffer_unref (out);
  }
  vim_test_detach_bus (h->element, bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- errors ------------------------------------------------------------- */

GST_START_TEST (test_missing_model)
{
  GstElement *e = make_segment ("model-file=/nonexistent/dir/seg.safetensors");

  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      "/nonexistent/dir/seg.safetensors");
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_corrupt_model)
{
  gchar *dir = g_dir_make_tmp ("vimsegment-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "cut.safetensors", NULL);
  gchar *contents;
  gsize size;
  GstElement *e;

  /* a real segmenter cut short */
  fail_unless (g_file_get_contents (seg_model_path (), &contents, &size, NULL));
  fail_unless (g_file_set_contents (path, contents, size / 2, NULL));
  e = make_segment (NULL);
  g_object_set (e, "model-file", path, NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED, path);
  gst_object_unref (e);

  /* garbage */
  fail_unless (g_file_set_contents (path, "not a model", -1, NULL));
  e = make_segment (NULL);
  g_object_set (e, "model-file", path, NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED, path);
  gst_object_unref (e);

  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  g_free (contents);
}

GST_END_TEST;

/* Each element refuses the other task's model, saying so. */
GST_START_TEST (test_wrong_task)
{
  GstElement *e = make_segment (NULL);

  g_object_set (e, "model-file", vim_test_model_path (), NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
      "is a classification model; vimsegment");
  gst_object_unref (e);

  e = gst_element_factory_make ("vimclassify", NULL);
  fail_unless (e != NULL);
  g_object_set (e, "model-file", seg_model_path (), "device", 1, NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
      "is a segmentation model; vimclassify");
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_bad_mask_size)
{
  static const gchar *bad[] = { "12y", "x12", "0x5", "5x0", "16385x2",
    "64x", "-3x4", "10x10x10", "", "grid ", "99999999999999999999x2",
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    GstElement *e = make_segment (NULL);

    g_object_set (e, "mask-size", bad[i], NULL);
    GST_INFO ("mask-size \"%s\"", bad[i]);
    vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
        "mask-size");
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_default_model)
{
  GstElement *e = gst_element_factory_make ("vimsegment", NULL);
  gchar *path = NULL, *mask_size = NULL;
  gboolean confidence = TRUE;

  g_object_get (e, "model-file", &path, "mask-size", &mask_size, "confidence",
      &confidence, NULL);
  fail_unless (path != NULL);
  fail_unless (g_str_has_suffix (path, "vim-camvid-segmentation.safetensors"),
      "%s", path);
  fail_unless_equals_string (mask_size, "grid");
  fail_unless (!confidence);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_object_set (e, "device", 1, NULL);
    vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "vim-camvid-segmentation.safetensors");
  }
  g_free (path);
  g_free (mask_size);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_ready_only_properties)
{
  static const gchar *names[] = { "mask-size", "confidence", "model-file" };
  GstElement *e = gst_element_factory_make ("vimsegment", NULL);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (names); i++) {
    GParamSpec *p = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
        names[i]);

    fail_unless (p != NULL, "%s", names[i]);
    fail_unless (p->flags & GST_PARAM_MUTABLE_READY, "%s", names[i]);
  }
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
vimsegment_suite (void)
{
  Suite *s = suite_create ("vimsegment");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_formats_match_engine);
  tcase_add_test (tc, test_mask_sizes);
  tcase_add_test (tc, test_meta_values);
  tcase_add_test (tc, test_crop_rectangle);
  tcase_add_test (tc, test_interval_stale);
  tcase_add_test (tc, test_batch_eos);
  tcase_add_test (tc, test_messages);
  tcase_add_test (tc, test_missing_model);
  tcase_add_test (tc, test_corrupt_model);
  tcase_add_test (tc, test_wrong_task);
  tcase_add_test (tc, test_bad_mask_size);
  tcase_add_test (tc, test_default_model);
  tcase_add_test (tc, test_ready_only_properties);
  return s;
}

GST_CHECK_MAIN (vimsegment);
