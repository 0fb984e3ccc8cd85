/* gst-vim GStreamer tests: vimsegment on memory:CUDAMemory frames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Needs a GPU, an engine built with the CUDA backend and the nvcodec
 * plugin (cudaupload); skipped (exit status 77) otherwise. The same
 * videotestsrc frames go once through cudaupload ! vimsegment device=cuda
 * and once through vimsegment device=cpu in system memory; the CUDA masks
 * must reach vimsegment as memory:CUDAMemory and agree with the CPU ones on
 * at least 99.9 % of the pixels (the GPU sums in another order, so a pixel
 * whose two best classes are within rounding may flip).
 */
#include <string.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

#include "vimtestutil.h"

#define N_FRAMES 8
#define WIDTH 320
#define HEIGHT 240

typedef struct
{
  GPtrArray *masks;             /* the mask buffers, in frame order */
  GPtrArray *confidences;
  gboolean cuda_caps;
} Run;

static GstFlowReturn
on_sample (GstElement * sink, Run * r)
{
  GstSample *sample = NULL;
  GstVimSegmentationMeta *meta;

  g_signal_emit_by_name (sink, "pull-sample", &sample);
  fail_unless (sample != NULL);
  meta = gst_buffer_get_vim_segmentation_meta (gst_sample_get_buffer (sample));
  fail_unless (meta != NULL, "frame %u without meta", r->masks->len);
  fail_unless (meta->fresh);
  /* mask-size=frame over the whole (stretched) frame */
  fail_unless_equals_int (meta->mask_width, WIDTH);
  fail_unless_equals_int (meta->mask_height, HEIGHT);
  fail_unless_equals_float (meta->width, WIDTH);
  fail_unless (meta->confidence != NULL);
  g_ptr_array_add (r->masks, gst_buffer_ref (meta->mask));
  g_ptr_array_add (r->confidences, gst_buffer_ref (meta->confidence));
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

static void
run (const gchar * launch, Run * r)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *s, *sink;
  GstMessage *msg;
  GstPad *pad;
  GstCaps *caps;

  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  r->masks = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  r->confidences =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "emit-signals", TRUE, "sync", FALSE, NULL);
  g_signal_connect (sink, "new-sample", G_CALLBACK (on_sample), r);

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
      120 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "timeout");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *debug = NULL;
    gst_message_parse_error (msg, &err, &debug);
    fail ("%s (%s)", err->message, debug);
  }
  gst_message_unref (msg);

  s = gst_bin_get_by_name (GST_BIN (pipeline), "s");
  pad = gst_element_get_static_pad (s, "sink");
  caps = gst_pad_get_current_caps (pad);
  fail_unless (caps != NULL);
  {
    gchar *str = gst_caps_to_string (caps);
    g_print ("vimsegment sink caps: %s\n", str);
    g_free (str);
  }
  r->cuda_caps = gst_caps_features_contains (gst_caps_get_features (caps, 0),
      "memory:CUDAMemory");
  gst_caps_unref (caps);
  gst_object_unref (pad);
  gst_object_unref (s);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
}

/* Pixels (of all frames) where two GRAY8 masks agree; for confidences,
 * within @tolerance. */
static guint64
count_equal (GPtrArray * a, GPtrArray * b, gint tolerance)
{
  guint64 equal = 0;
  guint i;

  fail_unless_equals_int (a->len, b->len);
  for (i = 0; i < a->len; i++) {
    GstBuffer *ba = g_ptr_array_index (a, i), *bb = g_ptr_array_index (b, i);
    GstVideoMeta *va = gst_buffer_get_video_meta (ba);
    GstVideoMeta *vb = gst_buffer_get_video_meta (bb);
    GstMapInfo ma, mb;
    guint x, y;

    fail_unless (gst_buffer_map (ba, &ma, GST_MAP_READ));
    fail_unless (gst_buffer_map (bb, &mb, GST_MAP_READ));
    for (y = 0; y < HEIGHT; y++)
      for (x = 0; x < WIDTH; x++) {
        gint pa = ma.data[va->offset[0] + y * va->stride[0] + x];
        gint pb = mb.data[vb->offset[0] + y * vb->stride[0] + x];

        equal += ABS (pa - pb) <= tolerance;
      }
    gst_buffer_unmap (ba, &ma);
    gst_buffer_unmap (bb, &mb);
  }
  return equal;
}

GST_START_TEST (test_cudaupload_matches_cpu)
{
  static const gchar *formats[] = { "NV12", "I420", "RGBA" };
  const gchar *model = g_getenv ("VIM_TEST_SEG_MODEL");
  guint i;

  fail_unless (model != NULL, "VIM_TEST_SEG_MODEL is not set");
  if (!vim_test_have_element ("cudaupload")) {
    GST_WARNING ("no cudaupload: skipped");
    g_print ("no cudaupload: skipped\n");
    return;
  }
  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    Run gpu = { 0 }, cpu = { 0 };
    const gchar *src = "videotestsrc num-buffers=" G_STRINGIFY (N_FRAMES)
        " pattern=smpte ! video/x-raw,format=%s,width=" G_STRINGIFY (WIDTH)
        ",height=" G_STRINGIFY (HEIGHT) ",framerate=30/1 ! ";
    gchar *head = g_strdup_printf (src, formats[i]);
    gchar *launch;
    guint64 total = (guint64) N_FRAMES * WIDTH * HEIGHT, same, conf;

    launch = g_strdup_printf ("%s cudaupload ! video/x-raw(memory:CUDAMemory) ! "
        "vimsegment name=s device=cuda mask-size=frame confidence=true "
        "model-file=\"%s\" ! appsink name=sink", head, model);
    run (launch, &gpu);
    g_free (launch);
    launch = g_strdup_printf ("%s vimsegment name=s device=cpu "
        "mask-size=frame confidence=true model-file=\"%s\" ! "
        "appsink name=sink", head, model);
    run (launch, &cpu);
    g_free (launch);
    g_free (head);

    fail_unless (gpu.cuda_caps, "%s: not memory:CUDAMemory", formats[i]);
    fail_if (cpu.cuda_caps);
    fail_unless_equals_int (gpu.masks->len, N_FRAMES);
    same = count_equal (gpu.masks, cpu.masks, 0);
    conf = count_equal (gpu.confidences, cpu.confidences, 2);
    g_print ("%s: classes agree on %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
        " pixels (%.4f %%), confidence within 2 on %.4f %%\n", formats[i],
        same, total, 100.0 * same / total, 100.0 * conf / total);
    fail_unless (same * 1000 >= total * 999, "%s: classes agree on %.4f %%",
        formats[i], 100.0 * same / total);
    fail_unless (conf * 1000 >= total * 999, "%s: confidence agrees on %.4f %%",
        formats[i], 100.0 * conf / total);

    g_ptr_array_unref (gpu.masks);
    g_ptr_array_unref (gpu.confidences);
    g_ptr_array_unref (cpu.masks);
    g_ptr_array_unref (cpu.confidences);
  }
}

GST_END_TEST;

static Suite *
vimsegment_cuda_suite (void)
{
  Suite *s = suite_create ("vimsegment_cuda");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_cudaupload_matches_cpu);
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
  return gst_check_run_suite (vimsegment_cuda_suite (), "vimsegment_cuda",
      __FILE__);
}
