"""``tf.data`` file caches that cannot serve another data set's images or block a restart.

``Dataset.cache(prefix)`` trusts whatever lies at ``prefix``: a cache written for another split,
image size or seed is read back without a word (other images, other labels), and a process
killed while it wrote one leaves ``<prefix>_0.lockfile``, on which every later run stops with
``AlreadyExistsError``. Neither is handled by tf.data, hence this module:

- :func:`keyed_cache_path` appends a key to the user's prefix, a hash of everything the cached
  elements depend on (files with their size and modification time, labels, weights, image size,
  resizing, batching), so that a cache is only ever read back for the same content;
- it also removes the lock (and the half-written files) that a killed process left on that
  prefix, using an owner file ``<prefix>.owner`` with the writer's process id. The lock of a
  process that still runs on this machine is kept, as is any lock this module did not record;
- :func:`cache_writer` says whether another process is writing the cache now. tf.data refuses
  a second writer with ``AlreadyExistsError`` and, cleaning up after it, deletes the first
  writer's lock and half-written file, so the run that did nothing wrong dies at the end of
  its first epoch: the pipeline reads without a cache instead (``pipeline._resolve_cache``).

Example:
    >>> prefix = keyed_cache_path("cache/train", {"size": 224, "files": ["a.jpg"]})  # doctest: +SKIP
    >>> ds = ds.cache(prefix)                                                         # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from keras_species.atomic import atomic_path, process_running
from keras_species.jsonfile import read_json_file

__all__ = [
    "array_fingerprint", "cache_writer", "distributed_task", "file_fingerprint", "file_identity",
    "keyed_cache_path", "other_caches", "release_stale_lock",
]


def file_identity(path: str) -> list[Any]:
    """What identifies a local file's content in a cache key: ``[path, size, mtime_ns, inode,
    ctime_ns]``.

    The inode and the change time are there because size and modification time can be the
    same for other content: two images of one size swapped by name (files unpacked from one
    archive share their times), or a file rewritten and its time set back (``os.utime``,
    ``touch -d``, ``cp -p``), were read back from the caches stale. A rename or a ``chmod``
    changes the change time too, and costs one recomputation.

    Args:
        path: the file.

    Returns:
        The five values, or ``[path, -1, -1, -1, -1]`` when it cannot be stat'ed (a missing file
        is part of the key too).

    Example:
        >>> file_identity("/no/such/file")
        ['/no/such/file', -1, -1, -1, -1]
    """
    try:
        st = os.stat(path)
    except OSError:
        return [path, -1, -1, -1, -1]
    return [path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def file_fingerprint(paths: Iterable[str]) -> str:
    """A hash of :func:`file_identity` over files (``tf.io.gfile`` paths such as ``gs://`` too).

    Args:
        paths: the files.

    Returns:
        A hex SHA-1: it changes when a file is added, removed, renamed, rewritten or touched.

    Example:
        >>> len(file_fingerprint([__file__]))
        40
    """
    digest = hashlib.sha1()
    for p in paths:
        ident = file_identity(os.fspath(p))
        if ident[1] == -1:  # not a local file: ask tf.io.gfile
            ident[1:] = _gfile_stat(ident[0])
        digest.update(json.dumps(ident).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def array_fingerprint(a: Any) -> str:
    """A hash of an array's dtype, shape and values (labels, weights in a cache key).

    Args:
        a: an array-like.

    Returns:
        A hex SHA-1.

    Example:
        >>> array_fingerprint([1, 2]) == array_fingerprint([1, 2]) != array_fingerprint([2, 1])
        True
    """
    import numpy as np

    a = np.ascontiguousarray(a)
    return hashlib.sha1(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def _gfile_stat(path: str) -> list[int]:
    """Size and modification time of a ``gs://`` (or other ``tf.io.gfile``) file; ``(-1, -1)``
    when it cannot be read (the cache key then changes when it comes back)."""
    try:
        import tensorflow as tf

        st = tf.io.gfile.stat(path)
        return [int(st.length), int(st.mtime_nsec)]
    except Exception:  # noqa: BLE001 - an unreadable file only makes the key differ
        return [-1, -1]


def distributed_task() -> str | None:
    """This process's task in a multi-worker ``tf.distribute`` job, from ``TF_CONFIG`` (what
    ``MultiWorkerMirroredStrategy`` reads), e.g. ``"worker:1"``; ``None`` outside one.

    Under such a job ``tf.data`` auto-shards each worker's input below the cache (by file or by
    element), so the workers' caches hold different images and must not share a key.

    Returns:
        ``"<type>:<index>"`` or ``None``.

    Example:
        With ``TF_CONFIG`` set to ``{"task": {"type": "worker", "index": 1}, ...}``:

        >>> distributed_task()   # doctest: +SKIP
        'worker:1'
    """
    try:
        task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task") or {}
        return f"{task['type']}:{int(task['index'])}"
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


def keyed_cache_path(prefix: str | os.PathLike, content: Mapping[str, Any]) -> str:
    """The file-cache prefix for ``content``: ``<prefix>-<16 hex digits>``, lock released.

    In a multi-worker job the key holds the worker's task (:func:`distributed_task`): each
    worker caches its own share of the data.

    Args:
        prefix: the user's cache prefix (e.g. ``cache/train``); its folder is created.
        content: JSON-ready description of what the cached elements depend on.

    Returns:
        The prefix to pass to ``Dataset.cache``.

    Example:
        >>> p = keyed_cache_path("/tmp/c/train", {"size": 64})   # doctest: +SKIP
        >>> p.startswith("/tmp/c/train-")                        # doctest: +SKIP
        True
    """
    worker = distributed_task()
    if worker is not None:  # each worker's own share of the data sits below its cache
        content = {**content, "worker": worker}
    text = json.dumps(content, sort_keys=True, default=str)
    path = f"{os.fspath(prefix)}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:  # a bare "FileExistsError: File exists: 'afile'" named no cache
        raise OSError(err.errno, f"the file cache {os.fspath(prefix)!r} cannot be made in {folder} "
                                 f"({err.strerror}: {err.filename}): give a folder you can write, "
                                 "or cache=True for memory") from None
    release_stale_lock(path)
    if not os.path.exists(f"{path}.index"):  # a new cache is about to be written
        _warn_other_caches(os.fspath(prefix), path)
    with _one_claim_at_a_time(folder):  # two runs started together both claimed it, and both died
        if not _locks(path) and cache_writer(path) is None:  # nobody writes it now (or is about
            # to): this process may, so it owns the lock to come
            owner = {"pid": os.getpid(), "host": socket.gethostname()}
            with contextlib.suppress(OSError), atomic_path(f"{path}.owner") as tmp:
                tmp.write_text(json.dumps(owner), encoding="utf-8")
            _claimed.add(path)
    return path


@contextlib.contextmanager
def _one_claim_at_a_time(folder: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the cache folder while a process decides whether it may
    write a cache and records itself as its owner, so that of two runs starting at once the
    second sees the first's owner file (the check and the write were two steps, and both runs
    went on to write). Written by hand because neither tf.data nor the standard library has an
    interprocess claim. The kernel drops the lock if the process dies; where the file system has
    no ``flock`` (Windows, some network mounts) it goes on without one, as before."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


_claimed: set[str] = set()
"""The keyed caches whose owner file this process wrote (:func:`_drop_unused_claims`)."""


def _drop_unused_claims() -> None:
    """At exit, remove the owner files this process wrote for caches it never began: a dataset
    built but never read (a recipe's test split, which the evaluation reads itself) left
    ``test-<key>.owner`` behind. A cache begun, whole or cut short, keeps its owner file: the
    next run needs it to release a dead writer's lock."""
    for path in _claimed:
        begun = glob.glob(glob.escape(path) + ".*") + glob.glob(glob.escape(path) + "_*")
        if any(not name.endswith(".owner") for name in begun):
            continue
        if _read_owner(path)[0] == (os.getpid(), socket.gethostname()):
            with contextlib.suppress(OSError):
                os.remove(f"{path}.owner")


atexit.register(_drop_unused_claims)


def other_caches(prefix: str | os.PathLike, path: str | None = None) -> dict[str, int]:
    """The keyed caches on ``prefix`` other than ``path``, with the bytes each takes on disk.

    Each key of a prefix is one content (other files, labels, image size or batching): such a
    cache is never read back for other content, so it only takes space until it is deleted.

    Args:
        prefix: the user's cache prefix (e.g. ``cache/train``).
        path: the keyed prefix to leave out (the one in use), as from :func:`keyed_cache_path`.

    Returns:
        ``{keyed prefix: bytes}`` for every other key with cache files on disk (written or being
        written), sorted by name.

    Example:
        >>> other_caches("/no/such/cache/train")
        {}
    """
    prefix = os.fspath(prefix)
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"-([0-9a-f]{16})(?:[._]|$)")
    found: dict[str, int] = {}
    written: set[str] = set()
    for name in glob.glob(glob.escape(prefix) + "-" + "[0-9a-f]" * 16 + "*"):
        match = pattern.match(os.path.basename(name))
        keyed = f"{prefix}-{match.group(1)}" if match else None
        if keyed is None or keyed == path:
            continue
        if ".data-" in name or name.endswith(".index"):
            written.add(keyed)
        with contextlib.suppress(OSError):
            found[keyed] = found.get(keyed, 0) + os.path.getsize(name)
    # a key with only its owner file (never iterated) holds no cache
    return {k: n for k, n in sorted(found.items()) if k in written}


