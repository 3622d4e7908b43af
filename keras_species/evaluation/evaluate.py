"""Evaluate a trained model on a split and write the run folder's results.

:func:`evaluate_and_report` is the last stage of every training recipe: it predicts the test
split (optionally with test-time augmentation), scores it with
:mod:`keras_species.evaluation.metrics` (single- or multi-label), and writes ``metrics.json``
(a ``test`` object, plus ``val`` and ``test_tta`` when available), ``predictions.csv``, the
figures in ``plots/`` and ``report.md``. :func:`predict_manifest` is the prediction step alone.

Example:
    >>> ev = evaluate_and_report(model, prepared.manifest, run, history=run.history_path,
    ...                          train_counts=prepared.train_counts, config=cfg)  # doctest: +SKIP
    >>> ev.test["accuracy"], ev.test["majority_baseline"]                        # doctest: +SKIP
    (0.93, 0.18)
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_species.data.manifest import Manifest, ManifestError
from keras_species.evaluation import metrics as metrics_mod
from keras_species.evaluation import plots as plots_mod
from keras_species.evaluation import report as report_mod
from keras_species.evaluation import thresholds as thresholds_mod
from keras_species.evaluation.tta import requested_transforms

THRESHOLD_MODES = ("global", "per_class")
"""Multi-label thresholds tuned on the validation split (R4): one for all tags, or one per tag."""

TUNED_ON_VAL_NOTE = "thresholds tuned on it: optimistic"
"""The ``note`` of a multi-label ``val`` block scored with thresholds tuned on those images
(``render_report`` puts it in the block's heading)."""

VAL_SUMMARY_KEYS = (
    "n", "accuracy", "top5_accuracy", "f1_macro", "log_loss", "roc_auc_ovr_macro",
    "exact_match", "f1_micro", "hamming_loss", "map",
)


@dataclass
class Predictions:
    """Model outputs on the readable images of a manifest.

    Attributes:
        manifest: the rows predicted (unreadable files left out), in order.
        probs: ``(N, C)`` probabilities.
    """

    manifest: Manifest
    probs: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        """Mask of rows that carry a label (the rows that are scored)."""
        return self.manifest.labelled_mask


@dataclass
class Evaluation:
    """What :func:`evaluate_and_report` returns.

    Attributes:
        metrics: everything written to ``metrics.json`` (``test``, maybe ``val``, ``test_tta``).
        predictions: the test predictions.
        plots: figure name → PNG path.
        report_path: ``report.md``.
        metrics_path: ``metrics.json``.
        predictions_path: ``predictions.csv``.
        thresholds: the multi-label thresholds used (None for single-label).
    """

    metrics: dict
    predictions: Predictions
    plots: dict[str, Path] = field(default_factory=dict)
    report_path: Path | None = None
    metrics_path: Path | None = None
    predictions_path: Path | None = None
    thresholds: np.ndarray | float | None = None

    @property
    def test(self) -> dict:
        """The ``test`` metrics."""
        return self.metrics["test"]

    def headline(self) -> str:
        """One line: the main test score against its baseline.

        Single-label: accuracy against always predicting the majority training class.
        Multi-label: micro-F1 and exact match against always predicting the most frequent
        training label set, scored the same way on the test split.

        Returns:
            e.g. ``"test accuracy 0.933 vs majority baseline 0.178 (45 test images)"``, or
            ``"test micro-F1 0.179, exact match 0.032 vs majority label-set baseline {fish}
            (from train): micro-F1 0.411, exact match 0.206 (63 test images)"``.
        """
        t = self.test
        if t.get("task") == "multilabel":
            return (
                f"test micro-F1 {t['f1_micro']:.3f}, exact match {t['exact_match']:.3f} vs "
                f"majority label-set baseline {report_mod.label_set_text(t['majority_label_set'])} "
                f"(from {t['majority_source']}): micro-F1 {t['majority_f1_micro']:.3f}, "
                f"exact match {t['majority_baseline']:.3f} ({t['n']} test images)"
            )
        return (
            f"test accuracy {t['accuracy']:.3f} vs majority baseline {t['majority_baseline']:.3f} "
            f"({t['n']} test images)"
        )


def _select_output(model, out: Any, output: str | int | None) -> np.ndarray:
    from keras_species.evaluation.outputs import select_output

    return np.asarray(select_output(model, out, output))


def _as_probabilities(model, outputs: np.ndarray, output: str | int | None) -> np.ndarray:
    """The classifier's outputs as probabilities.

    A keras-species model built with ``output="logits"`` says so in its ``ClassifierOutput``
    layer; its logits get the softmax / sigmoid that prediction and export apply
    (``LabelMap.probabilities``). Other outputs pass through (the metrics refuse logits).
    """
    from keras_species.models.labels import find_output_layer, label_map

    layer = find_output_layer(model)
    if layer is None or not layer.logits:
        return outputs
    if isinstance(output, int) and not isinstance(output, bool):  # an index: the layer's name there
        names = list(getattr(model, "output_names", None) or [])
        output = names[output] if -len(names) <= output < len(names) else None
        if len(names) <= 1:  # one output: index 0 (or -1) is the classifier's
            output = layer.name
    if output not in (None, layer.name):
        return outputs
    return label_map(model).probabilities(outputs)


def _image_size(model, image_size: int | Sequence[int] | None) -> tuple[int, int]:
    if image_size is not None:  # the one reading: "64" ran the model at 6×4
        from keras_species.data.pipeline import size_pair

        return size_pair(image_size)
    shape = model.inputs[0].shape
    if shape[1] is None or shape[2] is None:
        raise ValueError("the model takes any image size: pass image_size=")
    return int(shape[1]), int(shape[2])


def predict_manifest(
    model,
    manifest: Manifest,
    *,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 32,
    tta: str | Sequence[str] | None = None,
    output: str | int | None = None,
    resize: str = "stretch",
) -> Predictions:
    """Predict every readable image of ``manifest`` (in order) with ``model``.

    Args:
        model: a Keras model taking float 0–255 RGB images.
        manifest: the images (e.g. ``m.split("test")``).
        image_size: input size; the model's input shape when None.
        batch_size: images per batch.
        tta: None, or a test-time augmentation preset / transform names
            (``evaluation.tta``: ``"hflip"``, ``"flips"``, ``"flips_rot90"``, ``"five_crop"``).
        output: for multi-output models, the classifier output's name or index (``"label"``).
        resize: how images are resized (``pipeline.resize_image``).

    Returns:
        :class:`Predictions` (unreadable files are left out with a warning); a model whose
        output layer gives logits (``output="logits"``) has them turned into probabilities
        (softmax, or sigmoid for multi-label; with TTA, of the mean logits, as ``predict``).

    Example:
        >>> p = predict_manifest(model, m.split("test"))  # doctest: +SKIP
        >>> p.probs.shape                                  # doctest: +SKIP
        (45, 6)
    """
    from keras_species.data.pipeline import KIND_BAD, check_files, check_resize, make_dataset

    if len(manifest) == 0:
        raise ManifestError("no images to predict (empty split?)")
    check_resize(_image_size(model, image_size), resize)  # before every file is checked
    kinds, bad = check_files(manifest.paths)
    if bad:
        warnings.warn(
            f"{len(bad)} unreadable image(s) left out of the evaluation: "
            + ", ".join(list(bad)[:5]) + (" ..." if len(bad) > 5 else ""),
            stacklevel=2,
        )
        manifest = manifest.subset(kinds != KIND_BAD)
    size = _image_size(model, image_size)
    ds = make_dataset(
        manifest, size, batch_size, training=False, label_mode="none", cache=False,
        resize=resize, on_error="raise",
    )
    transforms = requested_transforms(tta)
    if transforms:
        from keras_species.evaluation.tta import predict_tta

        probs = predict_tta(model, ds, transforms=transforms, batch_size=batch_size, output=output)
    else:
        from keras_species.training.distribute import predict_all

        probs = _select_output(model, predict_all(model, ds, batch_size), output)  # several replicas too
    probs = np.asarray(_as_probabilities(model, np.asarray(probs), output), dtype=np.float32)
    if len(probs) != len(manifest):
        raise RuntimeError(
            f"{len(probs)} predictions for {len(manifest)} images: an image failed to decode "
            "during prediction; run `keras-species audit` on the data"
        )
    return Predictions(manifest, probs)


def in_class_order(manifest: Manifest, names: Sequence[str]) -> tuple[Manifest, np.ndarray]:
    """``manifest`` with its labels indexing ``names`` (a model's output columns), matched by name.

    A labelled set's class list need not be the model's: a folder holding some of its classes, or
    a CSV whose classes sort otherwise. Its labels index its own list, so scoring them against
    the model's columns scored one class's images against another's output (a helper saw 0.475
    where 0.975 was right, without a word). Classes of ``names`` that the manifest lacks have no
    images; a labelled class that ``names`` lacks cannot be scored and is refused.

    Args:
        manifest: the labelled images.
        names: the output columns' class names, in order.

    Returns:
        ``(manifest, where)``: the manifest with ``class_names == names`` (itself when they are
        already), and ``where[j]``, the column of its old class ``j``.

    Raises:
        ManifestError: images of classes ``names`` does not have.

    Example:
        >>> m = Manifest(["a.png", "b.png"], np.array([0, 1]), ["eel", "cod"])
        >>> moved, where = in_class_order(m, ["cod", "eel", "ray"])
        >>> moved.labels.tolist(), where.tolist()
        ([1, 0], [1, 0])
    """
    names = [str(n) for n in names]
    if list(manifest.class_names) == names:
        return manifest, np.arange(len(names))
    column = {n: i for i, n in enumerate(names)}
    where = np.array([column.get(c, -1) for c in manifest.class_names], dtype=np.int64)
    counts = manifest.class_counts()
    alien = [c for c, w, k in zip(manifest.class_names, where, counts) if w < 0 and k > 0]
    if alien:
        shown = ", ".join(repr(c) for c in alien[:10]) + (" ..." if len(alien) > 10 else "")
        raise ManifestError(
            f"the labelled images hold {len(alien)} class(es) the model has no output for: {shown} "
            f"(its classes: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}); score them "
            "with a model trained on those classes, or leave their images out "
            "(manifest.select_classes)")
    moved = manifest.subset(np.arange(len(manifest)))
    if manifest.multilabel:
        absent = [n for n in names if n not in manifest.class_names]
        if absent:  # a label-set CSV lacks a tag no image carries; a 0/1 column CSV, one not annotated
            shown = ", ".join(repr(n) for n in absent[:10]) + (" ..." if len(absent) > 10 else "")
            warnings.warn(
                f"the labelled images have no column for {len(absent)} of the model's tags ({shown}): "
                "they are scored as absent from every image, so each prediction of them counts as a "
                "false positive; if those tags were not annotated, these scores understate the model",
                stacklevel=3)
        labels = np.zeros((len(manifest), len(names)), dtype=manifest.labels.dtype)
        kept = where >= 0
        labels[:, where[kept]] = manifest.labels[:, kept]
    else:
        lookup = np.append(where, -1)  # UNLABELLED (-1) indexes the appended -1
        labels = lookup[manifest.labels]
    moved.labels, moved.class_names = labels, names
    return moved, where


def _model_classes(model) -> list[str] | None:
    """The class names the model's output layer carries, or ``None``."""
    from keras_species.models.labels import find_output_layer

    layer = find_output_layer(model)
    return None if layer is None else [str(n) for n in layer.class_names]


def score(
    pred: Predictions,
    class_names: Sequence[str] | None = None,
    *,
    train_counts: Sequence[int] | np.ndarray | None = None,
    thresholds: float | np.ndarray = 0.5,
    train_labels: np.ndarray | None = None,
) -> dict:
    """Metrics of labelled predictions (``single_label_metrics`` / ``multilabel_metrics``).

    Args:
        pred: predictions of :func:`predict_manifest`.
        class_names: output names (default: the manifest's classes); the manifest's labels are
            matched to them by name (:func:`in_class_order`).
        train_counts: training class counts for the majority baseline (single-label), in the
            order of ``class_names``.
        thresholds: multi-label decision threshold(s).
        train_labels: ``(M, C)`` training multi-hot labels for the majority label-set baseline
            (multi-label).

    Returns:
        The metrics dict.

    Example:
        >>> score(predict_manifest(model, test))["accuracy"]  # doctest: +SKIP
        0.91
    """
    m = pred.manifest
    names = list(class_names or m.class_names)
    m = in_class_order(m, names)[0]  # labels that index another class list scored the wrong columns
    mask = pred.labelled
    if not mask.any():
        raise ManifestError("no labelled images to score in this split")
    if m.multilabel:
        return metrics_mod.multilabel_metrics(
            m.labels[mask], pred.probs[mask], names, thresholds=thresholds, train_labels=train_labels
        )
    return metrics_mod.single_label_metrics(
        m.labels[mask], pred.probs[mask], names, train_counts=train_counts
    )


def _tune(val: Predictions | None, mode: float | str | np.ndarray | Sequence[float]):
    """Thresholds to apply, and a note for the report."""
    if not isinstance(mode, str):
        return np.asarray(mode, dtype=float) if np.ndim(mode) else float(mode), None
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"thresholds={mode!r}: a float, per-class values, or one of {THRESHOLD_MODES}")
    if val is None or not val.labelled.any():
        return 0.5, f"No validation split to tune '{mode}' thresholds on: 0.5 used."
    y, p = val.manifest.labels, val.probs
    if mode == "global":
        t, s = thresholds_mod.tune_global_threshold(y, p)
        return t, f"Global threshold {t:.3f} tuned on the validation split (val micro-F1 {s:.3f})."
    t, s = thresholds_mod.tune_per_class_thresholds(y, p)
    return t, f"Per-class thresholds tuned on the validation split (val micro-F1 {s:.3f})."


