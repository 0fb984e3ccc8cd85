/* vim-infer: the engine's command line.
 *
 *   vim-infer info MODEL
 *   vim-infer classify [options] MODEL IMAGE...
 *   vim-infer bench [options] MODEL
 *
 * Images are decoded with gdk-pixbuf (PNG, JPEG, ...). */
#include <vim/vim.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *opt_device = NULL;
static char *opt_precision = NULL;
static char *opt_labels = NULL;
static int opt_top_k = 5;
static int opt_batch = 1;
static int opt_runs = 20;
static int opt_warmup = 3;
static int opt_threads = 0;
static int opt_cuda_device = -1;

static GOptionEntry entries[] = {
  { "device", 'd', 0, G_OPTION_ARG_STRING, &opt_device, "cpu (default) or cuda", "DEV" },
  { "cuda-device", 0, 0, G_OPTION_ARG_INT, &opt_cuda_device, "CUDA device index (-1 = first)", "N" },
  { "precision", 'p', 0, G_OPTION_ARG_STRING, &opt_precision, "fp32 (default), fp16 or bf16", "P" },
  { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &opt_labels, "labels file overriding the model's", "FILE" },
  { "top-k", 'k', 0, G_OPTION_ARG_INT, &opt_top_k, "results per image (default 5)", "K" },
  { "batch", 'b', 0, G_OPTION_ARG_INT, &opt_batch, "bench: batch size (default 1)", "N" },
  { "runs", 'r', 0, G_OPTION_ARG_INT, &opt_runs, "bench: timed runs (default 20)", "N" },
  { "warmup", 'w', 0, G_OPTION_ARG_INT, &opt_warmup, "bench: untimed runs first (default 3)", "N" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "CPU threads (default: all cores)", "N" },
  { NULL }
};

static gboolean
parse_runner_options (VimRunnerOptions *o, GError **error)
{
  vim_runner_options_init (o);
  o->num_threads = opt_threads;
  o->cuda_device = opt_cuda_device;
  if (opt_device == NULL || strcmp (opt_device, "cpu") == 0)
    o->device = VIM_DEVICE_CPU;
  else if (strcmp (opt_device, "cuda") == 0)
    o->device = VIM_DEVICE_CUDA;
  else {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "unknown device '%s' (cpu, cuda)", opt_device);
    return FALSE;
  }
  if (opt_precision == NULL || strcmp (opt_precision, "fp32") == 0)
    o->precision = VIM_PRECISION_FP32;
  else if (strcmp (opt_precision, "fp16") == 0)
    o->precision = VIM_PRECISION_FP16;
  else if (strcmp (opt_precision, "bf16") == 0)
    o->precision = VIM_PRECISION_BF16;
  else {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "unknown precision '%s' (fp32, fp16, bf16)", opt_precision);
    return FALSE;
  }
  return TRUE;
}

static int
cmd_info (VimModel *model)
{
  const VimModelConfig *c = vim_model_get_config (model);
  static const char *const resize[] = { "stretch", "letterbox", "short-side-crop" };
  printf ("file:        %s\n", vim_model_get_path (model));
  printf ("name:        %s\n", c->name);
  printf ("task:        %s\n", c->task == VIM_TASK_CLASSIFICATION ? "classification" : "segmentation");
  printf ("input:       %dx%d, patch %d, stride %d -> grid %dx%d = %d patches\n",
      c->image_width, c->image_height, c->patch_size, c->stride, c->grid_w,
      c->grid_h, c->num_patches);
  printf ("sequence:    %d tokens, class token at %d\n", c->seq_len, c->cls_index);
  printf ("blocks:      depth %d, embed_dim %d, d_inner %d, d_state %d, d_conv %d, dt_rank %d\n",
      c->depth, c->embed_dim, c->d_inner, c->d_state, c->d_conv, c->dt_rank);
  printf ("classes:     %d", c->num_classes);
  if (vim_model_get_label (model, 0))
    printf (" (labels: %s, %s, ...)", vim_model_get_label (model, 0),
        c->num_classes > 1 ? vim_model_get_label (model, 1) : "");
  printf ("\npreprocess:  %s (crop ratio %.3f), mean %.3f %.3f %.3f, std %.3f %.3f %.3f\n",
      resize[c->resize], c->crop_ratio, c->mean[0], c->mean[1], c->mean[2],
      c->std[0], c->std[1], c->std[2]);
  return 0;
}

/* Decodes an image into a frame (RGB or RGBA). The pixbuf owns the pixels. */
static GdkPixbuf *
load_frame (const char *path, VimFrame *f, GError **error)
{
  GdkPixbuf *pb = gdk_pixbuf_new_from_file (path, error);
  if (pb == NULL)
    return NULL;
  if (gdk_pixbuf_get_bits_per_sample (pb) != 8
      || gdk_pixbuf_get_colorspace (pb) != GDK_COLORSPACE_RGB) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
        "%s: only 8-bit RGB images are supported", path);
    g_object_unref (pb);
    return NULL;
  }
  memset (f, 0, sizeof *f);
  f->format = gdk_pixbuf_get_has_alpha (pb) ? VIM_PIXEL_RGBA : VIM_PIXEL_RGB;
  f->width = gdk_pixbuf_get_width (pb);
  f->height = gdk_pixbuf_get_height (pb);
  f->planes[0] = gdk_pixbuf_read_pixels (pb);
  f->strides[0] = gdk_pixbuf_get_rowstride (pb);
  f->memory = VIM_MEMORY_HOST;
  return pb;
}

