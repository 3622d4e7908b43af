"""Tests of keras_species.data.pipeline: decoding paths, resize modes, labels, weights, cache."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from keras_species import cpu_budget
from keras_species.cpu_budget import usable_cores
from keras_species.data import pipeline as pipeline_mod
from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError
from keras_species.data.pipeline import (
    DECODE_CALLS_PER_CORE,
    KIND_BAD,
    KIND_FAST,
    KIND_GIF_BMP,
    KIND_PIL,
    KIND_PNG16,
    class_balance_weights,
    classify_file,
    decode_calls,
    make_dataset,
)
from tests.conftest import smooth_image


def folder_manifest(root: Path) -> Manifest:
    paths = sorted(str(p) for p in root.glob("*/*.*"))
    classes = sorted({Path(p).parent.name for p in paths})
    labels = np.array([classes.index(Path(p).parent.name) for p in paths])
    return Manifest(paths, labels, classes)


def solid(path: Path, colour, size=(40, 20), mode="RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def one(ds):
    return [tuple(t.numpy() for t in batch) if isinstance(batch, tuple) else batch.numpy() for batch in ds]


# --------------------------------------------------------------------------- shapes and resize
def test_shapes_dtypes_and_range(image_folder):
    m = folder_manifest(image_folder)
    ds = make_dataset(m, 24, 5)
    batches = one(ds)
    assert [b[0].shape for b in batches] == [(5, 24, 24, 3)] * 3 + [(3, 24, 24, 3)]
    x, y = batches[0]
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 255.0 and x.max() > 1.5  # 0-255, not 0-1
    # training=False keeps the manifest's order
    labels = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(labels, m.labels)


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True])
def test_a_batch_size_that_cannot_work_is_refused(image_folder, batch_size):
    with pytest.raises(ValueError, match=r"batch_size must be a whole number >= 1 \(--batch-size\)"):
        make_dataset(folder_manifest(image_folder), 24, batch_size)
    assert one(make_dataset(folder_manifest(image_folder), 24, np.int64(9)))[0][0].shape[0] == 9


@pytest.mark.parametrize("size", [(32,), (32, 32, 3), "32", 32.5, True, (32, 2.5)])
def test_an_image_size_that_is_not_a_size_is_named(image_folder, size):
    with pytest.raises(ValueError, match=r"must be a whole number or a \(height, width\) pair"):
        make_dataset(folder_manifest(image_folder), size, 4)


def test_resize_pad_keeps_aspect_with_black_border(tmp_path):
    p = solid(tmp_path / "a" / "wide.png", (200, 100, 50), size=(40, 20))  # 2:1
    m = Manifest([str(p)], np.array([0]), ["a"])
    (x, _), = one(make_dataset(m, 32, 1, resize="pad", cache=False))
    img = x[0]
    assert img.shape == (32, 32, 3)
    assert np.all(img[:6] == 0) and np.all(img[-6:] == 0)  # 8 rows of padding top and bottom
    np.testing.assert_allclose(img[12:20, 4:28], np.broadcast_to([200, 100, 50], (8, 24, 3)), atol=1)


def test_resize_stretch_and_crop(tmp_path):
    # left half red, right half blue, 40x20: centre crop keeps the middle, stretch keeps all
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    (tmp_path / "a").mkdir()
    Image.fromarray(arr).save(tmp_path / "a" / "x.png")
    m = Manifest([str(tmp_path / "a" / "x.png")], np.array([0]), ["a"])
    (s, _), = one(make_dataset(m, 20, 1, resize="stretch", cache=False))
    (c, _), = one(make_dataset(m, 20, 1, resize="crop", cache=False))
    assert s.shape == c.shape == (1, 20, 20, 3)
    assert s[0, 10, 1, 0] > 250 and s[0, 10, 18, 2] > 250  # edges of the full image
    # the crop covers x in 10..30 of the original: still red left, blue right, no black border
    assert c[0, 10, 0, 0] > 250 and c[0, 10, 19, 2] > 250 and c.min() == 0 and c.max() == 255


# --------------------------------------------------------------------------- decoding paths
def test_classify_and_decode_special_files(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    # CMYK JPEG: TF would read the raw ink values as RGB
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(d / "cmyk.jpg", quality=95)  # pure red ink
    # 16-bit grey PNG at 50% grey
    Image.fromarray(np.full((32, 32), 32896, np.uint16)).save(d / "grey16.png")
    # GIF with two frames: first red, second green
    frames = [Image.new("RGB", (32, 32), c).convert("P") for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    # palette with transparency: PIL composites the transparent colour on white
    pal = Image.new("P", (32, 32), 0)
    pal.putpalette([0, 0, 0] + [10, 20, 30] * 255)
    pal.save(d / "pal.png", transparency=0)
    solid(d / "plain.bmp", (1, 2, 3), size=(32, 32))
    assert classify_file(str(d / "cmyk.jpg"))[0] == KIND_PIL
    assert classify_file(str(d / "grey16.png"))[0] == KIND_PNG16
    assert classify_file(str(d / "anim.gif"))[0] == KIND_GIF_BMP
    assert classify_file(str(d / "pal.png"))[0] == KIND_PIL
    assert classify_file(str(d / "plain.bmp"))[0] == KIND_GIF_BMP
    names = ["cmyk.jpg", "grey16.png", "anim.gif", "pal.png", "plain.bmp"]
    m = Manifest([str(d / n) for n in names], np.zeros(5, int), ["a"])
    (x, _), = one(make_dataset(m, 16, 5, cache=False))
    centre = x[:, 8, 8]
    assert centre[0, 0] > 200 and centre[0, 1] < 60 and centre[0, 2] < 60  # red, not cyan
    np.testing.assert_allclose(centre[1], [128, 128, 128], atol=1)  # 32896 / 257 = 128
    assert centre[2, 0] > 200 and centre[2, 1] < 50  # first GIF frame (red)
    np.testing.assert_allclose(centre[3], [255, 255, 255], atol=1)
    np.testing.assert_allclose(centre[4], [1, 2, 3], atol=1)


def test_jpegs_decode_to_the_pixels_pil_gives(tmp_path):
    # predict reads with PIL: training must see the same pixels (TF's default DCT differs)
    import tensorflow as tf

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import decode_8bit

    rng = np.random.default_rng(0)
    arr = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "noisy.jpg", quality=90)  # 4:2:0 chroma
    data = tf.io.read_file(str(tmp_path / "noisy.jpg"))
    np.testing.assert_array_equal(decode_8bit(data).numpy(), read_image(str(tmp_path / "noisy.jpg")))
    fast = tf.io.decode_image(data, channels=3).numpy().astype(int)
    assert np.abs(fast - read_image(str(tmp_path / "noisy.jpg")).astype(int)).max() > 0  # why it matters
    m = Manifest([str(tmp_path / "noisy.jpg")], np.array([0]), ["a"])
    (x, _), = one(make_dataset(m, (48, 64), 1, cache=False))
    np.testing.assert_array_equal(x[0], read_image(str(tmp_path / "noisy.jpg")).astype(np.float32))


@pytest.mark.parametrize("resize", ["stretch", "crop", "pad"])
def test_big_jpegs_decode_at_a_reduced_scale_with_the_pixels_predict_reads(tmp_path, resize):
    import tensorflow as tf

    from keras_species.data.pipeline import KIND_JPEG_SCALED, check_files, resize_image, to_uint8
    from keras_species.predict import image_dataset

    root = tmp_path / "a"
    root.mkdir()
    for name, (h, w) in {"huge": (2400, 3200), "big": (900, 1200), "wide": (300, 1400),
                         "small": (200, 150)}.items():
        Image.fromarray(smooth_image(h, w)).save(root / f"{name}.jpg", quality=90)
    im = Image.fromarray(smooth_image(500, 900))
    exif = im.getexif()
    exif[0x0112] = 8
    im.save(root / "rotated.jpg", exif=exif.tobytes())  # read by PIL, drafted alike
    frames = [Image.fromarray(smooth_image(600, 800)), Image.fromarray(smooth_image(600, 800)[::-1].copy())]
    frames[0].save(root / "two.mpo", format="MPO", save_all=True, append_images=frames[1:])
    Image.fromarray(smooth_image(700, 700)).save(root / "square.png")
    paths = sorted(str(p) for p in root.iterdir())
    names = [Path(p).stem for p in paths]

    kinds = dict(zip(names, check_files(paths, image_size=(64, 96))[0].tolist()))
    assert kinds == {"huge": KIND_JPEG_SCALED[8], "big": KIND_JPEG_SCALED[8], "wide": KIND_JPEG_SCALED[4],
                     "small": KIND_FAST, "rotated": KIND_PIL, "two": KIND_FAST, "square": KIND_FAST}
    assert dict(zip(names, check_files(paths)[0].tolist()))["huge"] == KIND_FAST  # no size: full

    m = Manifest(paths, np.zeros(len(paths), int), ["a"])
    train = np.concatenate([b.numpy() for b in make_dataset(m, (64, 96), 4, label_mode="none",
                                                             resize=resize, cache=False)])
    pred = np.concatenate([b[1].numpy() for b in image_dataset(paths, (64, 96), 4, resize=resize)])
    np.testing.assert_array_equal(train, pred.astype(np.float32))
    # the huge one really was decoded at 1/8 scale (its full-size decode gives other pixels)
    huge = names.index("huge")
    data = tf.io.read_file(paths[huge])
    for ratio, same in ((8, True), (1, False)):
        img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE", ratio=ratio)
        ref = to_uint8(resize_image(img, (64, 96), resize)).numpy().astype(np.float32)
        assert np.array_equal(train[huge], ref) == same


def _graph_ops(ds) -> set[str]:
    """Every op type in ``ds``'s graph, its functions included."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def test_jpegs_and_pngs_decode_in_one_kernel_with_no_branch(tmp_path):
    # a branch in a tf.data map is a function call per image: the usual data set (JPEGs and
    # PNGs, checked up front) must not pay one, and must still see PIL's pixels
    import tensorflow as tf

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import decode_8bit, decode_jpeg_png

    rng = np.random.default_rng(1)
    d = tmp_path / "a"
    d.mkdir()
    Image.fromarray((rng.random((24, 40, 3)) * 255).astype(np.uint8)).save(d / "noisy.jpg", quality=90)
    Image.fromarray((rng.random((24, 40)) * 255).astype(np.uint8)).save(d / "grey.jpg")
    Image.fromarray((rng.random((24, 40, 3)) * 255).astype(np.uint8)).save(d / "rgb.png")
    Image.fromarray((rng.random((24, 40, 3)) * 255).astype(np.uint8)).convert("P").save(d / "palette.png")
    paths = sorted(str(p) for p in d.iterdir())
    assert {classify_file(p)[0] for p in paths} == {KIND_FAST}
    for p in paths:
        data = tf.io.read_file(p)
        np.testing.assert_array_equal(decode_jpeg_png(data).numpy(), read_image(p))
        np.testing.assert_array_equal(decode_jpeg_png(data).numpy(), decode_8bit(data).numpy())
    ds = make_dataset(Manifest(paths, np.zeros(4, int), ["a"]), (24, 40), 4, cache=False)
    ops = _graph_ops(ds)
    assert "DecodeJpeg" in ops
    assert not ops & {"If", "StatelessIf", "Case", "StatelessCase", "DecodeImage"}
    (x, _), = one(ds)
    for img, p in zip(x, paths):
        np.testing.assert_array_equal(img, read_image(p).astype(np.float32))


