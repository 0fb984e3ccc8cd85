/* gst-vim plugin: video frames as the engine sees them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A mapped GstVideoFrame becomes a VimFrame: the same plane pointers and
 * strides, no copy. For memory:CUDAMemory frames mapped with GST_MAP_CUDA the
 * plane pointers are device pointers and the strides the pitch.
 */
#include "gstvimframe.h"

gboolean
gst_vim_pixel_format_from_video (GstVideoFormat format,
    VimPixelFormat * pixel_format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_RGB:
      *pixel_format = VIM_PIXEL_RGB;
      return TRUE;
    case GST_VIDEO_FORMAT_RGBA:
      *pixel_format = VIM_PIXEL_RGBA;
      return TRUE;
    case GST_VIDEO_FORMAT_RGBx:
      *pixel_format = VIM_PIXEL_RGBX;
      return TRUE;
    case GST_VIDEO_FORMAT_BGR:
      *pixel_format = VIM_PIXEL_BGR;
      return TRUE;
    case GST_VIDEO_FORMAT_BGRA:
      *pixel_format = VIM_PIXEL_BGRA;
      return TRUE;
    case GST_VIDEO_FORMAT_BGRx:
      *pixel_format = VIM_PIXEL_BGRX;
      return TRUE;
    case GST_VIDEO_FORMAT_NV12:
      *pixel_format = VIM_PIXEL_NV12;
      return TRUE;
    case GST_VIDEO_FORMAT_I420:
      *pixel_format = VIM_PIXEL_I420;
      return TRUE;
    case GST_VIDEO_FORMAT_GRAY8:
      *pixel_format = VIM_PIXEL_GRAY8;
      return TRUE;
    default:
      return FALSE;
  }
}

gboolean
gst_vim_frame_from_video_frame (const GstVideoFrame * vframe, VimMemory memory,
    VimFrame * frame)
{
  guint i, n_planes;

  if (!gst_vim_pixel_format_from_video (GST_VIDEO_FRAME_FORMAT (vframe),
          &frame->format))
    return FALSE;

  frame->width = GST_VIDEO_FRAME_WIDTH (vframe);
  frame->height = GST_VIDEO_FRAME_HEIGHT (vframe);
  frame->memory = memory;
  n_planes = GST_VIDEO_FRAME_N_PLANES (vframe);
  for (i = 0; i < G_N_ELEMENTS (frame->planes); i++) {
    frame->planes[i] = i < n_planes ? GST_VIDEO_FRAME_PLANE_DATA (vframe, i) : NULL;
    frame->strides[i] = i < n_planes ? (size_t) GST_VIDEO_FRAME_PLANE_STRIDE (vframe, i) : 0;
  }
  return TRUE;
}
