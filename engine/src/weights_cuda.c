/* Model weights on the device (weights_cuda.h). */
#include "weights_cuda.h"
#include "half.h"

#include <string.h>

/* v into element i of a host buffer of type dt */
static void
store_t (VimkDType dt, void *dst, size_t i, float v)
{
  switch (dt) {
    case VIMK_F32: ((float *) dst)[i] = v; break;
    case VIMK_F16: ((guint16 *) dst)[i] = vim_f32_to_f16 (v); break;
    case VIMK_BF16: ((guint16 *) dst)[i] = vim_f32_to_bf16 (v); break;
  }
}

/* The level's folded projection: W_i (C_h, D) times the block's out_proj
 * (D, E), halved and written twice (the layout of out_w), in double. */
static void
fold_seg_projection (const VimModelConfig *c, const float *proj_w, const float *out_proj_w,
    VimkDType dt, void *dst)
{
  const int D = c->embed_dim, E = c->d_inner, Ch = c->seg_channels;
  double *acc = g_new (double, E);
  for (int ch = 0; ch < Ch; ch++) {
    memset (acc, 0, (size_t) E * sizeof (double));
    for (int d = 0; d < D; d++) {
      const double a = proj_w[(size_t) ch * D + d];
      const float *wo = out_proj_w + (size_t) d * E;
      for (int e = 0; e < E; e++)
        acc[e] += a * wo[e];
    }
    for (int e = 0; e < E; e++) {
      float v = (float) (0.5 * acc[e]);
      store_t (dt, dst, (size_t) ch * 2 * E + e, v);
      store_t (dt, dst, (size_t) ch * 2 * E + E + e, v);
    }
  }
  g_free (acc);
}

/* Lays the weights out in one host buffer (converted), uploads it once. */
CudaWeights *
vim_cuda_weights_upload (VimModel *model, CUcontext ctx, VimPrecision prec, GError **error)
{
  const VimModelConfig *c = &model->config;
  const VimWeights *w = &model->w;
  const int D = c->embed_dim, E = c->d_inner, N = c->d_state, K = c->d_conv;
  const int R = c->dt_rank, P = c->patch_size, C = c->num_classes, L = c->seq_len;
  const Types t = vim_cuda_types_for (prec);
  const size_t ts = vimk_dtype_size (t.act), ts_in = vimk_dtype_size (t.in);
  const size_t ts_norm = vimk_dtype_size (t.norm);
  CudaWeights *cw = g_new0 (CudaWeights, 1);
  cw->refcount = 1;
  cw->ctx = ctx;
  cw->precision = prec;
  cw->t = t;
  cw->r_pad = (R + 3) & ~3;
  cw->b_off = cw->r_pad;
  /* x_proj output rows: a multiple of 8 floats. 4 would do for the scan's
   * 16-byte copies, but for Vim-Ti's 44 columns cuBLAS then picked a GEMM
   * kernel with 2-element alignment: 48 made x_proj 1.7x faster on an H200
   * (Vim-Ti 224 batch 1 0.59 -> 0.55 ms, bench/RESULTS.md).
   * VIM_CUDA_DBL_ALIGN=4|16 for bench/ */
  const int asked = vim_cuda_env_int ("VIM_CUDA_DBL_ALIGN", 8);
  const int dbl_align = asked == 4 || asked == 16 ? asked : 8;
  cw->ldd = (cw->b_off + 2 * N + dbl_align - 1) / dbl_align * dbl_align;
  cw->ldx = vimk_conv_xproj_columns (cw->ldd);
  cw->kp = 3 * P * P;
  cw->ldp = (cw->kp + 7) & ~7;
  cw->layers = g_new0 (CudaLayer, c->depth);

  /* offsets first */
  size_t off = 0;
#define SLOT(field, nbytes) do { field = (void *) (uintptr_t) off; off += vim_cuda_align256 (nbytes); } while (0)
  SLOT (cw->pos, (size_t) L * D * 4);
  SLOT (cw->cls, (size_t) D * 4);
  SLOT (cw->patch_b, (size_t) D * 4);
  SLOT (cw->patch_w, (size_t) D * cw->kp * ts_in);
  SLOT (cw->norm_f, (size_t) D * 4);
  const gboolean seg = vim_cuda_is_segmenter (c);
  const int Ch = c->seg_channels;
  SLOT (cw->head_w, seg ? 0 : (size_t) C * D * ts);
  SLOT (cw->head_b, (size_t) C * 4);
  if (seg) {
    for (int i = 0; i < c->n_seg_layers; i++)
      SLOT (cw->seg_proj[i], (size_t) Ch * 2 * E * ts);
    SLOT (cw->seg_proj_b, (size_t) Ch * 4);
    SLOT (cw->seg_dw_w, (size_t) Ch * 9 * 4);
    SLOT (cw->seg_dw_b, (size_t) Ch * 4);
    SLOT (cw->seg_cls_w, (size_t) C * Ch * ts);
    SLOT (cw->seg_cls_b, (size_t) C * 4);
  }
  for (int l = 0; l < c->depth; l++) {
    CudaLayer *ly = &cw->layers[l];
    SLOT (ly->norm_w, (size_t) D * 4);
    SLOT (ly->in_w, (size_t) 2 * E * D * ts_norm);
    SLOT (ly->conv_w, (size_t) 2 * E * K * 4);
    SLOT (ly->conv_b, (size_t) 2 * E * 4);
    SLOT (ly->x_w, (size_t) 2 * cw->ldx * E * ts);
    SLOT (ly->dt_w, (size_t) 2 * E * cw->r_pad * 4);
    SLOT (ly->dt_b, (size_t) 2 * E * 4);
    SLOT (ly->A2, (size_t) 2 * E * N * 4);
    SLOT (ly->Dv, (size_t) 2 * E * 4);
    SLOT (ly->out_w, (size_t) D * 2 * E * ts);
  }
#undef SLOT
  cw->bytes = off;
  guint8 *host = g_try_malloc0 (off);
  if (host == NULL) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
        "CUDA: cannot allocate %zu bytes of host memory to stage the weights", off);
    g_free (cw->layers);
    g_free (cw);
    return NULL;
  }
