"""Figures of a run: each function draws with matplotlib (Agg backend), writes a PNG, returns its path.

Curves come from ``sklearn.metrics`` (``precision_recall_curve``, ``roc_curve``); the figures are
the run folder's ``plots/`` (DESIGN.md) and the R2/R4/R5 report figures.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from keras_species.evaluation.metrics import (  # noqa: E402
    per_class_average_precision,
    scorable_columns,
)
from keras_species.evaluation.thresholds import (  # noqa: E402
    DEFAULT_GRID,
    apply_thresholds,
    score_predictions,
)

__all__ = [
    "load_history",
    "plot_learning_curves",
    "normalise_rows",
    "plot_confusion_matrix",
    "plot_per_class_f1",
    "plot_pr_curves",
    "plot_roc_curves",
    "confident_mistakes",
    "uncertain_predictions",
    "plot_confident_mistakes",
    "plot_uncertain_predictions",
    "plot_model_scatter",
    "plot_accuracy_vs_loss",
    "plot_top5_vs_auc",
    "plot_threshold_curve",
]

PathLike = str | os.PathLike
LR_KEYS = ("lr", "learning_rate")


def _save(fig, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _to_float(v) -> float | str:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def load_history(history) -> list[dict]:
    """History rows (one dict per epoch) from a CSV path, a list of dicts, a dict of lists, or a
    ``keras.callbacks.History``.

    Args:
        history: the history in any of those forms.

    Returns:
        A list of dicts; numeric strings become floats.

    Raises:
        ValueError: a CSV file that is not UTF-8 text (the message names it).

    Example:
        >>> load_history({"loss": [1.0, 0.5]})
        [{'loss': 1.0}, {'loss': 0.5}]
    """
    if history is None:
        return []
    if hasattr(history, "history") and isinstance(history.history, Mapping):
        history = history.history
    if isinstance(history, (str, os.PathLike)):
        try:
            with open(history, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except UnicodeDecodeError as err:
            byte = err.object[err.start]
            raise ValueError(f"{os.fspath(history)} is not UTF-8 text (byte 0x{byte:02x}): restore it "
                             "or delete it") from None
    elif isinstance(history, Mapping):
        keys = list(history)
        n = max((len(history[k]) for k in keys), default=0)
        rows = [{k: history[k][i] for k in keys if i < len(history[k])} for i in range(n)]
    else:
        rows = [dict(r) for r in history]
    return [{k: _to_float(v) for k, v in r.items() if v not in ("", None)} for r in rows]


def _phase_spans(rows: list[dict], key: str) -> list[tuple[str, int, int]]:
    """``(phase, first_x, last_x)`` runs of equal phase values, x counted from 1."""
    spans: list[tuple[str, int, int]] = []
    for x, r in enumerate(rows, start=1):
        ph = r.get(key)
        if ph is None:
            continue
        ph = str(int(ph)) if isinstance(ph, float) and ph.is_integer() else str(ph)
        if spans and spans[-1][0] == ph:
            spans[-1] = (ph, spans[-1][1], x)
        else:
            spans.append((ph, x, x))
    return spans


def plot_learning_curves(
    history,
    path: PathLike,
    *,
    metrics: Sequence[str] | None = None,
    phase_key: str = "phase",
    title: str = "Learning curves",
) -> Path:
    """Train/val curves per metric, phase boundaries marked, learning rate in its own panel.

    The x axis counts epochs over the whole run (phases restart Keras' epoch numbering), so a
    two-phase run reads left to right with a dashed line and the phase name at each boundary.

    Args:
        history: a ``history.csv`` path, list of dicts, dict of lists or ``History``; columns
            like ``loss``, ``val_loss``, ``accuracy``, ``phase`` and ``lr``/``learning_rate``.
        path: PNG to write.
        metrics: base metric names to draw (default: every ``X`` that has a ``val_X`` column, or
            all numeric columns).
        phase_key: column naming the phase.
        title: figure title.

    Returns:
        The PNG path.

    Example:
        >>> plot_learning_curves("runs/r/history.csv", "runs/r/plots/learning_curves.png")  # doctest: +SKIP
    """
    rows = load_history(history)
    if not rows:
        raise ValueError("history is empty; nothing to plot (did training run any epoch?)")
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    numeric = [c for c in cols if all(isinstance(r.get(c, 0.0), float) for r in rows)]
    skip = {phase_key, "epoch", "step", *LR_KEYS}
    if metrics is None:
        metrics = [c for c in numeric if f"val_{c}" in numeric and c not in skip]
        if not metrics:
            metrics = [c for c in numeric if c not in skip and not c.startswith("val_")]
    lr_key = next((k for k in LR_KEYS if k in numeric), None)
    panels = list(metrics) + ([lr_key] if lr_key else [])
    if not panels:
        raise ValueError(f"no numeric metric columns in history (columns: {cols})")
    x = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True, squeeze=False
    )
    spans = _phase_spans(rows, phase_key)
    for ax, name in zip(axes[:, 0], panels):
        series = [name] if name == lr_key else [name, f"val_{name}"]
        for s in series:
            if s in numeric:
                y = np.array([r.get(s, np.nan) for r in rows], dtype=float)
                ax.plot(x, y, marker="o", ms=3, label=s)
        if name == lr_key:
            vals = np.array([r.get(name, np.nan) for r in rows], dtype=float)
            if np.nanmin(vals) > 0:
                ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        for _ph, first, _ in spans[1:]:
            ax.axvline(first - 0.5, color="grey", ls="--", lw=1)
    top = axes[0, 0]
    for ph, first, last in spans:
        top.text(
            (first + last) / 2, 1.02, ph, transform=top.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=9, color="dimgrey",
        )
    axes[-1, 0].set_xlabel("epoch (whole run)")
    fig.suptitle(title, y=1.0 + 0.02 * (4 - min(len(panels), 4)))
    fig.tight_layout()
    return _save(fig, path)


def normalise_rows(cm: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """A confusion matrix divided by its row totals; the row of a class without samples is NaN.

    Args:
        cm: ``(C, C)`` counts, rows = true class.

    Returns:
        ``(C, C)`` floats.

    Example:
        >>> normalise_rows([[3, 1], [0, 0]]).tolist()
        [[0.75, 0.25], [nan, nan]]
    """
    cm = np.asarray(cm, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.full_like(cm, np.nan), where=totals > 0)


def plot_confusion_matrix(
    cm: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: PathLike,
    *,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Heat map of a confusion matrix (rows = true class), normalised per row by default.

    Cell values are written for up to 20 classes; the figure and font scale so ~40 classes stay
    readable. Normalised, the row of a class without test samples is left blank (it has no
    recall to show, not a recall of 0).

    Args:
        cm: ``(C, C)`` counts (``metrics["confusion_matrix"]``).
        class_names: ``C`` names.
        path: PNG to write.
        normalize: divide each row by its total (recall on the diagonal).
        title: figure title.

    Returns:
        The PNG path.

    Example:
        >>> plot_confusion_matrix([[3, 1], [0, 4]], ["cod", "eel"], "cm.png")  # doctest: +SKIP
    """
    cm = np.asarray(cm, dtype=float)
    c = cm.shape[0]
    if cm.shape != (c, c) or len(class_names) != c:
        raise ValueError(f"cm must be (C, C) with C = len(class_names); got {cm.shape}")
    if normalize:
        cm = normalise_rows(cm)
    side = min(max(4.5, 0.38 * c + 2.5), 20)
    font = 9 if c <= 12 else 8 if c <= 40 else 6
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(c), labels=list(class_names), rotation=90, fontsize=font)
    ax.set_yticks(range(c), labels=list(class_names), fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + (" (row-normalised)" if normalize else ""))
    if c <= 20:
        top = float(np.nanmax(cm)) if np.isfinite(cm).any() else 0.0
        thresh = top / 2 if top > 0 else 0.5
        for i in range(c):
            for j in range(c):
                if not np.isfinite(cm[i, j]):
                    continue
                txt = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=font - 1,
                        color="white" if cm[i, j] > thresh else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class_f1(
    class_names: Sequence[str],
    f1: Sequence[float | None],
    path: PathLike,
    *,
    support: Sequence[int] | None = None,
    title: str = "Per-class F1",
) -> Path:
    """Horizontal bars of per-class F1, worst at the top, support in the labels.

    A class without an F1 (``None``: no test sample and no prediction) gets no bar and a "–",
    below the scored ones.

    Args:
        class_names: ``C`` names.
        f1: ``C`` F1 scores (``None`` where undefined).
        path: PNG to write.
        support: optional ``C`` test counts, shown as ``name (n=…)``.
        title: figure title.

    Returns:
        The PNG path.

    Example:
        >>> pc = metrics["per_class"]  # doctest: +SKIP
        >>> plot_per_class_f1([r["name"] for r in pc], [r["f1"] for r in pc], "f1.png",
        ...                   support=[r["support"] for r in pc])  # doctest: +SKIP
    """
    f1 = np.array([np.nan if v is None else v for v in f1], dtype=float)
    if len(class_names) != len(f1):
        raise ValueError("class_names and f1 must have the same length")
    labels = [
        f"{n} (n={int(s)})" if support is not None else str(n)
        for n, s in zip(class_names, support if support is not None else class_names)
    ]
    scored = np.flatnonzero(np.isfinite(f1))
    # y = 0 is the bottom bar: the unscored classes, then the best up to the worst at the top
    best_first = scored[np.argsort(-f1[scored], kind="stable")]
    order = np.r_[np.flatnonzero(~np.isfinite(f1)), best_first]
    c = len(f1)
    values = f1[order]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * c + 1)))
    ax.barh(range(c), np.nan_to_num(values), color=plt.cm.RdYlGn(np.nan_to_num(values)))
    ax.set_yticks(range(c), labels=[labels[i] for i in order], fontsize=8 if c <= 40 else 6)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    for y, v in enumerate(values):
        text = f"{v:.2f}" if np.isfinite(v) else "–"
        ax.text(min(np.nan_to_num(v) + 0.01, 0.95), y, text, va="center", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _indicator(y_true: np.ndarray, c: int) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.ndim == 1:
        return np.eye(c, dtype=np.int64)[y_true.astype(np.int64)]
    return y_true.astype(np.int64)


def _sample_classes(valid: np.ndarray, n_sample: int, seed: int) -> np.ndarray:
    idx = np.flatnonzero(valid)
    if len(idx) > n_sample:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n_sample, replace=False))
    return idx


