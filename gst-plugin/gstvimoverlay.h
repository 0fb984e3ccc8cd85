/* gst-vim plugin: vimoverlay, draws gst-vim results into the frames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_OVERLAY_H__
#define __GST_VIM_OVERLAY_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

/**
 * GstVimOverlayPosition:
 * @GST_VIM_OVERLAY_POSITION_TOP_LEFT: top left corner
 * @GST_VIM_OVERLAY_POSITION_TOP_RIGHT: top right corner
 * @GST_VIM_OVERLAY_POSITION_BOTTOM_LEFT: bottom left corner
 * @GST_VIM_OVERLAY_POSITION_BOTTOM_RIGHT: bottom right corner
 *
 * The frame corner the classification text is drawn in.
 */
typedef enum {
  GST_VIM_OVERLAY_POSITION_TOP_LEFT,
  GST_VIM_OVERLAY_POSITION_TOP_RIGHT,
  GST_VIM_OVERLAY_POSITION_BOTTOM_LEFT,
  GST_VIM_OVERLAY_POSITION_BOTTOM_RIGHT,
} GstVimOverlayPosition;

#define GST_TYPE_VIM_OVERLAY_POSITION (gst_vim_overlay_position_get_type ())
GType gst_vim_overlay_position_get_type (void);

#define GST_TYPE_VIM_OVERLAY (gst_vim_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstVimOverlay, gst_vim_overlay, GST, VIM_OVERLAY,
    GstVideoFilter)

G_END_DECLS

#endif /* __GST_VIM_OVERLAY_H__ */
