"""Splits of a Manifest: stratified, group-aware, iterative multi-label, systematic, k-fold.

Every function returns a new Manifest whose ``splits`` column is filled (``train``/``val``/``test``
or ``fold0``..) and is deterministic given ``seed``; save it with :func:`save_split` so that a run
can be reproduced. Which tool does the work:

- single-label ratio split: per-class allocation (below; sklearn's ``StratifiedShuffleSplit``
  allocates counts globally and refuses classes with one image, while R3/R5 ask for per-class
  ratios);
- multi-label ratio split and k-fold: ``iterstrat`` (iterative stratification, Sechidis 2011);
- single-label k-fold: ``sklearn.model_selection.StratifiedKFold``;
- group-aware ratio split and group k-fold: a greedy group assignment, because sklearn has no
  stratified group split with unequal ratios, and its ``StratifiedGroupKFold`` holds a dense
  groups x classes table (the k-fold's before stop 30).

Rules for small classes (single-label ratio split): a class with fewer images than there are
splits goes wholly to the first split (``train``) with a warning; any other class gets
``round(n * ratio)`` images per split (largest remainder) and at least one image in every split.
Unlabelled images (label ``-1``) are spread like a class of their own.

Unreadable files (empty, truncated, not an image, over the decompression-bomb limit) are left
out with :func:`drop_unreadable` before splitting, as ``keras-species split`` does: training
skips them, so a split that kept them would count images no model ever sees.

Example:
    >>> from keras_species.data import sources, splits
    >>> m = splits.stratified_split(sources.load("demo"), (0.7, 0.15, 0.15), group_aware=True)
    >>> splits.leakage(m)["groups"]
    {}
"""

from __future__ import annotations

import argparse
import contextlib
import math
import numbers
import os
import re
import shlex
import sys
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from keras_species import csvfile
from keras_species.data.images import add_max_pixels_flag, max_pixels_flag, max_pixels_hint
from keras_species.data.manifest import (
    UNLABELLED,
    Manifest,
    ManifestError,
    counted,
    require_manifest,
)
from keras_species.data.pipeline import check_seed, whole_at_least
from keras_species.terminal import display_width

DEFAULT_RATIOS = (0.7, 0.15, 0.15)
DEFAULT_NAMES = ("train", "val", "test")
RATIO_SUM_TOLERANCE = 0.01 + 1e-9
"""How far ratios may sum from 1 (rounded to two decimals, as ``0.33 0.33 0.33``); they are
rescaled to sum 1."""
DROPPED_SHOWN = 20
"""How many unreadable files ``keras-species split`` lists on stderr (all go to the listing CSV)."""
DROPPED_HEADER = ["path", "reason"]


# ---------------------------------------------------------------------------------- helpers
def ratios_problem(ratios: Sequence[float]) -> str | None:
    """Why ``ratios`` cannot make a ratio split (2 or 3 numbers above 0 that sum to 1 within
    0.01), or None when they can.

    Args:
        ratios: train, val[, test] fractions.

    Returns:
        None, or the reason as a short phrase (the caller names the values).

    Example:
        >>> ratios_problem([0.9, 0.2, 0.1])
        'they must sum to 1 within 0.01 (sum 1.2)'
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) not in (2, 3):
        return "give 2 or 3 values (train, val[, test])"
    if not np.isfinite(r).all() or (r <= 0).any():
        return "every ratio must be a number > 0"
    if abs(r.sum() - 1.0) > RATIO_SUM_TOLERANCE:
        return f"they must sum to 1 within 0.01 (sum {r.sum():.4g})"
    return None


def _check_ratios(ratios: Sequence[float], names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    problem = ratios_problem(ratios)
    if problem:
        raise ManifestError(f"ratios {list(ratios)}: {problem}")
    r = np.asarray(ratios, dtype=np.float64)
    r = r / r.sum()  # rounded thirds (0.33 0.33 0.33) are meant as thirds
    if len(names) < len(r):
        raise ManifestError(f"{len(r)} ratios but only {len(names)} split names {list(names)}")
    names = [str(n) for n in names[: len(r)]]
    if len(set(names)) != len(names):
        raise ManifestError(f"split names must differ, got {names}")
    return r, names


def _check_classes(m: Manifest, what: str) -> None:
    counts = m.class_counts()
    present = [n for n, c in zip(m.class_names, counts) if c > 0]
    if len(present) < 2:
        held = f"only {present}" if present else f"none of its {len(m.class_names)} classes"
        raise ManifestError(
            f"{what} needs at least 2 classes with images; this data has images of {held}"
            + ("" if len(m) else " (no image is left: see the warnings above)")
            + ": add another class folder / label"
        )


def _require_groups(m: Manifest) -> list[str]:
    if m.groups is None:
        raise ManifestError(
            "a group-aware split needs group ids: give --group-regex (group_regex=), a regex over "
            r"the file names such as 'fish_(\d+)_', or, for a CSV, a column named 'group' or "
            "--group-col NAME (group_col=)"
        )
    return list(m.groups)


def _strata(m: Manifest) -> np.ndarray:
    """Integer stratum per row: the class (single-label, -1 kept) or the label-set (multi-label)."""
    _, inv = np.unique(m.stratify_key(), return_inverse=True)
    return inv.reshape(-1)


def _allocate(n: int, ratios: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images per split for a class of ``n``: largest remainder (ties broken at random), then at
    least one per split."""
    k = len(ratios)
    raw = n * ratios
    counts = np.floor(raw + 1e-9).astype(int)
    rest = n - counts.sum()
    order = np.lexsort((rng.random(k), -np.round(raw - counts, 9)))
    counts[order[:rest]] += 1
    for s in range(k):
        if counts[s] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[s] += 1
    return counts


def _use_groups(m: Manifest, group_aware: bool | None) -> bool:
    """``group_aware`` as given, or (``None``) whether ``m`` has groups."""
    return m.groups is not None if group_aware is None else bool(group_aware)


def _warn_absent(m: Manifest, names: Sequence[str]) -> None:
    counts = m.class_counts()
    for name in names:
        part = m.split(name).class_counts()
        absent = [c for c, total, here in zip(m.class_names, counts, part) if total > 0 and here == 0]
        if absent:
            warnings.warn(
                f"split {name!r} has no image of {counted(len(absent), 'class')}: "
                f"{', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''} "
                "(too few images or groups for these ratios)",
                stacklevel=3,
            )


