"""Helpers of the data-suite tests: what they need before they can run (the
data files, programs, a python that imports torch for
tools/train/make_eval_pack.py), running a tool and returning the JSON line it
prints last."""
import argparse
import os
import shutil
import subprocess
import sys

SKIP = 77


def parser():
    """The options every data test takes (meson.build passes them)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--vim-infer", required=True)
    ap.add_argument("--tools", required=True, help="tools/train of the source tree")
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared-data", default=os.environ.get("VIM_TEST_SHARED_DATA", ""))
    ap.add_argument("--device", default="cpu")
    return ap


def torch_python():
    cands = [os.environ.get("VIM_TORCH_PYTHON"), shutil.which("python3"), sys.executable]
    for c in cands:
        if c and subprocess.run([c, "-c", "import torch, numpy"], capture_output=True).returncode == 0:
            return c
    return None


def run(cmd):
    print("+ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(p.stderr[-3000:])
    if p.returncode != 0:
        sys.stdout.write(p.stdout[-2000:])
        raise SystemExit(f"failed with {p.returncode}")
    line = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("{")][-1]
    print(line, flush=True)
    return line


def requirements(paths, programs=()):
    """The python with torch to run the tools with, or None (after printing
    why the test skips) when a path, a program or such a python is missing."""
    for p in paths:
        if not os.path.exists(p):
            print(f"SKIP: {p} not found")
            return None
    for prog in programs:
        if shutil.which(prog) is None:
            print(f"SKIP: no {prog}")
            return None
    py = torch_python()
    if py is None:
        print("SKIP: no python with torch for make_eval_pack.py (set VIM_TORCH_PYTHON)")
    return py


def engine_on_split(py, tools, task, data, model, vim_infer, device, workdir):
    """Packs the validation split of `data` (make_eval_pack.py) into workdir and
    runs the C engine over it (eval_engine.py); returns the engine's JSON line."""
    pack = os.path.join(workdir, "pack")
    run([py, os.path.join(tools, "make_eval_pack.py"), "--task", task, "--data", data,
         "--out", pack])
    return run([py, os.path.join(tools, "eval_engine.py"), model, "--pack", pack,
                "--vim-infer", vim_infer, "--device", device])
