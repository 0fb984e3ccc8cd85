#!/usr/bin/env bash
# Packs the shared libraries our CUDA test and bench binaries need that a
# bare GPU host lacks (GLib, json-glib, OpenBLAS, ...; not libc, libstdc++ or
# the CUDA toolkit's own) into DIR/libs.tar.xz, plus DIR/env.sh to source
# there. Lighter than the GStreamer bundle when no GStreamer is needed.
#   tests/cuda/pack-libs.sh [DIR] BINARY...
set -euo pipefail
DIR=${1:-.cuda-libs}; shift
mkdir -p "$DIR"
if [ -d .git ]; then grep -qxF "/$DIR/" .git/info/exclude 2>/dev/null || echo "/$DIR/" >> .git/info/exclude; fi
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
# not the project's own libraries (libvim): they travel with the build, and
# a copy here would win over the build's through LD_LIBRARY_PATH
root=$(cd "$(dirname "$0")/../.." && pwd)
for f in "$@"; do ldd "$f" | awk '/=> \//{print $3}'; done | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so|cuda|libcublas' |
  grep -v "^$root/" |
  while read -r l; do cp -L "$l" "$stage/"; done
tar -C "$stage" -cJf "$DIR/libs.tar.xz" .
cat > "$DIR/env.sh" <<'ENV'
_cl=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -e /tmp/cuda-libs/.stamp ]; then
  mkdir -p /tmp/cuda-libs && tar -C /tmp/cuda-libs -xJf "$_cl/libs.tar.xz" && touch /tmp/cuda-libs/.stamp
fi
export LD_LIBRARY_PATH=/tmp/cuda-libs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ENV
du -sh "$DIR"
