/* Selective scan V5, "whole chain": one launch for small batches, where
 * the scan's time is latency, not throughput.
 *
 * Why. V4 at small batches splits each chain into chunks (Vim-Ti 224
 * batch 2-4: 4 lanes x 8 chunks, 2 x 4) and runs two launches, a summary
 * pass and a main pass that recomputes every chunk; without chunks its
 * few warps leave each step's dependent loads, shuffles and exponentials
 * exposed. Here one launch runs each chain from its first step to its
 * last, one state per lane, with nothing on a step's critical path but
 * the state FMA:
 *
 * - A block is 8 chains (8 consecutive channels of one sequence and
 *   direction, which share every token's dt_low, B and C row) x 16 lanes.
 *   It copies all its rows (dt_low/B/C, u, gate) into shared memory at
 *   once with cp.async, in 4 parts that it computes as they land.
 * - Each (step, channel) computes dt_proj, softplus and delta * u (all
 *   independent) a part ahead. Each lane advances its state 16 steps at a
 *   time; the next tile's exponentials and products are loaded between
 *   the state FMAs, and a transposing butterfly over the chain's 16 lanes
 *   leaves lane j with the previous tile's step j summed over the states,
 *   which it finishes (D skip, gate) in place of u; each part's outputs
 *   leave in 16-byte rows.
 *
 * On an H200 (fp16) it beats V4 where its blocks number 1-3 per SM
 * (Vim-Ti 224 batch 2-4, Vim-S batch 1-2); vimk_scan chooses it there
 * (scan.cu, scan_uses_whole). With fewer blocks than SMs (Vim-Ti batch 1)
 * one warp per scheduler cannot hide its own latencies (ncu: 2.8 cycles
 * per issued instruction) and it only ties V4; there the variant with
 * chunk groups (scan_whole_chunked, below) runs instead. Its fixed part counts at
 * small batches: staging without a division per copy took 2% off Vim-Ti
 * batch 2; the first version, fully unrolled, had 115 KB of code and
 * stalled on instruction fetch.
 *
 * Needs N = 16, channels a multiple of 8, 16-byte aligned rows, and every
 * step's rows in shared memory (Vim-Ti 224: 60 KB a block; chains of up
 * to 700-800 steps); vimk_scan uses V4 otherwise. Same arithmetic as V4
 * without the polynomial: the exponentials on the special-function unit,
 * softplus_lg2 for 16-bit activations, softplus_f for fp32.
 */
#include "scan_common.cuh"
#include <cuda_pipeline.h>

namespace vimk {
namespace scan {
namespace {

constexpr int kChains = 8;                  /* chains (channels) per block */
constexpr int kLanes = 16;                  /* = N: one state per lane */
constexpr int kParts = 4;                   /* staged and computed in parts */
static_assert (kChains * kLanes == kThreads, "a block is 8 chains x 16 lanes");
static_assert (kParts == 4, "the waits below count 4 parts");

/* Shared memory of a block: rows [Lr][ldd] floats (scan order), u/y
 * [Lr][8] T, gate [Lr][8] TG, (delta, delta u) [Lr][8] float2; Lr = the
 * steps rounded up to 16, every size a multiple of 16 bytes. */
struct Layout {
  int Lr, part;                             /* steps staged, steps per part */
  size_t su, sg, dd, total;                 /* byte offsets, size */
};

/* Floats after the layout for the chunk groups' end states and decays
 * ([2][pc][kChains][16]; scan_whole_chunked), none for whole chains */
__host__ __device__ constexpr size_t
group_sums_floats (int pc)
{
  return pc > 1 ? (size_t) 2 * pc * kChains * kLanes : 0;
}

__host__ __device__ inline Layout
layout (int Ls, int ldd, int t_size, int g_size)
{
  Layout w;
  w.Lr = (int) cdiv (Ls, 16) * 16;
  w.part = (int) cdiv (cdiv (Ls, kParts), 16) * 16;
  w.su = (size_t) w.Lr * ldd * 4;
  w.sg = w.su + (size_t) w.Lr * kChains * t_size;
  w.dd = w.sg + (size_t) w.Lr * kChains * g_size;
  w.total = w.dd + (size_t) w.Lr * kChains * sizeof (float2);
  return w;
}

/* A V5 block: its shared memory (Layout) and where its chains start in
 * global memory (ChainOrigin); the staging, delta and output copies that
 * both V5 kernels run with NT threads */
template <typename T, typename TG>
struct WholeBlock {
  static constexpr int UP = kChains * (int) sizeof (T) / 16;   /* 16-byte pieces of a u row */
  static constexpr int GP = kChains * (int) sizeof (TG) / 16;
  Layout w;
  float *rows;
  T *su;
  TG *sg;
  float2 *dd;
  ChainOrigin<T, TG> o;
  int ldd, Ls;

