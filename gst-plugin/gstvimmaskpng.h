/* gst-vim plugin: class masks written as 8-bit grayscale PNG files.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_MASK_PNG_H__
#define __GST_VIM_MASK_PNG_H__

#include <glib.h>

G_BEGIN_DECLS

/* Writes width x height bytes (rows stride bytes apart) to path as a
 * grayscale PNG: first under a temporary name beside it, then renamed, so
 * that path never holds a partial file. */
gboolean gst_vim_write_mask_png (const gchar * path, const guint8 * pixels,
    guint width, guint height, gsize stride, GError ** error);

G_END_DECLS

#endif /* __GST_VIM_MASK_PNG_H__ */
