"""Image files that Pillow cannot write, built byte by byte for the tests (independently of
n2n_core.data.images): 16-bit colour TIFF and PPM, 16-bit PNG with an ICC profile, an EXIF
orientation or a tRNS chunk."""
from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
import png
from PIL import Image, ImageCms


@functools.cache
def icc_profile() -> bytes:
    """A real sRGB ICC profile, made once: littleCMS stamps the time of its making into the header."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_orientation(orientation: int) -> bytes:
    """EXIF data as a TIFF structure (no "Exif" prefix): the orientation and a camera make."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    return exif.tobytes()[6:]


def tiff16_bytes(pixels: np.ndarray, compression: int = 1, order: str = "<", icc: bytes | None = None,
                 orientation: int | None = None, predictor: int = 1, claimed_height: int | None = None,
                 exif: dict[int, str] | None = None) -> bytes:
    """A one-strip 16-bit RGB(A) TIFF of ``pixels`` (H x W x 3 or 4, uint16): uncompressed (1) or deflate
    (8, with horizontal ``predictor`` 2 if asked); another ``compression`` number labels the raw samples.
    A ``claimed_height`` is written in the tags instead of the pixels' own (a strip cut short). ``exif``:
    an EXIF block of these text entries, and an interoperability pointer in it."""
    height, width, planes = pixels.shape
    samples = pixels.astype(np.int64)
    if predictor == 2:
        samples = np.concatenate([samples[:, :1], np.diff(samples, axis=1)], axis=1) % 65536
    data = samples.astype(order + "u2").tobytes()
    if compression == 8:
        data = zlib.compress(data)
    short, long = 3, 4
    height = claimed_height or height
    tags = {256: (long, [width]), 257: (long, [height]), 258: (short, [16] * planes), 259: (short, [compression]),
            262: (short, [2]), 273: (long, [8]), 277: (short, [planes]), 278: (long, [height]),
            279: (long, [len(data)]), 284: (short, [1])}
    if planes == 4:
        tags[338] = (short, [2])
    if predictor != 1:
        tags[317] = (short, [predictor])
    if orientation is not None:
        tags[274] = (short, [orientation])
    blob = bytearray(b"II*\x00" if order == "<" else b"MM\x00*") + bytes(4) + data + bytes(len(data) % 2)
    if exif:
        texts = {tag: text.encode() + b"\x00" for tag, text in exif.items()}
        where = len(blob)  # the texts, then the block's directory
        blob += b"".join(text + bytes(len(text) % 2) for text in texts.values())
        fields, offset = {40965: (4, 1, 8)}, where  # interoperability: a pointer
        for tag, text in texts.items():
            fields[tag] = (2, len(text), offset)
            offset += len(text) + len(text) % 2
        tags[34665] = (long, [len(blob)])
        blob += struct.pack(order + "H", len(fields)) + bytes(4)
        blob[-4:] = b"".join(struct.pack(order + "HHII", tag, *fields[tag]) for tag in sorted(fields)) + bytes(4)
    entries = []
    for tag in sorted(tags) + ([34675] if icc else []):
        if tag == 34675:
            kind, payload = 7, icc
        else:
            kind, values = tags[tag]
            payload = struct.pack(f"{order}{len(values)}{'H' if kind == short else 'I'}", *values)
        count = len(payload) // {3: 2, 4: 4}.get(kind, 1)
        if len(payload) > 4:
            field = struct.pack(order + "I", len(blob))
            blob += payload + bytes(len(payload) % 2)
        else:
            field = payload.ljust(4, b"\x00")
        entries.append(struct.pack(order + "HHI", tag, kind, count) + field)
    blob[4:8] = struct.pack(order + "I", len(blob))
    blob += struct.pack(order + "H", len(entries)) + b"".join(entries) + bytes(4)
    return bytes(blob)


def ppm16_bytes(pixels: np.ndarray, maxval: int = 65535) -> bytes:
    """A binary (P6) PPM of ``pixels`` (H x W x 3), two big-endian bytes a sample, with a comment."""
    height, width, _ = pixels.shape
    return f"P6\n# made by a test\n{width} {height}\n{maxval}\n".encode() + pixels.astype(">u2").tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16_bytes(pixels: np.ndarray, icc: bytes | None = None, orientation: int | None = None,
                transparent=None) -> bytes:
    """A 16-bit PNG of ``pixels`` (H x W x planes: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) through pypng, with an
    iCCP and an eXIf chunk inserted after IHDR when asked, and tRNS for a ``transparent`` colour key."""
    height, width, planes = pixels.shape
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16,
               transparent=transparent).write_array(buffer, pixels.astype(np.uint16).reshape(-1))
    data = buffer.getvalue()
    extra = b""
    if icc is not None:
        extra += png_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc))
    if orientation is not None:
        extra += png_chunk(b"eXIf", exif_with_orientation(orientation))
    return data[:33] + extra + data[33:]


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The chunks of a PNG file by type (the last of each type)."""
    return dict(png.Reader(bytes=data).chunks())
