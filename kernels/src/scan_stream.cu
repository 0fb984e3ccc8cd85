/* Selective scan V6, "streamed chain": one launch of whole chains of any
 * length, for mid-sized batches (2-3.5 of its blocks per SM).
 *
 * Why. Where chains are too few to fill the GPU with one lane each (Vim-Ti
 * 224 and 512 px batch 6-8, Vim-S batch 4), V4 cuts them into chunks, and
 * a chunked scan runs every step twice (a summary pass for the chunk's end
 * state, then the main pass): twice the exponentials on the
 * special-function unit. V5 runs chains whole but keeps every step in
 * shared memory (<= 800 steps) and, with one state per lane, reads three
 * shared-memory words per state-step, more than the special-function
 * unit's pace allows once several blocks share an SM. Here:
 *
 * - A block is 16 chains (16 consecutive channels of one sequence and
 *   direction, which share every token's dt_low, B and C row) x 8 lanes,
 *   two states per lane: B and C come as float2, the step's (delta,
 *   delta u) as one broadcast float2, 1.5 words per state-step.
 * - Steps stream through a ring of 5 parts of 32 steps in shared memory
 *   (cp.async): part p is scanned while p + 1's deltas (dt_proj, softplus,
 *   delta u) are computed between its tiles, p + 2 and p + 3 are in
 *   flight and p - 1's outputs leave; one barrier a part.
 * - Each lane advances its two states 8 steps (a tile) at a time, the next
 *   tile's exponentials and products loaded between the state FMAs; a
 *   transposing butterfly over the chain's 8 lanes leaves lane j with the
 *   previous tile's step j summed over the states, which it finishes (D
 *   skip, gate) in place of u.
 *
 * It issues about twice V4's instructions a state-step (ncu: 22 against 11
 * at Vim-Ti batch 256; the per-(step, channel) work is spread over 8 lanes),
 * so V4 stays where chains are many, and below two blocks per SM a step's
 * latency is exposed (vimk_scan's rule: scan.cu, scan_uses_stream).
 *
 * Needs N = 16, channels a multiple of 16 and 16-byte aligned rows;
 * vimk_scan falls back to V4 otherwise. Same arithmetic as V5: the
 * exponentials on the special-function unit, softplus_lg2 for 16-bit
 * activations, softplus_f for fp32. */
#include "scan_common.cuh"
#include <cuda_pipeline.h>

namespace vimk {
namespace scan {
namespace {

/* A block's shape: LANES lanes per chain (16 / LANES states each),
 * THREADS / LANES chains; parts of PART steps in a ring of SLOTS. */
template <int LANES, int THREADS, int PART, int SLOTS>
struct Shape {
  static constexpr int kLanes = LANES;
  static constexpr int kStates = 16 / LANES;
  static constexpr int kN = 16;
  static constexpr int kThreads = THREADS;
  static constexpr int kChains = THREADS / LANES;
  static constexpr int kTile = LANES;       /* steps per tile: lane j finishes step j */
  static constexpr int kPart = PART;
  static constexpr int kTiles = PART / LANES;
  static constexpr int kSlots = SLOTS;
  static constexpr int kStaged = SLOTS * PART;
  static_assert (SLOTS >= 4 && PART % LANES == 0 && LANES == 8, "two states a lane (B, C as float2)");
  static_assert (kTiles * THREADS == PART * kChains, "one delta per thread per tile");

