/* Input conversion and the patch-embedding gather (im2col + residual init). */
#include "common.cuh"

using namespace vimk;

namespace {

template <typename T>
__global__ void convert_kernel (T *__restrict__ dst, const float *__restrict__ src, size_t n)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    st (dst + i, src[i]);
}

/* One block per token row. */
template <typename T>
__global__ void embed_kernel (VimkEmbedArgs a)
{
  const int r = blockIdx.x;
  const int b = r / a.L, t = r % a.L;
  const int PP = a.P * a.P, K = 3 * PP;
  T *prow = (T *) a.patches + (int64_t) r * a.ldp;
  float *res = a.residual + (int64_t) r * a.D;
  const float *pos = a.pos + (int64_t) t * a.D;
  const bool is_cls = a.cls_index >= 0 && t == a.cls_index;
  const float *add = is_cls ? a.cls : a.patch_b;
  for (int d = threadIdx.x; d < a.D; d += blockDim.x)
    res[d] = pos[d] + add[d];
  if (is_cls) {
    for (int k = threadIdx.x; k < K; k += blockDim.x)
      st (prow + k, 0.f);
    return;
  }
  const int j = (a.cls_index >= 0 && t > a.cls_index) ? t - 1 : t;
  const int gy = j / a.gw, gx = j % a.gw;
  const T *img = (const T *) a.input + (int64_t) b * 3 * a.H * a.W;
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    int c = k / PP, py = (k / a.P) % a.P, px = k % a.P;
    int iy = gy * a.stride + py, ix = gx * a.stride + px;
    prow[k] = img[((int64_t) c * a.H + iy) * a.W + ix];
  }
}

} // namespace

extern "C" cudaError_t
vimk_convert_from_f32 (VimkDType dt, void *dst, const float *src, size_t n,
    cudaStream_t stream)
{
  if (n == 0)
    return cudaSuccess;
  unsigned blocks = (unsigned) (cdiv ((int64_t) n, 256) < 65535 ? cdiv ((int64_t) n, 256) : 65535);
  VIMK_DISPATCH_DTYPE (dt, T,
      convert_kernel<T><<<blocks, 256, 0, stream>>> ((T *) dst, src, n));
  return cudaGetLastError ();
}

extern "C" cudaError_t
vimk_embed_prepare (VimkDType dt, const VimkEmbedArgs *a, cudaStream_t stream)
{
  int64_t rows = (int64_t) a->nseq * a->L;
  if (rows <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffff || a->ldp < 3 * a->P * a->P)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (dt, T,
      embed_kernel<T><<<(unsigned) rows, 256, 0, stream>>> (*a));
  return cudaGetLastError ();
}
