"""Reading PyTorch state dicts without torch: both formats, and hostile pickles refused unrun."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import pickletools
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_species.models.torch_state_dict import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    StateDictFormatError,
    UnsafePickleError,
    load_pickled_tree,
    load_state_dict,
)

# ---------------------------------------------------------------------------------------------
# A writer of torch.save's two formats, opcode by opcode (torch is not installed, and faking a
# ``torch`` module in sys.modules would leak into other tests).
# ---------------------------------------------------------------------------------------------
_STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("uint8"): "ByteStorage",
}


def _value(obj: object) -> bytes:
    """Opcodes that push ``obj`` (a plain value) on the unpickler's stack."""
    body = pickletools.optimize(pickle.dumps(obj, protocol=2))
    assert body[:2] == b"\x80\x02" and body[-1:] == b"."
    return body[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


class _Tensor:
    """A tensor to write: a view (offset, shape, stride in elements) of a named storage."""

    def __init__(self, key: str, offset: int, shape: tuple, stride: tuple) -> None:
        self.key, self.offset, self.shape, self.stride = key, offset, shape, stride


def _tensor_opcodes(t: _Tensor, storages: dict, legacy: bool) -> bytes:
    data = storages[t.key]
    pid = b"(" + _value("storage") + _global("torch", _STORAGE_NAMES[data.dtype])
    pid += _value(t.key) + _value("cpu") + _value(int(data.size))
    pid += (b"N" if legacy else b"") + b"t"  # legacy ids carry view metadata (None)
    args = b"(" + pid + b"Q" + _value(t.offset) + _value(t.shape) + _value(t.stride)
    args += b"\x89" + _global("collections", "OrderedDict") + b")R" + b"t"
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _main_pickle(tensors: dict[str, _Tensor], storages: dict, legacy: bool) -> bytes:
    body = b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
    for name, t in tensors.items():
        body += _value(name) + _tensor_opcodes(t, storages, legacy)
    return body + b"u."


def write_legacy(
    path: Path,
    tensors: dict[str, _Tensor],
    storages: dict[str, np.ndarray],
    main: bytes | None = None,
) -> Path:
    """Write ``path`` as torch < 1.6 did: 3 header pickles, main pickle, keys, raw storages."""
    with open(path, "wb") as f:
        f.write(pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2))
        f.write(pickle.dumps(LEGACY_PROTOCOL_VERSION, protocol=2))
        f.write(
            pickle.dumps(
                {
                    "protocol_version": 1001,
                    "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4},
                },
                protocol=2,
            )
        )
        f.write(main if main is not None else _main_pickle(tensors, storages, legacy=True))
        f.write(pickle.dumps(list(storages), protocol=2))
        for data in storages.values():
            f.write(struct.pack("<q", data.size))
            f.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    return path


def write_zip(
    path: Path,
    tensors: dict[str, _Tensor],
    storages: dict[str, np.ndarray],
    main: bytes | None = None,
) -> Path:
    """Write ``path`` as torch >= 1.6 does: ``archive/data.pkl`` and ``archive/data/<key>``."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "archive/data.pkl",
            main if main is not None else _main_pickle(tensors, storages, legacy=False),
        )
        z.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data.tobytes())
    return path


def _example() -> tuple[dict[str, _Tensor], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Tensors covering: 4-D weight, shared storage with offset, a transposed view, int64, half."""
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    shared = rng.normal(size=10).astype(np.float32)
    matrix = rng.normal(size=(2, 3)).astype(
        np.float32
    )  # stored (2, 3); saved as its transpose view
    half = rng.normal(size=5).astype(np.float16)
    storages = {
        "100": conv.ravel(),
        "200": shared,
        "300": matrix.ravel(),
        "400": np.array([7], np.int64),
        "500": half,
    }
    tensors = {
        "conv.weight": _Tensor("100", 0, (4, 3, 3, 3), (27, 9, 3, 1)),
        "bn.weight": _Tensor("200", 0, (4,), (1,)),
        "bn.bias": _Tensor("200", 4, (6,), (1,)),
        "fc.weight_t": _Tensor("300", 0, (3, 2), (1, 3)),
        "bn.num_batches_tracked": _Tensor("400", 0, (), ()),
        "half": _Tensor("500", 1, (2, 2), (2, 1)),
    }
    expected = {
        "conv.weight": conv,
        "bn.weight": shared[:4],
        "bn.bias": shared[4:],
        "fc.weight_t": matrix.T,
        "bn.num_batches_tracked": np.array(7, np.int64),
        "half": half[1:5].reshape(2, 2),
    }
    return tensors, storages, expected


@pytest.mark.parametrize("writer", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_round_trip_both_formats(tmp_path: Path, writer) -> None:
    tensors, storages, expected = _example()
    path = writer(tmp_path / "model.pth", tensors, storages)
    got = load_state_dict(path)
    assert list(got) == list(expected)  # order kept
    for name, want in expected.items():
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)
        assert got[name].flags.c_contiguous and got[name].flags.writeable


