/* gst-vim plugin: the elements it registers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_ELEMENTS_H__
#define __GST_VIM_ELEMENTS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE (vimclassify);
GST_ELEMENT_REGISTER_DECLARE (vimsegment);
GST_ELEMENT_REGISTER_DECLARE (vimannotate);
GST_ELEMENT_REGISTER_DECLARE (vimoverlay);

G_END_DECLS

#endif /* __GST_VIM_ELEMENTS_H__ */
