#!/usr/bin/env python3
"""One command for the GPU host: our CUDA Vim next to DeiT (timm) on the same card.

  bench/run-bench.py --build build-cuda [--set full|quick|targets] [--precision fp16]
                     [--compile targets|all|none] [--gpus N] [--deadline S]
                     [--json OUT.json] [--md OUT.md]

For Vim-Ti/S/B at 224/512/1024/1248 and batch 1/8/64/256 where they fit it
prints median and p99 latency of a forward (device time, CUDA events, input
already on the GPU), images/s and peak device memory (weights; activations =
everything else the runner allocates: workspace, input batch, logits, cuBLAS
workspace). In the same run DeiT-Ti and DeiT-S from timm (fp16, SDPA
attention), eager and through torch.compile (mode="reduce-overhead", CUDA
graphs, for batch 1; "max-autotune-no-cudagraphs" for larger batches, and
at batches 8 and 64 also "reduce-overhead", the faster of the two counting,
since without CUDA graphs those are bound by Python's launches), with
the same measures (activations = torch.cuda.max_memory_allocated above the
weights, input included; for CUDA graphs the peak from the first compiled
call on, since the graph's private pool is allocated while it is recorded
and replays allocate nothing: an upper bound that includes the warm-up),
and our/their ratios against the best DeiT.

max-autotune costs 1.5-2.5 minutes a DeiT row on an H200 (torch 2.11), so
`--compile all` over the full set takes about half an hour on one GPU.
`--gpus N` shares the compiled rows among N GPUs of the host (GPU 0 runs Vim
first, alone, then the eager rows and its share; the others start after the
Vim rows), and `--deadline S` leaves rows that would not finish within S
seconds as "not run", for a later `--compile-rows` run whose JSON `--load`
merges into one table.

Random weights (tools/vim-random-model), random inputs (never zeros).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SIZES = {  # res -> batches
    224: [1, 8, 64, 256],
    512: [1, 8, 64],
    1024: [1, 8],
    1248: [1, 8],
}
VARIANTS = [("Vim-Ti", "vim_ti", "DeiT-Ti", "deit_tiny_patch16_224"),
            ("Vim-S", "vim_s", "DeiT-S", "deit_small_patch16_224"),
            ("Vim-B", "vim_b", None, None)]
# compiled DeiT runs (each compile costs tens of seconds): the target rows
COMPILE_TARGETS = [("DeiT-Ti", 224, 1), ("DeiT-Ti", 224, 256), ("DeiT-Ti", 1248, 8),
                   ("DeiT-S", 224, 256), ("DeiT-S", 224, 1), ("DeiT-Ti", 1248, 1),
                   ("DeiT-S", 1248, 8)]   # in priority order


T_START = time.time()


def log(*a):
    worker = os.environ.get("VIM_BENCH_WORKER")
    print(*((f"[{worker}]",) if worker else ()), *a, file=sys.stderr, flush=True)


def card():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def run_vim(args, tmp, plan):
    rows = []
    for name, variant, _, _ in VARIANTS:
        for res, batches in plan.get(name, {}).items():
            model = os.path.join(tmp, f"{variant}-{res}.safetensors")
            t0 = time.time()
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "vim-random-model"),
                            "--variant", variant, "--image-size", str(res), "--dtype", "F16",
                            "-o", model], check=True)
            log(f"[vim] {name} {res}: model in {time.time() - t0:.1f}s")
            cmd = [os.path.join(args.build, "bench", "vim-bench"), "--model", model,
                   "--precision", args.precision, "--batches", ",".join(map(str, batches)),
                   "--label", name, "--seconds", str(args.seconds)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode not in (0, 1):
                log(out.stderr)
            for line in out.stdout.splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                r["model"] = name
                rows.append(r)
                if "error" in r:
                    log(f"[vim] {name} {res} b{r['batch']}: ERROR {r['error']}")
                else:
                    log(f"[vim] {name} {res} b{r['batch']}: {r['median_ms']:.4f} ms "
                        f"(p99 {r['p99_ms']:.4f}), {r['img_s']:.0f} img/s, act {r['act_mib']:.1f} MiB, "
                        f"pass {r['pass_images']}x{r['passes']}, lanes {r['scan_lanes']} chunks {r.get('scan_chunks')}"
                        f"{' (whole chains)' if r.get('scan_whole') else ''}"
                        f"{' (streamed chains)' if r.get('scan_stream') else ''}")
            os.remove(model)
    return rows


def time_fn(torch, fn, x, seconds, min_iters=10, max_iters=200, step=None):
    for _ in range(5):
        if step:
            step()
        fn(x)
    torch.cuda.synchronize()
    times = []
    t0 = time.time()
    while len(times) < max_iters and (len(times) < min_iters or time.time() - t0 < seconds):
        if step:
            step()
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn(x)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return {"median_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, int(0.99 * len(times) + 0.999) - 1)],
            "min_ms": times[0], "iters": len(times)}


def compiled_todo(args, plan):
    """The compiled DeiT rows this run asks for, in priority order."""
    if args.compile == "none":
        return []
    if args.compile_rows:
        want = [(d, int(r), int(b)) for d, r, b in
                (x.split(":") for x in args.compile_rows.split(","))]
        return [k for k in want if k[0] in plan]
    todo = [k for k in COMPILE_TARGETS if k[0] in plan and k[1] in plan[k[0]] and k[2] in plan[k[0]][k[1]]]
    if args.compile == "all":
        todo += [(d, r, b) for d, sz in plan.items() for r, bs in sz.items() for b in bs
                 if (d, r, b) not in todo]
    return todo


GRAPHS, AUTOTUNE = "reduce-overhead", "max-autotune-no-cudagraphs"


def compile_modes(b, graph_batches):
    """torch.compile modes a compiled DeiT row runs, the faster one counting:
    CUDA graphs at batch 1, max-autotune at large batches, and both in
    between (graph_batches), where the uncaptured max-autotune model is still
    bound by Python's launches on the host"""
    if b == 1:
        return [GRAPHS]
    return [AUTOTUNE, GRAPHS] if b in graph_batches else [AUTOTUNE]


