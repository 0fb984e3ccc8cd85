/* Segmentation outputs: where a mask lies on the frame (geometry), and the
 * host postprocessing of one image's per-token logits: bilinear upsampling
 * (PyTorch's align_corners=False), argmax, confidence, class fractions.
 * docs/segmentation.md is the written form; the CUDA kernel computes the
 * same sampling from the same VimSegSampling. */
#include "vim-private.h"

#include <math.h>
#include <string.h>

/* Largest mask side we accept anywhere (FIXED sizes are capped lower). */
#define MAX_MASK_SIDE 65536

size_t
vim_model_output_size (const VimModel *model)
{
  const VimModelConfig *c = &model->config;
  if (c->task == VIM_TASK_SEGMENTATION)
    return (size_t) c->num_classes * c->grid_h * c->grid_w;
  return (size_t) c->num_classes;
}

static gboolean
check_segmenter (const VimModel *model, GError **error)
{
  if (model->config.task == VIM_TASK_SEGMENTATION)
    return TRUE;
  g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
      "%s is not a segmentation model", model->path);
  return FALSE;
}

gboolean
vim_model_mask_geometry (const VimModel *model, int frame_w, int frame_h,
    const VimMaskSpec *spec, VimMaskGeometry *out, GError **error)
{
  g_return_val_if_fail (model != NULL && out != NULL, FALSE);
  const VimModelConfig *c = &model->config;
  if (!check_segmenter (model, error))
    return FALSE;
  if (spec == NULL || frame_w < 1 || frame_h < 1 || frame_w > MAX_MASK_SIDE
      || frame_h > MAX_MASK_SIDE) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "mask geometry of a %dx%d frame%s (frames are 1 .. %d pixels a side)",
        frame_w, frame_h, spec ? "" : " without a mask spec", MAX_MASK_SIDE);
    return FALSE;
  }

  /* The frame rectangle the network saw: all of it for stretch and
   * letterbox (letterbox borders are outside the frame), the centre crop
   * for short-side crop (the same numbers preprocessing uses). */
  if (c->resize == VIM_RESIZE_SHORT_SIDE_CROP) {
    VimResizeMap map;
    vim_resize_map_compute (c, frame_w, frame_h, &map);
    out->x = map.offset_x;
    out->y = map.offset_y;
    out->w = (double) c->image_width * map.scale_x;
    out->h = (double) c->image_height * map.scale_y;
  } else {
    out->x = out->y = 0.0;
    out->w = frame_w;
    out->h = frame_h;
  }

  switch (spec->mode) {
    case VIM_MASK_SIZE_GRID:
      out->width = c->grid_w;
      out->height = c->grid_h;
      break;
    case VIM_MASK_SIZE_FIXED:
      if (spec->width < 1 || spec->height < 1 || spec->width > 16384
          || spec->height > 16384) {
        g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
            "fixed mask size %dx%d is outside 1 .. 16384", spec->width,
            spec->height);
        return FALSE;
      }
      out->width = spec->width;
      out->height = spec->height;
      break;
    case VIM_MASK_SIZE_FRAME:
      out->width = MAX (1, (int) lround (out->w));
      out->height = MAX (1, (int) lround (out->h));
      break;
    default:
      g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
          "unknown mask size mode %d", (int) spec->mode);
      return FALSE;
  }
  return TRUE;
}

/* One axis: mask pixel m's centre -> input coordinate (through the part of
 * the input that shows the mask's rectangle) -> grid coordinate
 * g = (u + 0.5) * G / In - 0.5, written as g = (m + 0.5) * scale + offset.
 * With the whole input (stretch, crop) this is exactly PyTorch's
 * align_corners=False source index (m + 0.5) * (G / mask) - 0.5. */
static void
axis_sampling (double in0, double in_span, int in_size, int grid, int mask,
    double *scale, double *offset)
{
  *scale = (in_span / in_size) * ((double) grid / mask);
  *offset = in0 * grid / in_size - 0.5;
}

void
vim_seg_sampling_compute (const VimModelConfig *c,
    const VimMaskGeometry *geometry, VimSegSampling *out)
{
  const int W = c->image_width, H = c->image_height;
  double x0 = 0, y0 = 0, cw = W, ch = H;
  if (c->resize == VIM_RESIZE_LETTERBOX) {
    /* the frame (= the geometry's rectangle) fills only the content region
     * of the input, centred, as vim_resize_map_compute places it */
    double s = MAX (geometry->w / W, geometry->h / H);
    cw = geometry->w / s;
    ch = geometry->h / s;
    x0 = (W - cw) * 0.5;
    y0 = (H - ch) * 0.5;
  }
  axis_sampling (x0, cw, W, c->grid_w, geometry->width, &out->scale_x,
      &out->offset_x);
  axis_sampling (y0, ch, H, c->grid_h, geometry->height, &out->scale_y,
      &out->offset_y);
}

