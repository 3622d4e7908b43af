"""The tf.data input pipeline: a Manifest in, batches of ``(images, labels[, weights])`` out.

Order of the stages (each one a ``tf.data`` or ``keras.layers`` building block)::

    check files (cheap header probe) → decode → RGB → resize (antialiased) → cache (uint8)
    → shuffle → batch → augment (a batch a call, each image its own draw)
    → batch-augment (MixUp/CutMix) → prefetch

and for evaluation (``training=False``: no shuffle, no augmentation, the manifest's order)::

    check files → decode → RGB → resize → batch → cache (uint8 batches) → prefetch

Images come out as ``float32`` ``(B, H, W, 3)`` RGB in ``0..255``. Model-specific preprocessing
(scaling to ``[-1, 1]``, ImageNet mean/std, ...) is *not* done here: every model of keras-species
carries its own preprocessing layer, so the same dataset feeds any backbone.

Decoding. Every file is classified once, up front, by a cheap check (the PNG/JPEG header read by
hand, else PIL's header parse, plus the file's last bytes to catch truncation); this costs about
5 µs a file from the page cache (1–2% of decoding it; 4.5 µs on the 2,985 fish images here) and
keeps the per-image graph free of Python:

- fast path: :func:`decode_jpeg_png`, one ``DecodeJpeg`` kernel with PIL's accurate DCT, for
  8-bit RGB and grey JPEG and PNG (nearly every file of a species collection), a JPEG at least
  twice the output size at libjpeg's reduced scale (:data:`KIND_JPEG_SCALED`, as PIL's
  ``draft`` reads it in ``predict``); 8-bit GIF (first
  frame) and BMP: ``tf.io.decode_image``. When the data holds only one of these kinds (the usual
  case) the graph has no branch at all: a ``tf.cond`` that sniffs the format, as
  :func:`decode_8bit` must where nothing was checked, costs a branch per image (measured below);
- 16-bit PNG: ``tf.io.decode_png(dtype=uint16)`` divided by 257 (still in the graph);
- PIL fallback (:func:`keras_species.data.images.read_image` through ``tf.numpy_function``) for
  what TensorFlow gets wrong: CMYK JPEG, palette images with transparency, alpha (composited on
  white, as ``read_image`` does), EXIF-rotated JPEGs, WebP, TIFF and other PIL formats;
- unreadable files (empty, truncated, not an image, decompression bomb) are left out with a
  warning naming each one (``on_error="skip"``) or raise
  :class:`~keras_species.data.images.ImageReadError` (``on_error="raise"``). As a last safety net
  a file that passes the check but still fails to decode is dropped by ``Dataset.ignore_errors``,
  so a bad image never ends an epoch.

Resizing (:func:`resize_image`) is antialiased where the image shrinks (area averaging) and
bilinear where it grows, straight from the decoder's ``uint8``. The decode map keeps
:func:`decode_calls` calls in flight (several per core), so that an ordered map does not idle a
core behind a big image.

The cache holds the resized images as ``uint8`` (a quarter of the memory of ``float32``; the
rounding is below half a grey level), and the cast to ``float32`` is done once per batch.
Building a dataset applies :func:`keras_species.data.allocator.tune_malloc` (glibc keeps freed
buffers for the next batch instead of faulting fresh pages in). Measured with
``benchmarks/pipeline_throughput.py`` and ``benchmarks/pipeline_breakdown.py``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_species.data.images import (
    JPEG_SCALES,
    ImageReadError,
    describe_non_image,
    get_max_pixels,
    header_orientation,
    is_plain_jpeg,
    jpeg_scale,
    open_error,
    pil_bomb_message,
    pil_warnings_silenced,
    read_image,
    special_file_reason,
    too_big_message,
)
from keras_species.data.images import PNG_SIGNATURE as _PNG_SIGNATURE
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError, require_manifest
from keras_species.jsonfile import read_json_file

LABEL_MODES = ("auto", "sparse", "onehot", "multihot", "none")
RESIZE_MODES = ("stretch", "pad", "crop")

KIND_FAST = 0
"""8-bit JPEG or PNG, RGB or grey: :func:`decode_jpeg_png` (one kernel, no branch)."""
KIND_PNG16 = 1
"""16-bit grey PNG: ``tf.io.decode_png(dtype=uint16) / 257``, rounded to ``uint8`` as
:func:`keras_species.data.images.read_image` rounds it, so training and ``predict`` see the same
pixels. A 16-bit RGB PNG is :data:`KIND_PIL`: PIL reads it as 8-bit RGB (each value's high
byte), and both read it through PIL."""
KIND_PIL = 2
"""Read by :func:`keras_species.data.images.read_image` in ``tf.numpy_function``."""
KIND_GIF_BMP = 3
"""8-bit GIF (first frame) or BMP: ``tf.io.decode_image`` (``DecodeJpeg`` refuses BMPs and
animated GIFs)."""
KIND_BAD = -1
"""Unreadable: left out (``on_error="skip"``) or raised (``on_error="raise"``)."""
KIND_JPEG_SCALED = {2: 4, 4: 5, 8: 6}
"""Kinds of a plain JPEG decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``DecodeJpeg(ratio=...)``),
by scale: given by :func:`check_files` when it knows the output size
(:func:`keras_species.data.images.jpeg_scale`), in place of :data:`KIND_FAST`."""

_TAILS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND", "GIF": b"\x3b"}
_FAST_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP"})


# ---------------------------------------------------------------------------------- file check
def _full_check(path: str) -> tuple[int, str]:
    """Decode the whole file with PIL: for files whose header or tail looks wrong."""

    try:
        read_image(path)
    except ImageReadError as e:
        return KIND_BAD, e.reason
    return KIND_PIL, ""


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _exif_orientation(tiff: bytes) -> int | None:
    """EXIF orientation from a TIFF block (``None`` when it cannot be read here)."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    offset = int.from_bytes(tiff[4:8], order)
    if offset + 2 > len(tiff):
        return None
    for k in range(int.from_bytes(tiff[offset : offset + 2], order)):
        entry = offset + 2 + 12 * k
        if entry + 12 > len(tiff):
            return None
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:
            kind = int.from_bytes(tiff[entry + 2 : entry + 4], order)
            count = int.from_bytes(tiff[entry + 4 : entry + 8], order)
            width = {3: 2, 4: 4}.get(kind)  # SHORT, as EXIF writes it, or LONG (valid, rare)
            if count != 1 or width is None:
                return None  # another layout: PIL reads it (a LONG read as a SHORT gave 0 on MM)
            value = int.from_bytes(tiff[entry + 8 : entry + 8 + width], order)
            return value if 2 <= value <= 8 else 1  # 0 ("unknown"), 9...: upright, as PIL reads them
    return 1


_PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_ORIENTATION_TEXTS = (b"Raw profile type exif\x00", b"XML:com.adobe.xmp\x00")
"""Keywords of PNG text chunks that may state an orientation: ImageMagick's hex EXIF and XMP."""
_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # PIL's pattern (Image.getexif)


def _png_says_no_orientation(head: bytes) -> bool:
    """Whether the chunks of a PNG's ``head`` reach its first ``IDAT`` with none that may state
    an orientation: an ``eXIf`` chunk, or a text chunk holding ImageMagick's EXIF or an XMP
    packet (PIL's ``getexif`` reads all three, and :func:`keras_species.data.images.read_image`
    turns the image by what it finds; TensorFlow ignores them). ``False`` when the head ends
    first (a large profile or text block): PIL decides then."""
    i = len(_PNG_SIGNATURE)
    while i + 8 <= len(head):
        chunk = head[i + 4 : i + 8]
        if chunk == b"IDAT":
            return True
        if chunk == b"eXIf" or (chunk in _PNG_TEXT_CHUNKS and head[i + 8 : i + 40].startswith(_PNG_ORIENTATION_TEXTS)):
            return False
        i += 12 + int.from_bytes(head[i : i + 4], "big")  # length, type, data, CRC
    return False


_RAW_EXIF, _XMP_TEXT = _PNG_ORIENTATION_TEXTS


def _late_exif(tail: bytes) -> bool:
    """Whether a PNG's last bytes hold, after its pixels (the last ``IDAT``), a chunk that may
    state an orientation: ``eXIf``, or ImageMagick's EXIF or XMP text (PIL finds them all).
    Three ``rfind`` calls, 0.3 µs (the check runs on every file: a regular expression's
    alternation, or ``in`` with short words, cost twice as much)."""
    last = max(tail.rfind(b"eXIf"), tail.rfind(_RAW_EXIF), tail.rfind(_XMP_TEXT))
    return last >= 0 and last > tail.rfind(b"IDAT")


def _bmp_size(head: bytes) -> int:
    """The bytes an uncompressed Windows BMP needs (pixel offset + rows), from its first 34
    bytes; 0 when it cannot tell (compressed, OS/2). A BMP has no end marker, so a copy cut
    short shows only against this."""
    if len(head) < 34 or int.from_bytes(head[14:18], "little") < 40:
        return 0
    if int.from_bytes(head[30:34], "little") not in (0, 3):  # BI_RGB, BI_BITFIELDS
        return 0
    width = int.from_bytes(head[18:22], "little", signed=True)
    height = abs(int.from_bytes(head[22:26], "little", signed=True))
    bits = int.from_bytes(head[28:30], "little")
    return int.from_bytes(head[10:14], "little") + (width * bits + 31) // 32 * 4 * height


def _tf_reads_bmp(head: bytes) -> bool:
    """Whether TensorFlow's BMP decoder reads this BMP as PIL does: a Windows header (40 bytes
    or more; not OS/2's 12), 24 or 32 bits a pixel, no compression or bit fields. PIL reads
    16-bit (RGB555/565) and bit-field BMPs as RGB too, where TensorFlow fails or swaps channels."""
    if len(head) < 34:
        return False
    header = int.from_bytes(head[14:18], "little")
    bits = int.from_bytes(head[28:30], "little")
    compression = int.from_bytes(head[30:34], "little")
    return header >= 40 and bits in (24, 32) and compression == 0


def _raw_kind(head: bytes, tail: bytes, limit: int | None) -> tuple[int | None, tuple[int, int] | None]:
    """Kind of a plain PNG or JPEG from its first and last bytes (``None``: let PIL decide), and
    the ``(width, height)`` of a plain single-picture JPEG that TensorFlow decodes (else
    ``None``), for :func:`jpeg_scale`.

    Written by hand because PIL's header parse costs about as much as TensorFlow's decoding of
    a small image; reading the PNG IHDR or walking the JPEG markers up to the first scan is
    ~20x cheaper and covers nearly every file of a species collection.
    """
    if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR" and len(head) >= 26:
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        depth, colour = head[24], head[25]
        if b"IEND" not in tail[-64:] or (limit is not None and width * height > limit):
            return None, None
        if not _png_says_no_orientation(head):  # it may be turned (read_image turns it)
            return None, None
        if colour in (0, 2) and depth == 8:  # 8-bit grey or RGB, no alpha
            return KIND_FAST, None
        if colour == 0 and depth == 16:  # 16-bit grey; 16-bit RGB goes to PIL, as predict reads it
            return KIND_PNG16, None
        return None, None  # palette, alpha, low bit depth
    if head[:3] != b"\xff\xd8\xff" or b"\xff\xd9" not in tail[-64:]:
        return None, None
    header = _jpeg_header(head, limit)
    return (None, None) if header is None else _jpeg_kind(*header)


