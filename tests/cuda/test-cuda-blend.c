/* GPU drawing against the CPU path: vim_blend_mask and vim_blend_argb on
 * pitched device frames (cudaMallocPitch) of every format must give exactly
 * the bytes the CPU loop gives on the same frame in host memory, row padding
 * included, with the mask in host memory and in (pitched) device memory, on
 * the default stream and on a created one. The CPU path itself is checked
 * against an independent reference in tests/engine/test_blend.c.
 *
 *   test-cuda-blend
 *
 * Exit 77 without a usable GPU. */
#include <vim/vim.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <string.h>

#include "cuda-engine-util.h"

static const VimPixelFormat formats[] = {
  VIM_PIXEL_RGB, VIM_PIXEL_RGBA, VIM_PIXEL_RGBX, VIM_PIXEL_BGR, VIM_PIXEL_BGRA,
  VIM_PIXEL_BGRX, VIM_PIXEL_NV12, VIM_PIXEL_I420, VIM_PIXEL_GRAY8,
};

/* The same frame on the host and the device: identical layout (the host
 * copy uses the device pitch), so whole planes compare byte for byte. */
typedef struct {
  VimFrame host, dev;
  uint8_t *hmem[3];
  void *dmem[3];
  size_t size[3];
} TestFrame;

static void
make_frame (TestFrame *tf, VimPixelFormat fmt, int w, int h, uint64_t *s)
{
  memset (tf, 0, sizeof *tf);
  tf->host.format = fmt;
  tf->host.width = w;
  tf->host.height = h;
  tf->host.memory = VIM_MEMORY_HOST;
  int np = vim_pixel_format_n_planes (fmt);
  for (int p = 0; p < np; p++) {
    size_t rb = tu_row_bytes (fmt, w, p), rows = p == 0 ? (size_t) h : (size_t) (h + 1) / 2;
    size_t pitch;
    CU (cudaMallocPitch (&tf->dmem[p], &pitch, rb, rows));
    tf->size[p] = pitch * rows;
    tf->hmem[p] = g_malloc (tf->size[p]);
    for (size_t k = 0; k < tf->size[p]; k++)
      tf->hmem[p][k] = (uint8_t) (tu_next (s) >> 56);
    CU (cudaMemcpy (tf->dmem[p], tf->hmem[p], tf->size[p], cudaMemcpyHostToDevice));
    tf->host.planes[p] = tf->hmem[p];
    tf->host.strides[p] = pitch;
  }
  tf->dev = tf->host;
  tf->dev.memory = VIM_MEMORY_CUDA;
  for (int p = 0; p < np; p++)
    tf->dev.planes[p] = tf->dmem[p];
}

static void
free_frame (TestFrame *tf)
{
  for (int p = 0; p < 3; p++) {
    g_free (tf->hmem[p]);
    if (tf->dmem[p])
      cudaFree (tf->dmem[p]);
  }
}

/* the device frame equals the host one, every byte of every pitch */
static int
compare_frame (const TestFrame *tf, const char *what)
{
  int bad = 0;
  for (int p = 0; p < 3 && tf->dmem[p]; p++) {
    uint8_t *d = g_malloc (tf->size[p]);
    CU (cudaMemcpy (d, tf->dmem[p], tf->size[p], cudaMemcpyDeviceToHost));
    for (size_t k = 0; k < tf->size[p]; k++)
      if (d[k] != tf->hmem[p][k]) {
        size_t st = tf->host.strides[p];
        CHECK (0, "%s: %s %dx%d plane %d row %zu byte %zu: GPU %d, CPU %d", what,
            vim_pixel_format_name (tf->host.format), tf->host.width,
            tf->host.height, p, k / st, k % st, d[k], tf->hmem[p][k]);
        bad = 1;
        break;
      }
    g_free (d);
  }
  return bad;
}

typedef struct {
  int mw, mh;
  size_t stride, dpitch;
  uint8_t *host;
  void *dev;
} TestMask;

