"""Data augmentation: random crops and the eight flips/rotations of the square (dihedral group);
and at test time, ``SelfEnsemble``: a model's outputs averaged over the eight.

The random functions take a torch.Generator, so the augmentation of a run is fixed by its seed.
"""
from __future__ import annotations

import torch


def random_crop(image: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A size x size crop of a C x H x W (or N x C x H x W, same offset for all) tensor."""
    top, left = crop_offset(*image.shape[-2:], size, generator)
    return image[..., top:top + size, left:left + size]


def crop_offset(height: int, width: int, size: int, generator: torch.Generator) -> tuple[int, int]:
    """(top, left) of a random size x size crop of a height x width image: what ``random_crop`` draws,
    so that a crop can be planned before its image is decoded (``patches.cut_patches``)."""
    if height < size or width < size:
        raise ValueError(f"image of {width}x{height} pixels is smaller than the {size}x{size} crop; "
                         f"use a smaller crop or larger images")
    top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
    return top, left


def dihedral(image: torch.Tensor, index: int) -> torch.Tensor:
    """One of the 8 flips/rotations by 90 degrees; index 0 is the identity."""
    if not 0 <= index < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {index}")
    out = torch.rot90(image, index % 4, dims=(-2, -1))
    return out.flip(-1) if index >= 4 else out


def undo_dihedral(image: torch.Tensor, index: int) -> torch.Tensor:
    """The inverse of ``dihedral(., index)``: ``undo_dihedral(dihedral(x, k), k)`` is x."""
    if not 0 <= index < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {index}")
    out = image.flip(-1) if index >= 4 else image
    return torch.rot90(out, -(index % 4), dims=(-2, -1))


class SelfEnsemble(torch.nn.Module):
    """``model`` averaged over the 8 flips/rotations of its input, each output turned back
    (`n2n denoise --ensemble`, `n2n eval --ensemble`): 8 passes for a small gain (`n2n eval --ensemble`
    measures it; docs/your-own-images.md); not the paper's protocol, which runs the model once. A model that pads
    its input (the U-Net, at the bottom and right to multiples of 32) is given it padded once,
    before the turns, so that every turn sees the same borders and pooling grid, and tiles
    (``denoise.denoise_tensor``, which sees the wrapped model's side multiple and padding) what
    the whole image sees."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.side_multiple = getattr(model, "side_multiple", 1)
        self.pad_input = getattr(model, "pad_input", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = x if self.pad_input is None else self.pad_input(x)
        return (sum(undo_dihedral(self.model(dihedral(padded, k)), k) for k in range(8)) / 8)[..., :h, :w]


def random_dihedral(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return dihedral(image, dihedral_index(generator))


def dihedral_index(generator: torch.Generator) -> int:
    """A random one of the 8 flips/rotations (what ``random_dihedral`` draws)."""
    return int(torch.randint(0, 8, (1,), generator=generator))


def random_crops(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random crop and a random flip/rotation for each image of an N x C x H x W batch."""
    return torch.stack([random_dihedral(random_crop(img, size, generator), generator) for img in batch])
