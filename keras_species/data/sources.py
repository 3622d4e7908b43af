"""Readers that turn an image collection into a :class:`~keras_species.data.manifest.Manifest`.

Sources: a folder of class subfolders (:func:`from_folder`), a CSV with a path column and a label
column, a ``;``-separated label-set column or one 0/1 column per class (:func:`from_csv`), an
iNaturalist/COCO-style JSON (:func:`from_coco_json`), a text list of image paths, one per line,
without labels (:func:`from_path_list`), a saved manifest, or the embedded demo.
:func:`load` picks the reader from what it is given. Every reader returns absolute paths; problems
with the data raise :class:`ManifestError` naming the file or value and the fix, and harmless
oddities (skipped files, duplicate rows, a single class) are reported with ``warnings.warn``.

Example:
    >>> from keras_species.data import sources
    >>> m = sources.load("demo")
    >>> m.summary()
    '300 images, 6 classes (single-label)'
"""

from __future__ import annotations

import csv
import json
import ntpath
import os
import re
import sys
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from keras_species.data.manifest import (
    UNLABELLED,
    URL_START,
    Manifest,
    ManifestError,
    counted,
    joined_path,
    manifest_csv_header,
    same_file_key,
)
from keras_species.data.text import count_outside_quotes, read_text, split_lines

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
"""File extensions read as images (case-insensitive)."""

PATH_COLUMNS = ("path", "filepath", "file_path", "filename", "file_name", "file", "image", "image_path")
LIST_EXTENSIONS = (".txt", ".lst")
"""A text list of image paths, one per line (a ``.txt`` whose first line names a path column is a
CSV: :func:`is_path_list`)."""
LABEL_COLUMNS = ("label", "class", "species", "category")
LABELSET_COLUMNS = ("labels", "tags")
GROUP_COLUMNS = ("group", "group_id")
"""Column names read as group ids when ``group_col`` is not given (any case)."""
SPLIT_ALIASES = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "development": "val",
    "test": "test", "testing": "test", "tst": "test",
}
_SHOW = 5  # how many offending items an error message lists


def normalise_split_name(name: str) -> str:
    """Map split spellings to ``train``/``val``/``test`` (others are kept, lower-cased).

    Args:
        name: a split name as written in a CSV (``"Validation"``, ``"valid"``, ``"dev"``...).

    Returns:
        ``"train"``, ``"val"``, ``"test"``, or the stripped lower-case name.

    Example:
        >>> normalise_split_name(" Valid "), normalise_split_name("fold3")
        ('val', 'fold3')
    """
    key = str(name).strip().lower()
    return SPLIT_ALIASES.get(key, key)


def groups_from_regex(paths: Sequence[str], regex: str) -> list[str]:
    """Group id per path from a regex searched in the file name.

    The first capture group is the id (the whole match when the regex has none). A file name that
    does not match, or whose id comes out empty (an optional group), becomes its own group (its
    path), with one warning giving the count. A regex that gives no file name an id is refused:
    it would group nothing, and is most likely mistyped.

    Args:
        paths: file paths.
        regex: e.g. ``r"fish_(\\d+)_"`` for Fish4Knowledge tracking ids.

    Returns:
        One group id string per path.

    Raises:
        ManifestError: ``regex`` is not a valid regular expression, or gives no file name an id.

    Example:
        >>> groups_from_regex(["a/fish_12_3.png", "b/fish_12_9.png"], r"fish_(\\d+)_")
        ['12', '12']
    """
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise ManifestError(f"--group-regex '{regex}' (group_regex=) is not a valid regular "
                            f"expression: {e}") from e
    groups = []
    matched = 0
    for p in paths:
        match = pattern.search(os.path.basename(p))
        matched += match is not None
        groups.append((match.group(1) if pattern.groups else match.group(0)) if match else None)
    if paths and not any(groups):  # every file its own group: groups would not hold anything
        what = "matched none" if not matched else "gave an empty group id for each"
        names = [os.path.basename(p) for p in paths[:2]]
        raise ManifestError(
            f"--group-regex '{regex}' (group_regex=) {what} of the {len(paths)} file names (e.g. "
            f"{', '.join(names)}), so each file would be its own group and images of one group "
            "could land in different splits: check the pattern against these names (a capture "
            r"group around the id: the shared fish4knowledge23 set needs 'fish_(\d+)_'), or "
            "leave it out to split file by file"
        )
    return _own_groups_where_empty(groups, paths, f"--group-regex '{regex}' (group_regex=) matched "
                                                  "no group in")


def _own_groups_where_empty(groups: Sequence[str | None], paths: Sequence[str], what: str) -> list[str]:
    """``groups`` with each empty or missing id replaced by the file's path (its own group), and
    one warning giving the count: files without an id must not all fall into one group."""
    misses = [p for g, p in zip(groups, paths) if not g]
    if misses:
        warnings.warn(
            f"{what} {len(misses)} of {len(paths)} file names (e.g. {_names(misses)}); each of "
            "those files is its own group",
            stacklevel=3,
        )
    return [g if g else p for g, p in zip(groups, paths)]


_WHOLE_NUMBER = re.compile(r"([+-]?\d+)(?:\.0+)?")
"""A whole number as a class id is written: ``7``, ``007``, or ``7.0`` (as pandas writes an id
column that has a gap, and spreadsheets a number-formatted one)."""


def _whole_number(name: str) -> int | None:
    """The whole number ``name`` writes (:data:`_WHOLE_NUMBER`), or None."""
    match = _WHOLE_NUMBER.fullmatch(name)
    return int(match.group(1)) if match else None


def class_order(names: Iterable[str]) -> list[str]:
    """Distinct class names in the order their indices take: sorted, numerically when every name
    is a whole number (class ids ``0, 1, 2, 10`` keep index = id order, not ``0, 1, 10, 2``;
    ``0.0, 1.0, 2.0, 10.0`` as pandas writes them too).

    Args:
        names: class names, repeats allowed.

    Returns:
        The distinct names, ordered.

    Example:
        >>> class_order(["10", "2", "0", "1", "2"]), class_order(["eel", "cod"])
        (['0', '1', '2', '10'], ['cod', 'eel'])
        >>> class_order(["10.0", "2.0", "1.0"])
        ['1.0', '2.0', '10.0']
    """
    distinct = set(names)
    numbers = {n: _whole_number(n) for n in distinct}
    if distinct and None not in numbers.values():
        return sorted(distinct, key=lambda n: (numbers[n], n))
    return sorted(distinct)


def _names(items: Iterable, n: int = _SHOW) -> str:
    items = list(items)
    text = ", ".join(repr(str(x)) for x in items[:n])
    return text + (f" and {len(items) - n} more" if len(items) > n else "")


_SYSTEM_NAMES = frozenset({"thumbs.db", "@eadir", "#recycle", "#snapshot", "$recycle.bin", "@recycle",
                           "@recently-snapshot", "system volume information"})
"""Names (lower case; compared in any case) that file systems and NAS boxes put in shared
folders: Windows' thumbnail cache and recycle bin (``$RECYCLE.BIN``, ``$Recycle.Bin``),
Synology's ``@eaDir`` (thumbnails of every image: resized copies, which would leak test images
into training), its recycle bin and snapshots, QNAP's ``@Recycle`` and ``@Recently-Snapshot``."""


def is_hidden(name: str) -> bool:
    """Whether the folder readers pass over a file or folder of this name: hidden (``.DS_Store``,
    ``.thumbnails``), ``__MACOSX`` (a macOS zip's resource forks), ``Thumbs.db`` and the other
    system folders of :data:`_SYSTEM_NAMES` (``@eaDir``, ``$RECYCLE.BIN``...).

    Args:
        name: a file or folder name (not a path).

    Returns:
        True when it is passed over.

    Example:
        >>> [is_hidden(n) for n in (".DS_Store", "__MACOSX", "Thumbs.db", "cod")]
        [True, True, True, False]
    """
    return name.startswith(".") or name.startswith("__MACOSX") or name.lower() in _SYSTEM_NAMES


def _overlaps(real: str, roots: Iterable[str]) -> bool:
    """Whether ``real`` equals, lies inside or contains one of ``roots`` (real paths)."""
    return any(real == r or real.startswith(r + os.sep) or r.startswith(real + os.sep) for r in roots)


def walk_into(dirpath: str, dirnames: list[str], read: list[str], roots: int,
              refused: list[str]) -> None:
    """Keep in ``dirnames`` (an ``os.walk(..., followlinks=True)`` step) the subfolders to walk.

    A folder link is followed unless it leads to or into a folder read already (``read``: real
    paths), or to a folder above one of the first ``roots`` of them (the data folder, and the
    class folders reached through links: a loop, or another class's images); those go to
    ``refused``. A link that leads *above* a link followed earlier is followed, and the folder
    of that earlier link is passed over when the walk reaches it again: refusing the whole link
    (``a -> X/sub`` then ``b -> X``) left X's other images out. A plain folder is always walked
    unless it is a folder read already through a link. Written by hand: ``os.walk`` follows
    links blindly or not at all.

    Args:
        dirpath: the folder of this step.
        dirnames: its subfolders (visible ones), edited in place.
        read: real paths read so far (the data folder first); links followed are appended.
        roots: how many of ``read``'s first entries may not lie inside a followed link.
        refused: where the links not followed are appended.
    """
    keep = []
    for d in dirnames:
        path = os.path.join(dirpath, d)
        if os.path.islink(path):
            real = os.path.realpath(path)
            if (any(real == r or real.startswith(r + os.sep) for r in read)
                    or any(r.startswith(real + os.sep) for r in read[:roots])):
                refused.append(path)
                continue
            read.append(real)
        elif len(read) > roots and os.path.realpath(path) in read[roots:]:
            continue  # its images were read through a link already
        keep.append(d)
    dirnames[:] = keep


def is_utf8_name(path: str) -> bool:
    r"""Whether a path from the file system is valid UTF-8 (Python keeps the bytes of one that is
    not as surrogates, which TensorFlow, CSV and JSON files cannot take).

    Args:
        path: a path as ``os.listdir``/``os.walk`` give it.

    Returns:
        False for a name such as Latin-1 ``caf\xe9.jpg``.

    Example:
        >>> is_utf8_name("café.jpg"), is_utf8_name(os.fsdecode(b"caf\xe9.jpg"))
        (True, False)
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(path: str) -> str:
    r"""A path for messages, its bytes that are not UTF-8 written as ``\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _warn_not_utf8(names: Sequence[str], where: str) -> None:
    if names and sys.getfilesystemencoding().lower().replace("-", "") != "utf8":
        # the names may well be UTF-8: Python reads them as ASCII (a C locale with PYTHONUTF8=0),
        # and convmv, as advised, would encode them twice
        warnings.warn(
            f"left out {counted(len(names), 'file or folder', 'files or folders')} under {where} whose "
            f"names Python cannot read as text here: it reads file names as "
            f"{sys.getfilesystemencoding()} (a C locale with PYTHONUTF8=0): set PYTHONUTF8=1 or "
            "LANG=C.UTF-8 and run again",
            stacklevel=3,
        )
        return
    if names:
        shown = ", ".join(f"'{shown_name(n)}'" for n in names[:3])
        warnings.warn(
            f"left out {counted(len(names), 'file or folder', 'files or folders')} under {where} whose "
            f"names are not valid UTF-8 (e.g. {shown}): "
            "rename them in UTF-8, e.g. convmv -f latin1 -t utf-8 -r --notest FOLDER (the names "
            "must travel into TensorFlow and the CSV and JSON files of a run)",
            stacklevel=3,
        )


def _image_files(folder: Path, exts: tuple[str, ...], read: list[str], not_utf8: list[str],
                 unreadable: list[str]) -> tuple[list[str], list[str], int, list[str]]:
    """Image files under ``folder`` (recursive, links followed), the other files, hidden count,
    and the folder links left out because they lead to a folder that is read anyway or whose
    images would be read twice: ``read`` holds the real paths of the data folder (every plain
    class folder lies inside it), of the class folders reached through a link, and of each folder
    link followed so far (it grows); a link that leads to, into or above one of them is not
    followed (also a loop, which ``os.walk`` would follow until the path is too long). A folder
    that cannot be listed (no permission) is appended to ``unreadable``, with the reason.

    The per-file tests are spelled out (no ``os.path.join``/``splitext`` calls): listing is
    part of every first epoch, and those calls were most of its cost on large folders.
    """
    found: list[str] = []
    skipped: list[str] = []
    loops: list[str] = []
    n_hidden = 0
    roots = len(read)  # the data folder and the class folders reached through links

    def cannot_list(error: OSError) -> None:
        unreadable.append(f"{error.filename} ({error.strerror or error})")

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=cannot_list):
        n_hidden += sum(is_hidden(d) for d in dirnames)
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        prefix = dirpath + os.sep
        if not all(d.isascii() or is_utf8_name(d) for d in dirnames):
            not_utf8.extend(prefix + d for d in dirnames if not is_utf8_name(d))
            dirnames[:] = [d for d in dirnames if is_utf8_name(d)]
        walk_into(dirpath, dirnames, read, roots, loops)
        for f in filenames:
            if is_hidden(f):
                n_hidden += 1
                continue
            if not f.isascii() and not is_utf8_name(prefix + f):
                not_utf8.append(prefix + f)
                continue
            dot = f.rfind(".")  # -1: no extension (a leading dot was skipped as hidden above)
            (found if dot > 0 and f[dot:].lower() in exts else skipped).append(prefix + f)
    found.sort()
    return found, skipped, n_hidden, loops


def _warn_walk_problems(loops: list[str], unreadable: list[str]) -> None:
    """One warning for the folder links not followed, one for the folders that could not be
    listed (their images are left out: before, without a word)."""
    if loops:
        warnings.warn(
            f"did not follow {len(loops)} folder link(s) that lead into the data folder or to a "
            f"folder read already (a loop, another class folder, a folder linked twice): "
            f"{_names(loops, 3)}; their images would be read twice, under the wrong class",
            stacklevel=3,
        )
    if unreadable:
        warnings.warn(
            f"could not list {counted(len(unreadable), 'folder')}: {_names(unreadable, 3)}; the "
            "images in them are left out: give this user read and execute permission on them "
            "(chmod u+rx)",
            stacklevel=3,
        )


HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis")
"""The ``ftyp`` brands of HEIC files (an iPhone's photos), which PIL reads only with a plugin. The
generic HEIF brands ``mif1``/``msf1`` count only beside one of them: AVIF files carry them too."""
_HEIC_HOW = "e.g. heif-convert; an iPhone saves JPEGs with Settings > Camera > Formats > Most Compatible"
HEIC_REASON = "a HEIC/HEIF photo (an iPhone's format), which PIL cannot read here"
"""What a HEIC/HEIF file is, for the reason an unreadable one is given."""
HEIC_ADVICE = f"convert it to JPEG ({_HEIC_HOW}), or leave it out"
"""What to do with a HEIC/HEIF file."""


def heic_hint(names: Sequence[str]) -> str:
    """A clause for a message that lists files skipped for their extension, when some are
    ``.heic``/``.heif`` photos: they are photos in a format PIL here cannot read, not junk.

    Args:
        names: the skipped files' names or paths.

    Returns:
        ``"; the .heic/.heif files are HEIC photos ..."`` or ``""``.

    Example:
        >>> heic_hint(["IMG_0001.HEIC"]).startswith("; 1 .heic/.heif file")
        True
    """
    n = sum(1 for name in names if os.fspath(name).lower().endswith((".heic", ".heif")))
    if not n:
        return ""
    return (f"; {n} .heic/.heif file(s) among them: HEIC photos (an iPhone's format), which PIL "
            f"cannot read here: convert them to JPEG ({_HEIC_HOW})")


