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
 * writes n * num_classes logits. */
gboolean vim_runner_forward (VimRunner *runner, const float *input, int n,
    float *logits, GError **error);

/* Preprocess + forward: n frames in, n * num_classes logits out (host). */
gboolean vim_runner_classify (VimRunner *runner, const VimFrame *frames, int n,
    float *logits, GError **error);

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
