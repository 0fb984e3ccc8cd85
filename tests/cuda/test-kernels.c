/* Unit tests of the CUDA kernels (kernels/include/vimk/vimk.h) against plain
 * CPU loops in double precision, for every compute type. Outputs are
 * poisoned (NaN) before each launch so unwritten elements fail. Exit 77
 * when there is no usable GPU. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vimk/vimk.h"
#include "cuda-test-util.h"

static void *
dev_poison (size_t bytes)
{
  void *d = NULL;
  CU (cudaMalloc (&d, bytes));
  CU (cudaMemset (d, 0xff, bytes));   /* NaN in fp32, fp16 and bf16 */
  return d;
}

static void
dev_download (void *h, const void *d, size_t bytes)
{
  CU (cudaDeviceSynchronize ());
  CU (cudaMemcpy (h, d, bytes, cudaMemcpyDeviceToHost));
}

/* max |got - ref| / max |ref| over n values (NaN -> inf) */
static double
rel_err (int dt, const void *got, const double *ref, size_t n)
{
  double md = 0, mr = 0;
  for (size_t i = 0; i < n; i++) {
    double g = tu_load (dt, got, i);
    if (!isfinite (g))
      return INFINITY;
    md = fmax (md, fabs (g - ref[i]));
    mr = fmax (mr, fabs (ref[i]));
  }
  return md / fmax (mr, 1e-30);
}

static const double out_tol[3] = { 2e-5, 2e-3, 1e-2 };

/* ---- rmsnorm ---- */
static void
test_rmsnorm (int dt, int rows, int D, int ldx)
{
  uint64_t s = 11 + D;
  float *x = malloc ((size_t) rows * ldx * 4), *w = malloc (D * 4);
  double *ref = malloc ((size_t) rows * D * 8);
  for (size_t i = 0; i < (size_t) rows * ldx; i++)
    x[i] = tu_uniform (&s, -3, 3);
  for (int d = 0; d < D; d++)
    w[d] = tu_uniform (&s, 0.5, 1.5);
  for (int r = 0; r < rows; r++) {
    double ss = 0;
    for (int d = 0; d < D; d++)
      ss += (double) x[r * ldx + d] * x[r * ldx + d];
    double inv = 1.0 / sqrt (ss / D + 1e-5);
    for (int d = 0; d < D; d++)
      ref[r * D + d] = x[r * ldx + d] * inv * w[d];
  }
  void *dx = dev_upload (x, (size_t) rows * ldx * 4), *dw = dev_upload (w, D * 4);
  void *dout = dev_poison ((size_t) rows * D * tu_size (dt));
  CU (vimk_rmsnorm (dt, dx, ldx, dw, dout, D, rows, D, 1e-5f, 0));
  void *out = malloc ((size_t) rows * D * tu_size (dt));
  dev_download (out, dout, (size_t) rows * D * tu_size (dt));
  double e = rel_err (dt, out, ref, (size_t) rows * D);
  CHECK (e <= out_tol[dt], "rmsnorm %s rows %d D %d: rel err %.3g", tu_dt_names[dt], rows, D, e);
  printf ("rmsnorm %s D=%d: %.2e\n", tu_dt_names[dt], D, e);
  cudaFree (dx); cudaFree (dw); cudaFree (dout);
  free (x); free (w); free (ref); free (out);
}

/* ---- conv + gate ---- */
static double
silu_d (double v)
{
  return v / (1.0 + exp (-v));
}

/* xz (rows x 2E in xz_dt) with uniform values, conv weights [2][E][K] and
 * biases [2][E] in fp32, and the float64 conv + gate outputs */
typedef struct {
  void *xz;
  float *w, *b;
  double *ref_xc, *ref_z;   /* rows x 2E, rows x E */
} ConvCase;

static ConvCase
conv_case (int nseq, int L, int E, int K, int xz_dt)
{
  uint64_t s = 5 + K + E;
  size_t rows = (size_t) nseq * L, n2 = rows * 2 * E;
  ConvCase cc = {
    .xz = malloc (n2 * tu_size (xz_dt)),
    .w = malloc ((size_t) 2 * E * K * 4), .b = malloc ((size_t) 2 * E * 4),
    .ref_xc = malloc (n2 * 8), .ref_z = malloc (rows * E * 8),
  };
  for (size_t i = 0; i < n2; i++)
    tu_store (xz_dt, cc.xz, i, tu_uniform (&s, -2, 2));
  for (int i = 0; i < 2 * E * K; i++)
    cc.w[i] = tu_uniform (&s, -0.5, 0.5);
  for (int i = 0; i < 2 * E; i++)
    cc.b[i] = tu_uniform (&s, -0.1, 0.1);
  for (int q = 0; q < nseq; q++)
    for (int t = 0; t < L; t++)
      for (int c = 0; c < E; c++) {
        double af = cc.b[c], ab = cc.b[E + c];
        for (int k = 0; k < K; k++) {
          int tf = t - (K - 1) + k, tb = t + (K - 1) - k;
          if (tf >= 0)
            af += (double) cc.w[c * K + k] * tu_load (xz_dt, cc.xz, ((size_t) q * L + tf) * 2 * E + c);
          if (tb < L)
            ab += (double) cc.w[(E + c) * K + k] * tu_load (xz_dt, cc.xz, ((size_t) q * L + tb) * 2 * E + c);
        }
        size_t row = (size_t) q * L + t;
        cc.ref_xc[row * 2 * E + c] = silu_d (af);
        cc.ref_xc[row * 2 * E + E + c] = silu_d (ab);
        cc.ref_z[row * E + c] = silu_d (tu_load (xz_dt, cc.xz, row * 2 * E + E + c));
      }
  return cc;
}

static void
conv_case_free (ConvCase *cc)
{
  free (cc->xz); free (cc->w); free (cc->b); free (cc->ref_xc); free (cc->ref_z);
}

/* xc and the gate written by the GPU (xz2 = xz after the launch) against
 * the reference; the x half of xz must be untouched, and z too unless
 * gated */
