/* gst-vim GStreamer tests: shared helpers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <gst/check/gstcheck.h>

#include "vimtestutil.h"

const gchar *
vim_test_model_path (void)
{
  const gchar *path = g_getenv ("VIM_TEST_MODEL");

  fail_unless (path != NULL, "VIM_TEST_MODEL is not set (run through meson test)");
  return path;
}

const gchar *
vim_test_labels_path (void)
{
  const gchar *path = g_getenv ("VIM_TEST_LABELS");

  fail_unless (path != NULL, "VIM_TEST_LABELS is not set (run through meson test)");
  return path;
}

GstBuffer *
vim_test_make_frame (GstVideoFormat format, gint width, gint height, guint seed)
{
  GstVideoInfo rgb_info, info;
  GstVideoFrame in, out;
  GstVideoConverter *conv;
  GstBuffer *rgb, *buffer;
  GRand *rand = g_rand_new_with_seed (seed);
  guint8 colors[4][3];
  gint x, y, i, c;

  for (i = 0; i < 4; i++)
    for (c = 0; c < 3; c++)
      colors[i][c] = g_rand_int_range (rand, 0, 256);

  gst_video_info_set_format (&rgb_info, GST_VIDEO_FORMAT_RGB, width, height);
  rgb = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&rgb_info), NULL);
  fail_unless (gst_video_frame_map (&in, &rgb_info, rgb, GST_MAP_WRITE));
  for (y = 0; y < height; y++) {
    guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&in, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&in, 0);

    for (x = 0; x < width; x++) {
      /* four coloured quadrants over a diagonal gradient */
      gint q = (x * 2 / width) + 2 * (y * 2 / height);
      gint g = (x + y) * 255 / (width + height);

      for (c = 0; c < 3; c++)
        row[3 * x + c] = (colors[q][c] + g * (c + 1)) & 0xff;
    }
  }
  g_rand_free (rand);

  gst_video_info_set_format (&info, format, width, height);
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&out, &info, buffer, GST_MAP_WRITE));
  conv = gst_video_converter_new (&rgb_info, &info, NULL);
  gst_video_converter_frame (conv, &in, &out);
  gst_video_converter_free (conv);
  gst_video_frame_unmap (&out);
  gst_video_frame_unmap (&in);
  gst_buffer_unref (rgb);
  return buffer;
}

static VimModel *engine_model;
static VimRunner *engine_runner;

static void
ensure_engine (void)
{
  GError *err = NULL;
  VimRunnerOptions opt;

  if (engine_runner)
    return;
  engine_model = vim_model_open (vim_test_model_path (), &err);
  fail_unless (engine_model != NULL, "%s", err ? err->message : "?");
  vim_runner_options_init (&opt);
  opt.device = VIM_DEVICE_CPU;
  engine_runner = vim_runner_new (engine_model, &opt, &err);
  fail_unless (engine_runner != NULL, "%s", err ? err->message : "?");
}

gint
vim_test_engine_top_k (const GstVideoInfo * info, GstBuffer * buffer, gint k,
    gfloat threshold, VimClassScore * out)
{
  GstVideoFrame vframe;
  VimFrame frame = { 0 };
  GError *err = NULL;
  const VimModelConfig *cfg;
  gfloat *logits, *probs;
  guint i;
  gint n;

  ensure_engine ();
  cfg = vim_model_get_config (engine_model);

  fail_unless (gst_video_frame_map (&vframe, info, buffer, GST_MAP_READ));
  switch (GST_VIDEO_FRAME_FORMAT (&vframe)) {
    case GST_VIDEO_FORMAT_RGB:
      frame.format = VIM_PIXEL_RGB;
      break;
    case GST_VIDEO_FORMAT_RGBA:
      frame.format = VIM_PIXEL_RGBA;
      break;
    case GST_VIDEO_FORMAT_RGBx:
      frame.format = VIM_PIXEL_RGBX;
      break;
    case GST_VIDEO_FORMAT_BGR:
      frame.format = VIM_PIXEL_BGR;
      break;
    case GST_VIDEO_FORMAT_BGRA:
      frame.format = VIM_PIXEL_BGRA;
      break;
    case GST_VIDEO_FORMAT_BGRx:
      frame.format = VIM_PIXEL_BGRX;
      break;
    case GST_VIDEO_FORMAT_NV12:
      frame.format = VIM_PIXEL_NV12;
      break;
    case GST_VIDEO_FORMAT_I420:
      frame.format = VIM_PIXEL_I420;
      break;
    case GST_VIDEO_FORMAT_GRAY8:
      frame.format = VIM_PIXEL_GRAY8;
      break;
    default:
      fail ("format not handled by the test");
  }
  frame.width = GST_VIDEO_FRAME_WIDTH (&vframe);
  frame.height = GST_VIDEO_FRAME_HEIGHT (&vframe);
  frame.memory = VIM_MEMORY_HOST;
  for (i = 0; i < GST_VIDEO_FRAME_N_PLANES (&vframe); i++) {
    frame.planes[i] = GST_VIDEO_FRAME_PLANE_DATA (&vframe, i);
    frame.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&vframe, i);
  }

  logits = g_new (gfloat, cfg->num_classes);
  probs = g_new (gfloat, cfg->num_classes);
  fail_unless (vim_runner_classify (engine_runner, &frame, 1, logits, &err),
      "%s", err ? err->message : "?");
  gst_video_frame_unmap (&vframe);
  vim_softmax (logits, cfg->num_classes, probs);
  n = vim_top_k (engine_model, probs, cfg->num_classes, k, threshold, out);
  g_free (probs);
  g_free (logits);
  return n;
}

