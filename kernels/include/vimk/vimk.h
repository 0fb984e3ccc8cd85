/* gst-vim CUDA kernels behind a C ABI.
 *
 * Each function does one numeric job on raw device pointers, enqueues it on
 * the given stream and returns the launch status (cudaGetLastError). None of
 * them synchronizes, allocates or knows about model files; engine/ owns all
 * of that. Layouts are token-major: a sequence batch is `rows = nseq * L`
 * rows, row r = token r % L of sequence r / L.
 *
 * Activations have the runner's compute type (VimkDType: fp32, fp16, bf16);
 * the residual stream, the x_proj outputs, the scan state and every small
 * per-channel parameter are fp32.
 */
#ifndef VIMK_VIMK_H
#define VIMK_VIMK_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  VIMK_F32 = 0,
  VIMK_F16 = 1,
  VIMK_BF16 = 2,
} VimkDType;

size_t vimk_dtype_size (VimkDType dt);

/* ---- conversions ------------------------------------------------------ */

/* dst[i] = (dt) src[i]; src may be mapped pinned host memory. */
cudaError_t vimk_convert_from_f32 (VimkDType dt, void *dst, const float *src,
    size_t n, cudaStream_t stream);

/* ---- embedding -------------------------------------------------------- */

/* Patch embedding, part 1 (part 2 is a GEMM: residual += patches x Wp^T).
 * input: (nseq, 3, H, W) in dt. Writes
 *   patches[r][k], k = (c * P + py) * P + px, row r = token t of image b,
 *     patch j = gy * gw + gx sits at token t = j + (cls_index >= 0 && j >= cls_index);
 *     the class-token row is zero; row pitch ldp >= 3 P P (columns beyond 3PP untouched);
 *   residual[r][:] = pos[t] + (t == cls_index ? cls : patch_b)   (fp32, pitch D).
 * cls_index < 0: no class token (L = gh * gw). */
typedef struct {
  int nseq, H, W, P, stride, gh, gw, L, D, cls_index;
  const void *input;
  void *patches;
  int64_t ldp;
  float *residual;
  const float *pos;           /* (L, D) */
  const float *cls;           /* (D) or NULL */
  const float *patch_b;       /* (D) */
} VimkEmbedArgs;

cudaError_t vimk_embed_prepare (VimkDType dt, const VimkEmbedArgs *a,
    cudaStream_t stream);

/* ---- RMSNorm ---------------------------------------------------------- */

/* out[r][d] = x[r][d] * w[d] / sqrt(mean_d(x[r]^2) + eps); x fp32 (pitch ldx),
 * out in dt (pitch ldo). */
cudaError_t vimk_rmsnorm (VimkDType dt, const float *x, int64_t ldx,
    const float *w, void *out, int64_t ldo, int rows, int D, float eps,
    cudaStream_t stream);

/* Final norm and head preparation for nseq sequences:
 *   cls_index >= 0: feat[b] = RMSNorm(residual[b * L + cls_index]) * w
 *   cls_index <  0: feat[b] = mean_t RMSNorm(residual[b * L + t]) * w
 * feat in dt (nseq x D, pitch D); logits[b][:] = head_b (fp32, nseq x C):
 * the head GEMM then accumulates into logits with beta = 1. */
cudaError_t vimk_final_prepare (VimkDType dt, const float *residual, int nseq,
    int L, int D, int cls_index, const float *w, float eps, void *feat,
    float *logits, const float *head_b, int C, cudaStream_t stream);

/* ---- depthwise conv + SiLU, both directions, and the gate ------------- */

/* xz: rows x 2E in xz_dt, x = columns [0, E), z = [E, 2E).
 *   xc[r][c]     = silu(b_f[c] + sum_k w_f[c][k] x[t - (K-1) + k][c])   forward, causal
 *   xc[r][E + c] = silu(b_b[c] + sum_k w_b[c][k] x[t + (K-1) - k][c])   backward, anti-causal
 * (x outside [0, L) of the same sequence is 0), and z is replaced by silu(z)
 * in place. conv_w: [2][E][K] fp32, conv_b: [2][E] fp32. xc: rows x 2E.
 * Supported type pairs: (t, t) and (fp32, bf16). */
cudaError_t vimk_conv_gate (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, int K,
    cudaStream_t stream);
