/* A tiny gst-vim model file built in memory, for the loader tests.
 *
 * A ModelSpec lists the tensors (name, dtype, shape) and the metadata of a
 * valid tiny classification model; a test edits the spec (drop a tensor,
 * change a shape, replace a metadata value, splice raw JSON into an entry)
 * and/or the serialized bytes, writes the file and opens it.
 *
 * Tensor data is a fixed pattern of multiples of 1/16 in [-15/16, 15/16]
 * (exact in F32, F16 and BF16), so a test can check the converted weights. */
#ifndef VIM_TEST_MODEL_BUILDER_H
#define VIM_TEST_MODEL_BUILDER_H

#include <glib.h>
#include <string.h>

#define MB_MAX_DIMS 8

typedef struct {
  char *name;
  char *dtype;                /* "F32", "F16", "BF16" or anything (2-byte data assumed unless F32/I64) */
  int ndim;
  gint64 shape[MB_MAX_DIMS];
  char *raw;                  /* verbatim JSON for the entry (the tensor gets no data) */
  char *shape_json;           /* verbatim JSON for "shape" */
  char *extra_field;          /* verbatim `"key":value` added to the entry */
  gboolean omit_dtype;
  gboolean set_offsets;       /* write offsets below instead of the real ones */
  guint64 begin, end;
  /* filled by mb_serialize */
  guint64 real_begin, real_end;
} MbTensor;

typedef struct {
  char *key;
  char *json;                 /* the value as JSON text (a quoted string normally) */
} MbMeta;

typedef struct {
  GPtrArray *tensors;         /* MbTensor* */
  GPtrArray *meta;            /* MbMeta* */
  char *meta_raw;             /* verbatim JSON for __metadata__ */
  gboolean no_meta;
  int header_extra_pad;       /* spaces added to the header after 8-alignment */
  int align;                  /* data alignment of each tensor (default 8) */
} ModelSpec;

/* The tiny model: 16x16 input, patch 8, stride 8 (2x2 grid, 4 patches, L = 5),
 * D = 8, depth 1, N = 4, expand 2 (E = 16), K = 4, R = 1, 3 classes. */
#define MB_D 8
#define MB_DEPTH 1
#define MB_N 4
#define MB_E 16
#define MB_K 4
#define MB_R 1
#define MB_C 3
#define MB_P 8
#define MB_L 5
#define MB_IMG 16

static inline char *
mb_json_string (const char *s)
{
  GString *g = g_string_new ("\"");
  for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (g, "\\%c", *p);
    else if (*p == '\n')
      g_string_append (g, "\\n");
    else if (*p < 0x20)
      g_string_append_printf (g, "\\u%04x", *p);
    else
      g_string_append_c (g, (char) *p);
  }
  g_string_append_c (g, '"');
  return g_string_free (g, FALSE);
}

static inline void
mb_tensor_free (gpointer p)
{
  MbTensor *t = p;
  g_free (t->name);
  g_free (t->dtype);
  g_free (t->raw);
  g_free (t->shape_json);
  g_free (t->extra_field);
  g_free (t);
}

static inline void
mb_meta_free (gpointer p)
{
  MbMeta *m = p;
  g_free (m->key);
  g_free (m->json);
  g_free (m);
}

static inline MbTensor *
mb_add_tensor (ModelSpec *s, const char *name, const char *dtype, int ndim, ...)
{
  MbTensor *t = g_new0 (MbTensor, 1);
  t->name = g_strdup (name);
  t->dtype = g_strdup (dtype);
  t->ndim = ndim;
  va_list ap;
  va_start (ap, ndim);
  for (int i = 0; i < ndim; i++)
    t->shape[i] = va_arg (ap, int);
  va_end (ap);
  g_ptr_array_add (s->tensors, t);
  return t;
}

static inline MbTensor *
mb_find (ModelSpec *s, const char *name)
{
  for (guint i = 0; i < s->tensors->len; i++) {
    MbTensor *t = s->tensors->pdata[i];
    if (strcmp (t->name, name) == 0)
      return t;
  }
  g_error ("model builder: no tensor '%s'", name);
  return NULL;
}