def compile_cost(row, graph_batches):
    """Rough seconds to compile a DeiT row (H200, torch 2.11): CUDA graphs
    (reduce-overhead) take 10-20 s, max-autotune minutes (DeiT-S about 2)."""
    dname, res, b = row
    cost = {GRAPHS: 20.0,
            AUTOTUNE: 80.0 * (1.8 if dname == "DeiT-S" else 1.0) * (1.3 if res >= 1024 else 1.0)}
    return sum(cost[m] for m in compile_modes(b, graph_batches))


def split_rows(todo, n, head_start, graph_batches):
    """Rows for n GPUs, longest first onto the least loaded (GPU 0 also
    runs the eager rows: head_start seconds); each share keeps the
    priority order."""
    load = [head_start] + [0.0] * (n - 1)
    share = [[] for _ in range(n)]

    def cost(row):
        return compile_cost(row, graph_batches)
    for row in sorted(todo, key=cost, reverse=True):
        i = min(range(n), key=lambda j: load[j])
        share[i].append(row)
        load[i] += cost(row)
    return [[r for r in todo if r in s] for s in share]


def spawn_compile_workers(args, shares, tmp):
    """GPUs 1.. compile and time their share of the compiled DeiT rows in
    processes of their own (CUDA_VISIBLE_DEVICES), while GPU 0 goes on."""
    procs = []
    for gpu, share in enumerate(shares[1:], start=1):
        if not share:
            continue
        # beside --json where given, so that a run cut short keeps them
        out = (os.path.splitext(args.json)[0] if args.json else os.path.join(tmp, "deit")) \
            + f".gpu{gpu}.json"
        cmd = [sys.executable, os.path.abspath(__file__), "--set", args.set,
               "--precision", args.precision, "--no-vim", "--no-eager", "--gpus", "1",
               "--graph-batches", ",".join(map(str, args.graph_batches)),
               "--seconds", str(args.seconds), "--compile-budget", str(args.compile_budget),
               *(["--deadline", str(args.deadline - (time.time() - T_START))] if args.deadline else []),
               "--compile-rows", ",".join(f"{d}:{r}:{b}" for d, r, b in share), "--json", out]
        # the gpu-th of the GPUs this process sees
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        dev = visible[gpu] if len(visible) > gpu else str(gpu)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=dev, VIM_BENCH_WORKER=f"GPU {gpu}")
        log(f"[deit] GPU {gpu}: {len(share)} compiled rows in a worker")
        procs.append((gpu, out, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)))
    return procs


