"""The Manifest: the one description of an image collection that every later stage reads.

A Manifest holds file paths, labels (int class indices for single-label data, a multi-hot
matrix for multi-label data), class names with stable indices, and optional group ids and split
names. Readers for folders, CSVs and iNat/COCO JSON live in :mod:`keras_species.data.sources`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from keras_species import csvfile
from keras_species.atomic import atomic_path, check_output_file
from keras_species.jsonfile import json_type, kind_problem, parse_json

UNLABELLED = -1
"""Label value of an image without a label (single-label manifests, e.g. R1's unlabelled set)."""

SPLIT_NAMES = ("train", "val", "test")


class ManifestError(ValueError):
    """Raised when a manifest or its source is inconsistent; the message says what to fix."""


_CSV_FIX = ("restore the file, or write it again (keras-species split; a recipe's split.csv: start "
            "the run over with --overwrite)")
"""How to mend a damaged manifest CSV (see :meth:`Manifest.from_csv`)."""


MANIFEST_CSV_MARK = "# classes: "
"""How the first line of a manifest CSV starts (:meth:`Manifest.to_csv`)."""


def manifest_csv_header(line: str) -> str | None:
    """The ``# classes: [...] multilabel: ...`` line of a manifest CSV, as :meth:`Manifest.to_csv`
    wrote it, from the file's first line: also after a spreadsheet saved the file again, which
    reads the line's commas as cell breaks, writes each cell that holds a quote in quotes with
    its quotes doubled, joins the cells with its own delimiter (``,``, ``;`` or tab) and may add
    empty cells.

    Args:
        line: the file's first line.

    Returns:
        The line as written, or None when it is not a manifest CSV's first line.

    Example:
        >>> manifest_csv_header('"# classes: [""cod""\"," ""eel""] multilabel: false"')
        '# classes: ["cod", "eel"] multilabel: false'
    """
    from keras_species.data.text import count_outside_quotes  # lazy: text imports this module

    line = line.rstrip("\r\n")
    if line.startswith(MANIFEST_CSV_MARK):
        return line
    delimiter = max((",", ";", "\t"), key=lambda d: count_outside_quotes(line, d))  # "," on a tie
    cells = next(csv.reader([line], delimiter=delimiter), [])
    while cells and not cells[-1].strip():  # a spreadsheet's empty cells after the line's own
        cells.pop()
    joined = ",".join(cells)
    return joined if joined.startswith(MANIFEST_CSV_MARK) else None


def joined_path(base: str | os.PathLike, path: str) -> str:
    """``path`` from the folder ``base`` (kept when absolute), normalised by text only where that
    cannot change the file: ``a/./b`` and ``a//b`` folded, but a ``..`` kept, since after a folder
    link ``link/../x.png`` is the link target's sibling, not ``x.png`` beside the link (folded, it
    named a file that does not exist).

    Args:
        base: the folder a relative path starts from.
        path: the path.

    Returns:
        The absolute path.

    Example:
        >>> joined_path("/data", "cod/./1.png"), joined_path("/data", "link/../1.png")
        ('/data/cod/1.png', '/data/link/../1.png')
    """
    full = os.path.join(os.fspath(base), path)
    if ".." not in full.split(os.sep):
        return os.path.normpath(full)
    parts = [part for part in full.split(os.sep) if part not in ("", ".")]
    return os.sep + os.sep.join(parts) if os.path.isabs(full) else os.sep.join(parts)


def label_set_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One code a distinct row of a multi-hot matrix, numbered in the order first seen, and the
    row where each code is first seen. Rows are packed to bytes and looked up in a dict: a
    row-wise ``np.unique(axis=0)`` sorted 10,000-wide rows, 8 s for 20,000 images of 10,000 tags.

    Args:
        labels: ``(N, C)`` multi-hot labels.

    Returns:
        ``(codes (N,), first (number of codes,))``.

    Example:
        >>> label_set_codes(np.array([[0, 1], [1, 0], [0, 1]]))[0].tolist()
        [0, 1, 0]
    """
    packed = np.packbits(np.asarray(labels).astype(bool), axis=1)
    index: dict[bytes, int] = {}
    codes = np.fromiter((index.setdefault(row.tobytes(), len(index)) for row in packed), np.int64, len(packed))
    first = np.full(len(index), -1, np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write of each code: its first row
    return codes, first


def same_file_key(path: str, folders: dict[str, str] | None = None) -> str:
    """A key under which two spellings of one file's path meet: its folder resolved on disk
    (links followed, ``..`` after a link as the disk reads it; once a folder, so 100,000 rows of a
    few folders cost a few ``realpath`` calls) joined with its name. ``../images/0.png`` and the
    same file's absolute path, or a path through a folder link, were two files, listed twice with
    two labels unnoticed.

    Args:
        path: an absolute path.
        folders: the resolved folders of one pass (a dict the caller keeps for it: folder links
            may change between passes, so no cache outlives one).

    Returns:
        The key.

    Example:
        >>> same_file_key("/no/such/./cod/1.png")
        '/no/such/cod/1.png'
    """
    folder, name = os.path.split(path)
    if folders is None:
        return os.path.join(os.path.realpath(folder), name)
    if folder not in folders:
        folders[folder] = os.path.realpath(folder)
    return os.path.join(folders[folder], name)


def _paths_beside(paths: list, manifest_path: str) -> list:
    """A saved manifest's paths, each relative one (a file written or edited by hand) read from
    the manifest's folder, as the readers read a CSV's, and ``~/...`` in the user's home folder;
    absolute paths (what :meth:`Manifest.to_csv` and :meth:`Manifest.to_json` write) as they are."""
    folder = os.path.dirname(os.path.abspath(manifest_path))
    resolved = []
    for p in paths:
        if isinstance(p, str) and p and not os.path.isabs(p) and not URL_START.match(p):
            p = os.path.expanduser(p)
            p = p if os.path.isabs(p) else joined_path(folder, p)
        resolved.append(p)
    return resolved


URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
"""The start of a URL (``https://``, ``s3://``, ``gs://``...): such a path is kept as written when
a manifest is saved and read back, and the readers name it as a URL."""


def _paths_to_save(paths: Sequence[str]) -> list[str]:
    """The paths a manifest file holds: absolute, so that the readers, which read a relative
    path from the file's own folder (:func:`_paths_beside`), find what a relative path in memory
    (from the working folder) meant. A manifest saved elsewhere than the working folder lost its
    files on reloading before (stop 30)."""
    out = []
    for p in paths:
        if p and not URL_START.match(p):  # a URL is kept as written, "~/x" in the home folder
            p = os.path.expanduser(p)
            p = joined_path("/", p) if os.path.isabs(p) else joined_path(os.getcwd(), p)
        out.append(p)
    return out


def _columns_delimiter(line: str) -> str:
    """The delimiter of a manifest CSV's column line: ``,`` as written, or the ``;`` or tab a
    spreadsheet saved it with (``path;label;split``)."""
    for delimiter in (",", ";", "\t"):
        cells = {cell.strip() for cell in line.rstrip("\r\n").split(delimiter)}
        if "path" in cells and cells & {"label", "labels"}:
            return delimiter
    return ","


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless ``count`` is one: for messages and
    reports (``"1 class"``, ``"3 classes"``, ``"1 epoch"``, ``"0 images"``).

    Args:
        count: how many.
        noun: the singular noun.
        plural: its plural, when not ``noun`` + ``s`` (``es`` after s, x, ch, sh).

    Returns:
        The phrase.

    Example:
        >>> counted(1, "class"), counted(3, "class"), counted(1, "epoch"), counted(0, "image")
        ('1 class', '3 classes', '1 epoch', '0 images')
        >>> counted(2, "head epoch"), counted(2, "batch")
        ('2 head epochs', '2 batches')
    """
    if count == 1:
        return f"{count} {noun}"
    if plural is None:
        # "-ch" is "-ches" (a batch) but not "epoch" ("3 epoches"), nor "head epoch"
        plural = noun + ("es" if noun.endswith(("s", "x", "sh")) or (noun.endswith("ch") and not noun.endswith("epoch"))
                         else "s")
    return f"{count} {plural}"


def classes_phrase(num_classes: int, multilabel: bool) -> str:
    """How summaries name the classes: ``"6 classes (single-label)"``, or ``"no labels"`` for
    data without classes (a list of image paths).

    Args:
        num_classes: how many classes.
        multilabel: whether the labels are multi-hot.

    Returns:
        The phrase.

    Example:
        >>> classes_phrase(6, False), classes_phrase(0, False)
        ('6 classes (single-label)', 'no labels')
    """
    if not num_classes:
        return "no labels"
    return f"{counted(num_classes, 'class')} ({'multi-label' if multilabel else 'single-label'})"


def _no_id(group) -> bool:
    """A missing group id: ``None``, a float NaN (an empty cell as pandas reads it; NumPy's
    ``float32`` NaN too, which became one group ``'nan'`` before stop 29) or a blank string (an
    empty cell of a saved manifest's ``group`` column: the blank rows became one group ``''``)."""
    if isinstance(group, str):
        return not group.strip()
    return group is None or (isinstance(group, float | np.floating) and group != group)


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogate of a name decoded with
    ``surrogateescape``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: object) -> str:
    """A class name, split name or group id as text: bytes decoded (``str(b"cod")`` is
    ``"b'cod'"``)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def _group_text(group) -> str:
    """A group id as text: a whole float as the integer it is (pandas reads an id column with a
    gap as floats, so ``12.0`` and ``12`` were two groups before stop 29)."""
    if isinstance(group, float | np.floating) and float(group).is_integer():
        return str(int(group))
    return _text(group)


REPR_CLASSES = 8
"""Class names a Manifest's repr shows (then ``... N more``)."""
REPR_PATHS = 3
"""Paths a Manifest's repr shows (then ``... N more``)."""


def _shortened(items: Sequence[str], shown: int) -> str:
    """``items`` as a list's repr, cut after ``shown`` with how many more there are."""
    head = ", ".join(repr(str(x)) for x in items[:shown])
    more = len(items) - shown
    return f"[{head}{', ' if head else ''}... {more} more]" if more > 0 else f"[{head}]"


def _split_counts(splits: Sequence[str]) -> list[tuple[str, int]]:
    """Images per split name, fold2 before fold10 (numbers in a name compare as numbers)."""
    names, counts = np.unique(np.asarray(splits, dtype=str), return_counts=True)
    order = sorted(range(len(names)), key=lambda i: [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", str(names[i])) if part])
    return [(str(names[i]), int(counts[i])) for i in order]


def _multi_hot(rows: list, num_classes: int, indices: bool, path: str, fix: str) -> np.ndarray:
    """A JSON manifest's multi-label labels as a 0/1 matrix: rows of tag indices (``indices``,
    written since stop 28) or rows of 0/1 (the dense form written before)."""
    out = np.zeros((len(rows), num_classes), np.uint8)
    for i, row in enumerate(rows):
        ok = isinstance(row, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in row)
        if ok and indices:
            ok = all(0 <= t < num_classes for t in row)
        elif ok:
            ok = len(row) == num_classes and set(row) <= {0, 1}
        if not ok:
            what = f"a list of tag indices 0..{num_classes - 1}" if indices else f"{num_classes} values 0 or 1"
            raise ManifestError(f"{path}: labels[{i}] is {row!r}, not {what}: {fix}")
        if indices:
            out[i, row] = 1
        else:
            out[i] = row
    return out


def require_manifest(value: object, where: str) -> Manifest:
    """``value`` when it is a :class:`Manifest`, else a ``TypeError`` naming ``where`` and how to
    get one (a folder's path given where a Manifest goes failed with an ``AttributeError``).

    Args:
        value: what was given.
        where: the function, for the message.

    Returns:
        ``value``.

    Example:
        >>> require_manifest("demo", "audit")
        Traceback (most recent call last):
        ...
        TypeError: audit takes a Manifest (keras_species.data.sources.load(...)), got a str
    """
    if not isinstance(value, Manifest):
        raise TypeError(f"{where} takes a Manifest (keras_species.data.sources.load(...)), got a "
                        f"{type(value).__name__}")
    return value


PER_IMAGE_EXTRA = frozenset({"confidence"})
"""Keys of ``Manifest.extra`` that hold one value per image (a pseudo-label's confidence): a
subset takes the values of its rows. Before stop 29 a subset kept the whole list, so
``write_pseudo_labels`` wrote another image's confidence."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _row_path(paths: Sequence[str], row: int) -> str:
    return repr(paths[row]) if row < len(paths) else "?"


def _checked_labels(labels: object, paths: Sequence[str]) -> np.ndarray:
    """``labels`` as an array of whole numbers, refusing what a cast would silently change: a
    float that is not whole (``0.9`` became class 0), NaN, text, and multi-hot values other than
    0 and 1 (``-1`` became 255 in ``uint8``, and the target of training)."""
    array = np.asarray(labels)
    if array.size and array.dtype.kind == "O":  # Python ints in an object array (pandas' Int64)
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if array.size and array.dtype.kind not in "iubf":
        first = array.flat[0]
        raise ManifestError(f"labels must be whole numbers (class indices, or 0/1 columns for "
                            f"multi-label), got {array.dtype} values such as "
                            f"{_shown(first.item() if hasattr(first, 'item') else first)}")
    if array.size and array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            bad = tuple(np.argwhere(~whole)[0])
            raise ManifestError(f"label {array[bad].item()!r} of row {bad[0]} ({_row_path(paths, int(bad[0]))}) "
                                "is not a whole number: give class indices (or 0/1 for multi-label)")
    if array.ndim == 2 and array.size and (array.min() < 0 or array.max() > 1):
        row, col = (int(i) for i in np.argwhere((array < 0) | (array > 1))[0])
        raise ManifestError(f"multi-hot label {array[row, col].item()} in row {row} ({_row_path(paths, row)}), "
                            f"column {col}: a multi-label row holds 1 for each tag the image carries "
                            "and 0 elsewhere")
    return array


@dataclass(repr=False)
class Manifest:
    """Image paths with their labels, classes, groups and splits.

    Args:
        paths: image file paths (absolute after loading through a reader).
        labels: ``(N,)`` int class indices (``-1`` = unlabelled) for single-label data, or an
            ``(N, C)`` 0/1 matrix for multi-label data. An array already ``int64`` (``uint8``
            for multi-label) is kept, not copied: change it and the manifest changes (pass
            ``labels.copy()`` to keep them apart).
        class_names: class names; index ``i`` of a label means ``class_names[i]``.
        groups: optional group id per image (e.g. the fish tracking id); a group never sits on
            two sides of a group-aware split. An image without an id (``None``, or NaN as
            pandas gives it) is a group of its own: its id is its path, as the readers give a
            file whose name the group regex does not match.
        splits: optional split name per image (``train``/``val``/``test`` or a fold name).
        source: where the manifest came from (for reports).

    Example:
        >>> m = Manifest(["a.png", "b.png"], np.array([0, 1]), ["cod", "eel"])
        >>> m.num_classes, m.multilabel, m.class_counts().tolist()
        (2, False, [1, 1])
    """

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    groups: list[str] | None = None
    splits: list[str] | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("paths", "class_names", "groups", "splits"):
            value = getattr(self, name)
            if isinstance(value, str | bytes | dict | os.PathLike):  # str(...) of each would split it
                raise ManifestError(
                    f"{name} must be a list with one entry per {'class' if name == 'class_names' else 'image'}, "
                    f"got a {type(value).__name__} ({_shown(value)})")
        self.paths = [p if type(p) is str else os.fsdecode(bytes(p)) if isinstance(p, bytes | bytearray)
                      else os.fspath(p) if isinstance(p, os.PathLike) else str(p) for p in self.paths]
        self.class_names = [_text(c) for c in self.class_names]
        labels = _checked_labels(self.labels, self.paths)
        if labels.ndim == 1:  # no copy when the dtype is right (a 100k × 10k matrix was copied
            labels = labels.astype(np.int64, copy=False)  # by every Manifest and subset: 2 GB more)
        elif labels.ndim == 2:
            labels = labels.astype(np.uint8, copy=False)
        else:
            raise ManifestError(f"labels must be 1-D (class index) or 2-D (multi-hot), got shape {labels.shape}")
        self.labels = labels
        n = len(self.paths)
        if len(labels) != n:
            raise ManifestError(f"{n} paths but {len(labels)} labels")
        if any(not c.strip() for c in self.class_names):
            raise ManifestError(
                f"class {self.class_names.index(next(c for c in self.class_names if not c.strip()))} "
                "has an empty name: give every class a name (an empty label means 'no label' in "
                "CSV files, so the class could not be written and read back)")
        if len(set(self.class_names)) != len(self.class_names):
            dup = sorted({c for c in self.class_names if self.class_names.count(c) > 1})
            raise ManifestError(f"duplicate class names {dup}: class names must be unique")
        if labels.ndim == 2 and labels.shape[1] != len(self.class_names):
            raise ManifestError(
                f"multi-hot labels have {labels.shape[1]} columns but there are "
                f"{len(self.class_names)} class names"
            )
        if labels.ndim == 1 and n and (labels.max() >= len(self.class_names) or labels.min() < UNLABELLED):
            row = int(np.flatnonzero((labels >= len(self.class_names)) | (labels < UNLABELLED))[0])
            raise ManifestError(
                f"label index {labels[row]} of row {row} ({self.paths[row]!r}) is outside "
                f"0..{len(self.class_names) - 1}, the indices of the {len(self.class_names)} class "
                f"names {_shortened(self.class_names, 8)}: give each image the index of its class "
                f"in class_names, or {UNLABELLED} for an image without a label"
            )
        for name, column in (("groups", self.groups), ("splits", self.splits)):
            if column is not None:
                if len(column) != n:
                    raise ManifestError(f"{n} paths but {len(column)} {name}")
        if self.groups is not None:
            self.groups = [p if _no_id(g) else g if type(g) is str else _group_text(g)
                           for g, p in zip(self.groups, self.paths)]
        if self.splits is not None:
            self.splits = [_text(s) for s in self.splits]

    def __repr__(self) -> str:
        """A short summary, not every path: ``print(manifest)`` of a million images is one line.

        Returns:
            ``Manifest(images=..., classes=..., multilabel=..., groups=..., splits=...,
            source=..., paths=[...])`` with at most :data:`REPR_CLASSES` class names and
            :data:`REPR_PATHS` paths, each list closed by how many more it holds.

        Example:
            >>> Manifest(["a.png", "b.png", "c.png", "d.png"], np.array([0, 1, 1, -1]), ["cod", "eel"])
            Manifest(images=4, classes=['cod', 'eel'], multilabel=False, unlabelled=1, paths=['a.png', 'b.png', 'c.png', ... 1 more])
        """
        fields = [f"images={len(self)}", f"classes={_shortened(self.class_names, REPR_CLASSES)}",
                  f"multilabel={self.multilabel}"]
        if not self.multilabel and (self.labels == UNLABELLED).any():
            fields.append(f"unlabelled={int((self.labels == UNLABELLED).sum())}")
        if self.groups is not None:
            fields.append(f"groups={len(set(self.groups))}")
        if self.splits is not None:
            fields.append(f"splits={dict(_split_counts(self.splits))}")
        if self.source:
            fields.append(f"source={self.source!r}")
        if self.extra:
            fields.append(f"extra={_shortened(sorted(self.extra), REPR_CLASSES)}")
        fields.append(f"paths={_shortened(self.paths, REPR_PATHS)}")
        return f"{type(self).__name__}({', '.join(fields)})"

    # ------------------------------------------------------------------ basic views
    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multilabel(self) -> bool:
        """True when labels are a multi-hot matrix."""
        return self.labels.ndim == 2

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labelled_mask(self) -> np.ndarray:
        """Boolean mask of images that carry a label (always all True for multi-label)."""
        if self.multilabel:
            return np.ones(len(self), dtype=bool)
        return self.labels != UNLABELLED

    def class_counts(self) -> np.ndarray:
        """Images per class (multi-label: images carrying each tag)."""
        if self.multilabel:
            return self.labels.sum(axis=0).astype(np.int64)
        labelled = self.labels[self.labels != UNLABELLED]
        return np.bincount(labelled, minlength=self.num_classes).astype(np.int64)

    def label_matrix(self) -> np.ndarray:
        """Labels as an ``(N, C)`` 0/1 matrix (one-hot for single-label; unlabelled rows are 0)."""
        if self.multilabel:
            return self.labels.copy()
        out = np.zeros((len(self), self.num_classes), dtype=np.uint8)
        rows = np.flatnonzero(self.labels != UNLABELLED)
        out[rows, self.labels[rows]] = 1
        return out

    def label_names(self, i: int) -> list[str]:
        """Class names of image ``i`` (empty list when unlabelled or tag-free)."""
        if self.multilabel:
            return [self.class_names[j] for j in np.flatnonzero(self.labels[i])]
        k = int(self.labels[i])
        return [] if k == UNLABELLED else [self.class_names[k]]

    def stratify_key(self) -> np.ndarray:
        """One label per image for stratification: the class index, or the label-set string."""
        if self.multilabel:
            return np.array(["".join(map(str, row)) for row in self.labels])
        return self.labels

    # ------------------------------------------------------------------ selection
    def subset(self, index: Sequence[int] | np.ndarray) -> Manifest:
        """A new manifest with the rows ``index`` (int indices or a boolean mask); classes kept."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ManifestError(f"a boolean mask of {idx.size} values for {counted(len(self), 'image')}: "
                                    "give one value per image")
            idx = np.flatnonzero(idx)
        elif idx.size and idx.dtype.kind not in "iu":
            raise ManifestError(f"row indices must be whole numbers (or a boolean mask), got {idx.dtype}")
        idx = idx.astype(np.int64)
        pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
        # per-image entries of extra follow the rows; the others are copied, not shared
        extra = {k: pick(v) if k in PER_IMAGE_EXTRA and hasattr(v, "__len__") and len(v) == len(self)
                 else copy.copy(v)
                 for k, v in self.extra.items()}
        return Manifest(
            paths=[self.paths[i] for i in idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            groups=pick(self.groups),
            splits=pick(self.splits),
            source=self.source,
            extra=extra,
        )

    def split(self, name: str) -> Manifest:
        """Rows whose split is ``name`` (e.g. ``"train"``)."""
        if self.splits is None:
            raise ManifestError("this manifest has no split: run keras_species.data.splits first")
        mask = np.array([s == name for s in self.splits], dtype=bool)
        return self.subset(mask)

    def with_splits(self, splits: Sequence[str]) -> Manifest:
        """A copy with the split column replaced."""
        m = self.subset(np.arange(len(self)))
        if len(splits) != len(self):
            raise ManifestError(f"{counted(len(self), 'image')} but {counted(len(splits), 'split name')}")
        m.splits = [str(s) for s in splits]
        return m

    def select_classes(self, keep: Sequence[str]) -> Manifest:
        """Keep only images of the classes ``keep`` and re-index them in that order.

        Single-label: images of other classes are dropped. Multi-label: other columns are dropped,
        images keep their remaining tags (possibly none).
        """
        if isinstance(keep, str):
            raise ManifestError(f"keep={keep!r}: give a list of class names")
        missing = [c for c in keep if c not in self.class_names]
        if missing:
            raise ManifestError(f"classes {missing} are not in this manifest ({self.class_names})")
        twice = sorted({c for c in keep if list(keep).count(c) > 1})
        if twice:
            raise ManifestError(f"classes {twice} are listed more than once in keep: name each once")
        old = [self.class_names.index(c) for c in keep]
        if self.multilabel:
            m = self.subset(np.arange(len(self)))
            m.labels = self.labels[:, old]
            m.class_names = list(keep)
            return m
        remap = np.full(self.num_classes + 1, UNLABELLED, dtype=np.int64)
        for new_i, old_i in enumerate(old):
            remap[old_i] = new_i
        mask = np.isin(self.labels, old)
        m = self.subset(mask)
        m.labels = remap[m.labels]
        m.class_names = list(keep)
        return m

    def merge(self, other: Manifest) -> Manifest:
        """Concatenate two manifests of the same label type, uniting their class lists.

        Classes of ``self`` keep their indices; new classes of ``other`` are appended (R2's
        "add a 10th class from another source"). When only one side has group ids, each image of
        the other is a group of its own (its path), not one group of all of them.
        """
        if self.multilabel != other.multilabel:
            raise ManifestError("cannot merge a single-label and a multi-label manifest")
        names = list(self.class_names) + [c for c in other.class_names if c not in self.class_names]
        index = {c: i for i, c in enumerate(names)}
        if self.multilabel:
            a = np.zeros((len(self), len(names)), np.uint8)
            a[:, : self.num_classes] = self.labels
            b = np.zeros((len(other), len(names)), np.uint8)
            for j, c in enumerate(other.class_names):
                b[:, index[c]] = other.labels[:, j]
            labels = np.concatenate([a, b])
        else:
            remap = np.array([index[c] for c in other.class_names] + [UNLABELLED], dtype=np.int64)
            labels = np.concatenate([self.labels, remap[other.labels]])
        both = lambda x, y, n1, n2: (  # noqa: E731
            None if x is None and y is None else (x or [""] * n1) + (y or [""] * n2)
        )
        return Manifest(
            paths=self.paths + other.paths,
            labels=labels,
            class_names=names,
            groups=None if self.groups is None and other.groups is None else
            (self.groups or list(self.paths)) + (other.groups or list(other.paths)),
            splits=both(self.splits, other.splits, len(self), len(other)),
            source=f"{self.source}+{other.source}",
        )

    # ------------------------------------------------------------------ persistence
    def to_csv(self, path: str | os.PathLike) -> str:
        """Write ``path,label[,group][,split]`` rows (multi-label: ``path,labels,...``, the tags
        ``;``-separated names).

        The file reloads with :meth:`Manifest.from_csv` and keeps class order in a header comment.
        The label column's name says the task too, so that a copy without that comment line (a
        spreadsheet's, pandas' ``comment="#"``) still reads as the task it is: a single-label
        file's ``labels`` column read as multi-label before stop 30.
        """
        path = os.fspath(check_output_file(path))
        if self.multilabel:
            joined = [c for c in self.class_names if ";" in c]
            if joined:
                raise ManifestError(
                    f"class name {joined[0]!r} holds ';', which separates the tags of a multi-label "
                    "manifest CSV: rename it where it comes from (a CSV's 0/1 tag column header, an "
                    "iNat/COCO category's 'name': a tag name cannot hold ';'), or, in Python, save "
                    "the manifest with to_json"
                )
        for what, values in (("class name", self.class_names), ("path", self.paths),
                             ("group id", self.groups or ()), ("split", self.splits or ())):
            odd = next((v for v in values if not _utf8(v)), None)
            if odd is not None:  # a raw UnicodeEncodeError before
                raise ManifestError(
                    f"{what} {odd!r} is not UTF-8 text (bytes of another encoding, such as Latin-1): "
                    "a manifest CSV is UTF-8; rename it in UTF-8 where it comes from, or, in Python, "
                    "save the manifest with to_json")
        cols = ["path", "labels" if self.multilabel else "label"]
        if self.groups is not None:
            cols.append("group")
        if self.splits is not None:
            cols.append("split")
        # written beside and moved over: a killed run leaves the old file or the new, never half
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write("# classes: " + json.dumps(self.class_names) + f" multilabel: {json.dumps(self.multilabel)}\n")
            w = csvfile.writer(f)
            w.writerow(cols)
            for i, p in enumerate(_paths_to_save(self.paths)):
                row = [p, ";".join(self.label_names(i))]
                if self.groups is not None:
                    row.append(self.groups[i])
                if self.splits is not None:
                    row.append(self.splits[i])
                w.writerow(row)
        return path

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> Manifest:
        """Read a file written by :meth:`to_csv` (for arbitrary CSVs use ``sources.from_csv``).

        A file that a spreadsheet saved again reads too (its first line quoted, ``;``-separated
        columns: :func:`manifest_csv_header`). Relative paths (a file written or edited by hand)
        start at the file's folder; absolute ones are kept.
        """
        from keras_species.data.text import read_text

        path = os.fspath(path)
        f = io.StringIO(read_text(path), newline="")
        first = f.readline()
        header = manifest_csv_header(first)
        if header is None:
            raise ManifestError(
                f"{path} is not a keras-species manifest CSV (no '# classes:' header); "
                "read it with keras_species.data.sources.from_csv instead"
            )
        head = header[len(MANIFEST_CSV_MARK):]
        names_json, _, flag = head.rpartition(" multilabel: ")
        class_names, bad_names = parse_json(names_json)
        multilabel, bad_flag = parse_json(flag)
        if bad_names or bad_flag or not (isinstance(class_names, list) and isinstance(multilabel, bool)):
            raise ManifestError(
                f"{path}: its first line {first.strip()!r} must read '# classes: [\"a\", ...] "
                "multilabel: false' as keras-species wrote it; restore it"
            )
        start = f.tell()
        delimiter = _columns_delimiter(f.readline())
        f.seek(start)
        reader = csv.DictReader(f, delimiter=delimiter)
        fields = reader.fieldnames or []
        # single-label files name the column "label" since stop 30 ("labels" before)
        column = "label" if not multilabel and "label" in fields and "labels" not in fields else "labels"
        missing = [c for c in ("path", column) if c not in fields]
        if missing:
            raise ManifestError(
                f"{path}: its second line must name the columns path,{column}[,group][,split] as "
                f"keras-species wrote them, but {' and '.join(map(repr, missing))} "
                f"{'is' if len(missing) == 1 else 'are'} missing "
                f"({f'found {reader.fieldnames}' if reader.fieldnames else 'the line is missing'}); "
                f"{_CSV_FIX}"
            )
        rows = list(reader)
        for r, row in enumerate(rows):
            # DictReader keys extra fields under None (empty ones: a spreadsheet's padding) and
            # fills missing ones with None
            extra = [v for v in row.pop(None, []) if v.strip()]
            filled = [v for v in row.values() if v is not None]
            if extra or len(filled) < len(row):
                where = "the file is cut short there" if r == len(rows) - 1 else "the row is damaged"
                raise ManifestError(
                    f"{path}, row {r + 3}: {len(filled) + len(extra)} field(s) where the header "
                    f"has {len(row)} ({','.join(reader.fieldnames)}); {where}: {_CSV_FIX}"
                )
        index = {c: i for i, c in enumerate(class_names)}

        def label_index(r: int, name: str) -> int:
            if name not in index:
                raise ManifestError(
                    f"{path}, row {r + 3}: label {name!r} is not one of the classes in its first "
                    f"line ({', '.join(map(repr, class_names))}); correct the label or add the class"
                )
            return index[name]

        if multilabel:
            labels = np.zeros((len(rows), len(class_names)), np.uint8)
            for r, row in enumerate(rows):
                for name in filter(None, row[column].split(";")):
                    labels[r, label_index(r, name)] = 1
        else:
            labels = np.array([label_index(r, row[column]) if row[column] else UNLABELLED
                               for r, row in enumerate(rows)], np.int64)
        return cls(
            paths=_paths_beside([row["path"] for row in rows], path),
            labels=labels,
            class_names=class_names,
            # by the header, not the first row: an empty manifest kept its columns in JSON only
            groups=[row["group"] for row in rows] if "group" in (reader.fieldnames or ()) else None,
            splits=[row["split"] for row in rows] if "split" in (reader.fieldnames or ()) else None,
            source=path,
        )

    def to_json(self, path: str | os.PathLike) -> str:
        """Write the manifest as one JSON document (reload with :meth:`from_json`).

        Multi-label labels are written as each image's list of tag indices
        (``[[0, 3], [], ...]``), not as the dense 0/1 matrix: with 10,000 tags the matrix made a
        120 MB file of 4,000 images and took 8 s to write. :meth:`from_json` reads both forms.
        """
        path = os.fspath(check_output_file(path))
        if self.multilabel:
            rows, cols = np.nonzero(self.labels)
            cuts = np.searchsorted(rows, np.arange(1, len(self)))
            labels = [c.tolist() for c in np.split(cols, cuts)] if len(self) else []
        else:
            labels = self.labels.tolist()
        doc = {
            "format": "keras-species-manifest/1",
            "class_names": self.class_names,
            "multilabel": self.multilabel,
            "paths": _paths_to_save(self.paths),
            "labels": labels,
            "label_form": "tag_indices" if self.multilabel else "class_index",
            "groups": self.groups,
            "splits": self.splits,
            "source": self.source,
        }
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Manifest:
        """Read a file written by :meth:`to_json`.

        Relative paths (a file written or edited by hand) start at the file's folder; absolute
        ones are kept.

        Raises:
            ManifestError: the file is not UTF-8, is damaged (truncated, empty, not a JSON
                object) or lacks a field; the message names the file and why.
        """
        from keras_species.data.text import read_text

        path = os.fspath(path)
        fix = "restore it, or write it again with Manifest.to_json from the data's source"
        doc, reason = parse_json(read_text(path))
        reason = reason or kind_problem(doc, dict)
        if reason:
            raise ManifestError(f"{path} cannot be read as a manifest ({reason}): {fix}")
        if doc.get("format") != "keras-species-manifest/1":
            raise ManifestError(f"{path} is not a keras-species manifest JSON")
        for key in ("paths", "labels", "class_names"):
            if not isinstance(doc.get(key), list):
                found = "is missing" if key not in doc else f"holds a JSON {json_type(doc[key])}"
                raise ManifestError(f"{path}: {key!r} {found}, not a list: {fix}")
        multilabel = doc.get("multilabel", False)
        if not isinstance(multilabel, bool):  # "false" (a string) is true
            raise ManifestError(f"{path}: 'multilabel' holds {multilabel!r}: give true or false (JSON, "
                                f"no quotes): {fix}")
        for key in ("paths", "class_names", "groups", "splits"):  # null became the text 'None'
            column = doc.get(key) or []
            if key in ("paths", "class_names") and any(v is None for v in column):
                i = next(i for i, v in enumerate(column) if v is None)
                raise ManifestError(f"{path}: {key}[{i}] is null: give it a value: {fix}")
            if key == "splits" and any(v is None for v in column):
                i = next(i for i, v in enumerate(column) if v is None)
                raise ManifestError(f"{path}: splits[{i}] is null: give each image a split, or "
                                    f"\"\" for none: {fix}")
        if multilabel:
            labels = _multi_hot(doc["labels"], len(doc["class_names"]),
                                doc.get("label_form") == "tag_indices", path, fix)
        else:
            for i, v in enumerate(doc["labels"]):
                if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
                    hint = (" (a list: a multi-label manifest says \"multilabel\": true)"
                            if isinstance(v, list) else "")
                    raise ManifestError(f"{path}: labels[{i}] is {v!r}, not a class index{hint}: {fix}")
            labels = np.array(doc["labels"], dtype=np.int64)
        try:
            return cls(
                paths=_paths_beside(doc["paths"], path),
                labels=labels,
                class_names=doc["class_names"],
                groups=doc.get("groups"),
                splits=doc.get("splits"),
                source=doc.get("source", path),
            )
        except ManifestError as e:  # a hand edit: name the file (the row is in the message)
            raise ManifestError(f"{path}: {e}") from e

    def summary(self) -> str:
        """One line: images, classes, label type, splits.

        Returns:
            E.g. ``"300 images, 6 classes (single-label), splits test=45 train=210 val=45"``;
            a manifest without classes (a list of image paths) has ``"no labels"`` instead.

        Example:
            >>> Manifest(["a.png", "b.png"], np.array([-1, -1]), []).summary()
            '2 images, no labels'
        """
        text = f"{counted(len(self), 'image')}, {classes_phrase(self.num_classes, self.multilabel)}"
        if self.splits is not None:
            text += ", splits " + " ".join(f"{name}={n}" for name, n in _split_counts(self.splits))
        return text
