/* The CPU reference backend: fp32, GEMMs through OpenBLAS (cblas), the
 * causal conv, selective scan, RMSNorm and head in C, split over the
 * runner's thread pool (thread_pool.c) by rows, tokens or channel blocks.
 *
 * Layout is token-major throughout: an activation of B images, L tokens and
 * C channels is a row-major (B*L, C) matrix. The backward direction reads the
 * same buffers with mirrored time indexing, so nothing is ever flipped. */
#include "vim-private.h"

#include <cblas.h>
#include "vim-build-config.h"
#include <math.h>
#include <string.h>

/* Channels scanned together: one AVX2 vector of state per (token, state). */
#define CHANNEL_BLOCK 8

/* Hot loops are compiled twice, for AVX2+FMA and for baseline x86-64, and the
 * loader picks one at run time: one binary runs on any x86-64 host. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIMD_CLONES __attribute__((target_clones ("arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif
#define ALWAYS_INLINE inline __attribute__((always_inline))

typedef struct {
  int batch;                  /* images the buffers are sized for */
  float *patches;             /* (B*M, 3*P*P) im2col of the input */
  float *residual;            /* (B*L, D) the residual stream */
  float *hidden;              /* (B*L, D) the last mixer output */
  float *normed;              /* (B*L, D) */
  float *xz;                  /* (B*L, 2E): x = [:, :E], z = [:, E:] */
  float *xc;                  /* (B*L, E) conv + SiLU output of one direction */
  float *xdbl;                /* (B*L, R+2N) dt_low | B | C of one direction */
  float *delta;               /* (B*L, E) softplus(dt) of one direction */
  float *gated;               /* (B*L, E) sum of both directions' gated outputs */
  float *feature;             /* (B, D) final normed class token */
  /* segmenters only: the head's per-token activations */
  float *seg_sum;             /* (B*M, C_h) sum over levels of W_i feat_i + bias */
  float *seg_act;             /* (B*M, C_h) after depthwise conv and GELU */
  float *seg_logits;          /* (B*M, K) token-major logits */
} CpuWorkspace;

typedef struct {
  CpuWorkspace ws;
  VimThreadPool *pool;
  int n_threads;
  float *neg_a;               /* -exp(A_log) of every layer and direction, in scan order */
  size_t neg_a_stride;        /* floats per (layer, direction) */
} CpuRunner;

/* ---- elementwise math ------------------------------------------------- */

/* exp(x) to about 2 ulp, written so the compiler vectorizes it: the scan
 * needs E*N of these per token and direction, and libm's scalar expf would
 * dominate the CPU time. */
static ALWAYS_INLINE float
fast_expf (float x)
{
  /* clamp so that the integer conversion below is always defined (a NaN
   * compares false and lands on -87; it is passed through at the end) */
  float xc = x > -87.0f ? x : -87.0f;
  xc = xc < 88.0f ? xc : 88.0f;
  /* round to nearest by the 1.5 * 2^23 trick: vectorizes without SSE4.1 */
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;        /* Cody-Waite: ln2 split in two */
  r = r + n * 2.12194440e-4f;
  /* minimax polynomial for e^r on [-ln2/2, ln2/2] */
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { float f; int32_t i; } s;
  s.i = ((int32_t) n + 127) << 23;
  return x != x ? x : p * s.f;
}

static ALWAYS_INLINE float
silu (float v)
{
  return v / (1.0f + fast_expf (-v));
}

/* log(x) for normal x > 0 to about 1 ulp: exponent split plus a polynomial
 * in the mantissa, vectorizable (libm's log1pf is scalar). */
static ALWAYS_INLINE float
fast_logf (float x)
{
  union { float f; int32_t i; } u = { .f = x };
  int32_t e = ((u.i >> 23) & 0xff) - 127;
  u.i = (u.i & 0x007fffff) | 0x3f800000;      /* mantissa in [1, 2) */
  float m = u.f;
  if (m > 1.41421356f) {                      /* centre on 1: m in [0.707, 1.414) */
    m *= 0.5f;
    e += 1;
  }
  float f = m - 1.0f, z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = f * z * p - 0.5f * z + f;
  return y + (float) e * 0.693147180559945f;
}

