#!/usr/bin/env python3
"""gst-vim example: read vimclassify's results from Python.

    python3 vim-classify-messages.py [--model FILE] [--frames N] [--interval N] [FILE|URI]

Python cannot read a custom C GstMeta without bindings, so vimclassify posts
its result as an element message on the bus when post-messages=true. The
message is a GstStructure named "vim-classification":

    frame-number  (guint64)  number of the frame since the element started
    timestamp     (guint64)  buffer PTS in ns (stream-time, running-time, duration too)
    fresh         (boolean)  the model ran on this frame (False: result carried over)
    age           (guint)    frames since the result was computed
    model         (string)   model name
    top-label     (string)   best class label ("" when none passed the threshold)
    top-class-id  (int)      best class id (-1 when none)
    top-score     (double)   its softmax probability
    labels, class-ids, scores  (GstValueArray)  the top-k, best first

The scalar fields read with plain PyGObject. The arrays need the GStreamer
Python overrides (python3-gst-1.0); without them this script falls back to
parsing the structure's string form.

Needs: python3-gi and gir1.2-gstreamer-1.0 (apt), plus the vim plugin on
GST_PLUGIN_PATH.
"""
import argparse
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def top_k(s):
    """The (label, class id, score) triples of a vim-classification structure."""
    try:
        labels = list(s.get_value("labels"))
        ids = list(s.get_value("class-ids"))
        scores = list(s.get_value("scores"))
        return list(zip(labels, ids, scores))
    except (TypeError, ValueError):
        # No Gst overrides: GstValueArray is not converted. Parse the text
        # form "labels=(string)< a, b >, class-ids=(int)< 1, 2 >, ...".
        text = s.to_string()

        def field(name):
            start = text.index(name + "=")
            inner = text[text.index("<", start) + 1:text.index(">", start)]
            return [v.strip().strip('"') for v in inner.split(",") if v.strip()]

        return list(zip(field("labels"), map(int, field("class-ids")),
                        map(float, field("scores"))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", nargs="?", help="video file or URI (default: videotestsrc)")
    ap.add_argument("--model", help="gst-vim classification model (default: the installed one)")
    ap.add_argument("--frames", type=int, default=30, help="videotestsrc frames")
    ap.add_argument("--interval", type=int, default=1, help="inference-interval")
    args = ap.parse_args()

    Gst.init(None)
    if args.input:
        uri = args.input if Gst.uri_is_valid(args.input) else Gst.filename_to_uri(
            os.path.abspath(args.input))
        source = f'uridecodebin uri="{uri}"'
    else:
        source = f"videotestsrc num-buffers={args.frames} pattern=ball"
    model = f'model-file="{args.model}"' if args.model else ""
    pipeline = Gst.parse_launch(
        f"{source} ! videoconvert ! vimclassify {model} top-k=3 post-messages=true "
        f"inference-interval={args.interval} ! fakesink sync=false")

    loop = GLib.MainLoop()
    status = {"frames": 0, "error": False}

    def on_message(bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s is not None and s.get_name() == "vim-classification":
                _, frame = s.get_uint64("frame-number")
                _, pts = s.get_uint64("timestamp")
                _, fresh = s.get_boolean("fresh")
                _, age = s.get_uint("age")
                classes = " | ".join(f"{lab} {score:.3f}" for lab, _, score in top_k(s))
                stale = "" if fresh else f"  (stale, {age} frames old)"
                print(f"frame {frame:<5} pts {pts / Gst.SECOND:9.3f}s  {classes}{stale}")
                status["frames"] += 1
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error from {msg.src.get_name()}: {err.message}\n{debug}", file=sys.stderr)
            status["error"] = True
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    finally:
        pipeline.set_state(Gst.State.NULL)
    return 1 if status["error"] or status["frames"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
