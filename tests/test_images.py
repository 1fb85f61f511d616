"""Reading and writing a user's images: size, mode, bit depth, alpha and orientation survive."""
from __future__ import annotations

import numpy as np
import png
import pytest
import torch
from PIL import Image

from n2n_core.data.images import ImageError, png_bit_depth, read_image, write_image


def _rng(seed=0):
    return np.random.default_rng(seed)


def _round_trip(tmp_path, path):
    """Read ``path``, write its own pixels back under out/, read that again."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    image = read_image(path)
    out = write_image(image, image.rgb, out_dir / path.name)
    return image, out, read_image(out)


def test_grey_8_bit_stays_grey_and_exact(tmp_path):
    values = _rng().integers(0, 256, (21, 34), dtype=np.uint8)
    Image.fromarray(values, "L").save(tmp_path / "grey.png")
    image, out, again = _round_trip(tmp_path, tmp_path / "grey.png")
    assert image.grey and image.bits == 8 and image.rgb.shape == (3, 21, 34)
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (34, 21)
        assert np.array_equal(np.asarray(img), values)


def test_rgb_8_bit_round_trip_is_exact(tmp_path):
    values = _rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "rgb.png")
    _, out, _ = _round_trip(tmp_path, tmp_path / "rgb.png")
    with Image.open(out) as img:
        assert img.mode == "RGB" and np.array_equal(np.asarray(img), values)


def test_rgba_keeps_its_alpha_untouched(tmp_path):
    values = _rng(2).integers(0, 256, (19, 13, 4), dtype=np.uint8)
    Image.fromarray(values, "RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    assert image.alpha is not None and image.rgb.shape == (3, 19, 13)
    out = write_image(image, torch.zeros_like(image.rgb), tmp_path / "black.png")  # pixels change, alpha not
    with Image.open(out) as img:
        assert img.mode == "RGBA"
        written = np.asarray(img)
    assert np.array_equal(written[..., 3], values[..., 3]) and written[..., :3].max() == 0


def test_grey_with_alpha_stays_la(tmp_path):
    values = _rng(3).integers(0, 256, (9, 11, 2), dtype=np.uint8)
    Image.fromarray(values, "LA").save(tmp_path / "la.png")
    _, out, _ = _round_trip(tmp_path, tmp_path / "la.png")
    with Image.open(out) as img:
        assert img.mode == "LA" and np.array_equal(np.asarray(img), values)


def test_16_bit_grey_stays_16_bit_and_exact(tmp_path):
    values = _rng(4).integers(0, 65536, (15, 22), dtype=np.uint16)
    Image.frombytes("I;16", (22, 15), values.astype("<u2").tobytes()).save(tmp_path / "grey16.png")
    image, out, again = _round_trip(tmp_path, tmp_path / "grey16.png")
    assert image.grey and image.bits == 16
    assert png_bit_depth(out) == 16
    assert np.array_equal(np.round(again.rgb[0].numpy() * 65535).astype(np.uint16), values)


@pytest.mark.parametrize("alpha", [False, True])
def test_16_bit_colour_png_stays_16_bit_and_exact(tmp_path, alpha):
    planes = 4 if alpha else 3
    values = _rng(5).integers(0, 65536, (7, 12, planes), dtype=np.uint16)
    with open(tmp_path / "rgb16.png", "wb") as f:
        png.Writer(12, 7, greyscale=False, alpha=alpha, bitdepth=16).write_array(f, values.reshape(-1))
    image, out, again = _round_trip(tmp_path, tmp_path / "rgb16.png")
    assert not image.grey and image.bits == 16 and image.rgb.shape == (3, 7, 12)
    # 384 / 65535 and the like: precision below the 8-bit levels is kept
    assert np.array_equal(np.round(image.rgb.permute(1, 2, 0).numpy() * 65535).astype(np.uint16), values[..., :3])
    _, _, rows, meta = png.Reader(filename=str(out)).asDirect()
    written = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(7, 12, planes)
    assert meta["bitdepth"] == 16 and meta["alpha"] == alpha
    assert np.array_equal(written, values)


def test_exif_orientation_is_applied_and_the_output_is_upright(tmp_path):
    array = np.zeros((20, 30, 3), dtype=np.uint8)
    array[:, :10] = 255
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "TestCam"  # make: kept
    img.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "photo.jpg")
    assert image.rgb.shape == (3, 30, 20)
    out = write_image(image, image.rgb, tmp_path / "out.jpg")
    with Image.open(out) as written:
        assert written.size == (20, 30)
        tags = written.getexif()
        assert tags.get(0x0112, 1) == 1 and tags.get(0x010F) == "TestCam"


def test_jpeg_stays_jpeg_of_the_same_size(tmp_path):
    Image.fromarray(_rng(6).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    image = read_image(tmp_path / "a.jpg")
    out = write_image(image, image.rgb, tmp_path / "b.jpg")
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.size == (50, 40) and img.mode == "RGB"


def test_palette_image_is_written_as_rgb(tmp_path):
    Image.fromarray(_rng(7).integers(0, 256, (10, 10, 3), dtype=np.uint8)).convert("P").save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    out = write_image(image, image.rgb, tmp_path / "q.png")
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (10, 10)


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    Image.fromarray(_rng(8).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    write_image(image, image.rgb, tmp_path / "out" / "a.png")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_write_refuses_pixels_of_another_size(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="denoised pixels"):
        write_image(image, torch.zeros(3, 4, 4), tmp_path / "b.png")


def test_a_text_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageError, match=r"notes.png: not an image file"):
        read_image(tmp_path / "notes.png")


def test_a_truncated_image_is_named(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(_rng(9).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"cut.png: damaged or truncated"):
        read_image(path)


def test_a_truncated_16_bit_colour_png_is_named(tmp_path):
    path = tmp_path / "cut16.png"
    values = _rng(10).integers(0, 65536, (30, 30, 3), dtype=np.uint16)
    with open(path, "wb") as f:
        png.Writer(30, 30, greyscale=False, bitdepth=16).write_array(f, values.reshape(-1))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"cut16.png: damaged or truncated 16-bit PNG"):
        read_image(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="gone.png: no such file"):
        read_image(tmp_path / "gone.png")


def test_16_bit_grey_with_alpha_stays_16_bit(tmp_path):
    values = _rng(11).integers(0, 65536, (6, 9, 2), dtype=np.uint16)
    with open(tmp_path / "la16.png", "wb") as f:
        png.Writer(9, 6, greyscale=True, alpha=True, bitdepth=16).write_array(f, values.reshape(-1))
    image, out, again = _round_trip(tmp_path, tmp_path / "la16.png")
    assert image.grey and image.bits == 16 and image.alpha is not None
    _, _, rows, meta = png.Reader(filename=str(out)).asDirect()
    written = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(6, 9, 2)
    assert meta["bitdepth"] == 16 and meta["greyscale"] and meta["alpha"]
    assert np.array_equal(written, values)


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_keeps_its_lossless_flag(tmp_path, lossless):
    pixels = np.random.default_rng(3).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    source = tmp_path / "in.webp"
    Image.fromarray(pixels).save(source, lossless=lossless, quality=80)
    image = read_image(source)
    out = write_image(image, image.rgb, tmp_path / "out.webp")
    head = out.read_bytes()[12:16]
    assert head == (b"VP8L" if lossless else b"VP8 ")
    if lossless:  # the same pixels come back exactly
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(source).convert("RGB")))


def test_a_cmyk_jpeg_comes_back_as_rgb_and_says_so(tmp_path):
    from conftest import smooth_image

    rgb = smooth_image(24, 32, seed=4)
    source = tmp_path / "print.jpg"
    Image.fromarray(rgb).convert("CMYK").save(source, quality=95)
    image = read_image(source)
    assert image.notes == ["CMYK written as RGB (the network works in RGB)"]
    out = write_image(image, image.rgb, tmp_path / "out.jpg")
    with Image.open(out) as written, Image.open(source) as original:
        assert written.mode == "RGB"
        # the same colours as the file's own RGB rendering (was: an empty black channel)
        diff = np.abs(np.asarray(written, dtype=float) - np.asarray(original.convert("RGB"), dtype=float))
        assert diff.mean() < 3


@pytest.mark.parametrize("top", [1.0, 255.0])
def test_a_float_tiff_stays_float_on_its_own_scale(tmp_path, top):
    values = (np.linspace(0.1, 0.9, 20 * 16, dtype=np.float32).reshape(16, 20) * top).astype(np.float32)
    source = tmp_path / "scan.tif"
    Image.fromarray(values, "F").save(source)
    image = read_image(source)
    assert float(image.rgb.max()) <= 1.0 and image.grey
    assert image.notes == ([] if top == 1 else ["float samples up to 229.5, read as 0..255 (divided by 255), "
                                                  "written back on that scale"])
    out = write_image(image, image.rgb, tmp_path / "out.tif")
    with Image.open(out) as written:
        assert written.mode == "F"
        assert np.allclose(np.asarray(written), values, atol=1e-4 * top)


def test_a_float_tiff_outside_both_scales_is_refused(tmp_path):
    source = tmp_path / "hdr.tif"
    Image.fromarray(np.full((8, 8), 1000.0, np.float32), "F").save(source)
    with pytest.raises(ImageError, match="hdr.tif: float samples from 1000 to 1000; .* rescale it first"):
        read_image(source)


@pytest.mark.parametrize("suffix", [".gif", ".tif"])
def test_several_frames_are_refused_not_cut_to_the_first(tmp_path, suffix):
    from n2n_core.data.images import check_image

    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 120, 240)]
    source = tmp_path / f"stack{suffix}"
    frames[0].save(source, save_all=True, append_images=frames[1:])
    for read in (check_image, read_image):
        with pytest.raises(ImageError, match=r"stack\.(gif|tif): holds 3 frames .* save the frames as separate files"):
            read(source)


# --------------------------------------------------- forms Pillow reads at 8 bits, or without their metadata
def _read_pixels(path) -> np.ndarray:
    """H x W x planes uint16 samples of a 16-bit PNG, through pypng."""
    width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, meta["planes"])


def _samples16(image) -> np.ndarray:
    return np.round(image.rgb.permute(1, 2, 0).numpy() * 65535).astype(np.uint16)


@pytest.mark.parametrize("order,compression,predictor,planes", [("<", 1, 1, 3), (">", 1, 1, 3), ("<", 8, 2, 3),
                                                                ("<", 8, 1, 4)])
def test_16_bit_colour_tiff_stays_16_bit_and_exact(tmp_path, order, compression, predictor, planes):
    from imagefiles import icc_profile, tiff16_bytes

    values = _rng(12).integers(0, 65536, (5, 7, planes), dtype=np.uint16)
    source = tmp_path / "scan.tif"
    exif = {0x9003: "2020:01:02 03:04:05", 0xA434: "A test lens"}  # when it was taken, and through what
    source.write_bytes(tiff16_bytes(values, compression, order, icc=icc_profile(), predictor=predictor, exif=exif))
    image, out, again = _round_trip(tmp_path, source)
    assert not image.grey and image.bits == 16 and image.describe().endswith(" 16-bit TIFF")
    assert np.array_equal(_samples16(image), values[..., :3])  # precision below the 8-bit levels is kept
    with Image.open(out) as written:
        assert written.format == "TIFF" and written.tag_v2[258] == (16,) * planes and written.size == (7, 5)
        assert written.info["icc_profile"] == icc_profile()
        assert dict(written.getexif().get_ifd(0x8769)) == exif  # the EXIF block, less its interoperability pointer
    assert again.bits == 16 and np.array_equal(_samples16(again), values[..., :3])
    assert (again.alpha is None) == (planes == 3)
    if planes == 4:
        assert np.array_equal(again.alpha, values[..., 3])


def test_a_16_bit_colour_tiff_whose_exif_block_is_damaged_is_read_without_it(tmp_path):
    import struct

    from imagefiles import tiff16_bytes

    values = _rng(15).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    blob = tiff16_bytes(values, exif={0xA434: "A test lens"})
    entry = blob.index(struct.pack("<HHI", 34665, 4, 1))
    source = tmp_path / "damaged_exif.tif"
    source.write_bytes(blob[:entry + 8] + struct.pack("<I", len(blob) + 4096) + blob[entry + 12:])  # past the end
    image = read_image(source)
    assert np.array_equal(_samples16(image), values) and image.info["tiff_blocks"] == {}


def test_a_16_bit_colour_tiff_is_turned_upright(tmp_path):
    from imagefiles import tiff16_bytes

    values = _rng(13).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    (tmp_path / "turned.tif").write_bytes(tiff16_bytes(values, orientation=6))
    image, out, again = _round_trip(tmp_path, tmp_path / "turned.tif")
    assert np.array_equal(_samples16(image), np.rot90(values, -1))  # 6: turned 90 degrees clockwise to display
    with Image.open(out) as written:
        assert written.size == (4, 6) and written.tag_v2.get(274, 1) == 1
    assert np.array_equal(_samples16(again), np.rot90(values, -1))


def test_a_16_bit_colour_tiff_that_cannot_be_read_at_16_bits_is_refused(tmp_path):
    from imagefiles import tiff16_bytes

    from n2n_core.data.images import check_image

    source = tmp_path / "lzw.tif"
    source.write_bytes(tiff16_bytes(_rng(14).integers(0, 65536, (4, 4, 3), dtype=np.uint16), compression=5))
    for read in (check_image, read_image):
        with pytest.raises(ImageError, match=r"lzw\.tif: .*16-bit .*save it as a 16-bit PNG"):
            read(source)


@pytest.mark.parametrize("maxval", [65535, 4095])
def test_16_bit_ppm_stays_16_bit_and_exact(tmp_path, maxval):
    from imagefiles import ppm16_bytes

    values = _rng(15).integers(0, maxval + 1, (6, 5, 3), dtype=np.uint16)
    (tmp_path / "frame.ppm").write_bytes(ppm16_bytes(values, maxval))
    image, out, again = _round_trip(tmp_path, tmp_path / "frame.ppm")
    assert image.bits == 16 and image.describe() == "5x6 RGB 16-bit PPM"
    data = out.read_bytes()
    header = f"P6\n5 6\n{maxval}\n".encode()
    assert data.startswith(header)
    written = np.frombuffer(data[len(header):], ">u2").reshape(6, 5, 3)
    assert np.array_equal(written, values)


@pytest.mark.parametrize("planes", [1, 3, 4])
def test_16_bit_png_is_turned_upright_and_keeps_its_icc_profile_and_exif(tmp_path, planes):
    from imagefiles import icc_profile, png16_bytes, png_chunks

    values = _rng(16).integers(0, 65536, (4, 6, planes), dtype=np.uint16)
    (tmp_path / "photo.png").write_bytes(png16_bytes(values, icc=icc_profile(), orientation=6))
    image, out, again = _round_trip(tmp_path, tmp_path / "photo.png")
    assert image.bits == 16 and image.size == (4, 6)  # 6: turned 90 degrees clockwise to display
    assert png_bit_depth(out) == 16
    assert np.array_equal(_read_pixels(out), np.rot90(values, -1))
    with Image.open(out) as written:
        assert written.size == (4, 6) and written.info["icc_profile"] == icc_profile()
        tags = written.getexif()
        assert tags.get(0x0112, 1) == 1 and tags.get(0x010F) == "TestCam"
    assert b"iCCP" in png_chunks(out.read_bytes()) and again.size == (4, 6)


def test_a_colour_key_of_an_8_bit_rgb_png_becomes_its_alpha(tmp_path):
    values = _rng(17).integers(1, 256, (6, 8, 3), dtype=np.uint8)
    values[2:4, 3:6] = 0  # the colour key: transparent
    Image.fromarray(values).save(tmp_path / "key.png", transparency=(0, 0, 0))
    image = read_image(tmp_path / "key.png")
    expected = np.where((values == 0).all(axis=-1), 0, 255)
    assert image.alpha is not None and np.array_equal(image.alpha, expected)
    out = write_image(image, torch.full_like(image.rgb, 0.5), tmp_path / "out.png")  # pixels change, alpha not
    with Image.open(out) as written:
        assert written.mode == "RGBA" and np.array_equal(np.asarray(written)[..., 3], expected)


def test_a_colour_key_of_a_16_bit_grey_png_becomes_its_alpha(tmp_path):
    from imagefiles import png16_bytes

    values = _rng(18).integers(1, 65536, (5, 7, 1), dtype=np.uint16)
    values[1:3, 2:4] = 777
    (tmp_path / "key16.png").write_bytes(png16_bytes(values, transparent=777))
    image, out, again = _round_trip(tmp_path, tmp_path / "key16.png")
    expected = np.where(values[..., 0] == 777, 0, 65535)
    assert image.grey and image.bits == 16 and np.array_equal(image.alpha, expected)
    written = _read_pixels(out)
    assert png_bit_depth(out) == 16 and written.shape == (5, 7, 2)
    assert np.array_equal(written[..., 0], values[..., 0]) and np.array_equal(written[..., 1], expected)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_special_file_is_refused_by_its_kind(tmp_path, kind):
    import os
    from pathlib import Path

    from n2n_core.data.images import check_image

    path = tmp_path / "pipe.png" if kind == "fifo" else Path("/dev/zero")
    if kind == "fifo":
        os.mkfifo(path)
    what = "a pipe" if kind == "fifo" else "a device"
    for read in (check_image, read_image):  # a FIFO is never opened: this would block
        with pytest.raises(ImageError, match=rf"{path}: not a regular file \({what}.*pass image files"):
            read(path)


def test_a_float_tiff_with_nan_samples_says_how_many(tmp_path):
    values = np.full((4, 5), 0.5, np.float32)
    values[0, :3] = np.nan
    values[1, 1] = np.inf
    Image.fromarray(values, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match=r"nan\.tif: holds 3 NaN and 1 infinite samples .*replace them"):
        read_image(tmp_path / "nan.tif")


def test_a_tiff_whose_second_directory_is_damaged_is_named(tmp_path):
    import io
    import struct

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    first = struct.unpack("<I", data[4:8])[0]
    link = first + 2 + 12 * struct.unpack("<H", data[first:first + 2])[0]
    data[link:link + 4] = struct.pack("<I", len(data))  # a second directory without a size: Pillow's TypeError
    data += struct.pack("<HHHII", 1, 259, 3, 1, 1) + bytes(4)
    (tmp_path / "two.tif").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"two\.tif: damaged or truncated image"):
        read_image(tmp_path / "two.tif")
