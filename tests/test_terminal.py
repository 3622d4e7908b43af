"""What the command-line entry points print: the library's warnings in short."""

from __future__ import annotations

import warnings

import pytest

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
    assert err == ("keras-species audit: error: unrecognized arguments: --polcy convert (did you "
                   "mean --policy?); see --help\n")
    with pytest.raises(SystemExit):
        p.parse_args(["--size=3", "--ot", "x"])  # a word of two options, a close spelling
    assert ("unrecognized arguments: --size=3 --ot x (did you mean --image-size or --shard-size or "
            "--out?); see --help") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        p.parse_args(["--zzzz"])  # nothing close: argparse's words, and --help
    assert capsys.readouterr().err.endswith("error: unrecognized arguments: --zzzz; see --help\n")
    with pytest.raises(SystemExit):  # an abbreviation is an unknown option (allow_abbrev=False)
        p.parse_args(["--pol", "drop_non_rgb"])
    assert "unrecognized arguments: --pol drop_non_rgb (did you mean --policy?)" in capsys.readouterr().err


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
        "error: argument --policy: invalid choice: 'zzz'; choose from 'convert', 'drop_non_rgb'; see --help\n")


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


def _one_line_error(capsys, parser, argv) -> str:
    """The error ``parser`` prints for ``argv``, checked to be one line with exit code 2."""
    import pytest

    with pytest.raises(SystemExit) as stop:
        parser.parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"{parser.prog}: error: ") and err.endswith("; see --help\n"), err
    return err


def test_every_parser_error_is_one_line_without_the_usage_block(capsys):
    # before: argparse's usage block (dozens of lines for a recipe), then the error
    p = _audit_like_parser()
    p.add_argument("--ratios", type=float, nargs=3)
    p.add_argument("--needed", required=True)
    assert "the following arguments are required: --needed" in _one_line_error(capsys, p, [])
    assert "invalid int value: 'x'" in _one_line_error(capsys, p, ["--needed", "1", "--image-size", "x"])
    assert "--ratios: expected 3 arguments" in _one_line_error(
        capsys, p, ["--needed", "1", "--ratios", "0.8", "0.2"])
    assert "invalid choice: 'conver'" in _one_line_error(capsys, p, ["--needed", "1", "--policy", "conver"])
    # a message that already ends with the pointer to --help keeps one
    assert _one_line_error(capsys, p, ["--needed", "1", "--zzz"]).count("see --help") == 1


