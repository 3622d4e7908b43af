"""Adding classes from another source: the original split stays, the new class is split alone."""

from __future__ import annotations

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
