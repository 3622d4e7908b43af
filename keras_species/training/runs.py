"""Run folders (``runs/<recipe>/<name>/``), their listing, and the ``keras-species runs`` command.

A run folder holds everything one training run produced::

    config.json        resolved config + recipe, name, creation time, library versions
    history.csv        one row per epoch over all phases: epoch, phase, learning_rate, metrics
    tensorboard/       TensorBoard logs (``tensorboard --logdir runs``)
    best.keras         the best epoch on the plan's monitor (written atomically)
    metrics.json       evaluation scores, a ``test`` object among them
    predictions.csv    per-sample predictions on the test split
    report.md, plots/  the human-readable report and its figures
    state.json         resume state: next phase, epochs done, phase names, finished
    backup/phase<i>/   keras.callbacks.BackupAndRestore files of the phase in progress
    backup/phase<i>.best.weights.h5   best weights of the phase in progress (early stopping)
    checkpoints/       weights at the end of each finished phase (what a resume starts from)
    train_seconds.json training seconds of each session (summed into metrics.json's train_seconds)
    running.json       the process training the run (pid, host, start time), while it runs

A multi-model recipe (``backbone_comparison``, ``scratch_cnn``, ``fish_semisupervised``,
``inaturalist_vgg16``) trains each of its models in a subfolder laid out like a run folder
(``<backbone>/``, ``<variant>/fold<i>/``, ``model3/phase1/``...: :meth:`RunFolder.model_folders`)
and writes the run folder's own ``state.json`` only at the end (or never).

No TensorFlow import at module level: ``keras-species runs`` only reads JSON and CSV.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import difflib
import json
import os
import pkgutil
import re
import shlex
import shutil
import sys
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from keras_species.atomic import atomic_path
from keras_species.backbone_catalog import backbone_key, backbone_names
from keras_species.config import config_to_dict
from keras_species.jsonfile import json_type as _json_type
from keras_species.jsonfile import read_json_file, read_json_object
from keras_species.terminal import display_width
from keras_species.training.history import read_history
from keras_species.training.run_process import (
    describe,
    is_this_process,
    process_state,
    this_process,
)

CONFIG = "config.json"
HISTORY = "history.csv"
TENSORBOARD = "tensorboard"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
"""The final weights of a run trained with ``--evaluate-model last``, which its report scores."""
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
REPORT = "report.md"
PLOTS = "plots"
STATE = "state.json"
BACKUP = "backup"
CHECKPOINTS = "checkpoints"
FAILURE = "failed.json"
AUDIT = "audit"
TRAIN_SECONDS = "train_seconds.json"
RUNNING = "running.json"

PLAN = "plan.json"
"""The model folders a multi-model run will train, in order (:meth:`RunFolder.write_plan`), for
``keras-species runs`` to name those not begun."""

RUN_RESULT_FILES = (
    "split.csv", "split.prepared.json", METRICS, PREDICTIONS, REPORT, "comparison.csv",
    "pseudo_labels.csv", "classifier.joblib", TRAIN_SECONDS, PLAN,
)
"""The files of a run folder that hold its split and results (besides its training files and
model subfolders), removed when a run is started over in it (:meth:`RunFolder.start_over`):
``train_seconds.json`` (``recipe.TrainingClock``'s seconds of each session) among them, so that a
run started over does not add the old run's training time to its own."""

RUN_OWN_FILES = frozenset({*RUN_RESULT_FILES, CONFIG, HISTORY, BEST_MODEL, LAST_MODEL, STATE, FAILURE,
                           RUNNING, "folds.csv", "files.csv", "audit.json", "audit.md"})
"""File names a run writes in its folder and the folders below it (``fold0/history.csv``,
``audit/files.csv``)."""


def run_file_owner(path: str | os.PathLike) -> Path | None:
    """The run folder whose own file ``path`` is: an existing file of a name a run writes
    (:data:`RUN_OWN_FILES`), in a run folder (a ``config.json`` and the state of training) or up
    to two folders below it. ``split --out runs/x/split.csv`` or ``predict --out
    runs/x/predictions.csv`` replaced a run's split or scored predictions without a word, and its
    resume then failed.

    Args:
        path: an output file.

    Returns:
        The run folder, or ``None``.

    Example:
        >>> run_file_owner("runs/quickstart/r1/split.csv")  # doctest: +SKIP
        PosixPath('runs/quickstart/r1')
    """
    p = Path(path).absolute()
    if p.name not in RUN_OWN_FILES or not p.is_file():
        return None
    between: list[Path] = []  # the folders from the file's up to the run folder
    for folder in list(p.parents)[:3]:
        if _is_run_folder(folder):
            return folder if all(_made_by_a_run(f) for f in between) else None
        between.append(folder)
    return None


def _made_by_a_run(folder: Path) -> bool:
    """A folder a run makes inside its own: a fold's (``fold0``), the audit's, or one that holds
    a model's training or folds (``model2``, a backbone's, a scratch variant's ``cnn4``), not one
    the user made there for their own files (``preds_new/batch1``)."""
    if re.fullmatch(r"fold\d+", folder.name) or folder.name == AUDIT:
        return True
    if any((folder / name).is_file() for name in (HISTORY, BEST_MODEL, STATE, "folds.csv")):
        return True
    return any(re.fullmatch(r"fold\d+", child.name) and child.is_dir() for child in folder.iterdir())


def _is_run_folder(folder: Path) -> bool:
    """A keras-species run folder: a ``config.json`` that names its recipe, and the state of its
    training (a folder of the user's own with a ``config.json`` and a ``best.keras`` is not one)."""
    # metrics.json too: inaturalist_vgg16 trains in its stage folders and keeps no state.json
    if not (folder / CONFIG).is_file() or not any(
            (folder / name).exists() for name in (STATE, RUNNING, FAILURE, HISTORY, METRICS)):
        return False
    doc, reason = read_json_object(folder / CONFIG)
    return not reason and isinstance(doc.get("recipe"), str)


NOT_MODEL_FOLDERS = frozenset({BACKUP, CHECKPOINTS, TENSORBOARD, PLOTS, AUDIT})
"""Subfolders of a run folder that hold no model of its own (:meth:`RunFolder.model_folders`
does not look into them)."""

KEY_SETTINGS = (
    "image_size",
    "input_size",
    "batch_size",
    "epochs",
    "k",
    "head_epochs",
    "fine_tune_epochs",
    "optimizer",
    "learning_rate",
    "head_learning_rate",
    "fine_tune_learning_rate",
    "stages",
    "scratch",
    "features_epochs",
    "frozen_epochs",
    "scratch_epochs",
    "top_classes",
    "top_classes_count",
    "schedule",
    "unfreeze",
    "augment",
    "class_weight",
    "label_smoothing",
    "mixed_precision",
    "seed",
)
"""Config keys shown (when present) in the ``settings`` column of ``keras-species runs``. The
epoch settings (``epochs``, ``head_epochs``, ``fine_tune_epochs``) are each model's: a fold's
(``scratch_cnn``, with ``k`` folds), a backbone's (``backbone_comparison``), the run's one model
elsewhere; ``inaturalist_vgg16`` has its own (``stages``, ``features_epochs``...: its runs
differing only in them looked alike since stop 35)."""

TEST_SCORES = ("accuracy", "exact_match", "f1_micro", "micro_f1", "top5_accuracy")
"""Keys of ``metrics.json``'s ``test`` object that ``keras-species runs`` shows (one at least is
there in every ``test`` object that evaluation writes)."""

NO_EPOCH_RECIPES = frozenset({"feature_classifiers"})
"""Recipes that train no epochs (they fit scikit-learn classifiers on backbone features): their
rows leave ``epochs`` empty (None), not 0, and the ``models`` column counts the classifiers
fitted (``2 fitted``)."""

MODEL_UNITS = {"scratch_cnn": "fold", "backbone_comparison": "backbone"}
"""What a recipe's model folders are, by recipe, for the ``epochs`` cell of a run that trains
several models (``10 (5 folds)``); ``model`` for the other recipes."""


def epochs_over(recipe: str, models: Sequence[dict] | None) -> str | None:
    """What the ``epochs`` of a run that trains several models are summed over: its model folders
    (:meth:`RunFolder.model_folders`), named as the recipe names them (:data:`MODEL_UNITS`).

    ``scratch_cnn``'s folders are ``<variant>/fold<i>``: one variant gives ``"5 folds"``, an
    ablation ``"10 folds of 2 variants"``.

    Args:
        recipe: the run's recipe.
        models: its model folders (``None`` or empty for a run that trains in the run folder
            itself).

    Returns:
        E.g. ``"5 folds"``, ``"2 backbones"``, ``"4 models"``; None without model folders.

    Example:
        >>> epochs_over("scratch_cnn", [{"folder": "r2_cnn/fold0"}, {"folder": "r2_cnn/fold1"}])
        '2 folds'
        >>> epochs_over("backbone_comparison", [{"folder": "resnet18"}])
        '1 backbone'
        >>> epochs_over("quickstart", None) is None
        True
    """
    if not models:
        return None

    def count(n: int, unit: str) -> str:
        return f"{n} {unit}{'' if n == 1 else 's'}"

    text = count(len(by_model(models)), MODEL_UNITS.get(recipe, "model"))
    if recipe == "scratch_cnn":
        variants = {Path(m["folder"]).parts[0] for m in models}
        if len(variants) > 1:
            text += f" of {count(len(variants), 'variant')}"
    return text


def by_model(models: Sequence[dict]) -> dict[str, list[dict]]:
    """Model folders grouped by the model they train: the phases of one model
    (``fish_semisupervised``'s ``model3/phase1`` and ``model3/phase2``) are one model, which was
    counted twice; any other folder is a model of its own (a fold, a backbone).

    Args:
        models: :meth:`RunFolder.model_folders` rows.

    Returns:
        ``{model: its rows}`` in order.

    Example:
        >>> list(by_model([{"folder": "model1"}, {"folder": "model3/phase1"},
        ...                {"folder": "model3/phase2"}]))
        ['model1', 'model3']
    """
    grouped: dict[str, list[dict]] = {}
    for m in models:
        folder = Path(m["folder"])
        model = folder.parent if re.fullmatch(r"phase\d+", folder.name) and folder.parent.parts else folder
        grouped.setdefault(model.as_posix(), []).append(m)
    return grouped


def planned_models(recipe: str, conf: dict, written: Sequence[str] | None = None) -> list[str]:
    """The model folders a run of ``recipe`` with the settings ``conf`` trains, in order, as far
    as its settings tell: the run's own ``plan.json`` when it wrote one (``written``:
    ``inaturalist_vgg16``, ``fish_semisupervised``), else ``backbone_comparison``'s backbones,
    ``scratch_cnn``'s ``<variant>/fold<i>``
    (:func:`~keras_species.backbone_catalog.scratch_variants`, ``k`` folds each); none for the
    other recipes or settings that cannot be read.

    Args:
        recipe: the run's recipe.
        conf: its stored settings (``config.json``'s ``config``).
        written: :meth:`RunFolder.planned`.

    Returns:
        Folder names relative to the run folder.

    Example:
        >>> planned_models("scratch_cnn", {"arch": "r2_cnn", "k": 2})
        ['r2_cnn/fold0', 'r2_cnn/fold1']
        >>> planned_models("backbone_comparison", {"backbones": ["resnet18,vgg16"]})
        ['resnet18', 'vgg16']
    """
    from keras_species.backbone_catalog import scratch_variants

    if written is not None:
        return list(written)
    try:
        if recipe == "backbone_comparison":
            return backbone_names(conf.get("backbones") or [])
        k, arch = conf.get("k"), conf.get("arch")
        if recipe == "scratch_cnn" and isinstance(k, int) and k > 0 and isinstance(arch, str):
            names = scratch_variants(arch, bool(conf.get("ablation")),
                                     conf.get("ablation_regularised", True) is not False)
            return [f"{name}/fold{i}" for name in names for i in range(k)]
    except (ValueError, TypeError):  # a hand-edited config.json: list what the folder holds
        pass
    return []


def fitted_classifiers(state: dict, metrics: dict) -> list[str] | None:
    """The classifiers a run fitted instead of training epochs (``feature_classifiers``).

    Read from ``state.json``'s ``classifiers`` list (written when the run ends), else from the
    keys of ``metrics.json``'s ``classifiers`` object.

    Args:
        state: the run's ``state.json`` object (``{}`` when absent).
        metrics: its ``metrics.json`` object (``{}`` when absent).

    Returns:
        The classifiers' names (e.g. ``["svc", "logreg"]``), or None when the run records none.

    Example:
        >>> fitted_classifiers({"finished": True, "classifiers": ["svc", "logreg"]}, {})
        ['svc', 'logreg']
        >>> fitted_classifiers({"finished": True}, {}) is None
        True
    """
    for names in (state.get("classifiers"), metrics.get("classifiers")):
        if isinstance(names, dict):
            names = list(names)
        if isinstance(names, list) and names:
            return [str(n) for n in names]
    return None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (temporary file + ``os.replace``).

    Args:
        path: target file.
        obj: JSON-ready object (dataclasses, paths and tuples are converted).

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> write_json(tmp_path / "x.json", {"a": 1})  # doctest: +SKIP
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(config_to_dict(obj), f, indent=2, sort_keys=False, allow_nan=True)
        f.write("\n")
    return path


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it is absent.

    Args:
        path: the file.
        default: returned when the file does not exist.

    Returns:
        The parsed JSON (any JSON value).

    Raises:
        ValueError: the file is damaged (truncated, empty, not UTF-8): the message names it
            and why (:func:`keras_species.jsonfile.read_json_file`).

    Example:
        >>> read_json("runs/r/x/metrics.json", {})  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        return default
    data, reason = read_json_file(path)
    if reason:
        raise ValueError(f"{path} cannot be read as JSON ({reason})")
    return data


def _state_problem(state: dict, phases: int) -> str | None:
    """Why a ``state.json`` object cannot say where to resume a plan of ``phases`` phases."""
    index, epoch = state.get("phase_index", 0), state.get("epoch", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= phases:
        return f"phase_index {index!r} is not a phase number from 0 to {phases}"
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        return f"epoch {epoch!r} is not a number of epochs"
    return None


def keep_damaged_copy(path: str | os.PathLike) -> Path:
    """Copy a damaged file to ``<stem>.damaged<suffix>`` beside it before it is replaced.

    A copy already there is never overwritten: one with the same bytes is reused, otherwise
    ``<stem>.damaged-2<suffix>``, ``-3``... is taken.

    Args:
        path: the damaged file (e.g. ``runs/r/x/state.json``).

    Returns:
        The copy (e.g. ``runs/r/x/state.damaged.json``).

    Example:
        >>> keep_damaged_copy("runs/quickstart/demo/state.json").name  # doctest: +SKIP
        'state.damaged.json'
    """
    path = Path(path)
    data = path.read_bytes()
    k = 1
    while True:
        copy = path.with_name(f"{path.stem}.damaged{'' if k == 1 else f'-{k}'}{path.suffix}")
        if not copy.exists():
            with atomic_path(copy) as tmp:
                tmp.write_bytes(data)
            return copy
        if copy.is_file() and copy.read_bytes() == data:
            return copy
        k += 1


def _scores_problem(metrics: dict) -> str | None:
    """Why a ``metrics.json`` that reads as a JSON object holds no scores, or None.

    An empty object, or a ``test`` object without any of :data:`TEST_SCORES`, is what an
    evaluation never writes: the file was cut or edited, so the run is not shown as ``done``. A
    ``metrics.json`` without a ``test`` object is a recipe's own (``fish_semisupervised`` scores
    its models on ``val``) and is left alone.
    """
    if not metrics:
        return "holds no scores (an empty JSON object)"
    test = metrics.get("test")
    if isinstance(test, dict) and not any(key in test for key in TEST_SCORES):
        return f"'test' holds none of the scores listed ({', '.join(TEST_SCORES)})"
    return None


def _stage_set(stages: Any) -> set[str]:
    """The stages of a ``stages`` setting as stored (``"1,2,4"``, ``[1, 2, 4]``, ``"a b"``)."""
    if isinstance(stages, list | tuple):
        stages = ",".join(map(str, stages))
    return set(str(stages or "").replace(",", " ").split())


def backbone_text(recipe: str, conf: dict) -> str:
    """The ``backbone`` cell of a run: the backbone(s) its ``config.json`` settings train.

    ``backbone`` (most recipes), ``arch`` (``scratch_cnn``) or ``backbones``
    (``backbone_comparison``, joined with ``,``). A multi-model recipe without one names the
    backbone of each model it trains: ``fish_semisupervised``'s ``model1_backbone``,
    ``model3_backbone`` and ``model4_backbone`` of the models in its ``stages`` (model 2 is
    an autoencoder, without a backbone); ``inaturalist_vgg16``'s stages a, b and c are VGG16
    (``vgg16``) and its ``--scratch`` CNNs are ``r5_<name>``. Each name once, in model order,
    joined with ``,`` (e.g. ``resnet18,resnet50``).

    Args:
        recipe: the run's recipe.
        conf: the ``config`` object of its ``config.json``.

    Returns:
        The text (``""`` when the settings name none).

    Example:
        >>> backbone_text("fish_semisupervised", {"stages": "1,2,4", "model1_backbone": "resnet18",
        ...               "model3_backbone": "resnet50", "model4_backbone": "resnet18"})
        'resnet18'
        >>> backbone_text("inaturalist_vgg16", {"stages": "a,b", "scratch": "shallow"})
        'vgg16,r5_shallow'
    """
    single = conf.get("backbone") or conf.get("arch")
    if single:
        return str(single)
    backbones = conf.get("backbones")
    if backbones:
        try:  # the backbones it trains, once each (as typed: "resnet18,Resnet18")
            return ",".join(backbone_names(backbones if isinstance(backbones, (str, list)) else str(backbones)))
        except ValueError:
            return ""
    names: list[str] = []
    if recipe == "inaturalist_vgg16":
        if _stage_set(conf.get("stages", "a,b,c")) & {"a", "b", "c"}:
            names.append("vgg16")
        names += [f"r5_{n}" for n in sorted(_stage_set(conf.get("scratch")))]
    else:  # modelN_backbone settings (fish_semisupervised): the models its stages train
        stages = _stage_set(conf.get("stages")) if "stages" in conf else None
        for key in sorted(conf):
            number = key[len("model"):-len("_backbone")]
            if (key.startswith("model") and key.endswith("_backbone") and conf[key]
                    and (stages is None or number in stages)):
                names.append(str(conf[key]))
    return ",".join(dict.fromkeys(names))


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in ("keras-species", "keras", "tensorflow", "numpy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


class RunFolder:
    """The folder of one training run and the names of the files in it.

    Args:
        path: the run folder (created by ``mkdir`` / ``create``).

    Example:
        >>> run = RunFolder.create("quickstart", name="demo", root=tmp_path)  # doctest: +SKIP
        >>> run.write_config(config)  # doctest: +SKIP
        >>> run.best_model_path.name  # doctest: +SKIP
        'best.keras'
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @classmethod
    def create(
        cls,
        recipe: str,
        name: str | None = None,
        root: str | os.PathLike = "runs",
    ) -> RunFolder:
        """``root/recipe/name`` (``name`` defaults to a timestamp), created if absent.

        Args:
            recipe: the recipe's name (first folder level).
            name: the run's name; None gives ``YYYYmmdd-HHMMSS`` (made unique with a suffix).
            root: where runs live.

        Returns:
            The ``RunFolder``; an existing named folder is reused (that is how ``--resume``
            finds its run).
        """
        base = Path(root) / recipe
        if name is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            name, k = stamp, 2
            while (base / name).exists():
                name, k = f"{stamp}-{k}", k + 1
        run = cls(base / name)
        run.mkdir()
        return run

    def mkdir(self) -> RunFolder:
        """Create the folder (and ``plots/``); returns self."""
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        return self

    config_path = property(lambda self: self.path / CONFIG)
    history_path = property(lambda self: self.path / HISTORY)
    tensorboard_dir = property(lambda self: self.path / TENSORBOARD)
    best_model_path = property(lambda self: self.path / BEST_MODEL)
    metrics_path = property(lambda self: self.path / METRICS)
    predictions_path = property(lambda self: self.path / PREDICTIONS)
    report_path = property(lambda self: self.path / REPORT)
    plots_dir = property(lambda self: self.path / PLOTS)
    state_path = property(lambda self: self.path / STATE)
    failure_path = property(lambda self: self.path / FAILURE)
    running_path = property(lambda self: self.path / RUNNING)

    def backup_dir(self, phase_index: int) -> Path:
        """``backup/phase<i>``: the BackupAndRestore folder of phase ``i``."""
        return self.path / BACKUP / f"phase{phase_index}"

    def phase_best_weights_path(self, phase_index: int) -> Path:
        """``backup/phase<i>.best.weights.h5``: the best weights so far of phase ``i`` while it
        runs (early stopping restores them, also after a resume)."""
        return self.path / BACKUP / f"phase{phase_index}.best.weights.h5"

    def phase_weights_path(self, phase_index: int) -> Path:
        """``checkpoints/phase<i>.weights.h5``: the weights at the end of phase ``i``."""
        return self.path / CHECKPOINTS / f"phase{phase_index}.weights.h5"

    def write_config(self, config: Any, *, recipe: str | None = None, name: str | None = None) -> Path:
        """Write ``config.json``: the resolved config plus recipe, name, date and versions.

        The creation date of an existing ``config.json`` is kept (a resumed run keeps its date).
        That date (and the recipe and name when not given) is all that is taken from the old
        file: the rest is written from ``config``. So a damaged old ``config.json`` (truncated,
        empty, not UTF-8, not a JSON object) does not stop the run: it is kept as
        ``config.damaged.json`` beside it (never overwritten), a warning names both files, and
        ``config.json`` is written anew with today's date.

        Args:
            config: a dataclass or dict (converted with ``config_to_dict``).
            recipe: recipe name (default: the parent folder's name).
            name: run name (default: the folder's name).

        Returns:
            The path of ``config.json``.

        Example:
            >>> RunFolder("runs/quickstart/demo").write_config({"epochs": 5})  # doctest: +SKIP
            PosixPath('runs/quickstart/demo/config.json')
        """
        old, reason = read_json_object(self.config_path)
        if reason:
            kept = keep_damaged_copy(self.config_path)
            warnings.warn(
                f"{self.config_path} is damaged ({reason}): kept as {kept.name}, and written anew "
                "from this run's settings (its creation date is now)",
                stacklevel=2,
            )
        payload = {
            "recipe": recipe or old.get("recipe") or self.path.parent.name,
            "name": name or old.get("name") or self.path.name,
            "created": old.get("created") or _dt.datetime.now().isoformat(timespec="seconds"),
            "config": config_to_dict(config),
            "versions": _versions(),
        }
        return write_json(self.config_path, payload)

    def _read_object(self, path: Path, fix: str | None = None) -> dict:
        """The JSON object in ``path`` (``{}`` when absent); a ``ValueError`` naming the file,
        why it does not read and ``fix`` (if any) when it is damaged."""
        data, reason = read_json_object(path)
        if reason:
            raise ValueError(f"{path} is damaged ({reason})" + (f": {fix}" if fix else ""))
        return data

    def read_config(self) -> dict:
        """``config.json`` as written by ``write_config`` (``{}`` when absent).

        Raises:
            ValueError: the file is damaged (truncated, empty, not UTF-8, not a JSON object);
                the message names it, why, and the way out: restore it, or start the run over
                with ``--overwrite``.

        Example:
            >>> RunFolder("runs/quickstart/demo").read_config()["recipe"]  # doctest: +SKIP
            'quickstart'
        """
        return self._read_object(
            self.config_path,
            "restore it from a backup, or start the run over with --overwrite (its model and "
            "results are replaced)",
        )

    def write_metrics(self, metrics: dict) -> Path:
        """Write ``metrics.json`` (e.g. ``{"test": {...}, "val": {...}}``)."""
        return write_json(self.metrics_path, metrics)

    def read_metrics(self) -> dict:
        """``metrics.json`` (``{}`` when absent).

        Raises:
            ValueError: the file is damaged (truncated, empty, not UTF-8, not a JSON object);
                the message names it, why, and the way out: the run's ``report.md`` holds the
                same scores, and ``--resume`` evaluates a finished run again without training.

        Example:
            >>> RunFolder("runs/quickstart/demo").read_metrics()["test"]["accuracy"]  # doctest: +SKIP
            0.81
        """
        return self._read_object(
            self.metrics_path,
            f"its scores are also in {REPORT}; to write it again, run the recipe with --resume "
            f"--out {self.path.parent.parent} --name {self.path.name} (a finished run is "
            "evaluated again, not trained)",
        )

    def read_state(self) -> dict:
        """``state.json``: ``phase_index`` (next phase), ``epoch`` (epochs done), ``phases``
        (their names), ``finished``; ``{}`` when absent.

        Raises:
            ValueError: the file is damaged (the message names it and why); a resume reads it
                with :meth:`resume_state`, which can do without it.
        """
        return self._read_object(self.state_path)

    def resume_state(self, phases: Sequence[str]) -> dict:
        """Where a resumed training (``plan.train(resume=True)``) continues this run.

        ``state.json`` says it when it reads. It is written atomically at the end of each
        phase, so it is damaged only by something else (a disk error, a copy or sync tool, an
        edit), and what it holds is also in the folder: phase ``i`` is done when its
        ``checkpoints/phase<i>.weights.h5`` is there (written just before the state), and the
        phases' rows in ``history.csv`` give the epoch where the last finished phase ended. So
        when ``state.json`` is damaged, or missing while checkpoints are there, the state is
        rebuilt from the folder and written to ``state.json``, with a warning; the damaged file
        is first copied to ``state.damaged.json``. When the folder does not show where the run
        stopped beyond doubt (a checkpoint missing before another, history rows of phases other
        than the plan's, two phases in a row with one name), a ``ValueError`` says so and what
        to do instead, and nothing is written. No file of the run is removed or lost.

        Args:
            phases: the names of the plan's phases, in order.

        Returns:
            ``{"phase_index": i, "epoch": n, "phases": [...], "finished": bool}``: the phases
            before ``i`` are done, after ``n`` epochs (``0`` and ``0`` when none has ended);
            the phase in progress continues from its backup.

        Raises:
            ValueError: the run had other phases than ``phases``; ``state.json`` names a phase
                whose checkpoint is missing; or ``state.json`` is damaged and the folder does
                not show where to continue. Each message names the file and the way out.

        Example:
            >>> RunFolder("runs/convnext_transfer/demo").resume_state(["head", "fine_tune"])  # doctest: +SKIP
            {'phase_index': 1, 'epoch': 10, 'phases': ['head', 'fine_tune'], 'finished': False}
        """
        names = list(phases)
        state, reason = read_json_object(self.state_path)
        missing = not self.state_path.exists()
        if not (reason or missing):
            stored = state.get("phases")
            if stored and stored != names:
                raise ValueError(
                    f"cannot resume {self.path}: its phases were {stored}, the plan now has "
                    f"{names}; use the same plan or start without --resume"
                )
            reason = _state_problem(state, len(names))
        if not (reason or missing):
            index = state.get("phase_index", 0)
            checkpoint = self.phase_weights_path(index - 1)
            if index > 0 and not checkpoint.is_file():
                raise ValueError(
                    f"cannot resume {self.path}: {STATE} says phase {index} of {len(names)} "
                    f"ended, but {checkpoint.relative_to(self.path)} is missing; put it back, or "
                    "start the run over without --resume"
                )
            return state
        if not (missing or self.state_path.is_file()):  # a folder: no state.json can replace it
            rebuilt, why = None, "it cannot be replaced"
        else:
            rebuilt, why = self._state_from_files(names)
        what = "missing" if missing else f"damaged ({reason})"
        if rebuilt is None:
            raise ValueError(
                f"cannot resume {self.path}: {STATE} is {what} and {why}; restore {STATE} from "
                "a backup, or start the run over without --resume (that removes its history "
                "and checkpoints)"
            )
        if missing and rebuilt["phase_index"] == 0:
            return rebuilt  # no phase has ended yet: the usual folder of a run killed early
        index = rebuilt["phase_index"]
        where = (f"all {len(names)} phases ended" if rebuilt["finished"] else
                 f"resuming with phase {index + 1} of {len(names)} ({names[index]!r})")
        if not missing:
            what = f"damaged ({reason}; kept as {keep_damaged_copy(self.state_path).name})"
        self.write_state(rebuilt)
        warnings.warn(
            f"{self.state_path} is {what}; rebuilt from {CHECKPOINTS}/ and {HISTORY}: {where}, "
            f"after epoch {rebuilt['epoch']}",
            stacklevel=2,
        )
        return rebuilt

    def _state_from_files(self, names: list[str]) -> tuple[dict | None, str]:
        """The state that the checkpoints and history show, or None and why they do not."""
        suffix = ".weights.h5"
        found = [p.name[len("phase"):-len(suffix)]
                 for p in (self.path / CHECKPOINTS).glob(f"phase*{suffix}")]
        done = sorted(int(i) for i in found if i.isdigit())
        if done != list(range(len(done))) or len(done) > len(names):
            return None, (f"{CHECKPOINTS}/ holds the weights of phases {done} of a "
                          f"{len(names)}-phase plan")
        if any(a == b for a, b in zip(names, names[1 : len(done) + 1])):
            return None, f"two phases in a row are named alike, which {HISTORY} cannot tell apart"
        spans: list[list] = []  # [phase name, last epoch] of each run of rows of one phase
        for row in self.read_history():
            if spans and spans[-1][0] == row.get("phase"):
                spans[-1][1] = row.get("epoch")
            else:
                spans.append([row.get("phase"), row.get("epoch")])
        logged = [name for name, _ in spans]
        if len(spans) not in (len(done), len(done) + 1) or logged != names[: len(spans)]:
            return None, (f"{HISTORY} holds rows of the phases {logged} while {CHECKPOINTS}/ "
                          f"shows {len(done)} of {names} ended")
        epoch = spans[len(done) - 1][1] if done else 0
        return {"phase_index": len(done), "epoch": epoch, "phases": names,
                "finished": len(done) == len(names)}, ""

    def write_state(self, state: dict) -> Path:
        """Write ``state.json`` atomically."""
        return write_json(self.state_path, state)

    def write_plan(self, models: Sequence[str]) -> Path:
        """Write ``plan.json``: the model folders this run trains, in order, as the recipe
        resolved them from its settings (``inaturalist_vgg16``'s stages, ``fish_semisupervised``'s
        models), for :func:`planned_models`.

        Args:
            models: folder names relative to the run folder (``b_frozen``, ``model3``).

        Returns:
            The file's path.

        Example:
            >>> RunFolder("runs/inaturalist_vgg16/i1").write_plan(["a_features"])  # doctest: +SKIP
        """
        return write_json(self.path / PLAN, {"models": [str(m) for m in models]})

    def planned(self) -> list[str] | None:
        """The model folders of ``plan.json`` (None without a readable one: an older run)."""
        if not (self.path / PLAN).is_file():
            return None
        doc, reason = read_json_object(self.path / PLAN)
        models = None if reason else doc.get("models")
        return [str(m) for m in models] if isinstance(models, list) else None

    def write_failure(self, message: str, trace: str | None = None) -> Path:
        """Write ``failed.json``: why the run stopped with an error (``keras-species runs`` then
        shows it as ``failed``; starting or resuming the run removes it).

        Args:
            message: the error, as the user saw it.
            trace: the formatted traceback (kept for a bug report; the user is shown only the
                message of an error they can fix).

        Returns:
            The path written.

        Example:
            >>> RunFolder("runs/quickstart/x").write_failure("no images found")  # doctest: +SKIP
        """
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        return write_json(self.failure_path, {"error": message, "when": stamp, "traceback": trace})

    def read_failure(self) -> dict:
        """``failed.json`` (``{}`` when the run has not failed).

        Raises:
            ValueError: the file is damaged (truncated, empty, not UTF-8, not a JSON object):
                the run failed but its error is lost; the message names the file, why, and says
                to run it again.

        Example:
            >>> RunFolder("runs/quickstart/x").read_failure().get("error")  # doctest: +SKIP
            'no images found'
        """
        return self._read_object(
            self.failure_path,
            "the run failed, but its error is lost; run the same command again to see it "
            "(that removes this file)",
        )

    def mark_running(self) -> Path:
        """Write ``running.json``: the process calling it trains this run from now on
        (:func:`~keras_species.training.run_process.this_process`: pid, host, start time).

        ``keras-species runs`` lists the run as ``running`` while that process is alive, and
        :func:`keras_species.recipe.start_run` refuses to resume or start over a run whose
        process is; :meth:`clear_running` removes the file when the run ends.

        Returns:
            The path written.

        Example:
            >>> RunFolder("runs/quickstart/demo").mark_running().name  # doctest: +SKIP
            'running.json'
        """
        return write_json(self.running_path, this_process())

    def claim(self) -> bool:
        """Write ``running.json`` for the process calling it only if no such file exists (one
        system call that creates it or fails), creating the folder if needed: of two processes
        that start a run of one name at once, one claims it (before, both went on and trained
        into one folder).

        Returns:
            True when this call wrote the record; False when a record was there (the caller
            asks :meth:`live_process` whose it is).

        Example:
            >>> RunFolder("runs/quickstart/demo").claim()  # doctest: +SKIP
            True
        """
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.running_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(this_process(), f, indent=2)
            f.write("\n")
        return True

    def clear_running(self) -> None:
        """Remove ``running.json`` if it names the process calling it (another process's
        record, or one that cannot be read, stays)."""
        record = self.running_record()
        if record is not None and is_this_process(record):
            self.running_path.unlink(missing_ok=True)

    def running_record(self) -> dict | None:
        """``running.json``: the process that trains (or trained) this run, or None when the
        file is absent or cannot be read (a damaged record says nothing about a process)."""
        record, reason = read_json_object(self.running_path)
        return None if reason or not record else record

    def live_process(self) -> tuple[str, dict] | None:
        """The process that trains this run now, as far as this machine can tell.

        Returns:
            ``("alive", record)`` when the process of ``running.json`` runs on this machine,
            ``("unknown", record)`` when it ran on another machine (it cannot be checked from
            here), None when there is no record or its process is gone (a run killed outright
            leaves the file: it is ``stopped``) or is the process calling it.

        Example:
            >>> RunFolder("runs/quickstart/demo").live_process()  # doctest: +SKIP
            ('alive', {'pid': 4121, 'host': 'gpu1', ...})
        """
        record = self.running_record()
        if record is None or is_this_process(record):
            return None
        state = process_state(record)
        return None if state == "gone" else (state, record)

    def read_history(self) -> list[dict]:
        """Rows of ``history.csv`` (``[]`` when absent), as :func:`history.read_history
        <keras_species.training.history.read_history>` reads them (without Keras, so that
        ``keras-species runs`` never imports it): a last line cut short is skipped with a
        warning; another malformed line raises a ``ValueError`` that names the file and the
        line."""
        return read_history(self.history_path)

    def reset_training(self) -> None:
        """Remove what a previous training in this folder left (history, state, backups,
        phase checkpoints, best.keras, last.keras, TensorBoard logs): a run started without
        ``--resume``."""
        for name in (HISTORY, STATE, BEST_MODEL, LAST_MODEL):
            (self.path / name).unlink(missing_ok=True)
        for name in (BACKUP, CHECKPOINTS, TENSORBOARD):
            shutil.rmtree(self.path / name, ignore_errors=True)

    def start_over(self) -> None:
        """Remove what an earlier run in this folder wrote, for a run started over in it
        (``--overwrite``, or a failed run started again): its training files
        (:meth:`reset_training`), its split and results (:data:`RUN_RESULT_FILES`), the figures
        of ``plots/`` (``*.png``) and every model subfolder of a multi-model recipe
        (:meth:`model_folders` that hold a training record: ``history.csv``, ``state.json`` or
        ``best.keras``), each with the folder of the run folder that holds it (``r2_cnn/`` of
        ``r2_cnn/fold0/``, ``model4/`` of ``model4/phase1/``: its joined ``history.csv`` and
        reports go too).

        Without it a run started over kept the old run's ``state.json`` (listed ``not
        evaluated``) and finished models (a later ``--resume`` skipped training them). Files
        and folders no recipe writes stay, and so do folders holding only models saved whole
        (``model.keras``; they may be a user's exports): ``config.json`` is the caller's.

        Example:
            >>> RunFolder("runs/backbone_comparison/demo").start_over()  # doctest: +SKIP
        """
        tops = {
            self.path / Path(entry["folder"]).parts[0] for entry in self.model_folders()
            if any((self.path / entry["folder"] / name).is_file()
                   for name in (HISTORY, STATE, BEST_MODEL))
        }
        for top in sorted(tops):
            shutil.rmtree(top, ignore_errors=True)
        self.reset_training()
        for name in RUN_RESULT_FILES:
            (self.path / name).unlink(missing_ok=True)
        if self.plots_dir.is_dir():
            for figure in self.plots_dir.glob("*.png"):
                figure.unlink(missing_ok=True)

    def model_folders(self) -> list[dict]:
        """The models that a multi-model recipe trains in subfolders of this run folder.

        ``backbone_comparison`` (``<backbone>/``), ``scratch_cnn`` (``<variant>/fold<i>/``),
        ``fish_semisupervised`` (``model1/``, ``model2/``, ``model3/phase1/``,
        ``model3/phase2/``) and ``inaturalist_vgg16`` (``b_frozen/``, ``c_fine_tune/``,
        ``scratch_<name>/``) train each model with ``plan.train`` in a folder of its own
        (``history.csv``, ``state.json``, ``best.keras``); ``inaturalist_vgg16``'s
        ``a_features/`` holds models saved whole once trained (``head.keras``,
        ``model.keras``). A model folder is a subfolder holding one of these files; one that
        holds model folders itself is not counted (``model3/history.csv`` joins its phases'
        rows). :data:`NOT_MODEL_FOLDERS`, hidden folders (and files: an unfinished atomic
        write) and subfolders with a ``config.json`` (runs of their own) are left out.

        Returns:
            One dict per model folder, sorted by folder: ``folder`` (relative to the run
            folder, with ``/``), ``status`` (``trained``: its ``state.json`` says finished, or
            it holds only models saved whole; ``stopped``: training logged but not finished,
            or a ``state.json`` that cannot be read) and ``epochs`` (rows of its
            ``history.csv``; 0 when it cannot be read). ``[]`` for a run that trains in the
            run folder itself.

        Example:
            >>> RunFolder("runs/scratch_cnn/demo").model_folders()  # doctest: +SKIP
            [{'folder': 'r2_cnn/fold0', 'status': 'trained', 'epochs': 10},
             {'folder': 'r2_cnn/fold1', 'status': 'stopped', 'epochs': 4}]
        """
        logged: dict[Path, bool] = {}  # model folder -> holds a training record (not only models)
        for here, subfolders, files in os.walk(self.path):
            subfolders[:] = sorted(
                name for name in subfolders
                if name not in NOT_MODEL_FOLDERS and not name.startswith(".")
                and not (Path(here) / name / CONFIG).is_file()
            )
            if Path(here) == self.path:
                continue
            record = any(name in files for name in (HISTORY, STATE, BEST_MODEL))
            if record or any(n.endswith(".keras") and not n.startswith(".") for n in files):
                logged[Path(here)] = record
        found = []
        for path, record in sorted(logged.items()):
            if any(other != path and path in other.parents for other in logged):
                continue  # it holds model folders: they are counted
            sub = RunFolder(path)
            state, reason = read_json_object(sub.state_path)
            try:
                epochs = len(sub.read_history())
            except (OSError, ValueError, TypeError, csv.Error):
                epochs = 0
            finished = not reason and state.get("finished") is True
            found.append({
                "folder": path.relative_to(self.path).as_posix(),
                "status": "trained" if finished or not record else "stopped",
                "epochs": epochs,
            })
        return found

    def summary(self, root: str | os.PathLike | None = None) -> dict:
        """One row of ``list_runs``: run folder, recipe, date, backbone, settings, status, scores.

        A file that cannot be read (truncated, empty, not UTF-8, not a JSON object) does not
        raise: the row gets status ``unreadable`` and ``problem`` names the file and why, and
        the other columns show what the readable files hold. So does a ``metrics.json`` that
        holds no scores (``{}``, or a ``test`` object without any of :data:`TEST_SCORES`: the
        run is not shown as ``done``), and a missing ``config.json`` (a folder listed for its
        damaged ``state.json`` alone).

        The status, first that applies:

        - ``unreadable``: a problem above;
        - ``done``: evaluated (``metrics.json``) after its training finished (``state.json``),
          or evaluated by a recipe that keeps no ``state.json`` in the run folder itself
          (``inaturalist_vgg16`` trains its models in subfolders), and no ``failed.json`` since
          (a ``--resume`` of a finished run that failed showed ``done``);
        - ``running``: the process that opened the run (``running.json``,
          :meth:`live_process`) is alive on this machine: it is training or evaluating it now;
          ``running?``: that process ran on another machine, which cannot be checked from
          here (a run folder on a shared disk): it may be running, or killed there;
        - ``failed``: ``failed.json`` is there (the recipe stopped with an error);
        - ``not evaluated``: training finished but there is no ``metrics.json``: the run was
          killed during its final evaluation; ``--resume`` evaluates it without training;
        - ``stopped``: some training is logged (``history.csv``, ``state.json``, or a model
          folder of a multi-model recipe: :meth:`model_folders`) but it did not finish;
          ``--resume`` continues it (the scores of an earlier evaluation, when its
          ``metrics.json`` is still there, stay in the row until the resumed run is evaluated
          again);
        - ``new``: nothing trained yet.

        A multi-model recipe writes the run folder's own ``state.json`` only at the end, so a
        run of it that is not done is read from its model folders: it is ``stopped`` (not
        ``new``) once one of them holds training, its ``epochs`` are those of all its model
        folders, and ``models`` lists them. A ``state.json`` saying finished while a model
        folder's training is not is one left by an earlier run of the folder (started over
        with ``--overwrite``, or after a failure): the run is ``stopped``, not ``not
        evaluated``, and ``training_finished`` is False.

        Args:
            root: the folder the runs are listed from; ``run`` is the run folder relative to it
                (default, or when the run folder is ``root`` itself: the folder's name).

        Returns:
            A dict: run, path, recipe, date, name (the config's), backbone (or backbones), weights
            (``none`` for random initialisation; None when the recipe has no such setting), data
            (the ``data`` or ``labelled`` setting, as stored), settings (``key=value`` words),
            key_settings (the same as a dict, for the table's comparison), status
            (``done``, ``running``, ``running?``, ``failed``, ``not evaluated``, ``stopped``,
            ``new`` or ``unreadable``), process (the ``running.json`` record of a ``running``
            or ``running?`` run: pid, host, start time, since; else None),
            training_finished (``state.json`` says the training finished), error (of a failed
            run), problem (of an unreadable one), epochs (of a run that trains its models in
            subfolders: those of all its model folders, whatever its status; None for a run
            that trains no epochs: one that fitted classifiers, or of a recipe in
            :data:`NO_EPOCH_RECIPES`; else the rows of its ``history.csv``), epochs_over
            (what a run's epochs are summed over, :func:`epochs_over`: ``"5 folds"``; None for
            a run that trains one model), models
            (:meth:`model_folders` of a run that trains its models in subfolders, in every
            status, else None), classifiers (:func:`fitted_classifiers`: the names of the
            classifiers a ``feature_classifiers`` run fitted, else None), test_accuracy (the
            test split's ``accuracy``, or a multi-label run's ``exact_match``: the share of
            images with every label right), test_accuracy_metric (which of the two:
            ``"accuracy"``, ``"exact_match"``, or None without one), test_micro_f1,
            test_top5, and for a ``metrics.json`` without a test split
            (``fish_semisupervised``) best_model and val_accuracy.

        Example:
            >>> RunFolder("runs/quickstart/demo").summary("runs")["run"]  # doctest: +SKIP
            'quickstart/demo'
        """
        problems: list[str] = []

        def read(path: Path) -> dict:
            data, reason = read_json_object(path)
            if reason:
                problems.append(f"{path.name}: {reason}")
            return data

        def member(data: dict, key: str, file: str) -> dict:
            value = data.get(key)
            if value is None:
                return {}
            if not isinstance(value, dict):
                problems.append(f"{file}: {key!r} holds a JSON {_json_type(value)}, not an object")
                return {}
            return value

        cfg = read(self.config_path)
        conf = member(cfg, "config", CONFIG)
        known = len(problems)
        metrics = read(self.metrics_path)
        test = member(metrics, "test", METRICS)
        if len(problems) == known and self.metrics_path.is_file():  # it reads: are scores in it?
            why = _scores_problem(metrics)
            if why:
                problems.append(f"{METRICS}: {why}")
        state = read(self.state_path)
        failure = read(self.failure_path)
        try:
            history = self.read_history()
        except (OSError, ValueError, TypeError, csv.Error) as err:  # UnicodeDecodeError is a ValueError
            problems.append(f"{HISTORY}: cannot be read ({' '.join(str(err).split()) or type(err).__name__})")
            history = []
        if not self.config_path.exists():  # every run writes it first: its settings are lost
            problems.append(f"{CONFIG}: does not exist")
        # metrics.json is written by the evaluation only, after the training (a run started
        # over loses its old one); here it reads and holds scores, as no problem was found
        evaluated = self.metrics_path.is_file()
        trained = state.get("finished") is True
        # done: no state.json is a recipe that keeps none (inaturalist_vgg16); a failed.json left
        # by a later attempt (a --resume that failed) is not done, whatever scores remain
        failed_since = bool(failure) or self.failure_path.exists()
        done = not problems and evaluated and (trained or not state) and not failed_since
        # every status: a finished multi-model run's epochs are its models' too (its own
        # history.csv is a copy of one model's, or absent); a folder of models saved whole
        # alone (a user's export/ of a single-model run) does not stand for its training
        models = self.model_folders()
        if not any(m["epochs"] or m["status"] == "stopped" for m in models):
            models = [] if done or problems else models
        if not done and trained and any(m["status"] == "stopped" for m in models):
            trained = False  # a state.json of an earlier run of the folder: its models train again
        live = None if problems or done else self.live_process()
        if problems:
            status = "unreadable"
        elif done:
            status = "done"
        elif live is not None:  # its process runs (here), or may run (on another machine)
            status = "running" if live[0] == "alive" else "running?"
        elif failure or self.failure_path.exists():
            status = "failed"
        elif trained:  # killed during the evaluation that ends every run (an error: failed)
            status = "not evaluated"
        elif history or state or models:
            status = "stopped"
        else:
            status = "new"
        settings: dict[str, str] = {}
        for key in KEY_SETTINGS:
            if key in conf and conf[key] is not None:
                value = conf[key]
                if isinstance(value, list):  # a size is HxW; stages and names a list
                    settings[key] = ("x" if key.endswith("_size") else ",").join(map(str, value))
                else:
                    settings[key] = str(value)
        data = conf.get("data") or conf.get("labelled")
        recipe = cfg.get("recipe")
        recipe = recipe if isinstance(recipe, str) and recipe else self.path.parent.name
        classifiers = fitted_classifiers(state, metrics)
        if models and status != "done":
            # the models it has not begun: a stopped comparison of 3 read "1 trained, 1
            # stopped" without a word of the third, a scratch_cnn killed in its 1st of 5 folds
            # "1 fold"
            begun = {backbone_key(name) for name in by_model(models)}  # model3, not model3/phase1
            models = models + [{"folder": name, "status": "not started", "epochs": 0}
                               for name in planned_models(recipe, conf, self.planned())
                               if backbone_key(name) not in begun]
        over = None  # what the epochs are summed over: a multi-model run's models
        if any(m["epochs"] for m in models):
            epochs: int | None = sum(m["epochs"] for m in models)
            over = epochs_over(recipe, models)
        elif not history and not models and (classifiers or recipe in NO_EPOCH_RECIPES):
            epochs = None  # it fits classifiers: no epochs to count (0 would read as none trained)
        else:
            epochs = len(history)
        accuracy_metric = next((key for key in ("accuracy", "exact_match") if key in test), None)
        return {
            "run": self.run_id(root),
            "path": str(self.path),
            "recipe": recipe,
            "date": str(cfg.get("created") or ""),
            "name": cfg.get("name", self.path.name),
            "backbone": backbone_text(recipe, conf),
            "weights": _weights_text(conf.get("weights")) if "weights" in conf else None,
            "data": data if isinstance(data, str) else None,
            "settings": " ".join(f"{k}={v}" for k, v in settings.items()),
            "key_settings": settings,
            "status": status,
            "process": live[1] if live is not None else None,
            "training_finished": trained,
            "error": failure.get("error"),
            "problem": "; ".join(problems) or None,
            "epochs": epochs,
            "epochs_over": over,
            "models": models or None,
            "classifiers": classifiers,
            "split_kept": (self.path / "split.csv").is_file(),
            "test_accuracy": test.get(accuracy_metric) if accuracy_metric else None,
            "test_accuracy_metric": accuracy_metric,
            "test_micro_f1": test.get("f1_micro", test.get("micro_f1")),
            "test_top5": test.get("top5_accuracy"),
            **_validation_headline(metrics, test),
        }

    def run_id(self, root: str | os.PathLike | None = None) -> str:
        """The run folder relative to ``root``, the name that tells two runs apart.

        Args:
            root: the runs folder (or a recipe folder) the run lies under.

        Returns:
            ``"<recipe>/<name>"`` for ``root="runs"``, ``"<name>"`` for a recipe folder; the
            folder's own name when ``root`` is None, the run folder itself or not above it.

        Example:
            >>> RunFolder("runs/quickstart/demo").run_id("runs")
            'quickstart/demo'
        """
        if root is not None:
            try:
                relative = self.path.relative_to(root)
            except ValueError:
                relative = None
            if relative is not None and relative.parts:
                return relative.as_posix()
        return self.path.name


def list_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """Every run folder under ``root`` (any depth; a folder with a ``config.json`` naming a
    recipe, or one that cannot be read, or a damaged ``state.json``), one summary dict each,
    sorted by date (oldest first).

    Args:
        root: the runs folder, a recipe folder, or one run folder.

    Returns:
        ``RunFolder.summary(root)`` dicts: run (the folder relative to ``root``), path, recipe,
        date, name, backbone, settings, status (``done``, ``running``, ``running?``, ``failed``,
        ``not evaluated``, ``stopped``, ``new`` or ``unreadable``: see :meth:`RunFolder.summary`),
        process (the ``running.json`` record of a running run, else None),
        training_finished, error (of a failed run, else None), problem (of an unreadable run:
        the file and why, else None), epochs, epochs_over (what a multi-model run's epochs
        are summed over, e.g. ``"5 folds"``, else None), models (the model folders of a
        multi-model run, else None), test_accuracy, test_micro_f1, test_top5 (best_model and val_accuracy of a
        run without a test split). A run with a damaged ``config.json`` is listed too
        (without a date, so first), and so is a folder with a damaged ``state.json`` and no
        ``config.json`` (its settings lost too), and a run folder whose ``config.json`` was
        deleted (it still holds a file only a recipe writes in a run folder,
        :data:`RUN_RESULT_FILES`, and a training record or scores): ``unreadable``,
        ``config.json: does not exist``.

    Example:
        >>> [r["run"] for r in list_runs("runs")]  # doctest: +SKIP
        ['quickstart/20250101-120000', 'quickstart/demo']
    """
    root = Path(root)
    if not root.exists():
        return []
    # a model folder of a run above root (runs/backbone_comparison/c1/resnet18): its files are
    # that run's, not a run that lost its config.json
    above = enclosing_run(root)

    def in_run_folder(path: Path) -> bool:
        inside = path.relative_to(root).parts  # not the parts of root: it may lie under a "backup"
        return not (BACKUP in inside or TENSORBOARD in inside)

    folders = []
    for cfg in sorted(root.rglob(CONFIG)):
        if not in_run_folder(cfg):
            continue
        data, reason = read_json_object(cfg)
        if reason or "recipe" in data:  # a damaged config.json is listed, as "unreadable"
            folders.append(cfg.parent)
    for state in sorted(root.rglob(STATE)):
        # a damaged state.json without a config.json beside it: a run that lost both is listed
        # too, as "unreadable", rather than left out (train() alone writes no config.json, so a
        # readable state.json alone is not a recipe's run)
        if in_run_folder(state) and state.parent not in folders and read_json_object(state)[1]:
            folders.append(state.parent)
    # a run folder whose config.json was deleted: it still holds what only a recipe writes in
    # a run folder (metrics.json, split.csv...: RUN_RESULT_FILES) beside a training record or
    # its scores; listed as "unreadable" (config.json: does not exist). A folder under a run
    # folder listed (a model folder: fish_semisupervised's model1/ has its own metrics.json)
    # is not, nor a bare train() folder (history.csv, state.json, best.keras alone)
    for folder in sorted({p.parent for name in RUN_RESULT_FILES for p in root.rglob(name)}):
        if not in_run_folder(folder / CONFIG) or (folder / CONFIG).exists() or any(
                part.startswith(".") or part in NOT_MODEL_FOLDERS
                for part in folder.relative_to(root).parts):
            continue
        if above is not None or any(other == folder or other in folder.parents for other in folders):
            continue
        if any((folder / name).is_file() for name in (STATE, HISTORY, BEST_MODEL, METRICS)):
            folders.append(folder)
    found = [RunFolder(folder).summary(root) for folder in folders]
    return sorted(found, key=lambda r: (r["date"], r["path"]))


def enclosing_run(folder: str | os.PathLike) -> tuple[Path, str] | None:
    """The run folder that ``folder`` lies inside (a model folder, ``plots/``...), with its
    recipe: the nearest folder above with a ``config.json`` naming one, inside a folder named
    for that recipe (``<out>/<recipe>/<run>``, as every run folder is made: a project folder
    holding a run's ``config.json`` to reuse with ``--config`` is no run); ``None`` when there
    is none (``folder`` itself is not counted).

    Example:
        >>> enclosing_run("runs/backbone_comparison/c1/resnet18")   # doctest: +SKIP
        (PosixPath('runs/backbone_comparison/c1'), 'backbone_comparison')
    """
    for parent in Path(folder).absolute().parents:
        if (parent / CONFIG).is_file():
            data, reason = read_json_object(parent / CONFIG)
            if not reason and isinstance(data.get("recipe"), str) and parent.parent.name == data["recipe"]:
                return parent, data["recipe"]
    return None


def _validation_headline(metrics: dict, test: dict) -> dict:
    """``best_model`` and ``val_accuracy`` of a ``metrics.json`` without a ``test`` object whose
    ``val`` object is its best model's row (``fish_semisupervised``: R1 had no test split, so
    its models are scored on the validation split only); ``{}`` otherwise. Shown below the
    table, never in its test columns."""
    val = metrics.get("val")
    if test or not isinstance(val, dict):
        return {}
    score = val.get("val_acc", val.get("accuracy"))
    if not isinstance(score, int | float) or isinstance(score, bool):
        return {}
    best = metrics.get("best")
    return {"best_model": best if isinstance(best, str) else None, "val_accuracy": score}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _is_exact_match(row: dict) -> bool:
    """Whether a row's ``test_accuracy`` is a multi-label run's exact-match accuracy."""
    return row.get("test_accuracy_metric") == "exact_match" and row.get("test_accuracy") is not None


def _accuracy_cell(row: dict) -> str | None:
    """The ``test acc`` cell: ``"0.812"``, or ``"0.095 (exact)"`` for exact-match accuracy."""
    value = row.get("test_accuracy")
    if _is_exact_match(row) and isinstance(value, int | float):
        return f"{_cell(float(value))} (exact)"
    return value


def _epochs_cell(row: dict) -> str | None:
    """The ``epochs`` cell: ``"6"``, ``"10 (5 folds)"`` for a run that trains several models
    (the sum over them, :func:`epochs_over`), None (``-``) for a run that trains none."""
    epochs = row.get("epochs")
    if epochs is None:
        return None
    return f"{epochs} ({row['epochs_over']})" if row.get("epochs_over") else str(epochs)


def _epochs_note(rows: list[dict]) -> str | None:
    """The line under the table that says what the ``epochs`` cells count, when a row's cell
    needs it: a sum over several models (``10 (5 folds)``; the example is the row of most
    models), or ``-`` (a run that fits classifiers). None when every row trained one model."""
    summed = [r for r in rows if r.get("epochs_over") and r.get("epochs") is not None]
    fitted = any(r.get("epochs") is None and (r.get("classifiers") or r.get("recipe") in NO_EPOCH_RECIPES)
                 for r in rows)
    if not (summed or fitted):
        return None
    parts = ["epochs: the epochs trained."]
    if summed:
        example = max(summed, key=lambda r: len(r.get("models") or []))
        parts.append(f"{_epochs_cell(example)}: the sum over the run's {example['epochs_over']}; "
                     "the epoch settings (epochs=, head_epochs=, fine_tune_epochs=) are per model "
                     "(per fold, per backbone).")
    if fitted:
        parts.append("-: the run fits classifiers on backbone features and trains no epochs.")
    return " ".join(parts)


def _models_cell(models: list[dict] | None, classifiers: list[str] | None = None,
                 running: bool = False) -> str | None:
    """The ``models`` cell of a row: ``"2 trained, 1 stopped"`` of its model folders (``"1 in
    progress"`` for a running run's unfinished ones), or ``"2 fitted"`` of the classifiers it
    fitted (None without either)."""
    if not models:
        return f"{len(classifiers)} fitted" if classifiers else None

    def status(rows: list[dict]) -> str:  # a model's, from its phases' folders
        states = {m["status"] for m in rows}
        return states.pop() if len(states) == 1 else "stopped"

    statuses = [status(rows) for rows in by_model(models).values()]
    counts = {s: statuses.count(s) for s in ("trained", "stopped", "not started")}
    unfinished = "in progress" if running else "stopped"
    return ", ".join(f"{n} {unfinished if s == 'stopped' else s}" for s, n in counts.items() if n)


def _models_line(models: list[dict]) -> str:
    """Which model folders trained and where each stopped one stopped, in one line."""
    def folders(names: list[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    trained = [m["folder"] for m in models if m["status"] == "trained"]
    stopped = [f"{m['folder']} after {m['epochs']} epoch{'' if m['epochs'] == 1 else 's'}"
               for m in models if m["status"] == "stopped"]
    waiting = [m["folder"] for m in models if m["status"] == "not started"]
    parts = [f"{len(trained)} trained ({folders(trained)})"] if trained else []
    if stopped:
        parts.append(f"stopped: {folders(stopped)}")
    if waiting:
        parts.append(f"not started: {folders(waiting)}")
    return "; ".join(parts)


def _weights_text(weights: Any) -> str:
    """How the table shows a run's ``weights`` setting: ``none`` for random initialisation,
    ``imagenet``, or the file, whatever spelling the run was given (``NONE``, ``random``,
    ``ImageNet`` are the same settings: ``recipe.weights_setting``)."""
    from keras_species.weights_files import weights_setting

    setting = weights_setting(weights if isinstance(weights, str) or weights is None else str(weights))
    return "none" if setting is None else setting


def data_label(data: str | None) -> str:
    """A short name for a run's data in the table: ``demo``, a folder's name, or a file with
    its folder (``aquarium_multilabel/labels.csv``); the whole path is in ``--json``.

    Args:
        data: the ``data`` (or ``labelled``) setting of the run's ``config.json``.

    Returns:
        The label (``""`` without data).

    Example:
        >>> data_label("/data/aquarium_multilabel/labels.csv"), data_label("/data/fish/")
        ('aquarium_multilabel/labels.csv', 'fish')
    """
    if not data:
        return ""
    path = Path(data)
    if "://" in data or not path.suffix:
        return path.name or data
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _differing_settings(rows: list[dict]) -> tuple[list[str], list[str]]:
    """Each row's settings that are not the same in every row, and the ones that are (shown
    once under the table): a setting missing from a row counts as different."""
    parsed = [r.get("key_settings") or {} for r in rows]
    keys = [k for k in KEY_SETTINGS if any(k in p for p in parsed)]
    same = [k for k in keys if len(rows) > 1 and all(p.get(k) == parsed[0].get(k) for p in parsed)]
    cells = [" ".join(f"{k}={p[k]}" for k in keys if k in p and k not in same) for p in parsed]
    return cells, [f"{k}={parsed[0][k]}" for k in same]


def format_runs(rows: list[dict]) -> str:
    """The runs as one plain-text table (recipe, date, run folder, backbone, weights, data
    (:func:`data_label`), status, epochs (the epochs trained; ``10 (5 folds)`` for a run that
    trains several models: their sum, :func:`epochs_over`, explained below the table with the
    epoch settings, which are each model's; ``-`` for a run that trains none: a
    ``feature_classifiers`` run), models (only when a row has model folders,
    :meth:`RunFolder.model_folders`, or fitted classifiers: ``2 trained``, ``2 fitted``), test
    accuracy (a multi-label run's exact-match accuracy, marked ``(exact)`` and explained below
    the table), micro-F1, top-5, and the settings that are not the same in every listed run;
    those that are follow the table on one line), then the process of each ``running`` or
    ``running?`` run, the error of each failed run, the model folders
    of each stopped multi-model run with the command that continues it, the flags that
    evaluate each ``not evaluated`` run, and the file that could not be read of each
    unreadable run, one line each (a failed run whose training finished gets a second line:
    the flags that evaluate it once the error is fixed).

    Args:
        rows: ``list_runs`` output.

    Returns:
        The table as a string (a line saying so when there are no runs).

    Example:
        >>> print(format_runs(list_runs("runs")))  # doctest: +SKIP
    """
    if not rows:
        return "no runs found"
    columns = [
        ("recipe", "recipe"),
        ("date", "date"),
        ("run", "run"),
        ("backbone", "backbone"),
        ("weights", "weights"),
        ("data", "data"),
        ("status", "status"),
        ("epochs", "epochs"),
        *([("models", "models")] if any(row.get("models") or row.get("classifiers") for row in rows)
          else []),
        ("test_accuracy", "test acc"),
        ("test_micro_f1", "micro-F1"),
        ("test_top5", "top-5"),
        ("settings", "settings"),
    ]
    table = [[label for _, label in columns]]
    differing, same = _differing_settings(rows)
    for row, settings in zip(rows, differing):
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if key == "date" and value:
                value = str(value).replace("T", " ")[:16]
            elif key == "models":
                value = _models_cell(value, row.get("classifiers"),
                                     str(row.get("status")).startswith("running"))
            elif key == "epochs":
                value = _epochs_cell(row)
            elif key == "test_accuracy":
                value = _accuracy_cell(row)
            elif key == "data":
                value = data_label(value) or None
            elif key == "settings":
                value = settings
            cells.append(_cell(value))
        table.append(cells)
    widths = [max(display_width(r[i]) for r in table) for i in range(len(columns))]
    lines = ["  ".join(c + " " * (w - display_width(c)) for c, w in zip(r, widths)).rstrip()
             for r in table]  # a CJK run name takes two columns a character
    lines.insert(1, "  ".join("-" * w for w in widths))
    if same:
        lines += ["", "settings of every run listed: " + " ".join(same)]
    epochs_note = _epochs_note(rows)
    if epochs_note:
        lines += ["", epochs_note]
    if any(_is_exact_match(row) for row in rows):
        lines += ["", "test acc (exact): a multi-label run's exact-match accuracy, the share of "
                  "test images with every label right (stricter than single-label accuracy); "
                  "compare multi-label runs by micro-F1"]
    validated = [r for r in rows if r.get("val_accuracy") is not None]
    if validated:
        lines += ["", "runs without a test split (their recipe scores its models on the "
                  "validation split only; not in the test columns):"]
        for r in validated:
            best = f"best model {r['best_model']}, " if r.get("best_model") else ""
            lines.append(f"  {_row_id(r)}: {best}val accuracy {r['val_accuracy']:.3f}")
    running = [r for r in rows if r.get("status") in ("running", "running?")]
    if running:
        lines += ["", "running runs (a process is training or evaluating them: --resume and "
                  "--overwrite refuse a run whose process runs on this machine):"]
        for r in running:
            lines.append(f"  {_row_id(r)}: {_running_line(r)}")
    failed = [r for r in rows if r.get("error") and r.get("status") == "failed"]
    if failed:
        lines += ["", "failed runs (failed.json in the run folder):"]
        for r in failed:
            error = " ".join(str(r["error"]).split())
            lines.append(f"  {_row_id(r)}: {error[:150]}{' ...' if len(error) > 150 else ''}")
            if r.get("training_finished"):
                lines.append(f"    its training finished: once that is fixed, {_resume_hint(r)} "
                             "evaluates it without training it again")
    multi = [r for r in rows if r.get("status") == "stopped" and r.get("models")]
    if multi:
        lines += ["", "stopped runs that train their models in subfolders (the run folder's own "
                  "files are written once all have trained; --resume continues with the run's "
                  "stored settings):"]
        for r in multi:
            lines.append(f"  {_row_id(r)}: {_models_line(r['models'])}")
            lines.append(f"    continue: {_resume_hint(r)}")
    fresh = [r for r in rows if r.get("status") == "new" and r.get("split_kept")]
    if fresh:  # the Ctrl-C line said so, the table did not
        lines += ["", "new runs that keep their split (stopped before an epoch or a feature "
                  "extraction ended; --resume starts them on that split with their stored "
                  "settings):"]
        for r in fresh:
            lines.append(f"  {_row_id(r)}: {_resume_hint(r)}")
    not_evaluated = [r for r in rows if r.get("status") == "not evaluated"]
    if not_evaluated:
        lines += ["", "not evaluated runs (training finished, but the run stopped before its "
                  "evaluation wrote metrics.json; --resume evaluates it without training it again):"]
        for r in not_evaluated:
            lines.append(f"  {_row_id(r)}: {_resume_hint(r)}")
    unreadable = [r for r in rows if r.get("problem")]
    if unreadable:
        lines += ["", "unreadable runs (a file in the run folder is damaged or missing; the row shows "
                  "the rest):"]
        for r in unreadable:
            lines.append(f"  {_row_id(r)}: {' '.join(str(r['problem']).split())}")
    return "\n".join(lines)


def _running_line(row: dict) -> str:
    """What a ``running`` or ``running?`` row's process is, in one line under the table."""
    process = describe(row.get("process") or {})
    if row.get("status") == "running":
        return f"{process}, alive"
    return (f"running?: {process}, another machine, so not checked from here; if that process "
            f"is gone, the run stopped: {_resume_hint(row)} continues it")


def _row_id(row: dict) -> str:
    """A row's run folder (rows made before ``run`` existed: recipe/name)."""
    return str(row.get("run") or f"{row.get('recipe')}/{row.get('name')}")


def _resume_hint(row: dict) -> str:
    """The command that resumes a listed run: ``python -m recipes.<recipe> --resume --out <out>
    --name <folder>``.

    A recipe's run folder is ``<out>/<recipe>/<name>``, so ``--out`` and ``--name`` are read
    from the row's ``path`` (quoted for a shell when needed). No other flag is needed: a resumed
    run takes every setting (models, weights, stages, data) from its ``config.json``, in every
    recipe (those that train several models too).

    Args:
        row: a ``list_runs`` row.

    Returns:
        E.g. ``"python -m recipes.quickstart --resume --out runs --name demo"``.

    Example:
        >>> _resume_hint({"recipe": "quickstart", "path": "runs/quickstart/demo"})
        'python -m recipes.quickstart --resume --out runs --name demo'
        >>> _resume_hint({"recipe": "scratch_cnn", "path": "runs/scratch_cnn/my cv",
        ...               "models": [{"folder": "r2_cnn/fold0", "status": "stopped", "epochs": 2}]})
        "python -m recipes.scratch_cnn --resume --out runs --name 'my cv'"
    """
    path = Path(str(row.get("path") or ""))
    if path.parts:
        flags = f"--out {shlex.quote(str(path.parent.parent))} --name {shlex.quote(path.name)}"
    else:  # a row made by hand, without its folder
        flags = f"--name {shlex.quote(str(row.get('name')))}"
    return f"python -m recipes.{row.get('recipe')} --resume {flags}"


def known_recipes() -> set[str]:
    """The names of the recipes in the ``recipes`` package (``python -m recipes.<name>``),
    found without importing them (no TensorFlow); an empty set when the package is absent.

    Example:
        >>> "quickstart" in known_recipes()  # doctest: +SKIP
        True
    """
    try:
        import recipes
    except ImportError:
        return set()
    return {m.name for m in pkgutil.iter_modules(getattr(recipes, "__path__", []))
            if not m.name.startswith("_")}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``keras-species runs [DIR]``."""
    parser.add_argument("dir", nargs="?", default="runs", help="runs folder (default: runs)")
    parser.add_argument("--recipe", default=None, help="only runs of this recipe")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead")


def run_cli(args: argparse.Namespace) -> int:
    """Print the runs under ``args.dir`` as one table sorted by date; returns the exit code."""
    if not Path(args.dir).is_dir():  # a typo in the folder is not "no runs"
        if args.dir == "runs":  # the default, in a folder where no recipe has run yet
            print("no runs found (no runs folder here; recipes write their runs under --out, default: runs)")
            return 0
        print(f"keras-species runs: {args.dir} is not a folder: give the folder that the recipes' "
              "--out named (default: runs)", file=sys.stderr)
        return 2
    rows = list_runs(args.dir)
    if args.recipe:
        recipes = sorted({r["recipe"] for r in rows})
        rows = [r for r in rows if r["recipe"] == args.recipe]
        known = known_recipes()
        if not rows and args.recipe not in known:  # a misspelt recipe is not "no runs"
            close = (difflib.get_close_matches(args.recipe, recipes, n=3)
                     or difflib.get_close_matches(args.recipe, sorted(known), n=3))
            print(f"keras-species runs: no recipe {args.recipe!r}"
                  + (f": did you mean {' or '.join(close)}?" if close else "")
                  + (f" (the runs under {args.dir} are of: {', '.join(recipes)})" if recipes
                     else f" (the recipes are: {', '.join(sorted(known))})" if known else ""),
                  file=sys.stderr)
            return 2
        if not rows and recipes and not args.json:  # a recipe with no runs here yet
            print(f"no runs of recipe {args.recipe!r} under {args.dir}; its runs are of: "
                  f"{', '.join(recipes)}")
            return 0
    above = None if rows else enclosing_run(args.dir)
    if above is not None and not args.json:
        run, recipe = above
        print(f"no runs under {args.dir}: it is a folder of the {recipe} run {run}; list that run "
              f"with: keras-species runs {shlex.quote(str(run))}")
        return 0
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_runs(rows))
    return 0
