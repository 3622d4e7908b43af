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
