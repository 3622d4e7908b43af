"""training.semi_supervised: hidden labels, the pool, masked joint training, pseudo-labels."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_species.data import sources
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError
from keras_species.models.autoencoder import build_autoencoder
from keras_species.training.semi_supervised import (
    hide_labels,
    joint_dataset,
    load_unlabelled,
    make_pool,
    mixed_dataset,
    pseudo_label,
    train_joint,
    write_pseudo_labels,
)
from tests.conftest import write_image_folder


class _Fixed(keras.layers.Layer):
    """Outputs a fixed probability row per image, chosen by the image's mean red value."""

    def __init__(self, table, **kw):
        super().__init__(**kw)
        self.table = np.asarray(table, np.float32)

    def call(self, x):
        red = keras.ops.mean(x[..., 0], axis=(1, 2))
        idx = keras.ops.cast(keras.ops.clip(red / 256.0 * len(self.table), 0, len(self.table) - 1), "int32")
        return keras.ops.take(keras.ops.convert_to_tensor(self.table), idx, axis=0)


def _solid_images(tmp_path, reds):
    from PIL import Image

    paths = []
    for i, r in enumerate(reds):
        p = tmp_path / f"img_{i}.png"
        Image.fromarray(np.full((8, 8, 3), (r, 0, 0), np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_hide_labels_keeps_a_share_per_class_and_returns_the_truth():
    m = Manifest([f"{i}.png" for i in range(30)], np.repeat([0, 1, 2], 10), ["a", "b", "c"])
    lab, pool, truth = hide_labels(m, 0.8, seed=1)
    assert lab.class_counts().tolist() == [2, 2, 2]
    assert len(pool) == 24 and (pool.labels == UNLABELLED).all()
    original = dict(zip(m.paths, m.labels))
    assert [original[p] for p in pool.paths] == truth.tolist()
    assert not set(lab.paths) & set(pool.paths)
    with pytest.raises(ManifestError, match="fraction"):
        hide_labels(m, 1.0)


def test_load_unlabelled_flat_folder_and_class_folders(tmp_path):
    flat = tmp_path / "flat"
    (flat / "sub").mkdir(parents=True)
    _solid_images(flat, [10, 20])
    _solid_images(flat / "sub", [30])
    (flat / "notes.txt").write_text("x")
    pool, truth = load_unlabelled(flat, ["cod", "eel"])
    assert len(pool) == 3 and truth is None and (pool.labels == UNLABELLED).all()
    folder = write_image_folder(tmp_path / "classes", classes=("eel",), per_class=2)
    pool, truth = load_unlabelled(folder, ["cod", "eel"])
    assert truth.tolist() == [1, 1] and pool.class_names == ["cod", "eel"]
    (folder / "@eaDir").mkdir()  # a NAS's thumbnail folder beside the class folders
    pool, truth = load_unlabelled(folder, ["cod", "eel"])
    assert truth.tolist() == [1, 1]  # before: read as an unlabelled pool
    _solid_images(folder, [40, 50])  # loose beside the class folders: pool images of no known class
    pool, truth = load_unlabelled(folder, ["cod", "eel"])
    assert len(pool) == 4 and truth.tolist() == [1, 1, -1, -1]  # before: dropped without a word
    # a subfolder that is no class of the labelled set: its images are of no known class, the
    # class folders' keep theirs (one such folder threw every true label away without a word)
    (folder / "ray").mkdir()
    _solid_images(folder / "ray", [60])
    with pytest.warns(UserWarning, match=r"the subfolder 'ray' is not a class of the labelled set"):
        pool, truth = load_unlabelled(folder, ["cod", "eel"])
    assert sorted(truth.tolist()) == [-1, -1, -1, 1, 1]
    assert next(t for p, t in zip(pool.paths, truth.tolist()) if "/ray/" in p) == -1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no images"):
        load_unlabelled(tmp_path / "empty", ["cod"])


def test_load_unlabelled_reads_a_csv_or_path_list_with_the_reading_options(tmp_path):
    # the pool's files lie in images/, while the CSV and the list name them relative to it
    images = tmp_path / "images"
    images.mkdir()
    paths = _solid_images(images, [10, 20, 30])
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "pool.csv").write_text("file,label\nimg_0.png,eel\nimg_1.png,cod\n")
    (lists / "pool.txt").write_text("img_0.png\nimg_2.png\ngone.png\n")
    with pytest.raises(ManifestError, match=r"pool.csv: 2 of 2 listed files do not exist .*--root DIR"):
        load_unlabelled(lists / "pool.csv", ["cod", "eel"])  # without root they start in lists/
    pool, truth = load_unlabelled(lists / "pool.csv", ["cod", "eel"], root=str(images))
    assert pool.paths == paths[:2] and truth.tolist() == [1, 0]
    with pytest.warns(UserWarning, match=r"skipped 1 line whose file does not exist"):
        pool, truth = load_unlabelled(lists / "pool.txt", ["cod"], root=str(images), on_missing="skip")
    assert pool.paths == [paths[0], paths[2]] and truth is None
    # an option that does not apply is refused, naming its flag, not ignored
    with pytest.raises(ManifestError, match=r"pool.txt is read as a list of paths, one per line .*, to "
                                            r"which --path-format \(path_format=\) does not apply"):
        load_unlabelled(lists / "pool.txt", ["cod"], root=str(images), path_format="{file}")
    with pytest.raises(ManifestError, match=r"to which --group-regex \(group_regex=\) does not apply"):
        load_unlabelled(lists / "pool.csv", ["cod"], root=str(images), group_regex=r"img_(\d)")
    with pytest.raises(ManifestError, match=rf"^{re.escape(str(images))} is read as a folder of "
                                            r"images, to which --root \(root=\) does not apply"):
        load_unlabelled(images, ["cod"], root=str(tmp_path))
    # make_pool hands the options on
    m = Manifest(paths[1:], np.array([0, 1]), ["cod", "eel"])
    parts = make_pool(m, unlabelled=lists / "pool.csv", unlabelled_options={"root": str(images)})
    assert parts.pool.paths == paths[:1] and parts.duplicates == 1


def test_make_pool_takes_the_images_without_a_label_hidden_ones_and_a_folder_once(tmp_path):
    # the labelled data's images without a label were dropped (listed as not read) although
    # they are exactly what the pool is for
    folder = write_image_folder(tmp_path / "fish", per_class=6, size=(8, 8))
    images = sorted(str(p) for p in folder.rglob("*.png"))  # cod 0-5, eel 6-11, ray 12-17
    labels = np.repeat([0, 1, 2], 6)
    labels[[0, 7, 14]] = UNLABELLED
    m = Manifest(images, labels, ["cod", "eel", "ray"], source="fish.csv")
    parts = make_pool(m)
    assert parts.pool.paths == [images[0], images[7], images[14]] and parts.truth is None
    assert len(parts.labelled) == 15 and parts.labelled.labelled_mask.all()
    assert (parts.pool.labels == UNLABELLED).all() and parts.pool.class_names == m.class_names
    assert parts.counts() == {"images": 3, "from_labelled": 3, "hidden": 0, "from_unlabelled": 0,
                              "duplicates": 0}
    assert parts.describe("--labelled") == "3 images: 3 rows of --labelled without a label"
    # hidden labels as well, and an unlabelled class folder that repeats the pool image 7 (its
    # class folder gives its true label) and the labelled image 8, and holds one new image
    extra = tmp_path / "extra" / "eel"
    extra.mkdir(parents=True)
    (extra / "link_7.png").symlink_to(images[7])
    (extra / "link_8.png").symlink_to(images[8])
    (extra / "new.png").write_bytes(Path(images[9]).read_bytes())  # a copy: another image file
    parts = make_pool(m, hide_fraction=0.5, unlabelled=tmp_path / "extra", seed=0)
    assert parts.labelled.class_counts().tolist() == [2, 2, 2]
    assert (parts.from_labelled, parts.hidden, parts.from_unlabelled) == (3, 9, 1)
    assert parts.duplicates == 2 and len(parts.pool) == len(set(parts.pool.paths)) == 13
    assert not set(parts.pool.paths) & set(parts.labelled.paths)
    truth = dict(zip(parts.pool.paths, parts.truth.tolist()))
    assert (truth[images[0]], truth[images[7]], truth[images[14]]) == (UNLABELLED, 1, UNLABELLED)
    assert parts.describe() == ("13 images: 3 rows of the labelled data without a label, 9 with "
                                "their labels hidden, 1 from the unlabelled source (2 duplicates "
                                "left out: an image already in the pool, or a labelled one)")


def test_make_pool_refuses_data_without_a_label_and_an_empty_pool(tmp_path):
    folder = write_image_folder(tmp_path / "fish", classes=("cod", "eel"), per_class=3, size=(8, 8))
    images = sorted(str(p) for p in folder.rglob("*.png"))  # cod 0-2, eel 3-5
    # a CSV that lists image 2 again without a label (it is labelled: not in the pool) and image
    # 5 twice without one (in the pool once)
    m = Manifest(images + [images[2], images[5]], np.array([0, 0, 0, 1, 1, -1, -1, -1]),
                 ["cod", "eel"], source="fish.csv")
    parts = make_pool(m)
    assert parts.pool.paths == [images[5]] and parts.duplicates == 2
    with pytest.raises(ManifestError, match=r"^fish.csv: none of its 2 images has a label; "
                                            r"semi-supervised training learns from a few labelled"):
        make_pool(Manifest(images[:2], np.array([-1, -1]), ["cod"], source="fish.csv"))
    with pytest.raises(ManifestError, match=r"^no unlabelled pool: every image of fish.csv has a "
                                            r"label, no label is hidden"):
        make_pool(m.subset(m.labelled_mask))
    links = tmp_path / "links"
    links.mkdir()
    for i in range(5):  # links to the labelled images 0-4: nothing new for the pool
        (links / f"{i}.png").symlink_to(images[i])
    with pytest.raises(ManifestError, match=r"^no unlabelled pool: each of its 5 image\(s\) is a "
                                            r"labelled image of fish.csv"):
        make_pool(m.subset(m.labelled_mask), unlabelled=links)
    with pytest.raises(ManifestError, match="single-label"):
        make_pool(Manifest(images[:1], np.array([[1, 0]]), ["cod", "eel"]))


def test_pseudo_label_accuracy_equals_the_true_agreement(tmp_path):
    # red 0-63 -> class 0 (0.9), 64-127 -> class 1 (0.6), 128-191 -> class 1 (0.95), 192+ -> class 0 (0.85)
    table = [[0.9, 0.1], [0.4, 0.6], [0.05, 0.95], [0.85, 0.15]]
    inp = keras.Input((8, 8, 3), name="image")
    model = keras.Model(inp, _Fixed(table)(inp))
    reds = [10, 20, 100, 150, 160, 200, 210]
    truth = np.array([0, 1, 1, 1, 0, 1, -1])
    pool = Manifest(_solid_images(tmp_path, reds), np.full(7, -1), ["cod", "eel"])
    kept, stats = pseudo_label(model, pool, threshold=0.8, true_labels=truth, batch_size=4)
    pred = np.array([0, 0, 1, 1, 1, 0, 0])
    conf = np.array([0.9, 0.9, 0.6, 0.95, 0.95, 0.85, 0.85])
    keep = conf >= 0.8
    known = keep & (truth >= 0)
    assert stats.n_kept == keep.sum() == len(kept) == 6
    assert kept.labels.tolist() == pred[keep].tolist()
    assert stats.n_known == known.sum()
    assert stats.accuracy == pytest.approx((pred[known] == truth[known]).mean())
    per = {r["name"]: r for r in stats.per_class}
    assert per["cod"]["kept"] == 4 and per["cod"]["correct"] == 1 and per["cod"]["known"] == 3
    assert per["eel"]["kept"] == 2 and per["eel"]["accuracy"] == pytest.approx(0.5)
    assert stats.accuracy_all == pytest.approx((pred[truth >= 0] == truth[truth >= 0]).mean())
    # the total of "true in pool" counts the images of a known class: 6 of the 7 (before: 7)
    assert "| **all** | **6** of 7 | 6 |" in stats.to_markdown()
    # nothing kept: the true-label columns stay (they were hidden, as if no truth were known)
    _, none_kept = pseudo_label(model, pool, threshold=0.99, true_labels=truth, batch_size=4)
    assert none_kept.n_kept == 0 and "| true in pool | known | correct | accuracy |" in none_kept.to_markdown()
    out = write_pseudo_labels((kept, stats), tmp_path / "pl.csv")
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 6 and rows[0]["label"] == "cod"
    # A labelled set passed as the pool: its own labels are the truth.
    lab = Manifest(pool.paths[:6], truth[:6], ["cod", "eel"])
    _, s2 = pseudo_label(model, lab, threshold=0.0)
    assert s2.accuracy == pytest.approx((pred[:6] == truth[:6]).mean())
    # a pool none of whose files can be read is named (it failed in predict_manifest with "the
    # manifest holds no images")
    (tmp_path / "junk.png").write_text("no image")
    junk = Manifest([str(tmp_path / "junk.png")], np.full(1, -1), ["cod", "eel"])
    with pytest.raises(ManifestError, match=r"none of the unlabelled pool's 1 image\(s\) can be read \(.*junk.png"):
        pseudo_label(model, junk, threshold=0.8)


def test_joint_training_masks_the_unlabelled_rows(tmp_path):
    folder = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=6, size=(16, 16))
    m = sources.load(folder)
    lab, pool, truth = hide_labels(m, 0.5, seed=0)
    ds = joint_dataset(lab, pool, 16, 4, seed=0)
    n_lab = n_unlab = 0
    for x, y, w in ds:
        assert x.shape[1:] == (16, 16, 3) and w["reconstruction"].shape[1:] == (1, 1)
        lw = w["label"].numpy()
        n_lab += int((lw == 1).sum())
        n_unlab += int((lw == 0).sum())
        assert float(y["reconstruction"].numpy().max()) <= 1.0
    assert (n_lab, n_unlab) == (len(lab), len(pool))
    model = build_autoencoder(2, 16, filters=(4, 8, 8), dense_units=8)
    val = joint_dataset(lab, None, 16, 4, training=False)
    result = train_joint(model, ds, val, tmp_path / "run", epochs=1, learning_rate=1e-3, verbose=0)
    assert result.best_path is not None and result.best_path.is_file()
    row = result.history[0]
    assert {"val_label_accuracy", "reconstruction_mse", "label_crossentropy", "learning_rate"} <= set(row)
    # each term exactly, per image (before: Keras' per-output "*_loss" columns, which read
    # n/(n+1) of the loss on these datasets of unknown length; now left out)
    assert not {"label_loss", "val_label_loss", "reconstruction_loss", "val_reconstruction_loss"} & set(row)
    xs, ys, ws = zip(*[(x.numpy(), y, w) for x, y, w in val])
    x = np.concatenate(xs)
    out = result.model.predict(x, verbose=0)
    mse = float(np.mean((out["reconstruction"] - x / 255.0) ** 2))
    truth_val = np.concatenate([y["label"].numpy() for y in ys]).ravel().astype(int)
    ce = float(np.mean(-np.log(out["label"][np.arange(len(x)), truth_val])))
    assert row["val_reconstruction_mse"] == pytest.approx(mse, rel=1e-4)
    assert row["val_label_crossentropy"] == pytest.approx(ce, rel=1e-4)
    kept, stats = pseudo_label(result.model, pool, threshold=0.0, true_labels=truth)
    assert stats.n_kept == len(pool) and stats.accuracy is not None


