/* The CUDA backend: weights on the device (shared per model, context and
 * precision), the forward pass as cuBLAS GEMMs plus the kernels of
 * kernels/, replayed as CUDA graphs, and preprocessing on the GPU.
 *
 * One layer, token-major (rows = images x L tokens), T = compute type:
 *
 *   normed (T)   = RMSNorm(residual)                       vimk_rmsnorm
 *   xz (T)       = normed x W_in^T            (2E wide)    cuBLAS
 *   xc (T)       = SiLU(conv_f(x)) | SiLU(conv_b(x))                  vimk_conv
 *   dbl[d] (f32) = xc[d] x W_x[d]^T           (dt | B | C) cuBLAS strided batched, 2 directions
 *                  (or both in one launch, vimk_conv_xproj: VIM_CUDA_CONV_XPROJ=1)
 *   xc <- y      = bidirectional scan (dt_proj, softplus, D, gate SiLU(z))   vimk_scan
 *                  (VIM_CUDA_GATE_IN_CONV=1, or the fused conv: the conv writes
 *                  z <- SiLU(z) instead, vimk_conv_gate)
 *   residual    += [y_f | y_b] x [W_out/2 | W_out/2]^T     cuBLAS, fp32 accumulate
 *
 * In the last layer the scan stops at the class token (each direction's
 * chain ends there; VIM_CUDA_LAST_STEPS=0 runs it whole) and out_proj runs
 * on the class-token rows only.
 *
 * Segmenters (cls_token none) feed the raw mixer outputs of the blocks in
 * seg_layers to the head (docs/segmentation-plan.md). The head's projection
 * of level i is folded into that block's out_proj at upload,
 * W'_i = W_i [W_out/2 | W_out/2] (C_h x 2E), so right after the scan
 *
 *   seg_h (f32)  (+)= y x W'_i^T                     cuBLAS, beta 1 after level 0
 *
 * and after the last level (blocks beyond it, and its residual update, are
 * not needed):
 *
 *   seg_g (T)    = GELU(dwconv3x3(seg_h + b_proj) + b_dw),  logits = b_cls   vimk_seghead_conv
 *   logits (f32) += W_cls x seg_g^T  per image, laid out (K, grid_h, grid_w)  cuBLAS
 *
 * vim_runner_segment then upsamples, reduces and counts per mask pixel on
 * the GPU (vimk_seg_masks). Images go through the layers in passes of about
 * 32k tokens (up to 256 images of <= 256 tokens), so the workspace (one
 * layer's activations for one pass) is independent of depth and bounded in
 * the batch. Batches of >= 2 x 12k tokens run as two passes side by side on
 * two streams (a workspace each), one pass's scan overlapping the other's
 * GEMMs. Tuning knobs for bench/ (environment, read when a runner is
 * made): VIM_CUDA_PASS_TOKENS, VIM_CUDA_PASS_STREAMS=1..4 (default 2),
 * VIM_CUDA_SCAN_LANES, VIM_CUDA_SCAN_CHUNKS,
 * VIM_CUDA_SCAN_POLY, VIM_CUDA_CONV_XPROJ=1, VIM_CUDA_GATE_IN_CONV=1,
 * VIM_CUDA_DBL_ALIGN=4|16, VIM_CUDA_LAST_STEPS=0, VIM_CUDA_GRAPHS=0, VIM_CUDA_PROFILE=1,
 * VIM_CUDA_GEMM=lt or tuned (cuBLASLt, gemm_cuda.c; default cuBLAS) and,
 * read by the kernels, VIM_CUDA_SCAN_VERSION=1/2/3 for an earlier scan,
 * VIM_CUDA_SCAN_BLOCKS_PER_SM (0 = no cap on the scan's blocks per SM),
 * VIM_CUDA_SCAN_DT_MMA=0 (dt_proj with FMAs instead of the tensor cores) and
 * VIM_CUDA_LAYER_CARVEOUT=-1 (the driver chooses every L1 / shared split).
 */
#include "vim-private.h"
#include "vim-build-config.h"
#include "cuda_bench.h"
#include "half.h"
#include "gemm_cuda.h"

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vimk/vimk.h"

#ifndef VIM_CUDA_MIN_SM
#define VIM_CUDA_MIN_SM 90
#endif

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

static gboolean
cuda_fail (GError **error, cudaError_t e, const char *what)
{
  g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: %s: %s (%s)", what,
      cuda_reason (e), cudaGetErrorName (e));
  return FALSE;
}