/* softplus with the official threshold: x > 20 -> x, else log1p(exp(x)).
 * log1p(e) = log(u) * e / (u - 1) with u = 1 + e keeps full precision for
 * small e (the classic correction for the rounding of 1 + e). */
static ALWAYS_INLINE float
softplus (float v)
{
  float e = fast_expf (v);
  float u = 1.0f + e;
  float l = u == 1.0f ? e : fast_logf (u) * (e / (u - 1.0f));
  return v > 20.0f ? v : l;
}

static void
rmsnorm_rows (const float *in, const float *w, float *out, size_t rows,
    int dim, float eps)
{
  for (size_t r = 0; r < rows; r++) {
    const float *x = in + r * dim;
    float ss = 0.f;
    for (int i = 0; i < dim; i++)
      ss += x[i] * x[i];
    float inv = 1.0f / sqrtf (ss / dim + eps);
    for (int i = 0; i < dim; i++)
      out[r * dim + i] = x[i] * inv * w[i];
  }
}

typedef struct {
  const float *in, *w;
  float *out;
  int lda, rows, n, k, slices;
  float alpha, beta;
} GemmJob;

static void
gemm_slices (void *data, int begin, int end)
{
  const GemmJob *j = data;
  for (int s = begin; s < end; s++) {
    int r0 = (int) ((gint64) j->rows * s / j->slices);
    int r1 = (int) ((gint64) j->rows * (s + 1) / j->slices);
    if (r1 > r0)
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, j->n,
          j->k, j->alpha, j->in + (size_t) r0 * j->lda, j->lda, j->w, j->k,
          j->beta, j->out + (size_t) r0 * j->n, j->n);
  }
}

/* out(rows, n) = alpha * in(rows, k) @ w(n, k)^T + beta * out. Rows are
 * split over the runner's threads and each slice is one single-threaded BLAS
 * call: one thread pool for the whole forward pass instead of BLAS's and
 * ours fighting over the cores. */
static void
matmul_wt_acc (const CpuRunner *cr, const float *in, int lda,
    const float *w, float *out, int rows, int n, int k, float alpha,
    float beta)
{
  GemmJob j = { in, w, out, lda, rows, n, k,
    MIN (cr->n_threads, MAX (1, rows / 32)), alpha, beta };
  vim_parallel_for (cr->pool, j.slices, gemm_slices, &j);
}

static void
matmul_wt_scaled (const CpuRunner *cr, const float *in, int lda,
    const float *w, float *out, int rows, int n, int k, float alpha)
{
  matmul_wt_acc (cr, in, lda, w, out, rows, n, k, alpha, 0.0f);
}

static void
matmul_wt (const CpuRunner *cr, const float *in, int lda, const float *w,
    float *out, int rows, int n, int k)
{
  matmul_wt_scaled (cr, in, lda, w, out, rows, n, k, 1.0f);
}

/* ---- one direction of the mixer ----------------------------------------- */

/* Depthwise conv over time + SiLU for one token. Forward: causal taps
 * x[t-K+1+k]; backward (the flipped branch seen in original order):
 * x[t+K-1-k]. */
SIMD_CLONES static void
conv_silu_token (const VimModelConfig *c, const VimDirectionWeights *dw,
    const float *xz, float *xc, int b, int t, int backward)
{
  const int L = c->seq_len, E = c->d_inner, K = c->d_conv;
  float *o = xc + ((size_t) b * L + t) * E;
  for (int ch = 0; ch < E; ch++)
    o[ch] = dw->conv_b[ch];
  for (int k = 0; k < K; k++) {
    int src = backward ? t + (K - 1 - k) : t - (K - 1 - k);
    if (src < 0 || src >= L)
      continue;
    const float *x = xz + ((size_t) b * L + src) * 2 * E;
    for (int ch = 0; ch < E; ch++)
      o[ch] += dw->conv_w[ch * K + k] * x[ch];
  }
  for (int ch = 0; ch < E; ch++)
    o[ch] = silu (o[ch]);
}

