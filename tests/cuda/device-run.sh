#!/usr/bin/env bash
# Runs the CUDA checks and measurements on the GPU host from a build made
# elsewhere (nothing is compiled here). Logs go to $OUT (or /tmp/vim-out).
#
#   tests/cuda/device-run.sh PHASE...
#
# Phases: info kernels fixtures preprocess blend runner-small runner-official top1
#         sanitize profile ncu fixtures-quick bench-quick bench-knobs bench-full bench-targets
#         seg-kernels seg-fixtures segment seg-sanitize seg-bench (segmentation, log-seg.txt)
# Environment: BUILD (default build-cuda); carry it and .cuda-libs
# (tests/cuda/pack-libs.sh) with the call. A whole build is too large for a
# call: tests/cuda/pack-for-device.sh packs its binaries and the libraries
# (.devpack, .cuda-libs), then there
#   mkdir -p .devbuild && tar -C .devbuild -xJf .devpack/build.tar.xz
#   BUILD=.devbuild bash tests/cuda/device-run.sh PHASE...
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build-cuda}
O=${OUT:-/tmp/vim-out}
mkdir -p "$O"
. .cuda-libs/env.sh
export PYTHONUNBUFFERED=1
M=/tmp/vim-models
mkdir -p $M
gen () {  # gen NAME ARGS...: model file once
  local f=$M/$1.safetensors; shift
  [ -e "$f" ] || python3 tools/vim-random-model "$@" -o "$f" >/dev/null
  echo "$f"
}
t0=$(date +%s)
stamp () { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

for phase in "$@"; do
  case $phase in
  info)
    { stamp info; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv
      python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
      which compute-sanitizer ncu; nproc; } >> "$O/log-info.txt" 2>&1 ;;
  kernels)
    { stamp kernels; $B/tests/cuda/test-kernels; rc=$?; echo "rc=$rc"
      if [ $rc != 0 ]; then
        # fall back to the generic conv kernel for everything after this
        export VIMK_CONV_GENERIC=1; echo "retrying with VIMK_CONV_GENERIC=1"
        $B/tests/cuda/test-kernels; echo "rc=$?"
      fi; } >> "$O/log-tests.txt" 2>&1
    [ -n "$(grep -c 'retrying with VIMK_CONV_GENERIC' "$O/log-tests.txt" | grep -v '^0$')" ] && export VIMK_CONV_GENERIC=1 ;;
  fixtures-quick)
    { stamp fixtures-quick
      for n in tiny_s4_b4 tiny_b4 vim_ti_b4 vim_s_b1; do
        fx=tests/reference/fixtures/$n.json; f=$M/fx-$n.safetensors
        python3 tools/vim-random-model --fixture $fx -o $f >/dev/null
        for p in fp32:1e-4 fp16:2e-2 bf16:2e-2; do
          $B/tests/engine/test-parity --model $f --fixture $fx --device cuda \
            --precision ${p%%:*} --tolerance ${p##*:} || echo "FAILED rc=$? $n ${p%%:*}"
        done
        rm -f $f
      done; } >> "$O/log-tests.txt" 2>&1 ;;
  ncu)
    { stamp ncu
      f=$(gen ti-b --variant vim_ti --dtype F16)
      timeout 90 ncu --clock-control none --launch-skip 120 --launch-count 9 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        $B/bench/vim-bench --model $f --batches 256 --min-iters 1 --max-iters 1 --seconds 0 --label ncu-Ti
    } >> "$O/log-ncu.txt" 2>&1 ;;
  fixtures)
    { stamp fixtures
      for fx in tests/reference/fixtures/*.json; do
        n=$(basename $fx .json); f=$M/fx-$n.safetensors
        python3 tools/vim-random-model --fixture $fx -o $f >/dev/null
        for p in fp32:1e-4 fp16:2e-2 bf16:2e-2; do
          $B/tests/engine/test-parity --model $f --fixture $fx --device cuda \
            --precision ${p%%:*} --tolerance ${p##*:} || echo "FAILED rc=$? $n ${p%%:*}"
        done
        rm -f $f
      done; } >> "$O/log-tests.txt" 2>&1 ;;
  preprocess)
    { stamp preprocess
      f=$(gen ti-d1-224x160 --variant vim_ti --depth 1 --image-size 224,160)
      $B/tests/cuda/test-cuda-preprocess --model $f; echo "rc=$?"; } >> "$O/log-tests.txt" 2>&1 ;;
  blend)
    { stamp blend
      $B/tests/cuda/test-cuda-blend; echo "rc=$?"
      compute-sanitizer --tool memcheck --error-exitcode 9 $B/tests/cuda/test-cuda-blend 2>&1 | tail -4
      echo "rc=${PIPESTATUS[0]} (memcheck blend)"; } >> "$O/log-tests.txt" 2>&1 ;;
  runner-small)
    { stamp runner-small
      f=$(gen ti $(echo --variant vim_ti))
      $B/tests/cuda/test-cuda-runner --model $f --batch 32 --classify --errors; echo "rc=$?"; } >> "$O/log-tests.txt" 2>&1 ;;
  runner-official)
    { stamp runner-official
      for c in "vim_ti_s8:224" "vim_s:224" "vim_b:224" "vim_ti:512" "vim_ti:1248"; do
        v=${c%%:*}; r=${c##*:}
        f=$(gen $v-$r --variant $v --image-size $r)
        $B/tests/cuda/test-cuda-runner --model $f --batch 32 --cpu-batch 1; echo "rc=$? ($c)"
        rm -f $f
      done
      # batches whose scan streams whole chains (V6): 224 and 512 px
      for c in "vim_ti:224:8" "vim_s:512:4"; do
        IFS=: read v r b <<< "$c"
        f=$(gen $v-$r --variant $v --image-size $r)
        $B/tests/cuda/test-cuda-runner --model $f --batch $b --cpu-batch 2; echo "rc=$? ($c)"
        rm -f $f
      done
      # a batch whose scan sums the directions for out_proj (Vim-B 224 batch 64)
      f=$(gen vim_b-224 --variant vim_b --image-size 224)
      $B/tests/cuda/test-cuda-runner --model $f --batch 64 --cpu-batch 1; echo "rc=$? (vim_b:224:64 summed)"
      rm -f $f; } >> "$O/log-tests.txt" 2>&1 ;;
  top1)
    { stamp top1
      f=$(gen ti10 --variant vim_ti --num-classes 10)
      $B/tests/cuda/test-cuda-runner --model $f --cpu-batch 0 --top1 1000; echo "rc=$?"; } >> "$O/log-tests.txt" 2>&1 ;;
  sanitize)
    { stamp sanitize
      fx=tests/reference/fixtures/tiny_s4_b4.json; f=$M/fx-s4.safetensors
      python3 tools/vim-random-model --fixture $fx -o $f >/dev/null
      f2=$(gen ti-d2 --variant vim_ti --depth 2)
      for tool in memcheck racecheck; do
        for p in fp32 fp16; do
          compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/engine/test-parity --model $f \
            --fixture $fx --device cuda --precision $p --tolerance 2e-2 2>&1 | tail -4
          echo "rc=${PIPESTATUS[0]} ($tool parity $p)"
        done
        compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/cuda/test-cuda-runner --model $f2 \
          --cpu-batch 1 --batch 3 --classify 2>&1 | tail -4
        echo "rc=${PIPESTATUS[0]} ($tool runner)"
        # one lane, one chunk, the directions summed (forced)
        VIM_CUDA_SCAN_SUM=1 VIM_CUDA_SCAN_LANES=1 VIM_CUDA_SCAN_CHUNKS=1 compute-sanitizer --tool $tool \
          --error-exitcode 9 $B/tests/cuda/test-cuda-runner --model $f2 --cpu-batch 1 --batch 3 2>&1 | tail -4
        echo "rc=${PIPESTATUS[0]} ($tool runner summed)"
        # batch 8: the scan streams whole chains (V6)
        compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/cuda/test-cuda-runner --model $f2 \
          --cpu-batch 1 --batch 8 2>&1 | tail -4
        echo "rc=${PIPESTATUS[0]} ($tool runner b8)"
        # every scan version, lane split and chunking at small sizes
        compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/cuda/test-kernels 2>&1 | tail -2
        echo "rc=${PIPESTATUS[0]} ($tool test-kernels)"
      done; } >> "$O/log-sanitize.txt" 2>&1 ;;
  bench-quick)
    { stamp bench-quick
      python3 bench/run-bench.py --build $B --set quick --compile none --json $O/bench-quick.json; } >> "$O/log-bench.txt" 2>&1 ;;
  profile)
    { stamp profile
      f=$(gen ti-b --variant vim_ti --dtype F16)
      f2=$(gen ti-1248 --variant vim_ti --image-size 1248 --dtype F16)
      f3=$(gen s-224 --variant vim_s --dtype F16)
      VIM_CUDA_PROFILE=1 $B/bench/vim-bench --model $f --batches 1,256 --label Ti --seconds 0.3
      VIM_CUDA_PROFILE=1 $B/bench/vim-bench --model $f2 --batches 8 --label Ti1248 --seconds 0.3
      VIM_CUDA_PROFILE=1 $B/bench/vim-bench --model $f3 --batches 256 --label S --seconds 0.3
    } >> "$O/log-bench.txt" 2>&1 ;;
  bench-knobs)
    { stamp bench-knobs
      f=$(gen ti-b --variant vim_ti --dtype F16)
      f2=$(gen ti-1248 --variant vim_ti --image-size 1248 --dtype F16)
      for pr in bf16 fp32; do
        $B/bench/vim-bench --model $f --precision $pr --batches 1,256 --label Ti-$pr --seconds 0.3
      done
      for env in "VIM_CUDA_SCAN_LANES=1 VIM_CUDA_SCAN_CHUNKS=1 VIM_CUDA_SCAN_POLY=0" \
                 "VIM_CUDA_SCAN_LANES=1 VIM_CUDA_SCAN_CHUNKS=1 VIM_CUDA_SCAN_POLY=3" \
                 "VIM_CUDA_SCAN_LANES=2 VIM_CUDA_SCAN_CHUNKS=1" "VIM_CUDA_SCAN_LANES=4 VIM_CUDA_SCAN_CHUNKS=1" \
                 "VIM_CUDA_SCAN_LANES=1 VIM_CUDA_SCAN_CHUNKS=2" \
                 "VIM_CUDA_PASS_TOKENS=3000" "VIM_CUDA_PASS_TOKENS=12000" "VIM_CUDA_PASS_TOKENS=25000" \
                 "VIM_CUDA_PASS_TOKENS=50432 VIM_CUDA_SCAN_LANES=1"; do
        env $env $B/bench/vim-bench --model $f --batches 256 --label "Ti $env" --seconds 0.3
      done
      for env in "VIM_CUDA_SCAN_CHUNKS=1" "VIM_CUDA_SCAN_CHUNKS=2" "VIM_CUDA_SCAN_LANES=8" \
                 "VIM_CUDA_SCAN_LANES=4 VIM_CUDA_SCAN_CHUNKS=4" "VIM_CUDA_GRAPHS=0"; do
        env $env $B/bench/vim-bench --model $f --batches 1 --label "Ti $env" --seconds 0.3
      done
      for env in "VIM_CUDA_PASS_TOKENS=6085 VIM_CUDA_SCAN_CHUNKS=16" "VIM_CUDA_PASS_TOKENS=6085 VIM_CUDA_SCAN_CHUNKS=64" \
                 "VIM_CUDA_PASS_TOKENS=12170" "VIM_CUDA_PASS_TOKENS=24340" \
                 "VIM_CUDA_PASS_TOKENS=48680" "VIM_CUDA_PASS_TOKENS=48680 VIM_CUDA_SCAN_CHUNKS=1" \
                 "VIM_CUDA_PASS_TOKENS=48680 VIM_CUDA_SCAN_LANES=1 VIM_CUDA_SCAN_CHUNKS=4"; do
        env $env $B/bench/vim-bench --model $f2 --batches 8 --label "Ti1248 $env" --seconds 0.3
      done; } >> "$O/log-bench.txt" 2>&1 ;;
  bench-full)
    { stamp bench-full
      timeout ${BENCH_TIMEOUT:-400} python3 bench/run-bench.py --build $B --set full --compile targets \
        --compile-budget ${COMPILE_BUDGET:-170} --seconds 0.3 --json $O/bench-full.json \
        --md $O/bench-full.md; } >> "$O/log-bench.txt" 2>&1 ;;
  bench-targets)
    { stamp bench-targets
      python3 bench/run-bench.py --build $B --set targets --compile targets --json $O/bench-targets.json \
        --md $O/bench-targets.md; } >> "$O/log-bench.txt" 2>&1 ;;
  seg-kernels)
    { stamp seg-kernels; $B/tests/cuda/test-seg-kernels; echo "rc=$?"; } >> "$O/log-seg.txt" 2>&1 ;;
  seg-fixtures)
    { stamp seg-fixtures
      for n in tiny_seg_b2 tiny_seg_s8_b2 tiny_seg_bf16_b1 vim_ti_seg512_b1; do
        fx=tests/reference/fixtures/$n.json; f=$M/fx-$n.safetensors
        python3 tools/vim-random-model --fixture $fx -o $f >/dev/null
        for p in fp32:1e-4 fp16:2e-2 bf16:2e-2; do
          $B/tests/engine/test-parity --model $f --fixture $fx --device cuda \
            --precision ${p%%:*} --tolerance ${p##*:} || echo "FAILED rc=$? $n ${p%%:*}"
        done
        rm -f $f
      done; } >> "$O/log-seg.txt" 2>&1 ;;
  segment)
    { stamp segment
      f=$(gen seg-tiny --task segmentation --variant tiny)
      $B/tests/cuda/test-cuda-segment --model $f --cpu-batch 3 --batch 9 --segment --frames 4; echo "rc=$? (tiny)"
      f=$(gen seg-tiny-lb --task segmentation --variant tiny --image-size 224,160 --resize letterbox)
      $B/tests/cuda/test-cuda-segment --model $f --segment; echo "rc=$? (tiny letterbox)"
      f=$(gen seg-tiny-crop --task segmentation --variant tiny --resize short-side-crop)
      $B/tests/cuda/test-cuda-segment --model $f --cpu-batch 1 --segment; echo "rc=$? (tiny crop)"
      f=$(gen seg-ti512 --task segmentation --variant vim_ti --image-size 512)
      $B/tests/cuda/test-cuda-segment --model $f --cpu-batch 1 --batch 8 --segment --frames 2; echo "rc=$? (vim_ti 512)"
      # the scan forced to sum the directions: the head's folded projection reads E columns
      VIM_CUDA_SCAN_SUM=1 VIM_CUDA_SCAN_LANES=1 VIM_CUDA_SCAN_CHUNKS=1 $B/tests/cuda/test-cuda-segment \
        --model $f --cpu-batch 1 --batch 8 --segment --frames 2; echo "rc=$? (vim_ti 512 summed)"
    } >> "$O/log-seg.txt" 2>&1 ;;
  seg-sanitize)
    { stamp seg-sanitize
      f=$(gen seg-tiny --task segmentation --variant tiny)
      for tool in memcheck racecheck; do
        compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/cuda/test-seg-kernels 2>&1 | tail -3
        echo "rc=${PIPESTATUS[0]} ($tool seg kernels)"
        compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/cuda/test-cuda-segment --model $f \
          --cpu-batch 1 --batch 3 --precisions fp32,fp16 --segment --frames 2 2>&1 | tail -4
        echo "rc=${PIPESTATUS[0]} ($tool segment)"
      done; } >> "$O/log-sanitize.txt" 2>&1 ;;
  seg-bench)
    { stamp seg-bench
      f=$(gen seg-ti512-k150-f16 --task segmentation --variant vim_ti --image-size 512 --num-classes 150 --dtype F16)
      for p in fp16 bf16 fp32; do
        $B/bench/vim-bench --model $f --precision $p --batches 1,8 --label seg-Ti512-forward --seconds 1
      done
      VIM_CUDA_PROFILE=1 $B/bench/vim-bench --model $f --batches 1,8 --label seg-Ti512-forward --seconds 0.3
      $B/tests/cuda/seg-bench --model $f --batches 1,8 --mode grid --label seg-Ti512-e2e
      $B/tests/cuda/seg-bench --model $f --batches 1,8 --mode frame --label seg-Ti512-e2e
      $B/tests/cuda/seg-bench --model $f --batches 1,8 --mode frame --confidence --label seg-Ti512-e2e
    } >> "$O/log-bench.txt" 2>&1 ;;
  *) echo "unknown phase $phase" ;;
  esac
done
stamp done
