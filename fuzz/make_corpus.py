#!/usr/bin/env python3
"""Seed corpus and dictionary for fuzz/fuzz_model_file.c (numpy only).

  make_corpus.py [--tools DIR] --corpus OUT_DIR --dict OUT_FILE

Writes a few valid tiny gst-vim model files (every dtype, each resize
policy, overlapping patches, a non-square input, labels in the metadata and
in a labels file the harness provides), tiny segmenters (as
`vim-random-model --task segmentation` writes them, docs/segmentation.md:
several seg_layers, seg_channels and ignore_index values, every dtype, with
and without the optional norm_f.weight, up to 255 classes) and a libFuzzer
dictionary of the format's JSON tokens, keys and values. The models are a few KB, so the
fuzzer's mutations land in the header often and a forward pass is cheap.
"""
import argparse
import os
import sys


def tiny_models(vimconfig):
    base = dict(embed_dim=4, depth=1, stride=4, patch_size=4, image_size=(8, 8),
                d_state=2, expand=1, d_conv=2, dt_rank=1, num_classes=2,
                name="fuzz_tiny", resize="stretch")
    out = []

    def add(name, dtype="F32", labels=True, labels_file=None, **over):
        kw = dict(base)
        kw.update(over)
        cfg = vimconfig.make_config(**kw)
        labs = [f"class_{i}" for i in range(cfg["num_classes"])] if labels else None
        out.append((name, cfg, dtype, labs, labels_file))

    add("tiny-f32")
    add("tiny-f16", dtype="F16")
    add("tiny-bf16", dtype="BF16", labels=False)
    add("tiny-mixed", dtype="mixed")
    add("tiny-letterbox", resize="letterbox", image_size=(8, 12))
    add("tiny-crop", resize="short-side-crop", crop_ratio=0.5)
    add("tiny-overlap", stride=2, image_size=(8, 8))
    add("tiny-depth2", depth=2, expand=2, d_state=3, d_conv=3)
    add("tiny-labels-file", labels=False, labels_file="labels.txt")
    add("tiny-labels10", labels=False, labels_file="labels10.txt", num_classes=10)
    return out


def tiny_segmenters(vimconfig):
    """(name, cfg, dtype, labels, labels_file, norm_f) of small segmenters."""
    base = dict(embed_dim=4, depth=2, stride=4, patch_size=4, image_size=(8, 12),
                d_state=2, expand=1, d_conv=2, dt_rank=1, num_classes=3,
                name="fuzz_tiny_seg", resize="stretch", cls_token="none",
                task="segmentation", seg_channels=3)
    out = []

    def add(name, dtype="F32", labels=True, labels_file=None, norm_f=False, **over):
        kw = dict(base)
        kw.update(over)
        cfg = vimconfig.make_config(**kw)
        labs = [f"class_{i}" for i in range(cfg["num_classes"])] if labels else None
        out.append((name, cfg, dtype, labs, labels_file, norm_f))

    add("seg-f32")                                            # default taps 0,1
    add("seg-f16", dtype="F16", seg_layers=(1,), seg_channels=1, ignore_index=255)
    add("seg-bf16-normf", dtype="BF16", norm_f=True, labels=False, ignore_index=-1)
    add("seg-f16-normf", dtype="F16", norm_f=True, ignore_index=0, num_classes=2)
    add("seg-mixed-4levels", dtype="mixed", depth=4, seg_layers=(0, 1, 2, 3),
        seg_channels=5, ignore_index=2)
    add("seg-letterbox-overlap", resize="letterbox", stride=2, image_size=(8, 10),
        seg_layers=(0,))
    add("seg-crop", dtype="F16", resize="short-side-crop", crop_ratio=0.5,
        image_size=(12, 8), seg_layers=(1,))
    add("seg-labels10", labels=False, labels_file="labels10.txt", num_classes=10)
    add("seg-k255", dtype="BF16", labels=False, num_classes=255, seg_channels=2,
        image_size=(4, 8), seg_layers=(0,))
    # 8 levels (the most), deeper than the harness runs: loader and masks only
    add("seg-8levels", dtype="F16", depth=8, seg_layers=tuple(range(8)), seg_channels=2,
        image_size=(4, 4), labels=False)
    return out


