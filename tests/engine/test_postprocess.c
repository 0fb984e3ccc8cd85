/* Postprocessing: vim_softmax (normalized, order preserving, stable for
 * large logits) and vim_top_k (ordering, ties, threshold, k > n, k = 0,
 * labels from the model), against a brute-force reference. */
#include <vim/vim.h>
#include "../loader/model_builder.h"
#include "../common/splitmix.h"

#include <float.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>

/* ---- softmax ------------------------------------------------------------------ */

static void
ref_softmax (const float *x, int n, double *p)
{
  double m = -INFINITY, s = 0;
  for (int i = 0; i < n; i++)
    m = fmax (m, x[i]);
  for (int i = 0; i < n; i++)
    s += (p[i] = exp ((double) x[i] - m));
  for (int i = 0; i < n; i++)
    p[i] /= s;
}

static void
check_softmax (const float *x, int n, double rel_tol)
{
  float *p = g_new (float, n);
  double *r = g_new (double, n);
  vim_softmax (x, n, p);
  ref_softmax (x, n, r);
  double sum = 0;
  for (int i = 0; i < n; i++) {
    g_assert_true (isfinite (p[i]));
    g_assert_cmpfloat (p[i], >=, 0.0f);
    g_assert_cmpfloat (p[i], <=, 1.0f);
    sum += p[i];
    if (fabs (p[i] - r[i]) > rel_tol * r[i] + 1e-7)
      g_error ("softmax[%d] of %d = %.9g, reference %.9g", i, n, p[i], r[i]);
  }
  g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-5);
  /* order preserving */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n && n <= 64; j++)
      if (x[i] > x[j])
        g_assert_cmpfloat (p[i], >=, p[j]);
  g_free (p);
  g_free (r);
}

static void
test_softmax_basic (void)
{
  float one = 3.5f, p;
  vim_softmax (&one, 1, &p);
  g_assert_cmpfloat (p, ==, 1.0f);

  float eq[4] = { 2, 2, 2, 2 }, pe[4];
  vim_softmax (eq, 4, pe);
  for (int i = 0; i < 4; i++)
    g_assert_cmpfloat_with_epsilon (pe[i], 0.25, 1e-7);

  float two[2] = { 0, (float) log (3.0) }, p2[2];
  vim_softmax (two, 2, p2);
  g_assert_cmpfloat_with_epsilon (p2[0], 0.25, 1e-6);
  g_assert_cmpfloat_with_epsilon (p2[1], 0.75, 1e-6);

  float x[1000];
  vim_test_uniform (7, 1, x, 1000);
  for (int i = 0; i < 1000; i++)
    x[i] *= 12.0f;
  check_softmax (x, 1000, 1e-5);
  check_softmax (x, 10, 1e-5);
}

static void
test_softmax_stable (void)
{
  /* large logits: exp would overflow without the max shift */
  float big[3] = { 1000.f, 999.f, 998.f }, small[3] = { 2.f, 1.f, 0.f };
  float pb[3], ps[3];
  vim_softmax (big, 3, pb);
  vim_softmax (small, 3, ps);
  for (int i = 0; i < 3; i++)
    g_assert_cmpfloat_with_epsilon (pb[i], ps[i], 1e-6);
  check_softmax (big, 3, 1e-5);

  float neg[3] = { -1000.f, -1001.f, -1002.f }, pn[3];
  vim_softmax (neg, 3, pn);
  for (int i = 0; i < 3; i++)
    g_assert_cmpfloat_with_epsilon (pn[i], ps[i], 1e-6);

  float huge[4] = { FLT_MAX, 0.f, -FLT_MAX, FLT_MAX / 2 }, ph[4];
  vim_softmax (huge, 4, ph);
  g_assert_cmpfloat (ph[0], ==, 1.0f);
  g_assert_cmpfloat (ph[1], ==, 0.0f);
  g_assert_cmpfloat (ph[2], ==, 0.0f);
  g_assert_cmpfloat (ph[3], ==, 0.0f);

  /* -inf logits get probability 0 */
  float inf[3] = { -INFINITY, 0.f, 0.f }, pi[3];
  vim_softmax (inf, 3, pi);
  g_assert_cmpfloat (pi[0], ==, 0.0f);
  g_assert_cmpfloat_with_epsilon (pi[1], 0.5, 1e-7);

  /* shift invariance across a wide range */
  float x[64], y[64], px[64], py[64];
  vim_test_uniform (8, 2, x, 64);
  for (int i = 0; i < 64; i++) {
    x[i] *= 30.f;
    y[i] = x[i] + 5000.f;
  }
  vim_softmax (x, 64, px);
  vim_softmax (y, 64, py);
  for (int i = 0; i < 64; i++)
    g_assert_cmpfloat (fabs (px[i] - py[i]), <=, 2e-4 * px[i] + 1e-7);
  check_softmax (x, 64, 1e-5);
}

