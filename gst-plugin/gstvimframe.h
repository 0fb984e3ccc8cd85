/* gst-vim plugin: video frames as the engine sees them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_FRAME_H__
#define __GST_VIM_FRAME_H__

#include <gst/video/video.h>
#include <vim/vim.h>

G_BEGIN_DECLS

/* Formats read from system memory and from memory:CUDAMemory. */
#define GST_VIM_SYSTEM_FORMATS "{ RGB, RGBA, RGBx, BGR, BGRA, BGRx, NV12, I420, GRAY8 }"
#define GST_VIM_CUDA_FORMATS "{ NV12, I420, RGBA }"

gboolean gst_vim_pixel_format_from_video (GstVideoFormat format,
    VimPixelFormat * pixel_format);

gboolean gst_vim_frame_from_video_frame (const GstVideoFrame * vframe,
    VimMemory memory, VimFrame * frame);

G_END_DECLS

#endif /* __GST_VIM_FRAME_H__ */