def _target_matrix(m: Manifest) -> np.ndarray:
    """``(N, C+1)`` boolean label matrix with a last column marking rows that carry no label
    (boolean, as iterstrat reads it: a ``float64`` one took 8 times the memory, 1.2 GB for
    100,000 images of 500 tags)."""
    y = m.label_matrix().astype(bool)
    return np.concatenate([y, ~y.any(axis=1)[:, None]], axis=1)


def _label_pairs(m: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, columns)`` of every label an image carries (a class index; ``C`` for an image
    without any): the nonzero cells of :func:`_target_matrix`, without the dense ``N x (C+1)``
    matrix (10,000 classes x 40,000 images took 6 GB as floats)."""
    if m.multilabel:
        rows, cols = np.nonzero(m.labels)
        free = np.flatnonzero(~m.labels.any(axis=1))
    else:
        has = m.labels != UNLABELLED
        rows, cols = np.flatnonzero(has), m.labels[has]
        free = np.flatnonzero(~has)
    return (np.concatenate([rows, free]).astype(np.int64),
            np.concatenate([cols, np.full(len(free), m.num_classes)]).astype(np.int64))


def _greedy_groups(m: Manifest, groups: Sequence[str], ratios: np.ndarray, seed: int) -> np.ndarray:
    """Assign whole groups to splits, keeping every label's share close to ``ratios``.

    Groups are visited largest first (ties in a seeded random order); each goes to the split where
    it most lowers the squared relative error of per-label counts and of split sizes. Written by
    hand because sklearn's StratifiedGroupKFold only makes equal folds. Each group's cost is
    summed over the labels it holds only (a label it lacks adds 0), so a pass costs the number of
    (group, label) pairs, not groups x classes.
    """
    uniq, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    inv = inv.reshape(-1)
    g = len(uniq)
    n_cols = m.num_classes + 1
    rows, cols = _label_pairs(m)
    keys, counts = np.unique(inv[rows] * n_cols + cols, return_counts=True)  # sorted by group
    key_group, key_col = keys // n_cols, keys % n_cols
    starts = np.searchsorted(key_group, np.arange(g + 1))
    size = np.bincount(inv, minlength=g).astype(np.float64)
    total = np.bincount(cols, minlength=n_cols).astype(np.float64)
    n = float(len(inv))
    target = np.outer(ratios, total)
    target_size = ratios * n
    w = 1.0 / np.maximum(total, 1.0) ** 2
    have = np.zeros_like(target)
    have_size = np.zeros(len(ratios))
    rng = np.random.default_rng(seed)
    order = rng.permutation(g)
    order = order[np.argsort(-size[order], kind="stable")]
    where = np.zeros(g, dtype=np.int64)
    for gi in order:
        c = key_col[starts[gi] : starts[gi + 1]]
        vg = counts[starts[gi] : starts[gi + 1]].astype(np.float64)
        cost = ((vg * (2 * (have[:, c] - target[:, c]) + vg)) * w[c]).sum(axis=1)
        cost += size[gi] * (2 * (have_size - target_size) + size[gi]) / n**2
        s = int(np.argmin(cost))
        where[gi] = s
        have[s, c] += vg
        have_size[s] += size[gi]
    _reach_every_split(where, key_group, key_col, starts, size, len(ratios), m.num_classes)
    return where[inv]


def _reach_every_split(where: np.ndarray, key_group: np.ndarray, key_col: np.ndarray,
                       starts: np.ndarray, size: np.ndarray, k: int, n_labels: int) -> None:
    """Move whole groups (in place in ``where``, the split of each group) so that every label
    held by at least ``k`` groups has a group in each of the ``k`` splits, as the split without
    groups gives every class of ``k`` or more images an image in each split.

    The squared error that :func:`_greedy_groups` lowers prefers 8/4/0 to 4/4/4 for a class of
    three groups of 4 at 70/15/15 (stop 30): a class with enough groups was missing from a
    split. A group moves only from a split that keeps each of its labels through another group,
    the smallest such group first, so that no label loses a split by the move. ``key_group`` and
    ``key_col`` list each (group, label) pair once, sorted by group (``starts`` indexes them).
    Column ``n_labels`` (images without a label) is left as it falls.
    """
    n_cols = n_labels + 1
    count = np.zeros((k, n_cols), np.int64)  # groups of each label in each split
    np.add.at(count, (where[key_group], key_col), 1)
    holders = count.sum(axis=0)
    by_label = np.argsort(key_col, kind="stable")
    label_starts = np.searchsorted(key_col[by_label], np.arange(n_cols + 1))
    for label in np.flatnonzero(holders[:n_labels] >= k):
        for s in np.flatnonzero(count[:, label] == 0):
            groups = key_group[by_label[label_starts[label] : label_starts[label + 1]]]
            movable = [g for g in groups if (count[where[g], _labels_of(g, key_col, starts, n_labels)] >= 2).all()]
            if movable:
                g = min(movable, key=lambda g: (size[g], g))
                labels = _labels_of(g, key_col, starts, n_labels)
                count[where[g], labels] -= 1
                count[s, labels] += 1
                where[g] = s



def _labels_of(g: int, key_col: np.ndarray, starts: np.ndarray, n_labels: int) -> np.ndarray:
    """The labels group ``g`` holds (not the column of images without a label)."""
    labels = key_col[starts[g] : starts[g + 1]]
    return labels[labels < n_labels]


# ---------------------------------------------------------------------------------- ratio splits
@contextlib.contextmanager
def held_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Hold the warnings a split gives, to be given (:func:`give_warnings`) once the split
    stands: a split that is then refused should not first warn about parts it never writes
    (``split 'val' has no image of 23 classes`` before "the split leaves 'val' without any image").

    Yields:
        The list the warnings are recorded in.

    Example:
        >>> with held_warnings() as said:   # doctest: +SKIP
        ...     out = stratified_split(m, (0.7, 0.15, 0.15))
        >>> give_warnings(said)             # doctest: +SKIP
    """
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        yield held


