/* The CUDA runner against the CPU engine on one model file.
 *
 *   test-cuda-runner --model FILE [--cpu-batch N] [--batch N] [--top1 N]
 *                    [--precisions fp32,fp16,bf16] [--classify] [--errors]
 *
 * --cpu-batch N   CUDA (each precision) vs the CPU runner on N random inputs:
 *                 max|a-b|/max|b| <= 1e-4 (fp32), <= 2e-2 (fp16, bf16)
 * --batch N       CUDA on a batch of N; images 0, N/2, N-1 again alone (batch
 *                 invariance), the first --cpu-batch of them vs the CPU, and the
 *                 batch's CUDA graph replay vs its first (eager) run
 * --top1 N        fp16 and bf16 vs CUDA fp32 on N random inputs: error as
 *                 above and the same top-1 on >= 99% of them
 * --classify      classify(frames) == forward(preprocess(frames)), host and
 *                 device frames, and two runners share one weight upload
 * --errors        bad device index, bad arguments: errors, not crashes
 * Exit 77 without a usable GPU. */
#include <vim/vim.h>
#include "vim-private.h"
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/splitmix.h"
#include "cuda-engine-util.h"

static char *opt_model, *opt_precisions = "fp32,fp16,bf16";
static int opt_cpu_batch = 2, opt_batch = 0, opt_top1 = 0, opt_seed = 5;
static gboolean opt_classify, opt_errors;

static GOptionEntry entries[] = {
  { "model", 0, 0, G_OPTION_ARG_FILENAME, &opt_model, "model file", "FILE" },
  { "cpu-batch", 0, 0, G_OPTION_ARG_INT, &opt_cpu_batch, "images compared with the CPU", "N" },
  { "batch", 0, 0, G_OPTION_ARG_INT, &opt_batch, "large batch to run", "N" },
  { "top1", 0, 0, G_OPTION_ARG_INT, &opt_top1, "inputs for the half-precision top-1 check", "N" },
  { "precisions", 0, 0, G_OPTION_ARG_STRING, &opt_precisions, "list", "P,..." },
  { "seed", 0, 0, G_OPTION_ARG_INT, &opt_seed, "input seed", "S" },
  { "classify", 0, 0, G_OPTION_ARG_NONE, &opt_classify, "frame paths and sharing", NULL },
  { "errors", 0, 0, G_OPTION_ARG_NONE, &opt_errors, "error paths", NULL },
  { NULL }
};

static VimModel *model;
static const VimModelConfig *cfg;

static double
prec_tol (VimPrecision p)
{
  return p == VIM_PRECISION_FP32 ? 1e-4 : 2e-2;
}

static float *
run (VimRunner *r, const float *in, int n)
{
  return tu_forward (r, in, n, (size_t) cfg->num_classes);
}

/* max|a-b| / max|b| over n rows */
static double
rel (const float *a, const float *b, int n)
{
  return tu_rel_error (a, b, (size_t) n * (size_t) cfg->num_classes);
}

static int
argmax (const float *v)
{
  int best = 0;
  for (int k = 1; k < cfg->num_classes; k++)
    if (v[k] > v[best])
      best = k;
  return best;
}

static void
check_cpu (VimPrecision *precs, int np)
{
  int n = opt_cpu_batch;
  if (n <= 0)
    return;
  float *in = g_new (float, n * tu_image_floats (cfg));
  vim_test_random_input (opt_seed, n, cfg->image_height, cfg->image_width, in);
  VimRunner *cpu = tu_make_runner (model, VIM_DEVICE_CPU, VIM_PRECISION_FP32);
  gint64 t0 = g_get_monotonic_time ();
  float *ref = run (cpu, in, n);
  double cpu_s = (g_get_monotonic_time () - t0) / 1e6;
  vim_runner_free (cpu);
  for (int i = 0; i < np; i++) {
    VimRunner *r = tu_make_runner (model, VIM_DEVICE_CUDA, precs[i]);
    float *a = run (r, in, n);
    float *b = run (r, in, n);          /* second run: the captured graph */
    double e = rel (a, ref, n), e2 = rel (b, a, n);
    int same = 0;
    for (int k = 0; k < n; k++)
      same += argmax (a + (size_t) k * cfg->num_classes) == argmax (ref + (size_t) k * cfg->num_classes);
    printf ("%s %dx%d cuda %s vs cpu, batch %d: rel err %.3g (tol %.0e), top-1 %d/%d, "
        "graph replay vs first run %.3g [cpu %.2f s]\n", cfg->name, cfg->image_height,
        cfg->image_width, tu_precision_name (precs[i]), n, e, prec_tol (precs[i]), same, n, e2, cpu_s);
    CHECK (e <= prec_tol (precs[i]), "%s vs CPU: %.3g", tu_precision_name (precs[i]), e);
    CHECK (e2 <= 1e-6, "%s: replay differs from the first run: %.3g", tu_precision_name (precs[i]), e2);
    g_free (a);
    g_free (b);
    vim_runner_free (r);
  }
  g_free (ref);
  g_free (in);
}

