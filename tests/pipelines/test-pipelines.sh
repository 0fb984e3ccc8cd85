#!/bin/sh
# Runs one of the pipelines/ scripts headless on a generated clip (or, with
# --shared, on the first clip of ../shared/data/videos) and checks what it
# made. Exit 77 = skipped (no H.264 encoder, no GPU decoder, no shared clip).
#
#   tests/pipelines/test-pipelines.sh CASE
#   CASE: dry-run | live-camera | file-to-mp4 | uri | snapshot | snapshot-shared | gpu | bench
# Environment (set by meson): VIM_SEG_MODEL (tiny random segmenter),
# VIM_CLS_MODEL (tiny classifier), VIM_PYTHON (python3 with numpy),
# VIM_TEST_SHARED_DATA, GST_PLUGIN_PATH_1_0.
set -eu
case_=${1:?usage: $0 CASE}
P=$(cd "$(dirname "$0")/../../pipelines" && pwd)
py=${VIM_PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vim-pipelines.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail () { echo "FAIL: $*" >&2; exit 1; }
skip () { echo "SKIP: $*" >&2; exit 77; }

make_clip () {  # make_clip OUT: 45 frames of 320x240 H.264 in MP4
    if gst-inspect-1.0 --exists x264enc; then enc=x264enc
    elif gst-inspect-1.0 --exists openh264enc; then enc=openh264enc
    elif gst-inspect-1.0 --exists nvh264enc; then enc=nvh264enc
    else skip "no H.264 encoder (x264enc, openh264enc, nvh264enc)"; fi
    gst-launch-1.0 -q videotestsrc num-buffers=45 pattern=smpte ! \
        video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
        $enc ! h264parse ! mp4mux ! filesink location="$1" 2>/dev/null ||
        fail "could not encode the test clip with $enc"
    [ -s "$1" ] || fail "empty test clip"
}

count_frames () {  # count_frames MP4: video samples in the file
    gst-launch-1.0 -v filesrc location="$1" ! qtdemux ! fakesink silent=false 2>&1 | grep -c 'chain'
}

png_to_rgb () {  # png_to_rgb PNG RAW: "WIDTH HEIGHT" on stdout
    gst-launch-1.0 -q filesrc location="$1" ! pngdec ! videoconvert ! \
        video/x-raw,format=RGB ! filesink location="$2" >/dev/null
    gst-launch-1.0 -v filesrc location="$1" ! pngdec ! fakesink 2>&1 | \
        sed -n 's/.*width=(int)\([0-9]*\), height=(int)\([0-9]*\).*/\1 \2/p' | head -n 1
}

# share of pixels that differ between two RGB dumps of W x H
differing () {
    "$py" -c '
import sys, numpy as np
w, h = int(sys.argv[3]), int(sys.argv[4])
a = np.fromfile(sys.argv[1], np.uint8)
b = np.fromfile(sys.argv[2], np.uint8)
assert a.size == b.size, (a.size, b.size)
stride = a.size // h
a = a.reshape(h, stride)[:, :3 * w].reshape(h, w, 3)
b = b.reshape(h, stride)[:, :3 * w].reshape(h, w, 3)
print("%.4f" % (np.any(a != b, axis=2).mean()))' "$@"
}

run () {  # run LOG CMD...: the command, its output in LOG, fails on non-zero
    log=$1; shift
    rc=0
    "$@" > "$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || { cat "$log" >&2; fail "$* exited with $rc"; }
    if grep -q '^ERROR' "$log"; then cat "$log" >&2; fail "$*: error posted"; fi
}

common="--model $VIM_SEG_MODEL --device cpu"

case "$case_" in
dry-run)
    # every script assembles its pipeline without running it
    out=$(VIM_CLS_MODEL= "$P/live-camera-segment.sh" $common --sink fakesink --num-buffers 5 --dry-run 2>/dev/null)
    echo "$out" | grep -q 'vimsegment model-file=".*" device=cpu ! queue [^!]* ! vimoverlay show-legend=true ! videoconvert ! fakesink' ||
        fail "live-camera: $out"
    out=$("$P/uri-segment.sh" rtsp://camera.example/stream $common --sink fakesink --dry-run)
    echo "$out" | grep -q 'uridecodebin uri="rtsp://camera.example/stream"' || fail "uri: $out"
    echo "$out" | grep -q 'queue leaky=downstream' || fail "uri: live source without a leaky queue: $out"
    out=$("$P/uri-segment.sh" clip.mp4 $common --dry-run)
    echo "$out" | grep -q "uri=\"file://$PWD/clip.mp4\"" || fail "uri: local path: $out"
    out=$(VIM_CLS_MODEL= "$P/gpu-segment.sh" "$0" --model "$VIM_SEG_MODEL" --out x.mp4 --dry-run)
    echo "$out" | grep -q 'nvh264dec ! *"video/x-raw(memory:CUDAMemory)" ! queue .* ! vimsegment .* device=cuda ! queue [^!]* ! vimoverlay show-legend=true ! nvh264enc' ||
        fail "gpu: $out"
    out=$("$P/snapshot-overlay.sh" in.mp4 out.png 7 $common --classifier "$VIM_CLS_MODEL" --dry-run)
    echo "$out" | grep -q 'eos-after=9 ! vimsegment .* ! vimclassify .* ! vimoverlay' || fail "snapshot: $out"
    if "$P/file-segment-to-mp4.sh" 2>/dev/null; then fail "file-to-mp4 without arguments succeeded"; fi
    if VIM_SEG_MODEL= "$P/uri-segment.sh" x 2>/dev/null; then fail "no model but success"; fi
    echo "dry runs: ok"
    ;;
live-camera)
    run "$tmp/log" "$P/live-camera-segment.sh" $common --sink "fakesink" --num-buffers 12
    grep -qE 'camera: |videotestsrc instead' "$tmp/log" || fail "no source chosen"
    grep -q 'Got EOS' "$tmp/log" || fail "no EOS"
    echo "live-camera: $(grep -E 'camera: |videotestsrc instead' "$tmp/log"), EOS"
    ;;
