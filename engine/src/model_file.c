/* The safetensors container: map the file, parse and check the JSON header,
 * and hand out validated tensor views. Nothing here knows about Vim; model.c
 * checks the tensors against the architecture.
 *
 * Every check happens before any tensor byte is read, and every failure is a
 * GError that names the file and, where there is one, the tensor. */
#include "vim-private.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define HEADER_MAX (64u * 1024u * 1024u)

struct _VimSafetensors {
  char *path;
  GMappedFile *mapping;
  const guint8 *bytes;
  gsize size;
  VimTensorInfo *tensors;
  int n_tensors;
  GHashTable *by_name;           /* name -> VimTensorInfo* */
  GHashTable *metadata;          /* key -> value (owned strings) */
  const char **metadata_keys;
};

G_DEFINE_QUARK (vim-error-quark, vim_error)

static gboolean
fail (GError **error, VimError code, const char *path, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);

static gboolean
fail (GError **error, VimError code, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, VIM_ERROR, code, "%s: %s", path, msg);
  g_free (msg);
  return FALSE;
}

static gsize
dtype_size (VimDType dt)
{
  return dt == VIM_DTYPE_F32 ? 4 : 2;
}

static gboolean
parse_dtype (const char *s, VimDType *out)
{
  if (g_strcmp0 (s, "F32") == 0)
    *out = VIM_DTYPE_F32;
  else if (g_strcmp0 (s, "F16") == 0)
    *out = VIM_DTYPE_F16;
  else if (g_strcmp0 (s, "BF16") == 0)
    *out = VIM_DTYPE_BF16;
  else
    return FALSE;
  return TRUE;
}

/* A JSON integer >= 0 (not a float, string or bool). */
static gboolean
node_get_uint (JsonNode *node, guint64 *out)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = (guint64) v;
  return TRUE;
}

static gboolean
parse_metadata (VimSafetensors *st, JsonNode *node, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, VIM_ERROR_FORMAT, st->path, "__metadata__ is not an object");
  JsonObject *obj = json_node_get_object (node);
  GList *members = json_object_get_members (obj);
  for (GList *l = members; l; l = l->next) {
    const char *key = l->data;
    JsonNode *v = json_object_get_member (obj, key);
    if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING) {
      g_list_free (members);
      return fail (error, VIM_ERROR_FORMAT, st->path,
          "__metadata__ value of '%s' is not a string", key);
    }
    g_hash_table_insert (st->metadata, g_strdup (key),
        g_strdup (json_node_get_string (v)));
  }
  g_list_free (members);
  return TRUE;
}

