#!/usr/bin/env python3
"""Host mask postprocessing (vim_segment_logits) against PyTorch: for a
stretch segmenter, a mask at frame size must equal
    F.interpolate(logits, (H, W), mode='bilinear', align_corners=False).argmax(1)
pixel for pixel (and the confidence round(255 * max softmax) to within 1);
a grid-size mask is the argmax on the grid.

    check_segment_torch.py --postprocess BIN --tools DIR

Skips (77) without torch. meson's Python may lack it: then the python3 on
PATH is tried once.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    other = shutil.which("python3")
    if other and not os.environ.get("VIM_TORCH_REEXEC") and \
            subprocess.run([other, "-c", "import torch"], capture_output=True).returncode == 0:
        os.environ["VIM_TORCH_REEXEC"] = "1"
        os.execv(other, [other] + sys.argv)
    print("SKIP: torch is not installed")
    sys.exit(77)

# (variant options, frame sizes W x H)
CASES = [
    (["--image-size", "64,96", "--num-classes", "7"],
     [(96, 64), (100, 37), (13, 9), (640, 480), (6, 4), (5, 3), (1, 1), (193, 130)]),
    # stride 8 on 16-pixel patches: grid 7 x 11
    (["--image-size", "64,96", "--num-classes", "4"], [(96, 64), (301, 17), (11, 7), (22, 14)]),
]


def run_case(args, tmp, model, K, gh, gw, frames, rng):
    logits = rng.standard_normal((K, gh, gw)).astype(np.float32)
    # a few exact ties between classes 0 and 1: the lowest index must win
    logits[1, 0, :] = logits[0, 0, :]
    lpath = os.path.join(tmp, "logits.f32")
    logits.tofile(lpath)
    out = os.path.join(tmp, "mask.u8")
    t = torch.from_numpy(logits.astype(np.float64))[None]
    bad = 0
    for (w, h) in frames:
        for mode in ("frame", "grid", f"{w}x{h}"):
            subprocess.run([args.postprocess, model, lpath, str(w), str(h), mode, out],
                           check=True, capture_output=True)
            raw = np.fromfile(out, dtype=np.uint8)
            if mode == "grid":
                mh, mw = gh, gw
                up = t
            else:
                mh, mw = h, w
                up = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
            classes = raw[:mh * mw].reshape(mh, mw)
            conf = raw[mh * mw:].reshape(mh, mw).astype(int)
            want = up.argmax(1)[0].numpy()
            want_conf = torch.round(255 * torch.softmax(up, 1).max(1).values[0]).numpy().astype(int)
            diff = int((classes != want).sum())
            cdiff = int(np.abs(conf - want_conf).max())
            ok = diff == 0 and cdiff <= 1
            bad += not ok
            print(f"grid {gh}x{gw} K {K} frame {w}x{h} mask {mode}: {diff} of {mh * mw} pixels differ, "
                  f"max confidence diff {cdiff}: {'ok' if ok else 'FAIL'}")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--postprocess", required=True)
    ap.add_argument("--tools", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (opts, frames) in enumerate(CASES):
            model = os.path.join(tmp, f"seg{i}.safetensors")
            variant = ["--variant", "vim_ti_s8", "--depth", "1"] if i == 1 else ["--variant", "tiny"]
            subprocess.run([sys.executable, os.path.join(args.tools, "vim-random-model"),
                            "--task", "segmentation", "--seg-channels", "8", "--seg-layers", "0",
                            "--resize", "stretch", "-o", model] + variant + opts, check=True)
            with open(model, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                meta = json.loads(f.read(n))["__metadata__"]
            H, W = (int(v) for v in meta["image_size"].split(","))
            P, S = int(meta["patch_size"]), int(meta["stride"])
            gh, gw = (H - P) // S + 1, (W - P) // S + 1
            bad += run_case(args, tmp, model, int(meta["num_classes"]), gh, gw, frames, rng)
    print("FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
