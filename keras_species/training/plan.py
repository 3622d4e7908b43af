"""Training plans: a list of phases, each with its own trainable layers, optimiser and schedule.

``train(model, [Phase(...), Phase(...)], train_ds, val_ds, run_dir)`` runs the phases one after
the other on one model: it sets the trainable layers (``models.freezing.set_trainable``),
recompiles with a new optimiser, and fits with global epoch numbers (phase 2 continues at the
epoch where phase 1 stopped). All phases share one ``history.csv`` (``epoch, phase,
learning_rate``, metrics), one TensorBoard log and one ``best.keras`` (the best epoch on the
phase's monitor over the whole run, written atomically). Early stopping restores the best
weights of a phase before the next begins. ``resume=True`` continues a killed run from its last
finished epoch: ``keras.callbacks.BackupAndRestore`` per phase for the epoch inside a phase,
``state.json`` and ``checkpoints/phase<i>.weights.h5`` for the phases already done.

R3's two-phase transfer::

    phases = [
        Phase("head", epochs=10, trainable="frozen", learning_rate=1e-3,
              early_stopping_patience=10),
        Phase("fine_tune", epochs=20, trainable="all", learning_rate=1e-4,
              early_stopping_patience=10),
    ]
    result = train(model, phases, train_ds, val_ds, "runs/convnext_transfer/demo")

R4's one-cycle SGD: ``Phase("one_cycle", epochs=20, trainable="all", optimizer="sgd",
momentum=0.9, weight_decay=1e-4, learning_rate=0.01, schedule="onecycle")`` with ``task="multi"``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import math
import numbers
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_species.atomic import atomic_path, remove_stale_temporaries
from keras_species.models.batchnorm import RecalibrateBatchNorm, untrained_batchnorm
from keras_species.training.callbacks import (
    AtomicBackupAndRestore,
    AtomicModelCheckpoint,
    HistoryWriter,
    LearningRateLogger,
    LostImagesWarning,
    learning_rate_schedule,
    read_history,
)
from keras_species.training.distribute import even_batches, model_replicas
from keras_species.training.quantities import (  # logged_quantities: plan's name for it too
    Task,
    best_epoch,  # noqa: F401  (plan's name for it too)
    logged_quantities,  # noqa: F401
    metric_names,
    monitor_mode,
)
from keras_species.training.runs import RunFolder
from keras_species.training.schedules import CyclicLR, OneCycle
from keras_species.training.verbosity import verbose_problem

TRAINABLE_MODES = ("frozen", "head", "all", "last_n")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "onecycle", "cyclic", "cosine")
DEFAULT_MONITOR = {"single": "val_accuracy", "multi": "val_micro_f1", "custom": "val_loss"}


@dataclass
class Phase:
    """One phase of a training plan.

    Args:
        name: shown in the ``phase`` column of the history.
        epochs: maximum epochs of this phase.
        trainable: which layers train: ``"frozen"`` / ``"head"`` (backbone frozen, head trains),
            ``"all"``, ``"last_n"`` (the last ``n`` units of the backbone), a callable
            ``f(model)`` for anything else, or None to keep the previous phase's setting.
        n: for ``"last_n"``, how many units.
        unit: what ``n`` counts: ``"layers"``, ``"blocks"`` or ``"conv"``.
        train_batchnorm: let BatchNormalization layers of the backbone train (default: they
            stay frozen, in inference mode, when fine-tuning a pretrained backbone).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, or a Keras optimizer.
        learning_rate: a float (the peak for ``onecycle`` / ``cyclic``), a
            ``keras.optimizers.schedules.LearningRateSchedule`` or a callable (as Keras takes).
        schedule: ``"constant"``, ``"onecycle"`` (``schedules.OneCycle``; params: pct_start,
            div_factor, final_div_factor, base_momentum, max_momentum, cycle_momentum, anneal),
            ``"cyclic"`` (``schedules.CyclicLR``; params: base_lr, step_size, mode, gamma) or
            ``"cosine"`` (``keras.optimizers.schedules.CosineDecay``; params: alpha,
            warmup_epochs). ``schedule_params["steps_per_epoch"]`` is needed only when the
            training dataset's cardinality is unknown.
        schedule_params: parameters of the schedule (see above).
        momentum: SGD / RMSprop momentum (Adam: ``beta_1``); None → 0.9 for SGD, the Keras
            default otherwise.
        weight_decay: decoupled weight decay (Keras applies it for every optimiser); None →
            none (AdamW: Keras' default 0.004).
        clipnorm: clip each gradient to this norm.
        label_smoothing: for the default cross-entropy losses, in ``[0, 1)``.
        loss: a loss (or a dict per output); None → by task: categorical cross-entropy
            (single; integer labels are one-hot encoded on the fly), binary cross-entropy
            (multi). Required for ``task="custom"``.
        loss_weights: per-output loss weights (multi-output models).
        metrics: metrics (or a dict per output); None → by task: accuracy, top-5 accuracy
            (more than 5 classes) and AUC (single); micro-F1 (``micro_f1``), binary accuracy
            and AUC (multi).
        weighted_metrics: metrics weighted by the sample weights (or a dict per output), as
            ``compile(weighted_metrics=...)``; e.g. accuracy on the labelled rows only when the
            unlabelled ones carry a weight of 0.
        from_logits: whether the model outputs logits; None → detected from the output layer's
            activation.
        callbacks: extra callbacks for this phase.
        monitor: the quantity for the checkpoint and early stopping (``"val_accuracy"``,
            ``"val_loss"``, ``"val_micro_f1"``, ``"val_auc"`` ...); None → by task
            (``val_accuracy`` / ``val_micro_f1`` / ``val_loss``).
        early_stopping_patience: epochs without improvement before stopping (R3: 10), 0 or
            more; None → no early stopping.
        restore_best: end the phase with the weights of its best epoch on ``monitor``.

    Example:
        >>> Phase("fine_tune", epochs=20, trainable="last_n", n=2, unit="blocks",
        ...       learning_rate=1e-4, early_stopping_patience=10).optimizer
        'adam'
    """

    name: str = "train"
    epochs: int = 10
    trainable: str | Callable[[keras.Model], Any] | None = None
    n: int = 0
    unit: str = "layers"
    train_batchnorm: bool = False
    optimizer: str | keras.optimizers.Optimizer = "adam"
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3
    schedule: str = "constant"
    schedule_params: dict = field(default_factory=dict)
    momentum: float | None = None
    weight_decay: float | None = None
    clipnorm: float | None = None
    label_smoothing: float = 0.0
    loss: Any = None
    loss_weights: Any = None
    metrics: Any = None
    weighted_metrics: Any = None
    from_logits: bool | None = None
    callbacks: Sequence[keras.callbacks.Callback] = ()
    monitor: str | None = None
    early_stopping_patience: int | None = None
    restore_best: bool = True

    def __post_init__(self):
        _plain_numbers(self)
        if isinstance(self.trainable, str) and self.trainable not in TRAINABLE_MODES:
            raise ValueError(
                f"Phase {self.name!r}: trainable={self.trainable!r}; use one of "
                f"{TRAINABLE_MODES}, a callable, or None"
            )
        if isinstance(self.optimizer, str) and self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"Phase {self.name!r}: optimizer={self.optimizer!r}; use one of {OPTIMIZERS} "
                "or a keras.optimizers.Optimizer"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Phase {self.name!r}: schedule={self.schedule!r}; use one of {SCHEDULES}")
        if self.schedule != "constant" and not _real(self.learning_rate):
            raise ValueError(
                f"Phase {self.name!r}: schedule={self.schedule!r} needs a float learning_rate "
                f"(its peak), got {self.learning_rate!r}"
            )
        _check_phase_numbers(self)
        if not 0.0 <= self.label_smoothing < 1.0:  # 1 makes every target uniform: nothing to learn
            raise ValueError(
                f"Phase {self.name!r}: label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 0:
            raise ValueError(
                f"Phase {self.name!r}: early_stopping_patience must be >= 0 epochs (None: no early "
                f"stopping), got {self.early_stopping_patience}"
            )
        _check_schedule_params(self)


    def describe(self) -> dict:
        """A JSON-ready summary of the phase (objects shown by class name), for ``config.json``.

        Returns:
            A dict of the phase's fields.
        """
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (str, int, float, bool)) or value is None:
                out[f.name] = value
            elif isinstance(value, dict):
                out[f.name] = {k: v if isinstance(v, (str, int, float, bool)) else repr(v) for k, v in value.items()}
            elif isinstance(value, (list, tuple)):
                out[f.name] = [type(v).__name__ for v in value]
            else:
                out[f.name] = getattr(value, "__name__", type(value).__name__)
        return out


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        history: one dict per epoch over all phases (``epoch``, ``phase``, ``learning_rate``,
            the metrics), as in ``history.csv``.
        best_path: ``run_dir/best.keras`` when a checkpoint was written, else None.
        model: the trained model (weights of the last phase's best epoch when ``restore_best``).
        run_dir: the run folder.
    """

    history: list[dict]
    best_path: Path | None
    model: keras.Model
    run_dir: Path


def _output_layers(model: keras.Model) -> list:
    names = list(getattr(model, "output_names", None) or [])
    layers = []
    for name in names:
        try:
            layers.append(model.get_layer(name))
        except ValueError:
            continue
    return layers or [model.layers[-1]]


def outputs_logits(model: keras.Model) -> bool:
    """Whether the model's (first) output layer has no activation, i.e. outputs logits.

    Args:
        model: a Keras model.

    Returns:
        True when the output layer's activation is linear (or there is none on a Dense/Conv).

    Example:
        >>> outputs_logits(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        True
    """
    layer = _output_layers(model)[0]
    if hasattr(layer, "logits"):  # keras_species ClassifierOutput: it says so itself
        return bool(layer.logits)
    act = getattr(layer, "activation", None)
    if act is None:
        return False
    return getattr(act, "__name__", str(act)) == "linear"


def _num_classes(model: keras.Model) -> int | None:
    outputs = model.outputs
    if len(outputs) != 1:
        return None
    return int(outputs[0].shape[-1])


def default_loss(task: Task, *, label_smoothing: float = 0.0, from_logits: bool = False):
    """The loss a phase uses when it names none.

    Args:
        task: ``"single"`` (categorical cross-entropy on one-hot/soft labels) or ``"multi"``
            (binary cross-entropy).
        label_smoothing: label smoothing.
        from_logits: whether predictions are logits.

    Returns:
        A Keras loss.

    Example:
        >>> default_loss("multi").name
        'binary_crossentropy'
    """
    if task == "single":
        return keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing
        )
    if task == "multi":
        return keras.losses.BinaryCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing
        )
    raise ValueError(f"task={task!r} has no default loss; give Phase(loss=...)")


