"""Ids in file names that a split puts on two sides (keras_species.data.name_ids)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from keras_species import cli
from keras_species.data import name_ids, sources, splits
from keras_species.data.manifest import Manifest
from keras_species.data.prepare import prepare_data
from tests.conftest import write_image_folder

CLASSES = ["cod", "eel", "ray", "tuna"]


def _tracks(n_tracks: int = 40, frames: int = 4, name: str = "fish_{t}_{f:03d}.png") -> Manifest:
    """``n_tracks`` tracks of ``frames`` frames each; a track's frames share its species."""
    paths = [f"{CLASSES[t % 4]}/" + name.format(t=1000 + t, f=f) for t in range(n_tracks)
             for f in range(frames)]
    return Manifest(paths, np.repeat(np.arange(n_tracks) % 4, frames), CLASSES)


def _leaked_by_hand(m: Manifest, ids: list[str]) -> dict[str, int]:
    train = {i for i, s in zip(ids, m.splits) if s == "train"}
    out: dict[str, int] = {}
    for i, s in zip(ids, m.splits):
        if s != "train":
            out[s] = out.get(s, 0) + (i in train)
    return out


def test_a_tracking_id_shared_across_the_split_is_found_counted_and_given_a_regex() -> None:
    m = splits.stratified_split(_tracks(), seed=0, group_aware=False)
    leak = name_ids.name_id_leak(m)
    assert leak is not None
    assert leak.name_id.regex == r"fish_(\d+)"
    assert leak.name_id.pattern == "fish_<id>_<n>"
    ids = [p.split("_")[1] for p in m.paths]
    assert leak.leaked == _leaked_by_hand(m, ids)  # val and test images with a train twin
    assert list(leak.leaked) == ["val", "test"]
    assert leak.count > 0
    text = leak.message()
    assert f"{leak.count} of the {leak.totals['val'] + leak.totals['test']} val and test images" in text
    assert "with a training image" in text
    assert r"pass --group-regex 'fish_(\d+)' so that each id stays on one side" in text
    # the regex it suggests gives a split without any id on two sides
    grouped = Manifest(m.paths, m.labels, CLASSES,
                       groups=sources.groups_from_regex(m.paths, leak.name_id.regex))
    again = splits.stratified_split(grouped, seed=0)
    assert not splits.leakage(again)["groups"]
    assert name_ids.name_id_leak(again) is None  # a split with groups is not second-guessed


def test_k_folds_count_every_image_whose_id_is_in_another_fold() -> None:
    m = splits.assign_folds(_tracks(), 4, seed=1, group_aware=False)
    leak = name_ids.name_id_leak(m)
    assert leak is not None
    assert set(leak.leaked) == {"fold0", "fold1", "fold2", "fold3"}
    text = leak.message()
    assert f"{leak.count} of the {len(m)} images" in text and "an image of another fold" in text


@pytest.mark.parametrize(
    "name",
    [
        "IMG_{f}{t}.png",            # a camera counter: unique names, nothing shared
        "{cls}_{t}.png",             # the class over again (a prefix), then a counter
        "cam{f}_{t}.png",            # shared, but across species: a camera, not an individual
    ],
)
def test_names_without_an_individual_id_are_left_alone(name: str) -> None:
    paths, labels = [], []
    for t in range(40):
        for f in range(4):
            paths.append(f"x/{name.format(t=t * 10 + f, f=f, cls=CLASSES[t % 4])}")
            labels.append(t % 4)
    m = splits.stratified_split(Manifest(paths, np.array(labels), CLASSES), seed=0,
                                group_aware=False)
    assert name_ids.name_id_leak(m) is None


def test_the_class_name_in_file_names_beside_a_few_odd_names_is_no_id() -> None:
    # cat.0.jpg ... dog.14.jpg with an IMG_1234.jpg and a DSC_0042.jpg: the class name was taken
    # for an id, and its --group-regex made each class one group (a 30/1/1 split)
    paths = [f"d/{c}/{c}.{i}.jpg" for c in ("cat", "dog") for i in range(15)]
    paths += ["d/cat/IMG_1234.jpg", "d/dog/DSC_0042.jpg"]
    labels = np.array([0] * 15 + [1] * 15 + [0, 1])
    assert name_ids.find_name_id(paths, labels, 2) is None
    # nor beside a pair of phone photos, whose IMG is shared too (a bar of classes + 1 shared
    # values took it)
    paths[-2:] = ["d/cat/IMG_1234.jpg", "d/cat/IMG_1235.jpg"]
    assert name_ids.find_name_id(paths, np.array([0] * 15 + [1] * 15 + [0, 0]), 2) is None


