"""The Vision Mamba model for training: the same function as
tests/reference/vim_ref.py (same parameter names, so an exported state dict
loads into VimRef and into the C engine), written token-major for speed, with
the fused selective scan, stochastic depth and the segmentation head of
docs/segmentation-plan.md.

Differences from the reference are in *how*, not *what*:
  - activations stay (B, L, channels); the backward direction does not flip:
    its conv is the anti-causal conv with the same taps, and the scan runs
    with reverse=True (equal to flip -> scan -> flip);
  - the scan is tools/train/selective_scan.py (Triton on CUDA), in fp32 even
    under bf16 autocast; VIM_SCAN_BACKEND=auto|triton|chunked|ref picks one;
  - drop_path (training only) drops a block's mixer output where it joins the
    residual stream; in eval the function is exactly the reference's.
Segmentation head (task=segmentation, cls_token=none): per level i a 1x1
projection W_i (C_h x D, no bias) of the raw mixer output of block
seg_layers[i], summed, + proj_bias, [BatchNorm], 3x3 depthwise conv (zero
padding 1) + bias, [BatchNorm], GELU (tanh), 1x1 classifier. BatchNorms are
folded into proj/dwconv at export (fold_bn), so the file holds only the
tensors of the plan.
"""
import math
import os
import sys

