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

``params`` is ``count_params()`` of the headless model (BatchNorm statistics included), measured by
building each model; the slow test in ``tests/models/test_registry.py`` re-measures it.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from keras_species.models.registry import (
    BackboneSpec,
    check_input_size,
    get_backbone,
    register_backbone,
)
from keras_species.models.weights import (
    KerasWeightsFile,
    load_weights_file,
    register_keras_weights,
    resolve_weights,
)

_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFNET_V1_STD_RGB = (0.229, 0.224, 0.225)  # keras.applications.efficientnet IMAGENET_STDDEV_RGB


def _stages(prefix_fmt: str, counts: tuple[int, ...], first_stage: int = 1) -> list[str]:
    """``prefix_fmt.format(stage=s, block=b)`` for every block of every stage."""
    return [
        prefix_fmt.format(stage=s, block=b)
        for s, count in enumerate(counts, start=first_stage)
        for b in range(1, count + 1)
    ]


def _resnet_blocks(counts: tuple[int, ...], tail: tuple[str, ...] = ()) -> tuple[str, ...]:
    return ("conv1_", *_stages("conv{stage}_block{block}_", counts, 2), *tail)


def _densenet_blocks(counts: tuple[int, ...]) -> tuple[str, ...]:
    names = ["conv1_"]
    for s, count in enumerate(counts, start=2):
        names += [f"conv{s}_block{b}_" for b in range(1, count + 1)]
        if s < 5:
            names.append(f"pool{s}_")
    return (*names, "bn")


def _efficientnet_blocks(counts: tuple[int, ...]) -> tuple[str, ...]:
    letters = string.ascii_lowercase
    blocks = [f"block{s}{letters[b]}_" for s, c in enumerate(counts, start=1) for b in range(c)]
    return ("stem_", *blocks, "top_")


def _convnext_blocks(model_name: str, depths: tuple[int, ...]) -> tuple[str, ...]:
    names = [f"{model_name}_stem"]
    for s, depth in enumerate(depths):
        if s:
            names.append(f"{model_name}_downsampling_layernorm_{s - 1}")
        names += [f"{model_name}_stage_{s}_block_{b}_" for b in range(depth)]
    return tuple(names)


def _mobilenet_v3_blocks(count: int) -> tuple[str, ...]:
    return ("conv", "expanded_conv_", *[f"expanded_conv_{i}_" for i in range(1, count)], "conv_1")


@dataclass(frozen=True)
class _App:
    name: str
    family: str
    constructor: str
    default_size: int
    preprocessing: str
    params: int
    origin: str
    file_hash: str | None
    blocks: tuple[str, ...] | None
    min_size: int = 32


