"""The label map inside the model: ClassifierOutput, label_map, set_thresholds, attach_label_map."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_species.models.labels import (
    ClassifierOutput,
    LabelMap,
    LabelMapError,
    attach_label_map,
    find_output_layer,
    label_map,
    load_labels_json,
    set_thresholds,
)

NAMES = ["cod", "eel", "ray"]


def _model(activation="softmax", names=NAMES, **kw) -> keras.Model:
    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(len(names), name="label_logits")(x)
    out = ClassifierOutput(activation, names, name="label", **kw)(x)
    return keras.Model(inp, out, name="tiny")


def test_activations_compute_in_float32():
    x = np.array([[1.0, 2.0, -1.0]], np.float32)
    soft = ClassifierOutput("softmax", NAMES)(x)
    np.testing.assert_allclose(np.asarray(soft), np.exp(x) / np.exp(x).sum(), rtol=1e-6)
    sig = ClassifierOutput("sigmoid", NAMES)(x)
    np.testing.assert_allclose(np.asarray(sig), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(ClassifierOutput("linear", NAMES)(x)), x)
    half = ClassifierOutput("softmax", NAMES)(x.astype(np.float16))
    assert keras.backend.standardize_dtype(half.dtype) == "float32"


def test_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    layer = model.get_layer("label")
    assert layer.dtype_policy.name == "float32"
    assert keras.backend.standardize_dtype(model(np.zeros((1, 8, 8, 3), np.float32)).dtype) == "float32"


def test_multilabel_defaults_and_config_roundtrip():
    layer = ClassifierOutput("sigmoid", NAMES, thresholds=[0.2, 0.5, 0.7], name="label")
    assert layer.multilabel is True
    assert ClassifierOutput("softmax", NAMES).multilabel is False
    config = layer.get_config()
    assert config["class_names"] == NAMES and config["thresholds"] == [0.2, 0.5, 0.7]
    again = ClassifierOutput.from_config(config)
    assert (again.activation, again.class_names, again.multilabel, again.thresholds) == (
        "sigmoid", NAMES, True, [0.2, 0.5, 0.7])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "relu", "class_names": NAMES}, "activation"),
        ({"activation": "softmax", "class_names": []}, "empty"),
        ({"activation": "softmax", "class_names": ["a", "a"]}, "duplicates"),
        ({"activation": "sigmoid", "class_names": NAMES, "thresholds": [0.5, 1.5, 0.1]}, r"\[0, 1\]"),
        ({"activation": "sigmoid", "class_names": NAMES, "thresholds": [0.5, 0.5]}, "2 thresholds"),
        ({"activation": "softmax", "class_names": NAMES, "logits": True}, "linear"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(LabelMapError, match=match):
        ClassifierOutput(**kwargs)


def test_class_count_must_match_units():
    inp = keras.Input((4,))
    with pytest.raises(LabelMapError, match="4 outputs but has 3 class names"):
        ClassifierOutput("softmax", NAMES)(inp)


def test_label_map_reads_the_model_and_nested_models():
    model = _model("sigmoid", thresholds=0.3)
    lm = label_map(model)
    assert lm == LabelMap(NAMES, True, 0.3, False)
    np.testing.assert_allclose(lm.threshold_array(), [0.3, 0.3, 0.3])
    outer_in = keras.Input((8, 8, 3))
    outer = keras.Model(outer_in, model(outer_in))
    assert label_map(outer).class_names == NAMES
    assert find_output_layer(outer) is model.get_layer("label")


def test_label_map_without_layer_says_what_to_pass():
    inp = keras.Input((4,))
    plain = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="label")(inp))
    with pytest.raises(LabelMapError, match="labels.json"):
        label_map(plain)


def test_set_thresholds_persists_through_save(tmp_path):
    model = _model("sigmoid")
    assert label_map(model).thresholds is None
    lm = set_thresholds(model, np.array([0.25, 0.5, 0.75]))
    assert lm.thresholds == [0.25, 0.5, 0.75]
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    assert label_map(again).thresholds == [0.25, 0.5, 0.75]
    with pytest.raises(LabelMapError, match="2 thresholds"):
        set_thresholds(model, [0.1, 0.2])
    with pytest.raises(LabelMapError, match="single-label"):
        set_thresholds(_model("softmax"), 0.5)


def test_attach_label_map_keeps_outputs(tmp_path):
    inp = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    foreign = keras.Model(inp, keras.layers.Dense(3, activation="sigmoid", name="label")(x))
    wrapped = attach_label_map(foreign, NAMES, multilabel=True, thresholds=[0.4, 0.5, 0.6])
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(wrapped(x)), np.asarray(foreign(x)), atol=1e-7)
    assert wrapped.layers[0].name == "image"
    lm = label_map(wrapped)
    assert (lm.class_names, lm.multilabel, lm.thresholds) == (NAMES, True, [0.4, 0.5, 0.6])
    wrapped.save(tmp_path / "w.keras")
    assert label_map(keras.saving.load_model(tmp_path / "w.keras")).class_names == NAMES


def test_attach_label_map_picks_the_label_output_of_a_multi_output_model():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    two = keras.Model(inp, {"recon": keras.layers.Dense(2, name="recon")(x),
                            "label": keras.layers.Dense(3, activation="softmax", name="label")(x)})
    wrapped = attach_label_map(two, NAMES)
    assert wrapped.output_shape == (None, 3)
    with pytest.raises(LabelMapError, match="outputs"):
        attach_label_map(two, NAMES, output="nope")


def test_logits_label_map_probabilities():
    lm = LabelMap(NAMES, logits=True)
    p = lm.probabilities(np.array([[0.0, 1.0, 2.0]]))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    ml = LabelMap(NAMES, multilabel=True, logits=True)
    np.testing.assert_allclose(ml.probabilities(np.zeros((1, 3))), 0.5)
    assert LabelMap(NAMES).probabilities(np.array([[0.2, 0.3, 0.5]])).tolist() == [
        pytest.approx([0.2, 0.3, 0.5])]


def test_labels_json_roundtrip(tmp_path):
    lm = LabelMap(NAMES, True, [0.1, 0.2, 0.3])
    path = lm.write_json(tmp_path / "labels.json")
    assert load_labels_json(path) == lm
    (tmp_path / "list.json").write_text(json.dumps(NAMES))
    assert load_labels_json(tmp_path / "list.json") == LabelMap(NAMES)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LabelMapError, match="no class names"):
        load_labels_json(tmp_path / "bad.json")


@pytest.mark.parametrize("data, why", [
    (b'{"class_names": ["cod", "e', r"not valid JSON \(Unterminated string starting at line 1 column 25\)"),
    (b"", "empty file"),
    (b'["cod", "\xe9el"]', r"not UTF-8 text \(byte 0xe9 at offset 9\)"),
    (b"7", "holds a JSON number, not an object or an array"),
])
def test_a_damaged_labels_json_is_named_with_what_to_write(tmp_path, data, why):
    path = tmp_path / "labels.json"
    path.write_bytes(data)
    with pytest.raises(LabelMapError, match=rf"labels\.json cannot be read as a label map \({why}\): "
                                            r'write \{"class_names": \["cod", \.\.\.\]\} or a list'):
        load_labels_json(path)
    path.write_text('{"class_names": "cod, eel"}')
    with pytest.raises(LabelMapError, match="class_names holds a JSON string, not a list of names"):
        load_labels_json(path)
    path.write_bytes(b'\xef\xbb\xbf["cod", "eel", "ray"]')  # UTF-8 with a byte-order mark reads
    assert load_labels_json(path) == LabelMap(NAMES)


def test_reloads_in_fresh_process_with_safe_mode(tmp_path):
    model = _model("sigmoid", thresholds=[0.3, 0.4, 0.5])
    path = tmp_path / "m.keras"
    model.save(path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import keras
        import keras_species
        from keras_species.models.labels import label_map
        m = keras.saving.load_model({str(path)!r}, safe_mode=True)
        np.save({str(tmp_path / "y.npy")!r}, np.asarray(m(np.load({str(tmp_path / "x.npy")!r}))))
        mods = sorted(k for k in sys.modules if k.split(".")[0] in ("tests", "conftest"))
        print(json.dumps({{"map": label_map(m).to_dict(), "extra": mods}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["extra"] == []
    assert out["map"] == {"class_names": NAMES, "multilabel": True,
                          "thresholds": [0.3, 0.4, 0.5], "logits": False}
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.asarray(model(x)), atol=1e-6)
