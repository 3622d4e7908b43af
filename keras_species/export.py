"""Export a trained classifier to ``.keras``, a TensorFlow SavedModel or TFLite, and ``keras-species export``.

Formats:

- ``keras``: the Keras 3 archive (``model.save``). The label map lives in the model's
  ``ClassifierOutput`` layer; the file reloads with ``keras.saving.load_model(path,
  safe_mode=True)`` in a process that imports only ``keras`` and ``keras_species``.
- ``saved_model``: a ``tf.Module`` written with ``tf.saved_model.save``, not Keras's
  ``model.export(format="tf_saved_model")`` (that gives one plain float signature at the model's
  fixed size; a ``tf.Module`` lets us add the signatures below). Signatures:

  - ``serve`` (also ``serving_default``): ``images`` uint8 ``[None, None, None, 3]`` of *any* size.
    Each batch is resized to the model's input size exactly as the training pipeline does it
    (``data.pipeline.resize_image``, "stretch": area-averaged when the image shrinks, bilinear
    when it grows, rounded back to 0–255 integers; unchanged when the size already matches).
  - ``serve_float``: ``images`` float32 0–255 ``[None, None, None, 3]``, resized the same way but
    not rounded.
  - ``metadata``: no input; ``class_names``, ``image_size``, ``multilabel``, ``thresholds``.

  ``serve``/``serve_float`` return ``probabilities`` ``[B, C]`` float32, ``class_names``
  ``[C]`` string, ``top_class`` ``[B]`` string, ``top_probability`` ``[B]``, and for multi-label
  models ``thresholds`` ``[C]`` and ``predicted`` ``[B, C]`` bool (``probabilities >= thresholds``).
  A copy of the label map is written to ``labels.json`` inside the folder.
- ``tflite``: converted with ``tf.lite.TFLiteConverter.from_concrete_functions`` from the Keras
  model's probabilities function with its variables frozen into constants (TensorFlow's
  ``convert_variables_to_constants_v2``; without it the converter keeps Keras 3 variables as
  resource variables, so float16 leaves the weights in float32 and int8 calibration fails); input float32 0–255 ``[1, H, W, 3]`` at the model's fixed size (batch resizable with
  ``interpreter.resize_tensor_input``; the caller resizes images, as :mod:`keras_species.predict`
  does), output the ``[B, C]`` probabilities. ``quantize``: ``None`` (float32), ``"float16"``
  (float16 weights), ``"int8"``: dynamic-range (int8 weights, float activations) without
  ``representative_data``; full-integer (int8 weights and activations, float32 input/output
  kept for a drop-in interface) with it. The label map goes to ``<name>.labels.json`` next to
  the ``.tflite`` file (:func:`tflite_labels_path`); it is *not* written into the TFLite metadata (that needs the ``tflite-support``
  metadata writers, which are not a dependency).

The format follows ``out`` unless it is given (:func:`export_format`): ``.keras`` is ``keras``,
``.tflite`` is ``tflite``, any other name (a folder) is ``saved_model``; a format given that
contradicts ``out`` (``--format keras --out m.tflite``) is refused before any work.

The model is checked before Keras reads it (:func:`resolve_model_path`, :func:`check_model_file`):
a ``.tflite``, a ``config.json``, an image or a weights-only ``.h5`` given as the model is named
with what to pass instead, in one line; a folder of run folders (``runs/quickstart``, ``runs``)
is named with a few of its runs that hold a ``best.keras``, newest first, and the command to run
on one; a ``feature_classifiers`` run folder (its model is ``classifier.joblib``, a scikit-learn
classifier on backbone features) is refused by export, which cannot write it as a Keras model,
naming ``keras-species predict``, which reads it (:func:`is_feature_run`); a model file whose
suffix is in another case (``M.KERAS``, ``M.H5``) is checked as its kind, then refused naming
the rename it needs (Keras recognises ``.keras``/``.h5`` in lower case only) unless the file
system finds it under the lower-case name too. ``out`` is checked before
the model is loaded (:func:`check_export_out`; a ``.keras``
name must end in lower-case ``.keras``, the only name ``keras.saving.save_model`` saves under,
and a ``.tflite`` name in ``.tflite``), and so is ``representative_data`` (used by
``quantize="int8"`` only; a path must exist). Every output appears complete or not at all:
files (``.keras``, ``.tflite`` and its labels) go through :func:`keras_species.atomic.atomic_path`
and replace an earlier file; a SavedModel is written to a hidden sibling folder and moved in
complete (:func:`keras_species.atomic.atomic_folder`). An existing SavedModel at ``out`` is
replaced only with ``overwrite=True`` (``--overwrite``); a folder holding anything else is
refused. A final write that fails (a folder that cannot be written, a full disk) raises an
``OSError`` naming ``out`` (with ``--out`` on the command line) and the system's reason, not the
temporary sibling, and leaves no temporary behind.

Messages name each option as its caller gave it: within ``keras-species export`` (and
``keras-species predict``, which shares the model checks) the flag, ``--out m.KERAS``,
``--overwrite``, ``--representative DIR``; from Python the keyword argument, ``out='m.KERAS'``,
``overwrite=True``, ``representative_data='DIR'`` (each ``run_cli`` runs inside
``_command_line``; ``_option`` words an option).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_species.atomic import atomic_folder, atomic_path, check_output_file, check_output_folder
from keras_species.jsonfile import read_json_object
from keras_species.training.runs import BEST_MODEL, LAST_MODEL  # a run folder's model files

if TYPE_CHECKING:
    import keras

    from keras_species.models.labels import LabelMap

__all__ = [
    "FORMATS",
    "QUANTIZE",
    "ExportError",
    "add_image_size_argument",
    "check_keras_archive",
    "check_export_out",
    "check_model_file",
    "float32_copy",
    "configure_parser",
    "export_format",
    "export_model",
    "is_feature_run",
    "is_saved_model",
    "label_output_model",
    "load_keras_model",
    "model_image_size",
    "resolve_model_path",
    "run_model_file",
    "run_cli",
]

FORMATS = ("keras", "saved_model", "tflite")
QUANTIZE = ("float16", "int8")
LABELS_JSON = "labels.json"
FEATURE_RECIPE = "feature_classifiers"
"""The recipe whose run folders hold a scikit-learn classifier instead of a Keras model."""
CLASSIFIER_JOBLIB = "classifier.joblib"
"""The classifier a ``feature_classifiers`` run saves (``joblib.dump`` of a fitted estimator)."""
PathLike = str | os.PathLike


class ExportError(ValueError):
    """A model path or export option that cannot be used; the message says what to pass."""


# ------------------------------------------------------------------------------------ option names
_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "keras_species_command", default=None
)
"""The ``keras-species`` command whose ``run_cli`` is running (``"export"``, ``"predict"``), or
``None`` for a Python call: messages name the options as the caller gave them (:func:`_option`)."""

_FLAGS = {
    "out": "--out", "format": "--format", "quantize": "--quantize",
    "representative_data": "--representative", "representative_count": "--representative-count",
    "overwrite": "--overwrite", "image_size": "--image-size", "labels": "--labels",
    # keras-species predict
    "top_k": "--top-k", "thresholds": "--thresholds", "tta": "--tta", "batch_size": "--batch-size",
    "all_probabilities": "--all-probabilities", "root": "--root", "path_format": "--path-format",
    "keep_columns": "--keep-columns",
}
"""The command-line flag of each keyword argument of :func:`export_model` and
:func:`keras_species.predict.predict` (``keep_columns=True`` is ``--keep-all-columns``)."""

_NO_VALUE = object()


@contextlib.contextmanager
def _command_line(command: str) -> Iterator[None]:
    """Within the block, messages name flags (``--out``), as ``keras-species <command>`` was given
    them, rather than keyword arguments (``out=``). Used by the ``run_cli`` of export and predict."""
    token = _COMMAND.set(command)
    try:
        yield
    finally:
        _COMMAND.reset(token)


def _option(name: str, value: object = _NO_VALUE, *, metavar: str = "") -> str:
    """The option ``name`` (a keyword argument) as the caller gave it, for messages.

    On the command line (inside :func:`_command_line`) its flag: ``--quantize int8``,
    ``--image-size 32 24``, ``--overwrite`` (for ``True``), ``--image-size PX`` (no value, a
    ``metavar``), ``--quantize`` (neither). In Python the keyword: ``quantize='int8'``,
    ``image_size=(32, 24)``, ``overwrite=True``, ``image_size=`` (no value, a ``metavar``),
    ``quantize`` (neither). A path is shown as its string.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if _on_command_line():
        flag = _FLAGS[name]
        if value is _NO_VALUE:
            return f"{flag} {metavar}" if metavar else flag
        if value is True:
            return flag
        if isinstance(value, (list, tuple)):
            return f"{flag} {' '.join(str(v) for v in value)}"
        return f"{flag} {value}"
    if value is _NO_VALUE:
        return f"{name}=" if metavar else name
    return f"{name}={value!r}"


