/* Drawing for overlays: class masks and ARGB images blended into frames.
 * Placeholder until the overlay lands. */
#include "vim-private.h"

static gboolean
not_yet (GError **error)
{
  g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
      "blending is not implemented in this engine version");
  return FALSE;
}

gboolean
vim_blend_mask (const VimFrame *frame, const uint8_t *mask, size_t mask_stride,
    VimMemory mask_memory, const VimMaskGeometry *geometry,
    const VimBlendOptions *options, void *cuda_stream, GError **error)
{
  return not_yet (error);
}

gboolean
vim_blend_argb (const VimFrame *frame, const uint8_t *argb, int width,
    int height, size_t stride, int x, int y, void *cuda_stream, GError **error)
{
  return not_yet (error);
}

const uint8_t *
vim_default_palette (void)
{
  return NULL;
}
