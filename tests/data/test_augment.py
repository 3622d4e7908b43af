"""Tests of keras_species.data.augment: presets, RandomResizedCrop, MixUp/CutMix, in-model use."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_species  # noqa: F401  (registers the layers for safe_mode reloading)
from keras_species.data.augment import (
    PRESETS,
    PerImageRandAugment,
    RandomResizedCrop,
    augment_in_model,
    augmentation,
    batch_augmentation,
    preset_fields,
)


def images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_runs_batched_and_in_tf_data(preset):
    aug = augmentation(preset, seed=1)
    if preset == "none":
        assert aug is None
        return
    x = images()
    out = np.asarray(aug(x, training=True))
    assert out.shape == x.shape
    assert not np.allclose(out, x)  # it changed something
    np.testing.assert_allclose(np.asarray(aug(x, training=False)), x, atol=1e-4)  # identity
    ds = tf.data.Dataset.from_tensor_slices(x).map(lambda t: aug(t[None], training=True)[0])
    assert [e.shape for e in ds.as_numpy_iterator()] == [(32, 32, 3)] * 4


def test_preset_settings_and_overrides():
    assert preset_fields("r1")["rotation"] == 30.0
    assert preset_fields("r1_pseudo")["rotation"] == 45.0
    assert preset_fields("r4")["crop_area"] == (0.08, 1.0)
    r3 = augmentation("r3", rotation=90)
    rot = r3.get_layer("random_rotation")
    assert rot.fill_mode == "reflect" and np.allclose(rot.get_config()["factor"], (-0.25, 0.25))
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        augmentation("r9")
    with pytest.raises(ValueError, match="unknown augmentation settings"):
        augmentation("r1", rotate=5)


def test_random_resized_crop_output_size_and_crop():
    # a horizontal ramp: a crop of a small area spans a narrower range of values
    ramp = np.tile(np.linspace(0, 255, 64, dtype="float32")[None, :, None], (64, 1, 3))[None]
    layer = RandomResizedCrop(scale=(0.1, 0.1), ratio=(1.0, 1.0), seed=0)
    out = np.asarray(layer(np.repeat(ramp, 3, 0), training=True))
    assert out.shape == (3, 64, 64, 3)
    spans = out[:, 32, -1, 0] - out[:, 32, 0, 0]
    assert np.all(spans < 255 * 0.45) and np.all(spans > 255 * 0.2)  # width sqrt(0.1) ~ 0.32
    sized = RandomResizedCrop(48, 40, seed=0)
    assert sized(ramp, training=True).shape == (1, 48, 40, 3)
    assert sized(ramp, training=False).shape == (1, 48, 40, 3)
    np.testing.assert_allclose(np.asarray(RandomResizedCrop()(ramp, training=False)), ramp)
    assert RandomResizedCrop(seed=0)(ramp[0], training=True).shape == (64, 64, 3)  # unbatched


def test_model_with_crop_saves_and_reloads_safe_mode(tmp_path):
    inputs = keras.Input((32, 32, 3), name="image")
    x = augmentation("r4", seed=0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="label")(x))
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    layer = again.get_layer("augment_r4").get_layer("random_resized_crop")
    assert isinstance(layer, RandomResizedCrop)
    assert layer.get_config()["scale"] == [0.08, 1.0]
    x = images()
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_mixup_and_cutmix_soft_labels():
    x = images(8)
    y = keras.ops.one_hot(np.arange(8) % 3, 3)
    for name in ("mixup", "cutmix"):
        layer = batch_augmentation(name, seed=0)
        out = layer({"images": x, "labels": y}, training=True)
        labels = np.asarray(out["labels"])
        np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-5)
        assert ((labels > 1e-3) & (labels < 1 - 1e-3)).any(), name
        assert np.asarray(out["images"]).shape == x.shape
    with pytest.raises(ValueError, match="mixup"):
        batch_augmentation("mosaic")


def test_augment_in_model_is_identity_at_inference():
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    wrapped = augment_in_model(base, "r3", seed=0)
    x = images(2, 16)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), base.predict(x, verbose=0), rtol=1e-5)
    assert not np.allclose(np.asarray(wrapped(x, training=True)), np.asarray(base(x)))


def test_a_classifier_wrapped_with_augmentation_freezes_as_the_classifier_does():
    # augment_in_model puts the classifier one level down: "frozen" failed ("has no nested
    # 'backbone' to freeze") and last_n trained the backbone's frozen BatchNorm layers
    from keras_species.models.classifier import backbone_of, build_classifier
    from keras_species.models.freezing import set_trainable

    def trainable_bn(model):
        return sum(layer.trainable for layer in backbone_of(model)._flatten_layers()
                   if isinstance(layer, keras.layers.BatchNormalization))

    plain = build_classifier("resnet18", 3, input_size=32, weights=None)
    wrapped = augment_in_model(build_classifier("resnet18", 3, input_size=32, weights=None), "r1", seed=0)
    assert backbone_of(wrapped).name == "backbone"
    for model in (plain, wrapped):
        with pytest.warns(UserWarning):  # random BatchNorm statistics: said, as for the classifier
            info = set_trainable(model, "frozen")
        assert info["first_trainable_backbone_layer"] is None
        assert not backbone_of(model).trainable_weights and model.trainable_weights  # the head trains
    counts = []
    for model in (plain, wrapped):
        for layer in backbone_of(model)._flatten_layers():  # as if pretrained: statistics set
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_variance.assign(np.full(layer.moving_variance.shape, 2.0, np.float32))
        set_trainable(model, "last_n", n=2, unit="blocks")
        counts.append(trainable_bn(model))
    assert counts == [0, 0]
    # two backbones at one depth (a fold ensemble) are no model's backbone: refused as before,
    # where the first alone was frozen and the other trained on
    from keras_species.models.freezing import find_backbone
    from keras_species.training.crossval import fold_ensemble

    ens = fold_ensemble([build_classifier("resnet18", 3, input_size=32, weights=None) for _ in range(2)])
    assert find_backbone(ens) is None
    with pytest.raises(ValueError, match="has no nested 'backbone' to freeze"):
        set_trainable(ens, "frozen")


def _crop_boxes(h: int, w: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Area fraction and aspect (w / h) of ``n`` crops of an ``h`` x ``w`` image, read back from
    an input whose pixels hold their own coordinates."""
    from keras_species.data.augment import RandomResizedCrop

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = np.broadcast_to(np.stack([xs, ys, np.zeros_like(xs)], -1), (n, h, w, 3))
    out = np.asarray(RandomResizedCrop(seed=seed)(coords, training=True))
    crop_w = (out[:, 0, -1, 0] - out[:, 0, 0, 0]) * w / (w - 1)
    crop_h = (out[:, -1, 0, 1] - out[:, 0, 0, 1]) * h / (h - 1)
    return crop_w * crop_h / (h * w), crop_w / crop_h


