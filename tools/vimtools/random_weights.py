"""Deterministic random weights for tests and benchmarks.

The stream is a counter-based hash (splitmix64 of seed and index), so it
depends on nothing that can change under us: not numpy's generators, not
torch's. The same function exists in C (tests/engine/splitmix.h) for inputs.

Transcendental functions run in float64 and are rounded to float32 once:
numpy's float32 exp and log differ in the last bit between its AVX2 and
AVX-512 code, so float32 results would depend on the machine's CPU. Its
float64 ones differ at most in a few float64 ulps, which the rounding to
float32 hides (barring a value within that of a float32 rounding boundary).
"""
import math

import numpy as np

from . import vimconfig

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    """Vectorized splitmix64 finalizer over a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed, stream, n):
    """n floats in [-1, 1) from (seed, stream): value i = (splitmix64(((seed << 20) ^ (stream << 44)) + i) >> 40) / 2^23 - 1."""
    base = (np.uint64(seed) << np.uint64(20)) ^ (np.uint64(stream) << np.uint64(44))
    idx = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = splitmix64(base + idx) >> np.uint64(40)  # 24 random bits
    return (bits.astype(np.float64) / float(1 << 23) - 1.0).astype(np.float32)


def random_tensors(cfg, seed):
    """Weights with the official model's initial scales, so 24 random layers stay well conditioned."""
    E, N, R = cfg["d_inner"], cfg["d_state"], cfg["dt_rank"]
    out = {}
    for stream, (name, shape) in enumerate(vimconfig.tensor_shapes(cfg)):
        n = int(np.prod(shape))
        u = uniform(seed, stream, n)
        if name.endswith("A_log") or name.endswith("A_b_log"):
            # log(1..N) per channel, jittered: A = -exp(A_log) in [-N, -1]
            a = np.log(np.arange(1, N + 1, dtype=np.float64)).astype(np.float32)[None, :].repeat(E, 0)
            v = a + 0.1 * u.reshape(E, N)
        elif name.endswith(".D") or name.endswith(".D_b"):
            v = 1.0 + 0.1 * u
        elif name.endswith("dt_proj.bias") or name.endswith("dt_proj_b.bias"):
            # inverse softplus of dt in [1e-3, 1e-1] (log-uniform)
            u64 = u.astype(np.float64)
            dt = np.exp((u64 * 0.5 + 0.5) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            v = (dt + np.log(-np.expm1(-dt))).astype(np.float32)
        elif name.endswith("norm.weight") or name == "norm_f.weight":
            v = 1.0 + 0.1 * u
        elif name in ("pos_embed", "cls_token"):
            v = 0.02 * u
        elif name.endswith("dt_proj.weight") or name.endswith("dt_proj_b.weight"):
            v = (R ** -0.5) * u
        elif name.endswith("bias"):
            v = 0.05 * u
        elif name.endswith("x_proj.weight") or name.endswith("x_proj_b.weight"):
            # 8x the default scale: B and C come out of order 1 (as in trained models), so the
            # scan term C.h is a large part of each mixer's output (about 40% of the logits'
            # variation at 24 layers) instead of about 0.5%, and scan bugs show up in parity tests.
            v = 8.0 * u / math.sqrt(shape[1])
        elif name.startswith("seg_head.proj.") and name.endswith(".weight"):
            # the raw mixer outputs of random blocks are small (std ~0.02): 40x the
            # default scale gives head activations of order 1, so the logits vary
            # from token to token (and argmax masks are not one class) instead of
            # being the classifier bias plus a 5 % ripple.
            v = 40.0 * u / math.sqrt(shape[1])
        else:  # weight matrices: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            fan_in = int(np.prod(shape[1:]))
            v = u / math.sqrt(fan_in)
        out[name] = np.asarray(v, dtype=np.float32).reshape(shape)
    return out


def random_input(seed, batch, cfg):
    """A normalized input batch (batch, 3, H, W), values in about [-2, 2]."""
    h, w = cfg["image_size"]
    return (2.0 * uniform(seed, 0xFFF, batch * 3 * h * w)).reshape(batch, 3, h, w)
