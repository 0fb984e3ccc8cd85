#!/usr/bin/env bash
# Packs what tests/gst/device-run.sh needs on a GPU host without GStreamer
# into two ignored folders that fit in one device call (at most 64 MiB with
# the tracked files):
#
#   .gst-bundle/  make-gst-bundle's runtime with x264enc added (H100/H200 have
#                 no NVENC, so the benchmarks' clip is encoded with x264 there),
#                 cut to the libraries that its tools, plugins and our binaries
#                 load: the full closure of libgst*-1.0 (OpenCV, ICU, ...) is
#                 about 50 MB compressed and does not fit
#   .gstbuild/    the plugin, the meta library and the gst-check binaries of BUILD
#
#   tests/gst/pack-for-device.sh [BUILD]     (default build-gpu)
#
# Then, in the device call (carry .gst-bundle and .gstbuild):
#   . .gst-bundle/env.sh; BUILD=.gstbuild bash tests/gst/device-run.sh
# Environment: MAKE_GST_BUNDLE (default ../shared/device/make-gst-bundle).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-gpu}
MAKE=${MAKE_GST_BUNDLE:-../shared/device/make-gst-bundle}
[ -f "$B/gst-plugin/libgstvim.so" ] || { echo "$0: no $B/gst-plugin/libgstvim.so: build $B first" >&2; exit 1; }
[ -x "$MAKE" ] || { echo "$0: no $MAKE" >&2; exit 1; }

# make-gst-bundle's own default list, plus x264 where it is installed
plugins="coreelements coretracers app playback typefindfunctions videoconvertscale videotestsrc
  videorate rawparse pbtypes isomp4 matroska jpeg png multifile videocrop videobox y4mdec y4menc
  videoparsersbad nvcodec debugutilsbad"
if [ -e /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstx264.so ]; then
  plugins="$plugins x264"
else
  echo "$0: no x264enc here (apt install gstreamer1.0-plugins-ugly): the GPU host will skip the clip benchmarks" >&2
fi

rm -rf .gstbuild
mkdir -p .gstbuild/gst-plugin/meta .gstbuild/tests/gst
cp "$B/gst-plugin/libgstvim.so" .gstbuild/gst-plugin/
for f in "$B"/gst-plugin/meta/libgstvimmeta-1.0.so*; do
  [ -d "$f" ] || cp -a "$f" .gstbuild/gst-plugin/meta/     # not meson's .p folder
done
for f in "$B"/tests/gst/test-gst-*; do
  [ -f "$f" ] && [ -x "$f" ] && cp "$f" .gstbuild/tests/gst/
done
grep -qxF "/.gstbuild/" .git/info/exclude 2>/dev/null || echo "/.gstbuild/" >> .git/info/exclude

# libvim.so is named so that it lands in the bundle's lib/, where the
# plugin and the tests find it without BUILD's engine folder
GST_BUNDLE_PLUGINS=$(echo $plugins) "$MAKE" .gst-bundle "$B/gst-plugin/libgstvim.so" \
  "$B/engine/libvim.so" .gstbuild/tests/gst/test-gst-* >/dev/null

stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
tar -C "$stage" -xJf .gst-bundle/gst-runtime.tar.xz
needed=$(for f in "$stage"/bin/* "$stage"/plugins/*.so .gstbuild/gst-plugin/libgstvim.so \
             .gstbuild/tests/gst/test-gst-*; do
           LD_LIBRARY_PATH="$stage/lib" ldd "$f"
         done | awk -v lib="$stage/lib/" 'index($3, lib) == 1 { sub(".*/", "", $3); print $3 }' | sort -u)
before=$(ls "$stage/lib" | wc -l)
for l in "$stage"/lib/*; do
  grep -qxF "$(basename "$l")" <<<"$needed" || rm -f "$l"
done
tar -C "$stage" -cJf .gst-bundle/gst-runtime.tar.xz .
echo "libraries: $before -> $(ls "$stage/lib" | wc -l)"

tracked=$(git ls-files -z | xargs -0 du -cb | tail -n 1 | cut -f1)
total=$(( tracked + $(du -sb .gst-bundle .gstbuild | awk '{ s += $1 } END { print s }') ))
echo "tracked files + .gst-bundle + .gstbuild: $(( total / 1048576 )) MiB (a call carries at most 64)"
[ "$total" -le $(( 64 * 1048576 )) ] || { echo "$0: too large for one call" >&2; exit 1; }
