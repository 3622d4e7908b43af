"""The label map travels inside the model: a serializable output layer holding the class names.

:class:`ClassifierOutput` is the output layer (named ``label``) of every keras-species classifier.
It applies the final activation in float32 and carries the class names, whether the task is
multi-label, and the multi-label decision thresholds in its ``get_config``, so a ``.keras`` file is
all that prediction and export need. :func:`label_map` reads them back from a model,
:func:`set_thresholds` stores tuned thresholds, and :func:`attach_label_map` gives a foreign model
(whose output already holds probabilities) a label map.

Why a layer and not a side file: a ``.keras`` archive keeps only the layers' configs and weights;
a config entry survives ``model.save``/``load_model(safe_mode=True)`` with nothing else to carry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from keras_species.atomic import atomic_path
from keras_species.jsonfile import json_type, read_json_file

__all__ = [
    "ACTIVATIONS",
    "ClassifierOutput",
    "LabelMap",
    "LabelMapError",
    "attach_label_map",
    "find_output_layer",
    "label_map",
    "load_labels_json",
    "set_thresholds",
]

ACTIVATIONS = ("softmax", "sigmoid", "linear")


class LabelMapError(ValueError):
    """A model without a label map, or a label map that does not fit the model."""


def _check_thresholds(
    thresholds: float | Sequence[float] | np.ndarray | None, num_classes: int | None
) -> float | list[float] | None:
    """``thresholds`` as ``None``, one float or a list of floats, each in ``[0, 1]``."""
    if thresholds is None:
        return None
    arr = np.asarray(thresholds, dtype=np.float64)
    if arr.ndim > 1:
        raise LabelMapError(f"thresholds must be a number or a 1-D list; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise LabelMapError(f"thresholds must lie in [0, 1]; got {arr.tolist()}")
    if arr.ndim == 0:
        return float(arr)
    if num_classes is not None and arr.shape[0] != num_classes:
        raise LabelMapError(
            f"{arr.shape[0]} thresholds for {num_classes} classes; pass one per class or one number"
        )
    return [float(v) for v in arr]


@keras.saving.register_keras_serializable(package="keras_species")
class ClassifierOutput(keras.layers.Layer):
    """The output layer of a classifier: activation in float32 plus the label map in its config.

    Args:
        activation: ``"softmax"`` (single-label), ``"sigmoid"`` (multi-label) or ``"linear"``
            (the input passes through: outputs that already are probabilities, or logits with
            ``logits=True``).
        class_names: one name per output unit, in output order.
        multilabel: the outputs are independent per-class probabilities (thresholded), not one
            distribution (argmax). Default: ``activation == "sigmoid"``.
        thresholds: multi-label decision threshold(s): one float, one per class, or ``None``
            (0.5). Ignored for single-label models.
        logits: only with ``activation="linear"``: the outputs are logits; prediction and export
            turn them into probabilities with softmax (single-label) or sigmoid (multi-label).
        **kwargs: ``keras.layers.Layer`` arguments (``name``; ``dtype`` is always float32).

    Example:
        >>> import keras
        >>> inp = keras.Input((4,))
        >>> out = ClassifierOutput("softmax", ["cod", "eel", "ray", "pike"], name="label")(inp)
        >>> keras.Model(inp, out).get_layer("label").class_names
        ['cod', 'eel', 'ray', 'pike']
    """

    def __init__(
        self,
        activation: str = "softmax",
        class_names: Sequence[str] = (),
        multilabel: bool | None = None,
        thresholds: float | Sequence[float] | None = None,
        logits: bool = False,
        **kwargs,
    ) -> None:
        kwargs["dtype"] = "float32"  # probabilities and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise LabelMapError(f"activation={activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        names = [str(c) for c in class_names]
        if not names:
            raise LabelMapError("class_names is empty: pass one name per output unit")
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise LabelMapError(f"class_names has duplicates {dup}; names must be unique")
        if logits and activation != "linear":
            raise LabelMapError(f"logits=True needs activation='linear' (got {activation!r})")
        self.activation = activation
        self.class_names = names
        self.multilabel = bool(activation == "sigmoid" if multilabel is None else multilabel)
        self.thresholds = _check_thresholds(thresholds, len(names))
        self.logits = bool(logits)
        self.supports_masking = True

    def build(self, input_shape) -> None:
        units = input_shape[-1]
        if units is not None and units != len(self.class_names):
            raise LabelMapError(
                f"layer {self.name!r} gets {units} outputs but has {len(self.class_names)} "
                f"class names; pass one name per output unit"
            )
        self.built = True

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        if self.activation == "softmax":
            return keras.ops.softmax(x, axis=-1)
        if self.activation == "sigmoid":
            return keras.ops.sigmoid(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            activation=self.activation,
            class_names=list(self.class_names),
            multilabel=self.multilabel,
            thresholds=self.thresholds,
            logits=self.logits,
        )
        return config


def classification_output(
    x,
    num_classes: int,
    output: str = "softmax",
    *,
    class_names: Sequence[str] | None = None,
    multilabel: bool | None = None,
    name: str = "label",
):
    """The last two layers of every classifier: ``Dense`` ``{name}_logits`` → :class:`ClassifierOutput`.

    Heads, scratch CNNs, the autoencoder and feature heads all end here, so every model carries
    its label map and computes its output in float32.

    Args:
        x: the symbolic input of the final Dense layer.
        num_classes: output units.
        output: ``"softmax"`` (single-label), ``"sigmoid"`` (multi-label) or ``"logits"``.
        class_names: one name per class; ``class_0``… when not given.
        multilabel: for ``"logits"``: whether prediction applies sigmoid (True) or softmax.
        name: name of the output layer.

    Returns:
        The float32 output tensor ``(B, num_classes)``.

    Example:
        >>> import keras
        >>> inp = keras.Input((8,))
        >>> out = classification_output(inp, 2, "softmax", class_names=["cod", "eel"])
        >>> keras.Model(inp, out).get_layer("label").class_names
        ['cod', 'eel']
    """
    if output not in ("softmax", "sigmoid", "logits"):
        raise LabelMapError(f"output={output!r}; choose 'softmax', 'sigmoid' or 'logits'")
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise LabelMapError(f"{len(names)} class names for {num_classes} outputs")
    logits = keras.layers.Dense(num_classes, dtype="float32", name=f"{name}_logits")(x)
    if output == "logits":
        return ClassifierOutput("linear", names, multilabel=bool(multilabel), logits=True, name=name)(logits)
    return ClassifierOutput(output, names, name=name)(logits)


@dataclass(frozen=True)
class LabelMap:
    """What the outputs of a classifier mean.

    Args:
        class_names: one name per output unit.
        multilabel: independent per-class probabilities, decided with ``thresholds``.
        thresholds: ``None`` (0.5), one float or one float per class (multi-label only).
        logits: the model outputs logits (apply :meth:`probabilities`).

    Example:
        >>> [round(t, 6) for t in LabelMap(["cod", "eel"], True, [0.3, 0.6]).threshold_array().tolist()]
        [0.3, 0.6]
    """

    class_names: list[str]
    multilabel: bool = False
    thresholds: float | list[float] | None = None
    logits: bool = False

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def threshold_array(self) -> np.ndarray:
        """``(C,)`` float32 thresholds (0.5 where none were set).

        Returns:
            The per-class thresholds.
        """
        t = 0.5 if self.thresholds is None else self.thresholds
        return np.broadcast_to(np.asarray(t, np.float32), (self.num_classes,)).copy()

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The model's ``(N, C)`` outputs as probabilities (softmax/sigmoid of logits).

        Args:
            outputs: model outputs.

        Returns:
            ``(N, C)`` float32 probabilities.
        """
        out = np.asarray(outputs, np.float32)
        if not self.logits:
            return out
        if self.multilabel:
            return (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
        e = np.exp(out - out.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)

    def to_dict(self) -> dict:
        """A JSON-ready dict (the ``labels.json`` written by export).

        Returns:
            ``{"class_names", "multilabel", "thresholds", "logits"}``.
        """
        return {
            "class_names": list(self.class_names),
            "multilabel": bool(self.multilabel),
            "thresholds": self.thresholds,
            "logits": bool(self.logits),
        }

    def write_json(self, path: str | os.PathLike) -> str:
        """Write :meth:`to_dict` as ``labels.json``.

        Args:
            path: file to write.

        Returns:
            The path written.
        """
        path = os.fspath(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def load_labels_json(path: str | os.PathLike) -> LabelMap:
    """A :class:`LabelMap` from a ``labels.json`` (a dict as written by export, or a plain list).

    Args:
        path: the JSON file: ``{"class_names": [...], "multilabel": ..., "thresholds": ...}``
            or ``["cod", "eel", ...]``.

    Returns:
        The label map.

    Raises:
        LabelMapError: the file is missing, damaged (truncated, empty, not UTF-8) or holds no
            list of class names; the message names the file, why, and what to write.

    Example:
        >>> load_labels_json("model_tflite/labels.json").class_names  # doctest: +SKIP
        ['cod', 'eel', 'ray']
    """
    fix = ('write {"class_names": ["cod", ...]} or a list of names, or export the model again '
           "(keras-species export writes its labels.json)")
    data, reason = read_json_file(path, (dict, list))
    if reason:
        raise LabelMapError(f"{os.fspath(path)} cannot be read as a label map ({reason}): {fix}")
    if isinstance(data, list):
        data = {"class_names": data}
    if not data.get("class_names"):
        raise LabelMapError(f"{os.fspath(path)} holds no class names; {fix}")
    if not isinstance(data["class_names"], list):
        raise LabelMapError(
            f"{os.fspath(path)}: class_names holds a JSON {json_type(data['class_names'])}, not a "
            f"list of names; {fix}"
        )
    names = [str(c) for c in data["class_names"]]
    return LabelMap(
        class_names=names,
        multilabel=bool(data.get("multilabel", False)),
        thresholds=_check_thresholds(data.get("thresholds"), len(names)),
        logits=bool(data.get("logits", False)),
    )


def _walk_layers(model: keras.Model):
    """Top-level layers first, then those of nested models (outermost label map wins)."""
    nested = []
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            nested.append(layer)
    for sub in nested:
        yield from _walk_layers(sub)


def find_output_layer(model: keras.Model) -> ClassifierOutput | None:
    """The model's :class:`ClassifierOutput` (the one named ``label`` when there are several).

    Args:
        model: a Keras model.

    Returns:
        The layer, or ``None`` when the model has none.

    Example:
        >>> find_output_layer(model).name  # doctest: +SKIP
        'label'
    """
    found = [layer for layer in _walk_layers(model) if isinstance(layer, ClassifierOutput)]
    if not found:
        return None
    named = [layer for layer in found if layer.name == "label"]
    return (named or found)[0]


def label_map(model: keras.Model) -> LabelMap:
    """The label map stored in ``model``'s :class:`ClassifierOutput` layer.

    Args:
        model: a Keras model built by keras-species (or passed through :func:`attach_label_map`).

    Returns:
        The :class:`LabelMap`.

    Raises:
        LabelMapError: the model has no ``ClassifierOutput`` layer.

    Example:
        >>> label_map(keras.saving.load_model("best.keras")).class_names  # doctest: +SKIP
        ['cod', 'eel', 'ray']
    """
    layer = find_output_layer(model)
    if layer is None:
        raise LabelMapError(
            f"model {model.name!r} carries no label map (no ClassifierOutput layer). Pass the "
            "class names (predict(..., labels=[...]) / --labels labels.json), put a labels.json "
            "next to the model, or add one with "
            "keras_species.models.labels.attach_label_map(model, class_names)."
        )
    return LabelMap(
        class_names=list(layer.class_names),
        multilabel=layer.multilabel,
        thresholds=layer.thresholds,
        logits=layer.logits,
    )


def set_thresholds(model: keras.Model, thresholds: float | Sequence[float] | np.ndarray) -> LabelMap:
    """Store tuned multi-label thresholds in the model (kept by ``model.save``).

    Args:
        model: a multi-label model with a :class:`ClassifierOutput` layer.
        thresholds: one float or one per class, each in ``[0, 1]`` (e.g. from
            ``evaluation.thresholds``).

    Returns:
        The updated :class:`LabelMap`.

    Raises:
        LabelMapError: no label map, a single-label model, or thresholds of the wrong length.

    Example:
        >>> set_thresholds(model, [0.3, 0.45, 0.6])  # doctest: +SKIP
        >>> model.save("best.keras")                   # doctest: +SKIP
    """
    label_map(model)  # the error for a model without one
    layer = find_output_layer(model)
    if not layer.multilabel:
        raise LabelMapError(
            f"model {model.name!r} is single-label (argmax); thresholds apply to multi-label "
            "(sigmoid) models"
        )
    layer.thresholds = _check_thresholds(thresholds, len(layer.class_names))
    return label_map(model)


def attach_label_map(
    model: keras.Model,
    class_names: Sequence[str],
    *,
    multilabel: bool = False,
    thresholds: float | Sequence[float] | None = None,
    logits: bool = False,
    output: str | int | None = None,
) -> keras.Model:
    """Wrap a foreign model whose output already holds probabilities with a label map.

    The new model takes the same input (named ``image``), calls ``model`` as a nested layer and
    ends in ``ClassifierOutput("linear", class_names, ...)`` named ``label``, so the outputs are
    unchanged.

    Args:
        model: a Keras model with one ``(B, C)`` output (or several: ``output`` picks one,
            default the output named ``label``).
        class_names: ``C`` names, in output order.
        multilabel: the outputs are per-class (sigmoid) probabilities.
        thresholds: multi-label threshold(s).
        logits: the outputs are logits, not probabilities.
        output: name or index of the output to keep for multi-output models.

    Returns:
        The wrapped ``keras.Model``.

    Example:
        >>> wrapped = attach_label_map(foreign, ["cod", "eel", "ray"])  # doctest: +SKIP
        >>> label_map(wrapped).class_names                              # doctest: +SKIP
        ['cod', 'eel', 'ray']
    """
    inp = keras.Input(model.input_shape[1:], name="image")
    y = model(inp)
    if isinstance(y, dict):
        key = output if output is not None else "label"
        if key not in y:
            raise LabelMapError(f"model outputs {sorted(y)}; pass output= one of them")
        y = y[key]
    elif isinstance(y, (list, tuple)):
        if len(y) == 1:
            y = y[0]
        else:
            names = list(getattr(model, "output_names", None) or [])
            if isinstance(output, int):
                y = y[output]
            elif (output or "label") in names:
                y = y[names.index(output or "label")]
            else:
                raise LabelMapError(f"model has {len(y)} outputs {names}; pass output= one")
    out = ClassifierOutput(
        "linear", class_names, multilabel=multilabel, thresholds=thresholds, logits=logits,
        name="label",
    )(y)
    return keras.Model(inp, out, name=f"{model.name}_labelled")