/* delta = softplus(dt_proj(dt_low) + bias), one token row */
SIMD_CLONES static void
softplus_row (float *delta, const float *bias, int n)
{
  for (int i = 0; i < n; i++)
    delta[i] = softplus (delta[i] + bias[i]);
}

/* Selective scan of one direction over a block of channels, gated by
 * SiLU(z), added into gated[]. neg_a is this direction's -exp(A_log) laid
 * out (E/CB, N, CB) so a state row is one vector. */
static ALWAYS_INLINE void
scan_block (const VimModelConfig *c, const VimDirectionWeights *dw,
    const float *neg_a, const float *xc, const float *xdbl, const float *delta,
    const float *xz, float *gated, int b, int c0, const int nj, int backward,
    int accumulate)
{
  const int L = c->seq_len, E = c->d_inner, N = c->d_state, R = c->dt_rank;
  const int XD = R + 2 * N;
  float h[256][CHANNEL_BLOCK];
  memset (h, 0, sizeof (float) * N * CHANNEL_BLOCK);
  const float *a = neg_a + (size_t) (c0 / CHANNEL_BLOCK) * N * CHANNEL_BLOCK;
  for (int step = 0; step < L; step++) {
    int t = backward ? L - 1 - step : step;
    size_t row = (size_t) b * L + t;
    const float *u = xc + row * E + c0;
    const float *dl = delta + row * E + c0;
    const float *Bt = xdbl + row * XD + R;
    const float *Ct = Bt + N;
    float y[CHANNEL_BLOCK], du[CHANNEL_BLOCK];
    for (int j = 0; j < nj; j++) {
      y[j] = dw->D[c0 + j] * u[j];
      du[j] = dl[j] * u[j];
    }
    for (int n = 0; n < N; n++) {
      const float bn = Bt[n], cn = Ct[n];
      for (int j = 0; j < nj; j++) {
        float dA = fast_expf (dl[j] * a[n * CHANNEL_BLOCK + j]);
        h[n][j] = dA * h[n][j] + bn * du[j];
        y[j] += h[n][j] * cn;
      }
    }
    const float *z = xz + row * 2 * E + E + c0;
    float *g = gated + row * E + c0;
    for (int j = 0; j < nj; j++) {
      float o = y[j] * silu (z[j]);
      g[j] = accumulate ? g[j] + o : o;
    }
  }
}

SIMD_CLONES static void
scan_block_full (const VimModelConfig *c, const VimDirectionWeights *dw,
    const float *neg_a, const float *xc, const float *xdbl, const float *delta,
    const float *xz, float *gated, int b, int c0, int backward)
{
  scan_block (c, dw, neg_a, xc, xdbl, delta, xz, gated, b, c0, CHANNEL_BLOCK,
      backward, backward);
}

SIMD_CLONES static void
scan_block_tail (const VimModelConfig *c, const VimDirectionWeights *dw,
    const float *neg_a, const float *xc, const float *xdbl, const float *delta,
    const float *xz, float *gated, int b, int c0, int nj, int backward)
{
  scan_block (c, dw, neg_a, xc, xdbl, delta, xz, gated, b, c0, nj, backward,
      backward);
}

/* One direction's element-wise and scan work, split over the thread pool. */
typedef struct {
  const VimModelConfig *c;
  const VimDirectionWeights *dw;
  const float *neg_a;
  CpuWorkspace *ws;
  int backward;
} DirectionJob;

static void
conv_tokens (void *data, int begin, int end)
{
  const DirectionJob *j = data;
  for (int i = begin; i < end; i++)
    conv_silu_token (j->c, j->dw, j->ws->xz, j->ws->xc, i / j->c->seq_len,
        i % j->c->seq_len, j->backward);
}

