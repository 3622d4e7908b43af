"""Classical classifiers on cached backbone features (R2 section D: DenseNet121 → SVC / RF / XGBoost).

Method (R2): run a pretrained backbone (DenseNet121, ImageNet weights) once over every image and
keep its pooled features (cached on disk: a second run, or another classifier, reads them back);
fit scikit-learn classifiers on the training split's features: an SVM, a random forest, gradient
boosting (XGBoost when installed, and scikit-learn's HistGradientBoosting) and logistic
regression; report accuracy, precision, recall and the confusion matrix of each, and compare them
in the same table as the backbone comparison (val/test loss and accuracy, top-5, macro AUC,
unique correct/wrong test samples) with R5's scatter plots. The classifier of best validation
accuracy gets the full report (per-class table, confusion matrix, confident mistakes, uncertain
predictions) and is saved as ``classifier.joblib``.

Run::

    python -m recipes.feature_classifiers --data demo
    python -m recipes.feature_classifiers --backbone efficientnet_lite0 --classifiers svc,logreg
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keras_species.config import flag_help as _help
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
    open_run,
    recipe_main,
    recipe_need_splits,
    split_settings,
    weights_setting,
)

RECIPE = "feature_classifiers"
CLASSIFIER_NAMES = {
    "svc": "SVC (RBF)",
    "rf": "Random forest",
    "hgb": "HistGradientBoosting",
    "xgb": "XGBoost",
    "logreg": "Logistic regression",
}


@dataclass
class FeatureClassifiersConfig(SourceSettings, RunSettings):
    """Backbone features (cached) → SVC, random forest, gradient boosting, logistic regression (R2 D)."""

    TASK = "single"
    """The labels it trains on (:func:`~keras_species.recipe.recipe_task`): one class per image."""
    NEED_SPLITS = ("train", "val", "test")
    """The splits it needs (:func:`~keras_species.recipe.recipe_need_splits`): val picks the
    classifier the report details (with any --fit-on) and test scores them all."""
    RESUME_FINISHED = "fitting its classifiers again on the backbone's features"
    """What ``--resume`` does with a finished run (:func:`~keras_species.recipe.start_run`): it
    has no trained model to re-evaluate."""

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
    backbone: str = field(default="densenet121", metadata=_help(
        "registry name of the feature extractor (R2: densenet121)"))
    weights: str = field(default="imagenet", metadata=_help(
        "imagenet, none (random init) or a local weights file"))
    image_size: int | None = field(default=None, metadata=_help(
        "input side in pixels (none: the backbone's own, 224 for densenet121)"))
    batch_size: int = field(default=32, metadata=_help("images per forward pass"))
    pooling: Literal["avg", "max", "avgmax"] = field(default="avg", metadata=_help(
        "pooling of the last feature map"))
    feature_cache: str = field(default="~/.cache/keras_species/features", metadata=_help(
        "folder of cached features (none: no cache)"))
    classifiers: tuple[str, ...] = field(default=("svc", "rf", "hgb", "xgb", "logreg"),
                                         metadata=_help(
        "svc, rf, hgb, xgb (skipped when xgboost is not installed), logreg; space- or "
        "comma-separated"))
    classifier_params: dict = field(default_factory=dict, metadata=_help(
        "estimator arguments as JSON, e.g. '{\"svc\": {\"C\": 10}, \"rf\": {\"n_estimators\": 500}}'"))
    fit_on: Literal["train", "train+val"] = field(default="train", metadata=_help(
        "fit on the training split (val scores the choice) or on train+val"))

    def check(self) -> None:
        """The shared checks (:func:`~keras_species.recipe.check_settings`), then
        ``--classifiers`` and ``--classifier-params`` (:func:`check_classifier_params`), so that a
        bad classifier argument stops the run before any feature is extracted.

        Raises:
            SettingError: a bad setting, naming its flag.
            ValueError: an unknown classifier in ``--classifiers``.

        Example:
            >>> FeatureClassifiersConfig(classifier_params={"svc": {"C": 10}}).check()
        """
        super().check()
        if not self.resume:  # a resumed run keeps its stored settings
            check_classifier_params(classifier_names(self.classifiers), self.classifier_params,
                                    seed=self.seed)


@dataclass
class FeatureClassifiersResult(RunResult):
    """:class:`~keras_species.recipe.RunResult` plus the per-classifier results.

    Attributes:
        comparison: one row per classifier (``evaluation.compare.COLUMNS`` keys plus
            ``precision_macro``, ``recall_macro``, ``f1_macro``, ``fit_seconds``).
        per_classifier: classifier → its ``single_label_metrics`` on the test split.
        best: the classifier of best validation accuracy.
        skipped: classifier → why it was skipped (e.g. xgboost not installed).
        fit_warnings: classifier → the library's warnings of its fit (e.g. an SVC calibrated on
            its training rows, a class having a single training image).
        features_from_cache: whether the features were read from the cache.
    """

    comparison: list[dict] = field(default_factory=list)
    per_classifier: dict = field(default_factory=dict, repr=False)
    best: str = ""
    skipped: dict = field(default_factory=dict)
    fit_warnings: dict = field(default_factory=dict)
    features_from_cache: bool = False


def classifier_names(classifiers: Sequence[str]) -> list[str]:
    """Classifier keys from ``--classifiers svc,rf hgb`` (commas and spaces both separate).

    Args:
        classifiers: the field's values.

    Returns:
        Known keys in order, without duplicates.

    Raises:
        ValueError: an unknown key.

    Example:
        >>> classifier_names(["svc,rf", "logreg"])
        ['svc', 'rf', 'logreg']
    """
    names: list[str] = []
    for item in classifiers:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name or name in names:
                continue
            if name not in CLASSIFIER_NAMES:
                raise ValueError(f"--classifiers: {name!r} is unknown; choose from "
                                 f"{', '.join(CLASSIFIER_NAMES)}")
            names.append(name)
    if not names:
        raise ValueError("--classifiers: give at least one classifier")
    return names


_PARAMS_PASSED: set[str] = set()
"""``--classifier-params`` that :func:`check_classifier_params` passed in this process (each toy
fit ran three times a run, one of 5,000 trees 5 s each time)."""


def check_classifier_params(names: Sequence[str], params: Any, *, seed: int = 0) -> None:
    """Refuse ``--classifier-params`` that the classifiers would refuse, before any feature is
    extracted (they used to fail with a scikit-learn ``TypeError`` after the extraction).

    Each classifier's arguments are tried on a toy fit (12 random rows, 4 features, 3 classes):
    an argument the estimator does not take, or a value scikit-learn's parameter validation
    refuses, stops the run here. An error that depends on the data (more features asked for than
    the toy set has, say) is left to the real fit.

    Args:
        names: the classifiers that run (:func:`classifier_names`).
        params: the setting: ``{classifier: {argument: value}}``.
        seed: the ``random_state`` the run passes.

    Raises:
        SettingError: not an object of objects, a key that is not a classifier, or an
            argument or value the estimator refuses; the message names the classifier and the
            fix. The arguments of a classifier that does not run are not checked (a warning
            says they are not used).

    Example:
        >>> check_classifier_params(["logreg"], {"logreg": {"C": 10}})
        >>> check_classifier_params(["logreg"], {"logreg": {"bogus": 1}})
        Traceback (most recent call last):
        ...
        keras_species.recipe.SettingError: --classifier-params logreg: LogisticRegression.__init__() got an unexpected keyword argument 'bogus'
    """
    import numpy as np

    from keras_species.training.features import train_sklearn

    try:
        passed = json.dumps([list(names), params, seed], sort_keys=True, default=str)
    except TypeError:  # keys json cannot write or order (np.int64, 0 beside "cod")
        passed = repr((list(names), params, seed))
    if passed in _PARAMS_PASSED:  # the command line, start_run and checked_classifiers check alike
        return
    example = '\'{"svc": {"C": 10}, "rf": {"n_estimators": 500}}\''
    if not isinstance(params, Mapping):
        raise SettingError(f"--classifier-params {params!r}: give a JSON object of each "
                           f"classifier's arguments, e.g. {example}")
    for key, args in params.items():
        if key not in CLASSIFIER_NAMES:
            raise SettingError(f"--classifier-params: {key!r} is not a classifier; its keys are "
                               f"classifier names ({', '.join(CLASSIFIER_NAMES)}), e.g. {example}")
        if not isinstance(args, Mapping):
            raise SettingError(f"--classifier-params {key}: {args!r} is not an object of "
                               f"arguments, e.g. {example}")
    idle = [key for key in params if key not in names]
    if idle:  # say, a run's config.json given again with fewer --classifiers
        warnings.warn(f"--classifier-params: the arguments of {', '.join(idle)} are not used, "
                      f"since --classifiers runs {', '.join(names)}", stacklevel=2)
    from keras_species.training.features import classifier_probabilities

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), np.repeat(np.arange(3), 4)
    for key, args in params.items():
        if key not in names:
            continue
        if key == "xgb" and importlib.util.find_spec("xgboost") is None:
            continue  # skipped when the run comes to it
        try:
            with warnings.catch_warnings():  # about the toy rows, not the user's data
                warnings.simplefilter("ignore")
                estimator = train_sklearn(x, y, key, **{"random_state": seed, **args})
        except TypeError as err:  # an unknown argument; scikit-learn's InvalidParameterError too
            raise SettingError(f"--classifier-params {key}: {err}") from None
        except ValueError:
            continue  # depends on the data: the real fit decides
        try:  # the recipe scores probabilities: SVC(probability=False) has none
            classifier_probabilities(estimator, x, 3)
        except AttributeError as err:
            raise SettingError(f"--classifier-params {key}: {err}; this recipe scores each "
                               "classifier's probabilities (log loss, AUC, top-k): leave out the "
                               "argument that turns them off") from None
    _PARAMS_PASSED.add(passed)


def with_class_indices(args: Mapping[str, Any], class_names: Sequence[str], name: str) -> dict[str, Any]:
    """A classifier's arguments with a ``class_weight`` dict keyed by class index.

    ``--classifier-params`` is JSON, whose keys are strings, and the classifiers are fitted on
    class indices, so no dict could match (``The classes, [0, 1, 2, 3], are not in
    class_weight``, after the features were extracted). Keys may be class names or indices
    (``"0"``); any other key is refused, naming the classes.

    Args:
        args: the classifier's ``--classifier-params`` object.
        class_names: the data's classes, in index order.
        name: the classifier key, for the message.

    Returns:
        ``args`` with ``class_weight`` keyed by ``int`` (other arguments as given).

    Raises:
        SettingError: a key that is neither a class name nor an index.

    Example:
        >>> with_class_indices({"class_weight": {"eel": 5, "0": 1}, "C": 2}, ["cod", "eel"], "svc")
        {'class_weight': {1: 5, 0: 1}, 'C': 2}
    """
    weights = args.get("class_weight")
    if not isinstance(weights, Mapping):
        return dict(args)
    index = {n: i for i, n in enumerate(class_names)}
    mapped = {}
    for key, value in weights.items():
        text = str(key)
        if text in index:
            mapped[index[text]] = value
        elif text.isdigit() and int(text) < len(class_names):
            mapped[int(text)] = value
        else:
            shown = ", ".join(class_names[:10]) + (" ..." if len(class_names) > 10 else "")
            raise SettingError(f"--classifier-params {name}: class_weight key {key!r} is neither a "
                               f"class name nor a class index (0 to {len(class_names) - 1}); the "
                               f"classes: {shown}")
    return {**args, "class_weight": mapped}


def checked_classifiers(config: FeatureClassifiersConfig) -> tuple[list[str], str | None]:
    """The classifiers of ``config`` and the backbone's weights, checked before any feature is
    extracted: the settings (``config.check()``: ``--classifiers``, ``--classifier-params``),
    then the weights (offline ImageNet or a missing file fails here).

    ``run`` calls it on the settings in force (:func:`~keras_species.recipe.open_run`): a
    resumed run's stored ones, so ``--resume`` alone fits the run's own classifiers on its own
    backbone's features.

    Args:
        config: the settings.

    Returns:
        ``(classifier keys, weights as the registry takes them)``.

    Raises:
        SettingError, ValueError: a bad setting or classifier name.
        WeightsUnavailableError: the weights cannot be had.

    Example:
        >>> checked_classifiers(FeatureClassifiersConfig(backbone="resnet18", weights="none",
        ...                                              classifiers=("logreg,svc",)))
        (['logreg', 'svc'], None)
    """
    config.check()  # a resumed run: its run-control settings (the stored ones were checked)
    if config.mixed_precision in ("float16", "bfloat16"):  # recorded, never applied (stop 30)
        # said here, once a run: check() runs three times (it said it three times, stop 34)
        warnings.warn(f"--mixed-precision {config.mixed_precision} has no effect in "
                      "feature_classifiers: its features are computed in float32 (and cached "
                      "as such); leave the flag out", UserWarning, stacklevel=2)
    names = classifier_names(config.classifiers)
    if names == ["xgb"] and importlib.util.find_spec("xgboost") is None:  # nothing could run
        raise SettingError("--classifiers xgb: xgboost is not installed (pip install xgboost), and "
                           "no other classifier is asked for: install it, or add others "
                           "(--classifiers logreg,svc,rf,hgb)")
    weights = weights_setting(config.weights)
    check_weights(config.backbone, weights, config.image_size)  # offline ImageNet fails now
    return names, weights


def _fit(
    name: str, train: Any, class_names: Sequence[str], params: Mapping[str, Any]
) -> tuple[Any, list[str]]:
    """``train_sklearn`` on the training features, and the library's warnings of that fit (they
    are shown as usual, and kept for the report).

    Args:
        name: the classifier key.
        train: the training :class:`~keras_species.training.features.FeatureSet`.
        class_names: the manifest's class names (the warnings name classes).
        params: the estimator's arguments.

    Returns:
        The fitted estimator and the messages of the library's own warnings.

    Example:
        >>> estimator, notes = _fit("logreg", fs.split("train"), ["cod", "eel"], {})  # doctest: +SKIP
    """
    from keras_species.terminal import is_own_code
    from keras_species.training.features import train_sklearn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = train_sklearn(train.features, train.labels, name, class_names=class_names,
                                  **params)
    notes = []
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if is_own_code(w.filename):
            notes.append(str(w.message))
    return estimator, notes


def run(config: FeatureClassifiersConfig) -> FeatureClassifiersResult:
    """Extract (or read cached) features, fit each classifier, compare them, write the report.

    Args:
        config: the settings.

    Returns:
        A :class:`FeatureClassifiersResult`; the run folder holds ``config.json``, ``split.csv``,
        ``comparison.csv``, ``metrics.json`` (``test``: the best classifier; ``classifiers``:
        every classifier's scores), ``predictions.csv`` and ``classifier.joblib`` of the best
        classifier, ``plots/`` (a confusion matrix per classifier, the scatter plots, the best
        classifier's figures) and ``report.md``.

    Example:
        >>> result = run(FeatureClassifiersConfig(backbone="efficientnet_lite0"))  # doctest: +SKIP
        >>> print(result.headline)  # doctest: +SKIP
    """
    started = time.perf_counter()
    # of the settings in force: a resumed run's stored ones (its classifiers, backbone, weights);
    # refused settings and unavailable weights are said before the heavy imports below
    run_folder, config, (names, weights) = open_run(RECIPE, config, checked_classifiers)

    import joblib
    import numpy as np

    from keras_species.atomic import atomic_path
    from keras_species.data.prepare import prepare_data
    from keras_species.evaluation import plots
    from keras_species.evaluation import report as report_mod
    from keras_species.evaluation.compare import (
        compare_models,
        comparison_table,
        write_comparison_csv,
    )
    from keras_species.evaluation.metrics import single_label_metrics
    from keras_species.evaluation.tables import metrics_side_by_side
    from keras_species.training.crossval import probs_scores
    from keras_species.training.features import (
        classifier_probabilities,
        extract_features,
        weights_file_sha256,
    )

    prepared = prepare_data(
        config.data, load_options=config.load_options(), **split_settings(config),
        seed=config.seed, audit=config.audit, audit_dir=run_folder.path / "audit",
        split_file=run_folder.path / "split.csv", task="single", task_hint=MULTILABEL_HINT,
        need_splits=recipe_need_splits(config), need_hint=TEST_SPLIT_HINT,
    )
    print(prepared.summary(), flush=True)  # the data and its split, as every recipe says first
    m = prepared.manifest
    # class weights by class name or index, before the features: JSON keys are strings, and
    # scikit-learn fits the indices (every such dict failed after the extraction)
    classifier_params = {name: with_class_indices(args, list(m.class_names), name)
                         for name, args in config.classifier_params.items()}
    cache = None if config.feature_cache.lower() == "none" else config.feature_cache
    # what the progress line below is (whatever --verbose, as the data summary)
    print(f"features: {config.backbone} (weights {config.weights}, "
          f"{f'{config.image_size} px' if config.image_size else 'its own input size'}, "
          f"{config.pooling} pooling) of {len(m)} images", flush=True)
    t0 = time.perf_counter()
    fs = extract_features(m, config.backbone, input_size=config.image_size, weights=weights,
                          batch_size=config.batch_size, cache_dir=cache, pooling=config.pooling,
                          verbose=config.verbose).labelled()
    extract_seconds = time.perf_counter() - t0
    print(f"features: {fs.features.shape[1]} values per image, "
          + (f"read from the cache {fs.cache_path}" if fs.from_cache
             else f"computed in {extract_seconds:.1f} s"
             + (f" (cached in {fs.cache_path})" if fs.cache_path else "")), flush=True)
    train, val, test = fs.split("train"), fs.split("val"), fs.split("test")
    # val scores, and so the choice of classifier, always come from a fit on train alone: a fit
    # on train+val scored its own rows there (val accuracy 1.0, stop 30); the test scores
    # come from the fit on --fit-on's rows
    chooser = train
    if config.fit_on == "train+val":
        train = fs.subset([s in ("train", "val") for s in fs.splits])
    c, class_names = m.num_classes, list(m.class_names)
    train_counts = np.bincount(train.labels, minlength=c)

    skipped: dict[str, str] = {}
    fit_warnings: dict[str, list[str]] = {}
    results: dict[str, dict] = {}
    per_clf: dict[str, dict] = {}
    estimators: dict[str, Any] = {}
    cm_plots: list[str] = []
    for number, name in enumerate(names, 1):
        said = f"classifier {number}/{len(names)}: {name} ({CLASSIFIER_NAMES[name]})"
        if name == "xgb" and importlib.util.find_spec("xgboost") is None:
            skipped[name] = "xgboost is not installed (`pip install xgboost`)"
            print(f"{said} skipped: xgboost is not installed (pip install xgboost)", flush=True)
            continue
        given = classifier_params.get(name, {})
        params = {"random_state": config.seed, **given}
        t0 = time.perf_counter()
        try:
            estimators[name], notes = _fit(name, train, class_names, params)
        except ValueError as err:
            if not given:
                raise
            # arguments the toy fit could not judge (SVC's kernel="precomputed"): this classifier
            # is left out, and the others' results are kept
            skipped[name] = f"its fit failed with --classifier-params {name} {json.dumps(given)}: {err}"
            print(f"{said} skipped: {skipped[name]}", flush=True)
            continue
        fit_seconds = time.perf_counter() - t0
        if notes:
            fit_warnings[name] = notes
        judge = estimators[name]
        if chooser is not train:  # train+val: val is in the fit; score a fit on train alone
            judge, more = _fit(name, chooser, class_names, params)
            if more:
                fit_warnings[name] = list(dict.fromkeys((fit_warnings.get(name) or []) + more))
        p_val = classifier_probabilities(judge, val.features, c)
        p_test = classifier_probabilities(estimators[name], test.features, c)
        vs = probs_scores(val.labels, p_val, c)
        per_clf[name] = single_label_metrics(test.labels, p_test, class_names,
                                             train_counts=train_counts)
        results[name] = {"probs": p_test, "y_true": test.labels, "val_loss": vs["loss"],
                         "val_acc": vs["accuracy"], "fit_seconds": fit_seconds}
        print(f"{said}: fitted in {fit_seconds:.1f} s, val accuracy {vs['accuracy']:.3f}",
              flush=True)
        png = plots.plot_confusion_matrix(
            per_clf[name]["confusion_matrix"], class_names,
            run_folder.plots_dir / f"confusion_matrix_{name}.png",
            title=f"Confusion matrix — {CLASSIFIER_NAMES[name]}")
        cm_plots.append(f"![{name}](plots/{Path(png).name})")
    if not results:
        raise ValueError(f"no classifier could run: {skipped}")

    rows = compare_models(results)
    for row in rows:
        mt = per_clf[row["model"]]
        row.update(precision_macro=mt["precision_macro"], recall_macro=mt["recall_macro"],
                   f1_macro=mt["f1_macro"], fit_seconds=results[row["model"]]["fit_seconds"])
    columns = ["model", "val_loss", "val_acc", "test_loss", "test_acc", "top5", "macro_auc",
               "unique_correct", "unique_wrong"]
    columns = [k for k in columns if any(r.get(k) is not None for r in rows)]
    scores = ["model", "test_acc", "precision_macro", "recall_macro", "f1_macro", "fit_seconds"]
    write_comparison_csv(run_folder.path / "comparison.csv", rows, columns + scores[2:])
    plots.plot_accuracy_vs_loss(rows, run_folder.plots_dir / "accuracy_vs_loss.png")
    plots.plot_top5_vs_auc(rows, run_folder.plots_dir / "top5_vs_auc.png")

    # The full report is the classifier of best validation accuracy (chosen without the test set).
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))["model"]
    with atomic_path(run_folder.path / "classifier.joblib") as tmp:  # a killed run leaves no half file
        joblib.dump(estimators[best], tmp)
    test_m = per_clf[best]
    probs = results[best]["probs"]
    report_mod.write_predictions_csv(run_folder.predictions_path, test.paths, test.labels, probs,
                                     class_names)
    figures = {
        "confusion_matrix": plots.plot_confusion_matrix(
            test_m["confusion_matrix"], class_names, run_folder.plots_dir / "confusion_matrix.png"),
        "per_class_f1": plots.plot_per_class_f1(
            class_names, [r["f1"] for r in test_m["per_class"]],
            run_folder.plots_dir / "per_class_f1.png",
            support=[r["support"] for r in test_m["per_class"]]),
        "confident_mistakes": plots.plot_confident_mistakes(
            test.paths, test.labels, probs, class_names,
            run_folder.plots_dir / "confident_mistakes.png"),
        "uncertain_predictions": plots.plot_uncertain_predictions(
            test.paths, test.labels, probs, class_names,
            run_folder.plots_dir / "uncertain_predictions.png"),
        "pr_curves": plots.plot_pr_curves(test.labels, probs, class_names,
                                          run_folder.plots_dir / "pr_curves.png"),
    }
    source = "read from the cache" if fs.from_cache else f"computed in {extract_seconds:.1f} s"
    method = (
        f"Features: `{config.backbone}` (weights `{config.weights}`, {config.pooling} pooling), "
        f"{fs.features.shape[1]} values per image, {source}"
        + (f" (`{fs.cache_path}`)" if fs.cache_path else "") + f". Classifiers fitted on "
        f"{config.fit_on} ({len(train)} images); validation {len(val)}, test {len(test)}."
        + (f" The validation scores, which chose the classifier, come from a fit of each on train "
           f"alone ({len(chooser)} images): the train+val fit has seen the validation images."
           if chooser is not train else "")
    )
    sections = [
        ("Classifiers on backbone features", method + "\n\n" + comparison_table(rows, columns=columns)
         + "\n![accuracy_vs_loss](plots/accuracy_vs_loss.png)\n\n"
         "![top5_vs_auc](plots/top5_vs_auc.png)\n"),
        ("Accuracy, precision and recall per classifier (test)",
         metrics_side_by_side(per_clf, difference=False)
         + "\nPrecision, recall and F1 are macro averages over the classes. Fit time: "
         + ", ".join(f"{r['model']} {r['fit_seconds']:.2f} s" for r in rows)
         + f". The sections above detail **{best}** (best validation accuracy).\n"),
        ("Confusion matrix per classifier", "\n\n".join(cm_plots)),
        data_section(prepared),
    ]
    if skipped:
        sections.append(("Skipped classifiers",
                         "\n".join(f"- {k}: {v}" for k, v in skipped.items())))
    if fit_warnings:
        sections.append(("Classifier warnings",
                         "\n".join(f"- {m}" for notes in fit_warnings.values() for m in notes)))
    metrics = {
        "test": test_m,
        "val": {"accuracy": results[best]["val_acc"], "log_loss": results[best]["val_loss"]},
        "classifiers": {n: {k: per_clf[n][k] for k in ("accuracy", "precision_macro",
                                                       "recall_macro", "f1_macro", "log_loss",
                                                       "confusion_matrix")}
                        for n in per_clf},
        "comparison": [{k: v for k, v in r.items()} for r in rows],
        "best_classifier": best,
        "fit_warnings": fit_warnings,
        "features": {"backbone": config.backbone, "dim": int(fs.features.shape[1]),
                     "from_cache": fs.from_cache, "seconds": extract_seconds,
                     "skipped_images": fs.skipped,
                     # predict checks that a weights file is still the one fitted on
                     "weights_sha256": weights_file_sha256(weights)
                     if weights not in (None, "imagenet") and Path(weights).expanduser().is_file() else None},
    }
    report_mod.write_metrics_json(run_folder.metrics_path, metrics)
    from keras_species.config import config_to_dict

    # the report's sections above show every classifier's scores and the features: not again
    # in tables of their own (render_report lists each number of a metrics block)
    shown = {k: v for k, v in metrics.items() if k not in ("classifiers", "features")}
    report_mod.render_report(
        run_folder.path, title=f"{RECIPE} — {config.backbone} features (best: {best})",
        config=config_to_dict(config), metrics=shown, plots=figures, extra_sections=sections,
    )
    run_folder.write_state({"finished": True, "classifiers": list(results)})
    return FeatureClassifiersResult(
        run_dir=run_folder.path, report_path=run_folder.report_path, metrics=metrics, history=[],
        best_model_path=None, seconds=time.perf_counter() - started,
        headline=(f"best {best}: test accuracy {test_m['accuracy']:.3f} vs majority baseline "
                  f"{test_m['majority_baseline']:.3f} ({test_m['n']} test images)"),
        model=estimators[best], comparison=rows, per_classifier=per_clf, best=best,
        skipped=skipped, fit_warnings=fit_warnings, features_from_cache=fs.from_cache,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recipes.feature_classifiers``: parse the flags, run, print the report path.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    return recipe_main(FeatureClassifiersConfig, run, argv,
                       prog="python -m recipes.feature_classifiers",
                       description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
