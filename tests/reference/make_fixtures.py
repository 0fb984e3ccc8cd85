#!/usr/bin/env python3
"""Compute the reference logits fixtures (tests/reference/fixtures/*.json) with vim_ref.py.

    python3 tests/reference/make_fixtures.py [--only NAME ...] [--out DIR] [--list]

Needs torch (CPU is fine). Each fixture:
  {"name", "model": {"config": <make_config kwargs>, "weight_seed", "dtype"},
   "input": {"seed", "batch"}, "logits": [[...]], "reference": "..."}
The model is vimtools.random_weights.random_tensors(make_config(**config), weight_seed),
rounded to `dtype` (what `vim-random-model --fixture` writes), the input is
random_weights.random_input(seed, batch, cfg); logits in float64. A
segmenter's row holds its (K, grid_h, grid_w) logits flattened.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import vim_ref  # noqa: E402
from vimtools import random_weights, safetensors_io, vimconfig  # noqa: E402


def _variant_kwargs(key):
    v = vimconfig.VARIANTS[key]
    return dict(name=v["name"], embed_dim=v["embed_dim"], depth=24, stride=v["stride"], patch_size=16,
                image_size=[224, 224], d_state=16, expand=2, d_conv=4, dt_rank=-(-v["embed_dim"] // 16),
                num_classes=1000, cls_token="middle", norm_eps=1e-5)


TINY = dict(name="tiny", embed_dim=32, depth=2, stride=8, patch_size=8, image_size=[32, 32], d_state=8,
            expand=2, d_conv=4, dt_rank=2, num_classes=10, cls_token="middle", norm_eps=1e-5)
# Overlapping patches (stride 4 < patch 8), a non-square image (grid 7 x 11, M = 77 odd),
# three layers, dt_rank 3.
TINY_S4 = dict(name="tiny_s4", embed_dim=48, depth=3, stride=4, patch_size=8, image_size=[32, 48],
               d_state=16, expand=2, d_conv=4, dt_rank=3, num_classes=10, cls_token="middle", norm_eps=1e-5)

# Segmenters (docs/segmentation.md): no class token, logits per token.
TINY_SEG = dict(name="tiny_seg", task="segmentation", embed_dim=32, depth=4, stride=16, patch_size=16,
                image_size=[64, 96], d_state=8, expand=2, d_conv=4, dt_rank=2, num_classes=5,
                cls_token="none", norm_eps=1e-5, seg_layers=[0, 1, 2, 3], seg_channels=16)
# Overlapping patches (stride 8: grid 7 x 11), two levels that skip the last block.
TINY_SEG_S8 = dict(TINY_SEG, name="tiny_seg_s8", stride=8, seg_layers=[1, 2], seg_channels=24,
                   num_classes=7)
VIM_TI_SEG = dict(_variant_kwargs("vim_ti"), name="vim_ti_seg", task="segmentation", image_size=[512, 512],
                  num_classes=11, cls_token="none", seg_layers=[5, 11, 17, 23], seg_channels=128)

# name -> (config kwargs, weight seed, dtype, input seed, batch)
FIXTURES = {
    "tiny_b1": (TINY, 1, "F32", 11, 1),
    "tiny_b4": (TINY, 1, "F32", 7, 4),
    "tiny_s4_b1": (TINY_S4, 2, "F32", 11, 1),
    "tiny_s4_b4": (TINY_S4, 2, "F32", 7, 4),
    "tiny_bf16_b4": (TINY, 3, "BF16", 7, 4),
    "tiny_f16_b4": (TINY, 3, "F16", 7, 4),
    "vim_ti_b1": (_variant_kwargs("vim_ti"), 1, "F32", 11, 1),
    "vim_ti_b4": (_variant_kwargs("vim_ti"), 1, "F32", 7, 4),
    "vim_ti_s8_b1": (_variant_kwargs("vim_ti_s8"), 1, "F32", 11, 1),
    "vim_ti_s8_b4": (_variant_kwargs("vim_ti_s8"), 1, "F32", 7, 4),
    "vim_s_b1": (_variant_kwargs("vim_s"), 1, "F32", 11, 1),
    "vim_s_b4": (_variant_kwargs("vim_s"), 1, "F32", 7, 4),
    "tiny_seg_b2": (TINY_SEG, 4, "F32", 7, 2),
    "tiny_seg_s8_b2": (TINY_SEG_S8, 5, "F32", 11, 2),
    "tiny_seg_bf16_b1": (TINY_SEG, 6, "BF16", 7, 1),
    "vim_ti_seg512_b1": (VIM_TI_SEG, 1, "F32", 11, 1),
}


def round_to_dtype(a, dtype):
    """The float32 values a tensor has after being stored as `dtype`."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return safetensors_io.from_bf16(safetensors_io.to_bf16(a)).reshape(a.shape)
    raise ValueError(dtype)


def make_config(kwargs):
    kw = dict(kwargs)
    kw["image_size"] = tuple(kw["image_size"])
    if "seg_layers" in kw:
        kw["seg_layers"] = tuple(kw["seg_layers"])
    return vimconfig.make_config(**kw)


def compute(name, spec):
    kwargs, wseed, dtype, iseed, batch = spec
    cfg = make_config(kwargs)
    tensors = {k: round_to_dtype(v, dtype) for k, v in random_weights.random_tensors(cfg, wseed).items()}
    model = vim_ref.model_from_tensors(cfg, tensors, torch.float64)
    x = torch.from_numpy(random_weights.random_input(iseed, batch, cfg).astype(np.float64))
    with torch.no_grad():
        # a segmenter's (B, K, gh, gw) logits are stored one flat row per image
        logits = model(x).numpy().reshape(batch, -1)
    return {
        "name": name,
        "model": {"config": kwargs, "weight_seed": wseed, "dtype": dtype},
        "input": {"seed": iseed, "batch": batch},
        "logits": [[float(v) for v in row] for row in logits],
        "reference": f"tests/reference/vim_ref.py in float64, torch {torch.__version__}",
    }


def dump_fixture(fx, path):
    """JSON with one logits row per line; floats as Python repr (shortest round-trip)."""
    head = {k: v for k, v in fx.items() if k != "logits"}
    text = json.dumps(head, indent=1)
    assert text.endswith("}")
    rows = ",\n  ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in fx["logits"])
    text = text[:-1].rstrip() + ',\n "logits": [\n  ' + rows + "\n ]\n}\n"
    json.loads(text)  # must stay valid JSON
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        print("\n".join(FIXTURES))
        return
    names = args.only or list(FIXTURES)
    for n in names:
        if n not in FIXTURES:
            raise SystemExit(f"unknown fixture {n}; --list shows them")
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for n in names:
        t0 = time.time()
        fx = compute(n, FIXTURES[n])
        path = os.path.join(args.out, n + ".json")
        dump_fixture(fx, path)
        lg = np.array(fx["logits"])
        print(f"{n}: {time.time() - t0:.1f} s, logits std {lg.std():.4f}, "
              f"max |logit| {np.abs(lg).max():.4f} -> {os.path.relpath(path, ROOT)}", flush=True)


if __name__ == "__main__":
    main()
