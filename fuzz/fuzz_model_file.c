/* libFuzzer harness for the model-file loader (safetensors container, JSON
 * header, metadata -> config, tensors against the config, labels).
 *
 * Each input is written to a file in a private directory and opened with
 * vim_model_open. When it opens and the model is small, it also runs: a
 * CPU runner classifies a small RGB frame and preprocesses an odd-sized
 * NV12 frame with the model's resize policy, and the logits go through
 * softmax and top-k with the model's labels. A segmenter gets its mask
 * geometry for several frame sizes and mask specs, the host postprocessing
 * (vim_segment_logits) of deterministic pseudo-random logits, and, when
 * small, vim_runner_segment on the RGB frame. So everything a loaded file
 * can steer is exercised, not just the parser.
 *
 * The directory also holds labels files ("labels.txt", 2 lines, and
 * "labels10.txt", 10 lines) so labels_file is reachable.
 *
 * Build and run: see fuzz/README.md. */
#include <vim/vim.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
      && (gint64) c->num_patches * 3 * c->patch_size * c->patch_size <= 1 << 16
      /* the segmentation head (all 0 for a classifier) and its logits */
      && (gint64) c->n_seg_layers * c->seg_channels * c->embed_dim <= 1 << 16
      && (gint64) c->num_patches * c->seg_channels * (c->n_seg_layers + 9) <= 1 << 16
      && (gint64) c->seg_channels * c->num_classes <= 1 << 16
      && (gint64) c->num_patches * c->num_classes <= 1 << 16;
}

/* A failed call must leave a VIM_ERROR with a message. */
static void
check_refusal (const char *what, GError *err)
{
  if (err == NULL || err->domain != VIM_ERROR || err->message == NULL) {
    fprintf (stderr, "fuzz-model-file: %s: bad error: %s\n", what,
        err ? err->message : "(none)");
    abort ();
  }
}

/* A mask's classes are ids below K; the fractions are shares that sum to 1. */
static void
check_mask (const VimModelConfig *c, const VimMaskGeometry *g,
    const guint8 *classes, const float *fractions)
{
  for (int i = 0; i < g->width * g->height; i++)
    if (classes[i] >= c->num_classes) {
      fprintf (stderr, "fuzz-model-file: mask class %d of %d classes\n",
          classes[i], c->num_classes);
      abort ();
    }
  double sum = 0;
  for (int k = 0; k < c->num_classes; k++) {
    if (!(fractions[k] >= 0.0f && fractions[k] <= 1.0f))
      abort ();
    sum += fractions[k];
  }
  if (sum < 0.999 || sum > 1.001) {
    fprintf (stderr, "fuzz-model-file: mask fractions sum to %g\n", sum);
    abort ();
  }
}

/* Largest mask we postprocess (pixels), so a run stays short. */
#define SEG_MAX_MASK 4096

/* Mask geometry for a few frames and specs; each geometry that fits gets
 * vim_segment_logits on pseudo-random logits (one pass with non-finite
 * values, whose masks must still hold valid ids). */
