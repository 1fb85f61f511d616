"""The paper's U-Net (Lehtinen et al. 2018, appendix Table 2).

Every convolution is 3x3 'same' with a leaky ReLU (slope 0.1), except the last, which is linear.
Downsampling is 2x2 max-pooling, upsampling is nearest-neighbour, skips are concatenations.
Each named layer has its own weights (a common reimplementation bug is to reuse one block five times).
With 3 input and 3 output channels it has 991,203 parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIDE_MULTIPLE = 32  # five 2x2 poolings: each side must be a multiple of 2**5


def pad_to_multiple(x: torch.Tensor, multiple: int = SIDE_MULTIPLE) -> torch.Tensor:
    """``x`` (N x C x H x W) padded at the bottom and right to sides that are multiples of
    ``multiple``: reflected where the image is large enough, else replicated."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class UNet(nn.Module):
    # `n2n denoise` pads an image as forward does and cuts its tiles on this grid, so that tiles see
    # the borders and the pooling grid of the whole image
    side_multiple = SIDE_MULTIPLE

    @staticmethod
    def pad_input(x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x)

    def __init__(self, in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.enc_conv0 = _conv(in_channels, 48)
        self.enc_conv1 = _conv(48, 48)
        self.enc_conv2 = _conv(48, 48)
        self.enc_conv3 = _conv(48, 48)
        self.enc_conv4 = _conv(48, 48)
        self.enc_conv5 = _conv(48, 48)
        self.enc_conv6 = _conv(48, 48)
        self.dec_conv5a = _conv(96, 96)
        self.dec_conv5b = _conv(96, 96)
        self.dec_conv4a = _conv(144, 96)
        self.dec_conv4b = _conv(96, 96)
        self.dec_conv3a = _conv(144, 96)
        self.dec_conv3b = _conv(96, 96)
        self.dec_conv2a = _conv(144, 96)
        self.dec_conv2b = _conv(96, 96)
        self.dec_conv1a = _conv(96 + in_channels, 64)
        self.dec_conv1b = _conv(64, 32)
        self.dec_conv1c = _conv(32, out_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He initialisation, as in the paper
                nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.dec_conv1c.weight, nonlinearity="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise x (N x C x H x W). Any H and W: sides are reflect-padded to a multiple of 32
        and the output is cropped back."""
        h, w = x.shape[-2:]
        y = self._forward_padded(pad_to_multiple(x))
        return y[..., :h, :w]

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
        pool, up = F.max_pool2d, lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        skips = [x]
        h = pool(act(self.enc_conv1(act(self.enc_conv0(x)))), 2)
        skips.append(h)  # pool1
        for conv in (self.enc_conv2, self.enc_conv3, self.enc_conv4):
            h = pool(act(conv(h)), 2)
            skips.append(h)  # pool2, pool3, pool4
        h = pool(act(self.enc_conv5(h)), 2)  # pool5
        h = act(self.enc_conv6(h))
        decoders = [
            (self.dec_conv5a, self.dec_conv5b),
            (self.dec_conv4a, self.dec_conv4b),
            (self.dec_conv3a, self.dec_conv3b),
            (self.dec_conv2a, self.dec_conv2b),
        ]
        for conv_a, conv_b in decoders:
            h = torch.cat([up(h), skips.pop()], dim=1)
            h = act(conv_b(act(conv_a(h))))
        h = torch.cat([up(h), skips.pop()], dim=1)  # concat with the input
        h = act(self.dec_conv1b(act(self.dec_conv1a(h))))
        # the output layer in float32 even under bfloat16 autocast: a bfloat16 output is rounded to
        # 2^-8 of its value (0.004 near white), which the mode-seeking annealed L0 loss cannot get below
        with torch.autocast(h.device.type, enabled=False):
            return self.dec_conv1c(h.float())
