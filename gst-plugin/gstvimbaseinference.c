/* gst-vim plugin: what every inference element shares.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:gstvimbaseinference
 * @title: GstVimBaseInference
 * @short_description: base class of the gst-vim inference elements
 *
 * An in-place #GstBaseTransform that never runs in passthrough: every output
 * buffer carries a result. It
 *
 * - opens the model and creates the engine runner at READY->PAUSED (NULL and
 *   READY need no model), and posts a RESOURCE error naming the file when
 *   the model is missing or invalid;
 * - picks the device (`device`, `cuda-device-id`, `precision`);
 * - joins the pipeline's CUDA context and reads `memory:CUDAMemory` frames
 *   in place on the GPU, with that context current around every engine call;
 * - runs the model every `inference-interval` frames and attaches the last
 *   result, marked stale with its age, to the frames in between;
 * - batches `batch-size` inferred frames per engine call, holding frames
 *   until the batch is full or EOS, a flush, a caps change or a drain comes,
 *   and adds the frames it holds to the LATENCY query;
 * - keeps every frame, in order, with its timestamps and flags, and keeps
 *   serialized events in order with the frames it holds.
 *
 * Subclasses set the model task and default model file in class_init and
 * implement infer(), attach() and message().
 */

#include "vim-build-config.h"
#include "gstvimbaseinference.h"
#include "gstvimframe.h"
#include "gstvimcudacontext.h"
#include "gstvimmodelpath.h"

#ifdef HAVE_GST_CUDA
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_vim_base_inference_debug);
#define GST_CAT_DEFAULT gst_vim_base_inference_debug

#define DEFAULT_DEVICE GST_VIM_DEVICE_AUTO
#define DEFAULT_CUDA_DEVICE_ID -1
#define DEFAULT_PRECISION GST_VIM_PRECISION_FP32
#define DEFAULT_INFERENCE_INTERVAL 1
#define DEFAULT_BATCH_SIZE 1
#define MAX_BATCH_SIZE 64
#define DEFAULT_POST_MESSAGES FALSE

enum
{
  PROP_0,
  PROP_MODEL_FILE,
  PROP_LABELS_FILE,
  PROP_DEVICE,
  PROP_CUDA_DEVICE_ID,
  PROP_PRECISION,
  PROP_INFERENCE_INTERVAL,
  PROP_BATCH_SIZE,
  PROP_POST_MESSAGES,
};

/* A frame (or a serialized event) held until its result is known. */
typedef struct
{
  GstBuffer *buffer;
  GstEvent *event;
  gboolean infer;               /* picked to run the model on */
  gboolean ready;               /* may be output */
  guint64 frame_number;
  GstVimResult *result;
  guint64 result_frame;
} HeldItem;

struct _GstVimBaseInferencePrivate
{
  /* properties, under the object lock */
  gchar *model_file;            /* NULL: the class's default model */
  gchar *labels_file;
  GstVimDevice device;
  gint cuda_device_id;
  GstVimPrecision precision;
  guint interval;
  guint batch_size;
  gboolean post_messages;

  /* set at start */
  VimRunnerOptions runner_options;
  guint active_batch_size;

  /* streaming thread */
  GQueue held;
  guint n_waiting;              /* held frames picked for inference, not yet run */
  guint64 n_frames;             /* frames received since start */
  guint since_inference;        /* frames since the last one picked */
  GstVimResult *last_result;
  guint64 last_result_frame;
  HeldItem *current;            /* the frame transform_ip attaches to */
  GstClockTime last_duration;

#ifdef HAVE_GST_CUDA
  GstCudaContext *cuda_ctx;     /* under the object lock for queries */
#endif
};

#define parent_class gst_vim_base_inference_parent_class
G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (GstVimBaseInference, gst_vim_base_inference,
    GST_TYPE_BASE_TRANSFORM);

/* ---- enums ------------------------------------------------------------ */

