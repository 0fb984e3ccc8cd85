/* Depthwise conv1d + SiLU for both scan directions, and the SiLU(z) gate. */
#include "common.cuh"

using namespace vimk;

namespace {

constexpr int kMaxK = 8;
constexpr int kTokensPerThread = 4;

/* grid: (ceil(E / blockDim), ceil(L / kTokensPerThread), nseq) */
template <typename T, typename TC>
__global__ void conv_gate_kernel (T *__restrict__ xz, TC *__restrict__ xc,
    const float *__restrict__ conv_w, const float *__restrict__ conv_b,
    int L, int E, int K)
{
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= E)
    return;
  const int s = blockIdx.z;
  const int t0 = blockIdx.y * kTokensPerThread;
  const int64_t pitch = 2 * (int64_t) E;
  const int64_t base = (int64_t) s * L;
  float wf[kMaxK], wb[kMaxK];
#pragma unroll
  for (int k = 0; k < kMaxK; k++) {
    wf[k] = k < K ? conv_w[(int64_t) c * K + k] : 0.f;
    wb[k] = k < K ? conv_w[((int64_t) E + c) * K + k] : 0.f;
  }
  const float bf = conv_b[c], bb = conv_b[E + c];
  for (int i = 0; i < kTokensPerThread; i++) {
    const int t = t0 + i;
    if (t >= L)
      break;
    float af = bf, ab = bb;
#pragma unroll
    for (int k = 0; k < kMaxK; k++) {
      if (k < K) {
        int tf = t - (K - 1) + k;     /* forward tap k */
        int tb = t + (K - 1) - k;     /* backward tap k */
        if (tf >= 0)
          af += wf[k] * ld<T> (xz + (base + tf) * pitch + c);
        if (tb < L)
          ab += wb[k] * ld<T> (xz + (base + tb) * pitch + c);
      }
    }
    const int64_t row = base + t;
    st (xc + row * pitch + c, silu_f (af));
    st (xc + row * pitch + E + c, silu_f (ab));
  }
  /* The gate last: z is read only here. */
  for (int i = 0; i < kTokensPerThread; i++) {
    const int t = t0 + i;
    if (t >= L)
      break;
    T *zp = xz + (base + t) * pitch + E + c;
    st (zp, silu_f (ld<T> (zp)));
  }
}

} // namespace

extern "C" cudaError_t
vimk_conv_gate (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, int K,
    cudaStream_t stream)
{
  if (nseq <= 0 || L <= 0)
    return cudaSuccess;
  if (K < 1 || K > kMaxK || nseq > 65535)
    return cudaErrorInvalidValue;
  const int threads = E >= 128 ? 128 : 32 * (int) cdiv (E, 32);
  dim3 grid ((unsigned) cdiv (E, threads), (unsigned) cdiv (L, kTokensPerThread), (unsigned) nseq);
  if (xz_dt == VIMK_F32 && xc_dt == VIMK_BF16) {
    conv_gate_kernel<float, __nv_bfloat16><<<grid, threads, 0, stream>>> ((float *) xz,
        (__nv_bfloat16 *) xc, conv_w, conv_b, L, E, K);
    return cudaGetLastError ();
  }
  if (xz_dt != xc_dt)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (xz_dt, T,
      conv_gate_kernel<T, T><<<grid, threads, 0, stream>>> ((T *) xz, (T *) xc,
          conv_w, conv_b, L, E, K));
  return cudaGetLastError ();
}
