"""prepare_data (load → audit → clean → split → saved split) and build_datasets."""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_species.data import sources
from keras_species.data.manifest import Manifest, ManifestError
from keras_species.data.prepare import (
    build_datasets,
    class_weight_setting,
    files_not_read,
    prepare_data,
)
from tests.conftest import write_image_folder


@pytest.fixture
def folder(tmp_path):
    """3 classes x 10 images, 5 groups per class (file names fish_<group>_<i>.png)."""
    return write_image_folder(tmp_path / "fish", per_class=10, groups_per_class=5, size=(24, 20))


def test_group_split_keeps_groups_on_one_side_and_saves_the_split(folder, tmp_path):
    split_file = tmp_path / "run" / "split.csv"
    p = prepare_data(folder, group_regex=r"fish_(\d+)_", split="auto", seed=3,
                     audit_dir=tmp_path / "audit", split_file=split_file)
    assert p.split_kind == "group"
    assert p.leakage["groups"] == {} and p.leakage["paths"] == {}
    assert set(p.manifest.splits) == {"train", "val", "test"}
    assert (tmp_path / "audit" / "audit.md").is_file()
    assert p.audit is not None and p.audit.n_images == 30
    assert split_file.is_file() and p.split_file == split_file
    assert p.train_counts.sum() == len(p.manifest.split("train"))
    assert p.summary().splitlines()[0] == f"{p.manifest.summary()}; split: group"
    # a second call reads the same split back (a resumed run), without auditing again: the
    # audit's figures come back from the sidecar
    again = prepare_data(folder, group_regex=r"fish_(\d+)_", seed=99, split_file=split_file)
    assert again.split_kind == "loaded" and again.audit is not None
    assert again.audit.to_dict() == p.audit.to_dict()
    assert again.manifest.splits == p.manifest.splits
    assert again.manifest.paths == p.manifest.paths


def test_stratified_without_groups_and_ratios(folder):
    p = prepare_data(folder, split="auto", ratios=(0.8, 0.1, 0.1), seed=0, audit=False)
    assert p.split_kind == "stratified"
    counts = {s: p.manifest.splits.count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 24, "val": 3, "test": 3}


def test_cleaning_drops_corrupt_files_and_the_drop_list(folder, tmp_path):
    bad = folder / "cod" / "fish_0_99.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    listed = sorted((folder / "eel").iterdir())[0]
    drop = tmp_path / "drop.txt"
    drop.write_text(f"# stray objects\n{listed.name}\n")
    p = prepare_data(folder, split="stratified", seed=0, drop=drop)
    dropped = {d["path"] for d in p.dropped}
    assert any(x.endswith("fish_0_99.png") for x in dropped)
    assert any(x.endswith(listed.name) for x in dropped)
    assert len(p.manifest) == 29  # 31 files: the corrupt one and the listed one dropped
    assert not any(x.endswith("fish_0_99.png") for x in p.manifest.paths)


def test_files_not_read_are_kept_for_the_report(folder, tmp_path):
    from keras_species.recipe import data_section

    (folder / "cod" / "notes.txt").write_text("caught at dawn")
    with pytest.warns(UserWarning, match="non-image file"):
        p = prepare_data(folder, split="stratified", seed=0, audit=False)
    assert [d["path"] for d in p.not_read] == [str(folder / "cod" / "notes.txt")]
    assert "extension" in p.not_read[0]["reason"] and "left out 1 file(s)" in p.summary()

    listing = tmp_path / "list.csv"
    images = sorted(folder.rglob("*.png"))
    listing.write_text("path,label\n" + "".join(f"{f},{f.parent.name}\n" for f in images)
                       + f"{folder / 'eel' / 'gone.png'},eel\n")
    with pytest.warns(UserWarning, match="does not exist"):
        p = prepare_data(listing, split="stratified", seed=0, audit=False,
                         load_options={"on_missing": "skip"})
    assert [d["path"] for d in p.not_read] == [str(folder / "eel" / "gone.png")]
    assert "does not exist" in p.not_read[0]["reason"] and len(p.manifest) == len(images)
    assert "1 file(s) left out when reading the source:" in data_section(p)[1]
    assert files_not_read(sources.load("demo")) == []  # nothing to leave out


