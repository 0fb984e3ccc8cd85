/* gst-vim GStreamer tests: vimclassify with GstHarness.
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

#define N_CLASSES 10
#define TOP_K 3
#define MODEL_NAME "vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2"

static const GstVideoFormat all_formats[] = {
  GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_RGBx,
  GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_BGRx,
  GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_GRAY8,
};

/* vimclassify with the test model, top-k 3 and "name=value ..." @props. */
static GstElement *
make_classify (const gchar * props)
{
  GstElement *e = gst_element_factory_make ("vimclassify", NULL);

  fail_unless (e != NULL);
  g_object_set (e, "model-file", vim_test_model_path (), "top-k", TOP_K,
      "device", 1 /* cpu */ , NULL);
  vim_test_set_props (e, props);
  return e;
}

static GstHarness *
classify_harness (const gchar * props, GstVideoFormat format, gint width,
    gint height)
{
  GstElement *e = make_classify (props);
  GstHarness *h = vim_test_video_harness (e, format, width, height);

  gst_object_unref (e);
  return h;
}

static GstVimClassificationMeta *
get_meta (GstBuffer * buf)
{
  GstVimClassificationMeta *meta = gst_buffer_get_vim_classification_meta (buf);

  fail_unless (meta != NULL, "buffer without GstVimClassificationMeta");
  return meta;
}

static void
assert_same_result (const GstVimClassificationMeta * a,
    const GstVimClassificationMeta * b)
{
  guint i;

  fail_unless_equals_int (a->n_results, b->n_results);
  for (i = 0; i < a->n_results; i++) {
    fail_unless_equals_int (a->results[i].class_id, b->results[i].class_id);
    fail_unless_equals_float (a->results[i].score, b->results[i].score);
    fail_unless (a->results[i].label == b->results[i].label);
  }
}

/* The meta matches what the engine says about the same pixels. */
static void
assert_matches_engine (GstBuffer * buf, GstVideoFormat format, gint width,
    gint height, gfloat tolerance)
{
  GstVimClassificationMeta *meta = get_meta (buf);
  VimClassScore ref[TOP_K];
  GstVideoInfo info;
  gint n, i;

  gst_video_info_set_format (&info, format, width, height);
  n = vim_test_engine_top_k (&info, buf, TOP_K, 0.0f, ref);
  fail_unless_equals_int (n, TOP_K);
  fail_unless_equals_int (meta->n_results, n);
  for (i = 0; i < n; i++) {
    fail_unless_equals_int (meta->results[i].class_id, ref[i].class_id);
    fail_unless (fabsf (meta->results[i].score - ref[i].score) <= tolerance,
        "%s %dx%d: score %d is %g, the engine says %g",
        gst_video_format_to_string (format), width, height, i,
        meta->results[i].score, ref[i].score);
    fail_unless_equals_string (meta->results[i].label, ref[i].label);
  }
}

/* ---- results ------------------------------------------------------------ */

