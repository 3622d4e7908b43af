"""recipes.multilabel_resnet end to end on a generated multi-label CSV: thresholds and baseline."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipes.multilabel_resnet import MultilabelResNetConfig, one_cycle_phase, run
from tests.recipes.conftest import StopRun

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model

TAGS = ("fish", "shark", "ray")


def write_multilabel_csv(root: Path, n: int = 36, seed: int = 0, with_split: bool = False) -> Path:
    """Images whose colour channels carry the tags (tag j on → channel j bright); a CSV of sets."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        tags = rng.random(3) < 0.4
        if i % 6 == 0:
            tags[:] = False  # some images carry no tag
        img = np.full((20, 20, 3), 40, np.uint8)
        img[..., tags] = 220
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        name = f"img_{i:03d}.png"
        Image.fromarray(img).save(root / "images" / name)
        split = ("train", "train", "train", "train", "valid", "test")[i % 6]
        row = {"filename": name, "labels": ";".join(t for t, on in zip(TAGS, tags) if on)}
        if with_split:
            row["split"] = split
        rows.append(row)
    path = root / "labels.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _config(tmp_path: Path, **kw) -> MultilabelResNetConfig:
    base = dict(out=tmp_path / "runs", name="t", backbone="resnet18", weights="none",
                image_size=32, batch_size=8, epochs=1, audit=False, verbose=0,
                mixed_precision="off")
    base.update(kw)
    return MultilabelResNetConfig(**base)


