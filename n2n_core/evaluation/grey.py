"""Grey images through colour weights: noise matching.

A grey image is read as three equal channels, so its noise is equal in the three channels too:
all of it lies along the luminance direction (1, 1, 1) / sqrt(3), with standard deviation
sigma * sqrt(3), and none along the two chroma directions. Weights trained on colour images with
noise independent per channel never saw such noise, and denoise it poorly. ``NoiseMatching`` adds
independent Gaussian noise of standard deviation sigma * sqrt(3) along each of the two chroma unit
directions u = (1, -1, 0) / sqrt(2) and v = (1, 1, -2) / sqrt(6): the input's noise is then exactly
independent per channel, N(0, 3 sigma^2), what the weights were trained on (at the level
sigma * sqrt(3)). The three denoised channels are then averaged. The added noise is one draw,
seeded from the image's pixels (the same file always gives the same output), drawn once for the
whole image before it is cut into tiles.

Blind: sigma is estimated from the image itself (``estimate_sigma``, the median absolute value of
the finest diagonal Haar wavelet coefficients / 0.6745, Donoho's estimator). The match assumes
Gaussian noise of one level everywhere: `n2n denoise` uses it for weights trained on Gaussian noise
and replicates the grey channel for the others (Poisson noise, whose level depends on the signal).
A grey (1-channel) model takes the grey channel directly. docs/your-own-images.md cites the measurement.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import nn

MAD_TO_SIGMA = 0.6745  # the median of |N(0, 1)|
# the two chroma unit directions, as the columns of a 3 x 2 matrix
CHROMA = torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(6)],
                       [-1 / math.sqrt(2), 1 / math.sqrt(6)],
                       [0.0, -2 / math.sqrt(6)]])


def estimate_sigma(grey: torch.Tensor) -> float:
    """The standard deviation (0..255 scale) of white Gaussian noise in a grey image (H x W or
    1 x H x W in [0, 1]): the median of |HH| / 0.6745 over the finest diagonal Haar coefficients
    HH = (a - b - c + d) / 2 of the 2 x 2 blocks, which white noise fills at its full level and a
    smooth image barely touches; texture and edges raise it a little."""
    g = grey.reshape(grey.shape[-2:]).double()
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    g = g[:h, :w]
    hh = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2
    return float(hh.abs().median()) / MAD_TO_SIGMA * 255.0


def image_seed(grey: torch.Tensor) -> int:
    """A seed that is a function of the pixels alone."""
    data = grey.detach().float().cpu().contiguous().numpy().tobytes()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


@dataclass
class NoiseMatching:
    """``prepare`` turns a grey image into the RGB input of colour weights with noise independent
    per channel (module docstring); ``sigma`` is the grey image's noise level on the 0..255 scale,
    None to estimate it per image."""
    sigma: float | None = None

    def prepare(self, grey: torch.Tensor) -> tuple[torch.Tensor, float]:
        """1 x H x W (or H x W) grey in [0, 1] -> (3 x H x W input, the sigma matched)."""
        grey = grey.reshape(1, *grey.shape[-2:]).float().cpu()
        sigma = estimate_sigma(grey) if self.sigma is None else float(self.sigma)
        generator = torch.Generator().manual_seed(image_seed(grey))
        chroma = torch.randn((2, *grey.shape[-2:]), generator=generator) * (sigma * math.sqrt(3) / 255.0)
        return grey + torch.einsum("cd,dhw->chw", CHROMA, chroma), sigma

    @staticmethod
    def finish(rgb: torch.Tensor) -> torch.Tensor:
        """The denoised 3 x H x W input back to grey: 1 x H x W, the mean of the channels."""
        return rgb.mean(dim=-3, keepdim=True)


class GreyThroughColour(nn.Module):
    """Colour weights as a grey denoiser (N x 1 x H x W in and out), for measuring: with ``match``,
    through ``NoiseMatching(sigma)``; without, the grey channel replicated to RGB (what reading a
    grey file as three equal channels gives). The mean of the three output channels either way."""

    def __init__(self, model: nn.Module, match: bool = True, sigma: float | None = None):
        super().__init__()
        self.model, self.match, self.matching = model, match, NoiseMatching(sigma)
        self.sigmas: list[float] = []  # the sigma matched for each image, in order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.match:
            return NoiseMatching.finish(self.model(x.expand(-1, 3, -1, -1)))
        outputs = []
        for image in x:
            rgb, sigma = self.matching.prepare(image)
            self.sigmas.append(sigma)
            outputs.append(NoiseMatching.finish(self.model(rgb[None].to(x.device, x.dtype))))
        return torch.cat(outputs)


def model_channels(model: nn.Module) -> int:
    """The input channels of a network (its first convolution's), through any wrapper; 3 if it has none."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return 3 if first is None else first.in_channels


@dataclass
class GreyRoute:
    """How `n2n denoise` treats a grey image: with ``model`` (grey weights), through it; else, with
    colour weights, by ``NoiseMatching`` when ``match`` (weights trained on Gaussian noise), by
    replication otherwise. A grey model as the main weights takes grey images directly."""
    model: nn.Module | None = None
    match: bool = True
    name: str | None = None  # of the grey weights, for the log


def weights_and_route(checkpoint, default: bool, device, expect: str | None = None) -> tuple[nn.Module, GreyRoute]:
    """The network of ``checkpoint`` (``load_model``; ``expect``: its architecture) and its grey
    route (``grey_route``), from one read of the file."""
    from ..training.checkpoint import load_checkpoint, model_from_state

    state = load_checkpoint(checkpoint)
    model = model_from_state(state, checkpoint, device, expect)
    return model, grey_route(checkpoint, default, device, config=state.get("config"))


def grey_route(checkpoint, default: bool, device, config: dict | None = None) -> GreyRoute:
    """The route for the weights ``checkpoint`` (a path or shipped name); ``default``: no checkpoint
    was given, so the shipped grey weights take the grey images where they exist. ``config``: the
    configuration the checkpoint records, where the caller holds it (the file is not read again)."""
    from ..training.checkpoint import PRETRAINED_PREFIX, load_checkpoint, load_model, pretrained_path

    if config is None:
        config = load_checkpoint(checkpoint).get("config")
    noise = (config or {}).get("noise") or {}
    match = noise.get("kind") == "gaussian"
    grey_name = PRETRAINED_PREFIX + "gaussian-grey"
    if default and pretrained_path("gaussian-grey").is_file():
        return GreyRoute(load_model(grey_name, device=device), match, grey_name)
    return GreyRoute(None, match)
