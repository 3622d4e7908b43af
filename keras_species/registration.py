"""Register keras-species' layers with Keras once Keras is imported, without importing it first.

``import keras_species`` must be enough for the ``.keras`` files that the library writes to reload
in plain Keras with ``safe_mode=True``, so its custom layers must be registered by the time Keras
loads one. Importing Keras, though, imports its backend (TensorFlow: 6–7 s here, and CUDA start-up
lines on a machine without a GPU), which the data layer and the data commands (``keras-species
audit``, ``split``, ``runs``, ``--help``) never need. So :func:`register_layers` registers them at
once when Keras is already imported, and otherwise as soon as Keras has been imported, through a
finder on :data:`sys.meta_path` that wraps the loaders of Keras and of keras-species' own
modules. When Keras is imported from inside one of the library's modules (``registry.py``
imports it, and the layer modules import ``registry.py``), registering then would import modules
that are still half executed; so it waits until no module of the library is executing any more.
Written by hand: the standard library has no post-import hooks (PEP 369 was withdrawn).

Example:
    >>> import keras_species          # Keras not imported yet: nothing heavy is imported here
    >>> import keras                  # now the layers are registered too
    >>> keras.saving.get_registered_object("keras_species>RandomResizedCrop") is not None
    True
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType

KERAS = "keras"
"""The module whose import makes the registration due."""
PACKAGE = "keras_species."
"""Prefix of the library's modules, whose execution the registration waits for."""


def spec_from_other_finders(
    skip: importlib.abc.MetaPathFinder, fullname: str, path=None, target=None
) -> importlib.machinery.ModuleSpec | None:
    """What the import system finds for ``fullname`` without the finder ``skip``: the first spec
    of the other finders on ``sys.meta_path`` (for a finder that wraps the loader it finds).

    Args:
        skip: the finder asking.
        fullname, path, target: as ``find_spec`` takes them.

    Returns:
        The spec, or ``None``.

    Example:
        >>> spec_from_other_finders(None, "json").name
        'json'
    """
    for finder in list(sys.meta_path):
        if finder is skip or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


def _import_layers() -> None:
    import keras_species.layers  # noqa: F401  (importing it is what registers the layers)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Until the layers are registered: finds Keras and the library's modules with the other
    finders, and makes their loaders register the layers once Keras is imported and none of the
    library's modules is still executing. Then it leaves ``sys.meta_path``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._executing = 0  # library modules (and Keras) whose code is running now
        self._done = False

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname != KERAS and not fullname.startswith(PACKAGE):
            return None
        spec = spec_from_other_finders(self, fullname, path, target)
        if spec is None:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            with self._lock:
                self._executing += 1
            try:
                exec_module(module)
            finally:
                with self._lock:
                    self._executing -= 1
            self.register_if_due()

        # each spec has a loader of its own; one that is found but never used (TensorFlow's
        # import calls importlib.util.find_spec("keras") only to locate it) does no harm
        loader.exec_module = exec_then_register
        return spec

    def register_if_due(self) -> None:
        """Import :mod:`keras_species.layers` if Keras is imported and no library module runs."""
        with self._lock:
            if self._done or self._executing or KERAS not in sys.modules:
                return
            self._done = True
            if self in sys.meta_path:
                sys.meta_path.remove(self)
        _import_layers()


def register_layers() -> bool:
    """Register the library's layers now if Keras is imported, else as soon as it is.

    Returns:
        True when they were registered now; False when registering waits for Keras's import.

    Example:
        >>> register_layers()   # doctest: +SKIP
        False
    """
    if KERAS in sys.modules:
        _import_layers()
        return True
    if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
    return False