def _step_precision(grid: np.ndarray, recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Precision at each recall of ``grid`` as average precision counts it: that of the first
    operating point whose recall reaches it (``recall``/``precision`` as
    ``precision_recall_curve`` returns them, recall falling). Linear interpolation between the
    points drew precisions no threshold reaches.

    Example:
        >>> _step_precision(np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0]), np.array([0.5, 1.0, 1.0]))
        array([1. , 1. , 0.5])
    """
    rec, prec = recall[::-1], precision[::-1]  # recall rising
    return prec[np.minimum(np.searchsorted(rec, grid, side="left"), len(rec) - 1)]


def _curves(kind: str, y_true, probs, class_names, path, n_sample, seed, title) -> Path:
    probs = np.asarray(probs, dtype=float)
    c = probs.shape[1]
    y = _indicator(y_true, c)
    valid = scorable_columns(y)  # the classes the metrics' macro AUC / AP average over
    if not valid.any():
        raise ValueError("no class has both positive and negative test samples; no curve exists")
    grid = np.linspace(0, 1, 201)
    fig, (ax_avg, ax_cls) = plt.subplots(1, 2, figsize=(12, 5))
    interp = []
    for j in np.flatnonzero(valid):
        if kind == "pr":
            prec, rec, _ = skm.precision_recall_curve(y[:, j], probs[:, j])
            interp.append(_step_precision(grid, rec, prec))
        else:
            fpr, tpr, _ = skm.roc_curve(y[:, j], probs[:, j])
            interp.append(np.interp(grid, fpr, tpr))
    macro = np.mean(interp, axis=0)
    yv, pv = y[:, valid].ravel(), probs[:, valid].ravel()
    over = "" if valid.all() else f", {int(valid.sum())} of {c} classes"
    if kind == "pr":
        prec, rec, _ = skm.precision_recall_curve(yv, pv)
        micro_score = skm.average_precision_score(yv, pv)
        # the metrics' own number (average_precision_macro / map), from the same function
        macro_score = float(np.nanmean(per_class_average_precision(y, probs)))
        # steps, as sklearn's PrecisionRecallDisplay: straight lines between operating points drew
        # precisions no threshold reaches (a constant model's diagonal from precision 1)
        ax_avg.plot(rec, prec, drawstyle="steps-post", label=f"micro-average (AP {micro_score:.3f})")
        ax_avg.plot(grid, macro, label=f"macro-average (mAP {macro_score:.3f}{over})")
        ax_avg.axhline(yv.mean(), color="grey", ls=":", lw=1, label="chance (micro)")
        xl, yl = "recall", "precision"
    else:
        fpr, tpr, _ = skm.roc_curve(yv, pv)
        micro_score = skm.roc_auc_score(yv, pv)
        macro_score = skm.roc_auc_score(y[:, valid], probs[:, valid], average="macro")
        ax_avg.plot(fpr, tpr, label=f"micro-average (AUC {micro_score:.3f})")
        ax_avg.plot(grid, macro, label=f"macro-average (AUC {macro_score:.3f}{over})")
        ax_avg.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
        xl, yl = "false positive rate", "true positive rate"
    for j in _sample_classes(valid, n_sample, seed):
        if kind == "pr":
            prec, rec, _ = skm.precision_recall_curve(y[:, j], probs[:, j])
            s = skm.average_precision_score(y[:, j], probs[:, j])
            ax_cls.plot(rec, prec, lw=1.2, drawstyle="steps-post", label=f"{class_names[j]} (AP {s:.2f})")
        else:
            fpr, tpr, _ = skm.roc_curve(y[:, j], probs[:, j])
            s = skm.roc_auc_score(y[:, j], probs[:, j])
            ax_cls.plot(fpr, tpr, lw=1.2, label=f"{class_names[j]} (AUC {s:.2f})")
    n_shown = min(n_sample, int(valid.sum()))
    for ax, sub in ((ax_avg, "averages"), (ax_cls, f"{n_shown} random classes")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left" if kind == "pr" else "lower right")
        ax.set_title(f"{title}: {sub}")
    fig.tight_layout()
    return _save(fig, path)


def plot_pr_curves(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: PathLike,
    *,
    n_sample: int = 10,
    seed: int = 0,
) -> Path:
    """Precision–recall curves: micro and macro averages, and a random sample of classes (R5).

    The legend's mAP is the metrics' ``map`` / ``average_precision_macro``: the mean AP over the
    classes with some test positives but not all (the legend says how many when that is not all).

    Args:
        y_true: ``(N,)`` class indices or ``(N, C)`` multi-hot labels.
        probs: ``(N, C)`` probabilities.
        class_names: ``C`` names.
        path: PNG to write.
        n_sample: classes drawn at random (among those with test positives) for the right panel.
        seed: random seed of that draw.

    Returns:
        The PNG path.

    Example:
        >>> plot_pr_curves(y_test, probs, names, "plots/pr_curves.png")  # doctest: +SKIP
    """
    return _curves("pr", y_true, probs, class_names, path, n_sample, seed, "Precision-recall")


def plot_roc_curves(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: PathLike,
    *,
    n_sample: int = 10,
    seed: int = 0,
) -> Path:
    """One-vs-rest ROC curves: micro and macro averages, and a random sample of classes.

    Args:
        y_true: ``(N,)`` class indices or ``(N, C)`` multi-hot labels.
        probs: ``(N, C)`` probabilities.
        class_names: ``C`` names.
        path: PNG to write.
        n_sample: classes drawn at random for the right panel.
        seed: random seed of that draw.

    Returns:
        The PNG path.

    Example:
        >>> plot_roc_curves(y_test, probs, names, "plots/roc_curves.png")  # doctest: +SKIP
    """
    return _curves("roc", y_true, probs, class_names, path, n_sample, seed, "ROC")


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, n: int = 16) -> np.ndarray:
    """Indices of wrong predictions, most confident first.

    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities.
        n: how many at most.

    Returns:
        Up to ``n`` indices.

    Example:
        >>> confident_mistakes(np.array([0, 1]), np.array([[0.2, 0.8], [0.1, 0.9]])).tolist()
        [0]
    """
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y_true))
    return wrong[np.argsort(-probs[wrong].max(axis=1), kind="stable")][:n]


def uncertain_predictions(probs: np.ndarray, n: int = 16) -> np.ndarray:
    """Indices with the smallest margin between the two most probable classes.

    Args:
        probs: ``(N, C)`` probabilities.
        n: how many at most.

    Returns:
        Up to ``n`` indices, least certain first.

    Example:
        >>> uncertain_predictions(np.array([[0.9, 0.1], [0.55, 0.45]]), 1).tolist()
        [1]
    """
    probs = np.asarray(probs)
    top2 = np.sort(probs, axis=1)[:, -2:] if probs.shape[1] > 1 else np.c_[0 * probs, probs]
    return np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[:n]


def _thumbnail(path, size: int = 224) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.seek(0)
            im = im.convert("RGB")
            im.thumbnail((size, size))
            return np.asarray(im)
    except Exception:  # any unreadable file becomes a grey "unreadable" tile, never a crash
        return None


def _image_grid(indices, paths, y_true, probs, class_names, path, title, cols) -> Path:
    indices = list(indices)
    probs = np.asarray(probs)
    n = max(1, len(indices))
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not indices:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center", va="center")
    for ax, i in zip(axes.ravel(), indices):
        img = _thumbnail(paths[i])
        if img is None:
            ax.imshow(np.full((8, 8, 3), 200, np.uint8))
            ax.text(3.5, 3.5, "unreadable", ha="center", va="center", fontsize=9)
        else:
            ax.imshow(img)
        p = probs[i]
        pred = int(np.argmax(p))
        t = int(y_true[i])
        ax.set_title(
            f"true: {class_names[t]} ({p[t]:.2f})\npred: {class_names[pred]} ({p[pred]:.2f})",
            fontsize=8, color="darkred" if pred != t else "darkgreen",
        )
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_confident_mistakes(
    paths: Sequence[PathLike],
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: PathLike,
    *,
    n: int = 16,
    cols: int = 4,
) -> Path:
    """Grid of the most confident wrong predictions, with true/predicted labels and probabilities.

    Images are loaded with PIL; an unreadable file is drawn as a grey "unreadable" tile.

    Args:
        paths: ``N`` image paths, aligned with ``y_true``/``probs``.
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities.
        class_names: ``C`` names.
        path: PNG to write.
        n: number of images at most.
        cols: grid columns.

    Returns:
        The PNG path.

    Example:
        >>> plot_confident_mistakes(paths, y, probs, names, "plots/mistakes.png")  # doctest: +SKIP
    """
    idx = confident_mistakes(y_true, probs, n)
    return _image_grid(idx, paths, y_true, probs, class_names, path, "Confident mistakes", cols)


def plot_uncertain_predictions(
    paths: Sequence[PathLike],
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: PathLike,
    *,
    n: int = 16,
    cols: int = 4,
) -> Path:
    """Grid of the least certain predictions (smallest top-1 / top-2 margin), R2.

    Args:
        paths: ``N`` image paths.
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities.
        class_names: ``C`` names.
        path: PNG to write.
        n: number of images at most.
        cols: grid columns.

    Returns:
        The PNG path.

    Example:
        >>> plot_uncertain_predictions(paths, y, probs, names, "plots/uncertain.png")  # doctest: +SKIP
    """
    idx = uncertain_predictions(probs, n)
    return _image_grid(idx, paths, y_true, probs, class_names, path, "Uncertain predictions", cols)


def plot_model_scatter(
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    path: PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> Path:
    """Scatter of one point per model, each labelled with its name.

    Args:
        x: x values, one per model (None/NaN points are skipped).
        y: y values.
        labels: model names.
        path: PNG to write.
        xlabel: x axis label.
        ylabel: y axis label.
        title: figure title.

    Returns:
        The PNG path.

    Example:
        >>> plot_model_scatter([0.9, 1.2], [0.7, 0.6], ["a", "b"], "s.png",
        ...                    xlabel="loss", ylabel="acc")  # doctest: +SKIP
    """
    xs = np.array([np.nan if v is None else v for v in x], dtype=float)
    ys = np.array([np.nan if v is None else v for v in y], dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(xs[ok], ys[ok], s=40)
    for xi, yi, name in zip(xs[ok], ys[ok], np.asarray(labels, dtype=object)[ok]):
        ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if not ok.any():
        ax.text(0.5, 0.5, "no models with both values", transform=ax.transAxes, ha="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _row_name(r: Mapping) -> str:
    return str(r.get("model", r.get("name", "?")))


def plot_accuracy_vs_loss(rows: Sequence[Mapping], path: PathLike) -> Path:
    """Test accuracy vs test loss, one labelled point per model (R5).

    Args:
        rows: dicts with ``model``, ``test_loss``, ``test_acc`` (``compare_models`` rows).
        path: PNG to write.

    Returns:
        The PNG path.

    Example:
        >>> plot_accuracy_vs_loss(compare_models(results), "plots/acc_vs_loss.png")  # doctest: +SKIP
    """
    return plot_model_scatter(
        [r.get("test_loss") for r in rows], [r.get("test_acc") for r in rows],
        [_row_name(r) for r in rows], path,
        xlabel="test loss", ylabel="test accuracy", title="Test accuracy vs loss",
    )


def plot_top5_vs_auc(rows: Sequence[Mapping], path: PathLike) -> Path:
    """Top-5 accuracy vs macro one-vs-rest AUC, one labelled point per model (R5).

    Args:
        rows: dicts with ``model``, ``macro_auc``, ``top5``.
        path: PNG to write.

    Returns:
        The PNG path.

    Example:
        >>> plot_top5_vs_auc(compare_models(results), "plots/top5_vs_auc.png")  # doctest: +SKIP
    """
    return plot_model_scatter(
        [r.get("macro_auc") for r in rows], [r.get("top5") for r in rows],
        [_row_name(r) for r in rows], path,
        xlabel="macro ROC AUC (one-vs-rest)", ylabel="top-5 accuracy",
        title="Top-5 accuracy vs macro AUC",
    )


def plot_threshold_curve(
    y_true: np.ndarray,
    probs: np.ndarray,
    path: PathLike,
    *,
    grid: Sequence[float] | np.ndarray = DEFAULT_GRID,
    chosen: float | None = None,
    metrics: Sequence[str] = ("micro_f1", "macro_f1", "exact_match"),
    split: str | None = None,
) -> Path:
    """Multi-label scores vs one global threshold, the chosen threshold marked (R4).

    Args:
        y_true: ``(N, C)`` 0/1 labels.
        probs: ``(N, C)`` probabilities.
        path: PNG to write.
        grid: thresholds to evaluate.
        chosen: threshold to mark with a vertical line.
        metrics: scorer names from :data:`keras_species.evaluation.thresholds.SCORERS`.
        split: which images, named in the title (a report's curve is of the val images the
            thresholds were tuned on, where every other figure is of test: it said neither).

    Returns:
        The PNG path.

    Example:
        >>> plot_threshold_curve(y_val, p_val, "plots/thresholds.png", chosen=0.375)  # doctest: +SKIP
    """
    grid = np.asarray(grid, dtype=float)
    y_true = np.asarray(y_true)
    preds = [apply_thresholds(probs, t) for t in grid]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in metrics:
        ax.plot(grid, [score_predictions(y_true, p, m) for p in preds], label=m)
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"chosen {chosen:.3f}")
    ax.set_xlabel("threshold")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.set_title("Scores vs global threshold" + (f" ({split})" if split else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
