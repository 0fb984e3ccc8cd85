#!/usr/bin/env python3
"""mIoU of the default segmenter on CamVid val through GStreamer against the
C engine on the original images (suite 'data').

1. tools/train/make_eval_pack.py packs val/images and labels (needs torch: run
   with the first of $VIM_TORCH_PYTHON, python3 on PATH, this python that
   imports torch),
2. tools/train/eval_engine.py: `vim-infer eval-segment` on the pack (image mIoU),
3. tools/train/eval_gst_seg.py: the H.264 clip of the same 101 frames through
   `vimsegment mask-size=frame ! vimannotate mask-format=rle` (GStreamer mIoU),
then asserts GStreamer mIoU >= 0.50 and |GStreamer - image| <= 0.01.
Exit status 77 (skipped) without ../shared/data, the model, gst-launch-1.0
or a python with torch. About 4 minutes on 2 CPU cores.

    test_gst_seg_miou.py --vim-infer build/engine/vim-infer --plugin-dir build/gst-plugin
        --tools tools/train [--model M] [--shared-data DIR] [--device cpu]
"""
import json
import os
import sys
import tempfile

from datatest import SKIP, parser, engine_on_split, requirements, run


def main():
    ap = parser()
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--min-miou", type=float, default=0.50)
    ap.add_argument("--max-diff", type=float, default=0.01)
    a = ap.parse_args()

    tar = os.path.join(a.shared_data, "camvid-trainval.tar")
    clip = os.path.join(a.shared_data, "videos", "camvid_0016E5_val_15fps.mp4")
    py = requirements((tar, clip, a.model), programs=("gst-launch-1.0",))
    if py is None:
        return SKIP

    with tempfile.TemporaryDirectory(prefix="vim-data-seg-") as td:
        img_json = os.path.join(td, "engine.json")
        with open(img_json, "w") as f:
            f.write(engine_on_split(py, a.tools, "segmentation", tar, a.model, a.vim_infer,
                                    a.device, td) + "\n")
        gst = json.loads(run([sys.executable, os.path.join(a.tools, "eval_gst_seg.py"),
                              "--model", a.model, "--clip", clip, "--data", tar,
                              "--device", a.device, "--gst-plugin-path", a.plugin_dir,
                              "--compare", img_json]))
    ok = True
    if gst["frames"] != 101:
        print(f"FAIL: the clip gave {gst['frames']} frames, expected 101")
        ok = False
    if gst["miou"] < a.min_miou:
        print(f"FAIL: GStreamer mIoU {gst['miou']:.5f} < {a.min_miou}")
        ok = False
    if abs(gst["diff_vs_image"]) > a.max_diff:
        print(f"FAIL: |GStreamer {gst['miou']:.5f} - image {gst['image_miou']:.5f}| > {a.max_diff}")
        ok = False
    print(f"{'OK' if ok else 'FAILED'}: GStreamer mIoU {gst['miou']:.5f}, image mIoU "
          f"{gst['image_miou']:.5f}, difference {gst['diff_vs_image']:+.5f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