@pytest.mark.parametrize(
    "names", [("plain.jpg", "rgba.png"), ("grey16.png", "rgba.png"), ("plain.jpg", "grey16.png"),
              ("plain.jpg", "plain.bmp"), ("anim.gif", "plain.png"), ("plain.bmp", "grey16.png")]
)
def test_any_two_decoding_paths_mix_in_one_dataset(tmp_path, names):
    # the kinds present are {0, 2} or {1, 2} as often as {0, 1}: each must pick its own branch
    d = tmp_path / "a"
    solid(d / "plain.jpg", (200, 10, 10), size=(32, 32), quality=95)
    solid(d / "plain.png", (10, 10, 200), size=(32, 32))
    solid(d / "plain.bmp", (1, 2, 3), size=(32, 32))
    frames = [Image.new("RGB", (32, 32), c).convert("P") for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.full((32, 32), 32896, np.uint16)).save(d / "grey16.png")
    solid(d / "rgba.png", (10, 200, 10, 255), size=(32, 32), mode="RGBA")
    expected = {"plain.jpg": [200, 10, 10], "grey16.png": [128, 128, 128], "rgba.png": [10, 200, 10],
                "plain.png": [10, 10, 200], "plain.bmp": [1, 2, 3], "anim.gif": [255, 0, 0]}
    paths = [str(d / n) for n in names for _ in range(2)]
    assert len({classify_file(p)[0] for p in paths}) == 2
    m = Manifest(paths, np.zeros(4, int), ["a"])
    (x, _), = one(make_dataset(m, 16, 4, cache=False))
    for centre, name in zip(x[:, 8, 8], [n for n in names for _ in range(2)]):
        np.testing.assert_allclose(centre, expected[name], atol=3)


@pytest.mark.parametrize(("orientation", "kind"), [(1, KIND_FAST), (6, KIND_PIL)])
def test_jpeg_with_a_large_exif_block_is_read_without_pil(tmp_path, monkeypatch, orientation, kind):
    # the frame header lies past the first 4 KiB: the check reads further instead of asking PIL
    exif = Image.Exif()
    exif[0x010E] = "x" * 12000  # ImageDescription
    exif[0x0112] = orientation
    path = tmp_path / "big_exif.jpg"
    Image.new("RGB", (48, 32), (200, 10, 10)).save(path, exif=exif.tobytes(), quality=95)
    assert path.read_bytes().find(b"\xff\xc0") > 12000
    monkeypatch.setattr(pipeline_mod, "_classify_with_pil", lambda *a: pytest.fail("PIL was used"))
    assert classify_file(str(path)) == (kind, "")


@pytest.mark.parametrize("orientation", [0, 9])
def test_an_orientation_pil_does_not_turn_is_upright(tmp_path, orientation):
    # before: Orientation 0 ("unknown", some cameras) and 9 were taken for turned images: read
    # through PIL, re-encoded by write_shards (5-10 levels off training), 9 counted as rotated
    from keras_species.data.audit import audit
    from keras_species.data.images import read_image

    exif = Image.Exif()
    exif[0x0112] = orientation
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "odd.jpg"
    Image.fromarray(smooth_image(32, 48)).save(path, exif=exif.tobytes(), quality=95)
    assert classify_file(str(path)) == (KIND_FAST, "")
    with Image.open(path) as im:
        np.testing.assert_array_equal(read_image(str(path)), np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    assert audit(Manifest([str(path)], np.zeros(1, int), ["a"]), progress=False).n_exif_rotated == 0


@pytest.mark.parametrize("order", [b"MM", b"II"])
def test_an_orientation_stored_as_a_long_is_read_as_pil_reads_it(tmp_path, order):
    # a first version of the 0/9 rule read two bytes of a 4-byte value: big-endian 6 read as 0,
    # taken for upright, and trained unturned while predict turned it
    bo = "big" if order == b"MM" else "little"
    tiff = (order + (42).to_bytes(2, bo) + (8).to_bytes(4, bo) + (1).to_bytes(2, bo)
            + (0x0112).to_bytes(2, bo) + (4).to_bytes(2, bo) + (1).to_bytes(4, bo) + (6).to_bytes(4, bo)
            + (0).to_bytes(4, bo))
    path = tmp_path / "long.jpg"
    Image.fromarray(smooth_image(20, 40)).save(path, quality=95, exif=b"Exif\x00\x00" + tiff)
    assert classify_file(str(path))[0] == KIND_PIL  # turned by PIL, as read_image turns it


def test_16bit_rgb_png_is_read_as_pil_reads_it(tmp_path):
    import tensorflow as tf

    arr = np.zeros((16, 16, 3), np.uint16)
    arr[..., 0], arr[..., 1], arr[..., 2] = 65535, 257 * 100, 0
    (tmp_path / "a").mkdir()
    tf.io.write_file(str(tmp_path / "a" / "rgb16.png"), tf.io.encode_png(tf.constant(arr)))
    path = str(tmp_path / "a" / "rgb16.png")
    assert classify_file(path)[0] == KIND_PIL  # PIL keeps the high byte: read as predict reads it
    (x, _), = one(make_dataset(Manifest([path], np.array([0]), ["a"]), 8, 1, cache=False))
    np.testing.assert_allclose(x[0, 4, 4], [255, 100, 0], atol=0.5)


def test_a_gif_whose_first_frame_is_smaller_than_its_canvas_trains_as_predict_reads_it(tmp_path):
    import io
    import struct

    from keras_species.data.images import read_image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)).quantize(16).save(buf, "GIF")
    gif = bytearray(buf.getvalue())
    gif[6:10] = struct.pack("<HH", 26, 16)  # a larger canvas ...
    d = gif.find(struct.pack("<HH", 20, 12), 10) - 5  # ... and the frame moved to (3, 2) on it
    assert gif[d] == 0x2C
    gif[d + 1 : d + 5] = struct.pack("<HH", 3, 2)
    (tmp_path / "a").mkdir()
    path = str(tmp_path / "a" / "offset.gif")
    Path(path).write_bytes(bytes(gif))
    assert classify_file(path)[0] == KIND_PIL  # TensorFlow returned the 20x12 frame, PIL the canvas
    (x, _), = one(make_dataset(Manifest([path], np.array([0]), ["a"]), (16, 26), 1, cache=False))
    np.testing.assert_array_equal(x[0], read_image(path).astype(np.float32))


