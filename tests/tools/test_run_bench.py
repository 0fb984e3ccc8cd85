#!/usr/bin/env python3
"""bench/run-bench.py's bookkeeping, without a GPU: which torch.compile modes
a DeiT row runs, how compiled rows are shared among GPUs, that the table
takes the faster of a row's compiled modes, and that a run split over GPU
workers and over two runs (--deadline, then --compile-rows, then --load)
ends with every row measured once.

The timing itself needs a GPU and is not tested here: the runs below use a
stand-in `torch`/`timm` (written to a temporary directory) whose compiled
model takes a fixed, mode-dependent time, so the rows' values are known.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "run-bench.py")

spec = importlib.util.spec_from_file_location("run_bench", SCRIPT)
rb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rb)

FAKE_TORCH = '''
import time, types
MS = {None: 3.0, "reduce-overhead": 1.0, "max-autotune-no-cudagraphs": 2.0}
_current = [None]
class Event:
    def __init__(self, enable_timing=False): self.t = 0.0
    def record(self): self.t = _clock[0]
    def synchronize(self): pass
    def elapsed_time(self, other): return other.t - self.t
_clock = [0.0]
class _Cuda:
    Event = Event
    def synchronize(self): pass
    def empty_cache(self): pass
    def reset_peak_memory_stats(self): pass
    def max_memory_allocated(self): return 3 * 2**20
cuda = _Cuda()
float16 = "f16"
def randn(*a, **k): return None
class _NoGrad:
    def __enter__(self): return self
    def __exit__(self, *a): return False
def inference_mode(): return _NoGrad()
_dynamo = types.SimpleNamespace(reset=lambda: None)
compiler = types.SimpleNamespace(cudagraph_mark_step_begin=lambda: None)
def compile(model, mode=None):
    def run(x):
        _clock[0] += MS[mode]
    return run
'''
FAKE_TIMM = '''
class _P:
    def numel(self): return 2**20
    def element_size(self): return 1
class _Model:
    def half(self): return self
    def cuda(self): return self
    def eval(self): return self
    def parameters(self): return [_P()]
    def __call__(self, x):
        import torch
        torch._clock[0] += torch.MS[None]
def create_model(*a, **k): return _Model()
'''


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        check.failed = True


check.failed = False


def run(tmp, *args):
    env = dict(os.environ, PYTHONPATH=tmp, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, SCRIPT, "--set", "targets", "--no-vim", "--seconds", "0",
                          *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        print(out.stderr)
    return out


def main():
    g = (1, 8, 64)
    check(rb.compile_modes(1, g) == [rb.GRAPHS], "batch 1: CUDA graphs only")
    check(rb.compile_modes(8, g) == [rb.AUTOTUNE, rb.GRAPHS], "batch 8: both modes")
    check(rb.compile_modes(256, g) == [rb.AUTOTUNE], "batch 256: max-autotune only")
    check(rb.compile_cost(("DeiT-S", 224, 8), g) > rb.compile_cost(("DeiT-S", 224, 256), g),
          "a row with two modes costs more than one")

    todo = [(d, r, b) for d in ("DeiT-Ti", "DeiT-S") for r, bs in rb.SIZES.items() for b in bs]
    for n in (1, 2, 3):
        shares = rb.split_rows(todo, n, 60.0, g)
        flat = [x for s in shares for x in s]
        check(sorted(flat) == sorted(todo) and len(flat) == len(todo),
              f"{n} GPU(s): every compiled row in exactly one share")
        check(all([x for x in todo if x in s] == s for s in shares),
              f"{n} GPU(s): each share keeps the priority order")
        if n > 1:
            loads = [sum(rb.compile_cost(x, g) for x in s) + (60.0 if i == 0 else 0.0)
                     for i, s in enumerate(shares)]
            biggest = max(rb.compile_cost(x, g) for x in todo)
            check(max(loads) - min(loads) <= biggest, f"{n} GPUs: loads within one row of each other")

    vim = [{"model": "Vim-Ti", "res": 224, "batch": 8, "median_ms": 1.5, "p99_ms": 1.6, "img_s": 5333,
            "act_mib": 8.0, "act_mib_per_img": 1.0}]
    deit = [{"model": "DeiT-Ti", "res": 224, "batch": 8, "mode": m, "compile_mode": c, "median_ms": ms,
             "p99_ms": ms, "img_s": 8000 / ms, "act_mib": 16.0, "act_mib_per_img": 2.0}
            for m, c, ms in (("eager", None, 3.0), ("compiled", rb.GRAPHS, 1.0),
                             ("compiled", rb.AUTOTUNE, 2.0))]
    row = [ln for ln in rb.table(vim, deit).splitlines() if ln.startswith("| Vim-Ti | 224 | 8 |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    check(cells[9] == "1.0000", f"table: the faster compiled mode counts (got {cells[9]})")
    check(cells[12] == "0.67", f"table: ours/theirs against it, 1.0 / 1.5 (got {cells[12]})")

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("torch", FAKE_TORCH), ("timm", FAKE_TIMM)):
            os.makedirs(os.path.join(tmp, name))
            with open(os.path.join(tmp, name, "__init__.py"), "w") as f:
                f.write(text)
        # the targets set's compiled rows, batch 256 with both modes, on two
        # "GPUs"; the deadline leaves the max-autotune rows for a second run
        a = os.path.join(tmp, "a.json")
        out = run(tmp, "--compile", "targets", "--gpus", "2", "--graph-batches", "1,256",
                  "--deadline", "100", "--json", a)
        check(out.returncode == 0, "first run (two GPU workers, a deadline) exits 0")
        rows = json.load(open(a))["deit"]
        done = [r for r in rows if r["mode"] == "compiled" and "error" not in r]
        left = sorted({(r["model"], r["res"], r["batch"]) for r in rows if "error" in r})
        check(any(r.get("gpu") == 1 for r in rows), "the worker's rows are merged, marked GPU 1")
        check(all(r["compile_mode"] == rb.GRAPHS for r in done) and len(done) >= 2,
              f"within the deadline only CUDA-graph compiles ran ({len(done)})")
        check(len(left) >= 1, f"rows past the deadline are left as not run ({len(left)})")
        b = os.path.join(tmp, "b.json")
        out = run(tmp, "--no-eager", "--gpus", "2", "--graph-batches", "1,256", "--json", b,
                  "--compile-rows", ",".join(f"{d}:{r}:{bb}" for d, r, bb in left))
        check(out.returncode == 0, "second run (the rows left) exits 0")
        out = subprocess.run([sys.executable, SCRIPT, "--load", a, b], capture_output=True,
                             text=True, timeout=60)
        peers = [ln for ln in out.stdout.splitlines() if ln.startswith("| DeiT")]
        check(not any("not run" in ln for ln in peers), "after --load no row is left not run")
        plan_args = type("A", (), {"set": "targets", "compile": "targets", "compile_rows": None})()
        want = set(rb.compiled_todo(plan_args, rb.make_plan(plan_args)[1]))
        got = {}
        for ln in peers:
            c = [x.strip() for x in ln.strip("|").split("|")]
            if c[3].startswith("compiled"):
                got.setdefault((c[0], int(c[1]), int(c[2])), []).append(c[3])
        check(set(got) == want, f"every compiled target row measured ({len(got)} of {len(want)})")
        check(all(len(v) == (2 if k[2] == 256 else 1) for k, v in got.items()),
              "batch 256 in both modes, the others in one")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
