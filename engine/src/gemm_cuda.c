/* GEMMs through cuBLASLt with per-shape algorithm selection.
 *
 * cuBLAS's default choice for our shapes is made without timing and is
 * often far from the best for the skinny and small GEMMs of a Vim layer:
 * x_proj has N = 44-80 output columns, and at batch 1 every GEMM has ~200
 * rows, where launch shape, split-K and tile size decide the latency. So a
 * plan per shape asks cuBLASLt's heuristic for up to `tune` candidates and
 * times each once (the first forward of a runner runs eagerly, before any
 * graph is captured), keeping the fastest; graphs then replay it. */
#include "gemm_cuda.h"
#include "vim-private.h"

#include <cublasLt.h>
#include <string.h>

typedef struct {
  int ab, ct, m, n, k, lda, ldb, ldc, batch, beta_nonzero;
  long long sA, sB, sC;
  int align_a, align_b, align_c;
} GemmKey;

typedef struct {
  GemmKey key;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
} GemmPlan;

struct _VimGemm {
  cublasLtHandle_t lt;
  void *ws;
  size_t ws_bytes;
  int tune;
  GArray *plans;                /* GemmPlan */
};

const char *
vim_cublas_reason (cublasStatus_t s)
{
  switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS could not allocate (out of device memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "not supported on this GPU";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "kernel execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
  }
}

static gboolean
lt_fail (GError **error, cublasStatus_t s, const char *what, const char *step)
{
  g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "cuBLASLt: %s: %s: %s (status %d)", what,
      step, vim_cublas_reason (s), (int) s);
  return FALSE;
}

#define CKL(expr, step) \
  do { \
    cublasStatus_t s_ = (expr); \
    if (s_ != CUBLAS_STATUS_SUCCESS) \
      return lt_fail (error, s_, what, step); \
  } while (0)

