/* Drawing for overlays: class masks and premultiplied ARGB images blended
 * into frames, in place (vim.h, "drawing").
 *
 * Everything that involves a choice is decided here on the host: which frame
 * pixel reads which mask pixel (two index tables), which colour each class
 * value gets in the frame's own colour space (a 256-entry table) and the
 * blend weight as a 32-bit fixed-point number. The per-pixel work is integer
 * arithmetic only, so the CPU loop below and the CUDA kernel
 * (kernels/src/blend.cu) give the same bytes.
 *
 * Exactness of the mask blend: out = round(src * (1 - alpha) + colour * alpha)
 * (halves up). For alpha >= 2^-9 a float alpha is a multiple of 2^-32, so
 * alpha32 = alpha * 2^32 is exact and so is the integer formula. For smaller
 * alpha the colour moves a pixel by less than 255 * 2^-9 < 0.5 and the result
 * is src either way (alpha32 is then truncated, with the same result).
 *
 * Colour conversions (integer, exact rounding of the decimal definitions):
 *   YUV (BT.601 limited range): Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255
 *                               U = 128 + (-37.797 R - 74.203 G + 112 B) / 255
 *                               V = 128 + (112 R - 93.786 G - 18.214 B) / 255
 *   GRAY8 (full range, as preprocessing reads it): 0.299 R + 0.587 G + 0.114 B
 * Chroma of NV12/I420 is one sample per 2x2 luma block: a mask blend gives it
 * the class (and contour decision) of the block's top-left luma pixel; an ARGB
 * composite gives it the average of the block's ARGB pixels (those of the
 * block inside the frame; image pixels off the image count as transparent). */
#include "blend.h"

#include <math.h>
#include <string.h>

/* ---- palette --------------------------------------------------------------- */

static const uint8_t camvid_colours[11][3] = {
  { 128, 128, 128 },          /* Sky */
  { 128, 0, 0 },              /* Building */
  { 192, 192, 128 },          /* Pole */
  { 128, 64, 128 },           /* Road */
  { 60, 40, 222 },            /* Pavement */
  { 128, 128, 0 },            /* Tree */
  { 192, 128, 128 },          /* SignSymbol */
  { 64, 64, 128 },            /* Fence */
  { 64, 0, 128 },             /* Car */
  { 64, 64, 0 },              /* Pedestrian */
  { 0, 128, 192 },            /* Bicyclist */
};

/* Candidate k's colour: k's bits dealt round-robin to R, G, B from the most
 * significant bit down, so consecutive ids get far-apart colours. A
 * bijection of 0 .. 255 onto 256 distinct colours. */
static void
spread_bits_colour (int k, uint8_t rgb[3])
{
  rgb[0] = rgb[1] = rgb[2] = 0;
  for (int bit = 0; bit < 8; bit++) {
    if (!(k & (1 << bit)))
      continue;
    int channel = bit % 3, level = bit / 3;   /* level 0 = the top bit */
    rgb[channel] |= (uint8_t) (0x80 >> level);
  }
}

static uint8_t default_palette[256 * 3];

static gpointer
build_default_palette (gpointer unused)
{
  memcpy (default_palette, camvid_colours, sizeof camvid_colours);
  int n = 11;
  /* the remaining entries: candidates in order, skipping colours taken;
   * 256 distinct candidates minus at most 11 collisions is enough */
  for (int k = 0; k < 256 && n < 256; k++) {
    uint8_t rgb[3];
    spread_bits_colour (k, rgb);
    gboolean taken = FALSE;
    for (int i = 0; i < n && !taken; i++)
      taken = memcmp (default_palette + 3 * i, rgb, 3) == 0;
    if (!taken)
      memcpy (default_palette + 3 * n++, rgb, 3);
  }
  g_assert (n == 256);
  return NULL;
}

const uint8_t *
vim_default_palette (void)
{
  static GOnce once = G_ONCE_INIT;
  g_once (&once, build_default_palette, NULL);
  return default_palette;
}

/* ---- colour conversions ----------------------------------------------------- */

