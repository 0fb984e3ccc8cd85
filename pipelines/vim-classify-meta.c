/* gst-vim example: read vimclassify's results from an application.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   vim-classify-meta [--model FILE] [--frames N] [--interval N] [FILE|URI]
 *
 * Decodes FILE (or URI), or without one a videotestsrc pattern, through
 * vimclassify into an appsink, and prints the GstVimClassificationMeta of
 * every frame:
 *
 *   frame 12  pts 0:00:00.400000000  class_3 0.412 | class_7 0.201 | ...  (stale, 2 frames old)
 *
 * Build against the metadata library only: the elements are loaded by
 * GStreamer as usual.
 *
 *   cc vim-classify-meta.c $(pkg-config --cflags --libs gstreamer-app-1.0 gstvimmeta-1.0)
 *
 * The same meta can be read from a pad probe on any pad downstream of
 * vimclassify (gst_pad_add_probe with GST_PAD_PROBE_TYPE_BUFFER, then
 * gst_buffer_get_vim_classification_meta on GST_PAD_PROBE_INFO_BUFFER).
 * Exits with 1 when a frame came without meta or the pipeline failed.
 */
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/vim/vimmeta.h>

static void
print_meta (GstBuffer * buf, const GstVimClassificationMeta * meta)
{
  GString *line = g_string_new (NULL);
  guint i;

  g_string_append_printf (line, "frame %-5" G_GUINT64_FORMAT " pts %"
      GST_TIME_FORMAT " ", meta->frame_number,
      GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
  for (i = 0; i < meta->n_results; i++)
    g_string_append_printf (line, "%s %s %.3f", i ? " |" : "",
        meta->results[i].label ? meta->results[i].label : "?",
        meta->results[i].score);
  if (meta->n_results == 0)
    g_string_append (line, " (no class above the threshold)");
  if (!meta->fresh)
    g_string_append_printf (line, "  (stale, %u frame%s old)", meta->age,
        meta->age == 1 ? "" : "s");
  g_print ("%s\n", line->str);
  g_string_free (line, TRUE);
}

int
main (int argc, char **argv)
{
  gchar *model = NULL;
  gint frames = 30, interval = 1;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
        "gst-vim classification model (default: the installed one)", "FILE"},
    {"frames", 'n', 0, G_OPTION_ARG_INT, &frames,
        "Frames of videotestsrc when no input is given", "N"},
    {"interval", 'i', 0, G_OPTION_ARG_INT, &interval,
        "vimclassify inference-interval", "N"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("[FILE|URI]");
  GError *err = NULL;
  gchar *source, *launch, *model_prop;
  GstElement *pipeline, *sink;
  GstSample *sample;
  GstMessage *msg;
  GstBus *bus;
  guint n = 0, missing = 0;
  int ret = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("%s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);

  if (argc > 1) {
    gchar *uri = gst_uri_is_valid (argv[1]) ? g_strdup (argv[1]) :
        gst_filename_to_uri (argv[1], NULL);
    source = g_strdup_printf ("uridecodebin uri=\"%s\"", uri);
    g_free (uri);
  } else {
    source = g_strdup_printf ("videotestsrc num-buffers=%d pattern=ball", frames);
  }
  model_prop = model ? g_strdup_printf ("model-file=\"%s\"", model) :
      g_strdup ("");
  launch = g_strdup_printf ("%s ! videoconvert ! vimclassify %s top-k=3 "
      "inference-interval=%d ! appsink name=sink sync=false", source,
      model_prop, interval);

  pipeline = gst_parse_launch (launch, &err);
  if (!pipeline) {
    g_printerr ("%s: %s\n", launch, err->message);
    return 1;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  while ((sample = gst_app_sink_pull_sample (GST_APP_SINK (sink)))) {
    GstBuffer *buf = gst_sample_get_buffer (sample);
    GstVimClassificationMeta *meta =
        gst_buffer_get_vim_classification_meta (buf);

    if (meta)
      print_meta (buf, meta);
    else
      missing++;
    n++;
    gst_sample_unref (sample);
  }

  /* EOS, or an error (a missing model, say) */
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (msg) {
    GError *perr = NULL;
    gchar *debug = NULL;

    gst_message_parse_error (msg, &perr, &debug);
    g_printerr ("error from %s: %s\n%s\n", GST_OBJECT_NAME (msg->src),
        perr->message, debug ? debug : "");
    g_clear_error (&perr);
    g_free (debug);
    gst_message_unref (msg);
    ret = 1;
  }
  gst_object_unref (bus);
  if (missing) {
    g_printerr ("%u of %u frames had no GstVimClassificationMeta\n", missing,
        n);
    ret = 1;
  }
  if (n == 0)
    ret = 1;

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (launch);
  g_free (model_prop);
  g_free (source);
  g_free (model);
  return ret;
}
