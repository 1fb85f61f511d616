"""A user's image files in and out, unchanged in everything but their pixels.

``read_image`` gives the pixels as a 3 x H x W float tensor in [0, 1], upright (EXIF orientation
applied), and remembers what the file was: grey or colour, with or without alpha, 8 or 16 bits per
sample, its format, ICC profile and EXIF data. ``write_image`` writes denoised pixels back in that
same form: grey stays grey (the mean of the three output channels), the alpha channel is copied
untouched, 16-bit stays 16-bit, the EXIF data are kept (with the orientation reset, since the
pixels are now upright). Writes are atomic: a crash never leaves half a file.

Pillow reads 16-bit colour (and grey + alpha) PNGs as 8 bit, so those go through pypng (pure
Python, slower).
Palette images are written as RGB(A): a denoised image has more colours than any palette.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..paths import atomic_output

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    header = _png_header(path)
    if header is not None and header[0] == 16 and header[1] in (2, 4, 6):  # 16-bit RGB, grey+alpha, RGBA
        return _read_png16(path)
    img, fmt = _open_upright(path)
    info = _kept_info(path, img, fmt)
    mode = img.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
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
        values = np.asarray(img, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
            raise ImageError(f"{path}: float samples from {low:g} to {high:g}; n2n denoise takes float images on a "
                             f"0..1 (or 0..255) scale: rescale it first")
        scale, notes = 1.0, []
        if high > 1:  # never clipped silently: a 0..255 float image is read on its own scale and said so
            scale = 255.0
            notes.append(f"float samples up to {high:g}, read as 0..255 (divided by 255), written back on that scale")
        return ImageFile(path, _grey_to_rgb(values / scale), True, 32, None, fmt, "F", info, notes, scale)
    raise ImageError(f"{path}: unsupported image mode {mode!r}; use {SUPPORTED_HINT}")


def _open_upright(path: Path) -> tuple[Image.Image, str]:
    """The decoded image, EXIF orientation applied, and its format; one frame only."""
    try:
        with Image.open(path) as img:
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
    lossless or not)."""
    info = {k: img.info[k] for k in ("icc_profile", "dpi") if img.info.get(k)}
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
    if isinstance(err, (OSError, ValueError, EOFError)):
        return ImageError(f"{path}: damaged or truncated image ({_reason(err)}); re-export or remove it")
    raise err


def check_image(path: str | Path) -> None:
    """Open ``path``'s header without decoding its pixels: an ImageError for a file that is no image
    (empty, another format, a size beyond Pillow's limit). Damage further in shows only when the
    pixels are read."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: an empty file (0 bytes); remove it or pass image files only")
    try:
        with Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
    except Exception as err:
        raise _open_error(path, err) from None
    _refuse_frames(path, frames)


def _refuse_frames(path: Path, frames: int) -> None:
    """Several frames (an animated GIF, a multi-page TIFF stack) are refused rather than cut to the first."""
    if frames > 1:
        raise ImageError(f"{path}: holds {frames} frames (an animation or a stack); n2n denoise writes one image per "
                         f"file and would drop all but the first: save the frames as separate files")


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


def _read_png16(path: Path) -> ImageFile:
    """16-bit PNGs that Pillow would cut to 8 bit: RGB, RGBA and grey + alpha, through pypng."""
    png = _pypng()
    try:
        width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
        data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except Exception as err:  # pypng raises its own FormatError and zlib/EOF errors for damaged files
        raise ImageError(f"{path}: damaged or truncated 16-bit PNG ({_reason(err)}); re-export or remove it") from None
    planes = meta["planes"]
    data = data.reshape(height, width, planes)
    grey = meta["greyscale"]
    alpha = data[..., -1].copy() if meta["alpha"] else None
    colour = data[..., :1 if grey else 3].astype(np.float32) / 65535.0
    rgb = _grey_to_rgb(colour[..., 0]) if grey else torch.from_numpy(colour).permute(2, 0, 1).contiguous()
    mode = ("LA" if grey else "RGBA") if alpha is not None else ("L" if grey else "RGB")
    return ImageFile(path, rgb, grey, 16, alpha, "PNG", mode, {})


def _pypng():
    try:
        import png
    except ImportError:
        raise ImageError("16-bit colour PNG files need the pypng package: pip install pypng") from None
    return png


def _quantize(channel: np.ndarray, bits: int) -> np.ndarray:
    if bits == 32:  # float: not quantised, only kept in [0, 1]
        return np.clip(channel, 0.0, 1.0).astype(np.float32)
    top = 65535 if bits == 16 else 255
    return np.round(np.clip(channel, 0.0, 1.0) * top).astype(np.uint16 if bits == 16 else np.uint8)


def write_image(image: ImageFile, rgb: torch.Tensor, path: str | Path) -> Path:
    """Write ``rgb`` (3 x H x W in [0, 1]) to ``path`` as the same kind of file as ``image``."""
    path = Path(path)
    if tuple(rgb.shape[-2:]) != tuple(image.rgb.shape[-2:]):
        raise ValueError(f"denoised pixels are {tuple(rgb.shape[-2:])}, the image {tuple(image.rgb.shape[-2:])}")
    pixels = rgb.detach().float().cpu().clamp(0, 1).numpy()
    samples = _quantize(pixels.mean(axis=0) if image.grey else pixels.transpose(1, 2, 0), image.bits)
    if image.alpha is not None:
        samples = np.dstack([samples, image.alpha])
    with atomic_output(path) as tmp:
        if image.bits == 16 and (not image.grey or image.alpha is not None):
            _write_png16(samples, tmp, grey=image.grey)
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


def _write_png16(samples: np.ndarray, path: Path, grey: bool) -> None:
    png = _pypng()
    samples = samples if samples.ndim == 3 else samples[..., None]
    height, width, planes = samples.shape
    writer = png.Writer(width, height, greyscale=grey, alpha=planes in (2, 4), bitdepth=16)
    with open(path, "wb") as f:
        writer.write_array(f, samples.astype(np.uint16).reshape(-1))


def png_bit_depth(path: str | Path) -> int | None:
    """The bit depth a PNG file declares (8, 16, ...), or None if it is not a PNG."""
    header = _png_header(Path(path))
    return None if header is None else header[0]


__all__ = ["ImageError", "ImageFile", "read_image", "write_image", "png_bit_depth"]


def center_crop(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """The centre crop of side ``size`` of an image (... x H x W); None: the whole image."""
    if size is None:
        return image
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top:top + size, left:left + size]
