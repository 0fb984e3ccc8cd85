/* gst-vim plugin: vimclassify, whole-frame classification.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-vimclassify
 * @title: vimclassify
 * @short_description: classifies every video frame with a Vision Mamba model
 *
 * vimclassify runs a gst-vim classification model on the frames going
 * through it and attaches the result to each of them, without touching the
 * pixels:
 *
 * - a #GstVimClassificationMeta (public header `gst/vim/vimmeta.h`,
 *   pkg-config `gstvimmeta-1.0`) with the top-k classes, labels and scores,
 *   the model name, whether the result is fresh or carried over from an
 *   earlier frame (`inference-interval`) and its age, and the frame number;
 * - a whole-frame #GstVideoRegionOfInterestMeta of type "vim-classification"
 *   whose "vim-classification" parameter structure holds the best class
 *   (`label`, `class-id`, `confidence`, `model`, `fresh`, `age`), for
 *   generic ROI consumers. It is left out when no class reaches `threshold`;
 * - with `post-messages=true`, an element message "vim-classification" per
 *   frame with `frame-number`, `timestamp`, `stream-time`, `running-time`,
 *   `duration`, `fresh`, `age`, `model`, the best class as `top-label`,
 *   `top-class-id` and `top-score`, and the top-k as arrays `labels`,
 *   `class-ids` and `scores` (the way to read results from Python).
 *
 * Frames are read in place, in system memory or, with the CUDA engine, in
 * `memory:CUDAMemory` straight from `nvh264dec` and the other CUDA elements.
 * The model is loaded when the element goes from READY to PAUSED: a missing
 * or invalid model file is a RESOURCE error naming the file.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 -m filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     vimclassify model-file=vim-ti.safetensors post-messages=true ! fakesink
 * ]| prints the message of every frame.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! qtdemux ! h264parse ! nvh264dec ! \
 *     vimclassify device=cuda precision=fp16 ! fakesink
 * ]| classifies decoded frames on the GPU without copying them to the host.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     vimclassify batch-size=8 inference-interval=2 ! fakesink
 * ]| runs the model on every second frame, eight frames per engine call.
 *
 * Since: 0.1
 */

#include <math.h>

#include <gst/vim/vimmeta.h>

#include "gstvimclassify.h"
#include "gstvimelements.h"
#include "gstvimframe.h"
#include "gstvimmodelpath.h"

GST_DEBUG_CATEGORY_STATIC (gst_vim_classify_debug);
#define GST_CAT_DEFAULT gst_vim_classify_debug

#define DEFAULT_TOP_K 5
#define DEFAULT_THRESHOLD 0.0f

enum
{
  PROP_TOP_K = GST_VIM_BASE_INFERENCE_N_PROPERTIES,
  PROP_THRESHOLD,
};

struct _GstVimClassify
{
  GstVimBaseInference parent;

  /* under the object lock */
  guint top_k;
  gfloat threshold;
};

/* One frame's result: the top-k, labels interned. */
typedef struct
{
  GstVimResult parent;
  guint n;
  GstVimClassification entries[];
} ClassifyResult;

#ifdef HAVE_GST_CUDA
#define CUDA_CAPS \
    GST_VIDEO_CAPS_MAKE_WITH_FEATURES ("memory:CUDAMemory", GST_VIM_CUDA_FORMATS) "; "
#else
#define CUDA_CAPS
#endif
#define VIM_CLASSIFY_CAPS CUDA_CAPS GST_VIDEO_CAPS_MAKE (GST_VIM_SYSTEM_FORMATS)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIM_CLASSIFY_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIM_CLASSIFY_CAPS));

#define parent_class gst_vim_classify_parent_class
G_DEFINE_TYPE (GstVimClassify, gst_vim_classify, GST_TYPE_VIM_BASE_INFERENCE);
GST_ELEMENT_REGISTER_DEFINE (vimclassify, "vimclassify", GST_RANK_NONE,
    GST_TYPE_VIM_CLASSIFY);

