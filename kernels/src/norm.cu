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

constexpr int kMaxVec = 8;      /* float4 per lane: rows of up to 1024 in registers */

/* 4 consecutive outputs in one 8- or 16-byte store (p 4-element aligned) */
__device__ __forceinline__ void store4 (float *p, float a, float b, float c, float d)
{
  *(float4 *) p = make_float4 (a, b, c, d);
}
__device__ __forceinline__ void store4 (__half *p, float a, float b, float c, float d)
{
  __half2 h[2] = { __floats2half2_rn (a, b), __floats2half2_rn (c, d) };
  *(uint2 *) p = *(const uint2 *) h;
}
__device__ __forceinline__ void store4 (__nv_bfloat16 *p, float a, float b, float c, float d)
{
  __nv_bfloat162 h[2] = { __floats2bfloat162_rn (a, b), __floats2bfloat162_rn (c, d) };
  *(uint2 *) p = *(const uint2 *) h;
}

/* LPR lanes per row (a warp takes 32 / LPR rows), each lane holding its
 * <= V float4 of the row in registers between the sum and the scaling:
 * Vim-Ti's rows of 192 run 16 lanes x 3 float4, so no lane idles and a warp
 * has two rows in flight. V is the row's float4 per lane rounded up, not the
 * largest row's: room for 8 took 84 registers a thread and 2 blocks an SM,
 * too few loads in flight (H200, ncu, Vim-Ti batch 256: 11.3 -> 9.2 us with
 * 41 registers; Vim-S 20.0 -> 15.4; bench/RESULTS.md, thirty-third session).
 * LPR = 0: the plain loop, one warp per row, for any D and pitch. */
template <typename T, int LPR, int V>
__global__ void rmsnorm_kernel (const float *__restrict__ x, int64_t ldx,
    const float *__restrict__ w, T *__restrict__ out, int64_t ldo, int rows,
    int D, float eps)
{
  constexpr int L = LPR > 0 ? LPR : 32;
  const int lane = threadIdx.x & 31;
  const int sub = lane % L;
  const int row_raw = (int) ((blockIdx.x * (int64_t) blockDim.x + threadIdx.x) / L);
  if (LPR == 0 && row_raw >= rows)
    return;
  /* groups past the last row compute a copy of it and store nothing: the
   * whole warp takes part in the shuffles */
  const int row = min (row_raw, rows - 1);
  const float *xr = x + (int64_t) row * ldx;
  T *orow = out + (int64_t) row * ldo;
  float ss = 0.f;
  if constexpr (LPR > 0) {
    const float4 *x4 = (const float4 *) xr;
    const float4 *w4 = (const float4 *) w;
    const int n4 = D / 4;                       /* <= LPR * V */
    /* the weights are loaded with the row, not after the sum: at batch 1
     * a second round trip to L2 is most of this kernel's time */
    float4 v[V], g[V];
#pragma unroll
    for (int j = 0; j < V; j++)
      if (sub + LPR * j < n4) {
        v[j] = x4[sub + LPR * j];
        g[j] = w4[sub + LPR * j];
      }
#pragma unroll
    for (int j = 0; j < V; j++)
      if (sub + LPR * j < n4)
        ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
#pragma unroll
    for (int o = LPR / 2; o > 0; o >>= 1)
      ss += __shfl_xor_sync (0xffffffffu, ss, o);
    const float r = rsqrtf (ss / D + eps);
    if (row_raw < rows) {
#pragma unroll
      for (int j = 0; j < V; j++)
        if (sub + LPR * j < n4) {
          const int i = sub + LPR * j;
          store4 (orow + 4 * i, v[j].x * r * g[j].x, v[j].y * r * g[j].y, v[j].z * r * g[j].z,
              v[j].w * r * g[j].w);
        }
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

template <int LPR, int V>
cudaError_t launch_rmsnorm (VimkDType dt, const float *x, int64_t ldx, const float *w,
    void *out, int64_t ldo, int rows, int D, float eps, cudaStream_t stream)
{
  const int threads = 256;
  dim3 grid ((unsigned) cdiv ((int64_t) rows * (LPR > 0 ? LPR : 32), threads));
  VIMK_DISPATCH_DTYPE (dt, T,
      prefer_carveout ((const void *) rmsnorm_kernel<T, LPR, V>, layer_carveout ()),
      rmsnorm_kernel<T, LPR, V><<<grid, threads, 0, stream>>> (x, ldx, w, (T *) out, ldo,
          rows, D, eps));
  return cudaGetLastError ();
}

/* float4 per lane, 1..kMaxVec, as a template argument */
template <int LPR>
cudaError_t launch_rmsnorm_lanes (int v, VimkDType dt, const float *x, int64_t ldx,
    const float *w, void *out, int64_t ldo, int rows, int D, float eps, cudaStream_t stream)
{
  static_assert (kMaxVec == 8, "one case per float4 count");
  switch (v) {
    case 1: return launch_rmsnorm<LPR, 1> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 2: return launch_rmsnorm<LPR, 2> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 3: return launch_rmsnorm<LPR, 3> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 4: return launch_rmsnorm<LPR, 4> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 5: return launch_rmsnorm<LPR, 5> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 6: return launch_rmsnorm<LPR, 6> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 7: return launch_rmsnorm<LPR, 7> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    default: return launch_rmsnorm<LPR, 8> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
  }
}

} // namespace

extern "C" cudaError_t
vimk_rmsnorm (VimkDType dt, const float *x, int64_t ldx, const float *w,
    void *out, int64_t ldo, int rows, int D, float eps, cudaStream_t stream)
{
  if (rows <= 0)
    return cudaSuccess;
  /* lanes per row for rows of 4-float aligned float4 that fit the
   * registers: the most of 32, 16, 8 that split them evenly, else 32 with
   * some lanes idle at the end; other rows take the loop */
  int lpr = 0;
  if ((D & 3) == 0 && (ldx & 3) == 0 && (ldo & 3) == 0 && D / 4 <= 32 * kMaxVec) {
    lpr = 32;
    for (int l = 32; l >= 8; l /= 2)
      if ((D / 4) % l == 0 && D / 4 / l <= kMaxVec) {
        lpr = l;
        break;
      }
  }
  const int v = lpr > 0 ? (int) cdiv (D / 4, lpr) : 0;
  switch (lpr) {
    case 32: return launch_rmsnorm_lanes<32> (v, dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 16: return launch_rmsnorm_lanes<16> (v, dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    case 8: return launch_rmsnorm_lanes<8> (v, dt, x, ldx, w, out, ldo, rows, D, eps, stream);
    default: return launch_rmsnorm<0, 0> (dt, x, ldx, w, out, ldo, rows, D, eps, stream);
  }
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
