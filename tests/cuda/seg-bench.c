/* Times vim_runner_segment on the CUDA backend end to end: device NV12
 * frames (as a hardware decoder gives them) in, preprocessing, forward,
 * upsampling + argmax (+ confidence, fractions) into device masks, stream
 * synchronized; wall-clock per call. (bench/vim-bench times the forward
 * pass alone, on the device, for any model including segmenters.)
 *
 *   seg-bench --model FILE [--precision fp16] [--batches 1,8] [--frame 1920x1080]
 *             [--mode grid|frame|fixed:WxH] [--confidence] [--iters 200] [--label NAME]
 *
 * One JSON object per batch: median, p99 and min ms per call, frames/s. */
#include <vim/vim.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *opt_model, *opt_precision = "fp16", *opt_batches = "1,8", *opt_frame = "1920x1080";
static char *opt_mode = "frame", *opt_label;
static int opt_iters = 200;
static gboolean opt_confidence;

static GOptionEntry entries[] = {
  { "model", 0, 0, G_OPTION_ARG_FILENAME, &opt_model, "segmentation model file", "FILE" },
  { "precision", 0, 0, G_OPTION_ARG_STRING, &opt_precision, "fp32, fp16 or bf16", "P" },
  { "batches", 0, 0, G_OPTION_ARG_STRING, &opt_batches, "batch sizes", "N,..." },
  { "frame", 0, 0, G_OPTION_ARG_STRING, &opt_frame, "frame size", "WxH" },
  { "mode", 0, 0, G_OPTION_ARG_STRING, &opt_mode, "mask size: grid, frame or fixed:WxH", "M" },
  { "confidence", 0, 0, G_OPTION_ARG_NONE, &opt_confidence, "also confidence and fractions", NULL },
  { "iters", 0, 0, G_OPTION_ARG_INT, &opt_iters, "timed calls per batch", "N" },
  { "label", 0, 0, G_OPTION_ARG_STRING, &opt_label, "name in the output", "NAME" },
  { NULL }
};

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
die (const char *what, GError *err)
{
  fprintf (stderr, "seg-bench: %s: %s\n", what, err ? err->message : "failed");
  exit (1);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new ("- time vim_runner_segment on the GPU");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !opt_model) {
    fprintf (stderr, "usage: seg-bench --model FILE [options]%s%s\n", err ? ": " : "",
        err ? err->message : "");
    return 2;
  }
  g_option_context_free (ctx);
  if (!vim_cuda_available (NULL, &err)) {
    fprintf (stderr, "seg-bench: %s\n", err->message);
    return 77;
  }
  opt_iters = MAX (opt_iters, 1);
  int fw = 0, fh = 0;
  VimMaskSpec spec = { .mode = VIM_MASK_SIZE_FRAME };
  if (sscanf (opt_frame, "%dx%d", &fw, &fh) != 2 || fw < 2 || fh < 2)
    die ("--frame", NULL);
  if (strcmp (opt_mode, "grid") == 0)
    spec.mode = VIM_MASK_SIZE_GRID;
  else if (strncmp (opt_mode, "fixed:", 6) == 0) {
    spec.mode = VIM_MASK_SIZE_FIXED;
    if (sscanf (opt_mode + 6, "%dx%d", &spec.width, &spec.height) != 2)
      die ("--mode fixed:WxH", NULL);
  } else if (strcmp (opt_mode, "frame") != 0)
    die ("--mode", NULL);

  VimModel *model = vim_model_open (opt_model, &err);
  if (!model)
    die ("model", err);
  const VimModelConfig *c = vim_model_get_config (model);
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.device = VIM_DEVICE_CUDA;
  o.precision = strcmp (opt_precision, "fp32") == 0 ? VIM_PRECISION_FP32
      : strcmp (opt_precision, "bf16") == 0 ? VIM_PRECISION_BF16 : VIM_PRECISION_FP16;
  VimRunner *r = vim_runner_new (model, &o, &err);
  if (!r)
    die ("runner", err);

  VimMaskGeometry geo;
  if (!vim_model_mask_geometry (model, fw, fh, &spec, &geo, &err))
    die ("geometry", err);
  char **bs = g_strsplit (opt_batches, ",", -1);
  for (int b = 0; bs[b]; b++) {
    int n = atoi (bs[b]);
    if (n <= 0)
      continue;
    /* n NV12 frames on the device: a grey ramp, contents do not matter */
    size_t pitch = (size_t) (fw + 255) & ~(size_t) 255, frame_bytes = pitch * fh * 3 / 2 + pitch;
    guint8 *frames_dev = NULL, *masks_dev = NULL;
    size_t mask_bytes = (size_t) geo.width * geo.height;
    if (cudaMalloc ((void **) &frames_dev, frame_bytes * n) != cudaSuccess
        || cudaMemset (frames_dev, 100, frame_bytes * n) != cudaSuccess
        || cudaMalloc ((void **) &masks_dev, mask_bytes * 2 * n) != cudaSuccess)
      die ("device memory", NULL);
    VimFrame *frames = g_new0 (VimFrame, n);
    VimSegResult *res = g_new0 (VimSegResult, n);
    float *fractions = g_new (float, (size_t) n * c->num_classes);
    for (int i = 0; i < n; i++) {
      guint8 *y = frames_dev + frame_bytes * i;
      frames[i] = (VimFrame) { .format = VIM_PIXEL_NV12, .width = fw, .height = fh,
        .planes = { y, y + pitch * fh }, .strides = { pitch, pitch }, .memory = VIM_MEMORY_CUDA };
      res[i].memory = VIM_MEMORY_CUDA;
      res[i].classes = masks_dev + mask_bytes * 2 * i;
      res[i].classes_stride = geo.width;
      if (opt_confidence) {
        res[i].confidence = res[i].classes + mask_bytes;
        res[i].confidence_stride = geo.width;
        res[i].fractions = fractions + (size_t) i * c->num_classes;
      }
    }
    for (int w = 0; w < 5; w++)     /* eager, capture, replays */
      if (!vim_runner_segment (r, frames, n, &spec, res, &err))
        die ("segment", err);
    double *ms = g_new (double, opt_iters);
    for (int it = 0; it < opt_iters; it++) {
      gint64 t0 = g_get_monotonic_time ();
      if (!vim_runner_segment (r, frames, n, &spec, res, &err))
        die ("segment", err);
      ms[it] = (g_get_monotonic_time () - t0) / 1000.0;
    }
    qsort (ms, opt_iters, sizeof (double), cmp_double);
    double med = ms[opt_iters / 2];
    printf ("{\"label\": \"%s\", \"precision\": \"%s\", \"res\": %d, \"frame\": \"%dx%d\", "
        "\"mask\": \"%dx%d\", \"confidence\": %s, \"batch\": %d, \"iters\": %d, "
        "\"median_ms\": %.4f, \"p99_ms\": %.4f, \"min_ms\": %.4f, \"frames_s\": %.1f}\n",
        opt_label ? opt_label : c->name, opt_precision, c->image_height, fw, fh, geo.width,
        geo.height, opt_confidence ? "true" : "false", n, opt_iters, med,
        ms[MIN (opt_iters - 1, (int) ceil (0.99 * opt_iters) - 1)], ms[0], n * 1000.0 / med);
    fflush (stdout);
    g_free (ms);
    g_free (frames);
    g_free (res);
    g_free (fractions);
    cudaFree (frames_dev);
    cudaFree (masks_dev);
  }
  g_strfreev (bs);
  vim_runner_free (r);
  vim_model_unref (model);
  return 0;
}
