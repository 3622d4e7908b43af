"""Robust image reading with PIL: every mode to 8-bit RGB, and a clear error for every bad file.

Shared by the audit (:func:`probe`), prediction and the pipeline's fallback path
(:func:`read_image`). TensorFlow's own decoders are faster but handle only plain 8-bit RGB/grey
JPEG, PNG, GIF and BMP and ignore EXIF orientation; the pipeline's file check
(``pipeline.classify_file``) sends every other file through :func:`read_image`.

Conversions done by :func:`read_image`:

- palette (``P``/``PA``): expanded; a transparent colour becomes white;
- alpha (``LA``, ``RGBA``, ``La``, ``RGBa``): composited onto a **white** background (species
  cut-outs on transparent backgrounds then look like product shots, not like black silhouettes);
- grey (``L``, ``1``): replicated to three channels;
- ``CMYK`` (including Adobe's inverted CMYK JPEGs, which PIL un-inverts on reading): converted
  through the embedded ICC profile when there is one, else with PIL's plain formula;
- 16-bit (``I;16``, ``I;16B``, ``I;16L``, ``I``): scaled by the bit range (``value / 257``), not
  clipped; 32-bit float ``F``: ``[0, 1]`` data times 255, ``[0, 255]`` data as is, anything else
  min–max stretched;
- animated GIF / WebP / APNG and multi-page TIFF: the first frame;
- EXIF orientation applied (``ImageOps.exif_transpose``), as phone photos expect.

Decompression bombs: an image with more pixels than the limit (PIL's
``Image.MAX_IMAGE_PIXELS`` by default, about 89 megapixels) raises :class:`ImageReadError`
instead of PIL's easy-to-miss ``DecompressionBombWarning`` (silenced while the reader opens a
file, and only then: the process's warning filters are left as they are); raise the limit with
:func:`set_max_pixels` or resize the file. Truncated files raise too, as long as PIL's
``ImageFile.LOAD_TRUNCATED_IMAGES`` keeps its default ``False`` (set to ``True`` it fills the
missing part with grey silently).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import numbers
import os
import re
import stat
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_species.data import sources as _sources
from keras_species.data.sources import HEIC_ADVICE, HEIC_BRANDS, HEIC_REASON

IMAGE_EXTENSIONS: frozenset[str] = frozenset(_sources.IMAGE_EXTENSIONS)
"""File extensions treated as images (compare lower-cased, e.g. with :func:`is_image_file`): the
folder readers' :data:`keras_species.data.sources.IMAGE_EXTENSIONS`, as a set."""

FORMAT_EXTENSIONS: dict[str, frozenset[str]] = {
    "JPEG": frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}),
    "MPO": frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"}),
    "PNG": frozenset({".png", ".apng"}),
    "GIF": frozenset({".gif"}),
    "BMP": frozenset({".bmp", ".dib"}),
    "WEBP": frozenset({".webp"}),
    "TIFF": frozenset({".tif", ".tiff"}),
}
"""Extensions that match each PIL format (used to count extension mismatches)."""


SIXTEEN_BIT_MODES: frozenset[str] = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I"})
_ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})

_max_pixels: int | None = None  # None: follow PIL's Image.MAX_IMAGE_PIXELS
_unlimited = False
_PIL_WARNING_LOCK = threading.Lock()
"""Held while :func:`pil_warnings_silenced` silences PIL's warnings: ``catch_warnings`` saves and
restores the process's filters, so two threads' scopes must not interleave."""