static void
run_segmentation_host (const VimModel *m, const uint8_t *data, size_t size)
{
  const VimModelConfig *c = vim_model_get_config (m);
  static const int frames[][2] = {
    { 7, 5 }, { 1, 1 }, { 5, 7 }, { 3, 64 }, { 640, 480 }, { 65536, 1 },
    { 65537, 2 }, { 0, 5 }, { 5, -1 },
  };
  static const VimMaskSpec specs[] = {
    { VIM_MASK_SIZE_GRID, 0, 0 }, { VIM_MASK_SIZE_FRAME, 0, 0 },
    { VIM_MASK_SIZE_FIXED, 3, 2 }, { VIM_MASK_SIZE_FIXED, 1, 17 },
    { VIM_MASK_SIZE_FIXED, 16384, 16384 }, { VIM_MASK_SIZE_FIXED, 0, 4 },
    { VIM_MASK_SIZE_FIXED, 16385, 1 }, { (VimMaskSizeMode) 7, 1, 1 },
  };
  const size_t n_logits = vim_model_output_size (m);
  const gboolean small = n_logits <= 1 << 16;
  float *logits = NULL;
  guint8 *classes = g_new (guint8, SEG_MAX_MASK), *conf = g_new (guint8, SEG_MAX_MASK);
  float *fractions = g_new (float, c->num_classes);
  if (small) {
    /* logits from the input's bytes, so they differ between inputs */
    guint32 h = 2166136261u;
    for (size_t i = 0; i < size; i += 1 + size / 64)
      h = (h ^ data[i]) * 16777619u;
    logits = g_new (float, n_logits);
    for (size_t i = 0; i < n_logits; i++) {
      h = h * 1664525u + 1013904223u;
      logits[i] = (float) ((int32_t) h >> 8) / (float) (1 << 20);
    }
  }
  GError *err = NULL;
  for (guint f = 0; f < G_N_ELEMENTS (frames); f++)
    for (guint s = 0; s < G_N_ELEMENTS (specs); s++) {
      VimMaskGeometry g;
      if (!vim_model_mask_geometry (m, frames[f][0], frames[f][1], &specs[s], &g, &err)) {
        check_refusal ("mask geometry", err);
        g_clear_error (&err);
        continue;
      }
      if (g.width < 1 || g.height < 1) {
        fprintf (stderr, "fuzz-model-file: %dx%d mask for a %dx%d frame\n",
            g.width, g.height, frames[f][0], frames[f][1]);
        abort ();
      }
      if (!small || (gint64) g.width * g.height > SEG_MAX_MASK)
        continue;
      VimSegResult r = { 0 };
      r.memory = VIM_MEMORY_HOST;
      r.classes = classes;
      r.classes_stride = g.width;
      r.confidence = (f + s) % 2 ? conf : NULL;
      r.confidence_stride = g.width;
      r.fractions = fractions;
      if (!vim_segment_logits (m, logits, &g, &r, &err)) {
        /* crop geometry of a mutated model may be empty or not finite */
        check_refusal ("segment logits", err);
        g_clear_error (&err);
        continue;
      }
      check_mask (c, &g, classes, fractions);
    }
  /* non-finite logits: still valid class ids */
  if (small) {
    logits[0] = NAN;
    logits[n_logits / 2] = INFINITY;
    logits[n_logits - 1] = -INFINITY;
    VimMaskGeometry g;
    const VimMaskSpec grid = { VIM_MASK_SIZE_GRID, 0, 0 };
    if (vim_model_mask_geometry (m, 7, 5, &grid, &g, &err)
        && (gint64) g.width * g.height <= SEG_MAX_MASK) {
      VimSegResult r = { 0 };
      r.classes = classes;
      r.classes_stride = g.width;
      r.confidence = conf;
      r.confidence_stride = g.width;
      r.fractions = fractions;
      if (vim_segment_logits (m, logits, &g, &r, &err))
        check_mask (c, &g, classes, fractions);
    }
    if (err != NULL) {
      check_refusal ("segment non-finite logits", err);
      g_clear_error (&err);
    }
  }
  g_free (fractions);
  g_free (conf);
  g_free (classes);
  g_free (logits);
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
  if (c->task == VIM_TASK_SEGMENTATION) {
    /* refused for a segmenter; the mask of the same frame instead */
    if (vim_runner_classify (r, &f, 1, logits, &err))
      abort ();
    check_refusal ("classify a segmenter", err);
    g_clear_error (&err);
    static const VimMaskSpec specs[] = {
      { VIM_MASK_SIZE_FRAME, 0, 0 }, { VIM_MASK_SIZE_GRID, 0, 0 },
    };
    for (guint s = 0; s < G_N_ELEMENTS (specs); s++) {
      VimMaskGeometry g;
      if (!vim_model_mask_geometry (m, f.width, f.height, &specs[s], &g, &err)
          || (gint64) g.width * g.height > SEG_MAX_MASK) {
        g_clear_error (&err);
        continue;
      }
      VimSegResult res = { 0 };
      res.classes = g_new (guint8, (size_t) g.width * g.height);
      res.classes_stride = g.width;
      res.confidence = s == 0 ? g_new (guint8, (size_t) g.width * g.height) : NULL;
      res.confidence_stride = g.width;
      res.fractions = g_new (float, c->num_classes);
      if (vim_runner_segment (r, &f, 1, &specs[s], &res, &err)) {
        if (res.geometry.width != g.width || res.geometry.height != g.height)
          abort ();
        check_mask (c, &g, res.classes, res.fractions);
      } else {
        check_refusal ("segment", err);
        g_clear_error (&err);
      }
      g_free (res.fractions);
      g_free (res.confidence);
      g_free (res.classes);
    }
  } else if (vim_runner_classify (r, &f, 1, logits, &err)) {
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
  if (c->task == VIM_TASK_SEGMENTATION)
    run_segmentation_host (m, data, size);
  if (small_enough (c))
    run_model (m);
  vim_model_unref (m);
  return 0;
}
