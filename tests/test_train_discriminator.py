"""Discriminators: BasicSR's parameter names, one logit per image (VGG-style) or per pixel (U-Net)."""

from __future__ import annotations

import pytest
import torch

from vidsr.errors import SettingsError
from vidsr.train.discriminator import UNetDiscriminatorSN, VGGStyleDiscriminator, build_discriminator


def test_vgg_style_judges_each_128_pixel_patch_with_one_logit():
    network = VGGStyleDiscriminator(num_feat=8, input_size=128)
    names = set(network.state_dict())
    assert {"conv0_0.weight", "bn0_1.running_mean", "conv4_1.weight", "linear1.weight", "linear2.bias"} <= names
    assert network.linear1.in_features == 8 * 8 * 4 * 4  # five halvings: 128 -> 4
    assert network(torch.rand(3, 3, 128, 128)).shape == (3, 1)


def test_unet_gives_a_logit_per_pixel_with_spectral_norm():
    network = UNetDiscriminatorSN(num_feat=8)
    assert "conv1.parametrizations.weight.original" in network.state_dict()
    assert network(torch.rand(2, 3, 32, 40)).shape == (2, 1, 32, 40)


def test_patch_sizes_each_discriminator_cannot_take_are_refused():
    with pytest.raises(SettingsError, match="multiple of 32"):
        build_discriminator("vgg", patch=72)
    with pytest.raises(SettingsError, match="multiple of 8"):
        build_discriminator("unet", patch=36)