static gboolean
gst_vim_classify_infer (GstVimBaseInference * base, const VimFrame * frames,
    guint n, GstVimResult ** results, GError ** error)
{
  GstVimClassify *self = GST_VIM_CLASSIFY (base);
  const VimModelConfig *cfg = vim_model_get_config (base->model);
  guint n_classes = (guint) cfg->num_classes, top_k, i, j;
  gfloat threshold;
  gfloat *logits, *probs;
  VimClassScore *top;
  gboolean ok;

  GST_OBJECT_LOCK (self);
  top_k = MIN (self->top_k, n_classes);
  threshold = self->threshold;
  GST_OBJECT_UNLOCK (self);

  logits = g_new (gfloat, (gsize) n * n_classes);
  probs = g_new (gfloat, n_classes);
  top = g_new (VimClassScore, top_k);

  ok = vim_runner_classify (base->runner, frames, (int) n, logits, error);
  for (i = 0; ok && i < n; i++) {
    ClassifyResult *r;
    int m;

    vim_softmax (logits + (gsize) i * n_classes, (int) n_classes, probs);
    m = vim_top_k (base->model, probs, (int) n_classes, (int) top_k,
        threshold, top);
    r = g_malloc (sizeof (ClassifyResult) +
        (gsize) MAX (m, 0) * sizeof (GstVimClassification));
    gst_vim_result_init (r, g_free);
    r->n = (guint) MAX (m, 0);
    for (j = 0; j < r->n; j++) {
      r->entries[j].class_id = top[j].class_id;
      r->entries[j].score = top[j].score;
      r->entries[j].label = g_intern_string (top[j].label);
    }
    results[i] = (GstVimResult *) r;
    GST_LOG_OBJECT (self, "frame %u of %u: %u classes, best %d (%s) %.4f", i,
        n, r->n, r->n ? r->entries[0].class_id : -1,
        r->n ? GST_STR_NULL (r->entries[0].label) : "-",
        r->n ? r->entries[0].score : 0.0f);
  }

  g_free (top);
  g_free (probs);
  g_free (logits);
  return ok;
}

static gboolean
gst_vim_classify_attach (GstVimBaseInference * base, GstBuffer * buffer,
    GstVimResult * result, const GstVimResultState * state)
{
  const ClassifyResult *r = (const ClassifyResult *) result;
  const VimModelConfig *cfg = vim_model_get_config (base->model);
  GstVimClassificationMeta *meta;

  meta = gst_buffer_add_vim_classification_meta (buffer, cfg->name,
      (guint) cfg->num_classes, r->entries, r->n);
  if (!meta)
    return FALSE;
  meta->fresh = state->fresh;
  meta->age = state->age;
  meta->frame_number = state->frame_number;

  if (r->n > 0) {
    const GstVimClassification *best = &r->entries[0];
    GstVideoRegionOfInterestMeta *roi;

    roi = gst_buffer_add_video_region_of_interest_meta (buffer,
        "vim-classification", 0, 0, GST_VIDEO_INFO_WIDTH (&base->info),
        GST_VIDEO_INFO_HEIGHT (&base->info));
    if (!roi)
      return FALSE;
    gst_video_region_of_interest_meta_add_param (roi,
        gst_structure_new ("vim-classification",
            "label", G_TYPE_STRING, best->label,
            "class-id", G_TYPE_INT, best->class_id,
            "confidence", G_TYPE_DOUBLE, (gdouble) best->score,
            "model", G_TYPE_STRING, cfg->name,
            "fresh", G_TYPE_BOOLEAN, state->fresh,
            "age", G_TYPE_UINT, state->age, NULL));
  }
  return TRUE;
}

static void
append_array (GstStructure * s, const gchar * field, GType type,
    const ClassifyResult * r)
{
  GValue array = G_VALUE_INIT;
  guint i;

  gst_value_array_init (&array, r->n);
  for (i = 0; i < r->n; i++) {
    GValue v = G_VALUE_INIT;

    g_value_init (&v, type);
    if (type == G_TYPE_STRING)
      g_value_set_string (&v, r->entries[i].label ? r->entries[i].label : "");
    else if (type == G_TYPE_INT)
      g_value_set_int (&v, r->entries[i].class_id);
    else
      g_value_set_double (&v, r->entries[i].score);
    gst_value_array_append_and_take_value (&array, &v);
  }
  gst_structure_take_value (s, field, &array);
}

