"""Datasets decoded once into uint8 tensors on the training device, and
batch augmentation on that device (no DataLoader).

CIFAR-10 (JPEG copy, `train/<class>/NNNN.jpg`): classes in the order of
CIFAR10_CLASSES; the validation split is, per class, the last 500 files in
sorted name order (never trained on); the other 4,500 per class train.
CamVid (`{train,val}/images/*.jpg`, `{train,val}/labels/*.png`, 480x360):
train/ trains, val/ validates (frames in name order).
"""
import io
import math
import os
import tarfile

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist"]
CAMVID_IGNORE = 11
# ImageNet statistics for CamVid road scenes (close to CamVid's own).
CAMVID_MEAN = (0.485, 0.456, 0.406)
CAMVID_STD = (0.229, 0.224, 0.225)
VAL_PER_CLASS = 500


def _read_tar(path, want):
    """{member name: bytes} for regular members whose name satisfies want(name)."""
    out = {}
    mode = "r:gz" if path.endswith(".gz") else "r:"
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for f in files:
                full = os.path.join(root, f)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                if want(rel):
                    with open(full, "rb") as fh:
                        out[rel] = fh.read()
        return out
    with tarfile.open(path, mode) as tf:
        for m in tf:
            if m.isfile() and want(m.name):
                out[m.name] = tf.extractfile(m).read()
    return out


def _decode_images(blobs, device, mode="RGB"):
    """list of encoded bytes -> list of uint8 (C, H, W) tensors on device.
    torchvision (GPU nvjpeg for JPEG on CUDA) if available, else PIL."""
    try:
        import torchvision
        from torchvision.io import decode_image, decode_jpeg, ImageReadMode
        rm = ImageReadMode.RGB if mode == "RGB" else ImageReadMode.GRAY
        datas = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
        if device.type == "cuda" and mode == "RGB" and all(b[:2] == b"\xff\xd8" for b in blobs):
            out = []
            for i in range(0, len(datas), 4096):
                out += decode_jpeg(datas[i:i + 4096], mode=rm, device=device)
            return out
        return [decode_image(d, mode=rm).to(device) for d in datas]
    except ImportError:
        pass
    from PIL import Image
    out = []
    for b in blobs:
        im = Image.open(io.BytesIO(b))
        im = im.convert("RGB") if mode == "RGB" else im
        a = np.asarray(im, dtype=np.uint8)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        out.append(torch.from_numpy(np.ascontiguousarray(a)).to(device))
    return out


def cifar_file_split(names):
    """names: member names 'train/<class>/<file>.jpg'. Returns (train, val) lists of
    (name, label), each sorted; val = the last VAL_PER_CLASS files of each class."""
    by_class = {c: [] for c in CIFAR10_CLASSES}
    for n in names:
        parts = n.split("/")
        if len(parts) >= 3 and parts[-2] in by_class and n.endswith(".jpg"):
            by_class[parts[-2]].append(n)
    train, val = [], []
    for li, c in enumerate(CIFAR10_CLASSES):
        files = sorted(by_class[c])
        k = max(0, len(files) - VAL_PER_CLASS) if len(files) > 2 * VAL_PER_CLASS else len(files) // 2
        train += [(n, li) for n in files[:k]]
        val += [(n, li) for n in files[k:]]
    return train, val


def load_cifar(path, device, splits=("train", "val")):
    """{'train': (uint8 (N,3,32,32), int64 (N,)), 'val': ...} on device."""
    blobs = _read_tar(path, lambda n: n.endswith(".jpg"))
    tr, va = cifar_file_split(list(blobs))
    out = {}
    for s, lst in (("train", tr), ("val", va)):
        if s not in splits:
            continue
        imgs = _decode_images([blobs[n] for n, _ in lst], device)
        out[s] = (torch.stack(imgs), torch.tensor([l for _, l in lst], dtype=torch.long, device=device))
    return out


