/* Selective scan V4: V3's algorithm (scan.cu: chains, lanes, chunks, the
 * staged per-token rows) with a warp's u and gate rows staged through shared
 * memory with cp.async like the dt/B/C rows, and its outputs written back a
 * tile at a time from there.
 *
 * Why. ncu of V3 on an H200 (Vim-Ti 224, a pass of 128 images): the scan is
 * issue-bound, ~200 warp instructions per step of 32 chains against ~130 of
 * arithmetic, and 128 registers per thread leave 16 warps per SM, so the
 * 768 blocks run in 1.45 waves. The lanes' u and gate prefetch (2 x 2 x 8
 * registers) and their per-element 64-bit address arithmetic were most of
 * the excess. Here a warp copies its TT x 32/G u and gate values with one or
 * two 16-byte cp.async per lane, reads them from shared memory per step,
 * writes y over u there and stores the tile with 16-byte stores: fewer
 * instructions, fewer registers, more resident warps.
 *
 * V4 needs the channel count to be a multiple of 32 (a warp's channels all
 * exist) and rows aligned for its copies; vimk_scan falls back to V3
 * otherwise (v4_fits). N = 16 and lanes 1, 2, 4, 8 only. KP of a lane's
 * exponentials may use a short polynomial on the FMA pipes (16-bit
 * activations, one lane per chain).
 *
 * MMA (16-bit activations, one lane per chain): a warp's dt_proj for its 32
 * channels and a tile's 8 steps is one small matrix product, [32 x R]
 * weights times [R x 8] dt_low, run with mma.sync (fp16 inputs, fp32
 * sums, the bias as the accumulator's start) instead of R FMAs per
 * channel-step; softplus runs on the product's fragments, which then go
 * through 1.5 KB of the warp's shared memory to the lanes that own the
 * channels. Why: the one-lane scan is issue-bound, and the dt_proj FMAs
 * and their row loads are 16 (Vim-Ti) to 61 (Vim-B) of its ~150-220
 * instructions a step; the weights' registers shrink to a quarter too.
 */
#include "scan_common.cuh"
#include <cuda_pipeline.h>
#include <algorithm>

