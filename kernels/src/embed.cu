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

/* The same in 16-byte pieces, for patch rows, strides and image rows that
 * are whole pieces: one thread copies EPC consecutive pixels of one
 * (channel, patch row), then the residual rows go out as float4. The
 * per-element version above spends its time on index arithmetic and 2-byte
 * accesses: the pieces were 0.5-1% faster end to end at batch 64-256 and
 * 1248 px on an H200 (bench/RESULTS.md). */
template <typename T>
__global__ void embed_vec_kernel (VimkEmbedArgs a, int64_t pieces)
{
  typedef int4 V;
  constexpr int EPC = 16 / (int) sizeof (T);
  const int PP = a.P * a.P, CPR = 3 * PP / EPC;
  const int64_t step = (int64_t) gridDim.x * blockDim.x;
  for (int64_t q = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; q < pieces; q += step) {
    const int64_t r = q / CPR;
    const int k = (int) (q - r * CPR) * EPC;
    const int b = (int) (r / a.L), t = (int) (r - (int64_t) b * a.L);
    V *dst = (V *) ((T *) a.patches + r * a.ldp + k);
    if (a.cls_index >= 0 && t == a.cls_index) {
      *dst = make_int4 (0, 0, 0, 0);
      continue;
    }
    const int j = (a.cls_index >= 0 && t > a.cls_index) ? t - 1 : t;
    const int gy = j / a.gw, gx = j - gy * a.gw;
    const int c = k / PP, py = (k - c * PP) / a.P, px = k - c * PP - py * a.P;
    const T *img = (const T *) a.input + (int64_t) b * 3 * a.H * a.W;
    *dst = *(const V *) (img + ((int64_t) c * a.H + gy * a.stride + py) * a.W
        + gx * a.stride + px);
  }
  const int D4 = a.D / 4;
  const int64_t rows = (int64_t) a.nseq * a.L, n4 = rows * D4;
  for (int64_t q = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; q < n4; q += step) {
    const int64_t r = q / D4;
    const int d = (int) (q - r * D4) * 4, t = (int) (r % a.L);
    const float4 p = *(const float4 *) (a.pos + (int64_t) t * a.D + d);
    const float4 v = *(const float4 *) ((a.cls_index >= 0 && t == a.cls_index ? a.cls
        : a.patch_b) + d);
    *(float4 *) (a.residual + r * a.D + d) = make_float4 (p.x + v.x, p.y + v.y, p.z + v.z,
        p.w + v.w);
  }
}

/* whether embed_vec_kernel<T> can take these arguments */
bool
embed_vec_ok (const VimkEmbedArgs *a, size_t ts)
{
  const int epc = (int) (16 / ts);
  const uintptr_t align = (uintptr_t) a->input | (uintptr_t) a->patches | (uintptr_t) a->residual
      | (uintptr_t) a->pos | (uintptr_t) a->patch_b | (uintptr_t) (a->cls ? a->cls : a->pos);
  return align % 16 == 0 && a->P % epc == 0 && a->stride % epc == 0 && a->W % epc == 0
      && a->ldp % epc == 0 && a->D % 4 == 0;
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
  if (dt >= VIMK_F32 && dt <= VIMK_BF16 && embed_vec_ok (a, vimk_dtype_size (dt))) {
    const int64_t pieces = rows * 3 * a->P * a->P / (int64_t) (16 / vimk_dtype_size (dt));
    const int64_t work = rows * (a->D / 4) > pieces ? rows * (a->D / 4) : pieces;
    const int64_t blocks = cdiv (work, 256);
    VIMK_DISPATCH_DTYPE (dt, T,
        embed_vec_kernel<T><<<(unsigned) (blocks < 8192 ? blocks : 8192), 256, 0, stream>>> (*a,
            pieces));
    return cudaGetLastError ();
  }
  VIMK_DISPATCH_DTYPE (dt, T,
      embed_kernel<T><<<(unsigned) rows, 256, 0, stream>>> (*a));
  return cudaGetLastError ();
}
