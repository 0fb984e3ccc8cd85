/* CPU preprocessing checked against an independent double-precision
 * implementation of docs/preprocessing.md: geometry of each resize policy,
 * bilinear sampling, colour conversion (RGB family, GRAY8, NV12/I420 as
 * BT.601 limited range), normalization; strides, odd sizes, letterbox
 * borders, centre crops; invalid frames refused without a crash.
 *
 * Frames are allocated to the byte (the last row without padding) and row
 * padding is poisoned, so an out-of-bounds or padding read shows up under
 * ASan / valgrind or as a wrong value. */
#include "vim-private.h"
#include "../loader/model_builder.h"
#include "../common/splitmix.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>

#define POISON 0xA5

/* ---- test frames ----------------------------------------------------------- */

typedef struct {
  VimFrame f;
  guint8 *buf[3];
} TFrame;

static void
tframe_clear (TFrame *t)
{
  for (int i = 0; i < 3; i++)
    g_free (t->buf[i]);
  memset (t, 0, sizeof *t);
}

/* A plane of `rows` rows of `row_bytes`, each row followed by `pad` poisoned
 * bytes except the last (so the buffer ends exactly with the content). */
static guint8 *
alloc_plane (int rows, size_t row_bytes, size_t pad, size_t *stride)
{
  *stride = row_bytes + pad;
  size_t size = (size_t) (rows - 1) * *stride + row_bytes;
  guint8 *p = g_malloc (size);
  memset (p, POISON, size);
  return p;
}

static const int rgb_bpp[] = {
  [VIM_PIXEL_RGB] = 3, [VIM_PIXEL_RGBA] = 4, [VIM_PIXEL_RGBX] = 4,
  [VIM_PIXEL_BGR] = 3, [VIM_PIXEL_BGRA] = 4, [VIM_PIXEL_BGRX] = 4,
};

/* rgb: w*h*3 bytes, R G B per pixel. Alpha / x bytes get junk. */
static void
make_rgb_frame (TFrame *t, VimPixelFormat fmt, int w, int h, const guint8 *rgb,
    size_t pad)
{
  memset (t, 0, sizeof *t);
  int bpp = rgb_bpp[fmt];
  gboolean bgr = fmt == VIM_PIXEL_BGR || fmt == VIM_PIXEL_BGRA || fmt == VIM_PIXEL_BGRX;
  t->buf[0] = alloc_plane (h, (size_t) w * bpp, pad, &t->f.strides[0]);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      guint8 *d = t->buf[0] + y * t->f.strides[0] + (size_t) x * bpp;
      const guint8 *s = rgb + ((size_t) y * w + x) * 3;
      d[0] = bgr ? s[2] : s[0];
      d[1] = s[1];
      d[2] = bgr ? s[0] : s[2];
      if (bpp == 4)
        d[3] = (guint8) (x * 31 + y * 17 + 5);   /* alpha is ignored */
    }
  t->f.format = fmt;
  t->f.width = w;
  t->f.height = h;
  t->f.planes[0] = t->buf[0];
  t->f.memory = VIM_MEMORY_HOST;
}

static void
make_gray_frame (TFrame *t, int w, int h, const guint8 *y8, size_t pad)
{
  memset (t, 0, sizeof *t);
  t->buf[0] = alloc_plane (h, w, pad, &t->f.strides[0]);
  for (int y = 0; y < h; y++)
    memcpy (t->buf[0] + y * t->f.strides[0], y8 + (size_t) y * w, w);
  t->f.format = VIM_PIXEL_GRAY8;
  t->f.width = w;
  t->f.height = h;
  t->f.planes[0] = t->buf[0];
}

/* Y: w*h; U, V: cw*ch with cw = (w+1)/2, ch = (h+1)/2. */
static void
make_yuv_frame (TFrame *t, VimPixelFormat fmt, int w, int h, const guint8 *Y,
    const guint8 *U, const guint8 *V, size_t pad)
{
  memset (t, 0, sizeof *t);
  int cw = (w + 1) / 2, ch = (h + 1) / 2;
  t->buf[0] = alloc_plane (h, w, pad, &t->f.strides[0]);
  for (int y = 0; y < h; y++)
    memcpy (t->buf[0] + y * t->f.strides[0], Y + (size_t) y * w, w);
  if (fmt == VIM_PIXEL_NV12) {
    t->buf[1] = alloc_plane (ch, (size_t) cw * 2, pad, &t->f.strides[1]);
    for (int y = 0; y < ch; y++)
      for (int x = 0; x < cw; x++) {
        t->buf[1][y * t->f.strides[1] + 2 * x] = U[y * cw + x];
        t->buf[1][y * t->f.strides[1] + 2 * x + 1] = V[y * cw + x];
      }
  } else {
    t->buf[1] = alloc_plane (ch, cw, pad, &t->f.strides[1]);
    t->buf[2] = alloc_plane (ch, cw, pad + 3, &t->f.strides[2]);  /* strides may differ */
    for (int y = 0; y < ch; y++) {
      memcpy (t->buf[1] + y * t->f.strides[1], U + y * cw, cw);
      memcpy (t->buf[2] + y * t->f.strides[2], V + y * cw, cw);
    }
  }
  t->f.format = fmt;
  t->f.width = w;
  t->f.height = h;
  for (int i = 0; i < 3; i++)
    t->f.planes[i] = t->buf[i];
}

