"""Shared fixtures: tiny generated image sets (made with PIL in a temp folder) and shared data."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _class_image(rng: np.random.Generator, k: int, size: tuple[int, int]) -> np.ndarray:
    """An RGB image whose colour and stripe pattern depend on class ``k`` (learnable)."""
    w, h = size
    base = np.array([(k * 97) % 256, (k * 53 + 80) % 256, (k * 29 + 160) % 256], np.float32)
    img = np.ones((h, w, 3), np.float32) * base
    stripes = (np.arange(w) // (2 + k)) % 2
    img[:, stripes == 1] *= 0.5
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cod", "eel", "ray"),
    per_class: int = 6,
    size: tuple[int, int] = (40, 32),
    groups_per_class: int = 3,
    seed: int = 0,
    ext: str = "png",
) -> Path:
    """Write ``root/<class>/fish_<group>_<frame>.<ext>`` images; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(classes):
        (root / name).mkdir(exist_ok=True)
        for i in range(per_class):
            group = k * 100 + i % groups_per_class
            arr = _class_image(rng, k, size)
            Image.fromarray(arr).save(root / name / f"fish_{group}_{i}.{ext}")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three classes x 6 PNG images of 40x32 px, file names ``fish_<group>_<i>.png``."""
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has just ended (for temporary files left by a killed run)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def source_loads(monkeypatch) -> list[str]:
    """Count the readings of data: every ``sources.load`` call appends its source (as a str)."""
    from keras_species.data import sources

    calls: list[str] = []
    load = sources.load

    def counted(source, **kw):
        calls.append(str(source))
        return load(source, **kw)

    monkeypatch.setattr(sources, "load", counted)
    return calls


@pytest.fixture(scope="module")
def eager_tf():
    """Run Keras train/predict steps eagerly for the tests of one module.

    The end-to-end tests train on a few dozen images for an epoch or two: tracing each model's
    train, test and predict functions costs far more than running those few batches eagerly.
    Module-scoped, so module-scoped fixtures that train (e.g. one shared tiny run) get it too.
    """
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def smooth_image(height: int, width: int) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 image of gradients and stripes: it compresses like a photo
    (JPEG at any scale), unlike noise."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 97 * 2], -1).astype(np.uint8)


def write_png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header says ``width`` x ``height`` (PIL reads the size at open; no pixels): an
    image over the decompression-bomb limit without its megabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


@contextlib.contextmanager
def training_killed_after_one_epoch(monkeypatch) -> Iterator[list[float]]:
    """Inside the block, ``training.plan.train`` stops with a Ctrl-C (``KeyboardInterrupt``) at
    the end of its first epoch, as a user's kill would; yields the list that receives each
    killed call's seconds (what the run's training clock should have kept).
    """
    import keras

    from keras_species.training import plan

    real_train = plan.train
    killed: list[float] = []

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    def train_killed(*args, **kw):
        started = time.perf_counter()
        kw["extra_callbacks"] = [*kw.get("extra_callbacks", ()), Kill()]
        try:
            return real_train(*args, **kw)
        finally:
            killed.append(time.perf_counter() - started)

    monkeypatch.setattr(plan, "train", train_killed)
    try:
        yield killed
    finally:
        monkeypatch.setattr(plan, "train", real_train)


def pytest_collection_modifyitems(items) -> None:
    """Mark every test that asks for ``shared_data`` (``pytest -m shared_data`` selects them
    all; before, only those marked by hand)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)
