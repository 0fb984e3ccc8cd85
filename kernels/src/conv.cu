/* Depthwise conv1d + SiLU for both scan directions, and (vimk_conv_gate)
 * the SiLU(z) gate; vimk_conv leaves z for the scan to gate with. */
#include "common.cuh"
#include <stdlib.h>

using namespace vimk;

namespace {

constexpr int kMaxK = 8;
constexpr int kTokensPerThread = 4;

/* grid: (ceil(E / blockDim), ceil(L / kTokensPerThread), nseq) */
template <typename T, typename TC, bool GATE>
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
  if (!GATE)
    return;
  /* The gate last (z is read only here), loads before stores */
  float z[kTokensPerThread];
#pragma unroll
  for (int i = 0; i < kTokensPerThread; i++)
    z[i] = t0 + i < L ? ld<T> (xz + (base + t0 + i) * pitch + E + c) : 0.f;
#pragma unroll
  for (int i = 0; i < kTokensPerThread; i++)
    if (t0 + i < L)
      st (xz + (base + t0 + i) * pitch + E + c, silu_f (z[i]));
}

/* Fast path for K = 4 and even E: a thread takes a channel pair (16- or
 * 32-bit vector accesses) and kTile consecutive tokens, loading the tile's
 * x values plus the 3 + 3 halo once into a register window. */
constexpr int kK = 4;

template <typename T> struct Pair;
template <> struct Pair<float> {
  static __device__ __forceinline__ float2 load (const float *p) { return *(const float2 *) p; }
  static __device__ __forceinline__ void store (float *p, float2 v) { *(float2 *) p = v; }
};
template <> struct Pair<__half> {
  static __device__ __forceinline__ float2 load (const __half *p) { return __half22float2 (*(const __half2 *) p); }
  static __device__ __forceinline__ void store (__half *p, float2 v) { *(__half2 *) p = __float22half2_rn (v); }
};
template <> struct Pair<__nv_bfloat16> {
  static __device__ __forceinline__ float2 load (const __nv_bfloat16 *p) { return __bfloat1622float2 (*(const __nv_bfloat162 *) p); }
  static __device__ __forceinline__ void store (__nv_bfloat16 *p, float2 v) { *(__nv_bfloat162 *) p = __float22bfloat162_rn (v); }
};

/* grid: (ceil(E / 2 / blockDim), ceil(L / kTile), nseq) */
template <typename T, typename TC, int kTile, bool GATE>
__global__ void conv_gate_pair_kernel (T *__restrict__ xz, TC *__restrict__ xc,
    const float *__restrict__ conv_w, const float *__restrict__ conv_b, int L, int E)
{
  const int cp = blockIdx.x * blockDim.x + threadIdx.x;
  if (2 * cp >= E)
    return;
  const int c = 2 * cp;
  const int t0 = blockIdx.y * kTile;
  const int64_t pitch = 2 * (int64_t) E;
  const int64_t base = (int64_t) blockIdx.z * L;
  float wf0[kK], wf1[kK], wb0[kK], wb1[kK];
#pragma unroll
  for (int k = 0; k < kK; k++) {
    wf0[k] = conv_w[(int64_t) c * kK + k];
    wf1[k] = conv_w[(int64_t) (c + 1) * kK + k];
    wb0[k] = conv_w[((int64_t) E + c) * kK + k];
    wb1[k] = conv_w[((int64_t) E + c + 1) * kK + k];
  }
  const float bf0 = conv_b[c], bf1 = conv_b[c + 1];
  const float bb0 = conv_b[E + c], bb1 = conv_b[E + c + 1];
  constexpr int W = kTile + 2 * (kK - 1);
  float2 win[W];
#pragma unroll
  for (int i = 0; i < W; i++) {
    const int t = t0 - (kK - 1) + i;
    win[i] = (t >= 0 && t < L) ? Pair<T>::load (xz + (base + t) * pitch + c) : make_float2 (0.f, 0.f);
  }
#pragma unroll
  for (int i = 0; i < kTile; i++) {
    const int t = t0 + i;
    if (t < L) {
      float2 af = make_float2 (bf0, bf1), ab = make_float2 (bb0, bb1);
#pragma unroll
      for (int k = 0; k < kK; k++) {
        const float2 xf = win[i + k];                       /* x[t - (K-1) + k] */
        const float2 xb = win[i + 2 * (kK - 1) - k];        /* x[t + (K-1) - k] */
        af.x += wf0[k] * xf.x;
        af.y += wf1[k] * xf.y;
        ab.x += wb0[k] * xb.x;
        ab.y += wb1[k] * xb.y;
      }
      const int64_t row = base + t;
      Pair<TC>::store (xc + row * pitch + c, make_float2 (silu_f (af.x), silu_f (af.y)));
      Pair<TC>::store (xc + row * pitch + E + c, make_float2 (silu_f (ab.x), silu_f (ab.y)));
    }
  }
  if (!GATE)
    return;
  /* The gate after the conv (its window's registers are free by then), all
   * z loads before the first z store: the compiler cannot move a load of xz
   * above a store through xz, so a load-silu-store per token cost one DRAM
   * round trip per token */
  float2 zv[kTile];
#pragma unroll
  for (int i = 0; i < kTile; i++) {
    const int t = t0 + i;
    zv[i] = t < L ? Pair<T>::load (xz + (base + t) * pitch + E + c) : make_float2 (0.f, 0.f);
  }
#pragma unroll
  for (int i = 0; i < kTile; i++)
    if (t0 + i < L)
      Pair<T>::store (xz + (base + t0 + i) * pitch + E + c,
          make_float2 (silu_f (zv[i].x), silu_f (zv[i].y)));
}