static inline void
mb_remove_tensor (ModelSpec *s, const char *name)
{
  g_ptr_array_remove (s->tensors, mb_find (s, name));
}

/* Sets a metadata value given as JSON text; NULL removes the key. */
static inline void
mb_set_meta_json (ModelSpec *s, const char *key, const char *json)
{
  for (guint i = 0; i < s->meta->len; i++) {
    MbMeta *m = s->meta->pdata[i];
    if (strcmp (m->key, key) == 0) {
      if (json == NULL) {
        g_ptr_array_remove_index (s->meta, i);
      } else {
        g_free (m->json);
        m->json = g_strdup (json);
      }
      return;
    }
  }
  if (json == NULL)
    return;
  MbMeta *m = g_new0 (MbMeta, 1);
  m->key = g_strdup (key);
  m->json = g_strdup (json);
  g_ptr_array_add (s->meta, m);
}

static inline void
mb_set_meta (ModelSpec *s, const char *key, const char *value)
{
  char *j = value ? mb_json_string (value) : NULL;
  mb_set_meta_json (s, key, j);
  g_free (j);
}

static inline void
mb_set_dtype_all (ModelSpec *s, const char *dtype)
{
  for (guint i = 0; i < s->tensors->len; i++) {
    MbTensor *t = s->tensors->pdata[i];
    g_free (t->dtype);
    t->dtype = g_strdup (dtype);
  }
}

static inline ModelSpec *
mb_new_tiny (void)
{
  ModelSpec *s = g_new0 (ModelSpec, 1);
  s->tensors = g_ptr_array_new_with_free_func (mb_tensor_free);
  s->meta = g_ptr_array_new_with_free_func (mb_meta_free);
  s->align = 8;
  static const char *const meta[][2] = {
    { "format", "gst-vim" }, { "format_version", "1" },
    { "task", "classification" }, { "name", "vim_loader_test_tiny" },
    { "image_size", "16,16" }, { "patch_size", "8" }, { "stride", "8" },
    { "in_chans", "3" }, { "embed_dim", "8" }, { "depth", "1" },
    { "d_state", "4" }, { "expand", "2" }, { "d_conv", "4" },
    { "dt_rank", "1" }, { "num_classes", "3" }, { "cls_token", "middle" },
    { "norm_eps", "1e-05" }, { "mean", "0.485,0.456,0.406" },
    { "std", "0.229,0.224,0.225" }, { "resize", "stretch" },
    { "crop_ratio", "0.875" }, { "labels", "cat\ndog\nbird" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (meta); i++)
    mb_set_meta (s, meta[i][0], meta[i][1]);

  const char *f = "F32";
  mb_add_tensor (s, "cls_token", f, 3, 1, 1, MB_D);
  mb_add_tensor (s, "pos_embed", f, 3, 1, MB_L, MB_D);
  mb_add_tensor (s, "patch_embed.proj.weight", f, 4, MB_D, 3, MB_P, MB_P);
  mb_add_tensor (s, "patch_embed.proj.bias", f, 1, MB_D);
  mb_add_tensor (s, "head.weight", f, 2, MB_C, MB_D);
  mb_add_tensor (s, "head.bias", f, 1, MB_C);
  for (int i = 0; i < MB_DEPTH; i++) {
    char n[96];
#define T(suffix, ...) (g_snprintf (n, sizeof n, "layers.%d.%s", i, suffix), \
      mb_add_tensor (s, n, f, __VA_ARGS__))
    T ("mixer.A_log", 2, MB_E, MB_N);
    T ("mixer.D", 1, MB_E);
    T ("mixer.A_b_log", 2, MB_E, MB_N);
    T ("mixer.D_b", 1, MB_E);
    T ("mixer.in_proj.weight", 2, 2 * MB_E, MB_D);
    T ("mixer.conv1d.weight", 3, MB_E, 1, MB_K);
    T ("mixer.conv1d.bias", 1, MB_E);
    T ("mixer.x_proj.weight", 2, MB_R + 2 * MB_N, MB_E);
    T ("mixer.dt_proj.weight", 2, MB_E, MB_R);
    T ("mixer.dt_proj.bias", 1, MB_E);
    T ("mixer.conv1d_b.weight", 3, MB_E, 1, MB_K);
    T ("mixer.conv1d_b.bias", 1, MB_E);
    T ("mixer.x_proj_b.weight", 2, MB_R + 2 * MB_N, MB_E);
    T ("mixer.dt_proj_b.weight", 2, MB_E, MB_R);
    T ("mixer.dt_proj_b.bias", 1, MB_E);
    T ("mixer.out_proj.weight", 2, MB_D, MB_E);
    T ("norm.weight", 1, MB_D);
#undef T
  }
  mb_add_tensor (s, "norm_f.weight", f, 1, MB_D);
  return s;
}

