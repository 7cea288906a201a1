"""A cut-off file is treated the same wherever it is cut: refused before any work, saying how much is
missing and how to go on, or, when the user accepts it, rendered as far as it goes with the shortfall
recorded. Lengths are measured from the video's own start, so a video starting at 10 s is whole.

The sources are 4 s clips (96 frames at 24 fps, AAC), cut at 90, 50 and 10 % of their bytes.
"""

from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from media import ClipSpec, write_clip

from vidsr.errors import InputError
from vidsr.media.container import open_input, rewind, video_stream
from vidsr.media.decode import Segmentation, decode_batches, frames_from
from vidsr.media.probe import probe
from vidsr.media.truncation import Truncation

FRAMES, FPS = 96, 24
CUTS = (90, 50, 10)
REFUSAL = re.compile(
    r"is truncated: its video stops at 0:00:0(\d\.\d{3}) of 0:00:04\.000 \((\d\.\d{3}) s missing\); "
    r"add --accept-truncated to render what is there$"
)
WHOLE = {
    "whole.mp4": ClipSpec(frames=FRAMES),
    "faststart.mp4": ClipSpec(frames=FRAMES, container_options={"movflags": "+faststart"}),
    "whole.mkv": ClipSpec(frames=FRAMES),
    "starts at 10 s.mkv": ClipSpec(frames=FRAMES, start_seconds=Fraction(10)),
    "starts at 10 s.mp4": ClipSpec(frames=FRAMES, start_seconds=Fraction(10)),
    "starts at 10 s.mov": ClipSpec(frames=FRAMES, start_seconds=Fraction(10)),
    "starts at 10 s.ts": ClipSpec(frames=FRAMES, start_seconds=Fraction(10)),
}
CUT_WITH_LENGTH_KEPT = ("faststart.mp4", "whole.mkv", "starts at 10 s.mkv")  # their header survives a cut


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every whole file, and "<name> cut <percent>" for each cut."""
    folder = tmp_path_factory.mktemp("truncation")
    made: dict[str, Path] = {}
    for name, spec in WHOLE.items():
        whole = made[name] = write_clip(folder / name, spec)
        data = whole.read_bytes()
        for percent in CUTS:
            cut = made[f"{name} cut {percent}"] = folder / f"cut {percent} {name}"
            cut.write_bytes(data[: len(data) * percent // 100])
    return made


def frames_decoded(info, **options) -> list[int]:
    return [pts for batch in decode_batches(info, batch_size=16, **options) for pts in batch.pts]


@pytest.mark.parametrize("name", WHOLE)
def test_a_whole_file_is_whole_wherever_its_video_starts(files, name):
    info = probe(files[name])
    assert info.duration == pytest.approx(4.0, abs=0.01)
    assert info.truncated_at is None and info.truncation is None
    assert info.frames == FRAMES
    assert len(frames_decoded(info)) == FRAMES


@pytest.mark.parametrize("percent", CUTS)
@pytest.mark.parametrize("name", CUT_WITH_LENGTH_KEPT)
def test_a_cut_file_is_refused_before_any_work_saying_how_much_is_missing(files, name, percent):
    path = files[f"{name} cut {percent}"]
    with pytest.raises(InputError) as refused:
        probe(path)
    message = str(refused.value)
    assert message.startswith(str(path))
    found = REFUSAL.search(message)
    assert found, message
    there, missing = float(found.group(1)), float(found.group(2))
    assert there + missing == pytest.approx(4.0, abs=0.002)
    assert there == pytest.approx(4.0 * percent / 100, abs=0.5)  # the bytes are mostly video


@pytest.mark.parametrize("percent", CUTS)
@pytest.mark.parametrize("name", CUT_WITH_LENGTH_KEPT)
def test_an_accepted_cut_file_renders_what_is_there_and_records_the_shortfall(files, name, percent):
    info = probe(files[f"{name} cut {percent}"], accept_truncated=True)
    assert info.truncated_at is not None and 0 < info.truncated_at < 3.9
    assert info.available_duration == info.truncated_at and info.duration == pytest.approx(4.0, abs=0.01)
    assert info.truncation == Truncation(info.path, info.truncated_at, info.duration)
    assert not info.frames_exact and info.frames == round(info.truncated_at * FPS)
    heard: list[Truncation] = []
    pts = frames_decoded(info, accept_truncated=True, on_truncated=heard.append)
    whole = frames_decoded(probe(files[name]))
    # The frames there are, each at its own time (with B-frames, a cut may take one before the last).
    assert pts == sorted(pts) and set(pts) <= set(whole)
    assert pts[:-2] == whole[: len(pts) - 2]
    assert abs(len(pts) - info.truncated_at * FPS) <= 1
    assert heard == []  # probe already said so: not reported twice


@pytest.mark.parametrize("name", CUT_WITH_LENGTH_KEPT)
def test_an_accepted_cut_file_resumes_like_an_uninterrupted_render(files, name):
    """A cut Matroska file has no index, and its video may start at 10 s: seeking must still work."""
    info = probe(files[f"{name} cut 90"], accept_truncated=True)
    segmentation = Segmentation(start_pts=info.start_pts, time_base=info.time_base, seconds=Fraction(1))
    whole = list(decode_batches(info, batch_size=8, segmentation=segmentation))
    for first_segment in (1, 3):
        first_index = sum(len(b) for b in whole if b.segment < first_segment)
        resumed = decode_batches(
            info, batch_size=8, segmentation=segmentation, first_segment=first_segment, first_index=first_index
        )
        assert [(b.pts, b.first_index) for b in resumed] == [
            (b.pts, b.first_index) for b in whole if b.segment >= first_segment
        ]


@pytest.mark.parametrize("name", ["whole.mp4", "starts at 10 s.mp4", "starts at 10 s.mov"])
@pytest.mark.parametrize("percent", CUTS)
def test_an_mp4_cut_before_its_index_cannot_be_opened_and_says_so(files, name, percent):
    with pytest.raises(InputError, match="is not a media file vidsr can read, or it is truncated"):
        probe(files[f"{name} cut {percent}"], accept_truncated=True)


def test_rewinding_a_cut_late_starting_matroska_file_lands_on_its_first_packet(files):
    """Where seek(0) fails with "Operation not permitted" (no index, video after 0 s)."""
    path = files["starts at 10 s.mkv cut 50"]
    info = probe(path, accept_truncated=True)
    with open_input(path) as container:
        stream = video_stream(container, info.video_index)
        next(container.demux(stream))
        for _ in range(2):
            rewind(container, stream)
            first = next(frames_from(container, stream, info, None, accept_truncated=True))
            assert first.pts == info.start_pts == 10_000


@pytest.mark.parametrize("name", ["whole.mp4", "starts at 10 s.mkv"])
def test_a_shortfall_only_decoding_can_tell_is_refused_at_the_end_or_reported(files, name):
    """As if probe could not read the end ahead: the file says 5 s, the video decodes 4 s."""
    info = replace(probe(files[name]), duration=5.0)
    with pytest.raises(InputError) as refused:
        frames_decoded(info)
    message = str(refused.value)
    assert message.startswith(f"{info.path} is truncated: its video stops at 0:00:0")
    assert re.search(r"at 0:00:0(4\.000|3\.999) of 0:00:05\.000 \((1\.000|1\.001) s missing\)", message), message
    assert message.endswith("; add --accept-truncated to render what is there")
    heard: list[Truncation] = []
    assert len(frames_decoded(info, accept_truncated=True, on_truncated=heard.append)) == FRAMES
    assert [(round(t.video_seconds, 2), t.stated_seconds) for t in heard] == [(4.0, 5.0)]
    assert heard[0].warning().endswith(" s missing); rendering what is there")