def give_warnings(held: Sequence[warnings.WarningMessage]) -> None:
    """Give the warnings :func:`held_warnings` recorded, from where they were raised.

    Args:
        held: the recorded warnings.
    """
    for w in held:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def stratified_split(
    m: Manifest,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    *,
    seed: int = 0,
    group_aware: bool | None = None,
    names: Sequence[str] = DEFAULT_NAMES,
) -> Manifest:
    """Split per class by ``ratios`` (e.g. 70/15/15, 80/10/10, 60/20/20).

    Single-label: per-class allocation (see the module notes for small classes). Multi-label:
    iterative stratification (``iterstrat.MultilabelStratifiedShuffleSplit``, applied twice for
    three splits), which keeps each label's share close to the ratios. Group-aware (the default
    when ``m`` has groups, as the ``split`` command): whole groups are assigned (no group on two
    sides), approximately stratified by label.

    Args:
        m: the manifest (at least 2 classes).
        ratios: 2 or 3 positive ratios summing to 1 (train, val[, test]).
        seed: random seed; the same seed and manifest give the same split.
        group_aware: keep each group (``m.groups``) on one side; default ``None``: when ``m``
            has groups (frames of one fish on both sides would make the scores optimistic).
            ``False`` ignores them.
        names: split names, in the order of ``ratios``.

    Returns:
        A copy of ``m`` with ``splits`` filled.

    Example:
        >>> from keras_species.data import sources
        >>> m = stratified_split(sources.load("demo"), (0.8, 0.2), seed=1)
        >>> m.summary()
        '300 images, 6 classes (single-label), splits train=240 val=60'
    """
    require_manifest(m, "stratified_split")
    seed = check_seed(seed)
    r, names = _check_ratios(ratios, names)
    _check_classes(m, "a stratified split")
    n = len(m)
    where = np.zeros(n, dtype=np.int64)
    if _use_groups(m, group_aware):
        where = _greedy_groups(m, _require_groups(m), r, seed)
    elif m.multilabel:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        y = _target_matrix(m)
        # rows in path order, as the single-label split takes them: a CSV sorted another way
        # gives the same split for a seed (before, 293 of the aquarium's 638 moved)
        rest = np.argsort(np.asarray(m.paths), kind="stable")
        for s in range(len(r) - 1, 0, -1):
            share = r[s] / r[: s + 1].sum()
            splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
            keep, take = next(splitter.split(np.zeros(len(rest)), y[rest]))
            where[rest[take]] = s
            rest = rest[keep]
    else:
        rng = np.random.default_rng(seed)
        small = []
        order = np.argsort(np.asarray(m.paths), kind="stable")
        labels = m.labels[order]
        by_class = np.argsort(labels, kind="stable")  # each class's rows in path order, one sort
        cuts = np.flatnonzero(np.diff(labels[by_class])) + 1
        for rows in np.split(order[by_class], cuts):
            c = m.labels[rows[0]]
            if len(rows) < len(r):
                where[rows] = 0
                if c != UNLABELLED:
                    small.append(f"{m.class_names[c]} ({len(rows)})")
                continue
            rows = rows[rng.permutation(len(rows))]
            counts = _allocate(len(rows), r, rng)
            where[rows] = np.repeat(np.arange(len(r)), counts)
        if small:
            warnings.warn(
                f"classes with fewer than {len(r)} images all go to {names[0]!r}: {', '.join(small)}",
                stacklevel=2,
            )
    out = m.with_splits([names[i] for i in where])
    _warn_absent(out, names[1:])
    return out


def _refuse_empty_splits(m: Manifest, names: Sequence[str], grouped: bool) -> None:
    """``split``'s refusal of a ratio split that leaves a part without any image: a model cannot
    be validated or tested on nothing, and a split CSV with an empty part is no split. (A
    recipe's ``prepare_data`` says it in its own words, with its own flags.)"""
    present = set(m.splits)
    empty = [name for name in names if name not in present]
    if not empty:
        return
    parts = " and ".join(repr(e) for e in empty)
    # two parts would fill only where there are more than two now and two groups (images of a
    # class) to share: the advice said "fewer parts (--ratios 0.8 0.2)" to a split of 0.8 0.2
    if grouped:
        n_groups = len(set(m.groups))
        fewer = "fewer parts (--ratios 0.8 0.2), " if len(names) > 2 and n_groups >= 2 else ""
        raise ManifestError(
            f"the group-aware split leaves {parts} without any image: the {len(m)} images form only "
            f"{counted(n_groups, 'group')}, and a group goes whole to one side. Give finer group ids "
            r"(a --group-regex whose capture group is the individual's or site's id, e.g. 'fish_(\d+)_'), "
            f"{fewer}or leave the groups out (--no-group-aware) "
            "if images of one group may sit on both sides"
        )
    largest = int(np.max(m.class_counts(), initial=0))
    fewer = "fewer parts (--ratios 0.8 0.2) or " if len(names) > 2 and largest >= 2 else ""
    raise ManifestError(
        f"the split leaves {parts} without any image: every class has fewer images than --ratios "
        f"has parts ({len(names)}), so each goes whole to {names[0]!r}; give {fewer}more images"
    )


def systematic_split(
    m: Manifest,
    *,
    k: int = 2,
    n: int = 10,
    names: Sequence[str] = ("val", "train"),
) -> Manifest:
    """R1's systematic split: within each class, sorted by path, the first ``k`` of every ``n``
    (multi-label data: within each label set, the strata of :func:`stratified_split`).

    Args:
        m: the manifest (at least 2 classes).
        k: images per run that go to ``names[0]``.
        n: run length.
        names: (held-out split, remaining split); default ``("val", "train")``.

    Returns:
        A copy of ``m`` with ``splits`` filled (10 images per class, k=2, n=10 -> 2 val, 8 train).

    Example:
        >>> from keras_species.data import sources
        >>> m = systematic_split(sources.load("demo"), k=2, n=10)
        >>> m.summary()
        '300 images, 6 classes (single-label), splits train=240 val=60'
    """
    if not (whole_at_least(k, 1) and whole_at_least(n, 2) and k < n):  # True is no k
        raise ManifestError(f"systematic split needs integers 0 < k < n, got k={k}, n={n}")
    if len(names) != 2 or names[0] == names[1]:
        raise ManifestError(f"systematic split needs two different split names, got {list(names)}")
    _check_classes(m, "a systematic split")
    strata = _strata(m)
    out = [names[1]] * len(m)
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        rows = rows[np.argsort(np.asarray(m.paths)[rows], kind="stable")]
        for pos, i in enumerate(rows):
            if pos % n < k:
                out[i] = names[0]
    split = m.with_splits(out)
    strata_of = "label set" if m.multilabel else "class"
    _warn_untrained(split, names[1], f"the systematic split (the first {k} of every {n} of each {strata_of} "
                    f"to {names[0]!r})",
                    f"a {strata_of} of {counted(k, 'image')} or fewer goes whole to {names[0]!r}; a ratio split "
                    "(--ratios) keeps classes too small to split in train")
    return split