def test_nested_checkpoint_needs_key(tmp_path: Path) -> None:
    tensors, storages, _ = _example()
    inner = _main_pickle({"w": tensors["conv.weight"]}, storages, legacy=True)[
        2:-1
    ]  # drop PROTO/STOP
    main = b"\x80\x02}(" + _value("state_dict") + inner + _value("epoch") + _value(3) + b"u."
    path = write_legacy(tmp_path / "ckpt.pth", {}, {"100": storages["100"]}, main=main)
    assert load_pickled_tree(path)["epoch"] == 3
    with pytest.raises(StateDictFormatError, match="key="):
        load_state_dict(path)
    assert load_state_dict(path, key="state_dict")["w"].shape == (4, 3, 3, 3)


# ---------------------------------------------------------------------------------------------
# Hostile pickles: refused by name, payload never runs.
# ---------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile_payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "posix.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.eval": _Payload(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.Popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
        "builtins.exec": _Payload(builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
    }


def test_control_the_payload_really_runs_under_plain_pickle(tmp_path: Path) -> None:
    """Without the restricted unpickler the same bytes do run code (so the tests below can fail)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_hostile_payloads(marker)["builtins.eval"], protocol=2))
    assert marker.exists()


@pytest.mark.parametrize(
    "refused", ["posix.system", "builtins.eval", "subprocess.Popen", "builtins.exec"]
)
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("writer", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_hostile_main_pickle_is_refused(
    tmp_path: Path, writer, protocol: int, refused: str
) -> None:
    marker = tmp_path / "pwned"
    hostile = pickle.dumps({"weight": _hostile_payloads(marker)[refused]}, protocol=protocol)
    path = writer(tmp_path / "evil.pth", {}, {}, main=hostile)
    with pytest.raises(UnsafePickleError) as info:
        load_state_dict(path)
    # protocol 2 writes Python 2 module names (``__builtin__``, ``commands``); the refusal names
    # the global as the file spells it.
    assert info.value.global_name.rsplit(".", 1)[1] == refused.rsplit(".", 1)[1]
    assert info.value.global_name in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_hostile_header_record_is_refused(tmp_path: Path) -> None:
    """The magic-number record is unpickled too, with no global allowed at all."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_hostile_payloads(marker)["posix.system"], protocol=2))
    with pytest.raises(UnsafePickleError, match="posix.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_allowed_callable_cannot_be_smuggled_into_headers(tmp_path: Path) -> None:
    """Even an allowed state-dict global is refused outside the main pickle."""
    path = tmp_path / "odd.pth"
    path.write_bytes(b"\x80\x02" + _global("collections", "OrderedDict") + b")R.")
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        load_state_dict(path)


def test_other_torch_globals_are_refused(tmp_path: Path) -> None:
    main = b"\x80\x02" + _global("torch._utils", "_rebuild_qtensor") + b")R."
    with pytest.raises(UnsafePickleError, match="_rebuild_qtensor"):
        load_state_dict(write_legacy(tmp_path / "q.pth", {}, {}, main=main))


# ---------------------------------------------------------------------------------------------
# Malformed files: clear errors, no out-of-bounds reads.
# ---------------------------------------------------------------------------------------------
def test_stride_outside_storage_is_rejected(tmp_path: Path) -> None:
    storages = {"1": np.arange(4, dtype=np.float32)}
    tensors = {"w": _Tensor("1", 0, (4, 4), (4, 1))}  # needs 16 elements, storage has 4
    with pytest.raises(StateDictFormatError, match="past the end"):
        load_state_dict(write_legacy(tmp_path / "bad.pth", tensors, storages))


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    tensors, storages, _ = _example()
    good = write_legacy(tmp_path / "good.pth", tensors, storages).read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[:-10])
    with pytest.raises(StateDictFormatError, match="truncated"):
        load_state_dict(tmp_path / "cut.pth")
    (tmp_path / "text.pth").write_text("not a pickle at all")
    with pytest.raises(StateDictFormatError, match="text.pth"):
        load_state_dict(tmp_path / "text.pth")
    (tmp_path / "int.pth").write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(StateDictFormatError, match="magic number"):
        load_state_dict(tmp_path / "int.pth")
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "missing.pth")


def test_whole_module_pickle_is_explained(tmp_path: Path) -> None:
    main = b"\x80\x02(" + _value("module") + _value("Net") + b"tQ."
    with pytest.raises(StateDictFormatError, match="state_dict"):
        load_state_dict(write_legacy(tmp_path / "module.pth", {}, {}, main=main))


def test_bfloat16_storage_is_widened(tmp_path: Path) -> None:
    want = np.array([1.0, -2.5, 0.15625], np.float32)
    bf16 = (want.view(np.uint32) >> 16).astype(np.uint16)
    main = b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + _value("w")
    main += _global("torch._utils", "_rebuild_tensor_v2") + b"((" + _value("storage")
    main += _global("torch", "BFloat16Storage") + _value("0") + _value("cpu") + _value(3) + b"tQ"
    main += (
        _value(0)
        + _value((3,))
        + _value((1,))
        + b"\x89"
        + _global("collections", "OrderedDict")
        + b")RtRu."
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", main)
        z.writestr("archive/data/0", bf16.tobytes())
    (tmp_path / "bf16.pth").write_bytes(buf.getvalue())
    got = load_state_dict(tmp_path / "bf16.pth")["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
