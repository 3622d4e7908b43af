"""Training plans: phases, freezing, one history, best checkpoint, early stopping."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_species.training.callbacks import read_history
from keras_species.training.plan import (
    Phase,
    default_metrics,
    logged_quantities,
    make_optimizer,
    monitor_mode,
    outputs_logits,
    phase_line,
    train,
    verbose_problem,
)

SIZE = 16
HAS_FREEZING = importlib.util.find_spec("keras_species.models.freezing") is not None


def tiny_model(num_classes: int = 3, output: str = "softmax", size: int = SIZE) -> keras.Model:
    """Input "image" → "preprocessing" → nested "backbone" (conv + BN) → GAP → "label"."""
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="preprocessing")(inp)
    b_in = keras.Input((size, size, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv")(b_in)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.ReLU()(y)
    backbone = keras.Model(b_in, y, name="backbone")
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    act = None if output == "logits" else output
    out = keras.layers.Dense(num_classes, activation=act, name="label", dtype="float32")(x)
    return keras.Model(inp, out)


def tiny_data(n: int = 48, num_classes: int = 3, seed: int = 0, multi: bool = False):
    """Images whose brightness depends on the class; integer (or multi-hot) labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = (rng.random((n, SIZE, SIZE, 3)) * 60 + y[:, None, None, None] * 80).astype("float32")
    if multi:
        hot = np.zeros((n, num_classes), np.uint8)
        hot[np.arange(n), y] = 1
        hot[::4, 0] = 1
        return x, hot
    return x, y


def dataset(x, y, batch: int = 16, weights=None) -> tf.data.Dataset:
    parts = (x, y) if weights is None else (x, y, weights)
    return tf.data.Dataset.from_tensor_slices(parts).batch(batch)


def _freeze(model):
    model.get_layer("backbone").trainable = False


def _unfreeze(model):
    model.get_layer("backbone").trainable = True


# The library's freezing API when it is there; the same effect by hand otherwise.
FROZEN = "frozen" if HAS_FREEZING else _freeze
ALL = "all" if HAS_FREEZING else _unfreeze


def _backbone_state(model):
    bb = model.get_layer("backbone")
    return {
        "kernel": bb.get_layer("conv").kernel.numpy().copy(),
        "moving_mean": bb.get_layer("bn").moving_mean.numpy().copy(),
        "gamma": bb.get_layer("bn").gamma.numpy().copy(),
    }


class _Snapshot(keras.callbacks.Callback):
    """Backbone state at the end of every epoch (to check what each phase changed)."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_end(self, epoch, logs=None):
        self.states.append(_backbone_state(self.model))


def test_two_phases_frozen_then_all(tmp_path):
    keras.utils.set_random_seed(1)
    model = tiny_model()
    before = _backbone_state(model)
    x, y = tiny_data()
    snap = _Snapshot()
    phases = [
        Phase("head", epochs=2, trainable=FROZEN, learning_rate=1e-2),
        Phase("fine_tune", epochs=2, trainable=ALL, learning_rate=1e-3, train_batchnorm=True,
              monitor="val_loss", restore_best=False),
    ]
    result = train(model, phases, dataset(x, y), dataset(x, y), tmp_path / "run", verbose=0,
                   extra_callbacks=[snap])

    # phase 1: backbone frozen, BN moving statistics untouched; phase 2: both change
    for state in snap.states[:2]:
        np.testing.assert_array_equal(state["kernel"], before["kernel"])
        np.testing.assert_array_equal(state["moving_mean"], before["moving_mean"])
    assert not np.allclose(snap.states[-1]["kernel"], before["kernel"])
    assert not np.allclose(snap.states[-1]["moving_mean"], before["moving_mean"])

    rows = result.history
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["phase"] for r in rows] == ["head", "head", "fine_tune", "fine_tune"]
    assert [r["learning_rate"] for r in rows] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy"} <= set(rows[0])
    assert read_history(tmp_path / "run" / "history.csv") == rows
    assert result.best_path == tmp_path / "run" / "best.keras"
    state = result.run_dir / "state.json"
    assert '"finished": true' in state.read_text()


def test_best_checkpoint_is_the_best_epoch(tmp_path):
    keras.utils.set_random_seed(2)
    model = tiny_model()
    x, y = tiny_data()
    phases = [
        Phase("good", epochs=2, learning_rate=1e-2, monitor="val_loss"),
        # a learning rate far too high: the last epochs are worse than the best one
        Phase("diverge", epochs=2, optimizer="sgd", momentum=0.0, learning_rate=50.0,
              monitor="val_loss", restore_best=False),
    ]
    result = train(model, phases, dataset(x, y), dataset(x, y), tmp_path / "run", verbose=0)
    losses = [r["val_loss"] for r in result.history]
    best = keras.saving.load_model(result.best_path, safe_mode=True)
    onehot = keras.ops.one_hot(y, 3)
    got = float(best.evaluate(x, onehot, batch_size=16, verbose=0, return_dict=True)["loss"])
    assert got == pytest.approx(min(losses), rel=1e-4)
    assert min(losses) < losses[-1]


def test_a_monitor_the_run_does_not_log_stops_it_with_the_names_it_logs(tmp_path):
    x, y = tiny_data(n=16)
    phases = [Phase("head", epochs=2, learning_rate=1e-2, monitor="val_acc")]  # Keras 2's name
    with pytest.raises(ValueError, match=r"'val_acc' \(--monitor\) is not a quantity.*val_accuracy"):
        train(tiny_model(), phases, dataset(x, y), dataset(x, y), tmp_path / "run", verbose=0)
    # refused before any training (since stop 33; it stopped the run after its first epoch, and
    # a bad monitor in a later phase only after the phases before it had trained)
    assert read_history(tmp_path / "run" / "history.csv") == []
    later = [Phase("head", epochs=1, learning_rate=1e-2),
             Phase("fine_tune", epochs=1, learning_rate=1e-3, monitor="val_acc")]
    with pytest.raises(ValueError, match=r"Phase 'fine_tune': monitor 'val_acc'"):
        train(tiny_model(), later, dataset(x, y), dataset(x, y), tmp_path / "run2", verbose=0)
    assert read_history(tmp_path / "run2" / "history.csv") == []
    # without validation data val_ names are read as the training ones, as train() reads them
    ok = [Phase("head", epochs=1, learning_rate=1e-2, monitor="val_accuracy")]
    assert len(train(tiny_model(), ok, dataset(x, y), None, tmp_path / "run3", verbose=0).history) == 1


def test_a_monitor_a_callback_logs_is_taken(tmp_path):
    # the check before training refused a quantity that a phase's callback adds to the logs
    class MacroF1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_macro_f1"] = 0.5

    x, y = tiny_data(n=16)
    for phase_callbacks, extra in (((MacroF1(),), ()), ((), (MacroF1(),))):
        phases = [Phase("head", epochs=1, learning_rate=1e-2, monitor="val_macro_f1",
                        callbacks=phase_callbacks)]
        result = train(tiny_model(), phases, dataset(x, y), dataset(x, y), tmp_path / f"r{len(extra)}",
                       verbose=0, extra_callbacks=extra)
        assert result.history[0]["val_macro_f1"] == 0.5


def test_phases_of_one_name_are_refused(tmp_path):
    # two phases named "train" (the default): the second's early stopping read the first's
    # history rows as its own, stopped after one epoch and restored the wrong weights
    x, y = tiny_data(n=16)
    phases = [Phase(epochs=1, trainable="frozen"), Phase(epochs=1, learning_rate=1e-4)]
    with pytest.raises(ValueError, match=r"phase names must differ, got \['train', 'train'\]"):
        train(tiny_model(), phases, dataset(x, y), dataset(x, y), tmp_path / "run", verbose=0)


class _Sabotage(keras.callbacks.Callback):
    """From the 2nd epoch on, bias the output towards class 0: validation loss jumps up."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= 1:
            self.model.get_layer("label").bias.assign([10.0, 0.0, 0.0])


