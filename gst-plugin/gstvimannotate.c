/* gst-vim plugin: vimannotate, per-frame results as JSON Lines.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-vimannotate
 * @title: vimannotate
 * @short_description: writes the gst-vim results of every frame as JSON Lines
 *
 * vimannotate passes every buffer through untouched (it never modifies,
 * drops or delays one) and writes one JSON object per frame, one per line
 * (JSON Lines), to `location`:
 *
 * |[
 * {"source":"file:///data/clip.mp4","frame":0,
 *  "pts_ns":0,"pts_s":0.0,"duration_ns":33333333,"duration_s":0.033333333,
 *  "resolution":{"width":160,"height":120},
 *  "classification":{"model":"vim_ti","fresh":true,"age":0,
 *    "top_k":[{"id":1,"label":"class_1","score":0.16892623901367188}, ...]}}
 * ]|
 * (shown on several lines here; one line per frame in the file). Keys:
 *
 * - `source`: the `source-uri` property when set; otherwise the URI that
 *   upstream answers to a URI query at the first buffer (filesrc,
 *   uridecodebin's source, souphttpsrc... answer it through the decoders);
 *   otherwise the `location` tag (GST_TAG_LOCATION) of the stream if one
 *   came before the first buffer; otherwise `null`.
 * - `frame`: the number of the buffer in this element's input, from 0 at
 *   the READY->PAUSED state change.
 * - `pts_ns`, `duration_ns`: the buffer's PTS and duration in nanoseconds as
 *   they are (not converted to stream or running time); `pts_s`,
 *   `duration_s` the same in seconds; `null` when the buffer has none.
 * - `resolution`: `width` and `height` of the negotiated caps (`null` when
 *   the caps have none).
 * - `classification`: from the #GstVimClassificationMeta that `vimclassify`
 *   attaches: `model`, `fresh` (the model ran on this very frame), `age`
 *   (frames since the result was computed; 0 when fresh) and `top_k`, best
 *   first, each with `id`, `label` (`null` when the model has none) and
 *   `score` (softmax probability). `null` when the buffer has no such meta.
 *
 * - `segmentation`: from the #GstVimSegmentationMeta that `vimsegment`
 *   attaches: `model`, `fresh`, `age`, `mask_size` (`width`, `height` of
 *   the class map), `rect` (`x`, `y`, `width`, `height`: the frame
 *   rectangle the map covers), `classes` (every class present, by id: `id`,
 *   `label`, `fraction` of the mask's pixels) and, with `mask-format`
 *   other than `none`, a `mask` object:
 *   `{"format":"png","path":"MASK-LOCATION/frame-000000042.png"}` (gray
 *   value = class id; the file is written under a temporary name and
 *   renamed) or `{"format":"rle","rle":[c0,n0,c1,n1,...]}` (the map in
 *   row-major order as runs: class c0 for n0 pixels, then c1 for n1 ...).
 *   `null` when the buffer has no such meta.
 *
 * No key holds wall-clock time: the same stream gives the same bytes.
 *
 * The file is written under a temporary name (`location` + `.tmp-XXXXXX`)
 * in the same folder and renamed to `location` when EOS arrives, so that
 * `location` only ever holds a complete file. A pipeline stopped without
 * EOS leaves no file at `location`: the temporary file is removed when the
 * element stops. With `location=-` the lines go to the standard output
 * (flushed every `flush-every` frames and at EOS). Writes are buffered;
 * `flush-every` > 0 flushes the buffer every that many frames.
 *
 * Errors: a file that can't be created -> RESOURCE/OPEN_WRITE at
 * READY->PAUSED; a failed write, flush or rename -> RESOURCE/WRITE.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 uridecodebin uri=file:///data/clip.mp4 ! videoconvert ! \
 *     vimclassify model-file=vim-ti.safetensors ! \
 *     vimannotate location=clip.jsonl ! fakesink
 * ]| writes clip.jsonl, complete at EOS (`source` taken from upstream).
 * |[
 * gst-launch-1.0 -q filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     vimclassify ! vimannotate location=- flush-every=1 ! fakesink
 * ]| prints one line per frame on the standard output as they come.
 *
 * Since: 0.1
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <gst/vim/vimmeta.h>

#include <gst/video/video.h>

#include "gstvimannotate.h"
#include "gstvimelements.h"
#include "gstvimmaskpng.h"

GST_DEBUG_CATEGORY_STATIC (gst_vim_annotate_debug);
#define GST_CAT_DEFAULT gst_vim_annotate_debug

#define DEFAULT_LOCATION NULL
#define DEFAULT_MASK_FORMAT GST_VIM_ANNOTATE_MASK_FORMAT_NONE
#define DEFAULT_MASK_LOCATION NULL
#define DEFAULT_FLUSH_EVERY 0
#define DEFAULT_SOURCE_URI NULL

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_SOURCE_URI,
  PROP_MASK_FORMAT,
  PROP_MASK_LOCATION,
  PROP_FLUSH_EVERY,
};

struct _GstVimAnnotate
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  gchar *location;
  gchar *source_uri;
  GstVimAnnotateMaskFormat mask_format;
  gchar *mask_location;
  guint flush_every;

  /* streaming state */
  FILE *file;                   /* NULL when closed; stdout for "-" */
  gboolean to_stdout;
  gchar *final_path;
  gchar *tmp_path;
  guint64 frame;
  guint since_flush;
  gint width, height;           /* -1 when unknown */
  gchar *stream_source;         /* the source for the JSON, fixed at the first buffer */
  gchar *tag_location;
  gboolean got_first;
  gboolean finished;            /* EOS seen, file renamed */
  JsonGenerator *gen;
  GstVimAnnotateMaskFormat stream_mask_format;  /* fixed at start */
  gchar *stream_mask_location;
};

