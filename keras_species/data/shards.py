"""TFRecord shards: a Manifest written once to ``tf.train.Example`` files, read back by tf.data.

For collections too large for one disk or one machine: :func:`write_shards` decodes every image
once (any mode PIL reads, see :mod:`keras_species.data.images`), optionally shrinks it so its
longest side is ``image_size`` (aspect kept), and stores the encoded bytes with the labels, the
group and the source path. :func:`shard_dataset` reads the shards from a local folder or any
``tf.io.gfile`` URL (``gs://bucket/shards/``) and yields exactly what
:func:`keras_species.data.pipeline.make_dataset` yields.

Layout of ``out_dir``::

    shard-00000-of-00004.tfrecord ... shard-00003-of-00004.tfrecord
    shards.json    # class names, label type, per-shard counts, label-set counts, split counts,
                   # the shuffle seed, skipped files

Each ``tf.train.Example`` holds ``image`` (JPEG/PNG/GIF/BMP bytes), ``label`` (int64 list: the
class index, or the indices of the positive tags; empty when unlabelled or tag-free), ``group``,
``path``, ``split`` (the manifest's split name, empty when it has none), ``index`` (row of the
manifest), ``draft`` (1 for a single-picture JPEG stored as its file holds it, which the reader
decodes at libjpeg's reduced scale as training decodes the file) and ``orientation`` (the EXIF
orientation, 1 to 8, of a JPEG stored as its file holds it, which the reader turns upright
after decoding: :func:`keras_species.data.pipeline.exif_turn`). ``shards.json`` counts the
records with an orientation other than 1 (``turned``); shards written before either feature
read as upright, full-scale images. The records are written in a seeded random order
(``seed``, recorded in ``shards.json``), not in the manifest's order (which is sorted by class):
every shard file holds a mix of classes, so a worker that reads some of the files still sees
every class; ``index`` gives the manifest's order back. Shards written before the ``split`` feature existed read as
shards without a split.

One split: ``shard_dataset(..., split="train")`` (and :func:`read_sidecar`) keep the records of
that split only; every split is spread over all the files (see :func:`shard_dataset`). To write
one split alone (its own folder, nothing of the others read back), ``write_shards(...,
split="train")`` or ``keras-species shard --split train``.

A write never leaves a folder that looks complete but is not: each shard is written under a
hidden temporary name (``.shard-00000-of-00004.tmp-<pid>.tfrecord``) and renamed when complete,
an earlier write's ``shards.json`` is removed before the new shards take their names, and the new
``shards.json`` is written last (also renamed into place). A write killed half way leaves the
earlier shards readable, or a folder without ``shards.json``, which readers refuse; the next
write into the folder deletes the temporary files a killed one left.

Sharding across workers: pass ``num_workers``/``worker_index`` for an explicit file-level split
(worker ``i`` reads files ``i, i + n, i + 2n, ...``; nothing is read twice, and every worker
needs at least one file, so write at least as many shards as workers). Without them, the dataset
carries ``AutoShardPolicy.FILE``, so ``tf.distribute`` (``MultiWorkerMirroredStrategy``,
``strategy.experimental_distribute_dataset``) splits the files across workers itself.

Command line::

    keras-species shard [DATA] --out DIR [--image-size N] [--shard-size N] [--quality Q] [--seed S]
                        [--split NAME]

A shard folder is not a data source of ``audit``, ``split``, ``shard`` or a recipe's ``--data``
(they read images): :func:`shard_folder_problem` says so, naming the data it was written from.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fnmatch
import io
import json
import math
import os
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_species.atomic import commit, process_running, temporary_path
from keras_species.cpu_budget import usable_cores
from keras_species.data.images import add_max_pixels_flag, max_pixels_flag, max_pixels_hint
from keras_species.data.manifest import (
    UNLABELLED,
    Manifest,
    ManifestError,
    counted,
    require_manifest,
)
from keras_species.data.pipeline import SHOWN_BAD, whole_at_least
from keras_species.jsonfile import kind_problem, parse_json, read_json_file

SIDECAR = "shards.json"
FORMAT = "keras-species-shards/1"
# shards holding EXIF-turned JPEGs as their files hold them (stop 32): a keras-species before
# them would read those records sideways, so it must refuse the folder, as it refuses /2
FORMAT_TURNED = "keras-species-shards/2"
READ_FORMATS = (FORMAT, FORMAT_TURNED)
STALE_PATTERN = "shard-?????-of-?????.tfrecord"  # the names write_shards gives
# the temporary names a write gives its files until they are complete (see temporary_path)
TEMPORARY_PATTERNS = (".shard-?????-of-?????.tmp-*.tfrecord", ".shards.tmp-*.json")


# ---------------------------------------------------------------------------------- writing
def _encode(path: str, kind: int, image_size: int | None, quality: int) -> tuple[bytes | None, str]:
    """Encoded bytes of one image: the original file when no conversion or shrinking is needed
    (also a JPEG that only its EXIF orientation turns: the reader turns it, see
    :func:`keras_species.data.pipeline.turned_jpeg`), PNG when converted only, JPEG at
    ``quality`` when shrunk; or ``None`` and the reason it cannot be read."""
    from PIL import Image

    from keras_species.data.images import ImageReadError, read_image, upright_size
    from keras_species.data.pipeline import KIND_FAST, KIND_GIF_BMP, KIND_PIL, turned_jpeg

    try:
        size = None  # the stored (width, height) when the image shrinks
        if image_size is not None:
            with Image.open(path) as im:
                width, height = upright_size(im)
            if max(width, height) > image_size:
                s = image_size / max(width, height)
                size = (max(1, round(width * s)), max(1, round(height * s)))
        if size is None and kind in (KIND_FAST, KIND_GIF_BMP):
            with open(path, "rb") as f:  # read as they are by decode_8bit
                data = f.read()
            return _decodable(data)
        if size is None and kind == KIND_PIL and _is_jpeg(path):
            with open(path, "rb") as f:
                data = f.read()
            if turned_jpeg(data) is not None:  # turned by EXIF only: the reader turns it
                return _decodable(data)
        # a big JPEG decodes at a reduced scale that keeps both sides at least their stored size
        im = Image.fromarray(read_image(path, draft=None if size is None else size[::-1]))
        if size is not None and (im.width > im.height) != (size[0] > size[1]) and im.width != im.height:
            size = size[::-1]  # turned by an EXIF block the header did not show (a PNG's, after its pixels)
        if size is not None and im.size != size:
            im = im.resize(size, Image.Resampling.BICUBIC)  # PIL filters (antialiases) downscales
        buf = io.BytesIO()
        if size is None:  # converted only (alpha, 16-bit, palette, WebP, CMYK JPEG...):
            im.save(buf, format="PNG")  # PNG keeps the pixels exact
        else:  # shrunk: a new image, as a photo in PNG would take 2-3x its bytes
            im.save(buf, format="JPEG", quality=quality)
        return buf.getvalue(), ""
    except ImageReadError as e:
        return None, e.reason
    except OSError as e:
        return None, f"cannot read the file ({e})"


def _decodable(data: bytes) -> tuple[bytes | None, str]:
    """``(data, "")`` when the reader's decoder (TensorFlow's, ``shard_dataset``) decodes the bytes
    of a file stored as it is, else ``(None, reason)``. The file check reads a file's two ends
    only: a PNG damaged inside was stored, and the reader, which skips nothing, stopped mid-epoch
    on it (``Invalid PNG data``, naming no file). TensorFlow's decoder, not PIL's: PIL passes a
    bad checksum on the pixels, and refuses one on a text chunk that TensorFlow reads."""
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
        text = " ".join(str(getattr(err, "message", err)).split())
        reason = text.split("}} ", 1)[-1][:160]  # without TensorFlow's {{function_node ...}} prefix
        return None, f"damaged image: TensorFlow cannot decode it ({reason})"
    return data, ""


def _is_jpeg(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(3) == b"\xff\xd8\xff"


def _label_indices(manifest: Manifest, i: int) -> list[int]:
    if manifest.multilabel:
        return np.flatnonzero(manifest.labels[i]).tolist()
    k = int(manifest.labels[i])
    return [] if k == UNLABELLED else [k]


def _example(image: bytes, labels: list[int], group: str, path: str, index: int, split: str = "",
             draft: bool = False, orientation: int = 1):
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "draft": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(draft)])),
        "orientation": tf.train.Feature(int64_list=tf.train.Int64List(value=[orientation])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=labels)),
        "group": tf.train.Feature(bytes_list=tf.train.BytesList(value=[group.encode("utf-8")])),
        "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode("utf-8")])),
        "split": tf.train.Feature(bytes_list=tf.train.BytesList(value=[split.encode("utf-8")])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


# the system's words for the errors a TensorFlow file system reports as "<path>; <reason>"
_REASONS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOENT,
            errno.ENOTDIR, errno.EISDIR, errno.EIO)


def _output_error(err, out_dir: str) -> OSError:
    """A TensorFlow file-system error (``tf.errors.OpError``: ``PermissionDeniedError``, ...) of
    writing ``out_dir``, told as the ``OSError`` the CLI prints in one line: it names the folder,
    ``--out`` and the system's reason, with the errno where the reason is one the system names."""
    import tensorflow as tf

    message = str(getattr(err, "message", "") or err).strip()
    reason = message.rsplit("; ", 1)[-1] if "; " in message else message
    code = next((c for c in _REASONS if os.strerror(c).lower() in reason.lower()), None)
    if code is None and isinstance(err, tf.errors.PermissionDeniedError):
        code = errno.EACCES
    elif code is None and isinstance(err, tf.errors.ResourceExhaustedError):
        code = errno.ENOSPC
    elif code is None and isinstance(err, tf.errors.NotFoundError):
        code = errno.ENOENT
    kind = type(OSError(code, reason)) if code is not None else OSError  # PermissionError, ...
    named = kind(f"{out_dir} (--out) cannot be written ({reason or type(err).__name__}): give "
                 "another --out, in a folder you can write to that has free space")
    named.errno = code
    return named


