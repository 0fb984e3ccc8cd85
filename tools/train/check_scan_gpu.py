#!/usr/bin/env python3
"""GPU self-check of selective_scan.py (run on the training machine).

For each case (B=64 L=65 and B=4 L=1728, E=384 N=16, both directions, fp32
and bf16 activations; dt_bias, A, D fp32 parameters):
  - the Triton forward and every gradient against the sequential ref run in
    float64 through autograd on the same GPU (rel err = max|a-b| / max|b|;
    tol 1e-4 for fp32, 2e-2 for bf16);
  - the chunked torch fallback, the same way;
  - fwd+bwd time (ms, median of CUDA-event timings) of triton and chunked,
    and their peak extra memory.
One line per case; exit 0 = PASS (all cases), 1 = FAIL.

    python3 tools/train/check_scan_gpu.py [--no-sweep] [--shapes 64x65,4x1728]

--sweep (default on) also times the Triton kernels for each channel block
size (block_e) at each shape, to tune the default choice.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import selective_scan as ss  # noqa: E402

NAMES = ("x", "dt", "dt_bias", "A", "Bm", "Cm", "D")


def rel(a, b):
    a = a.detach().double()
    b = b.detach().double()
    den = b.abs().max().item()
    return (a - b).abs().max().item() / (den if den > 0 else 1.0)


def make_inputs(B, L, E, N, dtype, seed, dev):
    """Vim-like magnitudes (A_log = log(1..N), dt in [1e-3, 0.1] at init)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(B, L, E, generator=g)
    dt = torch.randn(B, L, E, generator=g) * 0.5
    dt_bias = torch.log(torch.expm1(torch.empty(E).uniform_(1e-3, 0.1, generator=g)))
    flat = dt.view(-1)                       # a few on both sides of the softplus threshold
    idx = torch.randperm(flat.numel(), generator=g)[:64]
    flat[idx[:32]] = 25.0
    flat[idx[32:]] = -30.0
    A = -torch.exp(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1)
                   + 0.1 * torch.randn(E, N, generator=g))
    Bm = torch.randn(B, L, N, generator=g)
    Cm = torch.randn(B, L, N, generator=g)
    D = torch.randn(E, generator=g)
    gy = torch.randn(B, L, E, generator=g)
    ins = [x, dt, dt_bias, A, Bm, Cm, D]
    ins = [t.to(dev, dtype if i in (0, 1, 4, 5) else torch.float32) for i, t in enumerate(ins)]
    return ins, gy.to(dev, dtype)


def fwd_bwd(fn, ins, gy):
    leaves = [t.detach().requires_grad_() for t in ins]
    y = fn(leaves)
    grads = torch.autograd.grad(y, leaves, gy)
    return y.detach(), grads


def errors(y, grads, y_r, g_r):
    e = {"y": rel(y, y_r)}
    e.update({"g" + n: rel(a, b) for n, a, b in zip(NAMES, grads, g_r)})
    return e


def time_ms(fn, ins, gy, iters):
    for _ in range(2):
        fwd_bwd(fn, ins, gy)
    if ins[0].device.type != "cuda":          # --device cpu dry run (TRITON_INTERPRET=1)
        t0 = time.perf_counter()
        fwd_bwd(fn, ins, gy)
        return (time.perf_counter() - t0) * 1e3, 0.0
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fwd_bwd(fn, ins, gy)
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return statistics.median(ts), peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="64x65,4x1728")
    ap.add_argument("--E", type=int, default=384)
    ap.add_argument("--N", type=int, default=16)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: dry run of this script
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("FAIL: no CUDA device")
        return 1
    if not ss.HAVE_TRITON:
        print("FAIL: triton is not importable")
        return 1
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu (interpreter)"
    print(f"device {name}, torch {torch.__version__}, "
          f"triton {ss.triton.__version__}", flush=True)
    E, N = args.E, args.N
    fails = 0
    t_start = time.time()
    for shp in args.shapes.split(","):
        B, L = (int(v) for v in shp.split("x"))
        for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
            for reverse in (False, True):
                dn = str(dtype)[6:]
                label = f"B={B} L={L} E={E} N={N} {dn} reverse={reverse}"
                try:
                    ins, gy = make_inputs(B, L, E, N, dtype, seed=B * 7 + L, dev=dev)

                    def f_tri(t, r=reverse):
                        return ss.selective_scan(*t, reverse=r, backend="triton")

                    def f_chk(t, r=reverse):
                        return ss.selective_scan_chunked(*t, reverse=r)

                    def f_ref(t, r=reverse):
                        return ss.selective_scan_ref(*t, reverse=r)

                    y_r, g_r = fwd_bwd(f_ref, [t.double() for t in ins], gy.double())
                    y_t, g_t = fwd_bwd(f_tri, ins, gy)
                    ok_dtypes = y_t.dtype == dtype and all(
                        g.dtype == t.dtype for g, t in zip(g_t, ins))
                    e_t = errors(y_t, g_t, y_r, g_r)
                    y_c, g_c = fwd_bwd(f_chk, ins, gy)
                    e_c = errors(y_c, g_c, y_r, g_r)
                    del y_r, g_r, y_t, g_t, y_c, g_c
                    ms_t, mem_t = time_ms(f_tri, ins, gy, args.iters)
                    ms_c, mem_c = time_ms(f_chk, ins, gy, args.iters)
                    wt, wc = max(e_t.values()), max(e_c.values())
                    ok = ok_dtypes and wt <= tol and wc <= tol
                    worst_t = max(e_t, key=e_t.get)
                    worst_c = max(e_c, key=e_c.get)
                    print(f"{'PASS' if ok else 'FAIL'} {label}: rel err triton {wt:.1e} "
                          f"({worst_t}), chunked {wc:.1e} ({worst_c}), tol {tol:.0e}"
                          f"{'' if ok_dtypes else ', WRONG grad dtypes'} | fwd+bwd ms: "
                          f"triton {ms_t:.2f} chunked {ms_c:.2f} | peak MiB: triton "
                          f"{mem_t:.0f} chunked {mem_c:.0f}", flush=True)
                    if not ok:
                        print("   triton: " + " ".join(f"{k}={v:.1e}" for k, v in e_t.items()))
                        print("   chunked: " + " ".join(f"{k}={v:.1e}" for k, v in e_c.items()))
                        fails += 1
                except Exception as ex:  # a compile or launch failure is a FAIL
                    print(f"FAIL {label}: {type(ex).__name__}: {ex}", flush=True)
                    fails += 1
        if not args.no_sweep:
            try:
                ins, gy = make_inputs(B, L, E, N, torch.bfloat16, seed=1, dev=dev)
                default = ss._triton_config(B, E, N)[0]
                parts = []
                for be in ((4, 8, 16, 32, 64) if dev.type == "cuda" else (32,)):
                    ms, _ = time_ms(lambda t, be=be: ss.selective_scan(
                        *t, backend="triton", block_e=be), ins, gy, args.iters)
                    parts.append(f"{be}:{ms:.2f}")
                print(f"INFO sweep B={B} L={L} bf16 fwd+bwd ms by block_e "
                      f"(default {default}): " + " ".join(parts), flush=True)
            except Exception as ex:
                print(f"INFO sweep B={B} L={L} failed: {type(ex).__name__}: {ex}", flush=True)
    print(f"{'PASS' if fails == 0 else 'FAIL'}: {fails} failing case(s), "
          f"{time.time() - t_start:.0f} s", flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
