"""Tests of keras_species.data.shards: round trip, per-worker sharding, weights, splits, record
order, CLI parser and errors."""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_species.data import sources
from keras_species.data.manifest import Manifest, ManifestError
from keras_species.data.pipeline import class_balance_weights, make_dataset
from keras_species.data.shards import configure_parser, read_sidecar, shard_dataset, write_shards
from tests.conftest import smooth_image


def folder_manifest(root: Path) -> Manifest:
    paths = sorted(str(p) for p in root.glob("*/*.*"))
    classes = sorted({Path(p).parent.name for p in paths})
    labels = np.array([classes.index(Path(p).parent.name) for p in paths])
    groups = [Path(p).stem.split("_")[1] for p in paths]
    return Manifest(paths, labels, classes, groups=groups, source=str(root))


def batches(ds):
    return [tuple(t.numpy() for t in b) for b in ds]


def records(files) -> list[dict]:
    """The features of every record, file after file, in the order written."""
    import tensorflow as tf

    out = []
    for file in files:
        for record in tf.data.TFRecordDataset([str(file)]):
            f = tf.train.Example.FromString(record.numpy()).features.feature
            out.append({"index": f["index"].int64_list.value[0], "label": list(f["label"].int64_list.value),
                        "split": f["split"].bytes_list.value[0].decode() if "split" in f else None})
    return out


def with_splits(m: Manifest) -> Manifest:
    """``m`` with 12 train, 3 val and 3 test rows, each split holding every class."""
    names = ["train", "train", "val", "train", "test", "train"] * 3
    return m.with_splits(names)


def test_round_trip_labels_and_images(image_folder, tmp_path):
    m = folder_manifest(image_folder)
    files = write_shards(m, tmp_path / "shards", image_size=24, shard_size=5, quality=95)
    assert len(files) == 4 and all(Path(f).exists() for f in files)
    doc = read_sidecar(tmp_path / "shards")
    assert doc["class_names"] == m.class_names and doc["n_images"] == 18
    assert [s["n"] for s in doc["shards"]] == [5, 5, 5, 3]
    ds = shard_dataset(tmp_path / "shards", 16, 18)
    assert ds.options().autotune.enabled is False  # as make_dataset (see dataset_options)
    order = [r["index"] for r in records(files)]  # the shuffled order written; `index` gives it back
    assert sorted(order) == list(range(18)) and order != list(range(18))
    got = batches(ds)
    ref = batches(make_dataset(m.subset(order), 16, 18, cache=False))
    (x, y), (xr, yr) = got[0], ref[0]
    np.testing.assert_array_equal(y, yr)  # labels kept, in the order of the files
    assert x.shape == (18, 16, 16, 3) and x.dtype == np.float32
    # 40x32 stored at 24x19 as JPEG q95 (PIL bicubic), then resized: two resamplings of noisy
    # stripes, close to the direct pipeline's one (mean error under 3% of the range)
    assert np.abs(x - xr).mean() < 6.5  # 6.1 measured with area averaging (under 6.0 with the triangle filter)


def test_a_file_cache_of_shards_is_keyed_by_their_content(image_folder, tmp_path):
    m = folder_manifest(image_folder)
    write_shards(m, tmp_path / "a", shard_size=100)
    write_shards(m.subset(m.labels == 0), tmp_path / "b", shard_size=100)
    cache = str(tmp_path / "cache" / "shards")
    (xa, ya), = batches(shard_dataset(tmp_path / "a", 16, 18, cache=cache))
    (xb, yb), = batches(shard_dataset(tmp_path / "b", 16, 18, cache=cache))  # not a's cache
    assert len(ya) == 18 and yb.tolist() == [0] * int((m.labels == 0).sum())
    (x20, _), = batches(shard_dataset(tmp_path / "a", 20, 18, cache=cache))
    assert x20.shape == (18, 20, 20, 3)
    (xa2, _), = batches(shard_dataset(tmp_path / "a", 16, 18, cache=cache))  # a's, read back
    np.testing.assert_array_equal(xa2, xa)


def test_small_images_are_stored_byte_for_byte(image_folder, tmp_path):
    import tensorflow as tf

    m = folder_manifest(image_folder)
    files = write_shards(m, tmp_path / "s", shard_size=100)
    record = next(iter(tf.data.TFRecordDataset(files)))
    ex = tf.train.Example.FromString(record.numpy())
    f = ex.features.feature
    i = f["index"].int64_list.value[0]  # the manifest's row of this record
    assert f["image"].bytes_list.value[0] == Path(m.paths[i]).read_bytes()
    assert f["path"].bytes_list.value[0].decode() == m.paths[i]
    assert f["group"].bytes_list.value[0].decode() == m.groups[i]
    assert list(f["label"].int64_list.value) == [int(m.labels[i])]
    assert f["split"].bytes_list.value[0] == b""  # a manifest without a split


def test_per_worker_shards_are_disjoint(image_folder, tmp_path):
    m = folder_manifest(image_folder)
    write_shards(m, tmp_path / "s", shard_size=4)  # 5 files
    seen = []
    for w in range(2):
        ds = shard_dataset(str(tmp_path / "s" / "*.tfrecord"), 8, 32, label_mode="onehot",
                           num_workers=2, worker_index=w)
        (x, y), = batches(ds)
        seen.append({tuple(np.round(img.ravel()[:24]).astype(int)) for img in x})
    assert seen[0].isdisjoint(seen[1])
    assert len(seen[0]) + len(seen[1]) == 18
    with pytest.raises(ValueError, match="at least one"):
        shard_dataset(tmp_path / "s", 8, num_workers=6, worker_index=0)


def test_multilabel_weights_and_training(image_folder, tmp_path):
    m = folder_manifest(image_folder)
    hot = m.label_matrix()
    hot[::4, 0] = 1
    hot[1, :] = 0  # one tag-free row
    multi = Manifest(m.paths, hot, m.class_names)
    files = write_shards(multi, tmp_path / "s", shard_size=6)
    order = [r["index"] for r in records(files)]
    (x, y, w), = batches(shard_dataset(tmp_path / "s", 8, 18, sample_weights="balanced"))
    np.testing.assert_array_equal(y, hot[order])
    np.testing.assert_allclose(w, class_balance_weights(multi)[order], rtol=1e-5)
    ds = shard_dataset(tmp_path / "s", 8, 6, training=True, augment="r1", batch_augment="mixup",
                       seed=0)
    shapes = [(b[0].shape, b[1].shape) for b in batches(ds)]
    assert shapes == [((6, 8, 8, 3), (6, 3))] * 3


