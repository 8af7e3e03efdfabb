"""PyTorch checkpoint files read without running any code of the file, and without torch.

A `.pth` file is a pickle: loading one with `pickle`/`torch.load(weights_only=False)` calls
whatever callables the file names, which is how a crafted checkpoint runs code. Here every
pickle of the file (the zip format's `data.pkl`, and each of the legacy format's five
pickles) goes through one restricted unpickler whose `find_class` knows three kinds of global:

- tensor globals (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, the typed
  storages, ...): replaced by tfvideo's own functions that build NumPy arrays over the file's
  storage bytes (memory-mapped: nothing is copied until a mapper transposes it);
- plain containers (`collections.OrderedDict`, `builtins.set`, ...): the real ones;
- training metadata checkpoints carry beside the weights (mmengine's message hub and history
  buffers, NumPy arrays and scalars, `argparse.Namespace`): inert placeholders built from
  nothing (their class's code never runs);

and refuses every other global with `UnsafeCheckpointError` naming it, before anything of it
is called. Torch itself is never imported, so converting needs no torch install.
"""

import collections
import mmap
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Typed storage class -> NumPy dtype of its elements (bfloat16: read as uint16, widened below).
_STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "u2",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}

# Training-metadata classes that load as inert placeholders: module prefixes and exact names.
_INERT_PREFIXES = ("mmengine.", "mmcv.", "mmaction.")
_INERT_NAMES = frozenset({
    "argparse.Namespace", "_codecs.encode", "collections.defaultdict", "datetime.datetime", "datetime.date",
    "datetime.timedelta", "torch.torch_version.TorchVersion", "torch.device", "torch.Size",
    "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
    "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
} | {f"torch.{t}" for t in ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                               "uint8", "bool")})
_CONTAINERS = {"collections.OrderedDict": collections.OrderedDict, "builtins.set": set,
               "builtins.frozenset": frozenset, "builtins.complex": complex,
               "builtins.slice": slice}


class UnsafeCheckpointError(ValueError):
    """The file names a global outside the allow-list (it would run code when unpickled)."""


class UnreadableCheckpointError(ValueError):
    """Not a PyTorch checkpoint this reader understands (damaged, another format)."""


class Inert:
    """Stands for a training-metadata object: built from nothing, keeps nothing, runs nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return Inert()


class _StorageType:
    """What the pickle's `torch.FloatStorage` (etc.) global becomes: the element dtype."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A typed storage: a flat NumPy array over the file's bytes."""

    def __init__(self, array, bfloat16=False):
        self.array, self.bfloat16 = array, bfloat16


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """`torch._utils._rebuild_tensor(_v2)`: a strided view of a storage, bounds-checked."""
    if not isinstance(storage, _Storage):
        raise UnreadableCheckpointError("a tensor without a storage")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
        raise UnreadableCheckpointError(f"a tensor of size {list(size)} stride {list(stride)}")
    flat = storage.array
    if 0 in size:
        array = np.zeros(size, flat.dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise UnreadableCheckpointError(f"a tensor of size {list(size)} reaching past its storage of "
                                            f"{flat.size} elements")
        numel = int(np.prod(size))
        contiguous = [int(np.prod(size[i + 1:])) for i in range(len(size))]
        if all(s == c for n, s, c in zip(size, stride, contiguous) if n > 1):  # A plain view (keeps its base).
            array = flat[offset:offset + numel].reshape(size)
        else:
            itemsize = flat.dtype.itemsize
            array = np.lib.stride_tricks.as_strided(flat[offset:], size, tuple(s * itemsize for s in stride),
                                                    writeable=False)
    if storage.bfloat16:  # bfloat16 is the high half of a float32.
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor, _rebuild_parameter) or not isinstance(args, tuple):
        raise UnreadableCheckpointError("a tensor subclass rebuilt by something other than a tensor rebuilder")
    return func(*args)


_TENSOR_GLOBALS = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch._tensor.Tensor": Inert, "torch.Tensor": Inert, "torch.nn.parameter.Parameter": Inert,
}


def _latin1_encode(text, encoding="utf-8"):
    """`_codecs.encode` as protocol-2 pickles of bytes use it (latin-1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnreadableCheckpointError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


# The globals NumPy's own pickles of arrays and scalars name (numpy 1 and 2 module paths).
_ARRAY_GLOBALS = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype, "_codecs.encode": _latin1_encode}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ARRAY_GLOBALS[f"{_module}._reconstruct"] = np.zeros(1).__reduce__()[0]
    _ARRAY_GLOBALS[f"{_module}.scalar"] = np.float64(0).__reduce__()[0]
