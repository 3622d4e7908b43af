"""Test-set scores from arrays of labels and probabilities, as JSON-ready dicts.

Everything here is computed with ``sklearn.metrics``; this module only validates the arrays,
handles classes absent from the test labels, and turns numpy values into plain Python ones.

Macro averages run over the classes that occur in the test labels or in the predictions. A class
with neither has nothing to score: sklearn would count it as F1 = 0 when given the full class
list (its ``zero_division`` value), which pulls the mean down for a class the model got right
(it predicted none of it, and there was none). Single-label scores then equal sklearn's own
default (``labels=None``: the classes in ``y_true`` or ``y_pred``); multi-label ones leave out
the tags without a positive and without a prediction (:func:`keras_species.evaluation.thresholds.multilabel_macro_f1`).
Per class, a score with nothing to count is ``None``, not 0: recall without a test sample,
precision and F1 without a test sample and without a prediction.

Top-k accuracy is written here, not taken from ``sklearn.metrics.top_k_accuracy_score``: sklearn
breaks ties between probabilities toward the higher class index and ``argmax`` toward the lower,
so with tied outputs (float16 softmax) its top-k could fall below top-1. One order serves both
and ``predictions.csv`` (:func:`ranked_classes`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn import metrics as skm

from keras_species.data.audit import majority_label_set
from keras_species.evaluation.thresholds import (
    apply_thresholds,
    as_multilabel_indicator,
    multilabel_macro_f1,
    multilabel_micro_f1,
    multilabel_samples_f1,
    occurring_tags,
)

__all__ = [
    "single_label_metrics",
    "rescaled_log_loss",
    "multilabel_metrics",
    "unique_correct_wrong",
    "majority_class",
    "ranked_classes",
    "true_class_rank",
    "scorable_columns",
    "per_class_average_precision",
    "PROBABILITY_SLACK",
    "ROW_SUM_TOLERANCE",
]

PROBABILITY_SLACK = 1e-6
"""How far outside ``[0, 1]`` a probability may round (``predict_proba`` can give
``1.0000000000000002``); such values are clipped, anything further is refused."""

ROW_SUM_TOLERANCE = 1e-2
"""How far a single-label row may sum from 1 without a warning: a float16 softmax drifts by ~1e-3,
a float32 one or a TTA mean of them by far less; sigmoid outputs or logits are off by much more."""


def _num(x: float | np.floating | None) -> float | None:
    """A plain float, or ``None`` for NaN/inf/None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def rescaled_log_loss(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> float:
    """``sklearn.metrics.log_loss`` of ``probs`` with each row rescaled to sum to one (a TTA mean
    or a float16 output drifts slightly); sklearn's own clipping of zeros is kept (a floor of
    1e-15 applied first gave 17.38 where sklearn gives 18.13 for a true class at probability 0).

    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities; a row of zeros counts as uniform.
        num_classes: ``C`` (the labels log loss is over, present in ``y_true`` or not).

    Returns:
        The mean negative log-likelihood.

    Example:
        >>> round(rescaled_log_loss(np.array([0]), np.array([[0.5, 0.5]]), 2), 4)
        0.6931
    """
    probs = _check_probs(probs, len(np.asarray(y_true)))  # NaN (a diverged model), logits: refused
    total = probs.sum(axis=1, keepdims=True)
    rows = np.divide(probs, total, out=np.full_like(probs, 1.0 / num_classes), where=total > 0)
    return float(skm.log_loss(y_true, rows, labels=list(range(num_classes))))


def _check_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names has {len(names)} names but probs has {num_classes} columns; pass one "
            "name per output column, in the model's output order, with labels that index them "
            "(evaluate.in_class_order matches a manifest's labels to the model's classes by name)"
        )
    return names