_JpegHeader = tuple[tuple[int, int], int, bool, int, int]
"""What :func:`_jpeg_header` reads: ``(frame, orientation, multi_picture, width, height)``,
``frame`` the precision and the number of components."""


def _jpeg_header(head: bytes, limit: int | None) -> _JpegHeader | None:
    """The header blocks of a JPEG read by hand, up to its first scan (``None``: let PIL decide,
    e.g. two EXIF blocks, one past ``head``, an XMP orientation, a size over ``limit``)."""
    i, orientation, multi_picture, exif_blocks = 2, 1, False, 0
    frame: tuple[int, int] | None = None
    width = height = 0
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(head[i + 2 : i + 4], "big")
        if marker == 0xE1 and head[i + 4 : i + 10] == b"Exif\x00\x00":
            exif_blocks += 1
            if i + 2 + length > len(head) or exif_blocks > 1:  # which block counts: PIL decides
                return None
            orientation = _exif_orientation(head[i + 10 : i + 2 + length])
            if orientation is None:
                return None
        elif marker == 0xE1 and head[i + 4 : i + 4 + len(_XMP_APP1)] == _XMP_APP1:
            # an XMP packet's tiff:Orientation counts where EXIF states none (PIL's getexif):
            # one that is not upright, or a packet past the head, goes to PIL
            stated = _XMP_ORIENTATION.search(head, i + 4, i + 2 + length)
            if i + 2 + length > len(head) or (stated is not None and stated[2] != b"1"):
                return None
        elif marker == 0xE2 and head[i + 4 : i + 8] == b"MPF\x00":
            multi_picture = True  # a multi-picture file (PIL's "MPO"): decoded at full size, as PIL does
        elif marker in _SOF_MARKERS:
            if i + 10 > len(head):
                return None
            frame = head[i + 4], head[i + 9]  # precision, components
            height = int.from_bytes(head[i + 5 : i + 7], "big")
            width = int.from_bytes(head[i + 7 : i + 9], "big")
            if limit is not None and width * height > limit:
                return None
            # no APPn or COM block between here and the scan (whose FF DA such a block could also
            # hold): the rest is tables, decide now; else walk on (two short searches: a walk of
            # the tables costs more)
            scan = head.find(b"\xff\xda", i + 2)
            if scan > 0 and _APP_OR_COM.search(head, i + 2, scan) is None:
                return frame, orientation, multi_picture, width, height
        elif marker == 0xDA:  # start of scan: every header block read (PIL reads an EXIF block
            if frame is None:  # after the frame header too, so the walk goes on to here)
                return None
            return frame, orientation, multi_picture, width, height
        i += 2 + length
    return None


_APP_OR_COM = re.compile(rb"\xff[\xe0-\xef\xfe]")
"""A JPEG APPn (EXIF, XMP, ICC...) or COM marker."""


def _jpeg_kind(frame: tuple[int, int], orientation: int, multi_picture: bool, width: int, height: int
               ) -> tuple[int, tuple[int, int] | None]:
    """:func:`_raw_kind`'s answer for a JPEG whose header blocks it has read."""
    if frame[0] == 8 and frame[1] in (1, 3) and orientation == 1:  # 8-bit grey or YCbCr, upright
        return KIND_FAST, (None if multi_picture else (width, height))
    return KIND_PIL, None  # CMYK/YCCK, 12-bit, or rotated by EXIF


_HEAD = 4096
"""Bytes read from the start of a file by the check: a PNG's IHDR, most JPEG headers up to the first scan."""
_TAIL = 256
"""Bytes read from the end of a file by the check: the end markers are looked for in the last
64 (an image cut short lacks them), a PNG's ``eXIf`` chunk after its pixels in all of them (an
orientation-only block fits; 1 KiB would cost 5% more check time on small PNGs, 4 KiB 15%)."""
_LONG_HEAD = 65536
"""Read again for JPEGs whose frame header lies further in (after a large EXIF block)."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
"""Flags of the check's ``os.open``, looked up once: ``getattr`` with a default raises and
swallows an ``AttributeError`` where ``O_BINARY`` is missing (POSIX), 0.46 µs a file (a tenth
of the check). ``O_NONBLOCK`` changes nothing for a file; a named pipe named like an image
opens at once and reads empty, where a blocking open waited for a writer for ever."""


_PNG_TAIL = 16384
"""The most a PNG's tail read stretches back to reach its last ``IDAT`` chunk's header."""


def _read_ends(path: str, head_bytes: int = _HEAD) -> tuple[bytes, bytes, int, int | None]:
    """First ``head_bytes``, last bytes and size of a file, with raw ``os`` calls (no buffered
    file object: its set-up costs more than the two reads of a small image). The last bytes are
    :data:`_TAIL` of them, or for a PNG from where its last ``IDAT`` chunk would start if nothing
    followed the pixels (:func:`_last_idat`; up to :data:`_PNG_TAIL` bytes), so that the tail
    tells whether anything does (one read: a second read of 8 bytes cost more than 8 KiB more).
    The fourth value is that start (``None`` for anything but such a PNG)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        head = os.read(fd, head_bytes)
        if len(head) < head_bytes:
            last = _last_idat(head, len(head)) if head.startswith(_PNG_SIGNATURE) else None
            return head, head[-_TAIL:], len(head), last
        size = os.lseek(fd, 0, os.SEEK_END)
        end = max(size - _TAIL, 0)
        last = _last_idat(head, size) if head.startswith(_PNG_SIGNATURE) else None
        if last is not None and len(head) <= last < end and size - last <= _PNG_TAIL:
            end = last
        return head, os.pread(fd, size - end, end), size, last
    finally:
        os.close(fd)


def _first_idat(head: bytes) -> int | None:
    """Where a PNG's first ``IDAT`` chunk starts, if within ``head``."""
    i = len(_PNG_SIGNATURE)
    while i + 8 <= len(head) and head[i + 4 : i + 8] != b"IDAT":
        i += 12 + int.from_bytes(head[i : i + 4], "big")
    return i if i + 8 <= len(head) else None


def _last_idat(head: bytes, size: int) -> int | None:
    """Where a PNG's last ``IDAT`` chunk would start if its pixels ended at ``IEND``, from the
    first ``IDAT`` in ``head``: encoders (libpng, PIL) write chunks of one length but the last,
    so it is the one chunk start that leaves the last chunk 1 to that length long."""
    i = _first_idat(head)
    if i is None:
        return None
    step = 12 + int.from_bytes(head[i : i + 4], "big")
    rest = size - 12 - i  # from the first IDAT to IEND
    if rest <= step:
        return i
    return i + (rest - 13) // step * step


def _open_failure(path: str, error: OSError) -> str:
    """Why a file could not be opened, in :func:`keras_species.data.images.read_image`'s words."""

    return open_error(path, error).reason


def classify_file(path: str, max_pixels: int | None | bool = False) -> tuple[int, str]:
    """Decide, cheaply, how one image file is decoded.

    Plain PNG and JPEG files are recognised from their first 4 KiB (64 KiB for a JPEG whose
    headers reach further) and last 256 bytes (IHDR, or the JPEG markers up to the first scan
    with the EXIF orientation); anything else goes
    through PIL's header parse. No pixel is decoded, except for files whose end looks truncated,
    which PIL decodes fully to confirm.

    Args:
        path: the image file.
        max_pixels: the decompression-bomb limit; default: the current one
            (:func:`keras_species.data.images.get_max_pixels`).

    Returns:
        ``(kind, reason)``: ``kind`` is :data:`KIND_FAST`, :data:`KIND_GIF_BMP`,
        :data:`KIND_PNG16`, :data:`KIND_PIL`
        or :data:`KIND_BAD`; ``reason`` says why a file is bad (else ``""``).

    Example:
        >>> classify_file("cod/fish_1_0.png")   # doctest: +SKIP
        (0, '')
    """
    if max_pixels is False:

        max_pixels = get_max_pixels()
    return _classify(path, max_pixels)[:2]


def _classify(path: str, limit: int | None) -> tuple[int, str, tuple[int, int] | None]:
    """:func:`classify_file`, plus the ``(width, height)`` of a plain single-picture JPEG that
    TensorFlow decodes (``None`` for anything else), which :func:`jpeg_scale` reads."""
    try:
        head, tail, size, last = _read_ends(path)
    except OSError as e:  # a FIFO with a writer, a socket: named as read_image names them
        return KIND_BAD, special_file_reason(path) or _open_failure(path, e), None
    if size < len(head) or size == 0:  # a device's end is 0; a pipe reads empty
        return KIND_BAD, special_file_reason(path) or "empty file (0 bytes)", None
    kind, jpeg_size = _raw_kind(head, tail, limit)
    if kind is None and len(head) < size and head[:3] == b"\xff\xd8\xff":
        try:  # a JPEG whose frame header lies past the first bytes (a large EXIF block)
            head = _read_ends(path, _LONG_HEAD)[0]
        except OSError as e:
            return KIND_BAD, _open_failure(path, e), None
        kind, jpeg_size = _raw_kind(head, tail, limit)
    if kind in (KIND_FAST, KIND_PNG16) and head.startswith(_PNG_SIGNATURE) and _png_late_orientation(
            path, head, tail, size, last):
        return KIND_PIL, "", None  # read_image finds it by decoding, and turns the image
    if kind is not None:
        return kind, "", jpeg_size
    return _classify_with_pil(path, size, limit)


_LATE_READS = 4
"""Chunk headers :func:`_png_late_orientation` reads from the file beyond the two ends the check
has read; past them it falls back to :func:`_late_exif` on the tail."""


def _png_late_orientation(path: str, head: bytes, tail: bytes, size: int, last: int | None) -> bool:
    """Whether a PNG holds, after its pixels, a chunk that may state an orientation: ``eXIf``,
    or ImageMagick's EXIF or XMP text, which PIL finds by decoding (and ``read_image`` turns
    the image by). Walks the chunks from the first ``IDAT`` to ``IEND``: their headers lie in
    the ``head`` and ``tail`` already read for a small PNG (one ``IDAT``: no read at all), else
    up to :data:`_LATE_READS` more are read; then the tail alone decides. Before stop 29 only the
    last 256 bytes were searched, which an XMP packet (over 256 bytes) never fits.

    First, in one step: when the chunk where the last ``IDAT`` would start if nothing followed
    the pixels (:func:`_last_idat`; :func:`_read_ends` reads the tail from there) is an ``IDAT``
    that ends at ``IEND``, nothing follows them (``last``, as :func:`_read_ends` gives it)."""
    if last is not None:
        start = size - len(tail)
        found = head[last : last + 8] if last + 8 <= len(head) else tail[last - start : last - start + 8]
        if found[4:8] == b"IDAT" and last + 12 + int.from_bytes(found[:4], "big") == size - 12:
            return False
    i = _first_idat(head)
    if i is None:
        return _late_exif(tail)
    start, fd, reads = size - len(tail), None, 0
    try:
        while i + 8 <= size:
            if i + 8 <= len(head):
                chunk = head[i : i + 48]
            elif i >= start:
                chunk = tail[i - start : i - start + 48]
            elif reads < _LATE_READS:
                if fd is None:
                    fd = os.open(path, _OPEN_FLAGS)
                chunk, reads = os.pread(fd, 48, i), reads + 1
            else:
                return _late_exif(tail)
            kind = chunk[4:8]
            if kind == b"IEND" or len(chunk) < 8:
                return False
            if kind == b"eXIf" or (kind in _PNG_TEXT_CHUNKS and chunk[8:].startswith(_PNG_ORIENTATION_TEXTS)):
                return True
            i += 12 + int.from_bytes(chunk[:4], "big")
        return False
    except OSError:
        return _late_exif(tail)
    finally:
        if fd is not None:
            os.close(fd)


