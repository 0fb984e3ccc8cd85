#!/usr/bin/env python3
"""The training model (tools/train/vim_model.py) computes the reference's function:
float64, tiny configs, every scan implementation, logits within 1e-6 of
tests/reference/vim_ref.py (classification; segmentation backbone features),
the segmentation head against an independent float64 loop, and the BatchNorm
folding of the export. Skips (77) without torch."""
import os
import sys

try:
    import torch
except ImportError:
    print("SKIP: torch is not installed")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import vim_model  # noqa: E402
import vim_ref  # noqa: E402

BACKENDS = ["seq", "ref", "chunked"]


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def randomize(model, seed):
    """Trained-looking weights: init, then perturb every tensor (incl. BatchNorm stats)."""
    g = torch.Generator().manual_seed(seed)
    model.init_weights(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                v.add_(0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype))
                if "running_var" in k:
                    v.abs_().add_(0.5)
    return model


def check_classification():
    cfg = vim_model.make_cfg("classification", embed_dim=16, depth=3, image_size=(12, 16),
                             patch_size=4, stride=4, num_classes=7)
    m = randomize(vim_model.VimTrain(cfg), 1).double().eval()
    ref = vim_ref.VimRef(cfg)
    ref.load_state_dict(m.state_dict(), strict=True)
    ref.double().eval()
    x = torch.randn(2, 3, 12, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        want = ref(x)
        for be in BACKENDS:
            os.environ["VIM_SCAN_BACKEND"] = be
            e = rel(m(x), want)
            print(f"classification scan={be}: rel err {e:.2e}")
            assert e < 1e-6, e
    # drop_path is training-only: eval output unchanged
    m2 = vim_model.VimTrain(cfg, drop_path=0.5).double().eval()
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert rel(m2(x), want) < 1e-6


def check_segmentation():
    cfg = vim_model.make_cfg("segmentation", embed_dim=16, depth=4, image_size=(16, 24),
                             patch_size=4, stride=4, num_classes=5, seg_channels=8)
    assert list(cfg["seg_layers"]) == [0, 1, 2, 3] and cfg["seq_len"] == 24
    m = randomize(vim_model.VimTrain(cfg), 3).double().eval()
    folded = m.seg_head.folded()
    ref = vim_ref.VimRef(cfg).double()
    sd = {k: v for k, v in m.state_dict().items() if not k.startswith("seg_head.")}
    sd.update(folded)
    ref.load_state_dict(sd, strict=True)      # the plan's tensors, BatchNorm folded
    ref.eval()
    x = torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        _, feats_ref = ref.forward_features(x, return_mixer_outputs=True)
        feats_ref = [feats_ref[i] for i in cfg["seg_layers"]]
        want = ref(x)
        e = rel(vim_model.seg_reference_head(folded, feats_ref, cfg["grid"]), want)
        print(f"segmentation: independent head loop vs vim_ref head: rel err {e:.2e}")
        assert e < 1e-6
        for be in BACKENDS:
            os.environ["VIM_SCAN_BACKEND"] = be
            _, feats = m.forward_features(x, cfg["seg_layers"])
            for f, fr in zip(feats, feats_ref):
                assert rel(f, fr) < 1e-6
            got = m(x)
            e = rel(got, want)
            print(f"segmentation scan={be}: logits {tuple(got.shape)} rel err {e:.2e} (BatchNorm live vs folded loop)")
            assert got.shape == (2, 5, 4, 6) and e < 1e-6, e
        # a head without BatchNorm holding the folded tensors gives the same logits
        cfg2 = dict(cfg, seg_bn=False)
        m2 = vim_model.VimTrain(cfg2).double().eval()
        sd2 = {k: v for k, v in m.state_dict().items() if not k.startswith("seg_head.")}
        sd2.update(folded)
        m2.load_state_dict(sd2, strict=True)
        e = rel(m2(x), want)
        print(f"segmentation folded head: rel err {e:.2e}")
        assert e < 1e-6


if __name__ == "__main__":
    torch.set_num_threads(2)
    check_classification()
    check_segmentation()
    print("PASS")
