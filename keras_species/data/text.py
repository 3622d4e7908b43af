"""Text inputs (CSVs, annotation JSON, drop lists, saved manifests) read with one rule.

UTF-8, with or without the byte-order mark that Excel and Notepad write; UTF-16 when the file
starts with its byte-order mark (Excel's "Unicode text"). Anything else (Excel's default
Windows-1252 "CSV", Latin-1) stops with a :class:`~keras_species.data.manifest.ManifestError`
that names the file, the first byte that is not UTF-8 and how to re-save it, instead of a
``UnicodeDecodeError`` from deep inside the reader. Python's ``open`` has no such rule (it
decodes with one codec), hence this module.
"""

from __future__ import annotations

import codecs
import os

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
        ManifestError: the file is not UTF-8 (or UTF-16 with a byte-order mark).

    Example:
        >>> open("labels.csv", "wb").write(b"\\xef\\xbb\\xbfpath,label\\n")   # doctest: +SKIP
        >>> read_text("labels.csv")   # doctest: +SKIP
        'path,label\\n'
    """
    with open(path, "rb") as f:
        data = f.read() if limit is None else f.read(limit)
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
