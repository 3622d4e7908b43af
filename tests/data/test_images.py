"""Tests for keras_species.data.images: every bad or unusual file a new user might have."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_species.data import images
from keras_species.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    is_image_file,
    probe,
    read_image,
)
from tests.conftest import smooth_image, write_png_header


def _rgb(h: int = 16, w: int = 20, colour=(200, 30, 40)) -> Image.Image:
    return Image.new("RGB", (w, h), colour)


def _truncated(tmp_path: Path, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_extensions_and_is_image_file():
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"} <= IMAGE_EXTENSIONS
    assert is_image_file("a/B.JPG") and is_image_file("x.TiFf")
    assert not is_image_file("notes.txt")


def test_plain_rgb_roundtrip(tmp_path):
    p = tmp_path / "a.png"
    _rgb().save(p)
    arr = read_image(p)
    assert arr.shape == (16, 20, 3) and arr.dtype == np.uint8
    assert tuple(arr[0, 0]) == (200, 30, 40)
    info = probe(p)
    assert info.ok and (info.format, info.mode, info.width, info.height) == ("PNG", "RGB", 20, 16)
    assert info.sha1 and info.bytes == p.stat().st_size


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert e.value.path == str(p) and "0 bytes" in e.value.reason
    assert str(p) in str(e.value) and "Fix:" in str(e.value)
    assert "0 bytes" in probe(p).error


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_reported(tmp_path, fmt):
    p = _truncated(tmp_path, fmt)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(p)
    info = probe(p)
    assert not info.ok and "truncated" in info.error
    assert info.format == fmt  # the header was readable


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="text"):
        read_image(p)
    assert "not an image" in probe(p).error


def test_html_page_named_jpg(tmp_path):
    p = tmp_path / "download.jpg"
    p.write_text("<!DOCTYPE html><html><body>404</body></html>")
    assert "HTML" in probe(p).error


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")
    assert probe(tmp_path / "nope.png").error == "file not found"


def test_png_named_jpg_is_read_by_content(tmp_path):
    p = tmp_path / "really_png.jpg"
    _rgb(colour=(1, 2, 3)).save(p, format="PNG")
    assert tuple(read_image(p)[5, 5]) == (1, 2, 3)
    info = probe(p)
    assert info.format == "PNG" and not info.extension_matches


def test_animated_gif_first_frame(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [_rgb(colour=(255, 0, 0)), _rgb(colour=(0, 0, 255)), _rgb(colour=(0, 255, 0))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = read_image(p)
    assert arr.shape == (16, 20, 3)
    r, g, b = arr[8, 10].astype(int)
    assert r > 200 and g < 50 and b < 50  # red, the first frame
    info = probe(p)
    assert info.n_frames == 3 and info.animated


def test_cmyk_jpeg_stays_red(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)  # PIL writes Adobe CMYK
    info = probe(p)
    assert info.mode == "CMYK"
    r, g, b = read_image(p)[8, 8].astype(int)
    assert r > 220 and g < 40 and b < 40


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(np.array([[65535, 32768], [0, 257]], np.uint16)).save(p)
    info = probe(p)
    assert info.mode.startswith("I")
    arr = read_image(p)
    assert arr.shape == (2, 2, 3)
    assert arr[0, 0, 0] == 255 and abs(int(arr[0, 1, 0]) - 128) <= 1
    assert arr[1, 0, 0] == 0 and arr[1, 1, 0] == 1
    assert (arr[..., 0] == arr[..., 2]).all()


def test_palette_png_with_transparency_composites_on_white(tmp_path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 5, 10))  # left half red, right half index 0 (transparent)
    im.save(p, transparency=0)
    assert probe(p).mode == "P"
    arr = read_image(p)
    assert tuple(arr[5, 2]) == (255, 0, 0)
    assert tuple(arr[5, 8]) == (255, 255, 255)


def test_palette_without_transparency(tmp_path):
    p = tmp_path / "pal.gif"
    _rgb(colour=(0, 128, 255)).convert("P").save(p)
    r, g, b = read_image(p)[3, 3].astype(int)
    assert b > 200 and r < 50


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_composited_on_white(tmp_path, mode):
    p = tmp_path / f"{mode}.png"
    if mode == "LA":
        im = Image.merge("LA", [Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 0)])
        im.paste((0, 255), (0, 0, 4, 8))  # left: opaque black, right: transparent
    else:
        im = Image.new("RGBA", (8, 8), (0, 0, 255, 0))
        im.paste((0, 0, 255, 255), (0, 0, 4, 8))
        im.putpixel((6, 6), (0, 0, 0, 128))  # half-transparent black over white -> grey
    im.save(p)
    arr = read_image(p)
    assert tuple(arr[4, 7]) == (255, 255, 255)
    if mode == "LA":
        assert tuple(arr[4, 1]) == (0, 0, 0)
    else:
        assert tuple(arr[4, 1]) == (0, 0, 255)
        assert 120 <= arr[6, 6, 0] <= 135


def test_grey_and_bilevel(tmp_path):
    Image.new("L", (6, 4), 77).save(tmp_path / "l.png")
    Image.new("1", (6, 4), 1).save(tmp_path / "one.png")
    assert (read_image(tmp_path / "l.png") == 77).all()
    assert (read_image(tmp_path / "one.png") == 255).all()


def test_float_tiff(tmp_path):
    p = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32), mode="F").save(p)
    arr = read_image(p)
    assert arr[0, 0, 0] == 0 and arr[1, 0, 0] == 255 and abs(int(arr[0, 1, 0]) - 128) <= 1


def test_exif_orientation_applied(tmp_path):
    p = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    _rgb(h=10, w=30).save(p, exif=exif)
    info = probe(p)
    assert info.orientation == 6
    assert read_image(p).shape == (30, 10, 3)


def test_huge_image_over_lowered_limit(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(p)
    with pytest.raises(ImageReadError) as e:
        read_image(p, max_pixels=5000)
    msg = str(e.value)
    assert "10,000 pixels" in msg and "set_max_pixels" in msg and str(p) in msg
    info = probe(p, max_pixels=5000)
    assert not info.ok and (info.width, info.height) == (100, 100)
    assert read_image(p, max_pixels=20000).shape == (100, 100, 3)


def test_set_max_pixels_global_and_pil_hard_limit(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(p)  # 40,000 px: over 2x the limit, PIL itself refuses
    old = Image.MAX_IMAGE_PIXELS
    try:
        images.set_max_pixels(5000)
        assert images.get_max_pixels() == 5000 and Image.MAX_IMAGE_PIXELS == 5000
        with pytest.raises(ImageReadError, match="set_max_pixels"):
            read_image(p)
        assert not probe(p).ok
        images.set_max_pixels(50_000)
        assert read_image(p).shape == (200, 200, 3)
    finally:
        images.set_max_pixels(old)
    assert images.get_max_pixels() == old


def test_names_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "raie manta é"
    folder.mkdir()
    p = folder / "poisson clown ñ 鱼.png"
    _rgb().save(p)
    assert read_image(p).shape == (16, 20, 3)
    assert probe(p).ok


def test_error_is_picklable():
    import pickle

    e = pickle.loads(pickle.dumps(ImageReadError("a b.jpg", "empty file (0 bytes)")))
    assert e.path == "a b.jpg" and e.reason == "empty file (0 bytes)"


def test_pils_bomb_warning_is_silenced_while_the_reader_opens_a_file_only(tmp_path):
    # 95 megapixels: over PIL's default limit (about 89), under twice it, where PIL only warns.
    # Before, read_image and probe let PIL's raw DecompressionBombWarning through, next to their
    # own report; the silencing must not reach the process's filters (threads included).
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    if images.get_max_pixels() != Image.MAX_IMAGE_PIXELS or Image.MAX_IMAGE_PIXELS is None:
        pytest.skip("the limit was changed")
    path = tmp_path / "huge.png"
    write_png_header(path, 10_000, 9_500)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        inside = list(warnings.filters)
        with pytest.raises(ImageReadError, match="over the decompression-bomb limit"):
            read_image(path)
        assert "over the decompression-bomb limit" in probe(path).error
        with ThreadPoolExecutor(max_workers=8) as pool:  # scopes of threads must not interleave
            errors = list(pool.map(lambda _: probe(path).error, range(64)))
        assert all("decompression-bomb limit" in e for e in errors)
        assert warnings.filters == inside
        with Image.open(path):  # outside the reader, PIL's warning is the caller's as before
            pass
    assert [w for w in record if w.category is not Image.DecompressionBombWarning] == []
    assert len(record) == 1
    assert warnings.filters == before


def test_a_file_not_found_under_one_unicode_form_names_the_other(tmp_path):
    import unicodedata

    nfc, nfd = (unicodedata.normalize(form, "Gådus_é.png") for form in ("NFC", "NFD"))
    _rgb().save(tmp_path / nfd)  # as macOS writes names
    if (tmp_path / nfc).exists():
        pytest.skip("the file system finds a name in either form")
    with pytest.raises(ImageReadError) as caught:
        read_image(tmp_path / nfc)
    assert caught.value.reason == (
        f"file not found under its name in NFC, {ascii(str(tmp_path / nfc))}, but a file whose "
        f"name differs only in Unicode normalisation lies there: {ascii(str(tmp_path / nfd))} "
        "(NFD); give the name as the file has it")
    assert probe(tmp_path / nfc).error == caught.value.reason
    with pytest.raises(ImageReadError, match=r"file not found\. Fix"):  # no such file at all
        read_image(tmp_path / "Gådus_ü.png")


def test_an_image_over_twice_pils_limit_is_named_as_any_oversized_file(tmp_path):
    # before: "too large for PIL's decompression-bomb limit (Image size (40000 pixels) exceeds
    # limit of 10000 pixels, could be decompression bomb DOS attack.)": PIL's doubled limit, not
    # the one set, and the fix without the number to pass
    p = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(p)  # 40,000 px: over 2x the limit, PIL itself refuses
    with images.using_max_pixels(5000):
        with pytest.raises(ImageReadError) as caught:
            read_image(p)
        assert caught.value.reason == "40,000 pixels is over the decompression-bomb limit of 5,000 pixels"
        assert "set_max_pixels(40000)" in caught.value.fix
        assert probe(p).error == caught.value.reason
        # a max_pixels= above PIL's own limit: the limit that refused the file is PIL's
        with pytest.raises(ImageReadError, match="over PIL's own decompression-bomb limit of 10,000"):
            read_image(p, max_pixels=100_000)


def test_oversized_reasons_give_the_pixels_and_the_flag_to_pass():
    ours = images.too_big_message(10000, 9000, 89_478_485)[0]
    pils = ("broken image header (Image size (200000000 pixels) exceeds limit of 178956970 pixels, "
            "could be decompression bomb DOS attack.)")
    assert images.oversized_pixels(ours) == 90_000_000
    assert images.oversized_pixels(pils) == 200_000_000
    assert images.oversized_pixels("empty file (0 bytes)") is None
    assert images.max_pixels_hint(["empty file (0 bytes)"]) == ""
    with images.using_max_pixels(89_478_485):
        assert images.max_pixels_hint([ours, "empty file (0 bytes)"]) == (
            "1 file is over the decompression-bomb limit of 89,478,485 pixels (90,000,000 pixels): "
            "if you trust it, pass --max-pixels 90000000 to read it, or resize it")
        assert images.max_pixels_hint([ours, pils], flag="max_pixels=").startswith(
            "2 files are over the decompression-bomb limit of 89,478,485 pixels (the largest: "
            "200,000,000 pixels): if you trust them, pass max_pixels= 200000000")


def test_using_max_pixels_puts_the_earlier_limit_back():
    before, pil_before = images.get_max_pixels(), Image.MAX_IMAGE_PIXELS
    with images.using_max_pixels(1234):
        assert images.get_max_pixels() == 1234 and Image.MAX_IMAGE_PIXELS == 1234
    assert images.get_max_pixels() == before and Image.MAX_IMAGE_PIXELS == pil_before
    with pytest.raises(RuntimeError), images.using_max_pixels(99):
        raise RuntimeError("a failed command")
    assert images.get_max_pixels() == before


def test_a_link_to_a_file_that_is_gone_is_named_as_such(tmp_path):
    # before: "file not found", naming the link, which is there, and not the target, which is not
    link = tmp_path / "cod_1.png"
    link.symlink_to(tmp_path / "moved" / "cod_1.png")
    with pytest.raises(ImageReadError) as caught:
        read_image(link)
    assert caught.value.reason == f"a link to a file that does not exist ({tmp_path / 'moved' / 'cod_1.png'})"
    assert caught.value.fix == "point the link at the image, or remove the link"
    assert probe(link).error == caught.value.reason
    assert images.missing_file_reason(tmp_path / "none.png") == "file not found"


# --------------------------------------------------------------------- reduced-scale JPEG decoding
@pytest.mark.parametrize(
    "width, height, size, scale",
    [(1600, 1200, (224, 224), 4), (900, 700, (224, 224), 2), (447, 900, (224, 224), 1),
     (448, 448, (224, 224), 2), (4000, 3000, (128, 128), 8), (1000, 600, (96, 160), 4),
     (1000, 600, (160, 96), 2), (300, 200, (224, 224), 1)],
)
def test_jpeg_scale_is_the_scale_pils_draft_takes(tmp_path, width, height, size, scale):
    from keras_species.data.images import jpeg_scale

    assert jpeg_scale(width, height, size) == scale
    Image.fromarray(smooth_image(height, width)).save(tmp_path / "a.jpg", quality=90)
    with Image.open(tmp_path / "a.jpg") as im:
        im.draft(None, (size[1], size[0]))
        assert im.size == (-(-width // scale), -(-height // scale))
    arr = read_image(tmp_path / "a.jpg", draft=size)
    assert arr.shape == (-(-height // scale), -(-width // scale), 3)
    # never below the output size on either axis, so the resize still only shrinks or copies
    assert arr.shape[0] >= min(size[0], height) and arr.shape[1] >= min(size[1], width)


def test_a_drafted_jpeg_has_the_pixels_tensorflow_decodes_at_that_ratio(tmp_path):
    import tensorflow as tf

    for i, (h, w, progressive) in enumerate([(1200, 1600, False), (700, 900, True), (2100, 180, False)]):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(smooth_image(h, w)).save(path, quality=85, progressive=progressive)
        for size in ((128, 128), (96, 64)):
            scale = images.jpeg_scale(w, h, size)
            tf_pixels = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3,
                                          dct_method="INTEGER_ACCURATE", ratio=scale).numpy()
            np.testing.assert_array_equal(read_image(path, draft=size), tf_pixels)
    grey = tmp_path / "grey.jpg"
    Image.fromarray(smooth_image(800, 600)[..., 0]).save(grey)
    assert read_image(grey, draft=(128, 128)).shape == (200, 150, 3)


def test_draft_reads_the_rule_on_the_upright_image_and_leaves_other_formats_alone(tmp_path):
    # stored 1000 wide, 300 high, EXIF 6: upright it is 300 wide and 1000 high. For 64 x 128
    # (h, w) upright the scale is min(300 // 128, 1000 // 64) = 2; on the stored image it would be
    # min(1000 // 128, 300 // 64) = 4
    im = Image.fromarray(smooth_image(300, 1000))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "rot.jpg", draft=(64, 128)).shape == (500, 150, 3)
    Image.fromarray(smooth_image(600, 800)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", draft=(64, 64)).shape == (600, 800, 3)
    frames = [Image.fromarray(smooth_image(600, 800)), Image.fromarray(smooth_image(600, 800)[::-1].copy())]
    frames[0].save(tmp_path / "two.mpo", save_all=True, append_images=frames[1:])
    assert read_image(tmp_path / "two.mpo", draft=(64, 64)).shape == (600, 800, 3)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="POSIX special files")
def test_named_pipes_and_devices_are_named_not_read(tmp_path):
    from keras_species.data.pipeline import KIND_BAD, classify_file

    os.mkfifo(tmp_path / "a.jpg")  # opening it for reading waited for a writer for ever
    os.symlink("/dev/zero", tmp_path / "z.png")  # reading it never ended (MemoryError)
    for name, why in (("a.jpg", "a named pipe (FIFO), not an image file"), ("z.png", "a device, not an image file")):
        path = str(tmp_path / name)
        assert classify_file(path) == (KIND_BAD, why)
        assert images.probe(path).error == why
        with pytest.raises(ImageReadError, match=why.replace("(", r"\(").replace(")", r"\)")):
            images.read_image(path)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_probe_finds_damaged_pixel_data_in_a_png(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    i = data.find(b"IDAT")
    n = int.from_bytes(data[i - 4 : i], "big")
    pixels = bytearray(data[i + 4 : i + 4 + n])
    pixels[n // 2] ^= 0xFF  # one byte of a bad copy, the checksum made to match
    path = tmp_path / "x.png"
    path.write_bytes(data[: i - 4] + _png_chunk(b"IDAT", bytes(pixels)) + _png_chunk(b"IEND", b""))
    # getexif() ran first: it decoded the pixels, swallowed the error, and load() had nothing left
    assert "cannot decode the pixel data" in images.probe(path).error


@pytest.mark.parametrize("chunk", [b"IDAT", b"tEXt"])
def test_a_png_with_a_bad_checksum_is_corrupt_for_the_audit(tmp_path, chunk):
    buf = io.BytesIO()
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text("Comment", "hello")
    Image.new("RGB", (12, 10), (10, 200, 30)).save(buf, "PNG", pnginfo=info)
    data = bytearray(buf.getvalue())
    i = data.find(chunk)
    n = int.from_bytes(data[i - 4 : i], "big")
    data[i + 4 + n] ^= 0xFF  # the checksum, not the data: TensorFlow refuses one, PIL the other
    path = tmp_path / "x.png"
    path.write_bytes(bytes(data))
    why = f"damaged PNG: bad checksum in its {chunk.decode()} chunk"
    assert images.probe(path).error.startswith(why)
    if chunk == b"tEXt":  # PIL refuses it: predict names the damage, not an "unknown format"
        with pytest.raises(ImageReadError, match=why):
            images.read_image(path)


def test_a_heic_photo_is_named_as_one_with_how_to_convert_it(tmp_path):
    # before: "not an image PIL recognises ... Fix: replace the file with a good copy"; a .heic
    # file was skipped for its extension with no word of what it is
    import warnings

    from keras_species.data import sources
    from keras_species.data.pipeline import KIND_BAD, classify_file

    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
    (tmp_path / "cod").mkdir()
    (tmp_path / "cod" / "iphone.jpg").write_bytes(heic)
    with pytest.raises(images.ImageReadError) as err:
        images.read_image(str(tmp_path / "cod" / "iphone.jpg"))
    assert "a HEIC/HEIF photo (an iPhone's format)" in str(err.value)
    assert "Fix: convert it to JPEG" in str(err.value)
    assert classify_file(str(tmp_path / "cod" / "iphone.jpg"))[0] == KIND_BAD
    # AVIF (mif1 among its brands too) and MP4 files are not called HEIC
    for other in (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isomiso2"):
        assert "HEIC" not in images.describe_non_image(other)
    Image.new("RGB", (8, 8)).save(tmp_path / "cod" / "ok.png")
    (tmp_path / "cod" / "IMG_1.HEIC").write_bytes(heic)
    (tmp_path / "eel").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "eel" / "ok.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources.from_folder(tmp_path)
    said = " ".join(str(w.message) for w in caught)
    assert "1 .heic/.heif file(s) among them: HEIC photos" in said and "convert them to JPEG" in said
