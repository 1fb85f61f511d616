"""Data augmentation: random crops and the eight flips/rotations of the square (dihedral group).

All functions take a torch.Generator, so the augmentation of a run is fixed by its seed.
"""
from __future__ import annotations

import torch


def random_crop(image: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A size x size crop of a C x H x W (or N x C x H x W, same offset for all) tensor."""
    h, w = image.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"image of {w}x{h} pixels is smaller than the {size}x{size} crop; "
                         f"use a smaller crop or larger images")
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return image[..., top:top + size, left:left + size]


def dihedral(image: torch.Tensor, index: int) -> torch.Tensor:
    """One of the 8 flips/rotations by 90 degrees; index 0 is the identity."""
    if not 0 <= index < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {index}")
    out = torch.rot90(image, index % 4, dims=(-2, -1))
    return out.flip(-1) if index >= 4 else out


def random_dihedral(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return dihedral(image, int(torch.randint(0, 8, (1,), generator=generator)))


def random_crops(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random crop and a random flip/rotation for each image of an N x C x H x W batch."""
    return torch.stack([random_dihedral(random_crop(img, size, generator), generator) for img in batch])
