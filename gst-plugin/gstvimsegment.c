/* gst-vim plugin: vimsegment, per-pixel (semantic) segmentation.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-vimsegment
 * @title: vimsegment
 * @short_description: segments every video frame with a Vision Mamba model
 *
 * vimsegment runs a gst-vim segmentation model on the frames going through
 * it and attaches a class map to each of them, without touching the pixels:
 *
 * - a #GstVimSegmentationMeta (public header `gst/vim/vimmeta.h`,
 *   pkg-config `gstvimmeta-1.0`): the mask, a GRAY8 #GstBuffer with a
 *   #GstVideoMeta holding one class id per pixel, at the size `mask-size`
 *   asks for; the frame rectangle it covers; with `confidence=true` a GRAY8
 *   confidence map of the same size; the model name, number of classes,
 *   labels and the share of the mask each class takes; whether the mask is
 *   fresh or carried over from an earlier frame (`inference-interval`) and
 *   its age, and the frame number;
 * - with `post-messages=true`, an element message "vim-segmentation" per
 *   frame with `frame-number`, `timestamp`, `stream-time`, `running-time`,
 *   `duration`, `fresh`, `age`, `model`, `mask-width`, `mask-height`, the
 *   covered rectangle as `x`, `y`, `width`, `height`, the class that covers
 *   most of the mask as `top-class-id`, `top-label` and `top-fraction`, and
 *   per class (index = class id) the arrays `labels` and `fractions`.
 *
 * `vimoverlay` draws the mask onto the video. Frames are read in place, in
 * system memory or, with the CUDA engine, in `memory:CUDAMemory` straight
 * from `nvh264dec` and the other CUDA elements; the mask is always in
 * system memory. The model is loaded when the element goes from READY to
 * PAUSED: a missing or invalid model file, or a classification model, is a
 * RESOURCE error naming the file.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
 *     vimsegment ! vimoverlay ! videoconvert ! autovideosink
 * ]| shows the classes of every pixel over the video, with the default
 * model (`vim-camvid-segmentation.safetensors`).
 * |[
 * gst-launch-1.0 -m filesrc location=in.mp4 ! decodebin ! videoconvert ! \
 *     vimsegment model-file=seg.safetensors post-messages=true ! fakesink
 * ]| prints how much of every frame each class takes.
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! qtdemux ! h264parse ! nvh264dec ! queue ! \
 *     vimsegment device=cuda precision=fp16 mask-size=frame inference-interval=2 ! \
 *     queue ! vimoverlay ! cudadownload ! videoconvert ! autovideosink
 * ]| segments decoded frames on the GPU, every second frame, with one mask
 * pixel per frame pixel; the queues let decoding, inference and drawing
 * overlap.
 *
 * Since: 0.1
 */

#include <stdlib.h>
#include <string.h>

#include <gst/vim/vimmeta.h>

#include "gstvimsegment.h"
#include "gstvimelements.h"
#include "gstvimframe.h"
#include "gstvimmodelpath.h"

GST_DEBUG_CATEGORY_STATIC (gst_vim_segment_debug);
#define GST_CAT_DEFAULT gst_vim_segment_debug

#define DEFAULT_MASK_SIZE "grid"
#define DEFAULT_CONFIDENCE FALSE
#define MAX_MASK_SIDE 16384

enum
{
  PROP_MASK_SIZE = GST_VIM_BASE_INFERENCE_N_PROPERTIES,
  PROP_CONFIDENCE,
};

struct _GstVimSegment
{
  GstVimBaseInference parent;

  /* properties, under the object lock */
  gchar *mask_size;
  gboolean confidence;

  /* set at start, read by the streaming thread */
  VimMaskSpec spec;
  gboolean want_confidence;
};

/* One frame's result: the mask buffers the metas share, and the class
 * fractions. */
typedef struct
{
  GstVimResult parent;
  GstBuffer *mask;
  GstBuffer *confidence;
  VimMaskGeometry geometry;
  guint n_classes;
  gfloat fractions[];
} SegmentResult;

#ifdef HAVE_GST_CUDA
#define CUDA_CAPS \
    GST_VIDEO_CAPS_MAKE_WITH_FEATURES ("memory:CUDAMemory", GST_VIM_CUDA_FORMATS) "; "
#else
#define CUDA_CAPS
#endif
#define VIM_SEGMENT_CAPS CUDA_CAPS GST_VIDEO_CAPS_MAKE (GST_VIM_SYSTEM_FORMATS)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIM_SEGMENT_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIM_SEGMENT_CAPS));

