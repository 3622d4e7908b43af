"""Small markdown tables for reports: metric blocks side by side, per-class scores by origin.

R2 puts plain inference and test-time augmentation side by side, and reads the added tenth
class's precision and recall next to those of the nine original classes. Both tables are built
from the dicts of :mod:`keras_species.evaluation.metrics` (``single_label_metrics``), so any
recipe can show them.

Example:
    >>> print(metrics_side_by_side({"plain": {"accuracy": 0.855}, "TTA": {"accuracy": 0.87}},
    ...                            keys=(("accuracy", "accuracy"),)))
    | metric | plain | TTA | TTA − plain |
    |---|---:|---:|---:|
    | accuracy | 0.8550 | 0.8700 | +0.0150 |
    <BLANKLINE>
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from keras_species import markdown

__all__ = ["SIDE_BY_SIDE_KEYS", "MULTILABEL_SIDE_BY_SIDE_KEYS", "metrics_side_by_side", "per_class_by_origin"]

SIDE_BY_SIDE_KEYS: tuple[tuple[str, str], ...] = (
    ("accuracy", "top-1 accuracy"),
    ("top5_accuracy", "top-5 accuracy"),
    ("precision_macro", "macro precision"),
    ("recall_macro", "macro recall"),
    ("f1_macro", "macro F1"),
    ("log_loss", "log loss"),
)
"""(metrics key, row label) of :func:`metrics_side_by_side` by default (single-label scores)."""

MULTILABEL_SIDE_BY_SIDE_KEYS: tuple[tuple[str, str], ...] = (
    ("f1_micro", "micro F1"),
    ("exact_match", "exact match"),
    ("hamming_loss", "Hamming loss"),
    ("f1_macro", "macro F1"),
    ("map", "mAP"),
)
"""The rows of a multi-label run's scores (``multilabel_metrics``' keys)."""


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def metrics_side_by_side(
    blocks: Mapping[str, Mapping],
    *,
    keys: Sequence[tuple[str, str]] = SIDE_BY_SIDE_KEYS,
    difference: bool = True,
) -> str:
    """One row per metric, one column per metric block (e.g. plain inference and TTA).

    Args:
        blocks: column name -> metrics dict (``single_label_metrics`` output or a subset).
        keys: ``(key, label)`` rows to show; rows no block has are left out.
        difference: with two blocks, add a column "second − first".

    Returns:
        The markdown table (ends with a newline).

    Example:
        >>> metrics_side_by_side({"a": {"accuracy": 0.5}}, keys=(("accuracy", "acc"),)).splitlines()[2]
        '| acc | 0.5000 |'
    """
    if not blocks:
        raise ValueError("no metric blocks to show")
    names = list(blocks)
    diff = difference and len(names) == 2
    head = ["metric", *names] + ([f"{names[1]} − {names[0]}"] if diff else [])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for key, label in keys:
        values = [_num(blocks[n].get(key)) for n in names]
        if all(v is None for v in values):
            continue
        cells = ["–" if v is None else f"{v:.4f}" for v in values]
        if diff:
            a, b = values
            cells.append("–" if a is None or b is None else f"{b - a:+.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _score(v: float | None) -> str:
    """A per-class score to 3 decimals; "–" for an undefined one (``None``)."""
    return "–" if v is None else f"{float(v):.3f}"


def per_class_by_origin(
    per_class: Sequence[Mapping],
    added: Sequence[str],
    *,
    labels: tuple[str, str] = ("original", "added"),
) -> str:
    """Per-class precision / recall / F1 with each class's origin, and the mean of each origin.

    Args:
        per_class: ``metrics["per_class"]`` (dicts with ``name, precision, recall, f1, support``).
        added: names of the classes that were added (from another source).
        labels: how the two origins are named in the table.

    Returns:
        The markdown table: one row per class (added classes in bold; "–" for an undefined
        score), then one "mean" row per origin (unweighted means over its classes, leaving out
        a class with no test sample and no prediction, as the macro averages of
        :mod:`keras_species.evaluation.metrics` do).

    Example:
        >>> rows = [{"name": "a", "precision": 1.0, "recall": 0.5, "f1": 0.67, "support": 2},
        ...         {"name": "new", "precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1}]
        >>> per_class_by_origin(rows, ["new"]).splitlines()[3]
        '| **new** | added | 0.500 | 1.000 | 0.670 | 1 |'
    """
    added_set = set(added)
    unknown = sorted(added_set - {str(r.get("name")) for r in per_class})
    if unknown:
        raise ValueError(f"added classes {unknown} are not in the per-class metrics")
    lines = ["| class | origin | precision | recall | F1 | support |",
             "|---|---|---:|---:|---:|---:|"]
    groups: dict[str, list[Mapping]] = {labels[0]: [], labels[1]: []}
    for r in per_class:
        name = str(r.get("name"))
        origin = labels[1] if name in added_set else labels[0]
        groups[origin].append(r)
        shown = f"**{markdown.cell(name)}**" if name in added_set else markdown.cell(name)
        lines.append(
            f"| {shown} | {origin} | {_score(r['precision'])} | {_score(r['recall'])} | "
            f"{_score(r['f1'])} | {int(r.get('support', 0))} |"
        )
    for origin, rows in groups.items():
        rows = [r for r in rows if int(r.get("support", 0)) or int(r.get("predicted", 1))]
        if not rows:
            continue
        # a predicted class without test samples has no recall (None): the macro averages count
        # it as 0 (sklearn's zero_division), and so does this mean
        mean = {k: sum(float(r[k] or 0.0) for r in rows) / len(rows)
                for k in ("precision", "recall", "f1")}
        support = sum(int(r.get("support", 0)) for r in rows)
        lines.append(
            f"| *mean of {len(rows)} {origin}* | {origin} | {mean['precision']:.3f} | "
            f"{mean['recall']:.3f} | {mean['f1']:.3f} | {support} |"
        )
    return "\n".join(lines) + "\n"
