"""Audit a data set before training (R5's and R2's data sections), and clean it.

:func:`audit` reads every image of a :class:`~keras_species.data.manifest.Manifest` in parallel
and reports what a training run would trip over: class counts and imbalance, the majority-class
baseline, image modes and formats, sizes and distinct resolutions, corrupt files with the reason
(those only over the decompression-bomb limit counted apart too, with the ``--max-pixels`` that
reads them), exact duplicates (and duplicates across splits, i.e. leakage), non-RGB and animated files,
extensions that lie about the content, and, when the data has group ids (``--group-regex``, a CSV
group column), the groups: their sizes, groups with more than one class, images without an id,
groups on more than one split (leakage) and classes with too few groups for a group-aware split.
:func:`clean` turns the report into a cleaned manifest under a policy; nothing is ever deleted
from disk.

Example:
    >>> from keras_species.data import sources
    >>> report = audit(sources.load("demo"), "runs/audit")          # doctest: +SKIP
    >>> cleaned, dropped = clean(sources.load("demo"), report)      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_species import csvfile, markdown
from keras_species.atomic import (
    _write_error,
    atomic_path,
    check_output_file,
    check_output_folder,
    remove_stale_temporaries,
    temporary_path,
)
from keras_species.cpu_budget import usable_cores
from keras_species.data import name_ids
from keras_species.data.images import (
    ImageInfo,
    add_max_pixels_flag,
    get_max_pixels,
    max_pixels_flag,
    max_pixels_hint,
    oversized_pixels,
    probe,
    read_image,
    using_max_pixels,
)
from keras_species.data.manifest import (
    UNLABELLED,
    Manifest,
    ManifestError,
    classes_phrase,
    counted,
    label_set_codes,
    require_manifest,
)

POLICIES = ("convert", "drop_non_rgb")
"""Cleaning policies: keep non-RGB images (the pipeline converts them) or drop them (R5)."""

MAX_SAMPLE_GRIDS = 30
"""At most this many per-class sample grids are drawn (the largest classes first)."""

SAMPLES_PER_GRID = 8

OUTPUT_FILES = ("audit.json", "audit.md", "files.csv", "dropped.csv")
"""The files an audit writes into its folder, besides the plots in ``plots/``."""

PLOT_FILES = ("class_distribution.png", "resolutions.png")
"""The plots in ``plots/``, besides one ``samples_<class>.png`` per class."""

_REPLACED = "replaced"  # the start of the note that names an earlier audit's removed files
_SHOW_STALE = 5  # removed files named in that note

_LIST_CAP_MD = 50  # rows of long lists shown in audit.md (audit.json has them all)
_SHOW_AMBIGUOUS = 5  # bare drop-list names (and their folders) named in the warning

MIN_GROUPS_PER_CLASS = 3
"""A class with fewer groups cannot sit on train, val and test in a group-aware split."""

LARGEST_GROUPS = 5  # the largest groups listed in the report
_SHOW_GROUPS_MD = 10  # groups with mixed labels / on several splits shown in audit.md
_SHOW_CLASSES_NOTE = 10  # classes with too few groups named in the note


# ---------------------------------------------------------------------------------- progress
class _Progress:
    """A one-line stderr progress bar (keras.utils.Progbar would import TensorFlow for a scan)."""

    def __init__(self, total: int, enabled: bool, label: str = "audit") -> None:
        self.total, self.enabled, self.label = total, enabled and total > 0, label
        self.done, self.start, self._last = 0, time.perf_counter(), 0.0
        # redraw 5x a second on a terminal, every 10 s in a log file (CI)
        self.every = 0.2 if sys.stderr.isatty() else 10.0

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.every and self.done < self.total:
            return
        self._last = now
        frac = self.done / self.total
        rate = self.done / max(now - self.start, 1e-9)
        bar = "#" * int(30 * frac)
        sys.stderr.write(("\r" if self.every < 1 else "") + f"{self.label} [{bar:<30}] {self.done}/{self.total} {rate:6.0f} img/s")
        if self.done >= self.total or self.every >= 1:
            sys.stderr.write("\n")
        sys.stderr.flush()


# ---------------------------------------------------------------------------------- report
@dataclass
class AuditReport:
    """What :func:`audit` found. Every field but ``files`` is written to ``audit.json``.

    Attributes:
        source: where the manifest came from.
        n_images: rows in the manifest.
        class_names: the classes, in index order.
        multilabel: True for multi-hot labels.
        class_counts: images per class (multi-label: images carrying each tag, so the counts
            may add up to more than ``n_images``), over every row.
        readable_class_counts: the same over the rows whose file can be read: what training
            sees once cleaning has dropped the corrupt files (equal to ``class_counts`` when
            nothing is corrupt).
        n_unlabelled: images without a label (multi-label: without any tag).
        label_cardinality: multi-label only: ``{"0": images with no tag, "1": ..., ...}``.
        split_counts: images per split when the manifest has splits.
        modes: images per PIL mode (``RGB``, ``L``, ``P``, ``CMYK``, ``I;16``...).
        formats: images per format found by content (``JPEG``, ``PNG``...).
        size: ``{"width": {min, max, mean, median}, "height": {...}}`` over readable images.
        n_resolutions: distinct ``(width, height)`` pairs.
        top_resolutions: the most common ``[width, height, count]`` (up to 10).
        corrupt: ``{path, reason}`` for every file that cannot be read, the ones over the
            decompression-bomb limit included (they are not decoded: see ``oversized``).
        oversized: ``{path, pixels}`` of the files of ``corrupt`` over the decompression-bomb
            limit ``max_pixels``: not decoded, so not checked for damage either; trusted, they
            read with a higher limit (:meth:`oversized_hint` says how).
        max_pixels: the decompression-bomb limit the scan applied, in pixels (``None``: none).
        duplicates: groups of byte-identical readable files: ``{sha1, paths, labels,
            conflicting_labels}`` (corrupt files are in ``corrupt`` only).
        n_duplicate_rows: manifest rows that repeat the same path.
        cross_split_duplicates: duplicate groups that sit on more than one split (leakage):
            ``{sha1, paths, splits}``.
        groups: ``None`` when the manifest has no group ids; else what :func:`_group_report`
            finds: ``n_groups``, ``images_per_group`` (``{min, median, max}``), ``largest``,
            ``mixed_label_groups``, ``n_without_id``, ``n_own_group``, ``groups_per_class``,
            ``few_group_classes``, ``cross_split_groups`` (with a split) and their counts.
        name_ids: for a manifest without group ids whose file names carry an id that groups
            images of one label (``keras_species.data.name_ids``: a tracking id, an
            individual), ``{pattern, regex, n_ids, shared_ids, shared_files}``, plus
            ``held_out_sharing`` (images of val/test, or of every fold, whose id is on another
            side) when a split is given; else ``None``. A note says how to split by it.
        imbalance_ratio: largest / smallest non-empty class count, over the readable images
            (those a training run reads, as ``majority_baseline``).
        empty_classes: classes without any image.
        majority_baseline: accuracy of always predicting the most frequent class (multi-label:
            exact-match accuracy of always predicting the most frequent label set), over the
            readable images (the ones a training run keeps; ``None`` when none is readable).
        majority_label: that class, or the label set joined with ``;`` (``""`` = no tag).
        non_rgb: ``{path, mode}`` of readable images whose mode is not RGB.
        animated: ``{path, n_frames}`` of animations / multi-page files (first frame is used).
        n_extension_mismatch: files whose extension does not fit their content.
        extension_mismatch: ``{path, format}`` of those files.
        n_needs_conversion: files the training pipeline reads through PIL, as its file check
            routes them (mode, animation, format, orientation, ...: ``pipeline.check_files``).
        n_exif_rotated: photos with an EXIF orientation other than upright.
        total_bytes: size of all files.
        seconds: wall time of the scan.
        workers: threads used.
        plots: plot files written by :meth:`save` (relative to the output folder).
        notes: remarks for the reader (e.g. capped sample grids).
        files: per-file :class:`~keras_species.data.images.ImageInfo` (not in the JSON).
    """

    source: str = ""
    n_images: int = 0
    class_names: list[str] = field(default_factory=list)
    multilabel: bool = False
    class_counts: dict[str, int] = field(default_factory=dict)
    readable_class_counts: dict[str, int] = field(default_factory=dict)
    n_unlabelled: int = 0
    label_cardinality: dict[str, int] | None = None
    split_counts: dict[str, int] | None = None
    modes: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    size: dict[str, dict[str, float]] = field(default_factory=dict)
    n_resolutions: int = 0
    top_resolutions: list[list[int]] = field(default_factory=list)
    corrupt: list[dict[str, str]] = field(default_factory=list)
    oversized: list[dict[str, Any]] = field(default_factory=list)
    max_pixels: int | None = None
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    n_duplicate_rows: int = 0
    cross_split_duplicates: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, Any] | None = None
    name_ids: dict[str, Any] | None = None
    imbalance_ratio: float | None = None
    empty_classes: list[str] = field(default_factory=list)
    majority_baseline: float | None = None
    majority_label: str | None = None
    non_rgb: list[dict[str, str]] = field(default_factory=list)
    animated: list[dict[str, Any]] = field(default_factory=list)
    n_extension_mismatch: int = 0
    extension_mismatch: list[dict[str, str]] = field(default_factory=list)
    n_needs_conversion: int = 0
    n_exif_rotated: int = 0
    total_bytes: int = 0
    seconds: float = 0.0
    workers: int = 0
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, ImageInfo] = field(default_factory=dict, repr=False)

    # -------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (without the per-file ``files``)."""
        out = {k: v for k, v in self.__dict__.items() if k != "files"}
        out["n_corrupt"] = len(self.corrupt)
        out["n_oversized"] = len(self.oversized)
        out["n_non_rgb"] = len(self.non_rgb)
        out["n_animated"] = len(self.animated)
        out["n_duplicate_groups"] = len(self.duplicates)
        out["n_cross_split_duplicates"] = len(self.cross_split_duplicates)
        return out

    def to_json(self, path: str | os.PathLike) -> str:
        """Write the report as JSON.

        Args:
            path: the output file (folders are created).

        Returns:
            The path written.
        """
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)
        return path

    def to_markdown(self) -> str:
        """The report as Markdown (tables, problem lists, links to the plots).

        Returns:
            The Markdown text (what :meth:`save` writes to ``audit.md``).
        """
        return _markdown(self)

    def save(
        self,
        out_dir: str | os.PathLike,
        manifest: Manifest | None = None,
        *,
        plots: bool = True,
        dropped: Sequence[dict[str, str]] | None = None,
    ) -> str:
        """Write ``audit.json``, ``audit.md`` and ``files.csv``, and the plots into ``plots/``.

        The folder always holds one audit's consistent set afterwards. Each file is written
        whole (a temporary sibling moved in), ``audit.md`` last, and only then are the files an
        earlier audit wrote there that this one does not write removed: ``dropped.csv`` when
        ``dropped`` is None, ``plots/samples_<class>.png`` of classes this audit draws no grid
        for, and every plot with ``plots=False``. Only the names the audit itself writes
        (:data:`OUTPUT_FILES`, ``plots/class_distribution.png``, ``plots/resolutions.png``,
        ``plots/samples_*.png``) are ever removed; anything else in the folder is left alone.
        When something was removed, a note in ``notes`` names it.

        Args:
            out_dir: the output folder (created).
            manifest: the audited manifest; needed for the per-class sample grids.
            plots: draw the plots (matplotlib, Agg backend).
            dropped: the rows :func:`clean` dropped, written to ``dropped.csv`` (``path,reason``).
                An empty list writes the header alone: the file then says that this cleaning
                dropped nothing, where a missing file could be read as a step that did not run.
                None (no cleaning, as :func:`audit` saves) writes none and removes an earlier one,
                which described another run's cleaning.

        Returns:
            The path of ``audit.md``.
        """
        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        earlier = _audit_outputs(out_dir)  # only removed once the new set is written
        self.notes = [n for n in self.notes if not n.startswith(("sample grids", _REPLACED))]
        # the plots take seconds: drawn into a hidden folder inside plots/ (on its file system,
        # which may be another one than out_dir's) and moved in with the other files, so that an
        # interrupted re-audit leaves the earlier audit's set whole (before, the new plots sat
        # beside the old audit.json)
        staged = os.path.join(out_dir, "plots", "staged")
        if os.path.isdir(os.path.dirname(staged)):
            remove_stale_temporaries(staged)
        stage = temporary_path(staged)
        try:
            self._save_staged(out_dir, manifest, plots, dropped, earlier, stage)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return os.path.join(out_dir, "audit.md")

    def _save_staged(self, out_dir: str, manifest: Manifest | None, plots: bool,
                     dropped: Sequence[dict[str, str]] | None, earlier: list[str], stage: Path) -> None:
        """:meth:`save`'s writes, the plots drawn into ``stage`` first."""
        if plots:  # the stage is fresh: save's `finally` removes it after every save
            self.plots, notes = _write_plots(self, manifest, os.fspath(stage))
            self.notes += notes
        else:
            self.plots = []  # audit.md links no plot: none of an earlier save, here or elsewhere
        written = {"audit.json", "audit.md", "files.csv", *self.plots}
        if dropped is not None:
            written.add("dropped.csv")
        stale = [rel for rel in earlier if rel not in written]
        if stale:
            shown = ", ".join(stale[:_SHOW_STALE]) + (
                f" and {len(stale) - _SHOW_STALE} more" if len(stale) > _SHOW_STALE else "")
            self.notes.append(f"{_REPLACED} an earlier audit in this folder: removed {len(stale)} "
                              f"of its file(s) that this audit does not write ({shown})")
        for rel in self.plots:  # "plots/<name>", first: a failed move leaves the earlier set whole
            os.replace(stage / rel.split("/", 1)[1], os.path.join(out_dir, rel))
        shutil.rmtree(stage, ignore_errors=True)
        _write_files_csv(self, os.path.join(out_dir, "files.csv"))
        if dropped is not None:
            _write_dropped_csv(dropped, os.path.join(out_dir, "dropped.csv"))
        self.to_json(os.path.join(out_dir, "audit.json"))
        md = os.path.join(out_dir, "audit.md")
        with atomic_path(md) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_markdown())
        _remove_outputs(out_dir, stale)

    def oversized_hint(self, flag: str = "--max-pixels") -> str:
        """How to read the files that are over the decompression-bomb limit, if they are
        trusted (:func:`~keras_species.data.images.max_pixels_hint`, with the limit the scan
        applied), or ``""`` when there are none.

        Args:
            flag: how the limit is raised where the hint is shown (the command's flag).

        Returns:
            One sentence, e.g. ``"1 file is over the decompression-bomb limit of 89,478,485
            pixels (90,000,000 pixels): if you trust it, pass --max-pixels 90000000 to read it,
            or resize it"``.

        Example:
            >>> AuditReport().oversized_hint()
            ''
        """
        if not self.oversized:
            return ""
        reasons = [c["reason"] for c in self.corrupt]
        if self.max_pixels is None or self.max_pixels == get_max_pixels():
            return max_pixels_hint(reasons, flag)
        with using_max_pixels(self.max_pixels):  # a report read back, scanned under another limit
            return max_pixels_hint(reasons, flag)

    def summary(self) -> str:
        """A few lines for the terminal: images, classes, problems, baseline."""
        too_large = (f" ({len(self.oversized)} of them over the decompression-bomb limit, not decoded)"
                     if self.oversized else "")
        lines = [
            f"{counted(self.n_images, 'image')}, {classes_phrase(len(self.class_names), self.multilabel)}, "
            f"scanned in {self.seconds:.1f} s",
            "modes: " + ", ".join(f"{k} {v}" for k, v in self.modes.items()),
            f"corrupt: {len(self.corrupt)}{too_large}, non-RGB: {len(self.non_rgb)}, animated: {len(self.animated)}, "
            f"extension mismatch: {self.n_extension_mismatch}",
            f"duplicate groups: {len(self.duplicates)}"
            + (f", across splits: {len(self.cross_split_duplicates)}" if self.split_counts else ""),
        ]
        if self.groups is not None:
            lines.append(_groups_line(self.groups, self.multilabel))
        if self.name_ids is not None:
            n = self.name_ids
            regex = f"--group-regex '{n['regex']}'" if n["regex"] else "a --group-regex"
            lines.append(f"ids in file names ({n['pattern']}): {n['n_ids']}, {n['shared_files']} "
                         f"images share theirs; no groups given: a group-aware split needs {regex}")
        if self.majority_baseline is not None:
            ratio = "n/a" if self.imbalance_ratio is None else f"{self.imbalance_ratio:.2f}"
            lines.append(
                f"majority baseline: {self.majority_baseline:.3f} ({self.majority_label or 'no tag'}), "
                f"imbalance ratio {ratio}"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- audit
def audit(
    manifest: Manifest,
    out_dir: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    plots: bool = True,
) -> AuditReport:
    """Scan every image of ``manifest`` and report counts, modes, sizes and problems.

    Files are read in a thread pool (PIL releases the GIL while decoding); each is fully decoded
    (truncation only shows then) and hashed (exact duplicates).

    Args:
        manifest: the data set.
        out_dir: when given, the report is saved there (``audit.json``, ``audit.md``,
            ``files.csv``, ``plots/``), once the scan is done; the files an earlier audit
            wrote there that this one does not (its ``dropped.csv``, plots) are removed, and
            nothing else (:meth:`AuditReport.save`).
        workers: threads; default ``min(32, cores + 4)``, ``cores`` the usable ones
            (:func:`keras_species.cpu_budget.usable_cores`: a container's CPU quota counts).
        progress: show a progress bar on stderr.
        plots: draw plots when saving.

    Returns:
        The :class:`AuditReport`.

    Example:
        >>> m = Manifest(["a.png", "b.png"], np.array([0, 0]), ["cod"])     # doctest: +SKIP
        >>> audit(m, progress=False).majority_baseline                        # doctest: +SKIP
        1.0
    """
    require_manifest(manifest, "audit")
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):  # before the scan
        raise FileExistsError(f"out_dir {os.fspath(out_dir)} is a file: give a folder for the audit's files")
    if out_dir is not None:  # its plots would be read back as images of a class
        from keras_species.data.sources import check_output_place

        check_output_place(manifest, out_dir, "out_dir", folder=True)
    if len(manifest) == 0:
        raise ManifestError(
            f"{manifest.source or 'the manifest'} holds no images, so there is nothing to audit "
            "(were all its rows skipped as missing files? check the paths or --root)"
        )
    start = time.perf_counter()
    unique = list(dict.fromkeys(manifest.paths))
    workers = int(workers or min(32, usable_cores() + 4))
    infos: dict[str, ImageInfo] = {}
    bar = _Progress(len(unique), progress)
    # An oversized image is reported as corrupt with the fix; PIL's DecompressionBombWarning,
    # which would only repeat it, is silenced by the reader itself around Image.open, the one
    # call of a probe that emits it (images.pil_warnings_silenced). No scope of its own here:
    # a warnings.catch_warnings around the pool, entered while another thread's scope was open,
    # restored that thread's filter on exit and left it on for good.
    if workers <= 1 or len(unique) <= 1:
        for p in unique:
            infos[p] = probe(p)
            bar.update()
    else:
        # chunks of files, not one Future a file: a Future's lock and bookkeeping cost more than
        # probing a small image (twice the time of one thread at 100,000 16x16 PNGs)
        chunks = [unique[i : i + _PROBE_CHUNK] for i in range(0, len(unique), _PROBE_CHUNK)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for chunk, probed in zip(chunks, pool.map(lambda c: [probe(p) for p in c], chunks)):
                infos.update(zip(chunk, probed))
                bar.update(len(chunk))

    report = _summarise(manifest, infos)
    report.workers = workers
    report.seconds = round(time.perf_counter() - start, 3)
    if out_dir is not None:
        report.save(out_dir, manifest, plots=plots)
    return report


_PROBE_CHUNK = 32
"""Files a worker of the audit probes per task."""


def _label_key(manifest: Manifest, i: int) -> str:
    return ";".join(manifest.label_names(i))


def majority_label_set(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The most frequent label set of multi-hot labels: the multi-label majority baseline.

    The audit applies it to the whole data set; a training run applies it to the training split
    and scores the set on the test split (``evaluation.metrics.multilabel_metrics``), so both
    report the same baseline rule. Ties go to the empty set ("no tag"), then to the set seen first.

    Args:
        labels: ``(N, C)`` 0/1 multi-hot labels, ``N >= 1``.

    Returns:
        ``(row, count)``: the ``(C,)`` uint8 label set and how many rows carry it.

    Example:
        >>> majority_label_set(np.array([[1, 0], [1, 0], [0, 1]]))
        (array([1, 0], dtype=uint8), 2)
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or len(labels) == 0:
        raise ValueError(f"labels must be (N, C) multi-hot with N >= 1; got shape {labels.shape}")
    codes, first = label_set_codes(labels)  # numbered as first seen
    counts = np.bincount(codes)
    empty = ~labels.astype(bool)[first].any(axis=1)
    best = max(range(len(first)), key=lambda k: (counts[k], empty[k]))  # the first of equals: seen first
    return labels[first[best]].astype(np.uint8), int(counts[best])


def _read_through_pil(paths: Sequence[str]) -> int:
    """How many of ``paths`` the training pipeline reads through PIL: its own file check decides
    (about 7 µs a file), so the audit counts what training will do."""
    from keras_species.data.pipeline import KIND_PIL, check_files

    kinds, _ = check_files(paths)
    return int(np.sum(kinds == KIND_PIL))


def _summarise(manifest: Manifest, infos: dict[str, ImageInfo]) -> AuditReport:
    r = AuditReport(
        source=manifest.source,
        n_images=len(manifest),
        class_names=list(manifest.class_names),
        multilabel=manifest.multilabel,
        files=infos,
    )
    # ---- labels
    counts = manifest.class_counts()
    r.class_counts = {c: int(n) for c, n in zip(manifest.class_names, counts)}
    r.empty_classes = [c for c, n in r.class_counts.items() if n == 0]
    rows_ok = np.array([p in infos and infos[p].ok for p in manifest.paths], dtype=bool)
    kept = manifest.subset(rows_ok)  # what a training run reads: the baseline counts only these
    # over the same readable rows as the baseline: 3 and 3 rows of which 2 empty files read as
    # ratio 1.0 beside a baseline of 0.75 (before stop 32)
    non_empty = [n for n in kept.class_counts() if n > 0]
    if non_empty:
        r.imbalance_ratio = round(float(max(non_empty)) / float(min(non_empty)), 4)
    if manifest.multilabel:
        card = manifest.labels.sum(axis=1)
        r.label_cardinality = {str(k): int(v) for k, v in sorted(Counter(card.tolist()).items())}
        r.n_unlabelled = int((card == 0).sum())
        if len(kept):
            row, n = majority_label_set(kept.labels)
            label = ";".join(kept.class_names[j] for j in np.flatnonzero(row))
            r.majority_label, r.majority_baseline = label, round(n / len(kept), 6)
    else:
        r.n_unlabelled = int((manifest.labels == UNLABELLED).sum())
        labelled_ok = kept.labels != UNLABELLED
        if labelled_ok.any():
            kept_counts = kept.class_counts()
            k = int(np.argmax(kept_counts))
            r.majority_label = manifest.class_names[k]
            r.majority_baseline = round(float(kept_counts[k]) / float(labelled_ok.sum()), 6)
    if manifest.splits is not None:
        r.split_counts = dict(sorted(Counter(manifest.splits).items()))

    # ---- per file (unique paths)
    readable = [info for info in infos.values() if info.ok]
    ok_counts = kept.class_counts()
    r.readable_class_counts = {c: int(n) for c, n in zip(manifest.class_names, ok_counts)}
    r.modes = dict(Counter(i.mode for i in readable).most_common())
    r.formats = dict(Counter(i.format for i in readable).most_common())
    r.total_bytes = int(sum(i.bytes for i in infos.values()))
    if readable:
        w = np.array([i.width for i in readable], np.float64)
        h = np.array([i.height for i in readable], np.float64)
        stats = lambda a: {  # noqa: E731
            "min": int(a.min()), "max": int(a.max()),
            "mean": round(float(a.mean()), 1), "median": float(np.median(a)),
        }
        r.size = {"width": stats(w), "height": stats(h)}
        res = Counter((i.width, i.height) for i in readable)
        r.n_resolutions = len(res)
        r.top_resolutions = [[a, b, n] for (a, b), n in res.most_common(10)]
    order = {p: k for k, p in enumerate(dict.fromkeys(manifest.paths))}
    by_path = sorted(infos.values(), key=lambda i: order.get(i.path, len(order)))
    r.corrupt = [{"path": i.path, "reason": i.error} for i in by_path if not i.ok]
    r.max_pixels = get_max_pixels()  # the limit the scan applied (the hint names it)
    r.oversized = [{"path": c["path"], "pixels": n} for c in r.corrupt
                   if (n := oversized_pixels(c["reason"])) is not None]
    r.non_rgb = [{"path": i.path, "mode": i.mode} for i in by_path if i.ok and i.mode != "RGB"]
    r.animated = [{"path": i.path, "n_frames": i.n_frames} for i in by_path if i.ok and i.animated]
    r.extension_mismatch = [
        {"path": i.path, "format": i.format} for i in by_path if i.format and not i.extension_matches
    ]
    r.n_extension_mismatch = len(r.extension_mismatch)
    r.n_needs_conversion = _read_through_pil([i.path for i in readable])
    r.n_exif_rotated = sum(1 for i in readable if 2 <= (i.orientation or 0) <= 8)

    # ---- duplicates (byte-identical readable files: corrupt ones are dropped by every
    # cleaning, so they can be neither duplicates nor leakage)
    r.n_duplicate_rows = len(manifest) - len(order)
    rows_by_hash: dict[str, list[int]] = defaultdict(list)
    for row, p in enumerate(manifest.paths):
        info = infos.get(p)
        if info is not None and info.sha1 and info.error is None:
            rows_by_hash[info.sha1].append(row)
    for sha1, rows in rows_by_hash.items():
        if len(rows) < 2:
            continue
        labels = [_label_key(manifest, i) for i in rows]
        group: dict[str, Any] = {
            "sha1": sha1,
            "paths": [manifest.paths[i] for i in rows],
            "labels": labels,
            "conflicting_labels": len(set(labels)) > 1,
        }
        if manifest.splits is not None:
            splits = [manifest.splits[i] for i in rows]
            group["splits"] = splits
            if len(set(splits)) > 1:
                r.cross_split_duplicates.append(
                    {"sha1": sha1, "paths": group["paths"], "splits": splits}
                )
        r.duplicates.append(group)
    n_conflict = sum(1 for g in r.duplicates if g["conflicting_labels"])
    if n_conflict:
        r.notes.append(
            f"{n_conflict} duplicate group(s) carry conflicting labels: fix the labels or drop "
            "the copies (--drop-list FILE, or clean(..., drop=[...]))"
        )
    if r.cross_split_duplicates:
        r.notes.append(
            f"{len(r.cross_split_duplicates)} duplicate group(s) sit on more than one split: "
            "test scores will be optimistic (leakage); drop the copies or re-split"
        )
    r.groups, group_notes = _group_report(manifest)
    r.notes += group_notes
    r.name_ids, name_note = _name_id_report(manifest)
    r.notes += name_note
    return r


def _name_id_report(manifest: Manifest) -> tuple[dict[str, Any] | None, list[str]]:
    """An id in the file names of a manifest without groups (``name_ids.find_name_id``), and
    the note that says what a split needs; ``(None, [])`` when there is none."""
    found = name_ids.find_manifest_name_id(manifest)
    if found is None:
        return None, []
    out: dict[str, Any] = found.to_dict()
    regex = f"--group-regex '{found.regex}'" if found.regex else "a --group-regex that captures it"
    note = (f"the file names carry an id ({found.pattern}): {found.shared_files} of "
            f"{counted(len(manifest), 'image')} share theirs with another image "
            f"({found.shared_ids} of {counted(found.n_ids, 'id')} are held by two or more); if files "
            "with one id are frames of one video or photos of one individual, "
            f"a fair split keeps each id on one side: split with {regex}")
    leak = name_ids.name_id_leak(manifest, found) if manifest.splits is not None else None
    if leak is not None:
        out["held_out_sharing"] = leak.count
        note += f" (in the split given, {leak.counts()})"
    return out, [note]


def _group_report(manifest: Manifest) -> tuple[dict[str, Any] | None, list[str]]:
    """What the group ids of ``manifest`` say: sizes, mixed labels, missing ids, leakage.

    A group is meant to be one individual (e.g. one tracked fish, whose frames look alike), so a
    fair split keeps it on one side. Rows whose id is their own path are the loaders' fallback
    for a file name the regex does not match or an empty group cell, and, since stop 33, the
    manifest's for an empty id (``""``, which made one group of all such rows before)
    (``n_own_group``): each is a group of one, and counted as such. ``n_without_id`` (rows whose
    id is empty, left out of every other figure) stays in the report for its readers, and is 0.

    Args:
        manifest: the data set.

    Returns:
        ``(report, notes)``: ``report`` is ``None`` when the manifest has no groups, else a dict
        with ``n_groups``; ``images_per_group`` (``{min, median, max}``, ``None`` without
        groups); ``largest`` (up to :data:`LARGEST_GROUPS` ``{group, images, classes}``,
        ``classes`` = images per class in the group; multi-label: images carrying each tag);
        ``mixed_label_groups`` / ``n_mixed_label_groups``: single-label, groups whose images
        carry more than one class (``{group, images, classes}``: suspicious, one individual has
        one species); multi-label, groups whose images carry different label sets
        (``{group, images, label_sets}``, ``""`` = no tag: for information only, as frames of
        one scene may show different tags); ``n_without_id``; ``n_own_group``;
        ``groups_per_class`` (groups with at least one image of the class);
        ``few_group_classes`` (``{class: groups}`` for the classes with images but fewer than
        :data:`MIN_GROUPS_PER_CLASS` groups); with a split, ``cross_split_groups``
        (``{group, images, splits: {split: images}}``, leakage) and ``n_cross_split_groups``.
        ``notes`` are remarks for :attr:`AuditReport.notes`.

    Example:
        >>> m = Manifest(["a.png", "b.png", "c.png"], np.array([0, 1, 0]), ["cod", "eel"],
        ...              groups=["7", "7", "8"])
        >>> report, notes = _group_report(m)
        >>> report["n_groups"], report["mixed_label_groups"][0]["classes"]
        (2, {'cod': 1, 'eel': 1})
    """
    if manifest.groups is None:
        return None, []
    notes: list[str] = []
    names = manifest.class_names
    ids = np.asarray(manifest.groups, dtype=object)
    has_id = ids != ""  # always true since stop 33 (a manifest makes an empty id its own path)
    rows = np.flatnonzero(has_id)
    uniq, first, inv, sizes = np.unique(ids[rows].astype(str), return_index=True, return_inverse=True,
                                        return_counts=True)
    inv = inv.reshape(-1)
    n_groups = len(uniq)
    out: dict[str, Any] = {
        "n_groups": n_groups,
        "images_per_group": None,
        "largest": [],
        "n_mixed_label_groups": 0,
        "mixed_label_groups": [],
        "n_without_id": int((~has_id).sum()),
        "n_own_group": sum(1 for g, p in zip(manifest.groups, manifest.paths) if g == p),
        "groups_per_class": {c: 0 for c in names},
        "few_group_classes": {},
    }
    if manifest.splits is not None:
        out["n_cross_split_groups"], out["cross_split_groups"] = 0, []
    if not n_groups:
        return out, notes
    out["images_per_group"] = {"min": int(sizes.min()), "median": float(np.median(sizes)),
                               "max": int(sizes.max())}

    # (group, class) pairs with their image counts: which classes each group holds
    if manifest.multilabel:
        r_idx, c_idx = np.nonzero(manifest.labels[rows])
    else:
        r_idx = np.flatnonzero(manifest.labels[rows] != UNLABELLED)
        c_idx = manifest.labels[rows][r_idx]
    pairs, pair_n = np.unique(np.stack([inv[r_idx], c_idx], axis=1).reshape(-1, 2), axis=0,
                              return_counts=True)
    starts = np.searchsorted(pairs[:, 0], np.arange(n_groups + 1))  # pairs are sorted by group

    def classes_of(g: int) -> dict[str, int]:
        lo, hi = starts[g], starts[g + 1]
        found = sorted(zip(pair_n[lo:hi].tolist(), pairs[lo:hi, 1].tolist()), key=lambda t: (-t[0], t[1]))
        return {names[c]: n for n, c in found}

    # largest first; ties in the order the groups first appear
    order = np.lexsort((first, -sizes))
    out["largest"] = [{"group": str(uniq[g]), "images": int(sizes[g]), "classes": classes_of(g)}
                      for g in order[:LARGEST_GROUPS]]

    if manifest.multilabel:  # groups whose images carry different label sets
        sets, set_ids = np.unique(manifest.labels[rows], axis=0, return_inverse=True)
        g_set, g_set_n = np.unique(np.stack([inv, set_ids.reshape(-1)], 1), axis=0, return_counts=True)
        set_starts = np.searchsorted(g_set[:, 0], np.arange(n_groups + 1))
        mixed = np.flatnonzero(np.diff(set_starts) > 1)
        set_name = [";".join(names[j] for j in np.flatnonzero(row)) for row in sets]
        for g in order[np.isin(order, mixed)]:
            lo, hi = set_starts[g], set_starts[g + 1]
            found = sorted(zip(g_set_n[lo:hi].tolist(), g_set[lo:hi, 1].tolist()), key=lambda t: (-t[0], t[1]))
            out["mixed_label_groups"].append({"group": str(uniq[g]), "images": int(sizes[g]),
                                              "label_sets": {set_name[k]: n for n, k in found}})
    else:  # groups whose images carry more than one class
        mixed = np.flatnonzero(np.diff(starts) > 1)
        out["mixed_label_groups"] = [
            {"group": str(uniq[g]), "images": int(sizes[g]), "classes": classes_of(g)}
            for g in order[np.isin(order, mixed)]
        ]
        if len(mixed):
            shown = "; ".join(f"{d['group']} ({', '.join(d['classes'])})"
                              for d in out["mixed_label_groups"][:3])
            notes.append(
                f"{len(mixed)} group(s) carry more than one class (e.g. {shown}): a group should be "
                "one individual of one species; check its labels or the group ids"
            )
    out["n_mixed_label_groups"] = len(out["mixed_label_groups"])

    per_class = np.bincount(pairs[:, 1], minlength=len(names))
    out["groups_per_class"] = {c: int(n) for c, n in zip(names, per_class)}
    images = manifest.class_counts()
    few = [(c, int(n)) for c, n, k in zip(names, per_class, images) if k > 0 and n < MIN_GROUPS_PER_CLASS]
    out["few_group_classes"] = dict(sorted(few, key=lambda t: (t[1], t[0])))
    if few:
        shown = ", ".join(f"{c} ({n})" for c, n in list(out["few_group_classes"].items())[:_SHOW_CLASSES_NOTE])
        more = f" and {len(few) - _SHOW_CLASSES_NOTE} more" if len(few) > _SHOW_CLASSES_NOTE else ""
        notes.append(
            f"{counted(len(few), 'class')} {'has' if len(few) == 1 else 'have'} fewer than "
            f"{MIN_GROUPS_PER_CLASS} groups, so a group-aware "
            f"train/val/test split cannot put each on every side: {shown}{more}"
        )

    if manifest.splits is not None:
        split_of = np.asarray(manifest.splits, dtype=object)[rows].astype(str)
        s_uniq, s_idx = np.unique(split_of, return_inverse=True)
        g_s, g_s_n = np.unique(np.stack([inv, s_idx.reshape(-1)], 1), axis=0, return_counts=True)
        s_starts = np.searchsorted(g_s[:, 0], np.arange(n_groups + 1))
        across = np.flatnonzero(np.diff(s_starts) > 1)
        out["cross_split_groups"] = [
            {"group": str(uniq[g]), "images": int(sizes[g]),
             "splits": {str(s_uniq[s]): int(n) for s, n in zip(g_s[s_starts[g]:s_starts[g + 1], 1],
                                                               g_s_n[s_starts[g]:s_starts[g + 1]])}}
            for g in order[np.isin(order, across)]
        ]
        out["n_cross_split_groups"] = len(across)
        if len(across):
            notes.append(
                f"{len(across)} group(s) sit on more than one split: frames of one individual on "
                "both sides make test scores optimistic (leakage); re-split with these group ids, "
                "which keeps each group on one side: keras-species split DATA with the same "
                "--group-regex (or a CSV's group column, --group-col)"
            )
    return out, notes


# ---------------------------------------------------------------------------------- clean

def _read_drop_list(drop: str | os.PathLike | Iterable[str]) -> list[tuple[int, str]]:
    """The entries of a drop list with where each was written.

    Args:
        drop: a text file with one entry per line (``#`` starts a comment), or a list of entries.

    Returns:
        ``(line, entry)`` pairs: the file's line number, or the position (from 1) in the list.
        Blank lines and comments are left out; one pair of surrounding quotes is removed.
    """
    if isinstance(drop, (str, os.PathLike)):
        path = os.fspath(drop)
        if not os.path.isfile(path):
            what = "is a folder" if os.path.isdir(path) else "not found"
            raise FileNotFoundError(
                f"drop list {path} {what}: pass a text file with one path or file name per line "
                "(or a CSV with a path column, such as an audit's dropped.csv), or a list of paths"
            )
        from keras_species.data.images import is_image_file
        from keras_species.data.text import read_text

        if is_image_file(path):
            raise ValueError(f"drop list {path} is an image, not a list: pass a text file with one path "
                             f"or file name per line, or the list drop=[{path!r}]")
        text = read_text(path)
        numbered = _csv_path_column(path, text) if path.lower().endswith(".csv") else None
        if numbered is None:
            numbered = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1)]
            numbered = [(n, ln) for n, ln in numbered if ln and not ln.startswith("#")]
    else:
        numbered = [(n, os.fspath(d).strip()) for n, d in enumerate(drop, start=1)]
    from keras_species.data.sources import unquote

    unquoted = [(n, unquote(e)) for n, e in numbered]
    return [(n, e) for n, e in unquoted if e]


