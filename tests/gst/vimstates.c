/* gst-vim GStreamer tests: state changes, many times, without leaks.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Runs NULL -> PLAYING -> NULL VIM_TEST_STATE_CYCLES times (1000 by
 * default) with frames flowing, and NULL <-> READY without a model. The
 * heavier pipelines of the other elements (vimsegment ! vimoverlay !
 * vimannotate, vimclassify ! vimoverlay ! vimannotate) run 3/10 of that
 * (300 by default), every other cycle to EOS (the JSON Lines file written
 * and renamed, checked and removed here) and every other one stopped
 * while frames flow (no file may be left: neither the result nor the
 * temporary one). Leaks
 * are caught twice: GstObjects and GstMiniObjects by the leaks tracer
 * (GST_TRACERS=leaks: at gst_deinit() it warns about every object still
 * alive, and gst-check makes warnings fatal), and plain heap blocks by
 * LeakSanitizer, which the test binary is linked with (exit status 23 when
 * something is lost).
 */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>

#include "vimtestutil.h"

/* LeakSanitizer suppressions built into the binary, added to those of
 * LSAN_OPTIONS (lsan.supp). Fontconfig 2.14 loses 288 bytes (2 blocks)
 * parsing its configuration in FcInit(), once per process: a program that
 * calls nothing but FcInit() reports the same. vimoverlay's Pango text
 * initialises it; the system library has no symbols for the frames, so the
 * suppression names the library. */
const char *__lsan_default_suppressions (void);

const char *
__lsan_default_suppressions (void)
{
  return "leak:libfontconfig.so\n";
}

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

/* ------------------------------------------------------------------ */
/* vimsegment, vimoverlay, vimannotate                                 */

static guint
n_heavy_cycles (void)
{
  return MAX (1, n_cycles () * 3 / 10);
}

static const gchar *
seg_model_path (void)
{
  const gchar *p = g_getenv ("VIM_TEST_SEG_MODEL");

  fail_unless (p != NULL, "VIM_TEST_SEG_MODEL is not set (run through meson test)");
  return p;
}

/* Fails unless @dir holds nothing but (when @allowed is set) @allowed. */
static void
assert_dir_holds_only (const gchar * dir, const gchar * allowed)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  fail_unless (d != NULL);
  while ((name = g_dir_read_name (d)) != NULL)
    fail_unless (allowed != NULL && g_str_equal (name, allowed),
        "%s left in %s", name, dir);
  g_dir_close (d);
}

/* Checks the JSON Lines file of a cycle run to EOS (@n_lines frames, every
 * line with @key) and removes it. */
static void
check_and_remove_jsonl (const gchar * path, guint n_lines, const gchar * key)
{
  gchar *contents = NULL, **lines;
  gsize size;
  guint i;

  fail_unless (g_file_get_contents (path, &contents, &size, NULL),
      "%s was not written at EOS", path);
  fail_unless (size > 0 && contents[size - 1] == '\n');
  contents[size - 1] = '\0';
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), n_lines);
  for (i = 0; i < n_lines; i++) {
    fail_unless (lines[i][0] == '{', "line %u: %s", i, lines[i]);
    fail_unless (strstr (lines[i], key) != NULL, "no %s in line %u: %s", key,
        i, lines[i]);
  }
  g_strfreev (lines);
  g_free (contents);
  fail_unless_equals_int (g_unlink (path), 0);
}

#define EOS_FRAMES 3

/* One NULL -> PLAYING -> NULL cycle of a pipeline with a videotestsrc named
 * "src": @to_eos, EOS_FRAMES frames and the cycle waits for EOS; else an
 * endless source stopped while frames flow. */
static void
cycle_frames (GstElement * pipeline, gboolean to_eos)
{
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstBus *bus = gst_element_get_bus (pipeline);
  GstStateChangeReturn ret;

  g_object_set (src, "num-buffers", to_eos ? EOS_FRAMES : -1, NULL);
  gst_object_unref (src);

  ret = gst_element_set_state (pipeline, GST_STATE_PLAYING);
  fail_if (ret == GST_STATE_CHANGE_FAILURE);
  ret = gst_element_get_state (pipeline, NULL, NULL, 10 * GST_SECOND);
  fail_unless_equals_int (ret, GST_STATE_CHANGE_SUCCESS);
  if (to_eos) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

    fail_unless (msg != NULL, "no EOS in 10 s");
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      fail ("error from %s: %s (%s)", GST_OBJECT_NAME (msg->src),
          err->message, dbg ? dbg : "");
    }
    gst_message_unref (msg);
  }
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (bus, TRUE);
  gst_bus_set_flushing (bus, FALSE);
  gst_object_unref (bus);
}