#define parent_class gst_vim_segment_parent_class
G_DEFINE_TYPE (GstVimSegment, gst_vim_segment, GST_TYPE_VIM_BASE_INFERENCE);
GST_ELEMENT_REGISTER_DEFINE (vimsegment, "vimsegment", GST_RANK_NONE,
    GST_TYPE_VIM_SEGMENT);

/* "grid", "frame" or "WIDTHxHEIGHT" (1 .. 16384 each). */
static gboolean
parse_mask_size (const gchar * str, VimMaskSpec * spec)
{
  gchar *end;
  guint64 w, h;

  memset (spec, 0, sizeof (*spec));
  if (!str)
    return FALSE;
  if (g_ascii_strcasecmp (str, "grid") == 0) {
    spec->mode = VIM_MASK_SIZE_GRID;
    return TRUE;
  }
  if (g_ascii_strcasecmp (str, "frame") == 0) {
    spec->mode = VIM_MASK_SIZE_FRAME;
    return TRUE;
  }
  if (!g_ascii_isdigit (str[0]))
    return FALSE;
  w = g_ascii_strtoull (str, &end, 10);
  if (*end != 'x' && *end != 'X')
    return FALSE;
  if (!g_ascii_isdigit (end[1]))
    return FALSE;
  h = g_ascii_strtoull (end + 1, &end, 10);
  if (*end != '\0' || w < 1 || h < 1 || w > MAX_MASK_SIDE || h > MAX_MASK_SIDE)
    return FALSE;
  spec->mode = VIM_MASK_SIZE_FIXED;
  spec->width = (int) w;
  spec->height = (int) h;
  return TRUE;
}

static void
segment_result_free (gpointer data)
{
  SegmentResult *r = data;

  gst_clear_buffer (&r->mask);
  gst_clear_buffer (&r->confidence);
  g_free (r);
}

static gboolean
gst_vim_segment_start (GstBaseTransform * trans)
{
  GstVimSegment *self = GST_VIM_SEGMENT (trans);
  gchar *mask_size;
  gboolean ok;

  GST_OBJECT_LOCK (self);
  mask_size = g_strdup (self->mask_size);
  self->want_confidence = self->confidence;
  GST_OBJECT_UNLOCK (self);

  /* a bad setting fails before the model is even opened */
  ok = parse_mask_size (mask_size, &self->spec);
  if (!ok)
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Invalid mask-size \"%s\": use \"grid\", \"frame\" or "
            "WIDTHxHEIGHT with sides of 1 .. %d pixels (e.g. \"320x240\").",
            GST_STR_NULL (mask_size), MAX_MASK_SIDE), (NULL));
  g_free (mask_size);
  if (!ok)
    return FALSE;

  return GST_BASE_TRANSFORM_CLASS (parent_class)->start (trans);
}

static gboolean
gst_vim_segment_infer (GstVimBaseInference * base, const VimFrame * frames,
    guint n, GstVimResult ** results, GError ** error)
{
  GstVimSegment *self = GST_VIM_SEGMENT (base);
  const VimModelConfig *cfg = vim_model_get_config (base->model);
  guint n_classes = (guint) cfg->num_classes, i;
  SegmentResult **r = g_new0 (SegmentResult *, n);
  VimSegResult *seg = g_new0 (VimSegResult, n);
  GstMapInfo *maps = g_new0 (GstMapInfo, 2 * n);
  gboolean ok = TRUE;

  /* Fresh buffers per frame rather than a pool: the metas hand the masks
   * downstream, which may keep them for as long as it likes. */
  for (i = 0; ok && i < n; i++) {
    VimMaskGeometry geo;
    GstVideoMeta *vmeta;

    ok = vim_model_mask_geometry (base->model, frames[i].width,
        frames[i].height, &self->spec, &geo, error);
    if (!ok)
      break;
    r[i] = g_malloc0 (sizeof (SegmentResult) + n_classes * sizeof (gfloat));
    gst_vim_result_init (r[i], segment_result_free);
    r[i]->n_classes = n_classes;
    r[i]->mask = gst_vim_segmentation_mask_new (geo.width, geo.height);
    if (self->want_confidence)
      r[i]->confidence = gst_vim_segmentation_mask_new (geo.width, geo.height);

    seg[i].memory = VIM_MEMORY_HOST;
    seg[i].fractions = r[i]->fractions;
    vmeta = gst_buffer_get_video_meta (r[i]->mask);
    gst_buffer_map (r[i]->mask, &maps[2 * i], GST_MAP_WRITE);
    seg[i].classes = maps[2 * i].data + vmeta->offset[0];
    seg[i].classes_stride = vmeta->stride[0];
    if (r[i]->confidence) {
      vmeta = gst_buffer_get_video_meta (r[i]->confidence);
      gst_buffer_map (r[i]->confidence, &maps[2 * i + 1], GST_MAP_WRITE);
      seg[i].confidence = maps[2 * i + 1].data + vmeta->offset[0];
      seg[i].confidence_stride = vmeta->stride[0];
    }
  }

  if (ok)
    ok = vim_runner_segment (base->runner, frames, (int) n, &self->spec, seg,
        error);

  for (i = 0; i < n; i++) {
    if (!r[i])
      continue;
    gst_buffer_unmap (r[i]->mask, &maps[2 * i]);
    if (r[i]->confidence)
      gst_buffer_unmap (r[i]->confidence, &maps[2 * i + 1]);
    if (ok) {
      r[i]->geometry = seg[i].geometry;
      results[i] = (GstVimResult *) r[i];
      GST_LOG_OBJECT (self, "frame %u of %u: %dx%d mask over (%.1f, %.1f) "
          "%.1fx%.1f", i, n, seg[i].geometry.width, seg[i].geometry.height,
          seg[i].geometry.x, seg[i].geometry.y, seg[i].geometry.w,
          seg[i].geometry.h);
    } else {
      gst_vim_result_unref ((GstVimResult *) r[i]);
    }
  }

  g_free (maps);
  g_free (seg);
  g_free (r);
  return ok;
}

