"""Tests of keras_species/evaluation/outputs.py: one output of a prediction by name or index."""

from __future__ import annotations

import numpy as np
import pytest

from keras_species.evaluation.outputs import select_output


class _Model:
    def __init__(self, names):
        self.output_names = names


def test_single_output_passes_through() -> None:
    x = np.ones(3)
    assert select_output(_Model(["label"]), x, None) is x
    assert select_output(_Model(["label"]), [x], None) is x


def test_dict_by_name_index_and_default() -> None:
    # Keras orders a dict's outputs by sorted key and names them after their layers: the index
    # and the layer names follow that order, not the dict's (before: the dict's insertion order)
    import keras

    inp = keras.Input((4,))
    model = keras.Model(inp, {"zeta": keras.layers.Dense(2, name="aux_head")(inp),
                              "label": keras.layers.Dense(3, name="species")(inp)})
    assert model.output_names == ["species", "aux_head"]
    out = model.predict(np.ones((1, 4)), verbose=0)
    assert select_output(model, out, None) is out["label"]
    assert select_output(model, out, "zeta") is out["zeta"]
    assert select_output(model, out, 0) is out["label"]
    assert select_output(model, out, -1) is out["zeta"]
    assert select_output(model, out, "aux_head") is out["zeta"]  # a layer's name
    with pytest.raises(ValueError, match="2 outputs"):
        select_output(model, out, 5)
    with pytest.raises(ValueError, match="pass output="):
        select_output(model, out, "nope")


def test_list_by_name_and_index() -> None:
    out = [np.zeros(2), np.ones(2)]
    model = _Model(["aux", "label"])
    assert select_output(model, out, None) is out[1]
    assert select_output(model, out, 0) is out[0]
    with pytest.raises(ValueError, match="2 outputs"):
        select_output(model, out, 2)
    with pytest.raises(ValueError, match="name or index"):
        select_output(_Model(["a", "b"]), out, None)
    with pytest.raises(ValueError, match="name or index"):
        select_output(model, out, True)
