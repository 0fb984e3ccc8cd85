#!/usr/bin/env python3
"""Accuracy of a model file in the C engine on a pack from make_eval_pack.py.

    python3 tools/train/eval_engine.py MODEL --pack DIR [--vim-infer build/engine/vim-infer]
        [--device cuda --precision fp16] [--compare TORCH_JSON]

Classification runs `vim-infer eval-classify MODEL --raw DIR/images.rgb --size WxH --count N`
(one `index top1` line per frame) and reports top1; segmentation runs
`vim-infer eval-segment ... --masks FILE` (N frame-sized masks of W x H bytes) and
reports mIoU over all pixels (11 classes, ignore_index left out) and pixel accuracy.
--compare takes eval_torch.py's JSON line (file) and adds the differences.
Prints one JSON line.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def seg_metrics(pred, lab, K):
    ok = lab < K
    conf = np.bincount(lab[ok].astype(np.int64) * K + pred[ok].astype(np.int64),
                       minlength=K * K).reshape(K, K).astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), 0.0)
    present = union > 0
    return {"miou": float(iou[present].mean()) if present.any() else 0.0,
            "pixel_acc": float(tp.sum() / max(conf.sum(), 1)),
            "iou": [round(float(v), 4) for v in iou]}


def find_vim_infer(root):
    for b in ("build", "build-gpu", "build-cuda"):
        p = os.path.join(root, b, "engine", "vim-infer")
        if os.access(p, os.X_OK):
            return p
    return "vim-infer"


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--pack", required=True)
    ap.add_argument("--vim-infer", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--compare", help="eval_torch.py JSON output (file)")
    a = ap.parse_args(argv)
    with open(os.path.join(a.pack, "pack.json")) as f:
        pk = json.load(f)
    n, w, h, K = pk["count"], pk["width"], pk["height"], pk["num_classes"]
    exe = a.vim_infer or find_vim_infer(root)
    mode = "eval-classify" if pk["task"] == "classification" else "eval-segment"
    cmd = [exe, mode, a.model, "--raw", os.path.join(a.pack, "images.rgb"), "--size", f"{w}x{h}",
           "--count", str(n)]
    if a.device:
        cmd += ["--device", a.device]
    if a.precision:
        cmd += ["--precision", a.precision]
    res = {"model": a.model, "task": pk["task"], "device": a.device or "cpu",
           "precision": a.precision or "default", "count": n}
    with tempfile.TemporaryDirectory() as td:
        if pk["task"] == "segmentation":
            masks = os.path.join(td, "masks.raw")
            cmd += ["--masks", masks]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-2000:])
            raise SystemExit(f"{' '.join(cmd)} failed with {p.returncode}")
        if pk["task"] == "classification":
            pred = {}
            for line in p.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0].isdigit():
                    pred[int(parts[0])] = int(parts[1])
            with open(os.path.join(a.pack, "labels.txt")) as f:
                labels = [int(v) for v in f.read().split()]
            if len(pred) != n:
                raise SystemExit(f"vim-infer printed {len(pred)} predictions for {n} frames")
            res["top1"] = sum(pred[i] == labels[i] for i in range(n)) / n
            key = "top1"
        else:
            got = np.fromfile(masks, dtype=np.uint8)
            if got.size != n * w * h:
                raise SystemExit(f"masks file has {got.size} bytes, expected {n * w * h}")
            lab = np.fromfile(os.path.join(a.pack, "labels.raw"), dtype=np.uint8)
            res.update(seg_metrics(got, lab, K))
            key = "miou"
    if a.compare:
        with open(a.compare) as f:
            tj = json.loads([l for l in f.read().splitlines() if l.strip().startswith("{")][-1])
        res["torch"] = tj.get(key)
        res["diff_vs_torch"] = None if tj.get(key) is None else res[key] - tj[key]
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