def _plots(
    plots_dir: Path,
    pred: Predictions,
    m: dict,
    names: list[str],
    history,
    val: Predictions | None,
    thresholds,
    tuned: bool = False,
) -> tuple[dict[str, Path], list[str]]:
    """Draw every figure; one that fails is noted, never fatal. ``tuned``: the multi-label
    thresholds were tuned on ``val`` (the threshold figure says so only then)."""
    out: dict[str, Path] = {}
    notes: list[str] = []
    mask = pred.labelled
    y = pred.manifest.labels[mask]
    probs = pred.probs[mask]
    paths = [p for p, keep in zip(pred.manifest.paths, mask) if keep]
    jobs: list[tuple[str, Any]] = []
    rows = plots_mod.load_history(history) if history is not None else []
    if rows:
        jobs.append(("learning_curves", lambda p: plots_mod.plot_learning_curves(rows, p)))
    f1 = [r["f1"] for r in m["per_class"]]
    support = [r["support"] for r in m["per_class"]]
    jobs.append(("per_class_f1", lambda p: plots_mod.plot_per_class_f1(names, f1, p, support=support)))
    if m.get("task") == "multilabel":
        jobs.append(("pr_curves", lambda p: plots_mod.plot_pr_curves(y, probs, names, p)))
        on_val = val is not None and val.labelled.any()
        ref = val if on_val else pred
        chosen = float(thresholds) if np.ndim(thresholds) == 0 else None
        jobs.append(("threshold_curve", lambda p: plots_mod.plot_threshold_curve(
            ref.manifest.labels, ref.probs, p, chosen=chosen,
            split=("val images, where the thresholds are tuned" if on_val and tuned
                   else "val images" if on_val else "test images"))))
    else:
        jobs.append(("confusion_matrix", lambda p: plots_mod.plot_confusion_matrix(m["confusion_matrix"], names, p)))
        jobs.append(("confident_mistakes", lambda p: plots_mod.plot_confident_mistakes(paths, y, probs, names, p)))
        jobs.append(("uncertain_predictions", lambda p: plots_mod.plot_uncertain_predictions(paths, y, probs, names, p)))
        jobs.append(("pr_curves", lambda p: plots_mod.plot_pr_curves(y, probs, names, p)))
    for name, draw in jobs:
        try:
            out[name] = Path(draw(plots_dir / f"{name}.png"))
        except (ValueError, IndexError, OSError) as err:
            notes.append(f"Figure `{name}` could not be drawn: {err}")
    return out, notes


