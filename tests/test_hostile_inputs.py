"""The inputs that once came out wrong with exit 0, through the whole command: `vidsr IN OUT`.

Each class is rendered by the real pipeline (PyAV, a real SRVGGNetCompact that enlarges by nearest
neighbour, the encoder, the final mux), then the output is read back as a player would read it.
The media layer's own tests (test_media_*) cover each class's cases in depth; these prove the
command carries the media layer's answers all the way to the file and to the user.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import ClipSpec, Track, combing, write_clip, write_interlaced, write_tracks
from typer.testing import CliRunner

from vidsr.cli.app import app, with_default_command
from vidsr.media.aspect import display_aspect_ratio

runner = CliRunner()


def vidsr(*args: str | Path):
    return runner.invoke(app, with_default_command([str(a) for a in args]), env={"COLUMNS": "300"})


def render(source: Path, output: Path, model: Path, *options: str | Path):
    return vidsr(source, output, "--model", model, "--segment-seconds", "0.5", "-f", *options)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def video_of(path: Path) -> tuple[int, int, Fraction, int, list[float]]:
    """Width, height, display aspect, frames and frame times of the video a player shows."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(frame.time) for frame in container.decode(stream)]
        width, height = stream.codec_context.width, stream.codec_context.height
        shape = display_aspect_ratio(width, height, Fraction(stream.sample_aspect_ratio or 1))
        return width, height, shape, len(times), times


# ---- 1. which stream is the video ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tracks", "attached"),
    [
        ("cover first.mp4", [Track("cover"), Track(frames=48)], False),
        ("png track first.mp4", [Track("still", codec="png", width=96, height=96), Track(frames=48)], False),
        ("jpeg track first.mkv", [Track("still", width=128, height=128), Track(frames=48)], False),
        ("attached cover.mkv", [Track(frames=48)], True),
    ],
)
def test_the_real_video_is_upscaled_not_the_picture_before_it(folder, nearest_model, name, tracks, attached):
    source = write_tracks(folder / name, tracks, attached_jpeg=attached)
    result = render(source, folder / f"{name}.out.mp4", nearest_model)
    assert result.exit_code == 0, result.output
    width, height, _, frames, _ = video_of(folder / f"{name}.out.mp4")
    assert (width, height, frames) == (256, 192, 48)
    assert "is left out of the output" in result.output and "--stream" in result.output


def test_stream_chooses_another_video(folder, nearest_model):
    source = write_tracks(
        folder / "two angles.mkv", [Track("moving", frames=24, default=True), Track(width=96, height=64, frames=12)]
    )
    result = render(source, folder / "angle 2.mp4", nearest_model, "--stream", "1")
    assert result.exit_code == 0, result.output
    assert video_of(folder / "angle 2.mp4")[:4] == (384, 256, Fraction(3, 2), 12)


# ---- 2. pixel aspect ratio -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "mov"])
def test_an_anamorphic_source_is_shown_at_its_shape_in_every_container(folder, nearest_model, suffix):
    source = write_clip(folder / f"dvd.{suffix}", ClipSpec(frames=12, sample_aspect_ratio=Fraction(4, 3), audio=[]))
    output = folder / f"dvd out.{suffix}"
    assert render(source, output, nearest_model).exit_code == 0
    assert video_of(output)[:4] == (256, 192, Fraction(16, 9), 12)


def test_a_target_width_is_of_the_picture_as_shown(folder, nearest_model):
    """64x48 shown at 16:9: --width 320 means 320 shown, so 320x180 with square pixels."""
    source = write_clip(folder / "dvd wide.mp4", ClipSpec(frames=12, sample_aspect_ratio=Fraction(4, 3), audio=[]))
    output = folder / "dvd 320.mp4"
    result = render(source, output, nearest_model, "--width", "320")
    assert result.exit_code == 0, result.output
    assert video_of(output)[:4] == (320, 180, Fraction(16, 9), 12)


# ---- 3. interlaced video -------------------------------------------------------------------------


