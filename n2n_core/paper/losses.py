"""Training losses, chosen by name (``TrainConfig.loss``, `n2n train --loss`). Each recovers one
statistic of the noisy targets: L2 the mean (the Noise2Noise argument for zero-mean noise), L1 the
median (text overlays), the annealed L0 the mode (random-valued impulse noise).

A loss is called as ``loss(output, target, mask=None, progress=0.0)``. ``mask`` (N x 1 x H x W or
the output's shape, 1 where the target carries information) makes it the mean over the masked-in
values only: noisy Bernoulli targets need it, since a dropped target pixel says nothing about the
clean one (the paper masks the loss with the target's mask). ``progress`` is the fraction of
training done, in [0, 1]; only a loss that changes during training reads it.
"""
from __future__ import annotations

import torch


def _reduce(error: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return error.mean()
    mask = mask.to(error.dtype).expand_as(error)
    return (error * mask).sum() / mask.sum().clamp_min(1.0)


def l2(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
       progress: float = 0.0) -> torch.Tensor:
    return _reduce((output - target) ** 2, mask)


def l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
       progress: float = 0.0) -> torch.Tensor:
    return _reduce(torch.abs(output - target), mask)


class AnnealedL0:
    """The paper's annealed L0: (|output - target| + eps)^gamma, gamma going linearly from ``start``
    (2: L2) to ``end`` (0: L0, the mode) over training. Below gamma 1 the loss is not convex, and
    its gradient near zero error grows as 1 / (|error| + eps); computed in float32."""

    def __init__(self, start: float = 2.0, end: float = 0.0, eps: float = 1e-8):
        self.start, self.end, self.eps = start, end, eps

    def gamma(self, progress: float) -> float:
        return self.start + (self.end - self.start) * min(1.0, max(0.0, progress))

    def __call__(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 progress: float = 0.0) -> torch.Tensor:
        return _reduce((torch.abs(output - target) + self.eps) ** self.gamma(progress), mask)

    def __repr__(self) -> str:
        return f"AnnealedL0(gamma {self.start:g} -> {self.end:g}, eps {self.eps:g})"


l0 = AnnealedL0()

LOSSES = {"l2": l2, "l1": l1, "l0": l0}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
