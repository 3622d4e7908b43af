"""keras-species' models on the JAX backend: do they run, save and reload, and how fast they train
in float32 against mixed precision.

Usage::

    python benchmarks/jax_backend.py [--backbones efficientnet_lite0 resnet50] [--image-size 224]
        [--batch-size 64] [--steps 20] [--precision float16] [--portability-size 64]

Needs ``jax`` and ``keras``, not TensorFlow: it is the check to run on an accelerator machine
whose image has JAX but no TensorFlow (the models are built from ``keras.ops`` and registered
layers, so they are backend-neutral; the ``tf.data`` input pipeline is not, and is not used
here). It sets ``KERAS_BACKEND=jax`` before Keras is imported and refuses to run if Keras was
already imported with another backend.

Two parts:

- **portability**: every scratch architecture of the reports, each ``--backbones`` classifier
  (``weights=None``), a multi-label head, R1's autoencoder and a classifier with each
  augmentation preset inside the model are built, trained one step on random images, saved to
  ``.keras`` and reloaded with ``safe_mode=True``; the table shows the largest difference
  between the predictions before and after the reload (0 expected). Exit code 1 if any fails.
- **training step throughput**: images per second of ``train_on_batch`` on random images (the
  first ``3`` steps, which compile, left out), for each ``--backbones`` classifier built under
  ``float32`` and under ``--precision`` (``mixed_float16`` by default), side by side in one run,
  and their ratio. On a CPU mixed precision is expected to be slower (no float16 arithmetic); on
  a GPU with tensor cores it is expected to be faster: that is the figure this measures.

Example (CPU, a few minutes)::

    python benchmarks/jax_backend.py --backbones resnet18 --image-size 64 --batch-size 8 --steps 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

WARMUP_STEPS = 3
"""Training steps left out of the timing (the first compiles the step)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50", "convnext_tiny"],
                        help="registry names (keras-species models)")
    parser.add_argument("--image-size", type=int, default=224, help="input size of the throughput part")
    parser.add_argument("--batch-size", type=int, default=64, help="batch of the throughput part")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model and precision")
    parser.add_argument("--precision", default="float16", choices=("float16", "bfloat16"),
                        help="mixed precision compared with float32")
    parser.add_argument("--portability-size", type=int, default=64, help="input size of the portability part")
    parser.add_argument("--skip-portability", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    return parser


def _use_jax() -> None:
    """Select the JAX backend before Keras is imported (Keras reads it once, at import)."""
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "jax":
        raise SystemExit("jax_backend.py: Keras was imported with another backend; run it as a script")
    os.environ["KERAS_BACKEND"] = "jax"


def _round_trip(name: str, build, fit) -> tuple[str, float | None, str]:
    """Build, ``fit(model)`` (compile and train one step), predict, save, reload safely, predict
    again: ``(name, largest difference of the predictions, error or "")``."""
    import keras
    import numpy as np

    try:
        model = build()
        x = fit(model)
        before = model.predict(x, verbose=0)
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "model.keras")
            model.save(path)
            after = keras.saving.load_model(path, safe_mode=True).predict(x, verbose=0)
        pairs = zip(keras.tree.flatten(before), keras.tree.flatten(after))
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
        return name, diff, ""
    except Exception as err:  # a failure is the finding: report it and go on
        return name, None, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"


