"""evaluate_and_report: predictions, metrics.json, predictions.csv, plots and report.md."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from keras_species.data.manifest import Manifest, ManifestError
from keras_species.data.sources import from_folder
from keras_species.data.splits import stratified_split
from keras_species.evaluation.evaluate import evaluate_and_report, predict_manifest
from tests.conftest import write_image_folder

SIZE = 16


def colour_model(num_classes: int = 3, activation: str = "softmax") -> keras.Model:
    """Mean colour → Dense: fits the generated images' class colours in a few steps."""
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(num_classes, activation=activation, name="label", dtype="float32")(x)
    return keras.Model(inp, out)


@pytest.fixture
def split_manifest(tmp_path) -> Manifest:
    root = write_image_folder(tmp_path / "fish", per_class=8, size=(SIZE, SIZE))
    return stratified_split(from_folder(root), (0.5, 0.25, 0.25), seed=0)


def _history(path):
    path.write_text(
        "epoch,phase,learning_rate,loss,accuracy,val_loss,val_accuracy\n"
        "1,head,0.001,1.1,0.4,1.0,0.5\n2,head,0.001,0.9,0.6,0.8,0.6\n"
        "3,fine_tune,0.0001,0.7,0.8,0.7,0.7\n"
    )
    return path


def test_single_label_run_folder(split_manifest, tmp_path):
    run = tmp_path / "runs" / "quickstart" / "t"
    ev = evaluate_and_report(
        colour_model(), split_manifest, run, batch_size=4,
        history=_history(tmp_path / "history.csv"), config={"backbone": "colour", "seed": 0},
        tta="hflip", extra_metrics={"run": {"train_seconds": 1.5}},
        extra_sections=[("Data", "30 fish")],
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"test", "val", "test_tta", "run"}
    test = metrics["test"]
    for key in ("accuracy", "top1_accuracy", "f1_macro", "precision_macro", "recall_weighted",
                "confusion_matrix", "log_loss", "roc_auc_ovr_macro", "average_precision_macro",
                "majority_baseline", "per_class"):
        assert key in test
    assert test["n"] == len(split_manifest.split("test"))
    assert test["majority_source"] == "train"  # train counts taken from the split manifest
    assert metrics["test_tta"]["transforms"] == "hflip" and "accuracy" in metrics["test_tta"]
    assert metrics["val"]["n"] == len(split_manifest.split("val"))
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    assert [r["path"] for r in rows] == split_manifest.split("test").paths
    assert {"true", "pred", "confidence", "correct", "p_cod"} <= set(rows[0])
    for name in ("learning_curves", "confusion_matrix", "per_class_f1", "confident_mistakes",
                 "uncertain_predictions", "pr_curves"):
        assert (run / "plots" / f"{name}.png").is_file(), name
        assert name in ev.plots
    report = (run / "report.md").read_text()
    assert "## Results (test)" in report and "majority class" in report
    # TTA's scores beside the plain ones, once (before: a bare "### test_tta" table of its own,
    # and scratch_cnn added this comparison as well, so its report said it twice)
    assert "### test_tta" not in report
    assert report.count("## Plain inference vs test-time augmentation (identity, hflip)") == 1
    assert "| metric | plain | TTA | TTA − plain |" in report
    assert "## Data" in report and "30 fish" in report
    assert "plots/confusion_matrix.png" in report
    assert ev.headline().startswith("test accuracy")
    assert ev.test is metrics["test"] or ev.test == metrics["test"]


