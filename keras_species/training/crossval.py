"""k-fold cross-validation of a Keras model, and the test score of the mean of the fold models.

R2 trains each scratch CNN variant with 5-fold cross-validation on the train+val images, reports
the validation accuracy and loss of every fold, and scores the test set with the *mean* of the five
fold models' predicted probabilities. :func:`cross_validate` does exactly that:

1. folds from :func:`keras_species.data.splits.kfold` (stratified; group-aware by default when the
   manifest has groups, so frames of one fish never sit in training and validation of one fold);
2. per fold: a fresh model from ``build_model_fn()``, trained by
   :func:`keras_species.training.plan.train` on the other folds (run folder ``<run_dir>/fold<i>``,
   with its own ``history.csv`` and ``best.keras``), or by a ``train_fn`` of the caller;
3. per fold: probabilities of the validation fold and the test set (plain and, with ``tta``, the
   test-time-augmented mean of :func:`keras_species.evaluation.tta.predict_tta`);
4. the ensemble: the mean of the fold models' test probabilities, scored with
   :func:`keras_species.evaluation.metrics.single_label_metrics`.

The per-fold table and the probabilities are written to ``<run_dir>/folds.csv`` and
``<run_dir>/crossval_probs.npz``. Scores are computed from the predicted probabilities with
``sklearn.metrics`` (accuracy, log loss), so they are the same numbers however the model was
compiled.

Example:
    >>> from keras_species.data import sources, splits
    >>> from keras_species.models.scratch import build_scratch
    >>> from keras_species.training.plan import Phase
    >>> m = splits.stratified_split(sources.load("demo"), (0.85, 0.15), names=("trainval", "test"))
    >>> cv = cross_validate(lambda: build_scratch("r2_cnn", 6, 64), m.split("trainval"),
    ...                     m.split("test"), k=5, image_size=64, run_dir="runs/cv",
    ...                     phases=[Phase("train", 10, monitor="val_loss")])  # doctest: +SKIP
    >>> print(cv.fold_table_markdown())                                      # doctest: +SKIP
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn import metrics as skm

from keras_species import csvfile
from keras_species.atomic import atomic_path
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError
from keras_species.evaluation.metrics import rescaled_log_loss

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from keras_species.training.plan import Phase

__all__ = [
    "FoldResult",
    "CVResult",
    "cross_validate",
    "fold_ensemble",
    "readable",
    "probs_scores",
]

FOLDS_CSV = "folds.csv"
PROBS_NPZ = "crossval_probs.npz"

TrainFn = Callable[["keras.Model", "tf.data.Dataset", "tf.data.Dataset", Path], "keras.Model"]
"""``train_fn(model, train_ds, val_ds, fold_dir) -> trained model`` (replaces the plan)."""


def probs_scores(y_true: np.ndarray, probs: np.ndarray, num_classes: int | None = None) -> dict:
    """Accuracy and log loss (cross-entropy) of single-label probabilities.

    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities (rows are renormalised for the log loss).
        num_classes: ``C`` (default ``probs.shape[1]``), so that classes absent from ``y_true``
            still count as columns.

    Returns:
        ``{"accuracy": float, "loss": float}``.

    Example:
        >>> probs_scores(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]))["accuracy"]
        1.0
    """
    probs = np.asarray(probs, np.float64)
    y_true = np.asarray(y_true, np.int64)
    c = num_classes or probs.shape[1]
    return {
        "accuracy": float(skm.accuracy_score(y_true, probs.argmax(axis=1))),
        "loss": rescaled_log_loss(y_true, probs, c),
    }


def readable(manifest: Manifest) -> Manifest:
    """The rows of ``manifest`` whose image the pipeline can read (the others are warned about).

    ``pipeline.make_dataset`` leaves unreadable files out; dropping them here first keeps the
    predictions row-aligned with the manifest's labels.

    Args:
        manifest: the images.

    Returns:
        The manifest itself when every file is readable, else the readable subset.

    Example:
        >>> from keras_species.data import sources
        >>> len(readable(sources.load("demo")))
        300
    """
    from keras_species.data.splits import drop_unreadable

    kept, bad = drop_unreadable(manifest)
    if bad:
        lines = "\n".join(f"  {p}: {r}" for p, r in bad.items())
        warnings.warn(f"leaving out {len(bad)} unreadable image(s):\n{lines}", stacklevel=2)
    return kept


@dataclass
class FoldResult:
    """One fold of a cross-validation.

    Attributes:
        fold: fold index (0-based); its images were the validation set.
        n_train: training images of this fold.
        n_val: validation images of this fold.
        val_accuracy: accuracy of the fold model on its validation fold.
        val_loss: cross-entropy on its validation fold.
        test_accuracy: accuracy of the fold model alone on the test set.
        test_loss: its cross-entropy on the test set.
        test_accuracy_tta: test accuracy with test-time augmentation (None without ``tta``).
        test_loss_tta: test cross-entropy with TTA (None without ``tta``).
        epochs: epochs trained (rows of the fold's ``history.csv``; 0 for a ``train_fn``).
        run_dir: the fold's run folder.
        best_path: its ``best.keras`` when the plan wrote one.
    """

    fold: int
    n_train: int
    n_val: int
    val_accuracy: float
    val_loss: float
    test_accuracy: float
    test_loss: float
    test_accuracy_tta: float | None = None
    test_loss_tta: float | None = None
    epochs: int = 0
    run_dir: Path | None = None
    best_path: Path | None = None

    def row(self) -> dict:
        """The fold as one table row (plain values)."""
        return {
            "fold": self.fold,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "epochs": self.epochs,
            "val_accuracy": self.val_accuracy,
            "val_loss": self.val_loss,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "test_accuracy_tta": self.test_accuracy_tta,
            "test_loss_tta": self.test_loss_tta,
        }


@dataclass
class CVResult:
    """What :func:`cross_validate` returns.

    Attributes:
        folds: one :class:`FoldResult` per fold.
        class_names: the classes, in output order.
        y_test: ``(N,)`` test labels (readable test images, manifest order).
        test_paths: their paths.
        fold_test_probs: ``(k, N, C)`` each fold model's test probabilities.
        fold_test_probs_tta: ``(k, N, C)`` the same with TTA, or None.
        oof_probs: ``(M, C)`` out-of-fold probabilities of the train+val images (each predicted by
            the model that did not train on it), aligned with ``trainval_paths``.
        y_trainval: ``(M,)`` labels of those images.
        trainval_paths: their paths.
        ensemble: ``single_label_metrics`` of the mean of the fold models' test probabilities.
        ensemble_tta: the same for the mean of the TTA probabilities, or None.
        tta: the TTA transforms used, or None.
        run_dir: the cross-validation's folder.
        models: the fold models when ``keep_models=True`` (else empty).
    """

    folds: list[FoldResult]
    class_names: list[str]
    y_test: np.ndarray
    test_paths: list[str]
    fold_test_probs: np.ndarray
    oof_probs: np.ndarray
    y_trainval: np.ndarray
    trainval_paths: list[str]
    ensemble: dict
    fold_test_probs_tta: np.ndarray | None = None
    ensemble_tta: dict | None = None
    tta: tuple[str, ...] | None = None
    run_dir: Path | None = None
    models: list = field(default_factory=list)

    @property
    def k(self) -> int:
        """Number of folds."""
        return len(self.folds)

    @property
    def ensemble_probs(self) -> np.ndarray:
        """``(N, C)`` mean of the fold models' test probabilities (R2's ensemble of folds)."""
        return self.fold_test_probs.mean(axis=0)

    @property
    def ensemble_probs_tta(self) -> np.ndarray | None:
        """``(N, C)`` mean of the fold models' TTA test probabilities, or None."""
        return None if self.fold_test_probs_tta is None else self.fold_test_probs_tta.mean(axis=0)

    def summary(self) -> dict:
        """Mean and standard deviation over the folds, and the ensemble's test scores.

        Returns:
            ``{"k", "val_accuracy_mean", "val_accuracy_std", "val_loss_mean", "val_loss_std",
            "test_accuracy_mean", "test_loss_mean", "ensemble_test_accuracy",
            "ensemble_test_loss", "ensemble_top5_accuracy", "ensemble_macro_auc"}`` plus the
            ``*_tta`` ensemble scores when TTA ran.
        """
        out: dict[str, Any] = {"k": self.k}
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss"):
            values = np.array([getattr(f, key) for f in self.folds], np.float64)
            out[f"{key}_mean"] = float(values.mean())
            out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out["ensemble_test_accuracy"] = self.ensemble["accuracy"]
        out["ensemble_test_loss"] = self.ensemble["log_loss"]
        out["ensemble_top5_accuracy"] = self.ensemble.get("top5_accuracy")
        out["ensemble_macro_auc"] = self.ensemble.get("roc_auc_ovr_macro")
        if self.ensemble_tta is not None:
            out["ensemble_test_accuracy_tta"] = self.ensemble_tta["accuracy"]
            out["ensemble_test_loss_tta"] = self.ensemble_tta["log_loss"]
            out["ensemble_top5_accuracy_tta"] = self.ensemble_tta.get("top5_accuracy")
        return out

    def fold_rows(self) -> list[dict]:
        """One row per fold, then a ``mean`` row and an ``ensemble`` row (mean of the folds'
        test probabilities; its validation cells are empty)."""
        rows = [f.row() for f in self.folds]
        mean = {"fold": "mean"}
        for key in ("n_train", "n_val", "epochs"):
            mean[key] = None
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss",
                    "test_accuracy_tta", "test_loss_tta"):
            values = [r[key] for r in rows if r[key] is not None]
            mean[key] = float(np.mean(values)) if values else None
        ens = {key: None for key in mean}
        ens.update(
            fold="ensemble",
            test_accuracy=self.ensemble["accuracy"],
            test_loss=self.ensemble["log_loss"],
        )
        if self.ensemble_tta is not None:
            ens.update(test_accuracy_tta=self.ensemble_tta["accuracy"],
                       test_loss_tta=self.ensemble_tta["log_loss"])
        return rows + [mean, ens]

    def fold_table_markdown(self) -> str:
        """The per-fold table (R2): val accuracy/loss and test accuracy/loss of each fold model,
        their mean, and the ensemble's test score; TTA columns when TTA ran."""
        cols = [("fold", "fold"), ("n_train", "train"), ("n_val", "val"), ("epochs", "epochs"),
                ("val_accuracy", "val acc"), ("val_loss", "val loss"),
                ("test_accuracy", "test acc"), ("test_loss", "test loss")]
        if self.tta is not None:
            cols += [("test_accuracy_tta", "test acc (TTA)"), ("test_loss_tta", "test loss (TTA)")]
        lines = ["| " + " | ".join(h for _, h in cols) + " |",
                 "|" + "|".join("---" if k == "fold" else "---:" for k, _ in cols) + "|"]
        for r in self.fold_rows():
            cells = []
            for key, _ in cols:
                v = r.get(key)
                if v is None:
                    cells.append("")
                elif isinstance(v, float):
                    cells.append(f"{v:.4f}")
                else:
                    cells.append(str(v))
            if r["fold"] in ("mean", "ensemble"):
                cells[0] = f"**{cells[0]}**"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def history_rows(self) -> list[dict]:
        """The folds' ``history.csv`` rows one after the other, with a ``fold`` column and the
        phase named ``fold<i>`` (``fold<i>/<phase>`` for plans of several phases), so the
        learning curves of all folds read left to right with a boundary at each fold."""
        from keras_species.training.callbacks import read_history

        rows: list[dict] = []
        for f in self.folds:
            if f.run_dir is None:
                continue
            fold_rows = read_history(Path(f.run_dir) / "history.csv")
            phases = {r.get("phase") for r in fold_rows}
            for r in fold_rows:
                phase = f"fold{f.fold}" if len(phases) <= 1 else f"fold{f.fold}/{r.get('phase')}"
                rows.append({**r, "phase": phase, "fold": f.fold})
        return rows

    def load_models(self) -> list:
        """The fold models: kept ones, else each fold's ``best.keras`` reloaded.

        Raises:
            FileNotFoundError: a fold has no ``best.keras`` (trained by a ``train_fn``).
        """
        if self.models:
            return list(self.models)
        import keras

        models = []
        for f in self.folds:
            if f.best_path is None or not Path(f.best_path).is_file():
                raise FileNotFoundError(
                    f"fold {f.fold} has no best.keras; cross-validate with keep_models=True"
                )
            models.append(keras.saving.load_model(f.best_path, compile=False))
        return models

    def save(self, run_dir: str | os.PathLike) -> None:
        """Write ``folds.csv`` (the fold rows) and ``crossval_probs.npz`` (labels, paths,
        fold/ensemble/out-of-fold probabilities) into ``run_dir``."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        rows = self.fold_rows()
        with atomic_path(run_dir / FOLDS_CSV) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csvfile.dict_writer(f, list(rows[0]))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: "" if v is None else v for k, v in r.items()})
        arrays = {
            "class_names": np.asarray(self.class_names, dtype=str),
            "y_test": self.y_test,
            "test_paths": np.asarray(self.test_paths, dtype=str),
            "fold_test_probs": self.fold_test_probs,
            "ensemble_probs": self.ensemble_probs,
            "y_trainval": self.y_trainval,
            "trainval_paths": np.asarray(self.trainval_paths, dtype=str),
            "oof_probs": self.oof_probs,
        }
        if self.fold_test_probs_tta is not None:
            arrays["fold_test_probs_tta"] = self.fold_test_probs_tta
            arrays["ensemble_probs_tta"] = self.ensemble_probs_tta
        np.savez_compressed(run_dir / PROBS_NPZ, **arrays)


def fold_ensemble(models: Sequence[keras.Model], name: str = "fold_ensemble") -> keras.Model:
    """One model whose output is the mean of the fold models' outputs (R2's ensemble of folds).

    The fold models are nested (renamed ``fold0``, ``fold1``...), so the ensemble saves to one
    ``.keras`` file, reloads with ``safe_mode=True`` and predicts like any classifier.

    Args:
        models: models with the same input shape and output classes.
        name: the ensemble's name.

    Returns:
        A functional model: input ``image`` → each fold model → ``Average`` named ``label``.

    Example:
        >>> ens = fold_ensemble(cv.load_models())   # doctest: +SKIP
        >>> ens.predict(x).shape                     # doctest: +SKIP
        (45, 9)
    """
    import keras

    if not models:
        raise ValueError("fold_ensemble needs at least one model")
    shape = tuple(models[0].input_shape[1:])
    for m in models[1:]:
        if tuple(m.input_shape[1:]) != shape or m.output_shape != models[0].output_shape:
            raise ValueError("fold models differ in input or output shape; ensemble like models only")
    inputs = keras.Input(shape, name="image")
    outputs = []
    for i, m in enumerate(models):
        m.name = f"fold{i}"  # renamed in place: nested models need unique names
        outputs.append(m(inputs))
    if len(outputs) == 1:
        out = keras.layers.Identity(name="label", dtype="float32")(outputs[0])
    else:
        out = keras.layers.Average(name="label", dtype="float32")(outputs)
    return keras.Model(inputs, out, name=name)


def _check_single_label(m: Manifest, what: str) -> None:
    if m.multilabel:
        raise ManifestError(f"cross_validate scores single-label data; the {what} is multi-label")
    if len(m) == 0:
        raise ManifestError(f"the {what} holds no images")
    if (m.labels == UNLABELLED).any():
        raise ManifestError(
            f"the {what} has {int((m.labels == UNLABELLED).sum())} unlabelled images (-1); "
            "cross-validate labelled images only"
        )


def _refuse_test_in_trainval(trainval: Manifest, test: Manifest) -> None:
    """Refuse test images that are also train+val images: the folds would train and stop early on
    the images that score them (the whole split manifest passed as train+val, with its test split
    as the test set, trained on the test images without a word). Groups on both sides are the
    split's choice, which the split warns of (``--split stratified`` on grouped data)."""
    real = {os.path.realpath(p) for p in trainval.paths}
    shared = [p for p in test.paths if os.path.realpath(p) in real]
    if shared:
        raise ManifestError(
            f"{len(shared)} of the {len(test)} test images are also train+val images ("
            + ", ".join(shared[:3]) + (" ..." if len(shared) > 3 else "") + "): pass the train and "
            "val images as manifest_trainval, e.g. m.subset([s in ('train', 'val') for s in m.splits])")