GST_START_TEST (test_formats_match_engine)
{
  static const gint sizes[][2] = { {64, 64}, {97, 61}, {320, 240} };
  guint f, s, seed;

  for (f = 0; f < G_N_ELEMENTS (all_formats); f++) {
    for (s = 0; s < G_N_ELEMENTS (sizes); s++) {
      GstVideoFormat format = all_formats[f];
      gint w = sizes[s][0], hgt = sizes[s][1];
      GstHarness *h = classify_harness (NULL, format, w, hgt);

      for (seed = 0; seed < 2; seed++) {
        GstBuffer *out = gst_harness_push_and_pull (h,
            vim_test_frame_at (format, w, hgt, seed + 10 * s, seed));
        GstVimClassificationMeta *meta = get_meta (out);

        GST_INFO ("%s %dx%d seed %u: top-1 %d (%s) %.4f",
            gst_video_format_to_string (format), w, hgt, seed,
            meta->results[0].class_id, meta->results[0].label,
            meta->results[0].score);
        assert_matches_engine (out, format, w, hgt, 1e-6f);
        fail_unless_equals_uint64 (meta->frame_number, seed);
        gst_buffer_unref (out);
      }
      gst_harness_teardown (h);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_meta_values)
{
  GstHarness *h = classify_harness ("top-k=10", GST_VIDEO_FORMAT_RGB, 80, 60);
  GstBuffer *out;
  GstVimClassificationMeta *meta;
  GstVideoRegionOfInterestMeta *roi;
  GstStructure *s;
  const gchar *label;
  gint class_id;
  gdouble confidence, sum = 0.0;
  gboolean fresh;
  guint i, age;

  out = gst_harness_push_and_pull (h, vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 80, 60,
          1, 0));
  meta = get_meta (out);
  fail_unless_equals_string (meta->model, MODEL_NAME);
  fail_unless_equals_int (meta->n_classes, N_CLASSES);
  fail_unless_equals_int (meta->n_results, N_CLASSES);
  fail_unless (meta->fresh);
  fail_unless_equals_int (meta->age, 0);
  fail_unless_equals_uint64 (meta->frame_number, 0);
  for (i = 0; i < meta->n_results; i++) {
    gchar *expect = g_strdup_printf ("class_%d", meta->results[i].class_id);

    fail_unless (meta->results[i].class_id >= 0 &&
        meta->results[i].class_id < N_CLASSES);
    fail_unless (meta->results[i].score >= 0.0f
        && meta->results[i].score <= 1.0f);
    if (i > 0)
      fail_unless (meta->results[i].score <= meta->results[i - 1].score);
    fail_unless_equals_string (meta->results[i].label, expect);
    sum += meta->results[i].score;
    g_free (expect);
  }
  /* all classes: the softmax sums to 1 */
  fail_unless (fabs (sum - 1.0) < 1e-4, "sum %g", sum);
  fail_unless (gst_vim_classification_meta_get_top (meta) == &meta->results[0]);

  /* the full-frame ROI for generic consumers */
  roi = gst_buffer_get_video_region_of_interest_meta_id (out, 0);
  fail_unless (roi != NULL);
  fail_unless_equals_string (g_quark_to_string (roi->roi_type),
      "vim-classification");
  fail_unless_equals_int (roi->x, 0);
  fail_unless_equals_int (roi->y, 0);
  fail_unless_equals_int (roi->w, 80);
  fail_unless_equals_int (roi->h, 60);
  s = gst_video_region_of_interest_meta_get_param (roi, "vim-classification");
  fail_unless (s != NULL);
  label = gst_structure_get_string (s, "label");
  fail_unless_equals_string (label, meta->results[0].label);
  fail_unless (gst_structure_get_int (s, "class-id", &class_id));
  fail_unless_equals_int (class_id, meta->results[0].class_id);
  fail_unless (gst_structure_get_double (s, "confidence", &confidence));
  fail_unless_equals_float (confidence, meta->results[0].score);
  fail_unless_equals_string (gst_structure_get_string (s, "model"), MODEL_NAME);
  fail_unless (gst_structure_get_boolean (s, "fresh", &fresh) && fresh);
  fail_unless (gst_structure_get_uint (s, "age", &age) && age == 0);

  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_top_k_and_threshold)
{
  GstHarness *h = classify_harness ("top-k=1000", GST_VIDEO_FORMAT_RGB, 64, 64);
  GstBuffer *out;
  GstVimClassificationMeta *meta;
  gfloat top, second;

  /* top-k above the number of classes: all of them */
  out = gst_harness_push_and_pull (h, vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64,
          2, 0));
  meta = get_meta (out);
  fail_unless_equals_int (meta->n_results, N_CLASSES);
  top = meta->results[0].score;
  second = meta->results[1].score;
  gst_buffer_unref (out);

  /* a threshold between the best and the second: one class */
  g_object_set (h->element, "top-k", 5, "threshold", (second + top) / 2, NULL);
  out = gst_harness_push_and_pull (h, vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64,
          2, 1));
  meta = get_meta (out);
  fail_unless_equals_int (meta->n_results, 1);
  fail_unless (gst_buffer_get_video_region_of_interest_meta_id (out, 0));
  gst_buffer_unref (out);

  /* above the best: an empty result, still attached, and no ROI */
  g_object_set (h->element, "threshold", MIN (1.0f, top + 0.01f), NULL);
  out = gst_harness_push_and_pull (h, vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64,
          2, 2));
  meta = get_meta (out);
  fail_unless_equals_int (meta->n_results, 0);
  fail_unless (gst_vim_classification_meta_get_top (meta) == NULL);
  fail_unless (gst_buffer_get_video_region_of_interest_meta (out) == NULL);
  gst_buffer_unref (out);

  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_labels_file)
{
  gchar *props = g_strdup_printf ("labels-file=%s", vim_test_labels_path ());
  GstHarness *h = classify_harness (props, GST_VIDEO_FORMAT_RGB, 64, 64);
  GstBuffer *out = gst_harness_push_and_pull (h,
      vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64, 3, 0));
  GstVimClassificationMeta *meta = get_meta (out);
  guint i;

  for (i = 0; i < meta->n_results; i++) {
    gchar *expect = g_strdup_printf ("label %d from file",
        meta->results[i].class_id);
    fail_unless_equals_string (meta->results[i].label, expect);
    g_free (expect);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (props);
}