def load_camvid(path, device, splits=("train", "val")):
    """{'train': (uint8 (N,3,H,W), uint8 (N,H,W)), 'val': ...} on device, frames in name order."""
    blobs = _read_tar(path, lambda n: n.endswith(".jpg") or n.endswith(".png"))
    out = {}
    for s in splits:
        names = sorted(n for n in blobs if n.startswith(f"{s}/images/") and n.endswith(".jpg"))
        labs = [f"{s}/labels/" + os.path.basename(n)[:-4] + ".png" for n in names]
        imgs = _decode_images([blobs[n] for n in names], device)
        lbl = _decode_images([blobs[n] for n in labs], device, mode="L")
        out[s] = (torch.stack(imgs), torch.stack([x[0] for x in lbl]))
    return out


def normalize(x_float01, mean, std):
    m = torch.tensor(mean, device=x_float01.device, dtype=x_float01.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x_float01.device, dtype=x_float01.dtype).view(1, 3, 1, 1)
    return (x_float01 - m) / s


def _color_jitter(x, strength):
    """Per-sample brightness, contrast, saturation in [1-s, 1+s]; x float (B,3,H,W) in [0,1]."""
    if strength <= 0:
        return x
    B = x.shape[0]
    dev = x.device

    def f():
        return (1.0 + (torch.rand(B, 1, 1, 1, device=dev) * 2 - 1) * strength)
    x = x * f()
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray.mean(dim=(2, 3), keepdim=True)) * f() + gray.mean(dim=(2, 3), keepdim=True)
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * f() + gray
    return x.clamp(0.0, 1.0)


RANDAUG_OPS = ("identity", "brightness", "contrast", "color", "sharpness", "posterize",
               "solarize", "autocontrast", "rotate", "shear_x", "shear_y", "translate_x",
               "translate_y")


