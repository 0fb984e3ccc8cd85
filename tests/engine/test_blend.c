/* Drawing (vim.h "drawing"): vim_blend_mask, vim_blend_argb and
 * vim_default_palette on host frames of every format, against an
 * independent per-pixel reference written here in double precision from the
 * definitions in vim.h / engine/src/blend.c (pixel-centre mapping, round
 * half up, BT.601 limited-range YUV from its decimal coefficients, chroma
 * rules), plus a few values worked out by hand.
 *
 * Every check compares the whole frame buffers, row padding and the 4th byte
 * of 4-byte formats included, so "changed exactly where the mask says and
 * nowhere else" is checked byte for byte. Frames end exactly with their last
 * row, so a write past the end shows under ASan / valgrind. */
#include "vim-private.h"
#include "../common/splitmix.h"

#include <math.h>
#include <string.h>

/* ---- frames --------------------------------------------------------------------- */

typedef struct {
  VimFrame f;
  uint8_t *buf[3];
  size_t size[3];
} TFrame;

static const VimPixelFormat all_formats[] = {
  VIM_PIXEL_RGB, VIM_PIXEL_RGBA, VIM_PIXEL_RGBX, VIM_PIXEL_BGR, VIM_PIXEL_BGRA,
  VIM_PIXEL_BGRX, VIM_PIXEL_NV12, VIM_PIXEL_I420, VIM_PIXEL_GRAY8,
};

static gboolean
fmt_yuv (VimPixelFormat f)
{
  return f == VIM_PIXEL_NV12 || f == VIM_PIXEL_I420;
}

static gboolean
fmt_rgb (VimPixelFormat f)
{
  return !fmt_yuv (f) && f != VIM_PIXEL_GRAY8;
}

static int
fmt_bpp (VimPixelFormat f)
{
  return f == VIM_PIXEL_RGB || f == VIM_PIXEL_BGR ? 3 : fmt_rgb (f) ? 4 : 1;
}

/* byte offset of R, G, B inside an RGB-like pixel */
static int
chan_off (VimPixelFormat f, int k)
{
  gboolean bgr = f == VIM_PIXEL_BGR || f == VIM_PIXEL_BGRA || f == VIM_PIXEL_BGRX;
  return k == 1 ? 1 : (k == 0) != bgr ? 0 : 2;
}

static uint64_t rng_state = 1;

static uint8_t
rnd8 (void)
{
  return (uint8_t) (vim_test_splitmix64 (rng_state++) >> 56);
}

static int
rnd_int (int n)
{
  return (int) ((vim_test_splitmix64 (rng_state++) >> 33) % (uint64_t) n);
}

/* random content, rows padded by `pad` bytes (more on later planes) */
static void
tframe_new (TFrame *t, VimPixelFormat fmt, int w, int h, size_t pad)
{
  memset (t, 0, sizeof *t);
  t->f.format = fmt;
  t->f.width = w;
  t->f.height = h;
  t->f.memory = VIM_MEMORY_HOST;
  int np = vim_pixel_format_n_planes (fmt);
  for (int p = 0; p < np; p++) {
    int cw = (w + 1) / 2, rows = p == 0 ? h : (h + 1) / 2;
    size_t rb = p == 0 ? (size_t) w * fmt_bpp (fmt)
        : fmt == VIM_PIXEL_NV12 ? (size_t) cw * 2 : (size_t) cw;
    t->f.strides[p] = rb + pad + (size_t) p * 5;
    t->size[p] = t->f.strides[p] * (rows - 1) + rb;
    t->buf[p] = g_malloc (t->size[p]);
    for (size_t i = 0; i < t->size[p]; i++)
      t->buf[p][i] = rnd8 ();
    t->f.planes[p] = t->buf[p];
  }
}

static void
tframe_copy (TFrame *dst, const TFrame *src)
{
  *dst = *src;
  for (int p = 0; p < 3; p++)
    if (src->buf[p]) {
      dst->buf[p] = g_memdup2 (src->buf[p], src->size[p]);
      dst->f.planes[p] = dst->buf[p];
    }
}

static void
tframe_free (TFrame *t)
{
  for (int p = 0; p < 3; p++)
    g_free (t->buf[p]);
  memset (t, 0, sizeof *t);
}

