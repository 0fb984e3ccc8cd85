/* Frame -> network input on the CPU, exactly as docs/preprocessing.md says
 * (the CUDA kernel computes the same). */
#include "vim-private.h"

#include <math.h>

int
vim_pixel_format_n_planes (VimPixelFormat format)
{
  switch (format) {
    case VIM_PIXEL_RGB: case VIM_PIXEL_RGBA: case VIM_PIXEL_RGBX:
    case VIM_PIXEL_BGR: case VIM_PIXEL_BGRA: case VIM_PIXEL_BGRX:
    case VIM_PIXEL_GRAY8:
      return 1;
    case VIM_PIXEL_NV12:
      return 2;
    case VIM_PIXEL_I420:
      return 3;
  }
  return 0;
}

const char *
vim_pixel_format_name (VimPixelFormat format)
{
  static const char *const names[] = { "RGB", "RGBA", "RGBx", "BGR", "BGRA",
    "BGRx", "NV12", "I420", "GRAY8" };
  return (unsigned) format < G_N_ELEMENTS (names) ? names[format] : "unknown";
}

/* Bytes a row of plane p needs. */
static size_t
plane_row_bytes (VimPixelFormat f, int width, int p)
{
  switch (f) {
    case VIM_PIXEL_RGB: case VIM_PIXEL_BGR:
      return (size_t) width * 3;
    case VIM_PIXEL_RGBA: case VIM_PIXEL_RGBX: case VIM_PIXEL_BGRA: case VIM_PIXEL_BGRX:
      return (size_t) width * 4;
    case VIM_PIXEL_GRAY8:
      return width;
    case VIM_PIXEL_NV12:
      return p == 0 ? (size_t) width : (size_t) ((width + 1) / 2) * 2;
    case VIM_PIXEL_I420:
      return p == 0 ? (size_t) width : (size_t) (width + 1) / 2;
  }
  return 0;
}

gboolean
vim_frame_validate (const VimFrame *frame, GError **error)
{
  int np = vim_pixel_format_n_planes (frame->format);
  if (np == 0) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "unknown pixel format %d", (int) frame->format);
    return FALSE;
  }
  if (frame->width < 1 || frame->height < 1 || frame->width > 32768
      || frame->height > 32768) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "frame size %dx%d is out of range (1 .. 32768)", frame->width,
        frame->height);
    return FALSE;
  }
  for (int p = 0; p < np; p++) {
    if (frame->planes[p] == NULL) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "%s frame: plane %d is NULL", vim_pixel_format_name (frame->format), p);
      return FALSE;
    }
    size_t need = plane_row_bytes (frame->format, frame->width, p);
    if (frame->strides[p] < need) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "%s frame %dx%d: stride %zu of plane %d is less than the %zu bytes a row needs",
          vim_pixel_format_name (frame->format), frame->width, frame->height,
          frame->strides[p], p, need);
      return FALSE;
    }
  }
  return TRUE;
}

void
vim_resize_map_compute (const VimModelConfig *cfg, int src_w, int src_h,
    VimResizeMap *map)
{
  const int W = cfg->image_width, H = cfg->image_height;
  map->pad_x0 = map->pad_y0 = 0;
  map->pad_x1 = W;
  map->pad_y1 = H;
  map->offset_x = map->offset_y = 0.f;
  switch (cfg->resize) {
    case VIM_RESIZE_STRETCH:
      map->scale_x = (float) src_w / W;
      map->scale_y = (float) src_h / H;
      break;
    case VIM_RESIZE_SHORT_SIDE_CROP: {
      float target = floorf (MIN (W, H) / cfg->crop_ratio);
      float s = (float) MIN (src_w, src_h) / target;
      map->scale_x = map->scale_y = s;
      map->offset_x = ((src_w / s - W) * 0.5f) * s;
      map->offset_y = ((src_h / s - H) * 0.5f) * s;
      break;
    }
    case VIM_RESIZE_LETTERBOX: {
      float s = MAX ((float) src_w / W, (float) src_h / H);
      float cw = src_w / s, ch = src_h / s;
      float x0 = (W - cw) * 0.5f, y0 = (H - ch) * 0.5f;
      map->scale_x = map->scale_y = s;
      map->offset_x = -x0 * s;
      map->offset_y = -y0 * s;
      map->pad_x0 = (int) floorf (x0 + 0.5f);
      map->pad_x1 = (int) floorf (x0 + cw + 0.5f);
      map->pad_y0 = (int) floorf (y0 + 0.5f);
      map->pad_y1 = (int) floorf (y0 + ch + 0.5f);
      break;
    }
  }
}

