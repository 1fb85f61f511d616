"""Training losses. L2 recovers the mean of the targets (the Noise2Noise argument for zero-mean
noise); L1 recovers the median."""
from __future__ import annotations

import torch


def l2(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((output - target) ** 2)


def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(output - target))


LOSSES = {"l2": l2, "l1": l1}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
