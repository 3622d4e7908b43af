"""`keras-species`: what a mistyped command, option or choice is answered with.

The subcommands' own behaviour is tested beside them (tests/data/test_audit.py, test_predict.py...).
"""

from __future__ import annotations

import importlib
import re

import pytest

from keras_species import cli


def test_a_mistyped_option_of_audit_names_the_option(capsys):
    # before: `unrecognized arguments: --polcy` with no suggestion
    with pytest.raises(SystemExit) as stop:
        cli.main(["audit", "--polcy", "convert"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert re.search(r"keras-species audit: error: unrecognized arguments: --polcy( convert)? "
                     r"\(did you mean --policy\?\); see --help\n$", err)


def test_an_invalid_choice_names_the_closest_choice(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["audit", "--policy", "conver"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.endswith(
        "keras-species audit: error: argument --policy: invalid choice: 'conver' (did you mean "
        "'convert'?); choose from 'convert', 'drop_non_rgb'; see --help\n")


def _typo(option: str) -> str:
    """``--policy`` -> ``--policyx``: no option's abbreviation, close to the option itself."""
    return option + "x"


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_names_the_option_meant(name, capsys):
    from keras_species.terminal import SuggestingArgumentParser

    module = importlib.import_module(cli.COMMANDS[name][0])
    parser = SuggestingArgumentParser(prog=f"keras-species {name}")
    module.configure_parser(parser)
    stubs = []  # the required arguments, so that the mistyped option is the error
    for action in parser._actions:
        if action.option_strings and not action.required or action.nargs in ("?", "*"):
            continue
        values = ["1"] * (action.nargs if isinstance(action.nargs, int) else 1)
        stubs += [*action.option_strings[:1], *values]
    options = [o for a in parser._actions for o in a.option_strings
               if o.startswith("--") and o != "--help"]
    assert options, name
    for option in options:
        with pytest.raises(SystemExit) as stop:
            cli.main([name, *stubs, _typo(option)])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        hint = re.search(r"unrecognized arguments: .*\(did you mean (.*)\?\); see --help", err)
        assert hint and option in hint.group(1).split(" or "), (name, option, err)


def test_a_mistyped_command_names_the_command(capsys):
    assert cli.main(["audti"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-species: error: unknown command 'audti' (did you mean audit?); "
                          "choose from audit, ")
    assert err.endswith("; see --help\n") and err.count("\n") == 1  # before: the usage line first
    assert cli.main(["zzz"]) == 2
    assert "unknown command 'zzz'; choose from " in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["predict", "m.keras", "photos", "--top_k", "3"],
     "keras-species predict: error: unrecognized arguments: --top_k 3 (did you mean --top-k?); see --help\n"),
    (["export", "m.keras", "--out", "x.tflite", "--quantise", "int8"],
     "keras-species export: error: unrecognized arguments: --quantise int8 (did you mean --quantize?); "
     "see --help\n"),
    (["export", "m.keras", "exp/x.keras"],
     "keras-species export: error: unrecognized arguments: exp/x.keras (did you mean --out exp/x.keras?); "
     "see --help\n"),
])
def test_a_subcommand_error_is_one_line(argv, message, capsys):
    # before: argparse's whole usage block, then the error; the output given bare was told only
    # that --out is missing
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err == message


def test_a_subcommand_help_is_still_the_whole_help(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["export", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: keras-species export") and "--quantize" in out and "--out" in out


def _fake_command(monkeypatch, error: Exception) -> None:
    """A subcommand ``fake`` whose run raises ``error``."""
    import importlib.machinery
    import sys
    import types

    module = types.ModuleType("fake_command")
    module.__spec__ = importlib.machinery.ModuleSpec("fake_command", None)
    module.configure_parser = lambda parser: parser.add_argument("--ratios", nargs="+", type=float)

    def run_cli(args):
        raise error

    module.run_cli = run_cli
    monkeypatch.setitem(sys.modules, "fake_command", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_command", "a command of the test"))


def test_a_refused_flag_value_reads_as_the_parsers_errors(monkeypatch, capsys):
    # before: `keras-species split: ratios must ...`, with no `error:` and no `see --help`,
    # unlike a value argparse refuses (`--ratios x`)
    from keras_species.recipe import SettingError

    _fake_command(monkeypatch, SettingError("--ratios 0.9 0.2 0.1: give numbers above 0 that sum to 1"))
    assert cli.main(["fake", "--ratios", "0.9", "0.2", "0.1"]) == 2
    assert capsys.readouterr().err == ("keras-species fake: error: --ratios 0.9 0.2 0.1: give "
                                       "numbers above 0 that sum to 1; see --help\n")
    with pytest.raises(SystemExit) as stop:
        cli.main(["fake", "--ratios", "x"])
    assert stop.value.code == 2
    assert re.fullmatch(r"keras-species fake: error: argument --ratios: .*; see --help\n",
                        capsys.readouterr().err)


def test_a_data_error_is_not_a_flag_error(monkeypatch, capsys):
    from keras_species.data.manifest import ManifestError

    _fake_command(monkeypatch, ManifestError("photos/cod/a.jpg: not an image"))
    assert cli.main(["fake"]) == 2
    assert capsys.readouterr().err == "keras-species fake: photos/cod/a.jpg: not an image\n"


def test_help_and_the_data_commands_run_without_tensorflow(tmp_path):
    # before: every command, even --help, imported Keras and TensorFlow first (6-7 s here)
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from keras_species.cli import main; "
            f"codes = [main(['--help']), main(['split', 'demo', '--out', {str(tmp_path / 's.csv')!r}]), "
            f"main(['runs', {str(tmp_path)!r}]), main(['audti'])]; "
            "print(codes, 'keras' in sys.modules, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 0, 2] False False"


def test_a_closed_output_pipe_ends_a_command_quietly(tmp_path):
    # `keras-species split ... | head -1` printed "[Errno 32] Broken pipe" and exited 2
    import subprocess
    import sys

    (tmp_path / "runs").mkdir()
    code = ("import sys, os\n"
            "from keras_species import cli\n"
            "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"  # stdout: a pipe nobody reads
            "sys.exit(cli.main(['runs', sys.argv[1]]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "runs")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 141 and "Broken pipe" not in done.stderr, done.stderr