static void
softplus_rows (void *data, int begin, int end)
{
  const DirectionJob *j = data;
  const int E = j->c->d_inner;
  for (int r = begin; r < end; r++)
    softplus_row (j->ws->delta + (size_t) r * E, j->dw->dt_proj_b, E);
}

static void
scan_blocks (void *data, int begin, int end)
{
  const DirectionJob *j = data;
  const int E = j->c->d_inner;
  const int blocks = (E + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
  CpuWorkspace *ws = j->ws;
  for (int i = begin; i < end; i++) {
    int b = i / blocks, c0 = (i % blocks) * CHANNEL_BLOCK;
    /* a constant width lets the compiler keep the state in vector registers */
    if (c0 + CHANNEL_BLOCK <= E)
      scan_block_full (j->c, j->dw, j->neg_a, ws->xc, ws->xdbl, ws->delta,
          ws->xz, ws->gated, b, c0, j->backward);
    else
      scan_block_tail (j->c, j->dw, j->neg_a, ws->xc, ws->xdbl, ws->delta,
          ws->xz, ws->gated, b, c0, E - c0, j->backward);
  }
}

static void
mixer_direction (const CpuRunner *cr, const VimModelConfig *c,
    const VimDirectionWeights *dw, const float *neg_a, CpuWorkspace *ws,
    int batch, int backward)
{
  const int L = c->seq_len, E = c->d_inner, N = c->d_state, R = c->dt_rank;
  const int BL = batch * L, XD = R + 2 * N;
  DirectionJob job = { c, dw, neg_a, ws, backward };

  vim_parallel_for (cr->pool, BL, conv_tokens, &job);
  matmul_wt (cr, ws->xc, E, dw->x_proj_w, ws->xdbl, BL, XD, E);
  matmul_wt (cr, ws->xdbl, XD, dw->dt_proj_w, ws->delta, BL, E, R);
  vim_parallel_for (cr->pool, BL, softplus_rows, &job);
  vim_parallel_for (cr->pool, batch * ((E + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK),
      scan_blocks, &job);
}

/* ---- the forward pass --------------------------------------------------- */

static void
workspace_free (CpuWorkspace *ws)
{
  g_free (ws->patches);
  g_free (ws->residual);
  g_free (ws->hidden);
  g_free (ws->normed);
  g_free (ws->xz);
  g_free (ws->xc);
  g_free (ws->xdbl);
  g_free (ws->delta);
  g_free (ws->gated);
  g_free (ws->feature);
  g_free (ws->seg_sum);
  g_free (ws->seg_act);
  g_free (ws->seg_logits);
  memset (ws, 0, sizeof *ws);
}

static gboolean
workspace_ensure (CpuWorkspace *ws, const VimModelConfig *c, int batch,
    GError **error)
{
  if (ws->batch >= batch)
    return TRUE;
  workspace_free (ws);
  const size_t BL = (size_t) batch * c->seq_len, D = c->embed_dim,
      E = c->d_inner, XD = c->dt_rank + 2 * c->d_state,
      PP = 3 * (size_t) c->patch_size * c->patch_size;
  ws->patches = g_try_new (float, (size_t) batch * c->num_patches * PP);
  ws->residual = g_try_new (float, BL * D);
  ws->hidden = g_try_new (float, BL * D);
  ws->normed = g_try_new (float, BL * D);
  ws->xz = g_try_new (float, BL * 2 * E);
  ws->xc = g_try_new (float, BL * E);
  ws->xdbl = g_try_new (float, BL * XD);
  ws->delta = g_try_new (float, BL * E);
  ws->gated = g_try_new (float, BL * E);
  ws->feature = g_try_new (float, (size_t) batch * D);
  gboolean seg_ok = TRUE;
  if (c->task == VIM_TASK_SEGMENTATION) {
    const size_t BM = (size_t) batch * c->num_patches;
    ws->seg_sum = g_try_new (float, BM * c->seg_channels);
    ws->seg_act = g_try_new (float, BM * c->seg_channels);
    ws->seg_logits = g_try_new (float, BM * c->num_classes);
    seg_ok = ws->seg_sum && ws->seg_act && ws->seg_logits;
  }
  if (!ws->patches || !ws->residual || !ws->hidden || !ws->normed || !ws->xz
      || !ws->xc || !ws->xdbl || !ws->delta || !ws->gated || !ws->feature
      || !seg_ok) {
    workspace_free (ws);
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
        "out of host memory for a batch of %d (%zu tokens)", batch, BL);
    return FALSE;
  }
  ws->batch = batch;
  return TRUE;
}

/* -exp(A_log) for one direction of one layer, in the (ceil(E/CB), N, CB)
 * order scan_block reads. */
static void
prepare_neg_a (const VimModelConfig *c, const float *A_log, float *out)
{
  const int E = c->d_inner, N = c->d_state;
  for (int ch = 0; ch < E; ch++)
    for (int n = 0; n < N; n++)
      out[((size_t) (ch / CHANNEL_BLOCK) * N + n) * CHANNEL_BLOCK
          + ch % CHANNEL_BLOCK] = -expf (A_log[(size_t) ch * N + n]);
}

typedef struct {
  const VimModelConfig *c;
  const float *input;
  float *patches;
} Im2colJob;

/* Rows of the im2col matrix: one patch (3, P, P) per (image, grid cell). */
static void
im2col_patches (void *data, int begin, int end)
{
  const Im2colJob *j = data;
  const VimModelConfig *c = j->c;
  const int P = c->patch_size, S = c->stride, H = c->image_height,
      W = c->image_width, gw = c->grid_w, M = c->num_patches, PP = 3 * P * P;
  for (int i = begin; i < end; i++) {
    int b = i / M, cell = i % M;
    float *row = j->patches + (size_t) i * PP;
    int y0 = (cell / gw) * S, x0 = (cell % gw) * S;
    for (int ch = 0; ch < 3; ch++)
      for (int ky = 0; ky < P; ky++)
        memcpy (row + (ch * P + ky) * P,
            j->input + (((size_t) b * 3 + ch) * H + y0 + ky) * W + x0,
            sizeof (float) * P);
  }
}

/* Patch embedding (a strided conv as im2col + GEMM), class token insertion
 * in the middle, absolute position embedding. Writes the residual stream. */
static void
embed (const CpuRunner *cr, const VimModel *m, const float *input, int batch,
    CpuWorkspace *ws)
{
  const VimModelConfig *c = &m->config;
  const int P = c->patch_size, M = c->num_patches, D = c->embed_dim,
      L = c->seq_len, PP = 3 * P * P;
  Im2colJob job = { c, input, ws->patches };
  vim_parallel_for (cr->pool, batch * M, im2col_patches, &job);
  /* GEMM into the hidden buffer, then scatter into sequence order */
  matmul_wt (cr, ws->patches, PP, m->w.patch_w, ws->hidden, batch * M, D, PP);
  for (int b = 0; b < batch; b++)
    for (int t = 0; t < L; t++) {
      float *dst = ws->residual + ((size_t) b * L + t) * D;
      const float *pos = m->w.pos_embed + (size_t) t * D;
      if (t == c->cls_index) {
        for (int i = 0; i < D; i++)
          dst[i] = m->w.cls_token[i] + pos[i];
        continue;
      }
      int j = (c->cls_index >= 0 && t > c->cls_index) ? t - 1 : t;
      const float *src = ws->hidden + ((size_t) b * M + j) * D;
      for (int i = 0; i < D; i++)
        dst[i] = src[i] + m->w.patch_b[i] + pos[i];
    }
}

/* ---- segmentation head (docs/segmentation.md) ---------------------------- */

/* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static inline float
gelu_tanh (float x)
{
  return 0.5f * x * (1.0f + tanhf (0.7978845608028654f
          * (x + 0.044715f * x * x * x)));
}

typedef struct {
  const VimModelConfig *c;
  const VimWeights *w;
  const float *in;            /* (B*M, C_h) */
  float *out;                 /* (B*M, C_h) */
} DwConvJob;