def test_joint_training_resumes_after_a_kill(tmp_path):
    folder = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=6, size=(16, 16))
    lab, pool, _ = hide_labels(sources.load(folder), 0.5, seed=0)
    ds, val = joint_dataset(lab, pool, 16, 4, seed=0), joint_dataset(lab, None, 16, 4, training=False)
    run = tmp_path / "run"
    started: list[int] = []

    def model():
        return build_autoencoder(2, 16, filters=(4, 8, 8), dense_units=8)

    def kill_at(epoch):
        def hook(e, logs=None):
            started.append(e)
            if e == epoch:
                raise KeyboardInterrupt  # as a kill would, after epoch ``epoch`` - 1 finished

        return keras.callbacks.LambdaCallback(on_epoch_begin=hook)

    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_joint(model(), ds, val, run, epochs=3, learning_rate=1e-3, callbacks=[kill_at(1)], verbose=0)
    assert (run / "best.keras").is_file()
    first_epoch = next(csv.DictReader(open(run / "history.csv")))
    started.clear()
    result = train_joint(model(), ds, val, run, epochs=3, learning_rate=1e-3, resume=True,
                         callbacks=[kill_at(-1)], verbose=0)
    assert started == [1, 2]  # epoch 1 (0-based 0) was not trained again
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert {r["phase"] for r in result.history} == {"joint"}
    assert result.history[0]["loss"] == pytest.approx(float(first_epoch["loss"]))
    assert not (run / "backup").exists() and result.best_path == run / "best.keras"
    started.clear()  # a finished run trains nothing when resumed
    again = train_joint(model(), ds, val, run, epochs=3, resume=True, callbacks=[kill_at(-1)], verbose=0)
    assert started == [] and again.history == result.history


