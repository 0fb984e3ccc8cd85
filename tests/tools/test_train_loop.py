#!/usr/bin/env python3
"""tools/train/train.py on CPU with tiny models and synthetic data: the loss
decreases; a run stopped mid-epoch and resumed from its checkpoint gives the
identical next-step loss; export -> read back (tools/vimtools) gives the
checkpoint's tensors, the metadata the engine requires, and (float64) the
same logits in tests/reference/vim_ref.py as the training model.
Skips (77) without torch."""
import os
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: torch is not installed")
    sys.exit(77)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
os.environ["VIM_SCAN_BACKEND"] = "ref"
import train  # noqa: E402
import export  # noqa: E402
import vim_ref  # noqa: E402
from vimtools import safetensors_io, vimconfig  # noqa: E402

CLS = ["--task", "classification", "--synthetic", "128", "--image-size", "8,8", "--patch", "4",
       "--stride", "4", "--embed-dim", "16", "--depth", "2", "--batch", "32", "--epochs", "4",
       "--eval-every", "100", "--device", "cpu", "--lr", "3e-3", "--warmup-epochs", "0.25",
       "--mix-prob", "0", "--drop-path", "0.1", "--reserve-s", "0"]
SEG = ["--task", "segmentation", "--synthetic", "16", "--image-size", "16,16", "--patch", "4",
       "--stride", "4", "--embed-dim", "16", "--depth", "4", "--seg-channels", "8", "--batch", "8",
       "--epochs", "6", "--eval-every", "100", "--device", "cpu", "--lr", "3e-3",
       "--warmup-epochs", "0.5", "--reserve-s", "0"]


def check_loss_and_resume(td):
    full = train.train(CLS + ["--out", os.path.join(td, "a"), "--max-steps", "12"])["losses"]
    first, last = np.mean(full[:3]), np.mean(full[-3:])
    print(f"classification loss first 3 steps {first:.4f}, last 3 {last:.4f}")
    assert len(full) == 12 and last < first - 0.05, full
    part = train.train(CLS + ["--out", os.path.join(td, "b"), "--max-steps", "6"])["losses"]
    assert part == full[:6], (part, full[:6])
    rest = train.train(CLS + ["--out", os.path.join(td, "c"), "--resume", os.path.join(td, "b"),
                              "--max-steps", "6"])["losses"]
    print(f"step 7 loss: continuous {full[6]!r}, resumed {rest[0]!r}; step 12: {full[11]!r} vs {rest[5]!r}")
    assert rest[0] == full[6], (rest[0], full[6])
    assert abs(rest[5] - full[11]) < 1e-3 * abs(full[11])   # moments restored from bf16
    return os.path.join(td, "c")


def check_export_cls(ck, td):
    out = os.path.join(td, "cls.safetensors")
    export.export_checkpoint(ck, out, dtype="F32")
    tensors, meta = safetensors_io.read(out)
    model, cfg, prog = export.model_from_checkpoint(ck)
    want = [n for n, _ in vimconfig.tensor_shapes(cfg)]
    assert list(tensors) == want, (list(tensors)[:5], want[:5])
    sd = model.state_dict()
    for n in want:
        assert np.array_equal(tensors[n], sd[n].numpy()), n
    for k in ("format", "format_version", "task", "name", "image_size", "patch_size", "stride",
              "embed_dim", "depth", "d_state", "expand", "d_conv", "dt_rank", "num_classes",
              "cls_token", "mean", "std", "resize", "crop_ratio", "labels"):
        assert k in meta, k
    assert meta["task"] == "classification" and meta["cls_token"] == "middle"
    assert meta["resize"] == "short-side-crop" and float(meta["crop_ratio"]) == 1.0
    assert len(meta["labels"].split("\n")) == 10
    ref, _, _ = vim_ref.load_safetensors(out)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        e = float((model.double()(x) - ref(x)).abs().max())
    print(f"classification export: {len(want)} tensors, metadata ok, vim_ref logits max abs err {e:.1e}")
    assert e < 1e-6
    # fp16 file (the default): tensors are the fp16 rounding of the checkpoint's
    out16 = os.path.join(td, "cls16.safetensors")
    export.export_checkpoint(ck, out16)
    t16, _ = safetensors_io.read(out16)
    for n in want:
        assert np.array_equal(t16[n], sd[n].float().numpy().astype(np.float16).astype(np.float32)), n


