"""BatchNorm statistics: which layers have none yet, and estimating them from data.

Keras starts a ``BatchNormalization`` layer with moving mean 0 and moving variance 1 and moves
them towards the batch statistics only while the layer trains, by ``momentum`` (0.99 in
``keras.applications`` and EfficientNet-Lite) each step. A backbone built with ``weights=None``
has only such layers. In inference mode they do not normalise, and through a deep random
network the features shrink to almost nothing (feature std at init, 64 px: EfficientNet-Lite0
7e-13, MobileNetV2 2e-12, MobileNetV3-Small 1e-10, EfficientNetB0 4e-6), so the output is constant.

Training such layers from scratch fixes the training-mode output at once, but not the
inference-mode one (validation, ``predict``, export): after ``k`` steps a moving statistic still
holds ``momentum**k`` of its initial value (0.99**56 = 0.57: EfficientNet-Lite0 on the demo
data, 8 epochs of 7 steps, still predicted one class for every image in inference mode, while
in training mode it reached 0.60 validation accuracy). :func:`recalibrate_batchnorm` sets the
moving statistics to their average over batches of training data (the "precise BatchNorm" of
Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021); ``training.plan`` does it every epoch,
before validation, for the backbone's BatchNorm layers that train from scratch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras
import numpy as np


def _batchnorm_layers(model: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    from keras_species.models.freezing import flat_layers  # here: freezing imports this module

    layers = flat_layers(model) if isinstance(model, keras.Model) else [model]
    return [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]


def untrained_batchnorm(model: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    """The BatchNorm layers of ``model`` that have never seen data (initial moving statistics).

    A layer whose moving mean is exactly 0 and moving variance exactly 1 everywhere has no
    statistics of its own: it was built without pretrained weights (``weights=None``) and has
    not trained since. Pretrained weights (ImageNet, a weights file) always replace these values.

    Args:
        model: a model or a layer; nested models are searched too.

    Returns:
        Those layers, in order (empty when every BatchNorm layer has statistics, or there is none).

    Example:
        >>> from keras_species.models.classifier import build_backbone
        >>> len(untrained_batchnorm(build_backbone("resnet18", 32)))  # weights=None
        20
    """
    out = []
    for layer in _batchnorm_layers(model):
        if not layer.built:
            continue
        mean = keras.ops.convert_to_numpy(layer.moving_mean)
        variance = keras.ops.convert_to_numpy(layer.moving_variance)
        if not mean.any() and np.all(variance == 1):
            out.append(layer)
    return out


_NOISE_ATTRIBUTES = {keras.layers.Dropout: "rate", keras.layers.GaussianDropout: "rate",
                     keras.layers.AlphaDropout: "rate", keras.layers.GaussianNoise: "stddev"}
"""The stochastic layers (and their strength) that :func:`recalibrate_batchnorm` turns off."""


def _noise_layers(model: keras.layers.Layer) -> list[tuple[keras.layers.Layer, str]]:
    """The stochastic layers anywhere in ``model`` (inside custom layers too) and the attribute
    that sets their strength; ConvNeXt's ``StochasticDepth`` (``drop_path_rate``) among them."""
    found = []
    for layer in model._flatten_layers(include_self=True):
        for kind, attribute in _NOISE_ATTRIBUTES.items():
            if isinstance(layer, kind):
                found.append((layer, attribute))
                break
        else:
            if type(layer).__name__ == "StochasticDepth" and hasattr(layer, "drop_path_rate"):
                found.append((layer, "drop_path_rate"))
    return found


