"""Augmentation presets of the five reports, built from core ``keras.layers``.

Every preset is a ``keras.Sequential`` of Keras' own random preprocessing layers, so it runs in
both places:

- in the ``tf.data`` pipeline, on the CPU, a batch at a time, one call after another (each image
  still gets its own draw)
  (``make_dataset(..., training=True, augment="r4")``), which keeps the accelerator free and
  suits small models and feature caches;
- inside the model, on the accelerator, a batch at a time (:func:`augment_in_model`); the layers
  are the identity at inference (``training=False``), so the saved model predicts unchanged.

Presets (their names and settings are plain data in :mod:`keras_species.data.augment_presets`;
``**overrides`` change any field, e.g. ``augmentation("r1", rotation=15)``):

=============== =======================================================================
``none``        no augmentation (returns ``None``)
``r1``          horizontal flip (p = 0.5), rotation ±30°, black fill (R1, torchvision's default)
``r1_pseudo``   horizontal flip, rotation ±45° (R1's pseudo-labelled set)
``r3``          rotation over the full circle with reflect fill, horizontal and vertical flips
                (each its own coin), contrast ±20% (R3: plants photographed from above)
``r4``          random resized crop (8–100% of the area, aspect 3/4–4/3) back to the input
                size, horizontal flip, rotation ±25°, reflect fill (R4, fastai's defaults)
``r5``          rotation ±40°, shift ±20%, zoom ±20%, horizontal flip, nearest fill (R5, the
                classic ``ImageDataGenerator`` settings)
``randaugment`` ``keras.layers.RandAugment`` (2 ops, magnitude 0.5, value range 0–255), its
                operations drawn for each image also in a batch, rotation, shift, shear,
                brightness and contrast symmetric (:class:`PerImageRandAugment`)
=============== =======================================================================

Batch-level mixing (:func:`batch_augmentation`): ``keras.layers.MixUp`` and ``keras.layers.CutMix``
mix whole batches and produce soft labels; the pipeline applies them after batching.

Core Keras 3 has no random *resized* crop (``RandomCrop`` cuts a fixed size, ``RandomZoom``
keeps the aspect ratio in a symmetric range), so :class:`RandomResizedCrop` is written here; and
Keras' ``RandAugment`` draws its operations once a batch, so :class:`PerImageRandAugment` draws
them for each image.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import keras
from keras import ops

from keras_species.data.augment_presets import PRESETS, _pair, preset_fields
from keras_species.data.pipeline import check_seed

__all__ = ["PRESETS", "preset_fields", "PerImageRandAugment", "RandomResizedCrop", "augmentation",
           "batch_augmentation", "augment_in_model"]


@keras.saving.register_keras_serializable(package="keras_species")
class RandomResizedCrop(keras.layers.Layer):
    """Crop a random area fraction and aspect ratio of each image, resized back (Inception/R4).

    Written here because core Keras 3 lacks it. Built on ``keras.ops`` only (one
    ``ops.image.affine_transform`` per batch), so it runs in ``tf.data`` on the CPU and inside a
    model on an accelerator. Each image gets its own crop, drawn as torchvision's
    ``RandomResizedCrop`` draws it: area ``~ U(scale)`` of the image and log aspect
    ``~ U(log ratio)``, rounded to whole pixels, up to 10 times until the crop fits, placed
    uniformly at random on whole pixels; when no draw fits, a centre crop of the whole image with
    its aspect clamped to ``ratio``. At inference the layer is the identity (or a plain resize
    when ``height``/``width`` differ from the input).

    Args:
        height, width: output size; ``None`` keeps the input size (the image is resized to the
            output size first when they differ).
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio (width / height).
        interpolation: ``"bilinear"`` or ``"nearest"``.
        seed: random seed.

    Example:
        >>> layer = RandomResizedCrop(scale=(0.08, 1.0), seed=0)
        >>> tuple(layer(keras.ops.ones((2, 64, 64, 3)), training=True).shape)
        (2, 64, 64, 3)
    """

    def __init__(
        self,
        height: int | None = None,
        width: int | None = None,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither")
        for name, value in (("scale", scale), ("ratio", ratio)):  # an IndexError/TypeError before
            if not _pair(value):
                raise ValueError(f"{name}={value!r} must be a (min, max) pair of numbers")
        if interpolation not in ("bilinear", "nearest"):  # refused at the first training call before
            raise ValueError(f"interpolation={interpolation!r}: give 'bilinear' or 'nearest'")
        lo, hi = float(scale[0]), float(scale[1])
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scale={tuple(scale)} must satisfy 0 < min <= max <= 1")
        if not 0.0 < float(ratio[0]) <= float(ratio[1]):
            raise ValueError(f"ratio={tuple(ratio)} must satisfy 0 < min <= max")
        self.height = height
        self.width = width
        self.scale = (lo, hi)
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._allow_non_tensor_positional_args = True

    TRIES = 10
    """Draws per image before the centre-crop fallback (torchvision's count)."""

    def _crop(self, x):
        # torchvision's sampling, vectorised: up to TRIES (area, log-aspect) draws per image, the
        # first whose rounded size fits; else a centre crop with the aspect clamped to `ratio`
        shape = ops.shape(x)
        b = shape[0]
        h = ops.cast(shape[1], "float32")
        w = ops.cast(shape[2], "float32")
        area = keras.random.uniform((b, self.TRIES), self.scale[0], self.scale[1],
                                    seed=self.seed_generator) * h * w
        log_r = keras.random.uniform((b, self.TRIES), math.log(self.ratio[0]),
                                     math.log(self.ratio[1]), seed=self.seed_generator)
        r = ops.exp(log_r)
        cw = ops.round(ops.sqrt(area * r))
        ch = ops.round(ops.sqrt(area / r))
        fits = ops.logical_and(ops.logical_and(cw >= 1, cw <= w), ops.logical_and(ch >= 1, ch <= h))
        first = ops.expand_dims(ops.argmax(ops.cast(fits, "int32"), axis=1), 1)
        found = ops.any(fits, axis=1)
        in_ratio = w / h
        fb_w = ops.where(in_ratio > self.ratio[1], ops.round(h * self.ratio[1]), w)
        fb_h = ops.where(in_ratio < self.ratio[0], ops.round(w / self.ratio[0]), h)
        crop_w = ops.where(found, ops.take_along_axis(cw, first, axis=1)[:, 0], fb_w)
        crop_h = ops.where(found, ops.take_along_axis(ch, first, axis=1)[:, 0], fb_h)
        u = keras.random.uniform((b, 2), 0.0, 1.0, seed=self.seed_generator)
        # a whole-pixel offset, uniform over the free positions (centred for the fallback)
        x0 = ops.where(found, ops.floor(u[:, 0] * (w - crop_w + 1)), ops.floor((w - crop_w) / 2))
        y0 = ops.where(found, ops.floor(u[:, 1] * (h - crop_h + 1)), ops.floor((h - crop_h) / 2))
        x0 = ops.minimum(x0, w - crop_w)
        y0 = ops.minimum(y0, h - crop_h)
        sx, sy = crop_w / w, crop_h / h
        zero = ops.zeros_like(sx)
        # output pixel centre (xo + .5) maps to input x0 + (xo + .5) * sx, in pixel-centre terms
        transform = ops.stack(
            [sx, zero, x0 + 0.5 * sx - 0.5, zero, sy, y0 + 0.5 * sy - 0.5, zero, zero], axis=1
        )
        return ops.image.affine_transform(
            x, transform, interpolation=self.interpolation, fill_mode="nearest"
        )

    def call(self, inputs, training=True):
        x = ops.cast(inputs, self.compute_dtype)
        unbatched = len(x.shape) == 3
        if unbatched:
            x = ops.expand_dims(x, 0)
        if self.height is not None:
            x = ops.image.resize(x, (self.height, self.width), interpolation="bilinear", antialias=True)
        if training:
            x = ops.cast(self._crop(ops.cast(x, "float32")), self.compute_dtype)
        return x[0] if unbatched else x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.height is not None:
            shape[-3], shape[-2] = self.height, self.width
        return tuple(shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": list(self.scale),
                "ratio": list(self.ratio),
                "interpolation": self.interpolation,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_species")
class PerImageRandAugment(keras.layers.RandAugment):
    """``keras.layers.RandAugment`` that draws its operations for each image of a batch.

    Keras' layer draws one set of ``num_ops`` operation indices per call (shape ``(num_ops,)``),
    so inside a model every image of a batch got the same two operations, while in the
    ``tf.data`` pipeline (one image a call) each image got its own, as RandAugment is
    published. Here the indices have shape ``(batch, num_ops)`` and each image takes its own;
    the strengths were already drawn per image. Same cost: Keras computes every candidate
    operation on the whole batch either way and keeps one with ``where``.

    Args:
        **kwargs: as ``keras.layers.RandAugment`` (``value_range``, ``num_ops``, ``factor``,
            ``seed``...).

    Example:
        >>> layer = PerImageRandAugment(value_range=(0, 255), num_ops=2, factor=0.5, seed=0)
        >>> layer(np.zeros((4, 32, 32, 3), "float32"), training=True).shape   # doctest: +SKIP
        TensorShape([4, 32, 32, 3])
    """

    ROTATION_DEGREES = 30.0
    """Rotation at ``factor`` 1: ±30° (the RandAugment paper's largest; ±15° at 0.5)."""
    TRANSLATION = 0.45
    """Shift at ``factor`` 1, a share of each side: ±45% (timm's ``translate_pct``)."""
    SHEAR = 0.3
    """Shear at ``factor`` 1: ±0.3 (the paper's largest)."""
    BRIGHTNESS = 0.5
    """Brightness change at ``factor`` 1, a share of the value range: ±50%."""
    CONTRAST = 0.9
    """Contrast change at ``factor`` 1: a factor in 1 ± 0.9 (the paper's enhance range)."""

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(value_range=value_range, num_ops=num_ops, factor=factor,
                         interpolation=interpolation, seed=seed, data_format=data_format, **kwargs)
        # Keras hands its factor range (0, f) to these five as is: rotations of 0..180° at 0.5,
        # shifts of up to half the image and shears one way only, and brightness and contrast
        # that only rise. Here each is symmetric about "unchanged" and scaled as published.
        f = float(self.factor[1])
        common = {"seed": self.seed, "data_format": data_format, **kwargs}
        geometric = {"interpolation": interpolation, **common}
        for name in ("random_rotation", "random_translation", "random_shear", "random_brightness",
                     "random_contrast"):
            self._layers.remove(getattr(self, name))  # Keras' own leave the tracking (and saved file)
        self.random_rotation = keras.layers.RandomRotation(f * self.ROTATION_DEGREES / 360.0, **geometric)
        self.random_translation = keras.layers.RandomTranslation(f * self.TRANSLATION, f * self.TRANSLATION,
                                                                 **geometric)
        self.random_shear = keras.layers.RandomShear(f * self.SHEAR, f * self.SHEAR, **geometric)
        self.random_brightness = keras.layers.RandomBrightness(f * self.BRIGHTNESS, value_range=value_range,
                                                               **common)
        contrast = f * self.CONTRAST  # a pair: one number gives Keras' RandomContrast 1..1+c
        self.random_contrast = keras.layers.RandomContrast((contrast, contrast), value_range=value_range,
                                                           **common)

    def get_random_transformation(self, data, training=True, seed=None):
        transformation = super().get_random_transformation(data, training=training, seed=seed)
        if transformation is None:
            return None
        images = data["images"] if isinstance(data, dict) else data
        if len(images.shape) != 4:  # one image: Keras' own draw (one set of operations) is per image
            return transformation
        batch = self.backend.core.shape(images)[0]
        transformation["layer_idxes"] = self.backend.random.randint(
            (batch, self.num_ops), 0, len(self._AUGMENT_LAYERS),
            seed=self._get_seed_generator(self.backend._backend))
        return transformation

    def transform_images(self, images, transformation, training=True):
        if not training or len(transformation["layer_idxes"].shape) == 1:  # one image: Keras' own
            return super().transform_images(images, transformation, training=training)
        images = self.backend.cast(images, self.compute_dtype)
        chosen = transformation["layer_idxes"]
        for i in range(self.num_ops):
            for j, (key, value) in enumerate(transformation["transforms"].items()):
                this = self.backend.numpy.reshape(chosen[:, i] == j, (-1, 1, 1, 1))
                changed = getattr(self, key).transform_images(images, value)
                images = self.backend.numpy.where(this, changed, images)
        return self.backend.cast(images, self.compute_dtype)


def augmentation(preset: str, *, seed: int | None = None, dtype: str | None = None,
                 **overrides) -> keras.Sequential | None:
    """An augmentation preset as a ``keras.Sequential`` of core Keras random layers.

    Args:
        preset: ``"none"``, ``"r1"``, ``"r1_pseudo"``, ``"r3"``, ``"r4"``, ``"r5"`` or
            ``"randaugment"`` (see the module docstring).
        seed: base seed; layer ``i`` gets ``seed + i``.
        dtype: the layers' dtype policy; ``None`` follows Keras' global policy (inside a
            model), ``"float32"`` keeps them in float32 whatever it is (the ``tf.data``
            pipeline: a ``mixed_float16`` policy would round 0–255 pixels to float16 steps).
        **overrides: settings to change (see :func:`preset_fields`); e.g. ``rotation=15``.

    Returns:
        The ``Sequential`` (input: a batch of float 0–255 RGB images of any size), or ``None``
        for ``"none"``.

    Example:
        >>> aug = augmentation("r4", seed=0)
        >>> tuple(aug(keras.ops.ones((2, 32, 32, 3)) * 100, training=True).shape)
        (2, 32, 32, 3)
    """
    f = preset_fields(preset, **overrides)
    layers: list[keras.layers.Layer] = []
    seed = _seed(seed)

    def next_seed() -> int | None:
        return None if seed is None else (seed + len(layers)) % 2**32

    fill = str(f["fill_mode"])
    if f["crop_area"] is not None:
        layers.append(RandomResizedCrop(scale=f["crop_area"], ratio=f["crop_ratio"], seed=next_seed(), dtype=dtype, name="random_resized_crop"))
    if f["flip"] == "horizontal_and_vertical":  # two coins: Keras' one mode flips both axes at once
        layers.append(keras.layers.RandomFlip("horizontal", seed=next_seed(), dtype=dtype, name="random_flip"))
        layers.append(keras.layers.RandomFlip("vertical", seed=next_seed(), dtype=dtype, name="random_flip_vertical"))
    elif f["flip"]:
        layers.append(keras.layers.RandomFlip(str(f["flip"]), seed=next_seed(), dtype=dtype, name="random_flip"))
    if f["rotation"]:
        rot = f["rotation"]
        # a pair is a tuple by now (preset_fields makes a list's or an array's one)
        factor = (rot[0] / 360.0, rot[1] / 360.0) if isinstance(rot, Sequence) else float(rot) / 360.0
        layers.append(keras.layers.RandomRotation(factor, fill_mode=fill, seed=next_seed(), dtype=dtype, name="random_rotation"))
    if f["translation"]:
        t = float(f["translation"])
        layers.append(keras.layers.RandomTranslation(t, t, fill_mode=fill, seed=next_seed(), dtype=dtype, name="random_translation"))
    if f["zoom"]:
        z = float(f["zoom"])
        layers.append(keras.layers.RandomZoom((-z, z), fill_mode=fill, seed=next_seed(), dtype=dtype, name="random_zoom"))
    if f["contrast"]:
        c = float(f["contrast"])  # (lower, upper): a single float lowers nothing in Keras 3.15
        layers.append(
            keras.layers.RandomContrast((c, c), value_range=(0, 255), seed=next_seed(), dtype=dtype,
                                        name="random_contrast")
        )
    if f["randaugment_ops"]:
        layers.append(
            PerImageRandAugment(
                value_range=(0, 255),
                num_ops=int(f["randaugment_ops"]),
                factor=float(f["randaugment_magnitude"]),
                seed=next_seed(),
                dtype=dtype,
                name="rand_augment",
            )
        )
    if not layers:
        return None
    # a free batch and image size: the same object serves single images (tf.data) and batches
    return keras.Sequential([keras.Input((None, None, 3)), *layers], name=f"augment_{preset}")


_KerasCutMix = getattr(keras.layers, "CutMix", None)  # Keras 3.9 and later


if _KerasCutMix is not None:

    @keras.saving.register_keras_serializable(package="keras_species")
    class ExactCutMix(_KerasCutMix):
        """``keras.layers.CutMix`` whose label weight is the share of pixels each image keeps.

        Keras computes the weight from the box's fractional corners but pastes whole pixels (those
        whose index lies in the box), so the labels said another mix than the image showed: up to
        23 points at 8 px, 6 at 32 px, 0.8 at 224 px (stop 31, 8 epochs of 12 images). The CutMix
        paper sets the weight to the pasted area exactly; here it is read from the mask itself.
        Written by hand because Keras offers no switch for it.

        Args:
            **kwargs: as ``keras.layers.CutMix`` (``factor``, ``seed``).

        Example:
            >>> layer = ExactCutMix(factor=(1.0, 1.0), seed=0)   # doctest: +SKIP
        """

        def get_random_transformation(self, data, training=True, seed=None):
            transformation = super().get_random_transformation(data, training=training, seed=seed)
            if transformation is not None:  # masks (B, H, W, C), the pasted pixels True
                pasted = self.backend.cast(transformation["batch_masks"], self.compute_dtype)
                transformation["mix_weight"] = 1.0 - self.backend.numpy.mean(pasted, axis=(1, 2, 3))
            return transformation


def _seed(seed: object) -> int | None:
    """``seed`` as a Python ``int`` for Keras' layers (which refuse a NumPy integer), or ``None``."""
    return None if seed is None else check_seed(seed)


def batch_augmentation(name: str, alpha: float | None = None, *, seed: int | None = None,
                       dtype: str | None = None) -> keras.layers.Layer:
    """A batch-level mixing layer: ``keras.layers.MixUp``, or :class:`ExactCutMix` (Keras'
    ``CutMix`` with the label weight of the pixels actually pasted; Keras 3.9 and later).

    Called on ``{"images": (B, H, W, 3), "labels": (B, C) float}`` it returns both mixed; labels
    become soft (each row still sums to 1 for one-hot input). The pipeline applies it after
    batching (``make_dataset(..., batch_augment="mixup")``).

    Args:
        name: ``"mixup"`` or ``"cutmix"``.
        alpha: the mixing weight's Beta(alpha, alpha) parameter (MixUp, default 0.2, any value
            above 0; CutMix, default 1.0: a uniform weight, as in the CutMix paper, at most 1).
        seed: random seed.
        dtype: the layer's dtype policy (``None``: Keras' global one); the pipeline passes
            ``"float32"``: under a ``mixed_float16`` or ``mixed_bfloat16`` policy the layer met
            the pipeline's float32 batches with float16 weights and failed to build.

    Returns:
        The Keras layer.

    Example:
        >>> layer = batch_augmentation("mixup", 0.4, seed=0)
        >>> type(layer).__name__
        'MixUp'
    """
    key = name.lower().replace("_", "").replace("-", "")
    if alpha is not None and not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
                                  and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}: the Beta(alpha, alpha) parameter must be a number above 0 "
                         "(MixUp's paper uses 0.2-0.4, CutMix's 1.0); NaN images came out of one below")
    if key == "mixup":
        return keras.layers.MixUp(alpha=0.2 if alpha is None else alpha, seed=_seed(seed), dtype=dtype)
    if key == "cutmix":  # (a, a): Beta(a, a) itself; one float would draw a from U(0, a) per batch
        if _KerasCutMix is None:
            raise ValueError(f"CutMix needs Keras 3.9 or newer (Keras {keras.__version__} is installed): "
                             "pip install -U 'keras>=3.9', or use mixup")
        a = 1.0 if alpha is None else float(alpha)
        if a > 1:  # Keras' CutMix takes its Beta parameter in [0, 1] only
            raise ValueError(f"alpha={alpha!r}: CutMix's Beta(alpha, alpha) parameter must lie in (0, 1] "
                             "(1.0, the paper's, draws a uniform weight); MixUp takes any alpha above 0")
        return ExactCutMix(factor=(a, a), seed=_seed(seed), dtype=dtype)
    raise ValueError(f"unknown batch augmentation {name!r}; choose 'mixup' or 'cutmix'")


def augment_in_model(
    model: keras.Model, augment: str | keras.layers.Layer, *, seed: int | None = None, name: str | None = None
) -> keras.Model:
    """Wrap ``model`` so that it augments its input itself (on the accelerator, batch-wise).

    The augmentation layers are active only in training (``fit``); ``predict``/``evaluate`` and
    the saved ``.keras`` file see the identity, so the wrapped model can be saved and served as
    is. Use this instead of the pipeline's ``augment=`` when the CPU is the bottleneck.

    Args:
        model: a model taking float 0–255 RGB images.
        augment: a preset name (see :func:`augmentation`) or a Keras layer.
        seed: seed of a preset.
        name: name of the new model (default ``model.name``).

    Returns:
        A functional model: ``Input`` named ``image`` → augmentation → ``model``.

    Example:
        >>> base = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
        ...                          keras.layers.Dense(2)])
        >>> augment_in_model(base, "r1", seed=0).output_shape
        (None, 2)
    """
    layer = augmentation(augment, seed=seed) if isinstance(augment, str) else augment
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs if layer is None else layer(inputs)
    return keras.Model(inputs, model(x), name=name or model.name)
