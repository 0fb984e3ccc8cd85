#!/bin/sh
# Segments what a URI plays (rtsp://, http(s)://, file://, or a local path)
# and shows it:
#
#   uridecodebin uri=URI ! videoconvert ! vimsegment ! vimoverlay ! videoconvert ! autovideosink
#
#   pipelines/uri-segment.sh URI [options]
#
# Options: --model FILE (or VIM_SEG_MODEL), --classifier FILE (or
# VIM_CLS_MODEL), --device auto|cpu|cuda, --sink "ELEMENTS", --num-buffers N,
# --overlay "vimoverlay properties", --dry-run.
# Live sources (RTSP, cameras over HTTP): a leaky queue drops frames instead
# of letting a slow model fall behind.
set -eu
. "$(dirname "$0")/segment-common.sh"
vim_parse_args "$@"
uri=$(vim_arg 1)
if [ -z "$uri" ]; then
    echo "usage: $0 URI [options]" >&2
    exit 2
fi
uri=$(vim_uri "$uri")

queue="queue"
case "$uri" in
    rtsp://*|rtsps://*|http://*|https://*|udp://*|srt://*) queue="queue leaky=downstream max-size-buffers=2" ;;
esac
limit=""
[ "$num_buffers" -ge 0 ] && limit="identity eos-after=$num_buffers ! "
vim_launch "uridecodebin uri=\"$uri\" caps=\"video/x-raw(ANY)\" expose-all-streams=false ! videoconvert ! $limit$queue ! \
    $(vim_infer_chain) ! videoconvert ! $sink"
