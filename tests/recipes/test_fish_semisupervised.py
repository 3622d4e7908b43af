"""recipes.fish_semisupervised end to end on generated fish: hidden labels, pseudo-labels, models."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.fish_semisupervised import FishSemiSupervisedConfig, run, stage_list
from tests.conftest import write_image_folder
from tests.recipes.conftest import StopRun

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model

CLASSES = ("cod", "eel", "ray")


def _config(tmp_path: Path, **kw) -> FishSemiSupervisedConfig:
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=10, size=(24, 24))
    base = dict(
        labelled=str(data), hide_labels=0.5, out=tmp_path / "runs", name="t", weights="none",
        image_size=32, batch_size=8, model1_epochs=1, ae_epochs=1, ae_batch_size=8,
        ae_filters=(4, 8, 8), ae_dense_units=8, ae_pooling="avg", phase1_epochs=1,
        phase2_epochs=1, combined_batch_size=8, model3_backbone="resnet18", verbose=0,
        mixed_precision="off",
    )
    base.update(kw)
    return FishSemiSupervisedConfig(**base)


def test_help_lists_every_field():
    out = subprocess.run([sys.executable, "-m", "recipes.fish_semisupervised", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for f in FishSemiSupervisedConfig.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in out, f
    assert "--config" in out


def test_defaults_are_r1s_settings():
    c = FishSemiSupervisedConfig()
    assert (c.model1_backbone, c.model1_learning_rate, c.model1_epochs) == ("resnet18", 1e-2, 30)
    assert (c.ae_learning_rate, c.ae_epochs, c.ae_batch_size) == (1e-4, 40, 128)
    assert (c.pseudo_threshold, c.model3_backbone, c.phase1_learning_rate) == (0.8, "resnet50", 1e-5)
    assert (c.phase2_learning_rate, c.augment, c.pseudo_augment) == (1e-2, "r1", "r1_pseudo")


def test_stage_list():
    assert stage_list("1,2,3,4") == [1, 2, 3, 4]
    assert stage_list("3") == [2, 3]
    assert stage_list((1,)) == [1]
    with pytest.raises(ValueError, match="choose among"):
        stage_list("5")


def test_reported_pseudo_label_accuracy_equals_the_true_agreement(tmp_path):
    config = _config(tmp_path, stages="2", pseudo_threshold=0.34)
    result = run(config)
    root = result.run_dir
    truth = {}
    for name in CLASSES:
        for p in (tmp_path / "data" / name).iterdir():
            truth[str(p.absolute())] = name
    rows = list(csv.DictReader(open(root / "pseudo_labels.csv")))
    assert all(float(r["confidence"]) >= 0.34 for r in rows)
    stats = result.pseudo_labels
    assert stats["n_pool"] == 15 and stats["n_kept"] == len(rows)
    if rows:
        agree = sum(truth[r["path"]] == r["label"] for r in rows) / len(rows)
        assert stats["accuracy"] == pytest.approx(agree)
    kept_per_class = {c["name"]: c["kept"] for c in stats["per_class"]}
    for name in CLASSES:
        assert kept_per_class[name] == sum(r["label"] == name for r in rows)
    # The labelled images never reach the pool.
    labelled = {r["path"] for r in csv.DictReader(
        line for line in open(root / "split.csv") if not line.startswith("#"))}
    assert not labelled & {r["path"] for r in rows}
    report = result.report_path.read_text()
    assert "## Pseudo-labels" in report and "| **all** |" in report and "model2" in report
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["best"] == "model2" and metrics["models"][0]["pool_acc"] is not None
    assert (root / "model2" / "report.md").is_file() and result.best_model_path.is_file()

    from keras_species.predict import predict

    pred = predict(root, [r for r in truth][:2])
    assert pred.class_names == list(CLASSES)


def test_resume_keeps_the_joint_autoencoders_finished_training(tmp_path):
    first = run(_config(tmp_path, stages="2", pseudo_threshold=0.0))
    history = (first.run_dir / "model2" / "history.csv").read_text()
    state = json.loads((first.run_dir / "model2" / "state.json").read_text())
    assert state["finished"] and state["phases"] == ["joint"]
    again = run(_config(tmp_path, stages="2", pseudo_threshold=0.0, resume=True))
    assert again.run_dir == first.run_dir
    assert (again.run_dir / "model2" / "history.csv").read_text() == history  # not trained again


def test_pseudo_labelled_fine_tuning_runs_model_2_then_4(tmp_path):
    result = run(_config(tmp_path, stages="4", pseudo_threshold=0.0))
    root = result.run_dir
    assert [r["model"] for r in result.models] == ["model2", "model4"]
    assert (root / "model4" / "phase1" / "history.csv").is_file()
    assert (root / "model4" / "phase2" / "best.keras").is_file()
    phases = [r["phase"] for r in csv.DictReader(open(root / "model4" / "history.csv"))]
    assert phases == ["phase1", "phase2"]
    assert "model4/report.md" in result.report_path.read_text()


@pytest.mark.slow
def test_all_four_models(tmp_path):
    result = run(_config(tmp_path, stages="1,2,3,4", pseudo_threshold=0.0))
    assert [r["model"] for r in result.models] == ["model1", "model2", "model3", "model4"]
    assert result.best in {"model1", "model2", "model3", "model4"}
    report = result.report_path.read_text()
    for name in ("model1", "model2", "model3", "model4"):
        assert f"{name}/report.md" in report


def test_a_bare_resume_trains_the_runs_own_stages_and_backbones(tmp_path, monkeypatch, stop_at):
    # --resume --out --name alone: the stored stages and weights are checked (before: the
    # default stages 1-4 with ImageNet weights, offline an error) and the stored pool is made
    from keras_species.data import prepare
    from keras_species.recipe import start_run
    from recipes import fish_semisupervised

    start_run("fish_semisupervised", _config(tmp_path, stages="1", model1_backbone="mobilenet_v2"))
    checked = []
    monkeypatch.setattr(fish_semisupervised, "check_weights", lambda *args: checked.append(args))

    stop_at(prepare, "prepare_data")
    resumed = FishSemiSupervisedConfig(out=tmp_path / "runs", name="t", resume=True)
    with pytest.raises(StopRun):
        run(resumed)
    assert checked == [("mobilenet_v2", None, 32)]
    plan = fish_semisupervised.open_run("fish_semisupervised", resumed,
                                        fish_semisupervised.checked_plan)[2]
    assert plan.stages == [1] and plan.weights is None
    assert len(plan.parts.pool) == 15  # --hide-labels 0.5 of the stored run, not the default 0.8


def test_settings_that_cannot_train_are_refused_before_the_run_folder(tmp_path):
    # before: both stopped after the run folder was made, marked failed, in words that did not
    # name the flag ("the manifest has no 'train' split"; "input_size (36, 36) must be divisible")
    from keras_species.recipe import SettingError
    from recipes.fish_semisupervised import checked_plan

    with pytest.raises(SettingError, match=r"--image-size 36: the autoencoder \(model 2\) needs a "
                                           r"multiple of 8, e.g. --image-size 32"):
        checked_plan(_config(tmp_path, stages="2", image_size=36))
    with pytest.raises(SettingError, match=r"--hide-labels 0.95 leaves 3 labelled image\(s\), and "
                                           r"R1's systematic split puts the first 2 of every 10"):
        checked_plan(_config(tmp_path, stages="1", hide_labels=0.95))
    # the default share: it was blamed on --labelled
    with pytest.raises(SettingError, match=r"--hide-labels 0.8 \(the default\) leaves 6 labelled"):
        checked_plan(_config(tmp_path, stages="1", hide_labels=None))
    # a pool of unreadable files: model 2 trained, then the run failed with "the manifest holds
    # no images"
    bad = tmp_path / "badpool"
    bad.mkdir()
    (bad / "a.png").write_text("not an image")
    (bad / "b.jpg").write_bytes(b"")
    with pytest.raises(SettingError, match=r"the unlabelled pool holds no readable image \(none of "
                                           r"its 2 file\(s\) can be read: .*a.png"):
        checked_plan(_config(tmp_path, stages="2", hide_labels=0.0, unlabelled=str(bad)))
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_combined_set_too_small_for_a_val_split_validates_on_the_labelled_one(tmp_path, capsys):
    # 3 labelled images a class (1 trains after R1's systematic split) and no pseudo-label kept:
    # the combined set's 75/25 split left 'val' empty, and the run failed after model 2
    labelled = write_image_folder(tmp_path / "lab", classes=CLASSES, per_class=3, size=(24, 24))
    pool = write_image_folder(tmp_path / "pool", classes=("x",), per_class=6, size=(24, 24)) / "x"
    with pytest.warns(UserWarning):
        result = run(_config(tmp_path, labelled=str(labelled), unlabelled=str(pool), hide_labels=None,
                             stages="4", pseudo_threshold=1.0))
    assert [r["model"] for r in result.models] == ["model2", "model4"]
    assert "too small for a validation split: phase 1 validates on the labelled val split" in capsys.readouterr().out


def test_a_class_left_without_a_training_image_is_warned_about_for_the_stages_run(tmp_path):
    # a first version said "the model learns them from pseudo-labels only" with stage 1 alone
    from keras_species.data.manifest import Manifest
    from recipes.fish_semisupervised import _check_training_images

    data = write_image_folder(tmp_path / "d", classes=CLASSES, per_class=10, size=(8, 8))
    from keras_species.data import sources

    m = sources.load(data)
    keep = [i for i in range(len(m)) if m.labels[i] != 2 or i % 10 < 2]  # 2 images of 'ray'
    few = Manifest([m.paths[i] for i in keep], m.labels[keep], m.class_names)
    config = _config(tmp_path)
    with pytest.warns(UserWarning, match=r"\(ray\).*no model of these stages learns them"):
        _check_training_images(few, config, [1, 2])
    with pytest.warns(UserWarning, match=r"model 4 learns them from pseudo-labels only, the other"):
        _check_training_images(few, config, [1, 2, 4])


@pytest.mark.parametrize("fraction", [0.2, 0.0])
def test_model_2_holds_out_a_fifth_of_the_pool_for_validation(tmp_path, monkeypatch, fraction):
    # before: the whole pool trained the reconstruction and none was held out, where R1 splits
    # the unlabelled loaders 80/20
    from keras_species.training import semi_supervised
    from recipes import fish_semisupervised

    seen = []
    real = semi_supervised.joint_dataset

    caches = []

    def spy(labelled, unlabelled, *args, **kwargs):
        seen.append(None if unlabelled is None else list(unlabelled.paths))
        caches.append(kwargs.get("cache", "default (True)"))
        if len(seen) == 2:
            raise StopRun
        return real(labelled, unlabelled, *args, **kwargs)

    monkeypatch.setattr(fish_semisupervised, "joint_dataset", spy, raising=False)
    monkeypatch.setattr(semi_supervised, "joint_dataset", spy)
    with pytest.raises(StopRun):
        run(_config(tmp_path, stages="2", ae_val_fraction=fraction, cache="none"))
    trained, held = seen
    assert caches == [False, False]  # --cache none: the validation set, now with pool images, too
    if fraction == 0.0:
        assert held is None
        return
    assert held and not set(trained) & set(held)
    assert len(held) == round(0.2 * (len(trained) + len(held)))


def test_a_run_from_before_the_held_out_pool_resumes_as_it_began(tmp_path):
    # a config.json without ae_val_fraction (a run made before stop 34) resumed with the new
    # default, 0.2: model 2 went on training on 80% of its pool, without a word
    from keras_species.recipe import _stored_config, _with_earlier_behaviour
    from keras_species.training.runs import RunFolder

    run_dir = tmp_path / "runs" / "fish_semisupervised" / "old"
    run_dir.mkdir(parents=True)
    settings = {"labelled": "demo", "stages": "2"}
    (run_dir / "config.json").write_text(json.dumps({"recipe": "fish_semisupervised", "config": settings}))
    run = RunFolder(run_dir)
    assert _stored_config(FishSemiSupervisedConfig, run).ae_val_fraction == 0.2
    assert _with_earlier_behaviour(_stored_config(FishSemiSupervisedConfig, run), run).ae_val_fraction == 0.0
    settings["ae_val_fraction"] = 0.3  # a run that stored it keeps it
    (run_dir / "config.json").write_text(json.dumps({"recipe": "fish_semisupervised", "config": settings}))
    assert _with_earlier_behaviour(_stored_config(FishSemiSupervisedConfig, run), run).ae_val_fraction == 0.3
    (run_dir / "config.json").write_text(json.dumps(settings))  # a flat settings file, as --config takes
    assert _with_earlier_behaviour(_stored_config(FishSemiSupervisedConfig, run), run).ae_val_fraction == 0.3
