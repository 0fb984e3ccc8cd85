/* gst-vim plugin: Vision Mamba inference elements.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vim-build-config.h"
#include "gstvimelements.h"

#define PACKAGE "gst-vim"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (vimclassify, plugin);
  ret |= GST_ELEMENT_REGISTER (vimsegment, plugin);
  ret |= GST_ELEMENT_REGISTER (vimannotate, plugin);
  ret |= GST_ELEMENT_REGISTER (vimoverlay, plugin);

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, vim,
    "Vision Mamba inference: whole-frame classification and per-pixel "
    "segmentation with result metadata", plugin_init, VIM_VERSION,
    "LGPL", "gst-vim", "https://github.com/gst-vim/gst-vim")
