"""Frozen-backbone epochs through images vs head epochs on cached features.

Measures, on one dataset (default: the embedded fish demo, 300 images):

1. extraction: one pass of the frozen backbone over the images (decode, resize, forward), which
   is what :func:`keras_species.training.features.extract_features` does once and caches;
2. frozen epoch: one training epoch of backbone (frozen) + dense head through the images, which
   is what every epoch costs when the frozen backbone sits inside the model;
3. cache load: reading the cached features back;
4. head epoch: one training epoch of the same dense head on the cached features.

and prints images/s of each and the ratio frozen epoch / head epoch. Speed does not depend on the
weights' values, so the backbone is built with ``weights=None`` (no download, no weight file).

``--quickstart`` also runs the README's quick start (``recipes.quickstart`` with its defaults:
EfficientNet-Lite0 with its real ImageNet weights, two phases, on the demo data) and reports its
wall time, CPU time, test accuracy against the majority baseline and the number of test images:
the figures the README quotes.

Usage::

    python benchmarks/feature_cache.py                      # demo data, 224 px
    python benchmarks/feature_cache.py --data DIR --backbone resnet18 --size 160 --json out.json
    python benchmarks/feature_cache.py --quickstart --json bench.json   # + the quick start result
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np


def _default_backbone() -> str:
    from keras_species.models import list_backbones

    names = {s.name for s in list_backbones()}
    for name in ("efficientnet_lite0", "mobilenet_v2"):
        if name in names:
            return name
    raise SystemExit(f"neither efficientnet_lite0 nor mobilenet_v2 is registered ({sorted(names)})")


def run(data: str, backbone: str | None, size: int, batch_size: int, head_epochs: int) -> dict:
    """Run the benchmark and return its measurements (also printed by :func:`main`)."""
    import keras

    from keras_species.data import sources
    from keras_species.data.pipeline import make_dataset
    from keras_species.models.classifier import feature_extractor
    from keras_species.training.features import attach_head, build_dense_head, extract_features

    backbone = backbone or _default_backbone()
    manifest = sources.load(data)
    manifest = manifest.subset(np.flatnonzero(manifest.labelled_mask))
    n, num_classes = len(manifest), manifest.num_classes

    extractor = feature_extractor(backbone, size, None, pooling="avg")
    extractor.trainable = False
    warm = np.zeros((batch_size, size, size, 3), np.float32)
    extractor.predict(warm, verbose=0)  # trace and compile outside the timings

    with tempfile.TemporaryDirectory() as cache_dir:
        t = time.perf_counter()
        fs = extract_features(manifest, extractor=extractor, cache_dir=cache_dir, batch_size=batch_size)
        t_extract = time.perf_counter() - t
        t = time.perf_counter()
        cached = extract_features(manifest, extractor=extractor, cache_dir=cache_dir, batch_size=batch_size)
        t_load = time.perf_counter() - t
        assert cached.from_cache and not fs.from_cache

    # One training epoch with the frozen backbone inside the model (images every epoch).
    head = build_dense_head(fs.features.shape[1], num_classes)
    full = attach_head(extractor, head)
    full.compile("rmsprop", "sparse_categorical_crossentropy")
    ds = make_dataset(manifest, size, batch_size, training=False, label_mode="sparse", cache=False)
    full.fit(warm, np.zeros(batch_size, np.int64), epochs=1, verbose=0)  # trace outside the timing
    t = time.perf_counter()
    full.fit(ds, epochs=1, shuffle=False, verbose=0)
    t_frozen = time.perf_counter() - t

    # The same head trained on the cached features.
    head = build_dense_head(fs.features.shape[1], num_classes)
    head.compile("rmsprop", "sparse_categorical_crossentropy")
    head.fit(fs.features, fs.labels, batch_size=batch_size, epochs=1, verbose=0)
    t = time.perf_counter()
    head.fit(fs.features, fs.labels, batch_size=batch_size, epochs=head_epochs, verbose=0)
    t_head = (time.perf_counter() - t) / head_epochs

    m = len(fs)
    return {
        "backbone": backbone,
        "weights": None,
        "input_size": size,
        "images": m,
        "skipped": n - m,
        "feature_dim": int(fs.features.shape[1]),
        "batch_size": batch_size,
        "keras_backend": keras.backend.backend(),
        "cpu_count": os.cpu_count(),
        "extract_s": t_extract,
        "extract_img_s": m / t_extract,
        "frozen_epoch_s": t_frozen,
        "frozen_epoch_img_s": m / t_frozen,
        "cache_load_s": t_load,
        "head_epoch_s": t_head,
        "head_epoch_img_s": m / t_head,
        "ratio_frozen_over_head": t_frozen / t_head,
    }


def quickstart_result(out: str = "runs", name: str | None = None) -> dict:
    """Run the quick start with its defaults and return the README's figures.

    Args:
        out: the runs folder (``--out`` of the recipe).
        name: the run's name (default: a timestamp).

    Returns:
        ``wall_s``, ``cpu_s`` (user + system time of this process), ``test_accuracy``,
        ``majority_baseline``, ``test_images``, ``val_accuracy``, ``epochs``, ``report`` and the
        settings that matter (backbone, weights, image size, epochs per phase).
    """
    from recipes.quickstart import QuickstartConfig
    from recipes.quickstart import run as run_quickstart

    config = QuickstartConfig(out=out, name=name)
    t, cpu = time.perf_counter(), time.process_time()
    result = run_quickstart(config)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    test = result.test
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_count": os.cpu_count(),
        "test_accuracy": test["accuracy"],
        "majority_baseline": test["majority_baseline"],
        "test_images": test["n"],
        "val_accuracy": result.metrics.get("val", {}).get("accuracy"),
        "epochs": len(result.history),
        "report": str(result.report_path),
        "backbone": config.backbone,
        "weights": config.weights,
        "image_size": config.image_size,
        "head_epochs": config.head_epochs,
        "fine_tune_epochs": config.fine_tune_epochs,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints a table (and writes JSON with ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="demo", help="a source for keras_species.data.sources.load")
    p.add_argument("--backbone", default=None, help="registry name (default efficientnet_lite0)")
    p.add_argument("--size", type=int, default=224, help="input size (square)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--head-epochs", type=int, default=20, help="head epochs averaged over")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--quickstart", action="store_true",
                   help="also run the quick start (a few minutes) and report its result")
    p.add_argument("--out", default="runs", help="runs folder of the quick start run")
    args = p.parse_args(argv)
    # Keras warns at the end of every epoch over a dataset of unknown length (the pipeline's).
    warnings.filterwarnings("ignore", message="Your input ran out of data")

    r = run(args.data, args.backbone, args.size, args.batch_size, args.head_epochs)
    print(f"{r['backbone']} (weights=None) at {r['input_size']} px, {r['images']} images, "
          f"batch {r['batch_size']}, {r['cpu_count']} CPUs, Keras backend {r['keras_backend']}")
    print(f"{'step':<38}{'seconds':>10}{'images/s':>12}")
    rows = [
        ("feature extraction (once, cached)", r["extract_s"], r["extract_img_s"]),
        ("frozen-backbone epoch through images", r["frozen_epoch_s"], r["frozen_epoch_img_s"]),
        ("load cached features", r["cache_load_s"], r["images"] / r["cache_load_s"]),
        ("head epoch on cached features", r["head_epoch_s"], r["head_epoch_img_s"]),
    ]
    for name, s, ips in rows:
        print(f"{name:<38}{s:>10.3f}{ips:>12.1f}")
    print(f"ratio frozen epoch / head epoch: {r['ratio_frozen_over_head']:.0f}x")
    if args.quickstart:
        q = quickstart_result(args.out)
        r["quickstart"] = q
        print(f"\nquick start ({q['backbone']}, weights={q['weights']}, {q['image_size']} px, "
              f"{q['head_epochs']} + {q['fine_tune_epochs']} epochs): {q['wall_s']:.0f} s wall, "
              f"{q['cpu_s']:.0f} s CPU on {q['cpu_count']} CPUs")
        print(f"test accuracy {q['test_accuracy']:.3f} vs majority baseline "
              f"{q['majority_baseline']:.3f} on {q['test_images']} test images; report: {q['report']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
