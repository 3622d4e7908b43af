"""Registry entries for the ``keras.applications`` families the reports use.

Every entry builds the application headless (``include_top=False``) with ``weights=None`` and
then, for ``"imagenet"`` or a local file, loads the weights through
:mod:`keras_species.models.weights`: ``"imagenet"`` is the very file Keras itself downloads (file
name, URL and hash below were recorded from the Keras 3 sources by intercepting
``keras.utils.get_file``, and ``tests/models/test_weights.py`` re-checks them), so a file already in
Keras's cache is used offline, and a missing one fails at once when offline.

Preprocessing (checked against the Keras sources): ConvNeXt, EfficientNet, EfficientNetV2 and
MobileNetV3 contain their own (``"none"``, they take 0–255); MobileNetV2, Xception, InceptionV3 and
ResNetV2 use ``"tf"`` ([-1, 1]); VGG and ResNet use ``"caffe"`` (BGR, mean subtracted); DenseNet
uses ``"torch"``.

EfficientNet B0–B7 with ImageNet weights: Keras adds a ``Rescaling(1/sqrt(std))`` layer after its
``Normalization`` only when built with ``weights="imagenet"`` (to match the original
implementation). Here the backbone is always built the same way and, after loading a legacy
``.h5`` file (Keras's ImageNet file), that scale is folded into the ``Normalization`` variance
(``variance * std``): the same function, and one architecture whatever the weights, so that
``.weights.h5`` files saved from any of our EfficientNet backbones load into any other.

The entries' facts (names, sizes, preprocessing, ``params``: ``count_params()`` of the headless
model, BatchNorm statistics included, measured by building each model; file names, URLs, hashes)
are the table :data:`keras_species.backbone_catalog.KERAS_APPLICATIONS`, readable without Keras;
this module adds the builders. The slow test in ``tests/models/test_registry.py`` re-measures
``params``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np

from keras_species.backbone_catalog import KERAS_APPLICATIONS, KerasApplication
from keras_species.models.registry import (
    backbone_spec,
    check_input_size,
    get_backbone,
    register_backbone,
)
from keras_species.models.weights import (
    load_weights_file,
    refresh_normalization,
    register_keras_weights,
    resolve_weights,
)
from keras_species.weights_files import application_weights_file

_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFNET_V1_STD_RGB = (0.229, 0.224, 0.225)  # keras.applications.efficientnet IMAGENET_STDDEV_RGB


def _fold_efficientnet_std(model: keras.Model) -> None:
    """Fold Keras's ImageNet-only ``Rescaling(1/sqrt(std))`` into the ``Normalization``."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if not norms:
        return
    norm = norms[0]
    values = norm.get_weights()  # mean, variance, count
    values[1] = values[1] * np.asarray(_EFFNET_V1_STD_RGB, values[1].dtype)
    norm.set_weights(values)
    refresh_normalization(model)  # set_weights alone left the layer computing with the old variance


def _keras_imagenet_file(app: KerasApplication, path: str | os.PathLike) -> bool:
    """Whether ``path`` is Keras's own ImageNet file of ``app`` (``efficientnetb0_notop.h5``, or
    the with-top ``efficientnetb0.h5``), whose ``Normalization`` lacks the std fold. Any other
    legacy ``.h5`` (one saved from a keras-species backbone, which has it) was folded again:
    its variance multiplied by the std once more, the input scaled about 2x."""
    keras_name = application_weights_file(app).file_name
    return os.path.basename(os.fspath(path)) in (keras_name, keras_name.replace("_notop", ""))


def _builder(app: KerasApplication) -> Callable[..., keras.Model]:
    def build(input_shape, weights=None) -> keras.Model:
        h, w = int(input_shape[0]), int(input_shape[1])
        check_input_size(get_backbone(app.name), (h, w))
        path = resolve_weights(app.name, weights, size=h if h == w else None)
        constructor = getattr(keras.applications, app.constructor)
        model = constructor(include_top=False, weights=None, input_shape=(h, w, 3))
        if path is not None:
            load_weights_file(model, path)
            if app.family == "EfficientNet" and _keras_imagenet_file(app, path):
                _fold_efficientnet_std(model)
        return model

    return build


# The table (names, sizes, preprocessing, measured params, ImageNet files) is the catalog's.
_APPS: tuple[KerasApplication, ...] = KERAS_APPLICATIONS


def _register(app: KerasApplication) -> None:
    register_keras_weights(app.name, application_weights_file(app))
    register_backbone(backbone_spec(app.facts, _builder(app)))


for _app in _APPS:
    _register(_app)
