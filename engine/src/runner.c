/* The runner: validates what callers pass, then hands over to a backend. */
#include "vim-private.h"
#include "vim-build-config.h"

void
vim_runner_options_init (VimRunnerOptions *options)
{
  options->device = VIM_DEVICE_CPU;
  options->cuda_device = -1;
  options->precision = VIM_PRECISION_FP32;
  options->num_threads = 0;
}

gboolean
vim_cuda_available (int *n_devices, GError **error)
{
#if VIM_HAVE_CUDA
  int n = 0;
  gboolean ok = vim_cuda_device_count (&n, error);
  if (n_devices)
    *n_devices = ok ? n : 0;
  return ok && n > 0;
#else
  if (n_devices)
    *n_devices = 0;
  g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
      "this build of the engine has no CUDA backend");
  return FALSE;
#endif
}

VimRunner *
vim_runner_new (VimModel *model, const VimRunnerOptions *options,
    GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  VimRunner *r = g_new0 (VimRunner, 1);
  r->model = vim_model_ref (model);
  if (options)
    r->options = *options;
  else
    vim_runner_options_init (&r->options);

  gboolean ok = FALSE;
  switch (r->options.device) {
    case VIM_DEVICE_CPU:
      ok = vim_runner_cpu_init (r, error);
      break;
    case VIM_DEVICE_CUDA:
#if VIM_HAVE_CUDA
      ok = vim_runner_cuda_init (r, error);
#else
      g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
          "this build of the engine has no CUDA backend");
#endif
      break;
    default:
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "unknown device %d", (int) r->options.device);
  }
  if (!ok) {
    vim_model_unref (r->model);
    g_free (r);
    return NULL;
  }
  return r;
}

void
vim_runner_free (VimRunner *runner)
{
  if (runner == NULL)
    return;
  runner->backend->free (runner);
  vim_model_unref (runner->model);
  g_free (runner);
}

VimModel *
vim_runner_get_model (VimRunner *runner)
{
  return runner->model;
}

VimDevice
vim_runner_get_device (VimRunner *runner)
{
  return runner->options.device;
}

static gboolean
check_batch (int n, const void *a, const void *b, GError **error)
{
  if (n < 1 || n > 65536 || a == NULL || b == NULL) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "batch of %d with %s buffers (need 1 .. 65536 and non-NULL buffers)",
        n, (a && b) ? "valid" : "NULL");
    return FALSE;
  }
  return TRUE;
}

gboolean
vim_runner_preprocess (VimRunner *runner, const VimFrame *frames, int n,
    float *out, GError **error)
{
  g_return_val_if_fail (runner != NULL, FALSE);
  return check_batch (n, frames, out, error)
      && runner->backend->preprocess (runner, frames, n, out, error);
}

gboolean
vim_runner_forward (VimRunner *runner, const float *input, int n,
    float *logits, GError **error)
{
  g_return_val_if_fail (runner != NULL, FALSE);
  return check_batch (n, input, logits, error)
      && runner->backend->forward (runner, input, n, logits, error);
}

gboolean
vim_runner_classify (VimRunner *runner, const VimFrame *frames, int n,
    float *logits, GError **error)
{
  g_return_val_if_fail (runner != NULL, FALSE);
  /* a segmenter writes grid-sized logits: more than the caller allocated */
  if (runner->model->config.task != VIM_TASK_CLASSIFICATION) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "%s is a segmentation model: use vim_runner_segment (or "
        "vim_runner_forward with vim_model_output_size floats per image)",
        runner->model->path);
    return FALSE;
  }
  return check_batch (n, frames, logits, error)
      && runner->backend->classify (runner, frames, n, logits, error);
}

gboolean
vim_runner_segment (VimRunner *runner, const VimFrame *frames, int n,
    const VimMaskSpec *spec, VimSegResult *results, GError **error)
{
  g_return_val_if_fail (runner != NULL, FALSE);
  const VimModel *m = runner->model;
  if (!check_batch (n, frames, results, error))
    return FALSE;
  if (m->config.task != VIM_TASK_SEGMENTATION) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "%s is a classification model; vim_runner_segment needs a "
        "segmentation model", m->path);
    return FALSE;
  }
  if (runner->backend->segment == NULL) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "this backend (%s) cannot segment yet",
        runner->options.device == VIM_DEVICE_CUDA ? "CUDA" : "CPU");
    return FALSE;
  }
  if (spec == NULL) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "vim_runner_segment needs a mask spec");
    return FALSE;
  }
  /* per frame: the mask's size and place, and buffers that hold it */
  for (int i = 0; i < n; i++) {
    VimSegResult *r = &results[i];
    if (!vim_frame_validate (&frames[i], error)
        || !vim_model_mask_geometry (m, frames[i].width, frames[i].height,
            spec, &r->geometry, error)) {
      g_prefix_error (error, "frame %d: ", i);
      return FALSE;
    }
    if (r->classes == NULL || r->classes_stride < (size_t) r->geometry.width
        || (r->confidence != NULL
            && r->confidence_stride < (size_t) r->geometry.width)) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "result %d: a %dx%d mask needs classes with a stride >= %d "
          "(and the same for confidence, when wanted)", i,
          r->geometry.width, r->geometry.height, r->geometry.width);
      return FALSE;
    }
  }
  return runner->backend->segment (runner, frames, n, spec, results, error);
}