def _csv_path_column(path: str, text: str) -> list[tuple[int, str]] | None:
    """``(line, path)`` of a CSV drop list whose header names a ``path`` column (an audit's
    ``dropped.csv`` or ``files.csv``), read as the data readers read a CSV (``#`` comments, a
    ``;`` or tab delimiter); ``None`` for a CSV without one (read line by line)."""
    from keras_species.data.sources import _read_csv_rows

    try:
        header, rows, lines, _ = _read_csv_rows(path, text)
    except ManifestError:
        return None
    column = next((h for h in header if h.lower() == "path"), None)
    if column is None:
        return None
    return [(line, row[column]) for line, row in zip(lines, rows)
            if row is not None and row[column] and not row[column].startswith("#")]


def _drop_list_name(drop: str | os.PathLike | Iterable[str]) -> tuple[str, str]:
    """How warnings name a drop list and a place in it: ``("drop list x.txt", "line")`` or
    ``("the drop= list", "entry")``."""
    if isinstance(drop, (str, os.PathLike)):
        return f"drop list {os.fspath(drop)}", "line"
    return "the drop= list", "entry"


def _norm(p: str) -> str:
    return os.path.normcase(os.path.normpath(os.path.abspath(p)))


def _match_drop_entries(
    manifest: Manifest, entries: Sequence[str]
) -> tuple[dict[int, str], list[str], dict[str, list[str]]]:
    """Map rows to the drop entry that names them.

    An entry matches a manifest path written in full, then (a bare file name, without a folder)
    every file of that name, then (a relative path such as ``ants/x.jpg``) every path ending
    with it.

    Returns:
        ``(hits, unknown, ambiguous)``: row → entry; the entries matching no row; each bare
        file name that matched files in more than one folder → those files.
    """
    by_abs: dict[str, list[int]] = defaultdict(list)
    by_name: dict[str, list[int]] = defaultdict(list)
    norm_paths = []
    for i, p in enumerate(manifest.paths):
        n = _norm(p)
        norm_paths.append(n.replace(os.sep, "/"))
        by_abs[n].append(i)
        by_name[os.path.basename(p)].append(i)
    hits: dict[int, str] = {}
    unknown: list[str] = []
    ambiguous: dict[str, list[str]] = {}
    for entry in entries:
        rows = list(by_abs.get(_norm(entry), []))
        if not rows and os.sep not in entry and "/" not in entry:
            rows = list(by_name.get(entry, []))
            files = list(dict.fromkeys(manifest.paths[i] for i in rows))
            if len({os.path.dirname(f) for f in files}) > 1:
                ambiguous[entry] = files
        if not rows:  # a relative path such as "ants/x.jpg": match it as a path suffix
            suffix = "/" + entry.replace("\\", "/").lstrip("./")
            rows = [i for i, n in enumerate(norm_paths) if n.endswith(suffix)]
        if not rows:
            unknown.append(entry)
        for i in rows:
            hits.setdefault(i, entry)
    return hits, unknown, ambiguous


