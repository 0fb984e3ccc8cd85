/* A Vim model: the config read from the file's metadata, every tensor checked
 * against it, fp32 host views of the weights, and the labels. */
#include "vim-private.h"
#include "half.h"

#include <math.h>
#include <string.h>

/* Metadata keys this version understands; others must start with "x-". */
static const char *const known_keys[] = {
  "format", "format_version", "task", "name", "image_size", "patch_size",
  "stride", "in_chans", "embed_dim", "depth", "d_state", "expand", "d_conv",
  "dt_rank", "num_classes", "cls_token", "norm_eps", "mean", "std", "resize",
  "crop_ratio", "labels", "labels_file", "seg_layers", "seg_channels",
  "ignore_index", NULL
};

typedef struct {
  const char *path;
  const VimSafetensors *st;
  GError **error;
} MetaReader;

static gboolean
meta_fail (MetaReader *r, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
meta_fail (MetaReader *r, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (r->error, VIM_ERROR, VIM_ERROR_MODEL, "%s: %s", r->path, msg);
  g_free (msg);
  return FALSE;
}

static const char *
meta_get (MetaReader *r, const char *key, gboolean required)
{
  const char *v = vim_safetensors_get_metadata (r->st, key);
  if (v == NULL && required)
    meta_fail (r, "metadata field '%s' is missing", key);
  return v;
}

static gboolean
meta_int (MetaReader *r, const char *key, int min, int max, int dflt,
    gboolean required, int *out)
{
  const char *v = meta_get (r, key, required);
  if (v == NULL) {
    if (required)
      return FALSE;
    *out = dflt;
    return TRUE;
  }
  gint64 x;
  if (!g_ascii_string_to_signed (v, 10, min, max, &x, NULL))
    return meta_fail (r, "metadata field '%s' = '%s' is not an integer in [%d, %d]",
        key, v, min, max);
  *out = (int) x;
  return TRUE;
}

static gboolean
parse_float (const char *s, float *out)
{
  char *end = NULL;
  while (*s == ' ')
    s++;
  if (*s == '\0')
    return FALSE;
  double d = g_ascii_strtod (s, &end);
  while (end && *end == ' ')
    end++;
  if (end == NULL || *end != '\0' || !isfinite (d))
    return FALSE;
  *out = (float) d;
  return TRUE;
}

/* A comma-separated list of exactly n floats. */
static gboolean
meta_floats (MetaReader *r, const char *key, int n, gboolean required,
    float *out)
{
  const char *v = meta_get (r, key, required);
  if (v == NULL)
    return !required;
  char **parts = g_strsplit (v, ",", -1);
  gboolean ok = g_strv_length (parts) == (guint) n;
  for (int i = 0; ok && i < n; i++)
    ok = parse_float (parts[i], &out[i]);
  g_strfreev (parts);
  if (!ok)
    return meta_fail (r, "metadata field '%s' = '%s' is not %d comma-separated numbers",
        key, v, n);
  return TRUE;
}

/* seg_layers: 1 .. VIM_MAX_SEG_LAYERS block indices, ascending, unique. */
static gboolean
meta_seg_layers (MetaReader *r, VimModelConfig *c)
{
  const char *v = meta_get (r, "seg_layers", TRUE);
  if (v == NULL)
    return FALSE;
  char **parts = g_strsplit (v, ",", -1);
  guint n = g_strv_length (parts);
  gboolean ok = n >= 1 && n <= VIM_MAX_SEG_LAYERS;
  for (guint i = 0; ok && i < n; i++) {
    gint64 x;
    ok = g_ascii_string_to_signed (parts[i], 10, 0, c->depth - 1, &x, NULL)
        && (i == 0 || x > c->seg_layers[i - 1]);
    c->seg_layers[i] = (int) x;
  }
  g_strfreev (parts);
  if (!ok)
    return meta_fail (r, "metadata field 'seg_layers' = '%s' is not 1 to %d "
        "ascending, unique block indices in [0, %d]", v, VIM_MAX_SEG_LAYERS,
        c->depth - 1);
  c->n_seg_layers = (int) n;
  return TRUE;
}

/* The segmentation head's keys (docs/segmentation.md); refused on classifiers. */
static gboolean
read_seg_config (MetaReader *r, VimModelConfig *c)
{
  static const char *const seg_keys[] = { "seg_layers", "seg_channels",
    "ignore_index" };
  if (c->task != VIM_TASK_SEGMENTATION) {
    for (guint i = 0; i < G_N_ELEMENTS (seg_keys); i++)
      if (meta_get (r, seg_keys[i], FALSE) != NULL)
        return meta_fail (r, "metadata field '%s' is for task 'segmentation' "
            "only", seg_keys[i]);
    return TRUE;
  }
  /* masks are uint8 class ids */
  if (c->num_classes > 255)
    return meta_fail (r, "a segmentation model has at most 255 classes, not %d",
        c->num_classes);
  return meta_seg_layers (r, c)
      && meta_int (r, "seg_channels", 1, 4096, 0, TRUE, &c->seg_channels)
      && meta_int (r, "ignore_index", -1, 255, -1, FALSE, &c->ignore_index);
}

static gboolean
read_config (MetaReader *r, VimModelConfig *c, char **name_out)
{
  for (const char *const *k = vim_safetensors_metadata_keys (r->st); *k; k++) {
    if (g_str_has_prefix (*k, "x-") || g_strv_contains (known_keys, *k))
      continue;
    return meta_fail (r, "unknown metadata field '%s' (this engine reads format "
        "version 1; informational fields must start with 'x-')", *k);
  }
  const char *v = meta_get (r, "format", TRUE);
  if (v == NULL)
    return FALSE;
  if (strcmp (v, "gst-vim") != 0)
    return meta_fail (r, "metadata 'format' is '%s', expected 'gst-vim'", v);
  if ((v = meta_get (r, "format_version", TRUE)) == NULL)
    return FALSE;
  if (strcmp (v, "1") != 0)
    return meta_fail (r, "format_version '%s' is not supported (this engine reads 1)", v);

  if ((v = meta_get (r, "task", TRUE)) == NULL)
    return FALSE;
  if (strcmp (v, "classification") == 0)
    c->task = VIM_TASK_CLASSIFICATION;
  else if (strcmp (v, "segmentation") == 0)
    c->task = VIM_TASK_SEGMENTATION;
  else
    return meta_fail (r, "task '%s' is unknown", v);

  if ((v = meta_get (r, "name", TRUE)) == NULL)
    return FALSE;
  *name_out = g_strdup (v);

  float size[2];
  if (!meta_floats (r, "image_size", 2, TRUE, size))
    return FALSE;
  if (size[0] != floorf (size[0]) || size[1] != floorf (size[1])
      || size[0] < 1 || size[1] < 1 || size[0] > 8192 || size[1] > 8192)
    return meta_fail (r, "image_size must be two integers in [1, 8192]");
  c->image_height = (int) size[0];
  c->image_width = (int) size[1];

  if (!meta_int (r, "patch_size", 1, 64, 0, TRUE, &c->patch_size)
      || !meta_int (r, "stride", 1, 64, 0, TRUE, &c->stride)
      || !meta_int (r, "in_chans", 3, 3, 3, FALSE, &c->in_chans)
      || !meta_int (r, "embed_dim", 1, 8192, 0, TRUE, &c->embed_dim)
      || !meta_int (r, "depth", 1, 256, 0, TRUE, &c->depth)
      || !meta_int (r, "d_state", 1, 256, 0, TRUE, &c->d_state)
      || !meta_int (r, "expand", 1, 8, 0, TRUE, &c->expand)
      || !meta_int (r, "d_conv", 1, 8, 0, TRUE, &c->d_conv)
      || !meta_int (r, "dt_rank", 1, 8192, 0, TRUE, &c->dt_rank)
      || !meta_int (r, "num_classes", 1, 1000000, 0, TRUE, &c->num_classes))
    return FALSE;
  if (c->stride > c->patch_size)
    return meta_fail (r, "stride %d is larger than patch_size %d", c->stride,
        c->patch_size);
  if (c->image_height < c->patch_size || c->image_width < c->patch_size)
    return meta_fail (r, "image_size %dx%d is smaller than one %d-pixel patch",
        c->image_height, c->image_width, c->patch_size);
  if ((c->image_height - c->patch_size) % c->stride != 0
      || (c->image_width - c->patch_size) % c->stride != 0)
    return meta_fail (r, "image_size %dx%d does not fit patch_size %d and stride %d "
        "((size - patch_size) %% stride must be 0)", c->image_height,
        c->image_width, c->patch_size, c->stride);
  c->d_inner = c->expand * c->embed_dim;
  c->grid_h = (c->image_height - c->patch_size) / c->stride + 1;
  c->grid_w = (c->image_width - c->patch_size) / c->stride + 1;
  c->num_patches = c->grid_h * c->grid_w;

  if ((v = meta_get (r, "cls_token", TRUE)) == NULL)
    return FALSE;
  if (strcmp (v, "middle") == 0)
    c->cls_index = c->num_patches / 2;
  else if (strcmp (v, "none") == 0)
    c->cls_index = -1;
  else
    return meta_fail (r, "cls_token '%s' is unknown (middle, none)", v);
  if (c->task == VIM_TASK_CLASSIFICATION && c->cls_index < 0)
    return meta_fail (r, "a classification model needs cls_token 'middle'");
  if (c->task == VIM_TASK_SEGMENTATION && c->cls_index >= 0)
    return meta_fail (r, "a segmentation model needs cls_token 'none'");
  c->seq_len = c->num_patches + (c->cls_index >= 0 ? 1 : 0);

  c->norm_eps = 1e-5f;
  if ((v = meta_get (r, "norm_eps", FALSE)) != NULL
      && (!parse_float (v, &c->norm_eps) || c->norm_eps <= 0 || c->norm_eps > 1))
    return meta_fail (r, "norm_eps '%s' is not a number in (0, 1]", v);
  if (!meta_floats (r, "mean", 3, TRUE, c->mean)
      || !meta_floats (r, "std", 3, TRUE, c->std))
    return FALSE;
  for (int i = 0; i < 3; i++)
    if (!(c->std[i] > 0))
      return meta_fail (r, "std values must be positive");

  if ((v = meta_get (r, "resize", TRUE)) == NULL)
    return FALSE;
  if (strcmp (v, "short-side-crop") == 0)
    c->resize = VIM_RESIZE_SHORT_SIDE_CROP;
  else if (strcmp (v, "stretch") == 0)
    c->resize = VIM_RESIZE_STRETCH;
  else if (strcmp (v, "letterbox") == 0)
    c->resize = VIM_RESIZE_LETTERBOX;
  else
    return meta_fail (r, "resize '%s' is unknown (short-side-crop, stretch, letterbox)", v);
  c->crop_ratio = 0.875f;
  if ((v = meta_get (r, "crop_ratio", FALSE)) != NULL
      && (!parse_float (v, &c->crop_ratio) || !(c->crop_ratio > 0)
          || c->crop_ratio > 1))
    return meta_fail (r, "crop_ratio '%s' is not a number in (0, 1]", v);
  /* keeps the crop geometry finite (a tiny ratio made it inf/NaN) */
  if (floorf (MIN (c->image_height, c->image_width) / c->crop_ratio) > 65536)
    return meta_fail (r, "crop_ratio %g resizes the short side to more than 65536 pixels",
        c->crop_ratio);
  return read_seg_config (r, c);
}

/* ---- tensors ------------------------------------------------------------ */

typedef struct {
  VimModel *model;
  GHashTable *seen;
  float *arena;
  size_t arena_used;
  GError **error;
} TensorBinder;

static void
half_to_float (const guint8 *in, float *out, size_t n, gboolean bf16)
{
  for (size_t i = 0; i < n; i++) {
    /* bytewise: a tensor may start at an odd offset in the file */
    guint16 h = (guint16) (in[2 * i] | (in[2 * i + 1] << 8));
    out[i] = bf16 ? vim_bf16_to_f32 (h) : vim_f16_to_f32 (h);
  }
}

static size_t
shape_count (const int64_t *shape, int ndim)
{
  size_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= (size_t) shape[i];
  return n;
}

static char *
shape_string (const int64_t *shape, int ndim)
{
  GString *s = g_string_new ("(");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append (s, ")");
  return g_string_free (s, FALSE);
}

/* Looks a tensor up, checks its shape and returns an fp32 view. */
static const float *
bind (TensorBinder *b, const char *name, int ndim, ...)
{
  VimModel *m = b->model;
  int64_t want[VIM_MAX_DIMS];
  va_list ap;
  va_start (ap, ndim);
  for (int i = 0; i < ndim; i++)
    want[i] = va_arg (ap, int);
  va_end (ap);

  const VimTensorInfo *t = vim_safetensors_find (m->st, name);
  if (t == NULL) {
    g_set_error (b->error, VIM_ERROR, VIM_ERROR_MODEL,
        "%s: required tensor '%s' is missing", m->path, name);
    return NULL;
  }
  gboolean same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = t->shape[i] == want[i];
  if (!same) {
    char *got = shape_string (t->shape, t->ndim), *exp = shape_string (want, ndim);
    char seg_note[48] = "";
    if (m->config.task == VIM_TASK_SEGMENTATION)
      g_snprintf (seg_note, sizeof seg_note, ", seg_channels %d",
          m->config.seg_channels);
    g_set_error (b->error, VIM_ERROR, VIM_ERROR_MODEL,
        "%s: tensor '%s' has shape %s but the model's metadata (embed_dim %d, "
        "depth %d, d_state %d, expand %d, d_conv %d, dt_rank %d, %d classes, "
        "%d tokens%s) needs %s", m->path, name, got, m->config.embed_dim,
        m->config.depth, m->config.d_state, m->config.expand, m->config.d_conv,
        m->config.dt_rank, m->config.num_classes, m->config.seq_len,
        seg_note, exp);
    g_free (got);
    g_free (exp);
    return NULL;
  }
  g_hash_table_add (b->seen, (gpointer) t->name);
  if (t->dtype == VIM_DTYPE_F32 && ((uintptr_t) t->data % 4) == 0
      && G_BYTE_ORDER == G_LITTLE_ENDIAN)
    return t->data;
  float *dst = b->arena + b->arena_used;
  b->arena_used += t->n_elements;
  if (t->dtype == VIM_DTYPE_F32)
    memcpy (dst, t->data, t->nbytes);
  else
    half_to_float (t->data, dst, t->n_elements, t->dtype == VIM_DTYPE_BF16);
  return dst;
}

#define BIND(var, ...) \
  do { if (((var) = bind (b, __VA_ARGS__)) == NULL) return FALSE; } while (0)

static gboolean
bind_weights (TensorBinder *b)
{
  VimModel *m = b->model;
  const VimModelConfig *c = &m->config;
  const int D = c->embed_dim, E = c->d_inner, N = c->d_state, K = c->d_conv,
      R = c->dt_rank, P = c->patch_size, L = c->seq_len, C = c->num_classes;
  VimWeights *w = &m->w;

  if (c->cls_index >= 0)
    BIND (w->cls_token, "cls_token", 3, 1, 1, D);
  BIND (w->pos_embed, "pos_embed", 3, 1, L, D);
  BIND (w->patch_w, "patch_embed.proj.weight", 4, D, 3, P, P);
  BIND (w->patch_b, "patch_embed.proj.bias", 1, D);
  if (c->task == VIM_TASK_CLASSIFICATION) {
    BIND (w->head_w, "head.weight", 2, C, D);
    BIND (w->head_b, "head.bias", 1, C);
    BIND (w->norm_f_w, "norm_f.weight", 1, D);
  } else {
    const int Ch = c->seg_channels;
    /* a segmenter reads no final norm; a file may still carry it */
    if (vim_safetensors_find (m->st, "norm_f.weight") != NULL)
      BIND (w->norm_f_w, "norm_f.weight", 1, D);
    for (int i = 0; i < c->n_seg_layers; i++) {
      char name[64];
      g_snprintf (name, sizeof name, "seg_head.proj.%d.weight", i);
      BIND (w->seg_proj_w[i], name, 2, Ch, D);
    }
    BIND (w->seg_proj_b, "seg_head.proj_bias", 1, Ch);
    BIND (w->seg_dw_w, "seg_head.dwconv.weight", 4, Ch, 1, 3, 3);
    BIND (w->seg_dw_b, "seg_head.dwconv.bias", 1, Ch);
    BIND (w->seg_cls_w, "seg_head.cls.weight", 2, C, Ch);
    BIND (w->seg_cls_b, "seg_head.cls.bias", 1, C);
  }
  w->layers = g_new0 (VimLayerWeights, c->depth);
  static const char *const suffix[2] = { "", "_b" };
  for (int i = 0; i < c->depth; i++) {
    VimLayerWeights *lw = &w->layers[i];
    char name[128];
#define LNAME(fmt, ...) (g_snprintf (name, sizeof name, "layers.%d." fmt, i, __VA_ARGS__), name)
    BIND (lw->norm_w, LNAME ("%s", "norm.weight"), 1, D);
    BIND (lw->in_proj_w, LNAME ("%s", "mixer.in_proj.weight"), 2, 2 * E, D);
    BIND (lw->out_proj_w, LNAME ("%s", "mixer.out_proj.weight"), 2, D, E);
    for (int d = 0; d < 2; d++) {
      VimDirectionWeights *dw = &lw->dir[d];
      const char *s = suffix[d];
      BIND (dw->conv_w, LNAME ("mixer.conv1d%s.weight", s), 3, E, 1, K);
      BIND (dw->conv_b, LNAME ("mixer.conv1d%s.bias", s), 1, E);
      BIND (dw->x_proj_w, LNAME ("mixer.x_proj%s.weight", s), 2, R + 2 * N, E);
      BIND (dw->dt_proj_w, LNAME ("mixer.dt_proj%s.weight", s), 2, E, R);
      BIND (dw->dt_proj_b, LNAME ("mixer.dt_proj%s.bias", s), 1, E);
      BIND (dw->A_log, LNAME ("mixer.A%s_log", s), 2, E, N);
      BIND (dw->D, LNAME ("mixer.D%s", s), 1, E);
    }
#undef LNAME
  }
  /* Anything left over means the file is not the model its metadata says. */
  for (int i = 0; i < vim_safetensors_n_tensors (m->st); i++) {
    const VimTensorInfo *t = vim_safetensors_nth (m->st, i);
    if (!g_hash_table_contains (b->seen, t->name)) {
      g_set_error (b->error, VIM_ERROR, VIM_ERROR_MODEL,
          "%s: unexpected tensor '%s' for a depth-%d %s model", m->path,
          t->name, c->depth, c->task == VIM_TASK_SEGMENTATION
          ? "segmentation" : "classification");
      return FALSE;
    }
  }
  return TRUE;
}

#undef BIND

/* ---- labels ------------------------------------------------------------- */

static char **
split_labels (const char *text, int n, const char *origin, const char *path,
    GError **error)
{
  char **lines = g_strsplit (text, "\n", -1);
  guint count = g_strv_length (lines);
  /* a file may end with a newline: that ends the last label, it adds none
   * (so 2 labels + newline are 2 labels, not 3 with an empty one) */
  if (count > 0 && lines[count - 1][0] == '\0') {
    g_free (lines[count - 1]);
    lines[count - 1] = NULL;
    count--;
  }
  if (count != (guint) n) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_MODEL,
        "%s: %s has %u labels but the model has %d classes", path, origin,
        count, n);
    g_strfreev (lines);
    return NULL;
  }
  for (guint i = 0; i < count; i++)
    g_strchomp (lines[i]);  /* tolerate CRLF files */
  return lines;
}