def portability(backbones: list[str], size: int) -> list[tuple[str, float | None, str]]:
    """The portability part's rows (see the module docstring).

    Args:
        backbones: registry names built as classifiers.
        size: input size.

    Returns:
        ``(name, largest prediction difference after reload or None, error or "")`` rows.

    Example:
        >>> rows = portability(["resnet18"], 32)   # doctest: +SKIP
    """
    import numpy as np

    from keras_species.data.augment import PRESETS, augment_in_model
    from keras_species.models.autoencoder import (
        build_autoencoder,
        compile_autoencoder,
        joint_targets,
    )
    from keras_species.models.classifier import build_classifier
    from keras_species.models.scratch import build_scratch, list_scratch

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, size, size, 3)).astype("float32")
    y = np.array([0, 1, 2, 1])

    def fit_with(loss: str, target):
        def fit(model):
            model.compile(optimizer="adam", loss=loss)
            model.fit(x, target, epochs=1, batch_size=len(x), verbose=0)
            return x
        return fit

    def fit_autoencoder(model):  # R1's two outputs, with its own losses and sample weights
        compile_autoencoder(model)
        targets, weights = joint_targets(x, y)
        model.fit(x, targets, sample_weight=weights, epochs=1, batch_size=len(x), verbose=0)
        return x

    sparse = fit_with("sparse_categorical_crossentropy", y)
    rows = [_round_trip(f"scratch {a.name}", lambda n=a.name: build_scratch(n, 3, size), sparse)
            for a in list_scratch()]
    rows += [_round_trip(f"classifier {name}",
                         lambda n=name: build_classifier(n, 3, input_size=size, weights=None), sparse)
             for name in backbones]
    rows.append(_round_trip(
        f"multi-label {backbones[0]}",
        lambda: build_classifier(backbones[0], 3, input_size=size, weights=None, multilabel=True),
        fit_with("binary_crossentropy", np.eye(3, dtype="float32")[y])))
    rows += [_round_trip(
        f"augment_in_model {preset}",
        lambda p=preset: augment_in_model(build_classifier(backbones[0], 3, input_size=size, weights=None),
                                          p, seed=0),
        sparse) for preset in PRESETS if preset != "none"]
    rows.append(_round_trip("autoencoder (R1)", lambda: build_autoencoder(3, size, filters=(8, 16, 32)),
                            fit_autoencoder))
    return rows


def train_rate(backbone: str, policy: str, size: int, batch: int, steps: int) -> float:
    """Images per second of ``train_on_batch`` for one classifier under a dtype policy.

    Args:
        backbone: registry name (``weights=None``).
        policy: ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        size, batch, steps: input size, batch size, timed steps (after :data:`WARMUP_STEPS`).

    Returns:
        Images per second.

    Example:
        >>> train_rate("resnet18", "float32", 32, 4, 1) > 0   # doctest: +SKIP
        True
    """
    import keras
    import numpy as np

    from keras_species.models.classifier import build_classifier

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_classifier(backbone, 10, input_size=size, weights=None)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, batch)
    for _ in range(WARMUP_STEPS):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))  # wait for the device
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))  # the steps are asynchronous on an accelerator: wait for the last
    return steps * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print their tables.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0, or 1 when a model fails the portability part.

    Example:
        >>> main(["--backbones", "resnet18", "--skip-throughput"])   # doctest: +SKIP
        0
    """
    args = _parser().parse_args(argv)
    _use_jax()
    import jax
    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's package
    import keras_species

    devices = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    print(f"keras {keras.__version__} on {keras.backend.backend()} (jax {jax.__version__}; devices {devices}); "
          f"keras_species from {Path(keras_species.__file__).parent}; "
          f"tensorflow imported: {'tensorflow' in sys.modules}")
    failed = 0
    if not args.skip_portability:
        rows = portability(args.backbones, args.portability_size)
        width = max(len(r[0]) for r in rows)
        print(f"portability at {args.portability_size} px (fit one step, save .keras, reload with safe_mode=True):")
        for name, diff, error in rows:
            print(f"  {name:<{width}}  " + (f"ok, predictions after reload differ by {diff:.2g}" if not error
                                            else f"FAILED {error}"))
        failed = sum(1 for r in rows if r[2])
        print(f"  {len(rows) - failed} of {len(rows)} ran and reloaded")
    if not args.skip_throughput:
        mixed = f"mixed_{args.precision}"
        print(f"training steps at {args.image_size} px, batch {args.batch_size}, {args.steps} timed steps "
              f"(images/s; float32 and {mixed} side by side):")
        for name in args.backbones:
            full = train_rate(name, "float32", args.image_size, args.batch_size, args.steps)
            half = train_rate(name, mixed, args.image_size, args.batch_size, args.steps)
            print(f"  {name:<20} float32 {full:9.1f}   {mixed} {half:9.1f}   {mixed} / float32 {half / full:5.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