def default_metrics(task: Task, num_classes: int | None, *, from_logits: bool = False) -> list:
    """The metrics a phase uses when it names none.

    Their names and order are :func:`~keras_species.training.quantities.metric_names`'.
    Single-label: ``accuracy``, ``top5_accuracy`` (when more than 5 classes), ``auc``.
    Multi-label: ``micro_f1`` (``keras.metrics.F1Score(average="micro", threshold=0.5)``),
    ``binary_accuracy``, ``auc`` (per-label AUC averaged).

    Args:
        task: ``"single"`` or ``"multi"`` (``"custom"`` gives ``[]``).
        num_classes: number of outputs.
        from_logits: whether predictions are logits (micro-F1 needs probabilities and is then
            left out with a warning).

    Returns:
        A list of Keras metrics.

    Example:
        >>> [m.name for m in default_metrics("single", 10)]
        ['accuracy', 'top5_accuracy', 'auc']
    """
    if task == "multi" and from_logits:
        warnings.warn("multi-label model outputs logits: micro_f1 needs probabilities and is left out", stacklevel=2)
    build: dict[str, Callable[[], Any]] = {  # the names (and their order) are metric_names'
        "accuracy": lambda: keras.metrics.CategoricalAccuracy(name="accuracy"),
        "top5_accuracy": lambda: keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        "micro_f1": lambda: keras.metrics.F1Score(average="micro", threshold=0.5, name="micro_f1"),
        "binary_accuracy": lambda: keras.metrics.BinaryAccuracy(
            name="binary_accuracy", threshold=0.0 if from_logits else 0.5),
        "auc": lambda: keras.metrics.AUC(name="auc", from_logits=from_logits) if task == "single"
        else keras.metrics.AUC(name="auc", multi_label=True, num_labels=num_classes, from_logits=from_logits),
    }
    return [build[name]() for name in metric_names(task, num_classes, from_logits=from_logits)]


