#!/usr/bin/env python3
"""Write the engine's model file from a training checkpoint.

    python3 tools/train/export.py CKPT_DIR OUT.safetensors [--which ema|raw|auto] [--dtype F16]

Tensors: the official names (docs/model-format.md) in fp16 (default), with
the segmentation head of docs/segmentation-plan.md (BatchNorm folded) for
task=segmentation. Metadata: vimtools.vimconfig.metadata plus, for the
segmenter, seg_layers / seg_channels / ignore_index.
"""
import argparse
import os
import sys

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOOLS = os.path.dirname(_HERE)
for _p in (_HERE, _TOOLS):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import ckpt  # noqa: E402
import vim_model  # noqa: E402
from vimtools import safetensors_io, vimconfig  # noqa: E402


def model_from_checkpoint(ckpt_dir, which="auto"):
    """(VimTrain in eval mode on CPU, cfg, progress)."""
    prog, t = ckpt.load(ckpt_dir)
    if which == "auto":
        which = prog.get("export_which") or "ema"
    cfg = dict(prog["cfg"])
    cfg["grid"] = tuple(cfg["grid"])
    cfg["image_size"] = tuple(cfg["image_size"])
    model = vim_model.VimTrain(cfg)
    model.load_state_dict(ckpt.model_state(t, which))
    return model.eval(), cfg, prog


def file_metadata(cfg, meta):
    cfg = dict(cfg)
    if cfg["task"] == "segmentation" and cfg.get("ignore_index") is None:
        cfg["ignore_index"] = meta.get("ignore_index")
    return vimconfig.metadata(cfg, labels=list(meta["labels"]))


def export_model(model, cfg, meta, out_path, dtype="F16"):
    tensors = model.export_tensors()
    shapes = vimconfig.tensor_shapes(cfg)     # a segmenter: the plan's head, no norm_f
    order = [n for n, _ in shapes]
    missing = [n for n in order if n not in tensors]
    extra = [n for n in tensors if n not in order]
    bad = [n for n, shp in shapes if n in tensors and tuple(tensors[n].shape) != tuple(shp)]
    if missing or extra or bad:
        raise ValueError(f"tensor set mismatch: missing {missing[:5]} extra {extra[:5]} shape {bad[:5]}")
    for n in order:
        if not torch.isfinite(tensors[n]).all():
            raise ValueError(f"non-finite values in {n}")
    safetensors_io.write(out_path, [(n, tensors[n].numpy()) for n in order],
                         file_metadata(cfg, meta), dtype=dtype)
    return out_path


def config_from_metadata(meta):
    """Training config (vim_model.make_cfg) from a model file's __metadata__."""
    ints = lambda v: tuple(int(x) for x in v.split(","))  # noqa: E731
    floats = lambda v: tuple(float(x) for x in v.split(","))  # noqa: E731
    task = meta["task"]
    cfg = vim_model.make_cfg(
        task, embed_dim=int(meta["embed_dim"]), depth=int(meta["depth"]),
        image_size=ints(meta["image_size"]), patch_size=int(meta["patch_size"]),
        stride=int(meta["stride"]), d_state=int(meta["d_state"]), expand=int(meta["expand"]),
        d_conv=int(meta["d_conv"]), num_classes=int(meta["num_classes"]),
        seg_layers=ints(meta["seg_layers"]) if task == "segmentation" else None,
        seg_channels=int(meta.get("seg_channels", "128")), name=meta["name"],
        mean=floats(meta["mean"]), std=floats(meta["std"]), resize=meta["resize"],
        crop_ratio=float(meta.get("crop_ratio", "0.875")), seg_bn=False,
        ignore_index=int(meta["ignore_index"]) if "ignore_index" in meta else None)
    cfg["dt_rank"] = int(meta["dt_rank"])
    cfg["norm_eps"] = float(meta.get("norm_eps", "1e-5"))
    return cfg


def model_from_file(path):
    """(VimTrain in eval mode holding the file's tensors, cfg, metadata); the
    segmentation head is built without BatchNorm (the file holds it folded)."""
    arrs, meta = safetensors_io.read(path)
    cfg = config_from_metadata(meta)
    model = vim_model.VimTrain(cfg)
    sd = {k: torch.from_numpy(v.copy()) for k, v in arrs.items()}
    if cfg["task"] == "segmentation":
        sd.pop("norm_f.weight", None)      # allowed in a file, unused
    model.load_state_dict(sd, strict=True)
    return model.eval(), cfg, meta


def export_checkpoint(ckpt_dir, out_path, which="auto", dtype="F16"):
    model, cfg, prog = model_from_checkpoint(ckpt_dir, which)
    export_model(model, cfg, prog["meta"], out_path, dtype)
    print(f"exported {ckpt_dir} ({which if which != 'auto' else prog.get('export_which', 'ema')}) -> "
          f"{out_path} ({os.path.getsize(out_path) / 1e6:.2f} MB)", flush=True)
    return out_path


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a training checkpoint as a gst-vim model file.")
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--which", default="auto", choices=["auto", "ema", "raw"])
    ap.add_argument("--dtype", default="F16", choices=["F16", "BF16", "F32"])
    a = ap.parse_args(argv)
    export_checkpoint(a.ckpt, a.out, a.which, a.dtype)


if __name__ == "__main__":
    main()
