"""A RED-style residual encoder-decoder (Mao et al. 2016, "RED30"), the paper's Gaussian-noise network.

``depth`` convolutions at full resolution: the first half "encode", the second half "decode", and
every second encoder output is added to its mirror in the decoder (symmetric skips). The network
predicts the noise-free image as ``input + residual``. RED's decoder uses transposed convolutions;
with stride 1 and 'same' padding a transposed 3x3 convolution is a 3x3 convolution with flipped
weights, so plain convolutions are used throughout (same function class, faster kernels).

RED30 (the paper profile): depth=30, width=128. The CPU default is smaller: depth=10, width=48.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class REDNet(nn.Module):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, depth: int = 10, width: int = 48):
        super().__init__()
        if depth < 4 or depth % 2:
            raise ValueError(f"REDNet depth must be an even number >= 4, got {depth}")
        if width < 1:
            raise ValueError(f"REDNet width must be positive, got {width}")
        if in_channels != out_channels:
            raise ValueError("REDNet is residual: in_channels must equal out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth, self.width = depth, width
        chans = [in_channels] + [width] * (depth - 1) + [out_channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.convs[-1].weight)  # start as the identity: output == input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.depth // 2
        skips = []
        h = x
        for i in range(half):  # encoder
            h = F.relu(self.convs[i](h))
            if i % 2 == 1:
                skips.append(h)
        for i in range(half, self.depth - 1):  # decoder
            h = self.convs[i](h)
            j = self.depth - 1 - i  # index of the mirrored encoder layer
            if j % 2 == 1:  # mirrors an encoder layer whose output was stored
                h = h + skips.pop()
            h = F.relu(h)
        return x + self.convs[-1](h)
