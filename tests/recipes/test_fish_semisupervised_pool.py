"""recipes.fish_semisupervised: the images of --labelled without a label make (part of) the pool."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import pytest

from keras_species.data.manifest import ManifestError
from keras_species.recipe import SettingError
from recipes.fish_semisupervised import (
    FishSemiSupervisedConfig,
    _pool,
    hide_fraction,
    main,
    reading_options,
    run,
)
from tests.conftest import write_image_folder

CLASSES = ("cod", "eel", "ray")


def _labels_csv(tmp_path: Path, *, every: int = 5) -> tuple[Path, list[str]]:
    """A ``path,label`` CSV of 3 x 10 generated fish whose label cell is empty on every
    ``every``-th row (``every=1``: on every row); returns it and the paths without a label."""
    folder = write_image_folder(tmp_path / "fish", classes=CLASSES, per_class=10, size=(24, 24))
    images = sorted(folder.rglob("*.png"))
    without = [str(p) for i, p in enumerate(images) if i % every == 0]
    data = tmp_path / "fish.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        rows = csv.writer(f)
        rows.writerow(["path", "label"])
        for p in images:
            rows.writerow([p, "" if str(p) in without else p.parent.name])
    return data, without


def _config(tmp_path: Path, labelled: Path, **kw) -> FishSemiSupervisedConfig:
    base = dict(
        labelled=str(labelled), out=tmp_path / "runs", name="t", weights="none", image_size=32,
        batch_size=8, ae_epochs=1, ae_batch_size=8, ae_filters=(4, 8, 8), ae_dense_units=8,
        ae_pooling="avg", stages="2", pseudo_threshold=0.0, verbose=0, mixed_precision="off",
    )
    base.update(kw)
    return FishSemiSupervisedConfig(**base)


def test_images_of_labelled_without_a_label_are_the_pool_and_no_label_is_hidden(tmp_path):
    # they were dropped (m.subset(m.labelled_mask)) and 80% of the labels hidden to make a pool
    data, without = _labels_csv(tmp_path)
    parts = _pool(_config(tmp_path, data))
    assert sorted(parts.pool.paths) == sorted(without) and parts.truth is None
    assert (parts.from_labelled, parts.hidden, parts.from_unlabelled) == (6, 0, 0)
    assert len(parts.labelled) == 24 and parts.labelled.labelled_mask.all()
    # --hide-labels and --unlabelled add to it; an image in two of them is in the pool once
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "again.png").symlink_to(without[0])
    (extra / "new.png").write_bytes(Path(without[1]).read_bytes())
    parts = _pool(_config(tmp_path, data, hide_labels=0.5, unlabelled=str(extra)))
    assert (parts.from_labelled, parts.hidden, parts.from_unlabelled) == (6, 12, 1)
    assert parts.duplicates == 1 and len(parts.pool) == 19
    assert not set(parts.pool.paths) & set(parts.labelled.paths)


def test_the_default_hide_share_depends_on_whether_a_pool_is_there():
    assert hide_fraction(None, unlabelled=None, without_label=0) == 0.8  # R1's demo setting
    assert hide_fraction(None, unlabelled=None, without_label=3) == 0.0
    assert hide_fraction(None, unlabelled="pool", without_label=0) == 0.0
    assert hide_fraction(0.5, unlabelled="pool", without_label=3) == 0.5


def test_hide_labels_0_is_refused_only_where_no_pool_can_be_had(tmp_path):
    data, _ = _labels_csv(tmp_path)
    FishSemiSupervisedConfig(labelled=str(data), hide_labels=0.0).check()  # its rows may be the pool
    with pytest.raises(SettingError, match=r"^--hide-labels 0.0: hides no label, and without "
                                           r"--unlabelled there is no unlabelled pool"):
        FishSemiSupervisedConfig(hide_labels=0.0).check()  # the demo: every image has a label
    with pytest.raises(SettingError, match=r"^--hide-labels 0: every image of --labelled "):
        _pool(_config(tmp_path, tmp_path / "fish", hide_labels=0.0))  # a folder of class folders
    full, _ = _labels_csv(tmp_path / "full", every=10**6)
    full.write_text("\n".join(line for i, line in enumerate(full.read_text().splitlines())
                              if i != 1) + "\n")  # row 0 was the only one without a label
    with pytest.raises(SettingError, match=rf"^--hide-labels 0: every image of --labelled {full} "
                                           r"has a label and there is no --unlabelled"):
        _pool(_config(tmp_path, full, hide_labels=0.0))


def test_labelled_data_without_any_label_is_refused_before_the_run_folder(tmp_path, capsys):
    data, _ = _labels_csv(tmp_path, every=1)
    out = tmp_path / "runs"
    assert main(["--labelled", str(data), "--out", str(out), "--weights", "none"]) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m recipes.fish_semisupervised: error: --labelled {data}: none of its "
                   "30 images has a label, and this recipe trains on a few labelled images (and "
                   "learns from unlabelled ones): give some of them labels (a CSV's label column, "
                   "a COCO JSON's annotations), or give --labelled the labelled images and "
                   "--unlabelled the others\n")
    assert not out.exists()


@pytest.mark.usefixtures("eager_tf")
def test_a_run_trains_on_the_labelled_rows_and_pseudo_labels_the_others(tmp_path, source_loads,
                                                                       capsys):
    data, without = _labels_csv(tmp_path)
    calls = source_loads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny run's Keras and split notes
        result = run(_config(tmp_path, data))
    assert calls.count(str(data)) == 1  # --labelled is read once
    assert "\nunlabelled pool: 6 images: 6 rows of --labelled without a label\n" in capsys.readouterr().out
    root = result.run_dir
    split = {r["path"] for r in csv.DictReader(
        line for line in open(root / "split.csv") if not line.startswith("#"))}
    assert len(split) == 24 and not split & set(without)
    pseudo = {r["path"] for r in csv.DictReader(open(root / "pseudo_labels.csv"))}
    assert pseudo == set(without)  # threshold 0: every pool image is pseudo-labelled
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["pool"] == {"images": 6, "from_labelled": 6, "hidden": 0, "from_unlabelled": 0,
                               "duplicates": 0}
    report = result.report_path.read_text()
    assert "Unlabelled pool: 6 images: 6 rows of `--labelled` without a label." in report
    side = json.loads((root / "split.prepared.json").read_text())
    assert not any("has no label" in r["reason"] for r in side["not_read"])  # not "not read"


def _pool_lists(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A folder of 4 images and, in another folder, a CSV and a .txt list naming them relative to
    it (without labels); returns the image folder, the lists' folder and the image paths."""
    images = write_image_folder(tmp_path / "pool_images", classes=("x",), per_class=4, size=(24, 24))
    paths = sorted(str(p) for p in images.rglob("*.png"))
    names = [str(Path(p).relative_to(images)) for p in paths]
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "pool.csv").write_text("path,label\n" + ",\n".join(names) + ",\n")
    (lists / "pool.txt").write_text("\n".join(names) + "\n")
    return images, lists, paths


