"""Files that are never seen half-written: write a temporary sibling, then ``os.replace`` it.

Every file the library writes while a user or another process may read it (run state, history,
checkpoints, metrics, predictions, cached features and weights) goes through :func:`atomic_path`,
so a killed or failed run leaves either the previous file or the new one, never a truncated one.
The temporary sibling is named ``.{stem}.tmp-{pid}{suffix}`` in the same folder (``os.replace``
is atomic only within one file system), keeping the suffix because Keras checks it
(``.keras``, ``.weights.h5``). A folder written as a whole (an exported SavedModel) goes through
:func:`atomic_folder` the same way: it is written complete beside its target, then moved in; an
earlier folder it replaces is renamed aside to ``.{name}.old-{pid}`` for that moment, and one a
killed process left there is put back or deleted by the next call (:func:`recover_old_folders`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

_DOUBLE_SUFFIXES = (".weights.h5",)


def _split(name: str) -> tuple[str, str]:
    for suffix in _DOUBLE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    stem, suffix = os.path.splitext(name)
    return stem, suffix


def temporary_path(path: str | os.PathLike) -> Path:
    """The temporary sibling that stands for ``path`` while it is written.

    Args:
        path: the target file.

    Returns:
        ``.{stem}.tmp-{pid}{suffix}`` in the same folder.

    Example:
        >>> temporary_path("/runs/x/best.keras").name == f".best.tmp-{os.getpid()}.keras"
        True
    """
    path = Path(path)
    stem, suffix = _split(path.name)
    return path.with_name(f"{_hidden_prefix(path.parent, stem, 'tmp', suffix)}{os.getpid()}{suffix}")


_PID_DIGITS = 7
"""The longest process id counted when a hidden name must fit (Linux's ``pid_max`` is 4194304)."""


def _hidden_prefix(folder: Path, stem: str, mark: str, suffix: str = "") -> str:
    """``.{stem}.{mark}-``, the start of a hidden sibling's name (a process id and ``suffix``
    follow), with ``stem`` shortened (its start and a hash of the whole) where the name would
    pass the longest the file system takes: a legal name of 245-255 bytes got a temporary name
    that was refused as too long. The same for every process, so that leftovers are found."""
    excess = (len(os.fsencode(f".{stem}.{mark}-")) + _PID_DIGITS + len(os.fsencode(suffix))
              - _name_max(folder))
    if excess > 0:
        import hashlib

        tag = "~" + hashlib.sha1(os.fsencode(stem)).hexdigest()[:8]
        short = os.fsencode(stem)[: max(1, len(os.fsencode(stem)) - excess - len(tag))]
        stem = os.fsdecode(short).rstrip(chr(0xFFFD)) + tag
    return f".{stem}.{mark}-"


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) ``folder``'s file system takes: 255 where it cannot say."""
    try:
        return int(os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def process_running(pid: int) -> bool:
    """Whether another process with this id runs on this machine (POSIX; elsewhere ``False``,
    because ``os.kill`` there would end the process instead of probing it).

    Args:
        pid: a process id.

    Returns:
        ``False`` for this process itself and for ids no process has.

    Example:
        >>> process_running(os.getpid())
        False
    """
    if pid == os.getpid() or os.name != "posix":
        return False  # this process's own temporaries are removed when its block ends
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary siblings of ``path`` that killed processes left behind.

    A temporary file whose writer (the process id in its name) still runs on this machine is
    kept: another process may be writing the same target at this moment. Process ids are not
    checked on Windows.

    Args:
        path: the target file.

    Returns:
        The files removed.

    Example:
        >>> remove_stale_temporaries("runs/x/best.keras")   # doctest: +SKIP
        []
    """
    path = Path(path)
    stem, suffix = _split(path.name)
    prefix = _hidden_prefix(path.parent, stem, "tmp", suffix)
    pattern = os.path.join(glob.escape(str(path.parent)), glob.escape(prefix) + "*" + glob.escape(suffix))
    removed = []
    for stale in glob.glob(pattern):
        name = os.path.basename(stale)
        pid = name[len(prefix) : len(name) - len(suffix)]
        if not pid.isdigit() or process_running(int(pid)):
            continue  # not a name temporary_path gives, or its writer is still at work
        with contextlib.suppress(FileNotFoundError):
            if os.path.isdir(stale) and not os.path.islink(stale):  # from atomic_folder
                shutil.rmtree(stale)
            else:
                os.remove(stale)
            removed.append(Path(stale))
    return removed


def old_folder_path(path: str | os.PathLike, pid: int | None = None) -> Path:
    """Where :func:`atomic_folder` keeps the folder it replaces while the new one is moved in.

    Args:
        path: the target folder.
        pid: the id of the process replacing it (default: this one).

    Returns:
        ``.{name}.old-{pid}`` in the same folder.

    Example:
        >>> old_folder_path("/exports/fish", 42).name
        '.fish.old-42'
    """
    path = Path(path)
    return path.with_name(f"{_hidden_prefix(path.parent, path.name, 'old')}{os.getpid() if pid is None else pid}")


def _changed(path: Path) -> float:
    """When ``path`` was last renamed or changed (its ctime), 0 when it is gone."""
    try:
        return path.stat().st_ctime
    except OSError:
        return 0.0


def recover_old_folders(path: str | os.PathLike) -> list[Path]:
    """Settle the earlier copies of folder ``path`` that :func:`atomic_folder` runs killed while
    replacing it left behind (``.{name}.old-{pid}``, see :func:`old_folder_path`).

    Killed between its two renames, a run leaves ``path`` missing and its only complete copy in
    the old folder: that copy is renamed back to ``path``, with a warning naming both. Killed
    after them, it leaves the old folder beside the complete new ``path``: it is deleted. An
    empty folder in ``path``'s place counts as missing (the old copy is never lost to it). An old
    folder whose process still runs on this machine is left alone (it is replacing ``path`` at
    this moment; this process's own counts as stale, as in :func:`process_running`), and so is
    every one when ``path`` is a file (nothing of this module wrote it).

    Args:
        path: the target folder.

    Returns:
        The old folders restored or deleted.

    Example:
        >>> recover_old_folders("exports/fish_savedmodel")   # doctest: +SKIP
        []
    """
    path = Path(path)
    prefix = _hidden_prefix(path.parent, path.name, "old")
    pattern = os.path.join(glob.escape(str(path.parent)), glob.escape(prefix) + "*")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        return []  # a file at path: not written by atomic_folder; check_output_folder names it
    stale = []
    for found in glob.glob(pattern):
        old, pid = Path(found), os.path.basename(found)[len(prefix):]
        if not pid.isdigit() or old.is_symlink() or not old.is_dir() or process_running(int(pid)):
            continue  # not a name atomic_folder gives, or its process is still replacing path
        stale.append((old, pid))
    # the most recently renamed first: the newest earlier copy is the one to put back
    stale.sort(key=lambda item: _changed(item[0]), reverse=True)
    settled = []
    for old, pid in stale:
        if path.is_dir() and any(path.iterdir()):  # the new folder is complete: the old is spent
            shutil.rmtree(old, ignore_errors=True)
        else:  # killed between the renames: path is missing (or an empty folder in its place)
            try:
                os.replace(old, path)
            except OSError:
                continue  # another process restored it, or filled path, at this moment
            warnings.warn(f"restored {path} from {old}, the earlier copy that a killed run "
                          f"(process {pid}) left while replacing it", stacklevel=2)
        settled.append(old)
    return settled


def commit(tmp: str | os.PathLike, path: str | os.PathLike, flag: str | None = None) -> None:
    """Flush ``tmp`` to disk and move it over ``path`` in one step.

    An ``OSError`` about ``tmp`` (``path`` became a folder, the disk is full) removes ``tmp`` and
    is raised naming ``path`` (and ``flag``) and the system's reason, not the temporary name.

    Args:
        tmp: the complete temporary file.
        path: the target file.
        flag: the command-line option that gave ``path`` (``"--out"``), named in messages.

    Raises:
        OSError: as above, or another error of the move.

    Example:
        >>> commit(temporary_path("out.csv"), "out.csv")   # doctest: +SKIP
    """
    try:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if not _names_temporary(err, Path(tmp)):
            raise
        _discard(Path(tmp))
        raise _write_error(err, Path(path), Path(tmp), flag) from err


def check_output_file(
    path: str | os.PathLike, flag: str | None = None, example: str = "out.csv", *, make: bool = True
) -> Path:
    """Make sure ``path`` can take a file before the work that fills it: its folder is made, and
    a ``path`` that is a folder, or a folder on its way that is a file, is named now (the final
    ``os.replace`` would otherwise fail after the work, with an ``[Errno 21]`` that names no
    option).

    Args:
        path: the output file.
        flag: the command-line option that gave it (``"--out"``), named in the message.
        example: a file name the message suggests inside a ``path`` that is a folder.
        make: make the folder (and so learn whether it can be made); ``False`` checks only
            what can be checked without changing anything, for a command to call before it
            reads its data, and again with ``make=True`` once the data has read.

    Returns:
        ``path`` as a Path.

    Raises:
        IsADirectoryError, NotADirectoryError: as above (also for a name that ends with ``/``,
            a folder's); ``PermissionError`` or another ``OSError`` when the folder cannot be
            made, in :func:`atomic_path`'s one line naming ``path`` and ``flag``.

    Example:
        >>> check_output_file("results/predictions.csv", "--out")   # doctest: +SKIP
        PosixPath('results/predictions.csv')
    """
    text = os.fspath(path)
    path = Path(path)
    given = f"{path} ({flag})" if flag else str(path)
    if any(len(os.fsencode(part)) > _name_max(path.parent) for part in path.parts):
        raise _write_error(OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)), path, path, flag)
    if path.is_dir():
        raise IsADirectoryError(f"{given} is a folder: give a file name, e.g. {path / example}")
    if text.endswith(tuple(filter(None, ("/", os.sep, os.altsep)))):  # Path drops the separator
        raise IsADirectoryError(f"{text}{f' ({flag})' if flag else ''} names a folder (it ends with "
                                f"{text[-1]}): give a file name, e.g. {path / example}")
    _check_parents(path, given)
    if make:
        _make_parent(path, flag)
    return path


def _check_parents(path: Path, given: str) -> None:
    """Name a file where a folder on ``path``'s way should be."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{given} cannot be written: {parent} is a file, not a folder")
            break


def _make_parent(path: Path, flag: str | None) -> None:
    """Make ``path``'s folder; the reason it cannot be made is told in :func:`_write_error`'s
    one line naming ``path`` and ``flag`` (not a bare ``[Errno 13] Permission denied``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # no permission, a read-only file system, ...
        raise _write_error(err, path, path, flag) from None


def check_output_folder(
    path: str | os.PathLike, flag: str | None = None, example: str | None = None, *,
    make: bool = True,
) -> Path:
    """The folder counterpart of :func:`check_output_file`, before the work that fills ``path``:
    a ``path`` that is a file, or a folder on its way that is a file, is named now, and the
    folder that will hold it is made. Whether an existing folder may be replaced is the
    caller's decision (:func:`atomic_folder` refuses a non-empty one unless told to replace it).
    The earlier copy of ``path`` that a run killed while replacing it left beside it is put back
    first, or deleted if that run's new folder is complete (:func:`recover_old_folders`).

    Args:
        path: the output folder.
        flag: the command-line option that gave it (``"--out"``), named in the message.
        example: a folder name the message suggests instead of a file (default
            ``<name>_folder`` beside it).
        make: make the folder that holds ``path`` and settle earlier copies; ``False`` checks
            only, changing nothing (as in :func:`check_output_file`).

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` is a file. NotADirectoryError, PermissionError: as in
            :func:`check_output_file`.

    Example:
        >>> check_output_folder("exports/fish_savedmodel", "--out")   # doctest: +SKIP
        PosixPath('exports/fish_savedmodel')
    """
    path = Path(path)
    given = f"{path} ({flag})" if flag else str(path)
    if path.exists() and not path.is_dir():
        suggestion = example or str(path.with_name(f"{path.stem}_folder"))
        raise FileExistsError(f"{given} is a file, and a folder is written there: give a folder "
                              f"name, e.g. {suggestion}")
    _check_parents(path, given)
    if make:
        _make_parent(path, flag)
        recover_old_folders(path)
    return path


def _names_temporary(err: OSError, tmp: Path) -> bool:
    """Whether ``err`` is about the temporary sibling ``tmp`` (its file name, or its message)."""
    names = {os.fspath(tmp), str(tmp.absolute())}
    given = {os.fspath(n) for n in (err.filename, err.filename2) if isinstance(n, (str, os.PathLike))}
    return bool(names & given) or any(name in str(err) for name in names)


def _write_error(err: OSError, path: Path, tmp: Path, flag: str | None) -> OSError:
    """``err`` (about the temporary sibling ``tmp``) told as an error of ``path``, the file the
    user asked for: the message names ``path``, ``flag`` and the system's reason, not ``tmp``."""
    reason = err.strerror or str(err).replace(os.fspath(tmp), os.fspath(path))
    if err.errno == errno.ENAMETOOLONG:  # not a question of the folder or its free space
        limit = _name_max(path.parent)
        longest = max((len(os.fsencode(p)) for p in path.parts), default=0)
        message = (f"{path}{f' ({flag})' if flag else ''} cannot be written: its name is too long "
                   f"({longest} bytes; this file system takes at most {limit} a name): give a "
                   f"shorter {flag or 'name'}")
        named = OSError(message)
        named.errno = errno.ENAMETOOLONG
        return named
    if flag:
        message = (f"{path} ({flag}) cannot be written ({reason}): give another {flag}, in a "
                   "folder you can write to that has free space")
    else:
        message = (f"{path} cannot be written ({reason}): make sure its folder can be written "
                   "to and has free space")
    try:
        named = type(err)(message)
    except TypeError:  # an OSError subclass with other arguments
        named = OSError(message)
    named.errno = err.errno
    return named


def _discard(tmp: Path) -> None:
    """Remove the temporary file ``tmp`` if it is there (its folder may be gone, or a file).
    Nothing is asked of a temporary that was never made: on a read-only file system ``unlink``
    of a missing file fails too, and its error would hide the one that names the target."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if os.path.lexists(tmp):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, flag: str | None = None) -> Iterator[Path]:
    """A path to write ``path``'s new content to; it replaces ``path`` when the block ends well.

    The folder is created if needed (:func:`check_output_file`). If the block raises, the
    temporary file is removed and ``path`` is untouched. A block that writes nothing leaves
    ``path`` untouched too (a checkpoint that decided not to save). An ``OSError`` about the
    temporary file (its folder cannot be written, the disk is full, ``path`` became a folder)
    is raised as the same kind of error naming ``path`` (and ``flag``) and the system's reason:
    the temporary name means nothing to the user.

    Args:
        path: the target file.
        flag: the command-line option that gave ``path`` (``"--out"``), named in messages.

    Yields:
        The temporary sibling (:func:`temporary_path`).

    Raises:
        OSError: as above, or an error of the block that is not about the temporary file.

    Example:
        >>> with atomic_path(run_dir / "metrics.json") as tmp:   # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    path = check_output_file(path, flag)
    tmp = temporary_path(path)
    try:
        yield tmp
        if tmp.exists():
            commit(tmp, path, flag)
    except OSError as err:
        if not _names_temporary(err, tmp) and err.errno != errno.ENAMETOOLONG:
            raise
        raise _write_error(err, path, tmp, flag) from err  # its class and errno, path's name
    finally:
        _discard(tmp)


def _fsync_tree(folder: Path) -> None:
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_folder(
    path: str | os.PathLike, *, replace: bool = False, flag: str | None = None
) -> Iterator[Path]:
    """A folder to write ``path``'s new content to; it takes ``path``'s place when the block
    ends well, so ``path`` never holds a half-written or mixed set of files.

    The new folder is the hidden sibling :func:`temporary_path` names. When the block ends well
    its files are flushed to disk and it is renamed to ``path``. An existing ``path`` (only with
    ``replace=True`` unless it is empty) is first renamed aside and deleted once the new folder
    is in place; if the block raises, the new folder is deleted and ``path`` is untouched.
    Temporary folders that killed processes left beside ``path`` are deleted first
    (:func:`remove_stale_temporaries`), and an earlier copy that one left renamed aside is put
    back, or deleted beside a complete ``path`` (:func:`recover_old_folders`), before ``replace``
    is considered: a restored folder that holds files is refused without ``replace``.

    An ``OSError`` about the temporary folder is raised naming ``path`` (and ``flag``) instead,
    as in :func:`atomic_path`.

    Args:
        path: the target folder.
        replace: replace a ``path`` that holds files; without it such a folder is refused
            before the block runs (an empty folder is always taken).
        flag: the command-line option that gave ``path`` (``"--out"``), named in messages.

    Yields:
        The empty temporary folder.

    Raises:
        FileExistsError: ``path`` holds files and ``replace`` is False, or ``path`` is a file.
        OSError: the temporary folder cannot be made, filled or moved in (see above).

    Example:
        >>> with atomic_folder("exports/fish_savedmodel") as tmp:   # doctest: +SKIP
        ...     tf.saved_model.save(module, str(tmp))
    """
    path = check_output_folder(path, flag)
    if not replace and path.is_dir() and any(path.iterdir()):
        raise FileExistsError(f"{path} holds files already: choose a new or empty folder")
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    if tmp.is_dir():  # this process's own, from a block that was interrupted
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
    except OSError as err:
        raise _write_error(err, path, tmp, flag) from err
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            old = old_folder_path(path)
            if old.exists():  # left by an earlier process of this id that was killed here
                shutil.rmtree(old)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the earlier folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        if not _names_temporary(err, tmp):
            raise
        raise _write_error(err, path, tmp, flag) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
