#!/usr/bin/env python3
"""Checks the fixtures against the official Vim code itself, on CPU, in float64.

    python3 tests/reference/check_official.py --vim-repo PATH [FIXTURE.json ...]

PATH is a checkout of the official hustvl/Vim repository (not part of this
project; nothing of it is copied here). Needs torch and einops.

The official VisionMamba (vim/models_mamba.py) and Mamba mixer
(mamba-1p1p1/mamba_ssm/modules/mamba_simple.py) run unchanged; only what needs
CUDA, Triton or unrelated packages is replaced:
  - the fused selective scan: by the repo's own pure-torch `selective_scan_ref`;
  - `mamba_inner_fn_no_out_proj`: by the repo's own `mamba_inner_ref` with an
    identity out_proj (so it returns the gated SSM output, as the fused one);
  - `causal_conv1d_fn`: F.conv1d with padding K-1, cut to L, then SiLU;
  - the Triton fused add+RMSNorm: s = x + residual; s * rsqrt(mean(s^2) + eps) * w;
  - timm / transformers imports that play no part at inference: small stand-ins.
The official code casts A_log, D and dt_proj.bias with `.float()`; that cast is
made a no-op on float64 tensors so the whole forward stays in float64.
Expected agreement with the fixtures (vim_ref.py): about 1e-15 relative.
"""
import argparse
import glob
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def rms_norm_fn(x, weight, bias, residual=None, prenorm=False, residual_in_fp32=False, eps=1e-6, **kw):
    s = x + residual if residual is not None else x
    out = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps) * weight
    if bias is not None:
        out = out + bias
    return (out, s) if prenorm else out


class RMSNormStandIn(nn.Module):
    def __init__(self, hidden_size, eps=1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.register_parameter("bias", None)

    def forward(self, x, residual=None, prenorm=False, residual_in_fp32=False):
        return rms_norm_fn(x, self.weight, None, residual=residual, prenorm=prenorm, eps=self.eps)


class DropPathStandIn(nn.Module):
    def __init__(self, p=0.0):
        super().__init__()

    def forward(self, x):
        return x


def causal_conv1d_fn(x, weight, bias=None, activation=None):
    K, L = weight.shape[-1], x.shape[-1]
    y = F.conv1d(x, weight.unsqueeze(1), bias, padding=K - 1, groups=x.shape[1])[..., :L]
    return F.silu(y) if activation in ("silu", "swish") else y


def import_official(repo):
    sys.path.insert(0, os.path.join(repo, "vim"))
    sys.path.insert(0, os.path.join(repo, "mamba-1p1p1"))
    _module("selective_scan_cuda")
    _module("causal_conv1d", causal_conv1d_fn=None, causal_conv1d_update=None)
    pkg = types.ModuleType("mamba_ssm")          # skip the package __init__ (it pulls in generation code)
    pkg.__path__ = [os.path.join(repo, "mamba-1p1p1", "mamba_ssm")]
    sys.modules["mamba_ssm"] = pkg
    _module("mamba_ssm.ops.triton.layer_norm", RMSNorm=RMSNormStandIn, rms_norm_fn=rms_norm_fn, layer_norm_fn=None)
    _module("mamba_ssm.ops.triton.selective_state_update", selective_state_update=None)
    _module("mamba_ssm.utils.generation", GenerationMixin=object)
    _module("mamba_ssm.utils.hf", load_config_hf=None, load_state_dict_hf=None)
    _module("timm")
    _module("timm.models")
    _module("timm.models.vision_transformer", VisionTransformer=object, _cfg=lambda **kw: kw, _load_weights=None)
    _module("timm.models.registry", register_model=lambda f: f)
    _module("timm.models.layers", trunc_normal_=nn.init.normal_, lecun_normal_=nn.init.normal_,
            DropPath=DropPathStandIn, to_2tuple=lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v))
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    import mamba_ssm.ops.selective_scan_interface as ssi
    ssi.causal_conv1d_fn = causal_conv1d_fn
    ssi.selective_scan_fn = ssi.selective_scan_ref
    import mamba_ssm.modules.mamba_simple as ms

    def no_out_proj(xz, cw, cb, xw, dw, A, B=None, C=None, D=None, delta_bias=None, delta_softplus=True):
        eye = torch.eye(xz.shape[1] // 2, dtype=xz.dtype)
        return ssi.mamba_inner_ref(xz, cw, cb, xw, dw, eye, None, A, B, C, D, delta_bias=delta_bias,
                                   delta_softplus=delta_softplus).transpose(1, 2)
    ms.mamba_inner_fn_no_out_proj = no_out_proj

    orig_float = torch.Tensor.float

    def float_keep_double(self, *a, **kw):
        return self if self.dtype == torch.float64 else orig_float(self, *a, **kw)
    torch.Tensor.float = float_keep_double
    import models_mamba
    return models_mamba


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vim-repo", required=True, help="checkout of the official hustvl/Vim repository")
    ap.add_argument("fixtures", nargs="*")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    sys.path.insert(0, HERE)
    import make_fixtures
    from vimtools import random_weights, vimconfig
    models_mamba = import_official(os.path.abspath(args.vim_repo))
    paths = args.fixtures or sorted(glob.glob(os.path.join(HERE, "fixtures", "*.json"))) + \
        [os.path.join(ROOT, "tests", "tools", "fixtures", "tiny_official_expected.json")]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    worst = 0.0
    for path in paths:
        with open(path) as f:
            fx = json.load(f)
        cfg = make_fixtures.make_config(fx["model"]["config"])
        model = models_mamba.VisionMamba(
            img_size=tuple(cfg["image_size"]), patch_size=cfg["patch_size"], stride=cfg["stride"],
            depth=cfg["depth"], embed_dim=cfg["embed_dim"], d_state=cfg["d_state"],
            num_classes=cfg["num_classes"], rms_norm=True, residual_in_fp32=True, fused_add_norm=True,
            final_pool_type="mean", if_abs_pos_embed=True, if_rope=False, if_rope_residual=False,
            bimamba_type="v2", if_cls_token=True, if_divide_out=True, use_middle_cls_token=True)
        keys = list(model.state_dict())
        if keys != [k for k, _ in vimconfig.tensor_shapes(cfg)]:
            raise SystemExit(f"{path}: the official state_dict keys differ from vimconfig.tensor_shapes")
        w = random_weights.random_tensors(cfg, fx["model"]["weight_seed"])
        w = {k: torch.from_numpy(make_fixtures.round_to_dtype(v, fx["model"]["dtype"])) for k, v in w.items()}
        model.load_state_dict(w, strict=True)
        model = model.double().eval()
        x = random_weights.random_input(fx["input"]["seed"], fx["input"]["batch"], cfg).astype(np.float64)
        with torch.no_grad():
            got = model(torch.from_numpy(x)).numpy()
        want = np.array(fx["logits"])
        rel = float(np.abs(got - want).max() / np.abs(want).max())
        worst = max(worst, rel)
        print(f"{os.path.basename(path)}: official code vs fixture, max rel diff {rel:.1e}", flush=True)
    ok = worst < 1e-12
    print("all ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