def _on_command_line() -> bool:
    """Whether a ``keras-species`` command is running (:func:`_command_line`), not a Python call."""
    return _COMMAND.get() is not None


def _out_flag() -> str | None:
    """What :mod:`keras_species.atomic` names an output after: ``--out`` on the command line;
    nothing in Python (the message names the path the caller passed)."""
    return "--out" if _on_command_line() else None


def _given_out(out: PathLike) -> str:
    """An output path in messages: ``path (--out)`` on the command line, the path in Python."""
    flag = _out_flag()
    return f"{out} ({flag})" if flag else str(out)


# ------------------------------------------------------------------------------- model resolution
def is_saved_model(path: PathLike) -> bool:
    """Whether ``path`` is a TensorFlow SavedModel folder (holds ``saved_model.pb``).

    Args:
        path: a path.

    Returns:
        ``True`` for a SavedModel folder.

    Example:
        >>> is_saved_model("runs/r1/demo/saved_model")  # doctest: +SKIP
        True
    """
    p = Path(path)
    return p.is_dir() and (p / "saved_model.pb").is_file()


def is_feature_run(path: PathLike) -> bool:
    """Whether ``path`` is the folder of a ``feature_classifiers`` run: it holds a
    ``classifier.joblib``, or its ``config.json`` names that recipe (a run that has not saved its
    classifier yet). Nothing is loaded: ``classifier.joblib`` is a pickle, read only by
    ``keras-species predict`` from the folder given as its MODEL.

    Args:
        path: a path.

    Returns:
        ``True`` for such a folder.

    Example:
        >>> is_feature_run("runs/feature_classifiers/r1")  # doctest: +SKIP
        True
    """
    from keras_species.training.runs import CONFIG

    p = Path(path)
    if not p.is_dir():
        return False
    if (p / CLASSIFIER_JOBLIB).is_file():
        return True
    conf, _ = read_json_object(p / CONFIG)  # {} when absent or damaged
    return conf.get("recipe") == FEATURE_RECIPE


def _feature_rerun(folder: Path) -> str:
    """The command that fits a ``feature_classifiers`` run's classifiers again (``--resume``)."""
    if folder.parent.name == FEATURE_RECIPE:  # <out>/feature_classifiers/<name>
        return (f"python -m recipes.{FEATURE_RECIPE} --resume --out "
                f"{shlex.quote(str(folder.parent.parent))} --name {shlex.quote(folder.name)}")
    return f"python -m recipes.{FEATURE_RECIPE} --resume with the run's --out and --name"


def _feature_run_problem(folder: Path, predicting: bool) -> str | None:
    """Why the ``feature_classifiers`` run ``folder`` cannot be the model, or ``None``:
    ``keras-species predict`` (``predicting``) reads one that holds its ``classifier.joblib``;
    export never does (a scikit-learn classifier is no Keras model)."""
    saved = (folder / CLASSIFIER_JOBLIB).is_file()
    if predicting:
        if saved:
            return None
        return (
            f"{folder} is a {FEATURE_RECIPE} run folder without a {CLASSIFIER_JOBLIB} (not "
            f"finished, or failed?): keras-species runs {shlex.quote(str(folder.parent))} shows "
            f"its status; fit its classifiers again with {_feature_rerun(folder)}, or pass a "
            f"run folder that holds a {CLASSIFIER_JOBLIB}"
        )
    what = (f"its model is a scikit-learn classifier on backbone features ({CLASSIFIER_JOBLIB})"
            if saved else f"it holds no {CLASSIFIER_JOBLIB} (not finished, or failed?), and its "
            "model would be a scikit-learn classifier on backbone features")
    return (
        f"{folder} is a {FEATURE_RECIPE} run: {what}, which export cannot write as a .keras, "
        f"SavedModel or TFLite model. keras-species predict {shlex.quote(str(folder))} INPUT "
        "classifies images with it; for a model export writes, train a Keras head on the same "
        "features (train_dense_head), join it to the backbone (attach_head) and save that as a "
        ".keras file (README: \"Feature extraction with a cache\")"
    )


def _accepted(saved_model: bool, feature_run: bool = False) -> str:
    """What a model path may be, for the messages (``predict`` reads SavedModels and
    ``feature_classifiers`` run folders too)."""
    run = (f"a run folder (its {BEST_MODEL}, or a {FEATURE_RECIPE} run's {CLASSIFIER_JOBLIB})"
           if feature_run else f"a run folder (its {BEST_MODEL})")
    if saved_model:
        return f"a .keras file, a SavedModel folder written by keras-species export, or {run}"
    return f"a .keras file or {run}"


def _enclosing_model_folder(path: Path) -> tuple[Path, str] | None:
    """``(folder, "SavedModel"|"run"|"feature_classifiers run")`` when ``path`` lies in one (up
    to two levels up)."""
    for folder in list(path.parents)[:2]:
        if is_saved_model(folder):
            return folder, "SavedModel"
        if (folder / BEST_MODEL).is_file():
            return folder, "run"
        if (folder / CLASSIFIER_JOBLIB).is_file():
            return folder, f"{FEATURE_RECIPE} run"
    return None


def _inside_fix(folder: Path, kind: str, saved_model: bool) -> str:
    """What to pass instead of a path inside a run or SavedModel ``folder``."""
    if kind == f"{FEATURE_RECIPE} run":
        if saved_model:  # predict
            return f"pass the run folder {folder} itself (its {CLASSIFIER_JOBLIB} is read)"
        return (f"export cannot write its scikit-learn classifier as a Keras model; keras-species "
                f"predict {shlex.quote(str(folder))} INPUT classifies images with it")
    if kind == "run":
        scored = run_model_file(folder)
        return f"pass the run folder {folder} itself (its {(scored or folder / BEST_MODEL).name} is read)"
    if saved_model:
        return f"pass the SavedModel folder {folder} itself"
    return "export works from the Keras model: pass the .keras file or the run folder it came from"


def run_model_file(folder: PathLike) -> Path | None:
    """The model file of a run folder that its report scored: ``last.keras`` when the run was
    trained with ``--evaluate-model last`` (``metrics.json`` names it), else ``best.keras``.

    Before stop 31 a run folder always gave ``best.keras``, and a ``--evaluate-model last`` run
    saved no other model, so ``predict`` and ``export`` of its folder used another model than the
    one its report, ``metrics.json`` and ``predictions.csv`` scored.

    Args:
        folder: a run folder.

    Returns:
        The file, or None when the folder holds neither.

    Raises:
        ExportError: the run scored ``last.keras`` (``metrics.json``, or ``config.json``'s
            ``evaluate_model`` when ``metrics.json`` cannot be read) and it is missing.

    Example:
        >>> run_model_file("runs/quickstart/demo")   # doctest: +SKIP
        PosixPath('runs/quickstart/demo/best.keras')
    """
    from keras_species.training.runs import CONFIG

    folder = Path(folder)
    doc, reason = read_json_object(folder / "metrics.json")
    run = doc.get("run") if isinstance(doc, dict) and not reason else None
    named = run.get("evaluated_model") if isinstance(run, dict) else None
    from_config = False
    if named is None:  # no metrics.json (or a damaged one): the run's own setting says
        conf, _ = read_json_object(folder / CONFIG)
        settings = conf.get("config") if isinstance(conf, dict) else None
        if isinstance(settings, dict) and settings.get("evaluate_model") == "last":
            named, from_config = LAST_MODEL, True
    if named == LAST_MODEL:
        if (folder / LAST_MODEL).is_file():
            return folder / LAST_MODEL
        if (folder / BEST_MODEL).is_file():  # never another model than the one scored, unsaid
            why = ("it has not finished (no metrics.json): --resume finishes it and writes it"
                   if from_config and not (folder / "metrics.json").is_file() else
                   "a run from before stop 31, or the file was removed: evaluate it again with "
                   "--resume to write it")
            raise ExportError(
                f"{folder} was trained with --evaluate-model last, whose model ({LAST_MODEL}) it "
                f"does not hold ({why}); or pass {folder / BEST_MODEL} to use the best epoch's model")
    return folder / BEST_MODEL if (folder / BEST_MODEL).is_file() else None