def test_mixed_dataset_yields_every_image_once(tmp_path):
    folder = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=5, size=(16, 16))
    m = sources.load(folder)
    a, b = m.subset(np.arange(4)), m.subset(np.arange(4, 10))
    ds = mixed_dataset([(a, "r1"), (b, "r1_pseudo")], 16, 3, seed=0)
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert sorted(labels.tolist()) == sorted(m.labels.tolist())


def test_a_pool_folder_follows_the_folder_readers_rules(tmp_path):
    import os

    flat = tmp_path / "flat"
    (flat / "__MACOSX").mkdir(parents=True)
    paths = _solid_images(flat, [10, 20])
    (flat / "__MACOSX" / "._a.png").write_bytes(b"resource fork")
    Path(os.fsdecode(os.path.join(os.fsencode(flat), b"caf\xe9.png"))).write_bytes(Path(paths[0]).read_bytes())
    (flat / "up").symlink_to(flat)  # a loop: followed about 40 levels deep before
    # before: the Latin-1 name crashed make_dataset later ("Error converting unicode string")
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        pool, _ = load_unlabelled(flat, ["cod", "eel"])
    assert len(pool) == 2


def test_a_per_output_loss_monitor_stays_in_the_history(tmp_path):
    # a first version left every per-output loss out of history.csv, the monitored one too: a
    # resume then found no best value and let a worse epoch replace best.keras
    folder = write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=4, size=(16, 16))
    m = sources.load(folder)
    ds = joint_dataset(m, None, 16, 4, seed=0)
    model = build_autoencoder(2, 16, filters=(4, 8, 8), dense_units=8)
    result = train_joint(model, ds, joint_dataset(m, None, 16, 4, training=False), tmp_path / "run",
                         epochs=1, learning_rate=1e-3, monitor="val_label_loss", verbose=0)
    row = result.history[0]
    assert "val_label_loss" in row and "label_loss" not in row and "val_reconstruction_loss" not in row
