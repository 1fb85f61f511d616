"""The two architectures of the paper, built from a ModelConfig."""
from __future__ import annotations

import torch
from torch import nn

from ...config import ModelConfig
from .resnet import REDNet
from .unet import UNet

__all__ = ["UNet", "REDNet", "build", "model_args", "grey_from_colour"]


def model_args(config: ModelConfig) -> dict:
    """The constructor arguments that a checkpoint stores to rebuild the model."""
    grey = {} if config.channels == 3 else {"channels": config.channels}  # colour models: as always recorded
    if config.name == "unet":
        return {"name": "unet", **grey}
    return {"name": "resnet", "depth": config.depth, "width": config.width, **grey}


def build(config: ModelConfig | dict, seed: int | None = None) -> nn.Module:
    """A freshly initialised model; with ``seed`` its weights are a function of the seed alone
    (the global random state is left untouched)."""
    if isinstance(config, dict):
        config = ModelConfig(**config)
    c = config.channels
    make = ((lambda: UNet(c, c)) if config.name == "unet"
            else (lambda: REDNet(c, c, depth=config.depth, width=config.width)))
    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def grey_from_colour(weights: dict) -> dict:
    """The state dict of a colour (3-channel) U-Net folded into a grey (1-channel) one that computes,
    on a grey image, exactly the mean of the three channels the colour net computes on that image
    replicated to RGB: the first convolution's weights summed over its input channels (including the
    grey input's skip into ``dec_conv1a``), the last convolution's weights and bias averaged over its
    output channels."""
    grey = dict(weights)
    grey["enc_conv0.weight"] = weights["enc_conv0.weight"].sum(dim=1, keepdim=True)
    skip = weights["dec_conv1a.weight"]  # its last 3 input channels are the network's input
    grey["dec_conv1a.weight"] = torch.cat([skip[:, :-3], skip[:, -3:].sum(dim=1, keepdim=True)], dim=1)
    grey["dec_conv1c.weight"] = weights["dec_conv1c.weight"].mean(dim=0, keepdim=True)
    grey["dec_conv1c.bias"] = weights["dec_conv1c.bias"].mean(dim=0, keepdim=True)
    return grey