static void
check_conv_outputs (const char *what, int dt, int xz_dt, const ConvCase *cc, const void *xc,
    const void *xz2, size_t rows, int E, int K, int gated)
{
  double e1 = rel_err (dt, xc, cc->ref_xc, rows * 2 * E);
  double mz = 0, mr = 0;
  int x_changed = 0, z_changed = 0;
  for (size_t r = 0; r < rows; r++)
    for (int c = 0; c < E; c++) {
      mz = fmax (mz, fabs (tu_load (xz_dt, xz2, r * 2 * E + E + c) - cc->ref_z[r * E + c]));
      mr = fmax (mr, fabs (cc->ref_z[r * E + c]));
      x_changed += tu_load (xz_dt, xz2, r * 2 * E + c) != tu_load (xz_dt, cc->xz, r * 2 * E + c);
      z_changed += tu_load (xz_dt, xz2, r * 2 * E + E + c)
          != tu_load (xz_dt, cc->xz, r * 2 * E + E + c);
    }
  double e2 = isfinite (mz) ? mz / mr : INFINITY;
  CHECK (e1 <= out_tol[dt], "%s %s K=%d E=%d: xc rel err %.3g", what, tu_dt_names[dt], K, E, e1);
  if (gated)
    CHECK (e2 <= out_tol[dt], "%s %s K=%d E=%d: gate rel err %.3g", what, tu_dt_names[dt], K, E, e2);
  else
    CHECK (z_changed == 0, "%s %s: z part of xz modified (%d)", what, tu_dt_names[dt], z_changed);
  CHECK (x_changed == 0, "%s %s: x part of xz modified (%d)", what, tu_dt_names[dt], x_changed);
  if (gated)
    printf ("%s %s (xz %s) K=%d E=%d: xc %.2e gate %.2e\n", what, tu_dt_names[dt],
        tu_dt_names[xz_dt], K, E, e1, e2);
  else
    printf ("%s (no gate) %s (xz %s) K=%d E=%d: xc %.2e, z untouched\n", what, tu_dt_names[dt],
        tu_dt_names[xz_dt], K, E, e1);
}

/* gated: vimk_conv_gate (z <- silu(z)), else vimk_conv (z left alone) */
static void
test_conv (int dt, int nseq, int L, int E, int K, int xz_dt, int gated)
{
  /* xz in xz_dt (the bf16 runner keeps it in fp32), xc in dt */
  size_t rows = (size_t) nseq * L, n2 = rows * 2 * E;
  ConvCase cc = conv_case (nseq, L, E, K, xz_dt);
  void *dxz = dev_upload (cc.xz, n2 * tu_size (xz_dt));
  void *dw = dev_upload (cc.w, (size_t) 2 * E * K * 4), *db = dev_upload (cc.b, (size_t) 2 * E * 4);
  void *dxc = dev_poison (n2 * tu_size (dt));
  if (gated)
    CU (vimk_conv_gate (xz_dt, dt, dxz, dxc, dw, db, nseq, L, E, K, 0));
  else
    CU (vimk_conv (xz_dt, dt, dxz, dxc, dw, db, nseq, L, E, K, 0));
  void *xc = malloc (n2 * tu_size (dt)), *xz2 = malloc (n2 * tu_size (xz_dt));
  dev_download (xc, dxc, n2 * tu_size (dt));
  dev_download (xz2, dxz, n2 * tu_size (xz_dt));
  check_conv_outputs ("conv", dt, xz_dt, &cc, xc, xz2, rows, E, K, gated);
  cudaFree (dxz); cudaFree (dw); cudaFree (db); cudaFree (dxc);
  conv_case_free (&cc);
  free (xc); free (xz2);
}

/* vimk_conv_xproj: conv and gate as above, and dbl[d] = xc[d] x_w[d]^T
 * against float64 products of the kernel's own (rounded) xc, so the GEMM is
 * checked at fp32 accumulation accuracy whatever dt is. */
static void
test_conv_xproj (int dt, int nseq, int L, int E, int ldd, int xz_dt)
{
  const int K = 4, nc = vimk_conv_xproj_columns (ldd);
  CHECK (vimk_conv_xproj_supported (xz_dt, dt, E, K, ldd), "conv_xproj %s E=%d ldd=%d unsupported",
      tu_dt_names[dt], E, ldd);
  uint64_t s = 99 + E + ldd;
  size_t rows = (size_t) nseq * L, n2 = rows * 2 * E, nd = 2 * rows * ldd;
  ConvCase cc = conv_case (nseq, L, E, K, xz_dt);
  /* weights: rows >= ldd of each direction zero, as the runner lays them out */
  void *xw = calloc ((size_t) 2 * nc * E, tu_size (dt));
  for (int d = 0; d < 2; d++)
    for (int j = 0; j < ldd; j++)
      for (int c = 0; c < E; c++)
        tu_store (dt, xw, ((size_t) d * nc + j) * E + c, tu_uniform (&s, -0.2, 0.2));
  void *dxz = dev_upload (cc.xz, n2 * tu_size (xz_dt));
  void *dw = dev_upload (cc.w, (size_t) 2 * E * K * 4), *db = dev_upload (cc.b, (size_t) 2 * E * 4);
  void *dxw = dev_upload (xw, (size_t) 2 * nc * E * tu_size (dt));
  void *dxc = dev_poison (n2 * tu_size (dt));
  float *ddbl = dev_poison (nd * 4);
  CU (vimk_conv_xproj (xz_dt, dt, dxz, dxc, dw, db, dxw, ddbl, ldd, nseq, L, E, K, 0));
  void *xc = malloc (n2 * tu_size (dt)), *xz2 = malloc (n2 * tu_size (xz_dt));
  float *dbl = malloc (nd * 4);
  dev_download (xc, dxc, n2 * tu_size (dt));
  dev_download (xz2, dxz, n2 * tu_size (xz_dt));
  dev_download (dbl, ddbl, nd * 4);
  check_conv_outputs ("conv_xproj", dt, xz_dt, &cc, xc, xz2, rows, E, K, 1);
  double *ref = malloc (nd * 8);
  for (int d = 0; d < 2; d++)
    for (size_t r = 0; r < rows; r++)
      for (int j = 0; j < ldd; j++) {
        double acc = 0;
        for (int c = 0; c < E; c++)
          acc += tu_load (dt, xc, r * 2 * E + (size_t) d * E + c)
              * tu_load (dt, xw, ((size_t) d * nc + j) * E + c);
        ref[((size_t) d * rows + r) * ldd + j] = acc;
      }
  double e = rel_err (0, dbl, ref, nd);
  CHECK (e <= 1e-5, "conv_xproj %s E=%d ldd=%d rows=%zu: x_proj rel err %.3g", tu_dt_names[dt],
      E, ldd, rows, e);
  printf ("conv_xproj %s E=%d ldd=%d rows=%zu: x_proj %.2e\n", tu_dt_names[dt], E, ldd, rows, e);
  cudaFree (dxz); cudaFree (dw); cudaFree (db); cudaFree (dxw); cudaFree (dxc); cudaFree (ddbl);
  conv_case_free (&cc);
  free (xw); free (xc); free (xz2); free (dbl); free (ref);
}

