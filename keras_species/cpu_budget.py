"""How many CPU cores this process can keep busy: its CPU affinity and its cgroup CPU quota.

A container limited with ``docker run --cpus 2`` or a Kubernetes CPU limit still sees every core
of the host: the limit is a cgroup *bandwidth quota* (so many microseconds of CPU time per
period), not an affinity mask, so ``os.cpu_count()`` and ``os.sched_getaffinity`` report the
host's cores. TensorFlow sizes its thread pools from the affinity mask alone
(tensorflow/tensorflow#17206), and so did keras-species: on a 2-CPU quota of a 128-core host the
decode map would keep 8 x 128 calls in flight and, by TensorFlow's source, a fused map-and-batch
with ``AUTOTUNE`` parallelism would buffer 16 batches, all of it time-sliced onto two cores'
worth of time and throttled by the kernel. :func:`usable_cores` is the smaller of the two limits, and the
pipeline sizes its parallelism from it (``pipeline.decode_calls``, ``pipeline.dataset_options``,
``predict``, ``shard``). Outside a limited container it is the affinity count, as before.

Written by hand because the one library here that reads the quota, joblib (loky's
``cpu_count``), takes 0.13 s to import, reads only the mount root (not the process's own cgroup
and its ancestors) and is not meant as a public API.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup file systems are mounted (v2 at the root or at ``unified/``, v1 per
controller)."""

_V2_MOUNTS = ("", "unified")  # unified: the v2 hierarchy of a hybrid (v1 + v2) system
_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _mount(root: Path, names: tuple[str, ...], marker: str) -> Path | None:
    """The first ``root/name`` holding ``marker`` (where that hierarchy is mounted), or ``None``."""
    return next((root / name for name in names if (root / name / marker).is_file()), None)


def affinity_cores() -> int:
    """The CPUs this process may be scheduled on (its affinity mask), as TensorFlow counts them.

    Returns:
        At least 1.

    Example:
        >>> affinity_cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _own_and_ancestors(mount: Path, path: str) -> Iterator[Path]:
    """The cgroup directory ``path`` under ``mount`` and each parent up to the mount root, those
    that exist (inside a container the mount root is often the container's own cgroup, and the
    host's path below it does not exist)."""
    parts = [p for p in path.split("/") if p and p != ".."]
    for k in range(len(parts), -1, -1):
        folder = mount.joinpath(*parts[:k])
        if folder.is_dir():
            yield folder


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _v2_quota(folder: Path) -> float | None:
    """CPUs' worth of time a v2 cgroup allows (``cpu.max``: ``"<quota> <period>"`` or
    ``"max <period>"``); ``None`` when unlimited or unreadable."""
    fields = (_read(folder / "cpu.max") or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(folder: Path) -> float | None:
    """CPUs' worth of time a v1 cgroup allows (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``;
    a quota of -1 is unlimited); ``None`` when unlimited or unreadable."""
    try:
        quota = int(_read(folder / "cpu.cfs_quota_us") or "-1")
        period = int(_read(folder / "cpu.cfs_period_us") or "0")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: str | os.PathLike = CGROUP_ROOT,
                     proc_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """The CPU time per period that this process's cgroups allow, in CPUs (e.g. 1.5).

    Reads the process's own cgroup from ``/proc/self/cgroup`` (v2 ``0::/path``, v1
    ``N:cpu,cpuacct:/path``) and the quota of that cgroup and of every ancestor that the mount
    shows (the tightest one applies).

    Args:
        root: where the cgroup file systems are mounted.
        proc_cgroup: the process's cgroup membership file.

    Returns:
        The quota in CPUs, or ``None`` where no quota is set (or nothing can be read: not Linux).

    Example:
        >>> cgroup_cpu_quota("/nonexistent") is None
        True
    """
    text = _read(Path(proc_cgroup))
    if not text:
        return None
    root, quotas = Path(root), []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and controllers == "":  # cgroup v2
            mount, read = _mount(root, _V2_MOUNTS, "cgroup.controllers"), _v2_quota
        elif "cpu" in controllers.split(","):  # cgroup v1, the cpu controller
            mount, read = _mount(root, _V1_CPU_MOUNTS, "cpu.cfs_quota_us"), _v1_quota
        else:
            continue
        if mount is not None:
            quotas += [q for q in map(read, _own_and_ancestors(mount, path)) if q is not None]
    return min(quotas) if quotas else None


def usable_cores() -> int:
    """How many cores this process can keep busy: the affinity count, capped by the cgroup CPU
    quota rounded up (a quota of 1.5 CPUs gives 2: two busy threads use it all).

    Returns:
        At least 1.

    Example:
        >>> 1 <= usable_cores() <= affinity_cores()
        True
    """
    cores, quota = affinity_cores(), cgroup_cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
"""The environment variables TensorFlow sizes its two CPU thread pools from when its runtime
starts (else from the cores it sees)."""


def default_tensorflow_threads(environ: dict | None = None) -> int | None:
    """Under a cgroup CPU quota below the cores the process sees, default TensorFlow's thread
    pools (:data:`THREAD_VARIABLES`) to :func:`usable_cores`; elsewhere do nothing.

    ``import keras_species`` calls it. It takes effect only if TensorFlow's runtime has not
    started yet, and never replaces a value the user set. Under a 1-CPU quota on this 2-core
    machine, an epoch of a small CNN took 1.15-1.21 s with the pools at 1 thread against
    1.23-1.44 s at the default 2; the larger the host, the more threads TensorFlow would start.

    Args:
        environ: the environment to update (default ``os.environ``).

    Returns:
        The thread count now in effect for both pools where a quota applies, else ``None``.

    Example:
        >>> default_tensorflow_threads({}) in (None, usable_cores())
        True
    """
    environ = os.environ if environ is None else environ
    cores = usable_cores()
    if cores >= affinity_cores():
        return None
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(cores))
    return cores


def describe_cores() -> str:
    """The cores this process can use, for a report's header line.

    Returns:
        ``"2 CPU cores"``, or under a quota ``"2 CPU cores (a quota of 1.5 CPUs on 128 visible)"``.

    Example:
        >>> describe_cores().split()[1:3]
        ['CPU', 'cores']
    """
    cores, visible, quota = usable_cores(), affinity_cores(), cgroup_cpu_quota()
    if cores == visible:
        return f"{cores} CPU cores"
    return f"{cores} CPU cores (a quota of {quota:g} CPUs on {visible} visible)"
