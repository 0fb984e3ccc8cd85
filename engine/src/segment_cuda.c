/* Segmentation masks on the GPU for the CUDA runner (runner_cuda.h):
 * the forward pass's class logits are upsampled, reduced and counted per
 * mask pixel by vimk_seg_masks, and the masks are staged for the caller. */
#include "runner_cuda.h"

#include <string.h>

/* Grows a device buffer of the runner (contents not kept). */
static gboolean
dev_reserve (CudaRunner *cr, void **p, size_t *cap, size_t bytes, const char *what,
    GError **error)
{
  if (*cap >= bytes)
    return TRUE;
  size_t want = MAX (bytes, *cap * 3 / 2);
  vim_cuda_dev_free (cr, p, *cap);
  *cap = 0;
  if (!vim_cuda_dev_alloc (cr, p, want, what, error))
    return FALSE;
  *cap = want;
  return TRUE;
}

/* A result the kernel cannot write in place: host memory, or device memory
 * of another context than the runner's. Those masks go through seg_out_dev. */
static gboolean
result_staged (const CudaRunner *cr, const VimSegResult *res, CUcontext caller)
{
  return res->memory == VIM_MEMORY_HOST || caller != cr->ctx;
}

static size_t
mask_bytes (const VimSegResult *res)
{
  return (size_t) res->geometry.width * res->geometry.height;
}

/* After the forward pass (logits (n, K, gh, gw) on the device): one kernel
 * writes every mask, then staged masks and class counts come back, and the
 * stream is synchronized (so device results are ready on return). */
