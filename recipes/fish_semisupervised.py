"""Semi-supervised fish classification: few labelled images, many unlabelled ones (R1).

Method (R1: 15 species, 150 labelled and 43,156 unlabelled images):

- Data: a small labelled set (``--labelled``) and a pool of unlabelled images (``--unlabelled``:
  a folder, a CSV, a .txt/.lst list of paths or a COCO JSON). ``--root``, ``--path-format`` and
  ``--on-missing`` apply to whichever of the two takes them, and to both when both are files
  that take them (one ``--root`` then serves both: give absolute paths in a file whose relative
  paths start elsewhere); ``--group-regex`` applies to ``--labelled`` only. By default the
  embedded fish demo with the labels of 80% of each class's images hidden (``--hide-labels
  0.8``): those images form the pool, and because their true labels are known the report can
  measure how accurate the pseudo-labels are. Images 224×224, scaled to
  [-1, 1] by the models (R1's (x − 0.5)/0.5; the ResNets use their own ImageNet scaling).
- A ``--labelled`` CSV or COCO JSON may hold images without a label (an empty label cell, an
  image without an annotation): they join the pool (with the ``--unlabelled`` images and those
  whose labels ``--hide-labels`` hides, each image once), and the run says how many came from
  ``--labelled``. With such images and no ``--unlabelled``, ``--hide-labels`` defaults to 0 (the
  pool is there already; give it to hide labels as well). ``--labelled`` data without any label
  is refused before the run folder is made.
- Validation split of the labelled set: *systematic*, the first 2 of every 10 images of a class
  (sorted by file name) → 2 per class, 80/20. R1 had no test split: every model is scored on this
  validation split (and, when the pool's true labels are known, on the pool too).
- Model 1: ResNet18 (ImageNet) with a linear head, Adam 1e-2, 30 epochs, batch 32, the epoch of
  best validation accuracy kept. Augmentation: horizontal flip, rotation ±30° (``r1``).
- Model 2: the convolutional autoencoder with a classifier on its encoding, trained jointly: MSE
  reconstruction on every image (labelled and unlabelled), cross-entropy only on labelled ones
  (the classification loss of an unlabelled image is masked by a per-output sample weight of 0);
  Adam 1e-4, 40 epochs, batch 128, same augmentation.
- Models 3 and 4: model 2 labels the pool; predictions of confidence ≥ 0.8 are kept
  (``pseudo_labels.csv``; kept counts and their accuracy per class in the report). The kept images
  plus the labelled training images form the combined set (random 75/25 split, batch 64;
  pseudo-labelled images augmented with rotation ±45°, ``r1_pseudo``). Phase 1 fine-tunes the
  whole ResNet50 (model 3) / ResNet18 (model 4) on it, Adam 1e-5, 25 epochs; phase 2 starts from
  the best phase-1 epoch and trains only the classifier on the small labelled set, Adam 1e-2, 30
  epochs. Pretrained BatchNorm layers of the backbones stay in inference mode (``--train-batchnorm``;
  untrained ones, ``--weights none``, train from scratch).

``--stages 1,2,3,4`` picks the models (3 and 4 need model 2's pseudo-labels: stage 2 then runs
too). Offline, ResNet18's ImageNet weights come from a converted local file (``--weights
FILE``); ``--weights none`` trains from scratch.

Run::

    python -m recipes.fish_semisupervised --weights none --image-size 64 --stages 1,2,4
    python -m recipes.fish_semisupervised --labelled fish_labelled/ --unlabelled fish_pool/
    python -m recipes.fish_semisupervised --labelled fish.csv   # its rows without a label: the pool
    python -m recipes.fish_semisupervised --labelled fish_labelled/ --unlabelled pool.csv --root /data/pool
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keras_species.config import flag_help as _h
from keras_species.recipe import (
    MULTILABEL_HINT,
    RunResult,
    RunSettings,
    SettingError,
    SourceSettings,
    check_two_classes,
    check_weights,
    data_section,
    load_best_model,
    open_run,
    recipe_main,
    weights_setting,
)

if TYPE_CHECKING:
    from keras_species.data.manifest import Manifest
    from keras_species.data.sources import SourceKind
    from keras_species.training.semi_supervised import Pool

RECIPE = "fish_semisupervised"
R1_SCORES = {"model1": 0.810, "model2": 0.837, "model3": 0.905, "model4": 0.864}
"""R1's validation accuracies (on its data), shown next to ours."""


