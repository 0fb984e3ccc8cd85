/* Segmentation outputs on the CPU: mask geometry per resize policy and
 * size mode, the sampling of mask pixels on the token grid (checked against
 * the preprocessing map it must invert), host postprocessing (identity on
 * the grid, bilinear values, ties, confidence, fractions) and
 * vim_runner_segment (same mask as forward + vim_segment_logits, argument
 * errors). The exact match with PyTorch's interpolate is check_segment_torch.py. */
#include "vim-private.h"
#include "../loader/model_builder.h"
#include "../common/splitmix.h"

#include <glib/gstdio.h>
#include <math.h>

static char *tmpdir;

/* The loader tests' tiny segmenter: 16x16 input, 2x2 grid, 3 classes. */
static VimModel *
open_tiny_seg (const char *resize)
{
  ModelSpec *s = mb_new_tiny_seg ();
  mb_set_meta (s, "resize", resize);
  GByteArray *b = mb_serialize (s);
  char *file = g_strdup_printf ("seg-%s.safetensors", resize);
  char *path = g_build_filename (tmpdir, file, NULL);
  GError *err = NULL;
  g_file_set_contents (path, (const char *) b->data, b->len, &err);
  g_assert_no_error (err);
  VimModel *m = vim_model_open (path, &err);
  g_assert_no_error (err);
  g_unlink (path);
  g_free (path);
  g_free (file);
  g_byte_array_unref (b);
  mb_free (s);
  return m;
}

static VimModel *
open_tiny_classifier (void)
{
  ModelSpec *s = mb_new_tiny ();
  GByteArray *b = mb_serialize (s);
  char *path = g_build_filename (tmpdir, "cls.safetensors", NULL);
  g_file_set_contents (path, (const char *) b->data, b->len, NULL);
  GError *err = NULL;
  VimModel *m = vim_model_open (path, &err);
  g_assert_no_error (err);
  g_unlink (path);
  g_free (path);
  g_byte_array_unref (b);
  mb_free (s);
  return m;
}

/* ---- geometry ---------------------------------------------------------------- */

static void
test_geometry_stretch_letterbox (void)
{
  static const char *const policies[] = { "stretch", "letterbox" };
  for (int p = 0; p < 2; p++) {
    VimModel *m = open_tiny_seg (policies[p]);
    VimMaskGeometry g;
    GError *err = NULL;
    VimMaskSpec grid = { VIM_MASK_SIZE_GRID, 0, 0 };
    g_assert_true (vim_model_mask_geometry (m, 640, 480, &grid, &g, &err));
    g_assert_cmpint (g.width, ==, 2);
    g_assert_cmpint (g.height, ==, 2);
    /* the whole frame, letterbox borders cut off */
    g_assert_cmpfloat (g.x, ==, 0);
    g_assert_cmpfloat (g.y, ==, 0);
    g_assert_cmpfloat (g.w, ==, 640);
    g_assert_cmpfloat (g.h, ==, 480);
    VimMaskSpec frame = { VIM_MASK_SIZE_FRAME, 0, 0 };
    g_assert_true (vim_model_mask_geometry (m, 641, 479, &frame, &g, &err));
    g_assert_cmpint (g.width, ==, 641);
    g_assert_cmpint (g.height, ==, 479);
    VimMaskSpec fixed = { VIM_MASK_SIZE_FIXED, 100, 50 };
    g_assert_true (vim_model_mask_geometry (m, 640, 480, &fixed, &g, &err));
    g_assert_cmpint (g.width, ==, 100);
    g_assert_cmpint (g.height, ==, 50);
    g_assert_cmpfloat (g.w, ==, 640);
    g_assert_no_error (err);
    vim_model_unref (m);
  }
}