@contextlib.contextmanager
def _writing(out_dir: str):
    """Translate TensorFlow's file-system errors of the block into :func:`_output_error`."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as err:
        raise _output_error(err, out_dir) from err


def _is_url(path: str) -> bool:
    """Whether ``path`` is a ``tf.io.gfile`` URL (``gs://...``) rather than a local path."""
    return "://" in path


def _temporary(folder: str, name: str) -> str:
    """The hidden name ``name`` has in ``folder`` while it is written (:func:`temporary_path`)."""
    return f"{folder}/{temporary_path(name).name}"


def _move_in(tmp: str, path: str) -> None:
    """Rename the complete ``tmp`` to ``path``: locally flushed to disk and moved with
    ``os.replace`` (:func:`keras_species.atomic.commit`), elsewhere ``tf.io.gfile.rename``."""
    import tensorflow as tf

    if _is_url(path):
        tf.io.gfile.rename(tmp, path, overwrite=True)
    else:
        commit(tmp, path, "--out")


def _names_in(folder: str, pattern: str) -> list[str]:
    """The files of ``folder`` whose names match ``pattern``, as ``folder/name``. The folder is
    listed, not globbed: a folder name with ``[``, ``?`` or ``*`` would match other folders
    (a write into ``fish-v[2]`` once removed ``fish-v2``'s shards)."""
    import tensorflow as tf

    try:
        names = tf.io.gfile.listdir(folder)
    except tf.errors.NotFoundError:
        return []
    return sorted(f"{folder}/{name}" for name in names if fnmatch.fnmatchcase(name, pattern))


def _remove_killed_writes(folder: str) -> list[str]:
    """Delete the temporary files that writes killed half way left in ``folder``.

    Locally a temporary file whose writer (the process id in its name) still runs is kept. In a
    ``tf.io.gfile`` URL every other process's is deleted: a writer on another machine cannot be
    asked, and two writes into one folder would mix their shards anyway.
    """
    import tensorflow as tf

    removed = []
    for pattern in TEMPORARY_PATTERNS:
        for path in _names_in(folder, pattern):
            pid = path.rsplit(".tmp-", 1)[-1].split(".", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue  # not a name _temporary gives, or this process's own (removed by it)
            if not _is_url(path) and process_running(int(pid)):
                continue  # another write into this folder is at work
            with contextlib.suppress(tf.errors.NotFoundError):
                tf.io.gfile.remove(path)
                removed.append(path)
    return removed


def _rows_of_split(manifest: Manifest, split: str | None) -> list[int]:
    """The manifest rows to write: those of ``split``, or all of them (``None``)."""
    if split is None:
        return list(range(len(manifest)))
    if not isinstance(split, str) or not split:
        raise ValueError(f"split={split!r} (--split) must be the name of a split, such as 'train', "
                         "or None for every image")
    if manifest.splits is None:
        raise ManifestError(
            f"split={split!r} (--split): the data ({manifest.source or 'the manifest'}) has no split "
            "column: leave --split out to write every image, or give a split CSV (keras-species "
            "split --out split.csv)")
    rows = [i for i, s in enumerate(manifest.splits) if s == split]
    if not rows:
        have = ", ".join(repr(k) for k in sorted(set(manifest.splits)))
        raise ValueError(f"split={split!r} (--split) is not a split of the data "
                         f"({manifest.source or 'the manifest'}); it has {have}")
    return rows


def write_shards(
    manifest: Manifest,
    out_dir: str | os.PathLike,
    *,
    image_size: int | None = None,
    shard_size: int = 1000,
    quality: int = 95,
    workers: int | None = None,
    seed: int = 0,
    split: str | None = None,
) -> list[str]:
    """Write ``manifest`` to TFRecord shards plus a ``shards.json`` sidecar.

    Files TensorFlow decodes as they are (8-bit RGB/grey JPEG, PNG, GIF, BMP) and that need no
    shrinking are stored byte for byte, and so are 8-bit RGB/grey JPEGs turned by their EXIF
    orientation (every sideways phone photo), with the orientation in the record:
    :func:`shard_dataset` turns them after decoding, at the scale training decodes the file, so
    the pixels are those of :func:`keras_species.data.pipeline.make_dataset`, bit for bit. The
    others (16-bit, alpha, transparent palette, WebP, CMYK JPEGs...) are converted to RGB as
    :func:`keras_species.data.images.read_image` reads them and stored as PNG, losslessly
    (a CMYK JPEG read at half its size or less differs still: training decodes its file at
    libjpeg's reduced scale, through PIL). Images shrunk to ``image_size`` are stored as JPEG at
    ``quality``.
    Unreadable files are left out with a warning and listed under ``skipped`` in the sidecar.

    The records are written in a random order drawn from ``seed`` (the same manifest and seed
    give the same files), so each shard holds a mix of classes; each record keeps its manifest
    row (``index``) and its split (``split``, empty when the manifest has none), and
    ``shards.json`` counts the images of each split (``splits``) and records the ``seed``.

    Each shard is written under a temporary name and renamed when complete; ``shards.json``,
    written last, lists them (see the module docstring): a write that fails or is killed never
    leaves a folder that reads as complete.

    Args:
        manifest: the images.
        out_dir: a local folder or a ``tf.io.gfile`` URL (``gs://...``); created if needed.
        image_size: shrink so that the longest side is at most this (aspect kept; never
            enlarged); ``None`` keeps the original size.
        shard_size: images per shard file.
        quality: JPEG quality of the images shrunk to ``image_size``.
        workers: reader threads; default ``min(8, cores)``, ``cores`` the usable ones
            (:func:`keras_species.cpu_budget.usable_cores`).
        seed: seed of the record order (``--seed``), a whole number, at least 0.
        split: write only the images of this split (``--split``; the manifest's ``splits``),
            keeping their manifest rows as ``index``; ``None`` writes every image.

    Returns:
        The shard file paths, in order.

    Raises:
        OSError: ``out_dir`` cannot be made or written (read-only file system, no permission,
            disk full): the message names it, ``--out`` and the reason (TensorFlow's own
            file-system errors are translated, with the errno where known).
        ValueError: ``split`` is not a split of the manifest (the message names those it has),
            or the manifest has no split.

    Example:
        >>> files = write_shards(sources.load("demo"), "shards/", image_size=256)  # doctest: +SKIP
    """
    require_manifest(manifest, "write_shards")
    import tensorflow as tf

    from keras_species.data.pipeline import check_files

    if not whole_at_least(shard_size, 1):
        raise ValueError(f"shard_size={shard_size!r} must be at least 1 (a whole number)")
    if image_size is not None and not whole_at_least(image_size, 1):
        raise ValueError(f"image_size={image_size!r} (--image-size) must be at least 1 (a whole number: "
                         "the longest side), or left out to keep every image's size")
    if workers is not None and not whole_at_least(workers, 1):
        raise ValueError(f"workers={workers!r} (--workers) must be at least 1 (a whole number)")
    if not whole_at_least(quality, 1) or quality > 100:
        raise ValueError(f"quality={quality} (--quality) must be a JPEG quality from 1 to 100")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} (--seed) must be a whole number, at least 0")
    if len(manifest) == 0:
        raise ManifestError("the manifest holds no images")
    rows = _rows_of_split(manifest, split)
    out_dir = os.fspath(out_dir)
    base = out_dir.rstrip("/")
    with _writing(out_dir):
        if tf.io.gfile.exists(out_dir) and not tf.io.gfile.isdir(out_dir):
            raise NotADirectoryError(f"{out_dir} (--out) is a file: give a folder for the shards")
        tf.io.gfile.makedirs(out_dir)
        # an existing folder that cannot be written: said now, not after every image is encoded
        probe = base + f"/.write-check-{os.getpid()}"
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
        _remove_killed_writes(base)
    checked, skipped = check_files([manifest.paths[i] for i in rows], workers)
    kinds = dict(zip(rows, checked.tolist()))
    todo = [i for i in rows if manifest.paths[i] not in skipped]
    workers = workers or min(8, usable_cores())

    def job(i: int):
        return i, _encode(manifest.paths[i], int(kinds[i]), image_size, quality)

    results: list[tuple[int, bytes]] = []
    with ThreadPoolExecutor(workers) as pool:
        for i, (data, reason) in pool.map(job, todo):
            if data is None:
                skipped[manifest.paths[i]] = reason
            else:
                results.append((i, data))
    # drafts[i]: a single-picture JPEG stored as it is, decoded at a reduced scale when it is at
    # least twice the size it is read at, as training and predict decode such a file (libjpeg's
    # DCT scaling); orientations[i]: the EXIF orientation of one, which the reader applies
    from keras_species.data.pipeline import plain_jpeg_size, turned_jpeg

    drafts, orientations = {}, {}
    for i, data in results:
        turned = turned_jpeg(data)  # (orientation, stored size of a single picture), or None
        orientations[i] = 1 if turned is None else turned[0]
        drafts[i] = plain_jpeg_size(data) is not None if turned is None else turned[1] is not None
    n_good = len(results)
    if n_good == 0:
        hint = max_pixels_hint(skipped.values())  # said only after a write before, and no reason
        rest = "`keras-species audit` on the data lists them all"  # no shards.json is written
        raise ManifestError(f"none of the {len(rows)} images could be read; nothing written:\n"
                            f"{_skipped_lines(skipped, rest)}" + (f"\n{hint}" if hint else ""))
    # the manifest's order is sorted by class: shuffled, each shard (and so each worker reading
    # some of them) holds every class; `index` keeps the manifest's row
    results = [results[k] for k in np.random.default_rng(int(seed)).permutation(n_good)]
    n_shards = math.ceil(n_good / shard_size)
    files, shards = [], []
    label_sets: Counter[str] = Counter()
    split_sets: dict[str, Counter[str]] = {}
    pending: list[str] = []  # this write's temporary files, until renamed into place
    try:
        with _writing(out_dir):
            for s in range(n_shards):
                name = f"shard-{s:05d}-of-{n_shards:05d}.tfrecord"
                tmp = _temporary(base, name)
                pending.append(tmp)
                chunk = results[s * shard_size : (s + 1) * shard_size]
                in_shard: Counter[str] = Counter()
                with tf.io.TFRecordWriter(tmp) as writer:
                    for i, data in chunk:
                        labels = _label_indices(manifest, i)
                        key = ";".join(map(str, labels))
                        label_sets[key] += 1
                        group = manifest.groups[i] if manifest.groups is not None else ""
                        in_split = manifest.splits[i] if manifest.splits is not None else ""
                        if manifest.splits is not None:
                            in_shard[in_split] += 1
                            split_sets.setdefault(in_split, Counter())[key] += 1
                        example = _example(data, labels, group, manifest.paths[i], i, in_split, drafts[i],
                                           orientations[i])
                        writer.write(example.SerializeToString(deterministic=True))
                files.append(base + "/" + name)
                entry = {"file": name, "n": len(chunk), "bytes": tf.io.gfile.stat(tmp).length}
                if manifest.splits is not None:
                    entry["splits"] = dict(sorted(in_shard.items()))
                shards.append(entry)
            unlabelled = 0 if manifest.multilabel else label_sets.get("", 0)
            doc = {
                "format": FORMAT_TURNED if any(o != 1 for o in orientations.values()) else FORMAT,
                "class_names": manifest.class_names,
                "multilabel": manifest.multilabel,
                "n_images": n_good,
                "n_unlabelled": unlabelled,
                "image_size": image_size,
                "quality": quality,
                "seed": int(seed),
                # records stored as their file holds them, with an EXIF orientation to apply
                "turned": sum(o != 1 for o in orientations.values()),
                "shards": shards,
                "label_sets": dict(sorted(label_sets.items())),
                # images per split ({} when the manifest has no split), and their label sets (weights)
                "splits": {k: sum(v.values()) for k, v in sorted(split_sets.items())},
                "split_label_sets": {k: dict(sorted(v.items())) for k, v in sorted(split_sets.items())},
                "source": manifest.source,
                "skipped": skipped,
            }
            sidecar, sidecar_tmp = base + "/" + SIDECAR, _temporary(base, SIDECAR)
            pending.append(sidecar_tmp)
            with tf.io.gfile.GFile(sidecar_tmp, "w") as f:
                f.write(json.dumps(doc, indent=1))
            # every file complete: an earlier write's shards.json goes first, so that a folder
            # caught between the renames reads as incomplete, not as that write's shards
            if tf.io.gfile.exists(sidecar):
                tf.io.gfile.remove(sidecar)
            for tmp, path in zip(pending, [*files, sidecar]):
                _move_in(tmp, path)
            pending.clear()
            # shards of an earlier write into this folder (another count or data set)
            stale = sorted(set(_names_in(base, STALE_PATTERN)) - set(files))
            for path in stale:
                tf.io.gfile.remove(path)
    finally:  # failed or interrupted: this write's temporary files go (a killed one's: next write)
        for tmp in pending:
            with contextlib.suppress(Exception):
                if tf.io.gfile.exists(tmp):
                    tf.io.gfile.remove(tmp)
    if stale:
        warnings.warn(f"removed {len(stale)} shard file(s) of an earlier write from {out_dir}", stacklevel=2)
    if skipped:
        warnings.warn(f"left {len(skipped)} unreadable image(s) out of the shards:\n{_skipped_lines(skipped)}",
                      stacklevel=2)
        emptied = _classes_left_empty(manifest, rows, skipped)
        if emptied:
            warnings.warn(
                f"the shards hold no image of {counted(len(emptied), 'class', 'classes')}: "
                f"{', '.join(emptied)} (every file of each is unreadable; the reasons are above and "
                f"in {SIDECAR}'s 'skipped'). A model would still get an output for each that it can "
                "never learn: fix or replace those files, or take the class out of the data",
                stacklevel=2)
    return files


def _skipped_lines(skipped: dict[str, str], rest: str = f"all in {SIDECAR}'s 'skipped'") -> str:
    """The files left out and their reasons, one line each, the first :data:`SHOWN_BAD` of them
    (the sidecar's ``skipped`` holds all: a dropped mount of 20,000 files printed 20,000 lines);
    ``rest`` says where the others are named."""
    shown = list(skipped.items())[:SHOWN_BAD]
    more = f"\n  ... and {len(skipped) - len(shown)} more ({rest})" if len(skipped) > len(shown) else ""
    return "\n".join(f"  {p}: {r}" for p, r in shown) + more


def _classes_left_empty(manifest: Manifest, rows: list[int], skipped: dict[str, str]) -> list[str]:
    """The classes that some of ``rows`` hold but none of the rows written (their files are all
    in ``skipped``), as ``keras-species split`` and ``audit`` name them."""
    before: Counter[int] = Counter()
    after: Counter[int] = Counter()
    for i in rows:
        for k in _label_indices(manifest, i):
            before[k] += 1
            if manifest.paths[i] not in skipped:
                after[k] += 1
    return [manifest.class_names[k] for k in sorted(before) if not after[k]]


# ---------------------------------------------------------------------------------- reading
def _locate(pattern_or_dir: str) -> tuple[list[str], dict]:
    """The shard files to read and the sidecar describing them.

    A folder means the files its ``shards.json`` lists (a ``.tfrecord`` it does not list, say one
    left by another write, is not read); a glob pattern may pick some of them, and only those.
    """
    import tensorflow as tf

    target = os.fspath(pattern_or_dir)
    is_dir = tf.io.gfile.isdir(target)
    folder = target.rstrip("/") if is_dir else (target.rsplit("/", 1)[0] if "/" in target else ".")
    sidecar = folder + "/" + SIDECAR
    if not tf.io.gfile.exists(sidecar):
        if not is_dir and any(c in folder for c in "*?["):
            raise FileNotFoundError(
                f"{target!r}: a pattern picks shard files inside one folder, so its folder part "
                f"({folder}) cannot hold wildcards; pass the shard folder itself, or a pattern "
                "such as DIR/shard-0000*")
        matches = [] if is_dir else tf.io.gfile.glob(target)
        if not is_dir and not matches:
            raise FileNotFoundError(f"no shard files match {target!r}; write them with `keras-species shard`")
        if matches and all(tf.io.gfile.isdir(m) for m in matches):
            raise FileNotFoundError(
                f"{target!r} matches the folder(s) {', '.join(matches[:3])}, not shard files: pass "
                "one shard folder itself")
        raise FileNotFoundError(f"{sidecar} is missing: it holds the class names written by write_shards, "
                                "and a write that did not finish leaves none; write the shards "
                                "again with `keras-species shard`")
    with tf.io.gfile.GFile(sidecar, "rb") as f:
        doc, reason = parse_json(f.read())
    reason = reason or kind_problem(doc, dict)
    if reason:
        raise ManifestError(f"{sidecar} is damaged ({reason}): write the shards again with "
                            "`keras-species shard`")
    found = doc.get("format")
    if isinstance(found, str) and found.startswith(FORMAT.rsplit("/", 1)[0] + "/") and found not in READ_FORMATS:
        raise ManifestError(f"{sidecar} describes shards of format {found!r}, and this keras-species "
                            f"reads {' and '.join(map(repr, READ_FORMATS))}: use the keras-species "
                            "that wrote them, or write the shards again with `keras-species shard`")
    if found not in READ_FORMATS or not isinstance(doc.get("shards"), list):
        raise ManifestError(f"{sidecar} is not a keras-species shard description")
    lacking = [k for k in ("class_names", "multilabel", "n_images", "label_sets", "n_unlabelled")
               if k not in doc] or [
        f"shards[{i}].{k}" for i, e in enumerate(doc["shards"]) for k in ("file", "n")
        if not isinstance(e, dict) or k not in e][:1]
    if lacking:
        raise ManifestError(f"{sidecar} is damaged (it has no {lacking[0]!r}): write the shards "
                            "again with `keras-species shard`")
    listed = [folder + "/" + s["file"] for s in doc["shards"]]
    if is_dir:
        missing = [f for f in listed if not tf.io.gfile.exists(f)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} shard file(s) listed in {sidecar} are missing, e.g. {missing[0]}; "
                "write the shards again with `keras-species shard`"
            )
        _check_sizes(listed, doc, sidecar)
        return listed, doc
    # the sidecar (and anything else that is not a shard file) is no match of a pattern
    # nor are a write's hidden temporary files (.shard-...tmp-<pid>.tfrecord), while it runs or
    # after it was killed
    # matched by name inside the literal folder: a glob of the whole target would read a folder
    # name with [ ] as a pattern (fish-v[2]/shard-* read fish-v2's shards)
    files = [f for f in _names_in(folder, target.rsplit("/", 1)[-1])
             if f.endswith(".tfrecord") and not f.rsplit("/", 1)[-1].startswith(".")]
    if not files:
        raise FileNotFoundError(f"no shard files match {target!r}; write them with `keras-species "
                                f"shard`, or pass the folder {folder}")
    names = {s["file"] for s in doc["shards"]}
    pattern = target.rsplit("/", 1)[-1]
    gone = [folder + "/" + n for n in sorted(names) if fnmatch.fnmatchcase(n, pattern)
            and folder + "/" + n not in files]
    if gone:  # listed and matched by the pattern, but not there: its images would be lost
        raise FileNotFoundError(
            f"{len(gone)} shard file(s) that {target!r} matches in {sidecar}'s list are missing, e.g. "
            f"{gone[0]}; write the shards again with `keras-species shard`")
    foreign = [f for f in files if os.path.basename(f) not in names]
    if foreign:
        raise ManifestError(
            f"{target!r} matches {len(foreign)} file(s) that {sidecar} does not list, e.g. {foreign[0]} "
            "(left by another write?): their labels may belong to other classes; narrow the pattern "
            "or pass the folder"
        )
    _check_sizes(files, doc, sidecar)
    return sorted(files), doc


