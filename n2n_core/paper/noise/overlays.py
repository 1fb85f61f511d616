"""Random text overlays, the corruption of the paper's text-removal experiment (``noise.TextNoise``).

Strings of random characters, lengths and font sizes are rendered once into a bank of glyph masks
(Pillow's own font, FreeType where Pillow has it); ``overlay`` pastes masks from the bank onto an
image, each in one random colour at a random place, until a chosen fraction of the pixels is
covered. Every random choice comes from the caller's torch.Generator, so a seed fixes the overlay.
Masks are hard-edged (a pixel is either the image's or the string's colour): the fraction of
changed pixels is then exactly the coverage, which is what the L1 argument needs (the median of a
pixel over independent overlays is its clean value while it is covered less than half the time).
"""
from __future__ import annotations

import functools
import string

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

CHARACTERS = string.ascii_letters + string.digits + "!?.,:;-+&#@"
FONT_SIZES = (8, 24)  # pixels, inclusive: text of the scale of the training crops (64 px in the cpu profile)
LENGTHS = (3, 12)  # characters, inclusive
BANK_SIZE = 256


def _render(text: str, size: int) -> np.ndarray:
    """The glyph pixels of ``text`` at ``size`` px, a boolean array cropped to the text."""
    try:
        font = ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError):
        font = None
    if font is None or not isinstance(font, ImageFont.FreeTypeFont):
        # the bitmap font of a Pillow without FreeType: one size, scaled to ``size`` px tall
        bitmap = ImageFont.load_default()
        left, top, right, bottom = bitmap.getbbox(text)
        img = Image.new("L", (right - left, bottom - top))
        ImageDraw.Draw(img).text((-left, -top), text, fill=255, font=bitmap)
        scale = size / max(1, bottom - top)
        img = img.resize((max(1, round(img.width * scale)), size), Image.NEAREST)
        return np.asarray(img) >= 128
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(img).text((-left, -top), text, fill=255, font=font)
    return np.asarray(img) >= 128


@functools.lru_cache(maxsize=2)
def stamp_bank(count: int = BANK_SIZE, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``count`` random strings rendered as boolean masks (True on glyph pixels), a fixed function
    of ``seed`` and Pillow's font: the same bank in every run on the same Pillow."""
    rng = np.random.default_rng(seed)
    stamps = []
    while len(stamps) < count:
        length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
        text = "".join(rng.choice(list(CHARACTERS), length))
        mask = _render(text, int(rng.integers(FONT_SIZES[0], FONT_SIZES[1] + 1)))
        if mask.any():
            stamps.append(torch.from_numpy(mask.copy()))
    return tuple(stamps)


def overlay(image: torch.Tensor, fraction: float, generator: torch.Generator,
            bank: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (C x H x W, float) with strings pasted onto it, and the H x W mask of covered pixels.

    Each string takes one colour uniform in [0, 1]^C and a place uniform over all positions where
    it overlaps the image (it may run over the edges, so every pixel is equally likely to be
    covered); strings are added until ``fraction`` of the pixels are covered. The last string is
    kept with the probability that makes the expected coverage exactly ``fraction`` (kept always,
    the coverage would overshoot by half a string on average, and past one half the median of a
    pixel would no longer be its clean value)."""
    bank = bank or stamp_bank()
    channels, height, width = image.shape
    out = image.clone()
    covered = torch.zeros((height, width), dtype=torch.bool, device=image.device)
    need, count = fraction * height * width, 0
    while count < need:
        u = torch.rand(4 + channels, generator=generator, device=generator.device).tolist()
        stamp = bank[min(int(u[0] * len(bank)), len(bank) - 1)]
        h, w = stamp.shape
        top, left = int(u[1] * (height + h - 1)) - (h - 1), int(u[2] * (width + w - 1)) - (w - 1)
        y0, y1, x0, x1 = max(top, 0), min(top + h, height), max(left, 0), min(left + w, width)
        mask = stamp[y0 - top:y1 - top, x0 - left:x1 - left].to(image.device)
        new = int((mask & ~covered[y0:y1, x0:x1]).sum())
        if new == 0:
            continue
        last = count + new >= need
        if last and u[3] * new > need - count:
            break  # the last string is kept with probability (need - count) / new
        region = out[:, y0:y1, x0:x1]
        region[:, mask] = torch.tensor(u[4:], dtype=out.dtype, device=out.device)[:, None]
        covered[y0:y1, x0:x1] |= mask
        count += new
        if last:
            break
    return out, covered