GType
gst_vim_device_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VIM_DEVICE_AUTO, "CUDA when available, else CPU", "auto"},
    {GST_VIM_DEVICE_CPU, "CPU", "cpu"},
    {GST_VIM_DEVICE_CUDA, "CUDA GPU", "cuda"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVimDevice", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_vim_precision_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VIM_PRECISION_FP32, "32-bit float", "fp32"},
    {GST_VIM_PRECISION_FP16, "16-bit float (CUDA only)", "fp16"},
    {GST_VIM_PRECISION_BF16, "bfloat16 (CUDA only)", "bf16"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVimPrecision", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ---- results ------------------------------------------------------------ */

gpointer
gst_vim_result_init (gpointer result, GDestroyNotify free_func)
{
  GstVimResult *r = result;

  r->ref_count = 1;
  r->free_func = free_func;
  return result;
}

GstVimResult *
gst_vim_result_ref (GstVimResult * result)
{
  g_atomic_int_inc (&result->ref_count);
  return result;
}

void
gst_vim_result_unref (GstVimResult * result)
{
  if (g_atomic_int_dec_and_test (&result->ref_count))
    result->free_func (result);
}

static void
held_item_free (HeldItem * item)
{
  gst_clear_buffer (&item->buffer);
  gst_clear_event (&item->event);
  g_clear_pointer (&item->result, gst_vim_result_unref);
  g_free (item);
}

static void
clear_held (GstVimBaseInference * self)
{
  GstVimBaseInferencePrivate *priv = self->priv;
  HeldItem *item;

  while ((item = g_queue_pop_head (&priv->held)))
    held_item_free (item);
  priv->n_waiting = 0;
}

static void
reset_stream (GstVimBaseInference * self)
{
  GstVimBaseInferencePrivate *priv = self->priv;

  clear_held (self);
  priv->since_inference = 0;
  g_clear_pointer (&priv->last_result, gst_vim_result_unref);
  priv->last_duration = GST_CLOCK_TIME_NONE;
}

/* ---- CUDA context ------------------------------------------------------- */

static gboolean
runner_on_cuda (GstVimBaseInference * self)
{
  return self->runner && vim_runner_get_device (self->runner) == VIM_DEVICE_CUDA;
}

/* Makes the element's CUDA context current, so that the engine (runtime
 * API) runs in the context the frames belong to. */
static void
cuda_push (GstVimBaseInference * self)
{
#ifdef HAVE_GST_CUDA
  if (self->priv->cuda_ctx)
    gst_cuda_context_push (self->priv->cuda_ctx);
#endif
}

static void
cuda_pop (GstVimBaseInference * self)
{
#ifdef HAVE_GST_CUDA
  if (self->priv->cuda_ctx)
    gst_cuda_context_pop (NULL);
#endif
}

static VimRunner *
create_runner (GstVimBaseInference * self, GError ** error)
{
  VimRunnerOptions options = self->priv->runner_options;
  VimRunner *runner;

#ifdef HAVE_GST_CUDA
  if (options.device == VIM_DEVICE_CUDA && self->priv->cuda_ctx) {
    guint device_id = 0;

    g_object_get (self->priv->cuda_ctx, "cuda-device-id", &device_id, NULL);
    options.cuda_device = (int) device_id;
  }
#endif
  cuda_push (self);
  runner = vim_runner_new (self->model, &options, error);
  cuda_pop (self);
  return runner;
}

static void
free_runner (GstVimBaseInference * self)
{
  if (!self->runner)
    return;
  cuda_push (self);
  g_clear_pointer (&self->runner, vim_runner_free);
  cuda_pop (self);
}

#ifdef HAVE_GST_CUDA
/* Frames of one CUDA context are not valid in another: when upstream's
 * memory belongs to a context we can't reach, the runner moves into it. */
static gboolean
use_cuda_context_of (GstVimBaseInference * self, GstCudaContext * ctx)
{
  GstVimBaseInferencePrivate *priv = self->priv;
  GError *err = NULL;
  VimRunner *runner;

  if (priv->cuda_ctx == ctx)
    return TRUE;
  if (priv->cuda_ctx && gst_cuda_context_can_access_peer (priv->cuda_ctx, ctx))
    return TRUE;

  GST_INFO_OBJECT (self, "frames come from CUDA context %" GST_PTR_FORMAT
      ", moving the runner into it", ctx);
  free_runner (self);
  GST_OBJECT_LOCK (self);
  gst_object_replace ((GstObject **) & priv->cuda_ctx, GST_OBJECT (ctx));
  GST_OBJECT_UNLOCK (self);

  runner = create_runner (self, &err);
  if (!runner) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
        ("Could not start the CUDA engine in the upstream CUDA context."),
        ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }
  self->runner = runner;
  return TRUE;
}
#endif

/* ---- model loading (READY -> PAUSED) ------------------------------------ */

static void
post_model_error (GstVimBaseInference * self, const gchar * path, GError * err)
{
  if (g_error_matches (err, VIM_ERROR, VIM_ERROR_IO)) {
    if (!g_file_test (path, G_FILE_TEST_EXISTS))
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Model file \"%s\" does not exist.", path), ("%s", err->message));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
          ("Could not read model file \"%s\": %s", path, err->message),
          ("%s", err->message));
  } else {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Model file \"%s\" is not a valid gst-vim model: %s", path,
            err->message), ("%s", err->message));
  }
}

static gboolean
open_model (GstVimBaseInference * self, const gchar * model_file,
    const gchar * labels_file)
{
  GstVimBaseInferenceClass *klass = GST_VIM_BASE_INFERENCE_GET_CLASS (self);
  GError *err = NULL;
  gchar *path;
  const VimModelConfig *cfg;

  if (model_file && *model_file) {
    path = g_strdup (model_file);
  } else {
    path = gst_vim_model_path_find (klass->default_model);
    if (!path) {
      gchar *where = gst_vim_model_path_describe_search (klass->default_model);

      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("No model: model-file is not set and the default model \"%s\" is "
              "not installed.", klass->default_model),
          ("looked for %s; set model-file to a gst-vim model", where));
      g_free (where);
      return FALSE;
    }
  }

  GST_DEBUG_OBJECT (self, "opening model %s", path);
  self->model = vim_model_open (path, &err);
  if (!self->model) {
    post_model_error (self, path, err);
    g_clear_error (&err);
    g_free (path);
    return FALSE;
  }

  cfg = vim_model_get_config (self->model);
  if (cfg->task != klass->task) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Model file \"%s\" is a %s model; %s needs a %s model.", path,
            cfg->task == VIM_TASK_SEGMENTATION ? "segmentation" :
            "classification", GST_ELEMENT_NAME (self),
            klass->task == VIM_TASK_SEGMENTATION ? "segmentation" :
            "classification"), (NULL));
    g_free (path);
    return FALSE;
  }
  g_free (path);

  if (labels_file && *labels_file &&
      !vim_model_load_labels (self->model, labels_file, &err)) {
    if (!g_file_test (labels_file, G_FILE_TEST_EXISTS))
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Labels file \"%s\" does not exist.", labels_file),
          ("%s", err->message));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
          ("Could not use labels file \"%s\": %s", labels_file, err->message),
          ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }

  GST_INFO_OBJECT (self, "model %s: %dx%d input, %d classes", cfg->name,
      cfg->image_width, cfg->image_height, cfg->num_classes);
  return TRUE;
}

