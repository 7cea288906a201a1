"""`vidsr info`: the facts of the generated clips, exactly, and an estimate that says what it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media import ClipSpec, write_clip
from typer.testing import CliRunner

from vidsr.cli.app import app
from vidsr.media import probe

runner = CliRunner()


def info_json(source: Path, *extra: str | Path) -> dict:
    result = runner.invoke(app, ["info", str(source), "--json", *(str(e) for e in extra)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_constant_rate_clip_is_described_exactly(clip, nearest_model):
    facts = info_json(clip, "--model", nearest_model, "--device", "cpu")
    video = facts["video"]
    assert (video["codec"], video["width"], video["height"]) == ("h264", 64, 48)
    assert (video["pix_fmt"], video["bit_depth"]) == ("yuv420p", 8)
    assert video["frame_rate"] == pytest.approx(24) and video["variable"] is False
    assert video["frames"] == 24 and video["duration"] == pytest.approx(1.0)
    assert (video["matrix"], video["range"], video["colour_tagged"]) == ("bt709", "limited", True)
    assert [(a["codec"], a["channels"], a["sample_rate"], a["language"]) for a in facts["audio"]] == [
        ("aac", 2, 48000, "eng")
    ]
    assert facts["others"] == [] and facts["chapters"] == 0
    assert facts["container"].startswith("mov,mp4") and facts["size_bytes"] > 0


def test_a_variable_rate_clip_says_variable_and_counts_every_frame(vfr_clip):
    video = info_json(vfr_clip, "--no-estimate")["video"]
    assert video["variable"] is True
    assert video["frames"] == 18


def test_an_mkv_without_a_frame_count_in_its_header_is_counted(ten_bit_clip):
    video = info_json(ten_bit_clip, "--no-estimate")["video"]
    assert video["frames"] == 12 and video["variable"] is False
    assert (video["pix_fmt"], video["bit_depth"]) == ("yuv420p10le", 10)


def test_audio_subtitles_chapters_and_rotation_are_listed(rich_mkv):
    facts = info_json(rich_mkv, "--no-estimate")
    assert [(a["codec"], a["channels"], a["language"]) for a in facts["audio"]] == [
        ("aac", 2, "eng"),
        ("opus", 1, "fra"),
    ]
    assert [(o["kind"], o["codec"]) for o in facts["others"]] == [("subtitle", "srt")]
    assert facts["chapters"] == 2
    assert abs(facts["video"]["rotation"]) == 90
    assert facts["estimate"] is None


def test_the_estimate_times_real_frames_and_gives_the_output_size(clip, nearest_model):
    estimate = info_json(clip, "--model", nearest_model, "--device", "cpu")["estimate"]
    assert (estimate["output_width"], estimate["output_height"]) == (256, 192)
    assert estimate["model"] == "nearest-x4" and estimate["device"] == "cpu"
    assert estimate["frames"] == 24 and estimate["frames_timed"] >= 3
    assert estimate["seconds_per_frame"] > 0
    assert estimate["seconds"] == pytest.approx(estimate["seconds_per_frame"] * 24)


def test_the_estimate_counts_the_encoder_sharing_the_cpu_with_the_network(clip, nearest_model):
    """The encoder's CPU time is measured and added to the network's. (How large a share it is
    depends on the machine's load: a ratio of two timings, so not asserted.)"""
    estimate = info_json(clip, "--model", nearest_model, "--device", "cpu")["estimate"]
    assert estimate["encoder"] == "libx264 veryfast"  # what a render with this model would use
    assert estimate["encoder_share"] > 0
    assert estimate["seconds_per_frame"] == pytest.approx(
        estimate["network_seconds_per_frame"] * (1 + estimate["encoder_share"])
    )


def test_the_table_tells_a_person_the_same_facts(clip, nearest_model):
    result = runner.invoke(app, ["info", str(clip), "--model", str(nearest_model)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for fact in (
        "h264 64x48 yuv420p (8-bit)",
        "24.000 fps (constant)",
        "24 frames",
        "bt709, limited range",
        "aac, 2 ch, 48000 Hz",
        "256x192",
        "encoding with libx264 veryfast",
        "an estimate",
    ):
        assert fact in result.output


@pytest.mark.parametrize(
    ("make_input", "fragment"),
    [
        (lambda d: d / "nope.mp4", "input not found"),
        (lambda d: (d / "notes.mp4", (d / "notes.mp4").write_text("not a video\n" * 50))[0], "is not a media file"),
        (lambda d: d, "is a folder"),
    ],
    ids=["missing", "not-media", "folder"],
)
def test_bad_input_gets_one_clear_line(tmp_path, make_input, fragment):
    result = runner.invoke(app, ["info", str(make_input(tmp_path)), "--no-estimate"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output


def test_an_unknown_model_is_named(clip):
    result = runner.invoke(app, ["info", str(clip), "--model", "no-such-model"])
    assert result.exit_code == 1 and "Unknown model 'no-such-model'" in result.output


@pytest.mark.parametrize(
    "spec", [ClipSpec(frames=1), ClipSpec(frames=2, fps=1), ClipSpec(frames=3, vfr=True)], ids=["one", "two", "vfr"]
)
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_video_of_one_or_a_few_frames_is_described_and_timed(spec, suffix, nearest_model, tmp_path):
    """The timing starts in the middle; with no frame beginning after it, it starts at the first."""
    short = write_clip(tmp_path / f"short{suffix}", spec)
    facts = info_json(short, "--model", nearest_model, "--device", "cpu")
    assert facts["video"]["frames"] == spec.frames
    assert facts["estimate"]["frames_timed"] >= 1 and facts["estimate"]["seconds"] > 0


def test_the_estimate_is_of_the_render_vidsr_would_run(clip, nearest_model, tmp_path):
    """`vidsr info` plans the job as a render does: the size (rounded for 4:2:0, x1.3 of 64x48 is
    83.2x62.4), the device and the encoder it times are those of the file a render writes."""
    options = ["--model", str(nearest_model), "--scale", "1.3", "--device", "cpu"]
    estimate = info_json(clip, *options)["estimate"]
    output = tmp_path / "out.mp4"
    rendered = runner.invoke(app, ["upscale", str(clip), str(output), *options])
    assert rendered.exit_code == 0, rendered.output
    written = probe(output)
    assert (estimate["output_width"], estimate["output_height"]) == (written.width, written.height) == (84, 62)
    assert f"on {estimate['device']}, {estimate['encoder']};" in rendered.output


def still_clip(path: Path, frames: int = 24) -> Path:
    """One picture shown for a second (a title card, a paused screen), H.264 at 128x96."""
    import av
    from media import pattern

    picture = pattern(0, 128, 96)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_the_estimate_counts_what_reuse_saves_on_frames_that_stand_still(tmp_path, clip, nearest_model):
    """Reuse is measured on frames from the middle: a still picture costs the network a fraction
    of every frame whole (its first frame whole, the rest unchanged), moving pictures up to all."""
    still = info_json(still_clip(tmp_path / "still.mp4"), "--model", nearest_model, "--device", "cpu")["estimate"]
    assert still["reuse_frames"] == 12
    assert still["network_work"] < 0.5
    moving = info_json(clip, "--model", nearest_model, "--device", "cpu")["estimate"]
    assert moving["reuse_frames"] == 12
    assert still["network_work"] < moving["network_work"] <= 1.0
