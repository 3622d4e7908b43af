"""Feature cache (hit, miss, invalidation), scikit-learn classifiers and the dense head."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_species.data.manifest import Manifest
from keras_species.training.features import (
    attach_head,
    extract_features,
    feature_cache_key,
    train_dense_head,
    train_sklearn,
)
from tests.conftest import write_image_folder

SIZE = 32


def _manifest(root: Path) -> Manifest:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    paths, labels = [], []
    for k, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            paths.append(str(f))
            labels.append(k)
    splits = ["train" if i % 3 else "val" for i in range(len(paths))]
    return Manifest(paths, np.array(labels), classes, splits=splits)


def _extractor(seed: int = 0) -> keras.Model:
    """A tiny image (0–255) → 6 pooled features model standing in for a frozen backbone."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="tiny_extractor")


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    return _manifest(write_image_folder(tmp_path / "images", per_class=4))


def test_cache_miss_then_hit(manifest: Manifest, tmp_path: Path) -> None:
    ext = _extractor()
    cache = tmp_path / "cache"
    first = extract_features(manifest, extractor=ext, cache_dir=cache, batch_size=5)
    assert not first.from_cache
    assert first.features.shape == (12, 6) and first.features.dtype == np.float32
    assert first.paths == manifest.paths and first.labels.tolist() == manifest.labels.tolist()
    assert Path(first.cache_path) == cache / f"{first.key}.npz" and Path(first.cache_path).is_file()

    again = extract_features(manifest, extractor=ext, cache_dir=cache, batch_size=5)
    assert again.from_cache and again.key == first.key
    np.testing.assert_array_equal(again.features, first.features)
    assert [p.name for p in cache.iterdir()] == [f"{first.key}.npz"]  # no temp files left

    # rows stay aligned with the manifest: one image alone gives the same features as its row
    alone = extract_features(manifest.subset([4]), extractor=ext, cache_dir=None)
    np.testing.assert_allclose(alone.features[0], first.features[4], atol=1e-5)
    assert alone.paths == [manifest.paths[4]]


