"""PSNR and SSIM as the paper measures them (released code): output and reference clipped to
[0, 1] and rounded to 8 bit; PSNR over all RGB channels of each image; no Y-channel conversion, no
border crop. The protocol around them (test sets, seeded noise, means over images) is in
``evaluation``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit image (kept as float in [0, 1])."""
    return torch.round(image.float().clamp(0, 1) * 255.0) / 255.0


def psnr(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image (C x H x W -> scalar, N x C x H x W -> N), 8-bit protocol.
    Identical images give inf."""
    if output.shape != reference.shape:
        raise ValueError(f"PSNR needs images of one shape, got {tuple(output.shape)} and {tuple(reference.shape)}")
    mse = ((quantize(output) - quantize(reference)) ** 2).flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse)


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) of each image on
    the 8-bit quantised values, averaged over channels and the valid window positions."""
    if output.shape != reference.shape:
        raise ValueError(f"SSIM needs images of one shape, got {tuple(output.shape)} and {tuple(reference.shape)}")
    if min(output.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 px (its window), got {tuple(output.shape[-2:])}")
    single = output.dim() == 3
    x, y = quantize(output), quantize(reference)
    if single:
        x, y = x[None], y[None]
    n, c = x.shape[:2]
    g = _gaussian_kernel().to(x.device)
    rows, cols = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid' positions only
        t = t.reshape(n * c, 1, *t.shape[-2:])
        return F.conv2d(F.conv2d(t, rows), cols)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    s = s.reshape(n, -1).mean(1)
    return s[0] if single else s