_warned: set[str] = set()


def _read_owner(path: str) -> tuple[tuple[int, str] | None, str | None]:
    """``((pid, host), None)`` from the owner file of cache ``path``; ``(None, None)`` when there
    is none, ``(None, reason)`` when it is damaged (then it tells nothing, as if absent)."""
    if not os.path.exists(f"{path}.owner"):
        return None, None
    owner, reason = read_json_file(f"{path}.owner", dict)
    if reason:
        return None, reason
    pid, host = owner.get("pid"), owner.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
        return None, f"pid {pid!r} and host {host!r} do not name a process"
    return (pid, host), None


def _used_here(keyed: str) -> bool:
    """Whether this process wrote or read the cache ``keyed`` (its owner file names it)."""
    owner, _ = _read_owner(keyed)
    return owner == (os.getpid(), socket.gethostname())


def _warn_other_caches(prefix: str, path: str) -> None:
    # once a prefix and process; the caches of this process's other data sets (the folds of a
    # cross-validation share one prefix) are in use, not left over
    if prefix in _warned:
        return
    others = {k: n for k, n in other_caches(prefix, path).items() if not _used_here(k)}
    if not others:
        return
    _warned.add(prefix)
    size = sum(others.values())
    names = ", ".join(os.path.basename(k) for k in list(others)[:3]) + (", ..." if len(others) > 3 else "")
    warnings.warn(
        f"cache {prefix}: {len(others)} cache(s) written for other content (other files, labels, "
        f"image size or batching) still take {size / 1e6:.1f} MB ({names}); they are never read "
        f"for this data. Delete {prefix}-<key>.* when you no longer need them.",
        stacklevel=3,
    )