  __device__ __forceinline__ WholeBlock (const VimkScanArgs &a, int ls, float4 *smem4)
      : w (layout (ls, a.ldd, (int) sizeof (T), (int) sizeof (TG))),
        o (a, blockIdx.z, blockIdx.y, blockIdx.x * kChains), ldd (a.ldd), Ls (ls)
  {
    rows = (float *) smem4;
    su = (T *) ((char *) smem4 + w.su);
    sg = (TG *) ((char *) smem4 + w.sg);
    dd = (float2 *) ((char *) smem4 + w.dd);
  }

  /* copies of steps [s0, s1)' rows, u and gate (one commit group); steps
   * past Ls repeat the last one, so that no garbage reaches a product.
   * Piece j of step s is stepped by NT pieces without a division each (at
   * batch 1 these instructions delay the first part) */
  template <int NT>
  __device__ __forceinline__ void stage (const VimkScanArgs &a, int s0, int s1, int tid) const
  {
    const int q4 = ldd / 4;
    for (int s = s0 + tid / q4, j = tid % q4; s < s1;) {
      const int64_t src = (int64_t) min (s, Ls - 1) * o.sgn;
      __pipeline_memcpy_async (rows + (size_t) s * ldd + j * 4, o.dbl0 + src * ldd + j * 4, 16);
      j += NT % q4;
      s += NT / q4;
      if (j >= q4) {
        j -= q4;
        s++;
      }
    }
    for (int q = tid; q < (s1 - s0) * (UP + GP); q += NT) {
      const int s = s0 + q / (UP + GP), j = q - (s - s0) * (UP + GP);
      const int64_t src = (int64_t) min (s, Ls - 1) * o.sgn;
      if (j < UP)
        __pipeline_memcpy_async (su + s * kChains + j * (16 / sizeof (T)),
            o.xy0 + src * a.ld_xy + j * (16 / sizeof (T)), 16);
      else
        __pipeline_memcpy_async (sg + s * kChains + (j - UP) * (16 / sizeof (TG)),
            o.g0 + src * a.ld_gate + (j - UP) * (16 / sizeof (TG)), 16);
    }
    __pipeline_commit ();
  }

  /* delta and delta u of (step s, channel cq); past Ls zero, which leaves
   * the state as it is */
  template <int RV>
  __device__ __forceinline__ void delta_of (int s, int cq, const float4 *wd, int rv, float bdt) const
  {
    dd[s * kChains + cq] = s < Ls
        ? step_delta<T, RV> (rows + (size_t) s * ldd, wd, rv, bdt, su[s * kChains + cq])
        : make_float2 (0.f, 0.f);
  }

