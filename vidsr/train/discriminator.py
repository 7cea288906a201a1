"""Discriminators for the GAN stage: ESRGAN's VGG-style one, and Real-ESRGAN's U-Net with spectral norm.

Both return raw logits (no sigmoid): the relativistic losses in ``losses.py`` take logits.
Parameter names follow BasicSR's ``VGGStyleDiscriminator`` and ``UNetDiscriminatorSN``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from vidsr.errors import SettingsError
from vidsr.train.config import DiscriminatorKind

LEAKY_SLOPE = 0.2
_VGG_DOWNSAMPLING = 32  # five stride-2 convs
_UNET_DOWNSAMPLING = 8  # three stride-2 convs


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's discriminator: ten convs with BN, halving the size five times, then two linears.

    One logit per image. ESRGAN uses it on 128x128 patches; other sizes that are multiples of
    32 work too (the first linear grows with the size).

    Args:
        num_in_ch: image channels.
        num_feat: channels of the first conv; they double up to 8x.
        input_size: side of the (square) HR patches it judges.
    """

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size % _VGG_DOWNSAMPLING:
            raise SettingsError(
                f"the VGG-style discriminator needs a --patch that is a multiple of 32, not {input_size} "
                "(or use --discriminator unet)"
            )
        self.input_size = input_size
        widths = (num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8)
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        previous = num_feat
        for level, width in enumerate(widths[1:], start=1):
            setattr(self, f"conv{level}_0", nn.Conv2d(previous, width, 3, 1, 1, bias=False))
            setattr(self, f"bn{level}_0", nn.BatchNorm2d(width, affine=True))
            setattr(self, f"conv{level}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            setattr(self, f"bn{level}_1", nn.BatchNorm2d(width, affine=True))
            previous = width
        side = input_size // _VGG_DOWNSAMPLING
        self.linear1 = nn.Linear(widths[-1] * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"expected {self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}")
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for level in range(1, 5):
            feat = self.lrelu(getattr(self, f"bn{level}_0")(getattr(self, f"conv{level}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{level}_1")(getattr(self, f"conv{level}_1")(feat)))
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1))))


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation: one logit per pixel.

    Per-pixel realness gives the generator local feedback, and spectral norm keeps the
    stronger discriminator stable. Input sides must be multiples of 8.

    Args:
        num_in_ch: image channels.
        num_feat: channels of the first conv.
        skip_connection: add the encoder's features to the decoder's (as Real-ESRGAN).
    """

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(num_feat, num_feat * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(num_feat * 2, num_feat * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(num_feat * 4, num_feat * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(num_feat * 8, num_feat * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(num_feat * 4, num_feat * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(num_feat, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = _lrelu(self.conv0(x))
        x1 = _lrelu(self.conv1(x0))
        x2 = _lrelu(self.conv2(x1))
        x3 = _lrelu(self.conv3(x2))
        x4 = self._up(self.conv4, x3, x2)
        x5 = self._up(self.conv5, x4, x1)
        x6 = self._up(self.conv6, x5, x0)
        out = _lrelu(self.conv8(_lrelu(self.conv7(x6))))
        return self.conv9(out)

    def _up(self, conv: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = _lrelu(conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)))
        return x + skip if self.skip_connection else x


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=LEAKY_SLOPE)


def build_discriminator(kind: DiscriminatorKind, *, patch: int, num_feat: int = 64) -> nn.Module:
    """The discriminator for HR patches of side ``patch``; raises SettingsError if they do not fit."""
    if kind == "vgg":
        return VGGStyleDiscriminator(num_feat=num_feat, input_size=patch)
    if kind == "unet":
        if patch % _UNET_DOWNSAMPLING:
            raise SettingsError(f"the U-Net discriminator needs a --patch that is a multiple of 8, not {patch}")
        return UNetDiscriminatorSN(num_feat=num_feat)
    raise SettingsError(f"unknown discriminator {kind!r}; use vgg or unet")
