#!/bin/sh
# Segments a video file and writes the overlaid video as H.264 MP4:
#
#   filesrc ! decodebin ! videoconvert ! vimsegment ! vimoverlay ! videoconvert !
#       x264enc (else openh264enc, nvh264enc) ! h264parse ! mp4mux ! filesink
#
#   pipelines/file-segment-to-mp4.sh IN OUT.mp4 [options]
#
# Options: --model FILE (or VIM_SEG_MODEL), --classifier FILE (or
# VIM_CLS_MODEL), --device auto|cpu|cuda, --num-buffers N (frames to keep),
# --overlay "vimoverlay properties", --dry-run.
set -eu
. "$(dirname "$0")/segment-common.sh"
vim_parse_args "$@"
in=$(vim_arg 1)
out=$(vim_arg 2)
if [ -z "$in" ] || [ -z "$out" ]; then
    echo "usage: $0 IN OUT.mp4 [options]" >&2
    exit 2
fi
[ -f "$in" ] || { echo "$0: no such file: $in" >&2; exit 1; }
enc=$(vim_h264_encoder)

limit=""
[ "$num_buffers" -ge 0 ] && limit="identity eos-after=$num_buffers ! "
vim_launch "filesrc location=\"$in\" ! decodebin caps=\"video/x-raw(ANY)\" expose-all-streams=false ! videoconvert ! $limit\
    $(vim_infer_chain) ! videoconvert ! $enc ! h264parse ! mp4mux ! \
    filesink location=\"$out\""
