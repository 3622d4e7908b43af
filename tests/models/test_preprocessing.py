"""Preprocessing layers agree with keras.applications' preprocess_input and serialize."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models import get_backbone
from keras_species.models.preprocessing import ReverseChannels, preprocessing_layer

X = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")


@pytest.mark.parametrize(
    "backbone,module",
    [
        ("vgg16", keras.applications.vgg16),
        ("resnet50", keras.applications.resnet50),
        ("resnet50v2", keras.applications.resnet_v2),
        ("mobilenet_v2", keras.applications.mobilenet_v2),
        ("densenet121", keras.applications.densenet),
        ("xception", keras.applications.xception),
        ("inception_v3", keras.applications.inception_v3),
    ],
)
def test_matches_keras_preprocess_input(backbone, module):
    layer = preprocessing_layer(get_backbone(backbone).preprocessing)
    expected = module.preprocess_input(X.copy())
    np.testing.assert_allclose(np.asarray(layer(X)), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "backbone", ["convnext_tiny", "efficientnet_b0", "efficientnetv2_b0", "mobilenet_v3_small"]
)
def test_backbones_with_their_own_preprocessing(backbone):
    assert get_backbone(backbone).preprocessing == "none"


def test_unit_and_tf_ranges():
    edges = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(np.asarray(preprocessing_layer("unit")(edges)).ravel(), [0, 0.5, 1])
    np.testing.assert_allclose(np.asarray(preprocessing_layer("tf")(edges)).ravel(), [-1, 0, 1])
    np.testing.assert_allclose(np.asarray(preprocessing_layer("none")(edges)), edges)


@pytest.mark.parametrize("name", ["none", "tf", "unit", "torch", "caffe"])
def test_round_trip_in_a_keras_file(name, tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, preprocessing_layer(name)(inputs))
    model.save(tmp_path / "p.keras")
    reloaded = keras.models.load_model(tmp_path / "p.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded(X)), np.asarray(model(X)), rtol=1e-6)


def test_reverse_channels_and_unknown_name():
    np.testing.assert_array_equal(np.asarray(ReverseChannels()(X)), X[..., ::-1])
    with pytest.raises(ValueError, match="caffe"):
        preprocessing_layer("bgr")