def test_a_few_individuals_seen_often_among_single_shots_are_an_id() -> None:
    # 6 fish of 10 frames each among 40 seen once, 4 classes: fewer shared ids than 2 x classes,
    # which the shared-values bar of 2 x classes missed (the class alone shares at most 4)
    paths, labels = [], []
    for t in range(6):
        paths += [f"{CLASSES[t % 4]}/fish_{1000 + t}_{f:03d}.png" for f in range(10)]
        labels += [t % 4] * 10
    paths += [f"{CLASSES[t % 4]}/fish_{5000 + t}_000.png" for t in range(40)]
    labels += [t % 4 for t in range(40)]
    found = name_ids.find_name_id(paths, np.array(labels), 4)
    assert found is not None and found.regex == "fish_(\\d+)"


def test_clips_of_their_own_tag_sets_are_an_id() -> None:
    # 30 clips of 3 frames, each clip its own set of 3 of 8 tags: each id was its label set's
    # most common value, left out as "the class again", and the ids went unseen
    import itertools

    sets = list(itertools.combinations(range(8), 3))[:30]
    rows = np.repeat([np.isin(range(8), c).astype(int) for c in sets], 3, axis=0)
    found = name_ids.find_name_id([f"img_{t}_{f}.jpg" for t in range(30) for f in range(3)], rows, 8)
    assert found is not None and found.regex == "img_(\\d+)"
    # a name that only spells the image's tag set (a+b_12.jpg) is no id (one rule for both cases
    # took this one for an id: multi-label data keeps the bar of 2 x tags distinct values)
    sets = [(0,), (1,), (0, 1), (2,), (1, 2), (3,), (0, 3)]
    rows = np.array([np.isin(range(4), sets[k % 7]).astype(int) for k in range(60)])
    names = ["+".join("abcd"[j] for j in sets[k % 7]) + f"_{k}.jpg" for k in range(60)]
    assert name_ids.find_name_id(names, rows, 4) is None


def test_a_word_id_and_multi_label_rows_are_handled() -> None:
    paths, rows = [], []
    for t in range(30):
        label = np.zeros(4, np.int64)
        label[[t % 4, (t + 1) % 4]] = 1
        for f in range(3):
            paths.append(f"img/reef-{'abcdefghij'[t % 10]}{t}-{f}.jpg")
            rows.append(label)
    m = splits.stratified_split(Manifest(paths, np.array(rows), CLASSES), seed=0, group_aware=False)
    leak = name_ids.name_id_leak(m)
    assert leak is not None
    assert leak.name_id.regex == "reef-([^_. -]+)"
    assert sources.groups_from_regex(["x/reef-c2-0.jpg"], leak.name_id.regex) == ["c2"]


def test_too_few_names_say_nothing() -> None:
    m = splits.stratified_split(_tracks(n_tracks=4), seed=0, group_aware=False)  # 16 files
    assert name_ids.name_id_leak(m) is None


