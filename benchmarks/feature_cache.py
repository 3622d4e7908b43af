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

Usage::

    python benchmarks/feature_cache.py                      # demo data, 224 px
    python benchmarks/feature_cache.py --data DIR --backbone resnet18 --size 160 --json out.json
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints a table (and writes JSON with ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="demo", help="a source for keras_species.data.sources.load")
    p.add_argument("--backbone", default=None, help="registry name (default efficientnet_lite0)")
    p.add_argument("--size", type=int, default=224, help="input size (square)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--head-epochs", type=int, default=20, help="head epochs averaged over")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