static void
check_batch (VimPrecision *precs, int np)
{
  int n = opt_batch;
  if (n <= 0)
    return;
  float *in = g_new (float, n * tu_image_floats (cfg));
  vim_test_random_input (opt_seed + 1, n, cfg->image_height, cfg->image_width, in);
  int ncpu = MIN (opt_cpu_batch, n);
  float *ref = NULL;
  if (ncpu > 0) {
    VimRunner *cpu = tu_make_runner (model, VIM_DEVICE_CPU, VIM_PRECISION_FP32);
    ref = run (cpu, in, ncpu);
    vim_runner_free (cpu);
  }
  int picks[3] = { 0, n / 2, n - 1 };
  for (int i = 0; i < np; i++) {
    VimRunner *r = tu_make_runner (model, VIM_DEVICE_CUDA, precs[i]);
    float *all = run (r, in, n);
    float *again = run (r, in, n);      /* second run: the captured graph */
    double replay = rel (again, all, n);
    g_free (again);
    double worst = 0;
    for (int k = 0; k < 3; k++) {
      float *one = run (r, in + (size_t) picks[k] * tu_image_floats (cfg), 1);
      worst = fmax (worst, rel (all + (size_t) picks[k] * cfg->num_classes, one, 1));
      g_free (one);
    }
    double e = ref ? rel (all, ref, ncpu) : 0;
    printf ("%s %dx%d cuda %s batch %d: vs alone %.3g, first %d vs cpu %.3g, graph replay vs "
        "first run %.3g\n", cfg->name, cfg->image_height, cfg->image_width,
        tu_precision_name (precs[i]), n, worst, ncpu, e, replay);
    CHECK (replay <= prec_tol (precs[i]), "%s batch %d graph replay: %.3g",
        tu_precision_name (precs[i]), n, replay);
    CHECK (worst <= prec_tol (precs[i]), "%s batch %d vs alone: %.3g", tu_precision_name (precs[i]), n, worst);
    CHECK (e <= prec_tol (precs[i]), "%s batch %d vs CPU: %.3g", tu_precision_name (precs[i]), n, e);
    g_free (all);
    vim_runner_free (r);
  }
  g_free (ref);
  g_free (in);
}

static void
check_top1 (void)
{
  int n = opt_top1;
  if (n <= 0)
    return;
  VimRunner *r32 = tu_make_runner (model, VIM_DEVICE_CUDA, VIM_PRECISION_FP32);
  VimPrecision halves[2] = { VIM_PRECISION_FP16, VIM_PRECISION_BF16 };
  const int chunk = 100;
  float *in = g_new (float, chunk * tu_image_floats (cfg));
  for (int h = 0; h < 2; h++) {
    VimRunner *r = tu_make_runner (model, VIM_DEVICE_CUDA, halves[h]);
    int same = 0;
    double worst = 0;
    for (int i0 = 0; i0 < n; i0 += chunk) {
      int m = MIN (chunk, n - i0);
      vim_test_random_input (1000 + i0, m, cfg->image_height, cfg->image_width, in);
      float *ref = run (r32, in, m), *got = run (r, in, m);
      worst = fmax (worst, rel (got, ref, m));
      for (int k = 0; k < m; k++)
        same += argmax (got + (size_t) k * cfg->num_classes) == argmax (ref + (size_t) k * cfg->num_classes);
      g_free (ref);
      g_free (got);
    }
    printf ("%s %s vs fp32 on %d inputs: rel err %.3g, top-1 same %d/%d (%.1f%%)\n", cfg->name,
        tu_precision_name (halves[h]), n, worst, same, n, 100.0 * same / n);
    CHECK (worst <= 2e-2, "%s: rel err %.3g", tu_precision_name (halves[h]), worst);
    CHECK (same >= 0.99 * n, "%s: top-1 agrees on %d of %d", tu_precision_name (halves[h]), same, n);
    vim_runner_free (r);
  }
  g_free (in);
  vim_runner_free (r32);
}