static inline float
clamp255 (float v)
{
  return v < 0.f ? 0.f : v > 255.f ? 255.f : v;
}

/* RGB in [0, 255] of source pixel (x, y), already clamped to the frame. */
static inline void
fetch_rgb (const VimFrame *f, int x, int y, float rgb[3])
{
  const guint8 *p0 = (const guint8 *) f->planes[0] + (size_t) y * f->strides[0];
  switch (f->format) {
    case VIM_PIXEL_RGB:
      rgb[0] = p0[3 * x]; rgb[1] = p0[3 * x + 1]; rgb[2] = p0[3 * x + 2];
      return;
    case VIM_PIXEL_BGR:
      rgb[2] = p0[3 * x]; rgb[1] = p0[3 * x + 1]; rgb[0] = p0[3 * x + 2];
      return;
    case VIM_PIXEL_RGBA: case VIM_PIXEL_RGBX:
      rgb[0] = p0[4 * x]; rgb[1] = p0[4 * x + 1]; rgb[2] = p0[4 * x + 2];
      return;
    case VIM_PIXEL_BGRA: case VIM_PIXEL_BGRX:
      rgb[2] = p0[4 * x]; rgb[1] = p0[4 * x + 1]; rgb[0] = p0[4 * x + 2];
      return;
    case VIM_PIXEL_GRAY8:
      rgb[0] = rgb[1] = rgb[2] = p0[x];
      return;
    case VIM_PIXEL_NV12: case VIM_PIXEL_I420: {
      float u, v;
      if (f->format == VIM_PIXEL_NV12) {
        const guint8 *uv = (const guint8 *) f->planes[1] + (size_t) (y / 2) * f->strides[1];
        u = uv[(x / 2) * 2];
        v = uv[(x / 2) * 2 + 1];
      } else {
        u = ((const guint8 *) f->planes[1])[(size_t) (y / 2) * f->strides[1] + x / 2];
        v = ((const guint8 *) f->planes[2])[(size_t) (y / 2) * f->strides[2] + x / 2];
      }
      float c = p0[x] - 16.f, d = u - 128.f, e = v - 128.f;
      rgb[0] = clamp255 (1.164383f * c + 1.596027f * e);
      rgb[1] = clamp255 (1.164383f * c - 0.391762f * d - 0.812968f * e);
      rgb[2] = clamp255 (1.164383f * c + 2.017232f * d);
      return;
    }
  }
  rgb[0] = rgb[1] = rgb[2] = 0.f;   /* unreachable: formats are validated */
}

void
vim_preprocess_frame_cpu (const VimModelConfig *cfg, const VimFrame *frame,
    float *out)
{
  const int W = cfg->image_width, H = cfg->image_height;
  const size_t plane = (size_t) W * H;
  VimResizeMap map;
  vim_resize_map_compute (cfg, frame->width, frame->height, &map);
  float scale[3], bias[3];
  for (int c = 0; c < 3; c++) {
    scale[c] = 1.f / (255.f * cfg->std[c]);
    bias[c] = -cfg->mean[c] / cfg->std[c];
  }
  for (int oy = 0; oy < H; oy++) {
    float sy = (oy + 0.5f) * map.scale_y + map.offset_y - 0.5f;
    int y0 = (int) floorf (sy);
    float fy = sy - y0;
    int ya = CLAMP (y0, 0, frame->height - 1), yb = CLAMP (y0 + 1, 0, frame->height - 1);
    for (int ox = 0; ox < W; ox++) {
      size_t o = (size_t) oy * W + ox;
      if (ox < map.pad_x0 || ox >= map.pad_x1 || oy < map.pad_y0 || oy >= map.pad_y1) {
        out[o] = out[plane + o] = out[2 * plane + o] = 0.f;
        continue;
      }
      float sx = (ox + 0.5f) * map.scale_x + map.offset_x - 0.5f;
      int x0 = (int) floorf (sx);
      float fx = sx - x0;
      int xa = CLAMP (x0, 0, frame->width - 1), xb = CLAMP (x0 + 1, 0, frame->width - 1);
      float p00[3], p01[3], p10[3], p11[3];
      fetch_rgb (frame, xa, ya, p00);
      fetch_rgb (frame, xb, ya, p01);
      fetch_rgb (frame, xa, yb, p10);
      fetch_rgb (frame, xb, yb, p11);
      for (int c = 0; c < 3; c++) {
        float top = p00[c] + fx * (p01[c] - p00[c]);
        float bot = p10[c] + fx * (p11[c] - p10[c]);
        float v = top + fy * (bot - top);
        out[c * plane + o] = v * scale[c] + bias[c];
      }
    }
  }
}
