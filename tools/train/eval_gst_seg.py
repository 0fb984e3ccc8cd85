#!/usr/bin/env python3
"""Segmentation mIoU through GStreamer: the CamVid val clip decoded and run
through `vimsegment mask-size=frame`, the masks compared with the val labels.

    python3 tools/train/eval_gst_seg.py [--model M] [--clip C] [--data TAR]
        [--device cpu|cuda] [--precision fp32|fp16|bf16] [--gst-plugin-path DIR]
        [--mask-format rle|png] [--compare 0.59502 | --compare ENGINE_JSON]

Pipeline (gst-launch-1.0, GST_PLUGIN_PATH=DIR):

    filesrc location=C ! decodebin ! videoconvert !
        vimsegment model-file=M mask-size=frame device=D ! vimannotate mask-format=rle
        location=OUT.jsonl ! fakesink

Frame i of the clip (vimannotate's `frame`) is compared with the i-th
`val/labels/*.png` of the tar (or folder) in name order, the frame order of
tools/train/data.py and make_eval_pack.py. The clip should have as many
frames as there are labels (101); when not, a line says so on stderr and the
common prefix is compared. The confusion matrix is accumulated over all
pixels (11 classes, labels >= 11 ignored), as eval_engine.py does.

--compare takes the image-based mIoU (a number, or eval_engine.py's JSON line
in a file) and adds it and the difference (gst - image). Prints one JSON line.
Needs numpy; reads PNGs with PIL when it is installed, else with zlib.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from eval_engine import seg_metrics  # noqa: E402  (numpy only)

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist"]
CAMVID_IGNORE = 11


# ---------------------------------------------------------------- PNG reading

def _unfilter(raw, w, h, bpp):
    """PNG scanline filters (types 0-4) of a non-interlaced image -> (h, w*bpp) uint8."""
    stride = w * bpp
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    pos = 0
    for y in range(h):
        ft = raw[pos]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=pos + 1)
        pos += stride + 1
        if ft == 0:
            cur = line.copy()
        elif ft == 1 and bpp == 1:
            cur = np.cumsum(line, dtype=np.uint64).astype(np.uint8)
        elif ft == 2:
            cur = line + prev
        else:  # Sub (bpp > 1), Average, Paeth: sequential along the row
            ln, pv = line.tolist(), prev.tolist()
            c = [0] * stride
            for x in range(stride):
                a = c[x - bpp] if x >= bpp else 0
                b = pv[x]
                if ft == 1:
                    v = a
                elif ft == 3:
                    v = (a + b) >> 1
                elif ft == 4:
                    cc = pv[x - bpp] if x >= bpp else 0
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    v = a if (pa <= pb and pa <= pc) else (b if pb <= pc else cc)
                else:
                    raise ValueError(f"PNG filter type {ft}")
                c[x] = (ln[x] + v) & 255
            cur = np.array(c, dtype=np.uint8)
        out[y] = cur
        prev = cur
    return out


def read_png_gray(data):
    """8-bit grayscale (or palette: the indices) PNG bytes -> uint8 (H, W)."""
    try:
        import io
        from PIL import Image
        im = Image.open(io.BytesIO(data))
        if im.mode not in ("L", "P"):
            raise ValueError(f"PNG mode {im.mode}, expected 8-bit grayscale")
        return np.asarray(im, dtype=np.uint8)
    except ImportError:
        pass
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif typ == b"IDAT":
            idat.append(chunk)
        elif typ == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (0, 3) or interlace:
        raise ValueError(f"PNG depth {depth} colour type {ctype} interlace {interlace}: "
                         "only 8-bit grayscale/palette, not interlaced")
    return _unfilter(zlib.decompress(b"".join(idat)), w, h, 1)


def read_val_labels(path, split="val"):
    """{split}/labels/*.png of a tar or folder, in name order -> (names, [uint8 (H, W)])."""
    want = lambda n: n.startswith(f"{split}/labels/") and n.endswith(".png")  # noqa: E731
    blobs = {}
    if os.path.isdir(path):
        d = os.path.join(path, split, "labels")
        for f in os.listdir(d):
            if f.endswith(".png"):
                with open(os.path.join(d, f), "rb") as fh:
                    blobs[f"{split}/labels/{f}"] = fh.read()
    else:
        with tarfile.open(path, "r:gz" if path.endswith(".gz") else "r:") as tf:
            for m in tf:
                name = m.name[2:] if m.name.startswith("./") else m.name
                if m.isfile() and want(name):
                    blobs[name] = tf.extractfile(m).read()
    names = sorted(blobs)
    return names, [read_png_gray(blobs[n]) for n in names]


# ---------------------------------------------------------------- GStreamer

def find_plugin_dir(root):
    for b in ("build", "build-gst", "build-gpu", "build-cuda"):
        p = os.path.join(root, b, "gst-plugin")
        if os.path.exists(os.path.join(p, "libgstvim.so")):
            return p
    return os.path.join(root, "build", "gst-plugin")


def run_pipeline(a, outdir):
    """Runs the pipeline; returns (JSON lines path, gst-launch argv)."""
    jsonl = os.path.join(outdir, "masks.jsonl")
    seg = ["vimsegment", f"model-file={a.model}", "mask-size=frame", f"device={a.device}"]
    if a.precision:
        seg.append(f"precision={a.precision}")
    ann = ["vimannotate", f"mask-format={a.mask_format}", f"location={jsonl}"]
    if a.mask_format == "png":
        ann.append(f"mask-location={os.path.join(outdir, 'masks')}")
    argv = [a.gst_launch, "-q", "filesrc", f"location={a.clip}", "!", "decodebin", "!",
            "videoconvert", "!", *seg, "!", *ann, "!", "fakesink", "sync=false"]
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = a.gst_plugin_path
    if "GST_PLUGIN_PATH_1_0" in env:  # it takes precedence over GST_PLUGIN_PATH
        env["GST_PLUGIN_PATH_1_0"] = a.gst_plugin_path
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(jsonl):
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-4000:])
        raise SystemExit(f"{' '.join(argv)} failed with {p.returncode}")
    return jsonl, argv


def rle_decode(rle, n):
    v = np.asarray(rle, dtype=np.int64).reshape(-1, 2)
    if v[:, 1].sum() != n:
        raise SystemExit(f"RLE covers {v[:, 1].sum()} pixels, expected {n}")
    return np.repeat(v[:, 0].astype(np.uint8), v[:, 1])


def read_masks(jsonl):
    """{frame number: uint8 (H, W)} from vimannotate's lines."""
    masks = {}
    with open(jsonl) as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            seg = d.get("segmentation")
            if not seg or not seg.get("mask"):
                raise SystemExit(f"frame {d.get('frame')}: no segmentation mask in the line")
            w, h = seg["mask_size"]["width"], seg["mask_size"]["height"]
            m = seg["mask"]
            if m["format"] == "rle":
                mask = rle_decode(m["rle"], w * h).reshape(h, w)
            else:
                with open(m["path"], "rb") as fh:
                    mask = read_png_gray(fh.read())
            if mask.shape != (h, w):
                raise SystemExit(f"frame {d['frame']}: mask {mask.shape}, expected {(h, w)}")
            masks[int(d["frame"])] = mask
    return masks


def main(argv=None):
    shared = os.path.join(os.path.dirname(_ROOT), "shared", "data")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(_ROOT, "models", "vim-camvid-segmentation.safetensors"))
    ap.add_argument("--clip", default=os.path.join(shared, "videos", "camvid_0016E5_val_15fps.mp4"))
    ap.add_argument("--data", default=os.path.join(shared, "camvid-trainval.tar"),
                    help="CamVid tar (or folder) with val/labels/*.png")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--precision", default=None, help="vimsegment precision (fp32, fp16, bf16)")
    ap.add_argument("--gst-plugin-path", default=None,
                    help="folder with libgstvim.so (default: build/gst-plugin of the source tree)")
    ap.add_argument("--gst-launch", default="gst-launch-1.0")
    ap.add_argument("--mask-format", default="rle", choices=["rle", "png"],
                    help="how vimannotate hands the masks over (default rle)")
    ap.add_argument("--expect-frames", type=int, default=None,
                    help="frames the clip should have (default: the number of labels)")
    ap.add_argument("--compare", default=None,
                    help="image-based mIoU: a number, or a file with eval_engine.py's JSON line")
    ap.add_argument("--keep", default=None, help="keep the JSON lines (and PNG masks) in this folder")
    a = ap.parse_args(argv)
    a.gst_plugin_path = os.path.abspath(a.gst_plugin_path or find_plugin_dir(_ROOT))
    for what, p in (("model", a.model), ("clip", a.clip), ("data", a.data)):
        if not os.path.exists(p):
            raise SystemExit(f"--{what} {p}: not found")
    if shutil.which(a.gst_launch) is None:
        raise SystemExit(f"{a.gst_launch}: not found")

    names, labels = read_val_labels(a.data)
    if not labels:
        raise SystemExit(f"{a.data}: no val/labels/*.png")
    K = len(CAMVID_CLASSES)
    t0 = time.time()
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        jsonl, _ = run_pipeline(a, a.keep)
        masks = read_masks(jsonl)
    else:
        with tempfile.TemporaryDirectory(prefix="eval-gst-seg-") as td:
            jsonl, _ = run_pipeline(a, td)
            masks = read_masks(jsonl)
    seconds = time.time() - t0

    n = len(masks)
    expect = a.expect_frames if a.expect_frames is not None else len(labels)
    if sorted(masks) != list(range(n)):
        raise SystemExit(f"frame numbers are not 0..{n - 1}: {sorted(masks)[:5]} ...")
    if n != expect or n != len(labels):
        sys.stderr.write(f"eval_gst_seg: the clip gave {n} frames, expected {expect} "
                         f"({len(labels)} labels); comparing the first {min(n, len(labels))}\n")
    m = min(n, len(labels))
    conf_pred, conf_lab = [], []
    for i in range(m):
        if masks[i].shape != labels[i].shape:
            raise SystemExit(f"frame {i}: mask {masks[i].shape[1]}x{masks[i].shape[0]}, label "
                             f"{names[i]} {labels[i].shape[1]}x{labels[i].shape[0]}")
        conf_pred.append(masks[i].ravel())
        conf_lab.append(labels[i].ravel())
    res = {"model": a.model, "clip": os.path.basename(a.clip), "device": a.device,
           "precision": a.precision or "default", "frames": n, "labels": len(labels),
           "compared": m}
    res.update(seg_metrics(np.concatenate(conf_pred), np.concatenate(conf_lab), K))
    res["miou"] = round(res["miou"], 5)
    res["pixel_acc"] = round(res["pixel_acc"], 5)
    res["classes"] = CAMVID_CLASSES
    if a.compare is not None:
        try:
            img = float(a.compare)
        except ValueError:
            with open(a.compare) as f:
                img = json.loads([ln for ln in f.read().splitlines()
                                  if ln.strip().startswith("{")][-1])["miou"]
        res["image_miou"] = round(img, 5)
        res["diff_vs_image"] = round(res["miou"] - img, 5)
    res["seconds"] = round(seconds, 1)
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
