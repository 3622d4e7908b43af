"""keras_species.atomic: temporary siblings and os.replace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keras_species.atomic import (
    atomic_folder,
    atomic_path,
    check_output_file,
    check_output_folder,
    commit,
    recover_old_folders,
    remove_stale_temporaries,
    temporary_path,
)


def test_temporary_path_is_a_hidden_sibling_that_keeps_the_suffix(tmp_path):
    pid = os.getpid()
    assert temporary_path(tmp_path / "best.keras") == tmp_path / f".best.tmp-{pid}.keras"
    assert temporary_path(tmp_path / "phase0.weights.h5") == tmp_path / f".phase0.tmp-{pid}.weights.h5"
    assert temporary_path(tmp_path / "state.json") == tmp_path / f".state.tmp-{pid}.json"


def test_atomic_path_replaces_on_success_only(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    with atomic_path(target) as tmp:  # creates the folder
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "new"  # the earlier content survives

    with atomic_path(target):
        pass  # nothing written (a checkpoint that did not save): the target stays
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_remove_stale_temporaries_only_removes_the_targets_own(tmp_path, dead_pid):
    names = [f".best.tmp-{dead_pid}.keras", f".best.tmp-{os.getpid()}.keras", f".other.tmp-{dead_pid}.keras",
             "best.keras", f".best.tmp-{dead_pid}.json", ".best.tmp-x1.keras"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path / "best.keras")
    assert sorted(p.name for p in removed) == sorted([f".best.tmp-{dead_pid}.keras", f".best.tmp-{os.getpid()}.keras"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".best.tmp-{dead_pid}.json", ".best.tmp-x1.keras",
                                                                 f".other.tmp-{dead_pid}.keras", "best.keras"])


@pytest.mark.skipif(os.name != "posix", reason="process ids are checked on POSIX only")
def test_remove_stale_temporaries_keeps_a_running_writers_file(tmp_path, dead_pid):
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".best.tmp-{writer.pid}.keras").write_text("being written")
        (tmp_path / f".best.tmp-{dead_pid}.keras").write_text("left by a killed run")
        removed = remove_stale_temporaries(tmp_path / "best.keras")
        assert [p.name for p in removed] == [f".best.tmp-{dead_pid}.keras"]
        assert (tmp_path / f".best.tmp-{writer.pid}.keras").read_text() == "being written"
    finally:
        writer.kill()
        writer.wait()
    assert [p.name for p in remove_stale_temporaries(tmp_path / "best.keras")] == [f".best.tmp-{writer.pid}.keras"]


def test_an_output_that_cannot_take_a_file_is_named_before_any_work(tmp_path):
    assert check_output_file(tmp_path / "new" / "deeper" / "out.csv") == tmp_path / "new" / "deeper" / "out.csv"
    assert (tmp_path / "new" / "deeper").is_dir()
    with pytest.raises(IsADirectoryError, match=r"\(--out\) is a folder: give a file name, e.g. .*out.csv"):
        check_output_file(tmp_path / "new", "--out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"f/sub/out.csv cannot be written: .*f is a file"):
        check_output_file(tmp_path / "f" / "sub" / "out.csv")
    with pytest.raises(IsADirectoryError), atomic_path(tmp_path / "new") as tmp:
        pytest.fail(f"the block ran: {tmp}")


def test_atomic_folder_moves_a_complete_folder_in_and_never_mixes(tmp_path):
    target = tmp_path / "sub" / "export"
    with atomic_folder(target) as tmp:  # creates the parent; the target appears only at the end
        assert tmp.is_dir() and tmp.parent == target.parent and not target.exists()
        (tmp / "a.txt").write_text("first")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]

    with pytest.raises(FileExistsError, match="export holds files already"), atomic_folder(target):
        pytest.fail("the block ran over a folder that holds files")

    with pytest.raises(RuntimeError), atomic_folder(target, replace=True) as tmp:
        (tmp / "b.txt").write_text("half")
        raise RuntimeError("killed while writing")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # the earlier folder survives

    with atomic_folder(target, replace=True) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced whole: no a.txt left
    assert sorted(p.name for p in target.parent.iterdir()) == ["export"]  # no temporary, no old copy

    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_folder(empty) as tmp:  # an empty folder is taken without replace
        (tmp / "c.txt").write_text("x")
    assert [p.name for p in empty.iterdir()] == ["c.txt"]


def test_atomic_folder_removes_temporary_folders_of_killed_runs(tmp_path, dead_pid):
    stale = tmp_path / f".export.tmp-{dead_pid}"
    (stale / "variables").mkdir(parents=True)
    (stale / "saved_model.pb").write_text("half")
    assert remove_stale_temporaries(tmp_path / "export") == [stale]
    assert not stale.exists()


def test_an_output_folder_that_is_a_file_is_named_before_any_work(tmp_path):
    assert check_output_folder(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "out").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match=r"f \(--out\) is a file, and a folder is written there: "
                                              r"give a folder name, e.g. .*f_folder"):
        check_output_folder(tmp_path / "f", "--out")
    with pytest.raises(NotADirectoryError, match=r"f/sub cannot be written: .*f is a file"):
        check_output_folder(tmp_path / "f" / "sub")
    with pytest.raises(FileExistsError), atomic_folder(tmp_path / "f") as tmp:
        pytest.fail(f"the block ran: {tmp}")
    assert (tmp_path / "f").read_text() == "x"


def _old_copy(folder, text: str):
    """An earlier copy of a folder renamed aside by atomic_folder (``.NAME.old-PID``)."""
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_text(text)
    return folder


def test_an_earlier_copy_left_by_a_run_killed_between_the_renames_is_put_back(tmp_path, dead_pid):
    target = tmp_path / "export"
    old = _old_copy(tmp_path / f".export.old-{dead_pid}", "previous")  # target is missing
    with pytest.warns(UserWarning, match=rf"restored .*export from .*\.export\.old-{dead_pid}, the "
                                         rf"earlier copy that a killed run \(process {dead_pid}\) left"):
        assert check_output_folder(target) == target
    assert (target / "saved_model.pb").read_text() == "previous" and (target / "variables").is_dir()
    assert not old.exists()

    _old_copy(old, "previous again")  # killed again; atomic_folder restores it before it decides
    target.rename(tmp_path / "elsewhere")
    with pytest.warns(UserWarning, match="restored"), pytest.raises(FileExistsError, match="holds files already"), \
            atomic_folder(target):
        pytest.fail("the block ran over the restored folder")
    assert (target / "saved_model.pb").read_text() == "previous again"
    with atomic_folder(target, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "export"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_an_earlier_copy_left_beside_a_complete_new_folder_is_removed(tmp_path, dead_pid):
    target = tmp_path / "export"
    target.mkdir()
    (target / "saved_model.pb").write_text("new")
    old = _old_copy(tmp_path / f".export.old-{dead_pid}", "previous")  # killed after the renames
    unrelated = [_old_copy(tmp_path / f".other.old-{dead_pid}", "x"), _old_copy(tmp_path / ".export.old-x1", "x")]
    assert recover_old_folders(target) == [old]
    assert not old.exists() and (target / "saved_model.pb").read_text() == "new"
    assert all(p.is_dir() for p in unrelated)

    _old_copy(old, "previous")
    with atomic_folder(target, replace=True) as tmp:
        (tmp / "saved_model.pb").write_text("newer")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".export.old-x1", ".other.old-" + str(dead_pid), "export"]


@pytest.mark.skipif(os.name != "posix", reason="process ids are checked on POSIX only")
def test_the_earlier_copy_of_a_running_process_is_left_alone(tmp_path):
    target = tmp_path / "export"
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        old = _old_copy(tmp_path / f".export.old-{writer.pid}", "previous")
        assert recover_old_folders(target) == [] and not target.exists()  # between its renames
        target.mkdir()
        (target / "saved_model.pb").write_text("new")
        assert recover_old_folders(target) == [] and old.is_dir()  # about to delete it itself
    finally:
        writer.kill()
        writer.wait()
    assert recover_old_folders(target) == [old] and not old.exists()


def test_an_earlier_copy_is_kept_when_a_file_took_the_folders_place(tmp_path, dead_pid):
    target = tmp_path / "export"
    target.write_text("a file")
    old = _old_copy(tmp_path / f".export.old-{dead_pid}", "previous")
    with pytest.raises(FileExistsError, match="is a file"):
        check_output_folder(target)
    assert recover_old_folders(target) == [] and old.is_dir() and target.read_text() == "a file"


def test_a_final_write_that_fails_names_the_target_not_the_temporary(tmp_path):
    target = tmp_path / "out" / "m.tflite"
    # the target became a folder while the work ran: os.replace fails; the file written is removed
    with pytest.raises(IsADirectoryError) as err, atomic_path(target, "--out") as tmp:
        tmp.write_bytes(b"model")
        target.mkdir()
    message = str(err.value)
    assert message.startswith(f"{target} (--out) cannot be written (Is a directory): give another --out")
    assert ".tmp-" not in message and err.value.errno == 21
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.tflite"]  # no temporary left
    # its folder became a file: the temporary cannot even be made (no flag: no option to name)
    target.rmdir()
    with pytest.raises(NotADirectoryError, match=rf"^{target} cannot be written \(Not a directory\): "
                                                 "make sure its folder") as err, atomic_path(target) as tmp:
        target.parent.rmdir()
        target.parent.write_text("a file now")
        tmp.write_bytes(b"model")
    assert ".tmp-" not in str(err.value)
    # an error of the block about another file is left as it was
    (tmp_path / "out").unlink()
    with pytest.raises(FileNotFoundError, match="elsewhere.txt") as err, atomic_path(target):
        open(tmp_path / "elsewhere.txt").close()
    assert "cannot be written" not in str(err.value)


def test_a_folder_whose_temporary_cannot_be_made_or_filled_is_named(tmp_path, monkeypatch):
    target = tmp_path / "export"
    mkdir = type(target).mkdir

    def refuse_the_temporary(self, *args, **kwargs):
        if self.name.startswith(".export.tmp-"):
            raise PermissionError(13, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(type(target), "mkdir", refuse_the_temporary)
        with pytest.raises(PermissionError, match=rf"^{target} \(--out\) cannot be written \(Permission "
                                                  r"denied\): give another --out"):
            with atomic_folder(target, flag="--out"):
                pytest.fail("the block ran")
    with pytest.raises(PermissionError, match=rf"^{target} \(--out\) cannot be written") as err:
        with atomic_folder(target, flag="--out") as tmp:  # a file inside it cannot be written
            raise PermissionError(13, "Permission denied", str(tmp / "variables" / "variables.index"))
    assert ".tmp-" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no temporary folder left


def test_commit_that_fails_names_the_target_and_removes_the_temporary(tmp_path):
    target = tmp_path / "predictions.csv"
    target.mkdir()  # the move cannot replace a folder
    tmp = temporary_path(target)
    tmp.write_text("path,label\n")
    with pytest.raises(OSError) as info:
        commit(tmp, target, "--out")
    assert str(info.value).startswith(f"{target} (--out) cannot be written (")
    assert tmp.name not in str(info.value) and not tmp.exists()


def test_a_read_only_folder_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    # on a read-only file system even unlink of the missing temporary fails (EROFS); that error
    # used to replace the one naming the target: "[Errno 30] Read-only file system: '.p.tmp-1.csv'"
    import errno
    from pathlib import Path

    target = tmp_path / "p.csv"
    unlink = Path.unlink

    def read_only_unlink(self, *args, **kwargs):
        if ".tmp-" in self.name:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", read_only_unlink)
    with pytest.raises(OSError, match=rf"^{target} \(--out\) cannot be written \(Read-only file "
                                      r"system\): give another --out") as err:
        with atomic_path(target, "--out") as tmp:
            raise OSError(errno.EROFS, "Read-only file system", str(tmp))  # as open(tmp, "w")
    assert ".tmp-" not in str(err.value) and err.value.errno == errno.EROFS


def _refuse_mkdir(monkeypatch, code: int, reason: str) -> None:
    """Make every ``Path.mkdir`` fail with ``code`` (no permission, a read-only file system):
    tests run as root, where a chmod 0o555 folder is written anyway."""
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise OSError(code, reason, str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)


@pytest.mark.parametrize(("code", "reason", "kind"), [(13, "Permission denied", PermissionError),
                                                      (30, "Read-only file system", OSError)])
def test_a_folder_on_the_way_that_cannot_be_made_is_one_line_naming_the_flag(tmp_path, monkeypatch,
                                                                             code, reason, kind):
    # before: "[Errno 13] ro/sub/clean.csv (--clean-manifest) cannot be written: no permission
    # to make ro/sub" for no permission, and a bare "[Errno 30] Read-only file system: 'ro/sub'"
    target = tmp_path / "ro" / "sub" / "clean.csv"
    _refuse_mkdir(monkeypatch, code, reason)
    for check in (check_output_file, check_output_folder):
        with pytest.raises(kind) as err:
            check(target, "--clean-manifest")
        assert str(err.value) == (f"{target} (--clean-manifest) cannot be written ({reason}): give another "
                                  "--clean-manifest, in a folder you can write to that has free space")
        assert err.value.errno == code and isinstance(err.value, kind)
    with pytest.raises(kind, match=rf"^{target} cannot be written \({reason}\): make sure its folder"):
        check_output_file(target)  # no flag


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into a chmod 0o555 folder anyway")
def test_a_read_only_folder_on_the_way_is_one_line_naming_the_flag(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as err:
            check_output_file(ro / "sub" / "clean.csv", "--clean-manifest")
    finally:
        ro.chmod(0o755)
    assert str(err.value).startswith(f"{ro / 'sub' / 'clean.csv'} (--clean-manifest) cannot be written "
                                      "(Permission denied): give another --clean-manifest")


def test_a_file_name_ending_with_a_slash_is_a_folder_and_checks_can_change_nothing(tmp_path):
    # before: `--out results/` wrote a file named results
    with pytest.raises(IsADirectoryError, match=r"results/ \(--out\) names a folder \(it ends with /\): give a "
                                                r"file name, e.g. .*results/out.csv"):
        check_output_file(f"{tmp_path / 'results'}/", "--out")
    assert not (tmp_path / "results").exists()
    assert check_output_file(tmp_path / "new" / "a.csv", "--out", make=False) == tmp_path / "new" / "a.csv"
    assert check_output_folder(tmp_path / "new2" / "a", "--out", make=False) == tmp_path / "new2" / "a"
    assert sorted(tmp_path.iterdir()) == []  # make=False: nothing made
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="f is a file"):
        check_output_file(tmp_path / "f" / "a.csv", make=False)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output_file(tmp_path, "--out", make=False)


def test_a_legal_long_name_is_written_and_a_too_long_one_named(tmp_path):
    # a name of 247-255 bytes was refused: its temporary sibling's name was too long, and the
    # message sent one looking for free space
    import errno

    from keras_species.atomic import atomic_path, temporary_path

    long_name = tmp_path / ("a" * 250 + ".csv")
    assert len(os.fsencode(temporary_path(long_name).name)) <= 255
    with atomic_path(long_name, "--out") as tmp:
        tmp.write_text("x")
    assert long_name.read_text() == "x" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(OSError, match=r"its name is too long \(304 bytes; this file system takes at "
                                      r"most 255 a name\): give a shorter --out") as refused:
        with atomic_path(tmp_path / ("b" * 300 + ".csv"), "--out") as tmp:
            tmp.write_text("x")
    assert refused.value.errno == errno.ENAMETOOLONG and not str(refused.value).startswith("[Errno")
    # the long name's leftovers are found (a shortened name did not match the search), and a
    # folder of such a name is replaced (its ".old-<pid>" name was too long)
    from keras_species.atomic import atomic_folder, remove_stale_temporaries

    stale = temporary_path(long_name).with_name(temporary_path(long_name).name.replace(
        f"tmp-{os.getpid()}", "tmp-999999"))
    stale.write_text("left by a killed writer")
    assert remove_stale_temporaries(long_name) == [stale] and not stale.exists()
    folder = tmp_path / ("f" * 250)
    for content in ("first", "second"):
        with atomic_folder(folder, replace=True) as tmp:
            (tmp / "x.txt").write_text(content)
    assert (folder / "x.txt").read_text() == "second"
