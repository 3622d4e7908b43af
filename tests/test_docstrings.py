"""Every docstring example that is not marked ``# doctest: +SKIP`` runs and prints what it says.

The examples are the README of each function; nothing ran them before stop 33, and four had
drifted (an optimizer's name numbered by the process, a float32 threshold printed in full, a
message cut one character short, an example reading a file that is not there).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import keras_species
import recipes


def _modules() -> list[str]:
    names = []
    for package in (keras_species, recipes):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test, out=lambda text: None)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) of {name} failed: run " \
                                f"python -m pytest --doctest-modules on its file to see them"