static void
test_geometry_crop (void)
{
  /* 16x16 input, crop_ratio 0.875: short side to floor(16 / 0.875) = 18;
   * a 640x480 frame: s = 480 / 18 source pixels per resized pixel, the
   * crop is 16 s = 426.67 wide at x = (640 / s - 16) / 2 * s = 106.67 */
  VimModel *m = open_tiny_seg ("short-side-crop");
  VimMaskGeometry g;
  GError *err = NULL;
  VimMaskSpec frame = { VIM_MASK_SIZE_FRAME, 0, 0 };
  g_assert_true (vim_model_mask_geometry (m, 640, 480, &frame, &g, &err));
  g_assert_no_error (err);
  const double s = 480.0 / 18;
  g_assert_cmpfloat_with_epsilon (g.w, 16 * s, 1e-3);
  g_assert_cmpfloat_with_epsilon (g.h, 16 * s, 1e-3);
  g_assert_cmpfloat_with_epsilon (g.x, (640 / s - 16) / 2 * s, 1e-3);
  g_assert_cmpfloat_with_epsilon (g.y, (18 - 16) / 2.0 * s, 1e-3);
  g_assert_cmpint (g.width, ==, 427);
  g_assert_cmpint (g.height, ==, 427);
  vim_model_unref (m);
}

