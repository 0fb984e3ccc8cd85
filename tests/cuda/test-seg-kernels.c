/* The segmentation kernels (vimk_seghead_conv, vimk_seg_masks) against
 * plain CPU loops in double precision. Outputs are poisoned before each
 * launch so unwritten elements fail; bytes beyond a mask row's width must
 * stay untouched. Exit 77 when there is no usable GPU. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vimk/vimk.h"
#include "cuda-test-util.h"

static void *
dev_fill (size_t bytes, int byte)
{
  void *d = NULL;
  CU (cudaMalloc (&d, bytes ? bytes : 1));
  CU (cudaMemset (d, byte, bytes));
  return d;
}

static void
dev_download (void *h, const void *d, size_t bytes)
{
  CU (cudaDeviceSynchronize ());
  CU (cudaMemcpy (h, d, bytes, cudaMemcpyDeviceToHost));
}

/* ---- head: conv + GELU, logits initialized to the class bias ---- */

static double
gelu_ref (double x)
{
  return 0.5 * x * (1.0 + tanh (sqrt (2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void
test_seghead_conv (int dt, int nseq, int gh, int gw, int C, int K)
{
  uint64_t s = 100 + gh * 31 + gw * 7 + C;
  const size_t M = (size_t) gh * gw, rows = nseq * M;
  float *h = malloc (rows * C * 4), *pb = malloc (C * 4), *w = malloc (C * 9 * 4);
  float *db = malloc (C * 4), *cb = malloc (K * 4);
  for (size_t i = 0; i < rows * C; i++)
    h[i] = tu_uniform (&s, -2, 2);
  for (int c = 0; c < C; c++) {
    pb[c] = tu_uniform (&s, -0.5, 0.5);
    db[c] = tu_uniform (&s, -0.5, 0.5);
    for (int k = 0; k < 9; k++)
      w[c * 9 + k] = tu_uniform (&s, -0.6, 0.6);
  }
  for (int k = 0; k < K; k++)
    cb[k] = tu_uniform (&s, -1, 1);
  double *ref = malloc (rows * C * 8);
  for (int b = 0; b < nseq; b++)
    for (int y = 0; y < gh; y++)
      for (int x = 0; x < gw; x++)
        for (int c = 0; c < C; c++) {
          double acc = db[c];
          for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
              int yy = y + i - 1, xx = x + j - 1;
              if (yy < 0 || yy >= gh || xx < 0 || xx >= gw)
                continue;
              acc += (double) w[c * 9 + i * 3 + j]
                  * ((double) h[((b * M) + yy * gw + xx) * C + c] + pb[c]);
            }
          ref[((b * M) + y * gw + x) * C + c] = gelu_ref (acc);
        }
  void *dh = dev_upload (h, rows * C * 4), *dpb = dev_upload (pb, C * 4);
  void *dw = dev_upload (w, C * 9 * 4), *ddb = dev_upload (db, C * 4), *dcb = dev_upload (cb, K * 4);
  void *dout = dev_fill (rows * C * tu_size (dt), 0xff);
  void *dlog = dev_fill (rows * K * 4, 0xff);
  CU (vimk_seghead_conv ((VimkDType) dt, dh, dpb, dw, ddb, nseq, gh, gw, C, dout, dlog, dcb,
          K, 0));
  void *out = malloc (rows * C * tu_size (dt));
  float *lg = malloc (rows * K * 4);
  dev_download (out, dout, rows * C * tu_size (dt));
  dev_download (lg, dlog, rows * K * 4);
  double md = 0, mr = 0;
  for (size_t i = 0; i < rows * C; i++) {
    double g = tu_load (dt, out, i);
    md = isfinite (g) ? fmax (md, fabs (g - ref[i])) : INFINITY;
    mr = fmax (mr, fabs (ref[i]));
  }
  const double tol[3] = { 2e-6, 2e-3, 1e-2 };
  CHECK (md / mr <= tol[dt], "seghead conv %s %dx%dx%d C=%d: rel err %.3g", tu_dt_names[dt],
      nseq, gh, gw, C, md / mr);
  size_t bad = 0;
  for (int b = 0; b < nseq; b++)
    for (int k = 0; k < K; k++)
      for (size_t t = 0; t < M; t++)
        bad += lg[((size_t) b * K + k) * M + t] != cb[k];
  CHECK (bad == 0, "seghead conv: %zu logits not set to the class bias", bad);
  cudaFree (dh); cudaFree (dpb); cudaFree (dw); cudaFree (ddb); cudaFree (dcb);
  cudaFree (dout); cudaFree (dlog);
  free (h); free (pb); free (w); free (db); free (cb); free (ref); free (out); free (lg);
}

/* ---- masks: upsampling, argmax, confidence, counts ---- */

typedef struct {
  int width, height, stride;  /* stride 0 = width */
  double sx, ox, sy, oy;      /* grid position of pixel m: (m + 0.5) * s + o */
  int conf, counts;
} MaskCase;

/* PyTorch's taps in double (as segment.c takes them) */
static void
taps (int m, double scale, double offset, int n, int *i0, int *i1, double *l1)
{
  double g = (m + 0.5) * scale + offset;
  if (g < 0)
    g = 0;
  int a = (int) g;
  if (a > n - 1)
    a = n - 1;
  *i0 = a;
  *i1 = a < n - 1 ? a + 1 : a;
  *l1 = fmin (g - a, 1.0);
}

/* Logits with structure: smooth random fields, and (when ties) class 3
 * a copy of class 1 so that both are the maximum somewhere. */
static float *
make_logits (uint64_t *s, int gh, int gw, int K, int ties)
{
  const size_t M = (size_t) gh * gw;
  float *l = malloc (M * K * 4);
  for (size_t i = 0; i < M * K; i++)
    l[i] = tu_uniform (s, -4, 4);
  if (ties && K > 3)
    for (size_t t = 0; t < M; t++) {
      l[1 * M + t] = 9.f + tu_uniform (s, 0, 1);
      l[3 * M + t] = l[1 * M + t];
    }
  return l;
}

static void
test_masks (int gh, int gw, int K, int ties, const MaskCase *cases, int n)
{
  uint64_t s = 7 + gh * 131 + gw * 17 + K;
  const size_t M = (size_t) gh * gw;
  float **logits = malloc (n * sizeof (float *));
  float *all = malloc ((size_t) n * M * K * 4);
  for (int i = 0; i < n; i++) {
    logits[i] = make_logits (&s, gh, gw, K, ties);
    memcpy (all + (size_t) i * M * K, logits[i], M * K * 4);
  }
  float *dlog = dev_upload (all, (size_t) n * M * K * 4);
  uint32_t *dcounts = dev_fill ((size_t) n * K * 4, 0);
  VimkSegMaskDesc *desc = calloc (n, sizeof *desc);
  uint8_t **dcls = calloc (n, sizeof (uint8_t *)), **dconf = calloc (n, sizeof (uint8_t *));
  int64_t max_pixels = 0;
  for (int i = 0; i < n; i++) {
    const MaskCase *mc = &cases[i];
    int stride = mc->stride ? mc->stride : mc->width;
    size_t bytes = (size_t) stride * mc->height;
    dcls[i] = dev_fill (bytes, 0xab);
    dconf[i] = mc->conf ? dev_fill (bytes, 0xab) : NULL;
    desc[i] = (VimkSegMaskDesc) { .width = mc->width, .height = mc->height,
      .gx_scale = (float) mc->sx, .gx_offset = (float) mc->ox,
      .gy_scale = (float) mc->sy, .gy_offset = (float) mc->oy,
      .logits = dlog + (size_t) i * M * K,
      .classes = dcls[i], .classes_stride = stride,
      .confidence = dconf[i], .confidence_stride = stride,
      .counts = mc->counts ? dcounts + (size_t) i * K : NULL };
    if ((int64_t) mc->width * mc->height > max_pixels)
      max_pixels = (int64_t) mc->width * mc->height;
  }
  VimkSegMaskDesc *ddesc = dev_upload (desc, n * sizeof *desc);
  CU (vimk_seg_masks (ddesc, n, max_pixels, gh, gw, K, 0));
  uint32_t *counts = malloc ((size_t) n * K * 4);
  dev_download (counts, dcounts, (size_t) n * K * 4);

  double *v = malloc (K * sizeof (double));
  for (int i = 0; i < n; i++) {
    const MaskCase *mc = &cases[i];
    int stride = mc->stride ? mc->stride : mc->width;
    size_t bytes = (size_t) stride * mc->height;
    uint8_t *cls = malloc (bytes), *conf = malloc (bytes);
    dev_download (cls, dcls[i], bytes);
    if (mc->conf)
      dev_download (conf, dconf[i], bytes);
    uint32_t *own = calloc (K, 4);
    size_t wrong = 0, near_tie = 0, conf_bad = 0, pad_bad = 0, tie_bad = 0;
    const float *l = logits[i];
    for (int y = 0; y < mc->height; y++) {
      int y0, y1, x0, x1;
      double ly1, lx1;
      taps (y, mc->sy, mc->oy, gh, &y0, &y1, &ly1);
      for (int x = 0; x < mc->width; x++) {
        taps (x, mc->sx, mc->ox, gw, &x0, &x1, &lx1);
        int best = 0, second = -1;
        for (int k = 0; k < K; k++) {
          const float *p = l + (size_t) k * M;
          v[k] = (1 - ly1) * ((1 - lx1) * p[y0 * gw + x0] + lx1 * p[y0 * gw + x1])
              + ly1 * ((1 - lx1) * p[y1 * gw + x0] + lx1 * p[y1 * gw + x1]);
          if (v[k] > v[best])
            best = k;
        }
        for (int k = 0; k < K; k++)
          if (k != best && (second < 0 || v[k] > v[second]))
            second = k;
        double sum = 0;
        for (int k = 0; k < K; k++)
          sum += exp (v[k] - v[best]);
        const int got = cls[(size_t) y * stride + x];
        own[got < K ? got : 0]++;
        if (got != best) {
          /* float vs double: only a near tie may flip */
          if (second >= 0 && got == second && v[best] - v[second] <= 1e-5 * (1 + fabs (v[best])))
            near_tie++;
          else
            wrong++;
        }
        if (ties && K > 3 && got == 3)
          tie_bad++;                      /* class 1 equals 3: 1 must win */
        if (mc->conf) {
          int want = (int) lround (255.0 / sum);
          int c = conf[(size_t) y * stride + x];
          conf_bad += abs (c - want) > 1;
        }
      }
      for (int x = mc->width; x < stride; x++)
        pad_bad += cls[(size_t) y * stride + x] != 0xab
            || (mc->conf && conf[(size_t) y * stride + x] != 0xab);
    }
    size_t npix = (size_t) mc->width * mc->height;
    CHECK (wrong == 0 && near_tie <= npix / 1000 + 1,
        "masks %dx%d grid %dx%d K=%d: %zu wrong classes, %zu near ties of %zu pixels",
        mc->width, mc->height, gh, gw, K, wrong, near_tie, npix);
    CHECK (tie_bad == 0, "masks: %zu tied pixels took the higher class id", tie_bad);
    CHECK (conf_bad == 0, "masks %dx%d: %zu confidences off by more than 1", mc->width,
        mc->height, conf_bad);
    CHECK (pad_bad == 0, "masks %dx%d: %zu bytes beyond the width written", mc->width,
        mc->height, pad_bad);
    if (mc->counts) {
      size_t diff = 0;
      for (int k = 0; k < K; k++)
        diff += counts[(size_t) i * K + k] != own[k];
      CHECK (diff == 0, "masks %dx%d: class counts differ from the mask's histogram in %zu classes",
          mc->width, mc->height, diff);
    } else {
      size_t nz = 0;
      for (int k = 0; k < K; k++)
        nz += counts[(size_t) i * K + k] != 0;
      CHECK (nz == 0, "masks: counts written without a counts pointer");
    }
    printf ("masks %5dx%-5d grid %2dx%-2d K=%3d%s%s%s: ok=%s (near ties %zu)\n", mc->width,
        mc->height, gh, gw, K, mc->conf ? " conf" : "", mc->counts ? " counts" : "",
        ties ? " ties" : "", wrong == 0 ? "yes" : "NO", near_tie);
    free (own); free (cls); free (conf);
    cudaFree (dcls[i]);
    if (dconf[i])
      cudaFree (dconf[i]);
  }
  for (int i = 0; i < n; i++)
    free (logits[i]);
  free (logits); free (all); free (v); free (desc); free (dcls); free (dconf); free (counts);
  cudaFree (dlog); cudaFree (dcounts); cudaFree (ddesc);
}

/* Mask of w x h pixels over the whole grid of gw x gh cells: PyTorch's
 * source index scale G / mask, offset (scale - 1) / 2 folded into o. */
static MaskCase
whole (int w, int h, int gw, int gh, int stride, int conf, int counts)
{
  MaskCase m = { w, h, stride, (double) gw / w, -0.5, (double) gh / h, -0.5, conf, counts };
  return m;
}

int
main (void)
{
  int n = 0;
  if (cudaGetDeviceCount (&n) != cudaSuccess || n == 0) {
    printf ("SKIP: no CUDA device\n");
    return SKIP_RC;
  }
  int major = 0;
  cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (major < 9) {
    printf ("SKIP: GPU older than sm_90\n");
    return SKIP_RC;
  }
  for (int dt = 0; dt < 3; dt++) {
    test_seghead_conv (dt, 2, 5, 7, 12, 5);
    test_seghead_conv (dt, 1, 1, 1, 8, 3);       /* a grid of one token: only the centre tap */
    test_seghead_conv (dt, 3, 4, 3, 40, 130);    /* more classes than channels */
    test_seghead_conv (dt, 1, 32, 32, 128, 150); /* Vim-Ti 512's head */
  }
  {
    /* grid-sized (identity), upsampled to non-multiples, downsampled, big,
     * padded strides, with and without confidence and counts, in one launch */
    MaskCase c[] = {
      whole (7, 5, 7, 5, 0, 1, 1),
      whole (37, 23, 7, 5, 40, 1, 1),
      whole (3, 2, 7, 5, 0, 0, 1),
      whole (1001, 703, 7, 5, 1024, 1, 0),
      whole (1, 1, 7, 5, 0, 1, 1),
      whole (640, 1, 7, 5, 0, 0, 0),
    };
    /* c[0] is GRID mode (scale 1, offset -0.5: the cells themselves); c[5]
     * samples half way between rows: weights of exactly 0.5 */
    c[5].sy = 1; c[5].oy = 0;
    test_masks (5, 7, 19, 0, c, 6);
    test_masks (5, 7, 19, 1, c, 6);
  }
  {
    /* positions off the grid on both sides (clamping), one class, 256 classes */
    MaskCase c[] = {
      { 50, 40, 64, 0.3, -3.0, 0.25, -2.0, 1, 1 },
      { 50, 40, 0, 0.5, 2.0, 0.5, 1.5, 1, 1 },
    };
    test_masks (4, 6, 7, 1, c, 2);
    test_masks (4, 6, 1, 0, c, 2);
    test_masks (4, 6, 256, 0, c, 2);
  }
  {
    /* Vim-Ti 512 shapes: 32 x 32 grid, 150 classes, a 1920 x 1080 frame mask */
    MaskCase c[] = { whole (1920, 1080, 32, 32, 2048, 1, 1), whole (512, 512, 32, 32, 0, 0, 1) };
    test_masks (32, 32, 150, 0, c, 2);
  }
  {
    /* bad arguments are refused, not launched */
    CHECK (vimk_seg_masks (NULL, 1, 10, 2, 2, 257, 0) == cudaErrorInvalidValue, "K=257 accepted");
    CHECK (vimk_seg_masks (NULL, 0, 10, 2, 2, 3, 0) == cudaSuccess, "n=0 not a no-op");
    CHECK (vimk_seghead_conv (VIMK_F32, NULL, NULL, NULL, NULL, 1, 0, 2, 4, NULL, NULL, NULL, 3, 0)
        == cudaErrorInvalidValue, "empty grid accepted");
  }
  CU (cudaDeviceSynchronize ());
  if (test_failures) {
    fprintf (stderr, "%d check(s) failed\n", test_failures);
    return 1;
  }
  printf ("all segmentation kernel tests passed\n");
  return 0;
}
