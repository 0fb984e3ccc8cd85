/* Times the CUDA backend's forward pass on one model file.
 *
 *   vim-bench --model FILE [--precision fp16] [--batches 1,8,64,256]
 *             [--min-iters 10] [--max-iters 200] [--seconds 1.0] [--label NAME]
 *
 * One JSON object per batch on stdout: device time of a forward over a
 * batch already on the GPU (CUDA events around the graph replay), median and
 * p99, images per second, and device memory (weights; the runner's own
 * allocations at their peak: workspace, input batch, logits, cuBLAS). */
#include <vim/vim.h>
#include "cuda_bench.h"
#include <stdio.h>
#include <string.h>

static char *opt_model, *opt_precision = "fp16", *opt_batches = "1,8,64,256", *opt_label;
static int opt_min_iters = 10, opt_max_iters = 200;
static double opt_seconds = 1.0;

static GOptionEntry entries[] = {
  { "model", 0, 0, G_OPTION_ARG_FILENAME, &opt_model, "model file", "FILE" },
  { "precision", 0, 0, G_OPTION_ARG_STRING, &opt_precision, "fp32, fp16 or bf16", "P" },
  { "batches", 0, 0, G_OPTION_ARG_STRING, &opt_batches, "batch sizes", "N,..." },
  { "min-iters", 0, 0, G_OPTION_ARG_INT, &opt_min_iters, "at least this many timed runs", "N" },
  { "max-iters", 0, 0, G_OPTION_ARG_INT, &opt_max_iters, "at most this many", "N" },
  { "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &opt_seconds, "time budget per batch", "S" },
  { "label", 0, 0, G_OPTION_ARG_STRING, &opt_label, "name in the output", "NAME" },
  { NULL }
};

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new ("- time the CUDA backend");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !opt_model) {
    fprintf (stderr, "usage: vim-bench --model FILE [--precision P] [--batches N,...]%s%s\n",
        err ? ": " : "", err ? err->message : "");
    return 2;
  }
  g_option_context_free (ctx);
  if (!vim_cuda_available (NULL, &err)) {
    fprintf (stderr, "vim-bench: %s\n", err->message);
    return 77;
  }
  VimModel *model = vim_model_open (opt_model, &err);
  if (!model) {
    fprintf (stderr, "vim-bench: %s\n", err->message);
    return 1;
  }
  const VimModelConfig *c = vim_model_get_config (model);
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.device = VIM_DEVICE_CUDA;
  o.precision = strcmp (opt_precision, "fp32") == 0 ? VIM_PRECISION_FP32
      : strcmp (opt_precision, "bf16") == 0 ? VIM_PRECISION_BF16 : VIM_PRECISION_FP16;
  int rc = 0;
  char **bs = g_strsplit (opt_batches, ",", -1);
  for (int i = 0; bs[i]; i++) {
    int n = atoi (bs[i]);
    if (n <= 0)
      continue;
    /* a fresh runner per batch: its peak memory is this batch's */
    VimRunner *r = vim_runner_new (model, &o, &err);
    if (!r) {
      fprintf (stderr, "vim-bench: %s\n", err->message);
      return 1;
    }
    VimCudaBenchResult res;
    if (!vim_runner_cuda_bench (r, n, opt_min_iters, opt_max_iters, opt_seconds, &res, &err)) {
      printf ("{\"label\": \"%s\", \"res\": %d, \"batch\": %d, \"error\": \"%s\"}\n",
          opt_label ? opt_label : c->name, c->image_height, n, err->message);
      g_clear_error (&err);
      vim_runner_free (r);
      rc = 1;
      continue;
    }
    printf ("{\"label\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"res\": %d, "
        "\"tokens\": %d, \"batch\": %d, \"iters\": %d, \"median_ms\": %.5f, \"p99_ms\": %.5f, "
        "\"min_ms\": %.5f, \"img_s\": %.1f, \"weights_mib\": %.2f, \"act_mib\": %.2f, "
        "\"act_mib_per_img\": %.3f, \"pass_images\": %d, \"passes\": %d, \"scan_lanes\": %d, "
        "\"scan_chunks\": %d, \"scan_whole\": %s, \"scan_stream\": %s, "
        "\"graphs\": %s}\n",
        opt_label ? opt_label : c->name, vim_runner_cuda_device_name (r), opt_precision,
        c->image_height, c->seq_len, n, res.iters, res.median_ms, res.p99_ms, res.min_ms,
        n * 1000.0 / res.median_ms, res.weight_bytes / 1048576.0, res.act_bytes / 1048576.0,
        res.act_bytes / 1048576.0 / n, res.pass_images, res.passes, res.scan_lanes, res.scan_chunks,
        res.scan_whole ? "true" : "false", res.scan_stream ? "true" : "false",
        res.graphs ? "true" : "false");
    fflush (stdout);
    vim_runner_free (r);
  }
  g_strfreev (bs);
  vim_model_unref (model);
  return rc;
}