def _check_sizes(files: Sequence[str], doc: dict, sidecar: str) -> None:
    """Refuse a shard file whose size is not the one written (cut short, overwritten): its
    records would fail to read, and the images in them would be lost. Sidecars written before
    the sizes were recorded are not checked. One ``stat`` a file, also on ``gs://``."""
    import tensorflow as tf

    written = {e["file"]: e.get("bytes") for e in doc["shards"]}
    for f in files:
        size = written.get(os.path.basename(f))
        if size is not None and (now := tf.io.gfile.stat(f).length) != size:
            raise ManifestError(
                f"{f} is damaged: it holds {now:,} bytes, and {size:,} were written (a copy cut "
                f"short, or the file overwritten); its images cannot be read: copy it again, or "
                "write the shards again with `keras-species shard`"
            )


def _split_view(doc: dict, split: str | None, where: str) -> dict:
    """``doc`` as the records of ``split`` see it: ``n_images``, ``n_unlabelled``, ``label_sets``
    and each shard's ``n`` counted over that split only (``doc`` itself when ``split`` is None).

    Shards written without a split (from a manifest that had none, or by a keras-species that
    did not store it) have none to pick: asking for one is refused, naming the splits they have.
    """
    if split is None:
        return doc
    if not isinstance(split, str) or not split:
        raise ValueError(f"split={split!r} must be the name of a split, such as 'train', or None "
                         "for all the images")
    splits = doc.get("splits") or {}
    sets = doc.get("split_label_sets") or {}
    if not isinstance(splits, dict) or not isinstance(sets, dict):
        raise ManifestError(f"the {SIDECAR} of {where} is damaged (its splits are not a JSON "
                            "object): write the shards again with `keras-species shard`")
    if split not in splits or split not in sets:
        if not splits:
            raise ValueError(
                f"split={split!r}: the shards in {where} hold no split (the data they were written "
                "from had none, or they were written before keras-species stored it): read them "
                "with split=None, or write them again from data with a split column"
            )
        have = ", ".join(repr(k) for k in splits)
        raise ValueError(f"split={split!r}: the shards in {where} have no such split; they have "
                         f"{have}")
    view = dict(doc)
    view["label_sets"] = dict(sets[split])
    view["n_images"] = int(splits[split])
    view["n_unlabelled"] = 0 if doc["multilabel"] else int(sets[split].get("", 0))
    view["shards"] = [{**s, "n": int((s.get("splits") or {}).get(split, 0))} for s in doc["shards"]]
    view["split"] = split
    return view