@contextlib.contextmanager
def pil_warnings_silenced(category: type[Warning] = Warning) -> Iterator[None]:
    """Ignore warnings of ``category`` for the ``with`` block, safely from several threads.

    ``warnings.catch_warnings`` saves and restores the process's filters: two threads' scopes
    that interleave can leave a filter switched on for good (and silence the user's warnings
    too), so every scope of the library's PIL readers holds one lock. Written by hand because
    Python before 3.14 has no thread-local warning filters.

    Args:
        category: the warnings to ignore (default: all).

    Example:
        >>> with pil_warnings_silenced(Image.DecompressionBombWarning):
        ...     pass
    """
    with _PIL_WARNING_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file, the reason and the fix.

    Args:
        path: the file.
        reason: what is wrong with it (e.g. ``"empty file (0 bytes)"``).
        fix: what to do about it; a sensible default is used when omitted.

    Example:
        >>> str(ImageReadError("a.jpg", "empty file (0 bytes)"))[:39]
        'cannot read image a.jpg: empty file (0 '
    """

    def __init__(self, path: str | os.PathLike, reason: str, fix: str | None = None) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.fix = fix or (
            "replace the file with a good copy, or leave it out (audit + clean drop unreadable "
            "files; `keras-species audit DATA --clean-manifest OUT.csv` writes a manifest without them)"
        )
        super().__init__(f"cannot read image {self.path}: {reason}. Fix: {self.fix}")

    def __reduce__(self):  # keep the exception picklable (process pools, tf.py_function)
        return (type(self), (self.path, self.reason, self.fix))


@dataclass
class ImageInfo:
    """What :func:`probe` found out about one file (``error`` is ``None`` when it decodes).

    Attributes:
        path: the file.
        format: PIL's format name by content (``"JPEG"``, ``"PNG"``...), ``None`` if unknown.
        mode: PIL's mode (``"RGB"``, ``"L"``, ``"P"``, ``"CMYK"``, ``"I;16"``...).
        width, height: size in pixels as stored (before EXIF rotation).
        n_frames: number of frames (more than 1 for animations and multi-page TIFFs).
        bytes: file size.
        error: why the file cannot be read, or ``None``.
        sha1: hex digest of the file bytes (exact-duplicate detection).
        orientation: the EXIF orientation tag (1 = upright).
    """

    path: str
    format: str | None = None
    mode: str | None = None
    width: int = 0
    height: int = 0
    n_frames: int = 1
    bytes: int = 0
    error: str | None = None
    sha1: str | None = None
    orientation: int = 1

    @property
    def ok(self) -> bool:
        """True when the file decoded completely."""
        return self.error is None

    @property
    def animated(self) -> bool:
        """True for an animation or multi-page file (MPO camera JPEGs are not counted)."""
        return self.n_frames > 1 and self.format != "MPO"

    @property
    def extension_matches(self) -> bool:
        """True when the file extension fits the format found in its content (or is unknown)."""
        if self.format is None or self.format not in FORMAT_EXTENSIONS:
            return True
        return os.path.splitext(self.path)[1].lower() in FORMAT_EXTENSIONS[self.format]

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (scalars and strings: a shallow copy, which costs a
        tenth of ``dataclasses.asdict``'s deep one; a third of the audit's time at 100,000 files)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` ends in one of :data:`IMAGE_EXTENSIONS` (any case).

    Example:
        >>> is_image_file("ants/IMG 1.JPG"), is_image_file("notes.txt")
        (True, False)
    """
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def checked_max_pixels(n: object) -> int | None:
    """A decompression-bomb limit as an ``int`` (or ``None``: no limit), refused unless a whole
    number above 0 (``True`` was 1 and ``2.5`` was 2 before stop 29; ``read_image`` took -1).

    Args:
        n: the limit in pixels.

    Returns:
        The limit.

    Example:
        >>> checked_max_pixels(10_000), checked_max_pixels(None)
        (10000, None)
    """
    if n is None:
        return None
    if isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0:
        return int(n)
    raise ValueError(f"max pixels must be a whole number above 0, or None for no limit; got {n!r}")


def set_max_pixels(n: int | None) -> None:
    """Set the decompression-bomb limit (pixels per image) for reading and probing.

    Also sets PIL's ``Image.MAX_IMAGE_PIXELS`` so that PIL itself does not refuse an image this
    limit allows. ``None`` removes the limit (only for files you trust).

    Args:
        n: the most pixels (width x height) an image may have, or ``None`` for no limit.

    Example:
        >>> set_max_pixels(200_000_000)   # 200-megapixel scans
        >>> get_max_pixels()
        200000000
        >>> set_max_pixels(89_478_485)    # back to PIL's default
    """
    global _max_pixels, _unlimited
    _max_pixels = checked_max_pixels(n)
    _unlimited = n is None
    Image.MAX_IMAGE_PIXELS = _max_pixels


