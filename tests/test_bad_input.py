"""Bad input gets one clear line, a non-zero exit, no traceback, and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import ClipSpec, write_clip
from PIL import Image
from typer.testing import CliRunner

from vidsr.cli.app import app, with_default_command
from vidsr.errors import OutputError
from vidsr.media.encode import EncodeSettings, VideoWriter
from vidsr.media.probe import probe
from vidsr.planes import ColourSpec, OutputBatch

runner = CliRunner()


def vidsr(*args: str | Path):
    return runner.invoke(app, with_default_command([str(a) for a in args]))


def assert_refused(result, *fragments: str) -> None:
    """Exit 1, one line on stderr naming the problem, and no traceback."""
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.startswith("error: ")
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Path]:
    """Cut-off and scribbled-over copies of a 2 s clip, in mp4 and mkv."""
    folder = tmp_path_factory.mktemp("damaged")
    files = {}
    rng = np.random.default_rng(7)
    for suffix in ("mp4", "mkv"):
        whole = write_clip(folder / f"whole.{suffix}", ClipSpec(frames=48)).read_bytes()
        files[f"truncated.{suffix}"] = folder / f"truncated.{suffix}"
        files[f"truncated.{suffix}"].write_bytes(whole[: int(len(whole) * 0.6)])
        scribbled = bytearray(whole)
        middle = len(scribbled) // 2
        scribbled[middle : middle + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
        files[f"corrupt.{suffix}"] = folder / f"corrupt.{suffix}"
        files[f"corrupt.{suffix}"].write_bytes(bytes(scribbled))
    return files


def test_a_missing_input(tmp_path, nearest_model):
    assert_refused(vidsr(tmp_path / "nope.mp4", tmp_path / "out.mp4"), "input not found", "nope.mp4")


def test_a_file_that_is_not_media(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 100)
    assert_refused(vidsr(text, tmp_path / "out.mp4"), "notes.mp4 is not a media file")


def test_an_mp4_cut_off_before_its_index(damaged, tmp_path):
    assert_refused(vidsr(damaged["truncated.mp4"], tmp_path / "out.mp4"), "truncated.mp4", "truncated")


def test_an_mkv_cut_off_says_where_the_video_stops(damaged, tmp_path):
    result = vidsr(damaged["truncated.mkv"], tmp_path / "out.mp4")
    assert_refused(
        result, "truncated.mkv is truncated: its video stops at 0:00:01.", "of 0:00:02.000 (0.", "s missing)"
    )


@pytest.mark.parametrize("name", ["corrupt.mp4", "corrupt.mkv"])
def test_a_corrupt_file_is_named_with_the_time_of_the_damage(damaged, nearest_model, tmp_path, name):
    output = tmp_path / "out.mp4"
    result = vidsr(damaged[name], output, "--model", nearest_model, "--quiet")
    assert_refused(result, name, "corrupt", "0:00:0")
    assert list(tmp_path.iterdir()) == []  # no half-written output, no work folder


def test_audio_only_input(tmp_path):
    source = tmp_path / "song.m4a"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        for start in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert_refused(vidsr(source, tmp_path / "out.mp4"), "song.m4a has no video stream (found: audio)")


def test_an_existing_output_is_refused_and_left_untouched(clip, nearest_model, tmp_path):
    output = tmp_path / "precious.mp4"
    output.write_bytes(b"the user's own file")
    assert_refused(vidsr(clip, output, "--model", nearest_model), "already exists", "--force")
    assert output.read_bytes() == b"the user's own file"


def test_force_overwrites_an_existing_output(clip, nearest_model, tmp_path):
    output = tmp_path / "old.mp4"
    output.write_bytes(b"old")
    result = vidsr(clip, output, "--model", nearest_model, "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert probe(output).width == 256


def test_the_output_cannot_be_the_input_even_with_force(clip, tmp_path):
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(clip.read_bytes())
    assert_refused(vidsr(copy, copy, "--force"), "is the input file")
    assert_refused(vidsr(copy, tmp_path / "." / "clip.mp4", "--force"), "is the input file")
    assert copy.read_bytes() == clip.read_bytes()


def test_an_output_folder_that_does_not_exist(clip, tmp_path):
    assert_refused(vidsr(clip, tmp_path / "missing" / "out.mp4"), "output folder", "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_folder_that_cannot_be_written(clip, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert_refused(vidsr(clip, locked / "out.mp4"), "not writable")


def test_an_output_extension_ffmpeg_does_not_know(clip, tmp_path):
    assert_refused(vidsr(clip, tmp_path / "out.notavideo"), "no container for '.notavideo'")


def test_a_container_that_cannot_hold_the_codec(clip, tmp_path):
    assert_refused(vidsr(clip, tmp_path / "out.webm"), "cannot hold libx264 video")


def test_an_unknown_model_name_lists_the_available_ones(clip, tmp_path):
    assert_refused(vidsr(clip, tmp_path / "out.mp4", "--model", "esrgan-9000"), "esrgan-9000", "realesr-animevideov3")


def test_a_weight_file_of_unknown_layout_says_what_it_found(clip, tmp_path):
    weights = tmp_path / "mystery.pth"
    torch.save({"encoder.layer1.weight": torch.zeros(3, 3)}, weights)
    assert_refused(vidsr(clip, tmp_path / "out.mp4", "--model", weights), "encoder.layer1.weight")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scale", "20"], "choose a scale from 1 to 16"),
        (["--scale", "0.5"], "choose a scale from 1 to 16"),
        (["--scale", "2", "--width", "640"], "choose one"),
        (["--height", "4000"], "vidsr enlarges from x1 to x16"),
    ],
)
def test_a_size_vidsr_cannot_make(clip, nearest_model, tmp_path, options, message):
    assert_refused(vidsr(clip, tmp_path / "out.mp4", "--model", nearest_model, *options), message)


@pytest.mark.parametrize(
    ("tile", "message"),
    [("1", "costs over 9 times the work"), ("31", "give 32 to 16384"), ("20000", "more than any frame")],
)
@pytest.mark.parametrize("command", ["upscale", "frames", "image"])
def test_a_tile_size_that_cannot_work_is_refused_before_any_work(clip, nearest_model, tmp_path, command, tile, message):
    """--tile 1 used to be accepted and run for days: each tile carries 32 pixels of context on every side."""
    if command == "upscale":
        arguments: list[str | Path] = [clip, tmp_path / "out.mp4"]
    elif command == "frames":
        arguments = ["frames", clip, tmp_path / "shots", "--upscaled"]
    else:
        still = tmp_path / "still.png"
        Image.new("RGB", (40, 30), (200, 30, 90)).save(still)
        arguments = ["image", still, tmp_path / "big.png"]
    assert_refused(vidsr(*arguments, "--model", nearest_model, "--tile", tile), f"--tile {tile}", message)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "big.png").exists()


def test_alpha_needs_two_models_and_two_models_need_alpha(clip, nearest_model, tmp_path):
    assert_refused(vidsr(clip, tmp_path / "a.mp4", "--model", nearest_model, "--alpha", "0.5"), "give --model twice")
    assert_refused(vidsr(clip, tmp_path / "b.mp4", "--model", nearest_model, "--model", nearest_model), "add --alpha")


def test_an_unavailable_device(clip, nearest_model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_refused(vidsr(clip, tmp_path / "out.mp4", "--model", nearest_model, "--device", "cuda"), "no CUDA GPU")


def test_a_full_disk_is_an_output_error_not_a_crash():
    colour = ColourSpec(matrix="bt709", full_range=False)
    writer = VideoWriter(
        Path("/dev/full"),
        width=64,
        height=48,
        time_base=Fraction(1, 24),
        frame_rate=Fraction(24),
        settings=EncodeSettings(),
        pix_fmt="yuv420p",
        colour=colour,
    )
    noise = np.random.default_rng(0).integers(0, 256, (3, 4, 48, 64), dtype=np.uint8)
    planes = (noise[0], noise[1, :, :24, :32], noise[2, :, :24, :32])
    with pytest.raises(OutputError, match="No space left on device"):
        for start in range(0, 80, 4):
            writer.write(OutputBatch(planes=planes, pts=tuple(range(start, start + 4)), first_index=start))
        writer.close()


def test_the_real_command_prints_no_traceback(tmp_path):
    """Through the installed entry point, as a user runs it, with stderr not a terminal."""
    process = subprocess.run(
        [sys.executable, "-m", "vidsr", str(tmp_path / "missing file.mp4"), str(tmp_path / "out.mp4")],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 1
    assert process.stderr.strip() == f"error: input not found: {tmp_path / 'missing file.mp4'}"
    assert process.stdout == ""


def test_usage_errors_exit_2(tmp_path):
    result = vidsr(tmp_path / "in.mp4")
    assert result.exit_code == 2