#define H(ptr) (host + (uintptr_t) (ptr))
#define HF(ptr) ((float *) H (ptr))
  memcpy (HF (cw->pos), w->pos_embed, (size_t) L * D * 4);
  if (w->cls_token)
    memcpy (HF (cw->cls), w->cls_token, (size_t) D * 4);
  memcpy (HF (cw->patch_b), w->patch_b, (size_t) D * 4);
  for (size_t i = 0; i < (size_t) D * cw->kp; i++)
    store_t (t.in, H (cw->patch_w), i, w->patch_w[i]);
  if (w->norm_f_w)               /* a segmenter's file may omit it */
    memcpy (HF (cw->norm_f), w->norm_f_w, (size_t) D * 4);
  if (seg) {
    for (int i = 0; i < c->n_seg_layers; i++)
      fold_seg_projection (c, w->seg_proj_w[i], w->layers[c->seg_layers[i]].out_proj_w,
          t.act, H (cw->seg_proj[i]));
    memcpy (HF (cw->seg_proj_b), w->seg_proj_b, (size_t) Ch * 4);
    memcpy (HF (cw->seg_dw_w), w->seg_dw_w, (size_t) Ch * 9 * 4);
    memcpy (HF (cw->seg_dw_b), w->seg_dw_b, (size_t) Ch * 4);
    for (size_t i = 0; i < (size_t) C * Ch; i++)
      store_t (t.act, H (cw->seg_cls_w), i, w->seg_cls_w[i]);
    memcpy (HF (cw->seg_cls_b), w->seg_cls_b, (size_t) C * 4);
  }
  if (w->head_w) {
    for (size_t i = 0; i < (size_t) C * D; i++)
      store_t (t.act, H (cw->head_w), i, w->head_w[i]);
    memcpy (HF (cw->head_b), w->head_b, (size_t) C * 4);
  }
  for (int l = 0; l < c->depth; l++) {
    const VimLayerWeights *lw = &w->layers[l];
    CudaLayer *ly = &cw->layers[l];
    memcpy (HF (ly->norm_w), lw->norm_w, (size_t) D * 4);
    for (size_t i = 0; i < (size_t) 2 * E * D; i++)
      store_t (t.norm, H (ly->in_w), i, lw->in_proj_w[i]);
    for (int d = 0; d < 2; d++) {
      const VimDirectionWeights *dw = &lw->dir[d];
      memcpy (HF (ly->conv_w) + (size_t) d * E * K, dw->conv_w, (size_t) E * K * 4);
      memcpy (HF (ly->conv_b) + (size_t) d * E, dw->conv_b, (size_t) E * 4);
      for (int row = 0; row < R + 2 * N; row++) {
        int dst_row = row < R ? row : cw->b_off + (row - R);
        for (int e = 0; e < E; e++)
          store_t (t.act, H (ly->x_w), ((size_t) d * cw->ldx + dst_row) * E + e,
              dw->x_proj_w[(size_t) row * E + e]);
      }
      for (int e = 0; e < E; e++) {
        for (int r = 0; r < R; r++)
          HF (ly->dt_w)[((size_t) d * E + e) * cw->r_pad + r] = dw->dt_proj_w[(size_t) e * R + r];
        HF (ly->dt_b)[(size_t) d * E + e] = dw->dt_proj_b[e];
        HF (ly->Dv)[(size_t) d * E + e] = dw->D[e];
        for (int n = 0; n < N; n++)
          HF (ly->A2)[((size_t) d * E + e) * N + n] =
              (float) (-exp ((double) dw->A_log[(size_t) e * N + n]) * 1.4426950408889634074);
      }
    }
    for (int d = 0; d < D; d++)
      for (int e = 0; e < E; e++) {
        float v = 0.5f * lw->out_proj_w[(size_t) d * E + e];
        store_t (t.act, H (ly->out_w), (size_t) d * 2 * E + e, v);
        store_t (t.act, H (ly->out_w), (size_t) d * 2 * E + E + e, v);
      }
  }