static const gchar *
precision_name (GstVimPrecision precision)
{
  GEnumValue *v = g_enum_get_value (g_type_class_peek (GST_TYPE_VIM_PRECISION),
      precision);

  return v ? v->value_nick : "?";
}

/* Decides CPU or CUDA. Returns FALSE (error posted) when the choice can't
 * be honoured. */
static gboolean
choose_device (GstVimBaseInference * self, GstVimDevice device,
    gint cuda_device_id, GstVimPrecision precision, VimRunnerOptions * options)
{
  GError *err = NULL;
  int n_devices = 0;
  gboolean cuda_ok;

  vim_runner_options_init (options);
  options->precision = (VimPrecision) precision;
  options->cuda_device = cuda_device_id;

  if (device == GST_VIM_DEVICE_CPU) {
    options->device = VIM_DEVICE_CPU;
    return TRUE;
  }

  cuda_ok = vim_cuda_available (&n_devices, &err);
  if (cuda_ok && cuda_device_id >= n_devices) {
    cuda_ok = FALSE;
    g_clear_error (&err);
    g_set_error (&err, VIM_ERROR, VIM_ERROR_DEVICE,
        "cuda-device-id is %d but there are %d CUDA devices", cuda_device_id,
        n_devices);
  }

  if (cuda_ok) {
    options->device = VIM_DEVICE_CUDA;
    return TRUE;
  }

  if (device == GST_VIM_DEVICE_CUDA) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
        ("device=cuda but no usable CUDA device: %s",
            err ? err->message : "vim_cuda_available() said no"),
        ("%s", err ? err->message : "vim_cuda_available() said no"));
    g_clear_error (&err);
    return FALSE;
  }

  /* auto: fall back to the CPU, which computes in fp32 */
  if (precision != GST_VIM_PRECISION_FP32) {
    GST_ELEMENT_WARNING (self, LIBRARY, INIT,
        ("No usable CUDA device, running on the CPU in fp32 instead of %s.",
            precision_name (precision)),
        ("%s", err ? err->message : "vim_cuda_available() said no"));
    options->precision = VIM_PRECISION_FP32;
  } else {
    GST_ELEMENT_WARNING (self, LIBRARY, INIT,
        ("No usable CUDA device, running on the CPU."),
        ("%s", err ? err->message : "vim_cuda_available() said no"));
  }
  options->device = VIM_DEVICE_CPU;
  g_clear_error (&err);
  return TRUE;
}

static gboolean
gst_vim_base_inference_start (GstBaseTransform * trans)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVimBaseInferencePrivate *priv = self->priv;
  gchar *model_file, *labels_file;
  GstVimDevice device;
  GstVimPrecision precision;
  gint cuda_device_id;
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  model_file = g_strdup (priv->model_file);
  labels_file = g_strdup (priv->labels_file);
  device = priv->device;
  cuda_device_id = priv->cuda_device_id;
  precision = priv->precision;
  priv->active_batch_size = priv->batch_size;
  GST_OBJECT_UNLOCK (self);

  if (!open_model (self, model_file, labels_file))
    goto failed;

  if (!choose_device (self, device, cuda_device_id, precision,
          &priv->runner_options))
    goto failed;

#ifdef HAVE_GST_CUDA
  /* Join (or create and share) the pipeline's CUDA context before the
   * decoder upstream opens, so that both use the same one. */
  if (priv->runner_options.device == VIM_DEVICE_CUDA) {
    if (!gst_cuda_load_library ()) {
      GST_INFO_OBJECT (self, "GStreamer CUDA library not usable, the engine "
          "runs in its own context and reads system memory only");
    } else if (!gst_cuda_ensure_element_context (GST_ELEMENT (self),
            cuda_device_id, &priv->cuda_ctx)) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Could not create a CUDA context on device %d.", cuda_device_id),
          (NULL));
      goto failed;
    }
  }
#endif

  self->runner = create_runner (self, &err);
  if (!self->runner) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
        ("Could not start the %s engine: %s",
            priv->runner_options.device == VIM_DEVICE_CUDA ? "CUDA" : "CPU",
            err->message), ("%s", err->message));
    g_clear_error (&err);
    goto failed;
  }

  GST_INFO_OBJECT (self, "running on %s, %s, batch %u",
      runner_on_cuda (self) ? "CUDA" : "CPU",
      precision_name ((GstVimPrecision) priv->runner_options.precision),
      priv->active_batch_size);

  priv->n_frames = 0;
  reset_stream (self);
  g_free (model_file);
  g_free (labels_file);
  return TRUE;