for _module in ("numpy.core.numeric", "numpy._core.numeric"):  # Protocol 5's out-of-band-capable arrays.
    _ARRAY_GLOBALS[f"{_module}._frombuffer"] = np.zeros(1).__reduce_ex__(5)[0]


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals are the allow-list above; storages come from `load_storage`;
    with `arrays`, NumPy arrays and scalars are real (`_ARRAY_GLOBALS`) instead of inert."""

    def __init__(self, file, load_storage, arrays=False):
        super().__init__(file, encoding="utf-8")
        self._load_storage, self._arrays = load_storage, arrays

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if self._arrays and full in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[full]
        if full in _TENSOR_GLOBALS:
            return _TENSOR_GLOBALS[full]
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if full in _CONTAINERS:
            return _CONTAINERS[full]
        if full in _INERT_NAMES or full.startswith(_INERT_PREFIXES):
            return Inert
        raise UnsafeCheckpointError(f"global {full!r}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and _ascii(pid[0]) == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnreadableCheckpointError(f"an unknown persistent id {str(pid)[:60]}")
        storage_type, key, numel = pid[1], _ascii(pid[2]), pid[4]
        if not isinstance(numel, int) or numel < 0:
            raise UnreadableCheckpointError(f"storage {key!r} of {numel!r} elements")
        flat = self._load_storage(key, storage_type.dtype, numel)
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # Legacy format: a view (offset, size) into a root storage.
            _, offset, view_numel = view
            if not (0 <= offset <= offset + view_numel <= flat.size):
                raise UnreadableCheckpointError(f"storage view {view!r} past storage {key!r}")
            flat = flat[offset:offset + view_numel]
        return _Storage(flat, storage_type.name == "BFloat16Storage")


def _ascii(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


def _unpickle(file, load_storage, arrays=False):
    try:
        return _RestrictedUnpickler(file, load_storage, arrays).load()
    except (UnsafeCheckpointError, UnreadableCheckpointError):
        raise
    except RecursionError:
        raise UnreadableCheckpointError("nesting too deep") from None
    except Exception as e:  # A damaged pickle raises many types; all mean "not readable".
        raise UnreadableCheckpointError(f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                                        .rstrip(": ")) from None


def _mapped(path):
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise UnreadableCheckpointError("an empty file")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _read_zip(path, buffer):
    """torch >= 1.6 files: a zip of `<name>/data.pkl` and one record `<name>/data/<key>` per storage."""
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UnreadableCheckpointError(f"a damaged zip archive ({e})") from None
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise UnreadableCheckpointError("a zip archive without one '<name>/data.pkl' (a TorchScript file?)")
    prefix = pickles[0][:-len("data.pkl")]
    big_endian = f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() == b"big"

    def load_storage(key, dtype, numel):
        try:
            info = archive.getinfo(f"{prefix}data/{key}")
        except KeyError:
            raise UnreadableCheckpointError(f"no record for storage {key!r}") from None
        nbytes = numel * dtype.itemsize
        if info.file_size < nbytes:
            raise UnreadableCheckpointError(f"storage {key!r}: {info.file_size} bytes for {numel} elements")
        if info.compress_type == zipfile.ZIP_STORED:  # torch.save stores uncompressed: map, don't copy.
            local = buffer[info.header_offset:info.header_offset + 30]
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise UnreadableCheckpointError(f"storage {key!r}: a damaged zip entry")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            if start + nbytes > len(buffer):
                raise UnreadableCheckpointError(f"storage {key!r} past the end of the file (truncated?)")
            flat = np.frombuffer(buffer, dtype, numel, start)
        else:
            flat = np.frombuffer(archive.read(info.filename), dtype, numel)
        return flat.view(dtype.newbyteorder(">")).astype(dtype) if big_endian and dtype.itemsize > 1 else flat

    with archive.open(pickles[0]) as f:
        return _unpickle(f, load_storage)


def _read_legacy(buffer):
    """torch < 1.6 files: pickles of the magic number, protocol, system info, the object and its
    storage keys, then each storage as an int64 element count and its bytes. The object is read
    twice: first over placeholder storages to find where the bytes start, then over the bytes."""
    f = buffer  # An mmap reads like a file.
    f.seek(0)
    if _unpickle(f, _no_storage) != _LEGACY_MAGIC:
        raise UnreadableCheckpointError("no PyTorch magic number")
    if _unpickle(f, _no_storage) != _LEGACY_PROTOCOL:
        raise UnreadableCheckpointError("an unknown legacy protocol version")
    info = _unpickle(f, _no_storage)
    order = "<" if not isinstance(info, dict) or info.get("little_endian", True) else ">"
    start, wanted = f.tell(), {}

    def placeholder(key, dtype, numel):  # numel elements, no memory.
        wanted.setdefault(key, (dtype, numel))
        return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), (numel,), (0,), writeable=False)

    _unpickle(f, placeholder)
    keys = _unpickle(f, _no_storage)
    if not isinstance(keys, list):
        raise UnreadableCheckpointError("no storage key list")
    offset, flats = f.tell(), {}
    for key in map(_ascii, keys):
        if key not in wanted:
            raise UnreadableCheckpointError(f"storage {key!r} is not used by the object")
        dtype, numel = wanted[key]
        count = struct.unpack(f"{order}q", buffer[offset:offset + 8])[0] if offset + 8 <= len(buffer) else -1
        end = offset + 8 + count * dtype.itemsize
        if count < numel or end > len(buffer):
            raise UnreadableCheckpointError(f"storage {key!r} past the end of the file (truncated?)")
        flat = np.frombuffer(buffer, dtype.newbyteorder(order), count, offset + 8)
        flats[key] = flat if order == "<" or dtype.itemsize == 1 else flat.astype(dtype)
        offset = end

    def stored(key, dtype, numel):
        if key not in flats:
            raise UnreadableCheckpointError(f"storage {key!r} has no data")
        return flats[key]

    f.seek(start)
    return _unpickle(f, stored)


def _no_storage(key, dtype, numel):
    raise UnreadableCheckpointError("a storage in the header")


def _byte_bounds(array):
    """(first byte address, one past the last) of `array`'s elements (np.byte_bounds)."""
    low = high = array.__array_interface__["data"][0]
    for n, stride in zip(array.shape, array.strides):
        if stride < 0:
            low += (n - 1) * stride
        else:
            high += (n - 1) * stride
    return low, high + array.itemsize


