/* Helpers shared by the CUDA tests of the engine API (vim/vim.h):
 * precisions by name, runners and forwards that must work (a failure ends
 * the test with its reason), frame plane sizes. */
#ifndef VIM_CUDA_ENGINE_UTIL_H
#define VIM_CUDA_ENGINE_UTIL_H

#include <vim/vim.h>
#include "cuda-test-util.h"

static inline VimPrecision
tu_parse_precision (const char *s)
{
  return strcmp (s, "fp16") == 0 ? VIM_PRECISION_FP16
      : strcmp (s, "bf16") == 0 ? VIM_PRECISION_BF16 : VIM_PRECISION_FP32;
}

static inline const char *
tu_precision_name (VimPrecision p)
{
  return p == VIM_PRECISION_FP16 ? "fp16" : p == VIM_PRECISION_BF16 ? "bf16" : "fp32";
}

static inline VimRunner *
tu_make_runner (VimModel *model, VimDevice dev, VimPrecision p)
{
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.device = dev;
  o.precision = p;
  GError *err = NULL;
  VimRunner *r = vim_runner_new (model, &o, &err);
  if (r == NULL) {
    fprintf (stderr, "runner (%s %s): %s\n", dev == VIM_DEVICE_CUDA ? "cuda" : "cpu",
        tu_precision_name (p), err->message);
    exit (1);
  }
  return r;
}

/* floats of one preprocessed image */
static inline size_t
tu_image_floats (const VimModelConfig *cfg)
{
  return (size_t) 3 * cfg->image_height * cfg->image_width;
}

/* vim_runner_forward on n images into NaN-poisoned logits (out_per_image
 * each), so unwritten outputs fail the comparisons */
static inline float *
tu_forward (VimRunner *r, const float *in, int n, size_t out_per_image)
{
  size_t nl = (size_t) n * out_per_image;
  float *lg = g_new (float, nl);
  for (size_t i = 0; i < nl; i++)
    lg[i] = NAN;
  GError *err = NULL;
  if (!vim_runner_forward (r, in, n, lg, &err)) {
    fprintf (stderr, "forward (batch %d): %s\n", n, err->message);
    exit (1);
  }
  return lg;
}

/* max|a-b| / max|b| over count values; infinite when a has a non-finite one */
static inline double
tu_rel_error (const float *a, const float *b, size_t count)
{
  double md = 0, mb = 0;
  for (size_t i = 0; i < count; i++) {
    if (!isfinite (a[i]))
      return INFINITY;
    md = fmax (md, fabs ((double) a[i] - b[i]));
    mb = fmax (mb, fabs ((double) b[i]));
  }
  return md / fmax (mb, 1e-30);
}

/* bytes of one row of plane p of a w pixels wide frame */
static inline size_t
tu_row_bytes (VimPixelFormat f, int w, int p)
{
  switch (f) {
    case VIM_PIXEL_RGB: case VIM_PIXEL_BGR: return (size_t) w * 3;
    case VIM_PIXEL_GRAY8: return w;
    case VIM_PIXEL_NV12: return p == 0 ? (size_t) w : (size_t) ((w + 1) / 2) * 2;
    case VIM_PIXEL_I420: return p == 0 ? (size_t) w : (size_t) (w + 1) / 2;
    default: return (size_t) w * 4;
  }
}

#endif