def test_multilabel_thresholds_tuned_on_val(tmp_path):
    rng = np.random.default_rng(0)
    root = write_image_folder(tmp_path / "fish", per_class=6, size=(SIZE, SIZE))
    single = from_folder(root)
    hot = np.zeros((len(single), 3), np.uint8)
    hot[np.arange(len(single)), single.labels] = 1
    hot[rng.random(len(single)) < 0.3, 0] = 1
    m = Manifest(single.paths, hot, single.class_names)
    m = m.with_splits(["train", "val", "test"] * (len(m) // 3))
    run = tmp_path / "run"
    ev = evaluate_and_report(colour_model(activation="sigmoid"), m, run, thresholds="global",
                             tta="hflip")
    test = ev.test
    # TTA beside the plain scores in the multi-label terms (the table showed macro F1 alone)
    report = (run / "report.md").read_text()
    table = report.split("## Plain inference vs test-time augmentation")[1].split("\n## ")[0]
    for row in ("| micro F1 |", "| exact match |", "| Hamming loss |", "| macro F1 |", "| mAP |"):
        assert row in table, row
    assert test["task"] == "multilabel"
    assert {"exact_match", "hamming_loss", "f1_micro", "map", "no_tag_exact_match"} <= set(test)
    assert isinstance(ev.thresholds, float) and 0 < ev.thresholds < 1
    assert test["thresholds"] == [ev.thresholds] * 3
    assert "tuned on the validation split" in (run / "report.md").read_text()
    assert (run / "plots" / "threshold_curve.png").is_file()
    assert not (run / "plots" / "confusion_matrix.png").exists()
    assert ev.headline().startswith("test micro-F1")


def test_multilabel_headline_and_report_beat_no_tag_with_the_training_majority_set(tmp_path):
    # Most images carry {cod} alone, in every split; a tag-free image is rare. The honest
    # baseline always answers {cod} (the training split's most frequent set), not "no tag".
    root = write_image_folder(tmp_path / "fish", per_class=6, size=(SIZE, SIZE))
    single = from_folder(root)
    n = len(single)
    hot = np.zeros((n, 3), np.uint8)
    hot[:, 0] = 1  # {cod}
    hot[[1, 5], 1] = 1  # two {cod, eel}
    hot[[2, 4], 0] = 0  # two tag-free: one in train, one in test
    splits = (["train", "train", "test"] * n)[:n]
    m = Manifest(single.paths, hot, single.class_names).with_splits(splits)
    test_y = m.split("test").labels
    expected = float(np.mean((test_y == [1, 0, 0]).all(axis=1)))
    assert expected > 0.5 and float(np.mean(test_y.sum(axis=1) == 0)) < 0.2

    ev = evaluate_and_report(colour_model(activation="sigmoid"), m, tmp_path / "run", plots=False)
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["majority_label_set"] == ["cod"] and test["majority_source"] == "train"
    assert test["majority_baseline"] == pytest.approx(expected)
    assert test["majority_baseline"] > test["no_tag_exact_match"]
    headline = ev.headline()
    assert "majority label-set baseline {cod} (from train)" in headline
    assert f"exact match {expected:.3f} ({test['n']} test images)" in headline
    assert f"micro-F1 {test['majority_f1_micro']:.3f}" in headline and "no tag" not in headline
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Baseline: always predict the majority label set {cod} (from train)." in report
    assert f"| exact match | {test['exact_match']:.4f} | {expected:.4f} |" in report


def test_unsplit_manifest_is_the_test_set_and_bad_files_are_left_out(tmp_path):
    root = write_image_folder(tmp_path / "fish", per_class=3, size=(SIZE, SIZE))
    (root / "cod" / "broken.png").write_bytes(b"not an image")
    m = from_folder(root)
    with pytest.warns(UserWarning, match="unreadable"):
        pred = predict_manifest(colour_model(), m, batch_size=4)
    assert len(pred.manifest) == len(m) - 1 and pred.probs.shape == (len(m) - 1, 3)
    with pytest.warns(UserWarning, match="unreadable"):
        ev = evaluate_and_report(colour_model(), m, tmp_path / "r", plots=False,
                                 history=tmp_path / "no_history.csv")
    assert ev.test["majority_source"] == "test"
    assert not (tmp_path / "r" / "plots").exists() or not any((tmp_path / "r" / "plots").iterdir())


def test_a_damaged_history_costs_one_figure_not_the_evaluation(tmp_path):
    root = write_image_folder(tmp_path / "fish", per_class=3, size=(SIZE, SIZE))
    history = tmp_path / "history.csv"
    history.write_bytes(b"epoch,phase,loss\n1,head,\xff\n")
    ev = evaluate_and_report(colour_model(), from_folder(root), tmp_path / "r", history=history)
    assert (tmp_path / "r" / "metrics.json").is_file() and "learning_curves" not in ev.plots
    assert "confusion_matrix" in ev.plots
    report = (tmp_path / "r" / "report.md").read_text()
    assert "- The training history cannot be read (" in report and "history.csv is not UTF-8" in report
    assert "## Training" not in report


def test_missing_split_and_unlabelled_errors(split_manifest, tmp_path):
    with pytest.raises(ManifestError, match="no 'holdout' split"):
        evaluate_and_report(colour_model(), split_manifest, tmp_path / "r", split="holdout")
    unlabelled = Manifest(split_manifest.paths, np.full(len(split_manifest), -1), split_manifest.class_names)
    with pytest.raises(ManifestError, match="no labelled"):
        evaluate_and_report(colour_model(), unlabelled, tmp_path / "r")


def test_multilabel_val_block_tuned_on_val_says_so(tmp_path):
    # before: the report's "### val" block was scored with thresholds tuned on those very images
    rng = np.random.default_rng(0)
    single = from_folder(write_image_folder(tmp_path / "fish", per_class=6, size=(SIZE, SIZE)))
    hot = np.zeros((len(single), 3), np.uint8)
    hot[np.arange(len(single)), single.labels] = 1
    hot[rng.random(len(single)) < 0.3, 0] = 1
    m = Manifest(single.paths, hot, single.class_names).with_splits(
        ["train", "val", "test"] * (len(single) // 3))
    model = colour_model(activation="sigmoid")
    evaluate_and_report(model, m, tmp_path / "tuned", thresholds="per_class", plots=False)
    val = json.loads((tmp_path / "tuned" / "metrics.json").read_text())["val"]
    assert val["note"] == "thresholds tuned on it: optimistic"
    assert "### val (thresholds tuned on it: optimistic)" in (tmp_path / "tuned" / "report.md").read_text()
    evaluate_and_report(model, m, tmp_path / "fixed", thresholds=0.5, plots=False)
    assert "note" not in json.loads((tmp_path / "fixed" / "metrics.json").read_text())["val"]
    # values the caller tuned on val (as multilabel_resnet does) are marked when it says so
    evaluate_and_report(model, m, tmp_path / "given", thresholds=[0.4, 0.5, 0.6], plots=False,
                        thresholds_tuned_on_val=True)
    val = json.loads((tmp_path / "given" / "metrics.json").read_text())["val"]
    assert val["note"] == "thresholds tuned on it: optimistic"
    assert "### val\n" in (tmp_path / "fixed" / "report.md").read_text()


def test_a_logits_model_is_scored_on_its_probabilities(split_manifest, tmp_path):
    # before: a model built with output="logits" had its logits scored as probabilities (and
    # now the metrics refuse logits): they get the softmax its predictions apply
    from sklearn.metrics import log_loss

    from keras_species.models.labels import classification_output

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inp))
    model = keras.Model(inp, classification_output(x, 3, "logits", class_names=["cod", "eel", "ray"]))
    ev = evaluate_and_report(model, split_manifest, tmp_path / "r", batch_size=4, tta="hflip",
                             plots=False)
    pred = predict_manifest(model, split_manifest.split("test"), batch_size=4)
    assert np.allclose(pred.probs.sum(axis=1), 1.0, atol=1e-5)
    for output in (0, -1, "label"):  # the index of the output too (0 gave logits, refused)
        again = predict_manifest(model, split_manifest.split("test"), batch_size=4, output=output)
        np.testing.assert_allclose(again.probs, pred.probs, atol=1e-6)
    assert ev.test["log_loss"] == pytest.approx(log_loss(pred.manifest.labels, pred.probs,
                                                         labels=[0, 1, 2]), rel=1e-5)
    assert 0 < ev.metrics["test_tta"]["log_loss"]


def test_tta_none_in_any_case_is_plain_inference(split_manifest, tmp_path):
    # before: "NONE" passed the recipes' check, then crashed the evaluation after training with
    # nothing written; "none" ran a second identity-only pass and reported it as TTA
    for word in ("none", "NONE", "None", []):
        ev = evaluate_and_report(colour_model(), split_manifest, tmp_path / str(word), batch_size=4,
                                 tta=word, plots=False)
        assert "test_tta" not in ev.metrics
        assert "test-time augmentation" not in ev.report_path.read_text().lower()
    # a comma-separated list, as the recipes' --tta passes it (before: the report's heading
    # refused it after both passes had run)
    ev = evaluate_and_report(colour_model(), split_manifest, tmp_path / "comma", batch_size=4,
                             tta="hflip,vflip", plots=False)
    assert "test-time augmentation (hflip, vflip)" in ev.report_path.read_text()


def test_an_output_index_picks_that_output_of_a_dict_model_with_and_without_tta(split_manifest):
    # before: output=0 read the "label" output on the plain path and was refused with TTA
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inp))
    aux = keras.layers.Dense(3, activation="softmax", name="aux")(x)
    label = keras.layers.Dense(3, activation="softmax", name="label")(x)
    model = keras.Model(inp, {"aux": aux, "label": label})
    test = split_manifest.split("test")
    by_name = {k: predict_manifest(model, test, batch_size=4, output=k).probs for k in ("aux", "label")}
    assert not np.allclose(by_name["aux"], by_name["label"])
    for tta in (None, "identity"):
        for i, name in enumerate(model.output_names):
            got = predict_manifest(model, test, batch_size=4, output=i, tta=tta).probs
            np.testing.assert_allclose(got, by_name[name], atol=1e-6)
    with pytest.raises(ValueError, match="2 outputs"):
        predict_manifest(model, test, batch_size=4, output=2)


