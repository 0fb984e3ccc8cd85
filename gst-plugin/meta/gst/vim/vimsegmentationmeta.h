/* gst-vim result metadata: per-pixel (semantic) segmentation.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_SEGMENTATION_META_H__
#define __GST_VIM_SEGMENTATION_META_H__

#include <gst/gst.h>
#include <gst/vim/vim-meta-prelude.h>

G_BEGIN_DECLS

#define GST_VIM_SEGMENTATION_META_API_TYPE (gst_vim_segmentation_meta_api_get_type ())
#define GST_VIM_SEGMENTATION_META_INFO (gst_vim_segmentation_meta_get_info ())

typedef struct _GstVimSegmentationMeta GstVimSegmentationMeta;

/**
 * GstVimSegmentationMeta:
 * @meta: parent #GstMeta
 * @mask: the class map: a #GstBuffer of GRAY8 pixels, one class id (0 ..
 *     @n_classes - 1) per byte, in system memory, with a #GstVideoMeta that
 *     gives its size and row stride (read it with gst_video_frame_map() or
 *     gst_buffer_get_video_meta()). Shared between buffers: never write it.
 * @confidence: (nullable): a GRAY8 buffer of the same size as @mask, with
 *     round (255 * softmax probability of the chosen class) per pixel, or
 *     %NULL when the element was not asked for it
 * @mask_width: width of @mask in pixels (also in its #GstVideoMeta)
 * @mask_height: height of @mask in pixels
 * @x: left edge of the frame rectangle the mask covers, in frame pixels
 * @y: top edge of that rectangle
 * @width: width of that rectangle; mask pixel (mx, my) covers frame x in
 *     [@x + mx * @width / @mask_width, @x + (mx + 1) * @width / @mask_width),
 *     and likewise for y. The rectangle is the whole frame unless the model
 *     crops (short-side crop: the centre crop); frame pixels outside it have
 *     no class.
 * @height: height of that rectangle
 * @model: name of the model that produced the result (interned string)
 * @n_classes: number of classes of the model
 * @labels: (array length=n_classes) (nullable): class names, interned
 *     strings (an entry is %NULL when the model has no name for that id),
 *     or %NULL when the model has no labels at all
 * @fractions: (array length=n_classes) (nullable): the share of mask pixels
 *     of each class, 0.0 .. 1.0, summing to 1, or %NULL
 * @fresh: %TRUE when the model ran on this very frame; %FALSE when the mask
 *     is the last one computed, carried over to a frame the element skipped
 *     (see the `inference-interval` property)
 * @age: number of frames between the frame the mask was computed on and
 *     this one; 0 when @fresh
 * @frame_number: the number of this frame in the element's input, counting
 *     from 0 at the READY->PAUSED state change
 *
 * Semantic segmentation result attached by `vimsegment`: a class map at its
 * own resolution (the model's token grid, the frame size, or a fixed size)
 * and the frame rectangle it maps to. It follows upstream's convention for
 * masks (a GRAY8 #GstBuffer with a #GstVideoMeta plus a location rectangle),
 * so it converts one to one to 1.26's GstAnalyticsSegmentationMtd.
 *
 * The meta is tagged "video" and "size": buffer copies keep it (sharing the
 * mask buffers) and video scaling rescales the rectangle, leaving the mask
 * as it is. Other transforms (crop, orientation) drop it.
 */
struct _GstVimSegmentationMeta {
  GstMeta meta;

  GstBuffer *mask;
  GstBuffer *confidence;
  guint mask_width;
  guint mask_height;

  gdouble x;
  gdouble y;
  gdouble width;
  gdouble height;

  const gchar *model;
  guint n_classes;
  const gchar **labels;
  gfloat *fractions;

  gboolean fresh;
  guint age;
  guint64 frame_number;

  /*< private >*/
  gpointer _gst_reserved[GST_PADDING];
};

GST_VIM_META_API
GType gst_vim_segmentation_meta_api_get_type (void);

GST_VIM_META_API
const GstMetaInfo *gst_vim_segmentation_meta_get_info (void);

GST_VIM_META_API
GstVimSegmentationMeta *gst_buffer_add_vim_segmentation_meta (GstBuffer * buffer,
    GstBuffer * mask, GstBuffer * confidence,
    gdouble x, gdouble y, gdouble width, gdouble height,
    const gchar * model, guint n_classes,
    const gchar * const * labels, const gfloat * fractions);

/**
 * gst_buffer_get_vim_segmentation_meta:
 * @b: a #GstBuffer
 *
 * Returns: (nullable) (transfer none): the #GstVimSegmentationMeta of @b
 */
#define gst_buffer_get_vim_segmentation_meta(b) \
    ((GstVimSegmentationMeta *) gst_buffer_get_meta ((b), GST_VIM_SEGMENTATION_META_API_TYPE))

GST_VIM_META_API
gint gst_vim_segmentation_meta_get_class_at (const GstVimSegmentationMeta * meta,
    gdouble frame_x, gdouble frame_y);

GST_VIM_META_API
GstBuffer *gst_vim_segmentation_mask_new (guint width, guint height);

G_END_DECLS

#endif /* __GST_VIM_SEGMENTATION_META_H__ */
