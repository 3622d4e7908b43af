"""File caches: keyed by their content (never read back for other data), stale locks released."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

from keras_species.data.file_cache import (
    file_fingerprint,
    keyed_cache_path,
    other_caches,
    release_stale_lock,
)
from keras_species.data.manifest import Manifest
from keras_species.data.pipeline import finish_dataset, make_dataset
from tests.conftest import write_image_folder


@pytest.fixture
def manifest(tmp_path):
    root = write_image_folder(tmp_path / "fish", classes=("cod", "eel"), per_class=4, size=(24, 20))
    paths = sorted(str(p) for p in root.glob("*/*.png"))
    labels = np.array([0 if "/cod/" in p else 1 for p in paths])
    return Manifest(paths, labels, ["cod", "eel"])


def _labels(ds) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in ds])


@pytest.mark.parametrize("training", [False, True])
def test_a_file_cache_is_never_read_back_for_other_data(manifest, tmp_path, training):
    cache = str(tmp_path / "cache" / "split")
    cod, eel = manifest.subset(manifest.labels == 0), manifest.subset(manifest.labels == 1)
    kw = dict(training=training, cache=cache, seed=0)
    assert set(_labels(make_dataset(cod, 16, 2, **kw)).tolist()) == {0}
    # the same prefix for the other class: tf.data alone would serve the cod images again
    assert set(_labels(make_dataset(eel, 16, 2, **kw)).tolist()) == {1}
    (x, _), *_ = list(make_dataset(cod, 20, 2, **kw))  # another size: no shape clash either
    assert x.shape[1:] == (20, 20, 3)
    assert len(list((tmp_path / "cache").glob("split-*.index"))) == 3
    again = make_dataset(cod, 16, 2, **kw)  # the same content: the same cache, read back
    assert len(list((tmp_path / "cache").glob("split-*.index"))) == 3
    assert set(_labels(again).tolist()) == {0}


def test_caches_of_other_content_are_named_with_their_size(manifest, tmp_path, recwarn):
    cache = str(tmp_path / "cache" / "train")
    for _ in make_dataset(manifest, 16, 2, cache=cache):  # the first content, written
        pass
    for _ in make_dataset(manifest, 16, 4, cache=cache):  # in use by this process: no warning
        pass
    assert not [w for w in recwarn if "other content" in str(w.message)]
    assert len(other_caches(cache)) == 2
    first, size = next(iter(other_caches(cache).items()))
    assert size > 16 * 16 * 3 * len(manifest)  # the cached uint8 pixels
    for keyed in other_caches(cache):  # as if a process that has ended had written them
        with open(f"{keyed}.owner", "w") as f:
            json.dump({"pid": _dead_pid(), "host": socket.gethostname()}, f)
    with pytest.warns(UserWarning, match=r"train: 2 cache\(s\) written for other content .* MB "
                                         r"\(train-[0-9a-f]{16}, train-[0-9a-f]{16}\).*Delete "
                                         r".*train-<key>"):
        ds = make_dataset(manifest, 20, 2, cache=cache)  # another size: a new cache on that prefix
    for _ in ds:
        pass
    assert len(other_caches(cache)) == 3 and first in other_caches(cache)
    recwarn.clear()
    make_dataset(manifest, 20, 2, cache=cache)  # read back, nothing new written: no warning
    make_dataset(manifest, 24, 2, cache=cache)  # new, but the leftovers were named once already
    assert not [w for w in recwarn if "other content" in str(w.message)]


def test_the_key_follows_files_labels_and_batching(manifest, tmp_path):
    base = file_fingerprint(manifest.paths)
    assert file_fingerprint(manifest.paths) == base
    os.utime(manifest.paths[0], ns=(0, 10**9))  # the file was rewritten or touched
    assert file_fingerprint(manifest.paths) != base
    prefix = tmp_path / "c" / "x"
    assert keyed_cache_path(prefix, {"a": 1}) == keyed_cache_path(prefix, {"a": 1})
    assert keyed_cache_path(prefix, {"a": 1}) != keyed_cache_path(prefix, {"a": 2})
    relabelled = Manifest(manifest.paths, 1 - manifest.labels, manifest.class_names)
    make_dataset(manifest, 16, 2, training=False, cache=str(prefix))
    make_dataset(relabelled, 16, 2, training=False, cache=str(prefix))
    make_dataset(manifest, 16, 4, training=False, cache=str(prefix))  # batches are cached
    assert len(list(prefix.parent.glob("x-*.owner"))) == 2 + 3


def _write_lock(path: str, owner_pid: int | None) -> list[str]:
    """The files a killed tf.data cache writer leaves (names as TensorFlow 2.21 writes them)."""
    lock, temp = f"{path}_0.lockfile", f"{path}_0.data-00000-of-00001.tempstate123"
    for name in (lock, temp):
        with open(name, "w") as f:
            f.write("Created at: 1796194390")
    if owner_pid is not None:
        with open(f"{path}.owner", "w") as f:
            json.dump({"pid": owner_pid, "host": socket.gethostname()}, f)
    return [lock, temp]


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(os.name != "posix", reason="process ids are checked on POSIX only")
def test_the_lock_of_a_killed_writer_is_released(manifest, tmp_path):
    prefix = str(tmp_path / "cache" / "val")
    make_dataset(manifest, 16, 2, training=False, cache=prefix)
    (owner,) = (tmp_path / "cache").glob("val-*.owner")
    path = str(owner)[: -len(".owner")]  # the keyed prefix
    left = _write_lock(path, _dead_pid())  # as if a run had been killed while writing it
    labels = _labels(make_dataset(manifest, 16, 2, training=False, cache=prefix))  # no AlreadyExistsError
    assert labels.tolist() == manifest.labels.tolist()
    assert not any(os.path.exists(p) for p in left)
    # a writer that still runs (the test's parent process) keeps its lock, and so does a lock
    # without an owner file: that is tf.data's own "concurrent caching iterator" case
    kept = _write_lock(path, os.getppid())
    assert release_stale_lock(path) == [] and all(os.path.exists(p) for p in kept)
    os.remove(f"{path}.owner")
    assert release_stale_lock(path) == [] and all(os.path.exists(p) for p in kept)


def test_finish_dataset_needs_the_content_of_a_file_cache(tmp_path):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int32)))
    with pytest.raises(ValueError, match="cache_content"):
        finish_dataset(ds, n=2, has_labels=True, has_weights=False, batch_size=1, training=False,
                       cache=str(tmp_path / "c"))
    finish_dataset(ds, n=2, has_labels=True, has_weights=False, batch_size=1, training=False,
                   cache=str(tmp_path / "c"), cache_content={"test": 1})


@pytest.mark.parametrize("owner", [b"", b'{"pid": 12', b'["pid", 12]', b'{"pid": "x", "host": 1}'])
def test_a_damaged_owner_file_counts_as_none_with_a_warning(tmp_path, owner):
    path = str(tmp_path / "cache" / "train-0123456789abcdef")
    os.makedirs(os.path.dirname(path))
    kept = _write_lock(path, None)
    with open(f"{path}.owner", "wb") as f:
        f.write(owner)
    with pytest.warns(UserWarning, match=r"train-0123456789abcdef\.owner is damaged \(.+\), so it "
                                         r"cannot tell whether the process that locked the cache "
                                         r"still runs: .* delete .*train-0123456789abcdef_\*\.lockfile"):
        assert release_stale_lock(path) == []
    assert all(os.path.exists(p) for p in kept)  # left to tf.data, as a lock without an owner
    os.remove(f"{path}.owner")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert release_stale_lock(path) == []  # no owner file at all: nothing to say


def test_a_cache_another_run_is_writing_is_left_to_it(manifest, tmp_path):
    prefix = str(tmp_path / "cache" / "train")
    make_dataset(manifest, 16, 2, training=True, cache=prefix)
    (owner,) = (tmp_path / "cache").glob("train-*.owner")
    path = str(owner)[: -len(".owner")]
    kept = _write_lock(path, os.getppid())  # a run that still writes it (the test's parent)
    with pytest.warns(UserWarning, match=r"is being written by process \d+ on .*reads without a cache"):
        ds = make_dataset(manifest, 16, 2, training=True, cache=prefix, seed=0)
    assert sorted(_labels(ds).tolist()) == sorted(manifest.labels.tolist())  # tf.data refused it before
    assert all(os.path.exists(p) for p in kept)  # and, cleaning up, deleted the writer's files


def test_each_worker_of_a_multi_worker_job_has_its_own_cache(tmp_path, monkeypatch):
    keys = set()
    for index in (0, 1):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                    "task": {"type": "worker", "index": index}}))
        keys.add(keyed_cache_path(str(tmp_path / "c"), {"files": "same"}))
    monkeypatch.delenv("TF_CONFIG")
    keys.add(keyed_cache_path(str(tmp_path / "c"), {"files": "same"}))
    assert len(keys) == 3


def test_a_file_cache_holds_the_manifest_order_whoever_wrote_it(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i, side in enumerate([1500] + [16] * 7):  # the big one decodes last in an unordered map
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(paths[-1])
    manifest = Manifest(paths, np.arange(8) % 2, ["cod", "eel"])
    prefix = str(tmp_path / "cache" / "train")

    def order(**kw):  # the images of one pass, in the order drawn
        return np.concatenate([x.numpy() for x, _ in make_dataset(manifest, 16, 8, training=True,
                                                                    seed=3, **kw)])

    reference = order(cache=False, deterministic=True)
    order(cache=prefix, deterministic=False)  # written by an unordered run...
    np.testing.assert_array_equal(order(cache=prefix, deterministic=True), reference)  # ...read ordered


def test_a_cache_another_live_run_has_built_but_not_begun_is_left_to_it(manifest, tmp_path):
    # two runs of a sweep build their datasets, then fit: tf.data takes its lock only at the
    # first element, so both wrote the cache, and each killed the other's
    prefix = str(tmp_path / "cache" / "train")
    make_dataset(manifest, 16, 2, training=True, cache=prefix)
    (owner,) = (tmp_path / "cache").glob("train-*.owner")
    owner.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))  # a live builder
    with pytest.warns(UserWarning, match="reads without a cache"):
        make_dataset(manifest, 16, 2, training=True, cache=prefix)
    assert json.loads(owner.read_text())["pid"] == os.getppid()  # not taken over
    old = owner.stat().st_mtime - 1000  # a claim made long ago (a notebook that built and stopped)
    os.utime(owner, (old, old))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_dataset(manifest, 16, 2, training=True, cache=prefix)  # lapsed: this one caches
    owner.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))  # it ended
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_dataset(manifest, 16, 2, training=True, cache=prefix)


def test_a_cache_never_read_leaves_no_owner_file_at_exit(manifest, tmp_path):
    # a recipe builds its test split's dataset on the cache folder but the evaluation reads the
    # images itself: its claim on test-<key> was left behind as a lone owner file
    manifest.to_json(tmp_path / "m.json")
    script = (
        "import sys\n"
        "from keras_species.data.manifest import Manifest\n"
        "from keras_species.data.pipeline import make_dataset\n"
        "m = Manifest.from_json(sys.argv[1])\n"
        "read = make_dataset(m, 16, 2, cache=sys.argv[2] + '/train')\n"
        "for _ in read: pass\n"
        "unread = make_dataset(m, 16, 2, cache=sys.argv[2] + '/test')\n"
        "half = make_dataset(m, 16, 2, cache=sys.argv[2] + '/val')\n"
        "it = iter(half); next(it)\n"  # still being written when the process exits
    )
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.json"), str(cache)],
                          capture_output=True, text=True, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert not list(cache.glob("test-*"))
    assert len(list(cache.glob("train-*.owner"))) == 1 and list(cache.glob("train-*.index"))
    # a cache begun keeps its owner: were it cut short, the next run would need the owner file
    # to release the dead writer's lock
    assert len(list(cache.glob("val-*.owner"))) == 1


def test_files_swapped_or_rewritten_at_the_same_size_and_time_are_not_read_back_stale(tmp_path):
    # images unpacked from one archive share their times: two of one size swapped by name, or one
    # rewritten and its time set back, were served from the cache as they were before
    from PIL import Image

    folder = tmp_path / "data"
    for name, value in (("cat", 40), ("dog", 200)):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.full((12, 12, 3), value, np.uint8)).save(folder / name / "0.bmp")
    cat, dog = folder / "cat" / "0.bmp", folder / "dog" / "0.bmp"
    for p in (cat, dog):
        os.utime(p, ns=(1_700_000_000_000_000_000,) * 2)
    m = Manifest([str(cat), str(dog)], np.array([0, 1]), ["cat", "dog"])
    prefix = str(tmp_path / "cache" / "c")

    def means(ds) -> list[float]:
        return [float(x.numpy().mean()) for x, _ in ds.unbatch()]

    assert means(make_dataset(m, 8, 2, cache=prefix)) == [40.0, 200.0]
    moved = tmp_path / "t.bmp"
    cat.rename(moved)
    dog.rename(cat)
    moved.rename(dog)  # same sizes, same modification times, other pixels
    assert means(make_dataset(m, 8, 2, cache=prefix)) == [200.0, 40.0]
    data = cat.read_bytes()  # rewritten in place (same inode), its time set back
    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(cat)
    assert cat.read_bytes() != data and cat.stat().st_size == len(data)
    os.utime(cat, ns=(1_700_000_000_000_000_000,) * 2)
    assert means(make_dataset(m, 8, 2, cache=prefix)) == [90.0, 40.0]


_CLAIM_RACE = """
import sys, time
from keras_species.data import file_cache
checked = file_cache.cache_writer