GST_END_TEST;

/* Timestamps, duration, offsets and flags come out as they went in, and
 * every buffer carries its meta. */
GST_START_TEST (test_timestamps_flags_preserved)
{
  GstHarness *h = classify_harness (NULL, GST_VIDEO_FORMAT_NV12, 64, 48);
  guint i;

  for (i = 0; i < 20; i++) {
    GstBuffer *in = vim_test_make_frame (GST_VIDEO_FORMAT_NV12, 64, 48, i);
    GstBuffer *out;
    GstBufferFlags flags = i == 0 ? GST_BUFFER_FLAG_DISCONT :
        GST_BUFFER_FLAG_DELTA_UNIT;

    if (i % 5 == 3)
      flags |= GST_BUFFER_FLAG_MARKER;
    GST_BUFFER_PTS (in) = 1000 + i * 40 * GST_MSECOND;
    GST_BUFFER_DTS (in) = i * 40 * GST_MSECOND;
    GST_BUFFER_DURATION (in) = 40 * GST_MSECOND + i;
    GST_BUFFER_OFFSET (in) = i;
    GST_BUFFER_OFFSET_END (in) = i + 1;
    GST_BUFFER_FLAGS (in) = flags;

    out = gst_harness_push_and_pull (h, in);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 1000 + i * 40 * GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DTS (out), i * 40 * GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), 40 * GST_MSECOND + i);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (out), i);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET_END (out), i + 1);
    fail_unless_equals_int (GST_BUFFER_FLAGS (out), flags);
    fail_unless_equals_uint64 (get_meta (out)->frame_number, i);
    fail_unless (get_meta (out)->fresh);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The input buffer is not written to: a buffer someone else holds gets a
 * new buffer sharing the memory, with the meta on it only. */
GST_START_TEST (test_read_only)
{
  GstHarness *h = classify_harness (NULL, GST_VIDEO_FORMAT_RGBA, 64, 64);
  GstBuffer *in = vim_test_frame_at (GST_VIDEO_FORMAT_RGBA, 64, 64, 4, 0);
  GstBuffer *copy = gst_buffer_copy_deep (in);
  GstBuffer *out;
  GstMapInfo a, b;

  gst_buffer_ref (in);          /* not writable any more */
  out = gst_harness_push_and_pull (h, in);
  fail_unless (out != in);
  fail_unless (gst_buffer_get_vim_classification_meta (in) == NULL);
  get_meta (out);
  fail_unless (gst_buffer_map (out, &a, GST_MAP_READ));
  fail_unless (gst_buffer_map (copy, &b, GST_MAP_READ));
  fail_unless_equals_int (a.size, b.size);
  fail_unless (memcmp (a.data, b.data, a.size) == 0);
  gst_buffer_unmap (out, &a);
  gst_buffer_unmap (copy, &b);
  gst_buffer_unref (out);
  gst_buffer_unref (copy);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- interval ----------------------------------------------------------- */

GST_START_TEST (test_interval_stale)
{
  GstHarness *h = classify_harness ("inference-interval=3",
      GST_VIDEO_FORMAT_BGRx, 64, 64);
  GstBuffer *fresh_buf = NULL;
  guint i;

  for (i = 0; i < 10; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        vim_test_frame_at (GST_VIDEO_FORMAT_BGRx, 64, 64, 100 + i, i));
    GstVimClassificationMeta *meta = get_meta (out);

    fail_unless_equals_uint64 (meta->frame_number, i);
    if (i % 3 == 0) {
      fail_unless (meta->fresh, "frame %u should be fresh", i);
      fail_unless_equals_int (meta->age, 0);
      assert_matches_engine (out, GST_VIDEO_FORMAT_BGRx, 64, 64, 1e-6f);
      gst_clear_buffer (&fresh_buf);
      fresh_buf = gst_buffer_ref (out);
    } else {
      fail_unless (!meta->fresh, "frame %u should be stale", i);
      fail_unless_equals_int (meta->age, i % 3);
      /* the last fresh result again */
      assert_same_result (meta, get_meta (fresh_buf));
    }
    gst_buffer_unref (out);
  }

  /* the interval may change while playing */
  g_object_set (h->element, "inference-interval", 1, NULL);
  for (; i < 13; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        vim_test_frame_at (GST_VIDEO_FORMAT_BGRx, 64, 64, 100 + i, i));

    fail_unless (get_meta (out)->fresh);
    assert_matches_engine (out, GST_VIDEO_FORMAT_BGRx, 64, 64, 1e-6f);
    gst_buffer_unref (out);
  }
  gst_clear_buffer (&fresh_buf);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- batching ------------------------------------------------------------ */

