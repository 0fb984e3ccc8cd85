/* Engine internals shared by the model loader, the runners and the backends.
 * Not installed; the plugin and tools see only vim/vim.h. */
#ifndef VIM_PRIVATE_H
#define VIM_PRIVATE_H

#include "vim/vim.h"
#include "vim-build-config.h"   /* VIM_HAVE_CUDA */

G_BEGIN_DECLS

/* ---- safetensors file (model_file.c) ----------------------------------- */

typedef enum {
  VIM_DTYPE_F32,
  VIM_DTYPE_F16,
  VIM_DTYPE_BF16,
} VimDType;

#define VIM_MAX_DIMS 4

typedef struct {
  char *name;
  VimDType dtype;
  int ndim;
  int64_t shape[VIM_MAX_DIMS];
  size_t n_elements;
  size_t nbytes;
  const void *data;           /* inside the mapping */
} VimTensorInfo;

typedef struct _VimSafetensors VimSafetensors;

/* Maps the file and validates the container: header length, JSON, entries,
 * dtypes, offsets inside the data, sizes matching shapes, no overlaps. */
VimSafetensors *vim_safetensors_open (const char *path, GError **error);
void vim_safetensors_free (VimSafetensors *st);
const VimTensorInfo *vim_safetensors_find (const VimSafetensors *st, const char *name);
int vim_safetensors_n_tensors (const VimSafetensors *st);
const VimTensorInfo *vim_safetensors_nth (const VimSafetensors *st, int i);
/* __metadata__ value, or NULL. */
const char *vim_safetensors_get_metadata (const VimSafetensors *st, const char *key);
/* All metadata keys (NULL-terminated, owned by st). */
const char *const *vim_safetensors_metadata_keys (const VimSafetensors *st);

/* ---- weights ------------------------------------------------------------ */

/* One scan direction of a mixer. Direction 0 is forward, 1 the backward
 * branch (conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b). */
typedef struct {
  const float *conv_w;        /* (E, K) */
  const float *conv_b;        /* (E) */
  const float *x_proj_w;      /* (R + 2N, E) */
  const float *dt_proj_w;     /* (E, R) */
  const float *dt_proj_b;     /* (E) */
  const float *A_log;         /* (E, N) */
  const float *D;             /* (E) */
} VimDirectionWeights;

typedef struct {
  const float *norm_w;        /* (D) */
  const float *in_proj_w;     /* (2E, D): rows [0,E) give x, [E,2E) give z */
  VimDirectionWeights dir[2];
  const float *out_proj_w;    /* (D, E), shared by both directions */
} VimLayerWeights;

/* Host fp32 view of every weight (pointing into the mapping where the file
 * stores aligned F32, else into a converted copy). */
typedef struct {
  const float *cls_token;     /* (D) or NULL */
  const float *pos_embed;     /* (L, D) */
  const float *patch_w;       /* (D, 3, P, P) */
  const float *patch_b;       /* (D) */
  VimLayerWeights *layers;    /* depth */
  const float *norm_f_w;      /* (D) */
  const float *head_w;        /* (C, D), classifier only */
  const float *head_b;        /* (C) */
  /* segmentation head (docs/segmentation-plan.md), segmenter only */
  const float *seg_proj_w[VIM_MAX_SEG_LAYERS]; /* (C_h, D) per level */
  const float *seg_proj_b;    /* (C_h) */
  const float *seg_dw_w;      /* (C_h, 1, 3, 3) depthwise */
  const float *seg_dw_b;      /* (C_h) */
  const float *seg_cls_w;     /* (K, C_h) */
  const float *seg_cls_b;     /* (K) */
} VimWeights;

struct _VimModel {
  gint ref_count;
  char *path;
  char *name;
  VimModelConfig config;
  VimSafetensors *st;
  VimWeights w;
  float *converted;           /* fp32 copies of tensors not usable in place */
  char **labels;              /* num_classes entries or NULL */
  /* Weights already uploaded to a device, shared by runners (weights_cuda.c). */
  GMutex device_lock;
  GSList *device_weights;
};

/* ---- runners ------------------------------------------------------------ */

typedef struct {
  gboolean (*preprocess) (VimRunner *r, const VimFrame *frames, int n, float *out, GError **error);
  gboolean (*forward) (VimRunner *r, const float *input, int n, float *logits, GError **error);
  gboolean (*classify) (VimRunner *r, const VimFrame *frames, int n, float *logits, GError **error);
  /* results[i].geometry is filled by the caller (runner.c) before the call */
  gboolean (*segment) (VimRunner *r, const VimFrame *frames, int n,
      const VimMaskSpec *spec, VimSegResult *results, GError **error);
  void (*free) (VimRunner *r);
} VimBackend;

struct _VimRunner {
  VimModel *model;
  VimRunnerOptions options;
  const VimBackend *backend;
  void *impl;
};

gboolean vim_runner_cpu_init (VimRunner *r, GError **error);
#if VIM_HAVE_CUDA
gboolean vim_runner_cuda_init (VimRunner *r, GError **error);
gboolean vim_cuda_device_count (int *n, GError **error);
#endif

/* ---- CPU threads (thread_pool.c) ----------------------------------------- */

typedef struct _VimThreadPool VimThreadPool;
/* Runs fn over [begin, end) slices of n_items: one slice per thread, the
 * caller's thread included; returns when every slice is done. */
typedef void (*VimParallelFn) (void *ctx, int begin, int end);

VimThreadPool *vim_thread_pool_new (int n_threads, GError **error);
void vim_thread_pool_free (VimThreadPool *pool);
int vim_thread_pool_size (const VimThreadPool *pool);
void vim_parallel_for (VimThreadPool *pool, int n_items, VimParallelFn fn,
    void *ctx);

/* ---- preprocessing (preprocess_cpu.c) ----------------------------------- */

/* Validates a frame's format, size, planes and strides. */
gboolean vim_frame_validate (const VimFrame *frame, GError **error);

/* Where output pixel centres land in the source frame:
 *   sx = (ox + 0.5) * scale_x + offset_x - 0.5   (likewise y)
 * Output pixels whose source position falls outside [pad_x0, pad_x1) x
 * [pad_y0, pad_y1) (letterbox borders) take the mean colour (0 after
 * normalization). The CUDA kernel uses the same struct. */
typedef struct {
  float scale_x, scale_y;     /* source pixels per output pixel */
  float offset_x, offset_y;   /* source coordinate of output pixel edge 0 */
  int pad_x0, pad_x1, pad_y0, pad_y1; /* output columns/rows with content */
} VimResizeMap;

void vim_resize_map_compute (const VimModelConfig *cfg, int src_w, int src_h,
    VimResizeMap *map);

/* One frame -> (3, H, W) normalized float. */
void vim_preprocess_frame_cpu (const VimModelConfig *cfg, const VimFrame *frame,
    float *out);

/* ---- segmentation postprocessing (segment.c) ---------------------------- */

/* Where mask pixel (mx, my) samples the (grid_h, grid_w) logits: grid
 * coordinate gx = (mx + 0.5) * scale_x + offset_x (likewise y), then
 * bilinear with PyTorch's align_corners=False clamping (gx < 0 -> 0, the
 * upper neighbour clamped to the grid). Host and CUDA postprocessing share it. */
typedef struct {
  double scale_x, offset_x;
  double scale_y, offset_y;
} VimSegSampling;

void vim_seg_sampling_compute (const VimModelConfig *cfg,
    const VimMaskGeometry *geometry, VimSegSampling *out);

G_END_DECLS

#endif /* VIM_PRIVATE_H */
