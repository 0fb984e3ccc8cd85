/* gst-vim plugin: class masks written as 8-bit grayscale PNG files, through
 * libpng (what every image tool reads; a class id is the gray value).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstvimmaskpng.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <png.h>
#include <glib/gstdio.h>

typedef struct
{
  gchar message[256];
} PngErrorCtx;

static void
png_error_fn (png_structp png, png_const_charp msg)
{
  PngErrorCtx *ctx = png_get_error_ptr (png);

  g_strlcpy (ctx->message, msg, sizeof ctx->message);
  png_longjmp (png, 1);
}

static void
png_warning_fn (png_structp png, png_const_charp msg)
{
}

/* The libpng part; returns FALSE with ctx->message set on failure. Kept
 * apart so that nothing with automatic storage is live across setjmp. */
static gboolean
encode (FILE * f, const guint8 * pixels, guint width, guint height,
    gsize stride, PngErrorCtx * ctx)
{
  png_structp png;
  png_infop info;
  guint y;

  png = png_create_write_struct (PNG_LIBPNG_VER_STRING, ctx, png_error_fn,
      png_warning_fn);
  if (png == NULL) {
    g_strlcpy (ctx->message, "out of memory", sizeof ctx->message);
    return FALSE;
  }
  info = png_create_info_struct (png);
  if (info == NULL) {
    png_destroy_write_struct (&png, NULL);
    g_strlcpy (ctx->message, "out of memory", sizeof ctx->message);
    return FALSE;
  }
  if (setjmp (png_jmpbuf (png))) {
    png_destroy_write_struct (&png, &info);
    return FALSE;
  }
  png_init_io (png, f);
  /* masks are small and written per frame: favour speed over size */
  png_set_compression_level (png, 1);
  png_set_IHDR (png, info, width, height, 8, PNG_COLOR_TYPE_GRAY,
      PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
      PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  for (y = 0; y < height; y++)
    png_write_row (png, (png_const_bytep) (pixels + (gsize) y * stride));
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  return TRUE;
}

gboolean
gst_vim_write_mask_png (const gchar * path, const guint8 * pixels,
    guint width, guint height, gsize stride, GError ** error)
{
  PngErrorCtx ctx = { "" };
  gchar *tmp;
  FILE *f;
  gboolean ok;

  g_return_val_if_fail (path != NULL && pixels != NULL, FALSE);
  if (width == 0 || height == 0 || stride < width) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
        "mask of %ux%u with stride %" G_GSIZE_FORMAT, width, height, stride);
    return FALSE;
  }
  tmp = g_strconcat (path, ".tmp", NULL);
  f = g_fopen (tmp, "wb");
  if (f == NULL) {
    int e = errno;

    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (e),
        "cannot create %s: %s", tmp, g_strerror (e));
    g_free (tmp);
    return FALSE;
  }
  ok = encode (f, pixels, width, height, stride, &ctx);
  if (fclose (f) != 0 && ok) {
    int e = errno;

    g_strlcpy (ctx.message, g_strerror (e), sizeof ctx.message);
    ok = FALSE;
  }
  if (ok && g_rename (tmp, path) != 0) {
    int e = errno;

    g_strlcpy (ctx.message, g_strerror (e), sizeof ctx.message);
    ok = FALSE;
  }
  if (!ok) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
        "cannot write %s: %s", path, ctx.message);
    g_unlink (tmp);
  }
  g_free (tmp);
  return ok;
}