static void
rgb_to_yuv (const uint8_t rgb[3], uint8_t yuv[3])
{
  int64_t r = rgb[0], g = rgb[1], b = rgb[2];
  /* numerators scaled by 255000, all non-negative: floor division rounds */
  yuv[0] = (uint8_t) (16 + (65481 * r + 128553 * g + 24966 * b + 127500) / 255000);
  yuv[1] = (uint8_t) ((128 * 255000 - 37797 * r - 74203 * g + 112000 * b + 127500) / 255000);
  yuv[2] = (uint8_t) ((128 * 255000 + 112000 * r - 93786 * g - 18214 * b + 127500) / 255000);
}

static uint8_t
rgb_to_gray (const uint8_t rgb[3])
{
  return (uint8_t) ((299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2] + 500) / 1000);
}

/* ---- validation ------------------------------------------------------------- */

static gboolean
invalid (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT, msg);
  g_free (msg);
  return FALSE;
}

static gboolean
frame_check (const VimFrame *frame, GError **error)
{
  if (frame == NULL)
    return invalid (error, "blend: frame is NULL");
  if (!vim_frame_validate (frame, error))
    return FALSE;
  if (frame->memory != VIM_MEMORY_HOST && frame->memory != VIM_MEMORY_CUDA)
    return invalid (error, "blend: unknown frame memory %d", (int) frame->memory);
#if !VIM_HAVE_CUDA
  if (frame->memory == VIM_MEMORY_CUDA) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_UNSUPPORTED,
        "blend: CUDA frames need a build with the CUDA backend");
    return FALSE;
  }
#endif
  return TRUE;
}

static gboolean
is_yuv (VimPixelFormat f)
{
  return f == VIM_PIXEL_NV12 || f == VIM_PIXEL_I420;
}

/* bytes per pixel of plane 0 and where R, G, B sit in it (RGB-like) */
static int
rgb_layout (VimPixelFormat f, int off[3])
{
  gboolean bgr = f == VIM_PIXEL_BGR || f == VIM_PIXEL_BGRA || f == VIM_PIXEL_BGRX;
  off[0] = bgr ? 2 : 0;
  off[1] = 1;
  off[2] = bgr ? 0 : 2;
  return f == VIM_PIXEL_RGB || f == VIM_PIXEL_BGR ? 3 : 4;
}

/* ---- mask blend: the plan ----------------------------------------------------- */

/* index table of one axis; returns the covered range [*lo, *hi) (empty: lo == hi) */
static void
axis_map (int n_frame, double start, double extent, int n_mask, int32_t *map,
    int *lo, int *hi)
{
  *lo = *hi = 0;
  gboolean any = FALSE;
  for (int p = 0; p < n_frame; p++) {
    double c = p + 0.5;
    if (!(c >= start && c < start + extent)) {
      map[p] = -1;
      continue;
    }
    double m = floor ((c - start) * n_mask / extent);
    map[p] = m < 0 ? 0 : m > n_mask - 1 ? n_mask - 1 : (int32_t) m;
    if (!any)
      *lo = p;
    any = TRUE;
    *hi = p + 1;
  }
}

static gboolean
mask_args_check (const VimFrame *frame, const uint8_t *mask, size_t mask_stride,
    VimMemory mask_memory, const VimMaskGeometry *g, const VimBlendOptions *o,
    GError **error)
{
  if (!frame_check (frame, error))
    return FALSE;
  if (mask == NULL)
    return invalid (error, "blend: mask is NULL");
  if (mask_memory != VIM_MEMORY_HOST && mask_memory != VIM_MEMORY_CUDA)
    return invalid (error, "blend: unknown mask memory %d", (int) mask_memory);
  if (mask_memory == VIM_MEMORY_CUDA && frame->memory == VIM_MEMORY_HOST)
    return invalid (error, "blend: a CUDA mask needs a CUDA frame");
  if (g == NULL)
    return invalid (error, "blend: geometry is NULL");
  if (g->width < 1 || g->height < 1 || g->width > 32768 || g->height > 32768)
    return invalid (error, "blend: mask size %dx%d is out of range (1 .. 32768)",
        g->width, g->height);
  if (mask_stride < (size_t) g->width)
    return invalid (error, "blend: mask stride %zu is less than the mask width %d",
        mask_stride, g->width);
  if (!isfinite (g->x) || !isfinite (g->y) || !isfinite (g->w) || !isfinite (g->h)
      || !(g->w > 0) || !(g->h > 0) || fabs (g->x) > 1e9 || fabs (g->y) > 1e9
      || g->w > 1e9 || g->h > 1e9)
    return invalid (error, "blend: mask rectangle (%g, %g, %g x %g) is not a "
        "finite rectangle of positive size", g->x, g->y, g->w, g->h);
  if (o == NULL)
    return invalid (error, "blend: options are NULL");
  if (!(o->alpha >= 0.f && o->alpha <= 1.f))
    return invalid (error, "blend: alpha %g is outside [0, 1]", o->alpha);
  if (o->palette == NULL || o->n_palette < 1 || o->n_palette > 65536)
    return invalid (error, "blend: the palette needs 1 .. 65536 colours (%s, %d)",
        o->palette ? "given" : "NULL", o->n_palette);
  if (o->n_classes < 0)
    return invalid (error, "blend: n_classes %d is negative", o->n_classes);
  return TRUE;
}

