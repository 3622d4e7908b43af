"""ResNet18, ResNet34 and Wide ResNet-50-2 in the torchvision layout (R1, R4), which Keras lacks.

Functional models of core ``keras.layers`` only, headless (the last feature map, no pooling),
taking input preprocessed the torchvision way (``"torch"``: ImageNet mean/std on [0, 1]).

Layout (torchvision's ``resnet18``/``resnet34``/``wide_resnet50_2``): 7×7/2 conv 64 (no bias), BN,
ReLU, 3×3/2 max-pool, four stages of widths 64, 128, 256, 512; stages 2–4 start with stride 2 and a
1×1 conv + BN shortcut. Basic blocks (two 3×3 convs) for ResNet18 ``[2, 2, 2, 2]`` and ResNet34
``[3, 4, 6, 3]``; bottleneck blocks (1×1, 3×3 at twice the width, 1×1 ×4) for Wide ResNet-50-2
``[3, 4, 6, 3]``. Padding is explicit (``ZeroPadding2D`` + ``"valid"``) so that converted PyTorch
weights give the same outputs; BN epsilon is 1e-5 like PyTorch.

Layer names map one-to-one onto torchvision's state-dict keys, for converting weights:
``stem_conv``/``stem_bn`` ↔ ``conv1``/``bn1``; ``stage{s}_block{b}_conv{k}``/``_bn{k}`` ↔
``layer{s}.{b-1}.conv{k}``/``.bn{k}``; ``stage{s}_block{b}_downsample_conv``/``_bn`` ↔
``layer{s}.{b-1}.downsample.0``/``.1`` (conv kernels OIHW → HWIO). ``"imagenet"`` has no Keras
source: :class:`~keras_species.models.weights.WeightsUnavailableError` says how to pass a
converted ``.weights.h5``.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_species.backbone_catalog import TORCHVISION_RESNETS
from keras_species.models.registry import backbone_spec, register_backbone
from keras_species.models.weights import (
    WeightsUnavailableError,
    load_weights_file,
    resolve_weights,
)

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1


def _conv_bn(x, filters: int, kernel: int, stride: int, prefix: str, idx="", relu=True):
    """(ZeroPadding) → Conv (no bias) → BN (→ ReLU), torchvision padding ``kernel // 2``.

    Layers are named ``{prefix}conv{idx}``, ``{prefix}bn{idx}``, ``{prefix}relu{idx}``.
    """
    pad = kernel // 2
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{prefix}pad{idx}")(x)
    x = layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=f"{prefix}conv{idx}")(x)
    x = layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}bn{idx}"
    )(x)
    if relu:
        x = layers.ReLU(name=f"{prefix}relu{idx}")(x)
    return x


def _basic_block(x, filters: int, stride: int, prefix: str):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{prefix}downsample_", relu=False)
    y = _conv_bn(x, filters, 3, stride, prefix, 1)
    y = _conv_bn(y, filters, 3, 1, prefix, 2, relu=False)
    y = layers.Add(name=f"{prefix}add")([shortcut, y])
    return layers.ReLU(name=f"{prefix}out")(y)


def _bottleneck_block(x, planes: int, stride: int, prefix: str, width_factor: int):
    width, out = planes * width_factor, planes * 4
    shortcut = x
    if stride != 1 or x.shape[-1] != out:
        shortcut = _conv_bn(x, out, 1, stride, f"{prefix}downsample_", relu=False)
    y = _conv_bn(x, width, 1, 1, prefix, 1)
    y = _conv_bn(y, width, 3, stride, prefix, 2)
    y = _conv_bn(y, out, 1, 1, prefix, 3, relu=False)
    y = layers.Add(name=f"{prefix}add")([shortcut, y])
    return layers.ReLU(name=f"{prefix}out")(y)


def build_torchvision_resnet(
    depths: tuple[int, ...],
    block: str = "basic",
    width_factor: int = 1,
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    name: str = "resnet",
) -> keras.Model:
    """A headless torchvision-layout ResNet as a functional model (random initialisation).

    Args:
        depths: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet18.
        block: ``"basic"`` (two 3×3 convs) or ``"bottleneck"`` (1×1, 3×3, 1×1 ×4).
        width_factor: bottleneck width multiplier (2 for Wide ResNet-50-2).
        input_shape: ``(H, W, 3)`` of the preprocessed input.
        name: model name.

    Returns:
        ``keras.Model`` from the image to the last feature map (stride 32).

    Example:
        >>> m = build_torchvision_resnet((2, 2, 2, 2), input_shape=(64, 64, 3))
        >>> tuple(m.output.shape)
        (None, 2, 2, 512)
    """
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn(inputs, 64, 7, 2, "stem_")
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # after ReLU, zero padding == -inf
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for s, depth in enumerate(depths, start=1):
        planes = 64 * 2 ** (s - 1)
        for b in range(1, depth + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            prefix = f"stage{s}_block{b}_"
            if block == "basic":
                x = _basic_block(x, planes, stride, prefix)
            else:
                x = _bottleneck_block(x, planes, stride, prefix, width_factor)
    return keras.Model(inputs, x, name=name)


def _builder(name: str, depths: tuple[int, ...], block: str, width_factor: int):
    def build(input_shape, weights=None) -> keras.Model:
        if weights is not None and str(weights).lower() == "imagenet":
            raise WeightsUnavailableError(
                f"{name}: keras.applications has no {name} and Keras downloads no ImageNet "
                "weights for it. Convert torchvision's weights to a Keras file (layer names "
                "in keras_species/models/resnet.py map onto the state-dict keys) and pass it, "
                f"e.g. --weights /path/{name}.weights.h5, or use weights=None."
            )
        path = resolve_weights(name, weights)
        model = build_torchvision_resnet(depths, block, width_factor, tuple(input_shape), name)
        if path is not None:
            load_weights_file(model, path)
        return model

    return build


# The entries' facts (names, depths, measured params, blocks) are the catalog's.
for _net in TORCHVISION_RESNETS:
    register_backbone(
        backbone_spec(_net.facts, _builder(_net.name, _net.depths, _net.block, _net.width_factor))
    )
