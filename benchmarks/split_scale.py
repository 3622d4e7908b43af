"""How the splits scale with the number of classes: time per call at growing sizes, and growth.

Usage::

    python benchmarks/split_scale.py [--classes 1000 4000 10000] [--per-class 5]

Builds in-memory manifests (no image files) with C classes of ``--per-class`` images each, file
names carrying a group id (two images a group), and times, for each C: the group-aware ratio
split (``stratified_split`` with groups), the plain stratified split, 5 stratified folds
(``assign_folds``), a multi-label group split (one tag a class, plus a common tag), and
``leakage``. The last columns print each call's time growth between consecutive sizes beside
the data's growth: a linear cost grows as the data does; a cost of images x classes grows with its
square. Before stop 28 the group-aware split built a dense images x classes matrix: 3.4 s and
1.3 GB at 4,000 classes (0.13 s and 130 MB after), 17 s and 6 GB at 10,000 in a helper's run.
The multi-label split stays quadratic here: a multi-label Manifest holds its labels as a dense
images x tags matrix (500 MB at 50,000 images and 10,001 tags), which every step reads.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from keras_species.data import splits
from keras_species.data.manifest import Manifest


def _manifests(c: int, per: int) -> tuple[Manifest, Manifest, Manifest]:
    n = c * per
    labels = np.repeat(np.arange(c), per)
    paths = [f"/data/c{j}/g{i // 2}_{i}.png" for i, j in enumerate(labels)]
    names = [f"c{j}" for j in range(c)]
    groups = [f"g{i // 2}" for i in range(n)]
    tags = np.zeros((n, c + 1), np.uint8)
    tags[np.arange(n), labels] = 1
    tags[::3, c] = 1  # a common tag on a third of the images
    return (Manifest(paths, labels, names, groups=groups), Manifest(paths, labels, names),
            Manifest(paths, tags, names + ["common"], groups=groups))


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[1000, 4000, 10000])
    parser.add_argument("--per-class", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # thin folds and the like: not what is timed
    calls = {
        "group split": lambda g, p, ml: splits.stratified_split(g, seed=0),
        "plain split": lambda g, p, ml: splits.stratified_split(p, seed=0),
        "5 folds": lambda g, p, ml: splits.assign_folds(p, 5, seed=0),
        "multi-label group split": lambda g, p, ml: splits.stratified_split(ml, seed=0),
        "leakage": lambda g, p, ml: splits.leakage(splits.stratified_split(p, seed=0)),
    }
    rows = {name: [] for name in calls}
    for call in calls.values():  # imports (sklearn, iterstrat) and first calls, untimed
        call(*_manifests(20, args.per_class))
    for c in args.classes:
        made = _manifests(c, args.per_class)
        for name, call in calls.items():
            rows[name].append(_time(lambda call=call, made=made: call(*made)))
    sizes = [c * args.per_class for c in args.classes]
    head = "".join(f"{f'{c} cls / {n} img':>22}" for c, n in zip(args.classes, sizes))
    print(f"{'seconds':<26}{head}   time growth vs data growth")
    for name, times in rows.items():
        growth = "  ".join(f"{b / max(a, 1e-9):.1f}x vs {n2 / n1:.1f}x"
                           for a, b, n1, n2 in zip(times, times[1:], sizes, sizes[1:]))
        print(f"{name:<26}" + "".join(f"{t:>22.3f}" for t in times) + f"   {growth}")


if __name__ == "__main__":
    main()
