"""Tests of keras_species/evaluation/tta.py with tiny Keras models whose output depends on flips."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from keras_species.evaluation.tta import predict_tta, resolve_transforms  # noqa: E402

H, W = 4, 6


def _linear_model(multi_output: bool = False) -> keras.Model:
    """output = flatten(x) @ w with an asymmetric w, so flips change the output."""
    inp = keras.Input((H, W, 1), name="image")
    flat = keras.layers.Flatten()(inp)
    dense = keras.layers.Dense(2, use_bias=False, name="label")
    out = dense(flat)
    w = np.arange(H * W * 2, dtype=np.float32).reshape(H * W, 2) / 10.0
    w[:, 1] = w[::-1, 1] ** 2
    dense.set_weights([w])
    if multi_output:
        other = keras.layers.Dense(3, name="aux")(flat)
        return keras.Model(inp, [other, out]), w
    return keras.Model(inp, out), w


def _images(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, H, W, 1)).astype(np.float32)


def _expected(x: np.ndarray, w: np.ndarray, flips: list) -> np.ndarray:
    outs = [f(x).reshape(len(x), -1) @ w for f in flips]
    return np.mean(outs, axis=0)


IDENT = lambda x: x  # noqa: E731
HFLIP = lambda x: x[:, :, ::-1]  # noqa: E731
VFLIP = lambda x: x[:, ::-1]  # noqa: E731


def test_identity_equals_predict() -> None:
    model, _ = _linear_model()
    x = _images()
    got = predict_tta(model, x, transforms=("identity",), batch_size=2)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5)


def test_flip_average_numpy_and_dataset() -> None:
    model, w = _linear_model()
    x = _images(7)
    want = _expected(x, w, [IDENT, HFLIP])
    assert not np.allclose(want, x.reshape(7, -1) @ w)  # the flip matters
    np.testing.assert_allclose(predict_tta(model, x, batch_size=3), want, rtol=1e-4)
    flips = _expected(x, w, [IDENT, HFLIP, VFLIP])
    np.testing.assert_allclose(predict_tta(model, x, transforms="flips"), flips, rtol=1e-4)
    # an unbatched dataset of (image, label) pairs streams through; labels are ignored
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(7, np.int64)))
    np.testing.assert_allclose(predict_tta(model, ds, batch_size=4), want, rtol=1e-4)
    # a batched dataset of images only
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2)
    np.testing.assert_allclose(predict_tta(model, ds), want, rtol=1e-4)


def test_multi_output_takes_label() -> None:
    model, w = _linear_model(multi_output=True)
    x = _images(3)
    got = predict_tta(model, x, transforms=("identity", "vflip"))
    np.testing.assert_allclose(got, _expected(x, w, [IDENT, VFLIP]), rtol=1e-4)
    assert predict_tta(model, x, transforms=("identity",), output="aux").shape == (3, 3)


def test_rotation_and_crop_presets_keep_shape() -> None:
    model, _ = _linear_model()
    x = _images(2)
    for preset in ("flips_rot90", "five_crop"):
        out = predict_tta(model, x, transforms=preset)
        assert out.shape == (2, 2) and np.isfinite(out).all()
    # constant images are unchanged by every transform
    const = np.full((2, H, W, 1), 3.0, np.float32)
    np.testing.assert_allclose(
        predict_tta(model, const, transforms="five_crop"), model.predict(const, verbose=0),
        rtol=1e-4,
    )


def test_unknown_transform() -> None:
    with pytest.raises(ValueError, match="unknown TTA"):
        resolve_transforms(("identity", "zoom"))


def test_requested_transforms_reads_none_in_any_case_and_comma_lists() -> None:
    from keras_species.evaluation.tta import requested_transforms

    for plain in (None, False, "", "none", "NONE", " None ", [], ()):
        assert requested_transforms(plain) is None
    for wrong in (True, 0, 2.5, ["hflip", 3]):
        with pytest.raises(ValueError, match="give a preset or transform names"):
            requested_transforms(wrong)
    assert requested_transforms("FLIPS") == resolve_transforms("flips")
    assert requested_transforms("identity, HFlip") == ("identity", "hflip")
    with pytest.raises(ValueError, match="unknown TTA"):
        requested_transforms("nothing")


def test_dataset_of_a_dict_input_and_labels() -> None:
    # before: ({"image": x}, y) elements, which model.predict takes, raised an AttributeError
    model, w = _linear_model()
    x = _images(5)
    ds = tf.data.Dataset.from_tensor_slices(({"image": x}, np.zeros(5, np.int32))).batch(2)
    got = predict_tta(model, ds, transforms="flips")
    np.testing.assert_allclose(got, _expected(x, w, [IDENT, HFLIP, VFLIP]), rtol=1e-5)
