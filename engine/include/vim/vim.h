/* gst-vim inference engine: the one public header.
 *
 * Applications, the GStreamer plugin and the tools include only this file.
 * It knows nothing of GStreamer: frames come in as plain pixel buffers
 * (host memory or a CUDA device pointer with a pitch), results go out as
 * plain arrays.
 *
 * Typical use:
 *
 *   VimModel *model = vim_model_open ("vim-ti.safetensors", &err);
 *   VimRunnerOptions opt;
 *   vim_runner_options_init (&opt);
 *   VimRunner *runner = vim_runner_new (model, &opt, &err);
 *   float *logits = g_new (float, n * vim_model_get_config (model)->num_classes);
 *   vim_runner_classify (runner, frames, n, logits, &err);
 *   vim_runner_free (runner);
 *   vim_model_unref (model);
 */
#ifndef VIM_VIM_H
#define VIM_VIM_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* ---- errors ------------------------------------------------------------ */

#define VIM_ERROR (vim_error_quark ())
GQuark vim_error_quark (void);

typedef enum {
  VIM_ERROR_IO,               /* the file cannot be opened, read or mapped */
  VIM_ERROR_FORMAT,           /* not a well-formed safetensors file */
  VIM_ERROR_MODEL,            /* well formed, but not a valid model (tensor, shape, dtype, metadata) */
  VIM_ERROR_INVALID_ARGUMENT, /* bad frame, batch size, option */
  VIM_ERROR_UNSUPPORTED,      /* not available in this build or on this device */
  VIM_ERROR_DEVICE,           /* GPU missing, driver too old, out of memory, kernel failure */
} VimError;

/* ---- model ------------------------------------------------------------- */

typedef enum {
  VIM_TASK_CLASSIFICATION,
  VIM_TASK_SEGMENTATION,
} VimTask;

/* How a frame is fitted to the model's input size. */
typedef enum {
  VIM_RESIZE_STRETCH,         /* resize both sides to the input size */
  VIM_RESIZE_LETTERBOX,       /* keep aspect, fit inside, pad with the mean colour */
  VIM_RESIZE_SHORT_SIDE_CROP, /* short side to input/crop_ratio, then centre crop (official eval) */
} VimResizePolicy;

#define VIM_MAX_SEG_LAYERS 8

typedef struct {
  const char *name;           /* model name from the file (variant) */
  VimTask task;
  int image_height, image_width;
  int in_chans;               /* 3 */
  int patch_size;             /* patch-embed kernel size (16) */
  int stride;                 /* patch-embed stride (16, or 8 for overlapping patches) */
  int grid_h, grid_w;         /* patch grid */
  int num_patches;            /* M = grid_h * grid_w */
  int seq_len;                /* L = M (+1 with a class token) */
  int cls_index;              /* sequence position of the class token, -1 when none */
  int embed_dim;              /* D */
  int depth;                  /* number of blocks */
  int d_state;                /* N */
  int expand;
  int d_inner;                /* E = expand * D */
  int d_conv;                 /* K */
  int dt_rank;                /* R */
  int num_classes;
  float norm_eps;
  float mean[3], std[3];      /* on [0,1] RGB */
  VimResizePolicy resize;
  float crop_ratio;           /* for VIM_RESIZE_SHORT_SIDE_CROP */
  /* segmentation models only (task == VIM_TASK_SEGMENTATION), else 0 */
  int n_seg_layers;           /* feature levels fed to the head (4) */
  int seg_layers[VIM_MAX_SEG_LAYERS]; /* block indices, ascending (5,11,17,23) */
  int seg_channels;           /* C_h, the head's hidden width */
  int ignore_index;           /* label id ignored in training and metrics, -1 = none */
} VimModelConfig;

typedef struct _VimModel VimModel;

/* Opens and fully validates a model file. The tensor data stays mapped. */
VimModel *vim_model_open (const char *path, GError **error);
VimModel *vim_model_ref (VimModel *model);
void vim_model_unref (VimModel *model);
const VimModelConfig *vim_model_get_config (const VimModel *model);
const char *vim_model_get_path (const VimModel *model);
/* Class label, or NULL when the model carries none for that id. */
const char *vim_model_get_label (const VimModel *model, int class_id);
/* Replaces the labels with those of a text file (one per line). */
gboolean vim_model_load_labels (VimModel *model, const char *path, GError **error);
/* Floats that vim_runner_forward writes per image: num_classes for a
 * classifier, num_classes * grid_h * grid_w for a segmenter (laid out
 * (K, grid_h, grid_w), token r*grid_w+c at (r, c)). */
