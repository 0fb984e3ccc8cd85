/* gst-vim result metadata: per-pixel (semantic) segmentation.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:gstvimsegmentationmeta
 * @title: GstVimSegmentationMeta
 * @short_description: class map of a frame, with its frame rectangle
 *
 * `vimsegment` attaches one #GstVimSegmentationMeta to every buffer it
 * outputs. Read a class at a frame position, or map the whole mask:
 *
 * |[<!-- language="C" -->
 * GstVimSegmentationMeta *meta = gst_buffer_get_vim_segmentation_meta (buf);
 * if (meta) {
 *   gint c = gst_vim_segmentation_meta_get_class_at (meta, 320, 240);
 *   GstVideoMeta *vmeta = gst_buffer_get_video_meta (meta->mask);
 *   GstMapInfo map;
 *
 *   if (gst_buffer_map (meta->mask, &map, GST_MAP_READ)) {
 *     // class of mask pixel (mx, my): map.data[vmeta->offset[0] + my * vmeta->stride[0] + mx]
 *     gst_buffer_unmap (meta->mask, &map);
 *   }
 * }
 * ]|
 */

#include <math.h>
#include <string.h>
#include <gst/video/video.h>

#include "gst/vim/vimsegmentationmeta.h"

static gboolean
gst_vim_segmentation_meta_init (GstMeta * meta, gpointer params,
    GstBuffer * buffer)
{
  GstVimSegmentationMeta *smeta = (GstVimSegmentationMeta *) meta;

  smeta->mask = NULL;
  smeta->confidence = NULL;
  smeta->mask_width = smeta->mask_height = 0;
  smeta->x = smeta->y = smeta->width = smeta->height = 0.0;
  smeta->model = NULL;
  smeta->n_classes = 0;
  smeta->labels = NULL;
  smeta->fractions = NULL;
  smeta->fresh = TRUE;
  smeta->age = 0;
  smeta->frame_number = 0;
  memset (smeta->_gst_reserved, 0, sizeof (smeta->_gst_reserved));
  return TRUE;
}

static void
gst_vim_segmentation_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  GstVimSegmentationMeta *smeta = (GstVimSegmentationMeta *) meta;

  gst_clear_buffer (&smeta->mask);
  gst_clear_buffer (&smeta->confidence);
  g_clear_pointer (&smeta->labels, g_free);
  g_clear_pointer (&smeta->fractions, g_free);
}

static gboolean
gst_vim_segmentation_meta_transform (GstBuffer * dest, GstMeta * meta,
    GstBuffer * buffer, GQuark type, gpointer data)
{
  GstVimSegmentationMeta *src = (GstVimSegmentationMeta *) meta;
  GstVimSegmentationMeta *dmeta;
  gdouble sx = 1.0, sy = 1.0;

  if (GST_VIDEO_META_TRANSFORM_IS_SCALE (type)) {
    GstVideoMetaTransform *trans = data;
    gint iw = GST_VIDEO_INFO_WIDTH (trans->in_info);
    gint ih = GST_VIDEO_INFO_HEIGHT (trans->in_info);

    if (iw <= 0 || ih <= 0)
      return FALSE;
    /* the mask stays as it is; only where it lies in the frame changes */
    sx = (gdouble) GST_VIDEO_INFO_WIDTH (trans->out_info) / iw;
    sy = (gdouble) GST_VIDEO_INFO_HEIGHT (trans->out_info) / ih;
  } else if (!GST_META_TRANSFORM_IS_COPY (type)) {
    /* crop, flip, rotation...: a mask we can't keep right, so drop it */
    return FALSE;
  }

  /* the mask buffers are shared, not copied: nobody writes them */
  dmeta = gst_buffer_add_vim_segmentation_meta (dest, src->mask,
      src->confidence, src->x * sx, src->y * sy, src->width * sx,
      src->height * sy, src->model, src->n_classes, src->labels,
      src->fractions);
  if (!dmeta)
    return FALSE;
  dmeta->fresh = src->fresh;
  dmeta->age = src->age;
  dmeta->frame_number = src->frame_number;
  return TRUE;
}

