#!/usr/bin/env python3
"""Numpy-only check that random_weights gives well-conditioned nets (no torch).

For each variant at full depth (24 blocks) it runs vim_np.forward in float64 on
random_weights.random_input and reports:
  - the logit std and max |logit| (should be O(1): neither exploding nor ~0);
  - the input sensitivity: mean over classes of the std across the batch of
    the logits, divided by the overall logit std (near 0 would mean the output
    ignores the image, which would make parity tests weak);
  - the scan's share: the RMS change of the logits when the scan term C.h is
    dropped (only the skip D * x left), over the logit std; small would mean
    scan bugs hardly change the logits;
  - the RMS of the residual stream and of the mixer output at a few depths.
Fails (exit 1) when a logit std is outside [0.05, 20], the sensitivity < 0.1
or the scan share < 0.1.

    /usr/bin/python3 tests/reference/check_conditioning.py [--variants vim_ti vim_s ...] [--batch 3]
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools"))

import vim_np  # noqa: E402
from vimtools import random_weights, vimconfig  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="*", default=["vim_ti", "vim_s", "vim_b"])
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    bad = 0
    for key in args.variants:
        t0 = time.time()
        cfg = vimconfig.variant_config(key)
        w = random_weights.random_tensors(cfg, args.seed)
        x = random_weights.random_input(7, args.batch, cfg)
        logits, stats = vim_np.forward(cfg, w, x, return_stats=True)
        std = float(logits.std())
        sens = float(logits.std(axis=0).mean() / std)
        noscan = vim_np.forward(cfg, w, x, scan=False)
        share = float(np.sqrt(np.mean((noscan - logits) ** 2)) / std)
        ok = 0.05 <= std <= 20 and sens >= 0.1 and share >= 0.1 and np.isfinite(logits).all()
        bad += not ok
        picks = sorted({0, 1, len(stats) // 2, len(stats) - 1})
        layers = ", ".join(f"L{i}: res {stats[i][0]:.3f} mix {stats[i][1]:.3f}" for i in picks)
        print(f"{key}: logit std {std:.3f}, max |logit| {np.abs(logits).max():.3f}, "
              f"input sensitivity {sens:.2f}, scan share {share:.2f}; {layers}; {time.time() - t0:.1f} s "
              f"{'ok' if ok else 'BAD'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