#undef H
#undef HF
  cudaError_t e = cudaMalloc (&cw->blob, off);
  if (e == cudaSuccess)
    e = cudaMemcpy (cw->blob, host, off, cudaMemcpyHostToDevice);
  g_free (host);
  if (e != cudaSuccess) {
    if (cw->blob)
      cudaFree (cw->blob);
    g_free (cw->layers);
    g_free (cw);
    char *what = g_strdup_printf ("uploading %.1f MiB of weights", off / 1048576.0);
    vim_cuda_fail (error, e, what);
    g_free (what);
    return NULL;
  }
  /* relocate */
  guint8 *base = cw->blob;
#define RELOC(p) (p) = (void *) (base + (uintptr_t) (p))
  RELOC (cw->pos); RELOC (cw->cls); RELOC (cw->patch_b); RELOC (cw->patch_w);
  RELOC (cw->norm_f); RELOC (cw->head_w); RELOC (cw->head_b);
  if (seg) {
    for (int i = 0; i < c->n_seg_layers; i++)
      RELOC (cw->seg_proj[i]);
    RELOC (cw->seg_proj_b); RELOC (cw->seg_dw_w); RELOC (cw->seg_dw_b);
    RELOC (cw->seg_cls_w); RELOC (cw->seg_cls_b);
  }
  for (int l = 0; l < c->depth; l++) {
    CudaLayer *ly = &cw->layers[l];
    RELOC (ly->norm_w); RELOC (ly->in_w); RELOC (ly->conv_w); RELOC (ly->conv_b);
    RELOC (ly->x_w); RELOC (ly->dt_w); RELOC (ly->dt_b); RELOC (ly->A2);
    RELOC (ly->Dv); RELOC (ly->out_w);
  }
#undef RELOC
  return cw;
}

void
vim_cuda_weights_release (VimModel *model, CudaWeights *w)
{
  g_mutex_lock (&model->device_lock);
  if (--w->refcount == 0) {
    model->device_weights = g_slist_remove (model->device_weights, w);
    cudaFree (w->blob);
    g_free (w->layers);
    g_free (w);
  }
  g_mutex_unlock (&model->device_lock);
}
