"""TensorFlow's start-up lines left out at the entry points, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keras_species import cli
from keras_species.tensorflow_start import CUDA_LINES, START_UP_LINES, native_stderr_without


def test_known_lines_are_left_out_and_the_rest_kept_in_order(capfd):
    with native_stderr_without(["noise"]):
        os.write(2, b"noise one\nkept 1\n")
        os.write(2, b"more noise\nkept 2")  # the last line without its end is kept too
    assert capfd.readouterr().err == "kept 1\nkept 2"


def test_an_error_in_the_block_writes_every_line_back(capfd):
    with pytest.raises(RuntimeError), native_stderr_without(["noise"]):
        os.write(2, b"noise\nkept\n")
        raise RuntimeError("import failed")
    assert capfd.readouterr().err == "noise\nkept\n"


def _start_tensorflow(level: str) -> str:
    code = "from keras_species.tensorflow_start import start_tensorflow_quietly as s; s(); print('ok')"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    return done.stderr


def test_tensorflow_starts_without_its_start_up_lines():
    noise = START_UP_LINES + CUDA_LINES
    assert not [line for line in _start_tensorflow("2").splitlines() if any(n in line for n in noise)]
    # asked for every log line, they are there: TensorFlow does print them here
    assert any(n in _start_tensorflow("0") for n in START_UP_LINES)


def test_only_the_subcommands_that_use_tensorflow_start_it(monkeypatch, tmp_path):
    import keras_species.tensorflow_start as start

    started = []
    monkeypatch.setattr(start, "start_tensorflow_quietly", lambda: started.append(True))
    assert cli.main(["split", "demo", "--out", str(tmp_path / "s.csv")]) == 0
    assert started == []
    assert cli.main(["models"]) == 0
    assert started == [True]