/* ---- top-k ------------------------------------------------------------------------- */

typedef struct {
  int id;
  float s;
} Item;

static int
cmp_item (const void *a, const void *b)
{
  const Item *x = a, *y = b;
  if (x->s != y->s)
    return x->s > y->s ? -1 : 1;
  return x->id - y->id;   /* ties: the lower class id first */
}

static int
ref_top_k (const float *s, int n, int k, float thr, Item *out)
{
  Item *all = g_new (Item, n > 0 ? n : 1);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (s[i] >= thr)
      all[m++] = (Item) { i, s[i] };
  qsort (all, m, sizeof (Item), cmp_item);
  int r = MIN (MAX (k, 0), m);
  memcpy (out, all, sizeof (Item) * r);
  g_free (all);
  return r;
}

static void
check_top_k (const VimModel *model, const float *s, int n, int k, float thr)
{
  VimClassScore *out = g_new0 (VimClassScore, MAX (k, 1) + 1);
  Item *ref = g_new (Item, MAX (n, 1));
  /* a guard entry after the k the function may write */
  out[MAX (k, 0)].class_id = -12345;
  int got = vim_top_k (model, s, n, k, thr, out);
  int want = ref_top_k (s, n, k, thr, ref);
  if (got != want)
    g_error ("top-%d of %d at threshold %g: %d results, want %d", k, n, thr, got, want);
  for (int i = 0; i < got; i++) {
    if (out[i].class_id != ref[i].id || out[i].score != ref[i].s)
      g_error ("top-%d of %d: [%d] = class %d score %g, want class %d score %g", k, n,
          i, out[i].class_id, out[i].score, ref[i].id, ref[i].s);
    const char *lab = model ? vim_model_get_label (model, out[i].class_id) : NULL;
    g_assert_true (out[i].label == lab);
  }
  g_assert_cmpint (out[MAX (k, 0)].class_id, ==, -12345);
  g_free (out);
  g_free (ref);
}

static void
test_top_k_order (void)
{
  float s[6] = { 0.1f, 0.5f, 0.05f, 0.3f, 0.0f, 0.05f };
  VimClassScore out[6];
  int n = vim_top_k (NULL, s, 6, 3, 0.0f, out);
  g_assert_cmpint (n, ==, 3);
  g_assert_cmpint (out[0].class_id, ==, 1);
  g_assert_cmpint (out[1].class_id, ==, 3);
  g_assert_cmpint (out[2].class_id, ==, 0);
  g_assert_cmpfloat (out[0].score, ==, 0.5f);
  g_assert_null (out[0].label);
  for (int k = 0; k <= 8; k++)
    check_top_k (NULL, s, 6, k, -INFINITY);
}

