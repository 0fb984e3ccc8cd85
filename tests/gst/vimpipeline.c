/* gst-vim GStreamer tests: a file decoded and classified end to end.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A clip is encoded here (videotestsrc, H.264 or MPEG-4 part 2 in MP4),
 * then decoded with decodebin and classified: every frame that enters
 * vimclassify leaves it, in order, with a GstVimClassificationMeta, and the
 * bus carries one "vim-classification" message per frame. The same runs on
 * ../shared/data/videos/camvid_0016E5_val_15fps.mp4 when it is there.
 */
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

#include "vimtestutil.h"

#define CLIP_FRAMES 30

typedef struct
{
  guint in;
  guint out;
  guint with_meta;
  guint fresh;
  guint64 next_frame_number;
  GstClockTime last_pts;
  gboolean in_order;
} Counts;

static GstPadProbeReturn
count_in (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Counts *c = user_data;

  c->in++;
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
count_out (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Counts *c = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstVimClassificationMeta *meta = gst_buffer_get_vim_classification_meta (buf);

  c->out++;
  if (meta) {
    c->with_meta++;
    if (meta->fresh)
      c->fresh++;
    if (meta->frame_number != c->next_frame_number)
      c->in_order = FALSE;
    c->next_frame_number = meta->frame_number + 1;
  }
  if (GST_BUFFER_PTS_IS_VALID (buf)) {
    if (GST_CLOCK_TIME_IS_VALID (c->last_pts) && GST_BUFFER_PTS (buf) <=
        c->last_pts)
      c->in_order = FALSE;
    c->last_pts = GST_BUFFER_PTS (buf);
  }
  return GST_PAD_PROBE_OK;
}

/* Runs @launch to EOS; returns the number of vim-classification messages
 * (checking their frame numbers count up from 0). */
static guint
run_to_eos (GstElement * pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  guint n_messages = 0;
  gboolean done = FALSE;

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT);

    fail_unless (msg != NULL, "timeout");
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_ERROR:{
        GError *err = NULL;
        gchar *debug = NULL;

        gst_message_parse_error (msg, &err, &debug);
        fail ("error from %s: %s (%s)", GST_OBJECT_NAME (msg->src),
            err->message, debug);
        break;
      }
      case GST_MESSAGE_EOS:
        done = TRUE;
        break;
      case GST_MESSAGE_ELEMENT:{
        const GstStructure *s = gst_message_get_structure (msg);
        guint64 frame_number;

        if (gst_structure_has_name (s, "vim-classification")) {
          fail_unless (gst_structure_get_uint64 (s, "frame-number",
                  &frame_number));
          fail_unless_equals_uint64 (frame_number, n_messages);
          n_messages++;
        }
        break;
      }
      default:
        break;
    }
    gst_message_unref (msg);
  }
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (bus);
  return n_messages;
}

/* An MP4 clip of CLIP_FRAMES frames, or NULL when no encoder is there. */
static gchar *
make_clip (const gchar * dir)
{
  const gchar *encoder;
  gchar *path, *launch;
  GstElement *pipeline;
  GError *err = NULL;

  if (vim_test_have_element ("openh264enc"))
    encoder = "openh264enc ! h264parse";
  else if (vim_test_have_element ("x264enc"))
    encoder = "x264enc ! h264parse";
  else if (vim_test_have_element ("avenc_mpeg4"))
    encoder = "avenc_mpeg4 ! mpeg4videoparse";
  else
    return NULL;
  if (!vim_test_have_element ("mp4mux") || !vim_test_have_element ("videotestsrc"))
    return NULL;

  path = g_build_filename (dir, "clip.mp4", NULL);
  launch = g_strdup_printf ("videotestsrc num-buffers=%d pattern=ball ! "
      "video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! %s ! "
      "mp4mux ! filesink location=\"%s\"", CLIP_FRAMES, encoder, path);
  pipeline = gst_parse_launch (launch, &err);
  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  run_to_eos (pipeline);
  gst_object_unref (pipeline);
  g_free (launch);
  return path;
}

/* Decodes and classifies @path; returns the frame count after checking
 * that every frame came out with its meta and its message. */
static guint
classify_file (const gchar * path, const gchar * props, guint interval)
{
  gchar *launch = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! "
      "videoconvert ! vimclassify name=c device=cpu post-messages=true "
      "model-file=\"%s\" %s ! fakesink name=sink sync=false", path,
      vim_test_model_path (), props);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *c, *sink;
  GstPad *pad;
  Counts counts = { 0 };
  guint n_messages;

  fail_unless (pipeline != NULL, "%s", err ? err->message : "?");
  counts.in_order = TRUE;
  counts.last_pts = GST_CLOCK_TIME_NONE;

  c = gst_bin_get_by_name (GST_BIN (pipeline), "c");
  pad = gst_element_get_static_pad (c, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_in, &counts, NULL);
  gst_object_unref (pad);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_out, &counts, NULL);
  gst_object_unref (pad);

  n_messages = run_to_eos (pipeline);
  GST_INFO ("%s (%s): %u in, %u out, %u with meta, %u fresh, %u messages",
      path, props, counts.in, counts.out, counts.with_meta, counts.fresh,
      n_messages);

  fail_unless (counts.in > 0);
  fail_unless_equals_int (counts.out, counts.in);
  fail_unless_equals_int (counts.with_meta, counts.in);
  fail_unless_equals_int (n_messages, counts.in);
  fail_unless_equals_int (counts.fresh, (counts.in + interval - 1) / interval);
  fail_unless (counts.in_order);

  gst_object_unref (sink);
  gst_object_unref (c);
  gst_object_unref (pipeline);
  g_free (launch);
  return counts.in;
}

GST_START_TEST (test_generated_clip)
{
  gchar *dir = g_dir_make_tmp ("vimpipeline-XXXXXX", NULL);
  gchar *clip = make_clip (dir);

  if (!clip) {
    GST_WARNING ("no encoder and muxer for a test clip: skipped");
  } else {
    fail_unless_equals_int (classify_file (clip, "", 1), CLIP_FRAMES);
    fail_unless_equals_int (classify_file (clip,
            "batch-size=4 inference-interval=3", 3), CLIP_FRAMES);
    g_unlink (clip);
    g_free (clip);
  }
  g_rmdir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_shared_clip)
{
  const gchar *data = g_getenv ("VIM_TEST_SHARED_DATA");
  gchar *path;

  if (!data)
    return;
  path = g_build_filename (data, "videos", "camvid_0016E5_val_15fps.mp4",
      NULL);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    classify_file (path, "batch-size=8", 1);
  else
    GST_WARNING ("%s absent: skipped", path);
  g_free (path);
}

GST_END_TEST;

static Suite *
vimpipeline_suite (void)
{
  Suite *s = suite_create ("vimpipeline");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_generated_clip);
  tcase_add_test (tc, test_shared_clip);
  return s;
}

GST_CHECK_MAIN (vimpipeline);
