"""The data stages every training recipe runs first: load → audit → clean → split → datasets.

:func:`prepare_data` turns a source (``"demo"``, a folder, a CSV, an iNat/COCO JSON, a saved
manifest) into a split :class:`~keras_species.data.manifest.Manifest`, auditing and cleaning it on
the way and saving the split so that a run can be repeated or resumed on exactly the same images.
:func:`build_datasets` makes the ``tf.data`` pipelines of the train/val/test splits with the
recipe's image size, augmentation and class weights. :func:`read_ahead` reads a source before the
run folder exists (a recipe's checks of the data) so that the :func:`prepare_data` that follows
does not parse the file a second time.

Example:
    >>> prepared = prepare_data("demo", split="group", seed=42, audit_dir=None)  # doctest: +SKIP
    >>> ds = build_datasets(prepared.manifest, 224, 32, augment="r1",
    ...                     class_weight="balanced")                               # doctest: +SKIP
    >>> images, labels, weights = next(iter(ds.train))                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_species.data import audit as audit_mod
from keras_species.data import name_ids, new_classes, sources, splits
from keras_species.data.manifest import Manifest, ManifestError, counted
from keras_species.data.pipeline import check_seed
from keras_species.jsonfile import json_type, read_json_object

SPLIT_KINDS = ("auto", "stratified", "group", "given", "systematic")
"""How :func:`prepare_data` splits: ``auto`` keeps a split that came with the data, else makes a
group-aware split when the data has groups, else a stratified one."""

CLASS_WEIGHT_HELP = "balanced, none, or a JSON file {class name: weight}"


@dataclass
class PreparedData:
    """What :func:`prepare_data` returns.

    Attributes:
        manifest: the cleaned manifest with ``splits`` filled.
        audit: the audit of the loaded data (None when skipped, or when reloaded from a split
            file that has no :func:`sidecar_path` beside it).
        dropped: ``{path, reason}`` of every image left out by cleaning.
        not_read: ``{path, reason}`` of every file the source named or held but that was not
            read: CSV rows whose file does not exist (``on_missing="skip"``) and files of a
            class folder whose extension is not an image's (see :func:`files_not_read`).
        split_kind: the split actually made (``stratified``, ``group``, ``given``,
            ``systematic``) or ``loaded`` (read back from ``split_file``).
        split_file: where the split was saved (None when not saved).
        leakage: groups and paths found on more than one side (empty dicts: none).
        unmatched_drop: the lines of the drop list that match no image (nothing was dropped
            for them: a misspelt name, or a file that is not in the data).
        added_classes: the classes added with ``add_class`` (``--add-class``).
        made_split_kind: for a split read back (``split_kind == "loaded"``), the split its
            first session made, as the sidecar (:func:`sidecar_path`) keeps it; empty when
            unknown (no sidecar: a split file of ``keras-species split``, or a damaged one).
        name_id_note: for a split without groups, the warning of
            :func:`keras_species.data.name_ids.name_id_leak` (held-out images whose file name's
            id, such as a tracking id, sits on another side too) with the flags that fix it;
            empty when there is nothing to say.
    """

    manifest: Manifest
    audit: audit_mod.AuditReport | None = None
    dropped: list[dict[str, str]] = field(default_factory=list)
    split_kind: str = ""
    split_file: Path | None = None
    leakage: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    not_read: list[dict[str, str]] = field(default_factory=list)
    unmatched_drop: list[str] = field(default_factory=list)
    added_classes: list[str] = field(default_factory=list)
    made_split_kind: str = ""
    name_id_note: str = ""

    @property
    def split_method(self) -> str:
        """How the data was split, as the terminal and the report say it: :attr:`split_kind`
        (``group``, ``stratified``, ``systematic``, ``given``), and for a split read back from
        its file (a resumed run) the method its first session used followed by ``(read back
        from split.csv)``; ``loaded`` when that is unknown."""
        if self.split_kind != "loaded" or not self.made_split_kind or self.split_file is None:
            return self.split_kind
        return f"{self.made_split_kind} (read back from {Path(self.split_file).name})"

    @property
    def train_counts(self) -> np.ndarray:
        """Images per class in the ``train`` split (the majority baseline uses them)."""
        return self.manifest.split("train").class_counts()

    def split_table(self) -> str:
        """The per-class, per-split count table (plain text)."""
        return splits.split_table(self.manifest)

    def summary(self) -> str:
        """A few lines for the terminal: images and how they were split (:attr:`split_method`:
        a resumed run names its first session's method), files not read, cleaning, leakage.

        Returns:
            The text, e.g. ``"300 images, 6 classes ...; split: group (read back from
            split.csv)"`` then a line per thing left out or found.

        Example:
            >>> print(prepare_data("demo", split="group", audit=False).summary())
            300 images, 6 classes (single-label), splits test=45 train=210 val=45; split: group
        """
        lines = [f"{self.manifest.summary()}; split: {self.split_method}"]
        if self.not_read:
            lines.append(f"left out {len(self.not_read)} file(s) when reading the source")
        if self.dropped:
            lines.append(f"cleaning dropped {len(self.dropped)} image(s)")
        if self.unmatched_drop:
            lines.append(f"{len(self.unmatched_drop)} line(s) of the drop list match no image: "
                         "nothing was dropped for them")
        if self.leakage.get("groups") or self.leakage.get("paths"):
            lines.append(
                f"LEAKAGE: {len(self.leakage.get('groups', {}))} group(s) and "
                f"{len(self.leakage.get('paths', {}))} path(s) sit on more than one side"
            )
        return "\n".join(lines)


def files_not_read(m: Manifest) -> list[dict[str, str]]:
    """The files a freshly loaded source named or held but did not read, with the reason.

    The readers warn about them as they load and record them in ``manifest.extra``
    (``missing`` from a CSV read with ``on_missing="skip"``, ``skipped`` from a class folder);
    this keeps them, with the reason, for the run's report.

    Args:
        m: a manifest as :func:`sources.load` returned it.

    Returns:
        ``[{"path": ..., "reason": ...}, ...]`` (empty when everything was read).

    Example:
        >>> files_not_read(sources.load("demo"))
        []
    """
    reasons = {
        "missing": "listed in the CSV, but the file does not exist (--on-missing skip)",
        "skipped": "in a class folder, but its extension is not an image extension",
    }
    return [{"path": p, "reason": why} for key, why in reasons.items() for p in m.extra.get(key, [])]


TASKS = ("any", "single", "multi")
"""What :func:`prepare_data` accepts (``task=``): any labels, single-label only (one class per
image) or multi-label only (a set of tags per image)."""


def check_task(m: Manifest, task: str, source: Any, hint: str = "") -> None:
    """Refuse data whose kind of labels the caller cannot train on, in one message.

    Args:
        m: the loaded manifest.
        task: one of :data:`TASKS`.
        source: what ``m`` was read from (named in the message).
        hint: what to do instead (e.g. which recipe takes such data).

    Raises:
        ManifestError: single-label data where ``task="multi"``, or multi-label where
            ``task="single"``.

    Example:
        >>> check_task(sources.load("demo"), "single", "demo")
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: choose one of {', '.join(TASKS)}")
    if task == "any" or m.multilabel == (task == "multi"):
        return
    kind = (f"multi-label ({counted(m.num_classes, 'tag')}, a set per image)" if m.multilabel
            else f"single-label ({counted(m.num_classes, 'class')}, one per image)")
    several = ""
    if m.multilabel and task == "single":  # a stray second annotation made a whole file multi-label
        rows = np.flatnonzero(m.labels.sum(axis=1) > 1)
        if 0 < len(rows) <= max(3, len(m) // 20):  # a few strays, not multi-label data (5% at most)
            shown = ", ".join(repr(m.paths[i]) for i in rows[:3]) + (" ..." if len(rows) > 3 else "")
            several = (f" because {counted(len(rows), 'image carries', 'images carry')} several "
                       f"labels (e.g. {shown}); if each image has one, fix those rows or annotations")
    raise ManifestError(f"{source}: the data is {kind}{several}" + (f"; {hint}" if hint else ""))


LABEL_FILE_SUFFIXES = (".csv", ".json")
"""The label files (a CSV, an iNaturalist/COCO JSON) :func:`label_file_hint` looks for."""


def label_file_hint(source: Any, m: Manifest, flag: str = "--data") -> str:
    """What to give instead of a folder that holds a label file beside one image subfolder.

    A folder such as ``data/`` holding ``labels.csv`` and ``images/`` is read as a folder of
    class folders with one class, ``images``; the labels are in the file.

    Args:
        source: what was given (a folder is checked; anything else gives ``""``).
        m: what it was read as.
        flag: the flag that gave it (named in the hint).

    Returns:
        ``"it holds labels.csv: pass --data data/labels.csv"`` (the other label files named
        too), or ``""`` when ``source`` is not such a folder (two classes or more, multi-label,
        no ``.csv``/``.json`` file at its top level).

    Example:
        >>> label_file_hint("demo", sources.load("demo"))
        ''
    """
    if not isinstance(source, (str, os.PathLike)) or m.multilabel or m.num_classes > 1:
        return ""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        return ""
    files = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in LABEL_FILE_SUFFIXES)
    if not files:
        return ""
    base = os.fspath(source).rstrip("/\\") or os.fspath(source)
    others = f" (or {', '.join(files[1:])})" if len(files) > 1 else ""
    return f"it holds {files[0]}: pass {flag} {base}/{files[0]}{others}"