def read_sidecar(pattern_or_dir: str | os.PathLike, split: str | None = None) -> dict:
    """The ``shards.json`` written by :func:`write_shards` for a shard folder or file pattern.

    Args:
        pattern_or_dir: the folder, or a glob pattern of shard files inside it.
        split: a split name (``"train"``): the counts (``n_images``, ``n_unlabelled``,
            ``label_sets``, each shard's ``n``) are those of that split's records, as
            ``shard_dataset(..., split=split)`` reads them. ``None``: all the records.

    Returns:
        The sidecar as a dict (``class_names``, ``multilabel``, ``n_images``, ``shards``,
        ``splits`` (images per split, ``{}`` or absent when the shards hold no split), ``seed``...).
        Its counts are those of the whole folder, also for a pattern that picks some files: the
        images of those files are the ``n`` of their entries in ``shards``.

    Raises:
        ValueError: ``split`` is not one the shards have (the message names those they have).

    Example:
        >>> read_sidecar("gs://bucket/fish-shards", split="train")["n_images"]   # doctest: +SKIP
        448
    """
    target = os.fspath(pattern_or_dir)
    return _split_view(_locate(target)[1], split, target)


def _weight_table(doc: dict, mode) -> dict[str, float]:
    """Per label set weight, computed by class_balance_weights over the sets' counts."""
    from keras_species.data.pipeline import class_balance_weights

    keys = list(doc["label_sets"])
    counts = np.array([doc["label_sets"][k] for k in keys], np.int64)
    c = len(doc["class_names"])
    if doc["multilabel"]:
        rows = np.zeros((len(keys), c), np.uint8)
        for r, k in enumerate(keys):
            for j in filter(None, k.split(";")):
                rows[r, int(j)] = 1
    else:
        rows = np.array([int(k) if k else UNLABELLED for k in keys], np.int64)
    expanded = np.repeat(rows, counts, axis=0)
    fake = Manifest([""] * len(expanded), expanded, doc["class_names"])
    w = class_balance_weights(fake, mode)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return {k: float(w[s]) for k, s in zip(keys, starts)}


