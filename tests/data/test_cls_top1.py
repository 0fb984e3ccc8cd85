#!/usr/bin/env python3
"""Top-1 of the default classifier on the held-out CIFAR-10 split, computed by
the C engine (suite 'data').

1. tools/train/make_eval_pack.py packs the validation split (the last 500
   files per class in name order; never trained on) as RGB8 frames,
2. tools/train/eval_engine.py: `vim-infer eval-classify` on the pack,
then asserts top-1 >= 0.90 over all 5,000 images.
Exit status 77 (skipped) without ../shared/data, the model or a python with
torch. About 5 minutes on 2 CPU cores.

    test_cls_top1.py --vim-infer build/engine/vim-infer --tools tools/train
        [--model M] [--shared-data DIR] [--device cpu] [--min-top1 0.90]
"""
import json
import os
import sys
import tempfile

from datatest import SKIP, parser, engine_on_split, requirements


def main():
    ap = parser()
    ap.add_argument("--min-top1", type=float, default=0.90)
    a = ap.parse_args()

    tar = os.path.join(a.shared_data, "cifar10-train-jpeg.tar.gz")
    py = requirements((tar, a.model))
    if py is None:
        return SKIP

    with tempfile.TemporaryDirectory(prefix="vim-data-cls-") as td:
        res = json.loads(engine_on_split(py, a.tools, "classification", tar, a.model,
                                         a.vim_infer, a.device, td))
    ok = res["count"] == 5000 and res["top1"] >= a.min_top1
    if res["count"] != 5000:
        print(f"FAIL: {res['count']} images evaluated, expected 5000")
    print(f"{'OK' if ok else 'FAILED'}: C engine ({a.device}) top-1 {res['top1']:.4f} on "
          f"{res['count']} held-out images (need >= {a.min_top1})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