def slow(path):  # the two runs' checks fall in the same window
    found = checked(path)
    time.sleep(0.5)
    return found

file_cache.cache_writer = slow
path = file_cache.keyed_cache_path(sys.argv[1], {"data": 1})
print("claimed" if path in file_cache._claimed else "left", flush=True)
time.sleep(1.5)  # alive while the other decides
"""


def test_of_two_runs_claiming_a_cache_at_once_one_writes(tmp_path):
    # both decided to write (check, then write the owner file), and both died in tf.data's lock
    prefix = str(tmp_path / "cache" / "train")
    runs = [subprocess.Popen([sys.executable, "-c", _CLAIM_RACE, prefix], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=os.getcwd()) for _ in range(2)]
    said = sorted(run.communicate(timeout=120)[0].strip() for run in runs)
    assert said == ["claimed", "left"], said


def test_a_cache_prefix_inside_a_file_is_named(manifest, tmp_path):
    (tmp_path / "afile").write_text("notes")
    with pytest.raises(OSError, match=r"the file cache '.*afile/p' cannot be made in .*afile "
                                      r"\(.*\): give a folder you can write"):
        make_dataset(manifest, 16, 2, cache=str(tmp_path / "afile" / "p"))


def test_a_read_only_cache_folder_is_read_and_never_written(manifest, tmp_path, monkeypatch):
    # caches written once, then the folder made read-only (a shared volume): a complete cache
    # is read back; one of other content cannot be written, so the dataset reads without one
    # (tf.data failed at the first element on its lock file)
    prefix = str(tmp_path / "cache" / "train")
    reference = [x.numpy() for x, _ in make_dataset(manifest, 16, 2, cache=prefix)]
    real_access = os.access
    folder = str(tmp_path / "cache")
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: (not mode & os.W_OK and real_access(p, mode))
                        if os.path.abspath(p) == folder else real_access(p, mode, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = [x.numpy() for x, _ in make_dataset(manifest, 16, 2, cache=prefix)]
    assert all((a == b).all() for a, b in zip(reference, again))
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    with pytest.warns(UserWarning, match=r"cache .*train-[0-9a-f]{16} cannot be written \(.*cache is "
                                         r"not writable\): this dataset reads without a cache"):
        other = make_dataset(manifest, 20, 2, cache=prefix)  # another size: another key
    assert [x.shape[1] for x, _ in other] == [20] * 4
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".owner")) == [
        n for n in before if not n.endswith(".owner")]