def shard_dataset(
    pattern_or_dir: str | os.PathLike,
    image_size: int | Sequence[int],
    batch_size: int = 32,
    *,
    training: bool = False,
    label_mode: str = "auto",
    label_smoothing: float = 0.0,
    resize: str = "stretch",
    augment=None,
    batch_augment=None,
    cache: bool | str | os.PathLike = False,
    shuffle_buffer: int | None = None,
    sample_weights: str | dict | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    drop_remainder: bool = False,
    num_parallel_calls: int | None = None,
    num_workers: int | None = None,
    worker_index: int | None = None,
    split: str | None = None,
):
    """Read shards written by :func:`write_shards` as ``make_dataset`` would read the images.

    Yields ``(images float32 (B, H, W, 3) 0–255 RGB, labels[, sample_weights])``, with the same
    label modes, resize modes, augmentation and batch augmentation as
    :func:`keras_species.data.pipeline.make_dataset`. When ``training``, the file order is
    shuffled each epoch and records are interleaved from several files before the element shuffle.

    Args:
        pattern_or_dir: a shard folder or a glob pattern (local or ``gs://``...).
        image_size, batch_size, training, label_mode, label_smoothing, resize, augment,
            batch_augment, shuffle_buffer, seed, deterministic, drop_remainder,
            num_parallel_calls: as in ``make_dataset``.
        cache: default ``False`` here (shards are meant for data larger than memory).
        sample_weights: ``"balanced"``, a ``{class: weight}`` dict or a JSON path, computed from
            the label-set counts in ``shards.json`` exactly as ``class_balance_weights`` would.
        num_workers, worker_index: explicit file-level split across workers (see the module
            docstring); leave ``None`` under ``tf.distribute`` (auto-shard by FILE).
        split: read only the records of this split (``"train"``, ``"val"``...; the ``split``
            column of the data the shards were written from); ``None`` reads them all. The label
            checks and ``sample_weights`` use that split's counts, as ``make_dataset`` of
            ``manifest.split(split)`` would. A filter on each record's ``split`` feature, not one
            set of files per split: every split stays spread over all the files, so file-level
            worker sharding works for a small val/test split too, at the cost of reading the
            other splits' bytes (when that I/O matters, write each split to its own folder:
            ``write_shards(manifest.split("train"), ...)``).

    Returns:
        The ``tf.data.Dataset``.

    Raises:
        ValueError: ``split`` is not one the shards have (the message names those they have),
            or the shards hold no split.

    Example:
        >>> ds = shard_dataset("gs://bucket/fish-shards", 224, 64, training=True,
        ...                    augment="r1", num_workers=4, worker_index=0)   # doctest: +SKIP
    """
    import tensorflow as tf

    from keras_species.data.pipeline import (
        RESIZE_RULE,
        check_batch_augment,
        check_dataset_arguments,
        check_drop_remainder,
        check_resize,
        decode_8bit,
        decode_calls,
        encode_labels,
        finish_dataset,
        is_file_cache,
        resize_image,
        resolve_label_mode,
        to_uint8,
    )

    if not isinstance(pattern_or_dir, str | os.PathLike):
        raise TypeError(f"pattern_or_dir must be one shard folder or a glob pattern of files in "
                        f"it, got a {type(pattern_or_dir).__name__}")
    if sample_weights is not None and not isinstance(sample_weights, str | dict | os.PathLike):
        raise TypeError(f"sample_weights={type(sample_weights).__name__}: shards take 'balanced', a "
                        "{class: weight} dict or a JSON path (a per-image array cannot follow the "
                        "records, which are stored in a shuffled order)")
    check_dataset_arguments(batch_size, shuffle_buffer=shuffle_buffer, num_parallel_calls=num_parallel_calls,
                            seed=seed, augment=augment, batch_augment=batch_augment)
    target = os.fspath(pattern_or_dir)
    files, doc = _locate(target)
    doc = _split_view(doc, split, target)
    c = len(doc["class_names"])
    multilabel = bool(doc["multilabel"])
    soft = bool(label_smoothing) or batch_augment is not None
    any_labelled = doc["n_unlabelled"] < doc["n_images"]
    mode = resolve_label_mode(label_mode, multilabel, any_labelled, soft)
    check_batch_augment(batch_augment, mode)
    if mode != "none" and doc["n_unlabelled"]:
        raise ManifestError(
            f"{doc['n_unlabelled']} unlabelled image(s) in these shards with label_mode={mode!r}: "
            "use label_mode='none', or write shards of the labelled images only"
        )
    if mode != "none":  # the mode/smoothing pair checked by the in-memory encoder on one row
        # (shards of a list of paths have no class: a row of class 0 cannot be made)
        probe_labels = np.zeros((1, c), np.uint8) if multilabel else np.zeros(1, np.int64)
        encode_labels(Manifest(["x"], probe_labels, doc["class_names"]), mode, label_smoothing)
    if sample_weights is not None and mode == "none":
        raise ValueError("sample_weights need labels: label_mode cannot be 'none'")
    table = None
    if sample_weights is not None:
        weights = _weight_table(doc, sample_weights)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(weights), tf.string), tf.constant(list(weights.values()), tf.float32)
            ),
            default_value=1.0,
        )

    n = int(doc["n_images"])
    options = tf.data.Options()
    if num_workers is None and worker_index is not None:
        raise ValueError(f"worker_index={worker_index} needs num_workers=, the number of workers "
                         "that share the files (without it every worker would read all of them)")
    if num_workers is not None:
        if not whole_at_least(num_workers, 1):
            raise ValueError(f"num_workers={num_workers!r} must be a whole number of at least 1")
        if not whole_at_least(worker_index, 0) or worker_index >= num_workers:
            raise ValueError(f"worker_index={worker_index} must be in 0..{num_workers - 1}")
        if len(files) < num_workers:
            raise ValueError(
                f"{len(files)} shard file(s) for {num_workers} workers: write more shards "
                "(smaller --shard-size) so that every worker gets at least one"
            )
        files = files[worker_index::num_workers]
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    else:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    # the images of the files read (a worker's share, or those a pattern picks), not the folder's:
    # a pattern of one file with drop_remainder yielded no batch, and one whose file held none of
    # the split yielded nothing, where a worker's share was refused
    sizes = {s["file"]: s["n"] for s in doc["shards"]}
    counted_here = sum(sizes.get(os.path.basename(f), 0) for f in files)
    # a split's records per file are known when the sidecar counts them (stop 29 on)
    per_file_known = doc.get("split") is None or all("splits" in e for e in doc["shards"])
    n = counted_here if per_file_known else (counted_here or n)
    if n == 0:
        reader = (f"worker {worker_index} of {num_workers} gets" if num_workers is not None
                  else f"{target} reads")
        raise ValueError(
            f"{reader} no image" + (f" of split {doc['split']!r}" if doc.get("split") else "")
            + f": its shard file(s) ({', '.join(os.path.basename(f) for f in files[:3])}) hold none; "
            + ("use fewer workers, or write more, smaller shards (--shard-size) so that the split's "
               "images spread over them" if num_workers is not None else
               "give a pattern that picks files holding some (or the whole folder)"))
    check_drop_remainder(n, batch_size, drop_remainder)

    autotune = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    det = (not training) if deterministic is None else deterministic
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if training:  # records of several files mixed, read in parallel
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                           num_parallel_calls=autotune, deterministic=det)
    else:  # files one after the other: the order written (shuffled by write_shards' seed)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=1)
    if split is not None:  # parses the split feature only: the other splits' images stay undecoded
        split_spec = {"split": tf.io.FixedLenFeature([], tf.string, default_value="")}

        @tf.autograph.experimental.do_not_convert
        def in_split(record):
            return tf.equal(tf.io.parse_single_example(record, split_spec)["split"], split)

        ds = ds.filter(in_split)
    # only the features read: shards written before `split` existed parse the same
    spec = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.VarLenFeature(tf.int64),
            "draft": tf.io.FixedLenFeature([], tf.int64, default_value=0)}  # 0 in shards before it
    if doc.get("turned"):  # EXIF-turned JPEGs stored as they are (none in shards before them)
        spec["orientation"] = tf.io.FixedLenFeature([], tf.int64, default_value=1)
    out_size = check_resize(image_size, resize)
    s = float(label_smoothing)

    @tf.autograph.experimental.do_not_convert  # plain graph code: skip AutoGraph's tracing cost
    def load(record):
        ex = tf.io.parse_single_example(record, spec)
        img = decode_8bit(ex["image"], draft_to=out_size, draft=ex["draft"] > 0,
                          orientation=ex.get("orientation"))
        img.set_shape([None, None, 3])
        img = to_uint8(resize_image(img, image_size, resize))
        idx = tf.sparse.to_dense(ex["label"])
        out = [img]
        if mode == "sparse":
            out.append(tf.cast(idx[0], tf.int32))
        elif mode == "onehot":
            out.append(tf.one_hot(idx[0], c) * (1.0 - s) + s / c)
        elif mode == "multihot":
            hot = tf.minimum(tf.reduce_sum(tf.one_hot(idx, c), axis=0), 1.0)
            out.append(hot * (1.0 - s) + s / 2.0)
        if table is not None:
            key = tf.strings.reduce_join(tf.strings.as_string(idx), separator=";")
            out.append(table.lookup(key))
        return tuple(out)

    # no ignore_errors: every stored image was checked when it was written, so a failure here is
    # a damaged record (DataLossError), which must stop the run, not drop images without a word
    ds = ds.map(load, num_parallel_calls=decode_calls(num_parallel_calls), deterministic=det)
    content = None
    if is_file_cache(cache):  # key the file cache by all that its elements hold
        from keras_species.data.file_cache import file_fingerprint

        content = {
            "reader": "shard_dataset", "resize_rule": RESIZE_RULE, "image_size": image_size,
            "resize": resize, "files": file_fingerprint(files), "label_mode": mode,
            "label_smoothing": s, "weights": None if table is None else sorted(weights.items()),
            "split": split,
            # training reads the files in a shuffled, interleaved order: the cache holds that order,
            # which an unordered (non-deterministic) interleave does not repeat
            "seed": seed if training else None, "ordered": det or not training,
        }
    ds = finish_dataset(
        ds,
        n=n,
        has_labels=mode != "none",
        has_weights=table is not None,
        batch_size=batch_size,
        training=training,
        augment=augment,
        batch_augment=batch_augment,
        cache=cache,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        deterministic=det,
        drop_remainder=drop_remainder,
        num_parallel_calls=num_parallel_calls,
        cache_content=content,
    )
    return ds.with_options(options)


