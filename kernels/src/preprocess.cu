/* Frame (RGB-like, GRAY8, NV12, I420; any size and pitch) -> model input:
 * colour conversion, bilinear resize by the model's policy, normalization,
 * exactly as docs/preprocessing.md and engine/src/preprocess_cpu.c. The
 * arithmetic uses explicitly rounded operations (no FMA contraction) so the
 * result matches the CPU path bit for bit where the CPU does not fuse. */
#include "common.cuh"

using namespace vimk;

namespace {

__device__ __forceinline__ float mul (float a, float b) { return __fmul_rn (a, b); }
__device__ __forceinline__ float add (float a, float b) { return __fadd_rn (a, b); }
__device__ __forceinline__ float sub (float a, float b) { return __fsub_rn (a, b); }

__device__ __forceinline__ float clamp255 (float v)
{
  return v < 0.f ? 0.f : v > 255.f ? 255.f : v;
}

__device__ __forceinline__ void fetch_rgb (const VimkFrameDesc &f, int x, int y, float rgb[3])
{
  const uint8_t *p0 = f.planes[0] + (int64_t) y * f.strides[0];
  switch (f.format) {
    case VIMK_PIX_RGB:
      rgb[0] = p0[3 * x]; rgb[1] = p0[3 * x + 1]; rgb[2] = p0[3 * x + 2];
      return;
    case VIMK_PIX_BGR:
      rgb[2] = p0[3 * x]; rgb[1] = p0[3 * x + 1]; rgb[0] = p0[3 * x + 2];
      return;
    case VIMK_PIX_RGBA: case VIMK_PIX_RGBX:
      rgb[0] = p0[4 * x]; rgb[1] = p0[4 * x + 1]; rgb[2] = p0[4 * x + 2];
      return;
    case VIMK_PIX_BGRA: case VIMK_PIX_BGRX:
      rgb[2] = p0[4 * x]; rgb[1] = p0[4 * x + 1]; rgb[0] = p0[4 * x + 2];
      return;
    case VIMK_PIX_GRAY8:
      rgb[0] = rgb[1] = rgb[2] = p0[x];
      return;
    case VIMK_PIX_NV12: case VIMK_PIX_I420: {
      float u, v;
      if (f.format == VIMK_PIX_NV12) {
        const uint8_t *uv = f.planes[1] + (int64_t) (y / 2) * f.strides[1];
        u = uv[(x / 2) * 2];
        v = uv[(x / 2) * 2 + 1];
      } else {
        u = f.planes[1][(int64_t) (y / 2) * f.strides[1] + x / 2];
        v = f.planes[2][(int64_t) (y / 2) * f.strides[2] + x / 2];
      }
      float c = sub ((float) p0[x], 16.f), d = sub (u, 128.f), e = sub (v, 128.f);
      rgb[0] = clamp255 (add (mul (1.164383f, c), mul (1.596027f, e)));
      rgb[1] = clamp255 (sub (sub (mul (1.164383f, c), mul (0.391762f, d)), mul (0.812968f, e)));
      rgb[2] = clamp255 (add (mul (1.164383f, c), mul (2.017232f, d)));
      return;
    }
    default:
      rgb[0] = rgb[1] = rgb[2] = 0.f;
  }
}

struct Norm { float scale[3], bias[3]; };

template <typename T>
__global__ void preprocess_kernel (const VimkFrameDesc *__restrict__ descs, int H,
    int W, Norm nm, T *__restrict__ out)
{
  const int b = blockIdx.y;
  const int64_t o = blockIdx.x * (int64_t) blockDim.x + threadIdx.x;
  if (o >= (int64_t) H * W)
    return;
  const VimkFrameDesc f = descs[b];
  const int oy = (int) (o / W), ox = (int) (o % W);
  const int64_t plane = (int64_t) H * W;
  T *dst = out + (int64_t) b * 3 * plane + o;
  if (ox < f.pad_x0 || ox >= f.pad_x1 || oy < f.pad_y0 || oy >= f.pad_y1) {
    st (dst, 0.f);
    st (dst + plane, 0.f);
    st (dst + 2 * plane, 0.f);
    return;
  }
  float sy = sub (add (mul (add ((float) oy, 0.5f), f.scale_y), f.offset_y), 0.5f);
  int y0 = (int) floorf (sy);
  float fy = sub (sy, (float) y0);
  int ya = min (max (y0, 0), f.height - 1), yb = min (max (y0 + 1, 0), f.height - 1);
  float sx = sub (add (mul (add ((float) ox, 0.5f), f.scale_x), f.offset_x), 0.5f);
  int x0 = (int) floorf (sx);
  float fx = sub (sx, (float) x0);
  int xa = min (max (x0, 0), f.width - 1), xb = min (max (x0 + 1, 0), f.width - 1);
  float p00[3], p01[3], p10[3], p11[3];
  fetch_rgb (f, xa, ya, p00);
  fetch_rgb (f, xb, ya, p01);
  fetch_rgb (f, xa, yb, p10);
  fetch_rgb (f, xb, yb, p11);
#pragma unroll
  for (int c = 0; c < 3; c++) {
    float top = add (p00[c], mul (fx, sub (p01[c], p00[c])));
    float bot = add (p10[c], mul (fx, sub (p11[c], p10[c])));
    float v = add (top, mul (fy, sub (bot, top)));
    st (dst + c * plane, add (mul (v, nm.scale[c]), nm.bias[c]));
  }
}

} // namespace

extern "C" cudaError_t
vimk_preprocess (const VimkFrameDesc *descs, int n, int H, int W,
    const float scale[3], const float bias[3], VimkDType out_dt, void *out,
    cudaStream_t stream)
{
  if (n <= 0)
    return cudaSuccess;
  if (n > 65535 || H <= 0 || W <= 0)
    return cudaErrorInvalidValue;
  Norm nm;
  for (int c = 0; c < 3; c++) {
    nm.scale[c] = scale[c];
    nm.bias[c] = bias[c];
  }
  dim3 grid ((unsigned) cdiv ((int64_t) H * W, 256), (unsigned) n);
  VIMK_DISPATCH_DTYPE (out_dt, T,
      preprocess_kernel<T><<<grid, 256, 0, stream>>> (descs, H, W, nm, (T *) out));
  return cudaGetLastError ();
}
