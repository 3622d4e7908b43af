"""Preprocessing as a layer, so that a built or exported model takes raw 0–255 RGB.

Each registry entry names the preprocessing its backbone expects (``BackboneSpec.preprocessing``);
:func:`preprocessing_layer` turns that name into a serializable Keras layer:

============  =====================================================================
``"none"``    identity: the backbone contains its own (ConvNeXt, EfficientNet, V2, MobileNetV3)
``"tf"``      ``x / 127.5 - 1`` → [-1, 1] (MobileNetV2, Xception, InceptionV3, ResNetV2, R1)
``"unit"``    ``x / 255`` → [0, 1] (R5)
``"torch"``   ``(x / 255 - mean) / std`` with the ImageNet mean/std (DenseNet, torchvision ports)
``"caffe"``   RGB → BGR, then the ImageNet BGR mean subtracted (VGG, ResNet of keras.applications)
============  =====================================================================

These match ``keras.applications.imagenet_utils.preprocess_input`` for the modes ``"tf"``,
``"torch"`` and ``"caffe"``.
"""

from __future__ import annotations

import keras

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

PREPROCESSING_NAMES = ("none", "tf", "unit", "torch", "caffe")


@keras.saving.register_keras_serializable(package="keras_species")
class ReverseChannels(keras.layers.Layer):
    """Reverse the channel (last) axis: RGB → BGR.

    Written by hand because no core Keras layer permutes channels.

    Example:
        >>> import numpy as np
        >>> np.asarray(ReverseChannels()(np.array([[[[1.0, 2.0, 3.0]]]]))).ravel().tolist()
        [3.0, 2.0, 1.0]
    """

    def call(self, inputs):  # noqa: D102
        return keras.ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):  # noqa: D102
        return input_shape

    def get_config(self) -> dict:  # noqa: D102
        return super().get_config()


def preprocessing_layer(name: str, layer_name: str = "preprocessing") -> keras.layers.Layer:
    """The layer that turns 0–255 RGB into what a backbone expects.

    Args:
        name: one of ``"none"``, ``"tf"``, ``"unit"``, ``"torch"``, ``"caffe"``.
        layer_name: name given to the returned layer.

    Returns:
        A serializable Keras layer (``"caffe"`` is a ``keras.Sequential`` of
        :class:`ReverseChannels` and a fixed ``Normalization``).

    Raises:
        ValueError: for an unknown name.

    Example:
        >>> import numpy as np
        >>> layer = preprocessing_layer("tf")
        >>> float(np.max(layer(np.full((1, 2, 2, 3), 255.0))))
        1.0
    """
    key = name.lower()
    if key == "none":
        return keras.layers.Identity(name=layer_name)
    if key == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=layer_name)
    if key == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name=layer_name)
    if key == "torch":
        return keras.layers.Normalization(
            mean=[255.0 * m for m in IMAGENET_MEAN_RGB],
            variance=[(255.0 * s) ** 2 for s in IMAGENET_STD_RGB],
            name=layer_name,
        )
    if key == "caffe":
        return keras.Sequential(
            [
                ReverseChannels(name=f"{layer_name}_rgb_to_bgr"),
                keras.layers.Normalization(
                    mean=list(CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name=f"{layer_name}_mean"
                ),
            ],
            name=layer_name,
        )
    raise ValueError(
        f"unknown preprocessing {name!r}; choose one of {', '.join(PREPROCESSING_NAMES)}"
    )
