/* Segmentation head after the projections (depthwise 3x3 conv + GELU, the
 * class GEMM's bias), and the per-pixel postprocessing of the logits
 * (bilinear upsampling, argmax, confidence, class histogram). */
#include "common.cuh"

using namespace vimk;

namespace {

/* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
__device__ __forceinline__ float gelu_tanh (float x)
{
  const float k = 0.7978845608028654f;
  return 0.5f * x * (1.f + tanhf (k * (x + 0.044715f * x * x * x)));
}

/* One thread per (token, channel) with channels fastest: neighbouring
 * threads read neighbouring floats of the same 9 tokens. */
template <typename T>
__global__ void seghead_conv_kernel (const float *__restrict__ h,
    const float *__restrict__ proj_b, const float *__restrict__ dw_w,
    const float *__restrict__ dw_b, int nseq, int gh, int gw, int C,
    T *__restrict__ out, float *__restrict__ logits,
    const float *__restrict__ cls_b, int K)
{
  const int M = gh * gw;
  const int64_t total = (int64_t) nseq * M * C;
  for (int64_t i = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; i < total;
       i += (int64_t) gridDim.x * blockDim.x) {
    const int ch = (int) (i % C);
    const int64_t row = i / C;              /* image b, token t */
    const int t = (int) (row % M);
    const int r = t / gw, c = t % gw;
    const float pb = proj_b[ch];
    const float *w = dw_w + (int64_t) ch * 9;
    float acc = dw_b[ch];
    for (int dy = -1; dy <= 1; dy++) {
      const int rr = r + dy;
      if (rr < 0 || rr >= gh)
        continue;
      for (int dx = -1; dx <= 1; dx++) {
        const int cc = c + dx;
        if (cc < 0 || cc >= gw)
          continue;
        /* the conv's input is the projection plus its bias; zero padding */
        const float x = h[(row + (int64_t) dy * gw + dx) * C + ch] + pb;
        acc = fmaf (w[(dy + 1) * 3 + dx + 1], x, acc);
      }
    }
    st (out + i, gelu_tanh (acc));
  }
  /* logits (nseq, K, M) start at the class bias; the class GEMM adds to them */
  const int64_t nl = (int64_t) nseq * K * M;
  for (int64_t i = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; i < nl;
       i += (int64_t) gridDim.x * blockDim.x)
    logits[i] = cls_b[(i / M) % K];
}

/* Where mask coordinate m lands on the token grid of n cells, as PyTorch's
 * bilinear interpolation with align_corners = False takes it: the source
 * position clamped to [0, n - 1], its floor i0, the next cell i1 (i0 at the
 * last cell) and the weight of i1. Clamping above n - 1 instead of reading
 * i0 twice with a weight gives the same value and keeps indices valid for
 * any geometry. */
__device__ __forceinline__ void grid_axis (int m, float scale, float offset,
    int n, int *i0, int *i1, float *l1)
{
  float s = ((float) m + 0.5f) * scale + offset;
  s = fminf (fmaxf (s, 0.f), (float) (n - 1));
  const int a = (int) s;
  *i0 = a;
  *i1 = a < n - 1 ? a + 1 : a;
  *l1 = s - (float) a;
}

/* Grid (blocks over pixels, images): each thread walks pixels of one image
 * with a grid stride; the block keeps a class histogram in shared memory
 * and adds it to the image's counts at the end. */
__global__ void seg_masks_kernel (const VimkSegMaskDesc *__restrict__ descs,
    int gh, int gw, int K)
{
  __shared__ unsigned int hist[256];
  const VimkSegMaskDesc d = descs[blockIdx.y];
  const int64_t npix = (int64_t) d.width * d.height;
  if ((int64_t) blockIdx.x * blockDim.x >= npix)
    return;                                 /* whole block: before any barrier */
  const bool counting = d.counts != NULL;
  if (counting) {
    for (int k = threadIdx.x; k < K; k += blockDim.x)
      hist[k] = 0;
    __syncthreads ();
  }
  const int M = gh * gw;
  for (int64_t p = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; p < npix;
       p += (int64_t) gridDim.x * blockDim.x) {
    const int my = (int) (p / d.width), mx = (int) (p - (int64_t) my * d.width);
    int x0, x1, y0, y1;
    float lx1, ly1;
    grid_axis (mx, d.gx_scale, d.gx_offset, gw, &x0, &x1, &lx1);
    grid_axis (my, d.gy_scale, d.gy_offset, gh, &y0, &y1, &ly1);
    const float lx0 = 1.f - lx1, ly0 = 1.f - ly1;
    const float *l00 = d.logits + y0 * gw + x0, *l01 = d.logits + y0 * gw + x1;
    const float *l10 = d.logits + y1 * gw + x0, *l11 = d.logits + y1 * gw + x1;
#define VIMK_SEG_VALUE(k) \
    (ly0 * (lx0 * l00[(int64_t) (k) * M] + lx1 * l01[(int64_t) (k) * M]) \
        + ly1 * (lx0 * l10[(int64_t) (k) * M] + lx1 * l11[(int64_t) (k) * M]))
    float best_v = VIMK_SEG_VALUE (0);
    int best = 0;
    if (d.confidence) {
      /* online softmax: sum of exp(v - running max), rescaled on a new max */
      float sum = 1.f;
      for (int k = 1; k < K; k++) {
        const float v = VIMK_SEG_VALUE (k);
        if (v > best_v) {                   /* strict: lowest index on ties */
          sum = sum * expf (best_v - v) + 1.f;
          best_v = v;
          best = k;
        } else {
          sum += expf (v - best_v);
        }
      }
      const float conf = floorf (255.f / sum + 0.5f);
      d.confidence[my * d.confidence_stride + mx] = (uint8_t) fminf (fmaxf (conf, 0.f), 255.f);
    } else {
      for (int k = 1; k < K; k++) {
        const float v = VIMK_SEG_VALUE (k);
        if (v > best_v) {
          best_v = v;
          best = k;
        }
      }
    }
#undef VIMK_SEG_VALUE
    d.classes[my * d.classes_stride + mx] = (uint8_t) best;
    if (counting)
      atomicAdd (&hist[best], 1u);
  }
  if (counting) {
    __syncthreads ();
    for (int k = threadIdx.x; k < K; k += blockDim.x)
      if (hist[k])
        atomicAdd (&d.counts[k], hist[k]);
  }
}

} // namespace

