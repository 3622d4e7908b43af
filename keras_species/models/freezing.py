"""One freezing API for every recipe: backbone frozen, all trainable, or the last N trainable.

In Keras 3 a ``BatchNormalization`` layer with ``trainable=False`` runs in inference mode (it
uses and keeps its moving statistics). When fine-tuning a pretrained backbone the BatchNorm
layers of the backbone therefore stay frozen unless ``train_batchnorm=True``.

A BatchNorm layer that has never seen data (a backbone built with ``weights=None``) still holds
its initial statistics, moving mean 0 and variance 1. In inference mode it does not normalise, and
through a deep random network the features then shrink to almost nothing (EfficientNet-Lite0 and
MobileNetV2 at init: feature std about 1e-12), so the model's output is constant. Such layers have
no statistics to protect: wherever the backbone trains they train too, with batch statistics,
whatever ``train_batchnorm`` says; freezing them (``"frozen"``, or the frozen part of
``"last_n"``) is allowed but warns. (``models.batchnorm``: how they are found, and how
``training.plan`` gives them usable moving statistics.)

Changing ``trainable`` takes effect only when the model is compiled again: call
``model.compile(...)`` after :func:`set_trainable` (``training.plan`` does this per phase).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import keras

from keras_species.data.manifest import counted
from keras_species.models.batchnorm import untrained_batchnorm
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


def find_backbone(model: keras.layers.Layer) -> keras.layers.Layer | None:
    """The nested model named ``backbone`` in ``model``, at any depth (breadth first), or None.

    ``augment_in_model`` wraps a classifier whole (``image -> augment -> classifier``), so its
    backbone is two levels down: looked up at the top only, the wrapped model could not be
    frozen ("has no nested 'backbone'") and ``last_n`` trained its frozen BatchNorm layers.

    Several at the first depth where any is (a fold ensemble of classifiers) give None: freezing
    the first alone left the others training.

    Example:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="backbone")
        >>> outer = keras.Sequential([keras.Input((3,)), keras.Sequential([keras.Input((3,)), inner])])
        >>> find_backbone(outer).name
        'backbone'
    """
    level = [model]
    while level:
        nested = [layer for m in level for layer in getattr(m, "layers", []) if isinstance(layer, keras.Model)]
        found = [layer for layer in nested if layer.name == "backbone"]
        if found:  # several at one depth (a fold ensemble's): none is the model's backbone
            return found[0] if len(found) == 1 else None
        level = nested
    return None


def _nested_models(model: keras.layers.Layer) -> list[keras.Model]:
    """The models nested in ``model``, at any depth (``flat_layers`` gives their leaves)."""
    out: list[keras.Model] = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            out += [layer, *_nested_models(layer)]
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
            by default they stay frozen, in inference mode. BatchNorm layers with nothing
            pretrained to protect follow the selection whatever this says: those of a model
            without a nested backbone, and those still holding their initial statistics
            (``batchnorm.untrained_batchnorm``: a backbone built with ``weights=None``),
            which in inference mode would make the features near-constant. Such layers left
            frozen by the mode (``"frozen"``, the frozen part of ``"last_n"``) warn.
        blocks: block prefixes overriding the inferred ones.

    Returns:
        A summary: ``mode``, ``trainable_layers`` (layers with trainable weights),
        ``trainable_params``, ``non_trainable_params``, ``first_trainable_backbone_layer``,
        ``train_batchnorm``, and ``untrained_batchnorm``: how many of the backbone's BatchNorm
        layers hold their initial statistics (0 for a pretrained backbone).

    Example:
        >>> from keras_species.models.classifier import build_classifier
        >>> m = build_classifier("vgg16", 3, input_size=32)
        >>> set_trainable(m, "last_n", n=4, unit="conv")["first_trainable_backbone_layer"]
        'block4_conv3'
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; choose one of {', '.join(MODES)}")
    if mode == "last_n" and (not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0):
        raise ValueError(f"n={n!r}: give the number of backbone units to train, a whole number >= 0")
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r}; choose one of {', '.join(UNITS)}")
    backbone = find_backbone(model)
    if backbone is None and mode == "frozen":
        raise ValueError(f"model {model.name!r} has no nested 'backbone' to freeze")
    # Nested models first: on TensorFlow, `x.trainable = v` is skipped when x.trainable is v
    # already, so a backbone left frozen by an earlier call would not freeze (propagate) again.
    for layer in [model, *_nested_models(model), *flat_layers(model)]:
        layer.trainable = True
    target = backbone if backbone is not None else model
    layers = flat_layers(target)
    freeze_bn = backbone is not None and not train_batchnorm
    untrained = untrained_batchnorm(backbone) if backbone is not None else []
    no_statistics = {id(layer) for layer in untrained}
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
            if (isinstance(layer, keras.layers.BatchNormalization) and freeze_bn
                    and id(layer) not in no_statistics):
                keep = False
            layer.trainable = keep
    if untrained:
        _explain_untrained(mode, untrained, train_batchnorm)
    first = next((layer.name for layer in layers[start:] if layer.trainable_weights), None)
    if mode == "last_n" and n > 0 and first is None:  # the selection holds only frozen BatchNorm
        warnings.warn(
            f"set_trainable(mode='last_n', n={n}, unit={unit!r}) trains no layer of the backbone: "
            f"the last {n} {unit} hold no weights that train (a frozen BatchNorm, a pooling): give "
            "a larger n", UserWarning, stacklevel=2)
    return {
        "mode": mode,
        "unit": unit if mode == "last_n" else None,
        "n": n if mode == "last_n" else None,
        "trainable_layers": sum(1 for layer in flat_layers(model) if layer.trainable_weights),
        "trainable_params": _count(model.trainable_weights),
        "non_trainable_params": _count(model.non_trainable_weights),
        "first_trainable_backbone_layer": first,
        "train_batchnorm": train_batchnorm,
        "untrained_batchnorm": len(untrained),
    }


def warn_frozen_random_backbone(model: keras.layers.Layer, head_epochs: int, pretrained: bool) -> None:
    """Warn that a head phase trains on a frozen random backbone (``weights=None`` with
    ``head_epochs`` above 0) when the backbone has no BatchNorm layer: one with them is warned
    about by :func:`set_trainable` when the phase freezes it (its features are near-constant);
    without them the features are random, and the phase trains a head on noise that the
    fine-tuning phase then has to unlearn.

    Args:
        model: the transfer model.
        head_epochs: epochs of the head phase.
        pretrained: the backbone has pretrained weights.

    Example:
        >>> warn_frozen_random_backbone(keras.Sequential([keras.Input((3,))]), 0, False)
    """
    if pretrained or head_epochs <= 0 or batchnorm_count(model):
        return
    warnings.warn(
        f"the head phase ({head_epochs} epoch{'' if head_epochs == 1 else 's'}) trains the head on a "
        "frozen backbone built without pretrained weights (weights=None): its features are random. "
        "Give --head-epochs 0 to train the backbone whole from the start (with a higher "
        "--fine-tune-learning-rate such as 1e-3), or pretrained weights (--weights imagenet or a "
        "weights file).", UserWarning, stacklevel=2)


def _explain_untrained(
    mode: str, untrained: list[keras.layers.BatchNormalization], train_batchnorm: bool
) -> None:
    """Warn about the BatchNorm layers without statistics: frozen ones (near-constant features),
    or, when all train, that they do so although ``train_batchnorm=False``."""
    # Keras 3: freezing a model freezes its layers, so `trainable` alone says whether one trains
    frozen = [layer for layer in untrained if not layer.trainable]
    have = "has" if len(untrained) == 1 else "have"
    what = (
        f"{counted(len(untrained), 'BatchNorm layer')} of the backbone {have} no statistics yet "
        "(moving mean 0, variance 1: it was built without pretrained weights, weights=None)"
    )
    if frozen:
        which = "it is" if len(untrained) == 1 else f"{len(frozen)} of them are"
        warnings.warn(
            f"set_trainable(mode={mode!r}): {what} and {which} frozen, in "
            "inference mode, where they do not normalise: the frozen layers' features are random "
            "and may be near-constant (an EfficientNet-Lite0 built so gave features of std 7e-13), "
            "so the head learns next to nothing. Train the backbone whole (mode='all'; in a transfer recipe --head-epochs 0) "
            "or give it pretrained weights (--weights imagenet or a weights file).",
            stacklevel=3,
        )
    elif not train_batchnorm:
        warnings.warn(
            f"set_trainable(mode={mode!r}): {what}; {'it trains' if len(untrained) == 1 else 'they train'} "
            "from scratch with batch statistics "
            "although train_batchnorm=False, since frozen they would make the features "
            "near-constant.",
            stacklevel=3,
        )


def batchnorm_count(model: keras.layers.Layer) -> int:
    """The ``BatchNormalization`` layers in ``model`` (nested models included).

    Example:
        >>> import keras
        >>> batchnorm_count(keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()]))
        1
    """
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in flat_layers(model))


def describe_batchnorm(train_batchnorm: bool, pretrained: bool, batchnorm_layers: int | None = None) -> str:
    """What a transfer run's BatchNorm layers do, as one sentence for the run report.

    Args:
        train_batchnorm: the run let the backbone's BatchNorm layers train.
        pretrained: the backbone was built with pretrained weights (not ``weights=None``).
        batchnorm_layers: how many the model has (:func:`batchnorm_count`); 0 says so (a
            ConvNeXt's report described BatchNorm layers it does not have). None: not counted.

    Returns:
        The sentence.

    Example:
        >>> describe_batchnorm(False, pretrained=False)[:40]
        'The backbone has no pretrained weights: '
        >>> describe_batchnorm(False, pretrained=True, batchnorm_layers=0)[:36]
        'The backbone has no BatchNorm layers'
    """
    if batchnorm_layers == 0:
        return ("The backbone has no BatchNorm layers (ConvNeXt normalises with LayerNorm, VGG16 "
                "not at all), so no running statistics are frozen or re-estimated.")
    if not pretrained:
        return ("The backbone has no pretrained weights: its BatchNorm layers train from scratch "
                "wherever it trains, their moving statistics re-estimated on training batches "
                "every epoch.")
    if train_batchnorm:
        return "BatchNorm layers of the backbone train when it does (train_batchnorm)."
    return "BatchNorm layers of the backbone stay frozen (inference mode) throughout."