import torch
from torch import nn
import torch.nn.functional as F

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOOLS = os.path.dirname(_HERE)
_REFERENCE = os.path.join(os.path.dirname(_TOOLS), "tests", "reference")
for _p in (_HERE, _TOOLS, _REFERENCE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from vimtools import vimconfig  # noqa: E402
import vim_ref  # noqa: E402  (the parameters; this file re-does the forward passes)

try:  # the fused scan (tools/train/selective_scan.py)
    import selective_scan as _ss  # noqa: E402
    _HAVE_SS = True
except Exception:  # pragma: no cover - only while it is missing
    _ss = None
    _HAVE_SS = False


def _softplus_thr20(a):
    return torch.where(a > 20.0, a, torch.log1p(torch.exp(torch.clamp(a, max=20.0))))


def sequential_scan(x, dt, dt_bias, A, Bm, Cm, D, reverse=False):
    """Trivial sequential scan, same signature and semantics as selective_scan."""
    delta = _softplus_thr20(dt + dt_bias)
    Bsz, L, E = x.shape
    N = A.shape[1]
    h = torch.zeros(Bsz, E, N, dtype=x.dtype, device=x.device)
    ys = [None] * L
    order = range(L - 1, -1, -1) if reverse else range(L)
    for t in order:
        d = delta[:, t]
        h = torch.exp(d[:, :, None] * A[None]) * h + (d * x[:, t])[:, :, None] * Bm[:, t, None, :]
        ys[t] = (h * Cm[:, t, None, :]).sum(-1) + D[None] * x[:, t]
    return torch.stack(ys, dim=1)


def scan(x, dt, dt_bias, A, Bm, Cm, D, reverse=False):
    backend = os.environ.get("VIM_SCAN_BACKEND", "auto")
    if backend == "seq" or not _HAVE_SS:
        return sequential_scan(x, dt, dt_bias, A, Bm, Cm, D, reverse)
    return _ss.selective_scan(x, dt, dt_bias, A, Bm, Cm, D, reverse=reverse, backend=backend)


# Same parameters and arithmetic as the reference.
RMSNorm = vim_ref.RMSNorm
PatchEmbed = vim_ref.PatchEmbed


class BiMambaMixer(vim_ref.BiMambaMixer):
    """The reference's mixer (its parameters, names and order), with a
    token-major forward on the fused scan."""

    def _conv_silu(self, x, conv, reverse):
        """x (B, L, E). Forward: causal depthwise conv (tap k reads x[t-(K-1-k)]);
        reverse: the flipped sequence's causal conv, i.e. tap k reads x[t+(K-1-k)]."""
        K = self.d_conv
        L = x.shape[1]
        w = conv.weight[:, 0, :].to(x.dtype)       # (E, K)
        acc = conv.bias.to(x.dtype)
        if reverse:
            xp = F.pad(x, (0, 0, 0, K - 1))
            for k in range(K):
                acc = acc + w[:, k] * xp[:, K - 1 - k:K - 1 - k + L]
        else:
            xp = F.pad(x, (0, 0, K - 1, 0))
            for k in range(K):
                acc = acc + w[:, k] * xp[:, k:k + L]
        return F.silu(acc)

    def _direction(self, x, z, conv, x_proj, dt_proj, A_log, Dv, reverse):
        R, N = self.dt_rank, self.d_state
        xc = self._conv_silu(x, conv, reverse)                       # (B, L, E)
        v = x_proj(xc)                                               # (B, L, R+2N)
        dt_low, Bm, Cm = v[..., :R], v[..., R:R + N], v[..., R + N:R + 2 * N]
        draw = F.linear(dt_low, dt_proj.weight)                      # bias inside the scan
        sdt = torch.float64 if x.dtype == torch.float64 else torch.float32
        A = -torch.exp(A_log.to(sdt))
        y = scan(xc.to(sdt), draw.to(sdt), dt_proj.bias.to(sdt), A, Bm.to(sdt).contiguous(),
                 Cm.to(sdt).contiguous(), Dv.to(sdt), reverse=reverse)
        return y * F.silu(z.to(sdt))

    def forward(self, u):
        E = self.d_inner
        xz = self.in_proj(u)                                         # (B, L, 2E)
        x, z = xz[..., :E], xz[..., E:]
        o_f = self._direction(x, z, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, False)
        o_b = self._direction(x, z, self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log,
                              self.D_b, True)
        o = (o_f + o_b) * 0.5
        return self.out_proj(o.to(u.dtype) if not torch.is_autocast_enabled() else o)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mixer = BiMambaMixer(cfg["embed_dim"], cfg["d_inner"], cfg["d_state"],
                                  cfg["d_conv"], cfg["dt_rank"])
        self.norm = RMSNorm(cfg["embed_dim"], cfg["norm_eps"])


class SegHead(nn.Module):
    def __init__(self, D, C, K, n_levels, use_bn=True):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(D, C, bias=False) for _ in range(n_levels))
        self.proj_bias = nn.Parameter(torch.zeros(C))
        self.dwconv = nn.Conv2d(C, C, 3, padding=1, groups=C, bias=True)
        self.cls = nn.Linear(C, K, bias=True)
        self.use_bn = use_bn
        if use_bn:
            self.bn1 = nn.BatchNorm2d(C)
            self.bn2 = nn.BatchNorm2d(C)

    def forward(self, feats, grid):
        gh, gw = grid
        s = self.proj_bias
        for f, p in zip(feats, self.proj):
            s = s + p(f)                                              # (B, M, C)
        Bsz, M, C = s.shape
        h = s.transpose(1, 2).reshape(Bsz, C, gh, gw)
        if self.use_bn:
            h = self.bn1(h)
        h = self.dwconv(h)
        if self.use_bn:
            h = self.bn2(h)
        h = F.gelu(h, approximate="tanh")
        return self.cls(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)    # (B, K, gh, gw)

    @torch.no_grad()
    def folded(self):
        """The plan's tensors with the BatchNorms (eval statistics) folded in."""
        proj = [p.weight.detach().clone() for p in self.proj]
        pb = self.proj_bias.detach().clone()
        dw = self.dwconv.weight.detach().clone()
        dwb = self.dwconv.bias.detach().clone()
        if self.use_bn:
            k1 = self.bn1.weight / torch.sqrt(self.bn1.running_var + self.bn1.eps)
            proj = [w * k1[:, None] for w in proj]
            pb = (pb - self.bn1.running_mean) * k1 + self.bn1.bias
            k2 = self.bn2.weight / torch.sqrt(self.bn2.running_var + self.bn2.eps)
            dw = dw * k2[:, None, None, None]
            dwb = (dwb - self.bn2.running_mean) * k2 + self.bn2.bias
        out = {f"seg_head.proj.{i}.weight": w for i, w in enumerate(proj)}
        out["seg_head.proj_bias"] = pb
        out["seg_head.dwconv.weight"] = dw
        out["seg_head.dwconv.bias"] = dwb
        out["seg_head.cls.weight"] = self.cls.weight.detach().clone()
        out["seg_head.cls.bias"] = self.cls.bias.detach().clone()
        return out


