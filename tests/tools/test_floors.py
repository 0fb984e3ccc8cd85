#!/usr/bin/env python3
"""bench/floors.py's counts against numbers worked out by hand for Vim-S at 224 px
(D 384, E 768, N 16, dt_rank 24: an x_proj row of 24 + 32 floats, 56): the bytes per
token and the weight bytes of out_proj and the scan with and without the directions
summed, and the scan's special-function operations per token."""
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "floors.py")
spec = importlib.util.spec_from_file_location("floors", SCRIPT)
floors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(floors)

failures = 0


def check(what, got, want):
    global failures
    ok = got == want
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {got} (expected {want})")


cfg = floors.make_config(image_size=(224, 224), **floors.VARIANTS["vim_s"])
plain = {k[0]: k[1:] for k in floors.layer_kernels(cfg, 1)}
summed = {k[0]: k[1:] for k in floors.layer_kernels(cfg, 1, sum_directions=True)}

# out_proj: fp16 input of 2E (or E) columns, fp32 residual in and out; weight D x 2E (or D x E)
check("out_proj bytes/token, both directions", plain["out_proj"][0], 2 * 768 * 2 + 2 * 384 * 4)
check("out_proj bytes/token, summed", summed["out_proj"][0], 768 * 2 + 2 * 384 * 4)
check("out_proj weight bytes, both directions", plain["out_proj"][1], 384 * 1536 * 2)
check("out_proj weight bytes, summed", summed["out_proj"][1], 384 * 768 * 2)
# scan: u, z and y (fp16, both directions), the x_proj rows (fp32, 56 floats each direction);
# summed, the backward pass also reads the forward outputs
scan_plain = 3 * 2 * 768 * 2 + 2 * 56 * 4
check("scan bytes/token, both directions", plain["scan"][0], scan_plain)
check("scan bytes/token, summed", summed["scan"][0], scan_plain + 768 * 2)
# one exponential per channel, state and direction, softplus' two and the gate's tanh
check("scan MUFU ops/token", plain["scan"][2], 2 * 768 * (16 + 2 + 1))
check("summing leaves the other kernels alone",
      all(plain[k] == summed[k] for k in ("rmsnorm", "in_proj", "conv", "x_proj")), True)

out = subprocess.run([sys.executable, SCRIPT, "--variant", "vim_s", "--pass-images", "256",
                      "--sum-directions"], capture_output=True, text=True)
check("the command runs", out.returncode, 0)
check("the command says the directions are summed", "directions summed" in out.stdout, True)

print("FAILED" if failures else "PASS")
sys.exit(1 if failures else 0)
