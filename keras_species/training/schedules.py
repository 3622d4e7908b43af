"""Per-batch schedules Keras lacks: the one-cycle policy (lr and momentum) and cyclic LR.

Why callbacks and not ``keras.optimizers.schedules``: Keras has learning-rate schedules
(``CosineDecay``, ``PiecewiseConstantDecay`` ...; ``plan.Phase(schedule="cosine")`` uses one) but
no momentum schedule, and no one-cycle or triangular schedule; a custom ``LearningRateSchedule``
would also have to be registered for every saved ``.keras`` file to reload. One callback that
sets the learning rate and the momentum before each batch covers both, and the saved optimizer
config holds plain numbers.

Momentum: Keras optimizers keep ``momentum`` (SGD, RMSprop) and ``beta_1`` (Adam, AdamW, ...)
as Python floats that are baked into the traced train step, so assigning a new float per batch
would do nothing without retracing. ``ScheduledFloat`` is a float (its configured value, which is
what comparisons such as ``momentum != 0`` and the saved config see) that converts to a read of a
``tf.Variable`` inside the train step; the callback assigns that variable.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from keras_species.training.callbacks import base_optimizer

MOMENTUM_ATTRIBUTES = ("momentum", "beta_1")
"""Optimizer attributes cycled as momentum: SGD / RMSprop ``momentum``, Adam-family ``beta_1``."""


class ScheduledFloat(float):
    """A float hyper-parameter whose value inside traced TensorFlow code is a variable's value.

    Python sees the configured (static) value; ``tf.convert_to_tensor`` and arithmetic with
    tensors see ``variable``, which can be assigned between steps without retracing.

    Args:
        value: the configured value (also the variable's initial value).

    Example:
        >>> m = ScheduledFloat(0.9)
        >>> m.assign(0.85)
        >>> float(m), round(float(tf.convert_to_tensor(m)), 2)
        (0.9, 0.85)
    """

    variable: tf.Variable
    dtype = "float32"  # what Keras ops read to pick the result dtype

    def __new__(cls, value: float):
        obj = super().__new__(cls, value)
        obj.variable = tf.Variable(float(value), trainable=False, dtype=tf.float32)
        return obj

    def assign(self, value: float) -> None:
        """Set the value the next train steps read."""
        self.variable.assign(value)

    def __tf_tensor__(self, dtype=None, name=None):
        value = tf.convert_to_tensor(self.variable)
        return value if dtype is None else tf.cast(value, dtype)

    def _t(self):
        return tf.convert_to_tensor(self.variable)

    def __add__(self, other):
        return self._t() + other

    def __radd__(self, other):
        return other + self._t()

    def __sub__(self, other):
        return self._t() - other

    def __rsub__(self, other):
        return other - self._t()

    def __mul__(self, other):
        return self._t() * other

    def __rmul__(self, other):
        return other * self._t()

    def __truediv__(self, other):
        return self._t() / other

    def __rtruediv__(self, other):
        return other / self._t()

    def __pow__(self, other):
        return self._t() ** other

    def __rpow__(self, other):
        return other ** self._t()

    def __neg__(self):
        return -self._t()

    def __reduce__(self):
        return (float, (float(self),))


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def _lin_anneal(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


class _BatchSchedule(keras.callbacks.Callback):
    """Sets lr (and optionally momentum) before every training batch from ``lr_at(step)``.

    The step count starts from ``optimizer.iterations`` at the first batch, so a fit resumed by
    ``BackupAndRestore`` (which restores the optimizer's step) continues the schedule in place.
    """

    cycle_momentum = False

    def __init__(self):
        super().__init__()
        self._step: int | None = None
        self._momentum: ScheduledFloat | None = None
        self._attribute: str | None = None

    def lr_at(self, step: int) -> float:
        """Learning rate of training step ``step`` (0-based)."""
        raise TypeError(f"{type(self).__name__} must define lr_at")

    def momentum_at(self, step: int) -> float | None:
        """Momentum of step ``step``, or None when this schedule leaves momentum alone."""
        return None

    def on_train_begin(self, logs=None):
        self._step = None
        opt = base_optimizer(self.model.optimizer)
        if self.cycle_momentum and self.momentum_at(0) is not None:
            for attr in MOMENTUM_ATTRIBUTES:
                current = getattr(opt, attr, None)
                if isinstance(current, (int, float)) and not isinstance(current, bool):
                    if attr == "momentum" and current == 0:
                        raise ValueError(
                            f"{type(self).__name__} cycles momentum but the optimizer "
                            f"{opt.name!r} has momentum=0 (momentum disabled); give it a "
                            "momentum (e.g. SGD(momentum=0.9)) or pass cycle_momentum=False"
                        )
                    self._momentum = ScheduledFloat(float(current))
                    self._attribute = attr
                    setattr(opt, attr, self._momentum)
                    break

    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        if self._step is None:
            self._step = int(keras.ops.convert_to_numpy(opt.iterations))
        base_optimizer(opt).learning_rate = self.lr_at(self._step)
        if self._momentum is not None:
            self._momentum.assign(self.momentum_at(self._step))
        self._step += 1

    def on_train_end(self, logs=None):
        if self._momentum is not None:
            setattr(base_optimizer(self.model.optimizer), self._attribute, float(self._momentum))
            self._momentum = None


class OneCycle(_BatchSchedule):
    """The one-cycle policy (Smith & Topin 2018; R4), per batch, cosine annealed.

    Over ``total_steps`` the learning rate rises from ``max_lr / div_factor`` to ``max_lr`` during
    the first ``pct_start`` of the steps, then falls to ``max_lr / div_factor /
    final_div_factor``; momentum (SGD/RMSprop ``momentum`` or Adam ``beta_1``) moves the other
    way, ``max_momentum`` → ``base_momentum`` → ``max_momentum``. The formulas and defaults of
    ``torch.optim.lr_scheduler.OneCycleLR`` (with ``max_lr=0.01`` the lr runs 4e-4 → 0.01 →
    4e-8), but the peak falls on a whole step (``round(pct_start * total_steps) - 1``), where
    torch's may fall between two: equal step by step when ``pct_start * total_steps`` is whole.

    Args:
        max_lr: the peak learning rate.
        total_steps: training steps (batches) in the cycle, usually epochs × steps per epoch.
        pct_start: fraction of the steps spent increasing the learning rate.
        div_factor: initial lr = ``max_lr / div_factor``.
        final_div_factor: final lr = initial lr / ``final_div_factor``.
        base_momentum: momentum at the peak learning rate.
        max_momentum: momentum at the start and the end.
        cycle_momentum: cycle the momentum too (needs an optimizer with momentum or beta_1).
        anneal: ``"cos"`` or ``"linear"``.

    Example:
        >>> sched = OneCycle(0.01, total_steps=100)
        >>> round(sched.lr_at(0), 6), round(sched.lr_at(29), 6), sched.momentum_at(29)
        (0.0004, 0.01, 0.85)
        >>> model.fit(ds, epochs=5, callbacks=[sched])  # doctest: +SKIP
    """

    cycle_momentum = True

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        *,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        cycle_momentum: bool = True,
        anneal: str = "cos",
    ):
        super().__init__()
        if total_steps < 2:
            raise ValueError(f"OneCycle needs total_steps >= 2, got {total_steps}")
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"pct_start must lie in (0, 1), got {pct_start}")
        if anneal not in ("cos", "linear"):
            raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)
        self.cycle_momentum = bool(cycle_momentum)
        self.anneal = _cos_anneal if anneal == "cos" else _lin_anneal
        self.peak_step = max(1, round(self.pct_start * self.total_steps) - 1)

    def _pct(self, step: int) -> tuple[bool, float]:
        step = min(max(step, 0), self.total_steps - 1)
        if step <= self.peak_step:
            return True, step / self.peak_step
        return False, (step - self.peak_step) / (self.total_steps - 1 - self.peak_step)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (clamped to the cycle)."""
        rising, pct = self._pct(step)
        if rising:
            return self.anneal(self.initial_lr, self.max_lr, pct)
        return self.anneal(self.max_lr, self.min_lr, pct)

    def momentum_at(self, step: int) -> float | None:
        """Momentum at ``step``; None when ``cycle_momentum`` is off."""
        if not self.cycle_momentum:
            return None
        rising, pct = self._pct(step)
        if rising:
            return self.anneal(self.max_momentum, self.base_momentum, pct)
        return self.anneal(self.base_momentum, self.max_momentum, pct)


class CyclicLR(_BatchSchedule):
    """Cyclical learning rate (Smith 2017, "Cyclical Learning Rates for Training Neural Networks").

    The learning rate moves linearly between ``base_lr`` and ``max_lr`` and back, each half
    cycle ``step_size`` batches. Modes: ``"triangular"`` (constant amplitude), ``"triangular2"``
    (amplitude halved every cycle), ``"exp_range"`` (amplitude × ``gamma ** step``).

    Args:
        base_lr: the lower bound.
        max_lr: the upper bound.
        step_size: batches per half cycle (Smith: 2–10 epochs' worth).
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: decay for ``"exp_range"``.

    Example:
        >>> c = CyclicLR(1e-4, 1e-2, step_size=10)
        >>> c.lr_at(0), c.lr_at(10), c.lr_at(20)
        (0.0001, 0.01, 0.0001)
    """

    def __init__(
        self,
        base_lr: float,
        max_lr: float,
        step_size: int,
        *,
        mode: str = "triangular",
        gamma: float = 1.0,
    ):
        super().__init__()
        if mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(f"mode must be triangular, triangular2 or exp_range; got {mode!r}")
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.base_lr = float(base_lr)
        self.max_lr = float(max_lr)
        self.step_size = int(step_size)
        self.mode = mode
        self.gamma = float(gamma)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``."""
        cycle = math.floor(1 + step / (2 * self.step_size))
        x = abs(step / self.step_size - 2 * cycle + 1)
        scale = {
            "triangular": 1.0,
            "triangular2": 1.0 / (2.0 ** (cycle - 1)),
            "exp_range": self.gamma**step,
        }[self.mode]
        return self.base_lr + (self.max_lr - self.base_lr) * max(0.0, 1.0 - x) * scale