#define CK(expr, what) \
  do { \
    cudaError_t e_ = (expr); \
    if (e_ != cudaSuccess) \
      return cuda_fail (error, e_, what); \
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

/* ---- driver entry points (no link against libcuda) ----------------------- */

typedef CUresult (*FnInit) (unsigned int);
typedef CUresult (*FnCtxGetCurrent) (CUcontext *);
typedef CUresult (*FnCtxPushCurrent) (CUcontext);
typedef CUresult (*FnCtxPopCurrent) (CUcontext *);
typedef CUresult (*FnCtxGetDevice) (CUdevice *);
typedef CUresult (*FnDeviceGet) (CUdevice *, int);
typedef CUresult (*FnPrimaryRetain) (CUcontext *, CUdevice);
typedef CUresult (*FnPrimaryRelease) (CUdevice);

static struct {
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
} drv;

static gboolean
driver_load (GError **error)
{
  if (g_once_init_enter (&drv.once)) {
    struct { const char *name; void **fn; } syms[] = {
      { "cuInit", (void **) &drv.init },
      { "cuCtxGetCurrent", (void **) &drv.get_current },
      { "cuCtxPushCurrent", (void **) &drv.push },
      { "cuCtxPopCurrent", (void **) &drv.pop },
      { "cuCtxGetDevice", (void **) &drv.get_device },
      { "cuDeviceGet", (void **) &drv.device_get },
      { "cuDevicePrimaryCtxRetain", (void **) &drv.retain },
      { "cuDevicePrimaryCtxRelease", (void **) &drv.release },
    };
    gboolean ok = TRUE;
    for (guint i = 0; i < G_N_ELEMENTS (syms) && ok; i++) {
      enum cudaDriverEntryPointQueryResult q;
      cudaError_t e = cudaGetDriverEntryPointByVersion (syms[i].name, syms[i].fn,
          12000, cudaEnableDefault, &q);
      ok = e == cudaSuccess && q == cudaDriverEntryPointSuccess && *syms[i].fn != NULL;
    }
    if (ok)
      ok = drv.init (0) == CUDA_SUCCESS;
    drv.ok = ok;
    g_once_init_leave (&drv.once, 1);
  }
  if (!drv.ok) {
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
      cuda_fail (error, e, "counting devices");
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

/* ---- host conversions ------------------------------------------------------ */

static void
store_t (VimkDType dt, void *dst, size_t i, float v)
{
  switch (dt) {
    case VIMK_F32: ((float *) dst)[i] = v; break;
    case VIMK_F16: ((guint16 *) dst)[i] = vim_f32_to_f16 (v); break;
    case VIMK_BF16: ((guint16 *) dst)[i] = vim_f32_to_bf16 (v); break;
  }
}

static cudaDataType
cuda_type (VimkDType dt)
{
  return dt == VIMK_F32 ? CUDA_R_32F : dt == VIMK_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

/* ---- storage types ----------------------------------------------------------- */

/* What each tensor is stored in, per runner precision. fp32 and fp16 use one
 * type throughout. bf16 keeps bf16 for the activations whose range is open
 * (xc, y, the features) and their weights, but uses fp16 (8x finer) for the
 * two GEMM inputs that are bounded by construction (the normalized image
 * into the patch embedding, RMSNorm outputs into in_proj) and fp32 for the
 * in_proj output (x before the conv, z and the gate): with bf16 there too,
 * bf16 logits were 2e-2 off fp32 and top-1 agreed on 98.7% of 1000 inputs.
 * The residual stream, x_proj outputs and the scan state are fp32 always. */
typedef struct {
  VimkDType in;               /* input image, patches, patch weights */
  VimkDType norm;             /* RMSNorm output, in_proj weights */
  VimkDType xz;               /* in_proj output: x, z, gate */
  VimkDType act;              /* xc / y, x_proj and out_proj weights, features, head */
} Types;

static Types
types_for (VimPrecision p)
{
  switch (p) {
    case VIM_PRECISION_FP16:
      return (Types) { VIMK_F16, VIMK_F16, VIMK_F16, VIMK_F16 };
    case VIM_PRECISION_BF16:
      return (Types) { VIMK_F16, VIMK_F16, VIMK_F32, VIMK_BF16 };
    default:
      return (Types) { VIMK_F32, VIMK_F32, VIMK_F32, VIMK_F32 };
  }
}

/* ---- device weights (shared) ----------------------------------------------- */

typedef struct {
  float *norm_w;      /* D */
  void *in_w;         /* (2E, D) T */
  float *conv_w;      /* [2][E][K] */
  float *conv_b;      /* [2][E] */
  void *x_w;          /* [2][ldx][E] T: rows dt (R), zero pad, B (N), C (N), zero pad */
  float *dt_w;        /* [2][E][r_pad] */
  float *dt_b;        /* [2][E] */
  float *A2;          /* [2][E][N]: -exp(A_log) * log2(e) */
  float *Dv;          /* [2][E] */
  void *out_w;        /* (D, 2E) T: [W_out / 2 | W_out / 2] */
} CudaLayer;

typedef struct {
  int refcount;
  CUcontext ctx;
  VimPrecision precision;
  Types t;
  void *blob;
  size_t bytes;
  int r_pad, b_off, ldd, kp, ldp;  /* padded dt rank, B offset, x_proj rows, patch K, patch pitch */
  int ldx;            /* x_w rows per direction: ldd rounded up to 16 (zero rows) */
  float *pos, *cls, *patch_b, *norm_f, *head_b;
  void *patch_w;      /* (D, kp) T */
  void *head_w;       /* (C, D) T */
  CudaLayer *layers;
  /* segmenters: the head (fp32 small parameters, T GEMM weights) */
  void *seg_proj[VIM_MAX_SEG_LAYERS]; /* (C_h, 2E) T: W_i [W_out/2 | W_out/2] of block seg_layers[i] */
  float *seg_proj_b;  /* C_h */
  float *seg_dw_w;    /* (C_h, 9) */
  float *seg_dw_b;    /* C_h */
  void *seg_cls_w;    /* (K, C_h) T */
  float *seg_cls_b;   /* K */
} CudaWeights;

static gboolean
is_segmenter (const VimModelConfig *c)
{
  return c->task == VIM_TASK_SEGMENTATION;
}

/* Floats of output per image: K logits, or K x grid for a segmenter. */
static size_t
out_per_image (const VimModelConfig *c)
{
  return is_segmenter (c) ? (size_t) c->num_classes * c->num_patches : (size_t) c->num_classes;
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

static size_t
align256 (size_t x)
{
  return (x + 255) & ~(size_t) 255;
}

/* an integer tuning knob from the environment, def when unset or malformed */
static int
env_int (const char *name, int def)
{
  const char *v = g_getenv (name);
  if (v == NULL || *v == '\0')
    return def;
  char *end = NULL;
  long x = strtol (v, &end, 10);
  return (end && *end == '\0') ? (int) x : def;
}

/* Lays the weights out in one host buffer (converted), uploads it once. */
static CudaWeights *
weights_upload (VimModel *model, CUcontext ctx, VimPrecision prec, GError **error)
{
  const VimModelConfig *c = &model->config;
  const VimWeights *w = &model->w;
  const int D = c->embed_dim, E = c->d_inner, N = c->d_state, K = c->d_conv;
  const int R = c->dt_rank, P = c->patch_size, C = c->num_classes, L = c->seq_len;
  const Types t = types_for (prec);
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
  const int asked = env_int ("VIM_CUDA_DBL_ALIGN", 8);
  const int dbl_align = asked == 4 || asked == 16 ? asked : 8;
  cw->ldd = (cw->b_off + 2 * N + dbl_align - 1) / dbl_align * dbl_align;
  cw->ldx = vimk_conv_xproj_columns (cw->ldd);
  cw->kp = 3 * P * P;
  cw->ldp = (cw->kp + 7) & ~7;
  cw->layers = g_new0 (CudaLayer, c->depth);

  /* offsets first */
  size_t off = 0;
#define SLOT(field, nbytes) do { field = (void *) (uintptr_t) off; off += align256 (nbytes); } while (0)
  SLOT (cw->pos, (size_t) L * D * 4);
  SLOT (cw->cls, (size_t) D * 4);
  SLOT (cw->patch_b, (size_t) D * 4);
  SLOT (cw->patch_w, (size_t) D * cw->kp * ts_in);
  SLOT (cw->norm_f, (size_t) D * 4);
  const gboolean seg = is_segmenter (c);
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
    cuda_fail (error, e, what);
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

/* ---- the runner ------------------------------------------------------------ */

typedef struct {
  int n;
  gboolean warm;              /* ran once eagerly (cuBLAS set up its kernels) */
  cudaGraphExec_t exec;
} GraphEntry;

/* What one pass in flight uses: a stream, a cuBLAS handle bound to it with
 * its own workspace, and the layer workspace. Slot 0 is the runner's own
 * stream and handle; further slots (VIM_CUDA_PASS_STREAMS) let passes run
 * side by side, so that one pass's scan (bound by the special-function
 * unit) overlaps another's GEMMs and memory-bound kernels. */
typedef struct {
  cudaStream_t stream;
  cublasHandle_t blas;
  void *blas_ws;              /* slots >= 1: owned */
  cudaEvent_t joined;         /* slots >= 1: recorded after the slot's last pass */
  float *residual;
  void *xz, *xcy, *feat;
  float *seg_h;               /* segmenters: (rows, C_h) projection sum */
  void *seg_g;                /* (rows, C_h) T, after conv and GELU */
  float *dbl;
  void *scan_ws;              /* scan chunk summaries */
  size_t scan_ws_bytes;
} PassSlot;

enum { MAX_PASS_SLOTS = 4 };

typedef struct {
  CudaWeights *w;
  CUcontext ctx;
  int device;
  gboolean retained_primary;
  char device_name[256];
  int sm_count;
  cudaStream_t stream;
  cublasHandle_t blas;
  VimGemm *lt;                /* cuBLASLt with tuned algorithms (VIM_CUDA_GEMM) */
  Types t;
  size_t ts, ts_in, ts_norm, ts_xz;   /* bytes of t.act, t.in, t.norm, t.xz */

  /* tuning */
  int pass_images;            /* most images per pass */
  int scan_lanes, scan_chunks, scan_poly;  /* 0 / -1 = kernel's choice */
  gboolean scan_whole;          /* the last forward's first scan ran V5 (bench report) */
  gboolean scan_stream;         /* ... V6 */
  gboolean conv_xproj;        /* conv, gate and x_proj in one launch (vimk_conv_xproj) */
  gboolean last_layer_steps;  /* the last layer's scan stops at the class token */
  gboolean gate_in_scan;      /* the scan applies SiLU(z); the conv leaves z (vimk_conv) */
  gboolean profile;           /* VIM_CUDA_PROFILE: stage times of a forward */
  gboolean use_graphs;

  /* device memory owned by the runner */
  void *blas_ws;
  size_t blas_ws_bytes;
  void *ws;                   /* the slots' workspaces, one pass each */
  size_t ws_bytes;
  int ws_images, ws_slots;    /* what the workspace was carved for */
  PassSlot slot[MAX_PASS_SLOTS];
  int max_slots;              /* most passes in flight at once (VIM_CUDA_PASS_STREAMS) */
  int n_slots;                /* slots created so far (when a batch first needs them) */
  cudaEvent_t fork;           /* recorded on the runner's stream before the passes */
  void *input;                /* n x 3 x H x W, t.in */
  int input_cap;
  float *logits;              /* n x out_per_image: (C) or (K, grid_h, grid_w) */
  int logits_cap;
  /* vim_runner_segment */
  VimkSegMaskDesc *seg_desc_dev, *h_seg_desc;
  int seg_desc_cap, h_seg_desc_cap;
  guint32 *seg_counts_dev;    /* n x K */
  size_t seg_counts_cap;      /* bytes */
  void *seg_out_dev;          /* masks staged for host results or another context */
  size_t seg_out_cap;
  void *h_seg_out;            /* pinned: staged masks, then the counts */
  size_t h_seg_out_cap;
  VimkFrameDesc *desc_dev;
  int desc_cap;
  void *frames_dev;           /* host frames uploaded compactly */
  size_t frames_dev_cap;
  size_t dev_bytes, dev_peak;

  /* pinned host memory */
  void *h_logits;
  size_t h_logits_cap;
  void *h_stage;              /* host frames, input chunks (mapped) */
  size_t h_stage_cap;
  void *h_pre;                /* preprocess output (mapped) */
  size_t h_pre_cap;
  VimkFrameDesc *h_desc;
  int h_desc_cap;

  GArray *graphs;             /* GraphEntry */
} CudaRunner;

/* Makes the runner's context current for the duration of a call. */
typedef struct {
  gboolean pushed;
  CUcontext caller;
} CtxGuard;

static gboolean
ctx_enter (CudaRunner *cr, CtxGuard *g, GError **error)
{
  g->pushed = FALSE;
  g->caller = NULL;
  if (drv.get_current (&g->caller) != CUDA_SUCCESS)
    g->caller = NULL;
  if (g->caller != cr->ctx) {
    if (drv.push (cr->ctx) != CUDA_SUCCESS) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
          "CUDA: cannot make the runner's context current");
      return FALSE;
    }
    g->pushed = TRUE;
  }
  return TRUE;
}

static void
ctx_leave (CtxGuard *g)
{
  if (g->pushed) {
    CUcontext dummy;
    drv.pop (&dummy);
  }
}

static void
graphs_clear (CudaRunner *cr)
{
  for (guint i = 0; i < cr->graphs->len; i++) {
    GraphEntry *ge = &g_array_index (cr->graphs, GraphEntry, i);
    if (ge->exec)
      cudaGraphExecDestroy (ge->exec);
  }
  g_array_set_size (cr->graphs, 0);
}

static void
dev_free (CudaRunner *cr, void **p, size_t bytes)
{
  if (*p) {
    cudaFree (*p);
    cr->dev_bytes -= bytes;
  }
  *p = NULL;
}

static gboolean
dev_alloc (CudaRunner *cr, void **p, size_t bytes, const char *what, GError **error)
{
  *p = NULL;
  cudaError_t e = cudaMalloc (p, bytes);
  if (e != cudaSuccess) {
    *p = NULL;
    cudaGetLastError ();
    char *msg = g_strdup_printf ("allocating %.1f MiB for %s", bytes / 1048576.0, what);
    cuda_fail (error, e, msg);
    g_free (msg);
    return FALSE;
  }
  cr->dev_bytes += bytes;
  cr->dev_peak = MAX (cr->dev_peak, cr->dev_bytes + 0);
  return TRUE;
}

static gboolean
host_reserve (void **p, size_t *cap, size_t bytes, GError **error)
{
  if (*cap >= bytes)
    return TRUE;
  if (*p)
    cudaFreeHost (*p);
  *p = NULL;
  *cap = 0;
  size_t want = MAX (bytes, (size_t) 1 << 20);
  cudaError_t e = cudaHostAlloc (p, want, cudaHostAllocMapped | cudaHostAllocPortable);
  if (e != cudaSuccess) {
    *p = NULL;
    cudaGetLastError ();
    return cuda_fail (error, e, "allocating pinned host memory");
  }
  *cap = want;
  return TRUE;
}

/* The scan's chunk summaries for any pass of up to `images` images. */
static size_t
scan_ws_for (const CudaRunner *cr, const VimModelConfig *c, int images)
{
  size_t most = 0;
  for (int m = 1; m <= images; m++) {
    int G, P;
    vimk_scan_plan (m, c->seq_len, c->d_inner, c->d_state, c->dt_rank, cr->scan_lanes,
        cr->scan_chunks, &G, &P);
    most = MAX (most, vimk_scan_workspace_bytes (m, c->d_inner, c->d_state, P));
  }
  return align256 (most);
}

/* xcy holds, in turn, the patches (embedding), the RMSNorm output and xc / y. */
static size_t
xcy_row_bytes (const CudaRunner *cr, const VimModelConfig *c)
{
  size_t b = (size_t) 2 * c->d_inner * cr->ts;
  b = MAX (b, (size_t) cr->w->ldp * cr->ts_in);
  b = MAX (b, (size_t) c->embed_dim * cr->ts_norm);
  return b;
}

/* Workspace bytes of one pass of `images` images (without the scan's). */
static size_t
ws_bytes_for (const CudaRunner *cr, const VimModelConfig *c, int images)
{
  const size_t rows = (size_t) images * c->seq_len;
  const int E = c->d_inner, D = c->embed_dim;
  const size_t Ch = is_segmenter (c) ? (size_t) c->seg_channels : 0;
  return align256 (rows * D * 4)                      /* residual */
      + align256 (rows * 2 * E * cr->ts_xz)            /* xz */
      + align256 (rows * xcy_row_bytes (cr, c))        /* xcy */
      + align256 ((size_t) 2 * rows * cr->w->ldd * 4)  /* dbl */
      + align256 ((size_t) images * D * cr->ts)        /* feat */
      + align256 (rows * Ch * 4)                       /* seg_h */
      + align256 (rows * Ch * cr->ts);                 /* seg_g */
}

static gboolean
ensure_workspace (CudaRunner *cr, const VimModelConfig *c, int images, int slots,
    GError **error)
{
  if (cr->ws_images >= images && cr->ws_slots >= slots)
    return TRUE;
  images = MAX (images, cr->ws_images);
  slots = MAX (slots, cr->ws_slots);
  graphs_clear (cr);
  dev_free (cr, &cr->ws, cr->ws_bytes);
  cr->ws_bytes = 0;
  cr->ws_images = 0;
  cr->ws_slots = 0;
  const size_t scan_bytes = scan_ws_for (cr, c, images);
  const size_t slot_bytes = ws_bytes_for (cr, c, images) + scan_bytes;
  if (!dev_alloc (cr, &cr->ws, slot_bytes * slots, "the layer workspace", error))
    return FALSE;
  cr->ws_bytes = slot_bytes * slots;
  cr->ws_images = images;
  cr->ws_slots = slots;
  const size_t rows = (size_t) images * c->seq_len;
  const int E = c->d_inner, D = c->embed_dim;
  const size_t Ch = is_segmenter (c) ? (size_t) c->seg_channels : 0;
  for (int i = 0; i < slots; i++) {
    PassSlot *ps = &cr->slot[i];
    guint8 *p = (guint8 *) cr->ws + i * slot_bytes;
    ps->residual = (float *) p; p += align256 (rows * D * 4);
    ps->xz = p; p += align256 (rows * 2 * E * cr->ts_xz);
    ps->xcy = p; p += align256 (rows * xcy_row_bytes (cr, c));
    ps->dbl = (float *) p; p += align256 ((size_t) 2 * rows * cr->w->ldd * 4);
    ps->feat = p; p += align256 ((size_t) images * D * cr->ts);
    ps->seg_h = (float *) p; p += align256 (rows * Ch * 4);
    ps->seg_g = p; p += align256 (rows * Ch * cr->ts);
    ps->scan_ws = scan_bytes ? p : NULL;
    ps->scan_ws_bytes = scan_bytes;
  }
  return TRUE;
}

static int
grow (int have, int need)
{
  int n = MAX (have, 1);
  while (n < need)
    n = n > (1 << 29) ? need : n * 2;
  return n;
}

/* Two passes side by side pay when each still fills the GPU. On an H200
 * (fp16), against the same passes one after the other: Vim-Ti 224 px
 * batch 512 -4%, 256 (2 x 128 images) -2.8%, 128 (2 x 64, 12.6k tokens
 * each) -2%, Vim-S 256 -1.1%, Vim-Ti 1248 px batch 8 (2 x 4) -9.6%, 1024 px
 * batch 8 -10%, Vim-S 1024 and 1248 px batch 8 -12%; but batch 64 as
 * 2 x 32 +12% (bench/RESULTS.md, twelfth session). */
enum { SLOT_MIN_TOKENS = 12288 };

/* Passes for a batch of n: of at most pass_images images each, as even as
 * they go, and as many slots in use as passes of >= SLOT_MIN_TOKENS give. */
static void
plan_passes (const CudaRunner *cr, const VimModelConfig *c, int n, int *passes, int *images,
    int *slots)
{
  const long long tokens = (long long) n * c->seq_len;
  const int use = (int) CLAMP (tokens / SLOT_MIN_TOKENS, 1, cr->max_slots);
  int per_pass = MIN (n, cr->pass_images);
  int np = MAX ((n + per_pass - 1) / per_pass, use);
  /* A pass count that is not a multiple of the slots leaves a stream idle
   * at the end (3 passes on 2 streams: the third runs alone). One pass
   * fewer where that keeps a pass within 1/8 of the image budget: on an
   * H200, fp16, Vim-Ti 512 batch 64 as 2 x 32 instead of 3 x 22 images
   * 16.05 -> 14.11 ms, Vim-S 30.6 -> 28.5 ms. More passes instead were
   * slower there (4 x 16: 19.6 ms, the scan then needs more lanes) and at
   * 1248 px (batch 12, 4 x 3: 22.5 -> 23.1 ms), and gained 2.5% at 224 px
   * (batch 600, 4 x 150), so an odd count stays otherwise. */
  if (use > 1 && np % use != 0) {
    const int fewer = np - np % use;
    if ((long long) ((n + fewer - 1) / fewer) * 8 <= (long long) per_pass * 9)
      np = fewer;
  }
  *images = (n + np - 1) / np;
  *passes = (n + *images - 1) / *images;
  *slots = MIN (use, *passes);
}

/* Slots n_slots .. k-1, the first time a batch needs them: a stream each,
 * with a cuBLAS handle and workspace of its own (a handle's workspace must
 * not be used by two streams at once). */
static gboolean
slots_create (CudaRunner *cr, int k, GError **error)
{
  if (k > 1 && cr->fork == NULL)
    CK (cudaEventCreateWithFlags (&cr->fork, cudaEventDisableTiming), "creating an event");
  /* each step only once: a call that failed half-way (out of memory) can be
   * retried by the next batch without leaking what it made */
  for (int i = cr->n_slots; i < k; i++) {
    PassSlot *ps = &cr->slot[i];
    if (ps->stream == NULL)
      CK (cudaStreamCreateWithFlags (&ps->stream, cudaStreamNonBlocking), "creating a stream");
    if (ps->joined == NULL)
      CK (cudaEventCreateWithFlags (&ps->joined, cudaEventDisableTiming), "creating an event");
    if (ps->blas == NULL) {
      CKB (cublasCreate (&ps->blas), "creating a handle");
      CKB (cublasSetStream (ps->blas, ps->stream), "setting the stream");
      CKB (cublasSetMathMode (ps->blas, CUBLAS_DEFAULT_MATH), "setting the math mode");
    }
    if (ps->blas_ws == NULL
        && !dev_alloc (cr, &ps->blas_ws, cr->blas_ws_bytes, "a cuBLAS workspace", error))
      return FALSE;
    CKB (cublasSetWorkspace (ps->blas, ps->blas_ws, cr->blas_ws_bytes), "setting the workspace");
    cr->n_slots = i + 1;
  }
  return TRUE;
}

static gboolean
ensure_batch (CudaRunner *cr, const VimModelConfig *c, int n, GError **error)
{
  int passes, images, slots;
  plan_passes (cr, c, n, &passes, &images, &slots);
  if (!slots_create (cr, slots, error))
    return FALSE;
  if (!ensure_workspace (cr, c, images, slots, error))
    return FALSE;
  if (cr->input_cap < n) {
    graphs_clear (cr);
    size_t img = (size_t) 3 * c->image_height * c->image_width * cr->ts_in;
    dev_free (cr, &cr->input, (size_t) cr->input_cap * img);
    cr->input_cap = 0;
    int cap = grow (0, n);
    if (!dev_alloc (cr, &cr->input, cap * img, "the input batch", error)) {
      cap = n;
      g_clear_error (error);
      if (!dev_alloc (cr, &cr->input, cap * img, "the input batch", error))
        return FALSE;
    }
    cr->input_cap = cap;
  }
  if (cr->logits_cap < n) {
    graphs_clear (cr);
    dev_free (cr, (void **) &cr->logits, (size_t) cr->logits_cap * out_per_image (c) * 4);
    cr->logits_cap = 0;
    int cap = grow (0, n);
    if (!dev_alloc (cr, (void **) &cr->logits, (size_t) cap * out_per_image (c) * 4,
            "the logits", error))
      return FALSE;
    cr->logits_cap = cap;
  }
  return TRUE;
}

/* ---- GEMM helpers ------------------------------------------------------------ */

/* Row-major view, `batch` times (element strides sA, sB, sC): C[n][m]
 * (pitch ldc) = A[m][k] (weights, pitch lda) x B[n][k]^T (activations,
 * pitch ldb) + beta C; A and B of type ab. Through cuBLAS, or cuBLASLt
 * with tuned algorithms (gemm_cuda.c). */
static gboolean
gemm_batched (CudaRunner *cr, PassSlot *ps, VimkDType ab, int m, int n, int k, const void *A,
    int lda, long long sA, const void *B, int ldb, long long sB, void *C, VimkDType ct,
    int ldc, long long sC, int batch, float beta, const char *what, GError **error)
{
  if (cr->lt) {
    const VimGemmArgs ga = { .ab = ab, .ct = ct, .m = m, .n = n, .k = k, .A = A, .lda = lda,
      .sA = sA, .B = B, .ldb = ldb, .sB = sB, .C = C, .ldc = ldc, .sC = sC, .batch = batch,
      .beta = beta };
    size_t scratch = 0;
    gboolean ok = vim_gemm_run (cr->lt, ps->stream, &ga, &scratch, what, error);
    cr->dev_peak = MAX (cr->dev_peak, cr->dev_bytes + scratch);
    return ok;
  }
  const float alpha = 1.f;
  const cudaDataType t = cuda_type (ab);
  if (batch == 1)
    CKB (cublasGemmEx (ps->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A, t, lda,
            B, t, ldb, &beta, C, cuda_type (ct), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        what);
  else
    CKB (cublasGemmStridedBatchedEx (ps->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha,
            A, t, lda, sA, B, t, ldb, sB, &beta, C, cuda_type (ct), ldc, sC, batch,
            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), what);
  return TRUE;
}

static gboolean
gemm (CudaRunner *cr, PassSlot *ps, VimkDType ab, int m, int n, int k, const void *A, int lda,
    const void *B, int ldb, void *C, VimkDType ct, int ldc, float beta, const char *what,
    GError **error)
{
  return gemm_batched (cr, ps, ab, m, n, k, A, lda, 0, B, ldb, 0, C, ct, ldc, 0, 1, beta,
      what, error);
}

/* Stage timing (VIM_CUDA_PROFILE, vim_runner_cuda_bench only; not thread
 * safe, like the bench): events between the stages of a forward. */
enum { ST_EMBED, ST_PATCH, ST_NORM, ST_IN, ST_CONV, ST_XPROJ, ST_SCAN, ST_OUT, ST_SEGPROJ,
  ST_HEAD, ST_N };
static const char *const stage_names[ST_N] = { "embed gather", "patch GEMM", "rmsnorm",
  "in_proj GEMM", "conv+gate", "x_proj GEMM", "scan", "out_proj GEMM", "seg proj GEMM",
  "final+head" };

typedef struct {
  cudaEvent_t ev[4096];
  int stage[4096];
  int n;
} Profile;

static Profile *prof_active;

static void
prof_mark (CudaRunner *cr, int stage)
{
  Profile *p = prof_active;
  if (p == NULL || p->n >= 4096)
    return;
  if (p->ev[p->n] == NULL && cudaEventCreate (&p->ev[p->n]) != cudaSuccess)
    return;
  cudaEventRecord (p->ev[p->n], cr->stream);
  p->stage[p->n++] = stage;
}

#define CKK(expr, what) CK (expr, what)

/* The segmentation head of one pass, after the projections summed into
 * seg_h: conv + GELU (logits set to the class bias), then per image
 * logits (K, M) += W_cls (K, C_h) x seg_g (M, C_h)^T, written class-major
 * as the public layout wants. Column-major, that is C (M x K, ld M) =
 * op_T(seg_g as C_h x M) x (W_cls as C_h x K): one strided batch over the
 * pass's images with W_cls shared (stride 0). */
static gboolean
enqueue_seg_head (CudaRunner *cr, PassSlot *ps, const VimModelConfig *c, int i0, int m,
    GError **error)
{
  const CudaWeights *w = cr->w;
  const int M = c->num_patches, K = c->num_classes, Ch = c->seg_channels;
  float *logits = cr->logits + (size_t) i0 * out_per_image (c);
  CKK (vimk_seghead_conv (cr->t.act, ps->seg_h, w->seg_proj_b, w->seg_dw_w, w->seg_dw_b, m,
          c->grid_h, c->grid_w, Ch, ps->seg_g, logits, w->seg_cls_b, K, ps->stream),
      "segmentation head conv");
  if (!gemm_batched (cr, ps, cr->t.act, M, K, Ch, ps->seg_g, Ch, (long long) M * Ch,
          w->seg_cls_w, Ch, 0, logits, VIMK_F32, M, (long long) K * M, m, 1.f,
          "segmentation classes", error))
    return FALSE;
  prof_mark (cr, ST_HEAD);
  return TRUE;
}

/* One pass: images [i0, i0 + m) of the input buffer -> logits rows, beside
 * slots - 1 passes on other streams. */
static gboolean
enqueue_pass (CudaRunner *cr, PassSlot *ps, int slots, const VimModelConfig *c, int i0, int m,
    GError **error)
{
  const CudaWeights *w = cr->w;
  const Types t = cr->t;
  const int D = c->embed_dim, E = c->d_inner, L = c->seq_len, N = c->d_state;
  const int rows = m * L;
  cudaStream_t s = ps->stream;
  const float eps = c->norm_eps;

  if (prof_active)
    prof_mark (cr, -1);
  VimkEmbedArgs ea = {
    .nseq = m, .H = c->image_height, .W = c->image_width, .P = c->patch_size,
    .stride = c->stride, .gh = c->grid_h, .gw = c->grid_w, .L = L, .D = D,
    .cls_index = c->cls_index,
    .input = (const guint8 *) cr->input
        + (size_t) i0 * 3 * c->image_height * c->image_width * cr->ts_in,
    .patches = ps->xcy, .ldp = w->ldp, .residual = ps->residual,
    .pos = w->pos, .cls = w->cls, .patch_b = w->patch_b,
  };
  CKK (vimk_embed_prepare (t.in, &ea, s), "patch gather");
  prof_mark (cr, ST_EMBED);
  if (!gemm (cr, ps, t.in, D, rows, w->kp, w->patch_w, w->kp, ps->xcy, w->ldp, ps->residual,
          VIMK_F32, D, 1.f, "patch embedding", error))
    return FALSE;
  prof_mark (cr, ST_PATCH);

  const gboolean cls_only = c->cls_index >= 0;
  const gboolean seg = is_segmenter (c);
  /* a segmenter needs no block after its last feature level */
  const int n_layers = seg ? c->seg_layers[c->n_seg_layers - 1] + 1 : c->depth;
  int level = 0;
  for (int l = 0; l < n_layers; l++) {
    const CudaLayer *ly = &w->layers[l];
    const gboolean last = l == c->depth - 1;
    CKK (vimk_rmsnorm (t.norm, ps->residual, D, ly->norm_w, ps->xcy, D, rows, D, eps, s),
        "rmsnorm");
    prof_mark (cr, ST_NORM);
    if (!gemm (cr, ps, t.norm, 2 * E, rows, D, ly->in_w, D, ps->xcy, D, ps->xz, t.xz,
            2 * E, 0.f, "in_proj", error))
      return FALSE;
    prof_mark (cr, ST_IN);
    if (cr->conv_xproj) {
      CKK (vimk_conv_xproj (t.xz, t.act, ps->xz, ps->xcy, ly->conv_w, ly->conv_b, ly->x_w,
              ps->dbl, w->ldd, m, L, E, c->d_conv, s), "conv1d + x_proj");
      prof_mark (cr, ST_CONV);
    } else {
      if (cr->gate_in_scan)
        CKK (vimk_conv (t.xz, t.act, ps->xz, ps->xcy, ly->conv_w, ly->conv_b, m, L, E,
                c->d_conv, s), "conv1d");
      else
        CKK (vimk_conv_gate (t.xz, t.act, ps->xz, ps->xcy, ly->conv_w, ly->conv_b, m, L, E,
                c->d_conv, s), "conv1d");
      prof_mark (cr, ST_CONV);
      /* both directions: weights [d], input columns d*E.., outputs dbl[d] */
      if (!gemm_batched (cr, ps, t.act, w->ldd, rows, E, ly->x_w, E, (long long) w->ldx * E,
              ps->xcy, 2 * E, E, ps->dbl, VIMK_F32, w->ldd, (long long) rows * w->ldd, 2, 0.f,
              "x_proj", error))
        return FALSE;
      prof_mark (cr, ST_XPROJ);
    }
    VimkScanArgs sa = {
      .nseq = m, .L = L, .E = E, .N = N, .R = c->dt_rank, .r_pad = w->r_pad,
      .dbl = ps->dbl, .ldd = w->ldd, .b_off = w->b_off,
      .gate = (const guint8 *) ps->xz + (size_t) E * cr->ts_xz, .ld_gate = 2 * E,
      .gate_dtype = t.xz, .gate_silu = cr->gate_in_scan,
      .xy = ps->xcy, .ld_xy = 2 * E,
      .A2 = ly->A2, .Wdt = ly->dt_w, .bdt = ly->dt_b, .Dv = ly->Dv,
      .lanes = cr->scan_lanes, .chunks = cr->scan_chunks, .poly_exps = cr->scan_poly,
      .concurrent = slots - 1,
      /* the last layer feeds only the class token to the head: each
       * direction stops there (mid-token: half the steps) */
      .steps = last && cls_only && cr->last_layer_steps
          ? MAX (c->cls_index + 1, L - c->cls_index) : 0,
    };
    if (l == 0) {
      cr->scan_whole = vimk_scan_whole (t.act, &sa);
      cr->scan_stream = vimk_scan_stream (t.act, &sa);
    }
    CKK (vimk_scan (t.act, &sa, ps->scan_ws, ps->scan_ws_bytes, s), "selective scan");
    prof_mark (cr, ST_SCAN);
    if (seg && level < c->n_seg_layers && c->seg_layers[level] == l) {
      /* this block's mixer output, projected by the head: seg_h (+)= y W'^T */
      if (!gemm (cr, ps, t.act, c->seg_channels, rows, 2 * E, w->seg_proj[level], 2 * E,
              ps->xcy, 2 * E, ps->seg_h, VIMK_F32, c->seg_channels, level == 0 ? 0.f : 1.f,
              "segmentation projection", error))
        return FALSE;
      level++;
      prof_mark (cr, ST_SEGPROJ);
      if (l == n_layers - 1)
        continue;             /* no block reads this one's residual update */
    }
    if (last && cls_only) {
      /* only the class-token rows feed the head */
      if (!gemm (cr, ps, t.act, D, m, 2 * E, ly->out_w, 2 * E,
              (const guint8 *) ps->xcy + (size_t) c->cls_index * 2 * E * cr->ts, L * 2 * E,
              ps->residual + (size_t) c->cls_index * D, VIMK_F32, L * D, 1.f,
              "out_proj (class token)", error))
        return FALSE;
    } else if (!gemm (cr, ps, t.act, D, rows, 2 * E, ly->out_w, 2 * E, ps->xcy, 2 * E,
            ps->residual, VIMK_F32, D, 1.f, "out_proj", error))
      return FALSE;
    prof_mark (cr, ST_OUT);
  }
  if (seg)
    return enqueue_seg_head (cr, ps, c, i0, m, error);
  float *logits = cr->logits + (size_t) i0 * c->num_classes;
  CKK (vimk_final_prepare (t.act, ps->residual, m, L, D, c->cls_index, w->norm_f, eps,
          ps->feat, logits, w->head_b, c->num_classes, s), "final norm");
  if (!gemm (cr, ps, t.act, c->num_classes, m, D, w->head_w, D, ps->feat, D, logits,
          VIMK_F32, c->num_classes, 1.f, "head", error))
    return FALSE;
  prof_mark (cr, ST_HEAD);
  return TRUE;
}

/* The passes of a batch, pass p on slot p % slots: the slots' streams
 * start after what the runner's stream holds (the input) and the runner's
 * stream waits for all of them, so callers and graph capture see one
 * stream. Passes on one slot run in order: they share its workspace. */
static gboolean
enqueue_forward (CudaRunner *cr, const VimModelConfig *c, int n, GError **error)
{
  int passes, images, slots;
  plan_passes (cr, c, n, &passes, &images, &slots);
  if (slots > 1) {
    CK (cudaEventRecord (cr->fork, cr->stream), "forking the passes");
    for (int i = 1; i < slots; i++)
      CK (cudaStreamWaitEvent (cr->slot[i].stream, cr->fork, 0), "forking the passes");
  }
  for (int p = 0; p < passes; p++) {
    const int i0 = p * images;
    if (!enqueue_pass (cr, &cr->slot[p % slots], slots, c, i0, MIN (images, n - i0), error))
      return FALSE;
  }
  for (int i = 1; i < slots; i++) {
    CK (cudaEventRecord (cr->slot[i].joined, cr->slot[i].stream), "joining the passes");
    CK (cudaStreamWaitEvent (cr->stream, cr->slot[i].joined, 0), "joining the passes");
  }
  return TRUE;
}

/* Runs the network over input[0..n) into logits[0..n) on the stream: as a
 * replayed graph when one exists for n, else eagerly (first call) or by
 * capturing one (second call). Does not synchronize. */
static gboolean
run_forward (CudaRunner *cr, const VimModelConfig *c, int n, GError **error)
{
  GraphEntry *ge = NULL;
  for (guint i = 0; i < cr->graphs->len; i++)
    if (g_array_index (cr->graphs, GraphEntry, i).n == n)
      ge = &g_array_index (cr->graphs, GraphEntry, i);
  if (ge && ge->exec) {
    CK (cudaGraphLaunch (ge->exec, cr->stream), "launching the forward graph");
    return TRUE;
  }
  if (!cr->use_graphs || ge == NULL) {
    if (!enqueue_forward (cr, c, n, error))
      return FALSE;
    if (cr->use_graphs) {
      if (cr->graphs->len >= 16)
        graphs_clear (cr);
      GraphEntry ne = { .n = n, .warm = TRUE, .exec = NULL };
      g_array_append_val (cr->graphs, ne);
    }
    return TRUE;
  }
  /* warm: capture */
  cudaGraph_t graph = NULL;
  CK (cudaStreamBeginCapture (cr->stream, cudaStreamCaptureModeThreadLocal),
      "starting graph capture");
  GError *cap_err = NULL;
  gboolean ok = enqueue_forward (cr, c, n, &cap_err);
  cudaError_t e = cudaStreamEndCapture (cr->stream, &graph);
  if (ok && e == cudaSuccess)
    e = cudaGraphInstantiate (&ge->exec, graph, 0);
  if (graph)
    cudaGraphDestroy (graph);
  if (!ok || e != cudaSuccess) {
    /* capture failed: run eagerly from now on */
    g_clear_error (&cap_err);
    cudaGetLastError ();
    ge->exec = NULL;
    cr->use_graphs = FALSE;
    g_debug ("CUDA graph capture failed (%s); running without graphs",
        cudaGetErrorString (e));
    return enqueue_forward (cr, c, n, error);
  }
  CK (cudaGraphLaunch (ge->exec, cr->stream), "launching the forward graph");
  return TRUE;
}

static gboolean
sync_stream (CudaRunner *cr, GError **error)
{
  cudaError_t e = cudaStreamSynchronize (cr->stream);
  if (e != cudaSuccess)
    return cuda_fail (error, e, "running the network");
  return TRUE;
}

/* Copies the n x out_per_image logits to the caller. */
static gboolean
fetch_logits (CudaRunner *cr, const VimModelConfig *c, int n, float *logits, GError **error)
{
  size_t bytes = (size_t) n * out_per_image (c) * 4;
  if (!host_reserve (&cr->h_logits, &cr->h_logits_cap, bytes, error))
    return FALSE;
  CK (cudaMemcpyAsync (cr->h_logits, cr->logits, bytes, cudaMemcpyDeviceToHost, cr->stream),
      "copying the logits");
  if (!sync_stream (cr, error))
    return FALSE;
  memcpy (logits, cr->h_logits, bytes);
  return TRUE;
}

/* Host float input -> the device input buffer in the compute type. */
static gboolean
upload_input (CudaRunner *cr, const VimModelConfig *c, const float *input, int n,
    GError **error)
{
  const size_t total = (size_t) n * 3 * c->image_height * c->image_width;
  const size_t chunk = MIN (total, (size_t) 4 << 20);   /* floats */
  if (!host_reserve (&cr->h_stage, &cr->h_stage_cap, chunk * 4, error))
    return FALSE;
  float *stage_dev = NULL;
  CK (cudaHostGetDevicePointer ((void **) &stage_dev, cr->h_stage, 0), "mapping pinned memory");
  for (size_t off = 0; off < total; off += chunk) {
    size_t cnt = MIN (chunk, total - off);
    if (off > 0 && !sync_stream (cr, error))
      return FALSE;
    memcpy (cr->h_stage, input + off, cnt * 4);
    CK (vimk_convert_from_f32 (cr->t.in, (guint8 *) cr->input + off * cr->ts_in, stage_dev, cnt,
            cr->stream), "uploading the input");
  }
  return TRUE;
}

/* ---- frames -------------------------------------------------------------------- */

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
static gboolean
enqueue_preprocess (CudaRunner *cr, const VimModelConfig *c, const VimFrame *frames,
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
    dev_free (cr, &cr->frames_dev, cr->frames_dev_cap);
    cr->frames_dev_cap = 0;
    if (!dev_alloc (cr, &cr->frames_dev, want, "frame staging", error))
      return FALSE;
    cr->frames_dev_cap = want;
  }
  if (host_end > 0 && !host_reserve (&cr->h_stage, &cr->h_stage_cap, host_end, error))
    return FALSE;
  if (cr->h_desc_cap < n) {
    if (cr->h_desc)
      cudaFreeHost (cr->h_desc);
    cr->h_desc = NULL;
    cr->h_desc_cap = 0;
    CK (cudaHostAlloc ((void **) &cr->h_desc, (size_t) n * sizeof (VimkFrameDesc),
            cudaHostAllocPortable), "allocating pinned host memory");
    cr->h_desc_cap = n;
  }
  if (cr->desc_cap < n) {
    dev_free (cr, (void **) &cr->desc_dev, (size_t) cr->desc_cap * sizeof (VimkFrameDesc));
    cr->desc_cap = 0;
    if (!dev_alloc (cr, (void **) &cr->desc_dev, (size_t) n * sizeof (VimkFrameDesc),
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

/* ---- backend vtable ------------------------------------------------------------ */

static gboolean
cuda_preprocess (VimRunner *r, const VimFrame *frames, int n, float *out, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  CtxGuard g;
  if (!ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = FALSE;
  size_t bytes = (size_t) n * 3 * c->image_height * c->image_width * 4;
  void *out_dev = NULL;
  if (!host_reserve (&cr->h_pre, &cr->h_pre_cap, bytes, error))
    goto out;
  if (cudaHostGetDevicePointer (&out_dev, cr->h_pre, 0) != cudaSuccess) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: cannot map pinned memory");
    goto out;
  }
  if (!enqueue_preprocess (cr, c, frames, n, g.caller, VIMK_F32, out_dev, error))
    goto out;
  if (!sync_stream (cr, error))
    goto out;
  memcpy (out, cr->h_pre, bytes);
  ok = TRUE;
out:
  ctx_leave (&g);
  return ok;
}

static gboolean
cuda_forward (VimRunner *r, const float *input, int n, float *logits, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  CtxGuard g;
  if (!ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = ensure_batch (cr, c, n, error)
      && upload_input (cr, c, input, n, error)
      && run_forward (cr, c, n, error)
      && fetch_logits (cr, c, n, logits, error);
  ctx_leave (&g);
  return ok;
}

static gboolean
cuda_classify (VimRunner *r, const VimFrame *frames, int n, float *logits, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  CtxGuard g;
  if (!ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = ensure_batch (cr, c, n, error)
      && enqueue_preprocess (cr, c, frames, n, g.caller, cr->t.in, cr->input, error)
      && run_forward (cr, c, n, error)
      && fetch_logits (cr, c, n, logits, error);
  ctx_leave (&g);
  return ok;
}
/* ---- segmentation: masks on the GPU ---------------------------------------- */

/* Grows a device buffer of the runner (contents not kept). */
static gboolean
dev_reserve (CudaRunner *cr, void **p, size_t *cap, size_t bytes, const char *what,
    GError **error)
{
  if (*cap >= bytes)
    return TRUE;
  size_t want = MAX (bytes, *cap * 3 / 2);
  dev_free (cr, p, *cap);
  *cap = 0;
  if (!dev_alloc (cr, p, want, what, error))
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
      staged += align256 (mask_bytes (res)) * (res->confidence ? 2 : 1);
    want_counts |= res->fractions != NULL;
  }
  const size_t counts_bytes = want_counts ? (size_t) n * K * sizeof (guint32) : 0;
  if (!dev_reserve (cr, &cr->seg_out_dev, &cr->seg_out_cap, MAX (staged, 256),
          "staged masks", error)
      || !dev_reserve (cr, (void **) &cr->seg_counts_dev, &cr->seg_counts_cap,
          MAX (counts_bytes, 256), "class counts", error)
      || !host_reserve (&cr->h_seg_out, &cr->h_seg_out_cap, staged + counts_bytes, error))
    return FALSE;
  if (cr->seg_desc_cap < n) {
    size_t old = (size_t) cr->seg_desc_cap * sizeof (VimkSegMaskDesc);
    dev_free (cr, (void **) &cr->seg_desc_dev, old);
    cr->seg_desc_cap = 0;
    if (!dev_alloc (cr, (void **) &cr->seg_desc_dev, (size_t) n * sizeof (VimkSegMaskDesc),
            "mask descriptors", error))
      return FALSE;
    cr->seg_desc_cap = n;
  }
  if (cr->h_seg_desc_cap < n) {
    if (cr->h_seg_desc)
      cudaFreeHost (cr->h_seg_desc);
    cr->h_seg_desc = NULL;
    cr->h_seg_desc_cap = 0;
    CK (cudaHostAlloc ((void **) &cr->h_seg_desc, (size_t) n * sizeof (VimkSegMaskDesc),
            cudaHostAllocPortable), "allocating pinned host memory");
    cr->h_seg_desc_cap = n;
  }

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
    d->logits = cr->logits + (size_t) i * out_per_image (c);
    if (result_staged (cr, res, caller)) {
      d->classes = (uint8_t *) cr->seg_out_dev + off;
      d->classes_stride = d->width;
      off += align256 (mask_bytes (res));
      if (res->confidence) {
        d->confidence = (uint8_t *) cr->seg_out_dev + off;
        d->confidence_stride = d->width;
        off += align256 (mask_bytes (res));
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
  if (!sync_stream (cr, error))
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

static gboolean
cuda_segment (VimRunner *r, const VimFrame *frames, int n, const VimMaskSpec *spec,
    VimSegResult *results, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  (void) spec;                /* runner.c turned it into results[i].geometry */
  if (!is_segmenter (c)) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "%s is not a segmentation model", r->model->path);
    return FALSE;
  }
  CtxGuard g;
  if (!ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = ensure_batch (cr, c, n, error)
      && enqueue_preprocess (cr, c, frames, n, g.caller, cr->t.in, cr->input, error)
      && run_forward (cr, c, n, error)
      && segment_masks (cr, c, n, results, g.caller, error);
  ctx_leave (&g);
  return ok;
}

static void
weights_release (VimModel *model, CudaWeights *w)
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

static void
runner_destroy (VimModel *model, CudaRunner *cr)
{
  if (cr->graphs) {
    graphs_clear (cr);
    g_array_free (cr->graphs, TRUE);
  }
  if (cr->ws) cudaFree (cr->ws);
  if (cr->input) cudaFree (cr->input);
  if (cr->logits) cudaFree (cr->logits);
  if (cr->desc_dev) cudaFree (cr->desc_dev);
  if (cr->frames_dev) cudaFree (cr->frames_dev);
  if (cr->blas_ws) cudaFree (cr->blas_ws);
  if (cr->h_logits) cudaFreeHost (cr->h_logits);
  if (cr->h_stage) cudaFreeHost (cr->h_stage);
  if (cr->h_pre) cudaFreeHost (cr->h_pre);
  if (cr->h_desc) cudaFreeHost (cr->h_desc);
  if (cr->seg_desc_dev) cudaFree (cr->seg_desc_dev);
  if (cr->seg_counts_dev) cudaFree (cr->seg_counts_dev);
  if (cr->seg_out_dev) cudaFree (cr->seg_out_dev);
  if (cr->h_seg_desc) cudaFreeHost (cr->h_seg_desc);
  if (cr->h_seg_out) cudaFreeHost (cr->h_seg_out);
  for (int i = 1; i < MAX_PASS_SLOTS; i++) {
    PassSlot *ps = &cr->slot[i];
    if (ps->blas) cublasDestroy (ps->blas);
    if (ps->blas_ws) cudaFree (ps->blas_ws);
    if (ps->joined) cudaEventDestroy (ps->joined);
    if (ps->stream) cudaStreamDestroy (ps->stream);
  }
  if (cr->fork) cudaEventDestroy (cr->fork);
  vim_gemm_free (cr->lt);
  if (cr->blas) cublasDestroy (cr->blas);
  if (cr->stream) cudaStreamDestroy (cr->stream);
  if (cr->w)
    weights_release (model, cr->w);
}

static void
cuda_free (VimRunner *r)
{
  CudaRunner *cr = r->impl;
  if (cr == NULL)
    return;
  CtxGuard g;
  gboolean entered = ctx_enter (cr, &g, NULL);
  if (entered) {
    cudaStreamSynchronize (cr->stream);
    runner_destroy (r->model, cr);
    ctx_leave (&g);
  }
  if (cr->retained_primary) {
    CUdevice dev;
    if (drv.device_get (&dev, cr->device) == CUDA_SUCCESS)
      drv.release (dev);
  }
  g_free (cr);
  r->impl = NULL;
}

static const VimBackend cuda_backend = {
  .preprocess = cuda_preprocess,
  .forward = cuda_forward,
  .classify = cuda_classify,
  .segment = cuda_segment,
  .free = cuda_free,
};

static gboolean
runner_setup (VimRunner *r, CudaRunner *cr, GError **error)
{
  const VimModelConfig *c = &r->model->config;
  VimModel *model = r->model;

  if (c->task != VIM_TASK_CLASSIFICATION && c->task != VIM_TASK_SEGMENTATION) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "CUDA backend: task %d is not supported", (int) c->task);
    return FALSE;
  }
  if (is_segmenter (c) && (c->num_classes > 256 || c->n_seg_layers < 1 || c->cls_index >= 0)) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "CUDA backend: segmenter with %d classes, %d feature levels and %s class token "
        "(need <= 256 classes, >= 1 level, no class token)", c->num_classes,
        c->n_seg_layers, c->cls_index >= 0 ? "a" : "no");
    return FALSE;
  }
  if (!vimk_scan_supported (c->d_state, c->dt_rank)) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "CUDA backend: d_state %d with dt_rank %d is not supported (d_state 8 or 16, dt_rank <= 64)",
        c->d_state, c->dt_rank);
    return FALSE;
  }
  if (c->d_conv < 1 || c->d_conv > 8) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "CUDA backend: d_conv %d is not supported (1 .. 8)", c->d_conv);
    return FALSE;
  }

  CK (cudaStreamCreateWithFlags (&cr->stream, cudaStreamNonBlocking), "creating a stream");
  CKB (cublasCreate (&cr->blas), "creating a handle");
  CKB (cublasSetStream (cr->blas, cr->stream), "setting the stream");
  CKB (cublasSetMathMode (cr->blas, CUBLAS_DEFAULT_MATH), "setting the math mode");
  cr->blas_ws_bytes = (size_t) 8 << 20;
  if (!dev_alloc (cr, &cr->blas_ws, cr->blas_ws_bytes, "the cuBLAS workspace", error))
    return FALSE;
  CKB (cublasSetWorkspace (cr->blas, cr->blas_ws, cr->blas_ws_bytes), "setting the workspace");
  cr->slot[0].stream = cr->stream;
  cr->slot[0].blas = cr->blas;
  cr->n_slots = 1;
  /* VIM_CUDA_GEMM: blas (cuBLAS's own choice), lt (cuBLASLt's first
   * candidate) or tuned (the fastest of cuBLASLt's first 16, timed once per
   * shape); the workspace is shared: one stream */
  const char *gm = g_getenv ("VIM_CUDA_GEMM");
  if (g_strcmp0 (gm, "lt") == 0 || g_strcmp0 (gm, "tuned") == 0) {
    cr->lt = vim_gemm_new (g_strcmp0 (gm, "tuned") == 0 ? 16 : 0, cr->blas_ws, cr->blas_ws_bytes,
        error);
    if (cr->lt == NULL)
      return FALSE;
  }

  /* weights: shared per (context, precision) */
  g_mutex_lock (&model->device_lock);
  for (GSList *l = model->device_weights; l; l = l->next) {
    CudaWeights *w = l->data;
    if (w->ctx == cr->ctx && w->precision == r->options.precision) {
      w->refcount++;
      cr->w = w;
      break;
    }
  }
  if (cr->w == NULL) {
    cr->w = weights_upload (model, cr->ctx, r->options.precision, error);
    if (cr->w)
      model->device_weights = g_slist_prepend (model->device_weights, cr->w);
  }
  g_mutex_unlock (&model->device_lock);
  if (cr->w == NULL)
    return FALSE;

  /* Images per pass: about 32k tokens, and for short sequences (<= 256
   * tokens, e.g. 224 px) up to 256 images within 64k tokens. Measured on an
   * H100 (Vim-Ti fp16, batch 256): passes of 15 / 29 / 86 / 256 images took
   * 41 / 27 / 21 / 20 ms, i.e. parallelism and GEMM efficiency matter more
   * than keeping a pass in L2; at 1248 px passes of 1 / 2 / 4 / 8 images
   * took 35 / 33 / 33 / 31 ms. With scan V4 on an H200, batch 256 in one
   * pass against 2 x 128: Vim-Ti 11.93 / 12.54 ms, Vim-S 24.61 / 25.35, for
   * 1.1 (Ti) and 1.9 (S) MiB of workspace per image, still below DeiT's
   * activations at that batch (bench/RESULTS.md). */
  long long tokens = env_int ("VIM_CUDA_PASS_TOKENS", 0);
  long long imgs;
  if (tokens > 0)
    imgs = tokens / c->seq_len;
  else if (c->seq_len <= 256)
    imgs = MAX (32768 / c->seq_len, MIN (256, 65536 / c->seq_len));
  else
    imgs = 32768 / c->seq_len;
  cr->pass_images = (int) CLAMP (imgs, 1, 4096);
  cr->scan_lanes = env_int ("VIM_CUDA_SCAN_LANES", 0);
  cr->scan_chunks = env_int ("VIM_CUDA_SCAN_CHUNKS", 0);
  cr->profile = env_int ("VIM_CUDA_PROFILE", 0) != 0;
  cr->scan_poly = env_int ("VIM_CUDA_SCAN_POLY", -1);
  /* VIM_CUDA_CONV_XPROJ=1: conv, gate and x_proj in one launch where the
   * kernel can (16-bit, sm_80+). Off by default: on an H200 it was 8% slower
   * at Vim-Ti 224 batch 256 and 18% at batch 1 than conv + cuBLAS x_proj
   * (bench/RESULTS.md, seventh session) */
  cr->conv_xproj = VIM_CUDA_MIN_SM >= 80 && env_int ("VIM_CUDA_CONV_XPROJ", 0) != 0
      && vimk_conv_xproj_supported (cr->w->t.xz, cr->w->t.act, c->d_inner, c->d_conv,
          cr->w->ldd);
  /* SiLU(z) in the scan rather than the conv, which then neither reads nor
   * writes z (VIM_CUDA_GATE_IN_CONV=1: the conv gates, as before) */
  cr->gate_in_scan = !cr->conv_xproj && env_int ("VIM_CUDA_GATE_IN_CONV", 0) == 0;
  cr->use_graphs = env_int ("VIM_CUDA_GRAPHS", 1) != 0;
  cr->last_layer_steps = env_int ("VIM_CUDA_LAST_STEPS", 1) != 0;
  cr->graphs = g_array_new (FALSE, TRUE, sizeof (GraphEntry));
  /* Most passes in flight at once (VIM_CUDA_PASS_STREAMS, default 2); one
   * when cuBLASLt's workspace is shared (VIM_CUDA_GEMM=lt|tuned) or stage
   * times are taken (VIM_CUDA_PROFILE) */
  cr->max_slots = (int) CLAMP (env_int ("VIM_CUDA_PASS_STREAMS", 2), 1, MAX_PASS_SLOTS);
  if (cr->lt || cr->profile)
    cr->max_slots = 1;
  return TRUE;
}

gboolean
vim_runner_cuda_init (VimRunner *r, GError **error)
{
  int count = 0;
  if (!vim_cuda_device_count (&count, error))
    return FALSE;
  if (!driver_load (error))
    return FALSE;

  if (r->options.precision != VIM_PRECISION_FP32 && r->options.precision != VIM_PRECISION_FP16
      && r->options.precision != VIM_PRECISION_BF16) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "unknown precision %d", (int) r->options.precision);
    return FALSE;
  }
  CudaRunner *cr = g_new0 (CudaRunner, 1);
  cr->t = types_for (r->options.precision);
  cr->ts = vimk_dtype_size (cr->t.act);
  cr->ts_in = vimk_dtype_size (cr->t.in);
  cr->ts_norm = vimk_dtype_size (cr->t.norm);
  cr->ts_xz = vimk_dtype_size (cr->t.xz);

  /* The device: the caller's current context when it is on the asked-for
   * device (or none was asked for), else that device's primary context. */
  CUcontext cur = NULL;
  if (drv.get_current (&cur) != CUDA_SUCCESS)
    cur = NULL;
  int cur_dev = -1;
  if (cur) {
    CUdevice d;
    if (drv.get_device (&d) == CUDA_SUCCESS)
      cur_dev = (int) d;
  }
  int want = r->options.cuda_device;
  if (want >= count) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "CUDA device %d does not exist (%d device%s present)", want, count,
        count == 1 ? "" : "s");
    g_free (cr);
    return FALSE;
  }
  if (want < 0)
    want = cur ? cur_dev : 0;
  cr->device = want;
  if (cur && cur_dev == want) {
    cr->ctx = cur;
  } else {
    CUdevice dev;
    if (drv.device_get (&dev, want) != CUDA_SUCCESS
        || drv.retain (&cr->ctx, dev) != CUDA_SUCCESS) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
          "CUDA: cannot open device %d", want);
      g_free (cr);
      return FALSE;
    }
    cr->retained_primary = TRUE;
  }
  int major = 0, minor = 0;
  cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, want);
  cudaDeviceGetAttribute (&minor, cudaDevAttrComputeCapabilityMinor, want);
  if (major * 10 + minor < VIM_CUDA_MIN_SM) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "CUDA device %d is sm_%d%d, older than this build's kernels (sm_%d)",
        want, major, minor, VIM_CUDA_MIN_SM);
    if (cr->retained_primary) {
      CUdevice dev;
      if (drv.device_get (&dev, want) == CUDA_SUCCESS)
        drv.release (dev);
    }
    g_free (cr);
    return FALSE;
  }
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties (&prop, want) == cudaSuccess) {
    g_strlcpy (cr->device_name, prop.name, sizeof cr->device_name);
    cr->sm_count = prop.multiProcessorCount;
  }

  r->impl = cr;
  r->backend = &cuda_backend;
  CtxGuard g;
  if (!ctx_enter (cr, &g, error)) {
    cuda_free (r);
    return FALSE;
  }
  gboolean ok = runner_setup (r, cr, error);
  ctx_leave (&g);
  if (!ok) {
    cuda_free (r);
    return FALSE;
  }
  return TRUE;
}