/* 3x3 depthwise conv on the token grid (zero padding) + bias, then GELU;
 * one token (b, r, col) per item. */
static void
dwconv_gelu_tokens (void *data, int begin, int end)
{
  const DwConvJob *j = data;
  const VimModelConfig *c = j->c;
  const int gh = c->grid_h, gw = c->grid_w, M = c->num_patches,
      Ch = c->seg_channels;
  for (int i = begin; i < end; i++) {
    int b = i / M, r = (i % M) / gw, col = i % gw;
    float *o = j->out + (size_t) i * Ch;
    for (int ch = 0; ch < Ch; ch++)
      o[ch] = j->w->seg_dw_b[ch];
    for (int dy = -1; dy <= 1; dy++) {
      if (r + dy < 0 || r + dy >= gh)
        continue;
      for (int dx = -1; dx <= 1; dx++) {
        if (col + dx < 0 || col + dx >= gw)
          continue;
        const float *x = j->in
            + ((size_t) b * M + (size_t) (r + dy) * gw + col + dx) * Ch;
        const int tap = (dy + 1) * 3 + dx + 1;
        for (int ch = 0; ch < Ch; ch++)
          o[ch] += j->w->seg_dw_w[ch * 9 + tap] * x[ch];
      }
    }
    for (int ch = 0; ch < Ch; ch++)
      o[ch] = gelu_tanh (o[ch]);
  }
}