def test_random_resized_crop_samples_as_torchvision_does():
    # before: an oversized draw was clipped to the image, so a non-square image got aspects far
    # outside 3/4..4/3 (up to 1.62 on 128 x 256) and large crops came twice as often
    area, aspect = _crop_boxes(64, 64, 1500)
    assert area.min() > 0.07 and area.max() <= 1.0 + 1e-3
    assert aspect.min() > 0.70 and aspect.max() < 1.42  # 3/4..4/3, give or take a pixel's rounding
    assert 0.06 < np.mean(area > 0.8) < 0.15  # torchvision: about 10% (clipping gave about 20%)
    area, aspect = _crop_boxes(40, 100, 1500, seed=1)  # aspect 2.5: some draws fall back
    assert aspect.max() < 1.42 and aspect.min() > 0.70  # the fallback's aspect is clamped too


def test_r3_flips_each_axis_on_its_own_and_its_contrast_goes_both_ways():
    # before: RandomFlip("horizontal_and_vertical") flips both axes on one coin (a half turn,
    # never a mirror image), and RandomContrast(0.2) only raised the contrast
    from keras_species.data.augment import augmentation

    img = np.zeros((400, 8, 8, 3), np.float32)
    img[:, 0, 0] = 255.0  # a marker in the top-left corner
    flips = np.asarray(augmentation("r3", rotation=0, contrast=0, seed=0)(img, training=True))
    corner = np.stack([flips[:, 0, 0, 0], flips[:, 0, -1, 0], flips[:, -1, 0, 0], flips[:, -1, -1, 0]], 1)
    outcome = np.argmax(corner, axis=1)  # 0 none, 1 horizontal, 2 vertical, 3 both
    assert all(np.mean(outcome == k) > 0.15 for k in range(4)), np.bincount(outcome)
    ramp = np.broadcast_to(np.linspace(50, 200, 16, dtype=np.float32)[None, None, :, None], (300, 4, 16, 3))
    out = np.asarray(augmentation("r3", rotation=0, flip=None, seed=0)(np.array(ramp), training=True))
    factor = (out[:, 0, -1, 0] - out[:, 0, 0, 0]) / 150.0
    assert factor.min() < 0.85 and factor.max() > 1.15 and 0.78 < factor.min()