static guint8 *
random_bytes (guint64 seed, size_t n)
{
  guint8 *b = g_malloc (n);
  for (size_t i = 0; i < n; i++)
    b[i] = (guint8) (vim_test_splitmix64 ((seed << 32) + i) >> 56);
  return b;
}

/* ---- the independent reference (double) -------------------------------------- */

typedef struct {
  double scale_x, scale_y, off_x, off_y;
  int x0, x1, y0, y1;            /* output columns/rows with content */
} RefMap;

static void
ref_map (VimResizePolicy p, int W, int H, int sw, int sh, double crop_ratio, RefMap *m)
{
  m->off_x = m->off_y = 0;
  m->x0 = m->y0 = 0;
  m->x1 = W;
  m->y1 = H;
  if (p == VIM_RESIZE_STRETCH) {
    m->scale_x = (double) sw / W;
    m->scale_y = (double) sh / H;
  } else if (p == VIM_RESIZE_SHORT_SIDE_CROP) {
    double T = floor (MIN (W, H) / crop_ratio);
    double s = MIN (sw, sh) / T;
    m->scale_x = m->scale_y = s;
    m->off_x = ((sw / s - W) / 2) * s;
    m->off_y = ((sh / s - H) / 2) * s;
  } else {
    double s = MAX ((double) sw / W, (double) sh / H);
    double cw = sw / s, ch = sh / s;
    double x0 = (W - cw) / 2, y0 = (H - ch) / 2;
    m->scale_x = m->scale_y = s;
    m->off_x = -x0 * s;
    m->off_y = -y0 * s;
    m->x0 = (int) floor (x0 + 0.5);
    m->x1 = (int) floor (x0 + cw + 0.5);
    m->y0 = (int) floor (y0 + 0.5);
    m->y1 = (int) floor (y0 + ch + 0.5);
  }
}

