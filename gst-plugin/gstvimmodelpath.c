/* gst-vim plugin: where the default models live.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A default model is looked up by file name, first in the directory the
 * models are installed to (VIM_MODELS_DIR, under the install prefix), then in
 * the source tree's models/ directory, so an uninstalled build finds models
 * placed there.
 */
#include "vim-build-config.h"
#include "gstvimmodelpath.h"

static const gchar *const search_dirs[] = {
  VIM_MODELS_DIR,
  VIM_SOURCE_MODELS_DIR,
};

/* Returns the path of the first existing @file_name in the search
 * directories, or NULL. */
gchar *
gst_vim_model_path_find (const gchar * file_name)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (search_dirs); i++) {
    gchar *path = g_build_filename (search_dirs[i], file_name, NULL);

    if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
      return path;
    g_free (path);
  }
  return NULL;
}

/* The path the default model has: where it was found, else where it is
 * installed (which does not exist then; loading it fails with a clear
 * error). */
gchar *
gst_vim_model_path_default (const gchar * file_name)
{
  gchar *path = gst_vim_model_path_find (file_name);

  if (path == NULL)
    path = g_build_filename (search_dirs[0], file_name, NULL);
  return path;
}

/* "A or B": the places searched, for error messages. */
gchar *
gst_vim_model_path_describe_search (const gchar * file_name)
{
  gchar *a = g_build_filename (search_dirs[0], file_name, NULL);
  gchar *b = g_build_filename (search_dirs[1], file_name, NULL);
  gchar *s = g_strdup_printf ("%s or %s", a, b);

  g_free (a);
  g_free (b);
  return s;
}