static void
make_mask (TestMask *m, int mw, int mh, uint64_t *s)
{
  m->mw = mw;
  m->mh = mh;
  m->stride = mw + 3;
  m->host = g_malloc (m->stride * mh);
  uint64_t seed = tu_next (s);
  for (int y = 0; y < mh; y++)
    for (int x = 0; x < (int) m->stride; x++) {
      /* blobs of 3 x 2 mask pixels, 12 classes */
      uint64_t z = seed + (uint64_t) (y / 2) * 100003 + x / 3;
      m->host[(size_t) y * m->stride + x] = (uint8_t) (tu_next (&z) % 12);
    }
  CU (cudaMallocPitch (&m->dev, &m->dpitch, mw, mh));
  CU (cudaMemcpy2D (m->dev, m->dpitch, m->host, m->stride, mw, mh,
          cudaMemcpyHostToDevice));
}

static void
free_mask (TestMask *m)
{
  g_free (m->host);
  cudaFree (m->dev);
}

static void
check_ok (gboolean ok, GError *err, const char *what)
{
  CHECK (ok && err == NULL, "%s: %s", what, err ? err->message : "FALSE without error");
}

static void
test_mask (uint64_t *s, cudaStream_t stream)
{
  const uint8_t *pal = vim_default_palette ();
  uint8_t visible[12] = { 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1 };
  struct { int W, H, mw, mh; double x, y, w, h; } geo[] = {
    { 1920, 1080, 60, 34, 0, 0, 1920, 1080 },
    { 37, 23, 13, 7, 0, 0, 37, 23 },
    { 41, 29, 9, 5, 3.3, 2.7, 20.2, 11.9 },
    { 30, 20, 16, 16, -5.5, -3.0, 50.0, 40.0 },
    { 33, 17, 40, 30, 7.0, 4.0, 10.0, 6.0 },
    { 1, 1, 3, 3, 0, 0, 1, 1 },
    { 640, 361, 640, 361, 0, 0, 640, 361 },
  };
  struct { float alpha; gboolean contours; gboolean filter; int n_palette; } opt[] = {
    { 0.5f, FALSE, FALSE, 256 },
    { 0.37f, TRUE, TRUE, 256 },
    { 1.0f, TRUE, FALSE, 5 },
    { 0.0f, TRUE, TRUE, 256 },
  };
  for (guint fi = 0; fi < G_N_ELEMENTS (formats); fi++)
    for (guint gi = 0; gi < G_N_ELEMENTS (geo); gi++)
      for (guint oi = 0; oi < G_N_ELEMENTS (opt); oi++)
        for (int dev_mask = 0; dev_mask < 2; dev_mask++) {
          TestFrame tf;
          TestMask m;
          make_frame (&tf, formats[fi], geo[gi].W, geo[gi].H, s);
          make_mask (&m, geo[gi].mw, geo[gi].mh, s);
          VimMaskGeometry g = { m.mw, m.mh, geo[gi].x, geo[gi].y, geo[gi].w, geo[gi].h };
          VimBlendOptions o = { opt[oi].alpha, pal, opt[oi].n_palette,
              opt[oi].filter ? visible : NULL, opt[oi].filter ? 10 : 0,
              opt[oi].contours };
          char what[128];
          snprintf (what, sizeof what, "mask geometry %u options %u %s mask", gi,
              oi, dev_mask ? "device" : "host");
          GError *err = NULL;
          gboolean ok = vim_blend_mask (&tf.host, m.host, m.stride,
              VIM_MEMORY_HOST, &g, &o, NULL, &err);
          check_ok (ok, err, what);
          g_clear_error (&err);
          ok = dev_mask
              ? vim_blend_mask (&tf.dev, m.dev, m.dpitch, VIM_MEMORY_CUDA, &g, &o,
                  stream, &err)
              : vim_blend_mask (&tf.dev, m.host, m.stride, VIM_MEMORY_HOST, &g, &o,
                  stream, &err);
          check_ok (ok, err, what);
          g_clear_error (&err);
          compare_frame (&tf, what);
          free_mask (&m);
          free_frame (&tf);
        }
}

