"""SRVGGNetCompact: Real-ESRGAN's small, fast network (realesr-animevideov3 and friends).

A plain stack of 3x3 convs and activations at input resolution, a pixel shuffle to the
output size, and the nearest-upsampled input added back, so the convs only learn the detail.
Parameter names (``body.N``) match Real-ESRGAN's checkpoints.

Mixed precision: the first and the last conv may be kept in float32 while the rest runs in bf16
or fp16 (``.to(dtype)`` then ``.float()`` on those two); the network casts between them, and an
fp32 input keeps the added nearest enlargement exact.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

ActType = Literal["prelu", "relu", "leakyrelu"]


def _activation(act_type: ActType, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown activation {act_type!r}; use prelu, relu or leakyrelu")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style upscaler. Input and output: float NCHW in 0..1 (RGB, or grey for 1 channel).

    Args:
        num_in_ch: image channels in.
        num_out_ch: image channels out.
        num_feat: channels of every hidden conv.
        num_conv: hidden convs between the first and the last conv (16 for animevideov3).
        upscale: native scale; the last conv emits ``num_out_ch * upscale**2`` channels.
        act_type: activation after every conv but the last.
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: ActType = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            if isinstance(layer, (nn.Conv2d, nn.PReLU)):
                out = out.to(layer.weight.dtype)
            out = layer(out)
        out = self.upsampler(out)
        # The network predicts a residual over the plain nearest-neighbour enlargement.
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
