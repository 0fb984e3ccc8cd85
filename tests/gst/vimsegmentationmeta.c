/* gst-vim GStreamer tests: GstVimSegmentationMeta of the metadata library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gst/vim/vimmeta.h>

/* A 5x3 mask whose pixel (mx, my) holds class my * 5 + mx, and a
 * confidence map holding 200 + the same. */
static GstBuffer *
make_mask (guint8 base)
{
  GstBuffer *mask = gst_vim_segmentation_mask_new (5, 3);
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (mask);
  GstMapInfo map;
  guint mx, my;

  fail_unless (gst_buffer_map (mask, &map, GST_MAP_WRITE));
  for (my = 0; my < 3; my++)
    for (mx = 0; mx < 5; mx++)
      map.data[vmeta->offset[0] + my * vmeta->stride[0] + mx] =
          base + my * 5 + mx;
  gst_buffer_unmap (mask, &map);
  return mask;
}

static const gchar *labels[15] = { "road", "sky", NULL, "car", };
static gfloat fractions[15];

static GstVimSegmentationMeta *
add_meta (GstBuffer * buf)
{
  GstBuffer *mask = make_mask (0), *conf = make_mask (200);
  GstVimSegmentationMeta *meta;
  gchar *model = g_strdup ("seg-model");
  gchar *label0 = g_strdup ("road");
  const gchar *l[15];
  guint i;

  memcpy (l, labels, sizeof (l));
  l[0] = label0;
  for (i = 0; i < 15; i++)
    fractions[i] = 1.0f / 15;
  /* the frame rectangle: x 10 .. 110, y 20 .. 80 of the frame */
  meta = gst_buffer_add_vim_segmentation_meta (buf, mask, conf, 10, 20, 100,
      60, model, 15, l, fractions);
  g_free (model);               /* interned */
  g_free (label0);
  gst_buffer_unref (mask);      /* the meta holds its own references */
  gst_buffer_unref (conf);
  fail_unless (meta != NULL);
  meta->fresh = FALSE;
  meta->age = 2;
  meta->frame_number = 17;
  return meta;
}

static void
check_meta (GstVimSegmentationMeta * meta, gdouble sx, gdouble sy)
{
  GstVideoMeta *vmeta;
  guint i;

  fail_unless (meta != NULL);
  fail_unless (GST_IS_BUFFER (meta->mask));
  vmeta = gst_buffer_get_video_meta (meta->mask);
  fail_unless (vmeta != NULL);
  fail_unless_equals_int (vmeta->format, GST_VIDEO_FORMAT_GRAY8);
  fail_unless_equals_int (vmeta->width, 5);
  fail_unless_equals_int (vmeta->height, 3);
  fail_unless_equals_int (vmeta->stride[0], 8);        /* 4-aligned */
  fail_unless_equals_int (meta->mask_width, 5);
  fail_unless_equals_int (meta->mask_height, 3);
  fail_unless (GST_IS_BUFFER (meta->confidence));
  fail_unless_equals_float (meta->x, 10 * sx);
  fail_unless_equals_float (meta->y, 20 * sy);
  fail_unless_equals_float (meta->width, 100 * sx);
  fail_unless_equals_float (meta->height, 60 * sy);
  fail_unless_equals_string (meta->model, "seg-model");
  fail_unless_equals_int (meta->n_classes, 15);
  fail_unless (meta->labels != NULL);
  fail_unless_equals_string (meta->labels[0], "road");
  fail_unless_equals_string (meta->labels[1], "sky");
  fail_unless (meta->labels[2] == NULL);
  fail_unless_equals_string (meta->labels[3], "car");
  fail_unless (meta->labels[14] == NULL);
  fail_unless (meta->fractions != NULL && meta->fractions != fractions);
  for (i = 0; i < 15; i++)
    fail_unless_equals_float (meta->fractions[i], 1.0f / 15);
  fail_unless (!meta->fresh);
  fail_unless_equals_int (meta->age, 2);
  fail_unless_equals_uint64 (meta->frame_number, 17);

  /* mask pixel (mx, my) covers frame x 10 + 20 mx .. 10 + 20 (mx + 1) and
   * y 20 + 20 my .. 20 + 20 (my + 1), scaled */
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          10 * sx, 20 * sy), 0);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          29.9 * sx, 39.9 * sy), 0);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          30 * sx, 40 * sy), 6);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          109.9 * sx, 79.9 * sy), 14);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          95 * sx, 25 * sy), 4);
  /* outside the rectangle */
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          9.9 * sx, 50 * sy), -1);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          110 * sx, 50 * sy), -1);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          50 * sx, 80 * sy), -1);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta,
          50 * sx, 19 * sy), -1);
}