def test_cutmix_mixes_with_a_fixed_beta_parameter():
    # before: factor=1.0, which Keras reads as "draw the Beta parameter from U(0, 1) per batch"
    from keras_species.data.augment import batch_augmentation

    assert tuple(batch_augmentation("cutmix").get_config()["factor"]) == (1.0, 1.0)
    assert tuple(batch_augmentation("cutmix", 0.4).get_config()["factor"]) == (0.4, 0.4)


@pytest.mark.parametrize("size", [8, 32])
def test_cutmix_labels_are_the_share_of_pixels_each_image_shows(size):
    # before: Keras' weight came from the box's fractional corners while whole pixels were pasted:
    # labels up to 23 points off the image at 8 px, 6 at 32 px
    n = 12
    x = np.broadcast_to(np.arange(n, dtype="float32")[:, None, None, None] * 20 + 5,
                        (n, size, size, 3)).copy()  # image i is one value throughout
    y = keras.ops.one_hot(np.arange(n), n)
    layer = batch_augmentation("cutmix", seed=0)
    for _ in range(5):
        out = layer({"images": x, "labels": y}, training=True)
        images, labels = np.asarray(out["images"]), np.asarray(out["labels"])
        shares = (images[..., 0][:, None] == x[:, 0, 0, 0][None, :, None, None]).mean(axis=(2, 3))
        np.testing.assert_allclose(labels, shares, atol=1e-6)


def test_cutmix_refuses_an_alpha_keras_cannot_draw():
    # before: alpha 2 raised Keras' "The 'factor' argument should be ... in the range [0, 1]"
    with pytest.raises(ValueError, match=r"alpha=2.0: CutMix's Beta\(alpha, alpha\) parameter must lie in \(0, 1\]"):
        batch_augmentation("cutmix", 2.0)
    assert batch_augmentation("mixup", 2.0) is not None


def test_randaugment_draws_its_operations_for_each_image_of_a_batch(tmp_path):
    layer = augmentation("randaugment", seed=0)
    ra = layer.layers[-1]
    x = np.tile(np.linspace(0, 255, 16 * 16 * 3, dtype="float32").reshape(1, 16, 16, 3), (32, 1, 1, 1))
    chosen = keras.ops.convert_to_numpy(ra.get_random_transformation(x, training=True)["layer_idxes"])
    assert chosen.shape == (32, 2)  # Keras' RandAugment: (2,), one pair of operations for the batch
    assert len({tuple(row) for row in chosen}) > 10
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.min() >= 0 and out.max() <= 255
    assert tuple(ra(x[0], training=True).shape) == (16, 16, 3)  # one image, as Keras' layer takes it
    model = augment_in_model(keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                                               keras.layers.Dense(2)]), layer)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert any(isinstance(sub, PerImageRandAugment) for sub in again._flatten_layers())


