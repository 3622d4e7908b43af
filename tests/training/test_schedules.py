"""One-cycle and cyclic schedules: trajectories, and momentum really reaching the optimizer."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_species.training.schedules import CyclicLR, OneCycle, ScheduledFloat


def test_one_cycle_trajectory():
    s = OneCycle(0.01, total_steps=100)  # R4: 0.01 peak, momentum 0.95 <-> 0.85
    peak = s.peak_step
    assert peak == 29
    assert s.lr_at(0) == pytest.approx(0.01 / 25)
    assert s.momentum_at(0) == pytest.approx(0.95)
    assert s.lr_at(peak) == pytest.approx(0.01)
    assert s.momentum_at(peak) == pytest.approx(0.85)
    assert s.lr_at(99) == pytest.approx(0.01 / 25 / 1e4)
    assert s.momentum_at(99) == pytest.approx(0.95)
    assert s.lr_at(500) == s.lr_at(99)  # clamped after the cycle
    lrs = [s.lr_at(i) for i in range(100)]
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1 :]))
    moms = [s.momentum_at(i) for i in range(100)]
    assert np.argmin(moms) == peak and np.argmax(lrs) == peak
    # cosine: halfway up the warm-up the lr is halfway between start and peak
    mid = OneCycle(1.0, total_steps=202, pct_start=0.5, div_factor=2.0)
    assert mid.lr_at(mid.peak_step // 2) == pytest.approx(0.75, abs=1e-3)
    lin = OneCycle(1.0, total_steps=11, pct_start=0.5, div_factor=2.0, anneal="linear")
    assert lin.lr_at(2) == pytest.approx(0.5 + 0.5 * 2 / lin.peak_step)
    assert OneCycle(0.1, 10, cycle_momentum=False).momentum_at(3) is None
    with pytest.raises(ValueError):
        OneCycle(0.1, total_steps=1)


def test_cyclic_lr_modes():
    c = CyclicLR(0.001, 0.006, step_size=4)
    assert [c.lr_at(i) for i in (0, 2, 4, 6, 8, 12)] == pytest.approx(
        [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.006]
    )
    c2 = CyclicLR(0.0, 1.0, step_size=2, mode="triangular2")
    assert [c2.lr_at(i) for i in (2, 6, 10)] == pytest.approx([1.0, 0.5, 0.25])
    c3 = CyclicLR(0.0, 1.0, step_size=2, mode="exp_range", gamma=0.9)
    assert c3.lr_at(2) == pytest.approx(0.81)
    with pytest.raises(ValueError):
        CyclicLR(0.1, 1.0, 2, mode="sine")


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None]


def _model(optimizer, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    return model


class _Record(keras.callbacks.Callback):
    def __init__(self, attr):
        super().__init__()
        self.attr, self.lr, self.mom = attr, [], []

    def on_train_batch_end(self, batch, logs=None):
        opt = self.model.optimizer
        self.lr.append(float(opt.learning_rate.numpy()))
        self.mom.append(float(tf.convert_to_tensor(getattr(opt, self.attr))))


@pytest.mark.parametrize("name,attr", [("sgd", "momentum"), ("adam", "beta_1"), ("rmsprop", "momentum")])
def test_one_cycle_in_fit_sets_lr_and_momentum_per_batch(name, attr, tmp_path):
    opt = {
        "sgd": keras.optimizers.SGD(0.01, momentum=0.9),
        "adam": keras.optimizers.Adam(),
        "rmsprop": keras.optimizers.RMSprop(momentum=0.9),
    }[name]
    model = _model(opt)
    x, y = _data()
    sched = OneCycle(0.01, total_steps=8)
    rec = _Record(attr)
    ckpt = keras.callbacks.ModelCheckpoint(tmp_path / "m.keras")  # saving mid-cycle works
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[sched, rec, ckpt])
    assert rec.lr == pytest.approx([sched.lr_at(i) for i in range(8)], rel=1e-5)
    assert rec.mom == pytest.approx([sched.momentum_at(i) for i in range(8)], rel=1e-5)
    assert type(getattr(opt, attr)) is float  # plain float again after training
    config = json.loads(json.dumps(opt.get_config()))
    assert isinstance(config[attr], float)
    keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)


class _ConstantMomentum(OneCycle):
    def lr_at(self, step):
        return 0.01

    def momentum_at(self, step):
        return 0.5


@pytest.mark.parametrize("make", [
    lambda m: keras.optimizers.SGD(0.01, momentum=m),
    lambda m: keras.optimizers.Adam(0.01, beta_1=m),
])
def test_scheduled_momentum_is_what_the_update_uses(make):
    x, y = _data()
    scheduled = _model(make(0.9))
    scheduled.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[_ConstantMomentum(0.01, 10)])
    reference = _model(make(0.5))
    reference.fit(x, y, batch_size=8, epochs=2, verbose=0)
    untouched = _model(make(0.9))
    untouched.fit(x, y, batch_size=8, epochs=2, verbose=0)
    w_s, w_r, w_u = (m.layers[0].kernel.numpy() for m in (scheduled, reference, untouched))
    np.testing.assert_allclose(w_s, w_r, rtol=1e-5, atol=1e-7)
    assert not np.allclose(w_s, w_u)


def test_schedule_continues_from_optimizer_iterations():
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    model = _model(opt)
    x, y = _data()
    opt.build(model.trainable_variables)
    opt.iterations.assign(5)  # as BackupAndRestore leaves it after a restore
    sched = OneCycle(0.01, total_steps=8)
    rec = _Record("momentum")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[sched, rec])
    assert rec.lr == pytest.approx([sched.lr_at(i) for i in range(5, 9)], rel=1e-5)


def test_momentum_zero_is_refused_and_scheduled_float_behaves():
    model = _model(keras.optimizers.SGD(0.01))
    x, y = _data()
    with pytest.raises(ValueError, match="momentum=0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[OneCycle(0.01, 8)])
    m = ScheduledFloat(0.9)
    m.assign(0.8)
    assert float(m) == 0.9 and m != 0 and m > 0
    assert float(tf.convert_to_tensor(m)) == pytest.approx(0.8)
    assert float(1 - m) == pytest.approx(0.2)
    assert json.loads(json.dumps({"m": m})) == {"m": 0.9}
