/* gst-vim plugin: what every inference element shares.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_BASE_INFERENCE_H__
#define __GST_VIM_BASE_INFERENCE_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>
#include <vim/vim.h>

G_BEGIN_DECLS

/**
 * GstVimDevice:
 * @GST_VIM_DEVICE_AUTO: CUDA when the engine has it and a GPU is usable,
 *     else the CPU (with a warning)
 * @GST_VIM_DEVICE_CPU: the CPU backend
 * @GST_VIM_DEVICE_CUDA: the CUDA backend; failing to start it is an error
 */
typedef enum {
  GST_VIM_DEVICE_AUTO,
  GST_VIM_DEVICE_CPU,
  GST_VIM_DEVICE_CUDA,
} GstVimDevice;

#define GST_TYPE_VIM_DEVICE (gst_vim_device_get_type ())
GType gst_vim_device_get_type (void);

/**
 * GstVimPrecision:
 * @GST_VIM_PRECISION_FP32: 32-bit float everywhere
 * @GST_VIM_PRECISION_FP16: half precision weights and activations (CUDA)
 * @GST_VIM_PRECISION_BF16: bfloat16 weights and activations (CUDA)
 */
typedef enum {
  GST_VIM_PRECISION_FP32,
  GST_VIM_PRECISION_FP16,
  GST_VIM_PRECISION_BF16,
} GstVimPrecision;

#define GST_TYPE_VIM_PRECISION (gst_vim_precision_get_type ())
GType gst_vim_precision_get_type (void);

/**
 * GstVimResult:
 *
 * A reference-counted inference result. A subclass puts this first in its
 * own result struct and sets @free_func to free the whole struct; the base
 * class holds references while it attaches one result to several frames.
 */
typedef struct _GstVimResult GstVimResult;
struct _GstVimResult {
  gint ref_count;
  GDestroyNotify free_func;
};

gpointer gst_vim_result_init (gpointer result, GDestroyNotify free_func);
GstVimResult *gst_vim_result_ref (GstVimResult * result);
void gst_vim_result_unref (GstVimResult * result);

/**
 * GstVimResultState:
 * @frame_number: number of the frame being output, from 0 at start
 * @fresh: whether the result was computed on this frame
 * @age: frames since the frame the result was computed on (0 when fresh)
 *
 * How a result relates to the frame it is attached to.
 */
typedef struct {
  guint64 frame_number;
  gboolean fresh;
  guint age;
} GstVimResultState;

#define GST_TYPE_VIM_BASE_INFERENCE            (gst_vim_base_inference_get_type ())
#define GST_VIM_BASE_INFERENCE(obj)            (G_TYPE_CHECK_INSTANCE_CAST ((obj), GST_TYPE_VIM_BASE_INFERENCE, GstVimBaseInference))
#define GST_VIM_BASE_INFERENCE_CLASS(klass)    (G_TYPE_CHECK_CLASS_CAST ((klass), GST_TYPE_VIM_BASE_INFERENCE, GstVimBaseInferenceClass))
#define GST_VIM_BASE_INFERENCE_GET_CLASS(obj)  (G_TYPE_INSTANCE_GET_CLASS ((obj), GST_TYPE_VIM_BASE_INFERENCE, GstVimBaseInferenceClass))
#define GST_IS_VIM_BASE_INFERENCE(obj)         (G_TYPE_CHECK_INSTANCE_TYPE ((obj), GST_TYPE_VIM_BASE_INFERENCE))

typedef struct _GstVimBaseInference GstVimBaseInference;
typedef struct _GstVimBaseInferenceClass GstVimBaseInferenceClass;
typedef struct _GstVimBaseInferencePrivate GstVimBaseInferencePrivate;

/**
 * GstVimBaseInference:
 * @model: the model, between start and stop
 * @runner: the engine runner, between start and stop
 * @info: the negotiated video format
 *
 * In-place, never passthrough, transform that loads a model at
 * READY->PAUSED, runs it every `inference-interval` frames in batches of
 * `batch-size`, and hands each output buffer with its result to the
 * subclass.
 */
struct _GstVimBaseInference {
  GstBaseTransform parent;

  /*< protected >*/
  VimModel *model;
  VimRunner *runner;
  GstVideoInfo info;

  /*< private >*/
  GstVimBaseInferencePrivate *priv;
};

/**
 * GstVimBaseInferenceClass:
 * @task: the model task the element needs
 * @default_model: file name of the default model (see gstvimmodelpath.h);
 *     set before chaining up in class_init
 * @infer: runs the model on @n frames (mapped, host or device memory as
 *     each frame says) and stores @n new results in @results. Called with
 *     the element's CUDA context current when the runner is on CUDA.
 * @attach: attaches @result to the writable @buffer
 * @message: returns the body of the element message for @result (posted
 *     when `post-messages` is set), or %NULL
 */
struct _GstVimBaseInferenceClass {
  GstBaseTransformClass parent_class;

  VimTask task;
  const gchar *default_model;

  gboolean (*infer) (GstVimBaseInference * self, const VimFrame * frames,
      guint n, GstVimResult ** results, GError ** error);
  gboolean (*attach) (GstVimBaseInference * self, GstBuffer * buffer,
      GstVimResult * result, const GstVimResultState * state);
  GstStructure *(*message) (GstVimBaseInference * self, GstBuffer * buffer,
      GstVimResult * result, const GstVimResultState * state);
};

GType gst_vim_base_inference_get_type (void);

/* Subclasses number their own properties from here. */
#define GST_VIM_BASE_INFERENCE_N_PROPERTIES 100

void gst_vim_base_inference_class_install_properties (GstVimBaseInferenceClass * klass);

GstStructure *gst_vim_base_inference_new_message (GstVimBaseInference * self,
    const gchar * name, GstBuffer * buffer, const GstVimResultState * state);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GstVimBaseInference, gst_object_unref)

G_END_DECLS

#endif /* __GST_VIM_BASE_INFERENCE_H__ */
