/* gst-vim plugin: vimsegment, per-pixel (semantic) segmentation.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_SEGMENT_H__
#define __GST_VIM_SEGMENT_H__

#include "gstvimbaseinference.h"

G_BEGIN_DECLS

#define GST_TYPE_VIM_SEGMENT (gst_vim_segment_get_type ())
G_DECLARE_FINAL_TYPE (GstVimSegment, gst_vim_segment, GST, VIM_SEGMENT,
    GstVimBaseInference)

G_END_DECLS

#endif /* __GST_VIM_SEGMENT_H__ */
