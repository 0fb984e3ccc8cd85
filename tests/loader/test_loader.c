/* Model-file loader robustness: corrupted and unusual files, each refused
 * with the intended VIM_ERROR code and a message that names the file (and
 * the tensor or metadata field where there is one); valid variants load
 * with the right config, weights and labels.
 *
 * Every file is built at test time from a tiny valid model
 * (model_builder.h) with one thing changed. */
#include "vim-private.h"
#include "model_builder.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

static char *tmpdir;

/* ---- helpers ------------------------------------------------------------- */

static char *
case_path (const char *name)
{
  char *file = g_strdup_printf ("%s.safetensors", name);
  char *p = g_build_filename (tmpdir, file, NULL);
  g_free (file);
  return p;
}

static void
write_bytes (const char *path, const guint8 *data, gsize len)
{
  GError *err = NULL;
  g_file_set_contents (path, (const char *) data, (gssize) len, &err);
  g_assert_no_error (err);
}

static void
assert_message (const GError *err, const char *path, const char *const *parts)
{
  g_test_message ("%s", err->message);
  if (path && !strstr (err->message, path))
    g_error ("message does not name the file %s: %s", path, err->message);
  for (int i = 0; parts[i]; i++)
    if (!strstr (err->message, parts[i]))
      g_error ("message lacks \"%s\": %s", parts[i], err->message);
}

static void
expect_open_fails (const char *path, int code, const char *const *parts)
{
  GError *err = NULL;
  VimModel *m = vim_model_open (path, &err);
  if (m != NULL)
    g_error ("%s: opened, but should fail with \"%s\"", path, parts[0]);
  g_assert_nonnull (err);
  if (err->domain != VIM_ERROR || err->code != code)
    g_error ("%s: error domain %s code %d (want %d): %s", path,
        g_quark_to_string (err->domain), err->code, code, err->message);
  assert_message (err, path, parts);
  g_error_free (err);
}

/* ---- failing cases -------------------------------------------------------- */

typedef struct {
  const char *name;
  void (*edit) (ModelSpec *s);            /* on the spec, may be NULL */
  void (*edit_bytes) (GByteArray *b);     /* on the serialized file, may be NULL */
  VimError code;
  const char *msg[4];                     /* NULL-terminated substrings */
} FailCase;

/* the data section of a serialized file */
static guint64
data_len (const GByteArray *b)
{
  return b->len - 8 - mb_header_len (b);
}

/* container: sizes and header length */
static void b_empty (GByteArray *b) { g_byte_array_set_size (b, 0); }
static void b_five (GByteArray *b) { g_byte_array_set_size (b, 5); }
static void b_hlen_past_end (GByteArray *b) { mb_set_header_len (b, b->len - 7); }
static void b_hlen_2_63 (GByteArray *b) { mb_set_header_len (b, G_GUINT64_CONSTANT (1) << 63); }
static void b_hlen_max (GByteArray *b) { mb_set_header_len (b, G_MAXUINT64); }
static void b_hlen_0 (GByteArray *b) { mb_set_header_len (b, 0); }
static void b_hlen_1 (GByteArray *b) { mb_set_header_len (b, 1); }
static void b_only_len (GByteArray *b) { g_byte_array_set_size (b, 8); mb_set_header_len (b, 0); }

/* header text */
static void
set_header (GByteArray *b, const char *json)
{
  mb_replace_header (b, json, strlen (json));
}
static void b_not_json (GByteArray *b) { set_header (b, "{\"cls_token\": {\"dtype\": \"F32\",   "); }
static void b_json_array (GByteArray *b) { set_header (b, "[1, 2, 3]       "); }
static void b_json_string (GByteArray *b) { set_header (b, "\"gst-vim\"       "); }
static void b_nul (GByteArray *b) { b->data[8 + mb_header_len (b) / 2] = '\0'; }
static void b_nul_in_padding (GByteArray *b) { b->data[8 + mb_header_len (b) - 1] = '\0'; }
static void b_empty_object (GByteArray *b) { set_header (b, "{}      "); }

/* data section cut short */
static void b_cut_half (GByteArray *b) { g_byte_array_set_size (b, b->len - data_len (b) / 2); }
static void b_cut_one (GByteArray *b) { g_byte_array_set_size (b, b->len - 1); }
static void b_cut_all (GByteArray *b) { g_byte_array_set_size (b, 8 + mb_header_len (b)); }

