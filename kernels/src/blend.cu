/* Mask and image blending for overlays, in place on a frame of any format
 * and pitch. Integer arithmetic only, the same expressions as the CPU loop in
 * engine/src/blend.c, so both give the same bytes. One thread per frame
 * pixel; the thread of a 2x2 block's top-left pixel also does its chroma. */
#include "common.cuh"

using namespace vimk;

namespace {

constexpr uint64_t kOpaque32 = (uint64_t) 1 << 32;

__device__ __forceinline__ bool is_yuv (int f)
{
  return f == VIMK_PIX_NV12 || f == VIMK_PIX_I420;
}

/* bytes per pixel of plane 0 and the byte offsets of R, G, B (RGB-like) */
__device__ __forceinline__ int rgb_layout (int f, int off[3])
{
  bool bgr = f == VIMK_PIX_BGR || f == VIMK_PIX_BGRA || f == VIMK_PIX_BGRX;
  off[0] = bgr ? 2 : 0;
  off[1] = 1;
  off[2] = bgr ? 0 : 2;
  return f == VIMK_PIX_RGB || f == VIMK_PIX_BGR ? 3 : 4;
}

__device__ __forceinline__ uint8_t mix32 (uint8_t src, uint8_t colour, uint64_t a)
{
  return (uint8_t) ((src * (kOpaque32 - a) + colour * a + (kOpaque32 >> 1)) >> 32);
}

/* U and V bytes of chroma block (bx, by) */
__device__ __forceinline__ void chroma_ptrs (const VimkBlendFrame &f, int bx, int by,
    uint8_t **u, uint8_t **v)
{
  if (f.format == VIMK_PIX_NV12) {
    *u = f.planes[1] + (int64_t) by * f.strides[1] + 2 * (int64_t) bx;
    *v = *u + 1;
  } else {
    *u = f.planes[1] + (int64_t) by * f.strides[1] + bx;
    *v = f.planes[2] + (int64_t) by * f.strides[2] + bx;
  }
}

__device__ __forceinline__ int class_at (const VimkBlendMaskArgs &a, int px, int py)
{
  return a.mask[(int64_t) a.row_map[py] * a.mask_stride + a.col_map[px]];
}

__device__ __forceinline__ uint64_t weight_at (const VimkBlendMaskArgs &a, int px,
    int py, int c)
{
  if (!a.colour[c][3])
    return 0;
  if (a.contours && ((px + 1 < a.x1 && class_at (a, px + 1, py) != c)
          || (py + 1 < a.y1 && class_at (a, px, py + 1) != c)))
    return kOpaque32;
  return a.alpha32;
}

__global__ void blend_mask_kernel (VimkBlendFrame f, VimkBlendMaskArgs a)
{
  int px = a.x0 + blockIdx.x * blockDim.x + threadIdx.x;
  int py = a.y0 + blockIdx.y * blockDim.y + threadIdx.y;
  if (px >= a.x1 || py >= a.y1)
    return;
  int c = class_at (a, px, py);
  uint64_t w = weight_at (a, px, py, c);
  if (w == 0)
    return;
  uint8_t *row = f.planes[0] + (int64_t) py * f.strides[0];
  if (is_yuv (f.format) || f.format == VIMK_PIX_GRAY8) {
    row[px] = mix32 (row[px], a.colour[c][0], w);
  } else {
    int off[3];
    uint8_t *pix = row + (int64_t) px * rgb_layout (f.format, off);
    for (int k = 0; k < 3; k++)
      pix[k] = mix32 (pix[k], a.colour[c][k], w);
  }
  if (is_yuv (f.format) && !(px & 1) && !(py & 1)) {
    uint8_t *u, *v;
    chroma_ptrs (f, px / 2, py / 2, &u, &v);
    *u = mix32 (*u, a.colour[c][1], w);
    *v = mix32 (*v, a.colour[c][2], w);
  }
}

__device__ __forceinline__ uint8_t div_round_u8 (int64_t num, int64_t den)
{
  int64_t t = num + den / 2;
  if (t <= 0)
    return 0;
  t /= den;
  return (uint8_t) (t > 255 ? 255 : t);
}

struct ArgbView {
  const uint32_t *argb;
  int64_t pitch;
  int x0, y0, x1, y1;
};

/* Threads cover [x0 & ~1, x1) x [y0 & ~1, y1) so every chroma block touching
 * the rectangle has its top-left thread. */
__global__ void blend_argb_kernel (VimkBlendFrame f, ArgbView a)
{
  int px = (a.x0 & ~1) + blockIdx.x * blockDim.x + threadIdx.x;
  int py = (a.y0 & ~1) + blockIdx.y * blockDim.y + threadIdx.y;
  if (px >= a.x1 || py >= a.y1)
    return;
  if (px >= a.x0 && py >= a.y0) {
    uint32_t p = a.argb[(int64_t) (py - a.y0) * a.pitch + (px - a.x0)];
    int64_t A = p >> 24, R = (p >> 16) & 255, G = (p >> 8) & 255, B = p & 255;
    uint8_t *row = f.planes[0] + (int64_t) py * f.strides[0];
    if (is_yuv (f.format)) {
      row[px] = div_round_u8 (row[px] * (255 - A) * 1000 + 16000 * A
          + 65481 * R + 128553 * G + 24966 * B, 255000);
    } else if (f.format == VIMK_PIX_GRAY8) {
      row[px] = div_round_u8 (row[px] * (255 - A) * 1000
          + 255 * (299 * R + 587 * G + 114 * B), 255000);
    } else {
      int off[3];
      uint8_t *pix = row + (int64_t) px * rgb_layout (f.format, off);
      const int64_t P[3] = { R, G, B };
      for (int k = 0; k < 3; k++)
        pix[off[k]] = div_round_u8 (pix[off[k]] * (255 - A) + 255 * P[k], 255);
    }
  }
  if (!is_yuv (f.format) || (px & 1) || (py & 1))
    return;
  int64_t n = 0, As = 0, Rs = 0, Gs = 0, Bs = 0;
  for (int fy = py; fy < py + 2 && fy < f.height; fy++)
    for (int fx = px; fx < px + 2 && fx < f.width; fx++) {
      n++;
      if (fx < a.x0 || fx >= a.x1 || fy < a.y0 || fy >= a.y1)
        continue;
      uint32_t p = a.argb[(int64_t) (fy - a.y0) * a.pitch + (fx - a.x0)];
      As += p >> 24;
      Rs += (p >> 16) & 255;
      Gs += (p >> 8) & 255;
      Bs += p & 255;
    }
  uint8_t *u, *v;
  chroma_ptrs (f, px / 2, py / 2, &u, &v);
  int64_t keep = (255 * n - As) * 1000, den = 255000 * n;
  *u = div_round_u8 (*u * keep + 128000 * As - 37797 * Rs - 74203 * Gs
      + 112000 * Bs, den);
  *v = div_round_u8 (*v * keep + 128000 * As + 112000 * Rs - 93786 * Gs
      - 18214 * Bs, den);
}

}  // namespace