# ---------------------------------------------------------------------------------- k-fold
def _fold_index(m: Manifest, k: int, seed: int, group_aware: bool | None) -> np.ndarray:
    seed = check_seed(seed)
    if not isinstance(k, int | np.integer) or k < 2:
        raise ManifestError(f"k-fold needs a whole number k >= 2, got {k!r}")
    _check_classes(m, "k-fold cross-validation")
    if k > len(m):
        raise ManifestError(f"k={k} folds but only {len(m)} images")
    if not m.multilabel:  # sklearn's own message (grouped or not) names no k that works
        largest = int(m.class_counts().max())
        if k > largest:
            raise ManifestError(f"k={k} folds, but the largest class has {largest} images: "
                                f"give k = {largest} or less")
    fold = np.zeros(len(m), dtype=np.int64)
    x = np.zeros(len(m))
    try:
        if _use_groups(m, group_aware):
            groups = _require_groups(m)
            n_groups = len(set(groups))
            if n_groups < k:
                raise ManifestError(f"k={k} folds but only {n_groups} groups: lower k or use finer groups")
            # whole groups to k equal parts by the same sparse assignment as a ratio split:
            # sklearn's StratifiedGroupKFold (used for single-label data before stop 30) holds a
            # dense groups x classes table and scans it once a group (40,000 images in 10,000
            # groups of 5,000 classes: 6.8 s and 902 MB, against 1.7 s and 77 MB here)
            fold = _greedy_groups(m, groups, np.full(k, 1.0 / k), seed)
            _warn_thin_folds(m, fold, k)
            return fold
        # rows in path order: the folds of a seed do not depend on the order of a CSV's rows
        order = np.argsort(np.asarray(m.paths), kind="stable")
        if m.multilabel:
            from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

            splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            parts = splitter.split(x, _target_matrix(m)[order])
        else:
            from sklearn.model_selection import StratifiedKFold

            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            parts = splitter.split(x, m.labels[order])
        with warnings.catch_warnings():  # a class short of k images: _warn_thin_folds says it once
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            for i, (_, val) in enumerate(parts):
                fold[order[val]] = i
    except ValueError as e:
        if isinstance(e, ManifestError):
            raise
        raise ManifestError(f"cannot make {k} stratified folds: {e}") from e
    _warn_thin_folds(m, fold, k)
    return fold


def _warn_thin_folds(m: Manifest, fold: np.ndarray, k: int) -> None:
    """Warn about the classes that some folds hold no image of: those folds' validation scores
    cannot count them (too few images or groups of the class for ``k`` folds)."""
    rows, cols = _label_pairs(m)
    labelled = cols < m.num_classes
    rows, cols = rows[labelled], cols[labelled]
    per_fold = np.zeros((k, m.num_classes), bool)  # (k, C): class in fold
    per_fold[fold[rows], cols] = True
    present = np.zeros(m.num_classes, bool)
    present[cols] = True
    thin = [(name, int(per_fold[:, j].sum())) for j, name in enumerate(m.class_names)
            if present[j] and not per_fold[:, j].all()]
    if thin:
        shown = ", ".join(f"{name} ({n} of {k})" for name, n in thin[:10])
        warnings.warn(
            f"{counted(len(thin), 'class')} {'has' if len(thin) == 1 else 'have'} images in only "
            f"some of the {k} folds: {shown}"
            f"{' ...' if len(thin) > 10 else ''} (too few images or groups for {k} folds; "
            "use fewer folds to validate every class in every fold)",
            stacklevel=3,
        )


def assign_folds(m: Manifest, k: int = 5, *, seed: int = 0, group_aware: bool | None = None) -> Manifest:
    """One manifest whose splits are ``fold0`` .. ``fold{k-1}`` (stratified, optionally by group).

    Args:
        m: the manifest (at least 2 classes).
        k: number of folds.
        seed: random seed.
        group_aware: keep each group in one fold (the greedy assignment of whole groups);
            default ``None``: when ``m`` has groups.

    Returns:
        A copy of ``m`` with ``splits`` = fold names.

    Example:
        >>> from keras_species.data import sources
        >>> sorted(set(assign_folds(sources.load("demo"), 3).splits))
        ['fold0', 'fold1', 'fold2']
    """
    require_manifest(m, "assign_folds")
    fold = _fold_index(m, k, seed, group_aware)
    return m.with_splits([f"fold{i}" for i in fold])


def kfold(m: Manifest, k: int = 5, *, seed: int = 0, group_aware: bool | None = None) -> list[Manifest]:
    """``k`` manifests; in the ``i``-th, fold ``i`` is ``val`` and the others are ``train``.

    Single-label: ``StratifiedKFold``; multi-label: ``MultilabelStratifiedKFold``; with groups
    (``group_aware``), the greedy assignment of whole groups to ``k`` equal folds. Every image is
    in ``val`` exactly once.

    Args:
        m: the manifest (at least 2 classes).
        k: number of folds.
        seed: random seed.
        group_aware: keep each group in one fold; default ``None``: when ``m`` has groups.

    Returns:
        A list of ``k`` manifests with ``splits`` in ``{"train", "val"}``.

    Example:
        >>> from keras_species.data import sources
        >>> folds = kfold(sources.load("demo"), 5)
        >>> [len(f.split("val")) for f in folds]
        [60, 60, 60, 60, 60]
    """
    fold = _fold_index(m, k, seed, group_aware)
    return [m.with_splits(np.where(fold == i, "val", "train").tolist()) for i in range(k)]


# ---------------------------------------------------------------------------------- others
def drop_unreadable(m: Manifest, *, workers: int | None = None) -> tuple[Manifest, dict[str, str]]:
    """Leave out the images whose file cannot be read, before splitting.

    Uses the pipeline's fast check (:func:`keras_species.data.pipeline.check_files`: header and
    tail, no full decode, about 10 µs a file), so the files left out are the ones training would
    skip, with :func:`keras_species.data.images.read_image`'s reasons (``"empty file (0 bytes)"``,
    ``"not an image: the file is text starting ..."``, ``"broken image header (...)"``, over the
    decompression-bomb limit, ``"cannot open the file (...)"``). Nothing is deleted from disk.
    ``keras-species audit`` decodes every file fully and finds a few more.

    Args:
        m: the manifest (its splits, groups and classes are kept for the rows that stay; a class
            whose every file is unreadable keeps its name with no image).
        workers: threads for the check (default 1; more only helps on network file systems).

    Returns:
        ``(readable, bad)``: the manifest without the unreadable rows (``m`` itself when every
        file reads) and ``{path: reason}`` of the files left out, in manifest order.

    Example:
        >>> from keras_species.data import sources
        >>> m, bad = drop_unreadable(sources.load("demo"))
        >>> len(m), bad
        (300, {})
    """
    from keras_species.data.pipeline import KIND_BAD, check_files

    kinds, bad = check_files(list(m.paths), workers=workers)
    if not bad:
        return m, {}
    return m.subset(kinds != KIND_BAD), bad