GST_START_TEST (test_add_get)
{
  GstBuffer *buf = gst_buffer_new ();
  GstVimSegmentationMeta *meta;
  GstBuffer *mask;

  fail_unless (gst_buffer_get_vim_segmentation_meta (buf) == NULL);
  add_meta (buf);
  meta = gst_buffer_get_vim_segmentation_meta (buf);
  check_meta (meta, 1.0, 1.0);
  fail_unless (meta->meta.info == GST_VIM_SEGMENTATION_META_INFO);
  fail_unless (gst_meta_api_type_has_tag (GST_VIM_SEGMENTATION_META_API_TYPE,
          g_quark_from_string (GST_META_TAG_VIDEO_STR)));
  fail_unless (gst_meta_api_type_has_tag (GST_VIM_SEGMENTATION_META_API_TYPE,
          g_quark_from_string (GST_META_TAG_VIDEO_SIZE_STR)));
  /* the classification meta is a different API */
  fail_unless (gst_buffer_get_vim_classification_meta (buf) == NULL);

  /* labels, fractions and confidence are optional */
  fail_unless (gst_buffer_remove_meta (buf, (GstMeta *) meta));
  mask = gst_vim_segmentation_mask_new (1, 1);
  meta = gst_buffer_add_vim_segmentation_meta (buf, mask, NULL, 0, 0, 4, 4,
      NULL, 2, NULL, NULL);
  gst_buffer_unref (mask);
  fail_unless (meta != NULL);
  fail_unless (meta->fresh);
  fail_unless_equals_int (meta->age, 0);
  fail_unless (meta->labels == NULL && meta->fractions == NULL);
  fail_unless (meta->confidence == NULL && meta->model == NULL);
  fail_unless_equals_int (gst_vim_segmentation_meta_get_class_at (meta, 3.9,
          0), 0);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* gst-check catches criticals of GStreamer's own log domains only */
static void
meta_lib_critical (const gchar * domain, GLogLevelFlags level,
    const gchar * message, gpointer user_data)
{
  if (_gst_check_expecting_log)
    _gst_check_raised_critical = TRUE;
  else
    fail ("unexpected critical: %s", message);
}

GST_START_TEST (test_add_refuses_bad_masks)
{
  GstBuffer *buf = gst_buffer_new ();
  GstBuffer *plain = gst_buffer_new_allocate (NULL, 16, NULL);
  GstBuffer *mask = gst_vim_segmentation_mask_new (4, 4);
  GstBuffer *other = gst_vim_segmentation_mask_new (4, 3);

  /* no GstVideoMeta */
  ASSERT_CRITICAL (fail_unless (gst_buffer_add_vim_segmentation_meta (buf,
              plain, NULL, 0, 0, 4, 4, NULL, 2, NULL, NULL) == NULL));
  /* confidence of another size */
  ASSERT_CRITICAL (fail_unless (gst_buffer_add_vim_segmentation_meta (buf,
              mask, other, 0, 0, 4, 4, NULL, 2, NULL, NULL) == NULL));
  /* empty rectangle */
  ASSERT_CRITICAL (fail_unless (gst_buffer_add_vim_segmentation_meta (buf,
              mask, NULL, 0, 0, 0, 4, NULL, 2, NULL, NULL) == NULL));
  fail_unless (gst_buffer_get_vim_segmentation_meta (buf) == NULL);
  gst_buffer_unref (plain);
  gst_buffer_unref (mask);
  gst_buffer_unref (other);
  gst_buffer_unref (buf);
}

GST_END_TEST;

GST_START_TEST (test_copy_shares_mask)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64, NULL);
  GstBuffer *copy, *deep, *mask;
  GstVimSegmentationMeta *meta;

  meta = add_meta (buf);
  mask = meta->mask;
  copy = gst_buffer_copy (buf);
  gst_buffer_unref (buf);       /* the copy holds its own references */
  meta = gst_buffer_get_vim_segmentation_meta (copy);
  check_meta (meta, 1.0, 1.0);
  fail_unless (meta->mask == mask);     /* shared, not copied */
  deep = gst_buffer_copy_deep (copy);
  gst_buffer_unref (copy);
  check_meta (gst_buffer_get_vim_segmentation_meta (deep), 1.0, 1.0);
  gst_buffer_unref (deep);
}

