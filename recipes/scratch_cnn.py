"""Scratch CNNs with k-fold cross-validation (R2's scratch models; R3's and R5's too).

Method (R2, "A Large Scale Fish Dataset"): hold out a test split; on the remaining train+val
images run 5-fold cross-validation of a CNN trained from random initialisation (R2: 4 blocks of
Conv 32/64/128/256 → ReLU → MaxPool, Flatten → Dense 1024 → Dense C, with batch norm and an extra
conv per block in its best variant), keeping each fold's epoch of lowest validation loss. Report
every fold's validation and test accuracy/loss and the test score of the *mean* of the five fold
models' predictions, with and without test-time augmentation; top-1 and top-5 accuracy,
precision, recall, the confusion matrix, confident mistakes and uncertain predictions.
``--ablation`` runs R2's grid (batch norm × extra conv, plus the regularised variant: dropout after
each block and one block fewer) and compares the variants in one table. ``--add-class DIR``
(repeatable) adds a class from another source, split on its own so that the original classes'
test images stay the same, and reports its precision/recall next to the original classes'.

``--arch`` takes any scratch model of the zoo (``r2_cnn``, ``r3_cnn``, ``r4_vgg``, ``r5_shallow``,
``r5_deep``, ``r5_regularised``; ``keras_species.models.scratch``).

Run::

    python -m recipes.scratch_cnn --data demo --image-size 64 --epochs 10
    python -m recipes.scratch_cnn --ablation --k 5
    python -m recipes.scratch_cnn --add-class extra/zebrasoma_flavescens
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keras_species.config import flag_help as _help
from keras_species.recipe import (
    MULTILABEL_HINT,
    SINGLE_LABEL_MONITORS,
    TEST_SPLIT_HINT,
    TEST_SPLIT_REFUSED,
    RunResult,
    RunSettings,
    SettingError,
    SourceSettings,
    data_section,
    monitor_setting,
    open_run,
    recipe_main,
    recipe_need_splits,
    resolve_monitor,
    split_settings,
    training_finished,
)
from keras_species.training.runs import RunFolder

RECIPE = "scratch_cnn"
SCRATCH_NAMES = ("r2_cnn", "r3_cnn", "r4_vgg", "r5_shallow", "r5_deep", "r5_regularised")


@dataclass
class ScratchCNNConfig(SourceSettings, RunSettings):
    """Scratch CNN with k-fold cross-validation, the ensemble of folds, TTA and added classes (R2)."""

    TASK = "single"
    """The labels it trains on (:func:`~keras_species.recipe.recipe_task`): one class per image."""

    data: str = field(default="demo", metadata=_help(
        "'demo', a folder of class subfolders, a CSV, an iNat/COCO JSON or a saved manifest"))
    group_regex: str | None = field(default=None, metadata=_help(
        "regex of the group id in file names (e.g. 'fish_(\\d+)_'); the demo has its own"))
    split: Literal["auto", "stratified", "group", "given"] = field(default="auto", metadata=_help(
        "how the test split is held out (auto: group-aware when the data has groups)",
        refused=TEST_SPLIT_REFUSED))
    ratios: tuple[float, ...] = field(default=(0.69, 0.17, 0.14), metadata=_help(
        "train/val/test ratios (R2: 6480/1620/1330); train+val are cross-validated"))
    audit: bool = field(default=True, metadata=_help("audit the images and drop corrupt ones"))
    arch: str = field(default="r2_cnn", metadata=_help(
        "scratch model: " + ", ".join(SCRATCH_NAMES)))
    batch_norm: bool = field(default=True, metadata=_help(
        "r2_cnn: batch norm after each conv (R2's best: on)"))
    extra_conv: bool = field(default=True, metadata=_help(
        "r2_cnn: a second same-size conv per block (R2's best: on)"))
    dropout: float | None = field(default=None, metadata=_help(
        "dropout of the arch (r2_cnn: after each block; none = the arch's default)"))
    blocks: int | None = field(default=None, metadata=_help(
        "r2_cnn: conv blocks (4; the regularised variant 3); none = the arch's default"))
    arch_flags: dict = field(default_factory=dict, metadata=_help(
        "other flags of the arch as JSON, e.g. '{\"dense_units\": 512}'"))
    image_size: int | None = field(default=None, metadata=_help(
        "input side in pixels; none = the arch's report size (r2_cnn, r3_cnn: 224; r4_vgg: 128; "
        "r5_*: 200)"))
    batch_size: int = field(default=32, metadata=_help("batch size per replica"))
    epochs: int = field(default=10, metadata=_help("epochs per fold"))
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = field(
        default="adam", metadata=_help("optimizer (R5 used rmsprop)"))
    learning_rate: float = field(default=1e-3, metadata=_help("learning rate"))
    monitor: str = field(default="val_loss", metadata=_help(
        "each fold keeps its best epoch on this (R2: lowest val loss; auto: val_accuracy): "
        + SINGLE_LABEL_MONITORS))
    early_stopping_patience: int | None = field(default=None, metadata=_help(
        "epochs without improvement before a fold stops (R3: 10); none = off"))
    augment: str = field(default="none", metadata=_help(
        "training augmentation preset (R2's data came pre-augmented: none; R5: r5)"))
    class_weight: str = field(default="none", metadata=_help(
        "balanced, none, or a JSON file {class name: weight}"))
    k: int = field(default=5, metadata=_help("cross-validation folds (R2: 5)"))
    group_aware: bool = field(default=True, metadata=_help(
        "keep each group (e.g. one fish's frames) inside one fold, when the data has groups"))
    tta: str = field(default="flips", metadata=_help(
        "test-time augmentation preset scored next to plain inference (hflip, flips, "
        "flips_rot90, five_crop; none = off)"))
    ablation: bool = field(default=False, metadata=_help(
        "run R2's grid: batch norm x extra conv (r2_cnn), plus the regularised variant"))
    ablation_regularised: bool = field(default=True, metadata=_help(
        "with --ablation, add R2's regularised variant (dropout after each block, 3 blocks)"))
    regularised_dropout: float = field(default=0.25, metadata=_help(
        "dropout of the regularised variant"))
    add_class: list[str] = field(default_factory=list, metadata=_help(
        "folder of a new class's images from another source (repeatable); split on its own"))
    cache: Literal["memory", "none"] = field(default="memory", metadata=_help(
        "keep decoded images in memory between epochs and folds, or not"))


@dataclass
class ScratchCNNResult(RunResult):
    """:class:`~keras_species.recipe.RunResult` plus the cross-validations.

    Attributes:
        cv: variant name → its :class:`~keras_species.training.crossval.CVResult`.
        comparison: the ablation table's rows (empty without ``--ablation``).
        chosen: the variant the report details (lowest mean validation loss).
        added_classes: names of the classes added with ``--add-class``.
    """

    cv: dict = field(default_factory=dict, repr=False)
    comparison: list[dict] = field(default_factory=list)
    chosen: str = ""
    added_classes: list[str] = field(default_factory=list)


def variants(config: ScratchCNNConfig) -> dict[str, dict[str, Any]]:
    """The architectures to cross-validate: name → flags of ``build_scratch``.

    Without ``ablation``: the configured model. With it (``r2_cnn`` only): R2's grid, batch norm
    on/off × one or two convs per block, plus the regularised variant (two convs, batch norm,
    dropout after each block, three blocks).

    Args:
        config: the recipe's config.

    Returns:
        An ordered dict of variant name → flags.

    Example:
        >>> list(variants(ScratchCNNConfig(ablation=True)))
        ['1conv', '1conv_bn', '2conv', '2conv_bn', '2conv_bn_regularised']
    """
    from keras_species.backbone_catalog import (
        REGULARISED_VARIANT,
        SCRATCH_ARCH_FACTS,
        backbone_key,
        scratch_variants,
    )

    arch = backbone_key(config.arch)
    if arch not in SCRATCH_ARCH_FACTS:  # told without importing Keras
        raise ValueError(f"--arch {config.arch!r}: choose one of {sorted(SCRATCH_ARCH_FACTS)}")

    from keras_species.models.scratch import SCRATCH_ARCHS

    known = SCRATCH_ARCHS[arch].flags
    flags: dict[str, Any] = {}
    for name in ("batch_norm", "extra_conv"):
        if name in known:
            flags[name] = getattr(config, name)
    for name in ("dropout", "blocks"):
        value = getattr(config, name)
        if value is not None:
            if name not in known:
                raise ValueError(f"--{name} does not apply to {arch} (its flags: {sorted(known)})")
            flags[name] = value
    unknown = sorted(set(config.arch_flags) - set(known))
    if unknown:  # said now, before the run folder is made (build_scratch would say it later)
        raise ValueError(f"--arch-flags: {arch} has no flag(s) {unknown}; its flags: "
                         f"{', '.join(sorted(known))}")
    flags.update(config.arch_flags)
    if not config.ablation:
        return {arch: flags}
    if not {"batch_norm", "extra_conv"} <= set(known):
        raise ValueError(f"--ablation varies batch norm and extra conv: use --arch r2_cnn, not {arch}")
    grid: dict[str, dict[str, Any]] = {}
    for name in scratch_variants(arch, ablation=True, regularised=config.ablation_regularised):
        if name == REGULARISED_VARIANT:
            grid[name] = {**flags, "batch_norm": True, "extra_conv": True,
                          "dropout": config.regularised_dropout, "blocks": 3}
        else:  # "1conv", "2conv_bn"...
            grid[name] = {**flags, "batch_norm": name.endswith("_bn"),
                          "extra_conv": name.startswith("2conv")}
    return grid


def checked_settings(config: ScratchCNNConfig) -> dict[str, dict[str, Any]]:
    """The settings' checks that need more than one field, before the run folder is made:
    ``--image-size`` is one the scratch models take, every ``--add-class`` folder exists, and the
    variants (:func:`variants`) can be built.

    Args:
        config: the recipe's config.

    Returns:
        :func:`variants` of ``config``.

    Raises:
        SettingError: an ``--image-size`` below the scratch models' smallest input.
        ValueError: an ``--add-class`` folder that does not exist, or a bad ``--arch`` or flag.

    Example:
        >>> list(checked_settings(ScratchCNNConfig()))
        ['r2_cnn']
    """
    from keras_species.backbone_catalog import SCRATCH_MIN_INPUT_SIZE

    if config.image_size is not None and config.image_size < SCRATCH_MIN_INPUT_SIZE:  # refused once the run had begun
        raise SettingError(f"--image-size {config.image_size}: the scratch CNNs need at least "
                           f"{SCRATCH_MIN_INPUT_SIZE} px (R2 used 224)")
    for folder in config.add_class:
        if not os.path.isdir(os.path.expanduser(folder)):
            raise ValueError(f"--add-class {folder!r} is not a folder: give the folder of the new "
                             "class's images (one subfolder per class, or the images themselves)")
    return variants(config)


def _merge_repeated(argv: Sequence[str], flag: str) -> list[str]:
    """``--flag a --flag b`` → ``--flag a b`` (the config parser keeps only the last list)."""
    values: list[str] = []
    rest: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        if argv[i] == flag:
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
        elif argv[i].startswith(flag + "="):
            values.append(argv[i].split("=", 1)[1])
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    return rest + ([flag, *values] if values else [])


def _fold_lines(variant_dir: Path, resume: bool) -> Callable[[str], None]:
    """The ``progress`` of ``cross_validate``: prints its line before each fold (whatever
    ``--verbose``, as the data summary), saying when a resumed run's fold trained already and
    is only evaluated again. It is called once per fold, in order (``fold0``, ``fold1``...)."""
    folds = itertools.count()

    def say(line: str) -> None:
        again = resume and training_finished(RunFolder(variant_dir / f"fold{next(folds)}"))
        print(line + (": trained already, evaluating it" if again else ""), flush=True)

    return say


def tta_headline(headline: str, metrics: dict) -> str:
    """The closing line's test score, with the score under test-time augmentation after it
    when TTA ran (``metrics["test_tta"]``), as the report shows both.

    Args:
        headline: ``EvaluationResult.headline()``.
        metrics: the run's metrics (``metrics.json``).

    Returns:
        The headline, e.g. ``"test accuracy 0.800 vs majority baseline 0.509 (55 test images),
        with TTA (flips) 0.820"``.

    Example:
        >>> tta_headline("test accuracy 0.800 (55 test images)",
        ...              {"test_tta": {"transforms": "flips", "accuracy": 0.82}})
        'test accuracy 0.800 (55 test images), with TTA (flips) 0.820'
    """
    tta = metrics.get("test_tta") or {}
    if not isinstance(tta.get("accuracy"), (int, float)):
        return headline
    transforms = tta.get("transforms")
    named = transforms if isinstance(transforms, str) else ", ".join(map(str, transforms or []))
    return f"{headline}, with TTA ({named}) {tta['accuracy']:.3f}" if named else (
        f"{headline}, with TTA {tta['accuracy']:.3f}")


def input_size(config: ScratchCNNConfig) -> int:
    """The input side a run trains at: ``--image-size``, else the arch's report size (before
    stop 34, 224 whatever the arch: ``r5_deep`` had 6.5M parameters where R5's has about 5M).

    Example:
        >>> input_size(ScratchCNNConfig(arch="r5_deep")), input_size(ScratchCNNConfig(image_size=64))
        (200, 64)
    """
    from keras_species.backbone_catalog import SCRATCH_ARCH_FACTS

    if config.image_size is not None:
        return int(config.image_size)
    return SCRATCH_ARCH_FACTS[config.arch.lower().replace("-", "_")].default_size


def run(config: ScratchCNNConfig) -> ScratchCNNResult:
    """Cross-validate the scratch model(s), score the ensembles of folds, write the report.

    Args:
        config: the settings.

    Returns:
        A :class:`ScratchCNNResult`; the run folder holds ``config.json``, ``split.csv``, one
        folder per variant (``<variant>/fold<i>/`` with ``history.csv`` and ``best.keras``,
        ``folds.csv``, ``crossval_probs.npz``), ``best.keras`` (the chosen variant's ensemble of
        folds), ``history.csv`` (its folds one after the other), ``metrics.json``,
        ``predictions.csv``, ``plots/``, ``comparison.csv`` (with ``--ablation``) and
        ``report.md``.

    Example:
        >>> result = run(ScratchCNNConfig(data="demo", image_size=64, k=3))  # doctest: +SKIP
        >>> print(result.headline)  # doctest: +SKIP
    """
    started = time.perf_counter()
    # a bad --arch or flag fails before any data is read; of the settings in force (a resumed
    # run's stored ones)
    run_folder, config, grid = open_run(RECIPE, config, checked_settings)

    # Keras comes with the modules below: a setting refused above is told without it
    import numpy as np

    from keras_species.data.prepare import class_weight_setting, prepare_data
    from keras_species.evaluation.compare import (
        compare_models,
        comparison_table,
        write_comparison_csv,
    )
    from keras_species.evaluation.evaluate import evaluate_and_report
    from keras_species.evaluation.report import write_metrics_json
    from keras_species.evaluation.tables import per_class_by_origin
    from keras_species.models.scratch import build_scratch
    from keras_species.training.callbacks import atomic_save_model, write_history
    from keras_species.training.crossval import cross_validate, fold_ensemble
    from keras_species.training.distribute import get_strategy, scale_batch
    from keras_species.training.plan import Phase
    from keras_species.training.precision import precision_policy

    split_file = run_folder.path / "split.csv"
    prepared = prepare_data(
        config.data, load_options=config.load_options(), **split_settings(config),
        seed=config.seed, audit=config.audit, audit_dir=run_folder.path / "audit",
        split_file=split_file, task="single", task_hint=MULTILABEL_HINT,
        need_splits=recipe_need_splits(config), need_hint=TEST_SPLIT_HINT, add_class=config.add_class,
    )
    print(prepared.summary(), flush=True)  # the data and its split, as every recipe says first
    m = prepared.manifest
    # a quantity this data's run does not log (top-5 of 5 classes or fewer): said now, not
    # after the first fold's first epoch
    resolve_monitor(config.monitor, multilabel=False, num_classes=m.num_classes)
    added = prepared.added_classes
    if config.add_class and not added:  # resumed from a split saved before the sidecar kept them
        from keras_species.data.new_classes import load_class_dirs

        added = [c for c in load_class_dirs(config.add_class).class_names if c in m.class_names]
    in_trainval = np.array([s in ("train", "val") for s in m.splits])
    trainval, test = m.subset(in_trainval), m.split("test")
    group_aware = config.group_aware and m.groups is not None
    largest = int(np.argmax(trainval.class_counts()))
    if config.k > trainval.class_counts()[largest]:  # before any fold, in the flag's words
        held = int(test.class_counts()[largest])
        raise SettingError(
            f"--k {config.k}: the largest class, {m.class_names[largest]}, has "
            f"{int(trainval.class_counts()[largest])} images in train+val ({held} more are held "
            f"out for test), and every fold needs one: give --k {int(trainval.class_counts()[largest])} or less")

    strategy = get_strategy(config.strategy)
    batch = scale_batch(config.batch_size, strategy)
    arch = config.arch.lower().replace("-", "_")
    size = input_size(config)
    tta = None if config.tta.lower() == "none" else config.tta
    phases = [Phase(
        "train", epochs=config.epochs, optimizer=config.optimizer,
        learning_rate=config.learning_rate, monitor=monitor_setting(config.monitor),
        early_stopping_patience=config.early_stopping_patience,
    )]

    def builder(flags: dict[str, Any]):
        def build():
            with precision_policy(config.mixed_precision), strategy.scope():
                return build_scratch(
                    arch, m.num_classes, size, class_names=m.class_names, **flags
                )
        return build

    results, params = {}, {}
    for number, (name, flags) in enumerate(grid.items(), 1):
        params[name] = builder(flags)().count_params()
        if len(grid) > 1:  # which variant the fold lines below belong to
            print(f"variant {number}/{len(grid)}: {name} ({params[name]:,} parameters)", flush=True)
        results[name] = cross_validate(
            builder(flags), trainval, test, k=config.k, seed=config.seed, group_aware=group_aware,
            phases=phases, image_size=size, batch_size=batch,
            augment=None if config.augment == "none" else config.augment,
            sample_weights=class_weight_setting(config.class_weight),
            cache=config.cache == "memory", tta=tta, run_dir=run_folder.path / name,
            resume=config.resume, verbose=config.verbose,
            progress=_fold_lines(run_folder.path / name, config.resume),
        )

    # The report details the variant of lowest mean validation loss (chosen without the test set).
    chosen = min(results, key=lambda n: results[n].summary()["val_loss_mean"])
    cv = results[chosen]
    comparison: list[dict] = []
    sections = [data_section(prepared)]
    if len(results) > 1:
        comparison = compare_models({
            n: {"probs": r.ensemble_probs, "y_true": r.y_test, "params": params[n],
                "val_loss": r.summary()["val_loss_mean"],
                "val_acc": r.summary()["val_accuracy_mean"]}
            for n, r in results.items()
        })
        for row in comparison:
            r = results[row["model"]]
            row["flags"] = grid[row["model"]]
            row["test_acc_tta"] = r.ensemble_tta["accuracy"] if r.ensemble_tta else None
        columns = ["model", "params", "val_loss", "val_acc", "test_loss", "test_acc",
                   "test_acc_tta", "top5", "macro_auc", "unique_correct", "unique_wrong"]
        columns = [c for c in columns if any(row.get(c) is not None for row in comparison)]
        write_comparison_csv(run_folder.path / "comparison.csv", comparison, columns)
        sections.append((
            "Ablation (ensemble of folds on the test set)",
            f"Validation columns: mean over the {config.k} folds. Test columns: the mean of the "
            f"fold models' probabilities. The report details `{chosen}` (lowest mean val loss).\n\n"
            + comparison_table(comparison, columns=columns),
        ))
    spread = cv.summary()
    sections.append((
        f"Cross-validation of {chosen} ({cv.k} folds)",
        f"Each fold model keeps its epoch of best `{monitor_setting(config.monitor) or 'val_accuracy'}`. "
        "The **ensemble** row scores "
        f"the mean of the {cv.k} fold models' test probabilities (the model saved as "
        "`best.keras`, whose results are above). Over the folds (mean ± standard deviation): "
        f"val accuracy {spread['val_accuracy_mean']:.4f} ± {spread['val_accuracy_std']:.4f}, "
        f"test accuracy {spread['test_accuracy_mean']:.4f} ± {spread['test_accuracy_std']:.4f}."
        "\n\n" + cv.fold_table_markdown(),
    ))
    if added:
        sections.append((
            "Added classes",
            f"{', '.join(added)} added from {', '.join(config.add_class)} and split on their "
            "own; the original classes' test images are unchanged.\n\n"
            + per_class_by_origin(cv.ensemble["per_class"], added),
        ))

    ensemble = fold_ensemble(cv.load_models(), name=f"{arch}_fold_ensemble")
    atomic_save_model(ensemble, run_folder.best_model_path)
    history = cv.history_rows()
    write_history(run_folder.history_path, history)
    evaluated = m.with_splits(["train" if t else s for t, s in zip(in_trainval, m.splits)])
    ev = evaluate_and_report(
        ensemble, evaluated, run_folder, image_size=size, batch_size=batch,
        # the report's settings show the size trained at; config.json keeps the setting as given
        # (null: the arch's size, so --config of it with another --arch takes that arch's)
        history=run_folder.history_path, config=dataclasses.replace(config, image_size=size), tta=tta,
        monitor=monitor_setting(config.monitor) or "val_accuracy",  # each fold's kept epoch
        title=f"scratch_cnn — {arch}{'' if chosen == arch else f' ({chosen})'}, "
              f"{cv.k}-fold ensemble",
        extra_metrics={"folds": cv.fold_rows(), **({"added_classes": added} if added else {})},
        extra_sections=sections,
    )
    # metrics.json only: the report's sections above show them (the report would list each
    # number of these blocks again, in a table of its own)
    ev.metrics.update({
        "crossval": spread,
        **({"variants": {n: r.summary() for n, r in results.items()},
            "comparison": comparison} if comparison else {}),
    })
    write_metrics_json(run_folder.metrics_path, ev.metrics)
    run_folder.write_state({"finished": True, "variants": list(results)})
    return ScratchCNNResult(
        run_dir=run_folder.path, report_path=Path(ev.report_path), metrics=ev.metrics,
        history=history, best_model_path=run_folder.best_model_path,
        seconds=time.perf_counter() - started,
        headline=f"{chosen}: {tta_headline(ev.headline(), ev.metrics)}, {cv.k}-fold ensemble",
        model=ensemble,
        cv=results, comparison=comparison, chosen=chosen, added_classes=added,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recipes.scratch_cnn``: parse the flags, run, print where the report is.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    argv = _merge_repeated(sys.argv[1:] if argv is None else argv, "--add-class")
    return recipe_main(ScratchCNNConfig, run, argv, prog="python -m recipes.scratch_cnn",
                       description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