def _warn_ambiguous_names(ambiguous: dict[str, list[str]], line_of: dict[str, int],
                          list_name: str, place: str) -> None:
    """One warning for the bare file names of a drop list that matched files in several folders."""
    shown = []
    for name, files in list(ambiguous.items())[:_SHOW_AMBIGUOUS]:
        folders = list(dict.fromkeys(os.path.basename(os.path.dirname(f)) for f in files))
        folder_text = ", ".join(folders[:_SHOW_AMBIGUOUS]) + (" ..." if len(folders) > _SHOW_AMBIGUOUS else "")
        shown.append(f"{name!r} ({place} {line_of[name]}: {len(files)} files, in {folder_text})")
    if len(ambiguous) > len(shown):
        shown.append(f"and {len(ambiguous) - len(shown)} more")
    first_name, first_files = next(iter(ambiguous.items()))
    example = f"{os.path.basename(os.path.dirname(first_files[0]))}/{first_name}"
    warnings.warn(
        f"{list_name}: {len(ambiguous)} bare file name(s) match files in more than one folder, "
        f"and every one of those files is dropped: {'; '.join(shown)}. To drop one file only, "
        f"write its folder before the name on that {place}, e.g. {example!r}",
        UserWarning,
        stacklevel=3,
    )


def clean(
    manifest: Manifest,
    report: AuditReport,
    *,
    policy: str = "convert",
    drop: str | os.PathLike | Iterable[str] | None = None,
    warn_emptied: bool = True,
) -> tuple[Manifest, list[dict[str, str]]]:
    """Drop corrupt files, optionally non-RGB ones and a user's list; nothing is deleted on disk.

    Args:
        manifest: the audited manifest.
        report: its :class:`AuditReport`.
        policy: ``"convert"`` keeps non-RGB images (the pipeline converts them to RGB);
            ``"drop_non_rgb"`` drops them (R5). Corrupt files are dropped under both.
        drop: files to leave out (R3's cleaning list): a list of paths / file names / relative
            paths, or the path of a text file with one per line (``#`` starts a comment).
            One pair of surrounding quotes is removed (``"a b.png"``). A bare file name drops
            that name in every folder; when it matches files in more than one folder a warning
            names it (write ``class/file`` to drop one). Entries that match no image are listed
            in a warning and in ``cleaned.extra["cleaning"]["unmatched_drop"]``.
        warn_emptied: warn about the classes cleaning leaves without any image
            (:func:`warn_emptied_classes`). False for a caller that says it itself: ``prepare_data``
            refuses data left with fewer than 2 classes in a fuller error, and warns otherwise.

    Returns:
        ``(cleaned manifest, dropped)`` where ``dropped`` is a list of ``{path, reason}``. The
        class list is kept as it is (stable indices); a class left without any image is named
        in ``cleaned.extra["cleaning"]["emptied_classes"]`` (and warned about).

    Example:
        >>> cleaned, dropped = clean(m, report, policy="drop_non_rgb", drop=["bad 1.jpg"])  # doctest: +SKIP
    """
    require_manifest(manifest, "clean")
    if policy not in POLICIES:
        raise ValueError(f"unknown cleaning policy {policy!r}: choose one of {', '.join(POLICIES)}")
    too_large = {o["path"]: o["pixels"] for o in report.oversized}
    reasons: dict[str, str] = {
        c["path"]: f"corrupt: {c['reason']}" + (f"; {_raise_limit_fix(too_large[c['path']])}"
                                                if c["path"] in too_large else "")
        for c in report.corrupt
    }
    if policy == "drop_non_rgb":
        for item in report.non_rgb:
            reasons.setdefault(item["path"], f"non-RGB mode {item['mode']} (policy drop_non_rgb)")
    row_reason: dict[int, str] = {}
    for i, p in enumerate(manifest.paths):
        if p in reasons:
            row_reason[i] = reasons[p]
    unknown: list[str] = []
    if drop is not None:
        numbered = _read_drop_list(drop)
        line_of: dict[str, int] = {}
        for line, entry in numbered:
            line_of.setdefault(entry, line)
        hits, unknown, ambiguous = _match_drop_entries(manifest, [e for _, e in numbered])
        for i, entry in hits.items():
            row_reason.setdefault(i, f"in the drop list ({entry})")
        list_name, place = _drop_list_name(drop)
        if unknown:
            shown = ", ".join(f"{e} ({place} {line_of[e]})" for e in unknown[:20])
            shown += f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            warnings.warn(
                f"{list_name}: {len(unknown)} "
                f"{'entry matches' if len(unknown) == 1 else 'entries match'} no image "
                f"of the manifest: {shown}. Check the spelling (paths, or bare file names)",
                UserWarning,
                stacklevel=2,
            )
        if ambiguous:
            _warn_ambiguous_names(ambiguous, line_of, list_name, place)
    keep = np.array([i not in row_reason for i in range(len(manifest))], dtype=bool)
    cleaned = manifest.subset(keep)
    dropped = [{"path": manifest.paths[i], "reason": row_reason[i]} for i in sorted(row_reason)]
    emptied = [name for name, before, after in
               zip(manifest.class_names, manifest.class_counts(), cleaned.class_counts())
               if before > 0 and after == 0]
    cleaned.extra["cleaning"] = {"policy": policy, "n_dropped": len(dropped), "emptied_classes": emptied,
                                 "unmatched_drop": unknown}
    if warn_emptied:
        warn_emptied_classes(cleaned, stacklevel=3)
    return cleaned, dropped


