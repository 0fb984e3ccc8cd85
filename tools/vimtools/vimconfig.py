"""Vision Mamba configurations, the model file's metadata and its tensor list.

The C loader (engine/src/model_file.c) checks files against the same rules;
docs/model-format.md is the written form of both.
"""
import math

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Official classification variants (vim/models_mamba.py), keyed by a short name.
VARIANTS = {
    "vim_ti": dict(name="vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
                   embed_dim=192, stride=16),
    "vim_ti_s8": dict(name="vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
                      embed_dim=192, stride=8),
    "vim_s": dict(name="vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
                  embed_dim=384, stride=16),
    "vim_s_s8": dict(name="vim_small_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
                     embed_dim=384, stride=8),
    "vim_b": dict(name="vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2",
                  embed_dim=768, stride=16),
}


# Small shapes for tests and quick runs (not official models).
TEST_VARIANTS = {
    "tiny": dict(name="tiny", embed_dim=32, depth=4, stride=16, d_state=8),
}


def make_config(embed_dim=192, depth=24, stride=16, patch_size=16, image_size=(224, 224),
                d_state=16, expand=2, d_conv=4, dt_rank=None, num_classes=1000,
                cls_token="middle", name="vim", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                resize="short-side-crop", crop_ratio=0.875, norm_eps=1e-5, task="classification",
                seg_layers=None, seg_channels=128, ignore_index=None):
    """A config dict. For task 'segmentation' (docs/segmentation.md) the
    feature levels default to the blocks depth/4-1, depth/2-1, 3*depth/4-1,
    depth-1 and `seg_channels` is the head's hidden width C_h."""
    if dt_rank is None:
        dt_rank = math.ceil(embed_dim / 16)
    h, w = image_size
    gh = (h - patch_size) // stride + 1
    gw = (w - patch_size) // stride + 1
    cfg = dict(name=name, task=task, embed_dim=embed_dim, depth=depth, stride=stride,
               patch_size=patch_size, image_size=(h, w), d_state=d_state, expand=expand,
               d_conv=d_conv, dt_rank=dt_rank, num_classes=num_classes, cls_token=cls_token,
               mean=tuple(mean), std=tuple(std), resize=resize, crop_ratio=crop_ratio,
               norm_eps=norm_eps, grid=(gh, gw), num_patches=gh * gw,
               seq_len=gh * gw + (1 if cls_token == "middle" else 0),
               d_inner=expand * embed_dim)
    if task == "segmentation":
        if seg_layers is None:
            seg_layers = default_seg_layers(depth)
        cfg.update(seg_layers=tuple(int(i) for i in seg_layers), seg_channels=int(seg_channels),
                   ignore_index=None if ignore_index is None else int(ignore_index))
    return cfg