/* The conv and SiLU only: z stays as it is, for a scan with gate_silu = 1
 * (which reads z instead of silu(z): two fifths fewer bytes here). */
cudaError_t vimk_conv (VimkDType xz_dt, VimkDType xc_dt, const void *xz, void *xc,
    const float *conv_w, const float *conv_b, int nseq, int L, int E, int K,
    cudaStream_t stream);

/* The same conv, SiLU and gate, plus x_proj of both directions, in one launch
 * (kernels/src/conv_xproj.cu): besides xc and the gate it writes
 *   dbl[d][r][j] = sum_c xc[r][d*E + c] x_w[d][j][c]    j < ldd, fp32
 * with x_w [2][vimk_conv_xproj_columns(ldd)][E] in xc_dt (rows past the
 * model's zero). Needs compute capability >= 8.0, K = 4, E a multiple of 16
 * with E / 8 dividing 192, and 16-bit xc: type pairs (f16, f16), (bf16,
 * bf16), (fp32, bf16). */
int vimk_conv_xproj_supported (VimkDType xz_dt, VimkDType xc_dt, int E, int K, int ldd);
/* Rows per direction of that kernel's x_w: ldd rounded up to 16. */
int vimk_conv_xproj_columns (int ldd);
cudaError_t vimk_conv_xproj (VimkDType xz_dt, VimkDType xc_dt, void *xz, void *xc,
    const float *conv_w, const float *conv_b, const void *x_w, float *dbl, int ldd,
    int nseq, int L, int E, int K, cudaStream_t stream);

/* ---- bidirectional selective scan ------------------------------------- */

/* For each sequence, direction d (0 forward over t = 0..L-1, 1 backward over
 * t = L-1..0) and channel c, with u = xy[r][d*E + c] and per token
 * dbl[d][r] = (dt_low[0..R), pad, B at b_off .. +N, C at b_off+N .. +N):
 *   delta = softplus(dot(Wdt[d][c], dt_low) + bdt[d][c])        (threshold 20)
 *   h[n]  = exp2(delta * A2[d][c][n]) * h[n] + delta * u * B[n]
 *   y     = (sum_n C[n] h[n] + Dv[d][c] * u) * g,  g = gate[r][c], or silu(gate[r][c]) if gate_silu
 * and y replaces u in xy (out_proj then reads [y_f | y_b] with K = 2E), or,
 * where the directions are summed (sum_directions, vimk_scan_sums_directions),
 * y_f + y_b replaces the forward half's u and the backward half is
 * unspecified (out_proj reads K = E).
 * A2 = -exp(A_log) * log2(e). Wdt rows are padded to r_pad >= R floats.
 * The scan state is fp32 whatever the storage types. */
typedef struct {
  int nseq, L, E, N, R, r_pad;
  const float *dbl;           /* [2][nseq*L][ldd] */
  int ldd, b_off;
  const void *gate;           /* rows x ld_gate, gate_dtype */
  int64_t ld_gate;
  int gate_dtype;             /* VimkDType of gate, -1 = same as xy */
  int gate_silu;              /* 1: gate holds z, the scan applies SiLU (vimk_conv) */
  void *xy;                   /* rows x ld_xy, dt; in: u, out: y */
  int64_t ld_xy;
  const float *A2;            /* [2][E][N] */
  const float *Wdt;           /* [2][E][r_pad] */
  const float *bdt;           /* [2][E] */
  const float *Dv;            /* [2][E] */
  /* work split, 0 = choose (vimk_scan_plan): lanes per chain (1, 2, 4, 8 or
   * 16, at most N) and chunks of the sequence run in parallel (1 .. 64);
   * poly_exps: how many of a lane's exponentials go to a polynomial on the
   * FMA pipes (-1 = choose, 0 = all on the special-function unit). */
  int lanes, chunks;
  int poly_exps;
  /* kernel version (1-6; 0 = VIM_CUDA_SCAN_VERSION or vimk_scan's own
   * choice: V5 or V6, one launch of whole chains, for few chains or
   * mid-sized batches, else V4); a
   * version that cannot run these arguments falls back to an older one
   * (V5 and V6 to V4). V5 and V6 ignore lanes, and V6 chunks; V5 asked
   * for by version 5 takes chunks 1, 2 or 4 as the chunk groups of its
   * blocks (scan_whole_chunked) and otherwise chooses them. */
  int version;
  /* 0 = L; else each direction needs y only for its first `steps` tokens
   * in its own order (forward t < steps, backward t >= L - steps): the
   * chains may stop there, and y past them is unspecified (a classifier's
   * last layer, which reads only the class token) */
  int steps;
  /* scans that other streams run at the same time as this one (passes side
   * by side; 0 = none): vimk_scan's own choice takes V6 only without them */
  int concurrent;
  /* sum the directions into the forward half: 0 never, 1 where vimk_scan's
   * rule (or VIM_CUDA_SCAN_SUM=0|1) says so, 2 wherever the plan allows
   * (V4, one lane per chain, one chunk, steps = L); see
   * vimk_scan_sums_directions */
  int sum_directions;
} VimkScanArgs;