def image_files(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Every image file under ``folder`` (recursive), by the folder readers' rules, sorted.

    Hidden and system files and folders are passed over (:func:`is_hidden`), folder links are
    followed except those that lead back into the folder (a loop), and names that are not UTF-8
    and folders that cannot be listed are left out; each of those is named in a warning. For a
    pool of unlabelled images; :func:`from_folder` reads class folders.

    Args:
        folder: the folder.
        extensions: the image extensions (lower case, with the dot).

    Returns:
        Absolute paths.

    Example:
        >>> image_files("unlabelled_fish/")[:1]   # doctest: +SKIP
        ['/data/unlabelled_fish/batch1/fish_1_0.png']
    """
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(folder))))
    not_utf8: list[str] = []
    unreadable: list[str] = []
    exts = _norm_exts(extensions)
    found, _, _, loops = _image_files(root, exts, [os.path.realpath(root)], not_utf8, unreadable)
    _warn_not_utf8(not_utf8, str(root))
    _warn_walk_problems(loops, unreadable)
    return found


def _wrapper_folder(folder: Path, exts: tuple[str, ...]) -> Path | None:
    """``folder`` when it holds no image file of its own and at least two subfolders (a zip's
    wrapper folder read as the one class), else ``None``."""
    try:
        direct = [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return None
    has_images = any(n.rfind(".") > 0 and n[n.rfind("."):].lower() in exts for n in direct)
    return folder if not has_images and len(_subfolders(folder)) >= 2 else None


def _subfolders(folder: Path) -> list[str]:
    """The folders in ``folder`` that the readers look into (not hidden), sorted."""
    try:
        return sorted(e.name for e in os.scandir(folder) if not is_hidden(e.name) and e.is_dir())
    except OSError:
        return []


def split_folder_layout(root: str | os.PathLike, extensions: Iterable[str] | None = None) -> bool:
    """Whether ``root`` is laid out by split first: ``root/train/<class>/...``,
    ``root/val/<class>/...`` (as torchvision's ``ImageFolder`` data sets and many downloads ship).

    True when some subfolders of ``root`` are named for a split (``train``, ``val``/``valid``/
    ``validation``, ``test``, ... in any case: :data:`SPLIT_ALIASES`), at least one of them holds
    subfolders (the classes), and no other subfolder holds an image (a ``models/`` or ``docs/``
    folder beside the splits turned them into two classes named ``train`` and ``val``).

    Args:
        root: a folder.
        extensions: image extensions (default :data:`IMAGE_EXTENSIONS`).

    Returns:
        Whether :func:`from_folder` reads it as split folders of class folders.

    Example:
        >>> split_folder_layout("hymenoptera_data")   # train/ants, train/bees, val/ants, ...  # doctest: +SKIP
        True
    """
    root = Path(root)
    tops = _subfolders(root)
    named = [t for t in tops if _is_split_name(t)]
    if not any(_subfolders(root / t) for t in named):
        return False
    exts = _norm_exts(extensions)
    return not any(_holds_image(root / t, exts) for t in tops if t not in named)


def _holds_image(folder: Path, exts: tuple[str, ...]) -> bool:
    """Whether ``folder`` (a subfolder of the data folder) holds an image file (by extension, not
    hidden) that the readers would read: folder links are followed as they follow them, none
    that leads to, into or above the data folder or a folder already followed (a loop ends; an
    ``extras/best -> ../train/ants`` is a second path to images read anyway, not images of its
    own)."""
    read = [os.path.realpath(folder.parent)]
    top = os.path.realpath(folder)
    if top != os.path.join(read[0], folder.name):  # the folder itself is a link
        if _overlaps(top, read):
            return False
        read.append(top)
    roots = len(read)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        if any(not is_hidden(f) and os.path.splitext(f)[1].lower() in exts for f in filenames):
            return True
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]
        walk_into(dirpath, dirnames, read, roots, [])
    return False


def _is_split_name(name: str) -> bool:
    return name.strip().lower() in SPLIT_ALIASES


def _all_split_names(names: Sequence[str]) -> bool:
    """Whether there are folder names and each names a split (:data:`SPLIT_ALIASES`, any case)."""
    return bool(names) and all(_is_split_name(n) for n in names)


def _norm_exts(extensions: Iterable[str] | None) -> tuple[str, ...]:
    if extensions is None:
        return IMAGE_EXTENSIONS
    if isinstance(extensions, str):  # "png" is one extension, not the letters p, n, g
        extensions = [extensions]
    return tuple(("." + e.lower().lstrip(".")) for e in extensions)


# ---------------------------------------------------------------------------------- folders
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def _top_images(folder: Path, exts: tuple[str, ...]) -> list[str]:
    """Names of the image files directly in ``folder`` (not hidden), sorted."""
    return sorted(e.name for e in os.scandir(folder)
                  if not is_hidden(e.name) and e.is_file() and os.path.splitext(e.name)[1].lower() in exts)


def _warn_top_images(names: Sequence[str], where: str) -> None:
    if names:
        warnings.warn(
            f"{counted(len(names), 'image')} at {where} {'is' if len(names) == 1 else 'are'} "
            f"ignored (e.g. {_names(names, 3)}): only images inside class subfolders are read",
            stacklevel=3,
        )


def _distinct_class_folders(root: Path, folders: list[tuple[str, Path, str | None]], loops: list[str]
                            ) -> tuple[list[tuple[str, Path, str | None]], list[str]]:
    """The class folders to read, leaving out (into ``loops``) each one reached through a link
    that leads into the data folder or to a folder already kept (``cod2 -> cod``, ``all -> .``):
    its images would be read twice, under the wrong class. Also returns the real paths read (the
    data folder and the linked class folders kept), for :func:`_image_files`."""
    root_real = os.path.realpath(root)
    read = [root_real]
    kept = []
    for name, folder, split in folders:
        real = os.path.realpath(folder)
        if real != os.path.join(root_real, os.path.relpath(folder, root)):  # a link on the way
            if _overlaps(real, read):
                loops.append(str(folder))
                continue
            read.append(real)
        kept.append((name, folder, split))
    return kept, read


def from_folder(
    root: str | os.PathLike,
    *,
    group_regex: str | None = None,
    extensions: Iterable[str] | None = None,
) -> Manifest:
    """Read a folder with one subfolder per class (``root/<class>/**/<image>``).

    Class names are the subfolder names, sorted (numerically when all are whole numbers:
    :func:`class_order`); images are found recursively inside each class
    folder. Hidden files and folders are ignored; files whose extension is not an image extension
    are skipped with one warning giving the count (``manifest.extra["skipped"]`` lists them).
    Class folders without images are warned about and are not classes. A single class is allowed
    (e.g. an unlabelled pool) with a warning; splitting and training need two or more.

    A folder laid out by split first (``root/train/<class>/``, ``root/val/<class>/``, ...:
    :func:`split_folder_layout`) gives each image the split of its folder (``manifest.splits``,
    which ``split --given`` and a recipe's ``--split given``/``auto`` keep); its classes are the
    class folders of all splits together. A folder link that leads into the data folder, or to a
    folder read already, is not followed (its images would be read twice, under the wrong class),
    with one warning naming it.

    Args:
        root: the folder.
        group_regex: optional regex over the file name whose first group is the group id
            (``r"fish_(\\d+)_"`` for Fish4Knowledge tracking ids).
        extensions: image extensions to accept (default :data:`IMAGE_EXTENSIONS`).

    Returns:
        A single-label Manifest with absolute paths (and ``splits`` for a split layout).

    Raises:
        ManifestError: ``root`` is not a folder, has no class subfolders (e.g. the images sit at
            its top level), or no class folder holds an image.

    Example:
        >>> m = from_folder("data/fish", group_regex=r"fish_(\\d+)_")   # doctest: +SKIP
        >>> m.class_names                                              # doctest: +SKIP
        ['cod', 'eel']
    """
    root_path = Path(root).expanduser().absolute()
    if not root_path.is_dir():
        raise ManifestError(f"{root_path} is not a folder: give a folder with one subfolder per class")
    exts = _norm_exts(extensions)
    class_dirs = class_order(_subfolders(root_path))
    top_images = _top_images(root_path, exts)
    if not class_dirs:
        from keras_species.data.shards import shard_folder_problem  # lazy: shards imports sources

        shards = shard_folder_problem(root_path)
        if shards:
            raise ManifestError(shards)
        if top_images:
            raise ManifestError(
                f"{root_path} holds {counted(len(top_images), 'image')} at its top level (e.g. "
                f"{_names(top_images, 3)}) but no class subfolders: move each class's images into "
                f"its own subfolder ({root_path}/<class name>/...), or list them in a CSV with a path "
                "and a label column and give that CSV as the data (sources.from_csv)"
            )
        raise ManifestError(
            f"{root_path} has no class subfolders: put the images of each class in "
            f"{root_path}/<class name>/"
        )
    _warn_top_images(top_images, f"the top level of {root_path}")
    splits: list[str] | None = None
    if split_folder_layout(root_path, exts):  # root/train/<class>/..., root/val/<class>/...
        others = [d for d in class_dirs if not _is_split_name(d)]
        if others:
            warnings.warn(
                f"{root_path} is read as split folders ({_names([d for d in class_dirs if d not in others])}"
                f"); the folders beside them hold no images and are not read: {_names(others, 10)}",
                stacklevel=2,
            )
        split_dirs = sorted((d for d in class_dirs if d not in others),
                            key=lambda d: (_SPLIT_ORDER.get(normalise_split_name(d), 3), d))
        for d in split_dirs:
            _warn_top_images(_top_images(root_path / d, exts), f"the split folder {root_path / d}")
        folders = [(c, root_path / d / c, normalise_split_name(d))
                   for d in split_dirs for c in _subfolders(root_path / d)]
        class_dirs = class_order(c for c, _, _ in folders)
        rank = {c: i for i, c in enumerate(class_dirs)}
        folders.sort(key=lambda f: (rank[f[0]], _SPLIT_ORDER.get(f[2], 3)))
        splits = []
    else:
        folders = [(c, root_path / c, None) for c in class_dirs]
        named = [d for d in class_dirs if _is_split_name(d)]
        if _all_split_names(class_dirs):
            warnings.warn(
                f"the class folders of {root_path} are named like splits ({_names(class_dirs)}): "
                "they are read as classes; if they are splits, put each class's images in its own "
                f"subfolder ({root_path}/train/<class>/...), which is read as a given split",
                stacklevel=2,
            )
        elif any(_subfolders(root_path / d) for d in named):
            others = [d for d in class_dirs if d not in named]
            one, lone = len(named) == 1, len(others) == 1
            warnings.warn(
                f"the folder{'' if one else 's'} {_names(named)} of {root_path} {'is' if one else 'are'} "
                f"named like {'a split' if one else 'splits'} and hold{'s' if one else ''} subfolders "
                f"({_names(sorted({c for d in named for c in _subfolders(root_path / d)}), 5)}), but "
                f"{_names(others, 5)} beside {'it' if one else 'them'} {'holds' if lone else 'hold'} "
                f"images and {'is' if lone else 'are'} not named for a split, so every folder is read "
                f"as a class: if {_names(named)} {'is a split' if one else 'are splits'}, move "
                f"{_names(others, 5)} out of {root_path} (an unlabelled pool is given on its own), and "
                "the split folders' subfolders are read as the classes",
                stacklevel=2,
            )
    paths: list[str] = []
    labels: list[int] = []
    class_names: list[str] = []
    index: dict[str, int] = {}
    skipped: list[str] = []
    loops: list[str] = []
    n_hidden = 0
    not_utf8 = [str(f) for _, f, _ in folders if not is_utf8_name(str(f))]
    folders = [f for f in folders if is_utf8_name(str(f[1]))]
    folders, read = _distinct_class_folders(root_path, folders, loops)
    unreadable: list[str] = []
    for name, folder, split in folders:
        found, not_images, hidden, class_loops = _image_files(folder, exts, read, not_utf8, unreadable)
        loops.extend(class_loops)
        skipped.extend(not_images)
        n_hidden += hidden
        if not found:
            continue
        if name not in index:
            index[name] = len(class_names)
            class_names.append(name)
        paths.extend(found)
        labels.extend([index[name]] * len(found))
        if splits is not None:
            splits.extend([split] * len(found))
    order = class_order(class_names)  # a split layout may meet its classes out of order
    new_index = {c: i for i, c in enumerate(order)}
    relabel = np.array([new_index[c] for c in class_names], np.int64)
    labels = relabel[np.asarray(labels, np.int64)] if labels else []
    class_names = order
    empty = [c for c in class_order(name for name, _, _ in folders) if c not in new_index]
    if skipped:
        warnings.warn(
            f"skipped {counted(len(skipped), 'non-image file')} under {root_path} (extension not in "
            f"{', '.join(exts)}), e.g. {_names(skipped, 3)}" + heic_hint(skipped)
            + (f"; also ignored {n_hidden} hidden files/folders" if n_hidden else ""),
            stacklevel=2,
        )
    _warn_not_utf8(not_utf8, str(root_path))
    _warn_walk_problems(loops, unreadable)
    _warn_spelling_variants(str(root_path), class_names)
    if empty:
        warnings.warn(
            f"class folders without images are not classes: {_names(empty, 20)} (in {root_path})",
            stacklevel=2,
        )
    if not class_names:
        raise ManifestError(
            f"no images found in the class folders of {root_path} ({_names(class_dirs, 10)}); "
            f"accepted extensions are {', '.join(exts)} (others only with extensions=[...] in "
            "Python; the commands have no flag for it: convert such files to one of these)"
        )
    if len(class_names) == 1:
        wrapper = _wrapper_folder(root_path / class_names[0], exts)
        warnings.warn(
            f"{root_path} has a single class ({class_names[0]!r}): fine for an unlabelled pool, "
            "but splitting and training a classifier need at least 2 classes"
            + (f"; {wrapper} holds no image of its own, only subfolders of images "
               f"({_names(_subfolders(wrapper), 5)}): if they are the classes (a zip's wrapper "
               f"folder), give {wrapper} as the data" if wrapper else ""),
            stacklevel=2,
        )
    groups = groups_from_regex(paths, group_regex) if group_regex else None
    m = Manifest(paths, np.array(labels, np.int64), class_names, groups=groups, splits=splits,
                 source=str(root_path))
    m.extra["skipped"] = skipped
    m.extra["empty_classes"] = empty
    return m


# ---------------------------------------------------------------------------------- CSV
def _read_csv_rows(path: str, text: str | None = None
                   ) -> tuple[list[str], list[dict[str, str]], int, list[int]]:
    """Header and rows of a CSV (leading ``#`` comment lines skipped, also a quoted ``"#...``
    line as a spreadsheet saves one; Excel's ``sep=;`` first line sets the delimiter), the line
    each row starts on, and the lines of the rows with fewer fields than the header (their
    missing cells read as "").
    ``text`` is the file's text when the caller has read it already."""
    # line ends kept: a quoted cell that holds a line break keeps it (a file name with one)
    lines = split_lines(read_text(path) if text is None else text, keepends=True)
    skip = _after_comments(lines, 0)
    delimiter = _excel_separator(lines[skip]) if skip < len(lines) else None
    if delimiter is not None:
        skip = _after_comments(lines, skip + 1)
    if skip >= len(lines):
        raise ManifestError(_no_header_problem(path, lines))
    delimiter = delimiter or _header_delimiter(lines[skip])
    reader = csv.reader(lines[skip:], delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise ManifestError(f"{path}: column {twice[0]!r} appears more than once in the header; "
                            "rename or remove the copies")
    rows = []
    row_lines = []  # the line each row starts on (a quoted cell may span lines)
    too_long, short = [], []
    last = reader.line_num
    for values in reader:
        row_lines.append(skip + last + 1)
        last = reader.line_num
        if not any(v.strip() for v in values):
            rows.append(None)
            continue
        if any(v.strip() for v in values[len(header):]):
            too_long.append(skip + reader.line_num)
        elif len(values) < len(header):
            short.append(skip + reader.line_num)
        rows.append({h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)})
    if too_long:
        raise ManifestError(
            f"{path}: {len(too_long)} row(s) hold more fields than the header's {len(header)} "
            f"columns (line {', line '.join(map(str, too_long[:_SHOW]))}): a path or label that "
            f"contains {delimiter!r} must be quoted, as in \"a{delimiter} b.jpg\""
        )
    return header, rows, row_lines, short


def _after_comments(lines: Sequence[str], start: int) -> int:
    """The index of the first line from ``start`` on that is neither blank nor a ``#`` comment
    (``"#`` too: a spreadsheet quotes a comment line that holds a quote or a comma)."""
    while start < len(lines) and (lines[start].startswith(("#", '"#')) or not lines[start].strip()):
        start += 1
    return start


def _excel_separator(line: str) -> str | None:
    """The delimiter an Excel ``sep=;`` line names (Excel writes it first to say which one the
    file uses), or None when ``line`` is not one."""
    match = re.fullmatch(r'"?sep=([^"\r\n])"?[ \t]*\r?\n?', line, re.IGNORECASE)
    return match.group(1) if match else None


_DELIMITERS = (",", ";", "\t")


def _header_delimiter(line: str) -> str:
    """The delimiter of a CSV whose header is ``line``: of ``,``, ``;`` and tab, the one that
    gives a known path column (:data:`PATH_COLUMNS`; ``path;label;Länge, cm`` is ``;``-separated),
    else the one ``line`` holds most often outside quotes (``,`` when it holds none)."""
    counts = {d: count_outside_quotes(line, d) for d in _DELIMITERS}
    naming = [d for d in _DELIMITERS if counts[d] and any(
        _column_key(cell) in PATH_COLUMNS for cell in next(csv.reader([line], delimiter=d), []))]
    return max(naming or _DELIMITERS, key=lambda d: counts[d])  # the first of the most: "," on a tie


def _column_key(name: str) -> str:
    """How a CSV column name is matched against the names the reader knows (:data:`PATH_COLUMNS`,
    :data:`LABEL_COLUMNS`...): any case, with spaces and hyphens as ``_``.

    Args:
        name: a header cell.

    Returns:
        The key.

    Example:
        >>> _column_key(" Image Path "), _column_key("file-name")
        ('image_path', 'file_name')
    """
    return re.sub(r"[\s-]+", "_", name.strip().lower())


_CSV_LAYOUT = ("a CSV holds a header row naming its columns (e.g. path,label) and one row per "
               "image below it")


def _no_header_problem(path: str, lines: Sequence[str]) -> str:
    """Why a CSV without a header row cannot be read: it is empty (0 bytes: a copy or an export
    that failed), or it holds only blank lines and ``#`` comments; either way, what it should
    hold."""
    try:
        empty = os.path.getsize(path) == 0
    except OSError:  # text given by a caller for a file gone since: judge by the text
        empty = not lines
    if empty:
        return (f"{path} is empty (0 bytes): {_CSV_LAYOUT} (a failed export or copy? write or "
                "copy it again)")
    what = "blank lines and # comments" if any(ln.strip() for ln in lines) else "blank lines"
    return f"{path} has no header row (it holds only {what}): {_CSV_LAYOUT}"


def _by_key(header: Iterable[str]) -> dict[str, str]:
    """The columns of ``header`` by :func:`_column_key` (the first of each key)."""
    keyed: dict[str, str] = {}
    for h in header:
        keyed.setdefault(_column_key(h), h)
    return keyed


def _only_column(header: Sequence[str], column: str, what: str, path: str) -> str:
    """``column``, or, when another column of ``header`` has its name in another case or spelling
    (``Image Path`` and ``image_path``, ``label`` and ``Label``), the one spelled as the reader
    looks for it (``label``), with a warning naming the other; with none so spelled, refused (the
    reader took the first without a word, whatever the other held)."""
    same = [h for h in header if h != column and _column_key(h) == _column_key(column)]
    if not same:
        return column
    exact = [h for h in (column, *same) if h == _column_key(h)]
    if len(exact) == 1:
        others = ", ".join(repr(h) for h in (column, *same) if h != exact[0])
        warnings.warn(f"{path}: the {what} column is {exact[0]!r}; {others} (the same name in "
                      "another spelling) is not read", UserWarning, stacklevel=4)
        return exact[0]
    raise ManifestError(f"{path}: columns {column!r} and {same[0]!r} both read as the {what} "
                        "column (names match in any case, with spaces or hyphens): rename or "
                        "remove one of them")


def _find_column(header: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str,
                 path: str, required: bool = True) -> str | None:
    """The column named ``wanted`` (exactly, else in any case or spelling: :func:`_column_key`), or
    the first of ``candidates`` found; refused naming the columns when it is missing."""
    keyed = _by_key(header)
    if wanted is not None:
        if wanted in header:
            return wanted
        if _column_key(wanted) in keyed:
            return _only_column(header, keyed[_column_key(wanted)], what, path)
        raise ManifestError(f"{path} has no {what} column {wanted!r}; its columns are {list(header)}")
    for c in candidates:
        if c in keyed:
            return _only_column(header, keyed[c], what, path)
    if required:
        raise ManifestError(
            f"{path}: no {what} column found (looked for {', '.join(candidates)}); its columns are "
            f"{list(header)}: pass the column name ({what}_col=...)"
        )
    return None


def _number(text: str) -> float | None:
    """The number a cell writes (``1.00``; ``1,00`` with a decimal comma, as a ``;``-separated
    CSV from a European spreadsheet has it), or None."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _binary(value: str) -> int | None:
    """A 0/1 class cell's value: 1 for ``1``, ``1.00``, ``true``, ``yes``; 0 for ``0``,
    ``0.00``, ``false``, ``no`` and an empty cell; None for anything else (``2``, ``x``)."""
    v = value.strip().lower()
    if v in ("true", "yes"):
        return 1
    if v in ("false", "no", ""):
        return 0
    number = _number(v)
    return int(number) if number in (0, 1) else None


def _other_numbers_note(header: Sequence[str], rows: Sequence[dict[str, str]], line_of: Sequence[int],
                        used: set[str]) -> str:
    """What the message about missing class columns says of the columns that hold numbers, but
    not only 0 and 1 (``0.5``, ``2``): each with its first such line and value, or ``""``."""
    notes = []
    for h in (h for h in header if h not in used):
        numbers = [_number(r[h]) if r[h] else 0 for r in rows]  # an empty cell reads as 0
        other = [i for i, n in enumerate(numbers) if n not in (0, 1)]
        if other and None not in numbers:
            notes.append(f"{h!r} (line {line_of[other[0]]}: {rows[other[0]][h]!r})")
    if not notes:
        return ""
    one = len(notes) == 1
    return (f"; the column{'' if one else 's'} {', '.join(notes[:_SHOW])} hold{'s' if one else ''} "
            f"numbers other than 0 and 1, so {'it is' if one else 'they are'} not read as 0/1 class "
            f"column{'' if one else 's'} (if {'it is a class' if one else 'they are classes'}, write "
            "1 where the image has the class and 0 where not)")


MISSING_VALUE_MARKS = frozenset({"NA", "N/A", "n/a", "#N/A", "<NA>", "NaN", "nan", "-nan", "NULL",
                                 "null"})
"""Label cells that R (``NA``), pandas (``nan``, ``<NA>``), Excel (``#N/A``) and databases
(``NULL``) write for a missing value: read as the class they spell (``NA`` may be North America,
a site, a real class), with a warning (:func:`_warn_missing_value_marks`)."""


def _warn_missing_value_marks(path: str, column: str, cells: Sequence[str], line_of: Sequence[int],
                              allowed: Sequence[str] | None) -> None:
    """Warn when cells (or, in a tag-set column, tags) of a label column are missing-value marks
    (:data:`MISSING_VALUE_MARKS`): each is read as a class of that name, which is right for a
    class named ``NA`` and wrong for an image without a label. A mark ``allowed``
    (``class_names=``) lists is a class the user named: no warning.

    Stop 30 first read them as "no label", which took real classes named ``NA`` away (and ``-1``
    of binary data labelled -1/1); a warning loses nothing either way.
    """
    marks = MISSING_VALUE_MARKS - set(allowed or ())
    found = [i for i, c in enumerate(cells) if marks & {t.strip() for t in c.split(";")}]
    if not found:
        return
    values = list(dict.fromkeys(t.strip() for i in found for t in cells[i].split(";") if t.strip() in marks))
    one = len(found) == 1
    warnings.warn(
        f"{path}: {counted(len(found), 'row')} of column {column!r} hold{'s' if one else ''} "
        f"{' or '.join(map(repr, values))} (e.g. line {line_of[found[0]]}), read as a class of that "
        f"name; it is also how R, pandas, Excel and databases write a missing value: if these "
        "images have no label, leave their cells empty (an empty cell is no label)",
        stacklevel=3,
    )


def _warn_tag_sets_in_label_column(path: str, column: str, cells: Sequence[str],
                                   line_of: Sequence[int]) -> None:
    """Warn when cells of a single-label column look like tag sets (``cod;eel``): each is read
    as one class of its own."""
    sets = [i for i, c in enumerate(cells) if len([t for t in c.split(";") if t.strip()]) > 1]
    if sets:
        i = sets[0]
        warnings.warn(
            f"{path}: {counted(len(sets), 'label')} of the single-label column {column!r} look"
            f"{'s' if len(sets) == 1 else ''} like ';'-separated tag sets (e.g. line {line_of[i]}: "
            f"{cells[i]!r}), each read as one class of its own: for several labels per image "
            "(multi-label), name the column 'labels' or 'tags' (in Python, labels_col=; "
            "multilabel_resnet's --labels-col)",
            stacklevel=3,
        )


def _ends_with_line_end(text: str) -> bool:
    """Whether the last line of ``text`` (blanks after it aside) ends with a line end."""
    return text.rstrip(" \t").endswith(("\n", "\r"))


def _last_line_ended(text: str, lines: Sequence[int]) -> bool:
    """Whether the last entry, on line ``lines[-1]`` of ``text``, is not cut off: the file ends
    with a line end, or other lines (a comment, a blank row) follow that entry."""
    return _ends_with_line_end(text) or not lines or lines[-1] != len(split_lines(text))


_CUT_ADVICE = ("Check that line against the original: complete it, or add a line end after it if "
               "it is whole")


def _cut_note(line: int) -> str:
    """What a message adds when the row it names is the file's last and has no line end."""
    return (f"Line {line} is the last and has no line end: the file may be cut off there (an "
            f"interrupted copy?). {_CUT_ADVICE}")


def _warn_if_last_label_cut(path: str, text: str, line: int, last: Sequence[str],
                            others: Iterable[Sequence[str]]) -> None:
    """Warn when the file ends without a line end and a label of its last row is in no other row
    (``...,Abu`` for ``...,abudefduf_vaigiensis``): a one-image bogus class from a cut file."""
    if not last or _ends_with_line_end(text):
        return
    seen = {label for labels in others for label in labels}
    if not seen:  # a one-row file: nothing to compare with
        return
    lonely = [label for label in last if label not in seen]
    if lonely:
        warnings.warn(
            f"{path}: line {line} is the last and has no line end, and its label {lonely[0]!r} "
            "occurs in no other row: the file may be cut off there (an interrupted copy?), which "
            f"makes {lonely[0]!r} a class of one image. {_CUT_ADVICE}",
            UserWarning,
            stacklevel=3,
        )


def _warn_short_class_rows(path: str, text: str, short: Sequence[int], width: int) -> None:
    """Warn about rows of a 0/1 class-column CSV with fewer fields than the header: their missing
    cells are read as 0, which drops tags silently (a hand-edited row, or a file cut off)."""
    if not short:
        return
    lines = ", ".join(f"line {ln}" for ln in short[:_SHOW]) + (" ..." if len(short) > _SHOW else "")
    cut = ""
    if not _ends_with_line_end(text) and short[-1] == len(split_lines(text)):  # the last line
        cut = " " + _cut_note(short[-1])
    warnings.warn(
        f"{path}: {len(short)} row(s) have fewer fields than the header's {width} columns "
        f"({lines}): their missing class cells are read as 0 (no tag); complete those rows "
        f"(write 0 where a class is absent).{cut}",
        UserWarning,
        stacklevel=3,
    )


def _with_lines(lines: Sequence[int], values: Sequence[str], n: int = _SHOW) -> str:
    """``line 3: 'a.png', line 7: 'b.png' and 2 more``."""
    text = ", ".join(f"line {ln}: {str(v)!r}" for ln, v in zip(lines[:n], values[:n]))
    return text + (f" and {len(values) - n} more" if len(values) > n else "")


def csv_path_cells(
    path: str, header: Sequence[str], rows: Sequence[dict[str, str]], line_of: Sequence[int],
    path_format: str | None = None, path_col: str | None = None,
) -> tuple[list[str], str | None]:
    """Each CSV row's file path as written: its path column, or ``path_format`` over its columns.

    Shared by :func:`from_csv` and ``predict`` (one rule for every command).

    Args:
        path: the CSV (named in messages).
        header: its column names.
        rows: its rows (blank rows left out).
        line_of: the file line of each row (named in messages).
        path_format: build each path from columns, e.g. ``"{class}/{file}"``.
        path_col: the path column; default: the first of :data:`PATH_COLUMNS` (any case).

    Returns:
        ``(cells, column)``: one path a row, and the column read (``None`` with ``path_format``).

    Raises:
        ManifestError: no path column (naming the columns and ``--path-format``), a format that
            names missing columns or is not valid, or a row with an empty path.

    Example:
        >>> csv_path_cells("l.csv", ["class", "file"], [{"class": "cod", "file": "1.jpg"}], [2],
        ...                "{class}/{file}")
        (['cod/1.jpg'], None)
    """
    column = None
    if path_format is not None:
        fields = re.findall(r"{([^{}:!]+)", path_format)
        missing_cols = [f for f in fields if f not in header]
        if missing_cols:
            raise ManifestError(f"--path-format {path_format!r} (path_format=) names columns "
                                f"{missing_cols} that {path} lacks; its columns are {list(header)}")
        try:
            cells = [path_format.format_map(r) for r in rows]
        except (ValueError, IndexError, KeyError) as e:
            raise ManifestError(f"--path-format {path_format!r} (path_format=) is not a valid "
                                f"format string: {e}") from e
    else:
        column = _find_column(header, path_col, PATH_COLUMNS, "path", path, required=path_col is not None)
        files = [h for h in header if os.path.splitext(h)[1].lower() in IMAGE_EXTENSIONS]
        if column is None and files:
            raise ManifestError(
                f"{path}: its first line looks like a row of data ({files[0]!r} is an image file "
                "name), not a header: add a first line naming the columns, such as path,label "
                "(the reader takes the first line as the header)"
            )
        if column is None:
            raise ManifestError(
                f"{path}: no path column found (looked for {', '.join(PATH_COLUMNS)}); its columns "
                f"are {list(header)}: name the column of file paths one of those, or build the paths "
                "from columns with --path-format (path_format=), e.g. '{class}/{file}'"
            )
        cells = [r[column] for r in rows]
    empty = [line_of[i] for i, p in enumerate(cells) if not p]
    if empty:
        raise ManifestError(f"{path}: empty file path on line(s) {empty[:_SHOW]}")
    return cells, column


def resolve_csv_paths(
    rel_paths: Sequence[str], csv_path: str | os.PathLike, root: str | os.PathLike | None = None
) -> tuple[list[str], np.ndarray, Path]:
    """Absolute paths of a CSV's path entries: the one rule of :func:`from_csv` and ``predict``.

    Relative paths start at ``root``, by default the CSV's folder, or its ``images/`` subfolder
    when more of the files are there; a Windows path (``img\\cod\\1.jpg``) is read with ``/``. A
    file not found under the name written but under exactly one other Unicode normalisation of
    it (``café.jpg`` typed in NFC, written by macOS in NFD: :func:`unicode_variants`) is that file.

    Args:
        rel_paths: the path cells, in row order.
        csv_path: the CSV they come from.
        root: the folder relative paths start at (``--root``); ``None``: as above.

    Returns:
        ``(paths, exists, base)``: normalised absolute paths, whether each is a file, and the
        folder relative paths were read from.

    Example:
        >>> paths, exists, base = resolve_csv_paths(["cod/1.jpg"], "/data/labels.csv")
        >>> paths
        ['/data/cod/1.jpg']
    """
    base = Path(root).expanduser().absolute() if root is not None else Path(csv_path).parent
    rel_paths = [_local_path(p, base) for p in rel_paths]
    abs_paths = [joined_path(base, p) for p in rel_paths]  # a link's ".." as the disk reads it
    exists = np.array([os.path.isfile(p) for p in abs_paths], bool)
    listings: dict[str, dict[str, list[str]]] = {}
    abs_paths, exists = _in_other_unicode_forms(abs_paths, exists, listings)
    if root is None and not exists.all() and (base / "images").is_dir():
        alt = [joined_path(base / "images", p) for p in rel_paths]
        alt_exists = np.array([os.path.isfile(p) for p in alt], bool)
        alt, alt_exists = _in_other_unicode_forms(alt, alt_exists, listings)
        if alt_exists.sum() > exists.sum():
            abs_paths, exists, base = alt, alt_exists, base / "images"
    return abs_paths, exists, base


def _local_path(path: str, base: str | os.PathLike) -> str:
    """A path as a file lists it, as a path of this machine: ``~/...`` in the user's home
    folder, and on Linux and macOS a Windows path's ``\\`` as ``/`` (``img\\cod\\1.jpg``), unless
    a file of the name as written lies under ``base``."""
    if not path.startswith("~") and not (os.sep == "/" and "\\" in path):
        return path
    if os.path.isfile(os.path.join(base, path)):
        return path
    if os.sep == "/":
        path = path.replace("\\", "/")
    return os.path.expanduser(path)  # only a leading ~ (or ~user) is expanded


_WINDOWS_ABSOLUTE = re.compile(r"[A-Za-z]:[\\/]|\\\\")
"""The start of a Windows absolute path: a drive (``C:\\``) or a network share (``\\\\server``)."""


def _foreign_paths_note(given: Sequence[str], lines: Sequence[int], unit: str) -> tuple[str, int]:
    """What a message about missing files says of the entries no root can make local: URLs, and
    (on Linux and macOS) Windows absolute paths from another machine. Returns the note (``""``
    when there are none) and how many of ``given`` it covers."""
    urls = [i for i, p in enumerate(given) if URL_START.match(p)]
    drives = [i for i, p in enumerate(given) if os.sep == "/" and _WINDOWS_ABSOLUTE.match(p)]
    notes = []
    if urls:
        i = urls[0]
        notes.append(
            f"{counted(len(urls), 'of them is a URL', 'of them are URLs')} (e.g. line {lines[i]}: "
            f"{given[i]!r}), and URLs are not read: download the images first (e.g. with wget, "
            "aws s3 cp or gsutil cp) and list their local paths")
    if drives:
        i = drives[0]
        prefix = _windows_prefix([given[j] for j in drives])
        path_format = ("; --path-format (path_format=) builds the paths from other columns "
                       "instead, e.g. '{class}/{file}'") if unit == "rows" else ""
        notes.append(
            f"{counted(len(drives), 'of them is a Windows absolute path', 'of them are Windows absolute paths')} "
            f"from another machine (e.g. line {lines[i]}: {given[i]!r}): rewrite their start "
            f"{prefix!r} to the images' folder on this machine, or cut it off and give that "
            f"folder as --root DIR (in Python: root=){path_format}")
    return "; ".join(notes), len(urls) + len(drives)


def _windows_prefix(paths: Sequence[str]) -> str:
    """The folder that Windows paths share (``C:\\data\\imgs``), or their drive if none."""
    try:
        return ntpath.commonpath([ntpath.dirname(p) for p in paths])
    except ValueError:  # several drives
        return ntpath.splitdrive(paths[0])[0] + "\\"


def _names_by_form(folder: str, listings: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """The names in ``folder`` by their NFC form, listed once per ``listings`` (``{}`` for a
    folder that cannot be listed)."""
    if folder not in listings:
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        by_form: dict[str, list[str]] = {}
        for name in names:
            by_form.setdefault(unicodedata.normalize("NFC", name), []).append(name)
        listings[folder] = by_form
    return listings[folder]


def _unicode_variants(path: str, listings: dict[str, dict[str, list[str]]]) -> list[str]:
    """:func:`unicode_variants`, the folders listed once per ``listings``."""
    if path.isascii():  # an ASCII name has one form only
        return []
    p = Path(path)
    prefixes = [p.anchor] if p.anchor else [""]
    for part in p.parts[1:] if p.anchor else p.parts:
        found: list[str] = []
        for prefix in prefixes:
            if part.isascii():
                candidate = os.path.join(prefix, part)
                if os.path.exists(candidate):
                    found.append(candidate)
            else:
                key = unicodedata.normalize("NFC", part)
                same = _names_by_form(prefix or ".", listings).get(key, [])
                found += [os.path.join(prefix, name) for name in same]
        prefixes = found
        if not prefixes:
            return []
    return sorted(q for q in prefixes if q != path and os.path.isfile(q))


def unicode_variants(path: str | os.PathLike) -> list[str]:
    """The files whose path is ``path`` but for the Unicode normalisation of its names.

    macOS writes file names decomposed (NFD: ``e`` + a combining accent), while a CSV typed on
    another system holds them composed (NFC: ``é``); on Linux the two are different names, and
    the file listed is "not found" although it lies there.

    Args:
        path: a file path (missing, as listed).

    Returns:
        The existing files that match it in NFC form, ``path`` itself left out (sorted; empty for
        an ASCII path).

    Example:
        >>> unicode_variants("photos/cafe\\u0301.jpg")   # on disk in NFC  # doctest: +SKIP
        ['photos/café.jpg']
    """
    return _unicode_variants(os.fspath(path), {})


def unicode_form(name: str) -> str:
    """Which Unicode normalisation form ``name`` is in, for messages.

    Args:
        name: a file name or path.

    Returns:
        ``"NFC"``, ``"NFD"``, ``"NFC and NFD"`` (ASCII), or ``"neither NFC nor NFD"``.

    Example:
        >>> unicode_form("cafe\\u0301.jpg"), unicode_form("caf\\u00e9.jpg")
        ('NFD', 'NFC')
    """
    forms = [f for f in ("NFC", "NFD") if unicodedata.is_normalized(f, name)]
    return " and ".join(forms) if forms else "neither NFC nor NFD"


def _in_other_unicode_forms(
    paths: list[str], exists: np.ndarray, listings: dict[str, dict[str, list[str]]]
) -> tuple[list[str], np.ndarray]:
    """``paths`` with each missing file that exists under exactly one other Unicode
    normalisation of its names (:func:`unicode_variants`) replaced by that file: it is read. A
    file found under several is left missing; :func:`_check_missing` names them."""
    gone = [i for i in np.flatnonzero(~exists) if not paths[i].isascii()]
    if not gone:
        return paths, exists
    paths, exists = list(paths), exists.copy()
    for i in gone:
        variants = _unicode_variants(paths[i], listings)
        if len(variants) == 1:
            paths[i], exists[i] = variants[0], True
    return paths, exists


@dataclass
class ListedFiles:
    """The image files a CSV or a path list names, in the order written, with the line of each.

    Args:
        source: the CSV or list file (absolute).
        paths: normalised absolute paths, one per row or line (repeats and missing files kept).
        lines: the file line of each path, for messages.
        exists: whether each path is a file.
        base: the folder relative paths were read from.
        last_line_ended: ``False`` when the last path is on the file's last line and that line
            has no line end (the file may be cut off in it).
        given: each path as the file writes it (a CSV's path cell, or the path ``path_format``
            built from the row's cells; a list's line, spaces around it aside): what ``predict``
            reports, so that its output joins back to the input.
        header: a CSV's column names (``[]`` for a list).
        path_column: the CSV's path column (``None`` with ``path_format``, or for a list).
        rows: a CSV's rows as ``{column: cell}``, one per path (``[]`` for a list).

    Example:
        >>> listed = read_path_list("new_photos.txt")   # doctest: +SKIP
        >>> listed.lines[:2], listed.paths[0]            # doctest: +SKIP
        ([2, 3], '/data/new_photos/IMG_0001.jpg')
    """

    source: str
    paths: list[str]
    lines: list[int]
    exists: np.ndarray
    base: Path
    last_line_ended: bool = True
    given: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    path_column: str | None = None
    rows: list[dict[str, str]] = field(default_factory=list)

    def cut_note(self) -> str:
        """What a message about missing files adds when the file may be cut off in its last line:
        that line has no line end, and its file is missing while another exists.

        Returns:
            The note (:func:`_cut_note`), or ``""``.

        Example:
            >>> ListedFiles("l.txt", ["/a.png", "/b"], [1, 2], np.array([True, False]), Path("/"),
            ...             last_line_ended=False).cut_note()[:38]
            'Line 2 is the last and has no line end'
        """
        if self.paths and not self.last_line_ended and not self.exists[-1] and self.exists.any():
            return _cut_note(self.lines[-1])
        return ""


def read_csv_paths(
    path: str | os.PathLike, root: str | os.PathLike | None = None, path_format: str | None = None
) -> ListedFiles:
    """The image paths a CSV lists, one per row, read and resolved as :func:`from_csv` reads them.

    Labels are not read. Shared by ``predict`` (one rule for every command).

    Args:
        path: the CSV.
        root: the folder relative paths start from (default: see :func:`resolve_csv_paths`).
        path_format: build each path from columns instead, e.g. ``"{class}/{file}"``.

    Returns:
        The rows' files with their lines (blank rows left out; missing files kept).

    Raises:
        ManifestError: as :func:`from_csv` for its paths: no path column, a row with an empty path
            or more fields than the header, a column named twice, a file that is not UTF-8.

    Example:
        >>> read_csv_paths("hymenoptera/split.csv", path_format="{class}/{file}").paths[0]  # doctest: +SKIP
        '/data/hymenoptera/ants/0013035.jpg'
    """
    path = os.fspath(Path(path).expanduser().absolute())
    text = read_text(path)
    header, raw_rows, row_lines, _ = _read_csv_rows(path, text)
    line_of = [row_lines[i] for i, r in enumerate(raw_rows) if r is not None]
    rows = [r for r in raw_rows if r is not None]
    cells, column = csv_path_cells(path, header, rows, line_of, path_format)
    paths, exists, base = resolve_csv_paths(cells, path, root)
    return ListedFiles(path, paths, line_of, exists, base, _last_line_ended(text, line_of),
                       given=list(cells), header=list(header), path_column=column, rows=rows)


def _check_missing(listed: ListedFiles, on_missing: str, unit: str, hint: str = "") -> list[str]:
    """The files of ``listed`` that do not exist: refused (``on_missing="error"``, or ``"skip"``
    when none exists: nothing would be left) or warned about (``"skip"``), naming their lines and
    a cut last line. ``unit``: what holds a path ("rows"); ``hint``: the likely fix, put first."""
    gone = np.flatnonzero(~listed.exists)
    if not len(gone):
        return []
    missing = [listed.paths[i] for i in gone]
    lines = [listed.lines[i] for i in gone]
    cut = f". {listed.cut_note()}" if listed.cut_note() else ""
    forms = _several_forms_note(lines, missing)
    foreign, covered = _foreign_paths_note([listed.given[i] for i in gone] if listed.given else [],
                                           lines, unit)
    notes = "".join(note + "; " for note in (forms, foreign) if note)
    root = covered < len(gone)  # --root can help: not every missing entry is a URL or from Windows
    if on_missing == "error" and root:
        fix = (f"give --root DIR, the folder the paths are relative to, or --on-missing skip to "
               f"leave those {unit} out (in Python: root=, on_missing='skip')")
    elif on_missing == "error":
        fix = f"or give --on-missing skip to leave those {unit} out (in Python: on_missing='skip')"
    elif len(gone) == len(listed.paths):  # skipping them all would leave nothing to read
        fix = (("give --root DIR, the folder the paths are relative to (in Python: root=): " if root
                else "") + f"skipping the missing files (--on-missing skip) leaves none of the {unit}")
    if on_missing == "error" or len(gone) == len(listed.paths):
        raise ManifestError(
            f"{listed.source}: {len(missing)} of {len(listed.paths)} listed files do not exist under "
            f"{listed.base} (e.g. {_with_lines(lines, missing)}); {notes}{hint}{fix}{cut}"
        )
    warnings.warn(
        f"{listed.source}: skipped {counted(len(missing), unit[:-1], unit)} whose file does not exist "
        f"(e.g. {_with_lines(lines, missing, 3)}){'; ' + notes.removesuffix('; ') if notes else ''}{cut}",
        stacklevel=3,
    )
    return missing


def _several_forms_note(lines: Sequence[int], missing: Sequence[str]) -> str:
    """What a message about missing files says of those found under several other Unicode
    normalisations of their names (none of them is read: which one is meant is unclear), or
    ``""``. A file found under exactly one is read (:func:`resolve_csv_paths`)."""
    listings: dict[str, dict[str, list[str]]] = {}
    found = []
    for line, path in zip(lines, missing):
        variants = _unicode_variants(path, listings)
        if len(variants) > 1:
            found.append((line, path, variants))
    if not found:
        return ""
    line, path, variants = found[0]
    names = ", ".join(f"{ascii(v)} ({unicode_form(v)})" for v in variants)
    return (f"{len(found)} of them lie under several names that differ from the name listed only "
            f"in Unicode normalisation (NFC/NFD), so none is read (e.g. line {line}: {ascii(path)} "
            f"({unicode_form(path)}) matches {names}): keep one of those files, or write the name "
            "as the file has it")


def _class_folder_hint(base: Path, header: Sequence[str], rows: Sequence[dict], lcol: str,
                       pcol: str) -> str:
    """When a CSV's files lie in one folder per class (``<class>/<file>``, as the shared
    hymenoptera ``split.csv``), the ``path_format`` that reads them, as the start of a message.
    Written by hand: it checks the first rows only (up to 20), all of which must be found so."""
    sample = rows[:20]
    if not all(r[lcol] and r[pcol] and (base / r[lcol] / r[pcol]).is_file() for r in sample):
        return ""
    fmt = "{" + lcol + "}/{" + pcol + "}"
    return (f"the files are in one folder per {lcol}: read them with --path-format '{fmt}' (in "
            f"Python: path_format='{fmt}'); else ")


def _duplicate_rows_note(path: str, dropped: Sequence[tuple[int, int]], line_of: Sequence[int],
                         rel_paths: Sequence[str], with_splits: bool) -> str:
    """The warning about the rows :func:`from_csv` dropped as repeats of an earlier row (same
    file, same label and split): which line repeats which (the first :data:`_SHOW`)."""
    pairs = [f"line {line_of[i]} repeats line {line_of[j]} ({rel_paths[i]!r})"
             for i, j in dropped[:_SHOW]]
    more = f" and {len(dropped) - _SHOW} more" if len(dropped) > _SHOW else ""
    same = "same file, same label and split" if with_splits else "same file, same label"
    it = "it" if len(dropped) == 1 else "them"
    return (f"{path}: dropped {counted(len(dropped), 'duplicate row')} ({same}): "
            f"{', '.join(pairs)}{more}; each file is read once (delete the repeated "
            f"{'row' if len(dropped) == 1 else 'rows'} to silence this, or keep {it}: nothing "
            "changes)")


def _warn_classes_without_images(path: str, names: Sequence[str], labels: np.ndarray,
                                  keep: np.ndarray, *, given: bool, columns: bool) -> None:
    """Warn about the classes of a CSV's class list that none of its kept rows carries: named in
    ``class_names`` (``given``) or a 0/1 class column (``columns``) but on no row, or left
    without rows when the rows of missing files were skipped. The class list keeps them (stable
    indices), so a model would get an output for each that it can never learn."""
    def per_class(rows: np.ndarray) -> np.ndarray:
        if rows.ndim == 2:
            return rows.sum(axis=0)
        return np.bincount(rows[rows >= 0], minlength=len(names))

    def it(items: Sequence[str]) -> str:
        return "it" if len(items) == 1 else "them"

    kept, every = per_class(labels[keep]), per_class(labels)
    empty = [c for c, n in zip(names, kept) if n == 0]
    if not empty:
        return
    never = [c for c, n in zip(names, every) if n == 0]
    skipped = [c for c in empty if c not in never]
    why, fixes = [], []
    if never and given:
        why.append(f"class_names lists {_names(never, 10)}, which no row carries")
        fixes.append(f"add rows of images of {it(never)}, or leave {it(never)} out of class_names")
    elif never:
        column, holds = ("column", "holds") if len(never) == 1 else ("columns", "hold")
        why.append(f"the class {column} {_names(never, 10)} {holds} only 0 (no row carries "
                   f"{it(never)})")
        fixes.append(f"add images of {it(never)}, or leave the {column} out (name the class "
                     "columns with class_columns=[...])")
    if skipped:
        why.append(f"every row of {_names(skipped, 10)} names a missing file (skipped)")
        fixes.append("put the files back (or fix the paths)")
    warnings.warn(
        f"{path}: {counted(len(empty), 'class', 'classes')} without any image: {'; '.join(why)}. "
        f"A model trained on this data would still get an output for "
        f"{'it' if len(empty) == 1 else 'each'}, one it can never learn, and a split cannot give "
        f"{it(empty)} images: {'; '.join(fixes)}",
        UserWarning,
        stacklevel=3,
    )


def _refuse_stray_class_values(path: str, header: Sequence[str], rows: Sequence[dict],
                               line_of: Sequence[int], taken: set[str]) -> None:
    """Refuse a column that reads as a 0/1 class column but for a few other values (a typo such as
    ``x`` or ``2``): left out of the auto-detected class columns, its class would vanish."""
    for h in header:
        if h in taken:
            continue
        values = [_binary(r[h]) for r in rows]
        other = [i for i, b in enumerate(values) if b is None]
        ones = sum(b == 1 for b in values)
        if other and ones and len(other) < len(rows) - len(other):  # mostly 0/1, some 1s
            shown = "; ".join(f"line {line_of[i]}: {rows[i][h]!r}" for i in other[:_SHOW])
            raise ManifestError(
                f"{path}: column {h!r} holds 0/1 class values but also {counted(len(other), 'other value')} "
                f"({shown}{' ...' if len(other) > _SHOW else ''}), so it cannot be read as the class "
                f"{h!r}: fix those cells to 0 or 1 (empty counts as 0), or, if {h!r} is not a class, "
                "name the class columns (in Python, class_columns=[...])"
            )
        if other and ones and all(-1 <= (_number(rows[i][h].strip().lower()) or 2) <= 1 for i in other):
            # 1s with -1 (uncertain, as CheXpert writes it) or soft values: many, so perhaps no
            # class, but its class must not vanish unsaid (it did with half the cells or more)
            shown = "; ".join(f"line {line_of[i]}: {rows[i][h]!r}" for i in other[:_SHOW])
            warnings.warn(
                f"{path}: column {h!r} holds 1s and {counted(len(other), 'value')} between -1 and 1 "
                f"other than 0 and 1 ({shown}{' ...' if len(other) > _SHOW else ''}), so it is not "
                f"read as the class {h!r}: if it is one, map those cells to 0 or 1 (-1 for uncertain: "
                "decide which), or name the class columns (in Python, class_columns=[...])",
                UserWarning, stacklevel=3)


def _warn_joined_tags(path: str, column: str, sets: Sequence[Sequence[str]]) -> None:
    """Warn when tags look joined by another separator than ``;``: ``cod,eel`` or ``cod|eel``, or
    ``haze primary`` where each part is a tag of its own on other rows (a space may belong to a
    name, such as ``pez espada``). The joined text would become a class of its own."""
    tags = {t for tags in sets for t in tags}
    for sep, shown in ((",", "','"), ("|", "'|'"), (" ", "spaces")):
        joined = sorted(t for t in tags if sep in t and (sep != " " or all(  # a space may be a name's
            part in tags for part in t.split(sep) if part.strip())))
        if joined:
            example = joined[0]
            fixed = ";".join(part for part in example.split(sep) if part.strip())
            warnings.warn(
                f"{path}: {counted(len(joined), 'label set')} of column {column!r} look{'s' if len(joined) == 1 else ''} "
                f"like tags joined by {shown} (e.g. {example!r}); "
                f"only ';' separates tags, so each is read as one class of its own: write {fixed!r}",
                stacklevel=3,
            )


def from_csv(
    path: str | os.PathLike,
    *,
    path_col: str | None = None,
    label_col: str | None = None,
    labels_col: str | None = None,
    class_columns: Sequence[str] | str | None = None,
    split_col: str | None = None,
    group_col: str | None = None,
    group_regex: str | None = None,
    root: str | os.PathLike | None = None,
    path_format: str | None = None,
    class_names: Sequence[str] | None = None,
    on_missing: str = "error",
) -> Manifest:
    """Read a CSV that lists image files and their labels.

    The label layout is one of: one label per row (``label_col``; single-label), a ``;``-separated
    label set (``labels_col``; multi-label), or one 0/1 column per class (``class_columns``;
    multi-label; ``"auto"`` takes every 0/1 column). When none is given, a column named
    ``label``/``class``/``species``/``category`` is a single label, one named ``labels``/``tags``
    is a label set, and otherwise all 0/1 columns are class columns. An empty label means
    unlabelled (single-label) or no tag (multi-label). Split names are normalised
    (``valid``/``validation``/``dev`` -> ``val``). Relative paths are resolved against ``root``
    (default: the CSV's folder, or its ``images/`` subfolder when the files are there).
    A file whose last line has no line end and a label (or a tag of its set) that no other row
    has is warned about (a copy cut mid-label); messages about missing files name their lines.
    Rows that repeat an earlier row (same file, label and split) are dropped with a warning that
    names their lines; a class left without any image (in ``class_names`` or a 0/1 class column
    but on no row, or every row of it skipped) is warned about.

    Args:
        path: the CSV (``,``, ``;`` or tab separated; UTF-8; leading ``#`` lines ignored).
        path_col: the path column (auto: path, filepath, filename, file, image, ...).
        label_col: the single-label column.
        labels_col: the ``;``-separated label-set column (multi-label).
        class_columns: list of 0/1 class columns, or ``"auto"`` (multi-label).
        split_col: the split column (auto-detected when named ``split``).
        group_col: a column of group ids (e.g. a specimen, site or video id). Default: a
            column named ``group`` or ``group_id`` (any case), if any; ``group_regex``, when
            given, is used instead.
        group_regex: alternatively, a regex over the file name whose first group is the group id.
        root: folder the relative paths are relative to.
        path_format: build the path from several columns, e.g. ``"{class}/{file}"``.
        class_names: the allowed classes in index order; a label outside it is an error listing
            the rows, and a class no row carries is kept (stable indices) and warned about.
            Default: the distinct labels in :func:`class_order` (or the class columns in CSV order).
        on_missing: ``"error"`` (default) or ``"skip"`` rows whose file does not exist.

    Returns:
        A Manifest (single- or multi-label) with absolute paths; ``splits`` when the CSV has a
        split column, ``groups`` when it has a group column or ``group_regex`` is given;
        ``manifest.extra["missing"]`` lists the files of the rows skipped with
        ``on_missing="skip"``.

    Raises:
        ManifestError: a column is missing, a label is not in ``class_names``, files are missing
            (``on_missing="error"``), or duplicate rows disagree on the label or split.

    Example:
        >>> m = from_csv("aquarium/labels.csv")                   # doctest: +SKIP
        >>> m = from_csv("hymenoptera/split.csv", path_format="{class}/{file}")  # doctest: +SKIP
    """
    path = os.fspath(Path(path).expanduser().absolute())
    if on_missing not in ("error", "skip"):
        raise ManifestError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    if not os.path.isfile(path):
        raise ManifestError(f"CSV file {path} does not exist")
    if group_col is not None and group_regex is not None:
        raise ManifestError("pass either group_col or group_regex, not both")
    given_modes = [x is not None for x in (label_col, labels_col, class_columns)]
    if sum(given_modes) > 1:
        raise ManifestError("pass only one of label_col, labels_col and class_columns")
    text = read_text(path)
    header, raw_rows, row_lines, short = _read_csv_rows(path, text)
    line_of = [row_lines[i] for i, r in enumerate(raw_rows) if r is not None]
    rows = [r for r in raw_rows if r is not None]
    if not rows:
        if path_format is None and any(os.path.splitext(h)[1].lower() in IMAGE_EXTENSIONS for h in header):
            csv_path_cells(path, header, rows, line_of, None, path_col)  # a first line of data: named so
        raise ManifestError(f"{path} has a header but no rows")

    # --- paths
    used: set[str] = set()  # path/split/group columns: never label columns
    rel_paths, pcol = csv_path_cells(path, header, rows, line_of, path_format, path_col)
    if pcol is not None:
        used.add(pcol)

    # --- split and group columns
    scol = _find_column(header, split_col, ("split",), "split", path, required=split_col is not None)
    if scol:
        used.add(scol)
    gcol = _find_column(header, group_col, GROUP_COLUMNS, "group", path, required=group_col is not None)
    if gcol:
        used.add(gcol)

    # --- label layout
    if label_col is None and labels_col is None and class_columns is None:
        keyed = _by_key(h for h in header if h not in used)
        auto_single = next((keyed[c] for c in LABEL_COLUMNS if c in keyed), None)
        auto_set = next((keyed[c] for c in LABELSET_COLUMNS if c in keyed), None)
        if auto_set is not None:
            labels_col = _only_column(header, auto_set, "label set", path)
        elif auto_single is not None:
            label_col = _only_column(header, auto_single, "label", path)
        else:
            class_columns = "auto"
    allowed = [str(c) for c in class_names] if class_names is not None else None  # as Manifest stores them
    bad: list[tuple[int, str]] = []
    if label_col is not None:
        lcol = _find_column(header, label_col, (), "label", path)
        values = [r[lcol] for r in rows]
        _warn_missing_value_marks(path, lcol, values, line_of, allowed)
        _warn_tag_sets_in_label_column(path, lcol, values, line_of)
        names = allowed if allowed is not None else class_order(v for v in values if v)
        index = {c: i for i, c in enumerate(names)}
        bad = [(line_of[i], v) for i, v in enumerate(values) if v and v not in index]
        labels = np.array([index.get(v, UNLABELLED) if v else UNLABELLED for v in values], np.int64)
    elif labels_col is not None:
        lcol = _find_column(header, labels_col, (), "labels", path)
        cells = [r[lcol] for r in rows]
        _warn_missing_value_marks(path, lcol, cells, line_of, allowed)
        sets = [[t.strip() for t in cell.split(";") if t.strip()] for cell in cells]
        if allowed is None and any(sets) and {t for s in sets for t in s} <= {"0", "1"}:
            others = [h for h in header if all(_binary(r[h]) is not None for r in rows)]
            raise ManifestError(
                f"{path}: the label-set column {lcol!r} holds only 0 and 1: it reads as one 0/1 "
                f"column of a tag, not as ';'-separated tags. Give the tags as 0/1 columns instead: "
                f"leave the label-set column out (rename it; in Python, leave out labels_col=) and the 0/1 "
                f"columns are found{' (' + ', '.join(others[:8]) + ')' if others else ''}, or name "
                "a column that holds tag names"
            )
        _warn_joined_tags(path, lcol, sets)
        names = allowed if allowed is not None else class_order(t for s in sets for t in s)
        index = {c: i for i, c in enumerate(names)}
        labels = np.zeros((len(rows), len(names)), np.uint8)
        for i, tags in enumerate(sets):
            for t in tags:
                if t in index:
                    labels[i, index[t]] = 1
                else:
                    bad.append((line_of[i], t))
        _warn_tag_columns_disagree(path, lcol, header, rows, line_of, names, labels, used)
    else:
        if isinstance(class_columns, str):
            if class_columns != "auto":
                raise ManifestError(f"class_columns must be a list of column names or 'auto', got {class_columns!r}")
            cols = [h for h in header if h not in used
                    and all(_binary(r[h]) is not None for r in rows) and any(r[h] for r in rows)]
            _refuse_stray_class_values(path, header, rows, line_of, used | set(cols))
            if not cols:
                others = [h for h in header if h not in used]
                # a column of ';'-joined tag sets is 'labels' (renamed 'label', each set was a class)
                to = "labels" if len(others) == 1 and any(";" in r[others[0]] for r in rows) else "label"
                rename = f" (e.g. rename {others[0]!r} to {to!r})" if len(others) == 1 else ""
                raise ManifestError(
                    f"{path}: found no label column and no 0/1 class columns among {header}: name "
                    f"the column of labels 'label' (or class, species, category; labels or tags for "
                    f"';'-separated tag sets){rename}, or give one 0/1 column per class (in Python, "
                    "label_col=, labels_col= or class_columns= name them). Images without labels "
                    "(for audit or predict): list their paths one per line in a .txt file"
                    + _other_numbers_note(header, rows, line_of, used)
                )
        else:
            cols = [_find_column(header, c, (), "class", path) for c in class_columns]
        if allowed is not None:
            bad.extend((0, c) for c in cols if c not in allowed)
            names = allowed
        else:
            names = list(cols)
        index = {c: i for i, c in enumerate(names)}
        labels = np.zeros((len(rows), len(names)), np.uint8)
        not_binary = []
        for i, r in enumerate(rows):
            for c in cols:
                b = _binary(r[c])
                if b is None:
                    not_binary.append((line_of[i], c, r[c]))
                elif b and c in index:
                    labels[i, index[c]] = 1
        if not_binary:
            shown = "; ".join(f"line {ln} column {c!r} = {v!r}" for ln, c, v in not_binary[:_SHOW])
            raise ManifestError(f"{path}: class columns must hold 0 or 1, found {len(not_binary)} other values ({shown})")
        _warn_short_class_rows(path, text, short, len(header))
    if bad:
        if class_columns is not None:
            raise ManifestError(
                f"{path}: class columns {[v for _, v in bad]} are not in class_names {names}; "
                "add them to class_names or leave class_names out"
            )
        shown = "; ".join(f"line {ln}: {v!r}" for ln, v in bad[:_SHOW])
        raise ManifestError(
            f"{path}: {len(bad)} labels are not in the class list {names} ({shown}"
            f"{' ...' if len(bad) > _SHOW else ''}); fix the rows or add the classes to class_names"
        )
    if label_col is not None:  # a copy cut mid-label: "path/x.png,Abu" as the last, unended line
        _warn_if_last_label_cut(path, text, line_of[-1], [values[-1]] if values[-1] else [],
                                ([v] for v in values[:-1] if v))
    elif labels_col is not None:
        _warn_if_last_label_cut(path, text, line_of[-1], sets[-1], sets[:-1])

    abs_paths, exists, base = resolve_csv_paths(rel_paths, path, root)
    listed = ListedFiles(path, abs_paths, line_of, exists, base, _last_line_ended(text, line_of),
                         given=list(rel_paths))
    hint = ""
    if not exists.any() and path_format is None and pcol is not None and label_col is not None:
        hint = _class_folder_hint(base, header, rows, lcol, pcol)
    missing = _check_missing(listed, on_missing, "rows", hint)
    keep = exists.copy()  # all rows, or (on_missing="skip") those whose file exists

    splits = [normalise_split_name(r[scol]) for r in rows] if scol else None
    groups = [r[gcol] for r in rows] if gcol else None

    # --- duplicate rows
    first_seen: dict[str, int] = {}
    dropped: list[tuple[int, int]] = []  # (the repeated row, the row it repeats)
    conflicts: list[str] = []
    folders: dict[str, str] = {}  # resolved once a folder, for this pass only
    for i in np.flatnonzero(keep):
        p = same_file_key(abs_paths[i], folders)
        j = first_seen.get(p)
        if j is None:
            first_seen[p] = i
            continue
        same_label = np.array_equal(labels[i], labels[j])
        same_split = splits is None or splits[i] == splits[j]
        if same_label and same_split:
            keep[i] = False
            dropped.append((i, j))
        else:
            what = "label" if not same_label else "split"
            conflicts.append(f"{rel_paths[i]!r} (lines {line_of[j]} and {line_of[i]} differ in {what})")
    if conflicts:
        raise ManifestError(
            f"{path}: {counted(len(conflicts), 'file')} {'is' if len(conflicts) == 1 else 'are'} listed twice with different labels or splits: "
            + "; ".join(conflicts[:_SHOW]) + ". Keep one row per file (for several labels per file "
            "use a ';'-separated labels column)"
        )
    if dropped:
        warnings.warn(_duplicate_rows_note(path, dropped, line_of, rel_paths, splits is not None),
                      stacklevel=2)
    _warn_classes_without_images(path, names, labels, keep, given=allowed is not None,
                                 columns=class_columns is not None)

    idx = np.flatnonzero(keep)
    kept_paths = [abs_paths[i] for i in idx]
    if group_regex is not None:
        groups_out = groups_from_regex(kept_paths, group_regex)
    else:
        groups_out = _own_groups_where_empty(
            [groups[i] for i in idx], kept_paths, f"{path}: the group column {gcol!r} is empty for"
        ) if groups is not None else None
    m = Manifest(
        paths=kept_paths,
        labels=labels[idx],
        class_names=names,
        groups=groups_out,
        splits=[splits[i] for i in idx] if splits is not None else None,
        source=path,
    )
    m.extra["missing"] = missing
    if m.num_classes == 1:
        warnings.warn(f"{path} has a single class ({names[0]!r}); splitting and training need at least 2",
                      stacklevel=2)
    _warn_spelling_variants(path, names)
    return m


def _warn_tag_columns_disagree(path: str, lcol: str, header: Sequence[str], rows: Sequence[dict],
                               line_of: Sequence[int], names: Sequence[str], labels: np.ndarray,
                               used: set[str] = frozenset()) -> None:
    """Warn when a CSV holds both a tag-set column and 0/1 columns named for the same tags (as the
    aquarium set's labels.csv does) and they disagree: the tag-set column is read, the 0/1 columns
    are not, and a disagreement is a data error the user should see. Between the first and the
    last such column, a 0/1 column of a tag the tag-set column never names (``used``: the path,
    split and group columns, never tags) is named too: its 1s were dropped without a word."""
    cols = [(k, name) for k, name in enumerate(names)
            if name in header and name != lcol and all(_binary(r[name]) is not None for r in rows)]
    if not cols:
        return
    # between the first and the last named tag only: a 0/1 column beside them may be data of
    # another kind (verified, fold, is_test), which the tag-set column rightly leaves out (so a
    # stray tag at either end of the block is not seen)
    at = [header.index(name) for _, name in cols]
    stray = [h for h in header[min(at):max(at) + 1] if h not in names and h != lcol and h not in used
             and all(_binary(r[h]) is not None for r in rows) and any(_binary(r[h]) for r in rows)]
    if stray:
        warnings.warn(
            f"{path}: the 0/1 column{'s' if len(stray) > 1 else ''} {', '.join(map(repr, stray[:5]))} "
            f"among the tag columns hold{'' if len(stray) > 1 else 's'} 1s for tags the tag-set "
            f"column {lcol!r} never names, and {'are' if len(stray) > 1 else 'is'} not read: if "
            f"{'they are tags, add them' if len(stray) > 1 else 'it is a tag, add it'} to {lcol!r}",
            stacklevel=3)
    other = np.array([[_binary(r[name]) or 0 for _, name in cols] for r in rows], np.uint8)
    differ = np.flatnonzero((other != labels[:, [k for k, _ in cols]]).any(axis=1))
    if differ.size:
        shown = ", ".join(f"line {line_of[i]}" for i in differ[:5])
        warnings.warn(
            f"{path}: the tag-set column {lcol!r} and the 0/1 columns of the same tags disagree on "
            f"{counted(differ.size, 'row')} ({shown}); the tag-set column is read: correct the other, "
            "or leave one of them out", stacklevel=3)


def _without_leading_zeros(name: str) -> str:
    """A whole number's text without its leading zeros (``007`` -> ``7``); other text as it is."""
    return re.sub(r"^([+-]?)0+(?=\d)", r"\1", name) if _whole_number(name) is not None else name


def _without_point_zero(name: str) -> str:
    """A whole number's text without a ``.0`` suffix (``7.0`` -> ``7``); other text as it is."""
    return re.sub(r"\.0+$", "", name) if _whole_number(name) is not None else name


_SPELLINGS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("Unicode form", lambda n: unicodedata.normalize("NFC", n)),
    ("spacing", lambda n: " ".join(n.split())),
    ("case", str.casefold),
    ("leading zeros", _without_leading_zeros),
    ("a '.0' suffix", _without_point_zero),
)
"""The ways two spellings of one class name differ (:func:`_warn_spelling_variants`), each with
the function that writes a name one way."""


def _spelled_one_way(name: str, leave_out: str = "") -> str:
    """``name`` written one way in each respect of :data:`_SPELLINGS` but ``leave_out``."""
    for what, spell in _SPELLINGS:
        if what != leave_out:
            name = spell(name)
    return name


def _spelling_differences(names: Sequence[str]) -> list[str]:
    """How names of one spelling differ: each respect of :data:`_SPELLINGS` in which they still
    differ when written one way in all the others (``'Gadus  morhua'`` and ``'gadus morhua'``:
    spacing and case)."""
    return [what for what, _ in _SPELLINGS if len({_spelled_one_way(n, what) for n in names}) > 1]


def _warn_spelling_variants(path: str, names: Sequence[str]) -> None:
    """Warn of class names that differ only in spelling: case or Unicode form (``Fish`` and
    ``fish``), repeated inner spaces (``Gadus  morhua``), or, for class ids, leading zeros or a
    ``.0`` suffix (``1``, ``001`` and ``1.0``, as spreadsheets and pandas rewrite numbers). Each
    stays a class of its own, which is rarely what a hand-made label column means."""
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(_spelled_one_way(name), []).append(name)
    variants = [group for group in by_key.values() if len(group) > 1]
    if not variants:
        return
    shown = "; ".join(" and ".join(repr(n) for n in group) + f" ({', '.join(_spelling_differences(group))})"
                      for group in variants[:_SHOW])
    numbers = any(_whole_number(n) is not None for group in variants for n in group)
    warnings.warn(
        f"{path}: {counted(len(variants), 'set', 'sets')} of class names differ only in spelling "
        f"({shown}{' ...' if len(variants) > _SHOW else ''}): each name is a class of its own; if "
        "they are one class, write it one way throughout"
        + (" (a spreadsheet or pandas rewrites numbers as 1.0 or without leading zeros: format "
           "the label column as text before saving)" if numbers else ""),
        stacklevel=3,
    )


# ---------------------------------------------------------------------------------- path lists
def _names_a_path_column(line: str) -> bool:
    """Whether ``line`` is a CSV header with a path column (:data:`PATH_COLUMNS`, any case)."""
    cells = (_column_key(cell.strip().strip('"')) for cell in re.split(r"[,;\t]", line))
    return any(cell in PATH_COLUMNS for cell in cells)


def _first_line(path: str) -> str:
    """The first line of a text file that is neither blank, nor a ``#`` comment, nor Excel's
    ``sep=;`` line ("" if none)."""
    for line in split_lines(read_text(path, limit=1 << 16)):  # a long list is not read twice
        if line.strip() and not line.lstrip().startswith("#") and _excel_separator(line) is None:
            return line
    return ""


def is_path_list(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as a list of image paths, one per line, rather than as a CSV.

    A ``.lst`` file is one; a ``.txt`` file is one unless its first line (blank and ``#`` lines
    aside) is a CSV header naming a path column (:data:`PATH_COLUMNS`, any case), as
    ``path,label``. Every command decides so (``audit``, ``split``, ``predict``).

    Args:
        path: a file.

    Returns:
        ``False`` for other extensions and for a path that is not a file.

    Raises:
        ManifestError: the start of the ``.txt`` is not UTF-8 text.

    Example:
        >>> open("new.txt", "w").write("cod/1.jpg\\n")   # doctest: +SKIP
        >>> is_path_list("new.txt")                      # doctest: +SKIP
        True
    """
    path = os.fspath(path)
    suffix = _data_suffix(path)
    if suffix not in LIST_EXTENSIONS or not os.path.isfile(path):
        return False
    return suffix == ".lst" or not _names_a_path_column(_first_line(path))


def read_path_list(path: str | os.PathLike, root: str | os.PathLike | None = None) -> ListedFiles:
    """The image paths a text list names, one per line, resolved as a CSV's paths are.

    Blank lines and lines starting with ``#`` are skipped; spaces around a path are not part of
    it. Relative paths start at ``root``, by default the list's folder, or its ``images/``
    subfolder when the files are there (:func:`resolve_csv_paths`). Shared by
    :func:`from_path_list` and ``predict``.

    Args:
        path: the list (UTF-8, with or without BOM, or UTF-16 with BOM).
        root: the folder relative paths start from (``--root``).

    Returns:
        The files in line order with their lines (missing files and repeats kept).

    Raises:
        ManifestError: the file is not UTF-8 text (the message names the line).

    Example:
        >>> read_path_list("new_photos.txt").paths[0]  # doctest: +SKIP
        '/data/new_photos/IMG_0001.jpg'
    """
    path = os.fspath(Path(path).expanduser().absolute())
    text = read_text(path)
    numbered = [(n, line.strip()) for n, line in enumerate(split_lines(text), start=1)]
    numbered = [(n, entry) for n, entry in numbered if entry and not entry.startswith("#")]
    lines = [n for n, _ in numbered]
    entries = [entry for _, entry in numbered]
    paths, exists, base = resolve_csv_paths(entries, path, root)
    quoted = [i for i, e in enumerate(entries) if not exists[i] and unquote(e) != e]
    if quoted:  # "bee, with comma.jpg" pasted from a spreadsheet, as drop lists take it
        bare, bare_exists, _ = resolve_csv_paths([unquote(entries[i]) for i in quoted], path, root)
        for i, p, found in zip(quoted, bare, bare_exists):
            if found:
                paths[i], exists[i], entries[i] = p, True, unquote(entries[i])
    return ListedFiles(path, paths, lines, exists, base, _last_line_ended(text, lines), given=entries)


QUOTES = ('"', "'")
"""The quotes around a name pasted from a spreadsheet or a shell (:func:`unquote`)."""


def unquote(entry: str) -> str:
    """``entry`` without one pair of matching surrounding quotes (``"a b.png"`` → ``a b.png``),
    as names are pasted from spreadsheets and shells; other entries are returned as they are.

    Args:
        entry: a line of a list.

    Returns:
        The entry.

    Example:
        >>> unquote('"bee, with comma.jpg"'), unquote("plain.jpg")
        ('bee, with comma.jpg', 'plain.jpg')
    """
    if len(entry) >= 2 and entry[0] in QUOTES and entry[-1] == entry[0]:
        return entry[1:-1]
    return entry


def from_path_list(
    path: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    on_missing: str = "error",
    group_regex: str | None = None,
) -> Manifest:
    """Read a text list of image paths, one per line, as an unlabelled Manifest.

    The list is read by :func:`read_path_list` (blank and ``#`` lines skipped; relative paths
    from ``root``, by default the list's folder or its ``images/`` subfolder). Every image is
    unlabelled (``UNLABELLED``) and there are no classes: enough to audit the images or predict
    them, not to split or train (those need labels: a CSV with a label column, or class
    folders). Missing files are refused or skipped naming their lines, as :func:`from_csv` does
    for rows; a file listed again is dropped with a warning.

    Args:
        path: the list (``.txt`` or ``.lst``; see :func:`is_path_list`).
        root: the folder relative paths start from (``--root``).
        on_missing: ``"error"`` (default) or ``"skip"`` lines whose file does not exist.
        group_regex: optional regex over the file name whose first group is the group id.

    Returns:
        A single-label Manifest without classes, every label ``UNLABELLED``;
        ``manifest.extra["missing"]`` lists the files skipped with ``on_missing="skip"``.

    Raises:
        ManifestError: the file does not exist, lists no path, is not UTF-8, or names files that
            do not exist (``on_missing="error"``).

    Example:
        >>> m = from_path_list("new_photos.txt")   # doctest: +SKIP
        >>> m.summary()                             # doctest: +SKIP
        '120 images, no labels'
    """
    if on_missing not in ("error", "skip"):
        raise ManifestError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    path = os.fspath(Path(path).expanduser().absolute())
    if not os.path.isfile(path):
        raise ManifestError(f"list file {path} does not exist")
    listed = read_path_list(path, root)
    if not listed.paths:
        raise ManifestError(f"{path} lists no files (only blank or # lines): write one image path "
                            "per line")
    missing = _check_missing(listed, on_missing, "lines")
    first: dict[str, int] = {}
    repeated: list[int] = []
    for i in np.flatnonzero(listed.exists):
        if listed.paths[i] in first:
            repeated.append(i)
        else:
            first[listed.paths[i]] = i
    if repeated:
        warnings.warn(
            f"{path}: dropped {len(repeated)} line(s) naming a file listed before, e.g. "
            f"{_with_lines([listed.lines[i] for i in repeated], [listed.paths[i] for i in repeated], 3)}",
            stacklevel=2,
        )
    paths = list(first)  # in line order: a dict keeps the order of insertion
    groups = groups_from_regex(paths, group_regex) if group_regex else None
    m = Manifest(paths, np.full(len(paths), UNLABELLED, np.int64), [], groups=groups, source=path)
    m.extra["missing"] = missing
    return m


def data_gone_problem(data: str | os.PathLike, reasons: dict[str, str]) -> str | None:
    """The message when not one of a source's files exists any more (``reasons``: each file's
    reason for not being read), as for a saved split or manifest whose data moved: one line
    about the move instead of one "file not found" a file. ``None`` when some file was there.

    Args:
        data: the source as the user gave it.
        reasons: ``{path: reason}`` of every file of the source.

    Returns:
        The message, or ``None``.

    Example:
        >>> data_gone_problem("split.csv", {"/old/a.png": "file not found"})[:44]
        'none of the 1 image files that split.csv lis'
    """
    if not reasons or not all(r.startswith("file not found") for r in reasons.values()):
        return None
    return (f"none of the {len(reasons)} image files that {data} lists exists (e.g. "
            f"{next(iter(reasons))}): was the data moved or renamed? A saved split or manifest holds "
            "absolute paths: make it again from the data's new place (keras-species split "
            "NEW_PLACE ...); a CSV of relative paths takes --root, the folder they start from")


def require_labels(manifest: Manifest, command: str) -> Manifest:
    """Refuse a manifest in which no image has a label, for a command that needs labels.

    A path list (:func:`from_path_list`) is named as such. Multi-label data and an empty manifest
    pass (an image without tags is a negative; an empty one is the command's to refuse).

    Args:
        manifest: the loaded data.
        command: what needs the labels, as the user knows it (``"split"``).

    Returns:
        ``manifest``, unchanged.

    Raises:
        ManifestError: naming the source and what to give instead.

    Example:
        >>> require_labels(load("demo"), "split").num_classes
        6
    """
    if len(manifest) == 0 or manifest.multilabel or manifest.labelled_mask.any():
        return manifest
    source = manifest.source or "the data"
    if manifest.source and is_path_list(manifest.source):
        what = f"{source} is a list of image paths, one per line, which has no labels"
    else:
        what = (f"the one image of {source} has no label" if len(manifest) == 1
                else f"none of the {len(manifest)} images of {source} has a label")
    raise ManifestError(
        f"{what}, and {command} needs them: give a CSV with a path and a label column (e.g. "
        "'path,label'), or a folder with one subfolder per class"
    )


# ---------------------------------------------------------------------------------- COCO / iNat
def _coco_entries(doc: dict, key: str, required: dict[str, tuple[type, ...]], path: str) -> list[dict]:
    """``doc[key]`` checked to be a list of objects with the ``required`` keys and value types."""
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise ManifestError(f"{path}: {key!r} must be a list of objects, not a {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: {key}[{i}] must be an object, not {entry!r}")
        for name, types_ in required.items():
            value = entry.get(name)
            if not isinstance(value, types_) or isinstance(value, bool):
                what = "has no" if value is None else f"has {value!r} as its"
                raise ManifestError(
                    f"{path}: {key}[{i}] {what} {name!r}; it needs one "
                    f"({' or '.join(t.__name__ for t in types_)}), as iNat/COCO files give"
                )
    return entries


def _merge_repeated_files(path: str, paths: list[str], images: list[dict], tags: list[set[int] | None]) -> None:
    """A file listed under several image ids: refuse it when the ids' categories differ (which
    label is right?), else keep its first entry (``tags`` of the others set to ``None``), with one
    warning, as the CSV reader drops repeated rows."""
    first: dict[str, int] = {}
    repeats, conflicts = [], []
    for i, p in enumerate(paths):
        j = first.setdefault(p, i)
        if j != i:
            (repeats if tags[i] == tags[j] else conflicts).append((j, i))
    if conflicts:
        shown = "; ".join(f"{images[i]['file_name']!r} (image ids {images[j]['id']!r} and {images[i]['id']!r})"
                          for j, i in conflicts[:_SHOW])
        raise ManifestError(
            f"{path}: {counted(len(conflicts), 'file')} {'is' if len(conflicts) == 1 else 'are'} listed "
            f"under two image ids with different categories: {shown}. List each file once, with all "
            "its annotations on that one image id"
        )
    for _, i in repeats:
        tags[i] = None
    if repeats:
        warnings.warn(
            f"{path}: {counted(len(repeats), 'file')} listed twice with the same categories, read once: "
            f"{_names([images[i]['file_name'] for _, i in repeats])}",
            stacklevel=3,
        )


def _id_type_note(value: object, known: Iterable[object], what: str) -> str:
    """What a message about an unknown id adds when it names a known id but for its type
    (``"1"`` for ``1``), or ``""``."""
    same = next((k for k in known if str(k) == str(value) and type(k) is not type(value)), None)
    if same is None:
        return ""
    return (f": the {what} ids are {type(same).__name__}s ({same!r}) and this one a "
            f"{type(value).__name__} ({value!r}), the same id but for its type: write them all "
            "as numbers or all as strings")


def _coco_classes(doc: dict, path: str) -> tuple[list[dict], list[str]]:
    """The categories of an iNat/COCO JSON in class order (by id, numerically also when the ids
    are strings) and their class names (a blank name: its id; a name used twice: with its id)."""
    cats = _coco_entries(doc, "categories", {"id": (int, str)}, path)
    if len({type(c["id"]) for c in cats}) > 1:
        raise ManifestError(f"{path}: 'categories' ids mix numbers and strings: make them all one kind")
    seen_ids: set = set()
    for c in cats:
        if c["id"] in seen_ids:
            raise ManifestError(f"{path}: category id {c['id']!r} appears twice in 'categories': give "
                                "each category its own id")
        seen_ids.add(c["id"])
    order = class_order(str(c["id"]) for c in cats)  # string ids "2" before "10", as numbers
    rank = {c: i for i, c in enumerate(order)}
    cats = sorted(cats, key=lambda c: rank[str(c["id"])])
    names = [str(c.get("name") or c["id"]).strip() or str(c["id"]) for c in cats]  # a blank name: its id
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    names = [n if counts[n] == 1 else f"{n} ({c['id']})" for n, c in zip(names, cats)]
    _warn_spelling_variants(path, names)  # 'Bombus' and 'bombus' are two categories: say so
    return cats, names


def _coco_tags(annotations: Sequence[dict], path: str, img_index: dict, cat_index: dict,
               images: Sequence[dict]) -> list[set[int]]:
    """Each image's category indices from the annotations, refusing one that names an unknown
    image or category (saying when the id differs from a known one only in type). Annotations
    without a ``category_id`` label nothing, with one warning."""
    tags: list[set[int]] = [set() for _ in img_index]
    without: list[dict] = []
    for i, a in enumerate(annotations):
        # the entry by its place, as images[i] and categories[i] are named (and its id if any)
        entry = f"annotations[{i}]" + (f" (id {a['id']!r})" if a.get("id") is not None else "")
        if a.get("category_id") is None:
            without.append(a)
            continue
        if "image_id" not in a:
            raise ManifestError(f"{path}: {entry} has no 'image_id': every annotation names the "
                                "image it labels")
        for key in ("image_id", "category_id"):
            value = a[key]
            if isinstance(value, float) and value.is_integer():  # 1.0: pandas' ints beside a NaN
                a = {**a, key: int(value)}
            elif isinstance(value, bool) or not isinstance(value, int | str):  # a list: unhashable
                raise ManifestError(f"{path}: {entry} has {value!r} as its {key!r}; it needs one "
                                    "id (a whole number or a string)")
        if a["image_id"] not in img_index:
            raise ManifestError(f"{path}: {entry} refers to unknown image id "
                                f"{a['image_id']!r}{_id_type_note(a['image_id'], img_index, 'image')}")
        if a["category_id"] not in cat_index:
            note = _id_type_note(a["category_id"], cat_index, "category")
            raise ManifestError(
                f"{path}: {entry} refers to category id {a['category_id']!r} that is not in "
                f"'categories'{note}"
            )
        tags[img_index[a["image_id"]]].add(cat_index[a["category_id"]])
    if without:
        a = without[0]
        known = isinstance(a.get("image_id"), int | str) and a["image_id"] in img_index
        image = images[img_index[a["image_id"]]]["file_name"] if known else None
        warnings.warn(
            f"{path}: {counted(len(without), 'annotation has', 'annotations have')} no "
            f"'category_id' (e.g. annotation {a.get('id')!r}"
            + (f", of image {a['image_id']!r}: {image!r}" if image is not None else "")
            + f"), so {'it labels' if len(without) == 1 else 'they label'} nothing: an image "
            "without another annotation is read as unlabelled; give each its category id, or "
            "remove it",
            stacklevel=3,
        )
    return tags


def _coco_file_path(base: Path, file_name: str) -> str:
    """The absolute path of an image's ``file_name``: under ``base`` when relative; on Linux and
    macOS a Windows name's ``\\`` as ``/`` (``train\\a.jpg``), as the CSV reader reads one
    (not checked against the disk: an iNat file lists millions)."""
    if os.sep == "/":
        file_name = file_name.replace("\\", "/")
    return joined_path(base, file_name)


def from_coco_json(
    path: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    multilabel: bool | None = None,
    group_regex: str | None = None,
) -> Manifest:
    """Read an iNaturalist (2017–2021) or COCO-style annotation JSON.

    Uses ``images`` (``id``, ``file_name``), ``annotations`` (``image_id``, ``category_id``) and
    ``categories`` (``id``, ``name``). Classes are the categories sorted by id (ids need not be
    contiguous); their indices are stable across files sharing the category list. Images without
    an annotation are unlabelled (single-label) or tag-free (multi-label); a file of images only
    (no ``annotations`` and no ``categories``, as iNat's test sets) is read as unlabelled images
    without classes. An annotation without ``category_id`` labels nothing (one warning). File
    existence is checked on a sample of 20 images only (iNat has millions of files): none of
    them found stops with an error (a wrong ``image_root``); ``audit`` reports the missing ones
    otherwise. A gzip-compressed file (``train.json.gz``) is read as well.

    Args:
        path: the JSON file.
        image_root: folder that ``file_name`` is relative to (default: the JSON's folder).
        multilabel: ``None`` (auto: multi-label when an image carries several distinct
            categories), ``True`` or ``False`` (then an image with several categories is an error).
        group_regex: optional regex over the file name giving group ids.

    Returns:
        A Manifest with absolute paths.

    Example:
        >>> m = from_coco_json("inat2021/val.json", image_root="inat2021")   # doctest: +SKIP
    """
    path = os.fspath(Path(path).expanduser().absolute())
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path} is not valid JSON: {e}") from e
    if isinstance(doc, dict) and str(doc.get("format", "")).startswith("keras-species-shards/"):
        from keras_species.data.shards import shard_folder_problem  # lazy: shards imports sources

        raise ManifestError(shard_folder_problem(os.path.dirname(path)) or f"{path} describes shards")
    if not isinstance(doc, dict) or "images" not in doc:
        raise ManifestError(
            f"{path} is not an iNat/COCO annotation file: it needs an 'images' list, and "
            "'annotations' and 'categories' lists for labels"
        )
    base = Path(image_root).expanduser().absolute() if image_root is not None else Path(path).parent
    annotations = _coco_entries(doc, "annotations", {}, path)
    if not doc.get("categories") and any(a.get("category_id") is not None for a in annotations):
        raise ManifestError(f"{path}: 'categories' is {'empty' if 'categories' in doc else 'missing'}, "
                            "but its annotations name categories: list them (id and name)")
    cats, names = _coco_classes(doc, path)
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    images = _coco_entries(doc, "images", {"id": (int, str), "file_name": (str,)}, path)
    img_index = {}
    for i, im in enumerate(images):
        if im["id"] in img_index:
            raise ManifestError(f"{path}: image id {im['id']!r} appears twice in 'images'")
        img_index[im["id"]] = i
    tags: list[set[int] | None] = list(_coco_tags(annotations, path, img_index, cat_index, images))
    several = [i for i, t in enumerate(tags) if len(t) > 1]
    if multilabel is None:
        multilabel = bool(several)
    elif not multilabel and several:
        raise ManifestError(
            f"{path}: {counted(len(several), 'image')} carr{'ies' if len(several) == 1 else 'y'} several categories (e.g. "
            f"{images[several[0]]['file_name']!r}): pass multilabel=True"
        )
    paths = [_coco_file_path(base, im["file_name"]) for im in images]
    _merge_repeated_files(path, paths, images, tags)
    keep = [i for i, t in enumerate(tags) if t is not None]
    if len(keep) < len(paths):
        paths, images, tags = [paths[i] for i in keep], [images[i] for i in keep], [tags[i] for i in keep]
    sample = paths[:: max(1, len(paths) // 20)][:20]  # a wrong image root shows in any sample
    if sample and not any(os.path.isfile(p) for p in sample):
        raise ManifestError(
            f"{path}: none of {len(sample)} images sampled from its {len(paths)} exists under "
            f"{base} (e.g. {_names(sample, 2)}); give --root DIR, the folder that the file_name "
            "entries are relative to (in Python: image_root=)"
        )
    if multilabel:
        labels = np.zeros((len(images), len(names)), np.uint8)
        for i, t in enumerate(tags):
            labels[i, sorted(t)] = 1
    else:
        labels = np.array([next(iter(t)) if t else UNLABELLED for t in tags], np.int64)
    used = set().union(*tags) if tags else set()
    empty = [n for i, n in enumerate(names) if i not in used]
    if used and empty:  # (a file without any annotation, such as iNat's test set, is unlabelled)
        warnings.warn(
            f"{path}: {counted(len(empty), 'category', 'categories')} of its "
            f"{len(names)} without any image: {_names(empty, 10)}. "
            f"{'It stays' if len(empty) == 1 else 'They stay'} in the class list, so that the "
            "indices match other files sharing the category list, and a model trained on this "
            f"file alone would still get an output for {'it' if len(empty) == 1 else 'each'}, one "
            "it can never learn: train on the file that has "
            f"{'its' if len(empty) == 1 else 'their'} images, or leave "
            f"{'it' if len(empty) == 1 else 'them'} out of 'categories'",
            UserWarning,
            stacklevel=2,
        )
    groups = groups_from_regex(paths, group_regex) if group_regex else None
    return Manifest(paths, labels, names, groups=groups, source=path)


# ---------------------------------------------------------------------------------- dispatch
def _is_manifest_csv(path: str) -> bool:
    """Whether ``path`` starts as a manifest CSV does (:func:`manifest_csv_header`: also one a
    spreadsheet saved again, its first line quoted). A file that is not text is not one (its
    reader says why)."""
    try:
        lines = split_lines(read_text(path, limit=1 << 16))
    except ManifestError:
        return False
    return bool(lines) and manifest_csv_header(lines[0]) is not None


def _is_manifest_json(path: str) -> bool:
    """Whether ``path`` is a manifest JSON (:meth:`Manifest.to_json` names its format early)."""
    try:
        return "keras-species-manifest/" in read_text(path, limit=4096)
    except ManifestError:
        return False


def _data_suffix(path: str | os.PathLike) -> str:
    """The extension that says what a data file is, lower case: a compressed file's before its
    ``.gz`` (``labels.csv.gz`` is a ``.csv``; :func:`~keras_species.data.text.read_text`
    decompresses it)."""
    name = os.path.basename(os.fspath(path)).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return os.path.splitext(name)[1]


_FIXED = ("group_regex",)
"""The one option of a source whose paths and labels are fixed (the demo, a saved manifest, a
Manifest): its groups can be replaced."""


@dataclass(frozen=True)
class SourceKind:
    """What :func:`load` reads a source as, and the keyword options that apply to it.

    One description serves :func:`load` (which refuses the other options) and callers that
    share options between sources (a recipe's ``--root`` for ``--labelled`` and ``--unlabelled``).

    Args:
        kind: what the source is, as messages say it (``"a CSV"``, ``"the embedded demo set"``).
        options: the options of :func:`load` that apply (``root``, ``on_missing``...).
        note: what a message refusing other options says in brackets after ``leave it out``
            (default: the options that apply).
        lead: the words between the source's name and ``kind`` in messages.

    Example:
        >>> kind = source_kind("demo")
        >>> kind.kind, kind.options
        ('the embedded demo set', ('group_regex',))
        >>> kind.problem("demo", ["root"])[:71]
        'demo is read as the embedded demo set, to which --root (root=) does not'
    """

    kind: str
    options: tuple[str, ...]
    note: str = ""
    lead: str = "is read as"

    def problem(self, name: str, unknown: Sequence[str]) -> str:
        """The message refusing ``unknown`` options for the source called ``name``.

        Args:
            name: how the message names the source (its path, ``--unlabelled pool.csv``).
            unknown: the options that do not apply.

        Returns:
            One line: the options, why they do not apply, and what to do.

        Example:
            >>> SourceKind("a CSV", ("root",)).problem("l.csv", ["extensions"])
            'l.csv is read as a CSV, to which extensions=[...] (Python only) does not apply: leave it out (the options for a CSV: --root (root=))'
        """
        one = len(unknown) == 1
        note = self.note or f"the options for {self.kind}: {_option_names(self.options) or 'none'}"
        return (f"{name} {self.lead} {self.kind}, to which {_option_names(unknown)} "
                f"{'does' if one else 'do'} not apply: leave {'it' if one else 'them'} out ({note})")

    def check(self, name: str, options: Iterable[str]) -> None:
        """Refuse the options that do not apply (instead of ignoring them or a ``TypeError``).

        Args:
            name: how the message names the source.
            options: the option names given.

        Raises:
            ManifestError: :meth:`problem`'s message, when some option does not apply.

        Example:
            >>> source_kind("demo").check("demo", ["group_regex"])
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ManifestError(self.problem(name, unknown))


def _fixed(kind: str, read: Callable[[], Manifest]) -> tuple[SourceKind, Callable[..., Manifest]]:
    """A source whose paths and labels are fixed (the demo, a saved manifest, a Manifest): only
    ``group_regex`` applies; it gives a copy with the regex's groups (a Manifest given is left as
    it is)."""

    def read_regrouped(*, group_regex: str | None = None) -> Manifest:
        m = read()
        if group_regex:
            m = m.subset(np.arange(len(m)))
            m.groups = groups_from_regex(m.paths, group_regex)
        return m

    return SourceKind(kind, _FIXED, "its paths and labels are fixed; only --group-regex "
                      "(group_regex=) applies"), read_regrouped


def _list_kind(source: str | os.PathLike) -> tuple[SourceKind, Callable[..., Manifest]]:
    """A text list of paths, one per line (:func:`from_path_list`): its kind, saying why
    ``source`` is read as one, and its reading."""
    why = ("a .lst file is one" if _data_suffix(source) == ".lst" else
           f"its first line is not a CSV header naming a path column: {', '.join(PATH_COLUMNS)}")
    return _read_with(from_path_list, Path(source).expanduser(), f"a list of paths, one per line ({why})",
                      note="a list takes --root (root=), --on-missing (on_missing=) and "
                      "--group-regex (group_regex=); for other options give the data as a .csv file")


def _list_options_problem(source: str | os.PathLike, names: Sequence[str]) -> str:
    """Why options (``path_format``...) do not apply to a path list, and what to do instead."""
    return _list_kind(source)[0].problem(os.fspath(source), names)


def _keyword_options(reader: Callable[..., Manifest]) -> tuple[str, ...]:
    """The keyword-only arguments of a reader: the options :func:`load` passes to it."""
    import inspect

    params = inspect.signature(reader).parameters.values()
    return tuple(sorted(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY))


_OPTION_FLAGS = {"group_regex": "--group-regex", "group_col": "--group-col", "path_format": "--path-format", "root": "--root",
                 "image_root": "--root", "on_missing": "--on-missing"}
"""The commands' flag of each reader option that has one."""

_PYTHON_ONLY = {"extensions": "extensions=[...] (Python only)"}
"""How messages name reader options that no command has a flag for, where the keyword alone
would not do (every other one is ``name= (Python only)``: a command-line user would look for
``--extensions`` or ``--multilabel`` in vain)."""


def _option_names(names: Iterable[str]) -> str:
    """Reader options as messages name them, the flag first as everywhere: ``--root (root=)``;
    an option without a flag as its Python keyword: ``extensions=[...] (Python only)``,
    ``label_col= (Python only)``."""
    names = list(names)
    if "root" in names:  # an iNat/COCO JSON's image_root is --root as well: name it once
        names = [n for n in names if n != "image_root"]
    return ", ".join(f"{_OPTION_FLAGS[n]} ({n}=)" if n in _OPTION_FLAGS
                     else _PYTHON_ONLY.get(n, f"{n}= (Python only)") for n in names)


def source_name(source: str | os.PathLike | Manifest) -> str:
    """How messages name a source: the path as given, or, for a Manifest, the file it was read
    from (``manifest.source``).

    Args:
        source: anything :func:`load` takes.

    Returns:
        The name (``"the manifest"`` for a Manifest that does not know its file).

    Example:
        >>> source_name(Manifest(["a.png"], np.array([0]), ["cod"], source="fish.csv"))
        'fish.csv'
    """
    if isinstance(source, Manifest):
        return source.source or "the manifest"
    return os.fspath(source)


def _reader(source: str | os.PathLike | Manifest) -> tuple[SourceKind, Callable[..., Manifest]]:
    """How :func:`load` reads ``source``: its kind, and a function of the options that reads it."""
    if isinstance(source, Manifest):
        kind, read = _fixed("a Manifest, read already", lambda: source)
        return replace(kind, lead="is given as", note=(
            "they apply while a file is read: give the file's path instead, with them; only "
            "--group-regex (group_regex=) applies to a Manifest")), read
    if isinstance(source, str) and source == "demo":  # a Path is a path: Path("./demo") prints "demo"
        from keras_species.data.demo import load_demo

        if os.path.exists("demo"):
            warnings.warn(
                f"'demo' is the embedded demo set, so the {'folder' if os.path.isdir('demo') else 'file'} "
                f"'demo' in {os.getcwd()} is not read: give ./demo (or Path('demo')) to read it",
                stacklevel=3,
            )

        return _fixed("the embedded demo set", load_demo)
    p = Path(source).expanduser()
    if p.is_dir():
        return _read_with(from_folder, p, "a folder of class subfolders")
    if not p.exists():
        raise ManifestError(
            f"{source} does not exist: give 'demo', a folder of class subfolders, a CSV, an "
            "iNat/COCO JSON, a saved manifest or a .txt/.lst list of image paths"
        )
    suffix = _data_suffix(p)
    if suffix in (".csv", ".tsv") + LIST_EXTENSIONS:
        if _is_manifest_csv(str(p)):
            return _fixed("a saved manifest", lambda: Manifest.from_csv(p))
        if is_path_list(p):
            return _list_kind(p)
        return _read_with(from_csv, p, "a CSV")
    if suffix == ".json":
        if _is_manifest_json(str(p)):
            return _fixed("a saved manifest", lambda: Manifest.from_json(p))
        return _read_with(from_coco_json, p, "an iNat/COCO JSON", aliases={"root": "image_root"})
    raise ManifestError(
        f"{source}: unknown kind of source (extension {suffix!r}); give a folder, a .csv, a "
        ".json or a .txt/.lst list of image paths (also gzip-compressed: .csv.gz, .json.gz)"
    )


def _read_with(reader: Callable[..., Manifest], path: Path, kind: str, *, note: str = "",
               aliases: dict[str, str] | None = None) -> tuple[SourceKind, Callable[..., Manifest]]:
    """A file reader's kind (its keyword-only arguments are the options, plus ``aliases``: other
    names of them; ``note``: see :class:`SourceKind`) and its reading of ``path``. An iNat/COCO
    JSON's ``image_root`` is also ``root``: one name on the command line for "where relative
    paths start"."""
    aliases = aliases or {}

    def read(**kw: Any) -> Manifest:
        return reader(path, **{aliases.get(k, k): v for k, v in kw.items()})

    return SourceKind(kind, tuple(sorted({*_keyword_options(reader), *aliases})), note), read


def source_kind(source: str | os.PathLike | Manifest) -> SourceKind:
    """What :func:`load` would read ``source`` as, and the options that apply to it.

    Nothing is read but what tells the kind (a CSV's first line).

    Args:
        source: anything :func:`load` takes.

    Returns:
        A :class:`SourceKind`.

    Raises:
        ManifestError: the source does not exist or its kind is not recognised.

    Example:
        >>> "root" in source_kind("demo").options
        False
    """
    return _reader(source)[0]


def load(source: str | os.PathLike | Manifest, **kw) -> Manifest:
    """Load any supported source as a Manifest.

    Args:
        source: ``"demo"`` (the embedded fish demo), a folder of class subfolders, a ``.csv``
            (a saved manifest when it starts with ``# classes:``, else :func:`from_csv`), a
            ``.json`` (a saved manifest, else :func:`from_coco_json`), a ``.txt``/``.lst`` list
            of image paths, one per line (:func:`from_path_list`: unlabelled; a ``.txt`` whose
            first line names a path column is a CSV, :func:`is_path_list`), or a Manifest
            (returned as it is, or as a copy with new groups).
        **kw: passed to the reader (e.g. ``group_regex``, ``path_format``, ``root``; for an
            iNat/COCO JSON ``root`` stands for ``image_root``). The demo, a saved manifest and a
            Manifest take only ``group_regex`` (it replaces their groups); an option that does
            not apply to the source is refused rather than ignored (:func:`source_kind` says
            which apply).

    Returns:
        The Manifest.

    Raises:
        ManifestError: the source does not exist, its kind is not recognised, or an option does
            not apply to it (the message names the option, its flag, and the options that do).

    Example:
        >>> m = load("demo")
        >>> m.num_classes, m.groups[0] == m.groups[0]
        (6, True)
        >>> load(m, group_regex=r"fish_(\\d+)_") is m   # a copy with the regex's groups
        False
    """
    kind, read = _reader(source)
    kind.check(source_name(source), kw)
    return read(**kw)


def output_place_problem(source: str | os.PathLike | Manifest, out: str | os.PathLike,
                         *, folder: bool = False) -> str | None:
    """Why an output would replace or grow into the data it is made from, or None.

    An output file that *is* the source file (``split data.csv --out data.csv``, ``audit
    data.csv --clean-manifest data.csv``) would replace the user's CSV and lose its other
    columns. An output folder inside a source folder of class subfolders (``audit .`` run from
    the data folder, with its default ``--out audit``; a recipe's ``--out runs`` there) is read
    back by the next run as a class of its own (the report's plots become images of a class).

    Args:
        source: what :func:`load` reads (``"demo"``, a folder, a file), or a Manifest (its
            ``source``: ``audit(m, out_dir)`` in Python wrote its plots into the data folder,
            which the next load read as a class).
        out: the output file or folder.
        folder: ``out`` is a folder the command fills (a report, run folders): it may not lie
            inside a source folder. A file may (a ``split.csv`` beside the class folders is
            never read as an image).

    Returns:
        None, or the reason with what to give instead, as one line to follow the output's name.

    Example:
        >>> output_place_problem("demo", "audit", folder=True) is None
        True
    """
    if isinstance(source, Manifest):  # the folder or file it was read from, when known
        source = source.source
    if not source or str(source) == "demo":
        return None
    src, dest = Path(source).expanduser().resolve(), Path(out).expanduser().resolve()
    if src.is_file() and dest == src:
        table = dest.suffix.lower() in (".csv", ".tsv", ".txt", ".json")
        return (f"is the data it is made from: writing it would replace {source}"
                + (" (and drop its other columns)" if table else "")
                + f"; give another file, e.g. {dest.stem}.out{dest.suffix if table else '.csv'}")
    if folder and src.is_dir() and (dest == src or src in dest.parents):
        return (f"is inside the data folder {source}: the next run would read what is written "
                f"there as images of a class; give a folder outside it, e.g. "
                f"{src.parent / (src.name + '-' + dest.name)}")
    return None


def check_output_place(source: str | os.PathLike | Manifest, out: str | os.PathLike, flag: str,
                       *, folder: bool = False) -> None:
    """Raise :func:`output_place_problem`'s reason as a ``ValueError`` naming ``flag``.

    Args:
        source, out, folder: see :func:`output_place_problem`.
        flag: the option that gave ``out`` (``"--out"``).

    Raises:
        ValueError: ``<out> (<flag>) <reason>``.

    Example:
        >>> check_output_place("demo", "split.csv", "--out")
    """
    problem = output_place_problem(source, out, folder=folder)
    if problem:
        raise ValueError(f"{out} ({flag}) {problem}")


# ---------------------------------------------------------------------------------- CLI
def add_source_arguments(parser) -> None:
    """Add the ``DATA`` argument and the options of reading it to a subcommand's parser.

    Shared by ``keras-species audit``, ``split`` and ``shard``: ``--group-regex``,
    ``--group-col`` and ``--path-format`` (CSV), ``--root`` (CSV, path list and iNat/COCO JSON) and ``--on-missing``
    (CSV and path list).

    Args:
        parser: an ``argparse.ArgumentParser``.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser(); add_source_arguments(p)
        >>> source_options(p.parse_args(["list.csv", "--on-missing", "skip"]))
        {'on_missing': 'skip'}
    """
    parser.add_argument("data", nargs="?", default="demo",
                        help="the data: 'demo' (default), a folder of class subfolders, a CSV, an "
                        "iNat/COCO JSON, a saved manifest, or a .txt/.lst list of image paths, one "
                        "per line (without labels, so not for split)")
    parser.add_argument("--group-regex", default=None,
                        help=r"regex over the file name whose first group is the group id (the whole match without a group), e.g. 'fish_(\d+)_'")
    parser.add_argument("--group-col", default=None,
                        help="CSV only: the column of group ids (default: one named 'group' or "
                        "'group_id', if any)")
    parser.add_argument("--path-format", default=None,
                        help="CSV only: build paths from columns, e.g. '{class}/{file}'")
    parser.add_argument("--root", default=None,
                        help="CSV, path list or iNat/COCO JSON: the folder its relative paths "
                        "start from (default: the file's folder)")
    parser.add_argument("--on-missing", choices=("error", "skip"), default=None,
                        help="CSV or path list: rows (lines) whose file does not exist stop with "
                        "an error (default) or are left out with a warning")


def source_options(args) -> dict:
    """The keyword arguments of :func:`load` given on the command line (see
    :func:`add_source_arguments`); options left unset are left out.

    Args:
        args: the parsed ``argparse.Namespace``.

    Returns:
        A dict for ``load(args.data, **options)``.

    Example:
        >>> import argparse
        >>> source_options(argparse.Namespace(group_regex=None, path_format=None, root="img",
        ...                                   on_missing=None))
        {'root': 'img'}
    """
    names = ("group_regex", "group_col", "path_format", "root", "on_missing")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
