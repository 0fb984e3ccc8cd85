#!/usr/bin/env bash
# Train (and export) the default models on the GPU machine, in one call of at
# most ~10 minutes. Run from the repository root with $OUT set and the data in
# .data/ (cifar10-train-jpeg.tar.gz for cls, camvid-trainval.tar for seg).
#
# Environment (defaults in brackets):
#   JOBS        which jobs, comma separated: cls, seg            [cls,seg]
#   CLS_GPUS    GPUs of the classifier job                       [0,1]   (JOBS=cls alone: all)
#   SEG_GPUS    GPUs of the segmenter job                        [2,3]   (JOBS=seg alone: all)
#   TOTAL_S     seconds this script may take in all              [570]
#   CLS_BUDGET_S / SEG_BUDGET_S  training seconds over ALL calls (fixed at the first call)
#                                                  [this call's training time: one-call schedule]
#   TRAIN_DIR   where previous calls' $OUT files were copied     [.train]
#               resumes from $TRAIN_DIR/ckpt-cls, $TRAIN_DIR/ckpt-seg when they hold an
#               unfinished checkpoint; the segmenter starts from the classifier's blocks
#               when $TRAIN_DIR/vim-cifar10-classification.safetensors exists (INIT_SEG=0: not)
#   CLS_ARGS / SEG_ARGS  extra train.py arguments
#   SCAN_CHECK=0 skips the Triton scan self-check; VIM_SCAN_BACKEND=chunked forces the fallback
# $OUT receives per job: the model file (vim-cifar10-classification.safetensors,
# vim-camvid-segmentation.safetensors), and the checkpoint folder ckpt-<job>/ when the
# schedule is not complete (else only <job>-progress.json), plus logs.tar.gz.
set -u
T0=$(date +%s)
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT}"
JOBS=${JOBS:-cls,seg}
TOTAL_S=${TOTAL_S:-570}
TRAIN_DIR=${TRAIN_DIR:-.train}
WORK=${WORK:-/tmp/vimtrain}
NG=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$JOBS" = cls ]; then CLS_GPUS=${CLS_GPUS:-$(seq -s, 0 $((NG - 1)))}; fi
if [ "$JOBS" = seg ]; then SEG_GPUS=${SEG_GPUS:-$(seq -s, 0 $((NG - 1)))}; fi
CLS_GPUS=${CLS_GPUS:-0,1}
SEG_GPUS=${SEG_GPUS:-2,3}
mkdir -p "$WORK" "$OUT"
export OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1

echo "== device-train: JOBS=$JOBS CLS_GPUS=$CLS_GPUS SEG_GPUS=$SEG_GPUS TOTAL_S=$TOTAL_S"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'gpus', torch.cuda.device_count())"
python3 -c "import torchvision; print('torchvision', torchvision.__version__)" 2>/dev/null || echo "torchvision missing: PIL decode"

# ---- scan self-check (the fused Triton scan); fall back to the chunked scan
if [ "${SCAN_CHECK:-1}" = 1 ]; then
    if timeout 120 python3 tools/train/check_scan_gpu.py --no-sweep > "$WORK/scan-check.txt" 2>&1; then
        echo "scan check: PASS"; grep -E '^(PASS|FAIL)' "$WORK/scan-check.txt" | tail -n 3 | cut -c1-200
    else
        echo "scan check: FAIL (rc $?) -> VIM_SCAN_BACKEND=chunked"; tail -n 8 "$WORK/scan-check.txt" | cut -c1-200
        export VIM_SCAN_BACKEND=chunked
    fi
fi
echo "scan backend: ${VIM_SCAN_BACKEND:-auto (triton)}"

now() { echo $(( $(date +%s) - T0 )); }
DEADLINE=$(( TOTAL_S - $(now) - 15 ))      # per train.py process, seconds since its start
ONECALL_BUDGET=$(( DEADLINE - 65 ))        # startup (~25 s) + final eval/save/export (reserve 20 s) + margin
echo "train deadline ${DEADLINE}s, one-call budget ${ONECALL_BUDGET}s"