static void
test_top_k_ties (void)
{
  /* equal scores come out in class-id order, whatever their position */
  float s[8] = { 0.2f, 0.7f, 0.2f, 0.7f, 0.2f, 0.1f, 0.7f, 0.2f };
  VimClassScore out[8];
  int n = vim_top_k (NULL, s, 8, 5, 0.0f, out);
  g_assert_cmpint (n, ==, 5);
  int want[5] = { 1, 3, 6, 0, 2 };
  for (int i = 0; i < 5; i++)
    g_assert_cmpint (out[i].class_id, ==, want[i]);
  /* all equal */
  float e[10];
  for (int i = 0; i < 10; i++)
    e[i] = 0.1f;
  for (int k = 0; k <= 12; k++)
    check_top_k (NULL, e, 10, k, 0.0f);
}

static void
test_top_k_threshold (void)
{
  float s[6] = { 0.1f, 0.5f, 0.05f, 0.3f, 0.0f, 0.05f };
  VimClassScore out[6];
  /* at or above: 0.3 itself passes */
  int n = vim_top_k (NULL, s, 6, 5, 0.3f, out);
  g_assert_cmpint (n, ==, 2);
  g_assert_cmpint (out[0].class_id, ==, 1);
  g_assert_cmpint (out[1].class_id, ==, 3);
  g_assert_cmpint (vim_top_k (NULL, s, 6, 5, 0.51f, out), ==, 0);
  g_assert_cmpint (vim_top_k (NULL, s, 6, 5, 2.0f, out), ==, 0);
  g_assert_cmpint (vim_top_k (NULL, s, 6, 6, 0.0f, out), ==, 6);
  /* NaN scores never pass a threshold */
  float w[4] = { NAN, 0.4f, NAN, 0.6f };
  n = vim_top_k (NULL, w, 4, 4, -INFINITY, out);
  g_assert_cmpint (n, ==, 2);
  g_assert_cmpint (out[0].class_id, ==, 3);
  g_assert_cmpint (out[1].class_id, ==, 1);
  for (float thr = -0.1f; thr < 0.7f; thr += 0.05f)
    for (int k = 0; k <= 7; k++)
      check_top_k (NULL, s, 6, k, thr);
}

static void
test_top_k_edges (void)
{
  float s[3] = { 0.2f, 0.5f, 0.3f };
  VimClassScore out[8];
  memset (out, 0x55, sizeof out);
  /* k > n: all n, sorted */
  g_assert_cmpint (vim_top_k (NULL, s, 3, 8, 0.0f, out), ==, 3);
  g_assert_cmpint (out[0].class_id, ==, 1);
  g_assert_cmpint (out[1].class_id, ==, 2);
  g_assert_cmpint (out[2].class_id, ==, 0);
  /* k = 0, k < 0, n = 0: nothing, nothing written */
  memset (out, 0x55, sizeof out);
  g_assert_cmpint (vim_top_k (NULL, s, 3, 0, 0.0f, out), ==, 0);
  g_assert_cmpint (vim_top_k (NULL, s, 3, -2, 0.0f, out), ==, 0);
  g_assert_cmpint (vim_top_k (NULL, s, 0, 5, 0.0f, out), ==, 0);
  g_assert_cmpint (vim_top_k (NULL, NULL, 0, 5, 0.0f, out), ==, 0);
  g_assert_cmpint (out[0].class_id, ==, 0x55555555);
  /* k = 1 */
  g_assert_cmpint (vim_top_k (NULL, s, 3, 1, 0.0f, out), ==, 1);
  g_assert_cmpint (out[0].class_id, ==, 1);
}

static void
test_top_k_random (void)
{
  /* many duplicates and negative scores, every k, several thresholds */
  for (int trial = 0; trial < 20; trial++) {
    int n = 1 + trial * 7;
    float *s = g_new (float, n);
    vim_test_uniform (30 + trial, 3, s, n);
    for (int i = 0; i < n; i++)
      s[i] = roundf (s[i] * 8.f) / 8.f;   /* 17 distinct values: lots of ties */
    for (int k = 0; k <= n + 2; k += 1 + n / 10)
      for (float thr = -1.5f; thr <= 1.f; thr += 0.375f)
        check_top_k (NULL, s, n, k, thr);
    g_free (s);
  }
  /* the softmax of 1000 logits, top-5 */
  float x[1000], p[1000];
  vim_test_uniform (40, 4, x, 1000);
  vim_softmax (x, 1000, p);
  check_top_k (NULL, p, 1000, 5, 0.0f);
  check_top_k (NULL, p, 1000, 1000, 0.0f);
}

