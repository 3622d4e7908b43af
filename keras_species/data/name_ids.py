"""Ids hidden in file names: a split that puts one id on two sides may leak.

Species collections often name files after what they come from: ``fish_<trackingid>_<frame>.png``
(frames of one fish in one video), ``<individual>_<n>.jpg``, ``<site>_<date>_<n>.jpg``. Images
that share such an id are near-duplicates, and a split made file by file puts many of them on
both sides, so validation and test scores come out higher than on new fish, plants or sites.
A group-aware split (``--group-regex``) keeps each id on one side, but only when the user knows
to ask for it. :func:`name_id_leak` looks for such an id in a split manifest that has no groups
and says, with a ``--group-regex`` that captures it, how many held-out images share theirs with
another side.

An id is a position in the file names' ``_``/``-``/``.``/space separated parts (the names of the
most common part count) that (a) several files share, at least :data:`MIN_SHARED` of the names,
(b) is not one value for all, nor the class over again (at least two ids a class on average),
and (c) whose files, wherever an id holds two or more, carry the same label in at least
:data:`MIN_PURITY` of those ids: frames of one track or photos of one individual do, frame
counters or camera names shared across species do not. Written here because neither
scikit-learn nor iterstrat infers groups: both take them as given.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keras_species.data.manifest import SPLIT_NAMES, Manifest, counted

MIN_SHARED = 0.10
"""Share of the names whose id at least one other name carries, for a position to count."""
MIN_PURITY = 0.90
"""Share of the ids held by two or more files whose files all carry one label."""
MIN_FILES = 20
"""Fewest file names of one pattern to look at: fewer say nothing either way."""
_SPLIT = re.compile(r"([_\-. ]+)")


@dataclass
class NameId:
    """An id found in the file names.

    Args:
        ids: one id per path (``None`` for names of another pattern).
        regex: a ``--group-regex`` whose first group captures it (``groups_from_regex`` was
            checked to give the same ids), or ``""`` when none could be written.
        pattern: the names' pattern with the id shown as ``<id>``, e.g. ``fish_<id>_<n>``.
        n_ids: distinct ids.
        shared_ids: ids that two or more files carry.
        shared_files: files whose id another file carries too.
    """

    ids: list[str | None]
    regex: str
    pattern: str
    n_ids: int
    shared_ids: int
    shared_files: int

    def to_dict(self) -> dict[str, str | int]:
        """The JSON-ready summary (no per-file ids): ``pattern``, ``regex``, the counts."""
        return {"pattern": self.pattern, "regex": self.regex, "n_ids": self.n_ids,
                "shared_ids": self.shared_ids, "shared_files": self.shared_files}


@dataclass
class NameIdLeak:
    """Held-out images that share their file name's id with an image on another side.

    Args:
        name_id: the id found (:class:`NameId`).
        leaked: per side other than ``train``, how many of its images share their id with a
            training image (for k folds: per fold, with an image of another fold).
        totals: per side, how many images it holds.
        example: one id found on two sides.
    """

    name_id: NameId
    leaked: dict[str, int]
    totals: dict[str, int]
    example: str
    ungrouped_of: int | None = None  # the manifest's size, when only files without a group id were checked

    @property
    def count(self) -> int:
        """Images, over every side counted, that share their id with another side."""
        return sum(self.leaked.values())

    def message(self, flags: str = "--group-regex", after: str = "") -> str:
        """What to tell the user: the count, why it matters, and the ``--group-regex`` to pass.

        Args:
            flags: what to pass, the regex following it (``"--split group --group-regex"`` where
                the split in force ignores groups).
            after: words after the regex (``" without --given"``).

        Returns:
            One paragraph, e.g. ``"537 of the 896 val and test images share the id in their
            file name (fish_<id>_<n>, e.g. '000005829592') with a training image. ..."``.
        """
        regex = self.name_id.regex
        fix = (f"pass {flags} '{regex}'{after} so that each id stays on one side" if regex else
               f"pass {flags} with a regex whose first group captures it{after}")
        return (f"{self.counts()}. Files that share such an id are often frames of one video or "
                "photos of one individual; if these are, the scores on them overstate how the "
                f"model does on new ones: {fix}")

    def counts(self) -> str:
        """The message's first sentence: how many held-out images share their id, and with what.

        Returns:
            e.g. ``"537 of the 896 val and test images share the id in their file name
            (fish_<id>_<n>, e.g. '000005829592') with a training image"``.
        """
        sides = [s for s in self.leaked if self.totals.get(s)]
        total = sum(self.totals[s] for s in sides)
        folds = "train" not in self.totals
        images = counted(total, "image") if folds else counted(total, " and ".join(sides) + " image")
        other = "an image of another fold" if folds else "a training image"
        among = ""
        if self.ungrouped_of is not None:
            n = sum(self.totals.values())
            among = f" among the {n} of {self.ungrouped_of} files given no group id (each its own group)"
        return (f"{self.count} of the {images}{among} share the id in their file name "
                f"({self.name_id.pattern}, e.g. {self.example!r}) with {other}")


def _parts(path: str) -> list[str]:
    name = path.replace("\\", "/").rpartition("/")[2] if "\\" in path else path.rpartition("/")[2]
    stem = name.rpartition(".")[0] or name
    return _SPLIT.split(stem)  # values at even places, separators at odd ones


def _label_codes(labels: np.ndarray) -> np.ndarray:
    """One int per distinct label (a multi-hot row becomes one code)."""
    if labels.ndim == 1:
        return labels.astype(np.int64)
    from keras_species.data.manifest import label_set_codes

    return label_set_codes(labels)[0]


def _purity(values: list[str], codes: np.ndarray) -> tuple[float, int]:
    """Of the values two or more files share: the share whose files carry one label, and how
    many files share a value. Vectorised: a Python loop over millions of names takes seconds."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int64, len(values))
    counts = np.bincount(inverse)
    shared = counts[inverse] > 1
    n_shared = int(shared.sum())
    if not n_shared:
        return 0.0, 0
    group, label = inverse[shared], codes[shared]
    order = np.lexsort((label, group))
    group, label = group[order], label[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lo, hi = np.minimum.reduceat(label, starts), np.maximum.reduceat(label, starts)
    return float(np.mean(lo == hi)), n_shared


def _literal(text: str) -> str:
    return re.escape(text).replace("\\-", "-").replace("\\ ", " ")  # both plain outside [...]


def _regex(parts: list[list[str]], place: int) -> str:
    """A regex searched in the file name (as ``groups_from_regex`` does) whose first group is
    the value at ``place``: constant parts before it written out, others as any run of
    non-separators."""
    out = ["^"]
    for j in range(0, place, 2):
        values = {p[j] for p in parts}
        seps = {p[j + 1] for p in parts}
        out.append(_literal(values.pop()) if len(values) == 1 else "[^_. -]+")
        out.append(_literal(seps.pop()) if len(seps) == 1 else "[_. -]+")
    out.append(r"(\d+)" if all(p[place].isdigit() for p in parts) else "([^_. -]+)")
    if place > 0 and not out[1].startswith("["):  # a literal start: 'fish_(\d+)' reads better
        out.pop(0)
    return "".join(out)


def _pattern(parts: list[list[str]], place: int) -> str:
    """The names' pattern: parts that never change as they are, the id as ``<id>``, other
    parts as ``<n>`` (digits) or ``<x>``."""
    shown = []
    for j, part in enumerate(parts[0]):
        values = {p[j] for p in parts}
        if j == place:
            shown.append("<id>")
        elif len(values) == 1 or j % 2:  # (a separator: the first name's)
            shown.append(part)
        else:
            shown.append("<n>" if all(v.isdigit() for v in values) else "<x>")
    return "".join(shown)


def _class_values(values: list[str], codes: np.ndarray) -> list[Counter]:
    """The values of each class (one int code a class)."""
    by_class: dict[int, Counter] = {}
    for value, code in zip(values, codes):
        by_class.setdefault(int(code), Counter())[value] += 1
    return list(by_class.values())


def find_name_id(paths: Sequence[str], labels: np.ndarray, num_classes: int) -> NameId | None:
    """The id in the file names that groups images of one label, if there is one.

    Args:
        paths: file paths.
        labels: the manifest's labels (int indices, or multi-hot rows), one per path.
        num_classes: number of classes (an id that is only the class is not one).

    Returns:
        A :class:`NameId`, or ``None`` when no part of the names looks like one.

    Example:
        >>> names = [f"fish_{t}_{f}.png" for t in range(30) for f in range(3)]
        >>> find_name_id(names, np.repeat(np.arange(30) % 3, 3), 3).regex
        'fish_(\\\\d+)'
    """
    split = [_parts(p) for p in paths]
    if not split:
        return None
    common_len, _ = Counter(len(p) for p in split).most_common(1)[0]
    family = [i for i, p in enumerate(split) if len(p) == common_len]
    if len(family) < MIN_FILES or common_len < 3:  # one part: nothing besides it to group by
        return None
    rows = np.asarray(labels)[family]
    codes = _label_codes(rows)
    best: tuple[float, int, int] | None = None
    for place in range(0, common_len, 2):
        values = [split[i][place] for i in family]
        counts = Counter(values)
        if rows.ndim == 2:  # multi-label: one value for all, or the label set again
            if len(counts) < max(2, 2 * num_classes):
                continue
        else:
            # one value for all, or the class again: the values two files share, leaving out
            # each class's most common one, must be 2 or more (a bar of 2 x classes distinct
            # values let a few odd names, IMG_1234.jpg beside cat.0.jpg, lift the class name
            # over it, and one of classes + 1 shared values a pair of them)
            own = {c.most_common(1)[0][0] for c in _class_values(values, codes)}
            if len({v for v, c in counts.items() if c > 1} - own) < 2:
                continue
        if sum(c for c in counts.values() if c > 1) < MIN_SHARED * len(family):
            continue
        purity, shared = _purity(values, codes)
        if purity >= MIN_PURITY and (best is None or (purity, shared) > best[:2]):
            best = (purity, shared, place)
    if best is None:
        return None
    place = best[2]
    parts = [split[i] for i in family]
    ids: list[str | None] = [None] * len(split)
    for i in family:
        ids[i] = split[i][place]
    regex = _regex(parts, place)
    from keras_species.data.sources import groups_from_regex

    with warnings.catch_warnings():  # names of other patterns: their own groups, no warning
        warnings.simplefilter("ignore")
        try:
            found = groups_from_regex([paths[i] for i in family], regex)
        except ValueError:
            found = []
    if found != [ids[i] for i in family]:
        regex = ""
    counts = Counter(ids[i] for i in family)
    shared = [c for c in counts.values() if c > 1]
    return NameId(ids, regex, _pattern(parts, place), len(counts), len(shared), sum(shared))


def find_manifest_name_id(m: Manifest) -> NameId | None:
    """:func:`find_name_id` over the labelled images of ``m`` (``ids`` one per labelled image).

    Args:
        m: a manifest.

    Returns:
        A :class:`NameId`, or ``None`` when ``m`` has groups or its names carry no id.
    """
    if m.groups is not None or len(m) == 0:
        return None
    mask = m.labelled_mask
    return find_name_id([p for p, k in zip(m.paths, mask) if k], m.labels[mask], m.num_classes)


def name_id_leak(m: Manifest, found: NameId | None = None) -> NameIdLeak | None:
    """Held-out images of a split made without groups whose file name's id sits on another side.

    With groups, only the files that the group ids left without one are checked: a
    ``--group-regex`` that matches few names (or a group column with blanks) makes each such
    file its own group (its path), so a split keeps nothing of theirs together. A regex that
    matched 5 of 2,985 fish names hid 237 tracking ids on two sides, where no regex at all was
    warned about.

    Args:
        m: a manifest with ``splits`` (train/val/test, or k folds).
        found: :func:`find_manifest_name_id` of ``m``, when the caller has it already (only
            for a manifest without groups).

    Returns:
        A :class:`NameIdLeak` (``ungrouped_of`` set when only the files without a group id were
        checked), or ``None`` when ``m`` has no splits, no id is found in its file names, or no
        id sits on two sides.

    Example:
        >>> from keras_species.data import splits
        >>> names = [f"fish_{t}_{f}.png" for t in range(40) for f in range(4)]
        >>> m = Manifest(names, np.repeat(np.arange(40) % 4, 4), ["a", "b", "c", "d"])
        >>> leak = name_id_leak(splits.stratified_split(m, group_aware=False))
        >>> leak.name_id.regex, leak.count > 0
        ('fish_(\\\\d+)', True)
    """
    if m.splits is None or len(m) == 0:
        return None
    ungrouped_of = None
    if m.groups is not None:
        own = np.array([g == p for g, p in zip(m.groups, m.paths)], bool)
        if own.sum() < 2:
            return None
        ungrouped_of, found = len(m), None
        m = m.subset(own)
        m.groups = None
    found = found or find_manifest_name_id(m)
    if found is None:
        return None
    mask = m.labelled_mask
    ids = iter(found.ids)
    per_image = [next(ids) if k else None for k in mask]
    sides_of: dict[str, set[str]] = {}
    for i, s in zip(per_image, m.splits):
        if i is not None:
            sides_of.setdefault(i, set()).add(s)
    totals = Counter(m.splits)
    order = sorted(totals, key=lambda s: (SPLIT_NAMES.index(s) if s in SPLIT_NAMES else 3, s))
    counted_sides = [s for s in order if s != "train"] if "train" in totals else order
    leaked = dict.fromkeys(counted_sides, 0)
    example = ""
    folds = "train" not in totals  # else only a training twin counts: the model learnt that one
    for i, s in zip(per_image, m.splits):
        if i is not None and s in leaked and (len(sides_of[i]) > 1 if folds else "train" in sides_of[i]):
            leaked[s] += 1
            example = example or i
    if not example:
        return None
    return NameIdLeak(found, leaked, dict(totals), example, ungrouped_of)
