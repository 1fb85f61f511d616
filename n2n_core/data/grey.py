"""Grey versions of colour images, as Pillow makes them (``Image.convert('L')``): the ITU-R 601
luma of the 8-bit samples, L = (19595 R + 38470 G + 7471 B + 32768) >> 16, in integers. The grey
shipped weights train on grey patches of the pool and the grey model card measures grey test sets
with it, so a grey photograph saved by Pillow and the grey images measured here are the same."""
from __future__ import annotations

import torch

_WEIGHTS = (19595, 38470, 7471)


def grey_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """... x 3 x H x W uint8 -> ... x 1 x H x W uint8, Pillow's 'L' conversion."""
    if rgb.dtype != torch.uint8 or rgb.shape[-3] != 3:
        raise ValueError(f"grey_uint8 takes uint8 RGB (... x 3 x H x W), got {rgb.dtype} {tuple(rgb.shape)}")
    wide = rgb.to(torch.int64)
    luma = sum(w * wide[..., i:i + 1, :, :] for i, w in enumerate(_WEIGHTS)) + 32768
    return (luma >> 16).to(torch.uint8)


def grey_image(rgb: torch.Tensor) -> torch.Tensor:
    """A float 3 x H x W image in [0, 1] (8-bit values) -> its 1 x H x W grey version in [0, 1]."""
    return grey_uint8((rgb.clamp(0, 1) * 255).round().to(torch.uint8)).float() / 255.0
