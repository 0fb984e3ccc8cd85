/* gst-vim GStreamer tests: shared helpers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __VIM_TEST_UTIL_H__
#define __VIM_TEST_UTIL_H__

#include <gst/gst.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <vim/vim.h>

G_BEGIN_DECLS

/* The model every test uses (VIM_TEST_MODEL, made by the build). */
const gchar *vim_test_model_path (void);
const gchar *vim_test_labels_path (void);

/* A deterministic picture (gradients and blocks that depend on @seed) in
 * any format, converted from RGB by the video library. */
GstBuffer *vim_test_make_frame (GstVideoFormat format, gint width,
    gint height, guint seed);

/* The engine's softmax top-k on the pixels of @buffer, computed here
 * directly with vim.h. Returns how many were written to @out. */
gint vim_test_engine_top_k (const GstVideoInfo * info, GstBuffer * buffer,
    gint k, gfloat threshold, VimClassScore * out);

/* A bus attached to @element (outside any pipeline) to read its messages. */
GstBus *vim_test_attach_bus (GstElement * element);
/* Takes the bus off the element again and drops it. */
void vim_test_detach_bus (GstElement * element, GstBus * bus);

/* Sets @element to @state and returns the error or warning posted on its
 * bus, if any. */
GstStateChangeReturn vim_test_set_state (GstElement * element, GstState state,
    GstBus * bus, GError ** error, gchar ** debug);

/* Whether an element factory of that name is registered. */
gboolean vim_test_have_element (const gchar * factory);

/* vim_test_make_frame() as frame @i of a 30 fps stream (pts, dts, duration). */
GstBuffer *vim_test_frame_at (GstVideoFormat format, gint width, gint height,
    guint seed, guint i);

/* NULL -> READY -> NULL -> READY must succeed (no model needed), then
 * READY -> PAUSED must fail with an error of @domain/@code whose message
 * contains @in_message (unless NULL); the element ends in NULL. */
void vim_test_assert_start_fails (GstElement * e, GQuark domain, gint code,
    const gchar * in_message);

/* Sets "name=value name=value ..." (@props may be NULL) on @element. */
void vim_test_set_props (GstElement * element, const gchar * props);

/* A harness around @element (which it refs) with raw video of @format,
 * @width x @height at 30 fps as the caps it pushes. */
GstHarness *vim_test_video_harness (GstElement * element,
    GstVideoFormat format, gint width, gint height);

G_END_DECLS

#endif /* __VIM_TEST_UTIL_H__ */
