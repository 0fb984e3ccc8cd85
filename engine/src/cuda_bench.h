/* Timing entry of the CUDA backend, for bench/ and tests/cuda only (not part
 * of the public API). */
#ifndef VIM_CUDA_BENCH_H
#define VIM_CUDA_BENCH_H

#include "vim-private.h"

G_BEGIN_DECLS

typedef struct {
  int batch;
  int iters;
  double median_ms, p99_ms, mean_ms, min_ms;   /* device time of one forward (graph replay) */
  size_t weight_bytes;        /* this runner's share: all device weights of (model, device, precision) */
  size_t act_bytes;           /* runner-owned device memory at the peak (workspace, input, logits, cuBLAS) */
  int pass_images, passes;    /* images per pass through the layers, passes per forward */
  int scan_lanes, scan_chunks; /* scan work split chosen for a full pass */
  gboolean scan_whole;        /* the scan ran whole chains in one launch (V5), not that split */
  gboolean scan_stream;       /* the scan streamed whole chains through shared memory (V6) */
  gboolean graphs;            /* replayed as a CUDA graph */
} VimCudaBenchResult;

/* Uploads a random normalized input batch of n images once, then times
 * forward passes over it on the device (no host copies): at least min_iters
 * and until max_seconds have passed or max_iters are done. */
gboolean vim_runner_cuda_bench (VimRunner *runner, int n, int min_iters,
    int max_iters, double max_seconds, VimCudaBenchResult *out, GError **error);

/* Device name of the runner's GPU. */
const char *vim_runner_cuda_device_name (VimRunner *runner);

G_END_DECLS

#endif
