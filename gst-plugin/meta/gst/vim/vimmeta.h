/* gst-vim result metadata: the one header applications include.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Link with `pkg-config --cflags --libs gstvimmeta-1.0`. The library holds
 * only the metas (no elements), so an application can read what vimclassify
 * and vimsegment attach without loading the plugin itself.
 */
#ifndef __GST_VIM_META_H__
#define __GST_VIM_META_H__

#include <gst/vim/vim-meta-prelude.h>
#include <gst/vim/vimclassificationmeta.h>
#include <gst/vim/vimsegmentationmeta.h>

#endif /* __GST_VIM_META_H__ */