failed:
  g_free (model_file);
  g_free (labels_file);
  free_runner (self);
  g_clear_pointer (&self->model, vim_model_unref);
#ifdef HAVE_GST_CUDA
  GST_OBJECT_LOCK (self);
  gst_clear_object (&priv->cuda_ctx);
  GST_OBJECT_UNLOCK (self);
#endif
  return FALSE;
}

static gboolean
gst_vim_base_inference_stop (GstBaseTransform * trans)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);

  reset_stream (self);
  free_runner (self);
  g_clear_pointer (&self->model, vim_model_unref);
#ifdef HAVE_GST_CUDA
  GST_OBJECT_LOCK (self);
  gst_clear_object (&self->priv->cuda_ctx);
  GST_OBJECT_UNLOCK (self);
#endif
  return TRUE;
}

/* ---- caps -------------------------------------------------------------- */

static GstCaps *
gst_vim_base_inference_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstCaps *ret = gst_caps_copy (caps);
  gint i;

  /* Once the runner is on the CPU, CUDA memory would only be downloaded:
   * let upstream give system memory instead. */
  if (self->runner && !runner_on_cuda (self)) {
    for (i = gst_caps_get_size (ret) - 1; i >= 0; i--) {
      GstCapsFeatures *f = gst_caps_get_features (ret, i);

      if (f && gst_caps_features_contains (f, "memory:CUDAMemory"))
        gst_caps_remove_structure (ret, i);
    }
  }

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, ret,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (ret);
    ret = tmp;
  }
  GST_LOG_OBJECT (self, "%" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT, caps, ret);
  return ret;
}

static gboolean
gst_vim_base_inference_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVideoInfo info;
  VimPixelFormat pf;

  if (!gst_video_info_from_caps (&info, incaps) ||
      !gst_vim_pixel_format_from_video (GST_VIDEO_INFO_FORMAT (&info), &pf)) {
    GST_ERROR_OBJECT (self, "unusable caps %" GST_PTR_FORMAT, incaps);
    return FALSE;
  }
  /* the latency query reads the frame rate from another thread */
  GST_OBJECT_LOCK (self);
  self->info = info;
  GST_OBJECT_UNLOCK (self);
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, incaps);
  return TRUE;
}

/* ---- running the model ------------------------------------------------- */

static gboolean
map_frame (GstVimBaseInference * self, GstBuffer * buffer,
    GstVideoFrame * vframe, VimFrame * frame)
{
  GstMapFlags flags = GST_MAP_READ;
  VimMemory memory = VIM_MEMORY_HOST;

#ifdef HAVE_GST_CUDA
  if (runner_on_cuda (self) && gst_buffer_n_memory (buffer) > 0) {
    GstMemory *mem = gst_buffer_peek_memory (buffer, 0);

    if (gst_is_cuda_memory (mem)) {
      if (!use_cuda_context_of (self, GST_CUDA_MEMORY_CAST (mem)->context))
        return FALSE;
      flags |= GST_MAP_CUDA;
      memory = VIM_MEMORY_CUDA;
    }
  }
#endif

  if (!gst_video_frame_map (vframe, &self->info, buffer, flags)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map a video frame."),
        ("frame %" GST_PTR_FORMAT, buffer));
    return FALSE;
  }
  gst_vim_frame_from_video_frame (vframe, memory, frame);
  return TRUE;
}

/* Gives every held item that has none its result: the new ones to the
 * frames picked for inference, the last one to the frames between. */
static void
resolve_held (GstVimBaseInference * self, GstVimResult ** results, guint n)
{
  GstVimBaseInferencePrivate *priv = self->priv;
  GList *l;
  guint j = 0;

  for (l = priv->held.head; l; l = l->next) {
    HeldItem *item = l->data;

    if (item->ready)
      continue;
    item->ready = TRUE;
    if (!item->buffer)
      continue;
    if (item->infer) {
      g_assert (j < n);
      g_clear_pointer (&priv->last_result, gst_vim_result_unref);
      priv->last_result = results[j];
      results[j++] = NULL;
      priv->last_result_frame = item->frame_number;
    }
    g_assert (priv->last_result != NULL);
    item->result = gst_vim_result_ref (priv->last_result);
    item->result_frame = priv->last_result_frame;
  }
  g_assert (j == n);
}

/* Runs the model on the frames picked so far (a full or partial batch) and
 * resolves every held frame. */
