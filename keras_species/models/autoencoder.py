"""R1's model 2: a convolutional autoencoder with a classifier on its encoding, trained jointly.

One functional model, two named outputs:

- ``reconstruction`` (float32, ``(B, H, W, 3)`` in [0, 1]): the input image scaled to [0, 1],
  rebuilt by the decoder; trained with MSE on every image (labelled or not).
- ``label`` (float32, ``(B, C)``): the classifier's prediction; trained with cross-entropy on
  labelled images only.

Layout: ``Input`` ``image`` (0–255 RGB) → ``preprocessing`` (Rescaling to [-1, 1], R1's
``(x − 0.5)/0.5``) → encoder 3 × (Conv 3×3 → ReLU → MaxPool 2×2/2), last layer named
``encoding`` (``H/8 × W/8 × filters[-1]``) → decoder 3 × Conv2DTranspose 3×3 stride 2 (ReLU,
ReLU, sigmoid) → ``reconstruction``; and ``encoding`` → Flatten → Dense ``dense_units`` ReLU →
Dense C → ``label``.

The classifier reads the *flattened* encoding by default: a PyTorch ``nn.Linear`` on the encoder
output, as R1 used, implies it. At 224 px with ``filters=(32, 64, 128)`` that is a 28×28×128 =
100,352-value vector and a 25.7M-parameter first Dense layer; ``pooling="avg"`` (global average
pooling, 128 values, 33k parameters) is the choice for very few labelled images or big inputs.

Joint training with unlabelled images uses Keras per-output sample weights: rows with label −1
get a dummy class and weight 0 on ``label``, so they add nothing to the classification loss or its
gradient (:func:`autoencoder_targets`, :func:`joint_targets` for arrays,
:func:`autoencoder_dataset` / :func:`autoencoder_batch` for ``tf.data``, :func:`compile_autoencoder`).

Example:
    >>> import numpy as np
    >>> model = build_autoencoder(3, 32, filters=(8, 16, 32), dense_units=16)
    >>> compile_autoencoder(model)
    >>> x = np.random.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    >>> y, sw = joint_targets(x, np.array([0, 2, -1, -1]))
    >>> hist = model.fit(x, y, sample_weight=sw, epochs=1, verbose=0)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import layers

from keras_species.data.manifest import UNLABELLED, Manifest
from keras_species.models.labels import classification_output

if TYPE_CHECKING:
    import tensorflow as tf

OUTPUTS = ("softmax", "logits")


def build_autoencoder(
    num_classes: int,
    input_size: int | Sequence[int] = 224,
    *,
    filters: Sequence[int] = (32, 64, 128),
    dense_units: int = 256,
    pooling: str = "flatten",
    output: str = "softmax",
    class_names: Sequence[str] | None = None,
) -> keras.Model:
    """Build R1's convolutional autoencoder with a classifier (one model, two outputs).

    Args:
        num_classes: classes of the ``label`` output.
        input_size: ``H`` (square) or ``(H, W)``, each divisible by 8 (three 2×2 poolings).
        filters: filters of the three encoder convs; the decoder mirrors them
            (``filters[1], filters[0], 3``).
        dense_units: units of the classifier's hidden Dense layer (ReLU).
        pooling: how the classifier reads the encoding: ``"flatten"`` (R1) or ``"avg"``.
        output: ``"softmax"`` or ``"logits"`` for the ``label`` output.
        class_names: class names kept in the ``label`` output layer (its label map).

    Returns:
        An uncompiled functional ``keras.Model`` named ``autoencoder`` with dict outputs
        ``{"reconstruction": (B, H, W, 3) float32 in [0, 1], "label": (B, C) float32}``.

    Example:
        >>> m = build_autoencoder(15, 64, filters=(8, 16, 32))
        >>> sorted(m.output_names)
        ['label', 'reconstruction']
    """
    if len(filters) != 3:
        raise ValueError(f"filters={tuple(filters)}: R1's encoder has exactly 3 conv layers")
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: choose one of {OUTPUTS}")
    if pooling not in ("flatten", "avg"):
        raise ValueError(f"pooling={pooling!r}: choose 'flatten' or 'avg'")
    h, w = (int(input_size),) * 2 if isinstance(input_size, numbers.Integral) else tuple(input_size)
    if h % 8 or w % 8:
        raise ValueError(
            f"input_size {(h, w)} must be divisible by 8 (the encoder halves it 3 times); "
            f"use e.g. {(h // 8 * 8 or 8, w // 8 * 8 or 8)}"
        )
    inputs = keras.Input((h, w, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocessing")(inputs)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"encoder_conv{i}")(x)
        x = layers.MaxPooling2D(2, strides=2, name="encoding" if i == 3 else f"encoder_pool{i}")(x)
    encoding = x

    d = encoding
    for i, f in enumerate((filters[1], filters[0]), start=1):
        d = layers.Conv2DTranspose(
            f, 3, strides=2, padding="same", activation="relu", name=f"decoder_deconv{i}"
        )(d)
    reconstruction = layers.Conv2DTranspose(
        3, 3, strides=2, padding="same", activation="sigmoid", dtype="float32",
        name="reconstruction",
    )(d)

    c = layers.Flatten(name="flatten")(encoding) if pooling == "flatten" else (
        layers.GlobalAveragePooling2D(name="avg_pool")(encoding)
    )
    c = layers.Dense(dense_units, activation="relu", name="classifier_dense")(c)
    label = classification_output(c, num_classes, output, class_names=class_names)
    return keras.Model(
        inputs, {"reconstruction": reconstruction, "label": label}, name="autoencoder"
    )


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder of an autoencoder: image (0–255) → encoding, sharing the model's weights.

    Args:
        model: a model from :func:`build_autoencoder` (or one reloaded from ``.keras``).

    Returns:
        A ``keras.Model`` from ``model``'s ``image`` input to its ``encoding`` layer; training
        either model changes both.

    Example:
        >>> enc = encoder_of(build_autoencoder(3, 32, filters=(8, 16, 32)))
        >>> enc.output_shape
        (None, 4, 4, 32)
    """
    try:
        encoding = model.get_layer("encoding").output
    except ValueError as err:
        raise ValueError(
            f"model {model.name!r} has no layer named 'encoding'; pass a model built by "
            "keras_species.models.autoencoder.build_autoencoder"
        ) from err
    return keras.Model(model.inputs, encoding, name="encoder")