def _raise_limit_fix(pixels: int) -> str:
    """How to read a trusted file of ``pixels`` pixels that is over the decompression-bomb
    limit: with the commands that have ``--max-pixels``, and in Python (the recipes read with
    the limit set there)."""
    return (f"too large to decode, so not checked for damage: if you trust it, raise the limit (keras-species audit, "
            f"split, shard or predict --max-pixels {pixels}; in Python "
            f"keras_species.data.images.set_max_pixels({pixels})), or resize it")


def warn_emptied_classes(cleaned: Manifest, *, stacklevel: int = 2) -> None:
    """Warn about the classes that :func:`clean` left without any image, if any.

    Args:
        cleaned: a manifest :func:`clean` returned (its ``extra["cleaning"]["emptied_classes"]``).
        stacklevel: as ``warnings.warn``'s: 2 names the caller of this function.

    Example:
        >>> cleaned, dropped = clean(m, report, warn_emptied=False)  # doctest: +SKIP
        >>> warn_emptied_classes(cleaned)                            # doctest: +SKIP
    """
    emptied = cleaned.extra.get("cleaning", {}).get("emptied_classes") or []
    if emptied:
        each = "it" if len(emptied) == 1 else "each"
        warnings.warn(
            f"cleaning leaves {counted(len(emptied), 'class')} without any image: {', '.join(emptied)} "
            f"(every file of {each} was dropped; the reasons are in the dropped list). A model would "
            f"still get an output for {each} that it can never learn: fix or replace those files, or "
            "take the class out of the data",
            UserWarning,
            stacklevel=stacklevel,
        )


