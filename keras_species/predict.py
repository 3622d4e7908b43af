"""Predict images with a trained classifier, streaming, and the ``keras-species predict`` command.

``predict(MODEL, INPUT)``: MODEL is a ``keras.Model``, a ``.keras`` file, a SavedModel folder
written by :func:`keras_species.export.export_model` (its ``serve`` signature is used), a run
folder (its ``best.keras``), or a ``feature_classifiers`` run folder: its backbone, rebuilt from
its ``config.json``, computes each image's features and its ``classifier.joblib`` (scikit-learn)
classifies them (:func:`open_predictor`; a pickle, read from the folder given only). A TFLite
model is not read: a ``.tflite`` file, or a folder holding one but no ``.keras`` file or
SavedModel, is refused in one line naming it and what to pass
instead; a folder of run folders (``runs/quickstart``) is refused naming a few of them, newest
first, with the command to run on one (:func:`keras_species.export.resolve_model_path`). INPUT
is an image file, a folder (searched recursively, image extensions only, sorted), a CSV, a text
file of paths or a list of paths. A CSV is read, and its paths resolved, by the
rules of the data readers (``sources.from_csv``, as ``audit``/``split`` and recipes read it): a
path column named one of :data:`PATH_COLUMNS` (any case) or paths built from columns with
``path_format`` (``--path-format '{class}/{file}'``); relative paths start at ``root``
(``--root``; one that is not an existing folder is refused before the model is opened), by
default the CSV's folder, or its ``images/`` subfolder when the files are there;
``,``, ``;`` or tab separated; a column named twice, a row with an empty path or a file that is
not UTF-8 is refused naming the line. One output row per CSV row (blank rows aside), a missing
file included (its error says so). A ``.txt`` or ``.lst`` file is a list of image paths, one per
line (blank lines and ``#`` comments skipped), resolved as a CSV's paths (``--root``, by default
the list's folder or its ``images/``) with one output row per line, missing files included; a
``.txt`` whose first line is a header naming a path column is read as a CSV, as ``audit`` and
``split`` read it (``sources.is_path_list``; the list is read by ``sources.read_path_list``).
Messages about the files of a CSV or list that could not be read name their lines and the file
looked for (resolved), and say so when the last line has no line end and its file is missing (a
copy cut off there).

The ``path`` column (and ``PredictionResult.paths``/``skipped``, ``PredictionBatch.paths``) holds
each image as the input names it, so that the output joins back to the input: for a CSV the path
cell as written (spaces around it aside; not resolved against ``root``, a Windows ``\\`` kept),
or with ``path_format`` the path it built from the row's cells (relative to ``root``, as built);
for a text list the line as written (spaces around it aside); for a folder the folder as given
joined with the file's path inside it (``photos/cod/001.jpg``); for an image or a Python list of
paths, the path as given. ``PredictionBatch.files`` holds the files read.
``keep_columns=[...]`` (``--keep-columns COL ...``) copies columns of a CSV input (an id, a site,
a true label) into the output, right after ``path``, on every row, skipped rows included;
``keep_columns=True`` (``--keep-all-columns``) copies every column but the path column. A name
the CSV lacks, and the option for any other input, are refused before any image is read. A kept
column named as one of the output's own columns (any case: ``labels`` of a CSV that
``keras-species split`` wrote, predicted with a multi-label model) is written as
``input_<name>`` (``input_labels``), with a note (:data:`KEPT_PREFIX`).

Streaming: the paths are enumerated lazily by a Python generator, fed to ``tf.data``
(``from_generator``), decoded in a parallel map (PIL, :func:`keras_species.data.images.read_image`:
every mode to RGB, EXIF orientation), resized exactly as the training pipeline does it
(``pipeline.resize_image``: area-averaged where the image shrinks, bilinear where it grows, rounded to 0–255), batched and prefetched two
batches ahead. Memory holds a few batches of images, never the whole input; only the ``(N, C)``
probabilities are kept (and not even those with ``keep_probabilities=False``, as the CLI does).

Unreadable files are skipped, not fatal: they appear in the output CSV in input order with an
empty prediction and the reason in the ``error`` column (one file for everything; filter with
``error != ""``), in :attr:`PredictionResult.skipped`, and in a warning. On the command line a
run that predicted nothing at all (every file unreadable, an empty folder or CSV) exits 2 with one
line saying why; its output CSV is written all the same.

Output CSV columns (kept CSV columns, if any, follow ``path``). Single-label: ``path, label_1,
prob_1, ..., label_k, prob_k, error`` (top-k, most probable first; ``top_k`` defaults to 5).
Multi-label: ``path, labels, probabilities, top_label, top_probability, error``, where
``labels``/``probabilities`` list the classes at or above their threshold (the thresholds saved
in the model, or ``thresholds=``), most probable first, joined by ``;``. Each setting applies to one kind of model and the other refuses it
rather than ignore it: ``top_k`` to single-label models (a multi-label row holds every class
that passes its threshold, however many), ``thresholds`` to multi-label ones.
``all_probabilities=True`` (``--all-probabilities``) adds one ``p_<class>`` column per class.

The label map (class names, multi-label flag, thresholds) comes from the model itself
(``keras_species.models.labels``); a model without one needs ``labels=`` (class names or a
``labels.json``), or a ``labels.json`` beside the model file.

Messages name each option as the caller gave it: the flag on the command line (``--top-k 3``,
``--keep-all-columns``, ``--out``), the keyword argument in Python (``top_k=3``,
``keep_columns=True``; an output path is named as passed), as ``keras-species export`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import numbers
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_species import csvfile
from keras_species.atomic import atomic_path, check_output_file
from keras_species.data import sources
from keras_species.data.images import add_max_pixels_flag, max_pixels_flag, max_pixels_hint
from keras_species.data.manifest import counted
from keras_species.data.pipeline import RESIZE_MODES
from keras_species.data.sources import PATH_COLUMNS, ListedFiles, heic_hint
from keras_species.export import (
    _command_line,
    _on_command_line,
    _option,
    _out_flag,
    _read_labels_option,
    _size_value,
    add_image_size_argument,
)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from keras_species.models.labels import LabelMap

__all__ = [
    "PATH_COLUMNS",
    "PredictionBatch",
    "PredictionResult",
    "configure_parser",
    "image_dataset",
    "iter_image_paths",
    "files_not_predicted",
    "iter_predictions",
    "links_not_followed",
    "open_predictor",
    "predict",
    "run_cli",
]

PathLike = str | os.PathLike
LABELS_JSON = "labels.json"
DEFAULT_TOP_K = 5


# ------------------------------------------------------------------------------------------ inputs
def _is_image(path: str) -> bool:
    from keras_species.data.images import IMAGE_EXTENSIONS

    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _folder_files(root: str, loops: list[str] | None = None,
                  unreadable: list[str] | None = None) -> Iterator[tuple[str, bool]]:
    """``(path, has an image extension)`` of every visible file under ``root``, sorted.

    The folder readers' rules (``sources.from_folder``), so that ``predict`` sees the files
    ``audit``, ``split`` and training see: hidden files and folders (``.DS_Store``,
    ``.thumbnails/``), ``__MACOSX`` and ``Thumbs.db`` are passed over, and folder links are
    followed, except one that leads back to a folder above it (a loop, which ``os.walk`` would
    follow until the path is too long) or to a folder already read: those are appended to
    ``loops`` when it is given. A folder that cannot be listed (no permission) is appended to
    ``unreadable``, with the reason.
    """
    # as sources._image_files: plain folders are always read; a link is followed unless it leads
    # to, into or above the folder or a link followed (a loop, or images read anyway). Judging
    # plain folders by their real path too made a link that sorts first claim its target, and
    # the real folder was named a link not followed
    read = [os.path.realpath(root)]
    refused = loops if loops is not None else []

    def cannot_list(error: OSError) -> None:
        if unreadable is not None:
            unreadable.append(f"{error.filename} ({error.strerror or error})")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=cannot_list):
        dirnames[:] = sorted(d for d in dirnames if not sources.is_hidden(d))
        sources.walk_into(dirpath, dirnames, read, 1, refused)
        for name in sorted(filenames):
            if not sources.is_hidden(name):
                yield os.path.join(dirpath, name), _is_image(name)


def _iter_folder(root: str) -> Iterator[str]:
    return (path for path, image in _folder_files(root) if image)


def _as_path_list(inputs: Any) -> Any:
    """``inputs`` as :func:`predict` reads it: a NumPy array, a pandas column, a set or a
    generator of paths becomes a list (only a list or a tuple was read as paths: an array failed
    with ``expected str, bytes or os.PathLike object, not ndarray`` after the model loaded); a
    path, a list, a tuple and a ``ListedFiles`` are returned as they are.

    Raises:
        TypeError: an element that is not a path.
    """
    if isinstance(inputs, (str, bytes, os.PathLike, list, tuple, ListedFiles)) or not hasattr(inputs, "__iter__"):
        return inputs
    if isinstance(inputs, Mapping) or hasattr(inputs, "columns"):  # a dict or a DataFrame iterates
        raise TypeError(  # its keys or column names, not its paths
            f"inputs: a {type(inputs).__name__} is a table: give its column of paths "
            "(df['path']), or the CSV file itself")
    if isinstance(inputs, (set, frozenset)):
        inputs = sorted(inputs, key=os.fspath)  # rows in a stable order, not a hash's
    paths = list(inputs)
    paths = [os.fsdecode(p) if isinstance(p, bytes) else p for p in paths]
    bad = next((p for p in paths if not isinstance(p, (str, os.PathLike))), None)
    if bad is not None:
        raise TypeError(f"inputs: {type(inputs).__name__} holding {bad!r} ({type(bad).__name__}): give "
                        "image paths (str or pathlib.Path), a folder, a CSV or a .txt list of paths")
    return [os.fspath(p) for p in paths]


def _check_input_exists(inputs: PathLike | Sequence[PathLike] | ListedFiles) -> None:
    """Refuse an input path that does not exist, naming it (a list of paths passes: each missing
    file is a skipped row), and a folder of TFRecord shards or its ``shards.json``."""
    if isinstance(inputs, (str, os.PathLike)) and not os.path.exists(os.fspath(inputs)):
        raise FileNotFoundError(f"input {os.fspath(inputs)} does not exist: pass an image, a "
                                "folder, a CSV or a .txt list of paths")
    shards = _shard_input_problem(inputs)
    if shards:
        raise ValueError(shards)


_SHARD_READERS = "predict (and export's --representative) read"


def _shard_input_problem(inputs) -> str | None:
    """What ``predict`` says of a folder of TFRecord shards, or its ``shards.json``, given as
    INPUT (as ``audit`` and ``split`` name one), or ``None``: it reads images, and the shards'
    records are not listed one per row."""
    if not isinstance(inputs, (str, os.PathLike)):
        return None
    from keras_species.data.shards import SIDECAR, shard_folder_problem  # lazy: TensorFlow-free

    path = os.fspath(inputs)
    if os.path.basename(path) == SIDECAR:
        return shard_folder_problem(os.path.dirname(path) or ".", readers=_SHARD_READERS)
    if not os.path.isdir(path):
        return None
    with os.scandir(path) as entries:  # images or folders beside shards.json: a photo folder
        if any(not sources.is_hidden(e.name) and (e.is_dir() or _is_image(e.name)) for e in entries):
            return None
    return shard_folder_problem(path, readers=_SHARD_READERS)


def _swapped_hint(inputs) -> str:
    """What a message refusing the model adds when ``inputs`` is a model (a ``.keras``/``.h5``
    file, a run or SavedModel folder): the two were given the wrong way round, or ``""``."""
    if not isinstance(inputs, (str, os.PathLike)):
        return ""
    path = Path(inputs)
    model = (path.is_file() and path.suffix.lower() in (".keras", ".h5", ".hdf5")) or (
        path.is_dir() and any((path / name).is_file()
                              for name in ("best.keras", "saved_model.pb", "classifier.joblib")))
    if not model:
        return ""
    order = ("keras-species predict MODEL INPUT" if _on_command_line()
             else "predict(model_or_path, inputs)")
    return f"The input {path} is a model: the model comes first ({order})."


def _check_batch_size(batch_size: int) -> None:
    """Refuse a batch size that is not a whole number >= 1, naming the option as given."""
    whole = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    if not whole or batch_size < 1:
        raise ValueError(f"{_option('batch_size', batch_size)}: must be a whole number >= 1")


def files_not_predicted(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    """The files of an input folder that :func:`iter_image_paths` passes over: their extension
    is not an image extension (``.heic``, ``.txt``, ...). Hidden files are not listed.

    Args:
        inputs: as for :func:`iter_image_paths`; only a folder can hold such files.

    Returns:
        Their paths, sorted as the folder is walked (empty for a file, a CSV or a list).

    Example:
        >>> files_not_predicted("photos")  # doctest: +SKIP
        ['photos/notes.txt']
    """
    return _left_out(inputs)[0]


def links_not_followed(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    """The folder links of an input folder that :func:`iter_image_paths` does not follow: each
    leads back to a folder above it (a loop) or to a folder already read, whose images would
    otherwise be predicted again (``audit``, ``split`` and training leave them out too).

    Args:
        inputs: as for :func:`iter_image_paths`; only a folder can hold such links.

    Returns:
        Their paths, in the order the folder is walked (empty for a file, a CSV or a list).

    Example:
        >>> links_not_followed("photos")  # doctest: +SKIP
        ['photos/cod/again']
    """
    return _left_out(inputs)[1]


def _left_out(inputs: PathLike | Sequence[PathLike]) -> tuple[list[str], list[str]]:
    """:func:`files_not_predicted` and :func:`links_not_followed` in one walk of the folder."""
    if not isinstance(inputs, (str, os.PathLike)) or not os.path.isdir(os.fspath(inputs)):
        return [], []
    loops: list[str] = []
    unreadable: list[str] = []
    others = [path for path, image in _folder_files(os.fspath(inputs), loops, unreadable) if not image]
    if unreadable:  # before: left out without a word
        shown = ", ".join(unreadable[:3]) + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
        warnings.warn(f"could not list {counted(len(unreadable), 'folder')}: {shown}; the images in "
                      "them are not predicted: give this user read and execute permission on "
                      "them (chmod u+rx)", stacklevel=3)
    return others, loops


def _loops_line(loops: list[str]) -> str:
    """One line naming the folder links :func:`links_not_followed` found."""
    shown = ", ".join(loops[:3]) + (f" and {len(loops) - 3} more" if len(loops) > 3 else "")
    return (f"did not follow {counted(len(loops), 'folder link')}: {shown} (each leads back to a "
            "folder above it, a loop, or to a folder already read, whose images would be "
            "predicted twice)")


def _is_csv(inputs: PathLike | Sequence[PathLike] | ListedFiles) -> bool:
    """Whether ``inputs`` is a CSV file that lists the images: a ``.csv`` or ``.tsv``, or a
    ``.txt`` whose first line is a header naming a path column (``sources.is_path_list``)."""
    if not isinstance(inputs, (str, os.PathLike)):
        return False
    path = os.fspath(inputs)
    if not os.path.isfile(path):
        return False
    return path.lower().endswith((".csv", ".tsv")) or (
        path.lower().endswith(".txt") and not sources.is_path_list(path))


def _is_path_list(inputs: PathLike | Sequence[PathLike] | ListedFiles) -> bool:
    """Whether ``inputs`` is a text file of image paths, one per line (``sources.is_path_list``)."""
    return isinstance(inputs, (str, os.PathLike)) and sources.is_path_list(inputs)


def _listed_files(inputs: PathLike | Sequence[PathLike] | ListedFiles, root: PathLike | None = None,
                  path_format: str | None = None) -> ListedFiles | None:
    """The files a CSV or a text list names, with their lines, read by the data readers' rules
    (``sources.read_csv_paths``, ``sources.read_path_list``); ``None`` for any other input."""
    if isinstance(inputs, ListedFiles):
        return inputs
    if _is_csv(inputs):
        return sources.read_csv_paths(inputs, root, path_format)
    if _is_path_list(inputs):
        return sources.read_path_list(inputs, root)
    return None


_CSV_OPTIONS = {"root": "says where a CSV's or list's relative paths start",
                "path_format": "builds a CSV's paths from its columns"}


def _check_csv_options(inputs: PathLike | Sequence[PathLike], root, path_format) -> None:
    """Refuse ``root``/``path_format`` for an input they would not apply to (``root`` applies to
    a CSV and a text list of paths, ``path_format`` to a CSV only), and a ``root`` that is not
    an existing folder (every file would be looked for there in vain)."""
    given = [n for n, v in (("root", root), ("path_format", path_format)) if v is not None]
    listed = not isinstance(inputs, (str, os.PathLike))  # paths given, or a list read already
    if not given or not (listed or os.path.exists(os.fspath(inputs))):
        return
    if _is_csv(inputs):
        _check_root(root, "a CSV")
        return
    if _is_path_list(inputs):
        if path_format is not None:
            raise ValueError(sources._list_options_problem(os.fspath(inputs), ["path_format"]))
        _check_root(root, "a list")
        return
    what = "a list of paths" if listed else os.fspath(inputs)
    one = len(given) == 1
    why = "; ".join(f"{_option(n)} {_CSV_OPTIONS[n]}" for n in given)
    raise ValueError(f"{what} is not a CSV, to which {' and '.join(_option(n) for n in given)} "
                     f"{'does' if one else 'do'} not apply: leave {'it' if one else 'them'} out "
                     f"({why})")


def _check_root(root: PathLike | None, what: str) -> None:
    """Refuse a ``root`` that is not an existing folder, naming it, before anything is read."""
    if root is None:
        return
    folder = Path(root).expanduser()
    if folder.is_dir():
        return
    error, problem = ((NotADirectoryError, "is a file, not a folder") if folder.exists()
                      else (FileNotFoundError, "does not exist"))
    raise error(
        f"{_option('root', root)} {problem}: give the folder that the relative paths of {what} "
        f"start from, or leave {_option('root')} out (they start at its folder, or its images/ "
        "subfolder)"
    )


@dataclass
class _Rows:
    """The rows of a CSV or text list as :func:`predict` reports them.

    Args:
        files: the files to read (``sources.ListedFiles``: resolved paths, lines).
        given: each row's path as written in the input: the CSV cell (or the path that
            ``path_format`` built from its cells), the list's line (spaces around it aside).
        columns: the kept CSV columns (``keep_columns``), name → one value per row.
    """

    files: ListedFiles
    given: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)


_KEEP_FLAG = {True: "--keep-all-columns", False: "--keep-columns"}


def _keep_option(keep_all: bool) -> str:
    """``keep_columns`` in messages, as the caller gave it: ``--keep-columns`` or
    ``--keep-all-columns`` on the command line, ``keep_columns=[...]`` or ``keep_columns=True``
    in Python."""
    if _on_command_line():
        return _KEEP_FLAG[keep_all]
    return f"keep_columns={'True' if keep_all else '[...]'}"


def _keep_request(keep_columns) -> tuple[list[str], bool]:
    """``(names, every column)`` asked for by ``keep_columns`` (``None``/``False``/``[]``: none)."""
    if keep_columns is None or keep_columns is False:
        return [], False
    if keep_columns is True:
        return [], True
    if isinstance(keep_columns, (str, os.PathLike)):
        keep_columns = [keep_columns]
    names = [os.fspath(c) if isinstance(c, os.PathLike) else c for c in keep_columns]
    bad = [c for c in names if not isinstance(c, str) or not c.strip()]
    if bad:
        raise ValueError(f"{_option('keep_columns')} takes column names; got {bad[0]!r}")
    return list(dict.fromkeys(c.strip() for c in names)), False  # a name given twice: kept once


def _refuse_keep_columns(inputs, keep_all: bool) -> None:
    """``keep_columns`` for an input that has no columns: refused, naming what the input is."""
    opt = _keep_option(keep_all)
    if isinstance(inputs, ListedFiles):
        what = (f"the sources.ListedFiles of {inputs.source} carries paths only: pass the CSV "
                "file itself")
    elif not isinstance(inputs, (str, os.PathLike)):
        what = "a list of paths has no other columns: leave it out"
    else:
        _check_input_exists(inputs)
        path = os.fspath(inputs)
        if _is_path_list(path):
            what = f"{path} is read as a list of paths, one per line, which has no columns"
        else:
            what = f"{path} is {'a folder' if os.path.isdir(path) else 'not a CSV'}"
        what += ": leave it out"
    raise ValueError(f"{opt} copies columns of a CSV input to the output, and {what}")


def _kept_names(source: str, header: Sequence[str], path_column: str | None, names: list[str],
                keep_all: bool) -> list[str]:
    """The CSV's columns to copy to the output, as its header spells them: ``names`` (exactly,
    or in another case when only one column matches), or with ``keep_all`` every named column
    but the path column (the output's ``path`` holds it as written)."""
    if keep_all:
        return [h for h in header if h and h != path_column]
    found, unknown = [], []
    for name in names:
        if name in header:
            found.append(name)
            continue
        same = [h for h in header if h.lower() == name.lower()]
        if len(same) == 1:  # another case, as the path column is found
            found.append(same[0])
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{source} has no column {', '.join(map(repr, unknown))} to keep "
                         f"({_keep_option(False)}); its columns are {[h for h in header if h]}")
    return list(dict.fromkeys(found))