def _turned_files(folder: Path) -> list[str]:
    """Files turned by an orientation placed where the check once did not look: an EXIF block
    after a JPEG's frame header, ImageMagick's EXIF text or XMP after a PNG's pixels."""
    import io
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    yy, xx = np.mgrid[0:12, 0:20]
    im = Image.fromarray(np.stack([xx * 12 % 256, yy * 20 % 256, xx * yy * 3 % 256], -1).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    block = exif.tobytes()
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    jpeg = buf.getvalue()
    sof = jpeg.find(b"\xff\xc0")
    end = sof + 2 + int.from_bytes(jpeg[sof + 2 : sof + 4], "big")
    app1 = b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block
    (folder / "after_sof.jpg").write_bytes(jpeg[:end] + app1 + jpeg[end:])
    comment = b"\xff\xfe" + struct.pack(">H", 6) + b"\xff\xda\x00\x01"  # a comment holding a scan marker
    (folder / "after_sof_com.jpg").write_bytes(jpeg[:end] + comment + app1 + jpeg[end:])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    png = buf.getvalue()
    iend = png.rfind(b"IEND") - 4
    text = f"\nexif\n{len(block):8d}\n{block.hex()}\n".encode()
    (folder / "raw_after_idat.png").write_bytes(
        png[:iend] + chunk(b"tEXt", b"Raw profile type exif\x00" + text) + png[iend:])
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
           b'syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
           b'</rdf:RDF></x:xmpmeta>')
    (folder / "xmp_after_idat.png").write_bytes(
        png[:iend] + chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp) + png[iend:])
    return [str(folder / n) for n in ("after_sof.jpg", "after_sof_com.jpg", "raw_after_idat.png",
                                      "xmp_after_idat.png")]


def test_orientations_the_check_once_missed_train_as_predict_reads_them(tmp_path):
    from keras_species.data.images import read_image

    (tmp_path / "a").mkdir()
    for path in _turned_files(tmp_path / "a"):
        assert read_image(path).shape == (20, 12, 3)  # PIL turns each one
        assert classify_file(path)[0] == KIND_PIL, path  # before: KIND_FAST, trained as stored
        (x, _), = one(make_dataset(Manifest([path], np.array([0]), ["a"]), (20, 12), 1, cache=False))
        np.testing.assert_array_equal(x[0], read_image(path).astype(np.float32))


def test_a_resized_16bit_png_gives_the_pixels_predict_gives(tmp_path):
    # before: the pipeline resized value / 257 unrounded, predict (read_image) the rounded uint8,
    # so after resizing the two differed (probabilities by up to 8e-4 in a user's check)
    import tensorflow as tf

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import resize_image, to_uint8

    (tmp_path / "a").mkdir()
    rng = np.random.default_rng(3)
    for channels, kind in ((1, KIND_PNG16), (3, KIND_PIL)):  # grey: /257 rounded; RGB: PIL's bytes
        path = str(tmp_path / "a" / f"noisy16_{channels}.png")
        arr = rng.integers(0, 65536, (20, 30, channels)).astype(np.uint16)
        tf.io.write_file(path, tf.io.encode_png(tf.constant(arr)))
        assert classify_file(path)[0] == kind
        for size in ((12, 17), (40, 50)):
            (x, _), = one(make_dataset(Manifest([path], np.array([0]), ["a"]), size, 1, cache=False))
            as_predict = to_uint8(resize_image(tf.constant(read_image(path)), size)).numpy()
            np.testing.assert_array_equal(x[0], as_predict.astype(np.float32))


def test_bad_files_are_skipped_with_a_warning(tmp_path):
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "imgs", per_class=3, ext="jpg")
    bad_dir = root / "cod"
    (bad_dir / "empty.jpg").write_bytes(b"")
    (bad_dir / "text.jpg").write_text("this is not an image")
    good = (bad_dir / "fish_0_0.jpg").read_bytes()
    (bad_dir / "truncated.jpg").write_bytes(good[: len(good) // 2])
    m = folder_manifest(root)
    with pytest.warns(UserWarning) as record:
        ds = make_dataset(m, 16, 4, training=True, seed=0)
    text = " ".join(str(w.message) for w in record)
    for name in ("empty.jpg", "text.jpg", "truncated.jpg"):
        assert name in text
    n = sum(int(x.shape[0]) for x, _ in ds)
    assert n == len(m) - 3  # the epoch completes with the good images


def test_bad_file_raises_when_asked(tmp_path):
    from keras_species.data.images import ImageReadError

    p = tmp_path / "a" / "empty.png"
    p.parent.mkdir()
    p.write_bytes(b"")
    assert classify_file(str(p))[0] == KIND_BAD
    with pytest.raises(ImageReadError, match="empty.png"):
        make_dataset(Manifest([str(p)], np.array([0]), ["a"]), 8, on_error="raise")


# --------------------------------------------------------------------------- labels
def test_label_modes_and_smoothing(image_folder):
    m = folder_manifest(image_folder)
    (_, y), *_ = one(make_dataset(m, 8, 18, label_mode="onehot", label_smoothing=0.3))
    assert y.dtype == np.float32 and y.shape == (18, 3)
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.sort(np.unique(y.round(4))), [0.1, 0.8])  # 0.3/3, 0.7+0.1
    (_, y), *_ = one(make_dataset(m, 8, 18, label_mode="multihot"))
    np.testing.assert_array_equal(y, m.label_matrix())
    x, *_ = one(make_dataset(m, 8, 18, label_mode="none"))
    assert x.shape == (18, 8, 8, 3)  # images only
    with pytest.raises(ValueError, match="label smoothing"):
        make_dataset(m, 8, label_mode="sparse", label_smoothing=0.1)


def test_multilabel_smoothing_and_unlabelled(image_folder):
    m = folder_manifest(image_folder)
    multi = Manifest(m.paths, m.label_matrix() | np.eye(3, dtype=np.uint8)[np.zeros(len(m), int)], m.class_names)
    (_, y), *_ = one(make_dataset(multi, 8, 18, label_smoothing=0.2))
    np.testing.assert_allclose(np.unique(y.round(4)), [0.1, 0.9])
    unl = Manifest(m.paths, np.where(np.arange(len(m)) % 2, m.labels, UNLABELLED), m.class_names)
    with pytest.raises(ManifestError, match="unlabelled"):
        make_dataset(unl, 8)
    with pytest.raises(ManifestError, match="unlabelled"):
        make_dataset(unl, 8, label_mode="onehot")
    assert one(make_dataset(unl, 8, 18, label_mode="none"))[0].shape[0] == 18


# --------------------------------------------------------------------------- weights
def test_balanced_weights_single_label():
    m = Manifest([f"{i}.png" for i in range(8)], np.array([0] * 6 + [1] * 2), ["cod", "eel"])
    w = class_balance_weights(m)
    # sklearn: n / (C * count) = 8/12 and 8/4; already mean 1
    np.testing.assert_allclose(w, [8 / 12] * 6 + [2.0] * 2, rtol=1e-6)
    np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-6)
    wd = class_balance_weights(m, {"eel": 3.0})
    np.testing.assert_allclose(wd[-1] / wd[0], 3.0, rtol=1e-6)
    np.testing.assert_allclose(wd.mean(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown classes"):
        class_balance_weights(m, {"shark": 2.0})


def test_balanced_weights_multilabel(tmp_path):
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 0]], np.uint8)
    m = Manifest([f"{i}.png" for i in range(4)], labels, ["cod", "eel"])
    w = class_balance_weights(m, normalize=False)
    # exploded tags: cod x3, eel x1, none x1 -> M=5, K=3: cod 5/9, eel 5/3, none 5/3
    np.testing.assert_allclose(w, [5 / 9, 5 / 9, (5 / 9 + 5 / 3) / 2, 5 / 3], rtol=1e-6)
    wn = class_balance_weights(m)
    np.testing.assert_allclose(wn.mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(wn / w, wn[0] / w[0], rtol=1e-6)
    path = tmp_path / "w.json"
    path.write_text('{"eel": 4.0, "__none__": 2.0}')
    wj = class_balance_weights(m, str(path), normalize=False)
    np.testing.assert_allclose(wj, [1.0, 1.0, 2.5, 2.0])
    # one tag-free image among many: no heavier than the rarest tag (before: 16/3 here, 2.8x it)
    labels = np.array([[1, 0]] * 12 + [[0, 1]] * 3 + [[0, 0]], np.uint8)
    w = class_balance_weights(Manifest([f"{i}.png" for i in range(16)], labels, ["cod", "eel"]),
                              normalize=False)
    np.testing.assert_allclose(w[[0, 12, 15]], [16 / 36, 16 / 9, 16 / 9], rtol=1e-6)


@pytest.mark.parametrize("data, why", [
    (b'{"cod": 1.0, "eel": 3',
     r" cannot be read \(not valid JSON \(Expecting ',' delimiter at line 1 column 22\)\)"),
    (b"", r" cannot be read \(empty file\)"),
    (b'{"\xe9el": 3.0}', r" cannot be read \(not UTF-8 text \(byte 0xe9 at offset 2\)\)"),
    (b"[1, 3]", r" cannot be read \(holds a JSON array, not an object\)"),
    (b'{"eel": "heavy"}', r': the weight of \'eel\' is "heavy", not a number >= 0'),
    (b'{"eel": null}', r": the weight of 'eel' is null, not a number >= 0"),
    (b'{"eel": -2}', r": the weight of 'eel' is -2, not a number >= 0"),
])
def test_a_damaged_class_weight_file_is_named_with_what_to_write(tmp_path, data, why):
    m = Manifest([f"{i}.png" for i in range(4)], np.array([0, 0, 0, 1]), ["cod", "eel"])
    path = tmp_path / "w.json"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^class weights {path}{why}[:;] write a JSON object "
                                         r'\{"class name": weight, \.\.\.\}'):
        class_balance_weights(m, str(path))
    with pytest.raises(ValueError, match=r"^class weights: the weight of 'eel' is True"):
        class_balance_weights(m, {"eel": True})


