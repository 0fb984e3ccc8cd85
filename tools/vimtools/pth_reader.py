"""Reading PyTorch `.pth` checkpoints (torch.save zip format) without torch, safely.

A `.pth` written by torch.save (torch >= 1.6) is a zip archive:

    <prefix>/data.pkl        the pickled object (protocol 2)
    <prefix>/data/<key>      one raw storage per key (little-endian, see byteorder)
    <prefix>/version         format version
    <prefix>/byteorder       "little" or "big" (newer files only)
    <prefix>/.data/...       bookkeeping (newer files only)

A pickle can name any importable callable and call it, so it is never run
with the standard unpickler: `RestrictedUnpickler.find_class` admits only the
globals a checkpoint needs (ALLOWED below, each mapped to a harmless
stand-in of ours, not to torch) and refuses every other one with
UnsafePickleError naming it. Storages (persistent ids) become LazyStorage
objects and tensors LazyTensor objects; the data is read from the zip only when
a tensor's .numpy() is called, and every offset, size and stride is checked
against the storage first.

    ckpt = pth_reader.load("vim_t_midclstok_76p1acc.pth")
    sd = ckpt["model"]                   # OrderedDict name -> LazyTensor
    arr = sd["pos_embed"].numpy()        # numpy array, the file's dtype
"""
import _compat_pickle
import collections
import io
import pickle
import zipfile

import numpy as np

MAX_PICKLE_BYTES = 64 << 20


class PthError(Exception):
    """The file is not a readable torch.save checkpoint."""


class UnsafePickleError(PthError):
    """The pickle names a global that a checkpoint does not need."""


# Storage classes, by the name the pickle uses -> numpy dtype of one element.
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),   # bfloat16 words; LazyTensor.numpy() widens to float32
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _NoBuild:
    """Our stand-ins refuse the pickle BUILD opcode, so a pickle cannot rewrite their fields."""

    def __setstate__(self, state):
        raise UnsafePickleError(f"the pickle tries to set the state of a {type(self).__name__}, "
                                "which a torch.save checkpoint never does")