def default_seg_layers(depth):
    return [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1]


def make_cfg(task, embed_dim=192, depth=12, image_size=(32, 32), patch_size=4, stride=4,
             d_state=16, expand=2, d_conv=4, num_classes=10, seg_layers=None, seg_channels=128,
             name=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize="short-side-crop",
             crop_ratio=1.0, seg_bn=True, ignore_index=None):
    cls_token = "middle" if task == "classification" else "none"
    seg = {}
    if task == "segmentation":
        seg = dict(seg_layers=list(seg_layers) if seg_layers else default_seg_layers(depth),
                   seg_channels=int(seg_channels), ignore_index=ignore_index)
    cfg = vimconfig.make_config(
        embed_dim=embed_dim, depth=depth, stride=stride, patch_size=patch_size,
        image_size=tuple(image_size), d_state=d_state, expand=expand, d_conv=d_conv,
        num_classes=num_classes, cls_token=cls_token, name=name or f"vim-{task}",
        mean=mean, std=std, resize=resize, crop_ratio=crop_ratio, task=task, **seg)
    if task == "segmentation":
        cfg["seg_bn"] = bool(seg_bn)
    return cfg


class VimTrain(nn.Module):
    def __init__(self, cfg, drop_path=0.0):
        super().__init__()
        self.cfg = dict(cfg)
        D = cfg["embed_dim"]
        self.task = cfg.get("task", "classification")
        self.has_cls = cfg["cls_token"] == "middle"
        if self.has_cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg["seq_len"], D))
        self.patch_embed = PatchEmbed(cfg["patch_size"], cfg["stride"], D)
        if self.task == "classification":
            self.head = nn.Linear(D, cfg["num_classes"], bias=True)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["depth"]))
        if self.task == "classification":
            self.norm_f = RMSNorm(D, cfg["norm_eps"])
        else:
            self.seg_layers = list(cfg["seg_layers"])
            self.seg_head = SegHead(D, cfg["seg_channels"], cfg["num_classes"],
                                    len(self.seg_layers), cfg.get("seg_bn", True))
        self.drop_path = [drop_path * i / max(1, cfg["depth"] - 1) for i in range(cfg["depth"])]

    def init_weights(self, seed=0):
        """Official-style initialisation (Vim / Mamba)."""
        g = torch.Generator().manual_seed(seed)
        cfg = self.cfg
        E, N, R, depth = cfg["d_inner"], cfg["d_state"], cfg["dt_rank"], cfg["depth"]
        with torch.no_grad():
            def tn(t, std=0.02):
                t.copy_(torch.fmod(torch.randn(t.shape, generator=g), 2.0) * std)

            def ku(t):  # kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                fan_in = t[0].numel()
                t.copy_((torch.rand(t.shape, generator=g) * 2 - 1) / math.sqrt(fan_in))
            tn(self.pos_embed)
            if self.has_cls:
                tn(self.cls_token)
            ku(self.patch_embed.proj.weight)
            self.patch_embed.proj.bias.zero_()
            for lay in self.layers:
                m = lay.mixer
                ku(m.in_proj.weight)
                ku(m.out_proj.weight)
                m.out_proj.weight.div_(math.sqrt(depth))       # prenorm residual rescale
                for conv, xp, dtp, al, dv in ((m.conv1d, m.x_proj, m.dt_proj, m.A_log, m.D),
                                              (m.conv1d_b, m.x_proj_b, m.dt_proj_b, m.A_b_log, m.D_b)):
                    ku(conv.weight)
                    ku(conv.bias)
                    ku(xp.weight)
                    dtp.weight.copy_((torch.rand(dtp.weight.shape, generator=g) * 2 - 1) * R ** -0.5)
                    dt = torch.exp(torch.rand(E, generator=g) * (math.log(0.1) - math.log(1e-3))
                                   + math.log(1e-3)).clamp(min=1e-4)
                    dtp.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
                    al.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32))[None].repeat(E, 1))
                    dv.fill_(1.0)
                lay.norm.weight.fill_(1.0)
            if self.task == "classification":
                self.norm_f.weight.fill_(1.0)
                tn(self.head.weight)
                self.head.bias.zero_()
            else:
                h = self.seg_head
                for p in h.proj:
                    tn(p.weight)
                h.proj_bias.zero_()
                ku(h.dwconv.weight)
                h.dwconv.bias.zero_()
                tn(h.cls.weight)
                h.cls.bias.zero_()
        return self

    @property
    def cls_index(self):
        return self.cfg["num_patches"] // 2 if self.has_cls else -1

    def tokens(self, img):
        x = self.patch_embed(img)
        if self.has_cls:
            p = self.cls_index
            x = torch.cat([x[:, :p], self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x[:, p:]], 1)
        return x + self.pos_embed

    def _dp(self, h, i):
        p = self.drop_path[i]
        if not self.training or p <= 0.0:
            return h
        keep = (torch.rand(h.shape[0], 1, 1, device=h.device) >= p).to(h.dtype) / (1.0 - p)
        return h * keep

    def forward_features(self, img, want=()):
        residual = None
        hidden = self.tokens(img)
        feats = []
        want = set(want)
        for i, layer in enumerate(self.layers):
            if residual is None:
                residual = hidden
            else:
                residual = residual + self._dp(hidden, i - 1)
            hidden = layer.mixer(layer.norm(residual))
            if i in want:
                feats.append(hidden)
        return residual + self._dp(hidden, len(self.layers) - 1), feats

    def forward(self, img):
        if self.task == "classification":
            r, _ = self.forward_features(img)
            out = self.norm_f(r)
            f = out[:, self.cls_index] if self.has_cls else out.mean(dim=1)
            return self.head(f)
        _, feats = self.forward_features(img, self.seg_layers)
        return self.seg_head(feats, self.cfg["grid"])

    def export_tensors(self):
        """name -> tensor (fp32, CPU) in the model file's names (BatchNorm folded)."""
        sd = {}
        for k, v in self.state_dict().items():
            if k.startswith("seg_head."):
                continue
            sd[k] = v.detach().float().cpu()
        if self.task == "segmentation":
            sd.update({k: v.float().cpu() for k, v in self.seg_head.folded().items()})
        return sd


