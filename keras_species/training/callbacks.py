"""Callbacks Keras lacks: learning-rate logging, atomic checkpoints, a phase-aware history.

Everything else a plan uses comes from ``keras.callbacks`` (EarlyStopping, TensorBoard,
TerminateOnNaN, BackupAndRestore). Keras 3.15 adds ``learning_rate`` to the epoch logs only from
``LearningRateScheduler``, ``ReduceLROnPlateau`` and ``TensorBoard``; ``LearningRateLogger`` fills
the same key in every other case (and leaves it alone when one of those set it).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from keras_species.atomic import atomic_path, remove_stale_temporaries
from keras_species.training.history import (  # noqa: F401  (history.csv's home before history.py)
    FIRST_COLUMNS,
    LR_KEY,
    read_history,
    write_history,
)


def base_optimizer(optimizer):
    """The optimizer that holds the hyper-parameters (unwraps ``LossScaleOptimizer``).

    Args:
        optimizer: a Keras optimizer, possibly wrapped for mixed-precision loss scaling.

    Returns:
        The inner optimizer, or ``optimizer`` itself.

    Example:
        >>> type(base_optimizer(keras.optimizers.Adam())).__name__
        'Adam'
    """
    return getattr(optimizer, "inner_optimizer", optimizer)


def current_learning_rate(optimizer) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at the current step).

    Args:
        optimizer: a Keras optimizer (wrapped or not).

    Returns:
        The learning rate as a Python float.

    Example:
        >>> current_learning_rate(keras.optimizers.SGD(0.1))
        0.1...
    """
    opt = base_optimizer(optimizer)
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


def learning_rate_schedule(optimizer) -> keras.optimizers.schedules.LearningRateSchedule | None:
    """The learning-rate schedule an optimizer (wrapped or not) was built on, or ``None`` for a
    rate. Keras keeps it in a private attribute: its ``learning_rate`` property gives the
    schedule's value at the current step only.

    Args:
        optimizer: a Keras optimizer.

    Returns:
        The schedule, or ``None``.

    Example:
        >>> learning_rate_schedule(keras.optimizers.SGD(0.1)) is None
        True
    """
    schedule = getattr(base_optimizer(optimizer), "_learning_rate", None)
    return schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) else None


