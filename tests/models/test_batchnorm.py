"""BatchNorm statistics: layers without them (weights=None), and recalibrating them from data."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models.batchnorm import (
    RecalibrateBatchNorm,
    recalibrate_batchnorm,
    untrained_batchnorm,
)


def two_bn_model() -> keras.Model:
    """Input → BN "a" → BN "b" → Dense: the BN layers see the raw input, whatever the training."""
    inputs = keras.Input((3,))
    x = keras.layers.BatchNormalization(name="a")(inputs)
    x = keras.layers.BatchNormalization(name="b")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="label")(x))


def batches(n: int = 3, size: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(5.0 * (i + 1), 1.0 + i, (size, 3)).astype("float32") for i in range(n)]


def test_untrained_batchnorm_finds_the_layers_without_statistics():
    model = two_bn_model()
    assert [layer.name for layer in untrained_batchnorm(model)] == ["a", "b"]
    model.get_layer("a").moving_variance.assign(np.full(3, 0.5, "float32"))
    assert [layer.name for layer in untrained_batchnorm(model)] == ["b"]
    nested = keras.Sequential([keras.Input((3,)), two_bn_model()])
    assert len(untrained_batchnorm(nested)) == 2  # nested models are searched
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert untrained_batchnorm(plain) == []


def test_recalibrate_sets_the_statistics_of_all_the_batches_images():
    # stop 30: the variance was the average of the batch variances (the spread between batch
    # means lost: here their means are 5, 10 and 15) and a short last batch weighed as a full one
    model = two_bn_model()
    a, b = model.get_layer("a"), model.get_layer("b")
    data = batches(3)
    data[-1] = data[-1][:3]  # a last batch of 3
    assert recalibrate_batchnorm(model, [(x, None) for x in data], [a]) == 3
    every = np.concatenate(data)
    np.testing.assert_allclose(np.asarray(a.moving_mean), every.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(a.moving_variance), every.var(0), rtol=1e-4)
    # "b" ran in training mode too, but its statistics and both momenta are as they were
    np.testing.assert_array_equal(np.asarray(b.moving_mean), np.zeros(3))
    np.testing.assert_array_equal(np.asarray(b.moving_variance), np.ones(3))
    assert a.momentum == b.momentum == 0.99
    assert recalibrate_batchnorm(model, data, [b], max_batches=2) == 2


def test_recalibrate_turns_dropout_off_for_the_statistics_inference_sees():
    # stop 30: Dropout(0.5) before a BatchNorm layer ran during the pass and about doubled the
    # variance that layer keeps, against what it gets at inference
    inputs = keras.Input((3,))
    x = keras.layers.Dropout(0.5, name="drop")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    data = batches(3)
    assert recalibrate_batchnorm(model, data, [model.get_layer("bn")]) == 3
    np.testing.assert_allclose(np.asarray(model.get_layer("bn").moving_variance), np.concatenate(data).var(0),
                               rtol=1e-4)
    assert model.get_layer("drop").rate == 0.5  # put back


class _Noisy(keras.layers.Layer):
    """A custom layer (not a Model) with a Dropout inside."""

    def __init__(self):
        super().__init__()
        self.drop = keras.layers.Dropout(0.5)

    def call(self, x, training=None):
        return self.drop(x, training=training)


def test_recalibrate_reaches_dropout_inside_custom_layers_and_reads_dict_inputs():
    inputs = {"a": keras.Input((3,), name="a")}
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(_Noisy()(inputs["a"])))
    data = batches(3)
    assert recalibrate_batchnorm(model, [({"a": x}, None) for x in data], [model.get_layer("bn")]) == 3
    np.testing.assert_allclose(np.asarray(model.get_layer("bn").moving_variance), np.concatenate(data).var(0),
                               rtol=1e-4)


def test_callback_recalibrates_before_validation():
    model = two_bn_model()
    a = model.get_layer("a")
    model.compile(optimizer="sgd", loss="mse")
    data = batches(4)
    x = np.concatenate(data)
    y = np.zeros((len(x), 2), "float32")
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append(np.asarray(a.moving_mean).copy())

    callback = RecalibrateBatchNorm([(d, None) for d in data], [a], max_batches=4)
    model.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), shuffle=False, verbose=0,
              callbacks=[callback, Recorder()])
    expected = np.mean([d.mean(0) for d in data], 0)
    np.testing.assert_allclose(seen[0], expected, rtol=1e-5)  # validation saw the new statistics
    np.testing.assert_allclose(np.asarray(a.moving_mean), expected, rtol=1e-5)
    # Keras's own moving average after 4 steps is still mostly the initial 0
    keras_only = two_bn_model()
    keras_only.compile(optimizer="sgd", loss="mse")
    keras_only.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.all(np.abs(np.asarray(keras_only.get_layer("a").moving_mean)) < 0.2 * np.abs(expected))


def test_callback_without_validation_recalibrates_at_epoch_end():
    model = two_bn_model()
    a = model.get_layer("a")
    model.compile(optimizer="sgd", loss="mse")
    data = batches(2)
    x = np.concatenate(data)
    model.fit(x, np.zeros((len(x), 2), "float32"), batch_size=8, epochs=1, verbose=0,
              callbacks=[RecalibrateBatchNorm(data, [a])])
    np.testing.assert_allclose(np.asarray(a.moving_mean), np.mean([d.mean(0) for d in data], 0), rtol=1e-5)


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_layers_are_not_recalibrated(frozen):
    model = two_bn_model()
    a = model.get_layer("a")
    a.trainable = not frozen
    recalibrate_batchnorm(model, batches(2), [a])
    assert bool(np.asarray(a.moving_mean).any()) is not frozen  # inference mode: nothing to measure
