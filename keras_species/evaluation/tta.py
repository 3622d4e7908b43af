"""Test-time augmentation (TTA): the mean of a model's outputs over fixed image transforms.

R2 compares plain inference with TTA. Keras has no TTA helper, so the loop is written here: each
batch is transformed on the fly (flips, 90° rotations, crops resized back to the input size) and
only the ``(N, C)`` outputs are kept, so a ``tf.data.Dataset`` of any length streams through with
memory bounded by one batch of images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from keras_species.evaluation.outputs import select_output

__all__ = ["PRESETS", "TRANSFORMS", "resolve_transforms", "requested_transforms", "predict_tta"]

PRESETS: dict[str, tuple[str, ...]] = {
    "none": ("identity",),
    "hflip": ("identity", "hflip"),
    "flips": ("identity", "hflip", "vflip"),
    "flips_rot90": ("identity", "hflip", "vflip", "rot90", "rot180", "rot270"),
    "five_crop": ("crop_center", "crop_tl", "crop_tr", "crop_bl", "crop_br"),
}

TRANSFORMS = (
    "identity",
    "hflip",
    "vflip",
    "rot90",
    "rot180",
    "rot270",
    "crop_center",
    "crop_tl",
    "crop_tr",
    "crop_bl",
    "crop_br",
)


def resolve_transforms(transforms: str | Sequence[str]) -> tuple[str, ...]:
    """Transform names from a preset name or a sequence of names, validated.

    Args:
        transforms: a preset (:data:`PRESETS`) or names from :data:`TRANSFORMS`.

    Returns:
        A tuple of transform names.

    Example:
        >>> resolve_transforms("flips")
        ('identity', 'hflip', 'vflip')
    """
    if isinstance(transforms, str):
        key = transforms.strip().lower()
        if key in PRESETS:
            return PRESETS[key]
        transforms = (transforms,)
    names = tuple(t.strip().lower() if isinstance(t, str) else t for t in transforms)
    bad = [t for t in names if t not in TRANSFORMS]
    if bad or not names:
        raise ValueError(
            f"unknown TTA transforms {bad or names}; use names from {TRANSFORMS} "
            f"or a preset from {sorted(PRESETS)}"
        )
    return names


def requested_transforms(tta: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The transforms a ``tta`` setting asks for, or ``None`` for plain inference.

    One reading for every entry point (``evaluate_and_report``, ``predict``, k-fold, the
    recipes' ``--tta``): ``None``, ``False``, ``""``, an empty list and ``"none"`` in any case
    mean plain inference (no second pass over the test set); a comma-separated string is a list
    of transforms; names are matched without regard to case; anything else (``True``, a number)
    is refused.

    Args:
        tta: a preset, a transform, a comma-separated list or a sequence of names, or ``None``.

    Returns:
        The validated transform names, or ``None``.

    Raises:
        ValueError: an unknown name (:func:`resolve_transforms`).

    Example:
        >>> requested_transforms("NONE") is None
        True
        >>> requested_transforms("identity,hflip")
        ('identity', 'hflip')
    """
    if tta is None or tta is False:
        return None
    if isinstance(tta, str):
        if tta.strip().lower() in ("", "none"):
            return None
        if "," in tta:
            tta = [t for t in tta.split(",") if t.strip()]
    elif not isinstance(tta, Sequence) or any(not isinstance(t, str) for t in tta):
        raise ValueError(f"tta={tta!r}: give a preset or transform names (e.g. 'flips' or "
                         "['identity', 'hflip']), or None")
    elif len(tta) == 0:  # no transforms: plain inference, as before
        return None
    return resolve_transforms(tta)