static void
plan_colours (VimPixelFormat format, const VimBlendOptions *o,
    VimBlendMaskPlan *plan)
{
  int off[3] = { 0, 1, 2 };
  if (!is_yuv (format) && format != VIM_PIXEL_GRAY8)
    rgb_layout (format, off);
  for (int c = 0; c < 256; c++) {
    const uint8_t *rgb = o->palette + 3 * (c % o->n_palette);
    uint8_t *dst = plan->colour[c];
    memset (dst, 0, 4);
    if (is_yuv (format)) {
      rgb_to_yuv (rgb, dst);
    } else if (format == VIM_PIXEL_GRAY8) {
      dst[0] = rgb_to_gray (rgb);
    } else {
      for (int k = 0; k < 3; k++)
        dst[off[k]] = rgb[k];
    }
    dst[3] = o->class_visible == NULL
        || (c < o->n_classes && o->class_visible[c] != 0);
  }
  /* exact for alpha >= 2^-9 (see the top of the file) */
  plan->alpha32 = (uint64_t) ldexp ((double) o->alpha, 32);
  plan->contours = o->contours != FALSE;
}

/* ---- mask blend: CPU ------------------------------------------------------------ */

#define OPAQUE32 ((uint64_t) 1 << 32)

static inline uint8_t
mix32 (uint8_t src, uint8_t colour, uint64_t a32)
{
  return (uint8_t) ((src * (OPAQUE32 - a32) + colour * a32 + (OPAQUE32 >> 1)) >> 32);
}

typedef struct {
  const uint8_t *mask;
  size_t stride;
  const VimBlendMaskPlan *plan;
} MaskView;

static inline int
class_at (const MaskView *v, int px, int py)
{
  return v->mask[(size_t) v->plan->row_map[py] * v->stride + v->plan->col_map[px]];
}

/* weight of pixel (px, py) (inside the plan's range) of class c; 0 = untouched */
static inline uint64_t
weight_at (const MaskView *v, int px, int py, int c)
{
  const VimBlendMaskPlan *p = v->plan;
  if (!p->colour[c][3])
    return 0;
  if (p->contours && ((px + 1 < p->x1 && class_at (v, px + 1, py) != c)
          || (py + 1 < p->y1 && class_at (v, px, py + 1) != c)))
    return OPAQUE32;
  return p->alpha32;
}

