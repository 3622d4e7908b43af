"""Semi-supervised training (R1): a labelled set, an unlabelled pool, and pseudo-labels.

R1 had 150 labelled fish images and 43,156 unlabelled ones. This module holds what its method
needs besides ordinary training:

- the unlabelled pool: :func:`load_unlabelled` reads a folder of images (flat, or with class
  subfolders whose names then serve as *true* labels, kept apart from training) or a file that
  lists them (a CSV, a path list: with ``sources.load``'s reading options such as ``root``),
  :func:`hide_labels` turns a labelled set into a small labelled set plus a pool whose true labels
  are known, so that pseudo-label accuracy can be measured, and :func:`make_pool` puts a pool
  together from all three: the images of the labelled data that have no label (a CSV row with an
  empty label cell), hidden labels, and an unlabelled source, each image once;
- joint autoencoder training (model 2): :func:`joint_dataset` mixes labelled and unlabelled
  images; every image trains the reconstruction, and the classification loss of an unlabelled
  image is masked by a per-output sample weight of 0 (``models.autoencoder.autoencoder_targets``);
  :func:`train_joint` fits it with the run folder's history and ``best.keras``;
- pseudo-labelling (models 3 and 4): :func:`pseudo_label` keeps the pool's predictions at or
  above a confidence threshold and reports, per class, how many were kept and, where the true
  labels are known, how many were right;
- the combined set: :func:`mixed_dataset` trains on labelled and pseudo-labelled images with a
  different augmentation for each (R1: rotation ±30° vs ±45°).

Example:
    >>> labelled, pool, truth = hide_labels(sources.load("demo"), 0.8, seed=0)  # doctest: +SKIP
    >>> model = build_autoencoder(labelled.num_classes, 64)                    # doctest: +SKIP
    >>> ds = joint_dataset(labelled, pool, 64, 32, augment="r1")               # doctest: +SKIP
    >>> kept, stats = pseudo_label(model, pool, threshold=0.8, true_labels=truth)  # doctest: +SKIP
    >>> print(stats.to_markdown())                                             # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from keras_species import csvfile
from keras_species.atomic import atomic_path
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from keras_species.data.sources import SourceKind
    from keras_species.training.plan import TrainResult

JOINT_MONITOR = "val_label_accuracy"
"""What :func:`train_joint` keeps the best epoch on: accuracy of the ``label`` output on val."""


# ---------------------------------------------------------------------------------- the pool
def hide_labels(
    manifest: Manifest, fraction: float, *, seed: int = 0
) -> tuple[Manifest, Manifest, np.ndarray]:
    """Split a labelled set into a small labelled set and an "unlabelled" pool with known truth.

    Per class, ``round((1 - fraction) * n)`` images (at least one) stay labelled, chosen at
    random; the others lose their labels. Their true labels are returned separately so that they
    never reach training but can score the pseudo-labels.

    Args:
        manifest: a single-label manifest (every image labelled).
        fraction: share of each class's images whose labels are hidden, in ``[0, 1)``.
        seed: seed of the choice.

    Returns:
        ``(labelled, pool, true_labels)``: the labelled manifest, the pool (labels all ``-1``,
        same classes), and the pool's true labels ``(M,)``, aligned with the pool's rows.

    Raises:
        ManifestError: a multi-label manifest, unlabelled rows, or a fraction outside [0, 1).

    Example:
        >>> m = Manifest([f"{i}.png" for i in range(10)], np.array([0] * 5 + [1] * 5), ["a", "b"])
        >>> lab, pool, truth = hide_labels(m, 0.8, seed=0)
        >>> len(lab), len(pool), truth.tolist()[:2], set(pool.labels.tolist())
        (2, 8, [0, 0], {-1})
    """
    if manifest.multilabel:
        raise ManifestError("hide_labels needs a single-label manifest (R1's fish species)")
    if not 0 <= fraction < 1:
        raise ManifestError(f"fraction of hidden labels must be in [0, 1), got {fraction}")
    if not manifest.labelled_mask.all():
        raise ManifestError(
            f"{int((~manifest.labelled_mask).sum())} image(s) are already unlabelled: hide_labels "
            "needs a fully labelled set (pass the unlabelled images as the pool instead)"
        )
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(manifest), bool)
    for k in range(manifest.num_classes):
        rows = np.flatnonzero(manifest.labels == k)
        if len(rows) == 0:
            continue
        n_keep = max(1, int(round((1 - fraction) * len(rows))))
        keep[rng.choice(rows, n_keep, replace=False)] = True
    labelled = manifest.subset(keep)
    pool = manifest.subset(~keep)
    truth = pool.labels.copy()
    pool.labels = np.full(len(pool), UNLABELLED, np.int64)
    pool.splits = None
    return labelled, pool, truth


def unlabelled_kind(source: str | os.PathLike) -> SourceKind:
    """What :func:`load_unlabelled` reads ``source`` as, and the ``sources.load`` options that
    apply to it.

    A folder is walked for images: no option applies. A file (a CSV, a ``.txt``/``.lst`` list of
    paths, an iNat/COCO JSON, a saved manifest) is read by ``sources.load``: the options that
    apply to it there, but ``group_regex`` (the pool is never split, so its images need no group
    ids).

    Args:
        source: the unlabelled source.

    Returns:
        A ``sources.SourceKind`` (its ``check`` refuses the other options).

    Raises:
        ManifestError: the source does not exist or its kind is not recognised.

    Example:
        >>> unlabelled_kind("new_photos.txt").options   # doctest: +SKIP
        ('on_missing', 'root')
    """
    from keras_species.data import sources

    if Path(source).expanduser().is_dir():
        return sources.SourceKind("a folder of images", (), note=(
            "its images are found by walking it; reading options apply to a CSV, a .txt/.lst "
            "list of paths or an iNat/COCO JSON"))
    kind = sources.source_kind(source)
    return replace(kind, options=tuple(o for o in kind.options if o != "group_regex"), note="")


def load_unlabelled(
    source: str | os.PathLike, class_names: Sequence[str], **options: Any
) -> tuple[Manifest, np.ndarray | None]:
    """Read a pool of unlabelled images for a labelled set with ``class_names``.

    A folder with subfolders named for classes of the labelled set is read as a labelled folder
    whose labels are *hidden* (returned as the true labels); the images of its other subfolders
    (named with a warning) and those beside them are of no known class (``-1``). A folder with
    no such subfolder is searched recursively for images, which are unlabelled. A CSV,
    ``.txt``/``.lst`` list of paths, iNat/COCO JSON or saved manifest goes through ``sources.load`` with ``options`` (say ``root``
    when its relative paths start in another folder), and its labels, if any, become the true
    labels.

    Args:
        source: a folder of images, or any file ``sources.load`` reads.
        class_names: the labelled set's classes (the pool's rows use their indices).
        **options: ``sources.load`` options for a file source (``root``, ``path_format``,
            ``on_missing``...; :func:`unlabelled_kind` says which apply). A folder takes none.

    Returns:
        ``(pool, true_labels)``: a manifest with every label ``-1`` and the classes
        ``class_names``, and ``(M,)`` true labels (``-1`` where unknown) or None when none is
        known.

    Raises:
        ManifestError: the source does not exist or holds no image, or an option does not apply
            to it (the message names the option and its flag).

    Example:
        >>> pool, truth = load_unlabelled("unlabelled_fish/", ["cod", "eel"])  # doctest: +SKIP
        >>> pool, truth = load_unlabelled("pool.csv", ["cod", "eel"], root="/data/images")  # doctest: +SKIP
    """
    from keras_species.data import sources

    unlabelled_kind(source).check(os.fspath(source), options)
    names = [str(c) for c in class_names]
    root = Path(source).expanduser()
    truth: np.ndarray | None = None
    if root.is_dir():
        subdirs = [d.name for d in root.iterdir() if d.is_dir() and not sources.is_hidden(d.name)]
        if set(subdirs) & set(names):  # class folders: their images' true labels are known
            with warnings.catch_warnings():  # one class folder is a fine pool
                warnings.simplefilter("ignore")
                m = sources.from_folder(root)
            index = {c: i for i, c in enumerate(names)}
            others = sorted(set(m.class_names) - set(names))
            if others:  # one such folder threw every true label of the pool away without a word
                warnings.warn(
                    f"{source}: the subfolder{'s' if len(others) > 1 else ''} "
                    f"{', '.join(map(repr, others[:5]))}{' ...' if len(others) > 5 else ''} "
                    f"{'are not classes' if len(others) > 1 else 'is not a class'} of the labelled "
                    "set: their images are pool images of no known class, left out of the "
                    "pseudo-labels' measured accuracy", stacklevel=2)
            # images beside the class folders are pool images too, of no known class (the
            # class-folder reader leaves them out: they were dropped without a word)
            known = {os.path.realpath(p) for p in m.paths}
            loose = [p for p in sources.image_files(root) if os.path.realpath(p) not in known]
            truth = np.array([index.get(m.class_names[k], UNLABELLED) for k in m.labels]
                             + [UNLABELLED] * len(loose), np.int64)
            paths = [*m.paths, *loose]
        else:
            paths = sources.image_files(root)  # the folder readers' rules and warnings
    else:
        m = sources.load(source, **options)
        paths = m.paths
        if not m.multilabel and m.labelled_mask.any():
            index = {c: i for i, c in enumerate(names)}
            truth = np.array(
                [index.get(m.class_names[k], UNLABELLED) if k != UNLABELLED else UNLABELLED
                 for k in m.labels], np.int64)
    if not paths:
        raise ManifestError(
            f"{source}: no images found for the unlabelled pool (extensions "
            f"{', '.join(sources.IMAGE_EXTENSIONS)})"
        )
    pool = Manifest(paths, np.full(len(paths), UNLABELLED, np.int64), names, source=str(source))
    if truth is not None and not (truth != UNLABELLED).any():
        truth = None
    return pool, truth


@dataclass
class Pool:
    """The labelled set and the unlabelled pool of a semi-supervised run (:func:`make_pool`).

    Attributes:
        labelled: the images that train with their labels (every label ``>= 0``).
        pool: the unlabelled pool (labels all ``-1``, the labelled set's classes).
        truth: the pool's true labels ``(M,)`` (``-1`` where unknown), or None when none is known.
        from_labelled: pool images that are rows of the labelled data without a label.
        hidden: pool images of the labelled data whose labels were hidden (``hide_fraction``).
        from_unlabelled: pool images from the unlabelled source.
        duplicates: images left out of the pool because they were in it already (the same
            path twice) or are labelled images of the labelled set.
    """

    labelled: Manifest
    pool: Manifest
    truth: np.ndarray | None
    from_labelled: int = 0
    hidden: int = 0
    from_unlabelled: int = 0
    duplicates: int = 0

    def counts(self) -> dict[str, int]:
        """The pool's size and where its images came from (JSON-ready, for ``metrics.json``).

        Returns:
            ``{"images", "from_labelled", "hidden", "from_unlabelled", "duplicates"}``.

        Example:
            >>> Pool(Manifest([], np.zeros(0), []), Manifest(["a.png"], np.array([-1]), []),
            ...      None, from_labelled=1).counts()["images"]
            1
        """
        return {"images": len(self.pool), "from_labelled": self.from_labelled,
                "hidden": self.hidden, "from_unlabelled": self.from_unlabelled,
                "duplicates": self.duplicates}

    def describe(self, labelled: str = "the labelled data",
                 unlabelled: str = "the unlabelled source") -> str:
        """Where the pool's images came from, in words (the terminal and the report).

        Args:
            labelled: how to name the labelled data (a recipe: ``"--labelled"``).
            unlabelled: how to name the unlabelled source (a recipe: ``"--unlabelled"``).

        Returns:
            E.g. ``"40 images: 12 rows of --labelled without a label, 28 from --unlabelled"``.

        Example:
            >>> pool = Manifest(["a.png", "b.png"], np.array([-1, -1]), ["cod"])
            >>> Pool(pool, pool, None, from_labelled=1, hidden=1).describe("--labelled")
            '2 images: 1 row of --labelled without a label, 1 with its label hidden'
        """
        def n(count: int, one: str, many: str) -> str:
            return f"{count} {one if count == 1 else many}"

        parts = [text for count, text in (
            (self.from_labelled, n(self.from_labelled, f"row of {labelled} without a label",
                                   f"rows of {labelled} without a label")),
            (self.hidden, n(self.hidden, "with its label hidden", "with their labels hidden")),
            (self.from_unlabelled, f"{self.from_unlabelled} from {unlabelled}"),
        ) if count]
        text = n(len(self.pool), "image", "images") + (": " + ", ".join(parts) if parts else "")
        if self.duplicates:
            text += (f" ({n(self.duplicates, 'duplicate', 'duplicates')} left out: an image "
                     "already in the pool, or a labelled one)")
        return text


def _path_key(path: str) -> str:
    """One key per image file: its real path (relative paths made absolute, links followed)."""
    return os.path.realpath(path)


def make_pool(
    manifest: Manifest,
    *,
    hide_fraction: float = 0.0,
    unlabelled: str | os.PathLike | None = None,
    unlabelled_options: dict[str, Any] | None = None,
    seed: int = 0,
) -> Pool:
    """The labelled set and the unlabelled pool from a labelled source that may hold images
    without a label, hidden labels, and an unlabelled source.

    The pool is, in this order: the images of ``manifest`` without a label (their true labels
    are unknown), the labelled images whose labels :func:`hide_labels` hides (``hide_fraction``
    of each class; their true labels are kept apart), and the images of ``unlabelled``
    (:func:`load_unlabelled`). An image is in the pool once (by its real path, links followed;
    the first one is kept, with a true label if any of its copies has one), and never when it
    is a labelled image of the labelled set.

    Args:
        manifest: a single-label manifest (rows without a label allowed).
        hide_fraction: share of each class's labelled images whose labels are hidden, in
            ``[0, 1)``.
        unlabelled: a folder of unlabelled images, or a file of them (a CSV, a ``.txt``/``.lst``
            list of paths, an iNat/COCO JSON), or None.
        unlabelled_options: ``sources.load`` options for an ``unlabelled`` file (e.g.
            ``{"root": "images"}``; :func:`load_unlabelled`).
        seed: seed of the choice of hidden labels.

    Returns:
        A :class:`Pool`.

    Raises:
        ManifestError: multi-label data, no image of ``manifest`` with a label, a fraction
            outside [0, 1), an ``unlabelled_options`` entry that does not apply to
            ``unlabelled``, or an empty pool (the message says what to give).

    Example:
        >>> m = Manifest(["a.png", "b.png", "c.png"], np.array([0, -1, 1]), ["cod", "eel"])
        >>> parts = make_pool(m)
        >>> len(parts.labelled), parts.pool.paths, parts.truth, parts.from_labelled
        (2, ['b.png'], None, 1)
    """
    if manifest.multilabel:
        raise ManifestError("a semi-supervised pool needs single-label data (R1's fish species)")
    if not 0 <= hide_fraction < 1:
        raise ManifestError(f"fraction of hidden labels must be in [0, 1), got {hide_fraction}")
    name = manifest.source or "the labelled data"
    has_label = manifest.labelled_mask
    if not has_label.any():
        raise ManifestError(
            f"{name}: none of its {len(manifest)} images has a label; semi-supervised training "
            "learns from a few labelled images and many unlabelled ones: give some of them labels"
        )
    labelled = manifest.subset(has_label)
    without = manifest.subset(~has_label)
    parts: list[tuple[str, Manifest, np.ndarray]] = [
        ("from_labelled", without, np.full(len(without), UNLABELLED, np.int64))]
    if hide_fraction > 0:
        labelled, hidden, hidden_truth = hide_labels(labelled, hide_fraction, seed=seed)
        parts.append(("hidden", hidden, hidden_truth))
    if unlabelled is not None:
        extra, extra_truth = load_unlabelled(unlabelled, labelled.class_names,
                                             **(unlabelled_options or {}))
        parts.append(("from_unlabelled", extra, extra_truth if extra_truth is not None
                      else np.full(len(extra), UNLABELLED, np.int64)))
    taken = {_path_key(p) for p in labelled.paths}  # a labelled image is not in the pool
    row_of: dict[str, int] = {}
    paths: list[str] = []
    truth: list[int] = []
    counts = {"from_labelled": 0, "hidden": 0, "from_unlabelled": 0}
    duplicates = 0
    for origin, part, part_truth in parts:
        for path, label in zip(part.paths, part_truth.tolist()):
            key = _path_key(path)
            if key in taken or key in row_of:
                duplicates += 1
                if key in row_of and truth[row_of[key]] == UNLABELLED:
                    truth[row_of[key]] = label  # a copy that knows its true label
                continue
            row_of[key] = len(paths)
            paths.append(path)
            truth.append(label)
            counts[origin] += 1
    if not paths:
        why = (f"each of its {duplicates} image(s) is a labelled image of {name}" if duplicates
               else f"every image of {name} has a label, no label is hidden and no unlabelled "
                    "source is given")
        raise ManifestError(f"no unlabelled pool: {why}: hide a share of the labels, or give "
                            "unlabelled images")
    sources = [m.source for _, m, _ in parts if len(m) and m.source]
    pool = Manifest(paths, np.full(len(paths), UNLABELLED, np.int64), labelled.class_names,
                    source="+".join(dict.fromkeys(sources)))
    known = np.array(truth, np.int64)
    return Pool(labelled, pool, known if (known != UNLABELLED).any() else None,
                duplicates=duplicates, **counts)


# ------------------------------------------------------------------------- joint training
def joint_dataset(
    labelled: Manifest,
    unlabelled: Manifest | None,
    image_size: int | Sequence[int],
    batch_size: int = 128,
    *,
    training: bool = True,
    augment: str | Any | None = "r1",
    cache: bool | str = True,
    seed: int | None = None,
    deterministic: bool | None = None,
) -> tf.data.Dataset:
    """Batches for the two-output autoencoder: ``(images, targets, sample_weights)``.

    Labelled and unlabelled images are shuffled together (R1 augments both alike). Targets are
    ``{"reconstruction": images / 255, "label": class index}`` and sample weights
    ``{"reconstruction": 1, "label": 1 if labelled else 0}``: an unlabelled image trains the
    reconstruction only (``models.autoencoder.autoencoder_targets``; its dummy class 0 gets
    weight 0).

    Args:
        labelled: labelled images (labels ``>= 0``; unlabelled rows are allowed and masked).
        unlabelled: the pool (labels ignored: every row is treated as unlabelled), or None.
        image_size: side or ``(height, width)``.
        batch_size: batch size (R1: 128).
        training: shuffle and augment (False for validation: order kept, no augmentation).
        augment: augmentation preset or layer (R1: ``"r1"``).
        cache: cache decoded images (``make_dataset``).
        seed: shuffle / augmentation seed.
        deterministic: see ``make_dataset``.

    Returns:
        A ``tf.data.Dataset`` for ``model.fit``.

    Example:
        >>> ds = joint_dataset(labelled, pool, 64, 32, seed=0)  # doctest: +SKIP
        >>> x, y, w = next(iter(ds)); sorted(y)                  # doctest: +SKIP
        ['label', 'reconstruction']
    """
    import tensorflow as tf

    from keras_species.data.pipeline import make_dataset
    from keras_species.models.autoencoder import autoencoder_targets

    if labelled.multilabel:
        raise ManifestError("the autoencoder's classifier is single-label (softmax)")
    m = labelled
    if unlabelled is not None and len(unlabelled):
        pool = Manifest(unlabelled.paths, np.full(len(unlabelled), UNLABELLED, np.int64),
                        labelled.class_names, source=unlabelled.source)
        m = Manifest(labelled.paths + pool.paths, np.r_[labelled.labels, pool.labels],
                     labelled.class_names, source=f"{labelled.source}+{pool.source}")
    targets, weights = autoencoder_targets(m.labels)
    if not weights.any():
        raise ManifestError("no labelled image: the classifier of the autoencoder cannot learn")
    m = Manifest(m.paths, targets, m.class_names, source=m.source)
    ds = make_dataset(
        m, image_size, batch_size, training=training, label_mode="sparse",
        augment=(None if augment in (None, "none") else augment) if training else None,
        cache=cache, sample_weights=weights, seed=seed, deterministic=deterministic,
    )

    def to_joint(images, labels, label_weights):
        images = tf.cast(images, tf.float32)
        n = tf.shape(images)[0]
        y = {"reconstruction": images / 255.0, "label": tf.cast(labels, tf.int64)}
        w = {"reconstruction": tf.ones(tf.stack([n, 1, 1]), tf.float32),
             "label": tf.cast(label_weights, tf.float32)}
        return images, y, w

    return ds.map(to_joint, num_parallel_calls=tf.data.AUTOTUNE)


def train_joint(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    run_dir: str | os.PathLike,
    *,
    epochs: int = 40,
    learning_rate: float = 1e-4,
    reconstruction_weight: float = 1.0,
    label_weight: float = 1.0,
    monitor: str = JOINT_MONITOR,
    resume: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 2,
) -> TrainResult:
    """Train the autoencoder jointly (R1 model 2: Adam 1e-4, 40 epochs), keeping its best epoch.

    One phase (``joint``) of ``training.plan.train`` with the losses and the weighted ``label``
    accuracy of ``models.autoencoder.joint_objective`` (plain ``metrics`` ignore sample weights
    and would count the masked rows), so it writes what every run writes (``history.csv`` with
    the learning rate, ``best.keras`` on ``monitor``, ``state.json``) and resumes like one.

    Args:
        model: from ``models.autoencoder.build_autoencoder`` (for resume: built the same way).
        train_ds: :func:`joint_dataset` batches.
        val_ds: :func:`joint_dataset` batches of labelled validation images (``training=False``),
            or None (then the training accuracy is monitored).
        run_dir: the run folder.
        epochs: epochs.
        learning_rate: Adam learning rate.
        reconstruction_weight: weight of the MSE term.
        label_weight: weight of the cross-entropy term.
        monitor: the quantity the best epoch is chosen on.
        resume: continue an interrupted run in ``run_dir`` from its last finished epoch (a
            finished run trains nothing); without it, what ``run_dir`` holds is started afresh.
        callbacks: extra Keras callbacks.
        verbose: ``fit`` verbosity.

    Returns:
        A ``training.plan.TrainResult`` (``model`` holds the best epoch's weights).

    Example:
        >>> result = train_joint(model, train_ds, val_ds, "runs/r1/x/model2", epochs=2)  # doctest: +SKIP
    """
    from keras_species.models.autoencoder import joint_objective
    from keras_species.training.plan import Phase, train

    objective = joint_objective(model, reconstruction_weight=reconstruction_weight, label_weight=label_weight)
    # from_logits only picks default losses and metrics; the objective gives its own
    phase = Phase("joint", epochs=epochs, optimizer="adam", learning_rate=learning_rate,
                  monitor=monitor, callbacks=tuple(callbacks), from_logits=False, **objective)
    return train(model, [phase], train_ds, val_ds, run_dir, task="custom", resume=resume,
                 verbose=verbose)


# --------------------------------------------------------------------------- pseudo-labels
@dataclass
class PseudoLabelStats:
    """How many pseudo-labels were kept per class and, where the truth is known, how many are right.

    Attributes:
        threshold: the confidence threshold.
        n_pool: images predicted (readable images of the pool).
        n_kept: images at or above the threshold.
        n_known: kept images whose true label is known.
        n_correct: kept images whose pseudo-label equals the true label.
        accuracy: ``n_correct / n_known`` (None when no truth is known).
        accuracy_all: accuracy of the argmax over the whole pool, threshold ignored (None when no
            truth is known): what the threshold buys.
        per_class: one dict per class: ``name``, ``kept``, ``known``, ``correct``, ``accuracy``
            (the precision of that class's pseudo-labels) and ``true_in_pool`` (pool images of
            that true class, when known).
        unreadable: pool files that could not be read (left out).
    """

    threshold: float
    n_pool: int
    n_kept: int
    n_known: int = 0
    n_correct: int = 0
    accuracy: float | None = None
    accuracy_all: float | None = None
    per_class: list[dict] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict (for ``metrics.json``)."""
        return {
            "threshold": self.threshold, "n_pool": self.n_pool, "n_kept": self.n_kept,
            "kept_fraction": self.n_kept / self.n_pool if self.n_pool else 0.0,
            "n_known": self.n_known, "n_correct": self.n_correct, "accuracy": self.accuracy,
            "accuracy_all": self.accuracy_all, "per_class": self.per_class,
            "unreadable": self.unreadable,
        }

    def to_markdown(self) -> str:
        """A markdown table: per class kept / known / correct / accuracy, and the totals."""
        # the truth is known when the pool had true labels, whether or not anything was kept
        # (with nothing kept, the table hid its true-label columns)
        known = self.accuracy_all is not None

        def fmt(v):
            return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

        head = "| class | kept |" + (" true in pool | known | correct | accuracy |" if known else "")
        lines = [head, "|---|---:|" + ("---:|---:|---:|---:|" if known else "")]
        for r in self.per_class:
            row = f"| {r['name']} | {r['kept']} |"
            if known:
                row += (f" {fmt(r['true_in_pool'])} | {r['known']} | {r['correct']} |"
                        f" {fmt(r['accuracy'])} |")
            lines.append(row)
        total = f"| **all** | **{self.n_kept}** of {self.n_pool} |"
        if known:  # the pool images of a known class (an image of unknown truth is in none)
            in_pool = sum(r["true_in_pool"] or 0 for r in self.per_class)
            total += f" {in_pool} | {self.n_known} | {self.n_correct} | **{fmt(self.accuracy)}** |"
        lines.append(total)
        return "\n".join(lines) + "\n"


class PseudoLabels(NamedTuple):
    """What :func:`pseudo_label` returns (unpacks as ``kept, stats``).

    Attributes:
        manifest: the kept images with their predicted labels (``extra["confidence"]`` holds
            their confidences as a list, aligned with the rows).
        stats: :class:`PseudoLabelStats`.
    """

    manifest: Manifest
    stats: PseudoLabelStats


def pseudo_label(
    model: keras.Model,
    manifest_unlabelled: Manifest,
    *,
    threshold: float = 0.8,
    true_labels: Sequence[int] | np.ndarray | None = None,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 64,
    output: str | int | None = "label",
) -> PseudoLabels:
    """Label the pool with ``model`` and keep the predictions of confidence ``>= threshold`` (R1).

    Args:
        model: a classifier (float 0–255 RGB in, softmax out), or the autoencoder (its
            ``label`` output is used).
        manifest_unlabelled: the pool. Its labels are never used for the prediction; where they
            are ``>= 0`` (a labelled set passed as a pool) they are the true labels.
        threshold: minimum top-class probability of a kept prediction (R1: 0.8).
        true_labels: ``(M,)`` true labels aligned with the pool (``-1`` where unknown), e.g.
            from :func:`hide_labels`; overrides the manifest's labels.
        image_size: input size (default: the model's).
        batch_size: prediction batch size.
        output: the classifier output of a multi-output model.

    Returns:
        :class:`PseudoLabels` ``(manifest, stats)``: the kept images labelled with their
        predicted class, and the per-class statistics.

    Raises:
        ManifestError: an empty or multi-label pool, or ``true_labels`` of the wrong length.

    Example:
        >>> kept, stats = pseudo_label(model, pool, threshold=0.8, true_labels=truth)  # doctest: +SKIP
        >>> stats.n_kept, stats.accuracy                                            # doctest: +SKIP
        (143, 0.93)
    """
    from keras_species.evaluation.evaluate import predict_manifest

    pool = manifest_unlabelled
    if len(pool) == 0:
        raise ManifestError("the unlabelled pool is empty: nothing to pseudo-label")
    if pool.multilabel:
        raise ManifestError("pseudo-labelling here is single-label (R1): the pool is multi-label")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    truth = np.asarray(pool.labels if true_labels is None else true_labels, np.int64)
    if truth.shape != (len(pool),):
        raise ManifestError(f"{len(truth)} true labels for a pool of {len(pool)} images")
    from keras_species.data.pipeline import check_files

    _, bad = check_files(pool.paths)
    if len(bad) == len(pool):  # predict_manifest's "the manifest holds no images" named nothing
        named = "; ".join(f"{p}: {why}" for p, why in list(bad.items())[:3])
        raise ManifestError(f"none of the unlabelled pool's {len(pool)} image(s) can be read "
                            f"({named}{' ...' if len(bad) > 3 else ''}): nothing to pseudo-label")
    hidden = Manifest(pool.paths, np.full(len(pool), UNLABELLED, np.int64), pool.class_names,
                      groups=pool.groups, source=pool.source)
    pred = predict_manifest(model, hidden, image_size=image_size, batch_size=batch_size,
                            output=output)
    position = {}
    for i, p in enumerate(pool.paths):
        position.setdefault(p, []).append(i)
    rows = np.array([position[p].pop(0) for p in pred.manifest.paths], np.int64)
    unreadable = sorted(set(pool.paths) - set(pred.manifest.paths))
    probs = pred.probs
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    keep = confidence >= threshold
    truth = truth[rows]
    known = truth != UNLABELLED
    c = pool.num_classes
    per_class = []
    for k in range(c):
        mine = keep & (predicted == k)
        mk = mine & known
        correct = int((truth[mk] == k).sum())
        per_class.append({
            "name": pool.class_names[k],
            "kept": int(mine.sum()),
            "known": int(mk.sum()),
            "correct": correct,
            "accuracy": correct / int(mk.sum()) if mk.any() else None,
            "true_in_pool": int((truth == k).sum()) if known.any() else None,
        })
    kk = keep & known
    n_correct = int((predicted[kk] == truth[kk]).sum())
    stats = PseudoLabelStats(
        threshold=float(threshold), n_pool=len(rows), n_kept=int(keep.sum()),
        n_known=int(kk.sum()), n_correct=n_correct,
        accuracy=n_correct / int(kk.sum()) if kk.any() else None,
        accuracy_all=float((predicted[known] == truth[known]).mean()) if known.any() else None,
        per_class=per_class, unreadable=unreadable,
    )
    kept_rows = rows[keep]
    kept = Manifest(
        [pool.paths[i] for i in kept_rows], predicted[keep].astype(np.int64), pool.class_names,
        groups=None if pool.groups is None else [pool.groups[i] for i in kept_rows],
        source=f"pseudo-labels of {pool.source or 'the pool'}",
    )
    kept.extra["confidence"] = [float(v) for v in confidence[keep]]
    return PseudoLabels(kept, stats)


def write_pseudo_labels(result: PseudoLabels | tuple[Manifest, PseudoLabelStats], path: str | os.PathLike) -> Path:
    """Write the kept pseudo-labels as a CSV ``path,label,confidence`` (reload with ``sources``).

    Args:
        result: :func:`pseudo_label`'s result.
        path: the CSV to write.

    Returns:
        The path written.

    Example:
        >>> write_pseudo_labels(pseudo_label(model, pool), "run/pseudo_labels.csv")  # doctest: +SKIP
    """

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = result[0]
    conf = m.extra.get("confidence", [None] * len(m))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csvfile.writer(f)
        w.writerow(["path", "label", "confidence"])
        for p, k, c in zip(m.paths, m.labels, conf):
            w.writerow([p, m.class_names[int(k)], "" if c is None else f"{c:.4f}"])
    return path


# ------------------------------------------------------------------------- the combined set
def mixed_dataset(
    parts: Sequence[tuple[Manifest, str | Any | None]],
    image_size: int | Sequence[int],
    batch_size: int = 64,
    *,
    cache: bool | str = True,
    seed: int | None = None,
    deterministic: bool | None = None,
) -> tf.data.Dataset:
    """Training batches drawn from several manifests, each with its own augmentation.

    R1's combined set augments the labelled images with rotation ±30° (``r1``) and the
    pseudo-labelled ones with ±45° (``r1_pseudo``). Each part is a shuffled, augmented
    ``make_dataset`` stream; the streams are interleaved at random in proportion to their sizes
    (``tf.data.Dataset.sample_from_datasets``) and re-batched, so an epoch holds every image once.

    Args:
        parts: ``(manifest, augmentation preset or layer or None)`` pairs (labelled, integer
            labels).
        image_size: side or ``(height, width)``.
        batch_size: batch size (R1: 64).
        cache: cache decoded images.
        seed: shuffle / augmentation / interleaving seed.
        deterministic: see ``make_dataset``.

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)``.

    Example:
        >>> ds = mixed_dataset([(labelled, "r1"), (pseudo, "r1_pseudo")], 224, 64, seed=0)  # doctest: +SKIP
    """
    import tensorflow as tf

    from keras_species.data.pipeline import make_dataset

    parts = [(m, a) for m, a in parts if len(m)]
    if not parts:
        raise ManifestError("mixed_dataset: every part is empty")
    streams, sizes = [], []
    for i, (m, aug) in enumerate(parts):
        ds = make_dataset(
            m, image_size, batch_size, training=True, label_mode="sparse",
            augment=None if aug in (None, "none") else aug, cache=cache,
            seed=None if seed is None else (seed + i) % 2**32, deterministic=deterministic,
        )
        streams.append(ds.unbatch())
        sizes.append(len(m))
    total = sum(sizes)
    if len(streams) == 1:
        mixed = streams[0]
    else:
        mixed = tf.data.Dataset.sample_from_datasets(
            streams, weights=[s / total for s in sizes], seed=seed,
            stop_on_empty_dataset=False,
        )
    return mixed.batch(batch_size).prefetch(tf.data.AUTOTUNE)


__all__ = [
    "JOINT_MONITOR",
    "hide_labels",
    "load_unlabelled",
    "Pool",
    "make_pool",
    "joint_dataset",
    "train_joint",
    "PseudoLabelStats",
    "PseudoLabels",
    "pseudo_label",
    "write_pseudo_labels",
    "mixed_dataset",
]