def _gray(x):
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def rand_augment(x, n_ops, magnitude, ops=RANDAUG_OPS):
    """RandAugment on a batch (Cubuk et al. 2019), per sample: n_ops operations
    drawn uniformly from `ops` (names of RANDAUG_OPS), each at `magnitude`
    (0-10) with a random sign where it has one. x float (B,3,H,W) in [0,1];
    the geometric ones are combined into one affine warp (bilinear, zero fill)."""
    if n_ops <= 0:
        return x
    B, _, H, W = x.shape
    dev = x.device
    m = float(magnitude) / 10.0
    ops = tuple(ops)
    pick = torch.randint(0, len(ops), (B, n_ops), device=dev)

    def chosen(name):
        if name not in ops:
            return torch.zeros(B, 1, 1, 1, dtype=torch.bool, device=dev)
        return (pick == ops.index(name)).any(1).view(B, 1, 1, 1)

    def sign():
        return torch.where(torch.rand(B, 1, 1, 1, device=dev) < 0.5, -1.0, 1.0)

    def blend(a, b, f):  # b + f (a - b), f per sample
        return (b + f * (a - b)).clamp(0.0, 1.0)

    f = 1.0 + 0.9 * m * sign()
    x = torch.where(chosen("brightness"), blend(x, torch.zeros_like(x), f), x)
    f = 1.0 + 0.9 * m * sign()
    x = torch.where(chosen("contrast"), blend(x, _gray(x).mean(dim=(2, 3), keepdim=True), f), x)
    f = 1.0 + 0.9 * m * sign()
    x = torch.where(chosen("color"), blend(x, _gray(x).expand_as(x), f), x)
    k = torch.tensor([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]], device=dev) / 13.0
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3), groups=3)
    f = 1.0 + 0.9 * m * sign()
    x = torch.where(chosen("sharpness"), blend(x, smooth, f), x)
    step = 2.0 ** int(round(4 * m))          # keep 8 - 4m bits
    x = torch.where(chosen("posterize"), torch.floor(torch.round(x * 255.0) / step) * step / 255.0, x)
    x = torch.where(chosen("solarize") & (x * 255.0 >= 256.0 * (1.0 - m)), 1.0 - x, x)
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    auto = torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-6), x)
    x = torch.where(chosen("autocontrast"), auto, x)

    # geometric: one affine map per sample in normalised coordinates
    one = lambda name: chosen(name).view(B).float()  # noqa: E731
    s1 = lambda: sign().view(B)  # noqa: E731
    ang = one("rotate") * s1() * math.radians(30.0) * m
    shx = one("shear_x") * s1() * 0.3 * m
    shy = one("shear_y") * s1() * 0.3 * m
    tx = one("translate_x") * s1() * 0.3 * m * 2.0   # 0.3 of the width, normalised units
    ty = one("translate_y") * s1() * 0.3 * m * 2.0
    c, sn = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0] = c + shx * sn
    theta[:, 0, 1] = -sn + shx * c
    theta[:, 1, 0] = sn + shy * c
    theta[:, 1, 1] = c - shy * sn
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    geo = (one("rotate") + one("shear_x") + one("shear_y") + one("translate_x") + one("translate_y")) > 0
    if bool(geo.any()):
        grid = F.affine_grid(theta[geo], [int(geo.sum()), 3, H, W], align_corners=False)
        x = x.clone()
        x[geo] = F.grid_sample(x[geo], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x


def random_erase(x, prob, area=(0.02, 1.0 / 3.0), aspect=(0.3, 3.3)):
    """Random erasing (Zhong et al. 2020): with probability prob per sample one
    rectangle of the given area fraction and aspect ratio set to 0 (the mean of
    normalised data). x (B,C,H,W)."""
    if prob <= 0:
        return x
    B, _, H, W = x.shape
    dev = x.device
    a = torch.empty(B, device=dev).uniform_(*area) * H * W
    r = torch.exp(torch.empty(B, device=dev).uniform_(math.log(aspect[0]), math.log(aspect[1])))
    h = torch.sqrt(a * r).round().clamp(1, H)
    w = torch.sqrt(a / r).round().clamp(1, W)
    y0 = (torch.rand(B, device=dev) * (H - h + 1)).floor()
    x0 = (torch.rand(B, device=dev) * (W - w + 1)).floor()
    on = torch.rand(B, device=dev) < prob
    ys = torch.arange(H, device=dev).view(1, H, 1)
    xs = torch.arange(W, device=dev).view(1, 1, W)
    box = ((ys >= y0.view(B, 1, 1)) & (ys < (y0 + h).view(B, 1, 1)) &
           (xs >= x0.view(B, 1, 1)) & (xs < (x0 + w).view(B, 1, 1)) & on.view(B, 1, 1))
    return x.masked_fill(box.unsqueeze(1), 0.0)


def augment_cifar(imgs_u8, labels, num_classes, mean, std, pad=4, jitter=0.2, mix_prob=0.5,
                  smoothing=0.1, randaug_n=0, randaug_m=9.0, erase_prob=0.0):
    """GPU batch augmentation: random crop (zero pad), flip, RandAugment
    (randaug_n ops at magnitude randaug_m; 0 ops: off), colour jitter,
    normalisation, random erasing (erase_prob), then (with probability
    mix_prob for the batch) CutMix or MixUp. Returns (x, soft targets)."""
    B, C, H, W = imgs_u8.shape
    dev = imgs_u8.device
    x = imgs_u8.float() / 255.0
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (B,), device=dev)
    ox = torch.randint(0, 2 * pad + 1, (B,), device=dev)
    flip = torch.rand(B, device=dev) < 0.5
    rows = oy[:, None] + torch.arange(H, device=dev)[None]                  # (B, H)
    ar = torch.arange(W, device=dev)[None]
    cols = ox[:, None] + torch.where(flip[:, None], W - 1 - ar, ar)          # (B, W)
    bi = torch.arange(B, device=dev)[:, None, None]
    x = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    x = rand_augment(x, randaug_n, randaug_m)
    x = _color_jitter(x, jitter)
    x = normalize(x, mean, std)
    x = random_erase(x, erase_prob)
    t = F.one_hot(labels, num_classes).float() * (1.0 - smoothing) + smoothing / num_classes
    if mix_prob > 0 and float(torch.rand(())) < mix_prob:
        perm = torch.randperm(B, device=dev)
        if float(torch.rand(())) < 0.5:   # CutMix
            lam = float(np.random.default_rng(int(torch.randint(0, 2**31, ()))).beta(1.0, 1.0))
            ch, cw = int(H * math.sqrt(1 - lam)), int(W * math.sqrt(1 - lam))
            cy, cx = int(torch.randint(0, H, ())), int(torch.randint(0, W, ()))
            y0, y1 = max(0, cy - ch // 2), min(H, cy + ch - ch // 2)
            x0, x1 = max(0, cx - cw // 2), min(W, cx + cw - cw // 2)
            x = x.clone()
            x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(H * W)
        else:                              # MixUp
            lam = float(np.random.default_rng(int(torch.randint(0, 2**31, ()))).beta(0.8, 0.8))
            x = x * lam + x[perm] * (1 - lam)
        t = t * lam + t[perm] * (1 - lam)
    return x, t


def augment_seg(imgs_u8, labels_u8, out_hw, mean, std, scale=(0.5, 2.0), jitter=0.3,
                ignore=CAMVID_IGNORE):
    """GPU batch augmentation for segmentation: the frame stretched to out_hw, scaled
    by s (log-uniform in `scale`), a random out_hw crop (padding with ignore where
    s < 1), horizontal flip, colour jitter. Returns (x normalized, labels int64)."""
    B = imgs_u8.shape[0]
    dev = imgs_u8.device
    H, W = out_hw
    ls = torch.empty(B, device=dev).uniform_(math.log(scale[0]), math.log(scale[1]))
    s = torch.exp(ls)
    # crop offsets in scaled pixels: [0, sW - W] when s >= 1, [sW - W, 0] when s < 1
    offx = torch.rand(B, device=dev) * (s * W - W)
    offy = torch.rand(B, device=dev) * (s * H - H)
    flip = torch.rand(B, device=dev) < 0.5
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0] = torch.where(flip, -1.0 / s, 1.0 / s)
    theta[:, 0, 2] = 2 * offx / (s * W) + 1.0 / s - 1.0
    theta[:, 1, 1] = 1.0 / s
    theta[:, 1, 2] = 2 * offy / (s * H) + 1.0 / s - 1.0
    grid = F.affine_grid(theta, (B, 1, H, W), align_corners=False)
    x = F.grid_sample(imgs_u8.float() / 255.0, grid, mode="bilinear", padding_mode="zeros",
                      align_corners=False)
    lab = F.grid_sample(labels_u8[:, None].float() + 1.0, grid, mode="nearest",
                        padding_mode="zeros", align_corners=False)[:, 0].long() - 1
    lab = torch.where(lab < 0, torch.full_like(lab, ignore), lab)
    x = _color_jitter(x, jitter)
    return normalize(x, mean, std), lab


def prepare_seg_eval(imgs_u8, in_hw, mean, std):
    """Stretch (bilinear, half-pixel centres, no antialias: the engine's 'stretch') and normalize."""
    x = imgs_u8.float() / 255.0
    if tuple(x.shape[-2:]) != tuple(in_hw):
        x = F.interpolate(x, size=tuple(in_hw), mode="bilinear", align_corners=False, antialias=False)
    return normalize(x, mean, std)


def class_weights(labels_u8, num_classes, power=0.5, ignore=CAMVID_IGNORE):
    """(median frequency / frequency)^power, over the training labels; mean 1."""
    cnt = torch.bincount(labels_u8.flatten().long(), minlength=max(num_classes, ignore + 1))[:num_classes]
    freq = cnt.double() / cnt.sum().clamp(min=1)
    freq = torch.where(freq > 0, freq, freq[freq > 0].min() if (freq > 0).any() else torch.ones_like(freq))
    w = (freq.median() / freq) ** power
    return (w / w.mean()).float()
