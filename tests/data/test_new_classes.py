"""Adding classes from another source: the original split stays, the new class is split alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_species.data import sources, splits
from keras_species.data.manifest import ManifestError
from keras_species.data.new_classes import add_classes, load_class_dirs
from tests.conftest import write_image_folder


def test_folder_of_images_is_one_class_and_class_folders_are_read(tmp_path):
    root = write_image_folder(tmp_path / "a", classes=("zander",), per_class=5)
    more = write_image_folder(tmp_path / "b", classes=("pike", "perch"), per_class=3)
    m = load_class_dirs([root / "zander", more])
    assert m.class_names == ["zander", "perch", "pike"]
    assert m.class_counts().tolist() == [5, 3, 3]
    assert m.groups == m.paths  # without a regex every image is its own group
    grouped = load_class_dirs([root / "zander"], group_regex=r"fish_(\d+)_")
    assert len(set(grouped.groups)) == 3
    with pytest.raises(ManifestError, match="more than one"):
        load_class_dirs([root / "zander", root])
    with pytest.raises(ManifestError, match="not a folder"):
        load_class_dirs([tmp_path / "missing"])


@pytest.mark.parametrize("group_aware", [False, True])
def test_add_classes_keeps_the_original_split(tmp_path, group_aware):
    base = sources.load(write_image_folder(tmp_path / "base", per_class=9),
                        group_regex=r"fish_(\d+)_")
    base = splits.stratified_split(base, (0.6, 0.2, 0.2), seed=0, group_aware=group_aware)
    new = load_class_dirs([write_image_folder(tmp_path / "new", classes=("zander",),
                                              per_class=10, seed=1) / "zander"])
    m = add_classes(base, new, ratios=(0.6, 0.2, 0.2), seed=0, group_aware=group_aware)
    assert m.class_names == base.class_names + ["zander"]
    assert m.splits[: len(base)] == base.splits and m.paths[: len(base)] == base.paths
    added = np.asarray(m.splits[len(base):])
    assert sorted(set(added)) == ["test", "train", "val"]
    assert (added == "train").sum() > (added == "test").sum()
    if group_aware:
        assert splits.leakage(m)["groups"] == {}


def test_add_classes_refuses_existing_classes_and_unsplit_data(tmp_path):
    base = sources.load(write_image_folder(tmp_path / "base", per_class=6))
    new = load_class_dirs([write_image_folder(tmp_path / "n", classes=("cod",)) / "cod"])
    with pytest.raises(ManifestError, match="split"):
        add_classes(base, new)
    with pytest.raises(ManifestError, match="already"):
        add_classes(splits.stratified_split(base, seed=0), new)


@pytest.mark.parametrize("group_regex", [None, r"fish_(\d+)_"])
def test_one_audit_covers_the_added_classes(tmp_path, group_regex):
    from keras_species.data.audit import audit, clean
    from keras_species.data.new_classes import merge_for_audit, separate_added

    base = sources.load(write_image_folder(tmp_path / "base", classes=("cod", "eel"), per_class=4),
                        group_regex=group_regex)
    extra = write_image_folder(tmp_path / "new", classes=("zander",), per_class=3, seed=1)
    copy = extra / "zander" / "fish_500_9.png"
    copy.write_bytes(Path(base.paths[0]).read_bytes())  # a cod image filed as a zander too
    broken = extra / "zander" / "fish_501_9.png"
    broken.write_bytes(b"not a png")
    new = load_class_dirs([extra / "zander"], group_regex=group_regex)

    both = merge_for_audit(base, new)
    report = audit(both, progress=False, plots=False)
    assert [sorted(g["labels"]) for g in report.duplicates] == [["cod", "zander"]]
    assert report.duplicates[0]["conflicting_labels"] and str(copy) in report.duplicates[0]["paths"]
    assert [c["path"] for c in report.corrupt] == [str(broken)]
    assert report.class_counts == {"cod": 4, "eel": 4, "zander": 5}

    cleaned, dropped = clean(both, report)
    assert [d["path"] for d in dropped] == [str(broken)]
    old, added = separate_added(cleaned, new.class_names)
    assert (old.paths, old.class_names, old.groups) == (base.paths, base.class_names, base.groups)
    assert old.labels.tolist() == base.labels.tolist()
    assert added.class_names == ["zander"] and len(added) == 4 and added.splits is None
    m = add_classes(splits.stratified_split(old, (0.5, 0.5), seed=0, names=("train", "test")),
                    added, ratios=(0.5, 0.5), names=("train", "test"))
    assert m.class_counts().tolist() == [4, 4, 4] and str(copy) in m.paths
    with pytest.raises(ManifestError, match="already"):
        merge_for_audit(base, sources.load(tmp_path / "base"))
