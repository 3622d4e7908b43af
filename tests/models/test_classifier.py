"""Classifier layout: image → preprocessing → backbone → head → label; feature extractor."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from keras_species.models.classifier import (
    backbone_of,
    build_backbone,
    build_classifier,
    feature_extractor,
)
from keras_species.models.heads import HeadConfig


@pytest.fixture(scope="module")
def r18():
    return build_classifier(
        "resnet18", 5, input_size=(32, 48), head=HeadConfig(units=(8,)), output="sigmoid"
    )


def test_layout(r18):
    assert r18.input.name.startswith("image") or r18.layers[0].name == "image"
    assert [la.name for la in r18.layers[:3]] == ["image", "preprocessing", "backbone"]
    assert r18.layers[-1].name == "label"
    assert tuple(r18.input.shape) == (None, 32, 48, 3)
    assert tuple(r18.output.shape) == (None, 5)
    assert isinstance(backbone_of(r18), keras.Model)
    assert r18.name == "resnet18_classifier"


def test_preprocessing_is_inside_the_model(r18):
    layer = r18.get_layer("preprocessing")  # "torch" for ResNet18
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(np.asarray(layer(x))[0, 0, 0], expected, rtol=1e-5)


def test_default_input_size_is_the_entry_default():
    model = build_classifier("resnet18", 2)
    assert tuple(model.input.shape) == (None, 224, 224, 3)


def test_backbone_of_rejects_other_models():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="backbone"):
        backbone_of(keras.Model(inputs, keras.layers.Dense(1)(inputs)))


@pytest.mark.parametrize("pooling,width", [("avg", 512), ("avgmax", 1024), ("flatten", 512)])
def test_feature_extractor(pooling, width):
    model = feature_extractor("resnet18", 32, pooling=pooling)
    assert model.layers[0].name == "image" and model.layers[-1].name == "features"
    features = model(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    assert tuple(features.shape) == (2, width)


def test_build_backbone_is_named_backbone():
    assert build_backbone("resnet18", 32).name == "backbone"


def test_unknown_backbone_suggests_names():
    with pytest.raises(KeyError, match="resnet18"):
        build_classifier("resnet_18x", 2)


def test_feature_extractor_without_weights_warns_about_batchnorm_statistics(tmp_path):
    """EfficientNet-Lite0 with weights=None computes features in inference mode with BatchNorm
    layers that never saw data: near-constant features (std ~1e-12), said at once."""
    with pytest.warns(UserWarning, match="49 BatchNorm layers of the backbone have no statistics"):
        model = feature_extractor("efficientnet_lite0", 32, weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    assert float(np.std(np.asarray(model(x)))) < 1e-6  # what the warning is about
    weights = tmp_path / "vgg.weights.h5"
    build_backbone("vgg16", 32).save_weights(str(weights))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        feature_extractor("vgg16", 32, weights=str(weights))  # no BatchNorm: nothing to say


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_every_backbone_refuses_a_size_below_its_minimum_in_one_line(backbone):
    # only keras.applications' builders checked: a Lite backbone was built at 0 px and a ResNet
    # failed in Keras' words ("Computed output size would be zero or negative")
    with pytest.raises(ValueError, match=rf"{backbone} needs an input of at least 1×1 px; got 0×0"):
        build_classifier(backbone, 2, input_size=0, weights=None)


@pytest.mark.parametrize("weights", ["none", "random", "None"])
def test_efficientnet_lite_takes_the_words_for_random_weights(weights):
    # they were taken for file names: "weights file 'none' for efficientnet_lite0 does not exist"
    model = build_classifier("efficientnet_lite0", 2, input_size=32, weights=weights)
    assert model.output_shape == (None, 2)


def test_input_sizes_of_other_types_are_read_or_named():
    # "64" was read as 6×4 (refused as too small), 64.0 failed with a bare TypeError
    import tensorflow as tf

    from keras_species.models.classifier import _size
    from keras_species.models.scratch import _size as scratch_size
    from keras_species.training.features import _size as features_size

    assert _size(64.0, 224) == (64, 64) and _size(np.int64(48), 224) == (48, 48)
    # arrays and TensorShapes are pairs too (a first fix refused them)
    assert _size(np.array([64, 48]), 224) == (64, 48) and _size(tf.TensorShape([64, 48]), 224) == (64, 48)
    for size in (_size, lambda v, d: scratch_size(v, d), lambda v, d: features_size(v)):
        for bad in ("64", 64.5, (64,), (64, 64, 3), [64.5, 64], True):
            with pytest.raises(ValueError, match=r"input_size=.* must be a whole number or a \(height, width\)"):
                size(bad, 224)


def test_every_size_reading_is_one(tmp_path):
    # predict_manifest ran a model at 6×4 for "64", export and predict cut 32.5 to 32, and
    # check_input_size failed on np.int64(64) and 64.0
    from keras_species.backbone_catalog import backbone_facts, check_input_size
    from keras_species.evaluation.evaluate import _image_size
    from keras_species.predict import _fixed_size

    for size in (np.int64(64), 64.0, (64, 64, 3)):
        check_input_size(backbone_facts("resnet18"), size)
    for read in (lambda v: _image_size(None, v), lambda v: _fixed_size((None, None, 3), v, "m")):
        assert read(32.0) == (32, 32)
        for bad in ("64", 32.5, [32, 32.5]):
            with pytest.raises(ValueError, match="must be a whole number or a"):
                read(bad)
