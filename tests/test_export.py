"""Export to .keras / SavedModel / TFLite, with parity against the Keras model on generated images.

Measured max abs differences of the probabilities (3 classes, this tiny CNN at 32 px, 11 images,
TF 2.21 CPU): SavedModel 0 (the same graph), TFLite float32 8.9e-8, float16 1.0e-4, int8
dynamic-range 1.5e-3, int8 full-integer 5.7e-3. Asserted tolerances: 1e-5, 1e-5, 1e-3, 1e-2, 3e-2.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_species import cli
from keras_species.data.images import read_image
from keras_species.data.pipeline import resize_image
from keras_species.export import ExportError, export_model, label_output_model, load_keras_model
from keras_species.models.labels import ClassifierOutput, LabelMapError

pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")

NAMES = ["cod", "eel", "ray"]
SIZE = 32
TOLERANCE = {None: 1e-5, "float16": 1e-3, "int8": 1e-2, "int8_full": 3e-2}


def _tiny_model(activation: str = "softmax", thresholds=None, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocessing")(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(len(NAMES), name="label_logits")(x)
    out = ClassifierOutput(activation, NAMES, thresholds=thresholds, name="label")(x)
    model = keras.Model(inp, out, name="tiny")
    bn = model.get_layer("bn1")  # non-trivial BatchNorm statistics, so inference mode matters
    rng = np.random.default_rng(seed)
    bn.moving_mean.assign(rng.normal(0, 0.2, 8).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype(np.float32))
    dense = model.get_layer("label_logits")  # sharper outputs than the random init gives
    dense.kernel.assign(dense.kernel.numpy() * 8)
    return model


def _write_images(folder: Path, n: int, size: tuple[int, int], seed: int) -> list[Path]:
    """Real-looking PNGs: smooth colour gradients with blobs and noise (not uniform noise)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(n):
        base = rng.uniform(0, 255, 3)
        grad = rng.uniform(-2, 2, (2, 3))
        img = base + yy[..., None] * grad[0] + xx[..., None] * grad[1]
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, max(4, h / 3))
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
        img[blob] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 6, img.shape)
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _pipeline_resize(img: np.ndarray, round_: bool = True) -> np.ndarray:
    out = resize_image(tf.constant(img, tf.float32), SIZE).numpy()
    return np.floor(out + 0.5) if round_ else out


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return _tiny_model()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, np.ndarray]:
    root = tmp_path_factory.mktemp("export_images")
    same = np.stack([read_image(p) for p in _write_images(root / "same", 8, (SIZE, SIZE), 0)])
    big = np.stack([read_image(p) for p in _write_images(root / "big", 3, (50, 41), 1)])
    small = np.stack([read_image(p) for p in _write_images(root / "small", 2, (20, 27), 2)])
    return {"same": same, "big": big, "small": small, "folder": root / "same"}


@pytest.fixture(scope="module")
def saved_model(model, tmp_path_factory) -> Path:
    return export_model(model, tmp_path_factory.mktemp("sm") / "tiny", format="saved_model")


def _keras_probs(model, x) -> np.ndarray:
    return np.asarray(model(np.asarray(x, np.float32), training=False))


def test_saved_model_parity_same_size(model, saved_model, images):
    loaded = tf.saved_model.load(str(saved_model))
    assert {"serve", "serve_float", "serve_bytes", "serving_default", "metadata"} <= set(loaded.signatures)
    x = images["same"]
    out = loaded.signatures["serve"](images=tf.constant(x))
    expected = _keras_probs(model, x)
    diff = np.abs(out["probabilities"].numpy() - expected).max()
    assert diff <= 1e-5, diff
    assert [c.decode() for c in out["class_names"].numpy()] == NAMES
    top = [c.decode() for c in out["top_class"].numpy()]
    assert top == [NAMES[i] for i in expected.argmax(1)]
    np.testing.assert_allclose(out["top_probability"].numpy(), expected.max(1), atol=1e-5)
    assert "thresholds" not in out
    f = loaded.signatures["serve_float"](images=tf.constant(x.astype(np.float32)))
    assert np.abs(f["probabilities"].numpy() - expected).max() <= 1e-5


@pytest.mark.parametrize("which", ["big", "small"])
def test_saved_model_resizes_like_the_pipeline(model, saved_model, images, which):
    loaded = tf.saved_model.load(str(saved_model))
    x = images[which]
    out = loaded.signatures["serve"](images=tf.constant(x))["probabilities"].numpy()
    expected = _keras_probs(model, np.stack([_pipeline_resize(i) for i in x]))
    assert np.abs(out - expected).max() <= 1e-5
    f = loaded.signatures["serve_float"](images=tf.constant(x.astype(np.float32)))
    expected_f = _keras_probs(model, np.stack([_pipeline_resize(i, round_=False) for i in x]))
    assert np.abs(f["probabilities"].numpy() - expected_f).max() <= 1e-5


def test_saved_model_serve_bytes_decodes_as_training_and_predict_do(model, saved_model, tmp_path):
    # stop 30: `serve` takes decoded pixels, and a client that decodes a large JPEG whole sees
    # other pixels than training, which decodes it at a reduced DCT scale (up to 30 levels
    # apart); `serve_bytes` takes the files' bytes and decodes them as training does
    from keras_species.predict import predict

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:150, 0:200]
    photo = np.stack([128 + 100 * np.sin(xx / 7.0 + c) * np.cos(yy / 5.0) for c in range(3)], -1)
    photo = np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "big.jpg", quality=85)  # >= 4x SIZE: 1/4 scale
    Image.fromarray(photo[:40, :50]).save(tmp_path / "small.jpg", quality=85)
    Image.fromarray(photo[:45, :60]).save(tmp_path / "grey.png")
    Image.fromarray(photo[:20, :30, 0]).convert("L").save(tmp_path / "grey_l.png")
    files = [tmp_path / n for n in ("big.jpg", "small.jpg", "grey.png", "grey_l.png")]
    loaded = tf.saved_model.load(str(saved_model))
    out = loaded.signatures["serve_bytes"](image_bytes=tf.constant([f.read_bytes() for f in files]))
    expected = predict(model, [str(f) for f in files]).probabilities
    assert np.abs(out["probabilities"].numpy() - expected).max() <= 1e-5
    whole = loaded.signatures["serve"](images=tf.constant(read_image(files[0])[None]))
    assert np.abs(whole["probabilities"].numpy() - expected[:1]).max() > 1e-4  # what it fixes


