"""Images per second of ``keras_species.predict`` with the exported SavedModel vs ``model.predict``.

Usage::

    python benchmarks/predict_throughput.py [FOLDER] [--model PATH] [--limit 500]
        [--batch-size 32] [--repeats 1]

FOLDER: images, searched recursively (default ``../shared/data/fish4knowledge23`` beside the repo
if present, else the embedded ``demo`` set); the first ``--limit`` images in sorted order are used.
MODEL: a ``.keras`` file or a run folder; default an ``efficientnet_lite0`` classifier with random
weights (``weights=None``) at 224 px, one class per subfolder (the throughput does not depend on
the weights).

Contenders, each one full pass over the same images, decoded the same way
(``predict.image_dataset``: PIL decoding, the training pipeline's resize, uint8 batches):

- ``predict(SavedModel)``: :func:`keras_species.predict.predict` on the folder written by
  ``export_model(..., format="saved_model")`` (its ``serve`` signature, uint8 input), opened
  once with :func:`keras_species.predict.open_predictor`;
- ``predict(.keras)``: the same function on the Keras model (a ``tf.function`` of the model),
  opened once alike;
- ``model.predict``: Keras ``model.predict`` on ``image_dataset(...)`` mapped to float images.

The ratio is each contender's images/s over ``model.predict``'s. Every file is read once before
timing (page cache) and each contender is warmed up on one batch (tracing), so the timings are
steady-state inference plus decoding. What opening costs is printed apart, once per model:
``open_predictor`` (loading a SavedModel) and its first batch (tracing), which ``predict`` pays
on every call given a path or a model rather than an opened predictor. ``--repeats N`` keeps
the best of N interleaved passes.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fish4knowledge23"


def _default_folder() -> Path:
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    from keras_species.data import demo

    return Path(demo.demo_root())


def _default_model(folder: Path):
    from keras_species.models.classifier import build_classifier
    from keras_species.models.labels import LabelMapError, attach_label_map, label_map

    names = sorted(d.name for d in folder.iterdir() if d.is_dir()) or ["object"]
    model = build_classifier("efficientnet_lite0", len(names), input_size=224, weights=None)
    try:
        label_map(model)
    except LabelMapError:  # heads not switched to ClassifierOutput yet: attach the names
        model = attach_label_map(model, names)
    return model


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=None)
    parser.add_argument("--model", default=None, help=".keras file or run folder")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from keras_species.cpu_budget import describe_cores
    from keras_species.export import export_model, load_keras_model
    from keras_species.predict import image_dataset, iter_image_paths, open_predictor, predict

    folder = Path(args.folder) if args.folder else _default_folder()
    paths = list(itertools.islice(iter_image_paths(folder), args.limit))
    if not paths:
        print(f"no images in {folder}", file=sys.stderr)
        return 2
    for p in paths:  # page cache
        with open(p, "rb") as f:
            f.read()
    model = load_keras_model(args.model) if args.model else _default_model(folder)
    size = tuple(int(v) for v in model.input_shape[1:3])
    print(f"{len(paths)} images from {folder}; model {model.name} at {size[0]}x{size[1]}, "
          f"batch {args.batch_size}; TF {tf.__version__}, {describe_cores()}")

    tmp = tempfile.mkdtemp(prefix="predict_bench_")
    t0 = time.perf_counter()
    sm = export_model(model, Path(tmp) / "saved_model", format="saved_model")
    print(f"SavedModel export: {time.perf_counter() - t0:.1f} s")

    def float_ds(items):
        return image_dataset(items, size, args.batch_size).map(
            lambda p, x, e: tf.cast(x, tf.float32)
        )

    results: dict[str, np.ndarray] = {}
    first = image_dataset(paths[: args.batch_size], size, args.batch_size)
    first_batch = next(iter(first))[1]
    opened = {}
    for key, target in (("predict(SavedModel)", sm), ("predict(.keras)", model)):
        t0 = time.perf_counter()
        opened[key] = open_predictor(target)
        t1 = time.perf_counter()
        opened[key].probabilities(first_batch)
        print(f"{key}: open_predictor {t1 - t0:.2f} s, its first batch {time.perf_counter() - t1:.2f} s "
              "(paid by every predict call given a path or a model)")

    def run_predict(target, key):
        def go(items):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                r = predict(target, items, batch_size=args.batch_size)
            results[key] = r.probabilities
            return r.count
        return go

    def run_keras(items):
        with warnings.catch_warnings():  # "input ran out of data": the length is not known ahead
            warnings.simplefilter("ignore", UserWarning)
            out = model.predict(float_ds(items), verbose=0)
        results["model.predict"] = out["label"] if isinstance(out, dict) else out
        return len(out)

    contenders = {
        "predict(SavedModel)": run_predict(opened["predict(SavedModel)"], "predict(SavedModel)"),
        "predict(.keras)": run_predict(opened["predict(.keras)"], "predict(.keras)"),
        "model.predict": run_keras,
    }
    for fn in contenders.values():  # warm-up: tracing and the runtime, on one batch
        fn(paths[: args.batch_size])
    best: dict[str, float] = {}
    for _ in range(max(1, args.repeats)):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            n = fn(paths)
            dt = time.perf_counter() - t0
            if n != len(paths):
                print(f"{name}: predicted {n} of {len(paths)} images", file=sys.stderr)
            best[name] = min(best.get(name, float("inf")), dt)
    base = len(paths) / best["model.predict"]
    print("\n| contender | images/s | seconds | ratio vs model.predict |")
    print("|---|---:|---:|---:|")
    for name, dt in best.items():
        rate = len(paths) / dt
        print(f"| {name} | {rate:.1f} | {dt:.2f} | {rate / base:.2f}x |")
    ref = results["model.predict"]
    for name in ("predict(SavedModel)", "predict(.keras)"):
        if results[name].shape != ref.shape:  # unreadable files are skipped by predict only
            continue
        print(f"max |{name} - model.predict| = {float(np.abs(results[name] - ref).max()):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
