"""One freezing API for every recipe: backbone frozen, all trainable, or the last N trainable.

In Keras 3 a ``BatchNormalization`` layer with ``trainable=False`` runs in inference mode (it
uses and keeps its moving statistics). When fine-tuning a pretrained backbone the BatchNorm
layers of the backbone therefore stay frozen unless ``train_batchnorm=True``.

Changing ``trainable`` takes effect only when the model is compiled again: call
``model.compile(...)`` after :func:`set_trainable` (``training.plan`` does this per phase).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_species.models.registry import list_backbones

MODES = ("frozen", "all", "last_n")
UNITS = ("layers", "blocks", "conv")
_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)


def flat_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The leaf layers of ``model`` in order, expanding nested models and Sequentials.

    Example:
        >>> import keras
        >>> inner = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(1)])
        >>> len(flat_layers(keras.Sequential([keras.Input((3,)), inner])))
        2
    """
    out: list[keras.layers.Layer] = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            out.extend(flat_layers(layer))
        else:
            out.append(layer)
    return out


def _block_of(name: str, prefixes: Sequence[str]) -> int | None:
    best, best_len = None, -1
    for i, prefix in enumerate(prefixes):
        if name.startswith(prefix) and len(prefix) > best_len:
            best, best_len = i, len(prefix)
    return best


def infer_blocks(backbone: keras.Model) -> tuple[str, ...] | None:
    """The ``BackboneSpec.blocks`` that fit ``backbone``'s layer names, or ``None``.

    Among registry entries whose every block prefix names some layer, the one with the most
    blocks (ResNet101's prefixes fit ResNet101 only; ResNet50's fit ResNet101 too, but fewer).
    """
    names = [layer.name for layer in flat_layers(backbone)]
    best: tuple[str, ...] | None = None
    for spec in list_backbones():
        if not spec.blocks or (best is not None and len(spec.blocks) <= len(best)):
            continue
        if all(any(n.startswith(p) for n in names) for p in spec.blocks):
            best = spec.blocks
    return best


def _tail_start(
    layers: list[keras.layers.Layer], n: int, unit: str, blocks: Sequence[str] | None
) -> int:
    """Index of the first layer of the trainable tail (``len(layers)`` when ``n == 0``)."""
    if n <= 0:
        return len(layers)
    if unit == "blocks":
        if not blocks:
            raise ValueError(
                "unit='blocks' needs block prefixes: this backbone's layer names carry none "
                "(pass blocks=..., or use unit='layers' or unit='conv')"
            )
        starts: dict[int, int] = {}
        for i, layer in enumerate(layers):
            b = _block_of(layer.name, blocks)
            if b is not None and b not in starts:
                starts[b] = i
        order = sorted(starts.values())
        return order[-n] if n <= len(order) else 0
    if unit == "conv":
        picked = [i for i, layer in enumerate(layers) if isinstance(layer, _CONV_TYPES)]
    else:
        picked = [
            i
            for i, layer in enumerate(layers)
            if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
        ]
    return picked[-n] if n <= len(picked) else 0


def _count(weights) -> int:
    return int(sum(int(w.numpy().size) for w in weights))


def set_trainable(
    model: keras.Model,
    mode: str = "frozen",
    *,
    n: int = 0,
    unit: str = "layers",
    train_batchnorm: bool = False,
    blocks: Sequence[str] | None = None,
) -> dict:
    """Set which layers of a classifier train; recompile the model afterwards.

    The backbone is the nested model named ``"backbone"`` (``classifier.build_classifier``);
    everything outside it (the head) is always trainable. A model without a nested backbone
    (a scratch CNN) is treated as all backbone for ``"all"`` and ``"last_n"``.

    Args:
        model: the model, changed in place.
        mode: ``"frozen"`` (backbone frozen, head trainable), ``"all"`` (everything), or
            ``"last_n"`` (the last ``n`` units of the backbone, plus the head).
        n: number of units for ``"last_n"``.
        unit: ``"layers"`` (layers with weights, BatchNorm not counted), ``"blocks"``
            (``BackboneSpec.blocks``, inferred from layer names unless ``blocks`` is given) or
            ``"conv"`` (convolution layers; R5's last 4 conv layers of VGG16: ``n=4``).
            Everything after the first selected unit trains.
        train_batchnorm: let the backbone's BatchNorm layers train (batch statistics);
            by default they stay frozen, in inference mode. In a model without a nested
            backbone (nothing pretrained to protect) BatchNorm layers follow the selection.
        blocks: block prefixes overriding the inferred ones.

    Returns:
        A summary: ``mode``, ``trainable_layers`` (layers with trainable weights),
        ``trainable_params``, ``non_trainable_params``, ``first_trainable_backbone_layer``.

    Example:
        >>> from keras_species.models.classifier import build_classifier
        >>> m = build_classifier("vgg16", 3, input_size=32)
        >>> set_trainable(m, "last_n", n=4, unit="conv")["first_trainable_backbone_layer"]
        'block4_conv3'
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; choose one of {', '.join(MODES)}")
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r}; choose one of {', '.join(UNITS)}")
    try:
        backbone = model.get_layer("backbone")
    except ValueError:
        backbone = None
    if backbone is None and mode == "frozen":
        raise ValueError(f"model {model.name!r} has no nested 'backbone' to freeze")
    model.trainable = True
    for layer in flat_layers(model):
        layer.trainable = True
    target = backbone if backbone is not None else model
    layers = flat_layers(target)
    freeze_bn = backbone is not None and not train_batchnorm
    if mode == "frozen":
        backbone.trainable = False
        start = len(layers)
    else:
        if mode == "all":
            start = 0
        else:
            if unit == "blocks" and blocks is None:
                blocks = infer_blocks(target)
            start = _tail_start(layers, n, unit, blocks)
        for i, layer in enumerate(layers):
            keep = i >= start
            if isinstance(layer, keras.layers.BatchNormalization) and freeze_bn:
                keep = False
            layer.trainable = keep
    first = next((layer.name for layer in layers[start:] if layer.trainable_weights), None)
    return {
        "mode": mode,
        "unit": unit if mode == "last_n" else None,
        "n": n if mode == "last_n" else None,
        "trainable_layers": sum(1 for layer in flat_layers(model) if layer.trainable_weights),
        "trainable_params": _count(model.trainable_weights),
        "non_trainable_params": _count(model.non_trainable_weights),
        "first_trainable_backbone_layer": first,
        "train_batchnorm": train_batchnorm,
    }