static void
blend_mask_cpu (const VimFrame *f, const MaskView *v)
{
  const VimBlendMaskPlan *p = v->plan;
  uint8_t *plane0 = (uint8_t *) f->planes[0];
  int bpp = 1, nch = 1;
  if (!is_yuv (f->format) && f->format != VIM_PIXEL_GRAY8) {
    int off[3];
    bpp = rgb_layout (f->format, off);
    nch = 3;
  }
  for (int py = p->y0; py < p->y1; py++) {
    uint8_t *row = plane0 + (size_t) py * f->strides[0];
    for (int px = p->x0; px < p->x1; px++) {
      int c = class_at (v, px, py);
      uint64_t a = weight_at (v, px, py, c);
      if (a == 0)
        continue;
      uint8_t *pix = row + (size_t) px * bpp;
      for (int k = 0; k < nch; k++)
        pix[k] = mix32 (pix[k], p->colour[c][k], a);
    }
  }
  if (!is_yuv (f->format))
    return;
  /* chroma blocks whose top-left luma pixel is covered */
  for (int by = (p->y0 + 1) / 2; 2 * by < p->y1; by++)
    for (int bx = (p->x0 + 1) / 2; 2 * bx < p->x1; bx++) {
      int c = class_at (v, 2 * bx, 2 * by);
      uint64_t a = weight_at (v, 2 * bx, 2 * by, c);
      if (a == 0)
        continue;
      uint8_t *u, *w;
      if (f->format == VIM_PIXEL_NV12) {
        u = (uint8_t *) f->planes[1] + (size_t) by * f->strides[1] + 2 * (size_t) bx;
        w = u + 1;
      } else {
        u = (uint8_t *) f->planes[1] + (size_t) by * f->strides[1] + bx;
        w = (uint8_t *) f->planes[2] + (size_t) by * f->strides[2] + bx;
      }
      *u = mix32 (*u, p->colour[c][1], a);
      *w = mix32 (*w, p->colour[c][2], a);
    }
}

gboolean
vim_blend_mask (const VimFrame *frame, const uint8_t *mask, size_t mask_stride,
    VimMemory mask_memory, const VimMaskGeometry *geometry,
    const VimBlendOptions *options, void *cuda_stream, GError **error)
{
  if (!mask_args_check (frame, mask, mask_stride, mask_memory, geometry,
          options, error))
    return FALSE;
  VimBlendMaskPlan plan;
  plan_colours (frame->format, options, &plan);
  plan.col_map = g_new (int32_t, frame->width);
  plan.row_map = g_new (int32_t, frame->height);
  axis_map (frame->width, geometry->x, geometry->w, geometry->width,
      plan.col_map, &plan.x0, &plan.x1);
  axis_map (frame->height, geometry->y, geometry->h, geometry->height,
      plan.row_map, &plan.y0, &plan.y1);

  gboolean ok = TRUE;
  if (plan.x0 < plan.x1 && plan.y0 < plan.y1) {
    if (frame->memory == VIM_MEMORY_HOST) {
      MaskView view = { mask, mask_stride, &plan };
      blend_mask_cpu (frame, &view);
    }
#if VIM_HAVE_CUDA
    else {
      ok = vim_blend_mask_cuda (frame, mask, mask_stride, mask_memory,
          geometry->width, geometry->height, &plan, cuda_stream, error);
    }
#endif
  }
  g_free (plan.col_map);
  g_free (plan.row_map);
  return ok;
}

/* ---- ARGB composite ------------------------------------------------------------- */

static inline uint32_t
argb_at (const uint8_t *argb, size_t stride, int ix, int iy)
{
  uint32_t v;
  memcpy (&v, argb + (size_t) iy * stride + (size_t) ix * 4, 4);
  return v;
}

