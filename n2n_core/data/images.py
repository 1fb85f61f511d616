"""A user's image files in and out, unchanged in everything but their pixels.

``read_image`` gives the pixels as a 3 x H x W float tensor in [0, 1], upright (EXIF orientation
applied), and remembers what the file was: grey or colour, with or without alpha, 8 or 16 bits per
sample, its format, ICC profile and EXIF data. ``write_image`` writes denoised pixels back in that
same form: grey stays grey (the mean of the three output channels), the alpha channel is copied
untouched, 16-bit stays 16-bit, the EXIF data are kept (with the orientation reset, since the
pixels are now upright). Writes are atomic: a crash never leaves half a file.

Pillow reads some 16-bit files as 8 bit, so those are read and written here: 16-bit colour (and
grey + alpha) PNGs through pypng (pure Python, slower), with their iCCP and eXIf chunks; 16-bit
colour TIFFs (uncompressed or deflate, in strips; other compressions are refused rather than cut
to 8 bits), written back as uncompressed baseline TIFFs with their ICC profile, resolution,
descriptive tags and EXIF and GPS blocks (the orientation reset, as the pixels are upright); 16-bit binary
PPMs (P6 with a maxval above 255), written back with their maxval. A tRNS colour key becomes an
alpha channel (``_opened_mode``, ``_read_png16``).
Palette images are written as RGB(A): a denoised image has more colours than any palette.
Only regular files are read: a pipe or a device is refused by its kind, and a FIFO is never opened.
"""
from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..paths import atomic_output

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOSSLESS_TIFF = ("tiff_lzw", "tiff_adobe_deflate", "packbits")  # Pillow's names of what a TIFF output keeps
SUPPORTED_HINT = "8- or 16-bit grey, RGB or RGBA (PNG, JPEG, TIFF, BMP, WebP)"


class ImageError(ValueError):
    """An image file that cannot be read or written; the message names the file and what to do."""


@dataclass
class ImageFile:
    """Pixels and everything needed to write them back as the same kind of file."""
    path: Path
    rgb: torch.Tensor  # 3 x H x W float32 in [0, 1], upright
    grey: bool
    bits: int  # 8 or 16 per sample
    alpha: np.ndarray | None = None  # H x W, uint8 or uint16, upright; written back untouched
    format: str = "PNG"
    mode: str = "RGB"  # Pillow's mode of the file (after palette expansion)
    info: dict = field(default_factory=dict)  # icc_profile, exif, dpi
    notes: list[str] = field(default_factory=list)  # how the output will differ from the file in form, said to the user
    scale: float = 1.0  # float (32-bit) samples: the file's value of white (1 or 255)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow gives it."""
        return self.rgb.shape[-1], self.rgb.shape[-2]

    def describe(self) -> str:
        kind = "grey" if self.grey else "RGB"
        return f"{self.size[0]}x{self.size[1]} {kind}{'+alpha' if self.alpha is not None else ''} {self.bits}-bit {self.format}"


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, or None for any other file."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def read_image(path: str | Path) -> ImageFile:
    """Read ``path`` (see the module docstring); ImageError names the file and the fix."""
    path = Path(path)
    own_reader = _checked(path)
    if own_reader is not None:  # a 16-bit file that Pillow would cut to 8 bits
        return own_reader(path)
    img, fmt = _open_upright(path)
    return decoded(path, img, fmt)


def decoded(path: Path, img: Image.Image, fmt: str) -> ImageFile:
    """The ImageFile of an opened, upright Pillow image (one frame) read from ``path``."""
    info = _kept_info(path, img, fmt)
    img, mode = _opened_mode(img)
    if mode in ("1", "L", "LA"):
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        alpha = np.asarray(img.getchannel("A")) if mode == "LA" else None
        return ImageFile(path, _grey_to_rgb(grey), True, 8, alpha, fmt, "LA" if alpha is not None else "L", info)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(img, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ImageError(f"{path}: 32-bit integer samples outside 0..65535; save it as a 16-bit PNG")
        return ImageFile(path, _grey_to_rgb((values / 65535.0).astype(np.float32)), True, 16, None, fmt, "I;16", info)
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        alpha = np.asarray(img.getchannel("A")) if mode == "RGBA" else None
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        notes = []
        if mode not in ("RGB", "RGBA"):
            # converting back would invent the channels RGB lacks (CMYK's black came back empty): written as
            # RGB, said so, and without a colour profile that describes other channels
            notes.append(f"{mode} written as RGB (the network works in RGB)")
            info.pop("icc_profile", None)
            mode = "RGB"
        return ImageFile(path, torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), False, 8, alpha, fmt, mode, info,
                         notes)
    if mode == "F":  # 32-bit float grey (TIFF): written back as float, on the file's own scale
        return _float_image(path, np.asarray(img, dtype=np.float32), fmt, info)
    raise ImageError(f"{path}: unsupported image mode {mode!r}; use {SUPPORTED_HINT}")


