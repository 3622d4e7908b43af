"""Mixed precision policies: layers compute in float16/bfloat16, models return float32 (CPU)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_species.models.classifier import backbone_of, build_classifier
from keras_species.training.precision import precision_policy, resolve_policy


def test_resolve_policy(monkeypatch):
    import warnings

    import keras_species.training.precision as P

    monkeypatch.setattr(P, "gpu_available", lambda: True)
    assert resolve_policy("auto") == "mixed_float16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float16 where a GPU is: no warning
        assert resolve_policy("float16") == "mixed_float16"
    monkeypatch.setattr(P, "gpu_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor for what runs at its normal speed on a CPU
        assert resolve_policy("auto") == "float32"
        assert resolve_policy("bfloat16") == "mixed_bfloat16"
        assert resolve_policy("off") == "float32"
        assert resolve_policy("float32") == "float32"
    for mode in ("float16", "mixed_float16"):
        with pytest.warns(UserWarning, match="mixed_float16 without a GPU"):
            assert resolve_policy(mode) == "mixed_float16"
    with pytest.raises(ValueError, match="auto"):
        resolve_policy("half")


def test_context_restores_the_previous_policy():
    before = keras.mixed_precision.global_policy().name
    with precision_policy("bfloat16") as policy:
        assert policy == keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before
    with pytest.raises(RuntimeError), precision_policy("float16"):
        raise RuntimeError("boom")
    assert keras.mixed_precision.global_policy().name == before


@pytest.mark.parametrize("mode,dtype", [("float16", "float16"), ("bfloat16", "bfloat16")])
def test_classifier_computes_in_low_precision_and_returns_float32(mode, dtype):
    with precision_policy(mode):
        model = build_classifier("resnet18", 3, input_size=32)
    conv = backbone_of(model).get_layer("stage4_block2_conv2")
    assert conv.compute_dtype == dtype and conv.variable_dtype == "float32"
    assert model.get_layer("label").compute_dtype == "float32"
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    out = model(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-3)