/* ---- benchmark entry ----------------------------------------------------------- */

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

const char *
vim_runner_cuda_device_name (VimRunner *r)
{
  CudaRunner *cr = r->impl;
  return cr->device_name;
}

gboolean
vim_runner_cuda_bench (VimRunner *r, int n, int min_iters, int max_iters,
    double max_seconds, VimCudaBenchResult *out, GError **error)
{
  g_return_val_if_fail (r->options.device == VIM_DEVICE_CUDA, FALSE);
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  memset (out, 0, sizeof *out);
  CtxGuard g;
  if (!ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = FALSE;
  double *times = NULL;
  cudaEvent_t ev[2] = { NULL, NULL };
  if (!ensure_batch (cr, c, n, error))
    goto out;
  {
    /* random input, normalized range, from the splitmix stream of the tests */
    size_t total = (size_t) n * 3 * c->image_height * c->image_width;
    float *in = g_try_new (float, total);
    if (in == NULL) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "out of host memory");
      goto out;
    }
    guint64 state = 0x1234567ull;
    for (size_t i = 0; i < total; i++) {
      guint64 z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      in[i] = (float) ((double) (z >> 40) / (double) (1 << 23) - 1.0) * 2.f;
    }
    gboolean up = upload_input (cr, c, in, n, error);
    g_free (in);
    if (!up)
      goto out;
  }
  /* warm-up: eager, then capture */
  for (int i = 0; i < 3; i++)
    if (!run_forward (cr, c, n, error) || !sync_stream (cr, error))
      goto out;
  if (cudaEventCreate (&ev[0]) != cudaSuccess || cudaEventCreate (&ev[1]) != cudaSuccess) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: cannot create events");
    goto out;
  }
  times = g_new (double, max_iters);
  int iters = 0;
  gint64 start = g_get_monotonic_time ();
  while (iters < max_iters
      && (iters < min_iters || (g_get_monotonic_time () - start) / 1e6 < max_seconds)) {
    if (cudaEventRecord (ev[0], cr->stream) != cudaSuccess
        || !run_forward (cr, c, n, error)
        || cudaEventRecord (ev[1], cr->stream) != cudaSuccess
        || !sync_stream (cr, error)) {
      if (error && *error == NULL)
        g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: timing failed");
      goto out;
    }
    float ms = 0.f;
    cudaEventElapsedTime (&ms, ev[0], ev[1]);
    times[iters++] = ms;
  }
  double sum = 0;
  for (int i = 0; i < iters; i++)
    sum += times[i];
  qsort (times, iters, sizeof (double), cmp_double);
  out->batch = n;
  out->iters = iters;
  out->min_ms = times[0];
  out->median_ms = times[iters / 2];
  out->p99_ms = times[MIN (iters - 1, (int) ceil (0.99 * iters) - 1)];
  out->mean_ms = sum / iters;
  out->weight_bytes = cr->w->bytes;
  out->act_bytes = cr->dev_peak;
  int slots;
  plan_passes (cr, c, n, &out->passes, &out->pass_images, &slots);
  vimk_scan_plan (out->pass_images, c->seq_len, c->d_inner, c->d_state, c->dt_rank,
      cr->scan_lanes, cr->scan_chunks, &out->scan_lanes, &out->scan_chunks);
  out->scan_whole = cr->scan_whole;
  out->scan_stream = cr->scan_stream;
  out->graphs = cr->use_graphs;
  if (cr->profile) {
    /* one eager forward with an event after every stage */
    Profile *p = g_new0 (Profile, 1);
    prof_active = p;
    gboolean pok = enqueue_forward (cr, c, n, error);
    prof_active = NULL;
    if (pok)
      pok = sync_stream (cr, error);
    if (pok) {
      double tot[ST_N] = { 0 }, all = 0;
      for (int i = 1; i < p->n; i++) {
        float ms = 0.f;
        if (p->stage[i] >= 0 && cudaEventElapsedTime (&ms, p->ev[i - 1], p->ev[i]) == cudaSuccess) {
          tot[p->stage[i]] += ms;
          all += ms;
        }
      }
      g_printerr ("profile %s %dx%d batch %d (eager, %d passes of %d):", c->name,
          c->image_height, c->image_width, n, out->passes, out->pass_images);
      for (int st = 0; st < ST_N; st++)
        g_printerr (" %s %.3f ms (%.0f%%);", stage_names[st], tot[st], 100.0 * tot[st] / MAX (all, 1e-9));
      g_printerr (" total %.3f ms\n", all);
    }
    for (int i = 0; i < 4096; i++)
      if (p->ev[i])
        cudaEventDestroy (p->ev[i]);
    g_free (p);
    if (!pok)
      goto out;
  }
  ok = TRUE;
out:
  if (ev[0]) cudaEventDestroy (ev[0]);
  if (ev[1]) cudaEventDestroy (ev[1]);
  g_free (times);
  ctx_leave (&g);
  return ok;
}