/* Level i's contribution: seg_sum (+)= hidden @ W_i^T, the bias with the
 * first level. Accumulating here keeps no per-level feature copies. */
static void
seg_head_add_level (const CpuRunner *cr, const VimModel *m, int level,
    int batch, CpuWorkspace *ws)
{
  const VimModelConfig *c = &m->config;
  const int Ch = c->seg_channels, D = c->embed_dim;
  const size_t BM = (size_t) batch * c->num_patches;
  if (level == 0)
    for (size_t t = 0; t < BM; t++)
      memcpy (ws->seg_sum + t * Ch, m->w.seg_proj_b, sizeof (float) * Ch);
  matmul_wt_acc (cr, ws->hidden, D, m->w.seg_proj_w[level], ws->seg_sum,
      (int) BM, Ch, D, 1.0f, 1.0f);
}

/* dwconv + GELU, classifier, and the (B, K, grid_h, grid_w) layout. */
static void
seg_head_finish (const CpuRunner *cr, const VimModel *m, int batch,
    CpuWorkspace *ws, float *logits)
{
  const VimModelConfig *c = &m->config;
  const int Ch = c->seg_channels, K = c->num_classes, M = c->num_patches;
  const size_t BM = (size_t) batch * M;
  DwConvJob job = { c, &m->w, ws->seg_sum, ws->seg_act };
  vim_parallel_for (cr->pool, (int) BM, dwconv_gelu_tokens, &job);
  for (size_t t = 0; t < BM; t++)
    memcpy (ws->seg_logits + t * K, m->w.seg_cls_b, sizeof (float) * K);
  matmul_wt_acc (cr, ws->seg_act, Ch, m->w.seg_cls_w, ws->seg_logits, (int) BM,
      K, Ch, 1.0f, 1.0f);
  for (int b = 0; b < batch; b++)
    for (int t = 0; t < M; t++)
      for (int k = 0; k < K; k++)
        logits[((size_t) b * K + k) * M + t] =
            ws->seg_logits[((size_t) b * M + t) * K + k];
}

/* ---- the forward pass, continued ----------------------------------------- */