def top_classes(m: Manifest, *, fraction: float | None = None, count: int | None = None) -> Manifest:
    """R5: keep only the most frequent classes, re-indexed (ties broken by class name, with a
    warning when the cut falls within a tie).

    Args:
        m: the manifest.
        fraction: share of classes to keep (``0.1`` keeps 100 of 1,003: rounded down, at least 1).
        count: alternatively, how many classes to keep.

    Returns:
        The manifest restricted to those classes, in their original relative order, with indices
        ``0..K-1`` (single-label: other images dropped; multi-label: other columns dropped).
        Existing splits are kept.

    Example:
        >>> from keras_species.data import sources
        >>> top_classes(sources.load("demo"), count=2).num_classes
        2
    """
    if (fraction is None) == (count is None):
        raise ManifestError("pass exactly one of fraction= and count=")
    # the classes with images: an iNat category without any was ranked, kept, and made an
    # output no image trains (--top-classes-count 7 of 6 such classes was taken)
    counts = m.class_counts()
    c = int((counts > 0).sum())
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ManifestError(f"fraction must be in (0, 1], got {fraction}")
        keep_n = max(1, math.floor(fraction * c + 1e-9))
    else:
        if not isinstance(count, numbers.Integral) or isinstance(count, bool) or not 1 <= count <= c:
            raise ManifestError(f"count must be a whole number between 1 and {c} (the number of "
                                f"classes with images), got {count!r}")
        keep_n = int(count)
    ranked = sorted(np.flatnonzero(counts > 0).tolist(), key=lambda i: (-int(counts[i]), m.class_names[i]))
    chosen = set(ranked[:keep_n])
    if keep_n < c and counts[ranked[keep_n - 1]] == counts[ranked[keep_n]]:  # the cut splits a tie
        tied = [m.class_names[i] for i in ranked if counts[i] == counts[ranked[keep_n - 1]]]
        kept = [name for name in tied if m.class_names.index(name) in chosen]
        warnings.warn(
            f"the top {keep_n} classes end within a tie: {len(tied)} classes have "
            f"{int(counts[ranked[keep_n - 1]])} images each, and {len(kept)} of them "
            f"{'is' if len(kept) == 1 else 'are'} kept by "
            f"name ({', '.join(kept[:3])}{' ...' if len(kept) > 3 else ''}); keep more or fewer "
            "classes to take all or none of them", stacklevel=2)
    return m.select_classes([name for i, name in enumerate(m.class_names) if i in chosen])


def given_split(m: Manifest) -> Manifest:
    """Keep the split that came with the data (a CSV ``split`` column), after checking it.

    Args:
        m: a manifest whose ``splits`` came from its source.

    Returns:
        A copy with normalised split names (``valid``/``validation``/``dev`` -> ``val``).

    Raises:
        ManifestError: no split column, unknown split names, or no ``train`` plus ``val``/``test``.

    Example:
        >>> m = given_split(sources.from_csv("labels.csv"))   # doctest: +SKIP
    """
    from keras_species.data.sources import normalise_split_name

    if m.splits is None:
        raise ManifestError(
            f"{m.source or 'this data'} has no given split: a CSV carries one in a 'split' column "
            "(train/val/test; sources.from_csv(split_col=...) for another name), a folder in "
            "split folders (DATA/train/<class>/, DATA/val/<class>/...); or make a split by "
            "ratios instead (leave out --given; stratified_split in Python)"
        )
    splits = [normalise_split_name(s) for s in m.splits]
    unknown = sorted({s for s in splits if s not in DEFAULT_NAMES})
    source = f"{m.source}: " if m.source else ""
    if "" in unknown:  # cells left empty: named as such, not as a split name ''
        empty = [m.paths[i] for i, s in enumerate(splits) if not s]
        raise ManifestError(
            f"{source}the split column is empty for {counted(len(empty), 'image')} (e.g. {empty[:2]}): "
            "give each row train, val or test, or leave the column out and split by ratios")
    if unknown:
        examples = [m.paths[i] for i, s in enumerate(splits) if s in unknown][:2]
        if all(re.fullmatch(r"fold\d+", s) for s in unknown):  # `split --kfold`'s output
            raise ManifestError(
                f"{source}its split column holds k-fold folds ({', '.join(unknown)}), as "
                "`keras-species split --kfold` writes them, not train/val/test: a model trained once "
                "needs a train/val/test split (keras-species split DATA --ratios 0.7 0.15 0.15 "
                "--out split.csv); for cross-validation give the data itself to python -m "
                "recipes.scratch_cnn --k K, which makes its own folds"
            )
        raise ManifestError(
            f"{source}split names {unknown} are not train/val/test (e.g. {examples}): name them "
            "train, val (or valid/validation/dev) and test in the split column"
        )
    present = set(splits)
    if "train" not in present or not present & {"val", "test"}:
        raise ManifestError(
            f"the given split has {sorted(present)}: it needs 'train' and at least one of 'val'/'test'"
        )
    out = m.with_splits(splits)
    _warn_untrained(out, "train", "the given split",
                    "move some of its images to train in the split column")
    return out


def _warn_untrained(m: Manifest, train: str, what: str, fix: str) -> None:
    """Warn of the classes (tags) that have images but none in the split ``train``."""
    kept = m.split(train).class_counts()
    untrained = [c for c, total, here in zip(m.class_names, m.class_counts(), kept) if total > 0 and here == 0]
    if untrained:
        warnings.warn(
            f"{what} has no {train!r} image of {counted(len(untrained), 'class')}: "
            f"{', '.join(untrained[:10])}{' ...' if len(untrained) > 10 else ''}; a model cannot "
            f"learn a class it never trains on: {fix}",
            stacklevel=3,
        )


