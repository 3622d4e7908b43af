"""iNaturalist species with VGG16: cached features, a frozen base, then fine-tuning (R5).

Method (R5: iNaturalist, the most frequent 100 of 1,003 species, 58,226 images):

- Data: an iNaturalist/COCO annotation JSON (or a folder of class folders), audited (modes,
  sizes, corrupt files; ``audit/``); non-RGB images (greyscale, CMYK...) are dropped, as R5 did;
  only the most frequent 10% of the classes are kept (``--top-classes``, or a count with
  ``--top-classes-count`` for small data sets, 2 up to the number of classes: a larger count
  is refused before the run folder is made); split 60/20/20 per class (``--ratios``); images
  resized to 200×200. RMSprop, categorical cross-entropy, batch 128 throughout.
- Split (``--split``, as the other recipes scored on a test split): ``auto`` (default) keeps a
  CSV's own split column when every row has one (``--ratios`` are then not used: a warning says
  so), else splits *group-aware* when the data has group ids (``--group-regex``, a CSV's group
  column: the images of one group never sit on two sides), else R5's per-class stratified split;
  ``stratified`` ignores the groups, ``group`` insists on them, ``given`` takes the CSV's column.
- (a) Feature extraction without augmentation: VGG16 (ImageNet) runs once over every image, its
  features are cached on disk (``training.features``), and a dense classifier (Dense 256, dropout
  0.5) is trained on them.
- (b) The frozen VGG16 base inside the model, same dense top, trained with augmentation
  (rotation ±40°, shifts and zoom 20%, horizontal flip: ``r5``).
- (c) From (b), the last 4 conv layers of VGG16 and the top are fine-tuned at a very low learning
  rate (RMSprop 1e-5, 50 epochs). ``--stages c`` runs (b) too, and says so.
- Optionally R5's scratch CNNs (``--scratch shallow,deep,regularised``) on the same split.
- Evaluation on the test split: test accuracy vs loss of every model (scatter), top-5 accuracy
  vs macro AUC (scatter), one comparison table (parameters, val/test loss and accuracy, top-5,
  macro AUC, unique hits and misses), and for the model of best validation accuracy the full
  report with averaged precision–recall curves and the curves of 10 random classes.

Run::

    python -m recipes.inaturalist_vgg16 --data inat/train2017.json
    python -m recipes.inaturalist_vgg16 --data my_species/ --top-classes-count 20 --scratch shallow,deep
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keras_species.config import flag_help as _h
from keras_species.recipe import (
    MULTILABEL_HINT,
    TEST_SPLIT_HINT,
    TEST_SPLIT_REFUSED,
    RunResult,
    RunSettings,
    SettingError,
    SourceSettings,
    check_weights,
    data_section,
    load_best_model,
    open_run,
    recipe_main,
    recipe_need_splits,
    split_settings,
    weights_setting,
)

RECIPE = "inaturalist_vgg16"
STAGES = ("a", "b", "c")
SCRATCH = ("shallow", "deep", "regularised")
R5_SCORES = {"a_features": 0.33, "b_frozen": 0.26, "c_fine_tune": 0.37, "scratch_shallow": 0.11,
             "scratch_deep": 0.17, "scratch_regularised": 0.24}
"""R5's test accuracies (on its data), shown next to ours."""


