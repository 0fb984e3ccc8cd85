#!/usr/bin/env python3
"""Builds the model a fixture was computed with (random weights from its seed,
or an official-layout checkpoint through vim-convert) in a temporary folder,
then runs the C parity check on it.

  run_parity.py --test-parity BIN --tools DIR --fixture JSON [--pth FILE] [args for test-parity...]
"""
import argparse
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--test-parity", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--pth", help="convert this checkpoint instead of generating weights")
    args, rest = ap.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.safetensors")
        if args.pth:
            cmd = [sys.executable, os.path.join(args.tools, "vim-convert"), args.pth, model]
        else:
            cmd = [sys.executable, os.path.join(args.tools, "vim-random-model"),
                   "--fixture", args.fixture, "-o", model]
        subprocess.run(cmd, check=True)
        r = subprocess.run([args.test_parity, "--model", model, "--fixture", args.fixture] + rest)
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
