"""What the command-line entry points (``keras-species`` and ``python -m recipes.<name>``) print.

Python prints a warning as ``/path/to/module.py:125: UserWarning: <message>`` followed by the
source line that raised it: for the library's own warnings, which are written for the user
(a class left without images, rows skipped, a split short of a class), the path and the code line
are noise. :func:`use_short_warnings` prints those as ``warning: <message>``; warnings raised by
other packages (NumPy, scikit-learn, Keras) keep Python's format, with their location. Written by
hand: ``warnings.formatwarning`` is the hook Python offers, and nothing wraps it.

:func:`use_command_line_warnings` does that and also leaves out PIL's
``DecompressionBombWarning``, which the library's reader turns into a report naming the file and
the fix (:func:`keras_species.data.images.read_image`): a command printed PIL's raw line first.
Only the entry points call it, since a filter applies to the whole process.

:func:`print_line_by_line` makes the entry points' output reach a pipe or a log file line by line
(Python writes those in blocks), so that a run killed outright keeps what it printed.

Example:
    >>> use_command_line_warnings()                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

_OWN_CODE = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "recipes")
_python_format = warnings.formatwarning


def is_own_code(filename: str) -> bool:
    """Whether a source file belongs to keras-species or its recipes.

    Args:
        filename: a source file's path (as in a traceback or a warning).

    Returns:
        True for files under the ``keras_species`` or ``recipes`` package.

    Example:
        >>> is_own_code(__file__), is_own_code(warnings.__file__)
        (True, False)
    """
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return any(path.is_relative_to(folder) for folder in _OWN_CODE)


def _short_format(message, category, filename, lineno, line=None) -> str:
    if not is_own_code(filename):
        return _python_format(message, category, filename, lineno, line)
    kind = "warning" if category is UserWarning else category.__name__
    return f"{kind}: {message}\n"


def use_short_warnings() -> None:
    """Print the library's own warnings as ``warning: <message>`` from now on (this process).

    Example:
        >>> use_short_warnings()                                # doctest: +SKIP
    """
    warnings.formatwarning = _short_format


def use_command_line_warnings() -> None:
    """The warning settings of the command-line entry points (this process, from now on): the
    library's warnings short (:func:`use_short_warnings`), PIL's ``DecompressionBombWarning``
    left out (the reader reports each oversized image itself, with the fix).

    Example:
        >>> use_command_line_warnings()                         # doctest: +SKIP
    """
    from PIL import Image

    use_short_warnings()
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def print_line_by_line() -> None:
    """Flush the standard output and error at every line, also when they are a pipe or a file
    (``python -m recipes.quickstart | tee log``), which Python writes in blocks: a run killed
    outright (SIGKILL, the kernel's out-of-memory killer) then keeps every line it printed.

    Example:
        >>> print_line_by_line()                                # doctest: +SKIP
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on some replaced streams
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(line_buffering=True)
