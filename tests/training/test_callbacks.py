"""Callbacks: learning-rate logging, atomic checkpoints, the phase-aware history writer."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.training.callbacks import (
    AtomicModelCheckpoint,
    HistoryWriter,
    LearningRateLogger,
    atomic_save_model,
    current_learning_rate,
    read_history,
    write_history,
)


def _model(lr=0.05):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _xy(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def test_learning_rate_logger_adds_and_keeps():
    model = _model(0.05)
    x, y = _xy()
    hist = model.fit(x, y, epochs=2, verbose=0, callbacks=[LearningRateLogger()])
    assert hist.history["learning_rate"] == pytest.approx([0.05, 0.05])

    sched = keras.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    hist = _model().fit(x, y, epochs=2, verbose=0, callbacks=[sched, LearningRateLogger()])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05])  # Keras' own value kept

    logs = {"learning_rate": 123.0}
    logger = LearningRateLogger()
    logger.set_model(model)
    logger.on_epoch_end(0, logs)
    assert logs["learning_rate"] == 123.0
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=1, decay_rate=0.5)
    assert current_learning_rate(keras.optimizers.Adam(schedule)) == pytest.approx(1.0)


def test_atomic_checkpoint_saves_best_and_leaves_no_temp(tmp_path, dead_pid):
    model = _model()
    x, y = _xy()
    target = tmp_path / "best.keras"
    (tmp_path / f".best.tmp-{dead_pid}.keras").write_bytes(b"half a file")  # left by a killed run
    ckpt = AtomicModelCheckpoint(target, monitor="loss", mode="min", save_best_only=True)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
    loaded = keras.saving.load_model(target, safe_mode=True)
    assert len(loaded.weights) == len(model.weights)
    assert ckpt.filepath == str(target)


def test_atomic_checkpoint_keeps_previous_file_when_saving_fails(tmp_path, monkeypatch):
    model = _model()
    x, y = _xy()
    target = tmp_path / "best.keras"
    ckpt = AtomicModelCheckpoint(target, monitor="loss", mode="min", save_best_only=False)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ckpt])
    good = target.read_bytes()

    def broken_save(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 truncated")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ckpt])
    assert target.read_bytes() == good  # the target was never touched
    keras.saving.load_model(target, safe_mode=True)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]  # temp file removed

    with pytest.raises(OSError, match="disk full"):
        atomic_save_model(model, tmp_path / "final.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
    monkeypatch.undo()
    atomic_save_model(model, tmp_path / "final.keras")
    keras.saving.load_model(tmp_path / "final.keras", safe_mode=True)


def test_history_writer_phases_and_restart(tmp_path):
    path = tmp_path / "history.csv"
    model = _model()
    x, y = _xy()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[LearningRateLogger(), HistoryWriter(path, "head")])
    rows = read_history(path)
    assert [(r["epoch"], r["phase"]) for r in rows] == [(1, "head"), (2, "head")]
    assert list(rows[0])[:3] == ["epoch", "phase", "learning_rate"]

    # a second phase with an extra metric continues the same file with a union of columns
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1")])
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0,
              callbacks=[LearningRateLogger(), HistoryWriter(path, "all")])
    rows = read_history(path)
    assert [r["phase"] for r in rows] == ["head", "head", "all", "all"]
    assert rows[0]["top1"] is None and isinstance(rows[3]["top1"], float)
    assert rows[2]["learning_rate"] == pytest.approx(0.01)

    # a restart at epoch 3 (0-based 2, e.g. after BackupAndRestore) replaces rows 3 and 4
    writer = HistoryWriter(path, "all")
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0, callbacks=[writer])
    assert [r["epoch"] for r in read_history(path)] == [1, 2, 3]


def test_write_history_roundtrip(tmp_path):
    rows = [
        {"epoch": 1, "phase": "1", "loss": 0.5, "val_loss": 0.7, "learning_rate": 1e-3},
        {"epoch": 2, "phase": "1", "loss": float("nan"), "val_loss": None, "learning_rate": 1e-3},
    ]
    path = write_history(tmp_path / "h.csv", rows)
    header = path.read_text().splitlines()[0]
    assert header == "epoch,phase,learning_rate,loss,val_loss"
    back = read_history(path)
    assert back[0] == rows[0] and back[1]["val_loss"] is None and np.isnan(back[1]["loss"])
    assert read_history(tmp_path / "missing.csv") == []


HISTORY = "epoch,phase,loss\n1,head,0.5\n2,head,0.25\n"


def test_read_history_skips_a_last_line_cut_short(tmp_path):
    path = tmp_path / "history.csv"
    for cut in ("3,all", "3,al", "3"):  # a write stopped midway through line 4
        path.write_text(HISTORY + cut)
        with pytest.warns(UserWarning, match=rf"history\.csv: line 4 is cut short \({cut.count(',') + 1}"
                          r" of 3 fields, .*\); skipped"):
            assert [r["epoch"] for r in read_history(path)] == [1, 2]
    path.write_text(HISTORY + "\n\n")  # blank lines are no rows
    assert len(read_history(path)) == 2

    # a resumed run's writer goes on from the complete rows and rewrites the file without the cut
    path.write_text(HISTORY + "3,he")
    model = _model()
    x, y = _xy()
    with pytest.warns(UserWarning, match="cut short"):
        writer = HistoryWriter(path, "head")
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0, callbacks=[writer])
    assert [(r["epoch"], r["phase"]) for r in read_history(path)] == [(1, "head"), (2, "head"), (3, "head")]


@pytest.mark.parametrize("text, line, problem", [
    (HISTORY.replace("1,head,0.5", "1,head"), 2, "has 2 fields where the header has 3"),
    (HISTORY.replace("1,head,0.5", "1,head,0.5,0.1"), 2, "has 4 fields where the header has 3"),
    (HISTORY + "3,all,0.1,9\n", 4, "has 4 fields where the header has 3"),
    (HISTORY.replace("2,head", "two,head"), 3, "has epoch 'two', not a whole number from 1"),
    (HISTORY.replace("2,head", ",head"), 3, "has epoch '', not a whole number from 1"),
])
def test_read_history_names_the_file_and_line_of_a_malformed_row(tmp_path, text, line, problem):
    path = tmp_path / "history.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{path}: line {line} {problem}: fix or delete that line$"):
        read_history(path)
    assert path.read_text() == text


def test_read_history_of_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes(b"epoch,phase\n1,\xff\n")
    with pytest.raises(ValueError, match=rf"^{path} is not text \(byte 0xff at offset 14\)"):
        read_history(path)


def test_the_epoch_backup_is_never_half_written_and_a_damaged_one_is_named(tmp_path):
    # Keras wrote latest.weights.h5 in place: a kill during the write left 96 bytes, and every
    # later resume failed with h5py's "truncated file", naming no file
    import json

    import keras

    from keras_species.training.callbacks import AtomicBackupAndRestore

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    model.compile(optimizer="adam", loss="mse")
    backup = tmp_path / "backup" / "phase0"
    callback = AtomicBackupAndRestore(str(backup))
    callback.set_model(model)
    callback.on_epoch_end(0)
    assert sorted(p.name for p in backup.iterdir()) == ["latest.weights.h5", "training_metadata.json"]
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1
    (backup / "latest.weights.h5").write_bytes((backup / "latest.weights.h5").read_bytes()[:96])
    with pytest.raises(OSError, match=r"latest.weights.h5, the backup of the interrupted epoch, cannot be read"):
        callback.on_train_begin()
