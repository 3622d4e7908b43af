"""R1's autoencoder: two named outputs, shared encoder, save/reload, masked classification loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models.autoencoder import (
    autoencoder_batch,
    autoencoder_dataset,
    autoencoder_targets,
    build_autoencoder,
    compile_autoencoder,
    encoder_of,
    joint_targets,
)

SMALL = {"filters": (4, 8, 8), "dense_units": 8}


def _images(n: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_two_named_outputs_shapes_and_range() -> None:
    model = build_autoencoder(5, 32, **SMALL)
    out = model.predict(_images(), verbose=0)
    assert set(out) == {"reconstruction", "label"}
    assert out["reconstruction"].shape == (4, 32, 32, 3)
    assert out["label"].shape == (4, 5)
    assert out["reconstruction"].dtype == np.float32 and out["label"].dtype == np.float32
    assert 0.0 <= out["reconstruction"].min() and out["reconstruction"].max() <= 1.0
    np.testing.assert_allclose(out["label"].sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("reconstruction").dtype_policy.name == "float32"
    assert model.get_layer("label").dtype_policy.name == "float32"


def test_encoder_shares_weights() -> None:
    model = build_autoencoder(3, 32, **SMALL)
    enc = encoder_of(model)
    assert enc.output_shape == (None, 4, 4, 8)
    x = _images(2)
    before = enc.predict(x, verbose=0)
    conv = model.get_layer("encoder_conv1")
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel * 2.0, bias])
    assert enc.get_layer("encoder_conv1") is conv
    assert not np.allclose(enc.predict(x, verbose=0), before)


def test_pooling_and_errors() -> None:
    flat = build_autoencoder(3, 32, **SMALL)
    avg = build_autoencoder(3, 32, pooling="avg", **SMALL)
    assert flat.get_layer("classifier_dense").kernel.shape == (4 * 4 * 8, 8)
    assert avg.get_layer("classifier_dense").kernel.shape == (8, 8)
    wide = build_autoencoder(3, (32, 48), **SMALL).predict(np.zeros((1, 32, 48, 3)), verbose=0)
    assert wide["reconstruction"].shape == (1, 32, 48, 3)
    with pytest.raises(ValueError, match="divisible by 8"):
        build_autoencoder(3, 30)
    with pytest.raises(ValueError, match="3 conv"):
        build_autoencoder(3, 32, filters=(4, 8))
    with pytest.raises(ValueError, match="encoding"):
        encoder_of(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_save_reload_safe_mode(tmp_path) -> None:
    model = build_autoencoder(3, 32, output="logits", **SMALL)
    path = tmp_path / "ae.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x = _images(2)
    a, b = model.predict(x, verbose=0), again.predict(x, verbose=0)
    for k in ("reconstruction", "label"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-6)
    assert encoder_of(again).output_shape == (None, 4, 4, 8)


def test_autoencoder_targets() -> None:
    y, w = autoencoder_targets(np.array([2, -1, 0, -1]))
    assert y.tolist() == [2, 0, 0, 0]
    assert w.tolist() == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="-1"):
        autoencoder_targets(np.array([0, -2]))


def test_unlabelled_rows_add_no_classification_loss_or_gradient() -> None:
    keras.utils.set_random_seed(0)
    model = build_autoencoder(3, 32, **SMALL)
    compile_autoencoder(model, learning_rate=1e-3)
    x = _images(4)

    # All rows unlabelled: the total loss is the reconstruction loss alone ...
    y, sw = joint_targets(x, np.full(4, -1))
    res = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    mse = float(np.mean((model.predict(x, verbose=0)["reconstruction"] - x / 255.0) ** 2))
    assert res["loss"] == pytest.approx(mse, rel=1e-4)
    assert res["label_loss"] == pytest.approx(0.0, abs=1e-7)

    # ... and a training step leaves the classifier untouched (zero gradient) ...
    head = [v.numpy().copy() for v in model.get_layer("label_logits").weights]
    assert head  # the classifier's last Dense: kernel and bias
    encoder = model.get_layer("encoder_conv1").kernel.numpy().copy()
    model.fit(x, y, sample_weight=sw, epochs=1, batch_size=4, verbose=0)
    for before, v in zip(head, model.get_layer("label_logits").weights):
        np.testing.assert_array_equal(before, v.numpy())
    assert not np.array_equal(encoder, model.get_layer("encoder_conv1").kernel.numpy())

    # ... while labelled rows do train it; a mixed batch's loss ignores unlabelled dummy targets.
    mixed = np.array([0, 2, -1, -1])
    y, sw = joint_targets(x, mixed)
    other = dict(y, label=np.where(mixed == -1, 1, y["label"]))  # another dummy class
    a = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    b = model.evaluate(x, other, sample_weight=sw, verbose=0, return_dict=True)
    assert a["loss"] == pytest.approx(b["loss"])
    assert a["label_loss"] > 0
    model.fit(x, y, sample_weight=sw, epochs=1, batch_size=4, verbose=0)
    assert not np.array_equal(head[0], model.get_layer("label_logits").kernel.numpy())


def test_autoencoder_batch_on_tf_data() -> None:
    import tensorflow as tf

    x = _images(4)
    ds = tf.data.Dataset.from_tensor_slices((x, np.array([1, -1, 0, -1]))).batch(4)
    ds = ds.map(autoencoder_batch)
    images, targets, weights = next(iter(ds))
    np.testing.assert_allclose(targets["reconstruction"].numpy(), x / 255.0, rtol=1e-6)
    assert targets["label"].numpy().tolist() == [1, 0, 0, 0]
    assert weights["label"].numpy().tolist() == [1.0, 0.0, 1.0, 0.0]
    assert weights["reconstruction"].shape == (4, 1, 1)
    model = build_autoencoder(3, 32, output="logits", **SMALL)
    compile_autoencoder(model)
    hist = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_autoencoder_dataset_from_a_manifest_with_unlabelled_rows(tmp_path) -> None:
    from keras_species.data.manifest import Manifest
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "img", per_class=2)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    labels = np.array([0, -1, 1, -1, 2, 2])
    ds = autoencoder_dataset(Manifest(paths, labels, ["cod", "eel", "ray"]), 32, 6, cache=False)
    images, targets, weights = next(iter(ds))
    assert images.shape == (6, 32, 32, 3)
    assert targets["label"].numpy().tolist() == [0, 0, 1, 0, 2, 2]
    assert weights["label"].numpy().tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    np.testing.assert_allclose(targets["reconstruction"].numpy(), images.numpy() / 255.0, rtol=1e-6)
    model = build_autoencoder(3, 32, **SMALL)
    compile_autoencoder(model)
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])
    with pytest.raises(ValueError, match="label_mode"):
        autoencoder_dataset(Manifest(paths, labels, ["cod", "eel", "ray"]), 32, label_mode="none")