def test_help_lists_every_field():
    out = subprocess.run([sys.executable, "-m", "recipes.multilabel_resnet", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for f in MultilabelResNetConfig.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in out, f


def test_one_cycle_phase_is_r4s_schedule():
    p = one_cycle_phase(MultilabelResNetConfig())
    assert (p.optimizer, p.learning_rate, p.weight_decay, p.schedule) == ("sgd", 0.01, 1e-4, "onecycle")
    sp = p.schedule_params
    assert 0.01 / sp["div_factor"] / sp["final_div_factor"] == pytest.approx(1e-7)
    assert (sp["base_momentum"], sp["max_momentum"]) == (0.85, 0.95)


def test_thresholds_are_tuned_saved_and_reported(tmp_path):
    data = write_multilabel_csv(tmp_path / "d", with_split=True)
    result = run(_config(tmp_path, data=str(data), thresholds="per_class", sanity=("untrained",)))
    root = result.run_dir
    metrics = json.loads((root / "metrics.json").read_text())
    thr = metrics["thresholds"]
    assert thr["chosen"] == "per_class" and len(thr["saved"]) == 3
    assert thr["saved"] == [thr["per_class"][t] for t in sorted(TAGS)]
    assert metrics["test"]["thresholds"] == pytest.approx(thr["saved"])
    # the val block is scored at the thresholds tuned on it (before: without the note)
    assert metrics["val"]["note"] == "thresholds tuned on it: optimistic"
    assert set(thr["scores"]) == {"fixed", "global", "per_class"}
    # The majority label-set baseline (of the training split) is reported next to the model.
    rows = {r["model"]: r for r in metrics["threshold_comparison"]}
    baseline = next(name for name in rows if name.startswith("baseline: majority label set "))
    assert "sanity: untrained" in rows
    assert metrics["test"]["majority_source"] == "train"
    assert rows[baseline]["test_exact_match"] == pytest.approx(metrics["test"]["majority_baseline"])
    assert rows[baseline]["test_micro_f1"] == pytest.approx(metrics["test"]["majority_f1_micro"])
    assert "majority label-set baseline" in result.headline and "no tag' baseline" not in result.headline
    report = result.report_path.read_text()
    assert "## Threshold tuning" in report and "baseline: majority label set" in report
    # Saved with the model and used by predict.
    import keras

    from keras_species.models.labels import label_map
    from keras_species.predict import predict

    model = keras.saving.load_model(root / "best.keras", compile=False, safe_mode=True)
    assert label_map(model).thresholds == pytest.approx(thr["saved"])
    assert label_map(model).class_names == sorted(TAGS)
    pred = predict(root, str(tmp_path / "d" / "images"))
    assert pred.multilabel and list(pred.thresholds) == pytest.approx(thr["saved"])


def test_iterative_stratification_without_a_split_column(tmp_path):
    data = write_multilabel_csv(tmp_path / "d", n=30, seed=1)
    result = run(_config(tmp_path, data=str(data), split="stratified", sanity=("head_only",)))
    splits = [r["split"] for r in csv.DictReader(
        line for line in open(result.run_dir / "split.csv") if not line.startswith("#"))]
    assert {"train", "val", "test"} == set(splits)
    assert isinstance(result.metrics["thresholds"]["global"], float)
    assert any(r["model"] == "sanity: head only" for r in result.threshold_rows)


def test_a_bare_resume_continues_the_runs_own_data_and_weights(tmp_path, monkeypatch, stop_at):
    # --resume --out --name alone: the stored --data and weights (before: "--data is required")
    from keras_species.data import prepare
    from keras_species.recipe import start_run
    from recipes import multilabel_resnet

    data = write_multilabel_csv(tmp_path / "aq")
    start_run("multilabel_resnet", _config(tmp_path, data=str(data), backbone="mobilenet_v2"))
    prepare.forget_read_ahead()  # the new run's labelled-data check kept its reading of the CSV
    checked = []
    monkeypatch.setattr(multilabel_resnet, "check_weights", lambda *args: checked.append(args))
    seen = stop_at(prepare, "prepare_data")
    with pytest.raises(StopRun):
        run(MultilabelResNetConfig(out=tmp_path / "runs", name="t", resume=True))
    assert checked == [("mobilenet_v2", None, 32)] and seen == [str(data.absolute())]


@pytest.mark.slow  # two sessions of a tiny run: about 20-40 s on a CPU
def test_train_seconds_sum_the_sessions_of_a_killed_and_resumed_run(tmp_path, monkeypatch, capsys):
    # it held only the last session's time (as the other recipes did before TrainingClock)
    from recipes import multilabel_resnet
    from tests.conftest import training_killed_after_one_epoch

    data = write_multilabel_csv(tmp_path / "d", with_split=True)
    out = tmp_path / "runs"
    flags = ["--data", str(data), "--out", str(out), "--name", "k", "--backbone", "resnet18",
             "--weights", "none", "--image-size", "32", "--batch-size", "8", "--epochs", "2",
             "--no-audit", "--verbose", "0", "--mixed-precision", "off"]
    with training_killed_after_one_epoch(monkeypatch) as killed:
        assert multilabel_resnet.main(flags) == 130
    assert multilabel_resnet.main(["--resume", "--out", str(out), "--name", "k"]) == 0, \
        capsys.readouterr().err
    run_dir = out / "multilabel_resnet" / "k"
    sessions = json.loads((run_dir / "train_seconds.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0] == pytest.approx(killed[0], abs=0.5)
    seconds = json.loads((run_dir / "metrics.json").read_text())["run"]["train_seconds"]
    assert seconds == round(sum(sessions), 1)
    # the terminal names the split the run made, as its report does (it said "loaded split")
    assert "; split: given (read back from split.csv)" in capsys.readouterr().out


def test_it_needs_train_val_and_test_splits():
    # val and test are read in every mode: a CSV split without one is refused before the run
    # folder (keras_species.recipe reads NEED_SPLITS; tested end to end in feature_classifiers)
    import dataclasses

    from keras_species.recipe import recipe_need_splits

    assert recipe_need_splits(MultilabelResNetConfig) == ("train", "val", "test")
    assert "need_splits" not in {f.name for f in dataclasses.fields(MultilabelResNetConfig)}  # not a flag
