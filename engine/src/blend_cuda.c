/* Drawing on CUDA frames: stages what the kernels need (the index tables, a
 * host mask, the visible part of an ARGB image) in one stream-ordered device
 * buffer, runs the kernel on the caller's stream and waits for it, so the
 * caller may reuse its host buffers on return. */
#include "blend.h"

#include <cuda_runtime_api.h>
#include <string.h>

#include "vimk/vimk.h"

static gboolean
cuda_fail (GError **error, cudaError_t e, const char *what)
{
  g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA blend: %s: %s (%s)",
      what, cudaGetErrorString (e), cudaGetErrorName (e));
  return FALSE;
}

static void
blend_frame_desc (const VimFrame *frame, VimkBlendFrame *d)
{
  memset (d, 0, sizeof *d);
  d->format = (int) frame->format;
  d->width = frame->width;
  d->height = frame->height;
  for (int p = 0; p < vim_pixel_format_n_planes (frame->format); p++) {
    d->planes[p] = (uint8_t *) frame->planes[p];
    d->strides[p] = (int64_t) frame->strides[p];
  }
}

static size_t
align256 (size_t n)
{
  return (n + 255) & ~(size_t) 255;
}

/* Stream-ordered allocation: cheap after the first call (the pool keeps it),
 * and freed on the stream after the kernel. */
static gboolean
device_buffer (uint8_t **buf, size_t bytes, cudaStream_t stream, GError **error)
{
  cudaError_t e = cudaMallocAsync ((void **) buf, bytes, stream);
  if (e != cudaSuccess) {
    *buf = NULL;
    return cuda_fail (error, e, "cannot allocate device staging memory");
  }
  return TRUE;
}

/* Frees buf on the stream and waits; the first error wins. */
static gboolean
finish (uint8_t *buf, cudaStream_t stream, gboolean ok, GError **error)
{
  if (buf != NULL) {
    cudaError_t e = cudaFreeAsync (buf, stream);
    if (e != cudaSuccess && ok)
      ok = cuda_fail (error, e, "cannot free device staging memory");
  }
  cudaError_t e = cudaStreamSynchronize (stream);
  if (e != cudaSuccess && ok)
    ok = cuda_fail (error, e, "blend kernel failed");
  return ok;
}

gboolean
vim_blend_mask_cuda (const VimFrame *frame, const uint8_t *mask,
    size_t mask_stride, VimMemory mask_memory, int mask_width, int mask_height,
    const VimBlendMaskPlan *plan, void *cuda_stream, GError **error)
{
  cudaStream_t stream = (cudaStream_t) cuda_stream;
  size_t cols_bytes = align256 ((size_t) frame->width * sizeof (int32_t));
  size_t rows_bytes = align256 ((size_t) frame->height * sizeof (int32_t));
  size_t mask_bytes = mask_memory == VIM_MEMORY_HOST
      ? (size_t) mask_width * mask_height : 0;
  uint8_t *buf;
  if (!device_buffer (&buf, cols_bytes + rows_bytes + mask_bytes, stream, error))
    return FALSE;

  VimkBlendMaskArgs args;
  memset (&args, 0, sizeof args);
  args.col_map = (const int32_t *) buf;
  args.row_map = (const int32_t *) (buf + cols_bytes);
  args.mask = mask;
  args.mask_stride = (int64_t) mask_stride;
  args.x0 = plan->x0;
  args.x1 = plan->x1;
  args.y0 = plan->y0;
  args.y1 = plan->y1;
  memcpy (args.colour, plan->colour, sizeof args.colour);
  args.alpha32 = plan->alpha32;
  args.contours = plan->contours;

  gboolean ok = TRUE;
  cudaError_t e = cudaMemcpyAsync (buf, plan->col_map,
      (size_t) frame->width * sizeof (int32_t), cudaMemcpyHostToDevice, stream);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync (buf + cols_bytes, plan->row_map,
        (size_t) frame->height * sizeof (int32_t), cudaMemcpyHostToDevice, stream);
  if (e == cudaSuccess && mask_memory == VIM_MEMORY_HOST) {
    /* the whole mask, packed: the kernel reads it at pitch mask_width */
    uint8_t *dmask = buf + cols_bytes + rows_bytes;
    e = cudaMemcpy2DAsync (dmask, mask_width, mask, mask_stride, mask_width,
        mask_height, cudaMemcpyHostToDevice, stream);
    args.mask = dmask;
    args.mask_stride = mask_width;
  }
  if (e != cudaSuccess)
    ok = cuda_fail (error, e, "cannot upload the mask tables");
  if (ok) {
    VimkBlendFrame desc;
    blend_frame_desc (frame, &desc);
    e = vimk_blend_mask (&desc, &args, stream);
    if (e != cudaSuccess)
      ok = cuda_fail (error, e, "cannot launch the mask blend");
  }
  return finish (buf, stream, ok, error);
}

gboolean
vim_blend_argb_cuda (const VimFrame *frame, const uint8_t *argb, size_t stride,
    int x0, int y0, int x1, int y1, void *cuda_stream, GError **error)
{
  cudaStream_t stream = (cudaStream_t) cuda_stream;
  size_t w = (size_t) (x1 - x0), h = (size_t) (y1 - y0);
  uint8_t *buf;
  if (!device_buffer (&buf, w * h * 4, stream, error))
    return FALSE;
  gboolean ok = TRUE;
  cudaError_t e = cudaMemcpy2DAsync (buf, w * 4, argb, stride, w * 4, h,
      cudaMemcpyHostToDevice, stream);
  if (e != cudaSuccess)
    ok = cuda_fail (error, e, "cannot upload the ARGB image");
  if (ok) {
    VimkBlendFrame desc;
    blend_frame_desc (frame, &desc);
    e = vimk_blend_argb (&desc, (const uint32_t *) buf, (int64_t) w, x0, y0,
        x1, y1, stream);
    if (e != cudaSuccess)
      ok = cuda_fail (error, e, "cannot launch the ARGB composite");
  }
  return finish (buf, stream, ok, error);
}