# ---------------------------------------------------------------------------------- sources
def shard_folder_problem(folder: str | os.PathLike,
                         readers: str = "audit, split, shard and a recipe's --data read") -> str | None:
    """Why ``folder`` cannot be read as images: it holds shards that :func:`write_shards` wrote.

    ``audit``, ``split``, ``shard`` and the recipes' ``--data`` read images (a folder of class
    subfolders, a CSV, an iNat/COCO JSON); a shard folder holds only ``.tfrecord`` files and
    ``shards.json``, so a folder reader (``sources.from_folder``) would say it has no class
    subfolders: this is the line to say instead.

    Args:
        folder: a local folder.
        readers: the commands that were given it and the verb, as the line names them
            (``"predict reads"``).

    Returns:
        None when ``folder`` holds no ``shards.json``; else one line naming the folder, the data
        the shards were written from (the sidecar's ``source``, when it reads) and how the
        shards are read instead.

    Example:
        >>> shard_folder_problem("shards/fish")[:52]   # doctest: +SKIP
        'shards/fish is a folder of TFRecord shards written '
    """
    sidecar = os.path.join(os.fspath(folder), SIDECAR)
    if not os.path.isfile(sidecar):
        return None
    doc, _ = read_json_file(sidecar, dict)  # a damaged sidecar: the line names no source
    source = doc.get("source") if doc else None
    origin = f" ({source})" if isinstance(source, str) and source else ""
    return (f"{os.fspath(folder)} is a folder of TFRecord shards written by `keras-species shard` "
            f"(it holds {SIDECAR}), not images: {readers} "
            f"images, so give the data the shards were written from{origin}; read the shards "
            f"themselves in Python with keras_species.data.shards.shard_dataset("
            f"{os.fspath(folder)!r}, image_size, batch_size)")


