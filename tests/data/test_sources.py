"""Readers: class folders, CSVs (three label layouts), iNat/COCO JSON, load() dispatch, bad input."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_species.data import sources
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError
from tests.conftest import write_image_folder


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (10, 20, 30)).save(path, format="PNG")
    return path


# ------------------------------------------------------------------------- folders
def test_from_folder_reads_classes_paths_and_groups(image_folder: Path) -> None:
    m = sources.from_folder(image_folder, group_regex=r"fish_(\d+)_")
    assert m.class_names == ["cod", "eel", "ray"]
    assert len(m) == 18 and m.class_counts().tolist() == [6, 6, 6]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in m.paths)
    assert set(m.groups) == {"0", "1", "2", "100", "101", "102", "200", "201", "202"}
    assert m.labels[0] == 0 and Path(m.paths[0]).parent.name == "cod"


def test_from_folder_recursive_skips_hidden_and_non_images(image_folder: Path) -> None:
    _png(image_folder / "cod" / "sub" / "deep.png")
    (image_folder / "cod" / ".DS_Store").write_bytes(b"x")
    (image_folder / "eel" / "notes.txt").write_text("not an image")
    (image_folder / ".hidden_class").mkdir()
    _png(image_folder / ".hidden_class" / "a.png")
    with pytest.warns(UserWarning, match=r"skipped 1 non-image file under .*notes\.txt"):
        m = sources.from_folder(image_folder)
    assert m.class_names == ["cod", "eel", "ray"]
    assert m.class_counts().tolist() == [7, 6, 6]
    assert any(p.endswith("deep.png") for p in m.paths)
    assert len(m.extra["skipped"]) == 1


def test_from_folder_extension_rules(image_folder: Path) -> None:
    # the listing spells out its own extension test: case-insensitive last suffix only
    _png(image_folder / "cod" / "UPPER.PNG")
    _png(image_folder / "cod" / "two.dots.png")
    _png(image_folder / "cod" / "png")  # no extension at all
    _png(image_folder / "cod" / "trailing.")
    _png(image_folder / "cod" / "x.png.txt")
    with pytest.warns(UserWarning, match="skipped 3 non-image files"):
        m = sources.from_folder(image_folder)
    names = {Path(p).name for p in m.paths}
    assert {"UPPER.PNG", "two.dots.png"} <= names
    assert not names & {"png", "trailing.", "x.png.txt"}
    assert sorted(Path(p).name for p in m.extra["skipped"]) == ["png", "trailing.", "x.png.txt"]
    cod = [p for p in m.paths if Path(p).parent.name == "cod"]
    assert cod == sorted(cod) and all(p == os.path.join(image_folder.absolute(), "cod", Path(p).name) for p in cod)


def test_from_folder_empty_class_folder_warns_and_is_not_a_class(image_folder: Path) -> None:
    (image_folder / "empty_one").mkdir()
    with pytest.warns(UserWarning, match="empty_one"):
        m = sources.from_folder(image_folder)
    assert "empty_one" not in m.class_names and m.num_classes == 3


def test_from_folder_single_class_warns(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "one", classes=("cod",), per_class=3)
    with pytest.warns(UserWarning, match="single class"):
        m = sources.from_folder(root)
    assert m.num_classes == 1 and len(m) == 3


def test_from_folder_images_at_top_level_is_a_clear_error(tmp_path: Path) -> None:
    _png(tmp_path / "flat" / "a.png")
    with pytest.raises(ManifestError, match="top level.*subfolder"):
        sources.from_folder(tmp_path / "flat")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ManifestError, match="no class subfolders"):
        sources.from_folder(tmp_path / "nothing")
    with pytest.raises(ManifestError, match="not a folder"):
        sources.from_folder(tmp_path / "missing")


def test_from_folder_only_empty_class_folders_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d" / "cod").mkdir(parents=True)
    (tmp_path / "d" / "cod" / "readme.txt").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ManifestError, match="no images found"):
            sources.from_folder(tmp_path / "d")


def test_from_folder_does_not_follow_a_link_loop(tmp_path: Path) -> None:
    for c in ("a", "b"):
        _png(tmp_path / "d" / c / "x.png")
    _png(tmp_path / "elsewhere" / "y.png")
    os.symlink("..", tmp_path / "d" / "a" / "up")  # a loop: a/up/a/up/... and b under a
    os.symlink(tmp_path / "elsewhere", tmp_path / "d" / "b" / "more")  # a real folder: followed
    os.symlink(tmp_path / "elsewhere", tmp_path / "d" / "b" / "same")  # the same one again: not
    with pytest.warns(UserWarning, match=r"did not follow 2 folder link\(s\).*a/up.*b/same"):
        m = sources.from_folder(tmp_path / "d")
    assert [os.path.relpath(p, tmp_path / "d") for p in m.paths] == ["a/x.png", "b/more/y.png", "b/x.png"]
    assert m.labels.tolist() == [0, 1, 1]


def test_from_folder_leaves_out_links_to_other_class_folders_and_the_data_folder(tmp_path: Path) -> None:
    d = tmp_path / "d"
    for c in ("cod", "eel"):
        for k in range(2):
            _png(d / c / f"{c}{k}.png")
    _png(tmp_path / "outside" / "o.png")
    os.symlink(d / "eel", d / "cod" / "more")  # eel's images again, labelled cod
    os.symlink(d / "cod", d / "cod2")  # a class folder that is cod again
    os.symlink(d, d / "all")  # the whole data again, as one class
    os.symlink(tmp_path / "outside", d / "cod" / "ext")  # a real folder outside: followed
    os.symlink(tmp_path / "outside", d / "eel" / "ext")  # the same one again: not
    with pytest.warns(UserWarning, match=r"did not follow 4 folder link\(s\)") as caught:
        m = sources.from_folder(d)
    assert [os.path.relpath(p, d) for p in m.paths] == [
        "cod/cod0.png", "cod/cod1.png", "cod/ext/o.png", "eel/eel0.png", "eel/eel1.png"]
    assert m.class_names == ["cod", "eel"] and m.labels.tolist() == [0, 0, 0, 1, 1]
    assert not [w for w in caught if "without images" in str(w.message)]  # not "empty" classes


def test_from_folder_reads_split_folders_as_a_given_split(tmp_path: Path) -> None:
    d = tmp_path / "hymenoptera_data"
    for split, n in (("train", 3), ("val", 2)):
        for c in ("bees", "ants"):
            for k in range(n):
                _png(d / split / c / f"{c}{k}.png")
    _png(d / "val" / "wasps" / "w.png")  # a class only one split has
    _png(d / "train" / "stray.png")
    with pytest.warns(UserWarning, match=r"1 image at the split folder .*train is ignored"):
        m = sources.from_folder(d)
    assert m.class_names == ["ants", "bees", "wasps"]
    rel = [os.path.relpath(p, d) for p in m.paths]
    for path, label, split in zip(rel, m.labels, m.splits):
        assert path.split(os.sep)[:2] == [split, m.class_names[label]]
    assert sorted(zip(m.splits, m.labels.tolist())).count(("train", 0)) == 3
    assert m.splits.count("val") == 5 and m.splits.count("train") == 6
    from keras_species.data.splits import given_split

    assert given_split(m).splits == m.splits
    # "Valid"/"TEST" spellings are split folders too; a folder that is not a split name is a class
    (d / "val").rename(d / "Valid")
    assert set(sources.from_folder(d).splits) == {"train", "val"}
    _png(d / "extra" / "x.png")
    with pytest.warns(UserWarning, match=r"the folders 'Valid', 'train' of .* are named like splits and "
                      r"hold subfolders \('ants', 'bees', 'wasps'\), but 'extra' beside them holds images"):
        plain = sources.from_folder(d)
    assert plain.splits is None and plain.class_names == ["Valid", "extra", "train"]
    flat = tmp_path / "flat"  # split folders without class folders: read as classes, and said
    _png(flat / "train" / "a.png")
    _png(flat / "val" / "b.png")
    with pytest.warns(UserWarning, match=r"class folders of .*flat are named like splits"):
        assert sources.from_folder(flat).class_names == ["train", "val"]


@pytest.mark.parametrize("beside", ["models", "docs"])
def test_folders_without_images_beside_split_folders_leave_the_split_layout(tmp_path: Path, beside) -> None:
    # an empty models/ (or a docs/ with a readme) turned train/ and val/ into two classes
    d = tmp_path / "data"
    for split in ("train", "val"):
        for c in ("cod", "eel"):
            _png(d / split / c / "a.png")
    (d / beside / "sub").mkdir(parents=True)
    if beside == "docs":
        (d / beside / "readme.txt").write_text("notes")
    with pytest.warns(UserWarning, match=rf"read as split folders \('train', 'val'\); the folders beside "
                      rf"them hold no images and are not read: '{beside}'"):
        m = sources.from_folder(d)
    assert m.class_names == ["cod", "eel"] and sorted(set(m.splits)) == ["train", "val"]
    assert sources.split_folder_layout(d)


def test_a_folder_beside_split_folders_whose_images_lie_behind_a_link_holds_images(tmp_path: Path) -> None:
    # pool/batch1 -> ../../photos: its images were missed, pool called empty and left out
    d = tmp_path / "data"
    for split in ("train", "val"):
        for c in ("cod", "eel"):
            _png(d / split / c / "a.png")
    _png(tmp_path / "photos" / "p.png")
    (d / "pool").mkdir()
    (d / "pool" / "batch1").symlink_to(tmp_path / "photos")
    (d / "pool" / "loop").symlink_to(d / "pool")  # a loop ends
    with pytest.warns(UserWarning, match=r"'pool' beside them holds images"):
        m = sources.from_folder(d)
    assert m.splits is None and "pool" in m.class_names
    assert not sources.split_folder_layout(d)


def test_a_link_beside_split_folders_to_images_read_anyway_holds_no_images_of_its_own(tmp_path: Path) -> None:
    # extras/best_ants -> ../train/ants: the readers do not follow it (a second path to images
    # read anyway), but the layout check did, and read train/ and val/ as the classes
    d = tmp_path / "data"
    for split in ("train", "val"):
        for c in ("ants", "bees"):
            _png(d / split / c / "a.png")
    (d / "extras").mkdir()
    (d / "extras" / "best_ants").symlink_to(d / "train" / "ants")
    (d / "extras" / "up").symlink_to(d)
    with pytest.warns(UserWarning, match="not read: 'extras'"):
        m = sources.from_folder(d)
    assert m.class_names == ["ants", "bees"] and sorted(set(m.splits)) == ["train", "val"]


def test_demo_in_the_working_folder_is_named(tmp_path: Path, monkeypatch) -> None:
    _png(tmp_path / "demo" / "cat" / "a.png")
    _png(tmp_path / "demo" / "dog" / "b.png")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"'demo' is the embedded demo set.*\./demo"):
        m = sources.load("demo")
    assert m.num_classes == 6  # the demo, as documented
    assert sources.load("./demo").class_names == ["cat", "dog"]
    assert sources.load(Path("./demo")).class_names == ["cat", "dog"]  # before: the embedded demo
    monkeypatch.chdir(tmp_path / "demo")
    with pytest.raises(ManifestError, match="does not exist"):  # a Path is a path, never the demo
        sources.load(Path("demo"))


def test_from_folder_names_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "pez espada" / "foto 1.png")
    _png(tmp_path / "d" / "Gründling" / "bild_ä.png")
    _png(tmp_path / "d" / "Gründling" / "魚.png")
    m = sources.from_folder(tmp_path / "d")
    assert m.class_names == sorted(["pez espada", "Gründling"])
    assert m.class_counts()[m.class_names.index("Gründling")] == 2
    assert all(Path(p).is_file() for p in m.paths)


# ------------------------------------------------------------------------- CSV
def test_from_csv_single_label_with_split_group_and_normalised_names(image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text(
        "Filename,Species,Split,site\n"
        "cod/fish_0_0.png,cod,Train,a\n"
        "eel/fish_100_0.png,eel,valid,b\n"
        "ray/fish_200_0.png,ray,Validation,c\n"
        "ray/fish_200_3.png,,dev,c\n"
        "cod/fish_1_1.png,cod,TEST,a\n",
        encoding="utf-8",
    )
    m = sources.from_csv(csv_path, group_col="site")
    assert m.class_names == ["cod", "eel", "ray"]
    assert m.labels.tolist() == [0, 1, 2, UNLABELLED, 0]
    assert m.splits == ["train", "val", "val", "val", "test"]
    assert m.groups == ["a", "b", "c", "c", "a"]
    assert m.paths[0] == str(image_folder / "cod" / "fish_0_0.png")


def test_from_csv_labelset_column_is_multilabel(image_folder: Path) -> None:
    csv_path = image_folder / "tags.csv"
    csv_path.write_text("path,labels\ncod/fish_0_0.png,cod;eel\neel/fish_100_0.png,eel\nray/fish_200_0.png,\n")
    m = sources.from_csv(csv_path)
    assert m.multilabel and m.class_names == ["cod", "eel"]
    assert m.labels.tolist() == [[1, 1], [0, 1], [0, 0]]


def test_from_csv_class_columns_auto_and_explicit(image_folder: Path) -> None:
    csv_path = image_folder / "onehot.csv"
    csv_path.write_text("image,split,shark,eel\ncod/fish_0_0.png,train,1,0\neel/fish_100_0.png,test,1,1\n")
    m = sources.from_csv(csv_path)
    assert m.multilabel and m.class_names == ["shark", "eel"]
    assert m.labels.tolist() == [[1, 0], [1, 1]]
    with pytest.warns(UserWarning, match="single class"):
        m2 = sources.from_csv(csv_path, class_columns=["eel"])
    assert m2.class_names == ["eel"] and m2.labels[:, 0].tolist() == [0, 1]
    csv_path.write_text("image,shark\ncod/fish_0_0.png,2\n")
    with pytest.raises(ManifestError, match="0 or 1"):
        sources.from_csv(csv_path, class_columns=["shark"])
    with pytest.raises(ManifestError, match="no 0/1 class columns"):
        sources.from_csv(csv_path)


def test_from_csv_path_format_and_images_subfolder(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "images", per_class=2)
    (tmp_path / "split.csv").write_text("split,class,file\ntrain,cod,fish_0_0.png\nval,eel,fish_101_1.png\n")
    m = sources.from_csv(tmp_path / "split.csv", path_format="{class}/{file}")
    assert m.paths == [str(tmp_path / "images" / "cod" / "fish_0_0.png"),
                       str(tmp_path / "images" / "eel" / "fish_101_1.png")]
    assert m.labels.tolist() == [0, 1] and m.splits == ["train", "val"]
    with pytest.raises(ManifestError, match="nope"):
        sources.from_csv(tmp_path / "split.csv", path_format="{nope}/{file}")


def test_from_csv_missing_files_error_lists_paths_and_fix_or_skip(image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\ncod/gone_1.png,cod\neel/gone_2.png,eel\n")
    with pytest.raises(ManifestError, match=r"2 of 3 listed files do not exist.*gone_1\.png.*on_missing='skip'"):
        sources.from_csv(csv_path)
    with pytest.warns(UserWarning, match="skipped 2 rows") as caught:
        m = sources.from_csv(csv_path, on_missing="skip")
    assert len(m) == 1 and m.paths[0].endswith("fish_0_0.png")
    assert any("every row of 'eel' names a missing file" in str(w.message) for w in caught)


_ROWS = "path,label\ncod/fish_0_0.png,cod\neel/fish_100_0.png,eel\n"


def test_from_csv_warns_when_the_last_unended_line_has_a_label_found_nowhere_else(
        image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text(_ROWS + "ray/fish_200_0.png,ra", encoding="utf-8")  # copy cut mid-label
    with pytest.warns(UserWarning, match=r"line 4 is the last and has no line end, and its label "
                                         r"'ra' occurs in no other row.*cut off.*add a line end"):
        m = sources.from_csv(csv_path)
    assert m.class_names == ["cod", "eel", "ra"]  # warned, not refused
    csv_path.write_text("path,tags\ncod/fish_0_0.png,cod;eel\neel/fish_100_0.png,eel\n"
                        "ray/fish_200_0.png,eel;co", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"label 'co' occurs in no other row"):
        sources.from_csv(csv_path)
    for text in (_ROWS + "ray/fish_200_0.png,ra\n",  # ends with a line end: a real class
                 _ROWS + "ray/fish_200_0.png,eel",  # no line end, but a known label
                 "path,label\nray/fish_200_0.png,ra"):  # one row: nothing to compare with
        csv_path.write_text(text, encoding="utf-8")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sources.from_csv(csv_path)
        assert not [w for w in caught if "line end" in str(w.message)], text


def test_from_csv_missing_file_names_its_line_and_a_cut_last_line(image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text(_ROWS + "ray/fish_2", encoding="utf-8")  # copy cut mid-path
    with pytest.raises(ManifestError, match=r"line 4: '.*fish_2'.*on_missing='skip'\)\. Line 4 "
                                            r"is the last and has no line end.*cut off"):
        sources.from_csv(csv_path)
    with pytest.warns(UserWarning, match=r"skipped 1 row .*line 4: .*Line 4 is the last"):
        m = sources.from_csv(csv_path, on_missing="skip")
    assert len(m) == 2
    csv_path.write_text(_ROWS + "ray/fish_2\n", encoding="utf-8")  # ended: a missing file only
    with pytest.raises(ManifestError, match=r"line 4: '.*fish_2'") as caught:
        sources.from_csv(csv_path)
    assert "cut off" not in str(caught.value)


def test_from_csv_label_not_in_class_list_lists_rows(image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\neel/fish_100_0.png,shark\n")
    with pytest.raises(ManifestError, match=r"line 3: 'shark'"):
        sources.from_csv(csv_path, class_names=["cod", "eel"])
    with pytest.warns(UserWarning, match="class_names lists 'eel', which no row carries"):
        m = sources.from_csv(csv_path, class_names=["eel", "shark", "cod"])
    assert m.class_names == ["eel", "shark", "cod"] and m.labels.tolist() == [2, 1]


def test_from_csv_duplicate_rows(image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\ncod/fish_0_0.png,cod\neel/fish_100_0.png,eel\n")
    with pytest.warns(UserWarning, match="dropped 1 duplicate"):
        m = sources.from_csv(csv_path)
    assert len(m) == 2
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\n./cod/fish_0_0.png,eel\n")
    with pytest.raises(ManifestError, match=r"listed twice.*lines 2 and 3"):
        sources.from_csv(csv_path)


def test_from_csv_missing_columns_are_named(image_folder: Path) -> None:
    csv_path = image_folder / "labels.csv"
    csv_path.write_text("where,what\ncod/fish_0_0.png,cod\n")
    with pytest.raises(ManifestError, match="no path column"):
        sources.from_csv(csv_path)
    with pytest.raises(ManifestError, match="no label column 'kind'"):
        sources.from_csv(csv_path, path_col="where", label_col="kind")
    with pytest.warns(UserWarning, match="single class"):
        m = sources.from_csv(csv_path, path_col="where", label_col="what")
    assert m.class_names == ["cod"]


def test_a_csv_without_a_label_column_says_what_to_name_it(image_folder: Path) -> None:
    # the command line has no --label-col: the message must say what to do there
    csv_path = image_folder / "kinds.csv"
    csv_path.write_text("path,kind\ncod/fish_0_0.png,cod\neel/fish_100_0.png,eel\n")
    with pytest.raises(ManifestError, match=r"found no label column and no 0/1 class columns among "
                                            r"\['path', 'kind'\]: name the column of labels 'label' .*"
                                            r"\(e\.g\. rename 'kind' to 'label'\)"):
        sources.from_csv(csv_path)
    # a column of ';'-joined tag sets is to be named labels: renamed label, each set was a class
    csv_path.write_text("path,tagset\ncod/fish_0_0.png,cod;eel\neel/fish_100_0.png,eel\n")
    with pytest.raises(ManifestError, match=r"\(e\.g\. rename 'tagset' to 'labels'\)"):
        sources.from_csv(csv_path)


def test_files_in_class_folders_suggest_the_path_format(image_folder: Path) -> None:
    # the shared hymenoptera split.csv: split,class,file with the files in <class>/<file>
    csv_path = image_folder / "split.csv"
    csv_path.write_text("split,class,file\ntrain,cod,fish_0_0.png\ntest,eel,fish_100_0.png\n")
    hint = (r"the files are in one folder per class: read them with --path-format '\{class\}/\{file\}' "
            r"\(in Python: path_format='\{class\}/\{file\}'\); else give --root DIR")
    with pytest.raises(ManifestError, match=hint):
        sources.from_csv(csv_path)
    # skipping every missing file would leave nothing: refused, not an empty manifest
    with pytest.raises(ManifestError, match=hint + r".*leaves none of the rows"):
        sources.from_csv(csv_path, on_missing="skip")
    assert len(sources.from_csv(csv_path, path_format="{class}/{file}")) == 2
    # no such folders: no hint
    (image_folder / "elsewhere.csv").write_text("class,file\ncod,nope.png\n")
    with pytest.raises(ManifestError) as caught:
        sources.from_csv(image_folder / "elsewhere.csv")
    assert "path_format" not in str(caught.value) and "give --root DIR" in str(caught.value)


def test_whole_number_class_names_take_their_numeric_order(tmp_path: Path) -> None:
    for c in ("0", "1", "2", "10"):
        _png(tmp_path / "d" / c / "x.png")
    assert sources.from_folder(tmp_path / "d").class_names == ["0", "1", "2", "10"]
    (tmp_path / "d" / "l.csv").write_text("path,label\n10/x.png,10\n2/x.png,2\n0/x.png,0\n1/x.png,1\n")
    m = sources.from_csv(tmp_path / "d" / "l.csv")
    assert m.class_names == ["0", "1", "2", "10"] and m.labels.tolist() == [3, 2, 0, 1]
    (tmp_path / "d" / "t.csv").write_text("path,tags\n10/x.png,10;2\n2/x.png,1\n")
    assert sources.from_csv(tmp_path / "d" / "t.csv").class_names == ["1", "2", "10"]
    assert sources.class_order(["b10", "b2", "a"]) == ["a", "b10", "b2"]  # not all numbers: text order


def test_from_csv_rows_that_do_not_fit_the_header_are_named(tmp_path: Path) -> None:
    _png(tmp_path / "cat" / "a, b.png")
    _png(tmp_path / "dog" / "c.png")
    csv_path = tmp_path / "l.csv"
    csv_path.write_text("# made by hand\npath,label\ndog/c.png,dog\ncat/a, b.png,cat\n")
    with pytest.raises(ManifestError, match=r"1 row\(s\) hold more fields than the header's 2 columns \(line 4\).*quoted"):
        sources.from_csv(csv_path)
    csv_path.write_text('path,label\ndog/c.png,dog,\n"cat/a, b.png",cat\n')  # a trailing empty field is fine
    assert sources.from_csv(csv_path).class_names == ["cat", "dog"]
    csv_path.write_text("path,label,label\ndog/c.png,dog,cat\n")
    with pytest.raises(ManifestError, match="column 'label' appears more than once"):
        sources.from_csv(csv_path)


def test_from_csv_written_on_windows_has_its_separators_read(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "cat" / "a.png")
    _png(tmp_path / "img" / "dog" / "b.png")
    (tmp_path / "l.csv").write_text("path,label\r\nimg\\cat\\a.png,cat\r\nimg\\dog\\b.png,dog\r\n")
    m = sources.from_csv(tmp_path / "l.csv")
    assert m.paths == [str(tmp_path / "img" / "cat" / "a.png"), str(tmp_path / "img" / "dog" / "b.png")]


def test_from_csv_non_ascii_and_spaces(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "pez espada" / "foto 1.png")
    _png(tmp_path / "d" / "Gründling" / "魚.png")
    (tmp_path / "d" / "labels.csv").write_text(
        "path,label\npez espada/foto 1.png,pez espada\nGründling/魚.png,Gründling\n", encoding="utf-8")
    m = sources.from_csv(tmp_path / "d" / "labels.csv")
    assert sorted(m.class_names) == ["Gründling", "pez espada"]
    assert all(Path(p).is_file() for p in m.paths)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_from_csv_with_a_byte_order_mark_is_read(tmp_path: Path, encoding: str) -> None:
    _png(tmp_path / "Gründling" / "a.png")
    (tmp_path / "l.csv").write_text("path,label\nGründling/a.png,Gründling\n", encoding=encoding)
    with pytest.warns(UserWarning, match="single class"):
        assert sources.from_csv(tmp_path / "l.csv").class_names == ["Gründling"]


def test_a_text_file_that_is_not_utf8_is_named_with_the_fix(tmp_path: Path) -> None:
    _png(tmp_path / "caf" / "a.png")
    (tmp_path / "l.csv").write_bytes("path,label\ncaf/a.png,café\n".encode("cp1252"))
    with pytest.raises(ManifestError, match=r"l.csv is not UTF-8 text \(byte 0xe9 on line 2\): re-save it as UTF-8"):
        sources.from_csv(tmp_path / "l.csv")
    m = Manifest([str(tmp_path / "caf" / "a.png")], np.array([0]), ["café"])
    saved = tmp_path / "saved.json"
    saved.write_bytes(b"\xef\xbb\xbf" + Path(m.to_json(tmp_path / "x.json")).read_bytes())  # Notepad's BOM
    assert sources.load(saved).class_names == ["café"]


# ------------------------------------------------------------------------- COCO / iNat JSON
def _coco(tmp_path: Path, annotations: list[dict]) -> Path:
    doc = {
        "images": [{"id": 10, "file_name": "train/a.jpg"}, {"id": 11, "file_name": "train/b.jpg"},
                   {"id": 12, "file_name": "train/c.jpg"}],
        "annotations": annotations,
        "categories": [{"id": 907, "name": "Salmo trutta"}, {"id": 3, "name": "Esox lucius"}],
    }
    path = tmp_path / "inat.json"
    path.write_text(json.dumps(doc))
    for root in (tmp_path, tmp_path / "x"):  # the reader checks a sample of the files exists
        (root / "train").mkdir(parents=True, exist_ok=True)
        for image in doc["images"]:
            (root / image["file_name"]).touch()
    return path


def test_from_coco_json_single_label_non_contiguous_ids(tmp_path: Path) -> None:
    path = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 907},
                            {"id": 2, "image_id": 11, "category_id": 3}])
    m = sources.from_coco_json(path)
    assert m.class_names == ["Esox lucius", "Salmo trutta"]  # sorted by category id (3, 907)
    assert not m.multilabel and m.labels.tolist() == [1, 0, UNLABELLED]
    assert m.paths[0] == str(tmp_path / "train" / "a.jpg")
    assert sources.from_coco_json(path, image_root=tmp_path / "x").paths[0] == str(tmp_path / "x" / "train" / "a.jpg")


def test_from_coco_json_warns_of_a_category_without_any_image(tmp_path: Path) -> None:
    # before: the category stayed in the class list without a word (a model then has an output
    # it can never learn); a file without any annotation (iNat's test set) is not warned about
    path = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 907}])
    with pytest.warns(UserWarning) as seen:
        m = sources.from_coco_json(path)
    assert m.class_names == ["Esox lucius", "Salmo trutta"] and m.class_counts().tolist() == [0, 1]
    (said,) = [str(w.message) for w in seen if "without any image" in str(w.message)]
    assert said == (
        f"{path}: 1 category of its 2 without any image: 'Esox lucius'. It stays in the class "
        "list, so that the indices match other files sharing the category list, and a model "
        "trained on this file alone would still get an output for it, one it can never learn: "
        "train on the file that has its images, or leave it out of 'categories'")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sources.from_coco_json(_coco(tmp_path, []))  # no annotation at all: unlabelled, no warning


def test_from_coco_json_warns_of_category_names_that_differ_only_in_case(tmp_path: Path) -> None:
    # the CSV and folder readers warned of 'Fish' and 'fish' since stop 29, the COCO reader not
    path = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 907},
                            {"id": 2, "image_id": 11, "category_id": 3}])
    doc = json.loads(path.read_text())
    doc["categories"][1]["name"] = "salmo Trutta"
    path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match=r"1 set of class names differ only in spelling "
                                         r"\('salmo Trutta' and 'Salmo trutta' \(case\)\)"):
        m = sources.from_coco_json(path)
    assert m.class_names == ["salmo Trutta", "Salmo trutta"]  # two classes, as the file says


def test_from_coco_json_with_a_wrong_image_root_says_which_flag_sets_it(tmp_path: Path) -> None:
    path = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 907}])
    with pytest.raises(ManifestError, match=r"none of 3 images sampled from its 3 exists under .*--root DIR"):
        sources.from_coco_json(path, image_root=tmp_path / "nowhere")
    (tmp_path / "train" / "a.jpg").unlink()  # some missing: the audit reports them, no error here
    assert len(sources.from_coco_json(path)) == 3


def test_from_coco_json_several_categories_is_multilabel(tmp_path: Path) -> None:
    path = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 907},
                            {"id": 2, "image_id": 10, "category_id": 3},
                            {"id": 3, "image_id": 11, "category_id": 3}])
    m = sources.from_coco_json(path)
    assert m.multilabel and m.labels.tolist() == [[1, 1], [1, 0], [0, 0]]
    with pytest.raises(ManifestError, match="multilabel=True"):
        sources.from_coco_json(path, multilabel=False)
    bad = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 5}])
    with pytest.raises(ManifestError, match="category id 5"):
        sources.from_coco_json(bad)


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: d["images"][1].pop("file_name"), r"images\[1\] has no 'file_name'; it needs one \(str\)"),
    (lambda d: d["images"][0].update(file_name=None), r"images\[0\] has no 'file_name'"),
    (lambda d: d["images"][2].pop("id"), r"images\[2\] has no 'id'; it needs one \(int or str\)"),
    (lambda d: d["categories"][0].pop("id"), r"categories\[0\] has no 'id'"),
    (lambda d: d["categories"][0].update(id="907"), "ids mix numbers and strings"),
    (lambda d: d.update(categories=[]), "'categories' is empty"),
    (lambda d: d.update(images={"a": 1}), "'images' must be a list of objects, not a dict"),
    (lambda d: d["annotations"][0].pop("image_id"), r"annotations\[0\] \(id 1\) has no 'image_id'"),
    # a list was a raw TypeError ("unhashable type: 'list'")
    (lambda d: d["annotations"][0].update(image_id=[1]), r"annotations\[0\] \(id 1\) has \[1\] as its 'image_id'"),
    (lambda d: d["annotations"][0].update(category_id=[1]), r"has \[1\] as its 'category_id'; it needs one id"),
])
def test_from_coco_json_with_a_missing_key_names_the_entry(tmp_path: Path, change, match) -> None:
    path = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 907}])
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=match):
        sources.from_coco_json(path)


# ------------------------------------------------------------------------- path lists
def test_a_path_list_loads_as_unlabelled_images(image_folder: Path, tmp_path: Path) -> None:
    cod = sorted((image_folder / "cod").glob("*.png"))
    listed = image_folder / "new.txt"  # relative paths start at the list's folder
    listed.write_text(f"# photos of the day\ncod/{cod[0].name}\n\n  cod/{cod[1].name}  \n"
                      f"{cod[2]}\n   # indented comment\ncod/{cod[0].name}\n", encoding="utf-8-sig")
    with pytest.warns(UserWarning, match=r"new.txt: dropped 1 line\(s\) naming a file listed before, "
                                         rf"e.g. line 7: '.*{cod[0].name}'"):
        m = sources.load(listed)
    assert m.paths == [str(p) for p in cod[:3]] and m.class_names == [] and not m.multilabel
    assert m.labels.tolist() == [UNLABELLED] * 3 and m.source == str(listed)
    elsewhere = tmp_path / "lists" / "new.lst"  # a .lst, --root, and group ids from the names
    elsewhere.parent.mkdir()
    elsewhere.write_text("\n".join(f"cod/{p.name}" for p in cod[:2]) + "\n", encoding="utf-16")
    m = sources.load(elsewhere, root=str(image_folder), group_regex=r"fish_(\d+)_")
    assert m.paths == [str(p) for p in cod[:2]] and m.groups == ["0", "0"]
    (image_folder / "empty.lst").write_text("# nothing yet\n\n")
    with pytest.raises(ManifestError, match=r"empty.lst lists no files \(only blank or # lines\)"):
        sources.load(image_folder / "empty.lst")


def test_a_txt_whose_first_line_names_a_path_column_is_a_csv(image_folder: Path) -> None:
    table = image_folder / "labels.txt"
    table.write_text("# made by hand\n\nFile;Species\ncod/fish_0_0.png;cod\neel/fish_100_0.png;eel\n",
                     encoding="utf-8-sig")
    assert sources.is_path_list(table) is False
    assert sources.load(table).class_names == ["cod", "eel"]
    table.write_text("class,name\ncod,fish_0_0.png\n")  # no path column: a list, as predict reads it
    assert sources.is_path_list(table) is True
    with pytest.raises(ManifestError, match=r"labels.txt is read as a list of paths, one per line \(its "
                                            r"first line is not a CSV header naming a path column: "
                                            r"path, .*\), to which --path-format \(path_format=\) does "
                                            r"not apply: .*give the data as a .csv file"):
        sources.load(table, path_format="{class}/{name}")
    table.rename(image_folder / "labels.csv")
    with pytest.warns(UserWarning, match="single class"):
        assert len(sources.load(image_folder / "labels.csv", path_format="{class}/{name}")) == 1


def test_missing_files_of_a_path_list_are_named_with_their_lines(image_folder: Path) -> None:
    listed = image_folder / "new.txt"
    listed.write_text("cod/fish_0_0.png\n# gone:\ncod/gone.png\neel/fish_100_0.png\nray/fish_2")
    with pytest.raises(ManifestError, match=r"new.txt: 2 of 4 listed files do not exist under .* \(e.g. "
                                            r"line 3: '.*gone.png', line 5: '.*fish_2'\); give --root DIR.*"
                                            r"leave those lines out .*on_missing='skip'\)\. Line 5 is the "
                                            r"last and has no line end.*cut off"):
        sources.load(listed)
    with pytest.warns(UserWarning, match=r"new.txt: skipped 2 lines whose file does not exist \(e.g. "
                                         r"line 3: .*\)\. Line 5 is the last"):
        m = sources.load(listed, on_missing="skip")
    assert [Path(p).name for p in m.paths] == ["fish_0_0.png", "fish_100_0.png"]
    assert [Path(p).name for p in m.extra["missing"]] == ["gone.png", "fish_2"]
    for text in ("cod/fish_0_0.png\nray/fish_2\n",  # ended: a missing file only
                 "cod/fish_0_0.png\nray/fish_2\n# a comment is the last line"):
        listed.write_text(text)
        with pytest.raises(ManifestError, match=r"line 2: '.*fish_2'") as caught:
            sources.load(listed)
        assert "cut off" not in str(caught.value)


def test_audit_reads_a_path_list_and_split_refuses_it(image_folder: Path, tmp_path: Path, capsys) -> None:
    from keras_species import cli

    listed = image_folder / "new.txt"
    listed.write_text("cod/fish_0_0.png\neel/fish_100_0.png\n")
    out = tmp_path / "audit"
    assert cli.main(["audit", str(listed), "--out", str(out), "--no-progress", "--no-plots",
                     "--clean-manifest", str(tmp_path / "clean.csv")]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["n_images"] == 2 and report["n_unlabelled"] == 2 and report["class_counts"] == {}
    assert sources.load(tmp_path / "clean.csv").paths == sources.load(listed).paths
    capsys.readouterr()
    assert cli.main(["split", str(listed), "--out", str(tmp_path / "split.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-species split: ") and "Traceback" not in err
    assert f"{listed} is a list of image paths, one per line, which has no labels" in err
    assert not (tmp_path / "split.csv").exists()


def test_require_labels_names_a_path_list_and_what_to_give(image_folder: Path) -> None:
    listed = image_folder / "new.lst"
    listed.write_text("cod/fish_0_0.png\n")
    with pytest.raises(ManifestError, match=rf"^{listed} is a list of image paths, one per line, which "
                                            r"has no labels, and split needs them: give a CSV with a "
                                            r"path and a label column"):
        sources.require_labels(sources.load(listed), "split")
    blank = image_folder / "blank.csv"
    blank.write_text("path,label\ncod/fish_0_0.png,\n")
    with pytest.raises(ManifestError, match=r"the one image of .*blank.csv has no label"):
        sources.require_labels(sources.load(blank), "split")
    m = sources.load(image_folder)
    assert sources.require_labels(m, "split") is m


# ------------------------------------------------------------------------- load()
def test_load_dispatches_on_source_kind(image_folder: Path, tmp_path: Path) -> None:
    m = sources.load(image_folder, group_regex=r"fish_(\d+)_")
    assert m.num_classes == 3 and m.groups is not None
    saved_csv = m.to_csv(tmp_path / "saved.csv")
    saved_json = m.to_json(tmp_path / "saved.json")
    for saved in (saved_csv, saved_json):
        back = sources.load(saved)
        assert back.paths == m.paths and back.labels.tolist() == m.labels.tolist()
        assert back.groups == m.groups
    plain = tmp_path / "plain.csv"
    plain.write_text(f"path,label\n{m.paths[0]},cod\n")
    with pytest.warns(UserWarning, match="single class"):
        assert sources.load(plain).paths == [m.paths[0]]
    coco = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 3}])
    assert sources.load(coco).class_names == ["Esox lucius", "Salmo trutta"]
    assert isinstance(sources.load(m), Manifest)
    with pytest.raises(ManifestError, match="does not exist"):
        sources.load(tmp_path / "nowhere")
    with pytest.raises(ManifestError, match=r"read as a folder of class subfolders, to which --path-format \(path_format=\) do"):
        sources.load(image_folder, path_format="{class}/{file}")


def test_command_line_source_options(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sources.add_source_arguments(parser)
    args = parser.parse_args(["list.csv", "--root", "img", "--on-missing", "skip"])
    assert sources.source_options(args) == {"root": "img", "on_missing": "skip"}
    assert sources.source_options(parser.parse_args([])) == {}
    # --root is the image root of an iNat/COCO JSON
    coco = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 3}])
    m = sources.load(coco, root=str(tmp_path / "x"))
    assert m.paths[0] == str(tmp_path / "x" / "train" / "a.jpg")


def test_group_regex_without_match_makes_own_groups() -> None:
    # the regex as written on the command line (its repr doubled each backslash)
    with pytest.warns(UserWarning, match=re.escape(r"--group-regex 'fish_(\d+)_' (group_regex=) matched no group in 1 of 2")):
        g = sources.groups_from_regex(["/a/fish_7_1.png", "/a/other.png"], r"fish_(\d+)_")
    assert g == ["7", "/a/other.png"]
    with pytest.raises(ManifestError, match="not a valid regular expression"):
        sources.groups_from_regex(["a"], "(")


@pytest.mark.parametrize(("regex", "named", "group"), [(r"(x)?\d", "x1.png", "x"), (r"z*", "zz.png", "zz")])
def test_group_regex_matching_an_empty_id_makes_own_groups(regex: str, named: str, group: str) -> None:
    paths = ["/a/fish_7_1.png", "/a/fish_8_2.png", "/a/fish_9_3.png"]
    with pytest.warns(UserWarning, match="matched no group in 3 of 4"):  # not one group '' or 'None'
        assert sources.groups_from_regex([*paths, f"/a/{named}"], regex) == [*paths, group]
    # no file name gets an id: refused (it used to warn "matched no group in 2 of 2" and go on)
    with pytest.raises(ManifestError, match=re.escape(
            f"--group-regex '{regex}' (group_regex=) gave an empty group id for each of the 3 file "
            "names (e.g. fish_7_1.png, fish_8_2.png)")):
        sources.groups_from_regex(paths, regex)


def test_group_regex_that_matches_no_file_name_is_refused(tmp_path: Path) -> None:
    # before: a warning ("matched no group in 3 of 3 file names ...; each of those files is its
    # own group") and the run went on, each file its own group, fish leaking across the splits
    names = ["fish_000012_a.png", "fish_000012_b.png", "fish_000013_a.png"]
    paths = [f"/d/cod/{n}" for n in names]
    with pytest.raises(ManifestError) as caught:
        sources.groups_from_regex(paths, r"fish(\d+)_")
    assert str(caught.value) == (
        r"--group-regex 'fish(\d+)_' (group_regex=) matched none of the 3 file names (e.g. "
        "fish_000012_a.png, fish_000012_b.png), so each file would be its own group and images of "
        "one group could land in different splits: check the pattern against these names (a "
        r"capture group around the id: the shared fish4knowledge23 set needs 'fish_(\d+)_'), or "
        "leave it out to split file by file")
    assert sources.groups_from_regex([], r"fish(\d+)_") == []  # nothing to group: no error
    for name in names:  # the same through load, as --group-regex reaches it
        (tmp_path / name).write_bytes(b"")
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\n" + "".join(f"{n},cod\n" for n in names))
    with pytest.raises(ManifestError, match=re.escape(r"--group-regex 'fish(\d+)_' (group_regex=) matched none")):
        sources.load(csv, group_regex=r"fish(\d+)_")


def test_empty_group_column_cells_are_own_groups(image_folder: Path) -> None:
    m = sources.from_folder(image_folder)
    lines = ["path,label,site"] + [
        f"{p},{m.class_names[y]},{'s1' if i < 2 else ''}" for i, (p, y) in enumerate(zip(m.paths[:5], m.labels))]
    (image_folder / "l.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"group column 'site' is empty for 3 of 5"):
        g = sources.from_csv(image_folder / "l.csv", group_col="site").groups
    assert g == ["s1", "s1"] + m.paths[2:5]


def test_options_that_a_demo_or_saved_manifest_would_ignore_are_refused(tmp_path: Path) -> None:
    saved = sources.load("demo").to_csv(tmp_path / "m.csv")
    for source in ("demo", saved):
        with pytest.raises(ManifestError, match=r"--path-format \(path_format=\), --root \(root=\) do not apply"):
            sources.load(source, root="/nowhere", path_format="{file}")
        assert sources.load(source, group_regex=r"fish_(\d+)_").groups is not None


def test_a_manifest_takes_a_group_regex_in_a_copy_and_refuses_reading_options(image_folder: Path) -> None:
    m = sources.load(image_folder)
    assert sources.load(m) is m
    regrouped = sources.load(m, group_regex=r"fish_(\d+)_")
    assert regrouped is not m and m.groups is None  # the caller's manifest is left as it is
    assert regrouped.groups == sources.groups_from_regex(m.paths, r"fish_(\d+)_")
    assert regrouped.paths == m.paths and regrouped.labels.tolist() == m.labels.tolist()
    with pytest.raises(ManifestError, match=rf"^{re.escape(str(image_folder))} is given as a Manifest, "
                                            r"read already, to which --path-format \(path_format=\) "
                                            r"does not apply: leave it out \(they apply while a file is "
                                            r"read: give the file's path instead"):
        sources.load(m, path_format="{file}")
    for option in ("root", "on_missing", "labels_col", "extensions"):  # none is silently ignored
        with pytest.raises(ManifestError, match=rf"to which .*\b{re.escape(option)}=.*does not apply"):
            sources.load(m, **{option: "x"})


def test_source_kind_names_the_options_load_takes(image_folder: Path, tmp_path: Path) -> None:
    m = sources.load(image_folder)
    listed = tmp_path / "new.lst"
    listed.write_text(m.paths[0] + "\n")
    coco = _coco(tmp_path, [{"id": 1, "image_id": 10, "category_id": 3}])
    assert sources.source_kind("demo").options == ("group_regex",)
    assert sources.source_kind(m).options == ("group_regex",)
    assert set(sources.source_kind(listed).options) == {"group_regex", "on_missing", "root"}
    assert {"root", "image_root"} <= set(sources.source_kind(coco).options)  # root: image_root
    assert "root" not in sources.source_kind(image_folder).options
    assert sources.source_kind(m.to_csv(tmp_path / "saved.csv")).kind == "a saved manifest"
    with pytest.raises(ManifestError, match="does not exist"):
        sources.source_kind(tmp_path / "nowhere")


# ------------------------------------------------------------------------- shared data
@pytest.mark.shared_data
def test_shared_aquarium_multilabel_csv(shared_data: Path) -> None:
    m = sources.load(shared_data / "aquarium_multilabel" / "labels.csv")
    assert len(m) == 638 and m.num_classes == 7 and m.multilabel
    counts = {s: m.splits.count(s) for s in set(m.splits)}
    assert counts == {"train": 448, "val": 127, "test": 63}
    assert all(Path(p).is_file() for p in m.paths[:20])
    per_image = m.labels.sum(axis=1)
    assert np.bincount(per_image).tolist()[:4] == [1, 439, 152, 46]


@pytest.mark.shared_data
def test_shared_hymenoptera_split_csv_with_path_format(shared_data: Path) -> None:
    m = sources.from_csv(shared_data / "hymenoptera" / "split.csv", path_format="{class}/{file}")
    assert m.class_names == ["ants", "bees"]
    assert set(m.splits) == {"train", "val"}
    spaced = [p for p in m.paths if Path(p).name == "ant photos.jpg"]
    assert len(spaced) == 1 and Path(spaced[0]).is_file()


def test_an_output_that_would_replace_or_grow_into_its_data_is_refused(image_folder, tmp_path, monkeypatch, capsys):
    from keras_species import cli
    from keras_species.data.sources import check_output_place, output_place_problem

    table = tmp_path / "labels.csv"
    table.write_text("path,label,notes\n", encoding="utf-8")
    assert "is the data it is made from" in output_place_problem(table, tmp_path / "." / "labels.csv")
    assert output_place_problem(table, tmp_path / "split.csv") is None
    assert output_place_problem(image_folder, Path(image_folder) / "split.csv") is None  # a file beside
    assert "inside the data folder" in output_place_problem(image_folder, Path(image_folder) / "runs",
                                                            folder=True)
    assert output_place_problem("demo", "audit", folder=True) is None
    inside = str(Path(image_folder) / "x")
    with pytest.raises(ValueError, match=r" \(--out\) is inside the data folder"):
        check_output_place(image_folder, inside, "--out", folder=True)
    check_output_place(image_folder, inside, "--out")  # a file there is fine
    # on the command line: nothing is written, the CSV keeps its other columns
    before = table.read_bytes()
    assert cli.main(["split", str(table), "--out", str(table)]) == 2
    assert cli.main(["audit", str(table), "--clean-manifest", str(table), "--out", str(tmp_path / "a")]) == 2
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(table), "--out", str(table)]) == 2
    assert table.read_bytes() == before
    monkeypatch.chdir(image_folder)  # `audit .` from inside the data, with its default --out audit
    assert cli.main(["audit", ".", "--no-progress", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("is the data it is made from") == 3 and "audit (--out) is inside the data folder ." in err
    assert not (Path(image_folder) / "audit").exists()


def test_from_csv_warns_about_short_rows_of_class_columns(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    data = tmp_path / "tags.csv"
    data.write_text("path,fish,coral,ray\na.png,1,0,1\nb.png,0,1\nc.png,1,1,0\n")
    with pytest.warns(UserWarning, match=r"1 row\(s\) have fewer fields than the header's 4 "
                                         r"columns \(line 3\): their missing class cells are read as 0"):
        m = sources.from_csv(data)
    assert m.labels.tolist() == [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    data.write_text("path,fish,coral,ray\na.png,1,0,1\nb.png,0,1,0\nc.png,1")  # a copy cut short
    with pytest.warns(UserWarning, match=r"Line 4 is the last and has no line end: the file may "
                                         r"be cut off there"):
        sources.from_csv(data)
    data.write_text("path,fish,coral,ray\na.png,1,0,1\nb.png,0,1,0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complete rows: no warning
        sources.from_csv(data)


def test_a_label_set_column_of_0_and_1_is_refused_as_a_tag_column(tmp_path: Path) -> None:
    # before: --labels-col fish read the 0/1 cells as two tags named "0" and "1", and a
    # multi-label model was trained on them without a word
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "imgs", per_class=2)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    lines = ["file,fish,shark"] + [f"{f},{i % 2},{1 - i % 2}" for i, f in enumerate(files)]
    (root / "tags.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"the label-set column 'fish' holds only 0 and 1: .*"
                                            r"\(fish, shark\)"):
        sources.load(root / "tags.csv", labels_col="fish")
    assert sources.load(root / "tags.csv").class_names == ["fish", "shark"]  # the 0/1 columns


def _nfc_nfd(name: str) -> tuple[str, str]:
    import unicodedata

    return unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)


def test_a_listed_file_named_in_another_unicode_form_is_read(tmp_path: Path) -> None:
    # before: a file macOS wrote in NFD, listed in NFC (typed on Linux or Windows), was "missing"
    names = ["cod_Gådus.png", "ray_Raja_clavata_é.png"]
    for i, name in enumerate(names):
        Image.new("RGB", (20, 16), (40 * i, 30, 40)).save(tmp_path / _nfc_nfd(name)[1])
    on_disk = sorted(str(tmp_path / _nfc_nfd(n)[1]) for n in names)
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{_nfc_nfd(n)[0]},{n[:3]}\n" for n in names), encoding="utf-8")
    (tmp_path / "new.txt").write_text("".join(f"{_nfc_nfd(n)[0]}\n" for n in names), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped, nothing to warn about
        m = sources.load(tmp_path / "labels.csv")
        listed = sources.load(tmp_path / "new.txt")
    assert sorted(m.paths) == on_disk and m.class_names == ["cod", "ray"]
    assert sorted(listed.paths) == on_disk
    read = sources.read_csv_paths(tmp_path / "labels.csv")
    assert read.exists.all() and read.given == [_nfc_nfd(n)[0] for n in names]  # as written
    assert sources.unicode_variants(tmp_path / _nfc_nfd(names[0])[0]) == [on_disk[0]]
    assert sources.unicode_variants(tmp_path / "plain.png") == []


def test_a_listed_file_found_under_several_unicode_forms_is_named(tmp_path: Path) -> None:
    import unicodedata

    nfc, nfd = _nfc_nfd("éè.png")
    for name in (nfc, nfd):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    if len(os.listdir(tmp_path)) < 2:
        pytest.skip("the file system keeps one name per Unicode form")
    mixed = "é" + unicodedata.normalize("NFD", "è") + ".png"  # neither NFC nor NFD
    assert mixed not in (nfc, nfd)
    (tmp_path / "l.txt").write_text(f"{mixed}\n", encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        sources.load(tmp_path / "l.txt")
    message = str(caught.value)
    assert ("1 of them lie under several names that differ from the name listed only in Unicode "
            "normalisation (NFC/NFD), so none is read (e.g. line 1: ") in message
    both = sorted(str(tmp_path / name) for name in (nfc, nfd))
    assert f"({sources.unicode_form(mixed)}) matches " in message
    assert ", ".join(f"{ascii(p)} ({sources.unicode_form(p)})" for p in both) in message
    assert sources.unicode_form(nfc) == "NFC" and sources.unicode_form(nfd) == "NFD"
    assert message.count("\n") == 0


def test_path_format_messages_give_the_flag_first(tmp_path: Path) -> None:
    listed = tmp_path / "l.csv"
    listed.write_text("class,file\ncod,a.png\n")
    with pytest.raises(ManifestError, match=re.escape(
            "--path-format '{class}/{name}' (path_format=) names columns ['name'] that ")):
        sources.from_csv(listed, path_format="{class}/{name}")
    with pytest.raises(ManifestError, match=re.escape(
            "--path-format '{class' (path_format=) is not a valid format string: ")):
        sources.from_csv(listed, path_format="{class")


def test_extensions_is_named_as_the_python_keyword_it_is(tmp_path: Path, image_folder: Path) -> None:
    # no command has --extensions: messages that named "extensions" sent users looking for one
    (tmp_path / "heic" / "cod").mkdir(parents=True)
    (tmp_path / "heic" / "cod" / "a.heic").write_bytes(b"not read")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped file, the class without images
        with pytest.raises(ManifestError, match=re.escape(
                "(others only with extensions=[...] in Python; the commands have no flag for it: "
                "convert such files to one of these)")):
            sources.from_folder(tmp_path / "heic")
    with pytest.raises(ManifestError, match=re.escape(
            "to which --root (root=) does not apply: leave it out (the options for a folder of class "
            "subfolders: extensions=[...] (Python only), --group-regex (group_regex=))")):
        sources.load(image_folder, root="elsewhere")


def test_one_stray_image_is_named_in_the_singular(tmp_path: Path) -> None:
    # before: "1 images at the top level of ... are ignored" / "holds 1 images at its top level"
    root = write_image_folder(tmp_path / "d", per_class=1)
    Image.new("RGB", (8, 8)).save(root / "stray.png")
    with pytest.warns(UserWarning, match=r"^1 image at the top level of .* is ignored \(e\.g\. "):
        sources.from_folder(root)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "only.png")
    with pytest.raises(ManifestError, match=r"holds 1 image at its top level \(e\.g\. "):
        sources.from_folder(flat)


def test_reader_options_are_named_flag_first() -> None:
    # before: `root (--root)`, `on_missing (--on-missing)` and `extensions=[...] in Python`,
    # where every other message puts the flag first: `--path-format '{class}/{file}' (path_format=)`
    kind = sources.SourceKind("a CSV", ("on_missing", "root"))
    assert kind.problem("l.csv", ["extensions", "label_col"]) == (
        "l.csv is read as a CSV, to which extensions=[...] (Python only), label_col= (Python only) "
        "do not apply: leave them out (the options for a CSV: --on-missing (on_missing=), --root (root=))")
    # before: `multilabel=` among an iNat JSON's options, read as a flag (`--multilabel` is none)
    coco = sources.SourceKind("an iNat/COCO JSON", ("group_regex", "multilabel", "image_root"))
    assert coco.problem("t.json", ["path_format"]).endswith(
        "(the options for an iNat/COCO JSON: --group-regex (group_regex=), multilabel= (Python only), "
        "--root (image_root=))")
    listed = sources.source_kind("demo")
    assert listed.problem("demo", ["image_root"]).startswith(
        "demo is read as the embedded demo set, to which --root (image_root=) does not apply: "
        "leave it out (its paths and labels are fixed; only --group-regex (group_regex=) applies)")
    with pytest.raises(ManifestError, match=re.escape("--group-regex '(' (group_regex=) is not a valid")):
        sources.groups_from_regex(["a.png"], "(")


def test_duplicate_rows_are_counted_in_the_right_number_and_name_their_lines(image_folder: Path) -> None:
    # before: "dropped 1 duplicate rows (same file, same label), e.g. '/abs/path'": no line
    csv_path = image_folder / "labels.csv"
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\neel/fish_100_0.png,eel\n"
                        "cod/fish_0_0.png,cod\n")
    with pytest.warns(UserWarning) as caught:
        m = sources.from_csv(csv_path)
    assert len(m) == 2
    assert [str(w.message) for w in caught] == [
        f"{csv_path}: dropped 1 duplicate row (same file, same label): line 4 repeats line 2 "
        "('cod/fish_0_0.png'); each file is read once (delete the repeated row to silence this, "
        "or keep it: nothing changes)"]
    names = [f"cod/{p.name}" for p in sorted((image_folder / "cod").iterdir())]
    rows = [f"{name},cod,train" for name in names]
    csv_path.write_text("path,label,split\n" + "\n".join(rows + rows[::-1] + [rows[0]]) + "\n")
    shown = ", ".join(f"line {8 + k} repeats line {7 - k} ({names[5 - k]!r})" for k in range(5))
    with pytest.warns(UserWarning, match=re.escape(
            f"dropped 7 duplicate rows (same file, same label and split): {shown} and 2 more; "
            "each file is read once (delete the repeated rows")):
        assert len(sources.from_csv(csv_path)) == 6


def test_an_empty_csv_says_it_is_empty_and_what_it_should_hold(tmp_path: Path, capsys) -> None:
    # before: "has no header row: the first line must name the columns" for a 0-byte file
    from keras_species import cli

    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    what = "a CSV holds a header row naming its columns (e.g. path,label) and one row per image"
    with pytest.raises(ManifestError, match=re.escape(f"{empty} is empty (0 bytes): {what}")):
        sources.load(empty)
    assert cli.main(["split", str(empty), "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert "is empty (0 bytes)" in err and "has no header row" not in err
    comments = tmp_path / "c.csv"
    comments.write_text("# to fill in\n\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=re.escape(
            f"{comments} has no header row (it holds only blank lines and # comments): {what}")):
        sources.from_csv(comments)


def test_a_class_of_the_class_list_without_any_image_is_warned_about(image_folder: Path) -> None:
    # before: class_names=["cod", "eel", "pike"] with no pike row was accepted silently
    csv_path = image_folder / "labels.csv"
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\neel/fish_100_0.png,eel\n")
    with pytest.warns(UserWarning, match=re.escape(
            f"{csv_path}: 1 class without any image: class_names lists 'pike', which no row "
            "carries. A model trained on this data would still get an output for it")) as caught:
        m = sources.load(csv_path, class_names=["cod", "eel", "pike"])
    assert len(caught) == 1 and "leave it out of class_names" in str(caught[0].message)
    assert m.class_names == ["cod", "eel", "pike"] and m.class_counts().tolist() == [1, 1, 0]
    with pytest.warns(UserWarning, match=r"2 classes without any image: class_names lists 'pike', "
                                         r"'ray', which no row carries.*output for each"):
        sources.from_csv(csv_path, class_names=["cod", "pike", "eel", "ray"])
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        sources.from_csv(csv_path, class_names=["eel", "cod"])  # every class has its image
    assert not quiet, [str(w.message) for w in quiet]
    # a 0/1 class column of zeros, and a class whose every row names a missing file (skipped)
    csv_path.write_text("path,cod,eel,pike\ncod/fish_0_0.png,1,0,0\neel/fish_100_0.png,0,1,0\n")
    with pytest.warns(UserWarning, match=r"the class column 'pike' holds only 0"):
        sources.from_csv(csv_path)
    csv_path.write_text("path,label\ncod/fish_0_0.png,cod\neel/fish_100_0.png,eel\nray/gone.png,ray\n")
    with pytest.warns(UserWarning, match=r"1 class without any image: every row of 'ray' names a "
                                         r"missing file \(skipped\)"):
        sources.from_csv(csv_path, on_missing="skip")


def test_a_class_without_any_image_is_warned_about_once_on_the_way_to_a_split(image_folder: Path) -> None:
    # prepare_data (the recipes' reading) says nothing more of it: the one warning is the reader's
    from keras_species.data.prepare import prepare_data

    csv_path = image_folder / "labels.csv"
    rows = [f"{c}/{p.name},{c}" for c in ("cod", "eel") for p in sorted((image_folder / c).iterdir())]
    csv_path.write_text("path,label\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_data(csv_path, load_options={"class_names": ["cod", "eel", "pike"]},
                     split="stratified", ratios=(0.5, 0.5), audit=True)
    said = [str(w.message) for w in caught if "pike" in str(w.message)]
    assert len(said) == 1 and "class_names lists 'pike'" in said[0], said


def test_a_stray_value_in_a_0_1_class_column_is_refused_not_the_class_dropped(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _png(tmp_path / f"{name}.png")
    (tmp_path / "g.csv").write_text("path,cod,eel,pike\nc.png,0,1,0\na.png,1,0,1\nb.png,1,0,x\n", encoding="utf-8")
    # before: class_names ['cod', 'eel'], pike gone without a word
    with pytest.raises(ManifestError, match=r"column 'pike' holds 0/1 class values but also 1 other value \(line 4: 'x'\)"):
        sources.from_csv(tmp_path / "g.csv")
    (tmp_path / "n.csv").write_text("path,cod,eel,note\nc.png,0,1,blurry\na.png,1,0,\nb.png,1,0,dark\n",
                                    encoding="utf-8")
    assert sources.from_csv(tmp_path / "n.csv").class_names == ["cod", "eel"]  # a text column stays out


def test_a_csv_group_column_is_found_by_name_and_by_flag(tmp_path: Path) -> None:
    rows = ["path,label,group,site"]
    for c in ("cod", "eel"):
        for g in range(2):
            _png(tmp_path / f"{c}{g}.png")
            rows.append(f"{c}{g}.png,{c},{c}-{g},s{g}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    m = sources.load(tmp_path / "d.csv")  # before: groups None, and the split ignored them
    assert m.groups == ["cod-0", "cod-1", "eel-0", "eel-1"] and m.class_names == ["cod", "eel"]
    assert sources.load(tmp_path / "d.csv", group_col="site").groups == ["s0", "s1", "s0", "s1"]
    assert sources.load(tmp_path / "d.csv", group_regex=r"(\d)").groups == ["0", "1", "0", "1"]
    import argparse

    parser = argparse.ArgumentParser()
    sources.add_source_arguments(parser)
    assert sources.source_options(parser.parse_args(["d.csv", "--group-col", "site"])) == {"group_col": "site"}
    (tmp_path / "b.csv").write_text("path,cod,eel,group\ncod0.png,1,0,1\neel0.png,0,1,0\n", encoding="utf-8")
    assert sources.load(tmp_path / "b.csv").class_names == ["cod", "eel"]  # not a class 'group'


def _coco_file(tmp_path: Path, categories: list, images: list, annotations: list) -> Path:
    for im in images:
        if not (tmp_path / im["file_name"]).exists():
            _png(tmp_path / im["file_name"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_coco_json_refuses_a_repeated_category_id_and_a_file_with_two_labels(tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "c.png"}]
    notes = [{"id": 1, "image_id": 1, "category_id": 10}, {"id": 2, "image_id": 2, "category_id": 5}]
    cats = [{"id": 10, "name": "cod"}, {"id": 5, "name": "eel"}, {"id": 5, "name": "trout"}]
    with pytest.raises(ManifestError, match=r"category id 5 appears twice in 'categories'"):
        sources.from_coco_json(_coco_file(tmp_path, cats, images, notes))  # before: c.png became a trout
    cats = [{"id": 1, "name": "cod"}, {"id": 2, "name": "eel"}]
    twice = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "a.png"}]
    with pytest.raises(ManifestError, match=r"'a.png' \(image ids 1 and 2\).*List each file once"):
        sources.from_coco_json(_coco_file(tmp_path, cats, twice, [{"image_id": 1, "category_id": 1},
                                                             {"image_id": 2, "category_id": 2}]))
    with pytest.warns(UserWarning, match=r"1 file listed twice with the same categories, read once"):
        m = sources.from_coco_json(_coco_file(tmp_path, cats, twice + [{"id": 3, "file_name": "b.png"}], [
            {"image_id": 1, "category_id": 1}, {"image_id": 2, "category_id": 1}, {"image_id": 3, "category_id": 2}]))
    assert [Path(p).name for p in m.paths] == ["a.png", "b.png"] and m.labels.tolist() == [0, 1]


def test_coco_json_string_category_ids_are_ordered_as_numbers(tmp_path: Path) -> None:
    cats = [{"id": "10", "name": "ten"}, {"id": "2", "name": "two"}, {"id": "1", "name": "one"}]
    images = [{"id": i, "file_name": f"{i}.png"} for i in range(3)]
    notes = [{"image_id": i, "category_id": c["id"]} for i, c in enumerate(cats)]
    m = sources.from_coco_json(_coco_file(tmp_path, cats, images, notes))
    assert m.class_names == ["one", "two", "ten"]  # before: ['one', 'ten', 'two']


def test_csv_messages_for_a_missing_header_a_path_only_csv_and_a_quoted_cell_over_two_lines(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _png(tmp_path / f"{name}.png")
    (tmp_path / "n.csv").write_text("a.png,cod\nb.png,eel\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"first line looks like a row of data \('a.png' is an image file name\)"):
        sources.from_csv(tmp_path / "n.csv")
    (tmp_path / "p.csv").write_text("path\nb.png\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"Images without labels.*one per line in a \.txt file"):
        sources.from_csv(tmp_path / "p.csv")
    (tmp_path / "l.csv").write_text('path,label,note\nb.png,eel,"two\nlines"\na.png,cod,x\nMISSING.png,cod,y\n',
                                    encoding="utf-8")
    with pytest.raises(ManifestError, match=r"line 5: "):  # before: line 4
        sources.from_csv(tmp_path / "l.csv")


def test_csv_class_names_may_be_numbers_and_extensions_one_string(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _png(tmp_path / "d" / "x" / f"{name}.png")
    (tmp_path / "d" / "x" / "c.jpg").write_bytes(b"")
    (tmp_path / "k.csv").write_text("path,label\nd/x/a.png,1\nd/x/b.png,0\n", encoding="utf-8")
    assert sources.from_csv(tmp_path / "k.csv", class_names=[0, 1]).labels.tolist() == [1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sources.from_folder(tmp_path / "d", extensions="png")  # before: '.p', '.n', '.g'
    assert [Path(p).name for p in m.paths] == ["a.png", "b.png"]


@pytest.mark.parametrize("cell, joined", [('"haze primary"', "haze primary"), ('"cod,eel"', "cod,eel"),
                                          ("cod|eel", "cod|eel")])
def test_tags_joined_by_another_separator_are_warned_about(tmp_path: Path, cell: str, joined: str) -> None:
    for name in ("a", "b", "c"):
        _png(tmp_path / f"{name}.png")
    parts = ";".join(joined.replace("|", " ").replace(",", " ").split())
    (tmp_path / "t.csv").write_text(f"path,tags\na.png,{cell}\nb.png,{parts}\nc.png,pez espada\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=rf"1 label set of column 'tags' looks like tags joined by .*{re.escape(joined)!s}"):
        m = sources.from_csv(tmp_path / "t.csv")
    assert joined in m.class_names  # read as written, after the warning
    (tmp_path / "ok.csv").write_text("path,tags\na.png,pez espada\nb.png,cod\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sources.from_csv(tmp_path / "ok.csv")  # a name with a space, whose parts are not tags: no warning


def test_files_and_folders_whose_names_are_not_utf8_are_left_out_and_named(tmp_path: Path) -> None:
    # before: the folder loaded, then make_dataset ("Error converting unicode string") and audit
    # (UnicodeEncodeError writing files.csv) failed without naming the file
    d = tmp_path / "d"
    for c in ("cod", "eel"):
        _png(d / c / "ok.png")
    root = os.fsencode(d)
    (Path(os.fsdecode(os.path.join(root, b"cod", b"caf\xe9.png")))).write_bytes((d / "cod" / "ok.png").read_bytes())
    os.makedirs(os.path.join(root, b"eel", b"sub\xe9"))
    Path(os.fsdecode(os.path.join(root, b"eel", b"sub\xe9", b"x.png"))).write_bytes((d / "cod" / "ok.png").read_bytes())
    with pytest.warns(UserWarning, match=r"left out 2 files or folders under .*'.*cod/caf\\xe9.png', "
                                         r"'.*eel/sub\\xe9'\): rename them in UTF-8"):
        m = sources.from_folder(d)
    assert [os.path.relpath(p, d) for p in m.paths] == ["cod/ok.png", "eel/ok.png"]
    assert sources.is_utf8_name("café.png") and not sources.is_utf8_name(os.fsdecode(b"caf\xe9.png"))


def test_nas_system_folders_are_passed_over_and_jfif_files_read(tmp_path: Path) -> None:
    d = tmp_path / "d"
    for c in ("cod", "eel"):
        _png(d / c / "ok.png")
        _png(d / c / "@eaDir" / "ok.png" / "SYNOPHOTO_THUMB_M.png")  # a resized copy: leakage
        _png(d / c / "#recycle" / "old.png")
    _png(d / "$Recycle.Bin" / "x.png")  # NTFS spells it so; QNAP's is @Recycle
    _png(d / "@Recycle" / "y.png")
    (d / "cod" / "x.jfif").write_bytes((d / "cod" / "ok.png").read_bytes())  # Windows' name for JPEG
    (d / "eel" / "y.jpe").write_bytes((d / "cod" / "ok.png").read_bytes())
    m = sources.from_folder(d)
    assert sorted(os.path.relpath(p, d) for p in m.paths) == ["cod/ok.png", "cod/x.jfif", "eel/ok.png", "eel/y.jpe"]


def test_a_folder_that_cannot_be_listed_is_named(tmp_path: Path, monkeypatch) -> None:
    d = tmp_path / "d"
    for c in ("cod", "eel"):
        _png(d / c / "ok.png")
    _png(d / "eel" / "sub" / "more.png")
    scandir = os.scandir

    def refused(path="."):  # chmod 000 (root, who runs the tests here, reads it anyway)
        if os.fspath(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refused)
    with pytest.warns(UserWarning, match=r"could not list 1 folder: .*eel/sub \(Permission denied\)'; the "
                                         r"images in them are left out: give this user read"):
        m = sources.from_folder(d)
    assert len(m) == 2
    with pytest.warns(UserWarning, match="could not list 1 folder"):
        assert sources.image_files(d) == sorted(m.paths)


def test_a_quoted_csv_cell_keeps_its_line_break(tmp_path: Path) -> None:
    import csv as csv_mod

    names = ["new\nline.png", "plain.png", "cr\r\nlf.png"]
    for name in names:
        _png(tmp_path / "img" / name)
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv_mod.writer(f)
        w.writerow(["path", "label"])
        w.writerows([[f"img/{n}", c] for n, c in zip(names, ["cod", "eel", "cod"])])
    m = sources.from_csv(tmp_path / "labels.csv")  # before: "new" + "line.png", not found
    assert sorted(os.path.basename(p) for p in m.paths) == sorted(names)


def test_a_zips_wrapper_folder_read_as_one_class_is_named(tmp_path: Path) -> None:
    for c in ("cod", "eel"):
        _png(tmp_path / "zipped" / "fishes" / c / "1.png")
    _png(tmp_path / "zipped" / "__MACOSX" / "fishes" / "cod" / "._1.png")
    with pytest.warns(UserWarning, match=r"single class \('fishes'\).*zipped/fishes holds no image of its "
                                         r"own, only subfolders of images \('cod', 'eel'\).*give "):
        sources.from_folder(tmp_path / "zipped")


def test_csv_labels_that_differ_only_in_case_are_warned_about(tmp_path: Path) -> None:
    rows = ["path,labels"]
    for i, tags in enumerate(["Fish", "fish;Shark", "shark", "Fish"]):
        _png(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{tags}")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"2 sets of class names differ only in spelling \('Fish' and 'fish' \(case\); 'Shark' and 'shark' \(case\)\)"):
        m = sources.from_csv(tmp_path / "l.csv")
    assert m.class_names == ["Fish", "Shark", "fish", "shark"]  # kept as written: the user decides


def test_a_tag_set_column_and_0_1_columns_that_disagree_are_warned_about(tmp_path: Path) -> None:
    rows = ["path,labels,fish,shark", "0.png,fish,1,0", "1.png,shark,1,0", "2.png,fish;shark,0,0"]
    for i in range(3):
        _png(tmp_path / f"{i}.png")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"disagree on 2 rows \(line 3, line 4\); the tag-set column is read"):
        m = sources.from_csv(tmp_path / "l.csv")
    assert m.labels.tolist() == [[1, 0], [0, 1], [1, 1]]


def test_a_0_1_column_of_a_tag_the_tag_set_column_never_names_is_warned_about(tmp_path: Path) -> None:
    # its 1s were dropped without a word (only tags the tag-set column names were compared)
    rows = ["path,labels,fish,ray,shark,eel,verified,fold", "0.png,fish,1,1,0,0,yes,1",
            "1.png,shark,0,0,1,1,no,0", "2.png,fish,1,0,0,0,yes,1"]
    for i in range(3):
        _png(tmp_path / f"{i}.png")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m = sources.from_csv(tmp_path / "l.csv")
    said = [str(w.message) for w in seen if "never names" in str(w.message)]
    # the column among the tag columns, not the 0/1 data beside them (verified, fold)
    assert said == [f"{tmp_path / 'l.csv'}: the 0/1 column 'ray' among the tag columns holds 1s for "
                    "tags the tag-set column 'labels' never names, and is not read: if it is a tag, "
                    "add it to 'labels'"], said  # 'eel' beside the block is not taken for a tag
    assert m.class_names == ["fish", "shark"]


@pytest.mark.shared_data
def test_the_aquarium_tag_columns_agree(shared_data: Path) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m = sources.from_csv(shared_data / "aquarium_multilabel" / "labels.csv")
    assert len(m) == 638 and not [w for w in seen if "disagree" in str(w.message)]


# ------------------------------------------------------------------------- spreadsheet and export quirks
def _images(folder: Path, *names: str) -> None:
    for name in names:
        _png(folder / name)


def _messages(seen) -> list[str]:
    return [str(w.message) for w in seen]


def test_whole_number_class_ids_written_with_a_point_zero_take_their_numeric_order(tmp_path: Path) -> None:
    # before: 0.0, 1.0, 10.0, 2.0 (text order), so index != id for pandas-written ids
    assert sources.class_order(["1.0", "10.0", "2.0", "0.0"]) == ["0.0", "1.0", "2.0", "10.0"]
    _images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    (tmp_path / "l.csv").write_text("path,label\na.png,1.0\nb.png,10.0\nc.png,2.0\nd.png,0.0\n")
    m = sources.from_csv(tmp_path / "l.csv")
    assert m.class_names == ["0.0", "1.0", "2.0", "10.0"] and m.labels.tolist() == [1, 3, 2, 0]


@pytest.mark.parametrize(("labels", "shown"), [
    (("1", "1.0", "2", "2.0"), r"'1' and '1.0' \(a '.0' suffix\); '2' and '2.0' \(a '.0' suffix\)"),
    (("001", "1", "2", "002"), r"'001' and '1' \(leading zeros\); '002' and '2' \(leading zeros\)"),
    (("Gadus  morhua", "Gadus morhua", "cod", "eel"), r"'Gadus  morhua' and 'Gadus morhua' \(spacing\)"),
])
def test_class_names_that_differ_only_in_spelling_are_warned_about(tmp_path: Path, labels, shown) -> None:
    # before: '1' and '1.0' (or '001' and '1', or a doubled space) were two classes without a word
    _images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    rows = "".join(f"{name},{label}\n" for name, label in zip("abcd", labels))
    (tmp_path / "l.csv").write_text("path,label\n" + rows.replace(",", ".png,"))
    with pytest.warns(UserWarning, match=rf"class names differ only in spelling \({shown}\): each name "
                                         r"is a class of its own"):
        m = sources.from_csv(tmp_path / "l.csv")
    assert sorted(m.class_names) == sorted(labels)  # kept as written: the user decides


@pytest.mark.parametrize("column", ["label", "labels"])
def test_missing_value_marks_in_a_label_column_are_classes_with_a_warning(tmp_path: Path, column: str) -> None:
    # R's NA, pandas' nan and NULL are classes of their own names (NA may be North America),
    # now with a warning; stop 30 first read them as no label, which took real classes away
    # (and a tag set "cod;NA" kept NA as a tag while a lone "NA" lost it)
    _images(tmp_path, *(f"{i}.png" for i in range(7)))
    cells = ["cod", "NA", "eel", "nan", "N/A", "NULL", "-1" if column == "label" else "cod;NA"]
    rows = "".join(f'"{i}.png",{cell}\n' for i, cell in enumerate(cells))
    (tmp_path / "l.csv").write_text(f'"path","{column}"\n' + rows)
    with pytest.warns(UserWarning) as seen:
        m = sources.from_csv(tmp_path / "l.csv")
    assert set(m.class_names) >= {"NA", "nan", "N/A", "NULL", "cod", "eel"}
    na = m.class_names.index("NA")
    if column == "label":
        assert "-1" in m.class_names and (m.labels >= 0).all()  # binary -1/1 data: -1 is a class
        assert m.labels[1] == na
    else:
        assert m.labels[1, na] == 1 and m.labels[6, na] == 1  # alone and in a set alike
    (said,) = [t for t in _messages(seen) if "missing value" in t]
    n = 4 if column == "label" else 5  # "cod;NA" holds one too
    assert said.startswith(f"{tmp_path / 'l.csv'}: {n} rows of column '{column}' hold 'NA' or 'nan' or "
                           "'N/A' or 'NULL' (e.g. line 3), read as a class of that name; it is also "
                           "how R, pandas, Excel and databases write a missing value")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # listed in class_names=: the user named them classes
        sources.from_csv(tmp_path / "l.csv",
                         class_names=["cod", "eel", "NA", "nan", "N/A", "NULL", "-1"][: 7 if column == "label" else 6])


def test_0_1_class_columns_written_as_decimals_are_read(tmp_path: Path) -> None:
    # before: 1.00/0.00 (a number-formatted spreadsheet) was not a 0/1 column: "no 0/1 class columns"
    _images(tmp_path, "a.png", "b.png", "c.png")
    (tmp_path / "l.csv").write_text("path,cod,eel\na.png,1.00,0.00\nb.png,0.00,1.00\nc.png,1.00,1.00\n")
    assert sources.from_csv(tmp_path / "l.csv").labels.tolist() == [[1, 0], [0, 1], [1, 1]]
    (tmp_path / "e.csv").write_text("path;cod;eel\na.png;1,00;0,00\nb.png;0,00;1,00\n")  # a decimal comma
    assert sources.from_csv(tmp_path / "e.csv").labels.tolist() == [[1, 0], [0, 1]]


def test_a_column_of_other_numbers_is_named_with_its_line_and_value(tmp_path: Path) -> None:
    # before: "found no label column and no 0/1 class columns", without saying why
    _images(tmp_path, "a.png", "b.png")
    (tmp_path / "l.csv").write_text("path,cod,eel\na.png,1,0.5\nb.png,2,0\n")
    with pytest.raises(ManifestError, match=r"no 0/1 class columns .*; the columns 'cod' \(line 3: '2'\), "
                                            r"'eel' \(line 2: '0.5'\) hold numbers other than 0 and 1"):
        sources.from_csv(tmp_path / "l.csv")


def test_urls_in_a_path_column_are_named_as_urls_not_a_root_to_give(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("path,label\nhttps://example.org/cod/0.png,cod\ns3://bucket/eel/0.png,eel\n")
    with pytest.raises(ManifestError) as caught:
        sources.from_csv(tmp_path / "l.csv")
    said = str(caught.value)
    assert ("2 of them are URLs (e.g. line 2: 'https://example.org/cod/0.png'), and URLs are not read: "
            "download the images first") in said
    assert "--root" not in said and "--on-missing skip" in said


def test_a_path_starting_with_a_tilde_is_in_the_home_folder(tmp_path: Path, monkeypatch) -> None:
    # before: read as the folder '~' beside the CSV, even with root='~'
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _images(tmp_path / "home", "imgs/cod/0.png", "imgs/eel/0.png")
    (tmp_path / "l.csv").write_text("path,label\n~/imgs/cod/0.png,cod\n~/imgs/eel/0.png,eel\n")
    m = sources.from_csv(tmp_path / "l.csv")
    assert m.paths == [str(tmp_path / "home" / "imgs" / c / "0.png") for c in ("cod", "eel")]
    (tmp_path / "r.csv").write_text("path,label\nimgs/cod/0.png,cod\nimgs/eel/0.png,eel\n")
    assert sources.from_csv(tmp_path / "r.csv", root="~").paths == m.paths


@pytest.mark.skipif(os.sep != "/", reason="a drive path is a path of this machine on Windows")
def test_windows_drive_paths_are_named_with_their_start_to_rewrite(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("path,label\nC:\\data\\imgs\\cod\\0.png,cod\nC:\\data\\imgs\\eel\\0.png,eel\n")
    with pytest.raises(ManifestError) as caught:
        sources.from_csv(tmp_path / "l.csv", root=tmp_path)
    assert ("2 of them are Windows absolute paths from another machine (e.g. line 2: "
            "'C:\\\\data\\\\imgs\\\\cod\\\\0.png'): rewrite their start 'C:\\\\data\\\\imgs' to the images' "
            "folder on this machine, or cut it off and give that folder as --root DIR") in str(caught.value)


def test_a_semicolon_csv_whose_header_holds_a_comma_is_read_with_semicolons(tmp_path: Path) -> None:
    # before: read with ',' because a header cell held one: "no path column found"
    _images(tmp_path, "0.png", "1.png")
    (tmp_path / "l.csv").write_text("path;label;Länge, cm\n0.png;cod;12,5\n1.png;eel;40,0\n", encoding="utf-8")
    m = sources.from_csv(tmp_path / "l.csv")
    assert m.class_names == ["cod", "eel"] and m.labels.tolist() == [0, 1]


def test_excels_sep_line_sets_the_delimiter_and_is_not_the_header(tmp_path: Path) -> None:
    _images(tmp_path, "0.png", "1.png")
    (tmp_path / "l.csv").write_text("sep=;\npath;label\n0.png;cod\n1.png;eel\nnope.png;eel\n")
    with pytest.raises(ManifestError, match=r"1 of 3 listed files do not exist .*line 5: "):  # lines count the sep= line
        sources.from_csv(tmp_path / "l.csv")
    m = sources.from_csv(tmp_path / "l.csv", on_missing="skip")
    assert m.class_names == ["cod", "eel"] and len(m) == 2


def test_a_comment_line_quoted_by_a_spreadsheet_is_skipped(tmp_path: Path) -> None:
    _images(tmp_path, "0.png", "1.png")
    (tmp_path / "l.csv").write_text('"# made by hand, with care"\npath,label\n0.png,cod\n1.png,eel\n')
    assert sources.from_csv(tmp_path / "l.csv").class_names == ["cod", "eel"]


def test_a_spreadsheet_resaved_manifest_csv_is_read_as_a_saved_manifest(tmp_path: Path) -> None:
    # before: its quoted first line was not '# classes:', and the file was read as a plain CSV
    paths = [str(_png(tmp_path / f"{c}.png")) for c in ("cod", "eel")]
    Manifest(paths, np.array([0, 1]), ["cod", "eel"]).to_csv(tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    first = '"' + lines[0].replace('"', '""').replace(", ", '"," ') + '"'  # as a spreadsheet writes it
    (tmp_path / "m.csv").write_text("\r\n".join([first] + lines[1:]) + "\r\n")
    assert first.startswith('"# classes: [""cod"""," ""eel""]')
    assert sources.source_kind(tmp_path / "m.csv").kind == "a saved manifest"
    m = sources.load(tmp_path / "m.csv")
    assert m.paths == paths and m.class_names == ["cod", "eel"]


