"""Reuse across time: tiles whose source did not change keep their output, and the network skips
them; what changed equals the whole-frame output, and a render stays exactly reproducible.

A real SRVGGNetCompact with random weights (every output pixel depends on its neighbourhood, so
a tile computed out of place would show), on pictures and tiny videos made here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import _add_audio, _write_tone, audio_packets
from safetensors.torch import save_file

from vidsr.media import decode_batches
from vidsr.models import choose_model
from vidsr.models.arch import SRVGGNetCompact
from vidsr.render import UpscaleJob, upscale_video
from vidsr.render.plan import plan_job
from vidsr.render.segments import SegmentRenderer
from vidsr.render.workfolder import WorkFolder
from vidsr.upscale import FrameReuse, UpscaleOptions, Upscaler
from vidsr.upscale.reuse import ChangeTest

WIDTH, HEIGHT = 256, 128  # 4 x 2 reuse tiles of 64 pixels


@pytest.fixture(scope="module")
def random_compact(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    network = SRVGGNetCompact(num_feat=4, num_conv=3, upscale=4)
    path = tmp_path_factory.mktemp("models") / "random-compact-x4.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    return path


def upscaler(model: Path, *, scale: float | None = None, tile: int = 0) -> Upscaler:
    return Upscaler(
        choose_model((str(model),), None), device=torch.device("cpu"), precision="fp32", scale=scale, tile=tile
    )


def picture(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> torch.Tensor:
    """A still picture with detail everywhere: smooth gradients under a random texture, 1 x 3 x H x W."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    base = torch.stack((0.3 + 0.4 * x.expand(height, width), 0.2 + 0.5 * y.expand(height, width), 0.5 + 0 * x * y))
    return (base + 0.2 * torch.rand(3, height, width, generator=generator)).clamp(0, 1)[None]


def with_square(frame: torch.Tensor, left: int, top: int = 40, size: int = 6) -> torch.Tensor:
    marked = frame.clone()
    marked[..., top : top + size, left : left + size] = 1.0
    return marked


def run(engine: Upscaler, frames: list[torch.Tensor], reuse: FrameReuse | None) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [engine.upscale_rgb(frame, None, reuse).clone() for frame in frames]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(1 / mse))


# ---- the stage, on pictures ------------------------------------------------------------------------


def test_held_drawings_skip_the_network_and_keep_its_very_pixels(random_compact):
    engine = upscaler(random_compact)
    first, second = picture(0), picture(1)
    reuse = FrameReuse()
    outputs = run(engine, [first, first, second, second, second], reuse)
    assert torch.equal(outputs[1], outputs[0]) and torch.equal(outputs[3], outputs[2])
    assert torch.equal(outputs[4], outputs[2])
    assert reuse.count.frames_skipped == 3  # the network ran for the two drawings only
    assert reuse.count.share == pytest.approx(3 / 5)
    for output, whole in zip(outputs, run(engine, [first, first, second, second, second], None)):
        assert psnr(output, whole) >= 50


def test_a_moving_square_leaves_no_ghost(random_compact):
    """Only the tiles around the square are computed again; where it was and where it is now
    equal the whole-frame output."""
    engine = upscaler(random_compact)
    still = picture(2)
    frames = [with_square(still, left) for left in (20, 23, 26, 90)]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    wholes = run(engine, frames, None)
    assert 0 < reuse.count.reused < reuse.count.tiles - 6  # some tiles kept, the first frame whole
    for output, whole in zip(outputs, wholes):
        assert psnr(output, whole) >= 50
        assert float((output - whole).abs().max()) < 2 / 255  # no pixel of a ghost anywhere


def test_a_drawing_moving_inside_a_tile_re_renders_itself_not_the_background_around_it(random_compact):
    """The tile holding the square is computed again, but its still background under a level of
    noise (as compression leaves), away from where the square was and is, keeps the previous output
    byte for byte (no shimmer there); without block adoption the whole tile would take the new output."""
    engine = upscaler(random_compact)
    still = picture(12)
    noise = torch.randn(still.shape, generator=torch.Generator().manual_seed(2)) / 255
    frames = [with_square(still, 20), with_square((still + noise).clamp(0, 1), 26)]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    assert reuse.count.frames_skipped == 0 and reuse.count.reused > 0
    background = (slice(None), slice(None), slice(0, 24 * 4), slice(None))  # rows 0-23: 16 or more from the square
    assert torch.equal(outputs[1][background], outputs[0][background])
    tile_taken_whole = run(engine, frames, FrameReuse(test=ChangeTest(adopt_blocks=False)))
    assert not torch.equal(tile_taken_whole[1][background], tile_taken_whole[0][background])
    whole = run(engine, frames, None)[1]
    square = (slice(None), slice(None), slice(36 * 4, 50 * 4), slice(16 * 4, 36 * 4))
    assert torch.allclose(outputs[1][square], whole[square], atol=1e-4)  # where it was and is: computed anew