def evaluate_and_report(
    model,
    manifest: Manifest,
    run_folder: str | os.PathLike,
    *,
    split: str = "test",
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 32,
    class_names: Sequence[str] | None = None,
    train_counts: Sequence[int] | np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    history=None,
    config: Mapping | Any | None = None,
    title: str | None = None,
    tta: str | Sequence[str] | None = None,
    thresholds: float | str | Sequence[float] = 0.5,
    output: str | int | None = None,
    extra_metrics: Mapping | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
    plots: bool = True,
    thresholds_tuned_on_val: bool = False,
    monitor: str | None = None,
) -> Evaluation:
    """Predict the test split, score it, and write metrics, predictions, plots and report.

    Files written in ``run_folder``: ``metrics.json`` (``{"test": ..., "val": summary (its
    ``note`` says when multi-label thresholds were tuned on those images, so its scores flatter),
    "test_tta": ... , **extra_metrics}``), ``predictions.csv`` (one row per test image),
    ``plots/*.png`` (learning curves with phase boundaries, confusion matrix, per-class F1,
    confident mistakes, uncertain predictions, precision–recall curves; multi-label: per-class
    F1, PR curves, scores vs threshold) and ``report.md``.

    Args:
        model: the trained model (float 0–255 RGB in, probabilities out).
        manifest: a split manifest (its ``split`` rows are evaluated and its ``val`` rows are
            summarised / used for threshold tuning), or a manifest without splits that *is*
            the test set.
        run_folder: the run folder (a path or ``training.runs.RunFolder``).
        split: the split to evaluate.
        image_size: input size; the model's input shape when None.
        batch_size: prediction batch size.
        class_names: output names (default: the model's own label map, else the manifest's
            classes). The manifest's labels are matched to them by name
            (:func:`in_class_order`): a labelled set may hold some of the model's classes, in
            another order; images of a class the model lacks are refused.
        train_counts: training class counts (in the manifest's class order), so the majority
            baseline predicts the most frequent *training* class (default: the manifest's
            ``train`` split when present).
        train_labels: multi-label: ``(M, C)`` training labels, so the baseline predicts the most
            frequent *training* label set (default: the manifest's ``train`` split when present;
            without either, the most frequent test label set).
        history: ``history.csv`` path or rows, for the learning curves and the report.
        config: the run's config (dataclass or dict) for the report's configuration table.
        title: report title (default: the run folder's recipe and name).
        tta: also score test-time augmentation (``evaluation.tta`` presets), as ``test_tta``.
        thresholds: multi-label: a float, per-class values, or ``"global"`` / ``"per_class"``
            tuned on the validation split (R4).
        output: for multi-output models, the classifier output (``"label"``).
        extra_metrics: more top-level blocks for ``metrics.json`` (e.g. ``{"timing": ...}``).
        extra_sections: ``(heading, markdown)`` sections appended to the report.
        plots: draw the figures.
        monitor: the quantity the run kept its best epoch by (``val_accuracy``...), which the
            report's training summary names; default ``val_loss``.
        thresholds_tuned_on_val: multi-label: the ``thresholds`` given as values were tuned on
            this manifest's ``val`` split (as ``multilabel_resnet`` tunes them), so the ``val``
            block carries the same "optimistic" note as with ``"global"``/``"per_class"``.

    Returns:
        An :class:`Evaluation`.

    Raises:
        ManifestError: the split is missing or holds no labelled image.

    Example:
        >>> ev = evaluate_and_report(model, m, "runs/quickstart/demo", history=
        ...                          "runs/quickstart/demo/history.csv")  # doctest: +SKIP
        >>> print(ev.headline())                                        # doctest: +SKIP
    """
    from keras_species.config import config_to_dict

    run_dir = Path(os.fspath(run_folder))
    own = _model_classes(model)
    if own is not None and class_names is not None and [str(n) for n in class_names] != own:
        raise ValueError(
            f"class_names={list(class_names)[:10]} differ from the class names the model carries "
            f"({own[:10]}): leave class_names out, and the images' labels are matched to the "
            "model's outputs by name")
    names = own if own is not None else list(class_names or manifest.class_names)
    manifest, where = in_class_order(manifest, names)  # before its train counts are read
    if train_counts is not None and not manifest.multilabel and len(train_counts) == len(where):
        counts = np.zeros(len(names), dtype=np.int64)
        counts[where[where >= 0]] = np.asarray(train_counts)[where >= 0]
        train_counts = counts
    if train_labels is not None and manifest.multilabel and np.ndim(train_labels) == 2 \
            and np.shape(train_labels)[1] == len(where):
        given = np.asarray(train_labels)
        train_labels = np.zeros((len(given), len(names)), dtype=given.dtype)
        train_labels[:, where[where >= 0]] = given[:, where >= 0]
    run_dir.mkdir(parents=True, exist_ok=True)
    has_splits = manifest.splits is not None
    if has_splits:
        if split not in set(manifest.splits):
            raise ManifestError(
                f"the manifest has no {split!r} split (it has {sorted(set(manifest.splits))})"
            )
        test_m = manifest.split(split)
        if "train" in set(manifest.splits):
            train = manifest.split("train")
            if train_counts is None:
                train_counts = train.class_counts()
            if train_labels is None and manifest.multilabel and len(train):
                train_labels = train.labels
    else:
        test_m = manifest
    if isinstance(history, (str, os.PathLike)) and not Path(history).is_file():
        history = None  # no epoch was run (e.g. evaluating a loaded model)
    history_note = None
    try:  # read once, for the learning curves and the report; a damaged file costs only those
        history = plots_mod.load_history(history) if history is not None else None
    except (OSError, ValueError, csv.Error) as err:
        history, history_note = None, (f"The training history cannot be read ({err}): the learning "
                                       "curves and the training summary are left out.")

    pred = predict_manifest(model, test_m, image_size=image_size, batch_size=batch_size, output=output)
    val_pred = None
    if has_splits and split != "val" and "val" in set(manifest.splits):
        val_pred = predict_manifest(
            model, manifest.split("val"), image_size=image_size, batch_size=batch_size, output=output
        )
    notes: list[str] = [history_note] if history_note else []
    thr: float | np.ndarray | None = None
    if manifest.multilabel:
        thr, note = _tune(val_pred, thresholds)
        if note:
            notes.append(note)
    scoring = {"train_counts": train_counts, "train_labels": train_labels,
               "thresholds": 0.5 if thr is None else thr}
    test = score(pred, names, **scoring)
    results: dict[str, Any] = {"test": test}
    if val_pred is not None and val_pred.labelled.any():
        val = score(val_pred, names, **scoring)
        results["val"] = {k: val[k] for k in VAL_SUMMARY_KEYS if k in val}
        # tuned on these images by _tune, or by the caller (who says so)
        if manifest.multilabel and (isinstance(thresholds, str) or thresholds_tuned_on_val):
            results["val"]["note"] = TUNED_ON_VAL_NOTE
    tta_m = None
    transforms = requested_transforms(tta)
    if transforms:  # "none" in any case is plain inference: no second pass
        with warnings.catch_warnings():  # the plain pass named the unreadable images already
            warnings.filterwarnings("ignore", message=r".*unreadable image\(s\) left out of the evaluation")
            tta_pred = predict_manifest(
                model, test_m, image_size=image_size, batch_size=batch_size, tta=tta, output=output
            )
        tta_m = score(tta_pred, names, **scoring)
        keep = ("n", "accuracy", "top5_accuracy", "f1_macro", "log_loss", "exact_match", "f1_micro", "map",
                "hamming_loss")
        results["test_tta"] = {"transforms": tta if isinstance(tta, str) else list(tta)}
        results["test_tta"].update({k: tta_m[k] for k in keep if k in tta_m})
    for key, block in (extra_metrics or {}).items():
        if key in results:
            raise ValueError(f"extra_metrics key {key!r} would replace the {key!r} metrics")
        results[key] = block

    predictions_path = report_mod.write_predictions_csv(
        run_dir / "predictions.csv", pred.manifest.paths,
        pred.manifest.labels, pred.probs, names, multilabel=manifest.multilabel,
        thresholds=thr,
    )
    figures: dict[str, Path] = {}
    if plots:
        tuned = manifest.multilabel and (isinstance(thresholds, str) or thresholds_tuned_on_val)
        figures, plot_notes = _plots(run_dir / "plots", pred, test, names, history, val_pred, thr, tuned)
        notes += plot_notes
    sections = list(extra_sections)
    if tta_m is not None:  # the plain and the TTA scores side by side, in place of a table of TTA's
        from keras_species.evaluation.tables import (
            MULTILABEL_SIDE_BY_SIDE_KEYS,
            SIDE_BY_SIDE_KEYS,
            metrics_side_by_side,
        )

        keys = MULTILABEL_SIDE_BY_SIDE_KEYS if manifest.multilabel else SIDE_BY_SIDE_KEYS
        sections.insert(0, (
            f"Plain inference vs test-time augmentation ({', '.join(transforms)})",
            metrics_side_by_side({"plain": test, "TTA": tta_m}, keys=keys),
        ))
    if notes:
        sections.append(("Evaluation notes", "\n".join(f"- {n}" for n in notes)))
    if title is None:
        title = f"{run_dir.parent.name} — {run_dir.name}"
    cfg = config_to_dict(config) if config is not None else None
    report_mod.render_report(  # test_tta: in the side-by-side section, not a table of its own
        run_dir, title=title, config=cfg, metrics={k: v for k, v in results.items() if k != "test_tta"},
        history=history, plots=figures, extra_sections=sections, monitor=monitor,
    )
    # last: `keras-species runs` reads a metrics.json as an evaluated run (written first, a
    # Ctrl-C during the figures left a run listed `done` without its report)
    metrics_path = report_mod.write_metrics_json(run_dir / "metrics.json", results)
    return Evaluation(
        metrics=results,
        predictions=pred,
        plots=figures,
        report_path=run_dir / "report.md",
        metrics_path=Path(metrics_path),
        predictions_path=Path(predictions_path),
        thresholds=thr,
    )


__all__ = [
    "THRESHOLD_MODES",
    "TUNED_ON_VAL_NOTE",
    "Predictions",
    "Evaluation",
    "predict_manifest",
    "score",
    "evaluate_and_report",
    "in_class_order",
]
