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


# ---------------------------------------------------------------------------------- parser
def _audit_like_parser():
    from keras_species.terminal import SuggestingArgumentParser

    p = SuggestingArgumentParser(prog="keras-species audit")
    p.add_argument("--policy", choices=("convert", "drop_non_rgb"), default="convert")
    p.add_argument("--on-missing", choices=("error", "skip"), default=None)
    p.add_argument("--image-size", type=int)
    p.add_argument("--shard-size", type=int)
    p.add_argument("--out")
    return p


def test_a_mistyped_option_names_the_closest_ones(capsys):
    # before: argparse said `unrecognized arguments: --polcy` and nothing more
    import pytest

    p = _audit_like_parser()
    with pytest.raises(SystemExit) as stop:
        p.parse_args(["--polcy", "convert"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: keras-species audit")
    assert err.endswith("keras-species audit: error: unrecognized arguments: --polcy convert (did you "
                        "mean --policy?); see --help\n")
    with pytest.raises(SystemExit):
        p.parse_args(["--size=3", "--ot", "x"])  # a word of two options, a close spelling
    assert ("unrecognized arguments: --size=3 --ot x (did you mean --image-size or --shard-size or "
            "--out?); see --help") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        p.parse_args(["--zzzz"])  # nothing close: argparse's words, and --help
    assert capsys.readouterr().err.endswith("error: unrecognized arguments: --zzzz; see --help\n")
    assert p.parse_args(["--pol", "drop_non_rgb"]).policy == "drop_non_rgb"  # abbreviations still work


def test_an_invalid_choice_names_the_closest_choices(capsys):
    import pytest

    p = _audit_like_parser()
    for given, meant in (("conver", "'convert'"), ("SKIP", "'skip'")):
        with pytest.raises(SystemExit) as stop:
            p.parse_args(["--policy" if given == "conver" else "--on-missing", given])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert f"invalid choice: '{given}' (did you mean {meant}?); choose from " in err
    with pytest.raises(SystemExit):
        p.parse_args(["--policy", "zzz"])
    assert capsys.readouterr().err.endswith(
        "error: argument --policy: invalid choice: 'zzz'; choose from 'convert', 'drop_non_rgb'\n")


def test_close_options_and_the_messages():
    from keras_species.terminal import (
        close_options,
        invalid_choice_message,
        unrecognized_arguments_message,
    )

    p = _audit_like_parser()
    assert close_options(p, "--polcy") == ["--policy"]
    assert close_options(p, "--policy=x") == []  # the option itself is not suggested
    assert close_options(p, "polcy") == [] and close_options(p, "-x") == []  # not a --option
    assert unrecognized_arguments_message(p, ["extra"]) == "unrecognized arguments: extra; see --help"
    assert invalid_choice_message(3, [1, 2]) == "invalid choice: 3; choose from '1', '2'"
