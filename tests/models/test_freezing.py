"""set_trainable: frozen / all / last_n (layers, blocks, conv), BatchNorm kept in inference mode."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models.classifier import backbone_of, build_classifier
from keras_species.models.freezing import flat_layers, set_trainable
from keras_species.models.heads import HeadConfig


@pytest.fixture(scope="module")
def r18():
    return build_classifier("resnet18", 3, input_size=32, head=HeadConfig(units=(8,)))


@pytest.fixture(scope="module")
def vgg16():
    return build_classifier("vgg16", 3, input_size=32)


def _trainable_names(model):
    return [la.name for la in flat_layers(backbone_of(model)) if la.trainable_weights]


def _head_trainable(model):
    head = [la for la in model.layers if la.name.startswith(("head_", "label"))]
    return all(la.trainable for la in head) and any(la.trainable_weights for la in head)


def test_frozen(r18):
    summary = set_trainable(r18, "frozen")
    assert _trainable_names(r18) == []
    assert _head_trainable(r18)
    assert summary["trainable_params"] == (512 * 8 + 8) + (8 * 3 + 3)


def test_all_keeps_batchnorm_frozen(r18):
    set_trainable(r18, "all")
    layers = flat_layers(backbone_of(r18))
    bns = [la for la in layers if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and not any(la.trainable for la in bns)
    assert all(la.trainable for la in layers if isinstance(la, keras.layers.Conv2D))
    set_trainable(r18, "all", train_batchnorm=True)
    assert all(la.trainable for la in bns)


def test_frozen_batchnorm_statistics_do_not_move(r18):
    set_trainable(r18, "all")
    r18.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    bn = backbone_of(r18).get_layer("stem_bn")
    conv = backbone_of(r18).get_layer("stem_conv")
    before_bn, before_conv = np.asarray(bn.moving_mean).copy(), np.asarray(conv.kernel).copy()
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    r18.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), before_bn)
    assert not np.allclose(np.asarray(conv.kernel), before_conv)


def test_last_4_conv_layers_of_vgg16(vgg16):
    """R5: fine-tune the last 4 conv layers of VGG16 plus the dense top."""
    summary = set_trainable(vgg16, "last_n", n=4, unit="conv")
    assert _trainable_names(vgg16) == [
        "block4_conv3",
        "block5_conv1",
        "block5_conv2",
        "block5_conv3",
    ]
    assert summary["first_trainable_backbone_layer"] == "block4_conv3"
    assert _head_trainable(vgg16)


def test_last_blocks_inferred_from_registry(r18, vgg16):
    set_trainable(r18, "last_n", n=1, unit="blocks")
    names = _trainable_names(r18)
    assert names and all(n.startswith("stage4_block2_") for n in names)
    set_trainable(vgg16, "last_n", n=2, unit="blocks")
    assert _trainable_names(vgg16)[0] == "block4_conv1"


def test_last_layers_skip_batchnorm(r18):
    set_trainable(r18, "last_n", n=2, unit="layers")
    assert _trainable_names(r18) == ["stage4_block2_conv1", "stage4_block2_conv2"]
    set_trainable(r18, "last_n", n=2, unit="layers", train_batchnorm=True)
    assert _trainable_names(r18) == [
        "stage4_block2_conv1",
        "stage4_block2_bn1",
        "stage4_block2_conv2",
        "stage4_block2_bn2",
    ]


def test_last_zero_equals_frozen(vgg16):
    assert (
        set_trainable(vgg16, "last_n", n=0)["trainable_params"]
        == set_trainable(vgg16, "frozen")["trainable_params"]
    )


def test_model_without_backbone():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Conv2D(4, 3, name="c2")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="label")(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="backbone"):
        set_trainable(model, "frozen")
    set_trainable(model, "all")
    assert model.get_layer("bn1").trainable  # nothing pretrained: BatchNorm trains


def test_bad_arguments(vgg16):
    with pytest.raises(ValueError, match="mode"):
        set_trainable(vgg16, "half")
    with pytest.raises(ValueError, match="unit"):
        set_trainable(vgg16, "last_n", n=1, unit="stages")
