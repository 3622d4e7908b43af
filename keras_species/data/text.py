"""Text inputs (CSVs, annotation JSON, drop lists, saved manifests) read with one rule.

UTF-8, with or without the byte-order mark that Excel and Notepad write; UTF-16 when the file
starts with its byte-order mark (Excel's "Unicode text"). Anything else (Excel's default
Windows-1252 "CSV", Latin-1) stops with a :class:`~keras_species.data.manifest.ManifestError`
that names the file, the first byte that is not UTF-8 and how to re-save it, instead of a
``UnicodeDecodeError`` from deep inside the reader. Python's ``open`` has no such rule (it
decodes with one codec), hence this module. A gzip-compressed file (``labels.csv.gz``,
``train.json.gz``, as iNaturalist ships its annotations) is decompressed first.
"""

from __future__ import annotations

import codecs
import gzip
import os
import re
import zlib

from keras_species.data.manifest import ManifestError


def read_text(path: str | os.PathLike, limit: int | None = None) -> str:
    """The text of ``path``, decoded as described in the module docstring.

    Args:
        path: a text file.
        limit: read only its first ``limit`` bytes (enough to see a header line without reading
            a long file whole); a character that the limit cuts in two is left out.

    Returns:
        Its text (its start with ``limit``), without a byte-order mark. Line endings are left
        as they are.

    Raises:
        ManifestError: the file is not UTF-8 (or UTF-16 with a byte-order mark), or it is a
            gzip file that cannot be decompressed (cut off, damaged).

    Example:
        >>> open("labels.csv", "wb").write(b"\\xef\\xbb\\xbfpath,label\\n")   # doctest: +SKIP
        >>> read_text("labels.csv")   # doctest: +SKIP
        'path,label\\n'
    """
    data = _read_bytes(path, limit)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    whole = limit is None or len(data) < limit
    try:  # not whole: a character cut at the limit waits, undecoded, for bytes that never come
        return codecs.getincrementaldecoder(encoding)().decode(data, final=whole)
    except UnicodeDecodeError as e:  # e.object: the bytes after the byte-order mark
        line = e.object[: e.start].count(b"\n") + 1
        raise ManifestError(
            f"{os.fspath(path)} is not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line}): "
            "re-save it as UTF-8 (in Excel: 'CSV UTF-8'; in an editor: encoding UTF-8)"
        ) from None


_GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of a gzip file (no UTF-8 or UTF-16 text starts with them)."""


def _read_bytes(path: str | os.PathLike, limit: int | None) -> bytes:
    """The bytes of ``path`` (its first ``limit``), decompressed when it is a gzip file."""
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not compressed:
            return f.read() if limit is None else f.read(limit)
    try:
        with gzip.open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ManifestError(
            f"{os.fspath(path)} is a gzip file that cannot be decompressed ({e}): it may be cut "
            "off or damaged; download or copy it again (gzip -t FILE tests it)"
        ) from None


_LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """The lines of ``text`` as an editor and the ``csv`` module count them: split at ``\\r\\n``,
    ``\\r`` and ``\\n`` only. ``str.splitlines`` also splits at a form feed, U+2028 and other
    separators, which can sit inside a CSV cell, and shifted the line numbers of messages.

    Args:
        text: the text.
        keepends: keep each line's line end.

    Returns:
        The lines (none for an empty text; no empty last line after a final line end).

    Example:
        >>> split_lines("a,b\\x0c\\r\\nc\\u2028d\\n"), "a\\x0cb".splitlines()
        (['a,b\\x0c', 'c\\u2028d'], ['a', 'b'])
    """
    lines = []
    start = 0
    for end in _LINE_END.finditer(text):
        lines.append(text[start:end.end() if keepends else end.start()])
        start = end.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def count_outside_quotes(line: str, char: str) -> int:
    """How often ``char`` occurs in a CSV line outside its double-quoted parts: the delimiter a
    line uses is the one it holds there (``path;label;"Länge, cm"`` holds no comma outside).

    Args:
        line: a line of a CSV.
        char: the character to count.

    Returns:
        The count.

    Example:
        >>> count_outside_quotes('a;b;"c, d"', ","), count_outside_quotes('a;b;"c, d"', ";")
        (0, 2)
    """
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count
