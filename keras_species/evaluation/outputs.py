"""Which of a model's outputs is the classifier's: one rule for plain inference and for TTA.

A multi-output model (the autoencoder's ``{"label", "reconstruction"}``, a model with an auxiliary
head) gives a dict or a list; ``output=`` names the classifier's output or gives its index in
``model.output_names``. Keras has no helper that reads one output of a prediction by name or index
across its dict and list forms, so it is written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["select_output"]


def _names(model: Any) -> list[str]:
    return list(getattr(model, "output_names", None) or [])


def select_output(model: Any, outputs: Any, output: str | int | None = None) -> Any:
    """The wanted output of a model's prediction (a single output passes through).

    Args:
        model: the model that made ``outputs`` (its ``output_names`` map indices to names).
        outputs: what ``model.predict`` or ``model(x)`` returned: an array or tensor, a dict of
            them, or a list/tuple of them.
        output: the classifier output's name or its index in ``model.output_names``; ``None``:
            the only output, else the one named ``"label"``.

    Returns:
        The selected array or tensor, unconverted.

    Raises:
        ValueError: the name or index matches no output (the message lists them).

    Example:
        >>> import numpy as np
        >>> class M: output_names = ["aux", "label"]
        >>> select_output(M(), {"aux": np.zeros(2), "label": np.ones(2)}, 0).tolist()
        [0.0, 0.0]
    """
    if isinstance(output, bool):
        raise ValueError(f"output={output!r}: give the classifier output's name or index")
    if not isinstance(outputs, Mapping | list | tuple):
        return outputs
    names = _names(model)
    if isinstance(outputs, Mapping):
        # Keras flattens a dict of outputs in sorted key order, and output_names holds the
        # output layers' names in that order (they may differ from the keys)
        keys = sorted(outputs)
        if isinstance(output, int):
            if not -len(keys) <= output < len(keys):
                raise ValueError(f"output={output}: the model has {len(keys)} outputs {names or keys}")
            return outputs[keys[output]]
        key = "label" if output is None and len(keys) != 1 else (output or keys[0])
        if key in outputs:
            return outputs[key]
        if key in names and len(names) == len(keys):  # an output layer's name
            return outputs[keys[names.index(key)]]
        raise ValueError(f"model has outputs {keys}; pass output= one of them (name or index)")
    if isinstance(output, int):
        if not -len(outputs) <= output < len(outputs):
            raise ValueError(f"output={output}: the model has {len(outputs)} outputs {names}")
        return outputs[output]
    if output is None and len(outputs) == 1:
        return outputs[0]
    key = output or "label"
    if key in names and len(names) == len(outputs):
        return outputs[names.index(key)]
    raise ValueError(f"model has {len(outputs)} outputs named {names}; pass output= the "
                     "classifier's name or index")