def test_a_kept_block_keeps_the_source_it_was_computed_from(random_compact):
    """A patch brightening 1.5 levels a frame beside a square that keeps its tile busy: each step is
    too small to take in, but the patch is compared with the source of its kept output, so the
    steps add up and are taken in before they stray far from the whole-frame output."""
    engine = upscaler(random_compact)
    still = picture(13)
    frames = []
    for index in range(12):
        frame = with_square(still, 4 + index, top=48)
        frame[..., 4:12, 44:52] += 1.5 / 255 * index
        frames.append(frame.clamp(0, 1))
    outputs = run(engine, frames, FrameReuse())
    wholes = run(engine, frames, None)
    patch = (slice(None), slice(None), slice(4 * 4, 12 * 4), slice(44 * 4, 52 * 4))
    behind = [float((o[patch] - w[patch]).abs().mean()) * 255 for o, w in zip(outputs, wholes)]
    assert max(behind) < 8  # never more than the adoption level (6) and a step behind
    assert not torch.equal(outputs[-1][patch], outputs[0][patch])


def test_a_slow_fade_is_tracked_not_left_behind(random_compact):
    """0.4 % darker a frame: each step is under the noise threshold, but the reference is the
    source the output was computed from, so the change adds up and is computed again."""
    engine = upscaler(random_compact)
    still = picture(3)
    frames = [still * (1 - 0.004 * index) for index in range(12)]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    wholes = run(engine, frames, None)
    assert reuse.count.reused > 0  # the first steps were small enough to keep
    for output, whole in zip(outputs, wholes):
        assert abs(float(output.mean() - whole.mean())) * 255 < 1.0  # never more than a level behind
        assert psnr(output, whole) >= 40
    unsaturated = (outputs[0] > 0) & (outputs[0] < 1)  # the output is clamped: white may stay white a while
    assert bool((outputs[-1] != outputs[0])[unsaturated].all())  # every pixel followed the fade: none left behind


def test_a_noise_blend_calms_what_changed_by_noise_alone_and_nothing_else(random_compact):
    """With ChangeTest.noise_blend, a still picture under fresh noise is still computed every frame,
    but taken in by half, so its output changes less from frame to frame; a square moving over it
    is not blended (no ghost)."""
    engine = upscaler(random_compact)
    still = picture(9)
    generator = torch.Generator().manual_seed(1)
    noisy = [(still + torch.randn(still.shape, generator=generator) * 4 / 255).clamp(0, 1) for _ in range(6)]
    hard = run(engine, noisy, FrameReuse())
    blended_state = FrameReuse(test=ChangeTest(noise_blend=0.5))
    blended = run(engine, noisy, blended_state)
    assert blended_state.count.reused == 0  # noise is change: computed, never frozen

    def boil(outputs: list[torch.Tensor]) -> float:
        return sum(float((b - a).abs().mean()) for a, b in zip(outputs, outputs[1:]))

    assert boil(blended) < 0.75 * boil(hard)
    moved = run(engine, [noisy[0], with_square(noisy[1], 100)], FrameReuse(test=ChangeTest(noise_blend=0.5)))
    whole = run(engine, [with_square(noisy[1], 100)], None)[0]
    square = (slice(None), slice(None), slice(40 * 4, 46 * 4), slice(100 * 4, 106 * 4))
    assert torch.allclose(moved[1][square], whole[square], atol=1e-4)


def test_all_black_frames_and_a_picture_after_them(random_compact):
    engine = upscaler(random_compact)
    black = torch.zeros(1, 3, HEIGHT, WIDTH)
    frames = [black, black, picture(4), black]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    assert torch.equal(outputs[1], outputs[0])
    for output, whole in zip(outputs, run(engine, frames, None)):
        assert psnr(output, whole) >= 50