static gboolean
parse_tensor (VimSafetensors *st, const char *name, JsonNode *node,
    VimTensorInfo *t, gsize data_len, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, VIM_ERROR_FORMAT, st->path,
        "tensor '%s': entry is not an object", name);
  JsonObject *obj = json_node_get_object (node);
  GList *members = json_object_get_members (obj);
  for (GList *l = members; l; l = l->next) {
    const char *k = l->data;
    if (strcmp (k, "dtype") && strcmp (k, "shape") && strcmp (k, "data_offsets")) {
      g_list_free (members);
      return fail (error, VIM_ERROR_FORMAT, st->path,
          "tensor '%s': unknown field '%s'", name, k);
    }
  }
  g_list_free (members);

  JsonNode *dt = json_object_get_member (obj, "dtype");
  if (dt == NULL || !JSON_NODE_HOLDS_VALUE (dt)
      || json_node_get_value_type (dt) != G_TYPE_STRING)
    return fail (error, VIM_ERROR_FORMAT, st->path,
        "tensor '%s': missing or non-string dtype", name);
  if (!parse_dtype (json_node_get_string (dt), &t->dtype))
    return fail (error, VIM_ERROR_MODEL, st->path,
        "tensor '%s': dtype %s is not supported (F32, F16, BF16)", name,
        json_node_get_string (dt));

  JsonNode *shape = json_object_get_member (obj, "shape");
  if (shape == NULL || !JSON_NODE_HOLDS_ARRAY (shape))
    return fail (error, VIM_ERROR_FORMAT, st->path,
        "tensor '%s': missing or non-array shape", name);
  JsonArray *sa = json_node_get_array (shape);
  guint ndim = json_array_get_length (sa);
  if (ndim > VIM_MAX_DIMS)
    return fail (error, VIM_ERROR_MODEL, st->path,
        "tensor '%s': %u dimensions (at most %d)", name, ndim, VIM_MAX_DIMS);
  t->ndim = (int) ndim;
  guint64 count = 1;
  for (guint i = 0; i < ndim; i++) {
    guint64 d;
    if (!node_get_uint (json_array_get_element (sa, i), &d))
      return fail (error, VIM_ERROR_FORMAT, st->path,
          "tensor '%s': shape[%u] is not a non-negative integer", name, i);
    /* no product can exceed the file; this also keeps the product from overflowing */
    if (d > data_len || (d != 0 && count > data_len / d))
      return fail (error, VIM_ERROR_FORMAT, st->path,
          "tensor '%s': shape is larger than the file", name);
    t->shape[i] = (int64_t) d;
    count *= d;
  }
  t->n_elements = count;
  t->nbytes = count * dtype_size (t->dtype);

  JsonNode *offs = json_object_get_member (obj, "data_offsets");
  guint64 begin, end;
  if (offs == NULL || !JSON_NODE_HOLDS_ARRAY (offs)
      || json_array_get_length (json_node_get_array (offs)) != 2
      || !node_get_uint (json_array_get_element (json_node_get_array (offs), 0), &begin)
      || !node_get_uint (json_array_get_element (json_node_get_array (offs), 1), &end))
    return fail (error, VIM_ERROR_FORMAT, st->path,
        "tensor '%s': data_offsets must be two non-negative integers", name);
  if (begin > end || end > data_len)
    return fail (error, VIM_ERROR_FORMAT, st->path,
        "tensor '%s': data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
        ") lie outside the data section of %" G_GSIZE_FORMAT " bytes",
        name, begin, end, data_len);
  if (end - begin != t->nbytes)
    return fail (error, VIM_ERROR_FORMAT, st->path,
        "tensor '%s': data_offsets span %" G_GUINT64_FORMAT
        " bytes but dtype and shape need %" G_GSIZE_FORMAT,
        name, end - begin, t->nbytes);
  t->name = g_strdup (name);
  t->data = st->bytes + (st->size - data_len) + begin; /* data follows the header */
  return TRUE;
}

static int
compare_by_offset (gconstpointer a, gconstpointer b)
{
  const VimTensorInfo *x = *(const VimTensorInfo * const *) a;
  const VimTensorInfo *y = *(const VimTensorInfo * const *) b;
  return x->data < y->data ? -1 : x->data > y->data ? 1 : 0;
}

static gboolean
check_overlaps (VimSafetensors *st, GError **error)
{
  GPtrArray *sorted = g_ptr_array_sized_new (st->n_tensors);
  for (int i = 0; i < st->n_tensors; i++)
    if (st->tensors[i].nbytes > 0)
      g_ptr_array_add (sorted, &st->tensors[i]);
  g_ptr_array_sort (sorted, compare_by_offset);
  gboolean ok = TRUE;
  for (guint i = 1; i < sorted->len && ok; i++) {
    const VimTensorInfo *prev = sorted->pdata[i - 1], *cur = sorted->pdata[i];
    if ((const guint8 *) cur->data < (const guint8 *) prev->data + prev->nbytes)
      ok = fail (error, VIM_ERROR_FORMAT, st->path,
          "tensors '%s' and '%s' overlap in the data section", prev->name, cur->name);
  }
  g_ptr_array_free (sorted, TRUE);
  return ok;
}