static void
check_classify (VimPrecision *precs, int np)
{
  const int n = 3;
  int sizes[3][2] = { { 320, 240 }, { 97, 131 }, { cfg->image_width, cfg->image_height } };
  VimFrame frames[3], dframes[3];
  guint8 *pix[3];
  void *dpix[3];
  uint64_t s = 42;
  for (int i = 0; i < n; i++) {
    int w = sizes[i][0], h = sizes[i][1];
    size_t stride = (size_t) w * 3 + 5;
    pix[i] = g_malloc (stride * h);
    for (size_t k = 0; k < stride * h; k++)
      pix[i][k] = (guint8) (tu_next (&s) >> 56);
    frames[i] = (VimFrame) { .format = VIM_PIXEL_RGB, .width = w, .height = h,
      .planes = { pix[i] }, .strides = { stride }, .memory = VIM_MEMORY_HOST };
    if (cudaMalloc (&dpix[i], stride * h) != cudaSuccess
        || cudaMemcpy (dpix[i], pix[i], stride * h, cudaMemcpyHostToDevice) != cudaSuccess) {
      fprintf (stderr, "cannot stage frames on the device\n");
      exit (1);
    }
    dframes[i] = frames[i];
    dframes[i].planes[0] = dpix[i];
    dframes[i].memory = VIM_MEMORY_CUDA;
  }
  for (int i = 0; i < np; i++) {
    VimRunner *r = tu_make_runner (model, VIM_DEVICE_CUDA, precs[i]);
    GError *err = NULL;
    float *pre = g_new (float, n * tu_image_floats (cfg));
    float *lg1 = g_new (float, n * cfg->num_classes), *lg2 = g_new (float, n * cfg->num_classes);
    if (!vim_runner_preprocess (r, frames, n, pre, &err)
        || !vim_runner_classify (r, frames, n, lg1, &err)
        || !vim_runner_classify (r, dframes, n, lg2, &err)) {
      fprintf (stderr, "classify: %s\n", err->message);
      exit (1);
    }
    float *lg0 = run (r, pre, n);
    double e1 = rel (lg1, lg0, n), e2 = rel (lg2, lg0, n);
    printf ("%s classify %s: host frames vs forward(preprocess) %.3g, device frames %.3g\n",
        cfg->name, tu_precision_name (precs[i]), e1, e2);
    CHECK (e1 <= 1e-6 && e2 <= 1e-6, "classify %s: %.3g %.3g", tu_precision_name (precs[i]), e1, e2);
    /* a second runner shares the weights */
    VimRunner *r2 = tu_make_runner (model, VIM_DEVICE_CUDA, precs[i]);
    guint shared = g_slist_length (model->device_weights);
    float *lg3 = run (r2, pre, n);
    CHECK (rel (lg3, lg0, n) <= 1e-6, "second runner differs");
    vim_runner_free (r2);
    g_free (lg3);
    printf ("%s: %u weight upload(s) for two runners of %s\n", cfg->name, shared, tu_precision_name (precs[i]));
    CHECK (shared == 1, "two runners of one precision hold %u uploads", shared);
    g_free (pre); g_free (lg0); g_free (lg1); g_free (lg2);
    vim_runner_free (r);
    CHECK (g_slist_length (model->device_weights) == 0, "weights not released");
  }
  for (int i = 0; i < n; i++) {
    g_free (pix[i]);
    cudaFree (dpix[i]);
  }
}

static void
check_errors (void)
{
  GError *err = NULL;
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.device = VIM_DEVICE_CUDA;
  o.cuda_device = 99;
  VimRunner *r = vim_runner_new (model, &o, &err);
  CHECK (r == NULL && err && err->domain == VIM_ERROR, "device 99 accepted");
  if (err)
    printf ("device 99: %s\n", err->message);
  g_clear_error (&err);
  o.cuda_device = 0;
  r = vim_runner_new (model, &o, &err);
  CHECK (r != NULL, "device 0 refused: %s", err ? err->message : "?");
  if (r == NULL)
    return;
  float *lg = g_new (float, cfg->num_classes);
  float *in = g_new0 (float, tu_image_floats (cfg));
  CHECK (!vim_runner_forward (r, in, 0, lg, &err), "batch 0 accepted");
  g_clear_error (&err);
  VimFrame bad = { .format = VIM_PIXEL_NV12, .width = 64, .height = 48,
    .planes = { in, NULL }, .strides = { 64, 64 }, .memory = VIM_MEMORY_HOST };
  CHECK (!vim_runner_classify (r, &bad, 1, lg, &err), "NV12 frame without a UV plane accepted");
  if (err)
    printf ("bad frame: %s\n", err->message);
  g_clear_error (&err);
  bad.planes[1] = in;
  bad.memory = (VimMemory) 7;
  CHECK (!vim_runner_classify (r, &bad, 1, lg, &err), "memory type 7 accepted");
  g_clear_error (&err);
  /* still usable afterwards */
  CHECK (vim_runner_forward (r, in, 1, lg, &err), "forward after errors: %s", err ? err->message : "");
  g_clear_error (&err);
  g_free (lg);
  g_free (in);
  vim_runner_free (r);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new ("- CUDA runner checks");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !opt_model) {
    fprintf (stderr, "usage: test-cuda-runner --model FILE ...%s%s\n", err ? ": " : "",
        err ? err->message : "");
    return 2;
  }
  g_option_context_free (ctx);
  if (!vim_cuda_available (NULL, &err)) {
    printf ("SKIP: %s\n", err ? err->message : "no CUDA");
    return SKIP_RC;
  }
  model = vim_model_open (opt_model, &err);
  if (!model) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  cfg = vim_model_get_config (model);
  VimPrecision precs[3];
  int np = 0;
  char **names = g_strsplit (opt_precisions, ",", 3);
  for (int i = 0; names[i] && np < 3; i++)
    precs[np++] = tu_parse_precision (names[i]);
  g_strfreev (names);

  check_cpu (precs, np);
  check_batch (precs, np);
  check_top1 ();
  if (opt_classify)
    check_classify (precs, np);
  if (opt_errors)
    check_errors ();
  vim_model_unref (model);
  if (test_failures) {
    fprintf (stderr, "%d check(s) failed\n", test_failures);
    return 1;
  }
  printf ("PASS\n");
  return 0;
}
