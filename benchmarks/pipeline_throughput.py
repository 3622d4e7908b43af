"""Images per second of the input pipeline, side by side, on one class-folder data set.

Usage::

    python benchmarks/pipeline_throughput.py [DATA] [--image-size 128] [--batch-size 32] [--repeats 1]

DATA is a folder of class subfolders (default ``../shared/data/fish4knowledge23`` beside the repo
if present, else the embedded ``demo`` set). Contenders, each one full pass over every image:

- ``bare``: the limit. A ``tf.data`` map with only ``tf.io.read_file`` →
  ``tf.io.decode_image(channels=3)`` → ``tf.image.resize(antialias=True)``, ``AUTOTUNE``
  parallelism, batch, prefetch: the same decoding and resizing ops with the same parallelism and
  nothing else (an eager Python loop would be a slower, flattering baseline: it decodes on one
  thread).
- ``first epoch``: ``make_dataset(training=False, cache=True)``, including building it (the up-front
  file check) and filling the memory cache.
- ``cached epoch``: the second pass over the same dataset (served from the cache).
- ``keras utility``: ``keras.utils.image_dataset_from_directory`` at the same size and batch
  (no shuffle), including its file listing.

Every file is read once before timing, so that all contenders start from the OS page cache.
Targets: first epoch >= 0.9x bare, cached epoch >= 10x first epoch, first epoch >= 1.0x the Keras
utility. With ``--repeats N`` each contender runs N times (fresh pipelines) and the best is kept,
which tames the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fish4knowledge23"


def _epoch(ds) -> int:
    n = 0
    for batch in ds:
        x = batch[0] if isinstance(batch, tuple) else batch
        n += int(x.shape[0])
    return n


def bare_dataset(paths: list[str], size: int, batch: int):
    """The limit: read, decode and resize only, in a parallel tf.data map."""
    import tensorflow as tf

    def load(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        img.set_shape([None, None, 3])
        return tf.image.resize(img, (size, size), antialias=True)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit code (0 even when a target fails).

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0, or 2 when the data cannot be found.

    Example:
        >>> main(["demo", "--image-size", "64"])   # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None, help="class-folder directory or 'demo'")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="runs per contender; the best is kept")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from keras_species.data import sources
    from keras_species.data.demo import demo_root
    from keras_species.data.pipeline import make_dataset

    data = args.data or (str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else "demo")
    folder = demo_root() if data == "demo" else Path(data)
    if not Path(folder).is_dir():
        print(f"{folder} is not a folder of class subfolders", file=sys.stderr)
        return 2
    manifest = sources.load(str(folder))
    paths = manifest.paths
    for p in paths:  # warm the page cache for every contender alike
        with open(p, "rb") as f:
            f.read()
    size, batch = args.image_size, args.batch_size
    print(f"data: {folder} ({len(paths)} images, {manifest.num_classes} classes), "
          f"image size {size}, batch {batch}, TF {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores")

    best: dict[str, float] = {}

    def record(name: str, n: int, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), n / seconds)

    for _ in range(max(1, args.repeats)):
        t = time.perf_counter()
        n = _epoch(bare_dataset(paths, size, batch))
        record("bare decode+resize (limit)", n, time.perf_counter() - t)

        t = time.perf_counter()
        ds = make_dataset(manifest, size, batch, training=False, cache=True)
        n = _epoch(ds)
        record("make_dataset first epoch", n, time.perf_counter() - t)
        t = time.perf_counter()
        n = _epoch(ds)
        record("make_dataset cached epoch", n, time.perf_counter() - t)

        t = time.perf_counter()
        kds = keras.utils.image_dataset_from_directory(
            str(folder), image_size=(size, size), batch_size=batch, shuffle=False, verbose=False
        )
        n = _epoch(kds)
        record("keras image_dataset_from_directory", n, time.perf_counter() - t)

    width = max(map(len, best))
    for name, rate in best.items():
        print(f"  {name:<{width}}  {rate:10.0f} images/s")
    bare = best["bare decode+resize (limit)"]
    first = best["make_dataset first epoch"]
    cached = best["make_dataset cached epoch"]
    utility = best["keras image_dataset_from_directory"]
    checks = [
        ("first epoch / bare", first / bare, 0.9),
        ("cached / first epoch", cached / first, 10.0),
        ("first epoch / keras utility", first / utility, 1.0),
    ]
    for name, ratio, target in checks:
        mark = "ok" if ratio >= target else "BELOW TARGET"
        print(f"  {name:<{width}}  {ratio:10.2f}x  (target >= {target:g}x: {mark})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
