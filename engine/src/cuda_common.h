/* What the CUDA backend's files share: CUDA and cuBLAS checks that end in
 * a GError, the driver's entry points (found at run time: no link against
 * libcuda) and the tuning knobs read from the environment. Internal to the
 * engine. */
#ifndef VIM_CUDA_COMMON_H
#define VIM_CUDA_COMMON_H

#include <glib.h>
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

#include "vim-private.h"
#include "gemm_cuda.h"

#ifndef VIM_CUDA_MIN_SM
#define VIM_CUDA_MIN_SM 90
#endif

/* Sets error to "CUDA: what: reason (name)"; returns FALSE. */
gboolean vim_cuda_fail (GError **error, cudaError_t e, const char *what);

/* In functions with a GError **error that return gboolean. */
#define CK(expr, what) \
  do { \
    cudaError_t e_ = (expr); \
    if (e_ != cudaSuccess) \
      return vim_cuda_fail (error, e_, what); \
  } while (0)

#define CKB(expr, what) \
  do { \
    cublasStatus_t s_ = (expr); \
    if (s_ != CUBLAS_STATUS_SUCCESS) { \
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "cuBLAS: %s: %s (status %d)", \
          what, vim_cublas_reason (s_), (int) s_); \
      return FALSE; \
    } \
  } while (0)

/* ---- driver entry points ---------------------------------------------------- */

typedef CUresult (*FnInit) (unsigned int);
typedef CUresult (*FnCtxGetCurrent) (CUcontext *);
typedef CUresult (*FnCtxPushCurrent) (CUcontext);
typedef CUresult (*FnCtxPopCurrent) (CUcontext *);
typedef CUresult (*FnCtxGetDevice) (CUdevice *);
typedef CUresult (*FnDeviceGet) (CUdevice *, int);
typedef CUresult (*FnPrimaryRetain) (CUcontext *, CUdevice);
typedef CUresult (*FnPrimaryRelease) (CUdevice);

/* The driver functions the runner needs to pick and push contexts. */
typedef struct {
  gsize once;
  gboolean ok;
  FnInit init;
  FnCtxGetCurrent get_current;
  FnCtxPushCurrent push;
  FnCtxPopCurrent pop;
  FnCtxGetDevice get_device;
  FnDeviceGet device_get;
  FnPrimaryRetain retain;
  FnPrimaryRelease release;
} VimCudaDriver;

/* Filled by vim_cuda_driver_load. */
extern VimCudaDriver vim_cuda_drv;

gboolean vim_cuda_driver_load (GError **error);

/* x rounded up to 256 bytes (device sub-allocations) */
static inline size_t
vim_cuda_align256 (size_t x)
{
  return (x + 255) & ~(size_t) 255;
}

/* An integer tuning knob from the environment, def when unset or malformed. */
int vim_cuda_env_int (const char *name, int def);

#endif /* VIM_CUDA_COMMON_H */
