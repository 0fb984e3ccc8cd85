/* vim-infer: the engine's command line.
 *
 *   vim-infer info MODEL
 *   vim-infer classify [options] MODEL IMAGE...
 *   vim-infer segment [--mask-size grid|frame|WxH] [--out MASK.png] MODEL IMAGE...
 *   vim-infer bench [options] MODEL
 *   vim-infer eval-classify MODEL --raw FILE --size WxH --count N
 *   vim-infer eval-segment MODEL --raw FILE --size WxH --count N --masks OUT
 *
 * Images are decoded with gdk-pixbuf (PNG, JPEG, ...). The eval modes read
 * N packed RGB8 images of WxH (no header, no padding) and run them in
 * batches (--batch, default 32) for accuracy checks of a trained model:
 * eval-classify prints "index top1" per image, eval-segment writes each
 * image's argmax mask at frame size (W*H class bytes, row-major) to OUT. */
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
static int opt_batch = 0;       /* 0: 1 for bench, 32 for the eval modes */
static int opt_runs = 20;
static int opt_warmup = 3;
static int opt_threads = 0;
static int opt_cuda_device = -1;
static char *opt_mask_size = NULL;
static char *opt_out = NULL;
static char *opt_raw = NULL;
static char *opt_size = NULL;
static int opt_count = 0;
static char *opt_masks = NULL;

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
  { "mask-size", 0, 0, G_OPTION_ARG_STRING, &opt_mask_size, "segment: grid (default), frame or WxH", "S" },
  { "out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out, "segment: write the mask as a palette PNG", "FILE" },
  { "raw", 0, 0, G_OPTION_ARG_FILENAME, &opt_raw, "eval: packed RGB8 images", "FILE" },
  { "size", 0, 0, G_OPTION_ARG_STRING, &opt_size, "eval: image size", "WxH" },
  { "count", 0, 0, G_OPTION_ARG_INT, &opt_count, "eval: number of images", "N" },
  { "masks", 0, 0, G_OPTION_ARG_FILENAME, &opt_masks, "eval-segment: output masks", "FILE" },
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
  if (c->task == VIM_TASK_SEGMENTATION) {
    printf ("seg head:    blocks");
    for (int i = 0; i < c->n_seg_layers; i++)
      printf ("%s%d", i ? "," : " ", c->seg_layers[i]);
    printf (", %d channels, ignore_index %d\n", c->seg_channels, c->ignore_index);
  }
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
  float *logits = g_new (float, (size_t) opt_batch * vim_model_output_size (model));
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

/* ---- segment ---------------------------------------------------------------- */

static gboolean
parse_size (const char *s, int *w, int *h)
{
  char *end = NULL;
  gint64 a = g_ascii_strtoll (s, &end, 10);
  if (end == s || *end != 'x')
    return FALSE;
  const char *t = end + 1;
  gint64 b = g_ascii_strtoll (t, &end, 10);
  if (end == t || *end != '\0' || a < 1 || b < 1 || a > 65536 || b > 65536)
    return FALSE;
  *w = (int) a;
  *h = (int) b;
  return TRUE;
}

static gboolean
parse_mask_spec (VimMaskSpec *spec, GError **error)
{
  memset (spec, 0, sizeof *spec);
  if (opt_mask_size == NULL || strcmp (opt_mask_size, "grid") == 0)
    spec->mode = VIM_MASK_SIZE_GRID;
  else if (strcmp (opt_mask_size, "frame") == 0)
    spec->mode = VIM_MASK_SIZE_FRAME;
  else if (parse_size (opt_mask_size, &spec->width, &spec->height))
    spec->mode = VIM_MASK_SIZE_FIXED;
  else {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "--mask-size '%s' is not grid, frame or WxH", opt_mask_size);
    return FALSE;
  }
  return TRUE;
}

/* The mask in the default palette's colours, as a PNG. */
static gboolean
save_mask_png (const uint8_t *mask, int w, int h, const char *path,
    GError **error)
{
  const uint8_t *pal = vim_default_palette ();
  GdkPixbuf *pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, w, h);
  if (pb == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %dx%d is too large",
        path, w, h);
    return FALSE;
  }
  guint8 *px = gdk_pixbuf_get_pixels (pb);
  int stride = gdk_pixbuf_get_rowstride (pb);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      memcpy (px + (size_t) y * stride + 3 * x, pal + 3 * mask[(size_t) y * w + x], 3);
  gboolean ok = gdk_pixbuf_save (pb, path, "png", error, NULL);
  g_object_unref (pb);
  return ok;
}

