"""Tests for keras_species.data.audit: the report's figures, the saved files and clean()."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_species.data.audit import AuditReport, audit, clean, configure_parser
from keras_species.data.manifest import UNLABELLED, Manifest


def _folder_manifest(root: Path, classes=("cod", "eel", "ray")) -> Manifest:
    paths, labels = [], []
    for k, c in enumerate(classes):
        for p in sorted((root / c).iterdir()):
            paths.append(str(p))
            labels.append(k)
    return Manifest(paths, np.array(labels), list(classes), source=str(root))


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Manifest, dict[str, str]]:
    """Two classes: good RGB files plus one of each kind of trouble, and one exact duplicate."""
    root = tmp_path / "messy data"
    (root / "cod").mkdir(parents=True)
    (root / "eel").mkdir()
    files: dict[str, str] = {}
    rng = np.random.default_rng(1)
    for i in range(4):
        p = root / "cod" / f"cod {i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(p)
        files[f"cod{i}"] = str(p)
    for i in range(2):
        p = root / "eel" / f"anguille_é_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(p)
        files[f"eel{i}"] = str(p)
    dup = root / "eel" / "copy of cod 0.png"
    shutil.copyfile(files["cod0"], dup)
    files["dup"] = str(dup)
    empty = root / "eel" / "empty.jpg"
    empty.write_bytes(b"")
    files["empty"] = str(empty)
    text = root / "eel" / "notes.jpg"
    text.write_text("not an image")
    files["text"] = str(text)
    grey = root / "eel" / "grey.png"
    Image.new("L", (10, 12), 90).save(grey)
    files["grey"] = str(grey)
    cmyk = root / "cod" / "cmyk.jpg"
    Image.new("CMYK", (12, 12), (0, 255, 255, 0)).save(cmyk)
    files["cmyk"] = str(cmyk)
    gif = root / "cod" / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    files["gif"] = str(gif)
    pngjpg = root / "cod" / "really png.jpg"
    Image.new("RGB", (8, 8), (9, 9, 9)).save(pngjpg, format="PNG")
    files["pngjpg"] = str(pngjpg)
    cod = [files[k] for k in ("cod0", "cod1", "cod2", "cod3", "cmyk", "gif", "pngjpg")]
    eel = [files[k] for k in ("eel0", "eel1", "dup", "empty", "text", "grey")]
    m = Manifest(cod + eel, np.array([0] * len(cod) + [1] * len(eel)), ["cod", "eel"], source=str(root))
    return m, files


def test_audit_figures(messy):
    m, files = messy
    r = audit(m, progress=False, workers=3)
    assert r.n_images == 13
    assert r.class_counts == {"cod": 7, "eel": 6}
    assert r.readable_class_counts == {"cod": 7, "eel": 4}  # the empty file and the text file
    assert "| class | images | share | readable |" in r.to_markdown()
    # over the 11 readable images a run keeps, not the 13 rows: the two bad files are eels
    assert r.majority_label == "cod" and r.majority_baseline == pytest.approx(7 / 11, abs=1e-6)
    assert r.imbalance_ratio == pytest.approx(7 / 4, abs=1e-3)  # readable images, as the baseline
    corrupt = {c["path"]: c["reason"] for c in r.corrupt}
    assert set(corrupt) == {files["empty"], files["text"]}
    assert "0 bytes" in corrupt[files["empty"]] and "text" in corrupt[files["text"]]
    assert r.modes["RGB"] == 8 and r.modes["L"] == 1 and r.modes["CMYK"] == 1 and r.modes["P"] == 1
    assert r.formats["PNG"] == 7 and r.formats["JPEG"] == 3 and r.formats["GIF"] == 1
    assert {d["path"] for d in r.non_rgb} == {files["grey"], files["cmyk"], files["gif"]}
    assert [a["path"] for a in r.animated] == [files["gif"]]
    assert r.n_extension_mismatch == 1 and r.extension_mismatch[0]["path"] == files["pngjpg"]
    assert len(r.duplicates) == 1
    group = r.duplicates[0]
    assert sorted(group["paths"]) == sorted([files["cod0"], files["dup"]])
    assert group["conflicting_labels"] and sorted(group["labels"]) == ["cod", "eel"]
    assert r.size["width"]["min"] == 8 and r.size["width"]["max"] == 30
    assert r.n_resolutions == 5  # 30x20, 24x24, 10x12, 12x12, 8x8 (the gif and the png)
    assert r.cross_split_duplicates == []


def test_duplicates_across_splits(image_folder):
    m = _folder_manifest(image_folder)
    copy = Path(m.paths[0]).with_name("copy.png")
    shutil.copyfile(m.paths[0], copy)
    m = Manifest(m.paths + [str(copy)], np.append(m.labels, m.labels[0]), m.class_names)
    splits = ["train"] * (len(m) - 1) + ["test"]
    r = audit(m.with_splits(splits), progress=False)
    assert len(r.cross_split_duplicates) == 1
    assert sorted(r.cross_split_duplicates[0]["splits"]) == ["test", "train"]
    assert not r.duplicates[0]["conflicting_labels"]
    assert r.split_counts == {"test": 1, "train": len(m) - 1}
    assert any("leakage" in n for n in r.notes)
    # same copy, same split: a duplicate, but no leakage
    r2 = audit(m.with_splits(["train"] * len(m)), progress=False)
    assert len(r2.duplicates) == 1 and r2.cross_split_duplicates == []


def test_identical_corrupt_files_are_neither_duplicates_nor_leakage(image_folder):
    m = _folder_manifest(image_folder)
    cut = Path(m.paths[0]).with_name("cut.png")
    cut.write_bytes(Path(m.paths[0]).read_bytes()[:60])
    shutil.copyfile(cut, cut.with_name("cut_copy.png"))
    paths = m.paths + [str(cut), str(cut.with_name("cut_copy.png"))]
    m = Manifest(paths, np.append(m.labels, [0, 0]), m.class_names).with_splits(
        ["train"] * (len(paths) - 1) + ["test"])
    r = audit(m, progress=False)
    assert len(r.corrupt) == 2
    assert r.duplicates == [] and r.cross_split_duplicates == []  # clean drops both anyway
    assert not any("leakage" in n for n in r.notes)


def test_majority_baseline_with_unlabelled(image_folder):
    m = _folder_manifest(image_folder)  # 3 x 6
    labels = m.labels.copy()
    labels[:4] = UNLABELLED  # cod keeps 2, eel 6, ray 6
    r = audit(Manifest(m.paths, labels, m.class_names), progress=False)
    assert r.n_unlabelled == 4
    assert r.majority_baseline == pytest.approx(6 / 14, abs=1e-6)
    assert r.imbalance_ratio == pytest.approx(3.0)


def test_multilabel_baseline_and_cardinality(image_folder):
    m = _folder_manifest(image_folder)
    y = np.zeros((len(m), 3), np.uint8)
    y[:5, 0] = 1  # 5 x {cod}
    y[5:7, :2] = 1  # 2 x {cod, eel}
    # remaining 11 rows: no tag (the R4 "no tag" baseline)
    r = audit(Manifest(m.paths, y, m.class_names), progress=False)
    assert r.multilabel and r.n_unlabelled == 11
    assert r.majority_label == "" and r.majority_baseline == pytest.approx(11 / 18, abs=1e-6)
    assert r.label_cardinality == {"0": 11, "1": 5, "2": 2}
    assert r.class_counts == {"cod": 7, "eel": 2, "ray": 0}
    assert r.empty_classes == ["ray"] and r.imbalance_ratio == pytest.approx(3.5)
    Path(m.paths[5]).write_bytes(b"")  # a {cod, eel} image turns corrupt: one tag of each less
    r = audit(Manifest(m.paths, y, m.class_names), progress=False)
    assert r.class_counts == {"cod": 7, "eel": 2, "ray": 0}
    assert r.readable_class_counts == {"cod": 6, "eel": 1, "ray": 0}
    assert r.majority_label == "" and r.majority_baseline == pytest.approx(11 / 17, abs=1e-6)


def test_multilabel_share_is_the_share_of_images_carrying_the_tag(image_folder, tmp_path):
    m = _folder_manifest(image_folder)  # 18 images
    y = np.zeros((len(m), 3), np.uint8)
    y[:5, 0] = 1  # 5 x {cod}
    y[5:7, :2] = 1  # 2 x {cod, eel}: 9 tags on 7 tagged images, 18 images in all
    r = audit(Manifest(m.paths, y, m.class_names), tmp_path / "out", progress=False, plots=False)
    md = (tmp_path / "out" / "audit.md").read_text(encoding="utf-8")
    assert "| class | images | share of images |" in md
    assert "| cod | 7 | 38.9% |" in md and "| eel | 2 | 11.1% |" in md  # 7/18, 2/18 (not 7/9, 2/9)
    assert "shares may add up to more than 100%" in md
    assert r.class_counts == {"cod": 7, "eel": 2, "ray": 0}  # images carrying the tag
    Path(m.paths[0]).write_bytes(b"")  # a corrupt file adds the readable column
    md = audit(Manifest(m.paths, y, m.class_names), progress=False).to_markdown()
    assert "| class | images | share of images | readable |" in md and "| cod | 7 | 38.9% | 6 |" in md
    single = audit(m, progress=False).to_markdown()  # single-label keeps its share of labelled images
    assert "| class | images | share |" in single and "| cod | 6 | 33.3% |" in single


def _grouped_folder(root: Path) -> Path:
    """The conftest folder (groups 0-2 cod, 100-102 eel, 200-202 ray, two images each), then:
    one eel image in cod's group 0, a ray image without a tracking id, and ray's groups 201, 202
    removed (ray keeps group 200 and the file without an id: 2 groups)."""
    from tests.conftest import write_image_folder

    write_image_folder(root)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "eel" / "fish_0_9.png")
    Image.new("RGB", (8, 8), (4, 5, 6)).save(root / "ray" / "odd.png")
    for name in ("fish_201_1.png", "fish_201_4.png", "fish_202_2.png", "fish_202_5.png"):
        (root / "ray" / name).unlink()
    return root


def test_group_report_sizes_mixed_classes_missing_ids_few_groups_and_leakage(tmp_path):
    from keras_species.data import sources

    root = _grouped_folder(tmp_path / "fish")
    with pytest.warns(UserWarning, match="matched no group in 1 of 16"):
        m = sources.from_folder(root, group_regex=r"fish_(\d+)_")
    leak = Path(root / "eel" / "fish_100_3.png")
    m = m.with_splits(["test" if Path(p) == leak else "train" for p in m.paths])
    r = audit(m, tmp_path / "out", progress=False, plots=False)
    g = r.groups
    assert g["n_groups"] == 8  # 0 1 2 100 101 102 200 and odd.png on its own
    assert g["images_per_group"] == {"min": 1, "median": 2.0, "max": 3}
    assert g["largest"][0] == {"group": "0", "images": 3, "classes": {"cod": 2, "eel": 1}}
    assert [d["images"] for d in g["largest"]] == [3, 2, 2, 2, 2]
    assert g["n_mixed_label_groups"] == 1 and g["mixed_label_groups"] == [g["largest"][0]]
    assert g["n_without_id"] == 0 and g["n_own_group"] == 1
    assert g["groups_per_class"] == {"cod": 3, "eel": 4, "ray": 2}
    assert g["few_group_classes"] == {"ray": 2}
    assert g["n_cross_split_groups"] == 1
    assert g["cross_split_groups"] == [{"group": "100", "images": 2, "splits": {"test": 1, "train": 1}}]
    notes = " ".join(r.notes)
    assert "1 group(s) carry more than one class (e.g. 0 (cod, eel))" in notes
    assert "1 class has fewer than 3 groups" in notes and "ray (2)" in notes
    assert "1 group(s) sit on more than one split" in notes and "leakage" in notes
    doc = json.loads((tmp_path / "out" / "audit.json").read_text(encoding="utf-8"))
    assert doc["groups"] == g
    md = (tmp_path / "out" / "audit.md").read_text(encoding="utf-8")
    section = md.split("## Groups\n\n")[1].split("\n\n## ")[0]
    assert "| groups | 8 |" in section and "| images per group (min / median / max) | 1 / 2 / 3 |" in section
    assert "| `0` | 3 | cod 2, eel 1 |" in section  # largest groups and mixed groups
    assert "| ray | 2 |" in section and "| `100` | 2 | test 1, train 1 |" in section
    assert "| groups on more than one split (leakage) | 1 |" in section
    assert "| groups (e.g. tracking ids) | 8 |" in md  # the overview table
    line = [ln for ln in r.summary().splitlines() if ln.startswith("groups:")]
    assert line == ["groups: 8 (images per group min 1, median 2, max 3), with more than one class: 1, "
                    "images without id: 1, across splits: 1, classes with < 3 groups: 1"]


def test_group_report_is_null_without_groups(image_folder, tmp_path):
    r = audit(_folder_manifest(image_folder), tmp_path / "out", progress=False, plots=False)
    assert r.groups is None
    assert json.loads((tmp_path / "out" / "audit.json").read_text(encoding="utf-8"))["groups"] is None
    assert "## Groups" not in r.to_markdown()
    assert not any(ln.startswith("groups:") for ln in r.summary().splitlines())


def test_multilabel_group_report_counts_label_sets_and_empty_ids(image_folder):
    m = _folder_manifest(image_folder)  # 18 images
    y = np.zeros((len(m), 3), np.uint8)
    y[:, 0] = 1
    y[1, 1] = 1  # group a: {cod} {cod, eel} {cod}: two label sets
    groups = ["a", "a", "a", "b", "b", "b"] + [f"g{i}" for i in range(10)] + ["", ""]
    r = audit(Manifest(m.paths, y, m.class_names, groups=groups), progress=False)
    g = r.groups
    # an empty id is a group of its own (the manifest's rule since stop 33: it was one group)
    assert g["n_groups"] == 14 and g["n_without_id"] == 0 and g["n_own_group"] == 2
    assert g["images_per_group"] == {"min": 1, "median": 1.0, "max": 3}
    assert g["mixed_label_groups"] == [{"group": "a", "images": 3, "label_sets": {"cod": 2, "cod;eel": 1}}]
    assert g["largest"][0] == {"group": "a", "images": 3, "classes": {"cod": 3, "eel": 1}}
    assert g["groups_per_class"] == {"cod": 14, "eel": 1, "ray": 0}
    assert g["few_group_classes"] == {"eel": 1} and "n_cross_split_groups" not in g
    notes = " ".join(r.notes)
    assert "empty group id" not in notes
    assert "more than one class" not in notes  # different tags in one group: for information only
    md = r.to_markdown()
    assert "| groups with different label sets | 1 |" in md and "| `a` | 3 | cod 2, cod;eel 1 |" in md
    # before: a row "images with an empty group id (one group for a split) | 0", a rule gone since
    # stop 33 (such images are their own groups, the row below)
    assert "empty group id" not in md and "| images that are their own group" in md
    assert "images without id: 2" in r.summary()


def test_run_cli_prints_and_writes_the_group_report(image_folder, tmp_path, capsys):
    from keras_species import cli

    out = tmp_path / "audit"
    assert cli.main(["audit", str(image_folder), "--group-regex", r"fish_(\d+)_", "--out", str(out),
                     "--no-plots", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert ("groups: 9 (images per group min 2, median 2, max 2), with more than one class: 0, "
            "images without id: 0, classes with < 3 groups: 0") in text
    assert json.loads((out / "audit.json").read_text(encoding="utf-8"))["groups"]["n_groups"] == 9
    assert "## Groups" in (out / "audit.md").read_text(encoding="utf-8")


def test_save_writes_json_md_and_plots(messy, tmp_path):
    m, _ = messy
    out = tmp_path / "out"
    r = audit(m, out, progress=False)
    doc = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    for key in ("n_images", "class_counts", "modes", "formats", "size", "n_resolutions", "corrupt",
                "duplicates", "cross_split_duplicates", "imbalance_ratio", "majority_baseline",
                "non_rgb", "animated", "n_extension_mismatch", "n_unlabelled"):
        assert key in doc, key
    assert doc["n_images"] == 13 and doc["n_corrupt"] == 2 and "files" not in doc
    plots = out / "plots"
    for name in ("class_distribution.png", "resolutions.png", "samples_cod.png", "samples_eel.png"):
        assert (plots / name).stat().st_size > 1000, name
    md = (out / "audit.md").read_text(encoding="utf-8")
    assert "notes.jpg" in md and "Corrupt" in md and "samples_cod.png" in md
    assert (out / "files.csv").read_text(encoding="utf-8").count("\n") == 14
    assert r.plots and isinstance(r, AuditReport)


def test_sample_grids_are_capped(tmp_path, monkeypatch):
    from keras_species.data import audit as audit_mod

    monkeypatch.setattr(audit_mod, "MAX_SAMPLE_GRIDS", 2)
    root = tmp_path / "four"
    for c in ("a", "b", "c", "d"):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / c / f"{c}.png")
    m = _folder_manifest(root, ("a", "b", "c", "d"))
    r = audit(m, tmp_path / "out", progress=False)
    assert len(list((tmp_path / "out" / "plots").glob("samples_*.png"))) == 2
    assert any("2 largest of 4" in n for n in r.notes)
    assert "2 largest of 4" in (tmp_path / "out" / "audit.md").read_text(encoding="utf-8")


def test_no_plots(image_folder, tmp_path):
    audit(_folder_manifest(image_folder), tmp_path / "o", progress=False, plots=False)
    assert (tmp_path / "o" / "audit.json").exists() and not (tmp_path / "o" / "plots").exists()


def test_images_without_labels_get_one_line_instead_of_an_empty_class_table(messy, tmp_path):
    # an unlabelled path list (sources.from_path_list) has no classes
    from keras_species.data import sources

    m, files = messy
    listing = tmp_path / "new.txt"
    listing.write_text("\n".join(files[k] for k in ("cod0", "cod1", "eel0")) + "\n")
    audit(sources.load(listing), tmp_path / "out", progress=False, plots=False)
    md = (tmp_path / "out" / "audit.md").read_text(encoding="utf-8")
    classes = md.split("## Classes\n\n")[1].split("\n\n## ")[0]
    assert classes == ("The images have no labels: the source names no classes, so there are no "
                       "images per class to count.")
    assert "| unlabelled | 3 |" in md and "## Image modes and formats" in md  # the rest is kept
    labelled = audit(m, tmp_path / "labelled", progress=False, plots=False)
    assert "| class | images | share |" in labelled.to_markdown()


def test_clean_policies(messy):
    m, files = messy
    r = audit(m, progress=False)
    kept, dropped = clean(m, r)
    assert len(kept) == 11
    assert {d["path"] for d in dropped} == {files["empty"], files["text"]}
    assert all(d["reason"].startswith("corrupt") for d in dropped)
    kept2, dropped2 = clean(m, r, policy="drop_non_rgb")
    assert len(kept2) == 8
    assert {d["path"] for d in dropped2} >= {files["grey"], files["cmyk"], files["gif"]}
    assert all(Path(p).exists() for p in m.paths)  # nothing deleted from disk
    assert kept2.class_names == m.class_names and kept2.extra["cleaning"]["n_dropped"] == 5
    with pytest.raises(ValueError, match="drop_non_rgb"):
        clean(m, r, policy="delete")


def test_clean_warns_about_a_class_left_without_images(tmp_path):
    root = tmp_path / "d"
    for c in ("cod", "eel"):
        (root / c).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "cod" / "a.png")
    (root / "eel" / "empty.jpg").write_bytes(b"")
    (root / "eel" / "notes.jpg").write_text("not an image")
    m = _folder_manifest(root, ("cod", "eel"))
    with pytest.warns(UserWarning, match=r"1 class without any image: eel"):
        kept, dropped = clean(m, audit(m, progress=False))
    assert kept.class_names == ["cod", "eel"] and len(kept) == 1 and len(dropped) == 2
    assert kept.extra["cleaning"]["emptied_classes"] == ["eel"]


def test_clean_drop_list(messy, tmp_path):
    m, files = messy
    r = audit(m, progress=False)
    listing = tmp_path / "drop.txt"
    listing.write_text(
        "# R3-style cleaning list\n"
        "cod 1.png\n"  # a bare file name
        f"{files['eel0']}\n"  # a full path
        "eel/grey.png\n"  # a relative path
        "ghost.jpg\n",  # unknown
        encoding="utf-8",
    )
    with pytest.warns(UserWarning, match="ghost.jpg"):
        kept, dropped = clean(m, r, drop=listing)
    reasons = {d["path"]: d["reason"] for d in dropped}
    assert {files["cod1"], files["eel0"], files["grey"]} <= set(reasons)
    assert "drop list" in reasons[files["cod1"]]
    assert len(kept) == len(m) - 5  # 2 corrupt + 3 listed
    kept2, _ = clean(m, r, drop=[files["cod2"]])
    assert files["cod2"] not in kept2.paths
    with pytest.raises(FileNotFoundError, match="drop list"):
        clean(m, r, drop=str(tmp_path / "missing.txt"))


def _same_names_in_three_folders(root: Path) -> tuple[Manifest, AuditReport]:
    """fish_1.png in cod/, eel/ and ray/; fish_2.png in eel/; cod/fish_3.png and ray/a b.png."""
    rng = np.random.default_rng(3)
    for rel in ("cod/fish_1.png", "eel/fish_1.png", "ray/fish_1.png", "eel/fish_2.png",
                "cod/fish_3.png", "ray/a b.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / rel)
    m = _folder_manifest(root)
    return m, audit(m, progress=False)


def test_drop_list_entries_in_quotes_are_unquoted(tmp_path):
    m, r = _same_names_in_three_folders(tmp_path / "d")
    listing = tmp_path / "drop.txt"
    listing.write_text("\"eel/fish_2.png\"\n'a b.png'\n\"\"\n", encoding="utf-8")  # as pasted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every entry matches: no "matches no image" warning
        kept, dropped = clean(m, r, drop=listing)
    assert sorted(Path(d["path"]).name for d in dropped) == ["a b.png", "fish_2.png"]
    assert kept.extra["cleaning"]["unmatched_drop"] == []
    _, dropped = clean(m, r, drop=["'eel/fish_2.png'", '"a b.png"'])  # the Python list, too
    assert len(dropped) == 2
    with pytest.warns(UserWarning, match="no image"):  # one quote only: kept as written
        clean(m, r, drop=["'a b.png"])


def test_a_csv_drop_list_is_read_by_its_path_column_and_a_folder_is_named(tmp_path):
    m, r = _same_names_in_three_folders(tmp_path / "d")
    listing = tmp_path / "dropped.csv"  # as an audit writes it: path,reason
    listing.write_text('path,reason\n"eel/fish_2.png","corrupt: truncated, cut short"\n', encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: the whole line was one entry, matching nothing
        _, dropped = clean(m, r, drop=listing)
    assert [Path(d["path"]).name for d in dropped] == ["fish_2.png"]
    with pytest.raises(FileNotFoundError, match="drop list .* is a folder: pass a text file"):
        clean(m, r, drop=tmp_path / "d")


def test_bare_drop_name_in_several_folders_is_dropped_everywhere_with_a_warning(tmp_path):
    m, r = _same_names_in_three_folders(tmp_path / "d")
    listing = tmp_path / "drop.txt"
    listing.write_text("# cleaning list\nfish_1.png\nfish_2.png\n", encoding="utf-8")
    with pytest.warns(UserWarning) as caught:
        kept, dropped = clean(m, r, drop=listing)
    assert len(dropped) == 4 and len(kept) == 2  # today's rule: the name in every folder
    named = [str(w.message) for w in caught if "bare file name" in str(w.message)]
    assert len(named) == 1  # one warning; fish_2.png is in one folder only: not named in it
    text = named[0]
    assert str(listing) in text and "'fish_1.png' (line 2: 3 files, in cod, eel, ray)" in text
    assert "fish_2.png" not in text and "'cod/fish_1.png'" in text
    with pytest.warns(UserWarning, match=r"'fish_1\.png' \(entry 1: 3 files"):
        clean(m, r, drop=["fish_1.png"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, dropped = clean(m, r, drop=["eel/fish_1.png"])  # the class/file form picks one
    assert [d["path"] for d in dropped] == [str(tmp_path / "d" / "eel" / "fish_1.png")]


def test_cli_parser_defaults():
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args([])
    assert args.data == "demo" and args.policy == "convert" and not args.no_plots
    args = parser.parse_args(["folder", "--out", "o", "--policy", "drop_non_rgb", "--no-plots",
                              "--clean-manifest", "c.csv", "--drop-list", "d.txt", "--workers", "2"])
    assert (args.out, args.policy, args.clean_manifest, args.workers) == ("o", "drop_non_rgb", "c.csv", 2)


@pytest.mark.shared_data
def test_hymenoptera_audit(shared_data, tmp_path):
    root = shared_data / "hymenoptera"
    if not root.is_dir():
        pytest.skip("hymenoptera is absent from ../shared/data")
    m = _folder_manifest(root, ("ants", "bees"))
    r = audit(m, tmp_path / "audit", progress=False, plots=False)
    gif = str(root / "ants" / "imageNotFound.gif")
    assert {"path": gif, "mode": "P"} in r.non_rgb
    assert r.corrupt == []
    spaced = [p for p in m.paths if " " in Path(p).name]
    assert spaced and all(r.files[p].ok for p in spaced)
    assert r.n_images == len(m) and r.modes.get("P", 0) >= 1
    kept, dropped = clean(m, r, policy="drop_non_rgb")
    assert gif in {d["path"] for d in dropped} and len(kept) == len(m) - len(r.non_rgb)


def test_run_cli_writes_report_and_clean_manifest(messy, tmp_path, monkeypatch, capsys):
    import sys
    import types

    import keras_species.data as data_pkg
    from keras_species.data import sources
    from keras_species.data.audit import run_cli

    m, files = messy
    calls = []
    fake = types.ModuleType("keras_species.data.sources")

    def load(source, **kw):
        calls.append((source, kw))
        return m

    fake.load = load
    fake.add_source_arguments, fake.source_options = sources.add_source_arguments, sources.source_options
    fake.check_output_place, fake.unquote = sources.check_output_place, sources.unquote
    monkeypatch.setitem(sys.modules, "keras_species.data.sources", fake)
    monkeypatch.setattr(data_pkg, "sources", fake, raising=False)
    drop = tmp_path / "drop.txt"
    drop.write_text("cod 3.png\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    out, cleaned_csv = tmp_path / "report", tmp_path / "clean.csv"
    args = parser.parse_args([m.source, "--out", str(out), "--policy", "drop_non_rgb", "--no-plots",
                              "--no-progress", "--drop-list", str(drop), "--group-regex", r"(\d)",
                              "--clean-manifest", str(cleaned_csv)])
    assert run_cli(args) == 0
    assert calls == [(m.source, {"group_regex": r"(\d)"})]
    text = capsys.readouterr().out
    assert "13 images" in text and "corrupt: 2" in text and "audit.md" in text
    assert "keeps 7, drops 6" in text
    cleaned = Manifest.from_csv(cleaned_csv)
    assert len(cleaned) == 7 and files["cod3"] not in cleaned.paths
    assert (out / "audit.json").exists() and (out / "dropped.csv").exists()


def test_run_cli_on_a_csv_with_a_missing_file_says_which_flag_skips_it(tmp_path, capsys):
    from keras_species.data.audit import run_cli

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.png,cod\ngone.png,cod\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    common = ["--out", str(tmp_path / "audit"), "--no-plots", "--no-progress"]
    assert run_cli(parser.parse_args([str(listing), *common])) == 2
    err = capsys.readouterr().err
    assert "gone.png" in err and "--on-missing skip" in err
    with pytest.warns(UserWarning, match="skipped 1 row whose file does not exist"):
        assert run_cli(parser.parse_args([str(listing), *common, "--on-missing", "skip"])) == 0
    assert "1 image, 1 class (single-label)" in capsys.readouterr().out  # it said "1 images"


def test_run_cli_says_a_class_that_cleaning_empties_once(tmp_path, capsys):
    # before: a warning "cleaning leaves 1 class(es) without any image: eel ..." and then the
    # clean line "...; classes left without images: eel": the same fact twice
    import warnings

    from keras_species.data.audit import run_cli

    for name, good in (("cod", True), ("eel", False)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(2):
            path = tmp_path / "data" / name / f"{i}.png"
            if good:
                Image.new("RGB", (8, 8), (i, 0, 0)).save(path)
            else:
                path.write_bytes(b"")
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert run_cli(parser.parse_args([str(tmp_path / "data"), "--out", str(tmp_path / "a"),
                                          "--no-plots", "--no-progress"])) == 0
    assert not [w for w in seen if "without any image" in str(w.message)]
    out = capsys.readouterr().out
    assert out.count("eel") == 1 and ("; classes left without images: eel (a model trained on the "
                                      "cleaned data would still get an output for it") in out


def test_command_with_an_output_folder_that_cannot_be_made(image_folder, tmp_path, capsys):
    from keras_species import cli

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert cli.main(["audit", str(image_folder), "--out", str(blocker / "audit")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-species audit: ") and "a_file" in err and "Traceback" not in err
    assert "(--out) cannot be written" in err  # the flag is named, not a bare [Errno 20]


@pytest.mark.parametrize(("extra", "match"), [
    (["--drop-list", "{tmp}/missing.txt"], "drop list .*missing.txt not found"),
    (["--clean-manifest", "{tmp}"], r"\(--clean-manifest\) is a folder: give a file name"),
    (["--clean-manifest", "{tmp}/a_file/clean.csv"], r"\(--clean-manifest\) cannot be written: .*a_file is a file"),
    (["--out", "{tmp}/a_file"], r"a_file \(--out\) is a file"),
])
def test_outputs_and_inputs_that_cannot_work_fail_before_the_scan(image_folder, tmp_path, capsys,
                                                                   monkeypatch, extra, match):
    from keras_species import cli
    from keras_species.data import audit as audit_mod

    (tmp_path / "a_file").write_text("x")
    monkeypatch.setattr(audit_mod, "audit", lambda *a, **k: pytest.fail("scanned before failing"))
    argv = ["audit", str(image_folder), "--out", str(tmp_path / "audit"), "--no-plots", "--no-progress"]
    assert cli.main(argv + [e.format(tmp=tmp_path) for e in extra]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_a_source_with_no_images_left_is_not_audited(tmp_path, capsys):
    from keras_species import cli

    listing = tmp_path / "list.csv"
    listing.write_text("path,label\ngone.png,cod\nalso_gone.png,eel\n", encoding="utf-8")
    code = cli.main(["audit", str(listing), "--on-missing", "skip", "--out", str(tmp_path / "a"),
                     "--no-plots", "--no-progress"])
    assert code == 2  # skipping every missing file would leave nothing: refused when read
    assert "skipping the missing files (--on-missing skip) leaves none of the rows" in capsys.readouterr().err
    assert not (tmp_path / "a" / "audit.json").exists()
    (tmp_path / "empty.csv").write_text("path,label\n", encoding="utf-8")  # no rows at all
    assert cli.main(["audit", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "b"),
                     "--no-plots", "--no-progress"]) == 2
    assert "has a header but no rows" in capsys.readouterr().err


def _two_class_folder(root: Path, classes: tuple[str, str], grey: bool = False) -> Path:
    """Two class folders of two small RGB images (and a grey one in the second with ``grey``)."""
    rng = np.random.default_rng(5)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / c / f"{c}_{i}.png")
    if grey:
        Image.new("L", (10, 12), 90).save(root / classes[1] / "grey.png")
    return root


def test_rerun_into_the_same_out_replaces_the_earlier_audit_and_keeps_other_files(tmp_path, capsys):
    import csv

    from keras_species import cli

    first = _two_class_folder(tmp_path / "first", ("cod", "eel"), grey=True)
    second = _two_class_folder(tmp_path / "second", ("ray", "eel"))
    out = tmp_path / "audit"
    common = ["--out", str(out), "--no-progress"]
    assert cli.main(["audit", str(first), *common, "--policy", "drop_non_rgb"]) == 0
    assert "grey.png" in (out / "dropped.csv").read_text(encoding="utf-8")
    assert (out / "plots" / "samples_cod.png").exists()
    (out / "my notes.txt").write_text("mine")  # the user's own files in the folder stay
    (out / "plots" / "my_plot.png").write_bytes(b"mine")
    capsys.readouterr()

    assert cli.main(["audit", str(second), *common]) == 0
    text = capsys.readouterr().out
    assert "drops 0" in text and "dropped files and reasons" not in text
    with open(out / "dropped.csv", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["path", "reason"]]  # this run's: nothing dropped
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["class_distribution.png", "my_plot.png", "resolutions.png", "samples_eel.png",
                     "samples_ray.png"]  # cod is not in the new data: its grid is gone
    assert "removed 1 of its file(s) that this audit does not write (plots/samples_cod.png)" in text
    md = (out / "audit.md").read_text(encoding="utf-8")
    assert "![samples_ray.png](plots/samples_ray.png)" in md and "![samples_cod.png]" not in md
    assert (out / "my notes.txt").read_text() == "mine"

    assert cli.main(["audit", str(second), *common, "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "removed 4 of its file(s)" in text
    assert [p.name for p in (out / "plots").iterdir()] == ["my_plot.png"]  # the folder stays for it
    assert json.loads((out / "audit.json").read_text(encoding="utf-8"))["plots"] == []
    assert "](plots/" not in (out / "audit.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "audit.md", "dropped.csv", "files.csv",
                                                     "my notes.txt", "plots"]


def test_audit_from_python_removes_an_earlier_dropped_csv_and_plots_it_does_not_write(image_folder, tmp_path):
    out = tmp_path / "audit"
    (out / "plots").mkdir(parents=True)
    for rel in ("dropped.csv", "plots/resolutions.png", "plots/samples_ants.png", "keep.csv",
                "plots.txt", "audit.json.bak"):
        (out / rel).write_text("from before")
    r = audit(_folder_manifest(image_folder), out, progress=False, plots=False)
    # no cleaning here: an earlier dropped.csv would describe another run's cleaning
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "audit.json.bak", "audit.md",
                                                     "files.csv", "keep.csv", "plots.txt"]
    note = [n for n in r.notes if n.startswith("replaced")]
    assert note == ["replaced an earlier audit in this folder: removed 3 of its file(s) that this audit "
                    "does not write (dropped.csv, plots/resolutions.png, plots/samples_ants.png)"]
    assert note[0] in (out / "audit.md").read_text(encoding="utf-8")
    r2 = audit(_folder_manifest(image_folder), out, progress=False, plots=False)
    assert not any(n.startswith("replaced") for n in r2.notes)  # nothing left to remove


def test_earlier_outputs_stay_when_the_new_report_fails_midway(image_folder, tmp_path, monkeypatch):
    from keras_species.data import audit as audit_mod

    out = tmp_path / "audit"
    (out / "plots").mkdir(parents=True)
    (out / "dropped.csv").write_text("path,reason\nold.png,corrupt\n")
    (out / "plots" / "samples_ants.png").write_bytes(b"old")
    m = _folder_manifest(image_folder)
    report = audit(m, progress=False)

    def broken(self):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(audit_mod.AuditReport, "to_markdown", broken)
    with pytest.raises(RuntimeError, match="disk trouble"):
        report.save(out, m, plots=False)
    assert (out / "dropped.csv").read_text() == "path,reason\nold.png,corrupt\n"
    assert (out / "plots" / "samples_ants.png").read_bytes() == b"old"
    assert not list(out.glob(".*tmp-*"))  # no temporary file left behind


def _unwritable(monkeypatch, folder: Path, read_only_fs: bool = False) -> None:
    """Make ``os.access`` say ``folder`` cannot be written (and ``statvfs`` that it sits on a
    read-only file system with ``read_only_fs``): tests run as root, where chmod does not bite."""
    real_access, real_statvfs = os.access, os.statvfs

    def access(path, mode, *a, **k):
        if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *a, **k)

    def statvfs(path):
        if read_only_fs and Path(path).resolve() == folder.resolve():
            return argparse.Namespace(f_flag=os.ST_RDONLY)
        return real_statvfs(path)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "statvfs", statvfs)


@pytest.mark.parametrize(("flag", "given", "blocked", "read_only_fs", "reason"), [
    ("--clean-manifest", "ro/c.csv", "ro", False, "Permission denied"),
    ("--clean-manifest", "ro/c.csv", "ro", True, "Read-only file system"),
    ("--out", "ro_audit", "ro_audit", False, "Permission denied"),
    ("--out", "ro_audit", "ro_audit", True, "Read-only file system"),
    ("--out", "ro_audit", "ro_audit/plots", False, "Permission denied"),  # an earlier audit's plots/
])
def test_an_output_that_cannot_be_written_is_refused_before_the_scan(image_folder, tmp_path, capsys, monkeypatch,
                                                                     flag, given, blocked, read_only_fs, reason):
    from keras_species import cli
    from keras_species.data import audit as audit_mod

    (tmp_path / blocked).mkdir(parents=True)
    _unwritable(monkeypatch, tmp_path / blocked, read_only_fs)
    monkeypatch.setattr(audit_mod, "audit", lambda *a, **k: pytest.fail("scanned before failing"))
    argv = ["audit", str(image_folder), "--out", str(tmp_path / "audit"), "--no-plots", "--no-progress"]
    argv += [flag, str(tmp_path / given)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    target = tmp_path / (blocked if blocked.endswith("plots") else given)
    assert err.strip() == (f"keras-species audit: {target} ({flag}) cannot be written ({reason}): give "
                           f"another {flag}, in a folder you can write to that has free space")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a chmod 0o555 folder anyway")
def test_a_read_only_folder_is_refused_before_the_scan(image_folder, tmp_path, capsys, monkeypatch):
    from keras_species import cli
    from keras_species.data import audit as audit_mod

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.setattr(audit_mod, "audit", lambda *a, **k: pytest.fail("scanned before failing"))
    try:
        assert cli.main(["audit", str(image_folder), "--out", str(tmp_path / "a"), "--no-progress",
                         "--clean-manifest", str(ro / "c.csv")]) == 2
        assert "(--clean-manifest) cannot be written (Permission denied)" in capsys.readouterr().err
        assert cli.main(["audit", str(image_folder), "--out", str(ro / "audit"), "--no-progress"]) == 2
        assert "(--out) cannot be written" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_a_clean_manifest_in_a_folder_that_cannot_be_made_is_one_line(image_folder, tmp_path, capsys, monkeypatch):
    # before: "[Errno 13] .../ro/sub/clean.csv (--clean-manifest) cannot be written: no permission
    # to make .../ro/sub"; tests run as root, where chmod does not bite: mkdir is refused instead
    from keras_species import cli
    from keras_species.data import audit as audit_mod

    ro = tmp_path / "ro"
    ro.mkdir()
    target = ro / "sub" / "clean.csv"
    mkdir = Path.mkdir

    def refuse_in_ro(self, *args, **kwargs):
        if self.is_relative_to(ro):
            raise PermissionError(13, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_in_ro)
    monkeypatch.setattr(audit_mod, "audit", lambda *a, **k: pytest.fail("scanned before failing"))
    assert cli.main(["audit", str(image_folder), "--out", str(tmp_path / "a"), "--no-plots", "--no-progress",
                     "--clean-manifest", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species audit: {target} (--clean-manifest) cannot be written (Permission denied): give "
        "another --clean-manifest, in a folder you can write to that has free space\n")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a chmod 0o555 folder anyway")
def test_a_clean_manifest_below_a_read_only_folder_is_one_line(image_folder, tmp_path, capsys):
    from keras_species import cli

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli.main(["audit", str(image_folder), "--out", str(tmp_path / "a"), "--no-progress",
                         "--clean-manifest", str(ro / "sub" / "clean.csv")]) == 2
    finally:
        ro.chmod(0o755)
    assert capsys.readouterr().err == (
        f"keras-species audit: {ro / 'sub' / 'clean.csv'} (--clean-manifest) cannot be written (Permission "
        "denied): give another --clean-manifest, in a folder you can write to that has free space\n")


@pytest.mark.parametrize(("extra", "match"), [
    (["--clean-manifest", "{tmp}"], r"\(--clean-manifest\) is a folder: give a file name, e.g. .*clean.csv"),
    (["--clean-manifest", "{tmp}/new/"], r"new/ \(--clean-manifest\) names a folder \(it ends with /\)"),
    (["--clean-manifest", "{tmp}/a_file/clean.csv"], r"\(--clean-manifest\) cannot be written: .*a_file is a file"),
    (["--out", "{tmp}/a_file"], r"a_file \(--out\) is a file"),
])
def test_an_output_of_the_wrong_kind_is_refused_before_the_data_is_read(image_folder, tmp_path, capsys,
                                                                        source_loads, extra, match):
    # before: an existing folder given as --clean-manifest was refused after reading the data
    from keras_species import cli

    (tmp_path / "a_file").write_text("x")
    argv = ["audit", str(image_folder), "--out", str(tmp_path / "audit"), "--no-plots", "--no-progress"]
    assert cli.main(argv + [e.format(tmp=tmp_path) for e in extra]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert source_loads == [] and not (tmp_path / "audit").exists() and not (tmp_path / "new").exists()


def _oversized_folder(root: Path) -> Manifest:
    """cod: two small images; eel: one over a 10,000-pixel limit by less than twice (PIL warns)
    and one by more (PIL refuses)."""
    for cls, sizes in (("cod", [(40, 30), (30, 40)]), ("eel", [(120, 100), (300, 100)])):
        (root / cls).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, (i * 40, 80, 120)).save(root / cls / f"{cls}_{i}.png")
    return _folder_manifest(root, ("cod", "eel"))


def test_oversized_images_audited_with_threads_are_reported_without_pils_warning(tmp_path):
    # the audit's own catch_warnings scope around the probe pool is gone: the reader's
    # (images.pil_warnings_silenced, around Image.open) covers every probe
    from keras_species.data import images

    m = _oversized_folder(tmp_path / "big")
    old = images.get_max_pixels()
    try:
        images.set_max_pixels(10_000)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = audit(m, workers=3, progress=False)
    finally:
        images.set_max_pixels(old)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    corrupt = {Path(c["path"]).name: c["reason"] for c in report.corrupt}
    assert sorted(corrupt) == ["eel_0.png", "eel_1.png"], corrupt
    assert corrupt["eel_0.png"].startswith("120x100 = 12,000 pixels is over the decompression-bomb "
                                           "limit of 10,000 pixels")
    assert "decompression-bomb limit" in corrupt["eel_1.png"]


def test_an_audit_leaves_the_warning_filters_as_they_were(tmp_path, monkeypatch):
    # before: audit's catch_warnings scope around the pool, entered while another thread read an
    # image (its pil_warnings_silenced scope open), restored that thread's "ignore" filter on
    # exit: PIL's DecompressionBombWarning stayed silenced for the rest of the process
    import threading

    from keras_species.data import audit as audit_mod
    from keras_species.data import images
    from tests.conftest import write_image_folder

    m = _folder_manifest(write_image_folder(tmp_path / "fish", per_class=2))
    reading, probing = threading.Event(), threading.Event()

    def another_reader():  # a data pipeline reading an image as the audit starts
        with images.pil_warnings_silenced(Image.DecompressionBombWarning):
            reading.set()
            probing.wait(10)

    real_probe = audit_mod.probe

    def probe(path):
        probing.set()
        return real_probe(path)

    monkeypatch.setattr(audit_mod, "probe", probe)
    before = list(warnings.filters)
    reader = threading.Thread(target=another_reader)
    reader.start()
    assert reading.wait(10)
    audit(m, workers=2, progress=False)
    reader.join(10)
    assert warnings.filters == before


def test_clean_warns_of_an_emptied_class_unless_told_not_to(messy):
    # prepare_data says it once, in its error (fewer than 2 classes left) or by this warning
    from keras_species.data.audit import warn_emptied_classes

    m, _ = messy
    drop = [p for p, label in zip(m.paths, m.labels) if m.class_names[label] == "eel"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cleaned, _ = clean(m, AuditReport(), drop=drop, warn_emptied=False)
    assert cleaned.extra["cleaning"]["emptied_classes"] == ["eel"]
    assert not [w for w in caught if "without any image" in str(w.message)]
    with pytest.warns(UserWarning, match=r"cleaning leaves 1 class without any image: eel"):
        warn_emptied_classes(cleaned)


def test_run_cli_counts_oversized_images_apart_and_says_how_to_read_them(tmp_path, capsys):
    # before: listed as corrupt with the limit only; the command did not say that --max-pixels
    # reads them (split, shard and predict did), and audit.md and dropped.csv did not either
    from keras_species import cli
    from keras_species.data import images

    _oversized_folder(tmp_path / "big")
    (tmp_path / "big" / "cod" / "empty.png").write_bytes(b"")  # truly corrupt
    Image.new("RGB", (20, 20)).save(tmp_path / "big" / "eel" / "small.png")  # eel keeps one
    out = tmp_path / "audit"
    before = images.get_max_pixels()
    assert cli.main(["audit", str(tmp_path / "big"), "--out", str(out), "--no-plots",
                     "--no-progress", "--max-pixels", "10000"]) == 0
    assert images.get_max_pixels() == before  # --max-pixels held for the command only
    text = capsys.readouterr().out
    hint = ("2 files are over the decompression-bomb limit of 10,000 pixels (the largest: 30,000 "
            "pixels): if you trust them, pass --max-pixels 30000 to read them, or resize them")
    assert hint in text.splitlines()
    assert "corrupt: 3 (2 of them over the decompression-bomb limit, not decoded)" in text
    doc = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert doc["n_corrupt"] == 3 and len(doc["corrupt"]) == 3  # kept as they were
    assert doc["n_oversized"] == 2 and doc["max_pixels"] == 10_000
    assert {Path(o["path"]).name: o["pixels"] for o in doc["oversized"]} == {
        "eel_0.png": 12_000, "eel_1.png": 30_000}
    md = (out / "audit.md").read_text(encoding="utf-8")
    assert hint[1:] in md and "set_max_pixels(30000)" in md
    assert "| of them over the decompression-bomb limit, not decoded | 2 |" in md
    dropped = (out / "dropped.csv").read_text(encoding="utf-8")
    assert "--max-pixels 12000" in dropped and "set_max_pixels(30000)" in dropped
    empty_row = next(line for line in dropped.splitlines() if "empty.png" in line)
    assert empty_row.endswith(",corrupt: empty file (0 bytes)")


def test_a_report_read_back_names_the_limit_its_scan_applied(tmp_path):
    from keras_species.data import images

    m = _oversized_folder(tmp_path / "big")
    with images.using_max_pixels(10_000):
        report = audit(m, progress=False)
    # the process's limit is PIL's again: the hint still names the one the files were over
    assert report.oversized_hint(flag="max_pixels=").startswith(
        "2 files are over the decompression-bomb limit of 10,000 pixels")
    again = AuditReport(**{k: v for k, v in report.to_dict().items()
                           if k in AuditReport.__dataclass_fields__})
    assert again.oversized == report.oversized and again.oversized_hint() == report.oversized_hint()
    assert AuditReport(corrupt=[{"path": "a.png", "reason": "empty file (0 bytes)"}]).oversized_hint() == ""


@pytest.mark.slow
def test_audit_of_a_90_megapixel_png_at_the_default_limit_prints_the_hint(tmp_path, capsys):
    # the new user's case: a 10000x9000 PNG (one colour: it compresses to a few hundred KB)
    from keras_species import cli

    for cls in ("cod", "eel"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16), (10, 20, 30) if cls == "cod" else (30, 20, 10)).save(
            tmp_path / "data" / cls / "small.png")
    Image.new("RGB", (10_000, 9_000), (0, 90, 160)).save(tmp_path / "data" / "cod" / "big.png")
    assert cli.main(["audit", str(tmp_path / "data"), "--out", str(tmp_path / "audit"),
                     "--no-plots", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert ("1 file is over the decompression-bomb limit of 89,478,485 pixels (90,000,000 "
            "pixels): if you trust it, pass --max-pixels 90000000 to read it, or resize it") in text
    assert "corrupt: 1 (1 of them over the decompression-bomb limit, not decoded)" in text


def test_the_count_read_through_pil_is_what_the_pipeline_does(tmp_path: Path) -> None:
    # before: counted by image mode, so a grey PNG (TensorFlow decodes it) counted and a 16-bit
    # RGB PNG (PIL reads it) did not
    from keras_species.data import sources
    from keras_species.data.pipeline import KIND_PIL, check_files

    (tmp_path / "d" / "a").mkdir(parents=True)
    Image.new("L", (12, 10), 90).save(tmp_path / "d" / "a" / "grey.png")
    Image.new("L", (12, 10), 30).save(tmp_path / "d" / "a" / "grey2.png")
    Image.new("RGB", (12, 10), (9, 9, 9)).save(tmp_path / "d" / "a" / "rgb.png")
    Image.new("RGBA", (12, 10)).save(tmp_path / "d" / "a" / "alpha.png")
    import tensorflow as tf

    tf.io.write_file(str(tmp_path / "d" / "a" / "rgb16.png"),
                     tf.io.encode_png(tf.zeros((10, 12, 3), tf.uint16)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sources.load(tmp_path / "d")
        report = audit(m, str(tmp_path / "out"), plots=False)
    assert report.n_needs_conversion == 2 == int(np.sum(check_files(m.paths)[0] == KIND_PIL))


def test_cli_audit_of_a_saved_split_whose_data_moved_stops_and_says_so(image_folder, tmp_path, capsys):
    # before: exit 0, with a report of 18 corrupt files ("file not found")
    import shutil

    from keras_species import cli

    saved = str(tmp_path / "split.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["split", str(image_folder), "--out", saved]) == 0
    shutil.move(str(image_folder), str(tmp_path / "moved"))
    capsys.readouterr()
    assert cli.main(["audit", saved, "--out", str(tmp_path / "a"), "--no-plots", "--no-progress"]) == 2
    assert "none of the 18 image files that" in capsys.readouterr().err
    assert not (tmp_path / "a" / "audit.json").exists()


def test_plots_draw_names_with_tabs_and_dollars_without_warnings(tmp_path):
    data = tmp_path / "d"
    for c in ("co\td", "e$l$"):  # a tab has no glyph; $...$ is matplotlib's math mode
        (data / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 10), (i * 90, 40, 9)).save(data / c / f"a\tb${i}$.png")
    m = _folder_manifest(data, classes=("co\td", "e$l$"))
    r = audit(m, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: "Glyph 9 (\t) missing from font(s)"
        r.save(tmp_path / "out", manifest=m)
    assert (tmp_path / "out" / "plots" / "class_distribution.png").is_file()


def test_audit_md_names_tag_free_duplicates(image_folder):
    m = _folder_manifest(image_folder)
    copy = Path(m.paths[0]).with_name("copy.png")
    shutil.copyfile(m.paths[0], copy)
    labels = np.zeros((len(m) + 1, 3), np.uint8)
    labels[-1, 1] = 1  # the copy carries eel; the original no tag
    md = audit(Manifest(m.paths + [str(copy)], labels, m.class_names), progress=False).to_markdown()
    assert "| no tag / eel | yes |" in md  # before: "|  / eel | yes |"


def test_an_out_dir_that_is_a_file_and_an_image_as_drop_list_are_named_first(image_folder, tmp_path, monkeypatch):
    import keras_species.data.audit as audit_mod

    m = _folder_manifest(image_folder)
    (tmp_path / "f").write_text("x")
    monkeypatch.setattr(audit_mod, "probe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("probed")))
    with pytest.raises(FileExistsError, match="is a file: give a folder"):  # before: after the scan
        audit(m, out_dir=tmp_path / "f", progress=False)
    monkeypatch.undo()
    r = audit(m, progress=False)
    with pytest.raises(ValueError, match="is an image, not a list"):  # it said "not UTF-8 text"
        clean(m, r, drop=m.paths[0])


def test_plots_of_thousands_of_classes_draw_one_curve_and_no_dense_label_matrix(tmp_path, monkeypatch):
    # stop 30: a bar and a tick per class took 19 of 24 s at 5,000 classes, and the sample grids
    # built a dense images x classes matrix (200 MB at 40,000 x 5,000) to pick 30 classes' rows
    import matplotlib.axes

    from keras_species.data.audit import _write_plots

    report = AuditReport()
    report.class_counts = {f"c{i}": 1 + (i % 7) for i in range(2000)}
    ticks = []
    real = matplotlib.axes.Axes.set_yticks
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks",
                        lambda self, t, *a, **k: ticks.append(len(t)) or real(self, t, *a, **k))
    written, _ = _write_plots(report, None, str(tmp_path))
    assert "plots/class_distribution.png" in written and (tmp_path / "class_distribution.png").is_file()
    assert not any(n > 150 for n in ticks)
    monkeypatch.setattr(Manifest, "label_matrix", lambda self: pytest.fail("dense label matrix built"))
    folder = tmp_path / "imgs"
    for c in ("cod", "eel"):
        (folder / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 90, 0, 0)).save(folder / c / f"{i}.png")
    report = audit(_folder_manifest(folder, ("cod", "eel")), tmp_path / "out", progress=False)
    assert report.n_images == 4 and (tmp_path / "out" / "plots" / "samples_cod.png").is_file()


def test_an_interrupted_re_audit_leaves_the_earlier_plots_with_the_earlier_report(image_folder, tmp_path,
                                                                                  monkeypatch):
    # before: the plots were drawn in place first, so Ctrl-C during the sample grids left the new
    # class distribution beside the earlier audit.json
    from keras_species.data import audit as audit_mod

    out = tmp_path / "audit"
    m = _folder_manifest(image_folder)
    audit(m, progress=False).save(out, m)
    before = {p.name: p.read_bytes() for p in (out / "plots").iterdir()}
    report_before = (out / "audit.json").read_bytes()
    real = audit_mod._savefig
    drawn = []

    def interrupted(fig, path, **kw):
        if drawn:
            raise KeyboardInterrupt
        drawn.append(path)
        real(fig, path, **kw)

    monkeypatch.setattr(audit_mod, "_savefig", interrupted)
    report = audit(m.subset(list(range(len(m) - 1))), progress=False)
    with pytest.raises(KeyboardInterrupt):
        report.save(out, m)
    assert drawn and {p.name: p.read_bytes() for p in (out / "plots").iterdir()} == before
    assert (out / "audit.json").read_bytes() == report_before
    assert not list(out.glob("**/.*tmp-*"))  # the staged plots are gone
    monkeypatch.setattr(audit_mod, "_savefig", real)
    report.save(out, m)  # and a full save moves its plots in
    assert json.loads((out / "audit.json").read_text())["n_images"] == len(m) - 1
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(before)


def test_plots_on_another_file_system_are_staged_there(image_folder, tmp_path):
    # a first version staged the plots beside plots/ and moved them in with os.replace, which
    # fails across file systems ("Invalid cross-device link") when plots/ links elsewhere
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to link plots/ to")
    out = tmp_path / "audit"
    out.mkdir()
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        (out / "plots").symlink_to(elsewhere)
        m = _folder_manifest(image_folder)
        audit(m, progress=False).save(out, m)
        assert (out / "audit.json").is_file() and (Path(elsewhere) / "class_distribution.png").is_file()
        assert not list(Path(elsewhere).glob(".*tmp-*"))


def test_a_long_class_name_gets_a_short_grid_file_and_the_report_is_written(tmp_path):
    # 240 characters (or 80 CJK ones) made samples_<name>.png too long a file name: the audit
    # failed and left no report
    from tests.conftest import write_image_folder

    long_a, long_b = "a" * 240, "鱼" * 90 + "x"
    root = write_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=2)
    paths = sorted(str(p) for p in root.glob("*/*.png"))
    m = Manifest(paths, np.repeat([0, 1, 2], 2), [long_a, long_b, "cod"])  # a CSV's labels
    report = audit(m, tmp_path / "out", progress=False)
    grids = sorted(p.name for p in (tmp_path / "out" / "plots").glob("samples_*.png"))
    assert len(grids) == 3 and all(len(g.encode()) <= 120 for g in grids)
    assert (tmp_path / "out" / "audit.json").is_file() and report.n_images == 6
    from keras_species.data.audit import _safe_name

    assert _safe_name(long_a) != _safe_name(long_a[:-1] + "b")  # cut names stay apart
    assert len(_safe_name(long_b).encode()) <= 100


def test_an_audit_folder_inside_the_data_folder_is_refused_in_python_too(tmp_path):
    # the CLI refused it, audit() and prepare_data wrote the plots among the class folders, and
    # the next load read them as a class 'audit'
    from keras_species.data import sources
    from keras_species.data.prepare import prepare_data
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "data", classes=("cod", "eel"), per_class=4)
    with pytest.raises(ValueError, match=r"audit \(out_dir\) is inside the data folder"):
        audit(sources.load(root), root / "audit", progress=False)
    with pytest.raises(ValueError, match=r"audit \(audit_dir\) is inside the data folder"):
        prepare_data(str(root), audit_dir=root / "audit")
    assert sources.load(root).class_names == ["cod", "eel"]


def test_imbalance_ratio_counts_the_readable_images_as_the_baseline_does(tmp_path):
    paths = []
    for c in ("a", "b"):
        for i in range(3):
            p = tmp_path / c / f"{i}.png"
            p.parent.mkdir(exist_ok=True)
            if c == "b" and i < 2:
                p.write_bytes(b"")  # unreadable
            else:
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(p)
            paths.append(str(p))
    r = audit(Manifest(paths, np.array([0, 0, 0, 1, 1, 1]), ["a", "b"]), progress=False)
    assert r.majority_baseline == 0.75 and r.imbalance_ratio == 3.0  # 3 against 1 readable


def test_clean_manifest_of_another_format_is_refused(tmp_path, capsys):
    # `--clean-manifest best.keras` (or a photo) was replaced by the CSV
    from keras_species import cli
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=3, size=(8, 8))
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG keep")
    assert cli.main(["audit", str(data), "--out", str(tmp_path / "a"), "--clean-manifest", str(photo)]) == 2
    assert "the cleaned manifest is a CSV, not a .png file" in capsys.readouterr().err
    assert photo.read_bytes() == b"\x89PNG keep"


def test_a_large_duplicate_group_is_shortened_in_audit_md():
    # one placeholder copied 15,000 times made a table cell of 774,454 characters
    from keras_species.data.audit import _cell_counts, _cell_paths

    paths = [f"c{i % 3}/{i}.png" for i in range(40)]
    cell = _cell_paths(paths)
    assert cell.count("<br>") == 5 and cell.endswith("… and 35 more")
    assert _cell_counts([f"c{i % 3}" for i in range(40)]) == "c0 14, c1 13, c2 13"
    assert _cell_counts(["cod", "eel"]) == "cod / eel"
