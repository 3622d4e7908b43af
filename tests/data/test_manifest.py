"""Manifest persistence: saved CSV/JSON round trips, and saved files a user edited by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from keras_species.data.manifest import Manifest, ManifestError


def _manifest(multilabel: bool = False) -> Manifest:
    paths = ["/d/cat/a.jpg", "/d/dog/b.jpg", "/d/dog/c.jpg"]
    labels = np.array([[1, 0], [0, 1], [1, 1]]) if multilabel else np.array([0, 1, 1])
    return Manifest(paths, labels, ["cat", "dog"], groups=["g1", "g2", "g2"], splits=["train", "val", "test"])


@pytest.mark.parametrize("multilabel", [False, True])
def test_csv_round_trip_survives_an_excel_save(tmp_path: Path, multilabel: bool) -> None:
    m = _manifest(multilabel)
    path = Path(m.to_csv(tmp_path / "m.csv"))
    text = path.read_text(encoding="utf-8").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # BOM and CRLF, as Excel writes
    back = Manifest.from_csv(path)
    assert back.paths == m.paths and back.labels.tolist() == m.labels.tolist()
    assert (back.class_names, back.groups, back.splits) == (m.class_names, m.groups, m.splits)


def test_a_label_edited_to_a_name_not_in_the_class_list_is_named(tmp_path: Path) -> None:
    path = Path(_manifest().to_csv(tmp_path / "m.csv"))
    path.write_text(path.read_text().replace("/d/dog/c.jpg,dog", "/d/dog/c.jpg,Dog"))
    with pytest.raises(ManifestError, match=r"m.csv, row 5: label 'Dog' is not one of the classes .*'cat', 'dog'"):
        Manifest.from_csv(path)


def test_a_broken_header_line_is_named(tmp_path: Path) -> None:
    path = Path(_manifest().to_csv(tmp_path / "m.csv"))
    path.write_text(path.read_text().replace('["cat", "dog"]', '["cat", dog]'))
    with pytest.raises(ManifestError, match="its first line .* must read '# classes:"):
        Manifest.from_csv(path)


def test_a_multilabel_class_name_holding_the_tag_separator_is_refused(tmp_path: Path) -> None:
    m = Manifest(["/a.jpg"], np.array([[1, 0]]), ["a;b", "c"])
    with pytest.raises(ManifestError, match=r"class name 'a;b' holds ';'.*to_json"):
        m.to_csv(tmp_path / "m.csv")
    back = Manifest.from_json(m.to_json(tmp_path / "m.json"))
    assert back.class_names == ["a;b", "c"] and back.labels.tolist() == [[1, 0]]
    # where such a name comes from, so that a command-line user can rename it
    with pytest.raises(ManifestError, match=r"rename it where it comes from \(a CSV's 0/1 tag column "
                                            r"header, an iNat/COCO category's 'name'"):
        m.to_csv(tmp_path / "m.csv")


@pytest.mark.parametrize("cut", ["mid-row", "path only"])
@pytest.mark.parametrize("multilabel", [False, True])
def test_a_csv_cut_short_names_the_row(tmp_path: Path, cut: str, multilabel: bool) -> None:
    path = Path(_manifest(multilabel).to_csv(tmp_path / "m.csv"))
    text = path.read_text()
    cut_at = text.rindex("/d/dog/c.jpg") + (len("/d/dog/c.jpg") if cut == "path only" else 4)
    path.write_text(text[:cut_at])  # a copy or a write stopped in the last row
    with pytest.raises(ManifestError, match=r"m\.csv, row 5: 1 field\(s\) where the header has 4 "
                                            r"\(path,labels?,group,split\); the file is cut short "
                                            r"there: restore the file, or write it again"):
        Manifest.from_csv(path)
    path.write_text(text.replace("\n/d/cat/a.jpg,", "\n/d/cat/a.jpg,x,y,z,", 1))
    with pytest.raises(ManifestError, match=r"m\.csv, row 3: 7 field\(s\) .*; the row is damaged"):
        Manifest.from_csv(path)
    first, rest = text.split("\n", 1)
    path.write_text(first + "\n" + rest.replace("\n", ",,\n"))  # empty cells a spreadsheet adds
    assert Manifest.from_csv(path).paths == _manifest().paths


def test_a_single_label_manifest_csv_without_its_first_line_stays_single_label(tmp_path: Path) -> None:
    # stop 30: the label column was "labels" for single-label data too, which the CSV reader
    # reads as tag sets, so a copy without the "# classes:" line became multi-label
    from keras_species.data import sources

    files = [tmp_path / f"{i}.png" for i in range(4)]
    for f in files:
        f.touch()  # the CSV reader checks the files exist
    m = Manifest([str(f) for f in files], np.array([0, 1, 1, 0]), ["cat", "dog"])
    path = Path(m.to_csv(tmp_path / "m.csv"))
    assert path.read_text().split("\n")[1] == "path,label"
    assert Manifest.from_csv(path).labels.tolist() == m.labels.tolist()
    bare = tmp_path / "bare.csv"
    bare.write_text(path.read_text().split("\n", 1)[1])
    assert not sources.load(str(bare)).multilabel
    old = tmp_path / "old.csv"  # written before stop 30: still read
    old.write_text(path.read_text().replace("\npath,label\n", "\npath,labels\n", 1))
    assert Manifest.from_csv(old).labels.tolist() == m.labels.tolist()


def test_a_csv_without_its_column_line_names_it(tmp_path: Path) -> None:
    path = Path(_manifest().to_csv(tmp_path / "m.csv"))
    first, header, rest = path.read_text().split("\n", 2)
    path.write_text(f"{first}\n{header.replace('label', 'tag')}\n{rest}")
    with pytest.raises(ManifestError, match=r"m\.csv: its second line must name the columns "
                                            r"path,labels\[,group\]\[,split\] .* but 'labels' is missing"):
        Manifest.from_csv(path)
    path.write_text(first + "\n")
    with pytest.raises(ManifestError, match=r"'path' and 'labels' are missing \(the line is missing\)"):
        Manifest.from_csv(path)


@pytest.mark.parametrize("data, why", [
    (b'{"format": "keras-species-manifest/1", "paths": ["/a.j', r"not valid JSON \(Unterminated string"),
    (b"", "empty file"),
    (b'["keras-species-manifest/1"]', "holds a JSON array, not an object"),
])
def test_a_damaged_manifest_json_is_named(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(data)
    with pytest.raises(ManifestError, match=rf"m\.json cannot be read as a manifest \({why}.*\): "
                                            "restore it, or write it again with Manifest.to_json"):
        Manifest.from_json(path)


def test_a_manifest_json_without_a_field_is_named(tmp_path: Path) -> None:
    path = Path(_manifest().to_json(tmp_path / "m.json"))
    doc = json.loads(path.read_text())
    del doc["labels"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=r"m\.json: 'labels' is missing, not a list"):
        Manifest.from_json(path)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_write_that_fails_midway_leaves_the_earlier_file_whole(tmp_path: Path, monkeypatch, fmt: str) -> None:
    # a run's split.csv is written this way: a crash midway used to leave it cut short
    m = _manifest(multilabel=False)
    path = tmp_path / f"split.{fmt}"
    getattr(m, f"to_{fmt}")(path)
    before = path.read_bytes()
    import keras_species.data.manifest as manifest_module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(manifest_module.csv if fmt == "csv" else manifest_module.json,
                        "writer" if fmt == "csv" else "dump", broken)
    with pytest.raises(OSError, match="disk full"):
        getattr(m.subset(np.arange(2)), f"to_{fmt}")(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_summary_says_a_manifest_without_classes_has_no_labels() -> None:
    # an unlabelled path list (sources.from_path_list) has no classes: not "0 classes (single-label)"
    unlabelled = Manifest(["/d/a.jpg", "/d/b.jpg"], np.array([-1, -1]), [])
    assert unlabelled.summary() == "2 images, no labels"
    assert unlabelled.with_splits(["train", "val"]).summary() == "2 images, no labels, splits train=1 val=1"
    assert _manifest().summary() == "3 images, 2 classes (single-label), splits test=1 train=1 val=1"
    assert _manifest(multilabel=True).summary().startswith("3 images, 2 classes (multi-label)")


def test_an_image_without_a_group_id_is_a_group_of_its_own(tmp_path: Path) -> None:
    # before: None became the id "None" (a JSON manifest with null ids), and a merge gave the
    # side without ids "": either way all of those images were one group, kept on one side
    from keras_species.data import splits

    m = Manifest(["a.png", "b.png", "c.png"], np.array([0, 0, 1]), ["cod", "eel"],
                 groups=["7", None, float("nan")])
    assert m.groups == ["7", "b.png", "c.png"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "keras-species-manifest/1", "paths": ["a.png", "b.png"], "labels": [0, 1],
                                "class_names": ["cod", "eel"], "groups": [None, None]}))
    assert Manifest.from_json(path).groups == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    paths = [f"{c}{i}.png" for c in "xy" for i in range(10)]
    grouped = Manifest(paths[:10], np.zeros(10, int), ["cod", "eel"], groups=["1"] * 5 + ["2"] * 5)
    plain = Manifest(paths[10:], np.ones(10, int), ["cod", "eel"])
    merged = grouped.merge(plain)
    assert merged.groups[10:] == paths[10:]
    split = splits.stratified_split(merged, (0.5, 0.5), group_aware=True)
    eel_sides = {s for s, y in zip(split.splits, split.labels) if y == 1}
    assert eel_sides == {"train", "val"}  # ten groups of one, spread; one group would sit on one side


def test_the_repr_is_a_short_summary_not_every_path() -> None:
    # before: the dataclass repr printed every path, label and group (a million for a big set)
    paths = [f"/d/{'cat' if i % 2 else 'dog'}/{i}.jpg" for i in range(1000)]
    m = Manifest(paths, np.arange(1000) % 2, ["dog", "cat"], groups=[str(i // 4) for i in range(1000)],
                 splits=["train"] * 700 + ["val"] * 150 + ["test"] * 150, source="/d")
    text = repr(m)
    assert text == ("Manifest(images=1000, classes=['dog', 'cat'], multilabel=False, groups=250, "
                    "splits={'test': 150, 'train': 700, 'val': 150}, source='/d', "
                    "paths=['/d/dog/0.jpg', '/d/cat/1.jpg', '/d/dog/2.jpg', ... 997 more])")
    assert str(m) == text and "/d/dog/998.jpg" not in text
    many = Manifest(["a.png"], np.zeros((1, 20), np.uint8), [f"tag{i}" for i in range(20)])
    assert repr(many) == ("Manifest(images=1, classes=['tag0', 'tag1', 'tag2', 'tag3', 'tag4', 'tag5', "
                          "'tag6', 'tag7', ... 12 more], multilabel=True, paths=['a.png'])")
    unlabelled = Manifest(["a.png", "b.png"], np.array([-1, 0]), ["cod"])
    assert "unlabelled=1" in repr(unlabelled)
    assert repr(Manifest([], np.zeros(0, np.int64), [])) == "Manifest(images=0, classes=[], multilabel=False, paths=[])"
    folds = Manifest([str(i) for i in range(12)], np.zeros(12), ["a"], splits=[f"fold{i % 11}" for i in range(12)])
    assert "splits={'fold0': 2, 'fold1': 1, 'fold2': 1," in repr(folds)  # fold10 last, as summary()
    assert repr(folds).split("splits=")[1].startswith("{'fold0': 2, 'fold1': 1, 'fold2': 1, 'fold3'")
    assert folds.summary().endswith("fold9=1 fold10=1")


def test_counts_of_one_are_singular() -> None:
    # before: "1 images, 1 classes (single-label)"
    one = Manifest(["/d/a.jpg"], np.array([0]), ["cod"])
    assert one.summary() == "1 image, 1 class (single-label)"
    from keras_species.data.manifest import classes_phrase, counted

    assert classes_phrase(1, True) == "1 class (multi-label)"
    assert [counted(n, "class") for n in (0, 1, 2)] == ["0 classes", "1 class", "2 classes"]
    assert counted(1, "epoch") == "1 epoch" and counted(2, "split name") == "2 split names"
    assert counted(2, "child", "children") == "2 children"


def test_a_label_index_outside_the_class_list_names_the_row_and_the_file(tmp_path: Path, monkeypatch) -> None:
    # before: "label index 3 is outside 0..1", naming neither the image nor the manifest file
    monkeypatch.chdir(tmp_path)  # the relative paths below are saved from here, made absolute
    with pytest.raises(ManifestError) as caught:
        Manifest(["a.png", "b.png"], np.array([0, 3]), ["cod", "eel"])
    assert str(caught.value) == (
        "label index 3 of row 1 ('b.png') is outside 0..1, the indices of the 2 class names "
        "['cod', 'eel']: give each image the index of its class in class_names, or -1 for an "
        "image without a label")
    path = tmp_path / "m.json"  # a saved manifest edited by hand
    Manifest(["a.png", "b.png"], np.array([0, 1]), ["cod", "eel"]).to_json(path)
    doc = json.loads(path.read_text())
    doc["labels"][1] = 3
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=rf"^{path}: label index 3 of row 1 \('{tmp_path}/b.png'\) is outside 0..1"):
        Manifest.from_json(path)
    doc["labels"] = [0]
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=rf"^{path}: 2 paths but 1 labels$"):
        Manifest.from_json(path)


def test_an_empty_class_name_is_refused_and_an_empty_multilabel_manifest_round_trips(tmp_path) -> None:
    with pytest.raises(ManifestError, match="class 0 has an empty name"):
        Manifest(["a.png", "b.png"], np.array([0, 1]), ["", "eel"])  # before: read back unlabelled
    empty = Manifest([], np.zeros((0, 2), np.uint8), ["cod", "eel"])
    back = Manifest.from_json(empty.to_json(tmp_path / "m.json"))
    assert back.multilabel and back.class_names == ["cod", "eel"]  # before: single-label


def test_multilabel_json_holds_tag_indices_and_reads_the_older_dense_form(tmp_path) -> None:
    # before: the dense 0/1 matrix, 120 MB for 4,000 images of 10,000 tags
    y = np.array([[1, 1], [0, 1], [0, 0]], np.uint8)
    m = Manifest(["a.png", "b.png", "c.png"], y, ["cod", "eel"], splits=["train", "val", "test"])
    path = m.to_json(tmp_path / "m.json")
    doc = json.loads(Path(path).read_text())
    assert doc["labels"] == [[0, 1], [1], []] and doc["label_form"] == "tag_indices"
    back = Manifest.from_json(path)
    assert back.labels.tolist() == y.tolist() and back.splits == m.splits
    doc.pop("label_form")
    doc["labels"] = y.tolist()  # as written before stop 28
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert Manifest.from_json(tmp_path / "old.json").labels.tolist() == y.tolist()
    doc["labels"] = [[1, 1], [0, 1, 1], [0, 0]]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=r"labels\[1\] is \[0, 1, 1\], not 2 values 0 or 1"):
        Manifest.from_json(tmp_path / "bad.json")


def test_labels_a_cast_would_change_are_refused():
    paths = ["a", "b", "c", "d"]
    for labels, why in ((np.array([[-1, 1], [1, 0], [2, 1], [0, 1]]), "multi-hot label -1 in row 0"),
                        (np.array([0.9, 0.2, 1.6, 1.0]), "label 0.9 of row 0"),  # became class 0
                        (np.array([0, 1, np.nan, 1]), "label nan of row 2"),
                        (np.array(list("abcd")), "labels must be whole numbers")):
        with pytest.raises(ManifestError, match=re.escape(why)):
            Manifest(paths, labels, ["cod", "eel"])
    assert Manifest(paths, np.array([0.0, 1.0, 1.0, -1.0]), ["cod", "eel"]).labels.tolist() == [0, 1, 1, -1]
    for name, value in (("class_names", "cod"), ("class_names", {0: "cod", 1: "eel"}), ("paths", "abcd")):
        kw = {"paths": paths, "labels": np.array([0, 1, 1, 0]), "class_names": ["cod", "eel"], name: value}
        with pytest.raises(ManifestError, match=f"{name} must be a list"):  # str() of each split it
            Manifest(**kw)
    assert Manifest([b"a.png"], np.array([0]), ["cod"]).paths == ["a.png"]


def test_a_subset_takes_its_rows_of_per_image_extras_and_shares_nothing():
    m = Manifest(["a", "b", "c"], np.array([0, 1, 0]), ["x", "y"],
                 extra={"confidence": [0.9, 0.51, 0.7], "skipped": ["z"]})
    s = m.subset([1])
    assert s.extra["confidence"] == [0.51]  # before: the whole list, and b written with a's 0.9
    s.extra["skipped"].append("q")
    assert m.extra["skipped"] == ["z"]
    with pytest.raises(ManifestError, match="a boolean mask of 2 values for 3 images"):
        m.subset(np.array([True, False]))  # before: silently kept row 0
    with pytest.raises(ManifestError, match="whole numbers"):
        m.subset(np.array([0.7]))


def test_group_ids_from_numbers_and_nans():
    groups = [np.float32("nan"), np.float32("nan"), 12.0, 12, "a"]
    m = Manifest(list("vwxyz"), np.zeros(5, np.int64), ["cod"], groups=groups)
    assert m.groups == ["v", "w", "12", "12", "a"]  # before: 'nan' twice (one group), '12.0' and '12'


def test_select_classes_refuses_a_class_named_twice():
    m = Manifest(["a", "b"], np.array([0, 1]), ["cod", "eel"])
    with pytest.raises(ManifestError, match=r"\['cod'\] are listed more than once"):
        m.select_classes(["cod", "cod"])  # before: a manifest with two classes named cod
    assert m.select_classes(["eel"]).paths == ["b"]


def test_object_labels_bytes_columns_and_extras_without_a_length():
    assert Manifest(["a", "b"], np.array([0, 1], dtype=object), ["x", "y"]).labels.tolist() == [0, 1]
    m = Manifest([bytearray(b"a.png"), b"b"], [0, 1], [b"cod", b"eel"], groups=[b"s1", 2.0],
                 splits=[b"train", b"val"], extra={"confidence": None})
    assert (m.paths, m.class_names, m.groups, m.splits) == (["a.png", "b"], ["cod", "eel"], ["s1", "2"],
                                                            ["train", "val"])
    assert len(m.split("train")) == 1  # bytes split names were "b'train'"
    with pytest.raises(ManifestError, match="label nan of row 1"):
        Manifest(["a", "b"], np.array([0, None], dtype=object), ["x", "y"])


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_manifest_csv_that_a_spreadsheet_saved_again_still_reads(tmp_path: Path, delimiter: str) -> None:
    # before: the quoted first line was "not a keras-species manifest CSV (no '# classes:' header)"
    import csv
    import io

    m = _manifest()
    path = Path(m.to_csv(tmp_path / "m.csv"))
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    out = io.StringIO()  # what a spreadsheet writes back: each row's cells, quoted where needed
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    assert path.read_text().startswith('"# classes: [""cat""')
    back = Manifest.from_csv(path)
    assert back.paths == m.paths and back.labels.tolist() == m.labels.tolist()
    assert (back.class_names, back.groups, back.splits) == (m.class_names, m.groups, m.splits)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_manifest_with_relative_paths_survives_saving_elsewhere(tmp_path: Path, monkeypatch, suffix: str) -> None:
    # stop 30: the readers read relative paths from the file's folder, the writers wrote them as
    # given (from the working folder): saved in another folder, the files were lost on reloading
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.png").touch()
    monkeypatch.chdir(tmp_path / "data")
    m = Manifest(["a.png"], np.array([0]), ["cod", "eel"])
    out = tmp_path / "runs" / f"m{suffix}"
    out.parent.mkdir()
    path = m.to_csv(out) if suffix == ".csv" else m.to_json(out)
    back = Manifest.from_csv(path) if suffix == ".csv" else Manifest.from_json(path)
    assert back.paths == [str(tmp_path / "data" / "a.png")] and Path(back.paths[0]).is_file()
    odd = Manifest(["gs://bucket/a.jpg", "~/imgs/c.jpg"], np.array([0, 1]), ["cod", "eel"])
    path = odd.to_csv(out) if suffix == ".csv" else odd.to_json(out)
    back = Manifest.from_csv(path) if suffix == ".csv" else Manifest.from_json(path)
    assert back.paths == ["gs://bucket/a.jpg", str(Path("~/imgs/c.jpg").expanduser())]


def test_relative_paths_of_a_saved_manifest_start_at_its_folder(tmp_path: Path, monkeypatch) -> None:
    # before: kept relative, so read from the working folder (a manifest written or edited by hand)
    monkeypatch.chdir("/")
    (tmp_path / "m.csv").write_text('# classes: ["cod", "eel"] multilabel: false\npath,labels\n'
                                    "cod/0.png,cod\n/abs/eel/0.png,eel\n")
    (tmp_path / "m.json").write_text(json.dumps({
        "format": "keras-species-manifest/1", "class_names": ["cod", "eel"], "multilabel": False,
        "paths": ["cod/0.png", "/abs/eel/0.png"], "labels": [0, 1]}))
    expected = [str(tmp_path / "cod" / "0.png"), "/abs/eel/0.png"]  # absolute ones as written
    assert Manifest.from_csv(tmp_path / "m.csv").paths == expected
    assert Manifest.from_json(tmp_path / "m.json").paths == expected


def test_written_csvs_end_their_lines_with_a_line_feed(tmp_path):
    # before: csv.writer's default ended rows in CRLF, beside a '# classes:' line in LF: one file
    # mixed both, and `grep ',test$' split.csv` found nothing
    m = Manifest(["a.png", "b.png"], np.array([0, 1]), ["cod", "eel"]).with_splits(["train", "test"])
    path = tmp_path / "split.csv"
    m.to_csv(path)
    assert b"\r" not in path.read_bytes()
    assert Manifest.from_csv(path).splits == ["train", "test"]
    odd = Manifest(["odd\rname.png", "b.png"], np.array([0, 1]), ["cod", "eel"])  # a lone CR
    odd.to_csv(path)
    assert Manifest.from_csv(path).paths[0].endswith("odd\rname.png")


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_blank_group_ids_are_groups_of_their_own_and_empty_manifests_keep_columns(tmp_path, suffix):
    # the blank rows of a saved manifest were one group '' (a group-aware split put them whole on
    # one side), and an empty manifest CSV lost its group and split columns
    m = Manifest([f"{i}.png" for i in range(4)], np.array([0, 1, 0, 1]), ["cod", "eel"],
                 groups=["", "  ", "g", None])
    assert m.groups[0] == m.paths[0] and m.groups[1] == m.paths[1] and m.groups[2] == "g"
    empty = Manifest([], np.zeros(0, np.int64), ["cod", "eel"], groups=[], splits=[])
    path = tmp_path / f"e{suffix}"
    getattr(empty, f"to_{suffix[1:]}")(path)
    back = getattr(Manifest, f"from_{suffix[1:]}")(path)
    assert back.groups == [] and back.splits == []


@pytest.mark.parametrize("edit, message", [
    ({"multilabel": "false"}, r"'multilabel' holds 'false': give true or false"),
    ({"labels": [[0, 1], [1]]}, r"labels\[0\] is \[0, 1\], not a class index \(a list: a multi-label"),
    ({"labels": [0, 0.5]}, r"labels\[1\] is 0.5, not a class index"),
    ({"paths": ["a.png", None]}, r"paths\[1\] is null"),
    ({"class_names": ["cod", None]}, r"class_names\[1\] is null"),
    ({"splits": ["train", None]}, r"splits\[1\] is null"),
])
def test_hand_edited_manifest_json_fields_are_named(tmp_path, edit, message):
    # a ragged list crashed in NumPy, "false" blamed the labels, null became the text 'None'
    doc = {"format": "keras-species-manifest/1", "paths": ["a.png", "b.png"], "labels": [0, 1],
           "class_names": ["cod", "eel"], "multilabel": False, "splits": ["train", "val"], **edit}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(tmp_path / "m.json")


def test_a_name_that_is_not_utf8_is_refused_by_to_csv(tmp_path):
    m = Manifest(["a.png"], np.array([0]), [b"caf\xe9".decode("utf-8", "surrogateescape")])
    with pytest.raises(ManifestError, match=r"class name 'caf\\udce9' is not UTF-8 text"):
        m.to_csv(tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()
    m.to_json(tmp_path / "m.json")  # JSON keeps it


def test_a_dot_dot_after_a_folder_link_is_kept_as_the_disk_reads_it(tmp_path, monkeypatch):
    from PIL import Image

    from keras_species.data import sources

    (tmp_path / "real" / "sub").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "real" / "x.png")
    (tmp_path / "sym").mkdir()
    (tmp_path / "sym" / "L").symlink_to(tmp_path / "real" / "sub")
    listed = tmp_path / "sym" / "list.csv"
    listed.write_text("path,label\nL/../x.png,cod\n")
    m = sources.load(listed)  # refused as missing: folded by text to sym/x.png
    assert Path(m.paths[0]).resolve() == (tmp_path / "real" / "x.png").resolve()
    monkeypatch.chdir(tmp_path / "sym")
    m2 = Manifest(["L/../x.png"], np.array([0]), ["cod"])
    m2.to_csv(tmp_path / "m.csv")
    assert Path(Manifest.from_csv(tmp_path / "m.csv").paths[0]).is_file()


def test_labels_of_the_right_dtype_are_not_copied_and_label_sets_are_coded_as_unique():
    # every Manifest copied its label matrix (2 GB more for 200k images of 10k tags), and the
    # row-wise np.unique took 8 s for 20k × 10k
    from keras_species.data.manifest import label_set_codes

    y = np.random.default_rng(0).integers(0, 2, (200, 5)).astype(np.uint8)
    m = Manifest([f"{i}.png" for i in range(200)], y, list("abcde"))
    assert m.labels is y
    codes, first = label_set_codes(y)
    _, inverse = np.unique(y, axis=0, return_inverse=True)
    pairs = set(zip(codes.tolist(), inverse.reshape(-1).tolist()))
    assert len(pairs) == len(set(codes.tolist())) == len(set(inverse.reshape(-1).tolist()))  # one partition
    assert (codes[first] == np.arange(len(first))).all() and list(first) == sorted(first)


def test_counted_says_epochs_and_batches():
    from keras_species.data.manifest import counted

    assert (counted(3, "epoch"), counted(2, "batch"), counted(1, "epoch")) == ("3 epochs", "2 batches", "1 epoch")
