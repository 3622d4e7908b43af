"""set_trainable: frozen / all / last_n (layers, blocks, conv); BatchNorm of a pretrained backbone
kept in inference mode, BatchNorm without statistics (weights=None) trained from scratch."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from keras_species.models.batchnorm import untrained_batchnorm
from keras_species.models.classifier import backbone_of, build_backbone, build_classifier
from keras_species.models.freezing import flat_layers, set_trainable
from keras_species.models.heads import HeadConfig

X32 = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")


def pretrained_file(name: str, folder, size: int = 32) -> str:
    """A ``.weights.h5`` of backbone ``name`` whose BatchNorm layers hold learned-looking statistics
    (what ImageNet weights look like to ``set_trainable``)."""
    backbone = build_backbone(name, size)
    rng = np.random.default_rng(1)
    for layer in flat_layers(backbone):
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = tuple(layer.moving_mean.shape)
            layer.moving_mean.assign(rng.normal(0, 0.1, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
    path = str(folder / f"{name}.weights.h5")
    backbone.save_weights(path)
    return path


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    """ResNet18 with pretrained-like weights loaded from a file."""
    weights = pretrained_file("resnet18", tmp_path_factory.mktemp("weights"))
    return build_classifier("resnet18", 3, input_size=32, weights=weights, head=HeadConfig(units=(8,)))


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


def test_frozen_again_after_unfreezing(r18):
    """frozen → all → frozen: the last call freezes the backbone again (on TensorFlow, setting a
    model's ``trainable`` to the value it already has does not reach its layers)."""
    frozen = set_trainable(r18, "frozen")["trainable_params"]
    set_trainable(r18, "all")
    assert set_trainable(r18, "frozen")["trainable_params"] == frozen
    assert _trainable_names(r18) == []
    set_trainable(r18, "last_n", n=2)
    assert set_trainable(r18, "frozen")["trainable_params"] == frozen


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


@pytest.mark.filterwarnings("ignore:set_trainable")
def test_last_blocks_of_efficientnet_lite_are_its_own(random_lite0):
    # before: Lite had no block prefixes, Xception's (block1_..block14_) were inferred, and n=2
    # trained block13-15 and top
    set_trainable(random_lite0, "last_n", n=2, unit="blocks", train_batchnorm=True)
    trained = {n.split("_")[0] for n in _trainable_names(random_lite0)}
    assert trained == {"block15", "top"}


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


def _no_statistics_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "no statistics" in str(w.message)]


def test_pretrained_backbone_is_not_warned_about(r18):
    assert untrained_batchnorm(backbone_of(r18)) == []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for mode in ("frozen", "all"):
            assert set_trainable(r18, mode)["untrained_batchnorm"] == 0
    assert _no_statistics_warnings(record) == []


def _feature_std(model, training: bool) -> float:
    """Feature std of the backbone on random images, as ``fit`` (training=True) or ``predict``
    compute them; the BatchNorm statistics that a training-mode call moves are put back."""
    backbone = backbone_of(model)
    saved = backbone.get_weights()
    features = backbone(model.get_layer("preprocessing")(X32), training=training)
    backbone.set_weights(saved)
    return float(np.std(np.asarray(features)))


@pytest.fixture(scope="module")
def random_lite0():
    """EfficientNet-Lite0 with weights=None: every BatchNorm layer holds mean 0, variance 1."""
    return build_classifier("efficientnet_lite0", 3, input_size=32, weights=None)


@pytest.mark.filterwarnings("ignore:set_trainable")
def test_random_backbone_batchnorm_trains_from_scratch(random_lite0):
    """The bug: weights=None with BatchNorm frozen gave features of std ~1e-12 in training mode
    too (the Keras 3 rule), i.e. a model that outputs the same for every image."""
    bns = untrained_batchnorm(backbone_of(random_lite0))
    assert len(bns) == 49
    summary = set_trainable(random_lite0, "all")  # train_batchnorm=False, as recipes pass
    assert _feature_std(random_lite0, training=True) > 0.1  # was 7e-13: dead
    assert all(layer.trainable for layer in bns)
    assert summary["untrained_batchnorm"] == 49
    set_trainable(random_lite0, "frozen")
    assert _feature_std(random_lite0, training=True) < 1e-6  # the collapse that is warned about


def test_random_backbone_messages_name_the_fix(random_lite0):
    with pytest.warns(UserWarning, match="no statistics") as record:
        set_trainable(random_lite0, "all")
    (message,) = _no_statistics_warnings(record)
    assert "train from scratch" in message and "train_batchnorm=False" in message
    with pytest.warns(UserWarning, match="49 of them are frozen") as record:
        set_trainable(random_lite0, "frozen")
    (message,) = _no_statistics_warnings(record)
    assert "--weights imagenet" in message and "--head-epochs 0" in message


def test_random_backbone_last_n_trains_tail_batchnorm_and_warns_about_the_rest(random_lite0):
    with pytest.warns(UserWarning, match="of them are frozen"):
        set_trainable(random_lite0, "last_n", n=1, unit="blocks")
    names = _trainable_names(random_lite0)
    assert "top_bn" in names and "top_conv" in names  # the tail's BatchNorm trains with it
    assert not backbone_of(random_lite0).get_layer("stem_bn").trainable