def recalibrate_batchnorm(
    model: keras.Model,
    batches: Iterable,
    layers: Sequence[keras.layers.BatchNormalization],
    *,
    max_batches: int = 16,
) -> int:
    """Set the moving statistics of ``layers`` to their population estimate over ``batches``
    (precise BN).

    Runs ``model`` in training mode on up to ``max_batches`` batches without changing any other
    weight, and gives each of ``layers`` the mean and variance of its inputs over all those
    batches' images: the mean of the batch means and the mean of the batch variances plus the
    spread of the batch means (``E[var_B + mean_B**2] - mean**2``, Wu & Johnson), each batch
    weighed by its size. Every other BatchNorm layer keeps its statistics; only layers that train
    (``trainable``) see batch statistics, the others run in inference mode. Dropout and noise
    layers are off during the pass, so that the statistics are those of the inputs these layers
    get at inference.

    Before stop 30 the moving variance was the plain average of the batch variances (2.9 where the
    images' variance was 7.0 on unshuffled batches), batches of any size weighed alike, and
    Dropout ran, so that a BatchNorm layer after it got about twice the variance it sees at
    inference.

    Args:
        model: the model (called on the batches' inputs).
        batches: ``(inputs, ...)`` tuples or inputs, e.g. a ``tf.data.Dataset`` of training data
            (its augmentation is welcome: the statistics are those the layers trained on).
        layers: the BatchNorm layers of ``model`` to recalibrate.
        max_batches: at most this many batches are used.

    Returns:
        The number of batches used (0: nothing changed).

    Example:
        >>> from keras_species.models.classifier import build_classifier
        >>> model = build_classifier("resnet18", 2, input_size=32)
        >>> x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
        >>> recalibrate_batchnorm(model, [x, x], untrained_batchnorm(model))
        2
        >>> untrained_batchnorm(model)
        []
    """
    targets = [layer for layer in layers]
    target_ids = {id(layer) for layer in targets}
    all_bn = _batchnorm_layers(model)
    saved = [layer.momentum for layer in all_bn]
    noise = _noise_layers(model)
    strengths = [getattr(layer, attribute) for layer, attribute in noise]
    sums = {id(layer): [0.0, 0.0] for layer in targets}  # sum of n * mean_B, n * (var_B + mean_B**2)
    images = 0
    used = 0
    try:
        for layer in all_bn:  # moving = momentum * moving + (1 - momentum) * batch
            layer.momentum = 0.0 if id(layer) in target_ids else 1.0  # the batch's own, or unchanged
        for layer, attribute in noise:
            setattr(layer, attribute, 0.0)
        for batch in batches:
            if used >= max_batches:
                break
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            n = int(keras.ops.shape(keras.tree.flatten(inputs)[0])[0])  # a dict of inputs too
            model(inputs, training=True)
            for layer in targets:
                mean = keras.ops.convert_to_numpy(layer.moving_mean).astype(np.float64)
                variance = keras.ops.convert_to_numpy(layer.moving_variance).astype(np.float64)
                total = sums[id(layer)]
                total[0] = total[0] + n * mean
                total[1] = total[1] + n * (variance + mean**2)
            images += n
            used += 1
        for layer in targets if used else []:
            mean = sums[id(layer)][0] / images
            variance = np.maximum(sums[id(layer)][1] / images - mean**2, 0.0)
            layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
            layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    finally:
        for layer, momentum in zip(all_bn, saved):
            layer.momentum = momentum
        for (layer, attribute), strength in zip(noise, strengths):
            setattr(layer, attribute, strength)
    return used


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Recalibrate BatchNorm layers (:func:`recalibrate_batchnorm`) at the end of every epoch.

    It runs before validation (``on_test_begin``, which ``fit`` calls before it validates) or, with
    no validation, at ``on_epoch_end``: put it first in the callback list, so that checkpoints and
    backups written at the end of the epoch hold the new statistics.

    Args:
        batches: the training data (``tf.data.Dataset`` or any re-iterable of batches).
        layers: the BatchNorm layers to recalibrate (they must train in this ``fit``).
        max_batches: batches used each time.

    Example:
        >>> model.fit(train_ds, validation_data=val_ds, epochs=3,                # doctest: +SKIP
        ...           callbacks=[RecalibrateBatchNorm(train_ds, untrained_batchnorm(model))])
    """

    def __init__(
        self, batches: Iterable, layers: Sequence[keras.layers.BatchNormalization], max_batches: int = 16
    ):
        super().__init__()
        self.batches = batches
        self.layers = list(layers)
        self.max_batches = max_batches
        self._done = False

    def on_epoch_begin(self, epoch, logs=None):
        self._done = False

    def _recalibrate(self) -> None:
        if not self._done:
            recalibrate_batchnorm(self.model, self.batches, self.layers, max_batches=self.max_batches)
            self._done = True

    def on_test_begin(self, logs=None):
        self._recalibrate()

    def on_epoch_end(self, epoch, logs=None):
        self._recalibrate()


__all__ = ["untrained_batchnorm", "recalibrate_batchnorm", "RecalibrateBatchNorm"]
