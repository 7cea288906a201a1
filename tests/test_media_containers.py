"""Every output container keeps the source's timeline: the first frame at the source's pts, and the
sound in sync with the picture, measured on content (a white frame and a click at the same moment).

The render path is the real one without a network: decode, encode into the NUT work file with
B-frames, finalize into .mp4, .mkv, .mov, .ts and .webm, from sources starting at 0 and at 1.5 s,
with AAC (whose priming packet starts before 0) and Opus. AVI, which cannot keep timestamps, is
refused before any work.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from media import SYNC_EVENT, render_like_vidsr, sync_marks, write_sync_clip

from vidsr.errors import OutputError
from vidsr.media.container import check_output_container, container_refusal

SOURCES = {  # name: (start seconds, audio codec)
    "aac from 0.mp4": (Fraction(0), "aac"),
    "aac from 1.5 s.mp4": (Fraction(3, 2), "aac"),
    "opus from 0.mkv": (Fraction(0), "libopus"),
    "aac from 1.5 s.mkv": (Fraction(3, 2), "aac"),
}
OUTPUTS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".ts": "libx264", ".webm": "libvpx-vp9"}
SYNC_SLACK = 0.0015  # seconds: Matroska stores milliseconds, Opus shifts by its pre-skip remainder


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sync sources")
    return {
        name: write_sync_clip(folder / name, start_seconds=start, audio_codec=codec)
        for name, (start, codec) in SOURCES.items()
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sync outputs")
    made: dict[tuple[str, str], Path] = {}

    def render(source: Path, suffix: str) -> Path:
        key = (source.name, suffix)
        if key not in made:
            made[key] = render_like_vidsr(source, folder / f"{source.stem}{suffix}", codec=OUTPUTS[suffix])
        return made[key]

    return render


@pytest.mark.parametrize("suffix", OUTPUTS)
@pytest.mark.parametrize("name", SOURCES)
def test_the_first_frame_keeps_the_source_pts(sources, outputs, name, suffix):
    source, output = sync_marks(sources[name]), sync_marks(outputs(sources[name], suffix))
    assert output.frames == source.frames
    tick = float(output.video_tick)
    assert abs(output.first_video - source.first_video) <= tick
    assert abs(output.flash - source.flash) <= tick
    assert output.flash == pytest.approx(float(SOURCES[name][0] + SYNC_EVENT), abs=tick)


@pytest.mark.parametrize("suffix", OUTPUTS)
@pytest.mark.parametrize("name", SOURCES)
def test_the_sound_stays_in_sync_with_the_picture(sources, outputs, name, suffix):
    source, output = sync_marks(sources[name]), sync_marks(outputs(sources[name], suffix))
    assert abs(source.audio_after_video) < SYNC_SLACK
    assert output.audio_after_video == pytest.approx(source.audio_after_video, abs=SYNC_SLACK)


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_mp4_and_mov_keep_the_source_time_base(sources, outputs, suffix):
    with av.open(str(outputs(sources["aac from 0.mp4"], suffix))) as container:
        assert container.streams.video[0].time_base == Fraction(1, 12288)  # not NUT's 1/49152


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".webm"])
def test_av1_output_can_be_finalized(tmp_path, suffix):
    """The template of an AV1 stream names its decoder (libdav1d), which cannot encode: it used to crash."""
    source = write_sync_clip(tmp_path / "square.mp4", size=(64, 64), frames=18)
    output = render_like_vidsr(source, tmp_path / f"av1{suffix}", codec="libsvtav1")
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name in ("libdav1d", "av1")
    assert sync_marks(output).frames == 18


@pytest.mark.parametrize("name", ["out.avi", "OUT.AVI", "clip.h264", "clip.264", "clip.hevc"])
def test_containers_without_timestamps_are_refused_up_front(tmp_path, name):
    output = tmp_path / name
    with pytest.raises(OutputError) as refused:
        check_output_container(output)
    message = str(refused.value)
    assert message.startswith(f"output {output}: ") and "timestamps" in message
    assert message.endswith("write .mkv or .mp4 instead")
    assert not output.exists()


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv", "out.mov", "out.ts", "out.webm", "out.m4v"])
def test_containers_that_keep_timestamps_pass(tmp_path, name):
    check_output_container(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_an_extension_ffmpeg_does_not_know_is_named(tmp_path):
    with pytest.raises(OutputError, match=r"FFmpeg knows no container for '\.vid'"):
        check_output_container(tmp_path / "out.vid")


@pytest.mark.parametrize(("format_name", "refused"), [("avi", True), ("h264", True), ("mp4", False), ("nut", False)])
def test_container_refusal_names_the_reason(format_name, refused):
    assert (container_refusal(format_name) is not None) == refused


def test_finalize_itself_refuses_avi(sources, tmp_path):
    with pytest.raises(OutputError, match="AVI"):
        render_like_vidsr(sources["aac from 0.mp4"], tmp_path / "late.avi")
    assert not (tmp_path / "late.avi").exists()
