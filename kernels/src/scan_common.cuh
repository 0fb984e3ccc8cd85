/* What the selective-scan kernels (scan.cu: V1-V3, scan_v4.cu: V4) share:
 * the launch parameters, the block shape, the tile length and the
 * transposing butterfly that sums a chain's partial outputs over its lanes. */
#ifndef VIMK_SCAN_COMMON_CUH
#define VIMK_SCAN_COMMON_CUH

#include "common.cuh"

namespace vimk {
namespace scan {

constexpr int kThreads = 128;

/* steps per staged tile: a multiple of G, small enough that the lanes' u and
 * gate prefetch registers stay few */
__host__ __device__ constexpr int tile_steps (int G) { return G >= 16 ? 16 : 8; }

struct ScanParams {
  VimkScanArgs a;
  int P, Tc;                    /* chunks, steps per chunk (multiple of TT) */
  float *summ;                  /* [nseq][2][P][E][N] end states */
  float *summS;                 /* [nseq][2][P][E] delta sums */
};

typedef void (*ScanFn) (ScanParams);

/* transposing butterfly over G lanes: lane g ends with sum over lanes of p[g] */
template <int G, int HALF>
__device__ __forceinline__ void butterfly (float *p, int g)
{
  if constexpr (HALF >= 1) {
    const bool upper = (g & HALF) != 0;
#pragma unroll
    for (int i = 0; i < HALF; i++) {
      float send = upper ? p[i] : p[i + HALF];
      float keep = upper ? p[i + HALF] : p[i];
      p[i] = keep + __shfl_xor_sync (0xffffffffu, send, HALF, G);
    }
    butterfly<G, HALF / 2> (p, g);
  }
}

/* V4 (scan_v4.cu): the kernel for this configuration, or nullptr when V4
 * has none (the caller then uses V3) */
ScanFn v4_kernel (bool summary, VimkDType dt, VimkDType gdt, int N, int G, int rv, int kp);
/* whether V4 can run these arguments (channels a multiple of 32, rows
 * aligned for its 4-16 byte copies) */
bool v4_fits (const VimkScanArgs *a, VimkDType dt, VimkDType gdt, int G);
/* its dynamic shared memory per block */
size_t v4_smem_bytes (VimkDType dt, VimkDType gdt, int G, int ldd);

} // namespace scan
} // namespace vimk

#endif