def test_saved_model_serve_bytes_composites_alpha_onto_white_as_predict(model, saved_model, tmp_path):
    # stop 33: serve_bytes dropped the alpha channel, so a cut-out's transparent background was
    # black where training and predict read it white (0.017 apart on a real model)
    from keras_species.predict import predict

    rng = np.random.default_rng(9)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[:, :15, 3] = 0  # a transparent background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    Image.fromarray(rgba[..., [0, 3]].copy(), "LA").save(tmp_path / "grey_alpha.png")
    Image.fromarray(rgba[..., :3].copy()).quantize(8).save(tmp_path / "palette.png", transparency=2)
    # and no alpha at all: a first fix read a 16-colour palette and a 1-bit image nearly white
    Image.fromarray(rgba[..., :3].copy()).quantize(16).save(tmp_path / "pal16.png")
    Image.fromarray(rgba[..., 0] > 100).save(tmp_path / "bw.png")
    files = [tmp_path / n for n in ("cutout.png", "grey_alpha.png", "palette.png", "pal16.png", "bw.png")]
    loaded = tf.saved_model.load(str(saved_model))
    out = loaded.signatures["serve_bytes"](image_bytes=tf.constant([f.read_bytes() for f in files]))
    expected = predict(model, [str(f) for f in files]).probabilities
    assert np.abs(out["probabilities"].numpy() - expected).max() <= 1e-5


def test_saved_model_metadata_and_labels_json(saved_model):
    loaded = tf.saved_model.load(str(saved_model))
    meta = loaded.signatures["metadata"]()
    assert [c.decode() for c in meta["class_names"].numpy()] == NAMES
    assert meta["image_size"].numpy().tolist() == [SIZE, SIZE]
    assert not bool(meta["multilabel"].numpy())
    assert json.loads((saved_model / "labels.json").read_text())["class_names"] == NAMES


def test_saved_model_multilabel_outputs_thresholds(tmp_path, images):
    ml = _tiny_model("sigmoid", thresholds=[0.2, 0.5, 0.9], seed=3)
    path = export_model(ml, tmp_path / "ml", format="saved_model")
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serve"](images=tf.constant(images["same"]))
    expected = _keras_probs(ml, images["same"])
    assert np.abs(out["probabilities"].numpy() - expected).max() <= 1e-5
    np.testing.assert_allclose(out["thresholds"].numpy(), [0.2, 0.5, 0.9])
    np.testing.assert_array_equal(out["predicted"].numpy(), expected >= np.array([0.2, 0.5, 0.9]))
    assert bool(loaded.signatures["metadata"]()["multilabel"].numpy())


def _run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    interp = tf.lite.Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    assert list(inp["shape"]) == [1, SIZE, SIZE, 3] and inp["dtype"] == np.float32
    interp.allocate_tensors()
    out_index = interp.get_output_details()[0]["index"]
    rows = []
    for img in np.asarray(x, np.float32):
        interp.set_tensor(inp["index"], img[None])
        interp.invoke()
        rows.append(interp.get_tensor(out_index)[0].copy())
    return np.stack(rows)


@pytest.mark.parametrize("quantize", [None, "float16", "int8", "int8_full"])
def test_tflite_parity(model, images, tmp_path, quantize):
    kw = {"quantize": "int8", "representative_data": images["folder"]} if quantize == "int8_full" \
        else {"quantize": quantize}
    path = export_model(model, tmp_path / f"tiny_{quantize}.tflite", format="tflite", **kw)
    assert json.loads((tmp_path / f"tiny_{quantize}.labels.json").read_text())["class_names"] == NAMES
    x = np.concatenate([images["same"], np.stack([_pipeline_resize(i) for i in images["big"]])])
    got = _run_tflite(path, x)
    diff = float(np.abs(got - _keras_probs(model, x)).max())
    print(f"TFLite {quantize or 'float32'}: max abs diff {diff:.2e}, {path.stat().st_size} bytes")
    assert diff <= TOLERANCE[quantize], diff


def test_a_tflite_export_whose_label_map_fails_leaves_neither_file(model, tmp_path, monkeypatch):
    # the model landed first, then the label map failed: a new .tflite beside no label map (or an
    # earlier export's)
    from keras_species.models.labels import LabelMap

    def broken(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LabelMap, "write_json", broken)
    with pytest.raises(OSError):
        export_model(model, tmp_path / "m.tflite", format="tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_tflite_int8_with_array_representative_data(model, images, tmp_path, capfd):
    path = export_model(model, tmp_path / "a.tflite", format="tflite", quantize="int8",
                        representative_data=images["big"])
    assert "fully_quantize" not in capfd.readouterr().err  # the C++ quantizer's settings line
    assert np.abs(_run_tflite(path, images["same"][:2]) - _keras_probs(model, images["same"][:2])).max() \
        <= TOLERANCE["int8_full"]


def test_keras_export_reloads_in_fresh_process(model, images, tmp_path):
    path = export_model(model, tmp_path / "out" / "tiny.keras", format="keras")
    np.save(tmp_path / "x.npy", images["same"].astype(np.float32))
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import keras
        import keras_species
        m = keras.saving.load_model({str(path)!r}, safe_mode=True)
        np.save({str(tmp_path / "y.npy")!r}, np.asarray(m(np.load({str(tmp_path / "x.npy")!r}))))
        print(json.dumps(m.get_layer("label").class_names))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == NAMES
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _keras_probs(model, images["same"]),
                               atol=1e-6)


def _weight_groups(path: Path) -> set[str]:
    """Top-level groups of a ``.keras`` file's weights (``layers``, ``optimizer``...)."""
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f, h5py.File(f, "r") as h5:
        return set(h5.keys())


def test_a_keras_export_ships_no_optimizer_state(images, tmp_path):
    # a trained run's best.keras holds Adam's state (2x the weights): not for shipping
    trained = _tiny_model(seed=3)
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trained.fit(images["same"].astype("float32"), np.arange(8) % 3, epochs=1, verbose=0)
    trained.save(tmp_path / "best.keras")
    assert "optimizer" in _weight_groups(tmp_path / "best.keras")
    expected = _keras_probs(trained, images["same"])
    for source, name in ((tmp_path / "best.keras", "from_file"), (trained, "in_memory")):
        out = export_model(source, tmp_path / f"{name}.keras", format="keras")
        assert "optimizer" not in _weight_groups(out), name
        assert out.stat().st_size < (tmp_path / "best.keras").stat().st_size
        again = keras.saving.load_model(out, safe_mode=True)
        np.testing.assert_allclose(_keras_probs(again, images["same"]), expected, atol=1e-6)
    assert trained.optimizer is not None  # the caller's model is left compiled