def _classify_with_pil(path: str, size: int, limit: int | None) -> tuple[int, str, tuple[int, int] | None]:
    """The general check: PIL's header parse (every format PIL knows), as :func:`_classify`
    answers. The reasons of a bad file are :func:`keras_species.data.images.read_image`'s, so
    that the audit, ``predict``, ``shard`` and training name it alike."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            head = f.read(64)
            f.seek(max(0, size - _TAIL))
            tail = f.read(_TAIL)
            f.seek(0)
            with pil_warnings_silenced():  # thread-safe: check_files may run on threads
                im = Image.open(f)
                fmt, mode, info = im.format, im.mode, im.info
                width, height = im.size
                plain_jpeg = is_plain_jpeg(im)
                # a GIF whose first frame does not cover its canvas: TensorFlow returns the
                # frame's box, PIL (read_image) the whole canvas
                partial_gif = fmt == "GIF" and bool(im.tile) and tuple(im.tile[0][1]) != (0, 0, width, height)
                orientation = header_orientation(im)  # EXIF, ImageMagick's or XMP's
                orientation = 0 if orientation is None else orientation  # broken: PIL decides later
    except UnidentifiedImageError:
        return KIND_BAD, describe_non_image(head), None
    except Image.DecompressionBombError as e:  # over twice PIL's limit: as any oversized file
        return KIND_BAD, pil_bomb_message(e, limit)[0], None
    except Exception as e:  # noqa: BLE001 - any failure to open means "not a readable image"
        return KIND_BAD, f"broken image header ({str(e) or type(e).__name__})", None
    if limit is not None and width * height > limit:
        return KIND_BAD, too_big_message(width, height, limit)[0], None
    marker = _TAILS.get(fmt or "")
    if (marker is not None and marker not in tail[-64:]) or (fmt == "BMP" and size < _bmp_size(head)):
        return (*_full_check(path), None)
    if fmt == "PNG" and _png_late_orientation(path, *_read_ends(path)):
        return KIND_PIL, "", None  # read_image finds it by decoding, and turns the image
    if (fmt not in _FAST_FORMATS and fmt != "MPO") or partial_gif:
        return KIND_PIL, "", None
    if orientation != 1:
        return KIND_PIL, "", None  # TF ignores EXIF orientation
    if fmt == "PNG" and head.startswith(_PNG_SIGNATURE) and head[24] == 16:
        # 16-bit PNG (IHDR bit depth): grey is scaled by 1/257 here, as read_image scales it; RGB
        # (PIL keeps each value's high byte) and alpha (white composite) are read by PIL
        return (KIND_PNG16, "", None) if head[25] == 0 and "transparency" not in info else (KIND_PIL, "", None)
    if mode not in ("RGB", "L") and not (mode == "P" and "transparency" not in info):
        return KIND_PIL, "", None  # CMYK, alpha, transparent palette, 1-bit, I;16, ...
    if fmt == "BMP" and (mode != "RGB" or not _tf_reads_bmp(head)):
        return KIND_PIL, "", None  # TF decodes only uncompressed 24/32-bit Windows BMPs
    if fmt in ("GIF", "BMP"):
        return KIND_GIF_BMP, "", None
    # a plain JPEG (not a multi-picture file) may be decoded at a reduced scale, as read_image does
    return KIND_FAST, "", ((width, height) if plain_jpeg else None)


def check_files(
    paths: Sequence[str], workers: int | None = None, *, image_size: int | Sequence[int] | None = None
) -> tuple[np.ndarray, dict[str, str]]:
    """Classify every file with :func:`classify_file`.

    Args:
        paths: image files.
        workers: threads. Default 1: from a local disk the check is bound by the Python
            interpreter (about 5 µs a file), and threads only add contention (2 or 4 threads
            took 1.5–8x as long here); use 8 or more for network file systems.
        image_size: the size the images will be resized to (``size`` or ``(height, width)``):
            a plain JPEG at least twice as large on both axes gets the kind of its reduced
            decoding scale (:data:`KIND_JPEG_SCALED`). ``None``: :data:`KIND_FAST`.

    Returns:
        ``(kinds, bad)``: an int array of kinds and ``{path: reason}`` for unreadable files.

    Example:
        >>> kinds, bad = check_files(manifest.paths)   # doctest: +SKIP
    """

    workers = workers or 1
    limit = get_max_pixels()
    if len(paths) < 64 or workers == 1:
        results = [_classify(p, limit) for p in paths]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda p: _classify(p, limit), paths, chunksize=32))
    kinds = np.array([k for k, _, _ in results], dtype=np.int32)
    if image_size is not None:
        out = size_pair(image_size)
        for i, (_, _, jpeg) in enumerate(results):
            scale = 1 if jpeg is None else jpeg_scale(*jpeg, out)
            if scale > 1:
                kinds[i] = KIND_JPEG_SCALED[scale]
    bad = {p: r for p, (k, r, _) in zip(paths, results) if k == KIND_BAD}
    return kinds, bad


def _report_bad(bad: dict[str, str], on_error: str) -> None:
    if not bad:
        return
    if on_error == "raise":

        path, reason = next(iter(bad.items()))
        raise ImageReadError(path, reason, "remove the file or pass on_error='skip'")
    shown = list(bad.items())[:SHOWN_BAD]  # 20,000 of a dropped mount printed 20,000 lines
    lines = "\n".join(f"  {p}: {r}" for p, r in shown)
    more = f"\n  ... and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
    warnings.warn(
        f"skipping {len(bad)} unreadable image(s) (run `keras-species audit` for a full report):\n{lines}{more}",
        stacklevel=3,
    )


SHOWN_BAD = 20
"""Unreadable files a dataset's warning names (the rest are counted; the audit lists all)."""