static GstFlowReturn
run_batch (GstVimBaseInference * self)
{
  GstVimBaseInferenceClass *klass = GST_VIM_BASE_INFERENCE_GET_CLASS (self);
  GstVimBaseInferencePrivate *priv = self->priv;
  guint n = priv->n_waiting, n_mapped = 0, i;
  GstVideoFrame *vframes;
  VimFrame *frames;
  GstVimResult **results;
  GError *err = NULL;
  gboolean ok = TRUE;
  guint64 first = 0;
  GList *l;

  if (n == 0) {
    resolve_held (self, NULL, 0);
    return GST_FLOW_OK;
  }

  vframes = g_new0 (GstVideoFrame, n);
  frames = g_new0 (VimFrame, n);
  results = g_new0 (GstVimResult *, n);

  for (l = priv->held.head; l && n_mapped < n; l = l->next) {
    HeldItem *item = l->data;

    if (item->ready || !item->buffer || !item->infer)
      continue;
    if (n_mapped == 0)
      first = item->frame_number;
    if (!map_frame (self, item->buffer, &vframes[n_mapped], &frames[n_mapped])) {
      ok = FALSE;
      break;
    }
    n_mapped++;
  }

  if (ok) {
    GST_LOG_OBJECT (self, "running the model on %u frames from %"
        G_GUINT64_FORMAT, n, first);
    cuda_push (self);
    ok = klass->infer (self, frames, n, results, &err);
    cuda_pop (self);
    if (!ok) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED,
          ("Inference failed on frames %" G_GUINT64_FORMAT " to %"
              G_GUINT64_FORMAT ".", first, first + n - 1),
          ("%s", err ? err->message : "no reason given"));
      g_clear_error (&err);
    }
  }

  for (i = 0; i < n_mapped; i++)
    gst_video_frame_unmap (&vframes[i]);

  if (ok) {
    resolve_held (self, results, n);
    priv->n_waiting = 0;
  }
  for (i = 0; i < n; i++)
    g_clear_pointer (&results[i], gst_vim_result_unref);
  g_free (results);
  g_free (frames);
  g_free (vframes);

  return ok ? GST_FLOW_OK : GST_FLOW_ERROR;
}

static GstFlowReturn
gst_vim_base_inference_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVimBaseInferencePrivate *priv = self->priv;
  GstFlowReturn ret;
  GstBuffer *buffer;
  HeldItem *item;
  guint interval;

  /* negotiation and QoS (dropping late frames when qos=true) */
  ret = GST_BASE_TRANSFORM_CLASS (parent_class)->submit_input_buffer (trans,
      is_discont, input);
  if (ret != GST_FLOW_OK)
    return ret;
  buffer = trans->queued_buf;
  trans->queued_buf = NULL;
  if (!buffer)
    return GST_FLOW_OK;

  GST_OBJECT_LOCK (self);
  interval = priv->interval;
  GST_OBJECT_UNLOCK (self);

  if (GST_BUFFER_DURATION_IS_VALID (buffer))
    priv->last_duration = GST_BUFFER_DURATION (buffer);

  item = g_new0 (HeldItem, 1);
  item->buffer = buffer;
  item->frame_number = priv->n_frames++;
  if (priv->since_inference >= interval)
    priv->since_inference = 0;
  item->infer = priv->since_inference == 0 ||
      (priv->last_result == NULL && priv->n_waiting == 0);
  priv->since_inference = item->infer ? 1 : priv->since_inference + 1;
  if (priv->since_inference >= interval)
    priv->since_inference = 0;

  g_queue_push_tail (&priv->held, item);
  if (item->infer)
    priv->n_waiting++;

  GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT " pts %" GST_TIME_FORMAT
      " %s, %u waiting", item->frame_number,
      GST_TIME_ARGS (GST_BUFFER_PTS (buffer)),
      item->infer ? "to infer" : "skipped", priv->n_waiting);

  if (priv->n_waiting >= priv->active_batch_size || priv->n_waiting == 0)
    ret = run_batch (self);
  return ret;
}

/* Outputs the next held frame whose result is known, forwarding the events
 * held before it. */
static GstFlowReturn
gst_vim_base_inference_generate_output (GstBaseTransform * trans,
    GstBuffer ** outbuf)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVimBaseInferencePrivate *priv = self->priv;
  HeldItem *item;
  GstFlowReturn ret;

  *outbuf = NULL;
  while ((item = g_queue_peek_head (&priv->held)) && item->ready) {
    g_queue_pop_head (&priv->held);

    if (item->event) {
      GstEvent *event = g_steal_pointer (&item->event);

      held_item_free (item);
      GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
      continue;
    }

    priv->current = item;
    trans->queued_buf = g_steal_pointer (&item->buffer);
    /* prepare_output_buffer (makes the buffer writable) + transform_ip */
    ret = GST_BASE_TRANSFORM_CLASS (parent_class)->generate_output (trans,
        outbuf);
    priv->current = NULL;
    held_item_free (item);
    return ret;
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_vim_base_inference_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVimBaseInferenceClass *klass = GST_VIM_BASE_INFERENCE_GET_CLASS (self);
  GstVimBaseInferencePrivate *priv = self->priv;
  HeldItem *item = priv->current;
  GstVimResultState state;
  gboolean post;

  g_return_val_if_fail (item != NULL && item->result != NULL, GST_FLOW_ERROR);

  state.frame_number = item->frame_number;
  state.fresh = item->infer;
  state.age = (guint) (item->frame_number - item->result_frame);

  if (!klass->attach (self, buf, item->result, &state)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Could not attach the result to frame %" G_GUINT64_FORMAT ".",
            state.frame_number), (NULL));
    return GST_FLOW_ERROR;
  }

  GST_OBJECT_LOCK (self);
  post = priv->post_messages;
  GST_OBJECT_UNLOCK (self);
  if (post && klass->message) {
    GstStructure *s = klass->message (self, buf, item->result, &state);

    if (s)
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self), s));
  }
  return GST_FLOW_OK;
}

