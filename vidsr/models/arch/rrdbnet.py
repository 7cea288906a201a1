"""RRDBNet: the ESRGAN / Real-ESRGAN generator, with BasicSR's parameter names.

Parameter names match the published Real-ESRGAN ``params_ema`` checkpoints, so those files
load without renaming. Scales 2 and 1 fold the input into channels with a pixel-unshuffle
(as BasicSR does) and then run the same fixed x4 upsampler.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Empirical residual scaling from the ESRGAN paper: keeps very deep RRDB stacks stable.
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2

# Pixel-unshuffle factor applied to the input for each native scale; the body always upsamples x4.
_UNSHUFFLE_FOR_SCALE = {4: 1, 2: 2, 1: 4}


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; each sees the block input and all earlier outputs.

    Args:
        num_feat: channels in and out of the block.
        num_grow_ch: channels each inner conv adds ("growth").
    """

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = _conv3x3(num_feat, num_grow_ch)
        self.conv2 = _conv3x3(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = _conv3x3(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = _conv3x3(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = _conv3x3(num_feat + 4 * num_grow_ch, num_feat)
        self.lrelu = nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one scaled residual."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN generator. Input and output: float RGB, NCHW, 0..1.

    Args:
        num_in_ch: image channels in (before any pixel-unshuffle).
        num_out_ch: image channels out.
        scale: native scale, 4, 2 or 1. For 2 and 1 the input H and W must be multiples of
            2 and 4, because they are pixel-unshuffled into ``num_in_ch * 4`` / ``* 16`` channels.
        num_feat: channels of the trunk.
        num_block: number of RRDB blocks in the trunk (23 for RealESRGAN_x4plus).
        num_grow_ch: growth channels inside each dense block.
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE_FOR_SCALE:
            raise ValueError(f"RRDBNet supports scale 4, 2 or 1, not {scale}")
        self.scale = scale
        self.unshuffle = _UNSHUFFLE_FOR_SCALE[scale]
        self.conv_first = _conv3x3(num_in_ch * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block)))
        self.conv_body = _conv3x3(num_feat, num_feat)
        self.conv_up1 = _conv3x3(num_feat, num_feat)
        self.conv_up2 = _conv3x3(num_feat, num_feat)
        self.conv_hr = _conv3x3(num_feat, num_feat)
        self.conv_last = _conv3x3(num_feat, num_out_ch)
        self.lrelu = nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