def _coco_doc(tmp_path: Path) -> dict:
    _images(tmp_path, "imgs/a.jpg", "imgs/b.jpg", "imgs/c.jpg")
    return {"images": [{"id": i + 1, "file_name": f"imgs/{n}.jpg"} for i, n in enumerate("abc")],
            "annotations": [{"id": 10, "image_id": 1, "category_id": 1}, {"id": 11, "image_id": 2, "category_id": 1},
                            {"id": 12, "image_id": 3, "category_id": 2}],
            "categories": [{"id": 1, "name": "tit"}, {"id": 2, "name": "magpie"}]}


def test_a_coco_annotation_without_a_category_is_warned_about(tmp_path: Path) -> None:
    # before: left out without a word
    doc = _coco_doc(tmp_path)
    del doc["annotations"][1]["category_id"]
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match=r"a.json: 1 annotation has no 'category_id' \(e.g. annotation 11, "
                                         r"of image 2: 'imgs/b.jpg'\), so it labels nothing"):
        m = sources.from_coco_json(tmp_path / "a.json")
    assert m.labels.tolist() == [0, UNLABELLED, 1]


def test_coco_ids_that_differ_only_in_type_are_named(tmp_path: Path) -> None:
    doc = _coco_doc(tmp_path)
    for a in doc["annotations"]:
        a["image_id"] = str(a["image_id"])
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=r"annotations\[0\] \(id 10\) refers to unknown image id '1': the image ids are "
                                            r"ints \(1\) and this one a str \('1'\), the same id but for its type"):
        sources.from_coco_json(tmp_path / "a.json")


