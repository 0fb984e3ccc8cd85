/* Helpers shared by the CUDA tests. */
#ifndef VIM_CUDA_TEST_UTIL_H
#define VIM_CUDA_TEST_UTIL_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "half.h"   /* engine/src: the engine's own fp16/bf16 conversions */

#define SKIP_RC 77

static int test_failures;

#define CHECK(cond, ...) \
  do { \
    if (!(cond)) { \
      test_failures++; \
      fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf (stderr, __VA_ARGS__); \
      fprintf (stderr, "\n"); \
    } \
  } while (0)

/* a CUDA runtime call that must succeed: otherwise the test ends with its reason */
#define CU(x) \
  do { \
    cudaError_t e_ = (x); \
    if (e_ != cudaSuccess) { \
      fprintf (stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString (e_)); \
      exit (1); \
    } \
  } while (0)

/* a device copy of bytes host bytes (at least one byte allocated) */
static inline void *
dev_upload (const void *h, size_t bytes)
{
  void *d = NULL;
  CU (cudaMalloc (&d, bytes ? bytes : 1));
  if (bytes)
    CU (cudaMemcpy (d, h, bytes, cudaMemcpyHostToDevice));
  return d;
}

/* dtype 0 = f32, 1 = f16, 2 = bf16 (VimkDType values) */
static inline size_t
tu_size (int dt)
{
  return dt == 0 ? 4 : 2;
}

static inline void
tu_store (int dt, void *p, size_t i, float v)
{
  if (dt == 0)
    ((float *) p)[i] = v;
  else if (dt == 1)
    ((uint16_t *) p)[i] = vim_f32_to_f16 (v);
  else
    ((uint16_t *) p)[i] = vim_f32_to_bf16 (v);
}

static inline float
tu_load (int dt, const void *p, size_t i)
{
  if (dt == 0)
    return ((const float *) p)[i];
  if (dt == 1)
    return vim_f16_to_f32 (((const uint16_t *) p)[i]);
  return vim_bf16_to_f32 (((const uint16_t *) p)[i]);
}

/* rounds v through the dtype */
static inline float
tu_round (int dt, float v)
{
  uint16_t h;
  if (dt == 0)
    return v;
  if (dt == 1) {
    h = vim_f32_to_f16 (v);
    return vim_f16_to_f32 (h);
  }
  h = vim_f32_to_bf16 (v);
  return vim_bf16_to_f32 (h);
}

static const char *const tu_dt_names[] = { "fp32", "fp16", "bf16" };

/* a small deterministic generator for test data */
static inline uint64_t
tu_next (uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static inline float
tu_uniform (uint64_t *s, float lo, float hi)
{
  return lo + (hi - lo) * (float) ((tu_next (s) >> 40) / 16777216.0);
}

#endif
