"""Feature extraction with an on-disk cache, and classifiers trained on the cached features.

A frozen backbone is run over a manifest's images once; its pooled features are saved to
``<cache_dir>/<key>.npz``. The key hashes everything the features depend on: the backbone name,
the weights' identity (``None``, ``"imagenet"``, or a file's path + size + SHA-256), the input size,
the pooling, the dataset function, the pipeline's resizing rule and the ordered file list with
each file's size and mtime. Any change recomputes; the same input loads from the cache. Then
train a dense head (:func:`train_dense_head`, R5's feature-extraction classifier) or a
scikit-learn classifier (:func:`train_sklearn`, R2's DenseNet121 features → SVM / Random Forest /
XGBoost) on them.

Epochs on cached features take milliseconds where an epoch through a frozen backbone takes
minutes on a CPU (``benchmarks/feature_cache.py`` measures the ratio), which is what makes
pretrained backbones practical without a GPU. No augmentation happens on this path: the features
are computed once, as R5's variant (a) did.

Example:
    >>> from keras_species.data import sources, splits
    >>> m = splits.stratified_split(sources.load("demo"), seed=0)    # doctest: +SKIP
    >>> fs = extract_features(m, "efficientnet_lite0", weights="imagenet")  # doctest: +SKIP
    >>> train, val = fs.split("train"), fs.split("val")              # doctest: +SKIP
    >>> clf = train_sklearn(train.features, train.labels, "logreg")  # doctest: +SKIP
    >>> head = train_dense_head(train.features, train.labels, val.features, val.labels)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_species.atomic import atomic_path
from keras_species.data.file_cache import file_identity
from keras_species.data.manifest import UNLABELLED, Manifest

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

FEATURE_CACHE_VERSION = 1
"""Bumped when the cache layout or the way images are read changes; part of every key."""

DEFAULT_CACHE_DIR = "~/.cache/keras_species/features"

SKLEARN_CLASSIFIERS = ("logreg", "svc", "rf", "hgb", "xgb")

DatasetFn = Callable[[Manifest, tuple[int, int], int], "tf.data.Dataset"]
"""``dataset_fn(manifest, (h, w), batch_size)`` yielding batches of float 0–255 RGB images (or
``(images, ...)`` tuples) in manifest order, one per readable file."""


@dataclass
class FeatureSet:
    """Features of a manifest's images, row-aligned with its labels and paths.

    Args:
        features: ``(N, D)`` float32 features.
        labels: the manifest's labels of those rows (``(N,)`` int, ``-1`` = unlabelled, or
            ``(N, C)`` multi-hot).
        paths: the image paths of those rows.
        key: the cache key the features were stored under.
        splits: the manifest's split name per row, if it has splits.
        skipped: paths of the manifest that could not be read (no row for them).
        cache_path: the ``.npz`` file, or ``None`` when caching was off.
        from_cache: whether the features were loaded rather than computed.
    """

    features: np.ndarray
    labels: np.ndarray
    paths: list[str]
    key: str
    splits: list[str] | None = None
    skipped: list[str] = field(default_factory=list)
    cache_path: str | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int] | np.ndarray) -> FeatureSet:
        """The rows ``index`` (ints or a boolean mask) as a new FeatureSet."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FeatureSet(
            self.features[index], self.labels[index], [self.paths[i] for i in index], self.key,
            None if self.splits is None else [self.splits[i] for i in index],
            list(self.skipped), self.cache_path, self.from_cache,
        )

    def split(self, name: str) -> FeatureSet:
        """The rows of split ``name`` (``"train"``, ``"val"``, ``"test"``, ``"fold0"``…)."""
        if self.splits is None:
            raise ValueError("these features have no splits: split the manifest before extracting")
        rows = [i for i, s in enumerate(self.splits) if s == name]
        if not rows:
            raise ValueError(f"no rows in split {name!r}; splits present: {sorted(set(self.splits))}")
        return self.subset(rows)

    def labelled(self) -> FeatureSet:
        """The rows that have a label (single-label ``!= -1``; multi-label rows are all kept)."""
        if self.labels.ndim == 2:
            return self
        return self.subset(self.labels != UNLABELLED)


# ----------------------------------------------------------------------------------------------
# Cache key


def weights_identity(weights: str | os.PathLike | None) -> Any:
    """What identifies ``weights`` in a cache key.

    Args:
        weights: ``None``, ``"imagenet"`` (or another named source), or a local weights file.

    Returns:
        ``None``, the source name, or ``[absolute path, size, SHA-256]`` for a file
        (:func:`weights_file_sha256`).

    Example:
        >>> weights_identity(None), weights_identity("imagenet")
        (None, 'imagenet')
    """
    if weights is None:
        return None
    w = os.fspath(weights)
    if os.path.isfile(os.path.expanduser(w)):  # a folder is left to the weights check's message
        path = os.path.abspath(os.path.expanduser(w))
        return [path, os.path.getsize(path), weights_file_sha256(path)]
    return w


