"""What the command-line entry points print: the library's warnings in short."""

from __future__ import annotations

import warnings

import keras_species.data.prepare as prepare_mod
from keras_species.terminal import is_own_code, use_short_warnings


def test_own_warnings_print_short_and_others_keep_their_location(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after
    use_short_warnings()
    own = warnings.formatwarning("rows skipped", UserWarning, prepare_mod.__file__, 125, "code")
    assert own == "warning: rows skipped\n"
    assert warnings.formatwarning("old", DeprecationWarning, prepare_mod.__file__, 1) == "DeprecationWarning: old\n"
    foreign = warnings.formatwarning("few members", UserWarning, warnings.__file__, 812, "code")
    assert warnings.__file__ in foreign and "UserWarning: few members" in foreign


def test_is_own_code():
    assert is_own_code(prepare_mod.__file__)
    assert not is_own_code(warnings.__file__) and not is_own_code("<string>")


def test_a_process_killed_outright_keeps_the_lines_it_printed_to_a_pipe():
    # before: stdout to a pipe or a log file was block-buffered, and a recipe killed with SIGKILL
    # lost its first printed lines (its data summary)
    import os
    import subprocess
    import sys

    code = ("import os, signal; from keras_species.terminal import print_line_by_line; "
            "print_line_by_line(); print('300 images, 6 classes'); os.kill(os.getpid(), signal.SIGKILL)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # Python's own buffering
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout
    assert out == "300 images, 6 classes\n"
    lost = code.replace("print_line_by_line(); ", "")
    assert subprocess.run([sys.executable, "-c", lost], capture_output=True, text=True, env=env).stdout == ""