/* The tiny model as a segmenter (docs/segmentation.md): no class token
 * (L = 4), no head.* and no norm_f, seg_layers "0", C_h = MB_CH. */
#define MB_CH 4

static inline ModelSpec *
mb_new_tiny_seg (void)
{
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "task", "segmentation");
  mb_set_meta (s, "name", "vim_loader_test_tiny_seg");
  mb_set_meta (s, "cls_token", "none");
  mb_set_meta (s, "seg_layers", "0");
  mb_set_meta (s, "seg_channels", "4");
  mb_set_meta (s, "ignore_index", "255");
  mb_remove_tensor (s, "cls_token");
  mb_remove_tensor (s, "head.weight");
  mb_remove_tensor (s, "head.bias");
  mb_remove_tensor (s, "norm_f.weight");
  mb_find (s, "pos_embed")->shape[1] = MB_L - 1;
  const char *f = "F32";
  mb_add_tensor (s, "seg_head.proj.0.weight", f, 2, MB_CH, MB_D);
  mb_add_tensor (s, "seg_head.proj_bias", f, 1, MB_CH);
  mb_add_tensor (s, "seg_head.dwconv.weight", f, 4, MB_CH, 1, 3, 3);
  mb_add_tensor (s, "seg_head.dwconv.bias", f, 1, MB_CH);
  mb_add_tensor (s, "seg_head.cls.weight", f, 2, MB_C, MB_CH);
  mb_add_tensor (s, "seg_head.cls.bias", f, 1, MB_C);
  return s;
}

static inline void
mb_free (ModelSpec *s)
{
  g_ptr_array_unref (s->tensors);
  g_ptr_array_unref (s->meta);
  g_free (s->meta_raw);
  g_free (s);
}

/* Element j of a tensor: a multiple of 1/16 in [-15/16, 15/16]. */
static inline float
mb_value (const char *name, size_t j)
{
  guint h = g_str_hash (name) % 31;
  return (float) ((int) ((h + j * 7) % 31) - 15) / 16.0f;
}

/* float -> IEEE half for values that are exact in half (normal or zero). */
static inline guint16
mb_f16 (float f)
{
  guint32 b;
  memcpy (&b, &f, 4);
  guint16 sign = (b >> 16) & 0x8000;
  int exp = (int) ((b >> 23) & 0xff);
  if (exp == 0)
    return sign;
  return sign | (guint16) ((exp - 112) << 10) | (guint16) ((b >> 13) & 0x3ff);
}

static inline size_t
mb_dtype_size (const char *dtype)
{
  if (strcmp (dtype, "F32") == 0)
    return 4;
  if (strcmp (dtype, "I64") == 0 || strcmp (dtype, "F64") == 0)
    return 8;
  return 2;
}

