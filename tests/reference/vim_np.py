"""A second, numpy-only forward pass of the Vim classifier (float64).

Written separately from vim_ref.py and on purpose in a different form, so the
two check each other (tests/reference/check_reference.py):
  - the patch embed is an explicit im2col + matmul, not a convolution;
  - the backward direction is computed in the original token order, with the
    anti-causal conv  xc_b[c,t] = silu(b[c] + sum_k w_b[c,k] * x[c, t+K-1-k])
    and the recurrence running from t = L-1 down to 0 (spec 2.2), instead of
    flipping the sequence.

It also needs no torch, which makes it usable for the conditioning check of
random_weights with /usr/bin/python3.
"""
import numpy as np


def _silu(a):
    return a / (1.0 + np.exp(-a))


def _softplus20(a):
    return np.where(a > 20.0, a, np.log1p(np.exp(np.minimum(a, 20.0))))


def _rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _patch_embed(img, w, b, stride):
    """img (B,3,H,W), w (D,3,P,P) -> (B, gh*gw, D), row-major tokens."""
    B, C, H, W = img.shape
    P = w.shape[-1]
    gh, gw = (H - P) // stride + 1, (W - P) // stride + 1
    cols = np.empty((B, gh, gw, C * P * P))
    for r in range(gh):
        for c in range(gw):
            patch = img[:, :, r * stride:r * stride + P, c * stride:c * stride + P]
            cols[:, r, c] = patch.reshape(B, -1)
    out = cols.reshape(B, gh * gw, -1) @ w.reshape(w.shape[0], -1).T + b
    return out


def _ssm(xc, z, delta, A, Bm, Cm, Dv, reverse):
    """xc, z, delta (B,L,E); A (E,N); Bm, Cm (B,L,N); returns (B,L,E) gated output.
    Bm = 0 leaves only the skip term D * xc (used to measure the scan's share)."""
    Bsz, L, E = xc.shape
    h = np.zeros((Bsz, E, A.shape[1]))
    y = np.empty_like(xc)
    order = range(L - 1, -1, -1) if reverse else range(L)
    for t in order:
        dA = np.exp(delta[:, t, :, None] * A[None])
        h = dA * h + (delta[:, t] * xc[:, t])[:, :, None] * Bm[:, t, None, :]
        y[:, t] = np.einsum("ben,bn->be", h, Cm[:, t]) + Dv * xc[:, t]
    return y * _silu(z)


def _direction(x, z, p, sfx, N, R, reverse, scan=True):
    """x, z (B,L,E) in original order; p: mixer params; sfx '' or '_b'."""
    cw = p["conv1d%s.weight" % sfx][:, 0, :]        # (E, K)
    cb = p["conv1d%s.bias" % sfx]
    Bsz, L, E = x.shape
    K = cw.shape[1]
    acc = np.broadcast_to(cb, x.shape).copy()
    for k in range(K):
        s = K - 1 - k                                 # tap k looks s tokens back (or ahead)
        if s >= L:
            continue
        if not reverse:
            acc[:, s:] += cw[:, k] * x[:, :L - s]
        else:
            acc[:, :L - s] += cw[:, k] * x[:, s:]
    xc = _silu(acc)
    v = xc @ p["x_proj%s.weight" % sfx].T             # (B, L, R+2N)
    dt = v[..., :R] @ p["dt_proj%s.weight" % sfx].T + p["dt_proj%s.bias" % sfx]
    delta = _softplus20(dt)
    A = -np.exp(p["A%s_log" % sfx])
    Dv = p["D%s" % sfx]
    Bm = v[..., R:R + N] if scan else np.zeros_like(v[..., R:R + N])
    return _ssm(xc, z, delta, A, Bm, v[..., R + N:], Dv, reverse)


def mixer(u, p, N, R, scan=True):
    xz = u @ p["in_proj.weight"].T                   # (B, L, 2E)
    E = xz.shape[-1] // 2
    x, z = xz[..., :E], xz[..., E:]
    o = 0.5 * (_direction(x, z, p, "", N, R, False, scan) + _direction(x, z, p, "_b", N, R, True, scan))
    return o @ p["out_proj.weight"].T


def _seg_head(cfg, t, feats):
    """feats: list of (B, M, D) -> logits (B, K, gh, gw). The depthwise 3x3 conv as
    nine shifted copies of a zero-padded grid (vim_ref uses Conv2d)."""
    gh, gw = cfg["grid"]
    h = t["seg_head.proj_bias"] + sum(f @ t["seg_head.proj.%d.weight" % i].T for i, f in enumerate(feats))
    B, M, C = h.shape
    g = np.pad(h.reshape(B, gh, gw, C), ((0, 0), (1, 1), (1, 1), (0, 0)))
    w = t["seg_head.dwconv.weight"][:, 0]                   # (C, 3, 3)
    acc = np.broadcast_to(t["seg_head.dwconv.bias"], (B, gh, gw, C)).copy()
    for dy in range(3):
        for dx in range(3):
            acc += w[:, dy, dx] * g[:, dy:dy + gh, dx:dx + gw]
    act = 0.5 * acc * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (acc + 0.044715 * acc ** 3)))
    logits = act @ t["seg_head.cls.weight"].T + t["seg_head.cls.bias"]   # (B, gh, gw, K)
    return logits.transpose(0, 3, 1, 2)


def forward(cfg, tensors, img, return_stats=False, scan=True):
    """cfg from vimconfig.make_config, tensors name -> ndarray, img (B,3,H,W).
    Returns logits (B, C) in float64 (and per layer the RMS of the residual stream
    and of the mixer output with return_stats). scan=False drops the scan term C.h.
    A segmenter (task 'segmentation') returns its head's logits (B, K, gh, gw)."""
    t = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
    img = np.asarray(img, dtype=np.float64)
    N, R, eps = cfg["d_state"], cfg["dt_rank"], cfg["norm_eps"]
    x = _patch_embed(img, t["patch_embed.proj.weight"], t["patch_embed.proj.bias"], cfg["stride"])
    M = x.shape[1]
    if cfg["cls_token"] == "middle":
        p = M // 2
        cls = np.broadcast_to(t["cls_token"], (x.shape[0], 1, x.shape[2]))
        x = np.concatenate([x[:, :p], cls, x[:, p:]], axis=1)
    x = x + t["pos_embed"]
    residual = None
    hidden = x
    stats = []
    feats = []
    for i in range(cfg["depth"]):
        pre = "layers.%d.mixer." % i
        p_i = {k[len(pre):]: v for k, v in t.items() if k.startswith(pre)}
        residual = hidden if residual is None else residual + hidden
        hidden = mixer(_rmsnorm(residual, t["layers.%d.norm.weight" % i], eps), p_i, N, R, scan)
        stats.append((float(np.sqrt(np.mean(residual ** 2))), float(np.sqrt(np.mean(hidden ** 2)))))
        if cfg["task"] == "segmentation" and i in cfg["seg_layers"]:
            feats.append(hidden)
    if cfg["task"] == "segmentation":
        logits = _seg_head(cfg, t, feats)
        return (logits, stats) if return_stats else logits
    out = _rmsnorm(residual + hidden, t["norm_f.weight"], eps)
    f = out[:, M // 2] if cfg["cls_token"] == "middle" else out.mean(axis=1)
    logits = f @ t["head.weight"].T + t["head.bias"]
    return (logits, stats) if return_stats else logits