@dataclass
class FishSemiSupervisedConfig(SourceSettings, RunSettings):
    """R1: ResNet18, a jointly trained autoencoder, and pseudo-labelled fine-tuning."""

    # data
    labelled: str = field(default="demo", metadata=_h(
        "labelled images: demo, a folder of class folders, a CSV, a COCO JSON; its images without "
        "a label (empty label cell, no annotation) join the unlabelled pool"))
    unlabelled: str | None = field(default=None, metadata=_h(
        "unlabelled images: a folder (class subfolders, if any, are kept as hidden true labels), "
        "a CSV, a .txt/.lst list of paths or a COCO JSON; --root, --path-format and --on-missing "
        "apply to whichever of --labelled and --unlabelled takes them (to both when both do: one "
        "--root then serves both), --group-regex to --labelled only"))
    hide_labels: float | None = field(default=None, metadata=_h(
        "hide the labels of this share of each class of --labelled and add those images to the pool "
        "(none: 0 with --unlabelled or when --labelled has images without a label, else 0.8)"))
    group_regex: str | None = field(default=None, metadata=_h(
        "regex whose first group is an image's group id (of --labelled: the pool is not split)"))
    stages: str = field(default="1,2,3,4", metadata=_h("models to train, e.g. 1,2,3,4 or 2,4 (3 and 4 need 2)"))
    image_size: int = field(default=224, metadata=_h("input side in pixels (R1: 224; a multiple of 8)"))
    weights: str = field(default="imagenet", metadata=_h("backbone weights of models 1, 3, 4: imagenet, none, or a local .weights.h5"))
    augment: str = field(default="r1", metadata=_h("augmentation of labelled (and unlabelled) images: flip + rotation 30"))
    pseudo_augment: str = field(default="r1_pseudo", metadata=_h("augmentation of pseudo-labelled images: flip + rotation 45"))
    cache: Literal["memory", "none"] = field(default="memory", metadata=_h("keep decoded images in memory"))
    train_batchnorm: bool = field(default=False, metadata=_h("let the backbones' BatchNorm layers train"))
    # model 1
    model1_backbone: str = field(default="resnet18", metadata=_h("model 1 backbone"))
    model1_epochs: int = field(default=30, metadata=_h("model 1 epochs"))
    model1_learning_rate: float = field(default=1e-2, metadata=_h("model 1 Adam learning rate"))
    batch_size: int = field(default=32, metadata=_h("batch size of models 1 and phase 2 (labelled set)"))
    # model 2
    ae_filters: tuple[int, int, int] = field(default=(32, 64, 128), metadata=_h("encoder conv filters"))
    ae_dense_units: int = field(default=256, metadata=_h("hidden Dense units of the autoencoder's classifier"))
    ae_pooling: Literal["flatten", "avg"] = field(default="flatten", metadata=_h("how the classifier reads the encoding"))
    ae_epochs: int = field(default=40, metadata=_h("model 2 epochs"))
    ae_learning_rate: float = field(default=1e-4, metadata=_h("model 2 Adam learning rate"))
    ae_batch_size: int = field(default=128, metadata=_h("model 2 batch size"))
    ae_label_weight: float = field(default=1.0, metadata=_h("weight of the cross-entropy term (MSE has 1)"))
    SINCE = {"ae_val_fraction": 0.0}
    """Settings added after runs were made, with the value that gives such a run's behaviour on
    ``--resume`` (:func:`keras_species.recipe.open_run`): model 2 trained on the whole pool."""

    ae_val_fraction: float = field(default=0.2, metadata=_h(
        "share of the unlabelled pool held out of model 2's training, to score its reconstruction "
        "on (R1: a random 80/20; 0 trains on the whole pool)"))
    # models 3 and 4
    pseudo_threshold: float = field(default=0.8, metadata=_h("keep pseudo-labels of at least this confidence"))
    combined_val_fraction: float = field(default=0.25, metadata=_h("validation share of the combined set (random split)"))
    combined_batch_size: int = field(default=64, metadata=_h("batch size on the combined set"))
    model3_backbone: str = field(default="resnet50", metadata=_h("model 3 backbone"))
    model4_backbone: str = field(default="resnet18", metadata=_h("model 4 backbone"))
    phase1_epochs: int = field(default=25, metadata=_h("phase 1 epochs (whole network, combined set)"))
    phase1_learning_rate: float = field(default=1e-5, metadata=_h("phase 1 Adam learning rate"))
    phase2_epochs: int = field(default=30, metadata=_h("phase 2 epochs (classifier only, labelled set)"))
    phase2_learning_rate: float = field(default=1e-2, metadata=_h("phase 2 Adam learning rate"))