/* Runs what is waiting and pushes every held frame and event. */
static GstFlowReturn
drain (GstVimBaseInference * self)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstFlowReturn ret;

  if (g_queue_is_empty (&self->priv->held))
    return GST_FLOW_OK;

  GST_DEBUG_OBJECT (self, "draining %u held items (%u to infer)",
      g_queue_get_length (&self->priv->held), self->priv->n_waiting);
  ret = run_batch (self);
  while (ret == GST_FLOW_OK) {
    GstBuffer *out = NULL;

    ret = gst_vim_base_inference_generate_output (trans, &out);
    if (!out)
      break;
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref (out);
      break;
    }
    ret = gst_pad_push (trans->srcpad, out);
  }
  if (ret != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (self, "drain stopped: %s", gst_flow_get_name (ret));
    clear_held (self);
  }
  return ret;
}

/* ---- events and queries ------------------------------------------------- */

static gboolean
gst_vim_base_inference_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVimBaseInferencePrivate *priv = self->priv;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
      /* held frames are flushed like everything downstream */
      GST_DEBUG_OBJECT (self, "flush: dropping %u held items",
          g_queue_get_length (&priv->held));
      reset_stream (self);
      break;
    case GST_EVENT_EOS:
    case GST_EVENT_CAPS:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_STREAM_START:
    case GST_EVENT_GAP:
    case GST_EVENT_SEGMENT_DONE:
    case GST_EVENT_STREAM_GROUP_DONE:
      /* the held frames belong to what went before: a partial batch */
      if (drain (self) != GST_FLOW_OK &&
          GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
        /* the error is posted; let EOS through so the pipeline ends */
      }
      if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS)
        priv->since_inference = 0;
      break;
    default:
      if (GST_EVENT_IS_SERIALIZED (event) && !g_queue_is_empty (&priv->held)) {
        HeldItem *item = g_new0 (HeldItem, 1);

        GST_LOG_OBJECT (self, "holding %" GST_PTR_FORMAT " behind %u items",
            event, g_queue_get_length (&priv->held));
        item->event = event;
        /* ready as soon as everything before it is */
        item->ready = FALSE;
        g_queue_push_tail (&priv->held, item);
        return TRUE;
      }
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstClockTime
held_latency (GstVimBaseInference * self)
{
  GstVimBaseInferencePrivate *priv = self->priv;
  guint batch, interval;
  guint64 frames;
  GstClockTime duration = GST_CLOCK_TIME_NONE;

  GST_OBJECT_LOCK (self);
  batch = self->runner ? priv->active_batch_size : priv->batch_size;
  interval = priv->interval;
  if (GST_VIDEO_INFO_FPS_N (&self->info) > 0)
    duration = gst_util_uint64_scale_int (GST_SECOND,
        GST_VIDEO_INFO_FPS_D (&self->info), GST_VIDEO_INFO_FPS_N (&self->info));
  else
    duration = priv->last_duration;
  GST_OBJECT_UNLOCK (self);

  /* the first frame of a batch waits for the last one picked */
  frames = (guint64) (batch - 1) * interval;
  if (frames == 0)
    return 0;
  if (!GST_CLOCK_TIME_IS_VALID (duration)) {
    GST_WARNING_OBJECT (self, "holding %" G_GUINT64_FORMAT " frames of "
        "unknown duration, latency not reported", frames);
    return 0;
  }
  return frames * duration;
}

static gboolean
gst_vim_base_inference_query (GstBaseTransform * trans,
    GstPadDirection direction, GstQuery * query)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CONTEXT:{
#ifdef HAVE_GST_CUDA
      if (gst_vim_cuda_context_query (GST_ELEMENT (self), query,
              &self->priv->cuda_ctx))
        return TRUE;
#endif
      break;
    }
    case GST_QUERY_LATENCY:
      if (direction == GST_PAD_SRC) {
        gboolean live;
        GstClockTime min, max, extra;

        if (!GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction,
                query))
          return FALSE;
        gst_query_parse_latency (query, &live, &min, &max);
        extra = held_latency (self);
        GST_DEBUG_OBJECT (self, "upstream latency %" GST_TIME_FORMAT " - %"
            GST_TIME_FORMAT ", adding %" GST_TIME_FORMAT, GST_TIME_ARGS (min),
            GST_TIME_ARGS (max), GST_TIME_ARGS (extra));
        min += extra;
        if (GST_CLOCK_TIME_IS_VALID (max))
          max += extra;
        gst_query_set_latency (query, live, min, max);
        return TRUE;
      }
      break;
    case GST_QUERY_DRAIN:
      if (direction == GST_PAD_SINK)
        drain (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction,
      query);
}

/* Upstream must not run out of buffers while frames wait for their batch:
 * ask for as many more as are held. */
static gboolean
gst_vim_base_inference_propose_allocation (GstBaseTransform * trans,
    GstQuery * decide_query, GstQuery * query)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (trans);
  GstVimBaseInferencePrivate *priv = self->priv;
  guint held, i, n;

  if (!GST_BASE_TRANSFORM_CLASS (parent_class)->propose_allocation (trans,
          decide_query, query))
    return FALSE;

  GST_OBJECT_LOCK (self);
  held = (priv->active_batch_size - 1) * priv->interval + 1;
  GST_OBJECT_UNLOCK (self);
  if (held <= 1)
    return TRUE;

  n = gst_query_get_n_allocation_pools (query);
  for (i = 0; i < n; i++) {
    GstBufferPool *pool = NULL;
    guint size, min, max;

    gst_query_parse_nth_allocation_pool (query, i, &pool, &size, &min, &max);
    min += held;
    if (max != 0 && max < min)
      max = min;
    gst_query_set_nth_allocation_pool (query, i, pool, size, min, max);
    gst_clear_object (&pool);
  }
  if (n == 0) {
    GstCaps *caps = NULL;
    GstVideoInfo info;

    gst_query_parse_allocation (query, &caps, NULL);
    if (caps && gst_video_info_from_caps (&info, caps))
      gst_query_add_allocation_pool (query, NULL, GST_VIDEO_INFO_SIZE (&info),
          held, 0);
  }
  return TRUE;
}