def resolve_model_path(path: PathLike, *, saved_model: bool = True, feature_run: bool = False) -> Path:
    """The model file or folder that ``path`` names: a ``.keras`` file, a SavedModel folder, or a
    run folder (the model its report scored, :func:`run_model_file`: its ``best.keras``), checked before Keras or TensorFlow reads it
    (:func:`check_model_file`); with ``feature_run``, also a ``feature_classifiers`` run folder
    that holds its ``classifier.joblib`` (:func:`is_feature_run`; nothing is loaded here).

    Args:
        path: a ``.keras``/``.h5`` file, a SavedModel folder or a run folder.
        saved_model: whether a SavedModel folder is accepted (``predict`` reads one; ``export``
            works from the Keras model it came from).
        feature_run: whether a ``feature_classifiers`` run folder is accepted (``predict``
            reads one; ``export`` cannot write its scikit-learn classifier as a Keras model).

    Returns:
        The ``.keras`` (or legacy ``.h5``) file, the SavedModel folder, or (``feature_run``)
        the ``feature_classifiers`` run folder.

    Raises:
        ExportError: nothing usable at ``path``; the message says what it is and what to pass
            (the ``.keras`` files or SavedModels a folder holds, or the ``.tflite`` files it
            holds instead of them, which keras-species does not read; for a
            ``feature_classifiers`` run, what reads it, or that it holds no
            ``classifier.joblib``).

    Example:
        >>> resolve_model_path("runs/r1/demo")  # doctest: +SKIP
        PosixPath('runs/r1/demo/best.keras')
    """
    p = Path(path)
    if p.is_file():
        check_model_file(p, saved_model=saved_model, feature_run=feature_run)
        return _name_keras_reads(p)
    scored = None if is_saved_model(p) else run_model_file(p)
    if scored is not None:  # a run folder: the model its report scored
        check_model_file(scored, saved_model=saved_model, feature_run=feature_run)
        return scored
    for candidate in (p, p / "saved_model"):  # a SavedModel, or a run folder holding one
        if is_saved_model(candidate):
            if not saved_model:
                raise ExportError(
                    f"{candidate} is a SavedModel; export works from the Keras model: pass the "
                    ".keras file or the run folder it came from"
                )
            return candidate
    if is_feature_run(p):
        problem = _feature_run_problem(p, feature_run)
        if problem:
            raise ExportError(problem)
        return p
    if p.is_dir():
        kinds = sorted(q.name for q in p.iterdir() if q.suffix.lower() == ".keras")  # .KERAS too
        if saved_model:  # SavedModel folders exported into it
            kinds += sorted(q.parent.name for q in p.glob("*/saved_model.pb") if q.is_file())
        if not kinds:  # runs/ or runs/<recipe>/: the run folders in it are the models
            runs = _run_folders_problem(p, feature_run)
            if runs:
                raise ExportError(runs)
            recipe_run = _recipe_run_problem(p)
            if recipe_run:
                raise ExportError(recipe_run)
        hint = f" It holds {', '.join(kinds)}: pass one of them." if kinds else ""
        inside = _enclosing_model_folder(p)
        tflite = sorted(q.name for q in p.glob("*.tflite"))
        if tflite and not kinds:  # e.g. the folder keras-species export wrote a .tflite into
            fix = _inside_fix(*inside, saved_model) if inside is not None else None
            none = "no .keras file or SavedModel" if saved_model else "no .keras file"
            raise ExportError(f"{p} holds {none}, only {_tflite_fix(tflite, saved_model, fix)}")
        if inside is not None and not hint:
            folder, kind = inside
            hint = f" It lies inside the {kind} folder {folder}: {_inside_fix(folder, kind, saved_model)}."
        if not saved_model:  # export: a SavedModel is no option, so not named as one
            raise ExportError(f"{p} is not a run folder (no {BEST_MODEL})"
                              + (f".{hint}" if hint else f": pass {_accepted(False)}"))
        runs = (f"a run folder (no {BEST_MODEL}) nor a {FEATURE_RECIPE} run folder (no "
                f"{CLASSIFIER_JOBLIB})" if feature_run else f"a run folder (no {BEST_MODEL})")
        raise ExportError(f"{p} is neither a SavedModel folder (no saved_model.pb) nor {runs}.{hint}")
    raise ExportError(f"model {p} does not exist: pass {_accepted(saved_model, feature_run)}")


def _model_file(folder: Path, feature_run: bool) -> Path | None:
    """The model file of a model folder: its ``best.keras``, or with ``feature_run`` the
    ``classifier.joblib`` of a ``feature_classifiers`` run; ``None`` when it holds neither."""
    for name in (BEST_MODEL, CLASSIFIER_JOBLIB) if feature_run else (BEST_MODEL,):
        if (folder / name).is_file():
            return folder / name
    return None


def _random_backbone(folder: Path) -> bool:
    """Whether the run in ``folder`` says its backbone had random weights (``"weights": "none"``
    in its ``config.json``); a run that cannot be read says nothing (False)."""
    from keras_species.jsonfile import read_json_object
    from keras_species.training.runs import CONFIG
    from keras_species.weights_files import weights_setting

    data, reason = read_json_object(folder / CONFIG)
    conf = data.get("config") if not reason else None
    if not isinstance(conf, dict) or "weights" not in conf:
        return False
    weights = conf["weights"]
    try:
        return weights_setting(weights if isinstance(weights, str) or weights is None else str(weights)) is None
    except ValueError:
        return False


def _model_folders_in(folder: Path, feature_run: bool = False) -> tuple[list[Path], list[Path]]:
    """The folders holding a ``best.keras`` (with ``feature_run``, or a ``classifier.joblib``)
    in ``folder`` or one level deeper (``runs/`` holds ``<recipe>/<name>/``, a multi-model run
    ``<backbone>/``), and the run folders there (a ``config.json``) that hold none. Hidden
    folders and those of a run that hold no model of their own (``plots``, ``backup``...:
    ``runs.NOT_MODEL_FOLDERS``) are not looked into."""
    from keras_species.training.runs import CONFIG, NOT_MODEL_FOLDERS

    def subfolders(where: Path) -> list[Path]:
        try:
            return sorted(q for q in where.iterdir() if q.is_dir() and not q.name.startswith(".")
                          and q.name not in NOT_MODEL_FOLDERS)
        except OSError:  # a folder that cannot be listed has nothing to offer
            return []

    models: list[Path] = []
    runs: list[Path] = []
    for child in subfolders(folder):
        if _model_file(child, feature_run) is not None:
            models.append(child)
            continue
        inside = [q for q in subfolders(child) if _model_file(q, feature_run) is not None]
        models += inside
        if not inside and (child / CONFIG).is_file():
            runs.append(child)
    return models, runs


def _run_folders_problem(folder: Path, feature_run: bool = False) -> str | None:
    """What to pass for a MODEL that is a folder of run folders (``runs/quickstart``) or a run
    folder whose models are in subfolders (a multi-model recipe's): a few folders holding a
    ``best.keras`` (with ``feature_run``, as ``predict`` reads them, or a ``feature_classifiers``
    run's ``classifier.joblib``), newest first, and the command with one of them; ``None`` when
    ``folder`` holds neither such a folder nor a run folder."""
    from keras_species.training.runs import CONFIG

    models, runs = _model_folders_in(folder, feature_run)
    if not models and not runs:
        return None

    def shown(paths: list[Path]) -> str:
        names = [q.relative_to(folder).as_posix() for q in paths]
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    runs_cmd = f"keras-species runs {shlex.quote(str(folder))}"
    if not models and runs and all(is_feature_run(q) for q in runs):  # export given their folder
        said = (f"{folder} holds {FEATURE_RECIPE} runs ({shown(runs)}): their model is a "
                "scikit-learn classifier on backbone features, which export does not write")
        finished = [q for q in runs if (q / CLASSIFIER_JOBLIB).is_file()]
        usable = [q for q in finished if not _random_backbone(q)]
        if usable:  # the newest that predict takes (not an unfinished run, nor one of random weights)
            run = max(usable, key=lambda q: (q / CLASSIFIER_JOBLIB).stat().st_mtime)
            return f"{said}; keras-species predict {shlex.quote(str(run))} INPUT classifies images with it"
        if finished:
            return (f"{said}, and predict cannot use them either: their backbones had random "
                    "weights (--weights none), whose features predict cannot compute again")
        return f"{said}, and none is finished (no {CLASSIFIER_JOBLIB}): {runs_cmd} shows their status"
    if not models:
        return (f"{folder} holds run folders ({shown(runs)}), not a model, and none of them a "
                f"{BEST_MODEL} (not trained yet, or failed?): {runs_cmd} shows their status")

    def unusable(q: Path) -> bool:
        """A feature_classifiers run of random weights, which predict refuses."""
        return _model_file(q, feature_run).name == CLASSIFIER_JOBLIB and _random_backbone(q)

    def age(q: Path) -> float:
        try:
            return _model_file(q, feature_run).stat().st_mtime
        except (OSError, AttributeError):
            return 0.0

    # a feature_classifiers run of random weights last: predict refuses it, so it is the
    # example only when there is no other (and then said)
    models.sort(key=lambda q: (unusable(q), -age(q), q.as_posix()))
    read, held = f"its {BEST_MODEL} is read", f"a {BEST_MODEL}"
    if any(_model_file(q, feature_run).name == CLASSIFIER_JOBLIB for q in models):
        read = f"its {BEST_MODEL}, or a {FEATURE_RECIPE} run's {CLASSIFIER_JOBLIB}, is read"
        held = "a model"
    own = (folder / CONFIG).is_file()
    lead = (f"{folder} is a run folder whose models are in its model folders" if own
            else f"{folder} holds run folders, not a model")
    example = folder / models[0].relative_to(folder)
    command = _COMMAND.get()
    if command is not None:
        tail = "INPUT ..." if command == "predict" else "--out OUT ..."
        example_text = f"keras-species {command} {shlex.quote(str(example))} {tail}"
    else:
        example_text = str(example)
    listing = (f"; {runs_cmd} lists the runs" if not own and any(
        (q / CONFIG).is_file() or (q.parent / CONFIG).is_file() for q in models) else "")
    random = (f"; {models[0].relative_to(folder).as_posix()} is a {FEATURE_RECIPE} run of a backbone "
              "with random weights, which predict cannot use (run the recipe with --weights "
              "imagenet)" if unusable(models[0]) else "")
    return (f"{lead}: pass one of them ({read}), e.g. {example_text} "
            f"(those with {held}, newest first: {shown(models)}{listing}{random})")


