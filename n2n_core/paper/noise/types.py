"""The noise types of the study, one class each (the registry is ``noise.NOISE_TYPES``)."""
from __future__ import annotations

import numpy as np
import torch

from .base import NoiseModel, PixelFractionNoise, StandardDeviationNoise


class GaussianNoise(StandardDeviationNoise):
    """Additive white Gaussian noise, sigma on the 0..255 scale."""
    name, title, param, symbol = "gaussian", "Gaussian", "sigma", "sigma"
    test_level, paper_range = 25.0, (0.0, 50.0)
    level_help = "Gaussian sigma on the 0..255 scale"

    def __init__(self, sigma: float = 25.0, sigma_range: tuple[float, float] | None = None):
        super().__init__(sigma, sigma_range)

    def apply(self, clean, level, generator):
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32, device=generator.device)
        return clean + (level / 255.0 * noise).to(clean.device, clean.dtype), None


class PoissonNoise(NoiseModel):
    """Shot noise: y = Poisson(lam * x) / lam for x in [0, 1], so E[y] = x and Var[y] = x / lam;
    ``lam`` is the photon count of a white pixel. Counts are divided back, never clipped."""
    name, title, param, symbol = "poisson", "Poisson", "lam", "lambda"
    test_level, paper_range = 30.0, (0.001, 50.0)
    level_help = "Poisson lambda, the photon count of a white pixel"
    level_rule, range_rule = "> 0", "0 < lo <= hi"
    valid = staticmethod(lambda level: level > 0)
    valid_range = staticmethod(lambda lo, hi: 0 < lo <= hi)

    def __init__(self, lam: float = 30.0, lam_range: tuple[float, float] | None = None):
        super().__init__(lam, lam_range)

    def apply(self, clean, level, generator):
        # Poisson(rate) needs rate >= 0: a clean value below 0 (never in [0, 1] images) is floored
        rate = clean.detach().float().to(generator.device).clamp_min(0) * level
        return (torch.poisson(rate, generator=generator) / level).to(clean.device, clean.dtype), None


class BernoulliNoise(PixelFractionNoise):
    """Multiplicative Bernoulli noise: each pixel (all its channels together) is kept with
    probability 1 - p and set to 0 otherwise. ``draw`` returns the keep mask, N x 1 x H x W, for
    the masked loss."""
    name, title, param, symbol = "bernoulli", "Bernoulli", "p", "p"
    test_level, paper_range = 0.5, (0.0, 0.95)
    level_help = "Bernoulli p, the probability that a pixel is dropped"

    def __init__(self, p: float = 0.5, p_range: tuple[float, float] | None = None):
        super().__init__(p, p_range)

    def apply(self, clean, level, generator):
        keep = (~self.hit(clean, level, generator)).to(clean.device, clean.dtype)
        return clean * keep, keep


class ImpulseNoise(PixelFractionNoise):
    """Random-valued impulse noise: each pixel (all its channels together) is replaced with
    probability p by a colour drawn uniformly from [0, 1]^3. Not zero-mean: with noisy targets, L2
    learns the mean (pulled towards grey) and the annealed L0 loss the mode, the clean value."""
    name, title, param, symbol = "impulse", "Impulse", "impulse_p", "p"
    test_level, paper_range = 0.7, (0.0, 0.95)
    level_help = "impulse p, the probability that a pixel is replaced by a random colour"
    loss_named = True

    def __init__(self, impulse_p: float = 0.7, impulse_p_range: tuple[float, float] | None = None):
        super().__init__(impulse_p, impulse_p_range)

    def apply(self, clean, level, generator):
        hit = self.hit(clean, level, generator)
        colour = torch.rand(clean.shape, generator=generator, device=generator.device)
        noisy = torch.where(hit, colour, clean.detach().to(generator.device, torch.float32))
        return noisy.to(clean.device, clean.dtype), None