def seg_reference_head(tensors, feats, grid):
    """Independent float64 loop of the plan's head on folded tensors (tests)."""
    gh, gw = grid
    n_levels = len(feats)
    Bsz, M, D = feats[0].shape
    C = tensors["seg_head.proj_bias"].shape[0]
    s = torch.zeros(Bsz, M, C, dtype=torch.float64)
    for i in range(n_levels):
        s += feats[i].double() @ tensors[f"seg_head.proj.{i}.weight"].double().T
    s += tensors["seg_head.proj_bias"].double()
    g = s.reshape(Bsz, gh, gw, C)
    w = tensors["seg_head.dwconv.weight"].double()[:, 0]   # (C, 3, 3)
    h = torch.zeros_like(g) + tensors["seg_head.dwconv.bias"].double()
    for dy in range(3):
        for dx in range(3):
            sh = torch.zeros_like(g)
            ys, ye = max(0, 1 - dy), min(gh, gh + 1 - dy)
            xs, xe = max(0, 1 - dx), min(gw, gw + 1 - dx)
            sh[:, ys:ye, xs:xe] = g[:, ys + dy - 1:ye + dy - 1, xs + dx - 1:xe + dx - 1]
            h += sh * w[:, dy, dx]
    h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))
    logits = h @ tensors["seg_head.cls.weight"].double().T + tensors["seg_head.cls.bias"].double()
    return logits.permute(0, 3, 1, 2)                       # (B, K, gh, gw)