def read_uint8(path: str | Path) -> torch.Tensor:
    """``read_image``'s pixels rounded to 8 bits, as a 3 x H x W uint8 tensor: the same values, but an
    8-bit file is decoded straight to uint8 (no float copy, 4x less memory); 16-bit and float files go
    through ``read_image``. What training pools are cut from (``patches.cut_patches``)."""
    path = Path(path)
    if _checked(path) is None:
        img, _ = _open_upright(path)
        img, mode = _opened_mode(img)
        if mode in ("1", "L", "LA"):
            return _grey_to_rgb(np.array(img.convert("L"), dtype=np.uint8))
        if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()
    return (read_image(path).rgb.clamp(0, 1) * 255).round().to(torch.uint8)


def upright_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of ``read_image(path)``'s pixels from the file's header, no pixel decoded: EXIF
    orientations 5 to 8 swap the two. A PNG's eXIf chunk counts where it precedes the pixels (Pillow reads
    a later one only by decoding); ``patches.cut_patches`` checks the decoded size against this one."""
    path = Path(path)
    check_regular_file(path)
    try:
        with _quiet_pillow(), Image.open(path) as img:
            width, height = img.size
            late_exif = img.format == "PNG" and "exif" not in img.info
            orientation = 1 if late_exif else img.getexif().get(0x0112, 1)
    except Exception as err:
        raise _open_error(path, err) from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _opened_mode(img: Image.Image) -> tuple[Image.Image, str]:
    """The image and its mode, a palette expanded to RGB(A) and a tRNS colour key (an 8-bit grey or RGB
    PNG's) made an alpha channel: the key could not stay a key, since denoising moves the transparent
    pixels off its exact colour and they would come out opaque; the alpha channel is written back
    untouched, as any other."""
    mode = img.mode
    keyed = "transparency" in img.info and mode in ("1", "L", "RGB")
    if mode in ("P", "PA") or keyed:
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert(("LA" if mode in ("1", "L") else "RGBA") if has_alpha else "RGB")
    return img, img.mode


def _float_image(path: Path, values: np.ndarray, fmt: str, info: dict) -> ImageFile:
    """A float (32-bit) grey image on a 0..1 or 0..255 scale, kept on that scale; NaN, infinite or
    out-of-range samples are refused."""
    finite = np.isfinite(values)
    if not finite.all():
        nan = int(np.isnan(values).sum())
        count = " and ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (values.size - int(finite.sum()) - nan,
                                                                            "infinite")) if n)
        raise ImageError(f"{path}: holds {count} samples (of {values.size}); n2n denoise needs finite samples: "
                         f"replace them (with 0 or a neighbour's value) first")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 255:
        raise ImageError(f"{path}: float samples from {low:g} to {high:g}; n2n denoise takes float images on a "
                         f"0..1 (or 0..255) scale: rescale it first")
    scale, notes = 1.0, []
    if high > 1:  # never clipped silently: a 0..255 float image is read on its own scale and said so
        scale = 255.0
        notes.append(f"float samples up to {high:g}, read as 0..255 (divided by 255), written back on that scale")
    return ImageFile(path, _grey_to_rgb(values / scale), True, 32, None, fmt, "F", info, notes, scale)


@contextmanager
def _quiet_pillow():
    """Pillow's own UserWarnings (corrupt EXIF data in a damaged TIFF) kept off stderr: the file is then
    refused in one line, or read; its DecompressionBombWarning is no UserWarning and still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _open_upright(path: Path) -> tuple[Image.Image, str]:
    """The decoded image, EXIF orientation applied, and its format; one frame only."""
    try:
        with _quiet_pillow(), Image.open(path) as img:
            fmt = img.format or path.suffix.lstrip(".").upper()
            _refuse_frames(path, getattr(img, "n_frames", 1))
            img = ImageOps.exif_transpose(img)
            img.load()
    except ImageError:
        raise
    except Exception as err:
        raise _open_error(path, err) from None
    return img, fmt


def _kept_info(path: Path, img: Image.Image, fmt: str) -> dict:
    """``ImageFile.info``: what ``write_image`` keeps besides the pixels (ICC profile, dpi, EXIF; for WebP,
    lossless or not; for TIFF, a lossless compression)."""
    info = {k: img.info[k] for k in ("icc_profile", "dpi") if img.info.get(k)}
    if fmt == "TIFF" and img.info.get("compression") in LOSSLESS_TIFF:  # a lossy one (JPEG) is written without
        info["compression"] = img.info["compression"]
    if fmt == "WEBP":
        info["lossless"] = _webp_lossless(path)  # Pillow does not say; a lossless file must come back lossless
    exif = img.getexif()
    if exif:
        info["exif"] = exif.tobytes()
    return info


def _open_error(path: Path, err: Exception) -> ImageError:
    """The one-line ImageError for a file Pillow could not open or decode."""
    if isinstance(err, Image.DecompressionBombError):
        return ImageError(f"{path}: claims more pixels than Pillow's safety limit ({_reason(err)}); a genuine image "
                          f"that large must be split into smaller files first")
    if isinstance(err, (UnidentifiedImageError, SyntaxError)):
        return ImageError(f"{path}: not an image file ({_reason(err)}); remove it or pass image files only")
    if isinstance(err, (OSError, ValueError, EOFError, TypeError)):  # TypeError: a TIFF directory without a size
        return ImageError(f"{path}: damaged or truncated image ({_reason(err)}); re-export or remove it")
    raise err


def check_image(path: str | Path) -> None:
    """Open ``path``'s header without decoding its pixels: an ImageError for a file that is no image
    (not a regular file, empty, another format, a size beyond Pillow's limit, a 16-bit TIFF that
    cannot be read at 16 bits). Damage further in shows only when the pixels are read."""
    _checked(Path(path))


def image_pages(path: str | Path) -> int:
    """``check_image`` for a file that may also be a multi-page TIFF stack: its number of pages (1 for
    a single image). A stack of 16-bit colour pages is refused (Pillow reads them as 8 bits)."""
    return _checked(Path(path), stack=True)[1]


def _checked(path: Path, stack: bool = False):
    """``check_image``; returns the reader of a 16-bit file that Pillow would cut to 8 bits, or None
    (with ``stack``: that and the number of pages, a multi-page TIFF allowed)."""
    check_regular_file(path)
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: an empty file (0 bytes); remove it or pass image files only")
    try:
        with _quiet_pillow(), Image.open(path) as img:
            frames, tiff = getattr(img, "n_frames", 1), img.format == "TIFF"
    except Exception as err:
        raise _open_error(path, err) from None
    if not (stack and tiff):
        _refuse_frames(path, frames)
    reader = _own_reader(path)
    if reader is not None and frames > 1:
        raise ImageError(f"{path}: a stack of {frames} 16-bit colour pages, which n2n cannot read at 16 bits; save "
                         f"the pages as separate 16-bit PNG or TIFF files")
    return (reader, frames) if stack else reader


def not_a_regular_file(path: str | Path) -> str | None:
    """None where ``path`` is a regular file (or a link to one); else what it is instead, from its
    status alone, as a message names it: "no such file", "a link to X, which does not exist", "cannot
    be read (...)", "not a regular file (a pipe (FIFO))" (or a folder, a device, a socket). A FIFO is
    never opened: reading one blocks until something writes into it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"a link to {os.readlink(path)}, which does not exist" if path.is_symlink() else "no such file"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a pipe (FIFO)" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a special file")
    return f"not a regular file ({kind})"


def check_regular_file(path: str | Path) -> None:
    """An ImageError unless ``path`` is a regular file (or a link to one), naming what it is instead
    (``not_a_regular_file``) and what to do."""
    problem = not_a_regular_file(path)
    if problem is None:
        return
    advice = ("; check its permissions" if problem.startswith("cannot be read") else
              "; pass image files only" if problem.startswith("not a regular file") else "")
    raise ImageError(f"{path}: {problem}{advice}")


def _refuse_frames(path: Path, frames: int) -> None:
    """Several frames (an animated GIF, a multi-page TIFF stack) are refused rather than cut to the first,
    where one image is expected (``stacks`` reads TIFF stacks page by page)."""
    if frames > 1:
        stack = path.suffix.lower() in (".tif", ".tiff")
        raise ImageError(f"{path}: holds {frames} frames (an animation or a stack) where one image is expected, and "
                         f"all but the first would be dropped: save the frames as separate files"
                         + (" (n2n denoise and --captures take a multi-page TIFF as a stack)" if stack else ""))


def _webp_lossless(path: Path) -> bool:
    """Whether a WebP file holds a lossless (VP8L) image: its first image chunk after the RIFF header,
    or the one after an extended (VP8X) header and its metadata chunks."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        offset += 8 + size + (size & 1)
    return False


def _reason(err: Exception) -> str:
    return str(err).split("\n")[0] or type(err).__name__


def _grey_to_rgb(grey: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(grey)).unsqueeze(0).expand(3, -1, -1).contiguous()


# ------------------------------------------------------------------ 16-bit files Pillow cuts to 8 bits
PPM_HEADER = re.compile(rb"P6" + rb"(?:\s|#[^\r\n]*)+(\d+)" * 3 + rb"\s")
TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
# copied into a written 16-bit TIFF as they were: description, make, model, resolution, software, date, artist,
# extra samples (alpha), XMP, copyright, IPTC, ICC profile
TIFF_KEPT_TAGS = (270, 271, 272, 282, 283, 296, 305, 306, 315, 338, 700, 33432, 33723, 34675)
TIFF_BLOCKS = (34665, 34853)  # the pointers to the EXIF and GPS blocks, written back as blocks of their own
TIFF_BLOCK_POINTERS = (40965,)  # a pointer inside the EXIF block (interoperability): not carried over


def _own_reader(path: Path):
    """The reader of a file that Pillow would cut to 8 bits (16-bit colour, grey + alpha or colour-keyed
    grey PNG; 16-bit colour TIFF; 16-bit PPM), or None. Refuses a 16-bit colour TIFF that cannot be read
    at 16 bits, from its tags alone."""
    with open(path, "rb") as f:
        head = f.read(4096)
        header = _png_header(path)
        if header is not None:
            depth, colour = header
            if depth == 16 and (colour in (2, 4, 6) or (colour == 0 and _png_has_chunk(f, b"tRNS"))):
                return _read_png16
            return None
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            tiff = _tiff16_layout(path, f)
            return None if tiff is None else lambda p: _read_tiff16(p, *tiff)
    match = PPM_HEADER.match(head)
    return _read_ppm16 if match and 255 < int(match.group(3)) < 65536 else None


def _png_has_chunk(f, kind: bytes) -> bool:
    """Whether a PNG file (open in ``f``) holds a chunk of ``kind`` before its image data."""
    offset = 8
    while True:
        f.seek(offset)
        head = f.read(8)
        if len(head) < 8 or head[4:] in (b"IDAT", b"IEND"):
            return False
        if head[4:] == kind:
            return True
        offset += 12 + int.from_bytes(head[:4], "big")


def _read_png16(path: Path) -> ImageFile:
    """16-bit PNGs that Pillow would cut to 8 bit (RGB, RGBA, grey + alpha, grey with a tRNS colour key),
    through pypng: its tRNS becomes an alpha channel (see ``_opened_mode``), the EXIF orientation is
    applied, and the ICC profile and EXIF data are kept for ``_write_png16``."""
    png = _pypng()
    data = path.read_bytes()
    try:
        chunks = {kind: body for kind, body in png.Reader(bytes=data).chunks() if kind in (b"iCCP", b"eXIf")}
        width, height, rows, meta = png.Reader(bytes=data).asDirect()
        samples = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        info = {}
        if b"iCCP" in chunks:
            body = chunks[b"iCCP"]
            info["icc_profile"] = zlib.decompress(body[body.index(b"\x00") + 2:])
    except Exception as err:  # pypng raises its own FormatError and zlib/EOF errors for damaged files
        raise ImageError(f"{path}: damaged or truncated 16-bit PNG ({_reason(err)}); re-export or remove it") from None
    orientation = 1
    if b"eXIf" in chunks:
        info["exif"], orientation = _exif_upright(b"Exif\x00\x00" + chunks[b"eXIf"])
    samples = _upright(samples.reshape(height, width, meta["planes"]), orientation)
    return _image16(path, samples, meta["greyscale"], meta["alpha"], "PNG", info)


def _exif_upright(exif_bytes: bytes) -> tuple[bytes, int]:
    """EXIF data with the orientation removed (the pixels are turned upright), and that orientation."""
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
        orientation = int(exif.get(0x0112, 1))
    except Exception:  # EXIF that Pillow cannot parse: kept as it was, the pixels as stored
        return exif_bytes, 1
    if 0x0112 not in exif:
        return exif_bytes, 1
    del exif[0x0112]
    return exif.tobytes(), orientation


def _upright(samples: np.ndarray, orientation: int) -> np.ndarray:
    """``samples`` (H x W x planes) turned upright as an EXIF or TIFF ``orientation`` says (as
    ImageOps.exif_transpose turns a Pillow image)."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
             6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(turns.get(orientation, lambda a: a)(samples))


def _image16(path: Path, samples: np.ndarray, grey: bool, alpha: bool, fmt: str, info: dict,
             notes: list[str] | None = None, top: int = 65535) -> ImageFile:
    """The ImageFile of 16-bit ``samples`` (H x W x planes, the last plane alpha if ``alpha``)."""
    colour = samples[..., :1 if grey else 3].astype(np.float32) / np.float32(top)
    rgb = _grey_to_rgb(colour[..., 0]) if grey else torch.from_numpy(np.ascontiguousarray(colour)).permute(2, 0, 1)
    mode = ("LA" if grey else "RGBA") if alpha else ("L" if grey else "RGB")
    return ImageFile(path, rgb.contiguous(), grey, 16, samples[..., -1].copy() if alpha else None, fmt, mode, info,
                     notes or [])


def _tiff_tags(f) -> tuple[str, dict[int, tuple[int, int, bytes]]]:
    """The byte order ('<' or '>') of a classic TIFF file (open in ``f``) and its first directory's
    entries: tag -> (type, count, value bytes in the file's byte order)."""
    f.seek(0)
    head = f.read(8)
    order = "<" if head[:2] == b"II" else ">"
    return order, _tiff_directory(f, order, struct.unpack(order + "I", head[4:8])[0])


def _tiff_directory(f, order: str, offset: int) -> dict[int, tuple[int, int, bytes]]:
    """The entries of the TIFF directory at ``offset`` (``_tiff_tags``)."""
    size = f.seek(0, io.SEEK_END)
    f.seek(offset)
    (count,) = struct.unpack(order + "H", f.read(2))
    entries = f.read(12 * count)
    tags = {}
    for i in range(count):
        tag, kind, n, field = struct.unpack_from(order + "HHI4s", entries, 12 * i)
        length = TIFF_TYPE_SIZES.get(kind, 1) * n
        if length > 4:
            offset = struct.unpack(order + "I", field)[0]
            if offset + length > size:
                raise ValueError(f"tag {tag} runs past the end of the file")
            f.seek(offset)
            field = f.read(length)
        tags[tag] = (kind, n, field[:length])
    return tags


def _tiff_values(order: str, tags: dict, tag: int, default: tuple = ()) -> tuple:
    """The numbers of an integer TIFF tag (BYTE, SHORT or LONG), or ``default``."""
    if tag not in tags:
        return default
    kind, n, payload = tags[tag]
    if kind not in (1, 3, 4, 13):  # 13: IFD, an offset as a LONG
        raise ValueError(f"tag {tag} holds type {kind}, not integers")
    return struct.unpack(f"{order}{n}{ {1: 'B', 3: 'H', 4: 'I', 13: 'I'}[kind] }", payload)


def _tiff16_layout(path: Path, f) -> tuple[str, dict, dict] | None:
    """For a TIFF (open in ``f``) of 16-bit unsigned RGB(A) samples, which Pillow reads as 8 bits: its
    byte order, its entries and the numbers of the tags that lay out its samples; None for any other
    TIFF. A layout this module cannot read at 16 bits is refused (``_refuse_unreadable_tiff16``)."""
    try:
        order, tags = _tiff_tags(f)
        numbers = {tag: _tiff_values(order, tags, tag, default) for tag, default in (
            (256, (0,)), (257, (0,)), (258, (1,)), (259, (1,)), (262, (0,)), (273, ()), (274, (1,)), (277, (1,)),
            (279, ()), (284, (1,)), (317, (1,)), (339, (1,)))}
        layout = {tag: values if tag in (258, 273, 279, 339) else values[0] for tag, values in numbers.items()}
    except (struct.error, ValueError, OSError, IndexError) as err:
        raise ImageError(f"{path}: damaged TIFF ({_reason(err)}); re-export or remove it") from None
    bits = layout[258]
    if len(bits) < 3 or set(bits) != {16} or layout[262] != 2 or set(layout[339]) != {1}:
        return None
    _refuse_unreadable_tiff16(path, layout, 322 in tags)
    return order, tags, layout


def _refuse_unreadable_tiff16(path: Path, numbers: dict, tiled: bool) -> None:
    """A 16-bit colour TIFF is read here uncompressed or deflate-compressed, in strips, interleaved, RGB
    or RGBA; any other is refused rather than cut to 8 bits."""
    compression, planes, predictor = numbers[259], numbers[277], numbers[317]
    strips = len(numbers[273]) == len(numbers[279]) > 0
    problems = [f"compression {compression}" if compression not in (1, 8, 32946) else "", "tiles" if tiled else "",
                "separate colour planes" if numbers[284] != 1 else "",
                f"{planes} samples a pixel" if planes not in (3, 4) else "",
                f"predictor {predictor}" if predictor not in (1, 2) else "", "" if strips or tiled else "no strips"]
    if any(problems):
        raise ImageError(f"{path}: a 16-bit colour TIFF with {', '.join(p for p in problems if p)}, which n2n "
                         f"cannot read at 16 bits (only uncompressed or deflate, in strips); save it as a 16-bit PNG")


def _read_tiff16(path: Path, order: str, tags: dict, numbers: dict) -> ImageFile:
    """A 16-bit colour TIFF (``_tiff16_layout``): its strips decoded with numpy (and zlib), its
    orientation applied; the tags of TIFF_KEPT_TAGS kept for ``_write_tiff16``."""
    width, height, planes = numbers[256], numbers[257], numbers[277]
    need = width * height * planes * 2
    strips = []
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        for offset, count in zip(numbers[273], numbers[279]):
            f.seek(offset)
            strips.append(f.read(max(0, min(count, size - offset))))  # a count past the end reads what is there
    try:
        if numbers[259] != 1:
            strips = [zlib.decompressobj().decompress(strip, need) for strip in strips]
    except zlib.error as err:
        raise ImageError(f"{path}: damaged 16-bit TIFF ({_reason(err)}); re-export or remove it") from None
    data = b"".join(strips)
    if len(data) < need:
        raise ImageError(f"{path}: truncated 16-bit TIFF ({len(data)} of {need} bytes of samples); re-export or "
                         f"remove it")
    samples = np.frombuffer(data, order + "u2", width * height * planes).reshape(height, width, planes)
    if numbers[317] == 2:  # horizontal differencing
        samples = np.cumsum(samples, axis=1, dtype=np.uint16)
    info = {"byteorder": order, "tiff_tags": {tag: tags[tag] for tag in TIFF_KEPT_TAGS if tag in tags},
            "tiff_blocks": _tiff_blocks(path, order, tags)}
    if 34675 in tags:
        info["icc_profile"] = tags[34675][2]
    samples = _upright(samples.astype(np.uint16), numbers[274])
    return _image16(path, samples, False, planes == 4, "TIFF", info)


def _tiff_blocks(path: Path, order: str, tags: dict) -> dict[int, dict]:
    """The EXIF and GPS blocks (TIFF_BLOCKS) of a TIFF's first directory, each a directory of its own:
    pointer tag -> its entries, less the pointers inside them (the EXIF block's interoperability
    directory, whose few entries say which EXIF rules the file follows). A block that cannot be read
    is left out: a damaged EXIF block must not cost the image."""
    blocks = {}
    with open(path, "rb") as f:
        for pointer in TIFF_BLOCKS:
            try:
                entries = _tiff_directory(f, order, _tiff_values(order, tags, pointer, (0,))[0]) if pointer in tags \
                    else None
            except (struct.error, ValueError, OSError, IndexError):
                continue
            if entries:
                blocks[pointer] = {tag: entry for tag, entry in entries.items() if tag not in TIFF_BLOCK_POINTERS}
    return blocks


def _read_ppm16(path: Path) -> ImageFile:
    """A binary colour PPM with a maxval above 255 (two big-endian bytes a sample), on its maxval's scale."""
    data = path.read_bytes()
    match = PPM_HEADER.match(data)
    width, height, maxval = (int(g) for g in match.groups())
    count = width * height * 3
    if len(data) - match.end() < 2 * count:
        raise ImageError(f"{path}: truncated 16-bit PPM ({len(data) - match.end()} of {2 * count} bytes of samples); "
                         f"re-export or remove it")
    samples = np.frombuffer(data, ">u2", count, match.end()).reshape(height, width, 3)
    return _image16(path, np.minimum(samples, maxval), False, False, "PPM", {"maxval": maxval}, top=maxval)


def _pypng():
    try:
        import png
    except ImportError:
        raise ImageError("16-bit colour PNG files need the pypng package: pip install pypng") from None
    return png


def _quantize(channel: np.ndarray, image: ImageFile) -> np.ndarray:
    if image.bits == 32:  # float: not quantised, only kept in [0, 1]
        return np.clip(channel, 0.0, 1.0).astype(np.float32)
    top = image.info.get("maxval") or (65535 if image.bits == 16 else 255)
    return np.round(np.clip(channel, 0.0, 1.0) * top).astype(np.uint16 if image.bits == 16 else np.uint8)


def _samples(image: ImageFile, rgb: torch.Tensor) -> np.ndarray:
    """``rgb`` (3 x H x W in [0, 1]) as the samples of ``image``'s kind of file (H x W or H x W x planes,
    quantised to its bit depth, its alpha channel appended)."""
    if tuple(rgb.shape[-2:]) != tuple(image.rgb.shape[-2:]):
        raise ValueError(f"denoised pixels are {tuple(rgb.shape[-2:])}, the image {tuple(image.rgb.shape[-2:])}")
    pixels = rgb.detach().float().cpu().clamp(0, 1).numpy()
    samples = _quantize(pixels.mean(axis=0) if image.grey else pixels.transpose(1, 2, 0), image)
    return samples if image.alpha is None else np.dstack([samples, image.alpha])


def pil_output(image: ImageFile, rgb: torch.Tensor) -> Image.Image:
    """``rgb`` (3 x H x W in [0, 1]) as a Pillow image of ``image``'s mode and bit depth (for the kinds
    Pillow writes: any but 16-bit colour and 16-bit grey + alpha)."""
    if image.bits == 16 and (not image.grey or image.alpha is not None):
        raise ValueError(f"{image.path}: Pillow cannot hold {image.describe()} pixels; write them with write_image")
    return _pil_image(image, _samples(image, rgb))


def write_image(image: ImageFile, rgb: torch.Tensor, path: str | Path) -> Path:
    """Write ``rgb`` (3 x H x W in [0, 1]) to ``path`` as the same kind of file as ``image``."""
    path = Path(path)
    samples = _samples(image, rgb)
    with atomic_output(path) as tmp:
        if image.bits == 16 and (not image.grey or image.alpha is not None):  # what Pillow cannot write
            writer = {"TIFF": _write_tiff16, "PPM": _write_ppm16}.get(image.format, _write_png16)
            writer(samples if samples.ndim == 3 else samples[..., None], tmp, image)
        else:
            fmt = Image.registered_extensions().get(path.suffix.lower()) or image.format
            options = dict(image.info)
            if fmt == "JPEG":
                options.update(quality=95, subsampling=0)  # the denoised image, not a second round of artefacts
            if fmt == "WEBP":  # lossless stays lossless; a lossy one at quality 95, as JPEGs
                options.update(quality=100 if options.get("lossless") else 95, method=6 if options.get("lossless") else 4)
            _pil_image(image, samples).save(tmp, format=fmt, **options)
    return path


def _pil_image(image: ImageFile, samples: np.ndarray) -> Image.Image:
    if image.bits == 32:
        return Image.fromarray((samples * np.float32(image.scale)).astype(np.float32), "F")
    if image.grey and image.bits == 16:
        return Image.frombytes("I;16", (samples.shape[1], samples.shape[0]), samples.astype("<u2").tobytes())
    if image.grey:
        return Image.fromarray(samples, "LA" if image.alpha is not None else "L")
    return Image.fromarray(samples, "RGBA" if image.alpha is not None else "RGB")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_png16(samples: np.ndarray, path: Path, image: ImageFile) -> None:
    """A 16-bit PNG through pypng, with the image's ICC profile (iCCP) and EXIF data (eXIf) inserted
    after the header chunk, where PNG wants them: before the image data."""
    png = _pypng()
    height, width, planes = samples.shape
    buffer = io.BytesIO()
    writer = png.Writer(width, height, greyscale=image.grey, alpha=planes in (2, 4), bitdepth=16)
    writer.write_array(buffer, samples.astype(np.uint16).reshape(-1))
    data = buffer.getvalue()
    extra = b""
    if image.info.get("icc_profile"):
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(image.info["icc_profile"]))
    if image.info.get("exif"):
        exif = image.info["exif"]
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    header_end = len(PNG_SIGNATURE) + 25  # IHDR: length, type, 13 bytes, CRC
    path.write_bytes(data[:header_end] + extra + data[header_end:])


def _write_tiff16(samples: np.ndarray, path: Path, image: ImageFile) -> None:
    """An uncompressed baseline 16-bit RGB(A) TIFF, one strip, in the byte order of the file read, with
    its kept tags (TIFF_KEPT_TAGS) copied as they were and its EXIF and GPS blocks (TIFF_BLOCKS)."""
    order = image.info.get("byteorder", "<")
    height, width, planes = samples.shape
    data = samples.astype(order + "u2").tobytes()

    def numbers(kind: int, *values: int) -> tuple[int, int, bytes]:
        return kind, len(values), struct.pack(f"{order}{len(values)}{'H' if kind == 3 else 'I'}", *values)

    tags = {**image.info.get("tiff_tags", {}), 256: numbers(4, width), 257: numbers(4, height),
            258: numbers(3, *[16] * planes), 259: numbers(3, 1), 262: numbers(3, 2), 273: numbers(4, 8),
            277: numbers(3, planes), 278: numbers(4, height), 279: numbers(4, len(data)), 284: numbers(3, 1)}
    if planes == 4 and 338 not in tags:
        tags[338] = numbers(3, 2)  # unassociated alpha
    blob = bytearray(b"II*\x00" if order == "<" else b"MM\x00*") + bytes(4) + data
    for pointer, entries in image.info.get("tiff_blocks", {}).items():  # the blocks first: the main directory
        tags[pointer] = numbers(4, _append_directory(blob, order, entries))  # points to them
    blob[4:8] = struct.pack(order + "I", _append_directory(blob, order, tags))
    path.write_bytes(bytes(blob))


def _append_directory(blob: bytearray, order: str, tags: dict) -> int:
    """Append a TIFF directory of ``tags`` (tag -> (type, count, value bytes)) to ``blob``, the values
    that do not fit an entry first, each on a word boundary; returns the directory's offset."""
    entries = []
    for tag in sorted(tags):
        kind, count, payload = tags[tag]
        field = payload.ljust(4, b"\x00")
        if len(payload) > 4:
            blob += bytes(len(blob) % 2)
            field = struct.pack(order + "I", len(blob))
            blob += payload
        entries.append(struct.pack(order + "HHI", tag, kind, count) + field)
    blob += bytes(len(blob) % 2)
    offset = len(blob)
    blob += struct.pack(order + "H", len(entries)) + b"".join(entries) + bytes(4)
    return offset


def _write_ppm16(samples: np.ndarray, path: Path, image: ImageFile) -> None:
    """A binary colour PPM (P6) with the maxval of the file read, two big-endian bytes a sample."""
    height, width, _ = samples.shape
    header = f"P6\n{width} {height}\n{image.info.get('maxval', 65535)}\n".encode()
    path.write_bytes(header + samples.astype(">u2").tobytes())


def png_bit_depth(path: str | Path) -> int | None:
    """The bit depth a PNG file declares (8, 16, ...), or None if it is not a PNG."""
    header = _png_header(Path(path))
    return None if header is None else header[0]


__all__ = ["ImageError", "ImageFile", "read_image", "write_image", "check_image", "check_regular_file",
           "not_a_regular_file", "png_bit_depth", "decoded", "pil_output", "image_pages"]


def center_crop(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """The centre crop of side ``size`` of an image (... x H x W); None: the whole image."""
    if size is None:
        return image
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top:top + size, left:left + size]