class TextNoise(PixelFractionNoise):
    """Text overlays: random strings of random size, colour and position drawn onto the image until
    a fraction p of its pixels is covered (``overlays.overlay``; the expected coverage is p). Not
    zero-mean, but below p = 0.5 a pixel is more often clean than covered: with noisy targets, L1
    learns the median, the clean value, and L2 the mean, tinted by the strings' colours."""
    name, title, param, symbol = "text", "Text", "text_p", "p"
    # the paper draws training coverage from U(0, 0.5); the test level is that range's middle
    test_level, paper_range = 0.25, (0.0, 0.5)
    level_help = "text p, the fraction of the pixels that the random strings cover"
    loss_named = True

    def __init__(self, text_p: float = 0.25, text_p_range: tuple[float, float] | None = None):
        super().__init__(text_p, text_p_range)

    def apply(self, clean, level, generator):
        from .overlays import overlay

        images = clean.detach().to(generator.device, torch.float32)
        flat, fractions = images.reshape(-1, *images.shape[-3:]), level.reshape(-1).tolist()
        if len(fractions) == 1:
            fractions = fractions * flat.shape[0]
        noisy = torch.stack([overlay(image, fraction, generator)[0] for image, fraction in zip(flat, fractions)])
        return noisy.reshape(images.shape).to(clean.device, clean.dtype), None


class BrownNoise(StandardDeviationNoise):
    """Spatially correlated ("brown") Gaussian noise: white Gaussian noise blurred by a Gaussian
    kernel of standard deviation ``brown_width`` pixels, then scaled so that every pixel's standard
    deviation is sigma (0..255 scale). Zero mean and independent between channels; two pixels at a
    distance d correlate by exp(-d^2 / (4 width^2)). Drawn on a margin of the kernel's radius and
    blurred without padding, so it is the same near the borders."""
    name, title, param, symbol = "brown", "Brown Gaussian", "brown_sigma", "sigma"
    test_level, paper_range = 25.0, (0.0, 50.0)
    level_help = "brown Gaussian sigma on the 0..255 scale, per pixel after the blur"
    options = {"brown_width": (2.0, "standard deviation in pixels of the blur that correlates brown noise "
                                    "(0: white noise)")}

    def __init__(self, brown_sigma: float = 25.0, brown_sigma_range: tuple[float, float] | None = None,
                 brown_width: float = 2.0):
        self.check_options(brown_width=brown_width)
        super().__init__(brown_sigma, brown_sigma_range)
        self.brown_width = float(brown_width)

    @classmethod
    def check_options(cls, brown_width: float = 2.0) -> None:
        if not brown_width >= 0:
            raise ValueError(f"brown_width must be >= 0 (pixels; 0 is white noise), got {brown_width}")

    @classmethod
    def tag(cls, options):
        return f"{cls.name}{options.get('brown_width', cls.options['brown_width'][0]):g}"

    def kernel(self) -> torch.Tensor:
        """The 1-D blur (sum 1), applied along rows and columns; radius 3 widths."""
        radius = int(np.ceil(3 * self.brown_width))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-x ** 2 / (2 * self.brown_width ** 2)) if self.brown_width > 0 else (x == 0).float()
        return k / k.sum()

    def apply(self, clean, level, generator):
        k = self.kernel().to(generator.device)
        r = (k.numel() - 1) // 2
        *lead, height, width = clean.shape
        white = torch.randn((int(np.prod(lead)), 1, height + 2 * r, width + 2 * r), generator=generator,
                            device=generator.device)
        blurred = torch.nn.functional.conv2d(white, k.view(1, 1, 1, -1))
        blurred = torch.nn.functional.conv2d(blurred, k.view(1, 1, -1, 1))
        # the blur shrinks the standard deviation by sum(k^2) (the 2-D kernel's norm); undo it
        noise = (blurred / (k ** 2).sum()).reshape(clean.shape)
        return clean + (level / 255.0 * noise).to(clean.device, clean.dtype), None