/* ---- labels from the model ------------------------------------------------------------ */

static VimModel *
open_tiny (const char *dir, ModelSpec *s)
{
  GByteArray *b = mb_serialize (s);
  char *path = g_build_filename (dir, "tiny.safetensors", NULL);
  GError *err = NULL;
  g_file_set_contents (path, (const char *) b->data, b->len, &err);
  g_assert_no_error (err);
  VimModel *m = vim_model_open (path, &err);
  g_assert_no_error (err);
  g_unlink (path);
  g_free (path);
  g_byte_array_unref (b);
  return m;
}

static void
test_top_k_labels (void)
{
  GError *err = NULL;
  char *dir = g_dir_make_tmp ("vim-postprocess-XXXXXX", &err);
  g_assert_no_error (err);
  ModelSpec *s = mb_new_tiny ();   /* labels cat, dog, bird */
  VimModel *m = open_tiny (dir, s);
  float logits[3] = { 0.5f, -1.f, 2.f }, p[3];
  vim_softmax (logits, 3, p);
  VimClassScore out[3];
  g_assert_cmpint (vim_top_k (m, p, 3, 3, 0.0f, out), ==, 3);
  g_assert_cmpstr (out[0].label, ==, "bird");
  g_assert_cmpstr (out[1].label, ==, "cat");
  g_assert_cmpstr (out[2].label, ==, "dog");
  /* labels are the model's own strings */
  g_assert_true (out[0].label == vim_model_get_label (m, 2));
  check_top_k (m, p, 3, 2, 0.0f);

  /* replaced labels show up */
  char *lf = g_build_filename (dir, "labels.txt", NULL);
  g_file_set_contents (lf, "zero\none\ntwo\n", -1, &err);
  g_assert_no_error (err);
  g_assert_true (vim_model_load_labels (m, lf, &err));
  g_assert_no_error (err);
  g_assert_cmpint (vim_top_k (m, p, 3, 1, 0.0f, out), ==, 1);
  g_assert_cmpstr (out[0].label, ==, "two");
  /* scores beyond the model's classes get no label */
  float more[5] = { 0.f, 0.f, 0.f, 0.f, 1.f };
  VimClassScore o5[5];
  g_assert_cmpint (vim_top_k (m, more, 5, 1, 0.0f, o5), ==, 1);
  g_assert_cmpint (o5[0].class_id, ==, 4);
  g_assert_null (o5[0].label);
  vim_model_unref (m);
  g_unlink (lf);
  g_free (lf);

  /* a model without labels: NULL labels */
  mb_set_meta (s, "labels", NULL);
  m = open_tiny (dir, s);
  g_assert_cmpint (vim_top_k (m, p, 3, 3, 0.0f, out), ==, 3);
  for (int i = 0; i < 3; i++)
    g_assert_null (out[i].label);
  vim_model_unref (m);
  mb_free (s);
  g_rmdir (dir);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/postprocess/softmax/basic", test_softmax_basic);
  g_test_add_func ("/postprocess/softmax/stable", test_softmax_stable);
  g_test_add_func ("/postprocess/top-k/order", test_top_k_order);
  g_test_add_func ("/postprocess/top-k/ties", test_top_k_ties);
  g_test_add_func ("/postprocess/top-k/threshold", test_top_k_threshold);
  g_test_add_func ("/postprocess/top-k/edges", test_top_k_edges);
  g_test_add_func ("/postprocess/top-k/random", test_top_k_random);
  g_test_add_func ("/postprocess/top-k/labels", test_top_k_labels);
  return g_test_run ();
}