static void
push_n (GstHarness * h, GstVideoFormat format, guint first, guint n)
{
  guint i;

  for (i = first; i < first + n; i++)
    fail_unless_equals_int (gst_harness_push (h, vim_test_frame_at (format, 64, 64,
                200 + i, i)), GST_FLOW_OK);
}

GST_START_TEST (test_batch_eos)
{
  GstHarness *h = classify_harness ("batch-size=4", GST_VIDEO_FORMAT_I420, 64,
      64);
  GstEvent *ev;
  guint i;

  /* held until the batch is full */
  push_n (h, GST_VIDEO_FORMAT_I420, 0, 3);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  push_n (h, GST_VIDEO_FORMAT_I420, 3, 1);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);

  /* a partial batch goes out at EOS, before it */
  push_n (h, GST_VIDEO_FORMAT_I420, 4, 2);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 6);

  for (i = 0; i < 6; i++) {
    GstBuffer *out = gst_harness_pull (h);
    GstVimClassificationMeta *meta = get_meta (out);

    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), i * GST_SECOND / 30);
    fail_unless_equals_uint64 (meta->frame_number, i);
    fail_unless (meta->fresh);
    /* each frame gets its own result, as if run alone */
    assert_matches_engine (out, GST_VIDEO_FORMAT_I420, 64, 64, 1e-4f);
    gst_buffer_unref (out);
  }
  /* EOS after the frames */
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

/* With an interval, a batch holds batch-size frames to infer and the
 * skipped frames between them; everything comes out in order. */