def check_splits(m: Manifest, need: Sequence[str], hint: str = "") -> None:
    """Refuse a split manifest that lacks a split the caller trains or scores on.

    Args:
        m: a manifest with ``splits``.
        need: split names that must each hold an image (e.g. ``("train", "val", "test")``).
        hint: why they are needed, or how to get them.

    Raises:
        ManifestError: a split of ``need`` holds no image; the message names it.

    Example:
        >>> check_splits(splits.stratified_split(sources.load("demo"), seed=0), ("train", "test"))
    """
    present = set(m.splits) if m.splits is not None else set()
    missing = [s for s in need if s not in present]
    if missing:
        raise ManifestError(
            f"the split has no {' and no '.join(repr(s) for s in missing)} images "
            f"({m.summary()})" + (f": {hint}" if hint else "")
        )


_ReadKey = tuple[str, int, int, str, tuple[tuple[str, str], ...]]
_read_ahead: list[tuple[_ReadKey, Manifest]] = []
"""The one reading that :func:`read_ahead` keeps for the next :func:`prepare_data` (at most one)."""


def _read_key(source: Any, options: dict[str, Any]) -> _ReadKey | None:
    """What identifies one reading of a file source: the file (resolved), its modification time
    and size, the folder relative paths started from, and the reading options; None for a
    source that is not a file (``"demo"``, a folder, a Manifest)."""
    if isinstance(source, Manifest) or not isinstance(source, str | os.PathLike):
        return None
    if os.fspath(source) == "demo":
        return None
    path = Path(source).expanduser()
    try:
        info = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return (str(path.resolve()), info.st_mtime_ns, info.st_size, os.getcwd(),
            tuple(sorted((k, repr(v)) for k, v in options.items())))


