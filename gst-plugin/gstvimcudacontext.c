/* gst-vim plugin: answering CUDA context queries for the pipeline, for
 * the inference elements and vimoverlay alike.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstvimcudacontext.h"

#ifdef HAVE_GST_CUDA
#include <gst/cuda/gstcudautils.h>

gboolean
gst_vim_cuda_context_query (GstElement * element, GstQuery * query,
    GstCudaContext ** ctx)
{
  GstCudaContext *held = NULL;
  gboolean ret;

  /* a reference, so that the answer does not race a state change */
  GST_OBJECT_LOCK (element);
  if (*ctx)
    held = gst_object_ref (*ctx);
  GST_OBJECT_UNLOCK (element);
  ret = gst_cuda_handle_context_query (element, query, held);
  gst_clear_object (&held);
  return ret;
}
#endif
