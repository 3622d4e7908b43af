"""Starting TensorFlow from the command-line entry points without its start-up noise.

TensorFlow 2.19 and later print a handful of lines at import and at its first device query that
``TF_CPP_MIN_LOG_LEVEL`` no longer silences (they are logged before absl's logging starts,
tensorflow/tensorflow#100442). On a machine without a GPU every command printed::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly different ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

(the first three twice), an "error" that is none on such a machine. After
:func:`quiet_tensorflow_start`, TensorFlow's first import, wherever it comes (a finder on
``sys.meta_path``, as :mod:`keras_species.registration` uses), and a query of its devices run
with the process's standard error (file descriptor 2, where that C++ code writes) sent to a
temporary file; then every line that is not one of these known start-up lines is written back.
The CUDA lines are kept on a machine with an NVIDIA device, where a failed ``cuInit`` is worth
seeing. Nothing is imported before it is needed: a data command, ``--help`` or a refused
setting still answer without TensorFlow. Only the entry points call it (``keras-species`` and
``python -m recipes.<name>``); a program that imports keras-species keeps TensorFlow's output as
it is. ``TF_CPP_MIN_LOG_LEVEL=0`` keeps everything.

Written by hand because no TensorFlow setting reaches these lines.

Not left out: ``E0000 ... util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512.
Falling back to the default Eigen-based implementation if present.`` (or ``DT_INT32``...), which
TensorFlow logs at error level on a CPU without AVX-512 when it first runs such an op, mid-run
(a multi-label run's metrics). It is harmless, but it comes after the start, where standard
error is the user's; only ``TF_CPP_MIN_LOG_LEVEL=3`` (hiding real errors too) or
``TF_ENABLE_ONEDNN_OPTS=0`` (other kernels: speed and numerics change) would silence it, so the
README says what it means instead. (The absl warning of a TFLite export is dropped where it is
logged: ``export.TRACKABLE_OBJ_NOTICE``.)
"""

from __future__ import annotations

import contextlib
import glob
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType

from keras_species.registration import spec_from_other_finders

START_UP_LINES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)
"""Parts of the lines TensorFlow prints on every start, left out at the entry points."""

CUDA_LINES = (
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "Could not find TensorRT",
    "Attempting to register factory for plugin",
)
"""TensorFlow's lines about CUDA: noise on a machine without an NVIDIA device, left out there."""


def has_nvidia_device() -> bool:
    """Whether the machine shows an NVIDIA device (its kernel driver or a ``/dev/nvidiaN`` node).

    Returns:
        True where a GPU may be present.

    Example:
        >>> isinstance(has_nvidia_device(), bool)
        True
    """
    return os.path.exists("/proc/driver/nvidia") or bool(glob.glob("/dev/nvidia[0-9]*"))


@contextlib.contextmanager
def native_stderr_without(lines: Sequence[str]) -> Iterator[None]:
    """Within the block, the process's standard error (file descriptor 2, which C and C++ code
    write to directly) goes to a temporary file; at its end, every line that holds none of
    ``lines`` is written back to it, in order. An error raised in the block writes back all (a
    ``KeyboardInterrupt`` is no error of the import: its lines are left out still).

    Args:
        lines: parts of the lines to leave out.

    Yields:
        Nothing.

    Example:
        >>> with native_stderr_without(["noise"]):   # doctest: +SKIP
        ...     os.write(2, b"noise\\nkept\\n")
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no standard error to redirect
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except KeyboardInterrupt:  # Ctrl-C during the import: the noise is noise still
            raise
        except BaseException:
            failed = True
            raise
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if failed or not any(part in line for part in lines)]
            if kept:
                os.write(2, "".join(kept).encode("utf-8", errors="replace"))


FIRST_IMPORTS = ("tensorflow", "keras")
"""Either imports TensorFlow first."""


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` and ``keras`` with the other finders and wraps the loader of whichever
    is executed first: its import, and TensorFlow's device query, run inside
    :func:`native_stderr_without`; then it leaves ``sys.meta_path``. (A loader found but never
    executed, as TensorFlow's ``importlib.util.find_spec("keras")`` finds one, does no harm.)"""

    def __init__(self, noise: Sequence[str]) -> None:
        self._noise = tuple(noise)
        self._finding = threading.local()  # the other finders may ask this one again (registration)

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in FIRST_IMPORTS or getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            spec = spec_from_other_finders(self, fullname, path, target)
        finally:
            self._finding.active = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_quietly(module: ModuleType) -> None:
            if self not in sys.meta_path:  # the other one was imported first, quietly
                exec_module(module)
                return
            sys.meta_path.remove(self)
            with native_stderr_without(self._noise):
                exec_module(module)
                tensorflow = sys.modules.get("tensorflow")
                if tensorflow is not None:  # its device query logs cuInit's failure: here
                    tensorflow.config.list_physical_devices()

        spec.loader.exec_module = exec_quietly
        return spec


def quiet_tensorflow_start() -> bool:
    """Have TensorFlow's first import, whenever it comes, leave out its start-up lines (module
    docstring). Nothing is imported now, so a command that never needs TensorFlow stays fast.

    Does nothing once TensorFlow is imported, or when ``TF_CPP_MIN_LOG_LEVEL`` is ``0`` (every
    log line asked for).

    Returns:
        Whether the next import of TensorFlow will be quiet.

    Example:
        >>> quiet_tensorflow_start()   # doctest: +SKIP
        True
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2").strip() == "0":
        return False
    if not any(isinstance(finder, _QuietFirstImport) for finder in sys.meta_path):
        noise = START_UP_LINES if has_nvidia_device() else START_UP_LINES + CUDA_LINES
        sys.meta_path.insert(0, _QuietFirstImport(noise))
    return True