static double
clampd (double v)
{
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* RGB in [0, 255] of source pixel (x, y), from the frame's bytes. */
static void
ref_rgb (const VimFrame *f, int x, int y, double rgb[3])
{
  const guint8 *p0 = (const guint8 *) f->planes[0] + (size_t) y * f->strides[0];
  switch (f->format) {
    case VIM_PIXEL_RGB: case VIM_PIXEL_RGBA: case VIM_PIXEL_RGBX:
    case VIM_PIXEL_BGR: case VIM_PIXEL_BGRA: case VIM_PIXEL_BGRX: {
      int bpp = rgb_bpp[f->format];
      gboolean bgr = f->format == VIM_PIXEL_BGR || f->format == VIM_PIXEL_BGRA
          || f->format == VIM_PIXEL_BGRX;
      const guint8 *q = p0 + (size_t) x * bpp;
      rgb[0] = bgr ? q[2] : q[0];
      rgb[1] = q[1];
      rgb[2] = bgr ? q[0] : q[2];
      return;
    }
    case VIM_PIXEL_GRAY8:
      rgb[0] = rgb[1] = rgb[2] = p0[x];
      return;
    case VIM_PIXEL_NV12: case VIM_PIXEL_I420: {
      int cx = x / 2, cy = y / 2;
      double U, V;
      if (f->format == VIM_PIXEL_NV12) {
        const guint8 *uv = (const guint8 *) f->planes[1] + (size_t) cy * f->strides[1];
        U = uv[2 * cx];
        V = uv[2 * cx + 1];
      } else {
        U = ((const guint8 *) f->planes[1])[(size_t) cy * f->strides[1] + cx];
        V = ((const guint8 *) f->planes[2])[(size_t) cy * f->strides[2] + cx];
      }
      double c = p0[x] - 16.0, d = U - 128.0, e = V - 128.0;
      rgb[0] = clampd (1.164383 * c + 1.596027 * e);
      rgb[1] = clampd (1.164383 * c - 0.391762 * d - 0.812968 * e);
      rgb[2] = clampd (1.164383 * c + 2.017232 * d);
      return;
    }
  }
  g_assert_not_reached ();
}

/* (3, H, W) in double, per docs/preprocessing.md. */
static double *
ref_preprocess (const VimModelConfig *cfg, const VimFrame *f, RefMap *map_out)
{
  const int W = cfg->image_width, H = cfg->image_height;
  RefMap m;
  ref_map (cfg->resize, W, H, f->width, f->height, cfg->crop_ratio, &m);
  if (map_out)
    *map_out = m;
  double *out = g_new (double, 3 * (size_t) W * H);
  for (int oy = 0; oy < H; oy++)
    for (int ox = 0; ox < W; ox++) {
      size_t o = (size_t) oy * W + ox;
      if (ox < m.x0 || ox >= m.x1 || oy < m.y0 || oy >= m.y1) {
        for (int c = 0; c < 3; c++)
          out[c * W * H + o] = 0;
        continue;
      }
      double sx = (ox + 0.5) * m.scale_x + m.off_x - 0.5;
      double sy = (oy + 0.5) * m.scale_y + m.off_y - 0.5;
      int x0 = (int) floor (sx), y0 = (int) floor (sy);
      double fx = sx - x0, fy = sy - y0;
      int xa = CLAMP (x0, 0, f->width - 1), xb = CLAMP (x0 + 1, 0, f->width - 1);
      int ya = CLAMP (y0, 0, f->height - 1), yb = CLAMP (y0 + 1, 0, f->height - 1);
      double p00[3], p01[3], p10[3], p11[3];
      ref_rgb (f, xa, ya, p00);
      ref_rgb (f, xb, ya, p01);
      ref_rgb (f, xa, yb, p10);
      ref_rgb (f, xb, yb, p11);
      for (int c = 0; c < 3; c++) {
        double v = (1 - fy) * ((1 - fx) * p00[c] + fx * p01[c])
            + fy * ((1 - fx) * p10[c] + fx * p11[c]);
        out[c * W * H + o] = (v / 255.0 - cfg->mean[c]) / cfg->std[c];
      }
    }
  return out;
}

/* ---- helpers ------------------------------------------------------------------ */

static VimModelConfig
make_cfg (int H, int W, VimResizePolicy p, double crop_ratio)
{
  VimModelConfig c;
  memset (&c, 0, sizeof c);
  c.image_height = H;
  c.image_width = W;
  c.in_chans = 3;
  c.resize = p;
  c.crop_ratio = (float) crop_ratio;
  const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
  memcpy (c.mean, mean, sizeof mean);
  memcpy (c.std, std, sizeof std);
  return c;
}

static float *
run_cpu (const VimModelConfig *c, const VimFrame *f)
{
  GError *err = NULL;
  g_assert_true (vim_frame_validate (f, &err));
  g_assert_no_error (err);
  size_t n = 3 * (size_t) c->image_width * c->image_height;
  float *out = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    out[i] = NAN;   /* every element must be written */
  vim_preprocess_frame_cpu (c, f, out);
  return out;
}

static void
compare_ref (const VimModelConfig *c, const float *out, const double *ref,
    double tol, const char *what)
{
  size_t n = 3 * (size_t) c->image_width * c->image_height;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    g_assert_true (isfinite (out[i]));
    double d = fabs (out[i] - ref[i]);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  if (worst > tol)
    g_error ("%s: element %zu (c %zu, y %zu, x %zu) = %.7g, reference %.7g (|diff| %.3g > %.3g)",
        what, at, at / ((size_t) c->image_width * c->image_height),
        at / c->image_width % c->image_height, at % c->image_width,
        out[at], ref[at], worst, tol);
}

/* ---- tests --------------------------------------------------------------------- */

/* A frame of exactly the model size, stretched: each output is its pixel. */
static void
test_identity_stretch (void)
{
  const int H = 6, W = 10;
  VimModelConfig c = make_cfg (H, W, VIM_RESIZE_STRETCH, 0.875);
  guint8 *rgb = random_bytes (1, (size_t) W * H * 3);
  TFrame t;
  make_rgb_frame (&t, VIM_PIXEL_RGB, W, H, rgb, 0);
  float *out = run_cpu (&c, &t.f);
  for (int ch = 0; ch < 3; ch++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        double want = (rgb[((size_t) y * W + x) * 3 + ch] / 255.0 - c.mean[ch]) / c.std[ch];
        float got = out[(ch * H + y) * W + x];
        if (fabs (got - want) > 2e-6)
          g_error ("c %d y %d x %d: %.8g, want %.8g", ch, y, x, got, want);
      }
  /* the extremes: 0 and 255 */
  guint8 flat[2 * 2 * 3] = { 0, 0, 0, 255, 255, 255, 0, 255, 0, 255, 0, 255 };
  VimModelConfig c2 = make_cfg (2, 2, VIM_RESIZE_STRETCH, 0.875);
  TFrame t2;
  make_rgb_frame (&t2, VIM_PIXEL_RGB, 2, 2, flat, 0);
  float *o2 = run_cpu (&c2, &t2.f);
  for (int ch = 0; ch < 3; ch++)
    for (int i = 0; i < 4; i++) {
      double want = (flat[i * 3 + ch] / 255.0 - c2.mean[ch]) / c2.std[ch];
      g_assert_cmpfloat_with_epsilon (o2[ch * 4 + i], want, 2e-6);
    }
  g_free (o2);
  tframe_clear (&t2);
  g_free (out);
  tframe_clear (&t);
  g_free (rgb);
}

/* RGB, BGR, RGBA, RGBx, BGRA, BGRx of one picture give the same bytes out,
 * for every resize policy, and match the reference. */
static void
test_rgb_family_identical (void)
{
  static const VimPixelFormat fmts[] = { VIM_PIXEL_RGB, VIM_PIXEL_BGR, VIM_PIXEL_RGBA,
    VIM_PIXEL_RGBX, VIM_PIXEL_BGRA, VIM_PIXEL_BGRX };
  const int sw = 13, sh = 9;
  guint8 *rgb = random_bytes (2, (size_t) sw * sh * 3);
  for (int p = 0; p < 3; p++) {
    VimModelConfig c = make_cfg (8, 12, (VimResizePolicy) p, 0.875);
    float *first = NULL;
    for (guint i = 0; i < G_N_ELEMENTS (fmts); i++) {
      TFrame t;
      make_rgb_frame (&t, fmts[i], sw, sh, rgb, 0);
      float *out = run_cpu (&c, &t.f);
      if (first == NULL) {
        first = out;
        double *ref = ref_preprocess (&c, &t.f, NULL);
        compare_ref (&c, out, ref, 1e-4, "RGB vs reference");
        g_free (ref);
      } else {
        if (memcmp (first, out, sizeof (float) * 3 * 8 * 12) != 0)
          g_error ("policy %d: %s differs from RGB", p, vim_pixel_format_name (fmts[i]));
        g_free (out);
      }
      tframe_clear (&t);
    }
    g_free (first);
  }
  g_free (rgb);
}

/* NV12 and I420 of a known YUV picture give the BT.601 limited-range values. */
static void
check_yuv (int w, int h, size_t pad, VimResizePolicy p, int H, int W)
{
  int cw = (w + 1) / 2, ch = (h + 1) / 2;
  guint8 *Y = random_bytes (3, (size_t) w * h), *U = random_bytes (4, (size_t) cw * ch),
      *V = random_bytes (5, (size_t) cw * ch);
  /* include the limits of the range and values that clamp */
  Y[0] = 0; U[0] = 0; V[0] = 255;
  Y[w * h - 1] = 255; U[cw * ch - 1] = 255; V[cw * ch - 1] = 0;
  Y[1 % (w * h)] = 16;
  Y[2 % (w * h)] = 235;
  VimModelConfig c = make_cfg (H, W, p, 0.875);
  TFrame nv, i4;
  make_yuv_frame (&nv, VIM_PIXEL_NV12, w, h, Y, U, V, pad);
  make_yuv_frame (&i4, VIM_PIXEL_I420, w, h, Y, U, V, pad);
  float *o_nv = run_cpu (&c, &nv.f), *o_i4 = run_cpu (&c, &i4.f);
  double *ref = ref_preprocess (&c, &nv.f, NULL);
  char *what = g_strdup_printf ("NV12 %dx%d pad %zu policy %d -> %dx%d", w, h, pad, p, W, H);
  compare_ref (&c, o_nv, ref, 1e-4, what);
  g_free (what);
  g_assert_true (memcmp (o_nv, o_i4, sizeof (float) * 3 * W * H) == 0);

  /* when the frame is the model size, check by hand too: pixel (x, y) takes
   * chroma (x/2, y/2), BT.601 limited range, clamped */
  if (w == W && h == H && p == VIM_RESIZE_STRETCH) {
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        double yy = Y[y * w + x] - 16.0, u = U[(y / 2) * cw + x / 2] - 128.0,
            v = V[(y / 2) * cw + x / 2] - 128.0;
        double rgb[3] = { yy * 1.164383 + v * 1.596027,
          yy * 1.164383 - u * 0.391762 - v * 0.812968, yy * 1.164383 + u * 2.017232 };
        for (int k = 0; k < 3; k++) {
          double want = (clampd (rgb[k]) / 255.0 - c.mean[k]) / c.std[k];
          g_assert_cmpfloat_with_epsilon (o_nv[(k * h + y) * w + x], want, 1e-4);
        }
      }
    /* Y=16 U=V=128 is black, Y=235 U=V=128 is white */
    guint8 y2[4] = { 16, 235, 16, 235 }, u1 = 128, v1 = 128;
    VimModelConfig c2 = make_cfg (2, 2, VIM_RESIZE_STRETCH, 0.875);
    TFrame bw;
    make_yuv_frame (&bw, VIM_PIXEL_I420, 2, 2, y2, &u1, &v1, 0);
    float *o = run_cpu (&c2, &bw.f);
    for (int k = 0; k < 3; k++) {
      g_assert_cmpfloat_with_epsilon (o[k * 4 + 0], (0.0 - c2.mean[k]) / c2.std[k], 1e-5);
      g_assert_cmpfloat_with_epsilon (o[k * 4 + 1], (1.0 - c2.mean[k]) / c2.std[k], 1e-5);
    }
    g_free (o);
    tframe_clear (&bw);
  }
  g_free (ref);
  g_free (o_nv);
  g_free (o_i4);
  tframe_clear (&nv);
  tframe_clear (&i4);
  g_free (Y);
  g_free (U);
  g_free (V);
}

