/* The deterministic test-input stream, the same as tools/vimtools/random_weights.py:
 * value i of (seed, stream) = splitmix64(((seed << 20) ^ (stream << 44)) + i) >> 40,
 * scaled to [-1, 1). A counter-based hash: nothing can change it under us. */
#ifndef VIM_TEST_SPLITMIX_H
#define VIM_TEST_SPLITMIX_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t
vim_test_splitmix64 (uint64_t x)
{
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline void
vim_test_uniform (uint64_t seed, uint64_t stream, float *out, size_t n)
{
  uint64_t base = (seed << 20) ^ (stream << 44);
  for (size_t i = 0; i < n; i++) {
    uint64_t bits = vim_test_splitmix64 (base + i) >> 40;
    out[i] = (float) ((double) bits / (double) (1 << 23) - 1.0);
  }
}

/* random_weights.random_input: a normalized (batch, 3, H, W) input in [-2, 2). */
static inline void
vim_test_random_input (uint64_t seed, int batch, int h, int w, float *out)
{
  size_t n = (size_t) batch * 3 * h * w;
  vim_test_uniform (seed, 0xFFF, out, n);
  for (size_t i = 0; i < n; i++)
    out[i] *= 2.0f;
}

#endif
