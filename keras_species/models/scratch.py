"""Scratch CNNs of the reports (R2, R3, R4, R5), trained from random initialisation.

Every model is a functional Keras 3 model made only of core layers, so its ``.keras`` file reloads
with ``safe_mode=True``. Layout: ``Input`` named ``image`` (float 0–255 RGB) → ``Rescaling`` layer
named ``preprocessing`` (the report's pixel scaling) → conv blocks → dense layers → output layer
named ``label`` (dtype float32, so a mixed-precision policy still returns float32).

Archs (``list_scratch()`` lists them; parameters at the report's input size and class count):

==================  =====  =======  =====  ===========  =========================================
name                size   pixels   C      params       report
==================  =====  =======  =====  ===========  =========================================
``r2_cnn``          224    [-1, 1]  9      51,778,889   R2 scratch CNN (flags: batch_norm,
                                                        extra_conv, dropout, blocks)
``r3_cnn``          224    [0, 1]   8      6,554,152    R3 scratch CNN, 4 blocks 16→128 + 3 Dense
``r4_vgg``          128    [0, 1]   14     3,575,422    R4 VGG-like ConvNet, Dense 100/100/C
``r5_shallow``      200    [0, 1]   100    643,108      R5 shallow CNN, 2 convs 8/16, Dense 16
``r5_deep``         200    [0, 1]   100    4,841,988    R5 deeper CNN, 4 convs 16→128 ("~5M")
``r5_regularised``  200    [0, 1]   100    4,841,988    R5 deeper CNN + dropout 0.5 after dense
==================  =====  =======  =====  ===========  =========================================

Most parameters sit in the first Dense layer after ``Flatten``: R2's regularised variant
(``blocks=3``) has *more* parameters (102,863,945 with 9 classes, 28×28×128 flattened) than the
4-block model, and ``r2_cnn`` with ``batch_norm=True, extra_conv=True`` has 52,565,609.

Augmentation is not part of these models: it is the pipeline's job
(:func:`keras_species.data.augment.augmentation`), as for every other model of the library.

Example:
    >>> from keras_species.models.scratch import build_scratch
    >>> model = build_scratch("r2_cnn", 9, 64, batch_norm=True, extra_conv=True)
    >>> model.output_shape
    (None, 9)
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
from keras import layers

from keras_species.backbone_catalog import SCRATCH_ARCH_FACTS, SCRATCH_MIN_INPUT_SIZE
from keras_species.models.labels import classification_output

OUTPUTS = ("softmax", "sigmoid", "logits")
MIN_INPUT_SIZE = SCRATCH_MIN_INPUT_SIZE
"""Smallest input side (pixels) of a scratch model: its pooling stages need at least this."""

# Pixel scalings, applied to 0–255 input by a Rescaling layer inside the model.
_UNIT = {"scale": 1.0 / 255.0, "offset": 0.0}  # [0, 1]  (R3, R4, R5)
_SYMMETRIC = {"scale": 1.0 / 127.5, "offset": -1.0}  # (x/255 - 0.5)/0.5 = [-1, 1]  (R1, R2)


@dataclass(frozen=True)
class ScratchArch:
    """One scratch architecture.

    Args:
        name: the name :func:`build_scratch` takes.
        report: which report and model it reproduces (see ``../shared/REPORTS.md``).
        default_size: the report's input size (square), used when ``input_size`` is ``None``.
        pixels: the pixel range the model's ``Rescaling`` maps 0–255 input to.
        description: one line on the layout.
        builder: ``builder(x, num_classes, output, **flags) -> tensor`` feeding the output layer
            (internal).
    """

    name: str
    report: str
    default_size: int
    pixels: str
    description: str
    builder: Callable[..., keras.KerasTensor]

    @property
    def flags(self) -> dict[str, object]:
        """The architecture's flags with their default values."""
        params = inspect.signature(self.builder).parameters
        return {
            k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


def _output(
    x: keras.KerasTensor, num_classes: int, output: str, class_names: Sequence[str] | None = None
) -> keras.KerasTensor:
    """Dense ``label_logits`` → float32 ``ClassifierOutput`` ``label`` carrying the label map."""
    return classification_output(
        x, num_classes, output, class_names=class_names, multilabel=output == "sigmoid"
    )


def _conv_bn_relu(
    x: keras.KerasTensor, filters: int, name: str, batch_norm: bool, padding: str = "same"
) -> keras.KerasTensor:
    """3×3 conv, optional BatchNorm (conv bias dropped then), ReLU."""
    x = layers.Conv2D(filters, 3, padding=padding, use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _dense_stack(
    x: keras.KerasTensor, units: Sequence[int], dropout: float, prefix: str = "dense"
) -> keras.KerasTensor:
    """Hidden Dense+ReLU layers, each followed by dropout when ``dropout > 0``."""
    for i, u in enumerate(units, start=1):
        x = layers.Dense(u, activation="relu", name=f"{prefix}{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"{prefix}{i}_dropout")(x)
    return x


def _plain_cnn(
    x: keras.KerasTensor,
    *,
    filters: Sequence[int],
    dense_units: Sequence[int],
    dropout: float,
) -> keras.KerasTensor:
    """Keras-book style CNN body (R3, R5): Conv 3×3 ReLU → MaxPool per filter count, Flatten,
    Dense ReLU [→ Dropout] per unit count; the output layer is added by :func:`build_scratch`."""
    for b, f in enumerate(filters, start=1):
        x = _conv_bn_relu(x, f, f"block{b}", False)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _dense_stack(x, dense_units, dropout)
    return x


def _r2_cnn(
    x: keras.KerasTensor,
    num_classes: int,
    output: str,
    *,
    batch_norm: bool = False,
    extra_conv: bool = False,
    dropout: float = 0.0,
    blocks: int = 4,
    filters: Sequence[int] = (32, 64, 128, 256),
    dense_units: int = 1024,
) -> keras.KerasTensor:
    """R2: ``blocks`` × (Conv 3×3 [→ BN] → ReLU [→ Conv → BN → ReLU] → MaxPool [→ Dropout]),
    Flatten → Dense 1024 (ReLU) → Dense C. The report's best variant is ``batch_norm=True,
    extra_conv=True`` ("2 conv + BN"); its regularised variant ``dropout>0, blocks=3``."""
    if not 1 <= blocks <= len(filters):
        raise ValueError(f"blocks={blocks}: r2_cnn takes 1..{len(filters)} blocks (report: 4, or 3)")
    for b, f in enumerate(filters[:blocks], start=1):
        x = _conv_bn_relu(x, f, f"block{b}", batch_norm)
        if extra_conv:
            x = _conv_bn_relu(x, f, f"block{b}b", batch_norm)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"block{b}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _dense_stack(x, (dense_units,), 0.0)
    return x


def _r3_cnn(
    x: keras.KerasTensor,
    num_classes: int,
    output: str,
    *,
    filters: Sequence[int] = (16, 32, 64, 128),
    dense_units: Sequence[int] = (256, 128),
    dropout: float = 0.5,
) -> keras.KerasTensor:
    """R3: 4 × (Conv 3×3 → ReLU → MaxPool), Flatten → Dense 256 → Dropout → Dense 128 →
    Dropout → Dense C (3 Dense layers). The report gives no unit counts; 256/128 are ours."""
    return _plain_cnn(x, filters=filters, dense_units=dense_units, dropout=dropout)


def _r4_vgg(
    x: keras.KerasTensor,
    num_classes: int,
    output: str,
    *,
    filters: Sequence[int] = (32, 64, 128),
    convs_per_block: int = 2,
    dense_units: Sequence[int] = (100, 100),
    dropout: float = 0.5,
) -> keras.KerasTensor:
    """R4: VGG-like, ``len(filters)`` × (``convs_per_block`` × Conv 3×3 ReLU → MaxPool 2×2),
    Flatten → Dense 100 → Dropout → Dense 100 → Dropout → Dense C. R4 is multi-label: build it
    with ``output="sigmoid"``. Filter counts are ours (the report names only the layer kinds)."""
    for b, f in enumerate(filters, start=1):
        for c in range(1, convs_per_block + 1):
            x = _conv_bn_relu(x, f, f"block{b}_{c}", False)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _dense_stack(x, dense_units, dropout)
    return x


def _r5_shallow(
    x: keras.KerasTensor,
    num_classes: int,
    output: str,
    *,
    filters: Sequence[int] = (8, 16),
    dense_units: Sequence[int] = (16,),
    dropout: float = 0.0,
) -> keras.KerasTensor:
    """R5 shallow CNN: 2 convs 8/16 (each + MaxPool), Dense 16, Dense C."""
    return _plain_cnn(x, filters=filters, dense_units=dense_units, dropout=dropout)


def _r5_deep(
    x: keras.KerasTensor,
    num_classes: int,
    output: str,
    *,
    filters: Sequence[int] = (16, 32, 64, 128),
    dense_units: Sequence[int] = (256,),
    dropout: float = 0.0,
) -> keras.KerasTensor:
    """R5 deeper CNN: 4 convs 16/32/64/128 (each + MaxPool), Dense 256, Dense C. At 200×200 the
    flattened map is 12×12×128 = 18,432 values and the model has 4,841,988 parameters with 100
    classes (the report's "~5M")."""
    return _plain_cnn(x, filters=filters, dense_units=dense_units, dropout=dropout)


def _r5_regularised(
    x: keras.KerasTensor,
    num_classes: int,
    output: str,
    *,
    filters: Sequence[int] = (16, 32, 64, 128),
    dense_units: Sequence[int] = (256,),
    dropout: float = 0.5,
) -> keras.KerasTensor:
    """R5 regularised CNN: the deeper CNN with dropout 0.5 after its dense layers (train it with
    the pipeline's ``augment="r5"``)."""
    return _plain_cnn(x, filters=filters, dense_units=dense_units, dropout=dropout)


_BUILDERS: dict[str, Callable[..., keras.KerasTensor]] = {
    "r2_cnn": _r2_cnn,
    "r3_cnn": _r3_cnn,
    "r4_vgg": _r4_vgg,
    "r5_shallow": _r5_shallow,
    "r5_deep": _r5_deep,
    "r5_regularised": _r5_regularised,
}

# The names, reports, sizes and descriptions are the catalog's (a recipe checks --arch with it).
SCRATCH_ARCHS: dict[str, ScratchArch] = {
    name: ScratchArch(facts.name, facts.report, facts.default_size, facts.pixels,
                      facts.description, _BUILDERS[name])
    for name, facts in SCRATCH_ARCH_FACTS.items()
}


def list_scratch() -> list[ScratchArch]:
    """All scratch architectures, sorted by name.

    Returns:
        The :class:`ScratchArch` entries (``name``, ``report``, ``default_size``, ``pixels``,
        ``description``, ``flags``).

    Example:
        >>> [a.name for a in list_scratch()][:2]
        ['r2_cnn', 'r3_cnn']
    """
    return [SCRATCH_ARCHS[k] for k in sorted(SCRATCH_ARCHS)]


def _size(input_size: int | Sequence[int] | None, default: int) -> tuple[int, int]:
    from keras_species.data.pipeline import size_pair

    return (default, default) if input_size is None else size_pair(input_size, "input_size")


def build_scratch(
    arch: str,
    num_classes: int,
    input_size: int | Sequence[int] | None = None,
    *,
    output: str = "softmax",
    class_names: Sequence[str] | None = None,
    **flags: object,
) -> keras.Model:
    """Build a scratch CNN of the reports.

    Args:
        arch: a name of :data:`SCRATCH_ARCHS` (``"r2_cnn"``, ``"r3_cnn"``, ``"r4_vgg"``,
            ``"r5_shallow"``, ``"r5_deep"``, ``"r5_regularised"``).
        num_classes: units of the output layer.
        input_size: ``H`` (square) or ``(H, W)``; ``None`` takes the report's size.
        output: ``"softmax"`` (single-label), ``"sigmoid"`` (multi-label, R4) or ``"logits"``.
        class_names: class names kept in the output layer (``class_0``… when not given).
        **flags: the architecture's flags (``SCRATCH_ARCHS[arch].flags`` lists them), e.g.
            ``r2_cnn``: ``batch_norm``, ``extra_conv``, ``dropout``, ``blocks``.

    Returns:
        An uncompiled functional ``keras.Model`` named ``arch``: input ``image`` (0–255 RGB
        float), layer ``preprocessing`` (Rescaling), output layer ``label`` (float32).

    Raises:
        KeyError: unknown ``arch``. ValueError: bad ``output``, unknown flag or input too small.

    Example:
        >>> m = build_scratch("r2_cnn", 9, 64, batch_norm=True, blocks=3, dropout=0.25)
        >>> m.get_layer("label").dtype_policy.name, m.output_shape
        ('float32', (None, 9))
    """
    key = arch.lower().replace("-", "_")
    if key not in SCRATCH_ARCHS:
        raise KeyError(f"unknown scratch arch {arch!r}; choose one of {sorted(SCRATCH_ARCHS)}")
    spec = SCRATCH_ARCHS[key]
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: choose one of {OUTPUTS}")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}: need at least 1 class")
    unknown = sorted(set(flags) - set(spec.flags))
    if unknown:
        raise ValueError(f"{key} has no flag(s) {unknown}; its flags: {', '.join(spec.flags)}")
    rate = flags.get("dropout")
    if rate is not None and not (isinstance(rate, numbers.Real) and not isinstance(rate, bool)
                                 and 0 <= rate < 1):  # -0.1 built no Dropout without a word
        raise ValueError(f"dropout={rate!r}: give a rate in [0, 1) (0: no dropout)")
    h, w = _size(input_size, spec.default_size)
    if min(h, w) < MIN_INPUT_SIZE:
        raise ValueError(f"input_size {(h, w)} is too small for {key}: use at least {MIN_INPUT_SIZE} px")
    scaling = _SYMMETRIC if spec.pixels == "[-1, 1]" else _UNIT
    inputs = keras.Input((h, w, 3), name="image")
    x = layers.Rescaling(**scaling, name="preprocessing")(inputs)
    features = spec.builder(x, num_classes, output, **flags)
    return keras.Model(inputs, _output(features, num_classes, output, class_names), name=key)