/* ---- scan ---- */
static int scan_version;              /* VimkScanArgs.version of the next test_scan */
static int scan_gate_silu;            /* VimkScanArgs.gate_silu of the next test_scan */
static int scan_steps;                /* VimkScanArgs.steps of the next test_scan */
static int scan_sum;                  /* VimkScanArgs.sum_directions of the next test_scan */
static int scan_row_pad;              /* floats past C in each dbl row, NaN: no kernel may read them */

static void
test_scan (int dt, int nseq, int L, int E, int N, int R, int lanes, int poly, int thr,
    int chunks, int gdt)
{
  uint64_t s = 1000 + 17 * N + R + L;
  const int r_pad = (R + 3) & ~3, b_off = r_pad;
  const int ldd = ((b_off + 2 * N + 3) & ~3) + scan_row_pad;
  const size_t rows = (size_t) nseq * L;
  float *dbl = calloc ((size_t) 2 * rows * ldd, 4);
  for (int d = 0; d < 2; d++)
    for (size_t r = 0; r < rows; r++) {
      float *p = dbl + ((size_t) d * rows + r) * ldd;
      for (int i = 0; i < R; i++)
        p[i] = tu_uniform (&s, -1, 1);
      for (int i = 0; i < 2 * N; i++)
        p[b_off + i] = tu_uniform (&s, -1, 1);
      for (int i = ldd - scan_row_pad; i < ldd; i++)
        p[i] = NAN;
    }
  void *gate = malloc (rows * 2 * E * tu_size (gdt));   /* pitch 2E like xz's z half */
  void *xy = malloc (rows * 2 * E * tu_size (dt));
  for (size_t i = 0; i < rows * 2 * E; i++) {
    tu_store (gdt, gate, i, tu_uniform (&s, -1, 1.5));
    tu_store (dt, xy, i, tu_uniform (&s, -1, 1));
  }
  float *A2 = malloc ((size_t) 2 * E * N * 4), *Wdt = calloc ((size_t) 2 * E * r_pad, 4);
  float *bdt = malloc ((size_t) 2 * E * 4), *Dv = malloc ((size_t) 2 * E * 4);
  for (int d = 0; d < 2; d++)
    for (int c = 0; c < E; c++) {
      for (int n = 0; n < N; n++)
        A2[((size_t) d * E + c) * N + n] = (float) (-(n + 1) * exp (0.1 * tu_uniform (&s, -1, 1)) * 1.4426950408889634);
      for (int r = 0; r < R; r++)
        Wdt[((size_t) d * E + c) * r_pad + r] = tu_uniform (&s, -1, 1) / sqrtf ((float) R);
      double dtv = exp (tu_uniform (&s, log (1e-3), log (0.1)));
      bdt[d * E + c] = (c == thr) ? 25.f : (float) (dtv + log (-expm1 (-dtv)));   /* past the softplus threshold */
      Dv[d * E + c] = tu_uniform (&s, 0.9, 1.1);
    }
  double *ref = malloc (rows * 2 * E * 8);
  double *h = malloc (N * 8);
  for (int q = 0; q < nseq; q++)
    for (int d = 0; d < 2; d++)
      for (int c = 0; c < E; c++) {
        for (int n = 0; n < N; n++)
          h[n] = 0;
        for (int st = 0; st < L; st++) {
          int t = d ? L - 1 - st : st;
          size_t row = (size_t) q * L + t;
          const float *p = dbl + ((size_t) d * rows + row) * ldd;
          double delta = bdt[d * E + c];
          for (int r = 0; r < R; r++)
            delta += (double) Wdt[((size_t) d * E + c) * r_pad + r] * p[r];
          delta = delta > 20 ? delta : log1p (exp (delta));
          double u = tu_load (dt, xy, row * 2 * E + (size_t) d * E + c);
          double y = 0;
          for (int n = 0; n < N; n++) {
            h[n] = exp2 (delta * A2[((size_t) d * E + c) * N + n]) * h[n] + delta * u * p[b_off + n];
            y += p[b_off + N + n] * h[n];
          }
          const double gv = tu_load (gdt, gate, row * 2 * E + c);
          y = (y + Dv[d * E + c] * u) * (scan_gate_silu ? silu_d (gv) : gv);
          ref[row * 2 * E + (size_t) d * E + c] = y;
        }
      }
  void *ddbl = dev_upload (dbl, (size_t) 2 * rows * ldd * 4);
  void *dgate = dev_upload (gate, rows * 2 * E * tu_size (gdt));
  void *dxy = dev_upload (xy, rows * 2 * E * tu_size (dt));
  void *dA2 = dev_upload (A2, (size_t) 2 * E * N * 4), *dWdt = dev_upload (Wdt, (size_t) 2 * E * r_pad * 4);
  void *dbdt = dev_upload (bdt, (size_t) 2 * E * 4), *dDv = dev_upload (Dv, (size_t) 2 * E * 4);
  VimkScanArgs a = {
    .nseq = nseq, .L = L, .E = E, .N = N, .R = R, .r_pad = r_pad,
    .dbl = ddbl, .ldd = ldd, .b_off = b_off, .gate = dgate, .ld_gate = 2 * E,
    .gate_dtype = gdt, .xy = dxy, .ld_xy = 2 * E, .A2 = dA2, .Wdt = dWdt, .bdt = dbdt,
    .Dv = dDv, .lanes = lanes, .chunks = chunks, .poly_exps = poly, .version = scan_version,
    .gate_silu = scan_gate_silu, .steps = scan_steps, .sum_directions = scan_sum,
  };
  /* asked for everywhere (2), the directions are summed where V4 runs one
   * lane and one chunk */
  const int summed = vimk_scan_sums_directions (dt, &a);
  if (scan_sum == 2 && scan_version == 4)
    CHECK (summed == (lanes >= 1 && lanes <= 2 && chunks == 1), "scan v4 %s lanes=%d chunks=%d: sums %d",
        tu_dt_names[dt], lanes, chunks, summed);
  if (scan_sum == 0)
    CHECK (!summed, "scan %s: sums the directions unasked", tu_dt_names[dt]);
  if (scan_version == 5)
    CHECK (vimk_scan_whole (dt, &a), "scan v5 %s nseq=%d L=%d E=%d R=%d: V5 does not run it",
        tu_dt_names[dt], nseq, L, E, R);
  if (scan_version == 6)
    CHECK (vimk_scan_stream (dt, &a), "scan v6 %s nseq=%d L=%d E=%d R=%d: V6 does not run it",
        tu_dt_names[dt], nseq, L, E, R);
  int G = 0, P = 0;
  vimk_scan_plan (nseq, L, E, N, R, lanes, chunks, &G, &P);
  size_t wsb = vimk_scan_workspace_bytes (nseq, E, N, P);
  void *dws = wsb ? dev_poison (wsb) : NULL;
  cudaError_t e = vimk_scan (dt, &a, dws, wsb, 0);
  CHECK (e == cudaSuccess, "scan launch %s N=%d lanes=%d chunks=%d poly=%d: %s", tu_dt_names[dt],
      N, lanes, chunks, poly, cudaGetErrorString (e));
  void *out = malloc (rows * 2 * E * tu_size (dt));
  dev_download (out, dxy, rows * 2 * E * tu_size (dt));
  if (scan_steps > 0)
    /* y past each direction's first `steps` tokens is unspecified */
    for (int q = 0; q < nseq; q++)
      for (int d = 0; d < 2; d++)
        for (int st = scan_steps; st < L; st++) {
          const size_t row = (size_t) q * L + (d ? L - 1 - st : st);
          for (int c = 0; c < E; c++) {
            const size_t i = row * 2 * E + (size_t) d * E + c;
            ref[i] = tu_load (dt, out, i);
          }
        }
  if (summed)
    /* y_f + y_b in the forward half; the backward half is unspecified */
    for (size_t row = 0; row < rows; row++)
      for (int c = 0; c < E; c++) {
        ref[row * 2 * E + c] += ref[row * 2 * E + E + c];
        ref[row * 2 * E + E + c] = tu_load (dt, out, row * 2 * E + E + c);
      }
  double err = rel_err (dt, out, ref, rows * 2 * E);
  const char *gm = scan_gate_silu ? (summed ? "silu(z), summed" : "silu(z)")
      : summed ? "gate, summed" : "gate";
  CHECK (err <= out_tol[dt], "scan v%d %s (%s %s) nseq=%d L=%d steps=%d E=%d N=%d R=%d "
      "lanes=%d(%d) chunks=%d(%d) poly=%d: rel err %.3g", scan_version, tu_dt_names[dt], gm,
      tu_dt_names[gdt], nseq, L, scan_steps, E, N, R, lanes, G, chunks, P, poly, err);
  printf ("scan v%d %s (%s %s) nseq=%d L=%d steps=%d E=%d N=%d R=%d lanes=%d(%d) chunks=%d(%d) "
      "poly=%d: %.2e\n", scan_version, tu_dt_names[dt], gm, tu_dt_names[gdt], nseq, L,
      scan_steps, E, N, R, lanes, G, chunks, P, poly, err);
  if (dws)
    cudaFree (dws);
  cudaFree (ddbl); cudaFree (dgate); cudaFree (dxy); cudaFree (dA2); cudaFree (dWdt);
  cudaFree (dbdt); cudaFree (dDv);
  free (dbl); free (gate); free (xy); free (A2); free (Wdt); free (bdt); free (Dv);
  free (ref); free (h); free (out);
}