@contextlib.contextmanager
def using_max_pixels(n: int) -> Iterator[None]:
    """Set the decompression-bomb limit for a ``with`` block (a command's ``--max-pixels``), then
    put back the limit that was set before.

    Args:
        n: the most pixels an image may have inside the block.

    Example:
        >>> with using_max_pixels(200_000_000):
        ...     get_max_pixels()
        200000000
    """
    global _max_pixels, _unlimited
    before = (_max_pixels, _unlimited, Image.MAX_IMAGE_PIXELS)
    set_max_pixels(n)
    try:
        yield
    finally:
        _max_pixels, _unlimited, Image.MAX_IMAGE_PIXELS = before


def max_pixels_flag(n: int | None) -> contextlib.AbstractContextManager:
    """The limit of a command's ``--max-pixels`` for the command's run: :func:`using_max_pixels`
    when the flag was given, the limit in force (unchanged) when it was not.

    Args:
        n: the flag's value, or ``None`` when it was not given.

    Returns:
        A context manager.

    Example:
        >>> with max_pixels_flag(None):
        ...     get_max_pixels() == get_max_pixels()
        True
    """
    return using_max_pixels(n) if n else contextlib.nullcontext()


def add_max_pixels_flag(parser, larger: str = "") -> None:
    """Add the ``--max-pixels N`` flag of the commands that read images (``audit``, ``split``,
    ``shard``, ``predict``), read with :func:`max_pixels_flag`.

    Args:
        parser: the command's ``argparse`` parser.
        larger: what the command does with a larger image, ending its help (``"left out"``).

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser(); add_max_pixels_flag(p, "skipped")
        >>> p.parse_args(["--max-pixels", "100000000"]).max_pixels
        100000000
    """
    from keras_species.config import positive_int

    parser.add_argument("--max-pixels", type=positive_int, default=None, metavar="N",
                        help="decompression-bomb limit in pixels per image (default: PIL's, about "
                             "89 megapixels)" + (f"; larger images are {larger}" if larger else ""))


def get_max_pixels() -> int | None:
    """The current decompression-bomb limit in pixels (``None`` = no limit).

    Returns:
        The value set with :func:`set_max_pixels`, else PIL's ``Image.MAX_IMAGE_PIXELS``.
    """
    if _unlimited:
        return None
    return _max_pixels if _max_pixels is not None else Image.MAX_IMAGE_PIXELS


def too_big_message(w: int, h: int, limit: int) -> tuple[str, str]:
    """Why an image over the decompression-bomb limit is refused, and the fix (one wording for
    :func:`read_image`, :func:`image_info` and the pipeline's file check).

    Args:
        w, h: the image's width and height.
        limit: the limit in pixels.

    Returns:
        ``(reason, fix)``.

    Example:
        >>> too_big_message(200, 100, 10_000)[0]
        '200x100 = 20,000 pixels is over the decompression-bomb limit of 10,000 pixels'
    """
    reason = (
        f"{w}x{h} = {w * h:,} pixels is over the decompression-bomb limit of {limit:,} pixels"
    )
    fix = (
        "if the file is trusted, raise the limit with "
        f"keras_species.data.images.set_max_pixels({w * h}) (or read_image(..., max_pixels=...)), "
        "or resize the file"
    )
    return reason, fix


_OVERSIZED = (
    re.compile(r"([\d,]+) pixels is over the decompression-bomb limit"),  # too_big_message
    re.compile(r"Image size \((\d+) pixels\) exceeds limit"),  # PIL's DecompressionBombError
)