  /* Shared memory of a block: rows [kStaged][ldd] floats, u/y
   * [kStaged][kChains] T, gate [kStaged][kChains] TG, (delta, delta u)
   * [kStaged][kChains] float2; part p lives in slot p % SLOTS. */
  static __host__ __device__ size_t smem (int ldd, int t_size, int g_size)
  {
    return (size_t) kStaged * ((size_t) ldd * 4 + kChains * (t_size + g_size + sizeof (float2)));
  }
};

template <typename T, typename TG, int RV, typename SH>
__global__ void __launch_bounds__ (SH::kThreads)
scan_stream (VimkScanArgs a, int Ls)
{
  constexpr int kLanes = SH::kLanes, kStates = SH::kStates, kN = SH::kN;
  constexpr int kThreads = SH::kThreads, kChains = SH::kChains, kTile = SH::kTile;
  constexpr int kPart = SH::kPart, kTiles = SH::kTiles, kSlots = SH::kSlots;
  constexpr int kStaged = SH::kStaged;
  extern __shared__ float4 smem4[];
  const int tid = threadIdx.x;
  const int c0 = blockIdx.x * kChains;
  const int dir = blockIdx.y;
  const int seq = blockIdx.z;
  const int L = a.L, E = a.E, ldd = a.ldd;
  float *rows = (float *) smem4;
  T *su = (T *) (rows + (size_t) kStaged * ldd);
  TG *sg = (TG *) (su + kStaged * kChains);
  float2 *dd = (float2 *) (sg + kStaged * kChains);

  /* token of scan step s: row0 + s * sgn (mirrored backward, no flips) */
  const int64_t nrows = (int64_t) a.nseq * L;
  const int64_t row0 = (int64_t) seq * L + (dir ? L - 1 : 0);
  const int64_t sgn = dir ? -1 : 1;
  const float *dbl0 = a.dbl + (int64_t) dir * nrows * ldd + row0 * ldd;
  T *xy0 = (T *) a.xy + row0 * a.ld_xy + (int64_t) dir * E + c0;
  const TG *g0 = (const TG *) a.gate + row0 * a.ld_gate + c0;
  const int nparts = (int) cdiv (Ls, kPart);
  auto slot = [] (int p) { return (p % kSlots) * kPart; };

  /* part p's rows, u and gate into its slot, one commit group per call
   * (empty past the last part, so that the waits count the same); steps
   * past Ls repeat the last one, so that no garbage reaches a product */
  constexpr int UP = kChains * (int) sizeof (T) / 16;      /* 16-byte pieces of a u row */
  constexpr int GP = kChains * (int) sizeof (TG) / 16;
  const int q4 = ldd / 4;
  auto copy_in = [&] (int p) {
    if (p < nparts) {
      const int base = slot (p), s0 = p * kPart;
      for (int q = tid; q < kPart * q4; q += kThreads) {
        const int i = q / q4, j = q - i * q4;
        const int64_t src = (int64_t) min (s0 + i, Ls - 1) * sgn;
        __pipeline_memcpy_async (rows + (size_t) (base + i) * ldd + j * 4, dbl0 + src * ldd + j * 4, 16);
      }
      for (int q = tid; q < kPart * (UP + GP); q += kThreads) {
        const int i = q / (UP + GP), j = q - i * (UP + GP);
        const int64_t src = (int64_t) min (s0 + i, Ls - 1) * sgn;
        if (j < UP)
          __pipeline_memcpy_async (su + (base + i) * kChains + j * (16 / sizeof (T)),
              xy0 + src * a.ld_xy + j * (16 / sizeof (T)), 16);
        else
          __pipeline_memcpy_async (sg + (base + i) * kChains + (j - UP) * (16 / sizeof (TG)),
              g0 + src * a.ld_gate + (j - UP) * (16 / sizeof (TG)), 16);
      }
    }
    __pipeline_commit ();
  };
  /* part p's outputs, 16-byte pieces of the block's 16 channels */
  auto copy_out = [&] (int p) {
    const int base = slot (p), s0 = p * kPart, n = min (kPart, Ls - s0);
    for (int q = tid; q < n * UP; q += kThreads) {
      const int i = q / UP, j = q - i * UP;
      *(int4 *) (xy0 + (int64_t) (s0 + i) * sgn * a.ld_xy + j * (16 / sizeof (T)))
          = *(const int4 *) (su + (base + i) * kChains + j * (16 / sizeof (T)));
    }
  };

#pragma unroll 1
  for (int p = 0; p < kSlots - 2; p++)
    copy_in (p);

  /* dt_proj weights of the channel this thread serves in the (step,
   * channel) phases: kThreads is a multiple of kChains, so always the same one */
  const int cq = tid % kChains, rv = a.r_pad / 4;
  float4 wd[RV];
  const float bdt = chain_dt_proj<RV> (wd, a, (int64_t) dir * E + c0 + cq);

  /* this lane's chain and states in the scan phase */
  const int cl = tid / kLanes, g = tid % kLanes;
  const int64_t pl = (int64_t) dir * E + c0 + cl;
  float A2[kStates], h[kStates];
#pragma unroll
  for (int i = 0; i < kStates; i++) {
    A2[i] = a.A2[pl * kN + kStates * g + i];
    h[i] = 0.f;
  }
  const float Dv = a.Dv[pl];
  const bool gate_silu = a.gate_silu != 0;

  /* delta and delta u of (staged step k = step s, channel cq); past Ls
   * zero, which leaves the state as it is */
  auto delta_of = [&] (int k, int s) {
    dd[k * kChains + cq] = s < Ls
        ? step_delta<T, RV> (rows + (size_t) k * ldd, wd, rv, bdt, su[k * kChains + cq])
        : make_float2 (0.f, 0.f);
  };

  __pipeline_wait_prior (kSlots - 3);       /* part 0 landed (the others may not have) */
  __syncthreads ();
  for (int i = tid / kChains; i < kPart; i += kThreads / kChains)
    delta_of (slot (0) + i, i);

  float e[kTile][kStates], bu[kTile][kStates], cc[kTile][kStates];
  float q[kTile], qp[kTile];
  /* tile operands of staged step k into slot j: they do not depend on the
   * state, so the next tile's are loaded between the state FMAs */
  auto operand = [&] (int k, int j) {
    const float2 d = dd[k * kChains + cl];
    const float *r = rows + (size_t) k * ldd + a.b_off + kStates * g;
    const float2 b2 = *(const float2 *) r, c2 = *(const float2 *) (r + kN);
    const float B[kStates] = { b2.x, b2.y }, C[kStates] = { c2.x, c2.y };
#pragma unroll
    for (int i = 0; i < kStates; i++) {
      e[j][i] = ex2_mufu (d.x * A2[i]);
      bu[j][i] = d.y * B[i];
      cc[j][i] = C[i];
    }
  };
  /* the states over the loaded tile into q, loading the tile at kn */
  auto chain = [&] (int kn) {
#pragma unroll
    for (int j = 0; j < kTile; j++) {
      float y = 0.f;
#pragma unroll
      for (int i = 0; i < kStates; i++) {
        h[i] = fmaf (e[j][i], h[i], bu[j][i]);
        y = i == 0 ? cc[j][i] * h[i] : fmaf (cc[j][i], h[i], y);
      }
      q[j] = y;
      operand (kn + j, j);
    }
  };
  /* sums (qp -> lane j has step j's) and outputs of the tile at staged
   * step k, step s */
  auto finish = [&] (int k, int s) {
    butterfly<kLanes, kLanes / 2> (qp, g);
    k += g;
    s += g;
    const T y = gated_output<T, TG> (qp[0], Dv, su[k * kChains + cl], sg[k * kChains + cl],
        gate_silu);
    if (s < Ls)
      su[k * kChains + cl] = y;
  };

  /* Part p: its states, a tile at a time, with part p + 1's deltas
   * computed in between (one per thread per tile) */
#pragma unroll 1
  for (int p = 0; p < nparts; p++) {
    __pipeline_wait_prior (kSlots - 4);     /* part p + 1 landed (later ones may not have) */
    __syncthreads ();                       /* dd of p, rows of p + 1, y of p - 1; slot of p - 2 free */
    if (p > 0)
      copy_out (p - 1);
    copy_in (p + kSlots - 2);               /* into the slot of p - 2 */
    const int base = slot (p), s0 = p * kPart;
    const int nbase = slot (p + 1), ns0 = s0 + kPart;
    const int di = tid / kChains;           /* this thread's deltas of p + 1: di + 8 t */
#pragma unroll
    for (int j = 0; j < kTile; j++)
      operand (base + j, j);
    chain (base + kTile);
#pragma unroll
    for (int j = 0; j < kTile; j++)
      qp[j] = q[j];
    /* Unrolled, so that one tile's finish and deltas interleave with the
     * next tile's chain (on an H200 5% faster than a loop, Vim-Ti 224
     * batch 8). Past the last part delta_of writes zeros into a free slot
     * (steps >= Ls), which spares the loop a branch. */
#pragma unroll
    for (int t = 1; t < kTiles; t++) {
      chain (base + min (t + 1, kTiles - 1) * kTile);   /* the last tile reloads itself */
      finish (base + (t - 1) * kTile, s0 + (t - 1) * kTile);
#pragma unroll
      for (int j = 0; j < kTile; j++)
        qp[j] = q[j];
      const int i = di + (t - 1) * (kThreads / kChains);
      delta_of (nbase + i, ns0 + i);
    }
    finish (base + (kTiles - 1) * kTile, s0 + (kTiles - 1) * kTile);
    const int i = di + (kTiles - 1) * (kThreads / kChains);
    delta_of (nbase + i, ns0 + i);
  }
  __syncthreads ();
  copy_out (nparts - 1);
}

typedef void (*StreamFn) (VimkScanArgs, int);

/* The shape measured best on an H200 (bench/RESULTS.md, nineteenth
 * session): against 4 lanes x 4 states (fewer instructions a state-step,
 * but fewer warps), parts of 16 steps (more barriers) and blocks of 64
 * threads, all slower at Vim-Ti 224 batch 8 and 1248 px batch 8 */
typedef Shape<8, 128, 32, 5> StreamShape;

struct StreamKernel {
  template <typename T, typename TG, int RV>
  static StreamFn get () { return scan_stream<T, TG, RV, StreamShape>; }
};

size_t stream_smem (VimkDType dt, VimkDType gdt, int ldd)
{
  return StreamShape::smem (ldd, (int) vimk_dtype_size (dt), (int) vimk_dtype_size (gdt));
}

} // namespace

bool
stream_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt)
{
  if (a->N != StreamShape::kN || a->E % StreamShape::kChains != 0
      || pick_typed_kernel<StreamKernel> (dt, gdt, a->r_pad / 4) == nullptr
      || !whole_rows_fit (a, dt, gdt))
    return false;
  return stream_smem (dt, gdt, a->ldd)
      <= (size_t) device_attribute (cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024);
}

cudaError_t
stream_launch (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls, cudaStream_t stream)
{
  dim3 grid ((unsigned) (a->E / StreamShape::kChains), 2u, (unsigned) a->nseq);
  return launch_whole (pick_typed_kernel<StreamKernel> (dt, gdt, a->r_pad / 4), grid,
      StreamShape::kThreads, stream_smem (dt, gdt, a->ldd), a, Ls, stream);
}

} // namespace scan
} // namespace vimk
