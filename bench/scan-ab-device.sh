#!/usr/bin/env bash
# A/B of the scan kernel versions on one card, then correctness phases.
#   BUILD=build-perf bash bench/scan-ab-device.sh [PHASE...]   (phases of tests/cuda/device-run.sh;
#   default: kernels fixtures-quick top1). Versions: VIM_CUDA_SCAN_VERSION=1, 2, 3 (V1-V3) or 4
#   (V4, the default); VERSIONS="1 2 3 4" picks which to time (default "3 4").
#   Carry build-perf/{engine,tests/cuda,tests/engine,bench} and .cuda-libs (tests/cuda/pack-libs.sh).
set -u
B=${BUILD:-build-perf}; O=${OUT:-/tmp/vim-out}; mkdir -p $O
. .cuda-libs/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $O/card.txt 2>&1
M=/tmp/vim-models; mkdir -p $M
python3 tools/vim-random-model --variant vim_ti --dtype F16 -o $M/ti.safetensors >/dev/null &
python3 tools/vim-random-model --variant vim_s --dtype F16 -o $M/s.safetensors >/dev/null &
python3 tools/vim-random-model --variant vim_ti --image-size 1248 --dtype F16 -o $M/ti1248.safetensors >/dev/null &
wait
t0=$(date +%s)
{
for round in 1 2; do
  for n in ${VERSIONS:-3 4}; do
    v="VIM_CUDA_SCAN_VERSION=$n"
    env $v timeout 40 $B/bench/vim-bench --model $M/ti.safetensors --batches 1,256 --seconds 0.3 --label "Ti $v r$round"
    env $v timeout 30 $B/bench/vim-bench --model $M/s.safetensors --batches 256 --seconds 0.3 --label "S $v r$round"
    env $v timeout 30 $B/bench/vim-bench --model $M/ti1248.safetensors --batches 8 --seconds 0.3 --label "Ti1248 $v r$round"
    [ $round = 1 ] && env $v timeout 30 $B/bench/vim-bench --model $M/ti.safetensors --precision bf16 --batches 256 --seconds 0.3 --label "Ti-bf16 $v r$round"
  done
  [ $(( $(date +%s) - t0 )) -gt 70 ] && break
done
} > $O/bench.txt 2>&1
echo "bench took $(( $(date +%s) - t0 ))s" >> $O/bench.txt
[ $# -gt 0 ] || set -- kernels fixtures-quick top1
BUILD=$B timeout 200 bash tests/cuda/device-run.sh "$@"
echo "tests rc=$? total $(( $(date +%s) - t0 ))s" >> $O/log-tests.txt
grep -E "FAILED|rc=|relative|top-1 same|==" $O/log-tests.txt $O/log-sanitize.txt 2>/dev/null | tail -50
cat $O/card.txt
python3 - $O/bench.txt <<'PY'
import json, sys
for l in open(sys.argv[1]):
    if l.startswith('{'):
        r = json.loads(l); print(f"{r['label']:40s} b{r['batch']:<4d} {r['precision']} {r['median_ms']:9.4f} ms  {r['img_s']:9.1f} img/s  G{r['scan_lanes']} P{r['scan_chunks']}")
    else: print(l.rstrip())
PY