/* The model's labels for the meta, or NULL when it has none at all. */
static const gchar **
model_labels (VimModel * model, guint n_classes)
{
  const gchar **labels = g_new0 (const gchar *, n_classes);
  gboolean any = FALSE;
  guint i;

  for (i = 0; i < n_classes; i++) {
    labels[i] = vim_model_get_label (model, (int) i);
    any |= labels[i] != NULL;
  }
  if (!any)
    g_clear_pointer (&labels, g_free);
  return labels;
}

static gboolean
gst_vim_segment_attach (GstVimBaseInference * base, GstBuffer * buffer,
    GstVimResult * result, const GstVimResultState * state)
{
  const SegmentResult *r = (const SegmentResult *) result;
  const VimModelConfig *cfg = vim_model_get_config (base->model);
  GstVimSegmentationMeta *meta;
  const gchar **labels = model_labels (base->model, r->n_classes);

  /* a stale frame gets the same mask buffers as the frame they were
   * computed on: the caps, hence the frame size, are the same */
  meta = gst_buffer_add_vim_segmentation_meta (buffer, r->mask, r->confidence,
      r->geometry.x, r->geometry.y, r->geometry.w, r->geometry.h, cfg->name,
      r->n_classes, labels, r->fractions);
  g_free (labels);
  if (!meta)
    return FALSE;
  meta->fresh = state->fresh;
  meta->age = state->age;
  meta->frame_number = state->frame_number;
  return TRUE;
}

static GstStructure *
gst_vim_segment_message (GstVimBaseInference * base, GstBuffer * buffer,
    GstVimResult * result, const GstVimResultState * state)
{
  const SegmentResult *r = (const SegmentResult *) result;
  GValue labels = G_VALUE_INIT, fractions = G_VALUE_INIT;
  const gchar *top_label;
  GstStructure *s;
  guint i, top = 0;

  gst_value_array_init (&labels, r->n_classes);
  gst_value_array_init (&fractions, r->n_classes);
  for (i = 0; i < r->n_classes; i++) {
    GValue v = G_VALUE_INIT;
    const gchar *label = vim_model_get_label (base->model, (int) i);

    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, label ? label : "");
    gst_value_array_append_and_take_value (&labels, &v);
    g_value_init (&v, G_TYPE_DOUBLE);
    g_value_set_double (&v, r->fractions[i]);
    gst_value_array_append_and_take_value (&fractions, &v);
    if (r->fractions[i] > r->fractions[top])
      top = i;
  }
  top_label = vim_model_get_label (base->model, (int) top);

  s = gst_vim_base_inference_new_message (base, "vim-segmentation", buffer,
      state);
  gst_structure_set (s,
      "mask-width", G_TYPE_INT, r->geometry.width,
      "mask-height", G_TYPE_INT, r->geometry.height,
      "x", G_TYPE_DOUBLE, r->geometry.x,
      "y", G_TYPE_DOUBLE, r->geometry.y,
      "width", G_TYPE_DOUBLE, r->geometry.w,
      "height", G_TYPE_DOUBLE, r->geometry.h,
      "top-class-id", G_TYPE_INT, (gint) top,
      "top-label", G_TYPE_STRING, top_label ? top_label : "",
      "top-fraction", G_TYPE_DOUBLE, (gdouble) r->fractions[top], NULL);
  gst_structure_take_value (s, "labels", &labels);
  gst_structure_take_value (s, "fractions", &fractions);
  return s;
}

