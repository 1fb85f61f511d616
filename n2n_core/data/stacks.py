"""Multi-page TIFF stacks: several images in one file, as microscopes and ImageJ save repeated
captures of one field of view or a time series. ``n2n denoise`` denoises every page of a stack and
writes a stack of as many pages; ``n2n train/eval --captures`` take a stack as one scene whose pages
are its aligned captures.

Pages are read one at a time (``read_pages``), each as ``images.read_image`` reads a single image:
upright, grey or colour, 8 or 16 bits or float. A stack is written (``write_stack``) as a multi-page
TIFF through Pillow, each page in the mode and bit depth it was read in, with the first page's
resolution, ICC profile, description (where ImageJ keeps its stack's layout) and lossless
compression (LZW, deflate or PackBits; other compressions are written uncompressed); other tags are
not carried over. A stack of 16-bit colour pages, which Pillow reads as 8 bits, is refused
(``images.image_pages``) rather than cut.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from PIL import Image, ImageOps

from ..paths import atomic_output
from .images import ImageError, ImageFile, _open_error, _quiet_pillow, decoded, image_pages

DESCRIPTION_TAG = 270
STACK_SUFFIXES = (".tif", ".tiff")  # how a scene given as one file is named (``sources.load_scenes``)


def read_pages(path: str | Path, count: int | None = None) -> Iterator[ImageFile]:
    """The pages of a TIFF stack (or the one image of any other file), one ImageFile at a time; the
    first page's ``info`` also holds the stack's description, if it has one. ``count``: the pages
    ``images.image_pages`` found, where the caller has checked the file already. An ImageError names
    the file, the page and the fix."""
    path = Path(path)
    count = image_pages(path) if count is None else count
    with _quiet_pillow(), Image.open(path) as img:
        description = getattr(img, "tag_v2", {}).get(DESCRIPTION_TAG)
        for k in range(count):
            try:
                img.seek(k)
                page = ImageOps.exif_transpose(img)  # a copy of this page, upright
                page.load()
            except Exception as err:
                message = str(_open_error(path, err))
                raise ImageError(message.replace(f"{path}:", f"{path} (page {k + 1} of {count}):", 1)) from None
            image = decoded(path, page, img.format or "TIFF")
            if k == 0 and isinstance(description, str) and description:
                image.info["description"] = description
            yield image


def describe(first: ImageFile, pages: int) -> str:
    """A stack as a log line names it, from its first page."""
    return f"stack of {pages} pages, {first.describe()}"


def write_stack(pages: list[Image.Image], first: ImageFile, path: str | Path) -> Path:
    """Write ``pages`` (Pillow images, as ``images.pil_output`` gives them) to ``path`` as one
    multi-page TIFF, atomically, with ``first``'s resolution, ICC profile, description and lossless
    compression."""
    path = Path(path)
    if not pages:
        raise ValueError(f"{path}: a stack needs at least one page")
    options = {key: first.info[key] for key in ("dpi", "icc_profile", "description", "compression")
               if first.info.get(key)}
    with atomic_output(path) as tmp:
        pages[0].save(tmp, format="TIFF", save_all=True, append_images=pages[1:], **options)
    return path
