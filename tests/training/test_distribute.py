"""tf.distribute helpers; MirroredStrategy over two logical CPUs runs in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from keras_species.training.distribute import get_strategy, scale_batch, split_cpu


class _Replicas:
    num_replicas_in_sync = 4


def test_scale_batch_and_default_strategy():
    assert scale_batch(32, _Replicas()) == 128
    strategy = get_strategy("none")
    assert strategy.num_replicas_in_sync == 1 and scale_batch(32, strategy) == 32
    assert get_strategy("auto").num_replicas_in_sync == 1  # no GPUs in the tests
    with pytest.raises(ValueError, match="unknown"):
        get_strategy("horovod")


def test_split_cpu_after_initialisation_explains():
    import tensorflow as tf

    tf.constant(1.0)  # devices are initialised now
    n = len(tf.config.list_logical_devices("CPU"))
    assert len(split_cpu(n)) == n  # asking for what is there is fine
    with pytest.raises(RuntimeError, match="before TensorFlow initialises"):
        split_cpu(n + 3)


SCRIPT = textwrap.dedent(
    """
    import json, sys
    from keras_species.training.distribute import get_strategy, scale_batch, split_cpu

    devices = split_cpu(2)  # first thing: before TensorFlow touches a device
    import keras
    import numpy as np
    import tensorflow as tf
    from keras_species.training.plan import Phase, train

    strategy = get_strategy("mirrored")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        inp = keras.Input((8, 8, 3), name="image")
        b_in = keras.Input((8, 8, 3))
        y = keras.layers.Conv2D(4, 3, padding="same")(b_in)
        y = keras.layers.BatchNormalization()(y)
        backbone = keras.Model(b_in, keras.layers.ReLU()(y), name="backbone")
        x = keras.layers.GlobalAveragePooling2D()(backbone(inp))
        model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="label")(x))
    batch = scale_batch(4, strategy)
    # 33 training images (a last batch of 1: one replica empty) and 5 validation images (one
    # batch, 3 + 2 per replica): both failed inside Keras before stop 32
    labels = np.arange(33) % 3
    images = (np.random.default_rng(0).random((33, 8, 8, 3)) * 50 + labels[:, None, None, None] * 60)
    images = images.astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)
    val = tf.data.Dataset.from_tensor_slices((images[:5], labels[:5])).batch(batch)
    phases = [
        Phase("adam", epochs=1, learning_rate=1e-2),
        Phase("sgd", epochs=1, optimizer="sgd", learning_rate=0.05, schedule="onecycle"),
    ]
    result = train(model, phases, ds, val, sys.argv[1], verbose=0)
    from keras_species.training.crossval import _predict

    probs = _predict(model, tf.data.Dataset.from_tensor_slices(images[:9]).batch(batch), 9, "test")
    direct = model(images[:9], training=False).numpy()
    # batches of 5 over 2 replicas: every batch was padded, and blank rows took images' places
    odd = _predict(model, tf.data.Dataset.from_tensor_slices(images[:13]).batch(5), 13, "test")
    direct13 = model(images[:13], training=False).numpy()
    # the caller's batch size is kept (memory): batches of 2 predict 1 image a replica
    from keras_species.training.distribute import predict_all

    seen = []

    class Spy(keras.layers.Layer):
        def call(self, x):
            tf.py_function(lambda s: seen.append(int(s)), [tf.shape(x)[0]], [])
            return x

    with strategy.scope():
        spy_in = keras.Input((8, 8, 3))
        spy = keras.Model(spy_in, keras.layers.Flatten()(Spy()(spy_in)))
    predict_all(spy, tf.data.Dataset.from_tensor_slices(images[:13]).batch(2), 2)
    print(json.dumps({
        "predicted": [len(probs), float(np.abs(probs - direct).max())],
        "odd_batches": [len(odd), float(np.abs(odd - direct13).max())],
        "spy_batches": sorted(set(seen)),
        "devices": devices,
        "replicas": strategy.num_replicas_in_sync,
        "batch": batch,
        "strategy": type(model.distribute_strategy).__name__,
        "epochs": [r["epoch"] for r in result.history],
        "loss": [r["loss"] for r in result.history],
    }))
    """
)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["devices"]) == 2 and out["replicas"] == 2 and out["batch"] == 8
    assert out["strategy"] == "MirroredStrategy"
    assert out["epochs"] == [1, 2] and all(v == v for v in out["loss"])  # finite, no NaN
    assert out["predicted"][0] == 9 and out["predicted"][1] < 1e-3  # padding rows dropped
    assert out["odd_batches"][0] == 13 and out["odd_batches"][1] < 1e-3  # each row its own image
    assert out["spy_batches"] == [1]  # the caller's batch of 2, one image a replica (was 32)


def test_even_batches_cut_for_fit_and_pad_for_predict():
    import numpy as np
    import tensorflow as tf

    from keras_species.training.distribute import even_batches

    x = np.arange(9, dtype="float32")[:, None]
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(9))).batch(4)  # 4, 4, 1
    assert [len(b[0]) for b in even_batches(ds, 2, role="fit")] == [4, 4]  # the 1 left out
    images = tf.data.Dataset.from_tensor_slices(x).batch(4)
    real = tf.Variable(0, dtype=tf.int64)
    padded = [b.numpy() for b in even_batches(images, 3, role="predict", counter=real)]
    assert [len(b) for b in padded] == [6, 6, 3]
    assert int(real.numpy()) == 9  # the real images: fewer would mean one was lost on the way
    assert padded[2][:, 0].tolist() == [8.0, 0.0, 0.0]  # the real row first, then blank ones
    assert even_batches(ds, 1, role="fit") is ds


def test_even_batches_for_fit_carry_the_images_cut_off():
    import numpy as np
    import tensorflow as tf

    from keras_species.training.distribute import even_batches

    # batches of 5 over 2 replicas: each cut to 4 left one image of every batch out (4 of 20)
    x = np.arange(20, dtype="float32")[:, None]
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(20), np.ones(20, "float32"))).batch(5)
    batches = list(even_batches(ds, 2, role="fit"))
    assert all(len(b[0]) % 2 == 0 for b in batches)
    seen = np.concatenate([b[0].numpy()[:, 0] for b in batches])
    assert sorted(seen.tolist()) == list(range(20))  # every image once, in order
    assert [b[1].numpy().tolist() for b in batches][0] == [0, 1, 2, 3]
    # images only, 3 replicas: 10 = 9 kept + 1 left out (fewer than the replicas)
    images = tf.data.Dataset.from_tensor_slices(x[:10]).batch(4)
    assert sum(len(b) for b in even_batches(images, 3, role="fit")) == 9
    # a shape unknown beyond the batch: the images cut off are left out, as before
    ragged = tf.data.Dataset.from_generator(
        lambda: iter([np.zeros((5, 2), "float32")] * 2),
        output_signature=tf.TensorSpec([None, None], tf.float32))
    assert [len(b) for b in even_batches(ragged, 2, role="fit")] == [4, 4]
