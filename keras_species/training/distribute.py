"""Distributed training over ``tf.distribute``: pick a strategy, scale the batch, split a CPU.

Build and compile the model inside ``strategy.scope()`` (``plan.train`` compiles every phase in
the model's own strategy scope), and batch the datasets with the *global* batch size
``scale_batch(per_replica, strategy)``: Keras splits each global batch across the replicas.

    split_cpu(2)                       # only to test on a CPU; before TensorFlow uses devices
    strategy = get_strategy("mirrored")
    with strategy.scope():
        model = build_classifier(...)
    ds = make_dataset(..., batch_size=scale_batch(32, strategy))
    train(model, phases, ds, val_ds, run_dir)

Strategies: ``"none"`` (the default strategy: one device), ``"auto"`` (MirroredStrategy when more
than one GPU is visible, else none), ``"mirrored"`` (all local GPUs, or all logical CPUs when
there is no GPU), ``"multiworker"`` (MultiWorkerMirroredStrategy; the cluster comes from the
``TF_CONFIG`` environment variable), ``"tpu"`` (TPUStrategy on the TPU the cluster resolver
finds).
"""

from __future__ import annotations

import json
import os
import warnings

import tensorflow as tf

STRATEGIES = ("auto", "none", "mirrored", "multiworker", "tpu")


def split_cpu(n: int) -> list[str]:
    """Split the first physical CPU into ``n`` logical devices (to test multi-device code).

    Must run before TensorFlow initialises its devices, i.e. before the first op, model or
    dataset is created in the process; afterwards TensorFlow refuses the change and this raises.
    Run such code in its own process (the tests use a subprocess).

    Args:
        n: number of logical CPU devices (>= 1).

    Returns:
        The logical CPU device names, e.g. ``["/device:CPU:0", "/device:CPU:1"]``.

    Raises:
        RuntimeError: when devices are already initialised in this process.

    Example:
        >>> split_cpu(2)  # doctest: +SKIP
        ['/device:CPU:0', '/device:CPU:1']
    """
    if n < 1:
        raise ValueError(f"split_cpu needs n >= 1, got {n}")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as err:
        current = tf.config.list_logical_devices("CPU")
        if len(current) == n:
            return [d.name for d in current]
        raise RuntimeError(
            f"split_cpu({n}) must run before TensorFlow initialises its devices (this process "
            f"already has {len(current)} logical CPU device(s)); call it first thing, before "
            "any model, dataset or op is created, or in a fresh process"
        ) from err
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def get_strategy(name: str = "auto", *, devices: list[str] | None = None) -> tf.distribute.Strategy:
    """A ``tf.distribute.Strategy`` by name.

    Args:
        name: ``"auto"``, ``"none"``, ``"mirrored"``, ``"multiworker"`` or ``"tpu"``.
        devices: for ``"mirrored"``: the devices to mirror over (default: every GPU, or every
            logical CPU when there is no GPU).

    Returns:
        The strategy; ``strategy.num_replicas_in_sync`` tells how many replicas share a batch.

    Raises:
        ValueError: for an unknown name, or ``"tpu"`` when no TPU can be found.

    Example:
        >>> get_strategy("none").num_replicas_in_sync
        1
    """
    name = (name or "none").lower()
    if name not in STRATEGIES:
        raise ValueError(f"strategy {name!r} is unknown; use one of {', '.join(STRATEGIES)}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            warnings.warn(
                "strategy 'multiworker' without TF_CONFIG runs as a single worker; set TF_CONFIG "
                '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}) on every machine',
                stacklevel=2,
            )
        else:
            json.loads(os.environ["TF_CONFIG"])  # a malformed TF_CONFIG fails here, clearly
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ValueError(
            f"strategy 'tpu': no TPU found ({err}); run on a TPU VM or pass --strategy auto"
        ) from err
    return tf.distribute.TPUStrategy(resolver)