static void
gst_vim_segment_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVimSegment *self = GST_VIM_SEGMENT (object);

  switch (prop_id) {
    case PROP_MASK_SIZE:{
      const gchar *str = g_value_get_string (value);
      VimMaskSpec spec;

      /* refused at READY->PAUSED with an error; a warning here already */
      if (!parse_mask_size (str ? str : DEFAULT_MASK_SIZE, &spec))
        GST_WARNING_OBJECT (self, "invalid mask-size \"%s\"", str);
      GST_OBJECT_LOCK (self);
      g_free (self->mask_size);
      self->mask_size = g_strdup (str ? str : DEFAULT_MASK_SIZE);
      GST_OBJECT_UNLOCK (self);
      break;
    }
    case PROP_CONFIDENCE:
      GST_OBJECT_LOCK (self);
      self->confidence = g_value_get_boolean (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_CLASS (parent_class)->set_property (object, prop_id, value,
          pspec);
      break;
  }
}

static void
gst_vim_segment_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVimSegment *self = GST_VIM_SEGMENT (object);

  switch (prop_id) {
    case PROP_MASK_SIZE:
      GST_OBJECT_LOCK (self);
      g_value_set_string (value, self->mask_size);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_CONFIDENCE:
      GST_OBJECT_LOCK (self);
      g_value_set_boolean (value, self->confidence);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_CLASS (parent_class)->get_property (object, prop_id, value,
          pspec);
      break;
  }
}

static void
gst_vim_segment_finalize (GObject * object)
{
  GstVimSegment *self = GST_VIM_SEGMENT (object);

  g_free (self->mask_size);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vim_segment_class_init (GstVimSegmentClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVimBaseInferenceClass *base_class = GST_VIM_BASE_INFERENCE_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_vim_segment_debug, "vimsegment", 0,
      "Vision Mamba semantic segmentation");

  gobject_class->set_property = gst_vim_segment_set_property;
  gobject_class->get_property = gst_vim_segment_get_property;
  gobject_class->finalize = gst_vim_segment_finalize;
  trans_class->start = GST_DEBUG_FUNCPTR (gst_vim_segment_start);

  base_class->task = VIM_TASK_SEGMENTATION;
  base_class->default_model = GST_VIM_DEFAULT_SEGMENTATION_MODEL;
  base_class->infer = GST_DEBUG_FUNCPTR (gst_vim_segment_infer);
  base_class->attach = GST_DEBUG_FUNCPTR (gst_vim_segment_attach);
  base_class->message = GST_DEBUG_FUNCPTR (gst_vim_segment_message);
  gst_vim_base_inference_class_install_properties (base_class);

  /**
   * GstVimSegment:mask-size:
   *
   * The resolution of the class map: `grid` is the model's token grid
   * (e.g. 14x14 for a 224x224 input with 16-pixel patches; the cheapest,
   * enough for drawing, upsampled by the overlay), `frame` gives one mask
   * pixel per pixel of the frame rectangle the model sees (sharp edges,
   * costs a bilinear upsampling of the logits per pixel), `WIDTHxHEIGHT`
   * (e.g. `320x240`, each side 1 .. 16384) a fixed size. The logits are
   * upsampled bilinearly before the argmax in every mode. Anything else is
   * an error when the element starts.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_MASK_SIZE,
      g_param_spec_string ("mask-size", "Mask size",
          "Resolution of the class map: \"grid\" (the model's token grid), "
          "\"frame\" (one mask pixel per frame pixel) or \"WIDTHxHEIGHT\" "
          "(each side 1 .. 16384)", DEFAULT_MASK_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstVimSegment:confidence:
   *
   * Also attach a confidence map (GRAY8, same size as the mask, round (255
   * * softmax probability of the chosen class)) as the meta's
   * `confidence` buffer. Costs a softmax per mask pixel.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_CONFIDENCE,
      g_param_spec_boolean ("confidence", "Confidence",
          "Attach a per-pixel confidence map (GRAY8, 255 = certain) beside "
          "the class map", DEFAULT_CONFIDENCE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Vision Mamba segmenter", "Filter/Analyzer/Video",
      "Segments every frame with a Vision Mamba model and attaches the class "
      "map as metadata", "gst-vim developers");
}

static void
gst_vim_segment_init (GstVimSegment * self)
{
  self->mask_size = g_strdup (DEFAULT_MASK_SIZE);
  self->confidence = DEFAULT_CONFIDENCE;
}
