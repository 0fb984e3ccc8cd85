/* gst-vim GStreamer tests: vimannotate in a GstHarness.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Buffers with and without a GstVimClassificationMeta go through untouched
 * (the same buffers come out, in order); the file appears only at EOS, one
 * valid JSON object per line with the expected fields; an element stopped
 * without EOS leaves neither the file nor its temporary. Run under the
 * leaks tracer (fatal under gst-check).
 */
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <json-glib/json-glib.h>
#include <gst/vim/vimmeta.h>

#define N_FRAMES 6

static gchar *
make_tmpdir (void)
{
  GError *err = NULL;
  gchar *dir = g_dir_make_tmp ("vimannotate-XXXXXX", &err);

  fail_unless (dir != NULL, "%s", err ? err->message : "?");
  return dir;
}

/* number of entries of @dir */
static guint
count_entries (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  fail_unless (d != NULL);
  while (g_dir_read_name (d))
    n++;
  g_dir_close (d);
  return n;
}

static GstHarness *
make_harness (const gchar * location, const gchar * source_uri)
{
  GstElement *e = gst_element_factory_make ("vimannotate", NULL);
  GstHarness *h;

  fail_unless (e != NULL);
  g_object_set (e, "location", location, NULL);
  if (source_uri)
    g_object_set (e, "source-uri", source_uri, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_play (h);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=32,height=24,framerate=25/1");
  return h;
}

static GstBuffer *
make_buffer (guint i)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 32 * 24 * 3, NULL);
  GstVimClassification top[2] = {
    {3, 0.75f, "three"},
    {1, 0.125f, NULL},
  };

  gst_buffer_memset (buf, 0, (guint8) i, 32 * 24 * 3);
  GST_BUFFER_PTS (buf) = i * GST_SECOND / 25;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 25;
  /* every second frame has a result; the last one has none */
  if (i % 2 == 0 && i != N_FRAMES - 1) {
    GstVimClassificationMeta *m =
        gst_buffer_add_vim_classification_meta (buf, "test-model", 10, top,
        2);

    m->fresh = (i % 4 == 0);
    m->age = m->fresh ? 0 : 2;
    m->frame_number = i;
  }
  return buf;
}

GST_START_TEST (test_annotate_eos)
{
  gchar *dir = make_tmpdir ();
  gchar *path = g_build_filename (dir, "out.jsonl", NULL);
  GstHarness *h = make_harness (path, "file:///videos/a%20b.mp4");
  gchar *contents = NULL, **lines;
  JsonParser *parser = json_parser_new ();
  guint i;

  for (i = 0; i < N_FRAMES; i++) {
    GstBuffer *in = make_buffer (i), *out;

    gst_buffer_ref (in);
    fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
    out = gst_harness_pull (h);
    /* pass-through: the very buffer, unchanged */
    fail_unless (out == in);
    fail_unless (gst_buffer_memcmp (out, 0, (guint8[]) {
            (guint8) i}, 1) == 0);
    gst_buffer_unref (out);
    gst_buffer_unref (in);
  }
  /* before EOS: only the temporary file */
  fail_if (g_file_test (path, G_FILE_TEST_EXISTS));
  fail_unless_equals_int (count_entries (dir), 1);

  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless (g_file_test (path, G_FILE_TEST_EXISTS));
  fail_unless_equals_int (count_entries (dir), 1);

  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  fail_unless (g_str_has_suffix (contents, "\n"));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), N_FRAMES + 1);
  for (i = 0; i < N_FRAMES; i++) {
    GError *err = NULL;
    JsonObject *o, *c;

    fail_unless (json_parser_load_from_data (parser, lines[i], -1, &err),
        "line %u: %s", i, err ? err->message : "?");
    o = json_node_get_object (json_parser_get_root (parser));
    fail_unless_equals_string (json_object_get_string_member (o, "source"),
        "file:///videos/a%20b.mp4");
    fail_unless_equals_int (json_object_get_int_member (o, "frame"), i);
    fail_unless_equals_int64 (json_object_get_int_member (o, "pts_ns"),
        i * GST_SECOND / 25);
    fail_unless (fabs (json_object_get_double_member (o, "pts_s") -
            i / 25.0) < 1e-9);
    fail_unless_equals_int64 (json_object_get_int_member (o, "duration_ns"),
        GST_SECOND / 25);
    fail_unless_equals_int (json_object_get_int_member
        (json_object_get_object_member (o, "resolution"), "width"), 32);
    fail_unless_equals_int (json_object_get_int_member
        (json_object_get_object_member (o, "resolution"), "height"), 24);
    fail_if (json_object_has_member (o, "segmentation"));
    fail_unless (json_object_has_member (o, "classification"));
    if (i % 2 == 0 && i != N_FRAMES - 1) {
      JsonArray *top;
      JsonObject *e;

      c = json_object_get_object_member (o, "classification");
      fail_unless (c != NULL);
      fail_unless_equals_string (json_object_get_string_member (c, "model"),
          "test-model");
      fail_unless_equals_int (json_object_get_boolean_member (c, "fresh"),
          i % 4 == 0);
      fail_unless_equals_int (json_object_get_int_member (c, "age"),
          i % 4 == 0 ? 0 : 2);
      top = json_object_get_array_member (c, "top_k");
      fail_unless_equals_int (json_array_get_length (top), 2);
      e = json_array_get_object_element (top, 0);
      fail_unless_equals_int (json_object_get_int_member (e, "id"), 3);
      fail_unless_equals_string (json_object_get_string_member (e, "label"),
          "three");
      fail_unless (json_object_get_double_member (e, "score") == 0.75);
      e = json_array_get_object_element (top, 1);
      fail_unless_equals_int (json_object_get_int_member (e, "id"), 1);
      fail_unless (json_object_get_null_member (e, "label"));
      fail_unless (json_object_get_double_member (e, "score") == 0.125);
    } else {
      fail_unless (json_object_get_null_member (o, "classification"));
    }
  }
  fail_unless_equals_string (lines[N_FRAMES], "");

  gst_harness_teardown (h);
  /* the complete file stays after the stop */
  fail_unless (g_file_test (path, G_FILE_TEST_EXISTS));
  g_unlink (path);
  fail_unless_equals_int (g_rmdir (dir), 0);
  g_strfreev (lines);
  g_free (contents);
  g_object_unref (parser);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_annotate_no_eos)
{
  gchar *dir = make_tmpdir ();
  gchar *path = g_build_filename (dir, "out.jsonl", NULL);
  GstHarness *h = make_harness (path, NULL);
  guint i;

  for (i = 0; i < N_FRAMES; i++)
    gst_buffer_unref (gst_harness_push_and_pull (h, make_buffer (i)));
  fail_unless_equals_int (count_entries (dir), 1);
  gst_harness_teardown (h);
  /* stopped without EOS: no file, no temporary */
  fail_if (g_file_test (path, G_FILE_TEST_EXISTS));
  fail_unless_equals_int (count_entries (dir), 0);
  fail_unless_equals_int (g_rmdir (dir), 0);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_annotate_bad_location)
{
  GstElement *e = gst_element_factory_make ("vimannotate", NULL);

  g_object_set (e, "location", "/nonexistent-dir/x/out.jsonl", NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
vimannotate_suite (void)
{
  Suite *s = suite_create ("vimannotate");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_annotate_eos);
  tcase_add_test (tc, test_annotate_no_eos);
  tcase_add_test (tc, test_annotate_bad_location);
  return s;
}

GST_CHECK_MAIN (vimannotate);
