/* What the selective-scan kernels (scan.cu: V1-V3, scan_v4.cu: V4,
 * scan_whole.cu: V5, scan_stream.cu: V6) share: the launch parameters, the
 * block shape, the tile length, the per-step dt_proj and state update, and
 * the transposing butterfly that sums a chain's partial outputs over its
 * lanes. */
#ifndef VIMK_SCAN_COMMON_CUH
#define VIMK_SCAN_COMMON_CUH

#include "common.cuh"

namespace vimk {
namespace scan {

constexpr int kThreads = 128;

/* steps per staged tile: a multiple of G, small enough that the lanes' u and
 * gate prefetch registers stay few */
__host__ __device__ constexpr int tile_steps (int G) { return G >= 16 ? 16 : 8; }

struct ScanParams {
  VimkScanArgs a;
  int P, Tc;                    /* chunks, steps per chunk (multiple of TT) */
  float *summ;                  /* [nseq][2][P][E][N] end states */
  float *summS;                 /* [nseq][2][P][E] delta sums */
};

typedef void (*ScanFn) (ScanParams);

/* transposing butterfly over G lanes: lane g ends with sum over lanes of p[g] */
template <int G, int HALF>
__device__ __forceinline__ void butterfly (float *p, int g)
{
  if constexpr (HALF >= 1) {
    const bool upper = (g & HALF) != 0;
#pragma unroll
    for (int i = 0; i < HALF; i++) {
      float send = upper ? p[i] : p[i + HALF];
      float keep = upper ? p[i + HALF] : p[i];
      p[i] = keep + __shfl_xor_sync (0xffffffffu, send, HALF, G);
    }
    butterfly<G, HALF / 2> (p, g);
  }
}

/* dt_proj of one step: bdt + Wdt . dt_low, in two accumulators, over the
 * rv <= RV float4 columns of the row, or with GUARDED false over all RV:
 * V4 zero-fills wd past rv and stages rows of at least 4 RV floats (B and
 * C follow dt_low), so the extra products add 0 and no column needs a
 * branch */
template <int RV, bool GUARDED = true>
__device__ __forceinline__ float dt_proj (const float4 *dt4, const float4 *wd, int rv, float bdt)
{
  float acc0 = bdt, acc1 = 0.f;
#pragma unroll
  for (int i = 0; i < RV; i++) {
    if (!GUARDED || i < rv) {
      const float4 v = dt4[i];
      acc0 = fmaf (v.x, wd[i].x, acc0);
      acc1 = fmaf (v.y, wd[i].y, acc1);
      acc0 = fmaf (v.z, wd[i].z, acc0);
      acc1 = fmaf (v.w, wd[i].w, acc1);
    }
  }
  return acc0 + acc1;
}

/* An attribute of the current device, or fallback when it cannot be read
 * (the failed query's error is cleared, so the next launch check does not
 * report it) */
inline int device_attribute (cudaDeviceAttr attr, int fallback)
{
  int dev = 0, v = 0;
  if (cudaGetDevice (&dev) != cudaSuccess
      || cudaDeviceGetAttribute (&v, attr, dev) != cudaSuccess) {
    (void) cudaGetLastError ();
    return fallback;
  }
  return v;
}

/* dt_proj float4 columns the V4 and V5 kernels are built for: a row of rv
 * columns runs the smallest size >= rv, its extra weights zero (exact for
 * Vim-Ti, dt_rank 12, Vim-S 24 and Vim-B 48); 0 = none */
inline int rv_columns (int rv)
{
  for (int v : { 3, 6, 12, 16 })
    if (rv <= v)
      return v;
  return 0;
}

/* a chain's dt_proj weights: RV float4 columns of its padded row, zero
 * past the row's rv columns */
template <int RV>
__device__ __forceinline__ void load_dt_weights (float4 *wd, const float *row, int rv)
{
  const float4 *w4 = (const float4 *) row;
#pragma unroll
  for (int i = 0; i < RV; i++)
    wd[i] = i < rv ? w4[i] : make_float4 (0.f, 0.f, 0.f, 0.f);
}

/* G consecutive steps of a lane's NS states; lane j of the group holds step
 * j's delta and delta * u. bc: step 0's B for this lane's states in the
 * staged rows (pitch ldd, C at +N). h <- exp2(delta A2) h + delta u B and,
 * unless SUMMARY, p[j] = sum over the lane's states of C h. ex2 (i, delta)
 * is the version's exponential of delta * A2[i]. */
template <int G, int N, int NS, bool SUMMARY, typename Ex2>
__device__ __forceinline__ void advance_states (float delta, float du, const float *bc, int ldd,
    float *h, float *p, Ex2 ex2)
{
#pragma unroll
  for (int j = 0; j < G; j++) {
    float dj, duj;
    if (G == 1) {
      dj = delta;
      duj = du;
    } else {
      dj = __shfl_sync (0xffffffffu, delta, j, G);
      duj = __shfl_sync (0xffffffffu, du, j, G);
    }
    const float *bcj = bc + j * ldd;
    float Bv[NS], Cv[NS];
    if constexpr (NS % 4 == 0) {
#pragma unroll
      for (int i = 0; i < NS; i += 4) {
        float4 b4 = *(const float4 *) (bcj + i);
        Bv[i] = b4.x; Bv[i + 1] = b4.y; Bv[i + 2] = b4.z; Bv[i + 3] = b4.w;
        if (!SUMMARY) {
          float4 c4 = *(const float4 *) (bcj + N + i);
          Cv[i] = c4.x; Cv[i + 1] = c4.y; Cv[i + 2] = c4.z; Cv[i + 3] = c4.w;
        }
      }
    } else {
      /* 2 states per lane: not 16-byte aligned */
#pragma unroll
      for (int i = 0; i < NS; i++) {
        Bv[i] = bcj[i];
        if (!SUMMARY)
          Cv[i] = bcj[N + i];
      }
    }
    float pa = 0.f, pb = 0.f;
#pragma unroll
    for (int i = 0; i < NS; i++) {
      h[i] = fmaf (ex2 (i, dj), h[i], duj * Bv[i]);
      if (!SUMMARY) {
        if (i & 1)
          pb = fmaf (Cv[i], h[i], pb);
        else
          pa = fmaf (Cv[i], h[i], pa);
      }
    }
    p[j] = pa + pb;
  }
}

/* V4 (scan_v4.cu): the kernel for this configuration, or nullptr when V4
 * has none (the caller then uses V3); mma: dt_proj on the tensor cores
 * (one lane, 16-bit activations only) */
ScanFn v4_kernel (bool summary, VimkDType dt, VimkDType gdt, int N, int G, int rv, int kp,
    bool mma);
/* whether V4 can run these arguments (channels a multiple of 32, rows
 * aligned for its 4-16 byte copies) */
bool v4_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int G);
/* its dynamic shared memory per block */
size_t v4_smem_bytes (VimkDType dt, VimkDType gdt, int G, int ldd, bool mma);

/* V5 (scan_whole.cu): whether it can run these arguments with chains of Ls
 * steps (N = 16, channels a multiple of 8, 16-byte aligned rows, a chain's
 * rows within the block's shared memory), and its launch */
bool whole_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls);
cudaError_t whole_launch (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls,
    cudaStream_t stream);

/* V6 (scan_stream.cu): whether it can run these arguments (N = 16,
 * channels a multiple of 16, 16-byte aligned rows; chains of any length
 * stream through shared memory), and its launch */
bool stream_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt);
cudaError_t stream_launch (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls,
    cudaStream_t stream);

} // namespace scan
} // namespace vimk

#endif
