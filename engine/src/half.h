/* fp16 / bf16 <-> fp32 bit conversions on the host, round to nearest even.
 * One copy for the model loader, the CUDA runner's weight upload and the
 * CUDA tests. Plain C, no GLib. */
#ifndef VIM_HALF_H
#define VIM_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float
vim_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  uint32_t x;
  if (e == 0) {                 /* zero and subnormals */
    float v = ldexpf ((float) m, -24);
    return sign ? -v : v;
  }
  if (e == 31)
    x = sign | 0x7f800000u | (m << 13);
  else
    x = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy (&f, &x, 4);
  return f;
}

static inline float
vim_bf16_to_f32 (uint16_t h)
{
  uint32_t x = (uint32_t) h << 16;
  float f;
  memcpy (&f, &x, 4);
  return f;
}

static inline uint16_t
vim_f32_to_f16 (float f)
{
  uint32_t x;
  memcpy (&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a >= 0x7f800000u)                          /* inf, NaN */
    return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (a >= 0x477ff000u)                          /* rounds past 65504 */
    return sign | 0x7c00u;
  if (a < 0x38800000u) {                         /* subnormal half */
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

static inline uint16_t
vim_f32_to_bf16 (float f)
{
  uint32_t x;
  memcpy (&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)           /* keep NaN a (quiet) NaN */
    return (x >> 16) | 0x40u;
  x += 0x7fffu + ((x >> 16) & 1u);
  return x >> 16;
}

#endif /* VIM_HALF_H */
