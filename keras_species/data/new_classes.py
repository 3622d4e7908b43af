"""Adding classes from another source to a split data set (R2's "10th class with few images").

R2 adds a tenth class from another source (171 training, 34 test images) to a nine-class data set
and retrains. To compare the old classes before and after, their split must not move: the new
class's images are split on their own, by the same ratios, and appended; every image that was in
a split stays there.

- :func:`load_class_dirs` reads the new images: a folder of images is one class named after the
  folder; a folder of class subfolders is read by ``sources.from_folder``.
- :func:`merge_for_audit` puts the loaded data and the new images in one manifest, so that one
  audit and one cleaning cover both: an image of a new class that is byte-identical to one of an
  existing class is a duplicate group with conflicting labels like any other, and a corrupt new
  image is dropped like any other. :func:`separate_added` takes the cleaned result apart again.
- :func:`add_classes` merges them into a split manifest (``Manifest.merge``: old classes keep their
  indices, new ones are appended) and splits only the new rows (``splits.stratified_split``, so
  the small-class rules and the group-aware option are the library's).

Example:
    >>> from keras_species.data import audit, sources, splits
    >>> new = load_class_dirs(["extra/zebrasoma_flavescens"])           # doctest: +SKIP
    >>> both = merge_for_audit(sources.load("demo"), new)               # doctest: +SKIP
    >>> both, dropped = audit.clean(both, audit.audit(both, "runs/audit"))  # doctest: +SKIP
    >>> base, new = separate_added(both, new.class_names)               # doctest: +SKIP
    >>> base = splits.stratified_split(base, seed=0)                    # doctest: +SKIP
    >>> m = add_classes(base, new, ratios=(0.7, 0.15, 0.15), seed=0)    # doctest: +SKIP
    >>> m.class_names[-1]                                               # doctest: +SKIP
    'zebrasoma_flavescens'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_species.data import sources, splits
from keras_species.data.images import is_image_file
from keras_species.data.manifest import Manifest, ManifestError

__all__ = ["load_class_dirs", "merge_for_audit", "separate_added", "add_classes"]


def _one_dir(path: Path, group_regex: str | None) -> Manifest:
    if not path.is_dir():
        raise ManifestError(
            f"--add-class {path}: not a folder; give a folder of the new class's images (its "
            "name is the class name) or a folder with one subfolder per new class"
        )
    direct = sorted(
        str(p.absolute()) for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and is_image_file(p)
    )
    if not direct:
        return sources.from_folder(path, group_regex=group_regex)
    groups = sources.groups_from_regex(direct, group_regex) if group_regex else None
    return Manifest(direct, np.zeros(len(direct), np.int64), [path.name], groups=groups,
                    source=str(path))


def load_class_dirs(
    dirs: Sequence[str | os.PathLike], *, group_regex: str | None = None
) -> Manifest:
    """Read the images of one or more new classes.

    Args:
        dirs: folders; a folder holding image files is one class named after the folder, a
            folder of subfolders holds one class per subfolder.
        group_regex: regex of the group id in file names (e.g. tracking ids); without it every
            image is its own group.

    Returns:
        A single-label Manifest of the new classes, groups filled.

    Raises:
        ManifestError: a folder is missing, holds no images, or two folders name the same class.

    Example:
        >>> load_class_dirs(["extra/zebrasoma"]).class_names   # doctest: +SKIP
        ['zebrasoma']
    """
    if not dirs:
        raise ManifestError("no folders of new classes given")
    merged: Manifest | None = None
    for d in dirs:
        m = _one_dir(Path(d).expanduser(), group_regex)
        if m.groups is None:
            m.groups = list(m.paths)
        if merged is not None:
            clash = sorted(set(m.class_names) & set(merged.class_names))
            if clash:
                raise ManifestError(f"classes {clash} come from more than one --add-class folder")
            merged = merged.merge(m)
        else:
            merged = m
    return merged


def _check_new(base: Manifest, new: Manifest) -> None:
    """Refuse new classes that cannot be added to ``base`` (the rules of :func:`add_classes`)."""
    if new.multilabel or base.multilabel:
        raise ManifestError("add_classes merges single-label data only")
    if len(new) == 0:
        raise ManifestError(
            f"no image of the new classes {list(new.class_names)} is left (were they all dropped "
            "by cleaning? see the audit's corrupt files and the drop list)"
        )
    if not new.labelled_mask.all():
        raise ManifestError("the new classes' manifest must hold labelled images")
    clash = sorted(set(new.class_names) & set(base.class_names))
    if clash:
        raise ManifestError(
            f"{clash} already are classes of the data; --add-class adds new classes only "
            "(rename the folder if it is a different class)"
        )


def _groups_like(base: Manifest, new: Manifest) -> Manifest:
    """A copy of ``new`` whose groups fit ``base``'s: none when ``base`` has none, else each
    new image without a group id is its own group."""
    new = new.subset(np.arange(len(new)))
    if base.groups is None:
        new.groups = None  # the result has groups only when the base data had them
    elif new.groups is None:
        new.groups = list(new.paths)
    return new


def merge_for_audit(base: Manifest, new: Manifest) -> Manifest:
    """The loaded data and the new classes' images in one manifest, for one audit and one cleaning.

    Run :func:`~keras_species.data.audit.audit` and :func:`~keras_species.data.audit.clean` on the
    result, not on ``base`` alone: then an image of a new class that is byte-identical to one of
    an existing class shows as a duplicate group with conflicting labels, and corrupt new images
    are listed and dropped, like those of the data itself. :func:`separate_added` then takes the
    cleaned manifest apart again (``base`` is split, the new images are added by
    :func:`add_classes`).

    Args:
        base: the loaded data (split or not); its rows come first and keep their class indices,
            splits and groups.
        new: images of classes that ``base`` does not have (:func:`load_class_dirs`).

    Returns:
        ``base.merge(new)`` with ``base``'s ``extra``; the new rows have no split (``""`` when
        ``base`` has splits) and groups only when ``base`` has groups.

    Raises:
        ManifestError: ``new`` is multi-label, unlabelled or empty, or a new class already exists
            in ``base``.

    Example:
        >>> both = merge_for_audit(base, load_class_dirs(["extra/zander"]))  # doctest: +SKIP
        >>> both.class_names[-1]                                             # doctest: +SKIP
        'zander'
    """
    _check_new(base, new)
    new = _groups_like(base, new)
    new.splits = None
    merged = base.merge(new)
    merged.extra = dict(base.extra)
    return merged


def separate_added(merged: Manifest, added: Sequence[str]) -> tuple[Manifest, Manifest]:
    """Take a :func:`merge_for_audit` manifest (audited and cleaned) apart again.

    Args:
        merged: the merged manifest, after :func:`~keras_species.data.audit.clean`.
        added: the new classes' names (``new.class_names``).

    Returns:
        ``(base, new)``: the rows of the other classes, with those classes only (in their order,
        with their splits and groups), and the rows of ``added``, without splits; both without
        the images cleaning dropped.

    Raises:
        ManifestError: a name of ``added`` is not a class of ``merged``.

    Example:
        >>> base, new = separate_added(cleaned, ["zander"])  # doctest: +SKIP
        >>> new.class_names                                   # doctest: +SKIP
        ['zander']
    """
    added = list(added)
    base = merged.select_classes([c for c in merged.class_names if c not in added])
    new = merged.select_classes(added)
    new.splits = None
    return base, new


def add_classes(
    base: Manifest,
    new: Manifest,
    *,
    ratios: Sequence[float] = splits.DEFAULT_RATIOS,
    seed: int = 0,
    group_aware: bool = False,
    names: Sequence[str] = splits.DEFAULT_NAMES,
) -> Manifest:
    """Append the new classes' images to a split manifest, splitting only them.

    Args:
        base: the split manifest (``splits`` filled); its rows keep their split.
        new: images of classes that ``base`` does not have (:func:`load_class_dirs`).
        ratios: split ratios of the new images (those of ``base``'s split).
        seed: seed of the new images' split.
        group_aware: keep each group of the new images on one side.
        names: split names, in the order of ``ratios``.

    Returns:
        ``base.merge(new)`` with splits: ``base``'s unchanged, the new rows split per class by
        ``ratios`` (a class with fewer images than splits goes wholly to the first split).

    Raises:
        ManifestError: ``base`` has no split, ``new`` is multi-label or unlabelled, or a new
            class already exists in ``base``.

    Example:
        >>> m = add_classes(base, new, ratios=(0.8, 0.2), names=("train", "test"))  # doctest: +SKIP
    """
    if base.splits is None:
        raise ManifestError("add_classes needs a split base manifest: split it first")
    _check_new(base, new)
    if group_aware and base.groups is None:
        raise ManifestError("group_aware=True needs group ids in the base manifest")
    merged = base.merge(_groups_like(base, new))
    n_old = len(base)
    # Split the merged data (one call, so the library's per-class rules and group handling apply)
    # and keep that split for the new rows only; a new single class cannot be split alone.
    fresh = splits.stratified_split(merged, ratios, seed=seed, group_aware=group_aware, names=names)
    return merged.with_splits(list(base.splits) + list(fresh.splits[n_old:]))
