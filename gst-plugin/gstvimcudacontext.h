/* gst-vim plugin: answering CUDA context queries for the pipeline.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_VIM_CUDA_CONTEXT_H__
#define __GST_VIM_CUDA_CONTEXT_H__

#ifdef HAVE_GST_CUDA
#include <gst/gst.h>
#include <gst/cuda/gstcudacontext.h>

G_BEGIN_DECLS

/* Answers a GST_QUERY_CONTEXT with the element's CUDA context, which the
 * element keeps in *ctx under its object lock (NULL until it has one).
 * Returns TRUE when the query was answered. */
gboolean gst_vim_cuda_context_query (GstElement * element, GstQuery * query,
    GstCudaContext ** ctx);

G_END_DECLS
#endif /* HAVE_GST_CUDA */

#endif /* __GST_VIM_CUDA_CONTEXT_H__ */