def test_statistics_learned_from_scratch_are_then_protected():
    """Once its BatchNorm layers have statistics, a from-scratch backbone is fine-tuned like a
    pretrained one (train_batchnorm=False freezes them again)."""
    model = build_classifier("mobilenet_v2", 3, input_size=32, weights=None)
    for layer in untrained_batchnorm(backbone_of(model)):
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.5, "float32"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        set_trainable(model, "all")
    assert _no_statistics_warnings(record) == []
    bns = [la for la in flat_layers(backbone_of(model)) if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and not any(la.trainable for la in bns)


def test_one_untrained_batchnorm_layer_is_named_in_the_singular():
    # before: "1 BatchNorm layers of the backbone have no statistics yet ... and 1 of them are frozen"
    from keras_species.models.freezing import _explain_untrained

    bn = keras.layers.BatchNormalization()
    bn.build((None, 4))
    bn.trainable = False
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _explain_untrained("frozen", [bn], train_batchnorm=False)
        bn.trainable = True
        _explain_untrained("all", [bn], train_batchnorm=False)
    frozen, trains = (str(w.message) for w in record)
    assert "1 BatchNorm layer of the backbone has no statistics yet" in frozen
    assert "and it is frozen, in inference mode" in frozen
    assert "weights=None); it trains from scratch with batch statistics" in trains


@pytest.mark.parametrize("backbone, last_block", [("densenet121", "conv5_block16_"), ("resnet50v2", "conv5_block3_")])
def test_the_last_block_of_a_pretrained_densenet_or_resnetv2_trains(backbone, last_block):
    # the final BatchNorm was a block of its own: n=1 selected it alone, frozen (pretrained
    # statistics), and nothing of the backbone trained, without a word
    from keras_species.models.classifier import build_classifier

    m = build_classifier(backbone, 2, input_size=32)
    for layer in m.get_layer("backbone").layers:  # statistics as pretrained weights hold them
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.9, "float32"))
    summary = set_trainable(m, "last_n", n=1, unit="blocks")
    assert summary["first_trainable_backbone_layer"].startswith(last_block)


def test_last_n_refuses_a_negative_n_and_warns_when_nothing_trains():
    # n=-1 froze the whole backbone as n=0 did; a selection of frozen BatchNorm alone said nothing
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="b1_conv")(inp)
    bn = keras.layers.BatchNormalization(name="b2_bn")
    backbone = keras.Model(inp, bn(x), name="backbone")
    bn.moving_variance.assign(np.full(4, 0.9, "float32"))  # as pretrained statistics
    outer = keras.Input((8, 8, 3))
    m = keras.Model(outer, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(backbone(outer))))
    with pytest.raises(ValueError, match=r"n=-1: give the number of backbone units"):
        set_trainable(m, "last_n", n=-1)
    with pytest.warns(UserWarning, match=r"trains no layer of the backbone"):
        set_trainable(m, "last_n", n=1, unit="blocks", blocks=["b1_", "b2_"])


# ------------------------------------------------------------------ backbones without BatchNorm
def _layernorm_model():
    """A backbone normalised as ConvNeXt's is (LayerNorm: no running statistics) and its head."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.LayerNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))


def test_a_report_does_not_describe_batchnorm_layers_a_backbone_lacks():
    # a ConvNeXt run's report said its BatchNorm layers trained from scratch: it has none
    from keras_species.models.freezing import batchnorm_count, describe_batchnorm

    model = _layernorm_model()
    assert batchnorm_count(model) == 0
    for pretrained in (False, True):
        text = describe_batchnorm(False, pretrained, batchnorm_count(model))
        assert text.startswith("The backbone has no BatchNorm layers") and "re-estimated on" not in text
    with_bn = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    assert batchnorm_count(keras.Sequential([keras.Input((4,)), with_bn])) == 1  # nested too
    assert "frozen (inference mode)" in describe_batchnorm(False, True, 1)
    assert "from scratch" in describe_batchnorm(False, False, 3)


def test_a_head_phase_on_a_random_backbone_without_batchnorm_is_warned_about():
    # README: "phase 1 would train the head on a frozen random backbone; it warns" - it did only
    # for BatchNorm backbones (set_trainable's untrained-statistics warning), not for ConvNeXt
    from keras_species.models.freezing import warn_frozen_random_backbone

    with pytest.warns(UserWarning, match=r"head phase \(2 epochs\) trains the head on a frozen "
                                         r"backbone built without pretrained weights.*--head-epochs 0"):
        warn_frozen_random_backbone(_layernorm_model(), 2, pretrained=False)
    with_bn = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_frozen_random_backbone(_layernorm_model(), 0, pretrained=False)  # no head phase
        warn_frozen_random_backbone(_layernorm_model(), 2, pretrained=True)
        warn_frozen_random_backbone(with_bn, 2, pretrained=False)  # set_trainable says it
