"""How long deleting a ``tf.data`` iterator takes with TensorFlow's autotuner on and off.

Usage::

    python benchmarks/iterator_teardown.py [--seconds 1 3 6] [--repeats 3] [--epochs 3]

Why it matters: in TensorFlow 2.21 (seen on CPU) an iterator whose autotuner runs can wait, when
deleted, for the autotuner's next wake-up, and that interval doubles while the iterator lives.
Keras' ``fit`` deletes one iterator at the end of every epoch (and ``evaluate``/``predict`` one
per call), so the wait is paid per epoch. keras-species therefore builds every dataset with
``pipeline.dataset_options`` (autotuning off; ``AUTOTUNE`` parallelism then means one call per
core). Two measurements, side by side in one run:

- ``delete``: an iterator over a CPU-bound map (parallel map, batch, prefetch, as the pipeline)
  is drawn from for ``S`` seconds, then deleted; the table shows how long ``del`` took (worst
  and median of ``--repeats``) and the images/s drawn, autotuner on vs off.
- ``fit``: ``keras.Model.fit`` of a small dense model for ``--epochs`` epochs on a mapped
  dataset of about 3 s an epoch; total wall-clock time, autotuner on vs off, and their ratio.

The two settings run interleaved, so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _dataset(n: int, autotune: bool):
    """A CPU-bound stand-in for decoding: one 160x160 matrix product per element."""
    import tensorflow as tf

    from keras_species.data.pipeline import dataset_options

    def work(i):
        x = tf.random.stateless_uniform([160, 160], seed=tf.stack([i, i]))
        feature = tf.reduce_mean(tf.matmul(x, x), axis=0)[:8]
        return feature, i % 2

    ds = tf.data.Dataset.range(n).map(work, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(32).prefetch(tf.data.AUTOTUNE)
    options = dataset_options(deterministic=True)
    options.autotune.enabled = autotune
    return ds.with_options(options)


def _delete_after(seconds: float, autotune: bool) -> tuple[float, float]:
    """Seconds taken by ``del`` after drawing for ``seconds``, and elements drawn per second."""
    it = iter(_dataset(10**9, autotune))
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        n += int(next(it)[0].shape[0])
    rate = n / (time.perf_counter() - start)
    t = time.perf_counter()
    del it
    return time.perf_counter() - t, rate


def _fit_seconds(n: int, epochs: int, autotune: bool) -> float:
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    t = time.perf_counter()
    model.fit(_dataset(n, autotune), epochs=epochs, verbose=0, shuffle=False)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the tables.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0.

    Example:
        >>> main(["--seconds", "1", "--repeats", "1", "--epochs", "1"])   # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 3.0, 6.0],
                        help="how long each iterator is drawn from before it is deleted")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from keras_species.cpu_budget import describe_cores

    print(f"TF {tf.__version__}, Keras {keras.__version__}, {describe_cores()}, "
          f"{args.repeats} interleaved repeats")
    list(_dataset(64, True))  # start TensorFlow's runtime once, untimed
    print(f"  {'drawn for':>9}  {'autotuner':>9}  {'del worst s':>11}  {'del median s':>12}  {'elements/s':>10}")
    for seconds in args.seconds:
        got: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(max(1, args.repeats)):
            for autotune in (True, False):
                got[autotune].append(_delete_after(seconds, autotune))
        for autotune in (True, False):
            waits, rates = np.array(got[autotune]).T
            print(f"  {seconds:8.1f}s  {'on' if autotune else 'off':>9}  {waits.max():11.3f}  "
                  f"{np.median(waits):12.3f}  {np.median(rates):10.0f}")

    # size the fit data so that an epoch takes about 3 s with the autotuner off
    probe = time.perf_counter()
    list(_dataset(3200, False))
    n = int(3200 * 3.0 / (time.perf_counter() - probe))
    totals: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(max(1, args.repeats)):
        for autotune in (True, False):
            totals[autotune].append(_fit_seconds(n, args.epochs, autotune))
    on, off = float(np.median(totals[True])), float(np.median(totals[False]))
    print(f"  fit, {args.epochs} epochs of {n} elements (median of {args.repeats}): autotuner on "
          f"{on:.2f} s, off {off:.2f} s; on / off = {on / off:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
