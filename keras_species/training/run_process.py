"""Which process is training a run: the record a recipe leaves in its run folder, and whether
that process still runs.

A recipe writes ``running.json`` in its run folder when it opens it
(:func:`keras_species.recipe.start_run`) and removes it when the run ends, finished, failed or
interrupted (:func:`keras_species.recipe.recipe_main`; at the latest when its process exits).
A process killed outright (SIGKILL, the out-of-memory killer, a power cut) leaves the file
behind, so the file alone does not say that the run is training: :func:`process_state` checks
the process it names. The process id is checked with the time the process started (field 22 of
``/proc/<pid>/stat``, in clock ticks since boot, with the boot's id), so an unrelated process
that got the same id later is not taken for it. A process on another machine (a run folder on
a shared disk) cannot be checked from here. No import of TensorFlow or of any package outside
the standard library: ``keras-species runs`` reads these records.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
from pathlib import Path
from typing import Any, Literal

ProcessState = Literal["alive", "gone", "unknown"]
"""What :func:`process_state` finds: ``alive`` (the process runs on this machine), ``gone``
(it does not: killed or ended), ``unknown`` (it ran on another machine, or this system cannot
tell)."""


def _boot_id() -> str | None:
    """This machine's boot id (Linux), so a start time of an earlier boot is told apart."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None
    when the process does not exist or the system has no ``/proc``.

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself,
    so the fields are split after its last ``)``.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rfind(")") + 2:].split()


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (field 22 of
    ``/proc/<pid>/stat``); None without ``/proc`` (not Linux) or when there is no such process.

    Example:
        >>> process_start_ticks(os.getpid()) is not None  # doctest: +SKIP
        True
    """
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])  # field 22; fields[0] is field 3
    except ValueError:
        return None


def this_process() -> dict[str, Any]:
    """The record of the process calling it, as ``running.json`` holds it.

    Returns:
        ``{"pid", "host", "start_ticks", "boot_id", "since"}``: the process id, this machine's
        host name, when the process started (:func:`process_start_ticks`; None off Linux), the
        boot's id (None off Linux) and the local time now (ISO, seconds).

    Example:
        >>> this_process()["pid"] == os.getpid()
        True
    """
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "start_ticks": process_start_ticks(pid),
        "boot_id": _boot_id(),
        "since": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def is_this_process(record: dict) -> bool:
    """Whether ``record`` (a ``running.json`` object) names the process calling it."""
    me = this_process()
    return all(record.get(key) == me[key] for key in ("pid", "host", "start_ticks", "boot_id"))


def process_state(record: dict) -> ProcessState:
    """Whether the process a ``running.json`` record names still runs.

    Args:
        record: the object of ``running.json`` (:func:`this_process`'s keys).

    Returns:
        ``alive``: it runs on this machine (same host name, boot and start time); ``gone``: no
        process with its id runs here, one that does started at another time or in an earlier
        boot (its id was reused), or it is a zombie; ``unknown``: the record names another host,
        is not a record (no whole ``pid``), or this system cannot check (Windows, where probing
        a process id would end it).

    Example:
        >>> process_state(this_process())
        'alive'
        >>> process_state({"pid": 2**22 + 1, "host": socket.gethostname()})  # doctest: +SKIP
        'gone'
    """
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return "unknown"
    if record.get("host") != socket.gethostname() or os.name == "nt":
        return "unknown"
    boot = record.get("boot_id")
    if boot is not None and _boot_id() not in (None, boot):
        return "gone"  # the machine restarted since: every process of that boot is gone
    try:
        os.kill(pid, 0)  # signal 0: is there such a process (sends nothing)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass  # it exists, run by another user
    except OSError:
        return "unknown"
    fields = _stat_fields(pid)
    if fields is None:  # no /proc (macOS): the id exists; its start time cannot be compared
        return "alive"
    if fields[0] in ("Z", "X"):  # a zombie or dead process: it trains no more
        return "gone"
    ticks = record.get("start_ticks")
    if ticks is not None and process_start_ticks(pid) != ticks:
        return "gone"  # another process got the id
    return "alive"


def describe(record: dict) -> str:
    """The process of a record in words: ``process 1234 on host gpu1 (since 2025-01-01 09:30)``.

    Example:
        >>> describe({"pid": 1234, "host": "gpu1", "since": "2025-01-01T09:30:00"})
        'process 1234 on host gpu1 (since 2025-01-01 09:30)'
    """
    since = str(record.get("since") or "").replace("T", " ")[:16]
    return (f"process {record.get('pid')} on host {record.get('host') or '?'}"
            + (f" (since {since})" if since else ""))