def test_help_still_prints_the_whole_usage(capsys):
    import pytest

    with pytest.raises(SystemExit) as stop:
        _audit_like_parser().parse_args(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: keras-species audit") and "--shard-size" in out and "--on-missing" in out


def test_a_prefix_of_options_is_unknown_not_ambiguous(capsys):
    # before: `ambiguous option: --backbone could match --backbones, --backbone-plots`, after the usage
    import argparse

    from keras_species.terminal import SuggestingArgumentParser

    p = SuggestingArgumentParser(prog="python -m recipes.backbone_comparison")
    p.add_argument("--backbones", nargs="+")
    p.add_argument("--backbone-plots", action=argparse.BooleanOptionalAction)
    err = _one_line_error(capsys, p, ["--backbone", "efficientnet_lite0"])
    assert ("error: unrecognized arguments: --backbone efficientnet_lite0 (did you mean --backbones or "
            "--backbone-plots?); see --help") in err  # the --no- twin is not named again
    p = SuggestingArgumentParser(prog="p")
    p.add_argument("--backbones")
    err = _one_line_error(capsys, p, ["--backbone", "x"])  # one prefix: not expanded silently
    assert "unrecognized arguments: --backbone x (did you mean --backbones?)" in err


def test_near_choices_and_options_are_found_across_dash_underscore_and_case():
    from keras_species.terminal import close_options, invalid_choice_message

    # before: `per-tag` was too far from `per_class` for difflib, so no `did you mean`
    assert "(did you mean 'per_class'?)" in invalid_choice_message("per-tag", ["global", "per_class", "fixed"])
    assert "'flips'?); choose" in invalid_choice_message("flip", ["none", "hflip", "flips", "five_crop"])
    assert "(did you mean 'skip'?)" in invalid_choice_message("SKIP", ["error", "skip"])
    assert "(did you mean 'per_class'?)" in invalid_choice_message("PER-CLASS", ["global", "per_class"])
    p = _audit_like_parser()
    p.add_argument("--top-k", type=int)
    assert close_options(p, "--top_k") == ["--top-k"]
    assert close_options(p, "--Image_Size") == ["--image-size"]


def test_a_value_left_over_names_the_option_it_belongs_to(capsys):
    # before: `unrecognized arguments: exp/x.keras` (or only `--out` missing), no word of --out
    from keras_species.terminal import SuggestingArgumentParser, unrecognized_arguments_message

    export = SuggestingArgumentParser(prog="keras-species export")
    export.add_argument("model", metavar="MODEL")
    export.add_argument("--out", required=True)
    err = _one_line_error(capsys, export, ["m.keras", "exp/x.keras"])
    assert err == ("keras-species export: error: unrecognized arguments: exp/x.keras (did you mean "
                   "--out exp/x.keras?); see --help\n")
    assert "required: --out" in _one_line_error(capsys, export, ["m.keras"])  # nothing left over
    assert export.parse_args(["m.keras", "--out", "x.keras"]).out == "x.keras"
    recipe = SuggestingArgumentParser(prog="python -m recipes.quickstart")
    recipe.add_argument("--data")
    recipe.add_argument("--out")
    assert unrecognized_arguments_message(recipe, ["photos/"]) == (
        "unrecognized arguments: photos/ (did you mean --data photos/?); see --help")
    semi = SuggestingArgumentParser(prog="python -m recipes.fish_semisupervised")
    semi.add_argument("--labelled")
    semi.add_argument("--out")  # before: no hint, the recipe has no --data
    assert unrecognized_arguments_message(semi, ["fish/"]) == (
        "unrecognized arguments: fish/ (did you mean --labelled fish/?); see --help")
    # a number left over is one value too many for a flag (`--image-size 224 224 224`), not data
    assert unrecognized_arguments_message(recipe, ["224"]) == "unrecognized arguments: 224; see --help"
    # an option left over is not given a value's hint
    assert "--out" not in unrecognized_arguments_message(export, ["--zzz", "x"])


def test_command_line_error_is_one_line_ending_in_see_help():
    from keras_species.terminal import command_line_error

    assert command_line_error("keras-species split", "--ratios 0.9 0.2 0.1: sum to 1.2") == (
        "keras-species split: error: --ratios 0.9 0.2 0.1: sum to 1.2; see --help")
    assert command_line_error("demo", "unknown --x; see --help") == "demo: error: unknown --x; see --help"


def test_a_parser_with_a_required_option_converts_each_value_once(capsys):
    # before: parse_args parsed twice when an option was required (once to find unknown
    # arguments before the missing option), so every type converter ran twice
    from keras_species.terminal import SuggestingArgumentParser

    seen = []

    def count(text):
        seen.append(text)
        return int(text)

    parser = SuggestingArgumentParser(prog="keras-species export")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--out", required=True, default="unused")
    parser.add_argument("--size", type=count)
    parsed = parser.parse_args(["m.keras", "--size", "3", "--out", "x.keras"])
    assert seen == ["3"] and parsed.size == 3 and parsed.out == "x.keras"
    seen.clear()
    err = _one_line_error(capsys, parser, ["m.keras", "--size", "4"])  # --out missing
    assert err == ("keras-species export: error: the following arguments are required: --out; "
                   "see --help\n")
    assert seen == ["4"]
    out = next(a for a in parser._actions if a.dest == "out")
    assert out.required and out.default == "unused"  # as they were


def test_help_shows_a_required_option_as_required(capsys):
    # before: parse_args made required options optional for its parse, and --help, printed
    # during it, showed [--out OUT]
    from keras_species.terminal import SuggestingArgumentParser

    parser = SuggestingArgumentParser(prog="demo")
    parser.add_argument("--out", required=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    usage = capsys.readouterr().out
    assert "--out OUT" in usage and "[--out OUT]" not in usage
    assert parser.parse_args(["--out", "x"]).out == "x"
    assert "[--out OUT]" not in parser.format_usage()


def test_display_width_counts_no_column_for_marks_and_joiners():
    # a first version counted Thai vowel signs (combining class 0) and zero-width joiners as one
    from keras_species.terminal import display_width

    assert display_width("ปลาหมึก") == 6 and display_width("a\u200db") == 2
    assert display_width("日本 鯛") == 7 and display_width("cafe\u0301") == 4
    import unicodedata

    assert display_width(unicodedata.normalize("NFD", "각시붕어")) == 8  # macOS's Hangul


def test_audit_and_recipe_names_of_one_setting_suggest_each_other():
    # before: `--drop-list x.txt` on a recipe (whose flag is --drop) and `audit --clean-policy`
    # (whose flag is --policy) got no hint
    import argparse

    from keras_species.terminal import close_options

    recipe = argparse.ArgumentParser()
    recipe.add_argument("--drop")
    recipe.add_argument("--clean-policy")
    audit = argparse.ArgumentParser()
    audit.add_argument("--drop-list")
    audit.add_argument("--policy")
    assert close_options(recipe, "--drop-list") == ["--drop"]
    assert close_options(audit, "--clean-policy")[0] == "--policy"


def test_stdout_broken_tells_a_closed_reader_from_an_open_one():
    # a BrokenPipeError of another pipe or socket (a logger's) was taken for a closed stdout
    import subprocess
    import sys

    code = ("import os, sys\n"
            "from keras_species.terminal import stdout_broken\n"
            "r, w = os.pipe(); os.dup2(w, 1)\n"
            "open_reader = stdout_broken()\n"
            "os.close(r)\n"
            "sys.stderr.write(f'{open_reader} {stdout_broken()}')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().endswith("False True"), done.stderr


def test_odd_environments_are_named_in_one_line(monkeypatch, capsys, tmp_path):
    # KERAS_BACKEND naming a backend not installed gave a 54-line traceback; a deleted working
    # folder a bare "[Errno 2] No such file or directory"
    import os

    from keras_species import cli
    from keras_species.terminal import keras_backend_problem, working_folder_problem

    assert keras_backend_problem({"KERAS_BACKEND": "tensorflow"}) is None
    assert "jax is not installed" in (keras_backend_problem({"KERAS_BACKEND": "jax"}) or "jax is not installed")
    monkeypatch.setenv("KERAS_BACKEND", "nosuch")
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err.startswith("keras-species models: KERAS_BACKEND=nosuch is not a backend Keras knows")
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text('{"backend": "nosuch"}')
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert "keras.json's \"backend\": nosuch" in keras_backend_problem()

    def gone():
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(os, "getcwd", gone)
    assert working_folder_problem().startswith("the working folder no longer exists")
    assert cli.main(["split", "demo", "--out", "/tmp/x.csv"]) == 2
    assert "the working folder no longer exists (deleted after cd into it?)" in capsys.readouterr().err


def test_missing_glyph_warnings_are_said_once(capsys):
    # matplotlib warns a line per character its font lacks, blamed on our plotting call (9 lines
    # for one audit of CJK and emoji class names)
    from keras_species.terminal import _short_format

    first = _short_format(UserWarning("Glyph 39770 (\\N{CJK UNIFIED IDEOGRAPH-9B5A}) missing from font(s) DejaVu Sans."),
                          UserWarning, __file__, 1)
    again = _short_format(UserWarning("Glyph 128031 missing from font(s) DejaVu Sans."), UserWarning, __file__, 1)
    assert first.startswith("warning: some names hold characters the plots' font lacks") and again == ""


def test_an_ascii_output_escapes_what_it_cannot_show(tmp_path):
    # split's table stopped halfway ("'ascii' codec can't encode character"), a finished recipe
    # ended in a traceback
    import os
    import subprocess
    import sys

    from PIL import Image

    for c in ("café", "eel"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / "d" / c / f"{i}.png")
    proc = subprocess.run([sys.executable, "-m", "keras_species", "split", str(tmp_path / "d"), "--ratios",
                           "0.5", "0.5", "--out", str(tmp_path / "s.csv")], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"caf\\xe9" in proc.stdout


def test_backend_advice_fits_where_the_backend_was_set(tmp_path):
    # the numpy backend (which imports jax) passed the check and crashed; a keras.json backend got
    # "unset KERAS_BACKEND", a variable that was not set
    import importlib.util

    from keras_species.terminal import keras_backend_problem

    if importlib.util.find_spec("jax") is None:
        assert "jax is not installed" in keras_backend_problem({"KERAS_BACKEND": "numpy"})
    (tmp_path / "keras.json").write_text('{"backend": "nosuch"}')
    problem = keras_backend_problem({"KERAS_HOME": str(tmp_path)})
    assert f'set "backend": "tensorflow" in {tmp_path / "keras.json"}' in problem and "unset" not in problem
