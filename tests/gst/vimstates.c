/* gst-vim GStreamer tests: state changes, many times, without leaks.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Runs NULL -> PLAYING -> NULL VIM_TEST_STATE_CYCLES times (1000 by
 * default) with frames flowing, and NULL <-> READY without a model. Leaks
 * are caught twice: GstObjects and GstMiniObjects by the leaks tracer
 * (GST_TRACERS=leaks: at gst_deinit() it warns about every object still
 * alive, and gst-check makes warnings fatal), and plain heap blocks by
 * LeakSanitizer, which the test binary is linked with (exit status 23 when
 * something is lost).
 */
#include <gst/check/gstcheck.h>

#include "vimtestutil.h"

static guint
n_cycles (void)
{
  const gchar *s = g_getenv ("VIM_TEST_STATE_CYCLES");

  return s ? (guint) g_ascii_strtoull (s, NULL, 10) : 1000;
}

static GstElement *
make_pipeline (const gchar * props)
{
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=3 pattern=ball ! "
      "video/x-raw,format=RGB,width=64,height=48,framerate=30/1 ! "
      "vimclassify name=c device=cpu post-messages=true model-file=\"%s\" %s ! "
      "fakesink sync=false", vim_test_model_path (), props);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);

  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  g_free (desc);
  return pipeline;
}

static void
cycle (GstElement * pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstStateChangeReturn ret;

  ret = gst_element_set_state (pipeline, GST_STATE_PLAYING);
  fail_if (ret == GST_STATE_CHANGE_FAILURE);
  ret = gst_element_get_state (pipeline, NULL, NULL, 10 * GST_SECOND);
  fail_unless_equals_int (ret, GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  /* the messages of the cycle, element messages included */
  gst_bus_set_flushing (bus, TRUE);
  gst_bus_set_flushing (bus, FALSE);
  gst_object_unref (bus);
}

static void
run_cycles (const gchar * props)
{
  GstElement *pipeline;
  guint i, n = n_cycles ();
  gint64 start;

  start = g_get_monotonic_time ();
  pipeline = make_pipeline (props);
  for (i = 0; i < n; i++)
    cycle (pipeline);
  gst_object_unref (pipeline);
  GST_INFO ("%u cycles (%s) in %.2f s", n, props,
      (g_get_monotonic_time () - start) / 1e6);
}

GST_START_TEST (test_cycle_playing)
{
  run_cycles ("");
}

GST_END_TEST;

/* frames held for a batch when the pipeline stops are freed */
GST_START_TEST (test_cycle_playing_batched)
{
  run_cycles ("batch-size=4 inference-interval=2");
}

GST_END_TEST;

GST_START_TEST (test_cycle_ready_without_model)
{
  GstElement *e = gst_element_factory_make ("vimclassify", NULL);
  guint i, n = n_cycles ();

  g_object_set (e, "model-file", "/nonexistent.safetensors", NULL);
  for (i = 0; i < n; i++) {
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_READY),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
vimstates_suite (void)
{
  Suite *s = suite_create ("vimstates");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_cycle_playing);
  tcase_add_test (tc, test_cycle_playing_batched);
  tcase_add_test (tc, test_cycle_ready_without_model);
  return s;
}

GST_CHECK_MAIN (vimstates);