@dataclass
class FishSemiSupervisedResult(RunResult):
    """:class:`~keras_species.recipe.RunResult` plus the per-model rows and the pseudo-labels.

    Attributes:
        models: one row per model run (``model``, ``val_acc``, ``val_loss``, ``pool_acc``...).
        pseudo_labels: ``PseudoLabelStats.to_dict()`` (None when stage 2 did not run).
        best: name of the model of best validation accuracy.
    """

    models: list[dict] = field(default_factory=list)
    pseudo_labels: dict | None = None
    best: str = ""


def stage_list(stages: str | int | Sequence[int | str]) -> list[int]:
    """The stages to run, sorted, with stage 2 added when 3 or 4 need its pseudo-labels.

    Args:
        stages: e.g. ``"1,2,3,4"``, ``"1 3"`` or ``(1, 4)``.

    Returns:
        The sorted stage numbers.

    Raises:
        ValueError: a stage outside 1–4.

    Example:
        >>> stage_list("1,4")
        [1, 2, 4]
    """
    if isinstance(stages, str | int):
        stages = [stages]
    out: set[int] = set()
    for s in stages:
        for part in str(s).replace(",", " ").split():
            if part not in ("1", "2", "3", "4"):
                raise ValueError(f"--stages {part!r}: choose among 1, 2, 3, 4")
            out.add(int(part))
    if not out:
        raise ValueError("--stages is empty: choose among 1, 2, 3, 4")
    if out & {3, 4}:
        out.add(2)
    return sorted(out)


def split_pool(pool: Manifest, fraction: float, seed: int | None) -> tuple[Manifest, Manifest | None]:
    """R1's random 80/20 of the unlabelled images for model 2: the part it trains its
    reconstruction on, and the part its validation scores the reconstruction on (their labels
    weigh 0 there, so the label accuracy the best epoch is kept on is the labelled val split's).
    Before stop 34 the whole pool trained and no unlabelled image was held out.

    Args:
        pool: the unlabelled images.
        fraction: the held-out share (0: none).
        seed: the run's seed (None: 0), so a resume holds out the same images.

    Returns:
        ``(train part, held-out part or None)``; at least one image trains.

    Example:
        >>> import numpy as np; from keras_species.data.manifest import Manifest
        >>> pool = Manifest([f"{i}.png" for i in range(10)], np.full(10, -1), ["cod"])
        >>> [len(p) for p in split_pool(pool, 0.2, 0)]
        [8, 2]
    """
    import numpy as np

    held = min(int(round(fraction * len(pool))), len(pool) - 1)
    if held <= 0:
        return pool, None
    order = np.random.default_rng(0 if seed is None else seed).permutation(len(pool))
    return pool.subset(np.sort(order[held:])), pool.subset(np.sort(order[:held]))


def hide_fraction(hide_labels: float | None, *, unlabelled: str | None, without_label: int) -> float:
    """The share of labels hidden (``--hide-labels``; None: its default).

    By default labels are hidden (0.8, R1's demo setting) only when nothing else makes a pool:
    no ``--unlabelled`` and no image of ``--labelled`` without a label.

    Args:
        hide_labels: the setting (None: the default).
        unlabelled: ``--unlabelled``.
        without_label: how many images of ``--labelled`` have no label.

    Returns:
        The fraction for ``make_pool(hide_fraction=...)``.

    Example:
        >>> hide_fraction(None, unlabelled=None, without_label=0)  # R1's demo: hide 80%
        0.8
        >>> hide_fraction(None, unlabelled=None, without_label=5)  # those 5 are the pool
        0.0
    """
    if hide_labels is not None:
        return hide_labels
    return 0.0 if unlabelled or without_label else 0.8


