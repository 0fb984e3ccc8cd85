/* Bidirectional selective scan (Mamba-1, bimamba v2) with dt_proj, softplus,
 * the D skip and the SiLU(z) gate fused in.
 *
 * Work split. A chain = (sequence, direction, channel) runs over the tokens
 * in scan order (backward = mirrored indexing, no flips). Its N states are
 * spread over G consecutive lanes (NS = N / G per lane), and its steps may
 * be cut into P chunks run in parallel: a first launch (summary) runs each
 * chunk but the last from a zero state and keeps its end state and the sum
 * of its deltas; the main launch folds the summaries of the chunks before
 * its own into the true starting state, exp2(A * sum delta) being the
 * chunk's decay, then runs its chunk with outputs. G = 1, P = 1 is the
 * cheapest per state-step; G and P buy parallelism for small batches and
 * long sequences.
 *
 * Memory. A warp's lanes all work on the same tokens, so each warp stages
 * the per-token rows (dt_low, B, C) of the next tile of TT steps into its own
 * shared memory with cp.async while it computes the current tile, and
 * prefetches its lanes' u and gate values into registers one tile ahead.
 *
 * Per block of G steps, lane g computes delta (dt_proj dot product, softplus)
 * for step sb + g and hands delta and delta*u to the other lanes by
 * shuffles; each lane advances its NS states over the G steps keeping one
 * partial output per step, and a transposing butterfly leaves lane g with
 * the sum over all N states for step sb + g, which it finishes (D skip,
 * gate) and writes in place of u.
 *
 * The exponential exp(delta * A) (one per token, channel, state and
 * direction) runs on the special-function unit (16 per SM per clock); KP of
 * a lane's NS exponentials can use a polynomial on the FMA pipes instead.
 * The default is KP = 0: as compiled the kernel is issue-bound (ncu on an
 * H100: 64% issue slots busy, ~250 warp instructions per step of 32 chains),
 * and KP = 3 measured 7% slower (bench/RESULTS.md).
 *
 * V2 (V1-V3 stay behind VIM_CUDA_SCAN_VERSION=1, 2 or 3) addresses a chain's
 * tokens as base + s * stride with 32-bit strides, uses a branch-free
 * softplus and caps registers for 3-4 blocks per SM: the same floating-point
 * operations, 8-24% faster at batch 256 on an H200 (bench/RESULTS.md).
 *
 * V3 stages each tile row by row (a lane per float4 column, a few
 * instructions per row instead of V2's per-copy row/column stepping) and,
 * with 16-bit activations, takes softplus from lg2 (8 instructions instead
 * of ~20; fp32 keeps the accurate one): 3-6% faster than V2 on an H200 at
 * batch 8-256, the same at batch 1 (bench/RESULTS.md).
 *
 * V4 (scan_v4.cu, the default where it applies: N = 16, channels a multiple
 * of 32, lanes 1-8) also stages u and the gate through shared memory and
 * writes outputs a tile at a time: 4-16% faster than V3 on an H200.
 * VIM_CUDA_SCAN_VERSION=1, 2 or 3 selects an older kernel.
 *
 * V5 (scan_whole.cu) runs whole chains in one launch, one state per lane,
 * for small batches (scan_uses_whole below): 5-9% faster than V4 at Vim-Ti
 * 224 batch 2-4 on an H200. With fewer blocks than SMs (Vim-Ti 224 batch
 * 1) its blocks split each chain into 4 chunk groups (whole_groups): 6.6%
 * faster than V4's two launches there.
 *
 * V6 (scan_stream.cu) runs whole chains of any length in one launch, two
 * states per lane, streamed through shared memory, where V4 would chunk
 * them at mid-sized batches (scan_uses_stream below): 12-17% faster than
 * V4 at Vim-Ti 224 and 512 batch 8 and Vim-S batch 4 on an H200.
 */
#include "scan_common.cuh"
#include <cuda_pipeline.h>
#include <stdlib.h>
#include <algorithm>

using namespace vimk;

