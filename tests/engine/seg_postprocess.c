/* vim_segment_logits as a command, for check_segment_torch.py:
 *
 *   seg-postprocess MODEL LOGITS FRAME_W FRAME_H grid|frame|WxH OUT
 *
 * LOGITS holds one image's (K, grid_h, grid_w) float32 logits; OUT receives
 * the mask's classes (width x height bytes) followed by its confidence. */
#include <vim/vim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main (int argc, char **argv)
{
  if (argc != 7) {
    fprintf (stderr, "usage: seg-postprocess MODEL LOGITS FRAME_W FRAME_H grid|frame|WxH OUT\n");
    return 2;
  }
  GError *err = NULL;
  VimModel *m = vim_model_open (argv[1], &err);
  if (m == NULL) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (argv[2], &data, &len, &err)
      || len != vim_model_output_size (m) * sizeof (float)) {
    fprintf (stderr, "%s: %s\n", argv[2], err ? err->message : "wrong size");
    return 1;
  }
  VimMaskSpec spec = { VIM_MASK_SIZE_GRID, 0, 0 };
  if (strcmp (argv[5], "frame") == 0)
    spec.mode = VIM_MASK_SIZE_FRAME;
  else if (strcmp (argv[5], "grid") != 0) {
    spec.mode = VIM_MASK_SIZE_FIXED;
    if (sscanf (argv[5], "%dx%d", &spec.width, &spec.height) != 2)
      return 2;
  }
  VimMaskGeometry g;
  if (!vim_model_mask_geometry (m, atoi (argv[3]), atoi (argv[4]), &spec, &g, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  size_t n = (size_t) g.width * g.height;
  guint8 *out = g_malloc (2 * n);
  VimSegResult r = { VIM_MEMORY_HOST, out, g.width, out + n, g.width, NULL, { 0 } };
  if (!vim_segment_logits (m, (const float *) data, &g, &r, &err)
      || !g_file_set_contents (argv[6], (const char *) out, 2 * n, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  printf ("%d %d\n", g.width, g.height);
  g_free (out);
  g_free (data);
  vim_model_unref (m);
  return 0;
}
