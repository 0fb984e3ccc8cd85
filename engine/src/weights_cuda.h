/* Model weights on the device, laid out for the CUDA runner: uploaded once
 * per model, CUDA context and precision, and shared by the runners that use
 * them (VimModel.device_weights). Internal to the engine. */
#ifndef VIM_WEIGHTS_CUDA_H
#define VIM_WEIGHTS_CUDA_H

#include "cuda_common.h"
#include "vimk/vimk.h"

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

static inline Types
vim_cuda_types_for (VimPrecision p)
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

static inline cudaDataType
vim_cuda_type (VimkDType dt)
{
  return dt == VIMK_F32 ? CUDA_R_32F : dt == VIMK_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

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

static inline gboolean
vim_cuda_is_segmenter (const VimModelConfig *c)
{
  return c->task == VIM_TASK_SEGMENTATION;
}

/* Floats of output per image: K logits, or K x grid for a segmenter. */
static inline size_t
vim_cuda_out_per_image (const VimModelConfig *c)
{
  return vim_cuda_is_segmenter (c) ? (size_t) c->num_classes * c->num_patches : (size_t) c->num_classes;
}

/* Lays the model's weights out in one host buffer, converted to the
 * precision's types, and uploads it to ctx (current). Refcount 1. */
CudaWeights *vim_cuda_weights_upload (VimModel *model, CUcontext ctx, VimPrecision prec,
    GError **error);

/* Drops one reference; the last frees the device copy and unlinks it from
 * model->device_weights. */
void vim_cuda_weights_release (VimModel *model, CudaWeights *w);

#endif /* VIM_WEIGHTS_CUDA_H */
