"""Run folders, the runs listing / CLI, and resuming a run killed with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from keras_species.training.callbacks import write_history
from keras_species.training.runs import RunFolder, format_runs, list_runs, read_json, write_json


@dataclass
class _Cfg:
    backbone: str = "efficientnet_lite0"
    image_size: tuple[int, int] = (224, 224)
    epochs: int = 5
    batch_size: int = 32
    seed: int = 0
    out: Path = Path("runs")


def test_run_folder_layout_and_config(tmp_path):
    run = RunFolder.create("quickstart", name="demo", root=tmp_path)
    assert run.path == tmp_path / "quickstart" / "demo" and run.plots_dir.is_dir()
    assert run.best_model_path.name == "best.keras" and run.history_path.name == "history.csv"
    assert run.backup_dir(1) == run.path / "backup" / "phase1"
    assert run.phase_weights_path(0).name == "phase0.weights.h5"
    run.write_config(_Cfg())
    first = run.read_config()
    assert first["recipe"] == "quickstart" and first["name"] == "demo"
    assert first["config"]["image_size"] == [224, 224] and "keras" in first["versions"]
    time.sleep(1.1)
    run.write_config(_Cfg(epochs=9))
    again = run.read_config()
    assert again["created"] == first["created"] and again["config"]["epochs"] == 9
    a = RunFolder.create("quickstart", root=tmp_path)
    b = RunFolder.create("quickstart", root=tmp_path)
    assert a.path != b.path and a.path.parent == b.path.parent
    assert RunFolder.create("quickstart", name="demo", root=tmp_path).path == run.path
    write_json(run.path / "x.json", {"p": Path("a"), "t": (1, 2)})
    assert read_json(run.path / "x.json") == {"p": "a", "t": [1, 2]}
    assert read_json(run.path / "none.json", {}) == {}


def _fake_run(root, recipe, name, created, test=None, finished=True, **cfg):
    run = RunFolder.create(recipe, name=name, root=root)
    write_json(run.config_path, {"recipe": recipe, "name": name, "created": created,
                                 "config": {**vars(_Cfg()), **cfg, "out": "runs"}})
    write_history(run.history_path, [{"epoch": 1, "phase": "head", "loss": 1.0},
                                     {"epoch": 2, "phase": "all", "loss": 0.5}])
    run.write_state({"phase_index": 2, "epoch": 2, "finished": finished})
    if test is not None:
        run.write_metrics({"test": test})
    return run


def test_runs_are_told_apart_by_weights_data_and_the_settings_that_differ(tmp_path):
    # two runs that differ in weights (and a third in data) used to show identical rows
    root = tmp_path / "runs"
    fish, aq = "/data/fish4knowledge23", "/data/aquarium_multilabel/labels.csv"
    _fake_run(root, "quickstart", "a", "2025-01-01T09:00:00", {"accuracy": 0.49}, weights=None,
              data=fish, image_size=32)
    _fake_run(root, "quickstart", "b", "2025-01-02T09:00:00", {"accuracy": 0.63}, weights="imagenet",
              data=fish, image_size=32)
    _fake_run(root, "quickstart", "c", "2025-01-03T09:00:00", {"accuracy": 0.5}, weights="imagenet",
              data=aq, image_size=64)
    rows = list_runs(root)
    assert [(r["weights"], r["data"]) for r in rows] == [("none", fish), ("imagenet", fish), ("imagenet", aq)]
    table = format_runs(rows)
    lines = table.split("\n\n")[0].splitlines()
    assert lines[0].split()[3:6] == ["backbone", "weights", "data"]
    for line, weights, data in zip(lines[2:], ("none", "imagenet", "imagenet"),
                                   ("fish4knowledge23", "fish4knowledge23", "aquarium_multilabel/labels.csv")):
        assert re.search(rf"  efficientnet_lite0  {weights} +{re.escape(data)}  +done ", line), line
    assert [line.endswith(f"image_size={s}") for line, s in zip(lines[2:], (32, 32, 64))] == [True] * 3
    assert "seed=" not in table.split("\n\n")[0]  # the same in every run: said once, below
    assert "\nsettings of every run listed: " in table and "seed=0" in table.split("settings of every run")[1]
    assert format_runs(rows[:1]).count("seed=0") == 1  # one run: its settings in its row
    # a value with a space (a class-weight file) is compared and shown whole
    _fake_run(root, "quickstart", "d", "2025-01-04T09:00:00", {"accuracy": 0.5}, weights=None,
              data=fish, image_size=32, class_weight="/data/my weights.json")
    table = format_runs(list_runs(root)).split("\n\n")[0]
    assert table.splitlines()[-1].endswith("image_size=32 class_weight=/data/my weights.json")


def test_list_runs_table_and_cli(tmp_path, capsys):
    root = tmp_path / "runs"
    _fake_run(root, "convnext_transfer", "b", "2025-02-01T10:00:00",
              {"accuracy": 0.9475, "top5_accuracy": 1.0}, backbone="convnext_tiny")
    _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00", {"accuracy": 0.81})
    _fake_run(root, "multilabel", "c", "2025-03-01T08:00:00",
              {"exact_match": 0.69, "f1_micro": 0.771}, finished=False, backbone="resnet34")
    (root / "quickstart" / "a" / "tensorboard").mkdir()
    (root / "quickstart" / "a" / "tensorboard" / "config.json").write_text("{}")

    rows = list_runs(root)
    assert [r["name"] for r in rows] == ["a", "b", "c"]  # by date
    assert rows[1]["test_accuracy"] == 0.9475 and rows[1]["test_top5"] == 1.0
    assert rows[2]["test_micro_f1"] == 0.771 and rows[2]["status"] == "stopped"
    assert rows[0]["status"] == "done" and rows[0]["epochs"] == 2
    assert "image_size=224x224" in rows[0]["settings"] and "seed=0" in rows[0]["settings"]
    assert list_runs(root / "quickstart")[0]["name"] == "a"
    assert list_runs(tmp_path / "missing") == []

    table = format_runs(rows)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["recipe", "date", "run", "backbone"]
    assert "0.948" in lines[3] and "convnext_tiny" in lines[3] and "2025-02-01 10:00" in lines[3]
    assert "0.771" in lines[4]
    assert format_runs([]) == "no runs found"

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.index("quickstart") < out.index("convnext_transfer") < out.index("multilabel")
    assert main(["runs", str(root), "--recipe", "quickstart", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["a"]
    assert main(["runs", str(root), "--recipe", "quikstart"]) == 2  # a misspelt recipe
    assert "did you mean quickstart?" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "rnus")]) == 2  # a typo is not "no runs"
    assert "rnus is not a folder" in capsys.readouterr().err


def test_runs_are_told_apart_by_folder(tmp_path, capsys):
    root = tmp_path / "runs"
    for folder, created in (("first", "2025-01-01T09:00:00"), ("second", "2025-01-02T09:00:00")):
        run = _fake_run(root, "quickstart", folder, created, {"accuracy": 0.5})
        config = run.read_config()
        write_json(run.config_path, {**config, "name": "demo"})  # the same name in both configs

    rows = list_runs(root)
    assert [r["run"] for r in rows] == ["quickstart/first", "quickstart/second"]
    assert [r["name"] for r in rows] == ["demo", "demo"]  # the config's name is kept in the rows
    assert [r["run"] for r in list_runs(root / "quickstart")] == ["first", "second"]
    assert [r["run"] for r in list_runs(root / "quickstart" / "first")] == ["first"]

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    body = capsys.readouterr().out.split("\n\n")[0].splitlines()[2:]  # the table, not its notes
    assert [line.split()[3] for line in body] == ["quickstart/first", "quickstart/second"]


def test_list_runs_under_a_folder_named_backup(tmp_path):
    root = tmp_path / "backup" / "runs"  # only backup/ *inside* a run folder is skipped
    _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00")
    assert [r["run"] for r in list_runs(root)] == ["quickstart/a"]


DAMAGED = {
    "truncated": b'{"recipe": "quickstart", "crea',
    "empty": b"",
    "not utf-8": b"\xff\xfe{\x00}",
    "an array": b"[1, 2]",
}


@pytest.mark.parametrize("file", ["config.json", "metrics.json", "state.json", "failed.json"])
@pytest.mark.parametrize("damage", list(DAMAGED))
def test_list_runs_goes_on_past_a_damaged_file(tmp_path, capsys, file, damage):
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "good", "2025-01-01T09:30:00", {"accuracy": 0.81})
    bad = _fake_run(root, "quickstart", "bad", "2025-01-02T09:30:00", {"accuracy": 0.7})
    (bad.path / file).write_bytes(DAMAGED[damage])
    reason = {"truncated": "not valid JSON (Unterminated string starting at line 1 column 26)",
              "empty": "empty file", "not utf-8": "not UTF-8",
              "an array": "holds a JSON array, not an object"}[damage]

    rows = {r["run"]: r for r in list_runs(root)}
    assert rows["quickstart/good"]["status"] == "done" and rows["quickstart/good"]["problem"] is None
    assert rows["quickstart/bad"]["status"] == "unreadable"
    assert rows["quickstart/bad"]["problem"].startswith(f"{file}: {reason}")
    assert rows["quickstart/bad"]["epochs"] == 2  # what could be read is still shown

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out and "quickstart/good" in out
    footer = out.split("unreadable runs")[1].splitlines()[1:]
    assert len(footer) == 1 and footer[0].startswith(f"  quickstart/bad: {file}: {reason}")
    assert main(["runs", str(root), "--json"]) == 0
    by_run = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert by_run["quickstart/bad"]["status"] == "unreadable"


def test_list_runs_damaged_history_and_members(tmp_path):
    root = tmp_path / "runs"
    run = _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00")
    run.history_path.write_bytes(b"epoch,phase\n1,\xff\n")
    run.write_metrics({"test": [0.5]})
    row = list_runs(root)[0]
    assert row["status"] == "unreadable" and row["epochs"] == 0
    assert row["problem"].startswith("metrics.json: 'test' holds a JSON array, not an object; history.csv:")
    assert len(format_runs([row]).split("unreadable runs")[1].splitlines()) == 2  # one line


def _stopped_run(tmp_path, phases_done=1, in_progress=True):
    """A run of the plan ["head", "all"] stopped after ``phases_done`` phases (2 epochs each)."""
    run = RunFolder.create("convnext_transfer", name="demo", root=tmp_path)
    rows = []
    for i, name in enumerate(["head", "all"][: phases_done + in_progress]):
        rows += [{"epoch": 2 * i + e, "phase": name, "loss": 1.0 / (2 * i + e)} for e in (1, 2)]
        if i < phases_done:
            run.phase_weights_path(i).parent.mkdir(exist_ok=True)
            run.phase_weights_path(i).write_bytes(b"weights of phase %d" % i)
    write_history(run.history_path, rows[:-1] if in_progress else rows)
    run.write_state({"phase_index": phases_done, "epoch": 2 * phases_done,
                     "phases": ["head", "all"], "finished": phases_done == 2})
    return run


def _files(run):
    return {p.relative_to(run.path).as_posix(): p.read_bytes()
            for p in sorted(run.path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", list(DAMAGED) + ["no phase number"])
def test_a_damaged_state_is_rebuilt_from_checkpoints_and_history(tmp_path, damage):
    run = _stopped_run(tmp_path)
    good = run.resume_state(["head", "all"])
    assert good["phase_index"] == 1 and good["epoch"] == 2
    bad = DAMAGED.get(damage, b'{"phase_index": "one", "epoch": 2}')
    run.state_path.write_bytes(bad)
    before = _files(run)
    if damage in DAMAGED:
        with pytest.raises(ValueError, match=r"state\.json is damaged \("):
            run.read_state()
    with pytest.warns(UserWarning, match=r"state\.json is damaged .*kept as state\.damaged\.json\); "
                      r"rebuilt from checkpoints/ and history\.csv: resuming with phase 2 of 2 "
                      r"\('all'\), after epoch 2"):
        state = run.resume_state(["head", "all"])
    assert state == {**good, "finished": False}
    after = _files(run)
    assert after.pop("state.damaged.json") == bad  # the damaged file is kept
    assert json.loads(after.pop("state.json")) == state  # and state.json written anew
    assert after == {k: v for k, v in before.items() if k != "state.json"}  # nothing else changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run.resume_state(["head", "all"]) == state  # repaired: no warning again
    run.state_path.write_bytes(bad)  # the same damage again: the same copy
    with pytest.warns(UserWarning, match="kept as state.damaged.json"):
        run.resume_state(["head", "all"])
    assert not (run.path / "state.damaged-2.json").exists()


def test_a_damaged_state_of_a_finished_run_and_a_missing_one(tmp_path):
    run = _stopped_run(tmp_path, phases_done=2, in_progress=False)
    run.state_path.write_bytes(DAMAGED["truncated"])
    with pytest.warns(UserWarning, match="all 2 phases ended, after epoch 4"):
        assert run.resume_state(["head", "all"])["finished"] is True
    run.state_path.unlink()  # missing, phase checkpoints there: rebuilt too (no copy to keep)
    with pytest.warns(UserWarning, match=r"state\.json is missing; rebuilt .*: all 2 phases ended"):
        assert run.resume_state(["head", "all"])["phase_index"] == 2
    assert run.read_state()["finished"] is True
    fresh = _stopped_run(tmp_path / "new", phases_done=0)  # killed in its first phase
    fresh.state_path.unlink()
    assert fresh.resume_state(["head", "all"]) == {"phase_index": 0, "epoch": 0,
                                                   "phases": ["head", "all"], "finished": False}


@pytest.mark.parametrize("folder", ["no checkpoint", "other phases", "same names", "gap"])
def test_a_damaged_state_the_folder_cannot_replace_stops_the_resume(tmp_path, folder):
    run = _stopped_run(tmp_path)
    plan = ["head", "all"]
    if folder == "no checkpoint":
        run.phase_weights_path(0).unlink()
    elif folder == "other phases":
        plan = ["warmup", "all"]
    elif folder == "same names":
        plan = ["head", "head"]
    else:
        run.phase_weights_path(1).write_bytes(b"x")
        run.phase_weights_path(0).unlink()
    run.state_path.write_bytes(DAMAGED["empty"])
    before = _files(run)
    with pytest.raises(ValueError, match=r"^cannot resume .*demo: state\.json is damaged \(empty "
                       r"file\) and .*; restore state\.json from a backup, or start the run over "
                       r"without --resume") as err:
        run.resume_state(plan)
    assert "\n" not in str(err.value)
    assert _files(run) == before  # nothing written, nothing removed


def test_a_state_naming_a_missing_checkpoint_or_other_phases(tmp_path):
    run = _stopped_run(tmp_path)
    with pytest.raises(ValueError, match="its phases were"):
        run.resume_state(["head", "fine_tune"])
    run.phase_weights_path(0).unlink()
    with pytest.raises(ValueError, match=r"says phase 1 of 2 ended, but checkpoints/phase0\.weights"
                       r"\.h5 is missing; put it back, or start the run over without --resume"):
        run.resume_state(["head", "all"])


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_write_config_keeps_a_damaged_config_aside(tmp_path, damage):
    run = RunFolder.create("quickstart", name="demo", root=tmp_path)
    run.config_path.write_bytes(DAMAGED[damage])
    with pytest.warns(UserWarning, match=r"config\.json is damaged \(.*\): kept as "
                      r"config\.damaged\.json, and written anew"):
        run.write_config(_Cfg())
    assert (run.path / "config.damaged.json").read_bytes() == DAMAGED[damage]
    config = run.read_config()
    assert config["recipe"] == "quickstart" and config["config"]["epochs"] == 5 and config["created"]
    run.config_path.write_bytes(b"{]")  # damaged again, otherwise: the first copy is kept too
    with pytest.warns(UserWarning, match="kept as config.damaged-2.json"):
        run.write_config(_Cfg())
    assert (run.path / "config.damaged.json").read_bytes() == DAMAGED[damage]
    assert (run.path / "config.damaged-2.json").read_bytes() == b"{]"


READ_FIX = {
    "config.json": ("read_config", r"restore it from a backup, or start the run over with "
                                   r"--overwrite"),
    "metrics.json": ("read_metrics", r"its scores are also in report\.md; to write it again, run "
                                     r"the recipe with --resume --out .*runs --name bad \(a finished "
                                     r"run is evaluated again, not trained\)"),
    "failed.json": ("read_failure", r"the run failed, but its error is lost; run the same command "
                                    r"again to see it"),
}


@pytest.mark.parametrize("file", list(READ_FIX))
@pytest.mark.parametrize("damage", list(DAMAGED))
def test_reading_a_damaged_run_file_names_it_why_and_the_way_out(tmp_path, capsys, file, damage):
    run = _fake_run(tmp_path / "runs", "quickstart", "bad", "2025-01-02T09:30:00", {"accuracy": 0.7})
    run.write_failure("no images found")
    method, fix = READ_FIX[file]
    assert getattr(run, method)()  # readable: the object
    (run.path / file).write_bytes(DAMAGED[damage])
    reason = {"truncated": r"not valid JSON \(Unterminated string starting at line 1 column 26\)",
              "empty": "empty file", "not utf-8": r"not UTF-8 text \(byte 0xff at offset 0\)",
              "an array": "holds a JSON array, not an object"}[damage]
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run.path / file))} is damaged \({reason}\): {fix}") as err:
        getattr(run, method)()
    assert "\n" not in str(err.value)
    (run.path / file).unlink()
    assert getattr(run, method)() == {}  # absent: nothing to read

    from keras_species.recipe import is_user_error

    assert is_user_error(err.value)  # a command prints it in one line, without a traceback


def test_read_json_names_a_damaged_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(DAMAGED["truncated"])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} cannot be read as JSON \(not valid JSON "
                                         r"\(Unterminated string starting at line 1 column 26\)\)$"):
        read_json(path)
    path.write_bytes(b"[1, 2]")
    assert read_json(path) == [1, 2]  # any JSON value


def test_run_history_with_a_cut_last_line_or_a_bad_line(tmp_path):
    run = _fake_run(tmp_path / "runs", "quickstart", "a", "2025-01-01T09:30:00", {"accuracy": 0.8})
    text = run.history_path.read_text()
    run.history_path.write_text(text + "3,all")  # a write stopped midway
    with pytest.warns(UserWarning, match=r"history\.csv: line 4 is cut short .*; skipped"):
        assert [r["epoch"] for r in run.read_history()] == [1, 2]
    with pytest.warns(UserWarning, match="cut short"):
        row = list_runs(tmp_path / "runs")[0]
    assert row["status"] == "done" and row["epochs"] == 2
    lines = text.splitlines()
    run.history_path.write_text("\n".join([lines[0], "1,head", lines[2]]) + "\n")
    row = list_runs(tmp_path / "runs")[0]
    assert row["status"] == "unreadable"
    assert "line 2 has 2 fields where the header has 3: fix or delete that line" in row["problem"]


SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    import keras
    import tensorflow as tf
    from keras_species.training.plan import Phase, train

    run_dir, log = sys.argv[1], sys.argv[2]
    resume = "--resume" in sys.argv
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="preprocessing")(inp)
    b_in = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, padding="same")(b_in)
    y = keras.layers.BatchNormalization()(y)
    backbone = keras.Model(b_in, keras.layers.ReLU()(y), name="backbone")
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="label")(x))

    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    images = (rng.random((48, 16, 16, 3)) * 60 + labels[:, None, None, None] * 80).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)

    def checksum(m):
        return float(sum(np.abs(w).astype("float64").sum() for w in m.get_weights()))

    class Mark(keras.callbacks.Callback):
        def _log(self, **kw):
            with open(log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), **kw}) + "\\n")

        def on_epoch_begin(self, epoch, logs=None):
            self._log(begin=epoch, sum=checksum(self.model))
            time.sleep(0.5)

        def on_epoch_end(self, epoch, logs=None):
            self._log(end=epoch, sum=checksum(self.model))

    phases = [
        Phase("head", epochs=3, learning_rate=1e-2),
        Phase("all", epochs=3, optimizer="sgd", learning_rate=0.05, schedule="onecycle"),
    ]
    train(model, phases, ds, ds, run_dir, resume=resume, verbose=0, extra_callbacks=[Mark()])
    """
)