def _check_monitor(model: keras.Model, phase: Phase, task: Task, num_classes: int | None, *,
                   validation: bool, extra_callbacks: Sequence = ()) -> None:
    """Refuse a phase's ``monitor`` that the phase will not log, where its quantities are known (the
    default loss and metrics of one output, and no callback that may add to the logs, as a macro-F1
    callback does); otherwise ``_RunCheckpoint`` names it after an epoch."""
    if phase.monitor is None or task == "custom" or num_classes is None or phase.loss is not None \
            or phase.metrics is not None or phase.weighted_metrics is not None \
            or phase.callbacks or extra_callbacks:
        return
    from_logits = outputs_logits(model) if phase.from_logits is None else phase.from_logits
    names = ["loss", *metric_names(task, num_classes, from_logits=from_logits)]
    logged = [f"val_{n}" for n in names] + names if validation else names
    monitor = phase.monitor if validation else phase.monitor.removeprefix("val_")  # as train() reads it
    if monitor not in logged:
        raise ValueError(f"Phase {phase.name!r}: monitor {phase.monitor!r} (--monitor) is not a quantity "
                         f"this run logs; choose one of {', '.join(logged)}")


def _steps_per_epoch(ds: tf.data.Dataset, phase: Phase) -> int:
    if "steps_per_epoch" in phase.schedule_params:
        return int(phase.schedule_params["steps_per_epoch"])
    n = int(ds.cardinality())
    if n < 1:
        raise ValueError(
            f"Phase {phase.name!r}: schedule {phase.schedule!r} needs the number of batches per "
            "epoch, but the training dataset's cardinality is unknown; pass "
            "schedule_params={'steps_per_epoch': N} or "
            "ds.apply(tf.data.experimental.assert_cardinality(N))"
        )
    return n


def _fresh_optimizer(phase: Phase, lr: Any, template: Any = None) -> keras.optimizers.Optimizer:
    """The optimizer a phase trains with, from the phase's optimizer object.

    Keras' own optimizer classes are rebuilt from the object's config (a new optimizer of its
    class and settings, no state, at step 0): the object itself was used before stop 30, and one
    object given to two phases carried its step count into the second, whose one-cycle or cosine
    schedule then ran at its end (4e-08, 0) from the first batch. A ``LossScaleOptimizer`` is
    rebuilt around a rebuilt inner optimizer. Another class (a subclass of one's own, whose
    settings a config may not hold) is used as given, with a warning when it has already taken
    steps. The phase's learning rate (or schedule) applies, with a warning where it replaces the
    object's own rate; an object built on a schedule of its own keeps it under a constant phase.
    The phase's ``momentum``, ``weight_decay`` and ``clipnorm``, when given, replace the object's
    (:func:`_phase_settings`).
    """
    template = phase.optimizer if template is None else template
    if isinstance(template, keras.optimizers.LossScaleOptimizer):  # mixed precision's wrapper
        outer = template.get_config()
        inner = _fresh_optimizer(phase, lr, template.inner_optimizer)
        return keras.optimizers.LossScaleOptimizer(
            inner, initial_scale=outer["initial_scale"], dynamic_growth_steps=outer["dynamic_growth_steps"])
    own_schedule = learning_rate_schedule(template) is not None
    keep_own = phase.schedule == "constant" and own_schedule
    given = phase.learning_rate
    own = None if own_schedule else template.get_config().get("learning_rate")
    if phase.schedule == "constant" and isinstance(own, (int, float)) and isinstance(given, (int, float)) \
            and not math.isclose(float(own), float(given), rel_tol=1e-6):
        warnings.warn(
            f"Phase {phase.name!r}: the optimizer object's learning rate {float(own):g} is replaced by the "
            f"phase's learning_rate {float(given):g}; give the rate as the phase's learning_rate",
            UserWarning, stacklevel=3)
    optimizer = template
    settings, notes = _phase_settings(phase, template)
    if type(template).__module__.startswith("keras."):
        config = {**template.get_config(), **settings}
        if not keep_own and "learning_rate" in config:  # a float could not replace a schedule later
            config["learning_rate"] = lr
        try:
            optimizer = template.__class__.from_config(config)
        except (TypeError, ValueError, NotImplementedError):  # a schedule Keras cannot rebuild
            optimizer = template
    if optimizer is not template:
        for note in notes:  # what the rebuilt optimizer took in place of the object's settings
            warnings.warn(f"Phase {phase.name!r}: {note}", UserWarning, stacklevel=3)
    else:
        if int(template.iterations.numpy()) > 0:
            warnings.warn(
                f"Phase {phase.name!r}: optimizer {type(template).__name__} has taken steps "
                "already, and it cannot be rebuilt from its config as Keras' own classes are "
                "each phase: its step count and state go on into this phase (give each phase its "
                "own object)",
                UserWarning, stacklevel=3)
        given = sorted(k for k, v in settings.items() if v is not None)  # the phase's own settings
        if given:
            warnings.warn(
                f"Phase {phase.name!r}: the phase's {', '.join(given)} cannot be given to "
                f"optimizer {type(template).__name__}, which is used as given (set them on the object)",
                UserWarning, stacklevel=3)
        if not keep_own:
            optimizer.learning_rate = lr
    return optimizer


def _phase_settings(phase: Phase, template) -> tuple[dict[str, Any], list[str]]:
    """The optimizer settings a phase gives (``weight_decay``, ``clipnorm``, ``momentum`` as the
    optimizer names it), laid over an optimizer object's own: they were dropped without a word.
    A phase's ``clipnorm`` replaces the object's ``global_clipnorm``/``clipvalue`` (Keras takes
    one of the three), with a warning; a ``momentum`` the optimizer has no setting for is warned
    about and left out."""
    config = template.get_config()
    out: dict[str, Any] = {}
    notes: list[str] = []  # said once the optimizer is rebuilt with them
    if phase.weight_decay is not None:
        out["weight_decay"] = phase.weight_decay
    if phase.clipnorm is not None:
        out["clipnorm"] = phase.clipnorm
        others = [k for k in ("global_clipnorm", "clipvalue") if config.get(k) is not None]
        if others:
            notes.append(f"its clipnorm={phase.clipnorm:g} replaces the optimizer object's "
                         f"{', '.join(f'{k}={config[k]:g}' for k in others)} (Keras takes one)")
            out.update({k: None for k in others})
    if phase.momentum is not None:
        key = momentum_setting(template)
        if key is None:
            warnings.warn(f"Phase {phase.name!r}: optimizer {type(template).__name__} has no momentum "
                          f"(nor beta_1): momentum={phase.momentum:g} is left out", UserWarning, stacklevel=4)
        else:
            out[key] = phase.momentum
    return out, notes


