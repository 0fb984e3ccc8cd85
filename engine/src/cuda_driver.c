/* The CUDA backend's errors, driver entry points, device count and tuning
 * knobs (cuda_common.h). */
#include "cuda_common.h"

#include <stdlib.h>

/* ---- errors ------------------------------------------------------------- */

static const char *
cuda_reason (cudaError_t e)
{
  switch (e) {
    case cudaErrorNoDevice:
      return "no CUDA-capable GPU is present";
    case cudaErrorInsufficientDriver:
      return "the NVIDIA driver is too old for this build's CUDA runtime";
    case cudaErrorMemoryAllocation:
      return "out of device memory";
    case cudaErrorNoKernelImageForDevice:
      return "this build has no kernels for this GPU's architecture";
    default:
      return cudaGetErrorString (e);
  }
}

gboolean
vim_cuda_fail (GError **error, cudaError_t e, const char *what)
{
  g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: %s: %s (%s)", what,
      cuda_reason (e), cudaGetErrorName (e));
  return FALSE;
}

/* ---- driver entry points (no link against libcuda) ----------------------- */

VimCudaDriver vim_cuda_drv;

gboolean
vim_cuda_driver_load (GError **error)
{
  if (g_once_init_enter (&vim_cuda_drv.once)) {
    struct { const char *name; void **fn; } syms[] = {
      { "cuInit", (void **) &vim_cuda_drv.init },
      { "cuCtxGetCurrent", (void **) &vim_cuda_drv.get_current },
      { "cuCtxPushCurrent", (void **) &vim_cuda_drv.push },
      { "cuCtxPopCurrent", (void **) &vim_cuda_drv.pop },
      { "cuCtxGetDevice", (void **) &vim_cuda_drv.get_device },
      { "cuDeviceGet", (void **) &vim_cuda_drv.device_get },
      { "cuDevicePrimaryCtxRetain", (void **) &vim_cuda_drv.retain },
      { "cuDevicePrimaryCtxRelease", (void **) &vim_cuda_drv.release },
    };
    gboolean ok = TRUE;
    for (guint i = 0; i < G_N_ELEMENTS (syms) && ok; i++) {
      enum cudaDriverEntryPointQueryResult q;
      cudaError_t e = cudaGetDriverEntryPointByVersion (syms[i].name, syms[i].fn,
          12000, cudaEnableDefault, &q);
      ok = e == cudaSuccess && q == cudaDriverEntryPointSuccess && *syms[i].fn != NULL;
    }
    if (ok)
      ok = vim_cuda_drv.init (0) == CUDA_SUCCESS;
    vim_cuda_drv.ok = ok;
    g_once_init_leave (&vim_cuda_drv.once, 1);
  }
  if (!vim_cuda_drv.ok) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
        "CUDA: the driver's context functions are not available (driver missing or too old)");
    return FALSE;
  }
  return TRUE;
}

/* ---- device enumeration --------------------------------------------------- */

gboolean
vim_cuda_device_count (int *n, GError **error)
{
  int count = 0;
  *n = 0;
  cudaError_t e = cudaGetDeviceCount (&count);
  if (e != cudaSuccess) {
    int drv_ver = 0, rt_ver = 0;
    cudaDriverGetVersion (&drv_ver);
    cudaRuntimeGetVersion (&rt_ver);
    if (e == cudaErrorInsufficientDriver && drv_ver == 0)
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: no NVIDIA driver is installed");
    else if (e == cudaErrorInsufficientDriver)
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
          "CUDA: the NVIDIA driver is too old (it supports CUDA %d.%d, this build needs %d.%d)",
          drv_ver / 1000, drv_ver % 1000 / 10, rt_ver / 1000, rt_ver % 1000 / 10);
    else
      vim_cuda_fail (error, e, "counting devices");
    return FALSE;
  }
  int usable = 0, newest = 0;
  for (int i = 0; i < count; i++) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, i) != cudaSuccess
        || cudaDeviceGetAttribute (&minor, cudaDevAttrComputeCapabilityMinor, i) != cudaSuccess)
      continue;
    newest = MAX (newest, major * 10 + minor);
    if (major * 10 + minor >= VIM_CUDA_MIN_SM)
      usable++;
  }
  if (count == 0) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: no CUDA-capable GPU is present");
    return FALSE;
  }
  if (usable == 0) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "CUDA: the GPUs here (newest sm_%d) are older than this build's kernels "
        "(sm_%d; rebuild with -Dgpu_arch=...)", newest, VIM_CUDA_MIN_SM);
    return FALSE;
  }
  *n = count;
  return TRUE;
}

int
vim_cuda_env_int (const char *name, int def)
{
  const char *v = g_getenv (name);
  if (v == NULL || *v == '\0')
    return def;
  char *end = NULL;
  long x = strtol (v, &end, 10);
  return (end && *end == '\0') ? (int) x : def;
}
