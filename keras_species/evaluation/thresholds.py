"""Decision thresholds for multi-label (sigmoid) outputs: one global threshold or one per class.

R4 tunes both on the validation split and reports both on test: a single threshold optimised for
micro-F1, and per-class thresholds that each maximise that class's own F1. Scores come from
``sklearn.metrics``; the search over a fixed grid is written here because sklearn has no
threshold search for multi-label outputs (``TunedThresholdClassifierCV`` wraps estimators only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "DEFAULT_GRID",
    "SCORERS",
    "apply_thresholds",
    "as_multilabel_indicator",
    "multilabel_macro_f1",
    "multilabel_micro_f1",
    "multilabel_samples_f1",
    "occurring_tags",
    "score_predictions",
    "tune_global_threshold",
    "tune_per_class_thresholds",
]

DEFAULT_GRID = np.round(np.linspace(0.05, 0.95, 91), 6)


def occurring_tags(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Indices of the tags with a positive label or a positive prediction.

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        y_pred: ``(N, C)`` 0/1 predictions.

    Returns:
        The column indices, ascending.

    Example:
        >>> occurring_tags(np.array([[1, 0, 0]]), np.array([[0, 0, 1]])).tolist()
        [0, 2]
    """
    return np.flatnonzero((np.asarray(y_true).sum(axis=0) + np.asarray(y_pred).sum(axis=0)) > 0)