def release(array):
    """Drops the pages of the memory-mapped file under `array` (a view of a checkpoint read
    here) from this process's resident memory, once its values were copied elsewhere: they
    stay in the page cache and are read back if `array` is used again. A no-op for arrays
    not backed by a checkpoint mapping."""
    root = array
    while isinstance(root, np.ndarray) and not isinstance(getattr(root.base, "obj", None), mmap.mmap):
        root = root.base
    if not isinstance(root, np.ndarray) or not hasattr(mmap, "MADV_DONTNEED") or not array.size:
        return
    mapping = root.base.obj
    start = np.frombuffer(mapping, np.uint8, 1, 0).__array_interface__["data"][0]
    low, high = _byte_bounds(array)
    begin = (low - start) // mmap.PAGESIZE * mmap.PAGESIZE
    end = min(len(mapping), high - start)
    if 0 <= begin < end:
        mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def read_torch_file(path):
    """A `torch.save` file (zip or legacy format) -> the saved object, tensors as NumPy arrays
    (read-only views of the memory-mapped file where the layout allows), training metadata as
    `Inert` placeholders.

    Raises:
      UnsafeCheckpointError: the file names a global outside the allow-list (message: the global).
      UnreadableCheckpointError: anything else that is not a readable checkpoint.
    """
    buffer = _mapped(path)
    if buffer[:4] == b"PK\x03\x04":
        return _read_zip(path, buffer)
    if buffer[262:267] == b"ustar":
        raise UnreadableCheckpointError("the tar format of torch < 0.4, not supported: re-save it with a "
                                        "recent torch")
    return _read_legacy(buffer)


def read_array_pickle(path):
    """A pickle of plain containers and NumPy arrays (e.g. the online-detection community's
    `thumos_all_feature_*.pickle`: session -> {"rgb": [T, 2048], ...}) -> the object, read by
    the same restricted unpickler: NumPy arrays and scalars are real, any other global is
    refused (`UnsafeCheckpointError` naming it) before it is called.

    Raises:
      UnsafeCheckpointError, UnreadableCheckpointError (messages without the path).
    """
    with open(path, "rb") as f:
        return _unpickle(f, _no_storage, arrays=True)