def _locks(path: str) -> list[str]:
    return glob.glob(glob.escape(path) + "_*.lockfile")


def release_stale_lock(path: str) -> list[str]:
    """Remove the lock and half-written files that a killed writer left on cache ``path``.

    Only when ``<path>.owner`` names a process of this machine that no longer runs: a running
    writer's lock, and a lock without an owner file, are left to tf.data.

    Args:
        path: the cache prefix (as from :func:`keyed_cache_path`).

    Returns:
        The files removed.

    Example:
        >>> release_stale_lock("cache/train-0123456789abcdef")   # doctest: +SKIP
        []
    """
    locks = _locks(path)
    if not locks:
        return []
    owner, reason = _read_owner(path)
    if reason:
        warnings.warn(
            f"cache {path}: its owner file {path}.owner is damaged ({reason}), so it cannot tell "
            f"whether the process that locked the cache still runs: the lock is left as without "
            f"an owner file. If no other run writes this cache now, delete {path}_*.lockfile "
            f"(or the whole cache {path}*)",
            stacklevel=2,
        )
    if owner is None:
        return []
    pid, host = owner
    if host != socket.gethostname() or pid == os.getpid() or process_running(pid):
        return []
    stale = locks + glob.glob(glob.escape(path) + "_*.tempstate*")
    removed = []
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
            removed.append(name)
    return removed


CLAIM_SECONDS = 120.0
"""How long a live process's claim on a cache it has built a dataset on, but not begun to write,
keeps other processes from writing it (see :func:`cache_writer`)."""


def cache_writer(path: str) -> str | None:
    """Who else holds the lock of cache ``path`` now, in words; ``None`` when nobody (or this
    process) does.

    :func:`keyed_cache_path` (which removes the lock of a writer that no longer runs) records
    this process as the owner only when this says nobody else writes: a lock left is a running
    writer's, one on another machine, or one this module did not record (no owner file), and
    tf.data cannot share it.
    Without a lock, a running process of this machine whose owner file names an incomplete
    cache, written in the last :data:`CLAIM_SECONDS`, has built a dataset on it and takes the
    lock at its first element.

    Args:
        path: the cache prefix (as from :func:`keyed_cache_path`).

    Returns:
        ``"process 123 on host-a"``, ``"a writer that left no owner file"``, or ``None``.

    Example:
        >>> cache_writer("/no/such/cache-0123456789abcdef") is None
        True
    """
    owner, _ = _read_owner(path)
    if owner == (os.getpid(), socket.gethostname()):
        return None
    if not _locks(path):
        # no lock yet: tf.data takes it at the first element, after the dataset is built, so a
        # live process that built one on this key lately (its owner file) is about to write it;
        # a claim lapses after CLAIM_SECONDS (a notebook that built a dataset and stopped would
        # hold it for ever); a complete cache (its index) is read by anyone
        if owner is None or os.path.exists(f"{path}.index") or owner[1] != socket.gethostname():
            return None
        try:
            age = time.time() - os.path.getmtime(f"{path}.owner")
        except OSError:
            return None
        if age > CLAIM_SECONDS or not process_running(owner[0]):
            return None
        return (f"process {owner[0]} on {owner[1]}, which built a dataset on it {age:.0f} s ago and "
                "has not begun to write it")
    if owner is None:
        return "a writer that left no owner file"
    return f"process {owner[0]} on {owner[1]}"