def _read_rows(inputs: PathLike | Sequence[PathLike] | ListedFiles, root: PathLike | None = None,
               path_format: str | None = None, keep_columns=None) -> _Rows | None:
    """The rows of a CSV or text list, read by ``sources.read_csv_paths``/``read_path_list``
    (each path as written, and the ``keep_columns``); ``None`` for any other input
    (``keep_columns`` is refused for it).

    Raises:
        ManifestError: as ``sources.read_csv_paths``/``read_path_list``.
        ValueError: a kept column the CSV lacks (naming its columns), or ``keep_columns`` for an
            input that is not a CSV.
    """
    names, keep_all = _keep_request(keep_columns)
    keep = keep_all or bool(names)
    if keep and (isinstance(inputs, ListedFiles) or not _is_csv(inputs)):
        _refuse_keep_columns(inputs, keep_all)  # raises: only a CSV has columns to keep
    files = _listed_files(inputs, root, path_format)
    if files is None:
        return None
    kept = _kept_names(files.source, files.header, files.path_column, names, keep_all) if keep else []
    return _Rows(files, list(files.given or files.paths), {c: [r[c] for r in files.rows] for c in kept})


def iter_image_paths(
    inputs: PathLike | Sequence[PathLike] | ListedFiles,
    *,
    root: PathLike | None = None,
    path_format: str | None = None,
) -> Iterator[str]:
    """The image paths named by ``inputs``, lazily (a folder is walked as it is consumed; a CSV is
    read whole when the first path is asked for).

    Args:
        inputs: an image file, a folder (recursive; image extensions only; sorted), a ``.csv``/
            ``.tsv`` with a path column (:data:`PATH_COLUMNS`; read and resolved as
            ``sources.from_csv`` does; a ``.txt`` whose first line names one is a CSV too), a
            ``.txt``/``.lst`` list of image paths, one per line (blank and ``#`` lines skipped;
            resolved as a CSV's), a list/tuple of image paths, or the ``sources.ListedFiles`` of
            a CSV or list read already.
        root: CSV or text list only: the folder its relative paths start from (default: its
            folder, or its ``images/`` subfolder when the files are there).
        path_format: CSV only: build the paths from columns, e.g. ``"{class}/{file}"``.

    Returns:
        An iterator of path strings (one per CSV row or list line, missing files included).

    Raises:
        FileNotFoundError: ``inputs`` does not exist.
        ManifestError: a CSV that ``sources.from_csv`` would refuse (see ``sources.read_csv_paths``), or
            a text list that is not UTF-8.
        ValueError: ``root`` for an input that is neither a CSV nor a text list, or
            ``path_format`` for one that is not a CSV.

    Example:
        >>> next(iter_image_paths("photos"))  # doctest: +SKIP
        'photos/cod/001.jpg'
    """
    inputs = _as_path_list(inputs)
    _check_csv_options(inputs, root, path_format)
    if isinstance(inputs, (list, tuple)):
        for p in inputs:
            yield os.fspath(p)
        return
    listed = _listed_files(inputs, root, path_format)
    if listed is not None:
        yield from listed.paths
        return
    path = os.fspath(inputs)
    if os.path.isdir(path):
        yield from _iter_folder(path)
    elif os.path.isfile(path):
        yield path
    else:
        _check_input_exists(path)