def test_early_stopping_stops_and_restores_best_weights(tmp_path):
    keras.utils.set_random_seed(3)
    model = tiny_model()
    x, y = tiny_data()
    phase = Phase("only", epochs=10, learning_rate=0.0, monitor="val_loss",
                  early_stopping_patience=2, callbacks=[_Sabotage()])
    result = train(model, [phase], dataset(x, y), dataset(x, y), tmp_path / "run", verbose=0)
    assert len(result.history) == 3  # best at epoch 1, no improvement for 2 epochs → stop
    np.testing.assert_allclose(model.get_layer("label").bias.numpy(), 0.0)  # best weights back
    got = model.evaluate(x, keras.ops.one_hot(y, 3), verbose=0, return_dict=True)["loss"]
    assert got == pytest.approx(result.history[0]["val_loss"], rel=1e-4)


class _Iterations(keras.callbacks.Callback):
    """The optimizer's iteration count as each epoch's first batch begins."""

    def __init__(self):
        super().__init__()
        self.at_first_batch = []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.at_first_batch.append(int(self.model.optimizer.iterations.numpy()))


class _Crash(keras.callbacks.Callback):
    """Ends the process's training abruptly as ``epoch`` begins (as a kill would)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("crash_at", [None, 2])
def test_early_stopping_count_and_best_weights_survive_a_resume(tmp_path, crash_at):
    # best at epoch 1, then worse: with patience 3 the phase stops after epoch 4 and restores
    # epoch 1's weights, whether or not the run was interrupted after epoch 2 and resumed
    x, y = tiny_data()

    def phase(*extra):
        return Phase("only", epochs=10, learning_rate=0.0, monitor="val_loss",
                     early_stopping_patience=3, callbacks=[_Sabotage(), *extra])

    keras.utils.set_random_seed(3)
    run = tmp_path / "run"
    if crash_at is not None:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_model(), [phase(_Crash(crash_at))], dataset(x, y), dataset(x, y), run, verbose=0)
        assert (run / "backup" / "phase0.best.weights.h5").is_file()
        assert [r["epoch"] for r in read_history(run / "history.csv")] == [1, 2]
        keras.utils.set_random_seed(30)  # a different initialisation: the backup must win
    steps = _Iterations()
    result = train(tiny_model(), [phase(steps)], dataset(x, y), dataset(x, y), run,
                   resume=crash_at is not None, verbose=0)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    # the optimizer goes on from the last epoch done (2 epochs of 3 batches), not from the best
    # epoch's state that the best-weights file also holds (stop 30: 3 where 6 was due)
    assert steps.at_first_batch[0] == (6 if crash_at is not None else 0)
    np.testing.assert_allclose(result.model.get_layer("label").bias.numpy(), 0.0)  # epoch 1's
    got = result.model.evaluate(x, keras.ops.one_hot(y, 3), verbose=0, return_dict=True)["loss"]
    assert got == pytest.approx(result.history[0]["val_loss"], rel=1e-4)
    assert not (run / "backup").exists()


def test_multilabel_defaults_and_sample_weights(tmp_path):
    keras.utils.set_random_seed(4)
    model = tiny_model(num_classes=4, output="sigmoid")
    x, y = tiny_data(num_classes=4, multi=True)
    w = np.linspace(0.5, 2.0, len(x)).astype("float32")
    phase = Phase("one_cycle", epochs=2, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                  learning_rate=0.01, schedule="onecycle")
    result = train(model, [phase], dataset(x, y, weights=w), dataset(x, y), tmp_path / "run",
                   task="multi", verbose=0)
    row = result.history[-1]
    assert {"micro_f1", "val_micro_f1", "binary_accuracy", "val_auc"} <= set(row)
    assert 0.0 <= row["val_micro_f1"] <= 1.0
    # one-cycle: the last epoch ends near the minimum learning rate
    assert result.history[-1]["learning_rate"] < 1e-6 < result.history[0]["learning_rate"]


def test_logits_model_and_cosine_schedule(tmp_path):
    keras.utils.set_random_seed(5)
    model = tiny_model(output="logits")
    assert outputs_logits(model) and not outputs_logits(tiny_model())
    x, y = tiny_data()
    phase = Phase("cos", epochs=3, learning_rate=1e-2, schedule="cosine", label_smoothing=0.1)
    result = train(model, [phase], dataset(x, y), None, tmp_path / "run", verbose=0)
    lrs = [r["learning_rate"] for r in result.history]
    assert lrs[0] > lrs[1] > lrs[2]
    assert "val_loss" not in result.history[0]  # no validation set: monitors fall back
    assert result.best_path is not None
    # each epoch logs the rate its last step used (3 steps an epoch): before stop 30 the next
    # step's, so the last epoch logged 0.0, a rate no step used
    decay = keras.optimizers.schedules.CosineDecay(1e-2, 9)
    np.testing.assert_allclose(lrs, [float(decay(s)) for s in (2, 5, 8)], rtol=1e-5)
    assert lrs[2] > 0


def test_an_optimizer_object_is_a_template_each_phase_starts_fresh_from(tmp_path):
    # stop 30: one object for two phases carried its step count into the second (a one-cycle
    # schedule then ran at its end from the first batch), and a constant phase trained at the
    # object's own rate while printing the phase's
    x, y = tiny_data()
    sgd = keras.optimizers.SGD(0.05, momentum=0.9)
    steps = _Iterations()
    phases = [Phase("a", epochs=1, optimizer=sgd, learning_rate=0.01, schedule="onecycle",
                    callbacks=[steps]),
              Phase("b", epochs=1, optimizer=sgd, learning_rate=0.01, schedule="onecycle",
                    callbacks=[steps])]
    with pytest.warns(UserWarning, match=r"object's learning rate 0.05 is replaced by the phase's learning_rate 0.001"):
        train(tiny_model(), [Phase("c", epochs=1, optimizer=sgd)], dataset(x, y), None, tmp_path / "c", verbose=0)
    result = train(tiny_model(), phases, dataset(x, y), None, tmp_path / "run", verbose=0)
    assert steps.at_first_batch == [0, 0]  # each phase from step 0
    assert result.history[0]["learning_rate"] == pytest.approx(result.history[1]["learning_rate"])
    assert int(sgd.iterations.numpy()) == 0  # the object itself never trained
    # an object built on a schedule of its own keeps it under a constant phase (setting a float
    # on it was refused); one whose schedule Keras cannot rebuild is used as given
    decay = keras.optimizers.schedules.ExponentialDecay(0.01, 3, 0.5)
    own = train(tiny_model(), [Phase("d", epochs=2, optimizer=keras.optimizers.Adam(decay))],
                dataset(x, y), None, tmp_path / "d", verbose=0)
    np.testing.assert_allclose([r["learning_rate"] for r in own.history], [float(decay(2)), float(decay(5))],
                               rtol=1e-5)

    class Halving(keras.optimizers.schedules.LearningRateSchedule):  # not registered with Keras
        def __call__(self, step):
            return 0.01 * 0.5 ** keras.ops.cast(step, "float32")

        def get_config(self):
            return {}

    mine = keras.optimizers.SGD(Halving())
    train(tiny_model(), [Phase("e", epochs=1, optimizer=mine)], dataset(x, y), None, tmp_path / "e", verbose=0)
    assert int(mine.iterations.numpy()) == 3  # the object trained itself


def test_rerun_without_resume_starts_fresh_and_resume_of_finished_run(tmp_path):
    x, y = tiny_data(n=16)
    plan = [Phase("p", epochs=1)]
    for _ in range(2):
        keras.utils.set_random_seed(6)
        done = train(tiny_model(), plan, dataset(x, y), dataset(x, y), tmp_path / "run", verbose=0)
    assert [r["epoch"] for r in done.history] == [1]
    # resuming a finished run trains nothing and gives back the trained weights
    again = train(tiny_model(), plan, dataset(x, y), dataset(x, y), tmp_path / "run",
                  resume=True, verbose=0)
    assert again.history == done.history
    for a, b in zip(again.model.get_weights(), done.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="phases were"):
        train(tiny_model(), [Phase("other", epochs=1)], dataset(x, y), None, tmp_path / "run",
              resume=True, verbose=0)


@pytest.mark.skipif(not HAS_FREEZING, reason="needs models.freezing")
def test_resume_warns_only_about_the_phases_it_runs(tmp_path):
    # the backbone's BatchNorm has no statistics: set_trainable warns for each phase it sets up.
    # Before, a resume replayed the finished phases' set-up with their warnings, so resuming a
    # finished run printed notes about phases that did not run.
    x, y = tiny_data(n=16)
    plan = [Phase("head", epochs=1, trainable="frozen"), Phase("fine", epochs=1, trainable="all")]

    def notes(resume: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            train(tiny_model(), plan, dataset(x, y), dataset(x, y), tmp_path / "run",
                  resume=resume, verbose=0)
        return [str(w.message) for w in record if "no statistics" in str(w.message)]

    fresh = notes(False)
    assert len(fresh) == 2 and "'frozen'" in fresh[0] and "'all'" in fresh[1]
    assert notes(True) == []


def test_phase_validation_and_helpers():
    with pytest.raises(ValueError, match="trainable"):
        Phase(trainable="some")
    with pytest.raises(ValueError, match="optimizer"):
        Phase(optimizer="lion")
    with pytest.raises(ValueError, match="schedule"):
        Phase(schedule="step")
    with pytest.raises(ValueError, match=r"1 epoch\(s\) of 1 batch\(es\) give 1: train for more epochs"):
        make_optimizer(Phase("one", epochs=1, schedule="onecycle", learning_rate=0.1), steps_per_epoch=1)
    for rate in (-1.0, float("nan"), float("inf"), "1e-3", None):
        with pytest.raises(ValueError, match="learning_rate must be a number >= 0"):
            Phase(learning_rate=rate)
    # each failed only when its phase started, after the phases before it had trained, or
    # trained without a word (momentum 1.5, weight decay -1)
    for kw, message in ((dict(epochs=2.5), "epochs must be a whole number"),
                        (dict(epochs="3"), "epochs must be a whole number"),
                        (dict(trainable="last_n", n=2, unit="block"), "unit='block'"),
                        (dict(trainable="last_n", n=-2), "needs n, a whole number >= 1"),
                        (dict(momentum=1.5), r"momentum must lie in \[0, 1\)"),
                        (dict(weight_decay=-1), "weight_decay must be a number >= 0"),
                        (dict(clipnorm=-1), "clipnorm must be a number >= 0"),
                        (dict(schedule="cyclic", learning_rate=0.01, schedule_params={"base_lr": 0.1}),
                         r"base_lr must lie in \[0, 0.01\]")):
        with pytest.raises(ValueError, match=message):
            Phase(**kw)
    assert Phase(epochs=np.int64(2), learning_rate=np.float32(1e-3), momentum=0.0).epochs == 2
    # Python's numbers for Keras (an int or np.float32 rate failed when the phase started), 0-d
    # arrays taken, a callable rate as Keras takes it, clipnorm 0 (Keras: no clipping)
    p = Phase(epochs=np.array(3), learning_rate=0, momentum=np.array(0.9), clipnorm=0)
    assert (p.epochs, p.learning_rate, p.momentum, p.clipnorm) == (3, 0.0, 0.9, 0.0)
    assert type(p.learning_rate) is float and type(p.epochs) is int
    assert type(Phase(learning_rate=np.float32(1e-4)).learning_rate) is float
    assert callable(Phase(learning_rate=lambda: 1e-3).learning_rate)
    with pytest.raises(ValueError, match="float learning_rate"):
        Phase(schedule="onecycle", learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9))
    assert monitor_mode("val_loss") == "min" and monitor_mode("val_micro_f1") == "max"
    assert [m.name for m in default_metrics("single", 3)] == ["accuracy", "auc"]
    assert [m.name for m in default_metrics("single", 8)] == ["accuracy", "top5_accuracy", "auc"]
    assert [m.name for m in default_metrics("multi", 8)][0] == "micro_f1"
    opt, cbs = make_optimizer(Phase(optimizer="rmsprop", learning_rate=1e-4))
    assert type(opt).__name__ == "RMSprop" and cbs == []
    opt, cbs = make_optimizer(Phase(optimizer="adamw", weight_decay=1e-3, schedule="cyclic",
                                    learning_rate=1e-2), steps_per_epoch=5)
    assert opt.weight_decay == pytest.approx(1e-3) and cbs[0].step_size == 10
    assert Phase("x", trainable=_freeze).describe()["trainable"] == "_freeze"


def test_phase_refuses_label_smoothing_and_patience_out_of_range():
    # label smoothing 2 used to train without a word; a negative patience reached Keras
    for smoothing in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
            Phase("head", label_smoothing=smoothing)
    with pytest.raises(ValueError, match=r"early_stopping_patience must be >= 0 epochs \(None: no "
                                         r"early stopping\), got -1"):
        Phase("head", early_stopping_patience=-1)
    assert Phase(label_smoothing=0.1, early_stopping_patience=0).early_stopping_patience == 0


def test_logged_quantities_are_what_a_default_phase_logs():
    assert logged_quantities("single", 3) == ["loss", "accuracy", "auc", "val_loss",
                                              "val_accuracy", "val_auc"]
    assert "val_top5_accuracy" in logged_quantities("single", 8)
    assert "val_top5_accuracy" in logged_quantities("single")  # class count unknown: all of them
    assert logged_quantities("multi", 3, validation=False) == ["loss", "micro_f1",
                                                               "binary_accuracy", "auc"]
    assert logged_quantities("custom") == ["loss", "val_loss"]


def test_default_metrics_are_built_under_the_names_the_settings_check_reads():
    # the --monitor check reads training.quantities (no Keras); the metrics must log those names
    from keras_species.training.quantities import metric_names

    for task, classes, logits in [("single", 3, False), ("single", 8, False), ("multi", 4, False),
                                  ("multi", 4, True), ("custom", 3, False)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multi-label logits: micro_f1 is left out
            built = [m.name for m in default_metrics(task, classes, from_logits=logits)]
        assert built == metric_names(task, classes, from_logits=logits)
    aucs = {task: default_metrics(task, 4)[-1] for task in ("single", "multi")}
    assert not aucs["single"].multi_label and aucs["multi"].multi_label
    with pytest.warns(UserWarning, match="micro_f1 needs probabilities"):
        default_metrics("multi", 4, from_logits=True)


def test_custom_task_needs_a_loss(tmp_path):
    x, y = tiny_data(n=16)
    with pytest.raises(ValueError, match="loss"):
        train(tiny_model(), [Phase("p", epochs=1)], dataset(x, y), None, tmp_path / "r",
              task="custom", verbose=0)


def test_verbose_is_checked_before_any_work(tmp_path):
    reason = "Keras's fit verbosity is 0 (silent), 1 (a progress bar) or 2 (a line per epoch)"
    assert [verbose_problem(v) for v in (0, 1, 2)] == [None, None, None]
    assert {verbose_problem(v) for v in (7, -1, "auto", "1", True, None)} == {reason}
    x, y = tiny_data(n=16)
    for value in (7, "auto"):
        with pytest.raises(ValueError, match=rf"^verbose={value!r}: {reason.replace('(', '.').replace(')', '.')}$"):
            train(tiny_model(), [Phase("p", epochs=1)], dataset(x, y), None, tmp_path / "run",
                  verbose=value)
    assert not (tmp_path / "run").exists()


def _two_phase_plan(crash_at=None):
    return [Phase("head", epochs=2, learning_rate=1e-2),
            Phase("all", epochs=2, learning_rate=1e-3,
                  callbacks=[_Crash(crash_at)] if crash_at is not None else [])]


def test_resume_with_a_damaged_state_goes_on_from_the_checkpoints(tmp_path):
    x, y = tiny_data(n=16)
    run = tmp_path / "run"
    keras.utils.set_random_seed(7)
    with pytest.raises(KeyboardInterrupt):  # killed in phase "all" after its first epoch
        train(tiny_model(), _two_phase_plan(crash_at=3), dataset(x, y), dataset(x, y), run, verbose=0)
    (run / "state.json").write_text('{"phase_index": 1, "epo')  # damaged by something else
    history = (run / "history.csv").read_bytes()
    with pytest.warns(UserWarning, match=r"state\.json is damaged .*: resuming with phase 2 of 2 "
                      r"\('all'\), after epoch 2"):
        result = train(tiny_model(), _two_phase_plan(), dataset(x, y), dataset(x, y), run,
                       resume=True, verbose=0)
    assert [(r["epoch"], r["phase"]) for r in result.history] == [
        (1, "head"), (2, "head"), (3, "all"), (4, "all")]
    assert read_history(run / "history.csv")[:3] == _rows_of(history, tmp_path)  # kept
    assert (run / "state.damaged.json").read_text() == '{"phase_index": 1, "epo'
    assert '"finished": true' in (run / "state.json").read_text()


def _rows_of(data: bytes, folder) -> list[dict]:
    """The rows of a ``history.csv`` whose bytes were kept."""
    (folder / "copy.csv").write_bytes(data)
    return read_history(folder / "copy.csv")


def test_resume_with_a_damaged_state_and_no_checkpoint_changes_nothing(tmp_path):
    x, y = tiny_data(n=16)
    run = tmp_path / "run"
    train(tiny_model(), _two_phase_plan(), dataset(x, y), dataset(x, y), run, verbose=0)
    (run / "state.json").write_text("")
    (run / "checkpoints" / "phase0.weights.h5").rename(tmp_path / "phase0.weights.h5")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"state\.json is damaged \(empty file\) and .*restore "
                       r"state\.json from a backup, or start the run over without --resume"):
        train(tiny_model(), _two_phase_plan(), dataset(x, y), dataset(x, y), run, resume=True,
              verbose=0)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_each_phase_starts_with_a_line_that_explains_the_epoch_numbers(tmp_path, capsys):
    """Keras prints no "Epoch 1/1" for a one-epoch fit and numbers a later phase's epochs over
    the run ("Epoch 2/2"): the line before each phase says which phase and which run epochs."""
    x, y = tiny_data(n=16)
    phases = [Phase("head", epochs=1, trainable=FROZEN, learning_rate=1e-3),
              Phase("fine_tune", epochs=2, trainable=ALL, learning_rate=1e-4)]
    rows = train(tiny_model(), phases, dataset(x, y), dataset(x, y), tmp_path / "run", verbose=2).history
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("phase ")]
    assert lines[0].startswith("phase 1/2 'head': 1 epoch (run epoch 1), ")
    assert lines[1].startswith("phase 2/2 'fine_tune': 2 epochs (run epochs 2-3), ")
    assert lines[0].endswith("learning rate 0.001") and lines[1].endswith("learning rate 0.0001")
    assert out.index(lines[1]) < out.index("Epoch 2/3")  # Keras' numbering is unchanged
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # the phase's restored epoch in the library's words, apart from the run's best (best.keras)
    assert "Restoring model weights" not in out
    assert "end of phase 'fine_tune': the weights of its best epoch, " in out
    assert "best.keras keeps the run's best epoch over every phase" in out
    train(tiny_model(), phases[:1], dataset(x, y), None, tmp_path / "quiet", verbose=0)
    assert "phase 1/1" not in capsys.readouterr().out  # verbose=0 stays silent


def test_phase_line_names_what_trains_and_the_rate():
    assert phase_line(Phase("head", 1, trainable="frozen"), 0, 2) == (
        "phase 1/2 'head': 1 epoch (run epoch 1), backbone frozen, learning rate 0.001")
    assert phase_line(Phase("ft", 3, trainable="last_n", n=2, unit="blocks", learning_rate=1e-4),
                      1, 2, first_epoch=6) == (
        "phase 2/2 'ft': 3 epochs (run epochs 6-8), last 2 backbone blocks train, learning rate 0.0001")
    assert phase_line(Phase("oc", 2, trainable="all", optimizer="sgd", learning_rate=0.01,
                            schedule="onecycle"), 0, 1) == (
        "phase 1/1 'oc': 2 epochs (run epochs 1-2), all layers train, onecycle schedule, "
        "peak learning rate 0.01")
    assert phase_line(Phase("train", 1), 0, 1) == "phase 1/1 'train': 1 epoch (run epoch 1), learning rate 0.001"


def test_images_lost_in_the_middle_of_a_run_are_reported_once_each(tmp_path):
    # a file rewritten after make_dataset checked it used to drop out of the epoch silently
    from pathlib import Path

    from keras_species.data import sources
    from keras_species.data.pipeline import make_dataset
    from tests.conftest import write_image_folder

    m = sources.load(str(write_image_folder(tmp_path / "images", per_class=8)))
    is_val = np.arange(len(m)) % 4 == 0
    train_m, val_m = m.subset(~is_val), m.subset(is_val)
    train_ds = make_dataset(train_m, SIZE, 8, training=True, seed=0)
    val_ds = make_dataset(val_m, SIZE, 8)
    Path(train_m.paths[1]).write_bytes(b"rewritten")
    Path(val_m.paths[0]).unlink()
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_model(), [Phase("head", epochs=2, learning_rate=1e-2)], train_ds, val_ds,
              tmp_path / "run", verbose=0)
    said = [str(w.message) for w in caught if "could not be decoded" in str(w.message)]
    assert len(said) == 2, said  # each once: the cached second epoch lacks the same images
    assert said[0].startswith(f"training epoch 1: 1 of the {len(train_m)} images could not be decoded")
    assert train_m.paths[1] in said[0] and "not an image" in said[0]
    assert said[1].startswith(f"validation: 1 of the {len(val_m)} images could not be decoded")
    assert val_m.paths[0] in said[1]


def test_a_scratch_model_gets_its_batchnorm_statistics_recalibrated(tmp_path):
    # a model without a nested backbone (a scratch CNN) kept Keras' moving averages, which after
    # k steps still hold 0.99**k of the initial (0, 1): validation and the saved model saw them
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(conv))
    out = keras.layers.Dense(3, activation="softmax", name="label")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    x, y = tiny_data()
    result = train(model, [Phase("scratch", epochs=1, learning_rate=1e-3)], dataset(x, y),
                   dataset(x, y), tmp_path / "run", verbose=0)
    features = keras.Model(model.input, model.get_layer("conv").output)
    every = np.asarray(features(x))  # precise BN: the statistics of all the images (stop 30)
    mean, variance = every.mean(axis=(0, 1, 2)), every.var(axis=(0, 1, 2))
    for m in (model, keras.models.load_model(result.best_path)):  # the checkpoint holds them too
        bn = m.get_layer("bn")
        np.testing.assert_allclose(np.asarray(bn.moving_mean), mean, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(np.asarray(bn.moving_variance), variance, rtol=1e-3)


def test_a_phases_settings_reach_an_optimizer_object():
    # before: weight_decay, clipnorm and momentum of the phase were dropped for an object
    phase = Phase("p", optimizer=keras.optimizers.SGD(learning_rate=0.01), learning_rate=0.01,
                  weight_decay=1e-2, clipnorm=1.0, momentum=0.5)
    opt, _ = make_optimizer(phase)
    assert (opt.weight_decay, opt.clipnorm, float(opt.momentum)) == (1e-2, 1.0, 0.5)
    adam, _ = make_optimizer(Phase("q", optimizer=keras.optimizers.Adam(), learning_rate=1e-3, momentum=0.8))
    assert float(adam.beta_1) == 0.8


def test_an_optimizer_on_its_own_schedule_takes_a_one_cycle_phase():
    # before: Keras refused the float rate ("its learning rate is not settable") with a traceback
    own = keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5),
                               momentum=0.9)
    opt, cbs = make_optimizer(Phase("p", optimizer=own, learning_rate=0.01, schedule="onecycle"),
                              steps_per_epoch=10)
    assert float(opt.learning_rate) == pytest.approx(cbs[0].lr_at(0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="cosine", schedule_params={"alpha": -1}), r"alpha must lie in \[0, 1\]"),
    (dict(schedule="cosine", schedule_params={"warmup_epochs": 5}), r"warmup_epochs must lie in \[0, 5\)"),
    (dict(schedule="cosine", schedule_params={"warmup_epochs": -1}), r"warmup_epochs must lie in"),
    (dict(schedule="onecycle", schedule_params={"pct_strat": 0.25}), r"takes no schedule_params \['pct_strat'\]"),
    (dict(schedule="onecycle", schedule_params={"div_factor": 0}), r"div_factor must lie in \(0, inf\]"),
    (dict(schedule="constant", schedule_params={"alpha": 0.1}), r"schedule 'constant' takes no schedule_params"),
    # since stop 34 (refused when the phase started, after the phases before it had trained;
    # a momentum of 1.5 trained without a word)
    (dict(schedule="cyclic", schedule_params={"mode": "triangle"}),
     r"mode must be one of 'triangular', 'triangular2', 'exp_range', got 'triangle'"),
    (dict(schedule="onecycle", schedule_params={"anneal": "cosine"}), r"anneal must be one of 'cos', 'linear'"),
    (dict(schedule="onecycle", optimizer="sgd", momentum=0.9, schedule_params={"base_momentum": 1.5}),
     r"base_momentum must lie in \[0, 1\)"),
    (dict(schedule="onecycle", schedule_params={"max_momentum": -0.1}), r"max_momentum must lie in \[0, 1\)"),
    (dict(schedule="onecycle", schedule_params={"cycle_momentum": "no"}), r"cycle_momentum must be one of True, False"),
    (dict(schedule="onecycle", optimizer="rmsprop"), r"cycles the momentum, and rmsprop's is 0 here: give "
                                                     r"the phase a momentum \(Phase\(momentum=0.9\)\)"),
])
def test_schedule_params_are_checked_when_the_phase_is_made(kwargs, match):
    # before: refused only when the phase started (after earlier phases trained), or never
    with pytest.raises(ValueError, match=match):
        Phase("p", epochs=5, learning_rate=0.01, **kwargs)


def test_a_warm_up_shorter_than_a_step_is_said():
    with pytest.warns(UserWarning, match=r"warmup_epochs=0.1 of 5 step\(s\) an epoch is no whole step"):
        make_optimizer(Phase("p", epochs=3, learning_rate=0.01, schedule="cosine",
                             schedule_params={"warmup_epochs": 0.1}), steps_per_epoch=5)


def test_a_loss_scale_optimizer_is_rebuilt_around_a_fresh_inner_one():
    # a first version of the phase settings fell back to the object itself for a
    # LossScaleOptimizer (its config has no learning_rate), so two phases shared its steps
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=1024.0)
    opt, _ = make_optimizer(Phase("p", optimizer=lso, learning_rate=0.01, momentum=0.9))
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer) and opt is not lso
    assert opt.inner_optimizer is not lso.inner_optimizer
    assert float(opt.inner_optimizer.momentum) == 0.9 and float(opt.initial_scale) == 1024.0


def test_a_phase_clipnorm_replaces_the_objects_other_clipping_and_momentum_goes_where_it_can():
    sgd = keras.optimizers.SGD(0.1, global_clipnorm=2.0)
    with pytest.warns(UserWarning, match=r"clipnorm=1 replaces the optimizer object's global_clipnorm=2"):
        opt, _ = make_optimizer(Phase("p", optimizer=sgd, learning_rate=0.01, clipnorm=1.0))
    assert opt is not sgd and (opt.clipnorm, opt.global_clipnorm) == (1.0, None)
    with pytest.warns(UserWarning, match=r"Adagrad has no momentum \(nor beta_1\): momentum=0.8 is left out"):
        make_optimizer(Phase("q", optimizer=keras.optimizers.Adagrad(), learning_rate=0.01, momentum=0.8))
    with pytest.raises(ValueError, match=r"cycles the momentum, and SGD's is 0 here"):
        Phase("r", optimizer=keras.optimizers.SGD(0.01), learning_rate=0.01, schedule="onecycle")
    Phase("s", optimizer=keras.optimizers.SGD(0.01, momentum=0.9), learning_rate=0.01, schedule="onecycle")


def test_the_end_of_phase_line_says_stopped_early_only_before_the_last_epoch(capsys):
    # a first version printed the patience, not the epochs without a gain, and "stopped early"
    # when the phase had run every epoch (Keras sets stopped_epoch on the last one too)
    from keras_species.training.plan import _RunEarlyStopping

    class _History:
        rows: list = []

    cb = _RunEarlyStopping(_History(), "b", Path("/nonexistent/x.weights.h5"), end_epoch=7,
                           monitor="val_loss", patience=3, verbose=1)
    cb.stopped_epoch, cb.wait, cb.best_weights, cb.best = 6, 3, None, None
    cb.on_train_end()
    assert "stopped early" not in capsys.readouterr().out
    cb.stopped_epoch, cb.wait = 4, 1
    cb.on_train_end()
    assert "stopped early after epoch 5, val_loss not improved for 1 epoch(s)" in capsys.readouterr().out


def test_a_killed_writers_half_written_weights_are_removed_when_saved_again(tmp_path):
    # a SIGKILL during a phase's weights save left .phase0.tmp-<pid>.weights.h5 beside the good
    # file for good (the resume never removed it)
    import os

    from keras_species.atomic import temporary_path
    from keras_species.training.plan import _atomic_save_weights

    target = tmp_path / "checkpoints" / "phase0.weights.h5"
    target.parent.mkdir()
    stale = temporary_path(target).with_name(temporary_path(target).name.replace(f"tmp-{os.getpid()}", "tmp-999999"))
    stale.write_bytes(b"cut short")
    _atomic_save_weights(tiny_model(), target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["phase0.weights.h5"]


def test_a_resume_with_no_epoch_left_ends_the_phase_on_its_best_weights(tmp_path):
    # killed while the phase's end weights were saved, the resume's fit had no epoch to run: the
    # best weights were never loaded, and the next phase started from the last epoch's weights
    from keras_species.training.callbacks import HistoryWriter
    from keras_species.training.plan import _RunEarlyStopping

    model = tiny_model()
    best = [w + 1.0 for w in model.get_weights()]
    model.set_weights(best)
    model.save_weights(tmp_path / "best.weights.h5")
    model.set_weights([w - 1.0 for w in best])  # the last epoch's weights
    rows = [{"epoch": e, "phase": "head", "val_loss": v} for e, v in ((1, 0.5), (2, 0.7), (3, 0.9))]
    history = HistoryWriter(tmp_path / "history.csv", "head", rows=rows, keep=("val_loss",))
    stopping = _RunEarlyStopping(history, "head", tmp_path / "best.weights.h5", end_epoch=3,
                                 monitor="val_loss", mode="min", patience=5, restore_best_weights=True)
    stopping.set_model(model)
    stopping.on_train_begin()
    stopping.on_train_end()  # no epoch ran
    for got, want in zip(model.get_weights(), best):
        np.testing.assert_allclose(got, want)


class _ScriptedLoss(keras.callbacks.Callback):
    """Sets ``val_loss`` of each epoch (run epoch i: ``values[i - 1]``)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


