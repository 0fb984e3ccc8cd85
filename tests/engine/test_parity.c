/* Engine logits against a stored reference (tests/reference/fixtures/NAME.json,
 * computed in float64 by the independent PyTorch implementation).
 *
 *   test-parity --model FILE --fixture JSON [--device cpu|cuda]
 *               [--precision fp32|fp16|bf16] [--tolerance T] [--argmax-agree F]
 *
 * Error measure: max |ours - ref| / max |ref| over the whole batch (a
 * per-logit ratio would be dominated by logits near zero). A segmenter's
 * row holds its (K, grid_h, grid_w) logits; its argmax is compared per token. */
#include <vim/vim.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/splitmix.h"

static char *opt_model, *opt_fixture, *opt_device = "cpu", *opt_precision = "fp32";
static double opt_tolerance = 1e-4;
static double opt_argmax_agree = 0;

static GOptionEntry entries[] = {
  { "model", 0, 0, G_OPTION_ARG_FILENAME, &opt_model, "model file", "FILE" },
  { "fixture", 0, 0, G_OPTION_ARG_FILENAME, &opt_fixture, "reference JSON", "FILE" },
  { "device", 0, 0, G_OPTION_ARG_STRING, &opt_device, "cpu or cuda", "DEV" },
  { "precision", 0, 0, G_OPTION_ARG_STRING, &opt_precision, "fp32, fp16, bf16", "P" },
  { "tolerance", 0, 0, G_OPTION_ARG_DOUBLE, &opt_tolerance, "max relative error", "T" },
  { "argmax-agree", 0, 0, G_OPTION_ARG_DOUBLE, &opt_argmax_agree,
    "also require this share of argmax (top-1 / token class) agreement, 0 .. 1", "F" },
  { NULL }
};

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new ("- engine logits vs a reference fixture");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !opt_model || !opt_fixture) {
    fprintf (stderr, "usage: test-parity --model FILE --fixture JSON%s%s\n",
        err ? ": " : "", err ? err->message : "");
    return 2;
  }
  g_option_context_free (ctx);

  JsonParser *parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, opt_fixture, &err)) {
    fprintf (stderr, "%s: %s\n", opt_fixture, err->message);
    return 2;
  }
  JsonObject *fx = json_node_get_object (json_parser_get_root (parser));
  JsonObject *in = json_object_get_object_member (fx, "input");
  int seed = json_object_get_int_member (in, "seed");
  int batch = json_object_get_int_member (in, "batch");
  JsonArray *ref = json_object_get_array_member (fx, "logits");

  VimModel *model = vim_model_open (opt_model, &err);
  if (model == NULL) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  const VimModelConfig *c = vim_model_get_config (model);
  VimRunnerOptions ro;
  vim_runner_options_init (&ro);
  ro.device = strcmp (opt_device, "cuda") == 0 ? VIM_DEVICE_CUDA : VIM_DEVICE_CPU;
  ro.precision = strcmp (opt_precision, "fp16") == 0 ? VIM_PRECISION_FP16
      : strcmp (opt_precision, "bf16") == 0 ? VIM_PRECISION_BF16 : VIM_PRECISION_FP32;
  if (ro.device == VIM_DEVICE_CUDA && !vim_cuda_available (NULL, NULL)) {
    printf ("SKIP: no usable CUDA device\n");
    return 77;
  }
  VimRunner *runner = vim_runner_new (model, &ro, &err);
  if (runner == NULL) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  if ((int) json_array_get_length (ref) != batch) {
    fprintf (stderr, "%s: %u logit rows for batch %d\n", opt_fixture,
        json_array_get_length (ref), batch);
    return 2;
  }
  float *input = g_new (float, (size_t) batch * 3 * c->image_height * c->image_width);
  vim_test_random_input (seed, batch, c->image_height, c->image_width, input);
  const size_t per = vim_model_output_size (model);
  const gboolean seg = c->task == VIM_TASK_SEGMENTATION;
  /* argmax over classes at each of `points` positions (1 for a classifier) */
  const int K = c->num_classes, points = (int) (per / K);
  float *logits = g_new (float, (size_t) batch * per);
  for (size_t i = 0; i < (size_t) batch * per; i++)
    logits[i] = NAN;  /* poison: every logit must be written */
  if (!vim_runner_forward (runner, input, batch, logits, &err)) {
    fprintf (stderr, "forward: %s\n", err->message);
    return 1;
  }
  double max_ref = 0, max_diff = 0;
  int top1_same = 0;
  for (int b = 0; b < batch; b++) {
    JsonArray *row = json_array_get_array_element (ref, b);
    if (json_array_get_length (row) != per) {
      fprintf (stderr, "%s: row %d has %u logits, the model writes %zu\n",
          opt_fixture, b, json_array_get_length (row), per);
      return 2;
    }
    const float *ours = logits + (size_t) b * per;
    for (int p = 0; p < points; p++) {
      int best_ref = 0, best = 0;
      for (int k = 0; k < K; k++) {
        /* classifier: k; segmenter: plane k, token p */
        const size_t i = (size_t) k * points + p;
        double r = json_array_get_double_element (row, i);
        double v = ours[i];
        if (!isfinite (v))
          max_diff = INFINITY;
        max_ref = fmax (max_ref, fabs (r));
        max_diff = fmax (max_diff, fabs (v - r));
        if (r > json_array_get_double_element (row, (size_t) best_ref * points + p))
          best_ref = k;
        if (v > ours[(size_t) best * points + p])
          best = k;
      }
      top1_same += best == best_ref;
    }
  }
  double rel = max_diff / fmax (max_ref, 1e-30);
  gboolean ok = rel <= opt_tolerance
      && top1_same >= opt_argmax_agree * batch * points;
  printf ("%s: %s %s %s batch %d: max|diff| %.3g, max|ref| %.3g, relative %.3g "
      "(tolerance %.1g), %s agrees %d/%d: %s\n",
      json_object_get_string_member_with_default (fx, "name", opt_fixture),
      c->name, opt_device, opt_precision, batch, max_diff, max_ref, rel,
      opt_tolerance, seg ? "token argmax" : "top-1", top1_same,
      batch * points, ok ? "PASS" : "FAIL");
  g_free (logits);
  g_free (input);
  vim_runner_free (runner);
  vim_model_unref (model);
  g_object_unref (parser);
  return ok ? 0 : 1;
}