GST_START_TEST (test_batch_with_interval)
{
  GstHarness *h = classify_harness ("batch-size=2 inference-interval=2",
      GST_VIDEO_FORMAT_RGB, 64, 64);
  static const gboolean fresh[] = { TRUE, FALSE, TRUE, FALSE, TRUE, FALSE };
  static const guint age[] = { 0, 1, 0, 1, 0, 1 };
  GstBuffer *outs[6];
  guint i;

  push_n (h, GST_VIDEO_FORMAT_RGB, 0, 2);       /* 0 infer, 1 skip */
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  push_n (h, GST_VIDEO_FORMAT_RGB, 2, 1);       /* 2 infer: batch full */
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  push_n (h, GST_VIDEO_FORMAT_RGB, 3, 1);       /* 3 skip, nothing waits */
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  push_n (h, GST_VIDEO_FORMAT_RGB, 4, 2);       /* 4 infer, 5 skip: held */
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 6);

  for (i = 0; i < 6; i++) {
    GstVimClassificationMeta *meta;

    outs[i] = gst_harness_pull (h);
    meta = get_meta (outs[i]);
    fail_unless_equals_uint64 (meta->frame_number, i);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (outs[i]), i * GST_SECOND / 30);
    fail_unless_equals_int (meta->fresh, fresh[i]);
    fail_unless_equals_int (meta->age, age[i]);
    if (fresh[i])
      assert_matches_engine (outs[i], GST_VIDEO_FORMAT_RGB, 64, 64, 1e-4f);
    else
      assert_same_result (meta, get_meta (outs[i - 1]));
  }
  for (i = 0; i < 6; i++)
    gst_buffer_unref (outs[i]);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_batch_latency)
{
  GstHarness *h;
  GstClockTime frame = gst_util_uint64_scale_int (GST_SECOND, 1, 30);

  h = classify_harness (NULL, GST_VIDEO_FORMAT_RGB, 64, 64);
  gst_harness_set_upstream_latency (h, 10 * GST_MSECOND);
  fail_unless_equals_uint64 (gst_harness_query_latency (h), 10 * GST_MSECOND);
  gst_harness_teardown (h);

  h = classify_harness ("batch-size=4", GST_VIDEO_FORMAT_RGB, 64, 64);
  gst_harness_set_upstream_latency (h, 10 * GST_MSECOND);
  fail_unless_equals_uint64 (gst_harness_query_latency (h),
      10 * GST_MSECOND + 3 * frame);
  gst_harness_teardown (h);

  /* the first frame of a batch waits (batch - 1) * interval frames */
  h = classify_harness ("batch-size=3 inference-interval=2",
      GST_VIDEO_FORMAT_RGB, 64, 64);
  gst_harness_set_upstream_latency (h, 0);
  fail_unless_equals_uint64 (gst_harness_query_latency (h), 4 * frame);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* New caps: the frames held belong to the old ones and go out first. */
GST_START_TEST (test_batch_caps_change)
{
  GstHarness *h = classify_harness ("batch-size=4", GST_VIDEO_FORMAT_RGB, 64,
      64);
  GstBuffer *out;
  guint i;

  push_n (h, GST_VIDEO_FORMAT_RGB, 0, 2);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1");
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
  for (i = 0; i < 2; i++) {
    out = gst_harness_pull (h);
    fail_unless_equals_uint64 (get_meta (out)->frame_number, i);
    assert_matches_engine (out, GST_VIDEO_FORMAT_RGB, 64, 64, 1e-4f);
    gst_buffer_unref (out);
  }

  push_n (h, GST_VIDEO_FORMAT_GRAY8, 2, 4);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  for (i = 2; i < 6; i++) {
    out = gst_harness_pull (h);
    fail_unless_equals_uint64 (get_meta (out)->frame_number, i);
    assert_matches_engine (out, GST_VIDEO_FORMAT_GRAY8, 64, 64, 1e-4f);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A flush drops the held frames like everything else downstream, and the
 * next frame is inferred afresh. */
GST_START_TEST (test_batch_flush)
{
  GstHarness *h = classify_harness ("batch-size=3 inference-interval=2",
      GST_VIDEO_FORMAT_RGB, 64, 64);
  GstBuffer *out;
  GstSegment segment;

  push_n (h, GST_VIDEO_FORMAT_RGB, 0, 2);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

  push_n (h, GST_VIDEO_FORMAT_RGB, 2, 1);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (get_meta (out)->frame_number, 2);
  fail_unless (get_meta (out)->fresh);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A drain query (decoders send one before they reconfigure) outputs the
 * held frames. */
GST_START_TEST (test_batch_drain_query)
{
  GstHarness *h = classify_harness ("batch-size=8", GST_VIDEO_FORMAT_RGB, 64,
      64);
  GstQuery *q = gst_query_new_drain ();

  push_n (h, GST_VIDEO_FORMAT_RGB, 0, 3);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_pad_peer_query (h->srcpad, q);
  gst_query_unref (q);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  gst_harness_teardown (h);
}

GST_END_TEST;

static GstPadProbeReturn
record_order (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GString *order = user_data;

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER)
    g_string_append (order, "B");
  else if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);

    if (GST_EVENT_TYPE (ev) == GST_EVENT_TAG)
      g_string_append (order, "T");
    else if (GST_EVENT_TYPE (ev) == GST_EVENT_EOS)
      g_string_append (order, "E");
  }
  return GST_PAD_PROBE_OK;
}

/* Serialized events stay in order with the frames held before them. */
GST_START_TEST (test_batch_event_order)
{
  GstHarness *h = classify_harness ("batch-size=3", GST_VIDEO_FORMAT_RGB, 64,
      64);
  GString *order = g_string_new (NULL);
  GstPad *src = gst_element_get_static_pad (h->element, "src");

  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, record_order, order, NULL);
  push_n (h, GST_VIDEO_FORMAT_RGB, 0, 1);
  fail_unless (gst_harness_push_event (h,
          gst_event_new_tag (gst_tag_list_new (GST_TAG_TITLE, "x", NULL))));
  push_n (h, GST_VIDEO_FORMAT_RGB, 1, 3);
  fail_unless (gst_harness_push_event (h,
          gst_event_new_tag (gst_tag_list_new (GST_TAG_TITLE, "y", NULL))));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_string (order->str, "BTBBBTE");

  gst_object_unref (src);
  g_string_free (order, TRUE);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- messages ----------------------------------------------------------- */

GST_START_TEST (test_messages)
{
  GstElement *e = make_classify ("post-messages=true inference-interval=2");
  GstBus *bus = vim_test_attach_bus (e);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  GstMessage *msg;
  guint i;

  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=64,height=64,framerate=30/1");
  for (i = 0; i < 4; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64, 300 + i, i));
    GstVimClassificationMeta *meta = get_meta (out);
    const GstStructure *s;
    const GValue *labels, *ids, *scores;
    guint64 frame_number, ts;
    gboolean fresh;
    guint age, j;
    gint top_id;
    gdouble top_score;

    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
    fail_unless (msg != NULL, "no message for frame %u", i);
    fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (e));
    s = gst_message_get_structure (msg);
    fail_unless (gst_structure_has_name (s, "vim-classification"));
    fail_unless (gst_structure_get_uint64 (s, "frame-number", &frame_number));
    fail_unless_equals_uint64 (frame_number, i);
    fail_unless (gst_structure_get_uint64 (s, "timestamp", &ts));
    fail_unless_equals_uint64 (ts, GST_BUFFER_PTS (out));
    fail_unless (gst_structure_get_boolean (s, "fresh", &fresh));
    fail_unless_equals_int (fresh, i % 2 == 0);
    fail_unless (gst_structure_get_uint (s, "age", &age));
    fail_unless_equals_int (age, i % 2);
    fail_unless_equals_string (gst_structure_get_string (s, "model"),
        MODEL_NAME);
    fail_unless_equals_string (gst_structure_get_string (s, "top-label"),
        meta->results[0].label);
    fail_unless (gst_structure_get_int (s, "top-class-id", &top_id));
    fail_unless_equals_int (top_id, meta->results[0].class_id);
    fail_unless (gst_structure_get_double (s, "top-score", &top_score));
    fail_unless_equals_float (top_score, meta->results[0].score);
    labels = gst_structure_get_value (s, "labels");
    ids = gst_structure_get_value (s, "class-ids");
    scores = gst_structure_get_value (s, "scores");
    fail_unless (labels && ids && scores);
    fail_unless_equals_int (gst_value_array_get_size (labels), TOP_K);
    fail_unless_equals_int (gst_value_array_get_size (ids), TOP_K);
    fail_unless_equals_int (gst_value_array_get_size (scores), TOP_K);
    for (j = 0; j < TOP_K; j++) {
      fail_unless_equals_string (g_value_get_string
          (gst_value_array_get_value (labels, j)), meta->results[j].label);
      fail_unless_equals_int (g_value_get_int (gst_value_array_get_value (ids,
                  j)), meta->results[j].class_id);
      fail_unless_equals_float (g_value_get_double (gst_value_array_get_value
              (scores, j)), meta->results[j].score);
    }
    gst_message_unref (msg);
    gst_buffer_unref (out);
  }

  /* off: no more messages */
  g_object_set (e, "post-messages", FALSE, NULL);
  gst_buffer_unref (gst_harness_push_and_pull (h,
          vim_test_frame_at (GST_VIDEO_FORMAT_RGB, 64, 64, 310, 4)));
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT) == NULL);

  gst_harness_teardown (h);
  vim_test_detach_bus (e, bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* ---- caps ---------------------------------------------------------------- */

GST_START_TEST (test_caps)
{
  GstElement *e = make_classify (NULL);
  GstHarness *h;
  GstPad *sink = gst_element_get_static_pad (e, "sink");
  GstCaps *caps, *allowed;
  guint f, i;

  for (f = 0; f < G_N_ELEMENTS (all_formats); f++) {
    caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING,
        gst_video_format_to_string (all_formats[f]), "width", G_TYPE_INT, 33,
        "height", G_TYPE_INT, 17, "framerate", GST_TYPE_FRACTION, 0, 1, NULL);
    fail_unless (gst_pad_query_accept_caps (sink, caps), "%" GST_PTR_FORMAT,
        caps);
    gst_caps_unref (caps);
  }
  caps = gst_caps_from_string ("video/x-raw,format=YUY2,width=64,height=64");
  fail_if (gst_pad_query_accept_caps (sink, caps));
  gst_caps_unref (caps);
  caps = gst_caps_from_string ("audio/x-raw");
  fail_if (gst_pad_query_accept_caps (sink, caps));
  gst_caps_unref (caps);

  /* running on the CPU, no CUDA memory is asked for */
  h = gst_harness_new_with_element (e, "sink", "src");
  allowed = gst_pad_query_caps (sink, NULL);
  for (i = 0; i < gst_caps_get_size (allowed); i++) {
    GstCapsFeatures *features = gst_caps_get_features (allowed, i);
    fail_if (features && gst_caps_features_contains (features,
            "memory:CUDAMemory"), "%" GST_PTR_FORMAT, allowed);
  }
  fail_if (gst_caps_is_empty (allowed));
  gst_caps_unref (allowed);

  gst_harness_teardown (h);
  gst_object_unref (sink);
  gst_object_unref (e);
}