def check_seg(td):
    r = train.train(SEG + ["--out", os.path.join(td, "s"), "--export", os.path.join(td, "seg.safetensors")])
    ls = r["losses"]
    print(f"segmentation: {len(ls)} steps, final {r['final']['export_which']} mIoU "
          f"{r['final'][r['final']['export_which']]['miou']:.3f}, exported file mIoU {r['final']['export']['miou']:.3f}")
    tensors, meta = safetensors_io.read(os.path.join(td, "seg.safetensors"))
    assert meta["task"] == "segmentation" and meta["cls_token"] == "none"
    assert meta["seg_layers"] == "0,1,2,3" and meta["seg_channels"] == "8" and meta["resize"] == "stretch"
    assert "head.weight" not in tensors and "cls_token" not in tensors
    assert tensors["seg_head.dwconv.weight"].shape == (8, 1, 3, 3)
    out = os.path.join(td, "seg32.safetensors")
    export.export_checkpoint(os.path.join(td, "s"), out, dtype="F32")
    model, cfg, _ = export.model_from_checkpoint(os.path.join(td, "s"))   # BatchNorm live
    ref, _, _ = vim_ref.load_safetensors(out)                               # folded, float64
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        e = float((model.double()(x) - ref(x)).abs().max())
    print(f"segmentation export: vim_ref logits vs training model (BatchNorm folded) max abs err {e:.1e}")
    assert e < 1e-5


def check_augment():
    """RandAugment and random erasing: deterministic under a seed, finite,
    every operation changes images at magnitude 9 and keeps them in [0, 1],
    magnitude 0 leaves 8-bit images unchanged (but autocontrast, which has no
    magnitude), erasing zeroes one rectangle."""
    import data
    u8 = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    lab = torch.arange(32) % 10
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        outs.append(data.augment_cifar(u8, lab, 10, data.CIFAR_MEAN, data.CIFAR_STD, pad=2,
                                       randaug_n=2, randaug_m=9, erase_prob=1.0, mix_prob=0.5)[0])
    assert torch.equal(outs[0], outs[1]), "augmentation not reproducible under a seed"
    assert torch.isfinite(outs[0]).all()
    x = u8.float() / 255.0
    graded = [o for o in data.RANDAUG_OPS if o != "autocontrast"]   # autocontrast has no magnitude
    assert torch.allclose(data.rand_augment(x, 3, 0, ops=graded), x, atol=1e-6), \
        "magnitude 0 changed an 8-bit image"
    for name in data.RANDAUG_OPS:
        y = data.rand_augment(x, 1, 9, ops=(name,))
        assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0, name
        if name != "identity":
            assert float((y - x).abs().mean()) > 1e-4, f"{name} left the batch unchanged"
    e = data.random_erase(torch.ones(16, 3, 16, 16), 1.0)
    holes = (e == 0).all(1)                                   # (B, H, W)
    n = holes.flatten(1).sum(1)
    assert bool((n >= 1).all()), "a sample without an erased rectangle"
    for b in range(16):                                       # one axis-aligned rectangle
        ys, xs = torch.nonzero(holes[b], as_tuple=True)
        assert int(n[b]) == (int(ys.max()) - int(ys.min()) + 1) * (int(xs.max()) - int(xs.min()) + 1)
    assert torch.equal(data.random_erase(e, 0.0), e)
    print(f"augment: RandAugment {len(data.RANDAUG_OPS)} ops, erasing {int(n.min())}-{int(n.max())} px: ok")


def main():
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as td:
        ck = check_loss_and_resume(td)
        check_export_cls(ck, td)
        check_seg(td)
        check_augment()
        losses = train.train(CLS + ["--out", os.path.join(td, "ra"), "--max-steps", "3",
                                    "--randaug-n", "2", "--randaug-m", "9", "--erase-prob", "0.5"])["losses"]
        assert len(losses) == 3 and all(np.isfinite(losses)), losses
    print("PASS")


if __name__ == "__main__":
    main()
