"""Local weights files and the error for weights that cannot be had, without Keras.

:func:`check_weights_file` refuses a ``--weights`` file that is missing, misnamed or not HDF5
before anything reads it, and :func:`no_imagenet_source` words the refusal of ``"imagenet"`` for
a backbone that has none; both raise :class:`WeightsUnavailableError`. They live outside
:mod:`keras_species.models` (whose import brings Keras) so that a recipe refuses such a
``--weights`` at once (``keras_species.recipe.check_weights``); ``keras_species.models.weights``
re-exports them.

Example:
    >>> check_weights_file("/no/such.weights.h5")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    WeightsUnavailableError: weights file '/no/such.weights.h5' does not exist; ...
"""

from __future__ import annotations

import os
from pathlib import Path


class WeightsUnavailableError(RuntimeError):
    """Weights that were asked for cannot be had (offline, missing file, no source)."""


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The 8 bytes an HDF5 file (``.weights.h5``, ``.h5``) starts with."""


def check_weights_file(path: str | os.PathLike, backbone: str = "") -> Path:
    """Check that a local weights file exists and is an HDF5 file, before anything reads it.

    Args:
        path: a ``.weights.h5``, ``.h5`` or ``.hdf5`` file.
        backbone: the backbone it is for (named in the message), or ``""``.

    Returns:
        The path, with ``~`` expanded.

    Raises:
        WeightsUnavailableError: the name ends otherwise, the file does not exist, is empty, or
            does not start with the HDF5 signature; one line naming ``--weights`` and the file.

    Example:
        >>> check_weights_file("/no/such.weights.h5")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        WeightsUnavailableError: weights file '/no/such.weights.h5' does not exist; ...
    """
    text = os.fspath(path)
    target = Path(text).expanduser()
    what = f" for {backbone}" if backbone else ""
    if not target.name.endswith((".weights.h5", ".h5", ".hdf5")):
        raise WeightsUnavailableError(
            f"weights={text!r}{what}: expected None, 'imagenet' or a path to a "
            "'.weights.h5' or '.h5' file"
        )
    if not target.is_file():
        raise WeightsUnavailableError(
            f"weights file {str(target)!r}{what} does not exist; check the path, or "
            "pass --weights none (weights=None) for a random initialisation"
        )
    with open(target, "rb") as f:
        head = f.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        why = "is empty" if not head else "is not an HDF5 file (no HDF5 signature at its start)"
        raise WeightsUnavailableError(
            f"--weights {text}: the file {why}; give a '.weights.h5' file saved with "
            "save_weights or a Keras '.h5' weights file, or --weights none (weights=None) for a "
            "random initialisation"
        )
    return target


def no_imagenet_source(backbone: str, weights_origin: str = "") -> WeightsUnavailableError:
    """The error for ``"imagenet"`` weights of a backbone that has no ImageNet source.

    Args:
        backbone: the registry name.
        weights_origin: the entry's ``weights_origin`` (where its weights come from), or ``""``.

    Returns:
        A :class:`WeightsUnavailableError` to raise, saying which file to pass instead.

    Example:
        >>> str(no_imagenet_source("resnet18"))  # doctest: +ELLIPSIS
        "resnet18 has no 'imagenet' weights source (none); pass a local converted file ..."
    """
    return WeightsUnavailableError(
        f"{backbone} has no 'imagenet' weights source ({weights_origin or 'none'}); "
        "pass a local converted file instead, e.g. --weights /path/"
        f"{backbone}.weights.h5 (saved with backbone.save_weights), or --weights none (weights=None)"
    )
