/* Frames to model input on the GPU for the CUDA runner (runner_cuda.h):
 * each frame goes up in its own compact format, or is read where it lies on
 * the device, and one kernel converts colour, resizes and normalizes. */
#include "runner_cuda.h"

#include <string.h>

static size_t
plane_rows (const VimFrame *f, int p)
{
  if (p == 0)
    return f->height;
  return (f->height + 1) / 2;
}

static size_t
plane_row_bytes (const VimFrame *f, int p)
{
  switch (f->format) {
    case VIM_PIXEL_RGB: case VIM_PIXEL_BGR: return (size_t) f->width * 3;
    case VIM_PIXEL_RGBA: case VIM_PIXEL_RGBX: case VIM_PIXEL_BGRA: case VIM_PIXEL_BGRX:
      return (size_t) f->width * 4;
    case VIM_PIXEL_GRAY8: return f->width;
    case VIM_PIXEL_NV12: return p == 0 ? (size_t) f->width : (size_t) ((f->width + 1) / 2) * 2;
    case VIM_PIXEL_I420: return p == 0 ? (size_t) f->width : (size_t) (f->width + 1) / 2;
  }
  return 0;
}

/* Frames -> out (n x 3 x H x W in out_dt) on the stream. Host frames go up
 * compacted through pinned memory in one copy; device frames of the
 * runner's context are read in place, those of another context are copied
 * over first. */
gboolean
vim_cuda_enqueue_preprocess (CudaRunner *cr, const VimModelConfig *c, const VimFrame *frames,
    int n, CUcontext caller, VimkDType out_dt, void *out, GError **error)
{
  /* pass 1: validate, and lay out the planes that must be copied */
  size_t total = 0, host_end = 0;
  for (int i = 0; i < n; i++) {
    const VimFrame *f = &frames[i];
    if (!vim_frame_validate (f, error))
      return FALSE;
    if (f->memory != VIM_MEMORY_HOST && f->memory != VIM_MEMORY_CUDA) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "frame %d: unknown memory type %d", i, (int) f->memory);
      return FALSE;
    }
    if (f->memory == VIM_MEMORY_HOST || caller != cr->ctx) {
      int np = vim_pixel_format_n_planes (f->format);
      for (int p = 0; p < np; p++)
        total += (plane_rows (f, p) * plane_row_bytes (f, p) + 255) & ~(size_t) 255;
      if (f->memory == VIM_MEMORY_HOST)
        host_end = total;
    }
  }
  if (total > cr->frames_dev_cap) {
    size_t want = MAX (total, cr->frames_dev_cap * 3 / 2);
    vim_cuda_dev_free (cr, &cr->frames_dev, cr->frames_dev_cap);
    cr->frames_dev_cap = 0;
    if (!vim_cuda_dev_alloc (cr, &cr->frames_dev, want, "frame staging", error))
      return FALSE;
    cr->frames_dev_cap = want;
  }
  if (host_end > 0 && !vim_cuda_host_reserve (&cr->h_stage, &cr->h_stage_cap, host_end, error))
    return FALSE;
  if (!vim_cuda_host_reserve ((void **) &cr->h_desc, &cr->h_desc_cap,
          (size_t) n * sizeof (VimkFrameDesc), error))
    return FALSE;
  if (cr->desc_cap < n) {
    vim_cuda_dev_free (cr, (void **) &cr->desc_dev, (size_t) cr->desc_cap * sizeof (VimkFrameDesc));
    cr->desc_cap = 0;
    if (!vim_cuda_dev_alloc (cr, (void **) &cr->desc_dev, (size_t) n * sizeof (VimkFrameDesc),
            "frame descriptors", error))
      return FALSE;
    cr->desc_cap = n;
  }
  /* pass 2: descriptors, host planes packed into pinned memory */
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    const VimFrame *f = &frames[i];
    VimkFrameDesc *d = &cr->h_desc[i];
    memset (d, 0, sizeof *d);
    d->format = f->format;
    d->width = f->width;
    d->height = f->height;
    VimResizeMap map;
    vim_resize_map_compute (c, f->width, f->height, &map);
    d->scale_x = map.scale_x; d->scale_y = map.scale_y;
    d->offset_x = map.offset_x; d->offset_y = map.offset_y;
    d->pad_x0 = map.pad_x0; d->pad_x1 = map.pad_x1;
    d->pad_y0 = map.pad_y0; d->pad_y1 = map.pad_y1;
    int np = vim_pixel_format_n_planes (f->format);
    gboolean copy = f->memory == VIM_MEMORY_HOST || caller != cr->ctx;
    for (int p = 0; p < np; p++) {
      if (!copy) {
        d->planes[p] = f->planes[p];
        d->strides[p] = (int64_t) f->strides[p];
        continue;
      }
      size_t rb = plane_row_bytes (f, p), nr = plane_rows (f, p);
      if (f->memory == VIM_MEMORY_HOST) {
        guint8 *dst = (guint8 *) cr->h_stage + off;
        const guint8 *src = f->planes[p];
        for (size_t r = 0; r < nr; r++)
          memcpy (dst + r * rb, src + r * f->strides[p], rb);
      }
      d->planes[p] = (guint8 *) cr->frames_dev + off;
      d->strides[p] = (int64_t) rb;
      off += (nr * rb + 255) & ~(size_t) 255;
    }
  }
  /* one upload for the host frames, then the frames of another context
   * (their slots lie inside the uploaded range and are overwritten) */
  if (host_end > 0)
    CK (cudaMemcpyAsync (cr->frames_dev, cr->h_stage, host_end, cudaMemcpyHostToDevice,
            cr->stream), "uploading frames");
  for (int i = 0; i < n; i++) {
    const VimFrame *f = &frames[i];
    if (f->memory != VIM_MEMORY_CUDA || caller == cr->ctx)
      continue;
    int np = vim_pixel_format_n_planes (f->format);
    for (int p = 0; p < np; p++)
      CK (cudaMemcpy2DAsync ((void *) cr->h_desc[i].planes[p], plane_row_bytes (f, p),
              f->planes[p], f->strides[p], plane_row_bytes (f, p), plane_rows (f, p),
              cudaMemcpyDefault, cr->stream), "copying a frame from another CUDA context");
  }
  CK (cudaMemcpyAsync (cr->desc_dev, cr->h_desc, (size_t) n * sizeof (VimkFrameDesc),
          cudaMemcpyHostToDevice, cr->stream), "uploading frame descriptors");
  float scale[3], bias[3];
  for (int ch = 0; ch < 3; ch++) {
    scale[ch] = 1.f / (255.f * c->std[ch]);
    bias[ch] = -c->mean[ch] / c->std[ch];
  }
  const size_t img = (size_t) 3 * c->image_height * c->image_width * vimk_dtype_size (out_dt);
  for (int i0 = 0; i0 < n; i0 += 65535) {
    int cnt = MIN (65535, n - i0);
    CK (vimk_preprocess (cr->desc_dev + i0, cnt, c->image_height, c->image_width, scale,
            bias, out_dt, (guint8 *) out + i0 * img, cr->stream), "preprocessing");
  }
  return TRUE;
}
