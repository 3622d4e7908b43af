"""Classification heads: pooling, an optional Dense stack, and a float32 output layer.

The last Dense and its activation run in float32 whatever the mixed-precision policy, so that
softmax/sigmoid outputs and losses stay numerically sound and the model returns float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keras import layers

from keras_species.models.labels import classification_output

POOLINGS = ("avg", "flatten", "avgmax")
OUTPUTS = ("softmax", "sigmoid", "logits")


@dataclass(frozen=True)
class HeadConfig:
    """What sits on top of a backbone's feature map.

    Args:
        pooling: ``"avg"`` (global average), ``"flatten"``, or ``"avgmax"`` (global average and
            global max, concatenated).
        units: widths of hidden Dense layers, e.g. ``(512, 256, 128)`` (R3); ``()`` for a linear
            head (R1).
        dropout: dropout rate after each hidden Dense layer (after the pooling when ``units`` is
            empty); 0 for none.
        batch_norm: a BatchNormalization after each hidden Dense (before its activation).
        activation: activation of the hidden Dense layers.

    Example:
        >>> HeadConfig(units=(512, 256, 128), dropout=0.3).units
        (512, 256, 128)
    """

    pooling: str = "avg"
    units: tuple[int, ...] = ()
    dropout: float = 0.0
    batch_norm: bool = False
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r} must be in [0, 1)")
        if isinstance(self.units, (str, bytes)) or not hasattr(self.units, "__iter__"):
            raise ValueError(f"units={self.units!r}: give the hidden layers' widths as a sequence, "
                             "e.g. (512,) or (512, 256); () for a linear head")  # "512" was (5, 1, 2)
        odd = [u for u in self.units if isinstance(u, bool) or not float(u).is_integer()]
        if odd:  # int() made 512.7 into 512 without a word
            raise ValueError(f"units={self.units!r}: {odd[0]!r} is not a whole number of units")
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        if any(u < 1 for u in self.units):
            raise ValueError(f"units={self.units!r}: every hidden layer needs at least 1 unit "
                             "(() for a linear head)")


def _pool(x, pooling: str):
    if len(x.shape) == 2:  # already pooled features
        return x
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="head_avg_pool")(x)
    if pooling == "flatten":
        return layers.Flatten(name="head_flatten")(x)
    avg = layers.GlobalAveragePooling2D(name="head_avg_pool")(x)
    mx = layers.GlobalMaxPooling2D(name="head_max_pool")(x)
    return layers.Concatenate(name="head_avgmax")([avg, mx])


def build_head(
    x,
    num_classes: int,
    config: HeadConfig | None = None,
    output: str = "softmax",
    name: str = "label",
    *,
    class_names: Sequence[str] | None = None,
    multilabel: bool | None = None,
):
    """Apply a head to the symbolic feature map ``x`` and return the output tensor.

    Args:
        x: a symbolic ``(B, H, W, C)`` feature map (or ``(B, C)`` features, pooling skipped).
        num_classes: number of outputs.
        config: the head; ``HeadConfig()`` (global average pooling, linear) by default.
        output: ``"softmax"`` (single-label), ``"sigmoid"`` (multi-label) or ``"logits"``.
        name: name of the output layer, a float32
            :class:`~keras_species.models.labels.ClassifierOutput` carrying the label map; the
            final Dense before it is named ``{name}_logits``.
        class_names: class names stored in the output layer (``class_0``… when not given).
        multilabel: for ``output="logits"``: whether the logits are per-class (sigmoid).

    Returns:
        The float32 output tensor ``(B, num_classes)``.

    Example:
        >>> import keras
        >>> inp = keras.Input((4, 4, 8))
        >>> out = build_head(inp, 3, HeadConfig(units=(16,), dropout=0.2), "sigmoid")
        >>> keras.Model(inp, out).output.shape
        (None, 3)
    """
    config = config or HeadConfig()
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}; choose one of {', '.join(OUTPUTS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be at least 1")
    x = _pool(x, config.pooling)
    if not config.units and config.dropout:
        x = layers.Dropout(config.dropout, name="head_dropout")(x)
    for i, units in enumerate(config.units, start=1):
        x = layers.Dense(units, use_bias=not config.batch_norm, name=f"head_dense{i}")(x)
        if config.batch_norm:
            x = layers.BatchNormalization(name=f"head_bn{i}")(x)
        x = layers.Activation(config.activation, name=f"head_act{i}")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"head_dropout{i}")(x)
    return classification_output(
        x, num_classes, output, class_names=class_names, multilabel=multilabel, name=name
    )