def _events(log: Path) -> list[dict]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _start(script, run_dir, log, stderr, resume):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, str(script), str(run_dir), str(log)] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, env=env)


def _kill_when_begun(proc, log, epoch, timeout=240.0):
    """SIGKILL ``proc`` once it has begun ``epoch`` (so every earlier epoch is fully done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("pid") == proc.pid and e.get("begin") == epoch for e in _events(log)):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return
        if proc.poll() is not None:
            pytest.fail(f"training process exited early with code {proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"epoch {epoch} never began within {timeout}s")


def _assert_best_loadable(run_dir: Path):
    import keras

    best = run_dir / "best.keras"
    if best.exists():
        keras.saving.load_model(best, safe_mode=True)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    run_dir, log = tmp_path / "run", tmp_path / "events.jsonl"
    with open(tmp_path / "stderr.txt", "w") as err:
        # 1st process: killed in phase "head" once 2 epochs are done (BackupAndRestore path)
        proc = _start(script, run_dir, log, err, resume=False)
        _kill_when_begun(proc, log, epoch=2)
        assert proc.returncode == -signal.SIGKILL
        _assert_best_loadable(run_dir)
        # 2nd process: resumes at epoch 3; killed as phase "all" begins (state.json path)
        proc = _start(script, run_dir, log, err, resume=True)
        _kill_when_begun(proc, log, epoch=3)
        _assert_best_loadable(run_dir)
        # 3rd process: resumes phase "all" from the phase checkpoint and finishes
        proc = _start(script, run_dir, log, err, resume=True)
        assert proc.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]

    events = _events(log)
    pids = list(dict.fromkeys(e["pid"] for e in events))
    assert len(pids) == 3
    begun = {p: [e["begin"] for e in events if e["pid"] == p and "begin" in e] for p in pids}
    assert begun[pids[0]] == [0, 1, 2]
    assert begun[pids[1]] == [2, 3]  # continued at its last finished epoch, not from 0
    assert begun[pids[2]] == [3, 4, 5]

    def sum_of(pid, key, epoch):
        return next(e["sum"] for e in events if e["pid"] == pid and e.get(key) == epoch)

    # the restored weights are the ones the killed process had
    assert sum_of(pids[1], "begin", 2) == pytest.approx(sum_of(pids[0], "end", 1), rel=1e-6)
    assert sum_of(pids[2], "begin", 3) == pytest.approx(sum_of(pids[1], "begin", 3), rel=1e-6)

    run = RunFolder(run_dir)
    rows = run.read_history()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]  # each epoch exactly once
    assert [r["phase"] for r in rows] == ["head"] * 3 + ["all"] * 3
    assert run.read_state()["finished"] is True
    assert not (run_dir / "backup").exists()
    _assert_best_loadable(run_dir)
    assert list_runs(tmp_path) == []  # no config.json written by train() alone


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_folder_whose_only_run_file_is_a_damaged_state_is_listed(tmp_path, capsys, damage):
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "good", "2025-01-01T09:30:00", {"accuracy": 0.81})
    lost = root / "quickstart" / "lost"
    lost.mkdir()
    (lost / "state.json").write_bytes(DAMAGED[damage])
    alone = RunFolder(root / "quickstart" / "train_alone").mkdir()  # train() alone: no config.json
    alone.write_state({"phase_index": 1, "epoch": 2, "finished": False})
    inner = _fake_run(root, "quickstart", "inner", "2025-01-02T09:30:00", {"accuracy": 0.7})
    (inner.path / "backup" / "phase0").mkdir(parents=True)  # not a run folder of its own
    (inner.path / "backup" / "phase0" / "state.json").write_bytes(DAMAGED[damage])

    rows = {r["run"]: r for r in list_runs(root)}
    assert sorted(rows) == ["quickstart/good", "quickstart/inner", "quickstart/lost"]
    row = rows["quickstart/lost"]
    assert row["status"] == "unreadable" and row["path"] == str(lost)
    assert row["problem"].startswith("state.json: ") and row["problem"].endswith("; config.json: does not exist")
    assert rows["quickstart/inner"]["status"] == "done"

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    footer = capsys.readouterr().out.split("unreadable runs")[1].splitlines()[1:]
    assert len(footer) == 1 and footer[0].startswith("  quickstart/lost: state.json: ")


@pytest.mark.parametrize("metrics, why", [
    ({}, "holds no scores (an empty JSON object)"),
    ({"test": {}}, "'test' holds none of the scores listed (accuracy, exact_match, "),
    ({"test": {"n": 12, "log_loss": 0.4}}, "'test' holds none of the scores listed"),
])
def test_a_metrics_file_without_scores_is_not_a_finished_run(tmp_path, capsys, metrics, why):
    root = tmp_path / "runs"
    run = _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00", {"accuracy": 0.81})
    assert list_runs(root)[0]["status"] == "done"
    run.write_metrics(metrics)
    row = list_runs(root)[0]
    assert row["status"] == "unreadable" and row["test_accuracy"] is None
    assert row["problem"] == f"metrics.json: {why}" or row["problem"].startswith(f"metrics.json: {why}")

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert " done " not in out and f"  quickstart/a: metrics.json: {why}" in out


def test_a_metrics_file_of_a_recipe_without_a_test_object_is_kept(tmp_path):
    root = tmp_path / "runs"  # fish_semisupervised scores its models on val, with no test object
    run = _fake_run(root, "fish_semisupervised", "a", "2025-01-01T09:30:00")
    run.write_metrics({"models": [{"model": "m1", "val_acc": 0.7}], "best": "m1", "val": {"val_acc": 0.7}})
    row = list_runs(root)[0]
    assert row["status"] == "done" and row["problem"] is None and row["test_accuracy"] is None


def test_a_finished_run_without_metrics_is_not_evaluated(tmp_path, capsys):
    # killed during the final evaluation: state.json says finished, metrics.json never written
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "scored", "2025-01-01T09:30:00", {"accuracy": 0.81})
    run = _fake_run(root, "quickstart", "killed in eval", "2025-01-02T09:30:00")
    rows = {r["run"]: r for r in list_runs(root)}
    row = rows["quickstart/killed in eval"]
    assert row["status"] == "not evaluated" and row["training_finished"] is True
    assert row["epochs"] == 2 and row["problem"] is None and row["error"] is None
    assert row["test_accuracy"] is None and row["test_micro_f1"] is None and row["test_top5"] is None
    assert rows["quickstart/scored"]["status"] == "done"

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "quickstart/killed in eval " in x)
    assert "not evaluated" in line and " done " not in line
    assert "0.810" not in line and line.split("not evaluated")[1].split()[1:4] == ["-", "-", "-"]
    footer = out.split("not evaluated runs (")[1].splitlines()
    assert "--resume evaluates it without training it again" in footer[0]
    assert footer[1:] == [f"  quickstart/killed in eval: python -m recipes.quickstart --resume --out "
                          f"{root} --name 'killed in eval'"]
    assert main(["runs", str(root), "--json"]) == 0
    by_run = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert by_run["quickstart/killed in eval"]["status"] == "not evaluated"

    run.write_metrics({"test": {"accuracy": 0.79}})  # what the --resume writes
    assert {r["run"]: r["status"] for r in list_runs(root)}["quickstart/killed in eval"] == "done"


def test_a_run_whose_evaluation_failed_says_resume_evaluates_it(tmp_path):
    root = tmp_path / "runs"
    run = _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00")
    run.write_failure("test split: 3 images cannot be read")
    (row,) = list_runs(root)
    assert row["status"] == "failed" and row["training_finished"] is True
    footer = format_runs([row]).split("failed runs")[1].splitlines()[1:]
    assert footer == ["  quickstart/a: test split: 3 images cannot be read",
                      "    its training finished: once that is fixed, python -m recipes.quickstart "
                      f"--resume --out {root} --name a evaluates it without training it again"]
    stopped = _fake_run(root, "quickstart", "b", "2025-01-02T09:30:00", finished=False)
    stopped.write_failure("out of memory")  # failed in training: no such line
    (_, row) = list_runs(root)
    assert row["status"] == "failed" and row["training_finished"] is False
    assert format_runs([row]).splitlines()[-1] == "  quickstart/b: out of memory"


@pytest.mark.parametrize("folder, status", [
    ("no state, no history", "done"),  # inaturalist_vgg16: its models train in subfolders
    ("no state", "done"),  # a recipe killed between its evaluation and its last state.json
    ("state not finished", "stopped"),  # --resume trains on, then evaluates again
])
def test_metrics_without_a_finished_state(tmp_path, folder, status):
    root = tmp_path / "runs"
    run = _fake_run(root, "inaturalist_vgg16", "a", "2025-01-01T09:30:00", {"accuracy": 0.6},
                    finished=False)
    if folder != "state not finished":
        run.state_path.unlink()
    if folder == "no state, no history":
        run.history_path.unlink()
    (row,) = list_runs(root)
    assert row["status"] == status and row["test_accuracy"] == 0.6
    assert row["training_finished"] is False and row["problem"] is None
    assert "not evaluated runs" not in format_runs([row])


# --------------------------------------------------------------------------- multi-model recipes
# Laid out as the recipes write them (seen in real runs of backbone_comparison, scratch_cnn,
# fish_semisupervised and inaturalist_vgg16 killed with SIGKILL): each model trains with
# plan.train in a subfolder of its own, and the run folder's own state.json (history.csv,
# best.keras) comes only once every model has trained, or never (inaturalist_vgg16).


def _multi_run(root, recipe, name="demo", created="2025-04-01T09:00:00", **cfg):
    """A multi-model recipe's run folder as ``start_run`` and ``prepare_data`` leave it."""
    run = RunFolder.create(recipe, name=name, root=root)
    settings = {k: v for k, v in vars(_Cfg()).items() if k != "backbone"}  # none: several
    write_json(run.config_path, {"recipe": recipe, "name": name, "created": created,
                                 "config": {**settings, **cfg, "out": str(root)}})
    (run.path / "split.csv").write_text("path,label,split\n")
    (run.path / "audit").mkdir()
    (run.path / "audit" / "audit.json").write_text("{}")
    return run


