/* The CUDA runner: workspace, passes and the forward pass as cuBLAS GEMMs
 * plus the kernels of kernels/, replayed as CUDA graphs. The rest of the
 * backend: cuda_driver.c (errors, driver entry points), weights_cuda.c
 * (weights on the device, shared per model, context and precision),
 * preprocess_cuda.c (frames to input on the GPU), segment_cuda.c (masks).
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
 *                  (or (y_f + y_b) x (W_out/2)^T where the scan summed the
 *                  directions into the forward half: vimk_scan_sums_directions)
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
 * VIM_CUDA_SCAN_LANES, VIM_CUDA_SCAN_CHUNKS, VIM_CUDA_SCAN_SUM=0|1,
 * VIM_CUDA_SCAN_POLY, VIM_CUDA_CONV_XPROJ=1, VIM_CUDA_GATE_IN_CONV=1,
 * VIM_CUDA_DBL_ALIGN=4|16, VIM_CUDA_LAST_STEPS=0, VIM_CUDA_GRAPHS=0, VIM_CUDA_PROFILE=1,
 * VIM_CUDA_GEMM=lt or tuned (cuBLASLt, gemm_cuda.c; default cuBLAS) and,
 * read by the kernels, VIM_CUDA_SCAN_VERSION=1/2/3 for an earlier scan,
 * VIM_CUDA_SCAN_BLOCKS_PER_SM (0 = no cap on the scan's blocks per SM),
 * VIM_CUDA_SCAN_WHOLE_CHUNKS=1|2|4 (chunk groups in V5's blocks),
 * VIM_CUDA_SCAN_DT_MMA=0 (dt_proj with FMAs instead of the tensor cores) and
 * VIM_CUDA_LAYER_CARVEOUT=-1 (the driver chooses every L1 / shared split).
 */
#include "runner_cuda.h"
#include "vim-build-config.h"
#include "cuda_bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the runner ------------------------------------------------------------ */

gboolean
vim_cuda_ctx_enter (CudaRunner *cr, CtxGuard *g, GError **error)
{
  g->pushed = FALSE;
  g->caller = NULL;
  if (vim_cuda_drv.get_current (&g->caller) != CUDA_SUCCESS)
    g->caller = NULL;
  if (g->caller != cr->ctx) {
    if (vim_cuda_drv.push (cr->ctx) != CUDA_SUCCESS) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
          "CUDA: cannot make the runner's context current");
      return FALSE;
    }
    g->pushed = TRUE;
  }
  return TRUE;
}