def test_without_the_audit_the_report_names_the_files_the_pipeline_left_out(folder):
    # stop 29 left it: the Data section counted every row of a --no-audit run, the corrupt
    # file the pipeline's check drops included, and never named it
    from keras_species.data.prepare import build_datasets
    from keras_species.recipe import data_section

    bad = folder / "cod" / "fish_0_99.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    p = prepare_data(folder, split="stratified", seed=0, audit=False)
    assert str(bad) in p.manifest.paths  # no audit: the row stays
    with pytest.warns(UserWarning, match="skipping 1 unreadable"):
        datasets = build_datasets(p.manifest, 16, 8)
    body = data_section(p, datasets)[1]
    assert "The pipeline's file check left out 1 image(s)" in body
    assert f"- `{bad}`: not an image PIL recognises" in body
    clean = prepare_data(folder, split="stratified", seed=0)  # the audit drops it: nothing to add
    assert "file check left out" not in data_section(clean, build_datasets(clean.manifest, 16, 8))[1]


def test_a_resumed_run_reports_its_audit_cleaning_and_files_not_read_again(folder, tmp_path):
    from keras_species.data.prepare import sidecar_path
    from keras_species.recipe import data_section

    (folder / "cod" / "fish_0_99.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "cod" / "notes.txt").write_text("caught at dawn")
    split_file = tmp_path / "run" / "split.csv"
    with pytest.warns(UserWarning, match="non-image file"):
        first = prepare_data(folder, split="stratified", seed=0, audit_dir=tmp_path / "run" / "audit",
                             split_file=split_file, progress=False)
    assert len(first.dropped) == 1 and len(first.not_read) == 1
    again = prepare_data(folder, split="stratified", seed=0, split_file=split_file)
    assert again.split_kind == "loaded"
    assert again.dropped == first.dropped and again.not_read == first.not_read
    assert again.audit.corrupt == first.audit.corrupt
    section = data_section(again)[1]
    assert "1 file(s) left out when reading the source:" in section and "notes.txt" in section
    assert "Cleaning dropped 1 image(s):" in section and "fish_0_99.png" in section
    assert "Audit: 31 images, 1 corrupt" in section
    # a split without the sidecar (made by `keras-species split`) reads back as before
    sidecar_path(split_file).unlink()
    plain = prepare_data(folder, split_file=split_file)
    assert plain.audit is None and plain.dropped == [] and plain.not_read == []
    sidecar_path(split_file).write_text("{not json")
    with pytest.warns(UserWarning, match="cannot be read"):
        broken = prepare_data(folder, split_file=split_file)
    assert broken.audit is None and broken.manifest.paths == first.manifest.paths
    for damaged, why in [("[1, 2]", "holds a JSON array, not an object"),
                         ('{"audit": [1], "dropped": []}', "'audit' holds a JSON array"),
                         ('{"dropped": {"a.png": "x"}}', "'dropped' holds a JSON object")]:
        sidecar_path(split_file).write_text(damaged)
        with pytest.warns(UserWarning, match=rf"split\.prepared\.json cannot be read \({re.escape(why)}\); "
                                             "the report leaves out the audit"):
            broken = prepare_data(folder, split_file=split_file)
        assert broken.audit is None and broken.dropped == [] and broken.not_read == []


def test_drop_list_lines_that_match_nothing_are_reported_and_kept_for_a_resume(folder, tmp_path):
    from keras_species.recipe import data_section

    listed = sorted((folder / "eel").iterdir())[0]
    drop = tmp_path / "drop.txt"
    drop.write_text(f"{listed.name}\nfish_9_misspelt.png\ncod/not_there.png\n")
    split_file = tmp_path / "run" / "split.csv"
    with pytest.warns(UserWarning, match="match no image"):
        p = prepare_data(folder, split="stratified", seed=0, drop=drop, split_file=split_file,
                         audit_dir=tmp_path / "run" / "audit")
    assert [d["path"] for d in p.dropped] == [str(listed)]  # the one line that names a file
    assert p.unmatched_drop == ["fish_9_misspelt.png", "cod/not_there.png"]
    assert "2 line(s) of the drop list match no image" in p.summary()
    section = data_section(p)[1]
    assert "2 line(s) of the drop list (--drop) matched no image" in section
    assert "- `fish_9_misspelt.png`: matches no image of the data" in section
    again = prepare_data(folder, split="stratified", seed=0, drop=drop, split_file=split_file)
    assert again.split_kind == "loaded" and again.unmatched_drop == p.unmatched_drop
    assert prepare_data(folder, split="stratified", seed=0, audit=False).unmatched_drop == []


def test_labels_of_the_other_kind_are_refused_before_the_audit(folder, tmp_path):
    tags = tmp_path / "tags.csv"
    images = sorted(folder.rglob("*.png"))
    tags.write_text("path,labels\n" + "".join(f"{f},{f.parent.name};x\n" for f in images))
    with pytest.raises(ManifestError, match=r"tags.csv: the data is multi-label \(4 tags, a set "
                                            r"per image\); use the tagging recipe"):
        prepare_data(tags, task="single", task_hint="use the tagging recipe",
                     audit_dir=tmp_path / "audit")
    assert not (tmp_path / "audit").exists()  # stopped before the audit
    with pytest.raises(ManifestError, match=r"the data is single-label \(3 classes, one per image\)"):
        prepare_data(folder, task="multi", audit=False)
    assert prepare_data(tags, task="multi", audit=False).manifest.multilabel
    with pytest.raises(ValueError, match="task='tags'"):
        prepare_data(folder, task="tags", audit=False)


def test_a_split_without_a_needed_split_is_refused_before_it_is_saved(folder, tmp_path):
    split_file = tmp_path / "split.csv"
    with pytest.raises(ManifestError, match=r"the split has no 'test' images .*: it is scored"):
        prepare_data(folder, split="systematic", audit=False, split_file=split_file,
                     need_splits=("train", "test"), need_hint="it is scored")
    assert not split_file.exists()
    with pytest.raises(ManifestError, match="no 'test' images"):
        prepare_data(folder, ratios=(0.8, 0.2), audit=False, need_splits=("train", "val", "test"))
    p = prepare_data(folder, split="stratified", audit=False, split_file=split_file,
                     need_splits=("train", "val", "test"))
    assert set(p.manifest.splits) == {"train", "val", "test"}
    with pytest.raises(ManifestError, match="no 'holdout' images"):  # a resumed run checks too
        prepare_data(folder, split_file=split_file, need_splits=("holdout",))


def test_top_classes_and_bad_split_kind(folder):
    p = prepare_data(folder, split="stratified", top_classes=2, audit=False)
    assert p.manifest.num_classes == 2
    with pytest.raises(ValueError, match="split="):
        prepare_data(folder, split="random")
    with pytest.raises(ManifestError):
        prepare_data(folder / "nope")


def test_class_weight_setting(tmp_path):
    assert class_weight_setting("none") is None
    assert class_weight_setting(None) is None
    assert class_weight_setting("Balanced") == "balanced"
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"cod": 3.0}))
    assert class_weight_setting(path) == str(path)
    with pytest.raises(ValueError, match="balanced"):
        class_weight_setting(tmp_path / "missing.json")


