"""Tests of keras_species/evaluation/report.py: predictions CSV, metrics JSON and report.md."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from keras_species.evaluation import plots
from keras_species.evaluation.metrics import multilabel_metrics, single_label_metrics
from keras_species.evaluation.report import (
    render_report,
    write_metrics_json,
    write_predictions_csv,
)

NAMES = ["cod", "eel", "ray", "pike"]
Y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 0])
P = np.eye(4)[[0, 0, 1, 1, 1, 2, 2, 2, 3, 0]] * 0.7 + 0.075


def test_predictions_csv_single_and_multilabel(tmp_path: Path) -> None:
    paths = [f"img_{i}.png" for i in range(len(Y))]
    out = write_predictions_csv(tmp_path / "predictions.csv", paths, Y, P, NAMES, top_k=2)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 10 and rows[2]["true"] == "cod" and rows[2]["pred"] == "eel"
    assert rows[2]["correct"] == "0" and rows[0]["correct"] == "1"
    assert rows[0]["top2"].startswith("cod:0.7750;")
    assert float(rows[0]["p_cod"]) == np.float64(0.775)
    unl = write_predictions_csv(tmp_path / "u.csv", paths[:2], None, P[:2], NAMES)
    assert list(csv.DictReader(open(unl)))[0]["true"] == ""

    y = np.array([[1, 0], [0, 0]])
    p = np.array([[0.9, 0.4], [0.2, 0.1]])
    ml = write_predictions_csv(tmp_path / "ml.csv", ["a", "b"], y, p, ["x", "z"],
                               multilabel=True, thresholds=[0.5, 0.3])
    r = list(csv.DictReader(open(ml)))
    assert r[0]["pred"] == "x;z" and r[0]["exact_match"] == "0" and r[1]["pred"] == ""


def test_metrics_json_is_numpy_safe(tmp_path: Path) -> None:
    path = write_metrics_json(tmp_path / "metrics.json",
                              {"test": {"a": np.float32(0.5), "b": np.arange(3), "c": np.nan,
                                        "d": np.int64(4), "e": np.bool_(True)}})
    assert json.loads(path.read_text()) == {"test": {"a": 0.5, "b": [0, 1, 2], "c": None,
                                                     "d": 4, "e": True}}


def test_report_has_tables_and_links_existing_files(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "demo" / "r1"
    m = single_label_metrics(Y, P, NAMES, train_counts=[40, 30, 20, 3])
    cm = plots.plot_confusion_matrix(m["confusion_matrix"], NAMES, run / "plots" / "confusion_matrix.png")
    lc = plots.plot_learning_curves(
        [{"phase": "frozen", "loss": 1.0, "val_loss": 0.9, "lr": 1e-3},
         {"phase": "unfrozen", "loss": 0.5, "val_loss": 0.6, "lr": 1e-4}],
        run / "plots" / "learning_curves.png",
    )
    text = render_report(
        run,
        title="demo run",
        config={"backbone": "efficientnet_lite0", "phases": {"frozen": {"lr": 1e-3}}},
        metrics={"test": m, "val": {"accuracy": 0.9}},
        history=[{"phase": "frozen", "val_loss": 0.9}, {"phase": "unfrozen", "val_loss": 0.6}],
        plots={"confusion_matrix": cm, "learning_curves": lc,
               "confident_mistakes": run / "plots" / "never_written.png"},
        extra_sections=[("TTA", "| mode | acc |\n|---|---|\n| plain | 0.8 |")],
    )
    assert (run / "report.md").read_text() == text
    assert "## Configuration" in text and "| phases.frozen.lr | 0.0010 |" in text
    assert "| accuracy | 0.8000 | 0.4000 |" in text  # majority train class "cod": 4/10
    assert "## Per-class results" in text and "**pike** (rare)" in text
    assert "| cod | 1.000 | 0.750 |" in text
    assert "### val" in text and "## TTA" in text
    assert "Lowest val loss 0.6000 at epoch 2" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["plots/confusion_matrix.png", "plots/learning_curves.png"]
    for link in links:
        assert (run / link).is_file()
    assert "never_written.png" in text.split("## Notes")[1]


def test_report_multilabel_headline(tmp_path: Path) -> None:
    y = np.array([[1, 0], [0, 0], [0, 1], [0, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.1], [0.3, 0.8], [0.1, 0.2]])
    m = multilabel_metrics(y, p, ["fish", "coral"], thresholds=0.4)
    text = render_report(tmp_path, title="ml", config={}, metrics=m, history=None, plots={})
    assert "| micro F1 | 1.0000 | 0.0000 |" in text
    assert "| exact match | 1.0000 | 0.5000 |" in text
    # no training labels given: the most frequent *test* label set, here "no tag" (2 of 4)
    assert "majority label set {} (no tag) (from test)" in text and "0.400 for every tag" in text
    assert "most frequent test label set" in text.split("## Notes")[1]


def test_report_multilabel_baseline_is_the_majority_training_label_set(tmp_path: Path) -> None:
    # Training data mostly {fish}; on test, {fish} scores 3/5 exact match, "no tag" 1/5.
    train = np.array([[1, 0]] * 4 + [[0, 0], [1, 1]])
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 0], [1, 1]])
    p = np.full(y.shape, 0.1)  # a model that answers "no tag" everywhere
    m = multilabel_metrics(y, p, ["fish", "coral"], train_labels=train)
    text = render_report(tmp_path, title="ml", config={}, metrics=m, history=None, plots={})
    assert "Baseline: always predict the majority label set {fish} (from train)." in text
    assert "| exact match | 0.2000 | 0.6000 |" in text
    assert "| micro F1 | 0.0000 | 0.8000 |" in text  # baseline: 4 TP, 1 FP, 1 FN -> 8/10
    assert "| Hamming loss | 0.5000 | 0.2000 |" in text  # model misses all 5 tags of 10 cells


def test_report_notes_a_class_left_out_of_the_macro_averages(tmp_path: Path) -> None:
    y = np.array([0, 1, 0, 1])  # no "ray" or "pike" in the test labels; "ray" is predicted once
    p = np.eye(4)[[0, 1, 2, 1]] * 0.7 + 0.075
    text = render_report(tmp_path, title="t", config={}, metrics=single_label_metrics(y, p, NAMES),
                         history=None, plots={})
    assert "Macro averages run over the 3 of 4 classes" in text.split("## Notes")[1]
    full = single_label_metrics(np.array([0, 1, 2, 3]), np.eye(4) * 0.7 + 0.075, NAMES)
    assert "Macro averages" not in render_report(tmp_path, title="t", config={}, metrics=full,
                                                 history=None, plots={})


def test_configuration_table_keeps_small_numbers_and_leaves_out_the_session(tmp_path: Path) -> None:
    # a learning rate of 1e-05 read 0.0000, and a resumed run's table said "resume | True"
    config = {"phase1_learning_rate": 1e-05, "final_learning_rate": 1e-7, "lr": 0.00025,
              "ratio": 0.7, "head_learning_rate": 0.001, "fine_tune_learning_rate": 0.0001,
              "zero": 0.0, "epochs": 3, "resume": True, "overwrite": False,
              "phases": {"frozen": {"lr": 2e-5}}}
    text = render_report(tmp_path, title="t", config=config)
    for row in ("| phase1_learning_rate | 1e-05 |", "| final_learning_rate | 1e-07 |",
                "| lr | 0.00025 |", "| phases.frozen.lr | 2e-05 |",
                # ordinary values read as before
                "| ratio | 0.7000 |", "| head_learning_rate | 0.0010 |",
                "| fine_tune_learning_rate | 0.0001 |", "| zero | 0.0000 |", "| epochs | 3 |"):
        assert row in text, row
    assert "| resume |" not in text and "| overwrite |" not in text


def test_predictions_csv_has_a_top_k_column_only_below_the_number_of_classes(tmp_path: Path) -> None:
    # a binary run's top2 column listed both classes: its 'top-2 accuracy' was always 1.0
    y = np.array([0, 1, 1])
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    binary = write_predictions_csv(tmp_path / "b.csv", ["a", "b", "c"], y, p, ["cod", "eel"])
    header = next(csv.reader(open(binary)))
    assert header == ["path", "true", "pred", "confidence", "correct", "p_cod", "p_eel"]
    assert [r["correct"] for r in csv.DictReader(open(binary))] == ["1", "1", "0"]
    paths = [f"img_{i}.png" for i in range(len(Y))]
    four = write_predictions_csv(tmp_path / "4.csv", paths, Y, P, NAMES, top_k=4)
    assert not any(c.startswith("top") for c in next(csv.reader(open(four))))
    six = np.eye(6)[[0, 1, 2, 3, 4, 5]] * 0.4 + 0.1
    names = ["a", "b", "c", "d", "e", "f"]
    rows = list(csv.DictReader(open(write_predictions_csv(
        tmp_path / "6.csv", names, np.arange(6), six, names))))
    assert rows[0]["top5"].startswith("a:0.5000;") and rows[0]["top5"].count(";") == 4


def test_one_rare_class_is_named_in_the_singular(tmp_path: Path) -> None:
    # before: "The 1 rarest classes (fewest test samples) are in bold."
    m = single_label_metrics(Y, P, NAMES, train_counts=[40, 30, 20, 3])
    text = render_report(tmp_path / "r", title="t", config={}, metrics={"test": m}, n_rare=1)
    assert "The rarest class (fewest test samples) is in bold." in text
    assert "1 rarest classes" not in text


def test_no_class_is_called_rare_when_every_class_has_as_many_test_samples(tmp_path: Path) -> None:
    # before: three of them were bolded as "(rare)" (the first three by index)
    y = np.repeat(np.arange(4), 5)
    p = np.eye(4)[y] * 0.7 + 0.075
    m = single_label_metrics(y, p, NAMES)
    text = render_report(tmp_path / "r", title="t", config={}, metrics={"test": m})
    assert "(rare)" not in text and "rarest" not in text


def test_tied_rare_classes_are_all_named_and_the_commonest_never(tmp_path: Path) -> None:
    # supports 2, 2, 2, 2, 5: all four with 2 are the rarest (before: the first three by index)
    names = ["a", "b", "c", "d", "e"]
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4])
    p = np.eye(5)[y] * 0.6 + 0.08
    text = render_report(tmp_path / "r", title="t", config={},
                         metrics={"test": single_label_metrics(y, p, names)})
    assert [n for n in names if f"**{n}** (rare)" in text] == ["a", "b", "c", "d"]
    assert "The 4 rarest classes (fewest test samples) are in bold." in text
    # supports 1, 5, 5, 5: only the class of 1, not the others that tie at the top
    y = np.array([0] + [1] * 5 + [2] * 5 + [3] * 5)
    text = render_report(tmp_path / "s", title="t", config={},
                         metrics={"test": single_label_metrics(y, np.eye(4)[y] * 0.7 + 0.075, names[:4])})
    assert [n for n in names[:4] if f"**{n}** (rare)" in text] == ["a"]


def test_a_cross_validated_history_is_summarised_per_fold(tmp_path: Path) -> None:
    # before: "Lowest val loss 0.5000 at epoch 3 of the run (phase fold1)", the lowest over
    # models scored on different val images
    history = tmp_path / "history.csv"
    history.write_text("epoch,phase,fold,val_loss,val_accuracy\n"
                       "1,fold0,0,0.9,0.5\n2,fold0,0,0.7,0.6\n"
                       "1,fold1,1,0.5,0.8\n2,fold1,1,0.6,0.7\n3,fold1,1,0.55,0.75\n")
    text = render_report(tmp_path / "r", title="t", config={}, metrics={}, history=history)
    assert ("Epochs run: 5 over 2 folds (2, 3). Each fold is a model of its own, scored on its own "
            "val images, so each has its own best epoch:\n"
            "- fold 0: lowest val loss 0.7000 at its epoch 2, val accuracy 0.6000\n"
            "- fold 1: lowest val loss 0.5000 at its epoch 1, val accuracy 0.8000") in text
    assert "of the run" not in text


def test_predictions_csv_top_k_lists_exactly_the_metric_s_hits(tmp_path: Path) -> None:
    # before: the CSV listed ties by lower class index while the metric (sklearn) broke them
    # toward the higher one: a row could list its true class and still count as a top-k miss
    names = [f"c{i}" for i in range(6)]
    p = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [1 / 6] * 6, [0.3, 0.3, 0.1, 0.1, 0.1, 0.1],
                  [0.05, 0.05, 0.3, 0.3, 0.3, 0.0]])
    y = np.array([1, 0, 1, 4])
    m = single_label_metrics(y, p, names, top_k=(2,))
    path = write_predictions_csv(tmp_path / "p.csv", ["a", "b", "c", "d"], y, p, names, top_k=2)
    rows = list(csv.DictReader(open(path)))
    listed = [names[t] in [x.split(":")[0] for x in r["top2"].split(";")] for r, t in zip(rows, y)]
    assert listed == [True, True, True, False]
    assert m["top2_accuracy"] == np.mean(listed) == 0.75
    assert m["accuracy"] == np.mean([r["correct"] == "1" for r in rows]) == 0.25
    assert [r["pred"] for r in rows] == ["c0", "c0", "c0", "c2"]


def test_report_shows_a_dash_for_a_class_with_nothing_to_score(tmp_path: Path) -> None:
    # before: "| **pike** (rare) | 0.000 | 0.000 | 0.000 | 0 | – |" for a class without test
    # samples or predictions
    y = np.array([0, 0, 1, 1, 1, 2])
    p = np.eye(4)[[0, 0, 1, 1, 1, 2]] * 0.7 + 0.075
    text = render_report(tmp_path, title="t", metrics={"test": single_label_metrics(y, p, NAMES)},
                         n_rare=1)
    assert "| pike | – | – | – | 0 | – |" in text
    assert "**ray** (rare)" in text and "**pike**" not in text


def test_report_names_the_tags_left_out_of_the_map_and_tie_ranges(tmp_path: Path) -> None:
    y = np.array([[1, 1], [1, 0], [1, 0], [1, 1]])
    m = multilabel_metrics(y, np.array([[0.9, 0.8], [0.6, 0.3], [0.7, 0.6], [0.8, 0.4]]),
                           ["fish", "coral"])
    notes = render_report(tmp_path, title="t", metrics=m).split("## Notes")[1]
    assert ("- mAP averaged over 1 of 2 tags; on every test image (AP 1.0 whatever the scores): "
            "fish.") in notes
    tied = single_label_metrics(np.array([0, 1]), np.full((2, 4), 0.25), NAMES, top_k=(2,))
    notes = render_report(tmp_path, title="t", metrics=tied).split("## Notes")[1]
    assert ("- Tied probabilities decide the top-k hit of 2 of 2 samples; ties go to the lower "
            "class index (as argmax does), and another class order could give top-1 "
            "0.0000–1.0000, top-2 0.0000–1.0000.") in notes


def test_a_metric_block_note_labels_its_heading(tmp_path: Path) -> None:
    text = render_report(tmp_path, title="t", metrics={
        "test": {"accuracy": 0.5}, "val": {"f1_micro": 0.9, "note": "thresholds tuned on it: optimistic"}})
    assert "### val (thresholds tuned on it: optimistic)\n\n| metric | value |" in text
    assert "| note |" not in text


def test_the_training_summary_names_the_epoch_each_fold_kept_by_its_monitor():
    # before: always the epoch of lowest val loss, another one than a fold kept under
    # --monitor val_accuracy (fold 0 kept epoch 4, the report said epoch 2)
    from keras_species.evaluation.report import _history_summary

    rows = [{"epoch": e, "fold": 0, "val_loss": vl, "val_accuracy": va}
            for e, vl, va in ((1, 1.9, 0.14), (2, 1.80, 0.16), (3, 1.85, 0.25), (4, 1.83, 0.31))]
    rows += [{"epoch": e, "fold": 1, "val_loss": vl, "val_accuracy": va}
             for e, vl, va in ((1, 1.7, 0.25), (2, 1.6, 0.25), (3, 1.65, 0.2))]
    text = "\n".join(_history_summary(rows, "val_accuracy"))
    assert "- fold 0: best val_accuracy 0.3100 at its epoch 4, val loss 1.8300" in text
    assert "- fold 1: best val_accuracy 0.2500 at its epoch 1, val loss 1.7000" in text  # first of a tie
    old = "\n".join(_history_summary(rows))
    assert "- fold 0: lowest val loss 1.8000 at its epoch 2, val accuracy 0.16" in old
    single = [{"epoch": 1, "phase": "head", "val_loss": 0.7, "val_accuracy": 0.6},
              {"epoch": 2, "phase": "fine_tune", "val_loss": 0.6, "val_accuracy": 0.5}]
    assert "Best val_accuracy 0.6000 at epoch 1 of the run (phase head), val loss 0.7000." in \
        _history_summary(single, "val_accuracy")


def test_extra_metric_blocks_escape_their_keys_and_say_what_they_leave_out(tmp_path: Path) -> None:
    # a tag named ray|skate split its threshold row in three cells, and past 40 rows the block
    # of a 30-tag run lost the chosen setting's scores without a word
    from keras_species.evaluation.report import render_report

    per_class = {"ray|skate": 0.5, **{f"tag{i}": 0.4 for i in range(44)}}
    text = render_report(tmp_path, title="t", config={"a|b": 1},
                         metrics={"test": {"accuracy": 0.5}, "thresholds": {"global": 0.3, "per_class": per_class}})
    assert "| per_class.ray\\|skate | 0.5000 |" in text
    assert "| a\\|b |" in text
    assert "(6 more in metrics.json.)" in text


def test_predictions_csv_keeps_float32_probabilities_exact(tmp_path):
    # with 6 significant digits 0.99999982 (a negative) and 1.0 (a positive) were both written
    # "1": average precision from the file differed from the run's, and a cell could read at the
    # threshold while its tag was not predicted
    import csv

    import numpy as np

    from keras_species.evaluation.report import write_predictions_csv

    probs = np.array([[1.0, 0.50999999], [0.9999998211860657, 0.2]], np.float32)
    out = write_predictions_csv(tmp_path / "p.csv", ["a.png", "b.png"], np.array([[1, 1], [0, 0]]), probs,
                                ["x", "y"], multilabel=True, thresholds=[0.5, 0.51])
    rows = list(csv.DictReader(open(out)))
    back = np.array([[float(r["p_x"]), float(r["p_y"])] for r in rows], np.float32)
    np.testing.assert_array_equal(back, probs)
    assert rows[0]["pred"] == "x" and float(rows[0]["p_y"]) < 0.51
