"""Noise models. Every draw takes an explicit torch.Generator, so a seed fixes the noise without
touching global state, and the noise is added in float: never clipped, never quantised. (Clipping
shifts the mean of the noisy target and breaks the Noise2Noise argument, which needs zero-mean
target noise.)
"""
from __future__ import annotations

import numpy as np
import torch

from .config import NoiseConfig


class GaussianNoise:
    """Additive white Gaussian noise, sigma on the 0..255 scale.

    With ``sigma_range=(lo, hi)`` each image of a batch gets its own sigma ~ U(lo, hi) (blind
    training); otherwise every image gets ``sigma``.
    """

    def __init__(self, sigma: float = 25.0, sigma_range: tuple[float, float] | None = None):
        if sigma < 0:
            raise ValueError(f"Gaussian sigma must be >= 0, got {sigma}")
        if sigma_range is not None and not 0 <= sigma_range[0] <= sigma_range[1]:
            raise ValueError(f"sigma_range must satisfy 0 <= lo <= hi, got {sigma_range}")
        self.sigma, self.sigma_range = float(sigma), sigma_range

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch_shape = (clean.shape[0],) + (1,) * (clean.dim() - 1) if clean.dim() == 4 else (1,)
        if self.sigma_range is None:
            sigma = torch.full(batch_shape, self.sigma / 255.0)
        else:
            lo, hi = self.sigma_range
            sigma = (lo + (hi - lo) * torch.rand(batch_shape, generator=generator)) / 255.0
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32)
        return clean + (sigma * noise).to(clean.device, clean.dtype)

    def __repr__(self) -> str:
        if self.sigma_range is None:
            return f"GaussianNoise(sigma={self.sigma:g})"
        return f"GaussianNoise(sigma~U{tuple(self.sigma_range)})"


def training_noise(config: NoiseConfig) -> GaussianNoise:
    """The noise drawn for training inputs and noisy targets (independently for each)."""
    return GaussianNoise(config.sigma, config.train_sigma_range)


def test_noise(config: NoiseConfig) -> GaussianNoise:
    """The noise of the evaluation protocol: fixed sigma."""
    return GaussianNoise(config.sigma)


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """A generator that is a function of (seed, keys...), e.g. (evaluation seed, image index)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
