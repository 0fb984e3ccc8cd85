"""Independent PyTorch reference of the Vision Mamba (Vim) classification model.

Written from ../shared/docs/vim-model-spec.md (sections 1-3), for clarity, not
speed: the selective scan is a plain sequential loop over the tokens. Run it in
float64 (`model.double()`, float64 input) to get the numbers the engine is
compared against.

Parameter names equal the official `ckpt['model']` keys, so

    model = VimRef(cfg); model.load_state_dict(ckpt['model'])

works for an official checkpoint (with a `cfg` of the matching variant).

The configuration is a dict from tools/vimtools/vimconfig.make_config.

Forward pass (spec 1.2):
    tokens = PatchEmbed(img)                           (B, M, D), row-major
    insert cls at p = M // 2 (cls_token 'middle')      (B, M+1, D)
    + pos_embed                                        (added after insertion)
    residual = tokens; hidden = Mixer_0(RMSNorm_0(residual))
    residual += hidden; hidden = Mixer_l(RMSNorm_l(residual))   l = 1..depth-1
    out = RMSNorm_f(residual + hidden)
    logits = head(out[:, p])
With cls_token 'none' (no official classification variant has it) the head
reads the mean of `out` over the tokens, which is what the official
`final_pool_type='mean'` branch does when there is no class token.

Segmentation (task 'segmentation', cls_token 'none', docs/segmentation.md):
the features are the raw mixer outputs `hidden` (not the residual, not
normed) of the blocks in cfg['seg_layers']; the head is
    h = sum_i proj_i(feat_i) + proj_bias          per token, (B, M, C_h)
    h = GELU_tanh(dwconv3x3(h on the (gh, gw) grid, zero padding) + bias)
    logits = cls(h)                               (B, K, gh, gw)
and forward() returns those per-token logits (no upsampling, no norm_f).

Mixer (bimamba v2, spec 2.2): xz = in_proj(u); forward direction with conv1d,
x_proj, dt_proj, A_log, D; backward direction = flip x and z along the
sequence, run the same recipe with the *_b weights, flip back;
out_proj((o_f + o_b) / 2), one shared out_proj.
"""
import math
import os
import sys

import torch
from torch import nn
import torch.nn.functional as F

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOOLS = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)

from vimtools import vimconfig  # noqa: E402


def softplus_thr20(a):
    """softplus with the scan kernel's threshold: a if a > 20 else log1p(exp(a))."""
    return torch.where(a > 20.0, a, torch.log1p(torch.exp(torch.clamp(a, max=20.0))))


def silu(a):
    return a / (1.0 + torch.exp(-a))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # y = x * w / sqrt(mean(x^2) + eps), statistics over the last dim
        return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + self.eps) * self.weight


class PatchEmbed(nn.Module):
    def __init__(self, patch, stride, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=stride, padding=0, bias=True)

    def forward(self, img):
        y = self.proj(img)                      # (B, D, gh, gw)
        return y.flatten(2).transpose(1, 2)     # (B, gh*gw, D), token j = row*gw + col