def test_sample_weights_are_yielded(image_folder):
    m = folder_manifest(image_folder).subset(np.arange(10))  # 6 cod + 4 eel
    (_, y, w), = one(make_dataset(m, 8, 10, sample_weights="balanced"))
    np.testing.assert_allclose(w, class_balance_weights(m), rtol=1e-6)
    (_, _, w2), = one(make_dataset(m, 8, 10, sample_weights=np.arange(10, dtype=np.float32)))
    np.testing.assert_array_equal(w2, np.arange(10))
    with pytest.raises(ValueError, match="sample_weights are all 0"):  # before: accepted, learnt nothing
        make_dataset(m, 8, 10, sample_weights=np.zeros(10))
    # any array-like (before: a range or a tensor fell through to the mode reader, "expected str,
    # bytes or os.PathLike object, not range", after every file was checked)
    import tensorflow as tf

    for like in (range(10), tf.range(10, dtype=tf.float32)):
        (_, _, w3), = one(make_dataset(m, 8, 10, sample_weights=like))
        np.testing.assert_array_equal(w3, np.arange(10))
    with pytest.raises(ValueError, match="sample_weights cannot be read as one number per image"):
        make_dataset(m, 8, 10, sample_weights=["a"] * 10)
    with pytest.raises(ValueError, match="class weights file .*weigths.json does not exist"):
        make_dataset(m, 8, 10, sample_weights=str(Path(m.paths[0]).parent / "weigths.json"))
    bad = Path(m.paths[0]).with_name("empty.png")
    bad.write_bytes(b"")
    with_bad = Manifest([*m.paths, str(bad)], np.append(m.labels, 0), m.class_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the empty file's warning
        with pytest.raises(ValueError, match="all 0 on the images that can be read"):
            make_dataset(with_bad, 8, 10, sample_weights=np.append(np.zeros(10), 1.0))


# --------------------------------------------------------------------------- cache, order, augment
def test_unordered_augmentation_gives_every_image_its_own_draw(tmp_path):
    # stop 30: with deterministic=False, images were augmented one a call, several calls at once,
    # and Keras' random layers read then advance one seed state: about 1% of images took another
    # image's rotation (identical images make two equal outputs mean one draw)
    Image.fromarray(smooth_image(32, 32)).save(tmp_path / "a.png")
    paths = [str(tmp_path / "a.png")] * 64
    m = Manifest(paths, np.zeros(64, np.int64), ["a", "b"])
    ds = make_dataset(m, 32, 16, training=True, augment="r1", seed=0, deterministic=False,
                      num_parallel_calls=8, cache=False)
    repeats = 0
    for _ in range(8):
        out = np.concatenate([x.numpy() for x, _ in ds]).reshape(64, -1)
        repeats += 64 - len(np.unique(out, axis=0))
    assert repeats == 0
    import keras

    own = keras.Sequential([keras.layers.RandomRotation(0.2, seed=5)])  # a layer of one's own
    ds = make_dataset(m, 32, 16, training=True, augment=own, seed=0, cache=False)
    assert len(np.unique(np.concatenate([x.numpy() for x, _ in ds]).reshape(64, -1), axis=0)) == 64
    three = Manifest(paths[:3], np.zeros(3, np.int64), ["a", "b"])  # a last batch of 1 image
    ds = make_dataset(three, 32, 2, training=True, augment="randaugment", seed=0, cache=False)
    # unordered (training's default): the batch of 1 may come first (CI saw [1, 2] once)
    assert sorted(int(x.shape[0]) for x, _ in ds) == [1, 2]


def test_onehot_labels_are_expanded_a_batch_at_a_time(image_folder, monkeypatch):
    # stop 30: a dense images x classes float matrix was built (and copied three times) before
    # any batch: 3.7 GB of set-up at 40,000 images of 5,000 classes
    import tensorflow as tf

    from keras_species.data.pipeline import encode_labels

    m = folder_manifest(image_folder)
    expected = encode_labels(m, "onehot", 0.1)
    monkeypatch.setattr(Manifest, "label_matrix", lambda self: pytest.fail("dense label matrix built"))
    ds = make_dataset(m, 8, 4, training=False, label_mode="onehot", label_smoothing=0.1)
    got = np.concatenate([y.numpy() for _, y in ds])
    assert ds.element_spec[1].dtype == tf.float32 and ds.element_spec[1].shape[-1] == m.num_classes
    np.testing.assert_allclose(got, expected, atol=1e-7)
    with pytest.raises(ValueError, match=r"label_smoothing=1.5 must be a number in \[0, 1\)"):
        make_dataset(m, 8, 4, label_mode="onehot", label_smoothing=1.5)


def test_cache_to_file_and_determinism(image_folder, tmp_path):
    m = folder_manifest(image_folder)
    kw = dict(training=True, augment="r1", seed=3, deterministic=True, cache=False)
    a = one(make_dataset(m, 16, 6, **kw))
    b = one(make_dataset(m, 16, 6, **kw))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    c = one(make_dataset(m, 16, 6, **{**kw, "seed": 4}))
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a, c))
    cache = tmp_path / "cache" / "train"
    ds = make_dataset(m, 16, 6, cache=str(cache))
    first, second = one(ds), one(ds)
    assert list(cache.parent.iterdir())  # the cache files exist
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("training", [False, True])
def test_autotuner_off_and_order_switch(image_folder, training):
    # the autotuner makes deleting an iterator wait (see dataset_options): every dataset turns it off
    ds = make_dataset(folder_manifest(image_folder), 16, 4, training=training, seed=0)
    assert ds.options().autotune.enabled is False
    assert ds.options().deterministic is (not training)
    assert make_dataset(folder_manifest(image_folder), 16, 4, deterministic=False).options().deterministic is False