static gboolean
cpu_forward (VimRunner *r, const float *input, int batch, float *logits,
    GError **error)
{
  CpuRunner *cr = r->impl;
  const VimModel *m = r->model;
  const VimModelConfig *c = &m->config;
  CpuWorkspace *ws = &cr->ws;
  if (!workspace_ensure (ws, c, batch, error))
    return FALSE;
  const int L = c->seq_len, D = c->embed_dim, E = c->d_inner;
  const size_t BL = (size_t) batch * L;
  const gboolean seg = c->task == VIM_TASK_SEGMENTATION;
  /* a segmenter needs no block after its last feature level */
  const int n_blocks = seg ? c->seg_layers[c->n_seg_layers - 1] + 1 : c->depth;
  int level = 0;

  embed (cr, m, input, batch, ws);
  for (int l = 0; l < n_blocks; l++) {
    const VimLayerWeights *lw = &m->w.layers[l];
    /* add -> norm: the residual stream carries the sum before the norm */
    if (l > 0)
      for (size_t i = 0; i < BL * D; i++)
        ws->residual[i] += ws->hidden[i];
    rmsnorm_rows (ws->residual, lw->norm_w, ws->normed, BL, D, c->norm_eps);
    matmul_wt (cr, ws->normed, D, lw->in_proj_w, ws->xz, BL, 2 * E, D);
    for (int d = 0; d < 2; d++)
      mixer_direction (cr, c, &lw->dir[d],
          cr->neg_a + (2 * (size_t) l + d) * cr->neg_a_stride, ws, batch, d);
    /* the two directions are averaged, then one shared out_proj */
    if (seg || l < c->depth - 1) {
      matmul_wt_scaled (cr, ws->gated, E, lw->out_proj_w, ws->hidden, BL, D,
          E, 0.5f);
      /* segmentation features: the raw mixer output of the tapped blocks */
      if (seg && level < c->n_seg_layers && l == c->seg_layers[level])
        seg_head_add_level (cr, m, level++, batch, ws);
    } else {
      /* the head reads only the class token: project just that row */
      for (int b = 0; b < batch; b++) {
        size_t row = (size_t) b * L + c->cls_index;
        cblas_sgemv (CblasRowMajor, CblasNoTrans, D, E, 0.5f, lw->out_proj_w,
            E, ws->gated + row * E, 1, 0.0f, ws->hidden + row * D, 1);
      }
    }
  }
  if (seg) {
    seg_head_finish (cr, m, batch, ws, logits);
    return TRUE;
  }
  /* final norm on residual + last mixer output, at the class token */
  for (int b = 0; b < batch; b++) {
    size_t row = (size_t) b * L + c->cls_index;
    float *f = ws->normed + (size_t) b * D;
    for (int i = 0; i < D; i++)
      f[i] = ws->residual[row * D + i] + ws->hidden[row * D + i];
    rmsnorm_rows (f, m->w.norm_f_w, ws->feature + (size_t) b * D, 1, D,
        c->norm_eps);
  }
  const int C = c->num_classes;
  for (int b = 0; b < batch; b++)
    memcpy (logits + (size_t) b * C, m->w.head_b, sizeof (float) * C);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, batch, C, D, 1.0f,
      ws->feature, D, m->w.head_w, D, 1.0f, logits, C);
  return TRUE;
}

/* ---- backend ------------------------------------------------------------ */

typedef struct {
  const VimModelConfig *c;
  const VimFrame *frames;
  float *out;
} PreprocessJob;

static void
preprocess_frames (void *data, int begin, int end)
{
  const PreprocessJob *j = data;
  const size_t per = 3 * (size_t) j->c->image_height * j->c->image_width;
  for (int i = begin; i < end; i++)
    vim_preprocess_frame_cpu (j->c, &j->frames[i], j->out + per * i);
}

static gboolean
cpu_preprocess (VimRunner *r, const VimFrame *frames, int n, float *out,
    GError **error)
{
  const VimModelConfig *c = &r->model->config;
  for (int i = 0; i < n; i++) {
    if (!vim_frame_validate (&frames[i], error))
      return FALSE;
    if (frames[i].memory != VIM_MEMORY_HOST) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
          "the CPU backend reads frames in host memory only");
      return FALSE;
    }
  }
  PreprocessJob job = { c, frames, out };
  vim_parallel_for (((CpuRunner *) r->impl)->pool, n, preprocess_frames, &job);
  return TRUE;
}