gboolean
vim_model_load_labels (VimModel *model, const char *path, GError **error)
{
  char *text = NULL;
  GError *err = NULL;
  if (!g_file_get_contents (path, &text, NULL, &err)) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_IO, "%s: cannot read labels: %s",
        path, err->message);
    g_error_free (err);
    return FALSE;
  }
  char **labels = split_labels (text, model->config.num_classes,
      "the labels file", path, error);
  g_free (text);
  if (labels == NULL)
    return FALSE;
  g_strfreev (model->labels);
  model->labels = labels;
  return TRUE;
}

static gboolean
load_model_labels (VimModel *m, GError **error)
{
  const char *text = vim_safetensors_get_metadata (m->st, "labels");
  if (text != NULL) {
    m->labels = split_labels (text, m->config.num_classes,
        "the 'labels' metadata", m->path, error);
    return m->labels != NULL;
  }
  const char *file = vim_safetensors_get_metadata (m->st, "labels_file");
  if (file == NULL)
    return TRUE;
  if (strchr (file, '/') != NULL || strcmp (file, "..") == 0) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_MODEL,
        "%s: labels_file '%s' must be a plain file name beside the model",
        m->path, file);
    return FALSE;
  }
  char *dir = g_path_get_dirname (m->path);
  char *full = g_build_filename (dir, file, NULL);
  gboolean ok = vim_model_load_labels (m, full, error);
  if (!ok)  /* name the model too, not just the labels file */
    g_prefix_error (error, "%s: labels_file: ", m->path);
  g_free (dir);
  g_free (full);
  return ok;
}

