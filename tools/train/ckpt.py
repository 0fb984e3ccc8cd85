"""Compact training checkpoints: a folder with progress.json and shards
weights-NNN.safetensors (each <= 15 MiB):
    w/<name>    F32   model state (parameters and buffers)
    ema/<name>  BF16  EMA minus w (small numbers, so bf16 keeps them well)
    m/<name>    BF16  AdamW exp_avg        (parameters only)
    v/<name>    BF16  AdamW exp_avg_sq
progress.json: config, hyper-parameters, position (epoch, step), schedule,
timings, metrics. Weights restore bit-exactly; moments to bf16 precision.
"""
import json
import os
import sys

import numpy as np
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOOLS = os.path.dirname(_HERE)
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)

from vimtools import safetensors_io  # noqa: E402

SHARD_BYTES = 15 * 1024 * 1024 - 256 * 1024   # data per shard; the header stays < 256 KiB


def _to_np(t):
    return t.detach().float().cpu().numpy()


def save(dirpath, progress, tensors):
    """tensors: list of (name, tensor, dtype 'F32'|'BF16'). Writes atomically-ish
    (into dirpath + '.tmp', then renames)."""
    tmp = dirpath.rstrip("/") + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    shards, cur, size = [], [], 0
    for name, t, dt in tensors:
        nbytes = t.numel() * (4 if dt == "F32" else 2)
        if cur and size + nbytes > SHARD_BYTES:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, t, dt))
        size += nbytes
    if cur:
        shards.append(cur)
    for i, sh in enumerate(shards):
        dts = {n: d for n, _, d in sh}
        safetensors_io.write(os.path.join(tmp, f"weights-{i:03d}.safetensors"),
                             [(n, _to_np(t)) for n, t, _ in sh],
                             {"x-shard": f"{i}/{len(shards)}"}, dtype=lambda n: dts[n])
    progress = dict(progress)
    progress["shards"] = len(shards)
    with open(os.path.join(tmp, "progress.json"), "w") as f:
        json.dump(progress, f, indent=1, sort_keys=True)
    if os.path.isdir(dirpath):
        for f in os.listdir(dirpath):
            os.remove(os.path.join(dirpath, f))
        os.rmdir(dirpath)
    os.rename(tmp, dirpath)


def load(dirpath):
    """(progress dict, {name: float32 torch tensor})."""
    with open(os.path.join(dirpath, "progress.json")) as f:
        progress = json.load(f)
    tensors = {}
    for i in range(progress["shards"]):
        t, _ = safetensors_io.read(os.path.join(dirpath, f"weights-{i:03d}.safetensors"))
        tensors.update({k: torch.from_numpy(np.array(v)) for k, v in t.items()})
    return progress, tensors


def model_state(tensors, which="w"):
    """The model state dict ('w' raw or 'ema') from loaded checkpoint tensors."""
    w = {k[2:]: v for k, v in tensors.items() if k.startswith("w/")}
    if which == "w":
        return w
    return {k: v + tensors["ema/" + k] if ("ema/" + k) in tensors else v for k, v in w.items()}
