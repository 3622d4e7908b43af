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
