#!/usr/bin/env python3
"""Write a validation split as packed RGB8 frames for the C engine's eval modes.

    python3 tools/train/make_eval_pack.py --task classification --data .data/cifar10-train-jpeg.tar.gz --out DIR
    python3 tools/train/make_eval_pack.py --task segmentation  --data .data/camvid-trainval.tar --out DIR

DIR/images.rgb   N frames of H x W x 3 bytes (RGB, row-major), back to back
DIR/labels.txt   classification: one class index per line (frame order)
DIR/labels.raw   segmentation: N masks of H x W bytes (class id, 11 = ignore)
DIR/pack.json    {"task", "count", "width", "height", "num_classes", "ignore_index"}
The split is the one training validates on (tools/train/data.py). The files
are derived from the data set: keep them out of the repository.
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


def write_pack(out, task, imgs, labels, num_classes, ignore=None):
    """imgs uint8 (N,3,H,W); labels int (N,) or uint8 (N,H,W)."""
    os.makedirs(out, exist_ok=True)
    n, _, h, w = imgs.shape
    with open(os.path.join(out, "images.rgb"), "wb") as f:
        f.write(imgs.permute(0, 2, 3, 1).contiguous().cpu().numpy().tobytes())
    if task == "classification":
        with open(os.path.join(out, "labels.txt"), "w") as f:
            f.write("".join(f"{int(v)}\n" for v in labels.cpu()))
    else:
        with open(os.path.join(out, "labels.raw"), "wb") as f:
            f.write(labels.to(torch.uint8).contiguous().cpu().numpy().tobytes())
    meta = {"task": task, "count": n, "width": w, "height": h, "num_classes": num_classes,
            "ignore_index": ignore}
    with open(os.path.join(out, "pack.json"), "w") as f:
        json.dump(meta, f)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["classification", "segmentation"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0, help="only the first N frames")
    a = ap.parse_args(argv)
    dev = torch.device("cpu")
    if a.task == "classification":
        x, y = data.load_cifar(a.data, dev, splits=("val",))["val"]
        K, ign = len(data.CIFAR10_CLASSES), None
    else:
        x, y = data.load_camvid(a.data, dev, splits=("val",))["val"]
        K, ign = len(data.CAMVID_CLASSES), data.CAMVID_IGNORE
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    print(json.dumps(write_pack(a.out, a.task, x, y, K, ign)))


if __name__ == "__main__":
    main()
