/* GPU preprocessing against the CPU path (vim_preprocess_frame_cpu) for
 * every pixel format, every resize policy, host and device frames, odd
 * sizes and padded strides; one frame per call and all frames in one call.
 *
 *   test-cuda-preprocess --model FILE
 *
 * Exit 77 without a usable GPU. */
#include <vim/vim.h>
#include "vim-private.h"
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda-engine-util.h"

typedef struct {
  VimFrame host, dev;
  guint8 *mem[3];
  void *dmem[3];
} TestFrame;

static void
make_frame (TestFrame *tf, VimPixelFormat fmt, int w, int h, uint64_t *s)
{
  memset (tf, 0, sizeof *tf);
  VimFrame *f = &tf->host;
  f->format = fmt;
  f->width = w;
  f->height = h;
  f->memory = VIM_MEMORY_HOST;
  int np = vim_pixel_format_n_planes (fmt);
  for (int p = 0; p < np; p++) {
    size_t rb = tu_row_bytes (fmt, w, p), rows = p == 0 ? (size_t) h : (size_t) (h + 1) / 2;
    size_t stride = rb + (tu_next (s) % 3) * 16 + (p == 0 ? 3 : 0);
    /* the last row only as long as it needs to be: reads past it would show */
    size_t bytes = stride * (rows - 1) + rb;
    tf->mem[p] = g_malloc (bytes);
    for (size_t k = 0; k < bytes; k++)
      tf->mem[p][k] = (guint8) (tu_next (s) >> 56);
    f->planes[p] = tf->mem[p];
    f->strides[p] = stride;
    if (cudaMalloc (&tf->dmem[p], bytes) != cudaSuccess
        || cudaMemcpy (tf->dmem[p], tf->mem[p], bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      fprintf (stderr, "cannot stage a frame on the device\n");
      exit (1);
    }
  }
  tf->dev = *f;
  tf->dev.memory = VIM_MEMORY_CUDA;
  for (int p = 0; p < np; p++)
    tf->dev.planes[p] = tf->dmem[p];
}

static void
free_frame (TestFrame *tf)
{
  for (int p = 0; p < 3; p++) {
    g_free (tf->mem[p]);
    if (tf->dmem[p])
      cudaFree (tf->dmem[p]);
  }
}

int
main (int argc, char **argv)
{
  if (argc != 3 || strcmp (argv[1], "--model") != 0) {
    fprintf (stderr, "usage: test-cuda-preprocess --model FILE\n");
    return 2;
  }
  GError *err = NULL;
  if (!vim_cuda_available (NULL, &err)) {
    printf ("SKIP: %s\n", err ? err->message : "no CUDA");
    return SKIP_RC;
  }
  VimModel *model = vim_model_open (argv[2], &err);
  if (!model) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  VimModelConfig *cfg = &model->config;
  const int W = cfg->image_width, H = cfg->image_height;
  const size_t img = (size_t) 3 * W * H;
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.device = VIM_DEVICE_CUDA;
  VimRunner *r = vim_runner_new (model, &o, &err);
  if (!r) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  const VimPixelFormat formats[] = { VIM_PIXEL_RGB, VIM_PIXEL_RGBA, VIM_PIXEL_RGBX,
    VIM_PIXEL_BGR, VIM_PIXEL_BGRA, VIM_PIXEL_BGRX, VIM_PIXEL_NV12, VIM_PIXEL_I420,
    VIM_PIXEL_GRAY8 };
  const int nf = G_N_ELEMENTS (formats);
  const int sizes[][2] = { { 1, 1 }, { 3, 2 }, { W, H }, { 2 * W + 1, H - 3 > 0 ? H - 3 : 1 },
    { 641, 479 }, { 17, 301 } };
  const int ns = G_N_ELEMENTS (sizes);
  const VimResizePolicy policies[] = { VIM_RESIZE_STRETCH, VIM_RESIZE_LETTERBOX,
    VIM_RESIZE_SHORT_SIDE_CROP };
  const char *pnames[] = { "stretch", "letterbox", "short-side-crop" };
  uint64_t s = 2024;
  const int total = nf * ns;
  TestFrame *tfs = g_new (TestFrame, total);
  VimFrame *hosts = g_new (VimFrame, total), *devs = g_new (VimFrame, total);
  for (int i = 0; i < total; i++) {
    make_frame (&tfs[i], formats[i / ns], sizes[i % ns][0], sizes[i % ns][1], &s);
    hosts[i] = tfs[i].host;
    devs[i] = tfs[i].dev;
  }
  float *cpu = g_new (float, total * img), *gpu = g_new (float, total * img);
  float *gpu_b = g_new (float, total * img);
  for (int pi = 0; pi < 3; pi++) {
    VimResizePolicy saved = cfg->resize;
    cfg->resize = policies[pi];
    for (int i = 0; i < total; i++)
      vim_preprocess_frame_cpu (cfg, &hosts[i], cpu + i * img);
    for (int mem = 0; mem < 2; mem++) {
      VimFrame *frames = mem ? devs : hosts;
      /* one call per frame */
      for (int i = 0; i < total; i++)
        for (size_t k = 0; k < img; k++)
          gpu[i * img + k] = NAN;
      for (int i = 0; i < total; i++)
        if (!vim_runner_preprocess (r, &frames[i], 1, gpu + i * img, &err)) {
          fprintf (stderr, "preprocess: %s\n", err->message);
          return 1;
        }
      /* all frames in one call */
      if (!vim_runner_preprocess (r, frames, total, gpu_b, &err)) {
        fprintf (stderr, "preprocess (batch): %s\n", err->message);
        return 1;
      }
      for (int fi = 0; fi < nf; fi++) {
        double worst = 0, worst_b = 0;
        for (int si = 0; si < ns; si++) {
          int i = fi * ns + si;
          for (size_t k = 0; k < img; k++) {
            double d = fabs ((double) gpu[i * img + k] - cpu[i * img + k]);
            double db = fabs ((double) gpu_b[i * img + k] - cpu[i * img + k]);
            worst = isfinite (gpu[i * img + k]) ? fmax (worst, d) : INFINITY;
            worst_b = isfinite (gpu_b[i * img + k]) ? fmax (worst_b, db) : INFINITY;
          }
        }
        printf ("%-6s %-15s %s memory: max |gpu - cpu| %.3g (single), %.3g (batched)\n",
            vim_pixel_format_name (formats[fi]), pnames[pi], mem ? "device" : "host  ",
            worst, worst_b);
        CHECK (worst <= 1e-5 && worst_b <= 1e-5, "%s %s %s: %.3g / %.3g",
            vim_pixel_format_name (formats[fi]), pnames[pi], mem ? "device" : "host", worst, worst_b);
      }
    }
    cfg->resize = saved;
  }
  /* host and device frames mixed in one call */
  VimFrame *mixed = g_new (VimFrame, total);
  for (int i = 0; i < total; i++)
    mixed[i] = (i & 1) ? devs[i] : hosts[i];
  if (!vim_runner_preprocess (r, mixed, total, gpu_b, &err)) {
    fprintf (stderr, "preprocess (mixed): %s\n", err->message);
    return 1;
  }
  for (int i = 0; i < total; i++)
    vim_preprocess_frame_cpu (cfg, &hosts[i], cpu + i * img);
  double worst = 0;
  for (size_t k = 0; k < total * img; k++)
    worst = isfinite (gpu_b[k]) ? fmax (worst, fabs ((double) gpu_b[k] - cpu[k])) : INFINITY;
  printf ("mixed host/device frames in one call: %.3g\n", worst);
  CHECK (worst <= 1e-5, "mixed frames: %.3g", worst);

  for (int i = 0; i < total; i++)
    free_frame (&tfs[i]);
  g_free (tfs); g_free (hosts); g_free (devs); g_free (mixed);
  g_free (cpu); g_free (gpu); g_free (gpu_b);
  vim_runner_free (r);
  vim_model_unref (model);
  if (test_failures) {
    fprintf (stderr, "%d check(s) failed\n", test_failures);
    return 1;
  }
  printf ("PASS\n");
  return 0;
}
