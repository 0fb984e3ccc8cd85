/* gst-vim result metadata: whole-frame classification.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_CLASSIFICATION_META_H__
#define __GST_VIM_CLASSIFICATION_META_H__

#include <gst/gst.h>
#include <gst/vim/vim-meta-prelude.h>

G_BEGIN_DECLS

#define GST_VIM_CLASSIFICATION_META_API_TYPE (gst_vim_classification_meta_api_get_type ())
#define GST_VIM_CLASSIFICATION_META_INFO (gst_vim_classification_meta_get_info ())

/**
 * GstVimClassification:
 * @class_id: the class index in the model's output, 0 .. n_classes - 1
 * @score: the softmax probability of the class, 0.0 .. 1.0
 * @label: the class name (an interned string that is never freed), or %NULL
 *     when the model and the labels file have none for @class_id
 *
 * One entry of a top-k classification result.
 */
typedef struct {
  gint class_id;
  gfloat score;
  const gchar *label;
} GstVimClassification;

typedef struct _GstVimClassificationMeta GstVimClassificationMeta;

/**
 * GstVimClassificationMeta:
 * @meta: parent #GstMeta
 * @model: name of the model that produced the result (interned string)
 * @n_classes: number of classes of the model
 * @n_results: number of entries in @results (0 when no class reached the
 *     element's threshold)
 * @results: the top-k classes, best first
 * @fresh: %TRUE when the model ran on this very frame; %FALSE when the
 *     result is the last one computed, carried over to a frame the element
 *     skipped (see the `inference-interval` property)
 * @age: number of frames between the frame the result was computed on and
 *     this one; 0 when @fresh
 * @frame_number: the number of this frame in the element's input, counting
 *     from 0 at the READY->PAUSED state change
 *
 * Whole-frame classification result attached by `vimclassify`. The same
 * @fresh, @age and @frame_number fields, with the same meaning, are found in
 * the other gst-vim result metas.
 *
 * The meta is tagged "video" and "size": it survives buffer copies and
 * scaling (a whole-frame class does not depend on the frame size).
 */
struct _GstVimClassificationMeta {
  GstMeta meta;

  const gchar *model;
  guint n_classes;
  guint n_results;
  GstVimClassification *results;

  gboolean fresh;
  guint age;
  guint64 frame_number;

  /*< private >*/
  gpointer _gst_reserved[GST_PADDING];
};

GST_VIM_META_API
GType gst_vim_classification_meta_api_get_type (void);

GST_VIM_META_API
const GstMetaInfo *gst_vim_classification_meta_get_info (void);

GST_VIM_META_API
GstVimClassificationMeta *gst_buffer_add_vim_classification_meta (GstBuffer * buffer,
    const gchar * model, guint n_classes,
    const GstVimClassification * results, guint n_results);

/**
 * gst_buffer_get_vim_classification_meta:
 * @b: a #GstBuffer
 *
 * Returns: (nullable) (transfer none): the #GstVimClassificationMeta of @b
 */
#define gst_buffer_get_vim_classification_meta(b) \
    ((GstVimClassificationMeta *) gst_buffer_get_meta ((b), GST_VIM_CLASSIFICATION_META_API_TYPE))

GST_VIM_META_API
const GstVimClassification *gst_vim_classification_meta_get_top (const GstVimClassificationMeta * meta);

G_END_DECLS

#endif /* __GST_VIM_CLASSIFICATION_META_H__ */