def autoencoder_targets(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classification targets and sample weights that mask unlabelled rows.

    Args:
        labels: ``(N,)`` int class indices, ``-1`` (``UNLABELLED``) for unlabelled images.

    Returns:
        ``(label_targets, label_sample_weights)``: ``(N,)`` int64 targets with unlabelled rows
        set to the dummy class 0, and ``(N,)`` float32 weights, 1 for labelled rows and 0 for
        unlabelled ones. Pass them as ``y={"label": targets, ...}`` and
        ``sample_weight={"label": weights, "reconstruction": ...}`` (:func:`joint_targets` builds
        both dicts); the dummy class then adds nothing to the loss.

    Example:
        >>> autoencoder_targets(np.array([2, -1, 0]))
        (array([2, 0, 0]), array([1., 0., 1.], dtype=float32))
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be (N,) class indices with -1 for unlabelled, got {labels.shape}")
    labels = labels.astype(np.int64)
    if (labels < UNLABELLED).any():
        raise ValueError(f"label {labels.min()} is invalid: use -1 for unlabelled rows")
    labelled = labels != UNLABELLED
    return np.where(labelled, labels, 0), labelled.astype(np.float32)


def joint_targets(
    images: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets and per-output sample weights for ``model.fit`` on in-memory arrays.

    Args:
        images: ``(N, H, W, 3)`` float 0–255 images (the model's input).
        labels: ``(N,)`` int class indices, ``-1`` for unlabelled images.

    Returns:
        ``(y, sample_weight)``: ``y = {"reconstruction": images / 255, "label": targets}`` and
        ``sample_weight = {"reconstruction": ones (N, 1, 1), "label": weights (N,)}`` (Keras wants
        one weight array per output; ``(N, 1, 1)`` broadcasts over the per-pixel MSE).

    Example:
        >>> x = np.zeros((2, 8, 8, 3), "float32")
        >>> y, sw = joint_targets(x, np.array([1, -1]))
        >>> sw["label"].tolist(), sw["reconstruction"].shape
        ([1.0, 0.0], (2, 1, 1))
    """
    targets, weights = autoencoder_targets(labels)
    images = np.asarray(images, np.float32)
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} labels")
    y = {"reconstruction": images / 255.0, "label": targets}
    return y, {"reconstruction": np.ones((len(images), 1, 1), np.float32), "label": weights}


def autoencoder_batch(
    images: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor | None = None
) -> tuple[tf.Tensor, dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Turn a batch ``(images 0–255, labels[, label weights])`` into a joint-training batch.

    Use it as ``dataset.map(autoencoder_batch)``; :func:`autoencoder_dataset` does this on the
    library's pipeline.

    Args:
        images: ``(B, H, W, 3)`` float 0–255 tensor.
        labels: ``(B,)`` int tensor; ``-1`` marks unlabelled rows when ``weights`` is ``None``.
        weights: optional ``(B,)`` label weights (0 for unlabelled rows), used as they are.

    Returns:
        ``(images, y, sample_weight)`` as in :func:`joint_targets`, as tensors.

    Example:
        >>> import tensorflow as tf
        >>> x, y, w = autoencoder_batch(tf.zeros((2, 8, 8, 3)), tf.constant([1, -1]))
        >>> w["label"].numpy().tolist()
        [1.0, 0.0]
    """
    import tensorflow as tf

    labels = tf.cast(labels, tf.int64)
    labelled = tf.not_equal(labels, UNLABELLED)
    targets = tf.where(labelled, labels, tf.zeros_like(labels))
    label_w = tf.cast(labelled, tf.float32) if weights is None else tf.cast(weights, tf.float32)
    images = tf.cast(images, tf.float32)
    sample_weight = {
        "reconstruction": tf.ones(tf.stack([tf.shape(labels)[0], 1, 1]), tf.float32),
        "label": label_w,
    }
    return images, {"reconstruction": images / 255.0, "label": targets}, sample_weight


def autoencoder_dataset(
    manifest: Manifest, image_size: int | Sequence[int], batch_size: int = 128, **pipeline_kw: Any
) -> tf.data.Dataset:
    """Joint-training batches from a manifest mixing labelled and unlabelled (``-1``) images.

    The pipeline needs a class for every row, so unlabelled rows get the dummy class 0 and a
    per-sample weight 0 (``make_dataset(..., label_mode="sparse", sample_weights=mask)``); the
    batches are then mapped by :func:`autoencoder_batch`.

    Args:
        manifest: single-label manifest; labels ``-1`` for unlabelled images.
        image_size: ``H`` or ``(H, W)`` (divisible by 8 for :func:`build_autoencoder`).
        batch_size: images per batch (R1: 128).
        **pipeline_kw: more arguments of ``keras_species.data.pipeline.make_dataset``
            (``training``, ``augment``, ``seed``, ``cache``…), not ``label_mode`` or
            ``sample_weights``.

    Returns:
        A ``tf.data.Dataset`` of ``(images, {"reconstruction", "label"}, sample weights)``.

    Example:
        >>> ds = autoencoder_dataset(manifest, 224, 128, training=True, augment="r1")  # doctest: +SKIP
        >>> model.fit(ds, epochs=40)                                                  # doctest: +SKIP
    """
    import dataclasses

    from keras_species.data.pipeline import make_dataset

    if manifest.multilabel:
        raise ValueError("the autoencoder's classifier is single-label: pass a single-label manifest")
    for k in ("label_mode", "sample_weights"):
        if k in pipeline_kw:
            raise ValueError(f"autoencoder_dataset sets {k} itself; leave it out")
    targets, weights = autoencoder_targets(manifest.labels)
    filled = dataclasses.replace(manifest, labels=targets)
    ds = make_dataset(
        filled, image_size, batch_size, label_mode="sparse", sample_weights=weights, **pipeline_kw
    )
    return ds.map(autoencoder_batch)


def joint_objective(
    model: keras.Model, *, reconstruction_weight: float = 1.0, label_weight: float = 1.0
) -> dict:
    """The losses and metrics of R1's joint training, as keyword arguments of ``compile``.

    MSE on ``reconstruction`` plus sparse cross-entropy on ``label`` (from logits when the
    model's ``label`` layer outputs logits), and the ``label`` accuracy as a weighted metric, so
    that the masked (unlabelled) rows do not count in it.

    Args:
        model: a model from :func:`build_autoencoder`.
        reconstruction_weight: weight of the MSE term in the total loss.
        label_weight: weight of the cross-entropy term.

    Returns:
        ``{"loss": ..., "loss_weights": ..., "metrics": ..., "weighted_metrics": ...}``: the
        logs then hold ``reconstruction_mse`` and ``label_crossentropy`` (over labelled images),
        each term computed exactly per image.

    Example:
        >>> sorted(joint_objective(build_autoencoder(3, 32, filters=(8, 16, 32))))
        ['loss', 'loss_weights', 'metrics', 'weighted_metrics']
    """
    from_logits = bool(model.get_layer("label").get_config().get("logits"))
    return {
        "loss": {
            "reconstruction": keras.losses.MeanSquaredError(),
            "label": keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        },
        "loss_weights": {"reconstruction": reconstruction_weight, "label": label_weight},
        # each term exactly, per image: Keras' own per-output "*_loss" logs average the batches'
        # means, and undercount on a dataset of unknown length (stop 31, Keras 3.15)
        "metrics": {"reconstruction": [keras.metrics.MeanSquaredError(name="mse")]},
        "weighted_metrics": {"label": [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="crossentropy", from_logits=from_logits),
        ]},
    }


def compile_autoencoder(
    model: keras.Model,
    *,
    learning_rate: float = 1e-4,
    reconstruction_weight: float = 1.0,
    label_weight: float = 1.0,
) -> None:
    """Compile for R1's joint training: MSE on ``reconstruction`` + sparse CE on ``label``.

    Args:
        model: a model from :func:`build_autoencoder` (softmax or logits output).
        learning_rate: Adam learning rate (R1: 1e-4).
        reconstruction_weight: weight of the MSE term in the total loss.
        label_weight: weight of the cross-entropy term.

    Returns:
        None; ``model`` is compiled with :func:`joint_objective` (accuracy on ``label``). Losses
        are averaged over the whole batch, masked rows counting as zeros, so the classification
        term of a batch scales with its share of labelled rows.

    Example:
        >>> compile_autoencoder(build_autoencoder(3, 32, filters=(8, 16, 32)))
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        **joint_objective(model, reconstruction_weight=reconstruction_weight, label_weight=label_weight),
    )