  /* outputs of steps [s0, e1), 16-byte pieces of the block's 8 channels */
  template <int NT>
  __device__ __forceinline__ void copy_out (const VimkScanArgs &a, int s0, int e1, int tid) const
  {
    for (int q = tid; q < (e1 - s0) * UP; q += NT) {
      const int s = s0 + q / UP, j = q - (s - s0) * UP;
      *(int4 *) (o.xy0 + (int64_t) s * o.sgn * a.ld_xy + j * (16 / sizeof (T)))
          = *(const int4 *) (su + s * kChains + j * (16 / sizeof (T)));
    }
  }
};

/* State n of chain cl over the whole tiles [s0, s1) (s0 < s1), from h,
 * each step's output replacing its u. A tile's exponentials and products
 * do not depend on the state: the next tile's are loaded between the 16
 * serial state FMAs, and the butterfly and outputs of one tile run beside
 * the next tile's FMAs (same basic block, so the scheduler interleaves
 * them): with one warp per scheduler at batch 1 nothing else hides their
 * latencies. between () runs once a tile beside them. Nothing here is
 * unrolled but a tile's 16 steps: with one warp per scheduler,
 * instruction-cache misses of a longer body stalled every warp (ncu, H200:
 * 115 KB of code, "no instruction" 46% of the samples). */
template <typename T, typename TG, typename F>
__device__ __forceinline__ void
run_tiles (const WholeBlock<T, TG> &b, int b_off, int cl, int n, float A2, float Dv,
    bool gate_silu, int s0, int s1, float &h, F between)
{
  constexpr int N = kLanes;
  float e[16], bu[16], cc[16], q[16], qp[16];
  auto operand = [&] (int t, int j) {
    const float2 d = b.dd[t * kChains + cl];
    const float *r = b.rows + (size_t) t * b.ldd + b_off;
    e[j] = ex2_mufu (d.x * A2);
    bu[j] = d.y * r[n];
    cc[j] = r[N + n];
  };
  /* the state over a tile into q, loading tile tn (the last tile loads
   * itself again, which costs nothing and reads nothing another warp
   * writes) */
  auto chain = [&] (int tn) {
#pragma unroll
    for (int j = 0; j < 16; j++) {
      h = fmaf (e[j], h, bu[j]);
      q[j] = cc[j] * h;
      operand (tn + j, j);
    }
  };
  /* tile tp's sums (q -> lane j has step tp + j's) and outputs */
  auto finish = [&] (int tp) {
    butterfly<kLanes, kLanes / 2> (qp, n);
    const int s = tp + n;
    const T y = gated_output<T, TG> (qp[0], Dv, b.su[s * kChains + cl], b.sg[s * kChains + cl],
        gate_silu);
    if (s < b.Ls)
      b.su[s * kChains + cl] = y;
  };
#pragma unroll
  for (int j = 0; j < 16; j++)
    operand (s0 + j, j);
  chain (min (s0 + 16, s1 - 16));
#pragma unroll
  for (int j = 0; j < 16; j++)
    qp[j] = q[j];
#pragma unroll 1
  for (int t0 = s0 + 16; t0 < s1; t0 += 16) {
    chain (min (t0 + 16, s1 - 16));
    finish (t0 - 16);
#pragma unroll
    for (int j = 0; j < 16; j++)
      qp[j] = q[j];
    between ();
  }
  finish (s1 - 16);
}

template <typename T, typename TG, int RV>
__global__ void __launch_bounds__ (kThreads)
scan_whole (VimkScanArgs a, int Ls)
{
  constexpr int N = kLanes;
  extern __shared__ float4 smem4[];
  const int tid = threadIdx.x;
  const int c0 = blockIdx.x * kChains;
  const int dir = blockIdx.y;
  const WholeBlock<T, TG> b (a, Ls, smem4);
  const Layout &w = b.w;

  auto part_begin = [&] (int p) { return min (p * w.part, w.Lr); };
  auto part_end = [&] (int p) { return min ((p + 1) * w.part, w.Lr); };

  /* copy every part's rows now, one commit group per part */
#pragma unroll 1
  for (int p = 0; p < kParts; p++)
    b.template stage<kThreads> (a, part_begin (p), part_end (p), tid);

  /* dt_proj weights of the channel this thread serves in the (step,
   * channel) phases: kThreads is a multiple of 8, so always the same one */
  const int cq = tid % kChains, rv = a.r_pad / 4;
  float4 wd[RV];
  const float bdt = chain_dt_proj<RV> (wd, a, (int64_t) dir * a.E + c0 + cq);

  /* this lane's chain and state in the scan phase */
  const int cl = tid / kLanes, n = tid % kLanes;
  const int64_t pl = (int64_t) dir * a.E + c0 + cl;
  const float A2 = a.A2[pl * N + n];
  const float Dv = a.Dv[pl];
  const bool gate_silu = a.gate_silu != 0;
  float h = 0.f;

  /* part p's copies landed (wait_group takes a constant) */
  auto wait_part = [&] (int p) {
    switch (p) {
      case 0: __pipeline_wait_prior (kParts - 1); break;
      case 1: __pipeline_wait_prior (kParts - 2); break;
      case 2: __pipeline_wait_prior (kParts - 3); break;
      default: __pipeline_wait_prior (0); break;
    }
  };

  wait_part (0);
  __syncthreads ();
#pragma unroll 4
  for (int s = tid / kChains; s < part_end (0); s += kThreads / kChains)
    b.template delta_of<RV> (s, cq, wd, rv, bdt);
  /* Part p: the state over its steps, 16 at a time, with the next part's
   * deltas computed in between (the two are independent, so each hides
   * the other's latency); one barrier a part. */
#pragma unroll 1
  for (int p = 0; p < kParts; p++) {
    const int s0 = part_begin (p), s1 = part_end (p);
    const int n0 = part_begin (p + 1), n1 = p + 1 < kParts ? part_end (p + 1) : n0;
    if (p + 1 < kParts)
      wait_part (p + 1);
    __syncthreads ();                       /* dd of p, rows of p + 1, y of p - 1 */
    if (p > 0)
      b.template copy_out<kThreads> (a, part_begin (p - 1), min (part_end (p - 1), Ls), tid);
    int sn = n0 + tid / kChains;            /* this thread's next delta of part p + 1 */
    if (s0 < s1)
      run_tiles (b, a.b_off, cl, n, A2, Dv, gate_silu, s0, s1, h, [&] {
        if (sn < n1) {
          b.template delta_of<RV> (sn, cq, wd, rv, bdt);
          sn += kThreads / kChains;
        }
      });
#pragma unroll 1
    for (; sn < n1; sn += kThreads / kChains)
      b.template delta_of<RV> (sn, cq, wd, rv, bdt);
  }
  __syncthreads ();
  b.template copy_out<kThreads> (a, part_begin (kParts - 1), min (part_end (kParts - 1), Ls), tid);
}

/* V5 with PC chunk groups (vimk_scan's choice where V5's blocks are fewer
 * than the SMs, scan.cu, whole_groups): the block's 8 chains, every step
 * staged as in V5, but PC groups of 128 threads each take a run of whole
 * tiles. The groups but the last run their steps once from a zero
 * state for the end state and the decay (exp2 of A2 times the sum of the
 * deltas); after one barrier each group folds the earlier groups' into its
 * first state and runs its steps again with outputs. A chain of L steps
 * then waits about 2 L / PC steps instead of L, with PC warps per
 * scheduler to hide each other's latencies (V5 has one at batch 1). On an
 * H200 (fp16) 4 groups took Vim-Ti 224 batch 1 from 0.542 to 0.506 ms
 * and cost 9-27% wherever V5 has a block per SM or more (bench/RESULTS.md,
 * twenty-sixth session). The extra passes' steps are all on the
 * special-function unit again, so it pays only where latency rules. */
template <typename T, typename TG, int RV, int PC>
__global__ void __launch_bounds__ (kThreads * PC, 1)
scan_whole_chunked (VimkScanArgs a, int Ls)
{
  constexpr int N = kLanes;
  constexpr int NT = kThreads * PC;
  extern __shared__ float4 smem4[];
  const int tid = threadIdx.x;
  const int c0 = blockIdx.x * kChains;
  const int dir = blockIdx.y;
  const WholeBlock<T, TG> b (a, Ls, smem4);
  float *hend = (float *) ((char *) smem4 + b.w.total);    /* [PC][kChains][N] */
  float *hdec = hend + group_sums_floats (PC) / 2;           /* [PC][kChains][N] */

  b.template stage<NT> (a, 0, b.w.Lr, tid);                 /* every step at once */

  const int cq = tid % kChains, rv = a.r_pad / 4;
  float4 wd[RV];
  const float bdt = chain_dt_proj<RV> (wd, a, (int64_t) dir * a.E + c0 + cq);

  const int grp = tid / kThreads, t = tid % kThreads;
  const int cl = t / kLanes, n = t % kLanes;
  const int64_t pl = (int64_t) dir * a.E + c0 + cl;
  const float A2 = a.A2[pl * N + n];
  const float Dv = a.Dv[pl];
  const bool gate_silu = a.gate_silu != 0;

  __pipeline_wait_prior (0);
  __syncthreads ();
  for (int s = tid / kChains; s < b.w.Lr; s += NT / kChains)
    b.template delta_of<RV> (s, cq, wd, rv, bdt);
  __syncthreads ();

  /* this group's whole tiles [s0, s1); each but the last group's end
   * state from zero and decay */
  const int ntiles = b.w.Lr / 16;
  const int s0 = 16 * (grp * ntiles / PC), s1 = 16 * ((grp + 1) * ntiles / PC);
  if (grp < PC - 1) {
    float hz = 0.f, sdx = 0.f;
#pragma unroll 4
    for (int s = s0; s < s1; s++) {
      const float2 d = b.dd[s * kChains + cl];
      hz = fmaf (ex2_mufu (d.x * A2), hz, d.y * b.rows[(size_t) s * b.ldd + a.b_off + n]);
      sdx += d.x;
    }
    const int si = (grp * kChains + cl) * N + n;
    hend[si] = hz;
    hdec[si] = ex2_mufu (sdx * A2);
  }
  __syncthreads ();
  float h = 0.f;
  for (int g = 0; g < grp; g++) {
    const int i = (g * kChains + cl) * N + n;
    h = fmaf (hdec[i], h, hend[i]);
  }
  /* the steps again from that state, with the outputs */
  if (s0 < s1)
    run_tiles (b, a.b_off, cl, n, A2, Dv, gate_silu, s0, s1, h, [] {});
  __syncthreads ();
  b.template copy_out<NT> (a, 0, Ls, tid);
}

typedef void (*WholeFn) (VimkScanArgs, int);

struct WholeKernel {
  template <typename T, typename TG, int RV>
  static WholeFn get () { return scan_whole<T, TG, RV>; }
};

template <int PC>
struct WholeChunkedKernel {
  template <typename T, typename TG, int RV>
  static WholeFn get () { return scan_whole_chunked<T, TG, RV, PC>; }
};

WholeFn
whole_kernel (VimkDType dt, VimkDType gdt, int rv, int pc)
{
  switch (pc) {
    case 1: return pick_typed_kernel<WholeKernel> (dt, gdt, rv);
    case 2: return pick_typed_kernel<WholeChunkedKernel<2>> (dt, gdt, rv);
    case 4: return pick_typed_kernel<WholeChunkedKernel<4>> (dt, gdt, rv);
    default: return nullptr;
  }
}

size_t
whole_smem (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls, int pc)
{
  return layout (Ls, a->ldd, (int) vimk_dtype_size (dt), (int) vimk_dtype_size (gdt)).total
      + group_sums_floats (pc) * sizeof (float);
}

} // namespace

bool
whole_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls, int pc)
{
  if (a->N != kLanes || a->E % kChains != 0
      || whole_kernel (dt, gdt, a->r_pad / 4, pc) == nullptr
      || !whole_rows_fit (a, dt, gdt))
    return false;
  return whole_smem (a, dt, gdt, Ls, pc)
      <= (size_t) device_attribute (cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024);
}

cudaError_t
whole_launch (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int Ls, int pc,
    cudaStream_t stream)
{
  dim3 grid ((unsigned) (a->E / kChains), 2u, (unsigned) a->nseq);
  return launch_whole (whole_kernel (dt, gdt, a->r_pad / 4, pc), grid, kThreads * pc,
      whole_smem (a, dt, gdt, Ls, pc), a, Ls, stream);
}

} // namespace scan
} // namespace vimk
