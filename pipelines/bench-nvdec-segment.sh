#!/bin/sh
# Frames per second of H.264 decoding on the GPU alone and with
# vimsegment ! vimoverlay on the decoded memory:CUDAMemory frames, in the
# same run, and the per-frame latency the two elements add (p50/p99, from
# the latency tracer's element latencies).
#
#   pipelines/bench-nvdec-segment.sh [CLIP.mp4] MODEL [extra vimsegment properties]
#
# OVERLAY_PROPS adds vimoverlay properties (for example show-legend=true).
# Four pipelines: decode only; decoder ! vimsegment ! vimoverlay in one
# streaming thread; with a queue after the decoder; and with queues after the
# decoder and after vimsegment. Latencies are taken in the one-thread and in
# the three-thread pipeline.
#
# Without CLIP (empty string or a model file as first argument) a 1080p30
# H.264 clip of 900 frames is encoded first (make-bench-clip.sh). Each fps
# pipeline runs 3 times, the best run counts. Needs GST_PLUGIN_PATH to reach
# the vim plugin when it is not installed.
set -eu

case "${1:-}" in
    *.safetensors) clip="" ;;
    *) clip=${1:-}; shift ;;
esac
model=${1:?usage: $0 [CLIP.mp4] MODEL [vimsegment properties...]}
shift
props="$*"

for e in nvh264dec vimsegment vimoverlay; do
    gst-inspect-1.0 $e >/dev/null 2>&1 || { echo "$0: no $e" >&2; exit 3; }
done

# without a clip, the benchmark's own (encoded once, then reused)
if [ -z "$clip" ]; then
    clip=$("$(dirname "$0")/make-bench-clip.sh") || exit 3
fi

decode="filesrc location=$clip ! parsebin ! nvh264dec"
seg="vimsegment name=seg model-file=$model device=cuda $props"
ovl="vimoverlay name=ovl ${OVERLAY_PROPS:-}"
elements="$seg ! $ovl"
queue="queue max-size-buffers=4 max-size-bytes=0 max-size-time=0"
# with a queue after the decoder and one between the elements, decoding,
# inference and blending run in three streaming threads at once
threaded="$queue ! $seg ! $queue ! $ovl"

# average fps of one run, as fpsdisplaysink measures it (process start-up,
# model loading and CUDA initialisation excluded)
fps() {
    gst-launch-1.0 -v $1 ! fpsdisplaysink video-sink=fakesink text-overlay=false \
        sync=false fps-update-interval=500 2>/dev/null | \
        sed -n 's/.*average: \([0-9.]*\).*/\1/p' | tail -1
}

best() {  # best of 3 runs
    b=0
    for i in 1 2 3; do
        f=$(fps "$1")
        if [ -n "$f" ] && awk "BEGIN { exit !($f > $b) }"; then b=$f; fi
    done
    echo "$b"
}

echo "negotiated caps into vimsegment and vimoverlay:" >&2
gst-launch-1.0 -v $decode ! identity eos-after=30 ! $elements ! fakesink 2>&1 | \
    grep -E '(seg|ovl).GstPad:sink: caps' | head -2 >&2 || true

base=$(best "$decode")
with=$(best "$decode ! $elements")
# with a queue: decoding overlaps inference (two streaming threads)
queued=$(best "$decode ! $queue ! $elements")
pipelined=$(best "$decode ! $threaded")

# per-frame time inside each element (sink pad in -> src pad out), ns
log=$(mktemp "${TMPDIR:-/tmp}/vim-latency.XXXXXX")
element_times() {  # element_times NAME: the element's latencies in frame order, one a line
    grep 'element-latency' "$log" | grep "element=(string)$1[,;]" | \
        sed -n 's/.*time=(guint64)\([0-9]*\).*/\1/p'
}
pct() {  # pct FILE P: the P-th percentile in ms
    sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR;
        printf "%.2f", v[i] / 1e6 }'
}
latency() {  # latency ELEMENTS: one line of p50/p99 per element and for both
    GST_TRACERS="latency(flags=element)" GST_DEBUG="GST_TRACER:7" GST_DEBUG_NO_COLOR=1 \
        gst-launch-1.0 $decode ! $1 ! fakesink sync=false >/dev/null 2>"$log" || true
    element_times seg > "$log.seg"
    element_times ovl > "$log.ovl"
    paste "$log.seg" "$log.ovl" | awk 'NF == 2 { print $1 + $2 }' > "$log.sum"
    echo "($(wc -l < "$log.sum") frames): " \
        "vimsegment p50 $(pct "$log.seg" 50) p99 $(pct "$log.seg" 99);" \
        "vimoverlay p50 $(pct "$log.ovl" 50) p99 $(pct "$log.ovl" 99);" \
        "both p50 $(pct "$log.sum" 50) p99 $(pct "$log.sum" 99)"
}
lat_one=$(latency "$elements")
lat_threaded=$(latency "$threaded")

ratio() { awk "BEGIN { if ($base > 0) printf \"%.3f\", $1 / $base; else print \"n/a\" }"; }

echo "clip: $clip"
echo "decode only:                  $base fps"
echo "decode+vimsegment+vimoverlay: $with fps"
echo "ratio:                        $(ratio "$with")"
echo "decode+queue+elements:        $queued fps (ratio $(ratio "$queued"))"
echo "decode+queue+seg+queue+ovl:   $pipelined fps (ratio $(ratio "$pipelined"))"
echo "latency added per frame (ms), one thread $lat_one"
echo "latency added per frame (ms), three threads $lat_threaded"
rm -f "$log" "$log.seg" "$log.ovl" "$log.sum"