@dataclass
class INaturalistVGG16Config(SourceSettings, RunSettings):
    """R5: VGG16 feature extraction, frozen base with augmentation, fine-tuning of 4 conv layers."""

    TASK = "single"
    """The labels it trains on (:func:`~keras_species.recipe.recipe_task`): one class per image."""
    NEED_SPLITS = ("train", "val", "test")
    """The splits it needs (:func:`~keras_species.recipe.recipe_need_splits`): val checkpoints
    and compares every stage and scratch CNN, test scores them."""
    RESUME_FINISHED = "re-evaluating its models (best.keras chosen again)"
    """What ``--resume`` does with a finished run (:func:`~keras_species.recipe.start_run`): every
    stage and scratch CNN is scored again, nothing trains."""

    # data
    data: str | None = field(default=None, metadata=_h("an iNaturalist/COCO JSON, a folder of class folders, a CSV or a saved manifest"))
    group_regex: str | None = field(default=None, metadata=_h("regex whose first group is an image's group id"))
    top_classes: float = field(default=0.1, metadata=_h("keep this share of the most frequent classes (R5: 0.1)"))
    top_classes_count: int | None = field(default=None, metadata=_h("keep this many of the most frequent classes instead (small data sets)"))
    split: Literal["auto", "stratified", "group", "given"] = field(
        default="auto", metadata=_h("auto: the data's own split, else group-aware when it has groups, else stratified (R5)",
                                    refused=TEST_SPLIT_REFUSED))
    ratios: tuple[float, ...] = field(default=(0.6, 0.2, 0.2), metadata=_h("train/val/test ratios, per class"))
    clean_policy: Literal["drop_non_rgb", "convert"] = field(default="drop_non_rgb", metadata=_h("non-RGB images: drop them (R5) or convert them"))
    image_size: int = field(default=200, metadata=_h("input side in pixels (R5: 200)"))
    batch_size: int = field(default=128, metadata=_h("batch size (R5: 128, later 256)"))
    cache: str = field(default="memory", metadata=_h("decoded-image cache: memory, none, or a folder"))
    # VGG16 stages
    stages: str = field(default="a,b,c", metadata=_h("stages to run: a (features), b (frozen base), c (fine-tune; needs b)"))
    weights: str = field(default="imagenet", metadata=_h("VGG16 weights: imagenet, none, or a local .h5"))
    head_units: tuple[int, ...] = field(default=(256,), metadata=_h("hidden Dense widths of the top"))
    head_dropout: float = field(default=0.5, metadata=_h("dropout after each hidden Dense"))
    feature_pooling: Literal["flatten", "avg"] = field(default="flatten", metadata=_h("how the top reads VGG16's last feature map"))
    feature_cache: str = field(default="~/.cache/keras_species/features", metadata=_h("folder of cached features (none: no cache)"))
    features_epochs: int = field(default=30, metadata=_h("(a) epochs of the dense classifier"))
    features_learning_rate: float = field(default=2e-5, metadata=_h("(a) RMSprop learning rate"))
    frozen_epochs: int = field(default=30, metadata=_h("(b) epochs with the frozen base"))
    frozen_learning_rate: float = field(default=2e-5, metadata=_h("(b) RMSprop learning rate"))
    augment: str = field(default="r5", metadata=_h("(b), (c) and the regularised scratch CNN: augmentation preset"))
    fine_tune_epochs: int = field(default=50, metadata=_h("(c) epochs"))
    fine_tune_learning_rate: float = field(default=1e-5, metadata=_h("(c) RMSprop learning rate (very low)"))
    unfreeze_conv: int = field(default=4, metadata=_h("(c) conv layers of VGG16 unfrozen, counted from the top"))
    # scratch models
    scratch: str = field(default="", metadata=_h("R5's scratch CNNs to add: shallow,deep,regularised (empty: none)"))
    scratch_epochs: int = field(default=50, metadata=_h("epochs of each scratch CNN"))
    scratch_learning_rate: float = field(default=1e-3, metadata=_h("RMSprop learning rate of the scratch CNNs"))

    def check(self) -> None:
        """The shared checks (:func:`~keras_species.recipe.check_settings`), then
        ``--fine-tune-epochs`` at least 1: the shared rule lets 0 skip the transfer recipes'
        phase 2, but here stage c is skipped by leaving it out of ``--stages``, and 0 epochs
        would stop the run only after stage b's training.

        Raises:
            SettingError: a bad setting, naming its flag and the fix.

        Example:
            >>> INaturalistVGG16Config(fine_tune_epochs=0).check()
            Traceback (most recent call last):
            ...
            keras_species.recipe.SettingError: --fine-tune-epochs 0: must be a whole number at least 1; to skip stage c leave it out of --stages, e.g. --stages a,b
        """
        super().check()
        if not self.resume and self.fine_tune_epochs < 1:  # a resumed run keeps its stored settings
            raise SettingError(f"--fine-tune-epochs {self.fine_tune_epochs}: must be a whole number "
                               "at least 1; to skip stage c leave it out of --stages, e.g. --stages a,b")