static void
test_argb (uint64_t *s, cudaStream_t stream)
{
  struct { int W, H, iw, ih, x, y; } cases[] = {
    { 1920, 1080, 300, 80, 17, 9 },
    { 37, 23, 10, 7, 5, 4 },
    { 37, 23, 9, 6, 6, 3 },
    { 36, 24, 20, 15, -7, -5 },
    { 35, 21, 20, 15, 25, 14 },
    { 16, 12, 40, 30, -11, -9 },
    { 16, 12, 5, 5, 16, 0 },
    { 1, 1, 1, 1, 0, 0 },
    { 7, 5, 1, 1, 6, 4 },
  };
  for (guint fi = 0; fi < G_N_ELEMENTS (formats); fi++)
    for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
      TestFrame tf;
      make_frame (&tf, formats[fi], cases[ci].W, cases[ci].H, s);
      int iw = cases[ci].iw, ih = cases[ci].ih;
      size_t stride = (size_t) iw * 4 + (ci % 2 ? 8 : 0);
      uint8_t *img = g_malloc (stride * ih);
      for (int y = 0; y < ih; y++)
        for (int x = 0; x < iw; x++) {
          uint64_t r = tu_next (s);
          uint32_t A = (r & 3) == 0 ? 0 : (r & 3) == 1 ? 255 : (uint32_t) (r >> 8) & 255;
          uint32_t R = (uint32_t) (r >> 16) % (A + 1), G = (uint32_t) (r >> 24) % (A + 1),
              B = (uint32_t) (r >> 32) % (A + 1);
          uint32_t v = A << 24 | R << 16 | G << 8 | B;
          memcpy (img + (size_t) y * stride + (size_t) x * 4, &v, 4);
        }
      char what[64];
      snprintf (what, sizeof what, "argb case %u", ci);
      GError *err = NULL;
      gboolean ok = vim_blend_argb (&tf.host, img, iw, ih, stride, cases[ci].x,
          cases[ci].y, NULL, &err);
      check_ok (ok, err, what);
      g_clear_error (&err);
      ok = vim_blend_argb (&tf.dev, img, iw, ih, stride, cases[ci].x, cases[ci].y,
          stream, &err);
      check_ok (ok, err, what);
      g_clear_error (&err);
      compare_frame (&tf, what);
      g_free (img);
      free_frame (&tf);
    }
}

static void
test_refusals (uint64_t *s)
{
  /* a device mask with a host frame is refused, the frame untouched */
  TestFrame tf;
  TestMask m;
  make_frame (&tf, VIM_PIXEL_RGBA, 8, 8, s);
  make_mask (&m, 4, 4, s);
  uint8_t *before = g_memdup2 (tf.hmem[0], tf.size[0]);
  VimMaskGeometry g = { 4, 4, 0, 0, 8, 8 };
  VimBlendOptions o = { 1.f, vim_default_palette (), 256, NULL, 0, TRUE };
  GError *err = NULL;
  gboolean ok = vim_blend_mask (&tf.host, m.dev, m.dpitch, VIM_MEMORY_CUDA, &g,
      &o, NULL, &err);
  CHECK (!ok && g_error_matches (err, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT),
      "device mask on a host frame: %s", err ? err->message : "accepted");
  g_clear_error (&err);
  CHECK (memcmp (before, tf.hmem[0], tf.size[0]) == 0, "refused call wrote the frame");
  g_free (before);
  free_mask (&m);
  free_frame (&tf);
}

int
main (int argc, char **argv)
{
  int n = 0;
  if (cudaGetDeviceCount (&n) != cudaSuccess || n < 1) {
    fprintf (stderr, "no usable GPU: skipping\n");
    return SKIP_RC;
  }
  uint64_t s = 20240611;
  cudaStream_t stream;
  CU (cudaStreamCreate (&stream));
  test_mask (&s, NULL);
  test_mask (&s, stream);
  test_argb (&s, NULL);
  test_argb (&s, stream);
  test_refusals (&s);
  CU (cudaStreamDestroy (stream));
  if (test_failures) {
    fprintf (stderr, "%d failures\n", test_failures);
    return 1;
  }
  printf ("blend: GPU == CPU on %zu formats, host and device masks, pitched frames\n",
      G_N_ELEMENTS (formats));
  return 0;
}