static gboolean
segment_masks (CudaRunner *cr, const VimModelConfig *c, int n, VimSegResult *results,
    CUcontext caller, GError **error)
{
  const int K = c->num_classes;
  /* layout of the staging buffers: staged masks packed (classes, then
   * confidence), 256-byte aligned; the counts after them on the host side */
  size_t staged = 0;
  gboolean want_counts = FALSE;
  for (int i = 0; i < n; i++) {
    const VimSegResult *res = &results[i];
    if (res->memory != VIM_MEMORY_HOST && res->memory != VIM_MEMORY_CUDA) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "result %d: unknown memory type %d", i, (int) res->memory);
      return FALSE;
    }
    if (result_staged (cr, res, caller))
      staged += vim_cuda_align256 (mask_bytes (res)) * (res->confidence ? 2 : 1);
    want_counts |= res->fractions != NULL;
  }
  const size_t counts_bytes = want_counts ? (size_t) n * K * sizeof (guint32) : 0;
  if (!dev_reserve (cr, &cr->seg_out_dev, &cr->seg_out_cap, MAX (staged, 256),
          "staged masks", error)
      || !dev_reserve (cr, (void **) &cr->seg_counts_dev, &cr->seg_counts_cap,
          MAX (counts_bytes, 256), "class counts", error)
      || !vim_cuda_host_reserve (&cr->h_seg_out, &cr->h_seg_out_cap, staged + counts_bytes, error))
    return FALSE;
  if (cr->seg_desc_cap < n) {
    size_t old = (size_t) cr->seg_desc_cap * sizeof (VimkSegMaskDesc);
    vim_cuda_dev_free (cr, (void **) &cr->seg_desc_dev, old);
    cr->seg_desc_cap = 0;
    if (!vim_cuda_dev_alloc (cr, (void **) &cr->seg_desc_dev, (size_t) n * sizeof (VimkSegMaskDesc),
            "mask descriptors", error))
      return FALSE;
    cr->seg_desc_cap = n;
  }
  if (!vim_cuda_host_reserve ((void **) &cr->h_seg_desc, &cr->h_seg_desc_cap,
          (size_t) n * sizeof (VimkSegMaskDesc), error))
    return FALSE;

  /* descriptors: the same sampling as the host postprocessing (segment.c) */
  size_t off = 0;
  int64_t max_pixels = 0;
  for (int i = 0; i < n; i++) {
    const VimSegResult *res = &results[i];
    VimkSegMaskDesc *d = &cr->h_seg_desc[i];
    VimSegSampling smp;
    vim_seg_sampling_compute (c, &res->geometry, &smp);
    memset (d, 0, sizeof *d);
    d->width = res->geometry.width;
    d->height = res->geometry.height;
    d->gx_scale = (float) smp.scale_x;
    d->gx_offset = (float) smp.offset_x;
    d->gy_scale = (float) smp.scale_y;
    d->gy_offset = (float) smp.offset_y;
    d->logits = cr->logits + (size_t) i * vim_cuda_out_per_image (c);
    if (result_staged (cr, res, caller)) {
      d->classes = (uint8_t *) cr->seg_out_dev + off;
      d->classes_stride = d->width;
      off += vim_cuda_align256 (mask_bytes (res));
      if (res->confidence) {
        d->confidence = (uint8_t *) cr->seg_out_dev + off;
        d->confidence_stride = d->width;
        off += vim_cuda_align256 (mask_bytes (res));
      }
    } else {
      d->classes = res->classes;
      d->classes_stride = (int64_t) res->classes_stride;
      d->confidence = res->confidence;
      d->confidence_stride = (int64_t) res->confidence_stride;
    }
    d->counts = res->fractions ? cr->seg_counts_dev + (size_t) i * K : NULL;
    max_pixels = MAX (max_pixels, (int64_t) d->width * d->height);
  }
  if (counts_bytes)
    CK (cudaMemsetAsync (cr->seg_counts_dev, 0, counts_bytes, cr->stream), "clearing class counts");
  CK (cudaMemcpyAsync (cr->seg_desc_dev, cr->h_seg_desc, (size_t) n * sizeof (VimkSegMaskDesc),
          cudaMemcpyHostToDevice, cr->stream), "uploading mask descriptors");
  for (int i0 = 0; i0 < n; i0 += 65535)
    CK (vimk_seg_masks (cr->seg_desc_dev + i0, MIN (65535, n - i0), max_pixels, c->grid_h,
            c->grid_w, K, cr->stream), "upsampling and argmax of the logits");

  /* back: host results through pinned memory in one copy, device results
   * of another context by a copy into their memory */
  guint8 *h_out = cr->h_seg_out;
  if (staged)
    CK (cudaMemcpyAsync (h_out, cr->seg_out_dev, staged, cudaMemcpyDeviceToHost, cr->stream),
        "copying the masks");
  if (counts_bytes)
    CK (cudaMemcpyAsync (h_out + staged, cr->seg_counts_dev, counts_bytes,
            cudaMemcpyDeviceToHost, cr->stream), "copying the class counts");
  for (int i = 0; i < n; i++) {
    const VimSegResult *res = &results[i];
    const VimkSegMaskDesc *d = &cr->h_seg_desc[i];
    if (res->memory != VIM_MEMORY_CUDA || !result_staged (cr, res, caller))
      continue;
    CK (cudaMemcpy2DAsync (res->classes, res->classes_stride, d->classes, d->width, d->width,
            d->height, cudaMemcpyDefault, cr->stream), "copying a mask to another CUDA context");
    if (res->confidence)
      CK (cudaMemcpy2DAsync (res->confidence, res->confidence_stride, d->confidence, d->width,
              d->width, d->height, cudaMemcpyDefault, cr->stream),
          "copying a confidence map to another CUDA context");
  }
  if (!vim_cuda_sync_stream (cr, error))
    return FALSE;

  for (int i = 0; i < n; i++) {
    VimSegResult *res = &results[i];
    const VimkSegMaskDesc *d = &cr->h_seg_desc[i];
    if (res->memory == VIM_MEMORY_HOST) {
      const guint8 *src = h_out + (d->classes - (uint8_t *) cr->seg_out_dev);
      for (int y = 0; y < d->height; y++)
        memcpy (res->classes + (size_t) y * res->classes_stride, src + (size_t) y * d->width,
            d->width);
      if (res->confidence) {
        src = h_out + (d->confidence - (uint8_t *) cr->seg_out_dev);
        for (int y = 0; y < d->height; y++)
          memcpy (res->confidence + (size_t) y * res->confidence_stride,
              src + (size_t) y * d->width, d->width);
      }
    }
    if (res->fractions) {
      const guint32 *cnt = (const guint32 *) (h_out + staged) + (size_t) i * K;
      const double total = (double) d->width * d->height;
      for (int k = 0; k < K; k++)
        res->fractions[k] = (float) (cnt[k] / total);
    }
  }
  return TRUE;
}

gboolean
vim_cuda_runner_segment (VimRunner *r, const VimFrame *frames, int n, const VimMaskSpec *spec,
    VimSegResult *results, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  (void) spec;                /* runner.c turned it into results[i].geometry */
  if (!vim_cuda_is_segmenter (c)) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "%s is not a segmentation model", r->model->path);
    return FALSE;
  }
  CtxGuard g;
  if (!vim_cuda_ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = vim_cuda_forward_frames (cr, c, frames, n, g.caller, error)
      && segment_masks (cr, c, n, results, g.caller, error);
  vim_cuda_ctx_leave (&g);
  return ok;
}
