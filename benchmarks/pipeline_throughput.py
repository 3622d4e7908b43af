"""Images per second of the input pipeline, side by side, on one class-folder data set.

Usage::

    python benchmarks/pipeline_throughput.py [DATA] [--image-size 128] [--batch-size 32] [--repeats 3]

DATA is a folder of class subfolders (default ``../shared/data/fish4knowledge23`` beside the repo
if present, else the embedded ``demo`` set). Contenders, each one full pass over every image:

- ``bare``: the limit. The same decoding and resizing work as the pipeline and nothing else, as
  fast as ``tf.data`` can do it: ``tf.io.read_file`` → the decoder that the pipeline builds for
  the kinds of files present (``pipeline.check_files`` at the output size, run once before
  timing, since the check is the pipeline's own cost; for JPEGs and PNGs one ``DecodeJpeg`` kernel
  with the accurate DCT, ``pipeline.decode_jpeg_png``, JPEGs at least twice the output size at a
  reduced scale) → :func:`keras_species.data.pipeline.resize_image` (area-averaged where it shrinks, bilinear
  where it grows: the same kernels) in one map with ``deterministic=False`` and as many calls
  in flight as the pipeline's (``pipeline.decode_calls()``), then batch and prefetch, from a
  ready list of paths, with the pipeline's ``dataset_options`` (autotuner off, so that deleting
  the iterator does not wait: see ``benchmarks/iterator_teardown.py``). No file check, no
  cache, no labels, no rounding to ``uint8``, and no order to keep. (An eager Python loop
  would be a slower, flattering baseline: it decodes on one thread.)
- ``first epoch``: ``sources.load(DATA)`` (listing the folder) + ``make_dataset(training=False,
  cache=True)`` (the up-front file check, building the graph) + one pass that fills the cache.
- ``cached epoch``: the second pass over that same dataset, served from the memory cache. The
  run checks that it yields the same pixels as the first pass, and its CPU time per image shows
  that nothing is decoded again.
- ``keras utility``: ``keras.utils.image_dataset_from_directory`` at the same size and batch,
  ``shuffle=False`` (the same fixed order as ours), including its own listing of the folder. Note
  that it never antialiases (plain bilinear ``tf.image.resize``: a shrunk image aliases), and it
  has no file check and no cache.
- ``bare, never antialiased`` (information, no target): the bare loop with plain
  ``tf.image.resize`` and ``tf.io.decode_image`` (the fast DCT for JPEGs), i.e. the per-image
  work of the Keras utility; the gap between it and ``bare`` is the price of antialiasing the
  images that shrink (resizing the decoded ants/bees photos to 224 px in a ``tf.data`` map took
  0.48 CPU ms an image area-then-bilinear, 0.26 plain bilinear; the accurate DCT costs the same
  as the fast one with libjpeg-turbo here).
- ``training first/cached epoch`` (information, no target): ``make_dataset(training=True,
  seed=0)``, no augmentation: cached single images, reshuffled each epoch, then batched.

Every file is read once before timing, so that all contenders start from the OS page cache, and
TensorFlow's runtime is started once on 64 images (a one-time cost of the process). Building
each pipeline (tracing its functions, our file check) is inside its timing, and so is the
deletion of each pass's iterator at its end (a user pays it too).
Targets: first epoch >= 0.9x bare, cached epoch >= 10x first epoch, first epoch >= 1.0x the Keras
utility. Each contender runs ``--repeats`` times (fresh pipelines, interleaved, so that load from
other processes hits all alike); the table shows the best and the median wall-clock rate and the
least CPU time per image (all threads, ``time.process_time``), a figure that contention disturbs
less. Targets are judged on the best rates; the median-rate ratio and the CPU ratio (the other's
CPU ms over ours) are printed beside them. The best rates come from later rounds, whose memory
cache may reuse pages that an earlier round's cache freed (keras-species' malloc settings keep
freed memory in the process), so a line prints round 1 alone: what the first epoch of a fresh
process meets, every page of its cache faulted in. Two lines then price the first epoch's page
faults beyond the bare loop's (median round and round 1) at this machine's cost of a
first-touch fault, measured on the spot (:func:`fault_cost_us`), as a share of the bare loop's
CPU per image, and two more print the kernel (system) CPU time per image that the first epoch
spent beyond the bare loop's, as ``getrusage`` measured it: page faults taken by two busy
threads at once can cost several times the single-threaded figure (and the file check's reads
are in it too). A last line splits the set-up before the first batch (median ms: listing, file
check and build, iterator, first batch; for the bare loop build, iterator, first batch), which
runs on one thread while the other core idles, and gives the first epoch's extra as a share of
the bare pass's wall time. Medians include the runs where an iterator's deletion waited for TensorFlow's
autotuner (the Keras utility runs with it on; see ``benchmarks/iterator_teardown.py``), best
rates mostly do not. The ratio lines' last column pairs the two contenders round by round (the
ratio of their rates in the same round, where both met the same machine state) and prints the
median and the range of those ratios: on a shared machine whose
speed drifts between rounds this says more about the spread than best-vs-best does.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fish4knowledge23"


BARE = "bare decode+resize (limit)"
BARE_PLAIN = "bare, never antialiased (Keras' work)"
FIRST = "make_dataset first epoch"
CACHED = "make_dataset cached epoch"
UTILITY = "keras image_dataset_from_directory"
TRAIN_FIRST = "make_dataset training first epoch"
TRAIN_CACHED = "make_dataset training cached epoch"


def _epoch(ds, keep: bool = False, marks: dict | None = None) -> tuple[int, list]:
    """Images in one pass over ``ds``; with ``keep``, a thumbnail of every batch (for checks);
    ``marks`` receives the milliseconds spent creating the iterator and waiting for the first
    batch."""
    n, kept = 0, []
    t = time.perf_counter()
    batches = iter(ds)
    if marks is not None:
        marks["iterator"] = 1000.0 * (time.perf_counter() - t)
    for batch in batches:
        if marks is not None and "first batch" not in marks:
            marks["first batch"] = 1000.0 * (time.perf_counter() - t) - marks["iterator"]
        x = batch[0] if isinstance(batch, tuple) else batch
        n += int(x.shape[0])
        if keep:
            kept.append(x.numpy()[:, ::8, ::8])
    return n, kept


def bare_dataset(paths: list[str], size: int, batch: int, antialias: bool = True,
                 kinds=None):
    """The limit: read, decode and resize only (the pipeline's own resize), in a parallel map.

    ``kinds`` are ``pipeline.check_files``' kinds of ``paths`` (none bad): the files are decoded
    with the decoder that ``make_dataset`` builds for them (default: every file a JPEG or PNG).
    With ``antialias=False``: ``tf.io.decode_image`` and plain bilinear, the work that Keras'
    utility does per image.
    """
    import numpy as np
    import tensorflow as tf

    from keras_species.data.pipeline import (
        KIND_FAST,
        _decoder,
        dataset_options,
        decode_calls,
        resize_image,
    )

    kinds = np.full(len(paths), KIND_FAST, np.int32) if kinds is None else np.asarray(kinds, np.int32)
    decode = _decoder(set(kinds.tolist()))  # the pipeline's kernels

    def load(path, kind=None):
        if antialias:
            return resize_image(decode(path, kind), size)
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        img.set_shape([None, None, 3])  # Keras' kernels
        return tf.image.resize(img, (size, size))

    # the kinds column only where the decoder reads it (mixed kinds), as in the pipeline
    ds = tf.data.Dataset.from_tensor_slices((paths, kinds) if decode.needs_kind and antialias else paths)
    ds = ds.map(load, num_parallel_calls=decode_calls(), deterministic=False)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE).with_options(dataset_options(deterministic=False))


def data_parser(description: str, repeats: int) -> argparse.ArgumentParser:
    """The arguments of the pipeline benchmarks: DATA, --image-size, --batch-size, --repeats.

    Args:
        description: the parser's description.
        repeats: default of ``--repeats``.

    Returns:
        The parser.

    Example:
        >>> data_parser("x", 3).parse_args([]).image_size
        128
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", nargs="?", default=None, help="class-folder directory or 'demo'")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=repeats, help="runs per contender (interleaved)")
    return parser


def data_folder(data: str | None):
    """The class-folder directory a benchmark reads and its manifest, every file read once
    (page cache).

    Args:
        data: a folder, ``"demo"``, or ``None`` (``../shared/data/fish4knowledge23`` beside the
            repository if present, else the demo set).

    Returns:
        ``(folder, manifest)``, or ``None`` (after a message on stderr) when the folder does not
        exist.

    Example:
        >>> folder, manifest = data_folder("demo")   # doctest: +SKIP
    """
    from keras_species.data import sources
    from keras_species.data.demo import demo_root

    data = data or (str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else "demo")
    folder = str(demo_root() if data == "demo" else Path(data))
    if not Path(folder).is_dir():
        print(f"{folder} is not a folder of class subfolders", file=sys.stderr)
        return None
    manifest = sources.load(folder)
    for p in manifest.paths:  # warm the page cache for every contender alike
        with open(p, "rb") as f:
            f.read()
    return folder, manifest


def fault_cost_us(megabytes: int = 64, repeats: int = 3) -> float:
    """Microseconds this machine spends on one first-touch page fault (fresh anonymous memory).

    Written by hand because nothing reports it: the fastest of ``repeats`` passes that write one
    byte in every page of a fresh ``megabytes`` mapping, less a second pass over the same pages
    (the write itself), per page. On bare metal it is a few tenths of a microsecond; under a
    hypervisor it can be several times that, and the first epoch's cache lives on fresh pages.

    Args:
        megabytes: size of the mapping touched.
        repeats: passes (each on a fresh mapping).

    Returns:
        Microseconds a page.

    Example:
        >>> 0 < fault_cost_us(8, 1) < 1000
        True
    """
    import mmap

    import numpy as np

    size, best = megabytes << 20, float("inf")
    page = mmap.PAGESIZE
    for _ in range(max(1, repeats)):
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        pages = np.frombuffer(m, dtype=np.uint8)[::page]
        t = time.perf_counter()
        pages[:] = 1  # first touch: one fault a page
        first = time.perf_counter() - t
        t = time.perf_counter()
        pages[:] = 2  # the same writes, pages present
        again = time.perf_counter() - t
        del pages
        m.close()
        best = min(best, (first - again) / (size // page) * 1e6)
    return max(best, 0.0)


def malloc_settings() -> str:
    """Apply keras-species' malloc settings now, before any contender runs, and describe them.

    The settings are process-wide and ``make_dataset`` applies them on its first call, so a
    contender timed before it would run under other settings (see
    ``keras_species.data.allocator``; ``KERAS_SPECIES_MALLOC=system`` runs all on glibc's own).

    Returns:
        ``"tuned"`` or ``"glibc defaults (<why>)"``, for the header line.

    Example:
        >>> malloc_settings() in ("tuned", "glibc defaults (not glibc)")   # doctest: +SKIP
        True
    """
    from keras_species.data.allocator import tune_malloc, user_chose_malloc

    return "tuned" if tune_malloc() else f"glibc defaults ({user_chose_malloc() or 'not glibc'})"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit code (0 even when a target fails).

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0, or 2 when the data cannot be found.

    Example:
        >>> main(["demo", "--image-size", "64"])   # doctest: +SKIP
    """
    args = data_parser(__doc__.splitlines()[0], repeats=3).parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_species.cpu_budget import describe_cores
    from keras_species.data import sources
    from keras_species.data.pipeline import KIND_BAD, check_files, make_dataset

    malloc = malloc_settings()
    found = data_folder(args.data)
    if found is None:
        return 2
    folder, paths = found[0], found[1].paths
    size, batch = args.image_size, args.batch_size
    # the bare loop decodes what the pipeline keeps, as it does (big JPEGs at a reduced scale)
    kinds = check_files(paths, image_size=size)[0]
    paths, kinds = [p for p, k in zip(paths, kinds) if k != KIND_BAD], kinds[kinds != KIND_BAD]
    print(f"data: {folder} ({len(paths)} images), image size {size}, batch {batch}, "
          f"TF {tf.__version__}, Keras {keras.__version__}, {describe_cores()}, "
          f"{max(1, args.repeats)} interleaved repeats, malloc {malloc}")

    rates: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    faults: dict[str, list[float]] = {}
    kernel: dict[str, list[float]] = {}  # system (kernel) CPU µs an image, each round

    def timed(name: str, fn) -> object:
        before = resource.getrusage(resource.RUSAGE_SELF)
        t, c = time.perf_counter(), time.process_time()
        out, n = fn()
        wall, used = time.perf_counter() - t, time.process_time() - c
        after = resource.getrusage(resource.RUSAGE_SELF)
        rates.setdefault(name, []).append(n / wall)
        cpu[name] = min(cpu.get(name, float("inf")), 1000.0 * used / n)
        faults.setdefault(name, []).append((after.ru_minflt - before.ru_minflt) / n)
        kernel.setdefault(name, []).append(1e6 * (after.ru_stime - before.ru_stime) / n)
        return out

    setup: dict[str, list[dict]] = {}  # the single-threaded work before the first batch, ms

    def ours(training: bool):
        def run():
            marks, t = {}, time.perf_counter()
            manifest = sources.load(folder)
            marks["listing"] = 1000.0 * (time.perf_counter() - t)
            ds = make_dataset(manifest, size, batch, training=training, cache=True, seed=0)
            marks["check + build"] = 1000.0 * (time.perf_counter() - t) - marks["listing"]
            n = _epoch(ds, marks=marks)[0]
            setup.setdefault(TRAIN_FIRST if training else FIRST, []).append(marks)
            return ds, n

        return run

    def bare():
        marks, t = {}, time.perf_counter()
        ds = bare_dataset(paths, size, batch, kinds=kinds)
        marks["build"] = 1000.0 * (time.perf_counter() - t)
        n = _epoch(ds, marks=marks)[0]
        setup.setdefault(BARE, []).append(marks)
        return None, n

    def utility():
        kds = keras.utils.image_dataset_from_directory(
            folder, image_size=(size, size), batch_size=batch, shuffle=False, verbose=False
        )
        return None, _epoch(kds)[0]

    _epoch(bare_dataset(paths[:64], size, batch, kinds=kinds[:64]))  # start TensorFlow's runtime once, untimed
    for _ in range(max(1, args.repeats)):
        timed(BARE, bare)
        ds = timed(FIRST, ours(False))
        timed(CACHED, lambda: (None, _epoch(ds)[0]))  # noqa: B023 - called at once
        timed(UTILITY, utility)
        timed(BARE_PLAIN, lambda: (None, _epoch(bare_dataset(paths, size, batch, False, kinds))[0]))
        train_ds = timed(TRAIN_FIRST, ours(True))
        timed(TRAIN_CACHED, lambda: (None, _epoch(train_ds)[0]))  # noqa: B023 - called at once

    # untimed: the cached pass yields the first pass's pixels (so it is the cache that serves it)
    check = make_dataset(sources.load(folder), size, batch, training=False, cache=True)
    first, again = _epoch(check, keep=True)[1], _epoch(check, keep=True)[1]
    same = len(first) == len(again) and all(np.array_equal(a, b) for a, b in zip(first, again))

    best = {name: max(r) for name, r in rates.items()}
    width = max(map(len, best))
    print(f"  {'':<{width}}  {'best img/s':>10}  {'median':>8}  {'CPU ms/image':>12}  {'faults/image':>12}")
    for name, r in rates.items():
        print(f"  {name:<{width}}  {best[name]:10.0f}  {float(np.median(r)):8.0f}  {cpu[name]:12.3f}  "
              f"{float(np.median(faults[name])):12.1f}")
    print(f"  cached epoch yields the first epoch's pixels: {'yes' if same else 'NO'}")
    checks = [
        ("first epoch / bare", FIRST, BARE, 0.9),
        ("cached / first epoch", CACHED, FIRST, 10.0),
        ("first epoch / keras utility", FIRST, UTILITY, 1.0),
    ]
    median = {name: float(np.median(r)) for name, r in rates.items()}
    print(f"  {'ratio (best wall; median wall; CPU; paired by round)':<{width}}")
    for name, a, b, target in checks:
        ratio, cpu_ratio = best[a] / best[b], cpu[b] / cpu[a]
        paired = np.array(rates[a]) / np.array(rates[b])
        mark = "ok" if ratio >= target else "BELOW TARGET"
        print(f"  {name:<{width}}  {ratio:9.2f}x  {median[a] / median[b]:6.2f}x  {cpu_ratio:5.2f}x  "
              f"{float(np.median(paired)):5.2f}x [{paired.min():.2f}-{paired.max():.2f}]  "
              f"target >= {target:g}x (best wall): {mark}")
    # the best rates come from later rounds, whose caches may reuse the pages an earlier round
    # freed (the malloc settings keep them); round 1 is what a fresh process's first epoch meets
    print(f"  round 1 alone (fresh memory): first epoch / bare {rates[FIRST][0] / rates[BARE][0]:.2f}x, "
          f"first epoch {faults[FIRST][0]:.1f} faults/image")
    # what the first epoch's extra page faults cost on this machine (its cache is fresh memory)
    per_fault = fault_cost_us()
    for label, extra in (("the median round", float(np.median(faults[FIRST])) - float(np.median(faults[BARE]))),
                         ("round 1", faults[FIRST][0] - faults[BARE][0])):
        extra = max(extra, 0.0)
        share = extra * per_fault / 1000.0 / cpu[BARE]
        print(f"  page faults ({per_fault:.2f} us each here): first epoch's extra {extra:.1f}/image in "
              f"{label} = {extra * per_fault:.0f} us/image, {share:.0%} of bare's CPU per image")
    # the set-up before the first batch runs on one thread while the other core idles: as a
    # share of the bare pass's wall time it weighs about twice its CPU share
    def steps(name: str) -> dict[str, float]:
        return {k: float(np.median([m[k] for m in setup[name]])) for k in setup[name][0]}

    ours_setup, bare_setup = steps(FIRST), steps(BARE)
    extra = sum(ours_setup.values()) - sum(bare_setup.values())
    bare_pass_ms = 1000.0 * len(paths) / float(np.median(rates[BARE]))
    print("  set-up before the first batch (median ms): first epoch "
          + ", ".join(f"{k} {v:.0f}" for k, v in ours_setup.items()) + "; bare "
          + ", ".join(f"{k} {v:.0f}" for k, v in bare_setup.items())
          + f": the extra {extra:.0f} ms = {extra / bare_pass_ms:.0%} of the bare pass")
    # what the kernel actually spent, measured: faults taken by two busy threads at once can cost
    # several times fault_cost_us's single-threaded figure
    for label, ours_us, bare_us in (
        ("the median round", float(np.median(kernel[FIRST])), float(np.median(kernel[BARE]))),
        ("round 1", kernel[FIRST][0], kernel[BARE][0]),
    ):
        extra = max(ours_us - bare_us, 0.0)
        print(f"  kernel time, {label}: first epoch {ours_us:.0f} us/image, bare {bare_us:.0f}: "
              f"the extra {extra:.0f} us/image = {extra / 1000.0 / cpu[BARE]:.0%} of bare's CPU per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