static inline uint8_t
clamp_u8 (int64_t v)
{
  return (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
}

/* round(num / den) for den > 0, clamped to a byte */
static inline uint8_t
div_round_u8 (int64_t num, int64_t den)
{
  int64_t t = num + den / 2;
  return t <= 0 ? 0 : clamp_u8 (t / den);
}

/* The clipped rectangle [x0, x1) x [y0, y1) is in frame pixels; image pixel
 * (fx - x, fy - y) lands on frame pixel (fx, fy). */
static void
blend_argb_cpu (const VimFrame *f, const uint8_t *argb, size_t stride, int x,
    int y, int x0, int y0, int x1, int y1)
{
  uint8_t *plane0 = (uint8_t *) f->planes[0];
  for (int fy = y0; fy < y1; fy++) {
    uint8_t *row = plane0 + (size_t) fy * f->strides[0];
    for (int fx = x0; fx < x1; fx++) {
      uint32_t p = argb_at (argb, stride, fx - x, fy - y);
      int64_t A = p >> 24, R = (p >> 16) & 255, G = (p >> 8) & 255, B = p & 255;
      if (is_yuv (f->format)) {
        row[fx] = div_round_u8 (row[fx] * (255 - A) * 1000 + 16000 * A
            + 65481 * R + 128553 * G + 24966 * B, 255000);
      } else if (f->format == VIM_PIXEL_GRAY8) {
        row[fx] = div_round_u8 (row[fx] * (255 - A) * 1000
            + 255 * (299 * R + 587 * G + 114 * B), 255000);
      } else {
        int off[3];
        int bpp = rgb_layout (f->format, off);
        uint8_t *pix = row + (size_t) fx * bpp;
        const int64_t P[3] = { R, G, B };
        for (int k = 0; k < 3; k++)
          pix[off[k]] = div_round_u8 (pix[off[k]] * (255 - A) + 255 * P[k], 255);
      }
    }
  }
  if (!is_yuv (f->format))
    return;
  /* every chroma block touching the rectangle: the average of its pixels */
  for (int by = y0 / 2; 2 * by < y1; by++)
    for (int bx = x0 / 2; 2 * bx < x1; bx++) {
      int64_t n = 0, As = 0, Rs = 0, Gs = 0, Bs = 0;
      for (int fy = 2 * by; fy < 2 * by + 2 && fy < f->height; fy++)
        for (int fx = 2 * bx; fx < 2 * bx + 2 && fx < f->width; fx++) {
          n++;
          if (fx < x0 || fx >= x1 || fy < y0 || fy >= y1)
            continue;          /* off the image: transparent */
          uint32_t p = argb_at (argb, stride, fx - x, fy - y);
          As += p >> 24;
          Rs += (p >> 16) & 255;
          Gs += (p >> 8) & 255;
          Bs += p & 255;
        }
      uint8_t *u, *v;
      if (f->format == VIM_PIXEL_NV12) {
        u = (uint8_t *) f->planes[1] + (size_t) by * f->strides[1] + 2 * (size_t) bx;
        v = u + 1;
      } else {
        u = (uint8_t *) f->planes[1] + (size_t) by * f->strides[1] + bx;
        v = (uint8_t *) f->planes[2] + (size_t) by * f->strides[2] + bx;
      }
      int64_t keep = (255 * n - As) * 1000, den = 255000 * n;
      *u = div_round_u8 (*u * keep + 128000 * As - 37797 * Rs - 74203 * Gs
          + 112000 * Bs, den);
      *v = div_round_u8 (*v * keep + 128000 * As + 112000 * Rs - 93786 * Gs
          - 18214 * Bs, den);
    }
}

gboolean
vim_blend_argb (const VimFrame *frame, const uint8_t *argb, int width,
    int height, size_t stride, int x, int y, void *cuda_stream, GError **error)
{
  if (!frame_check (frame, error))
    return FALSE;
  if (argb == NULL)
    return invalid (error, "blend: ARGB image is NULL");
  if (width < 1 || height < 1 || width > 32768 || height > 32768)
    return invalid (error, "blend: ARGB image size %dx%d is out of range (1 .. 32768)",
        width, height);
  if (stride < (size_t) width * 4)
    return invalid (error, "blend: ARGB stride %zu is less than 4 x width %d",
        stride, width);
  /* clip in 64 bits: x + width may overflow an int */
  int64_t x0 = MAX ((int64_t) x, 0), y0 = MAX ((int64_t) y, 0);
  int64_t x1 = MIN ((int64_t) x + width, (int64_t) frame->width);
  int64_t y1 = MIN ((int64_t) y + height, (int64_t) frame->height);
  if (x0 >= x1 || y0 >= y1)
    return TRUE;               /* nothing lands on the frame */
  if (frame->memory == VIM_MEMORY_HOST) {
    blend_argb_cpu (frame, argb, stride, x, y, (int) x0, (int) y0, (int) x1,
        (int) y1);
    return TRUE;
  }
#if VIM_HAVE_CUDA
  const uint8_t *first = argb + (size_t) (y0 - y) * stride + (size_t) (x0 - x) * 4;
  return vim_blend_argb_cuda (frame, first, stride, (int) x0, (int) y0,
      (int) x1, (int) y1, cuda_stream, error);
#else
  return FALSE;                /* unreachable: frame_check refused CUDA frames */
#endif
}
