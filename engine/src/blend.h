/* What blend.c (validation, CPU loops) hands to blend_cuda.c (device
 * buffers, kernels): a blend fully decided on the host, so the CPU loop and
 * the kernel only do integer arithmetic on the same tables and give the
 * same bytes. Not installed. */
#ifndef VIM_BLEND_H
#define VIM_BLEND_H

#include "vim-private.h"

G_BEGIN_DECLS

typedef struct {
  /* per mask value (class 0 .. 255): the colour's bytes in plane order
   * (RGB-like: the frame's byte order; NV12/I420: Y, U, V; GRAY8: grey in
   * [0]), [3] = 1 when the class is drawn */
  uint8_t colour[256][4];
  uint64_t alpha32;           /* alpha as a 32-bit fixed-point weight, 2^32 = opaque */
  gboolean contours;
  /* mask column of each frame column (frame width entries) and mask row of
   * each frame row (frame height entries), -1 where the pixel centre is
   * outside the geometry's rectangle */
  int32_t *col_map, *row_map;
  /* the frame pixels whose centres are inside: [x0, x1) x [y0, y1) */
  int x0, x1, y0, y1;
} VimBlendMaskPlan;

#if VIM_HAVE_CUDA
/* frame: a validated VIM_MEMORY_CUDA frame; mask: mask_height rows of
 * plan-covered mask pixels, host or device as mask_memory says. Runs the
 * kernel on stream and waits for it. */
gboolean vim_blend_mask_cuda (const VimFrame *frame, const uint8_t *mask,
    size_t mask_stride, VimMemory mask_memory, int mask_width, int mask_height,
    const VimBlendMaskPlan *plan, void *stream, GError **error);

/* Composites the part of the host ARGB image that lands on the frame,
 * [x0, x1) x [y0, y1) in frame pixels (non-empty, inside the frame);
 * argb points at the image pixel that lands on (x0, y0). */
gboolean vim_blend_argb_cuda (const VimFrame *frame, const uint8_t *argb,
    size_t stride, int x0, int y0, int x1, int y1, void *stream,
    GError **error);
#endif

G_END_DECLS

#endif /* VIM_BLEND_H */