def test_build_datasets_shapes_weights_and_splits(folder, tmp_path):
    p = prepare_data(folder, split="stratified", seed=0, audit=False)
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"ray": 4.0}))
    ds = build_datasets(p.manifest, 16, 8, augment="r1", class_weight=path, seed=0)
    images, labels, weights = next(iter(ds.train))
    assert images.shape[1:] == (16, 16, 3) and images.dtype.name == "float32"
    assert labels.shape == (8,) and weights.shape == (8,)
    assert ds.class_weight == str(path)
    assert ds.class_weights["ray"] > ds.class_weights["cod"]
    x, y = next(iter(ds.test))  # no weights, no augmentation, manifest order
    assert x.shape[1:] == (16, 16, 3)
    np.testing.assert_array_equal(y.numpy(), p.manifest.split("test").labels[: len(y)])
    plain = build_datasets(p.manifest, (16, 12), 4, class_weight="none", cache="none")
    assert len(next(iter(plain.train))) == 2 and plain.class_weights is None
    assert plain.image_size == (16, 12)
    two = p.manifest.with_splits(["train" if s == "train" else "val" for s in p.manifest.splits])
    assert build_datasets(two, 16, 4).test is None
    # a cache folder caches train and val; the test split, read once, is not file-cached (on a
    # read-only folder of caches its cache, never read, was warned about in every run)
    cached = build_datasets(p.manifest, 16, 4, cache=str(tmp_path / "cache"))
    for ds in (cached.train, cached.val, cached.test):
        for _ in ds:
            pass
    written = {f.name.split("-")[0] for f in (tmp_path / "cache").glob("*.index")}
    assert written == {"train", "val"}
    with pytest.raises(ManifestError, match="split"):
        build_datasets(p.manifest.with_splits(["val"] * len(p.manifest)), 16, 4)


