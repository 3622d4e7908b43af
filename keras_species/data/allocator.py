"""glibc ``malloc`` settings for the input pipeline: freed tensors stay in the process.

A ``tf.data`` pipeline allocates and frees the same large buffers over and over: a decoded image,
its resized ``float32`` copy (600 KB at 224 px), a batch (19 MB for 32 images at 224 px). With
glibc's defaults, a buffer above the *mmap threshold* (128 KiB at start, then moving) is mapped
afresh and unmapped when freed, and free memory at the top of a heap beyond the *trim threshold*
is handed back to the kernel. Each time, the next
buffer of that size lands on pages the kernel must fault in and zero again: about 2 µs a 4 KiB
page on the 2-core KVM machines this project runs on. ``benchmarks/pipeline_breakdown.py`` at
224 px (fish4knowledge23, two runs each way): ``make_dataset`` took 72–98 page faults an image
with glibc's defaults and 4–19 with these settings, and 0.99–1.07 against 0.84–0.87 CPU ms an
image (0.53–0.57 against 0.44–0.46 wall ms); a bare decode-and-resize loop gains alike.

:func:`tune_malloc` fixes the mmap threshold at its largest value (32 MiB, so every buffer up
to that size comes from the heap and is reused), turns off mapping blocks on their own beyond it
(``M_MMAP_MAX`` 0: glibc cannot raise the threshold past 32 MiB, and a ``float32`` batch of 64
images at 224 px is 38.5 MB), raises the trim threshold to 1 GiB (up to that much free memory
stays at the top of a heap for the next batch) and sets the top pad to 64 MiB. The pad is for the heaps of glibc's per-thread arenas (64 MiB each): a heap that
empties is unmapped whatever the trim threshold says, unless the pad asks to keep more than a
heap holds. Without it, a batch that one ``tf.data`` thread allocates and another frees often
empties such a heap, and the next batch faults every page in again: casting a ``uint8`` batch of
32 images at 224 px to ``float32`` in a ``tf.function`` took 7 ms with about 2,000 faults, and
1.6 ms with none once the heaps stayed (``pipeline_throughput.py`` at 224 px: 43–78 faults an
image on the first epoch without the pad, 15–17 with it). Without ``M_MMAP_MAX`` 0 every batch
from 32 MiB up was mapped afresh and unmapped when freed, its pages faulted in again each time:
``pipeline_throughput.py`` at 224 px with batches of 64, the bare loop took 52 faults an image and
0.86 CPU ms, the first epoch 103 and 1.07 ms, the cached epoch 98 and 0.12 ms; with it 3 and
0.76 ms, 27 and 0.89 ms, 37 and 0.09 ms. A block larger than a per-thread heap (64 MiB) that a
thread other than the main one asks for is still mapped on its own (glibc's fallback). It is what ``mallopt`` is for;
TensorFlow's performance guide gets the same effect by preloading tcmalloc, which a library
cannot do once Python runs. Written by hand because neither TensorFlow nor Python exposes
``mallopt``.

The setting is process-wide and permanent: the process keeps the memory it freed instead of
returning it at once (it is reused, not leaked): up to 1 GiB at the top of the main heap, any
freed block below the top of it (large ones included, since they no longer get mappings of their
own), and every per-thread heap it has used, so its resident memory stays near its peak. It is applied the first time a
dataset is built (:func:`keras_species.data.pipeline.finish_dataset`, ``predict``), only on
glibc (Linux), and never when the user has chosen malloc settings of their own (the
``MALLOC_*_`` variables or ``glibc.malloc`` tunables). ``KERAS_SPECIES_MALLOC=system`` turns it
off.

Example:
    >>> tune_malloc()                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

OPT_OUT = "KERAS_SPECIES_MALLOC"
"""Environment variable: ``system`` (or ``0``/``off``) keeps glibc's own malloc settings."""

TRIM_THRESHOLD = 1 << 30
"""Free memory (bytes) at the top of a heap that glibc keeps before handing it back: 1 GiB."""
MMAP_THRESHOLD = 32 << 20
"""Allocations from this size (bytes) up are mapped afresh: 32 MiB, glibc's largest value."""
MMAP_MAX = 0
"""Blocks mapped on their own at a time: none (above the threshold too, blocks come from a heap)."""
TOP_PAD = 64 << 20
"""Free memory (bytes) kept when a heap is trimmed: one whole per-thread heap (64 MiB on 64-bit
glibc), so that an emptied per-thread heap is never unmapped."""

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX")

_state: dict[str, bool] = {}


def user_chose_malloc(environ: dict[str, str] | None = None) -> str | None:
    """Why keras-species leaves malloc alone, if it does: an opt-out or the user's own settings.

    Args:
        environ: the environment to read (default ``os.environ``).

    Returns:
        The variable that decides it (e.g. ``"KERAS_SPECIES_MALLOC=system"``), or ``None``.

    Example:
        >>> user_chose_malloc({"MALLOC_TRIM_THRESHOLD_": "0"})
        'MALLOC_TRIM_THRESHOLD_'
        >>> user_chose_malloc({}) is None
        True
    """
    env = os.environ if environ is None else environ
    choice = env.get(OPT_OUT, "").strip().lower()
    if choice in ("system", "0", "off", "false", "no"):
        return f"{OPT_OUT}={env[OPT_OUT]}"
    for name in _USER_SETTINGS:
        if name in env:
            return name
    if "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    return None


def tune_malloc() -> bool:
    """Keep freed buffers in the process (see the module docstring); once per process.

    Returns:
        True when the settings are in force (set now or by an earlier call), False when they
        were not applied: not glibc, the user's own settings, or ``KERAS_SPECIES_MALLOC=system``.

    Example:
        >>> tune_malloc() in (True, False)
        True
    """
    if "applied" in _state:
        return _state["applied"]
    _state["applied"] = False
    if not sys.platform.startswith("linux") or user_chose_malloc() is not None:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: no mallopt of this kind
            return False
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        ok = libc.mallopt(_M_TOP_PAD, TOP_PAD) == 1 and ok
        ok = libc.mallopt(_M_MMAP_MAX, MMAP_MAX) == 1 and ok
    except (OSError, AttributeError):
        return False
    _state["applied"] = ok
    return ok