static void
gst_vim_base_inference_set_context (GstElement * element, GstContext * context)
{
#ifdef HAVE_GST_CUDA
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (element);
  gint device_id;

  GST_OBJECT_LOCK (self);
  device_id = self->priv->cuda_device_id;
  gst_cuda_handle_set_context (element, context, device_id,
      &self->priv->cuda_ctx);
  GST_OBJECT_UNLOCK (self);
#endif
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

/* ---- properties --------------------------------------------------------- */

static gboolean
can_change_ready_property (GstVimBaseInference * self, GParamSpec * pspec)
{
  gboolean ok;

  GST_OBJECT_LOCK (self);
  ok = GST_STATE (self) <= GST_STATE_READY;
  GST_OBJECT_UNLOCK (self);
  if (!ok)
    GST_WARNING_OBJECT (self, "%s can only be changed in the NULL or READY "
        "state; ignored", g_param_spec_get_name (pspec));
  return ok;
}

static void
gst_vim_base_inference_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (object);
  GstVimBaseInferencePrivate *priv = self->priv;

  if ((pspec->flags & GST_PARAM_MUTABLE_READY) &&
      !can_change_ready_property (self, pspec))
    return;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_free (priv->model_file);
      priv->model_file = g_value_dup_string (value);
      break;
    case PROP_LABELS_FILE:
      g_free (priv->labels_file);
      priv->labels_file = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      priv->device = g_value_get_enum (value);
      break;
    case PROP_CUDA_DEVICE_ID:
      priv->cuda_device_id = g_value_get_int (value);
      break;
    case PROP_PRECISION:
      priv->precision = g_value_get_enum (value);
      break;
    case PROP_INFERENCE_INTERVAL:
      priv->interval = g_value_get_uint (value);
      break;
    case PROP_BATCH_SIZE:
      priv->batch_size = g_value_get_uint (value);
      break;
    case PROP_POST_MESSAGES:
      priv->post_messages = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vim_base_inference_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (object);
  GstVimBaseInferencePrivate *priv = self->priv;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      if (priv->model_file)
        g_value_set_string (value, priv->model_file);
      else
        g_value_set_string (value, G_PARAM_SPEC_STRING (pspec)->default_value);
      break;
    case PROP_LABELS_FILE:
      g_value_set_string (value, priv->labels_file);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, priv->device);
      break;
    case PROP_CUDA_DEVICE_ID:
      g_value_set_int (value, priv->cuda_device_id);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, priv->precision);
      break;
    case PROP_INFERENCE_INTERVAL:
      g_value_set_uint (value, priv->interval);
      break;
    case PROP_BATCH_SIZE:
      g_value_set_uint (value, priv->batch_size);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, priv->post_messages);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vim_base_inference_finalize (GObject * object)
{
  GstVimBaseInference *self = GST_VIM_BASE_INFERENCE (object);

  g_free (self->priv->model_file);
  g_free (self->priv->labels_file);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/**
 * gst_vim_base_inference_class_install_properties:
 * @klass: the subclass's class, with default_model set
 *
 * Installs the shared properties on the subclass, so that `model-file`
 * names the subclass's own default model. Call it from the subclass's
 * class_init; the subclass's own property ids start at
 * %GST_VIM_BASE_INFERENCE_N_PROPERTIES and its set/get_property chain up
 * for the others.
 */
void
gst_vim_base_inference_class_install_properties (GstVimBaseInferenceClass *
    klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  const gchar *default_model = klass->default_model;
  gchar *default_path, *where, *blurb;

  g_return_if_fail (default_model != NULL);

  default_path = gst_vim_model_path_default (default_model);
  where = gst_vim_model_path_describe_search (default_model);
  /* lives as long as the class, which is never unloaded */
  blurb = g_strdup_printf ("Path of the gst-vim model file (.safetensors). "
      "Unset: the default model \"%s\", looked up in %s", default_model, where);
  g_object_class_install_property (gobject_class, PROP_MODEL_FILE,
      g_param_spec_string ("model-file", "Model file", blurb, default_path,
          G_PARAM_READWRITE | G_PARAM_STATIC_NAME | G_PARAM_STATIC_NICK |
          G_PARAM_STATIC_BLURB | GST_PARAM_MUTABLE_READY));
  g_free (default_path);
  g_free (where);

  g_object_class_install_property (gobject_class, PROP_LABELS_FILE,
      g_param_spec_string ("labels-file", "Labels file",
          "Text file with one class label per line, replacing the model's "
          "labels (NULL: use the labels in the model file)", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device",
          "Where the model runs. auto prefers CUDA and falls back to the "
          "CPU with a warning", GST_TYPE_VIM_DEVICE, DEFAULT_DEVICE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_CUDA_DEVICE_ID,
      g_param_spec_int ("cuda-device-id", "CUDA device ID",
          "CUDA device to run on (-1: the device of the pipeline's CUDA "
          "context, else the first)", -1, G_MAXINT, DEFAULT_CUDA_DEVICE_ID,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_PRECISION,
      g_param_spec_enum ("precision", "Precision",
          "Compute precision. The CPU computes in fp32 only",
          GST_TYPE_VIM_PRECISION, DEFAULT_PRECISION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_INFERENCE_INTERVAL,
      g_param_spec_uint ("inference-interval", "Inference interval",
          "Run the model on one frame in every N (1: every frame). The "
          "frames in between carry the last result again, marked stale "
          "with its age in frames", 1, G_MAXINT, DEFAULT_INFERENCE_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint ("batch-size", "Batch size",
          "Frames run through the model together (temporal batching, for "
          "throughput on files). Frames are held until the batch is full or "
          "EOS, a flush, a caps change or a drain comes; the latency query "
          "reports (batch-size - 1) * inference-interval frame durations",
          1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post an element message with the result of every frame on the bus",
          DEFAULT_POST_MESSAGES,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
}

static void
gst_vim_base_inference_class_init (GstVimBaseInferenceClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_vim_base_inference_debug, "vimbaseinference", 0,
      "gst-vim inference base class");

  gobject_class->set_property = gst_vim_base_inference_set_property;
  gobject_class->get_property = gst_vim_base_inference_get_property;
  gobject_class->finalize = gst_vim_base_inference_finalize;

  element_class->set_context =
      GST_DEBUG_FUNCPTR (gst_vim_base_inference_set_context);

  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;
  trans_class->start = GST_DEBUG_FUNCPTR (gst_vim_base_inference_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_vim_base_inference_stop);
  trans_class->transform_caps =
      GST_DEBUG_FUNCPTR (gst_vim_base_inference_transform_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_vim_base_inference_set_caps);
  trans_class->submit_input_buffer =
      GST_DEBUG_FUNCPTR (gst_vim_base_inference_submit_input_buffer);
  trans_class->generate_output =
      GST_DEBUG_FUNCPTR (gst_vim_base_inference_generate_output);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_vim_base_inference_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_vim_base_inference_sink_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_vim_base_inference_query);
  trans_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_vim_base_inference_propose_allocation);

  gst_type_mark_as_plugin_api (GST_TYPE_VIM_BASE_INFERENCE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_VIM_DEVICE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_VIM_PRECISION, 0);
}

static void
gst_vim_base_inference_init (GstVimBaseInference * self)
{
  GstVimBaseInferencePrivate *priv =
      gst_vim_base_inference_get_instance_private (self);

  self->priv = priv;
  priv->device = DEFAULT_DEVICE;
  priv->cuda_device_id = DEFAULT_CUDA_DEVICE_ID;
  priv->precision = DEFAULT_PRECISION;
  priv->interval = DEFAULT_INFERENCE_INTERVAL;
  priv->batch_size = DEFAULT_BATCH_SIZE;
  priv->post_messages = DEFAULT_POST_MESSAGES;
  priv->active_batch_size = DEFAULT_BATCH_SIZE;
  priv->last_duration = GST_CLOCK_TIME_NONE;
  g_queue_init (&priv->held);
  gst_video_info_init (&self->info);

  /* never passthrough: every buffer gets a result */
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), FALSE);
}

/**
 * gst_vim_base_inference_new_message:
 * @self: the element
 * @name: name of the structure (the message's name)
 * @buffer: the output buffer the result is attached to
 * @state: how the result relates to @buffer
 *
 * The fields every result message starts with, so that they read the same
 * for every element: `frame-number`, `timestamp`, `stream-time`,
 * `running-time`, `duration`, `fresh`, `age` and `model`. Subclasses append
 * their own fields in message().
 *
 * Returns: (transfer full): a new structure
 */
GstStructure *
gst_vim_base_inference_new_message (GstVimBaseInference * self,
    const gchar * name, GstBuffer * buffer, const GstVimResultState * state)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  const VimModelConfig *cfg = vim_model_get_config (self->model);
  GstClockTime pts = GST_BUFFER_PTS (buffer);
  GstClockTime running_time = GST_CLOCK_TIME_NONE, stream_time =
      GST_CLOCK_TIME_NONE;

  if (trans->segment.format == GST_FORMAT_TIME && GST_CLOCK_TIME_IS_VALID (pts)) {
    running_time = gst_segment_to_running_time (&trans->segment,
        GST_FORMAT_TIME, pts);
    stream_time = gst_segment_to_stream_time (&trans->segment,
        GST_FORMAT_TIME, pts);
  }

  return gst_structure_new (name,
      "frame-number", G_TYPE_UINT64, state->frame_number,
      "timestamp", G_TYPE_UINT64, pts,
      "stream-time", G_TYPE_UINT64, stream_time,
      "running-time", G_TYPE_UINT64, running_time,
      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION (buffer),
      "fresh", G_TYPE_BOOLEAN, state->fresh,
      "age", G_TYPE_UINT, state->age,
      "model", G_TYPE_STRING, cfg->name, NULL);
}
