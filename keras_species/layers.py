"""Registration point of every custom, serializable Keras layer of keras-species.

Importing this module (done by ``import keras_species``) imports each module that defines a
``@keras.saving.register_keras_serializable(package="keras_species")`` layer, so that saved
models reload with ``safe_mode=True``. Modules are imported only if present.
"""

import importlib

_LAYER_MODULES = (
    "keras_species.data.augment",
    "keras_species.models.preprocessing",
    "keras_species.models.efficientnet_lite",
    "keras_species.models.resnet",
    "keras_species.models.autoencoder",
    "keras_species.models.labels",
)

for _name in _LAYER_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _err:  # a module not written yet, never a missing dependency
        if _err.name != _name:
            raise