def test_added_classes_are_audited_with_the_data_and_kept_for_a_resume(folder, tmp_path):
    import shutil

    new = write_image_folder(tmp_path / "extra", classes=("zander",), per_class=6, size=(24, 20),
                             seed=5)
    copied = sorted((new / "zander").iterdir())[0]
    original = sorted(p for p in folder.rglob("*.png"))[0]
    shutil.copyfile(original, copied)  # an added image identical to one of another class
    (new / "zander" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    split_file = tmp_path / "run" / "split.csv"
    p = prepare_data(folder, split="stratified", seed=0, audit_dir=tmp_path / "audit",
                     split_file=split_file, add_class=[new / "zander"])
    assert any("conflicting labels" in note for note in p.audit.notes)
    groups = [g for g in p.audit.duplicates if g["conflicting_labels"]]
    assert len(groups) == 1 and {str(original), str(copied)} == set(groups[0]["paths"])
    assert any(d["path"].endswith("broken.png") for d in p.dropped)  # dropped like any corrupt file
    assert p.added_classes == ["zander"] and p.manifest.class_names[-1] == "zander"
    zander = p.manifest.split("train").class_names.index("zander")
    assert {s for s, y in zip(p.manifest.splits, p.manifest.labels) if y == zander} == {
        "train", "val", "test"}
    assert not any(path.endswith("broken.png") for path in p.manifest.paths)
    again = prepare_data(folder, split="stratified", seed=0, split_file=split_file,
                         add_class=[new / "zander"])  # a resumed run reads it all back
    assert again.split_kind == "loaded" and again.added_classes == ["zander"]
    assert again.manifest.paths == p.manifest.paths


def test_images_without_a_label_are_left_out_and_listed_unless_kept(folder, tmp_path):
    rows = [(p, "" if i % 5 == 0 else p.parent.name) for i, p in enumerate(sorted(folder.rglob("*.png")))]
    data = tmp_path / "labels.csv"
    data.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    p = prepare_data(data, split="stratified", seed=0, audit=False)
    missing = [r for r in p.not_read if "has no label" in r["reason"]]
    assert len(missing) == 6 and len(p.manifest) == 24 and p.manifest.labelled_mask.all()
    kept = prepare_data(data, split="stratified", seed=0, audit=False, keep_unlabelled=True)
    assert len(kept.manifest) == 30 and int((~kept.manifest.labelled_mask).sum()) == 6
    data.write_text("path,label\n" + "".join(f"{p},\n" for p, _ in rows))
    with pytest.raises(ManifestError, match="none of its images has a label"):
        prepare_data(data, audit=False)


def _labels_csv(folder, tmp_path, *, every=5):
    """A ``path,label`` CSV of the folder's images, the label cell empty on every ``every``-th row,
    and one last row whose file does not exist."""
    images = sorted(folder.rglob("*.png"))
    rows = [f"{p},{'' if i % every == 0 else p.parent.name}" for i, p in enumerate(images)]
    data = tmp_path / "labels.csv"
    data.write_text("path,label\n" + "\n".join(rows) + f"\n{tmp_path / 'gone.png'},cod\n")
    return data


def test_a_source_read_ahead_is_not_parsed_again_and_still_named(folder, tmp_path, source_loads):
    import warnings

    from keras_species.data.prepare import read_ahead

    data = _labels_csv(folder, tmp_path)
    calls = source_loads
    options = {"on_missing": "skip"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ahead = read_ahead(data, options)
        p = prepare_data(data, load_options=options, split="stratified", seed=0,
                         audit_dir=tmp_path / "audit", split_file=tmp_path / "split.csv")
    assert calls == [str(data)]
    missing = [w for w in caught if "does not exist" in str(w.message)]
    assert len(missing) == 1  # warned by the one reading
    assert len(ahead) == 30 and len(p.manifest) == 24  # the unlabelled rows left out, as ever
    assert (tmp_path / "audit" / "audit.md").read_text().startswith(f"# Data audit: {data}")
    reasons = sorted(r["reason"].split(" (")[0] for r in p.not_read)
    assert reasons == ["has no label"] * 6 + ["listed in the CSV, but the file does not exist"]
    side = json.loads((tmp_path / "split.prepared.json").read_text())
    assert side["not_read"] == p.not_read
    # a reading serves the one prepare_data that follows it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_data(data, load_options=options, audit=False)
    assert calls == [str(data)] * 2


def test_a_read_ahead_is_not_used_for_other_options_or_a_changed_file(folder, tmp_path, source_loads):
    import os
    import warnings

    from keras_species.data.prepare import forget_read_ahead, read_ahead

    data = _labels_csv(folder, tmp_path)
    calls = source_loads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_ahead(data, {"on_missing": "skip"})
        prepare_data(data, load_options={"on_missing": "skip", "group_regex": r"fish_(\d+)_"},
                     audit=False)
        assert len(calls) == 2  # other options: read with them
        read_ahead(data, {"on_missing": "skip"})
        stat = data.stat()
        data.write_text(data.read_text().replace(",cod\n", ",eel\n"))  # same size, new content
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        p = prepare_data(data, load_options={"on_missing": "skip"}, audit=False)
        assert len(calls) == 4 and len(p.manifest) == 24  # the file changed: read again
        read_ahead(data, {"on_missing": "skip"})
        forget_read_ahead()
        prepare_data(data, load_options={"on_missing": "skip"}, audit=False)
        assert len(calls) == 6
        read_ahead("demo")  # the demo and folders are quick to read again: not kept
        prepare_data("demo", audit=False)
        assert calls[-2:] == ["demo", "demo"]


def test_a_manifest_source_is_named_by_its_file_and_takes_a_group_regex(folder, tmp_path):
    import warnings

    from keras_species.data.manifest import Manifest

    data = _labels_csv(folder, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sources.load(data, on_missing="skip")
    p = prepare_data(m, group_regex=r"fish_(\d+)_", split="auto", seed=0,
                     audit_dir=tmp_path / "audit")
    assert p.split_kind == "group" and p.leakage["groups"] == {}  # the regex gave the groups
    assert (tmp_path / "audit" / "audit.md").read_text().startswith(f"# Data audit: {data}")
    assert any("does not exist" in r["reason"] for r in p.not_read)  # the reader's list is kept
    with pytest.raises(ManifestError, match=f"^{re.escape(str(data))}: none of its images has a label"):
        prepare_data(m.subset(~m.labelled_mask), audit=False)
    with pytest.raises(ManifestError, match=r"^the manifest: no images found"):
        prepare_data(Manifest([], np.zeros(0, np.int64), ["cod"]), audit=False)
    with pytest.raises(ManifestError, match=rf"^{re.escape(str(data))} is given as a Manifest, read "
                                            r"already, to which --on-missing \(on_missing=\), --root "
                                            r"\(root=\) do not apply: .*give the file's path"):
        prepare_data(m, load_options={"root": "images", "on_missing": "skip"}, audit=False)
    assert m.groups is None  # the regex's groups went to a copy


def _split_csv(folder, tmp_path, names=("train", "train", "val", "test", "test")):
    """A ``path,label,split`` CSV of the folder's images, the splits cycling through ``names``."""
    images = sorted(folder.rglob("*.png"))
    rows = [f"{p},{p.parent.name},{names[i % len(names)]}" for i, p in enumerate(images)]
    data = tmp_path / "split.csv"
    data.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return data


def test_a_given_split_without_test_rows_says_to_split_by_ratios_with_split_stratified(folder, tmp_path):
    # before: "give three --ratios (train val test)": three are the default, and under --split
    # auto the data's own split column wins, so --ratios changed nothing
    data = _split_csv(folder, tmp_path, names=("train", "train", "val"))
    hint = "it is scored: give three --ratios (train val test), or a split column with test rows"
    with pytest.raises(ManifestError) as err:
        prepare_data(data, audit=False, need_splits=("train", "test"), need_hint=hint)
    message = str(err.value)
    assert message.startswith("the split has no 'test' images")
    assert ("the data's own split column is used (--split auto); to split by --ratios instead, "
            "pass --split stratified") in message
    assert "--split group" not in message  # no group ids: refused if followed (it was offered)
    assert "give three --ratios" not in message
    with pytest.raises(ManifestError, match=r"used \(--split given\)"):
        prepare_data(data, split="given", audit=False, need_splits=("train", "test"))
    p = prepare_data(data, split="stratified", audit=False, need_splits=("train", "val", "test"))
    assert set(p.manifest.splits) == {"train", "val", "test"}
    with pytest.raises(ManifestError, match=r"no 'test' images .*: it is scored: give three"):
        prepare_data(folder, ratios=(0.8, 0.2), audit=False, need_splits=("test",), need_hint=hint)


def test_ratios_that_a_given_split_does_not_use_are_warned_about(folder, tmp_path):
    import warnings

    data = _split_csv(folder, tmp_path)
    with pytest.warns(UserWarning, match=r"--ratios 0.8 0.1 0.1 is not used: the data's own split "
                                         r"column is \(--split auto\).*--split stratified"):
        p = prepare_data(data, ratios=(0.8, 0.1, 0.1), audit=False)
    assert p.split_kind == "given"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the default ratios, or ratios that are used
        # (these fish_<track>_<i> names split file by file are warned about: test_name_ids.py)
        warnings.filterwarnings("ignore", message=".*share the id in their file name")
        prepare_data(data, audit=False)
        prepare_data(data, ratios=(0.6, 0.2, 0.2), default_ratios=(0.6, 0.2, 0.2), audit=False)
        prepare_data(data, split="stratified", ratios=(0.8, 0.1, 0.1), audit=False)
    # --split given with other ratios: not used either (stop 29: it was silent)
    with pytest.warns(UserWarning, match=r"--ratios 0.8 0.1 0.1 is not used: .*\(--split given\)"):
        prepare_data(data, split="given", ratios=(0.8, 0.1, 0.1), audit=False)


def test_a_top_classes_count_beyond_the_classes_names_the_range(folder):
    # before: "count must be between 1 and 3": one class is no classifier
    for count in (5, 1):
        with pytest.raises(ManifestError, match=rf"top_classes={count}: keep 2 to 3 classes "
                                                r"\(the data has 3 with images; a classifier needs 2"):
            prepare_data(folder, split="stratified", top_classes=count, audit=False)
    assert prepare_data(folder, split="stratified", top_classes=3, audit=False).manifest.num_classes == 3


def test_a_second_read_ahead_of_the_same_file_is_not_parsed_again(folder, tmp_path, source_loads):
    import warnings

    from keras_species.data.prepare import read_ahead

    data = _labels_csv(folder, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = read_ahead(data, {"on_missing": "skip"})
        assert read_ahead(data, {"on_missing": "skip"}) is first  # a recipe's second check
        assert source_loads == [str(data)]
        prepare_data(data, load_options={"on_missing": "skip"}, audit=False)
        assert source_loads == [str(data)]
        read_ahead(data, {"on_missing": "skip", "group_regex": r"fish_(\d+)_"})  # other options
    assert source_loads == [str(data)] * 2


def _unreadable(folder, per_class=3):
    """``per_class`` files named .jpg that are no image: zero-byte, and text."""
    folder.mkdir(parents=True)
    for i in range(per_class):
        (folder / f"fish_{i}_0.jpg").write_bytes(b"" if i % 2 == 0 else b"not an image\n")
    return folder


@contextlib.contextmanager
def _no_emptied_warning():
    """Fail if the block warns that cleaning left a class without any image (audit.clean's
    warning), which the block's error says in full."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [w for w in caught if "without any image" in str(w.message)], [str(w.message) for w in caught]


def test_cleaning_that_drops_every_image_says_so_not_add_a_class(tmp_path):
    # it failed in the split with "add another class folder / label": the two classes were
    # there, but no file could be read
    data = tmp_path / "data"
    for name in ("cod", "eel"):
        _unreadable(data / name)
    split_file = tmp_path / "run" / "split.csv"
    with _no_emptied_warning(), pytest.raises(ManifestError) as err:  # the error says it, once
        prepare_data(data, audit_dir=tmp_path / "run" / "audit", split_file=split_file)
    message = str(err.value)
    assert message == (
        f"{data}: cleaning dropped all 6 images: 6 unreadable (empty, truncated or not an image). "
        "No image of any class is left to train on: see "
        f"{tmp_path / 'run' / 'audit' / 'audit.md'} for each file and its reason, then fix or "
        "replace those files")
    assert "add another class" not in message and not split_file.exists()
    # without the audit's folder: the command that lists them
    with _no_emptied_warning(), pytest.raises(ManifestError, match=re.escape(
            f"run `keras-species audit {data}` to list each file and its reason")):
        prepare_data(data)


def test_a_class_emptied_by_drop_non_rgb_is_told_to_convert(tmp_path):
    from PIL import Image

    for i in range(4):
        for c, mode in (("rgb", "RGB"), ("grey", "L")):
            (tmp_path / "d" / c).mkdir(parents=True, exist_ok=True)
            Image.new(mode, (8, 8), 40 * i).save(tmp_path / "d" / c / f"{i}.png")
    with _no_emptied_warning(), pytest.raises(ManifestError) as err:
        prepare_data(tmp_path / "d", audit_dir=tmp_path / "audit", clean_policy="drop_non_rgb")
    assert "4 non-RGB (--clean-policy drop_non_rgb). Only class 'rgb' is left" in str(err.value)
    assert str(err.value).endswith("or keep the non-RGB ones, converted to RGB, with --clean-policy convert")


def test_cleaning_that_leaves_one_class_names_it_and_the_drops(folder, tmp_path):
    _unreadable(tmp_path / "two" / "cod", per_class=4)
    good = sorted((folder / "eel").iterdir())
    (tmp_path / "two" / "eel").mkdir()
    for path in good[:5]:
        (tmp_path / "two" / "eel" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "two" / "eel" / "listed.png").write_bytes(good[5].read_bytes())
    drop = tmp_path / "drop.txt"
    drop.write_text("listed.png\n")
    with _no_emptied_warning(), pytest.raises(ManifestError) as err:
        prepare_data(tmp_path / "two", audit_dir=tmp_path / "audit", drop=drop)
    assert str(err.value).startswith(
        f"{tmp_path / 'two'}: cleaning dropped 5 of its 10 images, every image of 1 of its 2 "
        "classes: 4 unreadable (empty, truncated or not an image), 1 in the drop list (--drop). "
        "Only class 'eel' is left, and a classifier needs 2 classes or more: see "
        f"{tmp_path / 'audit' / 'audit.md'} for each file")
    assert str(err.value).endswith("then fix or replace those files (and shorten the drop list, --drop)")
    # the drop list alone: the audit lists none of those files, so it is not sent there
    listed = "".join(f"{c}/{p.name}\n" for c in ("cod", "eel") for p in sorted((folder / c).iterdir()))
    drop.write_text(listed)
    with _no_emptied_warning(), pytest.raises(ManifestError) as err:
        prepare_data(folder, audit_dir=tmp_path / "audit2", drop=drop, split="stratified")
    assert "in the drop list (--drop)" in str(err.value) and str(err.value).endswith(
        "shorten the drop list (--drop), or add images of the other classes")


def test_cleaning_that_empties_one_of_three_classes_warns_once(folder, tmp_path):
    # no error follows (two classes are left): clean's warning is the one word of it
    drop = tmp_path / "drop.txt"
    drop.write_text("".join(f"ray/{p.name}\n" for p in sorted((folder / "ray").iterdir())))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare_data(folder, drop=drop, split="stratified")
    emptied = [str(w.message) for w in caught if "without any image" in str(w.message)]
    assert len(emptied) == 1 and emptied[0].startswith("cleaning leaves 1 class without any "
                                                       "image: ray"), emptied
    assert prepared.manifest.extra["cleaning"]["emptied_classes"] == ["ray"]


def test_one_class_without_any_cleaning_keeps_the_splits_message(folder):
    # the check after cleaning speaks only when cleaning took the classes away
    m = sources.load(folder)
    one = m.subset(np.array([Path(p).parent.name == "cod" for p in m.paths]))
    with pytest.raises(ManifestError, match="add another class folder / label"):
        prepare_data(one, split="stratified", audit=False)


def test_label_file_hint_names_the_label_file_of_a_one_class_folder(tmp_path):
    # a folder holding labels.csv and images/ used to be read as one class 'images', unnamed
    from keras_species.data.prepare import label_file_hint

    root = write_image_folder(tmp_path / "export", classes=("images",), per_class=4)
    m = sources.load(root)
    assert label_file_hint(root, m) == ""  # no label file: nothing to say
    (root / "labels.csv").write_text("path,label\n", encoding="utf-8")
    (root / "notes.txt").write_text("", encoding="utf-8")
    assert label_file_hint(root, m) == f"it holds labels.csv: pass --data {root}/labels.csv"
    (root / "coco.json").write_text("{}", encoding="utf-8")
    assert label_file_hint(f"{root}/", m, "--labelled") == (
        f"it holds coco.json: pass --labelled {root}/coco.json (or labels.csv)")
    two = write_image_folder(tmp_path / "fish", per_class=2)
    (two / "labels.csv").write_text("path,label\n", encoding="utf-8")
    assert label_file_hint(two, sources.load(two)) == ""  # classes of their own: not such a folder


def test_cleaning_that_drops_oversized_images_names_them_as_too_large_not_damaged(tmp_path):
    # before: "6 unreadable (empty, truncated or not an image)" of images that are only large
    from PIL import Image

    from keras_species.data.images import using_max_pixels

    data = tmp_path / "data"
    for name in ("cod", "eel"):
        (data / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), (i, 2, 3)).save(data / name / f"{i}.png")  # 1,200 px
    with using_max_pixels(1000), _no_emptied_warning(), pytest.raises(ManifestError) as err:
        prepare_data(data, audit_dir=tmp_path / "run" / "audit")
    assert ("cleaning dropped all 6 images: 6 over the decompression-bomb limit (too large to decode, so not "
            "checked for damage).") in str(err.value)


def test_the_data_section_counts_oversized_images_apart(tmp_path):
    # before: "Audit: 13 images, 1 corrupt" of an image that is only large
    from PIL import Image

    from keras_species.data.images import using_max_pixels
    from keras_species.recipe import data_section

    data = tmp_path / "data"
    for name in ("cod", "eel"):
        (data / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (20, 20), (i * 9, 2, 3)).save(data / name / f"{i}.png")  # 400 px
    Image.new("RGB", (40, 30)).save(data / "cod" / "big.png")  # 1,200 px
    with using_max_pixels(1000):
        prepared = prepare_data(data, audit_dir=tmp_path / "run" / "audit", progress=False)
    section = data_section(prepared)[1]
    assert ("Audit: 13 images, 1 corrupt (1 of them over the decompression-bomb limit, not decoded), "
            "0 non-RGB") in section


def test_a_split_column_with_empty_cells_is_named_and_ratios_with_given_are_warned_about(tmp_path):
    from keras_species.data import splits as splits_mod

    rows = ["path,label,split"]
    for c in ("cod", "eel"):
        for i in range(8):
            (tmp_path / c).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8), (i * 30, 9, 9)).save(tmp_path / c / f"{i}.png")
            rows.append(f"{c}/{i}.png,{c},{'' if i == 7 else ['train', 'train', 'train', 'train', 'val', 'val', 'test', 'test'][i]}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    m = sources.load(str(tmp_path / "d.csv"))
    with pytest.raises(ManifestError, match=r"the split column is empty for 2 images"):  # it said "split names ['']"
        splits_mod.given_split(m)
    with pytest.warns(UserWarning, match="split column is empty in some rows, so it is not used"):
        prepare_data(str(tmp_path / "d.csv"), audit=False)
    full = tmp_path / "full.csv"
    full.write_text("\n".join(r if not r.endswith(",") else r + "test" for r in rows) + "\n", encoding="utf-8")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        prepare_data(str(full), split="given", ratios=(0.5, 0.25, 0.25), audit=False)
    assert any("--ratios 0.5 0.25 0.25 is not used" in str(x.message) for x in seen)  # it was silent


def test_a_refused_group_split_says_why_without_warnings_first(folder):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ManifestError, match=r"the 30 images form only 1 group, and a group goes whole"):
            prepare_data(folder, group_regex=r"(fish)_", split="group", audit=False,
                         need_splits=("train", "val", "test"))
    assert not [str(w.message) for w in seen if "has no image of" in str(w.message)]


def test_reported_class_weights_are_the_ones_the_training_set_yields(folder):
    # with --no-audit (audit=False) unreadable files reach build_datasets; make_dataset weighs
    # the images it reads, and the report gave the weights of every row
    for i in range(4):
        (folder / "eel" / f"bad{i}.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = prepare_data(folder, split="stratified", seed=0, audit=False)
        ds = build_datasets(p.manifest, 16, 64, class_weight="balanced", cache="none", seed=0)
        x, y, w = next(iter(ds.train))
    names = p.manifest.class_names
    yielded = {names[int(k)]: round(float(v), 4) for k, v in zip(y.numpy(), w.numpy())}
    assert ds.class_weights == yielded


def test_single_label_refusal_of_multi_label_data_names_the_images_with_several_labels():
    # one stray second annotation made a whole iNat file multi-label, and nothing named it
    from keras_species.data.prepare import check_task

    labels = np.zeros((6, 3), np.uint8)
    labels[np.arange(6), np.arange(6) % 3] = 1
    labels[4, 0] = 1  # the stray one
    m = Manifest([f"/x/{i}.png" for i in range(6)], labels, ["a", "b", "c"])
    with pytest.raises(ManifestError, match=r"the data is multi-label \(3 tags, a set per image\) because "
                       r"1 image carries several labels \(e.g. '/x/4.png'\); if each image has one, fix"):
        check_task(m, "single", "data.json")