def _recipe_run_problem(folder: Path) -> str | None:
    """What ``folder`` is when it is a run folder (its ``config.json`` names a recipe) that wrote
    no ``best.keras``; ``None`` when ``folder`` is no such run folder (a ``feature_classifiers``
    run is named by :func:`_feature_run_problem` before this is asked)."""
    from keras_species.training.runs import CONFIG

    conf, _ = read_json_object(folder / CONFIG)  # {} when absent or damaged: not recognisably a run
    recipe = conf.get("recipe")
    if not isinstance(recipe, str) or not recipe:
        return None
    return (
        f"{folder} is a {recipe} run folder without a {BEST_MODEL} (not finished, or failed?): "
        f"keras-species runs {shlex.quote(str(folder.parent))} shows its status; pass a run "
        f"folder that holds a {BEST_MODEL}, or a .keras file"
    )


def check_model_file(path: PathLike, *, saved_model: bool = True, feature_run: bool = False) -> None:
    """Refuse a file that is not a Keras model before Keras reads it, saying what it is.

    Keras answers any other file (a ``.tflite``, a ``config.json``, an image) with a traceback
    ending in "File format not supported", and a weights-only ``.weights.h5`` with "No model
    config found". A ``.keras`` file is checked by :func:`check_keras_archive`; an ``.h5``/``.hdf5``
    file must be HDF5 and hold a model config (a legacy Keras model, which Keras still reads). The
    suffix is read in any case (``M.KERAS`` is checked as a ``.keras`` file); one that is not in
    lower case, which Keras does not recognise, is then refused naming the rename, unless the
    file system finds the file under the lower-case name too (macOS, Windows).

    Args:
        path: the file given as the model.
        saved_model: whether the message may suggest a SavedModel folder (see
            :func:`resolve_model_path`).
        feature_run: whether it may suggest a ``feature_classifiers`` run folder (``predict``).

    Raises:
        ExportError: ``path`` is no Keras model file; the message names it and what to pass.

    Example:
        >>> check_model_file("exports/fish.tflite")  # doctest: +SKIP
        ExportError: model exports/fish.tflite is a TFLite model, which keras-species does not read: ...
    """
    from keras_species.data.images import is_image_file

    p = Path(path)
    suffix = p.suffix.lower()  # M.KERAS is checked as a .keras file, then named for its case
    if suffix == ".keras":
        check_keras_archive(p)
        _name_keras_reads(p)
        return
    if suffix in (".h5", ".hdf5"):
        _check_h5_model(p, saved_model)
        _name_keras_reads(p)
        return
    accepted = _accepted(saved_model, feature_run)
    inside = _enclosing_model_folder(p)
    if inside is not None:
        folder, kind = inside
        fix = _inside_fix(folder, kind, saved_model)
        raise ExportError(f"model {p} is a file inside the {kind} folder {folder}: {fix}")
    if suffix == ".tflite":
        raise ExportError(f"model {p} {_tflite_fix([], saved_model)}")
    if is_image_file(p):
        what, fix = "is an image, not a model", f"pass {accepted}"
    else:
        kind = f"a {suffix} file" if suffix else "a file without an extension"
        what, fix = f"is {kind}, not a Keras model", f"pass {accepted}"
    raise ExportError(f"model {p} {what}: {fix}")


def _name_keras_reads(p: Path) -> Path:
    """The name under which Keras reads the model file ``p``: ``p``, unless its suffix is not in
    lower case (``M.KERAS``, ``M.H5``), which Keras does not recognise: then the lower-case name
    where the file system finds ``p`` under it too (macOS, Windows), else an error."""
    suffix = p.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5") or p.suffix == suffix:
        return p
    lower = p.with_suffix(suffix)
    with contextlib.suppress(OSError):
        if lower.is_file() and os.path.samefile(lower, p):
            return lower
    what = "a .keras archive" if suffix == ".keras" else f"a legacy {suffix} model"
    raise ExportError(f"model {p}: Keras reads {what} only under a name ending in {suffix} in "
                      f"lower case: rename it {lower.name}")


def _tflite_fix(names: list[str], saved_model: bool, fix: str | None = None) -> str:
    """That the TFLite model(s) ``names`` (``[]``: the file given itself) cannot be read, and
    what to pass instead (``fix``, or the model it was exported from)."""
    if not names:
        what = "is a TFLite model"
    else:
        what = f"the TFLite model{'s' if len(names) > 1 else ''} {', '.join(names)}"
    if fix is None:
        fix = "pass the .keras file or the run folder it was exported from"
        if saved_model:
            fix += ", or a SavedModel folder written by keras-species export (--out FOLDER)"
    return f"{what}, which keras-species does not read: {fix}"


def _check_h5_model(p: Path, saved_model: bool) -> None:
    """Refuse an ``.h5`` file that is not HDF5, or that holds weights but no model."""
    import h5py

    if not h5py.is_hdf5(p):
        size = p.stat().st_size
        what = "is empty (0 bytes)" if size == 0 else f"is not an HDF5 file ({size} bytes; truncated?)"
        raise ExportError(f"model {p} {what}: a legacy Keras .h5 model is an HDF5 file; copy it "
                          f"again, or pass {_accepted(saved_model)}")
    with h5py.File(p, "r") as f:
        has_model = "model_config" in f.attrs
    if not has_model:
        raise ExportError(
            f"model {p} holds weights only (no model config): pass the .keras file saved with "
            "it, or build the model and call model.load_weights on it"
        )


def load_keras_model(model_or_path: keras.Model | PathLike) -> keras.Model:
    """A Keras model from a model, a ``.keras`` file or a run folder (``safe_mode=True``).

    A file is loaded uncompiled: predicting and exporting need no optimizer, and its state (twice
    the weights with Adam) is neither read nor shipped.

    Args:
        model_or_path: a ``keras.Model``, a ``.keras`` file or a run folder.

    Returns:
        The ``keras.Model`` (a given model as it is).

    Raises:
        ExportError: a SavedModel folder (export from the ``.keras`` it came from), a file that
            is not a Keras model, or a bad path (:func:`resolve_model_path`).

    Example:
        >>> model = load_keras_model("runs/r1/demo")  # doctest: +SKIP
    """
    import keras

    import keras_species  # noqa: F401  (registers the custom layers)

    if isinstance(model_or_path, keras.Model):
        return model_or_path
    path = resolve_model_path(model_or_path, saved_model=False)
    try:  # uncompiled: predicting and shipping need no optimizer (its state is 2x the weights, Adam)
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except OSError as err:  # h5py's "truncated file: eof = ...", which named no file
        raise ExportError(f"model {path} is damaged, its weights cannot be read ({err}): copy it "
                          "again, or save it anew from its run folder (best.keras)") from None