def _make_transform(name: str, crop_fraction: float) -> Callable:
    import tensorflow as tf

    def resize_back(x, like):
        return tf.image.resize(x, tf.shape(like)[1:3], method="bilinear")

    def crop(x, where):
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        ch = tf.maximum(1, tf.cast(tf.round(tf.cast(h, tf.float32) * crop_fraction), tf.int32))
        cw = tf.maximum(1, tf.cast(tf.round(tf.cast(w, tf.float32) * crop_fraction), tf.int32))
        top = {"c": (h - ch) // 2, "t": 0, "b": h - ch}[where[0]]
        left = {"c": (w - cw) // 2, "l": 0, "r": w - cw}[where[1]]
        return resize_back(x[:, top : top + ch, left : left + cw, :], x)

    def rot(x, k):
        y = tf.image.rot90(x, k)
        # A non-square image rotated by 90° changes shape; resize back so the model accepts it.
        return y if k == 2 or x.shape[1] == x.shape[2] else resize_back(y, x)

    table = {
        "identity": lambda x: x,
        "hflip": lambda x: tf.reverse(x, axis=[2]),
        "vflip": lambda x: tf.reverse(x, axis=[1]),
        "rot90": lambda x: rot(x, 1),
        "rot180": lambda x: rot(x, 2),
        "rot270": lambda x: rot(x, 3),
        "crop_center": lambda x: crop(x, "cc"),
        "crop_tl": lambda x: crop(x, "tl"),
        "crop_tr": lambda x: crop(x, "tr"),
        "crop_bl": lambda x: crop(x, "bl"),
        "crop_br": lambda x: crop(x, "br"),
    }
    return table[name]


def _image_batches(images, batch_size: int) -> Iterable:
    """Batches of images from a numpy array or a tf.data.Dataset (tuples/dicts -> the image)."""
    import tensorflow as tf

    if isinstance(images, tf.data.Dataset):
        spec = images.element_spec

        def first(*el):
            el = el[0] if len(el) == 1 else el
            if isinstance(el, dict):
                return el["image"] if "image" in el else next(iter(el.values()))
            if isinstance(el, (tuple, list)):  # (x, y[, w]); x may itself be {"image": ...}
                el = el[0]
                if isinstance(el, dict):
                    return el["image"] if "image" in el else next(iter(el.values()))
            return el

        ds = images.map(first) if isinstance(spec, (tuple, list, dict)) else images
        rank = ds.element_spec.shape.rank
        if rank == 3:
            ds = ds.batch(batch_size)
        elif rank != 4:
            raise ValueError(
                f"dataset images must be (H, W, C) or batched (B, H, W, C); got rank {rank}"
            )
        for batch in ds:
            yield tf.cast(batch, tf.float32)
        return
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (H, W, C); got shape {arr.shape}")
    for start in range(0, len(arr), batch_size):
        yield tf.convert_to_tensor(arr[start : start + batch_size], dtype=tf.float32)


def predict_tta(
    model,
    images,
    *,
    transforms: str | Sequence[str] = ("identity", "hflip"),
    batch_size: int = 32,
    output: str | int | None = None,
    crop_fraction: float = 0.875,
) -> np.ndarray:
    """The mean of ``model``'s outputs over the transformed copies of each image.

    Args:
        model: a ``keras.Model`` (called with ``training=False``).
        images: ``(N, H, W, C)`` array, or a ``tf.data.Dataset`` of images, batched or not, or of
            ``(images, labels, ...)`` tuples / ``{"image": ...}`` dicts (element 0 / ``image`` is
            used, labels are ignored).
        transforms: names from :data:`TRANSFORMS` or a preset: ``"flips"`` (identity, h/v flip),
            ``"flips_rot90"`` (+ rotations by 90/180/270°), ``"five_crop"`` (centre and corner
            crops of ``crop_fraction`` of each side, resized back).
        batch_size: batch size for arrays and unbatched datasets.
        output: for multi-output models, the output name or index (default ``"label"``).
        crop_fraction: side fraction kept by the crop transforms.

    Returns:
        ``(N, C)`` float32 mean outputs (probabilities when the model ends in softmax/sigmoid).

    Example:
        >>> probs = predict_tta(model, x_test, transforms="flips")  # doctest: +SKIP
    """
    import tensorflow as tf

    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1]; got {crop_fraction}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    funcs = [_make_transform(t, crop_fraction) for t in resolve_transforms(transforms)]
    chunks: list[np.ndarray] = []
    for batch in _image_batches(images, batch_size):
        total = None
        for fn in funcs:
            out = select_output(model, model(fn(batch), training=False), output)
            out = tf.cast(out, tf.float32)
            total = out if total is None else total + out
        chunks.append((total / len(funcs)).numpy())
    if not chunks:
        raise ValueError("no images to predict (empty array or dataset)")
    return np.concatenate(chunks, axis=0).astype(np.float32)