def test_a_new_frame_size_starts_afresh(random_compact):
    engine = upscaler(random_compact)
    frames = [picture(5), picture(5, width=128, height=64), picture(5, width=128, height=64)]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    assert [tuple(o.shape[-2:]) for o in outputs] == [(HEIGHT * 4, WIDTH * 4), (256, 512), (256, 512)]
    wholes = run(engine, frames, None)
    assert torch.equal(outputs[1], wholes[1])  # computed whole, as without reuse
    assert torch.equal(outputs[2], outputs[1])


@pytest.mark.parametrize("scale", [2.0, 8.0], ids=["downscaled after the network", "two network passes"])
def test_scales_other_than_the_models_reuse_too(random_compact, scale):
    engine = upscaler(random_compact, scale=scale)
    still = picture(6, width=96, height=64)
    frames = [with_square(still, 10), with_square(still, 10), with_square(still, 70)]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    wholes = run(engine, frames, None)
    assert outputs[0].shape[-1] == 96 * scale
    assert torch.equal(outputs[1], outputs[0])
    assert reuse.count.reused > 0
    for output, whole in zip(outputs, wholes):
        assert psnr(output, whole) >= 50


def test_frames_that_fit_only_in_tiles_are_recomputed_in_tiles_too(random_compact):
    """With tiles of 48 pixels (as the memory planner would choose for a frame too large), the
    changed windows are tiled in turn, and still equal the tiled whole-frame output."""
    engine = upscaler(random_compact, tile=48)
    still = picture(7)
    frames = [with_square(still, 20), with_square(still, 24)]
    reuse = FrameReuse()
    outputs = run(engine, frames, reuse)
    assert reuse.count.reused > 0
    for output, whole in zip(outputs, run(engine, frames, None)):
        assert psnr(output, whole) >= 50


def test_a_batch_decides_as_its_frames_would_one_at_a_time(random_compact):
    """On a GPU frames come in batches: the decisions and outputs are those of one frame after the other."""
    engine = upscaler(random_compact)
    still = picture(8)
    frames = [with_square(still, left) for left in (10, 10, 40, 40)]
    one_by_one = run(engine, frames, FrameReuse())
    batched = FrameReuse()
    with torch.inference_mode():
        together = engine.upscale_rgb(torch.cat(frames), None, batched)
    assert batched.count.frames_skipped == 2
    for single, output in zip(one_by_one, together):
        assert torch.allclose(single[0], output, atol=1e-5)


# ---- in a render -----------------------------------------------------------------------------------

FPS = 24


CLIP_WIDTH, CLIP_HEIGHT, CLIP_FRAMES = 128, 64, 12


