"""Recipe configs: a dataclass → argparse, JSON config files, flags overriding them, seeds."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from keras_species.config import config_parser, config_to_dict, parse_config, seed_everything


@dataclass
class Head:
    units: tuple[int, ...] = (512, 256, 128)
    dropout: float = 0.0


@dataclass
class Config:
    """A test recipe."""

    data: str = field(default="demo", metadata={"help": "data source"})
    backbone: str = field(default="convnext_tiny", metadata={"help": "registry name"})
    image_size: tuple[int, int] = field(default=(224, 224), metadata={"help": "H W"})
    epochs: int = field(default=10, metadata={"help": "epochs per phase"})
    learning_rate: float = field(default=1e-3, metadata={"help": "phase-1 lr (100% of it)"})
    weights: str | None = field(default="imagenet", metadata={"help": "weights"})
    augment: bool = field(default=True, metadata={"help": "augmentation"})
    mixed_precision: Literal["auto", "float16", "bfloat16", "off"] = "auto"
    classes: list[str] = field(default_factory=list, metadata={"help": "keep these classes"})
    out: Path = Path("runs")
    seed: int | None = 0
    head: Head = field(default_factory=Head)


def test_parser_has_every_field_with_help():
    parser = config_parser(Config)
    text = parser.format_help()
    for flag in ("--data", "--backbone", "--image-size", "--epochs", "--learning-rate",
                 "--weights", "--augment", "--no-augment", "--mixed-precision", "--classes",
                 "--out", "--seed", "--head", "--config"):
        assert flag in text
    assert "registry name (default: convnext_tiny)" in text
    assert "(100% of it)" in text
    assert "{auto,float16,bfloat16,off}" in text


def test_a_mixin_field_can_be_listed_after_a_field_of_the_subclass():
    from keras_species.config import flag_help

    @dataclass
    class Reading:
        root: str | None = field(default=None, metadata=flag_help("image root", after="data"))
        strict: bool = field(default=False, metadata=flag_help("strict", after="root"))
        lost: int = field(default=0, metadata=flag_help("follows a field that is not there", after="nope"))

    @dataclass
    class Recipe(Reading):
        data: str = field(default="demo", metadata=flag_help("data source"))
        epochs: int = 1

    flags = [a.option_strings[0] for a in config_parser(Recipe)._actions if a.option_strings]
    assert flags == ["-h", "--config", "--lost", "--data", "--root", "--strict", "--epochs"]
    assert parse_config(Recipe, ["--root", "imgs", "--strict"]) == Recipe(root="imgs", strict=True)


def test_defaults_and_flags():
    assert parse_config(Config, []) == Config()
    cfg = parse_config(Config, [
        "--image-size", "128", "96", "--epochs", "3", "--no-augment", "--weights", "none",
        "--mixed-precision", "off", "--classes", "cod", "eel", "--out", "/tmp/r",
        "--head", '{"units": [64], "dropout": 0.2}', "--learning-rate", "1e-4",
    ])
    assert cfg.image_size == (128, 96) and cfg.epochs == 3 and cfg.augment is False
    assert cfg.weights is None and cfg.mixed_precision == "off"
    assert cfg.classes == ["cod", "eel"] and cfg.out == Path("/tmp/r")
    assert cfg.head == Head(units=(64,), dropout=0.2) and cfg.learning_rate == 1e-4


def test_bad_flags_exit(capsys):
    with pytest.raises(SystemExit):
        parse_config(Config, ["--mixed-precision", "half"])
    with pytest.raises(SystemExit):
        parse_config(Config, ["--epochs", "many"])
    with pytest.raises(SystemExit):
        parse_config(Config, ["--image-size", "1"])
    capsys.readouterr()


def test_a_flag_of_one_or_more_values_takes_none_for_no_value(capsys):
    @dataclass
    class Widths:
        head_units: tuple[int, ...] = (512, 256)
        classes: list[str] = field(default_factory=lambda: ["cod"])
        size: tuple[int, int] = (8, 8)

    # `--head-units none` used to stop with "invalid int value: 'none'" although the recipes'
    # help promised it (a linear head where the default has hidden layers)
    cfg = parse_config(Widths, ["--head-units", "none", "--classes", "None"])
    assert cfg.head_units == () and cfg.classes == []
    assert parse_config(Widths, ["--head-units", "64"]).head_units == (64,)
    with pytest.raises(SystemExit):
        parse_config(Widths, ["--head-units", "64", "none"])
    assert "--head-units: 'none' (no values) cannot stand beside other values" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a fixed number of values has no empty form
        parse_config(Widths, ["--size", "none", "none"])
    capsys.readouterr()


def test_config_file_then_flags_override(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 7, "image_size": [64, 64], "backbone": "resnet18",
                                "head": {"units": [32]}, "weights": None}))
    cfg = parse_config(Config, ["--config", str(path), "--epochs", "2"])
    assert cfg.epochs == 2 and cfg.image_size == (64, 64) and cfg.backbone == "resnet18"
    assert cfg.head == Head(units=(32,)) and cfg.weights is None
    cfg = parse_config(Config, ["--epochs", "2", "--config", str(path)])
    assert cfg.epochs == 2  # flags win wherever they stand

    # a run folder's config.json (written by RunFolder.write_config) is accepted as it is
    run_cfg = tmp_path / "config.json"
    run_cfg.write_text(json.dumps({"recipe": "x", "config": config_to_dict(cfg)}))
    assert parse_config(Config, ["--config", str(run_cfg)]) == cfg

    path.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(SystemExit):
        parse_config(Config, ["--config", str(path)])
    assert "unknown setting(s) ['epoch']" in capsys.readouterr().err
    path.write_text(json.dumps({"image_size": [1, 2, 3]}))
    with pytest.raises(SystemExit):
        parse_config(Config, ["--config", str(path)])
    assert "expected 2 values" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(Config, ["--config", str(tmp_path / "nope.json")])
    assert "nope.json" in capsys.readouterr().err


@pytest.mark.parametrize("data, why", [
    (b'{"epochs": 7, "backbone": "res', "not valid JSON (Unterminated string starting at line 1 column 27)"),
    (b"", "empty file"),
    (b'{"backbone": "r\xe9snet18"}', "not UTF-8 text (byte 0xe9 at offset 15)"),  # Latin-1
])
def test_a_damaged_config_file_is_one_message_naming_it(tmp_path, capsys, data, why):
    path = tmp_path / "c.json"
    path.write_bytes(data)
    with pytest.raises(SystemExit):
        parse_config(Config, ["--config", str(path)])
    err = capsys.readouterr().err
    assert f"error: --config {path}: cannot read it as JSON ({why}); give a JSON object of settings" in err
    path.write_bytes(b'\xef\xbb\xbf{"epochs": 7}')  # UTF-8 with the byte-order mark Notepad writes
    assert parse_config(Config, ["--config", str(path)]).epochs == 7


def test_a_refused_choice_is_left_out_of_the_help_and_refused_with_its_reason(tmp_path, capsys):
    from keras_species.config import flag_help, refusal

    why = "it makes no test split: use auto"

    @dataclass
    class Split:
        split: Literal["auto", "given"] = field(
            default="auto", metadata=flag_help("how to split", refused={"systematic": why}))

    assert "{auto,given}" in config_parser(Split).format_help()
    assert parse_config(Split, ["--split", "given"]).split == "given"
    with pytest.raises(SystemExit):
        parse_config(Split, ["--split", "systematic"])
    assert f"argument --split: 'systematic' is not a choice here: {why}" in capsys.readouterr().err
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"split": "systematic"}))
    with pytest.raises(SystemExit):
        parse_config(Split, ["--config", str(path)])
    assert f"--config {path}: split 'systematic' is not a choice here: {why}" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # another value keeps the usual message
        parse_config(Split, ["--split", "bogus"])
    assert "argument --split: invalid choice: 'bogus'; choose from 'auto', 'given'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a close one is named
        parse_config(Split, ["--split", "givn"])
    assert "invalid choice: 'givn' (did you mean 'given'?)" in capsys.readouterr().err
    (f,) = Split.__dataclass_fields__.values()
    assert refusal(f, "systematic") == why and refusal(f, "auto") is None and refusal(f, 3) is None


def test_required_field():
    @dataclass
    class Needs:
        data: str
        epochs: int = 1

    with pytest.raises(SystemExit):
        parse_config(Needs, [])
    assert parse_config(Needs, ["--data", "x"]).data == "x"


def test_config_to_dict_is_json_ready():
    d = config_to_dict(Config(out=Path("a/b")))
    assert d["image_size"] == [224, 224] and d["out"] == "a/b" and d["head"]["units"] == [512, 256, 128]
    assert config_to_dict({"x": np.float32(0.5), "y": np.arange(2)}) == {"x": 0.5, "y": [0, 1]}
    json.dumps(d)


def test_seed_everything_repeats_random_streams(monkeypatch):
    import keras
    import tensorflow as tf

    calls = []  # op determinism is process-wide and cannot be undone: record the call only
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: calls.append(1))
    seed_everything(123)
    a = (random.random(), np.random.rand(), float(keras.random.uniform(())))
    assert calls == []
    seed_everything(123, deterministic=True)
    b = (random.random(), np.random.rand(), float(keras.random.uniform(())))
    assert a == b and calls == [1]


def test_an_unknown_flag_is_one_line_with_the_flags_it_may_mean(capsys):
    # argparse printed the whole usage (dozens of flags) and no hint
    import dataclasses

    from keras_species.config import parse_config

    @dataclasses.dataclass
    class C:
        head_epochs: int = 1
        fine_tune_epochs: int = 1
        image_size: int = 224

    with pytest.raises(SystemExit) as stop:
        parse_config(C, ["--epochs", "3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(": error: unrecognized arguments: --epochs 3 (did you mean --head-epochs or "
                        "--fine-tune-epochs?); see --help\n")
    assert "usage:" not in err
    with pytest.raises(SystemExit):
        parse_config(C, ["--image-sise=32"])
    assert "(did you mean --image-size?)" in capsys.readouterr().err


def test_a_help_that_names_its_default_is_not_given_a_second_one():
    import dataclasses

    from keras_species.config import config_parser, flag_help

    @dataclasses.dataclass
    class C:
        name: str | None = dataclasses.field(default=None, metadata=flag_help("run name (default: a timestamp)"))
        seed: int = dataclasses.field(default=0, metadata=flag_help("random seed"))

    text = " ".join(config_parser(C).format_help().split())
    assert "run name (default: a timestamp) --seed" in text and "(default: null)" not in text
    assert "random seed (default: 0)" in text


@dataclass
class _FlagsConfig:
    backbones: tuple[str, ...] = ("a",)
    backbone_plots: bool = True
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    thresholds: Literal["global", "per_class", "fixed"] = "global"


def _recipe_error(capsys, argv) -> str:
    """The error ``parse_config`` prints for ``argv``: one line, exit code 2."""
    with pytest.raises(SystemExit) as stop:
        parse_config(_FlagsConfig, argv, parser=config_parser(_FlagsConfig, prog="python -m recipes.r"))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith("python -m recipes.r: error: ") and err.endswith("; see --help\n"), err
    return err


def test_every_recipe_flag_error_is_one_line(tmp_path, capsys):
    # before: argparse's usage block (~40 lines for a recipe) before each of these
    err = _recipe_error(capsys, ["--backbone", "x"])  # before: `ambiguous option`
    assert "unrecognized arguments: --backbone x (did you mean --backbones or --backbone-plots?)" in err
    assert "argument --ratios: expected 3 arguments" in _recipe_error(capsys, ["--ratios", "0.8", "0.2"])
    err = _recipe_error(capsys, ["--thresholds", "per-tag"])
    assert "invalid choice: 'per-tag' (did you mean 'per_class'?)" in err
    missing = tmp_path / "missing.json"
    assert f"--config {missing}: cannot read it as JSON" in _recipe_error(capsys, ["--config", str(missing)])
    table = tmp_path / "split.csv"
    table.write_text("path,label\na.jpg,x\n")
    assert f"--config {table}: cannot read it as JSON" in _recipe_error(capsys, ["--config", str(table)])
    settings = tmp_path / "settings.json"
    settings.write_text('{"epochs": 3}')
    assert "unknown setting(s) ['epochs']" in _recipe_error(capsys, ["--config", str(settings)])


def test_a_recipe_parser_suggests_and_still_helps(capsys):
    from keras_species.terminal import SuggestingArgumentParser

    parser = config_parser(_FlagsConfig, prog="python -m recipes.r")
    assert isinstance(parser, SuggestingArgumentParser) and not parser.allow_abbrev
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m recipes.r") and "--backbone-plots" in out and "--thresholds" in out


@dataclass
class _RunConfig:
    name: str | None = None
    resume: bool = False
    overwrite: bool = False
    epochs: int = 10
    learning_rate: float = 1e-3
    out: Path = Path("runs")


def test_a_run_folders_config_repeats_the_run_without_how_it_was_invoked(tmp_path):
    # before: a run started with --overwrite (or continued with --resume) stored true, and
    # --config of its config.json wiped and retrained that same run (or re-evaluated it)
    stored = {"name": "c", "resume": True, "overwrite": True, "epochs": 3, "learning_rate": 0.01,
              "out": str(tmp_path / "runs")}
    run_cfg = tmp_path / "config.json"
    run_cfg.write_text(json.dumps({"recipe": "x", "config": stored}))
    cfg = parse_config(_RunConfig, ["--config", str(run_cfg)])
    assert (cfg.name, cfg.resume, cfg.overwrite) == (None, False, False)
    assert (cfg.epochs, cfg.learning_rate, cfg.out) == (3, 0.01, tmp_path / "runs")
    assert parse_config(_RunConfig, ["--config", str(run_cfg), "--name", "d"]).name == "d"
    own = tmp_path / "mine.json"  # a settings file of the user's own says what it says
    own.write_text(json.dumps({"name": "c", "overwrite": True}))
    assert parse_config(_RunConfig, ["--config", str(own)]).overwrite is True


@pytest.mark.parametrize("setting, shown", [
    ({"learning_rate": "0.001"}, "learning_rate: expected a number, got '0.001' (write it without quotes)"),
    ({"learning_rate": True}, "learning_rate: expected a number, got True"),
    ({"epochs": True}, "epochs: expected a whole number, got True"),
    ({"epochs": "abc"}, "epochs: expected a whole number, got 'abc'; see"),  # no "without quotes" for a word
    ({"epochs": "5.5"}, "epochs: expected a whole number, got '5.5'; see"),  # nor for 5.5, refused unquoted
    ({"learning_rate": "fast"}, "learning_rate: expected a number, got 'fast'; see"),
    ({"out": 5}, "out: expected a path, got 5"),
    # since stop 34: an int in quotes gets the hint a float does ("expected int, got '64'"), and
    # null the value to give (it printed "(type <class 'str'>)")
    ({"epochs": "64"}, "epochs: expected a whole number, got '64' (write it without quotes)"),
    ({"epochs": None}, "epochs: null is not allowed here: give a whole number"),
    ({"learning_rate": None}, "learning_rate: null is not allowed here: give a number"),
])
def test_config_file_values_of_the_wrong_type_are_named(tmp_path, capsys, setting, shown):
    # before: "0.001" stayed a string (then "--learning-rate 0.001: must be a number above 0"),
    # true was a learning rate of 1.0, and {"out": 5} raised a TypeError traceback
    path = tmp_path / "c.json"
    path.write_text(json.dumps(setting))
    with pytest.raises(SystemExit):
        parse_config(_RunConfig, ["--config", str(path)])
    assert f"{path}: {shown}" in capsys.readouterr().err


def test_null_for_a_string_setting_says_to_write_the_flags_word(tmp_path, capsys):
    @dataclass
    class Weighted:
        weights: str = "imagenet"
        units: tuple[int, ...] = (8,)
        ratios: tuple[float, float] = (0.8, 0.2)
        mode: Literal["on", "off"] = "on"

    for key, says in (("units", 'a list ([] or "none" for none)'), ("ratios", "a list of 2 values"),
                      ("mode", 'one of "on", "off"')):
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps({key: None}))
        with pytest.raises(SystemExit):
            parse_config(Weighted, ["--config", str(path)])
        assert f"{key}: null is not allowed here: give {says}" in capsys.readouterr().err

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"weights": None}))
    with pytest.raises(SystemExit):
        parse_config(Weighted, ["--config", str(path)])
    assert ('weights: null is not allowed here: give a string in quotes, as the flag takes it (e.g. "none" '
            "for --weights none)") in capsys.readouterr().err


def test_a_settings_file_takes_none_where_the_flag_does(tmp_path):
    # before: {"seed": "none"} was refused ("expected int") though --seed none is taken
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"seed": "none", "weights": "null"}))
    cfg = parse_config(Config, ["--config", str(path)])
    assert cfg.seed is None and cfg.weights is None


def test_a_settings_file_names_a_bad_true_false_and_takes_none_for_no_values(tmp_path, capsys):
    # before: {"augment": "maybe"} raised argparse's ArgumentTypeError as a traceback, and
    # {"classes": "none"} was refused though --classes none gives no values
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"augment": "maybe"}))
    with pytest.raises(SystemExit):
        parse_config(Config, ["--config", str(path)])
    assert f"{path}: augment: expected true/false, got 'maybe'" in capsys.readouterr().err
    path.write_text(json.dumps({"classes": "none"}))
    assert parse_config(Config, ["--config", str(path)]).classes == []


def test_seed_everything_takes_a_numpy_integer_and_refuses_what_is_no_seed():
    # before: np.int64(3) failed in Python's random with a message that did not name the seed,
    # and True was taken as seed 1
    seed_everything(np.int64(3))
    first = random.random()
    seed_everything(3)
    assert random.random() == first
    for wrong in (True, 3.5, -1):
        with pytest.raises(ValueError, match="seed"):
            seed_everything(wrong)


def test_a_json_flag_that_is_not_json_says_what_to_give(capsys):
    # before: "argument --params: invalid loads value: 'notjson'" (the shell's lost quotes too)
    @dataclass
    class WithParams:
        params: dict = field(default_factory=dict)

    for text in ("notjson", "{svc:{C:-1}}"):
        with pytest.raises(SystemExit):
            parse_config(WithParams, ["--params", text])
        err = capsys.readouterr().err
        assert f"argument --params: {text!r} is not JSON (" in err and "as the flag's --help shows" in err
    assert parse_config(WithParams, ["--params", '{"svc": {"C": 10}}']).params == {"svc": {"C": 10}}