def last_learning_rate(optimizer) -> float:
    """The learning rate the optimizer's last step used: a schedule evaluated at the step
    before the current one (``optimizer.iterations`` counts the steps taken, and the next step
    uses the rate at that count).

    Args:
        optimizer: a Keras optimizer (wrapped or not).

    Returns:
        The learning rate as a Python float (the current one before any step).

    Example:
        >>> last_learning_rate(keras.optimizers.SGD(0.1))
        0.1...
    """
    opt = base_optimizer(optimizer)
    schedule = learning_rate_schedule(opt)
    if schedule is not None:
        step = max(int(keras.ops.convert_to_numpy(opt.iterations)) - 1, 0)
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return current_learning_rate(optimizer)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate of the epoch's last step to the logs as ``learning_rate``
    (:func:`last_learning_rate`; before stop 30 a schedule's rate of the next step, e.g. the
    warm-up's peak for an epoch that ran below it).

    Keras reports it only through LearningRateScheduler / ReduceLROnPlateau / TensorBoard; a value
    already put there by one of them is kept. Place it before the callbacks that read the logs.

    Example:
        >>> model.fit(x, y, callbacks=[LearningRateLogger()])  # doctest: +SKIP
    """

    def __init__(self, key: str = LR_KEY):
        super().__init__()
        self.key = key

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.key not in logs:
            logs[self.key] = last_learning_rate(self.model.optimizer)


def atomic_save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` to ``path`` (a ``.keras`` file) so that ``path`` is never half-written.

    The model is written to a temporary file in the same folder, synced, then moved over ``path``
    with ``os.replace`` (atomic on POSIX and Windows when source and target share a file system).

    Args:
        model: the model to save.
        path: the target ``.keras`` file.

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> atomic_save_model(model, "runs/x/final.keras")  # doctest: +SKIP
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp, overwrite=True)
    return path


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``keras.callbacks.ModelCheckpoint`` whose file is never left half-written.

    ModelCheckpoint writes straight into its target, so a run killed while saving leaves a
    truncated ``best.keras``; this subclass points the parent at a temporary file in the same
    folder and moves it over the target with ``os.replace`` once it is complete. Stale temporary
    files of a killed run are removed when training begins.

    Args:
        filepath: the target file (``.keras`` or ``.weights.h5``; no ``{epoch}`` name templates).
        **kwargs: as ``keras.callbacks.ModelCheckpoint`` (monitor, mode, save_best_only,
            save_weights_only, initial_value_threshold, verbose).

    Example:
        >>> ckpt = AtomicModelCheckpoint("run/best.keras", monitor="val_accuracy",
        ...                              save_best_only=True)  # doctest: +SKIP
    """

    def __init__(self, filepath: str | os.PathLike, **kwargs):
        filepath = os.fspath(filepath)
        super().__init__(filepath, **kwargs)
        self.target = filepath

    def on_train_begin(self, logs=None):
        remove_stale_temporaries(self.target)
        super().on_train_begin(logs)

    def _atomic(self, save, *args) -> None:
        with atomic_path(self.target) as tmp:  # replaces the target only if the parent saved
            self.filepath = str(tmp)
            try:
                save(*args)
            finally:
                self.filepath = self.target

    def on_epoch_end(self, epoch, logs=None):
        self._atomic(super().on_epoch_end, epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._atomic(super().on_train_batch_end, batch, logs)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` whose files are never left half-written.

    Keras writes ``latest.weights.h5`` in place: a run killed while it was written left a file
    cut short (96 bytes), which every later resume failed to open (h5py's ``truncated file``,
    naming no file). Here the weights and then the epoch's metadata are each written beside
    their target and moved over it (``os.replace``), so a kill leaves each file whole, the
    previous or the new. (A kill in the instant between the two moves leaves the new weights
    with the previous epoch's number: that epoch is trained once more, as plain Keras does.) A
    backup that cannot be read (one a version before this left) is named with its fix, not with
    h5py's words.

    Args:
        backup_dir: the phase's backup folder.
        **kwargs: as ``keras.callbacks.BackupAndRestore``.

    Example:
        >>> AtomicBackupAndRestore("runs/x/backup/phase0")  # doctest: +SKIP
    """

    def on_train_begin(self, logs=None):
        for name in ("latest.weights.h5", "training_metadata.json"):
            remove_stale_temporaries(os.path.join(self.backup_dir, name))
        try:
            super().on_train_begin(logs)
        except OSError as err:
            weights = os.path.join(self.backup_dir, "latest.weights.h5")
            raise OSError(
                f"{weights}, the backup of the interrupted epoch, cannot be read ({err}; cut short "
                f"by a kill while it was written?): delete the folder {self.backup_dir} and resume "
                "again (the phase then starts over from its first epoch)"
            ) from None

    def _save_model(self):
        weights = getattr(self, "_weights_path", None)
        metadata = getattr(self, "_training_metadata_path", None)
        if weights is None or metadata is None or getattr(self, "double_checkpoint", False):
            return super()._save_model()  # another Keras's layout: its own way
        os.makedirs(self.backup_dir, exist_ok=True)
        with atomic_path(weights) as tmp:
            self.model.save_weights(filepath=str(tmp), overwrite=True)
        with atomic_path(metadata) as tmp:
            tmp.write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))


def _scalar(value):
    try:
        number = float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return value
    if not math.isfinite(number):
        return str(number)
    # Metrics are float32: keep the shortest decimal that round-trips it (0.01, not 0.00999..).
    return float(str(np.float32(number)))


def _per_output_losses(model: keras.Model | None) -> set[str]:
    """The log keys of a multi-output model's per-output losses (``label_loss``,
    ``val_label_loss``...), which ``history.csv`` leaves out: Keras 3.15 averages the batches'
    means with equal weight (a small last batch counts as a full one) and, on a dataset of
    unknown length (every ``make_dataset`` dataset: ``ignore_errors``), adds an empty step, so
    with n batches they read n/(n+1) of the loss (stop 31: 0.55 for 1.12). Metrics give each
    term exactly (the autoencoder's ``reconstruction_mse`` and ``label_crossentropy``)."""
    names = list(getattr(model, "output_names", None) or [])
    if len(names) < 2:
        return set()
    return {f"{prefix}{name}_loss" for name in names for prefix in ("", "val_")}


class HistoryWriter(keras.callbacks.Callback):
    """One ``history.csv`` across phases and restarts: a ``phase`` column, global epochs from 1.

    Written by hand because ``keras.callbacks.CSVLogger`` fixes its columns at the first epoch
    of the first phase and, on resume, cannot drop the rows of an epoch that was logged but not
    backed up before the kill (that epoch runs again and would appear twice). Here the rows are
    kept in memory, the rows at or after the epoch a ``fit`` actually starts from are dropped,
    and the whole (small) file is rewritten atomically after each epoch.

    Args:
        path: the CSV file (read back first, so a resumed run appends to its history).
        phase: the phase name written in the ``phase`` column.
        rows: rows to start from instead of reading ``path``.
        keep: log keys written even when they are per-output losses a multi-output model's
            history leaves out (the phase's monitor: a resume rebuilds its best value from the
            file).

    Example:
        >>> model.fit(ds, epochs=3, callbacks=[HistoryWriter("run/history.csv", "head")])  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, phase: str, rows: list[dict] | None = None,
                 keep: Sequence[str] = ()):
        super().__init__()
        self.path = Path(path)
        self.phase = phase
        self.keep = set(keep)  # logged even if a per-output loss: the checkpoint's monitor
        self.rows: list[dict] = list(rows) if rows is not None else read_history(self.path)
        self._started = False

    def on_train_begin(self, logs=None):
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            # ``epoch`` is where this fit really starts (after BackupAndRestore's restore):
            # rows of later epochs belong to an interrupted attempt and are replaced.
            self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch]
            self._started = True

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "phase": self.phase}
        dropped = _per_output_losses(self.model) - self.keep  # a resume rebuilds the best from it
        row.update({k: _scalar(v) for k, v in (logs or {}).items() if k not in dropped})
        self.rows = [r for r in self.rows if int(r["epoch"]) != epoch + 1] + [row]
        write_history(self.path, self.rows)


class LostImagesWarning(keras.callbacks.Callback):
    """Warn when an epoch's training or validation pass left out images that failed to decode.

    The up-front check of :func:`keras_species.data.pipeline.make_dataset` names every file it
    leaves out; a file deleted or rewritten after it fails in the middle of a pass, where
    ``tf.data``'s ``ignore_errors`` skips it without a word at TensorFlow's default log level.
    This callback resets the datasets' image counts
    (:class:`keras_species.data.pipeline.LostImageCount`) before each pass and, after it, warns
    with the number left out and the files unreadable now. A shortfall is said once: a cached
    dataset lacks the same images in every later epoch. Put it first in the callback list:
    ``RecalibrateBatchNorm`` reads training batches before validation, which would count too.
    Datasets that :func:`~keras_species.data.pipeline.make_dataset` did not build (or built
    with ``on_error="raise"`` or ``drop_remainder=True``) are not counted; neither are epochs of
    a ``fit`` given ``steps_per_epoch``, whose passes may stop early.

    Args:
        train_ds: the training dataset, as ``make_dataset`` returned it.
        val_ds: the validation dataset, or ``None``.

    Example:
        >>> model.fit(train_ds, validation_data=val_ds, epochs=3,           # doctest: +SKIP
        ...           callbacks=[LostImagesWarning(train_ds, val_ds)])
    """

    def __init__(self, train_ds, val_ds=None):
        from keras_species.data.pipeline import lost_image_count

        super().__init__()
        self.train = lost_image_count(train_ds)
        self.val = None if val_ds is None else lost_image_count(val_ds)
        self._epoch: int | None = None

    def _whole_passes(self) -> bool:
        return (self.params or {}).get("steps") is None  # no steps_per_epoch: each pass runs out

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.train is not None:
            self.train.reset()

    def _check_training(self) -> None:
        if self._epoch is not None and self.train is not None and self._whole_passes():
            self.train.report(f"training epoch {self._epoch + 1}")
        self._epoch = None  # once an epoch: before validation, or at its end without one

    def on_test_begin(self, logs=None):
        self._check_training()
        if self.val is not None:
            self.val.reset()

    def on_test_end(self, logs=None):
        if self.val is not None:
            self.val.report("validation")

    def on_epoch_end(self, epoch, logs=None):
        self._check_training()
