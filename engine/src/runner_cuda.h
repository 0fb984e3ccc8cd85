/* The CUDA runner's state, shared by the files that make up the CUDA
 * backend: runner_cuda.c (workspace, passes, the forward pass),
 * preprocess_cuda.c (frames to model input on the GPU) and segment_cuda.c
 * (segmentation masks on the GPU). Internal to the engine. */
#ifndef VIM_RUNNER_CUDA_H
#define VIM_RUNNER_CUDA_H

#include "cuda_common.h"
#include "weights_cuda.h"
#include "gemm_cuda.h"
#include "vimk/vimk.h"

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
  int seg_desc_cap;
  size_t h_seg_desc_cap;      /* bytes */
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
  size_t h_desc_cap;          /* bytes */

  GArray *graphs;             /* GraphEntry */
} CudaRunner;

/* Makes the runner's context current for the duration of a call. */
typedef struct {
  gboolean pushed;
  CUcontext caller;
} CtxGuard;

/* ---- runner_cuda.c, for the other files ------------------------------------- */

gboolean vim_cuda_ctx_enter (CudaRunner *cr, CtxGuard *g, GError **error);
void vim_cuda_ctx_leave (CtxGuard *g);

/* Device allocations, counted in the runner's peak (dev_bytes, dev_peak). */
gboolean vim_cuda_dev_alloc (CudaRunner *cr, void **p, size_t bytes, const char *what,
    GError **error);
void vim_cuda_dev_free (CudaRunner *cr, void **p, size_t bytes);
/* Grows a mapped pinned host buffer to bytes (contents not kept). */
gboolean vim_cuda_host_reserve (void **p, size_t *cap, size_t bytes, GError **error);

/* Frames -> cr->input -> the forward pass (workspace for n first). */
gboolean vim_cuda_forward_frames (CudaRunner *cr, const VimModelConfig *c,
    const VimFrame *frames, int n, CUcontext caller, GError **error);
gboolean vim_cuda_sync_stream (CudaRunner *cr, GError **error);

/* ---- preprocess_cuda.c ---------------------------------------------------------- */

/* Frames (host or device memory of the caller's context) -> n model inputs of
 * type dt at out (device), on cr->stream. */
gboolean vim_cuda_enqueue_preprocess (CudaRunner *cr, const VimModelConfig *c,
    const VimFrame *frames, int n, CUcontext caller, VimkDType dt, void *out,
    GError **error);

/* ---- segment_cuda.c ------------------------------------------------------------- */

/* VimBackend.segment */
gboolean vim_cuda_runner_segment (VimRunner *r, const VimFrame *frames, int n,
    const VimMaskSpec *spec, VimSegResult *results, GError **error);

#endif /* VIM_RUNNER_CUDA_H */