def luma_of(path: Path, *, every: int = 1) -> list[np.ndarray]:
    """Each frame's luma; ``every`` 4: one line and column in four, undoing a x4 nearest enlargement."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray")[::every, ::every] for frame in container.decode(video=0)]


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_interlaced_video_is_deinterlaced_said_and_flagged_progressive(folder, nearest_model, order):
    source = write_interlaced(folder / f"{order}.mp4", order=order, frames=25)
    output = folder / f"{order} out.mp4"
    result = render(source, output, nearest_model)
    assert result.exit_code == 0, result.output
    assert "interlaced" in result.output and "deinterlacing" in result.output
    kept = render(source, folder / f"{order} fields.mp4", nearest_model, "--deinterlace", "off")
    assert kept.exit_code == 0 and "the network sees combed frames" in kept.output
    whole, combed = luma_of(output, every=4), luma_of(folder / f"{order} fields.mp4", every=4)
    assert len(whole) == len(combed) == 25
    assert np.mean([combing(f) for f in whole]) < np.mean([combing(f) for f in combed]) / 3
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0))
        assert not frame.interlaced_frame
        assert container.streams.video[0].codec_context.field_order in (0, 1)  # unknown or progressive
    assert video_of(output)[4] == video_of(source)[4]  # every frame at its own time


def test_deinterlace_takes_only_its_choices(folder, clip, nearest_model):
    result = render(clip, folder / "never.mp4", nearest_model, "--deinterlace", "yes")
    assert result.exit_code != 0 and "auto, on or off" in result.output
    assert not (folder / "never.mp4").exists()


# ---- 4. a cut-off input --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["mkv", "faststart.mp4"])
def test_a_file_cut_near_its_end_is_refused_unless_accepted_and_then_warned(folder, nearest_model, suffix):
    options = {"movflags": "+faststart"} if suffix.endswith("mp4") else {}
    whole = write_clip(folder / f"long.{suffix}", ClipSpec(frames=48, container_options=options)).read_bytes()
    cut = folder / f"cut 90.{suffix}"
    cut.write_bytes(whole[: len(whole) * 9 // 10])
    output = folder / f"cut out {suffix}.mp4"

    refused = render(cut, output, nearest_model)
    assert refused.exit_code == 1 and "truncated" in refused.output and "--accept-truncated" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not output.exists()

    accepted = render(cut, output, nearest_model, "--accept-truncated")
    assert accepted.exit_code == 0, accepted.output
    assert "truncated" in accepted.output and "missing" in accepted.output
    frames = video_of(output)[3]
    assert 24 <= frames < 48


# ---- 5. timestamps in other containers -----------------------------------------------------------


@pytest.mark.parametrize("suffix", ["mkv", "mov", "mp4"])
def test_every_output_container_keeps_the_source_frame_times(folder, clip, nearest_model, suffix):
    """The clip is mp4 with AAC (whose priming delay once shifted mkv video by 21 ms)."""
    output = folder / f"times.{suffix}"
    assert render(clip, output, nearest_model).exit_code == 0
    source_times, output_times = video_of(clip)[4], video_of(output)[4]
    assert len(output_times) == len(source_times)
    assert max(abs(a - b) for a, b in zip(source_times, output_times)) <= 0.001


def test_avi_which_has_no_timestamps_is_refused_before_any_work(folder, clip, nearest_model):
    result = render(clip, folder / "old.avi", nearest_model)
    assert result.exit_code == 1 and "avi" in result.output.lower()
    assert not (folder / "old.avi").exists()


# ---- what vidsr info and vidsr frames say of the same inputs -------------------------------------


def test_info_names_the_left_out_streams_the_shape_and_the_field_order(folder):
    cover = write_tracks(folder / "info cover.mp4", [Track("cover"), Track()])
    dvd = write_clip(folder / "info dvd.mkv", ClipSpec(frames=6, sample_aspect_ratio=Fraction(4, 3), audio=[]))
    fields = write_interlaced(folder / "info tff.mp4", order="tff", frames=10)
    assert "left out" in (told := vidsr("info", cover, "--no-estimate").output) and "cover art" in told
    assert "pixels 4:3, shown 16:9" in vidsr("info", dvd, "--no-estimate").output
    assert "interlaced (top field first)" in vidsr("info", fields, "--no-estimate").output


def test_info_describes_a_cut_off_file_instead_of_refusing_it(folder):
    whole = write_clip(folder / "info long.mkv", ClipSpec(frames=48)).read_bytes()
    cut = folder / "info cut.mkv"
    cut.write_bytes(whole[: len(whole) * 9 // 10])
    result = vidsr("info", cut, "--no-estimate")
    assert result.exit_code == 0, result.output
    assert "truncated" in result.output and "missing" in result.output


def test_frames_from_an_interlaced_video_are_the_deinterlaced_frames_a_render_makes(folder, nearest_model):
    source = write_interlaced(folder / "frames tff.mp4", order="tff", frames=25)
    rendered = folder / "frames tff out.mkv"
    assert render(source, rendered, nearest_model, "--crf", "0", "--pix-fmt", "yuv444p").exit_code == 0
    result = vidsr("frames", source, folder / "pngs", "--index", "7", "--upscaled", "--model", nearest_model)
    assert result.exit_code == 0, result.output
    from PIL import Image

    (png,) = (folder / "pngs").glob("frame_000007_*_upscaled.png")
    extracted = np.asarray(Image.open(png).convert("L"), dtype=np.int16)
    assert combing(extracted.astype(np.uint8)) < 2
    in_render = luma_of(rendered)[7].astype(np.int16)
    assert np.abs(extracted - in_render).mean() < 2  # the same frame (PNG RGB vs the encoder's luma)