def _model_folder(path, phases=(("head", 2), ("fine_tune", 2)), epochs=None, evaluated=False):
    """A folder as ``plan.train`` leaves it after ``epochs`` epochs (default: all of them).

    ``state.json`` and ``checkpoints/phase<i>.weights.h5`` are written at the end of each
    phase; ``best.keras`` after the first epoch; a kill leaves a hidden temporary file.
    ``evaluated``: the recipe's own report on the model (``metrics.json``...) as well.
    """
    total = sum(n for _, n in phases)
    epochs = total if epochs is None else epochs
    run = RunFolder(path).mkdir()
    run.reset_training()  # train() without --resume: what an earlier training left goes first
    (run.path / "tensorboard").mkdir()
    (run.path / "tensorboard" / "events.out").write_bytes(b"x")
    rows, ended = [], 0
    for i, (phase, n) in enumerate(phases):
        rows += [{"epoch": ended + e, "phase": phase, "loss": 1.0} for e in range(1, n + 1)]
        ended += n
        if ended <= epochs:
            run.phase_weights_path(i).parent.mkdir(exist_ok=True)
            run.phase_weights_path(i).write_bytes(b"weights")
            run.write_state({"phase_index": i + 1, "epoch": ended,
                             "phases": [p for p, _ in phases], "finished": i + 1 == len(phases)})
    if epochs:
        write_history(run.history_path, rows[:epochs])
        run.best_model_path.write_bytes(b"model")
    if epochs < total:
        (run.path / f".best.tmp-{os.getpid()}.keras").write_bytes(b"cut")
        (run.path / "backup").mkdir()
        (run.path / "backup" / ".phase0.best.tmp-1.weights.h5").write_bytes(b"cut")
    else:  # a training that ended: no temporary file left
        (run.path / f".best.tmp-{os.getpid()}.keras").unlink(missing_ok=True)
    if evaluated:
        run.write_metrics({"test": {"accuracy": 0.5}, "val": {"accuracy": 0.5}})
        (run.path / "report.md").write_text("# report\n")
    return run