def join_compile_workers(procs):
    rows = []
    for gpu, out, p in procs:
        p.wait()
        try:
            with open(out) as f:
                got = json.load(f).get("deit", [])
        except (OSError, ValueError) as e:
            log(f"[deit] GPU {gpu}: worker left no rows ({e})")
            continue
        for r in got:
            r["gpu"] = gpu
        rows += got
    return rows


def run_deit(args, plan, todo, budget, deadline=None, save=None):
    import torch
    import timm
    rows = []
    t_start = time.time()
    models = {}

    def get(dname, res):
        if (dname, res) not in models:
            models.clear()
            torch.cuda.empty_cache()
            timm_name = {d: t for _, _, d, t in VARIANTS if d}[dname]
            m = timm.create_model(timm_name, img_size=res, pretrained=False, num_classes=1000)
            models[(dname, res)] = m.half().cuda().eval()
        return models[(dname, res)]

    def one(dname, res, b, mode, cmode=None):
        base = get(dname, res)
        wbytes = sum(p.numel() * p.element_size() for p in base.parameters())
        torch.cuda.empty_cache()
        x = torch.randn(b, 3, res, res, device="cuda", dtype=torch.float16)
        step = None
        try:
            with torch.inference_mode():
                if mode == "eager":
                    fn = base
                else:
                    torch._dynamo.reset()
                    fn = torch.compile(base, mode=cmode)
                    if cmode == GRAPHS:
                        step = torch.compiler.cudagraph_mark_step_begin
                        # the graph's pool is allocated while recording: count from here
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.time()
                    for _ in range(3):
                        if step:
                            step()
                        fn(x)
                    torch.cuda.synchronize()
                    log(f"[deit] {dname} {res} b{b} compile ({cmode}) {time.time() - t0:.0f}s")
                torch.cuda.synchronize()
                if step is None:
                    torch.cuda.reset_peak_memory_stats()
                r = time_fn(torch, fn, x, args.seconds, step=step)
                peak = torch.cuda.max_memory_allocated()
            r.update({"model": dname, "res": res, "batch": b, "mode": mode,
                      "compile_mode": cmode, "img_s": b * 1000.0 / r["median_ms"],
                      "weights_mib": wbytes / 2**20, "act_mib": (peak - wbytes) / 2**20,
                      "act_mib_per_img": (peak - wbytes) / 2**20 / b})
            log(f"[deit] {dname} {res} b{b} {mode}{f' ({cmode})' if cmode else ''}: {r['median_ms']:.4f} ms, "
                f"{r['img_s']:.0f} img/s, act {r['act_mib']:.1f} MiB")
        except Exception as e:  # noqa: BLE001
            msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            log(f"[deit] {dname} {res} b{b} {mode}: ERROR {msg}")
            r = {"model": dname, "res": res, "batch": b, "mode": mode, "compile_mode": cmode,
                 "error": msg}
        rows.append(r)
        if save:
            save(rows)

    # eager everywhere first (cheap), then the compiled rows by priority
    if not args.no_eager:
        for dname, sizes in plan.items():
            for res, batches in sizes.items():
                for b in batches:
                    one(dname, res, b, "eager")
    for dname, res, b in todo:
        late = deadline is not None and \
            time.time() + 1.15 * compile_cost((dname, res, b), args.graph_batches) > deadline
        if time.time() - t_start > budget or late:
            log(f"[deit] {dname} {res} b{b} compiled: not run (time budget)")
            rows.append({"model": dname, "res": res, "batch": b, "mode": "compiled",
                         "error": "not run (time budget of this run)"})
            continue
        for cmode in compile_modes(b, args.graph_batches):
            one(dname, res, b, "compiled", cmode)
    return rows