def oversized_pixels(reason: str) -> int | None:
    """The pixel count of a file that a reason says is over the decompression-bomb limit.

    Reads the library's wording (:func:`too_big_message`) and PIL's own
    (``DecompressionBombError``, which PIL raises by itself over twice its limit).

    Args:
        reason: why a file was not read (an :class:`ImageReadError`'s ``reason``, a
            ``dropped.csv`` row's).

    Returns:
        The image's pixels, or ``None`` when the reason is another one.

    Example:
        >>> oversized_pixels("200x100 = 20,000 pixels is over the decompression-bomb limit of 10,000 pixels")
        20000
        >>> oversized_pixels("empty file (0 bytes)") is None
        True
    """
    for pattern in _OVERSIZED:
        found = pattern.search(reason)
        if found:
            return int(found.group(1).replace(",", ""))
    return None


def max_pixels_hint(reasons: Iterable[str], flag: str = "--max-pixels") -> str:
    """What a command adds under its list of files it could not read when some of them are over
    the decompression-bomb limit: how to read them, if they are trusted (or ``""``).

    Args:
        reasons: the reasons of the files left out.
        flag: how the limit is raised where the message is shown (the command's flag).

    Returns:
        One sentence, e.g. ``"1 file is over the decompression-bomb limit of 89,478,485 pixels
        (the largest: 90,000,000 pixels): if you trust it, pass --max-pixels 90000000 to read
        it, or resize it"``.

    Example:
        >>> max_pixels_hint(["empty file (0 bytes)"])
        ''
    """
    sizes = [n for n in map(oversized_pixels, reasons) if n is not None]
    if not sizes:
        return ""
    limit = get_max_pixels()
    one = len(sizes) == 1
    over = f" of {limit:,} pixels" if limit is not None else ""
    largest = f"{max(sizes):,} pixels" if one else f"the largest: {max(sizes):,} pixels"
    it = "it" if one else "them"
    return (f"{'1 file is' if one else f'{len(sizes)} files are'} over the decompression-bomb "
            f"limit{over} ({largest}): if you trust {it}, pass {flag} {max(sizes)} to read {it}, "
            f"or resize {it}")


def pil_bomb_message(error: Exception, limit: int | None = None) -> tuple[str, str]:
    """Why PIL refused an image by itself (``DecompressionBombError``, raised over twice PIL's
    limit with only the pixel count), and the fix, in :func:`too_big_message`'s wording: one
    reason for every oversized file, whichever limit caught it.

    Args:
        error: PIL's ``DecompressionBombError``.
        limit: the limit the reader applies; default :func:`get_max_pixels`.

    Returns:
        ``(reason, fix)``.

    Example:
        >>> err = Image.DecompressionBombError("Image size (40000 pixels) exceeds limit of 10000 "
        ...                                    "pixels, could be decompression bomb DOS attack.")
        >>> pil_bomb_message(err, 5000)[0]
        '40,000 pixels is over the decompression-bomb limit of 5,000 pixels'
    """
    pixels = oversized_pixels(str(error))
    shown = limit if limit is not None else get_max_pixels()
    if pixels is None or shown is None:
        return (f"too large for PIL's decompression-bomb limit ({error})",
                "if the file is trusted, raise the limit with "
                "keras_species.data.images.set_max_pixels(n), or resize the file")
    whose = "the "
    if pixels <= shown and Image.MAX_IMAGE_PIXELS:  # a max_pixels= above PIL's own limit
        whose, shown = "PIL's own ", 2 * Image.MAX_IMAGE_PIXELS
    return (f"{pixels:,} pixels is over {whose}decompression-bomb limit of {shown:,} pixels",
            "if the file is trusted, raise the limit with "
            f"keras_species.data.images.set_max_pixels({pixels}), or resize the file")