class BiMambaMixer(nn.Module):
    """Bidirectional Mamba mixer, bimamba_type v2, if_divide_out=True."""

    def __init__(self, d_model, d_inner, d_state, d_conv, dt_rank):
        super().__init__()
        E, N, K, R = d_inner, d_state, d_conv, dt_rank
        self.d_inner, self.d_state, self.d_conv, self.dt_rank = E, N, K, R
        # Direct parameters first, in the official registration order.
        self.A_log = nn.Parameter(torch.zeros(E, N))
        self.D = nn.Parameter(torch.ones(E))
        self.A_b_log = nn.Parameter(torch.zeros(E, N))
        self.D_b = nn.Parameter(torch.ones(E))
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, kernel_size=K, groups=E, padding=K - 1, bias=True)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        self.conv1d_b = nn.Conv1d(E, E, kernel_size=K, groups=E, padding=K - 1, bias=True)
        self.x_proj_b = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj_b = nn.Linear(R, E, bias=True)
        self.out_proj = nn.Linear(E, d_model, bias=False)

    def _causal_conv_silu(self, x, weight, bias):
        """x (B, E, L); depthwise causal conv, x[t<0] = 0; then SiLU."""
        K = self.d_conv
        L = x.shape[-1]
        xp = F.pad(x, (K - 1, 0))                           # zeros before t = 0
        w = weight[:, 0, :]                                  # (E, K)
        acc = bias[None, :, None].expand_as(x).clone()
        for k in range(K):                                   # tap k reads x[t - (K-1-k)]
            acc = acc + w[None, :, k:k + 1] * xp[:, :, k:k + L]
        return silu(acc)

    def _direction(self, x, z, conv, x_proj, dt_proj, A_log, Dv):
        """One scan direction. x, z: (B, E, L). Returns the gated output (B, E, L)."""
        R, N = self.dt_rank, self.d_state
        xc = self._causal_conv_silu(x, conv.weight, conv.bias)          # (B, E, L)
        v = torch.einsum("oe,bel->bol", x_proj.weight, xc)              # (B, R+2N, L)
        dt_low, Bm, Cm = v[:, :R], v[:, R:R + N], v[:, R + N:R + 2 * N]
        draw = torch.einsum("er,brl->bel", dt_proj.weight, dt_low)      # no bias here
        delta = softplus_thr20(draw + dt_proj.bias[None, :, None])      # (B, E, L)
        A = -torch.exp(A_log)                                           # (E, N)
        Bsz, E, L = x.shape
        h = torch.zeros(Bsz, E, N, dtype=x.dtype, device=x.device)
        ys = []
        for t in range(L):
            d_t = delta[:, :, t]                                        # (B, E)
            h = torch.exp(d_t[:, :, None] * A[None]) * h \
                + (d_t * xc[:, :, t])[:, :, None] * Bm[:, None, :, t]
            ys.append((h * Cm[:, None, :, t]).sum(-1) + Dv[None, :] * xc[:, :, t])
        y = torch.stack(ys, dim=-1)                                     # (B, E, L)
        return y * silu(z)

    def forward(self, u):
        """u (B, L, D) -> (B, L, D)."""
        E = self.d_inner
        xz = torch.einsum("od,bld->bol", self.in_proj.weight, u)        # (B, 2E, L)
        x, z = xz[:, :E], xz[:, E:]
        o_f = self._direction(x, z, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        o_b = self._direction(x.flip(-1), z.flip(-1), self.conv1d_b, self.x_proj_b,
                              self.dt_proj_b, self.A_b_log, self.D_b).flip(-1)
        o = (o_f + o_b) / 2                                             # (B, E, L)
        return torch.einsum("de,bel->bld", self.out_proj.weight, o)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mixer = BiMambaMixer(cfg["embed_dim"], cfg["d_inner"], cfg["d_state"],
                                  cfg["d_conv"], cfg["dt_rank"])
        self.norm = RMSNorm(cfg["embed_dim"], cfg["norm_eps"])


def gelu_tanh(x):
    """GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class SegHead(nn.Module):
    """Per-token multi-level projection, 3x3 depthwise conv + GELU, classifier."""

    def __init__(self, cfg):
        super().__init__()
        D, Ch, K = cfg["embed_dim"], cfg["seg_channels"], cfg["num_classes"]
        self.grid = cfg["grid"]
        self.proj = nn.ModuleList(nn.Linear(D, Ch, bias=False) for _ in cfg["seg_layers"])
        self.proj_bias = nn.Parameter(torch.zeros(Ch))
        self.dwconv = nn.Conv2d(Ch, Ch, kernel_size=3, padding=1, groups=Ch, bias=True)
        self.cls = nn.Linear(Ch, K, bias=True)

    def forward(self, feats):
        """feats: list of (B, M, D), one per level -> logits (B, K, gh, gw)."""
        gh, gw = self.grid
        h = sum(p(f) for p, f in zip(self.proj, feats)) + self.proj_bias   # (B, M, C_h)
        h = h.transpose(1, 2).reshape(h.shape[0], -1, gh, gw)             # (B, C_h, gh, gw)
        h = gelu_tanh(self.dwconv(h))
        return torch.einsum("kc,bchw->bkhw", self.cls.weight, h) + self.cls.bias[None, :, None, None]


class VimRef(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        D = cfg["embed_dim"]
        if cfg["cls_token"] not in ("middle", "none"):
            raise ValueError(f"cls_token must be 'middle' or 'none', not {cfg['cls_token']!r}")
        gh, gw = cfg["grid"]
        if gh < 1 or gw < 1:
            raise ValueError(f"image size {cfg['image_size']} too small for patch {cfg['patch_size']}")
        self.has_cls = cfg["cls_token"] == "middle"
        if self.has_cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg["seq_len"], D))
        self.patch_embed = PatchEmbed(cfg["patch_size"], cfg["stride"], D)
        self.is_segmenter = cfg.get("task", "classification") == "segmentation"
        self.has_head = not self.is_segmenter
        if self.has_head:
            self.head = nn.Linear(D, cfg["num_classes"], bias=True)
        else:
            if self.has_cls:
                raise ValueError("a segmenter has no class token (cls_token 'none')")
            self.seg_head = SegHead(cfg)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["depth"]))
        if not self.is_segmenter:       # a segmenter reads no final norm
            self.norm_f = RMSNorm(D, cfg["norm_eps"])

    @property
    def cls_index(self):
        return self.cfg["num_patches"] // 2 if self.has_cls else -1

    def tokens(self, img):
        """Patch embed, class token in the middle, + pos_embed: (B, L, D)."""
        h, w = self.cfg["image_size"]
        if tuple(img.shape[1:]) != (3, h, w):
            raise ValueError(f"input shape {tuple(img.shape)} does not match (B, 3, {h}, {w})")
        x = self.patch_embed(img)
        if self.has_cls:
            p = self.cls_index
            cls = self.cls_token.expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :p], cls, x[:, p:]], dim=1)
        return x + self.pos_embed

    def forward_features(self, img, return_mixer_outputs=False):
        """Returns RMSNorm_f(residual + hidden) (B, L, D); with return_mixer_outputs
        also the list of each block's raw mixer output (the segmentation features)."""
        residual = None
        hidden = self.tokens(img)
        mixer_outs = []
        for layer in self.layers:
            residual = hidden if residual is None else residual + hidden
            hidden = layer.mixer(layer.norm(residual))
            mixer_outs.append(hidden)
        out = self.norm_f(residual + hidden) if hasattr(self, "norm_f") else None
        return (out, mixer_outs) if return_mixer_outputs else out

    def forward(self, img):
        if self.is_segmenter:
            _, mixer_outs = self.forward_features(img, return_mixer_outputs=True)
            return self.seg_head([mixer_outs[i] for i in self.cfg["seg_layers"]])
        out = self.forward_features(img)
        f = out[:, self.cls_index] if self.has_cls else out.mean(dim=1)
        return self.head(f)


def config_from_metadata(meta):
    """vimconfig-style config from a model file's __metadata__."""
    def ints(s):
        return tuple(int(v) for v in s.split(","))

    def floats(s):
        return tuple(float(v) for v in s.split(","))
    return vimconfig.make_config(
        name=meta["name"], task=meta["task"], embed_dim=int(meta["embed_dim"]),
        depth=int(meta["depth"]), stride=int(meta["stride"]), patch_size=int(meta["patch_size"]),
        image_size=ints(meta["image_size"]), d_state=int(meta["d_state"]),
        expand=int(meta["expand"]), d_conv=int(meta["d_conv"]), dt_rank=int(meta["dt_rank"]),
        num_classes=int(meta["num_classes"]), cls_token=meta["cls_token"],
        mean=floats(meta["mean"]), std=floats(meta["std"]), resize=meta["resize"],
        crop_ratio=float(meta.get("crop_ratio", "0.875")), norm_eps=float(meta.get("norm_eps", "1e-5")),
        **({"seg_layers": ints(meta["seg_layers"]), "seg_channels": int(meta["seg_channels"]),
            "ignore_index": int(meta["ignore_index"]) if "ignore_index" in meta else None}
           if meta["task"] == "segmentation" else {}))


def model_from_tensors(cfg, tensors, dtype=torch.float64):
    """A VimRef holding the given name -> ndarray tensors (strict: exact key set and shapes)."""
    model = VimRef(cfg)
    sd = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    model.load_state_dict(sd, strict=True)
    return model.to(dtype).eval()


def load_safetensors(path, dtype=torch.float64):
    """(model, cfg, labels) from one of our model files (docs/model-format.md)."""
    from vimtools import safetensors_io
    tensors, meta = safetensors_io.read(path)
    cfg = config_from_metadata(meta)
    if cfg["task"] == "segmentation":
        tensors.pop("norm_f.weight", None)  # allowed in the file, unused
    labels = meta["labels"].split("\n") if "labels" in meta else None
    return model_from_tensors(cfg, tensors, dtype), cfg, labels


def main(argv=None):
    import argparse
    import numpy as np
    from vimtools import random_weights
    ap = argparse.ArgumentParser(description="Run the float64 reference on a model file.")
    ap.add_argument("model")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    model, cfg, labels = load_safetensors(args.model)
    x = torch.from_numpy(random_weights.random_input(args.seed, args.batch, cfg).astype(np.float64))
    with torch.no_grad():
        logits = model(x)
    if cfg["task"] == "segmentation":
        for b in range(logits.shape[0]):
            classes = logits[b].argmax(0)
            print(b, "argmax on the grid:", [[int(v) for v in row] for row in classes])
        return
    for b in range(logits.shape[0]):
        top = torch.topk(logits[b], min(5, logits.shape[1]))
        print(b, [(int(i), (labels[int(i)] if labels else str(int(i))), float(v))
                  for v, i in zip(top.values, top.indices)])


if __name__ == "__main__":
    main()
