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
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <json-glib/json-glib.h>
#include <png.h>
#include <gst/video/video.h>
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
    /* no segmentation meta on these buffers: null */
    fail_unless (json_node_is_null (json_object_get_member (o,
                "segmentation")));
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

/* ---- segmentation: fractions, and masks as RLE and PNG ---------------- */

#define MASK_W 13
#define MASK_H 7
#define SEG_FRAMES 3

/* class of mask pixel (x, y) in frame i: some runs across row ends */
static guint8
mask_value (guint i, guint x, guint y)
{
  return (guint8) (((x + i) / 3 + y / 2) % 5);
}

static GstBuffer *
make_seg_buffer (guint i)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 32 * 24 * 3, NULL);
  GstBuffer *mask = gst_vim_segmentation_mask_new (MASK_W, MASK_H);
  GstVideoMeta *vm = gst_buffer_get_video_meta (mask);
  static const gchar *labels[6] = { "sky", "road", NULL, "car", "tree", "x" };
  gfloat fractions[6] = { 0, };
  GstMapInfo map;
  guint x, y;

  fail_unless (vm != NULL);
  fail_unless (gst_buffer_map (mask, &map, GST_MAP_WRITE));
  for (y = 0; y < MASK_H; y++)
    for (x = 0; x < MASK_W; x++) {
      guint8 v = mask_value (i, x, y);

      map.data[vm->offset[0] + y * vm->stride[0] + x] = v;
      fractions[v] += 1.f / (MASK_W * MASK_H);
    }
  gst_buffer_unmap (mask, &map);
  gst_buffer_memset (buf, 0, 0, 32 * 24 * 3);
  GST_BUFFER_PTS (buf) = i * GST_SECOND / 25;
  fail_unless (gst_buffer_add_vim_segmentation_meta (buf, mask, NULL, 0, 0,
          32, 24, "seg-model", 6, labels, fractions) != NULL);
  gst_buffer_unref (mask);
  return buf;
}

/* runs the frames through vimannotate with @format; returns the lines */
static gchar **
annotate_seg (const gchar * format, const gchar * dir, const gchar * masks)
{
  gchar *path = g_build_filename (dir, "seg.jsonl", NULL);
  GstElement *e = gst_element_factory_make ("vimannotate", NULL);
  GstHarness *h;
  gchar *contents = NULL, **lines;
  guint i;

  gst_util_set_object_arg (G_OBJECT (e), "mask-format", format);
  g_object_set (e, "location", path, "mask-location", masks, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_play (h);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=32,height=24,framerate=25/1");
  for (i = 0; i < SEG_FRAMES; i++)
    gst_buffer_unref (gst_harness_push_and_pull (h, make_seg_buffer (i)));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  gst_harness_teardown (h);
  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), SEG_FRAMES + 1);
  g_unlink (path);
  g_free (contents);
  g_free (path);
  return lines;
}

/* checks the fields every format writes; returns the segmentation object */
static JsonObject *
check_seg_common (JsonParser * parser, const gchar * line, guint i)
{
  JsonObject *o, *seg, *ms, *rect;
  JsonArray *classes;
  guint k, counts[5] = { 0, }, x, y;
  gdouble sum = 0;

  fail_unless (json_parser_load_from_data (parser, line, -1, NULL), "%s", line);
  o = json_node_get_object (json_parser_get_root (parser));
  fail_unless_equals_int (json_object_get_int_member (o, "frame"), i);
  fail_unless (json_node_is_null (json_object_get_member (o,
              "classification")));
  seg = json_object_get_object_member (o, "segmentation");
  fail_unless (seg != NULL);
  fail_unless_equals_string (json_object_get_string_member (seg, "model"),
      "seg-model");
  fail_unless (json_object_get_boolean_member (seg, "fresh"));
  ms = json_object_get_object_member (seg, "mask_size");
  fail_unless_equals_int (json_object_get_int_member (ms, "width"), MASK_W);
  fail_unless_equals_int (json_object_get_int_member (ms, "height"), MASK_H);
  rect = json_object_get_object_member (seg, "rect");
  fail_unless_equals_float (json_object_get_double_member (rect, "width"), 32);
  fail_unless_equals_float (json_object_get_double_member (rect, "height"),
      24);
  for (y = 0; y < MASK_H; y++)
    for (x = 0; x < MASK_W; x++)
      counts[mask_value (i, x, y)]++;
  classes = json_object_get_array_member (seg, "classes");
  for (k = 0; k < json_array_get_length (classes); k++) {
    JsonObject *c = json_array_get_object_element (classes, k);
    gint id = json_object_get_int_member (c, "id");
    gdouble f = json_object_get_double_member (c, "fraction");

    fail_unless (id >= 0 && id < 5 && counts[id] > 0, "class %d", id);
    fail_unless (fabs (f - (gdouble) counts[id] / (MASK_W * MASK_H)) < 1e-5);
    if (id == 2)
      fail_unless (json_node_is_null (json_object_get_member (c, "label")));
    else if (id == 3)
      fail_unless_equals_string (json_object_get_string_member (c, "label"),
          "car");
    sum += f;
  }
  fail_unless (fabs (sum - 1.0) < 1e-5);
  return seg;
}

