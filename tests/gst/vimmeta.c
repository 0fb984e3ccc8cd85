/* gst-vim GStreamer tests: the metadata library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

static GstVimClassificationMeta *
add_meta (GstBuffer * buf)
{
  GstVimClassification results[2] = {
    {7, 0.75f, "seven"},
    {2, 0.125f, NULL},
  };
  GstVimClassificationMeta *meta;
  gchar *model = g_strdup ("test-model");

  meta = gst_buffer_add_vim_classification_meta (buf, model, 10, results, 2);
  g_free (model);               /* the meta interned it */
  fail_unless (meta != NULL);
  meta->fresh = FALSE;
  meta->age = 3;
  meta->frame_number = 42;
  return meta;
}

static void
check_meta (GstVimClassificationMeta * meta)
{
  fail_unless (meta != NULL);
  fail_unless_equals_string (meta->model, "test-model");
  fail_unless_equals_int (meta->n_classes, 10);
  fail_unless_equals_int (meta->n_results, 2);
  fail_unless_equals_int (meta->results[0].class_id, 7);
  fail_unless_equals_float (meta->results[0].score, 0.75f);
  fail_unless_equals_string (meta->results[0].label, "seven");
  fail_unless_equals_int (meta->results[1].class_id, 2);
  fail_unless_equals_float (meta->results[1].score, 0.125f);
  fail_unless (meta->results[1].label == NULL);
  fail_unless (!meta->fresh);
  fail_unless_equals_int (meta->age, 3);
  fail_unless_equals_uint64 (meta->frame_number, 42);
  fail_unless (gst_vim_classification_meta_get_top (meta) == &meta->results[0]);
}

GST_START_TEST (test_add_get)
{
  GstBuffer *buf = gst_buffer_new ();
  GstVimClassificationMeta *meta;

  fail_unless (gst_buffer_get_vim_classification_meta (buf) == NULL);
  add_meta (buf);
  meta = gst_buffer_get_vim_classification_meta (buf);
  check_meta (meta);
  fail_unless (meta->meta.info == GST_VIM_CLASSIFICATION_META_INFO);
  fail_unless (gst_meta_api_type_has_tag (GST_VIM_CLASSIFICATION_META_API_TYPE,
          g_quark_from_string (GST_META_TAG_VIDEO_STR)));
  fail_unless (gst_meta_api_type_has_tag (GST_VIM_CLASSIFICATION_META_API_TYPE,
          g_quark_from_string (GST_META_TAG_VIDEO_SIZE_STR)));

  /* an empty result is a valid result */
  fail_unless (gst_buffer_remove_meta (buf, (GstMeta *) meta));
  meta = gst_buffer_add_vim_classification_meta (buf, NULL, 10, NULL, 0);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->n_results, 0);
  fail_unless (meta->fresh);
  fail_unless (gst_vim_classification_meta_get_top (meta) == NULL);
  gst_buffer_unref (buf);
}

GST_END_TEST;

GST_START_TEST (test_copy)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64, NULL);
  GstBuffer *copy, *deep;

  add_meta (buf);
  copy = gst_buffer_copy (buf);
  gst_buffer_unref (buf);       /* the copy owns its own arrays */
  check_meta (gst_buffer_get_vim_classification_meta (copy));
  deep = gst_buffer_copy_deep (copy);
  gst_buffer_unref (copy);
  check_meta (gst_buffer_get_vim_classification_meta (deep));
  gst_buffer_unref (deep);
}

GST_END_TEST;

GST_START_TEST (test_transform)
{
  GstBuffer *buf = gst_buffer_new ();
  GstBuffer *dest = gst_buffer_new ();
  GstVimClassificationMeta *meta = add_meta (buf);
  const GstMetaInfo *info = GST_VIM_CLASSIFICATION_META_INFO;
  GstVideoInfo in_info, out_info;
  GstVideoMetaTransform scale = { &in_info, &out_info };

  gst_video_info_set_format (&in_info, GST_VIDEO_FORMAT_RGB, 640, 480);
  gst_video_info_set_format (&out_info, GST_VIDEO_FORMAT_RGB, 64, 48);

  /* scaling keeps a whole-frame result as it is */
  fail_unless (info->transform_func (dest, (GstMeta *) meta, buf,
          gst_video_meta_transform_scale_get_quark (), &scale));
  check_meta (gst_buffer_get_vim_classification_meta (dest));

  /* a transform it doesn't know: refused */
  fail_if (info->transform_func (dest, (GstMeta *) meta, buf,
          g_quark_from_static_string ("vim-test-unknown"), NULL));
  gst_buffer_unref (dest);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* Through the real elements that scale and convert. */
static void
through (const gchar * launch, const gchar * out_caps)
{
  GstHarness *h = gst_harness_new_parse (launch);
  GstVideoInfo info;
  GstBuffer *in, *out;

  gst_harness_set_caps_str (h,
      "video/x-raw,format=RGB,width=64,height=48,framerate=30/1", out_caps);
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 64, 48);
  in = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (in, 0, 0x80, GST_VIDEO_INFO_SIZE (&info));
  add_meta (in);
  out = gst_harness_push_and_pull (h, in);
  check_meta (gst_buffer_get_vim_classification_meta (out));
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_START_TEST (test_survives_scale_and_convert)
{
  GstElementFactory *f = gst_element_factory_find ("videoscale");

  if (!f) {
    GST_WARNING ("no videoscale: skipped");
    return;
  }
  gst_object_unref (f);
  through ("videoscale", "video/x-raw,format=RGB,width=32,height=24");
  through ("videoconvert", "video/x-raw,format=I420,width=64,height=48");
  through ("videoconvert ! videoscale",
      "video/x-raw,format=NV12,width=128,height=96");
}

GST_END_TEST;

static Suite *
vimmeta_suite (void)
{
  Suite *s = suite_create ("vimmeta");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_add_get);
  tcase_add_test (tc, test_copy);
  tcase_add_test (tc, test_transform);
  tcase_add_test (tc, test_survives_scale_and_convert);
  return s;
}

GST_CHECK_MAIN (vimmeta);