def describe_non_image(data: bytes) -> str:
    """What a file that no image reader recognises is, from its first bytes (an HTML page from
    a failed download, text, or an unknown format): one wording for :func:`read_image` and the
    pipeline's file check.

    Args:
        data: the file's bytes (the first 64 are enough).

    Returns:
        The reason, e.g. ``"not an image: the file is text starting 'garbage'"``.

    Example:
        >>> describe_non_image(b"<!DOCTYPE html><html>")
        'not an image: the file is an HTML/XML page (a failed download?)'
    """
    head = data[:64]
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML", b"<?xml")):
        return "not an image: the file is an HTML/XML page (a failed download?)"
    major, compatible = head[8:12], head[16:48]
    if head[4:8] == b"ftyp" and (major in HEIC_BRANDS or (
            major in (b"mif1", b"msf1") and any(b in compatible for b in HEIC_BRANDS))):
        return HEIC_REASON
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an image PIL recognises (unknown or unsupported format)"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"not an image: the file is text starting {text[:30]!r}"
    return "not an image PIL recognises (unknown or unsupported format)"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first 8 bytes of every PNG file."""


def png_checksum_problem(data: bytes) -> str | None:
    """A PNG chunk whose checksum does not match its bytes, in words; ``None`` when every
    chunk up to ``IEND`` checks out (or the data is no PNG, or it is cut short: the decoder
    says that).

    Written by hand because the two decoders disagree: libpng (TensorFlow) refuses a bad
    checksum on the pixel data and ignores one on a text chunk, PIL does the opposite. So the
    audit checks them all, and such a file is corrupt for every reader.

    Args:
        data: the file's bytes.

    Returns:
        The reason, e.g. ``"damaged PNG: bad checksum in its IDAT chunk (a bad copy?)"``.

    Example:
        >>> png_checksum_problem(b"GIF89a") is None
        True
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    i = len(PNG_SIGNATURE)
    while i + 12 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        end = i + 8 + n
        if end + 4 > len(data):
            return None
        if zlib.crc32(data[i + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            kind = data[i + 4 : i + 8].decode("latin-1")
            return f"damaged PNG: bad checksum in its {kind} chunk (a bad copy or download?)"
        if data[i + 4 : i + 8] == b"IEND":
            return None
        i = end + 4
    return None


def _open(data: bytes, path: str, limit: int | None) -> Image.Image:
    """Open image bytes lazily; raise ImageReadError for empty, unknown and oversized files."""
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        # Over PIL's limit, Image.open warns (DecompressionBombWarning); the check below then
        # turns the oversized image into an error naming the file and the fix, so the warning
        # is silenced here, for this call only (the lock: two threads' scopes must not
        # interleave, or the filter would outlive them).
        with pil_warnings_silenced(Image.DecompressionBombWarning):
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, *pil_bomb_message(e, limit)) from e
    except UnidentifiedImageError as e:
        reason = png_checksum_problem(data) or describe_non_image(data)
        raise ImageReadError(path, reason, HEIC_ADVICE if reason == HEIC_REASON else None) from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(path, f"broken image header ({e})") from e
    w, h = im.size
    if limit is not None and w * h > limit:
        reason, fix = too_big_message(w, h, limit)
        raise ImageReadError(path, reason, fix)
    return im


def _read_bytes(path: str) -> bytes:
    try:
        special = special_file_reason(path)
        if special:  # a named pipe would block the read for ever, a device never end it
            raise ImageReadError(path, special, "remove it from the data folder or the list")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise open_error(path, e) from e


def special_file_reason(path: str | os.PathLike) -> str | None:
    """Why a path that is not a regular file (or a link to one) is no image: a named pipe,
    a device or a socket. ``None`` for a regular file, and for one that cannot be stat'ed (the
    open that follows names that).

    Args:
        path: the file.

    Returns:
        The reason, or ``None``.

    Example:
        >>> special_file_reason("/dev/null")
        'a device, not an image file'
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # a folder: open names it
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not an image file"
    if stat.S_ISSOCK(mode):
        return "a socket, not an image file"
    return "a device, not an image file"


def open_error(path: str | os.PathLike, error: OSError) -> ImageReadError:
    """The :class:`ImageReadError` of a file that could not be opened, in the one wording every
    reader uses (``read_image``, the pipeline's file check): a missing file, a link whose target
    is gone, a folder, or the system's reason.

    Args:
        path: the file.
        error: what ``open`` raised.

    Returns:
        The error (its ``reason`` and ``fix``), to raise or to read.

    Example:
        >>> open_error("/no/such.png", FileNotFoundError()).reason
        'file not found'
    """
    path = os.fspath(path)
    if isinstance(error, FileNotFoundError):
        fix = ("point the link at the image, or remove the link" if os.path.islink(path) else
               "check the path (and the manifest's root folder)")
        return ImageReadError(path, missing_file_reason(path), fix)
    if isinstance(error, IsADirectoryError):
        return ImageReadError(path, "is a folder, not a file", "point to an image file")
    return ImageReadError(path, f"cannot open the file ({error.strerror or error})")


def missing_file_reason(path: str | os.PathLike) -> str:
    """Why a file that cannot be found is not read: ``"file not found"``, or, for a link whose
    target is gone (a photo library moved, a link copied from another machine), what it points
    to; a name found only in another Unicode form is named too. One wording for every reader.

    Args:
        path: the file that was not found.

    Returns:
        The reason, e.g. ``"a link to a file that does not exist (/old/disk/x.png)"``.

    Example:
        >>> missing_file_reason("/no/such/file.png")
        'file not found'
    """
    path = os.fspath(path)
    if os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a link to a file that does not exist ({target})"
    return "file not found" + _other_forms_note(path)


def _other_forms_note(path: str) -> str:
    """What "file not found" adds when files whose names differ from ``path``'s only in Unicode
    normalisation lie there (``café.jpg`` asked for in NFC, written by macOS in NFD), or ``""``.
    The readers of CSVs and lists read such a file when it is the only one
    (``sources.resolve_csv_paths``); a path given directly is not replaced."""
    if path.isascii():  # one form only: nothing to look for
        return ""
    # lazy: sources is the heavier module
    from keras_species.data.sources import unicode_form, unicode_variants

    variants = unicode_variants(path)
    if not variants:
        return ""
    names = ", ".join(f"{ascii(v)} ({unicode_form(v)})" for v in variants)
    one = len(variants) == 1
    found = ("a file whose name differs only in Unicode normalisation lies" if one else
             f"{len(variants)} files whose names differ only in Unicode normalisation lie")
    return (f" under its name in {unicode_form(path)}, {ascii(path)}, but {found} there: "
            f"{names}; give the name as the file has it{'' if one else ', or keep one of them'}")


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1


def probe(path: str | os.PathLike, *, max_pixels: int | None = None) -> ImageInfo:
    """Inspect one file completely (header, every pixel of the first frame, hash); never raises.

    The first frame is fully decoded because truncation only shows when the pixel data runs out.

    Args:
        path: the image file.
        max_pixels: decompression-bomb limit; default :func:`get_max_pixels`.

    Returns:
        An :class:`ImageInfo`; ``info.error`` says why the file cannot be read (else ``None``).

    Example:
        >>> info = probe("ants/imageNotFound.gif")   # doctest: +SKIP
        >>> info.format, info.mode, info.error       # doctest: +SKIP
        ('GIF', 'P', None)
    """
    path = os.fspath(path)
    info = ImageInfo(path=path)
    limit = get_max_pixels() if max_pixels is None else checked_max_pixels(max_pixels)
    try:
        data = _read_bytes(path)
        info.bytes = len(data)
        info.sha1 = hashlib.sha1(data).hexdigest()
        damaged = png_checksum_problem(data)
        if damaged:
            raise ImageReadError(path, damaged)
        im = _open(data, path, None)
        info.format = im.format
        info.mode = im.mode
        info.width, info.height = im.size
        info.n_frames = int(getattr(im, "n_frames", 1) or 1)
        if limit is not None and info.width * info.height > limit:
            reason, fix = too_big_message(info.width, info.height, limit)
            raise ImageReadError(path, reason, fix)
        try:
            im.load()
        except OSError as e:
            raise ImageReadError(path, _load_reason(e)) from e
        except Exception as e:  # decoder bugs on hostile files: report, never crash the audit
            raise ImageReadError(path, f"cannot decode ({type(e).__name__}: {e})") from e
        # after load: a PNG's getexif decodes the pixels to find an eXIf chunk after them, and
        # swallows a decoding error, which then left load() nothing to do (a damaged PNG passed)
        info.orientation = _orientation(im)
    except ImageReadError as e:
        info.error = e.reason
    except Exception as e:  # noqa: BLE001 - probe never raises, by contract
        info.error = f"{type(e).__name__}: {e}"
    return info


def _load_reason(e: Exception) -> str:
    text = str(e)
    if "truncated" in text.lower():
        return f"truncated file ({text}); the download or copy was cut short"
    return f"cannot decode the pixel data ({text})"


def _white_composite(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out
        except Exception:  # a broken or unsupported profile: fall back to the plain formula
            pass
    return im.convert("RGB")


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale one-channel high-depth pixels to 0..255 by their bit range (not by clipping)."""
    if mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            out = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            out = arr
        else:
            out = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    if mode == "I" and arr.size and (arr.max() > 65535 or arr.min() < 0):
        # true 32-bit data: stretch its own range
        lo, hi = int(arr.min()), int(arr.max())
        out = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros(arr.shape)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if mode == "I;16S":
        arr = np.clip(arr, 0, 32767) * 2
    # 16-bit data (I;16*, and PIL's "I" for 16-bit PNG/TIFF): 65535 -> 255, 257 per step
    return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)


def _to_rgb(im: Image.Image, path: str) -> Image.Image | np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        if "transparency" in im.info:
            return _white_composite(im)
        return im.convert("RGB")
    if mode in _ALPHA_MODES:
        if mode == "PA":
            im = im.convert("RGBA")
        return _white_composite(im)
    if mode in ("L", "1"):
        return im.convert("L").convert("RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode in SIXTEEN_BIT_MODES or mode == "F":
        grey = _scale_to_uint8(np.asarray(im), mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageReadError(
            path,
            f"image mode {mode!r} cannot be converted to RGB ({e})",
            "convert the file to 8-bit RGB (e.g. with an image editor) or leave it out",
        ) from e


JPEG_SCALES = (8, 4, 2, 1)
"""The reduced scales (1/8, 1/4, 1/2, full) at which libjpeg can decode a JPEG, largest first."""


def jpeg_scale(width: int, height: int, size: tuple[int, int]) -> int:
    """By how much a JPEG of ``width`` x ``height`` is reduced while it is decoded, for an
    output of ``size``: the largest of 8, 4, 2, 1 that leaves both axes at least their output
    size (PIL's ``draft`` rule, which :func:`read_image` applies and the training pipeline's
    ``DecodeJpeg(ratio=...)`` follows, with the same libjpeg pixels).

    Decoding at 1/2 to 1/8 scale averages in the DCT domain, so it antialiases as the area step
    of the resize does, at a fraction of the cost: the 396 ants/bees JPEGs at 128 px took 0.96
    against 1.33 CPU ms an image to decode and resize.

    Args:
        width, height: the stored image's size.
        size: ``(height, width)`` the image will be resized to.

    Returns:
        1, 2, 4 or 8.

    Example:
        >>> jpeg_scale(2000, 1500, (224, 224)), jpeg_scale(500, 375, (224, 224))
        (4, 1)
    """
    fits = min(width // max(1, size[1]), height // max(1, size[0]))
    return next((s for s in JPEG_SCALES if fits >= s), 1)


def header_orientation(im: Image.Image) -> int | None:
    """The EXIF orientation that :func:`read_image` will apply to an opened image, from what PIL
    read of its header: the EXIF block (a JPEG's APP1, a PNG's ``eXIf`` chunk before its
    pixels), a PNG's ImageMagick ``Raw profile type exif`` text, or an XMP packet's
    ``tiff:Orientation`` (PIL's ``getexif`` reads all of them, and ``exif_transpose`` applies
    what it finds). No pixel is decoded: PIL's PNG reader would decode them to look for an
    ``eXIf`` chunk after them, which is therefore not seen here.

    Args:
        im: an image opened with PIL (not loaded).

    Returns:
        The orientation (1 = upright, also when nothing states one or the value is 0 or above 8,
        which PIL does not turn), or ``None`` for a broken EXIF block.

    Example:
        >>> header_orientation(Image.open("portrait_shot_sideways.jpg"))   # doctest: +SKIP
        6
    """
    try:
        value = int(Image.Image.getexif(im).get(0x0112, 1) or 1)  # the base reader: no decoding
    except Exception:  # a broken EXIF block
        return None
    # 0 ("unknown", some cameras) and values past 8 turn nothing in PIL's exif_transpose: upright
    return value if 2 <= value <= 8 else 1


def upright_size(im: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image once :func:`read_image` has turned it upright
    (its EXIF orientation), read from the header only.

    Args:
        im: an image opened with PIL (not loaded).

    Returns:
        ``(width, height)``.

    Example:
        >>> upright_size(Image.open("portrait_shot_sideways.jpg"))   # doctest: +SKIP
        (3000, 4000)
    """
    w, h = im.size
    # on its side; a broken EXIF block (None): read_image keeps the stored orientation
    return (h, w) if header_orientation(im) in (5, 6, 7, 8) else (w, h)


def is_plain_jpeg(im: Image.Image) -> bool:
    """Whether an opened image is a single-picture JPEG, the kind that is decoded at a reduced
    scale (:func:`jpeg_scale`); a multi-picture file (an ``MPF`` block) is read at full size.

    Args:
        im: an image opened with PIL.

    Returns:
        True for a plain JPEG.

    Example:
        >>> is_plain_jpeg(Image.open("bees/photo.jpg"))   # doctest: +SKIP
        True
    """
    return im.format == "JPEG" and "mp" not in im.info


def _draft(im: Image.Image, size: tuple[int, int]) -> None:
    """Have PIL decode a plain JPEG at :func:`jpeg_scale`'s reduced scale for an output of
    ``size`` (height, width) of the upright image."""
    if not is_plain_jpeg(im):
        return
    h, w = size
    if upright_size(im) != im.size:  # the rule applies to the stored image
        h, w = w, h
    im.draft(None, (w, h))


def read_image(
    path: str | os.PathLike, *, max_pixels: int | None = None, draft: tuple[int, int] | None = None
) -> np.ndarray:
    """Read any supported image as an ``(H, W, 3)`` uint8 RGB array (first frame, upright).

    The format is found from the content, so a PNG named ``.jpg`` reads fine. See the module
    docstring for how each mode is converted (alpha is composited onto white).

    Args:
        path: the image file.
        max_pixels: decompression-bomb limit for this call; default :func:`get_max_pixels`.
            If it is above PIL's ``Image.MAX_IMAGE_PIXELS``, use :func:`set_max_pixels` instead.
        draft: ``(height, width)`` the image will be resized to: a JPEG at least twice that
            size is decoded at a reduced scale (:func:`jpeg_scale`), as the training pipeline
            decodes it. ``None``: full size.

    Returns:
        A C-contiguous ``uint8`` array of shape ``(height, width, 3)``.

    Raises:
        ImageReadError: empty, truncated, non-image, oversized or undecodable files, with the
            file, the reason and the fix in the message.

    Example:
        >>> rgb = read_image("bees/ant photos.jpg")   # doctest: +SKIP
        >>> rgb.shape[-1], rgb.dtype                  # doctest: +SKIP
        (3, dtype('uint8'))
    """
    path = os.fspath(path)
    limit = get_max_pixels() if max_pixels is None else checked_max_pixels(max_pixels)
    data = _read_bytes(path)
    im = _open(data, path, limit)
    if draft is not None:
        _draft(im, draft)
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        im.load()
    except OSError as e:
        raise ImageReadError(path, _load_reason(e)) from e
    except Exception as e:
        raise ImageReadError(path, f"cannot decode ({type(e).__name__}: {e})") from e
    try:
        # frame 0 only: copy() detaches it from the (possibly animated) file
        frame = im.copy() if getattr(im, "n_frames", 1) > 1 else im
        try:
            upright = ImageOps.exif_transpose(frame)
        except Exception:  # a malformed EXIF block: keep the stored orientation
            upright = frame
        if upright is None:
            upright = frame
        out = _to_rgb(upright, path)
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(path, f"cannot convert to RGB ({type(e).__name__}: {e})") from e
    arr = np.asarray(out, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageReadError(path, f"unexpected decoded shape {arr.shape}")
    return np.ascontiguousarray(arr)