def _read(path: bytes, draft: tuple[int, int] | None = None) -> tuple[np.ndarray, bytes]:
    """``(image uint8 (H, W, 3), b"")`` or ``(1x1 black image, reason)`` for an unreadable file;
    ``draft``: the output size, for JPEGs decoded at a reduced scale as in training."""
    from keras_species.data import images

    p = os.fsdecode(path)
    if not sources.is_utf8_name(p):  # a row of the output CSV could not name it
        return np.zeros((1, 1, 3), np.uint8), (
            b"its name is not valid UTF-8: rename it in UTF-8 (e.g. convmv -f latin1 -t utf-8 FILE)")
    try:
        return images.read_image(p, draft=draft), b""
    except images.ImageReadError as err:
        reason = err.reason or str(err)
        if reason == sources.HEIC_REASON:  # the one reason with a fix of its own: how to convert
            reason = f"{reason}: {sources.HEIC_ADVICE}"
        return np.zeros((1, 1, 3), np.uint8), reason.encode("utf-8")
    except Exception as err:  # noqa: BLE001  anything else is a skipped file, never a crash
        return np.zeros((1, 1, 3), np.uint8), f"{type(err).__name__}: {err}".encode()


PATH_CHUNK = 64
"""Paths that :func:`image_dataset`'s source takes from the input at a time (names only: the
images are read as their batches are drawn)."""


def image_dataset(
    inputs: PathLike | Sequence[PathLike] | ListedFiles,
    image_size: int | Sequence[int],
    batch_size: int = 32,
    *,
    resize: str = "stretch",
    root: PathLike | None = None,
    path_format: str | None = None,
) -> tf.data.Dataset:
    """A lazy ``tf.data.Dataset`` of ``(paths [B], images uint8 [B, H, W, 3], errors [B])``.

    Decoding and resizing are those of the training pipeline (PIL reading,
    ``pipeline.resize_image``, rounded to 0–255). An unreadable file gives a black image and its
    reason in ``errors`` (empty string for good files), so rows stay in input order.

    Args:
        inputs: see :func:`iter_image_paths`.
        image_size: ``S`` or ``(H, W)``.
        batch_size: images per batch.
        resize: ``"stretch"``, ``"pad"`` or ``"crop"`` (see ``pipeline.resize_image``).
        root: CSV or text list input only: the folder its relative paths start from.
        path_format: CSV input only: build the paths from columns, e.g. ``"{class}/{file}"``.

    Returns:
        The dataset (two batches prefetched).

    Example:
        >>> for paths, images, errors in image_dataset("photos", 224, 64):  # doctest: +SKIP
        ...     pass
    """
    import tensorflow as tf

    from keras_species.cpu_budget import usable_cores
    from keras_species.data.allocator import tune_malloc
    from keras_species.data.pipeline import check_resize, dataset_options, resize_image, to_uint8

    _check_batch_size(batch_size)
    inputs = _as_path_list(inputs)
    _check_input_exists(inputs)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = os.fspath(inputs)
    size = check_resize(image_size, resize)
    tune_malloc()  # as the training pipeline: freed batches stay in the process
    named = inputs if isinstance(inputs, str) else "the list given"
    _check_csv_options(inputs, root, path_format)
    listed = _listed_files(inputs, root, path_format)  # a CSV or list: read and resolved once, here
    if listed is not None:
        named, inputs, root, path_format = listed.source, listed.paths, None, None
    # the first path now, in Python: a CSV without a path column fails here with its message,
    # not inside the dataset's generator (where TensorFlow wraps it in a traceback)
    if next(iter(iter_image_paths(inputs, root=root, path_format=path_format)), None) is None:
        warnings.warn(f"no images found in {named}: nothing to predict", stacklevel=2)

    @tf.autograph.experimental.do_not_convert  # plain graph code, as the training pipeline's
    def load(path):
        img, err = tf.numpy_function(lambda p: _read(p, size), [path], (tf.uint8, tf.string),
                                     stateful=False)
        img = tf.reshape(img, tf.stack([tf.shape(img)[0], tf.shape(img)[1], 3]))
        img = to_uint8(resize_image(img, size, resize))
        err = tf.reshape(err, [])
        return path, img, err

    def path_chunks():
        # chunks, unbatched below: from_generator costs about 100 µs an element (a Python call
        # each, 0.11 of the 0.91 CPU ms an image that this stream took on the fish PNGs)
        paths = iter(iter_image_paths(inputs))
        while chunk := list(itertools.islice(paths, PATH_CHUNK)):
            yield np.array([os.fsencode(p) for p in chunk], dtype=object)  # bytes: any file name

    ds = tf.data.Dataset.from_generator(
        path_chunks, output_signature=tf.TensorSpec([None], tf.string)
    ).unbatch()
    # one call per usable core (not pipeline.decode_calls()): PIL's reading holds the GIL for
    # part of each call, and more calls in flight measured ~6% slower here. A count, not
    # AUTOTUNE: the fused map-and-batch buffers ceil(calls / batch) batches, and for AUTOTUNE
    # it counts the cores TensorFlow sees, 16 batches on a big host under a small CPU quota
    ds = ds.map(load, num_parallel_calls=usable_cores(), deterministic=True)
    return ds.batch(batch_size).prefetch(2).with_options(dataset_options(deterministic=True))


# ---------------------------------------------------------------------------------------- models
class _Predictor:
    """A loaded model: input size, label map, and ``(uint8 batch) -> probabilities``."""

    image_size: tuple[int, int]
    label_map: LabelMap

    def probabilities(self, images) -> np.ndarray:
        raise TypeError("use a subclass")

    def tta_model(self):
        """A callable ``model(x_float, training=False) -> outputs`` for ``predict_tta``."""
        raise TypeError("use a subclass")

    def tta_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The mean TTA outputs of :meth:`tta_model` as probabilities."""
        return self.label_map.probabilities(outputs)


class _KerasPredictor(_Predictor):
    def __init__(self, model: keras.Model, lmap: LabelMap, image_size=None) -> None:
        import tensorflow as tf

        from keras_species.export import label_output_model, model_image_size

        self.model = label_output_model(model)
        self.label_map = lmap
        self.image_size = model_image_size(self.model, image_size)
        h, w = self.image_size
        spec = tf.TensorSpec([None, h, w, 3], tf.uint8)
        self._fn = tf.function(
            lambda x: self.model(tf.cast(x, tf.float32), training=False), input_signature=[spec]
        )

    def probabilities(self, images) -> np.ndarray:
        return self.label_map.probabilities(self._fn(images).numpy())

    def tta_model(self):
        return self.model


def _load_saved_model(path: Path):
    """``tf.saved_model.load`` of ``path``, a damaged or incomplete folder named in one line: an
    emptied variables file gave a 37-line traceback ending ``IndexError: Read less bytes than
    requested``, a missing ``variables/`` TensorFlow's advice to load on another device."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    from keras_species.export import ExportError

    try:  # first: a SavedModel without variables (a TF1 graph, a tf.Module) is whole
        return tf.saved_model.load(os.fspath(path))
    except (OSError, IndexError, ValueError, DecodeError, tf.errors.OpError) as err:
        variables = path / "variables"
        if not (variables / "variables.index").is_file() or not any(
                f.stat().st_size for f in variables.glob("variables.data-*")):
            raise ExportError(f"SavedModel {path} is incomplete: it has no variables/variables.index "
                              "and data files (a copy cut short?); copy or export it again") from None
        reason = " ".join(str(err).split())[:200]  # a cut saved_model.pb: OSError "Cannot parse"
        raise ExportError(f"SavedModel {path} is damaged and cannot be loaded ({type(err).__name__}: "
                          f"{reason}); copy or export it again") from None