GType
gst_vim_annotate_mask_format_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VIM_ANNOTATE_MASK_FORMAT_NONE,
        "No mask (class fractions only)", "none"},
    {GST_VIM_ANNOTATE_MASK_FORMAT_PNG,
        "A grayscale PNG per frame in mask-location (gray value = class id)",
        "png"},
    {GST_VIM_ANNOTATE_MASK_FORMAT_RLE,
        "Run-length encoding in the JSON: [class, count, class, count, ...]",
        "rle"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVimAnnotateMaskFormat", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

#define parent_class gst_vim_annotate_parent_class
G_DEFINE_TYPE (GstVimAnnotate, gst_vim_annotate, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (vimannotate, "vimannotate", GST_RANK_NONE,
    GST_TYPE_VIM_ANNOTATE);

static void
close_file (GstVimAnnotate * self, gboolean remove_tmp)
{
  if (self->file && !self->to_stdout)
    fclose (self->file);
  else if (self->file)
    fflush (self->file);
  self->file = NULL;
  if (remove_tmp && self->tmp_path) {
    GST_DEBUG_OBJECT (self, "removing %s", self->tmp_path);
    g_unlink (self->tmp_path);
  }
  g_clear_pointer (&self->tmp_path, g_free);
  g_clear_pointer (&self->final_path, g_free);
}

static gboolean
gst_vim_annotate_start (GstBaseTransform * trans)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (trans);
  gchar *location;
  gint fd;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  self->stream_mask_format = self->mask_format;
  g_free (self->stream_mask_location);
  self->stream_mask_location = g_strdup (self->mask_location);
  GST_OBJECT_UNLOCK (self);

  if (self->stream_mask_format == GST_VIM_ANNOTATE_MASK_FORMAT_PNG) {
    if (self->stream_mask_location == NULL
        || *self->stream_mask_location == '\0') {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("mask-format=png needs a folder (the mask-location property)."),
          (NULL));
      g_free (location);
      return FALSE;
    }
    if (g_mkdir_with_parents (self->stream_mask_location, 0777) != 0) {
      int e = errno;

      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
          ("Could not create the mask folder \"%s\".",
              self->stream_mask_location), ("%s", g_strerror (e)));
      g_free (location);
      return FALSE;
    }
  }

  self->frame = 0;
  self->since_flush = 0;
  self->width = self->height = -1;
  self->got_first = FALSE;
  self->finished = FALSE;
  g_clear_pointer (&self->stream_source, g_free);
  g_clear_pointer (&self->tag_location, g_free);

  if (location == NULL || *location == '\0') {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No output file given (the location property)."), (NULL));
    g_free (location);
    return FALSE;
  }

  if (g_str_equal (location, "-")) {
    self->to_stdout = TRUE;
    self->file = stdout;
    g_free (location);
    return TRUE;
  }

  self->to_stdout = FALSE;
  self->tmp_path = g_strconcat (location, ".tmp-XXXXXX", NULL);
  fd = g_mkstemp (self->tmp_path);
  if (fd < 0) {
    int e = errno;

    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not open file \"%s\" for writing.", location),
        ("creating %s: %s", self->tmp_path, g_strerror (e)));
    g_clear_pointer (&self->tmp_path, g_free);
    g_free (location);
    return FALSE;
  }
  self->file = fdopen (fd, "w");
  if (self->file == NULL) {
    int e = errno;

    close (fd);
    g_unlink (self->tmp_path);
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not open file \"%s\" for writing.", location),
        ("fdopen: %s", g_strerror (e)));
    g_clear_pointer (&self->tmp_path, g_free);
    g_free (location);
    return FALSE;
  }
  /* the mode g_mkstemp gives (0600) is not what a plain file gets */
  {
    mode_t mask = umask (0);

    umask (mask);
    fchmod (fd, 0666 & ~mask);
  }
  setvbuf (self->file, NULL, _IOFBF, 64 * 1024);
  self->final_path = location;
  GST_DEBUG_OBJECT (self, "writing %s (temporary %s)", self->final_path,
      self->tmp_path);
  return TRUE;
}