static void
test_yuv_bt601 (void)
{
  check_yuv (8, 6, 0, VIM_RESIZE_STRETCH, 6, 8);
  check_yuv (16, 10, 0, VIM_RESIZE_SHORT_SIDE_CROP, 8, 8);
}

static void
test_yuv_odd_sizes (void)
{
  /* odd widths and heights: the last chroma column/row covers one pixel */
  check_yuv (7, 5, 0, VIM_RESIZE_STRETCH, 5, 7);
  check_yuv (7, 5, 3, VIM_RESIZE_STRETCH, 5, 7);
  check_yuv (1, 1, 0, VIM_RESIZE_STRETCH, 1, 1);
  check_yuv (9, 3, 1, VIM_RESIZE_STRETCH, 6, 12);
  check_yuv (11, 7, 5, VIM_RESIZE_LETTERBOX, 8, 8);
  check_yuv (13, 9, 2, VIM_RESIZE_SHORT_SIDE_CROP, 8, 8);
}

static void
test_gray8 (void)
{
  const int w = 9, h = 7;
  guint8 *y8 = random_bytes (6, (size_t) w * h);
  guint8 *rgb = g_malloc ((size_t) w * h * 3);
  for (int i = 0; i < w * h; i++)
    rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = y8[i];
  for (int p = 0; p < 3; p++) {
    VimModelConfig c = make_cfg (8, 8, (VimResizePolicy) p, 0.875);
    TFrame g, r;
    make_gray_frame (&g, w, h, y8, 3);
    make_rgb_frame (&r, VIM_PIXEL_RGB, w, h, rgb, 0);
    float *og = run_cpu (&c, &g.f), *orgb = run_cpu (&c, &r.f);
    /* R = G = B = Y: exactly the RGB picture with equal channels */
    g_assert_true (memcmp (og, orgb, sizeof (float) * 3 * 64) == 0);
    double *ref = ref_preprocess (&c, &g.f, NULL);
    compare_ref (&c, og, ref, 1e-4, "GRAY8");
    g_free (ref);
    g_free (og);
    g_free (orgb);
    tframe_clear (&g);
    tframe_clear (&r);
  }
  g_free (rgb);
  g_free (y8);
}