GST_END_TEST;

GST_START_TEST (test_transform)
{
  GstBuffer *buf = gst_buffer_new ();
  GstBuffer *dest = gst_buffer_new ();
  GstVimSegmentationMeta *meta = add_meta (buf);
  const GstMetaInfo *info = GST_VIM_SEGMENTATION_META_INFO;
  GstVideoInfo in_info, out_info;
  GstVideoMetaTransform scale = { &in_info, &out_info };

  gst_video_info_set_format (&in_info, GST_VIDEO_FORMAT_RGB, 640, 480);
  gst_video_info_set_format (&out_info, GST_VIDEO_FORMAT_RGB, 320, 720);

  /* scaling moves the rectangle, the mask stays */
  fail_unless (info->transform_func (dest, (GstMeta *) meta, buf,
          gst_video_meta_transform_scale_get_quark (), &scale));
  check_meta (gst_buffer_get_vim_segmentation_meta (dest), 0.5, 1.5);
  fail_unless (gst_buffer_get_vim_segmentation_meta (dest)->mask == meta->mask);

  /* a transform it doesn't know: refused */
  fail_if (info->transform_func (dest, (GstMeta *) meta, buf,
          g_quark_from_static_string ("vim-test-unknown"), NULL));
  gst_buffer_unref (dest);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* Through the real elements that scale and convert. */
static void
through (const gchar * launch, const gchar * out_caps, gdouble sx, gdouble sy)
{
  GstHarness *h = gst_harness_new_parse (launch);
  GstVideoInfo info;
  GstBuffer *in, *out;

  gst_harness_set_caps_str (h,
      "video/x-raw,format=RGB,width=128,height=96,framerate=30/1", out_caps);
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, 128, 96);
  in = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (in, 0, 0x80, GST_VIDEO_INFO_SIZE (&info));
  add_meta (in);
  out = gst_harness_push_and_pull (h, in);
  check_meta (gst_buffer_get_vim_segmentation_meta (out), sx, sy);
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
  through ("videoscale", "video/x-raw,format=RGB,width=64,height=48", 0.5,
      0.5);
  through ("videoconvert", "video/x-raw,format=I420,width=128,height=96", 1.0,
      1.0);
  through ("videoconvert ! videoscale",
      "video/x-raw,format=NV12,width=256,height=48", 2.0, 0.5);
}

GST_END_TEST;

static Suite *
vimsegmentationmeta_suite (void)
{
  Suite *s = suite_create ("vimsegmentationmeta");
  TCase *tc = tcase_create ("general");

  g_log_set_handler ("GStreamer-VimMeta", G_LOG_LEVEL_CRITICAL,
      meta_lib_critical, NULL);

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_add_get);
  tcase_add_test (tc, test_add_refuses_bad_masks);
  tcase_add_test (tc, test_copy_shares_mask);
  tcase_add_test (tc, test_transform);
  tcase_add_test (tc, test_survives_scale_and_convert);
  return s;
}

GST_CHECK_MAIN (vimsegmentationmeta);
