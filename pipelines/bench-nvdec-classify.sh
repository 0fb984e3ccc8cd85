#!/bin/sh
# Frames per second of 1080p H.264 decoding on the GPU, with and without
# vimclassify on the decoded memory:CUDAMemory frames (issue 4, acceptance 3).
#
#   pipelines/bench-nvdec-classify.sh MODEL [CLIP.mp4] [extra vimclassify properties]
#
# Without CLIP a 1080p30 H.264 clip of 900 frames is encoded first
# (nvh264enc, else x264enc, else openh264enc; H100/H200 have no NVENC). Each
# pipeline runs 3 times, the best run counts. Needs GST_PLUGIN_PATH to reach
# the vim plugin.
set -eu

model=${1:?usage: $0 MODEL [CLIP.mp4] [vimclassify properties...]}
shift
clip=${1:-}
[ $# -gt 0 ] && shift
props="$*"

if [ -z "$clip" ]; then
    clip=${TMPDIR:-/tmp}/vim-bench-1080p.mp4
    if [ ! -f "$clip" ]; then
        if gst-inspect-1.0 nvh264enc >/dev/null 2>&1; then enc="nvh264enc"
        elif gst-inspect-1.0 x264enc >/dev/null 2>&1; then enc="x264enc speed-preset=veryfast"
        elif gst-inspect-1.0 openh264enc >/dev/null 2>&1; then enc="openh264enc"
        else echo "$0: no H.264 encoder (nvh264enc, x264enc, openh264enc) to make the clip: give a CLIP" >&2; exit 3
        fi
        echo "encoding $clip with $enc" >&2
        gst-launch-1.0 -q videotestsrc num-buffers=900 pattern=ball ! \
            video/x-raw,format=NV12,width=1920,height=1080,framerate=30/1 ! \
            $enc ! h264parse ! mp4mux ! filesink location="$clip"
    fi
fi

# average fps of one run, as fpsdisplaysink measures it (process start-up,
# model loading and CUDA initialisation excluded)
fps() {
    gst-launch-1.0 -v "$@" ! fpsdisplaysink video-sink=fakesink text-overlay=false \
        sync=false fps-update-interval=500 2>/dev/null | \
        sed -n 's/.*average: \([0-9.]*\).*/\1/p' | tail -1
}

best() {  # best of 3 runs
    b=0
    for i in 1 2 3; do
        f=$(fps "$@")
        if [ -n "$f" ] && awk "BEGIN { exit !($f > $b) }"; then b=$f; fi
    done
    echo "$b"
}

echo "negotiated caps into vimclassify:" >&2
gst-launch-1.0 -v filesrc location="$clip" num-buffers=50 ! qtdemux ! h264parse ! nvh264dec ! \
    vimclassify name=c model-file="$model" device=cuda $props ! fakesink 2>&1 | \
    grep 'c.GstPad:sink: caps' | head -1 >&2

base=$(best filesrc location="$clip" ! qtdemux ! h264parse ! nvh264dec)
with=$(best filesrc location="$clip" ! qtdemux ! h264parse ! nvh264dec ! \
    vimclassify model-file="$model" device=cuda $props)

echo "clip: $clip"
echo "decode only:        $base fps"
echo "decode+vimclassify: $with fps"
echo "ratio:              $(awk "BEGIN { printf \"%.3f\", $with / $base }") (acceptance: >= 0.90)"