def _fold_efficientnet_std(model: keras.Model) -> None:
    """Fold Keras's ImageNet-only ``Rescaling(1/sqrt(std))`` into the ``Normalization``."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if not norms:
        return
    norm = norms[0]
    values = norm.get_weights()  # mean, variance, count
    values[1] = values[1] * np.asarray(_EFFNET_V1_STD_RGB, values[1].dtype)
    norm.set_weights(values)


def _builder(app: _App) -> Callable[..., keras.Model]:
    def build(input_shape, weights=None) -> keras.Model:
        h, w = int(input_shape[0]), int(input_shape[1])
        check_input_size(get_backbone(app.name), (h, w))
        path = resolve_weights(app.name, weights, size=h if h == w else None)
        constructor = getattr(keras.applications, app.constructor)
        model = constructor(include_top=False, weights=None, input_shape=(h, w, 3))
        if path is not None:
            load_weights_file(model, path)
            legacy = not os.fspath(path).endswith(".weights.h5")
            if legacy and app.family == "EfficientNet":
                _fold_efficientnet_std(model)
        return model

    return build


# Measured: params by building each model; origin and hash recorded from keras.utils.get_file calls.
# fmt: off
_APPS: tuple[_App, ...] = (
    _App("convnext_tiny", "ConvNeXt", "ConvNeXtTiny", 224, "none", 27_820_128,
         "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_tiny_notop.h5",
         'd547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1', _convnext_blocks("convnext_tiny", (3, 3, 9, 3))),
    _App("convnext_small", "ConvNeXt", "ConvNeXtSmall", 224, "none", 49_454_688,
         "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_small_notop.h5",
         '6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab', _convnext_blocks("convnext_small", (3, 3, 27, 3))),
    _App("convnext_base", "ConvNeXt", "ConvNeXtBase", 224, "none", 87_566_464,
         "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_base_notop.h5",
         '40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45', _convnext_blocks("convnext_base", (3, 3, 27, 3))),
    _App("convnext_large", "ConvNeXt", "ConvNeXtLarge", 224, "none", 196_230_336,
         "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_large_notop.h5",
         '96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd', _convnext_blocks("convnext_large", (3, 3, 27, 3))),
    _App("convnext_xlarge", "ConvNeXt", "ConvNeXtXLarge", 224, "none", 348_147_968,
         "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_xlarge_notop.h5",
         'de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05', _convnext_blocks("convnext_xlarge", (3, 3, 27, 3))),
    _App("efficientnet_b0", "EfficientNet", "EfficientNetB0", 224, "none", 4_049_571,
         "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
         '50bc09e76180e00e4465e1a485ddc09d', _efficientnet_blocks((1, 2, 2, 3, 3, 4, 1))),
    _App("efficientnet_b1", "EfficientNet", "EfficientNetB1", 240, "none", 6_575_239,
         "https://storage.googleapis.com/keras-applications/efficientnetb1_notop.h5",
         '74c4e6b3e1f6a1eea24c589628592432', _efficientnet_blocks((2, 3, 3, 4, 4, 5, 2))),
    _App("efficientnet_b2", "EfficientNet", "EfficientNetB2", 260, "none", 7_768_569,
         "https://storage.googleapis.com/keras-applications/efficientnetb2_notop.h5",
         '111f8e2ac8aa800a7a99e3239f7bfb39', _efficientnet_blocks((2, 3, 3, 4, 4, 5, 2))),
    _App("efficientnet_b3", "EfficientNet", "EfficientNetB3", 300, "none", 10_783_535,
         "https://storage.googleapis.com/keras-applications/efficientnetb3_notop.h5",
         'af6d107764bb5b1abb91932881670226', _efficientnet_blocks((2, 3, 3, 5, 5, 6, 2))),
    _App("efficientnet_b4", "EfficientNet", "EfficientNetB4", 380, "none", 17_673_823,
         "https://storage.googleapis.com/keras-applications/efficientnetb4_notop.h5",
         'ebc24e6d6c33eaebbd558eafbeedf1ba', _efficientnet_blocks((2, 4, 4, 6, 6, 8, 2))),
    _App("efficientnet_b5", "EfficientNet", "EfficientNetB5", 456, "none", 28_513_527,
         "https://storage.googleapis.com/keras-applications/efficientnetb5_notop.h5",
         '38879255a25d3c92d5e44e04ae6cec6f', _efficientnet_blocks((3, 5, 5, 7, 7, 9, 3))),
    _App("efficientnet_b6", "EfficientNet", "EfficientNetB6", 528, "none", 40_960_143,
         "https://storage.googleapis.com/keras-applications/efficientnetb6_notop.h5",
         '9ecce42647a20130c1f39a5d4cb75743', _efficientnet_blocks((3, 6, 6, 8, 8, 11, 3))),
    _App("efficientnet_b7", "EfficientNet", "EfficientNetB7", 600, "none", 64_097_687,
         "https://storage.googleapis.com/keras-applications/efficientnetb7_notop.h5",
         'cbcfe4450ddf6f3ad90b1b398090fe4a', _efficientnet_blocks((4, 7, 7, 10, 10, 13, 4))),
    _App("efficientnetv2_b0", "EfficientNetV2", "EfficientNetV2B0", 224, "none", 5_919_312,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b0_notop.h5",
         '893217f2bb855e2983157299931e43ff', _efficientnet_blocks((1, 2, 2, 3, 5, 8))),
    _App("efficientnetv2_b1", "EfficientNetV2", "EfficientNetV2B1", 240, "none", 6_931_124,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b1_notop.h5",
         '0e80663031ca32d657f9caa404b6ec37', _efficientnet_blocks((2, 3, 3, 4, 6, 9))),
    _App("efficientnetv2_b2", "EfficientNetV2", "EfficientNetV2B2", 260, "none", 8_769_374,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b2_notop.h5",
         '1dfe2e7a5d45b6632553a8961ea609eb', _efficientnet_blocks((2, 3, 3, 4, 6, 10))),
    _App("efficientnetv2_b3", "EfficientNetV2", "EfficientNetV2B3", 300, "none", 12_930_622,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b3_notop.h5",
         'f6abf7b5849ac99a89b50dd3fd532856', _efficientnet_blocks((2, 3, 3, 5, 7, 12))),
    _App("efficientnetv2_s", "EfficientNetV2", "EfficientNetV2S", 384, "none", 20_331_360,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-s_notop.h5",
         'af0682fb74e8c54910f2d4393339c070', _efficientnet_blocks((2, 4, 4, 6, 9, 15))),
    _App("efficientnetv2_m", "EfficientNetV2", "EfficientNetV2M", 480, "none", 53_150_388,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-m_notop.h5",
         '1b8dc055df72dde80d614482840fe342', _efficientnet_blocks((3, 5, 5, 7, 14, 18, 5))),
    _App("efficientnetv2_l", "EfficientNetV2", "EfficientNetV2L", 480, "none", 117_746_848,
         "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-l_notop.h5",
         'b0b66b5c863aef5b46e8608fe1711615', _efficientnet_blocks((4, 7, 7, 10, 19, 25, 7))),
    _App("vgg16", "VGG", "VGG16", 224, "caffe", 14_714_688,
         "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
         '6d6bbae143d832006294945121d1f1fc', _stages("block{stage}_", (1, 1, 1, 1, 1))),
    _App("vgg19", "VGG", "VGG19", 224, "caffe", 20_024_384,
         "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
         '253f8cb515780f3b799900260a226db6', _stages("block{stage}_", (1, 1, 1, 1, 1))),
    _App("resnet50", "ResNet", "ResNet50", 224, "caffe", 23_587_712,
         "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
         '4d473c1dd8becc155b73f8504c6f6626', _resnet_blocks((3, 4, 6, 3))),
    _App("resnet101", "ResNet", "ResNet101", 224, "caffe", 42_658_176,
         "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
         '88cf7a10940856eca736dc7b7e228a21', _resnet_blocks((3, 4, 23, 3))),
    _App("resnet152", "ResNet", "ResNet152", 224, "caffe", 58_370_944,
         "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'ee4c566cf9a93f14d82f913c2dc6dd0c', _resnet_blocks((3, 8, 36, 3))),
    _App("resnet50v2", "ResNetV2", "ResNet50V2", 224, "tf", 23_564_800,
         "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'fac2f116257151a9d068a22e544a4917', _resnet_blocks((3, 4, 6, 3), ("post_",))),
    _App("resnet101v2", "ResNetV2", "ResNet101V2", 224, "tf", 42_626_560,
         "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'c0ed64b8031c3730f411d2eb4eea35b5', _resnet_blocks((3, 4, 23, 3), ("post_",))),
    _App("resnet152v2", "ResNetV2", "ResNet152V2", 224, "tf", 58_331_648,
         "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'ed17cf2e0169df9d443503ef94b23b33', _resnet_blocks((3, 8, 36, 3), ("post_",))),
    _App("mobilenet_v2", "MobileNet", "MobileNetV2", 224, "tf", 2_257_984,
         "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
         None, ("Conv1", "expanded_conv_", *_stages("block_{block}_", (16,)), "Conv_1")),
    _App("mobilenet_v3_small", "MobileNet", "MobileNetV3Small", 224, "none", 939_120,
         "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
         'd3e8ec802a04aa4fc771ee12a9a9b836', _mobilenet_v3_blocks(11)),
    _App("mobilenet_v3_large", "MobileNet", "MobileNetV3Large", 224, "none", 2_996_352,
         "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
         '07fb09a5933dd0c8eaafa16978110389', _mobilenet_v3_blocks(15)),
    _App("densenet121", "DenseNet", "DenseNet121", 224, "torch", 7_037_504,
         "https://storage.googleapis.com/tensorflow/keras-applications/densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
         '30ee3e1110167f948a6b9946edeeb738', _densenet_blocks((6, 12, 24, 16))),
    _App("densenet169", "DenseNet", "DenseNet169", 224, "torch", 12_642_880,
         "https://storage.googleapis.com/tensorflow/keras-applications/densenet/densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'b8c4d4c20dd625c148057b9ff1c1176b', _densenet_blocks((6, 12, 32, 32))),
    _App("densenet201", "DenseNet", "DenseNet201", 224, "torch", 18_321_984,
         "https://storage.googleapis.com/tensorflow/keras-applications/densenet/densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'c13680b51ded0fb44dff2d8f86ac8bb1', _densenet_blocks((6, 12, 48, 32))),
    _App("xception", "Xception", "Xception", 299, "tf", 20_861_480,
         "https://storage.googleapis.com/tensorflow/keras-applications/xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'b0042744bf5b25fce3cb969f33bebb97', _stages("block{block}_", (14,)), min_size=71),
    _App("inception_v3", "Inception", "InceptionV3", 299, "tf", 21_802_784,
         "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
         'bcbd6486424b2319ff4ef7d526e38f63', None, min_size=75),
)
# fmt: on


def _register(app: _App) -> None:
    file = KerasWeightsFile(
        os.path.basename(app.origin),
        app.origin,
        app.file_hash,
        sizes=(96, 128, 160, 192, 224) if "{size}" in app.origin else (),
    )
    register_keras_weights(app.name, file)
    register_backbone(
        BackboneSpec(
            name=app.name,
            family=app.family,
            builder=_builder(app),
            default_size=app.default_size,
            preprocessing=app.preprocessing,
            weight_sources=("imagenet",),
            weights_origin="keras.applications download",
            params=app.params,
            blocks=app.blocks,
            min_size=app.min_size,
        )
    )


for _app in _APPS:
    _register(_app)
