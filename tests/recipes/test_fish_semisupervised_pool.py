"""recipes.fish_semisupervised: the images of --labelled without a label make (part of) the pool."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest

from keras_species.recipe import SettingError
from recipes.fish_semisupervised import FishSemiSupervisedConfig, _pool, hide_fraction, main, run
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
def test_a_run_trains_on_the_labelled_rows_and_pseudo_labels_the_others(tmp_path, monkeypatch,
                                                                       capsys):
    from keras_species.data import sources

    data, without = _labels_csv(tmp_path)
    calls: list[str] = []
    load = sources.load

    def counted(source, **kw):
        calls.append(str(source))
        return load(source, **kw)

    monkeypatch.setattr(sources, "load", counted)
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
