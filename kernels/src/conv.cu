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
    st (xc + row * pitch + c, silu_act<T> (af));
    st (xc + row * pitch + E + c, silu_act<T> (ab));
  }
  if constexpr (GATE) {
    /* The gate last (z is read only here), loads before stores */
    float z[kTokensPerThread];
#pragma unroll
    for (int i = 0; i < kTokensPerThread; i++)
      z[i] = t0 + i < L ? ld<T> (xz + (base + t0 + i) * pitch + E + c) : 0.f;
#pragma unroll
    for (int i = 0; i < kTokensPerThread; i++)
      if (t0 + i < L)
        st (xz + (base + t0 + i) * pitch + E + c, silu_act<T> (z[i]));
  }
}

/* Fast path for K = 4 and even E: a thread takes a channel pair (16- or
 * 32-bit vector accesses) and kTile consecutive tokens, loading the tile's
 * x values plus the 3 + 3 halo once into a register window. */
constexpr int kK = 4;

/* a channel pair <-> float2: one 4-byte access for 16-bit types, 8 for fp32 */
template <typename T> struct Pair {
  typedef typename Two<T>::type P;
  typedef unsigned Raw;                 /* 2 values as loaded */
  static __device__ __forceinline__ Raw raw (const T *p) { return *(const unsigned *) p; }
  static __device__ __forceinline__ Raw zero () { return 0u; }
  static __device__ __forceinline__ float2 get (Raw r) { return Two<T>::get (*(const P *) &r); }
  static __device__ __forceinline__ float2 load (const T *p) { return get (raw (p)); }
  static __device__ __forceinline__ void store (T *p, float2 v) { *(P *) p = Two<T>::make (v.x, v.y); }
};
template <> struct Pair<float> {
  typedef float2 Raw;
  static __device__ __forceinline__ Raw raw (const float *p) { return *(const float2 *) p; }
  static __device__ __forceinline__ Raw zero () { return make_float2 (0.f, 0.f); }
  static __device__ __forceinline__ float2 get (Raw r) { return r; }
  static __device__ __forceinline__ float2 load (const float *p) { return *(const float2 *) p; }
  static __device__ __forceinline__ void store (float *p, float2 v) { *(float2 *) p = v; }
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
  /* Every load (window rows as loaded, taps, biases) before the first use:
   * converting each row as it came made the compiler wait for the first
   * rows before issuing the rest, four L2 round trips instead of one (ncu,
   * H200, Vim-Ti 224 batch 1: 2.0 us of 64-thread blocks stalled on them) */
  constexpr int W = kTile + 2 * (kK - 1);
  typename Pair<T>::Raw raw[W];
  const T *x0 = xz + base * pitch + c;
#pragma unroll
  for (int i = 0; i < W; i++) {
    const int t = t0 - (kK - 1) + i;
    raw[i] = (t >= 0 && t < L) ? Pair<T>::raw (x0 + t * pitch) : Pair<T>::zero ();
  }
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
  float2 win[W];
#pragma unroll
  for (int i = 0; i < W; i++)
    win[i] = Pair<T>::get (raw[i]);
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
      Pair<TC>::store (xc + row * pitch + c, make_float2 (silu_act<T> (af.x), silu_act<T> (af.y)));
      Pair<TC>::store (xc + row * pitch + E + c, make_float2 (silu_act<T> (ab.x), silu_act<T> (ab.y)));
    }
  }
  if constexpr (GATE) {
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
            make_float2 (silu_act<T> (zv[i].x), silu_act<T> (zv[i].y)));
  }
}

/* The conv without the gate for K = 4 and E % 4 == 0: a thread takes 4
 * channels (one 8-byte load of 16-bit x, 16 bytes of fp32) and kTile
 * tokens, so a warp moves 256-512 contiguous bytes per row; the weights of
 * a channel's 4 taps are one float4. Twice the bytes per instruction of
 * the pair kernel, and with 4 tiles a block (below) 1.4x instead of 2.5x
 * halo loads.
 * Quad: 4 channels <-> float4, one 8-byte access for 16-bit types, 16 for
 * fp32. */
template <typename T> struct Quad {
  typedef typename Two<T>::type P;
  typedef uint2 Raw;                    /* 4 values as loaded */
  static __device__ __forceinline__ Raw raw (const T *p) { return *(const uint2 *) p; }
  static __device__ __forceinline__ Raw zero () { return make_uint2 (0u, 0u); }
  static __device__ __forceinline__ float4 get (Raw r)
  {
    const float2 a = Two<T>::get (*(const P *) &r.x), b = Two<T>::get (*(const P *) &r.y);
    return make_float4 (a.x, a.y, b.x, b.y);
  }
  static __device__ __forceinline__ void store (T *p, float4 v)
  {
    const P a = Two<T>::make (v.x, v.y), b = Two<T>::make (v.z, v.w);
    *(uint2 *) p = make_uint2 (*(const unsigned *) &a, *(const unsigned *) &b);
  }
};
template <> struct Quad<float> {
  typedef float4 Raw;
  static __device__ __forceinline__ Raw raw (const float *p) { return *(const float4 *) p; }
  static __device__ __forceinline__ Raw zero () { return make_float4 (0.f, 0.f, 0.f, 0.f); }
  static __device__ __forceinline__ float4 get (Raw r) { return r; }
  static __device__ __forceinline__ void store (float *p, float4 v) { *(float4 *) p = v; }
};