static cudaDataType
lt_type (VimkDType t)
{
  return t == VIMK_F16 ? CUDA_R_16F : t == VIMK_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static size_t
dtype_bytes (VimkDType t)
{
  return t == VIMK_F32 ? 4 : 2;
}

/* the largest power of two up to 256 dividing the address */
static int
alignment (const void *p)
{
  uintptr_t v = (uintptr_t) p;
  int a = 1;
  while (a < 256 && (v & (uintptr_t) a) == 0)
    a <<= 1;
  return a;
}

VimGemm *
vim_gemm_new (int tune, void *workspace, size_t ws_bytes, GError **error)
{
  VimGemm *g = g_new0 (VimGemm, 1);
  cublasStatus_t s = cublasLtCreate (&g->lt);
  if (s != CUBLAS_STATUS_SUCCESS) {
    lt_fail (error, s, "creating a handle", "cublasLtCreate");
    g_free (g);
    return NULL;
  }
  g->ws = workspace;
  g->ws_bytes = ws_bytes;
  g->tune = CLAMP (tune, 0, 32);
  g->plans = g_array_new (FALSE, TRUE, sizeof (GemmPlan));
  return g;
}

static void
plan_clear (GemmPlan *p)
{
  if (p->la) cublasLtMatrixLayoutDestroy (p->la);
  if (p->lb) cublasLtMatrixLayoutDestroy (p->lb);
  if (p->lc) cublasLtMatrixLayoutDestroy (p->lc);
  if (p->op) cublasLtMatmulDescDestroy (p->op);
  memset (p, 0, sizeof *p);
}

void
vim_gemm_free (VimGemm *g)
{
  if (g == NULL)
    return;
  for (guint i = 0; i < g->plans->len; i++)
    plan_clear (&g_array_index (g->plans, GemmPlan, i));
  g_array_free (g->plans, TRUE);
  if (g->lt)
    cublasLtDestroy (g->lt);
  g_free (g);
}

static GemmKey
key_of (const VimGemmArgs *a)
{
  GemmKey k;
  memset (&k, 0, sizeof k);           /* padding too: keys compare with memcmp */
  k.ab = a->ab; k.ct = a->ct; k.m = a->m; k.n = a->n; k.k = a->k;
  k.lda = a->lda; k.ldb = a->ldb; k.ldc = a->ldc;
  k.batch = a->batch; k.beta_nonzero = a->beta != 0.f;
  k.sA = a->sA; k.sB = a->sB; k.sC = a->sC;
  k.align_a = alignment (a->A); k.align_b = alignment (a->B); k.align_c = alignment (a->C);
  return k;
}

static gboolean
layout (cublasLtMatrixLayout_t *l, VimkDType t, int rows, int cols, int ld, int batch,
    long long stride, const char *what, GError **error)
{
  CKL (cublasLtMatrixLayoutCreate (l, lt_type (t), rows, cols, ld), "a matrix layout");
  if (batch > 1) {
    int32_t bc = batch;
    int64_t st = stride;
    CKL (cublasLtMatrixLayoutSetAttribute (*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc,
            sizeof bc), "the batch count");
    CKL (cublasLtMatrixLayoutSetAttribute (*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
            &st, sizeof st), "the batch stride");
  }
  return TRUE;
}

/* Column-major, as cuBLASLt sees it: C (m x n, ldc) = op_T(A: k x m, lda) x
 * B (k x n, ldb). */
static gboolean
plan_describe (GemmPlan *p, const VimGemmArgs *a, const char *what, GError **error)
{
  CKL (cublasLtMatmulDescCreate (&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "the operation");
  const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
  CKL (cublasLtMatmulDescSetAttribute (p->op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA),
      "transposition");
  CKL (cublasLtMatmulDescSetAttribute (p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB),
      "transposition");
  return layout (&p->la, a->ab, a->k, a->m, a->lda, a->batch, a->sA, what, error)
      && layout (&p->lb, a->ab, a->k, a->n, a->ldb, a->batch, a->sB, what, error)
      && layout (&p->lc, a->ct, a->m, a->n, a->ldc, a->batch, a->sC, what, error);
}

static cublasStatus_t
launch (VimGemm *g, const GemmPlan *p, const cublasLtMatmulAlgo_t *algo, const VimGemmArgs *a,
    void *C, cudaStream_t stream)
{
  const float alpha = 1.f, beta = a->beta;
  return cublasLtMatmul (g->lt, p->op, &alpha, a->A, p->la, a->B, p->lb, &beta, C, p->lc,
      C, p->lc, algo, g->ws, g->ws_bytes, stream);
}

/* bytes spanned by C over its batches */
static size_t
c_span (const VimGemmArgs *a)
{
  size_t one = ((size_t) (a->n - 1) * a->ldc + a->m) * dtype_bytes (a->ct);
  return (size_t) MAX (a->batch - 1, 0) * a->sC * dtype_bytes (a->ct) + one;
}

/* Picks p->algo: cuBLASLt's first candidate, or with tuning the fastest of
 * its first g->tune, each timed over 3 runs after a warm-up. */
static gboolean
plan_choose (VimGemm *g, GemmPlan *p, const VimGemmArgs *a, cudaStream_t stream,
    gboolean may_time, size_t *scratch_bytes, const char *what, GError **error)
{
  cublasLtMatmulPreference_t pref;
  CKL (cublasLtMatmulPreferenceCreate (&pref), "a preference");
  uint64_t wsb = g->ws_bytes;
  uint32_t al[3] = { (uint32_t) p->key.align_a, (uint32_t) p->key.align_b, (uint32_t) p->key.align_c };
  const struct {
    cublasLtMatmulPreferenceAttributes_t attr;
    const void *value;
    size_t size;
  } prefs[] = {
    { CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb },
    { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0] },
    { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1] },
    { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2] },
    { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2] },
  };
  cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
  for (guint i = 0; i < G_N_ELEMENTS (prefs) && s == CUBLAS_STATUS_SUCCESS; i++)
    s = cublasLtMatmulPreferenceSetAttribute (pref, prefs[i].attr, prefs[i].value, prefs[i].size);
  cublasLtMatmulHeuristicResult_t res[32];
  int n = 0;
  const int want = may_time && g->tune > 0 ? g->tune : 1;
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulAlgoGetHeuristic (g->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, want,
        res, &n);
  cublasLtMatmulPreferenceDestroy (pref);
  CKL (s, "finding an algorithm");
  if (n <= 0)
    return lt_fail (error, CUBLAS_STATUS_NOT_SUPPORTED, what, "no algorithm for this shape");
  p->algo = res[0].algo;
  if (n == 1)
    return TRUE;

  /* time the candidates; beta != 0 outputs on a scratch buffer */
  void *C = a->C, *scratch = NULL;
  if (a->beta != 0.f) {
    size_t bytes = c_span (a);
    if (cudaMalloc (&scratch, bytes) != cudaSuccess) {
      cudaGetLastError ();
      return TRUE;                    /* no room to time: keep the first */
    }
    *scratch_bytes = MAX (*scratch_bytes, bytes);
    C = scratch;
  }
  cudaEvent_t e0 = NULL, e1 = NULL;
  float best = G_MAXFLOAT;
  int best_i = 0;
  if (cudaEventCreate (&e0) == cudaSuccess && cudaEventCreate (&e1) == cudaSuccess) {
    for (int i = 0; i < n; i++) {
      if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > g->ws_bytes)
        continue;
      gboolean ok = launch (g, p, &res[i].algo, a, C, stream) == CUBLAS_STATUS_SUCCESS
          && cudaEventRecord (e0, stream) == cudaSuccess;
      for (int r = 0; ok && r < 3; r++)
        ok = launch (g, p, &res[i].algo, a, C, stream) == CUBLAS_STATUS_SUCCESS;
      float ms = 0.f;
      ok = ok && cudaEventRecord (e1, stream) == cudaSuccess
          && cudaEventSynchronize (e1) == cudaSuccess
          && cudaEventElapsedTime (&ms, e0, e1) == cudaSuccess;
      if (!ok) {
        cudaGetLastError ();          /* a candidate that fails is skipped */
        continue;
      }
      if (ms < best) {
        best = ms;
        best_i = i;
      }
    }
  }
  if (e0) cudaEventDestroy (e0);
  if (e1) cudaEventDestroy (e1);
  cudaError_t e = cudaStreamSynchronize (stream);
  if (scratch)
    cudaFree (scratch);
  if (e != cudaSuccess) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_DEVICE, "CUDA: %s: timing GEMM algorithms: %s",
        what, cudaGetErrorString (e));
    return FALSE;
  }
  p->algo = res[best_i].algo;
  return TRUE;
}

