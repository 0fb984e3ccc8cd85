#!/usr/bin/env python3
"""Writes tests/tools/fixtures/tiny_official.pth and tiny_official_expected.json (needs torch).

The .pth is shaped exactly like a checkpoint of the official training script
(vim/main.py: utils.save_on_master({...}) = torch.save):
  {'model': state_dict, 'optimizer': AdamW state_dict, 'lr_scheduler': {...},
   'epoch': 299, 'model_ema': state_dict, 'scaler': 'none', 'args': argparse.Namespace}
for a tiny Vim (stride 8 at 224x224, so the converter has to infer the stride
from pos_embed's length as for the official stride-8 checkpoints). 'model'
holds random_weights.random_tensors(cfg, 1), 'model_ema' random_tensors(cfg, 2).

tiny_official_expected.json has the format of tests/reference/fixtures/*.json:
the float64 vim_ref logits of ckpt['model'] on random_input(seed, batch).

    python3 tests/tools/make_pth_fixture.py
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import make_fixtures  # noqa: E402
import vim_ref  # noqa: E402
from vimtools import random_weights  # noqa: E402

CONFIG = dict(name="vim_custom_d32_depth2_patch16_stride8", embed_dim=32, depth=2, stride=8, patch_size=16, image_size=[224, 224],
              d_state=8, expand=2, d_conv=4, dt_rank=2, num_classes=10, cls_token="middle", norm_eps=1e-5)
MODEL_SEED, EMA_SEED = 1, 2
INPUT_SEED, BATCH = 7, 2


def official_args():
    """The Namespace main.py pickles: its argparse defaults plus what main() sets."""
    return argparse.Namespace(
        batch_size=128, epochs=300, bce_loss=False, unscale_lr=False,
        model="vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
        input_size=224, drop=0.0, drop_path=0.0, model_ema=True, model_ema_decay=0.99996,
        model_ema_force_cpu=False, opt="adamw", opt_eps=1e-08, opt_betas=None, clip_grad=None,
        momentum=0.9, weight_decay=1e-08, sched="cosine", lr=1e-05, lr_noise=None, lr_noise_pct=0.67,
        lr_noise_std=1.0, warmup_lr=1e-05, min_lr=1e-05, decay_epochs=30, warmup_epochs=5,
        cooldown_epochs=10, patience_epochs=10, decay_rate=0.1, color_jitter=0.3,
        aa="rand-m9-mstd0.5-inc1", smoothing=0.1, train_interpolation="bicubic", repeated_aug=True,
        train_mode=True, ThreeAugment=False, src=False, reprob=0.25, remode="pixel", recount=1,
        resplit=False, mixup=0.8, cutmix=1.0, cutmix_minmax=None, mixup_prob=1.0,
        mixup_switch_prob=0.5, mixup_mode="batch", teacher_model="regnety_160", teacher_path="",
        distillation_type="none", distillation_alpha=0.5, distillation_tau=1.0, cosub=False,
        finetune="./output/vim_tiny/checkpoint.pth", attn_only=False,
        data_path="/data/imagenet", data_set="IMNET", inat_category="name",
        output_dir="./output/vim_tiny_s8_ft", device="cuda", seed=0, resume="", start_epoch=0,
        eval=False, eval_crop_ratio=0.875, dist_eval=True, num_workers=10, pin_mem=True,
        distributed=True, world_size=8, dist_url="env://", if_amp=False, if_continue_inf=False,
        if_nan2num=False, if_random_cls_token_position=False, if_random_token_rank=False,
        local_rank=0, rank=0, gpu=0, dist_backend="nccl", nb_classes=1000)


def state_dict(cfg, seed):
    model = vim_ref.model_from_tensors(cfg, random_weights.random_tensors(cfg, seed), torch.float32)
    return model, model.state_dict()


def main():
    cfg = make_fixtures.make_config(CONFIG)
    model, sd = state_dict(cfg, MODEL_SEED)
    _, sd_ema = state_dict(cfg, EMA_SEED)

    # An AdamW state after a step, on a copy, with timm's two groups (no decay for 1-d
    # parameters and the tokens, decay for the rest).
    trained, _ = state_dict(cfg, MODEL_SEED)
    no_decay = [p for n, p in trained.named_parameters() if p.ndim <= 1 or n in ("cls_token", "pos_embed")]
    decay = [p for n, p in trained.named_parameters() if not (p.ndim <= 1 or n in ("cls_token", "pos_embed"))]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": 1e-8}], lr=1e-5, eps=1e-8, betas=(0.9, 0.999))
    x = torch.from_numpy(random_weights.random_input(3, 1, cfg))
    trained(x).square().sum().backward()
    opt.step()
    for g in opt.param_groups:
        g["initial_lr"] = 1e-5

    lr_scheduler = {
        "param_group_field": "lr", "_initial_param_group_field": "initial_lr", "base_values": [1e-5, 1e-5],
        "metric": None, "t_in_epochs": True, "noise_range_t": None, "noise_pct": 0.67, "noise_type": "normal",
        "noise_std": 1.0, "noise_seed": 42, "t_initial": 30, "lr_min": 1e-5, "cycle_mul": 1.0,
        "cycle_decay": 0.1, "cycle_limit": 1, "warmup_t": 5, "warmup_lr_init": 1e-5, "warmup_prefix": False,
        "k_decay": 1.0, "warmup_steps": [0.0, 0.0],
    }
    ckpt = {
        "model": sd,
        "optimizer": opt.state_dict(),
        "lr_scheduler": lr_scheduler,
        "epoch": 299,
        "model_ema": sd_ema,
        "scaler": "none",
        "args": official_args(),
    }
    out_dir = os.path.join(HERE, "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    pth = os.path.join(out_dir, "tiny_official.pth")
    torch.save(ckpt, pth)

    # Expected logits, from the state dict as it comes back from the file.
    loaded = torch.load(pth, map_location="cpu", weights_only=False)
    ref = vim_ref.VimRef(cfg)
    ref.load_state_dict(loaded["model"])
    ref = ref.double().eval()
    img = torch.from_numpy(random_weights.random_input(INPUT_SEED, BATCH, cfg).astype(np.float64))
    with torch.no_grad():
        logits = ref(img).numpy()
    fx = {
        "name": "tiny_official",
        "model": {"config": CONFIG, "weight_seed": MODEL_SEED, "dtype": "F32"},
        "input": {"seed": INPUT_SEED, "batch": BATCH},
        "logits": [[float(v) for v in row] for row in logits],
        "reference": f"tests/reference/vim_ref.py in float64, torch {torch.__version__}",
    }
    make_fixtures.dump_fixture(fx, os.path.join(out_dir, "tiny_official_expected.json"))
    print(f"{pth}: {os.path.getsize(pth)} bytes, {len(sd)} tensors in 'model'")


if __name__ == "__main__":
    main()