/* A case for the whole-chain kernels (V5, V6): sequences, length,
 * channels, dt_rank, the channel past the softplus threshold (-1: none),
 * lanes and chunks asked for (which they ignore), SiLU(z) as the gate,
 * chains stopping after `steps` tokens, an fp32 gate (bf16 only) */
typedef struct {
  int nseq, L, E, R, thr, lanes, chunks, silu, steps, gate_f32;
} WholeCase;

static void
test_scan_whole_cases (int dt, int version, const WholeCase *cases, int n)
{
  scan_version = version;
  for (int i = 0; i < n; i++) {
    const WholeCase *w = &cases[i];
    if (w->gate_f32 && dt != 2)
      continue;
    scan_gate_silu = w->silu;
    scan_steps = w->steps;
    test_scan (dt, w->nseq, w->L, w->E, 16, w->R, w->lanes, w->lanes ? 0 : -1, w->thr, w->chunks,
        w->gate_f32 ? 0 : dt);
  }
  scan_gate_silu = 0;
  scan_steps = 0;
}

/* ---- embed ---- */
static void
test_embed (int dt, int nseq, int H, int W, int P, int stride, int with_cls)
{
  uint64_t s = 77 + stride;
  int gh = (H - P) / stride + 1, gw = (W - P) / stride + 1, M = gh * gw;
  int cls = with_cls ? M / 2 : -1, L = M + (with_cls ? 1 : 0), D = 24, K = 3 * P * P;
  int ldp = (K + 7) & ~7;
  size_t nin = (size_t) nseq * 3 * H * W;
  void *in = malloc (nin * tu_size (dt));
  for (size_t i = 0; i < nin; i++)
    tu_store (dt, in, i, tu_uniform (&s, -2, 2));
  float *pos = malloc ((size_t) L * D * 4), *clsv = malloc (D * 4), *pb = malloc (D * 4);
  for (int i = 0; i < L * D; i++)
    pos[i] = tu_uniform (&s, -1, 1);
  for (int i = 0; i < D; i++) {
    clsv[i] = tu_uniform (&s, -1, 1);
    pb[i] = tu_uniform (&s, -1, 1);
  }
  void *din = dev_upload (in, nin * tu_size (dt));
  void *dpos = dev_upload (pos, (size_t) L * D * 4), *dcls = dev_upload (clsv, D * 4), *dpb = dev_upload (pb, D * 4);
  size_t rows = (size_t) nseq * L;
  void *dpatch = dev_poison (rows * ldp * tu_size (dt));
  void *dres = dev_poison (rows * D * 4);
  VimkEmbedArgs a = { .nseq = nseq, .H = H, .W = W, .P = P, .stride = stride, .gh = gh,
    .gw = gw, .L = L, .D = D, .cls_index = cls, .input = din, .patches = dpatch, .ldp = ldp,
    .residual = dres, .pos = dpos, .cls = with_cls ? dcls : NULL, .patch_b = dpb };
  CU (vimk_embed_prepare (dt, &a, 0));
  void *patch = malloc (rows * ldp * tu_size (dt));
  float *res = malloc (rows * D * 4);
  dev_download (patch, dpatch, rows * ldp * tu_size (dt));
  dev_download (res, dres, rows * D * 4);
  int bad = 0;
  for (int q = 0; q < nseq; q++)
    for (int t = 0; t < L; t++) {
      size_t row = (size_t) q * L + t;
      int is_cls = with_cls && t == cls;
      for (int d = 0; d < D; d++) {
        float want = pos[t * D + d] + (is_cls ? clsv[d] : pb[d]);
        bad += res[row * D + d] != want;
      }
      int j = (with_cls && t > cls) ? t - 1 : t;
      int gy = j / gw, gx = j % gw;
      for (int k = 0; k < K; k++) {
        int c = k / (P * P), py = (k / P) % P, px = k % P;
        float want = is_cls ? 0.f
            : tu_load (dt, in, (((size_t) q * 3 + c) * H + gy * stride + py) * W + gx * stride + px);
        bad += tu_load (dt, patch, row * ldp + k) != want;
      }
    }
  CHECK (bad == 0, "embed %s P=%d stride=%d cls=%d: %d wrong values", tu_dt_names[dt], P, stride,
      with_cls, bad);
  printf ("embed %s P=%d stride=%d cls=%d: %d wrong\n", tu_dt_names[dt], P, stride, with_cls, bad);
  cudaFree (din); cudaFree (dpos); cudaFree (dcls); cudaFree (dpb); cudaFree (dpatch); cudaFree (dres);
  free (in); free (pos); free (clsv); free (pb); free (patch); free (res);
}