static int
cmd_classify (VimModel *model, VimRunner *runner, char **images, int n_images)
{
  const VimModelConfig *c = vim_model_get_config (model);
  float *logits = g_new (float, c->num_classes);
  float *probs = g_new (float, c->num_classes);
  VimClassScore *top = g_new (VimClassScore, MAX (opt_top_k, 1));
  int status = 0;
  for (int i = 0; i < n_images; i++) {
    GError *err = NULL;
    VimFrame frame;
    GdkPixbuf *pb = load_frame (images[i], &frame, &err);
    if (pb == NULL || !vim_runner_classify (runner, &frame, 1, logits, &err)) {
      fprintf (stderr, "vim-infer: %s\n", err->message);
      g_error_free (err);
      g_clear_object (&pb);
      status = 1;
      continue;
    }
    g_object_unref (pb);
    vim_softmax (logits, c->num_classes, probs);
    int k = vim_top_k (model, probs, c->num_classes, opt_top_k, 0.f, top);
    printf ("%s\n", images[i]);
    for (int j = 0; j < k; j++)
      printf ("  %d. %-32s id %4d  p=%.4f  logit %.4f\n", j + 1,
          top[j].label ? top[j].label : "(no label)", top[j].class_id,
          top[j].score, logits[top[j].class_id]);
  }
  g_free (top);
  g_free (probs);
  g_free (logits);
  return status;
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static int
cmd_bench (VimModel *model, VimRunner *runner)
{
  const VimModelConfig *c = vim_model_get_config (model);
  size_t n_in = (size_t) opt_batch * 3 * c->image_height * c->image_width;
  float *input = g_new (float, n_in);
  float *logits = g_new (float, (size_t) opt_batch * c->num_classes);
  /* deterministic non-zero input in [-2, 2) */
  guint32 s = 12345;
  for (size_t i = 0; i < n_in; i++) {
    s = s * 1664525u + 1013904223u;
    input[i] = (float) (s >> 8) / (float) (1 << 22) - 2.f;
  }
  GError *err = NULL;
  for (int i = 0; i < opt_warmup; i++)
    if (!vim_runner_forward (runner, input, opt_batch, logits, &err))
      goto fail;
  double *ms = g_new (double, MAX (opt_runs, 1));
  for (int i = 0; i < opt_runs; i++) {
    gint64 t0 = g_get_monotonic_time ();
    if (!vim_runner_forward (runner, input, opt_batch, logits, &err)) {
      g_free (ms);
      goto fail;
    }
    ms[i] = (g_get_monotonic_time () - t0) / 1000.0;
  }
  qsort (ms, opt_runs, sizeof (double), compare_double);
  double median = opt_runs % 2 ? ms[opt_runs / 2]
      : 0.5 * (ms[opt_runs / 2 - 1] + ms[opt_runs / 2]);
  printf ("model %s  input %dx%d  batch %d  device %s  threads %d\n", c->name,
      c->image_width, c->image_height, opt_batch, opt_device ? opt_device : "cpu",
      opt_threads ? opt_threads : (int) g_get_num_processors ());
  printf ("runs %d  median %.2f ms  min %.2f ms  max %.2f ms  per image %.2f ms  %.1f img/s\n",
      opt_runs, median, ms[0], ms[opt_runs - 1], median / opt_batch,
      1000.0 * opt_batch / median);
  g_free (ms);
  g_free (input);
  g_free (logits);
  return 0;
fail:
  fprintf (stderr, "vim-infer: %s\n", err->message);
  g_error_free (err);
  g_free (input);
  g_free (logits);
  return 1;
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new ("info|classify|bench MODEL [IMAGE...]");
  g_option_context_set_summary (ctx,
      "Runs a Vision Mamba model file.\n\n"
      "  info MODEL              print the model's configuration\n"
      "  classify MODEL IMAGE... print the top-k classes of each image\n"
      "  bench MODEL             time the forward pass on a fixed input");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "vim-infer: %s\n", err->message);
    return 2;
  }
  if (argc < 3 || (strcmp (argv[1], "classify") == 0 && argc < 4)
      || opt_batch < 1 || opt_runs < 1 || opt_warmup < 0 || opt_top_k < 1) {
    char *help = g_option_context_get_help (ctx, TRUE, NULL);
    fprintf (stderr, "%s", help);
    g_free (help);
    return 2;
  }
  g_option_context_free (ctx);
  const char *cmd = argv[1];
  if (strcmp (cmd, "info") && strcmp (cmd, "classify") && strcmp (cmd, "bench")) {
    fprintf (stderr, "vim-infer: unknown command '%s' (info, classify, bench)\n", cmd);
    return 2;
  }
  VimModel *model = vim_model_open (argv[2], &err);
  if (model == NULL || (opt_labels && !vim_model_load_labels (model, opt_labels, &err))) {
    fprintf (stderr, "vim-infer: %s\n", err->message);
    return 1;
  }
  int status;
  if (strcmp (cmd, "info") == 0) {
    status = cmd_info (model);
  } else {
    VimRunnerOptions ro;
    VimRunner *runner = NULL;
    if (!parse_runner_options (&ro, &err)
        || (runner = vim_runner_new (model, &ro, &err)) == NULL) {
      fprintf (stderr, "vim-infer: %s\n", err->message);
      vim_model_unref (model);
      return 1;
    }
    status = strcmp (cmd, "bench") == 0 ? cmd_bench (model, runner)
        : cmd_classify (model, runner, argv + 3, argc - 3);
    vim_runner_free (runner);
  }
  vim_model_unref (model);
  return status;
}