namespace vimk {
namespace scan {
namespace {

/* a warp's u (or gate) row of one step: its 32 / G channels */
template <typename E, int G>
__host__ __device__ constexpr int row_bytes () { return (32 / G) * (int) sizeof (E); }
template <typename E, int G>
__host__ __device__ constexpr int copy_bytes () { return row_bytes<E, G> () < 16 ? row_bytes<E, G> () : 16; }

/* Blocks of 128 per SM the register cap aims at (ptxas, sm_90, CUDA 13):
 * one lane per chain with rows of 3 columns (Vim-Ti) fits 80 registers
 * without spills in the main pass (6 blocks), 94 with the polynomial (5;
 * capped at 80 it spilled 8 bytes and ran 1-7% slower at batch 64-256 on
 * an H200); 6 columns take 122-128 (4), 12 and 16 up to 168 (3). With
 * dt_proj on the tensor cores (MMA) the weights take a quarter of the
 * registers, so rows of 12-16 columns (Vim-B) fit 4 blocks in 127 without
 * spills (H200, fp16: Vim-B 224 batch 256 53.1 -> 52.1 ms, batch 64 13.56
 * -> 13.39). Measured and not kept (same call, bench/RESULTS.md, fifteenth
 * session): 5 blocks for Vim-S's MMA kernel (96 registers, 12-16 bytes
 * spilled; batch 256 +2.3%, 64 +3.9%) and 4 for two lanes with rows of 12
 * columns (125 registers; Vim-B 1024 batch 8 +4.7%). */
template <int G, int RV, int KP, bool MMA>
__host__ __device__ constexpr int v4_min_blocks ()
{
  if (MMA)
    return 4;
  return RV > 8 ? 3 : G == 1 && RV <= 4 ? (KP == 0 ? 6 : 5) : 4;
}

template <int B> struct Chunk;
template <> struct Chunk<16> { typedef int4 type; };
template <> struct Chunk<8> { typedef int2 type; };
template <> struct Chunk<4> { typedef int type; };

/* cp.async the warp's rows of steps t0 .. t0 + TT - 1 (rows past nvalid
 * repeat the last valid one) into dst[TT][32 / G] */
template <typename E, int G, int TT>
__device__ __forceinline__ void stage_rows (E *dst, const E *src0, int stride, int nvalid, int lane)
{
  constexpr int CW = 32 / G, CS = copy_bytes<E, G> (), CPR = row_bytes<E, G> () / CS;
  constexpr int EPC = CS / (int) sizeof (E), NC = TT * CPR;
#pragma unroll
  for (int i = 0; i < (NC + 31) / 32; i++) {
    const int q = lane + 32 * i;
    if (NC % 32 == 0 || q < NC) {
      const int r = q / CPR, j = q - r * CPR;
      const int rs = min (r, nvalid - 1);
      __pipeline_memcpy_async (dst + r * CW + j * EPC, src0 + rs * stride + j * EPC, CS);
    }
  }
}

/* store rows 0 .. nvalid - 1 of src[TT][32 / G] to the warp's global rows */
template <typename E, int G, int TT>
__device__ __forceinline__ void flush_rows (E *dst0, int stride, const E *src, int nvalid, int lane)
{
  constexpr int CW = 32 / G, CS = copy_bytes<E, G> (), CPR = row_bytes<E, G> () / CS;
  constexpr int EPC = CS / (int) sizeof (E), NC = TT * CPR;
  typedef typename Chunk<CS>::type V;
#pragma unroll
  for (int i = 0; i < (NC + 31) / 32; i++) {
    const int q = lane + 32 * i;
    const int r = q / CPR, j = q - r * CPR;
    if ((NC % 32 == 0 || q < NC) && r < nvalid)
      *(V *) (dst0 + r * stride + j * EPC) = *(const V *) (src + r * CW + j * EPC);
  }
}

/* 2^x for x = d * a <= 0 on the FMA/ALU pipes, for 16-bit activations:
 * nearest integer j by the 1.5 * 2^23 trick (inputs clamped at -125),
 * degree-4 Taylor polynomial of 2^f on f in [-0.5, 0.5] (relative error
 * < 7e-5, 7x below fp16's rounding), j added to the exponent bits. */
__device__ __forceinline__ float ex2_poly16 (float d, float a)
{
  const float magic = 12582912.f;       /* 1.5 * 2^23 */
  const float t = fmaxf (fmaf (d, a, magic), magic - 125.f);
  const float j = t - magic;
  const float f = fmaf (d, a, -j);
  float p = 9.6181291076284772e-3f;
  p = fmaf (p, f, 5.5504108664821580e-2f);
  p = fmaf (p, f, 2.4022650695910071e-1f);
  p = fmaf (p, f, 6.9314718055994531e-1f);
  p = fmaf (p, f, 1.0f);
  return __int_as_float (__float_as_int (p) + (__float_as_int (t) << 23));
}

/* the MMA variant's per-warp delta tile: [32 channels][kDtPitch] floats
 * (a pitch of 12 makes the lanes' two 16-byte reads conflict-free) */
constexpr int kDtPitch = 12;
constexpr size_t kDtBytes = (size_t) 32 * kDtPitch * sizeof (float);

/* Floats of a staged dt/B/C row: RV float4 columns of dt_low and the B and
 * C that follow them (v4_fits: b_off <= 4 RV). A pitch known at compile
 * time gives every step's shared loads immediate offsets from one base per
 * tile; with the pitch ldd (runtime) each step cost two LEAs of address
 * arithmetic. With the main pass's per-step select of valid steps gone
 * too (below), on an H200 (ncu, Vim-Ti 224 b256, a pass of 128): 98.1 ->
 * 95.2 M warp instructions, 138.1 -> 135.8 us; Vim-S b256 178.8 -> 169.3
 * M; forward, fp16: Vim-Ti b64 -1.3%, b256 -0.7% (bf16 -1.6%), 1248 b8
 * -1.7% (bf16 -2.3%), Vim-S b256 -1.6%, b64 +0.5%, Vim-B b64 -1.5%
 * (bench/RESULTS.md, thirty-second session). */
__host__ __device__ constexpr int staged_pitch (int RV, int N) { return 4 * RV + 2 * N; }

/* One warp's shared buffers: dt/B/C rows [2][TT][sp] floats, u and gate
 * rows [2][TT][32 / G] of t_size and tg_size bytes, with SUMD the forward
 * outputs' rows [2][TT][32 / G] of t_size bytes, and with MMA the delta
 * tile. The kernel carves them and v4_smem_bytes sizes the launch with it. */
__host__ __device__ constexpr size_t warp_bytes (int G, int sp, size_t t_size, size_t tg_size,
    bool mma, bool sumd)
{
  return (size_t) 2 * tile_steps (G)
      * ((size_t) sp * 4 + (size_t) (32 / G) * (t_size + tg_size + (sumd ? t_size : 0)))
      + (mma ? kDtBytes : 0);
}

__device__ __forceinline__ uint32_t pack_half2 (float lo, float hi)
{
  __half2 h = __floats2half2_rn (lo, hi);
  return *(uint32_t *) &h;
}

/* d += a b for one m16n8k16 tile: fp16 inputs, fp32 accumulators */
__device__ __forceinline__ void mma_16816 (float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
  asm volatile ("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f" (d[0]), "+f" (d[1]), "+f" (d[2]), "+f" (d[3])
      : "r" (a[0]), "r" (a[1]), "r" (a[2]), "r" (a[3]), "r" (b0), "r" (b1));
}

/* SUMD (sum the directions; one chunk, not SUMMARY): a block runs its
 * channels' forward chains, then their backward chains, and writes y_f +
 * y_b over the forward half of xy, so out_proj reads E columns instead of
 * 2E. The backward pass stages the forward outputs of its tokens like u. */
template <typename T, typename TG, int N, int G, int RV, int KP, bool SUMMARY, bool MMA, bool SUMD>
__global__ void __launch_bounds__ (kThreads, (v4_min_blocks<G, RV, KP, MMA> ()))
scan_v4 (ScanParams sp)
{
  static_assert (!MMA || (G == 1 && sizeof (T) == 2), "MMA: one lane, 16-bit activations");
  static_assert (!SUMD || !SUMMARY, "SUMD: one chunk, no summary pass");
  constexpr int KT = (RV * 4 + 15) / 16;      /* k-tiles of 16 dt_low columns */
  constexpr int NS = N / G;
  constexpr int TT = tile_steps (G);
  constexpr int PER = TT / G;                 /* steps per lane per tile */
  constexpr int CW = 32 / G;                  /* chains (channels) per warp */
  constexpr int SP = staged_pitch (RV, N);     /* staged row pitch, floats */
  const VimkScanArgs &a = sp.a;
  extern __shared__ float4 smem4[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane % G;
  const int cw = lane / G;                    /* this chain among the warp's */
  const int c_w0 = blockIdx.x * (kThreads / G) + warp * CW;
  if (c_w0 >= a.E)
    return;                                   /* E % 32 == 0: whole warps only */
  const int c = c_w0 + cw;
  const int k = SUMD ? 0 : blockIdx.y >> 1;   /* chunk in scan order */
  const int seq = blockIdx.z;
  const int L = a.L, E = a.E, ldd = a.ldd;
  const int s0 = k * sp.Tc;
  const int s1 = min (L, s0 + sp.Tc);
  if (SUMMARY && k == sp.P - 1)
    return;                                   /* the last chunk's end state is never needed */

  const int dir_first = SUMD ? 0 : blockIdx.y & 1, dir_last = SUMD ? 1 : dir_first;
  for (int dir = dir_first; dir <= dir_last; dir++) {
    /* SUMD's backward pass: adds the forward outputs and writes the forward half */
    const bool sum_out = SUMD && dir == 1;
    /* token at scan step s = base + s * stride (stride negative backward) */
    const int64_t rows = (int64_t) a.nseq * L;
    const int64_t row0 = (int64_t) seq * L + (dir ? L - 1 : 0);
    const float *dbl0 = a.dbl + (int64_t) dir * rows * ldd + row0 * ldd;
    const int dstr = dir ? -ldd : ldd;
    T *xyw = (T *) a.xy + row0 * a.ld_xy + (int64_t) dir * E + c_w0;
    T *yfw = (T *) a.xy + row0 * a.ld_xy + c_w0;  /* this direction's rows, forward half */
    const int xstr = (int) (dir ? -a.ld_xy : a.ld_xy);
    const TG *gw = (const TG *) a.gate + row0 * a.ld_gate + c_w0;
    const int gstr = (int) (dir ? -a.ld_gate : a.ld_gate);
    const int64_t pc = (int64_t) dir * E + c;   /* parameter row */
    const bool gate_silu = a.gate_silu != 0;

    float A2[NS], h[NS];
#pragma unroll
    for (int i = 0; i < NS; i++) {
      A2[i] = a.A2[pc * N + g * NS + i];
      h[i] = 0.f;
    }
    /* fold the summaries of chunks 0 .. k-1 into the starting state: with one
     * lane per chain after the first tile's copies are issued (below), with
     * lanes here */
    constexpr bool kFoldAfterStage = G == 1;
    auto fold = [&] () {
      const int64_t sbase = ((int64_t) seq * 2 + dir) * sp.P;
      for (int j = 0; j < k; j++) {
        const float S = sp.summS[(sbase + j) * E + c];
        const float *he = sp.summ + ((sbase + j) * E + c) * N + g * NS;
#pragma unroll
        for (int i = 0; i < NS; i++)
          h[i] = fmaf (ex2_mufu (S * A2[i]), h[i], he[i]);
      }
    };
    if (!kFoldAfterStage && !SUMMARY && k > 0)
      fold ();
    const int rv = a.r_pad / 4;                /* <= RV */
    float4 wd[MMA ? 1 : RV];
    float bdt = 0.f;
    /* MMA: A fragments of the warp's weights, m-tile mt = channels 16 mt ..
     * 16 mt + 15, k-tile kt; bias of the rows gq, gq + 8 of each m-tile */
    uint32_t wa[MMA ? 2 : 1][MMA ? KT : 1][4];
    [[maybe_unused]] float wb[2][2];
    [[maybe_unused]] const int gq = lane >> 2, tq = lane & 3;
    if constexpr (MMA) {
#pragma unroll
      for (int mt = 0; mt < 2; mt++) {
        const int64_t prow = (int64_t) dir * E + c_w0 + mt * 16 + gq;
        wb[mt][0] = a.bdt[prow];
        wb[mt][1] = a.bdt[prow + 8];
#pragma unroll
        for (int kt = 0; kt < KT; kt++)
#pragma unroll
          for (int j = 0; j < 4; j++) {
            const int64_t row = prow + (j & 1) * 8;
            const int k = kt * 16 + tq * 2 + (j >> 1) * 8;
            const float *w = a.Wdt + row * a.r_pad;
            wa[mt][kt][j] = pack_half2 (k < a.R ? w[k] : 0.f, k + 1 < a.R ? w[k + 1] : 0.f);
          }
      }
    } else {
      load_dt_weights<RV> (wd, a.Wdt + pc * a.r_pad, rv);
      bdt = a.bdt[pc];
    }
    const float Dv = a.Dv[pc];
    float Ssum = 0.f;

    /* this warp's buffers: dt/B/C rows [2][TT][SP] floats, u [2][TT][CW],
     * gate [2][TT][CW] */
    char *wbase = (char *) smem4
        + (size_t) warp * warp_bytes (G, SP, sizeof (T), sizeof (TG), MMA, SUMD);
    float *stage = (float *) wbase;
    T *su = (T *) (stage + 2 * TT * SP);
    TG *sg = (TG *) (su + 2 * TT * CW);
    T *sf = (T *) (sg + 2 * TT * CW);           /* SUMD: forward outputs [2][TT][CW] */
    float *sdt = (float *) (sf + (SUMD ? 2 * TT * CW : 0));  /* MMA: [32][kDtPitch] deltas */

    /* dt/B/C rows: lane copies float4 column lc of rows lr, lr + rpi, ...
     * A row's reads are within its first kQ float4 columns (b_off <= 4 RV,
     * checked at launch), so at most those are copied. Where B follows RV
     * whole dt_low columns (b_off = 4 RV, the runner's rows) they are
     * exactly kQ: rpi = kRpi is known here and a whole tile's copies unroll
     * (below). */
    constexpr int kQ = SP / 4, kRpi = 32 / kQ;
    static_assert (TT % kRpi == 0, "whole rows per tile");
    const bool fixed_cols = a.b_off == 4 * RV && 4 * kQ <= ldd;
    const int q4 = fixed_cols ? kQ : min (kQ, ldd / 4);
    const int rpi = 32 / q4;
    const int lr = lane / q4, lc = lane - lr * q4;
    /* A whole tile's copies step two pointers; only a chain's last, partial
     * tile clamps its rows. On an H200 (ncu, Vim-Ti 224 b256, a pass of
     * 128) that took the launch from 101.1 M to 100.7 M warp instructions
     * and 143.4 to 142.1 us; Vim-Ti b64 -0.4%, Vim-S b256 -0.9%
     * (bench/RESULTS.md, twenty-eighth session). Each copy still costs
     * about 15: ptxas puts three no-op shared loads before every LDGSTS. */
    const int src_inc = rpi * dstr, dst_inc = rpi * SP;
    auto stage_tile = [&] (int t0, int buf) {
      const int nv = s1 - t0;
      float *dst = stage + buf * TT * SP + lr * SP + lc * 4;
      if (lr < rpi && nv >= TT && fixed_cols) {
        /* As a loop (Vim-Ti: 4 copies a lane) each copy cost about 14
         * instructions: the loop, the address steps and the three no-op
         * shared loads ptxas puts before every LDGSTS, which unrolled come
         * once. On an H200 (ncu, Vim-Ti 224 b256, a pass of 128): 100.7 ->
         * 98.1 M warp instructions, 142.1 -> 138.6 us; forward, fp16: Vim-Ti
         * b64 -0.8%, b256 -0.9% (bf16 -1.5%), 1248 b8 -0.9%, Vim-S b64
         * -1.6%, b256 -1.0%, Vim-B b64 -1.5% (bench/RESULTS.md,
         * thirty-first session) */
        const float *src = dbl0 + (t0 + lr) * dstr + lc * 4;
#pragma unroll
        for (int i = 0; i < TT / kRpi; i++, dst += dst_inc, src += src_inc)
          __pipeline_memcpy_async (dst, src, 16);
      } else if (lr < rpi && nv >= TT) {
        const float *src = dbl0 + (t0 + lr) * dstr + lc * 4;
        for (int r = lr; r < TT; r += rpi, dst += dst_inc, src += src_inc)
          __pipeline_memcpy_async (dst, src, 16);
      } else if (lr < rpi) {
        const float *src = dbl0 + t0 * dstr + lc * 4;
        for (int r = lr; r < TT; r += rpi, dst += dst_inc)
          __pipeline_memcpy_async (dst, src + min (r, nv - 1) * dstr, 16);
      }
      stage_rows<T, G, TT> (su + buf * TT * CW, xyw + t0 * xstr, xstr, nv, lane);
      if (!SUMMARY)
        stage_rows<TG, G, TT> (sg + buf * TT * CW, gw + t0 * gstr, gstr, nv, lane);
      if (sum_out)
        stage_rows<T, G, TT> (sf + buf * TT * CW, yfw + t0 * xstr, xstr, nv, lane);
      __pipeline_commit ();
    };

    stage_tile (s0, 0);
    /* Where nothing is chunked only the code's order changes, yet on an H200
     * Vim-Ti fp16 b256 ran 0.9% faster this way, b64 and 1248 b8 0.5% (bf16
     * b256 0.25% slower); moving the lane kernels' fold too made them 3%
     * slower at batch 1-8 */
    if (kFoldAfterStage && !SUMMARY && k > 0)
      fold ();
    int buf = 0;
    for (int t0 = s0; t0 < s1; t0 += TT) {
      if (t0 + TT < s1) {
        stage_tile (t0 + TT, buf ^ 1);
        __pipeline_wait_prior (1);
      } else {
        __pipeline_wait_prior (0);
      }
      __syncwarp ();
      const float *tile = stage + buf * TT * SP;
      T *tu = su + buf * TT * CW;
      const TG *tg = sg + buf * TT * CW;

      /* MMA: the tile's deltas of this lane's channel, dl[step] */
      float dl[MMA ? TT : 1];
      if constexpr (MMA) {
        float acc[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
          acc[mt][0] = acc[mt][1] = wb[mt][0];
          acc[mt][2] = acc[mt][3] = wb[mt][1];
        }
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
          /* B fragment: dt_low of step gq, columns k0, k0 + 1, k0 + 8, k0 + 9
           * (columns past R, B and C values or padding, meet zero weights
           * but are zeroed so that no inf or nan can reach the sums) */
          const int k0 = kt * 16 + tq * 2;
          const float2 lo = *(const float2 *) (tile + gq * SP + k0);
          const float2 hi = *(const float2 *) (tile + gq * SP + k0 + 8);
          const uint32_t b0 = pack_half2 (k0 < a.R ? lo.x : 0.f, k0 + 1 < a.R ? lo.y : 0.f);
          const uint32_t b1 = pack_half2 (k0 + 8 < a.R ? hi.x : 0.f, k0 + 9 < a.R ? hi.y : 0.f);
#pragma unroll
          for (int mt = 0; mt < 2; mt++)
            mma_16816 (acc[mt], wa[mt][kt], b0, b1);
        }
        /* acc[mt][i]: channel 16 mt + gq + 8 (i >> 1), step 2 tq + (i & 1) */
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
          float *d0 = sdt + (mt * 16 + gq) * kDtPitch + tq * 2;
          *(float2 *) d0 = make_float2 (softplus_lg2 (acc[mt][0]), softplus_lg2 (acc[mt][1]));
          *(float2 *) (d0 + 8 * kDtPitch)
              = make_float2 (softplus_lg2 (acc[mt][2]), softplus_lg2 (acc[mt][3]));
        }
        __syncwarp ();
        const float4 v0 = *(const float4 *) (sdt + lane * kDtPitch);
        const float4 v1 = *(const float4 *) (sdt + lane * kDtPitch + 4);
        dl[0] = v0.x; dl[1] = v0.y; dl[2] = v0.z; dl[3] = v0.w;
        dl[4] = v1.x; dl[5] = v1.y; dl[6] = v1.z; dl[7] = v1.w;
      }

#pragma unroll
      for (int m = 0; m < PER; m++) {
        const int r = m * G + g;                /* this lane's step in the tile */
        float delta;
        if constexpr (MMA) {
          delta = dl[m];
        } else {
          const float dtv = dt_proj<RV, false> ((const float4 *) (tile + r * SP), wd, rv, bdt);
          delta = sizeof (T) == 2 ? softplus_lg2 (dtv) : softplus_f (dtv);
        }
        /* Steps past s1 (their rows repeat the last valid one) leave the end
         * state as is. Only the summary pass keeps it: the main pass's state
         * after s1 is never read and its outputs there are not stored, so it
         * spends no select (and no step count) a step on them. */
        if (SUMMARY)
          delta = t0 + r < s1 ? delta : 0.f;
        const float u = Cvt<T>::load (tu[r * CW + cw]);
        const float du = delta * u;
        if (SUMMARY)
          Ssum += delta;

        float p[G];
        advance_states<G, N, NS, SUMMARY> (delta, du, tile + m * G * SP + a.b_off + g * NS, SP,
            h, p, [&] (int i, float dj) {
              return i < KP ? ex2_poly16 (dj, A2[i]) : ex2_mufu (dj * A2[i]);
            });
        if (!SUMMARY) {
          butterfly<G, G / 2> (p, g);
          /* y replaces u in the tile (rows past s1 are not stored) */
          float gv = Cvt<TG>::load (tg[r * CW + cw]);
          if (gate_silu)
            gv = silu_act<T> (gv);
          float yv = (p[0] + Dv * u) * gv;
          if (sum_out)
            yv += Cvt<T>::load (sf[buf * TT * CW + r * CW + cw]);
          tu[r * CW + cw] = Cvt<T>::store (yv);
        }
      }
      if (!SUMMARY) {
        __syncwarp ();
        flush_rows<T, G, TT> ((sum_out ? yfw : xyw) + t0 * xstr, xstr, tu, s1 - t0, lane);
      }
      __syncwarp ();
      buf ^= 1;
    }

    if (SUMMARY) {
#pragma unroll
      for (int o = G / 2; o >= 1; o /= 2)
        Ssum += __shfl_xor_sync (0xffffffffu, Ssum, o, G);
      const int64_t idx = ((int64_t) seq * 2 + dir) * sp.P + k;
      float *he = sp.summ + (idx * E + c) * N + g * NS;
#pragma unroll
      for (int i = 0; i < NS; i++)
        he[i] = h[i];
      if (g == 0)
        sp.summS[idx * E + c] = Ssum;
    }
    if (SUMD && dir == 0) {
      /* the backward pass's copies read what this warp's lanes stored */
      __threadfence_block ();
      __syncwarp ();
    }
  } /* dir */
}

/* SD: the kernels that sum the directions (one or two lanes, main pass only) */
template <typename T, typename TG, int G, int RV, bool S, bool SD>
ScanFn pick_kp (int kp, bool mma)
{
  if constexpr (SD && (S || G > 2)) {
    return nullptr;
  } else {
    if constexpr (G == 1 && sizeof (T) == 2) {
      /* vimk_scan asks for the product only where dt_rank > 16, which rows of
       * 3 float4 columns never hold: no such kernels */
      if (mma) {
        if constexpr (RV > 3)
          return kp == 2 ? scan_v4<T, TG, 16, G, RV, 2, S, true, SD>
              : kp == 0 ? scan_v4<T, TG, 16, G, RV, 0, S, true, SD> : nullptr;
        return nullptr;
      }
      if (kp == 2)
        return scan_v4<T, TG, 16, G, RV, 2, S, false, SD>;
    }
    if (mma)
      return nullptr;                         /* one lane, 16-bit only */
    return kp == 0 ? scan_v4<T, TG, 16, G, RV, 0, S, false, SD> : nullptr;
  }
}

template <typename T, typename TG, int G, bool S, bool SD>
ScanFn pick_rv (int rv, int kp, bool mma)
{
  switch (rv_columns (rv)) {
    case 3: return pick_kp<T, TG, G, 3, S, SD> (kp, mma);
    case 6: return pick_kp<T, TG, G, 6, S, SD> (kp, mma);
    case 12: return pick_kp<T, TG, G, 12, S, SD> (kp, mma);
    case 16: return pick_kp<T, TG, G, 16, S, SD> (kp, mma);
    default: return nullptr;
  }
}

template <typename T, typename TG, bool S, bool SD>
ScanFn pick_g (int G, int rv, int kp, bool mma)
{
  switch (G) {
    case 1: return pick_rv<T, TG, 1, S, SD> (rv, kp, mma);
    case 2: return pick_rv<T, TG, 2, S, SD> (rv, kp, mma);
    case 4: return SD ? nullptr : pick_rv<T, TG, 4, S, false> (rv, kp, mma);
    case 8: return SD ? nullptr : pick_rv<T, TG, 8, S, false> (rv, kp, mma);
    default: return nullptr;
  }
}

template <bool S, bool SD>
ScanFn pick_types (VimkDType dt, VimkDType gdt, int G, int rv, int kp, bool mma)
{
  if (gdt == dt) {
    switch (dt) {
      case VIMK_F32: return pick_g<float, float, S, SD> (G, rv, kp, mma);
      case VIMK_F16: return pick_g<__half, __half, S, SD> (G, rv, kp, mma);
      case VIMK_BF16: return pick_g<__nv_bfloat16, __nv_bfloat16, S, SD> (G, rv, kp, mma);
    }
  } else if (dt == VIMK_BF16 && gdt == VIMK_F32) {
    return pick_g<__nv_bfloat16, float, S, SD> (G, rv, kp, mma);
  }
  return nullptr;
}

size_t dtype_size (VimkDType t) { return t == VIMK_F32 ? 4 : 2; }

} // namespace

ScanFn
v4_kernel (bool summary, VimkDType dt, VimkDType gdt, int N, int G, int rv, int kp, bool mma,
    bool sum_dirs)
{
  if (N != 16 || (sum_dirs && (summary || G > 2)))
    return nullptr;
  if (sum_dirs)
    return pick_types<false, true> (dt, gdt, G, rv, kp, mma);
  return summary ? pick_types<true, false> (dt, gdt, G, rv, kp, mma)
      : pick_types<false, false> (dt, gdt, G, rv, kp, mma);
}

bool
v4_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int G)
{
  if (a->E % 32 != 0 || a->ldd > 128 || G < 1 || G > 8)
    return false;
  /* dt_proj<RV, false> reads RV whole columns of each staged row, and the
   * rows are staged at the pitch staged_pitch (RV, N): B and C must follow
   * within it and within the row; rows are copied 16 bytes at a time */
  const int rv = rv_columns (a->r_pad / 4);
  if (rv == 0 || 4 * rv > a->ldd || a->b_off < 0 || a->b_off > 4 * rv
      || a->b_off + 2 * a->N > a->ldd || (uintptr_t) a->dbl % 16 != 0)
    return false;
  /* the widest copy of a row must divide every offset: base, channel block
   * (a multiple of 32 / G channels), the backward half (E) and the pitch */
  const size_t cs_u = std::min ((size_t) 16, (size_t) (32 / G) * dtype_size (dt));
  const size_t cs_g = std::min ((size_t) 16, (size_t) (32 / G) * dtype_size (gdt));
  return (uintptr_t) a->xy % cs_u == 0 && (a->E * dtype_size (dt)) % cs_u == 0
      && (a->ld_xy * dtype_size (dt)) % cs_u == 0
      && (uintptr_t) a->gate % cs_g == 0 && (a->ld_gate * dtype_size (gdt)) % cs_g == 0;
}

size_t
v4_smem_bytes (VimkDType dt, VimkDType gdt, int G, int rv, int N, bool mma, bool sum_dirs)
{
  return (size_t) (kThreads / 32) * warp_bytes (G, staged_pitch (rv_columns (rv), N),
      dtype_size (dt), dtype_size (gdt), mma, sum_dirs);
}

} // namespace scan
} // namespace vimk
