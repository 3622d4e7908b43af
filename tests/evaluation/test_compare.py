"""Tests of keras_species/evaluation/compare.py."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from keras_species.evaluation.compare import compare_models, comparison_table

Y = np.array([0, 1, 2, 0, 1, 2])


def _probs(pred: list[int], c: int = 3) -> np.ndarray:
    p = np.full((len(pred), c), 0.1)
    p[np.arange(len(pred)), pred] = 0.8
    return p


def test_unique_counts_hand_example() -> None:
    # correct: a = [1,1,1,0,0,0], b = [1,1,0,1,0,0], c = [1,0,0,1,1,0]
    results = {
        "a": {"probs": _probs([0, 1, 2, 1, 0, 0]), "y_true": Y, "params": 1234567, "val_loss": 0.5},
        "b": {"probs": _probs([0, 1, 0, 0, 0, 0]), "y_true": Y, "test_acc": 0.99},
        "c": {"probs": _probs([0, 2, 0, 0, 1, 0]), "y_true": Y},
    }
    rows = compare_models(results)
    by = {r["model"]: r for r in rows}
    # sample 2 only a right; sample 4 only c right; sample 1 only c wrong; sample 3 only a wrong
    assert (by["a"]["unique_correct"], by["a"]["unique_wrong"]) == (1, 1)
    assert (by["b"]["unique_correct"], by["b"]["unique_wrong"]) == (0, 0)
    assert (by["c"]["unique_correct"], by["c"]["unique_wrong"]) == (1, 1)
    assert by["a"]["test_acc"] == pytest.approx(0.5)
    assert by["b"]["test_acc"] == 0.99  # given values win
    assert by["c"]["test_loss"] == pytest.approx(skm.log_loss(Y, results["c"]["probs"] / 1.0))
    assert "top5" in by["a"]  # C=3: top-5 is undefined -> None
    assert by["a"]["top5"] is None

    table = comparison_table(rows)
    lines = table.strip().splitlines()
    assert lines[0].startswith("| Model | #parameters | val loss")
    assert "#unique correct" in lines[0] and "#unique errors" in lines[0]
    assert "1,234,567" in table and "**0.9900**" in table
    assert len(lines) == 2 + 3


def test_different_test_sets_rejected() -> None:
    with pytest.raises(ValueError, match="one test set"):
        compare_models({"a": {"probs": _probs([0, 1]), "y_true": Y[:2]},
                        "b": {"probs": _probs([0, 1]), "y_true": Y[1:3]}})


def test_multilabel_rows() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0]])
    rows = compare_models({"a": {"probs": y * 0.9, "y_true": y},
                           "b": {"probs": np.full((3, 2), 0.1), "y_true": y}})
    assert rows[0]["test_acc"] == 1.0 and rows[0]["unique_correct"] == 2
    assert rows[1]["unique_wrong"] == 2


def test_values_that_print_alike_are_bold_alike() -> None:
    # before: 0.5 was bold and 0.49999, printed as the same 0.5000, was not
    table = comparison_table([{"model": "a", "test_acc": 0.5}, {"model": "b", "test_acc": 0.49999},
                              {"model": "c", "test_acc": 0.4}])
    assert table.count("**0.5000**") == 2 and "**0.4000**" not in table


def test_the_tta_column_has_a_header_and_its_best_in_bold() -> None:
    # before: a raw `test_acc_tta` header, never bolded (scratch_cnn's ablation table)
    table = comparison_table([{"model": "a", "test_acc_tta": 0.7}, {"model": "b", "test_acc_tta": 0.6}])
    assert "test acc (TTA)" in table and "**0.7000**" in table and "test_acc_tta" not in table
