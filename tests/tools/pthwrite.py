"""A small numpy-only writer of torch.save-style zip checkpoints, for tests.

It emits protocol-2 pickle opcodes by hand, the way torch.save lays out a
checkpoint (tensors as torch._utils._rebuild_tensor_v2 over persistent
storages 'archive/data/<key>'), so tests can build good and broken
checkpoints without torch. `Raw(bytes)` splices arbitrary opcodes in, which is
how the malicious pickles are made.

Supported values: dict, collections.OrderedDict, Namespace (below), list,
tuple, str, int, float, bool, None, numpy arrays (float32/float16/float64/int64
-> tensors; `Bf16(array)` -> a bfloat16 tensor) and Raw.
"""
import collections
import struct
import zipfile

import numpy as np


class Raw:
    """Pickle opcodes inserted as they are, where a value belongs."""

    def __init__(self, data):
        self.data = data


class Namespace:
    """Pickled as argparse.Namespace with these attributes."""

    def __init__(self, **kw):
        self.kw = kw


class Bf16:
    def __init__(self, arr):
        self.arr = np.asarray(arr, dtype=np.float32)


_STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage",
            np.dtype("float64"): "DoubleStorage", np.dtype("int64"): "LongStorage"}


def global_op(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


class _Writer:
    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.storages = []   # (key, bytes)

    def s(self, v):
        o = self.out
        if isinstance(v, Raw):
            o += v.data
        elif v is None:
            o += b"N"
        elif v is True:
            o += b"\x88"
        elif v is False:
            o += b"\x89"
        elif isinstance(v, int):
            if -2 ** 31 <= v < 2 ** 31:
                o += b"J" + struct.pack("<i", v)
            else:
                raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                o += b"\x8a" + bytes([len(raw)]) + raw
        elif isinstance(v, float):
            o += b"G" + struct.pack(">d", v)
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            o += b"X" + struct.pack("<I", len(raw)) + raw
        elif isinstance(v, tuple):
            if not v:
                o += b")"
            else:
                o += b"("
                for x in v:
                    self.s(x)
                o += b"t"
        elif isinstance(v, list):
            o += b"]("
            for x in v:
                self.s(x)
            o += b"e"
        elif isinstance(v, collections.OrderedDict):
            o += global_op("collections", "OrderedDict") + b")R("
            for k, x in v.items():
                self.s(k)
                self.s(x)
            o += b"u"
        elif isinstance(v, dict):
            o += b"}("
            for k, x in v.items():
                self.s(k)
                self.s(x)
            o += b"u"
        elif isinstance(v, Namespace):
            o += global_op("argparse", "Namespace") + b")\x81"
            self.s(dict(v.kw))
            o += b"b"
        elif isinstance(v, (np.ndarray, Bf16)):
            self.tensor(v)
        else:
            raise TypeError(f"pthwrite cannot write {type(v).__name__}")

    def tensor(self, v):
        if isinstance(v, Bf16):
            a = v.arr
            words = ((a.view("<u4").astype(np.uint64) + 0x7FFF + ((a.view("<u4") >> 16) & 1)) >> 16).astype("<u2")
            raw, stype, shape = words.tobytes(), "BFloat16Storage", a.shape
        else:
            a = np.ascontiguousarray(v)
            if a.dtype not in _STORAGE:
                raise TypeError(f"no storage for {a.dtype}")
            raw, stype, shape = a.astype(a.dtype.newbyteorder("<")).tobytes(), _STORAGE[a.dtype], a.shape
        key = str(len(self.storages))
        self.storages.append((key, raw))
        numel = int(np.prod(shape)) if shape else 1
        stride = []
        acc = 1
        for d in reversed(shape):
            stride.append(acc)
            acc *= d
        stride = tuple(reversed(stride))
        o = self.out
        o += global_op("torch._utils", "_rebuild_tensor_v2") + b"("
        o += b"("
        self.s("storage")
        o += global_op("torch", stype)
        self.s(key)
        self.s("cpu")
        self.s(numel)
        o += b"tQ"                      # TUPLE, BINPERSID
        self.s(0)
        self.s(tuple(int(d) for d in shape))
        self.s(stride)
        self.s(False)
        self.s(collections.OrderedDict())
        o += b"tR"                      # TUPLE, REDUCE


def pickle_bytes(obj):
    w = _Writer()
    w.s(obj)
    w.out += b"."
    return bytes(w.out), w.storages


def write_pth(path, obj, prefix="archive", pickle_data=None):
    """Writes obj as a torch.save zip; pickle_data replaces the pickle (storages from obj)."""
    data, storages = pickle_bytes(obj)
    if pickle_data is not None:
        data = pickle_data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "/data.pkl", data)
        z.writestr(prefix + "/byteorder", "little")
        for key, raw in storages:
            z.writestr(prefix + "/data/" + key, raw)
        z.writestr(prefix + "/version", "3\n")
