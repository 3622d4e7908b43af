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
from collections.abc import Iterable, Sequence
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
