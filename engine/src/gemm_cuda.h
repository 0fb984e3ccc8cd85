/* GEMMs of the CUDA runner through cuBLASLt: one plan (descriptors and
 * algorithm) per shape, the algorithm chosen once by timing cuBLASLt's
 * candidates on the runner's stream. Internal to the engine. */
#ifndef VIM_GEMM_CUDA_H
#define VIM_GEMM_CUDA_H

#include <glib.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "vimk/vimk.h"

G_BEGIN_DECLS

typedef struct _VimGemm VimGemm;

/* Row-major view, `batch` times (element strides sA, sB, sC between them):
 * C[n][m] (pitch ldc, type ct) = A[m][k] (pitch lda) x B[n][k]^T (pitch
 * ldb) + beta C, A and B of type ab, fp32 accumulation. */
typedef struct {
  VimkDType ab, ct;
  int m, n, k;
  const void *A;
  int lda;
  long long sA;
  const void *B;
  int ldb;
  long long sB;
  void *C;
  int ldc;
  long long sC;
  int batch;
  float beta;
} VimGemmArgs;

/* tune: how many of cuBLASLt's candidates to time for a new shape (0 = take
 * its first). workspace: device scratch of ws_bytes the GEMMs may use (the
 * caller keeps it; one stream at a time). */
VimGemm *vim_gemm_new (int tune, void *workspace, size_t ws_bytes, GError **error);
void vim_gemm_free (VimGemm *g);

/* Enqueues the GEMM on the stream. A shape seen for the first time while the
 * stream is not capturing a graph is tuned then (synchronizing the stream;
 * outputs with beta != 0 are timed on a scratch copy of C's size, whose
 * bytes *scratch_bytes reports for the caller's memory accounting). */
gboolean vim_gemm_run (VimGemm *g, cudaStream_t stream, const VimGemmArgs *a,
    size_t *scratch_bytes, const char *what, GError **error);

/* cuBLAS(Lt) status in words */
const char *vim_cublas_reason (cublasStatus_t s);

G_END_DECLS

#endif