static gboolean
gst_vim_annotate_stop (GstBaseTransform * trans)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (trans);

  /* still open: no EOS came, so there is no complete file */
  close_file (self, TRUE);
  g_clear_pointer (&self->stream_source, g_free);
  g_clear_pointer (&self->tag_location, g_free);
  return TRUE;
}

static gboolean
write_failed (GstVimAnnotate * self, const gchar * what, int e)
{
  GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
      ("Could not write to file \"%s\".",
          self->to_stdout ? "stdout" : self->final_path), ("%s: %s", what,
          g_strerror (e)));
  return FALSE;
}

/* Flushes and, for a file, renames the temporary file to its final name. */
static gboolean
finish_file (GstVimAnnotate * self)
{
  gchar *final_path, *tmp_path;
  FILE *f = self->file;
  gboolean ok = TRUE;

  if (f == NULL)
    return TRUE;
  if (self->to_stdout) {
    self->file = NULL;
    self->finished = TRUE;
    if (fflush (f) != 0)
      return write_failed (self, "fflush", errno);
    return TRUE;
  }

  final_path = g_steal_pointer (&self->final_path);
  tmp_path = g_steal_pointer (&self->tmp_path);
  self->file = NULL;
  self->finished = TRUE;
  if (fflush (f) != 0 || fsync (fileno (f)) != 0) {
    int e = errno;

    self->final_path = final_path;
    ok = write_failed (self, "flush", e);
    self->final_path = NULL;
    fclose (f);
  } else if (fclose (f) != 0) {
    int e = errno;

    self->final_path = final_path;
    ok = write_failed (self, "close", e);
    self->final_path = NULL;
  } else if (g_rename (tmp_path, final_path) != 0) {
    int e = errno;

    self->final_path = final_path;
    ok = write_failed (self, "rename", e);
    self->final_path = NULL;
  } else {
    GST_DEBUG_OBJECT (self, "%s complete, %" G_GUINT64_FORMAT " frames",
        final_path, self->frame);
  }
  if (!ok)
    g_unlink (tmp_path);
  g_free (tmp_path);
  g_free (final_path);
  return ok;
}

static gboolean
gst_vim_annotate_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      if (!finish_file (self)) {
        gst_event_unref (event);
        return FALSE;
      }
      break;
    case GST_EVENT_TAG:{
      GstTagList *tags;
      gchar *loc = NULL;

      gst_event_parse_tag (event, &tags);
      if (gst_tag_list_get_string (tags, GST_TAG_LOCATION, &loc)) {
        g_free (self->tag_location);
        self->tag_location = loc;
      }
      break;
    }
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_vim_annotate_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (trans);
  GstStructure *s = gst_caps_get_structure (incaps, 0);

  if (!gst_structure_get_int (s, "width", &self->width))
    self->width = -1;
  if (!gst_structure_get_int (s, "height", &self->height))
    self->height = -1;
  return TRUE;
}

static gchar *
query_upstream_uri (GstVimAnnotate * self)
{
  GstQuery *q = gst_query_new_uri ();
  gchar *uri = NULL;

  if (gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (self), q)) {
    gst_query_parse_uri_redirection (q, &uri);
    if (uri == NULL)
      gst_query_parse_uri (q, &uri);
  }
  gst_query_unref (q);
  return uri;
}

