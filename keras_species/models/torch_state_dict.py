"""Read a PyTorch state dict into NumPy arrays without torch and without an unrestricted pickle.

A ``.pth`` file is a pickle, and ``pickle.load`` runs whatever callable the file names (any
``__reduce__`` can call ``os.system``). This module reads the two formats ``torch.save`` writes
with a restricted :class:`pickle.Unpickler` whose ``find_class`` resolves only the few globals a
state dict needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, ``torch.<Type>Storage``), each mapped to a harmless
stand-in defined here; any other global is refused with :class:`UnsafePickleError` before it is
called. Written by hand because no library reads these files without importing torch.

Formats:
    - legacy (torch < 1.6, ``_use_new_zipfile_serialization=False``): five records in one
      stream: magic-number pickle, protocol-version pickle, sys-info pickle, the main pickle (its
      persistent ids name storages), the pickled list of storage keys, then per key an int64
      element count followed by the raw storage bytes.
    - zip (torch >= 1.6): ``<archive>/data.pkl`` plus one raw file ``<archive>/data/<key>`` per
      storage (and an optional ``<archive>/byteorder``).

Example:
    >>> from keras_species.models.torch_state_dict import load_state_dict
    >>> tensors = load_state_dict("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> tensors["_fc.weight"].shape  # doctest: +SKIP
    (1000, 1280)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "StateDictFormatError",
    "UnsafePickleError",
    "load_state_dict",
]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> NumPy dtype code (byte order applied per file); "bf16" is decoded
# to float32 because NumPy has no bfloat16.
_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "UntypedStorage": "u1",
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that a state dict does not need; nothing of it was run.

    Attributes:
        global_name: the refused ``module.name``.
        path: the file being read (may be empty).
    """

    def __init__(self, global_name: str, path: str | os.PathLike[str] = "") -> None:
        self.global_name = global_name
        self.path = str(path)
        where = f" in {self.path}" if self.path else ""
        super().__init__(
            f"refused to load global {global_name!r}{where}: a PyTorch state dict only needs "
            "collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and "
            "torch.*Storage. The file is not a plain state dict or was crafted to run code; "
            "load it only if you trust it, with torch.load(..., weights_only=True)."
        )


class StateDictFormatError(ValueError):
    """The file is not a PyTorch state dict this reader understands (names the file and why)."""


# --------------------------------------------------------------------------------------------
# Stand-ins for the allowed globals (never torch objects, never callables from the file).
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StorageType:
    """What ``find_class("torch", "FloatStorage")`` returns: the storage's element dtype."""

    name: str
    dtype_code: str


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by a persistent id: its key, dtype, element count and element offset."""

    key: str
    dtype_code: str
    numel: int
    offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    """A tensor awaiting its storage bytes (legacy files store them after the main pickle)."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateDictFormatError(f"{what} must be an int, got {type(value).__name__}")
    return value


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)):
        raise StateDictFormatError(f"{what} must be a tuple of ints, got {type(value).__name__}")
    return tuple(_as_int(v, what) for v in value)


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor(_v2)``: records where the tensor lives."""
    if not isinstance(storage, _StorageRef):
        raise StateDictFormatError(
            f"tensor storage must be a persistent storage id, got {type(storage).__name__}"
        )
    return _TensorRef(
        storage,
        _as_int(storage_offset, "storage offset"),
        _as_int_tuple(size, "tensor size"),
        _as_int_tuple(stride, "tensor stride"),
    )


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter(_with_state)``: a parameter is its data."""
    if not isinstance(data, _TensorRef):
        raise StateDictFormatError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, code) for name, code in _STORAGE_DTYPES.items()},
}


class _PlainUnpickler(pickle.Unpickler):
    """Allows no global at all: for the magic number, sys info and storage-key records."""

    def __init__(self, file: IO[bytes], path: str) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(f"{module}.{name}", self._path)

    def persistent_load(self, pid: Any) -> Any:
        raise StateDictFormatError(f"{self._path}: unexpected persistent id {pid!r}")