class Leakage(dict):
    """What :func:`leakage` returns: ``{"groups": {...}, "paths": {...}}``, true only when
    something sits on two sides (a plain dict of two keys would always be true, so
    ``if leakage(m):`` would always fire)."""

    def __bool__(self) -> bool:
        return any(self.values())


def leakage(m: Manifest) -> Leakage:
    """Groups and identical paths that sit on more than one side of a split.

    Args:
        m: a manifest with ``splits``.

    Returns:
        A :class:`Leakage`, ``{"groups": {group: [splits...]}, "paths": {path: [splits...]}}``
        (paths as real paths: a file link and its file are one file) with only the entries on
        two or more sides (``groups`` is empty when ``m`` has none); it
        is false when nothing leaks, so ``if leakage(m):`` reads as it should.

    Example:
        >>> from keras_species.data import sources
        >>> leaks = leakage(stratified_split(sources.load("demo")))  # group-aware: demo has groups
        >>> leaks, bool(leaks)
        ({'groups': {}, 'paths': {}}, False)
    """
    if m.splits is None:
        raise ManifestError("leakage needs a manifest with splits")

    def shared(keys: Sequence[str]) -> dict[str, list[str]]:
        sides: dict[str, set[str]] = {}
        for key, s in zip(keys, m.splits):
            sides.setdefault(key, set()).add(s)
        return {key: sorted(v) for key, v in sides.items() if len(v) > 1}

    return Leakage(
        groups=shared(m.groups) if m.groups is not None else {},
        paths=shared([os.path.normcase(p) for p in _real_paths(m.paths)]),  # a link is its file
    )


def _real_paths(paths: Sequence[str]) -> list[str]:
    """``os.path.realpath`` of each path, resolving each folder once (``realpath`` takes about six
    ``lstat`` calls a path: half of ``split``'s time at 100,000 images) and a file only when it is
    a link."""
    folders: dict[str, str] = {}
    out = []
    for p in paths:
        folder, name = os.path.split(os.path.abspath(p))
        real = folders.get(folder)
        if real is None:
            real = folders[folder] = os.path.realpath(folder)
        joined = os.path.join(real, name)
        out.append(os.path.realpath(joined) if os.path.islink(joined) else joined)
    return out


def save_split(m: Manifest, path: str | os.PathLike) -> str:
    """Write the split manifest to a CSV (``Manifest.to_csv``) to reproduce a run.

    Args:
        m: a manifest with ``splits``.
        path: the CSV to write.

    Returns:
        The path written.

    Example:
        >>> save_split(stratified_split(sources.load("demo")), "split.csv")   # doctest: +SKIP
    """
    if m.splits is None:
        raise ManifestError("this manifest has no split to save: split it first")
    return m.to_csv(path)


def load_split(path: str | os.PathLike) -> Manifest:
    """Read a CSV written by :func:`save_split`.

    Args:
        path: the CSV.

    Returns:
        The manifest with its splits.

    Example:
        >>> m = load_split("split.csv")                  # doctest: +SKIP
    """
    m = Manifest.from_csv(path)
    if m.splits is None:
        raise ManifestError(f"{path} has no split column: it was not written by save_split")
    return m


#: Class rows ``keras-species split`` prints (the split CSV holds every image).
SPLIT_TABLE_CLASSES = 40