# ---------------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``keras-species shard``.

    Args:
        parser: the subcommand's parser.

    Example:
        >>> p = argparse.ArgumentParser(); configure_parser(p)
        >>> p.parse_args(["--out", "s"]).data
        'demo'
    """
    from keras_species.config import positive_int, whole_number
    from keras_species.data.sources import add_source_arguments

    add_source_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (local or a tf.io.gfile URL such as gs://...)")
    # the numbers are checked here too, not only by write_shards: the message names the flag
    # (--shard-size), not write_shards' argument (shard_size=)
    parser.add_argument("--image-size", default=None, metavar="N",
                        type=whole_number(1, hint="(or leave it out to keep every image's size)"),
                        help="shrink so the longest side is at most N pixels (aspect kept); default: keep")
    parser.add_argument("--shard-size", type=positive_int, default=1000, metavar="N",
                        help="images per shard file, at least 1 (default 1000)")
    parser.add_argument("--quality", type=whole_number(1, 100, hint="(a JPEG quality)"), default=95,
                        metavar="Q", help="JPEG quality of the images shrunk to --image-size, 1 to 100 "
                             "(default 95)")
    parser.add_argument("--workers", type=positive_int, default=None, help="reader threads (default: up to 8)")
    parser.add_argument("--seed", type=whole_number(0), default=0, metavar="S",
                        help="seed of the shuffled record order, at least 0 (default 0): every shard "
                             "holds a mix of classes")
    parser.add_argument("--split", default=None, metavar="NAME",
                        help="write only the images of this split (the data's split column, e.g. "
                             "train); default: every image, each record keeping its split")
    add_max_pixels_flag(parser, "left out")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``keras-species shard``; returns the exit code.

    Args:
        args: parsed by a parser set up with :func:`configure_parser`.

    Returns:
        0 on success. Errors a user can fix are raised, and ``keras-species`` prints them
        as one line with exit code 2 (:func:`keras_species.cli.main`).

    Example:
        >>> run_cli(argparse.Namespace(data="demo", out="shards", image_size=128, shard_size=200,
        ...         quality=95, workers=None, seed=0, split=None))   # doctest: +SKIP
        0
    """
    from keras_species.data import sources

    max_pixels = getattr(args, "max_pixels", None)
    with max_pixels_flag(max_pixels):
        manifest = sources.load(args.data, **sources.source_options(args))  # errors: keras_species.cli
        split = getattr(args, "split", None)
        files = write_shards(manifest, args.out, image_size=args.image_size, shard_size=args.shard_size,
                             quality=args.quality, workers=args.workers, seed=getattr(args, "seed", 0),
                             split=split)
        doc = read_sidecar(args.out)
        hint = max_pixels_hint(doc["skipped"].values())
    if hint:
        print(hint, file=sys.stderr)
    of = (f"the {manifest.splits.count(split)} images of split {split!r} "
          f"(--split; the data: {manifest.summary()})" if split is not None
          else f"{len(manifest)} images ({manifest.summary()})")
    print(f"wrote {doc['n_images']} of {of} to {len(files)} shard file(s) in {args.out}, in "
          f"shuffled order (--seed {doc['seed']})")
    if doc["splits"] and split is None:
        counts = " ".join(f"{k}={v}" for k, v in doc["splits"].items())
        one = "train" if "train" in doc["splits"] else next(iter(doc["splits"]))
        print(f"splits kept: {counts}; read one with shard_dataset(..., split={one!r})")
    print(f"description: {args.out.rstrip('/')}/{SIDECAR}")
    return 0
