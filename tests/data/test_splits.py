"""Splits: per-class ratios, group-aware, iterative multi-label, systematic, k-fold, top classes."""

from __future__ import annotations

import argparse
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_species.data import sources, splits
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError


def _single(n_per_class: tuple[int, ...] = (40, 30, 20), groups_of: int = 0) -> Manifest:
    paths, labels, groups = [], [], []
    for c, n in enumerate(n_per_class):
        for i in range(n):
            paths.append(f"/data/c{c}/img_{i:03d}.png")
            labels.append(c)
            groups.append(f"{c}-{i // groups_of}" if groups_of else f"{c}-{i}")
    return Manifest(paths, np.array(labels), [f"c{c}" for c in range(len(n_per_class))], groups=groups)


def _multi(n: int = 400, seed: int = 0) -> Manifest:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < np.array([0.5, 0.3, 0.2, 0.1, 0.05])).astype(np.uint8)
    groups = [str(i // 4) for i in range(n)]
    return Manifest([f"/m/{i:04d}.jpg" for i in range(n)], y, list("abcde"), groups=groups)


def _share(m: Manifest, name: str) -> np.ndarray:
    return m.split(name).class_counts() / np.maximum(m.class_counts(), 1)


# ------------------------------------------------------------------------- ratio splits
@pytest.mark.parametrize("ratios", [(0.7, 0.15, 0.15), (0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.8, 0.2)])
def test_stratified_split_ratios_per_class(ratios: tuple[float, ...]) -> None:
    m = splits.stratified_split(_single(), ratios, seed=3)
    names = ["train", "val", "test"][: len(ratios)]
    for name, r in zip(names, ratios):
        counts = m.split(name).class_counts()
        assert np.all(np.abs(counts - r * m.class_counts()) <= 1), (name, counts)
    assert len(m) == 90 and set(m.splits) == set(names)


def test_stratified_split_is_deterministic_given_seed() -> None:
    m = _single()
    a = splits.stratified_split(m, seed=7).splits
    assert a == splits.stratified_split(m, seed=7).splits
    assert a != splits.stratified_split(m, seed=8).splits
    shuffled = m.subset(np.random.default_rng(0).permutation(len(m)))
    b = splits.stratified_split(shuffled, seed=7)
    assert dict(zip(b.paths, b.splits)) == dict(zip(m.paths, a))  # row order does not matter


@pytest.mark.filterwarnings("ignore:split .* has no image")
def test_small_classes_go_to_train_with_warning_and_one_per_split_when_possible() -> None:
    m = _single((30, 2, 3))
    with pytest.warns(UserWarning, match=r"fewer than 3 images all go to 'train': c1 \(2\)"):
        s = splits.stratified_split(m, (0.7, 0.15, 0.15), group_aware=False)  # the per-class rule
    assert s.split("train").class_counts()[1] == 2
    assert [s.split(n).class_counts()[2] for n in ("train", "val", "test")] == [1, 1, 1]


def test_bad_ratios_and_single_class_are_clear_errors() -> None:
    m = _single()
    with pytest.raises(ManifestError, match="sum to 1"):
        splits.stratified_split(m, (0.7, 0.2, 0.2))
    with pytest.raises(ManifestError, match="2 or 3 values"):
        splits.stratified_split(m, (1.0,))
    for bad in ((float("nan"), 0.5, 0.5), (0.5, float("inf"), 0.5), (1.2, -0.1, -0.1)):
        with pytest.raises(ManifestError, match="every ratio must be a number > 0"):
            splits.stratified_split(m, bad)
    thirds = splits.stratified_split(m, (0.33, 0.33, 0.33), seed=0)  # rounded thirds: thirds
    exact = splits.stratified_split(m, (1 / 3, 1 / 3, 1 / 3), seed=0)
    assert thirds.splits == exact.splits
    one = Manifest(["/a.png", "/b.png", "/c.png"], np.zeros(3), ["cod"])
    for call in (lambda: splits.stratified_split(one), lambda: splits.kfold(one, 2),
                 lambda: splits.systematic_split(one)):
        with pytest.raises(ManifestError, match=r"at least 2 classes with images; this data has images of only \['cod'\]"):
            call()
    emptied = Manifest([], np.zeros(0, np.int64), ["cod", "eel"])  # cleaning dropped every file
    with pytest.raises(ManifestError, match="none of its 2 classes .no image is left"):
        splits.stratified_split(emptied)


def test_unlabelled_images_are_spread_like_a_class() -> None:
    m = _single((20, 20))
    m.labels[:10] = UNLABELLED
    s = splits.stratified_split(m, (0.8, 0.2))
    assert (s.split("val").labels == UNLABELLED).sum() == 2


def test_group_aware_split_keeps_groups_on_one_side_and_is_stratified() -> None:
    m = _single((120, 80, 60), groups_of=4)
    s = splits.stratified_split(m, (0.7, 0.15, 0.15), group_aware=True, seed=1)
    assert splits.leakage(s)["groups"] == {}
    for name, r in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert np.all(np.abs(_share(s, name) - r) < 0.06), (name, _share(s, name))
    assert s.splits == splits.stratified_split(m, group_aware=True, seed=1).splits
    with pytest.raises(ManifestError, match="group_regex"):
        splits.stratified_split(Manifest(m.paths, m.labels, m.class_names), group_aware=True)


@pytest.mark.parametrize("n_groups", [3, 4, 5])
def test_a_class_with_a_group_for_each_part_reaches_every_part(n_groups: int) -> None:
    # stop 30: the squared error the greedy split lowers prefers 8/4/0 to 4/4/4, so a class of
    # three groups of 4 went without test images, as a class of four groups did
    m = _single((4 * n_groups, 4 * n_groups), groups_of=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "has no image of 1 class" either
        s = splits.stratified_split(m, (0.7, 0.15, 0.15), seed=0)
    assert splits.leakage(s)["groups"] == {}
    for name in ("train", "val", "test"):
        assert (s.split(name).class_counts() > 0).all(), (name, s.split(name).class_counts())
    one_each = _single((3, 3), groups_of=1)  # as the split without groups gives 1/1/1
    for name in ("train", "val", "test"):
        assert splits.stratified_split(one_each, seed=0).split(name).class_counts().tolist() == [1, 1]
    with pytest.warns(UserWarning, match="split 'test' has no image of 1 class: c1"):
        splits.stratified_split(_single((12, 8), groups_of=4), seed=0)  # c1 has two groups: it cannot


def test_a_group_moved_to_reach_a_part_never_takes_a_label_out_of_its_own() -> None:
    m = _multi(240, seed=3)
    s = splits.stratified_split(m, (0.7, 0.15, 0.15), seed=0)
    assert splits.leakage(s)["groups"] == {}
    groups = np.asarray(m.groups)
    for j in range(m.num_classes):
        held = {g for g, y in zip(groups, m.labels[:, j]) if y}
        if len(held) >= 3:
            for name in ("train", "val", "test"):
                assert s.split(name).labels[:, j].any(), (m.class_names[j], name)
    folds = splits.assign_folds(_single((20, 20, 12), groups_of=4), k=3, seed=0)
    for f in set(folds.splits):  # group k-fold takes the same path: every class in every fold
        assert (folds.split(f).class_counts() > 0).all()


def test_leakage_reports_groups_and_paths_on_two_sides() -> None:
    m = Manifest(["/a.png", "/b.png", "/a.png"], np.array([0, 1, 0]), ["x", "y"],
                 groups=["g1", "g1", "g2"], splits=["train", "val", "test"])
    leaks = splits.leakage(m)
    assert leaks["groups"] == {"g1": ["train", "val"]}
    assert leaks["paths"] == {"/a.png": ["test", "train"]}


def test_multilabel_iterative_stratification_keeps_each_label_share() -> None:
    m = _multi()
    s = splits.stratified_split(m, (0.8, 0.2), seed=0)
    assert abs(len(s.split("val")) - 80) <= 6  # iterative stratification favours label shares over size
    assert np.all(np.abs(_share(s, "val") - 0.2) < 0.05), _share(s, "val")
    s3 = splits.stratified_split(m, (0.6, 0.2, 0.2), seed=0, group_aware=True)
    assert splits.leakage(s3)["groups"] == {}
    assert np.all(np.abs(_share(s3, "test") - 0.2) < 0.08), _share(s3, "test")


# ------------------------------------------------------------------------- systematic
def test_systematic_split_first_two_of_every_ten_per_class() -> None:
    m = _single((10, 10, 25))
    m = m.subset(np.random.default_rng(0).permutation(len(m)))  # order of rows must not matter
    s = splits.systematic_split(m, k=2, n=10)
    val = s.split("val")
    assert val.class_counts().tolist() == [2, 2, 6]  # 25 images: runs 0-9, 10-19, 20-24
    assert sorted(p for p in val.paths if "/c0/" in p) == ["/data/c0/img_000.png", "/data/c0/img_001.png"]
    with pytest.raises(ManifestError, match="0 < k < n"):
        splits.systematic_split(m, k=10, n=10)


def test_systematic_split_warns_of_a_class_left_without_training_images() -> None:
    m = _single((2, 12, 12))  # c0's two images are both among the first 2 of 10: all in val
    with pytest.warns(UserWarning, match=r"the systematic split \(the first 2 of every 10 of each class "
                      r"to 'val'\) has no 'train' image of 1 class: c0; .* a class of 2 images or fewer"):
        s = splits.systematic_split(m, k=2, n=10)
    assert s.split("train").class_counts().tolist() == [0, 8, 8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits.systematic_split(_single((3, 12, 12)), k=2, n=10)  # c0 keeps one: no warning


def test_systematic_split_warns_of_a_tag_whose_label_sets_all_go_to_val() -> None:
    tags = np.zeros((60, 3), int)
    tags[:, 0] = np.arange(60) % 2
    tags[:, 1] = np.arange(60) % 3 == 0
    tags[[0, 7, 20], 2] = 1  # each of the rare tag's images in a label set of its own
    tags[7, 0], tags[20, 1], tags[0, :2] = 1, 1, 0
    m = Manifest([f"/x/{i:02d}.png" for i in range(60)], tags, ["a", "b", "rare"])
    with pytest.warns(UserWarning, match=r"of each label set to 'val'\) has no 'train' image of 1 class: rare"):
        splits.systematic_split(m, k=1, n=5)


# ------------------------------------------------------------------------- k-fold
@pytest.mark.parametrize("kind", ["single", "group", "multi", "multigroup"])
def test_kfold_validates_every_image_exactly_once(kind: str) -> None:
    m = _multi(200) if kind.startswith("multi") else _single((40, 30, 20), groups_of=3)
    folds = splits.kfold(m, 5, seed=2, group_aware=kind.endswith("group"))
    assert len(folds) == 5
    val_count = np.zeros(len(m), int)
    for f in folds:
        assert set(f.splits) == {"train", "val"}
        val_count += np.array([s == "val" for s in f.splits])
        if kind.endswith("group"):
            assert splits.leakage(f)["groups"] == {}
    assert (val_count == 1).all()
    sizes = [len(f.split("val")) for f in folds]
    assert max(sizes) - min(sizes) <= 0.1 * len(m)
    assert [f.splits for f in folds] == [f.splits for f in splits.kfold(m, 5, seed=2, group_aware=kind.endswith("group"))]


def test_assign_folds_names_and_errors() -> None:
    m = _single()
    a = splits.assign_folds(m, 3, seed=0)
    assert sorted(set(a.splits)) == ["fold0", "fold1", "fold2"]
    for c in range(3):
        per_fold = [sum(1 for s, y in zip(a.splits, a.labels) if s == f"fold{i}" and y == c) for i in range(3)]
        assert max(per_fold) - min(per_fold) <= 1
    with pytest.raises(ManifestError, match="k >= 2"):
        splits.assign_folds(m, 1)
    with pytest.raises(ManifestError, match="only 2 groups"):
        splits.assign_folds(_single((4, 4), groups_of=4), 3, group_aware=True)


# ------------------------------------------------------------------------- top classes, given split
def test_top_classes_keeps_most_frequent_with_name_ties() -> None:
    m = _single((5, 9, 5, 2, 9))  # c1, c4 = 9; then c0, c2 tie at 5 -> c0 by name
    with pytest.warns(UserWarning, match=r"the top 3 classes end within a tie: 2 classes have 5 "
                                         r"images each, and 1 of them is kept by name \(c0\)"):
        t = splits.top_classes(m, count=3)  # before: chosen by name without a word
    assert t.class_names == ["c0", "c1", "c4"]
    assert t.class_counts().tolist() == [5, 9, 9] and len(t) == 23
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tie at the cut: no word
        assert splits.top_classes(m, fraction=0.4).class_names == ["c1", "c4"]
        assert splits.top_classes(m, count=4).num_classes == 4
    with pytest.raises(ManifestError, match="exactly one"):
        splits.top_classes(m)


def test_given_split_validation() -> None:
    m = _single((4, 4))
    ok = m.with_splits(["train"] * 6 + ["Validation", "test"])
    assert splits.given_split(ok).splits[-2:] == ["val", "test"]
    with pytest.raises(ManifestError, match="has no given split: a CSV carries one.*split folders.*leave out --given"):
        splits.given_split(m)
    with pytest.raises(ManifestError, match="needs 'train'"):
        splits.given_split(m.with_splits(["train"] * 8))
    with pytest.raises(ManifestError, match=r"\['holdout'\] are not train/val/test .*: name them train, "
                                            r"val \(or valid/validation/dev\) and test"):
        splits.given_split(m.with_splits(["train"] * 7 + ["holdout"]))
    # `split --kfold`'s CSV given where a train/val/test split is needed: say what it is
    with pytest.raises(ManifestError, match=r"k-fold folds \(fold0, fold1\), as `keras-species split "
                                            r"--kfold` writes them.*--ratios 0\.7 0\.15 0\.15.*scratch_cnn"):
        splits.given_split(m.with_splits(["fold0", "fold1"] * 4))


def test_save_and_load_split_roundtrip(tmp_path: Path) -> None:
    m = splits.stratified_split(_single(), seed=4)
    path = splits.save_split(m, tmp_path / "split.csv")
    back = splits.load_split(path)
    assert back.paths == m.paths and back.splits == m.splits and back.groups == m.groups
    assert back.labels.tolist() == m.labels.tolist()
    with pytest.raises(ManifestError, match="no split"):
        splits.save_split(_single(), tmp_path / "x.csv")


# ------------------------------------------------------------------------- CLI
def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    splits.configure_parser(parser)
    return splits.run_cli(parser.parse_args(argv))


def test_cli_split_image_folder_is_group_aware_and_prints_table(image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "split.csv"
    assert _cli([str(image_folder), "--ratios", "0.5", "0.5", "--group-regex", r"fish_(\d+)_",
                 "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "group-aware" in text and "groups on two sides: 0" in text and "cod" in text
    m = splits.load_split(out)
    assert len(m) == 18 and splits.leakage(m)["groups"] == {}
    assert _cli([str(image_folder), "--kfold", "3", "--out", str(out)]) == 0
    assert sorted(set(splits.load_split(out).splits)) == ["fold0", "fold1", "fold2"]
    assert _cli([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _cli([str(image_folder), "--out", str(tmp_path)]) == 2
    assert f"{tmp_path} (--out) is a folder: give a file name" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --ratios would be ignored by the other modes
        _cli([str(image_folder), "--systematic", "1", "3", "--ratios", "0.5", "0.5", "--out", str(out)])
    assert "argument --ratios: not allowed with argument --systematic" in capsys.readouterr().err
    from keras_species import cli

    assert cli.main(["split", str(image_folder), "--systematic", "1", "3", "--seed", "3", "--out", str(out)]) == 2
    assert "error: --seed does not apply to --systematic" in capsys.readouterr().err  # a flag error


# ------------------------------------------------------------------------- unreadable files
def _add_bad_files(root: Path) -> dict[str, str]:
    """Four unreadable files in ``root``'s class folders: ``{path: a word of the expected reason}``."""
    from PIL import Image

    good_png = next((root / "eel").glob("*.png")).read_bytes()
    jpeg = root / "ray" / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(jpeg)
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[: len(data) // 2])  # a JPEG cut short
    (root / "cod" / "empty.png").write_bytes(b"")
    (root / "eel" / "half.png").write_bytes(good_png[: len(good_png) // 2])  # a PNG cut short
    (root / "ray" / "notes.jpg").write_text("field notes, not a photo\n")
    return {str(root / "cod" / "empty.png"): "empty file (0 bytes)", str(root / "eel" / "half.png"): "truncated",
            str(jpeg): "truncated", str(root / "ray" / "notes.jpg"): "not an image: the file is text"}


def _read_listing(path: Path) -> dict[str, str]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "reason"]
    return dict(rows[1:])


def test_drop_unreadable_leaves_out_bad_files_with_their_reasons(image_folder: Path) -> None:
    from keras_species.data.pipeline import check_files

    expected = _add_bad_files(image_folder)
    m = sources.load(image_folder)
    assert len(m) == 22
    kept, bad = splits.drop_unreadable(m)
    assert sorted(bad) == sorted(expected) and len(kept) == 18
    assert not set(bad) & set(kept.paths) and kept.class_names == m.class_names
    assert bad == check_files(m.paths)[1]  # the reasons training would give
    for path, word in expected.items():
        assert word in bad[path], (path, bad[path])
        assert Path(path).exists()  # nothing deleted
    clean, none = splits.drop_unreadable(kept)
    assert clean is kept and none == {}


def test_cli_split_drops_unreadable_files_lists_them_and_writes_a_listing(
        image_folder: Path, tmp_path: Path, capsys) -> None:
    expected = _add_bad_files(image_folder)
    out = tmp_path / "split.csv"
    assert _cli([str(image_folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    m = splits.load_split(out)
    assert len(m) == 18 and not set(expected) & set(m.paths)
    assert "images     12    3     3     18" in captured.out  # the table counts readable files only
    err = captured.err
    assert "dropped 4 unreadable file(s) (not in the split; nothing deleted):" in err
    listing = tmp_path / "split.dropped.csv"
    assert splits.dropped_listing_path(out) == listing and str(listing) in err
    rows = _read_listing(listing)
    assert sorted(rows) == sorted(expected)
    for path, word in expected.items():
        assert f"  {path}: {rows[path]}\n" in err and word in rows[path]
        assert Path(path).exists()
    assert f"`keras-species audit {image_folder}` decodes every file" in err
    assert f"left out 4 unreadable file(s): listed in {listing}" in captured.out
    assert "classes left without images" not in err


def test_cli_split_given_csv_drops_unreadable_files_too(image_folder: Path, tmp_path: Path, capsys) -> None:
    expected = _add_bad_files(image_folder)
    bad = sorted(Path(p).relative_to(image_folder).as_posix() for p in expected)
    good = sorted(p.relative_to(image_folder).as_posix() for p in image_folder.glob("*/fish_*.png"))
    rows = [(p, "train") for p in good[:12] + bad[:2]] + [(p, "val") for p in good[12:] + bad[2:]]
    table = image_folder / "labels.csv"
    table.write_text("path,label,split\n" + "".join(f"{p},{p.split('/')[0]},{s}\n" for p, s in rows))
    out = tmp_path / "given.csv"
    assert _cli([str(table), "--given", "--out", str(out)]) == 0
    m = splits.load_split(out)
    assert len(m) == 18 and [len(m.split(n)) for n in ("train", "val")] == [12, 6]
    assert not set(expected) & set(m.paths)
    assert "dropped 4 unreadable file(s)" in capsys.readouterr().err
    assert sorted(_read_listing(tmp_path / "given.dropped.csv")) == sorted(expected)
    # every val file unreadable: the given split's own error, saying why
    table.write_text("path,label,split\n" + "".join(f"{p},{p.split('/')[0]},train\n" for p in good)
                     + "".join(f"{p},{p.split('/')[0]},val\n" for p in bad))
    assert _cli([str(table), "--given", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"the given split has \['train'\]: it needs 'train' and at least one of 'val'/'test' "
                     r"\(after leaving out the 4 unreadable file\(s\) listed above and in .*given\.dropped\.csv\)",
                     err), err


def test_cli_split_all_files_unreadable_is_a_clear_error(tmp_path: Path, capsys) -> None:
    data = tmp_path / "broken"
    for name in ("cod", "eel"):
        (data / name).mkdir(parents=True)
        (data / name / "a.jpg").write_bytes(b"")
        (data / name / "b.jpg").write_text("<html>404 not found</html>")
    out = tmp_path / "split.csv"
    assert _cli([str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "dropped 4 unreadable file(s)" in err
    assert (f"keras-species split: none of the 4 image file(s) of {data} can be read (reasons above and in "
            f"{tmp_path / 'split.dropped.csv'}): check that {data} is the data you meant") in err
    assert f"`keras-species audit {data}`" in err
    assert not out.exists() and len(_read_listing(tmp_path / "split.dropped.csv")) == 4


def test_cli_split_class_emptied_by_dropping_is_named(image_folder: Path, tmp_path: Path, capsys) -> None:
    for p in (image_folder / "eel").glob("*.png"):
        p.write_bytes(b"")
    out = tmp_path / "split.csv"
    assert _cli([str(image_folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "dropped 6 unreadable file(s)" in err and "classes left without images: eel" in err
    assert splits.load_split(out).class_counts().tolist() == [6, 0, 6]
    shutil.rmtree(image_folder / "ray")  # now only cod reads: too few classes to split
    assert _cli([str(image_folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"a stratified split needs at least 2 classes with images; this data has images of only "
                     r"\['cod'\]: add another class folder / label \(after leaving out the 6 unreadable "
                     r"file\(s\) listed above", err), err


def test_cli_split_many_unreadable_files_are_capped_on_stderr(image_folder: Path, tmp_path: Path, capsys) -> None:
    for i in range(splits.DROPPED_SHOWN + 5):
        (image_folder / "cod" / f"zero_{i:02d}.png").write_bytes(b"")
    out = tmp_path / "split.csv"
    assert _cli([str(image_folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count(": empty file (0 bytes)") == splits.DROPPED_SHOWN and "  ... and 5 more\n" in err
    assert len(_read_listing(tmp_path / "split.dropped.csv")) == splits.DROPPED_SHOWN + 5


def test_cli_split_clean_data_prints_no_dropped_line(image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "split.csv"
    stale = tmp_path / "split.dropped.csv"  # an earlier run's listing, before the files were fixed
    stale.write_text("path,reason\n/gone.png,empty file (0 bytes)\n")
    assert _cli([str(image_folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "unreadable" not in captured.err and "dropped" not in captured.err
    assert not stale.exists() and f"removed {stale}" in captured.out
    assert len(splits.load_split(out)) == 18
    other = tmp_path / "notes.dropped.csv"  # not a listing: left alone
    other.write_text("my own notes\n")
    assert _cli([str(image_folder), "--out", str(tmp_path / "notes.csv")]) == 0
    assert other.read_text() == "my own notes\n"


# ------------------------------------------------------------------------- shared data
@pytest.mark.shared_data
def test_shared_fish_group_split_puts_no_tracking_id_on_two_sides(shared_data: Path) -> None:
    m = sources.load(shared_data / "fish4knowledge23", group_regex=r"fish_(\d+)_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = splits.stratified_split(m, (0.7, 0.15, 0.15), group_aware=True, seed=0)
    assert splits.leakage(s) == {"groups": {}, "paths": {}}
    share = s.split("train").class_counts().sum() / len(s)
    assert 0.65 < share < 0.75


@pytest.mark.shared_data
def test_shared_aquarium_given_split(shared_data: Path) -> None:
    m = splits.given_split(sources.load(shared_data / "aquarium_multilabel" / "labels.csv"))
    assert [len(m.split(n)) for n in ("train", "val", "test")] == [448, 127, 63]


def test_a_split_of_data_with_groups_is_group_aware_by_default_and_leakage_reads_as_a_truth() -> None:
    # before: Python's stratified_split ignored the groups unless told (the split command did
    # not), so frames of one fish landed on both sides; and leakage() was always true
    m = _single((40, 30, 20), groups_of=5)
    s = splits.stratified_split(m, (0.7, 0.15, 0.15), seed=0)
    assert not splits.leakage(s) and splits.leakage(s) == {"groups": {}, "paths": {}}
    loose = splits.stratified_split(m, (0.7, 0.15, 0.15), seed=0, group_aware=False)
    assert splits.leakage(loose) and splits.leakage(loose)["groups"]
    folds = splits.assign_folds(m, 3, seed=0)
    assert not splits.leakage(folds)
    assert not splits.leakage(splits.kfold(m, 3, seed=0)[0])


def test_kfold_warns_about_classes_missing_from_some_folds() -> None:
    m = _single((40, 30, 4), groups_of=2)  # c2: 2 groups, so it is missing from 2 of 4 folds
    with pytest.warns(UserWarning, match=r"1 class has images in only some of the 4 folds: "
                                         r"c2 \(2 of 4\)"):
        splits.assign_folds(m, 4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits.assign_folds(_single((40, 30, 20)), 4, seed=0)  # every class in every fold: quiet
    folds = splits.assign_folds(_single((40, 30, 20)), 12, seed=0)
    assert " fold9=" in folds.summary() and folds.summary().index("fold9=") < folds.summary().index("fold10=")


@pytest.mark.parametrize(("out", "match"), [
    ("{tmp}", r"\(--out\) is a folder: give a file name, e.g. .*split.csv"),
    ("{tmp}/new/", r"new/ \(--out\) names a folder \(it ends with /\): give a file name"),
])
def test_cli_split_an_out_that_is_a_folder_is_refused_before_the_data_is_read(
        image_folder: Path, tmp_path: Path, capsys, source_loads, out: str, match: str) -> None:
    # a folder given as --out; a name ending with / (before: written as a file of that name)
    from keras_species import cli

    assert cli.main(["split", str(image_folder), "--out", out.format(tmp=tmp_path)]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert source_loads == [] and not (tmp_path / "new").exists()


def test_cli_split_names_oversized_files_with_the_max_pixels_that_reads_them(
        image_folder: Path, tmp_path: Path, capsys) -> None:
    # before: split had no --max-pixels (only audit did), and its list of dropped files gave no
    # way to read a trusted large image
    from PIL import Image

    from keras_species.data import images

    Image.new("RGB", (60, 60)).save(image_folder / "cod" / "scan_a.png")  # 3,600 pixels
    Image.new("RGB", (100, 100)).save(image_folder / "cod" / "scan_b.png")  # over twice the limit
    before = images.get_max_pixels()
    out = tmp_path / "split.csv"
    assert _cli([str(image_folder), "--out", str(out), "--max-pixels", "2000"]) == 0
    err = capsys.readouterr().err
    assert "dropped 2 unreadable file(s)" in err
    assert ("  2 files are over the decompression-bomb limit of 2,000 pixels (the largest: 10,000 "
            "pixels): if you trust them, pass --max-pixels 10000 to read them, or resize them\n") in err
    assert len(splits.load_split(out)) == 18 and images.get_max_pixels() == before
    assert _cli([str(image_folder), "--out", str(out), "--max-pixels", "10000"]) == 0
    assert "unreadable" not in capsys.readouterr().err
    assert len(splits.load_split(out)) == 20 and images.get_max_pixels() == before


def test_the_split_table_lines_up_class_names_in_wide_and_decomposed_characters() -> None:
    # before: columns were padded by characters, so '日本 鯛' (two columns a character on screen)
    # pushed its counts right, and a decomposed 'é' (e + accent, as macOS names folders) left
    from keras_species.terminal import display_width

    names = ["sea bass e\u0301", "日本 鯛", "cod"]
    m = Manifest([f"{k}_{i}.png" for k in range(3) for i in range(3)],
                 np.repeat(np.arange(3), 3), names, splits=["train", "val", "test"] * 3)
    lines = splits.split_table(m).splitlines()
    assert [display_width(line) for line in lines] == [35] * 6
    assert lines[3] == "日本 鯛         1    1     1      3"


def test_the_split_table_keeps_the_classes_a_split_starves_and_sums_the_others() -> None:
    # before: one row a class, whatever their number (10,000 classes printed 10,000 lines)
    names = [f"c{k:02d}" for k in range(50)]
    per = [6] * 50
    per[7], per[30] = 3, 2  # the two classes with the fewest images on a side
    paths = [f"{k}_{i}.png" for k in range(50) for i in range(per[k])]
    labels = np.repeat(np.arange(50), per)
    sides = [["train", "val", "test"][i % 3] for k in range(50) for i in range(per[k])]
    m = Manifest(paths, labels, names, splits=sides)
    assert len(splits.split_table(m).splitlines()) == 2 + 50 + 1
    lines = splits.split_table(m, max_classes=4).splitlines()
    assert len(lines) == 2 + 4 + 1 + 1
    # c30 (1/1/0) and c07 (1/1/1) first, then the first classes of the smallest-split tie (2)
    assert [line.split()[0] for line in lines[2:6]] == ["c00", "c01", "c07", "c30"]
    other = lines[6].split()
    assert other == ["(46", "other", "classes)", "92", "92", "92", "276"]
    # one class more than the cap is shown whole; two more are summed in a row of their own
    assert len(splits.split_table(m, max_classes=49).splitlines()) == 2 + 50 + 1
    assert splits.split_table(m, max_classes=48).splitlines()[-2].split()[:3] == ["(2", "other", "classes)"]
    shown = [[int(v) for v in line.split()[1:]] for line in lines[2:6]]
    rest = [int(v) for v in other[3:]]
    total = [int(v) for v in lines[7].split()[1:]]
    assert [sum(col) for col in zip(*shown, rest)] == total and total[-1] == len(m)


def test_cli_split_bad_ratios_are_a_flag_error_before_the_data_is_read(tmp_path: Path, capsys) -> None:
    # before: `keras-species split: ratios must sum to 1, ...` once the data had been listed and
    # checked, with no `error:` and no `see --help` (a data error's form)
    from keras_species import cli

    missing = tmp_path / "nowhere"  # never read: the flag is refused first
    for ratios, reason in ((["0.9", "0.2", "0.1"], "they must sum to 1 within 0.01 (sum 1.2)"),
                           (["1"], "give 2 or 3 values (train, val[, test])")):
        assert cli.main(["split", str(missing), "--ratios", *ratios, "--out", str(tmp_path / "s.csv")]) == 2
        assert capsys.readouterr().err == (
            f"keras-species split: error: --ratios {' '.join(ratios)}: {reason} "
            "(e.g. --ratios 0.7 0.15 0.15); see --help\n")
    # the ratios of another kind of split are not checked (they do not apply)
    assert splits.ratios_problem([0.7, 0.15, 0.15]) is None


def test_a_class_missing_from_a_split_is_counted_in_the_singular() -> None:
    # before: "split 'test' has no image of 1 classes: c2" (c2: two groups for three parts)
    m = _single((40, 30, 10), groups_of=5)
    with pytest.warns(UserWarning) as seen:
        splits.stratified_split(m, (0.7, 0.15, 0.15), seed=0)
    said = [str(w.message) for w in seen if "has no image of" in str(w.message)]
    assert said and all(re.match(r"split '\w+' has no image of 1 class: c\d \(", s) for s in said), said


def _grouped(n_groups: int, per_group: int = 10) -> Manifest:
    paths = [f"/x/{c}/site{g}_{i}.png" for c in "ab" for g in range(n_groups) for i in range(per_group)]
    return Manifest(paths, np.array([0 if "/a/" in p else 1 for p in paths]), ["a", "b"],
                    groups=[p.split("/")[-1].split("_")[0] for p in paths])


def test_cli_split_that_leaves_a_part_empty_is_refused(tmp_path: Path, capsys) -> None:
    # before: every image went to train, with one warning per empty part, and `split` exited 0
    rows = ["path,label,group"]
    for c in ("a", "b"):
        for g in range(2):
            for i in range(5):
                path = tmp_path / c / f"site{g}_{i}.png"
                path.parent.mkdir(exist_ok=True)
                Image.new("RGB", (8, 8), (g * 90, i * 40, 9)).save(path)
                rows.append(f"{c}/site{g}_{i}.png,{c},site{g}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = str(tmp_path / "s.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _cli([str(tmp_path / "d.csv"), "--out", out]) == 2
        err = capsys.readouterr().err
        assert re.search(r"leaves 'val' and 'test' without any image: the 20 images form only 2 groups.*finer", err)
        assert "fewer parts (--ratios 0.8 0.2)" in err  # 3 parts now, 2 groups: two parts would fill
        assert not Path(out).exists()
        assert _cli([str(tmp_path / "d.csv"), "--ratios", "0.5", "0.5", "--out", out]) == 0  # 2 groups, 2 parts
        tiny = tmp_path / "tiny"
        for c in ("a", "b"):
            (tiny / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tiny / c / "1.png")
        assert _cli([str(tiny), "--out", out]) == 2
        err = capsys.readouterr().err
        # one image a class: fewer parts cannot help (the advice said so, and to a split of
        # --ratios 0.8 0.2 to give --ratios 0.8 0.2)
        assert "leaves 'val' and 'test' without any image: every class has fewer images" in err
        assert "fewer parts" not in err and err.rstrip().endswith("give more images")
        assert _cli([str(tiny), "--ratios", "0.8", "0.2", "--out", out]) == 2
        assert "fewer parts" not in capsys.readouterr().err
        one = tmp_path / "one.csv"
        one.write_text("path,label,group\n" + "".join(f"{c}/site0_{i}.png,{c},g\n" for c in "ab" for i in range(5)))
        assert _cli([str(one), "--root", str(tmp_path), "--ratios", "0.8", "0.2", "--out", out]) == 2
        err = capsys.readouterr().err
        assert "form only 1 group" in err and "fewer parts" not in err
    ok = splits.stratified_split(_grouped(6), (0.7, 0.15, 0.15))
    assert set(ok.splits) == {"train", "val", "test"} and not splits.leakage(ok)


def test_cli_split_refuses_seeds_out_of_range_and_group_aware_with_given(tmp_path: Path, capsys) -> None:
    from keras_species import cli

    missing = str(tmp_path / "nowhere")  # never read: the flags are refused first
    out = str(tmp_path / "s.csv")
    for argv, message in (
        (["--seed", "-1"], "--seed -1: must be a whole number from 0 to 4294967295"),
        (["--seed", "99999999999", "--kfold", "3"], "--seed 99999999999: must be a whole number"),
        (["--given", "--group-aware"], "--group-aware does not apply here: --given keeps"),
        (["--systematic", "1", "5", "--group-aware"], "--group-aware does not apply here: --systematic"),
        (["--top-classes", "1.5"], "--top-classes 1.5: give the share of classes to keep"),
        (["--kfold", "1"], "--kfold 1: give the number of folds, at least 2"),
        (["--systematic", "10", "2"], "--systematic 10 2: give K and N with 0 < K < N"),
        (["--given", "--seed", "3"], "--seed does not apply to --given"),
    ):
        assert cli.main(["split", missing, *argv, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"keras-species split: error: {message}") and err.endswith("see --help\n"), err


def test_cli_split_says_what_top_classes_left_out(image_folder: Path, tmp_path: Path, capsys) -> None:
    for i in range(3):  # cod becomes the largest class
        shutil.copy(image_folder / "cod" / "fish_0_0.png", image_folder / "cod" / f"extra_{i}.png")
    out = str(tmp_path / "s.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _cli([str(image_folder), "--no-group-aware", "--top-classes", "0.67", "--out", out]) == 0
    assert "--top-classes 0.67: kept the 2 most frequent of 3 classes with images, 15 of 21 images" in capsys.readouterr().out
    assert _cli([str(image_folder), "--top-classes", "0.34", "--out", out]) == 2
    assert "--top-classes 0.34 keeps 1 class of 3 with images, and a split needs at least 2: give --top-classes 0.67" in (
        capsys.readouterr().err)


def test_cli_split_says_which_images_top_classes_leaves_without_a_tag(tmp_path: Path, capsys) -> None:
    # stop 30: multi-label data kept "638 of 638 images" while 263 of them lost every tag
    rows = ["path,labels"]
    for i, tags in enumerate(["a;b", "a", "a", "b;c", "c", "a;c", "b", "a"] * 2):
        Image.new("RGB", (8, 8), (i * 9, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{tags}")
    (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _cli([str(tmp_path / "tags.csv"), "--top-classes", "0.67", "--ratios", "0.5", "0.5",
                     "--out", str(tmp_path / "s.csv")]) == 0
    # a (8 images) and b (6) kept; c's own two images ("c") now hold no tag
    assert ("--top-classes 0.67: kept the 2 most frequent of 3 classes with images, 16 of 16 images (2 of them "
            "held only tags left out and now hold none: they stay, as negatives of every kept tag)"
            ) in capsys.readouterr().out


def test_cli_split_notes_that_a_ratio_split_replaces_the_datas_own_split(tmp_path: Path, capsys) -> None:
    rows = ["path,label,split"]
    for i in range(12):
        Image.new("RGB", (8, 8), (i * 9, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{'xy'[i % 2]},{['train', 'train', 'val', 'test'][i % 4]}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert _cli([str(tmp_path / "d.csv"), "--out", str(tmp_path / "s.csv")]) == 0
    assert ("comes with a split of its own (test=3, train=6, val=3); this split replaces it in --out "
            "(--given keeps it)") in capsys.readouterr().err
    assert _cli([str(tmp_path / "d.csv"), "--given", "--out", str(tmp_path / "s.csv")]) == 0
    assert "split of its own" not in capsys.readouterr().err


def test_systematic_split_refuses_a_bool_k() -> None:
    with pytest.raises(ManifestError, match="integers 0 < k < n, got k=True"):
        splits.systematic_split(_single(), k=True, n=3)


def test_cli_split_warns_when_a_given_split_puts_a_group_on_two_sides(tmp_path: Path, capsys) -> None:
    rows = ["path,label,split,group"]
    for c in "xy":
        for g in range(4):
            for f, part in enumerate(("train", "val", "test")):
                path = tmp_path / c / f"{c}{g}_{f}.png"
                path.parent.mkdir(exist_ok=True)
                Image.new("RGB", (8, 8), (g * 40, f * 60, 9)).save(path)
                rows.append(f"{c}/{c}{g}_{f}.png,{c},{part},{c}{g}")
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"8 groups of the data sit on two sides of this split \(e\.g\. 'x0' in"):
        assert _cli([str(tmp_path / "s.csv"), "--given", "--out", str(tmp_path / "o.csv")]) == 0
    assert "groups on two sides: 8" in capsys.readouterr().out


def test_cli_split_of_a_saved_split_whose_data_moved_says_so(image_folder: Path, tmp_path: Path, capsys) -> None:
    saved = str(tmp_path / "split.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _cli([str(image_folder), "--out", saved]) == 0
    shutil.move(str(image_folder), str(tmp_path / "moved"))
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _cli([saved, "--given", "--out", str(tmp_path / "again.csv")]) == 2
    assert "none of the 18 image files that" in capsys.readouterr().err  # before: "replace the files with good copies"


def test_given_split_warns_of_a_class_without_a_training_image() -> None:
    paths = [f"/x/{c}/{i}.png" for c in "abd" for i in range(4)]
    m = Manifest(paths, np.repeat([0, 1, 2], 4), ["a", "b", "d"],
                 splits=["train", "train", "val", "test"] * 2 + ["test"] * 4)
    with pytest.warns(UserWarning, match=r"no 'train' image of 1 class: d; a model cannot learn"):
        splits.given_split(m)


def test_multilabel_group_folds_warn_of_thin_folds_and_links_count_as_their_file(tmp_path: Path) -> None:
    paths = [f"/x/g{g}_{i}.png" for g in range(6) for i in range(4)]
    y = np.zeros((24, 2), np.uint8)
    y[:, 0] = 1
    y[:4, 1] = 1  # 'rare' only in group g0
    m = Manifest(paths, y, ["common", "rare"], groups=[p.split("/")[-1].split("_")[0] for p in paths])
    with pytest.warns(UserWarning, match=r"1 class has images in only some of the 3 folds: rare \(1 of 3\)"):
        splits.assign_folds(m, 3, seed=0)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    files = [str(tmp_path / n) for n in ("a.png", "b.png", "link.png")]
    two_sides = Manifest(files, np.array([0, 1, 0]), ["a", "b"], splits=["train", "val", "val"])
    assert list(splits.leakage(two_sides)["paths"].values()) == [["train", "val"]]


def test_kfold_names_the_largest_k_and_the_table_counts_tag_free_images() -> None:
    m = Manifest([f"/x/{c}/{i}.png" for c, n in (("a", 3), ("b", 5)) for i in range(n)],
                 np.array([0] * 3 + [1] * 5), ["a", "b"])
    with pytest.raises(ManifestError, match=r"k=6 folds, but the largest class has 5 images: give k = 5 or less"):
        splits.assign_folds(m, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits.assign_folds(m, 4)
    assert [str(w.message)[:7] for w in caught] == ["1 class"]  # ours, not sklearn's as well
    y = np.array([[1, 0], [0, 1], [0, 0], [1, 1], [0, 0], [1, 0]], np.uint8)
    ml = Manifest([f"/x/{i}.png" for i in range(6)], y, ["fish", "shark"],
                  splits=["train", "train", "train", "val", "val", "test"])
    assert re.search(r"\(no tag\)\s+1\s+1\s+0\s+2", splits.split_table(ml))


def test_cli_split_of_moved_data_is_one_line(image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.csv"
    assert _cli([str(image_folder), "--out", str(out)]) == 0
    image_folder.rename(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _cli([str(out), "--given", "--out", str(tmp_path / "s2.csv")]) == 2
    err = capsys.readouterr().err
    assert "was the data moved or renamed?" in err
    assert "file not found" not in err and err.count("\n") == 1  # before: a line per file first
    assert not splits.dropped_listing_path(tmp_path / "s2.csv").exists()


def test_group_kfold_above_the_largest_class_names_the_largest_k(image_folder: Path) -> None:
    from keras_species.data import sources

    m = sources.load(str(image_folder), group_regex=r"fish_(\d+)_")
    largest = int(m.class_counts().max())
    with pytest.raises(ManifestError, match=f"the largest class has {largest} images: give k = {largest} or less"):
        splits.assign_folds(m, largest + 1, group_aware=True)  # before: sklearn's "n_splits=7 cannot..."


def test_a_refused_split_does_not_first_warn_about_the_parts_it_never_writes(tmp_path: Path, capsys) -> None:
    tiny = tmp_path / "tiny"
    for c in ("a", "b"):
        (tiny / c).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tiny / c / "1.png")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _cli([str(tiny), "--out", str(tmp_path / "s.csv")]) == 2
    assert not [str(w.message) for w in seen if "has no image of" in str(w.message)]
    assert "without any image" in capsys.readouterr().err


def test_groups_split_apart_by_no_group_aware_are_warned_with_its_own_fix(image_folder: Path, tmp_path: Path) -> None:
    for c in ("cod", "eel", "ray"):  # more frames of each fish, so that a file split parts groups
        for i in range(6):
            shutil.copy(next((image_folder / c).glob("*.png")), image_folder / c / f"fish_9{i % 2}_{i}.png")
    with pytest.warns(UserWarning, match=r"sit on two sides of this split .* leave --no-group-aware out"):
        assert _cli([str(image_folder), "--group-regex", r"fish_(\d+)_", "--no-group-aware",
                     "--out", str(tmp_path / "s.csv")]) == 0


def test_split_seeds_are_checked_alike() -> None:
    m = _single((20, 20))
    assert splits.stratified_split(m, (0.5, 0.5), seed=np.int64(3)).splits == splits.stratified_split(
        m, (0.5, 0.5), seed=3).splits
    for seed in (1.5, -1, "0", 2**40, True):
        with pytest.raises(ValueError, match=r"must be a whole number from 0 to 4294967295"):
            splits.stratified_split(m, (0.5, 0.5), seed=seed)
        with pytest.raises(ValueError, match=r"must be a whole number from 0 to 4294967295"):
            splits.assign_folds(m, 2, seed=seed)


def test_a_path_where_a_manifest_goes_is_named() -> None:
    from keras_species.data.audit import audit, clean
    from keras_species.data.pipeline import make_dataset
    from keras_species.data.shards import write_shards

    for call, name in ((lambda: splits.stratified_split("demo"), "stratified_split"),
                       (lambda: splits.assign_folds("demo"), "assign_folds"),
                       (lambda: audit(["a.png"]), "audit"), (lambda: clean("demo", None), "clean"),
                       (lambda: make_dataset("demo", 8), "make_dataset"),
                       (lambda: write_shards("demo", "out"), "write_shards")):
        with pytest.raises(TypeError, match=f"{name} takes a Manifest"):
            call()


def test_top_classes_count_is_a_whole_number() -> None:
    with pytest.raises(ManifestError, match=r"count must be a whole number between 1 and 3 .* got 2\.7"):
        splits.top_classes(_single((20, 10, 5)), count=2.7)  # before: kept 2


def test_multilabel_splits_and_folds_do_not_depend_on_the_row_order() -> None:
    # before: iterstrat and sklearn ran on the rows as listed, so the same CSV sorted another way
    # gave another split and other folds for one seed (the single-label split sorted by path)
    rng = np.random.default_rng(0)
    hot = (rng.random((60, 4)) < 0.4).astype(np.uint8)
    hot[hot.sum(1) == 0, 0] = 1
    paths = [f"img_{i:03d}.png" for i in range(60)]
    m = Manifest(paths, hot, ["a", "b", "c", "d"])
    flipped = m.subset(np.arange(60)[::-1])
    for make in (lambda x: splits.stratified_split(x, seed=3, group_aware=False),
                 lambda x: splits.assign_folds(x, 3, seed=3, group_aware=False)):
        one, two = make(m), make(flipped)
        assert dict(zip(one.paths, one.splits)) == dict(zip(two.paths, two.splits))
    single = _single((10, 12))
    one = splits.assign_folds(single, 3, seed=3, group_aware=False)
    two = splits.assign_folds(single.subset(np.arange(len(single))[::-1]), 3, seed=3, group_aware=False)
    assert dict(zip(one.paths, one.splits)) == dict(zip(two.paths, two.splits))


def test_top_classes_ranks_only_classes_with_images():
    # an iNat category without images was ranked and kept: a model output no image trains
    m = Manifest([f"/x/{i}.png" for i in range(9)], np.array([0] * 5 + [1] * 3 + [3]),
                 ["cod", "eel", "pike (no images)", "ray"])
    assert splits.top_classes(m, count=3).class_names == ["cod", "eel", "ray"]
    with pytest.raises(ManifestError, match=r"between 1 and 3 \(the number of classes with images\), got 4"):
        splits.top_classes(m, count=4)
    assert splits.top_classes(m, fraction=1.0).num_classes == 3


def test_top_classes_share_is_refused_in_classes_with_images():
    # "keeps 1 class of 5 ...: give --top-classes 0.4 or more", and 0.4 was refused the same way
    m = Manifest([f"/x/{i}.png" for i in range(27)], np.array([0] * 15 + [1] * 12),
                 ["a_fish", "b_fish", "c_empty", "d_empty", "e_empty"])
    after = splits.top_classes(m, fraction=0.5)
    with pytest.raises(ManifestError, match=r"keeps 1 class of 2 with images, and a split needs at "
                                            r"least 2: give --top-classes 1 or more"):
        splits._report_top_classes(m, after, 0.5)


def test_cli_split_refuses_an_out_of_another_format_or_a_runs_own_file(image_folder: Path, tmp_path: Path,
                                                                      capsys) -> None:
    # `--out best.keras` replaced a trained model with CSV text (and a photo, a run's split)
    model = tmp_path / "best.keras"
    model.write_bytes(b"PK model")
    assert _cli([str(image_folder), "--out", str(model)]) == 2
    assert f"--out {model}: split writes a CSV (a split manifest), not a .keras file" in capsys.readouterr().err
    assert model.read_bytes() == b"PK model"
    run = tmp_path / "runs" / "quickstart" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"recipe": "quickstart"}')
    (run / "state.json").write_text("{}")
    (run / "split.csv").write_text("the run's split")
    assert _cli([str(image_folder), "--out", str(run / "split.csv")]) == 2
    assert f"split.csv is the run folder {run}'s own file" in capsys.readouterr().err
    assert (run / "split.csv").read_text() == "the run's split"
    assert _cli([str(image_folder), "--out", str(run / "my_split.csv")]) == 0  # a name of its own