def weights_file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a weights file's content, read again only when its size, times or inode
    change. A path with its size and mtime did not tell two files apart: weights of one
    architecture all have the same size, and ``cp -p``, ``rsync -a`` and ``tar x`` keep the mtime,
    so a fine-tuned file copied over the original reused the original's cached features. (The
    ``ctime`` in the memo's key cannot be set back by a user.)

    Args:
        path: a local weights file.

    Returns:
        The hex digest.

    Example:
        >>> len(weights_file_sha256(__file__))
        64
    """
    from keras_species.weights_files import file_digest

    return file_digest(path, "sha256")  # memoized there, for the ImageNet files' check too


def callable_identity(fn: Callable) -> str:
    """What identifies a function in a cache key: its qualified name and a SHA-256 of its code,
    constants, defaults and the values its closure holds (for ``functools.partial``, of its
    function and arguments), each value by its content (:func:`_digest`). Two lambdas of one
    module, or two closures of one factory, shared the key ``module.<lambda>`` whatever they did
    (``resize="pad"`` read the ``"crop"`` features). A value whose content cannot be read makes a
    new key each process: the features are computed again, never taken stale.

    Args:
        fn: the function.

    Returns:
        ``"module.qualname:sha256-prefix"``.

    Example:
        >>> callable_identity(lambda x: x + 1) != callable_identity(lambda x: x + 2)
        True
    """
    import functools

    h = hashlib.sha256()
    _digest(fn, h)
    if isinstance(fn, functools.partial):
        name = f"partial({getattr(fn.func, '__qualname__', repr(fn.func))})"
    elif hasattr(fn, "__qualname__"):
        name = f"{getattr(fn, '__module__', '')}.{fn.__qualname__}"
    else:  # an object with __call__: its class (its repr holds its address, new each process)
        name = f"{type(fn).__module__}.{type(fn).__qualname__}"
    return f"{name}:{h.hexdigest()[:16]}"


_PROCESS_TOKEN = os.urandom(16)
"""Stands for a value whose content cannot be read (:func:`_digest`): a key unique to the process."""


def _digest(value: Any, h: Any, depth: int = 0) -> None:
    """Feed ``value``'s content to the hash ``h``: arrays by their bytes (a ``repr`` elides the
    middle of a long one), Keras layers by their settings (a layer's ``repr`` is its name),
    functions by code, constants, defaults and closure; other values by ``pickle``, or, where
    that fails, by a token of this process."""
    import functools
    import pickle
    import types

    import keras

    h.update(type(value).__qualname__.encode() + b":")
    if depth > 20:  # a cycle or a deep structure: not stable
        h.update(_PROCESS_TOKEN)
    elif value is None or isinstance(value, bool | int | float | complex | str | bytes):
        h.update(repr(value).encode())
    elif isinstance(value, np.ndarray | np.generic):
        arr = np.asarray(value)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes() if arr.dtype != object else pickle.dumps(arr.tolist()))
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        for item in items:
            _digest(item, h, depth + 1)
    elif isinstance(value, dict):
        for key in sorted(value, key=repr):
            _digest(key, h, depth + 1)
            _digest(value[key], h, depth + 1)
    elif isinstance(value, keras.layers.Layer):  # a model too: its layers' settings and weights
        # (an adapted Normalization's statistics are weights, not settings; a Sequential block
        # without an Input has no input shape for model_identity to read)
        layers = ([value] if not isinstance(value, keras.Model) else
                  [layer for layer in value._flatten_layers(include_self=False, recursive=True)
                   if not isinstance(layer, keras.Model)])
        h.update(json.dumps([_layer_settings_of(layer) for layer in layers], sort_keys=True,
                            default=repr).encode())
        _digest_weights(value.weights, h)
    elif isinstance(value, functools.partial):
        _digest(value.func, h, depth + 1)
        _digest(value.args, h, depth + 1)
        _digest(value.keywords, h, depth + 1)
    elif isinstance(value, types.CodeType):
        h.update(value.co_code)
        h.update(repr(value.co_names).encode())
        _digest(value.co_consts, h, depth + 1)
    elif isinstance(value, types.FunctionType):
        h.update(f"{value.__module__}.{value.__qualname__}".encode())
        _digest(value.__code__, h, depth + 1)
        _digest(value.__defaults__, h, depth + 1)
        _digest(value.__kwdefaults__, h, depth + 1)
        for cell in value.__closure__ or ():
            try:
                _digest(cell.cell_contents, h, depth + 1)
            except ValueError:  # an empty cell
                h.update(b"<empty>")
    elif isinstance(value, types.BuiltinFunctionType | type | types.ModuleType):
        h.update(f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', value.__name__)}".encode())
    else:
        try:
            h.update(pickle.dumps(value, protocol=4))
        except Exception:  # noqa: BLE001 - any object that pickle refuses: a key of this process
            h.update(_PROCESS_TOKEN)


def model_identity(model: keras.Model) -> dict[str, Any]:
    """Identity of a ready extractor: its name, shapes and a SHA-256 of its weight values.

    Args:
        model: a ``keras.Model`` mapping images to features.

    Returns:
        A JSON-ready dict; two models with different weights get different identities.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> sorted(model_identity(m))
        ['config_sha256', 'input_shape', 'name', 'output_shape', 'weights_sha256']
    """
    h = hashlib.sha256()
    _digest_weights(model.weights, h)
    # the layers and their settings too: two models of one name and the same weights, one with
    # average and one with max pooling (or another activation, a Rescaling), shared a key
    config = json.dumps(_layer_settings(model), sort_keys=True, default=repr)
    return {
        "name": model.name,
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "weights_sha256": h.hexdigest(),
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
    }


def _layer_settings(model: keras.Model) -> list:
    """Each layer's class and settings, in order, nested models' layers included, without the
    names Keras numbers per process (``conv2d_3``): two models built alike share them."""
    import keras

    return [_layer_settings_of(layer)
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if not isinstance(layer, keras.Model)]  # a nested model's layers are listed themselves


def _digest_weights(weights: Sequence[Any], h: Any) -> None:
    """Feed each weight's dtype, shape and bytes to the hash ``h``."""
    for weight in weights:
        arr = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())


