"""Each plot of keras_species/evaluation/plots.py writes a non-empty PNG."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from keras_species.evaluation import plots

C = 12
NAMES = [f"species_{i}" for i in range(C)]


def _data(n: int = 60):
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, n)
    logits = rng.normal(size=(n, C)) + 2.5 * np.eye(C)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


def _png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curves_from_csv_with_phases(tmp_path: Path) -> None:
    hist = tmp_path / "history.csv"
    with open(hist, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phase", "epoch", "loss", "val_loss", "accuracy", "val_accuracy", "lr"])
        for i in range(6):
            ph = "frozen" if i < 3 else "finetune"
            w.writerow([ph, i % 3, 1 / (i + 1), 1.2 / (i + 1), i / 6, i / 7,
                        1e-3 if i < 3 else 1e-4])
    rows = plots.load_history(hist)
    assert plots._phase_spans(rows, "phase") == [("frozen", 1, 3), ("finetune", 4, 6)]
    _png(plots.plot_learning_curves(hist, tmp_path / "plots" / "lc.png"))
    # a dict of lists (keras History.history) without phase or lr also works
    _png(plots.plot_learning_curves({"loss": [1, 0.5], "val_loss": [1.1, 0.7]}, tmp_path / "h.png"))
    with pytest.raises(ValueError, match="empty"):
        plots.plot_learning_curves([], tmp_path / "x.png")


def test_a_history_csv_that_is_not_text_is_named(tmp_path: Path) -> None:
    hist = tmp_path / "history.csv"
    hist.write_bytes(b"epoch,loss\n1,0.5\n2,\xff\x00\n")
    with pytest.raises(ValueError, match=r"history\.csv is not UTF-8 text \(byte 0xff\): restore it "
                                         "or delete it"):
        plots.load_history(hist)


def test_confusion_f1_curves(tmp_path: Path) -> None:
    from sklearn.metrics import confusion_matrix, f1_score

    y, p = _data()
    cm = confusion_matrix(y, p.argmax(1), labels=range(C))
    _png(plots.plot_confusion_matrix(cm, NAMES, tmp_path / "cm.png"))
    names40 = [f"a_rather_long_class_name_{i}" for i in range(40)]
    _png(plots.plot_confusion_matrix(np.eye(40) * 3 + 1, names40, tmp_path / "cm40.png"))
    f1 = f1_score(y, p.argmax(1), average=None, labels=range(C), zero_division=0)
    _png(plots.plot_per_class_f1(NAMES, f1, tmp_path / "f1.png", support=np.bincount(y, minlength=C)))
    _png(plots.plot_pr_curves(y, p, NAMES, tmp_path / "pr.png", n_sample=10))
    _png(plots.plot_roc_curves(y, p, NAMES, tmp_path / "roc.png"))


def test_threshold_curve_and_multilabel_pr(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (40, 4))
    p = np.clip(0.5 * y + rng.uniform(0, 0.5, y.shape), 0, 1)
    _png(plots.plot_threshold_curve(y, p, tmp_path / "thr.png", chosen=0.4))
    _png(plots.plot_pr_curves(y, p, list("abcd"), tmp_path / "prml.png"))


def test_image_grids_survive_unreadable_files(tmp_path: Path, image_folder: Path) -> None:
    paths = sorted(image_folder.rglob("*.png"))[:6]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    paths += [broken, tmp_path / "missing.png"]
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    p = np.array([[0.1, 0.8, 0.1]] * 4 + [[0.4, 0.35, 0.25]] * 4)
    idx = plots.confident_mistakes(y, p, n=16)
    assert set(idx.tolist()) == {0, 1, 4, 5, 7} and idx[0] in (0, 1)
    assert plots.uncertain_predictions(p, 2).tolist() == [4, 5]
    _png(plots.plot_confident_mistakes(paths, y, p, ["cod", "eel", "ray"], tmp_path / "m.png"))
    _png(plots.plot_uncertain_predictions(paths, y, p, ["cod", "eel", "ray"], tmp_path / "u.png",
                                          n=4))


def test_model_scatters(tmp_path: Path) -> None:
    rows = [
        {"model": "vgg16", "test_loss": 1.2, "test_acc": 0.33, "top5": 0.6, "macro_auc": 0.85},
        {"model": "scratch", "test_loss": 2.1, "test_acc": 0.24, "top5": 0.5, "macro_auc": None},
    ]
    _png(plots.plot_accuracy_vs_loss(rows, tmp_path / "acc_loss.png"))
    _png(plots.plot_top5_vs_auc(rows, tmp_path / "top5_auc.png"))


def _drawn_texts(monkeypatch) -> list[str]:
    """Every legend entry and text of the figures saved from now on."""
    texts: list[str] = []
    save = plots._save

    def keep(fig, path):
        for ax in fig.axes:
            texts.extend(t.get_text() for t in ax.texts)
            legend = ax.get_legend()
            if legend is not None:
                texts.extend(t.get_text() for t in legend.get_texts())
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return texts


def test_pr_figure_shows_the_metrics_map(tmp_path: Path, monkeypatch) -> None:
    # before: a tag on every image counted AP 1.0 in metrics["map"] (0.814) but not in the
    # figure's legend (0.721)
    from keras_species.evaluation.metrics import multilabel_metrics, single_label_metrics

    rng = np.random.default_rng(0)
    n = 40
    y = np.c_[np.ones(n, int), (rng.random(n) < 0.4).astype(int), (rng.random(n) < 0.3).astype(int)]
    p = np.clip(rng.random((n, 3)) * 0.7 + 0.3 * y, 0, 1)
    m = multilabel_metrics(y, p, ["fish", "shark", "ray"])
    texts = _drawn_texts(monkeypatch)
    _png(plots.plot_pr_curves(y, p, ["fish", "shark", "ray"], tmp_path / "pr.png"))
    assert f"macro-average (mAP {m['map']:.3f}, 2 of 3 classes)" in texts
    ys, ps = _data()
    single = single_label_metrics(ys, ps)
    _png(plots.plot_pr_curves(ys, ps, NAMES, tmp_path / "pr1.png"))
    assert f"macro-average (mAP {single['average_precision_macro']:.3f})" in texts


def test_a_class_without_test_samples_is_blank_not_zero(tmp_path: Path, monkeypatch) -> None:
    # before: its confusion-matrix row read 0.00 everywhere and its F1 bar 0.00
    cm = [[3, 1, 0], [0, 4, 0], [0, 0, 0]]
    texts = _drawn_texts(monkeypatch)
    _png(plots.plot_confusion_matrix(cm, ["cod", "eel", "pike"], tmp_path / "cm.png"))
    assert len([t for t in texts if t]) == 6  # two rows of three cells; the pike row is blank
    rows = plots.normalise_rows(cm)
    assert rows[0].tolist() == [0.75, 0.25, 0.0] and np.isnan(rows[2]).all()
    texts.clear()
    _png(plots.plot_per_class_f1(["cod", "eel", "pike"], [0.8, 0.9, None], tmp_path / "f1.png",
                                 support=[4, 4, 0]))
    assert texts == ["–", "0.90", "0.80"]  # bottom to top: unscored, best, worst


def test_pr_curves_are_drawn_as_steps_whose_area_is_the_ap_shown():
    # before: straight lines between operating points: a constant model (one point, recall 1 and
    # precision 0.5) drew a diagonal from precision 1, an area of 0.75 beside "AP 0.50"
    import sklearn.metrics as skm

    from keras_species.evaluation.plots import _step_precision

    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    p = np.array([0.1, 0.9, 0.35, 0.8, 0.3, 0.6, 0.7, 0.2])
    prec, rec, _ = skm.precision_recall_curve(y, p)
    grid = np.linspace(0, 1, 100001)
    area = np.trapezoid(_step_precision(grid, rec, prec), grid) if hasattr(np, "trapezoid") else \
        np.trapz(_step_precision(grid, rec, prec), grid)
    assert area == pytest.approx(skm.average_precision_score(y, p), abs=1e-3)
    prec, rec, _ = skm.precision_recall_curve([0, 0, 0, 1, 1, 1], [0.4] * 6)
    assert set(_step_precision(np.linspace(0.01, 1, 50), rec, prec)) == {0.5}


def test_the_threshold_curve_names_its_split(tmp_path):
    import matplotlib.pyplot as plt

    from keras_species.evaluation.plots import plot_threshold_curve

    y = np.array([[1, 0], [0, 1], [1, 1]])
    seen = []
    real = plt.Axes.set_title
    try:
        plt.Axes.set_title = lambda self, text, *a, **k: (seen.append(text), real(self, text, *a, **k))[1]
        plot_threshold_curve(y, y * 0.8, tmp_path / "t.png", split="val images, where the thresholds are tuned")
    finally:
        plt.Axes.set_title = real
    assert seen == ["Scores vs global threshold (val images, where the thresholds are tuned)"]