/* ---- final norm ---- */
static void
test_final (int dt, int nseq, int L, int D, int cls, int C)
{
  uint64_t s = 999;
  float *res = malloc ((size_t) nseq * L * D * 4), *w = malloc (D * 4), *hb = malloc (C * 4);
  for (size_t i = 0; i < (size_t) nseq * L * D; i++)
    res[i] = tu_uniform (&s, -2, 2);
  for (int i = 0; i < D; i++)
    w[i] = tu_uniform (&s, 0.5, 1.5);
  for (int i = 0; i < C; i++)
    hb[i] = tu_uniform (&s, -1, 1);
  double *ref = calloc ((size_t) nseq * D, 8);
  for (int q = 0; q < nseq; q++)
    for (int t = 0; t < L; t++) {
      if (cls >= 0 && t != cls)
        continue;
      const float *x = res + ((size_t) q * L + t) * D;
      double ss = 0;
      for (int d = 0; d < D; d++)
        ss += (double) x[d] * x[d];
      double inv = 1.0 / sqrt (ss / D + 1e-5);
      for (int d = 0; d < D; d++)
        ref[q * D + d] += x[d] * inv * w[d] / (cls >= 0 ? 1 : L);
    }
  void *dres = dev_upload (res, (size_t) nseq * L * D * 4), *dw = dev_upload (w, D * 4);
  void *dhb = dev_upload (hb, C * 4);
  void *dfeat = dev_poison ((size_t) nseq * D * tu_size (dt)), *dlog = dev_poison ((size_t) nseq * C * 4);
  CU (vimk_final_prepare (dt, dres, nseq, L, D, cls, dw, 1e-5f, dfeat, dlog, dhb, C, 0));
  void *feat = malloc ((size_t) nseq * D * tu_size (dt));
  float *lg = malloc ((size_t) nseq * C * 4);
  dev_download (feat, dfeat, (size_t) nseq * D * tu_size (dt));
  dev_download (lg, dlog, (size_t) nseq * C * 4);
  double e = rel_err (dt, feat, ref, (size_t) nseq * D);
  int bad = 0;
  for (int q = 0; q < nseq; q++)
    for (int k = 0; k < C; k++)
      bad += lg[q * C + k] != hb[k];
  CHECK (e <= out_tol[dt], "final %s cls=%d: rel err %.3g", tu_dt_names[dt], cls, e);
  CHECK (bad == 0, "final %s: %d logits not set to the bias", tu_dt_names[dt], bad);
  printf ("final %s cls=%d: %.2e\n", tu_dt_names[dt], cls, e);
  cudaFree (dres); cudaFree (dw); cudaFree (dhb); cudaFree (dfeat); cudaFree (dlog);
  free (res); free (w); free (hb); free (ref); free (feat); free (lg);
}

