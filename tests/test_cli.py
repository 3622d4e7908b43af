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
        "'convert'?); choose from 'convert', 'drop_non_rgb'\n")


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
    assert "keras-species: unknown command 'audti' (did you mean audit?); choose from audit, " in err
    assert cli.main(["zzz"]) == 2
    assert "unknown command 'zzz'; choose from " in capsys.readouterr().err