def test_bad_file_left_out(image_folder, tmp_path):
    (image_folder / "cod" / "fish_9_broken.png").write_bytes(b"not a png")
    m = folder_manifest(image_folder)
    with pytest.warns(UserWarning, match="broken.png"):
        write_shards(m, tmp_path / "s")
    doc = json.loads((tmp_path / "s" / "shards.json").read_text())
    assert doc["n_images"] == 18 and any("broken.png" in p for p in doc["skipped"])


def test_a_file_damaged_inside_is_left_out_not_stored_as_it_is(image_folder, tmp_path):
    # one byte flipped in a PNG's pixel data: its two ends pass the file check, it was stored byte
    # for byte, and the reader (which skips nothing) stopped mid-epoch on "Invalid PNG data"
    good = (image_folder / "cod").glob("*.png").__next__().read_bytes()
    bad = bytearray(good)
    bad[bad.find(b"IDAT") + 20] ^= 0xFF
    (image_folder / "cod" / "fish_9_flipped.png").write_bytes(bytes(bad))
    m = folder_manifest(image_folder)
    with pytest.warns(UserWarning, match="flipped.png"):
        write_shards(m, tmp_path / "s")
    doc = json.loads((tmp_path / "s" / "shards.json").read_text())
    assert doc["n_images"] == 18 and any("flipped.png" in p for p in doc["skipped"])
    assert sum(len(b[0]) for b in batches(shard_dataset(tmp_path / "s", 8, 6))) == 18
    # judged by the reader's decoder (TensorFlow's), not PIL's: a bad checksum on the pixels
    # (which PIL passes) is left out, one on a text chunk (which PIL refuses) is stored and read
    import zlib

    def chunk(kind: bytes, body: bytes, crc_ok: bool = True) -> bytes:
        crc = zlib.crc32(kind + body) ^ (0 if crc_ok else 1)
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    end = good.rfind(b"IEND") - 4
    text_bad = good[:end] + chunk(b"tEXt", b"note\x00hi", crc_ok=False) + good[end:]
    at = good.find(b"IDAT") - 4
    size = int.from_bytes(good[at:at + 4], "big")
    crc_bad = bytearray(good)
    crc_bad[at + 8 + size] ^= 0xFF  # the first IDAT's checksum
    folder = tmp_path / "crc"
    for name, data in (("text_bad", text_bad), ("crc_bad", bytes(crc_bad))):
        (folder / "cod").mkdir(parents=True, exist_ok=True)
        (folder / "cod" / f"fish_1_{name}.png").write_bytes(data)
    (folder / "cod" / "fish_2_ok.png").write_bytes(good)
    with pytest.warns(UserWarning, match="crc_bad.png"):
        write_shards(folder_manifest(folder), tmp_path / "s2")
    doc = json.loads((tmp_path / "s2" / "shards.json").read_text())
    assert doc["n_images"] == 2 and [Path(p).name for p in doc["skipped"]] == ["fish_1_crc_bad.png"]


@pytest.mark.parametrize("option, match", [({"image_size": 0}, "--image-size"), ({"quality": 0}, "--quality"),
                                           ({"quality": 101}, "from 1 to 100"), ({"workers": 0}, "--workers"),
                                           ({"image_size": True}, "--image-size"),  # stored 1x1 images
                                           ({"image_size": 8.5}, "--image-size"), ({"quality": 50.5}, "--quality"),
                                           ({"shard_size": 2.5}, "shard_size=2.5"), ({"shard_size": "5"}, "shard_size")])
def test_settings_that_cannot_work_are_refused_before_any_work(image_folder, tmp_path, option, match):
    with pytest.raises(ValueError, match=match):
        write_shards(folder_manifest(image_folder), tmp_path / "s", **option)
    assert not (tmp_path / "s").exists()


def test_cli_parser_defaults():
    p = argparse.ArgumentParser()
    configure_parser(p)
    args = p.parse_args(["--out", "x", "--image-size", "64"])
    assert (args.data, args.image_size, args.shard_size, args.seed) == ("demo", 64, 1000, 0)


def test_cli_writes_shards_of_a_folder(image_folder, tmp_path, capsys):
    from keras_species.data.shards import run_cli

    p = argparse.ArgumentParser()
    configure_parser(p)
    args = p.parse_args([str(image_folder), "--out", str(tmp_path / "out"), "--shard-size", "10"])
    assert run_cli(args) == 0
    assert "18 of 18 images" in capsys.readouterr().out
    assert read_sidecar(tmp_path / "out")["n_images"] == 18