def test_predict_manifest_refuses_a_resize_mode_before_reading_any_file(tmp_path):
    import warnings

    import keras
    import numpy as np

    from keras_species.data.manifest import Manifest
    from keras_species.evaluation.evaluate import predict_manifest

    (tmp_path / "empty.png").write_bytes(b"")  # checking it would warn first
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="resize='letterbox'"):
            predict_manifest(model, Manifest([str(tmp_path / "empty.png")], np.array([0]), ["a", "b"]),
                             resize="letterbox")


def test_labels_are_matched_to_the_models_classes_by_name(split_manifest, tmp_path):
    # before: a labelled set whose class list was not the model's (another order, a subset) had
    # its labels scored against the model's columns by position (0.117 where 0.733 was right),
    # and the error for a subset advised passing the model's names, which did the same
    from keras_species.evaluation.evaluate import in_class_order, score
    from keras_species.models.labels import classification_output

    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inp))
    model = keras.Model(inp, classification_output(x, 3, "softmax", class_names=split_manifest.class_names))
    names = split_manifest.class_names  # cod, eel, ray
    plain = evaluate_and_report(model, split_manifest, tmp_path / "a", batch_size=4, plots=False).test

    order = [names[2], names[0], names[1]]
    reordered, where = in_class_order(split_manifest, order)
    assert where.tolist() == [1, 2, 0] and reordered.class_names == order
    moved = evaluate_and_report(model, reordered, tmp_path / "b", batch_size=4, plots=False).test
    for key in ("accuracy", "log_loss", "f1_macro", "confusion_matrix", "majority_baseline"):
        assert moved[key] == plain[key], key

    no_eel = split_manifest.select_classes([names[2], names[0]])  # ray, cod: two of its classes
    ev = evaluate_and_report(model, no_eel, tmp_path / "c", batch_size=4, plots=False)
    pred = predict_manifest(model, no_eel.split("test"), batch_size=4)
    by_name = [names.index(no_eel.class_names[k]) for k in pred.manifest.labels]
    assert ev.test["accuracy"] == pytest.approx(np.mean(pred.probs.argmax(1) == by_name))
    assert [r["support"] for r in ev.test["per_class"]] == [2, 0, 2]
    assert score(pred, names)["accuracy"] == ev.test["accuracy"]  # score matches by name too

    alien = Manifest(split_manifest.paths, split_manifest.labels, ["cod", "eel", "koi"], splits=split_manifest.splits)
    with pytest.raises(ManifestError, match=r"1 class\(es\) the model has no output for: 'koi'"):
        evaluate_and_report(model, alien, tmp_path / "d", batch_size=4, plots=False)
    with pytest.raises(ValueError, match=r"differ from the class names the model carries"):
        evaluate_and_report(model, split_manifest, tmp_path / "e", class_names=order, batch_size=4, plots=False)