@pytest.mark.parametrize("damage", ["empty", "cut short", "not a zip", "rows out of range"])
def test_a_damaged_cache_file_is_recomputed_with_a_warning(
    manifest: Manifest, tmp_path: Path, damage: str
) -> None:
    ext, cache = _extractor(), tmp_path / "cache"
    first = extract_features(manifest, extractor=ext, cache_dir=cache, batch_size=6)
    path = Path(first.cache_path)
    good = path.read_bytes()
    if damage == "rows out of range":
        np.savez(path, features=first.features, kept=np.arange(len(first.features)) + 100)
    else:
        path.write_bytes({"empty": b"", "cut short": good[: len(good) // 2], "not a zip": b"PK\x03"}[damage])
    with pytest.warns(UserWarning, match=rf"feature cache {path} is damaged \(.+\); the features are "
                                         "computed again and the file is overwritten"):
        again = extract_features(manifest, extractor=ext, cache_dir=cache, batch_size=6)
    assert not again.from_cache
    np.testing.assert_allclose(again.features, first.features, atol=1e-6)
    assert extract_features(manifest, extractor=ext, cache_dir=cache, batch_size=6).from_cache  # mended


def test_changed_inputs_recompute(manifest: Manifest, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = extract_features(manifest, extractor=_extractor(0), cache_dir=cache)
    # other weights, other file list, other pooling → other key, recomputed
    other = extract_features(manifest, extractor=_extractor(1), cache_dir=cache)
    assert other.key != base.key and not other.from_cache
    fewer = extract_features(manifest.subset(range(6)), extractor=_extractor(0), cache_dir=cache)
    assert fewer.key != base.key and not fewer.from_cache and len(fewer) == 6
    args = {"backbone": "resnet18", "weights": None, "input_size": (SIZE, SIZE)}
    assert feature_cache_key(manifest.paths, pooling="avg", **args) != feature_cache_key(
        manifest.paths, pooling="max", **args)
    assert feature_cache_key(manifest.paths, pooling="avg", **args) != feature_cache_key(
        manifest.paths, pooling="avg", **dict(args, weights="imagenet"))
    assert feature_cache_key(manifest.paths, pooling="avg", **args) != feature_cache_key(
        manifest.paths, pooling="avg", **dict(args, input_size=(64, 64)))


def test_resize_rule_in_key(manifest: Manifest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Features of differently resized images are different features: the rule is in the key."""
    from keras_species.data import pipeline

    args = {"backbone": "resnet18", "weights": None, "input_size": (SIZE, SIZE), "pooling": "avg"}
    before = feature_cache_key(manifest.paths, **args)
    monkeypatch.setattr(pipeline, "RESIZE_RULE", "another rule")
    assert feature_cache_key(manifest.paths, **args) != before


def test_weights_file_identity_in_key(manifest: Manifest, tmp_path: Path) -> None:
    w = tmp_path / "b.weights.h5"
    w.write_bytes(b"x" * 10)
    args = {"backbone": "resnet18", "input_size": (SIZE, SIZE), "pooling": "avg"}
    k1 = feature_cache_key(manifest.paths, weights=str(w), **args)
    assert k1 == feature_cache_key(manifest.paths, weights=str(w), **args)
    w.write_bytes(b"y" * 11)
    assert feature_cache_key(manifest.paths, weights=str(w), **args) != k1


def test_changed_file_invalidates(manifest: Manifest, tmp_path: Path) -> None:
    from PIL import Image

    ext, cache = _extractor(), tmp_path / "cache"
    before = extract_features(manifest, extractor=ext, cache_dir=cache)
    target = manifest.paths[2]
    Image.fromarray(np.full((32, 40, 3), 250, np.uint8)).save(target)  # new content
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    after = extract_features(manifest, extractor=ext, cache_dir=cache)
    assert after.key != before.key and not after.from_cache
    assert not np.allclose(after.features[2], before.features[2])
    np.testing.assert_allclose(after.features[5], before.features[5], atol=1e-6)
    assert extract_features(manifest, extractor=ext, cache_dir=cache).from_cache


def test_unreadable_file_is_skipped_and_splits_follow(manifest: Manifest, tmp_path: Path) -> None:
    Path(manifest.paths[3]).write_bytes(b"not an image")
    fs = extract_features(manifest, extractor=_extractor(), cache_dir=tmp_path / "c")
    assert fs.skipped == [manifest.paths[3]]
    assert len(fs) == 11 and manifest.paths[3] not in fs.paths
    assert fs.labels.tolist() == np.delete(manifest.labels, 3).tolist()
    cached = extract_features(manifest, extractor=_extractor(), cache_dir=tmp_path / "c")
    assert cached.from_cache and cached.skipped == fs.skipped and cached.paths == fs.paths
    train = fs.split("train")
    assert set(train.splits) == {"train"} and len(train) + len(fs.split("val")) == 11


def test_file_failing_only_at_decode_keeps_rows_aligned(manifest: Manifest, tmp_path: Path) -> None:
    data = bytearray(Path(manifest.paths[7]).read_bytes())
    i = data.index(b"IDAT") + 12
    data[i:i + 40] = b"\x00" * 40  # header and tail intact, pixel data broken
    Path(manifest.paths[7]).write_bytes(bytes(data))
    ext = _extractor()
    fs = extract_features(manifest, extractor=ext, cache_dir=None)
    assert fs.skipped == [manifest.paths[7]] and len(fs) == 11
    alone = extract_features(manifest.subset([8]), extractor=ext, cache_dir=None)
    np.testing.assert_allclose(fs.features[7], alone.features[0], atol=1e-5)  # row 8 moved up


def test_no_cache_dir_and_custom_dataset_fn(manifest: Manifest) -> None:
    import tensorflow as tf

    def constant_images(m: Manifest, size: tuple[int, int], batch: int) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(np.zeros((len(m), *size, 3), "float32")).batch(batch)

    fs = extract_features(manifest, extractor=_extractor(), cache_dir=None, dataset_fn=constant_images)
    assert fs.cache_path is None and not fs.from_cache
    assert np.allclose(fs.features, fs.features[0])  # every row the same constant image
    with pytest.raises(ValueError, match="backbone"):
        extract_features(manifest)


def test_registry_backbone_if_available(manifest: Manifest, tmp_path: Path) -> None:
    pytest.importorskip("keras_species.models.classifier")
    from keras_species.models import list_backbones

    names = [s.name for s in list_backbones()]
    name = next((n for n in ("resnet18", "mobilenet_v2", "efficientnet_lite0") if n in names), None)
    if name is None:
        pytest.skip("no small backbone registered")
    keras.utils.set_random_seed(0)
    fs = extract_features(manifest, name, input_size=SIZE, cache_dir=tmp_path / "c")
    assert fs.features.shape[0] == 12 and fs.features.ndim == 2
    keras.utils.set_random_seed(0)  # weights=None: the same seed draws the same backbone
    again = extract_features(manifest, name, input_size=SIZE, cache_dir=tmp_path / "c")
    assert again.from_cache and again.key == fs.key
    # another seed draws another random backbone: its features are not the cached ones
    keras.utils.set_random_seed(1)
    other = extract_features(manifest, name, input_size=SIZE, cache_dir=tmp_path / "c")
    assert not other.from_cache and other.key != fs.key
    assert not np.allclose(other.features, fs.features)


def _blobs(n_per: int = 40, dim: int = 12, k: int = 3, noise_seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    centres = np.random.default_rng(0).normal(0, 4, (k, dim))
    rng = np.random.default_rng(noise_seed)
    x = np.concatenate([c + rng.normal(0, 1, (n_per, dim)) for c in centres]).astype("float32")
    return x, np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("name", ["logreg", "svc", "rf", "hgb"])
def test_sklearn_classifiers(name: str) -> None:
    x, y = _blobs()
    kw = {"n_estimators": 20} if name == "rf" else {"max_iter": 20} if name == "hgb" else {}
    clf = train_sklearn(x, y, name, **kw)
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (clf.predict(x) == y).mean() > 0.9


def test_sklearn_errors() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match="choose one of"):
        train_sklearn(x, y, "knn")
    with pytest.raises(ValueError, match="unlabelled"):
        train_sklearn(x, np.where(np.arange(len(y)) == 0, -1, y))
    try:
        import xgboost  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ImportError, match="pip install xgboost"):
            train_sklearn(x, y, "xgb")
    else:
        assert train_sklearn(x, y, "xgb", n_estimators=10).predict_proba(x).shape == (len(x), 3)


def test_dense_head_learns_separable_features(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    x, y = _blobs()
    xv, yv = _blobs(noise_seed=2)  # held-out draws around the same centres
    head = train_dense_head(x, y, xv, yv, units=(32,), epochs=8, lr=1e-2)
    assert head.get_layer("label").dtype_policy.name == "float32"
    assert head.history.history["val_accuracy"][-1] >= 0.95
    assert (head.predict(x, verbose=0).argmax(1) == y).mean() >= 0.95

    multi = (np.eye(3)[y] + np.eye(3)[(y + 1) % 3]).clip(0, 1)
    mh = train_dense_head(x, multi, epochs=8, lr=1e-2, optimizer="adam")
    assert mh.get_layer("label").activation == "sigmoid"
    assert ((mh.predict(x, verbose=0) > 0.5) == multi).mean() > 0.9


def test_attach_head_makes_one_model(tmp_path: Path) -> None:
    ext = _extractor()
    head = train_dense_head(np.random.rand(6, 6).astype("float32"), np.array([0, 1, 2] * 2), epochs=1)
    full = attach_head(ext, head)
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(full.predict(x, verbose=0), head.predict(ext.predict(x, verbose=0), verbose=0),
                               atol=1e-5)
    full.save(tmp_path / "full.keras")
    again = keras.saving.load_model(tmp_path / "full.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), full.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("name", ["logreg", "svc", "rf", "hgb"])
def test_sklearn_classifiers_fit_a_class_with_one_training_row(name: str) -> None:
    # svc used to raise scikit-learn's "Requesting 2-fold cross-validation but provided less
    # than 2 examples for at least one class" (its probabilities are calibrated by CV)
    x, y = _blobs(n_per=6)
    x, y = x[:13], y[:13]  # 6 cod, 6 eel, 1 koi
    kw = {"n_estimators": 20} if name == "rf" else {"max_iter": 20} if name == "hgb" else {}
    if name == "svc":
        with pytest.warns(UserWarning, match=r"svc: 'koi' \(1 image\) in training: too few for "
                                             r"the cross-validated calibration"):
            clf = train_sklearn(x, y, name, class_names=["cod", "eel", "koi"], **kw)
    else:
        clf = train_sklearn(x, y, name, class_names=["cod", "eel", "koi"], **kw)
    proba = clf.predict_proba(x)
    assert proba.shape == (13, 3) and clf.classes_.tolist() == [0, 1, 2]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_svc_calibrates_with_as_many_folds_as_the_smallest_class_allows() -> None:
    x, y = _blobs(n_per=6)
    x, y = x[:15], y[:15]  # the smallest class has 3 rows: 3-fold calibration, no warning
    calibrated = train_sklearn(x, y, "svc")[-1]
    assert calibrated.cv == 3
    assert train_sklearn(x, y, "svc", probability=False).predict(x).shape == (15,)


def test_hgb_early_stopping_is_turned_off_when_its_validation_split_cannot_be_stratified() -> None:
    # above 10 000 rows HistGradientBoosting stops early on a stratified 10 % split, which
    # scikit-learn refuses for a class of one row ("The least populated class in y has only 1 member")
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(5000, np.int64), np.ones(5001, np.int64), [2]]
    x = (rng.normal(size=(len(y), 3)) + y[:, None]).astype("float32")
    with pytest.warns(UserWarning, match=r"hgb: early stopping is off for this fit: class 2 "
                                         r"\(1 image\) in training cannot be on both sides"):
        clf = train_sklearn(x, y, "hgb", max_iter=5)
    assert clf.do_early_stopping_ is False and clf.predict_proba(x[:4]).shape == (4, 3)
    # a validation split too small to hold every class
    x2, y2 = _blobs(n_per=2, k=20)
    with pytest.warns(UserWarning, match=r"its validation split \(4 of 40 rows\) cannot hold "
                                         r"each of the 20 classes"):
        train_sklearn(x2, y2, "hgb", max_iter=5, early_stopping=True)


def test_verbose_2_prints_one_line_for_logs(manifest: Manifest, capsys: pytest.CaptureFixture) -> None:
    # before: any verbose drew Keras' progress bar, whose redraws fill a log file
    extract_features(manifest, extractor=_extractor(), cache_dir=None, batch_size=2, verbose=2)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\r" not in out and "\x1b" not in out and "batch" in out


def test_the_cache_key_tells_apart_what_changes_the_features(tmp_path: Path) -> None:
    # same-named models of the same weights but another pooling, lambdas of another resize,
    # a weights file replaced keeping its size and mtime, and the dtype policy shared a key
    import functools
    import os

    import keras

    from keras_species.training.features import callable_identity, feature_cache_key, model_identity

    def extractor(pooling):
        keras.utils.set_random_seed(0)
        inp = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(2, 3)(inp)
        pool = keras.layers.GlobalAveragePooling2D() if pooling == "avg" else keras.layers.GlobalMaxPooling2D()
        return keras.Model(inp, pool(x), name="my_extractor")

    assert model_identity(extractor("avg")) == model_identity(extractor("avg"))  # built alike: shared
    assert model_identity(extractor("avg")) != model_identity(extractor("max"))

    def make(resize):
        return lambda m, size, batch: (m, size, batch, resize)

    assert callable_identity(make("pad")) != callable_identity(make("crop"))
    assert callable_identity(make("pad")) == callable_identity(make("pad"))
    assert callable_identity(lambda x: x + 1) != callable_identity(lambda x: x + 2)
    assert callable_identity(functools.partial(int, base=2)) != callable_identity(functools.partial(int, base=8))

    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"first weights")
    key = dict(paths=[], backbone="resnet18", input_size=(32, 32), pooling="avg")
    first = feature_cache_key(weights=str(weights), **key)
    stat = weights.stat()
    weights.write_bytes(b"other weights")  # same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p keeps it
    assert feature_cache_key(weights=str(weights), **key) != first
    # a closure over an unbuilt Sequential (a crash), and adapted layers of other statistics (one
    # key) since the values are hashed by content
    prep = keras.Sequential([keras.layers.RandomFlip("horizontal")])
    assert callable_identity(lambda m, size, batch: prep)
    low, high = keras.layers.Normalization(), keras.layers.Normalization()
    low.adapt(np.zeros((4, 3), "float32"))
    high.adapt(np.full((4, 3), 100.0, "float32"))
    assert callable_identity(make(low)) != callable_identity(make(high))

    class Scale(keras.layers.Layer):  # settings Keras cannot read back: never one shared key
        def __init__(self, factors, **kwargs):
            super().__init__(**kwargs)
            self.factors = factors

        def call(self, x):
            return x * self.factors

    assert callable_identity(make(Scale(np.array([1, 2, 3])))) != callable_identity(make(Scale(np.array([3, 2, 1]))))
    # two alike: one key (their numbered names and Keras's own lists made a new key every time)
    assert callable_identity(make(Scale(np.array([1, 2, 3])))) == callable_identity(make(Scale(np.array([1, 2, 3]))))

    class Loader:  # an object with __call__: its class names it, not its address
        def __call__(self, m, size, batch):
            return m

    assert callable_identity(Loader()).startswith(f"{Loader.__module__}.{Loader.__qualname__}:")
    assert callable_identity(Loader()) == callable_identity(Loader())
    plain = feature_cache_key(weights=None, **key)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        assert feature_cache_key(weights=None, **key) != plain
    finally:
        keras.config.set_dtype_policy("float32")


def test_a_dense_head_counts_the_validation_classes_and_names_labels_outside_it():
    # a class only the validation labels hold crashed inside TensorFlow (SparseSoftmaxCrossEntropy)
    from keras_species.training.features import extract_features, train_dense_head

    rng = np.random.default_rng(0)
    x, xv = rng.random((12, 4)).astype("float32"), rng.random((6, 4)).astype("float32")
    y, yv = np.arange(12) % 2, np.arange(6) % 3
    head = train_dense_head(x, y, xv, yv, units=(), epochs=1, verbose=0)
    assert head.output_shape[-1] == 3
    with pytest.raises(ValueError, match=r"y_val holds class 2, and the head has 2 outputs"):
        train_dense_head(x, y, xv, yv, num_classes=2, units=(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y_val has shape \(6,\), and y_train holds \(N, C\) multi-hot"):
        train_dense_head(x, np.eye(2, dtype="uint8")[y], xv, yv, units=(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"verbose=3"):  # train's check (it ran); False is 0
        extract_features(Manifest(["a.png"], np.array([0]), ["cod"]), "resnet18", verbose=3)


def test_a_dense_head_names_labels_of_other_shapes():
    # 3-D labels got the scikit-learn path's advice to use train_dense_head; an empty y_val a
    # Keras "cardinality is ambiguous"
    from keras_species.training.features import train_dense_head

    x = np.random.default_rng(1).random((6, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"y_train has shape \(6, 2, 1\): give \(N,\) class indices or"):
        train_dense_head(x, np.zeros((6, 2, 1)), units=(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"6 validation feature rows but 0 labels in y_val"):
        train_dense_head(x, np.eye(2, dtype="uint8")[np.arange(6) % 2], x, np.array([]), units=(), epochs=1, verbose=0)


def test_a_dense_head_refuses_2d_labels_that_are_not_multi_hot_and_1d_features():
    # before: a column of class indices trained a one-output sigmoid head on targets 0..2 without
    # a word, and multi-hot labels with 1-D features failed with a bare IndexError
    from keras_species.training.features import train_dense_head

    x = np.random.default_rng(1).random((12, 4)).astype("float32")
    y = np.arange(12) % 3
    with pytest.raises(ValueError, match=r"y_train has shape \(12, 1\) and values other than 0 and 1 "
                                         r"\(e\.g\. 2\).*a column of class indices is y\.ravel\(\)"):
        train_dense_head(x, y[:, None], units=(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y_val has shape \(12, 3\) and values other than 0 and 1"):
        train_dense_head(x, np.eye(3)[y], x, 2 * np.eye(3)[y], units=(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"features must be \(N, D\), got shape \(12,\)"):
        train_dense_head(x[:, 0], np.eye(3)[y], units=(), epochs=1, verbose=0)
    head = train_dense_head(x, np.eye(3, dtype=bool)[y], units=(), epochs=1, verbose=0)  # booleans are 0/1
    assert head.output_shape == (None, 3)


def test_the_decompression_bomb_limit_is_in_the_key(manifest: Manifest) -> None:
    # an image skipped as too large stayed skipped, from the cache, once the limit was raised
    from keras_species.data.images import using_max_pixels

    args = {"backbone": "resnet18", "weights": None, "input_size": (SIZE, SIZE), "pooling": "avg"}
    with using_max_pixels(1000):
        small = feature_cache_key(manifest.paths, **args)
    assert feature_cache_key(manifest.paths, **args) != small