def read_ahead(source: str | os.PathLike, load_options: dict[str, Any] | None = None) -> Manifest:
    """Read a source now, and keep the reading for the :func:`prepare_data` call that follows.

    A recipe that looks at its data before the run folder exists
    (:func:`keras_species.recipe.check_labelled_data`) reads it with this. The next
    :func:`prepare_data` of the same file with the same reading options then takes this manifest
    instead of parsing the file again (a large iNaturalist JSON is parsed once, and the reader's
    warnings, such as rows whose file is missing, are shown once: here). Only the latest reading
    is kept, only until the next :func:`prepare_data` call (which uses it or drops it), and only
    while the file's size and modification time are unchanged; a second ``read_ahead`` of the
    same file with the same options before then returns the kept reading (two checks of a
    recipe read the file once). ``"demo"`` and folders are read but not kept (they are quick
    to read again).

    Args:
        source: a CSV, an iNat/COCO JSON or a saved manifest (anything ``sources.load`` reads).
        load_options: keyword arguments of ``sources.load`` (e.g. ``{"root": "images"}``),
            exactly as the recipe then gives them to :func:`prepare_data` (``load_options=``).

    Returns:
        The manifest read (do not change it: :func:`prepare_data` starts from it).

    Raises:
        ManifestError: the source cannot be read (the message says why).

    Example:
        >>> m = read_ahead("labels.csv", {"on_missing": "skip"})              # doctest: +SKIP
        >>> p = prepare_data("labels.csv", load_options={"on_missing": "skip"})  # doctest: +SKIP
        >>> # the CSV was parsed once; p names labels.csv as its source
    """
    options = dict(load_options or {})
    key = _read_key(source, options)
    if key is not None and _read_ahead and _read_ahead[0][0] == key:
        return _read_ahead[0][1]  # read ahead already (a recipe's earlier check): not parsed again
    m = sources.load(source, **options)
    _read_ahead.clear()
    if key is not None:
        _read_ahead.append((key, m))
    return m


def forget_read_ahead() -> None:
    """Drop the reading :func:`read_ahead` kept (a check refused the data: no run follows).

    Example:
        >>> forget_read_ahead()
    """
    _read_ahead.clear()


def _take_read_ahead(source: Any, options: dict[str, Any]) -> Manifest | None:
    """The manifest :func:`read_ahead` kept for this source and these options, or None; either
    way nothing is kept afterwards (a reading serves the one call that follows it)."""
    kept = _read_ahead[:1]
    _read_ahead.clear()
    if not kept:
        return None
    key = _read_key(source, options)
    return kept[0][1] if key is not None and key == kept[0][0] else None


def _name_id_note(m: Manifest, flags: str, after: str = "") -> str:
    """:func:`name_ids.name_id_leak`'s warning for a split ``m`` ('' when none), naming ``flags``."""
    leak = name_ids.name_id_leak(m)
    return "" if leak is None else leak.message(flags, after)


def _split(m: Manifest, kind: str, ratios: Sequence[float], seed: int) -> tuple[Manifest, str]:
    if kind == "auto":
        if m.splits is not None and all(s for s in m.splits):
            kind = "given"
        elif m.groups is not None:
            kind = "group"
        else:
            kind = "stratified"
    if kind == "given":
        return splits.given_split(m), kind
    if kind == "systematic":
        return splits.systematic_split(m), kind
    if kind == "group":
        return splits.stratified_split(m, ratios, seed=seed, group_aware=True), kind
    if kind == "stratified":  # chosen over "group": the groups are ignored
        return splits.stratified_split(m, ratios, seed=seed, group_aware=False), kind
    raise ValueError(f"split={kind!r}: choose one of {', '.join(SPLIT_KINDS)}")


