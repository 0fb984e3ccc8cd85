/* gst-vim plugin: where the default models live.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_MODEL_PATH_H__
#define __GST_VIM_MODEL_PATH_H__

#include <glib.h>

G_BEGIN_DECLS

/* File names of the models installed with the plugin (in VIM_MODELS_DIR). */
#define GST_VIM_DEFAULT_CLASSIFICATION_MODEL "vim-cifar10-classification.safetensors"
#define GST_VIM_DEFAULT_SEGMENTATION_MODEL "vim-camvid-segmentation.safetensors"

gchar *gst_vim_model_path_find (const gchar * file_name);
gchar *gst_vim_model_path_default (const gchar * file_name);
gchar *gst_vim_model_path_describe_search (const gchar * file_name);

G_END_DECLS

#endif /* __GST_VIM_MODEL_PATH_H__ */
