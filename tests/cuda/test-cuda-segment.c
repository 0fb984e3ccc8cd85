/* The CUDA runner on a segmentation model, against the CPU engine.
 *
 *   test-cuda-segment --model FILE [--cpu-batch N] [--batch N]
 *                     [--precisions fp32,fp16,bf16] [--segment] [--frames N]
 *
 * --cpu-batch N  logits (K, grid_h, grid_w) of N random inputs: fp32
 *                max|a-b|/max|b| <= 1e-4 against the CPU runner; fp16/bf16
 *                the same argmax as the CPU on >= 99% of the grid cells
 *                (and the error is printed); a second run (the captured
 *                graph) equals the first
 * --batch N      CUDA on a batch of N; images 0 and N-1 again alone
 * --segment      vim_runner_segment masks of --frames frames of several
 *                sizes, all three mask-size modes, host and device results,
 *                host and device frames: classes equal to the CPU runner's
 *                on >= 99.9% of pixels (fp32; >= 99% fp16/bf16), confidence
 *                within 1 (fp32; 8 fp16/bf16) on as many, fractions equal
 *                to the mask's histogram and within the share of differing
 *                pixels of the CPU's; bytes beyond the mask width untouched
 * Exit 77 without a usable GPU. */
#include <vim/vim.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/splitmix.h"
#include "cuda-engine-util.h"

static char *opt_model, *opt_precisions = "fp32,fp16,bf16";
static int opt_cpu_batch = 2, opt_batch = 0, opt_frames = 3, opt_seed = 9;
static gboolean opt_segment;

static GOptionEntry entries[] = {
  { "model", 0, 0, G_OPTION_ARG_FILENAME, &opt_model, "segmentation model file", "FILE" },
  { "cpu-batch", 0, 0, G_OPTION_ARG_INT, &opt_cpu_batch, "inputs compared with the CPU", "N" },
  { "batch", 0, 0, G_OPTION_ARG_INT, &opt_batch, "large batch to run", "N" },
  { "precisions", 0, 0, G_OPTION_ARG_STRING, &opt_precisions, "list", "P,..." },
  { "segment", 0, 0, G_OPTION_ARG_NONE, &opt_segment, "masks vs the CPU", NULL },
  { "frames", 0, 0, G_OPTION_ARG_INT, &opt_frames, "frames for --segment (1 .. 4)", "N" },
  { "seed", 0, 0, G_OPTION_ARG_INT, &opt_seed, "input seed", "S" },
  { NULL }
};

static VimModel *model;
static const VimModelConfig *cfg;
static size_t out_size;

static float *
run (VimRunner *r, const float *in, int n)
{
  return tu_forward (r, in, n, out_size);
}

/* max|a-b| / max|b| over n images */
static double
rel (const float *a, const float *b, int n)
{
  return tu_rel_error (a, b, (size_t) n * out_size);
}

/* Share of grid cells (over n images) where the class argmax of `a` agrees
 * with the reference's; *beyond_ties also counts as agreeing the cells whose
 * two classes are a near-tie in the reference (margin <= 2 % of the cell's
 * logit range): random weights give a few such cells, where any rounding
 * may flip the winner. */
static double
cell_agreement (const float *a, const float *ref, int n, double *beyond_ties)
{
  const size_t M = (size_t) cfg->grid_h * cfg->grid_w;
  const int K = cfg->num_classes;
  size_t same = 0, ties = 0;
  for (int i = 0; i < n; i++)
    for (size_t t = 0; t < M; t++) {
      const float *x = a + i * out_size + t, *y = ref + i * out_size + t;
      int ba = 0, bb = 0;
      float lo = y[0], hi = y[0];
      for (int k = 1; k < K; k++) {
        if (x[k * M] > x[ba * M])
          ba = k;
        if (y[k * M] > y[bb * M])
          bb = k;
        lo = fminf (lo, y[k * M]);
        hi = fmaxf (hi, y[k * M]);
      }
      if (ba == bb)
        same++;
      else if (y[bb * M] - y[ba * M] <= 0.02f * (hi - lo))
        ties++;
    }
  *beyond_ties = (double) (same + ties) / ((double) n * M);
  return (double) same / ((double) n * M);
}