@dataclass
class INaturalistResult(RunResult):
    """:class:`~keras_species.recipe.RunResult` plus the comparison of every model.

    Attributes:
        comparison: ``compare_models`` rows (``model``, ``params``, ``val_loss``, ``val_acc``,
            ``test_loss``, ``test_acc``, ``top5``, ``macro_auc``, unique hits/misses).
        best: the model of best validation accuracy (detailed in the report).
    """

    comparison: list[dict] = field(default_factory=list)
    best: str = ""


def _names(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    """``"a, b"`` → ``["a", "b"]`` in ``allowed``'s order; unknown names raise ValueError."""
    parts = [p.strip().lower() for p in text.replace(" ", ",").split(",") if p.strip()]
    bad = [p for p in parts if p not in allowed]
    if bad:
        raise ValueError(f"{flag} {bad}: choose among {', '.join(allowed)}")
    return [a for a in allowed if a in parts]


def checked_models(config: INaturalistVGG16Config) -> tuple[list[str], list[str], str | None]:
    """The VGG16 stages and scratch CNNs of ``config`` and VGG16's weights, checked before any
    data is read: ``--data`` is given, the names are known, something is to run, and VGG16's
    weights can be had when a stage uses them (offline ImageNet fails here).

    ``run`` calls it on the settings in force (:func:`~keras_species.recipe.open_run`): a
    resumed run's stored ones, so ``--resume`` alone continues the run's own models on its own
    data.

    Args:
        config: the settings.

    Returns:
        ``(stages, scratch CNNs, weights)``; stage ``b`` is added when ``c`` (which starts
        from it) is asked for.

    Raises:
        ManifestError: no ``--data``. ValueError: an unknown stage or scratch CNN, or nothing
        to run. WeightsUnavailableError: VGG16's weights cannot be had.

    Example:
        >>> checked_models(INaturalistVGG16Config(data="inat.json", stages="c", weights="none"))  # doctest: +SKIP
        (['b', 'c'], [], None)
    """
    from keras_species.data.manifest import ManifestError

    if not config.data:
        raise ManifestError("--data is required: an iNaturalist/COCO JSON or a folder of class folders")
    stages = _names(config.stages, STAGES, "--stages")
    if "c" in stages and "b" not in stages:
        stages = _names("b," + ",".join(stages), STAGES, "--stages")  # (c) starts from (b)
    scratch = _names(config.scratch, SCRATCH, "--scratch")
    if not stages and not scratch:
        raise ValueError("nothing to run: give --stages and/or --scratch")
    weights = weights_setting(config.weights)
    if stages:
        check_weights("vgg16", weights, config.image_size)
    _check_top_classes_count(config)
    return stages, scratch, weights


def _check_top_classes_count(config: INaturalistVGG16Config) -> None:
    """Before the run folder: ``--top-classes-count`` must not exceed the classes of ``--data``
    (a new run's; a resumed one reads its saved split). A CSV or JSON is read with
    ``data.prepare.read_ahead``, whose reading the labelled-data check and ``prepare_data`` then
    take (the file is parsed once); a folder's files are listed (quick)."""
    count, data = config.top_classes_count, config.data
    if config.resume or not isinstance(data, str) or "://" in data:
        return
    from keras_species.data import prepare, sources

    options = config.load_options()
    if data == "demo" or Path(data).expanduser().is_dir():
        m = sources.load(data, **options)
    else:
        m = prepare.read_ahead(data, options)
    c = int((m.class_counts() > 0).sum())  # a category without images is no class to keep
    if count and count > c:
        prepare.forget_read_ahead()  # no run follows
        raise SettingError(f"--top-classes-count {count}: --data {data} has {c} classes with images: "
                           f"give 2 to {c} (a classifier needs 2 classes or more)")
    share = config.top_classes
    if not count and share and c >= 2 and max(1, math.floor(share * c + 1e-9)) < 2:
        prepare.forget_read_ahead()  # before: refused once the run folder and its audit existed
        least = math.ceil(2 / c * 100) / 100
        raise SettingError(f"--top-classes {share:g} keeps 1 class of the {c} of --data {data}, and a "
                           f"classifier needs 2 or more: give --top-classes {least:g} or more, or "
                           "--top-classes-count N")


def _features_stage(config: INaturalistVGG16Config, m, weights: str | None, folder: Path):
    """Stage (a): VGG16 features (cached on disk), a dense classifier trained on them, the two
    joined into one model. Writes ``folder/history.csv`` (one row an epoch, phase
    ``features``), ``head.keras``, then ``model.keras`` (which a resume loads instead of
    training again) and a finished ``state.json`` (so ``runs`` counts the stage as trained)."""
    import keras

    from keras_species.models.classifier import feature_extractor
    from keras_species.training.callbacks import atomic_save_model, write_history
    from keras_species.training.features import attach_head, extract_features, train_dense_head
    from keras_species.training.runs import RunFolder

    size, batch = config.image_size, config.batch_size
    cache_dir = None if config.feature_cache.lower() in ("", "none") else config.feature_cache
    extractor = feature_extractor("vgg16", size, weights, pooling=config.feature_pooling)
    fs = extract_features(m, extractor=extractor, input_size=size, batch_size=batch,
                          cache_dir=cache_dir, verbose=config.verbose == 1)
    tr, va = fs.split("train"), fs.split("val")
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                         patience=config.features_epochs + 1,
                                         restore_best_weights=True)
    dense = train_dense_head(
        tr.features, tr.labels, va.features, va.labels, num_classes=m.num_classes,
        units=config.head_units, dropout=config.head_dropout, epochs=config.features_epochs,
        batch_size=batch, optimizer="rmsprop", lr=config.features_learning_rate, callbacks=[stop],
        verbose=config.verbose, class_names=m.class_names,
    )
    folder.mkdir(exist_ok=True)
    logs = dense.history.history
    n = len(next(iter(logs.values()), []))
    write_history(folder / "history.csv",
                  [{"epoch": i + 1, "phase": "features", **{k: float(v[i]) for k, v in logs.items()}}
                   for i in range(n)])
    atomic_save_model(dense, folder / "head.keras")
    full = attach_head(extractor, dense, name="vgg16_features_classifier")
    atomic_save_model(full, folder / "model.keras")
    RunFolder(folder).write_state({"phase_index": 1, "epoch": n, "phases": ["features"],
                                   "finished": True})
    return full