/* Row padding (poisoned) never changes a result. */
static void
test_strides (void)
{
  const int w = 11, h = 7, cw = 6, ch = 4;
  guint8 *rgb = random_bytes (7, (size_t) w * h * 3);
  guint8 *Y = random_bytes (8, w * h), *U = random_bytes (9, cw * ch), *V = random_bytes (10, cw * ch);
  static const VimPixelFormat fmts[] = { VIM_PIXEL_RGB, VIM_PIXEL_RGBA, VIM_PIXEL_RGBX,
    VIM_PIXEL_BGR, VIM_PIXEL_BGRA, VIM_PIXEL_BGRX, VIM_PIXEL_NV12, VIM_PIXEL_I420,
    VIM_PIXEL_GRAY8 };
  for (int p = 0; p < 3; p++) {
    VimModelConfig c = make_cfg (8, 10, (VimResizePolicy) p, 0.875);
    for (guint i = 0; i < G_N_ELEMENTS (fmts); i++) {
      float *o[2];
      for (int k = 0; k < 2; k++) {
        size_t pad = k ? 37 : 0;
        TFrame t;
        if (fmts[i] == VIM_PIXEL_NV12 || fmts[i] == VIM_PIXEL_I420)
          make_yuv_frame (&t, fmts[i], w, h, Y, U, V, pad);
        else if (fmts[i] == VIM_PIXEL_GRAY8)
          make_gray_frame (&t, w, h, Y, pad);
        else
          make_rgb_frame (&t, fmts[i], w, h, rgb, pad);
        o[k] = run_cpu (&c, &t.f);
        tframe_clear (&t);
      }
      if (memcmp (o[0], o[1], sizeof (float) * 3 * 80) != 0)
        g_error ("%s policy %d: padded strides change the output",
            vim_pixel_format_name (fmts[i]), p);
      g_free (o[0]);
      g_free (o[1]);
    }
  }
  g_free (rgb);
  g_free (Y);
  g_free (U);
  g_free (V);
}

/* Letterbox: borders exactly 0, content where the doc puts it. */
static void
check_letterbox (int sw, int sh, int W, int H, int want_x0, int want_x1,
    int want_y0, int want_y1)
{
  VimModelConfig c = make_cfg (H, W, VIM_RESIZE_LETTERBOX, 0.875);
  guint8 *rgb = random_bytes ((guint64) sw * 1000 + sh, (size_t) sw * sh * 3);
  /* no black pixels, so content never normalizes to the border value */
  for (int i = 0; i < sw * sh * 3; i++)
    rgb[i] = rgb[i] | 0x10;
  TFrame t;
  make_rgb_frame (&t, VIM_PIXEL_RGB, sw, sh, rgb, 0);
  RefMap m;
  double *ref = ref_preprocess (&c, &t.f, &m);
  g_assert_cmpint (m.x0, ==, want_x0);
  g_assert_cmpint (m.x1, ==, want_x1);
  g_assert_cmpint (m.y0, ==, want_y0);
  g_assert_cmpint (m.y1, ==, want_y1);
  VimResizeMap vm;
  vim_resize_map_compute (&c, sw, sh, &vm);
  g_assert_cmpint (vm.pad_x0, ==, want_x0);
  g_assert_cmpint (vm.pad_x1, ==, want_x1);
  g_assert_cmpint (vm.pad_y0, ==, want_y0);
  g_assert_cmpint (vm.pad_y1, ==, want_y1);
  float *out = run_cpu (&c, &t.f);
  for (int k = 0; k < 3; k++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        float v = out[(k * H + y) * W + x];
        gboolean content = x >= want_x0 && x < want_x1 && y >= want_y0 && y < want_y1;
        if (!content && v != 0.0f)
          g_error ("letterbox %dx%d -> %dx%d: border (%d, %d) c %d = %g, not 0", sw, sh,
              W, H, x, y, k, v);
        if (content) {
          /* content is never the mean colour here (every byte >= 16) ... */
          double raw = v * c.std[k] + c.mean[k];
          g_assert_cmpfloat (raw, >=, 16 / 255.0 - 1e-4);
        }
      }
  compare_ref (&c, out, ref, 1e-4, "letterbox");
  g_free (out);
  g_free (ref);
  tframe_clear (&t);
  g_free (rgb);
}

static void
test_letterbox (void)
{
  /* wide 2:1 into a square: s = 2, content 16x8 at rows [4, 12) */
  check_letterbox (32, 16, 16, 16, 0, 16, 4, 12);
  /* tall: s = 2, content 4x16 at columns [6, 10) */
  check_letterbox (8, 32, 16, 16, 6, 10, 0, 16);
  /* no scaling: 16x10 in 16x16, s = 1, rows [3, 13) */
  check_letterbox (16, 10, 16, 16, 0, 16, 3, 13);
  /* fractional: 20x7 in 16x16, s = 1.25, content 16 x 5.6 from y 5.2: rows [5, 11) */
  check_letterbox (20, 7, 16, 16, 0, 16, 5, 11);
  /* same aspect: no border at all */
  check_letterbox (24, 12, 16, 8, 0, 16, 0, 8);
  /* upscaling a small frame: 3x2 into 12x12, s = 0.25, content 12x8 rows [2, 10) */
  check_letterbox (3, 2, 12, 12, 0, 12, 2, 10);
}

