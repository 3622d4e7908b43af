"""Model zoo: backbone registry, heads, scratch CNNs and the two-output autoencoder."""

import importlib as _importlib

from keras_species.models.registry import (
    BackboneSpec,
    get_backbone,
    list_backbones,
    register_backbone,
)

# Family modules register their entries on import.
for _family in ("applications", "resnet", "efficientnet_lite"):
    try:
        _importlib.import_module(f"keras_species.models.{_family}")
    except ModuleNotFoundError as _err:
        if _err.name != f"keras_species.models.{_family}":
            raise

__all__ = ["BackboneSpec", "get_backbone", "list_backbones", "register_backbone"]
