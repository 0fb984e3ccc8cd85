/* gst-vim GStreamer tests: vimoverlay on memory:CUDAMemory frames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Needs a GPU, an engine built with the CUDA backend and the nvcodec
 * plugin (cudaupload, cudadownload); skipped (exit status 77) otherwise.
 * The same frames with the same metas go through vimoverlay once in system
 * memory and once as cudaupload ! vimoverlay ! cudadownload: the pixels
 * must be equal byte for byte, and the CUDA run must really have been in
 * CUDA memory.
 */
#include <string.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

#include "vimtestutil.h"

#define N_FRAMES 6
#define WIDTH 320
#define HEIGHT 240
#define MASK_W 40
#define MASK_H 30

static const gchar *labels[] = { "void", "road", "car", "sky", "tree" };

/* Whether cudaupload can give this format in CUDA memory (1.22 lacks some). */
static gboolean
cuda_upload_takes (const gchar * format)
{
  GstElementFactory *f = gst_element_factory_find ("cudaupload");
  const GList *l;
  gboolean ok = FALSE;
  gchar *str = g_strdup_printf ("video/x-raw(memory:CUDAMemory),format=%s",
      format);
  GstCaps *want = gst_caps_from_string (str);

  for (l = gst_element_factory_get_static_pad_templates (f); l; l = l->next) {
    GstStaticPadTemplate *t = l->data;
    GstCaps *caps;

    if (t->direction != GST_PAD_SRC)
      continue;
    caps = gst_static_caps_get (&t->static_caps);
    ok = gst_caps_can_intersect (caps, want);
    gst_caps_unref (caps);
  }
  gst_caps_unref (want);
  g_free (str);
  gst_object_unref (f);
  return ok;
}

/* Attaches a mask that changes with the frame, and a classification, to
 * every buffer entering vimoverlay (after cudaupload, so that the metas
 * don't depend on what the upload keeps). */
static GstPadProbeReturn
add_metas (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  static const GstVimClassification results[] = {
    {2, 0.81f, "car"}, {1, 0.12f, "road"},
  };
  guint *n = user_data;
  GstBuffer *buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  GstBuffer *mask = gst_vim_segmentation_mask_new (MASK_W, MASK_H);
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (mask);
  GstMapInfo map;
  gint x, y;

  fail_unless (gst_buffer_map (mask, &map, GST_MAP_WRITE));
  for (y = 0; y < MASK_H; y++)
    for (x = 0; x < MASK_W; x++)
      map.data[vmeta->offset[0] + y * vmeta->stride[0] + x] =
          ((x + *n) / 7 + y / 5) % G_N_ELEMENTS (labels);
  gst_buffer_unmap (mask, &map);
  /* a rectangle that is not the whole frame, nor a multiple of the mask */
  fail_unless (gst_buffer_add_vim_segmentation_meta (buf, mask, NULL, 10, 6,
          300, 225, "test", G_N_ELEMENTS (labels), labels, NULL) != NULL);
  gst_buffer_unref (mask);
  fail_unless (gst_buffer_add_vim_classification_meta (buf, "test", 5,
          results, G_N_ELEMENTS (results)) != NULL);
  (*n)++;
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  return GST_PAD_PROBE_OK;
}

/* Runs @launch (with elements "o" and "sink") and returns the output
 * buffers; @cuda_caps tells whether vimoverlay got memory:CUDAMemory. */
static GList *
run (const gchar * launch, gboolean * cuda_caps, GstVideoInfo * info)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *o, *sink;
  GstPad *pad;
  GstCaps *caps;
  GstMessage *msg;
  GstSample *sample;
  GList *out = NULL;
  guint n = 0;

  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  o = gst_bin_get_by_name (GST_BIN (pipeline), "o");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (o, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, add_metas, &n, NULL);
  g_object_set (sink, "sync", FALSE, NULL);

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  /* until EOS (or an error: no sample for 20 s) */
  while ((sample = NULL, g_signal_emit_by_name (sink, "try-pull-sample",
              20 * GST_SECOND, &sample), sample != NULL)) {
    out = g_list_append (out, gst_buffer_ref (gst_sample_get_buffer (sample)));
    if (g_list_length (out) == 1)
      fail_unless (gst_video_info_from_caps (info,
              gst_sample_get_caps (sample)));
    gst_sample_unref (sample);
  }
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
      5 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (msg != NULL, "no EOS after %u frames", g_list_length (out));
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    fail ("%s (%s)", err->message, debug);
  }
  gst_message_unref (msg);

  caps = gst_pad_get_current_caps (pad);
  fail_unless (caps != NULL);
  *cuda_caps = gst_caps_features_contains (gst_caps_get_features (caps, 0),
      "memory:CUDAMemory");
  {
    gchar *str = gst_caps_to_string (caps);
    g_print ("vimoverlay sink caps: %s\n", str);
    g_free (str);
  }
  gst_caps_unref (caps);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (o);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return out;
}