/* Short-side crop of a 2x image whose 2x2 blocks are flat picks the centre. */
static void
test_short_side_crop (void)
{
  /* crop_ratio 1: T = 16; source 32x48 -> s = 2, resized 16x24, centre 16x16
   * starts at resized x 4 = source x 8. Each output pixel samples the
   * middle of a flat 2x2 block. */
  {
    const int sw = 48, sh = 32, W = 16, H = 16;
    VimModelConfig c = make_cfg (H, W, VIM_RESIZE_SHORT_SIDE_CROP, 1.0);
    guint8 *blocks = random_bytes (11, (size_t) (sw / 2) * (sh / 2) * 3);
    guint8 *rgb = g_malloc ((size_t) sw * sh * 3);
    for (int y = 0; y < sh; y++)
      for (int x = 0; x < sw; x++)
        memcpy (rgb + ((size_t) y * sw + x) * 3, blocks + ((size_t) (y / 2) * (sw / 2) + x / 2) * 3, 3);
    TFrame t;
    make_rgb_frame (&t, VIM_PIXEL_RGB, sw, sh, rgb, 0);
    float *out = run_cpu (&c, &t.f);
    for (int k = 0; k < 3; k++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
          int bx = x + 4, by = y;   /* 4 blocks (8 source pixels) cut on the left */
          double want = (blocks[((size_t) by * (sw / 2) + bx) * 3 + k] / 255.0 - c.mean[k]) / c.std[k];
          g_assert_cmpfloat_with_epsilon (out[(k * H + y) * W + x], want, 1e-5);
        }
    g_free (out);
    tframe_clear (&t);
    g_free (rgb);
    g_free (blocks);
  }
  /* crop_ratio 0.5: T = 32 = the source's short side (64x64 source, s = 2):
   * the 32x32 resized image is cropped to its centre 16x16, source [16, 48). */
  {
    const int S = 64, W = 16;
    VimModelConfig c = make_cfg (W, W, VIM_RESIZE_SHORT_SIDE_CROP, 0.5);
    guint8 *blocks = random_bytes (12, (size_t) (S / 2) * (S / 2) * 3);
    guint8 *rgb = g_malloc ((size_t) S * S * 3);
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        memcpy (rgb + ((size_t) y * S + x) * 3, blocks + ((size_t) (y / 2) * (S / 2) + x / 2) * 3, 3);
    TFrame t;
    make_rgb_frame (&t, VIM_PIXEL_RGB, S, S, rgb, 0);
    float *out = run_cpu (&c, &t.f);
    for (int k = 0; k < 3; k++)
      for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
          double want = (blocks[((size_t) (y + 8) * (S / 2) + x + 8) * 3 + k] / 255.0 - c.mean[k]) / c.std[k];
          g_assert_cmpfloat_with_epsilon (out[(k * W + y) * W + x], want, 1e-5);
        }
    g_free (out);
    tframe_clear (&t);
    g_free (rgb);
    g_free (blocks);
  }
  /* the official 0.875 against the reference, a 2x image (T = 18) */
  {
    VimModelConfig c = make_cfg (16, 16, VIM_RESIZE_SHORT_SIDE_CROP, 0.875);
    guint8 *rgb = random_bytes (13, 32 * 40 * 3);
    TFrame t;
    make_rgb_frame (&t, VIM_PIXEL_RGB, 40, 32, rgb, 0);
    float *out = run_cpu (&c, &t.f);
    RefMap m;
    double *ref = ref_preprocess (&c, &t.f, &m);
    g_assert_cmpfloat_with_epsilon (m.scale_x, 32.0 / 18.0, 1e-12);
    VimResizeMap vm;
    vim_resize_map_compute (&c, 40, 32, &vm);
    g_assert_cmpfloat_with_epsilon (vm.scale_x, 32.0 / 18.0, 1e-6);
    g_assert_cmpfloat_with_epsilon (vm.offset_x, m.off_x, 1e-4);
    g_assert_cmpfloat_with_epsilon (vm.offset_y, m.off_y, 1e-4);
    compare_ref (&c, out, ref, 1e-4, "short-side-crop 0.875");
    g_free (ref);
    g_free (out);
    tframe_clear (&t);
    g_free (rgb);
  }
}

/* Every policy, a spread of source sizes (up- and downscaling, odd sizes),
 * against the reference. */
static void
test_policies_vs_reference (void)
{
  static const int sizes[][2] = { { 1, 1 }, { 2, 3 }, { 5, 17 }, { 16, 16 }, { 23, 11 },
    { 64, 48 }, { 33, 65 }, { 100, 7 } };
  for (int p = 0; p < 3; p++)
    for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
      int sw = sizes[i][0], sh = sizes[i][1];
      VimModelConfig c = make_cfg (12, 16, (VimResizePolicy) p, 0.875);
      guint8 *rgb = random_bytes (100 + i, (size_t) sw * sh * 3);
      TFrame t;
      make_rgb_frame (&t, VIM_PIXEL_BGRX, sw, sh, rgb, 1);
      float *out = run_cpu (&c, &t.f);
      RefMap m;
      double *ref = ref_preprocess (&c, &t.f, &m);
      VimResizeMap vm;
      vim_resize_map_compute (&c, sw, sh, &vm);
      g_assert_cmpint (vm.pad_x0, ==, m.x0);
      g_assert_cmpint (vm.pad_x1, ==, m.x1);
      g_assert_cmpint (vm.pad_y0, ==, m.y0);
      g_assert_cmpint (vm.pad_y1, ==, m.y1);
      char *what = g_strdup_printf ("policy %d, %dx%d -> 16x12", p, sw, sh);
      compare_ref (&c, out, ref, 2e-4, what);
      g_free (what);
      g_free (ref);
      g_free (out);
      tframe_clear (&t);
      g_free (rgb);
    }
}

