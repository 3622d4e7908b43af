"""k-fold cross-validation: folds, per-fold table, ensemble of the fold models, TTA, files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from keras_species.data import sources, splits
from keras_species.data.manifest import Manifest, ManifestError
from keras_species.training.crossval import (
    FOLDS_CSV,
    PROBS_NPZ,
    CVResult,
    cross_validate,
    probs_scores,
    readable,
)
from tests.conftest import write_image_folder

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model


def _data(tmp_path, per_class=8):
    root = write_image_folder(tmp_path / "img", per_class=per_class, groups_per_class=4)
    m = sources.load(root, group_regex=r"fish_(\d+)_")
    m = splits.stratified_split(m, (0.75, 0.25), seed=0, names=("trainval", "test"))
    return m.split("trainval"), m.split("test")


def _tiny_model(num_classes):
    import keras

    def build():
        inputs = keras.Input((24, 24, 3), name="image")
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out = keras.layers.Dense(num_classes, activation="softmax", name="label")(x)
        return keras.Model(inputs, out)

    return build


def test_probs_scores_counts_absent_classes():
    s = probs_scores(np.array([0, 0]), np.array([[0.5, 0.25, 0.25], [0.2, 0.7, 0.1]]))
    assert s["accuracy"] == 0.5
    assert s["loss"] == pytest.approx(-(np.log(0.5) + np.log(0.2)) / 2)


def test_cross_validate_end_to_end(tmp_path):
    from keras_species.training.plan import Phase

    trainval, test = _data(tmp_path)
    cv = cross_validate(
        _tiny_model(trainval.num_classes), trainval, test, k=2, seed=1, group_aware=True,
        phases=[Phase("train", epochs=1, learning_rate=1e-2, monitor="val_loss")],
        image_size=24, batch_size=8, tta="flips", run_dir=tmp_path / "cv",
    )
    assert isinstance(cv, CVResult) and cv.k == 2
    # every train+val image is validated exactly once, and no group is on both sides of a fold
    assert sum(f.n_val for f in cv.folds) == len(trainval)
    assert all(f.n_train + f.n_val == len(trainval) for f in cv.folds)
    assert cv.fold_test_probs.shape == (2, len(test), 3)
    assert cv.fold_test_probs_tta.shape == (2, len(test), 3)
    assert np.allclose(cv.oof_probs.sum(axis=1), 1.0, atol=1e-4)
    # the ensemble is the mean of the fold models' test probabilities
    mean = cv.fold_test_probs.mean(axis=0)
    assert cv.ensemble["accuracy"] == pytest.approx(
        float((mean.argmax(1) == cv.y_test).mean()))
    assert cv.ensemble_tta is not None
    rows = cv.fold_rows()
    assert [r["fold"] for r in rows] == [0, 1, "mean", "ensemble"]
    assert rows[-1]["test_accuracy"] == cv.ensemble["accuracy"]
    assert rows[-1]["test_accuracy_tta"] == cv.ensemble_tta["accuracy"]
    assert rows[-2]["val_loss"] == pytest.approx(np.mean([f.val_loss for f in cv.folds]))
    table = cv.fold_table_markdown()
    assert "val acc" in table and "test acc (TTA)" in table and "**ensemble**" in table
    s = cv.summary()
    assert s["k"] == 2 and s["ensemble_test_accuracy"] == cv.ensemble["accuracy"]
    # files: one run folder per fold, the fold table and the probabilities
    for i in range(2):
        assert (tmp_path / "cv" / f"fold{i}" / "history.csv").is_file()
        assert (tmp_path / "cv" / f"fold{i}" / "best.keras").is_file()
    with open(tmp_path / "cv" / FOLDS_CSV) as f:
        assert [r["fold"] for r in csv.DictReader(f)] == ["0", "1", "mean", "ensemble"]
    with np.load(tmp_path / "cv" / PROBS_NPZ) as z:
        assert z["ensemble_probs"].shape == (len(test), 3)
        assert z["fold_test_probs_tta"].shape == (2, len(test), 3)


def test_cross_validate_train_fn_and_kept_models(tmp_path):
    trainval, test = _data(tmp_path)
    seen = []

    def train_fn(model, train_ds, val_ds, fold_dir):
        seen.append(fold_dir.name)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(train_ds, epochs=1, verbose=0)
        return model

    cv = cross_validate(_tiny_model(3), trainval, test, k=2, train_fn=train_fn, image_size=24,
                        batch_size=8, keep_models=True, run_dir=tmp_path / "cv")
    assert seen == ["fold0", "fold1"]
    assert len(cv.models) == 2 and cv.tta is None and cv.fold_test_probs_tta is None
    assert "TTA" not in cv.fold_table_markdown()


def test_cross_validate_announces_each_fold(tmp_path):
    """A line before each fold's training, so its epoch lines can be told apart."""
    trainval, test = _data(tmp_path)
    said = []

    def train_fn(model, train_ds, val_ds, fold_dir):
        said.append(f"trained {fold_dir.name}")
        return model

    cv = cross_validate(_tiny_model(3), trainval, test, k=2, train_fn=train_fn, image_size=24,
                        batch_size=8, run_dir=tmp_path / "cv", progress=said.append)
    assert said == [
        f"fold 1/2 (folder fold0): train {cv.folds[0].n_train}, val {cv.folds[0].n_val} images",
        "trained fold0",
        f"fold 2/2 (folder fold1): train {cv.folds[1].n_train}, val {cv.folds[1].n_val} images",
        "trained fold1",
    ]