@functools.cache
def _bare_layer_attributes() -> frozenset[str]:
    """The attribute names every Keras layer has, and ``name`` (read once, when first needed:
    Keras is not imported with this module)."""
    import keras

    return frozenset(vars(keras.layers.Layer())) | {"name"}


def _layer_settings_of(layer: Any) -> list:
    """One layer's class and settings, without its own name (Keras numbers it per process:
    ``conv2d_3``), settings such as its dtype policy kept whole."""
    try:
        config = dict(layer.get_config())
    except NotImplementedError:  # settings Keras cannot read (an array argument): the layer's own
        # plain values (arrays, numbers, text), so that two such layers never share a key (their
        # class alone did), and this process's token if it holds anything else
        h = hashlib.sha256()
        for key, value in sorted(vars(layer).items()):
            if key.startswith("_") or key in _bare_layer_attributes():  # Keras's own, and the name
                continue
            h.update(key.encode())
            _digest(value, h)  # arrays by their bytes; what cannot be read, this process's token
        config = {"own values": h.hexdigest()}
    if config is not None:
        config.pop("name", None)
    return [type(layer).__name__, config]


def feature_cache_key(
    paths: Sequence[str],
    *,
    backbone: str | None,
    weights: Any,
    input_size: tuple[int, int],
    pooling: str | None,
    extractor: keras.Model | None = None,
    dataset_fn: DatasetFn | None = None,
) -> str:
    """The cache key of a feature extraction (a 24-hex-digit SHA-256 prefix).

    Args:
        paths: the ordered image paths.
        backbone: registry name (ignored when ``extractor`` is given).
        weights: as for :func:`extract_features`.
        input_size: ``(height, width)``.
        pooling: ``"avg"``, ``"max"``… or ``None``.
        extractor: a ready model; its :func:`model_identity` replaces backbone and weights.
        dataset_fn: a custom dataset function; :func:`callable_identity` is part of the key.

    Returns:
        The key; every changed part (including a file's size or mtime) changes it.

    Example:
        >>> k = feature_cache_key([], backbone="resnet18", weights=None, input_size=(224, 224),
        ...                       pooling="avg")
        >>> len(k)
        24
    """
    import keras

    from keras_species.data.images import get_max_pixels
    from keras_species.data.pipeline import RESIZE_RULE

    parts: dict[str, Any] = {
        "version": FEATURE_CACHE_VERSION,
        "resize_rule": RESIZE_RULE,
        # which images are kept: one skipped as too large stayed skipped once the limit was raised
        "max_pixels": get_max_pixels(),
        "input_size": [int(input_size[0]), int(input_size[1])],
        "pooling": pooling,
        "dataset_fn": None if dataset_fn is None else callable_identity(dataset_fn),
        # features computed under mixed_float16 differ from float32 ones by about 1e-3
        "dtype_policy": keras.config.dtype_policy().name,
    }
    if extractor is not None:
        parts["extractor"] = model_identity(extractor)
    else:
        parts["backbone"] = backbone.lower() if backbone else None
        parts["weights"] = weights_identity(weights)
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    for p in paths:
        h.update(json.dumps(file_identity(os.fspath(p))).encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


# ----------------------------------------------------------------------------------------------
# Images → features


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    from keras_species.data.pipeline import size_pair

    return size_pair(input_size, "input_size")


def _pipeline_dataset(
    manifest: Manifest, size: tuple[int, int], batch_size: int
) -> tuple[tf.data.Dataset, list[int]]:
    """The library's data pipeline in inference mode (manifest order, images only) and the rows
    its file check leaves out."""
    from keras_species.data.pipeline import check_files, make_dataset

    _, bad = check_files(manifest.paths)
    ds = make_dataset(manifest, size, batch_size, training=False, label_mode="none", cache=False)
    return ds, [i for i, p in enumerate(manifest.paths) if p in bad]


def _unreadable_rows(paths: Sequence[str]) -> list[int]:
    from keras_species.data.images import ImageReadError, read_image

    bad = []
    for i, p in enumerate(paths):
        try:
            read_image(p)
        except (ImageReadError, OSError):
            bad.append(i)
    return bad


def _images_only(ds: tf.data.Dataset) -> tf.data.Dataset:
    spec = ds.element_spec
    if isinstance(spec, tuple):
        return ds.map(lambda *xs: xs[0])
    return ds


def _predict(extractor: keras.Model, ds: tf.data.Dataset, steps: int, verbose: int) -> np.ndarray:
    """Batch by batch ``predict_on_batch`` (``model.predict`` warns "ran out of data" on every
    dataset of unknown length, which skipping unreadable files makes)."""
    import keras

    # Keras' verbosity: 1 a progress bar, 2 one line when done (no bar redrawn into a log file)
    bar = keras.utils.Progbar(steps, unit_name="batch", verbose=int(verbose)) if verbose else None
    out = []
    for i, x in enumerate(ds, start=1):
        y = np.asarray(extractor.predict_on_batch(x), np.float32)
        out.append(y.reshape(len(y), -1))
        if bar is not None:
            bar.update(i)
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out)