/* @desc_fmt: a pipeline with one %s for the annotation file's path. */
static void
run_annotated_cycles (const gchar * desc_fmt, const gchar * key)
{
  gchar *dir, *path, *desc;
  GstElement *pipeline;
  GError *err = NULL;
  guint i, n = n_heavy_cycles ();
  gint64 start = g_get_monotonic_time ();

  dir = g_dir_make_tmp ("vimstates-XXXXXX", &err);
  fail_unless (dir != NULL, "%s", err ? err->message : "?");
  path = g_build_filename (dir, "out.jsonl", NULL);
  desc = g_strdup_printf (desc_fmt, path);
  pipeline = gst_parse_launch (desc, &err);
  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  fail_unless (err == NULL, "%s", err ? err->message : "?");

  for (i = 0; i < n; i++) {
    gboolean to_eos = (i % 2 == 0);

    cycle_frames (pipeline, to_eos);
    if (to_eos)
      check_and_remove_jsonl (path, EOS_FRAMES, key);
    /* stopped without EOS: no file at location, no temporary file */
    assert_dir_holds_only (dir, NULL);
  }
  gst_object_unref (pipeline);

  assert_dir_holds_only (dir, NULL);
  fail_unless_equals_int (g_rmdir (dir), 0);
  GST_INFO ("%u cycles in %.2f s: %s", n,
      (g_get_monotonic_time () - start) / 1e6, desc);
  g_free (desc);
  g_free (path);
  g_free (dir);
}

static void
run_segment_cycles (const gchar * props)
{
  gchar *fmt = g_strdup_printf ("videotestsrc name=src pattern=ball ! "
      "video/x-raw,width=64,height=48,framerate=30/1 ! "
      "vimsegment device=cpu post-messages=true model-file=\"%s\" "
      "mask-size=frame confidence=true %s ! "
      "vimoverlay show-legend=true contours=true ! "
      "vimannotate location=\"%%s\" mask-format=rle ! fakesink sync=false",
      seg_model_path (), props);

  run_annotated_cycles (fmt, "\"rle\"");
  g_free (fmt);
}

GST_START_TEST (test_cycle_segment_overlay_annotate)
{
  run_segment_cycles ("");
}

GST_END_TEST;

/* frames held for a batch, and stale results, when the pipeline stops */
GST_START_TEST (test_cycle_segment_overlay_annotate_batched)
{
  run_segment_cycles ("batch-size=4 inference-interval=2");
}

GST_END_TEST;

/* the classification drawn as text (Pango), written with the frame */
GST_START_TEST (test_cycle_classify_overlay_annotate)
{
  gchar *fmt = g_strdup_printf ("videotestsrc name=src pattern=ball ! "
      "video/x-raw,format=RGB,width=64,height=48,framerate=30/1 ! "
      "vimclassify device=cpu model-file=\"%s\" labels-file=\"%s\" top-k=3 "
      "inference-interval=2 ! vimoverlay text-position=bottom-right ! "
      "vimannotate location=\"%%s\" ! fakesink sync=false",
      vim_test_model_path (), vim_test_labels_path ());

  run_annotated_cycles (fmt, "\"classification\"");
  g_free (fmt);
}

GST_END_TEST;

/* NULL <-> READY of each element alone (vimsegment: with its model, and
 * with one that can't be loaded), and NULL -> PAUSED -> NULL of vimannotate
 * (the file is created at READY -> PAUSED: it must be gone after). */
static void
cycle_alone (GstElement * e, GstState state, guint n)
{
  guint i;

  for (i = 0; i < n; i++) {
    fail_unless_equals_int (gst_element_set_state (e, state),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref (e);
}

GST_START_TEST (test_cycle_ready_new_elements)
{
  guint n = n_cycles ();
  GstElement *e;
  gchar *dir, *path;

  e = gst_element_factory_make ("vimsegment", NULL);
  g_object_set (e, "model-file", seg_model_path (), "mask-size", "frame",
      "confidence", TRUE, "batch-size", 2, NULL);
  cycle_alone (e, GST_STATE_READY, n);

  e = gst_element_factory_make ("vimsegment", NULL);
  g_object_set (e, "model-file", "/nonexistent.safetensors", NULL);
  cycle_alone (e, GST_STATE_READY, n);

  e = gst_element_factory_make ("vimoverlay", NULL);
  g_object_set (e, "show-legend", TRUE, "contours", TRUE, NULL);
  cycle_alone (e, GST_STATE_READY, n);

  dir = g_dir_make_tmp ("vimstates-XXXXXX", NULL);
  fail_unless (dir != NULL);
  path = g_build_filename (dir, "out.jsonl", NULL);
  e = gst_element_factory_make ("vimannotate", NULL);
  gst_util_set_object_arg (G_OBJECT (e), "mask-format", "rle");
  g_object_set (e, "location", path, NULL);
  cycle_alone (e, GST_STATE_READY, n);
  assert_dir_holds_only (dir, NULL);

  e = gst_element_factory_make ("vimannotate", NULL);
  gst_util_set_object_arg (G_OBJECT (e), "mask-format", "rle");
  g_object_set (e, "location", path, NULL);
  cycle_alone (e, GST_STATE_PAUSED, n);
  assert_dir_holds_only (dir, NULL);
  fail_unless_equals_int (g_rmdir (dir), 0);
  g_free (path);
  g_free (dir);
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
  tcase_add_test (tc, test_cycle_segment_overlay_annotate);
  tcase_add_test (tc, test_cycle_segment_overlay_annotate_batched);
  tcase_add_test (tc, test_cycle_classify_overlay_annotate);
  tcase_add_test (tc, test_cycle_ready_new_elements);
  return s;
}

GST_CHECK_MAIN (vimstates);