class StorageType(_NoBuild):
    """Stand-in for torch.FloatStorage & co.: only carries the element type."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError(f"the pickle calls the storage class torch.{self.name}, "
                                "which a torch.save checkpoint never does")

    def __repr__(self):
        return f"torch.{self.name}"


class LazyStorage(_NoBuild):
    """One `<prefix>/data/<key>` entry: `numel` elements of `dtype`, read on demand."""

    def __init__(self, archive, key, stype, numel, location):
        self._archive = archive
        self.key = key
        self.stype = stype
        self.dtype = stype.dtype
        self.numel = numel
        self.location = location
        self._data = None

    def data(self):
        if self._data is None:
            self._data = self._archive.read_storage(self.key, self.numel, self.dtype)
        return self._data


class LazyTensor(_NoBuild):
    """A tensor of a checkpoint: shape and dtype known, data read by .numpy()."""

    def __init__(self, storage, offset, shape, stride):
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride
        self.is_bfloat16 = storage.stype.name == "BFloat16Storage"
        self.dtype = np.dtype("<f4") if self.is_bfloat16 else storage.dtype

    @property
    def storage_type(self):
        return self.storage.stype.name

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def numpy(self):
        """The tensor as a new C-contiguous array (bfloat16 widened to float32)."""
        flat = self.storage.data()
        n = self.size
        if n == 0:
            out = np.zeros(self.shape, dtype=flat.dtype)
        else:
            contiguous = []
            acc = 1
            for s in reversed(self.shape):
                contiguous.append(acc)
                acc *= s
            contiguous.reverse()
            dims = [(sz, st) for sz, st, c in zip(self.shape, self.stride, contiguous)]
            if all(sz == 1 or st == c for (sz, st), c in zip(dims, contiguous)):
                out = flat[self.offset:self.offset + n].reshape(self.shape).copy()
            else:
                # Gather through explicit indices: bounds were checked when the tensor was
                # built, and numpy checks them again here.
                idx = np.full(self.shape, self.offset, dtype=np.int64)
                for ax, (sz, st) in enumerate(dims):
                    shp = [1] * len(self.shape)
                    shp[ax] = sz
                    idx = idx + (np.arange(sz, dtype=np.int64) * st).reshape(shp)
                out = flat[idx]
        if self.is_bfloat16:
            out = (out.astype("<u4") << 16).view("<f4")
        return out

    def __repr__(self):
        return f"LazyTensor({self.storage_type}, shape={self.shape})"


def _check_int(v, what):
    if type(v) is not int:  # bool is not accepted either
        raise PthError(f"tensor {what} is {type(v).__name__}, not int")
    return v


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    if not isinstance(storage, LazyStorage):
        raise PthError(f"_rebuild_tensor_v2 got a {type(storage).__name__} where a storage belongs")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise PthError("_rebuild_tensor_v2: size and stride must be tuples of equal length")
    if len(size) > 16:
        raise PthError(f"_rebuild_tensor_v2: {len(size)} dimensions")
    off = _check_int(storage_offset, "offset")
    shape = tuple(_check_int(s, "size") for s in size)
    strides = tuple(_check_int(s, "stride") for s in stride)
    if off < 0 or any(s < 0 for s in shape) or any(s < 0 for s in strides):
        raise PthError("_rebuild_tensor_v2: negative offset, size or stride")
    n = 1
    for s in shape:
        n *= s
    if n:
        last = off + sum((sz - 1) * st for sz, st in zip(shape, strides))
        if last >= storage.numel:
            raise PthError(f"tensor of shape {shape} (offset {off}, stride {strides}) reaches element "
                           f"{last} of storage {storage.key!r} which has {storage.numel}")
    # rest: requires_grad, backward_hooks[, metadata]; nothing there matters for the data
    return LazyTensor(storage, off, shape, strides)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(data, LazyTensor):
        raise PthError(f"_rebuild_parameter got a {type(data).__name__}, not a tensor")
    return data


# (module, name) -> the object find_class returns. Nothing else is ever resolved.
ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): __import__("argparse").Namespace,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
for _name, _dt in _STORAGE_DTYPES.items():
    ALLOWED[("torch", _name)] = StorageType(_name, _dt)
# Untyped (byte) storages, as newer torch names them when a bare storage is saved.
ALLOWED[("torch", "UntypedStorage")] = StorageType("UntypedStorage", np.dtype("u1"))
ALLOWED[("torch.storage", "UntypedStorage")] = ALLOWED[("torch", "UntypedStorage")]


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive):
        super().__init__(file)
        self._archive = archive

    def find_class(self, module, name):
        # Protocol 2 pickles may use Python 2 names (__builtin__.eval); judge and report the
        # Python 3 name they stand for, as the standard unpickler would resolve it.
        shown = f"{module}.{name}"
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        real = f"{module}.{name}"
        obj = ALLOWED.get((module, name))
        if obj is None:
            also = f" (written '{shown}')" if shown != real else ""
            raise UnsafePickleError(
                f"refusing to load: the pickle names the global '{real}'{also}, which a checkpoint "
                "does not need (admitted: tensors and storages, collections.OrderedDict, argparse.Namespace)")
        return obj

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise PthError(f"unknown persistent id {pid!r:.80}")
        stype, key, location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(stype, StorageType):
            raise PthError(f"persistent id names {stype!r:.60} where a storage class belongs")
        if not isinstance(key, str) or not key or "/" in key or "\\" in key or ".." in key:
            raise PthError(f"bad storage key {key!r:.60}")
        if type(numel) is not int or numel < 0:
            raise PthError(f"bad storage size {numel!r:.60}")
        return self._archive.storage(key, stype, numel, location)


class _Archive:
    def __init__(self, path):
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            with open(path, "rb") as f:
                head = f.read(2)
            if head[:1] == b"\x80":
                raise PthError(f"{path}: a legacy (pre-1.6, non-zip) torch.save file; re-save it with "
                               "torch >= 1.6, or torch.save(..., _use_new_zipfile_serialization=True)")
            raise PthError(f"{path}: not a torch.save zip archive")
        names = self.zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise PthError(f"{path}: expected one <prefix>/data.pkl in the archive, found {len(pkls)}")
        self.prefix = pkls[0][:-len("data.pkl")]
        self.big_endian = False
        if self.prefix + "byteorder" in names:
            order = self.zf.read(self.prefix + "byteorder").strip()
            if order not in (b"little", b"big"):
                raise PthError(f"{path}: unknown byteorder {order[:20]!r}")
            self.big_endian = order == b"big"
        self._storages = {}

    def pickle_bytes(self):
        info = self.zf.getinfo(self.prefix + "data.pkl")
        if info.file_size > MAX_PICKLE_BYTES:
            raise PthError(f"{self.path}: data.pkl is {info.file_size} bytes (limit {MAX_PICKLE_BYTES})")
        return self.zf.read(info)

    def storage(self, key, stype, numel, location):
        s = self._storages.get(key)
        if s is None:
            s = LazyStorage(self, key, stype, numel, location)
            self._storages[key] = s
        elif s.stype is not stype or s.numel != numel:
            raise PthError(f"storage {key!r} is named twice with different types or sizes")
        return s

    def read_storage(self, key, numel, dtype):
        name = self.prefix + "data/" + key
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise PthError(f"{self.path}: storage {name} is missing from the archive")
        want = numel * dtype.itemsize
        if info.file_size != want:
            raise PthError(f"{self.path}: storage {name} has {info.file_size} bytes, "
                           f"expected {want} ({numel} x {dtype.itemsize})")
        raw = self.zf.read(info)
        if len(raw) != want:
            raise PthError(f"{self.path}: storage {name} is truncated")
        arr = np.frombuffer(raw, dtype=dtype.newbyteorder(">") if self.big_endian else dtype)
        return arr.astype(dtype) if self.big_endian else arr


def load(path):
    """The unpickled checkpoint, tensors as LazyTensor. Raises PthError / UnsafePickleError."""
    archive = _Archive(path)
    data = archive.pickle_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), archive).load()
    except PthError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, RecursionError, MemoryError) as e:
        raise PthError(f"{path}: malformed pickle: {type(e).__name__}: {e}")


def is_state_dict(obj):
    """True for a non-empty mapping of str -> LazyTensor."""
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, LazyTensor) for k, v in obj.items()))
