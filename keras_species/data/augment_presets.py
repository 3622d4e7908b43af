"""The augmentation presets of the five reports, as plain data: their names and settings.

:mod:`keras_species.data.augment` builds each preset's Keras layers from these settings, and a
recipe's ``--augment`` check (``keras_species.recipe.check_settings``) reads :data:`PRESETS`
without importing Keras: this module imports nothing heavy. The presets are described in
:mod:`keras_species.data.augment`.
"""

from __future__ import annotations

import numbers
from typing import Literal, get_args

AugmentPreset = Literal["none", "r1", "r1_pseudo", "r3", "r4", "r5", "randaugment"]
"""The type of an ``--augment`` setting: a recipe's parser offers these names as its choices."""

PRESETS: tuple[str, ...] = get_args(AugmentPreset)
"""The preset names (``--augment``)."""

FIELDS: dict[str, object] = {
    "crop_area": None,  # (min, max) area fraction of RandomResizedCrop
    "crop_ratio": (3 / 4, 4 / 3),  # aspect ratio range of RandomResizedCrop
    "flip": None,  # "horizontal", "vertical" or "horizontal_and_vertical"
    "rotation": None,  # degrees: a float (±) or a (min, max) pair
    "translation": None,  # fraction of height and width
    "zoom": None,  # fraction (± zoom)
    "contrast": None,  # contrast factor
    "fill_mode": "reflect",  # fill of rotation/shift/zoom: reflect, constant, nearest, wrap
    "randaugment_ops": None,  # RandAugment: number of ops per image
    "randaugment_magnitude": 0.5,  # RandAugment: factor
}
"""Every setting of a preset, with its value where a preset does not set it."""

PRESET_FIELDS: dict[str, dict[str, object]] = {
    "r1": {"flip": "horizontal", "rotation": 30.0, "fill_mode": "constant"},
    "r1_pseudo": {"flip": "horizontal", "rotation": 45.0, "fill_mode": "constant"},
    "r3": {"rotation": 180.0, "flip": "horizontal_and_vertical", "contrast": 0.2, "fill_mode": "reflect"},
    "r4": {"crop_area": (0.08, 1.0), "flip": "horizontal", "rotation": 25.0, "fill_mode": "reflect"},
    "r5": {"rotation": 40.0, "translation": 0.2, "zoom": 0.2, "flip": "horizontal", "fill_mode": "nearest"},
    "randaugment": {"randaugment_ops": 2, "randaugment_magnitude": 0.5},
}
"""What each preset sets (``none`` sets nothing: no augmentation)."""


def preset_fields(preset: str, **overrides: object) -> dict[str, object]:
    """The resolved settings of a preset after ``overrides`` (see :mod:`keras_species.data.augment`).

    Args:
        preset: one of :data:`PRESETS`.
        **overrides: any of ``crop_area``, ``crop_ratio``, ``flip``, ``rotation`` (degrees),
            ``translation``, ``zoom``, ``contrast``, ``fill_mode``, ``randaugment_ops``,
            ``randaugment_magnitude``.

    Returns:
        A dict of every field.

    Example:
        >>> preset_fields("r1")["rotation"]
        30.0
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {PRESETS}")
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown augmentation settings {unknown}; valid: {sorted(FIELDS)}")
    for key, value in overrides.items():
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # np.array(15.0): a number
            overrides[key] = value = value.item()
        problem = _value_problem(key, value)
        if problem:
            raise ValueError(f"augmentation setting {key}={value!r}: {problem}")
        if _pair(value):  # a list or an array of two, as a tuple of floats (``if rotation:`` works)
            overrides[key] = (float(value[0]), float(value[1]))
    fields = dict(FIELDS)
    fields.update(PRESET_FIELDS.get(preset, {}))
    fields.update(overrides)
    return fields


FLIPS = ("horizontal", "vertical", "horizontal_and_vertical")
FILL_MODES = ("reflect", "constant", "nearest", "wrap")


def _number(value: object) -> bool:
    """A real number, NumPy's too (``np.float32(15)``), not a bool, not NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value


def _pair(value: object) -> bool:
    """Two numbers: a tuple, a list or a 1-D array of two (a JSON list, ``np.array([.75, 1.33])``)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not hasattr(value, "__getitem__"):
        return False
    return len(value) == 2 and all(_number(value[i]) for i in range(2))


NONE_ALLOWED = frozenset(key for key, default in FIELDS.items() if default is None)
"""The settings that ``None`` turns off (their default): the others need a value."""


def _value_problem(key: str, value: object) -> str:
    """What is wrong with an override's value ('' when nothing). Keras' RandomFlip takes any
    string and flips nothing for one it does not know (``"both"``, ``True``), and a scalar where
    a pair is meant failed deep in a layer with a bare ``TypeError``."""
    if value is None:
        return "" if key in NONE_ALLOWED else f"give a value (the default is {FIELDS[key]!r})"
    if key == "flip":
        off = value is False or value == ""
        return "" if off or value in FLIPS else f"give one of {', '.join(FLIPS)}, or None for no flip"
    if key == "fill_mode":
        return "" if value in FILL_MODES else f"give one of {', '.join(FILL_MODES)}"
    if key in ("crop_area", "crop_ratio"):
        return "" if _pair(value) else "give a (min, max) pair of numbers, e.g. (0.08, 1.0)"
    if key == "rotation":
        if not (_number(value) or _pair(value)):
            return "give degrees: a number (±) or a (min, max) pair"
        # Keras' RandomRotation takes a share of a turn in [-1, 1] and named that (`factor`)
        degrees = [value] if _number(value) else [value[0], value[1]]
        return "" if all(abs(float(d)) <= 360 for d in degrees) else "give degrees, at most 360 either way"
    if key == "randaugment_ops":
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return "" if whole and value >= 0 else "give a whole number of ops, at least 0"
    if key in ("translation", "zoom", "contrast", "randaugment_magnitude"):
        if not (_number(value) and value >= 0):
            return "give one number, at least 0 (the same for both axes)"
        # the bounds of the Keras layers they set, which named their own arguments instead
        # (`factor`, `height_factor`) and read zoom=1 as -1
        if key == "zoom" and value >= 1:
            return "give a share of the side below 1 (0.2: zoom in or out by up to 20%)"
        if value > 1:
            return {"translation": "give a share of the side, at most 1 (0.1: up to 10%)",
                    "contrast": "give a share, at most 1 (0.2: contrast 0.8 to 1.2)",
                    "randaugment_magnitude": "give a strength from 0 to 1"}[key]
    return ""


__all__ = ["PRESETS", "FIELDS", "PRESET_FIELDS", "preset_fields"]
