#!/usr/bin/env python3
"""Makes a random-weight model with tools/vim-random-model in a temporary
folder, then runs a test binary with @MODEL@ in its arguments replaced.

  with-model.py --tools DIR [vim-random-model args...] -- BIN [args...]
"""
import os
import subprocess
import sys
import tempfile


def main():
    argv = sys.argv[1:]
    if "--" not in argv or argv[:1] != ["--tools"]:
        print(__doc__, file=sys.stderr)
        return 2
    sep = argv.index("--")
    tools, gen_args, cmd = argv[1], argv[2:sep], argv[sep + 1:]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.safetensors")
        subprocess.run([sys.executable, os.path.join(tools, "vim-random-model")] + gen_args
                       + ["-o", model], check=True)
        cmd = [a.replace("@MODEL@", model) for a in cmd]
        return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
