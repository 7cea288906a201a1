"""ESRGAN network interpolation: the maths, mixed file layouts, refusals, and the commands."""

from __future__ import annotations

import pytest
import torch
from media import decode_video
from safetensors.torch import load_file
from test_loader import TINY_RRDB, in_params_ema, to_original_esrgan
from test_upscale_video import render
from typer.testing import CliRunner

from vidsr.cli.app import app
from vidsr.errors import ModelError
from vidsr.models.arch import RRDBNet, SRVGGNetCompact
from vidsr.models.interpolate import interpolate_models, interpolate_state_dicts
from vidsr.models.loader import load_model_file

runner = CliRunner()


def rrdb(seed: int, **overrides) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(scale=4, **{**TINY_RRDB, **overrides})


@pytest.fixture
def psnr_and_gan(tmp_path):
    """Two models of one architecture, saved in different layouts: original ESRGAN and BasicSR."""
    psnr_model, gan_model = rrdb(1), rrdb(2)
    psnr_path, gan_path = tmp_path / "RRDB_PSNR_x4.pth", tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(to_original_esrgan(psnr_model.state_dict()), psnr_path)
    torch.save(in_params_ema(gan_model.state_dict()), gan_path)
    return psnr_model.state_dict(), gan_model.state_dict(), psnr_path, gan_path


def test_alpha_zero_and_one_reproduce_the_two_models_exactly(psnr_and_gan):
    psnr_state, gan_state, psnr_path, gan_path = psnr_and_gan
    at_zero = interpolate_models(str(psnr_path), str(gan_path), 0.0).module.state_dict()
    at_one = interpolate_models(str(psnr_path), str(gan_path), 1.0).module.state_dict()
    assert all(torch.equal(at_zero[name], psnr_state[name]) for name in psnr_state)
    assert all(torch.equal(at_one[name], gan_state[name]) for name in gan_state)


def test_alpha_half_is_the_average(psnr_and_gan):
    psnr_state, gan_state, psnr_path, gan_path = psnr_and_gan
    half = interpolate_models(str(psnr_path), str(gan_path), 0.5).module.state_dict()
    for name in psnr_state:
        assert torch.allclose(half[name], (psnr_state[name] + gan_state[name]) / 2, atol=1e-7)


def test_the_blend_is_linear_in_alpha():
    first, second = rrdb(1).state_dict(), rrdb(2).state_dict()
    blended = interpolate_state_dicts(first, second, 0.8)
    name = "conv_first.weight"
    assert torch.allclose(blended[name], 0.2 * first[name] + 0.8 * second[name], atol=1e-7)


def test_different_shapes_are_refused_naming_the_tensors():
    with pytest.raises(
        ModelError, match=r"body\.0\.rdb1\.conv1\.weight \(4, 8, 3, 3\) vs \(4, 16, 3, 3\);.* and \d+ more"
    ):
        interpolate_state_dicts(rrdb(1).state_dict(), rrdb(2, num_feat=16).state_dict(), 0.5)


def test_different_block_counts_are_refused_naming_the_missing_tensors():
    with pytest.raises(ModelError, match="only in the second"):
        interpolate_state_dicts(rrdb(1).state_dict(), rrdb(2, num_block=3).state_dict(), 0.5)


def test_different_architectures_are_refused(tmp_path):
    rrdb_path, compact_path = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(rrdb(1).state_dict(), rrdb_path)
    torch.save(SRVGGNetCompact(num_feat=8, num_conv=2).state_dict(), compact_path)
    with pytest.raises(ModelError, match="RRDBNet and .* is SRVGGNetCompact"):
        interpolate_models(str(rrdb_path), str(compact_path), 0.5)


def test_alpha_outside_zero_to_one_is_refused():
    with pytest.raises(ModelError, match="from 0"):
        interpolate_state_dicts(rrdb(1).state_dict(), rrdb(2).state_dict(), 1.5)


def test_the_interpolate_command_writes_a_model_that_upscales(psnr_and_gan, clip, tmp_path):
    psnr_state, gan_state, psnr_path, gan_path = psnr_and_gan
    blended_path = tmp_path / "interp 0.8.safetensors"
    result = runner.invoke(
        app, ["interpolate", str(psnr_path), str(gan_path), "--alpha", "0.8", "-o", str(blended_path)]
    )
    assert result.exit_code == 0, result.output
    saved = load_file(str(blended_path))
    assert torch.allclose(
        saved["conv_first.weight"],
        0.2 * psnr_state["conv_first.weight"] + 0.8 * gan_state["conv_first.weight"],
        atol=1e-7,
    )
    assert load_model_file(blended_path).architecture == "RRDBNet"
    output = render(clip, tmp_path / "out.mp4", blended_path)
    assert decode_video(output).width == 256


def test_the_interpolate_command_refuses_to_overwrite(psnr_and_gan, tmp_path):
    _, _, psnr_path, gan_path = psnr_and_gan
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep me")
    result = runner.invoke(app, ["interpolate", str(psnr_path), str(gan_path), "--alpha", "0.5", "-o", str(existing)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert existing.read_bytes() == b"keep me"


def test_two_models_and_alpha_blend_on_the_fly_while_upscaling(psnr_and_gan, clip, tmp_path):
    """--model A --model B --alpha X gives the same video as a file interpolated beforehand."""
    _, _, psnr_path, gan_path = psnr_and_gan
    blended_path = tmp_path / "blend.safetensors"
    runner.invoke(app, ["interpolate", str(psnr_path), str(gan_path), "--alpha", "0.3", "-o", str(blended_path)])
    on_the_fly = render(clip, tmp_path / "fly.mp4", psnr_path, "--model", str(gan_path), "--alpha", "0.3")
    from_file = render(clip, tmp_path / "file.mp4", blended_path)
    a, b = decode_video(on_the_fly), decode_video(from_file)
    assert all((x == y).all() for x, y in zip(a.frames, b.frames))
