"""Backbone registry: one entry per name with its builder, input size, preprocessing and weights.

Family modules (``applications.py``, ``resnet.py``, ``efficientnet_lite.py``) register their
entries with :func:`register_backbone` when :mod:`keras_species.models` is imported. A recipe asks
for ``--backbone convnext_tiny`` and gets the right preprocessing without knowing the family.

An entry's facts (everything but its builder) come from :mod:`keras_species.backbone_catalog`,
which needs no Keras: :func:`backbone_spec` adds the builder to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import keras

from keras_species.backbone_catalog import (
    BACKBONES,
    BackboneFacts,
    backbone_key,
    check_input_size,
    unknown_backbone,
)

__all__ = [
    "BackboneBuilder",
    "BackboneSpec",
    "backbone_spec",
    "check_input_size",  # keras_species.backbone_catalog's, here for the family modules
    "get_backbone",
    "list_backbones",
    "register_backbone",
]

BackboneBuilder = Callable[..., keras.Model]
"""``builder(input_shape, weights) -> keras.Model``: a headless backbone taking *preprocessed*
input (as named by the entry's ``preprocessing``) and returning its last feature map."""


@dataclass(frozen=True, kw_only=True)
class BackboneSpec(BackboneFacts):
    """One registry entry: a backbone's facts (:class:`~keras_species.backbone_catalog.BackboneFacts`,
    every field but the builder) and its builder.

    Args:
        builder: ``builder(input_shape, weights)`` returning a headless ``keras.Model``.
    """

    builder: BackboneBuilder


def backbone_spec(facts: BackboneFacts, builder: BackboneBuilder) -> BackboneSpec:
    """The registry entry of a backbone: its catalog facts with its builder.

    Args:
        facts: the backbone's facts (:mod:`keras_species.backbone_catalog`).
        builder: ``builder(input_shape, weights)`` returning a headless ``keras.Model``.

    Returns:
        A :class:`BackboneSpec` whose fields besides ``builder`` equal ``facts``'s.

    Example:
        >>> from keras_species.backbone_catalog import backbone_facts
        >>> backbone_spec(backbone_facts("resnet18"), lambda shape, weights: None).min_size
        1
    """
    values = {f.name: getattr(facts, f.name) for f in dataclasses.fields(facts)}
    return BackboneSpec(builder=builder, **values)


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry (a name may be registered once).

    A backbone the catalog does not list (one registered by user code) joins
    :data:`keras_species.backbone_catalog.BACKBONES` too, so that the checks that read facts
    there (``recipe.check_weights``, ``training.features.feature_input_size``) know it.

    Args:
        spec: the backbone's facts and builder.

    Returns:
        ``spec``.

    Raises:
        ValueError: a backbone of that name (in any case) is registered already.

    Example:
        >>> register_backbone(get_backbone("resnet18"))  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: backbone 'resnet18' is already registered
    """
    key = spec.name.lower()
    if key in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[key] = spec
    BACKBONES.setdefault(backbone_key(spec.name), spec)  # a BackboneSpec is a BackboneFacts
    return spec


def get_backbone(name: str) -> BackboneSpec:
    """The registry entry ``name`` (case-insensitive).

    Raises:
        KeyError: with the closest names when ``name`` is unknown.
    """
    key = backbone_key(name)
    if key not in _REGISTRY:
        raise unknown_backbone(name, _REGISTRY)
    return _REGISTRY[key]


def list_backbones(family: str | None = None) -> list[BackboneSpec]:
    """All registry entries (optionally of one family), sorted by family then name.

    Args:
        family: a family as ``keras-species models`` shows it (``"ResNet"``, ``"ResNet
            (torchvision)"``; any case), or ``None`` for all.

    Returns:
        The entries.

    Raises:
        KeyError: an unknown family, with the families there are (it gave ``[]`` without a word).

    Example:
        >>> import keras_species.models as m
        >>> "resnet18" in [s.name for s in m.list_backbones()]
        True
    """
    specs = [s for s in _REGISTRY.values() if family is None or s.family.lower() == family.lower()]
    if family is not None and not specs:
        families = sorted({s.family for s in _REGISTRY.values()})
        raise KeyError(f"no backbone family {family!r}; the families: {', '.join(families)}")
    return sorted(specs, key=lambda s: (s.family, s.name))
