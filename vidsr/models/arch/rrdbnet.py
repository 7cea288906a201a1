"""RRDBNet: the ESRGAN / Real-ESRGAN generator, with BasicSR's parameter names.

Parameter names match the published Real-ESRGAN ``params_ema`` checkpoints, so those files
load without renaming. One network covers the whole family: the trunk of RRDB blocks, then
``num_upsample`` stages of (nearest x2, conv, LeakyReLU) named ``conv_up1``, ``conv_up2`` ...
(BasicSR has two; ESRGAN's own x2 and KAIR's BSRGAN x2 have one, x1 none, the forks' x8 three).
ESRGAN's other upsampler, ``pixelshuffle``, puts the conv first and widens it instead: (conv to
4x the features, pixel shuffle x2, LeakyReLU), or one x3 stage (9x the features) for x3.
Real-ESRGAN's x2 and x1 keep the x4 body and fold the input into channels with a
pixel-unshuffle instead. ESRGAN+ adds a bias-free 1x1 conv to every dense block (``plus``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Empirical residual scaling from the ESRGAN paper: keeps very deep RRDB stacks stable.
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2
MAX_UPSAMPLE_STAGES = 4  # x16 from the body; no published layout goes further
_UNSHUFFLE_FACTORS = (1, 2, 4)
UPSAMPLERS = ("nearest", "pixelshuffle")


def default_upsample_stages(scale: int) -> int:
    """BasicSR's convention: x8 has three stages, x4 two, and x2/x1 the x4 body behind a pixel-unshuffle
    (x3 has one: only a pixel-shuffle x3 stage gives it)."""
    return {8: 3, 3: 1}.get(scale, 2)


def stage_factor(scale: int, upsampler: str) -> int:
    """How much one upsampling stage enlarges: 2, or 3 for ESRGAN's pixel-shuffle x3."""
    return 3 if upsampler == "pixelshuffle" and scale == 3 else 2


def unshuffle_factor(scale: int, num_upsample: int | None = None, upsampler: str = "nearest") -> int:
    """The pixel-unshuffle in front of the network: what its upsampling gives over ``scale``."""
    stages = default_upsample_stages(scale) if num_upsample is None else num_upsample
    return stage_factor(scale, upsampler) ** stages // scale


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; each sees the block input and all earlier outputs.

    Args:
        num_feat: channels in and out of the block.
        num_grow_ch: channels each inner conv adds ("growth").
        plus: ESRGAN+'s extra residuals: a bias-free 1x1 conv of the input joins conv2's output,
            and conv2's output joins conv4's.
    """

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32, plus: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv3x3(num_feat, num_grow_ch)
        self.conv2 = _conv3x3(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = _conv3x3(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = _conv3x3(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = _conv3x3(num_feat + 4 * num_grow_ch, num_feat)
        self.conv1x1 = nn.Conv2d(num_feat, num_grow_ch, kernel_size=1, bias=False) if plus else None
        self.lrelu = nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        if self.conv1x1 is not None:
            x2 = x2 + self.conv1x1(x)
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        if self.conv1x1 is not None:
            x4 = x4 + x2
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one scaled residual."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32, plus: bool = False) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch, plus=plus)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch, plus=plus)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch, plus=plus)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN generator. Input and output: float NCHW in 0..1 (RGB, or grey for 1 channel).

    Args:
        num_in_ch: image channels in (before any pixel-unshuffle).
        num_out_ch: image channels out.
        scale: native scale, a power of two from 1 to 16, or 3 with the pixel-shuffle upsampler.
        num_feat: channels of the trunk.
        num_block: number of RRDB blocks in the trunk (23 for RealESRGAN_x4plus).
        num_grow_ch: growth channels inside each dense block.
        num_upsample: upsampling stages after the trunk; None for BasicSR's choice for ``scale``.
            When their enlargement exceeds ``scale`` the input is pixel-unshuffled by the
            ratio (2 or 4), and its H and W must then be multiples of it.
        plus: ESRGAN+ dense blocks (see ResidualDenseBlock).
        upsampler: ``nearest`` (interpolate, then conv) or ``pixelshuffle`` (a conv to factor²
            times the features, then pixel shuffle): ESRGAN's two upsample modes.

    Mixed precision: the first and the last conv may be kept in float32 while the rest runs in
    bf16 or fp16 (``.to(dtype)`` then ``.float()`` on those two); the network casts between them.
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
        num_upsample: int | None = None,
        plus: bool = False,
        upsampler: str = "nearest",
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"RRDBNet has no upsampler {upsampler!r}: it has {', '.join(UPSAMPLERS)}")
        stages = default_upsample_stages(scale) if num_upsample is None else num_upsample
        factor = stage_factor(scale, upsampler)
        unshuffle, remainder = divmod(factor**stages, scale) if scale > 0 else (0, 1)
        if not 0 <= stages <= MAX_UPSAMPLE_STAGES or remainder or unshuffle not in _UNSHUFFLE_FACTORS:
            raise ValueError(
                f"RRDBNet cannot give x{scale} with {stages} {upsampler} upsampling stages: "
                "the stages' enlargement over the scale must be 1, 2 or 4 (the pixel-unshuffle)"
            )
        self.scale = scale
        self.num_upsample = stages
        self.upsampler = upsampler
        self.stage_factor = factor
        self.unshuffle = unshuffle
        self.conv_first = _conv3x3(num_in_ch * unshuffle**2, num_feat)
        self.body = nn.Sequential(
            *(RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch, plus=plus) for _ in range(num_block))
        )
        self.conv_body = _conv3x3(num_feat, num_feat)
        # Registered one by one under BasicSR's names (conv_up1, conv_up2, ...), in forward order.
        upsampling: list[nn.Conv2d] = []
        widening = factor * factor if upsampler == "pixelshuffle" else 1
        for stage in range(1, stages + 1):
            conv = _conv3x3(num_feat, num_feat * widening)
            self.add_module(f"conv_up{stage}", conv)
            upsampling.append(conv)
        self.upsampling_convs = tuple(upsampling)  # the same modules, in order (not registered twice)
        self.conv_hr = _conv3x3(num_feat, num_feat)
        self.conv_last = _conv3x3(num_feat, num_out_ch)
        self.lrelu = nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x.to(self.conv_first.weight.dtype))
        feat = feat.to(self.conv_body.weight.dtype)
        feat = feat + self.conv_body(self.body(feat))
        for conv in self.upsampling_convs:
            if self.upsampler == "pixelshuffle":
                feat = self.lrelu(F.pixel_shuffle(conv(feat), self.stage_factor))
            else:
                feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_hr(feat))
        return self.conv_last(feat.to(self.conv_last.weight.dtype))