def as_multilabel_indicator(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` in a shape sklearn reads as multi-label indicators, one tag included.

    sklearn reads a one-column 0/1 matrix as binary labels (two classes, 0 and 1), so with a single
    tag its micro F1 would score "no tag" as a class and its samples F1 would refuse the data. A
    second, all-zero column (no label, no prediction) adds no true/false positive or negative, so
    every F1, precision and recall of the real tag is unchanged (Hamming loss is not: it divides by
    the number of columns, and sklearn reads one column right there).

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        y_pred: ``(N, C)`` 0/1 predictions.

    Returns:
        The two arrays, with an all-zero column appended when ``C == 1``.

    Example:
        >>> y, p = as_multilabel_indicator(np.array([[1], [0]]), np.array([[1], [1]]))
        >>> y.tolist(), p.tolist()
        ([[1, 0], [0, 0]], [[1, 0], [1, 0]])
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        empty = np.zeros((len(y_true), 1), dtype=y_true.dtype)
        return np.hstack([y_true, empty]), np.hstack([y_pred, empty.astype(y_pred.dtype)])
    return y_true, y_pred


def multilabel_micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Micro F1 of multi-hot predictions (0 when there is no tag to find and none predicted).

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        y_pred: ``(N, C)`` 0/1 predictions.

    Returns:
        The F1 of all (sample, tag) cells pooled.

    Example:
        >>> multilabel_micro_f1(np.array([[1], [0], [1]]), np.array([[1], [0], [0]]))
        0.6666666666666666
    """
    y, p = as_multilabel_indicator(y_true, y_pred)
    return float(skm.f1_score(y, p, average="micro", zero_division=0))


def multilabel_samples_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-image F1 of multi-hot predictions.

    An image without a tag that gets no predicted tag was answered right and scores 1 (sklearn's
    ``zero_division=1.0``: its F1 is 0/0); one with a tag and no prediction still scores 0.

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        y_pred: ``(N, C)`` 0/1 predictions.

    Returns:
        The mean over images.

    Example:
        >>> multilabel_samples_f1(np.array([[0, 0], [1, 0]]), np.array([[0, 0], [0, 0]]))
        0.5
    """
    y, p = as_multilabel_indicator(y_true, y_pred)
    return float(skm.f1_score(y, p, average="samples", zero_division=1.0))


def multilabel_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 of multi-hot predictions over the tags that occur in the labels or predictions.

    A tag with no positive and no prediction is left out (sklearn's ``average="macro"`` over all
    columns would count it as 0); when no tag occurs at all, every answer was right: 1.0.

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        y_pred: ``(N, C)`` 0/1 predictions.

    Returns:
        The mean F1 over the occurring tags.

    Example:
        >>> multilabel_macro_f1(np.array([[1, 0], [0, 0]]), np.array([[1, 0], [0, 0]]))
        1.0
    """
    tags = occurring_tags(y_true, y_pred)
    if tags.size == 0:
        return 1.0
    y, p = as_multilabel_indicator(y_true, y_pred)
    return float(skm.f1_score(y, p, labels=tags, average="macro", zero_division=0))


SCORERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "micro_f1": multilabel_micro_f1,
    "macro_f1": multilabel_macro_f1,
    "samples_f1": multilabel_samples_f1,
    "exact_match": lambda y, p: skm.accuracy_score(y, p),
}


def apply_thresholds(
    probs: np.ndarray, thresholds: float | Sequence[float] | np.ndarray
) -> np.ndarray:
    """0/1 predictions: ``probs >= threshold`` per column.

    Args:
        probs: ``(N, C)`` probabilities.
        thresholds: a float, or ``(C,)`` per-class thresholds, each in ``[0, 1]``.

    Returns:
        ``(N, C)`` uint8 array of 0/1.

    Raises:
        ValueError: a wrong number of thresholds, or one outside ``[0, 1]`` (or NaN).

    Example:
        >>> apply_thresholds(np.array([[0.2, 0.7]]), [0.1, 0.8]).tolist()
        [[1, 0]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.ndim > 1 or (thr.ndim == 1 and probs.ndim >= 1 and thr.shape[0] != probs.shape[-1]):
        raise ValueError(
            f"thresholds must be a float or one value per class ({probs.shape[-1]}); "
            f"got shape {thr.shape}"
        )
    if not np.all(np.isfinite(thr)) or np.any(thr < 0) or np.any(thr > 1):  # NaN selects nothing
        raise ValueError(f"thresholds must lie in [0, 1]; got {np.round(thr, 4).tolist()}")
    return (probs >= thr).astype(np.uint8)


def score_predictions(y_true: np.ndarray, y_pred: np.ndarray, metric: str = "micro_f1") -> float:
    """One of :data:`SCORERS` (``micro_f1``, ``macro_f1``, ``samples_f1``, ``exact_match``).

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        y_pred: ``(N, C)`` 0/1 predictions.
        metric: scorer name.

    Returns:
        The score as a float.

    Example:
        >>> score_predictions(np.array([[1, 0]]), np.array([[1, 0]]))
        1.0
    """
    if metric not in SCORERS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(SCORERS)}")
    return float(SCORERS[metric](y_true, y_pred))


def _check(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C)`` 0/1 labels and probabilities, as ``multilabel_metrics`` takes them: logits were
    tuned to a meaningless threshold (0.06), and 0/2 labels scored, without a word."""
    from keras_species.evaluation.metrics import _check_probs

    raw = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if raw.ndim != 2 or raw.shape != probs.shape:
        raise ValueError(
            f"y_true and probs must both be (N, C); got {raw.shape} and {probs.shape}"
        )
    if raw.size and not np.isin(raw, (0, 1)).all():
        raise ValueError(f"y_true must hold 0/1 labels (multi-hot); got values {sorted(set(np.unique(raw).tolist()) - {0, 1})[:5]}")
    return raw.astype(np.int64), _check_probs(probs, len(raw))


def _check_grid(grid: Sequence[float] | np.ndarray) -> np.ndarray:
    """The candidate thresholds as a 1-D float array: at least one, each in [0, 1]."""
    values = np.asarray(grid, dtype=np.float64).ravel()
    near = np.abs(values - np.clip(values, 0, 1)) <= 1e-9  # np.arange(0.1, 1.05, 0.05) ends at 1.0000000000000004
    values = np.where(near, np.clip(values, 0, 1), values)
    if values.size == 0:
        raise ValueError("grid must hold one or more thresholds in [0, 1]; got none")
    bad = values[~((values >= 0) & (values <= 1))]
    if bad.size:
        raise ValueError(f"grid must hold one or more thresholds in [0, 1]; got {[float(v) for v in bad[:5]]}")
    return values


def tune_global_threshold(
    y_true: np.ndarray,
    probs: np.ndarray,
    metric: str = "micro_f1",
    grid: Sequence[float] | np.ndarray = DEFAULT_GRID,
) -> tuple[float, float]:
    """The single threshold of ``grid`` that maximises ``metric`` over all classes.

    Ties go to the threshold closest to 0.5 (the untuned default).

    Args:
        y_true: ``(N, C)`` 0/1 validation labels.
        probs: ``(N, C)`` validation probabilities.
        metric: ``micro_f1`` (R4), ``macro_f1``, ``samples_f1`` or ``exact_match``.
        grid: candidate thresholds.

    Returns:
        ``(threshold, score)``.

    Example:
        >>> t, s = tune_global_threshold(np.array([[1], [0]]), np.array([[0.3], [0.1]]))
        >>> 0.1 < t <= 0.3, s
        (True, 1.0)
    """
    y_true, probs = _check(y_true, probs)
    grid = _check_grid(grid)
    scores = np.array([score_predictions(y_true, apply_thresholds(probs, t), metric) for t in grid])
    best = np.flatnonzero(scores == scores.max())
    i = best[np.argmin(np.abs(grid[best] - 0.5))]
    return float(grid[i]), float(scores[i])


def tune_per_class_thresholds(
    y_true: np.ndarray,
    probs: np.ndarray,
    metric: str = "micro_f1",
    grid: Sequence[float] | np.ndarray = DEFAULT_GRID,
    *,
    global_threshold: float | None = None,
) -> tuple[np.ndarray, float]:
    """Per-class thresholds: each class's threshold maximises that class's F1.

    Classes without positives in ``y_true`` keep the global threshold (tuned with ``metric`` when
    ``global_threshold`` is None). The global threshold is always a candidate and wins ties, so a
    class's F1 is never below its F1 at the global threshold.

    Args:
        y_true: ``(N, C)`` 0/1 validation labels.
        probs: ``(N, C)`` validation probabilities.
        metric: the overall score returned (and used to tune the global fallback).
        grid: candidate thresholds.
        global_threshold: fallback threshold; tuned when None.

    Returns:
        ``(thresholds (C,), score)`` where ``score`` is ``metric`` with those thresholds.

    Example:
        >>> y = np.array([[1, 0], [0, 1], [0, 0]])
        >>> p = np.array([[0.2, 0.1], [0.1, 0.9], [0.05, 0.6]])
        >>> thr, s = tune_per_class_thresholds(y, p)
        >>> s
        1.0
    """
    y_true, probs = _check(y_true, probs)
    if global_threshold is None:
        global_threshold, _ = tune_global_threshold(y_true, probs, metric, grid)
    cand = np.unique(np.append(_check_grid(grid), global_threshold))
    n, c = probs.shape
    thr = np.full(c, float(global_threshold))
    for j in range(c):
        if y_true[:, j].sum() == 0:
            continue
        # One sklearn call scores every candidate: column g holds the predictions at cand[g].
        preds = (probs[:, j : j + 1] >= cand[None, :]).astype(np.int64)
        truth = np.repeat(y_true[:, j : j + 1], len(cand), axis=1)
        truth, preds = as_multilabel_indicator(truth, preds)  # a one-value grid: one column
        f1 = skm.f1_score(truth, preds, average=None, zero_division=0)[: len(cand)]
        best = np.flatnonzero(f1 == f1.max())
        thr[j] = cand[best[np.argmin(np.abs(cand[best] - global_threshold))]]
    return thr, score_predictions(y_true, apply_thresholds(probs, thr), metric)
