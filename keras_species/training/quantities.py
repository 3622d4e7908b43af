"""The names of what a training phase with the default loss and metrics logs, as plain data.

:func:`~keras_species.training.plan.default_metrics` builds its Keras metrics under these
names, and a recipe's ``--monitor`` check (``keras_species.recipe.monitor_choices``) reads them
without importing Keras: this module imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

Task = Literal["single", "multi", "custom"]

TOP5_MIN_CLASSES = 6
"""``top5_accuracy`` is logged from this many classes on (with 5 or fewer it is always 1)."""


def metric_names(task: Task, num_classes: int | None, *, from_logits: bool = False) -> list[str]:
    """The names of the metrics a phase uses when it names none, in order.

    Single-label: ``accuracy``, ``top5_accuracy`` (more than 5 classes), ``auc``. Multi-label:
    ``micro_f1`` (left out for a model that outputs logits: it needs probabilities),
    ``binary_accuracy``, ``auc``. ``"custom"``: none (the phase's own).

    Args:
        task: ``"single"``, ``"multi"`` or ``"custom"``.
        num_classes: number of outputs; None leaves ``top5_accuracy`` out.
        from_logits: whether the model outputs logits.

    Returns:
        The metric names.

    Example:
        >>> metric_names("single", 10)
        ['accuracy', 'top5_accuracy', 'auc']
    """
    if task == "single":
        top5 = num_classes is not None and num_classes >= TOP5_MIN_CLASSES
        return ["accuracy", *(["top5_accuracy"] if top5 else []), "auc"]
    if task == "multi":
        return [*([] if from_logits else ["micro_f1"]), "binary_accuracy", "auc"]
    return []


def logged_quantities(task: Task, num_classes: int | None = None, *, validation: bool = True) -> list[str]:
    """The quantities a phase with the default loss and metrics logs, i.e. what ``monitor`` may be.

    Args:
        task: ``"single"``, ``"multi"`` or ``"custom"`` (``loss`` only: its metrics are the
            phase's own).
        num_classes: number of outputs (``top5_accuracy`` is logged with more than 5 classes);
            None counts as more than 5.
        validation: also the ``val_`` names (logged when there is validation data).

    Returns:
        The names, training ones first.

    Example:
        >>> logged_quantities("multi", 3, validation=False)
        ['loss', 'micro_f1', 'binary_accuracy', 'auc']
    """
    names = ["loss", *metric_names(task, TOP5_MIN_CLASSES if num_classes is None else num_classes)]
    return names + [f"val_{n}" for n in names] if validation else names


__all__ = ["Task", "TOP5_MIN_CLASSES", "metric_names", "logged_quantities", "monitor_mode", "best_epoch"]


def monitor_mode(monitor: str) -> str:
    """``"min"`` for losses and errors, ``"max"`` for everything else (accuracy, AUC, F1).

    Args:
        monitor: a logs key such as ``val_loss`` or ``val_micro_f1``.

    Returns:
        ``"min"`` or ``"max"``.

    Example:
        >>> monitor_mode("val_loss"), monitor_mode("val_accuracy")
        ('min', 'max')
    """
    low = monitor.lower()
    return "min" if any(w in low for w in ("loss", "error", "mse", "mae", "crossentropy")) else "max"


def best_epoch(history: Sequence[dict], monitor: str) -> tuple[int, float] | None:
    """The first epoch that reached the best value of ``monitor``, as the best-model checkpoint
    keeps it (a later tie does not replace it).

    Args:
        history: one dict per epoch (``TrainResult.history``, ``history.csv`` rows).
        monitor: a logs key such as ``val_accuracy`` (``min`` or ``max`` by :func:`monitor_mode`).

    Returns:
        ``(index into history, value)``, or None when no epoch logged a finite value.

    Example:
        >>> best_epoch([{"val_loss": 0.5}, {"val_loss": 0.4}, {"val_loss": 0.4}], "val_loss")
        (1, 0.4)
    """
    lower = monitor_mode(monitor) == "min"
    best: tuple[int, float] | None = None
    for i, row in enumerate(history):
        value = row.get(monitor)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        if best is None or (value < best[1] if lower else value > best[1]):
            best = (i, float(value))
    return best
