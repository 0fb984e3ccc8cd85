/* gst-vim GStreamer tests: vimclassify on memory:CUDAMemory frames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Needs a GPU, an engine built with the CUDA backend and the nvcodec
 * plugin (cudaupload, nvh264dec); skipped (exit status 77) otherwise.
 * Checks that the frames reach vimclassify as memory:CUDAMemory, that
 * every one leaves with its meta, and that the results agree with the CPU
 * engine on the same pixels.
 */
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

#include "vimtestutil.h"

#define N_FRAMES 12

typedef struct
{
  guint frames;
  guint top1_agree;
  gboolean cuda_caps;
} Result;

static GstFlowReturn
on_sample (GstElement * sink, Result * r)
{
  GstSample *sample = NULL;
  GstBuffer *buf;
  GstVimClassificationMeta *meta;
  GstVideoInfo info;
  VimClassScore ref[1];

  g_signal_emit_by_name (sink, "pull-sample", &sample);
  fail_unless (sample != NULL);
  buf = gst_sample_get_buffer (sample);
  meta = gst_buffer_get_vim_classification_meta (buf);
  fail_unless (meta != NULL, "frame %u without meta", r->frames);
  fail_unless (meta->n_results > 0);

  /* the CPU engine on the same pixels (mapping CUDA memory for reading on
   * the host downloads it) */
  fail_unless (gst_video_info_from_caps (&info, gst_sample_get_caps (sample)));
  fail_unless_equals_int (vim_test_engine_top_k (&info, buf, 1, 0.0f, ref), 1);
  if (ref[0].class_id == meta->results[0].class_id) {
    r->top1_agree++;
    fail_unless (fabsf (ref[0].score - meta->results[0].score) < 1e-3f,
        "frame %u: CUDA %g, CPU %g", r->frames, meta->results[0].score,
        ref[0].score);
  }
  r->frames++;
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

static void
run (const gchar * launch, Result * r)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *c, *sink;
  GstBus *bus;
  GstMessage *msg;
  GstPad *pad;
  GstCaps *caps;

  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "emit-signals", TRUE, "sync", FALSE, NULL);
  g_signal_connect (sink, "new-sample", G_CALLBACK (on_sample), r);

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "timeout");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *debug = NULL;
    gst_message_parse_error (msg, &err, &debug);
    fail ("%s (%s)", err->message, debug);
  }
  gst_message_unref (msg);

  c = gst_bin_get_by_name (GST_BIN (pipeline), "c");
  pad = gst_element_get_static_pad (c, "sink");
  caps = gst_pad_get_current_caps (pad);
  fail_unless (caps != NULL);
  GST_INFO ("vimclassify caps: %" GST_PTR_FORMAT, caps);
  {
    gchar *str = gst_caps_to_string (caps);
    g_print ("vimclassify sink caps: %s\n", str);
    g_free (str);
  }
  r->cuda_caps = gst_caps_features_contains (gst_caps_get_features (caps, 0),
      "memory:CUDAMemory");
  gst_caps_unref (caps);
  gst_object_unref (pad);
  gst_object_unref (c);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
}

GST_START_TEST (test_cudaupload)
{
  static const gchar *formats[] = { "NV12", "I420", "RGBA" };
  guint i;

  if (!vim_test_have_element ("cudaupload")) {
    GST_WARNING ("no cudaupload: skipped");
    return;
  }
  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    Result r = { 0 };
    gchar *launch = g_strdup_printf ("videotestsrc num-buffers=%d "
        "pattern=smpte ! video/x-raw,format=%s,width=320,height=240 ! "
        "cudaupload ! video/x-raw(memory:CUDAMemory) ! "
        "vimclassify name=c device=cuda model-file=\"%s\" ! "
        "appsink name=sink", N_FRAMES, formats[i], vim_test_model_path ());

    run (launch, &r);
    GST_INFO ("%s: %u frames, top-1 agrees on %u", formats[i], r.frames,
        r.top1_agree);
    fail_unless (r.cuda_caps, "%s: not memory:CUDAMemory", formats[i]);
    fail_unless_equals_int (r.frames, N_FRAMES);
    fail_unless (r.top1_agree >= N_FRAMES - 1, "top-1 agrees on %u of %u",
        r.top1_agree, r.frames);
    g_free (launch);
  }
}

GST_END_TEST;

GST_START_TEST (test_nvh264dec)
{
  gchar *dir, *clip, *launch;
  GstElement *enc;
  GError *err = NULL;
  Result r = { 0 };

  if (!vim_test_have_element ("nvh264dec") || !vim_test_have_element ("openh264enc") || !vim_test_have_element ("mp4mux")) {
    GST_WARNING ("no nvh264dec or openh264enc: skipped");
    return;
  }
  dir = g_dir_make_tmp ("vimcuda-XXXXXX", NULL);
  clip = g_build_filename (dir, "clip.mp4", NULL);
  launch = g_strdup_printf ("videotestsrc num-buffers=%d pattern=ball ! "
      "video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! "
      "openh264enc ! h264parse ! mp4mux ! filesink location=\"%s\"",
      N_FRAMES, clip);
  enc = gst_parse_launch (launch, &err);
  fail_unless (enc != NULL);
  gst_element_set_state (enc, GST_STATE_PLAYING);
  gst_message_unref (gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (enc),
          GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  gst_element_set_state (enc, GST_STATE_NULL);
  gst_object_unref (enc);
  g_free (launch);

  launch = g_strdup_printf ("filesrc location=\"%s\" ! qtdemux ! h264parse ! "
      "nvh264dec ! vimclassify name=c device=cuda model-file=\"%s\" ! "
      "appsink name=sink", clip, vim_test_model_path ());
  run (launch, &r);
  fail_unless (r.cuda_caps, "nvh264dec ! vimclassify not in CUDA memory");
  fail_unless_equals_int (r.frames, N_FRAMES);
  g_free (launch);
  g_unlink (clip);
  g_rmdir (dir);
  g_free (clip);
  g_free (dir);
}

GST_END_TEST;

static Suite *
vimclassify_cuda_suite (void)
{
  Suite *s = suite_create ("vimclassify_cuda");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_cudaupload);
  tcase_add_test (tc, test_nvh264dec);
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
  return gst_check_run_suite (vimclassify_cuda_suite (), "vimclassify_cuda",
      __FILE__);
}