def _same_ratios(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-9 for x, y in zip(a, b))


def _given_split_hint(split: str, has_groups: bool) -> str:
    """Why a split taken from the data's own split column lacks a split, and what to do."""
    return (f"the data's own split column is used (--split {split}); to split by --ratios "
            f"instead, pass {ratio_split_flags(has_groups)}")


def ratio_split_flags(has_groups: bool) -> str:
    """The ``--split`` values that split by ``--ratios``: ``group`` only for data with group ids
    (it is refused without them, and was offered to any data)."""
    return "--split stratified" + (" (or --split group)" if has_groups else "")


def _top_classes(m: Manifest, top_classes: float | int) -> Manifest:
    """``splits.top_classes`` with a count checked against the classes there are (2 to all)."""
    if isinstance(top_classes, float) and top_classes <= 1:  # 1.0: every class, not one
        return splits.top_classes(m, fraction=top_classes)
    count, c = int(top_classes), int((m.class_counts() > 0).sum())  # the classes with images
    if not 2 <= count <= c:
        raise ManifestError(
            f"top_classes={count}: keep 2 to {c} classes (the data has {c} with images; a "
            "classifier needs 2 classes or more)")
    return splits.top_classes(m, count=count)


def _classes_with_images(m: Manifest) -> list[str]:
    return [c for c, n in zip(m.class_names, m.class_counts()) if n > 0]


def _drop_kind(reason: str) -> str:
    """What kind of drop a reason of ``audit.clean`` is, as a summary names it."""
    from keras_species.data.images import oversized_pixels

    if reason.startswith("corrupt") and oversized_pixels(reason) is not None:
        return "over the decompression-bomb limit (too large to decode, so not checked for damage)"
    if reason.startswith("corrupt"):
        return "unreadable (empty, truncated or not an image)"
    if reason.startswith("non-RGB"):
        return "non-RGB (--clean-policy drop_non_rgb)"
    if reason.startswith("in the drop list"):
        return "in the drop list (--drop)"
    return reason


def _check_cleaning_left_classes(before: Manifest, after: Manifest, dropped: list[dict[str, str]],
                                 name: str, audit_dir: str | os.PathLike | None) -> None:
    """Refuse data that cleaning left with images of fewer than 2 classes (it had 2 or more):
    the cause is the dropped files, not a missing class folder, so the message says how many
    were dropped and why, and where each file's reason is (the audit's ``audit.md``)."""
    had, left = _classes_with_images(before), _classes_with_images(after)
    if len(left) >= 2 or len(had) < 2:
        return
    kinds: dict[str, int] = {}
    for d in dropped:
        kind = _drop_kind(d["reason"])
        kinds[kind] = kinds.get(kind, 0) + 1
    why = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    if left:
        what = (f"{len(dropped)} of its {len(before)} images, every image of {len(had) - 1} of its "
                f"{len(had)} classes: {why}. Only class {left[0]!r} is left, and a classifier needs "
                "2 classes or more")
    else:  # (images without a label may be left: they do not train a classifier)
        share = (f"all {len(before)} images" if len(dropped) == len(before) else
                 f"{len(dropped)} of its {len(before)} images, every image of its {len(had)} classes")
        what = f"{share}: {why}. No image of any class is left to train on"
    listed = sum(n for kind, n in kinds.items() if kind.startswith("in the drop list"))
    if listed == len(dropped):  # the user's own list did it: the audit lists no such file
        raise ManifestError(f"{name}: cleaning dropped {what}: shorten the drop list (--drop), "
                            "or add images of the other classes")
    report = Path(audit_dir) / "audit.md" if audit_dir is not None else None
    where = (f"see {report} for each file and its reason" if report is not None and report.is_file()
             else f"run `keras-species audit {name}` to list each file and its reason")
    fix = "then fix or replace those files" + (" (and shorten the drop list, --drop)" if listed else "")
    if any(kind.startswith("non-RGB") for kind in kinds):  # nothing wrong with those: convert them
        fix += ", or keep the non-RGB ones, converted to RGB, with --clean-policy convert"
    raise ManifestError(f"{name}: cleaning dropped {what}: {where}, {fix}")


