/* RMSNorm of the fp32 residual stream, and the final norm + head setup. */
#include "common.cuh"

using namespace vimk;

namespace {

__device__ __forceinline__ float warp_sum (float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

/* One warp per row. */
template <typename T>
__global__ void rmsnorm_kernel (const float *__restrict__ x, int64_t ldx,
    const float *__restrict__ w, T *__restrict__ out, int64_t ldo, int rows,
    int D, float eps)
{
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x & 31;
  if (row >= rows)
    return;
  const float *xr = x + (int64_t) row * ldx;
  T *orow = out + (int64_t) row * ldo;
  float ss = 0.f;
  if ((D & 3) == 0 && (ldx & 3) == 0) {
    const float4 *x4 = (const float4 *) xr;
    for (int i = lane; i < D / 4; i += 32) {
      float4 v = x4[i];
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    ss = warp_sum (ss);
    float r = rsqrtf (ss / D + eps);
    const float4 *w4 = (const float4 *) w;
    for (int i = lane; i < D / 4; i += 32) {
      float4 v = x4[i], g = w4[i];
      st (orow + 4 * i, v.x * r * g.x);
      st (orow + 4 * i + 1, v.y * r * g.y);
      st (orow + 4 * i + 2, v.z * r * g.z);
      st (orow + 4 * i + 3, v.w * r * g.w);
    }
  } else {
    for (int i = lane; i < D; i += 32)
      ss += xr[i] * xr[i];
    ss = warp_sum (ss);
    float r = rsqrtf (ss / D + eps);
    for (int i = lane; i < D; i += 32)
      st (orow + i, xr[i] * r * w[i]);
  }
}

/* One block per sequence. */
template <typename T>
__global__ void final_kernel (const float *__restrict__ residual, int L, int D,
    int cls_index, const float *__restrict__ w, float eps, T *__restrict__ feat,
    float *__restrict__ logits, const float *__restrict__ head_b, int C)
{
  extern __shared__ float acc[];      /* D floats (mean mode) */
  const int b = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const int nwarps = blockDim.x / 32;
  for (int k = threadIdx.x; k < C; k += blockDim.x)
    logits[(int64_t) b * C + k] = head_b[k];
  if (cls_index >= 0) {
    if (warp != 0)
      return;
    const float *xr = residual + ((int64_t) b * L + cls_index) * D;
    float ss = 0.f;
    for (int i = lane; i < D; i += 32)
      ss += xr[i] * xr[i];
    ss = warp_sum (ss);
    float r = rsqrtf (ss / D + eps);
    for (int i = lane; i < D; i += 32)
      st (feat + (int64_t) b * D + i, xr[i] * r * w[i]);
    return;
  }
  for (int i = threadIdx.x; i < D; i += blockDim.x)
    acc[i] = 0.f;
  __syncthreads ();
  for (int t = warp; t < L; t += nwarps) {
    const float *xr = residual + ((int64_t) b * L + t) * D;
    float ss = 0.f;
    for (int i = lane; i < D; i += 32)
      ss += xr[i] * xr[i];
    ss = warp_sum (ss);
    float r = rsqrtf (ss / D + eps);
    for (int i = lane; i < D; i += 32)
      atomicAdd (&acc[i], xr[i] * r * w[i]);
  }
  __syncthreads ();
  for (int i = threadIdx.x; i < D; i += blockDim.x)
    st (feat + (int64_t) b * D + i, acc[i] / L);
}

} // namespace

extern "C" cudaError_t
vimk_rmsnorm (VimkDType dt, const float *x, int64_t ldx, const float *w,
    void *out, int64_t ldo, int rows, int D, float eps, cudaStream_t stream)
{
  if (rows <= 0)
    return cudaSuccess;
  const int threads = 256, rows_per_block = threads / 32;
  dim3 grid ((unsigned) cdiv (rows, rows_per_block));
  VIMK_DISPATCH_DTYPE (dt, T,
      rmsnorm_kernel<T><<<grid, threads, 0, stream>>> (x, ldx, w, (T *) out,
          ldo, rows, D, eps));
  return cudaGetLastError ();
}

extern "C" cudaError_t
vimk_final_prepare (VimkDType dt, const float *residual, int nseq, int L,
    int D, int cls_index, const float *w, float eps, void *feat, float *logits,
    const float *head_b, int C, cudaStream_t stream)
{
  if (nseq <= 0)
    return cudaSuccess;
  size_t smem = cls_index >= 0 ? 0 : (size_t) D * sizeof (float);
  if (smem > 48 * 1024)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (dt, T,
      final_kernel<T><<<nseq, 256, smem, stream>>> (residual, L, D, cls_index,
          w, eps, (T *) feat, logits, head_b, C));
  return cudaGetLastError ();
}

extern "C" size_t
vimk_dtype_size (VimkDType dt)
{
  return dt == VIMK_F32 ? 4 : 2;
}
