/* gst-vim result metadata: whole-frame classification.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:gstvimclassificationmeta
 * @title: GstVimClassificationMeta
 * @short_description: top-k whole-frame classification result
 *
 * `vimclassify` attaches one #GstVimClassificationMeta to every buffer it
 * outputs. Read it from a pad probe or an appsink:
 *
 * |[<!-- language="C" -->
 * GstVimClassificationMeta *meta = gst_buffer_get_vim_classification_meta (buf);
 * if (meta && meta->n_results > 0)
 *   g_print ("frame %" G_GUINT64_FORMAT ": %s (%.2f)%s\n", meta->frame_number,
 *       meta->results[0].label, meta->results[0].score,
 *       meta->fresh ? "" : " (stale)");
 * ]|
 */

#include <string.h>
#include <gst/video/video.h>

#include "gst/vim/vimclassificationmeta.h"

static void
set_results (GstVimClassificationMeta * meta, const GstVimClassification * results,
    guint n_results)
{
  guint i;

  g_free (meta->results);
  meta->results = n_results ? g_new (GstVimClassification, n_results) : NULL;
  meta->n_results = n_results;
  for (i = 0; i < n_results; i++) {
    meta->results[i].class_id = results[i].class_id;
    meta->results[i].score = results[i].score;
    /* interned: the meta can be copied and freed in any order */
    meta->results[i].label = g_intern_string (results[i].label);
  }
}

static gboolean
gst_vim_classification_meta_init (GstMeta * meta, gpointer params,
    GstBuffer * buffer)
{
  GstVimClassificationMeta *cmeta = (GstVimClassificationMeta *) meta;

  cmeta->model = NULL;
  cmeta->n_classes = 0;
  cmeta->n_results = 0;
  cmeta->results = NULL;
  cmeta->fresh = TRUE;
  cmeta->age = 0;
  cmeta->frame_number = 0;
  memset (cmeta->_gst_reserved, 0, sizeof (cmeta->_gst_reserved));
  return TRUE;
}

static void
gst_vim_classification_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  GstVimClassificationMeta *cmeta = (GstVimClassificationMeta *) meta;

  g_clear_pointer (&cmeta->results, g_free);
  cmeta->n_results = 0;
}

static gboolean
gst_vim_classification_meta_transform (GstBuffer * dest, GstMeta * meta,
    GstBuffer * buffer, GQuark type, gpointer data)
{
  GstVimClassificationMeta *src = (GstVimClassificationMeta *) meta;
  GstVimClassificationMeta *dmeta;

  /* A whole-frame class is the same whatever the frame's size, so a scaled
   * frame keeps the result unchanged; anything else we don't know about. */
  if (!GST_META_TRANSFORM_IS_COPY (type) && !GST_VIDEO_META_TRANSFORM_IS_SCALE (type))
    return FALSE;

  dmeta = gst_buffer_add_vim_classification_meta (dest, src->model,
      src->n_classes, src->results, src->n_results);
  if (!dmeta)
    return FALSE;
  dmeta->fresh = src->fresh;
  dmeta->age = src->age;
  dmeta->frame_number = src->frame_number;
  return TRUE;
}

/**
 * gst_vim_classification_meta_api_get_type:
 *
 * Returns: the #GType of the #GstVimClassificationMeta API, tagged
 *     %GST_META_TAG_VIDEO_STR and %GST_META_TAG_VIDEO_SIZE_STR
 */
GType
gst_vim_classification_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_SIZE_STR, NULL
  };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstVimClassificationMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

/**
 * gst_vim_classification_meta_get_info:
 *
 * Returns: (transfer none): the #GstMetaInfo of #GstVimClassificationMeta
 */
const GstMetaInfo *
gst_vim_classification_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi =
        gst_meta_register (GST_VIM_CLASSIFICATION_META_API_TYPE,
        "GstVimClassificationMeta", sizeof (GstVimClassificationMeta),
        gst_vim_classification_meta_init, gst_vim_classification_meta_free,
        gst_vim_classification_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

/**
 * gst_buffer_add_vim_classification_meta:
 * @buffer: a writable #GstBuffer
 * @model: (nullable): name of the model
 * @n_classes: number of classes of the model
 * @results: (array length=n_results) (nullable): the top-k entries, best first
 * @n_results: number of entries in @results
 *
 * Attaches a fresh result (@fresh %TRUE, @age 0, @frame_number 0; set the
 * fields afterwards for anything else). The entries are copied and their
 * labels interned.
 *
 * Returns: (transfer none) (nullable): the new meta on @buffer
 */
GstVimClassificationMeta *
gst_buffer_add_vim_classification_meta (GstBuffer * buffer, const gchar * model,
    guint n_classes, const GstVimClassification * results, guint n_results)
{
  GstVimClassificationMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (results != NULL || n_results == 0, NULL);

  meta = (GstVimClassificationMeta *) gst_buffer_add_meta (buffer,
      GST_VIM_CLASSIFICATION_META_INFO, NULL);
  if (!meta)
    return NULL;

  meta->model = g_intern_string (model);
  meta->n_classes = n_classes;
  set_results (meta, results, n_results);
  return meta;
}

/**
 * gst_vim_classification_meta_get_top:
 * @meta: a #GstVimClassificationMeta
 *
 * Returns: (transfer none) (nullable): the best entry, or %NULL when the
 *     result has none
 */
const GstVimClassification *
gst_vim_classification_meta_get_top (const GstVimClassificationMeta * meta)
{
  g_return_val_if_fail (meta != NULL, NULL);

  return meta->n_results > 0 ? &meta->results[0] : NULL;
}
