/* gst-vim plugin: vimclassify, whole-frame classification.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_CLASSIFY_H__
#define __GST_VIM_CLASSIFY_H__

#include "gstvimbaseinference.h"

G_BEGIN_DECLS

#define GST_TYPE_VIM_CLASSIFY (gst_vim_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstVimClassify, gst_vim_classify, GST, VIM_CLASSIFY,
    GstVimBaseInference)

G_END_DECLS

#endif /* __GST_VIM_CLASSIFY_H__ */
