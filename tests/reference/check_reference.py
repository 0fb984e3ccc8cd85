#!/usr/bin/env python3
"""Checks the reference itself (needs torch):

1. vim_ref.py (torch, flipped backward scan, conv2d patch embed) against
   vim_np.py (numpy, anti-causal backward scan in original order, im2col) on
   a range of small configs, including odd ones (d_conv 1..5, cls_token none,
   non-square images, sequence shorter than the conv width);
2. each fixture in tests/reference/fixtures is reproduced by vim_ref (and, for
   the small ones, by vim_np) from its recorded model and input;
3. the model file that tools/vim-random-model --fixture writes holds exactly
   the weights the fixture used (read back with vim_ref.load_safetensors).

    python3 tests/reference/check_reference.py [--all]   (--all: vim_np on the big fixtures and
                                                          vim_ref on the 1024-token one too, slow)
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import torch
except ImportError:
    print("SKIP: torch is not installed (pip install torch; CPU is enough)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import make_fixtures  # noqa: E402
import vim_np  # noqa: E402
import vim_ref  # noqa: E402
from vimtools import random_weights, vimconfig  # noqa: E402

CONFIGS = [
    dict(embed_dim=16, depth=2, stride=8, patch_size=8, image_size=(24, 40), d_state=4, num_classes=5),
    dict(embed_dim=16, depth=2, stride=4, patch_size=8, image_size=(16, 32), d_state=4, num_classes=5,
         cls_token="none"),
    dict(embed_dim=24, depth=1, stride=8, patch_size=8, image_size=(8, 16), d_state=3, num_classes=3,
         d_conv=5),                           # L = 3 < d_conv
    dict(embed_dim=16, depth=3, stride=2, patch_size=4, image_size=(12, 10), d_state=4, num_classes=7,
         d_conv=1, expand=3, dt_rank=5),
    dict(embed_dim=20, depth=2, stride=3, patch_size=5, image_size=(11, 14), d_state=6, num_classes=4,
         d_conv=2, norm_eps=1e-3),
    dict(embed_dim=32, depth=2, stride=8, patch_size=8, image_size=(8, 8), d_state=8, num_classes=4),   # M = 1
    # segmenters: grid 3 x 5 with a skipped last block; a 1 x 1 grid (the 3x3 conv sees only its centre)
    dict(embed_dim=16, depth=3, stride=8, patch_size=8, image_size=(24, 40), d_state=4, num_classes=6,
         task="segmentation", cls_token="none", seg_layers=(0, 1), seg_channels=12),
    dict(embed_dim=16, depth=2, stride=8, patch_size=8, image_size=(8, 8), d_state=4, num_classes=3,
         task="segmentation", cls_token="none", seg_channels=5),
]


def ref_logits(cfg, tensors, img):
    """(B, classes) for a classifier, (B, K * gh * gw) for a segmenter (as fixtures store them)."""
    model = vim_ref.model_from_tensors(cfg, tensors)
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(img, dtype=np.float64))).numpy()
    return out.reshape(out.shape[0], -1)


def np_logits(cfg, tensors, img):
    out = vim_np.forward(cfg, tensors, img)
    return out.reshape(out.shape[0], -1)


def relerr(a, b):
    return float(np.abs(a - b).max() / max(1e-30, np.abs(b).max()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--all", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    failures = 0

    for i, kw in enumerate(CONFIGS):
        cfg = vimconfig.make_config(**kw)
        w = random_weights.random_tensors(cfg, 100 + i)
        # larger dt so the scan state matters more, and a few softplus inputs past the threshold
        for k in w:
            if k.endswith("dt_proj.bias") or k.endswith("dt_proj_b.bias"):
                w[k] = w[k] + np.float32(2.0)
                w[k][:2] = np.float32(25.0)
        x = random_weights.random_input(5 + i, 2, cfg)
        a = ref_logits(cfg, w, x)
        b = np_logits(cfg, w, x)
        e = relerr(a, b)
        ok = e < 1e-12
        failures += not ok
        print(f"config {i} {kw}: vim_ref vs vim_np rel err {e:.2e} {'ok' if ok else 'FAIL'}")

    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(glob.glob(os.path.join(HERE, "fixtures", "*.json"))):
            with open(path) as f:
                fx = json.load(f)
            want = np.array(fx["logits"])
            cfg = make_fixtures.make_config(fx["model"]["config"])
            w = random_weights.random_tensors(cfg, fx["model"]["weight_seed"])
            w = {k: make_fixtures.round_to_dtype(v, fx["model"]["dtype"]) for k, v in w.items()}
            x = random_weights.random_input(fx["input"]["seed"], fx["input"]["batch"], cfg)
            if args.all or cfg["num_patches"] <= 729:
                e1 = relerr(ref_logits(cfg, w, x), want)
                msg = f"{fx['name']}: vim_ref {e1:.1e}"
                ok = e1 < 1e-13
            else:  # 1024 tokens (Vim-Ti 512x512): about 11 min on 2 cores
                msg, ok = f"{fx['name']}: vim_ref skipped (--all runs it)", True
            if args.all or cfg["num_patches"] < 100:
                e2 = relerr(np_logits(cfg, w, x), want)
                msg += f", vim_np {e2:.1e}"
                ok = ok and e2 < 1e-12
            # the model file vim-random-model --fixture writes
            out = os.path.join(tmp, fx["name"] + ".safetensors")
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "vim-random-model"),
                            "--fixture", path, "-o", out], check=True)
            model, cfg2, labels = vim_ref.load_safetensors(out)
            same = all(np.array_equal(model.state_dict()[k].numpy(), w[k].astype(np.float64)) for k in w)
            same = same and cfg2 == cfg and labels == [f"class_{j}" for j in range(cfg["num_classes"])]
            msg += ", model file " + ("identical" if same else "DIFFERS")
            ok = ok and same
            failures += not ok
            print(msg + (" ok" if ok else " FAIL"), flush=True)
    print("FAILED" if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