/* --out for image i of n: the name itself for one image, NAME-i.png else. */
static char *
mask_path (int i, int n)
{
  if (n == 1)
    return g_strdup (opt_out);
  char *stem = g_strdup (opt_out);
  char *dot = strrchr (stem, '.');
  if (dot && !strchr (dot, '/'))
    *dot = '\0';
  char *p = g_strdup_printf ("%s-%d.png", stem, i);
  g_free (stem);
  return p;
}

static int
cmd_segment (VimModel *model, VimRunner *runner, char **images, int n_images)
{
  const VimModelConfig *c = vim_model_get_config (model);
  GError *err = NULL;
  VimMaskSpec spec;
  if (!parse_mask_spec (&spec, &err)) {
    fprintf (stderr, "vim-infer: %s\n", err->message);
    g_error_free (err);
    return 2;
  }
  float *fractions = g_new (float, c->num_classes);
  int *order = g_new (int, c->num_classes);
  int status = 0;
  for (int i = 0; i < n_images; i++) {
    VimFrame frame;
    VimSegResult res = { 0 };
    VimMaskGeometry g;
    uint8_t *mask = NULL;
    GdkPixbuf *pb = load_frame (images[i], &frame, &err);
    gboolean ok = pb != NULL
        && vim_model_mask_geometry (model, frame.width, frame.height, &spec, &g, &err);
    if (ok) {
      mask = g_malloc ((size_t) g.width * g.height);
      res.memory = VIM_MEMORY_HOST;
      res.classes = mask;
      res.classes_stride = g.width;
      res.fractions = fractions;
      ok = vim_runner_segment (runner, &frame, 1, &spec, &res, &err);
    }
    char *out = ok && opt_out ? mask_path (i, n_images) : NULL;
    if (ok && out)
      ok = save_mask_png (mask, res.geometry.width, res.geometry.height, out, &err);
    if (!ok) {
      fprintf (stderr, "vim-infer: %s\n", err->message);
      g_clear_error (&err);
      status = 1;
    } else {
      printf ("%s: mask %dx%d over frame rectangle (%.1f, %.1f) %.1fx%.1f%s%s\n",
          images[i], res.geometry.width, res.geometry.height, res.geometry.x,
          res.geometry.y, res.geometry.w, res.geometry.h, out ? " -> " : "",
          out ? out : "");
      /* classes present, largest share first (ties: lower id first) */
      for (int k = 0; k < c->num_classes; k++)
        order[k] = k;
      for (int a = 1; a < c->num_classes; a++)
        for (int b = a; b > 0 && fractions[order[b]] > fractions[order[b - 1]]; b--) {
          int t = order[b];
          order[b] = order[b - 1];
          order[b - 1] = t;
        }
      for (int k = 0; k < c->num_classes && fractions[order[k]] > 0; k++) {
        const char *label = vim_model_get_label (model, order[k]);
        printf ("  %-32s id %3d  %6.2f %%\n", label ? label : "(no label)",
            order[k], 100.0 * fractions[order[k]]);
      }
    }
    g_free (out);
    g_free (mask);
    g_clear_object (&pb);
  }
  g_free (order);
  g_free (fractions);
  return status;
}

/* ---- batch evaluation over raw RGB8 images ------------------------------------ */

