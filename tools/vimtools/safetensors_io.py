"""Reading and writing safetensors files with numpy only (no torch, no safetensors package).

Layout: 8-byte little-endian header length, a JSON header, then raw little-endian
tensor data. Tensors are written in the order given, 8-byte aligned.
"""
import json
import struct

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": None,  # stored as uint16 words, see to_bf16 / from_bf16
}


def to_bf16(a):
    """float32 array -> uint16 array of bfloat16 words (round to nearest even)."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype("<u2")


def from_bf16(words):
    return (np.asarray(words, dtype="<u2").astype("<u4") << 16).view("<f4")


def write(path, tensors, metadata, dtype="F32"):
    """tensors: list of (name, float ndarray) or dict; metadata: dict str->str.

    dtype: storage dtype for every tensor ("F32", "F16", "BF16"), or a
    callable name -> dtype string.
    """
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header = {}
    blobs = []
    offset = 0
    for name, arr in items:
        arr = np.asarray(arr, dtype=np.float32)
        dt = dtype(name) if callable(dtype) else dtype
        if dt == "F32":
            raw = arr.astype("<f4").tobytes()
        elif dt == "F16":
            raw = arr.astype("<f2").tobytes()
        elif dt == "BF16":
            raw = to_bf16(arr).tobytes()
        else:
            raise ValueError(f"unsupported dtype {dt}")
        pad = (-offset) % 8
        if pad:
            blobs.append(b"\0" * pad)
            offset += pad
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(v, str):
                raise TypeError(f"metadata value of {k} must be str")
        header["__metadata__"] = dict(metadata)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read(path):
    """Returns (dict name -> float32 ndarray, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        dt = info["dtype"]
        if dt == "BF16":
            arr = from_bf16(np.frombuffer(raw, dtype="<u2"))
        else:
            arr = np.frombuffer(raw, dtype=_DTYPES[dt]).astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out, meta