def _check_probs(probs: np.ndarray, n: int, *, rows_sum_to_one: bool = False) -> np.ndarray:
    """``probs`` as a float64 ``(n, C)`` array of probabilities, or a ValueError that says why not.

    Args:
        probs: the model outputs.
        n: the number of labelled samples.
        rows_sum_to_one: single-label outputs: warn when a row sums to 1 by more than
            :data:`ROW_SUM_TOLERANCE` off (scores stay meaningful for one-vs-rest sigmoid
            outputs, and log loss rescales the rows, so a warning rather than an error).

    Returns:
        The probabilities, clipped to ``[0, 1]`` within :data:`PROBABILITY_SLACK`.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, C); got shape {probs.shape}")
    if probs.shape[0] != n:
        raise ValueError(
            f"y_true has {n} samples but probs has {probs.shape[0]} rows; "
            "pass predictions for exactly the labelled samples"
        )
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contains NaN or inf; check the model output (diverged training?)")
    if probs.size == 0:
        return probs
    lo, hi = float(probs.min()), float(probs.max())
    if lo < -PROBABILITY_SLACK or hi > 1 + PROBABILITY_SLACK:
        raise ValueError(
            f"probs must be probabilities in [0, 1]; got values from {lo:.4g} to {hi:.4g}. "
            "Pass probabilities, not logits: apply softmax (single-label) or sigmoid "
            "(multi-label) to the model's outputs"
        )
    probs = np.clip(probs, 0.0, 1.0)
    if rows_sum_to_one:
        sums = probs.sum(axis=1)
        off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
        if off.any():
            warnings.warn(
                f"{int(off.sum())} of {len(probs)} rows of probs do not sum to 1 (sums from "
                f"{sums.min():.4g} to {sums.max():.4g}): single-label scores expect softmax "
                "outputs; log loss is computed on the rows rescaled to sum to 1",
                stacklevel=3,
            )
    return probs


def ranked_classes(probs: np.ndarray, k: int | None = None) -> np.ndarray:
    """Each row's class indices by descending probability, ties to the lower class index.

    The one order of single-label predictions: its first class is ``argmax`` (the prediction that
    accuracy and the confusion matrix score), top-k accuracy asks whether the true class is among
    its first ``k``, and ``predictions.csv`` lists its first ``k``.

    Args:
        probs: ``(N, C)`` probabilities.
        k: keep the first ``k`` columns (all when None).

    Returns:
        ``(N, k)`` int indices.

    Example:
        >>> ranked_classes(np.array([[0.2, 0.4, 0.4]])).tolist()
        [[1, 2, 0]]
    """
    p = np.asarray(probs)
    if k is not None and k < 0:
        raise ValueError(f"k={k}: give how many classes to keep, 0 or more")
    if k == 0:
        return np.empty((p.shape[0], 0), dtype=np.int64)
    if k is None or k >= p.shape[1] or (np.issubdtype(p.dtype, np.floating) and np.isnan(p).any()):
        # the full stable sort (NaN last, after -inf) when every class is wanted or a row holds NaN
        order = np.argsort(-p.astype(np.float64), axis=1, kind="stable")
        return order if k is None else order[:, :k]
    # the first k without sorting every class (5,000 classes: a full sort of each row took
    # 230 µs an image, more than the model): the rows' k-th largest values, then a stable sort
    # of the classes at or above it only, which keeps ties in class order
    kth = np.partition(p, p.shape[1] - k, axis=1)[:, p.shape[1] - k]
    out = np.empty((p.shape[0], k), dtype=np.int64)
    for i, (row, bar) in enumerate(zip(p, kth)):
        candidates = np.flatnonzero(row >= bar)
        out[i] = candidates[np.argsort(-row[candidates], kind="stable")][:k]
    return out


def true_class_rank(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The position of each sample's true class in :func:`ranked_classes` (0 = the prediction).

    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities.

    Returns:
        ``(N,)`` ranks: the classes scoring higher, plus those tied with it at a lower index.

    Example:
        >>> true_class_rank(np.array([2, 0]), np.array([[0.2, 0.4, 0.4], [0.5, 0.5, 0.0]])).tolist()
        [1, 0]
    """
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    p_true = probs[np.arange(len(y)), y][:, None]
    before = np.arange(probs.shape[1])[None, :] < y[:, None]
    return ((probs > p_true) | ((probs == p_true) & before)).sum(axis=1)