class _Kernels(keras.callbacks.Callback):
    """The output layer's kernel after each epoch (run epoch -> array)."""

    def __init__(self, seen: dict):
        super().__init__()
        self.seen = seen

    def on_epoch_end(self, epoch, logs=None):
        self.seen[epoch + 1] = self.model.get_layer("label").kernel.numpy().copy()


def _phase_end_killed(monkeypatch, index: int, after_save: bool) -> None:
    """A kill in phase ``index``'s end: before its weights are saved, or after them, as its
    ``state.json`` is about to be written."""
    from keras_species.training import plan
    from keras_species.training.runs import RunFolder

    if after_save:
        write_state = RunFolder.write_state

        def killed_writing(self, state):
            if state.get("phase_index") == index + 1:
                raise KeyboardInterrupt
            return write_state(self, state)

        monkeypatch.setattr(RunFolder, "write_state", killed_writing)
        return
    original = plan._PhaseEnd.on_train_end

    def on_train_end(self, logs=None):
        if self.index == index:
            raise KeyboardInterrupt
        return original(self, logs)

    monkeypatch.setattr(plan._PhaseEnd, "on_train_end", on_train_end)


@pytest.mark.parametrize("case", ["stopped early, killed before the save",
                                  "ran its epochs, killed after the save"])
