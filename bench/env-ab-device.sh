#!/usr/bin/env bash
# A/B of two environment settings on one card: rounds of bench/vim-bench with
# the settings alternating, in one call, then each case's medians side by side.
#
#   AB_A="VIM_CUDA_SCAN_BULK=0" AB_B="VIM_CUDA_SCAN_BULK=1" [AB_C=...] BUILD=.devbuild \
#       bash bench/env-ab-device.sh ROUNDS CASE...
#
# CASE is MODEL:PRECISION:BATCHES with MODEL ti, s, b (224 px) or ti1248, and
# BATCHES comma separated, for example ti:fp16:1,64,256 s:fp16:256 ti1248:fp16:8.
# AB_A, AB_B and the optional AB_C hold space-separated NAME=VALUE settings
# ("" for none). Raw rows go to $OUT/ab.jsonl; the table to stdout. Needs
# .cuda-libs (tests/cuda/pack-libs.sh).
set -u
cd "$(dirname "$0")/.."
BLD=${BUILD:-build-gpu}
O=${OUT:-/tmp/vim-out}
mkdir -p "$O"
. .cuda-libs/env.sh
rounds=${1:?rounds}; shift
M=/tmp/vim-models
mkdir -p $M
model () {  # model NAME: its random F16 model file, made once
  local f=$M/ab-$1.safetensors
  if [ ! -e "$f" ]; then
    local args
    case $1 in
      ti|s|b) args="--variant vim_$1" ;;
      ti1248) args="--variant vim_ti --image-size 1248" ;;
      *) echo "unknown model $1" >&2; return 1 ;;
    esac
    python3 tools/vim-random-model $args --dtype F16 -o "$f" >/dev/null
  fi
  echo "$f"
}
for r in $(seq 1 "$rounds"); do
  for side in A B ${AB_C+C}; do
    v=AB_$side; settings=${!v:-}
    for c in "$@"; do
      IFS=: read -r m p b <<< "$c"
      f=$(model "$m") || exit 1
      env $settings timeout 60 "$BLD/bench/vim-bench" --model "$f" --precision "$p" --batches "$b" \
        --seconds 0.3 --label "$side:$m:$p:r$r" >> "$O/ab.jsonl" 2>> "$O/ab-stderr.txt" ||
        echo "vim-bench failed: $side $c round $r" >&2
    done
  done
done
python3 - "$O/ab.jsonl" "${AB_A:-}" "${AB_B:-}" "${AB_C-}" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if not line.startswith('{'):
        continue
    r = json.loads(line)
    if 'error' in r:
        print('error:', r['label'], 'b%d' % r['batch'], r['error'])
        continue
    side, m, p, _ = r['label'].split(':')
    rows.setdefault((m, p, r['batch']), {}).setdefault(side, []).append(r['median_ms'])
sides = ['A', 'B'] + (['C'] if any('C' in d for d in rows.values()) else [])
print('; '.join(f"{x} = {sys.argv[2 + i]!r}" for i, x in enumerate(sides)) + "; forward ms, median of each round")
print(f"{'case':22s} " + ' '.join(f"{x + ' rounds':32s}" for x in sides) + ' '
      + ' '.join(f"{x + '/A':>8s}" for x in sides[1:]))
for (m, p, b), d in sorted(rows.items()):
    line = f"{m + ' ' + p + ' b' + str(b):22s} "
    line += ' '.join(f"{' '.join(f'{y:.4f}' for y in d.get(x, [])):32s}" for x in sides)
    a = d.get('A', [])
    for x in sides[1:]:
        o = d.get(x, [])
        ratio = (statistics.median(o) / statistics.median(a) - 1) * 100 if a and o else float('nan')
        line += f" {ratio:+7.2f}%"
    print(line)
PY
