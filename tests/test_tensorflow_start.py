"""TensorFlow's start-up lines left out at the entry points, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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


def test_ctrl_c_in_the_block_leaves_the_known_lines_out_still(capfd):
    # Ctrl-C during TensorFlow's import wrote every start-up line back before "interrupted"
    with pytest.raises(KeyboardInterrupt), native_stderr_without(["noise"]):
        os.write(2, b"noise\nkept\n")
        raise KeyboardInterrupt
    assert capfd.readouterr().err == "kept\n"


def test_ctrl_c_while_a_command_imports_is_one_line(monkeypatch, capsys):
    import importlib

    from keras_species import cli

    def interrupted(name, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert cli.main(["models"]) == 130
    assert capsys.readouterr().err == "keras-species models: interrupted\n"


def _first_import(level: str, module: str) -> str:
    """Standard error of a process that quiets TensorFlow's start, then imports ``module``."""
    code = ("import sys; from keras_species.tensorflow_start import quiet_tensorflow_start as q; "
            f"q(); assert 'tensorflow' not in sys.modules; import {module}; "
            "import tensorflow as tf; print(tf.constant(2).numpy())")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr
    return done.stderr


@pytest.mark.parametrize("module", ["tensorflow", "keras_species.training.plan"])
def test_tensorflows_first_import_leaves_out_its_start_up_lines(module):
    # whichever module imports TensorFlow first (keras_species' own import Keras at their top)
    noise = START_UP_LINES + CUDA_LINES
    assert not [line for line in _first_import("2", module).splitlines() if any(n in line for n in noise)]


def test_asked_for_every_log_line_they_are_there():
    # so the test above can fail: TensorFlow does print them on this machine
    assert any(n in _first_import("0", "keras") for n in START_UP_LINES)


def test_the_entry_points_quiet_it_without_importing_it(tmp_path):
    # a data command still never imports TensorFlow
    code = ("import sys; from keras_species import cli; "
            f"assert cli.main(['split', 'demo', '--out', {str(tmp_path / 's.csv')!r}]) == 0; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "from keras_species.tensorflow_start import _QuietFirstImport as Q; "
            "assert any(isinstance(f, Q) for f in sys.meta_path)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