void
vim_cuda_ctx_leave (CtxGuard *g)
{
  if (g->pushed) {
    CUcontext dummy;
    vim_cuda_drv.pop (&dummy);
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

void
vim_cuda_dev_free (CudaRunner *cr, void **p, size_t bytes)
{
  if (*p) {
    cudaFree (*p);
    cr->dev_bytes -= bytes;
  }
  *p = NULL;
}

gboolean
vim_cuda_dev_alloc (CudaRunner *cr, void **p, size_t bytes, const char *what, GError **error)
{
  *p = NULL;
  cudaError_t e = cudaMalloc (p, bytes);
  if (e != cudaSuccess) {
    *p = NULL;
    cudaGetLastError ();
    char *msg = g_strdup_printf ("allocating %.1f MiB for %s", bytes / 1048576.0, what);
    vim_cuda_fail (error, e, msg);
    g_free (msg);
    return FALSE;
  }
  cr->dev_bytes += bytes;
  cr->dev_peak = MAX (cr->dev_peak, cr->dev_bytes + 0);
  return TRUE;
}

gboolean
vim_cuda_host_reserve (void **p, size_t *cap, size_t bytes, GError **error)
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
    return vim_cuda_fail (error, e, "allocating pinned host memory");
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
  return vim_cuda_align256 (most);
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
  const size_t Ch = vim_cuda_is_segmenter (c) ? (size_t) c->seg_channels : 0;
  return vim_cuda_align256 (rows * D * 4)                      /* residual */
      + vim_cuda_align256 (rows * 2 * E * cr->ts_xz)            /* xz */
      + vim_cuda_align256 (rows * xcy_row_bytes (cr, c))        /* xcy */
      + vim_cuda_align256 ((size_t) 2 * rows * cr->w->ldd * 4)  /* dbl */
      + vim_cuda_align256 ((size_t) images * D * cr->ts)        /* feat */
      + vim_cuda_align256 (rows * Ch * 4)                       /* seg_h */
      + vim_cuda_align256 (rows * Ch * cr->ts);                 /* seg_g */
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
  vim_cuda_dev_free (cr, &cr->ws, cr->ws_bytes);
  cr->ws_bytes = 0;
  cr->ws_images = 0;
  cr->ws_slots = 0;
  const size_t scan_bytes = scan_ws_for (cr, c, images);
  const size_t slot_bytes = ws_bytes_for (cr, c, images) + scan_bytes;
  if (!vim_cuda_dev_alloc (cr, &cr->ws, slot_bytes * slots, "the layer workspace", error))
    return FALSE;
  cr->ws_bytes = slot_bytes * slots;
  cr->ws_images = images;
  cr->ws_slots = slots;
  const size_t rows = (size_t) images * c->seq_len;
  const int E = c->d_inner, D = c->embed_dim;
  const size_t Ch = vim_cuda_is_segmenter (c) ? (size_t) c->seg_channels : 0;
  for (int i = 0; i < slots; i++) {
    PassSlot *ps = &cr->slot[i];
    guint8 *p = (guint8 *) cr->ws + i * slot_bytes;
    ps->residual = (float *) p; p += vim_cuda_align256 (rows * D * 4);
    ps->xz = p; p += vim_cuda_align256 (rows * 2 * E * cr->ts_xz);
    ps->xcy = p; p += vim_cuda_align256 (rows * xcy_row_bytes (cr, c));
    ps->dbl = (float *) p; p += vim_cuda_align256 ((size_t) 2 * rows * cr->w->ldd * 4);
    ps->feat = p; p += vim_cuda_align256 ((size_t) images * D * cr->ts);
    ps->seg_h = (float *) p; p += vim_cuda_align256 (rows * Ch * 4);
    ps->seg_g = p; p += vim_cuda_align256 (rows * Ch * cr->ts);
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
        && !vim_cuda_dev_alloc (cr, &ps->blas_ws, cr->blas_ws_bytes, "a cuBLAS workspace", error))
      return FALSE;
    CKB (cublasSetWorkspace (ps->blas, ps->blas_ws, cr->blas_ws_bytes), "setting the workspace");
    cr->n_slots = i + 1;
  }
  return TRUE;
}

