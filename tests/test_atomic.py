"""keras_species.atomic: temporary siblings and os.replace."""

from __future__ import annotations

import os

import pytest

from keras_species.atomic import atomic_path, remove_stale_temporaries, temporary_path


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


def test_remove_stale_temporaries_only_removes_the_targets_own(tmp_path):
    names = [".best.tmp-123.keras", ".best.tmp-9.keras", ".other.tmp-123.keras", "best.keras",
             ".best.tmp-123.json"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path / "best.keras")
    assert sorted(p.name for p in removed) == [".best.tmp-123.keras", ".best.tmp-9.keras"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".best.tmp-123.json", ".other.tmp-123.keras",
                                                          "best.keras"]
