"""recipes.quickstart: config and CLI, and the recipe end to end on tiny settings."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import shutil

import pytest

from keras_species.config import parse_config
from recipes.quickstart import QuickstartConfig, main, run
from tests.conftest import write_image_folder

FIELDS = [f.name for f in dataclasses.fields(QuickstartConfig)]


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name in FIELDS:
        assert f"--{name.replace('_', '-')}" in text, name
    assert "--config" in text


def test_defaults_are_the_quick_start_settings():
    c = QuickstartConfig()
    assert (c.data, c.backbone, c.weights, c.split) == ("demo", "efficientnet_lite0", "imagenet", "auto")
    assert c.head_epochs > 0 and c.fine_tune_epochs > 0
    assert c.fine_tune_learning_rate < c.head_learning_rate
    assert c.unfreeze == "all" and c.train_batchnorm is False
    assert (c.mixed_precision, c.strategy, c.class_weight) == ("auto", "auto", "balanced")
    assert str(c.out) == "runs" and c.name is None and c.resume is False


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"image_size": 48, "head_epochs": 2, "ratios": [0.8, 0.1, 0.1],
                                "mixed_precision": "bfloat16"}))
    c = parse_config(QuickstartConfig, ["--config", str(path), "--head-epochs", "1",
                                        "--class-weight", "none", "--strategy", "mirrored",
                                        "--seed", "7", "--deterministic"])
    assert (c.image_size, c.head_epochs, c.ratios) == (48, 1, (0.8, 0.1, 0.1))
    assert (c.mixed_precision, c.strategy, c.class_weight) == ("bfloat16", "mirrored", "none")
    assert c.seed == 7 and c.deterministic is True
    with pytest.raises(SystemExit):
        parse_config(QuickstartConfig, ["--mixed-precision", "float8"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, eager_tf):
    """The quick start on 3 x 10 generated images at 32 px, one epoch per phase, real weights."""
    root = tmp_path_factory.mktemp("qs")
    data = write_image_folder(root / "fish", per_class=10, groups_per_class=5, size=(40, 32))
    config = QuickstartConfig(
        data=str(data), group_regex=r"fish_(\d+)_", out=root / "runs", name="tiny",
        image_size=32, batch_size=8, head_epochs=1, fine_tune_epochs=1, verbose=0,
    )
    return run(config), config


@pytest.mark.slow
def test_run_folder_contents(tiny_run):
    result, _ = tiny_run
    d = result.run_dir
    assert d.name == "tiny" and d.parent.name == "quickstart"
    for name in ("config.json", "history.csv", "best.keras", "metrics.json", "predictions.csv",
                 "report.md", "split.csv", "audit/audit.md"):
        assert (d / name).is_file(), name
    for name in ("learning_curves", "confusion_matrix", "per_class_f1", "confident_mistakes", "pr_curves"):
        assert (d / "plots" / f"{name}.png").is_file(), name
    if importlib.util.find_spec("tensorboard") is not None:
        assert any((d / "tensorboard").rglob("*tfevents*"))
    rows = list(csv.DictReader(open(d / "history.csv")))
    assert [r["phase"] for r in rows] == ["head", "fine_tune"]
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-3)
    assert float(rows[1]["learning_rate"]) == pytest.approx(1e-4)
    metrics = json.loads((d / "metrics.json").read_text())
    test = metrics["test"]
    for key in ("accuracy", "majority_baseline", "f1_macro", "confusion_matrix", "per_class", "n"):
        assert key in test
    assert result.test == test and result.report_path == d / "report.md"
    config = json.loads((d / "config.json").read_text())
    assert config["recipe"] == "quickstart" and config["config"]["image_size"] == 32
    report = result.report_path.read_text()
    assert "# Quick start" not in report  # not the demo data: generic title
    assert "split: group" in report and "0 on more than one side" in report
    assert "weights `imagenet`" in report
    assert result.headline.startswith("test accuracy")


@pytest.mark.slow
def test_runs_command_lists_the_run(tiny_run, capsys):
    from keras_species.cli import main as cli

    result, config = tiny_run
    assert cli(["runs", str(config.out)]) == 0
    table = capsys.readouterr().out
    assert "quickstart" in table and "tiny" in table and "efficientnet_lite0" in table
    assert "done" in table and f"{result.test['accuracy']:.3f}" in table


@pytest.mark.slow
def test_resume_a_finished_and_a_killed_run(tiny_run):
    result, config = tiny_run
    # a finished run: nothing left to train, evaluated again from its files
    with pytest.warns(UserWarning, match="--image-size"):
        again = run(dataclasses.replace(config, resume=True, image_size=64))
    assert again.run_dir == result.run_dir and len(again.history) == 2
    assert again.test["accuracy"] == pytest.approx(result.test["accuracy"])
    # a run killed after phase 1: phase 2 only is trained on resume
    killed = result.run_dir.parent / "killed"
    shutil.copytree(result.run_dir, killed)
    lines = (killed / "history.csv").read_text().splitlines()
    (killed / "history.csv").write_text("\n".join(lines[:2]) + "\n")
    (killed / "checkpoints" / "phase1.weights.h5").unlink()
    (killed / "metrics.json").unlink()
    state = json.loads((killed / "state.json").read_text())
    state.update(phase_index=1, epoch=1, finished=False)
    (killed / "state.json").write_text(json.dumps(state))
    resumed = run(QuickstartConfig(out=config.out, name="killed", resume=True, verbose=0))
    assert [r["phase"] for r in resumed.history] == ["head", "fine_tune"]
    assert json.loads((killed / "state.json").read_text())["finished"] is True
    assert (killed / "metrics.json").is_file() and (killed / "best.keras").is_file()
    assert resumed.metrics["test"]["n"] == result.test["n"]


def test_multilabel_data_gets_its_own_monitor(tmp_path, eager_tf):
    # the default --monitor was val_accuracy, which a multi-label run does not log: the run
    # stopped after its first epoch. auto picks val_micro_f1 from the data.
    from tests.recipes.test_multilabel_resnet import write_multilabel_csv

    data = write_multilabel_csv(tmp_path / "tags", n=24)
    config = QuickstartConfig(
        data=str(data), out=tmp_path / "runs", name="tags", backbone="resnet18", weights="none",
        image_size=32, batch_size=8, head_epochs=0, fine_tune_epochs=1, verbose=0,
    )
    assert config.monitor == "auto"
    result = run(config)
    rows = list(csv.DictReader(open(result.run_dir / "history.csv")))
    assert len(rows) == 1 and "val_micro_f1" in rows[0]
    assert result.best_model_path is not None and "micro-F1" in result.headline
    assert "the best epoch on `val_micro_f1`: epoch 1 of the run" in result.report_path.read_text()
    # a monitor given that this data's run does not log: refused before training
    with pytest.raises(ValueError, match=r"--monitor val_accuracy: a run on multi-label data does not "
                                         r"log it; use --monitor auto \(val_micro_f1 here\)"):
        run(dataclasses.replace(config, name="acc", monitor="val_accuracy"))
    assert not (tmp_path / "runs" / "quickstart" / "acc" / "history.csv").exists()