GST_END_TEST;

/* ---- errors ------------------------------------------------------------- */

GST_START_TEST (test_missing_model)
{
  GstElement *e = make_classify ("model-file=/nonexistent/dir/missing.safetensors");

  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      "/nonexistent/dir/missing.safetensors");
  gst_object_unref (e);
}

GST_END_TEST;

static gchar *
write_temp (const gchar * name, const gchar * data, gsize size)
{
  gchar *dir = g_dir_make_tmp ("vimclassify-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, name, NULL);

  fail_unless (g_file_set_contents (path, data, size, NULL));
  g_free (dir);
  return path;
}

static void
remove_temp (gchar * path)
{
  gchar *dir = g_path_get_dirname (path);

  g_unlink (path);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

GST_START_TEST (test_corrupt_model)
{
  gchar *contents;
  gsize size;
  gchar *path;
  GstElement *e;

  /* garbage */
  path = write_temp ("garbage.safetensors", "this is not a model", 19);
  e = make_classify (NULL);
  g_object_set (e, "model-file", path, NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED, path);
  gst_object_unref (e);
  remove_temp (path);

  /* a real model cut short */
  fail_unless (g_file_get_contents (vim_test_model_path (), &contents, &size,
          NULL));
  path = write_temp ("truncated.safetensors", contents, size / 2);
  e = make_classify (NULL);
  g_object_set (e, "model-file", path, NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED, path);
  gst_object_unref (e);
  remove_temp (path);
  g_free (contents);
}

GST_END_TEST;

GST_START_TEST (test_unreadable_model)
{
  gchar *dir = g_dir_make_tmp ("vimclassify-XXXXXX", NULL);
  GstElement *e = make_classify (NULL);

  /* exists, but can't be read as a file */
  g_object_set (e, "model-file", dir, NULL);
  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, dir);
  gst_object_unref (e);
  g_rmdir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_missing_labels_file)
{
  GstElement *e = make_classify ("labels-file=/nonexistent/labels.txt");

  vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      "/nonexistent/labels.txt");
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_default_model)
{
  GstElement *e = gst_element_factory_make ("vimclassify", NULL);
  gchar *path = NULL;

  /* unset: reads back as the default model's path */
  g_object_get (e, "model-file", &path, NULL);
  fail_unless (path != NULL);
  fail_unless (g_str_has_suffix (path, "vim-cifar10-classification.safetensors"),
      "%s", path);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    /* not installed here: the error says what is missing */
    g_object_set (e, "device", 1, NULL);
    vim_test_assert_start_fails (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "vim-cifar10-classification.safetensors");
  }
  g_free (path);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_device)
{
  GstElement *e;
  GstBus *bus;
  GError *err = NULL;
  gchar *debug = NULL;
  int n_devices = 0;

  if (vim_cuda_available (&n_devices, NULL)) {
    GST_INFO ("CUDA available (%d devices): the no-GPU cases don't apply",
        n_devices);
    return;
  }

  /* device=cuda without a GPU: a LIBRARY error */
  e = make_classify ("device=cuda");
  vim_test_assert_start_fails (e, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT, "cuda");
  gst_object_unref (e);

  /* auto: the CPU, with a warning */
  e = make_classify ("device=auto precision=fp16");
  bus = vim_test_attach_bus (e);
  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_PAUSED, bus, &err,
          &debug), GST_STATE_CHANGE_SUCCESS);
  fail_unless (err != NULL, "no warning");
  fail_unless (err->domain == GST_LIBRARY_ERROR);
  fail_unless (strstr (err->message, "CPU") != NULL, "%s", err->message);
  g_clear_error (&err);
  g_free (debug);
  fail_unless_equals_int (vim_test_set_state (e, GST_STATE_NULL, bus, NULL,
          NULL), GST_STATE_CHANGE_SUCCESS);
  vim_test_detach_bus (e, bus);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_ready_only_properties)
{
  GstHarness *h = classify_harness ("batch-size=2", GST_VIDEO_FORMAT_RGB, 64,
      64);
  gchar *path = NULL;
  guint batch = 0;

  /* ignored while playing */
  g_object_set (h->element, "model-file", "/elsewhere.safetensors",
      "batch-size", 5, NULL);
  g_object_get (h->element, "model-file", &path, "batch-size", &batch, NULL);
  fail_unless_equals_string (path, vim_test_model_path ());
  fail_unless_equals_int (batch, 2);
  g_free (path);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The engine refusing a frame is a STREAM error and a flow error, never a
 * frame without result (frames wider than 32768 pixels are out of its
 * range). */
GST_START_TEST (test_engine_failure)
{
  GstElement *e = make_classify (NULL);
  GstBus *bus = vim_test_attach_bus (e);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  GstBuffer *in = gst_buffer_new_allocate (NULL, 32769, NULL);
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;

  gst_buffer_memset (in, 0, 0x40, 32769);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=GRAY8,width=32769,height=1,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_ERROR);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, &debug);
  GST_INFO ("error: %s (%s)", err->message, debug);
  fail_unless (err->domain == GST_STREAM_ERROR);
  fail_unless_equals_int (err->code, GST_STREAM_ERROR_FAILED);
  fail_unless (strstr (debug, "32769") != NULL, "%s", debug);
  g_clear_error (&err);
  g_free (debug);
  gst_message_unref (msg);

  gst_harness_teardown (h);
  vim_test_detach_bus (e, bus);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
