#!/usr/bin/env python3
"""vim-infer's segment and batch-evaluation commands on random models:

- eval-segment writes count * W * H mask bytes, the same for every --batch,
  and image 0's class shares equal what `vim-infer segment --mask-size frame`
  prints for the same picture read from a PPM file (another path in);
- eval-classify prints "index top1" per image, the same for every --batch,
  and the top-1 of `vim-infer classify --top-k 1` on the PPM files.

    test_cli_eval.py --vim-infer BIN --tools DIR        (numpy only)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

W, H, N = 37, 23, 5   # odd sizes: no stride or alignment luck


def run(*cmd):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def write_ppm(path, img):
    with open(path, "wb") as f:
        f.write(b"P6 %d %d 255\n" % (img.shape[1], img.shape[0]) + img.tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vim-infer", required=True)
    ap.add_argument("--tools", required=True)
    args = ap.parse_args()
    vi = args.vim_infer
    rng = np.random.default_rng(3)
    # smooth-ish pictures: random colours upsampled, so masks have regions
    imgs = np.repeat(np.repeat((rng.random((N, 6, 10, 3)) * 255).astype(np.uint8), 4, 1), 4, 2)[:, :H, :W]
    imgs = np.ascontiguousarray(imgs)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "images.rgb")
        imgs.tofile(raw)
        ppms = []
        for i in range(N):
            ppms.append(os.path.join(tmp, f"img{i}.ppm"))
            write_ppm(ppms[i], imgs[i])
        seg = os.path.join(tmp, "seg.safetensors")
        cls = os.path.join(tmp, "cls.safetensors")
        rm = [sys.executable, os.path.join(args.tools, "vim-random-model")]
        subprocess.run(rm + ["--task", "segmentation", "--variant", "tiny", "--image-size", "64,96",
                             "--resize", "letterbox", "-o", seg], check=True)
        subprocess.run(rm + ["--variant", "vim_ti", "--depth", "2", "--num-classes", "20",
                             "--image-size", "64,64", "-o", cls], check=True)

        masks = {}
        for b in (1, 2, 32):
            out = os.path.join(tmp, f"masks{b}.u8")
            run(vi, "eval-segment", seg, "--raw", raw, "--size", f"{W}x{H}", "--count", N,
                "--masks", out, "--batch", b)
            masks[b] = np.fromfile(out, dtype=np.uint8)
            assert masks[b].size == N * W * H, f"batch {b}: {masks[b].size} mask bytes"
        assert all((masks[b] == masks[1]).all() for b in masks), "masks depend on --batch"
        m0 = masks[1][:W * H]
        assert len(np.unique(m0)) > 1, "mask 0 is one class: the test would prove little"
        text = run(vi, "segment", "--mask-size", "frame", seg, ppms[0])
        assert f"mask {W}x{H}" in text, text
        printed = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"id +(\d+) +([\d.]+) %", text)}
        counts = np.bincount(m0, minlength=11)
        for k, c in enumerate(counts):
            want = 100.0 * c / (W * H)
            assert abs(printed.get(k, 0.0) - want) < 0.006, f"class {k}: printed {printed.get(k)}, eval {want}"
        print(f"eval-segment: {N} masks of {W}x{H}, batch 1/2/32 identical, "
              f"image 0 shares match `segment` ({len(printed)} classes)")

        tops = {}
        for b in (1, 3):
            lines = run(vi, "eval-classify", cls, "--raw", raw, "--size", f"{W}x{H}", "--count", N,
                        "--batch", b).split("\n")
            tops[b] = [tuple(int(v) for v in ln.split()) for ln in lines if ln]
            assert [t[0] for t in tops[b]] == list(range(N)), lines
        assert tops[1] == tops[3], "eval-classify depends on --batch"
        for i in range(N):
            text = run(vi, "classify", "--top-k", "1", cls, ppms[i])
            top1 = int(re.search(r"id +(\d+)", text).group(1))
            assert top1 == tops[1][i][1], f"image {i}: classify {top1}, eval-classify {tops[1][i][1]}"
        print(f"eval-classify: {N} images, batch 1/3 identical, top-1 equals `classify`")
        # wrong inputs are refused with a message, not a crash
        r = subprocess.run([vi, "eval-segment", seg, "--raw", raw, "--size", f"{W}x{H}", "--count",
                            str(N + 1), "--masks", os.path.join(tmp, "x.u8")], capture_output=True, text=True)
        assert r.returncode == 1 and "fewer than" in r.stderr, r.stderr
        r = subprocess.run([vi, "eval-classify", seg, "--raw", raw, "--size", f"{W}x{H}", "--count", "1"],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "segmentation model" in r.stderr, r.stderr
    print("PASS")


if __name__ == "__main__":
    main()