/* The work split vimk_scan uses for these sizes (R: dt_rank; lanes/chunks
 * 0 = choose). */
void vimk_scan_plan (int nseq, int L, int E, int N, int R, int lanes, int chunks,
    int *lanes_out, int *chunks_out);
/* Scratch vimk_scan needs for that many chunks (0 for one chunk). */
size_t vimk_scan_workspace_bytes (int nseq, int E, int N, int chunks);
/* cudaErrorInvalidValue when N, R, the types or the tuning are not
 * supported or the workspace is too small. */
cudaError_t vimk_scan (VimkDType dt, const VimkScanArgs *a, void *workspace,
    size_t workspace_bytes, cudaStream_t stream);
/* Whether vimk_scan runs these arguments with V5 (scan_whole.cu: a launch
 * of whole chains, one state per thread; no workspace). */
int vimk_scan_whole (VimkDType dt, const VimkScanArgs *a);
/* Whether vimk_scan runs these arguments with V6 (scan_stream.cu: a launch
 * of whole chains streamed through shared memory, two states per thread;
 * no workspace). */
int vimk_scan_stream (VimkDType dt, const VimkScanArgs *a);
/* Whether vimk_scan sums the directions for these arguments: y_f + y_b in
 * the forward half of xy, the backward half unspecified. */
int vimk_scan_sums_directions (VimkDType dt, const VimkScanArgs *a);
/* Whether vimk_scan supports this state size and rank. */
int vimk_scan_supported (int N, int R);

/* ---- preprocessing ---------------------------------------------------- */

typedef enum {
  VIMK_PIX_RGB = 0, VIMK_PIX_RGBA, VIMK_PIX_RGBX, VIMK_PIX_BGR, VIMK_PIX_BGRA,
  VIMK_PIX_BGRX, VIMK_PIX_NV12, VIMK_PIX_I420, VIMK_PIX_GRAY8,
} VimkPixelFormat;            /* same values as VimPixelFormat */

/* One frame (device pointers) and where the model's input pixels land in it
 * (docs/preprocessing.md): sx = (ox + 0.5) * scale_x + offset_x - 0.5. */
typedef struct {
  int format, width, height, pad_;
  const uint8_t *planes[3];
  int64_t strides[3];
  float scale_x, scale_y, offset_x, offset_y;
  int pad_x0, pad_x1, pad_y0, pad_y1;
} VimkFrameDesc;

/* descs: n descriptors in device (or mapped host) memory. out: n x 3 x H x W
 * in out_dt (VIMK_F32 may point to mapped host memory), plane order R, G, B,
 * v = (rgb / 255 - mean) / std computed as rgb * scale[c] + bias[c] with
 * scale = 1 / (255 std), bias = -mean / std. */
cudaError_t vimk_preprocess (const VimkFrameDesc *descs, int n, int H, int W,
    const float scale[3], const float bias[3], VimkDType out_dt, void *out,
    cudaStream_t stream);

/* ---- blending (overlays) ---------------------------------------------- */

/* A frame to draw on: device pointers, any pitch (format: VimkPixelFormat). */
typedef struct {
  int format, width, height, pad_;
  uint8_t *planes[3];
  int64_t strides[3];
} VimkBlendFrame;