GST_START_TEST (test_annotate_seg_rle)
{
  gchar *dir = make_tmpdir ();
  gchar **lines = annotate_seg ("rle", dir, NULL);
  JsonParser *parser = json_parser_new ();
  guint i;

  for (i = 0; i < SEG_FRAMES; i++) {
    JsonObject *seg = check_seg_common (parser, lines[i], i);
    JsonObject *mask = json_object_get_object_member (seg, "mask");
    JsonArray *rle;
    guint k, pos = 0;

    fail_unless_equals_string (json_object_get_string_member (mask,
            "format"), "rle");
    rle = json_object_get_array_member (mask, "rle");
    fail_unless (json_array_get_length (rle) % 2 == 0);
    for (k = 0; k < json_array_get_length (rle); k += 2) {
      gint64 v = json_array_get_int_element (rle, k);
      gint64 n = json_array_get_int_element (rle, k + 1), j;

      fail_unless (n > 0);
      /* runs are maximal: the next run has another class */
      if (k + 2 < json_array_get_length (rle))
        fail_unless (json_array_get_int_element (rle, k + 2) != v);
      for (j = 0; j < n; j++, pos++) {
        fail_unless (pos < MASK_W * MASK_H);
        fail_unless_equals_int (v, mask_value (i, pos % MASK_W,
                pos / MASK_W));
      }
    }
    fail_unless_equals_int (pos, MASK_W * MASK_H);
  }
  g_object_unref (parser);
  g_strfreev (lines);
  fail_unless_equals_int (count_entries (dir), 0);
  g_rmdir (dir);
  g_free (dir);
}

GST_END_TEST;

/* reads a grayscale PNG with libpng into a MASK_W x MASK_H array */
static void
read_png_gray (const gchar * path, guint8 * out)
{
  png_image img;

  memset (&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  fail_unless (png_image_begin_read_from_file (&img, path), "%s: %s", path,
      img.message);
  fail_unless_equals_int (img.width, MASK_W);
  fail_unless_equals_int (img.height, MASK_H);
  fail_unless (img.format == PNG_FORMAT_GRAY);
  fail_unless (png_image_finish_read (&img, NULL, out, MASK_W, NULL));
}

GST_START_TEST (test_annotate_seg_png)
{
  gchar *dir = make_tmpdir ();
  gchar *masks = g_build_filename (dir, "masks", NULL);
  gchar **lines = annotate_seg ("png", dir, masks);
  JsonParser *parser = json_parser_new ();
  guint i;

  for (i = 0; i < SEG_FRAMES; i++) {
    JsonObject *seg = check_seg_common (parser, lines[i], i);
    JsonObject *mask = json_object_get_object_member (seg, "mask");
    const gchar *path;
    gchar *expect, name[32];
    guint8 px[MASK_W * MASK_H];
    guint k;

    fail_unless_equals_string (json_object_get_string_member (mask,
            "format"), "png");
    path = json_object_get_string_member (mask, "path");
    g_snprintf (name, sizeof name, "frame-%09u.png", i);
    expect = g_build_filename (masks, name, NULL);
    fail_unless_equals_string (path, expect);
    read_png_gray (path, px);
    for (k = 0; k < MASK_W * MASK_H; k++)
      fail_unless_equals_int (px[k], mask_value (i, k % MASK_W, k / MASK_W));
    g_unlink (path);
    g_free (expect);
  }
  /* one file per frame and no temporaries left */
  fail_unless_equals_int (count_entries (masks), 0);
  g_rmdir (masks);
  g_object_unref (parser);
  g_strfreev (lines);
  g_rmdir (dir);
  g_free (masks);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_annotate_png_needs_folder)
{
  GstElement *e = gst_element_factory_make ("vimannotate", NULL);
  gchar *dir = make_tmpdir ();
  gchar *path = g_build_filename (dir, "x.jsonl", NULL);

  gst_util_set_object_arg (G_OBJECT (e), "mask-format", "png");
  g_object_set (e, "location", path, NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
  fail_unless_equals_int (count_entries (dir), 0);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
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
  tcase_add_test (tc, test_annotate_seg_rle);
  tcase_add_test (tc, test_annotate_seg_png);
  tcase_add_test (tc, test_annotate_png_needs_folder);
  return s;
}

GST_CHECK_MAIN (vimannotate);
