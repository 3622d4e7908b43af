"""Classifiers from the registry: raw 0–255 RGB in, class scores out.

Layout every recipe relies on::

    Input "image" (H, W, 3) float 0–255 RGB
      → layer "preprocessing"   (what the backbone expects, see preprocessing.py)
      → nested model "backbone" (headless, from the registry)
      → head layers             (heads.py)
      → output layer "label"    (float32)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import keras

from keras_species.backbone_catalog import check_input_size
from keras_species.models.batchnorm import untrained_batchnorm
from keras_species.models.heads import HeadConfig, build_head
from keras_species.models.preprocessing import preprocessing_layer
from keras_species.models.registry import get_backbone


def _size(input_size: int | tuple[int, int] | None, default: int) -> tuple[int, int]:
    from keras_species.data.pipeline import size_pair

    return (default, default) if input_size is None else size_pair(input_size, "input_size")


def build_backbone(
    backbone: str,
    input_size: int | tuple[int, int] | None = None,
    weights: str | os.PathLike | None = None,
) -> keras.Model:
    """The registry's headless backbone ``backbone``, named ``"backbone"``.

    Args:
        backbone: registry name (``keras-species models`` lists them).
        input_size: ``H`` or ``(H, W)``; the entry's default size when ``None``.
        weights: ``None``, ``"imagenet"`` or a local ``.weights.h5``/``.h5`` file.

    Returns:
        A ``keras.Model`` taking *preprocessed* input and returning the last feature map.

    Example:
        >>> build_backbone("resnet18", 64).output.shape
        (None, 2, 2, 512)
    """
    spec = get_backbone(backbone)
    h, w = _size(input_size, spec.default_size)
    # every entry's sizes checked here: only keras.applications' builders did, and at 0 px a
    # Lite backbone was built (input (None, 0, 0, 3)) and a ResNet failed in Keras' words
    check_input_size(spec, (h, w))
    model = spec.builder((h, w, 3), weights)
    model.name = "backbone"  # renamed in place: a re-wrapped functional does not reload
    return model


def build_classifier(
    backbone: str,
    num_classes: int,
    *,
    input_size: int | tuple[int, int] | None = None,
    weights: str | os.PathLike | None = None,
    head: HeadConfig | None = None,
    output: str = "softmax",
    name: str | None = None,
    class_names: Sequence[str] | None = None,
    multilabel: bool | None = None,
) -> keras.Model:
    """A classifier: ``image`` → ``preprocessing`` → ``backbone`` → head → ``label``.

    Build it inside ``training.precision.precision_policy(...)`` for mixed precision.

    Args:
        backbone: registry name, e.g. ``"convnext_tiny"``, ``"resnet18"``.
        num_classes: number of classes (tags for multi-label).
        input_size: ``H`` or ``(H, W)``; the backbone's default size when ``None``.
        weights: ``None``, ``"imagenet"`` or a local weights file for the backbone.
        head: the head (``HeadConfig()``: average pooling, linear) .
        output: ``"softmax"``, ``"sigmoid"`` or ``"logits"``.
        name: model name; ``"{backbone}_classifier"`` by default.
        class_names: class names kept in the output layer (the label map that travels with the
            model to ``predict`` and ``export``); ``class_0``… when not given.
        multilabel: for ``output="logits"``: whether prediction applies sigmoid per class.

    Returns:
        A functional ``keras.Model`` taking float 0–255 RGB ``(B, H, W, 3)``.

    Example:
        >>> m = build_classifier("resnet18", 5, input_size=64)
        >>> [m.layers[i].name for i in range(3)]
        ['image', 'preprocessing', 'backbone']
    """
    spec = get_backbone(backbone)
    h, w = _size(input_size, spec.default_size)
    inputs = keras.Input((h, w, 3), name="image")
    x = preprocessing_layer(spec.preprocessing, "preprocessing")(inputs)
    x = build_backbone(spec.name, (h, w), weights)(x)
    outputs = build_head(
        x, num_classes, head, output, name="label", class_names=class_names, multilabel=multilabel
    )
    return keras.Model(inputs, outputs, name=name or f"{spec.name}_classifier")


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested ``"backbone"`` model of a classifier or feature extractor.

    Args:
        model: a model built by :func:`build_classifier` or :func:`feature_extractor`.

    Returns:
        The backbone (shared, not a copy: changing it changes ``model``).

    Example:
        >>> backbone_of(build_classifier("resnet18", 2, input_size=32)).name
        'backbone'
    """
    from keras_species.models.freezing import find_backbone

    backbone = find_backbone(model)  # at any depth: augment_in_model wraps the classifier
    if backbone is None:
        raise ValueError(f"model {model.name!r} has no nested model named 'backbone'")
    return backbone


def feature_extractor(
    backbone: str,
    input_size: int | tuple[int, int] | None = None,
    weights: str | os.PathLike | None = None,
    pooling: str = "avg",
) -> keras.Model:
    """``image`` (0–255 RGB) → ``preprocessing`` → ``backbone`` → pooled ``features``.

    Used to compute backbone features once and cache them (R2's DenseNet features for
    SVM/RF/XGBoost, R5's VGG16 feature extraction). Features are computed in inference mode, so a
    backbone whose BatchNorm layers have no statistics (``weights=None``) warns: its features
    are random, and near-constant for deep ones (EfficientNet-Lite, MobileNet).

    Args:
        backbone: registry name.
        input_size: ``H`` or ``(H, W)``; the backbone's default size when ``None``.
        weights: ``None``, ``"imagenet"`` or a local weights file.
        pooling: ``"avg"``, ``"max"``, ``"avgmax"`` or ``"flatten"``.

    Returns:
        A ``keras.Model`` whose output, named ``features``, is float32 ``(B, D)``.

    Example:
        >>> feature_extractor("resnet18", 32).output.shape
        (None, 512)
    """
    spec = get_backbone(backbone)
    h, w = _size(input_size, spec.default_size)
    inputs = keras.Input((h, w, 3), name="image")
    x = preprocessing_layer(spec.preprocessing, "preprocessing")(inputs)
    model = build_backbone(spec.name, (h, w), weights)
    untrained = untrained_batchnorm(model)
    if untrained:  # features are computed in inference mode: these layers never normalise
        warnings.warn(
            f"feature_extractor({spec.name!r}, weights={weights!r}): {len(untrained)} BatchNorm "
            "layers of the backbone have no statistics (moving mean 0, variance 1), so its "
            "features are random and may be near-constant (EfficientNet-Lite0: std 7e-13); give "
            "it pretrained weights (weights='imagenet' or a weights file; --weights).",
            stacklevel=2,
        )
    x = model(x)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    elif pooling == "avgmax":
        x = keras.layers.Concatenate(name="pool")(
            [
                keras.layers.GlobalAveragePooling2D(name="avg_pool")(x),
                keras.layers.GlobalMaxPooling2D(name="max_pool")(x),
            ]
        )
    elif pooling == "flatten":
        x = keras.layers.Flatten(name="pool")(x)
    else:
        raise ValueError(f"pooling={pooling!r}; choose avg, max, avgmax or flatten")
    outputs = keras.layers.Activation("linear", dtype="float32", name="features")(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_features")
