"""What a model states it needs, and the pipeline feeding it by that: padding, channels (grey
models on colour frames), the precision and the layers kept in fp32, tiles, and refusing
weights or outputs that are not numbers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference_nets import OldESRGAN, ReferenceCompact
from safetensors.torch import save_file
from test_upscale_video import render
from typer.testing import CliRunner

from vidsr.cli.app import app
from vidsr.errors import ModelError, SettingsError, VidsrError
from vidsr.models import describe_needs
from vidsr.models.arch import RRDBNet, SRVGGNetCompact
from vidsr.models.loader import LoadedModel, detect_and_build, load_model_file
from vidsr.upscale import Upscaler
from vidsr.upscale.policy import choose_precision, default_precision
from vidsr.upscale.runner import GREY_WEIGHTS, grey, pad_to_requirements

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a CUDA device object needs no GPU to exist
runner = CliRunner()


def tiny_compact(*, channels: int = 3, upscale: int = 2, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    network = ReferenceCompact(num_in_ch=channels, upscale=upscale, act="prelu")
    return detect_and_build(network.state_dict(), name="tiny", source="test")


def tiny_rrdb(**arguments: int) -> LoadedModel:
    torch.manual_seed(1)
    return detect_and_build(OldESRGAN(**arguments).state_dict(), name="tiny-rrdb", source="test")


def frame(height: int = 12, width: int = 16, *, colour: bool = True) -> torch.Tensor:
    rgb = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(3))
    return rgb if colour else rgb[:, :1].expand(1, 3, height, width).contiguous()


# ---------------------------------------------------------------- what a model states


def test_native_models_state_their_scale_channels_precisions_and_size_needs() -> None:
    x1 = tiny_rrdb(stages=2, unshuffle=4)
    assert (x1.scale, x1.in_channels, x1.out_channels) == (1, 3, 3)
    assert (x1.size_multiple, x1.min_size, x1.preferred_tile, x1.tiling) == (4, 4, 0, "supported")
    assert x1.supports_half and x1.supports_bf16 and not x1.bf16_by_default
    assert x1.fp32_layers == ("conv_first", "conv_last")
    compact = tiny_compact(channels=1)
    assert (compact.scale, compact.in_channels, compact.out_channels, compact.size_multiple) == (2, 1, 1, 1)
    assert compact.fp32_layers == ("body.0", "body.6")
    assert describe_needs(x1) == (
        "RGB in, RGB out; fp32/bf16/fp16 (CPU: fp32); sides padded to multiples of 4, at least 4; whole frames"
    )


def test_the_embedded_models_descriptors_record_the_measured_precision_decision() -> None:
    from vidsr.models.zoo import EMBEDDED, load_embedded

    model = load_embedded("realesr-animevideov3")
    assert model.bf16_by_default == EMBEDDED["realesr-animevideov3"].bf16_by_default
    assert model.description.startswith("SRVGGNetCompact x4: 16 convs, 64 features, prelu")


# ---------------------------------------------------------------- weights that are not numbers


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_weights_with_nan_or_infinity_are_refused_naming_the_first_bad_tensor(
    tmp_path: Path, suffix: str, bad: float
) -> None:
    state = {key: value.clone() for key, value in RRDBNet(num_feat=8, num_block=2, num_grow_ch=4).state_dict().items()}
    state["body.1.rdb2.conv3.weight"][0, 0, 1, 1] = bad
    state["conv_last.bias"][0] = bad  # later in file order: not the one named
    path = tmp_path / f"diverged{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    with pytest.raises(ModelError) as caught:
        load_model_file(path)
    message = str(caught.value)
    assert "'body.1.rdb2.conv3.weight'" in message and "NaN or infinite" in message
    assert "conv_last" not in message and "\n" not in message


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize(
    ("device", "bf16_by_default", "native", "bits", "expected"),
    [
        (CPU, True, True, 8, "bf16"),
        (CPU, False, True, 8, "fp32"),  # the model's descriptor says bf16 does not hold
        (CPU, True, False, 8, "fp32"),  # emulated bf16 is slower than fp32
        (CPU, True, True, 10, "fp32"),  # 10-bit video takes no 8-bit detour
        (CUDA, False, False, 8, "fp16"),
    ],
)
def test_the_default_precision_follows_the_descriptor(
    device: torch.device, bf16_by_default: bool, native: bool, bits: int, expected: str
) -> None:
    model = replace(tiny_compact(), bf16_by_default=bf16_by_default)
    assert default_precision(device, model, bit_depth=bits, native_bf16=native) == expected


def test_a_model_that_does_not_run_in_a_precision_is_never_given_it() -> None:
    model = replace(tiny_compact(), supports_half=False, supports_bf16=False, bf16_by_default=True)
    assert default_precision(CUDA, model) == "fp32"
    assert default_precision(CPU, model, native_bf16=True) == "fp32"
    for name, device in (("bf16", CPU), ("fp16", CUDA)):
        with pytest.raises(SettingsError, match=f"--precision {name}: tiny does not run in {name}"):
            choose_precision(name, device, model)


def test_bf16_keeps_the_first_and_last_conv_in_fp32_and_the_input_unrounded() -> None:
    model = tiny_rrdb()
    reference = Upscaler(tiny_rrdb(), device=CPU, precision="fp32").upscale_rgb(frame())
    upscaler = Upscaler(model, device=CPU, precision="bf16")
    dtypes = {name: parameter.dtype for name, parameter in upscaler.network.named_parameters()}
    assert dtypes["conv_first.weight"] == dtypes["conv_last.bias"] == torch.float32
    assert dtypes["conv_body.weight"] == dtypes["body.0.rdb1.conv1.weight"] == torch.bfloat16
    output = upscaler.upscale_rgb(frame())
    assert output.dtype == torch.float32
    assert 0 < (output - reference).abs().max() < 0.05  # bf16 really ran, and close


# ---------------------------------------------------------------- padding and tiles


@pytest.mark.parametrize(
    ("size", "requirements", "padded"),
    [
        ((5, 7), {"multiple": 4}, (8, 8)),
        ((5, 7), {"minimum": 16}, (16, 16)),
        ((2, 3), {"minimum": 8, "multiple": 4}, (8, 8)),  # beyond what reflection can give: edges repeat
        ((6, 10), {"square": True}, (10, 10)),
    ],
)
def test_frames_are_padded_to_what_the_model_needs(
    size: tuple[int, int], requirements: dict, padded: tuple[int, int]
) -> None:
    image = torch.rand(1, 3, *size)
    result = pad_to_requirements(image, **requirements)
    assert result.shape[-2:] == padded
    assert torch.equal(result[..., : size[0], : size[1]], image)


def test_a_model_with_size_requirements_gets_its_padding_and_the_output_is_cropped_back() -> None:
    model = replace(tiny_compact(), min_size=16, size_multiple=8, square=True)
    output = Upscaler(model, device=CPU, precision="fp32").upscale_rgb(frame(5, 7))
    assert output.shape == (1, 3, 10, 14)


def test_the_preferred_tile_is_used_when_the_user_gives_none_and_tiling_advice_is_passed_on() -> None:
    assert Upscaler(replace(tiny_compact(), preferred_tile=64), device=CPU, precision="fp32").tile == 64
    warnings: list[str] = []
    discouraged = replace(tiny_compact(), tiling="discouraged")
    assert Upscaler(discouraged, device=CPU, precision="fp32", tile=32, warn=warnings.append).tile == 32
    assert len(warnings) == 1 and "whole frames" in warnings[0]


# ---------------------------------------------------------------- grey models


def test_a_grey_model_on_a_grey_frame_gives_its_own_output_in_every_channel() -> None:
    model = tiny_compact(channels=1)
    network = SRVGGNetCompact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2)
    network.load_state_dict(model.module.state_dict())
    grey_frame = frame(colour=False)
    with torch.inference_mode():
        expected = network(grey_frame[:, :1]).clamp(0, 1)
    output = Upscaler(model, device=CPU, precision="fp32").upscale_rgb(grey_frame)
    torch.testing.assert_close(output, expected.expand(1, 3, -1, -1), rtol=0, atol=1e-6)


def test_a_grey_model_on_a_colour_frame_sharpens_the_luma_and_keeps_the_colour() -> None:
    model = tiny_compact(channels=1)
    network = SRVGGNetCompact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2)
    network.load_state_dict(model.module.state_dict())
    colour_frame = frame() * 0.5 + 0.25  # away from 0 and 1, so nothing is clipped
    output = Upscaler(model, device=CPU, precision="fp32").upscale_rgb(colour_frame)
    with torch.inference_mode():
        luma = network(grey(colour_frame))
    bicubic = torch.nn.functional.interpolate(colour_frame, scale_factor=2, mode="bicubic", align_corners=False)
    unclipped = (output > 0) & (output < 1)
    assert torch.allclose(grey(output), luma, atol=1e-5) or not unclipped.all()
    chroma = output - grey(output)  # what the colour adds to the luma, channel by channel
    assert torch.allclose(chroma, bicubic - grey(bicubic), atol=1e-5)
    assert sum(GREY_WEIGHTS) == pytest.approx(1.0)


def test_a_grey_in_colour_out_model_is_fed_the_luma() -> None:
    torch.manual_seed(4)
    reference = OldESRGAN(in_nc=1, out_nc=3, stages=1).eval()
    model = detect_and_build(reference.state_dict(), name="colouriser", source="test")
    image = frame()
    with torch.inference_mode():
        expected = reference(grey(image)).clamp(0, 1)
    output = Upscaler(model, device=CPU, precision="fp32").upscale_rgb(image)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-6)


def test_a_model_with_channels_vidsr_cannot_feed_is_refused_in_one_line() -> None:
    torch.manual_seed(5)
    rgba = detect_and_build(OldESRGAN(in_nc=4, out_nc=4).state_dict(), name="rgba", source="test")
    with pytest.raises(ModelError, match=r"^rgba takes 4-channel images; vidsr runs RGB \(3\) and grey \(1\) models$"):
        Upscaler(rgba, device=CPU, precision="fp32")


def test_a_grey_model_upscales_a_photo_and_a_video(tmp_path: Path, clip: Path) -> None:
    torch.manual_seed(6)
    model_path = tmp_path / "grey-x2.safetensors"
    save_file(ReferenceCompact(num_in_ch=1, upscale=2, act="prelu").state_dict(), str(model_path))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(photo)
    result = runner.invoke(app, ["image", str(photo), str(tmp_path / "big.png"), "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "big.png").size == (28, 20)
    video = render(clip, tmp_path / "grey.mp4", model_path, "--device", "cpu")
    assert video.stat().st_size > 0


# ---------------------------------------------------------------- outputs that are not numbers


def overflowing(limit: float, *, gain: float = 0.01) -> LoadedModel:
    """A compact model whose first conv's activations reach about ``limit`` on a white frame,
    each later conv multiplying them by about 72 x ``gain``."""
    network = ReferenceCompact(upscale=2, act="relu")
    with torch.no_grad():
        for layer in network.body:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.fill_(gain)
                layer.bias.zero_()
        network.body[0].weight.fill_(limit / 27)
    return detect_and_build(network.state_dict(), name="overflowing", source="test")


def test_an_output_that_overflows_reduced_precision_stops_the_render_suggesting_fp32() -> None:
    model = replace(overflowing(1e6), fp32_layers=())  # 1e6 fits fp32, not fp16 (65504)
    upscaler = Upscaler(model, device=CPU, precision="fp16")
    with pytest.raises(VidsrError, match=r"NaN or infinite values in fp16 .*--precision fp32$"):
        upscaler.upscale_rgb(torch.ones(1, 3, 4, 4))
    assert torch.isfinite(
        Upscaler(overflowing(1e6), device=CPU, precision="fp32").upscale_rgb(torch.ones(1, 3, 4, 4))
    ).all()


def test_an_output_that_is_not_finite_even_in_fp32_is_a_broken_model() -> None:
    with pytest.raises(VidsrError, match="even in fp32"):
        Upscaler(overflowing(1e37, gain=1.0), device=CPU, precision="fp32").upscale_rgb(torch.ones(1, 3, 4, 4))


# ---------------------------------------------------------------- what the commands show


def test_vidsr_models_shows_what_a_users_file_needs_and_what_was_assumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("VIDSR_MODELS_DIR", str(folder))
    torch.save(ReferenceCompact(act="relu").state_dict(), folder / "mine.pth")
    result = runner.invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "mine" in line)
    assert "RGB in, RGB out" in row
    assert "activation assumed ReLU" in result.output


def test_vidsr_info_shows_what_the_model_needs(clip: Path, tmp_path: Path) -> None:
    torch.manual_seed(8)
    model_path = tmp_path / "grey.pth"
    torch.save(OldESRGAN(in_nc=1, out_nc=1, stages=2, unshuffle=2).state_dict(), model_path)
    result = runner.invoke(app, ["info", str(clip), "--json", "--model", str(model_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.output)["estimate"]
    assert estimate["model_needs"].startswith("grey in, grey out; fp32/bf16/fp16 (CPU: fp32); sides padded")
    assert "pixel-unshuffle 2" in estimate["model_description"]
    assert "grey in" not in estimate["model_description"]  # said once, in the needs: `vidsr info` shows both
