#!/usr/bin/env python3
"""Seed corpus and dictionary for fuzz/fuzz_model_file.c (numpy only).

  make_corpus.py [--tools DIR] --corpus OUT_DIR --dict OUT_FILE

Writes a few valid tiny gst-vim model files (every dtype, each resize
policy, overlapping patches, a non-square input, labels in the metadata and
in a labels file the harness provides) and a libFuzzer dictionary of the
format's JSON tokens, keys and values. The models are a few KB, so the
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
    # metadata values
    '"gst-vim"', '"classification"', '"segmentation"', '"middle"', '"none"',
    '"stretch"', '"letterbox"', '"short-side-crop"', '"8,8"', '"8192,8192"', '"1,1"',
    '"0.5,0.5,0.5"', '"0,0,0"', '"nan"', '"inf"', '"1e-45"', '"1e-05"', '"0.875"',
    '"labels.txt"', '"labels10.txt"', '"model.safetensors"', '".."', '"."', '"a\\nb"',
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
    write_dict(args.dict)


if __name__ == "__main__":
    main()