@pytest.mark.skipif(os.sep != "/", reason="Windows reads a backslash as a separator itself")
def test_coco_file_names_written_on_windows_have_their_separators_read(tmp_path: Path) -> None:
    doc = _coco_doc(tmp_path)
    for image in doc["images"]:
        image["file_name"] = image["file_name"].replace("/", "\\")
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert sources.from_coco_json(tmp_path / "a.json").paths == [str(tmp_path / "imgs" / f"{n}.jpg") for n in "abc"]


def test_a_coco_file_of_images_only_reads_as_unlabelled_images(tmp_path: Path) -> None:
    # iNat's test sets: images, no annotations, no categories; before: "not an iNat/COCO file"
    doc = _coco_doc(tmp_path)
    (tmp_path / "test.json").write_text(json.dumps({"info": {}, "images": doc["images"]}))
    m = sources.load(tmp_path / "test.json")
    assert len(m) == 3 and m.class_names == [] and m.labels.tolist() == [UNLABELLED] * 3
    with pytest.raises(ManifestError, match="none of the 3 images of .*test.json has a label"):
        sources.require_labels(m, "split")
    (tmp_path / "b.json").write_text(json.dumps({"images": doc["images"], "annotations": doc["annotations"]}))
    with pytest.raises(ManifestError, match=r"'categories' is missing, but its annotations name categories"):
        sources.from_coco_json(tmp_path / "b.json")