def check_keras_archive(path: PathLike) -> None:
    """Refuse a ``.keras`` file that is not a Keras archive, before Keras reads it.

    Written by hand because Keras answers "File not found ... ensure the file is an accessible
    `.keras` zip file" for a file that exists but is truncated, empty or no zip at all, and a
    bare ``KeyError`` for a zip without ``config.json``. Files of other suffixes (``.h5``) are
    left to Keras.

    Args:
        path: the model file.

    Raises:
        ExportError: ``path`` ends in ``.keras`` (any case) but is no zip archive holding
            ``config.json``.

    Example:
        >>> check_keras_archive("runs/r1/demo/best.keras")  # doctest: +SKIP
    """
    import zipfile

    p = Path(path)
    if p.suffix.lower() != ".keras" or not p.is_file():  # M.KERAS too
        return
    fix = "copy it again, or save it anew from its run folder (best.keras)"
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
    except zipfile.BadZipFile:
        size = p.stat().st_size
        what = "is empty (0 bytes)" if size == 0 else f"is not a zip archive ({size} bytes; truncated?)"
        raise ExportError(f"model {p} {what}: a .keras file is a zip archive written by Keras; {fix}") from None
    except OSError as err:
        raise ExportError(f"model {p} cannot be read as a zip archive ({err}); {fix}") from None
    if "config.json" not in names:
        raise ExportError(f"model {p} is a zip archive but not a Keras model (it holds no config.json); {fix}")
    if not names & {"model.weights.h5", "model.weights.npz"}:  # Keras: a bare ValueError traceback
        raise ExportError(f"model {p} holds no weights (no model.weights.h5 in the archive); {fix}")
    try:
        with zipfile.ZipFile(p) as z:
            json.loads(z.read("config.json"))
    except (ValueError, OSError, zipfile.BadZipFile) as err:  # a JSONDecodeError traceback
        raise ExportError(f"model {p} is damaged: its config.json cannot be read ({err}); {fix}") from None


def label_output_model(model: keras.Model) -> keras.Model:
    """``model`` reduced to its class output: itself for one output, else the ``label`` output.

    Args:
        model: a classifier, or a multi-output model (the autoencoder) with an output ``label``.

    Returns:
        A model with one ``(B, C)`` output.

    Example:
        >>> label_output_model(build_autoencoder(3, 32)).output.shape  # doctest: +SKIP
        (None, 3)
    """
    import keras

    if len(model.outputs) == 1:
        return model
    try:
        out = model.get_layer("label").output
    except ValueError:
        names = list(getattr(model, "output_names", []) or [])
        raise ExportError(f"model {model.name!r} has outputs {names} and none named 'label': name "
                          "the layer of its class output 'label' (the one predict and export read)") from None
    return keras.Model(model.inputs, out, name=f"{model.name}_label")


def model_image_size(
    model: keras.Model, image_size: int | Sequence[int] | None = None
) -> tuple[int, int]:
    """The ``(height, width)`` the model takes: its fixed input size, or ``image_size``.

    Args:
        model: a Keras model taking ``(B, H, W, 3)`` images.
        image_size: needed when the model's input size is not fixed; must match it otherwise.

    Returns:
        ``(height, width)``.

    Example:
        >>> model_image_size(model)  # doctest: +SKIP
        (224, 224)
    """
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ExportError(f"model {model.name!r} takes input {shape}; expected (B, H, W, 3) images")
    fixed = shape[1:3]
    want = None
    if image_size is not None:  # the one reading: 32.5 was cut to 32
        from keras_species.data.pipeline import size_pair

        want = size_pair(image_size)
    if None in fixed:
        if want is None:
            raise ExportError(
                f"model {model.name!r} takes images of any size {shape}: pass "
                f"{_option('image_size', metavar='PX')}, the size to resize to"
            )
        return want
    if want is not None and want != tuple(fixed):
        raise ExportError(
            f"{_option('image_size', image_size)} but model {model.name!r} takes "
            f"{tuple(int(v) for v in fixed)}: leave {_option('image_size')} out"
        )
    return int(fixed[0]), int(fixed[1])


def _read_labels_option(labels: LabelMap | Sequence[str] | PathLike | None):
    """``labels`` with a ``labels.json`` path read (a small file: before the model is), a missing
    one named as the option was given; other values as they are.

    Raises:
        ExportError: the file does not exist.
        keras_species.models.labels.LabelMapError: it cannot be read as a label map.
    """
    if not isinstance(labels, (str, os.PathLike)):
        return labels
    from keras_species.models.labels import load_labels_json

    if not os.path.exists(os.fspath(labels)):
        raise ExportError(
            f"{_option('labels', labels)} does not exist: give the labels.json that holds the "
            f"model's class names, or leave {_option('labels')} out for a model that carries its "
            "label map"
        )
    return load_labels_json(labels)


def _warn_keras_export_labels(model: keras.Model, labels: object) -> None:
    """What a ``.keras`` export of ``model`` leaves out, said when it writes the file: a model
    without a label map (an encoder, a model of another library) is written as it is, but
    ``predict`` needs its class names (it was written without a word, and ``predict`` refused it);
    ``labels`` on a model of several outputs keeps its label output alone."""
    from keras_species.models.labels import find_output_layer

    if labels is None and find_output_layer(model) is None:
        try:
            label_output_model(model)
        except ExportError:  # several outputs, none named 'label': no --labels can help predict
            warnings.warn(
                f"model {model.name!r} carries no label map and none of its outputs "
                f"{list(getattr(model, 'output_names', []) or [])} is named 'label': the .keras file "
                "is written as it is, but predict cannot read it (name the layer of its class "
                "output 'label')", UserWarning, stacklevel=3)
            return
        warnings.warn(
            f"model {model.name!r} carries no label map (no ClassifierOutput layer): the .keras "
            f"file is written as it is, and predict will need its class names "
            f"({_option('labels', metavar='LABELS_JSON')} there); give them here to store them "
            "in the file", UserWarning, stacklevel=3)
    elif labels is not None and len(model.outputs) > 1:
        warnings.warn(
            f"model {model.name!r} has {len(model.outputs)} outputs: with its class names the "
            ".keras file keeps the classifier output alone, which predict reads; export without "
            f"{_option('labels')} to keep them all", UserWarning, stacklevel=3)


def _label_map_for(model: keras.Model, labels: LabelMap | Sequence[str] | PathLike | None):
    """The label map to export with: the model's own, or ``labels`` for a model that carries none
    (given with a model that carries one, ``labels`` is refused, as ``predict`` refuses it: it
    replaced the model's map without a word, and turned a multi-label model single-label)."""
    from keras_species.models.labels import (
        LabelMap,
        LabelMapError,
        find_output_layer,
        label_map,
        load_labels_json,
    )
    from keras_species.predict import _own_labels_refusal

    if labels is None:
        if find_output_layer(model) is None:  # label_map's message is predict's (a labels.json beside it)
            raise LabelMapError(
                f"model {model.name!r} carries no label map (no ClassifierOutput layer): pass its "
                f"class names, {_option('labels', metavar='LABELS_JSON')}"
                + (" (a labels.json)" if _on_command_line() else " (a labels.json or a list)"))
        return label_map(model)
    if find_output_layer(model) is not None:
        raise LabelMapError(_own_labels_refusal(f"model {model.name!r}", label_map(model)))
    if isinstance(labels, LabelMap):
        return labels
    if isinstance(labels, (str, os.PathLike)):
        return load_labels_json(labels)
    return LabelMap([str(c) for c in labels])