namespace {

using scan::kThreads;
using scan::tile_steps;
using scan::ScanParams;
using scan::ScanFn;
using scan::butterfly;
using scan::dt_proj;
using scan::advance_states;
using scan::load_dt_weights;
using scan::device_attribute;

/* V2: per-thread base pointers and 32-bit signed per-step offsets instead of
 * 64-bit row arithmetic for every access, a branch-free softplus, and a
 * register cap for scan_min_blocks blocks per SM (the same floating-point
 * operations). VIM_CUDA_SCAN_V1=1 selects the V1 kernel. */
template <int G, int RV, int VER>
__host__ __device__ constexpr int scan_min_blocks ()
{
  /* G = 1 fp16 took 153 (RV 4) and 181 (RV 8) registers in V1: 3 and 2
   * blocks of 128 per SM. 4 and 3 here need no spills; 5 and 4 (96 and 128
   * registers, with spills) measured no faster on an H200. */
  return VER == 1 ? 1 : (RV <= 4 ? 4 : 3);
}

/* VER: 1 = V1, 2 = V2, 3 = V3 (V2 with row-wise staging and, for 16-bit
 * activations, softplus_lg2) */
template <typename T, typename TG, int N, int G, int RV, int KP, bool SUMMARY, int VER>
__global__ void __launch_bounds__ (kThreads, (scan_min_blocks<G, RV, VER> ()))
scan_kernel (ScanParams sp)
{
  constexpr bool V2 = VER >= 2;
  constexpr int NS = N / G;
  constexpr int TT = tile_steps (G);
  constexpr int PER = TT / G;                 /* steps per lane per tile */
  const VimkScanArgs &a = sp.a;
  extern __shared__ float4 smem4[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = tid % G;
  const int cpb = kThreads / G;
  const int c_raw = blockIdx.x * cpb + tid / G;
  const bool active = c_raw < a.E;
  const int c = active ? c_raw : a.E - 1;
  const int dir = blockIdx.y & 1;
  const int k = blockIdx.y >> 1;              /* chunk in scan order */
  const int seq = blockIdx.z;
  const int L = a.L, E = a.E, ldd = a.ldd;
  const int64_t rows = (int64_t) a.nseq * L;
  const int64_t seq_base = (int64_t) seq * L;
  const int rv = a.r_pad / 4;
  const int s0 = k * sp.Tc;
  const int s1 = min (L, s0 + sp.Tc);
  if (SUMMARY && k == sp.P - 1)
    return;                                   /* the last chunk's end state is never needed */

  const float *dbl = a.dbl + (int64_t) dir * rows * ldd;
  const TG *gate = (const TG *) a.gate;
  T *xy = (T *) a.xy;
  const int64_t col = (int64_t) dir * E + c;
  const int64_t pc = (int64_t) dir * E + c;   /* parameter row */
  /* V2: token at scan step s = base + s * stride (stride negative backward) */
  const int64_t row0 = seq_base + (dir ? L - 1 : 0);
  const float *dbl0 = dbl + row0 * ldd;
  const int dstr = dir ? -ldd : ldd;
  T *xy0 = xy + row0 * a.ld_xy + col;
  const int xstr = (int) (dir ? -a.ld_xy : a.ld_xy);
  const TG *gate0 = gate + row0 * a.ld_gate + c;
  const int gstr = (int) (dir ? -a.ld_gate : a.ld_gate);
  const bool gate_silu = a.gate_silu != 0;

  float A2[NS], h[NS];
#pragma unroll
  for (int i = 0; i < NS; i++) {
    A2[i] = a.A2[pc * N + g * NS + i];
    h[i] = 0.f;
  }
  if (!SUMMARY && k > 0) {
    /* fold the summaries of chunks 0 .. k-1 into the starting state */
    const int64_t sbase = ((int64_t) seq * 2 + dir) * sp.P;
    for (int j = 0; j < k; j++) {
      const float S = sp.summS[(sbase + j) * E + c];
      const float *he = sp.summ + ((sbase + j) * E + c) * N + g * NS;
#pragma unroll
      for (int i = 0; i < NS; i++)
        h[i] = fmaf (ex2_mufu (S * A2[i]), h[i], he[i]);
    }
  }
  float4 wd[RV];
  load_dt_weights<RV> (wd, a.Wdt + pc * a.r_pad, rv);
  const float bdt = a.bdt[pc];
  const float Dv = a.Dv[pc];
  float Ssum = 0.f;

  /* this warp's staging buffers: 2 x TT rows of ldd floats */
  float *stage = (float *) smem4 + (size_t) warp * 2 * TT * ldd;
  const int q4 = ldd / 4;                     /* float4 per row */

  auto token_row = [&] (int s) -> int64_t {
    s = min (s, s1 - 1);
    return seq_base + (dir ? L - 1 - s : s);
  };
  /* lane's first (row, float4) of a tile and its step per 32 copies */
  const int r_lane = lane / q4, c_lane = lane - r_lane * q4;
  const int r_step = 32 / q4, c_step = 32 - r_step * q4;
  /* V3: lane copies float4 column lc of rows lr, lr + rpi, ... (ldd <= 128,
   * checked at launch): a few instructions per row instead of V2's
   * per-copy row/column stepping */
  const int rpi = 32 / q4 > 0 ? 32 / q4 : 1;
  const int lr = lane / q4, lc = lane - lr * q4;
  auto stage_tile3 = [&] (int t0, int buf) {
    float *dst = stage + (size_t) buf * TT * ldd + lc * 4;
    const float *src = dbl0 + lc * 4;
    if (lr < rpi)
      for (int r = lr; r < TT; r += rpi)
        __pipeline_memcpy_async (dst + r * ldd, src + min (t0 + r, s1 - 1) * dstr, 16);
    __pipeline_commit ();
  };
  auto stage_tile = [&] (int t0, int buf) {
    if constexpr (VER >= 3) {
      stage_tile3 (t0, buf);
      return;
    }
    float *dst = stage + (size_t) buf * TT * ldd;
    int r = r_lane, cc = c_lane;
    for (int q = lane; q < TT * q4; q += 32) {
      if constexpr (V2)
        __pipeline_memcpy_async (dst + r * ldd + cc * 4,
            dbl0 + min (t0 + r, s1 - 1) * dstr + cc * 4, 16);
      else
        __pipeline_memcpy_async (dst + r * ldd + cc * 4, dbl + token_row (t0 + r) * ldd + cc * 4, 16);
      r += r_step;
      cc += c_step;
      if (cc >= q4) {
        cc -= q4;
        r++;
      }
    }
    __pipeline_commit ();
  };
  /* u and gate of this lane's steps (t0 + g + G m) */
  float un[PER], gn[PER];
  auto fetch_lane = [&] (int t0, float *uu, float *gg) {
#pragma unroll
    for (int m = 0; m < PER; m++) {
      if constexpr (V2) {
        const int sm = min (t0 + g + G * m, s1 - 1);
        uu[m] = ld<T> (xy0 + sm * xstr);
        if (!SUMMARY)
          gg[m] = ld<TG> (gate0 + sm * gstr);
      } else {
        int64_t row = token_row (t0 + g + G * m);
        uu[m] = ld<T> (xy + row * a.ld_xy + col);
        if (!SUMMARY)
          gg[m] = ld<TG> (gate + row * a.ld_gate + c);
      }
    }
  };

  stage_tile (s0, 0);
  fetch_lane (s0, un, gn);
  int buf = 0;
  for (int t0 = s0; t0 < s1; t0 += TT) {
    float uc[PER], gc[PER];
#pragma unroll
    for (int m = 0; m < PER; m++) {
      uc[m] = un[m];
      gc[m] = gn[m];
    }
    const bool more = t0 + TT < s1;
    if (more) {
      stage_tile (t0 + TT, buf ^ 1);
      fetch_lane (t0 + TT, un, gn);
      __pipeline_wait_prior (1);
    } else {
      __pipeline_wait_prior (0);
    }
    __syncwarp ();
    const float *tile = stage + (size_t) buf * TT * ldd;

#pragma unroll
    for (int m = 0; m < PER; m++) {
      const int sb = t0 + m * G;
      /* this lane's step sb + g */
      const int s = sb + g;
      const bool valid = s < s1;
      const float dtv = dt_proj<RV> ((const float4 *) (tile + (m * G + g) * ldd), wd, rv, bdt);
      float delta = 0.f;
      if (valid) {
        if constexpr (VER >= 3 && sizeof (T) == 2)
          delta = softplus_lg2 (dtv);
        else
          delta = softplus_f (dtv);
      }
      const float u = uc[m];
      const float du = delta * u;
      if (SUMMARY)
        Ssum += delta;

      float p[G];
      advance_states<G, N, NS, SUMMARY> (delta, du, tile + m * G * ldd + a.b_off + g * NS, ldd,
          h, p, [&] (int i, float dj) {
            const float x = dj * A2[i];
            return i < KP ? ex2_poly (x) : ex2_mufu (x);
          });
      if (!SUMMARY) {
        butterfly<G, G / 2> (p, g);
        if (valid && active) {
          const float gv = gate_silu ? silu_act<T> (gc[m]) : gc[m];
          if constexpr (V2) {
            st (xy0 + s * xstr, (p[0] + Dv * u) * gv);
          } else {
            const int64_t row = token_row (s);
            st (xy + row * a.ld_xy + col, (p[0] + Dv * u) * gv);
          }
        }
      }
    }
    __syncwarp ();
    buf ^= 1;
  }

  if (SUMMARY) {
#pragma unroll
    for (int o = G / 2; o >= 1; o /= 2)
      Ssum += __shfl_xor_sync (0xffffffffu, Ssum, o, G);
    if (active) {
      const int64_t idx = ((int64_t) seq * 2 + dir) * sp.P + k;
      float *he = sp.summ + (idx * E + c) * N + g * NS;
#pragma unroll
      for (int i = 0; i < NS; i++)
        he[i] = h[i];
      if (g == 0)
        sp.summS[idx * E + c] = Ssum;
    }
  }
}

template <typename T, typename TG, int N, int G, int RV, int KP, bool S>
ScanFn pick_v (int ver)
{
  return ver >= 3 ? scan_kernel<T, TG, N, G, RV, KP, S, 3>
      : ver == 2 ? scan_kernel<T, TG, N, G, RV, KP, S, 2> : scan_kernel<T, TG, N, G, RV, KP, S, 1>;
}

template <typename T, typename TG, int N, int G, int RV, bool S>
ScanFn pick_kp (int kp, int ver)
{
  if constexpr (G == 1 && N == 16) {
    switch (kp) {
      case 0: return pick_v<T, TG, N, G, RV, 0, S> (ver);
      case 3: return pick_v<T, TG, N, G, RV, 3, S> (ver);
      default: return nullptr;
    }
  } else {
    return kp == 0 ? pick_v<T, TG, N, G, RV, 0, S> (ver) : nullptr;
  }
}

template <typename T, typename TG, int N, int G, bool S>
ScanFn pick_rv (int rv, int kp, int ver)
{
  if (rv <= 4)
    return pick_kp<T, TG, N, G, 4, S> (kp, ver);
  if constexpr (N == 16) {
    if (rv <= 8)
      return pick_kp<T, TG, N, G, 8, S> (kp, ver);
    if (rv <= 16)
      return pick_kp<T, TG, N, G, 16, S> (kp, ver);
  }
  return nullptr;
}

template <typename T, typename TG, int N, bool S>
ScanFn pick_g (int G, int rv, int kp, int ver)
{
  switch (G) {
    case 1: return pick_rv<T, TG, N, 1, S> (rv, kp, ver);
    case 2: return pick_rv<T, TG, N, 2, S> (rv, kp, ver);
    case 4: return pick_rv<T, TG, N, 4, S> (rv, kp, ver);
    case 8: return pick_rv<T, TG, N, 8, S> (rv, kp, ver);
    case 16: if constexpr (N >= 16) return pick_rv<T, TG, N, 16, S> (rv, kp, ver); else return nullptr;
    default: return nullptr;
  }
}

template <typename T, typename TG, bool S>
ScanFn pick_n (int N, int G, int rv, int kp, int ver)
{
  switch (N) {
    case 8: return pick_g<T, TG, 8, S> (G, rv, kp, ver);
    case 16: return pick_g<T, TG, 16, S> (G, rv, kp, ver);
    default: return nullptr;
  }
}

template <bool S>
ScanFn pick (VimkDType dt, VimkDType gdt, int N, int G, int rv, int kp, int ver)
{
  if (gdt == dt) {
    switch (dt) {
      case VIMK_F32: return pick_n<float, float, S> (N, G, rv, kp, ver);
      case VIMK_F16: return pick_n<__half, __half, S> (N, G, rv, kp, ver);
      case VIMK_BF16: return pick_n<__nv_bfloat16, __nv_bfloat16, S> (N, G, rv, kp, ver);
    }
  } else if (dt == VIMK_BF16 && gdt == VIMK_F32) {
    return pick_n<__nv_bfloat16, float, S> (N, G, rv, kp, ver);
  }
  return nullptr;
}

/* VIM_CUDA_SCAN_VERSION=1, 2 or 3: an earlier kernel, kept for A/B timing
 * (bench/scan-ab-device.sh); VIM_CUDA_SCAN_V1=1 is the older spelling of 1;
 * 4: V4 only, 5: V5 wherever it fits, 6: V6 wherever it fits. Unset: 0,
 * vimk_scan's own choice (V5 for few chains, V6 for mid-sized batches, else
 * V4). VimkScanArgs.version, when set, wins (the tests run every version). */
int scan_version ()
{
  static int v = -1;
  if (v < 0) {
    const char *e = getenv ("VIM_CUDA_SCAN_VERSION");
    const char *e1 = getenv ("VIM_CUDA_SCAN_V1");
    if (e != nullptr && e[0] >= '1' && e[0] <= '6' && e[1] == '\0')
      v = e[0] - '0';
    else if (e1 != nullptr && e1[0] != '\0' && e1[0] != '0')
      v = 1;
    else
      v = 0;
  }
  return v;
}

/* An environment switch: 0 or 1 as set, -1 when unset or anything else */
static int env_switch (const char *name)
{
  const char *e = getenv (name);
  return e != nullptr && (e[0] == '0' || e[0] == '1') && e[1] == '\0' ? e[0] - '0' : -1;
}

/* VIM_CUDA_SCAN_WHOLE=0: vimk_scan's own choice never takes V5; =1: it takes
 * V5 wherever V5 fits (A/B timing); unset: -1, the rule in scan_uses_whole */
int scan_whole_env ()
{
  static const int v = env_switch ("VIM_CUDA_SCAN_WHOLE");
  return v;
}

/* VIM_CUDA_SCAN_STREAM=0|1: the same for V6 (scan_uses_stream) */
int scan_stream_env ()
{
  static const int v = env_switch ("VIM_CUDA_SCAN_STREAM");
  return v;
}

/* VIM_CUDA_SCAN_DT_MMA=0: the one-lane 16-bit scan of dt_rank > 16 (Vim-S,
 * Vim-B) computes dt_proj with FMAs instead of mma.sync (A/B timing) */
bool scan_dt_mma_env ()
{
  static int v = -1;
  if (v < 0) {
    const char *e = getenv ("VIM_CUDA_SCAN_DT_MMA");
    v = e != nullptr && e[0] == '0' && e[1] == '\0' ? 0 : 1;
  }
  return v != 0;
}

/* The smallest L1 / shared split (percent) that holds as many blocks of fn
 * (kThreads, smem bytes each) per SM as its registers allow, so the SM runs
 * the scan and the other pass's rmsnorm and conv (layer_carveout, common.cuh)
 * in the same configuration where it can; -1 where it cannot be read */
int fitting_carveout (const void *fn, size_t smem)
{
  int blocks = 0;
  const int per_sm = device_attribute (cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0);
  const int reserved = device_attribute (cudaDevAttrReservedSharedMemoryPerBlock, 0);
  if (per_sm <= 0
      || cudaOccupancyMaxActiveBlocksPerMultiprocessor (&blocks, fn, kThreads, smem) != cudaSuccess) {
    (void) cudaGetLastError ();
    return -1;
  }
  if (blocks <= 0)
    return -1;                                /* the launch itself will say why */
  const int64_t need = (int64_t) blocks * ((int64_t) smem + reserved);
  return (int) std::min ((int64_t) 100, cdiv (need * 100, (int64_t) per_sm));
}

/* VIM_CUDA_SCAN_BLOCKS_PER_SM: at most this many scan blocks per SM (0 = no
 * cap, unset = vimk_scan's rule below) */
int scan_blocks_cap_env ()
{
  static int v = -2;
  if (v == -2) {
    const char *e = getenv ("VIM_CUDA_SCAN_BLOCKS_PER_SM");
    v = e != nullptr && e[0] != '\0' ? atoi (e) : -1;
    if (v < -1 || v > 32)
      v = -1;
  }
  return v;
}

int sm_count ()
{
  return device_attribute (cudaDevAttrMultiProcessorCount, 132);
}

} // namespace

extern "C" int
vimk_scan_supported (int N, int R)
{
  int rv = (R + 3) / 4;
  if (N == 16)
    return R >= 1 && rv <= 16;
  if (N == 8)
    return R >= 1 && rv <= 4;
  return 0;
}

/* The plan before V4, still used where one of lanes/chunks is forced. */
static void
plan_v3 (int nseq, int L, int E, int N, int lanes, int chunks, int *lanes_out, int *chunks_out)
{
  /* about 16 warps per SM (4 blocks of 128, what the register cap lets
   * reside): lanes up to 4 first, then chunks of at least 64 steps, then up
   * to 8 lanes (16 measured slower at batch 1). Chunks and the extra lanes
   * are only added while the launch still fits one wave: a second, partly
   * filled wave costs a whole chunk's time again (Vim-Ti 512 batch 1 on an
   * H100: 4 lanes x 16 chunks 1.14 ms a forward, 8 x 16 1.48 ms).
   * Long chains then gain from 2-4 waves of chunks of >= 128 steps, the
   * latency of one step hidden behind the other resident blocks (H200,
   * forward fp16, 4 lanes: Vim-Ti 1248 batch 8 in passes of 4, 4 / 8 / 16 /
   * 32 chunks = 0.7 / 1.5 / 2.9 / 5.8 waves: 32.2 / 32.4 / 27.7 / 28.1 ms;
   * Vim-Ti 512 batch 8, 2 / 4 / 8 / 16 chunks: 4.70 / 5.02 / 4.54 / 4.72 ms).
   * Between one and two waves is the worst case, so that is never chosen.
   * Only where the one-wave plan already chunks: going from 1 chunk to
   * several adds the summary pass (Vim-Ti 512 batch 32 in passes of 16:
   * 4 x 1 13.5 ms, 4 x 4 17.7 ms). */
  const int64_t target = (int64_t) sm_count () * 512;
  const int64_t chains = (int64_t) nseq * 2 * E;
  int G = lanes > 0 ? lanes : 1;
  int P = chunks > 0 ? chunks : 1;
  if (lanes <= 0)
    while (G < 4 && G < N && chains * G * P < target)
      G *= 2;
  const int max_p = (int) max ((int64_t) 1, cdiv (L, 64));
  if (chunks <= 0)
    while (P < 64 && P * 2 <= max_p && chains * G * P * 2 <= target)
      P *= 2;
  if (lanes <= 0)
    while (G < 8 && G < N && chains * G * P * 2 <= target)
      G *= 2;
  if (chunks <= 0 && P > 1) {        /* P > 1: the loops above kept it to one wave */
    int Q = P;
    while (Q < 64 && (int64_t) Q * 2 * 128 <= L && chains * G * Q * 2 <= 4 * target)
      Q *= 2;
    if (chains * G * Q > 2 * target)
      P = Q;
  }
  *lanes_out = G;
  *chunks_out = P;
}

extern "C" void
vimk_scan_plan (int nseq, int L, int E, int N, int R, int lanes, int chunks,
    int *lanes_out, int *chunks_out)
{
  /* With V4 (one lane per chain the cheapest per state-step) the best plans
   * measured on an H200 keep the launch within about one wave of 4 blocks
   * of 128 per SM, and once chunks are needed prefer them to lanes
   * (bench/RESULTS.md, "Scan plan for V4"; forward fp16 ms, old plan ->
   * this one): Vim-Ti 224 batch 64 2x1 -> 1x1 3.84 -> 3.31, batch 32 4x1
   * -> 2x1 2.41 -> 2.10, batch 1 8x4 -> 4x16 0.765 -> 0.669, Vim-B 224
   * batch 1 4x4 -> 2x8 1.50 -> 1.28, Vim-Ti 1248 batch 8 (passes of 4)
   * 4x16 -> 1x16 22.8 -> 18.8. */
  if (lanes > 0 || chunks > 0) {
    plan_v3 (nseq, L, E, N, lanes, chunks, lanes_out, chunks_out);
    return;
  }
  const int64_t wave = (int64_t) sm_count () * 512;
  const int64_t chains = (int64_t) nseq * 2 * E;
  const int gmax = std::min (8, N);
  int G = 1, P = 1;
  /* lanes without chunks: up to 4, or 2 where dt_rank > 32 (Vim-B): those
   * kernels hold 12-16 float4 columns of dt_proj weights and fit 3 blocks
   * per SM, and 4 lanes of them were slower than 2 or 1 (H200, fp16, Vim-B
   * 224 batch 4: 4 x 1 2.14 ms, 2 x 1 1.84, 1 x 1 2.04; with 2 lanes Vim-B
   * 512 batch 4 8.93 -> 7.54, 1024 batch 8 in passes of 4 65.0 -> 41.3) */
  const int gfill = std::min (R > 32 ? 2 : 4, gmax);
  if (chains * std::min (4, gmax) >= wave / 2 || L < 24) {
    /* no chunks: the fewest lanes (<= gfill) that fill half a wave */
    while (G < gfill && chains * G < wave / 2)
      G *= 2;
  } else if (L >= 4096) {
    /* very long chains: chunks of >= 128 steps up to 3/4 wave; one lane
     * where 16 chunks of the chains fill half a wave, else 2 lanes, which
     * need half the chunks (fewer summaries to fold) for the same threads.
     * On an H200, fp16, batch 1: Vim-Ti 1024 1 x 32 -> 2 x 32 2.78 -> 2.04
     * ms, 1248 3.55 -> 2.66, Vim-S 1024 1 x 32 -> 2 x 16 4.13 -> 3.76, 1248
     * 5.39 -> 5.26; Vim-Ti 1248 batch 2 4.87 -> 4.51 (bench/RESULTS.md,
     * thirteenth session). Passes of 4 images keep 1 x 16 (2 x 8 was 1.4%
     * slower at Vim-Ti 1248 batch 8). */
    if (chains * 16 < wave / 2)
      G = std::min (2, gmax);
    while (P < 64 && (L / (P * 2)) >= 128 && chains * G * P * 2 <= wave * 3 / 4)
      P *= 2;
  } else if (L <= 256) {
    /* short chains: 2 lanes, chunks of >= 12 steps within one wave, then
     * lanes up to 4 */
    G = std::min (2, gmax);
    while (P < 64 && (L / (P * 2)) >= 12 && chains * G * P * 2 <= wave)
      P *= 2;
    while (G < 4 && G < gmax && chains * G * 2 * P <= wave)
      G *= 2;
    /* 2 lanes x 16 chunks of ~12 steps: 4 lanes x 8 chunks are as many
     * threads and ran faster on an H200 (fp16, Vim-S 224 batch 1 0.751 ->
     * 0.735 ms, Vim-Ti batch 2 0.662 -> 0.645); Vim-Ti batch 1 keeps its
     * 4 x 16 (4 x 8 would fill half a wave) */
    if (P >= 16 && G < 4 && G < gmax) {
      G *= 2;
      P /= 2;
    }
  } else {
    /* 257-4095 steps: 2 lanes and chunks of >= 40 steps up to 3/4 wave,
     * then lanes up to 8 while under half a wave. The best plans measured
     * on an H200 (fp16) hold about 49k threads with 2 lanes; the older
     * plan (plan_v3) went to a whole wave with 4: Vim-Ti 512 batch 8 4 x 8
     * -> 2 x 4 3.91 -> 3.10 ms, Vim-S 512 batch 1 4 x 8 -> 2 x 16 1.52 ->
     * 1.42, Vim-B 512 batch 1 4 x 4 -> 2 x 8 4.06 -> 2.60, Vim-Ti stride 8
     * batch 8 4 x 2 -> 2 x 4 2.86 -> 2.40, Vim-S 768 batch 1 4 x 8 -> 2 x
     * 16 2.71 -> 2.38, Vim-Ti stride 8 batch 1 8 x 8 -> 4 x 16 (chunks of
     * 46 steps) 1.01 -> 0.79; Vim-Ti 512 batch 1 keeps 4 x 16
     * (bench/RESULTS.md, fourteenth session) */
    G = std::min (2, gmax);
    while (P < 64 && (L / (P * 2)) >= 40 && chains * G * P * 2 <= wave * 3 / 4)
      P *= 2;
    while (G < 8 && G < gmax && chains * G * P < wave / 2)
      G *= 2;
  }
  *lanes_out = G;
  *chunks_out = P;
}

extern "C" size_t
vimk_scan_workspace_bytes (int nseq, int E, int N, int chunks)
{
  if (chunks <= 1)
    return 0;
  return (size_t) nseq * 2 * chunks * E * (N + 1) * sizeof (float) + 256;
}

/* Whether vimk_scan takes version v (5 or 6) for these arguments, before
 * checking that it fits: where asked for (VimkScanArgs.version or
 * VIM_CUDA_SCAN_VERSION) or, where nothing is asked for, where its switch
 * (env: 0, 1, -1 unset) says 1 or, unset, where its rule holds */
static bool
scan_takes (const VimkScanArgs *a, int v, int env, bool rule)
{
  const int ver = a->version >= 1 && a->version <= 6 ? a->version : scan_version ();
  const bool own_choice = ver == 0 && a->lanes <= 0 && a->chunks <= 0
      && (env == 1 || (env < 0 && rule));
  return ver == v || own_choice;
}

/* V5's blocks (8 chains each) for these arguments */
static int64_t
whole_blocks (const VimkScanArgs *a)
{
  return (int64_t) a->nseq * 2 * a->E / 8;
}

/* fewer V5 blocks than SMs, chains of at most 256 steps (whole_groups) */
static bool
whole_few_short (const VimkScanArgs *a, int Ls)
{
  return whole_blocks (a) < sm_count () && Ls <= 256;
}

/* VIM_CUDA_SCAN_WHOLE_CHUNKS=1|2|4: V5's chunk groups wherever V5 runs (A/B
 * timing); unset: -1, the rule in whole_groups */
static int scan_whole_chunks_env ()
{
  static const int v = [] {
    const char *e = getenv ("VIM_CUDA_SCAN_WHOLE_CHUNKS");
    return e != nullptr && (e[0] == '1' || e[0] == '2' || e[0] == '4') && e[1] == '\0'
        ? e[0] - '0' : -1;
  } ();
  return v;
}

/* Chunk groups in a V5 block (scan_whole.cu, scan_whole_chunked): 1, 2 or
 * 4 where asked for (version 5 with chunks 1, 2 or 4, the tests; the switch),
 * else 4 where V5's blocks are fewer than the SMs and chains short (one
 * warp per scheduler: each step's latency is bare), else 1. Measured on an
 * H200 (fp16, bench/RESULTS.md, twenty-sixth session): Vim-Ti 224 batch 1
 * -6.6% against V4's two launches (2 groups -3.9%); with one block per SM
 * or more +9% to +27% (Vim-Ti batch 2-4, Vim-S batch 1-2). Chains up to
 * 256 steps only: longer ones were not measured. */
static int
whole_groups (const VimkScanArgs *a, int Ls)
{
  if (a->version == 5 && (a->chunks == 1 || a->chunks == 2 || a->chunks == 4))
    return a->chunks;
  const int env = scan_whole_chunks_env ();
  if (env > 0)
    return env;
  return whole_few_short (a, Ls) ? 4 : 1;
}

/* Whether vimk_scan runs V5 (scan_whole.cu) for these arguments, chains of
 * Ls steps: where asked for (version 5, VIM_CUDA_SCAN_WHOLE=1) and, where
 * nothing else is asked for, with one to three of its blocks of 8 chains
 * per SM, or fewer than one and chains of at most 256 steps, and dt_rank
 * <= 32. Measured on an H200 against V4's plans
 * (bench/RESULTS.md, eighteenth session, fp16): faster with 1.5-3 blocks
 * per SM (Vim-Ti 224 batch 2 -7%, batch 4 -11%, Vim-S batch 1 -1%, batch 2
 * -6%), the same below one block per SM (Vim-Ti batch 1: one warp per
 * scheduler leaves each step's latency bare), slower above three (Vim-Ti
 * batch 8 +3.5%, Vim-S batch 4 +5%, where V4's one lane per chain does
 * less work a state-step) and for Vim-B (rows of 48 dt_proj columns,
 * batch 1 +10%). Below one block per SM it takes chunk groups
 * (whole_groups), which took Vim-Ti batch 1 6.6% below V4. */
static bool
scan_uses_whole (VimkDType dt, VimkDType gdt, const VimkScanArgs *a, int Ls)
{
  const int64_t blocks = whole_blocks (a), sms = sm_count ();
  const bool rule = a->R <= 32
      && ((blocks >= sms && blocks <= 3 * sms) || whole_few_short (a, Ls));
  return scan_takes (a, 5, scan_whole_env (), rule)
      && scan::whole_fits (a, dt, gdt, Ls, whole_groups (a, Ls));
}

/* Whether vimk_scan runs V6 (scan_stream.cu) for these arguments: where
 * asked for (version 6, VIM_CUDA_SCAN_STREAM=1) and, where nothing else is
 * asked for, with two to three and a half of its blocks of 16 chains per
 * SM, dt_rank <= 32 and no scan on another stream beside it. Measured on
 * an H200 against the planner's V4 and V5 (bench/RESULTS.md, nineteenth
 * session, fp16): faster with 2.2-2.9
 * blocks per SM (Vim-Ti 224 batch 6 -15%, batch 8 -13.5%, bf16 -12.5%,
 * fp32 -6%; Vim-Ti 512 batch 8 -13%; Vim-S 224 and 512 batch 4 -15% and
 * -17%), where V4 chunks chains and runs their steps twice; slower with
 * 4.4-5.8 (Vim-Ti batch 12 +2%, 16 +8%, Vim-S batch 8 +6%), where V4 needs
 * fewer chunks, and mostly with fewer than two (Vim-Ti batch 4 +4% against
 * V5, Vim-Ti 512 batch 4 +15%, Vim-Ti 1248 px passes of 4 images +1.5%),
 * where a step's latency is exposed. Beside another pass's scan (two
 * passes of 4 images side by side at 1024-1248 px) it lost even where its
 * own blocks are 2.9 per SM: Vim-S 1024 and 1248 px batch 8 +7%. */
static bool
scan_uses_stream (VimkDType dt, VimkDType gdt, const VimkScanArgs *a)
{
  const int64_t blocks = (int64_t) a->nseq * 2 * a->E / 16, sms = sm_count ();
  const bool rule = a->R <= 32 && a->concurrent <= 0 && blocks >= 2 * sms && 2 * blocks <= 7 * sms;
  return scan_takes (a, 6, scan_stream_env (), rule) && scan::stream_fits (a, dt, gdt);
}

static VimkDType
gate_type (VimkDType dt, const VimkScanArgs *a)
{
  return (VimkDType) (a->gate_dtype < 0 ? dt : a->gate_dtype);
}

static int
scan_steps (const VimkScanArgs *a)
{
  return a->steps > 0 && a->steps < a->L ? a->steps : a->L;
}

/* arguments vimk_scan launches anything for */
static bool
scan_runs (const VimkScanArgs *a)
{
  return a->nseq > 0 && a->L > 0 && vimk_scan_supported (a->N, a->R);
}

/* in vimk_scan's order: V6 before V5 */
extern "C" int
vimk_scan_whole (VimkDType dt, const VimkScanArgs *a)
{
  const VimkDType gdt = gate_type (dt, a);
  return scan_runs (a) && !scan_uses_stream (dt, gdt, a)
      && scan_uses_whole (dt, gdt, a, scan_steps (a));
}

extern "C" int
vimk_scan_stream (VimkDType dt, const VimkScanArgs *a)
{
  return scan_runs (a) && scan_uses_stream (dt, gate_type (dt, a), a);
}

/* What vimk_scan runs through V2-V4 (no V5 or V6): lanes G x chunks P of
 * Tc steps, kernel version, polynomial exponentials kp, dt_proj on the
 * tensor cores, the directions summed */
struct LanePlan {
  int G, P, Tc, ver, kp;
  bool mma, sum_dirs;
};

/* VIM_CUDA_SCAN_SUM=0|1: VimkScanArgs.sum_directions = 1 never / wherever
 * the plan allows (A/B timing); unset: the rule in scan_sums */
static int scan_sum_env ()
{
  static const int v = env_switch ("VIM_CUDA_SCAN_SUM");
  return v;
}

/* Whether a one- or two-lane, one-chunk V4 plan sums the directions (SUMD in
 * scan_v4.cu): asked for (sum_directions 2: wherever it can, 1: by the
 * switch or the rule) and whole chains. Summing halves out_proj's K and
 * input, but a block then runs twice the steps, there are half as many
 * blocks, and the backward pass reads the forward outputs. The rule, from
 * an H200 (fp16, bench/RESULTS.md, twenty-fourth session): E >= 768 and
 * blocks x (1 + scans beside it) x E >= 4 x SMs x 1536. Vim-B 224 batch 64
 * (768 blocks) -6.1%, batch 256 -5.1%; Vim-S batch 256 -0.9%, batch 512
 * -2.6%; below it, Vim-S batch 64 +0.7%; Vim-Ti (E = 384: its out_proj is
 * mostly the fp32 residual's traffic) lost everywhere: batch 64 +31%,
 * 256 +4.4%, 512 +1.1%. */
static bool
scan_sums (VimkDType dt, VimkDType gdt, const VimkScanArgs *a, const LanePlan &p, int Ls)
{
  if (a->sum_directions <= 0 || p.G > 2 || p.P != 1 || Ls != a->L || p.ver != 4
      || !scan::v4_fits (a, dt, gdt, p.G)
      || scan::v4_kernel (false, dt, gdt, a->N, p.G, a->r_pad / 4, p.kp, p.mma, true) == nullptr)
    return false;
  if (a->sum_directions >= 2)
    return true;
  const int env = scan_sum_env ();
  if (env >= 0)
    return env == 1;
  const int64_t blocks
      = (int64_t) a->nseq * cdiv (a->E, kThreads) * (1 + std::max (0, a->concurrent));
  return a->E >= 768 && blocks * a->E >= (int64_t) 4 * sm_count () * 1536;
}

static LanePlan
plan_lanes (VimkDType dt, VimkDType gdt, const VimkScanArgs *a, int Ls, size_t workspace_bytes)
{
  LanePlan p = {};
  vimk_scan_plan (a->nseq, Ls, a->E, a->N, a->R, a->lanes, a->chunks, &p.G, &p.P);
  if (Ls < a->L && p.P > 1
      && vimk_scan_workspace_bytes (a->nseq, a->E, a->N, p.P) > workspace_bytes)
    vimk_scan_plan (a->nseq, a->L, a->E, a->N, a->R, a->lanes, a->chunks, &p.G, &p.P);
  const int G = p.G;
  int kp = a->poly_exps;
  if (kp < 0 || G != 1 || a->N != 16)
    kp = (G == 1 && a->N == 16) ? (kp < 0 ? 0 : kp) : 0;
  const int planned = p.P;
  p.Tc = p.P = 0;                             /* vimk_scan refuses P = 0 */
  if (G >= 1 && G <= a->N && planned >= 1 && planned * 2 <= 65535) {
    const int tt = tile_steps (G);
    /* chunks k < P cover steps [k Tc, min (L, (k + 1) Tc)), so at least Ls */
    p.Tc = (int) cdiv (cdiv (Ls, planned), tt) * tt;
    p.P = (int) cdiv (Ls, p.Tc);              /* no empty chunks */
  }
  /* V2-V4 take 32-bit offsets within a sequence */
  int ver = a->version >= 1 && a->version <= 4 ? a->version : scan_version ();
  if (ver == 0 || ver >= 5)
    ver = 4;                                  /* V5/V6 did not fit: the default */
  if ((int64_t) a->L * std::max (std::max (a->ld_xy, a->ld_gate), (int64_t) a->ldd)
      >= ((int64_t) 1 << 31))
    ver = 1;
  if (ver >= 3 && a->ldd > 128)
    ver = 2;                                  /* V3 and V4 stage rows of <= 32 float4 */
  if (ver == 4 && scan::v4_fits (a, dt, gdt, G)) {
    /* V4's own choice: 2 of 16 exponentials on the FMA pipes where one lane
     * per chain with a short dt_proj row leaves the special-function unit
     * the bound (16-bit, Vim-Ti: 3.5% faster at batch 128-256 on an H200;
     * Vim-S and Vim-B, whose longer rows make the kernel issue-bound,
     * 3% slower; bench/RESULTS.md) */
    if (a->poly_exps < 0 && G == 1 && a->N == 16 && a->r_pad <= 16 && dt != VIMK_F32)
      kp = 2;
    /* one lane per chain, 16-bit, dt_rank > 16: dt_proj on the tensor
     * cores (scan_v4.cu). On an H200, fp16: Vim-B 224 batch 64 14.95 ->
     * 13.49 ms, Vim-S batch 256 21.76 -> 21.26, batch 64 5.78 -> 5.55; with
     * Vim-Ti's rank of 12 the FMAs are fewer than the product's overhead
     * (batch 256 9.73 -> 9.93, so it keeps them; bench/RESULTS.md,
     * fourteenth session) */
    p.mma = G == 1 && a->N == 16 && dt != VIMK_F32 && a->R > 16 && scan_dt_mma_env ();
  }
  p.ver = ver;
  p.kp = kp;
  p.sum_dirs = scan_sums (dt, gdt, a, p, Ls);   /* needs P == 1 */
  return p;
}

extern "C" int
vimk_scan_sums_directions (VimkDType dt, const VimkScanArgs *a)
{
  const VimkDType gdt = gate_type (dt, a);
  if (!scan_runs (a) || scan_uses_stream (dt, gdt, a)
      || scan_uses_whole (dt, gdt, a, scan_steps (a)))
    return 0;
  return plan_lanes (dt, gdt, a, scan_steps (a), 0).sum_dirs;
}

extern "C" cudaError_t
vimk_scan (VimkDType dt, const VimkScanArgs *a, void *workspace, size_t workspace_bytes,
    cudaStream_t stream)
{
  if (a->nseq <= 0 || a->L <= 0)
    return cudaSuccess;
  if (!vimk_scan_supported (a->N, a->R) || a->r_pad < a->R || (a->r_pad & 3)
      || (a->ldd & 3) || (a->b_off & 3) || a->nseq > 65535)
    return cudaErrorInvalidValue;
  /* steps: the chains end after Ls tokens (the classifier's last layer);
   * planned as chains of Ls unless that plan wants more workspace than the
   * caller sized for L */
  const int Ls = scan_steps (a);
  const VimkDType gdt = gate_type (dt, a);
  if (scan_uses_stream (dt, gdt, a))
    return scan::stream_launch (a, dt, gdt, Ls, stream);
  if (scan_uses_whole (dt, gdt, a, Ls))
    return scan::whole_launch (a, dt, gdt, Ls, whole_groups (a, Ls), stream);
  const LanePlan lp = plan_lanes (dt, gdt, a, Ls, workspace_bytes);
  const int G = lp.G;
  int P = lp.P;
  if (G < 1 || G > a->N || P < 1 || P * 2 > 65535)
    return cudaErrorInvalidValue;
  int kp = lp.kp;
  int ver = lp.ver;
  const bool mma = lp.mma, sum_dirs = lp.sum_dirs;
  const int tt = tile_steps (G);
  ScanParams sp;
  sp.a = *a;
  sp.P = P;
  sp.Tc = lp.Tc;
  sp.summ = nullptr;
  sp.summS = nullptr;
  if (P > 1) {
    size_t need = vimk_scan_workspace_bytes (a->nseq, a->E, a->N, P);
    if (workspace == nullptr || workspace_bytes < need)
      return cudaErrorInvalidValue;
    sp.summ = (float *) workspace;
    sp.summS = sp.summ + (size_t) a->nseq * 2 * P * a->E * a->N;
  }
  ScanFn main_fn = nullptr, sum_fn = nullptr;
  size_t smem = 0;
  if (ver == 4 && scan::v4_fits (a, dt, gdt, G)) {
    main_fn = scan::v4_kernel (false, dt, gdt, a->N, G, a->r_pad / 4, kp, mma, sum_dirs);
    sum_fn = P > 1 ? scan::v4_kernel (true, dt, gdt, a->N, G, a->r_pad / 4, kp, mma, false)
        : nullptr;
    smem = scan::v4_smem_bytes (dt, gdt, G, a->r_pad / 4, a->N, mma, sum_dirs);
  }
  if (main_fn == nullptr || (P > 1 && sum_fn == nullptr)) {
    if (sum_dirs)
      return cudaErrorInvalidValue;           /* plan_lanes checked that the kernel exists */
    ver = std::min (ver, 3);                  /* V4 has no kernel for this: V3 */
    if (a->poly_exps < 0)
      kp = 0;
    main_fn = pick<false> (dt, gdt, a->N, G, a->r_pad / 4, kp, ver);
    sum_fn = P > 1 ? pick<true> (dt, gdt, a->N, G, a->r_pad / 4, kp, ver) : nullptr;
    smem = (size_t) (kThreads / 32) * 2 * tt * a->ldd * sizeof (float);
  }
  if (main_fn == nullptr || (P > 1 && sum_fn == nullptr))
    return cudaErrorInvalidValue;
  const int cpb = kThreads / G;
  /* Chunked one-lane plans (Vim-Ti at 1024-1248 px) run at most 4 blocks
   * per SM instead of the 5 their registers allow, by asking for more
   * shared memory than they use: the summary and main passes then leave
   * room beside them for the other pass's kernels (two passes run side by
   * side on two streams at these sizes). On an H200, fp16: Vim-Ti 1024
   * batch 8 10.45 -> 10.03 ms, 1248 batch 8 14.67 -> 14.37 (bf16 15.46 ->
   * 15.21), batch 16 29.30 -> 28.71; unchanged where one pass runs alone
   * and for Vim-S (4 blocks already); unchunked, Vim-Ti 224 batch 256 lost
   * 0.8%, and a cap of 3 lost everywhere (bench/RESULTS.md, thirteenth
   * session) */
  int cap = scan_blocks_cap_env ();
  if (cap < 0)
    cap = G == 1 && P > 1 ? 4 : 0;
  if (cap > 0) {
    const int per_sm = device_attribute (cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0);
    smem = std::max (smem, (size_t) std::max (0, per_sm / cap - 1024 - 128));
  }
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute ((const void *) main_fn,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (e == cudaSuccess && sum_fn)
      e = cudaFuncSetAttribute ((const void *) sum_fn,
          cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (e != cudaSuccess)
      return e;
  }
  /* summing the directions: one block runs both of its channels' chains */
  dim3 grid ((unsigned) cdiv (a->E, cpb), (unsigned) (sum_dirs ? 1 : 2 * P), (unsigned) a->nseq);
  if (cap == 0 && layer_carveout () >= 0) {
    const int c = fitting_carveout ((const void *) main_fn, smem);
    prefer_carveout ((const void *) main_fn, c);
    if (sum_fn)
      prefer_carveout ((const void *) sum_fn, c);
  }
  if (P > 1) {
    sum_fn<<<grid, kThreads, smem, stream>>> (sp);
    cudaError_t e = cudaGetLastError ();
    if (e != cudaSuccess)
      return e;
  }
  main_fn<<<grid, kThreads, smem, stream>>> (sp);
  return cudaGetLastError ();
}