def held_clip(path: Path, *, frames: int = CLIP_FRAMES, pix_fmt: str = "yuv420p", vfr: bool = False) -> Path:
    """A drawing held on twos over a still backdrop, a scene cut half-way, stereo audio; VFR if asked."""
    time_base = Fraction(1, 1000) if path.suffix == ".mkv" else Fraction(1, 90000)
    deep = "10" in pix_fmt
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "16", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = CLIP_WIDTH, CLIP_HEIGHT, pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1
        audio = _add_audio(container, "aac", 0)
        now = Fraction(0)
        for index in range(frames):
            scene = picture(10 if index < frames // 2 else 11, CLIP_WIDTH, CLIP_HEIGHT)
            rgb = with_square(scene, 10 + 12 * (index // 2), top=20)[0].permute(1, 2, 0).numpy()
            array = np.round(rgb * (65535 if deep else 255)).astype(np.uint16 if deep else np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb48le" if deep else "rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=1, dst_color_range=1)
            frame.pts, frame.time_base = round(now / time_base), time_base
            container.mux(stream.encode(frame))
            now += Fraction(1, FPS) * (3 if vfr and index % 3 == 0 else 1)
        container.mux(stream.encode())
        _write_tone(container, audio, float(now), frequency=440.0)
    return path


@pytest.fixture(scope="module")
def held(tmp_path_factory) -> Path:
    return held_clip(tmp_path_factory.mktemp("held") / "held.mp4", vfr=True)


def render(source: Path, output: Path, model: Path, *, reuse: bool = True, **settings) -> Path:
    job = UpscaleJob(input=source, output=output, upscale=UpscaleOptions(models=(str(model),)), reuse=reuse, **settings)
    upscale_video(job)
    return output


def planes_of(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.pts for f in frames], [np.concatenate([np.asarray(p).ravel() for p in f.planes]) for f in frames]


def pipeline_frames(source: Path, output: Path, model: Path, reuse: bool) -> list[np.ndarray]:
    """Each frame's planes as the render's own upscaler gives them, one frame at a time."""
    plan, loaded = plan_job(UpscaleJob(input=source, output=output, upscale=UpscaleOptions(models=(str(model),))))
    engine = SegmentRenderer(plan, loaded).upscaler
    state = FrameReuse() if reuse else None
    frames = []
    for batch in decode_batches(plan.info, batch_size=1):
        out = engine.upscale(batch, state)
        frames.append(np.concatenate([plane[0].ravel() for plane in out.planes]))
    return frames


def test_no_reuse_is_every_frame_whole_byte_for_byte(held, random_compact, tmp_path):
    """Losslessly encoded (crf 0), the --no-reuse render is the network's whole-frame output of
    every frame, exactly; with reuse, the frame after the scene cut is that too."""
    lossless = {"encode": av_lossless()}
    whole = planes_of(render(held, tmp_path / "whole.mkv", random_compact, reuse=False, **lossless))[1]
    reused = planes_of(render(held, tmp_path / "reuse.mkv", random_compact, **lossless))[1]
    expected = pipeline_frames(held, tmp_path / "x.mkv", random_compact, reuse=False)
    assert len(whole) == len(expected) == CLIP_FRAMES
    for got, want in zip(whole, expected):
        assert np.array_equal(got, want)
    cut = CLIP_FRAMES // 2
    assert np.array_equal(reused[cut], whole[cut])  # the scene cut: computed whole
    assert np.array_equal(reused[0], whole[0])  # the first frame of the segment too
    assert np.array_equal(reused[1], reused[0]) and np.array_equal(reused[cut + 1], reused[cut])  # held


def av_lossless():
    from vidsr.media import EncodeSettings

    return EncodeSettings(crf=0, preset="ultrafast")


def test_frame_count_timestamps_and_audio_are_unchanged(held, random_compact, tmp_path):
    whole = render(held, tmp_path / "whole.mp4", random_compact, reuse=False)
    reused = render(held, tmp_path / "reuse.mp4", random_compact)
    whole_pts, whole_frames = planes_of(whole)
    reuse_pts, reuse_frames = planes_of(reused)
    assert reuse_pts == whole_pts and len(reuse_frames) == CLIP_FRAMES
    assert audio_packets(reused) == audio_packets(whole) == audio_packets(held)


def test_ten_bit_video_reuses_tiles_and_stays_faithful(random_compact, tmp_path):
    source = held_clip(tmp_path / "ten.mkv", frames=8, pix_fmt="yuv420p10le")
    whole = planes_of(render(source, tmp_path / "whole.mkv", random_compact, reuse=False))[1]
    job = UpscaleJob(input=source, output=tmp_path / "reuse.mkv", upscale=UpscaleOptions(models=(str(random_compact),)))
    result = upscale_video(job)
    reused = planes_of(job.output)[1]
    assert result.reuse.share > 0.3
    assert reused[0].dtype == np.uint8  # planes read as bytes: 10-bit samples, two bytes each
    for got, want in zip(reused, whole):
        difference = got.view(np.uint16).astype(np.float64) - want.view(np.uint16)
        assert 10 * np.log10(1023**2 / max(float(np.mean(difference**2)), 1e-12)) >= 45


def command(source: Path, output: Path, model: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "vidsr", str(source), str(output),
        "--model", str(model), "--segment-seconds", "0.2", *extra,
    ]  # fmt: skip


def test_reuse_is_identical_across_a_kill_and_a_resume_and_part_of_the_job(held, random_compact, tmp_path):
    reference = planes_of(render(held, tmp_path / "reference.mp4", random_compact, segment_seconds=0.2))
    output = tmp_path / "out.mp4"
    killed = subprocess.run(
        command(held, output, random_compact),
        capture_output=True,
        text=True,
        env={**os.environ, "VIDSR_TEST_KILL_AT": "frame:2:1"},
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL
    assert WorkFolder(output).journal_path.exists()

    changed = subprocess.run(command(held, output, random_compact, "--no-reuse"), capture_output=True, text=True)
    assert changed.returncode == 1
    assert "settings.reuse: true → false" in changed.stderr

    resumed = subprocess.run(command(held, output, random_compact), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at frame" in resumed.stderr and "% of tiles reused" in resumed.stderr
    result = planes_of(output)
    assert result[0] == reference[0]
    assert all(np.array_equal(a, b) for a, b in zip(result[1], reference[1]))
