/* Segmentation outputs: mask geometry, and host postprocessing of the
 * per-token logits (bilinear upsampling, argmax, confidence, fractions).
 * Placeholder until the segmentation head lands (docs/segmentation-plan.md). */
#include "vim-private.h"

size_t
vim_model_output_size (const VimModel *model)
{
  const VimModelConfig *c = &model->config;
  if (c->task == VIM_TASK_SEGMENTATION)
    return (size_t) c->num_classes * c->grid_h * c->grid_w;
  return (size_t) c->num_classes;
}

static gboolean
not_yet (GError **error)
{
  g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
      "segmentation is not implemented in this engine version");
  return FALSE;
}

gboolean
vim_model_mask_geometry (const VimModel *model, int frame_w, int frame_h,
    const VimMaskSpec *spec, VimMaskGeometry *out, GError **error)
{
  return not_yet (error);
}

gboolean
vim_runner_segment (VimRunner *runner, const VimFrame *frames, int n,
    const VimMaskSpec *spec, VimSegResult *results, GError **error)
{
  return not_yet (error);
}

gboolean
vim_segment_logits (const VimModel *model, const float *logits,
    const VimMaskGeometry *geometry, VimSegResult *result, GError **error)
{
  return not_yet (error);
}
