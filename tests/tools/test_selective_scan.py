#!/usr/bin/env python3
"""Tests of tools/train/selective_scan.py on the CPU (needs torch and triton;
exit 77 without them). The Triton kernels run in the interpreter
(TRITON_INTERPRET=1, set here before triton is imported).

1. selective_scan_ref against a literal per-element loop of the formulas in
   plain Python floats (math.exp / math.log1p), float64, both directions,
   softplus on both sides of its threshold;
2. selective_scan_chunked against the ref, forward and every gradient
   (float64, several chunk sizes, L not a multiple of the chunk);
3. the Triton forward and backward against the ref run in float64 through
   autograd: fp32 inputs (rel err <= 1e-4, N = 4 and 16, both directions,
   one channel block and several), bf16 activations (rel err <= 2e-2);
4. dispatch: CPU tensors without TRITON_INTERPRET use the ref.

Error measure: max |a - b| / max |b| per tensor.

    python3 tests/tools/test_selective_scan.py [--quick]
"""
import math
import os
import sys
import time

os.environ.setdefault("TRITON_INTERPRET", "1")

try:
    import torch
    import triton  # noqa: F401
except ImportError as e:
    print(f"SKIP: {e} (pip install torch triton; CPU is enough)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))

import selective_scan as ss  # noqa: E402

NAMES = ("x", "dt", "dt_bias", "A", "Bm", "Cm", "D")
FAILS = []


def rel(a, b):
    a = a.detach().double()
    b = b.detach().double()
    den = b.abs().max().item()
    return (a - b).abs().max().item() / (den if den > 0 else 1.0)


def check(label, errs, tol):
    worst = max(errs.values())
    ok = worst <= tol and all(math.isfinite(v) for v in errs.values())
    detail = " ".join(f"{k}={v:.1e}" for k, v in errs.items())
    print(f"{'PASS' if ok else 'FAIL'} {label}: max rel err {worst:.2e} (tol {tol:.0e}) {detail}",
          flush=True)
    if not ok:
        FAILS.append(label)
    return ok


def make_inputs(B, L, E, N, seed, extremes=True):
    """Vim-like magnitudes; with extremes some dt + dt_bias fall above 20
    (softplus = identity) and far below 0 (softplus ~ exp)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, E, generator=g)
    dt = torch.randn(B, L, E, generator=g) * 0.7
    dt_bias = torch.log(torch.expm1(torch.empty(E).uniform_(1e-3, 0.1, generator=g)))
    if extremes:
        flat = dt.view(-1)
        idx = torch.randperm(flat.numel(), generator=g)[: max(2, flat.numel() // 50)]
        half = len(idx) // 2
        flat[idx[:half]] = 25.0 + torch.rand(half, generator=g) * 3.0
        flat[idx[half:]] = -30.0 - torch.rand(len(idx) - half, generator=g) * 3.0
    A = -torch.exp(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1)
                   + 0.1 * torch.randn(E, N, generator=g))
    Bm = torch.randn(B, L, N, generator=g)
    Cm = torch.randn(B, L, N, generator=g)
    D = torch.randn(E, generator=g)
    return [x, dt, dt_bias, A, Bm, Cm, D]


def literal_loop(x, dt, dt_bias, A, Bm, Cm, D, reverse):
    """The formulas, one scalar at a time, in Python floats."""
    B, L, E = x.shape
    N = A.shape[1]
    X, DT, BI, AA, BB, CC, DD = (t.double().tolist() for t in (x, dt, dt_bias, A, Bm, Cm, D))
    y = [[[0.0] * E for _ in range(L)] for _ in range(B)]
    order = range(L - 1, -1, -1) if reverse else range(L)
    for b in range(B):
        for e in range(E):
            h = [0.0] * N
            for t in order:
                v = DT[b][t][e] + BI[e]
                delta = v if v > 20.0 else math.log1p(math.exp(v))
                acc = DD[e] * X[b][t][e]
                for n in range(N):
                    h[n] = math.exp(delta * AA[e][n]) * h[n] + delta * BB[b][t][n] * X[b][t][e]
                    acc += CC[b][t][n] * h[n]
                y[b][t][e] = acc
    return torch.tensor(y, dtype=torch.float64)


def ref64(inputs, gy, reverse):
    leaves = [t.detach().double().requires_grad_() for t in inputs]
    y = ss.selective_scan_ref(*leaves, reverse=reverse)
    grads = torch.autograd.grad(y, leaves, gy.double())
    return y.detach(), grads


def test_ref_vs_literal():
    for reverse in (False, True):
        inp = [t.double() for t in make_inputs(2, 9, 5, 3, seed=1)]
        y = ss.selective_scan_ref(*inp, reverse=reverse)
        y_lit = literal_loop(*inp, reverse=reverse)
        check(f"ref vs literal loop, float64, B=2 L=9 E=5 N=3 reverse={reverse}",
              {"y": rel(y, y_lit)}, 1e-12)
        # the flip equivalence the Vim reference uses for its backward direction
        if reverse:
            fl = [t.flip(1) if t.dim() == 3 else t for t in inp]
            y_fl = ss.selective_scan_ref(*fl, reverse=False).flip(1)
            check("ref reverse == flip -> scan -> flip", {"y": rel(y, y_fl)}, 1e-14)


def test_chunked_vs_ref():
    for (B, L, E, N, chunk) in ((2, 37, 24, 4, 8), (2, 37, 24, 16, 16), (3, 5, 7, 16, None),
                                (1, 64, 8, 4, 16)):
        for reverse in (False, True):
            inp = make_inputs(B, L, E, N, seed=2 + L + N)
            gy = torch.randn(B, L, E, generator=torch.Generator().manual_seed(3))
            y_r, g_r = ref64(inp, gy, reverse)
            leaves = [t.detach().double().requires_grad_() for t in inp]
            y_c = ss.selective_scan_chunked(*leaves, reverse=reverse, chunk=chunk)
            g_c = torch.autograd.grad(y_c, leaves, gy.double())
            errs = {"y": rel(y_c, y_r)}
            errs.update({"g" + n: rel(a, b) for n, a, b in zip(NAMES, g_c, g_r)})
            check(f"chunked vs ref, float64, B={B} L={L} E={E} N={N} chunk={chunk} "
                  f"reverse={reverse}", errs, 1e-10)
    # fp32 inputs: fp32 math, still close to the float64 ref
    inp = make_inputs(2, 37, 24, 16, seed=5)
    gy = torch.randn(2, 37, 24, generator=torch.Generator().manual_seed(6))
    y_r, g_r = ref64(inp, gy, True)
    leaves = [t.clone().requires_grad_() for t in inp]
    y_c = ss.selective_scan_chunked(*leaves, reverse=True)
    g_c = torch.autograd.grad(y_c, leaves, gy)
    errs = {"y": rel(y_c, y_r)}
    errs.update({"g" + n: rel(a, b) for n, a, b in zip(NAMES, g_c, g_r)})
    check("chunked vs ref, fp32, B=2 L=37 E=24 N=16 reverse=True", errs, 1e-4)


def run_triton_case(B, L, E, N, reverse, dtype, block_e, tol, seed):
    inp = make_inputs(B, L, E, N, seed=seed)
    # activations in `dtype`; dt_bias, A, D stay fp32 parameters
    inp = [t.to(dtype) if i in (0, 1, 4, 5) else t for i, t in enumerate(inp)]
    gy = torch.randn(B, L, E, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    leaves = [t.clone().requires_grad_() for t in inp]
    t0 = time.time()
    y = ss.selective_scan(*leaves, reverse=reverse, backend="triton", block_e=block_e)
    grads = torch.autograd.grad(y, leaves, gy)
    dt_s = time.time() - t0
    y_r, g_r = ref64(inp, gy, reverse)
    assert y.dtype == dtype and all(g.dtype == t.dtype for g, t in zip(grads, inp))
    errs = {"y": rel(y, y_r)}
    errs.update({"g" + n: rel(a, b) for n, a, b in zip(NAMES, grads, g_r)})
    return check(f"triton vs float64 ref, {str(dtype)[6:]}, B={B} L={L} E={E} N={N} "
                 f"block_e={block_e} reverse={reverse} ({dt_s:.1f} s interpreted)", errs, tol)


def test_triton(quick=False):
    cases = [
        (2, 37, 24, 4, False, torch.float32, 32, 1e-4),
        (2, 37, 24, 4, True, torch.float32, 32, 1e-4),
        (2, 37, 24, 16, False, torch.float32, 32, 1e-4),
        (2, 37, 24, 16, True, torch.float32, 32, 1e-4),
        (2, 37, 24, 16, False, torch.bfloat16, 32, 2e-2),
        (2, 37, 24, 16, True, torch.bfloat16, 32, 2e-2),
        (2, 37, 24, 16, True, torch.float32, 8, 1e-4),      # 3 channel blocks
        (1, 32, 8, 4, False, torch.float32, 8, 1e-4),       # L a multiple of the chunk
        (3, 1, 5, 3, True, torch.float16, 8, 1e-2),         # L = 1, N not a power of 2, fp16
    ]
    if quick:
        cases = cases[1::3]
    for i, c in enumerate(cases):
        run_triton_case(*c, seed=100 + i)


def test_dispatch():
    inp = make_inputs(2, 10, 6, 4, seed=9)
    old = os.environ.pop("TRITON_INTERPRET", None)
    try:
        y = ss.selective_scan(*inp, reverse=True)
    finally:
        if old is not None:
            os.environ["TRITON_INTERPRET"] = old
    y_r = ss.selective_scan_ref(*inp, reverse=True)
    check("CPU dispatch without TRITON_INTERPRET uses the ref", {"y": rel(y, y_r)}, 0.0)


def main():
    quick = "--quick" in sys.argv[1:]
    t0 = time.time()
    test_ref_vs_literal()
    test_chunked_vs_ref()
    test_dispatch()
    test_triton(quick)
    print(f"{len(FAILS)} failure(s), {time.time() - t0:.0f} s")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
