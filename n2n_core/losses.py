"""Training losses. L2 recovers the mean of the targets (the Noise2Noise argument for zero-mean
noise); L1 recovers the median.

Both take an optional ``mask`` (N x 1 x H x W or the output's shape, 1 where the target carries
information): the loss is then the mean over the masked-in values only. Noisy Bernoulli targets
need it, since a dropped target pixel says nothing about the clean one (the paper masks the loss
with the target's mask).
"""
from __future__ import annotations

import torch


def _reduce(error: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return error.mean()
    mask = mask.to(error.dtype).expand_as(error)
    return (error * mask).sum() / mask.sum().clamp_min(1.0)


def l2(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return _reduce((output - target) ** 2, mask)


def l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return _reduce(torch.abs(output - target), mask)


LOSSES = {"l2": l2, "l1": l1}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