def test_a_phase_killed_at_its_end_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch, case):
    # before: a phase that had stopped early trained more epochs on resume (Keras checks its
    # patience at an epoch's end only), and a kill after the best weights' removal ended the
    # resumed phase on its last epoch's weights, saved over the right ones
    early = case.startswith("stopped")
    losses = [0.5, 0.3, 0.9, 0.1, 0.7, 0.8, 0.9, 0.95] if early else [0.5, 0.3, 0.9, 0.2, 0.7, 0.95, 0.8, 0.99]
    x, y = tiny_data(24)

    def run(folder, seen, resume=False):
        keras.utils.set_random_seed(99 if resume else 1)
        pre = [] if early else [Phase("pre", 2, learning_rate=0.05, monitor="val_loss",
                                      callbacks=[_ScriptedLoss(losses), _Kernels(seen)])]
        phases = pre + [
            Phase("p0", 6 if early else 5, learning_rate=0.05, monitor="val_loss",
                  early_stopping_patience=1 if early else 99, callbacks=[_ScriptedLoss(losses), _Kernels(seen)]),
            Phase("p1", 1, learning_rate=0.0, monitor="val_loss", callbacks=[_ScriptedLoss(losses), _Kernels(seen)]),
        ]
        return train(tiny_model(), phases, dataset(x, y, 8), dataset(x, y, 8), folder, resume=resume, verbose=0)

    plain_seen: dict = {}
    plain = run(tmp_path / "plain", plain_seen)
    best_epoch = 2 if early else 4  # p0 stops after epoch 3 (patience 1), or ends at 7
    p0_rows = [r["epoch"] for r in plain.history if r["phase"] == "p0"]
    assert p0_rows == ([1, 2, 3] if early else [3, 4, 5, 6, 7])
    np.testing.assert_allclose(plain.model.get_layer("label").kernel.numpy(), plain_seen[best_epoch])

    killed_seen: dict = {}
    with monkeypatch.context() as m:
        _phase_end_killed(m, index=0 if early else 1, after_save=not early)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "killed", killed_seen)
    resumed = run(tmp_path / "killed", killed_seen, resume=True)
    assert [(r["epoch"], r["phase"]) for r in resumed.history] == [(r["epoch"], r["phase"]) for r in plain.history]
    np.testing.assert_allclose(resumed.model.get_layer("label").kernel.numpy(), killed_seen[best_epoch])
    saved = tiny_model()
    saved.load_weights(tmp_path / "killed" / "checkpoints" / f"phase{0 if early else 1}.weights.h5")
    np.testing.assert_allclose(saved.get_layer("label").kernel.numpy(), killed_seen[best_epoch])


