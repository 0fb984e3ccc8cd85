#!/bin/sh
# Frames per second of 1080p H.264 decoding on the GPU, with and without
# vimclassify on the decoded memory:CUDAMemory frames (issue 4, acceptance 3).
#
#   pipelines/bench-nvdec-classify.sh MODEL [CLIP.mp4] [extra vimclassify properties]
#
# Without CLIP a 1080p30 H.264 clip of 900 frames is encoded first
# (make-bench-clip.sh). Each pipeline runs 3 times, the best run counts.
# Needs GST_PLUGIN_PATH to reach the vim plugin.
set -eu

model=${1:?usage: $0 MODEL [CLIP.mp4] [vimclassify properties...]}
shift
clip=${1:-}
[ $# -gt 0 ] && shift
props="$*"

# without a clip, the benchmark's own (encoded once, then reused)
if [ -z "$clip" ]; then
    clip=$("$(dirname "$0")/make-bench-clip.sh") || exit 3
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