/* ---- conversion ---- */
static void
test_convert (int dt)
{
  uint64_t s = 3;
  size_t n = 100003;
  float *x = malloc (n * 4);
  for (size_t i = 0; i < n; i++)
    x[i] = tu_uniform (&s, -70000, 70000) * (i % 3 == 0 ? 1e-6f : 1.f);
  void *dx = dev_upload (x, n * 4), *dy = dev_poison (n * tu_size (dt));
  CU (vimk_convert_from_f32 (dt, dy, dx, n, 0));
  void *y = malloc (n * tu_size (dt));
  dev_download (y, dy, n * tu_size (dt));
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    float want = tu_round (dt, x[i]), got = tu_load (dt, y, i);
    bad += !(want == got || (isinf (want) && isinf (got)));
  }
  CHECK (bad == 0, "convert %s: %zu mismatches", tu_dt_names[dt], bad);
  cudaFree (dx); cudaFree (dy); free (x); free (y);
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
    test_convert (dt);
    test_rmsnorm (dt, 37, 192, 192);       /* 16 lanes a row, a group past the last row */
    test_rmsnorm (dt, 13, 96, 100);        /* 8 lanes a row */
    test_rmsnorm (dt, 7, 40, 40);          /* 10 float4: 32 lanes, most idle */
    test_rmsnorm (dt, 21, 50, 52);
    test_rmsnorm (dt, 9, 768, 772);        /* 6 float4 per lane */
    test_rmsnorm (dt, 11, 384, 384);       /* Vim-S: 32 lanes x 3 float4 */
    test_rmsnorm (dt, 5, 1024, 1024);      /* 8 float4 per lane, the most */
    test_rmsnorm (dt, 6, 132, 136);        /* 33 float4: 2 per lane, the second on one lane */
    test_rmsnorm (dt, 5, 1040, 1040);      /* past the register path */
    for (int gated = 1; gated >= 0; gated--) {
      test_conv (dt, 3, 37, 40, 4, dt, gated);
      test_conv (dt, 2, 5, 24, 3, dt, gated);
      test_conv (dt, 2, 19, 21, 4, dt, gated);      /* odd E: the generic path */
      test_conv (dt, 1, 3, 64, 4, dt, gated);       /* L shorter than the halo */
      test_conv (dt, 2, 197, 384, 4, dt, gated);    /* Vim-Ti width */
      test_conv (dt, 43, 197, 384, 4, dt, gated);   /* >= 8192 rows: the quad kernel */
      if (dt == 2) {
        test_conv (dt, 3, 37, 40, 4, 0, gated);
        test_conv (dt, 43, 197, 384, 4, 0, gated);
      }
    }
    /* one launch with x_proj (16-bit only): Vim-Ti/S/B widths, tiles of 32
     * and 16 rows spanning sequences, a last tile part-filled, L below the
     * halo; bf16 also with the fp32 xz the bf16 runner uses */
    if (dt != 0) {
      test_conv_xproj (dt, 3, 197, 384, 44, dt);
      test_conv_xproj (dt, 2, 37, 768, 56, dt);
      test_conv_xproj (dt, 1, 50, 1536, 80, dt);
      test_conv_xproj (dt, 5, 2, 192, 44, dt);
      test_conv_xproj (dt, 1, 1, 384, 20, dt);
      test_conv_xproj (dt, 43, 197, 384, 44, dt);   /* >= 264 blocks of 32 rows: tiles of 32 */
      if (dt == 2)
        test_conv_xproj (dt, 3, 197, 384, 44, 0);
    }
    test_embed (dt, 2, 12, 16, 4, 4, 1);
    test_embed (dt, 2, 12, 16, 4, 2, 1);
    test_embed (dt, 1, 12, 16, 4, 4, 0);
    /* 16-byte pieces (P, stride and W whole pieces): Vim's 16 x 16
     * patches at strides 16 and 8 */
    test_embed (dt, 2, 48, 48, 16, 16, 1);
    test_embed (dt, 2, 48, 64, 16, 8, 1);
    test_embed (dt, 1, 32, 32, 16, 16, 0);
    test_final (dt, 3, 9, 48, 4, 10);
    test_final (dt, 2, 9, 48, -1, 7);
    /* scan: every lane split for N = 16 and 8, chunked runs, the polynomial
     * variants, odd L, channels that leave lanes idle, R not a multiple of 4 */
    for (int lanes = 1; lanes <= 16; lanes *= 2)
      test_scan (dt, 2, 53, 44, 16, 12, lanes, 0, -1, 1, dt);
    for (int lanes = 1; lanes <= 8; lanes *= 2)
      test_scan (dt, 2, 29, 40, 8, 3, lanes, 0, -1, 1, dt);
    for (int chunks = 2; chunks <= 9; chunks += 7)
      for (int lanes = 1; lanes <= 16; lanes *= 4)
        test_scan (dt, 2, 301, 36, 16, 24, lanes, 0, -1, chunks, dt);
    test_scan (dt, 2, 150, 40, 8, 3, 2, 0, -1, 3, dt);
    test_scan (dt, 2, 53, 44, 16, 12, 1, 3, -1, 1, dt);
    test_scan (dt, 1, 301, 36, 16, 24, 0, -1, -1, 0, dt);
    test_scan (dt, 3, 40, 20, 16, 48, 0, -1, -1, 0, dt);
    test_scan (dt, 1, 20, 8, 16, 12, 4, 0, 3, 1, dt);
    test_scan (dt, 1, 1000, 24, 16, 12, 0, -1, -1, 0, dt);
    if (dt == 2)
      test_scan (dt, 2, 53, 44, 16, 12, 2, 0, -1, 2, 0);
    /* V4 runs only where E is a multiple of 32 (else V3 does): V3 and V4 on
     * every lane split V4 has, chunked runs, dt_proj rows of 5-60, the
     * polynomial exponentials, a warp past E (E = 96 in blocks of 128
     * chains), bf16 with an fp32 gate and the planner's own choice */
    for (scan_version = 3; scan_version <= 4; scan_version++) {
      for (int lanes = 1; lanes <= 8; lanes *= 2)
        test_scan (dt, 2, 53, 64, 16, 12, lanes, 0, -1, 1, dt);
      test_scan (dt, 2, 301, 64, 16, 24, 1, 0, -1, 4, dt);
      test_scan (dt, 2, 301, 64, 16, 24, 4, 0, -1, 9, dt);
      test_scan (dt, 1, 77, 96, 16, 48, 1, 0, 5, 1, dt);
      test_scan (dt, 1, 77, 96, 16, 48, 8, 0, -1, 3, dt);
      test_scan (dt, 2, 53, 64, 16, 12, 1, scan_version == 4 && dt != 0 ? 2 : 3, -1, 1, dt);
      /* V4's dt_proj on the tensor cores (one lane, 16-bit, R > 16) with
       * the polynomial exponentials, chunked and not */
      if (scan_version == 4 && dt != 0) {
        test_scan (dt, 2, 301, 64, 16, 24, 1, 2, -1, 4, dt);
        test_scan (dt, 1, 77, 96, 16, 48, 1, 2, -1, 1, dt);
      }
      if (dt == 2)
        test_scan (dt, 2, 53, 64, 16, 12, 1, 0, -1, 2, 0);
      test_scan (dt, 3, 40, 64, 16, 12, 0, -1, -1, 0, dt);
      /* dt_proj rows V4 pads with zero weights: 2, 5 and 15 columns run
       * its kernels of 3, 6 and 16 */
      test_scan (dt, 2, 53, 64, 16, 5, 1, 0, -1, 1, dt);
      test_scan (dt, 1, 77, 64, 16, 20, 2, 0, -1, 3, dt);
      test_scan (dt, 1, 40, 64, 16, 60, 4, 0, -1, 1, dt);
      /* rows longer than what the kernels read (the runner's Vim-Ti rows
       * are 48 floats, V4 stages 44), their padding NaN: rows of B after
       * RV whole dt_low columns and not, one lane and lanes, chunked */
      scan_row_pad = 8;
      test_scan (dt, 2, 53, 64, 16, 12, 1, 0, -1, 1, dt);
      test_scan (dt, 2, 53, 64, 16, 5, 1, 0, -1, 1, dt);
      test_scan (dt, 1, 77, 64, 16, 20, 2, 0, -1, 3, dt);
      test_scan (dt, 2, 301, 64, 16, 24, 1, 0, -1, 4, dt);
      scan_row_pad = 0;
      /* chains that stop at a middle token (steps): one lane, and the
       * planner's lanes and chunks */
      scan_steps = 99;
      test_scan (dt, 2, 197, 64, 16, 12, 1, -1, -1, 1, dt);
      test_scan (dt, 1, 197, 64, 16, 12, 0, -1, -1, 0, dt);
      scan_steps = 0;
      /* SiLU(z) in the scan (the runner's default): one lane with the
       * polynomial, lanes with chunks, bf16 with an fp32 z; V2 too */
      scan_gate_silu = 1;
      test_scan (dt, 2, 53, 64, 16, 12, 1, -1, -1, 1, dt);
      test_scan (dt, 2, 301, 64, 16, 24, 4, 0, -1, 9, dt);
      if (dt == 2)
        test_scan (dt, 2, 53, 64, 16, 12, 1, 0, -1, 2, 0);
      scan_gate_silu = 0;
    }
    /* V4 summing the directions into the forward half: dt_proj rows of 3,
     * 6 (the tensor cores at 16 bits) and 12 columns, the polynomial
     * exponentials, a warp past E, SiLU(z), bf16 with an fp32 gate; and
     * plans that cannot sum (lanes, chunks), which must say so */
    scan_version = 4;
    scan_sum = 2;
    test_scan (dt, 2, 53, 64, 16, 12, 1, 0, -1, 1, dt);
    test_scan (dt, 2, 197, 64, 16, 24, 1, 0, 7, 1, dt);
    test_scan (dt, 1, 77, 96, 16, 48, 1, 0, -1, 1, dt);
    if (dt != 0)
      test_scan (dt, 2, 53, 64, 16, 12, 1, 2, -1, 1, dt);
    test_scan (dt, 2, 53, 64, 16, 12, 2, 0, -1, 1, dt);
    test_scan (dt, 1, 77, 96, 16, 48, 2, 0, -1, 1, dt);
    test_scan (dt, 2, 53, 64, 16, 12, 4, 0, -1, 1, dt);
    test_scan (dt, 2, 301, 64, 16, 24, 1, 0, -1, 4, dt);
    scan_gate_silu = 1;
    test_scan (dt, 2, 197, 64, 16, 12, 1, -1, -1, 1, dt);
    if (dt == 2)
      test_scan (dt, 2, 53, 64, 16, 12, 1, 0, -1, 1, 0);
    scan_gate_silu = 0;
    scan_sum = 0;
    scan_version = 0;
    /* V5, whole chains in one launch: channels a multiple of 8 (not of
     * 32), lengths not a multiple of 16 or of its 4 parts, dt_proj rows
     * of 5-60 (kernels of 3, 6, 12 and 16 columns), softplus past its
     * threshold, SiLU(z), chains that stop at a middle token, bf16 with
     * an fp32 gate; chunks 1 (whole chains in the block) but for one case
     * with lanes/chunks that V5 ignores, where it chooses its chunk groups */
    static const WholeCase v5_cases[] = {
      { 2, 53, 40, 12, -1, 0, 1 }, { 1, 197, 64, 12, 3, 0, 1 }, { 3, 7, 24, 5, -1, 0, 1 },
      { 1, 77, 96, 24, -1, 4, 16 }, { 2, 40, 16, 48, 5, 0, 1 }, { 1, 301, 32, 60, -1, 0, 1 },
      { 2, 197, 64, 12, -1, 0, 1, .silu = 1 },
      { 2, 197, 64, 12, -1, 0, 1, .silu = 1, .steps = 99 },
      { 2, 53, 64, 12, -1, 0, 1, .silu = 1, .gate_f32 = 1 },
    };
    test_scan_whole_cases (dt, 5, v5_cases, (int) (sizeof v5_cases / sizeof v5_cases[0]));
    /* V5 with 2 or 4 chunk groups in the block (version 5 and chunks 2|4):
     * one tile for four groups (three empty), as many tiles as groups,
     * uneven splits, dt_proj rows of 12-60, softplus past its threshold,
     * SiLU(z), a chain that stops at a middle token, bf16 with an fp32 gate */
    static const WholeCase v5_chunked_cases[] = {
      { 3, 7, 24, 5, -1, 0, 4 }, { 2, 53, 40, 12, -1, 0, 4 }, { 1, 197, 64, 12, 3, 0, 2 },
      { 1, 197, 64, 12, 3, 0, 4 }, { 1, 301, 32, 60, -1, 0, 2 }, { 2, 40, 16, 48, 5, 0, 4 },
      { 2, 197, 64, 12, -1, 0, 4, .silu = 1, .steps = 99 },
      { 2, 53, 64, 12, -1, 0, 4, .silu = 1, .gate_f32 = 1 },
    };
    test_scan_whole_cases (dt, 5, v5_chunked_cases,
        (int) (sizeof v5_chunked_cases / sizeof v5_chunked_cases[0]));
    /* V6, chains streamed through a ring of parts: one part and fewer
     * steps than a tile, lengths not a multiple of a tile or a part,
     * more parts than the ring holds (1025, 2000 steps), dt_proj rows of
     * 5-60, softplus past its threshold, SiLU(z), chains that stop at a
     * middle token, bf16 with an fp32 gate, lanes/chunks given (ignored) */
    static const WholeCase v6_cases[] = {
      { 2, 53, 48, 12, -1 }, { 3, 7, 16, 5, 2 }, { 1, 197, 64, 12, 3 },
      { 1, 1025, 32, 24, -1, 4, 16 }, { 2, 40, 16, 48, 5 }, { 1, 2000, 16, 60, -1 },
      { 1, 160, 32, 12, -1 }, { 2, 301, 64, 12, -1, .silu = 1 },
      { 2, 197, 64, 12, -1, .silu = 1, .steps = 99 },
      { 2, 77, 64, 12, -1, .silu = 1, .gate_f32 = 1 },
    };
    test_scan_whole_cases (dt, 6, v6_cases, (int) (sizeof v6_cases / sizeof v6_cases[0]));
    scan_version = 2;
    scan_gate_silu = 1;
    test_scan (dt, 2, 53, 44, 16, 12, 2, 0, -1, 2, dt);
    scan_gate_silu = 0;
    scan_version = 0;
  }
  {
    /* unsupported tuning is refused, not launched */
    VimkScanArgs a = { .nseq = 1, .L = 4, .E = 8, .N = 16, .R = 12, .r_pad = 12, .ldd = 44,
      .b_off = 12, .gate_dtype = -1, .lanes = 3 };
    CHECK (vimk_scan (VIMK_F32, &a, NULL, 0, 0) == cudaErrorInvalidValue, "lanes=3 accepted");
    a.lanes = 1;
    a.L = 400;
    a.chunks = 4;
    CHECK (vimk_scan (VIMK_F32, &a, NULL, 0, 0) == cudaErrorInvalidValue, "chunks without workspace accepted");
    CHECK (!vimk_scan_supported (32, 12), "N=32 claimed supported");
    /* the planner's V6 rule: 2-3.5 blocks of 16 chains per SM, and not
     * beside another stream's scan (unless the environment overrides it) */
    const int own_plan = !getenv ("VIM_CUDA_SCAN_STREAM") && !getenv ("VIM_CUDA_SCAN_VERSION");
    int dev = 0, sms = 0;
    CU (cudaGetDevice (&dev));
    CU (cudaDeviceGetAttribute (&sms, cudaDevAttrMultiProcessorCount, dev));
    VimkScanArgs v6 = { .L = 197, .E = 64, .N = 16, .R = 12, .r_pad = 12, .ldd = 44, .b_off = 12,
      .gate_dtype = -1, .ld_gate = 128, .ld_xy = 128, .dbl = (const float *) 256,
      .xy = (void *) 256, .gate = (const void *) 256 };
    v6.nseq = (int) ((5LL * sms + 15) / 16);           /* 8 blocks a sequence: 2.5 per SM */
    CHECK (!own_plan || vimk_scan_stream (VIMK_F16, &v6), "V6 not chosen at 2.5 blocks per SM");
    v6.concurrent = 1;
    CHECK (!own_plan || !vimk_scan_stream (VIMK_F16, &v6), "V6 chosen beside another stream's scan");
    v6.concurrent = 0;
    v6.nseq = sms;                                     /* 8 per SM */
    CHECK (!own_plan || !vimk_scan_stream (VIMK_F16, &v6), "V6 chosen at 8 blocks per SM");
    CHECK (!vimk_conv_xproj_supported (VIMK_F32, VIMK_F32, 384, 4, 44), "fp32 conv_xproj claimed");
    CHECK (!vimk_conv_xproj_supported (VIMK_F16, VIMK_F16, 384, 3, 44), "K=3 conv_xproj claimed");
    CHECK (!vimk_conv_xproj_supported (VIMK_F16, VIMK_F16, 40, 4, 44), "E=40 conv_xproj claimed");
    CHECK (vimk_conv_xproj (VIMK_F16, VIMK_F16, NULL, NULL, NULL, NULL, NULL, NULL, 44, 1, 4, 40,
            4, 0) == cudaErrorInvalidValue, "conv_xproj E=40 launched");
  }
  CU (cudaDeviceSynchronize ());
  if (test_failures) {
    fprintf (stderr, "%d check(s) failed\n", test_failures);
    return 1;
  }
  printf ("all kernel tests passed\n");
  return 0;
}