def _run_extractor(
    extractor: keras.Model,
    manifest: Manifest,
    size: tuple[int, int],
    batch_size: int,
    dataset_fn: DatasetFn | None,
    verbose: int,
) -> tuple[np.ndarray, list[int]]:
    """Features of the readable rows and the row indices that were kept."""
    if dataset_fn is not None:
        ds, skipped = dataset_fn(manifest, size, batch_size), []
    else:
        ds, skipped = _pipeline_dataset(manifest, size, batch_size)
    n = len(manifest)
    feats = _predict(extractor, _images_only(ds), -(-n // batch_size), verbose)
    if len(feats) != n - len(skipped):
        # a file passed the header check but failed to decode: find every unreadable row
        skipped = _unreadable_rows(manifest.paths)
    bad = set(skipped)
    kept = [i for i in range(n) if i not in bad]
    if len(kept) != len(feats):
        raise RuntimeError(
            f"the dataset gave {len(feats)} images for {n} manifest rows ({len(skipped)} "
            "unreadable); it must yield every readable file once, in manifest order "
            "(training=False, no shuffling, no repeat)"
        )
    return feats, kept


FEATURE_POOLINGS: tuple[str, ...] = ("avg", "max", "avgmax")
"""The poolings of the backbone's last feature map that features are extracted with
(``recipes.feature_classifiers --pooling``; ``keras-species predict`` checks a run's against
them)."""


def feature_input_size(backbone: str, input_size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """The ``(height, width)`` at which :func:`extract_features` runs ``backbone``.

    Args:
        backbone: registry name.
        input_size: ``H``, ``(H, W)``, or ``None`` for the backbone's own input size.

    Returns:
        ``(height, width)``.

    Example:
        >>> feature_input_size("densenet121"), feature_input_size("resnet18", 32)
        ((224, 224), (32, 32))
    """
    if input_size is None:
        from keras_species.backbone_catalog import backbone_facts

        input_size = backbone_facts(backbone).default_size
    return _size(input_size)


def backbone_extractor(
    backbone: str,
    input_size: int | Sequence[int] | None = None,
    weights: str | os.PathLike | None = None,
    pooling: str = "avg",
) -> keras.Model:
    """The model :func:`extract_features` builds for ``backbone=`` (image 0–255 → features):
    ``keras_species.models.classifier.feature_extractor`` at :func:`feature_input_size`.

    ``keras-species predict`` rebuilds a ``feature_classifiers`` run's extractor with it, so that
    its features are the ones the run's classifier was fitted on.

    Args:
        backbone: registry name.
        input_size: ``H``, ``(H, W)``, or ``None`` for the backbone's own input size.
        weights: ``None``, ``"imagenet"`` or a local weights file.
        pooling: pooling of the backbone's last feature map (``"avg"``, ``"max"``, ``"avgmax"``).

    Returns:
        A ``keras.Model`` whose output is float32 ``(B, D)``.

    Raises:
        WeightsUnavailableError: the weights cannot be had (offline ImageNet, a missing file).

    Example:
        >>> backbone_extractor("resnet18", 32).output.shape
        (None, 512)
    """
    return _default_extractor(backbone, feature_input_size(backbone, input_size), weights, pooling)


def _default_extractor(
    backbone: str, size: tuple[int, int], weights: Any, pooling: str | None
) -> keras.Model:
    from keras_species.models.classifier import feature_extractor

    return feature_extractor(backbone, size, weights, pooling=pooling)


def classifier_probabilities(estimator: Any, features: np.ndarray, num_classes: int) -> np.ndarray:
    """``estimator.predict_proba(features)`` placed in all ``num_classes`` columns.

    A scikit-learn classifier has one column per class it saw in training (``classes_``): a
    class absent from the training rows has none, and gets probability 0 here.

    Args:
        estimator: a fitted classifier of :func:`train_sklearn` (``classes_`` are class indices).
        features: ``(N, D)`` features.
        num_classes: the data's number of classes.

    Returns:
        ``(N, num_classes)`` float64 probabilities.

    Example:
        >>> x = np.r_[np.zeros((3, 2)), np.ones((3, 2))]; y = np.r_[[0] * 3, [2] * 3]
        >>> p = classifier_probabilities(train_sklearn(x, y), x[:1], 3)
        >>> p.shape, float(p[0, 1])  # class 1 had no training row
        ((1, 3), 0.0)
    """
    out = np.zeros((len(features), num_classes), np.float64)
    out[:, np.asarray(estimator.classes_, np.int64)] = estimator.predict_proba(features)
    return out


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write ``path`` atomically (a temp file in the same folder, then ``os.replace``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _read_cache(path: Path, n: int) -> tuple[np.ndarray, list[int]] | None:
    """The features and kept rows of a cache file, or None (with a warning) when it is damaged:
    a cache is recomputed and overwritten then, never a reason to stop."""
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, kept = z["features"], z["kept"]
        if feats.ndim != 2 or kept.ndim != 1 or len(feats) != len(kept):
            why = f"features of shape {feats.shape} for {kept.shape} kept rows"
        elif len(kept) and not (kept.min() >= 0 and kept.max() < n):
            why = f"kept rows outside the manifest's {n}"
        else:
            return feats.astype(np.float32, copy=False), kept.tolist()
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
        why = f"{type(err).__name__}: {' '.join(str(err).split()) or 'no message'}"
    warnings.warn(f"feature cache {path} is damaged ({why}); the features are computed again and "
                  "the file is overwritten", stacklevel=3)
    return None


def extract_features(
    manifest: Manifest,
    backbone: str | None = None,
    *,
    input_size: int | Sequence[int] | None = None,
    weights: str | os.PathLike | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
    pooling: str = "avg",
    extractor: keras.Model | None = None,
    dataset_fn: DatasetFn | None = None,
    verbose: int = 0,
) -> FeatureSet:
    """Run a frozen backbone over a manifest's images once, caching the features on disk.

    Args:
        manifest: the images (all splits at once is best: :meth:`FeatureSet.split` selects).
        backbone: registry name (``keras_species.models.list_backbones()``); the extractor is
            ``keras_species.models.classifier.feature_extractor(backbone, size, weights,
            pooling)``, taking 0–255 RGB and carrying its own preprocessing.
        input_size: ``H`` or ``(H, W)``; default the backbone's (or the extractor's) input size.
        weights: ``None`` (random initialisation: the key then hashes the drawn weight values,
            so that another seed is another cache entry), ``"imagenet"``, or a local weights
            file (identified by path, size and the SHA-256 of its content in the key).
        batch_size: images per forward pass.
        cache_dir: folder of ``<key>.npz`` files; ``None`` turns caching off.
        pooling: pooling of the backbone's last feature map (``"avg"``, ``"max"``, ``"avgmax"``:
            both, concatenated, or ``"flatten"``).
        extractor: a ready ``keras.Model`` image (0–255) → features, used instead of
            ``backbone``/``weights``; the key then hashes its weight values.
        dataset_fn: ``dataset_fn(manifest, (h, w), batch_size)`` replacing the library's
            pipeline (``make_dataset(..., training=False, label_mode="none")``); it must yield
            every readable image once, in manifest order.
        verbose: as Keras' ``verbose``: 0 silent, 1 a progress bar while extracting, 2 one line
            when done (for logs).

    Returns:
        A :class:`FeatureSet`: ``(N, D)`` float32 features aligned with ``labels``/``paths``
        (unreadable files are left out and listed in ``skipped``).

    Example:
        >>> fs = extract_features(manifest, "mobilenet_v2", input_size=224)  # doctest: +SKIP
        >>> fs.features.shape, fs.from_cache                                 # doctest: +SKIP
        ((80, 1280), False)
    """
    if extractor is None and backbone is None:
        raise ValueError("pass a registry `backbone` name or a ready `extractor` model")
    from keras_species.training.verbosity import verbose_problem

    if isinstance(verbose, bool):  # verbose=False, as a recipe passes it: Keras's 0
        verbose = int(verbose)
    problem = verbose_problem(verbose)  # train's check (verbose=3 ran, unlike train)
    if problem:
        raise ValueError(f"verbose={verbose!r}: {problem}")
    if len(manifest) == 0:
        raise ValueError("the manifest has no images: nothing to extract features from")
    if input_size is None and extractor is not None:
        input_size = tuple(extractor.input_shape[1:3])
        if None in input_size:
            raise ValueError("the extractor has no fixed input size: pass input_size=(H, W)")
    size = _size(input_size) if extractor is not None else feature_input_size(backbone, input_size)
    if extractor is None and weights is None:
        # a randomly initialised backbone: only its weight values (the seed's draw) identify its
        # features, so it is built first and keyed as a ready extractor
        extractor = _default_extractor(backbone, size, None, pooling)
    key = feature_cache_key(
        manifest.paths, backbone=backbone, weights=weights, input_size=size, pooling=pooling,
        extractor=extractor, dataset_fn=dataset_fn,
    )
    path = None if cache_dir is None else Path(os.path.expanduser(os.fspath(cache_dir))) / f"{key}.npz"

    def result(feats: np.ndarray, kept: list[int], from_cache: bool) -> FeatureSet:
        kept_set = set(kept)
        return FeatureSet(
            features=feats,
            labels=manifest.labels[kept],
            paths=[manifest.paths[i] for i in kept],
            key=key,
            splits=None if manifest.splits is None else [manifest.splits[i] for i in kept],
            skipped=[p for i, p in enumerate(manifest.paths) if i not in kept_set],
            cache_path=None if path is None else str(path),
            from_cache=from_cache,
        )

    if path is not None and path.is_file():
        cached = _read_cache(path, len(manifest))
        if cached is not None:
            return result(*cached, True)

    if extractor is None:
        extractor = _default_extractor(backbone, size, weights, pooling)
    feats, kept = _run_extractor(extractor, manifest, size, batch_size, dataset_fn, verbose)
    if path is not None:
        _save(path, features=feats, kept=np.asarray(kept, np.int64),
              paths=np.asarray(manifest.paths, dtype=str), key=np.asarray(key))
    return result(feats, kept, False)


# ----------------------------------------------------------------------------------------------
# Classifiers on features


def _check_single_label(features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float32)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
    if y.ndim != 1:
        raise ValueError(
            f"labels of shape {y.shape}: scikit-learn classifiers here take single-label (N,) "
            "class indices; for multi-label data use train_dense_head (sigmoid output)"
        )
    if (y == UNLABELLED).any():
        raise ValueError(
            f"{int((y == UNLABELLED).sum())} rows are unlabelled (-1): train on "
            "FeatureSet.labelled() rows only"
        )
    return x, y.astype(np.int64)


def _small_classes(y: np.ndarray, below: int, class_names: Sequence[str] | None) -> list[str]:
    """The classes of ``y`` with fewer than ``below`` rows, as ``'koi' (1 image)``."""
    counts = np.bincount(y)
    small = [k for k in np.flatnonzero(counts) if counts[k] < below]
    return [
        f"{repr(class_names[k]) if class_names is not None and k < len(class_names) else f'class {k}'}"
        f" ({counts[k]} image{'s' if counts[k] != 1 else ''})"
        for k in small
    ]


def _svc_with_probabilities(
    y: np.ndarray, class_names: Sequence[str] | None, **kw: Any
) -> Any:
    """StandardScaler + SVC calibrated by Platt scaling (sigmoid) of its decision values.

    ``SVC(probability=True)`` is deprecated since scikit-learn 1.9; ``CalibratedClassifierCV`` is
    its documented replacement: cross-validated decision values (as many folds as the smallest
    class allows, 2 to 5), one final SVC on every row. A class with a single training row leaves
    no 2-fold split with that class on both sides (scikit-learn raises "Requesting 2-fold
    cross-validation but provided less than 2 examples for at least one class"): then the sigmoid
    is fitted on the training rows' own decision values (one SVC, no cross-validation), with a
    warning naming the class, since those probabilities are overconfident.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    counts = np.bincount(y)
    smallest = int(counts[counts > 0].min())
    if smallest >= 2:
        cv: Any = min(5, smallest)
    else:
        lone = _small_classes(y, 2, class_names)
        warnings.warn(
            f"svc: {', '.join(lone)} in training: too few for the cross-validated calibration "
            "of SVC probabilities (2 images per class at least); SVC is calibrated on its own "
            "training rows instead, so its probabilities are overconfident. Add images to "
            f"{'that class' if len(lone) == 1 else 'those classes'} for calibrated probabilities",
            stacklevel=3,
        )
        rows = np.arange(len(y))
        cv = [(rows, rows)]  # one "split": fit on every row, calibrate on the same rows
    # ensemble=False: one SVC on every row; with the single split above, ensemble=True is that
    # same model without fitting it twice
    calibrated = CalibratedClassifierCV(SVC(**kw), cv=cv, ensemble=not isinstance(cv, int))
    return make_pipeline(StandardScaler(), calibrated)


def _hgb_validation_fits(
    y: np.ndarray, kw: dict[str, Any], class_names: Sequence[str] | None
) -> None:
    """Turn HistGradientBoosting's early stopping off (with a warning) when its stratified
    validation split cannot be made: a class with one row, or fewer validation rows than classes.

    Early stopping is on by default above 10 000 rows (``early_stopping="auto"``) and then holds
    out ``validation_fraction`` of the rows, stratified by class; scikit-learn raises "The least
    populated class in y has only 1 member" otherwise.
    """
    n = len(y)
    stopping = kw.get("early_stopping", "auto")
    fraction = kw.get("validation_fraction", 0.1)
    if fraction is None or not (stopping is True or (stopping == "auto" and n > 10_000)):
        return
    n_val = int(np.ceil(fraction * n)) if isinstance(fraction, float) else int(fraction)
    n_classes = int((np.bincount(y) > 0).sum())
    lone = _small_classes(y, 2, class_names)
    if lone:
        why = f"{', '.join(lone)} in training cannot be on both sides of its validation split"
    elif n_val < n_classes or n - n_val < n_classes:
        why = (f"its validation split ({n_val} of {n} rows) cannot hold each of the "
               f"{n_classes} classes")
    else:
        return
    warnings.warn(f"hgb: early stopping is off for this fit: {why}", stacklevel=3)
    kw["early_stopping"] = False


def train_sklearn(
    features_train: np.ndarray,
    y_train: np.ndarray,
    classifier: str = "logreg",
    *,
    class_names: Sequence[str] | None = None,
    **kw: Any,
) -> Any:
    """Fit a scikit-learn (or XGBoost) classifier on features (R2: SVM, Random Forest, XGBoost).

    Every classifier fits a class with a single training row. ``"svc"`` then calibrates its
    probabilities on its own training rows (cross-validation needs 2 rows per class) and
    ``"hgb"`` turns its early stopping off (its validation split is stratified), each with a
    warning naming the class.

    Args:
        features_train: ``(N, D)`` features.
        y_train: ``(N,)`` class indices (no ``-1``).
        classifier: ``"logreg"`` (StandardScaler + LogisticRegression), ``"svc"``
            (StandardScaler + SVC, probabilities by Platt scaling, cross-validated with as many
            folds as the smallest class allows, 2 to 5), ``"rf"`` (RandomForestClassifier),
            ``"hgb"`` (HistGradientBoostingClassifier) or ``"xgb"`` (xgboost.XGBClassifier).
        class_names: names of the class indices, used in warnings (``class 3`` without them).
        **kw: keyword arguments of the estimator (``C=``, ``n_estimators=``…);
            ``random_state`` defaults to 0; ``probability=False`` gives an uncalibrated SVC
            (no ``predict_proba``).

    Returns:
        The fitted estimator (``predict``, ``predict_proba`` with columns ``classes_``).

    Raises:
        ImportError: ``"xgb"`` without the ``xgboost`` package, saying how to install it.

    Example:
        >>> x = np.r_[np.zeros((5, 2)), np.ones((5, 2))]; y = np.r_[[0] * 5, [1] * 5]
        >>> train_sklearn(x, y, "logreg").predict_proba(x).shape
        (10, 2)
    """
    x, y = _check_single_label(features_train, y_train)
    name = classifier.lower()
    if name == "xgb":
        try:
            from xgboost import XGBClassifier
        except ModuleNotFoundError as err:
            raise ImportError(
                "classifier='xgb' needs XGBoost: `pip install xgboost` (or use 'hgb', "
                "scikit-learn's histogram gradient boosting, which needs nothing more)"
            ) from err
        classes = np.unique(y)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise ValueError(
                f"XGBoost needs classes 0..K-1 all present in training, got {classes.tolist()}"
            )
        kw.setdefault("random_state", 0)
        return XGBClassifier(**kw).fit(x, y)

    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    kw.setdefault("random_state", 0)
    if name == "logreg":
        kw.setdefault("max_iter", 2000)
        est = make_pipeline(StandardScaler(), LogisticRegression(**kw))
    elif name == "svc":
        if kw.pop("probability", True):
            est = _svc_with_probabilities(y, class_names, **kw)
        else:
            est = make_pipeline(StandardScaler(), SVC(**kw))
    elif name == "rf":
        kw.setdefault("n_estimators", 300)
        est = RandomForestClassifier(**kw)
    elif name == "hgb":
        _hgb_validation_fits(y, kw, class_names)
        est = HistGradientBoostingClassifier(**kw)
    else:
        raise ValueError(f"classifier={classifier!r}: choose one of {SKLEARN_CLASSIFIERS}")
    return est.fit(x, y)


def build_dense_head(
    input_dim: int,
    num_classes: int,
    *,
    units: Sequence[int] = (256,),
    dropout: float = 0.5,
    output: str = "softmax",
    class_names: Sequence[str] | None = None,
) -> keras.Model:
    """A dense classifier on feature vectors: ``units`` × (Dense ReLU → Dropout) → Dense C.

    Args:
        input_dim: feature size ``D``.
        num_classes: output units.
        units: hidden layer sizes (R5: one Dense 256).
        dropout: dropout rate after each hidden layer (R5: 0.5).
        output: ``"softmax"``, ``"sigmoid"`` (multi-label) or ``"logits"``.
        class_names: class names kept in the output layer (``class_0``… when not given).

    Returns:
        A functional model, input ``features`` ``(None, D)``, output layer ``label`` (float32).

    Example:
        >>> build_dense_head(1280, 10).output_shape
        (None, 10)
    """
    import keras

    from keras_species.models.labels import classification_output

    if output not in ("softmax", "sigmoid", "logits"):
        raise ValueError(f"output={output!r}: choose 'softmax', 'sigmoid' or 'logits'")
    inputs = keras.Input((input_dim,), name="features")
    x = inputs
    for i, u in enumerate(units, start=1):
        x = keras.layers.Dense(u, activation="relu", name=f"head_dense{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"head_dropout{i}")(x)
    out = classification_output(
        x, num_classes, output, class_names=class_names, multilabel=output == "sigmoid"
    )
    return keras.Model(inputs, out, name="dense_head")


def train_dense_head(
    features_train: np.ndarray,
    y_train: np.ndarray,
    features_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    num_classes: int | None = None,
    units: Sequence[int] = (256,),
    dropout: float = 0.5,
    epochs: int = 30,
    batch_size: int = 32,
    optimizer: str = "rmsprop",
    lr: float = 1e-3,
    sample_weight: np.ndarray | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 0,
    class_names: Sequence[str] | None = None,
) -> keras.Model:
    """Train R5's feature-extraction classifier: a dense head on cached features.

    Args:
        features_train: ``(N, D)`` features.
        y_train: ``(N,)`` class indices (softmax, sparse cross-entropy) or ``(N, C)`` multi-hot
            (sigmoid, binary cross-entropy).
        features_val: optional validation features.
        y_val: their labels.
        num_classes: output units; default ``max(y) + 1`` (or ``C`` for multi-hot).
        units: hidden layer sizes.
        dropout: dropout after each hidden layer.
        epochs: training epochs.
        batch_size: batch size.
        optimizer: ``"rmsprop"`` (R5), ``"adam"``, ``"adamw"`` or ``"sgd"``.
        lr: learning rate.
        sample_weight: optional per-row weights (class balance).
        callbacks: Keras callbacks (early stopping, CSV logger…).
        verbose: Keras ``fit`` verbosity.
        class_names: class names stored in the head's output layer (its label map).

    Returns:
        The trained model (``model.history.history`` holds the per-epoch losses and metrics).

    Example:
        >>> x = np.r_[np.zeros((8, 4)), np.ones((8, 4))].astype("float32")
        >>> head = train_dense_head(x, np.r_[[0] * 8, [1] * 8], epochs=2)
        >>> head.predict(x, verbose=0).shape
        (16, 2)
    """
    import keras

    x = np.asarray(features_train, np.float32)
    y = np.asarray(y_train)
    if y.ndim not in (1, 2):  # the scikit-learn path's message sent one back to this function
        raise ValueError(f"y_train has shape {y.shape}: give (N,) class indices or (N, C) multi-hot labels")
    multilabel = y.ndim == 2
    if not multilabel:
        x, y = _check_single_label(x, y)
    elif x.ndim != 2:  # a bare IndexError before
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    elif len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
    yv_all = None if y_val is None else np.asarray(y_val)
    if features_val is not None and yv_all is not None and len(features_val) != len(yv_all):
        raise ValueError(f"{len(features_val)} validation feature rows but {len(yv_all)} labels in y_val")
    if num_classes is None:  # the validation labels count too (a class only they hold crashed)
        num_classes = y.shape[1] if multilabel else int(max(y.max(), -1 if yv_all is None or not yv_all.size
                                                             else yv_all.max())) + 1
        if class_names is not None and not multilabel:
            num_classes = max(num_classes, len(class_names))
    for name, labels in (("y_train", y), ("y_val", yv_all)):  # a crash inside TensorFlow before
        if labels is None or not labels.size:
            continue
        if labels.ndim != (2 if multilabel else 1):
            raise ValueError(f"{name} has shape {labels.shape}, and y_train holds "
                             f"{'(N, C) multi-hot labels' if multilabel else '(N,) class indices'}: "
                             "give both in one form")
        if multilabel and not np.isin(labels, (0, 1)).all():  # trained a sigmoid head on 0..2 before
            column = "; a column of class indices is y.ravel()" if labels.shape[1] == 1 else ""
            raise ValueError(f"{name} has shape {labels.shape} and values other than 0 and 1 "
                             f"(e.g. {labels[~np.isin(labels, (0, 1))].flat[0].item()!r}): (N, C) labels are "
                             f"multi-hot, a 1 for each class an image shows{column}")
        if multilabel and labels.shape[1] != num_classes:
            raise ValueError(f"{name} has {labels.shape[1]} label columns for a head of {num_classes} "
                             "outputs: give num_classes= the number of classes")
        if not multilabel and labels.max() >= num_classes:
            raise ValueError(f"{name} holds class {int(labels.max())}, and the head has {num_classes} "
                             f"outputs (0 to {num_classes - 1}): give num_classes= the number of classes "
                             "(manifest.num_classes)")
    model = build_dense_head(
        x.shape[1], num_classes, units=units, dropout=dropout,
        output="sigmoid" if multilabel else "softmax", class_names=class_names,
    )
    optimizers = {
        "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
    }
    if optimizer.lower() not in optimizers:
        raise ValueError(f"optimizer={optimizer!r}: choose one of {sorted(optimizers)}")
    if multilabel:
        loss, metrics = "binary_crossentropy", [keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    model.compile(optimizers[optimizer.lower()](learning_rate=lr), loss=loss, metrics=metrics)
    val = None
    if features_val is not None and y_val is not None:
        xv, yv = np.asarray(features_val, np.float32), np.asarray(y_val)
        if not multilabel:
            xv, yv = _check_single_label(xv, yv)
        val = (xv, yv)
    model.fit(
        x, y, validation_data=val, epochs=epochs, batch_size=batch_size,
        sample_weight=sample_weight, callbacks=list(callbacks), verbose=verbose,
    )
    return model


def attach_head(extractor: keras.Model, head: keras.Model, name: str = "feature_classifier") -> keras.Model:
    """One deployable model image → label: the extractor followed by a head trained on its features.

    Args:
        extractor: the model that produced the features (image 0–255 → ``(B, D)``).
        head: a model from :func:`train_dense_head` / :func:`build_dense_head`.
        name: the combined model's name.

    Returns:
        A functional model with the extractor's ``image`` input and the head's output.

    Example:
        >>> full = attach_head(extractor, head)   # doctest: +SKIP
        >>> full.save("classifier.keras")         # doctest: +SKIP
    """
    import keras

    inputs = keras.Input(extractor.input_shape[1:], name="image")
    return keras.Model(inputs, head(extractor(inputs)), name=name)
