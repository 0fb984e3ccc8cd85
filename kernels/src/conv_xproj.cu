/* Depthwise conv1d + SiLU of both directions, the SiLU(z) gate, and x_proj
 * of both directions on the tensor cores, in one launch.
 *
 * The two-launch path (vimk_conv_gate, then a cuBLAS GEMM with N = dt_rank +
 * 2 d_state, 44 columns for Vim-Ti) wrote xc to DRAM and read it straight
 * back, and cuBLAS runs such narrow GEMMs at about half the bandwidth they
 * need. Here a block takes TT consecutive token rows (they may span
 * sequences: the conv masks taps by each row's own position), stages their
 * x rows plus the K - 1 halo rows each side in shared memory, writes xc to
 * DRAM for the scan and keeps it in shared memory as the A operand of the
 * x_proj product, whose weights (a few tens of KiB) come from L1/L2.
 *
 * Block: 192 threads; a thread owns one group of 8 channels (E / 8 divides
 * 192) so its conv weights stay in registers, and warp w computes the
 * x_proj columns [16 nt, 16 nt + 16) of direction d for all TT rows.
 *
 * Measured on an H200 it is slower than the two launches it replaces (Vim-Ti
 * 224 batch 256: 12.89 against 11.95 ms, batch 1: 0.80 against 0.67): the
 * phases of a block (copy in, gate, conv, product, copy out) run one after
 * another with 12-24 warps per SM, where the separate kernels overlap their
 * memory traffic across many small blocks. The runner uses it only when
 * asked (VIM_CUDA_CONV_XPROJ=1); a faster version would pipeline the next
 * tile's copies under this tile's work. */
#include "common.cuh"
#include <cuda_pipeline.h>
#include <mma.h>
#include <stdlib.h>

using namespace vimk;

