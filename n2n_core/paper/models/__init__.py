"""The two architectures of the paper, built from a ModelConfig."""
from __future__ import annotations

import torch
from torch import nn

from ...config import ModelConfig
from .resnet import REDNet
from .unet import UNet

__all__ = ["UNet", "REDNet", "build", "model_args"]


def model_args(config: ModelConfig) -> dict:
    """The constructor arguments that a checkpoint stores to rebuild the model."""
    if config.name == "unet":
        return {"name": "unet"}
    return {"name": "resnet", "depth": config.depth, "width": config.width}


def build(config: ModelConfig | dict, seed: int | None = None) -> nn.Module:
    """A freshly initialised model; with ``seed`` its weights are a function of the seed alone
    (the global random state is left untouched)."""
    if isinstance(config, dict):
        config = ModelConfig(**config)
    make = (lambda: UNet()) if config.name == "unet" else (lambda: REDNet(depth=config.depth, width=config.width))
    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