def make_plan(args):
    vim, deit = {}, {}
    if args.set == "quick":
        sizes = {224: [1, 64, 256], 1248: [8]}
    elif args.set == "targets":
        sizes = {224: [1, 256], 1248: [8]}
    else:
        sizes = SIZES
    for name, _, dname, _ in VARIANTS:
        for res, bs in sizes.items():
            bs = list(bs)
            if args.set != "full" and name == "Vim-B":
                continue
            if args.set == "targets" and name == "Vim-S" and res != 224:
                continue
            vim.setdefault(name, {})[res] = bs
            if dname:
                deit.setdefault(dname, {})[res] = bs
    return vim, deit


def table(vim_rows, deit_rows):
    lines = []
    hdr = ("| model | res | batch | ms median | ms p99 | img/s | act MiB | act MiB/img | "
           "DeiT eager ms | DeiT compiled ms | best DeiT img/s | best DeiT act MiB/img | speed ours/theirs | mem theirs/ours |")
    lines.append(hdr)
    lines.append("|" + "---|" * 14)
    deit = {}
    for r in deit_rows:   # the faster of a row's compile modes
        k = (r["model"], r["res"], r["batch"], r["mode"])
        if "error" not in r and (k not in deit or r["median_ms"] < deit[k]["median_ms"]):
            deit[k] = r
    for r in vim_rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['res']} | {r['batch']} | error: {r['error']} |" + " |" * 10)
            continue
        dname = {"Vim-Ti": "DeiT-Ti", "Vim-S": "DeiT-S"}.get(r["model"])
        e = deit.get((dname, r["res"], r["batch"], "eager"))
        c = deit.get((dname, r["res"], r["batch"], "compiled"))
        cands = [x for x in (e, c) if x]
        best = min(cands, key=lambda x: x["median_ms"]) if cands else None
        bestmem = min(cands, key=lambda x: x["act_mib_per_img"]) if cands else None
        f = lambda v, p=4: f"{v:.{p}f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(
            f"| {r['model']} | {r['res']} | {r['batch']} | {f(r['median_ms'])} | {f(r['p99_ms'])} | "
            f"{r['img_s']:.0f} | {r['act_mib']:.1f} | {r['act_mib_per_img']:.2f} | "
            f"{f(e['median_ms']) if e else '-'} | {f(c['median_ms']) if c else '-'} | "
            f"{f(best['img_s'], 0) if best else '-'} | {f(bestmem['act_mib_per_img'], 2) if bestmem else '-'} | "
            f"{f(best['median_ms'] / r['median_ms'], 2) if best else '-'} | "
            f"{f(bestmem['act_mib_per_img'] / r['act_mib_per_img'], 2) if bestmem else '-'} |")
    lines.append("")
    lines.append("| peer | res | batch | mode | ms median | ms p99 | img/s | act MiB | act MiB/img |")
    lines.append("|" + "---|" * 9)
    for r in deit_rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['res']} | {r['batch']} | {r['mode']} | {r['error']} |||||")
        else:
            mode = r["mode"] + (f" ({r['compile_mode']})" if r.get("compile_mode") else "")
            if r.get("gpu"):
                mode += f", GPU {r['gpu']}"
            lines.append(f"| {r['model']} | {r['res']} | {r['batch']} | {mode} | {r['median_ms']:.4f} | "
                         f"{r['p99_ms']:.4f} | {r['img_s']:.0f} | {r['act_mib']:.1f} | {r['act_mib_per_img']:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-cuda"))
    ap.add_argument("--set", choices=["full", "quick", "targets"], default="full")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--compile", choices=["targets", "all", "none"], default="targets")
    ap.add_argument("--compile-budget", type=float, default=240.0,
                    help="seconds after which no more DeiT compiles start")
    ap.add_argument("--seconds", type=float, default=0.5, help="timing budget per row")
    ap.add_argument("--no-vim", action="store_true")
    ap.add_argument("--no-deit", action="store_true")
    ap.add_argument("--no-eager", action="store_true",
                    help="DeiT: only the compiled rows (a run split over two calls)")
    ap.add_argument("--compile-rows",
                    help="compiled DeiT rows to run instead of the target list, "
                         "e.g. DeiT-S:224:256,DeiT-S:224:1")
    ap.add_argument("--graph-batches", default="1,8,64",
                    type=lambda v: tuple(int(x) for x in v.split(",")),
                    help="batches whose compiled DeiT also runs with CUDA graphs (mode "
                         "reduce-overhead) besides max-autotune-no-cudagraphs, the faster "
                         "counting; batch 1 runs with CUDA graphs only (default: 1,8,64)")
    ap.add_argument("--deadline", type=float,
                    help="seconds from now by which the run should be done: a compiled DeiT "
                         "row whose estimated compile would end later is left for another run")
    ap.add_argument("--gpus", type=int, default=1,
                    help="GPUs of this host to share the compiled DeiT rows (each compile "
                         "costs up to minutes): GPU 0 runs Vim, the eager rows and its share, "
                         "GPUs 1.. theirs in worker processes, started after the Vim rows")
    ap.add_argument("--json", help="write (and keep updating) the raw rows here")
    ap.add_argument("--load", nargs="*", help="only print the table of saved runs")
    ap.add_argument("--md")
    args = ap.parse_args()
    vim_plan, deit_plan = make_plan(args)
    info = {"card": card(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), "precision": args.precision,
            "env": {k: v for k, v in os.environ.items() if k.startswith("VIM_CUDA_")}}
    log(f"card: {info['card']}")
    vim_rows, deit_rows = [], []

    def save(vr=None, dr=None):
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"info": info, "vim": vim_rows if vr is None else vr,
                           "deit": deit_rows if dr is None else dr}, f, indent=1)

    if args.load:
        for path in args.load:
            with open(path) as f:
                d = json.load(f)
            vim_rows += d.get("vim", [])
            deit_rows += d.get("deit", [])
            info = d.get("info", info)
        info["command"] = " ".join(sys.argv)
        # a row one run could not fit ("not run") and another run measured
        done = {(r["model"], r["res"], r["batch"], r["mode"]) for r in deit_rows if "error" not in r}
        deit_rows = [r for r in deit_rows
                     if "error" not in r or (r["model"], r["res"], r["batch"], r["mode"]) not in done]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.no_vim:
                vim_rows = run_vim(args, tmp, vim_plan)
                save()
            if not args.no_deit:
                todo = compiled_todo(args, deit_plan)
                n = max(1, args.gpus)
                eager = 0 if args.no_eager else 60.0
                shares = split_rows(todo, n, eager, args.graph_batches)
                workers = spawn_compile_workers(args, shares, tmp)
                deadline = T_START + args.deadline if args.deadline else None
                deit_rows = run_deit(args, deit_plan, shares[0], args.compile_budget, deadline,
                                     save=lambda rows: save(dr=rows))
                deit_rows += join_compile_workers(workers)
                if n > 1:
                    info["gpus"] = n
        save()
    order = {d: i for i, (_, _, d, _) in enumerate(VARIANTS)}
    deit_rows.sort(key=lambda r: (r["mode"] != "eager", order.get(r["model"], 9), r["res"], r["batch"]))
    md = table(vim_rows, deit_rows)
    head = (f"card: {info['card']}  \ndate: {info['date']}  \ncommand: `{info['command']}`  \n"
            f"our precision: {args.precision}; DeiT: fp16, SDPA  \n")
    print(head)
    print(md)
    if args.md:
        with open(args.md, "w") as f:
            f.write(head + "\n" + md + "\n")


if __name__ == "__main__":
    main()