class _SavedModelPredictor(_Predictor):
    def __init__(self, path: Path, labels, image_size=None) -> None:
        from keras_species.models.labels import LabelMap, LabelMapError

        self.loaded = _load_saved_model(path)
        sigs = self.loaded.signatures
        if "metadata" in sigs and "serve" in sigs:  # written by keras_species.export
            meta = {k: v.numpy() for k, v in sigs["metadata"]().items()}
            names = [c.decode("utf-8") for c in meta["class_names"]]
            multilabel = bool(meta["multilabel"])
            self.label_map = LabelMap(names, multilabel, meta["thresholds"].tolist() if multilabel else None)
            if labels is not None:  # was ignored without a word before stop 30
                raise LabelMapError(_own_labels_refusal(f"SavedModel {path}", self.label_map))
            self.image_size = tuple(int(v) for v in meta["image_size"])
            self._serve, self._float = sigs["serve"], sigs["serve_float"]
            self._key, self._uint8 = "probabilities", True
            return
        # a plain SavedModel (e.g. Keras model.export): one float image input, labels from outside
        name = "serve" if "serve" in sigs else "serving_default"
        if name not in sigs:
            raise ValueError(f"SavedModel {path} has no 'serve'/'serving_default' signature")
        fn = sigs[name]
        spec = list(fn.structured_input_signature[1].values())
        if len(spec) != 1 or spec[0].shape.rank != 4:
            raise ValueError(f"SavedModel {path} signature {name!r} does not take one image batch")
        shape = spec[0].shape.as_list()
        self.image_size = _fixed_size(shape[1:3], image_size, str(path))
        outputs = list(fn.structured_outputs.values())
        width = outputs[0].shape[-1] if len(outputs) == 1 and outputs[0].shape.rank == 2 else None
        self.label_map = _check_label_width(_external_labels(labels, path), width, f"SavedModel {path}")
        self._serve = self._float = fn
        self._input = next(iter(fn.structured_input_signature[1]))
        self._dtype = spec[0].dtype
        self._key, self._uint8 = None, False

    def _call(self, fn, x):
        import tensorflow as tf

        if self._key is not None:
            return fn(images=x)[self._key]
        out = fn(**{self._input: tf.cast(x, self._dtype)})
        return out["label"] if "label" in out else next(iter(out.values()))

    def probabilities(self, images) -> np.ndarray:
        out = self._call(self._serve, images).numpy()
        return out if self._key is not None else self.label_map.probabilities(out)

    def tta_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return outputs if self._key is not None else self.label_map.probabilities(outputs)

    def tta_model(self):
        predictor = self

        def model(x, training=False):
            return predictor._call(predictor._float, x)

        return model


# ------------------------------------------------------------------ feature_classifiers runs
_FEATURE_SETTINGS = ("backbone", "weights", "image_size", "pooling")
"""The settings of a ``feature_classifiers`` run (its ``config.json``) that its features depend
on: what ``recipes.feature_classifiers`` passes to ``extract_features``."""


@dataclass(frozen=True)
class _FeatureRunSettings:
    """A ``feature_classifiers`` run's backbone settings, as its ``config.json`` holds them.

    Args:
        backbone: registry name.
        weights: ``"imagenet"`` or a weights file, as the registry takes them
            (``recipe.weights_setting``); never ``None`` (refused: a random backbone).
        image_size: the input side, or ``None`` for the backbone's own.
        pooling: ``"avg"``, ``"max"`` or ``"avgmax"``.
        config_path: the ``config.json`` read (messages name it).
    """

    backbone: str
    weights: str
    image_size: int | None
    pooling: str
    config_path: Path


def _feature_settings(folder: Path) -> _FeatureRunSettings:
    """The backbone settings of the ``feature_classifiers`` run ``folder`` (its ``config.json``),
    checked: one line naming the file and what to do when one is missing or unusable."""
    from keras_species.export import ExportError
    from keras_species.jsonfile import read_json_object
    from keras_species.training.features import FEATURE_POOLINGS
    from keras_species.training.runs import CONFIG
    from keras_species.weights_files import weights_setting

    path = folder / CONFIG
    restore = (f"copy back the config.json that recipes.feature_classifiers wrote into {folder}, "
               "or run the recipe again")
    needs = ("predict needs the run's backbone, weights, image size and pooling to compute the "
             "features its classifier.joblib takes")
    if not path.is_file():
        raise ExportError(f"{path} is missing: {needs}; {restore}")
    data, why = read_json_object(path)
    if why is not None:
        raise ExportError(f"{path} cannot be read ({why}): {needs}; {restore}")
    conf = data.get("config")
    conf = conf if isinstance(conf, dict) else {}
    missing = [k for k in _FEATURE_SETTINGS if k not in conf]
    if missing:
        raise ExportError(f"{path} lacks {', '.join(repr(k) for k in missing)} in its \"config\": "
                          f"{needs}; {restore}")
    backbone, weights, size, pooling = (conf[k] for k in _FEATURE_SETTINGS)
    bad = None
    if not isinstance(backbone, str) or not backbone:
        bad = ("backbone", backbone, "a backbone name")
    elif weights is not None and not isinstance(weights, str):
        bad = ("weights", weights, "'imagenet', 'none' or a weights file")
    elif size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        bad = ("image_size", size, "a whole number of pixels or null")
    elif pooling not in FEATURE_POOLINGS:
        bad = ("pooling", pooling, f"one of {', '.join(FEATURE_POOLINGS)}")
    if bad is not None:
        key, value, what = bad
        raise ExportError(f"{path}: its \"config\" gives {key} {value!r}, not {what}; {restore}")
    resolved = weights_setting(weights)
    if resolved is None:
        raise ExportError(
            f"{folder} is a feature_classifiers run of a backbone with random weights "
            f"(\"weights\": {weights!r} in {path}): its classifier was fitted on the features of "
            "a random initialisation, which cannot be made again, so predict cannot compute "
            "them; run the recipe with --weights imagenet (or a weights file) for a classifier "
            "that predict can use"
        )
    return _FeatureRunSettings(backbone, resolved, size, pooling, path)


def _feature_labels(folder: Path) -> LabelMap:
    """The class names of a ``feature_classifiers`` run, from its ``split.csv``: the manifest it
    ran on (``prepare_data`` saves it), whose class order is the classifier's column order."""
    from keras_species.data.splits import load_split
    from keras_species.export import ExportError
    from keras_species.models.labels import LabelMap

    path = folder / "split.csv"
    if not path.is_file():
        raise ExportError(
            f"{path} is missing: it names the classes of the feature_classifiers run {folder}, "
            "in the order of its classifier's columns; copy back the split.csv the run wrote"
        )
    m = load_split(path)  # ManifestError (a ValueError) naming the file and the fix
    if m.multilabel:  # recipes.feature_classifiers refuses multi-label data: not its split
        raise ExportError(f"{path} is a multi-label split, which recipes.feature_classifiers does "
                          "not fit classifiers on: copy back the split.csv the run wrote")
    return LabelMap(list(m.class_names))


def _load_feature_classifier(path: Path, num_classes: int):
    """The fitted estimator of a run's ``classifier.joblib`` (a pickle: loading it runs code from
    the file, which is why only the run folder the caller names is read), checked to predict
    probabilities of the run's classes."""
    import joblib

    from keras_species.export import ExportError, _feature_rerun

    refit = f"fit it again: {_feature_rerun(path.parent)}"
    try:
        estimator = joblib.load(path)
    except ModuleNotFoundError as err:  # an XGBoost classifier, say, without xgboost installed
        raise ExportError(f"{path} needs the package {err.name!r}, which is not installed: "
                          f"pip install {err.name}") from None
    except Exception as err:  # noqa: BLE001  a damaged pickle fails in many ways: one line
        reason = " ".join(str(err).split()) or "no message"
        raise ExportError(f"{path} cannot be loaded ({type(err).__name__}: {reason}): damaged "
                          f"or cut short? Copy it again from the run, or {refit}") from None
    classes = getattr(estimator, "classes_", None)
    if not callable(getattr(estimator, "predict_proba", None)) or classes is None:
        raise ExportError(f"{path} holds a {type(estimator).__name__}, not a fitted classifier "
                          f"with predict_proba: {refit}")
    classes = np.asarray(classes)
    if (classes.ndim != 1 or not classes.size or classes.dtype.kind not in "iu"
            or classes.min() < 0 or classes.max() >= num_classes):
        raise ExportError(f"{path} predicts the classes {classes.tolist()}, not indices of the "
                          f"{num_classes} classes of the run's split.csv: the two are not of the "
                          f"same run; {refit}")
    return estimator


def _feature_extractor(settings: _FeatureRunSettings, folder: Path):
    """The run's feature extractor, built as ``extract_features`` builds it
    (``features.backbone_extractor``), with a weights problem named for the run."""
    from keras_species.models.weights import ImageNetOfflineError, WeightsUnavailableError
    from keras_species.training.features import backbone_extractor

    weights = settings.weights
    if weights != "imagenet" and not Path(weights).expanduser().is_file():
        raise WeightsUnavailableError(
            f"{settings.config_path}: the weights of the run's backbone, {weights}, do not exist "
            "(moved or deleted?): its classifier was fitted on the features of those weights; "
            f"put the file back there, or write its new path as \"weights\" in {settings.config_path}")
    if weights != "imagenet":
        _check_fitted_weights(Path(weights).expanduser(), settings, folder)
    try:
        return backbone_extractor(settings.backbone, settings.image_size, weights,
                                  settings.pooling)
    except ImageNetOfflineError as err:  # the message names the file, its URL and the cache
        raise err.with_fix(
            "Either download the file elsewhere and copy it to that cache path (set KERAS_HOME to "
            "use another cache folder), or predict where the host can be reached: the classifier "
            f"of {folder} was fitted on the features of these weights, so no other will do."
        ) from None


