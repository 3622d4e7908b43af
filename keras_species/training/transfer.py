"""Transfer learning from a pretrained backbone: the classifier and its two-phase plan.

R2 and R3 train the same way: phase 1 keeps the ImageNet backbone frozen and trains the new head
at a normal rate; phase 2 unfreezes all (or the last N units) of the backbone and trains on at a
lower rate, BatchNorm layers kept frozen (in inference mode) so their ImageNet statistics are not
overwritten by small batches of a small data set. :func:`transfer_phases` writes that plan as
:class:`~keras_species.training.plan.Phase` objects; :func:`build_transfer_model` builds the
classifier inside the run's precision policy and distribution strategy.

Without pretrained weights (``weights=None``) there are no ImageNet statistics to keep: the
backbone's BatchNorm layers train from scratch in phase 2 whatever ``train_batchnorm`` says, and
their moving statistics are re-estimated every epoch (``models.freezing.set_trainable``,
``models.batchnorm``). Phase 1 then trains the head on a frozen random backbone, whose features
are near-constant for EfficientNet-Lite and MobileNet: it warns, and ``head_epochs=0`` skips it.

Example:
    >>> phases = transfer_phases(head_epochs=5, fine_tune_epochs=3)
    >>> [(p.name, p.trainable, p.learning_rate) for p in phases]
    [('head', 'frozen', 0.001), ('fine_tune', 'all', 0.0001)]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from keras_species.training.plan import Phase

UNFREEZE_MODES = ("all", "last_n", "none")


def transfer_phases(
    *,
    head_epochs: int = 5,
    fine_tune_epochs: int = 3,
    head_learning_rate: float = 1e-3,
    fine_tune_learning_rate: float = 1e-4,
    optimizer: str = "adam",
    unfreeze: str = "all",
    unfreeze_n: int = 0,
    unfreeze_unit: str = "blocks",
    train_batchnorm: bool = False,
    weight_decay: float | None = None,
    label_smoothing: float = 0.0,
    monitor: str | None = None,
    early_stopping_patience: int | None = None,
    restore_best: bool = True,
    schedule: str = "constant",
    loss: Any = None,
    metrics: Any = None,
) -> list[Phase]:
    """The two phases of transfer learning (R2: 5 + 2 epochs; R3: Adam 1e-3 then 1e-4).

    Args:
        head_epochs: epochs of phase 1 (backbone frozen); 0 skips it.
        fine_tune_epochs: epochs of phase 2 (maximum, with early stopping); 0 skips it.
        head_learning_rate: phase-1 learning rate.
        fine_tune_learning_rate: phase-2 learning rate (lower).
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``rmsprop`` for both phases.
        unfreeze: phase 2 trains ``"all"`` of the backbone, its ``"last_n"`` units, or
            ``"none"`` (phase 2 then trains the head only, at the lower rate).
        unfreeze_n: how many units for ``"last_n"``.
        unfreeze_unit: ``"blocks"``, ``"layers"`` or ``"conv"`` (what ``unfreeze_n`` counts).
        train_batchnorm: let the backbone's BatchNorm layers train in phase 2 (default frozen;
            those of a backbone without pretrained weights always train).
        weight_decay: decoupled weight decay for both phases.
        label_smoothing: label smoothing of the cross-entropy loss.
        monitor: checkpoint / early-stopping quantity (None: ``val_accuracy`` single-label,
            ``val_micro_f1`` multi-label).
        early_stopping_patience: epochs without improvement before a phase stops (R3: 10).
        restore_best: end each phase with its best epoch's weights.
        schedule: learning-rate schedule of both phases (``constant``, ``cosine``, ...).
        loss: a loss instead of the task default.
        metrics: metrics instead of the task default.

    Returns:
        A list of one or two :class:`Phase` objects named ``head`` and ``fine_tune``.

    Raises:
        ValueError: both phases have 0 epochs, or an unknown ``unfreeze``.

    Example:
        >>> [p.name for p in transfer_phases(head_epochs=0, fine_tune_epochs=2)]
        ['fine_tune']
    """
    if unfreeze not in UNFREEZE_MODES:
        raise ValueError(f"unfreeze={unfreeze!r}; choose one of {', '.join(UNFREEZE_MODES)}")
    if head_epochs < 0 or fine_tune_epochs < 0:
        raise ValueError("head_epochs and fine_tune_epochs must be >= 0")
    if head_epochs == 0 and fine_tune_epochs == 0:
        raise ValueError("head_epochs and fine_tune_epochs are both 0: nothing to train")
    if unfreeze == "last_n" and unfreeze_n < 1:
        raise ValueError("unfreeze='last_n' needs unfreeze_n >= 1 (how many units train; --unfreeze-n)")
    if unfreeze != "last_n" and unfreeze_n:  # it would be ignored
        raise ValueError(
            f"unfreeze_n={unfreeze_n} counts the units that --unfreeze last_n trains, but "
            f"unfreeze={unfreeze!r}: add --unfreeze last_n, or leave --unfreeze-n out"
        )
    common: dict[str, Any] = {
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "monitor": monitor,
        "early_stopping_patience": early_stopping_patience,
        "restore_best": restore_best,
        "schedule": schedule,
        "loss": loss,
        "metrics": metrics,
    }
    phases: list[Phase] = []
    if head_epochs:
        phases.append(
            Phase("head", epochs=head_epochs, trainable="frozen", learning_rate=head_learning_rate, **common)
        )
    if fine_tune_epochs:
        phases.append(
            Phase(
                "fine_tune",
                epochs=fine_tune_epochs,
                trainable="frozen" if unfreeze == "none" else unfreeze,
                n=unfreeze_n,
                unit=unfreeze_unit,
                train_batchnorm=train_batchnorm,
                learning_rate=fine_tune_learning_rate,
                **common,
            )
        )
    return phases


def build_transfer_model(
    backbone: str,
    num_classes: int,
    *,
    input_size: int | tuple[int, int] | None = None,
    weights: str | os.PathLike | None = "imagenet",
    head_units: Sequence[int] = (),
    head_dropout: float = 0.0,
    head_pooling: str = "avg",
    head_batch_norm: bool = False,
    multilabel: bool = False,
    precision: str = "off",
    strategy: Any = None,
    class_names: Sequence[str] | None = None,
):
    """A registry classifier built under a precision policy and inside a strategy's scope.

    Args:
        backbone: registry name (``keras-species models`` lists them).
        num_classes: classes (tags for multi-label).
        input_size: side or ``(height, width)``; the backbone's default when None.
        weights: ``"imagenet"``, None, or a local weights file (``models.weights``). Offline
            ``"imagenet"`` raises ``WeightsUnavailableError`` before anything is built. None
            gives a random backbone, to train from scratch (see the module's docstring).
        head_units: hidden Dense widths (R3: ``(512, 256, 128)``).
        head_dropout: dropout after each hidden Dense (after pooling for a linear head).
        head_pooling: ``avg``, ``flatten`` or ``avgmax``.
        head_batch_norm: BatchNorm in the head's hidden layers.
        multilabel: sigmoid outputs instead of softmax.
        precision: ``auto``, ``float16``, ``bfloat16`` or ``off``
            (``training.precision.precision_policy``).
        strategy: a ``tf.distribute.Strategy`` (None: the default strategy).
        class_names: class names stored in the model's output layer (its label map).

    Returns:
        ``(model, policy)``: the ``keras.Model`` and the dtype policy it was built under.

    Example:
        >>> model, policy = build_transfer_model("resnet18", 3, input_size=32, weights=None)
        >>> model.output.shape, policy
        ((None, 3), 'float32')
    """
    import tensorflow as tf

    from keras_species.models.classifier import build_classifier
    from keras_species.models.heads import HeadConfig
    from keras_species.training.precision import precision_policy

    strategy = strategy or tf.distribute.get_strategy()
    head = HeadConfig(
        pooling=head_pooling, units=tuple(head_units), dropout=head_dropout, batch_norm=head_batch_norm
    )
    with precision_policy(precision) as policy, strategy.scope():
        model = build_classifier(
            backbone,
            num_classes,
            input_size=input_size,
            weights=weights,
            head=head,
            output="sigmoid" if multilabel else "softmax",
            class_names=class_names,
        )
    return model, policy


__all__ = ["UNFREEZE_MODES", "transfer_phases", "build_transfer_model"]