def default_seg_layers(depth):
    """The official segmentation taps: depth/4-1, depth/2-1, 3*depth/4-1, depth-1
    (5, 11, 17, 23 for depth 24), duplicates removed for shallow models."""
    taps = {max(0, depth * q // 4 - 1) for q in (1, 2, 3, 4)}
    return tuple(sorted(taps))


def variant_config(key, **overrides):
    v = dict(VARIANTS[key] if key in VARIANTS else TEST_VARIANTS[key])
    if overrides.get("task") == "segmentation":
        # a segmenter of the variant's backbone: no class token, any input size
        v.update(name=f"{key}_seg", cls_token="none", num_classes=11, resize="stretch")
    v.update(overrides)
    return make_config(**v)


def seg_head_shapes(cfg):
    """(name, shape) of the segmentation head's tensors."""
    D, Ch, K = cfg["embed_dim"], cfg["seg_channels"], cfg["num_classes"]
    out = [(f"seg_head.proj.{i}.weight", (Ch, D)) for i in range(len(cfg["seg_layers"]))]
    out += [("seg_head.proj_bias", (Ch,)),
            ("seg_head.dwconv.weight", (Ch, 1, 3, 3)), ("seg_head.dwconv.bias", (Ch,)),
            ("seg_head.cls.weight", (K, Ch)), ("seg_head.cls.bias", (K,))]
    return out


def tensor_shapes(cfg):
    """Ordered list of (name, shape) the model file must hold (a segmenter's
    file may also hold norm_f.weight, unused; we write none)."""
    D, E, N, K, R = cfg["embed_dim"], cfg["d_inner"], cfg["d_state"], cfg["d_conv"], cfg["dt_rank"]
    P, L = cfg["patch_size"], cfg["seq_len"]
    out = []
    if cfg["cls_token"] == "middle":
        out.append(("cls_token", (1, 1, D)))
    out += [("pos_embed", (1, L, D)),
            ("patch_embed.proj.weight", (D, 3, P, P)),
            ("patch_embed.proj.bias", (D,))]
    if cfg["task"] == "classification":
        out += [("head.weight", (cfg["num_classes"], D)), ("head.bias", (cfg["num_classes"],))]
    for i in range(cfg["depth"]):
        p = f"layers.{i}.mixer."
        out += [(p + "A_log", (E, N)), (p + "D", (E,)), (p + "A_b_log", (E, N)), (p + "D_b", (E,)),
                (p + "in_proj.weight", (2 * E, D)),
                (p + "conv1d.weight", (E, 1, K)), (p + "conv1d.bias", (E,)),
                (p + "x_proj.weight", (R + 2 * N, E)),
                (p + "dt_proj.weight", (E, R)), (p + "dt_proj.bias", (E,)),
                (p + "conv1d_b.weight", (E, 1, K)), (p + "conv1d_b.bias", (E,)),
                (p + "x_proj_b.weight", (R + 2 * N, E)),
                (p + "dt_proj_b.weight", (E, R)), (p + "dt_proj_b.bias", (E,)),
                (p + "out_proj.weight", (D, E)),
                (f"layers.{i}.norm.weight", (D,))]
    if cfg["task"] == "segmentation":
        out += seg_head_shapes(cfg)
    else:
        out.append(("norm_f.weight", (D,)))
    return out


def metadata(cfg, labels=None, labels_file=None):
    def floats(v):
        return ",".join(repr(float(x)) for x in v)
    m = {
        "format": "gst-vim",
        "format_version": "1",
        "task": cfg["task"],
        "name": cfg["name"],
        "image_size": f"{cfg['image_size'][0]},{cfg['image_size'][1]}",
        "patch_size": str(cfg["patch_size"]),
        "stride": str(cfg["stride"]),
        "in_chans": "3",
        "embed_dim": str(cfg["embed_dim"]),
        "depth": str(cfg["depth"]),
        "d_state": str(cfg["d_state"]),
        "expand": str(cfg["expand"]),
        "d_conv": str(cfg["d_conv"]),
        "dt_rank": str(cfg["dt_rank"]),
        "num_classes": str(cfg["num_classes"]),
        "cls_token": cfg["cls_token"],
        "norm_eps": repr(float(cfg["norm_eps"])),
        "mean": floats(cfg["mean"]),
        "std": floats(cfg["std"]),
        "resize": cfg["resize"],
        "crop_ratio": repr(float(cfg["crop_ratio"])),
    }
    if cfg["task"] == "segmentation":
        m["seg_layers"] = ",".join(str(i) for i in cfg["seg_layers"])
        m["seg_channels"] = str(cfg["seg_channels"])
        if cfg.get("ignore_index") is not None:
            m["ignore_index"] = str(cfg["ignore_index"])
    if labels is not None:
        if len(labels) != cfg["num_classes"]:
            raise ValueError(f"{len(labels)} labels for {cfg['num_classes']} classes")
        for lab in labels:
            if "\n" in lab:
                raise ValueError("a label may not contain a newline")
        m["labels"] = "\n".join(labels)
    if labels_file is not None:
        m["labels_file"] = labels_file
    return m