file-to-mp4)
    make_clip "$tmp/in.mp4"
    run "$tmp/log" "$P/file-segment-to-mp4.sh" "$tmp/in.mp4" "$tmp/out.mp4" $common \
        --classifier "$VIM_CLS_MODEL"
    n=$(count_frames "$tmp/out.mp4")
    [ "$n" -eq 45 ] || fail "out.mp4 has $n frames, want 45"
    echo "file-to-mp4: $n frames in $(wc -c < "$tmp/out.mp4") bytes"
    ;;
uri)
    make_clip "$tmp/in.mp4"
    run "$tmp/log" "$P/uri-segment.sh" "file://$tmp/in.mp4" $common --sink "fakesink"
    grep -q 'Got EOS' "$tmp/log" || fail "no EOS"
    echo "uri: file:// played to EOS"
    ;;
snapshot|snapshot-shared)
    if [ "$case_" = snapshot ]; then
        make_clip "$tmp/in.mp4"
        clip=$tmp/in.mp4
    else
        d=${VIM_TEST_SHARED_DATA:-}/videos
        [ -d "$d" ] || skip "no $d"
        clip=$(ls "$d"/*.mp4 "$d"/*.mkv "$d"/*.webm 2>/dev/null | head -n 1)
        [ -n "$clip" ] || skip "no clip in $d"
    fi
    # the overlay drawn, and not drawn (alpha 0, no legend, no labels): the
    # same frame, so the drawing is all that differs
    run "$tmp/log1" "$P/snapshot-overlay.sh" "$clip" "$tmp/on.png" 20 $common \
        --classifier "$VIM_CLS_MODEL"
    run "$tmp/log2" "$P/snapshot-overlay.sh" "$clip" "$tmp/off.png" 20 $common \
        --overlay "alpha=0 show-legend=false show-labels=false"
    grep -q 'frame 20)' "$tmp/log1" || fail "not frame 20: $(tail -n 1 "$tmp/log1")"
    size=$(png_to_rgb "$tmp/on.png" "$tmp/on.rgb")
    size2=$(png_to_rgb "$tmp/off.png" "$tmp/off.rgb")
    [ -n "$size" ] && [ "$size" = "$size2" ] || fail "PNG sizes '$size' '$size2'"
    share=$(differing "$tmp/on.rgb" "$tmp/off.rgb" $size)
    # alpha 0.5 over the whole frame changes nearly every pixel
    "$py" -c "import sys; sys.exit(0 if float('$share') > 0.5 else 1)" ||
        fail "only $share of the pixels differ"
    echo "$case_: $(basename "$clip") frame 20, $size, overlay changed $share of the pixels"
    ;;
gpu)
    gst-inspect-1.0 --exists nvh264dec || skip "no nvh264dec"
    make_clip "$tmp/in.mp4"
    run "$tmp/log" "$P/gpu-segment.sh" "$tmp/in.mp4" --model "$VIM_SEG_MODEL" \
        --classifier "$VIM_CLS_MODEL" --sink "fakesink"
    grep -q 'Got EOS' "$tmp/log" || fail "no EOS"
    if gst-inspect-1.0 --exists nvh264enc; then
        run "$tmp/log2" "$P/gpu-segment.sh" "$tmp/in.mp4" --model "$VIM_SEG_MODEL" --out "$tmp/out.mp4"
        n=$(count_frames "$tmp/out.mp4")
        [ "$n" -eq 45 ] || fail "out.mp4 has $n frames, want 45"
    fi
    echo "gpu: ok"
    ;;
bench)
    gst-inspect-1.0 --exists nvh264dec || skip "no nvh264dec"
    # the benchmark's own 900-frame 1080p clip: long enough for fpsdisplaysink
    # averages (exit 3: no H.264 encoder, as on H100/H200, which lack NVENC)
    rc=0
    clip=$("$P/make-bench-clip.sh" "$tmp/bench-1080p.mp4") || rc=$?
    [ "$rc" -ne 3 ] || skip "no H.264 encoder for the 1080p clip"
    [ "$rc" -eq 0 ] || fail "make-bench-clip.sh exited with $rc"
    run "$tmp/log" "$P/bench-nvdec-segment.sh" "$clip" "$VIM_SEG_MODEL"
    cat "$tmp/log"
    grep -qE '^decode only: +[1-9][0-9.]* fps' "$tmp/log" || fail "no decode fps"
    grep -qE '^decode\+vimsegment\+vimoverlay: +[1-9][0-9.]* fps' "$tmp/log" || fail "no fps with the elements"
    grep -qE 'vimoverlay p50 [0-9.]+ p99 [0-9.]+' "$tmp/log" || fail "no latency"
    ;;
*)
    fail "unknown case $case_"
    ;;
esac