def _decode_map_calls(ds) -> list[int]:
    """``num_parallel_calls`` of every parallel map in ``ds``'s graph whose function decodes."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    nodes = {n.name: n for n in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}

    def decodes(f, seen=()) -> bool:  # itself, or through a branch of tf.cond (decode_8bit)
        called = {a.func.name for n in f.node_def for a in n.attr.values() if a.func.name}
        return any(n.op in ("DecodeImage", "DecodeJpeg") for n in f.node_def) or any(
            decodes(functions[c], seen + (f.signature.name,)) for c in called - set(seen) if c in functions)

    decoders = {name for name, f in functions.items() if decodes(f)}
    return [int(tf.make_ndarray(nodes[n.input[-1]].attr["value"].tensor))
            for n in graph.node if n.op == "ParallelMapDatasetV2" and n.attr["f"].func.name in decoders]


@pytest.mark.parametrize("training", [False, True])
def test_decode_map_keeps_several_calls_per_core_in_flight(image_folder, training):
    # an ordered map with one call per core idles a core behind each big image (see decode_calls)
    m = folder_manifest(image_folder)
    cores = usable_cores()
    assert decode_calls() == DECODE_CALLS_PER_CORE * cores > cores
    assert decode_calls(3) == 3
    assert _decode_map_calls(make_dataset(m, 16, 4, training=training, seed=0)) == [decode_calls()]
    assert _decode_map_calls(make_dataset(m, 16, 4, training=training, seed=0, num_parallel_calls=3)) == [3]


@pytest.mark.parametrize("training", [False, True])
def test_under_a_cpu_quota_the_pipeline_runs_as_many_threads_as_it_gives(image_folder, monkeypatch, training):
    # a container limited to half a CPU on a 4-core host: TensorFlow would size its pool for 4
    monkeypatch.setattr(cpu_budget, "affinity_cores", lambda: 4)
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: 0.5)
    m = folder_manifest(image_folder)
    assert decode_calls() == DECODE_CALLS_PER_CORE
    ds = make_dataset(m, 16, 4, training=training, seed=0)
    assert _decode_map_calls(ds) == [DECODE_CALLS_PER_CORE]
    assert ds.options().threading.private_threadpool_size == 1
    assert sum(int(x.shape[0]) for x, _ in ds) == len(m)
    monkeypatch.setattr(cpu_budget, "cgroup_cpu_quota", lambda: None)  # no quota: TensorFlow's pool
    assert make_dataset(m, 16, 4, training=training, seed=0).options().threading.private_threadpool_size is None


def test_augment_and_mixup(image_folder):
    m = folder_manifest(image_folder)
    plain = one(make_dataset(m, 16, 18, cache=False))[0][0]
    ds = make_dataset(m, 16, 18, training=True, augment="r3", batch_augment="mixup",
                      sample_weights="balanced", seed=0, deterministic=True)
    x, y, w = one(ds)[0]
    assert x.shape == (18, 16, 16, 3) and y.shape == (18, 3) and w.shape == (18,)
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-5)
    assert ((y > 0.01) & (y < 0.99)).any()  # soft labels
    assert 0.0 <= x.min() and x.max() <= 255.0
    assert not np.allclose(np.sort(x.ravel()), np.sort(plain.ravel()))


def test_mixup_of_white_images_stays_within_255(tmp_path):
    # lam * 255 + (1 - lam) * 255 in float32 came out 255.000015: above the 0-255 promised
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cod", "eel"):
        (tmp_path / c).mkdir()
        for i in range(16):
            a = rng.integers(200, 256, (8, 8, 3)).astype(np.uint8)
            a[:4] = 255  # white on top: many pixels mix 255 with 255
            Image.fromarray(a).save(tmp_path / c / f"{i}.png")
    m = folder_manifest(tmp_path)
    top = 0.0
    for seed in range(10):
        for x, _ in make_dataset(m, 8, 16, training=True, batch_augment="mixup", seed=seed,
                                 deterministic=True, cache=False):
            top = max(top, float(x.numpy().max()))
    assert top == 255.0


def test_shared_fish_first_batch(shared_data):
    root = shared_data / "fish4knowledge23"
    if not root.is_dir():
        pytest.skip("fish4knowledge23 is absent")
    paths = sorted(str(p) for p in root.glob("*/*.png"))[:40]
    m = Manifest(paths, np.zeros(len(paths), int), ["fish"])
    (x, y), *_ = one(make_dataset(m, 32, 40))
    assert x.shape == (40, 32, 32, 3)


def test_exif_rotated_jpeg_goes_through_pil_upright(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red as stored
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turns it 90 degrees clockwise
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    plain = tmp_path / "a" / "plain.jpg"
    im.save(plain, quality=95)
    assert classify_file(str(path))[0] == KIND_PIL
    assert classify_file(str(plain))[0] == KIND_FAST
    (x, _), = one(make_dataset(Manifest([str(path)], np.array([0]), ["a"]), (40, 20), 1, cache=False))
    # upright: 40 high, 20 wide, the red half now on top
    assert x[0, 5, 10, 0] > 200 and x[0, 35, 10, 0] < 50


@pytest.mark.parametrize("mode", ["RGB", "I;16"])
def test_exif_rotated_png_is_read_upright_as_read_image_reads_it(tmp_path, mode):
    # PNG carries EXIF too (an eXIf chunk): read_image (predict, shards) turns the image upright,
    # so training must not decode it as stored with TensorFlow
    from keras_species.data.images import read_image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red as stored
    im = Image.fromarray(arr) if mode == "RGB" else Image.fromarray(arr[..., 0].astype(np.uint16) * 257)
    (tmp_path / "a").mkdir()
    paths = {}
    for orientation in (1, 6):
        exif = Image.Exif()
        exif[0x0112] = orientation
        paths[orientation] = str(tmp_path / "a" / f"o{orientation}.png")
        im.save(paths[orientation], exif=exif.tobytes())
    assert classify_file(paths[6])[0] == KIND_PIL
    assert classify_file(paths[1])[0] == (KIND_FAST if mode == "RGB" else KIND_PNG16)
    m = Manifest([paths[6], paths[1]], np.array([0, 0]), ["a"])
    (x, _), = one(make_dataset(m, (40, 20), 2, cache=False))
    np.testing.assert_array_equal(x[0], read_image(paths[6]).astype(np.float32))  # upright, 40 x 20
    assert x[0, 5, 10, 0] > 200 and x[0, 35, 10, 0] < 50  # the red half now on top


def test_png_check_reads_chunks_up_to_the_pixels(tmp_path):
    from keras_species.data.pipeline import _png_says_no_orientation as says_none

    def png(*chunks: bytes) -> bytes:
        body = b"".join(len(data).to_bytes(4, "big") + kind + data + b"CRC!" for kind, data in chunks)
        return b"\x89PNG\r\n\x1a\n" + body

    ihdr, idat = (b"IHDR", bytes(13)), (b"IDAT", b"x")
    assert says_none(png(ihdr, (b"pHYs", bytes(9)), (b"tEXt", b"Software\x00x"), idat, (b"eXIf", b"late")))
    assert not says_none(png(ihdr, (b"eXIf", b"MM\x00*"), idat))
    assert not says_none(png(ihdr, (b"zTXt", b"Raw profile type exif\x00\x00..."), idat))
    assert not says_none(png(ihdr, (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x/>"), idat))
    assert not says_none(png(ihdr, (b"iCCP", bytes(5000)), idat)[:4096])  # PIL decides


_XMP_SIDEWAYS = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
                 '22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
                 'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


def _save_with_orientation_in(where: str, im: Image.Image, path: Path) -> None:
    """Save ``im`` turned by orientation 6, stated the way ``where`` says (PIL reads each)."""
    from PIL import PngImagePlugin

    if where == "jpeg xmp":
        im.save(path, xmp=_XMP_SIDEWAYS.encode(), quality=95)
        return
    info = PngImagePlugin.PngInfo()
    if where == "png xmp":
        info.add_itxt("XML:com.adobe.xmp", _XMP_SIDEWAYS)
    else:  # ImageMagick's hex-encoded EXIF in a text chunk
        exif = Image.Exif()
        exif[0x0112] = 6
        raw = exif.tobytes()
        info.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}\n")
    im.save(path, pnginfo=info)


def test_a_jpeg_whose_xmp_says_upright_stays_off_pil(tmp_path, monkeypatch):
    path = tmp_path / "upright_xmp.jpg"
    Image.new("RGB", (40, 20), (10, 200, 10)).save(
        path, xmp=_XMP_SIDEWAYS.replace('="6"', '="1"').encode(), quality=95)
    monkeypatch.setattr(pipeline_mod, "_classify_with_pil", lambda *a: pytest.fail("PIL was used"))
    assert classify_file(str(path)) == (KIND_FAST, "")


@pytest.mark.parametrize("where", ["jpeg xmp", "png xmp", "png raw profile"])
def test_an_orientation_stated_outside_exif_is_applied_as_read_image_applies_it(tmp_path, where):
    from keras_species.data.images import read_image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / ("turned.jpg" if where.startswith("jpeg") else "turned.png")
    _save_with_orientation_in(where, Image.fromarray(arr), path)
    assert read_image(str(path)).shape == (40, 20, 3)  # PIL turns it upright
    assert classify_file(str(path))[0] == KIND_PIL
    (x, _), = one(make_dataset(Manifest([str(path)], np.array([0]), ["a"]), (40, 20), 1, cache=False))
    np.testing.assert_array_equal(x[0], read_image(str(path)).astype(np.float32))


# --------------------------------------------------------------------------- resize kernels, cache
def test_resize_antialiases_only_when_shrinking():
    import tensorflow as tf

    from keras_species.data.pipeline import resize_image, to_uint8

    # one-pixel black/white columns: shrunk 3x without antialiasing they alias to bold stripes
    stripes = np.zeros((60, 90, 3), np.uint8)
    stripes[:, 1::2] = 255
    small = resize_image(tf.constant(stripes), 30).numpy()
    plain = tf.image.resize(stripes.astype(np.float32), (30, 30)).numpy()
    assert plain.std() > 100  # what a plain bilinear shrink gives
    assert small.std() < 45 and abs(small.mean() - 127.5) < 10
    # both axes shrink: area averaging, i.e. each output pixel is the mean of its footprint
    np.testing.assert_allclose(
        small, tf.image.resize(stripes.astype(np.float32), (30, 30), method="area").numpy(), atol=1e-3
    )
    block = stripes[:2, :3].astype(np.float32).mean(axis=(0, 1))
    np.testing.assert_allclose(small[0, 0], block, atol=1e-3)
    # enlarging: plain bilinear; one axis shrinking, one growing: area on the first, then
    # bilinear on the second; the same size: the image itself
    rng = np.random.default_rng(0)
    for shape in ((20, 30, 3), (50, 10, 3), (40, 40, 3)):
        img = rng.integers(0, 256, shape).astype(np.uint8)
        f = img.astype(np.float32)
        if shape[0] > 40:
            f = tf.image.resize(f, (40, shape[1]), method="area")
        ref = tf.image.resize(f, (40, 40))
        got = resize_image(tf.constant(img), 40)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-3)  # uint8 read as it is
        np.testing.assert_allclose(resize_image(tf.constant(img, tf.float32), 40), got, atol=1e-3)
    same = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    np.testing.assert_allclose(resize_image(tf.constant(same), 40).numpy(), same, atol=1e-3)
    assert to_uint8(tf.constant([0.0, 0.49, 0.5, 254.5, 255.0])).numpy().tolist() == [0, 0, 1, 255, 255]


@pytest.mark.parametrize("resize", ["stretch", "pad", "crop"])
def test_in_a_graph_an_image_that_only_grows_skips_the_area_step_with_the_same_pixels(resize):
    import tensorflow as tf

    from keras_species.data.pipeline import resize_image, scale_images

    size = 40
    rng = np.random.default_rng(1)
    shapes = [(20, 30), (50, 10), (10, 50), (40, 40), (41, 40), (40, 41), (39, 39), (90, 120), (1, 1)]
    images = [rng.integers(0, 256, (*hw, 3)).astype(np.uint8) for hw in shapes]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.uint8)
    ).map(lambda x: resize_image(x, size, resize))
    for img, got in zip(images, ds):
        want = resize_image(tf.constant(img), size, resize).numpy()  # eager: decided in Python
        np.testing.assert_array_equal(got.numpy(), want, err_msg=f"{img.shape} {resize}")
        if resize == "stretch":  # the rule with both steps always run: area (an exact copy
            # when nothing shrinks), then bilinear
            batch, target = tf.constant(img)[None], tf.constant([size, size])
            area = tf.raw_ops.ResizeArea(images=batch, size=tf.minimum(tf.shape(batch)[1:3], target))
            ref = tf.raw_ops.ResizeBilinear(images=area, size=target, half_pixel_centers=True)
            np.testing.assert_array_equal(got.numpy(), ref[0].numpy(), err_msg=str(img.shape))
            whole = scale_images(batch, target)[0].numpy()
            np.testing.assert_array_equal(whole, ref[0].numpy(), err_msg=str(img.shape))

    # the area step sits behind a Switch whose other side goes straight to bilinear, for one
    # image (tf.data maps) and for a batch (the SavedModel's serving resize)
    for fn, spec in ((lambda x: resize_image(x, size, resize), [None, None, 3]),
                     (lambda x: scale_images(x, tf.constant([size, size])), [None, None, None, 3])):
        graph = tf.function(fn).get_concrete_function(tf.TensorSpec(spec, tf.uint8)).graph
        (area,) = [op for op in graph.get_operations() if op.type == "ResizeArea"]
        source = area.inputs[0]
        assert source.op.type == "Switch" and source.value_index == 1  # taken when it shrinks
        assert [c.type for c in source.op.outputs[0].consumers()] == ["Cast"]


def test_to_uint8_rounds_half_up_and_clips_in_one_kernel():
    import tensorflow as tf

    from keras_species.data.pipeline import to_uint8

    rng = np.random.default_rng(0)
    halves = np.arange(0, 255.5, 0.5, dtype=np.float32)
    near = np.arange(0.5, 255, 1, dtype=np.float32)
    x = np.concatenate([
        halves, (rng.random(200_000) * 255).astype(np.float32),
        np.nextafter(near, np.float32(0)), np.nextafter(near, np.float32(300)),
        np.float32([-3.0, -1e-6, 255.00002, 300.0]),
    ]).astype(np.float32)
    expected = np.clip(np.floor(x + np.float32(0.5)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(to_uint8(tf.constant(x)).numpy(), expected)  # eager
    np.testing.assert_array_equal(tf.function(to_uint8)(tf.constant(x)).numpy(), expected)
    images = x[: x.size // 48 * 48].reshape(-1, 4, 4, 3)
    got = np.concatenate([b.numpy() for b in tf.data.Dataset.from_tensor_slices(images)
                          .map(to_uint8, num_parallel_calls=2).batch(64)])
    np.testing.assert_array_equal(got.reshape(-1), expected[: got.size])  # in a tf.data map
    assert to_uint8(tf.zeros((2, 3, 3))).dtype == tf.uint8


@pytest.mark.parametrize("training", [False, True])
def test_cached_epoch_reads_no_file(image_folder, training):
    m = folder_manifest(image_folder)
    ds = make_dataset(m, 16, 5, training=training, seed=0)
    first = one(ds)
    for p in m.paths:  # a second epoch that decoded again would now lose every image
        Path(p).unlink()
    second = one(ds)
    assert sum(len(b[1]) for b in second) == len(m)
    if training:  # reshuffled: the same images, in another order
        key = lambda batches: sorted(x.tobytes() for b in batches for x in b[0])  # noqa: E731
        assert key(first) == key(second)
    else:  # evaluation: the cached batches, in the manifest's order
        for (x1, y1), (x2, y2) in zip(first, second):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("label_mode", ["auto", "none"])
def test_each_pass_counts_its_images_and_names_what_it_lost(image_folder, label_mode):
    # ignore_errors drops a file that fails after the check without a word at log level 2
    from keras_species.data.pipeline import lost_image_count

    m = folder_manifest(image_folder)
    ds = make_dataset(m, 16, 5, label_mode=label_mode, cache=False)  # every pass decodes
    cached = make_dataset(m, 16, 5, label_mode=label_mode)  # its first pass fills the cache
    lost = lost_image_count(ds)
    assert lost.expected == len(m) and lost_image_count(cached).expected == len(m)
    lost.reset()
    one(ds.take(1))
    assert lost.lost() <= len(m) - 5  # a pass cut short counts what it yielded and prefetched
    lost.reset()
    one(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lost.lost() == 0 and lost.report("epoch 1") == 0  # nothing lost: nothing said
    Path(m.paths[2]).write_bytes(b"not an image any more")  # changed after the check
    lost.reset()
    assert sum(len(b[0] if isinstance(b, tuple) else b) for b in one(ds)) == len(m) - 1
    with pytest.warns(UserWarning, match=rf"epoch 2: 1 of the {len(m)} images could not be decoded") as w:
        assert lost.report("epoch 2") == 1
    assert m.paths[2] in str(w[0].message) and "not an image" in str(w[0].message)
    lost.reset()
    one(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lost.report("epoch 3") == 1  # the same shortfall again: said once
    counted = lost_image_count(cached)
    counted.reset()
    assert sum(len(b[0] if isinstance(b, tuple) else b) for b in one(cached)) == len(m) - 1
    with pytest.warns(UserWarning, match="1 of the"):
        counted.report("the pass that filled the cache")
    # nothing to count where a pass cannot lose an image quietly, or cannot be counted whole
    with pytest.warns(UserWarning, match="skipping 1 unreadable"):
        assert lost_image_count(make_dataset(m, 16, 5, drop_remainder=True)) is None
    Path(m.paths[2]).unlink()
    assert lost_image_count(make_dataset(m.subset(np.arange(len(m)) != 2), 16, 5, on_error="raise")) is None
    assert lost_image_count(pipeline_mod) is None  # anything else: no counter


def test_decompression_bomb_limit_in_the_check(tmp_path):
    p = solid(tmp_path / "a" / "big.png", (1, 2, 3), size=(40, 20))
    assert classify_file(str(p))[0] == KIND_FAST
    kind, reason = classify_file(str(p), max_pixels=100)
    assert kind == KIND_BAD and "decompression-bomb" in reason


def test_the_check_names_a_bad_file_as_read_image_does(tmp_path):
    # shard and training (the check) and audit/predict (read_image) gave one file two reasons
    from keras_species.data.images import ImageReadError, read_image

    text = tmp_path / "fake.jpg"
    text.write_text("garbage bytes\nmore\n")
    cut = tmp_path / "cut.png"
    solid(tmp_path / "whole.png", (1, 2, 3), size=(64, 64))
    cut.write_bytes((tmp_path / "whole.png").read_bytes()[:30])  # cut inside the PNG header
    for path in (text, cut):
        with pytest.raises(ImageReadError) as err:
            read_image(str(path))
        assert classify_file(str(path)) == (KIND_BAD, err.value.reason), path
    assert classify_file(str(text))[1] == "not an image: the file is text starting 'garbage bytes\\nmore\\n'"


def test_the_threaded_file_check_leaves_the_warning_filters_as_they_were(tmp_path):
    # PIL-parsed files (TIFF) go through the check's warning scope; on threads, unlocked
    # catch_warnings scopes interleave and can leave "ignore" filters on for the whole process
    import warnings

    paths = []
    for i in range(300):
        path = tmp_path / f"{i}.tif"
        Image.new("RGB", (4, 4), (i % 256, 0, 0)).save(path)
        paths.append(str(path))
    before = list(warnings.filters)
    for _ in range(5):
        kinds, bad = pipeline_mod.check_files(paths, workers=16)
        assert not bad and (kinds == pipeline_mod.KIND_PIL).all()
    assert list(warnings.filters) == before


def test_the_check_names_missing_files_links_folders_and_huge_images_as_read_image_does(tmp_path):
    # the check said "cannot open the file (No such file or directory)" of a missing file and of
    # a link whose target is gone, and "broken image header (Image size ... exceeds limit ...)"
    # of an image over twice PIL's limit, where read_image (audit, predict) names them plainly
    from keras_species.data.images import ImageReadError, read_image, using_max_pixels

    gone = tmp_path / "link.png"
    gone.symlink_to(tmp_path / "moved" / "x.png")
    folder = tmp_path / "dir.png"
    folder.mkdir()
    huge = solid(tmp_path / "huge.png", (1, 2, 3), size=(40, 20))  # 800 px: over twice 100
    for path in (tmp_path / "missing.png", gone, folder, huge):
        with using_max_pixels(100):
            with pytest.raises(ImageReadError) as err:
                read_image(str(path))
            assert classify_file(str(path)) == (KIND_BAD, err.value.reason), path
    assert classify_file(str(gone))[1] == f"a link to a file that does not exist ({tmp_path / 'moved' / 'x.png'})"
    assert classify_file(str(tmp_path / "missing.png"))[1] == "file not found"
    with using_max_pixels(100):
        assert classify_file(str(huge))[1] == "800 pixels is over the decompression-bomb limit of 100 pixels"


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _bmp16(path: Path, w: int = 50, h: int = 40) -> None:
    """A 16-bit X1R5G5B5 BMP (PIL reads it as RGB; TensorFlow cannot)."""
    import struct

    rows = np.full((h, w), (31 << 10) | (5 << 5) | 3, "<u2").tobytes()
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 0, len(rows), 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54) + header + rows)


def test_files_tensorflow_would_misread_go_to_pil_and_train_as_read_image_reads_them(tmp_path):
    # before: a 16-bit BMP was dropped mid-epoch ("changed or deleted after the dataset was
    # built"); a JPEG with two EXIF blocks and a PNG with its eXIf chunk after the pixels trained
    # as stored while predict (read_image) turned them
    import io
    import struct
    import zlib

    import tensorflow as tf

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import resize_image, to_uint8

    arr = np.zeros((30, 50, 3), np.uint8)
    arr[:, :25, 0] = 255
    arr[:15, :, 1] = 200
    _bmp16(tmp_path / "rgb555.bmp")
    Image.fromarray(arr).save(tmp_path / "plain.bmp")  # 24-bit: TensorFlow's
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, exif=_exif(6))
    jpg = buf.getvalue()
    at = jpg.find(b"\xff\xe1")
    end = at + 2 + int.from_bytes(jpg[at + 2 : at + 4], "big")
    second = _exif(1)
    (tmp_path / "two_exif.jpg").write_bytes(jpg[:end] + b"\xff\xe1" + (len(second) + 2).to_bytes(2, "big")
                                            + second + jpg[end:])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    png = buf.getvalue()
    iend = png.rfind(b"IEND") - 4
    raw = _exif(6)
    raw = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    chunk = struct.pack(">I", len(raw)) + b"eXIf" + raw + struct.pack(">I", zlib.crc32(b"eXIf" + raw))
    (tmp_path / "late_exif.png").write_bytes(png[:iend] + chunk + png[iend:])
    names = ["rgb555.bmp", "two_exif.jpg", "late_exif.png", "plain.bmp"]
    paths = [str(tmp_path / n) for n in names]
    assert [classify_file(p)[0] for p in paths] == [KIND_PIL, KIND_PIL, KIND_PIL, KIND_GIF_BMP]
    m = Manifest(paths, np.zeros(4, np.int64), ["a"])
    (x, _), = one(make_dataset(m, (50, 50), 4, cache=False))
    assert len(x) == 4
    for got, path in zip(x, paths):
        as_predict = to_uint8(resize_image(tf.constant(read_image(path)), (50, 50))).numpy()
        np.testing.assert_array_equal(got, as_predict.astype(np.float32), err_msg=path)


def test_a_dataset_keeps_the_pixel_limit_it_was_checked_under(tmp_path):
    # before: an image that PIL reads (here a palette PNG with transparency) was checked under the
    # limit in force when the dataset was built, but read under the one in force at each epoch
    from keras_species.data.images import using_max_pixels

    Image.new("P", (40, 40)).save(tmp_path / "p.png", transparency=0)
    m = Manifest([str(tmp_path / "p.png")], np.array([0]), ["a"])
    ds = make_dataset(m, 16, 1, cache=False)  # checked under the default limit: kept
    with using_max_pixels(1000):  # 1,600 pixels: over this limit (under twice it, PIL's own refusal)
        assert sum(len(x) for x, _ in ds) == 1


def _six(tmp_path) -> Manifest:
    paths = []
    for i in range(6):
        p = tmp_path / f"c{i % 3}" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((24, 32, 3), 20 * i, np.uint8)).save(p)
        paths.append(str(p))
    return Manifest(paths, np.array([i % 3 for i in range(6)]), ["a", "b", "c"])


def test_make_dataset_refuses_options_that_would_give_wrong_labels_weights_or_no_batch(tmp_path):
    m = _six(tmp_path)
    # before: MixUp mixed the class indices into a (B, B) matrix
    with pytest.raises(ValueError, match=r"batch_augment='mixup' mixes labels.*label_mode='onehot'"):
        make_dataset(m, 24, 4, training=True, label_mode="sparse", batch_augment="mixup")
    # before: passed through, NaN in the loss
    with pytest.raises(ValueError, match=r"sample_weights\[1\] is nan .*1\.png.*number >= 0"):
        make_dataset(m, 24, 6, sample_weights=np.array([1, np.nan, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"every image weight 0"):
        make_dataset(m, 24, 6, sample_weights={"a": 0, "b": 0, "c": 0})
    # before: an empty dataset, and fit trained nothing without a word
    with pytest.raises(ValueError, match=r"2 image\(s\) and batch_size=4 with drop_remainder=True"):
        make_dataset(m.subset([0, 1]), 24, 4, training=True, drop_remainder=True)


def test_balanced_weights_count_the_images_the_check_keeps(tmp_path):
    # before: computed over every row, the unreadable file's included: the one readable 'b'
    # image weighed what each of the two 'a' images did
    m = _six(tmp_path)
    Path(m.paths[1]).write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (x, y, w), = one(make_dataset(m, 24, 6, sample_weights="balanced"))
    assert y.tolist() == [0, 2, 0, 1, 2]
    np.testing.assert_allclose(w, [5 / 6, 5 / 6, 5 / 6, 5 / 3, 5 / 6], rtol=1e-6)  # n / (C * count), mean 1


@pytest.mark.parametrize("bits", [24, 8])
def test_a_bmp_cut_short_is_found_by_the_check(tmp_path, bits):
    path = tmp_path / "x.bmp"
    Image.new("RGB" if bits == 24 else "P", (30, 20), 90).save(path)
    assert classify_file(str(path))[0] != KIND_BAD
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])  # a BMP has no end marker: only its size tells
    kind, why = classify_file(str(path))
    assert kind == KIND_BAD and "truncated" in why


def test_orientation_chunks_far_after_the_pixels_are_found(tmp_path):
    import io
    import struct
    import zlib

    from keras_species.data.images import read_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    i = png.find(b"IDAT") - 4
    n = int.from_bytes(png[i : i + 4], "big")
    pixels = png[i + 8 : i + 8 + n]
    # libpng's way: IDAT chunks of 2,000 bytes but the last, so the last one starts past the head
    idats = b"".join(chunk(b"IDAT", pixels[k : k + 2000]) for k in range(0, len(pixels), 2000))
    start, end = png[:i], chunk(b"IEND", b"")
    exif = Image.Exif()
    exif[0x0112] = 6
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
           b'syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
           b'</rdf:RDF></x:xmpmeta>' + b" " * 2000)  # padded, as writers leave room to edit it
    (tmp_path / "a").mkdir()
    cases = {
        "plain.png": start + idats + end,
        "exif_then_text.png": start + idats + chunk(b"eXIf", exif.tobytes()) + chunk(b"tEXt", b"note\x00" + b"x" * 300) + end,
        "xmp.png": start + idats + chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp) + end,
    }
    for name, data in cases.items():
        path = tmp_path / "a" / name
        path.write_bytes(data)
        turned = name != "plain.png"
        assert read_image(str(path)).shape == ((64, 40, 3) if turned else (40, 64, 3))
        assert classify_file(str(path))[0] == (KIND_PIL if turned else KIND_FAST), name  # before: FAST
        (x, _), = one(make_dataset(Manifest([str(path)], np.array([0]), ["a"]), read_image(str(path)).shape[:2],
                                   1, cache=False))
        np.testing.assert_array_equal(x[0], read_image(str(path)).astype(np.float32))


@pytest.mark.parametrize("option, error, why", [
    ({"shuffle_buffer": -1}, ValueError, "shuffle_buffer=-1 must be a whole number >= 1"),
    ({"num_parallel_calls": 0}, ValueError, "num_parallel_calls=0"),
    ({"augment": True}, TypeError, "augment=True: give a preset name or a Keras layer"),
    ({"cache": 5}, TypeError, "cache=5: give True"),
    ({"seed": 1.5}, ValueError, "seed=1.5 must be a whole number"),
    ({"batch_size": "32"}, ValueError, "batch_size must be a whole number"),
    ({"augment": "r9"}, ValueError, "unknown augmentation preset 'r9'"),
    ({"batch_augment": "mixupp"}, ValueError, "unknown batch augmentation 'mixupp'"),
    ({"sample_weights": "balancd"}, ValueError, "class weight mode 'balancd'"),
    ({"num_parallel_calls": -1.0}, ValueError, "num_parallel_calls=-1.0"),
    ({"cache": "  "}, ValueError, "cache='  '"),
])
def test_arguments_that_cannot_work_are_refused_before_any_file_is_read(image_folder, monkeypatch, option, error, why):
    def no_reading(*a, **k):
        raise AssertionError("the files were checked first")

    monkeypatch.setattr(pipeline_mod, "check_files", no_reading)
    kw = {"batch_size": 4, **option}
    with pytest.raises(error, match=re.escape(why)):
        make_dataset(folder_manifest(image_folder), 8, **kw)
    with pytest.raises(TypeError, match="make_dataset takes a Manifest"):
        make_dataset(str(image_folder), 8)


def test_cache_words_are_not_file_prefixes(image_folder, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    m = folder_manifest(image_folder)
    for word in ("memory", "none", "off"):  # before: a file cache "memory-<key>" in the working folder
        one(make_dataset(m, 8, 32, cache=word))
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_pipeline_augmentation_runs_in_float32_under_a_global_mixed_precision_policy(tmp_path, policy):
    # MixUp and CutMix were built under the global policy and failed to build on the pipeline's
    # float32 batches ("Input 'y' of 'Mul' Op has type float16"; CutMix: "Range[Tidx=DT_HALF]")
    import keras
    import tensorflow as tf

    m = _six(tmp_path)
    keras.mixed_precision.set_global_policy(policy)
    try:
        for mixer in ("mixup", "cutmix"):
            ds = make_dataset(m, 16, 3, training=True, label_mode="onehot", augment="r3",
                              batch_augment=mixer, seed=0)
            x, y = next(iter(ds))
            assert x.dtype == tf.float32 and y.dtype == tf.float32
            np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, rtol=1e-6)
            assert float(tf.reduce_min(x)) >= 0 and float(tf.reduce_max(x)) <= 255
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_white_composite_is_read_image_bit_for_bit(tmp_path):
    # every alpha level over every colour level's neighbours: PIL's fixed-point compositing
    import tensorflow as tf

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import white_composite

    a, c = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([c, 255 - c, (c * 7) % 256, a], -1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "all.png")
    got = white_composite(tf.io.decode_png((tmp_path / "all.png").read_bytes(), channels=4)).numpy()
    np.testing.assert_array_equal(got, read_image(tmp_path / "all.png"))


def test_decode_png_rgb_reads_every_8bit_png_mode_as_read_image(tmp_path):
    # decoded with four channels, a 16-colour palette got alpha 15 and a 1-bit image alpha 1:
    # composited onto white they came out nearly white
    import tensorflow as tf

    from keras_species.data.images import read_image
    from keras_species.data.pipeline import decode_png_rgb

    rgb = (np.random.default_rng(4).random((12, 16, 3)) * 255).astype(np.uint8)
    rgba = np.concatenate([rgb, rgb[..., :1]], -1)
    files = {
        "rgb": (Image.fromarray(rgb), {}), "rgba": (Image.fromarray(rgba, "RGBA"), {}),
        "l": (Image.fromarray(rgb[..., 0]), {}), "la": (Image.fromarray(rgba[..., [0, 3]].copy(), "LA"), {}),
        "bw": (Image.fromarray(rgb[..., 0] > 100), {}), "pal4": (Image.fromarray(rgb).quantize(4), {}),
        "pal16": (Image.fromarray(rgb).quantize(16), {}), "pal256": (Image.fromarray(rgb).quantize(256), {}),
        "pal_trns": (Image.fromarray(rgb).quantize(4), {"transparency": 1}),
    }
    for name, (im, kw) in files.items():
        im.save(tmp_path / f"{name}.png", **kw)
        got = decode_png_rgb(tf.constant((tmp_path / f"{name}.png").read_bytes())).numpy()
        np.testing.assert_array_equal(got, read_image(tmp_path / f"{name}.png"), err_msg=name)


def test_batch_mixing_runs_one_call_at_a_time(tmp_path):
    # MixUp/CutMix ran in parallel calls, which can read one seed state: two batches took the
    # same draw (2 of 240 non-deterministic batches); the augmentation map runs one call at a time
    import threading
    import time

    import tensorflow as tf

    from keras_species.data import sources
    from keras_species.data.pipeline import make_dataset
    from tests.conftest import write_image_folder

    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def enter(x):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        return x

    class Watch:
        def __call__(self, data, training=False):
            images = tf.numpy_function(enter, [data["images"]], tf.float32, stateful=True)
            return {"images": tf.ensure_shape(images, data["images"].shape), "labels": data["labels"]}

    m = sources.load(write_image_folder(tmp_path / "d", classes=("cod", "eel"), per_class=12, size=(8, 8)))
    ds = make_dataset(m, 8, 2, training=True, batch_augment=Watch(), label_mode="onehot",
                      deterministic=False, cache=False)
    assert sum(1 for _ in ds) == 12
    assert state["most"] == 1


def test_a_dataset_names_twenty_unreadable_files_and_counts_the_rest(tmp_path):
    # 20,000 empty files of a dropped mount made one warning of 20,001 lines
    from keras_species.data.pipeline import _report_bad

    bad = {f"/data/{i}.png": "empty file (0 bytes)" for i in range(50)}
    with pytest.warns(UserWarning) as seen:
        _report_bad(bad, "skip")
    text = str(seen[0].message)
    assert text.startswith("skipping 50 unreadable image(s)") and text.count("\n") == 21
    assert text.endswith("... and 30 more")
