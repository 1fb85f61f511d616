"""Neighbor2Neighbor (Huang et al., CVPR 2021): training from single noisy captures, no pairs.

From each noisy crop y two sub-images of half its side are taken: in every 2 x 2 cell of y a random
pair of neighbouring pixels (sharing an edge; 8 ordered choices per cell), the first pixel going to
g1(y), the second to g2(y). Two neighbours see nearly the same scene and, where the noise is
independent between pixels, independent noise: (g1(y), g2(y)) is a Noise2Noise pair at half
resolution. The network f maps g1(y) to g2(y); since neighbours are close but not equal, that alone
over-smooths, and a regulariser ties the pair to the full-resolution output f(y), computed without
gradient and sub-sampled by the same cells:

    loss = mean |f(g1 y) - g2 y|^2 + gamma mean |f(g1 y) - g2 y - (g1 f(y) - g2 f(y))|^2

An ideal denoiser (f(g1 y) = g1 x, f(y) = x) makes the second term the target's noise alone. gamma
rises linearly from 0 over training to a final weight, ``TrainConfig.nb2nb_gamma``: the authors' 2
(for 100 epochs of ImageNet) by default, 1 in the short runs of the cpu profile, where it measured
better (docs/claims.md). The same ``fit``
trains it: a batch (``NeighbourBatch``) carries the sub-images as input and target, and the whole
crops and their cells, from which ``train.TrainStep`` adds the regulariser. Noise
correlated between neighbouring pixels (brown noise, demosaiced camera noise) breaks the method: the
two sub-images then share their noise, and the network learns to keep it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import augment
from .patches import BatchSource, PairSampler

# the pixels of a 2 x 2 cell, numbered 0 1 / 2 3, and the 8 ordered pairs of neighbours among them
NEIGHBOURS = torch.tensor([[0, 1], [0, 2], [1, 3], [2, 3], [1, 0], [2, 0], [3, 1], [3, 2]])


def draw_cells(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Which pair of neighbours (0..7, ``NEIGHBOURS``) each 2 x 2 cell of n images gives."""
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise ValueError(f"Neighbor2Neighbor needs even sides of at least 2 px, got {width}x{height}; use an even "
                         f"--crop")
    return torch.randint(0, len(NEIGHBOURS), (n, height // 2, width // 2), generator=generator)


def subsample(images: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sub-images g1, g2 (N x C x H/2 x W/2) of ``images`` (N x C x H x W) for ``cells``."""
    n, c, h, w = images.shape
    blocks = images.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    pairs = NEIGHBOURS.to(cells.device)[cells]  # N x H/2 x W/2 x 2: the two pixels of each cell
    picked = blocks.gather(-1, pairs[:, None].expand(n, c, h // 2, w // 2, 2).to(images.device))
    return picked[..., 0], picked[..., 1]


def gamma(progress: float, final: float) -> float:
    """The regulariser's weight at ``progress`` (0..1) of training: linear from 0 to ``final``."""
    return final * min(1.0, max(0.0, progress))


def nb2nb_loss(output: torch.Tensor, target: torch.Tensor, full_output: torch.Tensor, cells: torch.Tensor,
               progress: float, final_gamma: float) -> torch.Tensor:
    """The loss of the module docstring: ``output`` = f(g1 y), ``target`` = g2 y, ``full_output`` = f(y),
    the regulariser's weight rising to ``final_gamma``."""
    first, second = subsample(full_output.detach(), cells)
    residual = output - target
    return (residual ** 2).mean() + gamma(progress, final_gamma) * ((residual - (first - second)) ** 2).mean()


class NeighbourBatch(NamedTuple):
    """A ``patches.Batch`` (input, target, clean, mask) for Neighbor2Neighbor: the sub-images as input
    and target, and the whole noisy crops and their cells, from which ``loss`` adds the regulariser."""
    input: torch.Tensor
    target: torch.Tensor
    clean: torch.Tensor
    mask: None
    full: torch.Tensor
    cells: torch.Tensor

    def loss(self, forward, to_device, loss_fn, progress: float) -> torch.Tensor:
        """``patches.Batch.loss`` for Neighbor2Neighbor: the network also runs on the whole crops
        (no gradient), whose sub-images the regulariser compares."""
        with torch.no_grad():
            full = forward(self.full)
        output = forward(self.input)
        return loss_fn(output.float(), to_device(self.target), full.float(), to_device(self.cells), progress)


def neighbour_batch(noisy: torch.Tensor, generator: torch.Generator,
                    clean: torch.Tensor | None = None) -> NeighbourBatch:
    """A training batch from single noisy crops; ``clean`` (sub-sampled as the input) where it is
    known, else the target stands in for it."""
    cells = draw_cells(len(noisy), *noisy.shape[-2:], generator)
    first, second = subsample(noisy, cells)
    return NeighbourBatch(first, second, second if clean is None else subsample(clean, cells)[0], None, noisy, cells)


class NeighbourSampler(PairSampler):
    """``PairSampler``'s crops of clean patches with one synthetic noisy capture each, as batches for
    Neighbor2Neighbor (the clean crop is kept for nothing but its sub-image in ``Batch.clean``)."""

    def __init__(self, patches: torch.Tensor, crop: int, batch_size: int, noise, target: str,
                 generator: torch.Generator):
        if target != "nb2nb":
            raise ValueError(f"NeighbourSampler makes Neighbor2Neighbor batches (target 'nb2nb'), not {target!r}")
        super().__init__(patches, crop, batch_size, noise, "noisy", generator)

    def sample(self) -> NeighbourBatch:
        clean = self.clean_crops()
        return neighbour_batch(self.noise(clean, self.noise_generator), self.generator, clean)


def sampler_class(target: str) -> type[PairSampler]:
    """The sampler of synthetic training pairs for ``TrainConfig.target``."""
    return NeighbourSampler if target == "nb2nb" else PairSampler


class SingleCrops(BatchSource):
    """Batches for Neighbor2Neighbor from single noisy captures (uint8 3 x H x W tensors): a random
    crop and flip/rotation of images drawn in proportion to their area, then its sub-images."""

    def __init__(self, images: list[torch.Tensor], crop: int, batch_size: int, generator: torch.Generator):
        self.images, self.crop, self.batch_size, self.generator = images, crop, batch_size, generator
        self.weights = torch.tensor([float(a.shape[-1] * a.shape[-2]) for a in images])

    def sample(self) -> NeighbourBatch:
        which = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        crops = [augment.random_dihedral(augment.random_crop(self.images[k], self.crop, self.generator),
                                         self.generator) for k in which.tolist()]
        return neighbour_batch(self.to_float(torch.stack(crops)), self.generator)
