"""Tests of keras_species/evaluation/thresholds.py on constructed examples."""

from __future__ import annotations

import numpy as np
import pytest

from keras_species.evaluation.thresholds import (
    apply_thresholds,
    score_predictions,
    tune_global_threshold,
    tune_per_class_thresholds,
)


def _two_scales(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 separates at 0.3, class 1 at 0.7: no single threshold is perfect."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(n, 2))
    p = np.empty((n, 2))
    p[:, 0] = np.where(y[:, 0] == 1, rng.uniform(0.32, 0.45, n), rng.uniform(0.0, 0.28, n))
    p[:, 1] = np.where(y[:, 1] == 1, rng.uniform(0.75, 0.95, n), rng.uniform(0.4, 0.68, n))
    return y, p


def test_apply_thresholds() -> None:
    p = np.array([[0.2, 0.5, 0.8]])
    assert apply_thresholds(p, 0.5).tolist() == [[0, 1, 1]]
    assert apply_thresholds(p, [0.1, 0.6, 0.9]).tolist() == [[1, 0, 0]]
    with pytest.raises(ValueError, match="one value per class"):
        apply_thresholds(p, [0.5, 0.5])


def test_global_tuning_beats_default() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(60, 3))
    p = np.where(y == 1, rng.uniform(0.3, 0.45, y.shape), rng.uniform(0.0, 0.25, y.shape))
    default = score_predictions(y, apply_thresholds(p, 0.5))
    t, s = tune_global_threshold(y, p)
    assert default == 0.0 and s == pytest.approx(1.0)
    assert 0.25 < t <= 0.3
    t_em, s_em = tune_global_threshold(y, p, metric="exact_match")
    assert s_em == 1.0
    with pytest.raises(ValueError, match="unknown metric"):
        tune_global_threshold(y, p, metric="auc")


def test_per_class_beats_global() -> None:
    y, p = _two_scales()
    t, s_global = tune_global_threshold(y, p)
    thr, s_per = tune_per_class_thresholds(y, p)
    assert s_global < 1.0
    assert s_per == pytest.approx(1.0) and s_per >= s_global
    assert 0.28 < thr[0] <= 0.32 and 0.68 <= thr[1] <= 0.75


def test_class_without_positives_keeps_global() -> None:
    y, p = _two_scales()
    y = np.c_[y, np.zeros(len(y), int)]
    p = np.c_[p, np.full(len(y), 0.1)]
    thr, _ = tune_per_class_thresholds(y, p, global_threshold=0.42)
    assert thr[2] == pytest.approx(0.42)


def test_samples_f1_scorer_counts_a_right_tag_free_answer() -> None:
    # before: the samples_f1 scorer gave a tag-free image with no predicted tag 0, so tuning on
    # it pushed thresholds down to predict a tag on every image
    y = np.array([[0, 0], [1, 0]])
    assert score_predictions(y, np.array([[0, 0], [1, 0]]), "samples_f1") == 1.0
    assert score_predictions(y, np.array([[0, 0], [0, 0]]), "samples_f1") == 0.5  # a miss is 0


def test_scorers_and_tuning_read_one_tag_as_multi_label() -> None:
    # before: sklearn read a one-column matrix as binary labels: micro F1 counted "no tag" as a
    # class (0.75 instead of 2/3) and samples F1 raised
    y = np.array([[1], [0], [1], [0]])
    pred = np.array([[1], [0], [0], [0]])
    assert score_predictions(y, pred, "micro_f1") == pytest.approx(2 / 3)
    assert score_predictions(y, pred, "macro_f1") == pytest.approx(2 / 3)
    assert score_predictions(y, pred, "samples_f1") == pytest.approx(3 / 4)
    p = np.array([[0.9], [0.2], [0.4], [0.1]])
    t, s = tune_global_threshold(y, p)
    assert 0.2 < t <= 0.4 and s == 1.0
    # a one-value grid scores one column of candidates per tag, the same way
    thr, s = tune_per_class_thresholds(y, p, grid=[0.3], global_threshold=0.3)
    assert thr.tolist() == [0.3] and s == 1.0


@pytest.mark.parametrize("grid", [[], [0.5, 1.5], [float("nan")]])
def test_a_grid_without_usable_thresholds_is_named(grid):
    # an empty grid failed inside NumPy ("zero-size array to reduction operation maximum")
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.8, 0.3], [0.2, 0.9]])
    with pytest.raises(ValueError, match=r"grid must hold one or more thresholds in \[0, 1\]"):
        tune_global_threshold(y, p, grid=grid)
    with pytest.raises(ValueError, match="grid must hold"):
        tune_per_class_thresholds(y, p, grid=grid, global_threshold=0.5)


def test_a_grid_of_arange_that_overshoots_1_by_rounding_is_taken():
    # np.arange(0.1, 1.05, 0.05) ends at 1.0000000000000004; the first check refused it, naming
    # five valid values
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.8, 0.3], [0.2, 0.9]])
    t, _ = tune_global_threshold(y, p, grid=np.arange(0.1, 1.05, 0.05))
    assert 0.1 <= t <= 1.0
    with pytest.raises(ValueError, match=r"got \[1.5\]"):
        tune_global_threshold(y, p, grid=[0.2, 0.5, 1.5])


def test_tuning_refuses_logits_and_labels_other_than_0_and_1():
    # logits were tuned to a meaningless 0.06, and 0/2 labels scored, without a word
    y = np.array([[1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="Pass probabilities, not logits"):
        tune_global_threshold(y, np.array([[3.0, -2.0], [-1.0, 4.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"y_true must hold 0/1 labels \(multi-hot\); got values \[2\]"):
        tune_per_class_thresholds(y * 2, np.full((3, 2), 0.5), global_threshold=0.5)
