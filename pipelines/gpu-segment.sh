#!/bin/sh
# Segmentation on the GPU without a copy to the host: the hardware decoder's
# memory:CUDAMemory frames go through vimsegment and vimoverlay in place
# and stay in CUDA memory until the sink (or the hardware encoder):
#
#   filesrc ! parsebin ! nvh264dec ! video/x-raw(memory:CUDAMemory) ! queue !
#       vimsegment device=cuda ! queue ! vimoverlay ! cudadownload ! videoconvert ! autovideosink
#
#   pipelines/gpu-segment.sh IN.mp4 [--out OUT.mp4] [options]
#
# --out writes H.264 with nvh264enc straight from CUDA memory instead of
# showing the video. IN must be H.264 (nvh264dec).
# Options: --model FILE (or VIM_SEG_MODEL), --classifier FILE (or
# VIM_CLS_MODEL), --sink "ELEMENTS" (gets CUDA memory; default
# "cudadownload ! videoconvert ! autovideosink"), --num-buffers N,
# --overlay "vimoverlay properties", --dry-run; --device is cuda.
set -eu
. "$(dirname "$0")/segment-common.sh"
device=cuda
sink="cudadownload ! videoconvert ! autovideosink"
vim_parse_args "$@"
in=$(vim_arg 1)
if [ -z "$in" ]; then
    echo "usage: $0 IN.mp4 [--out OUT.mp4] [options]" >&2
    exit 2
fi
[ -f "$in" ] || { echo "$0: no such file: $in" >&2; exit 1; }
for e in nvh264dec cudadownload; do
    [ "$dry_run" = 1 ] || vim_have $e || { echo "$0: no $e (GStreamer nvcodec plugin and an NVIDIA GPU needed)" >&2; exit 3; }
done
if [ -n "$out" ]; then
    sink="nvh264enc ! h264parse ! mp4mux ! filesink location=\"$out\""
fi

limit=""
[ "$num_buffers" -ge 0 ] && limit="identity eos-after=$num_buffers ! "
# the queues let the decoder (NVDEC), vimsegment and vimoverlay work on
# three frames at once instead of one after the other in one thread
# (bench-nvdec-segment.sh: 0.99 of decode-only fps instead of 0.79)
vim_launch "filesrc location=\"$in\" ! parsebin ! nvh264dec ! \
    \"video/x-raw(memory:CUDAMemory)\" ! queue max-size-buffers=4 max-size-bytes=0 \
    max-size-time=0 ! $limit$(vim_infer_chain) ! $sink"