static void
add_time (JsonBuilder * b, const gchar * ns_key, const gchar * s_key,
    GstClockTime t)
{
  json_builder_set_member_name (b, ns_key);
  if (GST_CLOCK_TIME_IS_VALID (t))
    json_builder_add_int_value (b, (gint64) t);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, s_key);
  if (GST_CLOCK_TIME_IS_VALID (t))
    json_builder_add_double_value (b, (gdouble) t / GST_SECOND);
  else
    json_builder_add_null_value (b);
}

/* What every result object begins with: which model, and how old it is. */
static void
add_result_header (JsonBuilder * b, const gchar * model, gboolean fresh,
    guint age)
{
  json_builder_set_member_name (b, "model");
  if (model)
    json_builder_add_string_value (b, model);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "fresh");
  json_builder_add_boolean_value (b, fresh);
  json_builder_set_member_name (b, "age");
  json_builder_add_int_value (b, age);
}

static void
add_classification (JsonBuilder * b, GstVimClassificationMeta * meta)
{
  guint i;

  json_builder_set_member_name (b, "classification");
  if (meta == NULL) {
    json_builder_add_null_value (b);
    return;
  }
  json_builder_begin_object (b);
  add_result_header (b, meta->model, meta->fresh, meta->age);
  json_builder_set_member_name (b, "top_k");
  json_builder_begin_array (b);
  for (i = 0; i < meta->n_results; i++) {
    const GstVimClassification *c = &meta->results[i];

    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_int_value (b, c->class_id);
    json_builder_set_member_name (b, "label");
    if (c->label)
      json_builder_add_string_value (b, c->label);
    else
      json_builder_add_null_value (b);
    json_builder_set_member_name (b, "score");
    json_builder_add_double_value (b, c->score);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
}

/* The class map as runs in row-major order: class, count, class, count ... */
static void
add_mask_rle (JsonBuilder * b, const guint8 * px, guint w, guint h,
    gsize stride)
{
  guint x, y, run = 0;
  gint cur = -1;

  json_builder_begin_array (b);
  for (y = 0; y < h; y++) {
    const guint8 *row = px + (gsize) y * stride;

    for (x = 0; x < w; x++) {
      if (row[x] == cur) {
        run++;
        continue;
      }
      if (run > 0) {
        json_builder_add_int_value (b, cur);
        json_builder_add_int_value (b, run);
      }
      cur = row[x];
      run = 1;
    }
  }
  json_builder_add_int_value (b, cur);
  json_builder_add_int_value (b, run);
  json_builder_end_array (b);
}

/* Adds the "mask" member; FALSE (error posted) when the PNG can't be
 * written. */
static gboolean
add_mask (GstVimAnnotate * self, JsonBuilder * b, GstVimSegmentationMeta * meta)
{
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (meta->mask);
  GstMapInfo map;
  gsize stride = vmeta ? (gsize) vmeta->stride[0] : meta->mask_width;
  gsize offset = vmeta ? vmeta->offset[0] : 0;
  gboolean ok = TRUE;

  if (!gst_buffer_map (meta->mask, &map, GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not read a mask."),
        ("mapping the mask buffer failed"));
    return FALSE;
  }
  if (meta->mask_width == 0 || meta->mask_height == 0 || stride <
      meta->mask_width || offset + stride * (meta->mask_height - 1) +
      meta->mask_width > map.size) {
    gst_buffer_unmap (meta->mask, &map);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Invalid mask."),
        ("mask of %ux%u, stride %" G_GSIZE_FORMAT " in %" G_GSIZE_FORMAT
            " bytes", meta->mask_width, meta->mask_height, stride, map.size));
    return FALSE;
  }

  json_builder_set_member_name (b, "mask");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  if (self->stream_mask_format == GST_VIM_ANNOTATE_MASK_FORMAT_RLE) {
    json_builder_add_string_value (b, "rle");
    json_builder_set_member_name (b, "rle");
    add_mask_rle (b, map.data + offset, meta->mask_width, meta->mask_height,
        stride);
  } else {
    gchar name[48];
    gchar *path;
    GError *err = NULL;

    g_snprintf (name, sizeof name, "frame-%09" G_GUINT64_FORMAT ".png",
        self->frame);
    path = g_build_filename (self->stream_mask_location, name, NULL);
    json_builder_add_string_value (b, "png");
    json_builder_set_member_name (b, "path");
    json_builder_add_string_value (b, path);
    if (!gst_vim_write_mask_png (path, map.data + offset, meta->mask_width,
            meta->mask_height, stride, &err)) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
          ("Could not write mask file \"%s\".", path), ("%s", err->message));
      g_error_free (err);
      ok = FALSE;
    }
    g_free (path);
  }
  json_builder_end_object (b);
  gst_buffer_unmap (meta->mask, &map);
  return ok;
}