def scale_batch(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The global batch size: ``batch_size`` per replica × replicas in sync.

    Args:
        batch_size: batch size per replica (what one device would use alone).
        strategy: the strategy (anything with ``num_replicas_in_sync``).

    Returns:
        The batch size to give the dataset.

    Example:
        >>> scale_batch(32, get_strategy("none"))
        32
    """
    return int(batch_size) * int(strategy.num_replicas_in_sync)


def model_replicas(model) -> int:
    """How many replicas share a batch of ``model`` (its strategy's ``num_replicas_in_sync``;
    1 for a model built outside a multi-device strategy).

    Example:
        >>> model_replicas(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))  # doctest: +SKIP
        1
    """
    strategy = getattr(model, "distribute_strategy", None)
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)


def even_batches(ds: tf.data.Dataset, replicas: int, *, role: str,
                 counter: tf.Variable | None = None) -> tf.data.Dataset:
    """``ds``'s batches made to split evenly over ``replicas`` (a multi-device strategy).

    Keras splits each batch across the replicas. A batch whose size is not a multiple of them
    (a split's last batch; a validation split smaller than the global batch) failed: Keras 3
    reduces the first batch's outputs across the replicas, which needs equal shapes (``AddN
    ... [3,32,32,3] != [2,32,32,3]``), and a replica left with no image broke BatchNorm and
    ``predict``. So, for ``role``:

    - ``"fit"`` (training and ``fit``'s validation): each batch is cut to a multiple of
      ``replicas``, the images cut off carried into the next batch, and an empty one dropped:
      at most ``replicas - 1`` images an epoch are left out (other ones each epoch where the
      data is shuffled), whatever the batch size. Padding with images of weight 0
      would not do: Keras divides a loss by the batch size, not by the weights, and its
      ``metrics`` (unlike ``weighted_metrics``) count every image;
    - ``"predict"``: each batch of images is padded with blank ones; the padding rows follow
      the real ones of the last batch (an ordered dataset's only short one), so the caller
      keeps the first ``n`` predictions: every image is scored. ``counter`` (an int64
      ``tf.Variable``) counts the real images: fewer than ``n`` means one was lost on the way
      (a middle batch was short and padded), and the rows cannot be matched to the images.

    Written by hand: tf.data and Keras have no such rebatching for uneven tails.

    Args:
        ds: a batched dataset (the library's pipelines).
        replicas: replicas in sync (:func:`model_replicas`); 1 returns ``ds`` itself.
        role: ``"fit"`` or ``"predict"``.
        counter: ``"predict"`` only: a variable that the real images are added to.

    Returns:
        The dataset.

    Example:
        >>> even_batches(ds, 2, role="fit")  # doctest: +SKIP
    """
    if role not in ("fit", "predict"):
        raise ValueError(f"role={role!r}: give 'fit' or 'predict'")
    if replicas <= 1:
        return ds

    def size(batch) -> tf.Tensor:
        return tf.shape(tf.nest.flatten(batch)[0])[0]

    if role == "fit":
        return _carry_over(ds, replicas).filter(lambda *batch: size(batch) > 0)

    counted = counter if counter is not None else tf.Variable(0, dtype=tf.int64, trainable=False)

    def fill(*batch):
        n = size(batch)
        counted.assign_add(tf.cast(n, tf.int64))
        extra = (-n) % replicas

        def pad(t: tf.Tensor) -> tf.Tensor:
            widths = tf.concat([[[0, extra]], tf.zeros([tf.rank(t) - 1, 2], tf.int32)], axis=0)
            return tf.pad(t, widths)

        out = tf.nest.map_structure(pad, batch)
        return out[0] if len(out) == 1 else out

    return ds.map(fill)


def _carry_over(ds: tf.data.Dataset, replicas: int) -> tf.data.Dataset:
    """``even_batches``' ``"fit"`` role: each batch cut to a multiple of ``replicas``, the images
    cut off carried into the next batch (a ``scan`` state), so that only the last ones of an
    epoch (fewer than ``replicas``) are left out, whatever the batch size: a batch size of 5 over
    2 replicas left one image out of every batch. Where an element's shape beyond the batch is
    not known (a hand-made dataset), the images cut off are left out instead."""

    def size(batch) -> tf.Tensor:
        return tf.shape(tf.nest.flatten(batch)[0])[0]

    def single(out):
        return out[0] if len(out) == 1 else out

    specs = tf.nest.flatten(ds.element_spec)
    if not all(s.shape.rank and s.shape[1:].is_fully_defined() for s in specs):
        def cut(*batch):
            keep = size(batch) - size(batch) % replicas
            return single(tf.nest.map_structure(lambda t: t[:keep], batch))

        return ds.map(cut)

    def carry(held, batch):
        joined = tf.cond(  # no copy of a batch that needs nothing added (the common case)
            size(held) > 0,
            lambda: tf.nest.map_structure(lambda h, t: tf.concat([h, t], 0), held, batch),
            lambda: batch,
        )
        keep = size(joined) - size(joined) % replicas
        rest = tf.nest.map_structure(lambda t: t[keep:], joined)
        return rest, single(tf.nest.map_structure(lambda t: t[:keep], joined))

    empty = tf.nest.map_structure(lambda s: tf.zeros([0, *s.shape[1:]], s.dtype), ds.element_spec)
    if not isinstance(empty, tuple):
        empty = (empty,)
    return ds.scan(empty, lambda held, batch: carry(held, batch if isinstance(batch, tuple) else (batch,)))


PREDICT_BATCH_PER_REPLICA = 32
"""Images a replica predicts at a time in :func:`predict_all` under several replicas."""


def predict_all(model, ds: tf.data.Dataset, batch_size: int | None = None):
    """``model.predict(ds)``, whatever the replicas of ``model``'s strategy: under several, the
    batches are padded to split evenly (:func:`even_batches`) and the padding rows dropped.

    The rows kept are as many as the images the dataset held, so a caller that expects ``n``
    rows and gets fewer knows an image was lost on the way (as on one device).

    Args:
        model: a Keras model.
        ds: a batched dataset of images (no labels), in order.
        batch_size: ``ds``'s batch size: under several replicas the images are predicted in
            batches of the least multiple of the replicas that holds it (the caller's choice, as
            on one device, where memory is tight); by default
            :data:`PREDICT_BATCH_PER_REPLICA` a replica.

    Returns:
        What ``model.predict`` returns (an array, or a list/dict of them), one row an image.

    Example:
        >>> probs = predict_all(model, make_dataset(m, 224, 64, label_mode="none"))  # doctest: +SKIP
    """
    import numpy as np

    replicas = model_replicas(model)
    if replicas <= 1:
        return model.predict(ds, verbose=0)
    # batches of a multiple of the replicas, so that only the last is short and padded: a batch
    # size of 5 over 2 replicas padded every batch, and blank rows took real images' places
    per_replica = PREDICT_BATCH_PER_REPLICA if batch_size is None else -(-int(batch_size) // replicas)
    ds = ds.rebatch(per_replica * replicas)
    real = tf.Variable(0, dtype=tf.int64, trainable=False)
    out = model.predict(even_batches(ds, replicas, role="predict", counter=real), verbose=0)
    kept = int(real.numpy())
    return tf.nest.map_structure(lambda rows: np.asarray(rows)[:kept], out)