def _check_fitted_weights(weights: Path, settings: _FeatureRunSettings, folder: Path) -> None:
    """Refuse a weights file whose content is not the one the run's classifier was fitted on
    (the SHA-256 its ``metrics.json`` keeps since stop 33): another file of the same name gave
    probabilities up to 0.998 off the run's own, without a word. A run written before keeps no
    digest, and is not checked."""
    from keras_species.jsonfile import read_json_object
    from keras_species.models.weights import WeightsUnavailableError
    from keras_species.training.features import weights_file_sha256
    from keras_species.training.runs import METRICS

    doc, reason = read_json_object(folder / METRICS)
    features = doc.get("features") if not reason else None
    fitted = features.get("weights_sha256") if isinstance(features, dict) else None
    if isinstance(fitted, str) and weights_file_sha256(weights) != fitted:
        raise WeightsUnavailableError(
            f"{weights} is not the weights file the classifier of {folder} was fitted on: its "
            f"content changed since the run (SHA-256 {weights_file_sha256(weights)[:12]}..., the "
            f"run's {fitted[:12]}...): put the run's file back there, or run the recipe again on "
            f"this one (config: {settings.config_path})")


class _FeatureRunPredictor(_Predictor):
    """A ``feature_classifiers`` run folder: the pooled features of its backbone (rebuilt from
    its ``config.json`` as ``extract_features`` built it) → its ``classifier.joblib``
    (``predict_proba``, placed in all the classes of its ``split.csv``)."""

    def __init__(self, folder: Path, image_size=None) -> None:
        import tensorflow as tf

        from keras_species.backbone_catalog import backbone_facts
        from keras_species.export import CLASSIFIER_JOBLIB, ExportError, _feature_rerun
        from keras_species.training.features import feature_input_size

        settings = _feature_settings(folder)
        try:
            backbone_facts(settings.backbone)
        except KeyError as err:  # before the pickle is read: the cheap checks first
            raise ExportError(f"{settings.config_path}: {err.args[0] if err.args else err}") from None
        self.image_size = feature_input_size(settings.backbone, settings.image_size)
        if image_size is not None and _fixed_size((None, None), image_size, "") != self.image_size:
            h, w = self.image_size
            raise ExportError(
                f"{_option('image_size', image_size)} but the feature_classifiers run {folder} "
                f"computes its features at {h}×{w} px: leave {_option('image_size')} out")
        self.label_map = _feature_labels(folder)
        self.classifier = _load_feature_classifier(folder / CLASSIFIER_JOBLIB,
                                                   self.label_map.num_classes)
        self.extractor = _feature_extractor(settings, folder)
        width = int(self.extractor.output_shape[-1])
        takes = getattr(self.classifier, "n_features_in_", None)
        if takes is not None and int(takes) != width:
            raise ExportError(
                f"{folder / CLASSIFIER_JOBLIB} takes {int(takes)} features, but the run's "
                f"{settings.backbone} ({settings.pooling} pooling) gives {width}: the classifier "
                f"was not fitted with the settings of {settings.config_path}; "
                f"fit it again: {_feature_rerun(folder)}")
        h, w = self.image_size
        spec = tf.TensorSpec([None, h, w, 3], tf.uint8)
        self._fn = tf.function(
            lambda x: self.extractor(tf.cast(x, tf.float32), training=False), input_signature=[spec]
        )

    def _classify(self, features) -> np.ndarray:
        from keras_species.training.features import classifier_probabilities

        x = np.asarray(features, np.float32)  # as extract_features keeps them
        return classifier_probabilities(self.classifier, x, self.label_map.num_classes)

    def probabilities(self, images) -> np.ndarray:
        return self._classify(self._fn(images).numpy()).astype(np.float32)

    def tta_model(self):
        predictor = self

        def model(x, training=False):
            return predictor._classify(predictor.extractor(x, training=False))

        return model


def _fixed_size(shape, image_size, what: str) -> tuple[int, int]:
    if image_size is not None:  # the one reading: 32.5 was cut to 32
        from keras_species.data.pipeline import size_pair

        return size_pair(image_size)
    if None in shape:
        raise ValueError(f"{what} takes images of any size: pass "
                         f"{_option('image_size', metavar='PX')}, the size to resize to")
    return int(shape[0]), int(shape[1])


def _check_csv_name(out: PathLike) -> None:
    """Refuse an ``out`` whose name says another format (``p.json`` got CSV text, stop 30;
    ``b.png`` a photo's name, whose image the CSV replaced, stop 32) or that is a run folder's own
    file (``predictions.csv``, ``split.csv``: stop 33)."""
    from keras_species.csvfile import csv_name_problem

    given = f"--out {out}" if _out_flag() else f"out={os.fspath(out)!r}"
    problem = csv_name_problem(out, given, "predict writes a CSV (one row per image)")
    if problem:
        if problem.endswith("ending in .csv"):
            problem += " (pandas.read_csv reads it; df.to_json turns it into JSON)"
        elif os.fspath(out) == "predictions.csv" and _out_flag():  # maybe never typed
            problem += " (predictions.csv is the default --out)"
        raise ValueError(problem)


def _check_label_width(lmap: LabelMap, width: int | None, what: str) -> LabelMap:
    """``lmap``, once its class names match the model's outputs one to one: a shorter list
    crashed after the model ran, a longer one wrote rows under the wrong header (stop 30)."""
    from keras_species.models.labels import LabelMapError

    if width is not None and width != lmap.num_classes:
        raise LabelMapError(
            f"{what} has {width} outputs but the label map {lmap.num_classes} class names "
            f"({', '.join(lmap.class_names[:5])}{', ...' if lmap.num_classes > 5 else ''}): give "
            "one name per output, in the model's output order"
        )
    return lmap


def _own_labels_refusal(what: str, own: LabelMap) -> str:
    """The message for ``labels`` given with a model that carries its own label map."""
    names = ", ".join(own.class_names[:5]) + (", ..." if own.num_classes > 5 else "")
    return (f"{what} carries its own label map ({own.num_classes} classes: {names}), which "
            f"{_option('labels')} would replace without a word: leave {_option('labels')} out "
            "(it is for a model that carries none)")


def _external_labels(labels, model_path: Path | None) -> LabelMap:
    """The label map from ``labels`` or a ``labels.json`` next to the model."""
    from keras_species.models.labels import LabelMap, LabelMapError, load_labels_json

    if isinstance(labels, LabelMap):
        return labels
    if isinstance(labels, (str, os.PathLike)):
        return load_labels_json(labels)
    if labels is not None:
        return LabelMap([str(c) for c in labels])
    if model_path is not None:
        for cand in (model_path / LABELS_JSON, model_path.parent / LABELS_JSON):
            if cand.is_file():
                return load_labels_json(cand)
    what = "a labels.json" if _on_command_line() else "class names or a labels.json"
    raise LabelMapError(
        f"model {model_path} carries no label map: pass {_option('labels', metavar='LABELS_JSON')} "
        f"({what}), or put a labels.json next to the model"
    )


def open_predictor(
    model_or_path: keras.Model | PathLike,
    *,
    labels: LabelMap | Sequence[str] | PathLike | None = None,
    image_size: int | Sequence[int] | None = None,
) -> _Predictor:
    """Load a model for :func:`predict` (Keras model, ``.keras``, SavedModel or run folder).

    A ``feature_classifiers`` run folder is read too: its backbone is rebuilt from its
    ``config.json`` (backbone, weights, image size, pooling) as ``extract_features`` built it,
    and its ``classifier.joblib`` classifies the features, with the class names of its
    ``split.csv``. ``classifier.joblib`` is a pickle, and loading a pickle runs code from the
    file: it is read from the run folder given here only, so give only run folders you trust.
    Such a run's settings are refused, in one line naming the file and the fix, when they cannot
    give the features its classifier was fitted on (a random backbone, ``weights: none``; a
    weights file that is gone), and so are a missing or damaged ``classifier.joblib``,
    ``config.json`` or ``split.csv``; ImageNet weights that are not cached while offline raise
    ``models.weights.ImageNetOfflineError`` naming the file, its URL and the cache.

    Args:
        model_or_path: the model or its path.
        labels: label map for a model that carries none (class names or a ``labels.json``);
            refused for a ``feature_classifiers`` run, whose class names are its own.
        image_size: input size for models whose size is not fixed (a ``feature_classifiers``
            run's is: any other is refused).

    Returns:
        A predictor with ``image_size``, ``label_map`` and ``probabilities(uint8_batch)``.

    Example:
        >>> open_predictor("runs/r1/demo").label_map.class_names  # doctest: +SKIP
        ['cod', 'eel', 'ray']
    """
    import keras

    import keras_species  # noqa: F401  (registers the custom layers)
    from keras_species.export import (
        ExportError,
        is_feature_run,
        is_saved_model,
        label_output_model,
        load_keras_model,
        resolve_model_path,
    )
    from keras_species.models.labels import LabelMapError, label_map

    path = None
    if not isinstance(model_or_path, keras.Model):
        path = resolve_model_path(model_or_path, feature_run=True)
        if is_saved_model(path):
            return _SavedModelPredictor(path, labels, image_size)
        if is_feature_run(path):
            if labels is not None:
                raise ExportError(
                    f"{path} is a feature_classifiers run, whose class names are those of its "
                    f"split.csv, in the order of its classifier's columns: leave "
                    f"{_option('labels')} out")
            return _FeatureRunPredictor(path, image_size)
    model = load_keras_model(path if path is not None else model_or_path)
    what = f"model {path}" if path is not None else f"model {model.name!r}"
    # the class output, checked first (several outputs and none named 'label': no --labels can
    # help, where it asked for them, then refused them); the labels' width is its own
    width = label_output_model(model).outputs[0].shape[-1]
    try:
        own = label_map(model)
    except LabelMapError:
        own = None
    if labels is not None and own is not None:
        raise LabelMapError(_own_labels_refusal(what, own))
    if own is not None:
        lmap = own
    elif labels is not None:
        lmap = _external_labels(labels, None)
    elif path is None:
        lmap = label_map(model)  # raises: the model carries none and no labels were given
    else:
        lmap = _external_labels(None, path)
    return _KerasPredictor(model, _check_label_width(lmap, width, what), image_size)


