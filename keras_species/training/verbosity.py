"""The ``fit`` verbosities a training run takes (``--verbose``), as plain data.

:func:`~keras_species.training.plan.train` refuses any other, and a recipe's settings check
(``keras_species.recipe.check_settings``) refuses ``--verbose 7`` with the same words, before
Keras is imported: this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

VERBOSE_LEVELS: tuple[int, ...] = (0, 1, 2)
"""Keras's ``fit`` verbosities: 0 silent, 1 a progress bar, 2 a line per epoch."""

VERBOSE_RULE = "Keras's fit verbosity is 0 (silent), 1 (a progress bar) or 2 (a line per epoch)"
"""What a verbosity outside :data:`VERBOSE_LEVELS` is refused with."""


def verbose_problem(value: Any) -> str | None:
    """Why ``value`` is not a ``fit`` verbosity this library takes, or None when it is.

    ``0``, ``1`` and ``2`` are taken; Keras's ``"auto"`` is not (nor by ``--verbose``), nor
    are booleans. The reason is the text ``--verbose 7`` is refused with.

    Args:
        value: the verbosity asked for.

    Returns:
        None, or the reason as one short line (:data:`VERBOSE_RULE`).

    Example:
        >>> verbose_problem(2) is None
        True
        >>> verbose_problem(7)
        "Keras's fit verbosity is 0 (silent), 1 (a progress bar) or 2 (a line per epoch)"
    """
    if isinstance(value, bool) or value not in VERBOSE_LEVELS:
        return VERBOSE_RULE
    return None


__all__ = ["VERBOSE_LEVELS", "VERBOSE_RULE", "verbose_problem"]