/**
 * gst_vim_segmentation_meta_api_get_type:
 *
 * Returns: the #GType of the #GstVimSegmentationMeta API, tagged
 *     %GST_META_TAG_VIDEO_STR and %GST_META_TAG_VIDEO_SIZE_STR
 */
GType
gst_vim_segmentation_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_SIZE_STR, NULL
  };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstVimSegmentationMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

/**
 * gst_vim_segmentation_meta_get_info:
 *
 * Returns: (transfer none): the #GstMetaInfo of #GstVimSegmentationMeta
 */
const GstMetaInfo *
gst_vim_segmentation_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi =
        gst_meta_register (GST_VIM_SEGMENTATION_META_API_TYPE,
        "GstVimSegmentationMeta", sizeof (GstVimSegmentationMeta),
        gst_vim_segmentation_meta_init, gst_vim_segmentation_meta_free,
        gst_vim_segmentation_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

static gboolean
is_gray8_mask (GstBuffer * mask, guint * width, guint * height)
{
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (mask);

  if (!vmeta || vmeta->format != GST_VIDEO_FORMAT_GRAY8 || vmeta->width == 0
      || vmeta->height == 0 || vmeta->stride[0] < (gint) vmeta->width)
    return FALSE;
  *width = vmeta->width;
  *height = vmeta->height;
  return TRUE;
}

/**
 * gst_buffer_add_vim_segmentation_meta:
 * @buffer: a writable #GstBuffer
 * @mask: (transfer none): the class map, GRAY8 with a #GstVideoMeta (see
 *     gst_vim_segmentation_mask_new()); the meta takes a reference
 * @confidence: (transfer none) (nullable): GRAY8 confidence of the same
 *     size, or %NULL
 * @x: left edge of the frame rectangle the mask covers
 * @y: top edge of the rectangle
 * @width: width of the rectangle, > 0
 * @height: height of the rectangle, > 0
 * @model: (nullable): name of the model
 * @n_classes: number of classes of the model, 1 .. 256
 * @labels: (array length=n_classes) (nullable): class names (entries may
 *     be %NULL), copied and interned
 * @fractions: (array length=n_classes) (nullable): share of mask pixels
 *     per class, copied
 *
 * Attaches a fresh result (@fresh %TRUE, @age 0, @frame_number 0; set the
 * fields afterwards for anything else).
 *
 * Returns: (transfer none) (nullable): the new meta on @buffer, %NULL when
 *     @mask or @confidence is not a GRAY8 buffer with a #GstVideoMeta or
 *     their sizes differ
 */
GstVimSegmentationMeta *
gst_buffer_add_vim_segmentation_meta (GstBuffer * buffer, GstBuffer * mask,
    GstBuffer * confidence, gdouble x, gdouble y, gdouble width,
    gdouble height, const gchar * model, guint n_classes,
    const gchar * const *labels, const gfloat * fractions)
{
  GstVimSegmentationMeta *meta;
  guint mw, mh, cw, ch, i;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (GST_IS_BUFFER (mask), NULL);
  g_return_val_if_fail (confidence == NULL || GST_IS_BUFFER (confidence), NULL);
  g_return_val_if_fail (width > 0 && height > 0, NULL);
  g_return_val_if_fail (n_classes >= 1 && n_classes <= 256, NULL);
  g_return_val_if_fail (is_gray8_mask (mask, &mw, &mh), NULL);
  g_return_val_if_fail (confidence == NULL
      || (is_gray8_mask (confidence, &cw, &ch) && cw == mw && ch == mh), NULL);

  meta = (GstVimSegmentationMeta *) gst_buffer_add_meta (buffer,
      GST_VIM_SEGMENTATION_META_INFO, NULL);
  if (!meta)
    return NULL;

  meta->mask = gst_buffer_ref (mask);
  meta->confidence = confidence ? gst_buffer_ref (confidence) : NULL;
  meta->mask_width = mw;
  meta->mask_height = mh;
  meta->x = x;
  meta->y = y;
  meta->width = width;
  meta->height = height;
  meta->model = g_intern_string (model);
  meta->n_classes = n_classes;
  if (labels) {
    /* interned: the meta can be copied and freed in any order */
    meta->labels = g_new0 (const gchar *, n_classes);
    for (i = 0; i < n_classes; i++)
      meta->labels[i] = g_intern_string (labels[i]);
  }
  if (fractions)
    meta->fractions = g_memdup2 (fractions, n_classes * sizeof (gfloat));
  return meta;
}

/**
 * gst_vim_segmentation_meta_get_class_at:
 * @meta: a #GstVimSegmentationMeta
 * @frame_x: horizontal position in frame pixels (pixel centres are at .5)
 * @frame_y: vertical position in frame pixels
 *
 * Looks up the class of the mask pixel covering a frame position (nearest
 * neighbour, as the mapping in #GstVimSegmentationMeta defines it). Maps the
 * mask for every call: to read many pixels, map @mask once instead.
 *
 * Returns: the class id, or -1 when the position lies outside the frame
 *     rectangle the mask covers (or the mask can't be read)
 */
gint
gst_vim_segmentation_meta_get_class_at (const GstVimSegmentationMeta * meta,
    gdouble frame_x, gdouble frame_y)
{
  GstVideoMeta *vmeta;
  GstMapInfo map;
  gdouble fx, fy;
  guint mx, my;
  gsize off;
  gint ret = -1;

  g_return_val_if_fail (meta != NULL, -1);
  g_return_val_if_fail (meta->mask != NULL, -1);

  fx = (frame_x - meta->x) / meta->width;
  fy = (frame_y - meta->y) / meta->height;
  if (!(fx >= 0.0 && fx < 1.0 && fy >= 0.0 && fy < 1.0))
    return -1;
  mx = MIN ((guint) floor (fx * meta->mask_width), meta->mask_width - 1);
  my = MIN ((guint) floor (fy * meta->mask_height), meta->mask_height - 1);

  vmeta = gst_buffer_get_video_meta (meta->mask);
  if (!vmeta)
    return -1;
  off = vmeta->offset[0] + (gsize) my * vmeta->stride[0] + mx;
  if (!gst_buffer_map (meta->mask, &map, GST_MAP_READ))
    return -1;
  if (off < map.size)
    ret = map.data[off];
  gst_buffer_unmap (meta->mask, &map);
  return ret;
}

/**
 * gst_vim_segmentation_mask_new:
 * @width: mask width, > 0
 * @height: mask height, > 0
 *
 * Allocates a zeroed GRAY8 mask buffer in system memory, rows 4-byte
 * aligned, with the #GstVideoMeta that #GstVimSegmentationMeta requires.
 *
 * Returns: (transfer full): the new buffer
 */
GstBuffer *
gst_vim_segmentation_mask_new (guint width, guint height)
{
  gsize offset[GST_VIDEO_MAX_PLANES] = { 0, };
  gint stride[GST_VIDEO_MAX_PLANES] = { 0, };
  GstBuffer *buf;

  g_return_val_if_fail (width > 0 && width <= G_MAXINT / 4, NULL);
  g_return_val_if_fail (height > 0 && height <= G_MAXINT / 4, NULL);

  stride[0] = GST_ROUND_UP_4 (width);
  buf = gst_buffer_new_allocate (NULL, (gsize) stride[0] * height, NULL);
  gst_buffer_memset (buf, 0, 0, (gsize) stride[0] * height);
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_FORMAT_GRAY8, width, height, 1, offset, stride);
  return buf;
}
