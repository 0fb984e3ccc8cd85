/* Bidirectional selective scan (Mamba-1, bimamba v2) with dt_proj, softplus,
 * the D skip and the SiLU(z) gate fused in.
 *
 * Work split: one chain = (sequence, direction, channel) runs over the L
 * tokens in order; its N states are spread over G consecutive lanes
 * (NS = N / G states per lane). G = 1 is cheapest per state-step; larger G
 * buys parallelism when there are few chains (small batches).
 *
 * Per block of G steps, lane g computes delta and delta*u for step sb + g
 * (dt_proj dot product + softplus) and hands them to the other lanes by
 * shuffles; every lane then advances its NS states over the G steps,
 * keeping one partial output per step, and a transposing butterfly leaves
 * lane g with the full sum over the N states for step sb + g, which it
 * finishes (D skip, gate) and writes in place of its input u.
 *
 * The exponential exp(delta * A) is the bottleneck at large batch (one per
 * token, channel, state and direction on the special-function unit, 16 per
 * SM per clock). KP of a lane's NS exponentials are computed with a
 * polynomial on the FMA pipes instead, which balances the two units.
 */
#include "common.cuh"

using namespace vimk;

namespace {

template <typename T, int N, int G, int RV, int KP>
__global__ void __launch_bounds__ (128)
scan_kernel (VimkScanArgs a)
{
  constexpr int NS = N / G;
  const int tid = threadIdx.x;
  const int g = tid % G;
  const int cpb = blockDim.x / G;               /* chains per block */
  const int c_raw = blockIdx.x * cpb + tid / G;
  const bool active = c_raw < a.E;
  const int c = active ? c_raw : a.E - 1;
  const int dir = blockIdx.y;
  const int seq = blockIdx.z;
  const int L = a.L, E = a.E;
  const int64_t rows = (int64_t) a.nseq * L;
  const int64_t seq_base = (int64_t) seq * L;
  const int rv = a.r_pad / 4;

  const float *dbl = a.dbl + (int64_t) dir * rows * a.ldd;
  const T *gate = (const T *) a.gate;
  T *xy = (T *) a.xy;
  const int64_t col = (int64_t) dir * E + c;

  float A2[NS], h[NS];
#pragma unroll
  for (int i = 0; i < NS; i++) {
    A2[i] = a.A2[((int64_t) dir * E + c) * N + g * NS + i];
    h[i] = 0.f;
  }
  float4 wd[RV];
  const float4 *wrow = (const float4 *) (a.Wdt + ((int64_t) dir * E + c) * a.r_pad);
#pragma unroll
  for (int i = 0; i < RV; i++)
    wd[i] = i < rv ? wrow[i] : make_float4 (0.f, 0.f, 0.f, 0.f);
  const float bdt = a.bdt[dir * E + c];
  const float Dv = a.Dv[dir * E + c];

  for (int sb = 0; sb < L; sb += G) {
    /* this lane's step: delta, delta * u */
    const int s = sb + g;
    const bool valid = s < L;
    const int sc = valid ? s : L - 1;
    const int64_t row = seq_base + (dir ? L - 1 - sc : sc);
    float u = ld<T> (xy + row * a.ld_xy + col);
    const float4 *dt4 = (const float4 *) (dbl + row * a.ldd);
    float acc0 = bdt, acc1 = 0.f;
#pragma unroll
    for (int i = 0; i < RV; i++) {
      if (i < rv) {
        float4 v = __ldg (dt4 + i);
        acc0 = fmaf (v.x, wd[i].x, acc0);
        acc1 = fmaf (v.y, wd[i].y, acc1);
        acc0 = fmaf (v.z, wd[i].z, acc0);
        acc1 = fmaf (v.w, wd[i].w, acc1);
      }
    }
    float delta = valid ? softplus_f (acc0 + acc1) : 0.f;
    float du = delta * u;

    float p[G];
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
      const int sj = min (sb + j, L - 1);
      const int64_t rowj = seq_base + (dir ? L - 1 - sj : sj);
      const float *bc = dbl + rowj * a.ldd + a.b_off + g * NS;
      float Bv[NS], Cv[NS];
      if constexpr (NS % 4 == 0) {
#pragma unroll
        for (int i = 0; i < NS; i += 4) {
          float4 b4 = __ldg ((const float4 *) (bc + i));
          float4 c4 = __ldg ((const float4 *) (bc + N + i));
          Bv[i] = b4.x; Bv[i + 1] = b4.y; Bv[i + 2] = b4.z; Bv[i + 3] = b4.w;
          Cv[i] = c4.x; Cv[i + 1] = c4.y; Cv[i + 2] = c4.z; Cv[i + 3] = c4.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < NS; i++) {
          Bv[i] = __ldg (bc + i);
          Cv[i] = __ldg (bc + N + i);
        }
      }
      float pa = 0.f, pb = 0.f;
#pragma unroll
      for (int i = 0; i < NS; i++) {
        float x = dj * A2[i];
        float dA = i < KP ? ex2_poly (x) : ex2_mufu (x);
        h[i] = fmaf (dA, h[i], duj * Bv[i]);
        if (i & 1)
          pb = fmaf (Cv[i], h[i], pb);
        else
          pa = fmaf (Cv[i], h[i], pa);
      }
      p[j] = pa + pb;
    }

    /* transposing butterfly: lane g ends with sum over lanes of p[g] */
#pragma unroll
    for (int half = G / 2; half >= 1; half /= 2) {
      const bool upper = (g & half) != 0;
#pragma unroll
      for (int i = 0; i < half; i++) {
        float send = upper ? p[i] : p[i + half];
        float keep = upper ? p[i + half] : p[i];
        p[i] = keep + __shfl_xor_sync (0xffffffffu, send, half, G);
      }
    }

    if (valid && active) {
      float y = (p[0] + Dv * u) * ld<T> (gate + row * a.ld_gate + c);
      st (xy + row * a.ld_xy + col, y);
    }
  }
}

