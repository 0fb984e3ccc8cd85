/* Helpers shared by the CUDA tests. */
#ifndef VIM_CUDA_TEST_UTIL_H
#define VIM_CUDA_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* float <-> fp16 / bf16 bit patterns, round to nearest even */
static inline uint16_t
tu_f32_to_f16 (float f)
{
  uint32_t x;
  memcpy (&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a >= 0x7f800000u)
    return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (a >= 0x477ff000u)
    return sign | 0x7c00u;
  if (a < 0x38800000u) {
    if (a < 0x33000001u)
      return sign;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int) (a >> 23);
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1)))
      r++;
    return sign | r;
  }
  uint32_t r = (a >> 13) - (112u << 10), rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1)))
    r++;
  return sign | r;
}

static inline float
tu_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  uint32_t x;
  if (e == 0) {
    float v = ldexpf ((float) m, -24);
    return sign ? -v : v;
  } else if (e == 31) {
    x = sign | 0x7f800000u | (m << 13);
  } else {
    x = sign | ((e + 112) << 23) | (m << 13);
  }
  float f;
  memcpy (&f, &x, 4);
  return f;
}

static inline uint16_t
tu_f32_to_bf16 (float f)
{
  uint32_t x;
  memcpy (&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (x >> 16) | 0x40u;
  x += 0x7fffu + ((x >> 16) & 1u);
  return x >> 16;
}

static inline float
tu_bf16_to_f32 (uint16_t h)
{
  uint32_t x = (uint32_t) h << 16;
  float f;
  memcpy (&f, &x, 4);
  return f;
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
    ((uint16_t *) p)[i] = tu_f32_to_f16 (v);
  else
    ((uint16_t *) p)[i] = tu_f32_to_bf16 (v);
}

static inline float
tu_load (int dt, const void *p, size_t i)
{
  if (dt == 0)
    return ((const float *) p)[i];
  if (dt == 1)
    return tu_f16_to_f32 (((const uint16_t *) p)[i]);
  return tu_bf16_to_f32 (((const uint16_t *) p)[i]);
}

/* rounds v through the dtype */
static inline float
tu_round (int dt, float v)
{
  uint16_t h;
  if (dt == 0)
    return v;
  if (dt == 1) {
    h = tu_f32_to_f16 (v);
    return tu_f16_to_f32 (h);
  }
  h = tu_f32_to_bf16 (v);
  return tu_bf16_to_f32 (h);
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