def test_multi_hot_labels_are_moved_to_the_models_columns():
    from keras_species.evaluation.evaluate import in_class_order

    m = Manifest(["a.png", "b.png", "c.png"], np.array([[1, 0], [0, 1], [1, 1]], np.uint8), ["eel", "cod"])
    with pytest.warns(UserWarning, match=r"no column for 1 of the model's tags \('ray'\): they are scored as absent"):
        moved, where = in_class_order(m, ["cod", "ray", "eel"])
    assert moved.labels.tolist() == [[0, 0, 1], [1, 0, 0], [1, 0, 1]] and where.tolist() == [2, 0]
    assert moved.labels.dtype == np.uint8 and m.class_names == ["eel", "cod"]  # the original stays
    with pytest.raises(ManifestError, match="'eel'"):
        in_class_order(m, ["cod"])
    empty_tag = Manifest(["a.png"], np.array([[0, 1]], np.uint8), ["koi", "cod"])
    assert in_class_order(empty_tag, ["cod"])[0].labels.tolist() == [[1]]  # a tag no image carries
    same = in_class_order(m, ["cod", "eel"])[0]  # every tag there: no warning (pytest errors on one)
    assert same.labels.tolist() == [[0, 1], [1, 0], [1, 1]]


def test_the_threshold_figure_says_tuned_only_when_the_thresholds_were(tmp_path, monkeypatch):
    # its first title said "val images, where the thresholds are tuned" of a fixed 0.5 too
    from keras_species.evaluation import plots as plots_mod

    root = write_image_folder(tmp_path / "fish", per_class=6, size=(SIZE, SIZE))
    single = from_folder(root)
    hot = np.zeros((len(single), 3), np.uint8)
    hot[np.arange(len(single)), single.labels] = 1
    m = Manifest(single.paths, hot, single.class_names).with_splits(["train", "val", "test"] * 6)
    said = []
    real = plots_mod.plot_threshold_curve
    monkeypatch.setattr(plots_mod, "plot_threshold_curve",
                        lambda *a, **k: (said.append(k.get("split")), real(*a, **k))[1])
    model = colour_model(activation="sigmoid")
    for thresholds, tuned_on_val in (("global", False), (0.5, False), (0.4, True)):
        evaluate_and_report(model, m, tmp_path / f"run{len(said)}", thresholds=thresholds,
                            thresholds_tuned_on_val=tuned_on_val)
    evaluate_and_report(model, m.split("test"), tmp_path / "no_val", thresholds=0.5)
    tuned = "val images, where the thresholds are tuned"
    assert said == [tuned, "val images", tuned, "test images"]


def test_metrics_json_is_written_after_the_report(split_manifest, tmp_path, monkeypatch):
    # `keras-species runs` reads metrics.json as an evaluated run: written first, a Ctrl-C while
    # the figures or the report were drawn left a run listed `done` without its report
    from keras_species.evaluation import report as report_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_mod, "render_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_and_report(colour_model(), split_manifest, tmp_path / "r", batch_size=4, plots=False)
    assert (tmp_path / "r" / "predictions.csv").is_file() and not (tmp_path / "r" / "metrics.json").exists()