static void
check_logits (VimPrecision *precs, int np)
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
    float *b = run (r, in, n);          /* second run: captured graph */
    float *c = run (r, in, n);          /* third: graph replay */
    double e = rel (a, ref, n), e2 = fmax (rel (b, a, n), rel (c, a, n));
    double agree_ties, agree = cell_agreement (a, ref, n, &agree_ties);
    printf ("%s %dx%d seg cuda %s vs cpu, batch %d: logits rel err %.3g, argmax agreement "
        "%.4f (%.4f counting near-ties) of %d cells, replay vs first %.3g [cpu %.2f s]\n",
        cfg->name, cfg->image_height, cfg->image_width, tu_precision_name (precs[i]), n, e,
        agree, agree_ties, n * cfg->num_patches, e2, cpu_s);
    if (precs[i] == VIM_PRECISION_FP32)
      CHECK (e <= 1e-4, "fp32 seg logits vs CPU: %.3g", e);
    else
      CHECK (agree_ties >= 0.99 && e <= 0.1,
          "%s seg logits vs CPU: argmax agreement %.4f (%.4f counting near-ties, need 0.99), "
          "rel %.3g", tu_precision_name (precs[i]), agree, agree_ties, e);
    CHECK (e2 <= 1e-6, "%s: replay differs from the first run: %.3g", tu_precision_name (precs[i]), e2);
    g_free (a);
    g_free (b);
    g_free (c);
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
  for (int i = 0; i < np; i++) {
    VimRunner *r = tu_make_runner (model, VIM_DEVICE_CUDA, precs[i]);
    float *all = run (r, in, n);
    double worst = 0;
    int picks[2] = { 0, n - 1 };
    for (int k = 0; k < 2; k++) {
      float *one = run (r, in + (size_t) picks[k] * tu_image_floats (cfg), 1);
      worst = fmax (worst, rel (all + (size_t) picks[k] * out_size, one, 1));
      g_free (one);
    }
    double tol = precs[i] == VIM_PRECISION_FP32 ? 1e-4 : 2e-2;
    printf ("%s seg cuda %s batch %d vs alone: %.3g\n", cfg->name, tu_precision_name (precs[i]), n, worst);
    CHECK (worst <= tol, "%s batch %d vs alone: %.3g", tu_precision_name (precs[i]), n, worst);
    g_free (all);
    vim_runner_free (r);
  }
  g_free (in);
}

/* ---- masks ---- */

typedef struct {
  int w, h;
  guint8 *rgb;                /* host, stride 3w */
  void *dev;                  /* the same on the device */
} Frame;