DICT_TOKENS = [
    # structure
    '{', '}', '[', ']', ':', ',', '"', '\\"', '\\n', '\\u0000', ' ',
    '"dtype"', '"shape"', '"data_offsets"', '"__metadata__"',
    '"F32"', '"F16"', '"BF16"', '"I64"', '"F64"', '"U8"',
    '[]', '[0]', '[0,0]', '[1,1,4]', '-1', '0', '1', '2', '3', '4', '8', '16',
    '4294967295', '4294967296', '9223372036854775807', '18446744073709551615',
    '1e3', '1.0', 'true', 'false', 'null',
    # tensor names
    '"cls_token"', '"pos_embed"', '"patch_embed.proj.weight"', '"patch_embed.proj.bias"',
    '"head.weight"', '"head.bias"', '"norm_f.weight"', '"layers.0.norm.weight"',
    '"seg_head.proj.0.weight"', '"seg_head.proj.1.weight"', '"seg_head.proj.7.weight"',
    '"seg_head.proj.8.weight"', '"seg_head.proj_bias"', '"seg_head.dwconv.weight"',
    '"seg_head.dwconv.bias"', '"seg_head.cls.weight"', '"seg_head.cls.bias"',
    '"seg_head.', '[3,4]', '[3,1,3,3]', '[1,1,3,3]', '[255,2]',
    '"layers.0.mixer.in_proj.weight"', '"layers.0.mixer.out_proj.weight"',
    '"layers.0.mixer.conv1d.weight"', '"layers.0.mixer.conv1d_b.bias"',
    '"layers.0.mixer.x_proj.weight"', '"layers.0.mixer.dt_proj_b.bias"',
    '"layers.0.mixer.A_log"', '"layers.0.mixer.A_b_log"', '"layers.0.mixer.D"',
    '"layers.0.mixer.D_b"', '"layers.1.norm.weight"',
    # metadata keys
    '"format"', '"format_version"', '"task"', '"name"', '"image_size"', '"patch_size"',
    '"stride"', '"in_chans"', '"embed_dim"', '"depth"', '"d_state"', '"expand"',
    '"d_conv"', '"dt_rank"', '"num_classes"', '"norm_eps"', '"mean"', '"std"',
    '"resize"', '"crop_ratio"', '"labels"', '"labels_file"', '"x-note"',
    '"cls_token"', '"seg_layers"', '"seg_channels"', '"ignore_index"',
    # metadata values
    '"gst-vim"', '"classification"', '"segmentation"', '"middle"', '"none"',
    '"stretch"', '"letterbox"', '"short-side-crop"', '"8,8"', '"8192,8192"', '"1,1"',
    '"0.5,0.5,0.5"', '"0,0,0"', '"nan"', '"inf"', '"1e-45"', '"1e-05"', '"0.875"',
    '"labels.txt"', '"labels10.txt"', '"model.safetensors"', '".."', '"."', '"a\\nb"',
    '"0"', '"1"', '"-1"', '"255"', '"256"', '"4096"', '"4097"', '"0,1"', '"1,0"', '"0,0"',
    '"0,1,2,3"', '"5,11,17,23"', '"0,1,2,3,4,5,6,7"', '"0,1,2,3,4,5,6,7,8"', '"-1,0"',
    '"2147483647"', '"0x10"', '" 1"', '"1,"',
]


def write_dict(path):
    with open(path, "w") as f:
        f.write("# gst-vim model file: JSON tokens, tensor names, metadata keys and values\n")
        for i, tok in enumerate(DICT_TOKENS):
            esc = tok.replace("\\", "\\\\").replace('"', '\\"')
            f.write(f'kw{i}="{esc}"\n')


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tools", default=os.path.join(here, "..", "tools"),
                    help="the tools directory holding vimtools")
    ap.add_argument("--corpus", required=True, help="output directory for the seed files")
    ap.add_argument("--dict", required=True, help="output dictionary file")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.tools))
    from vimtools import random_weights, safetensors_io, vimconfig

    os.makedirs(args.corpus, exist_ok=True)
    dts = ("F32", "F16", "BF16")
    for seed, (name, cfg, dtype, labels, labels_file) in enumerate(tiny_models(vimconfig), 1):
        tensors = random_weights.random_tensors(cfg, seed)
        meta = vimconfig.metadata(cfg, labels=labels, labels_file=labels_file)
        order = [n for n, _ in vimconfig.tensor_shapes(cfg)]
        if dtype == "mixed":
            index = {n: i for i, n in enumerate(order)}
            dtype = lambda n: dts[index[n] % 3]  # noqa: E731
        safetensors_io.write(os.path.join(args.corpus, name + ".safetensors"),
                             [(n, tensors[n]) for n in order], meta, dtype=dtype)
    for seed, (name, cfg, dtype, labels, labels_file, norm_f) in \
            enumerate(tiny_segmenters(vimconfig), 101):
        tensors = random_weights.random_tensors(cfg, seed)
        meta = vimconfig.metadata(cfg, labels=labels, labels_file=labels_file)
        items = [(n, tensors[n]) for n, _ in vimconfig.tensor_shapes(cfg)]
        if norm_f:  # optional for a segmenter (unused), as a trainer may leave it
            d = cfg["embed_dim"]
            items.append(("norm_f.weight", 1.0 + 0.1 * random_weights.uniform(seed, 999, d)))
        if dtype == "mixed":
            index = {n: i for i, (n, _) in enumerate(items)}
            dtype = lambda n: dts[index[n] % 3]  # noqa: E731
        safetensors_io.write(os.path.join(args.corpus, name + ".safetensors"),
                             items, meta, dtype=dtype)
    write_dict(args.dict)


if __name__ == "__main__":
    main()