/* Plane by plane, row by row (the two runs may have different strides). */
static void
assert_same_pixels (const GstVideoInfo * ia, GstBuffer * a,
    const GstVideoInfo * ib, GstBuffer * b, const gchar * what, guint frame)
{
  GstVideoFrame fa, fb;
  guint p;
  gint y;

  fail_unless (gst_video_frame_map (&fa, ia, a, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&fb, ib, b, GST_MAP_READ));
  for (p = 0; p < GST_VIDEO_FRAME_N_PLANES (&fa); p++) {
    gint rows = GST_VIDEO_FRAME_COMP_HEIGHT (&fa, p);
    gint bytes;

    /* the used bytes of a row, not the padding */
    if (GST_VIDEO_FRAME_N_PLANES (&fa) == 1)
      bytes = GST_VIDEO_FRAME_WIDTH (&fa) * GST_VIDEO_FRAME_COMP_PSTRIDE (&fa, 0);
    else if (GST_VIDEO_FRAME_FORMAT (&fa) == GST_VIDEO_FORMAT_NV12)
      bytes = GST_VIDEO_FRAME_WIDTH (&fa);
    else
      bytes = GST_VIDEO_FRAME_COMP_WIDTH (&fa, p);
    for (y = 0; y < rows; y++) {
      const guint8 *ra = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fa, p) +
          y * GST_VIDEO_FRAME_PLANE_STRIDE (&fa, p);
      const guint8 *rb = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&fb, p) +
          y * GST_VIDEO_FRAME_PLANE_STRIDE (&fb, p);
      gint x;

      for (x = 0; x < bytes; x++)
        fail_unless (ra[x] == rb[x], "%s frame %u plane %u byte %d,%d: "
            "system %u, CUDA %u", what, frame, p, x, y, ra[x], rb[x]);
    }
  }
  gst_video_frame_unmap (&fb);
  gst_video_frame_unmap (&fa);
}

GST_START_TEST (test_cuda_equals_system)
{
  static const gchar *formats[] = { "RGB", "RGBA", "RGBx", "BGR", "BGRA",
    "BGRx", "NV12", "I420"
  };
  const gchar *props = "alpha=0.6 contours=true show-legend=true "
      "classes=road,car,4 font-desc=\"Sans 12\"";
  guint i, f;

  if (!vim_test_have_element ("cudaupload") || !vim_test_have_element ("cudadownload")) {
    GST_WARNING ("no cudaupload/cudadownload: skipped");
    return;
  }
  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    gchar *src = g_strdup_printf ("videotestsrc num-buffers=%d pattern=smpte "
        "! video/x-raw,format=%s,width=%d,height=%d,framerate=30/1",
        N_FRAMES, formats[i], WIDTH, HEIGHT);
    gchar *sys = g_strdup_printf ("%s ! vimoverlay name=o %s ! "
        "appsink name=sink", src, props);
    gchar *gpu = g_strdup_printf ("%s ! cudaupload ! "
        "video/x-raw(memory:CUDAMemory) ! vimoverlay name=o %s ! "
        "cudadownload ! video/x-raw ! appsink name=sink", src, props);
    GstVideoInfo info_sys, info_gpu;
    gboolean cuda_sys, cuda_gpu;
    GList *a, *b, *la, *lb;

    if (!cuda_upload_takes (formats[i])) {
      g_print ("%s: cudaupload does not output it, skipped\n", formats[i]);
      g_free (gpu);
      g_free (sys);
      g_free (src);
      continue;
    }
    a = run (sys, &cuda_sys, &info_sys);
    b = run (gpu, &cuda_gpu, &info_gpu);
    fail_if (cuda_sys);
    fail_unless (cuda_gpu, "%s: vimoverlay not in memory:CUDAMemory",
        formats[i]);
    fail_unless_equals_int (g_list_length (a), N_FRAMES);
    fail_unless_equals_int (g_list_length (b), N_FRAMES);
    for (la = a, lb = b, f = 0; la && lb; la = la->next, lb = lb->next, f++)
      assert_same_pixels (&info_sys, la->data, &info_gpu, lb->data,
          formats[i], f);
    g_print ("%s: %d frames equal byte for byte\n", formats[i], N_FRAMES);

    g_list_free_full (a, (GDestroyNotify) gst_buffer_unref);
    g_list_free_full (b, (GDestroyNotify) gst_buffer_unref);
    g_free (gpu);
    g_free (sys);
    g_free (src);
  }
}

GST_END_TEST;

static Suite *
vimoverlay_cuda_suite (void)
{
  Suite *s = suite_create ("vimoverlay_cuda");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_cuda_equals_system);
  return s;
}

int
main (int argc, char **argv)
{
  int n_devices = 0;

  if (!vim_cuda_available (&n_devices, NULL)) {
    g_print ("no CUDA engine or GPU: skipped\n");
    return 77;
  }
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (vimoverlay_cuda_suite (), "vimoverlay_cuda",
      __FILE__);
}
