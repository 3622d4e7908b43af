"""Multi-label tagging with a ResNet, the one-cycle policy and tuned thresholds (R4).

Method (R4: 14 tags, 20,000 images, 49% without a tag):

- Data: a multi-label CSV (a ``;``-separated ``labels`` column, or one 0/1 column per tag) or
  any multi-label source; audited. Split: the CSV's own ``split`` column when it has one, else
  iterative stratification for multi-label data (Sechidis et al. 2011) 80/10/10.
- Model: ResNet34 (ImageNet) at 224 px by default (any registry backbone), sigmoid outputs,
  binary cross-entropy.
- Training: SGD with weight decay 1e-4 and the one-cycle policy (Smith & Topin): the learning
  rate rises to 0.01 and anneals to 1e-7 while the momentum moves 0.95 → 0.85 → 0.95; batch 32,
  20 epochs; augmentation: random resized crop (8–100% of the area, aspect 3/4–4/3), horizontal
  flip, rotation ±25° (``r4``). ``best.keras`` keeps the epoch of best validation micro-F1.
- Evaluation on the test split: micro-F1, exact match, Hamming loss, per-tag average precision,
  against the majority label-set baseline (and "predict no tag"). Decision thresholds tuned on the
  validation split — one global threshold for micro-F1, and one per tag for that tag's own F1 — are
  applied to the test split next to the
  untuned 0.5; ``--thresholds`` picks the one saved with the model (in its output layer and in
  ``metrics.json``), which ``keras-species predict`` then uses.
- Sanity checks (R4): ``--sanity untrained`` scores the model before any training,
  ``--sanity head_only`` trains only the head with the same plan.

Run::

    python -m recipes.multilabel_resnet --data ../shared/data/aquarium_multilabel/labels.csv
    python -m recipes.multilabel_resnet --data tags.csv --backbone wide_resnet50_2 --image-size 128
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from keras_species.config import flag_help as _h
from keras_species.data.manifest import counted
from keras_species.recipe import (
    SINGLE_LABEL_HINT,
    RunResult,
    RunSettings,
    SourceSettings,
    TrainingClock,
    check_weights,
    data_section,
    load_best_model,
    open_run,
    recipe_main,
    recipe_need_splits,
    split_settings,
    weights_setting,
)

RECIPE = "multilabel_resnet"
SANITY_CHECKS = ("untrained", "head_only")
THRESHOLD_CHOICES = ("global", "per_class", "fixed")


@dataclass
class MultilabelResNetConfig(SourceSettings, RunSettings):
    """R4: multi-label ResNet, SGD + one-cycle, thresholds tuned on validation."""

    TASK = "multi"
    """The labels it trains on (:func:`~keras_species.recipe.recipe_task`): a set of tags per image."""
    NEED_SPLITS = ("train", "val", "test")
    """The splits it needs (:func:`~keras_species.recipe.recipe_need_splits`): val checkpoints
    the model and tunes the thresholds (reported with any --thresholds), test scores them."""

    # data
    data: str | None = field(default=None, metadata=_h("multi-label source: a CSV with a label-set column (or 0/1 tag columns), a COCO JSON, a saved manifest"))
    labels_col: str | None = field(default=None, metadata=_h("the CSV's ';'-separated label-set column (auto: labels/tags)"))
    split: Literal["auto", "stratified", "given"] = field(default="auto", metadata=_h(
        "auto: the CSV's split column when present, else iterative stratification"))
    ratios: tuple[float, ...] = field(default=(0.8, 0.1, 0.1), metadata=_h("train/val/test ratios of a stratified split"))
    audit: bool = field(default=True, metadata=_h("audit the images and drop corrupt ones"))
    # model
    backbone: str = field(default="resnet34", metadata=_h("registry backbone (R4: resnet18, resnet34 at 224, wide_resnet50_2 at 128)"))
    weights: str = field(default="imagenet", metadata=_h("imagenet, none, or a local .weights.h5 (resnet18/34: a converted file)"))
    image_size: int = field(default=224, metadata=_h("input side in pixels"))
    head_dropout: float = field(default=0.0, metadata=_h("dropout before the linear head"))
    # training
    batch_size: int = field(default=32, metadata=_h("batch size (per replica)"))
    epochs: int = field(default=20, metadata=_h("epochs of the one cycle"))
    learning_rate: float = field(default=0.01, metadata=_h("peak learning rate of the cycle"))
    final_learning_rate: float = field(default=1e-7, metadata=_h("learning rate at the end of the cycle"))
    div_factor: float = field(default=25.0, metadata=_h("start learning rate = peak / div_factor"))
    pct_start: float = field(default=0.3, metadata=_h("share of the steps spent warming up"))
    base_momentum: float = field(default=0.85, metadata=_h("momentum at the peak learning rate"))
    max_momentum: float = field(default=0.95, metadata=_h("momentum at the start and end"))
    weight_decay: float = field(default=1e-4, metadata=_h("SGD weight decay (R4: 1e-4 to 1e-3)"))
    train_batchnorm: bool = field(default=False, metadata=_h("let the backbone's BatchNorm layers train"))
    augment: str = field(default="r4", metadata=_h("augmentation preset (r4: resized crop 8-100%, flip, rotation 25)"))
    cache: str = field(default="memory", metadata=_h("decoded-image cache: memory, none, or a folder"))
    # evaluation
    thresholds: Literal["global", "per_class", "fixed"] = field(default="global", metadata=_h(
        "thresholds saved with the model and used by predict: tuned global, tuned per class, or --fixed-threshold"))
    fixed_threshold: float = field(default=0.5, metadata=_h("the untuned threshold"))
    sanity: tuple[str, ...] = field(default=(), metadata=_h("sanity checks to add: untrained, head_only"))


@dataclass
class MultilabelResult(RunResult):
    """:class:`~keras_species.recipe.RunResult` plus the threshold comparison.

    Attributes:
        threshold_rows: one row per threshold setting (and the baseline, sanity checks).
        thresholds: the thresholds saved with the model (a float or one per tag).
    """

    threshold_rows: list[dict] = field(default_factory=list)
    thresholds: object = None


def one_cycle_phase(
    config: MultilabelResNetConfig,
    name: str = "one_cycle",
    trainable: str = "all",
    steps_per_epoch: int | None = None,
):
    """R4's training phase: SGD + weight decay, one cycle ``lr`` ↔ ``final_learning_rate``.

    Args:
        config: the recipe's config.
        name: phase name.
        trainable: ``"all"`` (R4) or ``"frozen"`` (the head-only sanity check).
        steps_per_epoch: batches per epoch (the pipeline's cardinality is unknown when it may
            skip unreadable files).

    Returns:
        A ``training.plan.Phase``.

    Example:
        >>> one_cycle_phase(MultilabelResNetConfig()).schedule_params["final_div_factor"]
        4000.0
    """
    from keras_species.training.plan import Phase

    start = config.learning_rate / config.div_factor
    return Phase(
        name, epochs=config.epochs, trainable=trainable, optimizer="sgd",
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        schedule="onecycle", train_batchnorm=config.train_batchnorm,
        schedule_params={
            "div_factor": config.div_factor,
            "final_div_factor": round(start / config.final_learning_rate, 6),
            "pct_start": config.pct_start,
            "base_momentum": config.base_momentum,
            "max_momentum": config.max_momentum,
            **({"steps_per_epoch": int(steps_per_epoch)} if steps_per_epoch else {}),
        },
        monitor="val_micro_f1",
    )


def _row(name: str, thr, val: dict | None, test: dict) -> dict:
    return {
        "model": name,
        "threshold": (f"{float(thr):.3f}" if thr is not None and not hasattr(thr, "__len__")
                      else ("per tag" if thr is not None else "–")),
        "val_micro_f1": None if val is None else val["f1_micro"],
        "test_micro_f1": test["f1_micro"],
        "test_exact_match": test["exact_match"],
        "test_hamming_loss": test["hamming_loss"],
        "test_macro_f1": test["f1_macro"],
        "test_map": test["map"],
    }


def checked_weights(config: MultilabelResNetConfig) -> str | None:
    """The checks made before any work, on the settings in force (:func:`open_run`): ``--data``
    given, known ``--sanity`` checks, and the weights of the backbone at hand.

    Args:
        config: the settings (a resumed run's stored ones).

    Returns:
        The weights setting (``weights_setting(config.weights)``).

    Raises:
        ManifestError: no ``--data``. ValueError: an unknown sanity check.
        WeightsUnavailableError: the weights cannot be had (offline ImageNet weights).

    Example:
        >>> checked_weights(MultilabelResNetConfig(data="labels.csv", weights="none")) is None
        True
    """
    from keras_species.data.manifest import ManifestError

    if not config.data:
        raise ManifestError(
            "--data is required: a multi-label CSV (e.g. ../shared/data/aquarium_multilabel/"
            "labels.csv), a COCO JSON or a saved multi-label manifest")
    bad = [s for s in config.sanity if s not in SANITY_CHECKS]
    if bad:
        raise ValueError(f"--sanity {bad}: choose among {', '.join(SANITY_CHECKS)}")
    weights = weights_setting(config.weights)
    check_weights(config.backbone, weights, config.image_size)
    return weights


def run(config: MultilabelResNetConfig | None = None) -> MultilabelResult:
    """Train, tune the thresholds on validation, score test, save the thresholds with the model.

    Args:
        config: the settings (``data`` is required).

    Returns:
        A :class:`MultilabelResult`; the run folder holds ``config.json``, ``split.csv``,
        ``audit/``, ``history.csv``, ``best.keras`` (with the chosen thresholds), ``metrics.json``
        (``test`` at the chosen thresholds, ``thresholds``, ``threshold_comparison``, ``sanity``,
        and ``run.train_seconds``: the training time summed over the sessions of a killed run
        and its ``--resume``, :class:`~keras_species.recipe.TrainingClock`),
        ``predictions.csv``, ``plots/`` and ``report.md``.

    Raises:
        ManifestError: no ``data``, or a single-label source.

    Example:
        >>> run(MultilabelResNetConfig(data="tags.csv", backbone="resnet18", weights="none"))  # doctest: +SKIP
    """
    config = config or MultilabelResNetConfig()
    started = time.perf_counter()
    # checked on the settings in force: a resumed run's stored ones (its --data, its weights)
    run_folder, config, weights = open_run(RECIPE, config, checked_weights)

    # Keras comes with the modules below: a setting refused above is told without it
    import numpy as np

    from keras_species.data.prepare import build_datasets, prepare_data
    from keras_species.evaluation import thresholds as thr_mod
    from keras_species.evaluation.compare import comparison_table
    from keras_species.evaluation.evaluate import evaluate_and_report, predict_manifest
    from keras_species.evaluation.metrics import multilabel_metrics
    from keras_species.evaluation.report import label_set_text
    from keras_species.models.freezing import batchnorm_count, describe_batchnorm
    from keras_species.models.labels import set_thresholds
    from keras_species.training.callbacks import atomic_save_model
    from keras_species.training.distribute import get_strategy, scale_batch
    from keras_species.training.plan import train
    from keras_species.training.transfer import build_transfer_model

    root = run_folder.path

    prepared = prepare_data(
        config.data, **split_settings(config), seed=config.seed,
        audit=config.audit, audit_dir=root / "audit", split_file=root / "split.csv",
        load_options=config.load_options(labels_col=config.labels_col),
        task="multi", task_hint=SINGLE_LABEL_HINT,
        need_splits=recipe_need_splits(config),
        need_hint="thresholds are tuned on val and applied to test",
    )
    m = prepared.manifest
    print(prepared.summary())
    strategy = get_strategy(config.strategy)
    batch = scale_batch(config.batch_size, strategy)
    ds = build_datasets(m, config.image_size, batch, augment=config.augment, cache=config.cache,
                        seed=config.seed, deterministic=config.deterministic)
    names = m.class_names

    def build():
        model, policy = build_transfer_model(
            config.backbone, m.num_classes, input_size=config.image_size, weights=weights,
            head_dropout=config.head_dropout, multilabel=True, precision=config.mixed_precision,
            strategy=strategy, class_names=m.class_names)
        return model, policy

    val_m, test_m = m.split("val"), m.split("test")

    def predict(model):
        pv = predict_manifest(model, val_m, image_size=config.image_size, batch_size=batch)
        pt = predict_manifest(model, test_m, image_size=config.image_size, batch_size=batch)
        return pv, pt

    sanity_rows: list[dict] = []
    if "untrained" in config.sanity:
        untrained, _ = build()
        pv, pt = predict(untrained)
        sanity_rows.append(_row(
            "sanity: untrained", config.fixed_threshold,
            multilabel_metrics(pv.manifest.labels, pv.probs, names, thresholds=config.fixed_threshold),
            multilabel_metrics(pt.manifest.labels, pt.probs, names, thresholds=config.fixed_threshold)))

    model, policy = build()
    steps = -(-len(m.split("train")) // batch)
    phase = one_cycle_phase(config, steps_per_epoch=steps)
    clock = TrainingClock(run_folder, resume=config.resume)  # training seconds, summed over sessions
    with clock:
        trained = train(model, [phase], ds.train, ds.val, run_folder, task="multi",
                        resume=config.resume, verbose=config.verbose,
                        extra_callbacks=[clock.callback()])
    train_seconds = clock.total
    best = load_best_model(trained.best_path, trained.model)

    if "head_only" in config.sanity:
        head_model, _ = build()
        head = train(head_model, [one_cycle_phase(config, "head_only", "frozen", steps)],
                     ds.train, ds.val, root / "sanity_head_only", task="multi", verbose=config.verbose)
        pv, pt = predict(load_best_model(head.best_path, head.model))
        sanity_rows.append(_row(
            "sanity: head only", config.fixed_threshold,
            multilabel_metrics(pv.manifest.labels, pv.probs, names, thresholds=config.fixed_threshold),
            multilabel_metrics(pt.manifest.labels, pt.probs, names, thresholds=config.fixed_threshold)))

    # Thresholds tuned on validation (micro-F1), all applied to test.
    pv, pt = predict(best)
    yv, yt = pv.manifest.labels, pt.manifest.labels
    t_global, _ = thr_mod.tune_global_threshold(yv, pv.probs, "micro_f1")
    t_class, _ = thr_mod.tune_per_class_thresholds(yv, pv.probs, "micro_f1", global_threshold=t_global)
    settings = {"fixed": config.fixed_threshold, "global": t_global, "per_class": t_class}
    rows, scores = [], {}
    for key, t in settings.items():
        val = multilabel_metrics(yv, pv.probs, names, thresholds=t)
        test = multilabel_metrics(yt, pt.probs, names, thresholds=t)
        scores[key] = {"val_micro_f1": val["f1_micro"], "test_micro_f1": test["f1_micro"],
                       "test_exact_match": test["exact_match"],
                       "test_hamming_loss": test["hamming_loss"]}
        label = {"fixed": "untuned", "global": "global (tuned on val)",
                 "per_class": "per tag (tuned on val)"}[key]
        rows.append(_row(f"{config.backbone}, {label}", t, val, test))
    # the trivial answer to beat: always the training split's most frequent label set
    y_train = m.split("train").labels
    val0 = multilabel_metrics(yv, pv.probs, names, thresholds=config.fixed_threshold, train_labels=y_train)
    test0 = multilabel_metrics(yt, pt.probs, names, thresholds=config.fixed_threshold, train_labels=y_train)
    rows.append({"model": f"baseline: majority label set {label_set_text(test0['majority_label_set'])}",
                 "threshold": "–", "val_micro_f1": val0["majority_f1_micro"],
                 "test_micro_f1": test0["majority_f1_micro"],
                 "test_exact_match": test0["majority_baseline"],
                 "test_hamming_loss": test0["majority_hamming_loss"], "test_macro_f1": None})
    rows += sanity_rows
    chosen = settings[config.thresholds]

    # The chosen thresholds travel inside the model: predict() applies them.
    set_thresholds(best, chosen)
    atomic_save_model(best, run_folder.best_model_path)

    thresholds_block = {
        "chosen": config.thresholds,
        "saved": np.asarray(chosen).tolist(),
        "global": float(t_global),
        "per_class": {n: float(t) for n, t in zip(names, t_class)},
        "fixed": float(config.fixed_threshold),
        "scores": scores,
    }
    columns = ["model", "threshold", "val_micro_f1", "test_micro_f1", "test_exact_match",
               "test_hamming_loss", "test_macro_f1", "test_map"]
    table = comparison_table(rows, columns=columns, bold_best=False)
    per_tag = "\n".join(f"- {n}: {float(t):.3f}" for n, t in zip(names, t_class))
    sections = [
        data_section(prepared, ds),
        ("Model", f"`{config.backbone}` (weights `{weights}`), {config.image_size} px, sigmoid "
                  f"outputs, binary cross-entropy; {model.count_params():,} parameters. "
                  f"{counted(phase.epochs, 'epoch')} of SGD (weight decay {config.weight_decay:g}), one cycle "
                  f"{config.learning_rate / config.div_factor:.2g} → {config.learning_rate:g} → "
                  f"{config.final_learning_rate:g}, momentum {config.max_momentum} → "
                  f"{config.base_momentum} → {config.max_momentum}; augmentation `{config.augment}`. "
                  + describe_batchnorm(config.train_batchnorm, weights is not None, batchnorm_count(model))),
        ("Threshold tuning", (
            "Thresholds chosen on the validation split (the global one for micro-F1, each tag's for "
            f"that tag's own F1) and applied to the test split. The model is saved with the **{config.thresholds}** setting "
            f"({'per tag' if np.ndim(chosen) else f'{float(chosen):.3f}'}), which "
            "`keras-species predict` uses.\n\n" + table
            + f"\nPer-tag thresholds:\n{per_tag}\n")),
    ]
    evaluation = evaluate_and_report(
        best, m, run_folder, image_size=config.image_size, batch_size=batch,
        history=run_folder.history_path, config=config, thresholds=chosen,
        thresholds_tuned_on_val=config.thresholds != "fixed", monitor="val_micro_f1",
        title=f"{RECIPE} (R4): {config.backbone} — {root.name}",
        extra_metrics={
            "thresholds": thresholds_block,
            "threshold_comparison": rows,
            **({"sanity": sanity_rows} if sanity_rows else {}),
            "run": {"train_seconds": round(train_seconds, 1), "epochs": len(trained.history),
                    "params": int(model.count_params()), "policy": policy},
        },
        extra_sections=sections,
    )
    headline = (f"{config.thresholds} thresholds (untuned test micro-F1 "
                f"{scores['fixed']['test_micro_f1']:.3f}): {evaluation.headline()}")
    return MultilabelResult(
        run_dir=root, report_path=evaluation.report_path, metrics=evaluation.metrics,
        history=list(trained.history), best_model_path=run_folder.best_model_path,
        seconds=time.perf_counter() - started, headline=headline, model=best,
        threshold_rows=rows, thresholds=thresholds_block["saved"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recipes.multilabel_resnet [flags]``; returns the exit code."""
    return recipe_main(MultilabelResNetConfig, run, argv, prog="python -m recipes.multilabel_resnet",
                       description=__doc__.splitlines()[0])


__all__ = ["RECIPE", "MultilabelResNetConfig", "MultilabelResult", "one_cycle_phase", "run", "main"]

if __name__ == "__main__":
    sys.exit(main())
