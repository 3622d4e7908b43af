"""The ``history.csv`` of a run folder: read and written without Keras.

One row per epoch over all phases (``epoch``, ``phase``, ``learning_rate``, then the logged
metrics). :class:`keras_species.training.callbacks.HistoryWriter` writes it during training;
``keras-species runs`` (:mod:`keras_species.training.runs`) reads it to count epochs and must
not import Keras or TensorFlow to do so, so the reader and writer live here, in a module that
imports neither (``callbacks`` re-exports them).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from keras_species import csvfile
from keras_species.atomic import atomic_path

LR_KEY = "learning_rate"
"""The logs / history column holding the learning rate (the key Keras' own callbacks use)."""

FIRST_COLUMNS = ("epoch", "phase", LR_KEY)


def _parse(value: str) -> int | float | str | None:
    """A CSV field as a number when it reads as one (``""`` is None, ``"3"`` an int)."""
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value else number


def read_history(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``history.csv`` written by ``HistoryWriter`` (numbers parsed, blanks → None).

    ``HistoryWriter`` replaces the file atomically, but a copy, a sync tool or another writer
    can leave its last line cut short: that line (fewer fields than the header, at the end)
    is skipped with a warning naming the file and the line, since its epoch was not finished
    (``BackupAndRestore`` runs it again on resume). Any other malformed line (a field count
    that differs from the header's elsewhere, an epoch that is not a whole number) raises a
    ``ValueError`` naming the file and the line: skipping it would drop a finished epoch's row
    from the file the next time it is written.

    Args:
        path: the CSV file; a missing file gives ``[]``.

    Returns:
        One dict per epoch.

    Raises:
        ValueError: a malformed line, or a file that is not text; the message names the file,
            the line and what to do.

    Example:
        >>> read_history("runs/quickstart/demo/history.csv")[0]["phase"]  # doctest: +SKIP
        'head'
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not text (byte 0x{err.object[err.start]:02x} at offset "
                         f"{err.start}): restore it or delete it") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    lines = [(reader.line_num, fields) for fields in reader if fields]  # blank lines: no row
    rows = []
    for i, (line, fields) in enumerate(lines):
        if len(fields) < len(header) and i == len(lines) - 1:
            warnings.warn(f"{path}: line {line} is cut short ({len(fields)} of {len(header)} "
                          "fields, as a write stopped midway leaves it); skipped", stacklevel=2)
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}: line {line} has {len(fields)} fields where the header has "
                             f"{len(header)}: fix or delete that line")
        row = {k: _parse(v) for k, v in zip(header, fields)}
        if "epoch" in row and (not isinstance(row["epoch"], int) or row["epoch"] < 1):
            raise ValueError(f"{path}: line {line} has epoch {fields[header.index('epoch')]!r}, "
                             "not a whole number from 1: fix or delete that line")
        if isinstance(row.get("phase"), (int, float)):
            row["phase"] = str(row["phase"])
        rows.append(row)
    return rows


def write_history(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """Write history rows to CSV atomically: ``epoch, phase, learning_rate``, then the rest.

    Args:
        path: target CSV.
        rows: one dict per epoch; columns are the union of their keys (blank where absent).

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> write_history("h.csv", [{"epoch": 1, "phase": "head", "loss": 0.5}])  # doctest: +SKIP
    """
    path = Path(path)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    rest = [k for k in keys if k not in FIRST_COLUMNS]
    train_cols = sorted(k for k in rest if not k.startswith("val_"))
    val_cols = sorted(k for k in rest if k.startswith("val_"))
    columns = [c for c in FIRST_COLUMNS if c in keys or c != LR_KEY] + train_cols + val_cols
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csvfile.dict_writer(f, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return path