# ---------------------------------------------------------------------------------- labels
def resolve_label_mode(label_mode: str, multilabel: bool, any_labelled: bool, soft: bool) -> str:
    """The label mode ``"auto"`` stands for, given the data and whether labels must be float.

    Args:
        label_mode: one of :data:`LABEL_MODES`.
        multilabel: the manifest is multi-label.
        any_labelled: some image carries a label.
        soft: label smoothing or MixUp/CutMix is on (labels must be float vectors).

    Returns:
        ``"sparse"``, ``"onehot"``, ``"multihot"`` or ``"none"``.

    Example:
        >>> resolve_label_mode("auto", False, True, soft=True)
        'onehot'
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode={label_mode!r}: choose one of {LABEL_MODES}")
    if label_mode != "auto":
        return label_mode
    if multilabel:
        return "multihot"
    if not any_labelled:
        return "none"
    return "onehot" if soft else "sparse"


def _smoothing_ok(value: object) -> bool:
    """A label smoothing: a number in [0, 1) (``"0.1"`` failed with a bare ``TypeError``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value < 1.0


def encode_labels(manifest: Manifest, label_mode: str, label_smoothing: float = 0.0, *,
                  onehot_as_indices: bool = False) -> np.ndarray | None:
    """Labels of ``manifest`` as the arrays the pipeline yields.

    Args:
        manifest: the images.
        label_mode: ``"sparse"`` (int32 class index), ``"onehot"`` (float32, smoothed:
            ``y (1 - s) + s / C``), ``"multihot"`` (float32, smoothed like Keras'
            ``BinaryCrossentropy``: ``y (1 - s) + s / 2``) or ``"none"``.
        label_smoothing: ``s`` above, in ``[0, 1)``.
        onehot_as_indices: for ``"onehot"``, check as ``"onehot"`` but return the class indices
            (int32), which :func:`finish_dataset` expands a batch at a time.

    Returns:
        The label array, or ``None`` for ``"none"``.

    Raises:
        ManifestError: unlabelled images with a label mode other than ``"none"``, or a
            multi-label manifest with ``"sparse"``/``"onehot"``.

    Example:
        >>> encode_labels(Manifest(["a"], np.array([1]), ["x", "y"]), "onehot", 0.1).tolist()
        [[0.05000000074505806, 0.949999988079071]]
    """
    if label_mode == "none":
        return None
    if not _smoothing_ok(label_smoothing):
        raise ValueError(f"label_smoothing={label_smoothing!r} must be a number in [0, 1)")
    if not manifest.multilabel and (manifest.labels == UNLABELLED).any():
        n = int((manifest.labels == UNLABELLED).sum())
        first = manifest.paths[int(np.flatnonzero(manifest.labels == UNLABELLED)[0])]
        raise ManifestError(
            f"{n} unlabelled image(s) (e.g. {first}) with label_mode={label_mode!r}: "
            "drop them (manifest.subset(manifest.labelled_mask)) or use label_mode='none'"
        )
    if label_mode == "sparse":
        if manifest.multilabel:
            raise ManifestError("a multi-label manifest needs label_mode='multihot' (or 'auto')")
        if label_smoothing:
            raise ValueError("label smoothing needs float labels: use label_mode='onehot'")
        return manifest.labels.astype(np.int32)
    if label_mode == "onehot":
        if manifest.multilabel:
            raise ManifestError("a multi-label manifest needs label_mode='multihot' (or 'auto')")
        if onehot_as_indices:
            return manifest.labels.astype(np.int32)
        y = manifest.label_matrix().astype(np.float32)
        return y * (1.0 - label_smoothing) + label_smoothing / manifest.num_classes
    if label_mode == "multihot":
        y = manifest.label_matrix().astype(np.float32)
        return y * (1.0 - label_smoothing) + label_smoothing / 2.0
    raise ValueError(f"label_mode={label_mode!r}: choose one of {LABEL_MODES}")


# ---------------------------------------------------------------------------------- weights
_WEIGHTS_FIX = ('write a JSON object {"class name": weight, ...} (weights are numbers >= 0), or '
                "use --class-weight balanced or none")


def _load_weight_mode(mode: str | dict | os.PathLike) -> str | dict:
    """``"balanced"``, or the ``{class: weight}`` dict of ``mode`` (a dict or a JSON file),
    checked: a damaged file or a weight that is not a number >= 0 is refused in one line."""
    if isinstance(mode, dict):
        doc, where = mode, "class weights"
    else:
        if not isinstance(mode, str | os.PathLike):
            raise ValueError(f"class weights of type {type(mode).__name__}: give 'balanced', a dict "
                             "{class: weight}, a JSON file path, or one weight per image (an array)")
        text = os.fspath(mode)
        if text == "balanced":
            return text
        if os.path.isdir(text):
            raise ValueError(f"class weights {text} is a folder: give a JSON file of "
                             "{class: weight}, 'balanced' or a dict")
        if not os.path.isfile(text):
            looks_like_file = text.lower().endswith(".json") or os.sep in text or "/" in text
            if looks_like_file:  # a path with a typo: say that it is missing
                raise ValueError(f"class weights file {text} does not exist: check the path, or "
                                 "use 'balanced' or a dict")
            raise ValueError(f"class weight mode {text!r}: use 'balanced', a dict or a JSON file path")
        doc, reason = read_json_file(text, dict)
        if reason:
            raise ValueError(f"class weights {text} cannot be read ({reason}): {_WEIGHTS_FIX}")
        where = f"class weights {text}"
    for name, weight in doc.items():
        number = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
        if not number or not np.isfinite(weight) or weight < 0:
            shown = repr(weight) if isinstance(mode, dict) else json.dumps(weight)  # a file: JSON
            raise ValueError(f"{where}: the weight of {name!r} is {shown}, not a number >= 0; "
                             f"{_WEIGHTS_FIX}")
    return doc


def class_balance_weights(
    manifest: Manifest,
    mode: str | dict[str, float] | os.PathLike = "balanced",
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Per-sample weights that balance the classes, to pass as the pipeline's ``sample_weights``.

    Why not Keras' ``class_weight``: Keras 3 refuses ``class_weight`` for models with more than
    one output, and for one-hot, multi-hot or soft (MixUp/CutMix, label smoothing) targets it
    takes the ``argmax`` of the label to find "the" class, which gives wrong weights for every
    multi-label or mixed sample. A per-sample weight computed here and yielded by the dataset is
    exact in all these cases.

    Single-label (``"balanced"``): ``n / (C * count_c)``, sklearn's
    ``compute_class_weight("balanced")`` over the classes present. Multi-label: each sample's
    positive tags are counted as sklearn's "samples" (a tag-free row counts once for a "no tag"
    pseudo-class), giving one inverse-frequency weight per tag; a sample gets the **mean** of
    its positive tags' weights (the mean rather than the max, so that a common tag beside a rare
    one tempers the weight instead of the image counting as fully rare), and a tag-free sample
    the weight of the "no tag" set, at most that of the rarest tag (a set of one or two
    tag-free images would otherwise outweigh whole tags, with no output of its own to learn).
    Unlabelled single-label rows get 1.

    Args:
        manifest: the (training) images.
        mode: ``"balanced"``, a dict ``{class name: weight}`` (missing classes weigh 1; the key
            ``"__none__"`` sets the weight of tag-free multi-label rows), or the path of a JSON
            file holding such a dict.
        normalize: rescale so that the mean weight over labelled samples is 1 (keeps the
            learning rate's meaning).

    Returns:
        ``float32`` array of shape ``(N,)``.

    Example:
        >>> m = Manifest(list("abcd"), np.array([0, 0, 0, 1]), ["cod", "eel"])
        >>> [round(float(w), 3) for w in class_balance_weights(m)]
        [0.667, 0.667, 0.667, 2.0]
    """
    from sklearn.utils.class_weight import compute_class_weight

    mode = _load_weight_mode(mode)
    n = len(manifest)
    names = manifest.class_names
    if isinstance(mode, dict):
        unknown = [k for k in mode if k not in names and k != "__none__"]
        if unknown:
            raise ValueError(f"class weights for unknown classes {unknown}; classes are {names}")
        table = np.array([float(mode.get(c, 1.0)) for c in names], np.float64)
        none_weight = float(mode.get("__none__", 1.0))
    else:
        if manifest.multilabel:
            rows, cols = np.nonzero(manifest.labels)
            free = manifest.labels.sum(axis=1) == 0
            y = np.concatenate([cols, np.full(int(free.sum()), manifest.num_classes)])
        else:
            y = manifest.labels[manifest.labels != UNLABELLED]
        if y.size == 0:
            return np.ones(n, np.float32)
        present = np.unique(y)
        w = compute_class_weight("balanced", classes=present, y=y)
        full = np.ones(manifest.num_classes + 1, np.float64)
        full[present] = w
        table, none_weight = full[:-1], float(full[-1])
        if manifest.multilabel and present.size > 1:
            # no heavier than the rarest tag: the "no tag" set has no output of its own, and one
            # tag-free image weighed 67, 15% of the aquarium training set's weight (stop 29)
            none_weight = min(none_weight, float(w[present < manifest.num_classes].max()))
    if manifest.multilabel:
        lab = manifest.labels.astype(np.float64)
        k = lab.sum(axis=1)
        out = np.where(k > 0, (lab @ table) / np.maximum(k, 1), none_weight)
        labelled = np.ones(n, bool)
    else:
        labelled = manifest.labels != UNLABELLED
        out = np.ones(n, np.float64)
        out[labelled] = table[manifest.labels[labelled]]
    if normalize and labelled.any():
        if not out[labelled].sum() > 0:
            raise ValueError("the class weights give every image weight 0: nothing would be "
                             "learned; give some class a weight above 0")
        out[labelled] /= out[labelled].mean()
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------- graph pieces
def size_pair(size: object, name: str = "image_size") -> tuple[int, int]:
    """An image size as ``(height, width)``: a whole number (``64``, ``np.int64(64)``, ``64.0``)
    for a square, or a pair of them (a tuple, a list, an array, a ``TensorShape``). One reading for
    the pipeline, the backbones, the scratch CNNs and the feature extractor: some unpacked
    ``"64"`` as 6×4, failed on ``64.0`` with a bare ``TypeError``, or cut ``64.5`` to 64.

    Args:
        size: the size.
        name: the argument's name, for the message.

    Returns:
        ``(height, width)``.

    Raises:
        ValueError: anything else, naming ``name``.

    Example:
        >>> size_pair(64), size_pair([48, 64.0])
        ((64, 64), (48, 64))
    """
    def whole(v: object) -> bool:
        return (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                and float(v).is_integer())

    if whole(size):
        return int(size), int(size)
    if not isinstance(size, str | bytes):
        try:
            pair = tuple(size)
        except TypeError:
            pair = ()
        if len(pair) == 2 and all(whole(v) for v in pair):
            return int(pair[0]), int(pair[1])
    raise ValueError(f"{name}={size!r} must be a whole number or a (height, width) pair "
                     "(--image-size N)")


def check_resize(image_size: int | Sequence[int], resize: str) -> tuple[int, int]:
    """Validate a resize request up front (before any graph is built).

    Args:
        image_size: output ``size`` or ``(height, width)``.
        resize: one of :data:`RESIZE_MODES`.

    Returns:
        ``(height, width)``.

    Example:
        >>> check_resize(128, "pad")
        (128, 128)
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize={resize!r}: choose one of {RESIZE_MODES}")
    h, w = size_pair(image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size={image_size!r} must be positive")
    return h, w


#: Names the decoding and resizing rule (:func:`decode_8bit`, :func:`scale_images`); change it
#: whenever either changes, so that caches of anything computed from the images (e.g. cached
#: features) are recomputed. /2: JPEGs decoded with the accurate DCT. /3: 16-bit grey PNGs rounded
#: to uint8 before resizing, 16-bit RGB PNGs read by PIL (as ``predict`` reads them). /4: JPEGs
#: at least twice the output size decoded at 1/2, 1/4 or 1/8 scale (``images.jpeg_scale``).
RESIZE_RULE = "area-then-bilinear/4"


def scale_images(images, size):
    """Resize a batch ``(B, H, W, 3)`` (uint8 or float) to ``size``, ``float32`` out.

    The one resizing rule of the library (training, ``predict`` and the exported SavedModel), in
    two steps: every axis that shrinks is first area-averaged down to its output size
    (``ResizeArea``: each output pixel is the mean of its footprint, which antialiases), then
    bilinear interpolation (half-pixel centres, as ``tf.image.resize``) brings the axes that grow
    up to size. A step with nothing to do is an exact copy, so an image that only grows gets
    plain bilinear and one that only shrinks gets plain area averaging.

    When no axis shrinks, the area step is skipped and the images go to bilinear cast to
    float32 (the same pixels, bit for bit). That copy is not cheap: ``ResizeArea`` to the
    input's own size took about 45 µs for a 100x90 image in a ``tf.data`` map here, a tenth of
    decoding and resizing a small PNG to 224 px (and 100 of the 150 µs an image that the
    SavedModel spent on a batch already at its size). In a graph the choice is a v1
    ``Switch``/``Merge`` pair, whose unused side the executor skips: ``tf.cond`` would add two
    branch functions to trace and to instantiate with every ``tf.data`` iterator (2-3 ms more
    per dataset) and cost about 1% more an image. Fish4Knowledge at 224 px, per-image map, 12
    paired rounds: 0.413 against 0.428 CPU ms an image; the 397 ants/bees JPEGs, which all
    shrink: no difference; the extra graph ops cost about 4 ms per dataset.

    Written by hand because no Keras or TensorFlow resize does it: ``antialias=True``'s triangle
    filter costs 2-3x plain bilinear. This rule costs about what plain bilinear does, and its
    downscales are closer to a Lanczos downscale than the triangle filter's.

    Args:
        images: ``(B, H, W, 3)`` tensor.
        size: ``(height, width)`` int32 tensor.

    Returns:
        ``(B, height, width, 3)`` float32 tensor.

    Example:
        >>> scale_images(tf.zeros((1, 90, 60, 3), tf.uint8), tf.constant([32, 32])).shape  # doctest: +SKIP
        TensorShape([1, 32, 32, 3])
    """
    import tensorflow as tf

    shape = tf.shape(images)[1:3]
    shrinks = tf.reduce_any(shape > size)
    if tf.executing_eagerly():  # concrete values: the same choice in Python
        ready = (tf.raw_ops.ResizeArea(images=images, size=tf.minimum(shape, size)) if shrinks
                 else tf.cast(images, tf.float32))
    else:
        grows_only, shrinks_too = tf.raw_ops.Switch(data=images, pred=shrinks)
        shrunk = tf.raw_ops.ResizeArea(images=shrinks_too, size=tf.minimum(shape, size))
        ready = tf.raw_ops.Merge(inputs=[tf.cast(grows_only, tf.float32), shrunk])[0]
    return tf.raw_ops.ResizeBilinear(images=ready, size=size, half_pixel_centers=True)


def _scale(image, size):
    """:func:`scale_images` on one ``(H, W, 3)`` image."""
    import tensorflow as tf

    # expand_dims/squeeze rather than indexing: one graph op each instead of a strided slice and
    # its constants, which makes tracing the per-image function about a third cheaper
    return tf.squeeze(scale_images(tf.expand_dims(image, 0), size), 0)


def resize_image(image, image_size: int | Sequence[int], resize: str = "stretch"):
    """Resize one ``(H, W, 3)`` image: area-averaged where it shrinks, bilinear where it grows.

    The rule is :func:`scale_images`'s (antialiased whenever an axis shrinks). The
    image is read as it is (``uint8`` straight from the decoder: no float copy of the input).

    Args:
        image: ``(H, W, 3)`` ``uint8`` or float tensor.
        image_size: output ``size`` or ``(height, width)``.
        resize: ``"stretch"`` (aspect ratio not kept), ``"pad"`` (whole image, scaled to fit and
            centred on black) or ``"crop"`` (centre crop to the output aspect ratio, then scale).

    Returns:
        ``(height, width, 3)`` float32 tensor.

    Example:
        >>> resize_image(tf.zeros((30, 60, 3)), 32, "pad").shape   # doctest: +SKIP
        TensorShape([32, 32, 3])
    """
    import tensorflow as tf

    h, w = check_resize(image_size, resize)
    if resize == "stretch":  # the common case: no shape arithmetic in the graph
        out = _scale(image, tf.constant([h, w]))
    else:
        out = _pad_or_crop(image, h, w, resize)
    out.set_shape([h, w, 3])
    return out


def _pad_or_crop(image, h: int, w: int, resize: str):
    """:func:`resize_image`'s ``"pad"`` and ``"crop"`` modes (output ``(h, w, 3)`` float32)."""
    import tensorflow as tf

    shape = tf.shape(image)
    in_h, in_w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    if resize == "pad":
        factor = tf.minimum(h / in_h, w / in_w)
        new_h = tf.clip_by_value(tf.cast(tf.round(in_h * factor), tf.int32), 1, h)
        new_w = tf.clip_by_value(tf.cast(tf.round(in_w * factor), tf.int32), 1, w)
        out = _scale(image, tf.stack([new_h, new_w]))
        return tf.image.pad_to_bounding_box(out, (h - new_h) // 2, (w - new_w) // 2, h, w)
    target = w / h
    crop_w = tf.cast(tf.minimum(in_w, tf.round(in_h * target)), tf.int32)
    crop_h = tf.cast(tf.minimum(in_h, tf.round(in_w / target)), tf.int32)
    crop_w, crop_h = tf.maximum(crop_w, 1), tf.maximum(crop_h, 1)
    top = (shape[0] - crop_h) // 2
    left = (shape[1] - crop_w) // 2
    return _scale(image[top : top + crop_h, left : left + crop_w], tf.constant([h, w]))


def to_uint8(image):
    """Round a resized float image in ``0..255`` to ``uint8`` (for the cache): ``floor(x + 0.5)``,
    clipped to ``0..255``.

    One kernel: ``QuantizeV2`` in ``MIN_COMBINED`` mode over the range ``[0, 255]`` computes
    exactly ``(clip(x, 0, 255) - 0) * 1 + 0.5`` and truncates, bit for bit what
    ``tf.cast(x + 0.5, tf.uint8)`` gives in range (checked on every half level and 3 million
    random values, eager, in graphs and in ``tf.data``), in one pass instead of two: 22–27 µs
    against 54–68 µs an image at 224 px here. Bilinear resizing takes convex combinations of
    ``0..255`` pixels (and padding is 0), so the clip only catches float rounding.

    Args:
        image: float32 tensor in ``0..255``.

    Returns:
        ``uint8`` tensor of the same shape.

    Example:
        >>> to_uint8(tf.constant([0.4, 0.5, 254.6])).numpy().tolist()   # doctest: +SKIP
        [0, 1, 255]
    """
    import tensorflow as tf

    quantized = tf.raw_ops.QuantizeV2(
        input=image, min_range=tf.constant(0.0), max_range=tf.constant(255.0), T=tf.quint8,
        mode="MIN_COMBINED",
    )[0]
    return tf.bitcast(quantized, tf.uint8)


def _pil_read(path: bytes, draft: tuple[int, int] | None = None, limit: int | None = None) -> np.ndarray:
    """``read_image`` of a path from a tensor; ``limit``: the decompression-bomb limit the
    dataset was checked under (``None``: the one in force when the image is read)."""

    return read_image(os.fsdecode(path), draft=draft, max_pixels=limit)


def decode_jpeg_png(data, ratio: int = 1):
    """Decode the bytes of an 8-bit JPEG or PNG to ``uint8 (H, W, 3)``, as PIL decodes them, in
    one kernel.

    ``DecodeJpeg`` reads PNGs too (TensorFlow's decoders share one kernel, which sniffs the
    format), and for JPEGs it takes libjpeg's accurate integer DCT
    (``dct_method="INTEGER_ACCURATE"``), PIL's own: ``tf.io.decode_image`` uses the fast one,
    which differs from PIL by up to 21 levels a pixel (measured on the shared hymenoptera
    photos), so ``predict`` (PIL) would not see the pixels that training saw. It refuses BMPs
    and animated GIFs: use it where a check has ruled those out (:func:`make_dataset`), else
    :func:`decode_8bit`.

    Args:
        data: a scalar string tensor, the file's bytes.
        ratio: for a JPEG, decode at 1/``ratio`` scale (1, 2, 4 or 8; libjpeg averages in the
            DCT domain, bit for bit as PIL's ``draft`` does): see
            :func:`keras_species.data.images.jpeg_scale`.

    Returns:
        ``uint8`` tensor ``(H, W, 3)``.

    Example:
        >>> decode_jpeg_png(tf.io.read_file("photo.jpg")).shape   # doctest: +SKIP
        TensorShape([375, 500, 3])
    """
    import tensorflow as tf

    return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE", ratio=ratio)


def plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a plain JPEG (8-bit, grey or YCbCr, upright, a single picture),
    which training and ``predict`` decode at a reduced scale when it is at least twice their
    output size (:func:`keras_species.data.images.jpeg_scale`); ``None`` for anything else.

    Args:
        data: a file's bytes.

    Returns:
        The size, or ``None``.

    Example:
        >>> plain_jpeg_size(open("photo.jpg", "rb").read())   # doctest: +SKIP
        (500, 375)
    """
    if data[:3] != b"\xff\xd8\xff":
        return None
    kind, size = _raw_kind(data, data[-_TAIL:], None)
    return size if kind == KIND_FAST else None


def turned_jpeg(data: bytes) -> tuple[int, tuple[int, int] | None] | None:
    """``(orientation, size)`` of a JPEG that needs PIL only for its EXIF orientation: 8-bit,
    grey or YCbCr, turned by its EXIF block (orientation 2 to 8). TensorFlow decodes its bytes
    as PIL does (:func:`decode_jpeg_png`, at a reduced scale too), and :func:`exif_turn` turns
    them upright as :func:`keras_species.data.images.read_image` does.

    Args:
        data: a file's bytes.

    Returns:
        The orientation and, for a single picture (which is decoded at a reduced scale when it
        is at least twice its output size, see :func:`decode_8bit`), the stored ``(width,
        height)``; ``None`` for an upright JPEG (:func:`plain_jpeg_size`), a CMYK, 12-bit or
        not-a-JPEG file, and a header this walk does not read (two EXIF blocks, an orientation
        stated by XMP): those PIL reads.

    Example:
        >>> turned_jpeg(open("portrait_shot_sideways.jpg", "rb").read())   # doctest: +SKIP
        (6, (4000, 3000))
    """
    if data[:3] != b"\xff\xd8\xff" or b"\xff\xd9" not in data[-64:]:
        return None
    header = _jpeg_header(data, None)
    if header is None:
        return None
    frame, orientation, multi_picture, width, height = header
    if frame[0] != 8 or frame[1] not in (1, 3) or not 2 <= orientation <= 8:
        return None
    return orientation, (None if multi_picture else (width, height))


def exif_turn(image, orientation):
    """Turn an image decoded as it is stored upright by its EXIF orientation, pixel for pixel as
    PIL's ``ImageOps.exif_transpose`` turns it (as :func:`keras_species.data.images.read_image`
    reads the file).

    Args:
        image: a ``(H, W, C)`` tensor, as stored.
        orientation: a scalar integer tensor, the EXIF orientation: 1 upright (so are 0 and
            values past 8, as PIL reads them), 2 mirrored left-right, 3 turned 180°, 4 mirrored
            top-bottom, 5 transposed, 6 to be turned 90° clockwise, 7 transversed, 8 to be turned
            90° counter-clockwise.

    Returns:
        The upright image, ``(W, H, C)`` for orientations 5 to 8.

    Example:
        >>> exif_turn(decode_jpeg_png(data), 6).shape   # doctest: +SKIP
        TensorShape([4000, 3000, 3])
    """
    import tensorflow as tf

    def transposed():
        return tf.transpose(image, [1, 0, 2])

    turns = [
        lambda: image,  # 1, upright
        lambda: tf.reverse(image, [1]),  # 2, PIL's FLIP_LEFT_RIGHT
        lambda: tf.reverse(image, [0, 1]),  # 3, ROTATE_180
        lambda: tf.reverse(image, [0]),  # 4, FLIP_TOP_BOTTOM
        transposed,  # 5, TRANSPOSE
        lambda: tf.reverse(transposed(), [1]),  # 6, ROTATE_270 (90° clockwise)
        lambda: tf.reverse(transposed(), [0, 1]),  # 7, TRANSVERSE
        lambda: tf.reverse(transposed(), [0]),  # 8, ROTATE_90 (90° counter-clockwise)
    ]
    orientation = tf.cast(orientation, tf.int32)
    branch = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, 0)
    return tf.switch_case(branch, turns)


def decode_8bit(data, draft_to: tuple[int, int] | None = None, draft=None, orientation=None):
    """Decode the bytes of an 8-bit JPEG/PNG/GIF (first frame)/BMP to ``uint8 (H, W, 3)``, as
    PIL decodes them, whatever the format: for bytes nobody checked (shards).

    JPEGs use the accurate DCT, as in :func:`decode_jpeg_png`; other formats go through
    ``tf.io.decode_image``. This costs a ``tf.cond`` a file, which a ``tf.data`` map runs as a
    function call: on the fish images at 128 px, 10-40 µs an image more than
    :func:`decode_jpeg_png` (paired runs, 1.5-5% of decoding and resizing one).

    Args:
        data: a scalar string tensor, the file's bytes.
        draft_to: the ``(height, width)`` the image will be resized to, and
        draft: a boolean tensor, true for a plain JPEG (:func:`plain_jpeg_size`): such a JPEG at
            least twice ``draft_to`` is decoded at 1/2, 1/4 or 1/8 scale, by the rule of
            :func:`keras_species.data.images.jpeg_scale`, as :func:`make_dataset` and
            ``predict`` decode its file.
        orientation: a scalar integer tensor, the EXIF orientation of a JPEG stored as its
            file holds it (:func:`turned_jpeg`), or ``None`` (upright): the image is turned
            upright after decoding (:func:`exif_turn`), and the reduced-scale rule applies to
            the stored image, whose sides are the output's swapped for orientations 5 to 8, as
            :func:`keras_species.data.images.read_image` applies PIL's ``draft`` to it.

    Returns:
        ``uint8`` tensor ``(H, W, 3)``.

    Example:
        >>> decode_8bit(tf.io.read_file("photo.jpg")).shape   # doctest: +SKIP
        TensorShape([375, 500, 3])
    """
    import tensorflow as tf

    def jpeg():
        if draft_to is None or draft is None:
            return decode_jpeg_png(data)
        shape = tf.io.extract_jpeg_shape(data)  # (height, width, channels), from the header
        to = tf.maximum(tf.constant(draft_to, tf.int32), 1)  # (height, width) of the output
        if orientation is not None:  # the stored image of one on its side: the output's sides swapped
            to = tf.where((orientation >= 5) & (orientation <= 8), tf.reverse(to, [0]), to)
        fits = tf.minimum(shape[0] // to[0], shape[1] // to[1])
        scales = sorted(JPEG_SCALES)  # 1, 2, 4, 8: the branch is the largest scale that fits
        branch = tf.where(draft, tf.reduce_sum(tf.cast(fits >= tf.constant(scales[1:]), tf.int32)), 0)
        return tf.switch_case(branch, [lambda r=r: decode_jpeg_png(data, r) for r in scales])

    img = tf.cond(
        tf.io.is_jpeg(data),
        jpeg,
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8),
    )
    return img if orientation is None else exif_turn(img, orientation)


def white_composite(rgba):
    """``(..., 4)`` ``uint8`` RGBA pixels composited onto white, ``(..., 3)`` ``uint8``: bit for bit
    what :func:`keras_species.data.images.read_image` gives (PIL's ``alpha_composite`` over an
    opaque white background, in its fixed-point arithmetic: ``PRECISION_BITS`` 7 and its
    division by 255), so that bytes decoded in a graph match a file read for training.

    Args:
        rgba: ``uint8`` tensor whose last axis is RGBA (``tf.io.decode_png(data, channels=4)``).

    Returns:
        ``uint8`` RGB tensor.

    Example:
        >>> white_composite(tf.constant([[0, 0, 0, 0], [10, 20, 30, 255]], tf.uint8)).numpy().tolist()  # doctest: +SKIP
        [[255, 255, 255], [10, 20, 30]]
    """
    import tensorflow as tf

    x = tf.cast(rgba, tf.int32)
    rgb, alpha = x[..., :3], x[..., 3:]
    shift = tf.bitwise.right_shift
    v = (rgb * alpha + 255 * (255 - alpha)) * 128 + 16384  # PIL: coefficients scaled by 1 << 7, rounded
    return tf.cast(shift(shift(shift(v, 8) + v, 8), 7), tf.uint8)  # PIL's SHIFTFORDIV255, then >> 7


def decode_png_rgb(data):
    """A PNG's bytes as ``uint8 (H, W, 3)`` RGB, as :func:`keras_species.data.images.read_image`
    reads the file: grey spread to three channels, alpha (or a transparent palette colour)
    composited onto white (:func:`white_composite`).

    Decoded with the file's own channels: asked for four, libpng fills a missing alpha with the
    largest value of the file's bit depth, 15 for a 16-colour palette and 1 for a 1-bit image,
    which the compositing read as nearly transparent (the images came out nearly white).

    Args:
        data: a scalar string tensor, the PNG file's bytes.

    Returns:
        ``uint8`` tensor ``(H, W, 3)``.

    Example:
        >>> decode_png_rgb(tf.io.read_file("cutout.png")).shape   # doctest: +SKIP
        TensorShape([90, 100, 3])
    """
    import tensorflow as tf

    image = tf.io.decode_png(data)
    grey = image[..., :1]
    return tf.switch_case(tf.shape(image)[-1] - 1, [
        lambda: tf.tile(grey, [1, 1, 3]),
        lambda: white_composite(tf.concat([tf.tile(grey, [1, 1, 3]), image[..., 1:2]], -1)),
        lambda: image[..., :3],
        lambda: white_composite(image),
    ])


def _decoder(kinds_present: set[int], draft: tuple[int, int] | None = None, limit: int | None = None):
    """A graph function ``(path, kind) -> (H, W, 3)`` ``uint8`` image; only the branches needed.
    The function's ``needs_kind`` attribute says whether it reads ``kind`` (only when several
    kinds are present: the dataset then carries the kinds column, else it leaves it out).
    ``draft``: the output ``(height, width)``, for the JPEGs that PIL reads (its ``draft`` rule,
    as the :data:`KIND_JPEG_SCALED` kinds were given). ``limit``: the decompression-bomb limit
    the files were checked under, kept for the images PIL reads during the epochs.
    """
    import tensorflow as tf

    def fast(data, path):
        return decode_jpeg_png(data)

    def scaled(ratio):
        return lambda data, path: decode_jpeg_png(data, ratio)

    def gif_bmp(data, path):
        return tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)

    def png16(data, path):  # 65535 -> 255, rounded as read_image rounds (no value lies on a half)
        return to_uint8(tf.cast(tf.io.decode_png(data, channels=3, dtype=tf.uint16), tf.float32) / 257.0)

    def pil(data, path):
        img = tf.numpy_function(lambda p: _pil_read(p, draft, limit), [path], tf.uint8, stateful=False)
        return tf.reshape(img, tf.stack([tf.shape(img)[0], tf.shape(img)[1], 3]))

    table = {KIND_FAST: fast, KIND_GIF_BMP: gif_bmp, KIND_PNG16: png16, KIND_PIL: pil}
    table.update({kind: scaled(ratio) for ratio, kind in KIND_JPEG_SCALED.items()})
    used = sorted(k for k in kinds_present if k in table)
    branch_of_kind = tf.constant([used.index(k) if k in used else 0 for k in range(max(table) + 1)])

    def decode(path, kind):
        if used == [KIND_PIL]:
            img = pil(None, path)
        else:
            data = tf.io.read_file(path)
            if len(used) == 1:  # the common case: no branch; uint8 straight into the resize
                img = table[used[0]](data, path)
            else:  # one branch per kind present, each uint8
                branches = [lambda f=table[k]: f(data, path) for k in used]
                # switch_case wants branch indices 0..n-1; the kinds present may be {0, 2}
                img = tf.switch_case(tf.gather(branch_of_kind, kind), branches)
        img.set_shape([None, None, 3])
        return img

    decode.needs_kind = len(used) > 1
    return decode


def _map(ds, fn, calls, deterministic: bool):
    if calls is None:  # sequential: order of the random draws fixed
        return ds.map(fn)
    return ds.map(fn, num_parallel_calls=calls, deterministic=deterministic)


def _first(*t):  # used under do_not_convert (see finish_dataset)
    return t[0]


class LostImageCount:
    """Counts the images that each pass over a dataset yields, so that images left out mid-run
    are reported.

    ``ignore_errors`` leaves out an image that fails to decode without a word at TensorFlow's
    default log level here (``TF_CPP_MIN_LOG_LEVEL=2``): a file deleted or rewritten after the
    up-front check. :meth:`count` adds each batch's size to a counter, one op in the map that
    casts each batch anyway; whoever runs the passes (the training loop's
    :class:`keras_species.training.callbacks.LostImagesWarning`) calls :meth:`reset` before a
    pass and :meth:`report` after it. Written by hand because ``tf.data`` has no end-of-pass
    hook (two one-off maps around the batches, which would print without Python, cost 15 ms a
    pass, 2% of a first epoch at 224 px).

    Args:
        paths: the files that one full pass reads (those the check kept).

    Example:
        >>> lost = lost_image_count(train_ds)   # doctest: +SKIP
        >>> lost.reset(); run_one_pass(train_ds); lost.report("epoch 1")   # doctest: +SKIP
        0
    """

    def __init__(self, paths: Sequence[str]):
        import tensorflow as tf

        self.paths = list(paths)
        self.expected = len(self.paths)
        self._reported = 0
        with tf.init_scope():
            self.seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")

    def count(self, images):
        """``images`` (a batch), with its size added to the counter (graph code).

        Args:
            images: a batch ``(B, ...)``.

        Returns:
            The same tensor, once the counter holds it.
        """
        import tensorflow as tf

        with tf.control_dependencies([self.seen.assign_add(tf.shape(images, out_type=tf.int64)[0])]):
            return tf.identity(images)

    def reset(self) -> None:
        """Start counting a new pass."""
        self.seen.assign(0)

    def lost(self) -> int:
        """Images that the pass since :meth:`reset` left out, if that pass ran to its end (the
        caller knows: a pass cut short counts fewer too)."""
        return max(0, self.expected - int(self.seen.numpy()))

    def report(self, what: str) -> int:
        """Warn when the pass since :meth:`reset` left images out, naming the files that are
        unreadable now; each new shortfall once (a cached dataset repeats the first pass's).

        Args:
            what: the pass, for the message (e.g. ``"training epoch 3"``).

        Returns:
            The number of images left out.
        """
        lost = self.lost()
        if lost and lost != self._reported:
            self._reported = lost
            bad = check_files(self.paths)[1]
            names = "".join(f"\n  {p}: {r}" for p, r in list(bad.items())[:20])
            more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
            why = (f"unreadable now:{names}{more}" if bad else
                   "every file passes the check now, so they failed to decode; run `keras-species "
                   "audit` on the data")
            warnings.warn(
                f"{what}: {lost} of the {self.expected} images could not be decoded and were left "
                f"out (changed or deleted after the dataset was built); {why}",
                stacklevel=2,
            )
        return lost


def lost_image_count(ds) -> LostImageCount | None:
    """The :class:`LostImageCount` of a dataset that :func:`make_dataset` returned, if any.

    Args:
        ds: a dataset.

    Returns:
        Its counter, or ``None`` (another dataset, or ``on_error="raise"``, or ``drop_remainder``).

    Example:
        >>> lost_image_count(make_dataset(m, 64)).expected == len(m)   # doctest: +SKIP
        True
    """
    return getattr(ds, "lost_images", None)


CACHE_WORDS = {"memory": True, "true": True, "yes": True, "none": False, "off": False, "false": False,
               "no": False}
"""Words a ``cache=`` setting may be given as (a recipe config's, a notebook's): never file
prefixes (before stop 29, ``make_dataset(cache="memory")`` wrote a file cache ``memory-<key>``
into the working folder, while ``build_datasets`` read the word)."""


def normalize_cache(cache: bool | str | os.PathLike | None) -> bool | str:
    """A ``cache=`` setting as ``True`` (memory), ``False`` (none) or a file path prefix.

    Args:
        cache: ``True``/``""``/``"memory"``, ``False``/``None``/``"none"``/``"off"``, or a path.

    Returns:
        ``True``, ``False`` or the prefix as a ``str``.

    Raises:
        TypeError: for any other kind of value.

    Example:
        >>> normalize_cache("memory"), normalize_cache(None), normalize_cache("cache/train")
        (True, False, 'cache/train')
    """
    if cache is None or isinstance(cache, bool):
        return bool(cache)
    if isinstance(cache, os.PathLike):
        return os.fspath(cache)
    if isinstance(cache, str):
        if cache and not cache.strip():
            raise ValueError(f"cache={cache!r}: give True (in memory), False (none) or a file path prefix")
        return CACHE_WORDS.get(cache.strip().lower(), cache) if cache else True
    raise TypeError(f"cache={cache!r}: give True (in memory), False (none) or a file path prefix")


def is_file_cache(cache: bool | str | os.PathLike | None) -> bool:
    """Whether a ``cache=`` setting asks for a ``tf.data`` file cache (a path prefix).

    Args:
        cache: ``True``/``""`` (memory), ``False``/``None`` (none), or a path prefix.

    Returns:
        True for a path prefix.

    Example:
        >>> is_file_cache(True), is_file_cache("cache/train")
        (False, True)
    """
    return not isinstance(normalize_cache(cache), bool)


def _resolve_cache(cache: bool | str | os.PathLike, content: dict | None) -> str | None:
    """``""`` for the memory cache, a keyed file prefix (:mod:`keras_species.data.file_cache`),
    or ``None``."""
    cache = normalize_cache(cache)
    if cache is False:
        return None
    if cache is True:  # tf.data's own spelling of the memory cache is ""
        return ""
    if content is None:
        raise ValueError(
            f"cache={os.fspath(cache)!r}: a file cache needs cache_content, the description of "
            "what the elements depend on (so that it is never read back for other data)"
        )
    from keras_species.data.file_cache import cache_writer, keyed_cache_path

    path = keyed_cache_path(cache, content)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(f"{path}.index") and not os.access(folder, os.W_OK | os.X_OK):
        # a read-only folder of caches written earlier: this content's is not among them, and
        # tf.data would fail at the first element on its lock file
        warnings.warn(
            f"cache {path} cannot be written ({folder} is not writable): this dataset reads without "
            "a cache; give a folder you can write to cache it",
            stacklevel=4,
        )
        return None
    writer = cache_writer(path)
    if writer is not None:  # tf.data would refuse this run, and delete the writer's files
        warnings.warn(
            f"cache {path} is being written by {writer}: this dataset reads without a cache, so "
            "as not to break that run; once it has finished, the cache serves later runs. If no "
            f"run writes it now, delete {path}_*.lockfile and {path}.owner",
            stacklevel=4,
        )
        return None
    return path


def dataset_options(deterministic: bool = True):
    """The ``tf.data.Options`` of every keras-species dataset: the order switch, autotuning off.

    Autotuning is off because, in TensorFlow 2.21 (seen on CPU), deleting an iterator whose
    autotuner runs can wait for the autotuner's next wake-up, and that interval doubles while
    the iterator lives: waits of up to 1.2 s after a 1 s pass, 2.1 s after 3 s, 4.2 s after
    6 s and 8.5 s after 12 s were measured, none with autotuning off
    (``benchmarks/iterator_teardown.py`` re-measures it, with ``fit``). Keras' ``fit`` deletes
    one iterator at the end of every epoch, ``evaluate`` and ``predict`` one per call. With
    autotuning off, ``AUTOTUNE`` parallelism falls back to one call per CPU core, which gave the
    same throughput on decode-bound maps here. To turn it back on: ``ds.with_options(opts)``
    with ``opts.autotune.enabled = True``.

    Under a cgroup CPU quota below the cores the process sees (a container's CPU limit), the
    dataset gets a private thread pool of :func:`~keras_species.cpu_budget.usable_cores`
    threads, so that ``AUTOTUNE`` parallelism follows the quota: TensorFlow sizes its own pool
    from the cores it sees (see :mod:`keras_species.cpu_budget`).

    Args:
        deterministic: keep the order of elements (``Options.deterministic``).

    Returns:
        A ``tf.data.Options``.

    Example:
        >>> ds = ds.with_options(dataset_options(deterministic=True))   # doctest: +SKIP
    """
    import tensorflow as tf

    from keras_species.cpu_budget import affinity_cores, usable_cores

    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    options.autotune.enabled = False
    cores = usable_cores()
    if cores < affinity_cores():  # a cgroup CPU quota: as many threads as it gives CPUs
        options.threading.private_threadpool_size = cores
    return options


DECODE_CALLS_PER_CORE = 8
"""In-flight calls per CPU core of the per-image decode map (see :func:`decode_calls`)."""


def decode_calls(num_parallel_calls: int | None = None) -> int:
    """How many per-image decode calls the pipeline keeps in flight.

    With the autotuner off (:func:`dataset_options`), ``AUTOTUNE`` means one call per core. In
    an ordered map (evaluation, ``predict``) that idles a core: once it has finished a small
    image it waits until the big one ahead of it is taken, because finished results count
    against the calls in flight. Keeping :data:`DECODE_CALLS_PER_CORE` calls per core in flight
    lets it go on with the next images; the threads are still one per core, only running calls
    hold a decoded image, and finished ones are already resized. (Not for maps whose work holds
    the GIL, such as ``predict``'s PIL reading: there more calls only contend for it.)

    Args:
        num_parallel_calls: an explicit count (returned as is), or ``None`` for the default.

    Returns:
        The number of calls.

    Example:
        >>> decode_calls(3)
        3
    """
    from keras_species.cpu_budget import usable_cores

    if num_parallel_calls is not None:
        return num_parallel_calls
    return DECODE_CALLS_PER_CORE * usable_cores()


def finish_dataset(
    ds,
    *,
    n: int,
    has_labels: bool,
    has_weights: bool,
    batch_size: int,
    training: bool,
    augment=None,
    batch_augment=None,
    cache: bool | str | os.PathLike = True,
    shuffle_buffer: int | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    drop_remainder: bool = False,
    num_parallel_calls: int | None = None,
    cache_content: dict | None = None,
    expect_paths: Sequence[str] | None = None,
    onehot: tuple[int, float] | None = None,
):
    """Cache → shuffle → augment → batch → batch-augment → prefetch, shared with the shard reader.

    With ``training=False`` nothing is shuffled or augmented and the cache comes after the batch
    (it holds ``uint8`` batches), so that a cached epoch does no per-image work.

    Args:
        ds: a dataset of ``(image uint8 (H, W, 3), label?, weight?)`` tuples, already resized.
        n: number of elements (for the default shuffle buffer).
        has_labels, has_weights: what the tuples hold after the image.
        batch_size, training, augment, batch_augment, cache, shuffle_buffer, seed,
            deterministic, drop_remainder, num_parallel_calls: see :func:`make_dataset`.
        cache_content: for a file ``cache``, a JSON-ready description of what ``ds``'s elements
            depend on (files, labels, size...); it keys the cache file, together with the
            batching when the cache holds batches.
        expect_paths: the files a full pass reads when none is lost: the dataset then counts
            the images of each pass (:class:`LostImageCount`; not with ``drop_remainder``).
        onehot: ``(classes, label_smoothing)`` when the labels in ``ds`` are class indices to
            yield as smoothed one-hot rows (``y (1 - s) + s / C``), made a batch at a time.

    Returns:
        The batched, prefetched ``tf.data.Dataset`` yielding float32 images (with
        ``expect_paths``, its :class:`LostImageCount`: :func:`lost_image_count`).

    Example:
        >>> finish_dataset(ds, n=10, has_labels=True, has_weights=False, batch_size=4,
        ...                training=False)   # doctest: +SKIP
    """
    import tensorflow as tf

    from keras_species.data import augment as augment_mod
    from keras_species.data.allocator import tune_malloc

    check_dataset_arguments(batch_size, shuffle_buffer=shuffle_buffer, num_parallel_calls=num_parallel_calls,
                            seed=seed, augment=augment, batch_augment=batch_augment)
    tune_malloc()  # freed batches stay in the process: no page faults for the next (allocator.py)
    autotune = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    if deterministic is None:
        deterministic = not training
    key = None if cache_content is None else {**cache_content, "training": training}
    if key is not None and not training:  # the cache holds batches
        key.update(batch_size=int(batch_size), drop_remainder=bool(drop_remainder))
    cache_path = _resolve_cache(cache, key)
    if cache_path is not None and training:  # cache single images: each epoch reshuffles them
        ds = ds.cache(cache_path)
    if training:
        buffer = shuffle_buffer or max(1, min(n, 10_000))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    # ignore_errors drops a file that fails after the check without a word: count each pass
    lost = LostImageCount(expect_paths) if expect_paths is not None and not drop_remainder else None

    @tf.autograph.experimental.do_not_convert  # plain graph code: AutoGraph's conversion is pure cost
    def to_float(*t):
        images = t[0] if lost is None else lost.count(t[0])
        rest = tuple(t[1:])
        if onehot is not None:
            classes, smoothing = onehot
            hot = tf.one_hot(tf.cast(rest[0], tf.int32), classes, dtype=tf.float32)
            rest = (hot * (1.0 - smoothing) + smoothing / classes,) + rest[1:]
        return (tf.cast(images, tf.float32),) + rest

    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=autotune,
                  deterministic=deterministic)
    if cache_path is not None and not training:
        # evaluation order is fixed, so the cache can hold whole uint8 batches: a cached epoch
        # then only casts them (no per-image work at all)
        ds = ds.cache(cache_path)
    # one cast per batch (cheaper than one per image), several batches at a time
    ds = ds.map(to_float, num_parallel_calls=autotune, deterministic=deterministic)
    if isinstance(augment, str):
        augment = augment_mod.augmentation(augment, seed=seed, dtype="float32")  # a CPU pipeline's
    if augment is not None and training:
        layer = augment

        def aug(*t):
            img = tf.clip_by_value(tf.cast(layer(t[0], training=True), tf.float32), 0.0, 255.0)
            return (img,) + tuple(t[1:])

        # A batch a call, one call at a time. Keras' random layers draw each image's own
        # transformation within a batch, from one seed state that a call reads and then
        # advances: calls in parallel (one image each, before stop 30) could read the same
        # state, and about 1% of images took another's draw. The same CPU time an image, but
        # less parallel: augmenting alone on 2 cores runs about 40% slower (README).
        ds = ds.map(aug)
    if isinstance(batch_augment, str):
        batch_augment = augment_mod.batch_augmentation(batch_augment, seed=seed, dtype="float32")
    if batch_augment is not None and training:
        if not has_labels:
            raise ValueError("batch_augment (MixUp/CutMix) needs labels: label_mode cannot be 'none'")
        mixer = batch_augment

        def mix(*t):
            img, y = t[0], tf.cast(t[1], tf.float32)
            if has_weights:  # mix the weights with the labels' coefficients (one linear mix)
                y = tf.concat([y, tf.cast(t[2], tf.float32)[:, None]], axis=-1)
            out = mixer({"images": img, "labels": y}, training=True)
            img2, y2 = tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)
            img2 = tf.clip_by_value(img2, 0.0, 255.0)  # two 255s mixed in float32 gave 255.000015
            if has_weights:
                return img2, y2[:, :-1], y2[:, -1]
            return img2, y2

        # one call at a time, as the augmentation above: calls in parallel could read the same
        # seed state, and two batches took one draw (2 of 240 batches, seen in stop 33)
        ds = ds.map(mix)
    if not has_labels:
        ds = ds.map(tf.autograph.experimental.do_not_convert(_first))
    ds = ds.prefetch(tf.data.AUTOTUNE).with_options(dataset_options(deterministic))
    ds.lost_images = lost  # read by lost_image_count
    return ds


def whole_at_least(value: object, low: int) -> bool:
    """Whether ``value`` is a whole number (``int`` or a NumPy integer, not a bool) ``>= low``.

    Example:
        >>> whole_at_least(3, 1), whole_at_least(2.0, 1), whole_at_least(True, 0)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def check_seed(seed: object) -> int:
    """A seed as a Python ``int``, refused unless a whole number from 0 to 2**32 - 1 (NumPy's
    and scikit-learn's range): the one check of the splits', the datasets' and the augmentation
    layers' seeds (before stop 29 a float or a negative seed met NumPy's own message, Keras
    refused a NumPy integer, and ``kfold`` refused what ``stratified_split`` took).

    Args:
        seed: the seed.

    Returns:
        The seed.

    Raises:
        ValueError: naming the value and the range.

    Example:
        >>> check_seed(np.int64(3))
        3
    """
    if whole_at_least(seed, 0) and seed < 2**32:
        return int(seed)
    raise ValueError(f"seed={seed!r} must be a whole number from 0 to {2**32 - 1} (--seed)")


def check_dataset_arguments(batch_size: int, *, shuffle_buffer: int | None = None,
                            num_parallel_calls: int | None = None, seed: int | None = None,
                            augment=None, batch_augment=None) -> None:
    """Refuse the arguments of ``make_dataset``/``shard_dataset`` that cannot work, before any
    file is read (before stop 29 some were found only after every file's check, or inside
    TensorFlow: ``shuffle_buffer=-1`` gave ``InvalidArgumentError {{function_node ...}}``).

    Args:
        batch_size, shuffle_buffer, num_parallel_calls, seed, augment, batch_augment: as in
            :func:`make_dataset`.

    Raises:
        ValueError or TypeError: naming the argument and what it takes.

    Example:
        >>> check_dataset_arguments(32, shuffle_buffer=1000, seed=0)
    """
    if not whole_at_least(batch_size, 1):
        raise ValueError(f"batch_size must be a whole number >= 1 (--batch-size), got {batch_size!r}")
    if shuffle_buffer is not None and not whole_at_least(shuffle_buffer, 0):
        raise ValueError(f"shuffle_buffer={shuffle_buffer!r} must be a whole number >= 1 (or None or 0: "
                         "every image, up to 10,000)")
    if num_parallel_calls is not None and not (whole_at_least(num_parallel_calls, 1) or (
            whole_at_least(num_parallel_calls, -1) and num_parallel_calls == -1)):
        raise ValueError(f"num_parallel_calls={num_parallel_calls!r} must be a whole number >= 1, "
                         "tf.data.AUTOTUNE or None")
    if seed is not None:
        check_seed(seed)
    for name, value in (("augment", augment), ("batch_augment", batch_augment)):
        if value is not None and not isinstance(value, str) and (isinstance(value, bool) or not callable(value)):
            raise TypeError(f"{name}={value!r}: give a preset name or a Keras layer (or None)")
    if isinstance(augment, str):  # the preset's name, before any file is read
        from keras_species.data.augment_presets import preset_fields

        preset_fields(augment)
    if isinstance(batch_augment, str) and batch_augment.lower().replace("_", "").replace("-", "") not in (
            "mixup", "cutmix"):
        raise ValueError(f"unknown batch augmentation {batch_augment!r}; choose 'mixup' or 'cutmix'")


def check_batch_augment(batch_augment, label_mode: str) -> None:
    """Refuse MixUp/CutMix with sparse labels: they mix label vectors, and a sparse label would
    come out as a ``(B, B)`` matrix (one check for ``make_dataset`` and ``shard_dataset``).

    Args:
        batch_augment: the ``batch_augment`` argument (``None``: nothing to check).
        label_mode: the resolved label mode (:func:`resolve_label_mode`).

    Raises:
        ValueError: naming the fix.

    Example:
        >>> check_batch_augment("mixup", "onehot")
    """
    if batch_augment is not None and label_mode == "sparse":
        raise ValueError(f"batch_augment={batch_augment!r} mixes labels, which needs float labels: "
                         "use label_mode='onehot' (or 'auto')")


def check_drop_remainder(n: int, batch_size: int, drop_remainder: bool) -> None:
    """Refuse ``drop_remainder`` with fewer images than a batch: the dataset would be empty and
    ``fit`` would train nothing (one check for ``make_dataset`` and ``shard_dataset``).

    Args:
        n: images the dataset yields in a pass.
        batch_size: images per batch.
        drop_remainder: whether the last incomplete batch is dropped.

    Raises:
        ValueError: naming the counts and the fix.

    Example:
        >>> check_drop_remainder(100, 32, True)
    """
    if drop_remainder and n < batch_size:
        raise ValueError(f"{n} image(s) and batch_size={batch_size} with drop_remainder=True: "
                         "no batch would be yielded; lower batch_size or leave drop_remainder off")


# ---------------------------------------------------------------------------------- make_dataset
def make_dataset(
    manifest: Manifest,
    image_size: int | Sequence[int],
    batch_size: int = 32,
    *,
    training: bool = False,
    label_mode: str = "auto",
    label_smoothing: float = 0.0,
    resize: str = "stretch",
    augment=None,
    batch_augment=None,
    cache: bool | str | os.PathLike = True,
    shuffle_buffer: int | None = None,
    sample_weights: np.ndarray | str | dict | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    drop_remainder: bool = False,
    num_parallel_calls: int | None = None,
    on_error: str = "skip",
):
    """A ``tf.data.Dataset`` of ``(images, labels[, sample_weights])`` batches from a manifest.

    Images are ``float32`` ``(B, H, W, 3)`` RGB in ``0..255`` (no model preprocessing). See the
    module docstring for the decoding paths and the order of the stages.

    Args:
        manifest: the images and labels.
        image_size: output ``size`` or ``(height, width)``.
        batch_size: images per batch.
        training: shuffle, augment and batch-augment (all off when ``False``; the order of the
            manifest is then kept, minus skipped files).
        label_mode: ``"auto"`` (multi-hot for multi-label; one-hot when smoothing or
            ``batch_augment`` is on; else sparse; ``"none"`` when nothing is labelled),
            ``"sparse"``, ``"onehot"``, ``"multihot"`` or ``"none"`` (yield images only).
        label_smoothing: see :func:`encode_labels`.
        resize: ``"stretch"``, ``"pad"`` or ``"crop"`` (see :func:`resize_image`).
        augment: a Keras layer/``Sequential`` applied to each image, or a preset name of
            :func:`keras_species.data.augment.augmentation` (seeded with ``seed``). Applied only
            when ``training``. To augment on the accelerator instead, leave this ``None`` and put
            the same layer inside the model (``augment.augment_in_model``).
        batch_augment: ``keras.layers.MixUp``/``CutMix`` (or ``"mixup"``/``"cutmix"``) applied
            to whole batches; labels become soft (float) and sample weights are mixed alike.
        cache: ``True`` (memory), ``False``, or a file path prefix (``tf.data`` file cache; the
            first epoch must run to its end once to complete it). The files are written at
            ``<prefix>-<key>``, keyed by the content (:mod:`keras_species.data.file_cache`), so
            that a cache is never read back for other files, labels or sizes.
        shuffle_buffer: default ``min(N, 10000)``.
        sample_weights: ``None``, a per-image array aligned with ``manifest``, ``"balanced"``, a
            dict ``{class: weight}`` or a JSON path (see :func:`class_balance_weights`).
        seed: seeds the shuffle and preset augmentations.
        deterministic: ``tf.data.Options().deterministic``; default ``not training``. When
            ``True``, a seed gives the same order and the same augmentation on every run (the
            augmentation map then runs in one thread).
        drop_remainder: drop the last incomplete batch.
        num_parallel_calls: parallelism of the maps; default: :func:`decode_calls` calls in flight
            for the decode map (several per core), ``tf.data.AUTOTUNE`` (one per core) for the others.
        on_error: ``"skip"`` (leave unreadable files out, with a warning naming each) or
            ``"raise"`` (:class:`~keras_species.data.images.ImageReadError`).

    Returns:
        The ``tf.data.Dataset`` (with ``on_error="skip"``, :func:`lost_image_count` gives the
        counter of the images each pass yields: see :class:`LostImageCount`).

    Example:
        >>> from keras_species.data import sources
        >>> m = sources.load("demo")                                    # doctest: +SKIP
        >>> ds = make_dataset(m, 128, 32, training=True, augment="r1",
        ...                   sample_weights="balanced", seed=0)        # doctest: +SKIP
        >>> images, labels, weights = next(iter(ds))                    # doctest: +SKIP
    """
    import tensorflow as tf

    require_manifest(manifest, "make_dataset")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error={on_error!r}: choose 'skip' or 'raise'")
    check_dataset_arguments(batch_size, shuffle_buffer=shuffle_buffer, num_parallel_calls=num_parallel_calls,
                            seed=seed, augment=augment, batch_augment=batch_augment)
    cache = normalize_cache(cache)
    if isinstance(sample_weights, str | dict | os.PathLike):  # a mode's typo, before any file is read
        _load_weight_mode(sample_weights)
    if len(manifest) == 0:
        raise ManifestError("the manifest holds no images")
    if not _smoothing_ok(label_smoothing):  # "0" is true: checked before it picks the label mode
        raise ValueError(f"label_smoothing={label_smoothing!r} must be a number in [0, 1)")
    soft = bool(label_smoothing) or batch_augment is not None
    mode = resolve_label_mode(label_mode, manifest.multilabel, bool(manifest.labelled_mask.any()), soft)
    check_batch_augment(batch_augment, mode)
    # one-hot labels travel as class indices and are expanded a batch at a time (finish_dataset):
    # a dense images x classes float array cost 3.7 GB of set-up at 40,000 images of 5,000
    # classes (stop 30), and the cache holds indices
    labels = encode_labels(manifest, mode, label_smoothing, onehot_as_indices=True)
    weights = None
    if sample_weights is not None:
        if not isinstance(sample_weights, str | dict | os.PathLike):  # an array-like: a range,
            try:  # a tensor, a pandas Series...
                weights = np.asarray(sample_weights, np.float32)
            except (TypeError, ValueError) as err:
                raise ValueError(f"sample_weights cannot be read as one number per image ({err}): "
                                 "give an array, 'balanced', a {class: weight} dict or a JSON "
                                 "file path") from None
            if weights.shape != (len(manifest),):
                raise ValueError(f"sample_weights has shape {weights.shape}, expected ({len(manifest)},)")
            bad_weight = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
            if bad_weight.size:
                i = int(bad_weight[0])
                raise ValueError(f"sample_weights[{i}] is {weights[i]} ({manifest.paths[i]}): every "
                                 "weight must be a number >= 0")

    if mode == "none" and sample_weights is not None:
        raise ValueError("sample_weights need labels: label_mode cannot be 'none'")


    out_size = check_resize(image_size, resize)
    kinds, bad = check_files(manifest.paths, image_size=out_size)
    _report_bad(bad, on_error)
    keep = np.flatnonzero(kinds != KIND_BAD)
    if keep.size == 0:
        raise ManifestError(f"none of the {len(manifest)} images can be read (see the warning above)")
    check_drop_remainder(int(keep.size), batch_size, drop_remainder)
    if weights is not None and not weights[keep].any():  # over the images read: the others go
        raise ValueError("sample_weights are all 0 on the images that can be read: a model trained "
                         "on them learns nothing; give some image a weight above 0 (or leave "
                         "sample_weights out)")
    if sample_weights is not None and weights is None:  # balanced over the images that are read
        weights = np.ones(len(manifest), np.float32)
        weights[keep] = class_balance_weights(manifest.subset(keep), sample_weights)
    paths = [manifest.paths[i] for i in keep]
    decode = _decoder(set(np.unique(kinds[keep]).tolist()), draft=out_size, limit=get_max_pixels())
    columns: list = [tf.constant(paths)]
    if decode.needs_kind:
        columns.append(tf.constant(kinds[keep]))
    if labels is not None:
        columns.append(labels[keep])
    if weights is not None:
        columns.append(weights[keep])

    det = (not training) if deterministic is None else deterministic

    @tf.autograph.experimental.do_not_convert  # plain graph code: skip AutoGraph's tracing cost
    def load(path, *rest):
        kind, rest = (rest[0], rest[1:]) if decode.needs_kind else (None, rest)
        return (to_uint8(resize_image(decode(path, kind), image_size, resize)),) + rest

    content = None
    if is_file_cache(cache):  # key the file cache by all that its elements hold
        from keras_species.data.file_cache import array_fingerprint, file_fingerprint

        content = {
            "reader": "make_dataset", "order": "manifest", "resize_rule": RESIZE_RULE, "image_size": image_size,
            "resize": resize, "files": file_fingerprint(paths),
            "labels": None if labels is None else array_fingerprint(labels[keep]),
            "weights": None if weights is None else array_fingerprint(weights[keep]),
        }
    ds = tf.data.Dataset.from_tensor_slices(tuple(columns))
    # a file cache outlives the run: written in the manifest's order, so that a deterministic
    # run reading one that an unordered run wrote shuffles the same images (stop 29)
    ds = ds.map(load, num_parallel_calls=decode_calls(num_parallel_calls),
                deterministic=det or content is not None)
    if on_error == "skip":
        ds = ds.ignore_errors(log_warning=True)
    return finish_dataset(
        ds,
        n=int(keep.size),
        has_labels=labels is not None,
        has_weights=weights is not None,
        batch_size=batch_size,
        training=training,
        augment=augment,
        batch_augment=batch_augment,
        cache=cache,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        deterministic=det,
        drop_remainder=drop_remainder,
        num_parallel_calls=num_parallel_calls,
        cache_content=content,
        expect_paths=paths if on_error == "skip" else None,
        onehot=(manifest.num_classes, float(label_smoothing)) if mode == "onehot" else None,
    )