def test_a_resumed_phase_with_patience_0_that_still_improves_goes_on(tmp_path):
    # a regression of the first _SkipStoppedPhase: patience 0 read an improving last epoch as a
    # stop (Keras checks patience after epochs that do not improve only), and the resumed phase
    # ended at once, 3 epochs short
    x, y = tiny_data(24)
    losses = [5.0, 4.0, 3.0, 2.0, 1.0]

    def phases(crash=None):
        extra = [] if crash is None else [_Crash(crash)]
        return [Phase("p0", 5, learning_rate=0.0, monitor="val_loss", early_stopping_patience=0,
                      callbacks=[_ScriptedLoss(losses), *extra])]

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), phases(crash=2), dataset(x, y, 8), dataset(x, y, 8), tmp_path, verbose=0)
    resumed = train(tiny_model(), phases(), dataset(x, y, 8), dataset(x, y, 8), tmp_path, resume=True, verbose=0)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5]


def test_train_does_not_pass_on_keras_advice_to_repeat_a_dataset_of_unknown_length(tmp_path):
    # before: every first pass over a make_dataset dataset (unknown length: unreadable files are
    # skipped) warned "Your input ran out of data ... use the `.repeat()` function" from train()
    x, y = tiny_data(16)
    ds = dataset(x, y, 8).filter(lambda *_: True)  # a length tf.data cannot know
    assert int(ds.cardinality()) < 0
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train(tiny_model(), [Phase("p", 2, learning_rate=0.01)], ds, ds, tmp_path, verbose=0)
    assert not [w for w in seen if "ran out of data" in str(w.message)]


def test_schedule_choices_drawn_by_numpy_are_taken():
    # the first check of these settings refused np.str_ and np.bool_ (a sweep's rng.choice)
    Phase("p", epochs=1, learning_rate=0.01, schedule="cyclic", schedule_params={"mode": np.str_("triangular")})
    Phase("p", epochs=1, learning_rate=0.01, optimizer="sgd", momentum=0.9, schedule="onecycle",
          schedule_params={"cycle_momentum": np.True_, "anneal": np.str_("linear")})
    with pytest.raises(ValueError, match="mode must be one of"):
        Phase("p", epochs=1, learning_rate=0.01, schedule="cyclic", schedule_params={"mode": np.str_("x")})