class _StateDictUnpickler(_PlainUnpickler):
    """Allows only the state-dict globals; storages come back as :class:`_StorageRef`."""

    def __init__(self, file: IO[bytes], path: str) -> None:
        super().__init__(file, path)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(f"{module}.{name}", self._path) from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            raise StateDictFormatError(
                f"{self._path}: persistent id {kind!r} is not a storage (was a whole module "
                "saved instead of its state_dict()?)"
            )
        if len(pid) not in (5, 6):
            raise StateDictFormatError(f"{self._path}: malformed storage id {pid!r}")
        storage_type, key, _location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise StateDictFormatError(f"{self._path}: storage type {storage_type!r} unknown")
        key = str(key)
        numel = _as_int(numel, "storage size")
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype_code, numel))
        if root.dtype_code != storage_type.dtype_code or root.numel != numel:
            raise StateDictFormatError(f"{self._path}: storage {key!r} declared twice differently")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        # Legacy storage views: (view_key, element offset, view size) into the root storage.
        _view_key, offset, size = view
        offset, size = _as_int(offset, "view offset"), _as_int(size, "view size")
        if offset < 0 or size < 0 or offset + size > numel:
            raise StateDictFormatError(f"{self._path}: storage view outside storage {key!r}")
        return _StorageRef(key, root.dtype_code, size, offset)


# --------------------------------------------------------------------------------------------
# Materialising tensors.
# --------------------------------------------------------------------------------------------
def _decode_storage(
    raw: bytes, dtype_code: str, numel: int, little_endian: bool, path: str
) -> np.ndarray:
    """The storage's elements as a 1-D array (bfloat16 widened to float32)."""
    order = "<" if little_endian else ">"
    if dtype_code == "bf16":
        halves = np.frombuffer(raw, dtype=np.dtype(order + "u2"), count=numel)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    dtype = (
        np.dtype(dtype_code).newbyteorder(order)
        if dtype_code not in ("?", "u1", "i1")
        else np.dtype(dtype_code)
    )
    array = np.frombuffer(raw, dtype=dtype, count=numel)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _element_size(dtype_code: str) -> int:
    return 2 if dtype_code == "bf16" else np.dtype(dtype_code).itemsize


def _materialise(ref: _TensorRef, storages: Mapping[str, np.ndarray], path: str) -> np.ndarray:
    """Copy the strided view ``ref`` out of its storage, after checking it stays inside it."""
    data = storages.get(ref.storage.key)
    if data is None:
        raise StateDictFormatError(f"{path}: storage {ref.storage.key!r} has no data record")
    if len(ref.shape) != len(ref.stride):
        raise StateDictFormatError(
            f"{path}: tensor size {ref.shape} and stride {ref.stride} differ"
        )
    if any(d < 0 for d in ref.shape) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise StateDictFormatError(f"{path}: negative tensor size, stride or offset")
    start = ref.storage.offset + ref.offset
    if 0 in ref.shape:
        return np.zeros(ref.shape, dtype=data.dtype)
    last = start + sum((d - 1) * s for d, s in zip(ref.shape, ref.stride))
    if last >= ref.storage.offset + ref.storage.numel or last >= data.size:
        raise StateDictFormatError(
            f"{path}: tensor of size {ref.shape} reaches past the end of storage {ref.storage.key!r}"
        )
    strides = tuple(s * data.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(
        data[start:], shape=ref.shape, strides=strides, writeable=False
    )
    return np.array(view, order="C", copy=True)


def _resolve(obj: Any, storages: Mapping[str, np.ndarray], path: str) -> Any:
    """Replace every :class:`_TensorRef` inside dicts, lists and tuples by its array."""
    if isinstance(obj, _TensorRef):
        return _materialise(obj, storages, path)
    if isinstance(obj, dict):
        return {k: _resolve(v, storages, path) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, storages, path) for v in obj)
    return obj