typedef void (*ScanFn) (VimkScanArgs);

template <typename T, int N, int G, int RV>
ScanFn pick_kp (int kp)
{
  if constexpr (G == 1 && N == 16) {
    switch (kp) {
      case 0: return scan_kernel<T, N, G, RV, 0>;
      case 2: return scan_kernel<T, N, G, RV, 2>;
      case 3: return scan_kernel<T, N, G, RV, 3>;
      case 4: return scan_kernel<T, N, G, RV, 4>;
      default: return nullptr;
    }
  } else {
    return kp == 0 ? scan_kernel<T, N, G, RV, 0> : nullptr;
  }
}

template <typename T, int N, int G>
ScanFn pick_rv (int rv, int kp)
{
  if (rv <= 4)
    return pick_kp<T, N, G, 4> (kp);
  if constexpr (N == 16) {
    if (rv <= 8)
      return pick_kp<T, N, G, 8> (kp);
    if (rv <= 16)
      return pick_kp<T, N, G, 16> (kp);
  }
  return nullptr;
}

template <typename T, int N>
ScanFn pick_g (int G, int rv, int kp)
{
  switch (G) {
    case 1: return pick_rv<T, N, 1> (rv, kp);
    case 2: return N >= 2 ? pick_rv<T, N, 2> (rv, kp) : nullptr;
    case 4: return pick_rv<T, N, 4> (rv, kp);
    case 8: return pick_rv<T, N, 8> (rv, kp);
    case 16: if constexpr (N >= 16) return pick_rv<T, N, 16> (rv, kp); else return nullptr;
    default: return nullptr;
  }
}

template <typename T>
ScanFn pick (int N, int G, int rv, int kp)
{
  switch (N) {
    case 8: return pick_g<T, 8> (G, rv, kp);
    case 16: return pick_g<T, 16> (G, rv, kp);
    default: return nullptr;
  }
}

int sm_count ()
{
  int dev = 0, n = 0;
  if (cudaGetDevice (&dev) != cudaSuccess
      || cudaDeviceGetAttribute (&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 132;
  return n;
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

extern "C" cudaError_t
vimk_scan (VimkDType dt, const VimkScanArgs *a, cudaStream_t stream)
{
  if (a->nseq <= 0 || a->L <= 0)
    return cudaSuccess;
  if (!vimk_scan_supported (a->N, a->R) || a->r_pad < a->R || (a->r_pad & 3)
      || (a->ldd & 3) || (a->b_off & 3) || a->nseq > 65535)
    return cudaErrorInvalidValue;
  int G = a->lanes;
  if (G == 0) {
    /* enough threads for about 16 warps per SM, preferring G = 1 */
    int64_t chains = (int64_t) a->nseq * 2 * a->E;
    int64_t target = (int64_t) sm_count () * 512;
    G = 1;
    while (G < a->N && G < 16 && chains * G < target)
      G *= 2;
  }
  int kp = a->poly_exps;
  if (kp < 0)
    kp = (G == 1 && a->N == 16) ? 3 : 0;
  ScanFn fn = nullptr;
  VIMK_DISPATCH_DTYPE (dt, T, fn = pick<T> (a->N, G, a->r_pad / 4, kp));
  if (fn == nullptr)
    return cudaErrorInvalidValue;
  const int threads = 128;
  const int cpb = threads / G;
  dim3 grid ((unsigned) cdiv (a->E, cpb), 2, (unsigned) a->nseq);
  fn<<<grid, threads, 0, stream>>> (*a);
  return cudaGetLastError ();
}