size_t vim_model_output_size (const VimModel *model);

/* ---- frames ------------------------------------------------------------ */

typedef enum {
  VIM_PIXEL_RGB,
  VIM_PIXEL_RGBA,
  VIM_PIXEL_RGBX,
  VIM_PIXEL_BGR,
  VIM_PIXEL_BGRA,
  VIM_PIXEL_BGRX,
  VIM_PIXEL_NV12,
  VIM_PIXEL_I420,
  VIM_PIXEL_GRAY8,
} VimPixelFormat;

typedef enum {
  VIM_MEMORY_HOST,
  VIM_MEMORY_CUDA,            /* planes are device pointers in the current CUDA context */
} VimMemory;

/* One video frame. YUV formats are BT.601 limited range, as GStreamer's
 * default for SD and what decoders give unless colorimetry says otherwise. */
typedef struct {
  VimPixelFormat format;
  int width, height;
  const void *planes[3];      /* RGB-like and GRAY8: 1 plane; NV12: 2; I420: 3 */
  size_t strides[3];          /* bytes per row of each plane (the pitch for device memory) */
  VimMemory memory;
} VimFrame;

/* Number of planes a format has; 0 for an unknown format. */
int vim_pixel_format_n_planes (VimPixelFormat format);
const char *vim_pixel_format_name (VimPixelFormat format);

/* ---- runner ------------------------------------------------------------ */

typedef enum {
  VIM_DEVICE_CPU,
  VIM_DEVICE_CUDA,
} VimDevice;

typedef enum {
  VIM_PRECISION_FP32,
  VIM_PRECISION_FP16,
  VIM_PRECISION_BF16,
} VimPrecision;

typedef struct {
  VimDevice device;
  int cuda_device;            /* device index; -1 = the current / first device */
  VimPrecision precision;     /* CPU supports FP32 only */
  int num_threads;            /* CPU threads, 0 = all cores */
} VimRunnerOptions;

typedef struct _VimRunner VimRunner;

void vim_runner_options_init (VimRunnerOptions *options);

/* TRUE when this build has the CUDA backend and a usable GPU is present. */
gboolean vim_cuda_available (int *n_devices, GError **error);

/* A runner holds the weights on its device (shared by runners of the same
 * model on the same device) and scratch memory for one forward pass. */
VimRunner *vim_runner_new (VimModel *model, const VimRunnerOptions *options,
    GError **error);
void vim_runner_free (VimRunner *runner);
VimModel *vim_runner_get_model (VimRunner *runner);
VimDevice vim_runner_get_device (VimRunner *runner);

/* Preprocesses n frames with the model's policy into (n, 3, H, W) float,
 * normalized, in host memory. */
gboolean vim_runner_preprocess (VimRunner *runner, const VimFrame *frames,
    int n, float *out, GError **error);

/* Runs the network on preprocessed input (n, 3, H, W) in host memory and
 * writes n * vim_model_output_size() logits. */
gboolean vim_runner_forward (VimRunner *runner, const float *input, int n,
    float *logits, GError **error);

/* Preprocess + forward: n frames in, n * num_classes logits out (host). */
gboolean vim_runner_classify (VimRunner *runner, const VimFrame *frames, int n,
    float *logits, GError **error);

/* ---- segmentation ------------------------------------------------------ */

/* The size of the class map a segmenter returns. */
typedef enum {
  VIM_MASK_SIZE_GRID,         /* the model's token grid (grid_w x grid_h) */
  VIM_MASK_SIZE_FIXED,        /* VimMaskSpec.width x height */
  VIM_MASK_SIZE_FRAME,        /* one mask pixel per frame pixel of the mapped rectangle */
} VimMaskSizeMode;

typedef struct {
  VimMaskSizeMode mode;
  int width, height;          /* for VIM_MASK_SIZE_FIXED, 1 .. 16384 */
} VimMaskSpec;

/* Where a mask lies: its size, and the rectangle of the frame it covers, in
 * frame pixel coordinates (mask pixel (mx, my) covers frame x in
 * [x + mx * w / width, x + (mx + 1) * w / width), likewise y). For stretch
 * and letterbox that is the whole frame (letterbox borders are cut off); for
 * short-side crop it is the centre crop. */