@pytest.mark.parametrize("listing", ["pool.csv", "pool.txt"])
def test_root_and_on_missing_reach_an_unlabelled_csv_or_list(tmp_path, listing):
    images, lists, paths = _pool_lists(tmp_path)
    labelled = write_image_folder(tmp_path / "fish", classes=CLASSES, per_class=4, size=(24, 24))
    pool = str(lists / listing)
    # --labelled is a folder (it takes no --root): --root is the pool's
    parts = _pool(_config(tmp_path, labelled, unlabelled=pool, root=str(images)))
    assert sorted(parts.pool.paths) == paths and parts.from_unlabelled == 4
    with pytest.raises(ManifestError, match=r"4 of 4 listed files do not exist .*--root DIR"):
        _pool(_config(tmp_path, labelled, unlabelled=pool))  # read from lists/ without it
    # the demo (the default --labelled) takes no --root either
    assert _pool(_config(tmp_path, "demo", unlabelled=pool, root=str(images))).from_unlabelled == 4
    with open(lists / listing, "a") as f:
        f.write("gone.png\n")
    with pytest.warns(UserWarning, match="skipped 1 (row|line) whose file does not exist"):
        parts = _pool(_config(tmp_path, labelled, unlabelled=pool, root=str(images), on_missing="skip"))
    assert sorted(parts.pool.paths) == paths


def test_one_root_serves_both_when_both_are_files(tmp_path):
    images, lists, paths = _pool_lists(tmp_path)
    labelled = write_image_folder(images, classes=CLASSES, per_class=4, size=(24, 24))
    rows = [f"{c}/{p.name},{c}" for c in CLASSES for p in sorted((labelled / c).iterdir())]
    (lists / "fish.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    config = _config(tmp_path, lists / "fish.csv", unlabelled=str(lists / "pool.csv"), root=str(images))
    assert reading_options(config) == ({"root": str(images)}, {"root": str(images)})
    parts = _pool(config)
    assert len(parts.labelled) == 12 and sorted(parts.pool.paths) == paths
    # --group-regex is --labelled's only: the pool is never split
    config = _config(tmp_path, lists / "fish.csv", unlabelled=str(lists / "pool.csv"),
                     root=str(images), group_regex=r"fish_(\d+)_")
    assert reading_options(config)[1] == {"root": str(images)}


def test_an_option_that_neither_source_takes_is_refused_naming_its_flag(tmp_path, capsys):
    images, lists, _ = _pool_lists(tmp_path)
    labelled = write_image_folder(tmp_path / "fish", classes=CLASSES, per_class=4, size=(24, 24))
    with pytest.raises(SettingError, match=(
            rf"^--root applies to neither --labelled {re.escape(str(labelled))} \(read as a folder of "
            r"class subfolders, which takes --group-regex\) nor --unlabelled "
            rf"{re.escape(str(images))} \(read as a folder of images, which takes no reading "
            r"option\): leave it out$")):
        _pool(_config(tmp_path, labelled, unlabelled=str(images), root=str(tmp_path)))
    with pytest.raises(SettingError, match=r"^--path-format applies to neither --labelled demo \(read "
                                           r"as the embedded demo set, .*\) nor --unlabelled .*pool.txt "
                                           r"\(read as a list of paths, one per line .*, which takes "
                                           r"--on-missing, --root\)"):
        _pool(_config(tmp_path, "demo", unlabelled=str(lists / "pool.txt"), path_format="{file}"))
    # on the command line: the flag is named before any run folder is made
    out = tmp_path / "runs"
    assert main(["--unlabelled", str(images), "--root", str(tmp_path), "--out", str(out),
                 "--weights", "none"]) == 2
    assert "error: --root applies to neither --labelled demo" in capsys.readouterr().err
    assert not out.exists()


def test_help_says_which_source_the_reading_options_apply_to(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--root, --path-format and --on-missing apply to whichever of --labelled and "
            "--unlabelled takes them (to both when both do: one --root then serves both), "
            "--group-regex to --labelled only") in text
