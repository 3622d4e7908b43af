"""JSON files that a user or an earlier run wrote, read so that a damaged one is named, not raised.

A JSON file on disk can be cut short (a copy or sync stopped midway, a full disk), empty, saved in
another encoding than UTF-8, or hold another kind of value than its reader expects. ``json.load``
answers each with a ``JSONDecodeError``, ``UnicodeDecodeError``, ``KeyError`` or ``TypeError``
that does not name the file. The functions here return the value together with one short line
saying why the file does not read (``"not valid JSON (Expecting value at line 1 column 9)"``), so
that each reader can name the file and the way out in its own terms: a run folder's reader says
how to write the file again, a cache treats it as absent, ``--config`` names the flag.

Text is UTF-8, with or without the byte-order mark that Notepad writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["json_type", "kind_problem", "parse_json", "read_json_file", "read_json_object"]

_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
          float: "number"}


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type.

    Args:
        value: a value as ``json.loads`` returns it.

    Returns:
        ``"object"``, ``"array"``, ``"string"``, ``"number"``, ``"boolean"`` or ``"null"``.

    Example:
        >>> json_type([1, 2]), json_type(None)
        ('array', 'null')
    """
    return "null" if value is None else _NAMES.get(type(value), type(value).__name__)


def kind_problem(value: Any, expect: type | tuple[type, ...] = dict) -> str | None:
    """Why ``value`` is not of the JSON kind a reader expects, or None when it is.

    Args:
        value: the parsed value.
        expect: ``dict`` (an object), ``list`` (an array), or a tuple of them.

    Returns:
        None, or a line such as ``"holds a JSON array, not an object"``.

    Example:
        >>> kind_problem([1], dict)
        'holds a JSON array, not an object'
        >>> kind_problem({}, (dict, list)) is None
        True
    """
    kinds = expect if isinstance(expect, tuple) else (expect,)
    if isinstance(value, kinds):
        return None
    wanted = " or ".join(("an " if _NAMES[k][0] in "aeiou" else "a ") + _NAMES[k] for k in kinds)
    return f"holds a JSON {json_type(value)}, not {wanted}"


def parse_json(data: bytes | str) -> tuple[Any, str | None]:
    """Parse a JSON document, saying why it does not parse instead of raising.

    Args:
        data: the file's bytes (decoded by the module's text rule) or its text.

    Returns:
        ``(value, None)``, or ``(None, reason)`` with ``reason`` one of ``"empty file"``,
        ``"not UTF-8 text (byte 0xff at offset 0)"``, ``"not valid JSON (<what> at line L
        column C)"``.

    Example:
        >>> parse_json(b'{"a": 1}')
        ({'a': 1}, None)
        >>> parse_json(b'{"a": "b')
        (None, 'not valid JSON (Unterminated string starting at line 1 column 7)')
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            return None, f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
    else:
        text = data.removeprefix("\ufeff")
    if not text.strip():
        return None, "empty file"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        # some messages end in " at" ("Unterminated string starting at"): one "at" is enough
        what = err.msg.removesuffix(" at")
        return None, f"not valid JSON ({what} at line {err.lineno} column {err.colno})"


def read_json_file(
    path: str | os.PathLike, expect: type | tuple[type, ...] | None = None
) -> tuple[Any, str | None]:
    """Read a JSON file, saying why it does not read instead of raising.

    Args:
        path: the file.
        expect: the kind of value it must hold (``dict``, ``list`` or a tuple of them); None
            takes any value.

    Returns:
        ``(value, None)``, or ``(None, reason)``: the reasons of :func:`parse_json` and
        :func:`kind_problem`, ``"does not exist"``, ``"is a folder"`` or ``"cannot be read
        (<the system's reason>)"``.

    Example:
        >>> read_json_file("/no/such/labels.json")
        (None, 'does not exist')
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "does not exist"
    except IsADirectoryError:
        return None, "is a folder"
    except OSError as err:  # no permission, an I/O error
        return None, f"cannot be read ({err.strerror or type(err).__name__})"
    value, reason = parse_json(data)
    if reason is None and expect is not None:
        reason = kind_problem(value, expect)
    return (None, reason) if reason else (value, None)


def read_json_object(path: str | os.PathLike) -> tuple[dict, str | None]:
    """Read a JSON file that should hold an object, without raising on a damaged file.

    ``keras-species runs`` lists every run even when one of its files is truncated, empty,
    not UTF-8 or not a JSON object; this says why instead of raising.

    Args:
        path: the file.

    Returns:
        ``(object, None)`` when it reads, ``({}, None)`` when the file is absent, and
        ``({}, reason)`` when it cannot be read, ``reason`` one short line such as
        ``"not valid JSON (Expecting value at line 1 column 9)"``.

    Example:
        >>> read_json_object("runs/quickstart/demo/metrics.json")  # doctest: +SKIP
        ({'test': {'accuracy': 0.81}}, None)
    """
    if not Path(path).exists():
        return {}, None
    data, reason = read_json_file(path, dict)
    return (data, None) if reason is None else ({}, reason)