/* Workspace, slots, input and logits for a batch of n. */
static gboolean
vim_cuda_ensure_batch (CudaRunner *cr, const VimModelConfig *c, int n, GError **error)
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
    vim_cuda_dev_free (cr, &cr->input, (size_t) cr->input_cap * img);
    cr->input_cap = 0;
    int cap = grow (0, n);
    if (!vim_cuda_dev_alloc (cr, &cr->input, cap * img, "the input batch", error)) {
      cap = n;
      g_clear_error (error);
      if (!vim_cuda_dev_alloc (cr, &cr->input, cap * img, "the input batch", error))
        return FALSE;
    }
    cr->input_cap = cap;
  }
  if (cr->logits_cap < n) {
    graphs_clear (cr);
    vim_cuda_dev_free (cr, (void **) &cr->logits, (size_t) cr->logits_cap * vim_cuda_out_per_image (c) * 4);
    cr->logits_cap = 0;
    int cap = grow (0, n);
    if (!vim_cuda_dev_alloc (cr, (void **) &cr->logits, (size_t) cap * vim_cuda_out_per_image (c) * 4,
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
  const cudaDataType t = vim_cuda_type (ab);
  if (batch == 1)
    CKB (cublasGemmEx (ps->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A, t, lda,
            B, t, ldb, &beta, C, vim_cuda_type (ct), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        what);
  else
    CKB (cublasGemmStridedBatchedEx (ps->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha,
            A, t, lda, sA, B, t, ldb, sB, &beta, C, vim_cuda_type (ct), ldc, sC, batch,
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
  float *logits = cr->logits + (size_t) i0 * vim_cuda_out_per_image (c);
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
  const gboolean seg = vim_cuda_is_segmenter (c);
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
      .sum_directions = 1,
      /* the last layer feeds only the class token to the head: each
       * direction stops there (mid-token: half the steps) */
      .steps = last && cls_only && cr->last_layer_steps
          ? MAX (c->cls_index + 1, L - c->cls_index) : 0,
    };
    if (l == 0) {
      cr->scan_whole = vimk_scan_whole (t.act, &sa);
      cr->scan_stream = vimk_scan_stream (t.act, &sa);
    }
    /* summed directions leave y_f + y_b in the forward half: the
     * projections then read its E columns with the first half of their
     * [W/2 | W/2] weights */
    const int ky = vimk_scan_sums_directions (t.act, &sa) ? E : 2 * E;
    CKK (vimk_scan (t.act, &sa, ps->scan_ws, ps->scan_ws_bytes, s), "selective scan");
    prof_mark (cr, ST_SCAN);
    if (seg && level < c->n_seg_layers && c->seg_layers[level] == l) {
      /* this block's mixer output, projected by the head: seg_h (+)= y W'^T */
      if (!gemm (cr, ps, t.act, c->seg_channels, rows, ky, w->seg_proj[level], 2 * E,
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
      if (!gemm (cr, ps, t.act, D, m, ky, ly->out_w, 2 * E,
              (const guint8 *) ps->xcy + (size_t) c->cls_index * 2 * E * cr->ts, L * 2 * E,
              ps->residual + (size_t) c->cls_index * D, VIMK_F32, L * D, 1.f,
              "out_proj (class token)", error))
        return FALSE;
    } else if (!gemm (cr, ps, t.act, D, rows, ky, ly->out_w, 2 * E, ps->xcy, 2 * E,
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
vim_cuda_run_forward (CudaRunner *cr, const VimModelConfig *c, int n, GError **error)
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

gboolean
vim_cuda_forward_frames (CudaRunner *cr, const VimModelConfig *c, const VimFrame *frames,
    int n, CUcontext caller, GError **error)
{
  return vim_cuda_ensure_batch (cr, c, n, error)
      && vim_cuda_enqueue_preprocess (cr, c, frames, n, caller, cr->t.in, cr->input, error)
      && vim_cuda_run_forward (cr, c, n, error);
}

gboolean
vim_cuda_sync_stream (CudaRunner *cr, GError **error)
{
  cudaError_t e = cudaStreamSynchronize (cr->stream);
  if (e != cudaSuccess)
    return vim_cuda_fail (error, e, "running the network");
  return TRUE;
}

/* Copies the n x out_per_image logits to the caller (synchronizes). */
static gboolean
vim_cuda_fetch_logits (CudaRunner *cr, const VimModelConfig *c, int n, float *logits, GError **error)
{
  size_t bytes = (size_t) n * vim_cuda_out_per_image (c) * 4;
  if (!vim_cuda_host_reserve (&cr->h_logits, &cr->h_logits_cap, bytes, error))
    return FALSE;
  CK (cudaMemcpyAsync (cr->h_logits, cr->logits, bytes, cudaMemcpyDeviceToHost, cr->stream),
      "copying the logits");
  if (!vim_cuda_sync_stream (cr, error))
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
  if (!vim_cuda_host_reserve (&cr->h_stage, &cr->h_stage_cap, chunk * 4, error))
    return FALSE;
  float *stage_dev = NULL;
  CK (cudaHostGetDevicePointer ((void **) &stage_dev, cr->h_stage, 0), "mapping pinned memory");
  for (size_t off = 0; off < total; off += chunk) {
    size_t cnt = MIN (chunk, total - off);
    if (off > 0 && !vim_cuda_sync_stream (cr, error))
      return FALSE;
    memcpy (cr->h_stage, input + off, cnt * 4);
    CK (vimk_convert_from_f32 (cr->t.in, (guint8 *) cr->input + off * cr->ts_in, stage_dev, cnt,
            cr->stream), "uploading the input");
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
  if (!vim_cuda_ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = FALSE;
  size_t bytes = (size_t) n * 3 * c->image_height * c->image_width * 4;
  void *out_dev = NULL;
  if (!vim_cuda_host_reserve (&cr->h_pre, &cr->h_pre_cap, bytes, error))
    goto out;
  if (cudaHostGetDevicePointer (&out_dev, cr->h_pre, 0) != cudaSuccess) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: cannot map pinned memory");
    goto out;
  }
  if (!vim_cuda_enqueue_preprocess (cr, c, frames, n, g.caller, VIMK_F32, out_dev, error))
    goto out;
  if (!vim_cuda_sync_stream (cr, error))
    goto out;
  memcpy (out, cr->h_pre, bytes);
  ok = TRUE;
out:
  vim_cuda_ctx_leave (&g);
  return ok;
}

static gboolean
cuda_forward (VimRunner *r, const float *input, int n, float *logits, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  CtxGuard g;
  if (!vim_cuda_ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = vim_cuda_ensure_batch (cr, c, n, error)
      && upload_input (cr, c, input, n, error)
      && vim_cuda_run_forward (cr, c, n, error)
      && vim_cuda_fetch_logits (cr, c, n, logits, error);
  vim_cuda_ctx_leave (&g);
  return ok;
}

static gboolean
cuda_classify (VimRunner *r, const VimFrame *frames, int n, float *logits, GError **error)
{
  CudaRunner *cr = r->impl;
  const VimModelConfig *c = &r->model->config;
  CtxGuard g;
  if (!vim_cuda_ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = vim_cuda_forward_frames (cr, c, frames, n, g.caller, error)
      && vim_cuda_fetch_logits (cr, c, n, logits, error);
  vim_cuda_ctx_leave (&g);
  return ok;
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
    vim_cuda_weights_release (model, cr->w);
}

static void
cuda_free (VimRunner *r)
{
  CudaRunner *cr = r->impl;
  if (cr == NULL)
    return;
  CtxGuard g;
  gboolean entered = vim_cuda_ctx_enter (cr, &g, NULL);
  if (entered) {
    cudaStreamSynchronize (cr->stream);
    runner_destroy (r->model, cr);
    vim_cuda_ctx_leave (&g);
  }
  if (cr->retained_primary) {
    CUdevice dev;
    if (vim_cuda_drv.device_get (&dev, cr->device) == CUDA_SUCCESS)
      vim_cuda_drv.release (dev);
  }
  g_free (cr);
  r->impl = NULL;
}

static const VimBackend cuda_backend = {
  .preprocess = cuda_preprocess,
  .forward = cuda_forward,
  .classify = cuda_classify,
  .segment = vim_cuda_runner_segment,
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
  if (vim_cuda_is_segmenter (c) && (c->num_classes > 256 || c->n_seg_layers < 1 || c->cls_index >= 0)) {
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
  if (!vim_cuda_dev_alloc (cr, &cr->blas_ws, cr->blas_ws_bytes, "the cuBLAS workspace", error))
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
    cr->w = vim_cuda_weights_upload (model, cr->ctx, r->options.precision, error);
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
  long long tokens = vim_cuda_env_int ("VIM_CUDA_PASS_TOKENS", 0);
  long long imgs;
  if (tokens > 0)
    imgs = tokens / c->seq_len;
  else if (c->seq_len <= 256)
    imgs = MAX (32768 / c->seq_len, MIN (256, 65536 / c->seq_len));
  else
    imgs = 32768 / c->seq_len;
  cr->pass_images = (int) CLAMP (imgs, 1, 4096);
  cr->scan_lanes = vim_cuda_env_int ("VIM_CUDA_SCAN_LANES", 0);
  cr->scan_chunks = vim_cuda_env_int ("VIM_CUDA_SCAN_CHUNKS", 0);
  cr->profile = vim_cuda_env_int ("VIM_CUDA_PROFILE", 0) != 0;
  cr->scan_poly = vim_cuda_env_int ("VIM_CUDA_SCAN_POLY", -1);
  /* VIM_CUDA_CONV_XPROJ=1: conv, gate and x_proj in one launch where the
   * kernel can (16-bit, sm_80+). Off by default: on an H200 it was 8% slower
   * at Vim-Ti 224 batch 256 and 18% at batch 1 than conv + cuBLAS x_proj
   * (bench/RESULTS.md, seventh session) */
  cr->conv_xproj = VIM_CUDA_MIN_SM >= 80 && vim_cuda_env_int ("VIM_CUDA_CONV_XPROJ", 0) != 0
      && vimk_conv_xproj_supported (cr->w->t.xz, cr->w->t.act, c->d_inner, c->d_conv,
          cr->w->ldd);
  /* SiLU(z) in the scan rather than the conv, which then neither reads nor
   * writes z (VIM_CUDA_GATE_IN_CONV=1: the conv gates, as before) */
  cr->gate_in_scan = !cr->conv_xproj && vim_cuda_env_int ("VIM_CUDA_GATE_IN_CONV", 0) == 0;
  cr->use_graphs = vim_cuda_env_int ("VIM_CUDA_GRAPHS", 1) != 0;
  cr->last_layer_steps = vim_cuda_env_int ("VIM_CUDA_LAST_STEPS", 1) != 0;
  cr->graphs = g_array_new (FALSE, TRUE, sizeof (GraphEntry));
  /* Most passes in flight at once (VIM_CUDA_PASS_STREAMS, default 2); one
   * when cuBLASLt's workspace is shared (VIM_CUDA_GEMM=lt|tuned) or stage
   * times are taken (VIM_CUDA_PROFILE) */
  cr->max_slots = (int) CLAMP (vim_cuda_env_int ("VIM_CUDA_PASS_STREAMS", 2), 1, MAX_PASS_SLOTS);
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
  if (!vim_cuda_driver_load (error))
    return FALSE;

  if (r->options.precision != VIM_PRECISION_FP32 && r->options.precision != VIM_PRECISION_FP16
      && r->options.precision != VIM_PRECISION_BF16) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "unknown precision %d", (int) r->options.precision);
    return FALSE;
  }
  CudaRunner *cr = g_new0 (CudaRunner, 1);
  cr->t = vim_cuda_types_for (r->options.precision);
  cr->ts = vimk_dtype_size (cr->t.act);
  cr->ts_in = vimk_dtype_size (cr->t.in);
  cr->ts_norm = vimk_dtype_size (cr->t.norm);
  cr->ts_xz = vimk_dtype_size (cr->t.xz);

  /* The device: the caller's current context when it is on the asked-for
   * device (or none was asked for), else that device's primary context. */
  CUcontext cur = NULL;
  if (vim_cuda_drv.get_current (&cur) != CUDA_SUCCESS)
    cur = NULL;
  int cur_dev = -1;
  if (cur) {
    CUdevice d;
    if (vim_cuda_drv.get_device (&d) == CUDA_SUCCESS)
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
    if (vim_cuda_drv.device_get (&dev, want) != CUDA_SUCCESS
        || vim_cuda_drv.retain (&cr->ctx, dev) != CUDA_SUCCESS) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE,
          "CUDA: cannot open device %d", want);
      g_free (cr);
      return FALSE;
    }
    cr->retained_primary = TRUE;
  }
  int major = 0, minor = 0;
  cudaError_t ae = cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, want);
  if (ae == cudaSuccess)
    ae = cudaDeviceGetAttribute (&minor, cudaDevAttrComputeCapabilityMinor, want);
  if (ae != cudaSuccess || major * 10 + minor < VIM_CUDA_MIN_SM) {
    if (ae != cudaSuccess) {
      cudaGetLastError ();
      vim_cuda_fail (error, ae, "reading the device's compute capability");
    } else {
      g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
          "CUDA device %d is sm_%d%d, older than this build's kernels (sm_%d)",
          want, major, minor, VIM_CUDA_MIN_SM);
    }
    if (cr->retained_primary) {
      CUdevice dev;
      if (vim_cuda_drv.device_get (&dev, want) == CUDA_SUCCESS)
        vim_cuda_drv.release (dev);
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
  if (!vim_cuda_ctx_enter (cr, &g, error)) {
    cuda_free (r);
    return FALSE;
  }
  gboolean ok = runner_setup (r, cr, error);
  vim_cuda_ctx_leave (&g);
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
  if (!vim_cuda_ctx_enter (cr, &g, error))
    return FALSE;
  gboolean ok = FALSE;
  double *times = NULL;
  cudaEvent_t ev[2] = { NULL, NULL };
  if (!vim_cuda_ensure_batch (cr, c, n, error))
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
    if (!vim_cuda_run_forward (cr, c, n, error) || !vim_cuda_sync_stream (cr, error))
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
        || !vim_cuda_run_forward (cr, c, n, error)
        || cudaEventRecord (ev[1], cr->stream) != cudaSuccess
        || !vim_cuda_sync_stream (cr, error)) {
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
      pok = vim_cuda_sync_stream (cr, error);
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
  vim_cuda_ctx_leave (&g);
  return ok;
}
