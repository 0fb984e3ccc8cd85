/* gst-vim plugin: vimannotate, per-frame results as JSON Lines.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_ANNOTATE_H__
#define __GST_VIM_ANNOTATE_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

/**
 * GstVimAnnotateMaskFormat:
 * @GST_VIM_ANNOTATE_MASK_FORMAT_NONE: no mask is written (class fractions only)
 * @GST_VIM_ANNOTATE_MASK_FORMAT_PNG: a grayscale PNG per frame in
 *     `mask-location` (gray value = class id), its path in the JSON
 * @GST_VIM_ANNOTATE_MASK_FORMAT_RLE: run-length encoding inside the JSON
 *
 * How vimannotate writes segmentation masks.
 */
typedef enum
{
  GST_VIM_ANNOTATE_MASK_FORMAT_NONE = 0,
  GST_VIM_ANNOTATE_MASK_FORMAT_PNG = 1,
  GST_VIM_ANNOTATE_MASK_FORMAT_RLE = 2,
} GstVimAnnotateMaskFormat;

#define GST_TYPE_VIM_ANNOTATE_MASK_FORMAT (gst_vim_annotate_mask_format_get_type ())
GType gst_vim_annotate_mask_format_get_type (void);

#define GST_TYPE_VIM_ANNOTATE (gst_vim_annotate_get_type ())
G_DECLARE_FINAL_TYPE (GstVimAnnotate, gst_vim_annotate, GST, VIM_ANNOTATE,
    GstBaseTransform)

G_END_DECLS

#endif /* __GST_VIM_ANNOTATE_H__ */