bool force_generic ()
{
  static int v = -1;
  if (v < 0) {
    const char *e = getenv ("VIMK_CONV_GENERIC");
    v = e && *e && *e != '0';
  }
  return v;
}

/* tokens per thread of the pair kernel: 4 (VIMK_CONV_TILE=2|4|8 for
 * bench/). On an H200, against 8: Vim-Ti 224 batch 1 0.640 -> 0.603 ms,
 * batch 256 11.97 -> 11.74, Vim-Ti 1248 batch 8 18.82 -> 18.63; 2 was as
 * good at batch 1 and 5% slower at 256 (bench/RESULTS.md) */
int pair_tile ()
{
  static int v = -1;
  if (v < 0) {
    const char *e = getenv ("VIMK_CONV_TILE");
    const int t = e ? atoi (e) : 0;
    v = t == 2 || t == 4 || t == 8 ? t : 4;
  }
  return v;
}

template <int kTile, bool GATE>
cudaError_t launch_pair (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, cudaStream_t stream)
{
  const int pairs = E / 2;
  const int threads = pairs >= 64 ? 64 : 32 * (int) cdiv (pairs, 32);
  dim3 g2 ((unsigned) cdiv (pairs, threads), (unsigned) cdiv (L, kTile), (unsigned) nseq);
  if (xz_dt == VIMK_F32 && xc_dt == VIMK_BF16) {
    conv_gate_pair_kernel<float, __nv_bfloat16, kTile, GATE><<<g2, threads, 0, stream>>> ((float *) xz,
        (__nv_bfloat16 *) xc, conv_w, conv_b, L, E);
    return cudaGetLastError ();
  }
  if (xz_dt != xc_dt)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (xz_dt, T,
      conv_gate_pair_kernel<T, T, kTile, GATE><<<g2, threads, 0, stream>>> ((T *) xz, (T *) xc,
          conv_w, conv_b, L, E));
  return cudaGetLastError ();
}

template <bool GATE>
cudaError_t conv (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, int K,
    cudaStream_t stream)
{
  if (nseq <= 0 || L <= 0)
    return cudaSuccess;
  if (K < 1 || K > kMaxK || nseq > 65535)
    return cudaErrorInvalidValue;
  if (K == kK && E % 2 == 0 && !force_generic ()) {
    switch (pair_tile ()) {
      case 2: return launch_pair<2, GATE> (xz_dt, xc_dt, xz, xc, conv_w, conv_b, nseq, L, E, stream);
      case 4: return launch_pair<4, GATE> (xz_dt, xc_dt, xz, xc, conv_w, conv_b, nseq, L, E, stream);
      default: return launch_pair<8, GATE> (xz_dt, xc_dt, xz, xc, conv_w, conv_b, nseq, L, E, stream);
    }
  }
  const int threads = E >= 128 ? 128 : 32 * (int) cdiv (E, 32);
  dim3 grid ((unsigned) cdiv (E, threads), (unsigned) cdiv (L, kTokensPerThread), (unsigned) nseq);
  if (xz_dt == VIMK_F32 && xc_dt == VIMK_BF16) {
    conv_gate_kernel<float, __nv_bfloat16, GATE><<<grid, threads, 0, stream>>> ((float *) xz,
        (__nv_bfloat16 *) xc, conv_w, conv_b, L, E, K);
    return cudaGetLastError ();
  }
  if (xz_dt != xc_dt)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (xz_dt, T,
      conv_gate_kernel<T, T, GATE><<<grid, threads, 0, stream>>> ((T *) xz, (T *) xc,
          conv_w, conv_b, L, E, K));
  return cudaGetLastError ();
}

} // namespace

extern "C" cudaError_t
vimk_conv_gate (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, int K,
    cudaStream_t stream)
{
  return conv<true> (xz_dt, xc_dt, xz, xc, conv_w, conv_b, nseq, L, E, K, stream);
}

extern "C" cudaError_t
vimk_conv (VimkDType xz_dt, VimkDType xc_dt, const void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, int K,
    cudaStream_t stream)
{
  /* the kernels write xz only when they gate */
  return conv<false> (xz_dt, xc_dt, (void *) xz, xc, conv_w, conv_b, nseq, L, E, K, stream);
}