def prepare_data(
    source: str | os.PathLike | Manifest,
    *,
    group_regex: str | None = None,
    split: str = "auto",
    ratios: Sequence[float] = splits.DEFAULT_RATIOS,
    default_ratios: Sequence[float] = splits.DEFAULT_RATIOS,
    seed: int = 0,
    audit: bool = True,
    audit_dir: str | os.PathLike | None = None,
    clean_policy: str = "convert",
    drop: str | os.PathLike | Sequence[str] | None = None,
    top_classes: float | int | None = None,
    split_file: str | os.PathLike | None = None,
    progress: bool = False,
    load_options: dict[str, Any] | None = None,
    task: str = "any",
    task_hint: str = "",
    need_splits: Sequence[str] = (),
    need_hint: str = "",
    add_class: Sequence[str | os.PathLike] = (),
    keep_unlabelled: bool = False,
) -> PreparedData:
    """Load a source, audit it, clean it, keep the top classes, split it and save the split.

    When ``split_file`` exists already (a resumed run), the split is read back from it and
    nothing else is done, so a resumed run trains and tests on exactly the same images.

    Args:
        source: ``"demo"``, a folder of class subfolders, a CSV, an iNat/COCO JSON, a saved
            manifest, or a Manifest (messages, the audit and the report then name the file it
            was read from, ``manifest.source``). A file that :func:`read_ahead` has just read
            with the same ``load_options`` is not read again: that reading is used.
        group_regex: regex whose first group is an image's group id (frames of one animal);
            the demo's tracking ids are used without it.
        split: one of :data:`SPLIT_KINDS`.
        ratios: train/val/test ratios (70/15/15 default; R3 also used 80/10/10). Not used
            by a ``given`` split (nor ``systematic``).
        default_ratios: the caller's default ``ratios`` (a recipe's ``--ratios`` default):
            when ``split="auto"`` takes the data's own split column and ``ratios`` differ
            from these, a warning says that they are not used (``--split stratified`` splits
            by them).
        seed: the split's seed.
        audit: scan the images (modes, sizes, corrupt files, duplicates) and drop corrupt ones.
        audit_dir: where the audit report is written (``audit.md``, ``audit.json``, plots).
        clean_policy: ``"convert"`` (keep non-RGB images; the pipeline converts them) or
            ``"drop_non_rgb"`` (R5).
        drop: R3's cleaning list: paths or file names to leave out, or a text file of them.
        top_classes: keep only the most frequent classes: a fraction in (0, 1) (R5: 0.1) or a
            count (an int from 2 to the number of classes).
        split_file: CSV to save the split to (``splits.save_split``), or to read it back from
            (with the audit, cleaning and not-read lists kept beside it: :func:`sidecar_path`).
        progress: show the audit's progress bar.
        load_options: extra keyword arguments for ``sources.load`` (e.g. ``path_format``).
            With a Manifest source only ``group_regex`` applies (it replaces the groups, in a
            copy); ``sources.load`` refuses the others there (``path_format``, ``root``...: read
            the file with them instead).
        task: the labels the caller trains on (:data:`TASKS`); data of the other kind is
            refused right after it is read, before the audit (:func:`check_task`).
        task_hint: what to do with data of the other kind (ends the message).
        need_splits: splits that must hold images (:func:`check_splits`), e.g. ``("train",
            "val", "test")`` for a recipe that scores a test split; checked before the split is
            saved.
        need_hint: why they are needed or how to get them (ends the message). When the split
            is the data's own split column (``given``, or ``auto`` taking it), the message says
            so instead, and how to split by ``ratios`` (``--split stratified`` or ``group``).
        add_class: folders of images of classes to add (``--add-class``,
            :mod:`keras_species.data.new_classes`): audited and cleaned together with the data
            (a new image identical to one of another class is a conflicting duplicate), then
            split on their own and merged into the split.
        keep_unlabelled: keep images without a label (single-label data: a CSV row with an
            empty label cell, a COCO image without an annotation). By default they are left
            out, listed in ``not_read`` with the reason, since training needs labels.

    Returns:
        A :class:`PreparedData`.

    Raises:
        ManifestError: a bad source, a ``load_options`` entry that does not apply to it (with a
            Manifest source: any but ``group_regex``), too few classes to split, a bad
            ``top_classes`` (a count outside 2 to the number of classes), labels of the other ``task``, or a split of ``need_splits`` without
            images. Data of 2 classes or more that cleaning left with images of fewer than 2
            (every file unreadable, say) is refused right after cleaning: the message says how
            many images were dropped and why, and points to ``audit_dir``'s ``audit.md`` (or to
            ``keras-species audit``).
        ValueError: a bad ``split``.

    Example:
        >>> p = prepare_data("demo", split="group", seed=1, audit=False)
        >>> p.split_kind, p.leakage["groups"]
        ('group', {})
    """
    seed = check_seed(seed)  # before any work: a bad seed failed after the audit
    if split not in SPLIT_KINDS:
        raise ValueError(f"split={split!r}: choose one of {', '.join(SPLIT_KINDS)}")
    options = dict(load_options or {})
    if group_regex:
        options["group_regex"] = group_regex
    kept = _take_read_ahead(source, options)  # taken or dropped: a reading serves one call
    if split_file is not None and Path(split_file).is_file():
        prepared = _read_back(Path(split_file))
        check_task(prepared.manifest, task, split_file, task_hint)
        check_splits(prepared.manifest, need_splits, need_hint)
        return prepared

    name = sources.source_name(source)
    m = kept if kept is not None else sources.load(source, **options)
    if len(m) == 0:
        raise ManifestError(f"{name}: no images found")
    check_task(m, task, name, task_hint)
    not_read = files_not_read(m)
    unlabelled = ~m.labelled_mask
    if unlabelled.any() and not keep_unlabelled:  # (recipes warn first: recipe.check_labelled_data)
        not_read += [{"path": m.paths[i], "reason": "has no label (left out: training needs "
                      "labelled images)"} for i in np.flatnonzero(unlabelled)]
        m = m.subset(~unlabelled)
        if len(m) == 0:
            raise ManifestError(f"{name}: none of its images has a label: give them labels")
    added: list[str] = []
    if add_class:
        new = new_classes.load_class_dirs(add_class, group_regex=options.get("group_regex"))
        added = list(new.class_names)
        m = new_classes.merge_for_audit(m, new)  # one audit and one cleaning cover the added images
    report = None
    dropped: list[dict[str, str]] = []
    before = m
    if audit:
        if audit_dir is not None:  # said as prepare_data's own argument (audit() says out_dir)
            sources.check_output_place(m, audit_dir, "audit_dir", folder=True)
        report = audit_mod.audit(m, audit_dir, progress=progress)
        m, dropped = audit_mod.clean(m, report, policy=clean_policy, drop=drop, warn_emptied=False)
    elif drop is not None or clean_policy != "convert":
        warnings.warn(
            "audit=False: the drop list and the cleaning policy need the audit; they are applied "
            "with an empty audit (only the drop list takes effect)",
            stacklevel=2,
        )
        m, dropped = audit_mod.clean(m, audit_mod.AuditReport(), policy=clean_policy, drop=drop,
                                     warn_emptied=False)
    if dropped:
        _check_cleaning_left_classes(before, m, dropped, name, audit_dir if audit else None)
        # said once: the error above when too few classes are left, else clean's warning
        audit_mod.warn_emptied_classes(m, stacklevel=3)
    # the drop-list lines that named no image (clean only warns about them): for the report
    unmatched = list(m.extra.get("cleaning", {}).get("unmatched_drop", []))
    if added:
        m, new = new_classes.separate_added(m, added)
    if top_classes is not None:
        m = _top_classes(m, top_classes)
    partial = m.splits is not None and any(m.splits) and not all(m.splits)
    with splits.held_warnings() as held:  # given once the split stands (check_splits below)
        m, kind = _split(m, split, ratios, seed)
    if kind == "given" and not _same_ratios(ratios, default_ratios) and not added:  # added: split by them
        warnings.warn(
            f"--ratios {' '.join(f'{r:g}' for r in ratios)} is not used: the data's own split "
            f"column is (--split {split}); to split by the ratios instead, pass "
            f"{ratio_split_flags(m.groups is not None)}",
            stacklevel=2,
        )
    if split == "auto" and partial:  # the column is ignored: say so, its test rows may train now
        warnings.warn(
            "the data's split column is empty in some rows, so it is not used (--split auto "
            f"keeps a split column only when every row has one): the data was split by {kind} "
            "ratios instead, and rows the column put in test may now train; fill the empty "
            "cells, or pass --split given to be told which rows they are",
            stacklevel=2,
        )
    if added:  # split on their own (the data's split stays as it is), then merged in
        m = new_classes.add_classes(m, new, ratios=ratios, seed=seed, group_aware=kind == "group")
    if kind == "given":
        hint = _given_split_hint(split, m.groups is not None)
    elif kind == "group":
        hint = (f"the {len(m)} images form only {counted(len(set(m.groups or [])), 'group')}, and a group "
                "goes whole to one side: give finer group ids (--group-regex, a group column), fewer "
                "--ratios parts, or split without groups (--split stratified)"
                + (f"; {need_hint}" if need_hint else ""))
    else:
        hint = need_hint
    check_splits(m, need_splits, hint)
    splits.give_warnings(held)
    saved = None
    if split_file is not None:
        Path(split_file).parent.mkdir(parents=True, exist_ok=True)
        splits.save_split(m, split_file)
        saved = Path(split_file)
        _write_sidecar(saved, kind, report, dropped, not_read, unmatched, added)
    note = _name_id_note(m, "--group-regex" if split == "auto" and kind == "stratified"
                         else "--split group --group-regex")
    if note:
        warnings.warn(note, stacklevel=2)
    return PreparedData(m, report, dropped, kind, saved, splits.leakage(m), not_read, unmatched,
                        added, name_id_note=note)