def _predict(model: keras.Model, ds: tf.data.Dataset, n: int, what: str,
             batch_size: int | None = None) -> np.ndarray:
    from keras_species.training.distribute import predict_all

    probs = np.asarray(predict_all(model, ds, batch_size), np.float32)  # several replicas too
    if len(probs) != n:
        raise RuntimeError(
            f"{what}: {len(probs)} predictions for {n} images; an image failed to decode during "
            "prediction (run `keras-species audit` and clean the data)"
        )
    return probs


def cross_validate(
    build_model_fn: Callable[[], keras.Model],
    manifest_trainval: Manifest,
    test_manifest: Manifest,
    *,
    k: int = 5,
    seed: int = 0,
    group_aware: bool | None = None,
    phases: Sequence[Phase] | None = None,
    train_fn: TrainFn | None = None,
    image_size: int | Sequence[int] = 224,
    batch_size: int = 32,
    augment: Any = None,
    sample_weights: str | dict | None = None,
    cache: bool | str = True,
    dataset_kwargs: dict | None = None,
    tta: str | Sequence[str] | None = None,
    run_dir: str | os.PathLike = "runs/crossval",
    keep_models: bool = False,
    resume: bool = False,
    verbose: int = 0,
    progress: Callable[[str], Any] | None = None,
) -> CVResult:
    """Train one model per fold of ``manifest_trainval`` and score each and their mean on the test set.

    Args:
        build_model_fn: returns a fresh, uncompiled model (image 0–255 → softmax probabilities);
            called once per fold after seeding with ``(seed + fold) % 2**32``.
        manifest_trainval: the labelled images to cross-validate (its own splits are ignored).
        test_manifest: the held-out test images (never trained on).
        k: number of folds (R2: 5).
        seed: seed of the folds, the weights and the shuffles.
        group_aware: keep each group (``manifest.groups``) inside one fold; default ``None``:
            when the manifest has groups, as :func:`keras_species.data.splits.kfold` (``False``
            before, which put frames of one fish on both sides of a fold without a word).
        phases: the training plan of each fold (default one phase of 10 epochs, Adam 1e-3,
            best epoch on ``val_loss`` kept).
        train_fn: ``train_fn(model, train_ds, val_ds, fold_dir) -> model`` instead of the plan.
        image_size: input size of the pipeline (the model's input size).
        batch_size: batch size.
        augment: training augmentation for ``pipeline.make_dataset`` (a preset name or layer).
        sample_weights: ``"balanced"``, a dict of class weights, or None.
        cache: ``make_dataset`` cache (True: memory).
        dataset_kwargs: other ``make_dataset`` arguments (``resize``, ``label_smoothing``...).
        tta: test-time augmentation transforms (``evaluation.tta``; e.g. ``"flips"``); None: off.
        run_dir: folder of the cross-validation; fold ``i`` trains in ``run_dir/fold<i>``.
        keep_models: keep the fold models in the result (else they are freed after each fold;
            their ``best.keras`` stays on disk).
        resume: resume each fold's interrupted training (``plan.train(resume=True)``).
        verbose: Keras verbosity.
        progress: called with one line before each fold trains, e.g. ``print`` (a recipe
            prints it whatever ``verbose``): ``fold 1/5 (folder fold0): train 240, val 60 images``.

    Returns:
        A :class:`CVResult`; ``folds.csv`` and ``crossval_probs.npz`` are written to ``run_dir``.

    Raises:
        ManifestError: multi-label or unlabelled data, too few images or groups for ``k`` folds.

    Example:
        >>> cv = cross_validate(lambda: build_scratch("r2_cnn", 3, 32), trainval, test, k=2,
        ...                     image_size=32, phases=[Phase("train", 1)])  # doctest: +SKIP
        >>> cv.summary()["ensemble_test_accuracy"]                          # doctest: +SKIP
        0.83
    """
    import keras

    from keras_species.data import splits
    from keras_species.data.pipeline import check_seed, make_dataset
    from keras_species.evaluation.metrics import single_label_metrics
    from keras_species.evaluation.tta import predict_tta, requested_transforms
    from keras_species.training.plan import Phase, train

    if phases is not None and train_fn is not None:
        raise ValueError("pass either phases (the plan) or train_fn, not both")
    _check_single_label(manifest_trainval, "train+val manifest")
    _check_single_label(test_manifest, "test manifest")
    if manifest_trainval.class_names != test_manifest.class_names:
        raise ManifestError(
            "train+val and test manifests have different class lists: "
            f"{manifest_trainval.class_names} vs {test_manifest.class_names}; split one manifest"
        )
    _refuse_test_in_trainval(manifest_trainval, test_manifest)
    transforms = requested_transforms(tta)
    if phases is None and train_fn is None:
        phases = [Phase("train", epochs=10, learning_rate=1e-3, monitor="val_loss")]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = list(manifest_trainval.class_names)
    c = len(names)
    trainval = readable(manifest_trainval)
    test = readable(test_manifest)
    ds_kw = dict(dataset_kwargs or {})
    test_ds = make_dataset(test, image_size, batch_size, training=False, cache=cache, **ds_kw)
    y_test = np.asarray(test.labels, np.int64)
    folds = splits.kfold(trainval, k, seed=seed, group_aware=group_aware)

    results: list[FoldResult] = []
    fold_probs: list[np.ndarray] = []
    fold_probs_tta: list[np.ndarray] = []
    oof = np.zeros((len(trainval), c), np.float32)
    models: list = []
    for i, fm in enumerate(folds):
        fold_dir = run_dir / f"fold{i}"
        val_mask = np.array([s == "val" for s in fm.splits], dtype=bool)
        train_m, val_m = fm.subset(~val_mask), fm.subset(val_mask)
        fold_seed = (check_seed(seed) + i) % 2**32  # a Python int in range (2**32 - 1 + i was not)
        keras.utils.set_random_seed(fold_seed)
        train_ds = make_dataset(
            train_m, image_size, batch_size, training=True, augment=augment, cache=cache,
            sample_weights=sample_weights, seed=fold_seed, **ds_kw,
        )
        val_ds = make_dataset(val_m, image_size, batch_size, training=False, cache=cache, **ds_kw)
        if progress is not None:
            progress(f"fold {i + 1}/{len(folds)} (folder {fold_dir.name}): train {len(train_m)}, "
                     f"val {len(val_m)} images")
        model = build_model_fn()
        best_path = None
        epochs = 0
        if train_fn is not None:
            fold_dir.mkdir(parents=True, exist_ok=True)
            model = train_fn(model, train_ds, val_ds, fold_dir)
        else:
            trained = train(model, phases, train_ds, val_ds, fold_dir, resume=resume,
                            verbose=verbose)
            model, best_path, epochs = trained.model, trained.best_path, len(trained.history)
        val_probs = _predict(model, val_ds, len(val_m), f"fold {i} validation", batch_size)
        test_probs = _predict(model, test_ds, len(test), f"fold {i} test", batch_size)
        oof[val_mask] = val_probs
        fold_probs.append(test_probs)
        vs = probs_scores(val_m.labels, val_probs, c)
        ts = probs_scores(y_test, test_probs, c)
        fr = FoldResult(
            fold=i, n_train=len(train_m), n_val=len(val_m),
            val_accuracy=vs["accuracy"], val_loss=vs["loss"],
            test_accuracy=ts["accuracy"], test_loss=ts["loss"],
            epochs=epochs, run_dir=fold_dir, best_path=best_path,
        )
        if transforms is not None:
            tta_probs = predict_tta(model, test_ds, transforms=transforms, batch_size=batch_size)
            fold_probs_tta.append(tta_probs)
            tts = probs_scores(y_test, tta_probs, c)
            fr.test_accuracy_tta, fr.test_loss_tta = tts["accuracy"], tts["loss"]
        results.append(fr)
        if keep_models:
            models.append(model)
        else:
            del model
            gc.collect()

    stacked = np.stack(fold_probs)
    stacked_tta = np.stack(fold_probs_tta) if fold_probs_tta else None
    train_counts = trainval.class_counts()
    result = CVResult(
        folds=results,
        class_names=names,
        y_test=y_test,
        test_paths=list(test.paths),
        fold_test_probs=stacked,
        fold_test_probs_tta=stacked_tta,
        oof_probs=oof,
        y_trainval=np.asarray(trainval.labels, np.int64),
        trainval_paths=list(trainval.paths),
        ensemble=single_label_metrics(y_test, stacked.mean(axis=0), names,
                                      train_counts=train_counts),
        ensemble_tta=None if stacked_tta is None else single_label_metrics(
            y_test, stacked_tta.mean(axis=0), names, train_counts=train_counts),
        tta=transforms,
        run_dir=run_dir,
        models=models,
    )
    result.save(run_dir)
    return result
