"""Tests of keras_species/evaluation/metrics.py against hand-computed values and sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from keras_species.data.manifest import Manifest
from keras_species.evaluation.metrics import (
    majority_class,
    multilabel_metrics,
    single_label_metrics,
    unique_correct_wrong,
)
from keras_species.evaluation.thresholds import multilabel_macro_f1

NAMES = ["cod", "eel", "ray"]
# y_pred = argmax = [0, 1, 1, 2, 0, 2]; correct at 0, 1, 3, 5 -> accuracy 4/6.
Y = np.array([0, 0, 1, 2, 2, 2])
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.2, 0.7],
        [0.5, 0.1, 0.4],
        [0.2, 0.3, 0.5],
    ]
)


def test_single_label_hand_values() -> None:
    m = single_label_metrics(Y, P, NAMES, top_k=(1, 2, 5))
    assert m["n"] == 6 and m["task"] == "single_label"
    assert m["accuracy"] == pytest.approx(4 / 6)
    # top-2: sample 1 (true 0 second), sample 4 (true 2 second) -> all 6 right.
    assert m["top2_accuracy"] == pytest.approx(1.0)
    assert "top5_accuracy" not in m  # k >= C is skipped
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    cod, eel, ray = m["per_class"]
    assert (cod["precision"], cod["recall"], cod["support"]) == (0.5, 0.5, 2)
    assert (eel["precision"], eel["recall"]) == (0.5, 1.0)
    assert ray["precision"] == 1.0 and ray["recall"] == pytest.approx(2 / 3)
    assert m["f1_micro"] == pytest.approx(4 / 6)
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y, P))
    assert m["roc_auc_ovr_macro"] == pytest.approx(skm.roc_auc_score(Y, P, multi_class="ovr"))
    assert m["average_precision_macro"] == pytest.approx(
        skm.average_precision_score(np.eye(3)[Y], P, average="macro")
    )
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(Y, P.argmax(1), average="weighted"))
    # majority of the test labels is "ray" (3/6)
    assert m["majority_class"] == "ray" and m["majority_baseline"] == pytest.approx(0.5)
    json.dumps(m)  # JSON-ready


def test_majority_baseline_uses_train_counts() -> None:
    m = single_label_metrics(Y, P, NAMES, train_counts=[10, 50, 5])
    assert m["majority_class"] == "eel" and m["majority_source"] == "train"
    assert m["majority_baseline"] == pytest.approx(1 / 6)
    assert majority_class(Y, 3) == (2, "test")


def test_absent_class_is_reported_not_fatal() -> None:
    names = ["a", "b", "c", "d"]
    y = np.array([0, 1, 2, 0, 1, 2])
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=6)
    m = single_label_metrics(y, p, names)
    assert m["absent_classes"] == ["d"]
    assert "3 of 4" in m["auc_note"]
    expected = np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in range(3)])
    assert m["roc_auc_ovr_macro"] == pytest.approx(expected)
    assert m["per_class"][3]["roc_auc"] is None and m["per_class"][3]["support"] == 0
    assert np.isfinite(m["log_loss"])
    json.dumps(m, allow_nan=False)


def test_macro_scores_leave_out_a_class_with_no_sample_and_no_prediction() -> None:
    names = ["a", "b", "c", "dead"]
    y = np.array([0, 1, 2, 0, 1, 2])
    pred = np.array([0, 1, 2, 0, 2, 2])
    probs = np.eye(4)[pred] * 0.9 + 0.025
    m = single_label_metrics(y, probs, names)
    # sklearn's own default (labels=None) scores the classes in y_true or y_pred: a, b, c
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_macro"] > skm.f1_score(y, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert m["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["macro_classes"] == 3 and m["per_class"][3]["support"] == 0
    # a class predicted but absent from the test labels still counts (its precision is 0)
    pred2 = np.array([0, 1, 2, 0, 3, 2])
    m2 = single_label_metrics(y, np.eye(4)[pred2] * 0.9 + 0.025, names)
    assert m2["macro_classes"] == 4
    assert m2["f1_macro"] == pytest.approx(skm.f1_score(y, pred2, average="macro", zero_division=0))


def test_single_class_test_set_has_no_auc() -> None:
    m = single_label_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
    assert m["roc_auc_ovr_macro"] is None and m["accuracy"] == 0.5


def test_bad_input_messages() -> None:
    with pytest.raises(ValueError, match="class_names"):
        single_label_metrics(Y, P, ["a", "b"])
    with pytest.raises(ValueError, match="unlabelled"):
        single_label_metrics(np.array([-1, 0, 0, 0, 0, 0]), P, NAMES)
    with pytest.raises(ValueError, match="rows"):
        single_label_metrics(Y[:3], P, NAMES)


def test_multilabel_values_and_no_tag_baseline() -> None:
    y = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[0.9, 0.2, 0.1], [0.1, 0.6, 0.1], [0.8, 0.7, 0.3], [0.2, 0.1, 0.1]])
    m = multilabel_metrics(y, p, NAMES)
    pred = (p >= 0.5).astype(int)
    assert m["exact_match"] == pytest.approx(0.75)  # sample 1 has a false "eel"
    assert m["hamming_loss"] == pytest.approx(1 / 12)
    assert m["f1_micro"] == pytest.approx(skm.f1_score(y, pred, average="micro"))
    # per image 1, 0 (a false "eel"), 1, and 1 for the tag-free image with no tag predicted
    # (before: 0.5, sklearn's zero_division=0 scored that right answer 0)
    assert m["f1_samples"] == pytest.approx(0.75)
    assert m["precision_micro"] == pytest.approx(3 / 4) and m["recall_micro"] == 1.0
    # ray has no positives: no AP, excluded from mAP
    assert m["absent_classes"] == ["ray"] and m["per_class"][2]["average_precision"] is None
    assert m["map"] == pytest.approx(np.mean([1.0, skm.average_precision_score(y[:, 1], p[:, 1])]))
    assert m["no_tag_exact_match"] == pytest.approx(0.5) and m["no_tag_f1_micro"] == 0.0
    assert m["no_tag_hamming_loss"] == pytest.approx(3 / 12)
    # ray has no positive and no prediction: macro F1 over cod and eel only
    assert m["macro_classes"] == 2
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y[:, :2], pred[:, :2], average="macro"))
    assert m["f1_macro"] > skm.f1_score(y, pred, average="macro", zero_division=0)
    json.dumps(m, allow_nan=False)


def test_multilabel_baseline_is_the_majority_training_label_set() -> None:
    # Training split: {cod} 4x, no tag 2x, {cod, eel} 1x -> the baseline always answers {cod}.
    train = np.array([[1, 0, 0]] * 4 + [[0, 0, 0]] * 2 + [[1, 1, 0]])
    # Test split: 3 of 5 rows are {cod}; only 1 carries no tag.
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 1]])
    p = np.full(y.shape, 0.1)
    m = multilabel_metrics(y, p, NAMES, train_labels=train)
    constant = np.tile([1, 0, 0], (5, 1))
    assert m["majority_label_set"] == ["cod"] and m["majority_source"] == "train"
    assert m["majority_baseline"] == pytest.approx(3 / 5)
    assert m["majority_f1_micro"] == pytest.approx(skm.f1_score(y, constant, average="micro"))
    assert m["majority_hamming_loss"] == pytest.approx(skm.hamming_loss(y, constant))
    assert m["majority_baseline"] > m["no_tag_exact_match"] == pytest.approx(1 / 5)
    # Without training labels: the most frequent *test* set, also {cod} here.
    m_test = multilabel_metrics(y, p, NAMES)
    assert m_test["majority_source"] == "test" and m_test["majority_label_set"] == ["cod"]
    # The training set decides, not the test one: a {ray}-heavy training split -> {ray}.
    m_ray = multilabel_metrics(y, p, NAMES, train_labels=np.array([[0, 0, 1]] * 3 + [[1, 0, 0]]))
    assert m_ray["majority_label_set"] == ["ray"] and m_ray["majority_baseline"] == 0.0
    with pytest.raises(ValueError, match="train_labels must be"):
        multilabel_metrics(y, p, NAMES, train_labels=train[:, :2])
    json.dumps(m, allow_nan=False)


def test_multilabel_baseline_is_the_audits_majority_label_set(image_folder) -> None:
    # One rule for both: auditing the training rows names the set the run's baseline predicts.
    from keras_species.data.audit import audit
    from keras_species.data.sources import from_folder

    folder = from_folder(image_folder)
    train = np.zeros((len(folder), 3), np.uint8)
    train[:4, 0] = 1  # 4 x {cod}
    train[4:9, 1:] = 1  # 5 x {eel, ray}
    train[9:13, 2] = 1  # 4 x {ray}; the last 5 rows carry no tag: a tie with {eel, ray},
    # which goes to "no tag" (the audit's rule)
    report = audit(Manifest(folder.paths, train, NAMES), progress=False)
    m = multilabel_metrics(train, np.zeros(train.shape), NAMES, train_labels=train)
    assert report.majority_label == ";".join(m["majority_label_set"]) == ""
    assert report.majority_baseline == pytest.approx(m["majority_baseline"])
    train[13, 1:] = 1  # a sixth {eel, ray}: it wins outright
    report = audit(Manifest(folder.paths, train, NAMES), progress=False)
    m = multilabel_metrics(train, np.zeros(train.shape), NAMES, train_labels=train)
    assert report.majority_label == ";".join(m["majority_label_set"]) == "eel;ray"
    assert report.majority_baseline == pytest.approx(m["majority_baseline"]) == pytest.approx(6 / 18)


def test_multilabel_macro_f1_counts_a_false_tag_and_an_all_empty_answer() -> None:
    y = np.array([[1, 0], [0, 0]])
    assert multilabel_macro_f1(y, np.array([[1, 0], [0, 0]])) == 1.0
    assert multilabel_macro_f1(y, np.array([[1, 0], [0, 1]])) == 0.5  # a false "b" scores 0
    assert multilabel_macro_f1(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0  # nothing to find


def test_multilabel_per_class_thresholds() -> None:
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.3, 0.2], [0.1, 0.9]])
    assert multilabel_metrics(y, p)["exact_match"] == 0.5
    m = multilabel_metrics(y, p, thresholds=[0.25, 0.5])
    assert m["exact_match"] == 1.0 and m["thresholds"] == [0.25, 0.5]


def test_unique_correct_wrong_hand_example() -> None:
    correct = {
        "a": np.array([1, 1, 0, 0, 1, 0], bool),
        "b": np.array([1, 0, 0, 1, 1, 0], bool),
        "c": np.array([1, 0, 1, 1, 0, 0], bool),
    }
    r = unique_correct_wrong(correct)
    assert r["a"]["unique_correct_indices"] == [1] and r["a"]["unique_wrong_indices"] == [3]
    assert r["b"]["unique_correct"] == 0 and r["b"]["unique_wrong"] == 0
    assert r["c"]["unique_correct_indices"] == [2] and r["c"]["unique_wrong_indices"] == [4]
    with pytest.raises(ValueError, match="length"):
        unique_correct_wrong({"a": np.ones(2, bool), "b": np.ones(3, bool)})


# --- tied probabilities: one rule for top-1, top-k and predictions.csv -------------------------


def test_top_k_never_falls_below_top_1_with_tied_probabilities() -> None:
    # before: sklearn's top-k broke ties toward the highest class index, argmax toward the
    # lowest, so a uniform row scored top-1 1.0 but top-2 and top-5 0.0
    uniform = single_label_metrics(np.array([0]), np.full((1, 6), 1 / 6), top_k=(2, 5))
    assert uniform["accuracy"] == uniform["top2_accuracy"] == uniform["top5_accuracy"] == 1.0
    # true class 1 tied with classes 2..5 for second place: it is second in the order
    tied = single_label_metrics(np.array([1]), np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]]),
                                top_k=(2, 5))
    assert (tied["accuracy"], tied["top2_accuracy"], tied["top5_accuracy"]) == (0.0, 1.0, 1.0)
    # the same row with the true class last among the tied ones: still inside the top 5
    from keras_species.evaluation.metrics import ranked_classes, true_class_rank

    assert ranked_classes(np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])).tolist() == [[0, 1, 2, 3, 4, 5]]
    assert true_class_rank(np.array([5]), np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])).tolist() == [5]


def test_top_k_of_float16_outputs_is_monotone_and_its_tie_range_is_reported() -> None:
    rng = np.random.default_rng(1)
    n, c = 500, 30
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) * 12
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True)).astype(np.float16).astype(np.float64)  # mixed precision
    m = single_label_metrics(y, p, top_k=(2, 3, 5, 10))
    scores = [m["accuracy"], *(m[f"top{k}_accuracy"] for k in (2, 3, 5, 10))]
    assert scores == sorted(scores)
    assert m["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
    from keras_species.evaluation.metrics import ranked_classes

    for k in (2, 3, 5, 10):  # the true class among the first k of the one order
        assert m[f"top{k}_accuracy"] == pytest.approx(
            np.mean([yi in row for yi, row in zip(y, ranked_classes(p, k))]))
    # the class order decides the tied samples: the note gives the range, which holds the score
    # of the reversed order
    note = m["tie_note"]
    assert note.startswith("Tied probabilities decide the top-k hit of ")
    low, high = (float(v) for v in note.split("top-5 ")[1].split(",")[0].split("–"))
    reversed_m = single_label_metrics(c - 1 - y, p[:, ::-1], top_k=(5,))
    assert low <= m["top5_accuracy"] <= high and low <= reversed_m["top5_accuracy"] <= high
    assert single_label_metrics(Y, P, NAMES)["tie_note"] is None  # no ties, no note


# --- probabilities, not logits ------------------------------------------------------------------


def test_logits_are_refused_with_the_values_seen() -> None:
    # before: logits were scored silently (log loss 2.66 instead of 0.78 in the hunt)
    logits = np.log(P) + 1.0
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]; got values from -1.303 to "
                                         r"0.7769\. Pass probabilities, not logits: apply softmax"):
        single_label_metrics(Y, logits, NAMES)
    with pytest.raises(ValueError, match="not logits"):
        multilabel_metrics(np.array([[1, 0]]), np.array([[2.0, -1.0]]))
    # rounding just past 1 (sklearn's predict_proba) is accepted and clipped
    p = P.copy()
    p[0] = [1.0 + 1e-12, 0.0, 0.0]
    assert single_label_metrics(Y, p, NAMES)["accuracy"] == pytest.approx(4 / 6)


def test_single_label_rows_that_do_not_sum_to_one_warn() -> None:
    sigmoid = np.clip(P * 1.6, 0, 1)  # one-vs-rest outputs: rows sum to 1.6
    with pytest.warns(UserWarning, match=r"6 of 6 rows of probs do not sum to 1 .*softmax"):
        m = single_label_metrics(Y, sigmoid, NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a float16 softmax drifts by ~1e-3: no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single_label_metrics(Y, P * (1 + 2e-3), NAMES)
        multilabel_metrics(np.array([[1, 1]]), np.array([[0.9, 0.8]]))  # sigmoid rows: no rule


# --- undefined per-class scores are None --------------------------------------------------------


def test_a_class_without_samples_or_predictions_has_no_scores() -> None:
    # before: "pike" (no test sample, never predicted) read precision/recall/F1 0.000
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    pike = single_label_metrics(y, p, ["cod", "eel", "pike"])["per_class"][2]
    assert (pike["precision"], pike["recall"], pike["f1"]) == (None, None, None)
    # predicted but never in the test labels: no recall, and precision/F1 0 (all wrong)
    q = p.copy()
    q[3] = [0.1, 0.2, 0.7]
    pike = single_label_metrics(y, q, ["cod", "eel", "pike"])["per_class"][2]
    assert (pike["precision"], pike["recall"], pike["f1"], pike["predicted"]) == (0.0, None, 0.0, 1)
    # in the test labels but never predicted: recall 0 and F1 0, precision 0 as sklearn's
    eel = single_label_metrics(y, np.eye(3)[[0, 0, 0, 0]] * 0.7 + 0.1, ["cod", "eel", "pike"])
    assert (eel["per_class"][1]["recall"], eel["per_class"][1]["f1"]) == (0.0, 0.0)
    ml = multilabel_metrics(np.array([[1, 0], [0, 0]]), np.array([[0.9, 0.1], [0.2, 0.3]]),
                            ["fish", "shark"])
    shark = ml["per_class"][1]
    assert (shark["precision"], shark["recall"], shark["f1"], shark["predicted"]) == (None, None, None, 0)
    json.dumps(ml, allow_nan=False)


# --- multi-label: mAP, samples F1, one tag ------------------------------------------------------


def test_map_leaves_out_a_tag_on_every_image() -> None:
    # before: "fish", on every test image, counted AP 1.0 whatever the scores (mAP 0.814 in the
    # hunt, where the PR figure said 0.721)
    rng = np.random.default_rng(0)
    n = 40
    y = np.c_[np.ones(n, int), (rng.random(n) < 0.4).astype(int), np.zeros(n, int)]
    p = np.clip(rng.random((n, 3)) * 0.7 + 0.3 * y, 0, 1)
    m = multilabel_metrics(y, p, ["fish", "shark", "ray"])
    assert m["map"] == pytest.approx(skm.average_precision_score(y[:, 1], p[:, 1]))
    assert m["per_class"][0]["average_precision"] is None
    assert m["map_skipped"] == ["fish", "ray"] and m["absent_classes"] == ["ray"]
    assert m["map_note"] == ("mAP averaged over 1 of 3 tags; no test positives for: ray; on every "
                             "test image (AP 1.0 whatever the scores): fish")


def test_samples_f1_scores_a_right_tag_free_answer_one() -> None:
    # before: 0.333 for these perfect predictions (both tag-free images scored 0)
    y = np.array([[0, 0], [0, 0], [1, 0]])
    m = multilabel_metrics(y, np.array([[0.1, 0.1], [0.1, 0.1], [0.9, 0.1]]))
    assert m["f1_samples"] == 1.0
    # a tagged image with no predicted tag still scores 0; a tag-free one with a false tag 0
    miss = multilabel_metrics(y, np.array([[0.1, 0.1], [0.1, 0.9], [0.1, 0.1]]))
    assert miss["f1_samples"] == pytest.approx(1 / 3)


def test_one_tag_is_scored_as_multi_label() -> None:
    # before: sklearn read the one column as binary labels: samples F1 raised, and micro F1
    # scored "no tag" as a class (0.75 here instead of 2/3)
    y = np.array([[1], [0], [1], [0]])
    p = np.array([[0.9], [0.2], [0.4], [0.1]])  # TP, TN, FN, TN
    m = multilabel_metrics(y, p, ["fish"])
    assert m["f1_micro"] == m["f1_macro"] == pytest.approx(2 / 3)
    assert m["f1_samples"] == pytest.approx(3 / 4)  # 1, 1 (tag-free, none predicted), 0, 1
    assert (m["precision_micro"], m["recall_micro"]) == (1.0, 0.5)
    assert m["per_class"][0]["f1"] == pytest.approx(2 / 3) and len(m["per_class"]) == 1
    assert m["hamming_loss"] == 0.25 and m["exact_match"] == 0.75 and m["map"] == 1.0
    assert m["no_tag_f1_micro"] == 0.0


def test_multilabel_metrics_match_hand_counts_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        n, c = int(rng.integers(1, 25)), int(rng.integers(1, 6))
        y = (rng.random((n, c)) < rng.random(c)).astype(int)
        y[:, rng.random(c) < 0.2] = 0  # tags without positives
        p = np.clip(rng.random((n, c)) * 0.6 + 0.4 * y, 0, 1)
        thr = rng.uniform(0.2, 0.8, c)
        m = multilabel_metrics(y, p, thresholds=thr)
        pred = (p >= thr).astype(int)
        tp, fp, fn = (pred & y).sum(0), (pred & (1 - y)).sum(0), ((1 - pred) & y).sum(0)
        assert m["f1_micro"] == pytest.approx(
            2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1))
        row_tp, row_fp, row_fn = (pred & y).sum(1), (pred & (1 - y)).sum(1), ((1 - pred) & y).sum(1)
        denom = 2 * row_tp + row_fp + row_fn
        per_image = np.where(denom > 0, 2 * row_tp / np.maximum(denom, 1), 1.0)
        assert m["f1_samples"] == pytest.approx(per_image.mean())
        for j in range(c):
            f1 = None if tp[j] + fp[j] + fn[j] == 0 else 2 * tp[j] / (2 * tp[j] + fp[j] + fn[j])
            assert m["per_class"][j]["f1"] == pytest.approx(f1)
        aps = [skm.average_precision_score(y[:, j], p[:, j]) for j in range(c) if 0 < y[:, j].sum() < n]
        assert m["map"] == (pytest.approx(np.mean(aps)) if aps else None)


def test_ranked_classes_first_k_equals_the_full_stable_order_with_ties():
    # stop 30: the first k come from a partition and a sort of the candidates only (a full sort
    # of 5,000 classes per image cost more than the model in predict); the order must not change
    from keras_species.evaluation.metrics import ranked_classes

    rng = np.random.default_rng(0)
    probs = np.round(rng.dirichlet(np.full(40, 0.3), size=200), 2)  # many ties, zeros above all
    full = np.argsort(-probs, axis=1, kind="stable")
    for k in (1, 2, 5, 39, 40, 60):
        np.testing.assert_array_equal(ranked_classes(probs, k), full[:, :k])
    nan = np.array([[0.1, np.nan, 0.5, 0.4], [np.nan] * 4])  # NaN last, as the full sort has it
    assert ranked_classes(nan, 2).tolist() == [[2, 3], [0, 1]]
    assert ranked_classes(nan, 0).shape == (2, 0)
    assert ranked_classes(np.array([[0.1, np.nan, -np.inf, 0.2]])).tolist() == [[3, 0, 2, 1]]
    with pytest.raises(ValueError, match="k=-1"):
        ranked_classes(nan, -1)


@pytest.mark.parametrize("thresholds, match", [
    (1.5, r"must lie in \[0, 1\]"), (float("nan"), r"must lie in \[0, 1\]"),
    ([0.5, -0.1, 0.5], r"must lie in \[0, 1\]"), ([0.3, 0.4], r"one value per class \(3\)"),
])
def test_multilabel_thresholds_are_checked(thresholds, match) -> None:
    # before: 1.5 and NaN scored F1 0 without a word; two values for three tags gave numpy's
    # broadcasting error
    y = np.array([[1, 0, 1], [0, 1, 0]])
    p = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.4]])
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(y, p, ["a", "b", "c"], thresholds=thresholds)


def test_log_loss_is_sklearns_when_the_true_class_has_probability_zero() -> None:
    # a class without training rows gets probability 0 from a scikit-learn classifier; a floor
    # of 1e-15 put before sklearn's own clipping gave 17.38 where sklearn gives 18.13
    y = np.array([0, 1, 2])
    p = np.array([[0.0, 1.0, 0.0], [0.2, 0.8, 0.0], [0.1, 0.1, 0.8]])
    m = single_label_metrics(y, p, ["a", "b", "c"])
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2]), rel=1e-12)
    from keras_species.training.crossval import probs_scores

    assert probs_scores(y, p)["loss"] == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2]), rel=1e-12)


def test_a_single_probability_column_is_named_as_a_binary_sigmoid_output() -> None:
    with pytest.raises(ValueError, match=r"probs has one column \(shape \(4, 1\)\).*np\.c_\[1 - p, p\]"):
        single_label_metrics(np.array([0, 1, 1, 0]), np.array([[0.2], [0.9], [0.6], [0.4]]), ["ant", "bee"])
    with pytest.raises(ValueError, match=r"y_true must lie in \[0, 2\) for 2 classes; got values in \[0, 2\]$"):
        single_label_metrics(np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["ant", "bee"])


def test_log_loss_refuses_nan_and_logits_rather_than_scoring_them() -> None:
    # a NaN row was filled as uniform: a diverged fold scored log(3), a plausible loss
    from keras_species.training.crossval import probs_scores

    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="probs contains NaN or inf; check the model output"):
        probs_scores(y, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="Pass probabilities, not logits"):
        probs_scores(y, np.array([[1.1, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def test_labels_and_k_that_are_not_whole_numbers_are_refused():
    # 1.7 was read as class 1 (accuracy 1.0), and top_k=2.9 as top-2, without a word
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    with pytest.raises(ValueError, match=r"whole class indices; got \[1.7, 1.2\]"):
        single_label_metrics([0.0, 1.7, 1.2], probs)
    with pytest.raises(ValueError, match="top_k must be whole numbers"):
        single_label_metrics([0, 1, 1], probs, top_k=(2, 2.9))
    whole = single_label_metrics(np.array([0.0, 1.0, 1.0]), probs, top_k=(2.0,))  # pandas floats
    assert whole["accuracy"] == 1.0 and "top2_accuracy" in whole
    # object arrays of whole numbers and strings of digits, as before (a first check refused them)
    for labels in (np.array([0, 1, 1], dtype=object), np.array(["0", "1", "1"])):
        assert single_label_metrics(labels, probs)["accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"whole class indices; got \['x'\]"):
        single_label_metrics(np.array([0, 1, "x"], dtype=object), probs)
