"""Smoke tests of the pipeline benchmarks: they run on a tiny folder and print their tables."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

from tests.conftest import write_image_folder

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as when run as `python benchmarks/NAME.py`


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipeline_throughput_prints_ratios(tmp_path, capsys):
    root = write_image_folder(tmp_path / "imgs", per_class=24)
    assert _load("pipeline_throughput").main([str(root), "--image-size", "32", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "cached epoch yields the first epoch's pixels: yes" in out
    assert out.count("target >=") == 3
    assert out.count("x [") == 3  # the paired-by-round ratios with their range
    assert "faults/image" in out and ", malloc " in out
    assert "round 1 alone (fresh memory): first epoch / bare " in out
    assert out.count("page faults (") == 2  # their cost on this machine, median round and round 1
    assert out.count("kernel time, ") == 2  # the kernel time measured, median round and round 1
    setup = next(line for line in out.splitlines() if "set-up before the first batch" in line)
    for step in ("listing", "check + build", "iterator", "first batch", "; bare build"):
        assert step in setup, setup


def test_pipeline_breakdown_prints_every_row(tmp_path, capsys):
    root = write_image_folder(tmp_path / "imgs", per_class=24)
    assert _load("pipeline_breakdown").main([str(root), "--image-size", "32", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("keras-like", "uint8 batches", "+ cache", "+ cache + float32", "make_dataset"):
        assert f"\n  {row} " in out


def test_pipeline_breakdown_decodes_mixed_kinds_and_leaves_bad_files_out(tmp_path, capsys):
    # several decoders (a kinds column), a JPEG decoded at a reduced scale, a file the check drops
    from PIL import Image

    root = write_image_folder(tmp_path / "imgs", per_class=6)
    folder = next(p for p in sorted(root.iterdir()) if p.is_dir())
    Image.new("RGB", (200, 150), (200, 40, 10)).save(folder / "big.jpg", quality=90)
    Image.new("P", (40, 30), 3).save(folder / "palette.gif")
    (folder / "broken.png").write_bytes(b"not an image")
    n = sum(1 for p in root.rglob("*") if p.is_file()) - 1
    assert _load("pipeline_breakdown").main([str(root), "--image-size", "32", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert f"({n} images)" in out
    assert "\n  make_dataset " in out


def test_benchmarks_refuse_a_missing_folder(tmp_path):
    assert _load("pipeline_breakdown").main([str(tmp_path / "none")]) == 2


def test_jax_backend_portability_runs_every_model_kind():
    """Runs only where JAX is installed (not in CI): the check meant for an accelerator machine."""
    pytest.importorskip("jax")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "jax_backend.py"), "--backbones", "resnet18",
         "--portability-size", "32", "--skip-throughput"],
        capture_output=True, text=True, timeout=1200, env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout
    assert re.search(r"\n  (\d+) of \1 ran and reloaded", done.stdout), done.stdout