/* A class-mask blend decided on the host (engine/src/blend.c): frame pixel
 * (x, y) in [x0, x1) x [y0, y1) has class c = mask[row_map[y]][col_map[x]];
 * when colour[c][3] != 0 each channel becomes
 *   (src * (2^32 - a) + colour[c][k] * a + 2^31) >> 32
 * with a = alpha32, or 2^32 on a contour (contours != 0 and c differs from
 * the class of the right or bottom neighbour inside the range). Channels:
 * RGB-like bytes 0..2 of each pixel, GRAY8 the byte, NV12/I420 Y per pixel
 * and U, V (colour[c][1], [2]) per 2x2 block from its top-left luma pixel
 * (when that pixel is in the range). mask, col_map and row_map: device. */
typedef struct {
  const uint8_t *mask;
  int64_t mask_stride;
  const int32_t *col_map;     /* frame width entries */
  const int32_t *row_map;     /* frame height entries */
  int x0, x1, y0, y1;
  uint8_t colour[256][4];
  uint64_t alpha32;
  int contours, pad_;
} VimkBlendMaskArgs;

cudaError_t vimk_blend_mask (const VimkBlendFrame *frame,
    const VimkBlendMaskArgs *args, cudaStream_t stream);

/* Premultiplied ARGB32 pixels (0xAARRGGBB words, device, pitch in pixels)
 * composited onto [x0, x1) x [y0, y1) of the frame (argb[0] lands on
 * (x0, y0)), integer arithmetic exactly as engine/src/blend.c's CPU loop;
 * YUV chroma per 2x2 block from the average of the block's in-frame pixels
 * (pixels outside the rectangle count as transparent). */
cudaError_t vimk_blend_argb (const VimkBlendFrame *frame, const uint32_t *argb,
    int64_t argb_pitch, int x0, int y0, int x1, int y1, cudaStream_t stream);

/* ---- segmentation head ------------------------------------------------ */

/* Head, part 2. Part 1 is the projection GEMMs h = sum_i W_i feat_i (fp32,
 * rows x C, no bias). For nseq images of gh x gw tokens (rows = nseq * gh *
 * gw, token t = y * gw + x of image b at row b * gh * gw + t):
 *   in[t][c]  = h[t][c] + proj_b[c]
 *   out[t][c] = gelu_tanh(dw_b[c] + sum_{i,j in 0..2} dw_w[c][i*3 + j] in[(y+i-1, x+j-1)][c])
 * with zero padding outside the grid; out in dt (rows x C, pitch C), and
 *   logits[b][k][t] = cls_b[k]   (fp32, (nseq, K, gh * gw))
 * so that the class GEMM accumulates into logits with beta = 1.
 * gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
cudaError_t vimk_seghead_conv (VimkDType dt, const float *h, const float *proj_b,
    const float *dw_w, const float *dw_b, int nseq, int gh, int gw, int C,
    void *out, float *logits, const float *cls_b, int K, cudaStream_t stream);

/* One image's mask. Mask pixel (mx, my) samples the token grid at
 *   gx = (mx + 0.5) * gx_scale + gx_offset,  gy likewise
 * (grid cell centres at integers), bilinearly as PyTorch's interpolate with
 * align_corners = False: the position clamped to [0, g - 1], floor i0,
 * i1 = min(i0 + 1, g - 1), weight of i1 = position - i0, and
 *   v_k = ly0 (lx0 l[y0][x0] + lx1 l[y0][x1]) + ly1 (lx0 l[y1][x0] + lx1 l[y1][x1]).
 * classes = argmax_k v_k (the lowest k on ties);
 * confidence = round(255 / sum_k exp(v_k - max v)) (the max softmax prob);
 * counts[classes] += 1 per pixel. */
typedef struct {
  int width, height;          /* mask pixels */
  float gx_scale, gx_offset, gy_scale, gy_offset;
  const float *logits;        /* (K, gh, gw) fp32 */
  uint8_t *classes;           /* device memory */
  int64_t classes_stride;     /* bytes per row */
  uint8_t *confidence;        /* NULL = not wanted */
  int64_t confidence_stride;
  uint32_t *counts;           /* K counters to add to (zeroed by the caller), NULL = none */
} VimkSegMaskDesc;

/* descs: n (<= 65535) descriptors in device memory; max_pixels: the largest
 * width * height among them; K <= 256. */
cudaError_t vimk_seg_masks (const VimkSegMaskDesc *descs, int n, int64_t max_pixels,
    int gh, int gw, int K, cudaStream_t stream);
/* ---- end of segmentation head ----------------------------------------- */

#ifdef __cplusplus
}
#endif

#endif /* VIMK_VIMK_H */