vimclassify_suite (void)
{
  Suite *s = suite_create ("vimclassify");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_formats_match_engine);
  tcase_add_test (tc, test_meta_values);
  tcase_add_test (tc, test_top_k_and_threshold);
  tcase_add_test (tc, test_labels_file);
  tcase_add_test (tc, test_timestamps_flags_preserved);
  tcase_add_test (tc, test_read_only);
  tcase_add_test (tc, test_interval_stale);
  tcase_add_test (tc, test_batch_eos);
  tcase_add_test (tc, test_batch_with_interval);
  tcase_add_test (tc, test_batch_latency);
  tcase_add_test (tc, test_batch_caps_change);
  tcase_add_test (tc, test_batch_flush);
  tcase_add_test (tc, test_batch_drain_query);
  tcase_add_test (tc, test_batch_event_order);
  tcase_add_test (tc, test_messages);
  tcase_add_test (tc, test_caps);
  tcase_add_test (tc, test_missing_model);
  tcase_add_test (tc, test_corrupt_model);
  tcase_add_test (tc, test_unreadable_model);
  tcase_add_test (tc, test_missing_labels_file);
  tcase_add_test (tc, test_default_model);
  tcase_add_test (tc, test_device);
  tcase_add_test (tc, test_ready_only_properties);
  tcase_add_test (tc, test_engine_failure);
  return s;
}

GST_CHECK_MAIN (vimclassify);
