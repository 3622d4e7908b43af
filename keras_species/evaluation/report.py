"""The run folder's ``predictions.csv``, ``metrics.json`` and ``report.md`` (DESIGN.md, "A run folder")."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_species import csvfile, markdown
from keras_species.atomic import atomic_path
from keras_species.evaluation.metrics import ranked_classes
from keras_species.evaluation.thresholds import apply_thresholds
from keras_species.training.quantities import best_epoch

__all__ = [
    "to_jsonable", "write_predictions_csv", "write_metrics_json", "render_report", "label_set_text",
]

PathLike = str | os.PathLike


def to_jsonable(obj):
    """``obj`` with numpy scalars/arrays, paths and tuples made JSON-safe; NaN/inf become None.

    Args:
        obj: nested dicts/lists of Python and numpy values.

    Returns:
        The same structure of plain Python values.

    Example:
        >>> to_jsonable({"a": np.float32(0.5), "b": np.array([1, 2]), "c": float("nan")})
        {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def write_metrics_json(path: PathLike, metrics: Mapping) -> Path:
    """Write ``metrics`` as indented JSON (numpy-safe, NaN as null).

    Args:
        path: file to write (parents are created).
        metrics: e.g. ``{"test": single_label_metrics(...), "val": ...}``.

    Returns:
        The path written.

    Example:
        >>> write_metrics_json(run_dir / "metrics.json", {"test": m})  # doctest: +SKIP
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(metrics), indent=2, allow_nan=False) + "\n")
    return path


def write_predictions_csv(
    path: PathLike,
    paths: Sequence[PathLike],
    y_true: np.ndarray | None,
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    multilabel: bool = False,
    thresholds: float | Sequence[float] | np.ndarray | None = None,
    top_k: int = 5,
) -> Path:
    """One row per image: path, true and predicted labels, confidence, and every class probability.

    Single-label columns: ``path, true, pred, confidence, correct, top{k}`` (``name:prob`` joined by
    ``;``; left out when ``k`` is not below the number of classes: it would list them all, and a
    binary run's ``top2`` would always hold the true class), ``p_<class>``. ``pred`` and the
    ``top{k}`` list follow :func:`keras_species.evaluation.metrics.ranked_classes` (ties to the
    lower class index), so a row counts toward the metrics' top-k accuracy exactly when its
    true class is listed. Multi-label: ``path,
    true, pred`` (tags joined by ``;``), ``exact_match``, ``p_<class>``. ``true``/``correct`` are
    empty when ``y_true`` is None or a label is ``-1`` (unlabelled).

    Args:
        path: CSV file to write.
        paths: ``N`` image paths.
        y_true: ``(N,)`` class indices / ``(N, C)`` multi-hot, or None.
        probs: ``(N, C)`` probabilities.
        class_names: ``C`` names.
        multilabel: multi-label outputs (sigmoid).
        thresholds: multi-label decision threshold(s), default 0.5.
        top_k: how many top classes the ``top{k}`` column lists (single-label; no column when
            ``top_k`` is not below the number of classes).

    Returns:
        The path written.

    Example:
        >>> write_predictions_csv(run_dir / "predictions.csv", paths, y, probs, names)  # doctest: +SKIP
    """
    probs = np.asarray(probs, dtype=np.float64)
    n, c = probs.shape
    if len(paths) != n or len(class_names) != c:
        raise ValueError(
            f"{len(paths)} paths, {n}x{c} probs and {len(class_names)} class names do not match"
        )
    if y_true is not None and len(y_true) != n:
        raise ValueError(f"y_true has {len(y_true)} rows but probs has {n}")
    names = [str(x) for x in class_names]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prob_cols = [f"p_{x}" for x in names]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csvfile.writer(f)
        if multilabel:
            pred = apply_thresholds(probs, 0.5 if thresholds is None else thresholds)
            w.writerow(["path", "true", "pred", "exact_match", *prob_cols])
            for i in range(n):
                tags = ";".join(names[j] for j in np.flatnonzero(pred[i]))
                if y_true is None:
                    true, exact = "", ""
                else:
                    yt = np.asarray(y_true[i]).astype(int)
                    true = ";".join(names[j] for j in np.flatnonzero(yt))
                    exact = int(np.array_equal(yt > 0, pred[i] > 0))
                w.writerow([os.fspath(paths[i]), true, tags, exact,
                            *(csvfile.probability(p) for p in probs[i])])
        else:
            # a top-k column only where it says more than the probabilities: with k >= C classes
            # it lists every class, and a binary run's "top2" was always right
            k = max(1, top_k)
            top_col = [f"top{k}"] if k < c else []
            w.writerow(["path", "true", "pred", "confidence", "correct", *top_col, *prob_cols])
            order = ranked_classes(probs, k)
            for i in range(n):
                p = int(order[i, 0])
                label = -1 if y_true is None else int(y_true[i])
                true = names[label] if label >= 0 else ""
                correct = int(label == p) if label >= 0 else ""
                top = [";".join(f"{names[j]}:{probs[i, j]:.4f}" for j in order[i])] if top_col else []
                w.writerow([os.fspath(paths[i]), true, names[p], csvfile.probability(probs[i, p]), correct,
                            *top, *(csvfile.probability(q) for q in probs[i])])
    return path


SHOWN_ROWS = 40
"""Rows of a block of extra metrics (``val``, ``thresholds``...) that the report shows; the rest
are counted under it (all are in ``metrics.json``)."""


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}" if math.isfinite(float(v)) else "–"
    s = markdown.cell(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _fmt_setting(v) -> str:
    """A setting of the configuration table: as :func:`_fmt` (``0.7`` reads ``0.7000``, ``0.001``
    ``0.0010``), except a small number that four decimals would round away or cut (a learning
    rate of ``1e-05`` read ``0.0000``): it keeps four significant digits (``1e-05``,
    ``0.00025``)."""
    if isinstance(v, (float, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v)):
        x = float(v)
        if x != 0 and abs(x) < 0.01 and round(x, 4) != x:
            return f"{x:.4g}"
    return _fmt(v)


SESSION_SETTINGS = ("resume", "overwrite")
"""Settings of the session that ran a report, not of the run: the configuration table leaves
them out (a resumed run's report showed ``resume | True``)."""


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            items += _flatten(v, key + ".")
        else:
            items.append((key, v))
    return items


def _main_metrics(metrics: Mapping) -> tuple[Mapping, dict]:
    """The test metrics and the other top-level metric blocks (``{"test": ..., "val": ...}``)."""
    if isinstance(metrics.get("test"), Mapping):
        others = {k: v for k, v in metrics.items() if k != "test" and isinstance(v, Mapping)}
        return metrics["test"], others
    return metrics, {}


def label_set_text(names: Sequence[str]) -> str:
    """A multi-label answer for people: its tags in braces, or ``{} (no tag)``.

    Args:
        names: the tag names of the set.

    Returns:
        e.g. ``"{fish, shark}"``.

    Example:
        >>> label_set_text(["fish"]), label_set_text([])
        ('{fish}', '{} (no tag)')
    """
    return "{" + ", ".join(names) + "}" if len(names) else "{} (no tag)"


def _headline(m: Mapping) -> list[str]:
    lines = ["| metric | model | baseline |", "|---|---:|---:|"]
    if m.get("task") == "multilabel":
        base = (f"always predict the majority label set {label_set_text(m.get('majority_label_set', []))} "
                f"(from {m.get('majority_source', '?')})")
        rows = [
            ("micro F1", m.get("f1_micro"), m.get("majority_f1_micro")),
            ("exact match", m.get("exact_match"), m.get("majority_baseline")),
            ("Hamming loss", m.get("hamming_loss"), m.get("majority_hamming_loss")),
            ("macro F1", m.get("f1_macro"), None),
            ("mAP (macro AP)", m.get("map"), None),
        ]
    else:
        base = f"majority class ({m.get('majority_class', '?')}, from {m.get('majority_source', '?')})"
        rows = [
            ("accuracy", m.get("accuracy"), m.get("majority_baseline")),
            ("top-5 accuracy", m.get("top5_accuracy"), None),
            ("macro F1", m.get("f1_macro"), None),
            ("macro ROC AUC (OvR)", m.get("roc_auc_ovr_macro"), None),
            ("macro average precision", m.get("average_precision_macro"), None),
            ("log loss", m.get("log_loss"), None),
        ]
    for name, v, b in rows:
        if v is not None:
            lines.append(f"| {name} | {_fmt(v)} | {_fmt(b) if b is not None else ''} |")
    lines.append("")
    lines.append(f"Baseline: {base}. Test samples: {m.get('n', '?')}.")
    return lines


def _rarest(pcs: list, n_rare: int) -> set[int]:
    """Indices of the ``n_rare`` classes with the fewest test samples, ties included (so there
    may be more), and never a class with the most: none when every class has the same count.
    A class without test samples is left out: it has no score to highlight (the notes name it)."""
    supports = {i: int(r.get("support", 0)) for i, r in enumerate(pcs)}
    supports = {i: s for i, s in supports.items() if s > 0}
    counts = sorted(supports.values())
    if len(counts) <= n_rare or counts[0] == counts[-1]:
        return set()
    cutoff = counts[n_rare - 1]
    if cutoff == counts[-1]:
        cutoff = max(s for s in counts if s < cutoff)
    return {i for i, s in supports.items() if s <= cutoff}


def _per_class(m: Mapping, n_rare: int) -> list[str]:
    pcs = list(m.get("per_class") or [])
    if not pcs:
        return []
    multilabel = m.get("task") == "multilabel"
    rare = _rarest(pcs, n_rare)
    extra = ("AP", "average_precision") if multilabel else ("AUC", "roc_auc")
    head = f"| class | precision | recall | F1 | support | {extra[0]} |"
    if multilabel:
        head += " threshold |"
    lines = [head, "|---|---:|---:|---:|---:|---:|" + ("---:|" if multilabel else "")]
    for i, r in enumerate(pcs):
        name = _fmt(r.get("name"))
        if i in rare:
            name = f"**{name}** (rare)"
        row = (f"| {name} | {_fmt(r.get('precision'), 3)} | {_fmt(r.get('recall'), 3)} | "
               f"{_fmt(r.get('f1'), 3)} | {r.get('support', '')} | {_fmt(r.get(extra[1]), 3)} |")
        if multilabel:
            row += f" {_fmt(r.get('threshold'), 3)} |"
        lines.append(row)
    if rare:
        lines += ["", "The rarest class (fewest test samples) is in bold." if len(rare) == 1
                  else f"The {len(rare)} rarest classes (fewest test samples) are in bold."]
    return lines


def _history_summary(history, monitor: str | None = None) -> list[str]:
    from keras_species.evaluation.plots import load_history

    rows = load_history(history)
    if not rows:
        return []
    monitor = monitor or "val_loss"
    phases: list[str] = []
    for r in rows:
        ph = str(r.get("phase", ""))
        if ph and (not phases or phases[-1] != ph):
            phases.append(ph)
    folds = list(dict.fromkeys(r["fold"] for r in rows if r.get("fold") not in (None, "")))
    if len(folds) > 1:  # separate models on their own val images: one best epoch per fold
        return _fold_history_summary(rows, folds, monitor)
    out = [f"Epochs run: {len(rows)}" + (f" in phases {', '.join(phases)}." if phases else ".")]
    found = best_epoch(rows, monitor)
    if found:
        i, best = found
        where = f" (phase {rows[i]['phase']})" if "phase" in rows[i] else ""
        out.append(f"{_best_text(monitor, best)} at epoch {i + 1} of the run{where}{_beside(rows[i], monitor)}.")
    return out


def _best_text(monitor: str, value: float) -> str:
    """``Lowest val loss 0.4821`` (the summary's wording since stop 20) or ``Best val_accuracy
    0.8571``: the quantity the run's checkpoint kept its best epoch by."""
    return f"Lowest val loss {value:.4f}" if monitor == "val_loss" else f"Best {monitor} {value:.4f}"


def _beside(row: dict, monitor: str) -> str:
    """The other validation figure of the epoch: its accuracy beside a loss, its loss beside
    anything else."""
    if monitor == "val_loss":
        acc = row.get("val_accuracy", row.get("val_acc"))
        return f", val accuracy {_fmt(acc)}" if isinstance(acc, float) else ""
    loss = row.get("val_loss")
    return f", val loss {loss:.4f}" if isinstance(loss, float) else ""


def _whole(value: object) -> str:
    """A history cell that holds a count (read back as a float): ``2.0`` -> ``"2"``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fold_history_summary(rows: list[dict], folds: list, monitor: str = "val_loss") -> list[str]:
    """The training summary of a cross-validated run: its epochs per fold, and each fold's own
    best epoch on ``monitor``, the one its model kept (the best over the run would compare
    scores on different val images). Before stop 31 it always named the epoch of lowest val
    loss, another one than the fold kept under ``--monitor val_accuracy``."""
    per_fold = {f: [r for r in rows if r.get("fold") == f] for f in folds}
    counts = ", ".join(str(len(v)) for v in per_fold.values())
    out = [f"Epochs run: {len(rows)} over {len(folds)} folds ({counts}). Each fold is a model of "
           "its own, scored on its own val images, so each has its own best epoch:"]
    for f, fold_rows in per_fold.items():
        found = best_epoch(fold_rows, monitor)
        if not found:
            continue
        i, best = found
        epoch = fold_rows[i].get("epoch", i + 1)
        text = _best_text(monitor, best)
        out.append(f"- fold {_whole(f)}: {text[0].lower() + text[1:]} at its epoch {_whole(epoch)}"
                   f"{_beside(fold_rows[i], monitor)}")
    return out


_PLOT_SECTIONS = (
    ("confusion_matrix", "Confusion matrix"),
    ("per_class_f1", "Per-class F1"),
    ("learning_curves", "Learning curves"),
    ("confident_mistakes", "Confident mistakes"),
    ("uncertain_predictions", "Uncertain predictions"),
    ("pr_curves", "Precision–recall curves"),
    ("roc_curves", "ROC curves"),
    ("threshold_curve", "Scores vs threshold"),  # the figure's title names its images
)


def render_report(
    run_dir: PathLike,
    *,
    title: str,
    config: Mapping | None = None,
    metrics: Mapping | None = None,
    history=None,
    plots: Mapping[str, PathLike] | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
    n_rare: int = 3,
    monitor: str | None = None,
) -> str:
    """Write ``run_dir/report.md`` and return its markdown.

    Sections: configuration, headline results against the baseline (majority class, or the
    majority label set for multi-label), other metric blocks (e.g. ``val``, ``tta``), the per-class
    table with the rarest classes in bold, training summary, figures (confusion matrix, per-class
    F1, learning curves, mistake grids, curves, then any other plot), ``extra_sections`` and notes.
    Image links are relative to ``run_dir``; plots whose file does not exist are listed in the
    notes instead of linked.

    Args:
        run_dir: the run folder.
        title: report title.
        config: resolved config (nested dicts are flattened to ``a.b`` keys; the
            :data:`SESSION_SETTINGS` ``resume`` and ``overwrite`` are left out; a small number
            such as a learning rate of ``1e-05`` keeps its significant digits).
        metrics: ``single_label_metrics``/``multilabel_metrics`` output, or
            ``{"test": that, "val": ..., ...}`` as in ``metrics.json``; a block's ``note``
            string goes in its heading (``### val (thresholds tuned on it: optimistic)``).
        history: ``history.csv`` path or rows (see ``plots.load_history``), or None.
        monitor: the quantity the run kept its best epoch (or each fold's) by, which the
            training summary names (default ``val_loss``).
        plots: figure name -> PNG path (known names: ``confusion_matrix``, ``per_class_f1``,
            ``learning_curves``, ``confident_mistakes``, ``uncertain_predictions``,
            ``pr_curves``, ``roc_curves``, ``threshold_curve``; others go under "Other figures").
        extra_sections: ``(heading, markdown)`` pairs appended before the notes (e.g. a
            comparison table).
        n_rare: how many of the rarest classes to highlight.

    Returns:
        The markdown text written to ``run_dir/report.md``.

    Example:
        >>> render_report(run_dir, title="quickstart", config=cfg, metrics={"test": m},
        ...               history=run_dir / "history.csv",
        ...               plots={"confusion_matrix": run_dir / "plots/confusion_matrix.png"})  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    main, others = _main_metrics(metrics or {})
    notes: list[str] = []
    md: list[str] = [f"# {title}", ""]

    if config:
        md += ["## Configuration", "", "| setting | value |", "|---|---|"]
        md += [f"| {markdown.cell(k)} | {_fmt_setting(v)} |" for k, v in _flatten(config)
               if k not in SESSION_SETTINGS]
        md.append("")

    if main:
        md += ["## Results (test)", "", *_headline(main), ""]
    for name, block in others.items():
        flat = [(k, v) for k, v in _flatten(block)
                if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
        if flat:
            note = block.get("note")
            heading = f"{name} ({note})" if isinstance(note, str) and note else name
            md += [f"### {heading}", "", "| metric | value |", "|---|---:|"]
            md += [f"| {markdown.cell(k)} | {_fmt(v)} |" for k, v in flat[:SHOWN_ROWS]]
            if len(flat) > SHOWN_ROWS:  # 27 tags or more: the thresholds' own scores were cut silently
                md += ["", f"({len(flat) - SHOWN_ROWS} more in metrics.json.)"]
            md.append("")

    per_class = _per_class(main, n_rare)
    if per_class:
        md += ["## Per-class results", "", *per_class, ""]

    summary = _history_summary(history, monitor) if history is not None else []
    if summary:
        md += ["## Training", "", *summary, ""]

    plots = dict(plots or {})
    order = [k for k, _ in _PLOT_SECTIONS if k in plots] + [
        k for k in plots if k not in dict(_PLOT_SECTIONS)
    ]
    figures: list[str] = []
    other_heading_done = False
    for key in order:
        p = Path(plots[key])
        if not p.is_absolute():
            p = run_dir / p if (run_dir / p).exists() else p.resolve()
        if not p.exists():
            notes.append(f"Figure `{key}` was not written ({plots[key]}).")
            continue
        rel = Path(os.path.relpath(p.resolve(), run_dir.resolve())).as_posix()
        heading = dict(_PLOT_SECTIONS).get(key)
        if heading is None:
            if not other_heading_done:
                figures += ["### Other figures", ""]
                other_heading_done = True
            figures += [f"![{key}]({rel})", ""]
        else:
            figures += [f"### {heading}", "", f"![{key}]({rel})", ""]
    if figures:
        md += ["## Figures", "", *figures]

    for heading, body in extra_sections:
        md += [f"## {heading}", "", body.rstrip(), ""]

    if main.get("auc_note") and main.get("absent_classes"):
        notes.append(main["auc_note"] + ".")
    elif main.get("map_note") and main.get("map_skipped"):
        notes.append(main["map_note"] + ".")
    elif main.get("absent_classes"):
        notes.append("Classes without test positives: " + ", ".join(main["absent_classes"]) + ".")
    if main.get("tie_note"):
        notes.append(main["tie_note"] + ".")
    if main.get("macro_classes") is not None and main["macro_classes"] < main.get("num_classes", 0):
        notes.append(
            f"Macro averages run over the {main['macro_classes']} of {main['num_classes']} classes "
            "that occur in the test labels or the predictions (a class with neither has no score)."
        )
    if main.get("task") == "multilabel" and main.get("thresholds"):
        thr = sorted(set(main["thresholds"]))
        notes.append("Decision threshold: " + (f"{thr[0]:.3f} for every tag." if len(thr) == 1
                                               else "per class (see the table)."))
    if main.get("majority_source") == "test":
        what = "label set" if main.get("task") == "multilabel" else "class"
        notes.append(f"The majority baseline uses the most frequent test {what} "
                     "(training labels were not given).")
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]

    text = "\n".join(md).rstrip() + "\n"
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text