def reading_options(config: FishSemiSupervisedConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``sources.load`` options of ``--labelled`` and of ``--unlabelled``.

    ``--root``, ``--path-format`` and ``--on-missing`` go to whichever of the two takes them
    (a CSV, a path list, an iNat/COCO JSON: ``sources.source_kind``), to both when both do:
    one ``--root`` then serves both files, so their relative paths must start from the same
    folder. ``--group-regex`` goes to ``--labelled`` only (the pool is never split). Without
    ``--unlabelled`` every option goes to ``--labelled``, whose reader refuses those that do not
    apply.

    Args:
        config: the recipe's settings.

    Returns:
        ``(labelled_options, unlabelled_options)``.

    Raises:
        SettingError: an option that applies to neither source (naming its flag and both kinds).

    Example:
        >>> reading_options(FishSemiSupervisedConfig(unlabelled="pool.csv", root="images"))  # doctest: +SKIP
        ({}, {'root': 'images'})
    """
    from keras_species.data import sources
    from keras_species.training.semi_supervised import unlabelled_kind

    options = config.load_options()
    if not config.unlabelled:
        return options, {}
    labelled_kind = sources.source_kind(config.labelled)
    pool_kind = unlabelled_kind(config.unlabelled)
    labelled = {k: v for k, v in options.items() if k in labelled_kind.options}
    pool = {k: v for k, v in options.items() if k in pool_kind.options}
    unused = [k for k in options if k not in labelled and k not in pool]
    if unused:
        settings = {f.name for f in fields(config)}

        def flags(names: Iterable[str]) -> str:
            return ", ".join("--" + n.replace("_", "-") for n in names if n in settings)

        def which(kind: SourceKind) -> str:
            return f"read as {kind.kind}, which takes {flags(kind.options) or 'no reading option'}"

        one = len(unused) == 1
        raise SettingError(
            f"{flags(unused)} {'applies' if one else 'apply'} to neither --labelled "
            f"{config.labelled} ({which(labelled_kind)}) nor --unlabelled {config.unlabelled} "
            f"({which(pool_kind)}): leave {'it' if one else 'them'} out"
        )
    return labelled, pool


def _pool(config: FishSemiSupervisedConfig) -> Pool:
    """The labelled set and the unlabelled pool (``semi_supervised.Pool``): ``--labelled`` read
    once (its images without a label join the pool), ``--hide-labels``, ``--unlabelled``, each
    file read with the options that apply to it (:func:`reading_options`)."""
    from keras_species.data import sources
    from keras_species.data.manifest import ManifestError
    from keras_species.data.prepare import check_task
    from keras_species.training.semi_supervised import make_pool

    labelled_options, unlabelled_options = reading_options(config)
    m = sources.load(config.labelled, **labelled_options)
    check_task(m, "single", config.labelled, MULTILABEL_HINT)
    without = int((~m.labelled_mask).sum())
    if without == len(m):  # the data's fault, not a flag's value
        raise ManifestError(
            f"--labelled {config.labelled}: none of its {len(m)} images has a label, and this "
            "recipe trains on a few labelled images (and learns from unlabelled ones): give some "
            "of them labels (a CSV's label column, a COCO JSON's annotations), or give --labelled "
            "the labelled images and --unlabelled the others"
        )
    check_two_classes(m, "--labelled", config.labelled)  # the split stops there otherwise
    fraction = hide_fraction(config.hide_labels, unlabelled=config.unlabelled, without_label=without)
    if fraction == 0 and not without and not config.unlabelled:
        raise SettingError(
            f"--hide-labels 0: every image of --labelled {config.labelled} has a label and there "
            "is no --unlabelled, so there is no unlabelled pool: give --hide-labels above 0 "
            "(e.g. 0.8) or --unlabelled FOLDER"
        )
    return make_pool(m, hide_fraction=fraction, unlabelled=config.unlabelled,
                     unlabelled_options=unlabelled_options, seed=config.seed)


@dataclass
class Plan:
    """What a run works out from its settings before any training (:func:`checked_plan`).

    Attributes:
        stages: the models to train (:func:`stage_list`).
        backbones: model number → backbone (models 1, 3 and 4).
        weights: the backbones' weights as the registry takes them.
        parts: the labelled set and the unlabelled pool (``semi_supervised.Pool``).
    """

    stages: list[int]
    backbones: dict[int, str]
    weights: str | None
    parts: Pool


def checked_plan(config: FishSemiSupervisedConfig) -> Plan:
    """The stages, backbones and weights of ``config``, checked, and its labelled set and pool.

    Checks, in this order: the stages, the weights of each backbone a stage trains (offline
    ImageNet or a missing file fails here), the settings (``config.check()``), then
    ``--labelled`` is read once (no label at all, or no pool, stops here). ``run`` calls it on
    the settings in force (:func:`~keras_species.recipe.open_run`): a new run's before its run
    folder is made, a resumed run's stored ones, so ``--resume`` alone trains the run's own
    models with its own weights on the same pool.

    Args:
        config: the settings.

    Returns:
        The :class:`Plan`.

    Raises:
        ValueError: a stage outside 1–4; SettingError: a bad setting or no pool;
        WeightsUnavailableError: the weights cannot be had.

    Example:
        >>> checked_plan(FishSemiSupervisedConfig(stages="2", weights="none")).stages  # doctest: +SKIP
        [2]
    """
    stages = stage_list(config.stages)
    backbones = {1: config.model1_backbone, 3: config.model3_backbone, 4: config.model4_backbone}
    weights = weights_setting(config.weights)
    if 2 in stages and config.image_size % 8:  # the autoencoder halves the side three times
        raise SettingError(f"--image-size {config.image_size}: the autoencoder (model 2) needs a "
                           f"multiple of 8, e.g. --image-size {max(8, config.image_size // 8 * 8)}")
    for s in stages:
        if s in backbones:
            check_weights(backbones[s], weights, config.image_size)
    config.check()  # a resumed run: its run-control settings (the stored ones were checked)
    # --labelled is read once, before the run folder: no label at all stops here
    parts = _pool(config)
    _check_training_images(parts.labelled, config, stages, parts.hidden)
    _check_pool_readable(parts.pool)
    return Plan(stages, backbones, weights, parts)


def _check_pool_readable(pool) -> None:
    """Refuse a pool none of whose images can be read, before the run folder is made: model 2
    trained, and the run then failed on pseudo-labelling with "the manifest holds no images"."""
    from keras_species.data.pipeline import check_files

    if len(pool) == 0:
        return
    _, bad = check_files(pool.paths)
    if len(bad) == len(pool):
        named = "; ".join(f"{p}: {why}" for p, why in list(bad.items())[:3])
        raise SettingError(
            f"the unlabelled pool holds no readable image (none of its {len(pool)} file(s) can be "
            f"read: {named}{' ...' if len(bad) > 3 else ''}): give --unlabelled images that can "
            "be read, or --hide-labels to make a pool of labelled images")


def _check_training_images(labelled, config: FishSemiSupervisedConfig, stages: Sequence[int],
                           hidden: int = 0) -> None:
    """Refuse a labelled set that R1's systematic split leaves without a training image (it
    puts the first 2 of every 10 images of a class in val), before the run folder is made;
    warn of the classes it leaves without one. Before, ``--hide-labels 0.95`` on 30 images a
    class stopped after the run folder was made, with "the manifest has no 'train' split"."""
    import numpy as np

    from keras_species.data import splits

    with warnings.catch_warnings():  # its advice names the split command's --ratios; ours follows
        warnings.filterwarnings("ignore", message="the systematic split")
        m = splits.systematic_split(labelled)
    counts = m.split("train").class_counts() if "train" in set(m.splits) else np.zeros(m.num_classes)
    if config.hide_labels:
        hide = f"--hide-labels {config.hide_labels}"
    elif config.hide_labels is None and hidden:  # the default hid them (no other pool)
        hide = f"--hide-labels {hide_fraction(None, unlabelled=None, without_label=0)} (the default)"
    else:
        hide = "--labelled"
    if not np.any(counts):
        raise SettingError(
            f"{hide} leaves {len(labelled)} labelled image(s), and R1's systematic split puts "
            "the first 2 of every 10 of a class in val, leaving none to train on: lower "
            "--hide-labels or give more labelled images (at least 3 a class)")
    missing = [m.class_names[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        pseudo = sorted({3, 4} & set(stages))
        learns = (f"{' and '.join(f'model {s}' for s in pseudo)} learn{'s' if len(pseudo) == 1 else ''} "
                  "them from pseudo-labels only, the other models not at all" if pseudo else
                  "no model of these stages learns them (give each class at least 3 labelled images)")
        warnings.warn(f"{hide} leaves no training image of {len(missing)} class(es) "
                      f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}): R1's "
                      f"systematic split puts the first 2 of every 10 in val; {learns}", stacklevel=2)


def run(config: FishSemiSupervisedConfig | None = None) -> FishSemiSupervisedResult:
    """Train the models of ``config.stages`` and write the comparison report.

    Args:
        config: the settings (default: R1's).

    Returns:
        A :class:`FishSemiSupervisedResult`. The run folder holds ``config.json``, ``split.csv``,
        ``model<i>/`` per model (``history.csv``, ``best.keras``, ``metrics.json``,
        ``predictions.csv``, ``plots/``, ``report.md``; models 3/4 with ``phase1/`` and
        ``phase2/``), ``pseudo_labels.csv``, ``best.keras`` (the model of best validation
        accuracy, with its class names), ``metrics.json`` and ``report.md``.

    Example:
        >>> result = run(FishSemiSupervisedConfig(weights="none", image_size=64))  # doctest: +SKIP
    """
    config = config or FishSemiSupervisedConfig()
    started = time.perf_counter()
    # of the settings in force: a resumed run's stored ones make the same models and pool again
    run_folder, config, plan = open_run(RECIPE, config, checked_plan)
    run_folder.write_plan([f"model{s}" for s in plan.stages])  # for keras-species runs

    # Keras comes with the modules below: a setting refused above is told without it
    import numpy as np

    from keras_species.config import config_to_dict
    from keras_species.data import splits
    from keras_species.data.manifest import Manifest
    from keras_species.data.pipeline import make_dataset
    from keras_species.data.prepare import build_datasets, prepare_data
    from keras_species.evaluation.compare import comparison_table
    from keras_species.evaluation.evaluate import evaluate_and_report
    from keras_species.evaluation.report import render_report, write_metrics_json
    from keras_species.models.autoencoder import build_autoencoder
    from keras_species.training.callbacks import atomic_save_model, write_history
    from keras_species.training.plan import Phase, train
    from keras_species.training.semi_supervised import (
        joint_dataset,
        mixed_dataset,
        pseudo_label,
        train_joint,
        write_pseudo_labels,
    )
    from keras_species.training.transfer import build_transfer_model

    root = run_folder.path
    stages, backbones, weights, parts = plan.stages, plan.backbones, plan.weights, plan.parts

    pool, truth = parts.pool, parts.truth
    with warnings.catch_warnings():  # checked_plan warned of untrained classes in this recipe's terms
        warnings.filterwarnings("ignore", message="the systematic split")
        prepared = prepare_data(parts.labelled, split="systematic", seed=config.seed,
                                audit_dir=root / "audit", split_file=root / "split.csv")
    m = prepared.manifest
    names = m.class_names
    size = config.image_size
    cache = config.cache == "memory"
    pool_text = parts.describe("--labelled", "--unlabelled") + (
        "" if truth is None else f"; {int((truth >= 0).sum())} with hidden true labels")
    print(f"{prepared.summary()}\nunlabelled pool: {pool_text}")
    ds = build_datasets(m, size, config.batch_size, augment=config.augment, cache=config.cache,
                        seed=config.seed, deterministic=config.deterministic)

    rows: list[dict] = []
    models: dict[str, Any] = {}

    def score(name: str, model, folder: Path, title: str, history, output=None, params=None):
        ev = evaluate_and_report(
            model, m, folder, split="val", image_size=size, batch_size=config.batch_size,
            history=history, title=title, output=output,
            monitor="val_label_accuracy" if output == "label" else "val_accuracy",  # as trained
        )
        row = {"model": name, "params": params or int(model.count_params()),
               "val_acc": ev.test["accuracy"], "val_loss": ev.test["log_loss"],
               "r1_val_acc": R1_SCORES[name], "report": f"[{name}/report.md]({name}/report.md)"}
        if truth is not None:
            _, s = pseudo_label(model, pool, threshold=0.0, true_labels=truth, image_size=size,
                                output=output)
            row["pool_acc"] = s.accuracy
        rows.append(row)
        models[name] = model
        print(f"{name}: val accuracy {row['val_acc']:.3f}"
              + (f", pool accuracy {row['pool_acc']:.3f}" if row.get("pool_acc") is not None else ""))

    def classifier(backbone: str):
        model, _ = build_transfer_model(backbone, m.num_classes, input_size=size, weights=weights,
                                        precision=config.mixed_precision, class_names=names)
        return model

    def phase(name: str, epochs: int, trainable: str, lr: float) -> Phase:
        return Phase(name, epochs=epochs, trainable=trainable, optimizer="adam", learning_rate=lr,
                     monitor="val_accuracy", train_batchnorm=config.train_batchnorm)

    if 1 in stages:
        model = classifier(config.model1_backbone)
        trained = train(model, [phase("train", config.model1_epochs, "all", config.model1_learning_rate)],
                        ds.train, ds.val, root / "model1", resume=config.resume, verbose=config.verbose)
        score("model1", load_best_model(trained.best_path, trained.model), root / "model1",
              f"Model 1: {config.model1_backbone}, linear head", root / "model1" / "history.csv")

    pseudo = None
    if 2 in stages:
        ae = build_autoencoder(m.num_classes, size, filters=config.ae_filters,
                               dense_units=config.ae_dense_units, pooling=config.ae_pooling,
                               class_names=names)
        ae_pool, ae_val_pool = split_pool(pool, config.ae_val_fraction, config.seed)
        joint_train = joint_dataset(m.split("train"), ae_pool, size, config.ae_batch_size,
                                    augment=config.augment, cache=cache, seed=config.seed)
        joint_val = joint_dataset(m.split("val"), ae_val_pool, size, config.ae_batch_size, training=False,
                                  cache=cache)
        trained = train_joint(ae, joint_train, joint_val, root / "model2", epochs=config.ae_epochs,
                              learning_rate=config.ae_learning_rate,
                              label_weight=config.ae_label_weight, resume=config.resume,
                              verbose=config.verbose)
        ae = load_best_model(trained.best_path, trained.model)
        score("model2", ae, root / "model2", "Model 2: autoencoder + classifier, trained jointly",
              root / "model2" / "history.csv", output="label")
        pseudo = pseudo_label(ae, pool, threshold=config.pseudo_threshold, true_labels=truth,
                              image_size=size)
        write_pseudo_labels(pseudo, root / "pseudo_labels.csv")
        print(f"pseudo-labels: {pseudo.stats.n_kept} of {pseudo.stats.n_pool} kept"
              + ("" if pseudo.stats.accuracy is None else f", accuracy {pseudo.stats.accuracy:.3f}"))

    for s in (3, 4):
        if s not in stages:
            continue
        name = f"model{s}"
        backbone = backbones[s]
        train_m = m.split("train")
        combined = Manifest(train_m.paths + pseudo.manifest.paths,
                            np.r_[train_m.labels, pseudo.manifest.labels], names)
        frac = config.combined_val_fraction
        combined = splits.stratified_split(combined, (1 - frac, frac), seed=config.seed,
                                           names=("train", "val"))
        is_pseudo = np.arange(len(combined)) >= len(train_m)
        ctrain = np.array([sp == "train" for sp in combined.splits])
        train_ds = mixed_dataset(
            [(combined.subset(ctrain & ~is_pseudo), config.augment),
             (combined.subset(ctrain & is_pseudo), config.pseudo_augment)],
            size, config.combined_batch_size, cache=cache, seed=config.seed,
        )
        if "val" in set(combined.splits):
            val_ds = make_dataset(combined.split("val"), size, config.combined_batch_size,
                                  training=False, cache=cache)
        else:  # no class of the combined set has 2 images (few labelled, no pseudo-label kept)
            print(f"{name}: the combined set ({len(train_m)} labelled + {len(pseudo.manifest)} "
                  "pseudo-labelled images) is too small for a validation split: phase 1 "
                  "validates on the labelled val split")
            val_ds = ds.val
        model = classifier(backbone)
        p1 = train(model, [phase("phase1", config.phase1_epochs, "all", config.phase1_learning_rate)],
                   train_ds, val_ds, root / name / "phase1", resume=config.resume, verbose=config.verbose)
        p2 = train(p1.model, [phase("phase2", config.phase2_epochs, "frozen", config.phase2_learning_rate)],
                   ds.train, ds.val, root / name / "phase2", resume=config.resume, verbose=config.verbose)
        offset = max((int(r["epoch"]) for r in p1.history), default=0)
        history = list(p1.history) + [{**r, "epoch": int(r["epoch"]) + offset} for r in p2.history]
        write_history(root / name / "history.csv", history)
        score(name, load_best_model(p2.best_path, p2.model), root / name,
              f"Model {s}: {backbone}, pseudo-labelled fine-tuning then head on the labelled set",
              root / name / "history.csv")

    best = max(rows, key=lambda r: r["val_acc"])
    atomic_save_model(models[best["model"]], run_folder.best_model_path)

    columns = ["model", "params", "val_loss", "val_acc"] + (
        ["pool_acc"] if truth is not None else []) + ["r1_val_acc", "report"]
    sections = [data_section(prepared)]
    sections[0] = ("Data", sections[0][1] + (
        f"\n\nUnlabelled pool: {parts.describe('`--labelled`', '`--unlabelled`')}"
        + ("" if truth is None else f"; {int((truth >= 0).sum())} of them with hidden true labels")
        + ". The systematic split takes no account of groups (as R1): frames of one fish may sit "
        "on both sides."))
    sections.append((
        "Models",
        "Scores on the labelled validation split (R1's score; R1 had no test split). "
        + ("`pool_acc`: accuracy on the unlabelled pool, whose true labels are hidden from "
           "training (transductive). " if truth is not None else "")
        + "`r1_val_acc`: R1's score on its own data, for reference.\n\n"
        + comparison_table(rows, columns=columns)
        + f"\nBest on validation accuracy: **{best['model']}** (saved as `best.keras`).",
    ))
    if pseudo is not None:
        st = pseudo.stats
        text = (f"Model 2 labelled {st.n_pool} pool images; {st.n_kept} had a confidence of at "
                f"least {st.threshold:g} and were kept (`pseudo_labels.csv`).")
        if st.accuracy is not None:
            text += (f" Their accuracy against the hidden true labels: **{st.accuracy:.3f}** "
                     f"(all pool predictions, no threshold: {st.accuracy_all:.3f}).")
        sections.append(("Pseudo-labels", text + "\n\n" + st.to_markdown()))
    metrics = {
        "models": rows,
        "best": best["model"],
        "val": next(r for r in rows if r["model"] == best["model"]),
        "pseudo_labels": None if pseudo is None else pseudo.stats.to_dict(),
        "pool": parts.counts(),
        "stages": stages,
    }
    write_metrics_json(root / "metrics.json", metrics)
    render_report(root, title=f"{RECIPE} (R1) — {root.name}", config=config_to_dict(config),
                  extra_sections=sections)
    run_folder.write_state({"finished": True, "stages": stages})
    headline = (f"best: {best['model']} val accuracy {best['val_acc']:.3f} ("
                + ", ".join(f"{r['model']} {r['val_acc']:.3f}" for r in rows) + ")")
    if pseudo is not None and pseudo.stats.accuracy is not None:
        headline += f"; pseudo-labels kept {pseudo.stats.n_kept}, accuracy {pseudo.stats.accuracy:.3f}"
    return FishSemiSupervisedResult(
        run_dir=root, report_path=root / "report.md", metrics=metrics,
        history=[], best_model_path=run_folder.best_model_path,
        seconds=time.perf_counter() - started, headline=headline, model=models[best["model"]],
        models=rows, pseudo_labels=metrics["pseudo_labels"], best=best["model"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recipes.fish_semisupervised [flags]``; returns the exit code."""
    return recipe_main(FishSemiSupervisedConfig, run, argv, prog="python -m recipes.fish_semisupervised",
                       description=__doc__.splitlines()[0])


__all__ = ["RECIPE", "FishSemiSupervisedConfig", "FishSemiSupervisedResult", "Plan", "stage_list",
           "hide_fraction", "reading_options", "checked_plan", "run", "main"]

if __name__ == "__main__":
    sys.exit(main())