GstBus *
vim_test_attach_bus (GstElement * element)
{
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (element, bus);
  return bus;
}

void
vim_test_detach_bus (GstElement * element, GstBus * bus)
{
  gst_element_set_bus (element, NULL);
  gst_object_unref (bus);
}

GstStateChangeReturn
vim_test_set_state (GstElement * element, GstState state, GstBus * bus,
    GError ** error, gchar ** debug)
{
  GstStateChangeReturn ret = gst_element_set_state (element, state);
  GstMessage *msg;
  gboolean got_error = FALSE;

  if (ret == GST_STATE_CHANGE_ASYNC)
    ret = gst_element_get_state (element, NULL, NULL, 5 * GST_SECOND);

  if (error)
    *error = NULL;
  if (debug)
    *debug = NULL;
  /* the first error, else the first warning */
  while ((msg = gst_bus_pop_filtered (bus,
              GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))) {
    gboolean is_error = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR;

    if (error && (*error == NULL || (is_error && !got_error))) {
      g_clear_error (error);
      if (debug)
        g_clear_pointer (debug, g_free);
      if (is_error)
        gst_message_parse_error (msg, error, debug);
      else
        gst_message_parse_warning (msg, error, debug);
      got_error = is_error;
    }
    gst_message_unref (msg);
  }
  return ret;
}

gboolean
vim_test_have_element (const gchar * factory)
{
  GstElementFactory *f = gst_element_factory_find (factory);

  if (f)
    gst_object_unref (f);
  return f != NULL;
}

GstBuffer *
vim_test_frame_at (GstVideoFormat format, gint width, gint height,
    guint seed, guint i)
{
  GstBuffer *buf = vim_test_make_frame (format, width, height, seed);

  GST_BUFFER_PTS (buf) = i * GST_SECOND / 30;
  GST_BUFFER_DTS (buf) = i * GST_SECOND / 30;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

void
vim_test_assert_start_fails (GstElement * e, GQuark domain, gint code,
    const gchar * in_message)
{
  GstBus *bus = vim_test_attach_bus (e);
  GError *err = NULL;
  gchar *debug = NULL;

  /* NULL <-> READY needs no model */
  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_READY, bus, &err,
          &debug), GST_STATE_CHANGE_SUCCESS);
  fail_unless (err == NULL);
  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_NULL, bus, NULL,
          NULL), GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_READY, bus, NULL,
          NULL), GST_STATE_CHANGE_SUCCESS);

  /* the model is loaded at READY -> PAUSED */
  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_PAUSED, bus, &err,
          &debug), GST_STATE_CHANGE_FAILURE);
  fail_unless (err != NULL, "no error posted");
  GST_INFO ("error: %s (%s)", err->message, debug);
  fail_unless (err->domain == domain, "domain %s", g_quark_to_string
      (err->domain));
  fail_unless_equals_int (err->code, code);
  if (in_message)
    fail_unless (strstr (err->message, in_message) != NULL,
        "\"%s\" does not name \"%s\"", err->message, in_message);
  g_clear_error (&err);
  g_free (debug);

  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_NULL, bus, NULL,
          NULL), GST_STATE_CHANGE_SUCCESS);
  vim_test_detach_bus (e, bus);
}

void
vim_test_set_props (GstElement * element, const gchar * props)
{
  gchar **kv = g_strsplit (props ? props : "", " ", -1), **p;

  for (p = kv; *p; p++) {
    gchar **nv;

    if (**p == '\0')
      continue;
    nv = g_strsplit (*p, "=", 2);
    fail_unless (nv[1] != NULL, "bad property %s", *p);
    gst_util_set_object_arg (G_OBJECT (element), nv[0], nv[1]);
    g_strfreev (nv);
  }
  g_strfreev (kv);
}

GstHarness *
vim_test_video_harness (GstElement * element, GstVideoFormat format,
    gint width, gint height)
{
  GstHarness *h = gst_harness_new_with_element (element, "sink", "src");
  gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1", gst_video_format_to_string (format), width, height);

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  return h;
}
