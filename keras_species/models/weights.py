"""Where a backbone's weights come from: ``None``, a local file, or ``"imagenet"``.

``"imagenet"`` for a ``keras.applications`` entry is the very file Keras itself would download
(same name, URL and hash), fetched with ``keras.utils.get_file`` into Keras's cache
(``$KERAS_HOME/models/`` or ``~/.keras/models/``). Before any download, :func:`resolve_weights`
looks in the cache and, when the file is not there, probes the download URL with a 3-second
HTTP ``HEAD`` request: offline, it raises :class:`WeightsUnavailableError` at once, naming the file,
its URL, the cache folder and how to pass a local file. It never hangs and never falls back to a
random initialisation.

A local file is loaded with :func:`load_weights_file`:

* ``.weights.h5`` (Keras 3, e.g. ``backbone_of(model).save_weights("b.weights.h5")``): loaded
  strictly; the architecture must match.
* ``.h5`` (legacy HDF5, e.g. the ``*_notop.h5`` file Keras downloads, copied by hand): loaded in
  layer order like ``keras.applications`` does; when that fails (e.g. the file of the full model
  *with* its classification top), loaded by layer name with ``by_name=True,
  skip_mismatch=True`` so the top's layers are skipped. An error is raised if no layer matched.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np

from keras_species import weights_files
from keras_species.models.registry import BackboneSpec, get_backbone
from keras_species.weights_files import (  # their home needs no Keras; re-exported here
    HDF5_SIGNATURE,  # noqa: F401
    PROBE_TIMEOUT_S,  # noqa: F401
    ImageNetOfflineError,
    KerasWeightsFile,
    WeightsUnavailableError,
    check_weights_file,
    host_reachable,  # noqa: F401
    keras_cache_dir,
    no_imagenet_source,
    weights_setting,
)

_KERAS_FILES: dict[str, KerasWeightsFile] = {}


def register_keras_weights(name: str, file: KerasWeightsFile) -> None:
    """Record the Keras ImageNet file of registry entry ``name`` (used by ``applications.py``)."""
    _KERAS_FILES[name.lower()] = file


def keras_weights_file(name: str, size: int | None = None) -> KerasWeightsFile | None:
    """The Keras ImageNet file of entry ``name`` at input ``size``, or ``None`` if it has none."""
    file = _KERAS_FILES.get(name.lower())
    return None if file is None else file.for_size(size)


def _spec(spec_or_name: BackboneSpec | str) -> BackboneSpec:
    return get_backbone(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name


def resolve_weights(
    spec_or_name: BackboneSpec | str, weights: str | os.PathLike | None, size: int | None = None
) -> str | None:
    """Check ``weights`` for a backbone and return what its builder should load.

    Args:
        spec_or_name: the registry entry or its name.
        weights: ``None``, a local ``.weights.h5``/``.h5`` path, or ``"imagenet"``.
        size: the input size (MobileNetV2 has one ImageNet file per size).

    Returns:
        ``None`` (random initialisation), the path of a local file to load (for ``"imagenet"``
        on a ``keras.applications`` entry: the file in Keras's cache, downloaded if needed), or
        ``"imagenet"`` unchanged for an entry whose family module fetches its own weights.

    Raises:
        WeightsUnavailableError: a missing, empty or non-HDF5 local file
            (:func:`check_weights_file`), or an entry with no ImageNet source.
        ImageNetOfflineError: an offline ``"imagenet"`` whose file is not cached.

    Example:
        >>> resolve_weights("resnet18", None) is None
        True
    """
    text = weights_setting(weights)  # "none", "random", "ImageNet"... as the command line reads them
    if text is None:
        return None
    spec = _spec(spec_or_name)
    if text != "imagenet":
        path = check_weights_file(text, spec.name)
        return str(path)
    file = keras_weights_file(spec.name, size)
    if file is None:
        if "imagenet" in spec.weight_sources:
            return "imagenet"
        raise no_imagenet_source(spec.name, spec.weights_origin)
    cache = keras_cache_dir()
    cached = cache / file.file_name
    if cached.is_file():
        _check_cached_hash(cached, file)  # Keras's get_file checks it; a copy made by hand too
        return str(cached)
    if not weights_files.host_reachable(file.origin):  # looked up there: one place to replace
        raise ImageNetOfflineError(
            spec.name, file, cached,
            "Either download the file elsewhere and copy it to that cache path "
            "(set KERAS_HOME to use another cache folder), or pass it directly, e.g. "
            f"--weights /path/{file.file_name} (weights='/path/{file.file_name}'), "
            "or use --weights none (weights=None) to train from scratch.",
        )
    return keras.utils.get_file(
        file.file_name,
        file.origin,
        cache_subdir="models",
        cache_dir=str(cache.parent),
        file_hash=file.file_hash,
    )


def _unchanged_layers(model: keras.Model, before: list[list[np.ndarray]]) -> list[str]:
    """The layers with weights that a load left as they were (their random initial values)."""
    kept = []
    for layer, old in zip(model.layers, before):
        new = layer.get_weights()
        if new and all(np.array_equal(a, b) for a, b in zip(old, new)):
            kept.append(layer.name)
    return kept


def _check_cached_hash(cached, file) -> None:
    """Refuse the ImageNet file in Keras's cache when its hash is not Keras's (a partial
    download, or another file copied under its name ran as "imagenet" on random weights)."""
    expected = (file.file_hash or "").lower()
    if not expected:  # Keras checks none (MobileNetV2's): the checks of a local file, as much as can be
        import h5py

        with open(cached, "rb") as f:
            head = f.read(len(weights_files.HDF5_SIGNATURE))
        why = "is empty" if not head else "is not an HDF5 file"  # h5py's "file signature not found"
        if head == weights_files.HDF5_SIGNATURE:
            try:  # a cut download keeps its signature: h5py's "truncated file", naming no file
                with h5py.File(cached, "r"):
                    why = ""
            except OSError as err:
                text = " ".join(str(err).split())
                if "unable to lock file" in text.lower():  # in use elsewhere (or no locks here): not damaged
                    return
                why = f"cannot be read ({text if len(text) <= 160 else text[:160].rsplit(' ', 1)[0] + ' ...'})"
        if why:
            raise WeightsUnavailableError(
                f"{cached}, Keras's cached ImageNet weights file, {why} (a partial download, or "
                f"another file copied under this name). Delete it (online, it is downloaded again) "
                f"or copy the file from {file.origin} over it")
        return
    algorithm = "sha256" if len(expected) == 64 else "md5"  # Keras's "auto" rule
    found = weights_files.file_digest(cached, algorithm)  # once a process for an unchanged file
    if found != expected:
        raise WeightsUnavailableError(
            f"{cached} is not the ImageNet weights file Keras publishes for it: its {algorithm} is "
            f"{found}, where {file.origin} has {expected} (a partial download, or another file "
            "copied under this name). Delete it (online, it is downloaded again) or copy the file "
            "from that URL over it")


def load_error_summary(error: BaseException | str) -> str:
    """Keras's error for a weights file that does not fit a model, in one line.

    Keras's text holds every mismatched variable's values and a list of every layer (10 KB for
    one ResNet file loaded into another), which the message of a command printed whole.

    Args:
        error: the exception ``load_weights`` raised, or its text.

    Returns:
        ``"58 layers could not be loaded (the first: stage1_block3_conv1/kernel, (3, 3, 64, 64)
        in the model, (3, 3, 64, 128) in the file)"``, or the text's first line, cut to 300
        characters, when it is not in that form.

    Example:
        >>> load_error_summary("A total of 2 objects could not be loaded. Example error message "
        ...     "for object <Dense name=d, built=True>: The shape ... variable.shape=(4, 3), "
        ...     "Received: value.shape=(4, 5). Target variable: <Variable path=d/kernel, shape=(4, 3)")
        '2 layers could not be loaded (the first: d/kernel, (4, 3) in the model, (4, 5) in the file)'
    """
    import re

    text = str(error)
    total = re.search(r"A total of (\d+) objects could not be loaded", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    path = re.search(r"Target variable: <Variable path=([^,>]+)", text)
    if total and shapes and path:
        return (f"{total.group(1)} layers could not be loaded (the first: {path.group(1)}, "
                f"{shapes.group(1)} in the model, {shapes.group(2)} in the file)")
    if total:
        return f"{total.group(1)} layers could not be loaded"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first if len(first) <= 300 else first[:300] + " ..."


def _skipped(caught: list[warnings.WarningMessage]) -> list[str]:
    """Keras' warnings that a load skipped a layer's or variable's weights (it loads what it can
    and warns: a partial load is a wrong model)."""
    return [str(w.message) for w in caught if "Skipping" in str(w.message)]


def _legacy_layer_names(path: str) -> set[str] | None:
    """The layer names a legacy ``.h5`` weights or model file lists, or ``None`` when it lists
    none (it is then judged by what a load changed)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            names = group.attrs.get("layer_names")
    except (OSError, KeyError):
        return None
    if names is None:
        return None
    return {n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names}


