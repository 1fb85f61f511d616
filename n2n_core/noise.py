"""Noise models. Every draw takes an explicit torch.Generator, so a seed fixes the noise without
touching global state, and the noise is added in float: never clipped, never quantised. (Clipping
shifts the mean of the noisy target and breaks the Noise2Noise argument, which needs zero-mean
target noise.)
"""
from __future__ import annotations

import numpy as np
import torch

from .config import NoiseConfig


def _per_image(clean: torch.Tensor) -> tuple[int, ...]:
    """The shape of one value per image, broadcastable against ``clean`` (N x C x H x W or C x H x W)."""
    return (clean.shape[0],) + (1,) * (clean.dim() - 1) if clean.dim() == 4 else (1,) * clean.dim()


def _levels(clean: torch.Tensor, fixed: float, value_range: tuple[float, float] | None,
            generator: torch.Generator) -> torch.Tensor:
    """One level per image: ``fixed``, or uniform in ``value_range`` (blind training)."""
    shape = _per_image(clean)
    if value_range is None:
        return torch.full(shape, float(fixed), device=generator.device)
    lo, hi = value_range
    return lo + (hi - lo) * torch.rand(shape, generator=generator, device=generator.device)


class NoiseModel:
    """A noise model: ``noise(clean, generator)`` returns the noisy image(s), in float32, on the
    device of ``clean``, drawn on the generator's device (so the draws do not depend on where
    ``clean`` is); ``noise.draw(clean, generator)`` also returns the mask of the pixels that carry
    information (None when every pixel does), which a loss on noisy targets must use."""

    def draw(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.draw(clean, generator)[0]


class GaussianNoise(NoiseModel):
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

    def draw(self, clean, generator):
        sigma = _levels(clean, self.sigma, self.sigma_range, generator) / 255.0
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32, device=generator.device)
        return clean + (sigma * noise).to(clean.device, clean.dtype), None

    def __repr__(self) -> str:
        if self.sigma_range is None:
            return f"GaussianNoise(sigma={self.sigma:g})"
        return f"GaussianNoise(sigma~U{tuple(self.sigma_range)})"


class PoissonNoise(NoiseModel):
    """Shot noise: y = Poisson(lam * x) / lam for x in [0, 1], so E[y] = x and Var[y] = x / lam.

    ``lam`` is the photon count of a white pixel (Table 1 tests lam = 30); ``lam_range`` draws one
    lam per image (the paper trains on lam ~ U(0.001, 50)). Counts are divided back, never clipped.
    """

    def __init__(self, lam: float = 30.0, lam_range: tuple[float, float] | None = None):
        if not lam > 0:
            raise ValueError(f"Poisson lam must be > 0, got {lam}")
        if lam_range is not None and not 0 < lam_range[0] <= lam_range[1]:
            raise ValueError(f"lam_range must satisfy 0 < lo <= hi, got {lam_range}")
        self.lam, self.lam_range = float(lam), lam_range

    def draw(self, clean, generator):
        lam = _levels(clean, self.lam, self.lam_range, generator)
        # Poisson(rate) needs rate >= 0: a clean value below 0 (never in [0, 1] images) is floored
        rate = (clean.detach().float().to(generator.device).clamp_min(0) * lam)
        noisy = torch.poisson(rate, generator=generator) / lam
        return noisy.to(clean.device, clean.dtype), None

    def __repr__(self) -> str:
        if self.lam_range is None:
            return f"PoissonNoise(lam={self.lam:g})"
        return f"PoissonNoise(lam~U{tuple(self.lam_range)})"


class BernoulliNoise(NoiseModel):
    """Multiplicative Bernoulli noise: each pixel (all its channels together) is kept with
    probability 1 - p and set to 0 otherwise. ``p_range`` draws one p per image (the paper trains
    on p ~ U(0, 0.95)). ``draw`` returns the keep mask, N x 1 x H x W, for the masked loss."""

    def __init__(self, p: float = 0.5, p_range: tuple[float, float] | None = None):
        if not 0 <= p < 1:
            raise ValueError(f"Bernoulli p must be in [0, 1), got {p}")
        if p_range is not None and not 0 <= p_range[0] <= p_range[1] < 1:
            raise ValueError(f"p_range must satisfy 0 <= lo <= hi < 1, got {p_range}")
        self.p, self.p_range = float(p), p_range

    def draw(self, clean, generator):
        p = _levels(clean, self.p, self.p_range, generator)
        mask_shape = clean.shape[:-3] + (1,) + clean.shape[-2:]
        keep = (torch.rand(mask_shape, generator=generator, device=generator.device) >= p).to(torch.float32)
        keep = keep.to(clean.device, clean.dtype)
        return clean * keep, keep

    def __repr__(self) -> str:
        if self.p_range is None:
            return f"BernoulliNoise(p={self.p:g})"
        return f"BernoulliNoise(p~U{tuple(self.p_range)})"


def training_noise(config: NoiseConfig) -> NoiseModel:
    """The noise drawn for training inputs and noisy targets (independently for each)."""
    if config.kind == "gaussian":
        return GaussianNoise(config.sigma, config.train_sigma_range)
    if config.kind == "poisson":
        return PoissonNoise(config.lam, config.train_lam_range)
    return BernoulliNoise(config.p, config.train_p_range)


def test_noise(config: NoiseConfig) -> NoiseModel:
    """The noise of the evaluation protocol: the fixed test level of ``config.kind``."""
    if config.kind == "gaussian":
        return GaussianNoise(config.sigma)
    if config.kind == "poisson":
        return PoissonNoise(config.lam)
    return BernoulliNoise(config.p)


def seeded_generator(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` that is a function of (seed, keys...), e.g. (evaluation seed, image
    index)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device).manual_seed(int(state[0]) << 32 | int(state[1]))
