"""The choices vidsr makes for speed: the encoder preset and torch.compile follow the network's
cost, which is counted from the real architecture."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import decode_video
from test_upscale_video import render, vidsr

from vidsr.media.encode import EncodeSettings, automatic_preset, with_automatic_preset
from vidsr.models.zoo import resolve_model
from vidsr.upscale import arithmetic_per_output_pixel, should_compile


def test_arithmetic_of_the_compact_video_model_is_counted_from_its_layers():
    """realesr-animevideov3: 3→64, sixteen 64→64 and one 64→48 3x3 convolution per input
    pixel, two FLOP per multiply-add, then a pixel shuffle spreads it over 16 output pixels."""
    per_input_pixel = 2 * 9 * (3 * 64 + 16 * 64 * 64 + 64 * 48)
    assert arithmetic_per_output_pixel(resolve_model("realesr-animevideov3")) == per_input_pixel / 16


def test_arithmetic_of_rrdb_counts_the_upsampling_layers_at_their_own_resolution():
    """realesrgan-x4plus: 23 RRDBs of three five-layer dense blocks at the input resolution,
    then one 64→64 convolution at 2x and three more at 4x."""
    dense_block = 2 * 9 * (64 * 32 + 96 * 32 + 128 * 32 + 160 * 32 + 192 * 64)
    trunk = 2 * 9 * 3 * 64 + 23 * 3 * dense_block + 2 * 9 * 64 * 64
    upsampling = 2 * 9 * 64 * 64 * (4 / 16 + 1 + 1) + 2 * 9 * 64 * 3
    assert arithmetic_per_output_pixel(resolve_model("realesrgan-x4plus")) == pytest.approx(trunk / 16 + upsampling)


@pytest.mark.parametrize(
    ("model", "preset"),
    [("realesrgan-x4plus", "medium"), ("realesrgan-x4plus-anime", "medium"), ("realesr-animevideov3", "veryfast")],
)
def test_the_automatic_preset_keeps_the_encoder_a_small_share_of_the_work(model, preset):
    assert automatic_preset(arithmetic_per_output_pixel(resolve_model(model))) == preset


def test_presets_step_down_as_the_network_gets_lighter():
    costs = [5e6, 180e3, 120e3, 70e3, 1e3]
    assert [automatic_preset(c) for c in costs] == ["medium", "medium", "faster", "veryfast", "veryfast"]


def test_a_preset_the_user_chose_is_kept():
    chosen = EncodeSettings(preset="slow")
    assert with_automatic_preset(chosen, 1e3) == chosen


def test_svt_av1_gets_a_preset_in_its_own_numbering():
    assert with_automatic_preset(EncodeSettings(codec="libsvtav1"), 1e3).preset == "8"


def x264_options(video: Path) -> str:
    """The option string x264 writes into the stream, as the encoder really ran."""
    with av.open(str(video)) as container:
        for packet in container.demux(video=0):
            data = bytes(packet)
            if b"options:" in data:
                return data.split(b"options:", 1)[1].split(b"\x00", 1)[0].decode("ascii", "replace")
    raise AssertionError("no x264 options in the stream")


def test_a_light_network_is_encoded_with_a_fast_preset(clip, nearest_model, tmp_path):
    options = x264_options(render(clip, tmp_path / "auto.mp4", nearest_model))
    assert " subme=2 " in options and " ref=1 " in options  # veryfast


def test_an_explicit_preset_reaches_the_encoder(clip, nearest_model, tmp_path):
    options = x264_options(render(clip, tmp_path / "medium.mp4", nearest_model, "--preset", "medium"))
    assert " subme=7 " in options and " ref=3 " in options  # medium


CPU = torch.device("cpu")
TEN_MINUTES_AT_720P = dict(output_pixels=1280 * 720, frames=14_400, tile=0)


def test_heavy_networks_are_compiled_for_long_renders_on_the_cpu():
    x4plus = arithmetic_per_output_pixel(resolve_model("realesrgan-x4plus"))
    assert should_compile(None, CPU, arithmetic=x4plus, **TEN_MINUTES_AT_720P)


@pytest.mark.parametrize(
    "reason",
    [
        dict(arithmetic=77_400.0),  # a light network gains nothing measurable
        dict(frames=24),  # a clip too short to repay the compiling
        dict(tile=256),  # tiles come in several shapes, each compiled anew
        dict(device=torch.device("cuda")),  # not measured on a GPU
    ],
)
def test_compiling_is_skipped_where_it_does_not_repay(reason):
    settings = dict(device=CPU, arithmetic=2.24e6, **TEN_MINUTES_AT_720P) | reason
    device = settings.pop("device")
    assert not should_compile(None, device, **settings)


def test_the_users_choice_about_compiling_wins():
    assert should_compile(True, CPU, arithmetic=1.0, output_pixels=1, frames=1, tile=64)
    assert not should_compile(False, CPU, arithmetic=2.24e6, **TEN_MINUTES_AT_720P)


def test_a_compiled_render_gives_the_frames_an_uncompiled_one_does(clip, nearest_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    plain = decode_video(render(clip, tmp_path / "plain.mp4", nearest_model, "--no-compile"))
    compiled = decode_video(render(clip, tmp_path / "compiled.mp4", nearest_model, "--compile"))
    assert compiled.times == plain.times
    assert all(np.array_equal(a, b) for a, b in zip(compiled.frames, plain.frames))


def test_without_a_working_compiler_the_render_warns_and_runs_uncompiled(clip, rrdb_x2_model, tmp_path, monkeypatch):
    """(A model no other test compiles: kernels compiled earlier in this process would be reused.)"""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "empty cache"))
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", (str(tmp_path / "no-such-compiler"),))
    result = vidsr(clip, tmp_path / "out.mp4", "--model", rrdb_x2_model, "--compile")
    assert result.exit_code == 0, result.output
    assert "torch.compile failed" in result.output and "uncompiled" in result.output
    assert len(decode_video(tmp_path / "out.mp4").times) == 24
