/* libFuzzer harness for the model-file loader (safetensors container, JSON
 * header, metadata -> config, tensors against the config, labels).
 *
 * Each input is written to a file in a private directory and opened with
 * vim_model_open. When it opens and the model is small, it also runs: a
 * CPU runner classifies a small RGB frame and preprocesses an odd-sized
 * NV12 frame with the model's resize policy, and the logits go through
 * softmax and top-k with the model's labels. So everything a loaded file
 * can steer is exercised, not just the parser.
 *
 * The directory also holds labels files ("labels.txt", 2 lines, and
 * "labels10.txt", 10 lines) so labels_file is reachable.
 *
 * Build and run: see fuzz/README.md. */
#include <vim/vim.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *model_path;

/* Work per forward stays small, so exec/s stays high. */
static gboolean
small_enough (const VimModelConfig *c)
{
  return c->depth <= 4
      && (gint64) c->image_height * c->image_width <= 64 * 64
      && (gint64) c->seq_len * c->d_inner * c->d_state <= 1 << 16
      && (gint64) c->seq_len * (2 * c->d_inner + c->embed_dim) <= 1 << 16
      && (gint64) c->embed_dim * c->d_inner <= 1 << 16
      && (gint64) c->num_classes * c->embed_dim <= 1 << 16
      && (gint64) c->num_patches * 3 * c->patch_size * c->patch_size <= 1 << 16;
}

static void
write_text (const char *dir, const char *name, const char *text)
{
  char *p = g_build_filename (dir, name, NULL);
  if (!g_file_set_contents (p, text, -1, NULL))
    abort ();
  g_free (p);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *base = g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm"
      : g_get_tmp_dir ();
  char *tmpl = g_build_filename (base, "vim-fuzz-XXXXXX", NULL);
  if (g_mkdtemp (tmpl) == NULL) {
    fprintf (stderr, "fuzz-model-file: cannot create %s: %s\n", tmpl, g_strerror (errno));
    abort ();
  }
  model_path = g_build_filename (tmpl, "model.safetensors", NULL);
  write_text (tmpl, "labels.txt", "zero\none\n");
  write_text (tmpl, "labels10.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
  g_free (tmpl);
  /* the runner parallelizes with OpenMP; one thread keeps runs reproducible */
  g_setenv ("OMP_NUM_THREADS", "1", TRUE);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

static void
run_model (VimModel *m)
{
  const VimModelConfig *c = vim_model_get_config (m);
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.num_threads = 1;
  VimRunner *r = vim_runner_new (m, &o, NULL);
  if (r == NULL)
    return;

  /* a 7x5 RGB frame */
  guint8 rgb[5][7 * 3];
  for (int y = 0; y < 5; y++)
    for (int x = 0; x < 7 * 3; x++)
      rgb[y][x] = (guint8) (y * 41 + x * 13);
  VimFrame f = { 0 };
  f.format = VIM_PIXEL_RGB;
  f.width = 7;
  f.height = 5;
  f.planes[0] = rgb;
  f.strides[0] = sizeof rgb[0];
  float *logits = g_new (float, c->num_classes);
  GError *err = NULL;
  if (vim_runner_classify (r, &f, 1, logits, &err)) {
    float *probs = g_new (float, c->num_classes);
    vim_softmax (logits, c->num_classes, probs);
    VimClassScore top[5];
    int n = vim_top_k (m, probs, c->num_classes, 5, 0.0f, top);
    for (int i = 0; i < n; i++)
      if (top[i].label)
        (void) strlen (top[i].label);
    g_free (probs);
  } else {
    g_clear_error (&err);
  }
  g_free (logits);

  /* an odd-sized NV12 frame through the preprocessing alone */
  guint8 luma[3][5], chroma[2][6];
  memset (luma, 200, sizeof luma);
  memset (chroma, 90, sizeof chroma);
  VimFrame n12 = { 0 };
  n12.format = VIM_PIXEL_NV12;
  n12.width = 5;
  n12.height = 3;
  n12.planes[0] = luma;
  n12.planes[1] = chroma;
  n12.strides[0] = 5;
  n12.strides[1] = 6;
  float *in = g_new (float, 3 * (size_t) c->image_height * c->image_width);
  if (!vim_runner_preprocess (r, &n12, 1, in, &err))
    g_clear_error (&err);
  g_free (in);
  vim_runner_free (r);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int fd = open (model_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    abort ();
  for (size_t off = 0; off < size;) {
    ssize_t w = write (fd, data + off, size - off);
    if (w <= 0)
      abort ();
    off += (size_t) w;
  }
  close (fd);

  GError *err = NULL;
  VimModel *m = vim_model_open (model_path, &err);
  if (m == NULL) {
    /* every refusal is a VIM_ERROR that names the file */
    if (err == NULL || err->domain != VIM_ERROR || err->message == NULL
        || strstr (err->message, model_path) == NULL) {
      fprintf (stderr, "fuzz-model-file: bad error: %s\n", err ? err->message : "(none)");
      abort ();
    }
    g_error_free (err);
    return 0;
  }
  if (err != NULL)
    abort ();
  const VimModelConfig *c = vim_model_get_config (m);
  for (int i = 0; i < c->num_classes && i < 16; i++) {
    const char *l = vim_model_get_label (m, i);
    if (l)
      (void) strlen (l);
  }
  if (small_enough (c))
    run_model (m);
  vim_model_unref (m);
  return 0;
}
