"""CSV files the library writes: rows end in a line feed, and a field holding a carriage return
is quoted.

``csv.writer`` ends rows in CRLF by default, while the library wrote comment lines (a manifest's
``# classes:``) in LF, so one file mixed both and ``grep ',test$' split.csv`` found nothing.
With ``lineterminator="\\n"`` a lone carriage return in a field is no longer quoted (it is not in
the terminator), and such a row would read back as two: rows holding one are written with every
field quoted. Written by hand because the ``csv`` module cannot quote by field content.

Example:
    >>> import io
    >>> buf = io.StringIO()
    >>> w = writer(buf)
    >>> w.writerow(["a.png", "train"]); w.writerow(["odd\\rname.png", "test"])
    >>> buf.getvalue()
    'a.png,train\\n"odd\\rname.png","test"\\n'
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["writer", "dict_writer"]


def _holds_carriage_return(value: Any) -> bool:
    """Whether ``csv`` would write ``value`` (as ``str(value)``; ``None`` as empty) with a CR."""
    if value is None or isinstance(value, (int, float)):
        return False
    return "\r" in (value if isinstance(value, str) else str(value))


class _LineFeedWriter:
    """``csv.writer``'s ``writerow``/``writerows`` with LF line ends (see the module docstring)."""

    def __init__(self, f: TextIO, **options: Any) -> None:
        self._plain = csv.writer(f, lineterminator="\n", **options)
        self._quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL,
                                  **{k: v for k, v in options.items() if k != "quoting"})

    def writerow(self, row: Iterable[Any]) -> None:
        row = list(row)
        carriage = any(_holds_carriage_return(v) for v in row)
        (self._quoted if carriage else self._plain).writerow(row)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(f: TextIO, **options: Any) -> _LineFeedWriter:
    """A ``csv.writer`` for ``f`` whose rows end in LF (opened with ``newline=""``).

    Args:
        f: the open text file.
        **options: ``csv.writer`` format options (``delimiter``...).

    Returns:
        An object with ``writerow`` and ``writerows``.
    """
    return _LineFeedWriter(f, **options)


def dict_writer(f: TextIO, fieldnames: Sequence[str], **options: Any) -> csv.DictWriter:
    """A ``csv.DictWriter`` for ``f`` whose rows end in LF.

    Args:
        f: the open text file (opened with ``newline=""``).
        fieldnames: the columns.
        **options: ``csv.DictWriter`` options (``extrasaction``...).

    Returns:
        The ``DictWriter``.
    """
    out = csv.DictWriter(f, fieldnames=fieldnames, **options)
    out.writer = _LineFeedWriter(f)  # DictWriter writes every row through this attribute
    return out


def probability(value: float) -> str:
    """A probability as a CSV cell: 9 significant digits, which give a ``float32`` back exactly.
    With 6, sigmoid outputs that saturate (``0.99999982`` beside ``1.0``) were written alike: the
    average precision computed from the file differed from the run's (0.590 against 0.636), and a
    cell could read at the threshold while its tag was not predicted.

    Args:
        value: the probability.

    Returns:
        The text.

    Example:
        >>> probability(0.9999998211860657), probability(0.5)
        ('0.999999821', '0.5')
    """
    return f"{float(value):.9g}"


OTHER_FORMATS = (".json", ".jsonl", ".ndjson", ".tsv", ".xlsx", ".xls", ".ods", ".parquet", ".feather",
                 ".pkl", ".pickle", ".npy", ".npz", ".h5", ".hdf5", ".keras", ".tflite", ".html", ".md",
                 ".txt", ".lst", ".gz", ".zip", ".bz2", ".xz", ".zst", ".joblib")
"""Suffixes of formats that a CSV written by keras-species is not: an output name ending in one is
refused (compressed names too: pandas would decompress them; ``.txt``/``.lst``: path lists the
readers take). Other names (``p.csv``, ``p``, ``preds.v2``) are taken."""

PHOTO_FORMATS = (".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf",
                 ".rw2", ".raf", ".psd", ".svg")
"""Photo suffixes the readers do not decode (so not in ``IMAGE_EXTENSIONS``), refused as image
names are: ``--out IMG_0001.HEIC`` replaced an iPhone photo with the CSV."""


def csv_name_problem(out: str | os.PathLike, given: str, writes: str) -> str | None:
    """Why ``out`` must not be written as a CSV, or ``None``: a name of another format (``p.json``
    got CSV text; ``b.png`` or ``best.keras`` was replaced by it), or a run folder's own file
    (:func:`keras_species.training.runs.run_file_owner`).

    Args:
        out: the output file.
        given: how the caller named it, for the message (``--out p.json``, ``out='p.json'``).
        writes: what the command writes (``predict writes a CSV (one row per image)``).

    Returns:
        The message, or ``None``.

    Example:
        >>> csv_name_problem("best.keras", "--out best.keras", "split writes a CSV")
        '--out best.keras: split writes a CSV, not a .keras file: give a name ending in .csv'
    """
    from keras_species.data.images import IMAGE_EXTENSIONS
    from keras_species.training.runs import run_file_owner

    suffix = Path(out).suffix.lower()
    if (suffix in OTHER_FORMATS or suffix in IMAGE_EXTENSIONS or suffix in PHOTO_FORMATS) \
            and not Path(out).is_dir():
        return f"{given}: {writes}, not a {suffix} file: give a name ending in .csv"
    owner = run_file_owner(out)
    if owner is not None:
        return (f"{given}: {Path(out).name} is the run folder {owner}'s own file, which the run "
                "reads again (to resume, to report): give another name")
    return None