def test_randaugment_geometry_and_tone_are_symmetric_and_scaled_as_published():
    # stop 30: Keras hands its factor range (0, 0.5) to these layers as is: rotations of 0..180°,
    # shifts of up to half the image one way only, brightness and contrast that only rise
    x = np.full((512, 8, 8, 3), 128.0, "float32")
    ra = PerImageRandAugment(value_range=(0, 255), factor=0.5, seed=0)
    angle = keras.ops.convert_to_numpy(ra.random_rotation.get_random_transformation(x, training=True)["angle"])
    assert -15.01 < angle.min() < -10 and 10 < angle.max() < 15.01  # ±30° x 0.5, both ways
    shift = keras.ops.convert_to_numpy(
        ra.random_translation.get_random_transformation(x, training=True)["translations"]) / 8  # px
    for v in shift.T:  # x and y
        assert -0.2251 < v.min() < -0.15 and 0.15 < v.max() < 0.2251  # ±45% x 0.5 of the side
    shear = keras.ops.convert_to_numpy(ra.random_shear.get_random_transformation(x, training=True)["shear_factor"])
    assert shear.min() < -0.1 and shear.max() > 0.1 and np.abs(shear).max() <= 0.15 + 1e-6
    lifted = keras.ops.convert_to_numpy(ra.random_brightness(x, training=True)).mean(axis=(1, 2, 3)) - 128
    assert lifted.min() < -40 and lifted.max() > 40 and np.abs(lifted).max() <= 0.25 * 255 + 1e-3
    contrast = keras.ops.convert_to_numpy(
        ra.random_contrast.get_random_transformation(x, training=True)["contrast_factor"])
    assert 0.55 - 1e-6 <= contrast.min() < 0.7 and 1.3 < contrast.max() <= 1.45 + 1e-6
    assert len(ra._layers) == len(keras.layers.RandAugment()._layers)  # Keras' own ones untracked
    keras_own = keras.layers.RandAugment(factor=0.5, seed=0)  # what the preset used before
    assert keras.ops.convert_to_numpy(keras_own.random_rotation.get_random_transformation(
        x, training=True)["angle"]).max() > 90  # degrees


def test_numpy_seeds_work_and_bad_alphas_and_seeds_are_named():
    augmentation("r1", seed=np.int64(1))  # Keras refused a NumPy integer seed
    batch_augmentation("cutmix", seed=np.int64(1))
    with pytest.raises(ValueError, match="alpha=-1: the Beta"):  # gave NaN images and labels
        batch_augmentation("mixup", -1)
    with pytest.raises(ValueError, match="seed=1.5 must be a whole number"):
        augmentation("r1", seed=1.5)


@pytest.mark.parametrize(("setting", "value", "match"), [
    # Keras' RandomFlip takes any string and flips nothing for one it does not know
    ("flip", "both", r"flip='both': give one of horizontal, vertical, horizontal_and_vertical"),
    ("flip", "Horizontal", r"flip='Horizontal'"),
    ("flip", True, r"flip=True"),
    # bare TypeErrors deep in the layers before
    ("crop_area", 0.5, r"crop_area=0.5: give a \(min, max\) pair"),
    ("translation", (0.1, 0.2), r"translation=\(0.1, 0.2\): give one number"),
    ("rotation", "30", r"rotation='30': give degrees"),
    ("fill_mode", "mirror", r"fill_mode='mirror': give one of reflect, constant, nearest, wrap"),
])
def test_a_setting_value_that_cannot_work_is_named(setting, value, match):
    with pytest.raises(ValueError, match=rf"augmentation setting {match}"):
        augmentation("r4", **{setting: value})