static void
frames_make (Frame *f, int n)
{
  static const int sizes[4][2] = { { 640, 480 }, { 333, 517 }, { 1280, 720 }, { 97, 61 } };
  guint64 s = 77;
  for (int i = 0; i < n; i++) {
    f[i].w = sizes[i % 4][0];
    f[i].h = sizes[i % 4][1];
    size_t bytes = (size_t) f[i].w * f[i].h * 3;
    f[i].rgb = g_malloc (bytes);
    /* smooth colour fields with noise: regions, not pure noise */
    for (int y = 0; y < f[i].h; y++)
      for (int x = 0; x < f[i].w; x++)
        for (int c = 0; c < 3; c++) {
          double v = 128 + 100 * sin (0.02 * (x + 1) * (c + 1) + 0.03 * y * (2 - c) + i);
          v += (double) (vim_test_splitmix64 (s++) >> 59);
          f[i].rgb[((size_t) y * f[i].w + x) * 3 + c] = (guint8) CLAMP (v, 0, 255);
        }
    if (cudaMalloc (&f[i].dev, bytes) != cudaSuccess
        || cudaMemcpy (f[i].dev, f[i].rgb, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      fprintf (stderr, "cannot upload a frame\n");
      exit (1);
    }
  }
}

static VimFrame
vframe (const Frame *f, VimMemory mem)
{
  VimFrame v = { .format = VIM_PIXEL_RGB, .width = f->w, .height = f->h,
    .strides = { (size_t) f->w * 3 }, .memory = mem };
  v.planes[0] = mem == VIM_MEMORY_CUDA ? f->dev : f->rgb;
  return v;
}

/* One set of outputs for n masks; CUDA outputs live in device memory. */
typedef struct {
  VimSegResult res[4];
  size_t bytes[4];
} Outputs;

#define PAD 5                 /* bytes beyond each mask row, must stay 0xab */

static void
outputs_alloc (Outputs *o, const VimMaskGeometry *geo, int n, VimMemory mem)
{
  memset (o, 0, sizeof *o);
  for (int i = 0; i < n; i++) {
    VimSegResult *r = &o->res[i];
    size_t stride = geo[i].width + PAD;
    o->bytes[i] = stride * geo[i].height;
    r->memory = mem;
    r->classes_stride = r->confidence_stride = stride;
    r->fractions = g_new (float, cfg->num_classes);
    if (mem == VIM_MEMORY_HOST) {
      r->classes = g_malloc (o->bytes[i]);
      r->confidence = g_malloc (o->bytes[i]);
      memset (r->classes, 0xab, o->bytes[i]);
      memset (r->confidence, 0xab, o->bytes[i]);
    } else {
      cudaMalloc ((void **) &r->classes, o->bytes[i]);
      cudaMalloc ((void **) &r->confidence, o->bytes[i]);
      cudaMemset (r->classes, 0xab, o->bytes[i]);
      cudaMemset (r->confidence, 0xab, o->bytes[i]);
    }
  }
}

/* host copies of classes and confidence */
static void
outputs_fetch (const Outputs *o, int i, guint8 **cls, guint8 **conf)
{
  *cls = g_malloc (o->bytes[i]);
  *conf = g_malloc (o->bytes[i]);
  if (o->res[i].memory == VIM_MEMORY_HOST) {
    memcpy (*cls, o->res[i].classes, o->bytes[i]);
    memcpy (*conf, o->res[i].confidence, o->bytes[i]);
  } else {
    cudaMemcpy (*cls, o->res[i].classes, o->bytes[i], cudaMemcpyDeviceToHost);
    cudaMemcpy (*conf, o->res[i].confidence, o->bytes[i], cudaMemcpyDeviceToHost);
  }
}

static void
outputs_free (Outputs *o, int n)
{
  for (int i = 0; i < n; i++) {
    VimSegResult *r = &o->res[i];
    if (r->memory == VIM_MEMORY_HOST) {
      g_free (r->classes);
      g_free (r->confidence);
    } else {
      cudaFree (r->classes);
      cudaFree (r->confidence);
    }
    g_free (r->fractions);
  }
}

static void
segment_or_die (VimRunner *r, const VimFrame *frames, int n, const VimMaskSpec *spec,
    VimSegResult *res)
{
  GError *err = NULL;
  if (!vim_runner_segment (r, frames, n, spec, res, &err)) {
    fprintf (stderr, "segment: %s\n", err->message);
    exit (1);
  }
}

/* min_equal: share of pixels with equal classes, and with confidence within
 * conf_tol; fractions must be the GPU mask's own histogram, and differ from
 * the CPU's by no more than the share of differing pixels. */
static void
compare_masks (const char *what, const Outputs *ref, const Outputs *got, int n,
    double min_equal, int conf_tol)
{
  for (int i = 0; i < n; i++) {
    const VimMaskGeometry *g = &ref->res[i].geometry;
    CHECK (memcmp (g, &got->res[i].geometry, sizeof *g) == 0, "%s mask %d: geometry differs",
        what, i);
    guint8 *rc, *rf, *gc, *gf;
    outputs_fetch (ref, i, &rc, &rf);
    outputs_fetch (got, i, &gc, &gf);
    size_t stride = ref->res[i].classes_stride, same = 0, conf_ok = 0, pad_bad = 0;
    size_t *hist = g_new0 (size_t, 256);
    for (int y = 0; y < g->height; y++) {
      for (int x = 0; x < g->width; x++) {
        size_t o = (size_t) y * stride + x;
        same += rc[o] == gc[o];
        conf_ok += abs ((int) rf[o] - (int) gf[o]) <= conf_tol;
        hist[gc[o]]++;
      }
      for (size_t x = g->width; x < stride; x++)
        pad_bad += gc[(size_t) y * stride + x] != 0xab || gf[(size_t) y * stride + x] != 0xab;
    }
    double npix = (double) g->width * g->height;
    double fr = 0, own = 0;
    for (int k = 0; k < cfg->num_classes; k++) {
      fr = fmax (fr, fabs ((double) ref->res[i].fractions[k] - got->res[i].fractions[k]));
      own = fmax (own, fabs (hist[k] / npix - got->res[i].fractions[k]));
    }
    g_free (hist);
    printf ("  %s mask %d %dx%d: classes equal %.5f, confidence within %d %.5f, "
        "fractions max diff %.2g\n", what, i, g->width, g->height, same / npix, conf_tol,
        conf_ok / npix, fr);
    /* half precision, as for the logits: 2 pixels may differ on tiny masks */
    double need = min_equal <= 0.99 ? fmin (min_equal, 1.0 - 2.0 / npix) : min_equal;
    CHECK (same / npix >= need, "%s mask %d: classes equal on %.5f < %.4f", what, i,
        same / npix, need);
    CHECK (conf_ok / npix >= need, "%s mask %d: confidence within %d on %.5f", what, i,
        conf_tol, conf_ok / npix);
    CHECK (own <= 1e-6, "%s mask %d: fractions are not the mask's histogram (%.3g)", what, i, own);
    CHECK (fr <= 1.0 - same / npix + 1e-6, "%s mask %d: fractions differ from the CPU's by %.3g",
        what, i, fr);
    CHECK (pad_bad == 0, "%s mask %d: %zu bytes beyond the width written", what, i, pad_bad);
    g_free (rc); g_free (rf); g_free (gc); g_free (gf);
  }
}

static void
check_segment (VimPrecision *precs, int np)
{
  if (!opt_segment)
    return;
  int n = CLAMP (opt_frames, 1, 4);
  Frame fr[4];
  frames_make (fr, n);
  VimFrame host[4], dev[4];
  for (int i = 0; i < n; i++) {
    host[i] = vframe (&fr[i], VIM_MEMORY_HOST);
    dev[i] = vframe (&fr[i], VIM_MEMORY_CUDA);
  }
  const VimMaskSpec specs[3] = {
    { .mode = VIM_MASK_SIZE_GRID },
    { .mode = VIM_MASK_SIZE_FIXED, .width = 301, .height = 199 },
    { .mode = VIM_MASK_SIZE_FRAME },
  };
  static const char *const mode_names[3] = { "grid", "fixed 301x199", "frame" };
  VimRunner *cpu = tu_make_runner (model, VIM_DEVICE_CPU, VIM_PRECISION_FP32);
  for (int s = 0; s < 3; s++) {
    VimMaskGeometry geo[4];
    for (int i = 0; i < n; i++) {
      GError *err = NULL;
      if (!vim_model_mask_geometry (model, fr[i].w, fr[i].h, &specs[s], &geo[i], &err)) {
        fprintf (stderr, "geometry: %s\n", err->message);
        exit (1);
      }
    }
    Outputs ref;
    outputs_alloc (&ref, geo, n, VIM_MEMORY_HOST);
    segment_or_die (cpu, host, n, &specs[s], ref.res);
    for (int p = 0; p < np; p++) {
      VimRunner *r = tu_make_runner (model, VIM_DEVICE_CUDA, precs[p]);
      double min_equal = precs[p] == VIM_PRECISION_FP32 ? 0.999 : 0.99;
      /* half precision moves probabilities by a few 1/255 steps */
      int conf_tol = precs[p] == VIM_PRECISION_FP32 ? 1 : 8;
      /* host frames -> host results; device frames -> device results; and
       * a second call of each (graph replay) */
      for (int rep = 0; rep < 2; rep++) {
        Outputs h, d;
        outputs_alloc (&h, geo, n, VIM_MEMORY_HOST);
        outputs_alloc (&d, geo, n, VIM_MEMORY_CUDA);
        segment_or_die (r, host, n, &specs[s], h.res);
        segment_or_die (r, dev, n, &specs[s], d.res);
        char what[128];
        g_snprintf (what, sizeof what, "%s %s host%s", tu_precision_name (precs[p]), mode_names[s],
            rep ? " (again)" : "");
        compare_masks (what, &ref, &h, n, min_equal, conf_tol);
        g_snprintf (what, sizeof what, "%s %s device%s", tu_precision_name (precs[p]), mode_names[s],
            rep ? " (again)" : "");
        compare_masks (what, &ref, &d, n, min_equal, conf_tol);
        outputs_free (&h, n);
        outputs_free (&d, n);
      }
      /* no confidence, no fractions: only classes are written */
      if (s == 0) {
        Outputs h;
        outputs_alloc (&h, geo, n, VIM_MEMORY_HOST);
        for (int i = 0; i < n; i++) {
          g_free (h.res[i].confidence);
          h.res[i].confidence = NULL;
          g_clear_pointer (&h.res[i].fractions, g_free);
        }
        segment_or_die (r, host, n, &specs[s], h.res);
        size_t same = 0, total = 0;
        for (int i = 0; i < n; i++)
          for (int y = 0; y < geo[i].height; y++)
            for (int x = 0; x < geo[i].width; x++) {
              size_t o = (size_t) y * h.res[i].classes_stride + x;
              same += h.res[i].classes[o] == ref.res[i].classes[o];
              total++;
            }
        CHECK (same >= min_equal * total, "%s classes only: %zu of %zu equal",
            tu_precision_name (precs[p]), same, total);
        for (int i = 0; i < n; i++)
          g_free (h.res[i].classes);
      }
      vim_runner_free (r);
    }
    outputs_free (&ref, n);
  }
  vim_runner_free (cpu);
  for (int i = 0; i < n; i++) {
    g_free (fr[i].rgb);
    cudaFree (fr[i].dev);
  }
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  GOptionContext *ctx = g_option_context_new ("- CUDA segmentation vs the CPU engine");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !opt_model) {
    fprintf (stderr, "usage: test-cuda-segment --model FILE ...%s%s\n", err ? ": " : "",
        err ? err->message : "");
    return 2;
  }
  g_option_context_free (ctx);
  if (!vim_cuda_available (NULL, &err)) {
    printf ("SKIP: %s\n", err->message);
    return SKIP_RC;
  }
  model = vim_model_open (opt_model, &err);
  if (!model) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  cfg = vim_model_get_config (model);
  if (cfg->task != VIM_TASK_SEGMENTATION) {
    fprintf (stderr, "%s is not a segmentation model\n", opt_model);
    return 1;
  }
  out_size = vim_model_output_size (model);
  char **ps = g_strsplit (opt_precisions, ",", -1);
  VimPrecision precs[3];
  int np = 0;
  for (int i = 0; ps[i] && np < 3; i++)
    precs[np++] = tu_parse_precision (ps[i]);
  g_strfreev (ps);

  check_logits (precs, np);
  check_batch (precs, np);
  check_segment (precs, np);

  vim_model_unref (model);
  if (test_failures) {
    fprintf (stderr, "%d check(s) failed\n", test_failures);
    return 1;
  }
  printf ("all CUDA segmentation checks passed\n");
  return 0;
}
