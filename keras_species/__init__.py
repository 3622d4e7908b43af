"""keras-species: train, evaluate and ship species image classifiers with Keras 3.

Importing the package registers its serializable layers, so ``.keras`` files written by it
reload in plain Keras with ``keras.saving.load_model(path, safe_mode=True)``.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from keras_species import layers as _layers  # noqa: E402,F401  (registers custom layers)