/* tensor entries */
static void e_entry_array (ModelSpec *s) { mb_find (s, "head.bias")->raw = g_strdup ("[1, 2]"); }
static void e_entry_string (ModelSpec *s) { mb_find (s, "head.bias")->raw = g_strdup ("\"F32\""); }
static void e_unknown_field (ModelSpec *s) { mb_find (s, "head.bias")->extra_field = g_strdup ("\"offset\":0"); }
static void e_missing_dtype (ModelSpec *s) { mb_find (s, "head.bias")->omit_dtype = TRUE; }
static void
e_dtype_number (ModelSpec *s)
{
  MbTensor *t = mb_find (s, "head.bias");
  t->omit_dtype = TRUE;
  t->extra_field = g_strdup ("\"dtype\":32");
}
static void e_dtype_i64 (ModelSpec *s) { g_free (mb_find (s, "head.bias")->dtype); mb_find (s, "head.bias")->dtype = g_strdup ("I64"); }
static void e_dtype_lower (ModelSpec *s) { g_free (mb_find (s, "head.bias")->dtype); mb_find (s, "head.bias")->dtype = g_strdup ("f32"); }
static void e_shape_negative (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[-3]"); }
static void e_shape_float (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[3.0]"); }
static void e_shape_string (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[\"3\"]"); }
static void e_shape_bool (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[true]"); }
static void e_shape_not_array (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("3"); }
static void e_shape_5d (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[1,1,1,1,3]"); }
static void e_shape_huge_dim (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[9223372036854775807]"); }
static void e_shape_overflow (ModelSpec *s) { mb_find (s, "head.bias")->shape_json = g_strdup ("[4096,4096,4096,4096]"); }
static void
e_offsets_past_end (ModelSpec *s)
{
  MbTensor *t = mb_find (s, "head.bias");
  t->set_offsets = TRUE;
  t->begin = 1000000;
  t->end = 1000012;
}
static void
e_offsets_huge (ModelSpec *s)
{
  MbTensor *t = mb_find (s, "head.bias");
  t->set_offsets = TRUE;
  t->begin = G_MAXINT64 - 4;   /* begin + 12 would overflow a signed sum */
  t->end = G_MAXINT64;
}
static void
e_offsets_reversed (ModelSpec *s)
{
  MbTensor *t = mb_find (s, "head.bias");
  t->set_offsets = TRUE;
  t->begin = 112;
  t->end = 100;
}
static void
e_offsets_span (ModelSpec *s)
{
  /* head.bias is 3 floats = 12 bytes; claim 8 */
  MbTensor *t = mb_find (s, "head.bias");
  t->set_offsets = TRUE;
  t->begin = 0;
  t->end = 8;
}
static void e_offsets_one (ModelSpec *s) { mb_find (s, "head.bias")->raw = g_strdup ("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0]}"); }
static void e_offsets_negative (ModelSpec *s) { mb_find (s, "head.bias")->raw = g_strdup ("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[-4,8]}"); }
static void e_offsets_missing (ModelSpec *s) { mb_find (s, "head.bias")->raw = g_strdup ("{\"dtype\":\"F32\",\"shape\":[3]}"); }
static void
e_overlap (ModelSpec *s)
{
  /* norm_f.weight (32 bytes) placed inside head.weight's 96 bytes */
  ModelSpec *tmp = mb_new_tiny ();
  GByteArray *b = mb_serialize (tmp);     /* to learn head.weight's offsets */
  MbTensor *hw = mb_find (tmp, "head.weight");
  MbTensor *t = mb_find (s, "norm_f.weight");
  t->set_offsets = TRUE;
  t->begin = hw->real_begin + 16;
  t->end = t->begin + 4 * MB_D;
  g_byte_array_unref (b);
  mb_free (tmp);
}
static void
e_empty_name (ModelSpec *s)
{
  MbTensor *t = mb_add_tensor (s, "", "F32", 1, 2);
  (void) t;
}

/* tensors against the config */
static void e_missing_tensor (ModelSpec *s) { mb_remove_tensor (s, "layers.0.mixer.D_b"); }
static void e_missing_cls (ModelSpec *s) { mb_remove_tensor (s, "cls_token"); }
static void e_extra_tensor (ModelSpec *s) { mb_add_tensor (s, "layers.1.norm.weight", "F32", 1, MB_D); }
static void e_extra_scalar (ModelSpec *s) { mb_add_tensor (s, "num_batches_tracked", "F32", 0); }
static void e_shape_in_proj (ModelSpec *s) { mb_find (s, "layers.0.mixer.in_proj.weight")->shape[0] = MB_E; }
static void
e_rank_head_bias (ModelSpec *s)
{
  MbTensor *t = mb_find (s, "head.bias");
  t->ndim = 2;
  t->shape[0] = 1;
  t->shape[1] = MB_C;
}
static void e_shape_conv (ModelSpec *s) { mb_find (s, "layers.0.mixer.conv1d_b.weight")->shape[2] = MB_K + 1; }
static void e_meta_embed_dim (ModelSpec *s) { mb_set_meta (s, "embed_dim", "16"); }
static void e_meta_depth (ModelSpec *s) { mb_set_meta (s, "depth", "2"); }
static void e_meta_classes (ModelSpec *s) { mb_set_meta (s, "num_classes", "4"); mb_set_meta (s, "labels", "a\nb\nc\nd"); }
static void e_meta_image (ModelSpec *s) { mb_set_meta (s, "image_size", "24,16"); }

/* metadata */
static void e_no_metadata (ModelSpec *s) { s->no_meta = TRUE; }
static void e_meta_array (ModelSpec *s) { s->meta_raw = g_strdup ("[\"format\", \"gst-vim\"]"); }
static void e_meta_number (ModelSpec *s) { mb_set_meta_json (s, "depth", "1"); }
static void e_meta_null (ModelSpec *s) { mb_set_meta_json (s, "labels", "null"); }
static void e_meta_object (ModelSpec *s) { mb_set_meta_json (s, "mean", "{\"r\":\"0.5\"}"); }
static void e_missing_key (ModelSpec *s) { mb_set_meta (s, "d_state", NULL); }
static void e_missing_format (ModelSpec *s) { mb_set_meta (s, "format", NULL); }
static void e_missing_mean (ModelSpec *s) { mb_set_meta (s, "mean", NULL); }
static void e_unknown_key (ModelSpec *s) { mb_set_meta (s, "colour", "rgb"); }
static void e_int_suffix (ModelSpec *s) { mb_set_meta (s, "depth", "12abc"); }
static void e_int_exp (ModelSpec *s) { mb_set_meta (s, "embed_dim", "1e3"); }
static void e_int_space (ModelSpec *s) { mb_set_meta (s, "d_state", " 4"); }
static void e_int_empty (ModelSpec *s) { mb_set_meta (s, "patch_size", ""); }
static void e_int_negative (ModelSpec *s) { mb_set_meta (s, "stride", "-8"); }
static void e_int_overflow (ModelSpec *s) { mb_set_meta (s, "num_classes", "99999999999999999999"); }
static void e_int_hex (ModelSpec *s) { mb_set_meta (s, "d_conv", "0x4"); }
static void e_in_chans (ModelSpec *s) { mb_set_meta (s, "in_chans", "1"); }
static void e_format (ModelSpec *s) { mb_set_meta (s, "format", "safetensors"); }
static void e_format_version (ModelSpec *s) { mb_set_meta (s, "format_version", "2"); }
static void e_format_version_10 (ModelSpec *s) { mb_set_meta (s, "format_version", "1.0"); }
static void e_task_unknown (ModelSpec *s) { mb_set_meta (s, "task", "detection"); }
static void e_task_seg (ModelSpec *s) { mb_set_meta (s, "task", "segmentation"); }
static void e_seg_key_on_classifier (ModelSpec *s) { mb_set_meta (s, "seg_channels", "4"); }
static void e_labels_count (ModelSpec *s) { mb_set_meta (s, "labels", "cat\ndog"); }
static void e_labels_extra (ModelSpec *s) { mb_set_meta (s, "labels", "cat\ndog\nbird\nfish"); }
static void
e_labels_file_slash (ModelSpec *s)
{
  mb_set_meta (s, "labels", NULL);
  mb_set_meta (s, "labels_file", "../labels.txt");
}
static void
e_labels_file_abs (ModelSpec *s)
{
  mb_set_meta (s, "labels", NULL);
  mb_set_meta (s, "labels_file", "/etc/passwd");
}
static void
e_labels_file_dotdot (ModelSpec *s)
{
  mb_set_meta (s, "labels", NULL);
  mb_set_meta (s, "labels_file", "..");
}
static void
e_labels_file_missing (ModelSpec *s)
{
  mb_set_meta (s, "labels", NULL);
  mb_set_meta (s, "labels_file", "no-such-labels.txt");
}
static void
e_labels_file_count (ModelSpec *s)
{
  mb_set_meta (s, "labels", NULL);
  mb_set_meta (s, "labels_file", "two-labels.txt");  /* written by main () */
}
static void e_cls_none (ModelSpec *s) { mb_set_meta (s, "cls_token", "none"); mb_remove_tensor (s, "cls_token"); }
static void e_cls_unknown (ModelSpec *s) { mb_set_meta (s, "cls_token", "first"); }
static void e_stride (ModelSpec *s) { mb_set_meta (s, "stride", "16"); }
static void e_image_small (ModelSpec *s) { mb_set_meta (s, "image_size", "4,4"); }
static void e_image_one (ModelSpec *s) { mb_set_meta (s, "image_size", "16"); }
static void e_image_frac (ModelSpec *s) { mb_set_meta (s, "image_size", "16.5,16"); }
static void e_image_zero (ModelSpec *s) { mb_set_meta (s, "image_size", "0,16"); }
static void e_image_stride (ModelSpec *s) { mb_set_meta (s, "image_size", "20,16"); }
static void e_mean_two (ModelSpec *s) { mb_set_meta (s, "mean", "0.5,0.5"); }
static void e_mean_nan (ModelSpec *s) { mb_set_meta (s, "mean", "nan,0.5,0.5"); }
static void e_mean_junk (ModelSpec *s) { mb_set_meta (s, "mean", "0.5,0.5x,0.5"); }
static void e_std_zero (ModelSpec *s) { mb_set_meta (s, "std", "0.2,0,0.2"); }
static void e_std_negative (ModelSpec *s) { mb_set_meta (s, "std", "0.2,0.2,-0.2"); }
static void e_resize (ModelSpec *s) { mb_set_meta (s, "resize", "crop"); }
static void e_crop_ratio (ModelSpec *s) { mb_set_meta (s, "crop_ratio", "1.5"); }
static void e_crop_ratio_zero (ModelSpec *s) { mb_set_meta (s, "crop_ratio", "0"); }
static void e_crop_ratio_tiny (ModelSpec *s) { mb_set_meta (s, "crop_ratio", "1e-40"); }
static void e_crop_ratio_small (ModelSpec *s) { mb_set_meta (s, "crop_ratio", "0.0002"); }
static void e_norm_eps (ModelSpec *s) { mb_set_meta (s, "norm_eps", "0"); }
static void e_norm_eps_junk (ModelSpec *s) { mb_set_meta (s, "norm_eps", "1e-5f"); }

/* Edits of the tiny segmenter (mb_new_tiny_seg). */
static void s_layers_missing (ModelSpec *s) { mb_set_meta (s, "seg_layers", NULL); }
static void s_layers_empty (ModelSpec *s) { mb_set_meta (s, "seg_layers", ""); }
static void s_layers_junk (ModelSpec *s) { mb_set_meta (s, "seg_layers", "0x"); }
static void s_layers_depth (ModelSpec *s) { mb_set_meta (s, "seg_layers", "1"); }
static void s_layers_negative (ModelSpec *s) { mb_set_meta (s, "seg_layers", "-1"); }
static void s_layers_repeat (ModelSpec *s) { mb_set_meta (s, "seg_layers", "0,0"); }
static void
s_layers_descending (ModelSpec *s)
{
  mb_set_meta (s, "depth", "2");
  mb_set_meta (s, "seg_layers", "1,0");
}
static void
s_layers_nine (ModelSpec *s)
{
  mb_set_meta (s, "depth", "9");
  mb_set_meta (s, "seg_layers", "0,1,2,3,4,5,6,7,8");
}
static void s_channels_missing (ModelSpec *s) { mb_set_meta (s, "seg_channels", NULL); }
static void s_channels_zero (ModelSpec *s) { mb_set_meta (s, "seg_channels", "0"); }
static void s_channels_big (ModelSpec *s) { mb_set_meta (s, "seg_channels", "4097"); }
static void s_ignore_256 (ModelSpec *s) { mb_set_meta (s, "ignore_index", "256"); }
static void s_ignore_minus2 (ModelSpec *s) { mb_set_meta (s, "ignore_index", "-2"); }
static void
s_cls_middle (ModelSpec *s)
{
  mb_set_meta (s, "cls_token", "middle");
}
static void
s_classes_256 (ModelSpec *s)
{
  mb_set_meta (s, "num_classes", "256");
  mb_set_meta (s, "labels", NULL);
}
static void s_head_present (ModelSpec *s) { mb_add_tensor (s, "head.weight", "F32", 2, MB_C, MB_D); }
static void s_cls_token_present (ModelSpec *s) { mb_add_tensor (s, "cls_token", "F32", 3, 1, 1, MB_D); }
static void s_missing_cls_bias (ModelSpec *s) { mb_remove_tensor (s, "seg_head.cls.bias"); }
static void s_missing_proj (ModelSpec *s) { mb_remove_tensor (s, "seg_head.proj.0.weight"); }
static void s_extra_proj (ModelSpec *s) { mb_add_tensor (s, "seg_head.proj.1.weight", "F32", 2, MB_CH, MB_D); }
static void s_dwconv_shape (ModelSpec *s) { mb_find (s, "seg_head.dwconv.weight")->shape[3] = 5; }
static void s_proj_shape (ModelSpec *s) { mb_find (s, "seg_head.proj.0.weight")->shape[0] = MB_CH + 1; }
static void s_channels_vs_shapes (ModelSpec *s) { mb_set_meta (s, "seg_channels", "8"); }
static void s_cls_weight_shape (ModelSpec *s) { mb_find (s, "seg_head.cls.weight")->shape[0] = MB_C + 1; }
static void s_norm_f_shape (ModelSpec *s) { mb_add_tensor (s, "norm_f.weight", "F32", 1, MB_D + 1); }

typedef struct {
  const char *name;
  void (*edit) (ModelSpec *s);
  const char *msg[4];
} SegFailCase;

/* every one a VIM_ERROR_MODEL that names the key or tensor */
static const SegFailCase seg_fail_cases[] = {
  { "seg-layers-missing", s_layers_missing, { "metadata field 'seg_layers' is missing" } },
  { "seg-layers-empty", s_layers_empty, { "metadata field 'seg_layers' = '' is not 1 to 8 ascending" } },
  { "seg-layers-junk", s_layers_junk, { "'seg_layers' = '0x'" } },
  { "seg-layers-past-depth", s_layers_depth, { "'seg_layers' = '1'", "in [0, 0]" } },
  { "seg-layers-negative", s_layers_negative, { "'seg_layers' = '-1'" } },
  { "seg-layers-repeated", s_layers_repeat, { "'seg_layers' = '0,0'", "unique" } },
  { "seg-layers-descending", s_layers_descending, { "'seg_layers' = '1,0'", "ascending" } },
  { "seg-layers-nine", s_layers_nine, { "'seg_layers' = '0,1,2,3,4,5,6,7,8' is not 1 to 8" } },
  { "seg-channels-missing", s_channels_missing, { "metadata field 'seg_channels' is missing" } },
  { "seg-channels-0", s_channels_zero, { "'seg_channels' = '0' is not an integer in [1, 4096]" } },
  { "seg-channels-4097", s_channels_big, { "'seg_channels' = '4097' is not an integer in [1, 4096]" } },
  { "ignore-index-256", s_ignore_256, { "'ignore_index' = '256' is not an integer in [-1, 255]" } },
  { "ignore-index--2", s_ignore_minus2, { "'ignore_index' = '-2' is not an integer in [-1, 255]" } },
  { "seg-cls-token-middle", s_cls_middle, { "a segmentation model needs cls_token 'none'" } },
  { "seg-256-classes", s_classes_256, { "a segmentation model has at most 255 classes, not 256" } },
  { "seg-head-tensor", s_head_present, { "unexpected tensor 'head.weight'", "segmentation model" } },
  { "seg-cls-token-tensor", s_cls_token_present, { "unexpected tensor 'cls_token'" } },
  { "seg-missing-cls-bias", s_missing_cls_bias, { "required tensor 'seg_head.cls.bias' is missing" } },
  { "seg-missing-proj", s_missing_proj, { "required tensor 'seg_head.proj.0.weight' is missing" } },
  { "seg-extra-proj", s_extra_proj, { "unexpected tensor 'seg_head.proj.1.weight'" } },
  { "seg-dwconv-shape", s_dwconv_shape, { "tensor 'seg_head.dwconv.weight' has shape (4, 1, 3, 5)", "needs (4, 1, 3, 3)" } },
  { "seg-proj-shape", s_proj_shape, { "tensor 'seg_head.proj.0.weight' has shape (5, 8)", "seg_channels 4", "needs (4, 8)" } },
  { "seg-channels-vs-shapes", s_channels_vs_shapes, { "tensor 'seg_head.proj.0.weight' has shape (4, 8)", "seg_channels 8", "needs (8, 8)" } },
  { "seg-cls-weight-shape", s_cls_weight_shape, { "tensor 'seg_head.cls.weight' has shape (4, 4)", "needs (3, 4)" } },
  { "seg-norm-f-shape", s_norm_f_shape, { "tensor 'norm_f.weight' has shape (9)", "needs (8)" } },
};

#define F VIM_ERROR_FORMAT
#define M VIM_ERROR_MODEL
#define IO VIM_ERROR_IO
static const FailCase fail_cases[] = {
  /* container */
  { "empty-file", NULL, b_empty, F, { "truncated: 0 bytes" } },
  { "truncated-5-bytes", NULL, b_five, F, { "truncated: 5 bytes" } },
  { "header-len-past-end", NULL, b_hlen_past_end, F, { "runs past the end of the file" } },
  { "header-len-2^63", NULL, b_hlen_2_63, F, { "header length 9223372036854775808 runs past the end" } },
  { "header-len-2^64-1", NULL, b_hlen_max, F, { "header length 18446744073709551615 runs past the end" } },
  { "header-len-0", NULL, b_hlen_0, F, { "header length 0 is out of range" } },
  { "header-len-1", NULL, b_hlen_1, F, { "header length 1 is out of range" } },
  { "only-length-field", NULL, b_only_len, F, { "header length 0 is out of range" } },
  { "header-not-json", NULL, b_not_json, F, { "header is not valid JSON" } },
  { "header-json-array", NULL, b_json_array, F, { "header is not a JSON object" } },
  { "header-json-string", NULL, b_json_string, F, { "header is not a JSON object" } },
  { "header-nul-byte", NULL, b_nul, F, { "header contains a NUL byte" } },
  { "header-nul-in-padding", NULL, b_nul_in_padding, F, { "header contains a NUL byte" } },
  { "header-empty-object", NULL, b_empty_object, M, { "metadata field 'format' is missing" } },
  /* tensor entries */
  { "entry-array", e_entry_array, NULL, F, { "tensor 'head.bias': entry is not an object" } },
  { "entry-string", e_entry_string, NULL, F, { "tensor 'head.bias': entry is not an object" } },
  { "entry-unknown-field", e_unknown_field, NULL, F, { "tensor 'head.bias': unknown field 'offset'" } },
  { "entry-missing-dtype", e_missing_dtype, NULL, F, { "tensor 'head.bias': missing or non-string dtype" } },
  { "entry-dtype-number", e_dtype_number, NULL, F, { "tensor 'head.bias': missing or non-string dtype" } },
  { "entry-dtype-i64", e_dtype_i64, NULL, M, { "tensor 'head.bias': dtype I64 is not supported" } },
  { "entry-dtype-lowercase", e_dtype_lower, NULL, M, { "tensor 'head.bias': dtype f32 is not supported" } },
  { "shape-negative", e_shape_negative, NULL, F, { "tensor 'head.bias': shape[0] is not a non-negative integer" } },
  { "shape-float", e_shape_float, NULL, F, { "tensor 'head.bias': shape[0] is not a non-negative integer" } },
  { "shape-string", e_shape_string, NULL, F, { "tensor 'head.bias': shape[0] is not a non-negative integer" } },
  { "shape-bool", e_shape_bool, NULL, F, { "tensor 'head.bias': shape[0] is not a non-negative integer" } },
  { "shape-not-array", e_shape_not_array, NULL, F, { "tensor 'head.bias': missing or non-array shape" } },
  { "shape-5-dims", e_shape_5d, NULL, M, { "tensor 'head.bias': 5 dimensions (at most 4)" } },
  { "shape-huge-dim", e_shape_huge_dim, NULL, F, { "tensor 'head.bias': shape is larger than the file" } },
  { "shape-product-overflow", e_shape_overflow, NULL, F, { "tensor 'head.bias': shape is larger than the file" } },
  { "offsets-past-end", e_offsets_past_end, NULL, F, { "tensor 'head.bias': data_offsets [1000000, 1000012) lie outside the data section" } },
  { "offsets-near-2^63", e_offsets_huge, NULL, F, { "tensor 'head.bias': data_offsets", "lie outside the data section" } },
  { "offsets-begin-after-end", e_offsets_reversed, NULL, F, { "tensor 'head.bias': data_offsets [112, 100) lie outside" } },
  { "offsets-span-mismatch", e_offsets_span, NULL, F, { "tensor 'head.bias': data_offsets span 8 bytes but dtype and shape need 12" } },
  { "offsets-one-value", e_offsets_one, NULL, F, { "tensor 'head.bias': data_offsets must be two non-negative integers" } },
  { "offsets-negative", e_offsets_negative, NULL, F, { "tensor 'head.bias': data_offsets must be two non-negative integers" } },
  { "offsets-missing", e_offsets_missing, NULL, F, { "tensor 'head.bias': data_offsets must be two non-negative integers" } },
  { "tensors-overlap", e_overlap, NULL, F, { "tensors 'head.weight' and 'norm_f.weight' overlap" } },
  { "tensor-empty-name", e_empty_name, NULL, F, { "a tensor has an empty name" } },
  { "data-cut-in-half", NULL, b_cut_half, F, { "tensor '", "lie outside the data section" } },
  { "data-cut-one-byte", NULL, b_cut_one, F, { "tensor 'norm_f.weight': data_offsets", "lie outside the data section" } },
  { "data-missing", NULL, b_cut_all, F, { "tensor 'cls_token': shape is larger than the file" } },
  /* tensors against the config */
  { "missing-tensor", e_missing_tensor, NULL, M, { "required tensor 'layers.0.mixer.D_b' is missing" } },
  { "missing-cls-token", e_missing_cls, NULL, M, { "required tensor 'cls_token' is missing" } },
  { "unexpected-tensor", e_extra_tensor, NULL, M, { "unexpected tensor 'layers.1.norm.weight'" } },
  { "unexpected-scalar", e_extra_scalar, NULL, M, { "unexpected tensor 'num_batches_tracked'" } },
  { "wrong-shape-in-proj", e_shape_in_proj, NULL, M, { "tensor 'layers.0.mixer.in_proj.weight' has shape (16, 8)", "needs (32, 8)" } },
  { "wrong-rank-head-bias", e_rank_head_bias, NULL, M, { "tensor 'head.bias' has shape (1, 3)", "needs (3)" } },
  { "wrong-shape-conv", e_shape_conv, NULL, M, { "tensor 'layers.0.mixer.conv1d_b.weight' has shape (16, 1, 5)", "needs (16, 1, 4)" } },
  { "meta-embed-dim-vs-shapes", e_meta_embed_dim, NULL, M, { "tensor 'cls_token' has shape (1, 1, 8)", "embed_dim 16", "needs (1, 1, 16)" } },
  { "meta-depth-vs-tensors", e_meta_depth, NULL, M, { "required tensor 'layers.1.norm.weight' is missing" } },
  { "meta-classes-vs-head", e_meta_classes, NULL, M, { "tensor 'head.weight' has shape (3, 8)", "4 classes", "needs (4, 8)" } },
  { "meta-image-vs-pos-embed", e_meta_image, NULL, M, { "tensor 'pos_embed' has shape (1, 5, 8)", "7 tokens", "needs (1, 7, 8)" } },
  /* metadata */
  { "no-metadata", e_no_metadata, NULL, M, { "metadata field 'format' is missing" } },
  { "metadata-array", e_meta_array, NULL, F, { "__metadata__ is not an object" } },
  { "metadata-value-number", e_meta_number, NULL, F, { "__metadata__ value of 'depth' is not a string" } },
  { "metadata-value-null", e_meta_null, NULL, F, { "__metadata__ value of 'labels' is not a string" } },
  { "metadata-value-object", e_meta_object, NULL, F, { "__metadata__ value of 'mean' is not a string" } },
  { "metadata-missing-d-state", e_missing_key, NULL, M, { "metadata field 'd_state' is missing" } },
  { "metadata-missing-format", e_missing_format, NULL, M, { "metadata field 'format' is missing" } },
  { "metadata-missing-mean", e_missing_mean, NULL, M, { "metadata field 'mean' is missing" } },
  { "metadata-unknown-key", e_unknown_key, NULL, M, { "unknown metadata field 'colour'", "'x-'" } },
  { "int-12abc", e_int_suffix, NULL, M, { "metadata field 'depth' = '12abc' is not an integer" } },
  { "int-1e3", e_int_exp, NULL, M, { "metadata field 'embed_dim' = '1e3' is not an integer" } },
  { "int-leading-space", e_int_space, NULL, M, { "metadata field 'd_state' = ' 4' is not an integer" } },
  { "int-empty", e_int_empty, NULL, M, { "metadata field 'patch_size' = '' is not an integer" } },
  { "int-negative", e_int_negative, NULL, M, { "metadata field 'stride' = '-8' is not an integer in [1, 64]" } },
  { "int-overflow", e_int_overflow, NULL, M, { "metadata field 'num_classes' = '99999999999999999999' is not an integer" } },
  { "int-hex", e_int_hex, NULL, M, { "metadata field 'd_conv' = '0x4' is not an integer" } },
  { "in-chans-1", e_in_chans, NULL, M, { "metadata field 'in_chans' = '1' is not an integer in [3, 3]" } },
  { "format-wrong", e_format, NULL, M, { "metadata 'format' is 'safetensors', expected 'gst-vim'" } },
  { "format-version-2", e_format_version, NULL, M, { "format_version '2' is not supported" } },
  { "format-version-1.0", e_format_version_10, NULL, M, { "format_version '1.0' is not supported" } },
  { "task-unknown", e_task_unknown, NULL, M, { "task 'detection' is unknown" } },
  { "task-segmentation-with-cls-token", e_task_seg, NULL, M, { "a segmentation model needs cls_token 'none'" } },
  { "seg-key-on-classifier", e_seg_key_on_classifier, NULL, M, { "metadata field 'seg_channels' is for task 'segmentation' only" } },
  { "labels-too-few", e_labels_count, NULL, M, { "the 'labels' metadata has 2 labels but the model has 3 classes" } },
  { "labels-too-many", e_labels_extra, NULL, M, { "the 'labels' metadata has 4 labels but the model has 3 classes" } },
  { "labels-file-with-slash", e_labels_file_slash, NULL, M, { "labels_file '../labels.txt' must be a plain file name" } },
  { "labels-file-absolute", e_labels_file_abs, NULL, M, { "labels_file '/etc/passwd' must be a plain file name" } },
  { "labels-file-dotdot", e_labels_file_dotdot, NULL, M, { "labels_file '..' must be a plain file name" } },
  { "labels-file-missing", e_labels_file_missing, NULL, IO, { "labels_file", "no-such-labels.txt: cannot read labels" } },
  { "labels-file-count", e_labels_file_count, NULL, M, { "two-labels.txt: the labels file has 2 labels but the model has 3 classes" } },
  { "cls-token-none", e_cls_none, NULL, M, { "a classification model needs cls_token 'middle'" } },
  { "cls-token-unknown", e_cls_unknown, NULL, M, { "cls_token 'first' is unknown" } },
  { "stride-larger-than-patch", e_stride, NULL, M, { "stride 16 is larger than patch_size 8" } },
  { "image-smaller-than-patch", e_image_small, NULL, M, { "image_size 4x4 is smaller than one 8-pixel patch" } },
  { "image-size-one-value", e_image_one, NULL, M, { "metadata field 'image_size' = '16' is not 2 comma-separated numbers" } },
  { "image-size-fraction", e_image_frac, NULL, M, { "image_size must be two integers" } },
  { "image-size-zero", e_image_zero, NULL, M, { "image_size must be two integers" } },
  { "image-size-vs-stride", e_image_stride, NULL, M, { "image_size 20x16 does not fit patch_size 8 and stride 8" } },
  { "mean-two-values", e_mean_two, NULL, M, { "metadata field 'mean' = '0.5,0.5' is not 3 comma-separated numbers" } },
  { "mean-nan", e_mean_nan, NULL, M, { "metadata field 'mean' = 'nan,0.5,0.5' is not 3" } },
  { "mean-junk", e_mean_junk, NULL, M, { "metadata field 'mean' = '0.5,0.5x,0.5' is not 3" } },
  { "std-zero", e_std_zero, NULL, M, { "std values must be positive" } },
  { "std-negative", e_std_negative, NULL, M, { "std values must be positive" } },
  { "resize-unknown", e_resize, NULL, M, { "resize 'crop' is unknown" } },
  { "crop-ratio-above-1", e_crop_ratio, NULL, M, { "crop_ratio '1.5' is not a number in (0, 1]" } },
  { "crop-ratio-0", e_crop_ratio_zero, NULL, M, { "crop_ratio '0' is not a number in (0, 1]" } },
  { "crop-ratio-1e-40", e_crop_ratio_tiny, NULL, M, { "resizes the short side to more than 65536 pixels" } },
  { "crop-ratio-0.0002", e_crop_ratio_small, NULL, M, { "crop_ratio 0.0002 resizes the short side" } },
  { "norm-eps-0", e_norm_eps, NULL, M, { "norm_eps '0' is not a number in (0, 1]" } },
  { "norm-eps-junk", e_norm_eps_junk, NULL, M, { "norm_eps '1e-5f' is not a number" } },
};
#undef F
#undef M
#undef IO

static void
test_fail_case (gconstpointer data)
{
  const FailCase *c = data;
  ModelSpec *s = mb_new_tiny ();
  if (c->edit)
    c->edit (s);
  GByteArray *b = mb_serialize (s);
  if (c->edit_bytes)
    c->edit_bytes (b);
  char *path = case_path (c->name);
  write_bytes (path, b->data, b->len);
  expect_open_fails (path, c->code, c->msg);
  g_unlink (path);
  g_free (path);
  g_byte_array_unref (b);
  mb_free (s);
}

static void
test_seg_fail_case (gconstpointer data)
{
  const SegFailCase *c = data;
  ModelSpec *s = mb_new_tiny_seg ();
  c->edit (s);
  GByteArray *b = mb_serialize (s);
  char *path = case_path (c->name);
  write_bytes (path, b->data, b->len);
  expect_open_fails (path, VIM_ERROR_MODEL, c->msg);
  g_unlink (path);
  g_free (path);
  g_byte_array_unref (b);
  mb_free (s);
}

/* A header length above the 64 MiB limit, inside the file (a sparse file). */
static void
test_header_too_long (void)
{
  char *path = case_path ("header-len-64MiB+1");
  int fd = g_open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  g_assert_cmpint (fd, >=, 0);
  guint8 len[8];
  guint64 n = 64u * 1024 * 1024 + 1;
  for (int i = 0; i < 8; i++)
    len[i] = (n >> (8 * i)) & 0xff;
  g_assert_cmpint (write (fd, len, 8), ==, 8);
  g_assert_cmpint (ftruncate (fd, 8 + n + 16), ==, 0);
  close (fd);
  const char *const parts[] = { "header length 67108865 is out of range (2 .. 67108864)", NULL };
  expect_open_fails (path, VIM_ERROR_FORMAT, parts);
  g_unlink (path);
  g_free (path);
}

static void
test_no_such_file (void)
{
  char *path = case_path ("does-not-exist");
  const char *const parts[] = { "cannot open", NULL };
  expect_open_fails (path, VIM_ERROR_IO, parts);
  g_free (path);
}

static void
test_directory (void)
{
  char *path = g_build_filename (tmpdir, "a-directory.safetensors", NULL);
  g_assert_cmpint (g_mkdir (path, 0755), ==, 0);
  GError *err = NULL;
  VimModel *m = vim_model_open (path, &err);
  g_assert_null (m);
  g_assert_nonnull (err);
  g_assert_true (err->domain == VIM_ERROR);
  /* IO (cannot map) or FORMAT (empty), depending on the platform; never a crash */
  g_assert_true (err->code == VIM_ERROR_IO || err->code == VIM_ERROR_FORMAT);
  const char *const parts[] = { NULL };
  assert_message (err, path, parts);
  g_error_free (err);
  g_rmdir (path);
  g_free (path);
}

/* ---- valid variants ------------------------------------------------------- */

static VimModel *
open_spec (ModelSpec *s, const char *name)
{
  GByteArray *b = mb_serialize (s);
  char *path = case_path (name);
  write_bytes (path, b->data, b->len);
  GError *err = NULL;
  VimModel *m = vim_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_nonnull (m);
  g_assert_cmpstr (vim_model_get_path (m), ==, path);
  g_unlink (path);   /* the mapping stays valid */
  g_free (path);
  g_byte_array_unref (b);
  return m;
}

static void
check_values (const char *name, const float *w, size_t n)
{
  g_assert_nonnull (w);
  for (size_t j = 0; j < n; j++)
    if (w[j] != mb_value (name, j))
      g_error ("tensor %s element %zu: %g, want %g", name, j, w[j], mb_value (name, j));
}

static void
check_weights (const VimModel *m)
{
  const VimWeights *w = &m->w;
  check_values ("cls_token", w->cls_token, MB_D);
  check_values ("pos_embed", w->pos_embed, MB_L * MB_D);
  check_values ("patch_embed.proj.weight", w->patch_w, MB_D * 3 * MB_P * MB_P);
  check_values ("patch_embed.proj.bias", w->patch_b, MB_D);
  check_values ("head.weight", w->head_w, MB_C * MB_D);
  check_values ("head.bias", w->head_b, MB_C);
  check_values ("norm_f.weight", w->norm_f_w, MB_D);
  const VimLayerWeights *l = &w->layers[0];
  check_values ("layers.0.norm.weight", l->norm_w, MB_D);
  check_values ("layers.0.mixer.in_proj.weight", l->in_proj_w, 2 * MB_E * MB_D);
  check_values ("layers.0.mixer.out_proj.weight", l->out_proj_w, MB_D * MB_E);
  static const char *const sfx[2] = { "", "_b" };
  for (int d = 0; d < 2; d++) {
    char n[96];
#define CHK(fmt, ptr, count) (g_snprintf (n, sizeof n, fmt, sfx[d]), check_values (n, ptr, count))
    CHK ("layers.0.mixer.conv1d%s.weight", l->dir[d].conv_w, MB_E * MB_K);
    CHK ("layers.0.mixer.conv1d%s.bias", l->dir[d].conv_b, MB_E);
    CHK ("layers.0.mixer.x_proj%s.weight", l->dir[d].x_proj_w, (MB_R + 2 * MB_N) * MB_E);
    CHK ("layers.0.mixer.dt_proj%s.weight", l->dir[d].dt_proj_w, MB_E * MB_R);
    CHK ("layers.0.mixer.dt_proj%s.bias", l->dir[d].dt_proj_b, MB_E);
    CHK ("layers.0.mixer.A%s_log", l->dir[d].A_log, MB_E * MB_N);
    CHK ("layers.0.mixer.D%s", l->dir[d].D, MB_E);
#undef CHK
  }
}

static void
check_tiny_config (const VimModel *m)
{
  const VimModelConfig *c = vim_model_get_config (m);
  g_assert_cmpstr (c->name, ==, "vim_loader_test_tiny");
  g_assert_cmpint (c->task, ==, VIM_TASK_CLASSIFICATION);
  g_assert_cmpint (c->image_height, ==, 16);
  g_assert_cmpint (c->image_width, ==, 16);
  g_assert_cmpint (c->in_chans, ==, 3);
  g_assert_cmpint (c->patch_size, ==, 8);
  g_assert_cmpint (c->stride, ==, 8);
  g_assert_cmpint (c->grid_h, ==, 2);
  g_assert_cmpint (c->grid_w, ==, 2);
  g_assert_cmpint (c->num_patches, ==, 4);
  g_assert_cmpint (c->seq_len, ==, 5);
  g_assert_cmpint (c->cls_index, ==, 2);
  g_assert_cmpint (c->embed_dim, ==, MB_D);
  g_assert_cmpint (c->depth, ==, MB_DEPTH);
  g_assert_cmpint (c->d_state, ==, MB_N);
  g_assert_cmpint (c->expand, ==, 2);
  g_assert_cmpint (c->d_inner, ==, MB_E);
  g_assert_cmpint (c->d_conv, ==, MB_K);
  g_assert_cmpint (c->dt_rank, ==, MB_R);
  g_assert_cmpint (c->num_classes, ==, MB_C);
  g_assert_cmpfloat (c->norm_eps, ==, 1e-5f);
  g_assert_cmpfloat (c->mean[0], ==, 0.485f);
  g_assert_cmpfloat (c->mean[2], ==, 0.406f);
  g_assert_cmpfloat (c->std[1], ==, 0.224f);
  g_assert_cmpint (c->resize, ==, VIM_RESIZE_STRETCH);
  g_assert_cmpfloat (c->crop_ratio, ==, 0.875f);
}

static void
test_valid_f32 (void)
{
  ModelSpec *s = mb_new_tiny ();
  VimModel *m = open_spec (s, "valid-f32");
  check_tiny_config (m);
  check_weights (m);
  /* aligned little-endian F32 is used in place: no converted copy */
  if (G_BYTE_ORDER == G_LITTLE_ENDIAN)
    g_assert_null (m->converted);
  g_assert_cmpstr (vim_model_get_label (m, 0), ==, "cat");
  g_assert_cmpstr (vim_model_get_label (m, 1), ==, "dog");
  g_assert_cmpstr (vim_model_get_label (m, 2), ==, "bird");
  g_assert_null (vim_model_get_label (m, 3));
  g_assert_null (vim_model_get_label (m, -1));
  VimModel *r = vim_model_ref (m);
  g_assert_true (r == m);
  vim_model_unref (r);
  g_assert_cmpstr (vim_model_get_label (m, 0), ==, "cat");
  vim_model_unref (m);
  mb_free (s);
}

static void
test_valid_dtype (gconstpointer data)
{
  const char *dtype = data;
  ModelSpec *s = mb_new_tiny ();
  mb_set_dtype_all (s, dtype);
  char *name = g_strdup_printf ("valid-%s", dtype);
  VimModel *m = open_spec (s, name);
  check_tiny_config (m);
  check_weights (m);
  g_assert_nonnull (m->converted);
  vim_model_unref (m);
  g_free (name);
  mb_free (s);
}

static void
test_valid_mixed_dtypes (void)
{
  ModelSpec *s = mb_new_tiny ();
  static const char *const dt[] = { "F32", "F16", "BF16" };
  for (guint i = 0; i < s->tensors->len; i++) {
    MbTensor *t = s->tensors->pdata[i];
    g_free (t->dtype);
    t->dtype = g_strdup (dt[i % 3]);
  }
  s->align = 2;  /* pack tightly: F32 tensors land on 2-byte boundaries */
  VimModel *m = open_spec (s, "valid-mixed");
  check_weights (m);
  vim_model_unref (m);
  mb_free (s);
}

static void
test_valid_unaligned (void)
{
  /* a header of 8k+2 bytes puts every F32 tensor off 4-byte alignment */
  ModelSpec *s = mb_new_tiny ();
  s->header_extra_pad = 2;
  VimModel *m = open_spec (s, "valid-unaligned-f32");
  check_weights (m);
  g_assert_nonnull (m->converted);
  vim_model_unref (m);
  mb_free (s);
}

static void
test_valid_odd_offset (gconstpointer data)
{
  /* a header of 8k+1 bytes puts every 2-byte tensor at an odd address */
  const char *dtype = data;
  ModelSpec *s = mb_new_tiny ();
  mb_set_dtype_all (s, dtype);
  s->header_extra_pad = 1;
  char *name = g_strdup_printf ("valid-odd-offset-%s", dtype);
  VimModel *m = open_spec (s, name);
  check_weights (m);
  vim_model_unref (m);
  g_free (name);
  mb_free (s);
}

static void
test_valid_x_metadata (void)
{
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "x-source", "https://example.org/vim.pth");
  mb_set_meta (s, "x-converter", "vim-convert 0.1");
  mb_set_meta (s, "x-", "");
  VimModel *m = open_spec (s, "valid-x-metadata");
  check_tiny_config (m);
  vim_model_unref (m);
  mb_free (s);
}

static void
test_valid_defaults (void)
{
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "in_chans", NULL);
  mb_set_meta (s, "norm_eps", NULL);
  mb_set_meta (s, "crop_ratio", NULL);
  mb_set_meta (s, "labels", NULL);
  VimModel *m = open_spec (s, "valid-defaults");
  check_tiny_config (m);   /* the defaults are the values the tiny model writes */
  g_assert_null (vim_model_get_label (m, 0));
  vim_model_unref (m);
  mb_free (s);
}

static void
write_text (const char *name, const char *text)
{
  char *p = g_build_filename (tmpdir, name, NULL);
  write_bytes (p, (const guint8 *) text, strlen (text));
  g_free (p);
}

static void
test_valid_labels_file (void)
{
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "labels", NULL);
  mb_set_meta (s, "labels_file", "crlf-labels.txt");
  write_text ("crlf-labels.txt", "tabby cat\r\ngolden retriever\r\nrobin\r\n");
  VimModel *m = open_spec (s, "valid-labels-file");
  g_assert_cmpstr (vim_model_get_label (m, 0), ==, "tabby cat");
  g_assert_cmpstr (vim_model_get_label (m, 1), ==, "golden retriever");
  g_assert_cmpstr (vim_model_get_label (m, 2), ==, "robin");
  vim_model_unref (m);
  mb_free (s);
}

static void
test_valid_labels_precedence (void)
{
  /* 'labels' wins over 'labels_file' (which is then never read) */
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "labels_file", "no-such-labels.txt");
  VimModel *m = open_spec (s, "valid-labels-precedence");
  g_assert_cmpstr (vim_model_get_label (m, 1), ==, "dog");
  vim_model_unref (m);
  mb_free (s);
}

static void
test_load_labels_api (void)
{
  ModelSpec *s = mb_new_tiny ();
  VimModel *m = open_spec (s, "load-labels-api");
  char *two = g_build_filename (tmpdir, "two-labels.txt", NULL);
  char *three = g_build_filename (tmpdir, "three-labels.txt", NULL);
  char *none = g_build_filename (tmpdir, "none-labels.txt", NULL);
  write_text ("three-labels.txt", "x\ny\nz");
  GError *err = NULL;
  /* a wrong count fails and keeps the old labels */
  g_assert_false (vim_model_load_labels (m, two, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_MODEL);
  g_assert_nonnull (strstr (err->message, two));
  g_clear_error (&err);
  g_assert_false (vim_model_load_labels (m, none, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_IO);
  g_assert_nonnull (strstr (err->message, none));
  g_clear_error (&err);
  g_assert_cmpstr (vim_model_get_label (m, 2), ==, "bird");
  g_assert_true (vim_model_load_labels (m, three, &err));
  g_assert_no_error (err);
  g_assert_cmpstr (vim_model_get_label (m, 0), ==, "x");
  g_assert_cmpstr (vim_model_get_label (m, 2), ==, "z");
  vim_model_unref (m);
  g_free (two);
  g_free (three);
  g_free (none);
  mb_free (s);
}

static void
test_valid_geometry (void)
{
  /* overlapping patches and a non-square input */
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "image_size", "16,24");
  mb_set_meta (s, "stride", "4");
  /* grid (16-8)/4+1 = 3 by (24-8)/4+1 = 5: M = 15, L = 16 */
  mb_find (s, "pos_embed")->shape[1] = 16;
  VimModel *m = open_spec (s, "valid-geometry");
  const VimModelConfig *c = vim_model_get_config (m);
  g_assert_cmpint (c->grid_h, ==, 3);
  g_assert_cmpint (c->grid_w, ==, 5);
  g_assert_cmpint (c->num_patches, ==, 15);
  g_assert_cmpint (c->seq_len, ==, 16);
  g_assert_cmpint (c->cls_index, ==, 7);
  g_assert_cmpint (c->image_height, ==, 16);
  g_assert_cmpint (c->image_width, ==, 24);
  vim_model_unref (m);
  mb_free (s);
}

static void
test_valid_forward (void)
{
  /* a loaded model runs: logits come out finite */
  ModelSpec *s = mb_new_tiny ();
  mb_set_dtype_all (s, "BF16");
  VimModel *m = open_spec (s, "valid-forward");
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.num_threads = 1;
  GError *err = NULL;
  VimRunner *r = vim_runner_new (m, &o, &err);
  g_assert_no_error (err);
  float in[3 * MB_IMG * MB_IMG], logits[MB_C];
  for (int i = 0; i < 3 * MB_IMG * MB_IMG; i++)
    in[i] = (float) ((i * 37) % 17 - 8) / 8.0f;
  g_assert_true (vim_runner_forward (r, in, 1, logits, &err));
  g_assert_no_error (err);
  for (int i = 0; i < MB_C; i++)
    g_assert_true (isfinite (logits[i]));
  vim_runner_free (r);
  vim_model_unref (m);
  mb_free (s);
}

/* ---- segmenters ------------------------------------------------------------ */

static void
check_seg_weights (const VimModel *m)
{
  const VimWeights *w = &m->w;
  g_assert_null (w->cls_token);
  g_assert_null (w->head_w);
  g_assert_null (w->head_b);
  check_values ("pos_embed", w->pos_embed, (MB_L - 1) * MB_D);
  check_values ("seg_head.proj.0.weight", w->seg_proj_w[0], MB_CH * MB_D);
  g_assert_null (w->seg_proj_w[1]);
  check_values ("seg_head.proj_bias", w->seg_proj_b, MB_CH);
  check_values ("seg_head.dwconv.weight", w->seg_dw_w, MB_CH * 9);
  check_values ("seg_head.dwconv.bias", w->seg_dw_b, MB_CH);
  check_values ("seg_head.cls.weight", w->seg_cls_w, MB_C * MB_CH);
  check_values ("seg_head.cls.bias", w->seg_cls_b, MB_C);
  check_values ("layers.0.mixer.in_proj.weight", w->layers[0].in_proj_w,
      2 * MB_E * MB_D);
}

static void
test_valid_segmenter (gconstpointer data)
{
  const char *dtype = data;
  ModelSpec *s = mb_new_tiny_seg ();
  mb_set_dtype_all (s, dtype);
  char *name = g_strdup_printf ("valid-seg-%s", dtype);
  VimModel *m = open_spec (s, name);
  const VimModelConfig *c = vim_model_get_config (m);
  g_assert_cmpstr (c->name, ==, "vim_loader_test_tiny_seg");
  g_assert_cmpint (c->task, ==, VIM_TASK_SEGMENTATION);
  g_assert_cmpint (c->cls_index, ==, -1);
  g_assert_cmpint (c->seq_len, ==, 4);
  g_assert_cmpint (c->n_seg_layers, ==, 1);
  g_assert_cmpint (c->seg_layers[0], ==, 0);
  g_assert_cmpint (c->seg_channels, ==, MB_CH);
  g_assert_cmpint (c->ignore_index, ==, 255);
  g_assert_cmpuint (vim_model_output_size (m), ==, MB_C * 2 * 2);
  g_assert_null (m->w.norm_f_w);
  check_seg_weights (m);
  vim_model_unref (m);
  g_free (name);
  mb_free (s);
}

/* norm_f.weight is allowed (and unused); ignore_index defaults to -1; a
 * deeper model with several levels. */
static void
test_valid_segmenter_norm_f (void)
{
  ModelSpec *s = mb_new_tiny_seg ();
  mb_add_tensor (s, "norm_f.weight", "F32", 1, MB_D);
  mb_set_meta (s, "ignore_index", NULL);
  mb_set_meta (s, "depth", "3");
  mb_set_meta (s, "seg_layers", "0,2");
  mb_add_tensor (s, "seg_head.proj.1.weight", "F32", 2, MB_CH, MB_D);
  /* copy layer 0's tensors to layers 1 and 2 */
  guint n = s->tensors->len;
  for (int l = 1; l < 3; l++)
    for (guint i = 0; i < n; i++) {
      MbTensor *t = s->tensors->pdata[i];
      if (!g_str_has_prefix (t->name, "layers.0."))
        continue;
      char *nn = g_strdup_printf ("layers.%d.%s", l, t->name + strlen ("layers.0."));
      MbTensor *c = mb_add_tensor (s, nn, "F32", 0);
      c->ndim = t->ndim;
      memcpy (c->shape, t->shape, sizeof t->shape);
      g_free (nn);
    }
  VimModel *m = open_spec (s, "valid-seg-norm-f");
  const VimModelConfig *c = vim_model_get_config (m);
  g_assert_cmpint (c->ignore_index, ==, -1);
  g_assert_cmpint (c->n_seg_layers, ==, 2);
  g_assert_cmpint (c->seg_layers[0], ==, 0);
  g_assert_cmpint (c->seg_layers[1], ==, 2);
  check_values ("norm_f.weight", m->w.norm_f_w, MB_D);
  check_values ("seg_head.proj.1.weight", m->w.seg_proj_w[1], MB_CH * MB_D);
  vim_model_unref (m);
  mb_free (s);
}

/* ---- main ------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GError *err = NULL;
  tmpdir = g_dir_make_tmp ("vim-loader-XXXXXX", &err);
  g_assert_no_error (err);
  write_text ("two-labels.txt", "one\ntwo\n");

  for (guint i = 0; i < G_N_ELEMENTS (fail_cases); i++) {
    char *p = g_strdup_printf ("/loader/refuse/%s", fail_cases[i].name);
    g_test_add_data_func (p, &fail_cases[i], test_fail_case);
    g_free (p);
  }
  for (guint i = 0; i < G_N_ELEMENTS (seg_fail_cases); i++) {
    char *p = g_strdup_printf ("/loader/refuse/%s", seg_fail_cases[i].name);
    g_test_add_data_func (p, &seg_fail_cases[i], test_seg_fail_case);
    g_free (p);
  }
  g_test_add_func ("/loader/refuse/header-len-64MiB+1", test_header_too_long);
  g_test_add_func ("/loader/refuse/no-such-file", test_no_such_file);
  g_test_add_func ("/loader/refuse/directory", test_directory);

  g_test_add_func ("/loader/valid/f32", test_valid_f32);
  g_test_add_data_func ("/loader/valid/f16", "F16", test_valid_dtype);
  g_test_add_data_func ("/loader/valid/bf16", "BF16", test_valid_dtype);
  g_test_add_func ("/loader/valid/mixed-dtypes-packed", test_valid_mixed_dtypes);
  g_test_add_func ("/loader/valid/unaligned-f32", test_valid_unaligned);
  g_test_add_data_func ("/loader/valid/odd-offset-f16", "F16", test_valid_odd_offset);
  g_test_add_data_func ("/loader/valid/odd-offset-bf16", "BF16", test_valid_odd_offset);
  g_test_add_func ("/loader/valid/x-metadata", test_valid_x_metadata);
  g_test_add_func ("/loader/valid/defaults", test_valid_defaults);
  g_test_add_func ("/loader/valid/labels-file", test_valid_labels_file);
  g_test_add_func ("/loader/valid/labels-precedence", test_valid_labels_precedence);
  g_test_add_func ("/loader/valid/load-labels-api", test_load_labels_api);
  g_test_add_func ("/loader/valid/geometry", test_valid_geometry);
  g_test_add_func ("/loader/valid/forward", test_valid_forward);
  g_test_add_data_func ("/loader/valid/segmenter-f32", "F32", test_valid_segmenter);
  g_test_add_data_func ("/loader/valid/segmenter-bf16", "BF16", test_valid_segmenter);
  g_test_add_func ("/loader/valid/segmenter-norm-f-and-defaults", test_valid_segmenter_norm_f);

  int rc = g_test_run ();

  GDir *d = g_dir_open (tmpdir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name (d))) {
    char *p = g_build_filename (tmpdir, n, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return rc;
}