gboolean
vim_gemm_run (VimGemm *g, cudaStream_t stream, const VimGemmArgs *a, size_t *scratch_bytes,
    const char *what, GError **error)
{
  if (a->m <= 0 || a->n <= 0 || a->k <= 0 || a->batch <= 0)
    return TRUE;
  const GemmKey key = key_of (a);
  GemmPlan *p = NULL;
  for (guint i = 0; i < g->plans->len && p == NULL; i++)
    if (memcmp (&g_array_index (g->plans, GemmPlan, i).key, &key, sizeof key) == 0)
      p = &g_array_index (g->plans, GemmPlan, i);
  if (p == NULL) {
    GemmPlan np;
    memset (&np, 0, sizeof np);
    np.key = key;
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing (stream, &cap) != cudaSuccess) {
      cudaGetLastError ();
      cap = cudaStreamCaptureStatusActive;
    }
    if (!plan_describe (&np, a, what, error)
        || !plan_choose (g, &np, a, stream, cap == cudaStreamCaptureStatusNone, scratch_bytes,
            what, error)) {
      plan_clear (&np);
      return FALSE;
    }
    g_array_append_val (g->plans, np);
    p = &g_array_index (g->plans, GemmPlan, g->plans->len - 1);
  }
  CKL (launch (g, p, &p->algo, a, a->C, stream), "running");
  return TRUE;
}
