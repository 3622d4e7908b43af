"""keras-species: train, evaluate and ship species image classifiers with Keras 3.

Importing the package registers its serializable layers, so ``.keras`` files written by it
reload in plain Keras with ``keras.saving.load_model(path, safe_mode=True)``. It does not import
Keras (and its backend) to do so: it registers them at once if Keras is already imported, else as
soon as Keras is (:mod:`keras_species.registration`), so that the data layer and the data
commands start without TensorFlow.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from keras_species.cpu_budget import default_tensorflow_threads as _default_threads  # noqa: E402
from keras_species.registration import register_layers as _register_layers  # noqa: E402

_default_threads()  # under a container's CPU quota, TensorFlow's pools follow it (cpu_budget.py)
_register_layers()