def sidecar_path(split_file: str | os.PathLike) -> Path:
    """Where :func:`prepare_data` keeps, beside a saved split, what a resumed run reports again:
    the audit's figures, the images cleaning dropped, the files not read, the drop-list lines
    that matched nothing (``split.csv`` → ``split.prepared.json``).

    Args:
        split_file: the split CSV.

    Returns:
        The JSON file's path.

    Example:
        >>> sidecar_path("runs/r/split.csv").name
        'split.prepared.json'
    """
    p = Path(split_file)
    return p.with_name(p.stem + ".prepared.json")


def _write_sidecar(split_file: Path, kind: str, report: audit_mod.AuditReport | None,
                   dropped: list[dict[str, str]], not_read: list[dict[str, str]],
                   unmatched_drop: list[str], added_classes: list[str]) -> None:
    from keras_species.training.runs import write_json

    write_json(sidecar_path(split_file), {
        "split_kind": kind, "audit": report.to_dict() if report is not None else None,
        "dropped": dropped, "not_read": not_read, "unmatched_drop": unmatched_drop,
        "added_classes": added_classes,
    })


def _read_back(split_file: Path) -> PreparedData:
    """A saved split, with its audit, cleaning and not-read lists when the sidecar is there (a
    split saved by ``keras-species split`` or an older run has none: those stay empty)."""
    m = splits.load_split(split_file)
    report, dropped, not_read, unmatched = None, [], [], []
    side = sidecar_path(split_file)
    data, reason = read_json_object(side)
    kinds = {"audit": (dict, type(None)), "dropped": list, "not_read": list, "unmatched_drop": list,
             "added_classes": list}
    wrong = [key for key, kind in kinds.items() if key in data and not isinstance(data[key], kind)]
    if wrong:
        reason, data = f"{wrong[0]!r} holds a JSON {json_type(data[wrong[0]])}", {}
    if reason:
        warnings.warn(f"{side} cannot be read ({reason}); the report leaves out the audit, "
                      "cleaning and files not read of this run", stacklevel=3)
    if data.get("audit") is not None:
        names = {f.name for f in dataclasses.fields(audit_mod.AuditReport)}
        report = audit_mod.AuditReport(**{k: v for k, v in data["audit"].items() if k in names})
    dropped, not_read = list(data.get("dropped", [])), list(data.get("not_read", []))
    unmatched = list(data.get("unmatched_drop", []))
    added = [str(c) for c in data.get("added_classes", [])]
    made = data.get("split_kind")
    made = made if isinstance(made, str) and made not in ("", "loaded") else ""
    note = _name_id_note(m, "--split group --group-regex", " in a new run (this one keeps its split)")
    return PreparedData(m, report, dropped, "loaded", split_file, splits.leakage(m), not_read,
                        unmatched, added, made, note)