namespace {

constexpr int kK = 4;               /* conv taps: every Vim model */
constexpr int kHalo = kK - 1;

/* 8 elements <-> 8 floats: one 16-byte access for 16-bit types */
template <typename T> struct Vec8 {
  typedef typename Two<T>::type P;
  static __device__ __forceinline__ void load (const T *p, float *v)
  {
    const int4 q = *(const int4 *) p;
    const P *h = (const P *) &q;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float2 f = Two<T>::get (h[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  }
  static __device__ __forceinline__ void store (T *p, const float *v)
  {
    int4 q;
    P *h = (P *) &q;
#pragma unroll
    for (int i = 0; i < 4; i++)
      h[i] = Two<T>::make (v[2 * i], v[2 * i + 1]);
    *(int4 *) p = q;
  }
};
template <> struct Vec8<float> {
  static __device__ __forceinline__ void load (const float *p, float *v)
  {
    const float4 a = *(const float4 *) p, b = *(const float4 *) (p + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  }
  static __device__ __forceinline__ void store (float *p, const float *v)
  {
    *(float4 *) p = make_float4 (v[0], v[1], v[2], v[3]);
    *(float4 *) (p + 4) = make_float4 (v[4], v[5], v[6], v[7]);
  }
};

constexpr int kB = 8;               /* weight fragments per batch */

template <typename TC>
using FragB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, TC, nvcuda::wmma::col_major>;

/* fragments k = kb * kB .. of the weights' column-major E x 16 slice */
template <typename TC>
__device__ __forceinline__ void load_b (FragB<TC> *b, const TC *wp, int kb, int E)
{
#pragma unroll
  for (int j = 0; j < kB; j++) {
    const int k = kb * kB + j;
    if (k < E / 16)
      nvcuda::wmma::load_matrix_sync (b[j], wp + k * 16, E);
  }
}

/* acc[m] += A rows m*16.. (shared memory, pitch ldc) x those fragments */
template <int TT, typename TC>
__device__ __forceinline__ void mma_batch (
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> *acc,
    const TC *ap, int ldc, const FragB<TC> *b, int kb, int E)
{
#pragma unroll
  for (int j = 0; j < kB; j++) {
    const int k = kb * kB + j;
    if (k < E / 16) {
#pragma unroll
      for (int m = 0; m < TT / 16; m++) {
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, TC, nvcuda::wmma::row_major> af;
        nvcuda::wmma::load_matrix_sync (af, ap + (size_t) m * 16 * ldc + k * 16, ldc);
        nvcuda::wmma::mma_sync (acc[m], af, b[j], acc[m]);
      }
    }
  }
}

__host__ __device__ constexpr size_t align128 (size_t x) { return (x + 127) & ~(size_t) 127; }

/* Shared memory: x rows (TT + 2 halo) x E in TX; xc rows TT x (2E + 8) in TC
 * (8 elements of padding shift consecutive rows across banks for the
 * fragment loads); x_proj results [2][TT][nc] fp32. */
template <typename TX, typename TC>
__host__ __device__ size_t smem_bytes (int TT, int E, int nc)
{
  return align128 ((size_t) (TT + 2 * kHalo) * E * sizeof (TX))
      + align128 ((size_t) TT * (2 * E + 8) * sizeof (TC))
      + (size_t) 2 * TT * nc * sizeof (float);
}

template <typename TX, typename TC, int TT, int kThreads>
__global__ void __launch_bounds__ (kThreads, kThreads == 384 ? 2 : 1)
conv_xproj_kernel (TX *__restrict__ xz, TC *__restrict__ xc,
    const float *__restrict__ conv_w, const float *__restrict__ conv_b,
    const TC *__restrict__ x_w, int nc, float *__restrict__ dbl, int ldd,
    int rows, int L, int E)
{
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  namespace wmma = nvcuda::wmma;
  extern __shared__ __align__ (128) unsigned char smem[];
  TX *xs = (TX *) smem;
  TC *xcs = (TC *) (smem + align128 ((size_t) (TT + 2 * kHalo) * E * sizeof (TX)));
  float *outs = (float *) ((unsigned char *) xcs + align128 ((size_t) TT * (2 * E + 8) * sizeof (TC)));
  const int ldc = 2 * E + 8;
  const int64_t pitch = 2 * (int64_t) E;
  const int r0 = blockIdx.x * TT;
  const int tid = threadIdx.x;

  /* x rows r0 - halo .. r0 + TT - 1 + halo; rows outside [0, rows) are only
   * read by taps the sequence mask drops, but are zeroed all the same */
  constexpr int EPC = 16 / (int) sizeof (TX);  /* elements per 16-byte copy */
  const int cpr = E / EPC;
  for (int i = tid; i < (TT + 2 * kHalo) * cpr; i += kThreads) {
    const int hr = i / cpr, j = i - hr * cpr;
    const int grow = r0 - kHalo + hr;
    TX *dst = xs + (size_t) hr * E + j * EPC;
    if (grow >= 0 && grow < rows)
      __pipeline_memcpy_async (dst, xz + grow * pitch + j * EPC, 16);
    else
      *(int4 *) dst = make_int4 (0, 0, 0, 0);
  }
  /* z rows go to the xc region (TT x E in TX fits in TT x (2E + 8) in a
   * 16-bit TC), which the conv only writes after the gate has read them */
  TX *zs = (TX *) xcs;
  for (int i = tid; i < TT * cpr; i += kThreads) {
    const int tr = i / cpr, j = i - tr * cpr;
    if (r0 + tr < rows)
      __pipeline_memcpy_async (zs + (size_t) tr * E + j * EPC, xz + (r0 + tr) * pitch + E + j * EPC, 16);
  }
  __pipeline_commit ();
  __pipeline_wait_prior (0);
  __syncthreads ();

  /* the gate: z <- silu(z), in place */
  for (int i = tid; i < TT * cpr; i += kThreads) {
    const int tr = i / cpr, j = i - tr * cpr;
    const int row = r0 + tr;
    if (row < rows) {
      const TX *zsp = zs + (size_t) tr * E + j * EPC;
      TX *zp = xz + row * pitch + E + j * EPC;
      if constexpr (EPC == 8) {
        float v[8];
        Vec8<TX>::load (zsp, v);
#pragma unroll
        for (int k = 0; k < 8; k++)
          v[k] = silu_f (v[k]);
        Vec8<TX>::store (zp, v);
      } else {                /* fp32: 4 per copy */
        float4 q = *(const float4 *) zsp;
        q = make_float4 (silu_f (q.x), silu_f (q.y), silu_f (q.z), silu_f (q.w));
        *(float4 *) zp = q;
      }
    }
  }
  __syncthreads ();

  /* conv + SiLU: thread -> channel group g (8 channels), rows tr0, tr0 + step, .. */
  const int G = E / 8, step = kThreads / G;
  const int g = tid % G, c0 = 8 * g;
#pragma unroll 1
  for (int d = 0; d < 2; d++) {
    float w[kK][8], b[8];
#pragma unroll
    for (int q = 0; q < 8; q++) {
      const float4 wq = *(const float4 *) (conv_w + ((size_t) d * E + c0 + q) * kK);
      w[0][q] = wq.x; w[1][q] = wq.y; w[2][q] = wq.z; w[3][q] = wq.w;
      b[q] = conv_b[d * E + c0 + q];
    }
#pragma unroll 1
    for (int tr = tid / G; tr < TT; tr += step) {
      const int row = r0 + tr;
      TC *cs = xcs + (size_t) tr * ldc + d * E + c0;
      float a[8];
      if (row >= rows) {      /* past the end: zero A rows, nothing stored */
#pragma unroll
        for (int q = 0; q < 8; q++)
          a[q] = 0.f;
        Vec8<TC>::store (cs, a);
        continue;
      }
      const int t = row % L;
#pragma unroll
      for (int q = 0; q < 8; q++)
        a[q] = b[q];
#pragma unroll
      for (int k = 0; k < kK; k++) {
        /* forward tap k reads x[t - 3 + k], backward tap k x[t + 3 - k] */
        const int dt = d == 0 ? k - kHalo : kHalo - k;
        if (t + dt < 0 || t + dt >= L)
          continue;
        float x[8];
        Vec8<TX>::load (xs + (size_t) (tr + kHalo + dt) * E + c0, x);
#pragma unroll
        for (int q = 0; q < 8; q++)
          a[q] = fmaf (w[k][q], x[q], a[q]);
      }
#pragma unroll
      for (int q = 0; q < 8; q++)
        a[q] = silu_f (a[q]);
      Vec8<TC>::store (cs, a);
      Vec8<TC>::store (xc + row * pitch + d * E + c0, a);
    }
  }
  __syncthreads ();

  /* x_proj: warp -> (direction, 16 columns) over all TT rows; the weights
   * are [2][nc][E], i.e. column-major E x nc per direction */
  const int warp = tid / 32, ntile = nc / 16;
  for (int p = warp; p < 2 * ntile; p += kThreads / 32) {
    const int d = p / ntile, nt = p - d * ntile;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[TT / 16];
#pragma unroll
    for (int m = 0; m < TT / 16; m++)
      wmma::fill_fragment (acc[m], 0.f);
    const TC *wp = x_w + ((size_t) d * nc + nt * 16) * E;
    const TC *ap = xcs + d * E;
    /* weight fragments come from L2, kB of them in flight at a time */
    const int nkb = cdiv (E / 16, kB);
    for (int kb = 0; kb < nkb; kb++) {
      FragB<TC> b[kB];
      load_b (b, wp, kb, E);
      mma_batch<TT> (acc, ap, ldc, b, kb, E);
    }
#pragma unroll
    for (int m = 0; m < TT / 16; m++)
      wmma::store_matrix_sync (outs + ((size_t) d * TT + m * 16) * nc + nt * 16, acc[m], nc,
          wmma::mem_row_major);
  }
  __syncthreads ();

  /* dbl[d] rows r0 .. are one contiguous run of TT x ldd floats */
  const int nrow = min (TT, rows - r0);
  for (int d = 0; d < 2; d++) {
    float *dst = dbl + ((size_t) d * rows + r0) * ldd;
    for (int i = tid; i < nrow * ldd; i += kThreads) {
      const int tr = i / ldd, col = i - tr * ldd;
      dst[i] = outs[((size_t) d * TT + tr) * nc + col];
    }
  }
#endif
}

static int
env_choice (const char *name, int a, int b)
{
  const char *e = getenv (name);
  const int v = e ? atoi (e) : 0;
  return v == a || v == b ? v : 0;
}

/* Rows per block: 16 while blocks of 32 would not give two per SM of an
 * H100/H200 (132 SMs), else 32 where that fits; 192 threads. The best of
 * the settings measured (bench/RESULTS.md, seventh session).
 * VIMK_CONV_XPROJ_TILE=16|32 and VIMK_CONV_XPROJ_THREADS=192|384 override
 * them for bench/. */
template <typename TX, typename TC>
int pick_tile (int E, int nc, int rows)
{
  static int forced = -1;
  if (forced < 0)
    forced = env_choice ("VIMK_CONV_XPROJ_TILE", 16, 32);
  const bool fits32 = smem_bytes<TX, TC> (32, E, nc) <= 200 * 1024;
  if (forced)
    return forced == 32 && fits32 ? 32 : 16;
  return cdiv (rows, 32) >= 264 && fits32 ? 32 : 16;
}

static int
pick_threads ()
{
  static int forced = -1;
  if (forced < 0)
    forced = env_choice ("VIMK_CONV_XPROJ_THREADS", 192, 384);
  return forced ? forced : 192;
}

template <typename TX, typename TC, int TT, int NT>
cudaError_t launch_one (TX *xz, TC *xc, const float *conv_w, const float *conv_b, const TC *x_w,
    int nc, float *dbl, int ldd, int rows, int L, int E, cudaStream_t stream)
{
  const size_t sm = smem_bytes<TX, TC> (TT, E, nc);
  cudaError_t err = cudaFuncSetAttribute (conv_xproj_kernel<TX, TC, TT, NT>,
      cudaFuncAttributeMaxDynamicSharedMemorySize, (int) sm);
  if (err != cudaSuccess)
    return err;
  conv_xproj_kernel<TX, TC, TT, NT><<<(unsigned) cdiv (rows, TT), NT, sm, stream>>> (xz, xc,
      conv_w, conv_b, x_w, nc, dbl, ldd, rows, L, E);
  return cudaGetLastError ();
}

template <typename TX, typename TC>
cudaError_t launch (TX *xz, TC *xc, const float *conv_w, const float *conv_b, const TC *x_w,
    int nc, float *dbl, int ldd, int rows, int L, int E, cudaStream_t stream)
{
  const int TT = pick_tile<TX, TC> (E, nc, rows), NT = pick_threads ();
  if (TT == 32)
    return NT == 384
        ? launch_one<TX, TC, 32, 384> (xz, xc, conv_w, conv_b, x_w, nc, dbl, ldd, rows, L, E, stream)
        : launch_one<TX, TC, 32, 192> (xz, xc, conv_w, conv_b, x_w, nc, dbl, ldd, rows, L, E, stream);
  return NT == 384
      ? launch_one<TX, TC, 16, 384> (xz, xc, conv_w, conv_b, x_w, nc, dbl, ldd, rows, L, E, stream)
      : launch_one<TX, TC, 16, 192> (xz, xc, conv_w, conv_b, x_w, nc, dbl, ldd, rows, L, E, stream);
}

template <typename TX, typename TC>
bool fits (int E, int nc)
{
  return smem_bytes<TX, TC> (16, E, nc) <= 200 * 1024;
}

} // namespace

extern "C" int
vimk_conv_xproj_supported (VimkDType xz_dt, VimkDType xc_dt, int E, int K, int ldd)
{
  const int nc = vimk_conv_xproj_columns (ldd);
  if (K != kK || E <= 0 || E % 16 != 0 || 192 % (E / 8) != 0 || ldd <= 0)
    return 0;
  if (xz_dt == VIMK_F16 && xc_dt == VIMK_F16)
    return fits<__half, __half> (E, nc);
  if (xz_dt == VIMK_F32 && xc_dt == VIMK_BF16)
    return fits<float, __nv_bfloat16> (E, nc);
  if (xz_dt == VIMK_BF16 && xc_dt == VIMK_BF16)
    return fits<__nv_bfloat16, __nv_bfloat16> (E, nc);
  return 0;                   /* fp32 activations: no fp32 tensor-core path here */
}

extern "C" int
vimk_conv_xproj_columns (int ldd)
{
  return (ldd + 15) & ~15;
}

extern "C" cudaError_t
vimk_conv_xproj (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, const void *x_w, float *dbl, int ldd,
    int nseq, int L, int E, int K, cudaStream_t stream)
{
  if (nseq <= 0 || L <= 0)
    return cudaSuccess;
  if (!vimk_conv_xproj_supported (xz_dt, xc_dt, E, K, ldd) || (int64_t) nseq * L > INT32_MAX / 2)
    return cudaErrorInvalidValue;
  const int rows = nseq * L, nc = vimk_conv_xproj_columns (ldd);
  if (xz_dt == VIMK_F16)
    return launch ((__half *) xz, (__half *) xc, conv_w, conv_b, (const __half *) x_w, nc, dbl,
        ldd, rows, L, E, stream);
  if (xz_dt == VIMK_F32)
    return launch ((float *) xz, (__nv_bfloat16 *) xc, conv_w, conv_b,
        (const __nv_bfloat16 *) x_w, nc, dbl, ldd, rows, L, E, stream);
  return launch ((__nv_bfloat16 *) xz, (__nv_bfloat16 *) xc, conv_w, conv_b,
      (const __nv_bfloat16 *) x_w, nc, dbl, ldd, rows, L, E, stream);
}