VimSafetensors *
vim_safetensors_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GError *err = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &err);
  if (mf == NULL) {
    fail (error, VIM_ERROR_IO, path, "cannot open: %s", err->message);
    g_error_free (err);
    return NULL;
  }
  VimSafetensors *st = g_new0 (VimSafetensors, 1);
  st->path = g_strdup (path);
  st->mapping = mf;
  st->bytes = (const guint8 *) g_mapped_file_get_contents (mf);
  st->size = g_mapped_file_get_length (mf);
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  JsonParser *parser = NULL;
  if (st->size < 8) {
    fail (error, VIM_ERROR_FORMAT, path,
        "truncated: %" G_GSIZE_FORMAT " bytes, a safetensors file needs at least 8",
        st->size);
    goto error;
  }
  guint64 hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | st->bytes[i];
  if (hlen > st->size - 8) {
    fail (error, VIM_ERROR_FORMAT, path,
        "header length %" G_GUINT64_FORMAT " runs past the end of the file (%"
        G_GSIZE_FORMAT " bytes)", hlen, st->size);
    goto error;
  }
  if (hlen < 2 || hlen > HEADER_MAX) {
    fail (error, VIM_ERROR_FORMAT, path,
        "header length %" G_GUINT64_FORMAT " is out of range (2 .. %u)", hlen,
        HEADER_MAX);
    goto error;
  }
  const char *hdr = (const char *) st->bytes + 8;
  if (memchr (hdr, '\0', hlen) != NULL) {
    fail (error, VIM_ERROR_FORMAT, path, "header contains a NUL byte");
    goto error;
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, hdr, (gssize) hlen, &err)) {
    fail (error, VIM_ERROR_FORMAT, path, "header is not valid JSON: %s",
        err->message);
    g_clear_error (&err);
    goto error;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    fail (error, VIM_ERROR_FORMAT, path, "header is not a JSON object");
    goto error;
  }
  JsonObject *obj = json_node_get_object (root);
  gsize data_len = st->size - 8 - hlen;
  GList *members = json_object_get_members (obj);
  st->tensors = g_new0 (VimTensorInfo, g_list_length (members));
  gboolean ok = TRUE;
  for (GList *l = members; l && ok; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (obj, name);
    if (strcmp (name, "__metadata__") == 0) {
      ok = parse_metadata (st, node, error);
      continue;
    }
    if (*name == '\0') {
      ok = fail (error, VIM_ERROR_FORMAT, path, "a tensor has an empty name");
      continue;
    }
    VimTensorInfo *t = &st->tensors[st->n_tensors];
    ok = parse_tensor (st, name, node, t, data_len, error);
    if (ok) {
      g_hash_table_insert (st->by_name, t->name, t);
      st->n_tensors++;
    }
  }
  g_list_free (members);
  if (!ok || !check_overlaps (st, error))
    goto error;

  GList *keys = g_hash_table_get_keys (st->metadata);
  keys = g_list_sort (keys, (GCompareFunc) strcmp);
  st->metadata_keys = g_new0 (const char *, g_list_length (keys) + 1);
  int k = 0;
  for (GList *l = keys; l; l = l->next)
    st->metadata_keys[k++] = l->data;
  g_list_free (keys);
  g_object_unref (parser);
  return st;

error:
  if (parser)
    g_object_unref (parser);
  vim_safetensors_free (st);
  return NULL;
}

void
vim_safetensors_free (VimSafetensors *st)
{
  if (st == NULL)
    return;
  for (int i = 0; i < st->n_tensors; i++)
    g_free (st->tensors[i].name);
  g_free (st->tensors);
  g_hash_table_destroy (st->by_name);
  g_hash_table_destroy (st->metadata);
  g_free (st->metadata_keys);
  g_mapped_file_unref (st->mapping);
  g_free (st->path);
  g_free (st);
}

const VimTensorInfo *
vim_safetensors_find (const VimSafetensors *st, const char *name)
{
  return g_hash_table_lookup (st->by_name, name);
}

int
vim_safetensors_n_tensors (const VimSafetensors *st)
{
  return st->n_tensors;
}

const VimTensorInfo *
vim_safetensors_nth (const VimSafetensors *st, int i)
{
  return (i >= 0 && i < st->n_tensors) ? &st->tensors[i] : NULL;
}

const char *
vim_safetensors_get_metadata (const VimSafetensors *st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

const char *const *
vim_safetensors_metadata_keys (const VimSafetensors *st)
{
  return st->metadata_keys;
}
