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


@pytest.mark.parametrize("name", RECIPES_WITH_RATIOS)
def test_a_refused_flag_value_reads_as_argparses_errors(name, tmp_path, capsys):
    # before: the recipes' checks printed `PROG: error: --ratios ...` without the `; see --help`
    # that argparse's errors (`--ratios x`) end in
    module = importlib.import_module(f"recipes.{name}")
    out = ["--out", str(tmp_path / "runs")]
    assert module.main(["--ratios", "0.5", "0.5", "0.5", *out]) == 2
    assert capsys.readouterr().err == (
        f"python -m recipes.{name}: error: --ratios 0.5 0.5 0.5: give three numbers above 0 that "
        "sum to 1: train, val, test (e.g. 0.7 0.15 0.15); see --help\n")
    with pytest.raises(SystemExit) as stop:
        module.main(["--ratios", "x", *out])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m recipes.{name}: error: argument --ratios: ") and err.endswith(
        "; see --help\n") and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_an_image_size_below_the_backbones_reads_as_a_flag_error(tmp_path, capsys):
    # before: `... give an image size of 32 or more (--image-size)`, a ValueError's line, without
    # the `; see --help` of every other refused flag value
    from recipes import quickstart

    out = tmp_path / "runs"
    code = quickstart.main(["--backbone", "vgg16", "--weights", "none", "--image-size", "16",
                            "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (
        "python -m recipes.quickstart: error: vgg16 needs an input of at least 32×32 px; got "
        "16×16: give an image size of 32 or more (--image-size); see --help\n")
    assert not out.exists()


def test_out_inside_the_folder_of_a_saved_manifest_or_of_labelled_data_is_refused_first(tmp_path, capsys):
    # only --data was checked, as itself: a saved manifest's JSON (its images in a folder) and
    # fish_semisupervised's --labelled passed, and the run folder was made inside the data
    # before prepare_data refused its "audit_dir"
    from keras_species.data import sources
    from recipes import fish_semisupervised, quickstart
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "p", classes=("cod", "eel"), per_class=4)
    sources.load(data).to_json(data / "clean.json")
    code = quickstart.main(["--data", str(data / "clean.json"), "--out", str(data / "runs")])
    assert code == 2 and "--out" in capsys.readouterr().err
    code = fish_semisupervised.main(["--labelled", str(data), "--out", str(data / "runs")])
    assert code == 2 and "is inside the data folder" in capsys.readouterr().err
    assert not (data / "runs").exists()


def test_split_given_of_data_without_a_split_is_refused_before_the_run_folder(tmp_path, capsys):
    # it was refused after the run folder and the audit, in `split --given`'s words (--given)
    from recipes import quickstart
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=4)
    code = quickstart.main(["--data", str(data), "--split", "given", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "--split given: --data" in err and "has no split of its own" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["quickstart", "convnext_transfer", "backbone_comparison"])
@pytest.mark.parametrize("flags, message", [
    (["--head-epochs", "0", "--fine-tune-epochs", "0"],
     "--fine-tune-epochs 0: and --head-epochs 0: nothing to train; give one of them 1 or more"),
    (["--unfreeze-n", "3"], "--unfreeze-n 3: counts the units that --unfreeze last_n trains, but "
                            "--unfreeze is "),
    (["--unfreeze", "last_n"], "--unfreeze last_n: trains the backbone's last --unfreeze-n units: "
                               "give --unfreeze-n N (1 or more)"),
])
def test_flags_that_do_not_fit_together_read_as_flag_errors(name, flags, message, tmp_path, capsys):
    # they failed after TensorFlow's import (4 s), in Python's names ("head_epochs and
    # fine_tune_epochs are both 0", "unfreeze='last_n' needs unfreeze_n >= 1"), without `see --help`
    module = importlib.import_module(f"recipes.{name}")
    assert module.main([*flags, "--weights", "none", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m recipes.{name}: error: {message}") and err.endswith("; see --help\n"), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, flag", [("quickstart", "--backbone"), ("backbone_comparison", "--backbones")])
def test_unfreeze_last_n_of_a_backbone_without_blocks_is_a_flag_error(name, flag, tmp_path, capsys):
    # inception_v3 trained its first phase, then failed advising `blocks=`/`unit=`, settings the
    # command line does not have
    module = importlib.import_module(f"recipes.{name}")
    code = module.main([flag, "inception_v3", "--weights", "none", "--unfreeze", "last_n",
                        "--unfreeze-n", "1", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "inception_v3's layer names carry no blocks to count" in err and err.endswith("; see --help\n")
    assert not (tmp_path / "runs").exists()