static gboolean
add_segmentation (GstVimAnnotate * self, JsonBuilder * b,
    GstVimSegmentationMeta * meta)
{
  guint i;

  json_builder_set_member_name (b, "segmentation");
  if (meta == NULL) {
    json_builder_add_null_value (b);
    return TRUE;
  }
  json_builder_begin_object (b);
  add_result_header (b, meta->model, meta->fresh, meta->age);
  json_builder_set_member_name (b, "mask_size");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "width");
  json_builder_add_int_value (b, meta->mask_width);
  json_builder_set_member_name (b, "height");
  json_builder_add_int_value (b, meta->mask_height);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "rect");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "x");
  json_builder_add_double_value (b, meta->x);
  json_builder_set_member_name (b, "y");
  json_builder_add_double_value (b, meta->y);
  json_builder_set_member_name (b, "width");
  json_builder_add_double_value (b, meta->width);
  json_builder_set_member_name (b, "height");
  json_builder_add_double_value (b, meta->height);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "classes");
  json_builder_begin_array (b);
  for (i = 0; meta->fractions && i < meta->n_classes; i++) {
    if (meta->fractions[i] <= 0.f)
      continue;
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_int_value (b, i);
    json_builder_set_member_name (b, "label");
    if (meta->labels && meta->labels[i])
      json_builder_add_string_value (b, meta->labels[i]);
    else
      json_builder_add_null_value (b);
    json_builder_set_member_name (b, "fraction");
    json_builder_add_double_value (b, meta->fractions[i]);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  if (self->stream_mask_format != GST_VIM_ANNOTATE_MASK_FORMAT_NONE
      && meta->mask != NULL && !add_mask (self, b, meta)) {
    json_builder_end_object (b);
    return FALSE;
  }
  json_builder_end_object (b);
  return TRUE;
}

static GstFlowReturn
gst_vim_annotate_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (trans);
  JsonBuilder *b;
  JsonNode *root;
  gchar *line;
  gsize len;
  guint flush_every;

  if (self->file == NULL) {
    if (self->finished)
      GST_WARNING_OBJECT (self, "buffer after EOS: not written");
    return GST_FLOW_OK;
  }

  if (!self->got_first) {
    self->got_first = TRUE;
    GST_OBJECT_LOCK (self);
    self->stream_source = g_strdup (self->source_uri);
    GST_OBJECT_UNLOCK (self);
    if (self->stream_source == NULL)
      self->stream_source = query_upstream_uri (self);
    if (self->stream_source == NULL)
      self->stream_source = g_strdup (self->tag_location);
    GST_DEBUG_OBJECT (self, "source: %s", GST_STR_NULL (self->stream_source));
  }

  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "source");
  if (self->stream_source)
    json_builder_add_string_value (b, self->stream_source);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "frame");
  json_builder_add_int_value (b, (gint64) self->frame);
  add_time (b, "pts_ns", "pts_s", GST_BUFFER_PTS (buf));
  add_time (b, "duration_ns", "duration_s", GST_BUFFER_DURATION (buf));
  json_builder_set_member_name (b, "resolution");
  if (self->width >= 0 && self->height >= 0) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "width");
    json_builder_add_int_value (b, self->width);
    json_builder_set_member_name (b, "height");
    json_builder_add_int_value (b, self->height);
    json_builder_end_object (b);
  } else {
    json_builder_add_null_value (b);
  }
  add_classification (b, gst_buffer_get_vim_classification_meta (buf));
  if (!add_segmentation (self, b, gst_buffer_get_vim_segmentation_meta (buf))) {
    g_object_unref (b);
    return GST_FLOW_ERROR;
  }
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (self->gen, root);
  line = json_generator_to_data (self->gen, &len);
  json_node_unref (root);
  g_object_unref (b);

  /* one write per line, so that nothing else on stdout can cut into it */
  line = g_realloc (line, len + 2);
  line[len++] = '\n';
  line[len] = '\0';
  self->frame++;
  if (fwrite (line, 1, len, self->file) != len) {
    int e = errno;

    g_free (line);
    write_failed (self, "write", e);
    return GST_FLOW_ERROR;
  }
  g_free (line);

  GST_OBJECT_LOCK (self);
  flush_every = self->flush_every;
  GST_OBJECT_UNLOCK (self);
  if (flush_every > 0 && ++self->since_flush >= flush_every) {
    self->since_flush = 0;
    if (fflush (self->file) != 0) {
      write_failed (self, "fflush", errno);
      return GST_FLOW_ERROR;
    }
  }
  return GST_FLOW_OK;
}