def test_cli_split_warns_with_the_regex_and_not_once_it_is_given(tmp_path: Path, capsys) -> None:
    data = write_image_folder(tmp_path / "fish", per_class=12, groups_per_class=4, size=(8, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["split", str(data), "--out", str(tmp_path / "s.csv")]) == 0
    said = [str(w.message) for w in caught if "share the id in their file name" in str(w.message)]
    assert len(said) == 1 and r"--group-regex 'fish_(\d+)'" in said[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["split", str(data), "--out", str(tmp_path / "g.csv"),
                         "--group-regex", r"fish_(\d+)"]) == 0
    assert not [w for w in caught if "file name" in str(w.message)]
    assert "groups on two sides: 0" in capsys.readouterr().out


def test_prepare_data_keeps_the_note_and_names_the_flags_of_its_split(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "fish", per_class=12, groups_per_class=4, size=(8, 8))
    with pytest.warns(UserWarning, match=r"pass --group-regex 'fish_\(\\d\+\)' so"):
        auto = prepare_data(data, audit=False, split_file=tmp_path / "run" / "split.csv")
    assert auto.split_kind == "stratified" and "--group-regex 'fish_" in auto.name_id_note
    with pytest.warns(UserWarning, match="pass --split group --group-regex"):
        chosen = prepare_data(data, audit=False, split="stratified")
    assert "--split group --group-regex" in chosen.name_id_note
    back = prepare_data(data, audit=False, split_file=tmp_path / "run" / "split.csv")  # resumed
    assert back.split_kind == "loaded"
    assert back.name_id_note.endswith("in a new run (this one keeps its split) so that each id "
                                      "stays on one side")
    grouped = prepare_data(data, audit=False, group_regex=r"fish_(\d+)")
    assert grouped.split_kind == "group" and grouped.name_id_note == ""


def test_shared_fish_set_split_file_by_file_is_warned_about(shared_data: Path) -> None:
    m = sources.load(shared_data / "fish4knowledge23")
    leak = name_ids.name_id_leak(splits.stratified_split(m, seed=0, group_aware=False))
    assert leak is not None and leak.name_id.regex == r"fish_(\d+)"
    assert leak.count > 0.3 * (leak.totals["val"] + leak.totals["test"])
    for other in ("hymenoptera", "aquarium_multilabel/labels.csv"):
        assert name_ids.name_id_leak(splits.stratified_split(sources.load(shared_data / other),
                                                             seed=0, group_aware=False)) is None


def test_audit_reports_an_id_in_the_file_names_only_without_groups(tmp_path: Path) -> None:
    from keras_species.data.audit import audit

    data = write_image_folder(tmp_path / "fish", per_class=12, groups_per_class=4, size=(8, 8))
    report = audit(sources.load(data), progress=False, plots=False)
    assert report.name_ids == {"pattern": "fish_<id>_<n>", "regex": r"fish_(\d+)", "n_ids": 12,
                               "shared_ids": 12, "shared_files": 36}
    assert r"a group-aware split needs --group-regex 'fish_(\d+)'" in report.summary()
    note = [n for n in report.notes if n.startswith("the file names carry an id")]
    assert len(note) == 1 and "36 of 36 images share theirs" in note[0]
    assert report.to_dict()["name_ids"]["shared_files"] == 36
    # with a split given, the note counts the held-out images that share an id with train
    split = splits.stratified_split(sources.load(data), seed=0, group_aware=False)
    given = audit(split, progress=False, plots=False)
    leak = name_ids.name_id_leak(split)
    assert given.name_ids["held_out_sharing"] == leak.count > 0
    assert f"(in the split given, {leak.counts()})" in given.notes[-1]
    grouped = audit(sources.load(data, group_regex=r"fish_(\d+)"), progress=False, plots=False)
    assert grouped.name_ids is None and "ids in file names" not in grouped.summary()


def test_a_recipe_report_keeps_the_note_in_its_data_section(tmp_path: Path) -> None:
    from keras_species.recipe import data_section

    data = write_image_folder(tmp_path / "fish", per_class=12, groups_per_class=4, size=(8, 8))
    with pytest.warns(UserWarning, match="share the id in their file name"):
        prepared = prepare_data(data, audit=False)
    section = data_section(prepared)[1]
    assert f"**Ids in file names:** {prepared.name_id_note}." in section
    grouped = prepare_data(data, audit=False, group_regex=r"fish_(\d+)")
    assert "Ids in file names" not in data_section(grouped)[1]


def test_files_a_group_regex_left_without_an_id_are_checked_as_without_groups() -> None:
    # a regex matching 2 tracks of 40: the 152 other files are each their own group, so the
    # group-aware split spreads their tracks over every side; that leak was not said
    m = _tracks()
    with pytest.warns(UserWarning, match="matched no group in 152 of 160"):
        groups = sources.groups_from_regex(m.paths, r"fish_(100[01])_")
    grouped = Manifest(m.paths, m.labels, CLASSES, groups=groups)
    split = splits.stratified_split(grouped, seed=0)
    assert not splits.leakage(split)["groups"]
    leak = name_ids.name_id_leak(split)
    assert leak is not None and leak.ungrouped_of == 160
    own = [g == p for g, p in zip(split.groups, split.paths)]
    ungrouped = split.subset(np.array(own))
    ids = [p.split("_")[1] for p in ungrouped.paths]
    assert leak.leaked == _leaked_by_hand(ungrouped, ids)
    assert "among the 152 of 160 files given no group id (each its own group)" in leak.message()
    # every file with an id of its group: nothing to second-guess
    full = Manifest(m.paths, m.labels, CLASSES, groups=sources.groups_from_regex(m.paths, r"fish_(\d+)_"))
    assert name_ids.name_id_leak(splits.stratified_split(full, seed=0)) is None


def test_split_command_warns_of_ids_left_on_two_sides_by_a_partial_group_regex(tmp_path) -> None:
    from PIL import Image

    root = tmp_path / "fish"
    for t in range(24):
        for f in range(3):
            (root / CLASSES[t % 4]).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (t * 9, f * 40, 0)).save(root / CLASSES[t % 4] / f"fish_{1000 + t}_{f}.png")
    with pytest.warns(UserWarning) as said:
        code = cli.main(["split", str(root), "--group-regex", r"fish_(1000)_", "--out",
                         str(tmp_path / "split.csv")])
    assert code == 0
    texts = [str(w.message) for w in said]
    assert any("files given no group id" in t and "--group-regex 'fish_(\\d+)'" in t for t in texts), texts
