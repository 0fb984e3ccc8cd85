#!/usr/bin/env bash
# Runs the plugin's GPU checks on a GPU host that has no GStreamer, from a
# build made elsewhere (see ../shared/device/README.md): the CUDA-memory
# element test, the CPU element tests with a GPU present, and the
# nvh264dec ! vimclassify benchmark. Logs go to $OUT (or /tmp/vim-out).
#
#   tests/gst/device-run.sh [CLIP.mp4]
#
# H100/H200 have no NVENC, and make-gst-bundle's plugins no software H.264
# encoder: give a 1080p H.264 CLIP for the nvh264dec benchmarks, or pack with
# tests/gst/pack-for-device.sh, which adds x264 to the bundle (so the clip is
# encoded there and the pipeline-gpu and pipeline-bench cases run too) and
# writes .gstbuild/, a build small enough to carry:
#
#   tests/gst/pack-for-device.sh build-gpu      # here
#   . .gst-bundle/env.sh; BUILD=.gstbuild bash tests/gst/device-run.sh   # there
#
# Environment: BUILD (default build-gpu); carry .gst-bundle and the build.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build-gpu}
O=${OUT:-/tmp/vim-out}
mkdir -p "$O"
. .gst-bundle/env.sh
export GST_PLUGIN_PATH=$PWD/$B/gst-plugin
clip=${1:-}
M=/tmp/vim-models
mkdir -p "$M"
python3 tools/vim-random-model --variant vim_ti --image-size 64,64 --depth 2 \
  --num-classes 10 --seed 7 -o "$M/gst-test.safetensors" >/dev/null
# the segmenters of tests/gst/meson.build, for the vimsegment tests
python3 tools/vim-random-model --variant vim_ti --image-size 64,64 --depth 2 --task segmentation \
  --seg-layers 0,1 --seg-channels 16 --num-classes 11 --seed 11 -o "$M/gst-test-seg.safetensors" >/dev/null
python3 tools/vim-random-model --variant vim_ti --image-size 64,64 --depth 2 --task segmentation \
  --seg-layers 0,1 --seg-channels 16 --resize short-side-crop --num-classes 11 --seed 12 \
  -o "$M/gst-test-seg-crop.safetensors" >/dev/null
export VIM_TEST_SEG_MODEL=$M/gst-test-seg.safetensors VIM_TEST_SEG_CROP_MODEL=$M/gst-test-seg-crop.safetensors
python3 tools/vim-random-model --variant vim_ti --seed 1 --dtype F16 -o "$M/vim-ti.safetensors" >/dev/null

{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  gst-inspect-1.0 vimclassify | head -n 20
  gst-inspect-1.0 nvh264dec | grep -E "Long-name|Rank"
} > "$O/log-gst-info.txt" 2>&1
head -n 3 "$O/log-gst-info.txt"

run_test () {  # run_test NAME [TAG [VAR=VALUE...]]: one gst-check binary with the meson test environment
  local n=$1 tag=${2:-host}; shift; [ $# -gt 0 ] && shift
  env "$@" GST_PLUGIN_PATH_1_0=$GST_PLUGIN_PATH GST_REGISTRY_1_0=/tmp/reg-$n-$tag.bin \
  GST_TRACERS=leaks CK_FORK=no CK_DEFAULT_TIMEOUT=300 \
  VIM_TEST_MODEL=$M/gst-test.safetensors VIM_TEST_LABELS=$PWD/tests/gst/test-labels.txt \
  VIM_TEST_SHARED_DATA=/nonexistent \
    "$B/tests/gst/test-gst-$n" > "$O/log-gst-$n-$tag.txt" 2>&1
  echo "test-gst-$n ($tag fonts): rc=$? $(grep -E '^[0-9]+%: Checks' "$O/log-gst-$n-$tag.txt" | tail -n 1)"
}
# with the host's fonts (none on a bare GPU host: vimoverlay leaves the text out)
for n in vimclassify_cuda vimsegment_cuda vimoverlay_cuda vimclassify vimsegment vimmeta vimoverlay; do
  run_test $n
done
# the overlay's text through a real font: matplotlib's DejaVu where python3 has it
fontdir=$(python3 -c "import matplotlib, os; print(os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data', 'fonts', 'ttf'))" 2>/dev/null || true)
if [ -n "$fontdir" ] && [ -d "$fontdir" ]; then
  printf '<?xml version="1.0"?>\n<fontconfig><dir>%s</dir><cachedir>/tmp/vim-fc-cache</cachedir></fontconfig>\n' \
    "$fontdir" > /tmp/vim-fonts.conf
  for n in vimoverlay_cuda vimoverlay; do run_test $n dejavu FONTCONFIG_FILE=/tmp/vim-fonts.conf; done
fi

for prec in fp16 fp32; do
  echo "== nvh264dec ! vimclassify (Vim-Ti 224, random weights, $prec)"
  pipelines/bench-nvdec-classify.sh "$M/vim-ti.safetensors" "$clip" precision=$prec 2>&1 | tee -a "$O/log-gst-bench.txt"
done

# the segmentation pipelines on the GPU (tests/pipelines cases gpu, bench)
for c in gpu bench; do
  VIM_SEG_MODEL=$M/gst-test-seg.safetensors VIM_CLS_MODEL=$M/gst-test.safetensors VIM_PYTHON=python3 \
    tests/pipelines/test-pipelines.sh $c > "$O/log-pipeline-$c.txt" 2>&1
  echo "pipeline-$c: rc=$? $(tail -n 1 "$O/log-pipeline-$c.txt")"
done
python3 tools/vim-random-model --task segmentation --variant vim_ti --image-size 512 --seed 1 \
  --dtype F16 -o "$M/vim-seg-512.safetensors" >/dev/null
echo "== nvh264dec ! vimsegment ! vimoverlay (Vim-Ti seg 512, random weights, fp16)"
pipelines/bench-nvdec-segment.sh "$clip" "$M/vim-seg-512.safetensors" precision=fp16 2>&1 | tee -a "$O/log-gst-bench-seg.txt"
