"""The flags every recipe shares: ``--ratios`` read and checked the same way in each."""

from __future__ import annotations

import dataclasses
import importlib
from typing import get_type_hints

import pytest

RECIPES_WITH_RATIOS = ("backbone_comparison", "convnext_transfer", "feature_classifiers",
                       "inaturalist_vgg16", "multilabel_resnet", "quickstart", "scratch_cnn")


def _config_class(name: str) -> type:
    module = importlib.import_module(f"recipes.{name}")
    classes = [c for c in vars(module).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
               and c.__module__ == module.__name__ and "ratios" in {f.name for f in dataclasses.fields(c)}]
    assert len(classes) == 1, (name, classes)
    return classes[0]


@pytest.mark.parametrize("name", RECIPES_WITH_RATIOS)
def test_every_recipe_reads_ratios_as_one_or_more_numbers(name):
    # before: feature_classifiers and backbone_comparison took exactly three, so two ratios
    # got argparse's `expected 3 arguments` (after its usage block) instead of the recipes' check
    assert get_type_hints(_config_class(name))["ratios"] == tuple[float, ...]


@pytest.mark.parametrize("name", ["backbone_comparison", "feature_classifiers"])
@pytest.mark.parametrize("ratios, message", [
    (["0.8", "0.2"], "two ratios make train and val only"),
    (["0.7", "0.1", "0.1", "0.1"], "give three numbers above 0 that sum to 1"),
])
def test_wrong_ratios_get_the_recipes_one_line(name, ratios, message, tmp_path, capsys):
    # before: `expected 3 arguments` for two, `unrecognized arguments: 0.1` for four
    module = importlib.import_module(f"recipes.{name}")
    try:
        code = module.main(["--ratios", *ratios, "--out", str(tmp_path / "runs")])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and "usage:" not in err and err.count("\n") == 1, err
    assert f"--ratios {' '.join(ratios)}: {message}" in err
    assert not (tmp_path / "runs").exists()