static int
cmd_eval (VimModel *model, VimRunner *runner, gboolean segment)
{
  const VimModelConfig *c = vim_model_get_config (model);
  int w = 0, h = 0;
  if (opt_raw == NULL || opt_size == NULL || !parse_size (opt_size, &w, &h)
      || opt_count < 1 || (segment && opt_masks == NULL)) {
    fprintf (stderr, "vim-infer: %s needs --raw FILE --size WxH --count N%s\n",
        segment ? "eval-segment" : "eval-classify", segment ? " --masks OUT" : "");
    return 2;
  }
  if (segment != (c->task == VIM_TASK_SEGMENTATION)) {
    fprintf (stderr, "vim-infer: %s is a %s model\n", vim_model_get_path (model),
        c->task == VIM_TASK_SEGMENTATION ? "segmentation" : "classification");
    return 2;
  }
  const int batch = opt_batch > 0 ? opt_batch : 32;
  const size_t image_bytes = (size_t) w * h * 3;
  FILE *in = fopen (opt_raw, "rb");
  FILE *out = segment ? fopen (opt_masks, "wb") : NULL;
  if (in == NULL || (segment && out == NULL)) {
    fprintf (stderr, "vim-infer: cannot open %s\n", in == NULL ? opt_raw : opt_masks);
    if (in)
      fclose (in);
    return 1;
  }
  uint8_t *pixels = g_malloc (image_bytes * batch);
  uint8_t *masks = segment ? g_malloc ((size_t) w * h * batch) : NULL;
  float *logits = segment ? NULL : g_new (float, (size_t) batch * c->num_classes);
  VimFrame *frames = g_new0 (VimFrame, batch);
  VimSegResult *res = g_new0 (VimSegResult, batch);
  VimMaskSpec spec = { VIM_MASK_SIZE_FRAME, 0, 0 };
  GError *err = NULL;
  int status = 0;
  for (int done = 0; done < opt_count && status == 0; ) {
    int n = MIN (batch, opt_count - done);
    if (fread (pixels, image_bytes, n, in) != (size_t) n) {
      fprintf (stderr, "vim-infer: %s holds fewer than %d images of %dx%d RGB8\n",
          opt_raw, opt_count, w, h);
      status = 1;
      break;
    }
    for (int i = 0; i < n; i++) {
      frames[i] = (VimFrame) { VIM_PIXEL_RGB, w, h, { pixels + image_bytes * i },
        { (size_t) w * 3 }, VIM_MEMORY_HOST };
      res[i] = (VimSegResult) { VIM_MEMORY_HOST, masks ? masks + (size_t) w * h * i : NULL,
        (size_t) w, NULL, 0, NULL, { 0 } };
    }
    gboolean ok = segment ? vim_runner_segment (runner, frames, n, &spec, res, &err)
        : vim_runner_classify (runner, frames, n, logits, &err);
    if (!ok) {
      fprintf (stderr, "vim-infer: images %d..%d: %s\n", done, done + n - 1, err->message);
      g_clear_error (&err);
      status = 1;
      break;
    }
    for (int i = 0; i < n; i++) {
      if (segment) {
        /* masks at frame size: W x H bytes each, no padding */
        if (fwrite (res[i].classes, (size_t) w * h, 1, out) != 1) {
          fprintf (stderr, "vim-infer: writing %s failed\n", opt_masks);
          status = 1;
          break;
        }
      } else {
        const float *l = logits + (size_t) i * c->num_classes;
        int best = 0;
        for (int k = 1; k < c->num_classes; k++)
          if (l[k] > l[best])
            best = k;
        printf ("%d %d\n", done + i, best);
      }
    }
    done += n;
  }
  fclose (in);
  if (out && fclose (out) != 0 && status == 0) {
    fprintf (stderr, "vim-infer: writing %s failed\n", opt_masks);
    status = 1;
  }
  g_free (res);
  g_free (frames);
  g_free (logits);
  g_free (masks);
  g_free (pixels);
  return status;
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new (
      "info|classify|segment|bench|eval-classify|eval-segment MODEL [IMAGE...]");
  g_option_context_set_summary (ctx,
      "Runs a Vision Mamba model file.\n\n"
      "  info MODEL              print the model's configuration\n"
      "  classify MODEL IMAGE... print the top-k classes of each image\n"
      "  segment MODEL IMAGE...  print each image's class fractions (--mask-size, --out)\n"
      "  bench MODEL             time the forward pass on a fixed input\n"
      "  eval-classify MODEL     --raw FILE --size WxH --count N: 'index top1' per image\n"
      "  eval-segment MODEL      --raw FILE --size WxH --count N --masks OUT: frame-size\n"
      "                          argmax masks, W*H bytes per image");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "vim-infer: %s\n", err->message);
    return 2;
  }
  if (argc < 3
      || ((strcmp (argv[1], "classify") == 0 || strcmp (argv[1], "segment") == 0) && argc < 4)
      || opt_batch < 0 || opt_runs < 1 || opt_warmup < 0 || opt_top_k < 1) {
    char *help = g_option_context_get_help (ctx, TRUE, NULL);
    fprintf (stderr, "%s", help);
    g_free (help);
    return 2;
  }
  g_option_context_free (ctx);
  const char *cmd = argv[1];
  static const char *const commands[] = { "info", "classify", "segment", "bench",
    "eval-classify", "eval-segment", NULL };
  if (!g_strv_contains (commands, cmd)) {
    fprintf (stderr, "vim-infer: unknown command '%s' (info, classify, segment, "
        "bench, eval-classify, eval-segment)\n", cmd);
    return 2;
  }
  if (opt_batch == 0 && strcmp (cmd, "bench") == 0)
    opt_batch = 1;
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
    if (strcmp (cmd, "bench") == 0)
      status = cmd_bench (model, runner);
    else if (strcmp (cmd, "segment") == 0)
      status = cmd_segment (model, runner, argv + 3, argc - 3);
    else if (strcmp (cmd, "eval-classify") == 0)
      status = cmd_eval (model, runner, FALSE);
    else if (strcmp (cmd, "eval-segment") == 0)
      status = cmd_eval (model, runner, TRUE);
    else
      status = cmd_classify (model, runner, argv + 3, argc - 3);
    vim_runner_free (runner);
  }
  vim_model_unref (model);
  return status;
}