def test_export_from_a_run_folder_and_cli(model, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    assert cli.main(["export", str(run), "--format", "tflite", "--out",
                     str(tmp_path / "cli" / "m.tflite")]) == 0
    assert (tmp_path / "cli" / "m.tflite").stat().st_size > 0
    assert (tmp_path / "cli" / "m.labels.json").is_file()  # its own: a second model keeps its own
    assert cli.main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_cli_prints_an_error_no_subcommand_caught_without_a_traceback(model, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    table = tmp_path / "calibration.csv"  # no path column: refused by the data readers (ManifestError)
    table.write_text("foo,bar\n1,2\n")
    code = cli.main(["export", str(run), "--format", "tflite", "--quantize", "int8", "--out",
                     str(tmp_path / "m.tflite"), "--representative", str(table)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"keras-species export: {table}: no path column found")
    assert not (tmp_path / "m.tflite").exists()


def test_representative_images_are_checked_before_the_model_is_read(model, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("the model was read"))
    nowhere, out = tmp_path / "nowhere", tmp_path / "m.tflite"
    fix = "give the images to calibrate the int8 model on (a folder, a CSV or a .txt list of images)"
    code = cli.main(["export", str(run), "--quantize", "int8", "--out", str(out),
                     "--representative", str(nowhere)])
    assert code == 2
    assert capsys.readouterr().err == f"keras-species export: --representative {nowhere} does not exist: {fix}\n"
    with pytest.raises(ExportError, match=re.escape(f"representative_data='{nowhere}' does not exist: {fix}")):
        export_model(run, out, quantize="int8", representative_data=nowhere)
    # without --quantize int8 the images would not be used
    (tmp_path / "val").mkdir()
    assert cli.main(["export", str(run), "--out", str(out), "--representative", str(tmp_path / "val")]) == 2
    assert capsys.readouterr().err == (
        "keras-species export: --representative is used by --quantize int8 only (full-integer "
        "quantization): add --quantize int8, or leave --representative out\n")
    with pytest.raises(ExportError, match=re.escape(
            "representative_data is used by quantize='int8' only (full-integer quantization): add "
            "quantize='int8', or leave representative_data out")):
        export_model(run, out, quantize="float16", representative_data=tmp_path / "val")
    assert not out.exists()


@pytest.mark.parametrize("broken", ["empty", "garbage", "truncated", "zip without config",
                                    "no weights", "bad config", "cut weights"])
def test_a_broken_keras_file_is_named_with_what_is_wrong(model, tmp_path, broken, capsys):
    # the last three (stop 33) failed with a traceback (ValueError, JSONDecodeError) or with
    # h5py's "truncated file: eof = ..." naming no file
    import zipfile

    good = tmp_path / "good.keras"
    model.save(good)
    path = tmp_path / f"{broken.replace(' ', '_')}.keras"
    if broken == "zip without config":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "not a model")
    elif broken in ("no weights", "bad config", "cut weights"):
        with zipfile.ZipFile(good) as z, zipfile.ZipFile(path, "w") as out:
            for name in z.namelist():
                data = z.read(name)
                if name == "model.weights.h5" and broken != "cut weights":
                    if broken == "no weights":
                        continue
                elif name == "model.weights.h5":
                    data = data[: len(data) // 2]
                if name == "config.json" and broken == "bad config":
                    data = data[:20]
                out.writestr(name, data)
    else:
        data = {"empty": b"", "garbage": b"not a model",
                "truncated": good.read_bytes()[: good.stat().st_size // 2]}[broken]
        path.write_bytes(data)
    expected = {"empty": "is empty (0 bytes)", "garbage": "is not a zip archive",
                "truncated": "is not a zip archive", "zip without config": "holds no config.json",
                "no weights": "holds no weights (no model.weights.h5 in the archive)",
                "bad config": "is damaged: its config.json cannot be read",
                "cut weights": "is damaged, its weights cannot be read"}
    with pytest.raises(ExportError, match=re.escape(expected[broken])):
        load_keras_model(path)
    # Keras alone says "File not found" for such files; the command names the file instead
    assert cli.main(["export", str(path), "--out", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected[broken] in err and "Traceback" not in err
    assert load_keras_model(good).name == model.name  # a good archive passes the check


def test_a_model_named_in_upper_case_is_checked_as_its_kind_and_named(model, tmp_path, capsys,
                                                                      monkeypatch):
    """M.KERAS skipped the archive check that M.keras gets (Keras then said "File format not
    supported"), and a good archive under that name, which Keras does not recognise, was left to
    Keras's message: both are named now, by export and predict alike, before Keras reads them."""
    good = tmp_path / "good.keras"
    model.save(good)
    garbage = tmp_path / "garbage.KERAS"
    garbage.write_bytes(b"not a model")
    upper = tmp_path / "M.KERAS"
    upper.write_bytes(good.read_bytes())
    if (tmp_path / "M.keras").exists():  # a file system blind to case finds it as M.keras
        pytest.skip("the file system does not tell M.KERAS from M.keras")
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("a model was read"))
    rename = "Keras reads a .keras archive only under a name ending in .keras in lower case: rename it M.keras"
    photos = tmp_path / "photos"
    photos.mkdir()
    for path, expected in ((garbage, "is not a zip archive (11 bytes; truncated?)"), (upper, rename)):
        with pytest.raises(ExportError, match=re.escape(expected)):
            load_keras_model(path)
        for command in (["export", str(path), "--out", str(tmp_path / "m.tflite")],
                        ["predict", str(path), str(photos), "--out", str(tmp_path / "p.csv")]):
            assert cli.main(command) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"keras-species {command[0]}: model {path}") and expected in err, err
            assert err.count("\n") == 1
    folder = tmp_path / "exports"  # a folder holding one names it as a model it holds
    folder.mkdir()
    (folder / "Fish.KERAS").write_bytes(b"")
    with pytest.raises(ExportError, match=r"It holds Fish.KERAS: pass one of them"):
        load_keras_model(folder)
    assert not (tmp_path / "m.tflite").exists() and not (tmp_path / "p.csv").exists()


def test_bad_options_raise(model, tmp_path):
    with pytest.raises(ExportError, match="format"):
        export_model(model, tmp_path / "m", format="onnx")
    with pytest.raises(ExportError, match="tflite"):
        export_model(model, tmp_path / "m", format="saved_model", quantize="int8")
    with pytest.raises(ExportError, match=".keras"):
        export_model(model, tmp_path / "m.h5", format="keras")
    with pytest.raises(ExportError, match=".tflite"):
        export_model(model, tmp_path / "m.bin", format="tflite")
    with pytest.raises(ExportError, match="representative_data"):
        export_model(model, tmp_path / "m.tflite", format="tflite", representative_data=[])
    with pytest.raises(ExportError, match=re.escape("quantize='int4'; choose one of float16, int8 or None")):
        export_model(model, tmp_path / "m.tflite", quantize="int4")


def test_an_out_that_keras_would_not_save_is_named_as_given(model, tmp_path, capsys, monkeypatch):
    """Keras saves a .keras archive under no other name (``keras.saving.save_model`` checks
    ``endswith(".keras")``, upper case refused): such an --out is refused before any work, named
    as the caller gave it."""
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        keras.saving.save_model(model, tmp_path / "k.KERAS")
    model_file = tmp_path / "tiny.keras"
    model.save(model_file)
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("the model was read"))
    cases = {  # (--format, --out): the message after the option
        (None, "M.KERAS"): ("a Keras archive must end in .keras in lower case", "M.keras"),
        ("keras", "m.h5"): ("a Keras archive must end in .keras", "m.keras"),
        ("tflite", "m.bin"): ("a TFLite file must end in .tflite", "m.tflite"),
        (None, "m.TFLITE"): ("a TFLite file must end in .tflite in lower case", "m.tflite"),
    }
    for (format, name), (what, fix) in cases.items():
        out = tmp_path / name
        options = ["--format", format] if format else []
        assert cli.main(["export", str(model_file), *options, "--out", str(out)]) == 2
        assert capsys.readouterr().err == (
            f"keras-species export: --out {out}: {what}: give --out {tmp_path / fix}\n")
        with pytest.raises(ExportError) as caught:
            export_model(model_file, out, format=format)
        assert str(caught.value) == f"out='{out}': {what}: give out='{tmp_path / fix}'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.keras"]  # nothing written


def test_an_image_size_the_model_does_not_take_is_named_as_given(model, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    out = tmp_path / "m.tflite"
    assert cli.main(["export", str(run), "--out", str(out), "--image-size", "24"]) == 2
    assert capsys.readouterr().err == (f"keras-species export: --image-size 24 but model 'tiny' takes "
                                       f"({SIZE}, {SIZE}): leave --image-size out\n")
    with pytest.raises(ExportError, match=re.escape(
            f"image_size=(24, 20) but model 'tiny' takes ({SIZE}, {SIZE}): leave image_size out")):
        export_model(model, out, image_size=(24, 20))
    inp = keras.Input((None, None, 3))  # any size: the size to resize to is needed
    x = keras.layers.GlobalAveragePooling2D()(inp)
    free = keras.Model(inp, ClassifierOutput("softmax", NAMES, name="label")(
        keras.layers.Dense(3)(x)), name="free")
    free.save(tmp_path / "free.keras")
    assert cli.main(["export", str(tmp_path / "free.keras"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.endswith(": pass --image-size PX, the size to resize to\n")
    with pytest.raises(ExportError, match=r"takes images of any size .*: pass image_size=, the size"):
        export_model(free, out)
    assert not out.exists()
    # a .keras export checks the size too (it was ignored without a word): the model's own
    # size passes, another is refused, and a model of any size keeps none in a .keras file
    assert cli.main(["export", str(run), "--out", str(tmp_path / "m.keras"), "--image-size", "24"]) == 2
    assert capsys.readouterr().err.endswith(f"takes ({SIZE}, {SIZE}): leave --image-size out\n")
    assert export_model(model, tmp_path / "same.keras", image_size=SIZE).is_file()
    assert cli.main(["export", str(tmp_path / "free.keras"), "--out", str(tmp_path / "f.keras"),
                     "--image-size", "24"]) == 2
    assert "a .keras file keeps no image size" in capsys.readouterr().err
    assert not (tmp_path / "m.keras").exists() and not (tmp_path / "f.keras").exists()


def test_a_damaged_saved_model_is_named_in_one_line(saved_model, tmp_path, capsys):
    # an emptied variables file gave a 37-line traceback (IndexError: Read less bytes than
    # requested), a missing variables/ folder TensorFlow's advice to load on another device
    import shutil

    from keras_species.predict import open_predictor

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(image)
    cases = {}
    for name in ("emptied", "no_variables", "cut_pb", "cut_data"):
        copy = tmp_path / name
        shutil.copytree(saved_model, copy)
        cases[name] = copy
    data = next((cases["emptied"] / "variables").glob("variables.data-*"))
    data.write_bytes(b"")
    shutil.rmtree(cases["no_variables"] / "variables")
    pb = cases["cut_pb"] / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    data = next((cases["cut_data"] / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    for name, copy in cases.items():
        with pytest.raises(ExportError, match=rf"SavedModel {re.escape(str(copy))} is "
                                              r"(incomplete|damaged).*copy or export it again"):
            open_predictor(copy)
        assert cli.main(["predict", str(copy), str(image), "--out", str(tmp_path / "p.csv")]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "device" not in err, (name, err)
    assert open_predictor(saved_model).label_map.class_names == NAMES  # the whole one loads
    # a SavedModel without variables (a TF1 graph: variables/ is empty) is whole: it loads
    tf1 = tmp_path / "tf1"
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="x")
        y = tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]))
        with tf.compat.v1.Session() as sess:
            builder = tf.compat.v1.saved_model.Builder(str(tf1))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"probabilities": y})
            builder.add_meta_graph_and_variables(sess, ["serve"], {"serving_default": signature})
            builder.save()
    assert not any((tf1 / "variables").glob("variables.data-*"))
    assert open_predictor(tf1, labels=NAMES).label_map.class_names == NAMES


def test_model_without_label_map_needs_labels(tmp_path, images):
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    plain = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="label")(x))
    with pytest.raises(LabelMapError, match="labels.json") as refused:
        export_model(plain, tmp_path / "p.tflite", format="tflite")
    # export's own advice (it gave predict's: "put a labels.json next to the model", which
    # export does not read)
    assert "next to the model" not in str(refused.value) and "labels=" in str(refused.value)
    # a .keras export writes it as it is (an encoder, a model of another library), saying that
    # predict will need its class names: it said nothing, and predict refused the file
    with pytest.warns(UserWarning, match=r"carries no label map .*predict will need its class "
                                         r"names \(labels= there\)"):
        assert export_model(plain, tmp_path / "p0.keras", format="keras").is_file()
    two = keras.Model(inp, {"aux": keras.layers.Dense(4)(x), "label": plain.output})
    with pytest.warns(UserWarning, match="has 2 outputs: with its class names the .keras file "
                                         "keeps the classifier output alone"):
        export_model(two, tmp_path / "two.keras", format="keras", labels=NAMES)
    # two outputs, none named label: with class names refused with what to do (no warning
    # promising a file first), without them written with a warning that predict cannot read it
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(x)
    unnamed = keras.Model(inp, {"aux": keras.layers.Dense(4, name="aux")(x), "cls": cls})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ExportError, match="none named 'label': name the layer of its class output 'label'"):
            export_model(unnamed, tmp_path / "u.keras", format="keras", labels=NAMES)
    assert not (tmp_path / "u.keras").exists()
    with pytest.warns(UserWarning, match="none of its outputs .* is named 'label'.*predict cannot read it"):
        export_model(unnamed, tmp_path / "u.keras", format="keras")
    from keras_species.predict import open_predictor

    for labels in (None, NAMES):  # it asked for --labels, then refused them
        with pytest.raises(ExportError, match="none named 'label': name the layer of its class output"):
            open_predictor(tmp_path / "u.keras", labels=labels)
    # two outputs, the class one named label but not first: the label map is checked against it
    # (it was checked against the first: "has 5 outputs but the label map 3 class names")
    aux_first = keras.Model(inp, [keras.layers.Dense(5, name="aux5")(x),
                                  keras.layers.Dense(3, activation="softmax", name="label")(x)])
    aux_first.save(tmp_path / "list.keras")
    assert open_predictor(tmp_path / "list.keras", labels=NAMES).label_map.class_names == NAMES
    path = export_model(plain, tmp_path / "p.keras", format="keras", labels=NAMES)
    reloaded = keras.saving.load_model(path)
    assert reloaded.get_layer("label").class_names == NAMES
    np.testing.assert_allclose(_keras_probs(reloaded, images["same"]),
                               _keras_probs(plain, images["same"]), atol=1e-6)


@pytest.mark.parametrize("fmt", ["keras", "saved_model"])
def test_labels_are_refused_for_a_model_that_carries_its_own(tmp_path, fmt):
    # export replaced the model's own map without a word: a multi-label model with thresholds
    # came out single-label (and a .keras got a second label layer wrapped around the first)
    ml = _tiny_model("sigmoid", thresholds=[0.3, 0.5, 0.7])
    out = tmp_path / ("m.keras" if fmt == "keras" else "sm")
    with pytest.raises(LabelMapError, match=r"carries its own label map \(3 classes: .*labels"):
        export_model(ml, out, format=fmt, labels=["a", "b", "c"])
    assert not out.exists()


def test_a_compiled_model_of_named_outputs_keeps_them_in_its_keras_file(tmp_path):
    # the optimizer-free copy was built from model.outputs (a flat list): the reloaded
    # autoencoder predicted a list, label first, where the model predicted a dict
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    outputs = {"reconstruction": keras.layers.Dense(4, name="reconstruction")(x),
               "label": ClassifierOutput("softmax", NAMES, name="label")(keras.layers.Dense(3)(x))}
    two = keras.Model(inp, outputs)
    two.compile(optimizer="adam", loss={"reconstruction": "mse", "label": "categorical_crossentropy"})
    path = export_model(two, tmp_path / "two.keras", format="keras")
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 3)).astype("float32") * 255
    reloaded = keras.saving.load_model(path, safe_mode=True).predict(x, verbose=0)
    assert isinstance(reloaded, dict) and set(reloaded) == {"reconstruction", "label"}
    np.testing.assert_allclose(reloaded["label"], two.predict(x, verbose=0)["label"], atol=1e-6)