static void
assert_same_bytes (const TFrame *got, const TFrame *want, const char *what)
{
  for (int p = 0; p < 3; p++) {
    if (got->buf[p] == NULL)
      continue;
    for (size_t i = 0; i < got->size[p]; i++)
      if (got->buf[p][i] != want->buf[p][i]) {
        size_t st = got->f.strides[p];
        g_error ("%s: %s %dx%d plane %d row %zu byte %zu: got %d, want %d",
            what, vim_pixel_format_name (got->f.format), got->f.width,
            got->f.height, p, i / st, i % st, got->buf[p][i], want->buf[p][i]);
      }
  }
}

static size_t
count_changed (const TFrame *a, const TFrame *b)
{
  size_t n = 0;
  for (int p = 0; p < 3; p++)
    for (size_t i = 0; a->buf[p] && i < a->size[p]; i++)
      n += a->buf[p][i] != b->buf[p][i];
  return n;
}

static uint8_t *
luma_px (TFrame *t, int x, int y)
{
  return t->buf[0] + (size_t) y * t->f.strides[0] + (size_t) x * fmt_bpp (t->f.format);
}

static void
chroma_px (TFrame *t, int bx, int by, uint8_t **u, uint8_t **v)
{
  if (t->f.format == VIM_PIXEL_NV12) {
    *u = t->buf[1] + (size_t) by * t->f.strides[1] + 2 * (size_t) bx;
    *v = *u + 1;
  } else {
    *u = t->buf[1] + (size_t) by * t->f.strides[1] + bx;
    *v = t->buf[2] + (size_t) by * t->f.strides[2] + bx;
  }
}

/* ---- reference colour maths (decimal definitions, double) ------------------------ */

