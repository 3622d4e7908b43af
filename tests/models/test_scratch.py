"""Scratch CNNs of the reports: build, forward pass, flags, save/reload with safe_mode."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models.scratch import SCRATCH_ARCHS, build_scratch, list_scratch


def _count(model: keras.Model, kind: type) -> int:
    return sum(isinstance(layer, kind) for layer in model.layers)


def _images(n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("arch", sorted(SCRATCH_ARCHS))
def test_each_arch_builds_and_predicts(arch: str) -> None:
    model = build_scratch(arch, 5, 32)
    out = model(_images(), training=False)
    assert model.name == arch
    assert model.input.name == "image" or model.inputs[0].name == "image"
    assert tuple(out.shape) == (2, 5)
    assert model.get_layer("label").dtype_policy.name == "float32"
    assert isinstance(model.get_layer("preprocessing"), keras.layers.Rescaling)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-5)


def test_list_scratch_and_defaults() -> None:
    names = [a.name for a in list_scratch()]
    assert names == sorted(SCRATCH_ARCHS)
    assert {"r2_cnn", "r3_cnn", "r4_vgg", "r5_shallow", "r5_deep", "r5_regularised"} <= set(names)
    assert set(SCRATCH_ARCHS["r2_cnn"].flags) >= {"batch_norm", "extra_conv", "dropout", "blocks"}
    assert build_scratch("r4_vgg", 14, output="sigmoid").input_shape == (None, 128, 128, 3)


def test_r5_deep_has_about_five_million_parameters() -> None:
    model = build_scratch("r5_deep", 100)  # the report's 200x200 and 100 classes
    assert model.input_shape == (None, 200, 200, 3)
    assert model.count_params() == 4_841_988
    assert build_scratch("r5_shallow", 100).count_params() < 1_000_000


def test_pixel_scaling_follows_the_report() -> None:
    x = np.full((1, 32, 32, 3), 255.0, "float32")
    r2 = build_scratch("r2_cnn", 3, 32).get_layer("preprocessing")
    r5 = build_scratch("r5_deep", 3, 32).get_layer("preprocessing")
    assert float(np.max(r2(x))) == pytest.approx(1.0)
    assert float(np.min(r2(np.zeros_like(x)))) == pytest.approx(-1.0)
    assert float(np.max(r5(x))) == pytest.approx(1.0)
    assert float(np.min(r5(np.zeros_like(x)))) == pytest.approx(0.0)


def test_r2_flags_change_the_layer_structure() -> None:
    plain = build_scratch("r2_cnn", 9, 32)
    assert _count(plain, keras.layers.Conv2D) == 4
    assert _count(plain, keras.layers.MaxPooling2D) == 4
    assert _count(plain, keras.layers.BatchNormalization) == 0
    assert _count(plain, keras.layers.Dropout) == 0

    bn = build_scratch("r2_cnn", 9, 32, batch_norm=True)
    assert _count(bn, keras.layers.BatchNormalization) == 4
    assert not bn.get_layer("block1_conv").use_bias

    two = build_scratch("r2_cnn", 9, 32, extra_conv=True, batch_norm=True)
    assert _count(two, keras.layers.Conv2D) == 8
    assert _count(two, keras.layers.BatchNormalization) == 8

    reg = build_scratch("r2_cnn", 9, 32, blocks=3, dropout=0.3)
    assert _count(reg, keras.layers.MaxPooling2D) == 3
    assert _count(reg, keras.layers.Dropout) == 3
    assert reg.get_layer("block3_dropout").rate == pytest.approx(0.3)
    assert [layer.units for layer in reg.layers if isinstance(layer, keras.layers.Dense)] == [
        1024,
        9,
    ]


def test_dense_dropout_of_r3_r4_r5() -> None:
    dense = lambda m: [la.units for la in m.layers if isinstance(la, keras.layers.Dense)]  # noqa: E731
    r3 = build_scratch("r3_cnn", 8, 32)
    assert len(dense(r3)) == 3 and _count(r3, keras.layers.Dropout) == 2
    assert _count(r3, keras.layers.Conv2D) == 4
    assert dense(build_scratch("r4_vgg", 14, 32)) == [100, 100, 14]
    assert dense(build_scratch("r5_shallow", 10, 32)) == [16, 10]
    assert _count(build_scratch("r5_deep", 10, 32), keras.layers.Dropout) == 0
    reg = build_scratch("r5_regularised", 10, 32)
    assert [la.rate for la in reg.layers if isinstance(la, keras.layers.Dropout)] == [0.5]


def test_outputs_and_errors() -> None:
    x = _images()
    assert (
        build_scratch("r4_vgg", 4, 32, output="sigmoid").get_layer("label").activation
        == "sigmoid"
    )
    logits = build_scratch("r5_shallow", 4, (32, 48), output="logits")
    assert logits.input_shape == (None, 32, 48, 3)
    assert logits.get_layer("label").activation == "linear" and logits.get_layer("label").logits
    assert tuple(build_scratch("r5_shallow", 4, 32, output="logits")(x).shape) == (2, 4)
    with pytest.raises(KeyError, match="r2_cnn"):
        build_scratch("nope", 3)
    with pytest.raises(ValueError, match="batch_norm"):
        build_scratch("r5_deep", 3, 32, batch_norm=True)
    with pytest.raises(ValueError, match="output"):
        build_scratch("r2_cnn", 3, 32, output="relu")
    with pytest.raises(ValueError, match="blocks"):
        build_scratch("r2_cnn", 3, 32, blocks=5)


def test_mixed_precision_output_is_float32() -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_scratch("r2_cnn", 3, 32, batch_norm=True)
        assert model.get_layer("block1_conv").compute_dtype == "float16"
        assert model(_images()).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("arch", "flags"),
    [
        ("r2_cnn", {"batch_norm": True, "extra_conv": True, "dropout": 0.2, "blocks": 3}),
        ("r4_vgg", {}),
        ("r5_regularised", {}),
    ],
)
def test_save_reload_safe_mode(tmp_path, arch: str, flags: dict) -> None:
    model = build_scratch(arch, 4, 32, **flags)
    x = _images(3)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_trains_one_step() -> None:
    model = build_scratch("r2_cnn", 3, 32, batch_norm=True)
    model.compile("adam", "sparse_categorical_crossentropy")
    hist = model.fit(_images(6), np.array([0, 1, 2, 0, 1, 2]), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_a_dropout_outside_0_to_1_is_refused():
    # -0.1 built no Dropout layer without a word
    from keras_species.models.scratch import build_scratch

    for rate in (-0.1, 1.0, "0.2"):
        with pytest.raises(ValueError, match=r"dropout=.*: give a rate in \[0, 1\)"):
            build_scratch("r5_deep", 3, 32, dropout=rate)
