#!/bin/sh
# Encodes the nvh264dec benchmarks' clip unless it exists: 900 frames of
# 1080p30 H.264 (videotestsrc ball) in MP4, with nvh264enc, else x264enc,
# else openh264enc (H100/H200 have NVDEC but no NVENC). Prints its path.
#
#   pipelines/make-bench-clip.sh [OUT.mp4]   (default $TMPDIR/vim-bench-1080p.mp4)
#
# Exit 3 when there is no H.264 encoder: give the benchmark a clip instead.
set -eu
clip=${1:-${TMPDIR:-/tmp}/vim-bench-1080p.mp4}
if [ ! -f "$clip" ]; then
    if gst-inspect-1.0 --exists nvh264enc; then enc="nvh264enc"
    elif gst-inspect-1.0 --exists x264enc; then enc="x264enc speed-preset=veryfast"
    elif gst-inspect-1.0 --exists openh264enc; then enc="openh264enc"
    else echo "$0: no H.264 encoder (nvh264enc, x264enc, openh264enc) to make the clip: give a CLIP" >&2; exit 3
    fi
    echo "encoding $clip with $enc" >&2
    gst-launch-1.0 -q videotestsrc num-buffers=900 pattern=ball ! \
        video/x-raw,format=NV12,width=1920,height=1080,framerate=30/1 ! \
        $enc ! h264parse ! mp4mux ! filesink location="$clip"
fi
echo "$clip"
