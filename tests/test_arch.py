"""The networks: output sizes per scale, and parameter names that match published checkpoints."""

from __future__ import annotations

import pytest
import torch

from vidsr.models.arch import RRDBNet, SRVGGNetCompact

TINY_RRDB = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}
TINY_COMPACT = {"num_feat": 8, "num_conv": 2}


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_output_is_scale_times_the_input(scale: int) -> None:
    network = RRDBNet(scale=scale, **TINY_RRDB).eval()
    with torch.inference_mode():
        output = network(torch.rand(2, 3, 12, 16))
    assert output.shape == (2, 3, 12 * scale, 16 * scale)


@pytest.mark.parametrize(("scale", "first_conv_in_channels"), [(4, 3), (2, 12), (1, 48)])
def test_rrdbnet_pixel_unshuffles_the_input_for_scales_2_and_1(scale: int, first_conv_in_channels: int) -> None:
    network = RRDBNet(scale=scale, **TINY_RRDB)
    assert network.conv_first.in_channels == first_conv_in_channels


@pytest.mark.parametrize("upscale", [4, 2, 1])
def test_compact_output_is_upscale_times_the_input(upscale: int) -> None:
    network = SRVGGNetCompact(upscale=upscale, **TINY_COMPACT).eval()
    with torch.inference_mode():
        output = network(torch.rand(1, 3, 10, 14))
    assert output.shape == (1, 3, 10 * upscale, 14 * upscale)


def test_compact_with_a_zero_body_returns_the_nearest_enlargement() -> None:
    network = SRVGGNetCompact(upscale=2, **TINY_COMPACT).eval()
    last_conv = network.body[-1]
    torch.nn.init.zeros_(last_conv.weight)
    torch.nn.init.zeros_(last_conv.bias)
    image = torch.rand(1, 3, 4, 5)
    with torch.inference_mode():
        output = network(image)
    assert torch.equal(output, image.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def test_rrdbnet_parameter_names_match_real_esrgan_params_ema() -> None:
    names = set(RRDBNet(**TINY_RRDB).state_dict())
    expected = {
        "conv_first.weight",
        "body.0.rdb1.conv1.weight",
        "body.1.rdb3.conv5.bias",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.bias",
        "conv_hr.weight",
        "conv_last.bias",
    }
    assert expected <= names
    assert not any(name.startswith("body.2.") for name in names)


def test_compact_parameter_names_match_real_esrgan() -> None:
    state = SRVGGNetCompact(**TINY_COMPACT).state_dict()
    # conv, prelu, (conv, prelu) x num_conv, last conv
    assert [name for name in state if name.endswith("weight")] == [f"body.{index}.weight" for index in range(7)]
    assert state["body.1.weight"].shape == (8,)
    assert state["body.6.weight"].shape == (3 * 4 * 4, 8, 3, 3)


def test_full_size_networks_have_the_published_parameter_counts() -> None:
    with torch.device("meta"):
        x4plus = RRDBNet()
        animevideov3 = SRVGGNetCompact()
    assert sum(parameter.numel() for parameter in x4plus.parameters()) == 16_697_987
    assert sum(parameter.numel() for parameter in animevideov3.parameters()) == 621_424


def test_constructors_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        RRDBNet(3, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        SRVGGNetCompact(3, 3)  # type: ignore[misc]
