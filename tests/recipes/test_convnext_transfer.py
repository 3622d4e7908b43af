"""recipes.convnext_transfer: R3's defaults, the CLI, offline failure, a tiny run end to end."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time

import pytest

from keras_species.config import parse_config
from keras_species.models.weights import host_reachable, keras_cache_dir
from recipes.convnext_transfer import ConvNeXtTransferConfig, main
from tests.conftest import write_image_folder

FIELDS = [f.name for f in dataclasses.fields(ConvNeXtTransferConfig)]


def _imagenet_reachable(backbone: str) -> bool:
    return (keras_cache_dir() / f"{backbone}_notop.h5").is_file() or host_reachable(
        "https://storage.googleapis.com", timeout=1.0
    )


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name in FIELDS:
        assert f"--{name.replace('_', '-')}" in text, name


def test_defaults_are_r3s_best_configuration():
    c = ConvNeXtTransferConfig()
    assert (c.backbone, c.weights, c.image_size) == ("convnext_xlarge", "imagenet", 224)
    assert c.head_units == (512, 256, 128)
    assert (c.augment, c.class_weight) == ("r3", "balanced")
    assert (c.head_learning_rate, c.fine_tune_learning_rate, c.optimizer) == (1e-3, 1e-4, "adam")
    assert (c.unfreeze, c.train_batchnorm) == ("all", False)
    # auto: R3's validation accuracy on single-label data (validation micro-F1 on multi-label)
    assert (c.early_stopping_patience, c.monitor, c.evaluate_model) == (10, "auto", "best")
    assert c.ratios == (0.7, 0.15, 0.15)


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"backbone": "convnext_tiny", "head_units": [64, 32], "drop": "bad.txt"}))
    c = parse_config(ConvNeXtTransferConfig, ["--config", str(path), "--ratios", "0.8", "0.1", "0.1",
                                              "--weights", "none", "--class-weight", "w.json"])
    assert (c.backbone, c.head_units, c.drop) == ("convnext_tiny", (64, 32), "bad.txt")
    assert (c.ratios, c.weights, c.class_weight) == ((0.8, 0.1, 0.1), "none", "w.json")


def test_offline_imagenet_stops_at_once_with_the_registry_message(tmp_path, capsys):
    if _imagenet_reachable("convnext_xlarge"):
        pytest.skip("convnext_xlarge's ImageNet file can be had here (cached or online)")
    start = time.perf_counter()
    code = main(["--out", str(tmp_path / "runs")])
    assert code == 2 and time.perf_counter() - start < 15
    err = capsys.readouterr().err
    assert "error: ImageNet weights for convnext_xlarge" in err
    assert "convnext_xlarge_notop.h5" in err and "--weights" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # stopped before any run folder or data


@pytest.mark.slow
def test_offline_command_line_exit_code_and_no_traceback(tmp_path):
    if _imagenet_reachable("convnext_tiny"):
        pytest.skip("convnext_tiny's ImageNet file can be had here (cached or online)")
    proc = subprocess.run(
        [sys.executable, "-m", "recipes.convnext_transfer", "--backbone", "convnext_tiny",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "ImageNet weights for convnext_tiny" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path, capsys, eager_tf):
    # The recipe with a small backbone: a ConvNeXt's 28M+ parameters would make every
    # checkpoint slow to write; the ConvNeXt family itself is built, saved and reloaded by
    # tests/models/test_registry.py.
    data = write_image_folder(tmp_path / "plants", classes=("fern", "moss", "ivy"), per_class=10,
                              groups_per_class=10, size=(36, 36))
    drop = tmp_path / "drop.txt"
    drop.write_text("fish_209_9.png\n")  # R3's cleaning list: one ivy image with a stray object
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"ivy": 3.0}))
    argv = ["--data", str(data), "--out", str(tmp_path / "runs"), "--name", "tiny",
            "--backbone", "efficientnet_lite0", "--weights", "none", "--image-size", "32",
            "--head-units", "16", "8", "--batch-size", "8", "--head-epochs", "1",
            "--fine-tune-epochs", "1", "--ratios", "0.8", "0.1", "0.1", "--drop", str(drop),
            "--class-weight", str(weights), "--verbose", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "convnext_transfer" / "tiny"
    assert "report:" in out and str(run_dir) in out
    for name in ("config.json", "history.csv", "best.keras", "metrics.json", "predictions.csv",
                 "report.md", "plots/confusion_matrix.png", "plots/learning_curves.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["n"] == 3 and "accuracy" in metrics["test"]
    report = (run_dir / "report.md").read_text()
    assert "Cleaning dropped 1 image" in report and "fish_209_9.png" in report
    assert "Class weights (" in report and "weights.json" in report
    # the epoch of the weights scored (before: no epoch, and the only one named was val loss's)
    assert re.search(r"Evaluated: `best\.keras`, the best epoch on `val_accuracy`: epoch [12] of "
                     r"the run \(phase (head|fine_tune)\), val_accuracy \d\.\d{4}\.", report), report
    import keras

    model = keras.saving.load_model(run_dir / "best.keras", safe_mode=True, compile=False)
    assert [model.get_layer(f"head_dense{i}").units for i in (1, 2)] == [16, 8]
    assert model.get_layer("backbone").name == "backbone"


def test_evaluate_model_last_keeps_the_final_epoch_and_the_report_says_which():
    # before: the last phase restored its best epoch, so "last" scored that epoch, and the
    # report said "last weights (best epoch on val_accuracy)"
    from types import SimpleNamespace

    from keras_species.recipe import _evaluated_line, _transfer_plan

    best = ConvNeXtTransferConfig(head_epochs=2, fine_tune_epochs=3)
    assert [p.restore_best for p in _transfer_plan(best)] == [True, True]
    last = dataclasses.replace(best, evaluate_model="last")
    assert [p.restore_best for p in _transfer_plan(last)] == [True, False]
    rows = [{"phase": "head", "val_accuracy": 0.5}, {"phase": "head", "val_accuracy": 0.7},
            {"phase": "fine_tune", "val_accuracy": 0.7}, {"phase": "fine_tune", "val_accuracy": 0.6}]
    trained = SimpleNamespace(history=rows)
    assert _evaluated_line(trained, "val_accuracy", best=True) == (
        "Evaluated: `best.keras`, the best epoch on `val_accuracy`: epoch 2 of the run (phase head), "
        "val_accuracy 0.7000.")
    assert _evaluated_line(trained, "val_accuracy", best=False) == (
        "Evaluated: the last weights, epoch 4 of the run (phase fine_tune).")


def test_evaluate_model_last_saves_the_model_it_scores_and_predict_reads_it(tmp_path, eager_tf):
    # before: only best.keras was saved, so predict and export of the run folder used another
    # model than the one the report, metrics.json and predictions.csv scored
    import csv

    import numpy as np

    from keras_species.export import resolve_model_path
    from keras_species.predict import predict

    data = write_image_folder(tmp_path / "plants", classes=("fern", "moss"), per_class=10,
                              groups_per_class=10, size=(36, 36))
    argv = ["--data", str(data), "--out", str(tmp_path / "runs"), "--name", "last",
            "--backbone", "efficientnet_lite0", "--weights", "none", "--image-size", "32",
            "--head-units", "8", "--batch-size", "8", "--head-epochs", "1", "--fine-tune-epochs", "2",
            "--ratios", "0.6", "0.2", "0.2", "--evaluate-model", "last", "--verbose", "0"]
    assert main(argv) == 0
    run_dir = tmp_path / "runs" / "convnext_transfer" / "last"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run"]["evaluated_model"] == "last.keras" and (run_dir / "last.keras").is_file()
    assert resolve_model_path(run_dir) == run_dir / "last.keras"
    rows = list(csv.DictReader(open(run_dir / "predictions.csv", encoding="utf-8")))
    again = predict(run_dir, [r["path"] for r in rows])
    probs = np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in rows])
    np.testing.assert_allclose(again.probabilities, probs, atol=1e-5)