def run(config: INaturalistVGG16Config | None = None) -> INaturalistResult:
    """Run R5's stages (and scratch CNNs), compare them on the test split, write the report.

    Args:
        config: the settings (``data`` is required).

    Returns:
        An :class:`INaturalistResult`. The run folder holds ``config.json``, ``audit/``,
        ``split.csv``, ``a_features/`` (``history.csv``, ``head.keras``, ``model.keras``; a resume
        loads ``model.keras`` instead of training stage (a) again), ``b_frozen/`` and
        ``c_fine_tune/`` (``history.csv``, ``best.keras``), ``scratch_<name>/``,
        ``comparison.csv``, ``best.keras`` (the model of best validation accuracy, with its
        class names), ``metrics.json``, ``predictions.csv``, ``plots/`` (accuracy vs loss, top-5
        vs macro AUC, PR curves per model, the best model's figures) and ``report.md``.

    Raises:
        ManifestError: no ``data``, or fewer than 2 classes after keeping the top classes.
        SettingError: ``--top-classes-count`` above the number of classes of ``data`` (before
            the run folder is made).

    Example:
        >>> run(INaturalistVGG16Config(data="inat.json", top_classes_count=5))  # doctest: +SKIP
    """
    config = config or INaturalistVGG16Config()
    started = time.perf_counter()
    # of the settings in force: a resumed run's stored ones (its data, stages and weights)
    run_folder, config, (stages, scratch, weights) = open_run(RECIPE, config, checked_models)
    run_folder.write_plan([{"a": "a_features", "b": "b_frozen", "c": "c_fine_tune"}[s] for s in stages]
                          + [f"scratch_{name}" for name in scratch])  # for keras-species runs

    # Keras comes with the modules below: a setting refused above is told without it
    from keras_species.data.prepare import build_datasets, prepare_data
    from keras_species.evaluation import plots
    from keras_species.evaluation.compare import (
        compare_models,
        comparison_table,
        write_comparison_csv,
    )
    from keras_species.evaluation.evaluate import evaluate_and_report, predict_manifest
    from keras_species.evaluation.metrics import single_label_metrics
    from keras_species.export import load_keras_model
    from keras_species.models.classifier import build_classifier
    from keras_species.models.heads import HeadConfig
    from keras_species.models.scratch import build_scratch
    from keras_species.training.callbacks import atomic_save_model
    from keras_species.training.plan import Phase, train

    root = run_folder.path
    if "c" in stages and "b" not in _names(config.stages, STAGES, "--stages"):
        print("stage c starts from stage b: running b too")

    top = config.top_classes_count if config.top_classes_count else config.top_classes
    prepared = prepare_data(
        config.data, load_options=config.load_options(), **split_settings(config),
        seed=config.seed, audit_dir=root / "audit", clean_policy=config.clean_policy,
        top_classes=top, split_file=root / "split.csv", task="single", task_hint=MULTILABEL_HINT,
        need_splits=recipe_need_splits(config), need_hint=TEST_SPLIT_HINT,
    )
    m = prepared.manifest
    names, c, size, batch = m.class_names, m.num_classes, config.image_size, config.batch_size
    print(prepared.summary())
    plain = build_datasets(m, size, batch, augment="none", cache=config.cache, seed=config.seed,
                           deterministic=config.deterministic)
    augmented = build_datasets(m, size, batch, augment=config.augment, cache=config.cache,
                               seed=config.seed, deterministic=config.deterministic)
    head = HeadConfig(pooling=config.feature_pooling, units=config.head_units,
                      dropout=config.head_dropout)

    def rmsprop(name: str, epochs: int, lr: float, trainable: Any = "frozen", **kw) -> Phase:
        return Phase(name, epochs=epochs, trainable=trainable, optimizer="rmsprop",
                     learning_rate=lr, monitor="val_accuracy", **kw)

    results: dict[str, dict] = {}
    models: dict[str, Any] = {}

    def record(name: str, model) -> None:
        pv = predict_manifest(model, m.split("val"), image_size=size, batch_size=batch)
        pt = predict_manifest(model, m.split("test"), image_size=size, batch_size=batch)
        val = single_label_metrics(pv.manifest.labels, pv.probs, names)
        results[name] = {"probs": pt.probs, "y_true": pt.manifest.labels,
                         "params": int(model.count_params()), "val_loss": val["log_loss"],
                         "val_acc": val["accuracy"]}
        models[name] = model
        print(f"{name}: val accuracy {val['accuracy']:.3f}")

    if "a" in stages:
        features_folder = root / "a_features"
        if config.resume and (features_folder / "model.keras").is_file():
            # written last and atomically: stage (a) ended; a resume does not train it again
            record("a_features", load_keras_model(features_folder / "model.keras"))
        else:
            record("a_features", _features_stage(config, m, weights, features_folder))

    if "b" in stages:
        model = build_classifier("vgg16", c, input_size=size, weights=weights, head=head,
                                 class_names=names)
        b = train(model, [rmsprop("frozen_base", config.frozen_epochs, config.frozen_learning_rate)],
                  augmented.train, augmented.val, root / "b_frozen", resume=config.resume,
                  verbose=config.verbose)
        record("b_frozen", load_best_model(b.best_path, b.model))
        if "c" in stages:
            fine = train(b.model, [rmsprop("fine_tune", config.fine_tune_epochs,
                                           config.fine_tune_learning_rate, "last_n",
                                           n=config.unfreeze_conv, unit="conv")],
                         augmented.train, augmented.val, root / "c_fine_tune",
                         resume=config.resume, verbose=config.verbose)
            record("c_fine_tune", load_best_model(fine.best_path, fine.model))

    for name in scratch:
        model = build_scratch(f"r5_{name}", c, size, class_names=names)
        ds = augmented if name == "regularised" else plain
        s = train(model, [rmsprop("train", config.scratch_epochs, config.scratch_learning_rate, "all")],
                  ds.train, ds.val, root / f"scratch_{name}", resume=config.resume,
                  verbose=config.verbose)
        record(f"scratch_{name}", load_best_model(s.best_path, s.model))

    rows = compare_models(results)
    for row in rows:
        row["r5_test_acc"] = R5_SCORES.get(row["model"])
    columns = ["model", "params", "val_loss", "val_acc", "test_loss", "test_acc", "top5",
               "macro_auc", "unique_correct", "unique_wrong", "r5_test_acc"]
    write_comparison_csv(root / "comparison.csv", rows, columns)
    plot_dir = root / "plots"
    figures = {
        "accuracy_vs_loss": plots.plot_accuracy_vs_loss(rows, plot_dir / "accuracy_vs_loss.png"),
        "top5_vs_auc": plots.plot_top5_vs_auc(rows, plot_dir / "top5_vs_auc.png"),
    }
    notes = []
    for name, r in results.items():
        try:
            figures[f"pr_{name}"] = plots.plot_pr_curves(
                r["y_true"], r["probs"], names, plot_dir / f"pr_curves_{name}.png",
                n_sample=10, seed=config.seed)
        except ValueError as err:
            notes.append(f"PR curves of {name}: {err}")

    best = max(rows, key=lambda r: r.get("val_acc") or 0.0)["model"]
    atomic_save_model(models[best], run_folder.best_model_path)

    figure_md = "\n\n".join(
        f"![{k}]({Path(p).relative_to(root).as_posix()})" for k, p in figures.items())
    sections = [
        data_section(prepared, augmented),
        ("Models compared", (
            f"Top classes kept: {c} ({'count' if config.top_classes_count else 'share'} "
            f"{top}). Every model is scored on the same {len(m.split('test'))} test images; "
            "`unique correct`/`unique errors` count test images only that model got right/wrong. "
            f"`r5_test_acc`: R5's score on its own data. The report details **{best}** (best "
            "validation accuracy), saved as `best.keras`.\n\n"
            + comparison_table(rows, columns=columns)
            + ("\n" + "\n".join(f"- {n}" for n in notes) if notes else ""))),
        ("Model figures", "Test accuracy vs loss, top-5 accuracy vs macro AUC, and per model "
                          "the averaged precision–recall curves with those of 10 random "
                          "classes.\n\n" + figure_md),
    ]
    history = root / best / "history.csv"  # (a) trains on cached features: no history.csv
    ev = evaluate_and_report(
        models[best], m, run_folder, image_size=size, batch_size=batch,
        train_counts=prepared.train_counts,
        history=history if history.is_file() else None, config=config, monitor="val_accuracy",
        title=f"{RECIPE} (R5): {best} — {root.name}",
        extra_metrics={"comparison": rows, "best": best, "stages": stages, "scratch": scratch},
        extra_sections=sections,
    )
    return INaturalistResult(
        run_dir=root, report_path=ev.report_path, metrics=ev.metrics, history=[],
        best_model_path=run_folder.best_model_path, seconds=time.perf_counter() - started,
        headline=f"{best}: {ev.headline()}", model=models[best], comparison=rows, best=best,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recipes.inaturalist_vgg16 [flags]``; returns the exit code."""
    return recipe_main(INaturalistVGG16Config, run, argv, prog="python -m recipes.inaturalist_vgg16",
                       description=__doc__.splitlines()[0])


__all__ = ["RECIPE", "INaturalistVGG16Config", "INaturalistResult", "checked_models", "run", "main"]

if __name__ == "__main__":
    sys.exit(main())
