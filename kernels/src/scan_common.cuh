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

/* ---- what V5 and V6 (whole chains in one launch) share ---- */

/* Where a block's chains start in global memory, in scan order (step s is
 * token row0 + s * sgn: mirrored backward, no flips): the x_proj rows, the
 * block's first channel's u/y and gate */
template <typename T, typename TG>
struct ChainOrigin {
  int64_t sgn;
  const float *dbl0;
  T *xy0;
  const TG *g0;

  __device__ __forceinline__ ChainOrigin (const VimkScanArgs &a, int seq, int dir, int c0)
  {
    const int64_t nrows = (int64_t) a.nseq * a.L;
    const int64_t row0 = (int64_t) seq * a.L + (dir ? a.L - 1 : 0);
    sgn = dir ? -1 : 1;
    dbl0 = a.dbl + (int64_t) dir * nrows * a.ldd + row0 * a.ldd;
    xy0 = (T *) a.xy + row0 * a.ld_xy + (int64_t) dir * a.E + c0;
    g0 = (const TG *) a.gate + row0 * a.ld_gate + c0;
  }
};

/* chain p's dt_proj weights (RV float4 columns, zero past the row's) and
 * bias; p = direction * E + channel */
template <int RV>
__device__ __forceinline__ float chain_dt_proj (float4 *wd, const VimkScanArgs &a, int64_t p)
{
  load_dt_weights<RV> (wd, a.Wdt + p * a.r_pad, a.r_pad / 4);
  return a.bdt[p];
}

/* delta = softplus (dt_proj of a staged row) and delta u of one (step,
 * channel); softplus from lg2 for 16-bit activations */
template <typename T, int RV>
__device__ __forceinline__ float2 step_delta (const float *row, const float4 *wd, int rv, float bdt,
    T u)
{
  const float v = dt_proj<RV, false> ((const float4 *) row, wd, rv, bdt);
  const float delta = sizeof (T) == 2 ? softplus_lg2 (v) : softplus_f (v);
  return make_float2 (delta, delta * Cvt<T>::load (u));
}

/* a step's output: (sum over the states of C h + D u) times the gate, or
 * times SiLU (gate) where the gate is z */
template <typename T, typename TG>
__device__ __forceinline__ T gated_output (float sum, float Dv, T u, TG g, bool gate_silu)
{
  const float gv = Cvt<TG>::load (g);
  return Cvt<T>::store ((sum + Dv * Cvt<T>::load (u)) * (gate_silu ? silu_act<T> (gv) : gv));
}

/* K::get<T, TG, RV> () for these activation and gate types (T = TG of
 * fp32, fp16 or bf16, or bf16 with an fp32 gate) and a row of rv dt_proj
 * float4 columns (run as rv_columns), or nullptr */
template <typename K, typename T, typename TG>
auto pick_rv_kernel (int rv) -> decltype (K::template get<T, TG, 3> ())
{
  switch (rv_columns (rv)) {
    case 3: return K::template get<T, TG, 3> ();
    case 6: return K::template get<T, TG, 6> ();
    case 12: return K::template get<T, TG, 12> ();
    case 16: return K::template get<T, TG, 16> ();
    default: return nullptr;
  }
}

template <typename K>
auto pick_typed_kernel (VimkDType dt, VimkDType gdt, int rv) -> decltype (K::template get<float, float, 3> ())
{
  if (gdt == dt) {
    switch (dt) {
      case VIMK_F32: return pick_rv_kernel<K, float, float> (rv);
      case VIMK_F16: return pick_rv_kernel<K, __half, __half> (rv);
      case VIMK_BF16: return pick_rv_kernel<K, __nv_bfloat16, __nv_bfloat16> (rv);
    }
  } else if (dt == VIMK_BF16 && gdt == VIMK_F32) {
    return pick_rv_kernel<K, __nv_bfloat16, float> (rv);
  }
  return nullptr;
}

/* What V5 and V6 need of the arguments besides their block shape: staged
 * rows that hold RV whole dt_proj columns (dt_proj<RV, false>) and B and C,
 * and 16-byte copies of rows, u and gate at any block's first channel,
 * either direction (E) and any token */
inline bool whole_rows_fit (const VimkScanArgs *a, VimkDType dt, VimkDType gdt)
{
  if (4 * rv_columns (a->r_pad / 4) > a->ldd || a->b_off + 2 * a->N > a->ldd)
    return false;
  const size_t ts = vimk_dtype_size (dt), gs = vimk_dtype_size (gdt);
  return (uintptr_t) a->dbl % 16 == 0 && (uintptr_t) a->xy % 16 == 0
      && (uintptr_t) a->gate % 16 == 0 && (a->E * ts) % 16 == 0 && (a->ld_xy * ts) % 16 == 0
      && (a->ld_gate * gs) % 16 == 0;
}

/* fn<<<grid, threads, smem, stream>>> (*a, Ls), opting in to more than
 * 48 KB of shared memory where it needs it */
inline cudaError_t launch_whole (void (*fn) (VimkScanArgs, int), dim3 grid, int threads,
    size_t smem, const VimkScanArgs *a, int Ls, cudaStream_t stream)
{
  if (fn == nullptr)
    return cudaErrorInvalidValue;
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute ((const void *) fn,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (e != cudaSuccess)
      return e;
  }
  fn<<<grid, threads, smem, stream>>> (*a, Ls);
  return cudaGetLastError ();
}

/* V4 (scan_v4.cu): the kernel for this configuration, or nullptr when V4
 * has none (the caller then uses V3); mma: dt_proj on the tensor cores
 * (one lane, 16-bit activations only); sum_dirs: a block runs both
 * directions of its channels and writes y_f + y_b over the forward half
 * (one or two lanes, one chunk, main pass; launched with gridDim.y = 1) */
ScanFn v4_kernel (bool summary, VimkDType dt, VimkDType gdt, int N, int G, int rv, int kp,
    bool mma, bool sum_dirs);
/* whether V4 can run these arguments (channels a multiple of 32, rows
 * aligned for its 4-16 byte copies, B and C within the row and within the
 * staged row: b_off <= 4 x rv_columns (r_pad / 4)) */
bool v4_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int G);
/* its dynamic shared memory per block for rows of rv = r_pad / 4 dt_low
 * float4 columns and N states */
size_t v4_smem_bytes (VimkDType dt, VimkDType gdt, int G, int rv, int N, bool mma, bool sum_dirs);

/* V5 (scan_whole.cu): whether it can run these arguments with chains of Ls
 * steps (N = 16, channels a multiple of 8, 16-byte aligned rows, a chain's
 * rows within the block's shared memory) in blocks of pc chunk groups (1:
 * whole chains; 2 or 4), and its launch */
bool whole_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls, int pc);
cudaError_t whole_launch (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls, int pc,
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