static void
test_geometry_errors (void)
{
  VimModel *m = open_tiny_seg ("stretch"), *cls = open_tiny_classifier ();
  VimMaskGeometry g;
  GError *err = NULL;
  VimMaskSpec grid = { VIM_MASK_SIZE_GRID, 0, 0 };
  g_assert_false (vim_model_mask_geometry (cls, 64, 64, &grid, &g, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "not a segmentation model"));
  g_clear_error (&err);
  static const VimMaskSpec bad[] = {
    { VIM_MASK_SIZE_FIXED, 0, 10 }, { VIM_MASK_SIZE_FIXED, 10, 16385 },
    { (VimMaskSizeMode) 7, 10, 10 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_false (vim_model_mask_geometry (m, 64, 64, &bad[i], &g, &err));
    g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
    g_clear_error (&err);
  }
  g_assert_false (vim_model_mask_geometry (m, 64, 64, NULL, &g, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_model_mask_geometry (m, 0, 64, &grid, &g, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  vim_model_unref (cls);
  vim_model_unref (m);
}

/* ---- sampling ---------------------------------------------------------------- */

/* The grid coordinate of mask pixel (mx, my) the long way round: its centre
 * in frame coordinates (from the geometry's rectangle), then into the
 * network input by inverting preprocessing's map (sx = (ox + 0.5) * scale +
 * offset - 0.5 for output pixel ox, i.e. frame position X = sx + 0.5 lands
 * at input position (X - offset) / scale), then onto the token grid. */
static void
grid_coord_via_preprocess (const VimModelConfig *c, int fw, int fh,
    const VimMaskGeometry *g, int mx, int my, double *gx, double *gy)
{
  VimResizeMap map;
  vim_resize_map_compute (c, fw, fh, &map);
  double X = g->x + (mx + 0.5) * g->w / g->width;
  double Y = g->y + (my + 0.5) * g->h / g->height;
  double u = (X - map.offset_x) / map.scale_x;    /* continuous input coordinate */
  double v = (Y - map.offset_y) / map.scale_y;
  *gx = u * c->grid_w / c->image_width - 0.5;
  *gy = v * c->grid_h / c->image_height - 0.5;
}

static void
test_sampling_inverts_preprocess (void)
{
  static const char *const policies[] = { "stretch", "letterbox", "short-side-crop" };
  static const int frames[][2] = { { 640, 480 }, { 480, 640 }, { 17, 93 }, { 16, 16 }, { 1920, 1080 } };
  static const VimMaskSpec specs[] = {
    { VIM_MASK_SIZE_GRID, 0, 0 }, { VIM_MASK_SIZE_FRAME, 0, 0 },
    { VIM_MASK_SIZE_FIXED, 37, 11 },
  };
  for (int p = 0; p < 3; p++) {
    VimModel *m = open_tiny_seg (policies[p]);
    const VimModelConfig *c = vim_model_get_config (m);
    for (guint f = 0; f < G_N_ELEMENTS (frames); f++)
      for (guint k = 0; k < G_N_ELEMENTS (specs); k++) {
        VimMaskGeometry g;
        g_assert_true (vim_model_mask_geometry (m, frames[f][0], frames[f][1],
                &specs[k], &g, NULL));
        VimSegSampling s;
        vim_seg_sampling_compute (c, &g, &s);
        const int xs[] = { 0, g.width / 2, g.width - 1 };
        const int ys[] = { 0, g.height / 3, g.height - 1 };
        for (int i = 0; i < 3; i++) {
          double gx, gy;
          grid_coord_via_preprocess (c, frames[f][0], frames[f][1], &g, xs[i],
              ys[i], &gx, &gy);
          double ours_x = (xs[i] + 0.5) * s.scale_x + s.offset_x;
          double ours_y = (ys[i] + 0.5) * s.scale_y + s.offset_y;
          /* the preprocessing map is float: agree to its precision */
          if (fabs (ours_x - gx) > 1e-4 || fabs (ours_y - gy) > 1e-4)
            g_error ("%s %dx%d mask %dx%d pixel (%d, %d): grid (%g, %g), "
                "via preprocessing (%g, %g)", policies[p], frames[f][0],
                frames[f][1], g.width, g.height, xs[i], ys[i], ours_x, ours_y,
                gx, gy);
        }
      }
    vim_model_unref (m);
  }
}

/* ---- postprocessing -------------------------------------------------------------- */

typedef struct {
  uint8_t *classes, *confidence;
  float fractions[3];
  VimSegResult r;
} Mask;

static void
mask_init (Mask *k, const VimMaskGeometry *g, int pad)
{
  size_t stride = g->width + pad;
  k->classes = g_malloc0 (stride * g->height);
  k->confidence = g_malloc0 (stride * g->height);
  k->r = (VimSegResult) { VIM_MEMORY_HOST, k->classes, stride, k->confidence,
    stride, k->fractions, { 0 } };
}

static void
mask_clear (Mask *k)
{
  g_free (k->classes);
  g_free (k->confidence);
}

/* logits (3, 2, 2) */
#define L(k, r, c) ((k) * 4 + (r) * 2 + (c))

static void
test_grid_identity (void)
{
  VimModel *m = open_tiny_seg ("stretch");
  float logits[12];
  VimMaskGeometry g;
  VimMaskSpec grid = { VIM_MASK_SIZE_GRID, 0, 0 };
  g_assert_true (vim_model_mask_geometry (m, 300, 200, &grid, &g, NULL));
  for (int seed = 1; seed <= 50; seed++) {
    vim_test_uniform (seed, 3, logits, 12);
    Mask k;
    mask_init (&k, &g, 3);
    GError *err = NULL;
    g_assert_true (vim_segment_logits (m, logits, &g, &k.r, &err));
    g_assert_no_error (err);
    int count[3] = { 0 };
    for (int r = 0; r < 2; r++)
      for (int c = 0; c < 2; c++) {
        int best = 0;
        double sum = 0;
        for (int cl = 1; cl < 3; cl++)
          if (logits[L (cl, r, c)] > logits[L (best, r, c)])
            best = cl;
        for (int cl = 0; cl < 3; cl++)
          sum += exp ((double) logits[L (cl, r, c)] - logits[L (best, r, c)]);
        g_assert_cmpint (k.classes[r * k.r.classes_stride + c], ==, best);
        g_assert_cmpint (k.confidence[r * k.r.confidence_stride + c], ==,
            (int) lround (255 / sum));
        count[best]++;
      }
    for (int cl = 0; cl < 3; cl++)
      g_assert_cmpfloat (k.fractions[cl], ==, count[cl] / 4.0f);
    g_assert_cmpint (k.r.geometry.width, ==, 2);
    mask_clear (&k);
  }
  vim_model_unref (m);
}

/* A 2x2 grid upsampled to 8x8 on stretch: mask pixel x samples grid
 * coordinate (x + 0.5) / 4 - 0.5, i.e. -0.375 (clamped to 0), -0.125 (0),
 * 0.125, 0.375, 0.625, 0.875, 1.125 (-> 1), 1.375 (-> 1). Class 1's logit
 * rises along x from 0 to 1 while class 0 stays at 0.5: class 1 wins where
 * its value passes 0.5, x >= 4 (no pixel falls on a tie). */
static void
test_bilinear_values (void)
{
  VimModel *m = open_tiny_seg ("stretch");
  float logits[12] = { 0 };
  for (int r = 0; r < 2; r++) {
    logits[L (0, r, 0)] = logits[L (0, r, 1)] = 0.5f;
    logits[L (1, r, 0)] = 0.0f;
    logits[L (1, r, 1)] = 1.0f;
    logits[L (2, r, 0)] = logits[L (2, r, 1)] = -5.0f;
  }
  VimMaskGeometry g;
  VimMaskSpec fixed = { VIM_MASK_SIZE_FIXED, 8, 8 };
  g_assert_true (vim_model_mask_geometry (m, 8, 8, &fixed, &g, NULL));
  Mask k;
  mask_init (&k, &g, 0);
  g_assert_true (vim_segment_logits (m, logits, &g, &k.r, NULL));
  static const double gx[8] = { 0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1 };
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 8; x++) {
      double v1 = gx[x];  /* class 1's interpolated logit */
      int want = v1 > 0.5 ? 1 : 0;
      double p = 1.0 / (1.0 + exp (-fabs (v1 - 0.5)) + exp (-5.0 - fmax (v1, 0.5)));
      g_assert_cmpint (k.classes[y * 8 + x], ==, want);
      g_assert_cmpint (k.confidence[y * 8 + x], ==, (int) lround (255 * p));
    }
  g_assert_cmpfloat (k.fractions[0], ==, 0.5f);
  g_assert_cmpfloat (k.fractions[1], ==, 0.5f);
  g_assert_cmpfloat (k.fractions[2], ==, 0.0f);
  mask_clear (&k);

  /* all equal: ties go to the lowest class, confidence 1/3 */
  for (int i = 0; i < 12; i++)
    logits[i] = 0.25f;
  mask_init (&k, &g, 0);
  g_assert_true (vim_segment_logits (m, logits, &g, &k.r, NULL));
  for (int i = 0; i < 64; i++) {
    g_assert_cmpint (k.classes[i], ==, 0);
    g_assert_cmpint (k.confidence[i], ==, 85);
  }
  g_assert_cmpfloat (k.fractions[0], ==, 1.0f);
  mask_clear (&k);
  vim_model_unref (m);
}

/* Letterbox: a 32x16 frame fills input rows [4, 12) of the 16x16 input, so
 * its mask rows sample grid rows 0 .. 1 only (no border): with class 1
 * rising from grid row 0 to row 1, the top half of the mask is class 0 and
 * the bottom half class 1; stretch of the same frame samples rows -0.25 ..
 * 1.25 (clamped), which also splits in half, but letterbox's sampled values
 * are those of the content rows: check one value through the confidence. */
static void
test_letterbox_content_only (void)
{
  VimModel *m = open_tiny_seg ("letterbox");
  float logits[12] = { 0 };
  for (int c = 0; c < 2; c++) {
    logits[L (0, 0, c)] = logits[L (0, 1, c)] = 0.5f;
    logits[L (1, 0, c)] = 0.0f;
    logits[L (1, 1, c)] = 1.0f;
    logits[L (2, 0, c)] = logits[L (2, 1, c)] = -30.0f;
  }
  VimMaskGeometry g;
  VimMaskSpec fixed = { VIM_MASK_SIZE_FIXED, 4, 4 };
  g_assert_true (vim_model_mask_geometry (m, 32, 16, &fixed, &g, NULL));
  Mask k;
  mask_init (&k, &g, 0);
  g_assert_true (vim_segment_logits (m, logits, &g, &k.r, NULL));
  /* mask row y: input row 4 + (y + 0.5) * 2 -> grid (4 + (y + .5) * 2) / 8 - .5
   * = 0.125, 0.375, 0.625, 0.875 (stretch would give 0, 0.25, 0.75, 1) */
  static const double gy[4] = { 0.125, 0.375, 0.625, 0.875 };
  for (int y = 0; y < 4; y++) {
    int want = gy[y] > 0.5;
    double p = 1.0 / (1.0 + exp (-fabs (gy[y] - 0.5)));
    for (int x = 0; x < 4; x++) {
      g_assert_cmpint (k.classes[y * 4 + x], ==, want);
      g_assert_cmpint (k.confidence[y * 4 + x], ==, (int) lround (255 * p));
    }
  }
  mask_clear (&k);
  vim_model_unref (m);
}

static void
test_logits_errors (void)
{
  VimModel *m = open_tiny_seg ("stretch"), *cls = open_tiny_classifier ();
  float logits[12] = { 0 };
  VimMaskGeometry g;
  VimMaskSpec grid = { VIM_MASK_SIZE_GRID, 0, 0 };
  g_assert_true (vim_model_mask_geometry (m, 20, 20, &grid, &g, NULL));
  Mask k;
  mask_init (&k, &g, 0);
  GError *err = NULL;
  g_assert_false (vim_segment_logits (cls, logits, &g, &k.r, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_segment_logits (m, NULL, &g, &k.r, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  k.r.classes_stride = 1;
  g_assert_false (vim_segment_logits (m, logits, &g, &k.r, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  k.r.classes_stride = 2;
  k.r.memory = VIM_MEMORY_CUDA;
  g_assert_false (vim_segment_logits (m, logits, &g, &k.r, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  mask_clear (&k);
  vim_model_unref (cls);
  vim_model_unref (m);
}

/* ---- the runner -------------------------------------------------------------- */

static VimFrame
rgb_frame (int w, int h, uint8_t *pixels, int seed)
{
  float *u = g_new (float, (size_t) w * h * 3);
  vim_test_uniform (seed, 9, u, (size_t) w * h * 3);
  for (size_t i = 0; i < (size_t) w * h * 3; i++)
    pixels[i] = (uint8_t) (128 + 127 * u[i]);
  g_free (u);
  VimFrame f = { VIM_PIXEL_RGB, w, h, { pixels }, { (size_t) w * 3 }, VIM_MEMORY_HOST };
  return f;
}

static void
test_runner_segment (void)
{
  VimModel *m = open_tiny_seg ("letterbox");
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.num_threads = 2;
  GError *err = NULL;
  VimRunner *r = vim_runner_new (m, &o, &err);
  g_assert_no_error (err);
  enum { N = 3 };
  static const int sizes[N][2] = { { 40, 24 }, { 16, 16 }, { 9, 31 } };
  uint8_t *pix[N];
  VimFrame frames[N];
  for (int i = 0; i < N; i++) {
    pix[i] = g_malloc ((size_t) sizes[i][0] * sizes[i][1] * 3);
    frames[i] = rgb_frame (sizes[i][0], sizes[i][1], pix[i], i + 1);
  }
  VimMaskSpec spec = { VIM_MASK_SIZE_FRAME, 0, 0 };
  Mask k[N];
  VimSegResult res[N];
  for (int i = 0; i < N; i++) {
    VimMaskGeometry g;
    g_assert_true (vim_model_mask_geometry (m, sizes[i][0], sizes[i][1], &spec, &g, NULL));
    mask_init (&k[i], &g, 5);
    res[i] = k[i].r;
  }
  g_assert_true (vim_runner_segment (r, frames, N, &spec, res, &err));
  g_assert_no_error (err);

  /* the same thing by hand: preprocess, forward, host postprocessing */
  const VimModelConfig *c = vim_model_get_config (m);
  float *input = g_new (float, (size_t) N * 3 * c->image_height * c->image_width);
  const size_t per = vim_model_output_size (m);
  float *logits = g_new (float, N * per);
  g_assert_true (vim_runner_preprocess (r, frames, N, input, NULL));
  g_assert_true (vim_runner_forward (r, input, N, logits, NULL));
  for (int i = 0; i < N; i++) {
    g_assert_cmpint (res[i].geometry.width, ==, sizes[i][0]);
    g_assert_cmpint (res[i].geometry.height, ==, sizes[i][1]);
    Mask e;
    mask_init (&e, &res[i].geometry, 0);
    g_assert_true (vim_segment_logits (m, logits + per * i, &res[i].geometry, &e.r, NULL));
    float sum = 0;
    for (int y = 0; y < sizes[i][1]; y++)
      for (int x = 0; x < sizes[i][0]; x++) {
        g_assert_cmpint (res[i].classes[y * res[i].classes_stride + x], ==,
            e.classes[y * sizes[i][0] + x]);
        g_assert_cmpint (res[i].confidence[y * res[i].confidence_stride + x], ==,
            e.confidence[y * sizes[i][0] + x]);
      }
    for (int cl = 0; cl < 3; cl++) {
      g_assert_cmpfloat (res[i].fractions[cl], ==, e.fractions[cl]);
      sum += res[i].fractions[cl];
    }
    g_assert_cmpfloat_with_epsilon (sum, 1.0f, 1e-6);
    mask_clear (&e);
  }

  /* errors: device results on the CPU, missing buffers, classify on a segmenter */
  res[1].memory = VIM_MEMORY_CUDA;
  g_assert_false (vim_runner_segment (r, frames, N, &spec, res, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "host memory"));
  g_clear_error (&err);
  res[1].memory = VIM_MEMORY_HOST;
  uint8_t *keep = res[2].classes;
  res[2].classes = NULL;
  g_assert_false (vim_runner_segment (r, frames, N, &spec, res, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  res[2].classes = keep;
  g_assert_false (vim_runner_segment (r, frames, N, NULL, res, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_runner_classify (r, frames, 1, logits, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  for (int i = 0; i < N; i++) {
    mask_clear (&k[i]);
    g_free (pix[i]);
  }
  g_free (logits);
  g_free (input);
  vim_runner_free (r);
  vim_model_unref (m);
}

static void
test_runner_segment_classifier (void)
{
  VimModel *m = open_tiny_classifier ();
  VimRunner *r = vim_runner_new (m, NULL, NULL);
  uint8_t pix[16 * 16 * 3], cls[4];
  VimFrame f = rgb_frame (16, 16, pix, 1);
  VimMaskSpec spec = { VIM_MASK_SIZE_GRID, 0, 0 };
  VimSegResult res = { VIM_MEMORY_HOST, cls, 2, NULL, 0, NULL, { 0 } };
  GError *err = NULL;
  g_assert_false (vim_runner_segment (r, &f, 1, &spec, &res, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "classification model"));
  g_clear_error (&err);
  vim_runner_free (r);
  vim_model_unref (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("vim-segment-XXXXXX", NULL);
  g_test_add_func ("/segment/geometry/stretch-letterbox", test_geometry_stretch_letterbox);
  g_test_add_func ("/segment/geometry/short-side-crop", test_geometry_crop);
  g_test_add_func ("/segment/geometry/errors", test_geometry_errors);
  g_test_add_func ("/segment/sampling/inverts-preprocessing", test_sampling_inverts_preprocess);
  g_test_add_func ("/segment/logits/grid-identity", test_grid_identity);
  g_test_add_func ("/segment/logits/bilinear-values", test_bilinear_values);
  g_test_add_func ("/segment/logits/letterbox-content-only", test_letterbox_content_only);
  g_test_add_func ("/segment/logits/errors", test_logits_errors);
  g_test_add_func ("/segment/runner/cpu", test_runner_segment);
  g_test_add_func ("/segment/runner/classifier-refused", test_runner_segment_classifier);
  int rc = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return rc;
}
