# Shared by the *-segment*.sh and snapshot-overlay.sh scripts (sourced, not
# run): option parsing, model lookup, encoder choice. POSIX sh.
#
# Options every script takes:
#   --model FILE        segmentation model (else $VIM_SEG_MODEL, else
#                       models/vim-camvid-segmentation.safetensors)
#   --classifier FILE   also run vimclassify with this model (else
#                       $VIM_CLS_MODEL; empty = no classifier)
#   --device D          auto | cpu | cuda (vimsegment/vimclassify device)
#   --sink "ELEMENTS"   the end of the pipeline (default autovideosink)
#   --num-buffers N     stop after N frames (about N for files: identity
#                       eos-after; default: the whole input)
#   --overlay "PROPS"   extra vimoverlay properties, e.g. "alpha=0.3 contours=true"
#   --out FILE          (gpu-segment.sh) encode to FILE instead of showing
#   --dry-run           print the gst-launch-1.0 command instead of running it

vim_here=$(cd "$(dirname "$0")" && pwd)
seg_model=${VIM_SEG_MODEL:-}
cls_model=${VIM_CLS_MODEL:-}
device=auto
sink=autovideosink
num_buffers=-1
overlay_props="show-legend=true"
dry_run=0
out=""

vim_parse_args () {  # vim_parse_args "$@": options into variables, the rest into $args
    args=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --model) seg_model=$2; shift 2 ;;
            --classifier) cls_model=$2; shift 2 ;;
            --device) device=$2; shift 2 ;;
            --sink) sink=$2; shift 2 ;;
            --num-buffers) num_buffers=$2; shift 2 ;;
            --overlay) overlay_props="$overlay_props $2"; shift 2 ;;
            --out) out=$2; shift 2 ;;
            --dry-run) dry_run=1; shift ;;
            -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
            --) shift; for a in "$@"; do args="$args$a
"; done; break ;;
            -*) echo "$(basename "$0"): unknown option $1" >&2; exit 2 ;;
            *) args="$args$1
"; shift ;;
        esac
    done
    if [ -z "$seg_model" ]; then
        for m in "$vim_here/../models/vim-camvid-segmentation.safetensors" \
                 /usr/local/share/gst-vim/models/vim-camvid-segmentation.safetensors \
                 /usr/share/gst-vim/models/vim-camvid-segmentation.safetensors; do
            if [ -f "$m" ]; then seg_model=$m; break; fi
        done
    fi
    if [ -z "$seg_model" ]; then
        echo "$(basename "$0"): no segmentation model: pass --model FILE or set VIM_SEG_MODEL" >&2
        exit 2
    fi
}

vim_arg () {  # vim_arg N: the Nth positional argument (1-based), or empty
    printf '%s' "$args" | sed -n "${1}p"
}

# vimsegment [! vimclassify] ! vimoverlay, as gst-launch-1.0 arguments
vim_infer_chain () {
    chain="vimsegment model-file=\"$seg_model\" device=$device ! "
    if [ -n "$cls_model" ]; then
        chain="${chain}vimclassify model-file=\"$cls_model\" device=$device top-k=3 ! "
    fi
    # a queue before vimoverlay: inference and drawing run in two threads,
    # so the next frame's inference overlaps this frame's blending
    echo "${chain}queue max-size-buffers=4 max-size-bytes=0 max-size-time=0 ! vimoverlay $overlay_props"
}

vim_have () {  # (not --exists: it compares the plugin's version with GStreamer's)
    gst-inspect-1.0 "$1" >/dev/null 2>&1
}

vim_h264_encoder () {  # the first H.264 encoder found, with settings for a file
    if vim_have x264enc; then echo "x264enc speed-preset=veryfast"
    elif vim_have openh264enc; then echo "openh264enc"
    elif vim_have nvh264enc; then echo "nvh264enc"
    elif vim_have avenc_h264_omx; then echo "avenc_h264_omx"
    else
        echo "$(basename "$0"): no H.264 encoder (x264enc, openh264enc, nvh264enc)" >&2
        return 1
    fi
}

vim_uri () {  # a URI for a path or a URI
    case "$1" in
        *://*) echo "$1" ;;
        /*) echo "file://$1" ;;
        *) echo "file://$(pwd)/$1" ;;
    esac
}

vim_launch () {  # vim_launch "PIPELINE": runs (or prints) gst-launch-1.0 -e
    if [ "$dry_run" = 1 ]; then
        echo "gst-launch-1.0 -e $1"
        return 0
    fi
    echo "gst-launch-1.0 -e $1" >&2
    eval "gst-launch-1.0 -e $1"
}