# ------------------------------------------------------------------------------------ prediction
@dataclass
class PredictionBatch:
    """One batch of predictions.

    Args:
        paths: the batch's paths as the input gives them (unreadable ones included, in input
            order): for a CSV its path cells (or the paths ``path_format`` built), for a text
            list its lines, as written; for a folder, an image or a list of paths, the files read.
        probabilities: ``(B, C)`` float32; rows of unreadable files are NaN.
        errors: ``B`` reasons, ``""`` for predicted images.
        files: the files read (a CSV's or list's paths resolved against its root); equal to
            ``paths`` for other inputs.
        columns: the kept CSV columns (``keep_columns``), name → ``B`` values.
    """

    paths: list[str]
    probabilities: np.ndarray
    errors: list[str]
    files: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PredictionResult:
    """What :func:`predict` returns.

    Args:
        paths: the predicted images, in input order (skipped files left out), as the output
            CSV's ``path`` column gives them (:class:`PredictionBatch`: a CSV's cells or a list's
            lines as written).
        probabilities: ``(N, C)`` float32, or ``None`` with ``keep_probabilities=False``.
        class_names: ``C`` class names.
        multilabel: multi-label model (thresholded) or single-label (argmax).
        thresholds: ``(C,)`` thresholds used (multi-label), else ``None``.
        skipped: ``(path, reason)`` of each unreadable file, the path as in ``paths``.
        out: the CSV written, if any.
        count: number of predicted images.
        not_images: files of an input folder left out for their extension
            (:func:`files_not_predicted`).
        skipped_lines: for a CSV or list input, the line of the input file that names each
            skipped file (in the order of ``skipped``); empty for other inputs.
        cut_note: for a CSV or list input, ``sources.ListedFiles.cut_note``: what messages
            add when its last line has no line end and names a missing file (else ``""``).
        skipped_files: the file each skipped entry named (resolved: where it was looked for),
            in the order of ``skipped``; messages name these.
        columns: the kept CSV columns (``keep_columns``), name → one value per entry of
            ``paths`` (empty with ``keep_probabilities=False``; the CSV has them all).
        links_not_followed: folder links of an input folder left out as loops or as folders
            read already (:func:`links_not_followed`).
        renamed_columns: kept CSV columns written to the output CSV under another name, CSV
            name → output name (``{"labels": "input_labels"}``): those named as an output
            column (:func:`kept_column_names`). ``columns`` keeps the CSV's names.

    Example:
        >>> result = predict("best.keras", "photos")  # doctest: +SKIP
        >>> result.top_k(3)[0]                         # doctest: +SKIP
        [('cod', 0.91), ('eel', 0.06), ('ray', 0.02)]
    """

    paths: list[str]
    probabilities: np.ndarray | None
    class_names: list[str]
    multilabel: bool
    thresholds: np.ndarray | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    out: Path | None = None
    count: int = 0
    not_images: list[str] = field(default_factory=list)
    skipped_lines: list[int] = field(default_factory=list)
    cut_note: str = ""
    skipped_files: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)
    links_not_followed: list[str] = field(default_factory=list)
    renamed_columns: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.count

    def _probs(self) -> np.ndarray:
        if self.probabilities is None:
            raise ValueError("probabilities were not kept (keep_probabilities=False); read the CSV")
        return self.probabilities

    def top_k(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ``(class, probability)`` of each image.

        Args:
            k: how many.

        Returns:
            One list per image, most probable first.
        """
        from keras_species.evaluation.metrics import ranked_classes

        probs = self._probs()
        order = ranked_classes(probs, max(1, k))
        return [[(self.class_names[j], float(p[j])) for j in o] for p, o in zip(probs, order)]

    def labels(self) -> list[str] | list[list[str]]:
        """Predicted label per image (single-label) or label set (multi-label, thresholds).

        Returns:
            Class names.
        """
        probs = self._probs()
        if not self.multilabel:
            return [self.class_names[j] for j in probs.argmax(axis=1)]
        return [[self.class_names[j] for j in np.flatnonzero(p >= self.thresholds)] for p in probs]


def _skipped_entries(result: PredictionResult) -> list[str]:
    """One ``line 3: <file>: <reason>`` per skipped file (``<file>: <reason>`` for an input
    without lines: a folder, a list of paths); the file as resolved, where it was looked for."""
    files = result.skipped_files or [p for p, _ in result.skipped]
    errors = [e for _, e in result.skipped]
    if result.skipped_lines:
        return [f"line {n}: {p}: {e}" for n, p, e in zip(result.skipped_lines, files, errors)]
    return [f"{p}: {e}" for p, e in zip(files, errors)]


def _check_top_k(lmap: LabelMap, top_k: int | None) -> None:
    """Refuse ``top_k`` for a multi-label model, where it would be ignored."""
    if lmap.multilabel and top_k is not None:
        raise ValueError(
            f"{_option('top_k', top_k)}: top-k applies to single-label (softmax) models, and this "
            "model is multi-label: its rows list every class at or above its threshold, so leave "
            f"{_option('top_k')} out ({_option('thresholds')} changes the thresholds; "
            f"{_option('all_probabilities', True)} adds every class's probability)"
        )


def _thresholds(lmap: LabelMap, override) -> np.ndarray | None:
    if not lmap.multilabel:
        if override is not None:  # would be ignored: say so rather than predict as if it applied
            raise ValueError(
                f"{_option('thresholds', override)}: thresholds apply to multi-label (sigmoid) "
                f"models, and this model is single-label: leave {_option('thresholds')} out (its "
                "CSV lists the top-k classes)"
            )
        return None
    if override is None:
        return lmap.threshold_array()
    from keras_species.models.labels import LabelMapError, _check_thresholds

    try:
        t = _check_thresholds(override, lmap.num_classes)
    except LabelMapError as e:  # named as given: --thresholds 1.5 on the command line
        raise LabelMapError(f"{_option('thresholds', override)}: {e}") from None
    return np.broadcast_to(np.asarray(t, np.float32), (lmap.num_classes,)).copy()


def iter_predictions(
    predictor: _Predictor,
    inputs: PathLike | Sequence[PathLike] | ListedFiles,
    *,
    batch_size: int = 32,
    tta: str | Sequence[str] | None = None,
    root: PathLike | None = None,
    path_format: str | None = None,
    keep_columns: Sequence[str] | bool | None = None,
    resize: str = "stretch",
) -> Iterator[PredictionBatch]:
    """Predict ``inputs`` batch by batch, lazily (a generator: nothing runs until iterated).

    Args:
        predictor: from :func:`open_predictor`.
        inputs: see :func:`iter_image_paths`.
        batch_size: images per batch.
        tta: ``None`` or a ``evaluation.tta`` preset/transform list (``"flips"``...).
        root: CSV or text list input only: the folder its relative paths start from.
        path_format: CSV input only: build the paths from columns, e.g. ``"{class}/{file}"``.
        keep_columns: CSV input only: columns to carry into each batch's ``columns`` (names,
            or ``True`` for all but the path column; see :func:`predict`).
        resize: how images reach the model's size, as it was trained: ``"stretch"`` (the
            default, and every recipe's), ``"pad"`` or ``"crop"`` (``pipeline.resize_image``).

    Returns:
        An iterator of :class:`PredictionBatch`.

    Example:
        >>> p = open_predictor("best.keras")                       # doctest: +SKIP
        >>> for batch in iter_predictions(p, "photos", batch_size=64):  # doctest: +SKIP
        ...     print(batch.paths[0], batch.probabilities[0].max())
    """
    from keras_species.evaluation.tta import predict_tta, requested_transforms

    tta = requested_transforms(tta)  # "none" (any case), "a,b": as predict() reads them
    rows = inputs if isinstance(inputs, _Rows) else None
    if rows is None:
        _check_csv_options(inputs, root, path_format)
        rows = _read_rows(inputs, root, path_format, keep_columns)
    if rows is not None:  # read and resolved once, here; the dataset reads its files
        inputs, root, path_format = rows.files, None, None
    tta_model = predictor.tta_model() if tta is not None else None
    row = 0
    for paths, images, errors in image_dataset(inputs, predictor.image_size, batch_size,
                                               root=root, path_format=path_format, resize=resize):
        files = [sources.shown_name(os.fsdecode(p)) for p in paths.numpy()]
        given, columns = files, {}
        if rows is not None:  # one batch row per listed row, in order
            given = rows.given[row:row + len(files)]
            columns = {c: v[row:row + len(files)] for c, v in rows.columns.items()}
        row += len(files)
        errs = [e.decode("utf-8") for e in errors.numpy()]
        if tta_model is not None:
            raw = predict_tta(tta_model, images.numpy(), transforms=tta, batch_size=batch_size)
            probs = predictor.tta_probabilities(raw)
        else:
            probs = predictor.probabilities(images)
        probs = np.array(probs, np.float32)
        bad = np.array([bool(e) for e in errs])
        probs[bad] = np.nan
        yield PredictionBatch(given, probs, errs, files=files, columns=columns)


def _prediction_columns(class_names: Sequence[str], multilabel: bool, k: int,
                        all_probabilities: bool) -> list[str]:
    """The output CSV's columns, kept CSV columns aside (they follow ``path``)."""
    if multilabel:
        head = ["path", "labels", "probabilities", "top_label", "top_probability"]
    else:
        head = ["path"] + [c for i in range(1, k + 1) for c in (f"label_{i}", f"prob_{i}")]
    return head + ["error"] + ([f"p_{c}" for c in class_names] if all_probabilities else [])


KEPT_PREFIX = "input_"
"""What a kept CSV column named as an output column is written as: ``input_<name>``
(:func:`kept_column_names`)."""


def kept_column_names(kept: Sequence[str], columns: Sequence[str]) -> dict[str, str]:
    """The output CSV's name of each kept CSV column: its own, or ``input_<name>`` for one named
    as one of the output's ``columns`` in any case (two columns of one name, or one in another
    case, would be misread: the CSV's true ``labels`` beside the predicted ones).

    A prefixed name that is taken too (the CSV keeps ``input_labels`` as well) gets a number:
    ``input_labels_2``, ``_3``...

    Args:
        kept: the kept CSV columns, as the CSV spells them.
        columns: the output's own columns (:func:`_prediction_columns`).

    Returns:
        CSV name → output name, for every kept column.

    Example:
        >>> kept_column_names(["split", "labels"], ["path", "labels", "probabilities", "error"])
        {'split': 'split', 'labels': 'input_labels'}
    """
    ours = {c.lower() for c in columns}
    clash = {k for k in kept if k.lower() in ours}
    taken = ours | {k.lower() for k in kept if k not in clash}
    names: dict[str, str] = {}
    for name in kept:
        if name not in clash:
            names[name] = name
            continue
        new, n = f"{KEPT_PREFIX}{name}", 2
        while new.lower() in taken:
            new, n = f"{KEPT_PREFIX}{name}_{n}", n + 1
        taken.add(new.lower())
        names[name] = new
    return names