def test_cross_validate_refuses_bad_input(tmp_path):
    trainval, test = _data(tmp_path)
    with pytest.raises(ValueError, match="not both"):
        cross_validate(_tiny_model(3), trainval, test, phases=[], train_fn=lambda *a: a[0])
    other = Manifest(test.paths, test.labels, ["a", "b", "c"])
    with pytest.raises(ManifestError, match="different class lists"):
        cross_validate(_tiny_model(3), trainval, other, k=2, run_dir=tmp_path / "x")
    multi = Manifest(test.paths, test.label_matrix(), test.class_names)
    with pytest.raises(ManifestError, match="multi-label"):
        cross_validate(_tiny_model(3), trainval, multi, k=2, run_dir=tmp_path / "x")
    # the test images passed in train+val as well: the folds trained on them without a word
    both = Manifest(trainval.paths + test.paths, np.r_[trainval.labels, test.labels], trainval.class_names)
    with pytest.raises(ManifestError, match=rf"{len(test)} of the {len(test)} test images are also "
                                            r"train\+val images"):
        cross_validate(_tiny_model(3), both, test, k=2, run_dir=tmp_path / "x")
    assert not (tmp_path / "x" / "fold0").exists()


def test_readable_drops_broken_files(tmp_path):
    trainval, _ = _data(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    m = Manifest(trainval.paths + [str(broken)], np.r_[trainval.labels, 0], trainval.class_names)
    with pytest.warns(UserWarning, match="unreadable"):
        assert len(readable(m)) == len(trainval)


def test_cross_validate_keeps_groups_in_one_fold_by_default(tmp_path, monkeypatch):
    # before: group_aware defaulted to False (kfold's default is None: when there are groups),
    # and frames of one fish sat on both sides of a fold without a word
    trainval, test = _data(tmp_path, per_class=12)
    assert trainval.groups is not None
    made = []
    kfold = splits.kfold
    monkeypatch.setattr(splits, "kfold", lambda *a, **kw: made.append(kfold(*a, **kw)) or made[-1])
    cross_validate(_tiny_model(3), trainval, test, k=3, train_fn=lambda model, *rest: model,
                   image_size=24, batch_size=8, run_dir=tmp_path / "cv")
    (folds,) = made
    for fold in folds:
        sides = {s: set(fold.split(s).groups) for s in ("train", "val")}
        assert not sides["train"] & sides["val"]


def test_the_highest_seed_and_a_numpy_seed_cross_validate(tmp_path):
    # before: seed 2**32 - 1 crashed after the first fold had trained (seed + 1 out of range),
    # and np.int64 seeds reached Keras, which refused them
    trainval, test = _data(tmp_path)
    for seed in (2**32 - 1, np.int64(3)):
        cv = cross_validate(_tiny_model(3), trainval, test, k=2, train_fn=lambda model, *rest: model,
                            image_size=24, batch_size=8, seed=seed, run_dir=tmp_path / f"cv{int(seed)}")
        assert len(cv.folds) == 2