def test_gzip_compressed_json_and_csv_sources_are_read(tmp_path: Path) -> None:
    import gzip

    doc = _coco_doc(tmp_path)
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    assert sources.load(tmp_path / "a.json.gz").labels.tolist() == [0, 0, 1]
    (tmp_path / "l.csv.gz").write_bytes(gzip.compress(b"path,label\nimgs/a.jpg,cod\nimgs/b.jpg,eel\n"))
    assert sources.load(tmp_path / "l.csv.gz").class_names == ["cod", "eel"]
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(b"path,label\nimgs/a.jpg,cod\n" * 50)[:40])
    with pytest.raises(ManifestError, match=r"cut.csv.gz is a gzip file that cannot be decompressed"):
        sources.load(tmp_path / "cut.csv.gz")


@pytest.mark.parametrize("breaker", ["\x0c", "\u2028", "\x1c", "\x85"])
def test_line_numbers_count_only_line_ends(tmp_path: Path, breaker: str) -> None:
    # before: a form feed or U+2028 in a cell counted as a line end, and later lines were off by one
    _images(tmp_path, "a.png", "b.png")
    (tmp_path / "l.csv").write_text(f"path,label\na.png,cod{breaker}\nb.png,eel\nnope.png,eel\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"1 of 3 listed files do not exist .*\(e.g. line 4: "):
        sources.from_csv(tmp_path / "l.csv")


@pytest.mark.parametrize("header", ["Image Path,Species", "image path,species", "File-Name,label"])
def test_a_column_name_with_a_space_or_hyphen_is_found(tmp_path: Path, header: str) -> None:
    _images(tmp_path, "a.png", "b.png")
    (tmp_path / "l.csv").write_text(f"{header}\na.png,cod\nb.png,eel\n")
    assert sources.from_csv(tmp_path / "l.csv").class_names == ["cod", "eel"]


def test_a_tag_set_in_a_single_label_column_is_warned_about(tmp_path: Path) -> None:
    _images(tmp_path, "a.png", "b.png", "c.png")
    (tmp_path / "l.csv").write_text("path,label\na.png,cod\nb.png,cod;eel\nc.png,eel\n")
    with pytest.warns(UserWarning, match=r"1 label of the single-label column 'label' looks like ';'-separated "
                                         r"tag sets \(e.g. line 3: 'cod;eel'\).*name the column 'labels' or 'tags'"):
        m = sources.from_csv(tmp_path / "l.csv")
    assert m.class_names == ["cod", "cod;eel", "eel"]


def test_coco_ids_written_as_whole_floats_are_read_as_their_numbers(tmp_path: Path) -> None:
    # pandas writes an int column beside a NaN as floats: 10.0 was refused by the first version
    # of the id check ("it needs one id (a whole number or a string)")
    path = _coco(tmp_path, [{"id": 1, "image_id": 10.0, "category_id": 907.0},
                            {"id": 2, "image_id": 11, "category_id": 3.0}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sources.from_coco_json(path)
    assert len(m) >= 2 and set(m.class_names) == {"Salmo trutta", "Esox lucius"}
    bad = _coco(tmp_path, [{"id": 1, "image_id": 10.5, "category_id": 907}])
    with pytest.raises(ManifestError, match=r"has 10.5 as its 'image_id'"):
        sources.from_coco_json(bad)


def test_source_csv_odd_columns_are_named(tmp_path):
    # a 0/1 column with many -1s vanished unsaid; two columns reading as one were reduced to
    # the first; a header-less CSV of one row said "has a header but no rows"
    import warnings as _w

    for i in range(6):
        Image.new("RGB", (4, 4), (i * 30, 0, 0)).save(tmp_path / f"i{i}.png")
    hot = tmp_path / "hot.csv"
    hot.write_text("path,cod,eel,pike\n" + "".join(
        f"i{i}.png,{c},{e},{p}\n" for i, (c, e, p) in enumerate(
            [(1, 0, 1), (-1, 1, 0), (-1, 1, 0), (-1, 0, 1), (0, 1, 0), (0, 0, 1)])))
    with _w.catch_warnings(record=True) as seen:
        _w.simplefilter("always")
        m = sources.load(hot)
    assert m.class_names == ["eel", "pike"]
    assert any("column 'cod' holds 1s and 3 values between -1 and 1" in str(w.message) for w in seen)
    two = tmp_path / "two.csv"
    two.write_text("Image Path,IMAGE-PATH,label\ni0.png,i1.png,cod\ni2.png,i3.png,eel\n")
    with pytest.raises(ManifestError, match=r"columns 'Image Path' and 'IMAGE-PATH' both read as the path"):
        sources.load(two)
    # one of them spelled as the reader looks for it: that one, and a warning naming the other
    # (a first version refused them, and the command line has no flag to choose)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,Label,label\ni0.png,eel,cod\ni1.png,cod,eel\n")
    with pytest.warns(UserWarning, match=r"the label column is 'label'; 'Label' \(the same name"):
        assert sources.load(labels).label_names(0) == ["cod"]
    one = tmp_path / "one.csv"
    one.write_text("i0.png,cod\n")
    with pytest.raises(ManifestError, match="its first line looks like a row of data"):
        sources.load(one)


def test_a_quoted_path_in_a_list_is_read_without_its_quotes(tmp_path):
    # a name with a comma pasted from a spreadsheet ("bee, with comma.jpg") was not found, and the
    # message sent one to --root; drop lists took it already
    _png(tmp_path / "new" / "bee, with comma.png")
    listing = tmp_path / "list.txt"
    listing.write_text('"new/bee, with comma.png"\n\'new/gone.png\'\n')
    listed = sources.read_path_list(listing)
    assert listed.paths[0] == str(tmp_path / "new" / "bee, with comma.png") and listed.exists.tolist() == [True, False]
    assert listed.given[1] == "'new/gone.png'"  # a missing one is named as written


def test_a_file_listed_twice_under_two_spellings_is_one_file(tmp_path):
    # '../images/0.png' and the file's absolute path (and a path through a folder link) were two
    # files: one image with two labels, unnoticed
    real = tmp_path / "real"
    _png(real / "images" / "0.png")
    _png(real / "images" / "1.png")
    (real / "csvs").mkdir()
    (tmp_path / "link").symlink_to(real)
    for where in (real, tmp_path / "link"):
        listing = where / "csvs" / "labels.csv"
        listing.write_text(f"path,label\n../images/0.png,ants\n{where / 'images' / '0.png'},bees\n"
                           f"../images/1.png,bees\n{real / 'images' / '1.png'},ants\n")
        with pytest.raises(ManifestError, match=r"2 files are listed twice with different labels"):
            sources.load(listing)


def test_a_folder_link_repointed_between_reads_is_read_anew(tmp_path):
    # a first version cached each folder's resolved path for the process: after `current` was
    # repointed from v1 to v2, current/0.png and v1/0.png were one file (refused as listed twice)
    for version in ("v1", "v2"):
        _png(tmp_path / version / "0.png")
    (tmp_path / "current").symlink_to(tmp_path / "v1")
    listing = tmp_path / "labels.csv"
    listing.write_text("path,label\ncurrent/0.png,cod\n")
    sources.load(listing)
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to(tmp_path / "v2")
    listing.write_text("path,label\ncurrent/0.png,cod\nv1/0.png,eel\n")
    assert len(sources.load(listing)) == 2