def split_table(m: Manifest, max_classes: int | None = None) -> str:
    """A per-class, per-split count table (plain text) of a split manifest.

    Args:
        m: a manifest with ``splits``.
        max_classes: at most this many class rows (``None``: all). With more classes, the rows
            kept are those with the fewest images on their smallest split (the classes a split
            may starve), in class order, and one row sums the others, so the columns still add
            up (``keras-species split`` prints 40: 10,000 classes printed 10,000 lines). One class
            more than ``max_classes`` is shown whole (its row would take the sum's place).

    Returns:
        The table, one row per class (or as capped) plus a total row.

    Example:
        >>> print(split_table(stratified_split(sources.load("demo"))))   # doctest: +SKIP
    """
    if m.splits is None:
        raise ManifestError("split_table needs a manifest with splits")
    order = {n: i for i, n in enumerate(DEFAULT_NAMES)}
    cols = sorted(set(m.splits), key=lambda s: (order.get(s, 3), len(s), s))
    per = {s: m.split(s) for s in cols}
    counts = {s: per[s].class_counts() for s in cols}
    table = np.array([[int(counts[s][j]) for s in cols] for j in range(len(m.class_names))],
                     dtype=np.int64).reshape(len(m.class_names), len(cols))
    shown = np.arange(len(m.class_names))
    if max_classes is not None and len(shown) > max_classes + 1:  # a row for one class is its own
        shown = np.sort(np.argsort(table.min(axis=1), kind="stable")[:max_classes])
    rows = [[m.class_names[j]] + [str(v) for v in table[j]] + [str(int(table[j].sum()))] for j in shown]
    if len(shown) < len(m.class_names):
        rest = np.delete(table, shown, axis=0).sum(axis=0)
        rows.append([f"({counted(len(m.class_names) - len(shown), 'other class', 'other classes')})"] + [str(int(v)) for v in rest]
                    + [str(int(rest.sum()))])
    if not m.multilabel and (m.labels == UNLABELLED).any():
        un = [int((per[s].labels == UNLABELLED).sum()) for s in cols]
        rows.append(["(unlabelled)"] + [str(u) for u in un] + [str(sum(un))])
    if m.multilabel and not m.labels.any(axis=1).all():  # a tag-free image: a negative of every tag
        none = [int((~per[s].labels.any(axis=1)).sum()) for s in cols]
        rows.append(["(no tag)"] + [str(u) for u in none] + [str(sum(none))])
    rows.append(["images"] + [str(len(per[s])) for s in cols] + [str(len(m))])
    header = ["class"] + cols + ["total"]
    widths = [max(display_width(r[i]) for r in rows + [header]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:  # padded by columns on screen, not characters
        pads = [" " * (w - display_width(c)) for c, w in zip(row, widths)]
        return "  ".join(c + pad if i == 0 else pad + c for i, (c, pad) in enumerate(zip(row, pads)))

    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``keras-species split``.

    Args:
        parser: the subcommand's parser.

    Example:
        >>> p = argparse.ArgumentParser(); configure_parser(p)
        >>> p.parse_args(["demo", "--ratios", "0.8", "0.2"]).ratios
        [0.8, 0.2]
    """
    from keras_species.data.sources import add_source_arguments

    add_source_arguments(parser)
    ga = parser.add_mutually_exclusive_group()
    ga.add_argument("--group-aware", dest="group_aware", action="store_true", default=None,
                    help="keep each group on one side (the default when the data has groups)")
    ga.add_argument("--no-group-aware", dest="group_aware", action="store_false",
                    help="ignore groups when splitting")
    mode = parser.add_mutually_exclusive_group()  # --ratios applies only to the ratio split
    mode.add_argument("--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS),
                      help="train val [test] ratios summing to 1, within 0.01 (default 0.7 0.15 0.15)")
    mode.add_argument("--systematic", type=int, nargs=2, metavar=("K", "N"), default=None,
                      help="R1: first K of every N images per class (sorted by path) go to val")
    mode.add_argument("--kfold", type=int, metavar="K", default=None,
                      help="assign K stratified folds (splits fold0..fold{K-1})")
    mode.add_argument("--given", action="store_true", help="keep the split column given in the CSV")
    parser.add_argument("--top-classes", type=float, metavar="FRACTION", default=None,
                        help="R5: first keep only the most frequent FRACTION of classes (e.g. 0.1)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed of the ratio split and --kfold (default 0)")
    add_max_pixels_flag(parser, "left out of the split")
    parser.add_argument("--out", default="split.csv", help="CSV to write (default split.csv)")


def _check_split_flags(args: argparse.Namespace) -> None:
    """Refuse, before the data is read, flag values the split cannot use (as the parser would)."""
    from keras_species.recipe import SETTING_CHECKS, SettingError

    seed_problem = None if args.seed is None else SETTING_CHECKS["seed"](args.seed, None)
    if seed_problem:  # the recipes' own check of --seed
        raise SettingError(f"--seed {args.seed}: {seed_problem}")
    if args.group_aware and (args.given or args.systematic is not None):
        mode = "--given keeps the data's own split" if args.given else "--systematic picks by position"
        raise SettingError(f"--group-aware does not apply here: {mode}, whatever the groups; leave "
                           "it out (a group on two sides is reported), or make a ratio split or "
                           "--kfold, which keep each group on one side")
    if args.seed is not None and (args.given or args.systematic is not None):
        raise SettingError(f"--seed does not apply to --{'given' if args.given else 'systematic'}, "
                           "which draws nothing at random: leave it out")
    if args.kfold is not None and args.kfold < 2:
        raise SettingError(f"--kfold {args.kfold}: give the number of folds, at least 2 (e.g. --kfold 5)")
    if args.systematic is not None and not 0 < args.systematic[0] < args.systematic[1]:
        k, n = args.systematic
        raise SettingError(f"--systematic {k} {n}: give K and N with 0 < K < N (the first K of every "
                           "N images of a class go to val, e.g. --systematic 1 5)")
    if args.top_classes is not None and not 0 < args.top_classes <= 1:
        raise SettingError(f"--top-classes {args.top_classes:g}: give the share of classes to keep, "
                           "above 0 and at most 1 (e.g. --top-classes 0.1 keeps the most frequent 10%)")


def _report_top_classes(before: Manifest, after: Manifest, fraction: float) -> None:
    """Say what ``--top-classes`` left out, and refuse a share that keeps a single class."""
    with_images = int((before.class_counts() > 0).sum())  # the share is of these (top_classes)
    if after.num_classes < 2:
        least = math.ceil(2 / max(with_images, 1) * 100) / 100
        raise ManifestError(
            f"--top-classes {fraction:g} keeps {counted(after.num_classes, 'class')} of "
            f"{with_images} with images, and a split needs at least 2"
            + (f": give --top-classes {least:g} or more" if with_images >= 2 else
               ": the data has fewer than 2 classes with images")
        )
    untagged = ""
    if after.multilabel:  # every image stays; one that held only dropped tags now holds none
        lost = int((~after.labels.any(axis=1) & before.labels.any(axis=1)).sum())
        if lost:
            untagged = (f" ({lost} of them held only tags left out and now hold none: they stay, "
                        "as negatives of every kept tag)")
    print(f"--top-classes {fraction:g}: kept the {after.num_classes} most frequent of "
          f"{with_images} classes with images, {len(after)} of {len(before)} images{untagged}")


def dropped_listing_path(out: str | os.PathLike) -> Path:
    """Where ``keras-species split --out OUT`` lists the unreadable files it left out.

    Args:
        out: the split CSV (``--out``).

    Returns:
        ``<OUT stem>.dropped.csv`` beside it (``split.csv`` -> ``split.dropped.csv``), a CSV with
        the columns ``path,reason`` (as ``keras-species audit``'s ``dropped.csv``).

    Example:
        >>> dropped_listing_path("runs/split.csv").as_posix()
        'runs/split.dropped.csv'
    """
    out = Path(out)
    return out.with_name(out.stem + ".dropped.csv")


def _write_listing(bad: dict[str, str], path: Path) -> None:
    from keras_species.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csvfile.writer(f)
        w.writerow(DROPPED_HEADER)
        w.writerows(bad.items())


def _is_listing(path: Path) -> bool:
    """``path`` is a file :func:`_write_listing` wrote (its header is ``path,reason``)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.readline().rstrip("\r\n") == ",".join(DROPPED_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _report_dropped(bad: dict[str, str], before: Manifest, after: Manifest, listing: Path, data: str) -> None:
    """Name the unreadable files left out (at most :data:`DROPPED_SHOWN`) and the classes they
    emptied, on stderr."""
    lines = [f"keras-species split: dropped {len(bad)} unreadable file(s) (not in the split; "
             "nothing deleted):"]
    lines += [f"  {p}: {r}" for p, r in list(bad.items())[:DROPPED_SHOWN]]
    if len(bad) > DROPPED_SHOWN:
        lines.append(f"  ... and {len(bad) - DROPPED_SHOWN} more")
    lines.append(f"  all of them, with their reasons: {listing} (a fast header check; "
                 f"`keras-species audit {shlex.quote(data)}` decodes every file and may find more)")
    emptied = [name for name, was, now in zip(before.class_names, before.class_counts(), after.class_counts())
               if was > 0 and now == 0]
    if emptied and len(after):
        lines.append(f"  classes left without images: {', '.join(emptied)} (every file of each is "
                     "unreadable): fix or replace those files, or take the class out of the data")
    hint = max_pixels_hint(bad.values())
    if hint:
        lines.append(f"  {hint}")
    print("\n".join(lines), file=sys.stderr)


def _warn_name_ids(m: Manifest, args: argparse.Namespace) -> None:
    """Warn when the file names carry an id that the split puts on two sides (``name_ids``)."""
    from keras_species.data.name_ids import name_id_leak

    leak = name_id_leak(m)
    if leak is not None:
        given = "--given" if args.given else "--systematic" if args.systematic is not None else ""
        warnings.warn(leak.message(after=f" without {given}" if given else ""), stacklevel=2)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``keras-species split``: load, leave out unreadable files, split, print the table,
    write the CSV.

    Unreadable files (:func:`drop_unreadable`) are listed on stderr (the first
    :data:`DROPPED_SHOWN`) and all of them in :func:`dropped_listing_path` beside ``--out``,
    whichever split is made (``--given`` too); a listing left by an earlier run is removed when
    every file now reads. Data none of whose files reads is an error.

    Args:
        args: parsed arguments (see :func:`configure_parser`).

    Returns:
        0 on success, 2 on bad input (the message is printed to stderr).

    Example:
        >>> p = argparse.ArgumentParser(); configure_parser(p)
        >>> run_cli(p.parse_args(["demo", "--out", "split.csv"]))   # doctest: +SKIP
        0
    """
    from keras_species.atomic import check_output_file
    from keras_species.csvfile import csv_name_problem
    from keras_species.data import sources

    listing = dropped_listing_path(args.out)
    bad: dict[str, str] = {}
    try:
        check_output_file(args.out, "--out", "split.csv")  # before reading: a bad --out fails now
        problem = csv_name_problem(args.out, f"--out {args.out}", "split writes a CSV (a split manifest)")
        if problem:  # best.keras or a photo was replaced by the CSV
            raise ManifestError(problem)
        sources.check_output_place(args.data, args.out, "--out")
        sources.check_output_place(args.data, listing, "--out's listing of unreadable files")
        ratio_split = not (args.given or args.systematic is not None or args.kfold is not None)
        problem = ratios_problem(args.ratios) if ratio_split else None
        if problem:  # a flag's value: said before the data is read, as the parser's errors
            from keras_species.recipe import SettingError

            shown = " ".join(f"{r:g}" for r in args.ratios)
            raise SettingError(f"--ratios {shown}: {problem} (e.g. --ratios 0.7 0.15 0.15)")
        _check_split_flags(args)
        loaded = sources.require_labels(sources.load(args.data, **sources.source_options(args)), "split")
        max_pixels = getattr(args, "max_pixels", None)
        with max_pixels_flag(max_pixels):
            m, bad = drop_unreadable(loaded)
            gone = sources.data_gone_problem(args.data, bad) if bad and not len(m) else None
            if gone:  # one line, not a "file not found" line and a listing row per file
                raise ManifestError(gone)
            if bad:  # inside: the listing names the limit the check used
                _write_listing(bad, listing)
                _report_dropped(bad, loaded, m, listing, str(args.data))
        if bad and not len(m):
            data = shlex.quote(str(args.data))
            raise ManifestError(
                f"none of the {len(loaded)} image file(s) of {args.data} can be read (reasons above and in "
                f"{listing}): check that {args.data} is the data you meant, and replace the files with "
                f"good copies; `keras-species audit {data}` reports every problem file"
            )
        seed = 0 if args.seed is None else args.seed
        if m.splits is not None and not args.given:  # the data's own split column goes unused
            own = ", ".join(f"{k}={v}" for k, v in sorted(Counter(m.splits).items()))
            print(f"note: {args.data} comes with a split of its own ({own}); this split replaces it "
                  "in --out (--given keeps it)", file=sys.stderr)
        try:
            if args.top_classes is not None:
                before = m
                m = top_classes(m, fraction=args.top_classes)
                _report_top_classes(before, m, args.top_classes)
            group_aware = _use_groups(m, args.group_aware)
            if args.given:
                out, how = given_split(m), "given split"
            elif args.systematic is not None:
                k, n = args.systematic
                out, how = systematic_split(m, k=k, n=n), f"systematic: first {k} of every {n} per class -> val"
            elif args.kfold is not None:
                out = assign_folds(m, args.kfold, seed=seed, group_aware=group_aware)
                how = f"{args.kfold}-fold" + (" group-aware" if group_aware else "") + f", seed {seed}"
            else:
                with held_warnings() as said:
                    out = stratified_split(m, args.ratios, seed=seed, group_aware=group_aware)
                _refuse_empty_splits(out, DEFAULT_NAMES[: len(args.ratios)], grouped=group_aware)
                give_warnings(said)
                how = ("group-aware " if group_aware else "") + "stratified " + "/".join(
                    f"{r:g}" for r in args.ratios) + f", seed {seed}"
        except ManifestError as e:
            if not bad:
                raise
            raise ManifestError(f"{e} (after leaving out the {len(bad)} unreadable file(s) listed above "
                                f"and in {listing})") from e
        path = save_split(out, args.out)
        if not bad and listing.is_file() and _is_listing(listing):
            listing.unlink()  # an earlier run's: every file of this split reads
            print(f"removed {listing}, an earlier run's listing of unreadable files (every file reads now)")
    except (ManifestError, OSError) as e:
        print(f"keras-species split: {e}", file=sys.stderr)
        return 2
    print(f"{out.summary()} ({how})")
    print(split_table(out, max_classes=SPLIT_TABLE_CLASSES))
    leaks = leakage(out)
    if out.groups is not None:
        print(f"groups on two sides: {len(leaks['groups'])}")
        if leaks["groups"]:  # --given, --systematic or --no-group-aware
            group, sides = next(iter(leaks["groups"].items()))
            fix = ("leave --no-group-aware out to keep each group on one side"
                   if not (args.given or args.systematic is not None) else
                   "a ratio split or --kfold keeps each group on one side")
            warnings.warn(
                f"{counted(len(leaks['groups']), 'group')} of the data sit on two sides of this split "
                f"(e.g. {group!r} in {' and '.join(sides)}): a model scored on images of groups it "
                f"trained on scores too well; {fix}",
                stacklevel=2,
            )
    _warn_name_ids(out, args)
    if leaks["paths"]:
        print(f"files on two sides: {len(leaks['paths'])}")
    if bad:
        print(f"left out {len(bad)} unreadable file(s): listed in {listing}")
    print(f"wrote {path}")
    return 0
