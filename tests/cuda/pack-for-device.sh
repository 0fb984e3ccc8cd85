#!/usr/bin/env bash
# Packs what tests/cuda/device-run.sh and bench/ need on the GPU host into
# two ignored folders that fit in one device call (at most 64 MiB with the
# tracked files):
#
#   .devpack/build.tar.xz   BUILD's engine library, CUDA tests and benchmarks.
#                           libvim.so and test-kernels carry the same kernels
#                           (about 35 MB each), so they are compressed in one
#                           stream with a dictionary that spans both (xz -9)
#   .cuda-libs/             the host libraries they need (tests/cuda/pack-libs.sh)
#
#   tests/cuda/pack-for-device.sh [BUILD]     (default build-gpu)
#
# Then, in the device call (carry .devpack and .cuda-libs):
#   mkdir -p .devbuild && tar -C .devbuild -xJf .devpack/build.tar.xz
#   BUILD=.devbuild bash tests/cuda/device-run.sh kernels fixtures ...
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-gpu}
[ -f "$B/engine/libvim.so" ] && [ -x "$B/tests/cuda/test-kernels" ] ||
  { echo "$0: $B has no CUDA build (meson setup $B -Dcuda=enabled -Dbuildtype=release)" >&2; exit 1; }

# libvim.so and its version links, and the executables (not meson's .p folders)
files=()
for f in "$B"/engine/libvim.so* "$B"/tests/cuda/* "$B"/tests/engine/test-parity \
    "$B"/bench/vim-bench "$B"/engine/vim-infer; do
  [ -f "$f" ] && [ -x "$f" ] && files+=("${f#"$B"/}")
done
mkdir -p .devpack
grep -qxF "/.devpack/" .git/info/exclude 2>/dev/null || echo "/.devpack/" >> .git/info/exclude
tar -C "$B" -cf - "${files[@]}" | xz -9 > .devpack/build.tar.xz

tests/cuda/pack-libs.sh .cuda-libs "${files[@]/#/$B/}" >/dev/null

tracked=$(git ls-files -z | xargs -0 du -cb | tail -n 1 | cut -f1)
total=$(( tracked + $(du -sb .devpack .cuda-libs | awk '{ s += $1 } END { print s }') ))
echo "${#files[@]} files; tracked files + .devpack + .cuda-libs: $(( total / 1048576 )) MiB (a call carries at most 64)"
[ "$total" -le $(( 64 * 1048576 )) ] || { echo "$0: too large for one call" >&2; exit 1; }