static gboolean
cpu_classify (VimRunner *r, const VimFrame *frames, int n, float *logits,
    GError **error)
{
  const VimModelConfig *c = &r->model->config;
  float *input = g_try_new (float, (size_t) n * 3 * c->image_height * c->image_width);
  if (input == NULL) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "out of host memory");
    return FALSE;
  }
  gboolean ok = cpu_preprocess (r, frames, n, input, error)
      && cpu_forward (r, input, n, logits, error);
  g_free (input);
  return ok;
}

/* Preprocess + forward for the whole batch, then each frame's mask on the
 * host (segment.c). results[i].geometry was filled by runner.c. */
static gboolean
cpu_segment (VimRunner *r, const VimFrame *frames, int n,
    const VimMaskSpec *spec, VimSegResult *results, GError **error)
{
  const VimModel *m = r->model;
  const VimModelConfig *c = &m->config;
  for (int i = 0; i < n; i++)
    if (results[i].memory != VIM_MEMORY_HOST) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "result %d: the CPU backend writes masks to host memory only "
          "(VimSegResult.memory must be VIM_MEMORY_HOST)", i);
      return FALSE;
    }
  const size_t per_logits = vim_model_output_size (m);
  float *input = g_try_new (float, (size_t) n * 3 * c->image_height * c->image_width);
  float *logits = g_try_new (float, (size_t) n * per_logits);
  gboolean ok = input != NULL && logits != NULL;
  if (!ok)
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "out of host memory");
  ok = ok && cpu_preprocess (r, frames, n, input, error)
      && cpu_forward (r, input, n, logits, error);
  for (int i = 0; ok && i < n; i++)
    ok = vim_segment_logits (m, logits + per_logits * i, &results[i].geometry,
        &results[i], error);
  g_free (logits);
  g_free (input);
  return ok;
}

static void
cpu_free (VimRunner *r)
{
  CpuRunner *cr = r->impl;
  workspace_free (&cr->ws);
  vim_thread_pool_free (cr->pool);
  g_free (cr->neg_a);
  g_free (cr);
}

static const VimBackend cpu_backend = {
  .preprocess = cpu_preprocess,
  .forward = cpu_forward,
  .classify = cpu_classify,
  .segment = cpu_segment,
  .free = cpu_free,
};

gboolean
vim_runner_cpu_init (VimRunner *r, GError **error)
{
  if (r->options.precision != VIM_PRECISION_FP32) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "the CPU backend runs fp32 only");
    return FALSE;
  }
  const VimModelConfig *c = &r->model->config;
  CpuRunner *cr = g_new0 (CpuRunner, 1);
#if VIM_HAVE_OPENBLAS_THREADS
  /* we parallelize around BLAS calls (see matmul_wt_scaled) */
  openblas_set_num_threads (1);
#endif
  cr->neg_a_stride = (size_t) (c->d_inner + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK
      * CHANNEL_BLOCK * c->d_state;
  cr->neg_a = g_new0 (float, 2 * (size_t) c->depth * cr->neg_a_stride);
  for (int l = 0; l < c->depth; l++)
    for (int d = 0; d < 2; d++)
      prepare_neg_a (c, r->model->w.layers[l].dir[d].A_log,
          cr->neg_a + (2 * (size_t) l + d) * cr->neg_a_stride);
  cr->n_threads = r->options.num_threads > 0 ? r->options.num_threads
      : (int) g_get_num_processors ();
  cr->pool = vim_thread_pool_new (cr->n_threads, error);
  if (cr->pool == NULL) {
    g_free (cr->neg_a);
    g_free (cr);
    return FALSE;
  }
  r->impl = cr;
  r->backend = &cpu_backend;
  return TRUE;
}