/* Bilinear taps of one output index, PyTorch's clamping: a negative source
 * coordinate is 0, the upper neighbour stays inside the grid. */
typedef struct {
  int i0, i1;
  double l0, l1;
} Taps;

static Taps
taps_at (int m, double scale, double offset, int grid)
{
  double g = (m + 0.5) * scale + offset;
  if (g < 0)
    g = 0;
  int i0 = MIN ((int) g, grid - 1);
  Taps t = { i0, i0 < grid - 1 ? i0 + 1 : i0, 0, 0 };
  t.l1 = g - i0;
  if (t.l1 > 1)
    t.l1 = 1;
  t.l0 = 1.0 - t.l1;
  return t;
}

static gboolean
check_result (const VimModelConfig *c, const VimMaskGeometry *g,
    const VimSegResult *r, GError **error)
{
  const char *why = NULL;
  if (g->width < 1 || g->height < 1 || g->width > MAX_MASK_SIDE
      || g->height > MAX_MASK_SIDE)
    why = "the mask size is outside 1 .. 65536";
  else if (!(g->w > 0) || !(g->h > 0) || !isfinite (g->x) || !isfinite (g->y)
      || !isfinite (g->w) || !isfinite (g->h))
    why = "the geometry's rectangle is empty or not finite";
  else if (r->memory != VIM_MEMORY_HOST)
    why = "host postprocessing writes host memory only (memory must be VIM_MEMORY_HOST)";
  else if (r->classes == NULL || r->classes_stride < (size_t) g->width)
    why = "classes is NULL or classes_stride < width";
  else if (r->confidence != NULL && r->confidence_stride < (size_t) g->width)
    why = "confidence_stride < width";
  if (why == NULL)
    return TRUE;
  g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
      "segmentation result for a %dx%d mask (%d classes): %s", g->width,
      g->height, c->num_classes, why);
  return FALSE;
}

gboolean
vim_segment_logits (const VimModel *model, const float *logits,
    const VimMaskGeometry *geometry, VimSegResult *result, GError **error)
{
  g_return_val_if_fail (model != NULL && result != NULL, FALSE);
  const VimModelConfig *c = &model->config;
  if (!check_segmenter (model, error))
    return FALSE;
  if (logits == NULL || geometry == NULL) {
    g_set_error (error, VIM_ERROR, VIM_ERROR_INVALID_ARGUMENT,
        "segment logits: NULL %s", logits == NULL ? "logits" : "geometry");
    return FALSE;
  }
  if (!check_result (c, geometry, result, error))
    return FALSE;
  const VimMaskGeometry g = *geometry;
  const int K = c->num_classes, gh = c->grid_h, gw = c->grid_w;
  const size_t plane = (size_t) gh * gw;
  VimSegSampling s;
  vim_seg_sampling_compute (c, &g, &s);

  Taps *cols = g_new (Taps, g.width);
  for (int x = 0; x < g.width; x++)
    cols[x] = taps_at (x, s.scale_x, s.offset_x, gw);
  double *v = g_new (double, K);
  guint64 *count = g_new0 (guint64, K);
  for (int y = 0; y < g.height; y++) {
    const Taps ty = taps_at (y, s.scale_y, s.offset_y, gh);
    const float *r0 = logits + (size_t) ty.i0 * gw, *r1 = logits + (size_t) ty.i1 * gw;
    uint8_t *cls_row = result->classes + (size_t) y * result->classes_stride;
    for (int x = 0; x < g.width; x++) {
      const Taps tx = cols[x];
      int best = 0;
      for (int k = 0; k < K; k++) {
        const size_t o = (size_t) k * plane;
        /* PyTorch's order of operations, so argmax matches it */
        v[k] = ty.l0 * (tx.l0 * r0[o + tx.i0] + tx.l1 * r0[o + tx.i1])
            + ty.l1 * (tx.l0 * r1[o + tx.i0] + tx.l1 * r1[o + tx.i1]);
        if (v[k] > v[best])   /* strict: the lowest index wins ties */
          best = k;
      }
      cls_row[x] = (uint8_t) best;
      count[best]++;
      if (result->confidence) {
        double sum = 0;
        for (int k = 0; k < K; k++)
          sum += exp (v[k] - v[best]);
        result->confidence[(size_t) y * result->confidence_stride + x] =
            (uint8_t) lround (255.0 / sum);
      }
    }
  }
  if (result->fractions) {
    const double total = (double) g.width * g.height;
    for (int k = 0; k < K; k++)
      result->fractions[k] = (float) (count[k] / total);
  }
  if (&result->geometry != geometry)
    result->geometry = g;
  g_free (count);
  g_free (v);
  g_free (cols);
  return TRUE;
}
