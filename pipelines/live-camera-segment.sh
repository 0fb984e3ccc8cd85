#!/bin/sh
# Live segmentation of the first camera (/dev/video*), drawn on the picture:
#
#   v4l2src ! videoconvert ! vimsegment ! vimoverlay ! videoconvert ! autovideosink
#
# Falls back to a live videotestsrc when there is no camera, so it runs
# anywhere (and headless: --sink fakesink --num-buffers 30).
#
#   pipelines/live-camera-segment.sh [--camera /dev/videoN] [options]
#
# Options: --model FILE (or VIM_SEG_MODEL), --classifier FILE (or
# VIM_CLS_MODEL), --device auto|cpu|cuda, --sink "ELEMENTS", --num-buffers N,
# --overlay "vimoverlay properties", --dry-run. Needs GST_PLUGIN_PATH to
# reach the vim plugin when it is not installed.
set -eu
camera=""
if [ "${1:-}" = "--camera" ]; then camera=$2; shift 2; fi
. "$(dirname "$0")/segment-common.sh"
vim_parse_args "$@"

if [ -z "$camera" ]; then
    for d in /dev/video*; do
        [ -c "$d" ] || continue
        # a capture node, not a metadata or output one
        if gst-launch-1.0 -q v4l2src device="$d" num-buffers=1 ! fakesink >/dev/null 2>&1; then
            camera=$d
            break
        fi
    done
fi

if [ -n "$camera" ]; then
    echo "camera: $camera" >&2
    src="v4l2src device=$camera num-buffers=$num_buffers"
else
    echo "no camera found: videotestsrc instead" >&2
    src="videotestsrc is-live=true pattern=ball num-buffers=$num_buffers ! video/x-raw,width=640,height=480,framerate=30/1"
fi

# the inference runs on every frame (batch-size 1); a leaky queue drops
# frames rather than letting a slow model lag the picture behind
vim_launch "$src ! videoconvert ! queue leaky=downstream max-size-buffers=2 ! \
    $(vim_infer_chain) ! videoconvert ! $sink"
