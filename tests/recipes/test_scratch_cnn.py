"""recipes.scratch_cnn end to end on generated images: folds, ensemble, TTA, ablation, added class."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recipes import scratch_cnn
from recipes.scratch_cnn import ScratchCNNConfig, _merge_repeated, run, tta_headline, variants
from tests.conftest import write_image_folder

CLASSES = ("cod", "eel", "ray", "gar", "ide", "koi")  # 6 classes: top-5 accuracy is defined

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model


def _tiny(tmp_path: Path, **kw) -> ScratchCNNConfig:
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    base = dict(data=str(data), out=tmp_path / "runs", name="t", image_size=32, batch_size=16,
                epochs=1, k=2, audit=False, verbose=0, tta="hflip", mixed_precision="off",
                ratios=(0.5, 0.17, 0.33))
    base.update(kw)
    return ScratchCNNConfig(**base)


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        scratch_cnn.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for f in ScratchCNNConfig.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in out, f
    assert "--config" in out


def test_variants_are_r2s_grid():
    assert variants(ScratchCNNConfig()) == {"r2_cnn": {"batch_norm": True, "extra_conv": True}}
    grid = variants(ScratchCNNConfig(ablation=True, regularised_dropout=0.3))
    assert list(grid) == ["1conv", "1conv_bn", "2conv", "2conv_bn", "2conv_bn_regularised"]
    assert grid["2conv_bn_regularised"] == {"batch_norm": True, "extra_conv": True,
                                            "dropout": 0.3, "blocks": 3}
    assert variants(ScratchCNNConfig(arch="r5_shallow")) == {"r5_shallow": {}}
    with pytest.raises(ValueError, match="r2_cnn"):
        variants(ScratchCNNConfig(arch="r5_deep", ablation=True))
    with pytest.raises(ValueError, match="does not apply"):
        variants(ScratchCNNConfig(arch="r5_deep", blocks=3))
    with pytest.raises(ValueError, match="choose one of"):
        variants(ScratchCNNConfig(arch="vgg99"))


def test_add_class_flag_is_repeatable():
    argv = _merge_repeated(["--add-class", "a", "--k", "2", "--add-class=b"], "--add-class")
    assert argv == ["--k", "2", "--add-class", "a", "b"]


def test_cross_validated_run_with_tta_and_added_class(tmp_path, capsys):
    from keras_species.data.prepare import prepare_data

    new = write_image_folder(tmp_path / "extra", classes=("zander",), per_class=6, size=(24, 24),
                             seed=3)
    config = _tiny(tmp_path, arch="r5_shallow", add_class=[str(new / "zander")])
    result = run(config)
    d = result.run_dir
    # a line before each fold's training, even with --verbose 0
    fold_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fold ")]
    assert [line.split(":")[0] for line in fold_lines] == ["fold 1/2 (folder fold0)",
                                                           "fold 2/2 (folder fold1)"]
    assert fold_lines[0].endswith(f"train {result.cv['r5_shallow'].folds[0].n_train}, "
                                  f"val {result.cv['r5_shallow'].folds[0].n_val} images")
    for name in ("config.json", "split.csv", "best.keras", "history.csv", "metrics.json",
                 "predictions.csv", "report.md", "plots/confusion_matrix.png",
                 "plots/confident_mistakes.png", "plots/uncertain_predictions.png",
                 "r5_shallow/folds.csv", "r5_shallow/crossval_probs.npz",
                 "r5_shallow/fold1/best.keras"):
        assert (d / name).exists(), name
    with open(d / "r5_shallow" / "folds.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["fold"] for r in rows] == ["0", "1", "mean", "ensemble"]
    assert rows[-1]["test_accuracy_tta"] != ""
    metrics = json.loads((d / "metrics.json").read_text())
    # the evaluated best.keras is the ensemble of folds: its score is the ensemble's
    assert metrics["test"]["accuracy"] == pytest.approx(
        metrics["crossval"]["ensemble_test_accuracy"], abs=1e-6)
    assert "top5_accuracy" in metrics["test"] and "test_tta" in metrics
    assert [r["name"] for r in metrics["test"]["per_class"]][-1] == "zander"
    assert metrics["added_classes"] == ["zander"]
    # the closing line shows the test score with TTA too, as the report does
    assert result.headline.endswith(
        f", with TTA (hflip) {metrics['test_tta']['accuracy']:.3f}, 2-fold ensemble")
    # the original classes' test images did not move when the class was added
    base = prepare_data(config.data, ratios=config.ratios, seed=config.seed, audit=False).manifest
    with open(d / "split.csv") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    old = {p for p, s in zip(base.paths, base.splits) if s == "test"}
    now = {r["path"] for r in rows if r["split"] == "test"}
    assert old < now and all("zander" in p for p in now - old)
    assert {r["split"] for r in rows if "zander" in r["path"]} == {"train", "val", "test"}
    report = (d / "report.md").read_text()
    for text in ("Cross-validation of r5_shallow (2 folds)", "**ensemble**", "test acc (TTA)",
                 "Plain inference vs test-time augmentation", "top-5 accuracy",
                 "Added classes", "**zander** | added", "mean of 6 original",
                 "Confident mistakes", "Uncertain predictions", "Confusion matrix"):
        assert text in report, text
    # the title named the arch twice ("r5_shallow (r5_shallow)"); the fold spread is said once,
    # in the cross-validation section (not again in a "crossval" table of every number), and
    # the ensemble's results are above it (it said "evaluated below")
    assert report.startswith("# scratch_cnn — r5_shallow, 2-fold ensemble\n")
    assert "### crossval" not in report and "evaluated below" not in report
    spread = metrics["crossval"]
    assert (f"val accuracy {spread['val_accuracy_mean']:.4f} ± {spread['val_accuracy_std']:.4f}, "
            f"test accuracy {spread['test_accuracy_mean']:.4f} ± {spread['test_accuracy_std']:.4f}") in report
    assert "`best.keras`, whose results are above" in report
    # the TTA comparison once; the training summary per fold (before: "Lowest val loss ... at
    # epoch 4 of the run (phase fold1)", comparing losses on the folds' different val images)
    assert report.count("Plain inference vs test-time augmentation") == 1 and "### test_tta" not in report
    assert "over 2 folds (" in report and "- fold 0: lowest val loss " in report
    assert "of the run (phase fold" not in report


def test_tta_headline_adds_the_tta_score_only_when_tta_ran():
    plain = "test accuracy 0.800 vs majority baseline 0.509 (55 test images)"
    assert tta_headline(plain, {"test": {}}) == plain
    assert tta_headline(plain, {"test_tta": {"transforms": ["hflip", "vflip"], "accuracy": 0.8234}}) == (
        plain + ", with TTA (hflip, vflip) 0.823")


@pytest.mark.slow
def test_ablation_writes_one_comparison_table(tmp_path, capsys):
    result = run(_tiny(tmp_path, ablation=True, ablation_regularised=False, tta="none",
                       image_size=32))
    # each variant is named before its folds train
    said = [line.split(":")[0].split(" (")[0] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("variant ", "fold "))]
    assert said == [f"{kind} {i}/{n}" for v in range(1, 5)
                    for kind, i, n in [("variant", v, 4), ("fold", 1, 2), ("fold", 2, 2)]]
    assert "with TTA" not in result.headline
    assert [r["model"] for r in result.comparison] == ["1conv", "1conv_bn", "2conv", "2conv_bn"]
    for row in result.comparison:
        for key in ("params", "val_loss", "val_acc", "test_loss", "test_acc", "top5",
                    "unique_correct", "unique_wrong"):
            assert row.get(key) is not None, key
    assert result.chosen in {r["model"] for r in result.comparison}
    report = (result.run_dir / "report.md").read_text()
    assert "Ablation" in report and "#unique correct" in report
    assert "Plain inference vs test-time" not in report
    with open(result.run_dir / "comparison.csv") as f:
        assert len(list(csv.DictReader(f))) == 4


def test_cli_reports_a_bad_source_without_traceback(tmp_path, capsys):
    code = scratch_cnn.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"),
                             "--no-audit"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_reads_a_csv_with_a_missing_file_when_told_to_skip_it(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", classes=CLASSES[:3], per_class=6, size=(24, 24))
    rows = [(str(f.relative_to(tmp_path)), f.parent.name) for f in sorted(data.rglob("*.png"))]
    listing = tmp_path / "list.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows, ("data/cod/gone.png", "cod")])
    flags = ["--data", str(listing), "--out", str(tmp_path / "r"), "--no-audit", "--k", "2",
             "--epochs", "1", "--image-size", "32", "--tta", "none", "--verbose", "0",
             "--mixed-precision", "off", "--arch", "r5_shallow"]
    assert scratch_cnn.main(flags) == 2
    assert "--on-missing skip" in capsys.readouterr().err  # the error names a flag this command has
    with pytest.warns(UserWarning, match="skipped 1 row whose file does not exist"):
        assert scratch_cnn.main([*flags, "--on-missing", "skip", "--name", "skip"]) == 0
    report = (tmp_path / "r" / "scratch_cnn" / "skip" / "report.md").read_text()
    assert "1 file(s) left out when reading the source:" in report and "gone.png" in report
    stored = json.loads((tmp_path / "r" / "scratch_cnn" / "skip" / "config.json").read_text())
    assert stored["config"]["on_missing"] == "skip"  # a resumed run reads the source alike


def test_multilabel_data_is_refused_in_one_line_naming_the_recipe_to_use(tmp_path, capsys):
    # it used to stop with "cross_validate scores single-label data; the train+val manifest is
    # multi-label", naming an internal function, after the audit and the split
    from tests.recipes.test_multilabel_resnet import write_multilabel_csv

    data = write_multilabel_csv(tmp_path / "tags")
    code = scratch_cnn.main(["--data", str(data), "--out", str(tmp_path / "runs"), "--name", "t",
                             "--image-size", "32", "--epochs", "1", "--k", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    first = err.splitlines()[0]
    assert first == (f"python -m recipes.scratch_cnn: error: --data {data}: the data is "
                     "multi-label (3 tags, a set per image); this recipe trains single-label "
                     "classifiers only: for multi-label data use python -m recipes.multilabel_resnet "
                     "(it takes any registry backbone, --backbone)")
    assert "cross_validate" not in err
    # refused before the run folder (it was made, and marked failed)
    assert not (tmp_path / "runs").exists() and "marked failed" not in err


def test_bad_arch_flags_and_add_class_are_refused_before_the_run_folder(tmp_path, capsys):
    # before: both failed after the run folder was made, leaving a `failed` run; and the flags
    # message listed the architecture's defaults, which read as the recipe's settings
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"^--arch-flags: r2_cnn has no flag\(s\) \['bogus'\]; "
                                         r"its flags: .*batch_norm"):
        run(ScratchCNNConfig(arch_flags={"bogus": 1}, out=runs, name="af"))
    with pytest.raises(ValueError, match=r"^--add-class '.*nowhere' is not a folder"):
        run(ScratchCNNConfig(add_class=[str(tmp_path / "nowhere")], out=runs, name="ac"))
    assert not runs.exists()
    # two --ratios: the recipes' one-line ratios message, not argparse's usage
    code = scratch_cnn.main(["--ratios", "0.7", "0.3", "--out", str(runs), "--name", "r"])
    err = capsys.readouterr().err
    assert code == 2 and "usage:" not in err and "--ratios" in err and "test split" in err
    # an image size the models cannot take: a flag error before the run folder (before: the
    # model builder's "input_size (10, 10) is too small" after it, and a failed run)
    assert scratch_cnn.main(["--image-size", "10", "--out", str(runs), "--name", "s"]) == 2
    assert capsys.readouterr().err == (
        "python -m recipes.scratch_cnn: error: --image-size 10: the scratch CNNs need at least "
        "16 px (R2 used 224); see --help\n")
    assert not runs.exists()


def test_the_data_summary_is_printed_once_before_the_folds_also_on_resume(tmp_path, capsys):
    # it printed no data summary, while run_transfer's recipes print one before any training
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    flags = ["--out", str(tmp_path / "runs"), "--name", "s"]
    code = scratch_cnn.main([
        *flags, "--data", str(data), "--arch", "r5_shallow", "--image-size", "32",
        "--batch-size", "16", "--epochs", "1", "--k", "2", "--tta", "none", "--no-audit",
        "--verbose", "0", "--mixed-precision", "off", "--ratios", "0.5", "0.17", "0.33"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    (summary,) = [line for line in lines if line.startswith("36 images, 6 classes")]
    assert summary == "36 images, 6 classes (single-label), splits test=12 train=18 val=6; split: stratified"
    assert lines.index(summary) < next(i for i, line in enumerate(lines) if line.startswith("fold 1/2"))
    # a resumed run says it once too, with its split read back
    assert scratch_cnn.main([*flags, "--resume"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("36 images, 6 classes")] == [
        summary.replace("split: stratified", "split: stratified (read back from split.csv)")]
    # its folds trained already: their lines say they are evaluated, not trained, again
    fold_lines = [line for line in out if line.startswith("fold ")]
    assert [line.split(" (")[0] for line in fold_lines] == ["fold 1/2", "fold 2/2"]
    assert all(line.endswith(" images: trained already, evaluating it") for line in fold_lines)


def test_a_monitor_the_data_does_not_log_stops_before_any_fold_trains(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", classes=("cod", "eel", "ray"), per_class=6, size=(24, 24))
    code = scratch_cnn.main([
        "--data", str(data), "--monitor", "val_top5_accuracy", "--out", str(tmp_path / "runs"),
        "--name", "m", "--no-audit", "--image-size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "--monitor val_top5_accuracy: a run on single-label (3 classes) data does not log it" in err
    assert not list((tmp_path / "runs" / "scratch_cnn" / "m").glob("**/history.csv"))


def test_k_above_the_largest_class_of_train_val_is_a_flag_error(tmp_path, capsys):
    # it was "k=5 folds, but the largest class has 3 images" (of train+val, not said) from deep in
    # the k-fold, without the flag
    from recipes import scratch_cnn

    config = _tiny(tmp_path)
    code = scratch_cnn.main(["--data", config.data, "--out", str(tmp_path / "runs"), "--name", "t",
                             "--image-size", "32", "--epochs", "1", "--k", "5", "--no-audit",
                             "--ratios", "0.5", "0.17", "0.33"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "error: --k 5: the largest class, " in err and "images in train+val (2 more are held out for test)" in err
    assert "give --k 4 or less" in err


@pytest.mark.parametrize("arch, size", [("r5_shallow", 200), ("r4_vgg", 128), ("r2_cnn", 224)])
def test_without_image_size_each_arch_is_built_at_its_reports_size(tmp_path, monkeypatch, arch, size):
    # before: 224 whatever the arch, where R5 resized to 200 (r5_deep had 6.5M parameters where
    # R5's has about 5M) and R4's VGG-like net took 128
    from keras_species.models import scratch
    from tests.recipes.conftest import StopRun

    seen = []

    def stop(name, classes, input_size, **kwargs):
        seen.append(input_size)
        raise StopRun

    monkeypatch.setattr(scratch, "build_scratch", stop)
    config = _tiny(tmp_path, arch=arch)
    config = type(config)(**{**vars(config), "image_size": None})
    with pytest.raises(StopRun):
        run(config)
    assert seen == [size]
    stored = json.loads((tmp_path / "runs" / "scratch_cnn" / "t" / "config.json").read_text())
    assert stored["config"]["image_size"] is None  # --config of it with another --arch: that arch's size
    assert scratch_cnn.input_size(type(config)(**{**vars(config), "image_size": 48})) == 48