# --------------------------------------------------------------------------------------------
# The two file formats.
# --------------------------------------------------------------------------------------------
def _read_exact(f: IO[bytes], n: int, path: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise StateDictFormatError(f"{path}: file ends inside {what} (truncated download?)")
    return data


def _load_legacy(f: IO[bytes], path: str) -> tuple[Any, dict[str, np.ndarray]]:
    magic = _PlainUnpickler(f, path).load()
    if magic != LEGACY_MAGIC_NUMBER:
        raise StateDictFormatError(
            f"{path}: not a PyTorch file (no zip archive and no legacy magic number)"
        )
    protocol = _PlainUnpickler(f, path).load()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise StateDictFormatError(f"{path}: unsupported legacy protocol version {protocol!r}")
    sys_info = _PlainUnpickler(f, path).load()
    little_endian = (
        bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    )
    unpickler = _StateDictUnpickler(f, path)
    obj = unpickler.load()
    keys = _PlainUnpickler(f, path).load()
    if not isinstance(keys, list):
        raise StateDictFormatError(f"{path}: storage key record is not a list")
    count_format = "<q" if little_endian else ">q"
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        ref = unpickler.storages.get(str(key))
        if ref is None:
            raise StateDictFormatError(f"{path}: storage {key!r} listed but never used")
        (numel,) = struct.unpack(count_format, _read_exact(f, 8, path, f"storage {key!r} header"))
        if numel != ref.numel:
            raise StateDictFormatError(
                f"{path}: storage {key!r} holds {numel} elements, expected {ref.numel}"
            )
        raw = _read_exact(f, numel * _element_size(ref.dtype_code), path, f"storage {key!r}")
        storages[ref.key] = _decode_storage(raw, ref.dtype_code, numel, little_endian, path)
    return obj, storages


def _load_zip(path: str) -> tuple[Any, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise StateDictFormatError(f"{path}: zip archive without exactly one data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        little_endian = True
        if f"{prefix}byteorder" in names:
            little_endian = archive.read(f"{prefix}byteorder").strip() != b"big"
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])), path)
        obj = unpickler.load()
        storages: dict[str, np.ndarray] = {}
        for key, ref in unpickler.storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise StateDictFormatError(f"{path}: storage record {member!r} is missing")
            raw = archive.read(member)
            nbytes = ref.numel * _element_size(ref.dtype_code)
            if len(raw) < nbytes:
                raise StateDictFormatError(f"{path}: storage record {member!r} is truncated")
            storages[key] = _decode_storage(
                raw[:nbytes], ref.dtype_code, ref.numel, little_endian, path
            )
    return obj, storages


def load_pickled_tree(path: str | os.PathLike[str]) -> Any:
    """Read any torch-saved tree of dicts/lists/tensors (tensors become NumPy arrays), safely.

    Args:
        path: a ``.pth``/``.pt``/``.bin`` file written by ``torch.save`` (legacy or zip format).

    Returns:
        The saved object with every tensor replaced by a ``np.ndarray`` (copied, C-contiguous).

    Raises:
        UnsafePickleError: the file names a global outside the state-dict allow list.
        StateDictFormatError: the file is not a readable torch file.
        FileNotFoundError: ``path`` does not exist.

    Example:
        >>> tree = load_pickled_tree("checkpoint.pth")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such PyTorch file: {path}")
    try:
        if zipfile.is_zipfile(path):
            obj, storages = _load_zip(path)
        else:
            with open(path, "rb") as f:
                obj, storages = _load_legacy(f, path)
    except (UnsafePickleError, StateDictFormatError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        zipfile.BadZipFile,
    ) as err:
        raise StateDictFormatError(f"{path}: not a readable PyTorch state dict ({err})") from err
    return _resolve(obj, storages, path)


def load_state_dict(path: str | os.PathLike[str], key: str | None = None) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict as ``{name: np.ndarray}`` without torch and without running code.

    Args:
        path: a file written by ``torch.save(model.state_dict(), path)`` in the legacy (pre-1.6)
            or the zip format.
        key: for checkpoints that nest the state dict (``{"state_dict": {...}, "epoch": 3}``),
            the entry to return.

    Returns:
        An insertion-ordered dict from parameter/buffer name to array (float32 for
        ``FloatStorage``, int64 for ``num_batches_tracked``, bfloat16 widened to float32).

    Raises:
        UnsafePickleError: the pickle names a global a state dict does not need (e.g.
            ``os.system``); the refused global is in the message and nothing was called.
        StateDictFormatError: the file is no state dict (names the file and the reason).

    Example:
        >>> sd = load_state_dict("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
        >>> len(sd), sd["_conv_stem.weight"].shape  # doctest: +SKIP
        (296, (32, 3, 3, 3))
    """
    tree = load_pickled_tree(path)
    if key is not None:
        if not isinstance(tree, dict) or key not in tree:
            found = sorted(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
            raise StateDictFormatError(f"{os.fspath(path)}: no entry {key!r} (found {found})")
        tree = tree[key]
    if not isinstance(tree, dict):
        raise StateDictFormatError(
            f"{os.fspath(path)}: holds a {type(tree).__name__}, not a state dict"
        )
    bad = [str(k) for k, v in tree.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise StateDictFormatError(
            f"{os.fspath(path)}: entries {bad[:5]} are not tensors; a nested checkpoint? pass "
            "key= with the entry that holds the state dict"
        )
    return {str(k): v for k, v in tree.items()}