def renamed_note(source: str, renamed: dict[str, str]) -> str:
    """The one line that says which kept columns of ``source`` are written under another name.

    Args:
        source: the CSV, as the user named it.
        renamed: CSV name → output name (:attr:`PredictionResult.renamed_columns`).

    Example:
        >>> renamed_note("data.csv", {"labels": "input_labels"})
        "kept column 'labels' of data.csv is written as 'input_labels': predict writes a 'labels' column of its own"
        >>> renamed_note("data.csv", {"labels": "input_labels", "error": "input_error"})
        "kept columns 'labels', 'error' of data.csv are written as 'input_labels', 'input_error': predict writes columns of those names of its own"
    """
    old = ", ".join(map(repr, renamed))
    new = ", ".join(map(repr, renamed.values()))
    if len(renamed) == 1:
        return (f"kept column {old} of {source} is written as {new}: predict writes a {old} "
                "column of its own")
    return (f"kept columns {old} of {source} are written as {new}: predict writes columns of "
            "those names of its own")


class _CsvWriter:
    """Streams prediction rows to an open CSV file (see the module docstring for the columns).

    :func:`predict` opens that file through :func:`keras_species.atomic.atomic_path`: rows go to
    a temporary sibling, moved over ``--out`` only when every input was read, so that a failed
    run never leaves a partial CSV or replaces an earlier one.
    """

    def __init__(self, file, class_names, multilabel: bool, thresholds, top_k: int,
                 all_probabilities: bool, keep: Sequence[str] = (),
                 keep_as: dict[str, str] | None = None) -> None:
        self.names = list(class_names)
        self.multilabel, self.thresholds = multilabel, thresholds
        self.k = max(1, min(top_k, len(self.names)))
        self.all = all_probabilities
        self.keep = list(keep)
        self.writer = csvfile.writer(file)
        head = _prediction_columns(self.names, multilabel, self.k, all_probabilities)
        self.width = head.index("error") - 1
        keep_as = keep_as or {}  # the header's name of a kept column (kept_column_names)
        self.writer.writerow(head[:1] + [keep_as.get(c, c) for c in self.keep] + head[1:])

    def write(self, batch: PredictionBatch) -> None:
        from keras_species.evaluation.metrics import ranked_classes

        kept = zip(*(batch.columns[c] for c in self.keep)) if self.keep else itertools.repeat(())
        ranked = np.nan_to_num(batch.probabilities, nan=-1.0)  # unreadable files' rows are NaN
        orders = ranked_classes(ranked, 1 if self.multilabel else self.k) if len(ranked) else ranked
        for path, p, err, values, order in zip(batch.paths, batch.probabilities, batch.errors, kept, orders):
            path = [path, *values]
            if err:
                self.writer.writerow(path + [""] * self.width + [err]
                                     + ([""] * len(self.names) if self.all else []))
                continue
            if self.multilabel:  # the tags at or above their thresholds, most probable first
                above = np.flatnonzero(p >= self.thresholds)
                above = above[np.argsort(-p[above], kind="stable")]
                top = int(order[0])
                row = path + [";".join(self.names[j] for j in above),
                              ";".join(csvfile.probability(p[j]) for j in above),
                              self.names[top], csvfile.probability(p[top])]
            else:
                row = path + [v for j in order for v in (self.names[j], csvfile.probability(p[j]))]
            self.writer.writerow(row + [""] + ([csvfile.probability(q) for q in p] if self.all else []))


def predict(
    model_or_path: keras.Model | PathLike,
    inputs: PathLike | Sequence[PathLike],
    *,
    out: PathLike | None = None,
    top_k: int | None = None,
    tta: str | Sequence[str] | None = None,
    batch_size: int = 32,
    image_size: int | Sequence[int] | None = None,
    thresholds: float | Sequence[float] | None = None,
    labels: LabelMap | Sequence[str] | PathLike | None = None,
    keep_probabilities: bool = True,
    all_probabilities: bool = False,
    root: PathLike | None = None,
    path_format: str | None = None,
    keep_columns: Sequence[str] | bool | None = None,
    resize: str = "stretch",
) -> PredictionResult:
    """Predict every image of ``inputs`` in batches, optionally streaming rows to a CSV.

    Everything that is cheap to check is checked before the model is opened (seconds for a
    large one): the settings, a CSV's or list's reading (``root``, ``path_format``,
    ``keep_columns``), the model path (its kind, a ``.keras`` file's archive), that ``inputs``
    exists, a ``labels.json`` and where ``out`` goes.

    Args:
        model_or_path: a ``keras.Model``, a ``.keras`` file, a SavedModel folder from
            ``keras_species.export``, a run folder (its ``best.keras``) or a
            ``feature_classifiers`` run folder (its backbone's features → its
            ``classifier.joblib``, a pickle: give only run folders you trust; see
            :func:`open_predictor`), or what :func:`open_predictor` returned: a model opened
            once for many calls (loading a SavedModel and tracing a Keras model take about a
            second each time otherwise).
        inputs: an image, a folder (recursive), a CSV with a path column, a ``.txt``/``.lst``
            file of paths, one per line (see :func:`iter_image_paths`), or a list of paths.
        out: CSV to write (columns in the module docstring); ``None`` for none.
        top_k: classes per row in the CSV of a single-label model (default 5; more than the
            model has gives them all). A multi-label model refuses it: its rows list the classes
            at or above their thresholds (change those with ``thresholds``).
        tta: test-time augmentation preset or transforms of ``evaluation.tta`` (``"flips"``,
            ``"flips_rot90"``, ``"five_crop"``...); ``None`` for plain inference.
        batch_size: images per batch.
        image_size: resize size; default the model's input size (needed only for models whose
            size is not fixed).
        thresholds: multi-label thresholds overriding those saved in the model (a single-label
            model refuses them: they would not apply).
        labels: label map for a model that carries none (class names or ``labels.json``).
        keep_probabilities: keep the ``(N, C)`` probabilities in the result (``False`` keeps
            memory flat for huge inputs; the CSV still has every row).
        all_probabilities: add a ``p_<class>`` column per class to the CSV.
        root: CSV or text list input only: the folder its relative paths start from (default:
            its folder, or its ``images/`` subfolder when the files are there).
        path_format: CSV input only: build the paths from columns, e.g. ``"{class}/{file}"``.
        keep_columns: CSV input only: columns of the CSV to copy into the output, right after
            ``path``, on every row (skipped files' rows included): their names (exactly, or in
            another case when only one column matches), or ``True`` for every column but the
            path column (``--keep-columns``/``--keep-all-columns``). A name the CSV lacks is
            refused before any image is read; so is the option for any other input. One named
            as an output column (``labels``, ``label_1``, ``error``, ``p_<class>``..., any
            case) is written as ``input_<name>``, with a warning
            (:func:`kept_column_names`; ``renamed_columns`` in the result).
        resize: how images reach the model's size, as the model was trained: ``"stretch"``
            (the default and every recipe's), ``"pad"`` or ``"crop"`` (a model trained on
            ``make_dataset(..., resize="pad")``).

    Returns:
        A :class:`PredictionResult` (``count`` 0 when nothing could be predicted: the
        command line then exits 2).

    Example:
        >>> r = predict("runs/r1/demo", "new_photos", out="predictions.csv", top_k=3)  # doctest: +SKIP
        >>> r.labels()[:2], r.skipped                                                  # doctest: +SKIP
        (['cod', 'ray'], [('new_photos/broken.jpg', 'empty file (0 bytes)')])
    """
    from keras_species.evaluation.tta import requested_transforms

    tta = requested_transforms(tta)  # "none" (any case) is plain inference
    inputs = _as_path_list(inputs)  # an array, a pandas column, a generator of paths
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1
    ):
        raise ValueError(f"{_option('top_k', top_k)}: must be a whole number >= 1")
    _check_batch_size(batch_size)
    if resize not in RESIZE_MODES:
        raise ValueError(f"{_option('resize', resize)}: give one of {', '.join(RESIZE_MODES)}, the "
                         "resize mode the model was trained with")
    _check_csv_options(inputs, root, path_format)
    # a CSV or list: read and resolved once, here, before the model (a kept column it lacks is
    # named now); its lines name skipped files
    rows = _read_rows(inputs, root, path_format, keep_columns)
    listed = rows.files if rows is not None else None
    source = inputs if rows is None else rows
    kept = list(rows.columns) if rows is not None else []
    if rows is not None:
        root = path_format = None
    opened = isinstance(model_or_path, _Predictor)
    if opened and (labels is not None or image_size is not None):
        given = _option("labels") if labels is not None else _option("image_size")
        raise ValueError(f"{given} is read when a model is opened: pass it to open_predictor, "
                         "or give predict the model itself")
    # the rest that is cheap to check, before the model is opened (seconds, for a large one)
    if isinstance(model_or_path, (str, os.PathLike)):  # named first, as on the command line
        from keras_species.export import ExportError, resolve_model_path

        try:
            # nothing loaded: names, headers (a feature_classifiers run's classifier.joblib
            # is a pickle, read by open_predictor only)
            model_or_path = resolve_model_path(model_or_path, feature_run=True)
        except ExportError as err:
            swapped = _swapped_hint(inputs)
            if not swapped:
                raise
            raise ExportError(f"{str(err).rstrip('.')}. {swapped}") from None
    _check_input_exists(inputs)
    labels = _read_labels_option(labels)  # a labels.json: small, read once here
    if out is not None:  # a folder, or a file on its way: named as atomic_path names it
        check_output_file(out, _out_flag())
        _check_csv_name(out)
    predictor = model_or_path if opened else open_predictor(model_or_path, labels=labels,
                                                             image_size=image_size)
    lmap = predictor.label_map
    _check_top_k(lmap, top_k)
    thr = _thresholds(lmap, thresholds)
    k = DEFAULT_TOP_K if top_k is None else top_k
    renamed: dict[str, str] = {}
    keep_as: dict[str, str] = {}
    if kept and out is not None:  # only the CSV has the output's columns beside the kept ones
        columns = _prediction_columns(lmap.class_names, lmap.multilabel,
                                      max(1, min(k, lmap.num_classes)), all_probabilities)
        keep_as = kept_column_names(kept, columns)
        renamed = {c: name for c, name in keep_as.items() if name != c}
    paths: list[str] = []
    values: dict[str, list[str]] = {c: [] for c in kept}
    chunks: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    skipped_lines: list[int] = []
    skipped_files: list[str] = []
    count = row = 0
    with contextlib.ExitStack() as stack:
        writer = None
        if out is not None:  # a failure, even to open it, names out (--out), not the temporary
            part = stack.enter_context(atomic_path(out, _out_flag()))
            file = stack.enter_context(open(part, "w", newline="", encoding="utf-8"))
            writer = _CsvWriter(file, lmap.class_names, lmap.multilabel, thr, k,
                                all_probabilities, kept, keep_as)
        for batch in iter_predictions(predictor, source, batch_size=batch_size, tta=tta,
                                      root=root, path_format=path_format, resize=resize):
            if writer is not None:
                writer.write(batch)
            ok = np.array([not e for e in batch.errors], bool)
            bad = np.flatnonzero(~ok)
            skipped += [(batch.paths[i], batch.errors[i]) for i in bad]
            skipped_files += [batch.files[i] for i in bad]
            if listed is not None:  # one batch row per listed row, in order
                skipped_lines += [listed.lines[row + i] for i in bad]
            row += len(batch.paths)
            count += int(ok.sum())
            if keep_probabilities:
                paths += [p for p, good in zip(batch.paths, ok) if good]
                for c in kept:
                    values[c] += [v for v, good in zip(batch.columns[c], ok) if good]
                chunks.append(batch.probabilities[ok])
    probs = None
    if keep_probabilities:
        probs = (np.concatenate(chunks) if chunks
                 else np.zeros((0, lmap.num_classes), np.float32))
    not_images, loops = _left_out(inputs)
    result = PredictionResult(
        paths=paths, probabilities=probs, class_names=list(lmap.class_names),
        multilabel=lmap.multilabel, thresholds=thr, skipped=skipped,
        out=Path(out) if out is not None else None, count=count,
        not_images=not_images, skipped_lines=skipped_lines,
        cut_note=listed.cut_note() if listed is not None and skipped else "",
        skipped_files=skipped_files, columns=values, links_not_followed=loops,
        renamed_columns=renamed,
    )
    if renamed:
        warnings.warn(renamed_note(rows.files.source, renamed), stacklevel=2)
    if result.links_not_followed:
        warnings.warn(_loops_line(result.links_not_followed), stacklevel=2)
    if skipped:
        where = f" listed in {listed.source}" if listed is not None else ""
        listing = "; ".join(_skipped_entries(result)[:10])
        more = f" (and {len(skipped) - 10} more)" if len(skipped) > 10 else ""
        cut = f". {result.cut_note}" if result.cut_note else ""
        warnings.warn(f"skipped {len(skipped)} unreadable file(s){where}: {listing}{more}{cut}",
                      stacklevel=2)
    return result