template <typename T>
__device__ __forceinline__ float4 silu4 (float4 v)
{
  return make_float4 (silu_act<T> (v.x), silu_act<T> (v.y), silu_act<T> (v.z), silu_act<T> (v.w));
}

/* grid: (ceil(E / 4 / blockDim), ceil(L / (kTile NT)), nseq). A block takes
 * NT consecutive tiles of kTile tokens; the next tile's kTile new rows are
 * loaded before this tile's arithmetic (its SiLUs' special-function time
 * was as long as the kernel's DRAM time when each SiLU took two operations
 * rather than silu_tanh's one), and the 6 halo rows two tiles share stay in
 * registers. */
template <typename T, typename TC, int kTile, int NT>
__global__ void conv_quad_kernel (const T *__restrict__ xz, TC *__restrict__ xc,
    const float4 *__restrict__ conv_w, const float *__restrict__ conv_b, int L, int E)
{
  const int cq = blockIdx.x * blockDim.x + threadIdx.x;
  if (4 * cq >= E)
    return;
  const int c = 4 * cq;
  const int tb = blockIdx.y * (kTile * NT);
  const int64_t pitch = 2 * (int64_t) E;
  const int64_t base = (int64_t) blockIdx.z * L;
  constexpr int H = kK - 1;
  constexpr int W = kTile + 2 * H;
  typedef typename Quad<T>::Raw R;
  R nxt[W];                     /* the next tile's rows tb - H .. tb + kTile + H - 1 */
#pragma unroll
  for (int i = 0; i < W; i++) {
    const int t = tb - H + i;
    nxt[i] = (t >= 0 && t < L) ? Quad<T>::raw (xz + (base + t) * pitch + c) : Quad<T>::zero ();
  }
  /* taps of channel c + j: forward wf[j], backward wb[j] */
  float4 wf[4], wb[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    wf[j] = conv_w[c + j];
    wb[j] = conv_w[E + c + j];
  }
  const float4 bf = *(const float4 *) (conv_b + c), bb = *(const float4 *) (conv_b + E + c);
#pragma unroll
  for (int k = 0; k < NT; k++) {
    const int t0 = tb + k * kTile;
    if (t0 >= L)
      break;
    float4 win[W];
#pragma unroll
    for (int i = 0; i < W; i++)
      win[i] = Quad<T>::get (nxt[i]);
    if (k + 1 < NT) {
#pragma unroll
      for (int i = 0; i < 2 * H; i++)
        nxt[i] = nxt[i + kTile];
#pragma unroll
      for (int i = 2 * H; i < W; i++) {
        const int t = t0 + kTile - H + i;
        nxt[i] = t < L ? Quad<T>::raw (xz + (base + t) * pitch + c) : Quad<T>::zero ();
      }
    }
#pragma unroll
    for (int i = 0; i < kTile; i++) {
      const int t = t0 + i;
      if (t < L) {
        /* forward: x[t-3..t] with taps 0..3; backward: x[t+3..t] with taps 0..3 */
        const float4 x0 = win[i], x1 = win[i + 1], x2 = win[i + 2], x3 = win[i + 3];
        const float4 x4 = win[i + 4], x5 = win[i + 5], x6 = win[i + 6];
        float4 af, ab;
        af.x = bf.x + wf[0].x * x0.x + wf[0].y * x1.x + wf[0].z * x2.x + wf[0].w * x3.x;
        af.y = bf.y + wf[1].x * x0.y + wf[1].y * x1.y + wf[1].z * x2.y + wf[1].w * x3.y;
        af.z = bf.z + wf[2].x * x0.z + wf[2].y * x1.z + wf[2].z * x2.z + wf[2].w * x3.z;
        af.w = bf.w + wf[3].x * x0.w + wf[3].y * x1.w + wf[3].z * x2.w + wf[3].w * x3.w;
        ab.x = bb.x + wb[0].x * x6.x + wb[0].y * x5.x + wb[0].z * x4.x + wb[0].w * x3.x;
        ab.y = bb.y + wb[1].x * x6.y + wb[1].y * x5.y + wb[1].z * x4.y + wb[1].w * x3.y;
        ab.z = bb.z + wb[2].x * x6.z + wb[2].y * x5.z + wb[2].z * x4.z + wb[2].w * x3.z;
        ab.w = bb.w + wb[3].x * x6.w + wb[3].y * x5.w + wb[3].z * x4.w + wb[3].w * x3.w;
        const int64_t row = base + t;
        Quad<TC>::store (xc + row * pitch + c, silu4<T> (af));
        Quad<TC>::store (xc + row * pitch + E + c, silu4<T> (ab));
      }
    }
  }
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

/* the quad kernel for the conv without the gate from 8192 rows on
 * (VIMK_CONV_QUAD=0: never, 1: always, for bench/) */
bool use_quad (int64_t rows)
{
  static int v = -1;
  if (v < 0) {
    const char *e = getenv ("VIMK_CONV_QUAD");
    v = e && (*e == '0' || *e == '1') ? *e - '0' : 2;
  }
  return v == 2 ? rows >= 8192 : v == 1;
}

template <int kTile, int NT>
cudaError_t launch_quad (VimkDType xz_dt, VimkDType xc_dt, const void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, cudaStream_t stream)
{
  /* whole warps that divide the channel quads where they can (Vim-Ti: 96
   * of 96), so no block runs idle warps */
  const int quads = E / 4;
  int threads = quads >= 64 ? 64 : 32 * (int) cdiv (quads, 32);
  for (int t = 128; t >= 64; t -= 32)
    if (quads % t == 0) {
      threads = t;
      break;
    }
  dim3 g4 ((unsigned) cdiv (quads, threads), (unsigned) cdiv (L, kTile * NT), (unsigned) nseq);
  const float4 *w4 = (const float4 *) conv_w;
  if (xz_dt == VIMK_F32 && xc_dt == VIMK_BF16) {
    prefer_carveout ((const void *) conv_quad_kernel<float, __nv_bfloat16, kTile, NT>,
        layer_carveout ());
    conv_quad_kernel<float, __nv_bfloat16, kTile, NT><<<g4, threads, 0, stream>>> ((const float *) xz,
        (__nv_bfloat16 *) xc, w4, conv_b, L, E);
    return cudaGetLastError ();
  }
  if (xz_dt != xc_dt)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (xz_dt, T,
      prefer_carveout ((const void *) conv_quad_kernel<T, T, kTile, NT>, layer_carveout ()),
      conv_quad_kernel<T, T, kTile, NT><<<g4, threads, 0, stream>>> ((const T *) xz, (T *) xc,
          w4, conv_b, L, E));
  return cudaGetLastError ();
}

template <int kTile, bool GATE>
cudaError_t launch_pair (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, cudaStream_t stream)
{
  const int pairs = E / 2;
  const int threads = pairs >= 64 ? 64 : 32 * (int) cdiv (pairs, 32);
  dim3 g2 ((unsigned) cdiv (pairs, threads), (unsigned) cdiv (L, kTile), (unsigned) nseq);
  if (xz_dt == VIMK_F32 && xc_dt == VIMK_BF16) {
    prefer_carveout ((const void *) conv_gate_pair_kernel<float, __nv_bfloat16, kTile, GATE>,
        layer_carveout ());
    conv_gate_pair_kernel<float, __nv_bfloat16, kTile, GATE><<<g2, threads, 0, stream>>> ((float *) xz,
        (__nv_bfloat16 *) xc, conv_w, conv_b, L, E);
    return cudaGetLastError ();
  }
  if (xz_dt != xc_dt)
    return cudaErrorInvalidValue;
  VIMK_DISPATCH_DTYPE (xz_dt, T,
      prefer_carveout ((const void *) conv_gate_pair_kernel<T, T, kTile, GATE>,
          layer_carveout ()),
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
  /* 16-byte alignment of the float4 weight and bias rows, 8 of the x rows.
   * Passes of fewer rows keep the pair kernel: twice the threads, and it
   * was 1% faster at batch 1-8 (bench/RESULTS.md) */
  if (!GATE && K == kK && E % 4 == 0 && !force_generic () && use_quad ((int64_t) nseq * L)
      && (uintptr_t) conv_w % 16 == 0 && (uintptr_t) conv_b % 16 == 0
      && (uintptr_t) xz % 16 == 0 && (uintptr_t) xc % 16 == 0) {
    /* 4 tiles of 4 tokens a block: on an H200 the eager conv stage at
     * Vim-Ti b256 took 1.124 ms with one tile, 0.952 with 4, 1.058 with 8,
     * 1.003 with 8 tiles of 2 (bench/RESULTS.md, ninth session) */
    return launch_quad<4, 4> (xz_dt, xc_dt, xz, xc, conv_w, conv_b, nseq, L, E, stream);
  }
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
