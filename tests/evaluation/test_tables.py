"""Report tables: metric blocks side by side, per-class scores by origin."""

from __future__ import annotations

import numpy as np
import pytest

from keras_species.evaluation.metrics import single_label_metrics
from keras_species.evaluation.tables import metrics_side_by_side, per_class_by_origin


def test_side_by_side_with_difference_and_missing_rows():
    text = metrics_side_by_side({"plain": {"accuracy": 0.855, "log_loss": 0.4},
                                 "TTA": {"accuracy": 0.87}})
    lines = text.splitlines()
    assert lines[0] == "| metric | plain | TTA | TTA − plain |"
    assert "| top-1 accuracy | 0.8550 | 0.8700 | +0.0150 |" in lines
    assert "| log loss | 0.4000 | – | – |" in lines
    assert not any("top-5" in line for line in lines)  # no block has it
    three = metrics_side_by_side({"a": {"accuracy": 1}, "b": {"accuracy": 1}, "c": {"accuracy": 0}})
    assert "−" not in three.splitlines()[0]
    with pytest.raises(ValueError):
        metrics_side_by_side({})


def test_per_class_by_origin_means():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    m = single_label_metrics(y, probs, ["cod", "eel", "zander"])
    text = per_class_by_origin(m["per_class"], ["zander"])
    assert "| **zander** | added | 1.000 | 0.500 | 0.667 | 2 |" in text
    assert "| *mean of 2 original* | original | 0.583 | 0.750 | 0.650 | 4 |" in text
    assert "| *mean of 1 added* | added | 1.000 | 0.500 | 0.667 | 2 |" in text
    with pytest.raises(ValueError, match="not in"):
        per_class_by_origin(m["per_class"], ["pike"])


def test_per_class_by_origin_mean_leaves_out_a_class_never_seen_nor_predicted():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(4)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.025  # "ray": no test sample, never predicted
    m = single_label_metrics(y, probs, ["cod", "eel", "zander", "ray"])
    assert m["per_class"][3]["predicted"] == 0 and m["per_class"][1]["predicted"] == 3
    text = per_class_by_origin(m["per_class"], ["zander"])
    assert "| ray | original | – | – | – | 0 |" in text  # before: 0.000 for nothing to score
    assert "| *mean of 2 original* | original | 0.583 | 0.750 | 0.650 | 4 |" in text


def test_per_class_by_origin_escapes_a_pipe_in_a_class_name():
    rows = [{"name": "cod", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
            {"name": "ray|skate", "precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1}]
    table = per_class_by_origin(rows, ["ray|skate"])
    row = table.splitlines()[3]
    assert row.startswith("| **ray\\|skate** | added |")
    assert len(row.replace("\\|", "").split("|")) == len(table.splitlines()[0].split("|"))