# ------------------------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``keras-species predict``.

    Args:
        parser: the subcommand's parser.

    Example:
        >>> configure_parser(argparse.ArgumentParser())
    """
    from keras_species.config import positive_int

    parser.add_argument("model", metavar="MODEL",
                        help="a .keras file, a SavedModel folder written by keras-species export, "
                        "or a run folder (its best.keras, or a feature_classifiers run's "
                        "classifier.joblib on its backbone's features: a pickle, so only a run "
                        "you trust); not a .tflite")
    parser.add_argument("input", metavar="INPUT",
                        help="an image, a folder (recursive), a CSV with a path column "
                        f"(named {', '.join(PATH_COLUMNS)}; any case) or --path-format, or a .txt/"
                        ".lst file of image paths, one per line (blank and # lines skipped); "
                        "relative paths start at --root, by default the CSV's or list's folder, or "
                        "its images/ subfolder when the files are there")
    parser.add_argument("--out", default="predictions.csv", metavar="CSV",
                        help="CSV to write (default predictions.csv); its path column names each "
                        "image as INPUT does: a CSV's path cell or a list's line as written, a "
                        "folder's files under the folder as given")
    parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help=f"classes per row, single-label models only (default {DEFAULT_TOP_K}); "
                             "a multi-label model lists the classes at or above their thresholds")
    parser.add_argument("--tta", default=None, metavar="PRESET",
                        help="test-time augmentation preset: hflip, flips, flips_rot90, five_crop "
                             "(or transforms joined by commas, e.g. identity,rot90)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                        help="images per batch (default 32); lower it if memory runs short")
    add_image_size_argument(parser)
    parser.add_argument("--resize", choices=RESIZE_MODES, default="stretch",
                        help="how images reach the model's size, as the model was trained "
                        "(default stretch, every recipe's; pad or crop for a model trained with "
                        "make_dataset(resize=...))")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None, metavar="T",
                        help="multi-label thresholds (one, or one per class) overriding the saved ones")
    parser.add_argument("--labels", default=None, metavar="LABELS_JSON",
                        help="labels.json for a model that carries no label map")
    add_max_pixels_flag(parser, "skipped")
    parser.add_argument("--all-probabilities", action="store_true",
                        help="add a p_<class> column per class")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="CSV or .txt/.lst list input only: the folder its relative paths "
                        "start from (default: its folder, or its images/ subfolder when the files "
                        "are there)")
    parser.add_argument("--path-format", default=None, metavar="FORMAT",
                        help="CSV input only: build paths from columns, e.g. '{class}/{file}'")
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--keep-columns", nargs="+", default=None, metavar="COL",
                      help="CSV input only: copy these columns of the CSV (an id, a site, a true "
                      "label...) into the output, right after path, on every row (unreadable "
                      "files' rows included); one named as an output column (labels, label_1, "
                      "error, p_<class>..., any case) is written as input_<name>")
    keep.add_argument("--keep-all-columns", action="store_true",
                      help="CSV input only: copy every column of the CSV but its path column "
                      "(path holds it as written) into the output")


def _nothing_predicted(result: PredictionResult, inputs: str) -> str:
    """The one line that says why a run predicted no image (``result.count == 0``)."""
    csv_input, list_input = _is_csv(inputs), _is_path_list(inputs)
    if result.skipped:
        n = len(result.skipped)
        shown = "; ".join(_skipped_entries(result)[:3]) + (" ..." if n > 3 else "")
        hint = ""
        if (csv_input or list_input) and all(e == "file not found" for _, e in result.skipped):
            hint = (" (if the CSV's paths start elsewhere, pass --root DIR; to build them from "
                    "columns, --path-format, e.g. '{class}/{file}')" if csv_input else
                    " (if the list's paths start elsewhere than its folder, pass --root DIR)")
        cut = f". {result.cut_note}" if result.cut_note else ""
        return (f"nothing was predicted: none of the {n} file(s) could be read ({shown}){hint}; "
                f"their rows, with the reason in the 'error' column, are in {result.out}{cut}")
    if csv_input:
        return f"nothing was predicted: {inputs} lists no files (a header but no rows)"
    if list_input:
        return f"nothing was predicted: {inputs} lists no files (only blank or # lines)"
    why = f"nothing was predicted: no images found in {inputs}"
    if result.not_images:
        why += (f" ({len(result.not_images)} file(s) whose extension is not an image extension, "
                f"e.g. {', '.join(result.not_images[:3])}{heic_hint(result.not_images)})")
    return why


def run_cli(args: argparse.Namespace) -> int:
    """Run ``keras-species predict`` with parsed ``args``.

    Args:
        args: from :func:`configure_parser`.

    Returns:
        The exit code: 0 when at least one image was predicted (skipped files are listed, not an
        error), 2 for a bad model/input or when nothing at all was predicted (the output CSV is
        written all the same, with the error rows).

    Example:
        >>> run_cli(parser.parse_args(["best.keras", "photos", "--out", "p.csv"]))  # doctest: +SKIP
        0
    """
    from keras_species.recipe import is_user_error

    size = _size_value(args.image_size)
    thr = None
    if args.thresholds:
        thr = args.thresholds[0] if len(args.thresholds) == 1 else args.thresholds
    try:
        if args.out:  # predict labels.csv --out labels.csv would replace the user's CSV
            sources.check_output_place(args.input, args.out, "--out")
        max_pixels = getattr(args, "max_pixels", None)
        with warnings.catch_warnings(), _command_line("predict"), (
                max_pixels_flag(max_pixels)):
            warnings.simplefilter("ignore", UserWarning)  # messages name the flags
            # not scikit-learn's: a classifier.joblib of another version may predict wrongly
            warnings.filterwarnings("default", category=UserWarning, module=r"sklearn(\.|$)")
            result = predict(
                args.model, args.input, out=args.out, top_k=args.top_k, tta=args.tta,
                batch_size=args.batch_size, image_size=size, thresholds=thr, labels=args.labels,
                keep_probabilities=False, all_probabilities=args.all_probabilities,
                root=args.root, path_format=args.path_format,
                keep_columns=True if getattr(args, "keep_all_columns", False)
                else getattr(args, "keep_columns", None), resize=getattr(args, "resize", "stretch"),
            )
            hint = max_pixels_hint(reason for _, reason in result.skipped)  # names the limit used
    # ExportError and LabelMapError are ValueErrors; a RuntimeError is one when it is the
    # WeightsUnavailableError of a feature_classifiers run's backbone (offline ImageNet, a
    # weights file that is gone): is_user_error tells (without importing Keras here)
    except (OSError, ValueError, RuntimeError) as err:
        if not is_user_error(err):
            raise  # from inside Keras/TensorFlow: the traceback may be needed
        print(f"keras-species predict: {err}", file=sys.stderr)
        return 2
    if result.count == 0:
        print(f"keras-species predict: {_nothing_predicted(result, args.input)}", file=sys.stderr)
        if hint:
            print(hint, file=sys.stderr)
        return 2
    print(f"predicted {counted(result.count, 'image')} -> {result.out}")
    if result.renamed_columns:
        print(f"note: {renamed_note(args.input, result.renamed_columns)}", file=sys.stderr)
    if result.skipped:
        where = f" listed in {args.input}" if result.skipped_lines else ""
        print(f"skipped {len(result.skipped)} unreadable file(s){where} (reason in the 'error' "
              "column):", file=sys.stderr)
        for entry in _skipped_entries(result)[:20]:
            print(f"  {entry}", file=sys.stderr)
        if len(result.skipped) > 20:
            print(f"  ... and {len(result.skipped) - 20} more", file=sys.stderr)
        if result.cut_note:
            print(result.cut_note, file=sys.stderr)
        if hint:
            print(hint, file=sys.stderr)
    if result.links_not_followed:
        print(_loops_line(result.links_not_followed), file=sys.stderr)
    if result.not_images:
        names = ", ".join(result.not_images[:5]) + (" ..." if len(result.not_images) > 5 else "")
        print(f"left out {len(result.not_images)} file(s) whose extension is not an image "
              f"extension: {names}{heic_hint(result.not_images)}", file=sys.stderr)
    return 0