def test_a_compiled_sequential_model_without_an_input_layer_exports(tmp_path):
    # the named-outputs fix read model.input, which a Sequential model built without an Input
    # has not: AttributeError
    seq = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3),
                            ClassifierOutput("softmax", NAMES, name="label")])  # its class names
    seq.build((None, SIZE, SIZE, 3))
    seq.compile(optimizer="adam", loss="categorical_crossentropy")
    path = export_model(seq, tmp_path / "seq.keras", format="keras")
    x = np.random.default_rng(1).random((2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(keras.saving.load_model(path).predict(x, verbose=0),
                               seq.predict(x, verbose=0), atol=1e-6)


def test_a_damaged_labels_json_is_one_line_and_nothing_is_written(model, tmp_path, capsys):
    labels = tmp_path / "labels.json"
    labels.write_bytes(b'{"class_names": ["cod", "eel", "r')  # cut short
    out = tmp_path / "out" / "m.keras"
    assert cli.main(["export", str(_saved(model, tmp_path)), "--out", str(out), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-species export: {labels} cannot be read as a label map (not valid "
                          "JSON (Unterminated string starting at line 1 column 32)): write")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_labels_json_and_a_folder_that_is_no_model_are_named_before_loading(
        model, tmp_path, capsys, monkeypatch):
    # before: a missing --labels file was found once the model was loaded ("cannot be read as a
    # label map (does not exist): write {...}"), and a folder given as MODEL was "neither a
    # SavedModel folder nor a run folder", although export takes no SavedModel
    model_file = _saved(model, tmp_path)
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("the model was read"))
    out, nolabels = tmp_path / "m.tflite", tmp_path / "nolabels.json"
    assert cli.main(["export", str(model_file), "--out", str(out), "--labels", str(nolabels)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species export: --labels {nolabels} does not exist: give the labels.json that holds "
        "the model's class names, or leave --labels out for a model that carries its label map\n")
    with pytest.raises(ExportError, match=re.escape(f"labels='{nolabels}' does not exist: ")):
        export_model(model_file, out, labels=nolabels)
    photos = tmp_path / "photos"
    photos.mkdir()
    assert cli.main(["export", str(photos), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species export: {photos} is not a run folder (no best.keras): pass a .keras file or "
        "a run folder (its best.keras)\n")
    assert not out.exists()


def _saved(model: keras.Model, folder: Path) -> Path:
    path = folder / "tiny.keras"
    if not path.exists():
        model.save(path)
    return path


def test_multi_output_model_exports_its_label_output(tmp_path, images):
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(inp)
    recon = keras.layers.Dense(4, name="reconstruction")(x)
    label = ClassifierOutput("softmax", NAMES, name="label")(keras.layers.Dense(3)(x))
    two = keras.Model(inp, {"reconstruction": recon, "label": label})
    assert label_output_model(two).output_shape == (None, 3)
    path = export_model(two, tmp_path / "two", format="saved_model")
    out = tf.saved_model.load(str(path)).signatures["serve"](images=tf.constant(images["same"]))
    expected = np.asarray(two(images["same"].astype(np.float32))["label"])
    assert np.abs(out["probabilities"].numpy() - expected).max() <= 1e-5


def test_a_file_that_is_not_a_keras_model_is_named_with_what_to_pass(model, saved_model, tmp_path, capsys):
    """Keras answers each of these with a traceback ("File format not supported", "No model
    config found", an h5py OSError naming no file); export names the file and what to pass."""
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    (run / "config.json").write_text("{}")
    model.save_weights(tmp_path / "tiny.weights.h5")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    (tmp_path / "not.h5").write_bytes(b"garbage")
    (tmp_path / "model").write_bytes(b"x")
    cases = {
        export_model(model, tmp_path / "fish.tflite", format="tflite"):
            "is a TFLite model, which keras-species does not read: pass the .keras file or the "
            "run folder it was exported from",
        tmp_path / "fish.labels.json": "is a .json file, not a Keras model: pass a .keras file or a run folder",
        tmp_path / "photo.png": "is an image, not a model: pass a .keras file or a run folder",
        tmp_path / "model": "is a file without an extension, not a Keras model",
        tmp_path / "tiny.weights.h5": "holds weights only (no model config): pass the .keras file saved with it",
        tmp_path / "not.h5": "is not an HDF5 file (7 bytes; truncated?)",
        run / "config.json": f"is a file inside the run folder {run}: pass the run folder {run} itself",
        saved_model / "saved_model.pb": f"is a file inside the SavedModel folder {saved_model}: export "
                                        "works from the Keras model",
    }
    for path, expected in cases.items():
        with pytest.raises(ExportError, match=re.escape(f"model {path} {expected}")):
            load_keras_model(path)
        capsys.readouterr()
        assert cli.main(["export", str(path), "--format", "tflite", "--out", str(tmp_path / "x.tflite")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"keras-species export: model {path} ") and expected in err, err
        assert "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(ExportError, match=rf"variables is not a run folder .* inside the SavedModel folder {saved_model}"):
        load_keras_model(saved_model / "variables")
    model.save(tmp_path / "legacy.h5")  # a legacy Keras .h5 model still loads
    assert load_keras_model(tmp_path / "legacy.h5").get_layer("label").class_names == NAMES


def test_saved_model_out_is_new_empty_or_replaced_whole_with_overwrite(model, tmp_path, capsys, monkeypatch):
    model_file = tmp_path / "tiny.keras"
    model.save(model_file)  # out is checked before the model is read:
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("the model was read"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileExistsError, match=r"afile is a file, and a folder is written there: "
                                              r"give a folder name, e.g. .*afile_savedmodel"):
        export_model(model_file, tmp_path / "afile", format="saved_model")  # Python: no --out
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        export_model(model_file, tmp_path / "afile" / "sm", format="saved_model")
    with pytest.raises(ExportError, match=r"format='saved_model' contradicts out='.*fish.keras' \(a .keras name "
                                          r"means format='keras'\): leave format out, or give a folder name, "
                                          r"e.g. out='.*fish'"):
        export_model(model_file, tmp_path / "fish.keras", format="saved_model")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    for overwrite in (False, True):  # --overwrite never deletes what is not a SavedModel
        with pytest.raises(ExportError, match=r"other is a folder holding other files \(notes.txt\), "
                                              r"not a SavedModel: .* \(overwrite=True replaces only a SavedModel\)"):
            export_model(model_file, other, format="saved_model", overwrite=overwrite)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    monkeypatch.undo()
    model_file.unlink()

    (tmp_path / "empty").mkdir()
    sm = export_model(model, tmp_path / "empty", format="saved_model")  # an empty folder is taken
    (sm / "stale.txt").write_text("from an earlier export")
    with pytest.raises(ExportError, match=r"empty holds a SavedModel already: pass overwrite=True to replace "
                                          r"it \(the new one takes its place when complete\), or give another out$"):
        export_model(model, sm, format="saved_model")
    multilabel = _tiny_model("sigmoid", thresholds=[0.2, 0.5, 0.8], seed=3)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(tf.saved_model, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            export_model(multilabel, sm, format="saved_model", overwrite=True)
    assert (sm / "stale.txt").is_file()  # a failed export leaves the earlier one as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty", "other"]  # no temporary
    capsys.readouterr()
    multilabel.save(tmp_path / "ml.keras")
    assert cli.main(["export", str(tmp_path / "ml.keras"), "--format", "saved_model", "--out", str(sm)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species export: {sm} (--out) holds a SavedModel already: add --overwrite to replace it "
        "(the new one takes its place when complete), or give another --out\n")
    (other / "more.txt").write_text("keep")
    assert cli.main(["export", str(tmp_path / "ml.keras"), "--out", str(other), "--overwrite"]) == 2
    assert capsys.readouterr().err.startswith(
        f"keras-species export: {other} (--out) is a folder holding other files (more.txt, notes.txt), "
        "not a SavedModel: give a new or empty folder for the SavedModel (--overwrite replaces only")
    assert cli.main(["export", str(tmp_path / "ml.keras"), "--format", "saved_model", "--out", str(sm),
                     "--overwrite"]) == 0
    assert not (sm / "stale.txt").exists()  # replaced whole, not mixed
    meta = tf.saved_model.load(str(sm)).signatures["metadata"]()
    assert bool(meta["multilabel"]) and json.loads((sm / "labels.json").read_text())["multilabel"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty", "ml.keras", "other"]


def test_file_outputs_are_checked_first_and_replaced_whole(model, tmp_path):
    (tmp_path / "d.tflite").mkdir()
    with pytest.raises(IsADirectoryError, match=r"d.tflite is a folder: give a file name, e.g. "
                                                r".*d.tflite/model.tflite"):
        export_model(model, tmp_path / "d.tflite", format="tflite")  # before the conversion
    out = tmp_path / "m.keras"
    out.write_text("an earlier file")
    export_model(model, out, format="keras")
    assert load_keras_model(out).name == model.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tflite", "m.keras"]  # no temporary left


def test_a_final_write_that_fails_names_out_and_leaves_no_temporary(model, tmp_path, capsys, monkeypatch):
    import keras_species.atomic as atomic_module
    import keras_species.export as export_module

    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    (tmp_path / "afile").write_text("x")  # a path under a regular file: named before any work
    assert cli.main(["export", str(run), "--out", str(tmp_path / "afile" / "m.tflite")]) == 2
    assert "afile/m.tflite (--out) cannot be written: " in capsys.readouterr().err
    out = tmp_path / "exports" / "m.tflite"
    commit = atomic_module.commit

    def commit_onto_a_folder(tmp, path, *flag):
        if Path(path) == out:  # the model's final os.replace fails, as in a folder that cannot be written
            Path(path).mkdir()
        commit(tmp, path, *flag)

    monkeypatch.setattr(export_module, "_convert", lambda *args, **kwargs: b"tflite bytes")
    with monkeypatch.context() as m:
        m.setattr(atomic_module, "commit", commit_onto_a_folder)
        assert cli.main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-species export: {out} (--out) cannot be written (Is a directory): "
                          "give another --out") and "Traceback" not in err
    assert ".tmp-" not in err and ".m.tmp" not in err
    # no temporary left beside it, and no label map without its model
    assert [p.name for p in out.parent.iterdir()] == ["m.tflite"]
    if Path("/proc/self").is_dir():  # a folder where no file can be made (even by root)
        assert cli.main(["export", str(run), "--out", "/proc/m.tflite"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("keras-species export: /proc/m.tflite (--out) cannot be written (")
        assert ".tmp-" not in err


def test_the_format_follows_out_when_not_given(model, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    for out in ("m.keras", "m.tflite", "sm"):
        assert cli.main(["export", str(run), "--out", str(tmp_path / out)]) == 0, capsys.readouterr().err
    assert load_keras_model(tmp_path / "m.keras").get_layer("label").class_names == NAMES
    assert _run_tflite(tmp_path / "m.tflite", np.zeros((1, SIZE, SIZE, 3))).shape == (1, 3)
    assert (tmp_path / "m.labels.json").is_file()
    assert "metadata" in tf.saved_model.load(str(tmp_path / "sm")).signatures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.labels.json", "m.tflite", "run", "sm"]
    with pytest.raises(ExportError, match=r"quantize='int8' applies to format='tflite' only \(out='.*sm2' means "
                                          r"format='saved_model'; give a .tflite file\)"):
        export_model(model, tmp_path / "sm2", quantize="int8")
    assert cli.main(["export", str(tmp_path / "run"), "--quantize", "int8", "--out", str(tmp_path / "sm2")]) == 2
    assert capsys.readouterr().err == (
        f"keras-species export: --quantize int8 applies to --format tflite only (--out {tmp_path / 'sm2'} "
        "means --format saved_model; give a .tflite file)\n")
    assert cli.main(["export", str(tmp_path / "run"), "--quantize", "float16", "--format", "keras",
                     "--out", str(tmp_path / "m2.keras")]) == 2
    assert capsys.readouterr().err == ("keras-species export: --quantize float16 applies to --format "
                                       "tflite only\n")


def test_a_format_that_contradicts_out_is_refused_before_any_work(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("the model was read"))
    model_file = tmp_path / "tiny.keras"
    model_file.write_bytes(b"never read")
    (tmp_path / "exports").mkdir()
    cases = {  # (--format, --out): (the command line's message, export_model's)
        ("keras", "m.tflite"): (
            "--format keras contradicts --out {t}/m.tflite (a .tflite name means --format tflite): "
            "leave --format out, or give --out {t}/m.keras",
            "format='keras' contradicts out='{t}/m.tflite' (a .tflite name means format='tflite'): "
            "leave format out, or give out='{t}/m.keras'"),
        ("tflite", "m.keras"): (
            "--format tflite contradicts --out {t}/m.keras (a .keras name means --format keras): "
            "leave --format out, or give --out {t}/m.tflite",
            "format='tflite' contradicts out='{t}/m.keras' (a .keras name means format='keras'): "
            "leave format out, or give out='{t}/m.tflite'"),
        ("saved_model", "m.tflite"): (
            "--format saved_model contradicts --out {t}/m.tflite (a .tflite name means --format tflite): "
            "leave --format out, or give a folder name, e.g. --out {t}/m",
            "format='saved_model' contradicts out='{t}/m.tflite' (a .tflite name means format='tflite'): "
            "leave format out, or give a folder name, e.g. out='{t}/m'"),
        ("tflite", "fish"): (
            "--format tflite writes a file, but --out {t}/fish is a folder name (no suffix): give --out "
            "{t}/fish.tflite, or leave --format out to write a SavedModel folder",
            "format='tflite' writes a file, but out='{t}/fish' is a folder name (no suffix): give "
            "out='{t}/fish.tflite', or leave format out to write a SavedModel folder"),
        ("keras", "exports"): (
            "--format keras writes a file, but --out {t}/exports is a folder: give a file name, e.g. "
            "--out {t}/exports/model.keras",
            "format='keras' writes a file, but out='{t}/exports' is a folder: give a file name, e.g. "
            "out='{t}/exports/model.keras'"),
        (None, "m.h5"): (
            "--out {t}/m.h5 ends in .h5, which export does not write: give a .keras or .tflite file, "
            "or a folder for a SavedModel (e.g. {t}/m)",
            "out='{t}/m.h5' ends in .h5, which export does not write: give a .keras or .tflite file, "
            "or a folder for a SavedModel (e.g. {t}/m)"),
    }
    for (format, out), (expected, in_python) in cases.items():
        expected, in_python = expected.format(t=tmp_path), in_python.format(t=tmp_path)
        with pytest.raises(ExportError) as caught:  # named before the model, too
            export_model(tmp_path / "missing.keras", tmp_path / out, format=format)
        assert str(caught.value) == in_python
        options = ["--format", format] if format else []
        assert cli.main(["export", str(model_file), *options, "--out", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err
        assert err == f"keras-species export: {expected}\n", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "tiny.keras"]  # nothing written
    assert not any((tmp_path / "exports").iterdir())


def test_a_run_folder_without_a_keras_model_is_named_by_its_recipe(tmp_path, capsys):
    # before: "runs/feature_classifiers/f1 is neither a SavedModel folder (no saved_model.pb) nor
    # a run folder (no best.keras)", although keras-species runs lists it as a finished run.
    # predict reads a feature_classifiers run (tests/test_predict_features.py); export cannot
    # write its scikit-learn classifier as a Keras model, and names predict
    run = tmp_path / "runs" / "feature_classifiers" / "f1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"recipe": "feature_classifiers", "name": "f1"}))
    (run / "classifier.joblib").write_bytes(b"not read")
    out = tmp_path / "x.keras"
    assert cli.main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"keras-species export: {run} is a feature_classifiers run: its model is a scikit-learn "
        "classifier on backbone features (classifier.joblib), which export cannot write as a "
        f".keras, SavedModel or TFLite model. keras-species predict {run} INPUT classifies images "
        "with it;"), err
    assert "attach_head" in err and "train_dense_head" in err
    assert not out.exists()
    # predict reads the run's config.json before its classifier.joblib (a pickle): this one
    # holds no settings, and says so
    assert cli.main(["predict", str(run), str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(
        f"keras-species predict: {run / 'config.json'} lacks 'backbone', 'weights', "
        "'image_size', 'pooling' in its \"config\"")
    (run / "classifier.joblib").unlink()  # a run that has not saved its classifier (failed?)
    with pytest.raises(ExportError, match=re.escape(
            f"{run} is a feature_classifiers run: it holds no classifier.joblib (not finished, or "
            "failed?), and its model would be a scikit-learn classifier on backbone features, "
            "which export cannot write")):
        export_model(run, out)
    unfinished = tmp_path / "runs" / "scratch_cnn" / "s1"  # a run that wrote no best.keras
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text(json.dumps({"recipe": "scratch_cnn", "name": "s1"}))
    with pytest.raises(ExportError, match=re.escape(
            f"{unfinished} is a scratch_cnn run folder without a best.keras (not finished, or "
            f"failed?): keras-species runs {unfinished.parent} shows its status")):
        export_model(unfinished, out)


def test_representative_images_that_none_can_be_read_are_named_with_their_reasons(model, tmp_path, capsys):
    # before: "--representative bad holds no readable image", naming no file and no reason
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_text("nope")
    model.save(tmp_path / "m.keras")
    out = tmp_path / "m.tflite"
    assert cli.main(["export", str(tmp_path / "m.keras"), "--out", str(out), "--quantize", "int8",
                     "--representative", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species export: --representative {bad} holds no readable image (none of its 2 "
        f"file(s) can be read: {bad / 'a.jpg'}: empty file (0 bytes); {bad / 'b.png'}: not an image: "
        "the file is text starting 'nope'): give the images to calibrate the int8 model on (a "
        "folder, a CSV or a .txt list of images), or leave --representative out for dynamic-range "
        "int8\n")
    assert not out.exists()


def test_unreadable_representative_images_are_named_when_others_calibrate(model, tmp_path, images):
    # stop 30: they were left out of the calibration without a word
    folder = tmp_path / "rep"
    folder.mkdir()
    for i, img in enumerate(images["same"][:3]):
        Image.fromarray(img).save(folder / f"{i}.png")
    (folder / "z.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"1 unreadable file\(s\) left out of the calibration "
                                         r"\(.*z\.jpg: empty file \(0 bytes\)\); calibrating on 3 image\(s\)"):
        export_model(model, tmp_path / "q.tflite", format="tflite", quantize="int8",
                     representative_data=folder)


def test_tflite_export_leaves_out_the_trackable_obj_notice_only(model, tmp_path, caplog):
    # every --out m.tflite printed "WARNING:absl:Please consider providing the trackable_obj
    # argument in the from_concrete_functions..." (the conversion path is chosen on purpose)
    import logging

    from keras_species.export import TRACKABLE_OBJ_NOTICE, _without_log_message

    with caplog.at_level(logging.WARNING):
        export_model(model, tmp_path / "m.tflite", format="tflite")
    assert not [r for r in caplog.records if "trackable_obj" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING), _without_log_message("absl", TRACKABLE_OBJ_NOTICE):
        logging.getLogger("absl").warning(TRACKABLE_OBJ_NOTICE + ". Providing without ...")
        logging.getLogger("absl").warning("another warning")
    logging.getLogger("absl").warning(TRACKABLE_OBJ_NOTICE + " (outside the export)")
    assert [r.getMessage() for r in caplog.records] == [
        "another warning", TRACKABLE_OBJ_NOTICE + " (outside the export)"]


def test_a_model_with_augmentation_inside_exports_to_saved_model(model, images, tmp_path):
    # before: the traced functions read the random layers' seed state, which the module did not
    # track: "captures tensor ... not reachable from root" and nothing written
    from keras_species.data.augment import augment_in_model

    wrapped = augment_in_model(model, "r1", seed=0)
    path = export_model(wrapped, tmp_path / "aug_sm", format="saved_model")
    served = tf.saved_model.load(str(path)).signatures["serve_float"]
    got = served(images=tf.constant(images["same"], tf.float32))["probabilities"].numpy()
    np.testing.assert_allclose(got, _keras_probs(model, images["same"]), atol=1e-5)


def test_a_mixed_precision_model_exports_to_tflite_in_float32(images, tmp_path):
    # before: TFLite's converter had no float16 kernels for the model's ops (ConverterError and
    # a page of MLIR); the recipes default to mixed_float16 on a GPU
    from keras_species.export import float32_copy
    from keras_species.training.precision import precision_policy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float16 without a GPU: said, and beside the point here
        with precision_policy("float16"):
            mixed = _tiny_model()
    assert mixed.get_layer("conv1").compute_dtype == "float16"
    copy = float32_copy(mixed)
    assert copy.get_layer("conv1").compute_dtype == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), mixed.get_weights()))
    path = export_model(mixed, tmp_path / "mixed.tflite", format="tflite")
    x = images["same"]
    np.testing.assert_allclose(_run_tflite(path, x), _keras_probs(copy, x), atol=1e-5)
    np.testing.assert_allclose(_run_tflite(path, x), _keras_probs(mixed, x), atol=2e-2)
    plain = _tiny_model()
    assert float32_copy(plain) is plain


@pytest.mark.parametrize("fmt, labels", [("tflite", "logits.labels.json"), ("saved_model", "sm/labels.json")])
def test_the_labels_of_an_exported_logits_model_say_probabilities(images, tmp_path, fmt, labels):
    # before: labels.json said "logits": true beside a model whose outputs are probabilities, so
    # LabelMap.probabilities applied the softmax a second time
    from keras_species.models.labels import load_labels_json

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inp))
    x = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=5.0))(x)
    logits = keras.Model(inp, ClassifierOutput("linear", NAMES, logits=True, name="label")(x))
    out = tmp_path / ("logits.tflite" if fmt == "tflite" else "sm")
    export_model(logits, out, format=fmt)
    lmap = load_labels_json(tmp_path / labels)
    assert lmap.logits is False and lmap.class_names == NAMES
    if fmt == "tflite":
        served = _run_tflite(out, images["same"])
        np.testing.assert_allclose(lmap.probabilities(served), served, atol=1e-6)


def test_a_run_that_scored_last_keras_without_it_is_refused_not_read_as_best(model, tmp_path):
    # a first version fell back to best.keras without a word when last.keras was missing or
    # metrics.json could not be read
    from keras_species.export import resolve_model_path

    run = tmp_path / "runs" / "quickstart" / "r"
    run.mkdir(parents=True)
    model.save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"recipe": "quickstart", "config": {"evaluate_model": "last"}}))
    (run / "metrics.json").write_text("{ damaged")
    with pytest.raises(ExportError, match=r"trained with --evaluate-model last, whose model \(last.keras\) "
                                          r"it does not hold \(a run from before stop 31"):
        resolve_model_path(run)
    (run / "metrics.json").unlink()  # killed while training: not finished
    with pytest.raises(ExportError, match=r"it has not finished \(no metrics.json\): --resume finishes it"):
        resolve_model_path(run)
    model.save(run / "last.keras")
    assert resolve_model_path(run) == run / "last.keras"
    (run / "config.json").write_text(json.dumps({"recipe": "quickstart", "config": {"evaluate_model": "best"}}))
    assert resolve_model_path(run) == run / "best.keras"


def test_a_feature_run_of_random_weights_is_not_suggested_as_a_model(tmp_path):
    # predict refuses such a run (its features cannot be made again), yet the refusal of the
    # folder of runs offered it as the example to pass
    import json

    from keras_species.export import _run_folders_problem

    for name, weights in (("rand", "none"), ("net", "imagenet")):
        run = tmp_path / "feature_classifiers" / name
        run.mkdir(parents=True)
        (run / "classifier.joblib").write_bytes(b"x")
        (run / "config.json").write_text(json.dumps({"recipe": "feature_classifiers",
                                                     "config": {"weights": weights}}))
    problem = _run_folders_problem(tmp_path / "feature_classifiers", feature_run=True)
    assert "e.g. " + str(tmp_path / "feature_classifiers" / "net") in problem
    assert "newest first: net, rand;" in problem and "random weights" not in problem
    # only such runs: still named, with why predict cannot use them
    import shutil

    shutil.rmtree(tmp_path / "feature_classifiers" / "net")
    problem = _run_folders_problem(tmp_path / "feature_classifiers", feature_run=True)
    assert "rand is a feature_classifiers run of a backbone with random weights, which predict cannot use" in problem


def test_folders_of_runs_name_feature_runs_as_such_and_only_them_as_random(tmp_path):
    # a quickstart run of --weights none was called "a feature_classifiers run ... which predict
    # cannot use", and a folder of finished feature runs "not trained yet, or failed?"
    import json

    from keras_species.export import _run_folders_problem

    plain = tmp_path / "quickstart" / "b1"
    plain.mkdir(parents=True)
    (plain / "best.keras").write_bytes(b"x")
    (plain / "config.json").write_text(json.dumps({"recipe": "quickstart", "config": {"weights": "none"}}))
    problem = _run_folders_problem(tmp_path / "quickstart", feature_run=True)
    assert "random weights" not in problem and "newest first: b1" in problem
    feature = tmp_path / "feature_classifiers" / "f1"
    feature.mkdir(parents=True)
    (feature / "classifier.joblib").write_bytes(b"x")
    (feature / "config.json").write_text(json.dumps({"recipe": "feature_classifiers",
                                                     "config": {"weights": "imagenet"}}))
    problem = _run_folders_problem(tmp_path / "feature_classifiers", feature_run=False)
    assert "holds feature_classifiers runs (f1)" in problem and "which export does not write" in problem


def test_a_folder_of_feature_runs_names_one_that_predict_takes(tmp_path):
    # export named the first run by name, an unfinished one or one of random weights, which
    # predict then refused
    import json

    from keras_species.export import _run_folders_problem

    folder = tmp_path / "feature_classifiers"
    for name, weights, done in (("a_rand", "none", True), ("b_new", "imagenet", False),
                                ("c_ok", "imagenet", True)):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text(json.dumps(
            {"recipe": "feature_classifiers", "config": {"weights": weights}}))
        if done:
            (folder / name / "classifier.joblib").write_bytes(b"x")
    problem = _run_folders_problem(folder, feature_run=False)
    assert f"predict {folder / 'c_ok'} INPUT" in problem
    (folder / "c_ok" / "classifier.joblib").unlink()
    problem = _run_folders_problem(folder, feature_run=False)
    assert "random weights" in problem and "INPUT" not in problem
    (folder / "a_rand" / "classifier.joblib").unlink()
    problem = _run_folders_problem(folder, feature_run=False)
    assert "none is finished" in problem and "keras-species runs" in problem