/* ---- public ------------------------------------------------------------- */

VimModel *
vim_model_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  VimSafetensors *st = vim_safetensors_open (path, error);
  if (st == NULL)
    return NULL;
  VimModel *m = g_new0 (VimModel, 1);
  m->ref_count = 1;
  m->path = g_strdup (path);
  m->st = st;
  g_mutex_init (&m->device_lock);

  MetaReader reader = { path, st, error };
  if (!read_config (&reader, &m->config, &m->name))
    goto error;
  m->config.name = m->name;

  size_t need = 0;
  for (int i = 0; i < vim_safetensors_n_tensors (st); i++) {
    const VimTensorInfo *t = vim_safetensors_nth (st, i);
    need += shape_count (t->shape, t->ndim);
  }
  /* Only tensors not usable in place take arena space; size for the worst case lazily. */
  gboolean all_in_place = TRUE;
  for (int i = 0; i < vim_safetensors_n_tensors (st); i++) {
    const VimTensorInfo *t = vim_safetensors_nth (st, i);
    if (t->dtype != VIM_DTYPE_F32 || ((uintptr_t) t->data % 4) != 0)
      all_in_place = FALSE;
  }
  if (!all_in_place || G_BYTE_ORDER != G_LITTLE_ENDIAN) {
    m->converted = g_try_new (float, need ? need : 1);
    if (m->converted == NULL) {
      g_set_error (error, VIM_ERROR, VIM_ERROR_IO,
          "%s: out of memory converting %zu weights to fp32", path, need);
      goto error;
    }
  }
  TensorBinder b = { m, g_hash_table_new (g_str_hash, g_str_equal),
    m->converted, 0, error };
  gboolean ok = bind_weights (&b);
  g_hash_table_destroy (b.seen);
  if (!ok || !load_model_labels (m, error))
    goto error;
  return m;

error:
  vim_model_unref (m);
  return NULL;
}

VimModel *
vim_model_ref (VimModel *model)
{
  g_atomic_int_inc (&model->ref_count);
  return model;
}

void
vim_model_unref (VimModel *model)
{
  if (model == NULL || !g_atomic_int_dec_and_test (&model->ref_count))
    return;
  g_warn_if_fail (model->device_weights == NULL);
  g_free (model->w.layers);
  g_free (model->converted);
  g_strfreev (model->labels);
  vim_safetensors_free (model->st);
  g_mutex_clear (&model->device_lock);
  g_free (model->name);
  g_free (model->path);
  g_free (model);
}

const VimModelConfig *
vim_model_get_config (const VimModel *model)
{
  return &model->config;
}

const char *
vim_model_get_path (const VimModel *model)
{
  return model->path;
}

const char *
vim_model_get_label (const VimModel *model, int class_id)
{
  if (model->labels == NULL || class_id < 0 || class_id >= model->config.num_classes)
    return NULL;
  return model->labels[class_id];
}