# ------------------------------------------------------------------------------------ SavedModel
def _serving_module(model: keras.Model, lmap: LabelMap, size: tuple[int, int]):
    """A ``tf.Module`` holding ``model`` with the ``serve``/``serve_float``/``serve_bytes``/``metadata``
    functions."""
    import tensorflow as tf

    from keras_species.data.pipeline import decode_8bit, decode_png_rgb, scale_images, to_uint8

    h, w = size
    class_names = tf.constant(lmap.class_names)
    thresholds = tf.constant(lmap.threshold_array(), tf.float32)
    multilabel, logits = lmap.multilabel, lmap.logits

    def resize(x):
        # The rule of ``data.pipeline.resize_image`` ("stretch"), on a whole batch (an exact copy
        # when the size already matches).
        return tf.ensure_shape(scale_images(x, tf.constant([h, w])), [None, h, w, 3])

    def outputs(x):
        p = tf.cast(module.model(x, training=False), tf.float32)
        if logits:
            p = tf.sigmoid(p) if multilabel else tf.nn.softmax(p, axis=-1)
        top = tf.argmax(p, axis=-1)
        out = {
            "probabilities": p,
            "class_names": tf.identity(class_names),
            "top_class": tf.gather(class_names, top),
            "top_probability": tf.reduce_max(p, axis=-1),
        }
        if multilabel:
            out["thresholds"] = tf.identity(thresholds)
            out["predicted"] = p >= thresholds
        return out

    spec_u8 = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    spec_f32 = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")

    @tf.function(input_signature=[spec_u8])
    def serve(images):
        x = resize(images)  # read as uint8, as the training pipeline does (no float copy)
        return outputs(tf.cast(to_uint8(x), tf.float32))  # rounded as the training pipeline

    @tf.function(input_signature=[spec_f32])
    def serve_float(images):
        return outputs(resize(images))

    def decode_one(data):
        # the training pipeline's decoders: a JPEG at least twice the input size is decoded at
        # 1/2, 1/4 or 1/8 scale in the DCT step, as make_dataset and predict decode its file; a
        # PNG with alpha (or a transparent palette) composited onto white, as read_image does
        # (decode_8bit drops the alpha channel: a cut-out's transparent background came out black)
        png = tf.strings.substr(data, 0, 8) == b"\x89PNG\r\n\x1a\n"
        image = tf.cond(png, lambda: decode_png_rgb(data),
                        lambda: decode_8bit(data, draft_to=(h, w), draft=tf.io.is_jpeg(data)))
        return to_uint8(resize(image[None]))[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        images = tf.map_fn(decode_one, image_bytes, fn_output_signature=tf.TensorSpec([h, w, 3], tf.uint8))
        return outputs(tf.cast(images, tf.float32))

    @tf.function(input_signature=[])
    def metadata():
        return {
            "class_names": tf.identity(class_names),
            "image_size": tf.constant([h, w], tf.int32),
            "multilabel": tf.constant(multilabel),
            "thresholds": tf.identity(thresholds),
        }

    module = tf.Module(name="keras_species_classifier")
    module.model = model  # tracks the layers' Keras 3 variables
    # and the rest: a random augmentation layer's SeedGenerator is no TF trackable, yet the traced
    # functions read its state (the export failed with "captures tensor ... not reachable")
    module.keras_variables = list(model.variables)
    module.serve = serve
    module.serve_float = serve_float
    module.serve_bytes = serve_bytes
    module.metadata = metadata
    return module


def _write_saved_model(model, lmap, size, out: Path, replace: bool) -> Path:
    import tensorflow as tf

    module = _serving_module(model, lmap, size)
    signatures = {
        "serve": module.serve.get_concrete_function(),
        "serving_default": module.serve.get_concrete_function(),
        "serve_float": module.serve_float.get_concrete_function(),
        "serve_bytes": module.serve_bytes.get_concrete_function(),
        "metadata": module.metadata.get_concrete_function(),
    }
    with atomic_folder(out, replace=replace, flag=_out_flag()) as tmp:
        tf.saved_model.save(module, os.fspath(tmp), signatures=signatures)
        _served_label_map(lmap).write_json(tmp / LABELS_JSON)
    return out


def _served_label_map(lmap: LabelMap) -> LabelMap:
    """The label map of an exported model: its outputs are probabilities whatever the Keras model
    gave (the signatures apply a logits model's softmax/sigmoid), so ``logits`` is off; with it
    on, ``LabelMap.probabilities`` applied the softmax a second time."""
    return dataclasses.replace(lmap, logits=False)


def float32_copy(model: keras.Model) -> keras.Model:
    """The model with every mixed-precision layer computing in ``float32``, with the same weights.

    TFLite's builtin kernels have no ``float16``/``bfloat16`` versions, so a model trained under
    ``mixed_float16`` (the recipes' ``--mixed-precision auto`` on a GPU) failed to convert. The
    copy is rebuilt from the model's config with each ``mixed_*`` dtype policy replaced (nested
    models included) and given the model's weights, which mixed precision keeps in ``float32``.
    Written by hand because Keras has no call that changes a built model's compute dtype.

    Args:
        model: a functional or Sequential Keras model.

    Returns:
        ``model`` itself when no layer uses a mixed policy, else the ``float32`` copy.

    Example:
        >>> m32 = float32_copy(model)   # doctest: +SKIP
    """
    changed = []

    def to_float32(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and str(
                    (node.get("config") or {}).get("name", "")).startswith("mixed_"):
                changed.append(node["config"]["name"])
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: to_float32(v) for k, v in node.items()}
        if isinstance(node, list):
            return [to_float32(v) for v in node]
        if isinstance(node, str) and node in ("mixed_float16", "mixed_bfloat16"):  # a bare policy name
            changed.append(node)
            return "float32"
        return node

    config = to_float32(model.get_config())
    if not changed:
        return model
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


# ---------------------------------------------------------------------------------------- TFLite
def _representative_name(data) -> str:
    """``representative_data`` in messages: with its value when it is a path (never an array)."""
    if isinstance(data, (str, os.PathLike)):
        return _option("representative_data", data)
    return _option("representative_data")


def _check_representative(data, quantize: str | None) -> None:
    """Refuse representative images that would not be used, or a path that does not exist,
    before the model is read."""
    if data is None:
        return
    if quantize != "int8":
        raise ExportError(
            f"{_option('representative_data')} is used by {_option('quantize', 'int8')} only "
            f"(full-integer quantization): add {_option('quantize', 'int8')}, or leave "
            f"{_option('representative_data')} out"
        )
    if isinstance(data, (str, os.PathLike)) and not os.path.exists(os.fspath(data)):
        raise ExportError(
            f"{_representative_name(data)} does not exist: give the images to calibrate the int8 "
            "model on (a folder, a CSV or a .txt list of images)"
        )


def _representative_images(
    data, size: tuple[int, int], count: int, unreadable: list[str] | None = None
) -> Iterable[np.ndarray]:
    """Up to ``count`` float32 ``(1, H, W, 3)`` images from a folder/paths/array/dataset; the
    files that cannot be read are appended to ``unreadable`` as ``"path: reason"``."""
    import tensorflow as tf

    if isinstance(data, np.ndarray):
        arr = data[None] if data.ndim == 3 else data
        from keras_species.data.pipeline import resize_image

        for img in arr[:count]:
            yield np.asarray(resize_image(tf.constant(img, tf.float32), size))[None]
        return
    if isinstance(data, tf.data.Dataset):
        n = 0
        for el in data:
            batch = el[0] if isinstance(el, (tuple, list)) else el
            batch = batch if batch.shape.rank == 4 else batch[None]
            for img in batch:
                yield np.asarray(tf.cast(img[None], tf.float32))
                n += 1
                if n >= count:
                    return
        return
    from keras_species.predict import image_dataset

    n = 0
    with warnings.catch_warnings():  # "no images found in ...: nothing to predict": _convert says it
        warnings.filterwarnings("ignore", message="no images found in", category=UserWarning)
        dataset = image_dataset(data, size, batch_size=1)
    for paths, images, errors in dataset:
        if errors.numpy()[0]:
            if unreadable is not None:
                unreadable.append(f"{paths.numpy()[0].decode('utf-8')}: {errors.numpy()[0].decode('utf-8')}")
            continue
        yield images.numpy().astype(np.float32)
        n += 1
        if n >= count:
            return


TRACKABLE_OBJ_NOTICE = "Please consider providing the trackable_obj argument in the from_concrete_functions"
"""The start of the absl warning that ``TFLiteConverter.from_concrete_functions`` logs when it is
given no ``trackable_obj`` (TF 2.21). :func:`_write_tflite` gives it none on purpose: its one
function is frozen (no variables to keep alive, which is what ``trackable_obj`` is for). A
module given as ``trackable_obj`` would send the conversion through a SavedModel instead
(``experimental_lower_to_saved_model``), a path whose float16 and int8 results this export is
not tested on; a function given as one is taken as none, so passing ``frozen`` would only hide
the warning under another name. So the warning is left out around that one call
(:func:`_without_log_message`): nothing else TensorFlow logs is."""


class _DropMessage(logging.Filter):
    """A logging filter that drops the records whose message starts with ``start``."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


@contextlib.contextmanager
def _without_log_message(logger: str, start: str) -> Iterator[None]:
    """Within the block, logger ``logger`` drops the records whose message starts with
    ``start``; every other record, and the same message outside the block, is logged as ever.

    Args:
        logger: the logger's name (``"absl"``: TensorFlow's Python warnings).
        start: the start of the message to drop.

    Example:
        >>> with _without_log_message("absl", TRACKABLE_OBJ_NOTICE):  # doctest: +SKIP
        ...     converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    """
    drop = _DropMessage(start)
    log = logging.getLogger(logger)
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def _write_tflite(
    model, lmap, size, out: Path, quantize: str | None, representative_data, count: int
) -> Path:
    import tensorflow as tf

    h, w = size
    multilabel, logits = lmap.multilabel, lmap.logits
    model = float32_copy(model)  # TFLite's builtin kernels are float32 (or quantized) only

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
    def probabilities(image):
        p = tf.cast(model(image, training=False), tf.float32)
        if logits:
            p = tf.sigmoid(p) if multilabel else tf.nn.softmax(p, axis=-1)
        return {"probabilities": p}

    # The variables are frozen into constants first: both from_concrete_functions and
    # from_saved_model keep Keras 3 variables as VAR_HANDLE/READ_VARIABLE ops (TF 2.21), which
    # leaves float16 weights unquantized and makes full-integer calibration fail.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(probabilities.get_concrete_function())
    with _without_log_message("absl", TRACKABLE_OBJ_NOTICE):  # the path taken on purpose
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    data = _convert(converter, quantize, representative_data, size, count)
    # both written before either lands, the label map first, and put back as it was when the
    # model then fails to land: a label map that could not be written (a name too long) left a
    # new model beside no label map, or beside an earlier export's
    labels = tflite_labels_path(out)
    before = labels.read_bytes() if labels.is_file() else None
    try:
        with atomic_path(out, _out_flag()) as tmp, atomic_path(labels, _out_flag()) as tmp_labels:
            tmp.write_bytes(data)
            _served_label_map(lmap).write_json(tmp_labels)
    except BaseException:
        now = labels.read_bytes() if labels.is_file() else None
        if now != before:  # the label map landed, the model did not
            if before is None:
                labels.unlink(missing_ok=True)
            else:
                with atomic_path(labels) as back:
                    back.write_bytes(before)
        raise
    return out


def tflite_labels_path(tflite: str | os.PathLike) -> Path:
    """Where the label map of a ``.tflite`` file goes: ``<name>.labels.json`` beside it, so that
    two models exported into one folder keep their own class names.

    Args:
        tflite: the ``.tflite`` file.

    Returns:
        The path of its label map.

    Example:
        >>> tflite_labels_path("exports/fish.tflite").name
        'fish.labels.json'
    """
    tflite = Path(tflite)
    return tflite.with_name(tflite.stem + ".labels.json")


def _convert(converter, quantize: str | None, representative_data, size, count: int) -> bytes:
    import tensorflow as tf

    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative_data is not None:
            unreadable: list[str] = []
            images = list(_representative_images(representative_data, size, count, unreadable))
            if not images:
                found = ""
                if unreadable:  # name them: "no readable image" alone sends one looking for files
                    shown = "; ".join(unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
                    found = f" (none of its {len(unreadable)} file(s) can be read: {shown})"
                raise ExportError(
                    f"{_representative_name(representative_data)} holds no readable image{found}: "
                    "give the images to calibrate the int8 model on (a folder, a CSV or a .txt list "
                    f"of images), or leave {_option('representative_data')} out for "
                    "dynamic-range int8"
                )
            if unreadable:  # skipped: calibration goes on with the others, but not silently
                shown = "; ".join(unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
                warnings.warn(f"{_representative_name(representative_data)}: {len(unreadable)} "
                              f"unreadable file(s) left out of the calibration ({shown}); "
                              f"calibrating on {len(images)} image(s)", UserWarning, stacklevel=2)

            def gen():
                for img in images:
                    yield [img]

            converter.representative_dataset = gen
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    from keras_species.tensorflow_start import native_stderr_without

    # TensorFlow's quantizer writes its settings to the process's stderr from C++
    # ("fully_quantize: 0, inference_type: 6, ..."): a line that tells a user nothing
    with warnings.catch_warnings(), native_stderr_without([QUANTIZER_LINE]):
        warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs were expected"
        return converter.convert()


QUANTIZER_LINE = "fully_quantize: "
"""The start of the line TensorFlow's C++ quantizer prints during an int8 conversion with a
representative dataset (TF 2.21), left out of the output; nothing else it writes is."""


# ------------------------------------------------------------------------------------ export_model
_SUFFIX_FORMATS = {".keras": "keras", ".tflite": "tflite"}
# model files export does not write: without --format, such an --out is refused, not made a folder
_NOT_WRITTEN = (".h5", ".hdf5", ".onnx", ".pb", ".pt", ".pth", ".json", ".zip")


def export_format(out: PathLike, format: str | None = None) -> str:
    """The format to export to ``out``: ``format`` if given, else the one ``out`` names.

    ``out`` ending in ``.keras`` means ``keras``, ``.tflite`` means ``tflite``; any other name
    (no suffix, an existing folder) means ``saved_model``, a folder. A ``format`` that
    contradicts ``out`` is refused, before any model is read.

    Args:
        out: the file or folder to write (``--out``).
        format: ``"keras"``, ``"saved_model"``, ``"tflite"``, or ``None`` to follow ``out``.

    Returns:
        The format.

    Raises:
        ExportError: an unknown ``format``, one that contradicts ``out``, or (with no ``format``)
            an ``out`` that names a model file export does not write (``.h5``, ``.onnx``...).

    Example:
        >>> export_format("exports/fish.tflite")
        'tflite'
        >>> export_format("exports/fish")
        'saved_model'
    """
    out = Path(out)
    suffix = out.suffix.lower()
    named = _SUFFIX_FORMATS.get(suffix)
    if format is None:
        if named is not None:
            return named
        if suffix in _NOT_WRITTEN and not out.is_dir():
            raise ExportError(
                f"{_option('out', out)} ends in {out.suffix}, which export does not write: give a "
                f".keras or .tflite file, or a folder for a SavedModel (e.g. {out.with_suffix('')})"
            )
        return "saved_model"
    if format not in FORMATS:
        raise ExportError(f"{_option('format', format)}; choose one of {', '.join(FORMATS)}")
    if named is not None and named != format:
        fix = (f"give a folder name, e.g. {_option('out', out.with_suffix(''))}"
               if format == "saved_model" else f"give {_option('out', out.with_suffix('.' + format))}")
        raise ExportError(
            f"{_option('format', format)} contradicts {_option('out', out)} (a {out.suffix} name "
            f"means {_option('format', named)}): leave {_option('format')} out, or {fix}"
        )
    if format in _SUFFIX_FORMATS.values() and named is None:
        if out.is_dir():
            raise ExportError(
                f"{_option('format', format)} writes a file, but {_option('out', out)} is a "
                f"folder: give a file name, e.g. {_option('out', out / f'model.{format}')}"
            )
        if not out.suffix:
            raise ExportError(
                f"{_option('format', format)} writes a file, but {_option('out', out)} is a "
                f"folder name (no suffix): give {_option('out', out.with_name(f'{out.name}.{format}'))}, "
                f"or leave {_option('format')} out to write a SavedModel folder"
            )
    return format


def check_export_out(out: PathLike, format: str | None, *, overwrite: bool = False) -> Path:
    """Check where :func:`export_model` writes, before the model is loaded or converted.

    A ``.keras`` or ``.tflite`` file must end in its suffix; an existing one is replaced whole
    when the new one is complete (:func:`keras_species.atomic.atomic_path`), as every file the
    library writes. A SavedModel is a folder, written beside ``out`` and moved in complete
    (:func:`keras_species.atomic.atomic_folder`), so files of two exports never mix: ``out``
    may be new or empty; an existing SavedModel there is replaced only with ``overwrite``; a
    folder holding anything else, or a file, is refused (``overwrite`` never deletes what is
    not a SavedModel).

    Args:
        out: the file or folder to write.
        format: ``"keras"``, ``"saved_model"`` or ``"tflite"``; ``None`` follows ``out``
            (:func:`export_format`).
        overwrite: replace an existing SavedModel folder (``--overwrite``).

    Returns:
        ``out`` as a Path; its parent folder exists.

    Raises:
        ExportError: a name that does not fit or contradicts the format, or a folder that would
            be mixed.
        OSError: ``out`` cannot be written (a folder in place of a file, a file on its way);
            the message names it.

    Example:
        >>> check_export_out("exports/fish.tflite", "tflite")  # doctest: +SKIP
        PosixPath('exports/fish.tflite')
    """
    format = export_format(out, format)
    out = Path(out)
    if format in ("keras", "tflite"):
        suffix = f".{format}"
        if out.suffix != suffix:
            # Keras saves a .keras archive under no other name, upper case included (.KERAS)
            kind = "a Keras archive" if format == "keras" else "a TFLite file"
            case = " in lower case" if out.suffix.lower() == suffix else ""
            raise ExportError(f"{_option('out', out)}: {kind} must end in {suffix}{case}: give "
                              f"{_option('out', out.with_suffix(suffix))}")
        check_output_file(out, _out_flag(), example=f"model{suffix}")
        if format == "tflite":
            check_output_file(tflite_labels_path(out), _out_flag())
        return out
    check_output_folder(out, _out_flag(), example=str(out.with_name(f"{out.stem}_savedmodel")))
    if out.is_dir() and any(out.iterdir()):
        if not is_saved_model(out):
            names = sorted(q.name for q in out.iterdir())
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise ExportError(
                f"{_given_out(out)} is a folder holding other files ({shown}), not a SavedModel: "
                f"give a new or empty folder for the SavedModel ({_option('overwrite', True)} "
                "replaces only a SavedModel)"
            )
        if not overwrite:
            fix = ("add --overwrite to replace it" if _on_command_line()
                   else "pass overwrite=True to replace it")
            raise ExportError(
                f"{_given_out(out)} holds a SavedModel already: {fix} (the new one takes its "
                f"place when complete), or give another {_option('out')}"
            )
    return out


def export_model(
    model_or_path: keras.Model | PathLike,
    out: PathLike,
    *,
    format: str | None = None,
    quantize: str | None = None,
    representative_data=None,
    image_size: int | Sequence[int] | None = None,
    labels: LabelMap | Sequence[str] | PathLike | None = None,
    representative_count: int = 100,
    overwrite: bool = False,
) -> Path:
    """Write a classifier as ``.keras``, a SavedModel with any-size uint8/float signatures, or TFLite.

    See the module docstring for what each format holds. The model path
    (:func:`resolve_model_path`) and ``out`` (:func:`check_export_out`) are checked before any
    work, and what is written appears complete or not at all.

    Args:
        model_or_path: a ``keras.Model``, a ``.keras`` file or a run folder (its ``best.keras``).
        out: the ``.keras`` file, the SavedModel folder, or the ``.tflite`` file to write
            (``<name>.labels.json`` goes beside it). An existing file is replaced.
        format: ``"keras"``, ``"saved_model"`` or ``"tflite"``; ``None`` (the default) follows
            ``out``: ``.keras``, ``.tflite``, else a SavedModel folder (:func:`export_format`).
        quantize: TFLite only: ``None``, ``"float16"`` or ``"int8"``.
        representative_data: TFLite ``int8`` only: images for full-integer quantization (a
            folder, a list of paths, a CSV, an ``(N, H, W, 3)`` 0–255 array or a
            ``tf.data.Dataset`` of images); without it ``int8`` is dynamic-range.
        image_size: ``H`` or ``(H, W)``, only for models whose input size is not fixed.
        labels: the label map for a model without a ``ClassifierOutput`` layer: class names, a
            ``labels.json`` or a ``LabelMap`` (otherwise read from the model).
        representative_count: how many representative images to use at most.
        overwrite: SavedModel only: replace the SavedModel already at ``out`` (refused without
            it); files are replaced either way.

    Returns:
        The path written.

    Raises:
        ExportError: a bad format/quantize combination, a format that contradicts ``out``, an
            ``out`` that does not fit, or a model that cannot be exported.
        OSError: ``out`` cannot be written (see :func:`check_export_out`).
        keras_species.models.labels.LabelMapError: no label map in the model and none passed.

    Example:
        >>> export_model("runs/r1/demo", "exported/fish")  # a SavedModel  # doctest: +SKIP
        >>> export_model("runs/r1/demo", "exported/fish_int8.tflite",
        ...              quantize="int8", representative_data="data/val")   # doctest: +SKIP
    """
    given = format
    format = export_format(out, format)  # options first: nothing is read before they agree
    if quantize is not None and quantize not in QUANTIZE:
        raise ExportError(f"{_option('quantize', quantize)}; choose one of {', '.join(QUANTIZE)}"
                          + ("" if _on_command_line() else " or None"))
    if quantize is not None and format != "tflite":
        source = "" if given else (f" ({_option('out', out)} means {_option('format', format)}; "
                                   "give a .tflite file)")
        raise ExportError(f"{_option('quantize', quantize)} applies to "
                          f"{_option('format', 'tflite')} only{source}")
    _check_representative(representative_data, quantize)
    if isinstance(model_or_path, (str, os.PathLike)):  # named first, as on the command line
        model_or_path = resolve_model_path(model_or_path, saved_model=False)
    labels = _read_labels_option(labels)
    out = check_export_out(out, format, overwrite=overwrite)
    model = load_keras_model(model_or_path)  # the first heavy work: the checks above load nothing
    if format == "keras":
        # --image-size is checked as the other formats check it (it was ignored without a word)
        if image_size is not None:
            if None in tuple(model.input_shape)[1:3]:
                raise ExportError(
                    f"{_option('image_size', image_size)}: a .keras file keeps no image size, and "
                    f"model {model.name!r} takes images of any size; give the size to predict "
                    f"({_option('image_size', metavar='PX')} there) or export a SavedModel or a "
                    ".tflite file, which keep it")
            model_image_size(model, image_size)  # refused unless it is the model's own
        given = model
        if labels is not None:
            from keras_species.models.labels import attach_label_map

            if len(model.outputs) > 1:
                label_output_model(model)  # refused unless one output is named 'label'
            lmap = _label_map_for(model, labels)
            model = attach_label_map(
                model, lmap.class_names, multilabel=lmap.multilabel, thresholds=lmap.thresholds,
                logits=lmap.logits,
            )
        if getattr(model, "optimizer", None) is not None:  # a compiled model given in Python
            import keras

            # same layers, no optimizer; model.output keeps a dict's keys (outputs is a flat list,
            # and a reloaded two-output model predicted a list, in another order)
            try:
                model = keras.Model(model.input, model.output, name=model.name)
            except AttributeError:  # a Sequential model built without an Input: one output
                model = keras.Model(model.inputs, model.outputs, name=model.name)
        with atomic_path(out, _out_flag()) as tmp:
            model.save(tmp)
        _warn_keras_export_labels(given, labels)  # once written (a refusal came after it)
        return out
    lmap = _label_map_for(model, labels)
    model = label_output_model(model)
    if model.output_shape[-1] != lmap.num_classes:
        raise ExportError(
            f"model {model.name!r} has {model.output_shape[-1]} outputs but the label map "
            f"{lmap.num_classes} class names"
        )
    size = model_image_size(model, image_size)
    if format == "saved_model":
        return _write_saved_model(model, lmap, size, out, replace=overwrite)
    return _write_tflite(model, lmap, size, out, quantize, representative_data, representative_count)


# ------------------------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``keras-species export``.

    Args:
        parser: the subcommand's parser.

    Example:
        >>> configure_parser(argparse.ArgumentParser())
    """
    from keras_species.config import positive_int

    parser.add_argument("model", metavar="MODEL",
                        help="a .keras file or a run folder (its best.keras); not a SavedModel or "
                        ".tflite (export from the .keras they came from)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format (default: from --out: .keras is keras, .tflite is "
                             "tflite, a folder is saved_model)")
    parser.add_argument("--quantize", choices=QUANTIZE, default=None,
                        help="TFLite only: float16 weights, or int8 (dynamic-range; full-integer "
                             "with --representative)")
    parser.add_argument("--representative", default=None, metavar="IMAGES",
                        help="--quantize int8 only: a folder, a CSV or a .txt/.lst list of images "
                             "for full-integer quantization")
    parser.add_argument("--representative-count", type=positive_int, default=100, metavar="N",
                        help="representative images to use at most (default 100)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="the .keras file, SavedModel folder or .tflite file to write; it "
                             "sets the format (a file is replaced; a SavedModel folder must be new "
                             "or empty, or hold a SavedModel and --overwrite be given)")
    parser.add_argument("--overwrite", action="store_true",
                        help="saved_model: replace the SavedModel already at --out (files are "
                             "replaced either way)")
    add_image_size_argument(parser)
    parser.add_argument("--labels", default=None, metavar="LABELS_JSON",
                        help="labels.json for a model without a stored label map")