def refresh_normalization(model: keras.Model) -> None:
    """Make each ``keras.layers.Normalization`` compute with the mean and variance its weights
    now hold: an adaptable one caches them when adapted or loaded from a ``.keras`` file, and
    ``set_weights`` (what a legacy ``.h5`` load and ``applications``' folding use) leaves that
    cache stale, so the model in memory scaled its input otherwise than its reloaded copy.

    Args:
        model: a model whose weights were just set.
    """
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Normalization) and layer.built:
            layer.finalize_state()


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> None:
    """Load a local weights file into a backbone built with ``weights=None``.

    Args:
        model: the backbone.
        path: a ``.weights.h5`` file (strict load) or a legacy ``.h5``/``.hdf5`` file (layer
            order first, then by layer name skipping mismatches, e.g. for a file with a top).

    Raises:
        WeightsUnavailableError: when the file does not fit the backbone.

    Example:
        >>> # backbone.save_weights("b.weights.h5"); load_weights_file(other_backbone, "b.weights.h5")
    """
    text = os.fspath(path)
    if text.endswith(".weights.h5"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.load_weights(text)
            except (ValueError, KeyError) as err:
                raise WeightsUnavailableError(  # Keras's text held every variable's values (10 KB)
                    f"weights file {text!r} does not fit backbone {model.name!r}: "
                    f"{load_error_summary(err)}; is it the file of another architecture?"
                ) from err
        skipped = _skipped(caught)
        if skipped:  # Keras loads what it can and warns: a partial load is a wrong model
            raise WeightsUnavailableError(
                f"weights file {text!r} does not fit backbone {model.name!r}: {skipped[0]}"
            )
        return
    try:
        model.load_weights(text)
        refresh_normalization(model)
        return
    except (ValueError, KeyError):
        pass
    in_file = _legacy_layer_names(text)
    # without a list of names in the file, a layer is covered if the load changes it: keep the
    # values to compare (a copy of every weight: only then)
    before = [layer.get_weights() for layer in model.layers] if in_file is None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(text, by_name=True, skip_mismatch=True)
        except (ValueError, KeyError) as err:
            raise WeightsUnavailableError(
                f"legacy weights file {text!r} does not fit backbone {model.name!r}: {err}"
            ) from err
    refresh_normalization(model)
    weighted = [layer.name for layer in model.layers if layer.weights]
    if before is not None:
        missing = _unchanged_layers(model, before)
    else:  # by name: a layer the file holds is covered even where its values are the initial ones
        missing = [name for name in weighted if name not in in_file]
    mismatched = _skipped(caught)
    if len(missing) == len(weighted):
        raise WeightsUnavailableError(
            f"no layer of backbone {model.name!r} matched a layer name in {text!r}; is it the "
            "file of another architecture?"
        )
    if missing:  # by name, a related architecture's file loads in part (vgg16's into vgg19)
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WeightsUnavailableError(
            f"legacy weights file {text!r} covers {len(weighted) - len(missing)} of the "
            f"{len(weighted)} layers with weights of backbone {model.name!r}: {shown} would keep "
            "random values. Is it the file of a related architecture (vgg16's for vgg19, "
            "resnet50's for resnet101)? Give the backbone's own file"
        )
    if mismatched:  # a layer of the same name but another shape: skipped, random
        raise WeightsUnavailableError(
            f"legacy weights file {text!r} does not fit backbone {model.name!r}: {mismatched[0]}"
        )