static uint8_t
round_u8 (double v)
{
  v = floor (v + 0.5);
  return (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
}

static double
ref_y (double r, double g, double b)
{
  return (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;   /* without the +16 */
}

static double
ref_u (double r, double g, double b)
{
  return (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
}

static double
ref_v (double r, double g, double b)
{
  return (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
}

static double
ref_gray (double r, double g, double b)
{
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/* ---- mask blend reference --------------------------------------------------------- */

typedef struct {
  int mw, mh;
  uint8_t *mask;
  size_t stride;
} TMask;

static void
tmask_new (TMask *m, int mw, int mh, int n_values, size_t pad)
{
  m->mw = mw;
  m->mh = mh;
  m->stride = mw + pad;
  m->mask = g_malloc (m->stride * (mh - 1) + mw);
  memset (m->mask, 0xEE, m->stride * (mh - 1) + mw);
  /* blobs, not noise: a coarse random grid so regions and edges both exist */
  for (int y = 0; y < mh; y++)
    for (int x = 0; x < mw; x++)
      m->mask[(size_t) y * m->stride + x] = (uint8_t)
          (vim_test_splitmix64 (rng_state + (y / 3) * 1000 + x / 2) % n_values);
  rng_state += 100000;
}

/* mask index of frame coordinate p, -1 when its centre is outside */
static int
ref_axis (int p, double start, double extent, int n)
{
  double c = p + 0.5;
  if (c < start || c >= start + extent)
    return -1;
  double m = floor ((c - start) * n / extent);
  return m < 0 ? 0 : m >= n ? n - 1 : (int) m;
}

static int
ref_class (const TMask *m, const VimMaskGeometry *g, int W, int H, int x, int y)
{
  if (x >= W || y >= H)
    return -1;
  int mx = ref_axis (x, g->x, g->w, g->width), my = ref_axis (y, g->y, g->h, g->height);
  if (mx < 0 || my < 0)
    return -1;
  return m->mask[(size_t) my * m->stride + mx];
}

/* the weight of the class colour at (x, y), or -1 when untouched */
static double
ref_weight (const TMask *m, const VimMaskGeometry *g, const VimBlendOptions *o,
    int W, int H, int x, int y, int *cls)
{
  int c = ref_class (m, g, W, H, x, y);
  *cls = c;
  if (c < 0)
    return -1;
  if (o->class_visible && !(c < o->n_classes && o->class_visible[c]))
    return -1;
  if (o->contours) {
    int r = ref_class (m, g, W, H, x + 1, y), b = ref_class (m, g, W, H, x, y + 1);
    if ((r >= 0 && r != c) || (b >= 0 && b != c))
      return 1.0;
  }
  return o->alpha;
}

static uint8_t
mixd (uint8_t s, double colour, double a)
{
  return round_u8 (s * (1.0 - a) + colour * a);
}

static void
ref_blend_mask (TFrame *t, const TMask *m, const VimMaskGeometry *g,
    const VimBlendOptions *o)
{
  int W = t->f.width, H = t->f.height;
  VimPixelFormat f = t->f.format;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int c;
      double a = ref_weight (m, g, o, W, H, x, y, &c);
      if (a < 0)
        continue;
      const uint8_t *rgb = o->palette + 3 * (c % o->n_palette);
      uint8_t *px = luma_px (t, x, y);
      if (fmt_rgb (f)) {
        for (int k = 0; k < 3; k++)
          px[chan_off (f, k)] = mixd (px[chan_off (f, k)], rgb[k], a);
      } else if (f == VIM_PIXEL_GRAY8) {
        px[0] = mixd (px[0], round_u8 (ref_gray (rgb[0], rgb[1], rgb[2])), a);
      } else {
        px[0] = mixd (px[0], round_u8 (16 + ref_y (rgb[0], rgb[1], rgb[2])), a);
        if (x % 2 == 0 && y % 2 == 0) {
          uint8_t *u, *v;
          chroma_px (t, x / 2, y / 2, &u, &v);
          *u = mixd (*u, round_u8 (128 + ref_u (rgb[0], rgb[1], rgb[2])), a);
          *v = mixd (*v, round_u8 (128 + ref_v (rgb[0], rgb[1], rgb[2])), a);
        }
      }
    }
}

/* blends through the engine and the reference; returns bytes changed */
static size_t
check_mask_case (VimPixelFormat fmt, int W, int H, const TMask *m,
    const VimMaskGeometry *g, const VimBlendOptions *o, const char *what)
{
  TFrame got, want, orig;
  tframe_new (&got, fmt, W, H, 1 + rnd_int (7));
  tframe_copy (&want, &got);
  tframe_copy (&orig, &got);
  GError *err = NULL;
  gboolean ok = vim_blend_mask (&got.f, m->mask, m->stride, VIM_MEMORY_HOST, g, o,
      NULL, &err);
  g_assert_no_error (err);
  g_assert_true (ok);
  ref_blend_mask (&want, m, g, o);
  assert_same_bytes (&got, &want, what);
  size_t changed = count_changed (&got, &orig);
  tframe_free (&got);
  tframe_free (&want);
  tframe_free (&orig);
  return changed;
}

/* ---- mask blend tests --------------------------------------------------------------- */

static void
test_mask_hand_values (void)
{
  /* 2x1 RGB frame, mask 1x1 of class 1 over the left pixel only */
  uint8_t rgb[6] = { 100, 150, 200, 10, 20, 30 };
  VimFrame f = { VIM_PIXEL_RGB, 2, 1, { rgb }, { 6 }, VIM_MEMORY_HOST };
  uint8_t mask[1] = { 1 };
  VimMaskGeometry g = { 1, 1, 0.0, 0.0, 1.0, 1.0 };
  const uint8_t pal[6] = { 0, 0, 0, 200, 50, 0 };
  VimBlendOptions o = { 0.25f, pal, 2, NULL, 0, FALSE };
  GError *err = NULL;
  g_assert_true (vim_blend_mask (&f, mask, 1, VIM_MEMORY_HOST, &g, &o, NULL, &err));
  /* 100*.75 + 200*.25 = 125; 150*.75 + 50*.25 = 125; 200*.75 + 0 = 150 */
  g_assert_cmpint (rgb[0], ==, 125);
  g_assert_cmpint (rgb[1], ==, 125);
  g_assert_cmpint (rgb[2], ==, 150);
  g_assert_cmpint (rgb[3], ==, 10);   /* centre 1.5 is outside [0, 1) */
  g_assert_cmpint (rgb[4], ==, 20);
  g_assert_cmpint (rgb[5], ==, 30);
  /* half up: 1 * .5 + 2 * .5 = 1.5 -> 2 */
  uint8_t gray[1] = { 1 };
  VimFrame fg = { VIM_PIXEL_GRAY8, 1, 1, { gray }, { 1 }, VIM_MEMORY_HOST };
  const uint8_t pal2[3] = { 2, 2, 2 };
  VimBlendOptions o2 = { 0.5f, pal2, 1, NULL, 0, FALSE };
  g_assert_true (vim_blend_mask (&fg, mask, 1, VIM_MEMORY_HOST, &g, &o2, NULL, &err));
  g_assert_cmpint (gray[0], ==, 2);
  /* NV12 2x2, opaque white: Y 235, U = V = 128 */
  uint8_t y4[4] = { 50, 60, 70, 80 }, uv[2] = { 90, 100 };
  VimFrame fn = { VIM_PIXEL_NV12, 2, 2, { y4, uv }, { 2, 2 }, VIM_MEMORY_HOST };
  uint8_t mask4[4] = { 0, 0, 0, 0 };
  VimMaskGeometry g2 = { 2, 2, 0, 0, 2, 2 };
  const uint8_t white[3] = { 255, 255, 255 };
  VimBlendOptions o3 = { 1.0f, white, 1, NULL, 0, FALSE };
  g_assert_true (vim_blend_mask (&fn, mask4, 2, VIM_MEMORY_HOST, &g2, &o3, NULL, &err));
  for (int i = 0; i < 4; i++)
    g_assert_cmpint (y4[i], ==, 235);
  g_assert_cmpint (uv[0], ==, 128);
  g_assert_cmpint (uv[1], ==, 128);
  g_assert_no_error (err);
}

static void
test_mask_all_formats (void)
{
  const uint8_t *pal = vim_default_palette ();
  const uint8_t small_pal[9] = { 255, 0, 0, 0, 255, 0, 10, 20, 250 };
  uint8_t visible[6] = { 1, 0, 1, 1, 0, 1 };
  struct { int W, H, mw, mh; double x, y, w, h; } geo[] = {
    { 37, 23, 13, 7, 0, 0, 37, 23 },                /* whole frame, odd sizes */
    { 64, 48, 64, 48, 0, 0, 64, 48 },               /* one mask pixel per frame pixel */
    { 41, 29, 9, 5, 3.3, 2.7, 20.2, 11.9 },          /* a rectangle inside */
    { 30, 20, 16, 16, -5.5, -3.0, 50.0, 40.0 },     /* larger than the frame */
    { 33, 17, 40, 30, 7.0, 4.0, 10.0, 6.0 },        /* mask finer than the frame */
    { 1, 1, 3, 3, 0, 0, 1, 1 },
    { 5, 3, 1, 1, 1.0, 1.0, 3.0, 1.0 },
  };
  struct { float alpha; gboolean contours; gboolean small; gboolean filter; } opt[] = {
    { 0.5f, FALSE, FALSE, FALSE },
    { 0.3f, TRUE, FALSE, FALSE },
    { 1.0f, FALSE, TRUE, TRUE },
    { 0.7f, TRUE, TRUE, TRUE },
    { 0.0f, TRUE, FALSE, FALSE },                   /* contours only */
    { 0.0013f, FALSE, FALSE, FALSE },               /* below 2^-9 */
    { 0.9999f, FALSE, FALSE, TRUE },
  };
  for (guint fi = 0; fi < G_N_ELEMENTS (all_formats); fi++)
    for (guint gi = 0; gi < G_N_ELEMENTS (geo); gi++)
      for (guint oi = 0; oi < G_N_ELEMENTS (opt); oi++) {
        TMask m;
        tmask_new (&m, geo[gi].mw, geo[gi].mh, 8, gi % 3);
        VimMaskGeometry g = { geo[gi].mw, geo[gi].mh, geo[gi].x, geo[gi].y,
            geo[gi].w, geo[gi].h };
        VimBlendOptions o = { opt[oi].alpha, opt[oi].small ? small_pal : pal,
            opt[oi].small ? 3 : 256, opt[oi].filter ? visible : NULL,
            opt[oi].filter ? 6 : 0, opt[oi].contours };
        char *what = g_strdup_printf ("mask geometry %u options %u", gi, oi);
        size_t changed = check_mask_case (all_formats[fi], geo[gi].W, geo[gi].H,
            &m, &g, &o, what);
        /* the reference is not vacuous: big enough visible areas change */
        if (geo[gi].W * geo[gi].H > 100 && opt[oi].alpha > 0.2f)
          g_assert_cmpuint (changed, >, 0);
        g_free (what);
        g_free (m.mask);
      }
}

static void
test_mask_untouched (void)
{
  /* alpha 0 without contours, all classes hidden, a rectangle off the frame:
   * not a byte changes */
  TMask m;
  tmask_new (&m, 8, 8, 4, 0);
  uint8_t none[4] = { 0, 0, 0, 0 };
  VimMaskGeometry full = { 8, 8, 0, 0, 20, 20 }, off = { 8, 8, 25, 0, 10, 20 };
  VimBlendOptions zero = { 0.f, vim_default_palette (), 256, NULL, 0, FALSE };
  VimBlendOptions hidden = { 1.f, vim_default_palette (), 256, none, 4, TRUE };
  VimBlendOptions on = { 1.f, vim_default_palette (), 256, NULL, 0, TRUE };
  for (guint fi = 0; fi < G_N_ELEMENTS (all_formats); fi++) {
    g_assert_cmpuint (check_mask_case (all_formats[fi], 20, 20, &m, &full, &zero, "alpha 0"), ==, 0);
    g_assert_cmpuint (check_mask_case (all_formats[fi], 20, 20, &m, &full, &hidden, "hidden"), ==, 0);
    g_assert_cmpuint (check_mask_case (all_formats[fi], 20, 20, &m, &off, &on, "off frame"), ==, 0);
  }
  g_free (m.mask);
}

static void
test_mask_contours (void)
{
  /* 4x1 mask 0 0 1 1 over an 8x2 GRAY8 frame, alpha 0, contours: only the
   * pixel left of the class change (x = 3) is drawn, in both rows, with
   * class 0's colour; the bottom row has no bottom neighbour */
  uint8_t mask[4] = { 0, 0, 1, 1 };
  uint8_t px[16];
  memset (px, 7, sizeof px);
  VimFrame f = { VIM_PIXEL_GRAY8, 8, 2, { px }, { 8 }, VIM_MEMORY_HOST };
  VimMaskGeometry g = { 4, 1, 0, 0, 8, 2 };
  const uint8_t pal[6] = { 100, 100, 100, 200, 200, 200 };
  VimBlendOptions o = { 0.f, pal, 2, NULL, 0, TRUE };
  GError *err = NULL;
  g_assert_true (vim_blend_mask (&f, mask, 4, VIM_MEMORY_HOST, &g, &o, NULL, &err));
  for (int y = 0; y < 2; y++)
    for (int x = 0; x < 8; x++)
      g_assert_cmpint (px[y * 8 + x], ==, x == 3 ? 100 : 7);
}

static void
test_mask_bad_arguments (void)
{
  uint8_t px[12] = { 0 }, mask[4] = { 0 };
  VimFrame f = { VIM_PIXEL_RGB, 2, 2, { px }, { 6 }, VIM_MEMORY_HOST };
  VimMaskGeometry g = { 2, 2, 0, 0, 2, 2 };
  VimBlendOptions o = { 0.5f, vim_default_palette (), 256, NULL, 0, FALSE };
  struct { const char *what; int field; double value; } cases[] = {
    { "NULL frame", 0, 0 }, { "NULL mask", 1, 0 }, { "mask stride", 2, 1 },
    { "mask memory", 3, 7 }, { "CUDA mask on a host frame", 3, VIM_MEMORY_CUDA },
    { "NULL geometry", 4, 0 }, { "geometry width", 5, 0 }, { "geometry height", 6, -1 },
    { "rect w", 7, 0 }, { "rect h", 8, -2 }, { "rect x NaN", 9, NAN },
    { "rect y inf", 10, INFINITY }, { "NULL options", 11, 0 }, { "alpha > 1", 12, 1.5 },
    { "alpha < 0", 12, -0.1 }, { "alpha NaN", 12, NAN }, { "NULL palette", 13, 0 },
    { "n_palette 0", 14, 0 }, { "n_classes < 0", 15, -1 }, { "format", 16, 99 },
    { "frame stride", 17, 5 }, { "frame width", 18, 0 }, { "NULL plane", 19, 0 },
    { "frame memory", 20, 5 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    VimFrame ff = f;
    VimMaskGeometry gg = g;
    VimBlendOptions oo = o;
    const VimFrame *fp = &ff;
    const uint8_t *mp = mask;
    size_t ms = 2;
    VimMemory mm = VIM_MEMORY_HOST;
    const VimMaskGeometry *gp = &gg;
    const VimBlendOptions *op = &oo;
    double v = cases[i].value;
    switch (cases[i].field) {
      case 0: fp = NULL; break;
      case 1: mp = NULL; break;
      case 2: ms = (size_t) v; break;
      case 3: mm = (VimMemory) v; break;
      case 4: gp = NULL; break;
      case 5: gg.width = (int) v; break;
      case 6: gg.height = (int) v; break;
      case 7: gg.w = v; break;
      case 8: gg.h = v; break;
      case 9: gg.x = v; break;
      case 10: gg.y = v; break;
      case 11: op = NULL; break;
      case 12: oo.alpha = (float) v; break;
      case 13: oo.palette = NULL; break;
      case 14: oo.n_palette = (int) v; break;
      case 15: oo.n_classes = (int) v; break;
      case 16: ff.format = (VimPixelFormat) v; break;
      case 17: ff.strides[0] = (size_t) v; break;
      case 18: ff.width = (int) v; break;
      case 19: ff.planes[0] = NULL; break;
      case 20: ff.memory = (VimMemory) v; break;
    }
    GError *err = NULL;
    gboolean ok = vim_blend_mask (fp, mp, ms, mm, gp, op, NULL, &err);
    if (ok || !g_error_matches (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT))
      g_error ("%s: expected INVALID_ARGUMENT, got %s", cases[i].what,
          err ? err->message : "success");
    g_clear_error (&err);
    for (int k = 0; k < 12; k++)
      g_assert_cmpint (px[k], ==, 0);
  }
#if !VIM_HAVE_CUDA
  VimFrame fc = f;
  fc.memory = VIM_MEMORY_CUDA;
  GError *err = NULL;
  g_assert_false (vim_blend_mask (&fc, mask, 2, VIM_MEMORY_HOST, &g, &o, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  g_assert_false (vim_blend_argb (&fc, (const uint8_t *) mask, 1, 1, 4, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_UNSUPPORTED);
  g_clear_error (&err);
#endif
}

/* ---- ARGB composite ---------------------------------------------------------------- */

typedef struct {
  int w, h;
  size_t stride;
  uint8_t *data;
} TArgb;

static uint32_t
targb_at (const TArgb *a, int x, int y)
{
  uint32_t v;
  memcpy (&v, a->data + (size_t) y * a->stride + (size_t) x * 4, 4);
  return v;
}

/* premultiplied: each colour channel <= alpha; some clear, some opaque */
static void
targb_new (TArgb *a, int w, int h, size_t pad)
{
  a->w = w;
  a->h = h;
  a->stride = (size_t) w * 4 + pad;
  a->data = g_malloc (a->stride * (h - 1) + (size_t) w * 4);
  memset (a->data, 0xCD, a->stride * (h - 1) + (size_t) w * 4);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int kind = rnd_int (6);
      uint32_t A = kind == 0 ? 0 : kind == 1 ? 255 : rnd8 ();
      uint32_t R = A ? rnd8 () % (A + 1) : 0, G = A ? rnd8 () % (A + 1) : 0,
          B = A ? rnd8 () % (A + 1) : 0;
      uint32_t v = A << 24 | R << 16 | G << 8 | B;
      memcpy (a->data + (size_t) y * a->stride + (size_t) x * 4, &v, 4);
    }
}

static void
ref_blend_argb (TFrame *t, const TArgb *a, int ox, int oy)
{
  int W = t->f.width, H = t->f.height;
  VimPixelFormat f = t->f.format;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int ix = x - ox, iy = y - oy;
      if (ix < 0 || iy < 0 || ix >= a->w || iy >= a->h)
        continue;
      uint32_t p = targb_at (a, ix, iy);
      double A = (p >> 24) / 255.0, R = (p >> 16) & 255, G = (p >> 8) & 255, B = p & 255;
      uint8_t *px = luma_px (t, x, y);
      if (fmt_rgb (f)) {
        const double P[3] = { R, G, B };
        for (int k = 0; k < 3; k++)
          px[chan_off (f, k)] = round_u8 (px[chan_off (f, k)] * (1 - A) + P[k]);
      } else if (f == VIM_PIXEL_GRAY8) {
        px[0] = round_u8 (px[0] * (1 - A) + ref_gray (R, G, B));
      } else {
        px[0] = round_u8 (px[0] * (1 - A) + 16 * A + ref_y (R, G, B));
      }
    }
  if (!fmt_yuv (f))
    return;
  for (int by = 0; by < (H + 1) / 2; by++)
    for (int bx = 0; bx < (W + 1) / 2; bx++) {
      double n = 0, As = 0, Rs = 0, Gs = 0, Bs = 0;
      int covered = 0;
      for (int y = 2 * by; y < MIN (2 * by + 2, H); y++)
        for (int x = 2 * bx; x < MIN (2 * bx + 2, W); x++) {
          n++;
          int ix = x - ox, iy = y - oy;
          if (ix < 0 || iy < 0 || ix >= a->w || iy >= a->h)
            continue;
          covered = 1;
          uint32_t p = targb_at (a, ix, iy);
          As += (p >> 24) / 255.0;
          Rs += (p >> 16) & 255;
          Gs += (p >> 8) & 255;
          Bs += p & 255;
        }
      if (!covered)
        continue;
      double A = As / n, R = Rs / n, G = Gs / n, B = Bs / n;
      uint8_t *u, *v;
      chroma_px (t, bx, by, &u, &v);
      *u = round_u8 (*u * (1 - A) + 128 * A + ref_u (R, G, B));
      *v = round_u8 (*v * (1 - A) + 128 * A + ref_v (R, G, B));
    }
}

static void
test_argb_hand_values (void)
{
  uint8_t bgrx[8] = { 200, 150, 100, 77, 1, 2, 3, 4 };
  VimFrame f = { VIM_PIXEL_BGRX, 2, 1, { bgrx }, { 8 }, VIM_MEMORY_HOST };
  /* half-transparent red, premultiplied: A = 128, R = 128 */
  uint32_t img[1] = { 0x80800000u };
  GError *err = NULL;
  g_assert_true (vim_blend_argb (&f, (const uint8_t *) img, 1, 1, 4, 0, 0, NULL, &err));
  /* R: 100 * 127/255 + 128 = 177.8 -> 178; G: 150 * 127/255 = 74.7 -> 75;
   * B: 200 * 127/255 = 99.6 -> 100; X byte and the other pixel untouched */
  g_assert_cmpint (bgrx[2], ==, 178);
  g_assert_cmpint (bgrx[1], ==, 75);
  g_assert_cmpint (bgrx[0], ==, 100);
  g_assert_cmpint (bgrx[3], ==, 77);
  g_assert_cmpint (bgrx[4], ==, 1);
  /* clipped: the image's right pixel lands on frame x = 0 */
  uint32_t img2[2] = { 0xFF00FF00u, 0xFFFFFFFFu };
  g_assert_true (vim_blend_argb (&f, (const uint8_t *) img2, 2, 1, 8, -1, 0, NULL, &err));
  g_assert_cmpint (bgrx[0], ==, 255);
  g_assert_cmpint (bgrx[1], ==, 255);
  g_assert_cmpint (bgrx[2], ==, 255);
  g_assert_cmpint (bgrx[4], ==, 1);
  g_assert_no_error (err);
}

static void
test_argb_all_formats (void)
{
  struct { int W, H, iw, ih, x, y; } cases[] = {
    { 37, 23, 10, 7, 5, 4 },          /* inside, even corner */
    { 37, 23, 9, 6, 6, 3 },           /* odd corner: chroma blocks half covered */
    { 36, 24, 20, 15, -7, -5 },       /* off the top-left */
    { 35, 21, 20, 15, 25, 14 },       /* off the bottom-right, odd frame */
    { 16, 12, 40, 30, -11, -9 },      /* larger than the frame */
    { 16, 12, 5, 5, 16, 0 },          /* just off the right: nothing */
    { 16, 12, 5, 5, 0, -5 },          /* just off the top: nothing */
    { 1, 1, 1, 1, 0, 0 },
    { 7, 5, 1, 1, 6, 4 },             /* the last pixel of an odd frame */
  };
  for (guint fi = 0; fi < G_N_ELEMENTS (all_formats); fi++)
    for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
      TArgb a;
      targb_new (&a, cases[ci].iw, cases[ci].ih, ci % 2 ? 12 : 0);
      TFrame got, want, orig;
      tframe_new (&got, all_formats[fi], cases[ci].W, cases[ci].H, 1 + ci);
      tframe_copy (&want, &got);
      tframe_copy (&orig, &got);
      GError *err = NULL;
      gboolean ok = vim_blend_argb (&got.f, a.data, a.w, a.h, a.stride,
          cases[ci].x, cases[ci].y, NULL, &err);
      g_assert_no_error (err);
      g_assert_true (ok);
      ref_blend_argb (&want, &a, cases[ci].x, cases[ci].y);
      char *what = g_strdup_printf ("argb case %u", ci);
      assert_same_bytes (&got, &want, what);
      if (ci == 5 || ci == 6)
        g_assert_cmpuint (count_changed (&got, &orig), ==, 0);
      else if (ci < 5)
        g_assert_cmpuint (count_changed (&got, &orig), >, 0);
      g_free (what);
      tframe_free (&got);
      tframe_free (&want);
      tframe_free (&orig);
      g_free (a.data);
    }
}

static void
test_argb_bad_arguments (void)
{
  uint8_t px[12] = { 0 };
  uint32_t img[4] = { 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu };
  VimFrame f = { VIM_PIXEL_RGB, 2, 2, { px }, { 6 }, VIM_MEMORY_HOST };
  GError *err = NULL;
  const uint8_t *ip = (const uint8_t *) img;
  g_assert_false (vim_blend_argb (NULL, ip, 2, 2, 8, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_blend_argb (&f, NULL, 2, 2, 8, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_blend_argb (&f, ip, 0, 2, 8, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_blend_argb (&f, ip, 2, -1, 8, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (vim_blend_argb (&f, ip, 2, 2, 7, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  VimFrame bad = f;
  bad.strides[0] = 5;
  g_assert_false (vim_blend_argb (&bad, ip, 2, 2, 8, 0, 0, NULL, &err));
  g_assert_error (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  for (int k = 0; k < 12; k++)
    g_assert_cmpint (px[k], ==, 0);
  /* extreme positions clip without overflow */
  g_assert_true (vim_blend_argb (&f, ip, 2, 2, 8, G_MAXINT, G_MAXINT, NULL, &err));
  g_assert_true (vim_blend_argb (&f, ip, 2, 2, 8, G_MININT, G_MININT, NULL, &err));
  g_assert_no_error (err);
  for (int k = 0; k < 12; k++)
    g_assert_cmpint (px[k], ==, 0);
}

/* ---- palette ------------------------------------------------------------------------ */

static void
test_palette (void)
{
  static const uint8_t camvid[11][3] = {
    { 128, 128, 128 }, { 128, 0, 0 }, { 192, 192, 128 }, { 128, 64, 128 },
    { 60, 40, 222 }, { 128, 128, 0 }, { 192, 128, 128 }, { 64, 64, 128 },
    { 64, 0, 128 }, { 64, 64, 0 }, { 0, 128, 192 },
  };
  const uint8_t *p = vim_default_palette ();
  g_assert_nonnull (p);
  g_assert_true (p == vim_default_palette ());
  g_assert_cmpmem (p, 33, camvid, 33);
  for (int i = 0; i < 256; i++)
    for (int j = i + 1; j < 256; j++)
      if (memcmp (p + 3 * i, p + 3 * j, 3) == 0)
        g_error ("palette entries %d and %d are both %d,%d,%d", i, j,
            p[3 * i], p[3 * i + 1], p[3 * i + 2]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/blend/palette", test_palette);
  g_test_add_func ("/blend/mask/hand-values", test_mask_hand_values);
  g_test_add_func ("/blend/mask/all-formats", test_mask_all_formats);
  g_test_add_func ("/blend/mask/untouched", test_mask_untouched);
  g_test_add_func ("/blend/mask/contours", test_mask_contours);
  g_test_add_func ("/blend/mask/bad-arguments", test_mask_bad_arguments);
  g_test_add_func ("/blend/argb/hand-values", test_argb_hand_values);
  g_test_add_func ("/blend/argb/all-formats", test_argb_all_formats);
  g_test_add_func ("/blend/argb/bad-arguments", test_argb_bad_arguments);
  return g_test_run ();
}