@dataclass
class Datasets:
    """The ``tf.data`` pipelines of one split manifest (see :func:`build_datasets`).

    Attributes:
        train: shuffled, augmented batches of ``(images, labels[, sample_weights])``.
        val: batches of ``(images, labels)`` in manifest order (None without a ``val`` split).
        test: batches of ``(images, labels)`` in manifest order (None without a ``test`` split).
        image_size: ``(height, width)``.
        batch_size: the (global) batch size.
        class_weight: the ``class_weight`` setting used (``balanced``, ``none`` or a file).
        class_weights: per-class weight of the training samples (None when ``none``).
    """

    train: Any
    val: Any
    test: Any
    image_size: tuple[int, int]
    batch_size: int
    class_weight: str = "none"
    class_weights: dict[str, float] | None = None


def class_weight_setting(value: str | os.PathLike | dict | None) -> str | dict | None:
    """What ``--class-weight balanced|none|FILE.json`` means for ``make_dataset(sample_weights=)``.

    Args:
        value: ``"balanced"``, ``"none"``/None, a dict ``{class: weight}``, or a JSON file path.

    Returns:
        ``"balanced"``, None, the dict, or the path as a string.

    Raises:
        ValueError: a path that does not exist.

    Example:
        >>> class_weight_setting("none") is None, class_weight_setting("balanced")
        (True, 'balanced')
    """
    if value is None or isinstance(value, dict):
        return value
    text = os.fspath(value)
    if text.lower() in ("none", "off", ""):
        return None
    if text.lower() == "balanced":
        return "balanced"
    if not Path(text).expanduser().is_file():
        raise ValueError(
            f"class weights {text!r}: give 'balanced', 'none' or an existing JSON file "
            '{"class name": weight, ...}'
        )
    return str(Path(text).expanduser())


def _cache_for(cache: str | bool | os.PathLike | None, split_name: str) -> bool | str:
    from keras_species.data.pipeline import normalize_cache

    cache = normalize_cache(cache)
    if isinstance(cache, bool):
        return cache
    Path(cache).mkdir(parents=True, exist_ok=True)
    return str(Path(cache) / split_name)