def _tie_note(y_true: np.ndarray, probs: np.ndarray, ks: Sequence[int]) -> str | None:
    """A note for the top-k accuracies that tied probabilities decide: their range over tie orders.

    ``None`` when no reported top-k accuracy depends on how ties are broken.
    """
    p_true = probs[np.arange(len(y_true)), y_true][:, None]
    higher = (probs > p_true).sum(axis=1)  # classes ahead of the true one in every tie order
    at_least = (probs >= p_true).sum(axis=1)  # ... plus the true one and those tied with it
    decided = np.zeros(len(y_true), dtype=bool)
    ranges = []
    for k in ks:
        depends = (higher < k) & (at_least > k)
        if depends.any():
            decided |= depends
            ranges.append(f"top-{k} {np.mean(at_least <= k):.4f}–{np.mean(higher < k):.4f}")
    if not ranges:
        return None
    return (
        f"Tied probabilities decide the top-k hit of {int(decided.sum())} of {len(y_true)} "
        "samples; ties go to the lower class index (as argmax does), and another class order "
        "could give " + ", ".join(ranges)
    )


def scorable_columns(y_indicator: np.ndarray) -> np.ndarray:
    """Which columns of 0/1 labels have an AUC / average precision: some positives, not all.

    A class with no positive has no AP; one positive on every sample scores AP = 1.0 whatever
    the model does, so neither enters a mean.

    Args:
        y_indicator: ``(N, C)`` 0/1 labels (one-hot or multi-hot).

    Returns:
        ``(C,)`` bool mask.

    Example:
        >>> scorable_columns(np.array([[1, 1, 0], [1, 0, 0]])).tolist()
        [False, True, False]
    """
    y = np.asarray(y_indicator)
    support = y.sum(axis=0)
    return (support > 0) & (support < len(y))


