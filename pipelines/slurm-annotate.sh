#!/bin/bash
# Annotate a collection of videos as a Slurm array job: task I of N takes
# the videos of `vim-annotate --shard I/N` (a stable hash of each video's
# absolute path), so the tasks share the work without a coordinator and a
# resubmitted array skips what is already done (finished .jsonl files).
#
#   sbatch --array=0-7 pipelines/slurm-annotate.sh /data/videos /data/annotations model.safetensors
#
# The array size is taken from Slurm (SLURM_ARRAY_TASK_COUNT, or
# SLURM_ARRAY_TASK_MAX + 1 for arrays that start at 0), so --array=0-7 gives
# 8 shards. Each task writes OUTPUT/summary-shard-I-of-N.csv; the .jsonl
# files of all tasks go to OUTPUT. Paths must be the same on every node
# (a shared file system), since the shard and the output names derive from
# the absolute input paths.
#
# Environment: the GPUs Slurm gives the task
# (CUDA_VISIBLE_DEVICES) are used, JOBS_PER_DEVICE pipelines on each
# (default 2); without a GPU, DEVICE=cpu. Extra vim-annotate options in
# VIM_ANNOTATE_ARGS (e.g. "--labels-file labels.txt --inference-interval 2").
#
#SBATCH --job-name=vim-annotate
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=vim-annotate-%A_%a.log
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: sbatch --array=0-N-1 $0 INPUT_DIR_OR_MANIFEST OUTPUT_DIR MODEL" >&2
  exit 2
fi
input=$1 output=$2 model=$3

index=${SLURM_ARRAY_TASK_ID:-0}
if [ -n "${SLURM_ARRAY_TASK_COUNT:-}" ]; then
  count=$SLURM_ARRAY_TASK_COUNT
else
  count=$(( ${SLURM_ARRAY_TASK_MAX:-0} + 1 ))
fi
# arrays that do not start at 0 (--array=1-8): shift to 0 .. N-1
index=$(( index - ${SLURM_ARRAY_TASK_MIN:-0} ))

device_args=()
if [ "${DEVICE:-}" = cpu ]; then
  device_args=(--device cpu)
else
  # the GPUs of this task, renumbered 0.. by CUDA_VISIBLE_DEVICES
  n_gpus=$(echo "${CUDA_VISIBLE_DEVICES:-0}" | tr ',' '\n' | grep -c .)
  device_args=(--devices "$(seq -s, 0 $(( n_gpus - 1 )))")
fi

exec vim-annotate --shard "$index/$count" \
  --jobs-per-device "${JOBS_PER_DEVICE:-2}" "${device_args[@]}" \
  -m "$model" -o "$output" ${VIM_ANNOTATE_ARGS:-} "$input"