def build_datasets(
    manifest: Manifest,
    image_size: int | Sequence[int],
    batch_size: int = 32,
    *,
    augment: str | Any = "none",
    batch_augment: str | None = None,
    class_weight: str | os.PathLike | dict | None = "none",
    label_smoothing: float = 0.0,
    cache: str | bool = "memory",
    seed: int | None = None,
    deterministic: bool = False,
    resize: str = "stretch",
) -> Datasets:
    """``tf.data`` pipelines of the ``train``, ``val`` and ``test`` splits of ``manifest``.

    Labels are integer indices (single-label; the training plan one-hot encodes them and applies
    label smoothing in the loss) or multi-hot. Class weights are per-sample weights yielded by
    the training dataset (``pipeline.class_balance_weights``), correct for one-hot, multi-hot
    and MixUp labels where Keras' ``class_weight`` is not. Validation and test data are neither
    shuffled, augmented nor weighted.

    Args:
        manifest: a manifest with ``splits`` (at least ``train``).
        image_size: side or ``(height, width)``.
        batch_size: global batch size (``distribute.scale_batch`` for several replicas).
        augment: preset name of ``augment.augmentation`` (``r1``, ``r3``...) or a Keras layer.
        batch_augment: ``"mixup"``/``"cutmix"`` or None.
        class_weight: ``"balanced"``, ``"none"``, a dict or a JSON file of ``{class: weight}``
            (R3 set its rare classes' weights by hand), which replaces the balanced weights
            (classes not listed weigh 1) rather than multiplying them.
        label_smoothing: label smoothing *in the pipeline* (one-hot float labels). Recipes
            leave this at 0 and smooth in the loss (``Phase.label_smoothing``); use only one.
        cache: ``"memory"``, ``"none"``, or a folder for ``tf.data`` file caches (of train and
            val; the test split, read once, is not file-cached).
        seed: seeds the shuffle and the augmentation.
        deterministic: the same order and augmentation on every run with the same seed.
        resize: ``"stretch"``, ``"pad"`` or ``"crop"``.

    Returns:
        A :class:`Datasets`.

    Example:
        >>> from keras_species.data import sources, splits
        >>> m = splits.stratified_split(sources.load("demo"), seed=0)
        >>> ds = build_datasets(m, 64, 16, class_weight="balanced")  # doctest: +SKIP
        >>> ds.train.element_spec[0].shape                          # doctest: +SKIP
        TensorShape([None, 64, 64, 3])
    """
    from keras_species.data.pipeline import check_resize, class_balance_weights, make_dataset

    if manifest.splits is None:
        raise ManifestError("build_datasets needs a split manifest: run prepare_data first")
    size = check_resize(image_size, "stretch")  # "224" read as 2x2 before stop 29
    present = set(manifest.splits)
    if "train" not in present:
        raise ManifestError(f"the manifest has no 'train' split (it has {sorted(present)})")
    weights_mode = class_weight_setting(class_weight)
    train_m = manifest.split("train")
    label_mode = "auto"
    det = True if deterministic else None
    train = make_dataset(
        train_m, size, batch_size, training=True, label_mode=label_mode,
        label_smoothing=label_smoothing, resize=resize, augment=None if augment == "none" else augment,
        batch_augment=batch_augment, cache=_cache_for(cache, "train"), sample_weights=weights_mode,
        seed=seed, deterministic=det,
    )

    def plain(name: str):
        if name not in present:
            return None
        # the test split is read once (the recipes' evaluation reads its images itself): a file
        # cache of it only took disk, and on a read-only folder of caches it was warned about
        # though never read
        from keras_species.data.pipeline import is_file_cache

        once = name == "test" and is_file_cache(cache)
        return make_dataset(
            manifest.split(name), size, batch_size, training=False, label_mode=label_mode,
            resize=resize, cache=False if once else _cache_for(cache, name), seed=seed,
        )

    per_class = None
    if weights_mode is not None:
        # over the images the training set reads, as make_dataset weighs them: with --no-audit
        # its file check may leave some out, and the report gave the weights of every row
        from keras_species.data.pipeline import lost_image_count

        counter = lost_image_count(train)
        if counter is not None and counter.expected < len(train_m):
            read = set(counter.paths)
            train_m = train_m.subset(np.array([p in read for p in train_m.paths], bool))
        w = class_balance_weights(train_m, weights_mode)
        per_class = {}
        for j, name in enumerate(train_m.class_names):
            rows = (train_m.labels[:, j] > 0) if train_m.multilabel else (train_m.labels == j)
            if rows.any():
                per_class[name] = round(float(np.mean(w[rows])), 4)
    label = "none" if weights_mode is None else (
        weights_mode if isinstance(weights_mode, str) else "custom")
    return Datasets(train, plain("val"), plain("test"), size, int(batch_size), label, per_class)


__all__ = [
    "SPLIT_KINDS",
    "TASKS",
    "PreparedData",
    "prepare_data",
    "read_ahead",
    "forget_read_ahead",
    "check_task",
    "check_splits",
    "label_file_hint",
    "Datasets",
    "build_datasets",
    "class_weight_setting",
]