static GstStructure *
gst_vim_classify_message (GstVimBaseInference * base, GstBuffer * buffer,
    GstVimResult * result, const GstVimResultState * state)
{
  const ClassifyResult *r = (const ClassifyResult *) result;
  const GstVimClassification *best = r->n ? &r->entries[0] : NULL;
  GstStructure *s;

  s = gst_vim_base_inference_new_message (base, "vim-classification", buffer,
      state);
  gst_structure_set (s,
      "top-label", G_TYPE_STRING, best && best->label ? best->label : "",
      "top-class-id", G_TYPE_INT, best ? best->class_id : -1,
      "top-score", G_TYPE_DOUBLE, best ? (gdouble) best->score : 0.0, NULL);
  append_array (s, "labels", G_TYPE_STRING, r);
  append_array (s, "class-ids", G_TYPE_INT, r);
  append_array (s, "scores", G_TYPE_DOUBLE, r);
  return s;
}

static void
gst_vim_classify_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVimClassify *self = GST_VIM_CLASSIFY (object);

  switch (prop_id) {
    case PROP_TOP_K:
      GST_OBJECT_LOCK (self);
      self->top_k = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_THRESHOLD:
      GST_OBJECT_LOCK (self);
      self->threshold = g_value_get_float (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_CLASS (parent_class)->set_property (object, prop_id, value,
          pspec);
      break;
  }
}

static void
gst_vim_classify_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVimClassify *self = GST_VIM_CLASSIFY (object);

  switch (prop_id) {
    case PROP_TOP_K:
      GST_OBJECT_LOCK (self);
      g_value_set_uint (value, self->top_k);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_THRESHOLD:
      GST_OBJECT_LOCK (self);
      g_value_set_float (value, self->threshold);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_CLASS (parent_class)->get_property (object, prop_id, value,
          pspec);
      break;
  }
}

static void
gst_vim_classify_class_init (GstVimClassifyClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVimBaseInferenceClass *base_class = GST_VIM_BASE_INFERENCE_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_vim_classify_debug, "vimclassify", 0,
      "Vision Mamba whole-frame classification");

  gobject_class->set_property = gst_vim_classify_set_property;
  gobject_class->get_property = gst_vim_classify_get_property;

  base_class->task = VIM_TASK_CLASSIFICATION;
  base_class->default_model = GST_VIM_DEFAULT_CLASSIFICATION_MODEL;
  base_class->infer = GST_DEBUG_FUNCPTR (gst_vim_classify_infer);
  base_class->attach = GST_DEBUG_FUNCPTR (gst_vim_classify_attach);
  base_class->message = GST_DEBUG_FUNCPTR (gst_vim_classify_message);
  gst_vim_base_inference_class_install_properties (base_class);

  /**
   * GstVimClassify:top-k:
   *
   * How many of the best classes a result holds (at most the model's
   * number of classes).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top k",
          "Number of best classes kept per frame (capped at the model's "
          "number of classes)", 1, G_MAXINT, DEFAULT_TOP_K,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstVimClassify:threshold:
   *
   * Classes whose probability is below this are left out of the result
   * (which may then hold no class at all).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_float ("threshold", "Threshold",
          "Minimum softmax probability for a class to be reported", 0.0f,
          1.0f, DEFAULT_THRESHOLD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Vision Mamba classifier", "Filter/Analyzer/Video",
      "Classifies every frame with a Vision Mamba model and attaches the "
      "top-k classes as metadata", "gst-vim developers");
}

static void
gst_vim_classify_init (GstVimClassify * self)
{
  self->top_k = DEFAULT_TOP_K;
  self->threshold = DEFAULT_THRESHOLD;
}
