"""`vidsr INPUT OUTPUT`: what a user gets from a render, checked on real files.

The renders use a real SRVGGNetCompact whose residual branch is zero (a nearest-neighbour
enlarger), so the output downscaled back must match the input: colour errors show.
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from media import area_downscale, audio_packets, decode_video, psnr, to_rgb
from typer.testing import CliRunner

from vidsr.cli.app import app, with_default_command

runner = CliRunner()


def vidsr(*args: str | Path):
    """Run the command line as a user types it (no sub-command word needed)."""
    return runner.invoke(app, with_default_command([str(a) for a in args]))


def render(source: Path, output: Path, model: Path, *extra: str) -> Path:
    result = vidsr(source, output, "--model", model, "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def rendered_clip(clip, nearest_model, tmp_path_factory) -> Path:
    return render(clip, tmp_path_factory.mktemp("out") / "upscaled clip.mp4", nearest_model)


def test_every_frame_is_upscaled_at_its_source_timestamp(clip, rendered_clip):
    source, result = decode_video(clip), decode_video(rendered_clip)
    assert len(result.times) == len(source.times) == 24
    assert result.times == pytest.approx(source.times, abs=1e-6)
    assert (result.width, result.height) == (source.width * 4, source.height * 4)


def test_duration_is_kept(clip, rendered_clip):
    with av.open(str(clip)) as a, av.open(str(rendered_clip)) as b:
        assert b.duration == pytest.approx(a.duration, abs=30_000)  # within 30 ms (microseconds here)


def test_audio_packets_are_copied_unchanged(clip, rendered_clip):
    assert audio_packets(rendered_clip) == audio_packets(clip)


def test_colours_survive_the_round_trip(clip, rendered_clip):
    """The output, downscaled back, matches the input far better than a wrong matrix would."""
    source, result = decode_video(clip), decode_video(rendered_clip)
    assert result.colorspace == 1 and result.color_range == 1  # tagged BT.709, limited, like the source
    correct = [psnr(area_downscale(out, 4), src) for src, out in zip(source.frames, result.frames)]
    wrong = [psnr(area_downscale(_read_as_bt601(f), 4), src) for src, f in zip(source.frames, _frames(rendered_clip))]
    assert min(correct) > 33.0
    assert min(correct) > max(wrong) + 5.0


def test_untagged_sd_video_is_read_as_bt601_and_tagged_so(sd_untagged_clip, nearest_model, tmp_path):
    output = render(sd_untagged_clip, tmp_path / "out.mp4", nearest_model)
    source, result = decode_video(sd_untagged_clip), decode_video(output)
    assert result.colorspace == 6  # SMPTE 170M, i.e. BT.601, written explicitly
    assert min(psnr(area_downscale(o, 4), s) for s, o in zip(source.frames, result.frames)) > 33.0


@pytest.mark.parametrize("segment_seconds", ["6", "0.2"])
def test_variable_frame_rate_stays_variable(vfr_clip, nearest_model, tmp_path, segment_seconds):
    """Also when the render is cut into many segments (encoded apart, joined at the end)."""
    output = render(vfr_clip, tmp_path / "vfr out.mp4", nearest_model, "--segment-seconds", segment_seconds)
    source, result = decode_video(vfr_clip), decode_video(output)
    assert result.times == pytest.approx(source.times, abs=1e-6)
    gaps = np.diff(result.times)
    assert gaps.max() > 2.5 * gaps.min()  # long and short frames both survive


def test_ten_bit_video_stays_ten_bit(ten_bit_clip, nearest_model, tmp_path):
    output = render(ten_bit_clip, tmp_path / "deep.mkv", nearest_model, "--segment-seconds", "0.2")
    source, result = decode_video(ten_bit_clip), decode_video(output)
    assert result.pix_fmt == "yuv420p10le"
    assert len(result.times) == len(source.times)
    assert min(psnr(area_downscale(o, 4), s) for s, o in zip(source.frames, result.frames)) > 33.0


def test_ten_bit_gradients_keep_more_than_eight_bits(ten_bit_clip, nearest_model, tmp_path):
    """A smooth 10-bit ramp through the pipeline keeps values between the 8-bit steps."""
    output = render(ten_bit_clip, tmp_path / "deep.mkv", nearest_model)
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0))
        luma = np.frombuffer(frame.planes[0], np.uint16).reshape(-1, frame.planes[0].line_size // 2)
    values = np.unique(luma[: frame.height, : frame.width])
    assert np.any(values % 4 != 0)  # an 8-bit detour would leave only multiples of 4


def test_mkv_keeps_both_audio_streams_subtitles_chapters_and_rotation(rich_mkv, nearest_model, tmp_path):
    output = render(rich_mkv, tmp_path / "rich out.mkv", nearest_model)
    assert audio_packets(output) == audio_packets(rich_mkv)
    with av.open(str(rich_mkv)) as source, av.open(str(output)) as result:
        assert [s.type for s in result.streams] == ["video", "audio", "audio", "subtitle"]
        assert [s.metadata.get("language") for s in result.streams.audio] == ["eng", "fra"]
        assert [bytes(p) for p in result.demux(subtitles=0) if p.size] == [b"hello", b"world"]
        assert [c["metadata"]["title"] for c in result.chapters()] == ["Start", "End"]
        assert len(source.chapters()) == 2
    assert decode_video(output).rotation == decode_video(rich_mkv).rotation == 90


def test_an_mkv_into_mp4_drops_what_mp4_cannot_hold_and_says_so(rich_mkv, nearest_model, tmp_path):
    result = vidsr(rich_mkv, tmp_path / "out.mp4", "--model", nearest_model, "--quiet")
    assert result.exit_code == 0, result.output
    assert "subtitle stream 3 (subrip) cannot go into" in result.output
    with av.open(str(tmp_path / "out.mp4")) as output:
        assert [s.codec_context.name for s in output.streams.audio] == ["aac", "opus"]


def test_audio_is_transcoded_only_when_the_container_cannot_hold_it(clip, nearest_model, tmp_path):
    output = tmp_path / "out.webm"
    result = vidsr(clip, output, "--model", nearest_model, "--quiet", "--codec", "libvpx-vp9")
    assert result.exit_code == 0, result.output
    assert "audio stream 1 (aac) cannot go into webm as it is; re-encoding it as libopus" in result.output
    with av.open(str(output)) as container:
        (audio,) = container.streams.audio
        assert audio.codec_context.name == "opus"
        seconds = sum(frame.samples for frame in container.decode(audio)) / audio.codec_context.sample_rate
    assert seconds == pytest.approx(1.0, abs=0.05)
    assert len(decode_video(output).times) == 24


def test_output_decodes_completely(rendered_clip):
    with av.open(str(rendered_clip)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 24


def test_a_random_rrdb_x2_model_renders_too(clip, rrdb_x2_model, tmp_path):
    output = render(clip, tmp_path / "x2.mp4", rrdb_x2_model, "--batch", "3")
    result = decode_video(output)
    assert (result.width, result.height) == (128, 96)
    assert len(result.times) == 24


def test_encoder_options_reach_the_encoder(clip, nearest_model, tmp_path):
    output = render(
        clip, tmp_path / "hevc.mkv", nearest_model, "--codec", "libx265", "--crf", "30", "--preset", "ultrafast"
    )
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    assert len(decode_video(output).times) == 24


def test_no_thread_is_left_behind(clip, nearest_model, tmp_path):
    render(clip, tmp_path / "out.mp4", nearest_model)
    assert not [t for t in threading.enumerate() if t.name.startswith("vidsr-")]


def test_no_work_files_are_left_beside_the_output(clip, nearest_model, tmp_path):
    render(clip, tmp_path / "out.mp4", nearest_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def _frames(path: Path):
    with av.open(str(path)) as container:
        yield from container.decode(video=0)


def _read_as_bt601(frame: av.VideoFrame) -> np.ndarray:
    frame.colorspace = 5  # pretend the tag said BT.601: what a player that ignores tags would do
    return to_rgb(frame)
