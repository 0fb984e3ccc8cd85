#!/usr/bin/env python3
"""Train the default Vim models (CIFAR-10 classifier, CamVid segmenter) under a
wall-clock deadline, with exact resume.

    torchrun --nproc_per_node=G tools/train/train.py --task classification \
        --data .data/cifar10-train-jpeg.tar.gz --out ckpt-cls --deadline-s 470 \
        --total-budget-s 440 [--resume ckpt-cls] [--export model.safetensors]

Everything happens on the GPU: the data set is decoded once into uint8 tensors,
batches are augmented there. One run trains until the schedule is complete or
the deadline (seconds since start) would be passed, then saves a checkpoint
(tools/train/ckpt.py) into --out, evaluates the raw and the EMA weights on the
validation split and, with --export, writes the better one as a model file.

Schedule: AdamW, linear warmup then cosine, in steps. With --total-budget-s the
first run times its first epoch and fixes the number of epochs so the whole
schedule fits the budget (training time summed over runs); it is stored in the
checkpoint and never changed on resume. Randomness is re-seeded from
(seed, global step, rank) at every step, so a resumed run continues exactly.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

T_START = time.time()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import ckpt  # noqa: E402
import data  # noqa: E402
import vim_model  # noqa: E402

DEFAULTS = {
    "classification": dict(image_size="32,32", patch=4, stride=4, batch=1024, lr=2e-3, wd=0.05,
                           epochs=100, warmup_epochs=5, drop_path=0.1, ema_decay=0.999,
                           eval_every=5, mix_prob=0.5, smoothing=0.1, jitter=0.2,
                           randaug_n=0, randaug_m=9.0, erase_prob=0.0),
    "segmentation": dict(image_size="360,480", patch=8, stride=8, batch=16, lr=1e-3, wd=0.05,
                         epochs=200, warmup_epochs=10, drop_path=0.1, ema_decay=0.999,
                         eval_every=10, mix_prob=0.0, smoothing=0.0, jitter=0.3,
                         randaug_n=0, randaug_m=9.0, erase_prob=0.0),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["classification", "segmentation"])
    ap.add_argument("--data", help="the data archive (or its extracted folder)")
    ap.add_argument("--synthetic", type=int, default=0, help="tests: N random images instead of --data")
    ap.add_argument("--out", required=True, help="checkpoint folder to write")
    ap.add_argument("--resume", help="checkpoint folder to continue from (absent folder: fresh start)")
    ap.add_argument("--init-from", help="model file or checkpoint whose blocks initialise this model")
    ap.add_argument("--init-all", action="store_true",
                    help="with --init-from: copy every tensor of matching name and shape (class token, "
                         "head...), to continue training a finished model on a new schedule")
    ap.add_argument("--export", help="write the better of raw/EMA (on val) as a model file here")
    ap.add_argument("--deadline-s", type=float, default=1e9, help="stop (and save) before this many s since start")
    ap.add_argument("--reserve-s", type=float, default=20.0, help="time kept for the final eval/save/export")
    ap.add_argument("--total-budget-s", type=float, default=0.0,
                    help="training seconds over all runs; fixes the epoch count after epoch 1 (first run)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop this run after this many steps (tests)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default=None, choices=["bf16", "none"])
    ap.add_argument("--seed", type=int, default=0)
    # model
    ap.add_argument("--embed-dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--expand", type=int, default=2)
    ap.add_argument("--d-conv", type=int, default=4)
    ap.add_argument("--image-size")
    ap.add_argument("--patch", type=int)
    ap.add_argument("--stride", type=int)
    ap.add_argument("--seg-channels", type=int, default=128)
    ap.add_argument("--seg-layers", help="comma list; default depth/4-1, depth/2-1, 3depth/4-1, depth-1")
    ap.add_argument("--num-classes", type=int, default=0, help="synthetic data only")
    # optimisation
    for k in ("batch", "epochs", "eval_every", "randaug_n"):
        ap.add_argument("--" + k.replace("_", "-"), type=int)
    for k in ("lr", "wd", "warmup_epochs", "drop_path", "ema_decay", "mix_prob", "smoothing", "jitter",
              "randaug_m", "erase_prob"):
        ap.add_argument("--" + k.replace("_", "-"), type=float)
    ap.add_argument("--class-weight-power", type=float, default=0.5, help="segmentation: (median/freq)^p")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--tag", default=None, help="log prefix")
    args = ap.parse_args(argv)
    for k, v in DEFAULTS[args.task].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.amp is None:
        args.amp = "bf16" if args.device.startswith("cuda") else "none"
    args.tag = args.tag or ("cls" if args.task == "classification" else "seg")
    return args


# ---------------------------------------------------------------- helpers

class Dist:
    def __init__(self, device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.startswith("cuda"):
            torch.cuda.set_device(self.local)
            self.device = torch.device("cuda", self.local)
        else:
            self.device = torch.device(device)
        if self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def allmax(self, v):
        if self.world == 1:
            return float(v)
        t = torch.tensor([float(v)], device=self.device, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def bcast_obj(self, obj):
        if self.world == 1:
            return obj
        lst = [obj]
        dist.broadcast_object_list(lst, src=0)
        return lst[0]


def log(args, msg):
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[{args.tag} {time.time() - T_START:6.1f}s] {msg}", flush=True)


def load_data(args, device):
    if args.synthetic:
        g = torch.Generator().manual_seed(1234)
        h, w = (int(v) for v in args.image_size.split(","))
        n = args.synthetic
        K = args.num_classes or (10 if args.task == "classification" else 4)
        if args.task == "classification":
            # learnable: the class sets the mean colour of the image
            y = torch.randint(0, K, (2 * n,), generator=g)
            base = (y[:, None, None, None].float() * (200.0 / K) + 20)
            x = (base + torch.randn(2 * n, 3, h, w, generator=g) * 30).clamp(0, 255).to(torch.uint8)
            return {"train": (x[:n].to(device), y[:n].to(device)),
                    "val": (x[n:].to(device), y[n:].to(device))}, K
        # segmentation: label = bright or dark quadrant pattern
        lab = torch.randint(0, K, (2 * n, 1, h // 8, w // 8), generator=g)
        lab = F.interpolate(lab.float(), size=(h, w), mode="nearest")[:, 0].to(torch.uint8)
        x = (lab[:, None].float() * (200.0 / K) + 20 + torch.randn(2 * n, 3, h, w, generator=g) * 20)
        x = x.clamp(0, 255).to(torch.uint8)
        return {"train": (x[:n].to(device), lab[:n].to(device)),
                "val": (x[n:].to(device), lab[n:].to(device))}, K
    if args.task == "classification":
        return data.load_cifar(args.data, device), len(data.CIFAR10_CLASSES)
    return data.load_camvid(args.data, device), len(data.CAMVID_CLASSES)


def task_meta(args, K):
    if args.task == "classification":
        labels = data.CIFAR10_CLASSES if K == 10 else [f"class{i}" for i in range(K)]
        return dict(mean=data.CIFAR_MEAN, std=data.CIFAR_STD, resize="short-side-crop",
                    crop_ratio=1.0, labels=labels, name="vim-cifar10-classification")
    labels = data.CAMVID_CLASSES if K == 11 else [f"class{i}" for i in range(K)]
    return dict(mean=data.CAMVID_MEAN, std=data.CAMVID_STD, resize="stretch", crop_ratio=1.0,
                labels=labels, ignore_index=data.CAMVID_IGNORE, name="vim-camvid-segmentation")


def build_cfg(args, K, meta):
    h, w = (int(v) for v in args.image_size.split(","))
    seg_layers = [int(v) for v in args.seg_layers.split(",")] if args.seg_layers else None
    return vim_model.make_cfg(args.task, embed_dim=args.embed_dim, depth=args.depth,
                              image_size=(h, w), patch_size=args.patch, stride=args.stride,
                              d_state=args.d_state, expand=args.expand, d_conv=args.d_conv,
                              num_classes=K, seg_layers=seg_layers, seg_channels=args.seg_channels,
                              name=meta["name"], mean=meta["mean"], std=meta["std"],
                              resize=meta["resize"], crop_ratio=meta["crop_ratio"],
                              ignore_index=meta.get("ignore_index"))


def load_init(model, path, log_fn, everything=False):
    """Copy matching tensors (blocks; pos_embed resized over the grid) from a model file or checkpoint."""
    if os.path.isdir(path):
        prog, t = ckpt.load(path)
        src = ckpt.model_state(t, prog.get("export_which", "ema"))
    else:
        sys.path.insert(0, os.path.dirname(_HERE))
        from vimtools import safetensors_io
        arrs, _ = safetensors_io.read(path)
        src = {k: torch.from_numpy(v.copy()) for k, v in arrs.items()}
    own = model.state_dict()
    n = 0
    with torch.no_grad():
        for k, v in src.items():
            pe_ok = src.get("patch_embed.proj.weight", torch.zeros(0)).shape == own["patch_embed.proj.weight"].shape
            if k in own and own[k].shape == v.shape and (everything or k.startswith("layers.") or
                                                        (pe_ok and k.startswith("patch_embed."))):
                own[k].copy_(v)
                n += 1
        if "pos_embed" in src and src["pos_embed"].shape != own["pos_embed"].shape:
            pe = src["pos_embed"][0]
            m = pe.shape[0]
            g = int(round(math.sqrt(m)))
            cls_pe = None
            if g * g != m:            # set a middle class token's position aside
                g = int(round(math.sqrt(m - 1)))
                cls_pe = pe[(m - 1) // 2:(m - 1) // 2 + 1]
                pe = torch.cat([pe[:(m - 1) // 2], pe[(m - 1) // 2 + 1:]])
            gh, gw = model.cfg["grid"]
            pe = pe.reshape(g, g, -1).permute(2, 0, 1)[None]
            pe = F.interpolate(pe, size=(gh, gw), mode="bicubic", align_corners=False)
            pe = pe[0].permute(1, 2, 0).reshape(gh * gw, -1)
            if own["pos_embed"].shape[1] == gh * gw + 1:   # this model has one: put it back in the middle
                p = model.cls_index
                mid = cls_pe if cls_pe is not None else own["pos_embed"][0, p:p + 1]
                pe = torch.cat([pe[:p], mid, pe[p:]])
            own["pos_embed"].copy_(pe[None])
            n += 1
    log_fn(f"init-from {path}: {n} tensors")


def lr_at(step, base, warm, total, min_ratio=0.01):
    if step < warm:
        return base * (step + 1) / warm
    p = min(1.0, (step - warm) / max(1, total - warm))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def evaluate(model, args, val, K, cfg, amp):
    """Top-1 (classification) or mIoU/pixel accuracy over all val pixels (segmentation)."""
    model.eval()
    dev = val[0].device
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else torch.autocast(dev.type, enabled=False)
    if args.task == "classification":
        correct, n, bs = 0, val[0].shape[0], 1000
        with ctx:
            for i in range(0, n, bs):
                x = data.normalize(val[0][i:i + bs].float() / 255.0, cfg["mean"], cfg["std"])
                correct += int((model(x).float().argmax(1) == val[1][i:i + bs]).sum())
        model.train()
        return {"top1": correct / max(1, n), "n": n}
    conf = torch.zeros(K, K, dtype=torch.long, device=dev)
    bs = 4
    with ctx:
        for i in range(0, val[0].shape[0], bs):
            x = data.prepare_seg_eval(val[0][i:i + bs], cfg["image_size"], cfg["mean"], cfg["std"])
            lab = val[1][i:i + bs].long()
            logits = F.interpolate(model(x).float(), size=lab.shape[-2:], mode="bilinear", align_corners=False)
            pred = logits.argmax(1)
            ok = lab < K
            conf += torch.bincount(lab[ok] * K + pred[ok], minlength=K * K).reshape(K, K)
    model.train()
    return seg_metrics(conf)


def seg_metrics(conf):
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.zeros_like(tp))
    present = union > 0
    return {"miou": float(iou[present].mean()) if present.any() else 0.0,
            "pixel_acc": float(tp.sum() / conf.sum().clamp(min=1)),
            "iou": [round(float(v), 4) for v in iou]}


# ---------------------------------------------------------------- main

def train(argv=None):
    args = parse_args(argv)
    D = Dist(args.device)
    dev = D.device
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    amp = args.amp == "bf16"

    resume = args.resume if args.resume and os.path.isfile(os.path.join(args.resume, "progress.json")) else None
    prog, ck = (ckpt.load(resume) if resume else (None, None))
    if prog:   # the checkpoint's configuration wins (a resumed run is the same run)
        for k, v in prog["args"].items():
            if k not in ("data", "out", "resume", "export", "deadline_s", "reserve_s", "max_steps",
                         "device", "tag", "init_from", "total_budget_s", "synthetic"):
                setattr(args, k, v)
    t0 = time.time()
    ds, K = load_data(args, dev)
    meta = task_meta(args, K)
    cfg = build_cfg(args, K, meta) if not prog else dict(prog["cfg"], grid=tuple(prog["cfg"]["grid"]),
                                                         image_size=tuple(prog["cfg"]["image_size"]))
    tr_x, tr_y = ds["train"]
    n_train = tr_x.shape[0]
    log(args, f"data {n_train} train / {ds['val'][0].shape[0]} val on {dev} in {time.time() - t0:.1f}s; "
              f"world {D.world}; tokens {cfg['seq_len']}")

    torch.manual_seed(args.seed)
    model = vim_model.VimTrain(cfg, drop_path=args.drop_path).init_weights(args.seed)
    if args.init_from and not prog:
        load_init(model, args.init_from, lambda m: log(args, m), args.init_all)
    model.to(dev)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)

    decay, no_decay = [], []
    pnames = []
    for n, p in model.named_parameters():
        (no_decay if (p.ndim <= 1 or n in ("pos_embed", "cls_token") or n.endswith("A_log")
                      or n.endswith("A_b_log")) else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
    name_of = {id(p): n for n, p in model.named_parameters()}
    pnames = [name_of[id(p)] for g in groups for p in g["params"]]
    fused = dev.type == "cuda"
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, fused=fused)

    pb = args.batch // D.world                     # per-rank batch
    gb = pb * D.world
    spe = max(1, n_train // gb)                    # steps per epoch (drop last)
    state = dict(epoch=0, step_in_epoch=0, global_step=0, total_epochs=args.epochs,
                 budget_fixed=not args.total_budget_s, train_time_s=0.0, history=[])
    if prog:
        model.load_state_dict({k: v.to(dev) for k, v in ckpt.model_state(ck, "w").items()})
        ema.load_state_dict({k: v.to(dev) for k, v in ckpt.model_state(ck, "ema").items()})
        sd = opt.state_dict()
        st = {}
        for i, n in enumerate(pnames):
            st[i] = {"step": torch.tensor(float(prog["opt_step"])),
                     "exp_avg": ck["m/" + n].to(dev), "exp_avg_sq": ck["v/" + n].to(dev)}
        sd["state"] = st
        opt.load_state_dict(sd)
        state.update({k: prog[k] for k in state})
        log(args, f"resumed {resume}: epoch {state['epoch']} step {state['global_step']} "
                  f"of {state['total_epochs']}x{spe}, {state['train_time_s']:.0f}s trained")

    net = model
    if D.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    ema_tensors = [v for v in ema.state_dict().values() if v.is_floating_point()]
    model_tensors = [v for v in model.state_dict().values() if v.is_floating_point()]

    cw = None
    if args.task == "segmentation" and args.class_weight_power > 0:
        cw = data.class_weights(tr_y, K, args.class_weight_power).to(dev)

    def save(final_metrics=None, export_which=None):
        if D.rank != 0:
            return
        tensors = []
        esd = ema.state_dict()
        for k, v in model.state_dict().items():
            tensors.append(("w/" + k, v, "F32"))
            if v.is_floating_point():
                tensors.append(("ema/" + k, esd[k].float() - v.float(), "BF16"))
        for g in opt.param_groups:
            for p in g["params"]:
                s = opt.state.get(p, {})
                n = name_of[id(p)]
                tensors.append(("m/" + n, s.get("exp_avg", torch.zeros_like(p)), "BF16"))
                tensors.append(("v/" + n, s.get("exp_avg_sq", torch.zeros_like(p)), "BF16"))
        opt_step = 0
        for s in opt.state.values():
            opt_step = int(float(s["step"]))
            break
        p = dict(state, cfg=cfg, args=vars(args), meta=meta, opt_step=opt_step, format="vim-train-ckpt",
                 steps_per_epoch=spe, world=D.world)
        if final_metrics is not None:
            p["final_metrics"] = final_metrics
            p["export_which"] = export_which
        ckpt.save(args.out, p, tensors)

    # ------------------------------------------------------------ loop
    total_steps = lambda: state["total_epochs"] * spe  # noqa: E731
    warm = lambda: max(1, min(int(args.warmup_epochs * spe), total_steps() // 5))  # noqa: E731
    step_times = []
    t_eval = 0.0
    run_steps = 0
    stop = False
    losses = []
    loss_acc = torch.zeros((), device=dev)
    loss_n = 0
    t_loop = time.time()
    t_epoch = time.time()
    model.train()
    while state["epoch"] < state["total_epochs"] and not stop:
        ep = state["epoch"]
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(args.seed * 1000 + ep)).to(dev)
        while state["step_in_epoch"] < spe:
            i = state["step_in_epoch"]
            gs = state["global_step"]
            # deadline: decide on all ranks together, every step on one rank, every 8 elsewhere
            if run_steps % 8 == 0 or D.world == 1:
                st_est = (sorted(step_times)[len(step_times) // 2] if step_times else 1.0)
                late = (time.time() - T_START) + args.reserve_s + 9 * st_est > args.deadline_s
                if args.max_steps and run_steps >= args.max_steps:
                    late = True
                if D.allmax(1.0 if late else 0.0) > 0:
                    stop = True
                    break
            ts = time.time()
            torch.manual_seed((args.seed * 1000003 + gs) * 64 + D.rank)
            idx = perm[i * gb + D.rank * pb: i * gb + (D.rank + 1) * pb]
            if args.task == "classification":
                x, t = data.augment_cifar(tr_x[idx], tr_y[idx], K, cfg["mean"], cfg["std"],
                                          jitter=args.jitter, mix_prob=args.mix_prob, smoothing=args.smoothing,
                                          randaug_n=args.randaug_n, randaug_m=args.randaug_m,
                                          erase_prob=args.erase_prob)
            else:
                x, t = data.augment_seg(tr_x[idx], tr_y[idx], cfg["image_size"], cfg["mean"], cfg["std"],
                                        jitter=args.jitter)
            lr = lr_at(gs, args.lr, warm(), total_steps())
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = net(x)
            out = out.float()
            if args.task == "classification":
                loss = torch.sum(-t * F.log_softmax(out, dim=-1), dim=-1).mean()
            else:
                out = F.interpolate(out, size=t.shape[-2:], mode="bilinear", align_corners=False)
                loss = F.cross_entropy(out, t, weight=cw, ignore_index=data.CAMVID_IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            d = min(args.ema_decay, (1.0 + gs) / (10.0 + gs))
            torch._foreach_lerp_(ema_tensors, model_tensors, 1.0 - d)
            loss_acc += loss.detach()
            loss_n += 1
            if args.max_steps:
                losses.append(float(loss.detach()))
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            run_steps += 1
            if run_steps > 3:
                if dev.type == "cuda" and run_steps % 8 == 0:
                    torch.cuda.synchronize()
                step_times.append(time.time() - ts)
                step_times = step_times[-64:]
        if stop:
            break
        # ---- end of epoch
        if dev.type == "cuda":
            torch.cuda.synchronize()
        ep_time = time.time() - t_epoch
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        mean_loss = float(loss_acc) / max(1, loss_n)
        loss_acc.zero_()
        loss_n = 0
        msg = f"ep {state['epoch']}/{state['total_epochs']} step {state['global_step']} loss {mean_loss:.4f} " \
              f"lr {lr:.2e} ep_time {ep_time:.1f}s"
        first_fix = not state["budget_fixed"]
        if first_fix or state["epoch"] % args.eval_every == 0:
            te = time.time()
            m_raw = evaluate(model, args, ds["val"], K, cfg, amp) if D.rank == 0 else None
            m_ema = evaluate(ema, args, ds["val"], K, cfg, amp) if D.rank == 0 else None
            D.barrier()
            t_eval = time.time() - te
            if D.rank == 0:
                key = "top1" if args.task == "classification" else "miou"
                msg += f" val {key} {m_raw[key]:.4f} ema {m_ema[key]:.4f}"
                state["history"].append([state["epoch"], round(mean_loss, 4), m_raw[key], m_ema[key]])
        if first_fix:
            # steady step time (median of the last steps) * steps + the eval amortised
            st = sorted(step_times)[len(step_times) // 2] if step_times else ep_time / spe
            per_epoch = max(st * spe, 0.5 * ep_time) + t_eval / max(1, args.eval_every)
            used = state["train_time_s"] + (time.time() - t_loop)
            n_more = int((args.total_budget_s - used) * 0.97 / per_epoch)
            state["total_epochs"] = int(D.bcast_obj(max(state["epoch"], state["epoch"] + n_more)))
            state["budget_fixed"] = True
            msg += f" | budget {args.total_budget_s:.0f}s: {per_epoch:.2f}s/epoch -> {state['total_epochs']} epochs"
        if first_fix or state["epoch"] % args.eval_every == 0 or state["epoch"] >= state["total_epochs"] \
                or state["epoch"] <= 2:
            log(args, msg)       # every eval_every epochs (keeps the device call's output short)
        t_epoch = time.time()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    state["train_time_s"] += time.time() - t_loop
    done = state["epoch"] >= state["total_epochs"]
    # ------------------------------------------------------------ final eval, save, export
    final, which = None, None
    if D.rank == 0:
        final = {"raw": evaluate(model, args, ds["val"], K, cfg, amp),
                 "ema": evaluate(ema, args, ds["val"], K, cfg, amp)}
        key = "top1" if args.task == "classification" else "miou"
        which = "ema" if final["ema"][key] >= final["raw"][key] else "raw"
        final.update(epoch=state["epoch"], total_epochs=state["total_epochs"], step=state["global_step"],
                     train_time_s=round(state["train_time_s"], 1), done=done, export_which=which,
                     best=final[which][key], world=D.world)
    save(final, which)
    if D.rank == 0:
        if args.export:
            import export as exp
            exp.export_checkpoint(args.out, args.export)
            em, _, _ = exp.model_from_file(args.export)        # the fp16 file, evaluated here
            final["export"] = evaluate(em.to(dev), args, ds["val"], K, cfg, amp)
        print("RESULT " + json.dumps({"task": args.task, **final}), flush=True)
        log(args, f"saved {args.out} ({'schedule complete' if done else 'to resume'})")
    D.barrier()
    if D.world > 1:
        dist.destroy_process_group()
    return {"losses": losses, "state": state, "final": final}


if __name__ == "__main__":
    train()