/* ---- through the runner: batches, invalid frames ------------------------------------- */

static char *tmpdir;

static VimModel *
tiny_model (const char *resize)
{
  ModelSpec *s = mb_new_tiny ();
  mb_set_meta (s, "resize", resize);
  GByteArray *b = mb_serialize (s);
  char *path = g_build_filename (tmpdir, "tiny.safetensors", NULL);
  GError *err = NULL;
  g_file_set_contents (path, (const char *) b->data, b->len, &err);
  g_assert_no_error (err);
  VimModel *m = vim_model_open (path, &err);
  g_assert_no_error (err);
  g_unlink (path);
  g_free (path);
  g_byte_array_unref (b);
  mb_free (s);
  return m;
}

static VimRunner *
cpu_runner (VimModel *m)
{
  VimRunnerOptions o;
  vim_runner_options_init (&o);
  o.num_threads = 2;
  GError *err = NULL;
  VimRunner *r = vim_runner_new (m, &o, &err);
  g_assert_no_error (err);
  return r;
}

static void
test_runner_batch (void)
{
  static const char *const policies[] = { "stretch", "letterbox", "short-side-crop" };
  for (guint p = 0; p < G_N_ELEMENTS (policies); p++) {
    VimModel *m = tiny_model (policies[p]);
    VimRunner *r = cpu_runner (m);
    const VimModelConfig *c = vim_model_get_config (m);
    const size_t per = 3 * (size_t) c->image_height * c->image_width;
    guint8 *rgb = random_bytes (20, 21 * 13 * 3), *Y = random_bytes (21, 7 * 5),
        *U = random_bytes (22, 4 * 3), *V = random_bytes (23, 4 * 3);
    TFrame t[3];
    make_rgb_frame (&t[0], VIM_PIXEL_BGRA, 21, 13, rgb, 4);
    make_yuv_frame (&t[1], VIM_PIXEL_I420, 7, 5, Y, U, V, 2);
    make_gray_frame (&t[2], 7, 5, Y, 0);
    VimFrame frames[3] = { t[0].f, t[1].f, t[2].f };
    float *batch = g_new (float, 3 * per);
    GError *err = NULL;
    g_assert_true (vim_runner_preprocess (r, frames, 3, batch, &err));
    g_assert_no_error (err);
    for (int i = 0; i < 3; i++) {
      float *one = run_cpu (c, &frames[i]);
      g_assert_true (memcmp (one, batch + i * per, sizeof (float) * per) == 0);
      double *ref = ref_preprocess (c, &frames[i], NULL);
      compare_ref (c, one, ref, 1e-4, policies[p]);
      g_free (ref);
      g_free (one);
    }
    /* classify = preprocess + forward */
    float lc[3 * MB_C], lf[3 * MB_C];
    g_assert_true (vim_runner_classify (r, frames, 3, lc, &err));
    g_assert_true (vim_runner_forward (r, batch, 3, lf, &err));
    g_assert_no_error (err);
    for (int i = 0; i < 3 * MB_C; i++)
      g_assert_cmpfloat_with_epsilon (lc[i], lf[i], 1e-5);
    for (int i = 0; i < 3; i++)
      tframe_clear (&t[i]);
    g_free (batch);
    g_free (rgb);
    g_free (Y);
    g_free (U);
    g_free (V);
    vim_runner_free (r);
    vim_model_unref (m);
  }
}

static void
expect_invalid (VimRunner *r, const VimFrame *f, int code, const char *part)
{
  const VimModelConfig *c = vim_model_get_config (vim_runner_get_model (r));
  const size_t per = 3 * (size_t) c->image_height * c->image_width;
  float *out = g_new (float, 2 * per);
  float logits[2 * MB_C];
  GError *err = NULL;
  g_assert_false (vim_runner_preprocess (r, f, 1, out, &err));
  g_assert_error (err, VIM_ERROR, code);
  if (part && !strstr (err->message, part))
    g_error ("message lacks \"%s\": %s", part, err->message);
  g_test_message ("%s", err->message);
  g_clear_error (&err);
  g_assert_false (vim_runner_classify (r, f, 1, logits, &err));
  g_assert_error (err, VIM_ERROR, code);
  g_clear_error (&err);
  /* a bad frame second in a batch fails the batch */
  guint8 ok_px[3] = { 1, 2, 3 };
  VimFrame two[2] = { { .format = VIM_PIXEL_RGB, .width = 1, .height = 1,
      .planes = { ok_px }, .strides = { 3 } }, *f };
  g_assert_false (vim_runner_preprocess (r, two, 2, out, &err));
  g_assert_error (err, VIM_ERROR, code);
  g_clear_error (&err);
  if (code == VIM_ERROR_INVALID_ARGUMENT)
    g_assert_false (vim_frame_validate (f, NULL));
  g_free (out);
}