class _ImageSize(argparse.Action):
    """``--image-size H`` or ``--image-size H W``: stored as ``H`` or ``(H, W)``; a third value is
    refused (it was dropped without a word)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if len(values) > 2:
            parser.error(f"argument {option_string}: give H, or H W (height and width in "
                         f"pixels), not {len(values)} values")
        setattr(namespace, self.dest, values[0] if len(values) == 1 else tuple(values))


def add_image_size_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--image-size H [W]`` (whole numbers >= 1; a third value refused) to a parser:
    shared by ``keras-species export`` and ``predict``.

    Args:
        parser: the subcommand's parser.

    Example:
        >>> p = argparse.ArgumentParser(); add_image_size_argument(p)
        >>> p.parse_args(["--image-size", "32", "24"]).image_size
        (32, 24)
    """
    from keras_species.config import positive_int

    parser.add_argument("--image-size", type=positive_int, nargs="+", default=None,
                        metavar=("H", "W"), action=_ImageSize,
                        help="H, or H W: the size to resize to, only for models whose input size "
                             "is not fixed")


def _size_value(size) -> int | tuple[int, int] | None:
    """``args.image_size`` as the functions take it: ``H`` or ``(H, W)`` (a list of one or two
    values from a namespace made by hand too), or ``None``."""
    if isinstance(size, (list, tuple)):
        return (size[0] if len(size) == 1 else tuple(size)) if size else None
    return size


def run_cli(args: argparse.Namespace) -> int:
    """Run ``keras-species export`` with parsed ``args``.

    Args:
        args: from :func:`configure_parser`.

    Returns:
        The exit code (0 on success, 2 for a bad model or option).

    Example:
        >>> run_cli(parser.parse_args(["runs/r1/demo", "--out", "fish.tflite"]))  # doctest: +SKIP
        0
    """
    from keras_species.models.labels import LabelMapError

    size = _size_value(args.image_size)
    try:
        with _command_line("export"):  # messages name the flags given, not export_model's keywords
            path = export_model(
                args.model, args.out, format=args.format, quantize=args.quantize,
                representative_data=args.representative, image_size=size, labels=args.labels,
                representative_count=args.representative_count, overwrite=args.overwrite,
            )
    except (ExportError, LabelMapError) as err:
        print(f"keras-species export: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
