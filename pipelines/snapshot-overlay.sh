#!/bin/sh
# Writes one overlaid frame of a video as PNG: the segmentation mask with a
# legend and, with a classifier, the top classes (the acceptance picture).
#
#   uridecodebin ! videoconvert ! identity eos-after=FRAME+2 ! vimsegment !
#       [vimclassify !] vimoverlay ! videoconvert ! pngenc ! multifilesink
#
#   pipelines/snapshot-overlay.sh IN OUT.png [FRAME] [options]
#
# IN: a file or a URI. FRAME: 0-based index of the frame (default 30; the
# last frame when the video is shorter).
# Options: --model FILE (or VIM_SEG_MODEL), --classifier FILE (or
# VIM_CLS_MODEL), --device auto|cpu|cuda, --overlay "vimoverlay
# properties" (default show-legend=true), --dry-run.
set -eu
. "$(dirname "$0")/segment-common.sh"
vim_parse_args "$@"
in=$(vim_arg 1)
png=$(vim_arg 2)
frame=$(vim_arg 3)
frame=${frame:-30}
if [ -z "$in" ] || [ -z "$png" ]; then
    echo "usage: $0 IN OUT.png [FRAME] [options]" >&2
    exit 2
fi
case "$frame" in ''|*[!0-9]*) echo "$0: FRAME must be a number" >&2; exit 2 ;; esac

# the frames up to FRAME are written, numbered from 0 (identity's
# eos-after is not exact about the last frame it passes: a few more)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vim-snapshot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
vim_launch "uridecodebin uri=\"$(vim_uri "$in")\" caps=\"video/x-raw(ANY)\" expose-all-streams=false ! \
    videoconvert ! identity eos-after=$((frame + 2)) ! $(vim_infer_chain) ! \
    videoconvert ! pngenc compression-level=1 ! \
    multifilesink location=\"$tmp/frame-%06d.png\""
[ "$dry_run" = 1 ] && exit 0
pick="$tmp/frame-$(printf %06d "$frame").png"
if [ ! -f "$pick" ]; then
    # a shorter video: its last frame
    pick=$(ls "$tmp"/frame-*.png 2>/dev/null | tail -n 1)
fi
if [ -z "$pick" ]; then
    echo "$0: no frame was written" >&2
    exit 1
fi
mv "$pick" "$png"
n=$(basename "$pick" .png | sed 's/^frame-0*//')
echo "wrote $png (frame ${n:-0})" >&2
