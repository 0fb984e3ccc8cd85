#!/usr/bin/env python3
"""PyTorch accuracy of a checkpoint folder or an exported model file on the
validation split (CIFAR-10: the held-out 500 per class; CamVid: val/).
Prints one JSON line: top1 (classification) or miou, pixel_acc, iou (segmentation).

    python3 tools/train/eval_torch.py MODEL_OR_CKPT --data ARCHIVE [--which ema|raw|auto] [--device cuda]
"""
import argparse
import json
import os
import sys

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import data  # noqa: E402
import export  # noqa: E402
import train  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model .safetensors or checkpoint folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--which", default="auto", choices=["auto", "ema", "raw"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default=None, choices=["bf16", "none"])
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    if os.path.isdir(a.model):
        model, cfg, _ = export.model_from_checkpoint(a.model, a.which)
    else:
        model, cfg, _ = export.model_from_file(a.model)
    task = cfg["task"]
    if task == "classification":
        val = data.load_cifar(a.data, dev, splits=("val",))["val"]
    else:
        val = data.load_camvid(a.data, dev, splits=("val",))["val"]
    amp = (a.amp or ("bf16" if dev.type == "cuda" else "none")) == "bf16"
    args = argparse.Namespace(task=task)
    m = train.evaluate(model.to(dev), args, val, cfg["num_classes"], cfg, amp)
    print(json.dumps({"model": a.model, "task": task, "amp": amp, **m}))
    return m


if __name__ == "__main__":
    main()
