"""Every registry entry builds, runs, saves and reloads; its measured size and blocks hold.

A fast subset runs by default; the whole registry is in the slow tier (``-m slow``).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models import get_backbone, list_backbones
from keras_species.models.classifier import backbone_of, build_classifier
from keras_species.models.freezing import flat_layers, infer_blocks
from keras_species.models.preprocessing import PREPROCESSING_NAMES

FAST = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "vgg16")
MIN_SIZE = {"xception": 71, "inception_v3": 75}
OURS = ("keras.applications download", "none in Keras: a converted local file")


def _params():
    names = [s.name for s in list_backbones()]
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def test_fast_subset_is_registered():
    names = {s.name for s in list_backbones()}
    assert set(FAST) <= names


def test_entries_are_complete():
    for spec in list_backbones():
        assert spec.preprocessing in PREPROCESSING_NAMES, spec.name
        assert spec.default_size >= 32, spec.name
        if spec.weights_origin in OURS:
            assert spec.params and spec.params > 0, spec.name


@pytest.mark.parametrize("name", _params())
def test_build_forward_save_reload(name, tmp_path):
    spec = get_backbone(name)
    size = MIN_SIZE.get(name, 32)
    model = build_classifier(name, 3, input_size=size, weights=None)
    assert [model.layers[i].name for i in range(3)] == ["image", "preprocessing", "backbone"]
    assert model.layers[-1].name == "label"
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)

    backbone = backbone_of(model)
    if spec.params is not None:  # measured once, stored in the registry
        assert backbone.count_params() == spec.params
    if spec.blocks:
        names = [layer.name for layer in flat_layers(backbone)]
        missing = [p for p in spec.blocks if not any(n.startswith(p) for n in names)]
        assert not missing, f"block prefixes naming no layer: {missing}"
        assert infer_blocks(backbone) == spec.blocks

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded(x, training=False)), y, atol=1e-5)