def test_cli_errors_are_one_line_naming_the_input(image_folder, tmp_path, capsys):
    from keras_species.cli import main

    assert main(["shard", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err.startswith(f"keras-species shard: {tmp_path / 'missing'}")
    (tmp_path / "afile").write_text("x")
    assert main(["shard", str(image_folder), "--out", str(tmp_path / "afile")]) == 2
    assert "afile (--out) is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["shard", str(image_folder), "--out", str(tmp_path / "o3"), "--workers", "0"])
    assert "--workers: '0' must be at least 1" in capsys.readouterr().err


def test_a_second_write_replaces_the_first_and_only_listed_shards_are_read(image_folder, tmp_path):
    import tensorflow as tf

    m = folder_manifest(image_folder)
    out = tmp_path / "s"
    assert len(write_shards(m, out, shard_size=5)) == 4
    one_class = m.subset(m.labels == 0)
    with pytest.warns(UserWarning, match="removed 4 shard file"):
        files = write_shards(one_class, out, shard_size=100)
    assert sorted(p.name for p in out.glob("*.tfrecord")) == ["shard-00000-of-00001.tfrecord"] == [
        Path(f).name for f in files]
    (_, y), = batches(shard_dataset(out, 16, 64))
    assert y.tolist() == [0] * len(one_class)
    # a .tfrecord that shards.json does not list: not read from the folder, refused by a pattern
    with tf.io.TFRecordWriter(str(out / "other.tfrecord")) as w:
        w.write(b"not an example")
    (_, y), = batches(shard_dataset(out, 16, 64))
    assert len(y) == len(one_class)
    with pytest.raises(ValueError, match=r"does not list, e.g. .*other.tfrecord"):
        shard_dataset(str(out / "*.tfrecord"), 16, 64)
    (out / "shard-00000-of-00001.tfrecord").unlink()
    with pytest.raises(FileNotFoundError, match="listed in .*shards.json are missing"):
        shard_dataset(out, 16, 64)


@pytest.mark.parametrize("data, why", [
    (b'{"format": "keras-species-shards/1", "class_na', r"not valid JSON \(Unterminated string "
                                                         r"starting at line 1 column 38\)"),
    (b"", "empty file"),
    (b'{"source": "caf\xe9"}', r"not UTF-8 text \(byte 0xe9 at offset 15\)"),
    (b'["shard-00000-of-00001.tfrecord"]', "holds a JSON array, not an object"),
])
def test_a_damaged_shards_json_is_named_with_the_way_out(tmp_path, data, why):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "shards.json").write_bytes(data)
    with pytest.raises(ManifestError, match=rf"shards\.json is damaged \({why}\): write the shards "
                                            "again with `keras-species shard`"):
        read_sidecar(tmp_path / "s")
    with pytest.raises(ManifestError, match=r"shards\.json is damaged"):
        shard_dataset(tmp_path / "s", 16, 4)


@pytest.mark.parametrize("flag, value, why", [
    ("--shard-size", "0", "must be at least 1"), ("--shard-size", "-3", "must be at least 1"),
    ("--image-size", "-5", "must be at least 1 (or leave it out to keep every image's size)"),
    ("--quality", "0", "must be from 1 to 100 (a JPEG quality)"), ("--quality", "101", "must be from 1 to 100"),
])
def test_cli_names_the_flag_of_a_number_that_cannot_work(image_folder, tmp_path, capsys, flag, value, why):
    from keras_species.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["shard", str(image_folder), "--out", str(tmp_path / "s"), flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: '{value}' {why}" in err and "_size=" not in err and "quality=" not in err
    assert not (tmp_path / "s").exists()  # refused before any work
    with pytest.raises(ValueError, match=r"^shard_size=0 must be at least 1"):  # the API's own words
        write_shards(folder_manifest(image_folder), tmp_path / "s", shard_size=0)


def test_a_shard_folder_is_named_as_such(image_folder, tmp_path):
    from keras_species.data.shards import shard_folder_problem

    assert shard_folder_problem(image_folder) is None
    m = folder_manifest(image_folder)
    write_shards(m, tmp_path / "s", shard_size=100)
    why = shard_folder_problem(tmp_path / "s")
    assert why.startswith(f"{tmp_path / 's'} is a folder of TFRecord shards written by "
                          "`keras-species shard` (it holds shards.json), not images: ")
    assert f"give the data the shards were written from ({image_folder})" in why
    assert "shard_dataset(" in why and "\n" not in why
    with pytest.raises(ManifestError, match="is a folder of TFRecord shards"):
        sources.load(tmp_path / "s")  # what audit, split and a recipe's --data meet
    with pytest.raises(ManifestError, match="is a folder of TFRecord shards"):
        sources.load(tmp_path / "s" / "shards.json")  # its sidecar given: not "not an iNat JSON"
    (tmp_path / "s" / "shards.json").write_bytes(b"")  # damaged: still a shard folder, no source named
    why = shard_folder_problem(tmp_path / "s")
    assert "give the data the shards were written from;" in why


# ---------------------------------------------------------------------------------- splits
def test_the_split_is_kept_and_each_split_is_read_alone(image_folder, tmp_path):
    m = with_splits(folder_manifest(image_folder))
    files = write_shards(m, tmp_path / "s", shard_size=5)
    doc = read_sidecar(tmp_path / "s")
    assert doc["splits"] == {"test": 3, "train": 12, "val": 3}
    assert sum(sum(sh["splits"].values()) for sh in doc["shards"]) == 18
    assert all(r["split"] == m.splits[r["index"]] for r in records(files))  # each record's own split
    for name in ("train", "val", "test"):
        part = m.split(name)
        assert read_sidecar(tmp_path / "s", split=name)["n_images"] == len(part)
        (_, y), = batches(shard_dataset(tmp_path / "s", 8, 32, split=name))
        assert sorted(y.tolist()) == sorted(part.labels.tolist())  # that split's images, no others
    (_, y), = batches(shard_dataset(tmp_path / "s", 8, 32))  # no split: all of them
    assert len(y) == 18
    # weights from the split's own label counts, as make_dataset(m.split("train")) computes them
    train = m.split("train")
    (_, y, w), = batches(shard_dataset(tmp_path / "s", 8, 32, split="train", sample_weights="balanced"))
    ref = class_balance_weights(train)
    np.testing.assert_allclose(w, [ref[train.labels.tolist().index(k)] for k in y], rtol=1e-5)
    # per worker: disjoint, together the whole split
    seen = [len(batches(shard_dataset(tmp_path / "s", 8, 32, split="val", num_workers=2, worker_index=i))[0][1])
            for i in range(2)]
    assert sum(seen) == 3
    # a file cache of one split is not read back for another
    cache = str(tmp_path / "cache" / "c")
    (_, ya), = batches(shard_dataset(tmp_path / "s", 8, 32, split="train", cache=cache))
    (_, yt), = batches(shard_dataset(tmp_path / "s", 8, 32, split="test", cache=cache))
    assert (len(ya), len(yt)) == (12, 3)


def test_missing_files_empty_workers_and_other_sidecars_are_named(image_folder, tmp_path):
    # stop 30: a pattern skipped a listed shard that was gone (22 of 30 images, no word); a worker
    # whose files held none of the split's images yielded nothing; another format version was
    # "not a keras-species shard description"; a sidecar without n_unlabelled was a KeyError
    import json
    import shutil

    m = with_splits(folder_manifest(image_folder))
    write_shards(m, tmp_path / "s", shard_size=2)  # 9 files: some hold no 'val' image
    doc = read_sidecar(tmp_path / "s")
    empty = [i for i, e in enumerate(doc["shards"]) if not e["splits"].get("val")]
    with pytest.raises(ValueError, match=rf"worker {empty[0]} of 9 gets no image of split 'val'"):
        shard_dataset(tmp_path / "s", 8, 4, split="val", num_workers=9, worker_index=empty[0])
    gone = tmp_path / "gone"
    shutil.copytree(tmp_path / "s", gone)
    (gone / doc["shards"][1]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"1 shard file\(s\) that '.*shard-\*' matches in .*list are missing"):
        shard_dataset(str(gone / "shard-*"), 8, 4)
    for change, match in (({"format": "keras-species-shards/3"}, "of format 'keras-species-shards/3'"),
                          ({"n_unlabelled": None}, "it has no 'n_unlabelled'")):
        other = tmp_path / f"other{len(match)}"
        shutil.copytree(tmp_path / "s", other)
        side = json.loads((other / "shards.json").read_text())
        side.update(change)
        side = {k: v for k, v in side.items() if v is not None}
        (other / "shards.json").write_text(json.dumps(side))
        with pytest.raises(ManifestError, match=match):
            shard_dataset(other, 8, 4)


def test_a_pattern_is_counted_over_the_files_it_picks(image_folder, tmp_path):
    # the folder's count stood for a pattern's files: one file of 2 images with batch 4 and
    # drop_remainder yielded no batch, and a file without a 'val' image yielded nothing, where a
    # worker's share of the same file was refused
    m = with_splits(folder_manifest(image_folder))
    write_shards(m, tmp_path / "s", shard_size=2)
    doc = read_sidecar(tmp_path / "s")
    first = str(tmp_path / "s" / doc["shards"][0]["file"])
    with pytest.raises(ValueError, match=r"2 image\(s\) and batch_size=4 with drop_remainder=True"):
        shard_dataset(first, 8, 4, training=True, drop_remainder=True, seed=0)
    no_val = next(e["file"] for e in doc["shards"] if not e["splits"].get("val"))
    with pytest.raises(ValueError, match=rf".*{no_val} reads no image of split 'val': its shard file\(s\) "
                       rf"\({no_val}\) hold none; give a pattern that picks files holding some"):
        shard_dataset(str(tmp_path / "s" / no_val), 8, 4, split="val")


def test_shards_of_images_without_labels_read_back_without_labels(image_folder, tmp_path):
    # a list of paths has no class: the check of the label mode built a row of class 0 and
    # refused every read ("label index 0 of row 0 ('x') is outside 0..-1")
    paths = folder_manifest(image_folder).paths[:5]
    m = Manifest(paths, np.full(len(paths), -1), [])
    write_shards(m, tmp_path / "s")
    for mode in ("auto", "none"):
        (x,) = [b.numpy() for b in shard_dataset(tmp_path / "s", 8, 8, label_mode=mode)]  # images alone
        assert x.shape == (5, 8, 8, 3)


def test_a_split_the_shards_do_not_have_is_named_with_those_they_have(image_folder, tmp_path):
    write_shards(with_splits(folder_manifest(image_folder)), tmp_path / "s", shard_size=5)
    for read in (lambda: shard_dataset(tmp_path / "s", 8, split="valid"),
                 lambda: read_sidecar(tmp_path / "s", split="valid")):
        with pytest.raises(ValueError, match=r"split='valid': the shards in .* have no such split; "
                                             r"they have 'test', 'train', 'val'"):
            read()
    write_shards(folder_manifest(image_folder), tmp_path / "n", shard_size=5)  # no split column
    assert read_sidecar(tmp_path / "n")["splits"] == {}
    with pytest.raises(ValueError, match="split='train': the shards in .* hold no split"):
        shard_dataset(tmp_path / "n", 8, split="train")


def test_shards_written_without_the_split_feature_still_read(image_folder, tmp_path):
    """Shards of an older keras-species: no `split` feature, no splits/seed in shards.json."""
    import tensorflow as tf

    m = folder_manifest(image_folder)
    out = tmp_path / "old"
    out.mkdir()
    names = ["shard-00000-of-00002.tfrecord", "shard-00001-of-00002.tfrecord"]
    for s, name in enumerate(names):
        with tf.io.TFRecordWriter(str(out / name)) as w:
            for i in range(s * 9, s * 9 + 9):
                feature = {
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[Path(m.paths[i]).read_bytes()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(m.labels[i])])),
                    "group": tf.train.Feature(bytes_list=tf.train.BytesList(value=[m.groups[i].encode()])),
                    "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[m.paths[i].encode()])),
                    "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                }
                w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    counts = {str(k): int((m.labels == k).sum()) for k in range(3)}
    (out / "shards.json").write_text(json.dumps({
        "format": "keras-species-shards/1", "class_names": m.class_names, "multilabel": False,
        "n_images": 18, "n_unlabelled": 0, "image_size": None, "quality": 95,
        "shards": [{"file": n, "n": 9} for n in names], "label_sets": counts, "source": str(image_folder),
        "skipped": {}}))
    (_, y, w), = batches(shard_dataset(out, 8, 32, sample_weights="balanced"))
    np.testing.assert_array_equal(y, m.labels)
    np.testing.assert_allclose(w, class_balance_weights(m), rtol=1e-5)
    assert len(batches(shard_dataset(out, 8, 6, training=True, seed=0))) == 3
    with pytest.raises(ValueError, match="hold no split"):
        shard_dataset(out, 8, split="train")


# ---------------------------------------------------------------------------------- order
def test_records_are_shuffled_across_shards_with_a_seed(image_folder, tmp_path):
    m = folder_manifest(image_folder)  # sorted by class: cod x6, eel x6, ray x6
    files = write_shards(m, tmp_path / "a", shard_size=5)  # 4 shards
    per_file = [records([f]) for f in files]
    assert all(len({r["label"][0] for r in recs}) > 1 for recs in per_file)  # every shard mixes classes
    order = [r["index"] for recs in per_file for r in recs]
    assert sorted(order) == list(range(18))
    again = write_shards(m, tmp_path / "b", shard_size=5, seed=0)
    assert [r["index"] for r in records(again)] == order  # the same seed: the same order
    other = write_shards(m, tmp_path / "c", shard_size=5, seed=7)
    assert [r["index"] for r in records(other)] != order
    assert read_sidecar(tmp_path / "c")["seed"] == 7
    # three workers each read one file of three: each sees every class
    write_shards(m, tmp_path / "w", shard_size=6)
    for i in range(3):
        (_, y), = batches(shard_dataset(tmp_path / "w", 8, 32, num_workers=3, worker_index=i))
        assert len(set(y.tolist())) > 1
    with pytest.raises(ValueError, match=r"seed=-1 \(--seed\) must be a whole number, at least 0"):
        write_shards(m, tmp_path / "d", seed=-1)


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("where", ["makedirs", "writer"])
def test_an_output_that_cannot_be_written_is_one_line_naming_out(image_folder, tmp_path, capsys,
                                                                   monkeypatch, where):
    import tensorflow as tf

    from keras_species.cli import main

    out = str(tmp_path / "ro" / "sh")

    def refuse(path, *args, **kwargs):
        raise tf.errors.PermissionDeniedError(None, None, f"{path}; Read-only file system")

    if where == "makedirs":  # the folder cannot be made
        monkeypatch.setattr(tf.io.gfile, "makedirs", refuse)
    else:  # the folder is there, its files cannot be written
        monkeypatch.setattr(tf.io, "TFRecordWriter", refuse)
        monkeypatch.setattr(tf.io.gfile, "GFile", refuse)
    assert main(["shard", str(image_folder), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err == (f"keras-species shard: {out} (--out) cannot be written (Read-only file system): "
                   "give another --out, in a folder you can write to that has free space\n")
    with pytest.raises(OSError) as raised:  # the API: an OSError with the errno
        write_shards(folder_manifest(image_folder), out)
    assert raised.value.errno == errno.EROFS and "(--out)" in str(raised.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into a read-only folder (chmod 0o555)")
def test_a_folder_without_write_permission_is_named(image_folder, tmp_path, capsys):
    from keras_species.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["shard", str(image_folder), "--out", str(ro)]) == 2
        assert main(["shard", str(image_folder), "--out", str(ro / "sh")]) == 2
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("keras-species shard: ") for line in err)
    assert f"{ro} (--out) cannot be written (Permission denied)" in err[0]
    assert f"{ro / 'sh'} (--out) cannot be written (Permission denied)" in err[1]


def test_cli_keeps_the_split_and_the_seed(image_folder, tmp_path, capsys):
    from keras_species.cli import main

    m = with_splits(folder_manifest(image_folder))
    csv = tmp_path / "labels.csv"
    m.to_csv(csv)
    assert main(["shard", str(csv), "--out", str(tmp_path / "s"), "--shard-size", "4", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "splits kept: test=3 train=12 val=3" in out and "--seed 3" in out
    doc = read_sidecar(tmp_path / "s")
    assert doc["seed"] == 3 and doc["splits"] == {"test": 3, "train": 12, "val": 3}


# ---------------------------------------------------------------------------------- atomic
def _record_counter(monkeypatch, after: int, error: type[BaseException] = KeyboardInterrupt):
    """Make the writer fail (``error``) on its record number ``after`` + 1, as a run stopped
    half way through a shard."""
    from keras_species.data import shards as shards_mod

    real, seen = shards_mod._example, []

    def example(*args, **kwargs):
        seen.append(1)
        if len(seen) > after:
            raise error("stopped half way")
        return real(*args, **kwargs)

    monkeypatch.setattr(shards_mod, "_example", example)


def test_a_write_stopped_half_way_leaves_the_earlier_shards_as_they_were(image_folder, tmp_path, monkeypatch):
    # before: the shards were written under their final names, over the earlier write's, whose
    # shards.json then described a mix of old and new (a half-written) files as complete
    m = folder_manifest(image_folder)
    out = tmp_path / "s"
    files = write_shards(m, out, shard_size=5)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _record_counter(monkeypatch, after=7)  # shard 0 complete, shard 1 half written
    with pytest.raises(KeyboardInterrupt):
        write_shards(m, out, shard_size=5, seed=7)  # the same names, another order
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary file left
    (_, y), = batches(shard_dataset(out, 8, 32))
    assert y.tolist() == [m.labels[r["index"]] for r in records(files)]  # the earlier write, whole


def test_a_write_stopped_while_renaming_leaves_no_shards_json(image_folder, tmp_path, monkeypatch):
    from keras_species.data import shards as shards_mod

    m = folder_manifest(image_folder)
    out = tmp_path / "s"
    write_shards(m, out, shard_size=5)
    real, moved = shards_mod._move_in, []

    def move_in(tmp, path):
        if moved:
            raise KeyboardInterrupt  # stopped after the first rename
        moved.append(path)
        real(tmp, path)

    monkeypatch.setattr(shards_mod, "_move_in", move_in)
    with pytest.raises(KeyboardInterrupt):
        write_shards(m, out, shard_size=5, seed=7)
    assert not (out / "shards.json").exists()  # the folder reads as incomplete, not as complete
    with pytest.raises(FileNotFoundError, match=r"shards.json is missing: .* a write that did not "
                                                r"finish leaves none; write the shards again"):
        read_sidecar(out)
    assert not list(out.glob(".*.tmp-*"))


def test_a_killed_writes_temporary_files_are_removed_by_the_next_write(image_folder, tmp_path, dead_pid):
    out = tmp_path / "s"
    out.mkdir()
    left = [f".shard-00000-of-00004.tmp-{dead_pid}.tfrecord", f".shards.tmp-{dead_pid}.json"]
    for name in left:
        (out / name).write_bytes(b"half")
    (out / ".shard-00000-of-00004.tmp-x1.tfrecord").write_bytes(b"not a name a write gives")
    write_shards(folder_manifest(image_folder), out, shard_size=100)
    assert sorted(p.name for p in out.iterdir()) == [".shard-00000-of-00004.tmp-x1.tfrecord",
                                                     "shard-00000-of-00001.tfrecord", "shards.json"]


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_shard_write_killed_outright_leaves_no_complete_looking_files(image_folder, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "s"
    code = (
        "import os, signal, sys\n"
        "from keras_species.data import shards, sources\n"
        "real, seen = shards._example, []\n"
        "def example(*a, **k):\n"
        "    seen.append(1)\n"
        "    if len(seen) > 7:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(*a, **k)\n"
        "shards._example = example\n"
        "shards.write_shards(sources.load(sys.argv[1]), sys.argv[2], shard_size=5)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(image_folder), str(out)],
                          capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert not any(n.startswith("shard-") for n in names) and "shards.json" not in names, names
    assert any(n.startswith(".shard-00000-of-00004.tmp-") for n in names), names
    with pytest.raises(FileNotFoundError, match="shards.json is missing"):
        read_sidecar(out)
    write_shards(folder_manifest(image_folder), out, shard_size=5)  # removes the killed write's
    assert sorted(p.name for p in out.iterdir()) == [*(f"shard-0000{i}-of-00004.tfrecord" for i in range(4)),
                                                     "shards.json"]


# ---------------------------------------------------------------------------------- one split
def test_one_split_is_written_alone_keeping_its_rows(image_folder, tmp_path):
    m = with_splits(folder_manifest(image_folder))
    files = write_shards(m, tmp_path / "val", shard_size=2, split="val")
    doc = read_sidecar(tmp_path / "val")
    assert doc["n_images"] == 3 and doc["splits"] == {"val": 3} and len(files) == 2
    recs = records(files)
    assert sorted(r["index"] for r in recs) == [i for i, s in enumerate(m.splits) if s == "val"]
    assert all(r["split"] == "val" for r in recs)
    (_, y), = batches(shard_dataset(tmp_path / "val", 8, 32))
    assert sorted(y.tolist()) == sorted(m.split("val").labels.tolist())
    (_, y), = batches(shard_dataset(tmp_path / "val", 8, 32, split="val"))
    assert len(y) == 3


def test_a_split_the_data_does_not_have_is_refused_before_any_work(image_folder, tmp_path):
    m = with_splits(folder_manifest(image_folder))
    with pytest.raises(ValueError, match=r"^split='valid' \(--split\) is not a split of the data "
                                         r"\(.*\); it has 'test', 'train', 'val'$"):
        write_shards(m, tmp_path / "s", split="valid")
    with pytest.raises(ManifestError, match=r"split='train' \(--split\): the data .* has no split column"):
        write_shards(folder_manifest(image_folder), tmp_path / "s", split="train")
    assert not (tmp_path / "s").exists()


def test_cli_writes_one_split(image_folder, tmp_path, capsys):
    from keras_species.cli import main

    m = with_splits(folder_manifest(image_folder))
    csv = tmp_path / "labels.csv"
    m.to_csv(csv)
    assert main(["shard", str(csv), "--out", str(tmp_path / "train"), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "wrote 12 of the 12 images of split 'train' (--split; the data: 18 images" in out
    assert "splits kept" not in out
    assert read_sidecar(tmp_path / "train")["splits"] == {"train": 12}
    assert main(["shard", str(csv), "--out", str(tmp_path / "x"), "--split", "valid"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-species shard: split='valid' (--split) is not a split of the data (")
    assert err.endswith("; it has 'test', 'train', 'val'\n") and not (tmp_path / "x").exists()


def test_a_url_is_written_through_gfile_renames(image_folder, tmp_path, monkeypatch):
    # TensorFlow's in-memory file system stands for gs://: the URL branch (tf.io.gfile.rename,
    # no process check of a killed write's temporary files), without a network
    import tensorflow as tf

    from keras_species.data import shards as shards_mod

    out = f"ram://{tmp_path.name}/sh"
    renamed = []
    rename = tf.io.gfile.rename
    monkeypatch.setattr(tf.io.gfile, "rename", lambda a, b, overwrite=False: (renamed.append(b), rename(a, b, overwrite)))
    monkeypatch.setattr(shards_mod, "commit", lambda *a: pytest.fail("a URL moved with os.replace"))
    tf.io.gfile.makedirs(out)
    with tf.io.gfile.GFile(f"{out}/.shards.tmp-1.json", "w") as f:  # a killed write's, elsewhere
        f.write("{")
    files = write_shards(folder_manifest(image_folder), out, shard_size=10)
    assert renamed == [*files, f"{out}/shards.json"]
    assert sorted(tf.io.gfile.listdir(out)) == ["shard-00000-of-00002.tfrecord", "shard-00001-of-00002.tfrecord",
                                                "shards.json"]
    (_, y), = batches(shard_dataset(out, 8, 32))
    assert len(y) == 18


def test_a_class_whose_every_file_is_unreadable_is_named(image_folder, tmp_path):
    # before: the shards silently held no image of eel, while split and audit named the class
    for p in (image_folder / "eel").glob("*.png"):
        p.write_bytes(b"")
    with pytest.warns(UserWarning) as caught:
        write_shards(folder_manifest(image_folder), tmp_path / "s")
    said = [str(w.message) for w in caught]
    assert any(m.startswith("left 6 unreadable image(s) out of the shards") for m in said)
    assert ("the shards hold no image of 1 class: eel (every file of each is unreadable; the "
            "reasons are above and in shards.json's 'skipped'). A model would still get an output "
            "for each that it can never learn: fix or replace those files, or take the class out "
            "of the data") in said
    doc = read_sidecar(tmp_path / "s")
    assert doc["class_names"] == ["cod", "eel", "ray"] and doc["n_images"] == 12


def test_cli_reads_oversized_files_with_max_pixels_and_says_so_when_it_skips_them(
        image_folder, tmp_path, capsys):
    # before: shard had no --max-pixels (only audit did) and named no way to read them
    from PIL import Image

    from keras_species import cli
    from keras_species.data import images

    Image.new("RGB", (60, 60)).save(image_folder / "cod" / "scan.png")  # 3,600 pixels
    before = images.get_max_pixels()
    out = tmp_path / "s"
    with pytest.warns(UserWarning, match="left 1 unreadable image"):
        assert cli.main(["shard", str(image_folder), "--out", str(out), "--max-pixels", "2000"]) == 0
    assert ("1 file is over the decompression-bomb limit of 2,000 pixels (3,600 pixels): if you "
            "trust it, pass --max-pixels 3600 to read it, or resize it\n") in capsys.readouterr().err
    assert read_sidecar(out)["n_images"] == 18 and images.get_max_pixels() == before
    assert cli.main(["shard", str(image_folder), "--out", str(out), "--max-pixels", "3600"]) == 0
    assert "decompression-bomb" not in capsys.readouterr().err
    assert read_sidecar(out)["n_images"] == 19 and images.get_max_pixels() == before


def test_a_big_jpeg_is_read_at_a_reduced_scale_and_stored_at_the_size_it_was(tmp_path, monkeypatch):
    from keras_species.data import images
    from keras_species.data.shards import _encode

    arr = smooth_image(1200, 1600)
    Image.fromarray(arr).save(tmp_path / "wide.jpg", quality=90)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored 1600 x 1200, upright 1200 wide and 1600 high
    im.save(tmp_path / "sideways.jpg", quality=90, exif=exif.tobytes())
    drafts = []
    read = images.read_image
    monkeypatch.setattr(images, "read_image", lambda p, **kw: drafts.append(kw.get("draft")) or read(p, **kw))
    from keras_species.data.pipeline import KIND_FAST, KIND_PIL

    for name, kind, stored in (("wide.jpg", KIND_FAST, (200, 150)), ("sideways.jpg", KIND_PIL, (150, 200))):
        data, reason = _encode(str(tmp_path / name), kind, 200, 95)
        assert reason == ""
        assert Image.open(io.BytesIO(data)).size == stored  # upright, longest side 200
    # the drafts asked for (height, width): 1600 // 200 = 1200 // 150 = 8, so both decode at
    # 1/8 scale, exactly the stored size, instead of at full size
    assert drafts == [(150, 200), (200, 150)]


def test_pngs_are_sized_from_their_header_and_stored_upright(tmp_path, monkeypatch):
    # a PNG's EXIF (an eXIf chunk) comes before its pixels: the size is read without decoding
    # them (PIL's getexif would), and a sideways PNG is stored upright, as read_image reads it
    from PIL import PngImagePlugin

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import classify_file
    from keras_species.data.shards import _encode

    arr = smooth_image(20, 60)
    Image.fromarray(arr).save(tmp_path / "plain.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60 wide and 20 high, upright 20 wide and 60 high
    Image.fromarray(arr).save(tmp_path / "sideways.png", exif=exif.tobytes())
    plain, sideways = str(tmp_path / "plain.png"), str(tmp_path / "sideways.png")
    data, reason = _encode(sideways, classify_file(sideways)[0], 30, 95)
    assert reason == "" and Image.open(io.BytesIO(data)).size == (10, 30)
    upright = np.asarray(Image.open(io.BytesIO(data)).resize((20, 60), Image.Resampling.BILINEAR), np.float32)
    assert np.abs(upright - read_image(sideways)).mean() < 12  # upright, not stored sideways
    loads = []
    real_load = PngImagePlugin.PngImageFile.load

    def counted_load(self):
        if self.tile:  # pixels still to decode (load is called again once they are)
            loads.append(1)
        return real_load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counted_load)
    data, reason = _encode(plain, classify_file(plain)[0], 30, 95)  # shrunk: decoded once, to shrink
    assert reason == "" and len(loads) == 1  # (its size came from the header: getexif decoded too)
    loads.clear()
    data, reason = _encode(plain, classify_file(plain)[0], 100, 95)  # small enough: kept as it is,
    assert reason == "" and data == (tmp_path / "plain.png").read_bytes()
    assert not loads  # not by PIL (since stop 35 TensorFlow decodes it once, to check it)


def test_big_jpegs_read_from_shards_as_training_reads_their_files(tmp_path):
    # before: a JPEG stored as it is was decoded at full size and area-averaged, where training
    # and predict decode it at libjpeg's reduced scale: up to 27 levels apart
    y, x = np.mgrid[0:600, 0:800]
    photo = np.stack([x % 256, y % 256, (x * y) % 256], -1).astype(np.uint8)
    for c, arr in (("cod", photo), ("eel", photo[::-1].copy())):
        (tmp_path / "d" / c).mkdir(parents=True)
        Image.fromarray(arr).save(tmp_path / "d" / c / "photo.jpg", quality=90)
    Image.fromarray(photo[:90, :120]).save(tmp_path / "d" / "cod" / "small.png")
    m = sources.load(tmp_path / "d")
    write_shards(m, tmp_path / "shards")
    for size in (64, (100, 300), 400):  # decoded at 1/8, at 1/2 and at full scale
        from_shards = np.concatenate([b[0].numpy() for b in shard_dataset(tmp_path / "shards", size, 3)])
        from_files = np.concatenate([b[0].numpy() for b in make_dataset(m, size, 3, cache=False)])
        for img in from_files:  # shards are shuffled: each file's image is one of them, exactly
            assert min(np.abs(s - img).max() for s in from_shards) == 0, size


def test_a_damaged_shard_file_is_named_not_its_images_dropped(image_folder, tmp_path):
    # before: a shard cut short or overwritten lost its images without a word (ignore_errors)
    import shutil

    m = sources.load(image_folder)
    write_shards(m, tmp_path / "sh", shard_size=5)
    first = sorted((tmp_path / "sh").glob("*.tfrecord"))[1]
    for damage in (b"garbage" * 10, first.read_bytes()[: first.stat().st_size // 2]):
        shutil.copytree(tmp_path / "sh", tmp_path / "d", dirs_exist_ok=True)
        (tmp_path / "d" / first.name).write_bytes(damage)
        with pytest.raises(ManifestError, match=rf"{first.name} is damaged: it holds [\d,]+ bytes, and "
                                                 rf"{first.stat().st_size:,} were written"):
            shard_dataset(tmp_path / "d", 16, 4)
    n = sum(len(b[0]) for b in shard_dataset(str(tmp_path / "sh" / "*"), 16, 4))  # the sidecar is no match
    assert n == len(m)
    with pytest.raises(ValueError, match=r"worker_index=1 needs num_workers="):
        shard_dataset(tmp_path / "sh", 16, 4, worker_index=1)
    with pytest.raises(ValueError, match=r"num_workers=0 must be a whole number of at least 1"):
        shard_dataset(tmp_path / "sh", 16, 4, num_workers=0, worker_index=0)
    doc = json.loads((tmp_path / "sh" / "shards.json").read_text())
    del doc["class_names"]
    (tmp_path / "sh" / "shards.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=r"shards.json is damaged \(it has no 'class_names'\)"):
        read_sidecar(tmp_path / "sh")


def test_a_folder_name_with_glob_characters_touches_no_other_folder(image_folder, tmp_path):
    m = folder_manifest(image_folder)
    other = write_shards(m, tmp_path / "fish-v2", shard_size=5)  # 4 files
    write_shards(m, tmp_path / "fish-v[2]", shard_size=100)  # [2] once matched fish-v2's shards
    assert all(Path(f).exists() for f in other)
    assert len(batches(shard_dataset(tmp_path / "fish-v2", 8, 18))[0][1]) == 18
    with pytest.warns(UserWarning, match="removed 1 shard file"):  # its own old shard only
        write_shards(m, tmp_path / "fish-v[2]", shard_size=10)
    assert all(Path(f).exists() for f in other)
    # a pattern inside it reads its own files, not fish-v2's
    assert len(batches(shard_dataset(str(tmp_path / "fish-v[2]" / "shard-*"), 8, 18))[0][1]) == 18
    own = sorted((tmp_path / "fish-v[2]").glob("shard-*"))[0]
    assert len(batches(shard_dataset(str(own), 8, 18))[0][1]) == 10


def test_batch_options_that_cannot_work_are_refused_as_make_dataset_refuses_them(image_folder, tmp_path):
    write_shards(folder_manifest(image_folder), tmp_path / "s", shard_size=100)
    with pytest.raises(ValueError, match="mixes labels, which needs float labels"):
        shard_dataset(tmp_path / "s", 8, 4, training=True, label_mode="sparse", batch_augment="mixup")
    with pytest.raises(ValueError, match="18 image.* batch_size=32 with drop_remainder=True"):
        shard_dataset(tmp_path / "s", 8, 32, drop_remainder=True)
    with pytest.raises(TypeError, match="one shard folder or a glob pattern"):
        shard_dataset([str(tmp_path / "s")], 8)
    with pytest.raises(TypeError, match="a per-image array cannot follow the records"):
        shard_dataset(tmp_path / "s", 8, sample_weights=np.ones(18))


def test_converted_images_are_stored_losslessly(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        pixels = rng.integers(0, 256, (20, 28, 4), dtype=np.uint8)  # noisy RGBA: JPEG would blur it
        Image.fromarray(pixels, "RGBA").save(data / name / "x.png")
        Image.fromarray(smooth_image(20, 28)).convert("CMYK").save(data / name / "y.jpg", quality=90)
    m = sources.load(str(data))
    write_shards(m, tmp_path / "s", shard_size=100)
    (x, _), = batches(shard_dataset(tmp_path / "s", (20, 28), 8))
    index = [r["index"] for r in records(sorted((tmp_path / "s").glob("*.tfrecord")))]
    (ref, _), = batches(make_dataset(m.subset(index), (20, 28), 8, cache=False))
    # the RGBA PNGs: JPEG q95 was up to 126 levels off; the CMYK JPEGs, re-encoded as JPEG, 5-10
    np.testing.assert_array_equal(x, ref)
    stored = [Image.open(io.BytesIO(r)).format for r in stored_images(tmp_path / "s")]
    assert stored == ["PNG"] * 4


def stored_images(folder: Path) -> list[bytes]:
    """The image bytes of every record, file after file, in the order written."""
    import tensorflow as tf

    return [tf.train.Example.FromString(r.numpy()).features.feature["image"].bytes_list.value[0]
            for f in sorted(folder.glob("*.tfrecord")) for r in tf.data.TFRecordDataset([str(f)])]


def test_exif_turned_jpegs_are_stored_as_they_are_and_read_as_training_reads_them(tmp_path):
    # before: such a JPEG (every sideways phone photo) and a CMYK one were stored re-encoded as a
    # JPEG at --quality, 11-62 levels off training's read of the file (PIL, draft and turn)
    rng = np.random.default_rng(0)

    def photo(height: int, width: int) -> np.ndarray:  # gradients and grain, like a photo
        noisy = smooth_image(height, width) + rng.integers(-20, 21, (height, width, 3))
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def save(name: str, im: Image.Image, orientation: int) -> None:
        exif = im.getexif()
        exif[0x0112] = orientation
        (tmp_path / "d" / name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        im.save(tmp_path / "d" / name.split("_")[0] / f"{name}.jpg", quality=90, exif=exif.tobytes())

    for orientation in range(2, 9):  # mirrored, turned 180°, transposed, on its side...
        save(f"small_{orientation}", Image.fromarray(photo(90, 130)), orientation)
    save("big_6", Image.fromarray(photo(600, 820)), 6)  # read at 1/2 to 1/8 scale
    save("big_3", Image.fromarray(photo(600, 820)), 3)
    save("grey_8", Image.fromarray(photo(300, 410)).convert("L"), 8)
    (tmp_path / "d" / "cmyk").mkdir()
    Image.fromarray(photo(90, 130)).convert("CMYK").save(tmp_path / "d" / "cmyk" / "c.jpg", quality=90)
    m = sources.load(tmp_path / "d")
    write_shards(m, tmp_path / "s")
    order = [r["index"] for r in records(sorted((tmp_path / "s").glob("*.tfrecord")))]
    for i, data in zip(order, stored_images(tmp_path / "s")):
        if "cmyk" in m.paths[i]:  # converted: lossless
            assert Image.open(io.BytesIO(data)).format == "PNG"
        else:  # the file's own bytes, turned when read
            assert data == Path(m.paths[i]).read_bytes(), m.paths[i]
    side = read_sidecar(tmp_path / "s")
    assert side["turned"] == len(m) - 1
    # a keras-species before stop 32 would read these records sideways: it refuses format /2
    assert side["format"] == "keras-species-shards/2"
    # (50, 200) decodes big_6, stored 820 x 600, at 1/2 scale (PIL's draft of its stored image:
    # 820 // 50, 600 // 200), not at 1/4 (600 // 50, 820 // 200); 64 at 1/8; 45 the small ones
    # at 1/2; 130 everything at full scale (the CMYK JPEG too: at a reduced scale only training
    # reads it, through PIL's draft)
    for size in (64, (50, 200), 45, 130):
        for resize in ("stretch", "crop", "pad"):
            (x, _), = batches(shard_dataset(tmp_path / "s", size, 16, resize=resize))
            (ref, _), = batches(make_dataset(m.subset(order), size, 16, cache=False, resize=resize))
            turned = np.array(["cmyk" not in m.paths[i] for i in order])
            np.testing.assert_array_equal(x[turned], ref[turned], err_msg=f"{size} {resize}")
            if size != 45:
                np.testing.assert_array_equal(x, ref, err_msg=f"{size} {resize}")


def test_patterns_skip_temporary_files_and_name_a_wildcard_folder(image_folder, tmp_path):
    write_shards(folder_manifest(image_folder), tmp_path / "s", shard_size=100)
    (tmp_path / "s" / ".shard-00000-of-00001.tmp-99999.tfrecord").write_bytes(b"half")  # a write at work
    assert len(batches(shard_dataset(str(tmp_path / "s" / "*"), 8, 18))[0][1]) == 18
    with pytest.raises(FileNotFoundError, match="its folder part .* cannot hold wildcards"):
        shard_dataset(str(tmp_path / "s*" / "*.tfrecord"), 8)
    with pytest.raises(FileNotFoundError, match="matches the folder"):
        shard_dataset(str(tmp_path / "[s]"), 8)


def test_the_same_data_and_seed_give_the_same_shard_bytes_in_two_processes(image_folder, tmp_path):
    # before: protobuf's upb backend serialised the features map in an order of its own in each
    # process, so the files differed from run to run (the records parsed equal)
    import subprocess
    import sys

    code = ("import sys; from keras_species.data import sources; from keras_species.data.shards import write_shards; "
            "write_shards(sources.from_folder(sys.argv[1]), sys.argv[2], shard_size=7)")
    for out in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(image_folder), str(tmp_path / out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": out == "a" and "1" or "2", "TF_CPP_MIN_LOG_LEVEL": "3"})
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 4
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_shards_of_no_readable_image_name_the_reasons_and_the_limit(image_folder, tmp_path, monkeypatch):
    # before: "none of the 18 images could be read; nothing written", without a reason or the
    # --max-pixels that reads images over the decompression-bomb limit
    from keras_species.data import images

    m = folder_manifest(image_folder)
    with images.max_pixels_flag(10), pytest.raises(ManifestError) as err:
        write_shards(m, tmp_path / "s")
    text = str(err.value)
    assert text.startswith("none of the 18 images could be read; nothing written:\n  ")
    assert "decompression-bomb" in text and "--max-pixels" in text
    monkeypatch.setattr("keras_species.data.shards.SHOWN_BAD", 5)
    with images.max_pixels_flag(10), pytest.raises(ManifestError, match=r"\.\.\. and 13 more \(`keras-species audit` on the data lists them all\)"):
        write_shards(m, tmp_path / "s")