extern "C" cudaError_t
vimk_blend_mask (const VimkBlendFrame *frame, const VimkBlendMaskArgs *args,
    cudaStream_t stream)
{
  if (frame == nullptr || args == nullptr || args->x0 < 0 || args->y0 < 0
      || args->x1 > frame->width || args->y1 > frame->height)
    return cudaErrorInvalidValue;
  if (args->x0 >= args->x1 || args->y0 >= args->y1)
    return cudaSuccess;
  dim3 block (32, 8);
  dim3 grid ((unsigned) (args->x1 - args->x0 + 31) / 32,
      (unsigned) (args->y1 - args->y0 + 7) / 8);
  blend_mask_kernel<<<grid, block, 0, stream>>> (*frame, *args);
  return cudaGetLastError ();
}

extern "C" cudaError_t
vimk_blend_argb (const VimkBlendFrame *frame, const uint32_t *argb,
    int64_t argb_pitch, int x0, int y0, int x1, int y1, cudaStream_t stream)
{
  if (frame == nullptr || argb == nullptr || x0 < 0 || y0 < 0
      || x1 > frame->width || y1 > frame->height || argb_pitch < x1 - x0)
    return cudaErrorInvalidValue;
  if (x0 >= x1 || y0 >= y1)
    return cudaSuccess;
  ArgbView view = { argb, argb_pitch, x0, y0, x1, y1 };
  int sx = x0 & ~1, sy = y0 & ~1;
  dim3 block (32, 8);
  dim3 grid ((unsigned) (x1 - sx + 31) / 32, (unsigned) (y1 - sy + 7) / 8);
  blend_argb_kernel<<<grid, block, 0, stream>>> (*frame, view);
  return cudaGetLastError ();
}