static void
gst_vim_annotate_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_SOURCE_URI:
      g_free (self->source_uri);
      self->source_uri = g_value_dup_string (value);
      break;
    case PROP_MASK_FORMAT:
      self->mask_format = g_value_get_enum (value);
      break;
    case PROP_MASK_LOCATION:
      g_free (self->mask_location);
      self->mask_location = g_value_dup_string (value);
      break;
    case PROP_FLUSH_EVERY:
      self->flush_every = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vim_annotate_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_SOURCE_URI:
      g_value_set_string (value, self->source_uri);
      break;
    case PROP_MASK_FORMAT:
      g_value_set_enum (value, self->mask_format);
      break;
    case PROP_MASK_LOCATION:
      g_value_set_string (value, self->mask_location);
      break;
    case PROP_FLUSH_EVERY:
      g_value_set_uint (value, self->flush_every);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vim_annotate_finalize (GObject * object)
{
  GstVimAnnotate *self = GST_VIM_ANNOTATE (object);

  close_file (self, TRUE);
  g_free (self->location);
  g_free (self->source_uri);
  g_free (self->mask_location);
  g_free (self->stream_mask_location);
  g_free (self->stream_source);
  g_free (self->tag_location);
  g_clear_object (&self->gen);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vim_annotate_class_init (GstVimAnnotateClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_vim_annotate_debug, "vimannotate", 0,
      "gst-vim per-frame results as JSON Lines");

  gobject_class->set_property = gst_vim_annotate_set_property;
  gobject_class->get_property = gst_vim_annotate_get_property;
  gobject_class->finalize = gst_vim_annotate_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "The JSON Lines file to write (written under a temporary name in "
          "the same folder, renamed at EOS), or \"-\" for the standard output",
          DEFAULT_LOCATION, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SOURCE_URI,
      g_param_spec_string ("source-uri", "Source URI",
          "The \"source\" written in every line; when unset, the URI upstream "
          "answers to a URI query, else the stream's location tag, else null",
          DEFAULT_SOURCE_URI, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MASK_FORMAT,
      g_param_spec_enum ("mask-format", "Mask format",
          "How segmentation masks are written: none (class fractions only), "
          "png (a grayscale PNG per frame in mask-location, path in the "
          "JSON) or rle (run-length encoding in the JSON)",
          GST_TYPE_VIM_ANNOTATE_MASK_FORMAT, DEFAULT_MASK_FORMAT,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MASK_LOCATION,
      g_param_spec_string ("mask-location", "Mask location",
          "The folder for mask files with mask-format=png (created if "
          "missing); files are named frame-NNNNNNNNN.png by frame number",
          DEFAULT_MASK_LOCATION,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FLUSH_EVERY,
      g_param_spec_uint ("flush-every", "Flush every",
          "Flush the written lines every this many frames (0: only at EOS)",
          0, G_MAXUINT, DEFAULT_FLUSH_EVERY, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Vision Mamba result annotation writer", "Filter/Video/Analytics",
      "Passes video through and writes the gst-vim results of every frame "
      "(classification top-k, segmentation class fractions and masks, "
      "timestamps, resolution) as JSON Lines",
      "gst-vim");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_vim_annotate_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_vim_annotate_stop);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_vim_annotate_sink_event);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_vim_annotate_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_vim_annotate_transform_ip);
  trans_class->passthrough_on_same_caps = TRUE;
  trans_class->transform_ip_on_passthrough = TRUE;

  gst_type_mark_as_plugin_api (GST_TYPE_VIM_ANNOTATE_MASK_FORMAT, 0);
}

static void
gst_vim_annotate_init (GstVimAnnotate * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->mask_format = DEFAULT_MASK_FORMAT;
  self->flush_every = DEFAULT_FLUSH_EVERY;
  self->width = self->height = -1;
  self->gen = json_generator_new ();
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), FALSE);
}
