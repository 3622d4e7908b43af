"""Heads: pooling, Dense stack, float32 output named "label"."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models.heads import HeadConfig, build_head
from keras_species.training.precision import precision_policy


def _head(config=None, output="softmax", classes=4):
    inputs = keras.Input((3, 3, 8))
    return keras.Model(inputs, build_head(inputs, classes, config, output))


@pytest.mark.parametrize("pooling,width", [("avg", 8), ("flatten", 72), ("avgmax", 16)])
def test_pooling(pooling, width):
    model = _head(HeadConfig(pooling=pooling))
    assert model.get_layer("label_logits").kernel.shape == (width, 4)


def test_dense_stack_of_r3():
    model = _head(HeadConfig(units=(512, 256, 128), dropout=0.3, batch_norm=True))
    names = [layer.name for layer in model.layers]
    for i in (1, 2, 3):
        assert {f"head_dense{i}", f"head_bn{i}", f"head_act{i}", f"head_dropout{i}"} <= set(names)
    assert [model.get_layer(f"head_dense{i}").units for i in (1, 2, 3)] == [512, 256, 128]
    x = np.random.default_rng(0).normal(size=(5, 3, 3, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)).sum(axis=1), 1.0, rtol=1e-5)


def test_outputs():
    # seeded: with random weights all 8 logits came out positive once in CI (1 in 256)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 8)).astype("float32")
    sig = np.asarray(_head(output="sigmoid")(x))
    assert ((sig > 0) & (sig < 1)).all() and not np.allclose(sig.sum(axis=1), 1.0)
    logits = _head(output="logits")
    out = logits.layers[-1]
    assert out.name == "label" and out.logits and out.activation == "linear"
    assert isinstance(logits.get_layer("label_logits"), keras.layers.Dense)
    raw = np.asarray(logits(x))
    assert (raw < 0).any()  # logits, not probabilities


@pytest.mark.parametrize("policy", ["float16", "bfloat16"])
def test_output_is_float32_under_mixed_precision(policy):
    with precision_policy(policy):
        model = _head(HeadConfig(units=(16,)))
    assert model.get_layer("head_dense1").compute_dtype == policy.replace("mixed_", "")
    assert model.get_layer("label").compute_dtype == "float32"
    out = model(np.zeros((1, 3, 3, 8), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        HeadConfig(pooling="max")
    with pytest.raises(ValueError, match="dropout"):
        HeadConfig(dropout=1.5)
    with pytest.raises(ValueError, match="output"):
        _head(output="relu")


def test_head_units_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1 unit"):
        HeadConfig(units=(64, 0))
    assert HeadConfig(units=()).units == ()
    with pytest.raises(ValueError, match=r"512\.7 is not a whole number of units"):  # was 512
        HeadConfig(units=(512.7,))
    assert HeadConfig(units=(np.int64(8), 4.0)).units == (8, 4)
    for one in ("512", 512):  # "512" became (5, 1, 2); 512 failed inside tuple()
        with pytest.raises(ValueError, match="as a sequence, e.g. \\(512,\\)"):
            HeadConfig(units=one)
