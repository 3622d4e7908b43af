"""recipes.feature_classifiers end to end: cached features, several classifiers, one table."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from recipes import feature_classifiers
from recipes.feature_classifiers import FeatureClassifiersConfig, classifier_names, run
from tests.conftest import write_image_folder
from tests.recipes.conftest import StopRun

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model

CLASSES = ("cod", "eel", "ray", "gar", "ide", "koi")


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        feature_classifiers.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for f in FeatureClassifiersConfig.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in out, f
    assert "--config" in out


def test_defaults_are_r2s():
    c = FeatureClassifiersConfig()
    assert (c.backbone, c.weights) == ("densenet121", "imagenet")
    assert classifier_names(c.classifiers) == ["svc", "rf", "hgb", "xgb", "logreg"]
    with pytest.raises(ValueError, match="unknown"):
        classifier_names(["svm"])


def test_offline_imagenet_fails_at_once(tmp_path, monkeypatch, capsys):

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    monkeypatch.setattr("keras_species.weights_files.host_reachable", lambda *a, **k: False)
    code = feature_classifiers.main(["--out", str(tmp_path / "runs"), "--name", "x"])
    assert code == 2
    assert "ImageNet weights for densenet121" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "feature_classifiers" / "x").exists()


def test_classifiers_on_cached_features(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    config = FeatureClassifiersConfig(
        data=str(data), out=tmp_path / "runs", name="t", backbone="resnet18", weights="none",
        image_size=32, batch_size=16, audit=False, verbose=0, mixed_precision="off",
        ratios=(0.5, 0.17, 0.33), feature_cache=str(tmp_path / "cache"),
        classifier_params={"rf": {"n_estimators": 20}, "hgb": {"max_iter": 10}},
    )
    result = run(config)
    ran = ["svc", "rf", "hgb", "logreg"]
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("classifier ")]
    if importlib.util.find_spec("xgboost") is not None:
        ran.insert(3, "xgb")
    else:
        assert "xgboost" in result.skipped["xgb"]
        # said on screen too, not only in the report
        assert said[3] == "classifier 4/5: xgb (XGBoost) skipped: xgboost is not installed (pip install xgboost)"
    # one line a classifier, in order, with its validation score
    assert [line.split(":")[0] for line in said] == [f"classifier {i}/5" for i in range(1, 6)]
    assert said[0].startswith("classifier 1/5: svc (SVC (RBF)): fitted in ")
    assert said[0].endswith(f"val accuracy {result.comparison[0]['val_acc']:.3f}")
    assert [r["model"] for r in result.comparison] == ran
    for row in result.comparison:
        for key in ("val_loss", "val_acc", "test_loss", "test_acc", "top5", "macro_auc",
                    "unique_correct", "unique_wrong", "precision_macro", "recall_macro"):
            assert row.get(key) is not None, key
    assert not result.features_from_cache
    d = result.run_dir
    for name in ("config.json", "split.csv", "comparison.csv", "metrics.json", "predictions.csv",
                 "classifier.joblib", "report.md", "plots/confusion_matrix.png",
                 "plots/confusion_matrix_svc.png", "plots/confusion_matrix_logreg.png",
                 "plots/accuracy_vs_loss.png", "plots/top5_vs_auc.png",
                 "plots/confident_mistakes.png", "plots/uncertain_predictions.png"):
        assert (d / name).exists(), name
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["best_classifier"] == result.best
    assert set(metrics["classifiers"]) == set(ran)
    assert len(metrics["classifiers"]["rf"]["confusion_matrix"]) == len(CLASSES)
    assert metrics["test"]["accuracy"] == metrics["classifiers"][result.best]["accuracy"]
    report = (d / "report.md").read_text()
    for text in ("Classifiers on backbone features", "#unique correct", "#unique errors",
                 "Accuracy, precision and recall per classifier", "| macro precision |",
                 "| metric | svc | rf |",
                 "Confusion matrix per classifier", "confusion_matrix_rf.png", "top-5"):
        assert text in report, text
    # a second run reads the features back from the cache
    again = run(FeatureClassifiersConfig(**{**config.__dict__, "name": "t2",
                                            "classifiers": ("logreg",)}))
    assert again.features_from_cache and [r["model"] for r in again.comparison] == ["logreg"]


def test_mixed_precision_is_said_to_have_no_effect():
    # stop 30: recorded in the report, never applied, and left out of the feature cache's key
    with pytest.warns(UserWarning, match="--mixed-precision bfloat16 has no effect in feature_classifiers"):
        feature_classifiers.checked_classifiers(FeatureClassifiersConfig(mixed_precision="bfloat16",
                                                                         backbone="resnet18", weights="none"))


def test_fit_on_train_and_val_chooses_and_scores_on_val_with_a_fit_on_train(tmp_path, capsys):
    # stop 30: with --fit-on train+val the val scores were the classifiers' own training rows
    # (val accuracy 1.0) and chose the classifier by them
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    base = dict(data=str(data), out=tmp_path / "runs", backbone="resnet18", weights="none",
                image_size=32, batch_size=16, audit=False, verbose=0, mixed_precision="off",
                ratios=(0.5, 0.17, 0.33), feature_cache=str(tmp_path / "cache"),
                classifiers=("logreg", "rf"), classifier_params={"rf": {"n_estimators": 20}})
    alone = run(FeatureClassifiersConfig(name="train", **base))
    both = run(FeatureClassifiersConfig(name="both", fit_on="train+val", **base))
    for a, b in zip(alone.comparison, both.comparison):  # the same val scores: a fit on train
        assert (a["model"], a["val_acc"], a["val_loss"]) == (b["model"], b["val_acc"], b["val_loss"])
    assert both.best == alone.best
    assert "come from a fit of each on train alone" in (both.run_dir / "report.md").read_text()


@pytest.mark.parametrize(("params", "message"), [
    ('{"logreg": {"bogus": 1}}',
     "--classifier-params logreg: LogisticRegression.__init__() got an unexpected keyword argument 'bogus'"),
    ('{"logreg": {"C": "big"}}', "--classifier-params logreg: The 'C' parameter of LogisticRegression must be"),
    ('{"lgreg": {"C": 1}}', "--classifier-params: 'lgreg' is not a classifier; its keys are classifier names"),
    ('{"logreg": 3}', "--classifier-params logreg: 3 is not an object of arguments"),
    # the recipe scores probabilities: it crashed after the extraction, losing logreg's results
    ('{"svc": {"probability": false}}', "--classifier-params svc: This 'Pipeline' has no attribute "
     "'predict_proba'; this recipe scores each classifier's probabilities"),
])
def test_bad_classifier_params_stop_before_any_feature_is_extracted(params, message, tmp_path, capsys):
    # they used to raise a scikit-learn TypeError after the extraction (or, for a misspelt
    # classifier, to be ignored without a word), with the run folder made and the features computed
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=3, size=(24, 24))
    code = feature_classifiers.main([
        "--data", str(data), "--out", str(tmp_path / "runs"), "--backbone", "resnet18",
        "--weights", "none", "--image-size", "32", "--classifiers", "logreg,svc",
        "--feature-cache", str(tmp_path / "cache"), "--classifier-params", params])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"python -m recipes.feature_classifiers: error: {message}"), err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_xgb_alone_without_xgboost_stops_before_any_feature_is_extracted(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgboost" else real(name, *a))
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=3, size=(24, 24))
    code = feature_classifiers.main([
        "--data", str(data), "--out", str(tmp_path / "runs"), "--backbone", "resnet18",
        "--weights", "none", "--image-size", "32", "--classifiers", "xgb",
        "--feature-cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and "--classifiers xgb: xgboost is not installed (pip install xgboost)" in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_a_classifier_whose_arguments_fail_on_the_data_is_left_out_and_the_others_kept(tmp_path, capsys):
    # SVC(kernel="precomputed") passes the toy fit's data-dependent ValueError; its real fit
    # ended the run with a raw traceback after logreg had been fitted
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    result = run(FeatureClassifiersConfig(
        data=str(data), out=tmp_path / "runs", name="pre", backbone="resnet18", weights="none",
        image_size=32, batch_size=16, audit=False, verbose=0, mixed_precision="off",
        ratios=(0.5, 0.17, 0.33), feature_cache="none", classifiers=("logreg", "svc"),
        classifier_params={"svc": {"kernel": "precomputed"}}))
    out = capsys.readouterr().out
    assert ('classifier 2/2: svc (SVC (RBF)) skipped: its fit failed with --classifier-params svc '
            '{"kernel": "precomputed"}: ') in out
    assert [row["model"] for row in result.comparison] == ["logreg"]


def test_classifier_params_of_a_classifier_that_does_not_run_are_named_in_a_warning():
    from recipes.feature_classifiers import check_classifier_params

    with pytest.warns(UserWarning, match="the arguments of rf are not used, since --classifiers runs logreg"):
        check_classifier_params(["logreg"], {"rf": {"n_estimators": "many"}, "logreg": {"C": 2.0}})


def test_a_class_with_one_image_runs_every_classifier_with_a_warning(tmp_path, capsys):
    # svc used to stop the run after the feature extraction with scikit-learn's traceback
    # "Requesting 2-fold cross-validation but provided less than 2 examples for at least one class"
    data = write_image_folder(tmp_path / "data", classes=CLASSES[:3], per_class=6, size=(24, 24))
    for f in sorted((data / "ray").iterdir())[1:]:
        f.unlink()
    message = ("svc: 'ray' (1 image) in training: too few for the cross-validated calibration of "
               "SVC probabilities")
    with pytest.warns(UserWarning, match=re.escape(message)):
        code = feature_classifiers.main([
            "--data", str(data), "--out", str(tmp_path / "runs"), "--name", "one", "--backbone",
            "resnet18", "--weights", "none", "--image-size", "32", "--no-audit",
            "--classifiers", "svc,rf,hgb,logreg", "--feature-cache", str(tmp_path / "cache"),
            "--classifier-params", '{"rf": {"n_estimators": 20}, "hgb": {"max_iter": 10}}'])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    run_dir = tmp_path / "runs" / "feature_classifiers" / "one"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["classifiers"]) == {"svc", "rf", "hgb", "logreg"}
    assert metrics["fit_warnings"]["svc"][0].startswith(message)
    report = (run_dir / "report.md").read_text()
    assert "Classifier warnings" in report and message in report


def test_a_bare_resume_uses_the_runs_own_backbone_and_weights(tmp_path, monkeypatch, stop_at):
    # --resume --out --name alone: the stored backbone's weights are checked, not densenet121's
    # ImageNet weights (offline an error); the stored classifiers run
    from keras_species.data import prepare
    from keras_species.recipe import start_run

    start_run("feature_classifiers", FeatureClassifiersConfig(
        out=tmp_path, name="x", backbone="resnet18", weights="none", image_size=32,
        classifiers=("logreg",)))
    checked = []
    monkeypatch.setattr(feature_classifiers, "check_weights", lambda *args: checked.append(args))

    stop_at(prepare, "prepare_data")
    with pytest.raises(StopRun):
        run(FeatureClassifiersConfig(out=tmp_path, name="x", resume=True))
    assert checked == [("resnet18", None, 32)]
    resumed = FeatureClassifiersConfig(out=tmp_path, name="x", resume=True)
    assert feature_classifiers.open_run("feature_classifiers", resumed,
                                        feature_classifiers.checked_classifiers)[2] == (["logreg"], None)


@pytest.mark.parametrize("under", ["notes.txt/cache", "notes.txt/a/b", "notes.txt"])
def test_a_feature_cache_under_a_file_is_refused_before_any_work(under, tmp_path, capsys):
    # it failed with "Not a directory" once the features were computed, the run folder failed
    data = write_image_folder(tmp_path / "data", classes=CLASSES[:3], per_class=3, size=(24, 24))
    (tmp_path / "notes.txt").write_text("mine")
    cache = tmp_path / under
    code = feature_classifiers.main([
        "--data", str(data), "--out", str(tmp_path / "runs"), "--backbone", "resnet18",
        "--weights", "none", "--image-size", "32", "--feature-cache", str(cache)])
    err = capsys.readouterr().err
    where = ("is a file" if under == "notes.txt"
             else f"lies inside {tmp_path / 'notes.txt'}, which is a file")
    assert code == 2 and err == (
        f"python -m recipes.feature_classifiers: error: --feature-cache {cache}: {where}, not a "
        "folder: give a folder (it is made when absent), or none to keep no cache; see --help\n"), err
    assert not (tmp_path / "runs").exists() and (tmp_path / "notes.txt").read_text() == "mine"
    FeatureClassifiersConfig(feature_cache=str(tmp_path / "new" / "cache")).check()  # made later
    FeatureClassifiersConfig(feature_cache="none").check()


def test_a_csv_split_without_val_rows_is_refused_before_the_run_folder(tmp_path, capsys):
    # val picks the classifier the report details, test scores them: both are needed; a CSV
    # of train and test rows failed only after the run folder was made
    from keras_species.recipe import recipe_need_splits

    assert recipe_need_splits(FeatureClassifiersConfig) == ("train", "val", "test")
    data = write_image_folder(tmp_path / "data", classes=CLASSES[:3], per_class=4, size=(24, 24))
    rows = ["path,label,split"] + [
        f"{path},{path.parent.name},{'test' if i % 2 else 'train'}"
        for i, path in enumerate(sorted(data.glob("*/*.png")))]
    csv_file = tmp_path / "split.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    code = feature_classifiers.main([
        "--data", str(csv_file), "--out", str(tmp_path / "runs"), "--backbone", "resnet18",
        "--weights", "none", "--image-size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith(f"python -m recipes.feature_classifiers: error: --data {csv_file}: its "
                          "split column holds no 'val' rows (12 images: 6 test, 6 train)"), err
    assert "needs train and val and test" in err and "--split stratified" in err
    assert not (tmp_path / "runs").exists()


def test_the_data_summary_is_printed_once_before_the_features_also_on_resume(tmp_path, capsys):
    # it printed no data summary, while run_transfer's recipes print one before any training
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    flags = ["--out", str(tmp_path / "runs"), "--name", "s"]
    code = feature_classifiers.main([
        *flags, "--data", str(data), "--backbone", "resnet18", "--weights", "none",
        "--image-size", "32", "--batch-size", "16", "--no-audit", "--verbose", "0",
        "--ratios", "0.5", "0.17", "0.33", "--classifiers", "logreg",
        "--feature-cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    (summary,) = [line for line in out.splitlines() if line.startswith("36 images, 6 classes")]
    assert summary == "36 images, 6 classes (single-label), splits test=12 train=18 val=6; split: stratified"
    assert out.splitlines()[:3] == [  # first: before the features are extracted
        summary, "features: resnet18 (weights none, 32 px, avg pooling) of 36 images",
        f"features: 512 values per image, computed in {out.split('computed in ')[1].split(' s')[0]} s "
        f"(cached in {next((tmp_path / 'cache').glob('*.npz'))})"]
    assert "classifier 1/1: logreg (Logistic regression): fitted in " in out
    # each classifier's scores and the features are in the report's sections, not again in
    # tables of every number
    report = (tmp_path / "runs" / "feature_classifiers" / "s" / "report.md").read_text()
    assert "### classifiers" not in report and "### features" not in report
    assert "| metric | logreg |" in report and "512 values per image" in report
    # a resumed run says it once too, with its split read back
    assert feature_classifiers.main([*flags, "--resume"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("36 images, 6 classes")] == [
        summary.replace("split: stratified", "split: stratified (read back from split.csv)")]
    assert "features: 512 values per image, read from the cache " in out
    # and says what resuming a finished run does here: no model to re-evaluate (it said so)
    assert ("finished already: fitting its classifiers again on the backbone's features and "
            "rewriting metrics.json") in out and "re-evaluating its model" not in out


def test_a_dump_that_fails_leaves_no_cut_classifier_joblib(tmp_path, monkeypatch):
    # before: joblib.dump wrote classifier.joblib in place, so a run killed or failing mid-dump
    # left a cut file that predict would read as the run's classifier
    import joblib

    def dump_half(value, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"\x80\x04 half a pickle")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(joblib, "dump", dump_half)
    data = write_image_folder(tmp_path / "data", classes=CLASSES[:3], per_class=6, size=(24, 24))
    config = FeatureClassifiersConfig(
        data=str(data), out=tmp_path / "runs", name="cut", backbone="resnet18", weights="none",
        image_size=32, batch_size=16, audit=False, verbose=0, mixed_precision="off",
        classifiers=("logreg",), feature_cache="none")
    with pytest.raises(OSError, match="No space left"):
        run(config)
    run_dir = tmp_path / "runs" / "feature_classifiers" / "cut"
    assert not (run_dir / "classifier.joblib").exists()
    assert not [p.name for p in run_dir.iterdir() if "tmp" in p.name]


def test_class_weights_by_class_name_or_index_reach_the_fit(tmp_path, monkeypatch, capsys):
    # before: JSON keys are strings and the fit takes class indices, so every class_weight dict
    # failed ("The classes, [0, 1, 2], are not in class_weight"), after the features
    from keras_species.training import features

    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    seen = []
    real = features.train_sklearn

    def spy(x, y, name, **kwargs):
        seen.append(kwargs.get("class_weight"))
        return real(x, y, name, **kwargs)

    monkeypatch.setattr(features, "train_sklearn", spy)
    weights = {CLASSES[1]: 5, "2": 3}
    result = run(FeatureClassifiersConfig(
        data=str(data), out=tmp_path / "runs", name="cw", backbone="resnet18", weights="none",
        image_size=32, batch_size=16, audit=False, verbose=0, mixed_precision="off",
        ratios=(0.5, 0.17, 0.33), feature_cache="none", classifiers=("logreg",),
        classifier_params={"logreg": {"class_weight": weights}}))
    assert [row["model"] for row in result.comparison] == ["logreg"]
    assert seen[-1] == {1: 5, 2: 3}
    with pytest.raises(feature_classifiers.SettingError, match=r"class_weight key 'pike' is neither a class "
                                                              r"name nor a class index \(0 to 5\)"):
        feature_classifiers.with_class_indices({"class_weight": {"pike": 2}}, list(CLASSES), "logreg")
    with pytest.raises(feature_classifiers.SettingError, match=r"class_weight key '6' is neither"):
        feature_classifiers.with_class_indices({"class_weight": {"6": 2}}, list(CLASSES), "logreg")


def test_settings_are_checked_once_a_run_and_the_toy_fit_says_nothing(tmp_path, monkeypatch, stop_at):
    # before: three checks (command line, start_run, checked_classifiers): the mixed-precision
    # warning three times, three toy fits, and the toy fit's own warnings about its 12 rows
    import warnings

    from keras_species.data import prepare
    from keras_species.training import features

    calls = []
    real = features.train_sklearn
    monkeypatch.setattr(features, "train_sklearn", lambda x, *a, **k: (calls.append(len(x)), real(x, *a, **k))[1])
    feature_classifiers._PARAMS_PASSED.clear()
    stop_at(prepare, "prepare_data")
    data = write_image_folder(tmp_path / "data", classes=CLASSES, per_class=6, size=(24, 24))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(StopRun):
            run(FeatureClassifiersConfig(
                data=str(data), out=tmp_path / "runs", name="once", backbone="resnet18", weights="none",
                image_size=32, mixed_precision="bfloat16", classifiers=("hgb",),
                classifier_params={"hgb": {"early_stopping": True, "max_iter": 5}}))
    assert calls == [12]  # one toy fit of its 12 rows (check() runs more than once)
    texts = [str(w.message) for w in said]
    assert sum("has no effect in feature_classifiers" in t for t in texts) == 1
    assert not [t for t in texts if "early stopping is off" in t]


def test_class_weight_keys_json_cannot_order_are_still_checked():
    # a regression of the toy-fit memo: its key was json.dumps(..., sort_keys=True), a TypeError
    # for np.int64 keys or 0 beside "cod" (dicts made from np.unique(y))
    import numpy as np

    FeatureClassifiersConfig(classifier_params={"svc": {"class_weight": dict(zip(np.arange(3), [1.0, 2.0, 3.0]))}}).check()
    FeatureClassifiersConfig(classifier_params={"svc": {"class_weight": {0: 2, "cod": 5}}}).check()
