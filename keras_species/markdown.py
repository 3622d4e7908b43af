"""Text put in the cells of the markdown tables the library writes (reports, audits).

A class or file name may hold ``|``, which ends a cell, or a line break, which ends the table:
every table escapes its text cells through :func:`cell`. Written by hand: no markdown writer is
a dependency, and this is the one rule they need.

Example:
    >>> cell("ray|skate")
    'ray\\\\|skate'
"""

from __future__ import annotations

from typing import Any

__all__ = ["cell"]


def cell(value: Any) -> str:
    """``str(value)`` fit for one markdown table cell: ``|`` escaped, line breaks as spaces.

    Args:
        value: the cell's content.

    Returns:
        The text.

    Example:
        >>> cell("two\\nlines")
        'two lines'
    """
    return str(value).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