static void
test_invalid_frames (void)
{
  VimModel *m = tiny_model ("stretch");
  VimRunner *r = cpu_runner (m);
  guint8 buf[64 * 4 * 8];
  memset (buf, 0, sizeof buf);
  const int IA = VIM_ERROR_INVALID_ARGUMENT;

  VimFrame f = { .format = VIM_PIXEL_RGB, .width = 8, .height = 8,
    .planes = { buf }, .strides = { 24 } };
  VimFrame g;

  g = f; g.planes[0] = NULL;
  expect_invalid (r, &g, IA, "plane 0 is NULL");
  g = f; g.strides[0] = 23;
  expect_invalid (r, &g, IA, "stride 23 of plane 0");
  g = f; g.strides[0] = 0;
  expect_invalid (r, &g, IA, "stride 0 of plane 0");
  g = f; g.format = VIM_PIXEL_RGBA; g.strides[0] = 24;
  expect_invalid (r, &g, IA, "less than the 32 bytes");
  g = f; g.width = 0;
  expect_invalid (r, &g, IA, "out of range");
  g = f; g.height = 0;
  expect_invalid (r, &g, IA, "out of range");
  g = f; g.width = -3;
  expect_invalid (r, &g, IA, "out of range");
  g = f; g.height = 40000;
  expect_invalid (r, &g, IA, "out of range");
  g = f; g.format = (VimPixelFormat) 99;
  expect_invalid (r, &g, IA, "unknown pixel format 99");
  g = f; g.format = (VimPixelFormat) -1;
  expect_invalid (r, &g, IA, "unknown pixel format");
  /* NV12: second plane missing / too narrow (odd width rounds chroma up) */
  VimFrame nv = { .format = VIM_PIXEL_NV12, .width = 7, .height = 5,
    .planes = { buf, buf + 64 }, .strides = { 7, 8 } };
  g_assert_true (vim_frame_validate (&nv, NULL));
  g = nv; g.planes[1] = NULL;
  expect_invalid (r, &g, IA, "plane 1 is NULL");
  g = nv; g.strides[1] = 7;
  expect_invalid (r, &g, IA, "stride 7 of plane 1");
  g = nv; g.strides[0] = 6;
  expect_invalid (r, &g, IA, "stride 6 of plane 0");
  /* I420: third plane */
  VimFrame i4 = { .format = VIM_PIXEL_I420, .width = 7, .height = 5,
    .planes = { buf, buf + 64, buf + 128 }, .strides = { 7, 4, 4 } };
  g_assert_true (vim_frame_validate (&i4, NULL));
  g = i4; g.planes[2] = NULL;
  expect_invalid (r, &g, IA, "plane 2 is NULL");
  g = i4; g.strides[2] = 3;
  expect_invalid (r, &g, IA, "stride 3 of plane 2");
  g = i4; g.strides[1] = 3;
  expect_invalid (r, &g, IA, "stride 3 of plane 1");
  /* GRAY8 */
  g = f; g.format = VIM_PIXEL_GRAY8; g.strides[0] = 7;
  expect_invalid (r, &g, IA, "stride 7 of plane 0");
  /* CUDA memory on the CPU runner */
  g = f; g.memory = VIM_MEMORY_CUDA;
  expect_invalid (r, &g, VIM_ERROR_UNSUPPORTED, "host memory");

  /* batch arguments */
  const size_t per = 3 * 16 * 16;
  float *out = g_new (float, per);
  GError *err = NULL;
  g_assert_false (vim_runner_preprocess (r, &f, 0, out, &err));
  g_assert_error (err, VIM_ERROR, IA);
  g_clear_error (&err);
  g_assert_false (vim_runner_preprocess (r, &f, -1, out, &err));
  g_assert_error (err, VIM_ERROR, IA);
  g_clear_error (&err);
  g_assert_false (vim_runner_preprocess (r, NULL, 1, out, &err));
  g_assert_error (err, VIM_ERROR, IA);
  g_clear_error (&err);
  g_assert_false (vim_runner_preprocess (r, &f, 1, NULL, &err));
  g_assert_error (err, VIM_ERROR, IA);
  g_clear_error (&err);
  /* and the valid frame works */
  g_assert_true (vim_runner_preprocess (r, &f, 1, out, &err));
  g_assert_no_error (err);
  g_free (out);

  g_assert_cmpint (vim_pixel_format_n_planes ((VimPixelFormat) 99), ==, 0);
  g_assert_cmpstr (vim_pixel_format_name ((VimPixelFormat) 99), ==, "unknown");
  g_assert_cmpint (vim_pixel_format_n_planes (VIM_PIXEL_NV12), ==, 2);
  g_assert_cmpint (vim_pixel_format_n_planes (VIM_PIXEL_I420), ==, 3);
  g_assert_cmpint (vim_pixel_format_n_planes (VIM_PIXEL_BGRX), ==, 1);
  vim_runner_free (r);
  vim_model_unref (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GError *err = NULL;
  tmpdir = g_dir_make_tmp ("vim-preprocess-XXXXXX", &err);
  g_assert_no_error (err);
  g_test_add_func ("/preprocess/identity-stretch", test_identity_stretch);
  g_test_add_func ("/preprocess/rgb-family-identical", test_rgb_family_identical);
  g_test_add_func ("/preprocess/yuv-bt601", test_yuv_bt601);
  g_test_add_func ("/preprocess/yuv-odd-sizes", test_yuv_odd_sizes);
  g_test_add_func ("/preprocess/gray8", test_gray8);
  g_test_add_func ("/preprocess/strides", test_strides);
  g_test_add_func ("/preprocess/letterbox", test_letterbox);
  g_test_add_func ("/preprocess/short-side-crop", test_short_side_crop);
  g_test_add_func ("/preprocess/policies-vs-reference", test_policies_vs_reference);
  g_test_add_func ("/preprocess/runner-batch", test_runner_batch);
  g_test_add_func ("/preprocess/invalid-frames", test_invalid_frames);
  int rc = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return rc;
}
