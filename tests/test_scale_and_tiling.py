"""Every frame size, every scale: tiles without seams, exact output sizes, odd sizes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import area_downscale, decode_video, psnr
from test_upscale_video import render, vidsr
from torch import nn

from vidsr.models.arch import RRDBNet, SRVGGNetCompact
from vidsr.models.loader import detect_and_build
from vidsr.upscale import UpscaleOptions, Upscaler, create_upscaler, resize
from vidsr.upscale.tiling import run_tiled, spans

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 128x80 crop of a real photograph (the sample clip's astronaut): real detail to cut through."""
    with av.open(str(SAMPLE)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 30:
                rgb = frame.to_ndarray(format="rgb24")
                break
    crop = rgb[5:85, 16:144]
    return torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255


def tensor_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr(a.numpy(), b.numpy())


def loaded(network: nn.Module, name: str = "test") -> Upscaler:
    model = detect_and_build(network.state_dict(), name=name, source="test")
    return Upscaler(model, device=torch.device("cpu"), precision="fp32")


def random_compact() -> nn.Module:
    torch.manual_seed(3)
    return SRVGGNetCompact(num_feat=8, num_conv=4, upscale=4)


def nearest_compact(scale: int = 4) -> nn.Module:
    network = random_compact() if scale == 4 else SRVGGNetCompact(num_feat=8, num_conv=4, upscale=scale)
    with torch.no_grad():
        network.body[-1].weight.zero_()
        network.body[-1].bias.zero_()
    return network


# ---- tiling --------------------------------------------------------------------------------------


def test_tiles_of_the_default_model_leave_no_seam(photo):
    """The real 23-block model, tile edges cutting through the face: within 50 dB of untiled (on
    torch: ncnn's tiles are tests/test_ncnn_engine.py's, and auto would time both engines first)."""
    crop = photo[..., 8:72, 16:112]  # 96x64: four tiles of 48
    with torch.inference_mode():
        reference = create_upscaler(UpscaleOptions(models=("realesrgan-x4plus",), engine="torch")).upscale_rgb(crop)
        result = create_upscaler(UpscaleOptions(models=("realesrgan-x4plus",), tile=48, engine="torch")).upscale_rgb(
            crop
        )
    assert result.shape == reference.shape == (1, 3, 256, 384)
    assert tensor_psnr(result, reference) >= 50.0


@pytest.fixture(scope="module")
def fast_model_untiled(photo) -> torch.Tensor:
    with torch.inference_mode():
        return create_upscaler(UpscaleOptions(models=("realesr-animevideov3",))).upscale_rgb(photo)


@pytest.mark.parametrize("tile", [32, 48, 64, 100])
def test_tiles_of_the_fast_model_leave_no_seam_at_any_tile_size(photo, fast_model_untiled, tile):
    with torch.inference_mode():
        result = create_upscaler(UpscaleOptions(models=("realesr-animevideov3",), tile=tile)).upscale_rgb(photo)
    assert tensor_psnr(result, fast_model_untiled) >= 50.0


def test_tiles_cover_the_frame_and_overlap_their_neighbours():
    windows = spans(100, 30, 8)
    assert windows[0].start == 0 and windows[-1].stop == 100
    for before, after in zip(windows, windows[1:]):
        assert after.start < before.stop  # they overlap
        assert before.blend_after and after.blend_before
    assert not windows[0].blend_before and not windows[-1].blend_after
    assert spans(20, 30, 8) == [spans(20, 30, 8)[0]] and spans(20, 30, 8)[0].stop == 20  # one tile, whole frame


def test_a_batch_of_frames_is_tiled_as_each_frame_alone():
    upscaler = loaded(random_compact())
    frames = torch.rand(3, 3, 40, 56)
    with torch.inference_mode():
        together = run_tiled(upscaler._forward, frames, scale=4, tile=24)
        alone = torch.cat([run_tiled(upscaler._forward, f[None], scale=4, tile=24) for f in frames])
        untiled = upscaler._forward(frames)
    assert torch.allclose(together, alone, atol=1e-6)
    assert tensor_psnr(together, untiled) > 45.0


def test_tiling_a_per_pixel_model_changes_nothing():
    upscaler = loaded(nearest_compact())
    frame = torch.rand(1, 3, 37, 53)
    with torch.inference_mode():
        assert torch.allclose(
            run_tiled(upscaler._forward, frame, scale=4, tile=16), upscaler._forward(frame), atol=1e-6
        )


class LimitedMemory(nn.Module):
    """A real network on a device that fails above ``budget`` input pixels per call, the way CUDA
    raises OutOfMemoryError; records the input sizes it was given."""

    def __init__(self, network: nn.Module, budget: int) -> None:
        super().__init__()
        self.network, self.budget, self.calls = network, budget, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[-1] * x.shape[-2] > self.budget:
            raise torch.OutOfMemoryError("simulated: the device is full")
        return self.network(x)


def test_out_of_memory_splits_the_batch_then_tiles_the_frame():
    network = random_compact()
    upscaler = loaded(network)
    reference_frames = torch.rand(2, 3, 192, 256)
    with torch.inference_mode():
        expected = upscaler.upscale_rgb(reference_frames)
        upscaler.network = LimitedMemory(upscaler.network, budget=192 * 256 // 2)
        result = upscaler.upscale_rgb(reference_frames)
    shapes = upscaler.network.calls
    assert shapes[0][0] == 2 and any(s[0] == 1 and s[-2:] == (192, 256) for s in shapes)  # whole batch, then one frame
    assert any(s[-1] < 256 for s in shapes)  # then tiles
    assert result.shape == expected.shape
    assert tensor_psnr(result, expected) > 45.0


# ---- scales ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "size"),
    [(1, (20, 14)), (1.5, (30, 21)), (2, (40, 28)), (3, (60, 42)), (4, (80, 56)), (8, (160, 112)), (16, (320, 224))],
)
def test_every_scale_gives_its_exact_size(scale, size):
    upscaler = Upscaler(
        detect_and_build(nearest_compact().state_dict(), name="t", source="t"),
        device=torch.device("cpu"),
        precision="fp32",
        scale=scale,
    )
    with torch.inference_mode():
        result = upscaler.upscale_rgb(torch.rand(1, 3, 14, 20))
    assert (result.shape[-1], result.shape[-2]) == size == upscaler.output_size(20, 14)
    assert upscaler.passes_for(scale) == (1 if scale <= 4 else 2)


@pytest.mark.parametrize("scale", [1, 1.5, 2, 3, 8])
def test_other_scales_look_like_a_resize_of_the_native_output(photo, scale):
    native = loaded(random_compact())
    scaled = Upscaler(native.model, device=torch.device("cpu"), precision="fp32", scale=scale)
    with torch.inference_mode():
        result = scaled.upscale_rgb(photo)
        reference = resize(native.upscale_rgb(photo), result.shape[-1], result.shape[-2])
    # Below x4: the same network output, filtered down. At x8: a second pass adds detail, but
    # the picture is the one a plain resize of the x4 output shows.
    assert tensor_psnr(result, reference) > (60.0 if scale <= 4 else 25.0)


def test_a_scale_below_the_model_downscales_with_antialiasing():
    """A fine checkerboard enlarged x4 by nearest then brought to x1 must average to grey, not alias."""
    upscaler = Upscaler(
        detect_and_build(nearest_compact().state_dict(), name="t", source="t"),
        device=torch.device("cpu"),
        precision="fp32",
        scale=1,
    )
    checkerboard = (torch.arange(32)[None, :] + torch.arange(32)[:, None]) % 2
    image = checkerboard.float().expand(1, 3, 32, 32).contiguous()
    with torch.inference_mode():
        result = upscaler.upscale_rgb(image)
    assert torch.allclose(result, image, atol=0.02) or float(result.std()) < float(image.std())


def test_video_scale_two_with_an_x4_model(clip, nearest_model, tmp_path):
    output = render(clip, tmp_path / "x2.mp4", nearest_model, "--scale", "2")
    source, result = decode_video(clip), decode_video(output)
    assert (result.width, result.height) == (128, 96)
    assert len(result.times) == len(source.times)
    assert min(psnr(area_downscale(o, 2), s) for s, o in zip(source.frames, result.frames)) > 30.0


@pytest.mark.parametrize(
    ("options", "size"),
    [
        (["--width", "200"], (200, 150)),
        (["--height", "100"], (134, 100)),  # 133.3 wide by the aspect: rounded up to even for 4:2:0
        (["--scale", "1.5"], (96, 72)),
        (["--width", "150", "--height", "99"], (150, 100)),
    ],
)
def test_video_target_sizes_are_exact_and_even(clip, nearest_model, tmp_path, options, size):
    output = render(clip, tmp_path / "sized.mp4", nearest_model, *options)
    result = decode_video(output)
    assert (result.width, result.height) == size


def test_sixteen_times_runs_two_passes_and_says_what_it_costs(clip, nearest_model, tmp_path):
    output = tmp_path / "x16.mp4"
    result = vidsr(clip, output, "--model", nearest_model, "--scale", "16", "--quiet")
    assert result.exit_code == 0, result.output
    assert "runs 2 times per frame" in result.output and "17x the work" in result.output
    assert (decode_video(output).width, decode_video(output).height) == (1024, 768)


def test_odd_frame_sizes_through_a_pixel_unshuffle_model(tmp_path):
    """An x2 RRDB wants even sizes: an odd frame is padded by reflection and cropped back."""
    from media import ClipSpec, write_clip

    source = write_clip(tmp_path / "odd.mkv", ClipSpec(width=63, height=47, frames=4, pix_fmt="yuv444p"))
    torch.manual_seed(0)
    weights = tmp_path / "rrdb-x2.pth"
    torch.save({"params_ema": RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4).state_dict()}, weights)
    output = render(source, tmp_path / "odd out.mkv", weights)
    result = decode_video(output)
    assert (result.width, result.height) == (126, 94)
    assert len(result.times) == 4


def test_tiled_video_matches_untiled_video(clip, tmp_path):
    torch.manual_seed(5)
    weights = tmp_path / "compact.pth"
    torch.save(SRVGGNetCompact(num_feat=8, num_conv=4, upscale=4).state_dict(), weights)
    whole = decode_video(render(clip, tmp_path / "whole.mp4", weights))
    tiled = decode_video(render(clip, tmp_path / "tiled.mp4", weights, "--tile", "32"))
    assert min(psnr(a, b) for a, b in zip(whole.frames, tiled.frames)) > 40.0
    assert np.allclose(whole.times, tiled.times)
