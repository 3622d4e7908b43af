"""``import keras_species`` registers the layers without importing Keras, in any import order.

Each case runs in a fresh interpreter (the test process has Keras imported already).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REGISTERED = "keras.saving.get_registered_object('keras_species>RandomResizedCrop') is not None"


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter from the repository root; its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_the_data_layer_and_the_package_import_without_keras():
    # before: `import keras_species` imported Keras and TensorFlow (6-7 s, CUDA start-up lines)
    out = _run("import sys, keras_species, keras_species.data.sources, keras_species.data.splits, "
               "keras_species.data.audit, keras_species.training.runs, keras_species.cli; "
               "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    assert out == "False False"


@pytest.mark.parametrize("code", [
    # the package first, Keras later: registered when Keras's import completes
    f"import keras_species, keras; print({REGISTERED})",
    # Keras first: registered at once
    f"import keras, keras_species; print({REGISTERED})",
    # Keras imported from inside the library (registry.py, which the layer modules import):
    # registered once that import is over, with no circular import
    f"import keras_species.models.registry, keras; print({REGISTERED})",
    # TensorFlow looks Keras up (importlib.util.find_spec) before importing it through tf.keras
    f"import keras_species, tensorflow as tf; tf.keras.layers.Dense(1); import keras; print({REGISTERED})",
], ids=["package-then-keras", "keras-then-package", "keras-from-inside", "through-tensorflow"])
def test_the_layers_are_registered_in_any_import_order(code):
    assert _run(code) == "True"


def test_a_saved_model_reloads_with_safe_mode_after_only_importing_the_package(tmp_path):
    import keras

    from keras_species.data.augment import RandomResizedCrop

    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(RandomResizedCrop(8, 8)(inputs)))
    path = tmp_path / "m.keras"
    model.save(path)
    code = ("import keras_species, keras; "
            f"m = keras.saving.load_model({str(path)!r}, safe_mode=True); "
            "print(type(m.layers[1]).__name__)")
    assert _run(code) == "RandomResizedCrop"


def test_the_hook_leaves_the_import_system_once_the_layers_are_registered():
    out = _run("import sys, keras_species, keras; "
               "from keras_species.registration import _RegisterAfterImport; "
               "print(any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path))")
    assert out == "False"