extern "C" cudaError_t
vimk_seghead_conv (VimkDType dt, const float *h, const float *proj_b,
    const float *dw_w, const float *dw_b, int nseq, int gh, int gw, int C,
    void *out, float *logits, const float *cls_b, int K, cudaStream_t stream)
{
  if (nseq <= 0)
    return cudaSuccess;
  if (gh <= 0 || gw <= 0 || C <= 0 || K <= 0)
    return cudaErrorInvalidValue;
  const int64_t work = (int64_t) nseq * gh * gw * (C > K ? C : K);
  const unsigned blocks = (unsigned) (cdiv (work, 256) < 65535 ? cdiv (work, 256) : 65535);
  VIMK_DISPATCH_DTYPE (dt, T,
      seghead_conv_kernel<T><<<blocks, 256, 0, stream>>> (h, proj_b, dw_w, dw_b,
          nseq, gh, gw, C, (T *) out, logits, cls_b, K));
  return cudaGetLastError ();
}

extern "C" cudaError_t
vimk_seg_masks (const VimkSegMaskDesc *descs, int n, int64_t max_pixels, int gh,
    int gw, int K, cudaStream_t stream)
{
  if (n <= 0 || max_pixels <= 0)
    return cudaSuccess;
  if (n > 65535 || gh <= 0 || gw <= 0 || K < 1 || K > 256)
    return cudaErrorInvalidValue;
  /* about 4 pixels per thread: the histogram flush is amortized, and a
   * 1080p mask still fills the GPU */
  const int64_t blocks = cdiv (max_pixels, 256 * 4);
  if (blocks > 0x7fffffff)
    return cudaErrorInvalidValue;
  dim3 grid ((unsigned) blocks, (unsigned) n);
  seg_masks_kernel<<<grid, 256, 0, stream>>> (descs, gh, gw, K);
  return cudaGetLastError ();
}
