/* Shared device helpers for the gst-vim kernels. */
#ifndef VIMK_COMMON_CUH
#define VIMK_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdlib.h>

#include "vimk/vimk.h"

namespace vimk {

template <typename T> struct Cvt;
template <> struct Cvt<float> {
  static __device__ __forceinline__ float load (float v) { return v; }
  static __device__ __forceinline__ float store (float v) { return v; }
};
template <> struct Cvt<__half> {
  static __device__ __forceinline__ float load (__half v) { return __half2float (v); }
  static __device__ __forceinline__ __half store (float v) { return __float2half_rn (v); }
};
template <> struct Cvt<__nv_bfloat16> {
  static __device__ __forceinline__ float load (__nv_bfloat16 v) { return __bfloat162float (v); }
  static __device__ __forceinline__ __nv_bfloat16 store (float v) { return __float2bfloat16_rn (v); }
};

/* a pair of 16-bit values <-> float2 */
template <typename T> struct Two;
template <> struct Two<__half> {
  typedef __half2 type;
  static __device__ __forceinline__ float2 get (type h) { return __half22float2 (h); }
  static __device__ __forceinline__ type make (float a, float b) { return __floats2half2_rn (a, b); }
};
template <> struct Two<__nv_bfloat16> {
  typedef __nv_bfloat162 type;
  static __device__ __forceinline__ float2 get (type h) { return __bfloat1622float2 (h); }
  static __device__ __forceinline__ type make (float a, float b) { return __floats2bfloat162_rn (a, b); }
};

template <typename T>
__device__ __forceinline__ float ld (const T *p) { return Cvt<T>::load (*p); }
template <typename T>
__device__ __forceinline__ void st (T *p, float v) { *p = Cvt<T>::store (v); }

/* 2^x on the special-function unit (relative error about 2 ulp). */
__device__ __forceinline__ float ex2_mufu (float x)
{
  float y;
  asm ("ex2.approx.ftz.f32 %0, %1;" : "=f" (y) : "f" (x));
  return y;
}

/* 1/x on the special-function unit. */
__device__ __forceinline__ float rcp_mufu (float x)
{
  float y;
  asm ("rcp.approx.ftz.f32 %0, %1;" : "=f" (y) : "f" (x));
  return y;
}

/* 2^x for x <= 0 on the FMA/ALU pipes only: round to nearest integer j with
 * the 1.5 * 2^23 trick, a degree-6 polynomial on f = x - j in [-0.5, 0.5]
 * (relative error about 1.5e-7), and j added to the exponent bits.
 * Inputs below -125 give 0 (2^-125 is far below anything that matters). */
__device__ __forceinline__ float ex2_poly (float x)
{
  x = fmaxf (x, -125.f);
  const float magic = 12582912.f;      /* 1.5 * 2^23 */
  float t = x + magic;
  float j = t - magic;
  float f = x - j;
  /* 2^f = e^(f ln2), Taylor coefficients ln2^k / k! */
  float p = 1.5403530393381606e-4f;
  p = fmaf (p, f, 1.3333558146428443e-3f);
  p = fmaf (p, f, 9.6181291076284772e-3f);
  p = fmaf (p, f, 5.5504108664821580e-2f);
  p = fmaf (p, f, 2.4022650695910071e-1f);
  p = fmaf (p, f, 6.9314718055994531e-1f);
  p = fmaf (p, f, 1.0f);
  int e = __float_as_int (t) << 23;    /* j sits in the low mantissa bits of t */
  float r = __int_as_float (__float_as_int (p) + e);
  return x <= -125.f ? 0.f : r;
}

/* log2(x) on the special-function unit. */
__device__ __forceinline__ float lg2_mufu (float x)
{
  float y;
  asm ("lg2.approx.ftz.f32 %0, %1;" : "=f" (y) : "f" (x));
  return y;
}

/* softplus with threshold 20 in 6 instructions, two of them on the
 * special-function unit: max(v, 0) + ln2 * log2(1 + exp(-|v|)). Rounding
 * 1 + e loses the relative accuracy of log1p for very negative v (1e-3 at
 * v = -10, 0 below -16.6, where softplus < 6e-8): for the 16-bit precisions,
 * whose tolerance is 2e-2; fp32 keeps softplus_f. */
__device__ __forceinline__ float softplus_lg2 (float v)
{
  const float e = ex2_mufu (-fabsf (v) * 1.4426950408889634f);
  /* no threshold select: above 16.6, 1 + e rounds to 1 and this is v */
  return fmaf (lg2_mufu (1.f + e), 0.6931471805599453f, fmaxf (v, 0.f));
}

/* silu(v) = v / (1 + e^-v), accurate to a few ulp. */
__device__ __forceinline__ float silu_f (float v)
{
  return v * rcp_mufu (1.f + ex2_mufu (-v * 1.4426950408889634f));
}

/* silu(v) = v/2 (1 + tanh(v/2)) with one special-function operation
 * (tanh.approx, relative error about 2^-11) instead of silu_f's two: the
 * conv's two SiLUs per token-channel and the scan's gate are special-
 * function-unit time in kernels bound by that unit. The 16-bit precisions
 * use it (their outputs round to 2^-11 or coarser); fp32 keeps silu_f. */
__device__ __forceinline__ float silu_tanh (float v)
{
  const float h = 0.5f * v;
  float t;
  asm ("tanh.approx.f32 %0, %1;" : "=f" (t) : "f" (h));
  return fmaf (h, t, h);
}

/* the SiLU for activations of type T */
template <typename T>
__device__ __forceinline__ float silu_act (float v)
{
  return sizeof (T) == 2 ? silu_tanh (v) : silu_f (v);
}

/* softplus with threshold 20: v > 20 ? v : log1p(exp(v)), accurate to a few
 * ulp, as max(v, 0) + log1p(e) with e = exp(-|v|) in (0, 1] and
 * log1p(e) = 2 atanh(s), s = e / (2 + e) <= 1/3. */
__device__ __forceinline__ float softplus_f (float v)
{
  float e = ex2_mufu (-fabsf (v) * 1.4426950408889634f);
  float s = e * rcp_mufu (2.f + e);
  float s2 = s * s;
  float q = fmaf (s2, 1.f / 13.f, 1.f / 11.f);
  q = fmaf (q, s2, 1.f / 9.f);
  q = fmaf (q, s2, 1.f / 7.f);
  q = fmaf (q, s2, 1.f / 5.f);
  q = fmaf (q, s2, 1.f / 3.f);
  q = fmaf (q, s2, 1.f);
  const float r = fmaxf (v, 0.f) + 2.f * s * q;
  return v > 20.f ? v : r;   /* a select, not a branch: the scan's hot loop */
}

__host__ __device__ inline int64_t cdiv (int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The L1 / shared-memory split (percent of an SM's largest shared memory)
 * that the layer kernels with little shared memory of their own (rmsnorm,
 * conv) ask for; the V1-V4 scan, where its blocks per SM are not capped,
 * asks for the smallest split that holds its blocks (scan.cu,
 * fitting_carveout), which for Vim-Ti and Vim-S at 224 px is the same
 * configuration. Why: two passes run side by side at large batches, and an
 * SM holds blocks of two kernels only at one split. Left to the driver, a
 * kernel without shared memory gets the largest L1 and the scan another
 * split, so the other pass's conv and rmsnorm blocks wait for SMs that the
 * scan has left. On an H200 (fp16 unless said, median of
 * three rounds; bench/RESULTS.md, twenty-first session): Vim-Ti 224 batch
 * 256 -0.4%, bf16 -1.9%, Vim-S 256 -1.3%, Vim-B 256 -1.3%, Vim-Ti 512 batch
 * 32 -1.6%, 1248 batch 8 -0.5%, batches 1-64 unchanged.
 * VIM_CUDA_LAYER_CARVEOUT=-1 leaves every split to the driver, K asks for K. */
inline int layer_carveout ()
{
  static const int v = [] {
    const char *e = getenv ("VIM_CUDA_LAYER_CARVEOUT");
    const int x = e != nullptr && e[0] != '\0' ? atoi (e) : 50;
    return x < -1 || x > 100 ? 50 : x;
  } ();
  return v;
}

/* Ask for carveout percent c (< 0: nothing) for fn: a hint, so a refusal is
 * cleared and the launch goes ahead with the driver's split */
inline void prefer_carveout (const void *fn, int c)
{
  if (c >= 0 && cudaFuncSetAttribute (fn, cudaFuncAttributePreferredSharedMemoryCarveout, c)
      != cudaSuccess)
    (void) cudaGetLastError ();
}

} // namespace vimk

#define VIMK_DISPATCH_DTYPE(dt, T, ...) \
  do { \
    switch (dt) { \
      case VIMK_F32: { typedef float T; __VA_ARGS__; } break; \
      case VIMK_F16: { typedef __half T; __VA_ARGS__; } break; \
      case VIMK_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break; \
      default: return cudaErrorInvalidValue; \
    } \
  } while (0)

#endif
