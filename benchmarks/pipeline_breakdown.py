"""Where the first epoch's time goes: the pipeline with parts left out, beside the Keras utility.

Usage::

    python benchmarks/pipeline_breakdown.py [DATA] [--image-size 128] [--batch-size 32] [--repeats 7]

Companion of ``pipeline_throughput.py`` (same arguments and data default). Each row is one full pass over the
images, from a ready list of paths (no listing, no file check, except in the last row: the check
runs once before timing, and the rows decode the files it keeps with the decoders it chose, big
JPEGs at a reduced scale, as ``pipeline_throughput.py``'s bare loop), all with
the autotuner off, interleaved over ``--repeats`` runs; the table shows the median wall-clock and
CPU ms per image, the ratio of the first row's CPU time to the row's, and minor page faults per
image (fresh memory touched for the first time, ``getrusage``):

- ``keras-like``: what ``keras.utils.image_dataset_from_directory`` does per image
  (``decode_image`` then plain bilinear ``tf.image.resize`` to float32), zipped with the labels,
  batched.
- ``uint8 batches``: our decoding and resizing (``pipeline.resize_image``), rounded to uint8
  (``pipeline.to_uint8``), with ``pipeline.decode_calls()`` calls in flight, batched (what
  ``make_dataset`` does before its cache).
- ``uint8, 1 call/core``: the same with one decode call in flight per core (what ``AUTOTUNE``
  means with the autotuner off, and what the pipeline did before ``decode_calls``): in this
  ordered map a core idles behind each big image.
- ``+ cache``: the same as ``uint8 batches``, then the memory cache of uint8 batches.
- ``+ cache + float32``: then the cast of each batch to float32 (``make_dataset``'s graph).
- ``make_dataset``: the real thing, including listing the folder and the file check.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np

# run as a script (python benchmarks/pipeline_breakdown.py), so benchmarks/ is on sys.path
from pipeline_throughput import data_folder, data_parser, malloc_settings

ONE_CALL = "uint8, 1 call/core"
ROWS = ("keras-like", ONE_CALL, "uint8 batches", "+ cache", "+ cache + float32", "make_dataset")


def _build(row: str, folder: str, paths: list[str], kinds: np.ndarray, labels: np.ndarray, size: int,
           batch: int):
    import tensorflow as tf

    from keras_species.data import sources
    from keras_species.data.pipeline import (
        DECODE_CALLS_PER_CORE,
        _decoder,
        dataset_options,
        decode_calls,
        make_dataset,
        resize_image,
        to_uint8,
    )

    autotune = tf.data.AUTOTUNE
    if row == "make_dataset":
        return make_dataset(sources.load(folder), size, batch)
    if row == "keras-like":

        def keras_load(path):
            img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            img.set_shape([None, None, 3])
            return tf.image.resize(img, (size, size))

        images = tf.data.Dataset.from_tensor_slices(paths).map(keras_load, num_parallel_calls=autotune)
        ds = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels))).batch(batch)
        return ds.prefetch(autotune).with_options(dataset_options())
    decode = _decoder(set(kinds.tolist()), draft=(size, size))

    @tf.autograph.experimental.do_not_convert
    def load(path, *rest):  # the kinds column only where several kinds are present, as in make_dataset
        kind, label = rest if decode.needs_kind else (None, rest[0])
        return to_uint8(resize_image(decode(path, kind), size)), label

    columns = (paths, kinds, labels) if decode.needs_kind else (paths, labels)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    calls = decode_calls() // DECODE_CALLS_PER_CORE if row == ONE_CALL else decode_calls()
    ds = ds.map(load, num_parallel_calls=calls, deterministic=True).ignore_errors(log_warning=True)
    ds = ds.batch(batch, num_parallel_calls=autotune, deterministic=True)
    if row.startswith("+ cache"):
        ds = ds.cache()
    if row == "+ cache + float32":
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=autotune, deterministic=True)
    return ds.prefetch(autotune).with_options(dataset_options())


def main(argv: list[str] | None = None) -> int:
    """Run the passes and print the table.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0, or 2 when the data cannot be found.

    Example:
        >>> main(["demo", "--repeats", "1"])   # doctest: +SKIP
    """
    args = data_parser(__doc__.splitlines()[0], repeats=7).parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_species.cpu_budget import describe_cores
    from keras_species.data.pipeline import KIND_BAD, check_files

    malloc = malloc_settings()
    found = data_folder(args.data)
    if found is None:
        return 2
    folder, manifest = found
    kinds = check_files(manifest.paths, image_size=args.image_size)[0]
    keep = np.flatnonzero(kinds != KIND_BAD)
    paths, kinds = [manifest.paths[i] for i in keep], kinds[keep]
    labels = manifest.labels[keep].astype(np.int32)
    n = len(paths)
    print(f"data: {folder} ({n} images), image size {args.image_size}, batch {args.batch_size}, "
          f"{describe_cores()}, {args.repeats} interleaved repeats, malloc {malloc}")

    def one_pass(row: str) -> tuple[float, float, float]:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t, c = time.perf_counter(), time.process_time()
        for _ in _build(row, folder, paths, kinds, labels, args.image_size, args.batch_size):
            pass
        wall, used = time.perf_counter() - t, time.process_time() - c
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return 1000 * wall / n, 1000 * used / n, faults / n

    for row in ROWS[:3]:  # start TensorFlow's runtime and trace once, untimed
        one_pass(row)
    got: dict[str, list[tuple[float, float, float]]] = {row: [] for row in ROWS}
    for _ in range(max(1, args.repeats)):
        for row in ROWS:
            got[row].append(one_pass(row))
    med = {row: np.median(np.array(v), axis=0) for row, v in got.items()}
    first_cpu = med[ROWS[0]][1]
    print(f"  {'':<18}  {'wall ms/img':>11}  {'CPU ms/img':>10}  {'keras-like CPU / row':>20}  {'faults/img':>10}")
    for row in ROWS:
        wall, used, faults = med[row]
        print(f"  {row:<18}  {wall:11.3f}  {used:10.3f}  {first_cpu / used:19.2f}x  {faults:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