typedef struct {
  int width, height;
  double x, y, w, h;
} VimMaskGeometry;

/* Mask size and mapping for a frame of frame_w x frame_h. FALSE (with error)
 * for a bad spec or a model that is not a segmenter. */
gboolean vim_model_mask_geometry (const VimModel *model, int frame_w,
    int frame_h, const VimMaskSpec *spec, VimMaskGeometry *out, GError **error);

/* Output buffers of one frame, allocated by the caller from the geometry.
 * The logits on the token grid are upsampled bilinearly (align_corners =
 * FALSE, as PyTorch's interpolate) to the mask, then reduced per pixel. */
typedef struct {
  VimMemory memory;           /* where classes and confidence live (CUDA: current context) */
  uint8_t *classes;           /* argmax class id per pixel (width x height) */
  size_t classes_stride;      /* bytes per row, >= width */
  uint8_t *confidence;        /* optional (NULL = not wanted): round(255 * max softmax prob) */
  size_t confidence_stride;
  float *fractions;           /* optional host array of num_classes: share of mask pixels per class */
  VimMaskGeometry geometry;   /* written by vim_runner_segment */
} VimSegResult;

/* Preprocess + forward + upsampling and argmax (on the GPU for CUDA runners)
 * for n frames; results[i] receives frame i's mask. */
gboolean vim_runner_segment (VimRunner *runner, const VimFrame *frames, int n,
    const VimMaskSpec *spec, VimSegResult *results, GError **error);

/* Host-side postprocessing of one image's logits (K, grid_h, grid_w), as
 * vim_runner_segment does it; for tools that hold logits already. */
gboolean vim_segment_logits (const VimModel *model, const float *logits,
    const VimMaskGeometry *geometry, VimSegResult *result, GError **error);

/* ---- drawing (used by overlays) --------------------------------------- */

typedef struct {
  float alpha;                /* 0 .. 1: weight of the class colour */
  const uint8_t *palette;     /* RGB triplets, n_palette of them; class c uses c % n_palette */
  int n_palette;
  const uint8_t *class_visible; /* num classes entries of 0/1, or NULL = all visible */
  int n_classes;              /* entries in class_visible */
  gboolean contours;          /* draw class boundaries opaque (alpha 1) */
} VimBlendOptions;

/* Blends a class mask (host or device memory, as mask_memory says) into a
 * frame, in place, over the frame rectangle the geometry names (nearest
 * mask pixel per frame pixel). The frame's planes are written: for
 * VIM_MEMORY_CUDA frames the blend runs in a kernel on cuda_stream (a
 * cudaStream_t, NULL = the default stream) in the current context and has
 * finished on return. Supported frame formats: RGB, RGBA, RGBX, BGR, BGRA,
 * BGRX, GRAY8 (luma only), NV12, I420 (YUV: BT.601 limited range; chroma
 * takes the mask value of the top-left luma pixel of its 2x2 block). */
gboolean vim_blend_mask (const VimFrame *frame, const uint8_t *mask,
    size_t mask_stride, VimMemory mask_memory, const VimMaskGeometry *geometry,
    const VimBlendOptions *options, void *cuda_stream, GError **error);

/* Composites a host image of premultiplied ARGB32 pixels (cairo's
 * CAIRO_FORMAT_ARGB32, native endian) at (x, y) onto a frame, clipped to
 * the frame; same formats and memory rules as vim_blend_mask. */
gboolean vim_blend_argb (const VimFrame *frame, const uint8_t *argb,
    int width, int height, size_t stride, int x, int y, void *cuda_stream,
    GError **error);

/* A default palette of 256 distinct RGB colours (CamVid's first 11, then
 * generated), 768 bytes. */
const uint8_t *vim_default_palette (void);

/* ---- postprocessing ---------------------------------------------------- */

typedef struct {
  int class_id;
  float score;
  const char *label;          /* owned by the model; may be NULL */
} VimClassScore;

/* Numerically stable softmax over n values. */
void vim_softmax (const float *logits, int n, float *probs);

/* The k best of n scores at or above threshold, best first; returns how
 * many were written to out (at most k). */
int vim_top_k (const VimModel *model, const float *scores, int n, int k,
    float threshold, VimClassScore *out);

G_END_DECLS

#endif /* VIM_VIM_H */
