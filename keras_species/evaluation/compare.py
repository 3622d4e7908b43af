"""One table comparing models on the same test set (R2 part 3, R5), with unique hits and misses."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from keras_species import csvfile, markdown
from keras_species.evaluation.metrics import single_label_metrics, unique_correct_wrong

__all__ = ["COLUMNS", "compare_models", "comparison_table", "write_comparison_csv"]

# (key, header, better): "max" / "min" marks the best value in bold, None leaves it plain.
COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("model", "Model", None),
    ("params", "#parameters", None),
    ("val_loss", "val loss", "min"),
    ("val_acc", "val acc", "max"),
    ("test_loss", "test loss", "min"),
    ("test_acc", "test acc", "max"),
    ("test_acc_tta", "test acc (TTA)", "max"),
    ("top5", "top-5", "max"),
    ("macro_auc", "macro AUC", "max"),
    ("unique_correct", "#unique correct", None),
    ("unique_wrong", "#unique errors", None),
)


def _correct(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> np.ndarray:
    if y_true.ndim == 2:  # multi-label: a sample is right when every tag is right
        return ((probs >= threshold) == (y_true > 0)).all(axis=1)
    return probs.argmax(axis=1) == y_true


def compare_models(results: Mapping[str, Mapping], *, threshold: float = 0.5) -> list[dict]:
    """Rows of the comparison table: given scores, missing ones computed, unique hits/misses added.

    Args:
        results: model name -> dict with ``probs`` ``(N, C)`` and ``y_true`` (same test set for
            all models) and any of ``params``, ``val_loss``, ``val_acc``, ``test_loss``,
            ``test_acc``, ``top5``, ``macro_auc``. Missing test scores of single-label models are
            computed from ``probs`` (``sklearn.metrics``); ``probs``/``y_true`` may be omitted
            when every score is given (no unique counts then).
        threshold: decision threshold when ``y_true`` is multi-hot.

    Returns:
        One dict per model (input order) with keys of :data:`COLUMNS`; ``unique_correct`` counts
        test samples only that model got right, ``unique_wrong`` those only it got wrong.

    Example:
        >>> rows = compare_models({"a": {"probs": pa, "y_true": y}, "b": {"probs": pb, "y_true": y}})  # doctest: +SKIP
        >>> print(comparison_table(rows))  # doctest: +SKIP
    """
    if not results:
        raise ValueError("no models to compare")
    rows: list[dict] = []
    correct: dict[str, np.ndarray] = {}
    y_ref = None
    for name, r in results.items():
        row = {"model": str(name)}
        for key, _, _ in COLUMNS[1:-2]:
            if r.get(key) is not None:
                row[key] = r[key]
        if r.get("probs") is not None and r.get("y_true") is not None:
            probs = np.asarray(r["probs"], dtype=np.float64)
            y_true = np.asarray(r["y_true"])
            if y_ref is None:
                y_ref = y_true
            elif y_true.shape != y_ref.shape or not np.array_equal(y_true, y_ref):
                raise ValueError(
                    f"model {name!r} was scored on different test labels; compare models on "
                    "one test set"
                )
            correct[str(name)] = _correct(y_true, probs, threshold)
            if y_true.ndim == 1 and any(
                row.get(k) is None for k in ("test_loss", "test_acc", "top5", "macro_auc")
            ):
                m = single_label_metrics(y_true, probs, top_k=(5,))
                row.setdefault("test_acc", m["accuracy"])
                row.setdefault("test_loss", m["log_loss"])
                row.setdefault("top5", m.get("top5_accuracy"))
                row.setdefault("macro_auc", m["roc_auc_ovr_macro"])
            elif y_true.ndim == 2:
                row.setdefault("test_acc", float(skm.accuracy_score(
                    y_true, (probs >= threshold).astype(int))))
        rows.append(row)
    if correct:
        uniq = unique_correct_wrong(correct)
        for row in rows:
            if row["model"] in uniq:
                row["unique_correct"] = uniq[row["model"]]["unique_correct"]
                row["unique_wrong"] = uniq[row["model"]]["unique_wrong"]
    return rows


def _fmt(key: str, v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if key == "params":
        return f"{int(v):,}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4f}"
    return markdown.cell(v)


def comparison_table(
    rows: Sequence[Mapping], *, columns: Sequence[str] | None = None, bold_best: bool = True
) -> str:
    """A markdown table of model rows; the best value of each score column in bold.

    Args:
        rows: dicts as returned by :func:`compare_models` (extra keys become extra columns when
            named in ``columns``).
        columns: keys to show, in order (default: the :data:`COLUMNS` present in any row).
        bold_best: bold the best value of columns with a known direction.

    Returns:
        The markdown table (ends with a newline).

    Example:
        >>> print(comparison_table([{"model": "a", "test_acc": 0.9}, {"model": "b", "test_acc": 0.8}]))
        | Model | test acc |
        |---|---:|
        | a | **0.9000** |
        | b | 0.8000 |
        <BLANKLINE>
    """
    known = {k: (h, b) for k, h, b in COLUMNS}
    if columns is None:
        columns = [k for k, _, _ in COLUMNS if any(r.get(k) is not None for r in rows)]
    best: dict[str, float] = {}
    if bold_best:
        for k in columns:
            direction = known.get(k, (k, None))[1]
            vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float, np.number))
                    and np.isfinite(float(r[k]))]
            if direction and len(vals) > 1:
                best[k] = min(vals) if direction == "min" else max(vals)
    head = "| " + " | ".join(known.get(k, (k, None))[0] for k in columns) + " |"
    align = "|" + "|".join("---" if k == "model" else "---:" for k in columns) + "|"
    lines = [head, align]
    for r in rows:
        cells = []
        for k in columns:
            s = _fmt(k, r.get(k))
            v = r.get(k)
            # bold what prints as the best (0.49999 and 0.5 both print 0.5000)
            if k in best and isinstance(v, (int, float, np.number)) and (
                    float(v) == best[k] or s == _fmt(k, best[k])):
                s = f"**{s}**"
            cells.append(s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison_csv(path: str | os.PathLike, rows: Sequence[Mapping],
                         columns: Sequence[str]) -> Path:
    """Write the rows of a comparison as ``comparison.csv``, whole (a temporary sibling moved in).

    One writer for every recipe that compares models (``backbone_comparison``, ``scratch_cnn``,
    ``inaturalist_vgg16``, ``feature_classifiers``): they each joined cells with commas by hand,
    so a model name with a comma shifted its row, and a killed run could leave half a file.

    Args:
        path: the file.
        rows: one mapping per model.
        columns: the columns in order (``"model"`` first); a missing or None cell is empty.

    Returns:
        The path written.

    Example:
        >>> write_comparison_csv("runs/x/comparison.csv", [{"model": "a, b", "test_acc": 0.9}],
        ...                      ["model", "test_acc"])   # doctest: +SKIP
    """

    from keras_species.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csvfile.writer(f)
        writer.writerow(columns)
        writer.writerows(["" if row.get(c) is None else row[c] for c in columns] for row in rows)
    return Path(path)