/* The whole file. */
static inline GByteArray *
mb_serialize (ModelSpec *s)
{
  GByteArray *data = g_byte_array_new ();
  GString *h = g_string_new ("{");
  gboolean first = TRUE;
  if (!s->no_meta) {
    g_string_append (h, "\"__metadata__\":");
    if (s->meta_raw) {
      g_string_append (h, s->meta_raw);
    } else {
      g_string_append_c (h, '{');
      for (guint i = 0; i < s->meta->len; i++) {
        MbMeta *m = s->meta->pdata[i];
        char *k = mb_json_string (m->key);
        g_string_append_printf (h, "%s%s:%s", i ? "," : "", k, m->json);
        g_free (k);
      }
      g_string_append_c (h, '}');
    }
    first = FALSE;
  }
  for (guint i = 0; i < s->tensors->len; i++) {
    MbTensor *t = s->tensors->pdata[i];
    char *name = mb_json_string (t->name);
    g_string_append_printf (h, "%s%s:", first ? "" : ",", name);
    g_free (name);
    first = FALSE;
    if (t->raw) {
      g_string_append (h, t->raw);
      continue;
    }
    size_t count = 1;
    for (int d = 0; d < t->ndim; d++)
      count *= (size_t) MAX (t->shape[d], 0);
    size_t esz = mb_dtype_size (t->dtype), nbytes = count * esz;
    while (data->len % s->align)
      g_byte_array_append (data, (const guint8 *) "", 1);
    t->real_begin = data->len;
    for (size_t j = 0; j < count; j++) {
      float v = mb_value (t->name, j);
      guint8 buf[8] = { 0 };
      if (esz == 4) {
        memcpy (buf, &v, 4);
      } else if (esz == 2) {
        guint32 bits;
        memcpy (&bits, &v, 4);
        guint16 w = strcmp (t->dtype, "BF16") == 0 ? (guint16) (bits >> 16) : mb_f16 (v);
        buf[0] = w & 0xff;
        buf[1] = w >> 8;
      } else {
        gint64 iv = (gint64) (v * 16);
        memcpy (buf, &iv, 8);
      }
      g_byte_array_append (data, buf, esz);
    }
    t->real_end = t->real_begin + nbytes;
    g_string_append_c (h, '{');
    if (!t->omit_dtype) {
      char *dt = mb_json_string (t->dtype);
      g_string_append_printf (h, "\"dtype\":%s,", dt);
      g_free (dt);
    }
    g_string_append (h, "\"shape\":");
    if (t->shape_json) {
      g_string_append (h, t->shape_json);
    } else {
      g_string_append_c (h, '[');
      for (int d = 0; d < t->ndim; d++)
        g_string_append_printf (h, "%s%" G_GINT64_FORMAT, d ? "," : "", t->shape[d]);
      g_string_append_c (h, ']');
    }
    g_string_append_printf (h, ",\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]",
        t->set_offsets ? t->begin : t->real_begin, t->set_offsets ? t->end : t->real_end);
    if (t->extra_field)
      g_string_append_printf (h, ",%s", t->extra_field);
    g_string_append_c (h, '}');
  }
  g_string_append_c (h, '}');
  while (h->len % 8)
    g_string_append_c (h, ' ');
  for (int i = 0; i < s->header_extra_pad; i++)
    g_string_append_c (h, ' ');

  GByteArray *out = g_byte_array_sized_new (8 + h->len + data->len);
  guint8 len[8];
  guint64 n = h->len;
  for (int i = 0; i < 8; i++)
    len[i] = (n >> (8 * i)) & 0xff;
  g_byte_array_append (out, len, 8);
  g_byte_array_append (out, (const guint8 *) h->str, h->len);
  g_byte_array_append (out, data->data, data->len);
  g_string_free (h, TRUE);
  g_byte_array_unref (data);
  return out;
}

/* Byte-level helpers on a serialized file. */
static inline guint64
mb_header_len (const GByteArray *b)
{
  guint64 n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | b->data[i];
  return n;
}

static inline void
mb_set_header_len (GByteArray *b, guint64 n)
{
  for (int i = 0; i < 8; i++)
    b->data[i] = (n >> (8 * i)) & 0xff;
}

/* Replaces the JSON header (length updated), keeping the data section. */
static inline void
mb_replace_header (GByteArray *b, const char *json, gsize len)
{
  guint64 old = mb_header_len (b);
  GByteArray *rest = g_byte_array_new ();
  g_byte_array_append (rest, b->data + 8 + old, (guint) (b->len - 8 - old));
  g_byte_array_set_size (b, 8);
  mb_set_header_len (b, len);
  g_byte_array_append (b, (const guint8 *) json, (guint) len);
  g_byte_array_append (b, rest->data, rest->len);
  g_byte_array_unref (rest);
}

#endif