def per_class_average_precision(y_indicator: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Average precision of each :func:`scorable_columns` column, NaN elsewhere.

    The macro AP / mAP of the metrics and of the precision–recall figure are both the mean of
    the finite values, so they are one number.

    Args:
        y_indicator: ``(N, C)`` 0/1 labels.
        probs: ``(N, C)`` probabilities.

    Returns:
        ``(C,)`` floats.

    Example:
        >>> per_class_average_precision(np.array([[1, 1], [0, 1]]), np.array([[0.9, 0.5], [0.2, 0.5]])).tolist()
        [1.0, nan]
    """
    y = np.asarray(y_indicator)
    probs = np.asarray(probs, dtype=np.float64)
    ap = np.full(y.shape[1], np.nan)
    for j in np.flatnonzero(scorable_columns(y)):
        ap[j] = skm.average_precision_score(y[:, j], probs[:, j])
    return ap


def _per_class_prf(
    p: np.ndarray, r: np.ndarray, f: np.ndarray, support: np.ndarray, predicted: np.ndarray, j: int
) -> dict:
    """Class ``j``'s precision, recall and F1, ``None`` where there is nothing to count.

    Recall needs a test sample; precision and F1 need a test sample or a prediction (a predicted
    class without samples scores precision and F1 0: every prediction of it was wrong). The macro
    averages keep sklearn's rule (``zero_division=0``) over the classes they score.
    """
    unscorable = support[j] == 0 and predicted[j] == 0
    return {
        "precision": None if unscorable else float(p[j]),
        "recall": None if support[j] == 0 else float(r[j]),
        "f1": None if unscorable else float(f[j]),
    }


def majority_class(
    y_true: np.ndarray, num_classes: int, train_counts: Sequence[int] | np.ndarray | None = None
) -> tuple[int, str]:
    """The majority class index and where it came from (``"train"`` counts or ``"test"`` labels).

    Args:
        y_true: ``(N,)`` int test labels.
        num_classes: number of classes ``C``.
        train_counts: optional ``(C,)`` per-class counts of the training split.

    Returns:
        ``(class_index, source)``.

    Example:
        >>> majority_class(np.array([0, 1, 1]), 3)
        (1, 'test')
    """
    if train_counts is not None:
        counts = np.asarray(train_counts, dtype=np.int64)
        if counts.shape != (num_classes,):
            raise ValueError(
                f"train_counts must have one count per class ({num_classes}); got shape {counts.shape}"
            )
        return int(np.argmax(counts)), "train"
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=num_classes)
    return int(np.argmax(counts)), "test"


def _constant_answer_scores(y_true: np.ndarray, answer: np.ndarray) -> tuple[float, float, float]:
    """Exact match, micro-F1 and Hamming loss of giving one label set to every sample.

    Args:
        y_true: ``(N, C)`` 0/1 multi-hot labels.
        answer: ``(C,)`` 0/1 label set predicted for every sample.

    Returns:
        ``(exact_match, f1_micro, hamming_loss)``.

    Example:
        >>> _constant_answer_scores(np.array([[1, 0], [0, 1]]), np.array([1, 0]))
        (0.5, 0.5, 0.5)
    """
    pred = np.tile(np.asarray(answer, dtype=np.int64), (len(y_true), 1))
    return (
        float(skm.accuracy_score(y_true, pred)),
        multilabel_micro_f1(y_true, pred),
        float(skm.hamming_loss(y_true, pred)),
    )


def _map_note(names: Sequence[str], support: np.ndarray, n: int) -> str:
    """Which tags the mAP averages over, and why the others are left out."""
    none = [names[j] for j in np.flatnonzero(support == 0)]
    every = [names[j] for j in np.flatnonzero(support == n)]
    used = len(names) - len(none) - len(every)
    if not none and not every:
        return "mAP averaged over every tag"
    if used == 0:
        head = "mAP undefined: no tag is on some test images and not on others"
    else:
        head = f"mAP averaged over {used} of {len(names)} tags"
    why = ([f"no test positives for: {', '.join(none)}"] if none else []) + (
        [f"on every test image (AP 1.0 whatever the scores): {', '.join(every)}"] if every else []
    )
    return f"{head}; " + "; ".join(why)


def _is_number(value: object) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def single_label_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    top_k: Sequence[int] = (1, 5),
    train_counts: Sequence[int] | np.ndarray | None = None,
) -> dict:
    """Scores of a single-label classifier, JSON-ready.

    Args:
        y_true: ``(N,)`` int class indices in ``[0, C)``.
        probs: ``(N, C)`` class probabilities (softmax outputs, or a TTA mean of them): values
            outside ``[0, 1]`` (logits) raise a ValueError, rows that do not sum to 1 warn.
        class_names: ``C`` names in output order (default ``"0".."C-1"``).
        top_k: top-k accuracies to report; only ``k < C`` are computed (``top1_accuracy`` always).
            A sample is a top-k hit when its true class is among the first ``k`` of
            :func:`ranked_classes` (ties to the lower class index, as ``argmax``), so top-k is
            never below top-1.
        train_counts: ``(C,)`` training-split class counts; the majority baseline then predicts the
            most frequent *training* class, as a deployed baseline would. Without it, the most
            frequent test class.

    Returns:
        A dict with ``task``, ``n``, ``num_classes``, ``accuracy``, ``top{k}_accuracy``,
        ``tie_note`` (None, or how tied probabilities could move the top-k accuracies),
        ``precision/recall/f1_{macro,micro,weighted}``, ``per_class`` (list of dicts with
        ``name, precision, recall, f1, support, predicted, roc_auc, average_precision``;
        ``None`` where undefined: recall without test samples, precision and F1 without test
        samples and predictions),
        ``confusion_matrix`` (rows = true, columns = predicted), ``log_loss``,
        ``roc_auc_ovr_macro``, ``average_precision_macro``, ``absent_classes`` (names with no
        test sample; AUC/AP are averaged over the present classes only), ``auc_note``,
        ``macro_classes`` (how many classes the macro P/R/F1 average over),
        ``majority_baseline``, ``majority_class``, ``majority_source``.

    Example:
        >>> m = single_label_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
        >>> m["accuracy"]
        1.0
    """
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise ValueError(
            f"y_true must be (N,) class indices; got shape {y_true.shape} "
            "(multi-hot labels go to multilabel_metrics, one-hot labels need argmax first)"
        )
    if y_true.dtype.kind not in "iub":  # 1.7 became class 1 without a word
        try:  # object arrays of ints, strings of digits: as numbers
            values = np.asarray(y_true, dtype=np.float64)
        except (TypeError, ValueError):
            odd = [v for v in y_true.tolist() if not _is_number(v)][:3]
            raise ValueError(f"y_true must be whole class indices; got {odd}") from None
        bad = ~(np.isfinite(values) & (values == np.round(values)))
        if bad.any():
            raise ValueError(f"y_true must be whole class indices; got {y_true[bad].tolist()[:3]}")
        y_true = values
    y_true = y_true.astype(np.int64)
    odd_k = [k for k in top_k if isinstance(k, bool) or not float(k).is_integer()]
    if odd_k:  # top_k=2.9 gave top-2 without a word
        raise ValueError(f"top_k must be whole numbers; got {odd_k}")
    probs = np.asarray(probs)
    if probs.ndim == 2 and probs.shape[1] == 1:
        raise ValueError(
            f"probs has one column (shape {probs.shape}): a single-label model needs one column per "
            "class; for a binary sigmoid output p (Dense(1, 'sigmoid')) pass np.c_[1 - p, p], "
            "with the class names of 0 and 1"
        )
    probs = _check_probs(probs, len(y_true), rows_sum_to_one=True)
    n, c = probs.shape
    if n == 0:
        raise ValueError("no samples to evaluate (empty test split?)")
    names = _check_names(class_names, c)
    if y_true.min() < 0 or y_true.max() >= c:
        raise ValueError(
            f"y_true must lie in [0, {c}) for {c} classes; got values in [{y_true.min()}, "
            f"{y_true.max()}]" + (" (unlabelled samples, -1, must be removed before evaluation)"
                                  if y_true.min() < 0 else "")
        )
    labels = list(range(c))
    y_pred = probs.argmax(axis=1)

    out: dict = {"task": "single_label", "n": int(n), "num_classes": int(c), "class_names": names}
    out["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
    out["top1_accuracy"] = out["accuracy"]
    rank = true_class_rank(y_true, probs)  # one tie rule with argmax: see the module docstring
    ks = [1, *sorted({int(k) for k in top_k if 1 < k < c})]
    for k in ks[1:]:
        out[f"top{k}_accuracy"] = float(np.mean(rank < k))
    out["tie_note"] = _tie_note(y_true, probs, ks)

    scored = np.union1d(y_true, y_pred)  # see the module docstring: no phantom zeros
    out["macro_classes"] = int(scored.size)
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=scored, average=avg, zero_division=0
        )
        out[f"precision_{avg}"] = float(p)
        out[f"recall_{avg}"] = float(r)
        out[f"f1_{avg}"] = float(f)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected here
        warnings.simplefilter("ignore")
        out["balanced_accuracy"] = float(skm.balanced_accuracy_score(y_true, y_pred))

    out["log_loss"] = rescaled_log_loss(y_true, probs, c)

    # One-vs-rest AUC / AP per class; a class without test samples has neither, so the macro
    # averages run over present classes only (sklearn's multiclass AUC would raise instead).
    onehot = np.eye(c, dtype=np.int64)[y_true]
    support = onehot.sum(axis=0)
    present = support > 0
    scorable = scorable_columns(onehot)
    auc = np.full(c, np.nan)
    for j in np.flatnonzero(scorable):
        auc[j] = skm.roc_auc_score(onehot[:, j], probs[:, j])
    ap = per_class_average_precision(onehot, probs)
    out["roc_auc_ovr_macro"] = _num(np.mean(auc[scorable])) if scorable.any() else None
    out["average_precision_macro"] = _num(np.mean(ap[scorable])) if scorable.any() else None
    out["absent_classes"] = [names[j] for j in np.flatnonzero(~present)]
    if not scorable.any():
        out["auc_note"] = "AUC/AP undefined: the test labels hold a single class"
    elif out["absent_classes"]:
        out["auc_note"] = (
            f"AUC/AP averaged over {int(scorable.sum())} of {c} classes; "
            f"no test samples for: {', '.join(out['absent_classes'])}"
        )
    else:
        out["auc_note"] = f"AUC/AP averaged over all {c} classes"

    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    n_pred = np.bincount(y_pred, minlength=c)
    out["per_class"] = [
        {
            "name": names[j],
            **_per_class_prf(p, r, f, s, n_pred, j),
            "support": int(s[j]),
            "predicted": int(n_pred[j]),
            "roc_auc": _num(auc[j]),
            "average_precision": _num(ap[j]),
        }
        for j in range(c)
    ]
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()

    maj, source = majority_class(y_true, c, train_counts)
    out["majority_baseline"] = float(np.mean(y_true == maj))
    out["majority_class"] = names[maj]
    out["majority_source"] = source
    return out


def multilabel_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    thresholds: float | Sequence[float] | np.ndarray = 0.5,
    train_labels: np.ndarray | None = None,
) -> dict:
    """Scores of a multi-label (sigmoid) classifier at the given thresholds, JSON-ready (R4).

    Args:
        y_true: ``(N, C)`` 0/1 multi-hot labels.
        probs: ``(N, C)`` per-tag probabilities (sigmoid outputs; values outside ``[0, 1]``
            raise a ValueError).
        class_names: ``C`` tag names in output order (one tag, ``C = 1``, works too).
        thresholds: one global threshold or ``(C,)`` per-class thresholds
            (see :mod:`keras_species.evaluation.thresholds`).
        train_labels: ``(M, C)`` multi-hot labels of the training split; the majority baseline
            then always predicts their most frequent label set
            (:func:`keras_species.data.audit.majority_label_set`, the audit's rule), as a deployed
            baseline would. Without them, the most frequent test label set.

    Returns:
        A dict with ``task``, ``n``, ``num_classes``, ``class_names``, ``exact_match`` (subset accuracy), ``hamming_loss``,
        ``f1_micro/macro/samples`` (``macro_classes``: the tags the macro F1 averages over;
        samples F1 scores a tag-free image with no predicted tag 1), ``precision_micro``,
        ``recall_micro``, ``map`` (macro AP over the tags on some test images but not all:
        ``map_skipped`` names the others, ``map_note`` says why), ``per_class`` (``name,
        average_precision, f1, precision, recall, support, predicted, threshold``; ``None``
        where undefined, as single-label), ``thresholds``, ``absent_classes`` (tags without test
        positives), ``label_cardinality``; the
        majority label-set baseline (the headline's): ``majority_baseline`` (its exact match),
        ``majority_f1_micro``, ``majority_hamming_loss``, ``majority_label_set`` (tag names,
        ``[]`` = no tag), ``majority_source`` (``"train"`` or ``"test"``); and the weaker
        "predict no tag" one: ``no_tag_exact_match``, ``no_tag_f1_micro`` (0),
        ``no_tag_hamming_loss``.

    Example:
        >>> y = np.array([[1, 0], [0, 0]])
        >>> multilabel_metrics(y, np.array([[0.9, 0.2], [0.1, 0.3]]), ["a", "b"])["exact_match"]
        1.0
        >>> train = np.array([[1, 0], [1, 0], [0, 1]])
        >>> m = multilabel_metrics(y, np.array([[0.9, 0.2], [0.1, 0.3]]), ["a", "b"], train_labels=train)
        >>> m["majority_label_set"], m["majority_baseline"]
        (['a'], 0.5)
    """
    y_true = np.asarray(y_true)
    if y_true.ndim != 2:
        raise ValueError(f"y_true must be (N, C) multi-hot; got shape {y_true.shape}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("multi-label y_true must hold only 0 and 1")
    y_true = y_true.astype(np.int64)
    probs = _check_probs(probs, len(y_true))
    if probs.shape != y_true.shape:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must have the same shape")
    n, c = probs.shape
    if n == 0:
        raise ValueError("no samples to evaluate (empty test split?)")
    names = _check_names(class_names, c)
    y_pred = apply_thresholds(probs, thresholds)  # checks the count and the range first
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (c,)).copy()

    out: dict = {"task": "multilabel", "n": int(n), "num_classes": int(c), "class_names": names}
    out["exact_match"] = float(skm.accuracy_score(y_true, y_pred))
    out["hamming_loss"] = float(skm.hamming_loss(y_true, y_pred))
    out["f1_micro"] = multilabel_micro_f1(y_true, y_pred)
    out["f1_samples"] = multilabel_samples_f1(y_true, y_pred)
    out["f1_macro"] = multilabel_macro_f1(y_true, y_pred)
    out["macro_classes"] = int(occurring_tags(y_true, y_pred).size)
    y_ind, pred_ind = as_multilabel_indicator(y_true, y_pred)  # one tag: see that function
    out["precision_micro"] = float(
        skm.precision_score(y_ind, pred_ind, average="micro", zero_division=0)
    )
    out["recall_micro"] = float(skm.recall_score(y_ind, pred_ind, average="micro", zero_division=0))
    out["label_cardinality"] = float(y_true.sum(axis=1).mean())

    support = y_true.sum(axis=0)
    predicted = y_pred.sum(axis=0)
    ap = per_class_average_precision(y_true, probs)
    scored = np.isfinite(ap)
    out["map"] = _num(np.mean(ap[scored])) if scored.any() else None
    out["absent_classes"] = [names[j] for j in np.flatnonzero(support == 0)]
    out["map_skipped"] = [names[j] for j in np.flatnonzero(~scored)]
    out["map_note"] = _map_note(names, support, n)
    p, r, f, _ = skm.precision_recall_fscore_support(
        y_ind, pred_ind, average=None, zero_division=0
    )
    out["per_class"] = [
        {
            "name": names[j],
            "average_precision": _num(ap[j]),
            **_per_class_prf(p, r, f, support, predicted, j),
            "support": int(support[j]),
            "predicted": int(predicted[j]),
            "threshold": float(thr[j]),
        }
        for j in range(c)
    ]
    out["thresholds"] = [float(t) for t in thr]

    if train_labels is not None:
        train_labels = np.asarray(train_labels)
        if train_labels.ndim != 2 or train_labels.shape[1] != c or len(train_labels) == 0:
            raise ValueError(
                f"train_labels must be (M, {c}) multi-hot with M >= 1, one column per tag; "
                f"got shape {train_labels.shape}"
            )
    majority, _ = majority_label_set(y_true if train_labels is None else train_labels)
    out["majority_baseline"], out["majority_f1_micro"], out["majority_hamming_loss"] = (
        _constant_answer_scores(y_true, majority)
    )
    out["no_tag_exact_match"], out["no_tag_f1_micro"], out["no_tag_hamming_loss"] = (
        _constant_answer_scores(y_true, np.zeros(c, np.int64))
    )
    out["majority_label_set"] = [names[j] for j in np.flatnonzero(majority)]
    out["majority_source"] = "test" if train_labels is None else "train"
    return out


def unique_correct_wrong(correct: Mapping[str, np.ndarray]) -> dict:
    """Per model, the samples only it got right and the samples only it got wrong (R2's table).

    Args:
        correct: model name -> ``(N,)`` bool array, True where that model's prediction is correct;
            all arrays index the same test samples.

    Returns:
        ``{name: {"unique_correct": int, "unique_wrong": int, "unique_correct_indices": [...],
        "unique_wrong_indices": [...]}}``. With a single model every correct sample is unique.

    Example:
        >>> r = unique_correct_wrong({"a": np.array([1, 0, 1], bool), "b": np.array([0, 0, 1], bool)})
        >>> r["a"]["unique_correct"], r["b"]["unique_wrong"]  # both: sample 0
        (1, 1)
    """
    if not correct:
        raise ValueError("pass at least one model's correctness array")
    names = list(correct)
    lengths = {k: np.asarray(correct[k]).size for k in names}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"correctness arrays differ in length: {lengths}; use one test set")
    mat = np.stack([np.asarray(correct[k]).astype(bool).ravel() for k in names])
    n_right = mat.sum(axis=0)
    m = len(names)
    out = {}
    for i, name in enumerate(names):
        only_right = mat[i] & (n_right == 1)
        only_wrong = ~mat[i] & (n_right == m - 1)
        out[name] = {
            "unique_correct": int(only_right.sum()),
            "unique_wrong": int(only_wrong.sum()),
            "unique_correct_indices": np.flatnonzero(only_right).tolist(),
            "unique_wrong_indices": np.flatnonzero(only_wrong).tolist(),
        }
    return out