def momentum_setting(optimizer: Any) -> str | None:
    """The config key of an optimizer's momentum: ``momentum`` (SGD, RMSprop), ``beta_1`` (Adam
    and its kin), or None (Adagrad, Ftrl...); a ``LossScaleOptimizer`` answers for its inner one.

    Args:
        optimizer: a Keras optimizer.

    Returns:
        The key, or None.

    Example:
        >>> momentum_setting(keras.optimizers.Adam()), momentum_setting(keras.optimizers.Adagrad())
        ('beta_1', None)
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    config = inner.get_config()
    return "momentum" if "momentum" in config else "beta_1" if "beta_1" in config else None


def _schedule_keys(schedule: str) -> set[str]:
    """The ``schedule_params`` a schedule takes (its class's keyword arguments)."""
    if schedule == "onecycle":
        return set(inspect.signature(OneCycle.__init__).parameters) - {"self", "max_lr", "total_steps"}
    if schedule == "cyclic":
        return set(inspect.signature(CyclicLR.__init__).parameters) - {"self", "max_lr"}
    return {"warmup_epochs", "alpha"} if schedule == "cosine" else set()


def _real(value: object) -> bool:
    """A finite real number (NumPy's too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _plain_numbers(phase: Phase) -> None:
    """NumPy numbers and 0-d arrays as Python's: whole ones as ``int``, the rates as ``float``
    (Keras refused an ``int`` or ``np.float32`` learning rate once the phase started, after the
    phases before it had trained)."""
    for name in ("epochs", "n", "learning_rate", "momentum", "weight_decay", "clipnorm"):
        value = getattr(phase, name)
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            value = value.item()
        if name in ("epochs", "n"):
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value = int(value)
        elif _real(value):
            value = float(value)
        setattr(phase, name, value)


def _check_phase_numbers(phase: Phase) -> None:
    """Refuse a ``Phase``'s out-of-range numbers when it is made: ``epochs=2.5``, a rate given as a
    string, ``unit="block"`` failed only when that phase started (after the phases before it had
    trained), and ``momentum=1.5`` or ``weight_decay=-1`` trained without a word."""
    from keras_species.models.freezing import UNITS

    where = f"Phase {phase.name!r}"
    whole = isinstance(phase.epochs, numbers.Integral) and not isinstance(phase.epochs, bool)
    if not whole or phase.epochs < 1:
        raise ValueError(f"{where}: epochs must be a whole number >= 1, got {phase.epochs!r}")
    rate = phase.learning_rate
    schedule = isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) or callable(rate)
    if not schedule and not (_real(rate) and rate >= 0):
        raise ValueError(  # a negative rate climbs the loss (0 is allowed: weights stay put)
            f"{where}: learning_rate must be a number >= 0, a keras.optimizers.schedules."
            f"LearningRateSchedule or a callable, got {rate!r}")
    if phase.unit not in UNITS:
        raise ValueError(f"{where}: unit={phase.unit!r}; choose one of {', '.join(UNITS)}")
    if phase.trainable == "last_n" and not (isinstance(phase.n, numbers.Integral) and phase.n >= 1):
        raise ValueError(f"{where}: trainable='last_n' needs n, a whole number >= 1 of backbone "
                         f"{phase.unit}, got n={phase.n!r}")
    if phase.momentum is not None and not (_real(phase.momentum) and 0 <= phase.momentum < 1):
        raise ValueError(f"{where}: momentum must lie in [0, 1), got {phase.momentum!r}")
    if phase.weight_decay is not None and not (_real(phase.weight_decay) and phase.weight_decay >= 0):
        raise ValueError(f"{where}: weight_decay must be a number >= 0, got {phase.weight_decay!r}")
    if phase.clipnorm is not None and not (_real(phase.clipnorm) and phase.clipnorm >= 0):
        raise ValueError(f"{where}: clipnorm must be a number >= 0 (None or 0: no clipping), got {phase.clipnorm!r}")


def _check_schedule_params(phase: Phase) -> None:
    """Refuse ``schedule_params`` that the phase's schedule would reject or misread, when the
    ``Phase`` is made: a typo or a bad value used to surface only when that phase started (after
    the phases before it had trained), and some never did (a negative cosine ``alpha`` trained at
    negative rates, a warm-up as long as the phase never reached its peak)."""
    params = dict(phase.schedule_params)
    params.pop("steps_per_epoch", None)
    where = f"Phase {phase.name!r}: schedule {phase.schedule!r}"
    unknown = sorted(set(params) - _schedule_keys(phase.schedule))
    if unknown:
        known = sorted(_schedule_keys(phase.schedule))
        raise ValueError(f"{where} takes no schedule_params {unknown}"
                         + (f"; it takes {known}" if known else ""))

    def number(key: str, low: float, high: float = math.inf, *, low_open: bool = False,
               high_open: bool = False) -> None:
        if key not in params:
            return
        value = params[key]
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok:
            span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ValueError(f"{where}: {key} must lie in {span}, got {value!r}")

    def choice(key: str, allowed: tuple) -> None:  # refused only when the phase started before
        if key not in params:
            return
        value = params[key]
        value = value.item() if isinstance(value, np.generic) else value  # np.str_, np.bool_: sweeps
        if not (isinstance(value, str | bool) and value in allowed and type(value) is type(allowed[0])):
            raise ValueError(f"{where}: {key} must be one of {', '.join(map(repr, allowed))}, "
                             f"got {params[key]!r}")

    if phase.schedule == "onecycle":
        number("pct_start", 0, 1, low_open=True, high_open=True)
        number("div_factor", 0, low_open=True)
        number("final_div_factor", 0, low_open=True)
        # a momentum of 1 or more trained without a word (Phase(momentum=1.5) is refused)
        number("base_momentum", 0, 1, high_open=True)
        number("max_momentum", 0, 1, high_open=True)
        choice("anneal", ("cos", "linear"))
        choice("cycle_momentum", (True, False))
        cycles = params.get("cycle_momentum", True)
        if isinstance(phase.optimizer, str):
            name = phase.optimizer.lower()
            zero = name in ("sgd", "rmsprop") and (
                phase.momentum == 0 or (name == "rmsprop" and phase.momentum is None))
        else:  # an object (a LossScaleOptimizer's inner one): the phase's momentum, else its own
            inner = getattr(phase.optimizer, "inner_optimizer", phase.optimizer)
            name, key = type(inner).__name__, momentum_setting(inner)
            own = inner.get_config().get(key) if key else None
            zero = key == "momentum" and (phase.momentum == 0 or (phase.momentum is None and not own))
        if cycles and zero:
            raise ValueError(
                f"{where} cycles the momentum, and {name}'s is 0 here: give the phase a momentum "
                "(Phase(momentum=0.9)) or turn the cycle off (schedule_params={'cycle_momentum': False})")
    elif phase.schedule == "cyclic":
        choice("mode", ("triangular", "triangular2", "exp_range"))
        number("step_size", 1)
        number("gamma", 0, low_open=True)
        number("base_lr", 0, float(phase.learning_rate))  # the cycle's low end: at most its peak
    elif phase.schedule == "cosine":
        number("alpha", 0, 1)
        number("warmup_epochs", 0, phase.epochs, high_open=True)


def make_optimizer(phase: Phase, steps_per_epoch: int | None = None):
    """The optimizer of a phase and the callbacks its schedule needs.

    Args:
        phase: the phase.
        steps_per_epoch: batches per epoch (for ``onecycle``, ``cyclic``, ``cosine``).

    Returns:
        ``(optimizer, callbacks)``.

    Example:
        >>> opt, cbs = make_optimizer(Phase(optimizer="sgd", learning_rate=0.01,
        ...                                 schedule="onecycle"), steps_per_epoch=10)
        >>> type(opt).__name__, type(cbs[0]).__name__
        ('SGD', 'OneCycle')
    """
    params = dict(phase.schedule_params)
    params.pop("steps_per_epoch", None)
    callbacks: list[keras.callbacks.Callback] = []
    lr: Any = phase.learning_rate
    if phase.schedule != "constant" and steps_per_epoch is None:
        raise ValueError(f"Phase {phase.name!r}: schedule {phase.schedule!r} needs steps_per_epoch")
    total = (steps_per_epoch or 0) * phase.epochs
    if phase.schedule == "onecycle" and total < 2:
        raise ValueError(
            f"Phase {phase.name!r}: a one-cycle schedule needs at least 2 training steps, and "
            f"{phase.epochs} epoch(s) of {steps_per_epoch} batch(es) give {total}: train for more "
            "epochs (--epochs) or use smaller batches (--batch-size)"
        )
    if phase.schedule == "onecycle":
        sched = OneCycle(float(phase.learning_rate), total_steps=total, **params)
        lr = sched.lr_at(0)
        callbacks.append(sched)
    elif phase.schedule == "cyclic":
        base = params.pop("base_lr", float(phase.learning_rate) / 10.0)
        step_size = params.pop("step_size", 2 * steps_per_epoch)
        sched = CyclicLR(base, float(phase.learning_rate), step_size, **params)
        lr = sched.lr_at(0)
        callbacks.append(sched)
    elif phase.schedule == "cosine":
        warmup_epochs = params.pop("warmup_epochs", 0)
        warmup = int(warmup_epochs * steps_per_epoch)
        if warmup_epochs and not warmup:
            warnings.warn(f"Phase {phase.name!r}: warmup_epochs={warmup_epochs} of {steps_per_epoch} "
                          "step(s) an epoch is no whole step: no warm-up", UserWarning, stacklevel=2)
        alpha = params.pop("alpha", 0.0)
        if params:
            raise ValueError(f"Phase {phase.name!r}: unknown cosine schedule params {sorted(params)}")
        if warmup:
            lr = keras.optimizers.schedules.CosineDecay(
                0.0, max(1, total - warmup), alpha=alpha,
                warmup_target=float(phase.learning_rate), warmup_steps=warmup,
            )
        else:
            lr = keras.optimizers.schedules.CosineDecay(float(phase.learning_rate), total, alpha=alpha)
    if not isinstance(phase.optimizer, str):
        return _fresh_optimizer(phase, lr), callbacks
    name = phase.optimizer.lower()
    common: dict[str, Any] = {"learning_rate": lr, "clipnorm": phase.clipnorm}
    if phase.weight_decay is not None:
        common["weight_decay"] = phase.weight_decay
    if name == "adam":
        opt = keras.optimizers.Adam(**common, **({"beta_1": phase.momentum} if phase.momentum is not None else {}))
    elif name == "adamw":
        opt = keras.optimizers.AdamW(**common, **({"beta_1": phase.momentum} if phase.momentum is not None else {}))
    elif name == "sgd":
        opt = keras.optimizers.SGD(**common, momentum=0.9 if phase.momentum is None else phase.momentum)
    else:
        opt = keras.optimizers.RMSprop(**common, momentum=phase.momentum or 0.0)
    return opt, callbacks


def _prepare(ds: tf.data.Dataset | None, task: Task, num_classes: int | None):
    """One-hot integer labels (single) / float labels (multi), sample weights passed through."""
    if ds is None or task == "custom":
        return ds
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2 or not isinstance(spec[1], tf.TensorSpec):
        return ds
    label = spec[1]
    if task == "single" and label.shape.rank == 1 and label.dtype.is_integer:
        if num_classes is None:
            raise ValueError("integer labels need a model with one output to know the class count")

        def encode(x, y, *rest):
            return (x, tf.one_hot(tf.cast(y, tf.int32), num_classes), *rest)

        return ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    if task == "multi" and label.dtype != tf.float32:

        def to_float(x, y, *rest):
            return (x, tf.cast(y, tf.float32), *rest)

        return ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return ds


def _apply_trainable(model: keras.Model, phase: Phase) -> None:
    if phase.trainable is None:
        return
    if callable(phase.trainable):
        phase.trainable(model)
        return
    from keras_species.models.freezing import set_trainable

    mode = "frozen" if phase.trainable == "head" else phase.trainable
    set_trainable(model, mode, n=phase.n, unit=phase.unit, train_batchnorm=phase.train_batchnorm)


def _untrained_batchnorm_to_recalibrate(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The BatchNorm layers that have no statistics yet and are recalibrated when they train:
    those of the nested ``backbone`` (built with ``weights=None``), or, in a model without one
    (a scratch CNN, ``build_scratch(..., batch_norm=True)``), all of the model's. A transfer
    model's head keeps Keras' moving averages: recalibrating it would run the backbone too."""
    from keras_species.models.freezing import find_backbone

    backbone = find_backbone(model)
    if backbone is None:  # no nested backbone: a scratch CNN, every layer trains from scratch
        return untrained_batchnorm(model)
    return untrained_batchnorm(backbone)


def _atomic_save_weights(model: keras.Model, path: Path) -> None:
    remove_stale_temporaries(path)  # a killed run's half-written copy stayed beside it for good
    with atomic_path(path) as tmp:
        model.save_weights(tmp, overwrite=True)


def _best_so_far(rows: list[dict], monitor: str, mode: str) -> float | None:
    values = [r[monitor] for r in rows if isinstance(r.get(monitor), (int, float))]
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


class _RunCheckpoint(AtomicModelCheckpoint):
    """``best.keras`` over the whole run: the bar to beat is the best value in the history
    rows kept when the fit starts (earlier phases, and epochs done before a resume)."""

    def __init__(self, history: HistoryWriter, filepath, **kwargs):
        super().__init__(filepath, **kwargs)
        self.history = history
        self._seeded = False
        self.mode = kwargs.get("mode", "auto")  # "min"/"max" here; Keras before 3.11 did not keep it

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._seeded = False

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if not self._seeded:  # after HistoryWriter dropped the rows of an interrupted epoch
            best = _best_so_far(self.history.rows, self.monitor, self.mode)
            if best is not None:
                self.best = best
            self._seeded = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.monitor not in logs:  # Keras only warns, and never saves
            raise ValueError(
                f"monitor {self.monitor!r} (--monitor) is not a quantity this run logs; choose one "
                f"of {', '.join(sorted(k for k in logs if k != 'learning_rate'))}"
            )
        super().on_epoch_end(epoch, logs)


class _RunEarlyStopping(keras.callbacks.EarlyStopping):
    """``keras.callbacks.EarlyStopping`` whose count survives a restart in the middle of a phase.

    Keras' callback holds its best value, its patience count and the best weights in memory, so
    a resumed phase would count its patience again from zero and restore the best of the epochs
    after the restart only. Here they are rebuilt when the fit starts: the best value and the
    count from the phase's rows of ``history.csv``, the best weights (``restore_best_weights``)
    from ``best_weights_path``, which is rewritten at each new best epoch of the phase.
    """

    def __init__(self, history: HistoryWriter, phase: str, best_weights_path: Path,
                 end_epoch: int | None = None, **kwargs):
        self.end_epoch = end_epoch  # the fit's `epochs`: its last epoch is end_epoch - 1
        # Keras' own lines ("Restoring model weights from the end of the best epoch: 2") name
        # the phase's best epoch, which readers took for the run's (best.keras, the one scored):
        # this callback says both in its own words
        self.say = bool(kwargs.pop("verbose", 0))
        super().__init__(verbose=0, **kwargs)
        self.history, self.phase, self.best_weights_path = history, phase, Path(best_weights_path)
        self._seeded = False
        self.mode = kwargs.get("mode", "auto")  # "min"/"max" here; Keras before 3.11 did not keep it

    def on_train_end(self, logs=None):
        if not self._seeded:  # a resume with no epoch left (killed while the phase's end was saved):
            self._seed()      # the phase still ends on its best epoch's weights (it ended on its last)
        super().on_train_end(logs)
        if not self.say:
            return
        early = self.stopped_epoch > 0 and (self.end_epoch is None or self.stopped_epoch + 1 < self.end_epoch)
        if early:  # Keras sets stopped_epoch on the last epoch too
            print(f"end of phase {self.phase!r}: stopped early after epoch {self.stopped_epoch + 1}, "
                  f"{self.monitor} not improved for {self.wait} epoch(s)")
        if self.restore_best_weights and self.best_weights is not None and self.best is not None:
            print(f"end of phase {self.phase!r}: the weights of its best epoch, {self.best_epoch + 1} "
                  f"({self.monitor} {float(self.best):.4f}), go on; best.keras keeps the run's best "
                  "epoch over every phase")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._seeded = False

    def _improves(self, value: float, best: float | None) -> bool:
        """Keras' rule: better than ``best`` by more than ``min_delta``."""
        if best is None:
            return True
        delta = abs(self.min_delta)
        return value + delta < best if self.mode == "min" else value - delta > best

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if not self._seeded:  # once per fit, after HistoryWriter dropped an interrupted epoch's rows
            self._seed()

    def phase_rows(self) -> list[dict]:
        """The phase's rows of ``history.csv`` that hold the monitored value."""
        return [r for r in self.history.rows
                if r.get("phase") == self.phase and isinstance(r.get(self.monitor), (int, float))]

    def replay(self, rows: list[dict], best: float | None) -> tuple[float | None, int | None, int, bool]:
        """Keras' count over logged epochs, from ``best``: ``(best value, its epoch index or
        None when no row improved, the patience count after the last row, whether that row
        improved)``."""
        wait, at, improved = 0, None, False
        for row in rows:
            wait += 1
            improved = self._improves(row[self.monitor], best)
            if improved:
                best, at, wait = row[self.monitor], int(row["epoch"]) - 1, 0
        return best, at, wait, improved

    def _seed(self) -> None:
        """The best value, patience count and best weights of the phase's finished epochs."""
        self._seeded = True
        done = self.phase_rows()
        best, at, wait, _ = self.replay(done, self.best)
        if at is None:  # no logged epoch improved: the count goes on from where it was
            self.wait += wait
        else:
            self.best, self.best_epoch, self.wait = best, at, wait
        if done and self.restore_best_weights and self.best_weights_path.is_file():
            # the file holds the optimizer's variables too (Keras' .weights.h5): put back the
            # state BackupAndRestore restored, or the resumed phase went on with the best
            # epoch's moments and iteration count (stop 30: iterations 7 where 14 was due)
            current = self.model.get_weights()
            optimizer = getattr(self.model, "optimizer", None)
            state = [v.numpy() for v in optimizer.variables] if optimizer is not None else []
            with warnings.catch_warnings():  # an optimizer not built yet skips its part, saying so
                warnings.filterwarnings("ignore", message=".*Skipping variable loading for optimizer")
                self.model.load_weights(self.best_weights_path)
            self.best_weights = self.model.get_weights()
            self.model.set_weights(current)
            if optimizer is not None and len(optimizer.variables) == len(state):
                for variable, value in zip(optimizer.variables, state):
                    variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.restore_best_weights and self.best_epoch == epoch and self.best_weights is not None:
            _atomic_save_weights(self.model, self.best_weights_path)


class _SkipStoppedPhase(keras.callbacks.Callback):
    """Runs no epoch of a resumed phase that had already stopped early.

    Killed while such a phase's end was saved, a resume restores its last epoch from the backup,
    which lies before the phase's ``epochs``: ``fit`` went on training, since Keras' early
    stopping checks its patience only at an epoch's end (and an improving epoch reset it), so the
    phase trained more epochs than an uninterrupted run and ended on other weights. Put it after
    the backup callback, whose ``on_train_begin`` sets the epoch ``fit`` starts from; the
    early-stopping callback then ends the phase on its best weights, as it does when no epoch is
    left.
    """

    def __init__(self, stopping: _RunEarlyStopping):
        super().__init__()
        self.stopping = stopping

    def on_train_begin(self, logs=None):
        start = getattr(self.model, "_initial_epoch", None)  # set by BackupAndRestore's restore
        if not start:
            return
        stop = self.stopping
        rows = [r for r in stop.phase_rows() if int(r["epoch"]) <= start]
        _, _, wait, improved = stop.replay(rows, None)
        # Keras stops after an epoch that did not improve only (an improving one returns before
        # the patience check: with patience 0, a phase still improving went on)
        if rows and not improved and wait >= stop.patience and start > 1:
            self.model._initial_epoch = max(start, int((self.params or {}).get("epochs") or start))


class _PhaseEnd(keras.callbacks.Callback):
    """Saves the weights and ``state.json`` when a phase's fit ends (after EarlyStopping has
    restored the best weights and before BackupAndRestore deletes its backup)."""

    def __init__(self, run: RunFolder, index: int, phases: Sequence[Phase], history: HistoryWriter):
        super().__init__()
        self.run, self.index, self.phases, self.history = run, index, phases, history

    def on_train_end(self, logs=None):
        _atomic_save_weights(self.model, self.run.phase_weights_path(self.index))
        epoch = max((int(r["epoch"]) for r in self.history.rows), default=0)
        self.run.write_state(
            {
                "phase_index": self.index + 1,
                "epoch": epoch,
                "phases": [p.name for p in self.phases],
                "finished": self.index + 1 == len(self.phases),
            }
        )
        # last: until the state says the phase ended, a resume redoes its end from these best
        # weights (removed before the state was written, a kill between the two ended the
        # resumed phase on its last epoch's weights, and saved those over the right ones)
        self.run.phase_best_weights_path(self.index).unlink(missing_ok=True)


def phase_line(phase: Phase, index: int, count: int, first_epoch: int = 1) -> str:
    """The line :func:`train` prints when a phase starts: which phase, its epochs (numbered
    over the whole run, as Keras shows them), what trains and the learning rate.

    Args:
        phase: the phase.
        index: its position in the plan, from 0.
        count: the number of phases in the plan.
        first_epoch: the run epoch (from 1) the phase starts at.

    Returns:
        One line.

    Example:
        >>> phase_line(Phase("head", 1, trainable="frozen"), 0, 2)
        "phase 1/2 'head': 1 epoch (run epoch 1), backbone frozen, learning rate 0.001"
    """
    last = first_epoch + phase.epochs - 1
    epochs = (f"1 epoch (run epoch {first_epoch})" if phase.epochs == 1
              else f"{phase.epochs} epochs (run epochs {first_epoch}-{last})")
    if phase.trainable in ("frozen", "head"):
        trains = "backbone frozen"
    elif phase.trainable == "all":
        trains = "all layers train"
    elif phase.trainable == "last_n":
        trains = f"last {phase.n} backbone {phase.unit} train"
    elif phase.trainable is None:
        trains = None
    else:
        trains = f"trainable layers set by {getattr(phase.trainable, '__name__', 'a function')}"
    if isinstance(phase.learning_rate, (int, float)):
        rate = (f"learning rate {phase.learning_rate:g}" if phase.schedule == "constant"
                else f"{phase.schedule} schedule, peak learning rate {phase.learning_rate:g}")
    else:
        rate = f"learning rate schedule {type(phase.learning_rate).__name__}"
    return ", ".join(x for x in (f"phase {index + 1}/{count} {phase.name!r}: {epochs}", trains, rate) if x)


def train(
    model: keras.Model,
    phases: Sequence[Phase],
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    run_dir: str | os.PathLike | RunFolder,
    *,
    task: Task = "single",
    resume: bool = False,
    verbose: int = 1,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    tensorboard: bool | None = None,
) -> TrainResult:
    """Run the phases of a plan on ``model``; write history, checkpoints and state to ``run_dir``.

    Each phase: set the trainable layers, compile with a new optimiser (inside the model's
    distribution strategy scope), fit from the global epoch where the previous phase stopped.
    Callbacks per phase, in order: ``models.batchnorm.RecalibrateBatchNorm`` when BatchNorm
    layers of the backbone train from scratch (a backbone built with ``weights=None``: their
    moving statistics are set to their average over training batches every epoch, before
    validation: those Keras keeps with momentum 0.99 still hold 0.99**k of their initial values
    after k steps, which keeps the inference-mode output near-constant for hundreds of steps), the
    schedule (one-cycle / cyclic), ``LearningRateLogger``,
    ``keras.callbacks.TerminateOnNaN``, the phase's and ``extra_callbacks``, ``HistoryWriter``
    (``history.csv``), ``AtomicModelCheckpoint`` (``best.keras``, best on the monitor over the
    whole run), ``keras.callbacks.EarlyStopping`` (patience, best weights restored; its count
    and best weights survive a resume in the middle of the phase),
    ``keras.callbacks.TensorBoard``, the phase-end state writer, and
    ``keras.callbacks.BackupAndRestore`` last (so an epoch counts as done only after everything
    else about it is on disk).

    Args:
        model: a built Keras model (for resume: built the same way as the first time).
        phases: the plan.
        train_ds: yields ``(images, labels[, sample_weights])``; integer labels of a
            single-label task are one-hot encoded here, multi-hot labels cast to float.
        val_ds: validation data (None: monitors fall back to training metrics).
        run_dir: the run folder.
        task: ``"single"``, ``"multi"`` or ``"custom"`` (loss and metrics given by the phases).
        resume: continue an interrupted run in ``run_dir`` (where: ``RunFolder.resume_state``,
            which rebuilds a damaged ``state.json`` from the checkpoints and history when they
            show it beyond doubt, and otherwise stops with a message that says what to do);
            without it, history, state, backups and ``best.keras`` left in ``run_dir`` are
            removed first.
        verbose: passed to ``fit``: 0, 1 or 2 (:func:`verbose_problem`; anything else raises
            a ``ValueError`` before any work); 1 and 2 also print :func:`phase_line` when
            each phase starts.
        extra_callbacks: callbacks added to every phase.
        tensorboard: write TensorBoard logs to ``run_dir/tensorboard``; None → when the
            ``tensorboard`` package is installed (``tf.summary`` needs it).

    Returns:
        ``TrainResult(history, best_path, model, run_dir)``.

    Example:
        >>> result = train(model, [Phase("head", 5, trainable="frozen"),
        ...                        Phase("all", 5, trainable="all", learning_rate=1e-4)],
        ...                train_ds, val_ds, "runs/demo/x")  # doctest: +SKIP
        >>> result.history[-1]["phase"]  # doctest: +SKIP
        'all'
    """
    problem = verbose_problem(verbose)
    if problem:
        raise ValueError(f"verbose={verbose!r}: {problem}")
    if task not in DEFAULT_MONITOR:
        raise ValueError(f"task={task!r}; use 'single', 'multi' or 'custom'")
    if not phases:
        raise ValueError("train() needs at least one Phase")
    names = [p.name for p in phases]
    if len(set(names)) < len(names):  # history rows, early stopping and resume go by the name
        raise ValueError(f"phase names must differ, got {names}: give each Phase a name of its own "
                         "(Phase('head', ...), Phase('fine_tune', ...))")
    if tensorboard is None:
        tensorboard = importlib.util.find_spec("tensorboard") is not None
    elif tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ImportError("tensorboard=True needs the tensorboard package: pip install tensorboard")
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    run.mkdir()
    state = run.resume_state([p.name for p in phases]) if resume else {}
    if not resume:
        run.reset_training()
    start_phase = int(state.get("phase_index", 0))
    rows = read_history(run.history_path) if resume else []
    epoch = int(state.get("epoch", 0))
    if start_phase > 0:
        with warnings.catch_warnings():  # notes about phases that ended already: not run again
            warnings.simplefilter("ignore")
            for p in phases[:start_phase]:
                _apply_trainable(model, p)
        model.load_weights(run.phase_weights_path(start_phase - 1))
        for i in range(start_phase):
            shutil.rmtree(run.backup_dir(i), ignore_errors=True)
            run.phase_best_weights_path(i).unlink(missing_ok=True)

    num_classes = _num_classes(model)
    for phase in phases[start_phase:]:  # before any training, not at the end of a phase's first epoch
        _check_monitor(model, phase, task, num_classes, validation=val_ds is not None,
                       extra_callbacks=extra_callbacks)
    lost_images = LostImagesWarning(train_ds, val_ds)  # counted on the datasets make_dataset built
    train_ds = _prepare(train_ds, task, num_classes)
    val_ds = _prepare(val_ds, task, num_classes)
    strategy = model.distribute_strategy

    for index in range(start_phase, len(phases)):
        phase = phases[index]
        untrained = _untrained_batchnorm_to_recalibrate(model)
        _apply_trainable(model, phase)
        from_scratch = [layer for layer in untrained if layer.trainable]  # they train from scratch
        from_logits = outputs_logits(model) if phase.from_logits is None else phase.from_logits
        steps = _steps_per_epoch(train_ds, phase) if phase.schedule != "constant" else None
        with strategy.scope():
            optimizer, schedule_callbacks = make_optimizer(phase, steps)
            loss = phase.loss or default_loss(task, label_smoothing=phase.label_smoothing, from_logits=from_logits)
            metrics = phase.metrics if phase.metrics is not None else default_metrics(task, num_classes, from_logits=from_logits)
            model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=phase.loss_weights,
                          weighted_metrics=phase.weighted_metrics)

        monitor = phase.monitor or DEFAULT_MONITOR[task]
        if val_ds is None and monitor.startswith("val_"):
            monitor = monitor[len("val_"):]
        mode = monitor_mode(monitor)
        history = HistoryWriter(run.history_path, phase.name, rows=rows, keep=(monitor,))
        callbacks: list[keras.callbacks.Callback] = [
            lost_images,  # before RecalibrateBatchNorm, whose training batches would count too
            # first after it: checkpoints and backups must see the moving statistics it sets
            *([RecalibrateBatchNorm(train_ds, from_scratch)] if from_scratch else []),
            *schedule_callbacks,
            LearningRateLogger(),
            keras.callbacks.TerminateOnNaN(),
            *phase.callbacks,
            *extra_callbacks,
            history,
            _RunCheckpoint(history, run.best_model_path, monitor=monitor, mode=mode, save_best_only=True),
        ]
        stopping = None
        if phase.early_stopping_patience is not None or phase.restore_best:
            stopping = _RunEarlyStopping(
                history,
                phase.name,
                run.phase_best_weights_path(index),
                end_epoch=epoch + phase.epochs,
                monitor=monitor,
                mode=mode,
                patience=phase.early_stopping_patience
                if phase.early_stopping_patience is not None
                else phase.epochs + 1,
                restore_best_weights=phase.restore_best,
                verbose=1 if verbose else 0,
            )
            callbacks.append(stopping)
        if tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(str(run.tensorboard_dir), write_graph=False, profile_batch=0)
            )
        callbacks.append(_PhaseEnd(run, index, phases, history))
        callbacks.append(AtomicBackupAndRestore(str(run.backup_dir(index))))  # never half-written
        if stopping is not None:  # after the backup's restore: a phase that stopped early stays so
            callbacks.append(_SkipStoppedPhase(stopping))
        # BackupAndRestore stores the restored epoch on the model and fit() prefers it to
        # ``initial_epoch``; clear what an earlier phase's restore left there.
        model._initial_epoch = None
        if verbose:  # explains Keras' "Epoch i/n" lines, numbered over the whole run
            print(phase_line(phase, index, len(phases), epoch + 1), flush=True)
        # a multi-device strategy: batches that split evenly over the replicas (a short last
        # batch, or a validation split smaller than the global batch, failed inside Keras)
        replicas = model_replicas(model)
        try:
            with warnings.catch_warnings():
                # fit gets no steps_per_epoch: this warning only means a dataset of unknown
                # length (the pipeline skips unreadable files; several replicas carry images
                # over) ended its first pass, and its advice (`.repeat()`) is wrong here
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                model.fit(
                    even_batches(train_ds, replicas, role="fit"),
                    validation_data=None if val_ds is None else even_batches(val_ds, replicas, role="fit"),
                    epochs=epoch + phase.epochs,
                    initial_epoch=epoch,
                    callbacks=callbacks,
                    verbose=verbose,
                    shuffle=False,  # tf.data datasets are shuffled by the pipeline
                )
        except StopIteration as err:  # every batch cut away: a bare StopIteration from Keras
            if replicas <= 1:
                raise
            raise ValueError(
                f"the training or validation split holds fewer images than the {replicas} "
                "replicas that share each batch, so no batch is left to give them: use fewer "
                "devices (--strategy none), or more images in that split") from err
        model._initial_epoch = None
        rows = history.rows
        epoch = max((int(r["epoch"]) for r in rows), default=epoch)

    rows = read_history(run.history_path)
    if (run.path / "backup").is_dir() and not any((run.path / "backup").iterdir()):
        (run.path / "backup").rmdir()
    best = run.best_model_path if run.best_model_path.is_file() else None
    return TrainResult(history=rows, best_path=best, model=model, run_dir=run.path)