ngpu() { echo "$1" | tr ',' '\n' | grep -c .; }
PIDS=()
launch() {   # tag task data gpus port budget extra...
    local tag=$1 task=$2 datap=$3 gpus=$4 port=$5 budget=$6; shift 6
    local resume=()
    if [ -f "$TRAIN_DIR/ckpt-$tag/progress.json" ]; then resume=(--resume "$TRAIN_DIR/ckpt-$tag"); fi
    echo "launch $tag on GPUs $gpus: ${resume[*]:-fresh} $*"
    CUDA_VISIBLE_DEVICES=$gpus torchrun --standalone --nnodes=1 --nproc_per_node="$(ngpu "$gpus")" \
        tools/train/train.py --task "$task" --data "$datap" \
        --out "$WORK/ckpt-$tag" --deadline-s "$DEADLINE" --total-budget-s "$budget" \
        "${resume[@]}" "$@" > "$WORK/$tag.log" 2>&1 &
    PIDS+=($!)
}
case ",$JOBS," in *,cls,*)
    launch cls classification .data/cifar10-train-jpeg.tar.gz "$CLS_GPUS" 29511 \
        "${CLS_BUDGET_S:-$ONECALL_BUDGET}" --export "$WORK/vim-cifar10-classification.safetensors" ${CLS_ARGS:-} ;;
esac
case ",$JOBS," in *,seg,*)
    INIT=()
    if [ "${INIT_SEG:-1}" = 1 ] && [ -f "$TRAIN_DIR/vim-cifar10-classification.safetensors" ]; then
        INIT=(--init-from "$TRAIN_DIR/vim-cifar10-classification.safetensors"); fi
    launch seg segmentation .data/camvid-trainval.tar "$SEG_GPUS" 29512 \
        "${SEG_BUDGET_S:-$ONECALL_BUDGET}" --export "$WORK/vim-camvid-segmentation.safetensors" "${INIT[@]}" ${SEG_ARGS:-} ;;
esac

# live progress: the trainers' own lines only (one per epoch per job)
declare -A SEEN
show_new() {
    local f n
    for f in "$WORK"/cls.log "$WORK"/seg.log; do
        [ -f "$f" ] || continue
        n=$(wc -l < "$f"); [ "$n" -gt "${SEEN[$f]:-0}" ] || continue
        sed -n "$(( ${SEEN[$f]:-0} + 1 )),${n}p" "$f" | grep -E '^\[(cls|seg) |Error|error:' | cut -c1-300
        SEEN[$f]=$n
    done
}
alive() { local p; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while alive; do sleep 5; show_new; done
RC=0
for p in "${PIDS[@]}"; do wait "$p" || RC=$?; done
show_new
for tag in cls seg; do
    [ -f "$WORK/$tag.log" ] || continue
    if ! grep -q '^RESULT' "$WORK/$tag.log"; then echo "== $tag FAILED, log tail:"; tail -n 25 "$WORK/$tag.log"; fi
done

# ---- collect into $OUT (files <= 15 MiB, at most 8)
for tag in cls seg; do
    d="$WORK/ckpt-$tag"; [ -f "$d/progress.json" ] || continue
    if python3 -c "import json,sys; sys.exit(0 if json.load(open('$d/progress.json')).get('final_metrics',{}).get('done') else 1)"; then
        cp "$d/progress.json" "$OUT/$tag-progress.json"
    else
        mkdir -p "$OUT/ckpt-$tag"; cp "$d"/* "$OUT/ckpt-$tag/"
    fi
done
cp "$WORK"/vim-*.safetensors "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tar.gz" -C "$WORK" $(cd "$WORK" && ls *.log *.txt 2>/dev/null) 2>/dev/null
echo "== \$OUT ($(find "$OUT" -type f | wc -l) files, $(now)s):"
find "$OUT" -type f -printf '%10s %P\n' | sort -k2
big=$(find "$OUT" -type f -size +15360k | wc -l); [ "$big" = 0 ] || echo "WARNING: $big files over 15 MiB"
grep -h '^RESULT' "$WORK"/*.log 2>/dev/null
exit $RC