# ---------------------------------------------------------------------------------- files.csv
def _write_files_csv(report: AuditReport, path: str) -> None:

    cols = ["path", "format", "mode", "width", "height", "n_frames", "bytes", "orientation", "sha1", "error"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csvfile.writer(f)
        w.writerow(cols)
        for info in report.files.values():
            d = info.to_dict()
            w.writerow(["" if d[c] is None else d[c] for c in cols])


def _write_dropped_csv(dropped: Sequence[dict[str, str]], path: str) -> None:

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csvfile.dict_writer(f, ["path", "reason"])
        w.writeheader()
        w.writerows(dropped)


# ---------------------------------------------------------------------------------- outputs
def _audit_outputs(out_dir: str) -> list[str]:
    """The files in ``out_dir`` (relative to it) that carry a name an audit writes: the ones a
    new audit replaces or, when it does not write them, removes."""
    found = [n for n in OUTPUT_FILES if _is_file(os.path.join(out_dir, n))]
    plot_dir = os.path.join(out_dir, "plots")
    if os.path.isdir(plot_dir):
        for name in sorted(os.listdir(plot_dir)):
            if (name in PLOT_FILES or (name.startswith("samples_") and name.endswith(".png"))) \
                    and _is_file(os.path.join(plot_dir, name)):
                found.append(f"plots/{name}")
    return found


def _is_file(path: str) -> bool:
    return os.path.lexists(path) and not os.path.isdir(path)


def _remove_outputs(out_dir: str, stale: Iterable[str]) -> None:
    """Remove an earlier audit's files (``stale``, from :func:`_audit_outputs`) and ``plots/``
    when that leaves it empty; one that cannot be removed is named in a warning."""
    for rel in stale:
        path = os.path.join(out_dir, rel)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            warnings.warn(f"could not remove {path}, left by an earlier audit in {out_dir} "
                          f"({err.strerror or err}): it does not belong to this audit", stacklevel=3)
    plot_dir = os.path.join(out_dir, "plots")
    if os.path.isdir(plot_dir) and not os.path.islink(plot_dir) and not os.listdir(plot_dir):
        with contextlib.suppress(OSError):
            os.rmdir(plot_dir)


def _check_writable(folder: Path, target: Path, flag: str) -> None:
    """Refuse a ``folder`` this process cannot write to (no permission, a read-only file
    system), before the scan, in :func:`~keras_species.atomic.atomic_path`'s wording for
    ``target`` and ``flag``."""
    # the effective ids where the platform can (os.access asks with the real ones by default)
    effective = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    if os.access(folder, os.W_OK | os.X_OK, **effective):
        return
    code = errno.EACCES
    with contextlib.suppress(OSError, AttributeError, ValueError):  # statvfs: POSIX only
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            code = errno.EROFS
    raise _write_error(OSError(code, os.strerror(code)), target, target, flag)


def _prepare_output(path: str | os.PathLike, flag: str, *, folder: bool) -> Path:
    """Make the output ``path`` (a folder, or a file's folder) and check that it can be written,
    before the scan: an error names ``path`` and ``flag``."""
    path = Path(path)
    try:
        if folder:
            check_output_folder(path, flag).mkdir(exist_ok=True)
        else:
            check_output_file(path, flag)
    except OSError as err:
        if flag in str(err):
            raise
        raise _write_error(err, path, path, flag) from None  # e.g. EROFS while making the folder
    if folder:
        _check_writable(path, path, flag)
        if os.path.isdir(path / "plots"):  # new plots go there, stale ones are removed from it
            _check_writable(path / "plots", path / "plots", flag)
    else:
        _check_writable(path.parent, path, flag)
    return path


# ---------------------------------------------------------------------------------- markdown
def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(markdown.cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


SHOWN_GROUP_PATHS = 5
"""Files of one duplicate group that ``audit.md`` names (``audit.json`` keeps them all): one
"image not available" picture copied 15,000 times made a table cell of 774,454 characters."""


def _cell_paths(paths: Sequence[str]) -> str:
    shown = "<br>".join(f"`{p}`" for p in paths[:SHOWN_GROUP_PATHS])
    return shown + (f"<br>… and {len(paths) - SHOWN_GROUP_PATHS} more" if len(paths) > SHOWN_GROUP_PATHS else "")


def _cell_counts(values: Sequence[str]) -> str:
    """``cod / eel`` for a few values; ``cod 150, eel 149, ...`` once they repeat."""
    if len(values) <= SHOWN_GROUP_PATHS:
        return " / ".join(values)
    counts = Counter(values).most_common()
    shown = ", ".join(f"{v} {n}" for v, n in counts[:10])
    return shown + (f", … {len(counts) - 10} more" if len(counts) > 10 else "")


def _capped(items: list, render, headers: Sequence[str], cap: int = _LIST_CAP_MD) -> str:
    text = _table(headers, (render(x) for x in items[:cap]))
    if len(items) > cap:
        text += f"\n\n… and {len(items) - cap} more (all in `audit.json`)."
    return text


def _file_problems(heading: str, items: list, key: str, column: str) -> list[str]:
    """A ``### heading`` section listing each file of ``items`` with its ``key`` value under
    ``column``; no lines when ``items`` is empty."""
    if not items:
        return []
    rows = _capped(items, lambda c: (f"`{c['path']}`", c[key]), ["file", column])
    return [f"### {heading}", "", rows, ""]


def _class_counts_text(classes: dict[str, int], cap: int = 8, empty: str = "no label") -> str:
    """``"cod 5, eel 1"`` (at most ``cap`` entries, then how many more); ``""`` keys read "no tag",
    and no entry at all reads ``empty``."""
    text = ", ".join(f"{c or 'no tag'} {n}" for c, n in list(classes.items())[:cap]) or empty
    return text + (f", … ({len(classes) - cap} more)" if len(classes) > cap else "")


def _groups_line(g: dict[str, Any], multilabel: bool) -> str:
    """The summary line about the groups (see :func:`_group_report`)."""
    sizes = g["images_per_group"]
    text = f"groups: {g['n_groups']}"
    if sizes:
        text += f" (images per group min {sizes['min']}, median {sizes['median']:g}, max {sizes['max']})"
    mixed = "with different label sets" if multilabel else "with more than one class"
    text += f", {mixed}: {g['n_mixed_label_groups']}, images without id: {g['n_own_group']}"
    if "n_cross_split_groups" in g:
        text += f", across splits: {g['n_cross_split_groups']}"
    return text + f", classes with < {MIN_GROUPS_PER_CLASS} groups: {len(g['few_group_classes'])}"


def _groups_markdown(g: dict[str, Any], multilabel: bool) -> list[str]:
    """The ``## Groups`` section of ``audit.md`` (see :func:`_group_report`)."""
    none = "no tag" if multilabel else "no label"
    md = ["## Groups", ""]
    sizes = g["images_per_group"]
    spread = f"{sizes['min']} / {sizes['median']:g} / {sizes['max']}" if sizes else "n/a"
    rows = [
        ("groups", g["n_groups"]),
        ("images per group (min / median / max)", spread),
        ("groups with different label sets" if multilabel else "groups with more than one class",
         g["n_mixed_label_groups"]),
        ("images that are their own group (no id in the name or the column)", g["n_own_group"]),
        (f"classes with fewer than {MIN_GROUPS_PER_CLASS} groups", len(g["few_group_classes"])),
    ]
    if "n_cross_split_groups" in g:
        rows.append(("groups on more than one split (leakage)", g["n_cross_split_groups"]))
    md += [_table(["", "value"], rows), ""]
    if g["largest"]:
        md += [f"Largest groups ({'images carrying each tag' if multilabel else 'images per class'}):", ""]
        md += [_table(["group", "images", "classes"],
                      [(f"`{d['group']}`", d["images"], _class_counts_text(d["classes"], empty=none)) for d in g["largest"]]),
               ""]
    if g["mixed_label_groups"]:
        if multilabel:
            md += ["Groups whose images carry different label sets (for information: frames of one "
                   "scene may show different tags):", ""]
            md += [_capped(g["mixed_label_groups"],
                           lambda d: (f"`{d['group']}`", d["images"], _class_counts_text(d["label_sets"], empty=none)),
                           ["group", "images", "label sets"], cap=_SHOW_GROUPS_MD), ""]
        else:
            md += ["Groups whose images carry more than one class (a group should be one individual: "
                   "check the labels or the group ids):", ""]
            md += [_capped(g["mixed_label_groups"],
                           lambda d: (f"`{d['group']}`", d["images"], _class_counts_text(d["classes"], empty=none)),
                           ["group", "images", "classes"], cap=_SHOW_GROUPS_MD), ""]
    if g["few_group_classes"]:
        md += [f"Classes with fewer than {MIN_GROUPS_PER_CLASS} groups (a group-aware train/val/test "
               "split cannot put them on every side):", ""]
        md += [_capped(list(g["few_group_classes"].items()), lambda kv: kv, ["class", "groups"]), ""]
    if g.get("cross_split_groups"):
        md += ["Groups on more than one split (leakage: re-split with these group ids, "
               "`keras-species split DATA` with the same `--group-regex`, or a CSV's group column):", ""]
        md += [_capped(g["cross_split_groups"],
                       lambda d: (f"`{d['group']}`", d["images"],
                                  ", ".join(f"{k} {n}" for k, n in d["splits"].items())),
                       ["group", "images", "splits"], cap=_SHOW_GROUPS_MD), ""]
    return md[:-1]


def _markdown(r: AuditReport) -> str:
    md = [f"# Data audit: {r.source or 'manifest'}", ""]
    none = "no tag" if r.multilabel else "unlabelled"  # a duplicate's empty label
    fmt_ratio = "n/a" if r.imbalance_ratio is None else f"{r.imbalance_ratio:.2f}"
    baseline = "n/a" if r.majority_baseline is None else f"{r.majority_baseline:.4f} (`{r.majority_label or 'no tag'}`)"
    rows = [
        ("images", r.n_images),
        ("classes", classes_phrase(len(r.class_names), r.multilabel)),
        ("unlabelled" if not r.multilabel else "no tag", r.n_unlabelled),
        ("majority-class baseline" if not r.multilabel else "majority label-set baseline (exact match)", baseline),
        ("imbalance ratio (largest / smallest class, readable images)", fmt_ratio),
        ("corrupt / unreadable", len(r.corrupt)),
        *([("of them over the decompression-bomb limit, not decoded", len(r.oversized))] if r.oversized else []),
        ("non-RGB", len(r.non_rgb)),
        ("animated / multi-page", len(r.animated)),
        ("extension does not fit content", r.n_extension_mismatch),
        ("read through PIL by the pipeline", r.n_needs_conversion),
        ("EXIF-rotated photos", r.n_exif_rotated),
        ("duplicate groups (byte-identical)", len(r.duplicates)),
        ("repeated manifest rows", r.n_duplicate_rows),
        ("distinct resolutions", r.n_resolutions),
        ("total size", f"{r.total_bytes / 1e6:.1f} MB"),
        ("scan time", f"{r.seconds:.1f} s with {r.workers} threads"),
    ]
    if r.split_counts is not None:
        rows.insert(3, ("splits", ", ".join(f"{k or '(no split)'} {v}" for k, v in r.split_counts.items())))
        rows.append(("duplicate groups across splits (leakage)", len(r.cross_split_duplicates)))
    if r.groups is not None:
        rows.insert(3, ("groups (e.g. tracking ids)", r.groups["n_groups"]))
        if "n_cross_split_groups" in r.groups:
            rows.append(("groups across splits (leakage)", r.groups["n_cross_split_groups"]))
    md += [_table(["", "value"], rows), ""]
    if r.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]

    md += ["## Classes", ""]
    # single-label: the share of the labelled images; multi-label: of all images (an image
    # carries several tags, so the shares of the tags add up to more than 100%)
    total = max(r.n_images if r.multilabel else sum(r.class_counts.values()), 1)
    share = "share of images" if r.multilabel else "share"
    items = sorted(r.class_counts.items(), key=lambda kv: -kv[1])
    ok = r.readable_class_counts
    if not r.class_names:  # a list of image paths (sources.from_path_list): no table to show
        md.append("The images have no labels: the source names no classes, so there are no "
                  "images per class to count.")
    elif ok and ok != r.class_counts:  # corrupt files: say what is left of each class
        md.append(_capped(
            items, lambda kv: (kv[0], kv[1], f"{100 * kv[1] / total:.1f}%", ok.get(kv[0], 0)),
            ["class", "images", share, "readable"],
        ))
    else:
        md.append(_capped(items, lambda kv: (kv[0], kv[1], f"{100 * kv[1] / total:.1f}%"),
                          ["class", "images", share]))
    if r.empty_classes:
        md += ["", f"Classes without images: {', '.join(r.empty_classes)}."]
    if r.label_cardinality is not None:
        md += ["", "Images per tag: an image with several tags counts once under each, so the "
               "shares may add up to more than 100%."]
        md += ["", "Labels per image:", "", _table(["labels", "images"], r.label_cardinality.items())]
    if "class_distribution.png" in " ".join(r.plots):
        md += ["", "![class distribution](plots/class_distribution.png)"]
    if r.groups is not None:
        md += ["", *_groups_markdown(r.groups, r.multilabel)]

    md += ["", "## Image modes and formats", ""]
    md.append(_table(["mode", "images"], r.modes.items()))
    md += ["", _table(["format", "images"], r.formats.items()), ""]
    md += [
        "Policies: `convert` (default) keeps non-RGB images and converts them to RGB when reading "
        "(palette and alpha onto white, grey replicated, CMYK through its ICC profile, 16-bit grey "
        "scaled by /257 and 16-bit RGB to each value's high byte as PIL reads it, first frame of "
        "animations); `drop_non_rgb` drops them (R5).",
        "",
    ]

    if r.size:
        md += ["## Sizes", ""]
        md.append(_table(
            ["", "min", "median", "mean", "max"],
            [(k, v["min"], v["median"], v["mean"], v["max"]) for k, v in r.size.items()],
        ))
        md += ["", f"{r.n_resolutions} distinct resolutions; the most common:", ""]
        md.append(_table(["width", "height", "images"], r.top_resolutions))
        if "resolutions.png" in " ".join(r.plots):
            md += ["", "![resolutions](plots/resolutions.png)"]
        md.append("")

    md += ["## Problems", ""]
    md += _file_problems(f"Corrupt or unreadable ({len(r.corrupt)}) — always dropped by `clean`",
                         r.corrupt, "reason", "reason")
    hint = r.oversized_hint()
    if hint:
        largest = max(o["pixels"] for o in r.oversized)
        md += [f"{hint[0].upper()}{hint[1:]} (`--max-pixels` is a flag of `keras-species audit`, "
               f"`split`, `shard` and `predict`; in Python: "
               f"`keras_species.data.images.set_max_pixels({largest})`).", ""]
    md += _file_problems(f"Non-RGB ({len(r.non_rgb)})", r.non_rgb, "mode", "mode")
    md += _file_problems(f"Animated / multi-page ({len(r.animated)}) — the first frame is used",
                         r.animated, "n_frames", "frames")
    md += _file_problems(f"Extension does not fit the content ({r.n_extension_mismatch}) — read by "
                         "content", r.extension_mismatch, "format", "format")
    if r.duplicates:
        md += [f"### Exact duplicates ({len(r.duplicates)} groups)", ""]
        md += [_capped(
            r.duplicates,
            lambda g: (_cell_paths(g["paths"]), _cell_counts([lab or none for lab in g["labels"]]),
                       "yes" if g["conflicting_labels"] else "", _cell_counts(g.get("splits", []))),
            ["files", "labels", "conflicting", "splits"],
        ), ""]
    if r.cross_split_duplicates:
        md += [f"### Duplicates across splits ({len(r.cross_split_duplicates)}) — leakage", ""]
        md += [_capped(
            r.cross_split_duplicates,
            lambda g: (_cell_paths(g["paths"]), _cell_counts(g["splits"])),
            ["files", "splits"],
        ), ""]
    if not (r.corrupt or r.non_rgb or r.animated or r.extension_mismatch or r.duplicates):
        md += ["None found.", ""]

    grids = [p for p in r.plots if os.path.basename(p).startswith("samples_")]
    if grids:
        md += ["## Samples", ""]
        md += [f"![{os.path.basename(p)}]({p})" for p in grids]
        md.append("")
    md += [
        "## Cleaning",
        "",
        "`keras-species audit DATA --clean-manifest clean.csv [--policy convert|drop_non_rgb] "
        "[--drop-list list.txt]` writes a manifest without the dropped files; nothing is deleted "
        "from disk.",
        "",
    ]
    return "\n".join(md)


# ---------------------------------------------------------------------------------- plots
def _plot_text(text: str) -> str:
    """A name as matplotlib should draw it: control characters (a tab or line break in a file
    name) escaped, which the font has no glyph for (a warning each), and ``$`` escaped, which
    would start matplotlib's math mode."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown.replace("$", r"\$")


SAFE_NAME_BYTES = 100
"""At most this many UTF-8 bytes of a class name go into a plot's file name: a 240-character
name (or 80 CJK characters) made ``samples_<name>.png``, with the staging folder's suffix, too
long for the file system, and the whole audit failed."""


def _safe_name(name: str) -> str:
    s = re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._") or "class"
    if len(s.encode("utf-8")) <= SAFE_NAME_BYTES:
        return s
    cut = s.encode("utf-8")[:SAFE_NAME_BYTES - 9].decode("utf-8", errors="ignore")  # whole characters
    return f"{cut}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"  # long names stay apart


def _thumbnail(path: str, size: int = 128) -> np.ndarray | None:
    from PIL import Image

    try:
        arr = read_image(path)
    except Exception:  # unreadable files are listed as corrupt already
        return None
    im = Image.fromarray(arr)
    im.thumbnail((size, size))
    return np.asarray(im)


def _savefig(fig, path: str, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _write_plots(r: AuditReport, manifest: Manifest | None, plot_dir: str) -> tuple[list[str], list[str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if matplotlib.get_backend().lower() != "agg":
        plt.switch_backend("Agg")
    os.makedirs(plot_dir, exist_ok=True)
    written: list[str] = []
    notes: list[str] = []

    # class distribution
    items = sorted(r.class_counts.items(), key=lambda kv: -kv[1])
    if items:
        n = len(items)
        fig, ax = plt.subplots(figsize=(8, min(max(2.5, 0.25 * n + 1), 40) if n <= 150 else 6))
        counts = [v for _, v in items]
        if n <= 150:
            ax.barh(range(n), counts, color="#4c72b0")
            ax.set_yticks(range(n))
            # a long name is cut: the bars would get no room (matplotlib's tight layout gave up)
            # the middle of a long name goes: iNat's kingdom_phylum_..._species names share
            # their starts, and a cut end made them alike
            ax.set_yticklabels([_plot_text(k if len(k) <= 40 else k[:14] + "…" + k[-25:]) for k, _ in items],
                               fontsize=8 if n > 30 else 10)
        else:  # a bar and a tick per class took 19 of 24 s at 5,000 classes (stop 30): the sorted
            # counts as one curve, and a tick every few hundred ranks
            ax.fill_betweenx(range(n), 0, counts, step="mid", color="#4c72b0")
            ax.set_ylabel("classes, most images first (rank)")
            ax.set_xscale("log")  # a long tail: the rare classes stay visible
        ax.invert_yaxis()
        ax.set_xlabel("images (multi-label: images with the tag)" if r.multilabel else "images")
        ax.set_title(f"Class distribution ({n} classes, imbalance {r.imbalance_ratio or float('nan'):.1f}x)")
        fig.tight_layout()
        _savefig(fig, os.path.join(plot_dir, "class_distribution.png"), dpi=100)
        plt.close(fig)
        written.append("plots/class_distribution.png")

    # resolutions
    res = Counter((i.width, i.height) for i in r.files.values() if i.ok)
    if res:
        (ws, hs), cs = zip(*res.keys()), np.array(list(res.values()), np.float64)
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.scatter(ws, hs, s=10 + 60 * np.sqrt(cs / cs.max()), alpha=0.5, color="#dd8452", edgecolors="none")
        ax.set_xlabel("width (px)")
        ax.set_ylabel("height (px)")
        ax.set_title(f"Image resolutions ({len(res)} distinct; marker area ~ count)")
        fig.tight_layout()
        _savefig(fig, os.path.join(plot_dir, "resolutions.png"), dpi=100)
        plt.close(fig)
        written.append("plots/resolutions.png")

    # sample grids, one per class (largest classes first, capped)
    if manifest is not None and len(manifest):
        ok = {p for p, i in r.files.items() if i.ok}
        order = [c for c, _ in items if r.class_counts[c] > 0]
        if len(order) > MAX_SAMPLE_GRIDS:
            notes.append(
                f"sample grids drawn for the {MAX_SAMPLE_GRIDS} largest of {len(order)} classes only"
            )
            order = order[:MAX_SAMPLE_GRIDS]
        used: set[str] = set()
        for cname in order:
            k = manifest.class_names.index(cname)
            # the class's rows, without a dense images x classes matrix (200 MB at 40,000 x 5,000)
            held = manifest.labels[:, k] > 0 if manifest.multilabel else manifest.labels == k
            rows = [i for i in np.flatnonzero(held) if manifest.paths[i] in ok]
            if not rows:
                continue
            pick = np.linspace(0, len(rows) - 1, min(SAMPLES_PER_GRID, len(rows))).round().astype(int)
            thumbs = [(manifest.paths[rows[j]], _thumbnail(manifest.paths[rows[j]])) for j in pick]
            thumbs = [(p, t) for p, t in thumbs if t is not None]
            if not thumbs:
                continue
            cols = min(4, len(thumbs))
            nrows = math.ceil(len(thumbs) / cols)
            height = 2.4 * nrows + 0.4
            fig, axes = plt.subplots(nrows, cols, figsize=(2.2 * cols, height), squeeze=False)
            for ax in axes.ravel():
                ax.axis("off")
            # captions as plain text and a fixed layout: titles and tight_layout measure every
            # text's box, which took half of each grid's time (183 against 92 ms a grid of 8)
            for ax, (p, t) in zip(axes.ravel(), thumbs):
                ax.imshow(t)
                ax.text(0.5, 1.02, _plot_text(os.path.basename(p)[:22]), fontsize=7, ha="center",
                        va="bottom", transform=ax.transAxes)
            fig.suptitle(_plot_text(f"{cname} ({r.class_counts[cname]} images)"))
            fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.75 / height,
                                wspace=0.1, hspace=0.25)
            base = _safe_name(cname)
            name = base
            n_same = 1
            while name in used:
                n_same += 1
                name = f"{base}_{n_same}"
            used.add(name)
            _savefig(fig, os.path.join(plot_dir, f"samples_{name}.png"), dpi=80)
            plt.close(fig)
            written.append(f"plots/samples_{name}.png")
    return written, notes


# ---------------------------------------------------------------------------------- CLI
def configure_parser(parser) -> None:
    """Add the ``keras-species audit`` arguments to ``parser`` (an ``argparse.ArgumentParser``)."""
    from keras_species.config import positive_int
    from keras_species.data.sources import add_source_arguments

    add_source_arguments(parser)
    parser.add_argument("--out", default="audit", help="output folder for audit.json, audit.md and plots/ (default: audit)")
    parser.add_argument(
        "--policy", choices=POLICIES, default="convert",
        help="cleaning policy: convert non-RGB images when reading (default) or drop them (R5)",
    )
    parser.add_argument("--drop-list", default=None, help="text file with one path or file name per line to leave out")
    parser.add_argument("--workers", type=positive_int, default=None, help="reader threads (default: CPU count + 4, at most 32)")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_max_pixels_flag(parser)
    parser.add_argument(
        "--clean-manifest", default=None,
        help="write the cleaned manifest (corrupt files and the policy's/drop list's files left out) to this CSV",
    )


def run_cli(args) -> int:
    """Run ``keras-species audit`` with parsed ``args``; returns the exit code (0 = done).

    ``--out`` always ends up with one audit's set of files (:meth:`AuditReport.save`): this
    run's ``dropped.csv`` (the header alone when nothing is dropped) and plots, with the files
    of an earlier audit there that this one does not write removed (a printed note names them).
    """
    # --max-pixels holds for this command only (a process that runs several keeps its limit)
    with max_pixels_flag(args.max_pixels):
        return _run(args)


def _run(args) -> int:
    """:func:`run_cli` under the command's decompression-bomb limit."""
    from keras_species.data import sources
    from keras_species.recipe import is_user_error

    try:
        # before the scan: an output that cannot be made or written, or a drop list that cannot
        # be read, fails now
        sources.check_output_place(args.data, args.out, "--out", folder=True)
        check_output_folder(args.out, "--out", make=False)  # a file there: before reading too
        if args.clean_manifest:
            sources.check_output_place(args.data, args.clean_manifest, "--clean-manifest")
            check_output_file(args.clean_manifest, "--clean-manifest", "clean.csv", make=False)
            problem = csvfile.csv_name_problem(
                args.clean_manifest, f"--clean-manifest {args.clean_manifest}", "the cleaned manifest is a CSV")
            if problem:  # best.keras or a photo was replaced by the CSV
                raise ManifestError(problem)
        manifest = sources.load(args.data, **sources.source_options(args))
        _prepare_output(args.out, "--out", folder=True)
        if args.clean_manifest:
            _prepare_output(args.clean_manifest, "--clean-manifest", folder=False)
        if args.drop_list:
            _read_drop_list(args.drop_list)  # a missing or undecodable list fails before the scan
    except (ValueError, OSError) as e:
        if not is_user_error(e):
            raise  # from inside a library: the traceback may be needed
        print(f"keras-species audit: {e}", file=sys.stderr)
        return 2
    report = audit(manifest, None, workers=args.workers, progress=not args.no_progress)
    gone = len(report.corrupt) == len(manifest) and sources.data_gone_problem(
        args.data, {c["path"]: c["reason"] for c in report.corrupt})
    if gone:
        print(f"keras-species audit: {gone}", file=sys.stderr)
        return 2
    # the file itself, not its entries: clean's warnings then name it and the lines
    # the classes it empties are said once, in the clean line below (not in a warning as well)
    cleaned, dropped = clean(manifest, report, policy=args.policy, drop=args.drop_list, warn_emptied=False)
    md = report.save(args.out, manifest, plots=not args.no_plots, dropped=dropped)
    print(report.summary())
    emptied = cleaned.extra["cleaning"]["emptied_classes"]
    print(f"clean (policy {args.policy}{', drop list' if args.drop_list else ''}): "
          f"keeps {len(cleaned)}, drops {len(dropped)}"
          + (f"; classes left without images: {', '.join(emptied)} (a model trained on the "
             f"cleaned data would still get an output for {'it' if len(emptied) == 1 else 'each'}, "
             "one it can never learn: fix or replace those files, or take the class out of the "
             "data)" if emptied else ""))
    if dropped:
        print(f"dropped files and reasons: {os.path.join(args.out, 'dropped.csv')}")
    hint = report.oversized_hint()
    if hint:
        print(hint)
    for note in report.notes:
        if note.startswith(_REPLACED):
            print(f"{args.out}: {note}")
    if args.clean_manifest:
        cleaned.to_csv(args.clean_manifest)
        print(f"cleaned manifest: {args.clean_manifest}")
    print(f"report: {md}")
    return 0