def _finish_top(run, history_rows=2):
    """What a multi-model recipe writes last: best.keras, history.csv, metrics.json, state.json."""
    run.best_model_path.write_bytes(b"model")
    write_history(run.history_path, [{"epoch": e, "phase": "head", "loss": 1.0}
                                     for e in range(1, history_rows + 1)])
    run.write_metrics({"test": {"accuracy": 0.9}})
    run.write_state({"finished": True})


def test_a_killed_backbone_comparison_is_stopped_not_new(tmp_path, capsys):
    root = tmp_path / "runs"
    run = _multi_run(root, "backbone_comparison", "bc", backbones=["mobilenet_v2,resnet18"])
    _model_folder(run.path / "mobilenet_v2", evaluated=True)
    _model_folder(run.path / "resnet18", epochs=1)  # killed in its 2nd epoch

    (row,) = list_runs(root)
    assert row["status"] == "stopped" and row["epochs"] == 5  # 4 + 1: its models' epochs
    assert row["models"] == [{"folder": "mobilenet_v2", "status": "trained", "epochs": 4},
                             {"folder": "resnet18", "status": "stopped", "epochs": 1}]
    assert row["training_finished"] is False and row["problem"] is None

    table = format_runs([row])
    head, _, body = table.splitlines()[:3]
    assert head.split()[4:10] == ["weights", "data", "status", "epochs", "models", "test"]
    assert "  stopped  5 (2 backbones)  1 trained, 1 stopped  -" in body
    footer = table.split("stopped runs that train their models in subfolders")[1].splitlines()[1:]
    assert footer == [  # a bare --resume: the run's stored settings (no --config needed)
        "  backbone_comparison/bc: 1 trained (mobilenet_v2); stopped: resnet18 after 1 epoch",
        f"    continue: python -m recipes.backbone_comparison --resume --out {root} --name bc",
    ]

    from keras_species.cli import main

    assert main(["runs", str(root), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "stopped" and len(listed["models"]) == 2


def test_a_stopped_comparison_names_the_backbones_it_has_not_begun(tmp_path):
    # a 3-backbone run stopped in its 2nd read "1 trained, 1 stopped", the 3rd not named; the
    # backbone column showed names as typed ("resnet18,Resnet18"), not those it trains
    root = tmp_path / "runs"
    run = _multi_run(root, "backbone_comparison", "bc",
                     backbones=["mobilenet_v2 resnet18,Resnet18", "efficientnet_lite0"])
    _model_folder(run.path / "mobilenet_v2", evaluated=True)
    _model_folder(run.path / "resnet18", epochs=1)
    (row,) = list_runs(root)
    assert row["backbone"] == "mobilenet_v2,resnet18,efficientnet_lite0"
    assert row["models"][-1] == {"folder": "efficientnet_lite0", "status": "not started", "epochs": 0}
    table = format_runs([row])
    assert "  stopped  5 (3 backbones)  1 trained, 1 stopped, 1 not started  -" in table
    assert ("  backbone_comparison/bc: 1 trained (mobilenet_v2); stopped: resnet18 after 1 epoch; "
            "not started: efficientnet_lite0") in table


def test_a_model_folder_given_to_runs_names_its_run_not_a_damaged_one(tmp_path, capsys):
    # runs/backbone_comparison/bc/resnet18 was listed as an "unreadable" run of recipe "bc"
    # (config.json: does not exist)
    root = tmp_path / "runs"
    run = _multi_run(root, "backbone_comparison", "bc", backbones=["resnet18"])
    _model_folder(run.path / "resnet18", evaluated=True)
    assert list_runs(run.path / "resnet18") == []
    from keras_species.cli import main

    assert main(["runs", str(run.path / "resnet18")]) == 0
    out = capsys.readouterr().out
    assert f"it is a folder of the backbone_comparison run {run.path.absolute()}" in out
    assert "unreadable" not in out


def test_a_config_json_in_a_project_folder_is_no_enclosing_run(tmp_path, capsys):
    # a run's config.json kept beside runs/ to reuse with --config made `runs` say "it is a
    # folder of the backbone_comparison run <project>", and hid runs that lost their config
    from keras_species.cli import main
    from keras_species.training.runs import enclosing_run

    write_json(tmp_path / "config.json", {"recipe": "backbone_comparison", "config": {}})
    (tmp_path / "runs").mkdir()
    assert enclosing_run(tmp_path / "runs") is None
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "no runs found" in capsys.readouterr().out


def test_an_old_comparisons_dashed_backbone_folder_counts_as_begun(tmp_path):
    # a run made before stop 32 with mobilenet-v2 has a mobilenet-v2/ folder: it read as a third
    # backbone, "not started", beside the folder of the one it had trained
    root = tmp_path / "runs"
    run = _multi_run(root, "backbone_comparison", "bc", backbones=["mobilenet-v2,resnet18"])
    _model_folder(run.path / "mobilenet-v2", evaluated=True)
    (row,) = list_runs(root)
    assert [m["folder"] for m in row["models"]] == ["mobilenet-v2", "resnet18"]
    assert row["models"][1]["status"] == "not started"


def test_a_multi_model_run_killed_before_its_first_epoch_ended_is_new(tmp_path):
    root = tmp_path / "runs"
    run = _multi_run(root, "backbone_comparison", "bc")
    _model_folder(run.path / "mobilenet_v2", epochs=0)  # plots/, tensorboard/ and nothing trained
    (run.path / "mobilenet_v2" / f".best.tmp-{os.getpid()}.keras").write_bytes(b"cut")
    (row,) = list_runs(root)
    assert row["status"] == "new" and row["epochs"] == 0 and row["models"] is None
    assert "models" not in format_runs([row]).splitlines()[0].split()


def test_a_killed_scratch_cnn_counts_its_folds(tmp_path):
    root = tmp_path / "runs"
    run = _multi_run(root, "scratch_cnn", "cv", arch="r2_cnn", k=3)
    _model_folder(run.path / "r2_cnn" / "fold0", phases=(("train", 2),))
    _model_folder(run.path / "r2_cnn" / "fold1", phases=(("train", 2),), epochs=1)

    (row,) = list_runs(root)
    assert row["status"] == "stopped" and row["epochs"] == 3 and row["backbone"] == "r2_cnn"
    assert [(m["folder"], m["status"]) for m in row["models"]] == [  # the fold it had not begun
        ("r2_cnn/fold0", "trained"), ("r2_cnn/fold1", "stopped"), ("r2_cnn/fold2", "not started")]
    table = format_runs([row])
    assert "  stopped  3 (3 folds)  1 trained, 1 stopped, 1 not started  -" in table
    assert ("  scratch_cnn/cv: 1 trained (r2_cnn/fold0); stopped: r2_cnn/fold1 after 1 epoch; "
            "not started: r2_cnn/fold2") in table.splitlines()


def test_a_scratch_cnn_killed_in_its_first_fold_lists_all_it_has_to_train(tmp_path):
    # killed before its 2nd fold, a 5-fold run read "epochs 2 (1 fold)", "1 trained"; an
    # ablation's variants not begun were not named either; an arch spelled r2-cnn is r2_cnn
    root = tmp_path / "runs"
    run = _multi_run(root, "scratch_cnn", "cv", arch="R2-CNN", k=5)
    _model_folder(run.path / "r2_cnn" / "fold0", phases=(("train", 2),))
    (row,) = list_runs(root)
    assert [m["status"] for m in row["models"]] == ["trained"] + ["not started"] * 4
    assert "  stopped  2 (5 folds)  1 trained, 4 not started  -" in format_runs([row])

    ab = _multi_run(root, "scratch_cnn", "ab", created="2025-04-02T09:00:00", arch="r2_cnn", k=2,
                    ablation=True, ablation_regularised=False)
    _model_folder(ab.path / "1conv" / "fold0", phases=(("train", 2),), epochs=1)
    rows = {r["run"]: r for r in list_runs(root)}
    assert [m["folder"] for m in rows["scratch_cnn/ab"]["models"]] == [
        "1conv/fold0", "1conv/fold1", "1conv_bn/fold0", "1conv_bn/fold1", "2conv/fold0",
        "2conv/fold1", "2conv_bn/fold0", "2conv_bn/fold1"]
    assert ("not started: 1conv/fold1, 1conv_bn/fold0, 1conv_bn/fold1 and 4 more"
            in format_runs([rows["scratch_cnn/ab"]]))
    assert rows["scratch_cnn/ab"]["epochs_over"] == "8 folds of 4 variants"


def test_a_killed_fish_semisupervised_counts_each_training(tmp_path):
    root = tmp_path / "runs"
    run = _multi_run(root, "fish_semisupervised", "f", stages=[1, 2, 4])
    _model_folder(run.path / "model1", phases=(("train", 1),), evaluated=True)
    _model_folder(run.path / "model2", phases=(("train", 1),), evaluated=True)
    (run.path / "pseudo_labels.csv").write_text("path,label,confidence\n")
    _model_folder(run.path / "model4" / "phase1", phases=(("phase1", 1),))
    _model_folder(run.path / "model4" / "phase2", phases=(("phase2", 3),), epochs=1)

    (row,) = list_runs(root)
    assert row["status"] == "stopped" and row["epochs"] == 4
    assert [m["folder"] for m in row["models"]] == ["model1", "model2", "model4/phase1",
                                                    "model4/phase2"]
    # model4's two phases are one model (counted as two: "3 trained, 1 stopped", "4 models")
    assert "  4 (3 models)  2 trained, 1 stopped  " in format_runs([row])
    # both phases ended: model4/history.csv joins their rows; model4 is not a model of its own
    _model_folder(run.path / "model4" / "phase2", phases=(("phase2", 3),))
    write_history(run.path / "model4" / "history.csv", [{"epoch": 1, "phase": "phase1"}])
    (row,) = list_runs(root)
    assert row["status"] == "stopped" and len(row["models"]) == 4
    assert {m["status"] for m in row["models"]} == {"trained"}
    assert "3 trained  " in format_runs([row]) and "stopped:" not in format_runs([row])


def test_inaturalist_models_saved_whole_count_as_trained(tmp_path):
    root = tmp_path / "runs"
    run = _multi_run(root, "inaturalist_vgg16", "i", stages=["a", "b"], scratch=["shallow"])
    (run.path / "a_features").mkdir()  # (a): trained on cached features, saved whole
    (run.path / "a_features" / "head.keras").write_bytes(b"model")
    (run.path / "a_features" / "model.keras").write_bytes(b"model")
    _model_folder(run.path / "b_frozen", phases=(("frozen_base", 1),))
    _model_folder(run.path / "scratch_shallow", phases=(("train", 3),))
    (run.path / "comparison.csv").write_text("model\n")  # killed in its final evaluation

    (row,) = list_runs(root)
    assert row["status"] == "stopped" and row["epochs"] == 4
    assert [(m["folder"], m["status"], m["epochs"]) for m in row["models"]] == [
        ("a_features", "trained", 0), ("b_frozen", "trained", 1), ("scratch_shallow", "trained", 3)]
    line = "  inaturalist_vgg16/i: 3 trained (a_features, b_frozen, scratch_shallow)"
    assert line in format_runs([row]).splitlines()
    run.write_metrics({"test": {"accuracy": 0.6}})  # it keeps no state.json: done once evaluated
    (row,) = list_runs(root)
    assert row["status"] == "done" and row["epochs"] == 4  # its models' epochs, as before
    assert len(row["models"]) == 3


def test_a_finished_multi_model_run_is_listed_as_before(tmp_path):
    root = tmp_path / "runs"
    run = _multi_run(root, "backbone_comparison", "bc")
    for name in ("mobilenet_v2", "resnet18"):
        _model_folder(run.path / name, evaluated=True)
    _finish_top(run, history_rows=4)  # the best backbone's history.csv, copied
    (row,) = list_runs(root)
    # its epochs are those of its models (not the copied history.csv), as while it trained
    assert row["status"] == "done" and row["epochs"] == 8 and len(row["models"]) == 2
    assert row["test_accuracy"] == 0.9 and row["training_finished"] is True
    table = format_runs([row])
    assert "  done    8 (2 backbones)  2 trained  " in table and "subfolders" not in table


def test_a_state_left_by_a_run_started_over_is_not_not_evaluated(tmp_path):
    # --overwrite (or a failed run started again) keeps the old top-level state.json while the
    # models train again: the run is stopped, and nothing says it only needs evaluating
    root = tmp_path / "runs"
    run = _multi_run(root, "fish_semisupervised", "f")
    _model_folder(run.path / "model1", phases=(("train", 3),))
    _model_folder(run.path / "model2", phases=(("train", 1),), evaluated=True)
    _finish_top(run)
    run.metrics_path.unlink()  # start_run removes metrics.json, not state.json
    (row,) = list_runs(root)
    assert row["status"] == "not evaluated"  # every model trained: only the evaluation is missing
    hint = format_runs([row]).split("not evaluated runs")[1]
    assert f"python -m recipes.fish_semisupervised --resume --out {root} --name f" in hint
    assert "--config" not in hint
    _model_folder(run.path / "model1", phases=(("train", 3),), epochs=1)  # trains again
    (row,) = list_runs(root)
    assert row["status"] == "stopped" and row["training_finished"] is False
    assert "not evaluated" not in format_runs([row])


def test_a_failed_multi_model_run_shows_its_models(tmp_path):
    root = tmp_path / "runs"
    run = _multi_run(root, "scratch_cnn", "cv")
    _model_folder(run.path / "r2_cnn" / "fold0", phases=(("train", 2),))
    run.write_failure("out of memory")
    (row,) = list_runs(root)
    assert row["status"] == "failed" and row["epochs"] == 2 and len(row["models"]) == 1
    table = format_runs([row])
    assert "  failed  2 (1 fold)  1 trained  " in table and "  scratch_cnn/cv: out of memory" in table
    assert "subfolders" not in table  # the stopped runs' lines are for stopped runs


def test_model_folders_skip_what_holds_no_model(tmp_path):
    run = _multi_run(tmp_path / "runs", "backbone_comparison", "bc")
    _model_folder(run.path / "vgg16", epochs=1)
    (run.path / "vgg16" / "state.json").write_bytes(DAMAGED["truncated"])  # cannot say finished
    (run.path / "plots" / "extra").mkdir()
    (run.path / "plots" / "extra" / "best.keras").write_bytes(b"x")
    (run.path / "audit" / "history.csv").write_text("epoch,phase\n1,head\n")
    (run.path / ".hidden").mkdir()
    (run.path / ".hidden" / "state.json").write_text("{}")
    inner = _fake_run(run.path, "quickstart", "nested", "2025-01-01T09:00:00")  # a run of its own
    assert inner.path.parent.parent == run.path
    assert run.model_folders() == [{"folder": "vgg16", "status": "stopped", "epochs": 1}]
    single = _stopped_run(tmp_path / "single")  # trains in the run folder itself
    assert single.model_folders() == []


def test_start_over_removes_what_the_recipes_wrote_and_nothing_else(tmp_path):
    # a run started over (--overwrite, a failed run started again) kept the old state.json and
    # finished models: listed 'not evaluated', and a later --resume skipped training them
    root = tmp_path / "runs"
    run = _multi_run(root, "scratch_cnn", "cv")
    _model_folder(run.path / "r2_cnn" / "fold0", phases=(("train", 2),))
    (run.path / "r2_cnn" / "folds.csv").write_text("fold\n")
    _model_folder(run.path / "model4" / "phase1", phases=(("phase1", 1),))
    _model_folder(run.path / "model4" / "phase2", phases=(("phase2", 1),), epochs=0)
    write_history(run.path / "model4" / "history.csv", [{"epoch": 1, "phase": "phase1"}])
    _finish_top(run)
    for name in ("predictions.csv", "report.md", "split.prepared.json", "comparison.csv",
                 "pseudo_labels.csv", "train_seconds.json", "plots/accuracy_vs_loss.png"):
        (run.path / name).write_text("old")
    mine = ["notes.md", "plots/sketch.svg", "export/model.keras", "audit/audit.json"]
    for name in mine:
        (run.path / name).parent.mkdir(exist_ok=True)
        (run.path / name).write_text("kept")
    assert list_runs(root)[0]["status"] == "done"

    run.start_over()
    files = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*") if p.is_file())
    assert files == sorted(["config.json", *mine])  # models saved whole may be the user's
    shutil.rmtree(run.path / "export")  # (listed as a trained model folder)
    (row,) = list_runs(root)
    assert row["status"] == "new" and row["models"] is None


# --------------------------------------------------------------------------- finished multi-model
# runs, their backbones, a deleted config.json and --recipe typos (keras-species runs)


def _finished_fish(root, name="fs1", **cfg):
    """A fish_semisupervised run, killed once then resumed and finished, as the recipe leaves
    it: model folders with history.csv, the run's own metrics.json (no ``test`` object, no
    history.csv) and state.json."""
    run = _multi_run(root, "fish_semisupervised", name, stages="1,2,4", labelled="demo",
                     weights="none", model1_backbone="resnet18", model3_backbone="resnet50",
                     model4_backbone="resnet18", **cfg)
    _model_folder(run.path / "model1", phases=(("train", 1),), evaluated=True)
    _model_folder(run.path / "model2", phases=(("train", 2),), evaluated=True)
    _model_folder(run.path / "model4" / "phase1", phases=(("phase1", 1),))
    _model_folder(run.path / "model4" / "phase2", phases=(("phase2", 1),))
    write_history(run.path / "model4" / "history.csv", [{"epoch": 1, "phase": "phase1"},
                                                        {"epoch": 2, "phase": "phase2"}])
    (run.path / "pseudo_labels.csv").write_text("path,label,confidence\n")
    run.best_model_path.write_bytes(b"model")
    rows = [{"model": "model1", "val_acc": 0.25}, {"model": "model2", "val_acc": 0.583},
            {"model": "model4", "val_acc": 0.5}]
    run.write_metrics({"models": rows, "best": "model2", "val": rows[1], "stages": [1, 2, 4]})
    run.write_state({"finished": True, "stages": [1, 2, 4]})
    return run


def test_a_finished_multi_model_run_counts_its_models_epochs(tmp_path):
    # a finished fish_semisupervised / inaturalist_vgg16 run was listed done with epochs 0
    root = tmp_path / "runs"
    _finished_fish(root)
    inat = _multi_run(root, "inaturalist_vgg16", "i", created="2025-04-02T09:00:00",
                      stages="a,b,c", scratch="shallow")
    (inat.path / "a_features").mkdir()
    (inat.path / "a_features" / "model.keras").write_bytes(b"model")
    _model_folder(inat.path / "b_frozen", phases=(("frozen_base", 2),))
    _model_folder(inat.path / "c_fine_tune", phases=(("fine_tune", 3),))
    _model_folder(inat.path / "scratch_shallow", phases=(("train", 1),))
    inat.write_metrics({"test": {"accuracy": 0.6}})  # no state.json: done once evaluated

    fish, vgg = list_runs(root)
    assert fish["status"] == "done" and fish["epochs"] == 5  # 1 + 2 + 1 + 1
    assert vgg["status"] == "done" and vgg["epochs"] == 6  # 0 + 2 + 3 + 1
    assert [m["folder"] for m in fish["models"]] == ["model1", "model2", "model4/phase1",
                                                     "model4/phase2"]
    table = format_runs([fish, vgg])
    # the fish run trained 3 models (model4 in two phases): it read "5 (4 models)  4 trained"
    assert "  done    5 (3 models)  3 trained  " in table and "  done    6 (4 models)  4 trained  " in table
    assert "subfolders" not in table  # the continue lines are for stopped runs
    # the same in every status: failed (its error) and unreadable (a damaged file) too
    (root / "fish_semisupervised" / "fs1" / "failed.json").write_text(DAMAGED["truncated"].decode())
    assert [(r["status"], r["epochs"]) for r in list_runs(root)] == [("unreadable", 5), ("done", 6)]
    # a single-model run with a user's export/model.keras keeps its history.csv's epochs
    single = _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00", {"accuracy": 0.8})
    (single.path / "export").mkdir()
    (single.path / "export" / "model.keras").write_bytes(b"model")
    row = list_runs(root)[0]
    assert row["status"] == "done" and row["epochs"] == 2 and row["models"] is None


def test_a_run_without_a_test_split_shows_its_validation_headline(tmp_path, capsys):
    # fish_semisupervised showed "-" for every score: its metrics.json holds no test object
    root = tmp_path / "runs"
    _finished_fish(root)
    _fake_run(root, "quickstart", "a", "2025-01-02T09:30:00", {"accuracy": 0.8})
    quick, fish = list_runs(root)  # by date
    assert fish["test_accuracy"] is None  # a validation score is not a test score
    assert (fish["best_model"], fish["val_accuracy"]) == ("model2", 0.583)
    assert "val_accuracy" not in quick
    footer = format_runs([fish, quick]).split("runs without a test split")[1].splitlines()[1:]
    assert footer == ["  fish_semisupervised/fs1: best model model2, val accuracy 0.583"]

    from keras_species.cli import main

    assert main(["runs", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1]["val_accuracy"] == 0.583


def test_multi_model_runs_show_their_backbones(tmp_path):
    # the backbone column of fish_semisupervised and inaturalist_vgg16 runs was empty
    root = tmp_path / "runs"
    _finished_fish(root)
    _multi_run(root, "fish_semisupervised", "all4", created="2025-04-02T09:00:00",
               stages="1,2,3,4", model1_backbone="resnet18", model3_backbone="resnet50",
               model4_backbone="resnet18")
    _multi_run(root, "fish_semisupervised", "ae", created="2025-04-03T09:00:00", stages=[2],
               model1_backbone="resnet18", model3_backbone="resnet50", model4_backbone="resnet18")
    _multi_run(root, "inaturalist_vgg16", "i", created="2025-04-04T09:00:00", stages="a,b",
               scratch="shallow,deep")
    _multi_run(root, "inaturalist_vgg16", "s", created="2025-04-05T09:00:00", stages="",
               scratch="shallow")
    _multi_run(root, "backbone_comparison", "bc", created="2025-04-06T09:00:00",
               backbones=["mobilenet_v2", "resnet18"])
    rows = list_runs(root)
    assert [r["backbone"] for r in rows] == [
        "resnet18",  # models 1 and 4 (model 2 is an autoencoder)
        "resnet18,resnet50",  # model 3 is ResNet50
        "",  # only the autoencoder
        "vgg16,r5_deep,r5_shallow",
        "r5_shallow",
        "mobilenet_v2,resnet18",
    ]
    assert re.search(r"  resnet18 +none +demo +done ", format_runs(rows[:1]))


def test_a_run_folder_without_its_config_is_listed_unreadable(tmp_path, capsys):
    # a run whose config.json was deleted disappeared from the listing with no line
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "good", "2025-01-01T09:30:00", {"accuracy": 0.81})
    lost = _fake_run(root, "quickstart", "lost", "2025-01-02T09:30:00", {"accuracy": 0.7})
    lost.best_model_path.write_bytes(b"model")
    lost.config_path.unlink()
    fish = _finished_fish(root)
    fish.config_path.unlink()  # its model folders (model1/ has a metrics.json) are not runs
    plain = RunFolder(root / "scratch" / "bare").mkdir()  # train() alone: no recipe's run
    write_history(plain.history_path, [{"epoch": 1, "phase": "head", "loss": 1.0}])
    plain.write_state({"phase_index": 1, "epoch": 1, "finished": True})
    plain.best_model_path.write_bytes(b"model")

    rows = {r["run"]: r for r in list_runs(root)}
    assert sorted(rows) == ["fish_semisupervised/fs1", "quickstart/good", "quickstart/lost"]
    for run in ("quickstart/lost", "fish_semisupervised/fs1"):
        assert rows[run]["status"] == "unreadable"
        assert rows[run]["problem"].startswith("config.json: does not exist")
    assert rows["quickstart/lost"]["test_accuracy"] == 0.7 and rows["quickstart/lost"]["epochs"] == 2
    assert rows["fish_semisupervised/fs1"]["epochs"] == 5

    from keras_species.cli import main

    assert main(["runs", str(root)]) == 0
    footer = capsys.readouterr().out.split("unreadable runs")[1].splitlines()[1:]
    assert sorted(footer) == ["  fish_semisupervised/fs1: config.json: does not exist",
                              "  quickstart/lost: config.json: does not exist"]


def test_an_unknown_recipe_is_an_error_with_close_names(tmp_path, capsys):
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "a", "2025-01-01T09:30:00", {"accuracy": 0.81})
    _fake_run(root, "convnext_transfer", "b", "2025-01-02T09:30:00", {"accuracy": 0.9})

    from keras_species.cli import main

    assert main(["runs", str(root), "--recipe", "quikstart"]) == 2  # a typo is not "no runs"
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("keras-species runs: no recipe 'quikstart': did you mean "
                                   "quickstart? (the runs under ")
    assert "are of: convnext_transfer, quickstart)" in captured.err
    assert main(["runs", str(root), "--recipe", "quikstart", "--json"]) == 2
    assert "did you mean quickstart?" in capsys.readouterr().err
    assert main(["runs", str(root), "--recipe", "zzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err
    # a recipe of the recipes package with no runs here yet: said so, not an error
    assert main(["runs", str(root), "--recipe", "scratch_cnn"]) == 0
    assert capsys.readouterr().out.startswith(
        f"no runs of recipe 'scratch_cnn' under {root}; its runs are of: convnext_transfer, quickstart")
    assert main(["runs", str(root), "--recipe", "scratch_cnn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    # an empty runs folder: the recipes package's names are suggested
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty"), "--recipe", "scratch_cn"]) == 2
    assert "did you mean scratch_cnn?" in capsys.readouterr().err


def test_the_training_time_is_one_of_the_results_a_run_started_over_removes(tmp_path):
    # start_run removed train_seconds.json itself, beside RunFolder.start_over: a run started
    # over by other code kept the old run's seconds, and a resume added them to its own
    from keras_species import recipe
    from keras_species.training.runs import RUN_RESULT_FILES, TRAIN_SECONDS

    assert TRAIN_SECONDS == "train_seconds.json" and TRAIN_SECONDS in RUN_RESULT_FILES
    assert recipe.TRAIN_SECONDS == TRAIN_SECONDS
    run = RunFolder.create("quickstart", name="a", root=tmp_path)
    write_json(run.path / TRAIN_SECONDS, {"sessions": [12.5]})
    run.start_over()
    assert not (run.path / TRAIN_SECONDS).exists()


def _table_cells(table: str, run: str) -> dict[str, str]:
    """The cells of ``run``'s row of a ``format_runs`` table, by column header."""
    lines = table.splitlines()
    header, rule = lines[0], lines[1]
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    ends = [m.end() for m in re.finditer(r"-+", rule)]
    (row,) = [line for line in lines[2:] if re.search(rf"  {re.escape(run)}  ", line)]
    return {header[s:e].strip(): row[s:e].strip() for s, e in zip(starts, ends)}


def test_a_multi_label_runs_exact_match_is_marked_as_such(tmp_path):
    # a multi-label run's exact-match accuracy (0.095) was shown bare under "test acc", beside
    # single-label runs' accuracy, as if it were the same kind of score
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "single", "2025-01-01T09:00:00",
              {"task": "single_label", "accuracy": 0.8, "f1_micro": 0.8})
    _fake_run(root, "multilabel_resnet", "multi", "2025-01-02T09:00:00",
              {"task": "multilabel", "exact_match": 0.0952, "f1_micro": 0.4131})
    rows = list_runs(root)
    assert [(r["test_accuracy"], r["test_accuracy_metric"]) for r in rows] == [
        (0.8, "accuracy"), (0.0952, "exact_match")]
    table = format_runs(rows)
    assert _table_cells(table, "quickstart/single")["test acc"] == "0.800"
    multi = _table_cells(table, "multilabel_resnet/multi")
    assert multi["test acc"] == "0.095 (exact)" and multi["micro-F1"] == "0.413"
    assert "\ntest acc (exact): a multi-label run's exact-match accuracy" in table
    assert "(exact)" not in format_runs(rows[:1])  # no multi-label run: no mark, no note
    # a row without a test score stays empty
    _fake_run(root, "multilabel_resnet", "new", "2025-01-03T09:00:00", finished=False)
    row = list_runs(root / "multilabel_resnet")[-1]
    assert row["test_accuracy"] is None and row["test_accuracy_metric"] is None
    assert _table_cells(format_runs([row]), "new")["test acc"] == "-"


def _classifier_run(root, name="f1", created="2025-01-01T09:00:00", state=True):
    """A finished ``feature_classifiers`` run as the recipe writes it: no history.csv, and
    ``state.json`` naming the classifiers it fitted (``state=False``: a run before that)."""
    run = RunFolder.create("feature_classifiers", name=name, root=root)
    write_json(run.config_path, {"recipe": "feature_classifiers", "name": name, "created": created,
                                 "config": {"backbone": "efficientnet_lite0", "image_size": 64}})
    run.write_metrics({"test": {"task": "single_label", "accuracy": 0.95, "f1_micro": 0.95},
                       "classifiers": {"svc": {"accuracy": 0.95}, "logreg": {"accuracy": 0.95}}})
    if state:
        run.write_state({"finished": True, "classifiers": ["svc", "logreg"]})
    return run


def test_a_new_run_that_keeps_its_split_gets_its_resume_command(tmp_path, capsys):
    # a feature_classifiers run interrupted during its extraction was listed `new` with no
    # word of --resume, which its Ctrl-C line offered (it keeps its split)
    root = tmp_path / "runs"
    run = RunFolder.create("feature_classifiers", name="f1", root=root)
    write_json(run.config_path, {"recipe": "feature_classifiers", "name": "f1",
                                 "created": "2025-01-01T09:00:00", "config": {"image_size": 64}})
    (run.path / "split.csv").write_text("path,label,split\n")
    bare = RunFolder.create("quickstart", name="q", root=root)  # no split kept: no line
    write_json(bare.config_path, {"recipe": "quickstart", "name": "q",
                                  "created": "2025-01-02T09:00:00", "config": {}})
    rows = {r["run"]: r for r in list_runs(root)}
    assert rows["feature_classifiers/f1"]["status"] == rows["quickstart/q"]["status"] == "new"
    table = format_runs(list(rows.values()))
    assert table.split("new runs that keep their split")[1].splitlines()[1:] == [
        f"  feature_classifiers/f1: python -m recipes.feature_classifiers --resume --out {root} --name f1"]


def test_a_feature_classifiers_run_counts_its_classifiers_not_epochs(tmp_path, capsys):
    # its row said "epochs 0" and no models, though it fitted 2 classifiers
    root = tmp_path / "runs"
    _classifier_run(root)
    _fake_run(root, "quickstart", "q", "2025-01-02T09:00:00", {"accuracy": 0.8})
    rows = list_runs(root)
    assert rows[0]["status"] == "done"
    assert rows[0]["epochs"] is None and rows[0]["classifiers"] == ["svc", "logreg"]
    assert rows[1]["epochs"] == 2 and rows[1]["classifiers"] is None
    table = format_runs(rows)
    cells = _table_cells(table, "feature_classifiers/f1")
    assert (cells["epochs"], cells["models"], cells["test acc"]) == ("-", "2 fitted", "0.950")
    assert (_table_cells(table, "quickstart/q")["epochs"], _table_cells(table, "quickstart/q")["models"]) \
        == ("2", "-")
    # the classifiers are read from metrics.json when state.json does not name them
    _classifier_run(root, "f0", "2024-12-01T09:00:00", state=False)
    row = list_runs(root / "feature_classifiers")[0]
    assert row["run"] == "f0" and row["epochs"] is None and row["classifiers"] == ["svc", "logreg"]
    # a feature_classifiers run that fitted nothing yet still trains no epochs
    new = RunFolder.create("feature_classifiers", name="f9", root=root)
    write_json(new.config_path, {"recipe": "feature_classifiers", "name": "f9",
                                 "created": "2025-01-09T09:00:00", "config": {}})
    row = list_runs(root / "feature_classifiers")[-1]
    assert (row["run"], row["status"], row["epochs"], row["classifiers"]) == ("f9", "new", None, None)

    from keras_species.cli import main

    assert main(["runs", str(root), "--json"]) == 0
    listed = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["feature_classifiers/f1"]["epochs"] is None
    assert listed["quickstart/q"]["epochs"] == 2


def test_the_epochs_column_says_what_it_sums_for_every_recipe_kind(tmp_path, capsys):
    # a scratch_cnn run showed "epochs 4" beside its setting "epochs=2": the column summed its
    # folds, the setting was per fold, and nothing said so
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "q", "2025-01-01T09:00:00", {"accuracy": 0.8},
              head_epochs=1, fine_tune_epochs=1)  # one model: 2 epochs (its history.csv)
    cv = _multi_run(root, "scratch_cnn", "cv", created="2025-01-02T09:00:00", epochs=2, k=2)
    for fold in ("fold0", "fold1"):
        _model_folder(cv.path / "r2_cnn" / fold, phases=(("train", 2),))
    _finish_top(cv, history_rows=4)
    ablation = _multi_run(root, "scratch_cnn", "ab", created="2025-01-03T09:00:00", epochs=1, k=2)
    for folder in ("1conv/fold0", "1conv/fold1", "2conv/fold0", "2conv/fold1"):
        _model_folder(ablation.path / folder, phases=(("train", 1),))
    _finish_top(ablation, history_rows=2)
    bc = _multi_run(root, "backbone_comparison", "bc", created="2025-01-04T09:00:00",
                    backbones=["mobilenet_v2", "resnet18"], head_epochs=2, fine_tune_epochs=2)
    for name in ("mobilenet_v2", "resnet18"):
        _model_folder(bc.path / name, evaluated=True)
    _finish_top(bc, history_rows=4)
    _classifier_run(root, "fc", "2025-01-05T09:00:00")

    rows = {r["run"]: r for r in list_runs(root)}
    assert {run: (r["epochs"], r["epochs_over"]) for run, r in rows.items()} == {
        "quickstart/q": (2, None), "scratch_cnn/cv": (4, "2 folds"),
        "scratch_cnn/ab": (4, "4 folds of 2 variants"), "backbone_comparison/bc": (8, "2 backbones"),
        "feature_classifiers/fc": (None, None)}
    assert rows["scratch_cnn/cv"]["key_settings"]["k"] == "2"  # the folds the setting is per
    table = format_runs(list(rows.values()))
    cells = {run: _table_cells(table, run) for run in rows}
    assert {run: c["epochs"] for run, c in cells.items()} == {
        "quickstart/q": "2", "scratch_cnn/cv": "4 (2 folds)", "scratch_cnn/ab": "4 (4 folds of 2 variants)",
        "backbone_comparison/bc": "8 (2 backbones)", "feature_classifiers/fc": "-"}
    assert "epochs=2 k=2" in cells["scratch_cnn/cv"]["settings"]
    note = table.split("\n\nepochs: ")[1].split("\n")[0]
    assert note == (
        "the epochs trained. 4 (4 folds of 2 variants): the sum over the run's 4 folds of 2 "
        "variants; the epoch settings (epochs=, head_epochs=, fine_tune_epochs=) are per model "
        "(per fold, per backbone). -: the run fits classifiers on backbone features and trains "
        "no epochs.")
    # runs of one model each need no note; nor do they get a count
    single = format_runs([rows["quickstart/q"]])
    assert "epochs: " not in single and _table_cells(single, "quickstart/q")["epochs"] == "2"
    assert "-: the run fits" not in format_runs([rows["scratch_cnn/cv"]])

    from keras_species.cli import main

    assert main(["runs", str(root), "--json"]) == 0
    listed = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["scratch_cnn/cv"]["epochs_over"] == "2 folds"
    assert listed["quickstart/q"]["epochs_over"] is None


def test_listing_runs_imports_neither_keras_nor_tensorflow(tmp_path):
    # the history of a run was read with training.callbacks, which imports Keras: listing a
    # folder that held a run with a history.csv took ~3-4 s and imported TensorFlow
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "done", "2025-01-01T09:00:00", {"accuracy": 0.8})
    _fake_run(root, "quickstart", "stopped", "2025-01-02T09:00:00", finished=False)
    code = ("import sys; from keras_species.cli import main; "
            f"code = main(['runs', {str(root)!r}]); "
            "print(code, 'keras' in sys.modules, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert any("done" in line for line in lines) and any("stopped" in line for line in lines)
    assert lines[-1] == "0 False False"


def _sleeper() -> subprocess.Popen:
    """A child process that lives until the test ends it (a stand-in for a training process)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _record_of(pid: int, **changes) -> dict:
    """The running.json record that process ``pid`` of this machine would write."""
    from keras_species.training.run_process import process_start_ticks, this_process

    return {**this_process(), "pid": pid, "start_ticks": process_start_ticks(pid), **changes}


def test_process_state_tells_a_live_process_from_a_dead_or_reused_id():
    from keras_species.training.run_process import process_state, this_process

    assert process_state(this_process()) == "alive"
    child = _sleeper()
    try:
        record = _record_of(child.pid)
        assert process_state(record) == "alive"
        if record["start_ticks"] is not None:  # Linux: the id with another start time is reused
            assert process_state({**record, "start_ticks": record["start_ticks"] + 1}) == "gone"
        assert process_state({**record, "host": "elsewhere.example"}) == "unknown"
        assert process_state({"host": record["host"]}) == "unknown"  # no pid: not a record
    finally:
        child.kill()
        child.wait()
    assert process_state(record) == "gone"


def test_a_run_whose_process_is_alive_is_listed_running_not_stopped(tmp_path):
    # a run still training was listed 'stopped', inviting a --resume of a live run
    root = tmp_path / "runs"
    run = _fake_run(root, "quickstart", "live", "2025-01-01T09:00:00", finished=False)
    assert list_runs(root)[0]["status"] == "stopped"
    child = _sleeper()
    try:
        write_json(run.running_path, _record_of(child.pid))
        row = list_runs(root)[0]
        assert row["status"] == "running" and row["process"]["pid"] == child.pid
        text = format_runs([row])
        assert "running runs" in text and f"quickstart/live: process {child.pid} on host" in text
    finally:
        child.kill()
        child.wait()
    row = list_runs(root)[0]  # killed outright: its record stays, but the run is stopped
    assert row["status"] == "stopped" and row["process"] is None
    # a process on another machine cannot be checked: said so, with the command if it is gone
    write_json(run.running_path, _record_of(child.pid, host="gpu7"))
    row = list_runs(root)[0]
    assert row["status"] == "running?"
    assert (f"quickstart/live: running?: process {child.pid} on host gpu7" in format_runs([row])
            and "python -m recipes.quickstart --resume" in format_runs([row]))
    # a finished run is done, whatever its record says
    done = _fake_run(root, "quickstart", "done", "2025-01-02T09:00:00", {"accuracy": 0.8})
    write_json(done.running_path, _record_of(child.pid, host="gpu7"))
    assert [r["status"] for r in list_runs(root)] == ["running?", "done"]


def test_a_damaged_running_record_says_nothing(tmp_path):
    run = _fake_run(tmp_path, "quickstart", "x", "2025-01-01T09:00:00", finished=False)
    run.running_path.write_text('{"pid": 1')
    assert run.running_record() is None and list_runs(tmp_path)[0]["status"] == "stopped"
    run.clear_running()  # not this process's record: it stays
    assert run.running_path.exists()


def test_a_running_multi_model_run_shows_its_unfinished_models_in_progress(tmp_path):
    run = _fake_run(tmp_path, "scratch_cnn", "cv", "2025-01-01T09:00:00", finished=False)
    run.state_path.unlink()
    run.history_path.unlink()
    for fold, finished in (("r2_cnn/fold0", True), ("r2_cnn/fold1", False)):
        sub = RunFolder(run.path / fold).mkdir()
        write_history(sub.history_path, [{"epoch": 1, "phase": "head", "loss": 1.0}])
        sub.write_state({"phase_index": 1, "epoch": 1, "finished": finished})
    child = _sleeper()
    try:
        write_json(run.running_path, _record_of(child.pid))
        text = format_runs(list_runs(tmp_path))
    finally:
        child.kill()
        child.wait()
    assert "1 trained, 1 in progress" in text and "stopped runs" not in text
    assert "1 trained, 1 stopped" in format_runs(list_runs(tmp_path))


def test_the_weights_column_reads_every_spelling_of_a_setting_alike(tmp_path):
    # before: runs made with --weights NONE, None or random listed as NONE, None, random
    root = tmp_path / "runs"
    for i, weights in enumerate(("NONE", "None", "random", "ImageNet", "/w/my.weights.h5")):
        _fake_run(root, "quickstart", f"r{i}", f"2025-01-0{i + 1}T09:00:00", {"accuracy": 0.5},
                  weights=weights)
    assert [r["weights"] for r in list_runs(root)] == ["none", "none", "none", "imagenet",
                                                      "/w/my.weights.h5"]


def test_a_run_name_of_wide_characters_keeps_the_table_aligned(tmp_path):
    # before: widths counted characters, so a CJK name (two columns each) pushed its row right
    root = tmp_path / "runs"
    _fake_run(root, "quickstart", "鱼 run", "2025-01-01T09:00:00", {"accuracy": 0.5})
    _fake_run(root, "quickstart", "fish", "2025-01-02T09:00:00", {"accuracy": 0.5})
    import unicodedata

    def columns(text):
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    lines = format_runs(list_runs(root)).split("\n\n")[0].splitlines()
    starts = {columns(line[:line.index("efficientnet_lite0")]) for line in lines[2:]}
    assert len(starts) == 1, lines


def test_starting_over_removes_the_last_model_too(tmp_path):
    # before: --overwrite left an earlier run's last.keras beside the new best.keras
    from keras_species.training.runs import RunFolder

    run = RunFolder(tmp_path / "r").mkdir()
    for name in ("best.keras", "last.keras", "history.csv"):
        (run.path / name).write_text("x")
    run.start_over()
    assert not (run.path / "last.keras").exists() and not (run.path / "best.keras").exists()


def test_run_finished_reads_the_model_folders_of_a_run_without_its_own_state(tmp_path):
    # before: inaturalist_vgg16 keeps no state.json in the run folder, so a resume of its finished
    # run did not say it was finished (and `runs`, which reads its model folders, said done)
    from keras_species.recipe import run_finished

    root = tmp_path / "runs"
    run = _multi_run(root, "inaturalist_vgg16", "i")
    _model_folder(run.path / "b_frozen", phases=(("frozen", 2),))
    _model_folder(run.path / "c_fine_tune", phases=(("fine_tune", 2),))
    assert not run_finished(run)  # not evaluated
    run.write_metrics({"test": {"accuracy": 0.9}})
    assert run_finished(run) and list_runs(root)[0]["status"] == "done"
    _model_folder(run.path / "c_fine_tune", phases=(("fine_tune", 2),), epochs=1)  # stopped
    assert not run_finished(run)
    run.write_state({"finished": False})  # a state of its own decides
    _model_folder(run.path / "c_fine_tune", phases=(("fine_tune", 2),))
    assert not run_finished(run)
    run.write_state({"finished": True})
    assert run_finished(run)
    assert not run_finished(RunFolder(tmp_path / "runs" / "inaturalist_vgg16" / "empty").mkdir())


def test_a_finished_run_whose_resume_failed_is_failed_not_done(tmp_path):
    # before: metrics.json and a finished state.json made it `done`, its failed.json unsaid
    root = tmp_path / "runs"
    run = _fake_run(root, "quickstart", "r", "2025-01-01T09:00:00", {"accuracy": 0.5})
    assert list_runs(root)[0]["status"] == "done"
    run.write_failure("none of the 30 images can be read", "Traceback ...")
    (row,) = list_runs(root)
    assert row["status"] == "failed" and row["test_accuracy"] == 0.5  # the old scores stay
    assert "failed runs" in format_runs([row]) and "none of the 30 images can be read" in format_runs([row])


def test_a_stopped_run_names_the_models_of_its_plan_it_has_not_begun(tmp_path):
    # an inaturalist_vgg16 run stopped in b_frozen read "3 (2 models)  1 trained, 1 stopped",
    # not a word of c_fine_tune and scratch_shallow; the recipes now write plan.json
    root = tmp_path / "runs"
    inat = _multi_run(root, "inaturalist_vgg16", "i3", stages="c", scratch="shallow")
    inat.write_plan(["a_features", "b_frozen", "c_fine_tune", "scratch_shallow"])
    (inat.path / "a_features").mkdir()
    (inat.path / "a_features" / "model.keras").write_bytes(b"model")
    _model_folder(inat.path / "b_frozen", phases=(("frozen_base", 3),), epochs=1)
    fish = _multi_run(root, "fish_semisupervised", "f", created="2025-04-02T09:00:00", stages="1,2,4")
    fish.write_plan(["model1", "model2", "model4"])
    _model_folder(fish.path / "model1", phases=(("train", 1),), evaluated=True)
    _model_folder(fish.path / "model2", phases=(("train", 1),), epochs=0)
    rows = {r["run"]: r for r in list_runs(root)}
    table = format_runs(list(rows.values()))
    assert "  stopped  1 (4 models)  1 trained, 1 stopped, 2 not started" in table
    assert "not started: c_fine_tune, scratch_shallow" in table
    assert [m["folder"] for m in rows["fish_semisupervised/f"]["models"]] == ["model1", "model2", "model4"]
    _model_folder(fish.path / "model4" / "phase1", phases=(("phase1", 1),))  # begun: its phases
    rows = {r["run"]: r for r in list_runs(root)}
    listed = {m["folder"]: m["status"] for m in rows["fish_semisupervised/f"]["models"]}
    assert listed == {"model1": "trained", "model4/phase1": "trained", "model2": "not started"}
    inat.start_over()  # plan.json is the run's: an --overwrite removes it with the rest
    assert not (inat.path / "plan.json").exists()


def test_inaturalist_runs_that_differ_in_their_own_settings_do_not_look_alike(tmp_path):
    # two runs with other stages and epochs of their stages showed empty settings cells
    root = tmp_path / "runs"
    a = _multi_run(root, "inaturalist_vgg16", "i1", stages="a", features_epochs=1, top_classes=0.6)
    b = _multi_run(root, "inaturalist_vgg16", "i2", created="2025-04-02T09:00:00", stages="a,b,c",
                   features_epochs=2, top_classes=0.1)
    for run in (a, b):
        _model_folder(run.path / "b_frozen", phases=(("frozen_base", 1),))
    cells = {r["run"]: r["key_settings"] for r in list_runs(root)}
    assert cells["inaturalist_vgg16/i1"]["stages"] == "a" and cells["inaturalist_vgg16/i2"]["stages"] == "a,b,c"
    listed = _multi_run(root, "inaturalist_vgg16", "i3", created="2025-04-03T09:00:00",
                        stages=["a", "b"], scratch=["shallow", "deep"], image_size=[32, 24])
    _model_folder(listed.path / "b_frozen", phases=(("frozen_base", 1),))
    cells = {r["run"]: r["key_settings"] for r in list_runs(root)}  # lists as a list: "a,b", not "axb"
    assert (cells["inaturalist_vgg16/i3"]["stages"], cells["inaturalist_vgg16/i3"]["scratch"],
            cells["inaturalist_vgg16/i3"]["image_size"]) == ("a,b", "shallow,deep", "32x24")
    table = format_runs(list_runs(root))
    assert "features_epochs=1" in table and "features_epochs=2" in table and "top_classes=0.6" in table