def test_flip_none_or_false_turns_flipping_off():
    for off in (None, False):
        aug = augmentation("r1", flip=off)
        assert "random_flip" not in [layer.name for layer in aug.layers]


def test_numpy_values_and_json_lists_are_settings_like_python_numbers():
    # np.float32(15) was refused as "not a number" by the first version of the check
    for kw in (dict(rotation=np.float32(15)), dict(rotation=np.array([-5.0, 5.0])),
               dict(crop_ratio=np.array([0.75, 1.33])), dict(crop_area=[0.5, 1.0]),
               dict(randaugment_ops=np.int64(2)), dict(zoom=np.float32(0.1)), dict(flip=""),
               # 0-d arrays: rotation failed with "len() of unsized object", translation was
               # refused as not "one number, at least 0"
               dict(rotation=np.array(15.0)), dict(translation=np.array(0.1)),
               dict(randaugment_ops=np.array(2))):
        aug = augmentation("r4", seed=0, **kw)
        assert tuple(aug(keras.ops.ones((1, 32, 32, 3)) * 100, training=True).shape) == (1, 32, 32, 3)


@pytest.mark.parametrize("setting", ["crop_ratio", "fill_mode", "randaugment_magnitude"])
def test_none_is_refused_where_a_setting_has_no_off(setting):
    # None passed the check and failed inside Keras ("'NoneType' object is not subscriptable")
    with pytest.raises(ValueError, match=rf"augmentation setting {setting}=None: give a value"):
        augmentation("r4", **{setting: None})


@pytest.mark.parametrize("preset, setting, value, says", [
    ("r1", "rotation", 400, "give degrees, at most 360 either way"),
    ("r1", "rotation", (-10, 361.0), "give degrees, at most 360 either way"),
    ("r5", "zoom", 1.0, "give a share of the side below 1"),
    ("r5", "translation", 1.5, "give a share of the side, at most 1"),
    ("r3", "contrast", 1.5, "give a share, at most 1"),
    ("randaugment", "randaugment_magnitude", 1.5, "give a strength from 0 to 1"),
])
def test_settings_beyond_their_layers_range_are_named_in_their_own_units(preset, setting, value, says):
    # before: Keras' words about `factor`, `height_factor` or `input_number`: rotation=400 was
    # told a range of [-1, 1] (degrees read as turns), zoom=1.0 that it received -1.0
    with pytest.raises(ValueError, match=rf"augmentation setting {setting}=.*: {says}"):
        augmentation(preset, **{setting: value})


def test_settings_at_their_layers_bounds_still_build():
    for preset, kw in (("r1", dict(rotation=360)), ("r5", dict(zoom=0.99, translation=1.0)),
                       ("r3", dict(contrast=1.0)), ("randaugment", dict(randaugment_magnitude=1.0))):
        aug = augmentation(preset, seed=0, **kw)
        assert tuple(aug(keras.ops.ones((2, 32, 32, 3)) * 100, training=True).shape) == (2, 32, 32, 3)


@pytest.mark.parametrize("kwargs, says", [
    (dict(scale=(0.5,)), r"scale=\(0\.5,\) must be a \(min, max\) pair of numbers"),
    (dict(scale=0.5), r"scale=0\.5 must be a \(min, max\) pair"),
    (dict(ratio=1.0), r"ratio=1\.0 must be a \(min, max\) pair"),
    (dict(interpolation="bicubicx"), r"interpolation='bicubicx': give 'bilinear' or 'nearest'"),
])
def test_random_resized_crop_names_bad_arguments_when_made(kwargs, says):
    # before: an IndexError or a TypeError, and a bad interpolation only at the first training call
    from keras_species.data.augment import RandomResizedCrop

    with pytest.raises(ValueError, match=says):
        RandomResizedCrop(**kwargs)
