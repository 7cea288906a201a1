"""Interlaced video: the field order is read, and deinterlacing gives whole frames at the source's own times.

The sources film a bar moving fast to the right with an interlaced camera (each frame's second
field half a frame later), field-coded in H.264 and MPEG-2, top or bottom field first. Without
deinterlacing the frames comb; with it they show the moment of their first field, one frame for
each source frame, at the source's pts, from the start or from any resume point.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import combing, moving_bar, write_interlaced

from vidsr.media.container import open_input, video_stream
from vidsr.media.decode import Segmentation, decode_batches, frames_from
from vidsr.media.probe import probe
from vidsr.planes import FrameBatch

FPS, SIZE = 25, 64
SOURCES = {  # file name: (codec, field order)
    "h264 tff.mp4": ("libx264", "tff"),
    "h264 bff.mkv": ("libx264", "bff"),
    "mpeg2 tff.ts": ("mpeg2video", "tff"),
    "mpeg2 bff.mkv": ("mpeg2video", "bff"),
}


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("interlaced")
    return {
        name: write_interlaced(folder / name, codec=codec, order=order, fps=FPS, size=SIZE)
        for name, (codec, order) in SOURCES.items()
    }


@pytest.fixture(scope="module")
def long_interlaced(tmp_path_factory) -> Path:
    """4 s with a keyframe every 5 frames, so resuming seeks into the middle."""
    path = tmp_path_factory.mktemp("interlaced long") / "long tff.mkv"
    return write_interlaced(path, frames=100, fps=FPS, size=32, keyframe_every=5)


def source_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def decoded(path: Path, **options) -> tuple[list[np.ndarray], list[int]]:
    """Luma of every frame decode_batches gives, and their pts."""
    batches = list(decode_batches(probe(path), batch_size=7, **options))
    return luma_and_pts(batches)


def luma_and_pts(batches: list[FrameBatch]) -> tuple[list[np.ndarray], list[int]]:
    return [luma.copy() for batch in batches for luma in batch.planes[0]], [p for b in batches for p in b.pts]


@pytest.mark.parametrize("name", SOURCES)
def test_probe_reads_the_field_order(interlaced, name):
    info = probe(interlaced[name])
    assert (info.field_order, info.interlaced) == (SOURCES[name][1], True)


@pytest.mark.parametrize("fixture", ["clip", "vfr_clip", "ten_bit_clip"])
def test_progressive_video_is_progressive(request, fixture):
    info = probe(request.getfixturevalue(fixture))
    assert (info.field_order, info.interlaced) == ("progressive", False)


@pytest.mark.parametrize("name", SOURCES)
def test_deinterlacing_removes_the_combs_and_keeps_every_frame_at_its_pts(interlaced, name):
    path = interlaced[name]
    combed, combed_pts = decoded(path)
    whole, whole_pts = decoded(path, deinterlace=True)
    assert np.mean([combing(luma) for luma in combed]) > 5
    assert max(combing(luma) for luma in whole) < 0.5
    assert whole_pts == combed_pts == source_pts(path)
    assert len(whole) == len(combed) == 25


@pytest.mark.parametrize("name", SOURCES)
def test_a_deinterlaced_frame_shows_the_moment_of_its_first_field(interlaced, name):
    """Read in the wrong field order, each frame would show the bar half a frame later."""
    lumas, _ = decoded(interlaced[name], deinterlace=True)
    for index, luma in enumerate(lumas[1:-1], start=1):
        at_first_field = moving_bar(index / FPS, SIZE, SIZE).astype(int)
        at_second_field = moving_bar((index + 0.5) / FPS, SIZE, SIZE).astype(int)
        error = np.abs(luma.astype(int) - at_first_field).mean()
        assert error < np.abs(luma.astype(int) - at_second_field).mean() / 2


@pytest.mark.parametrize("fixture", ["clip", "vfr_clip", "ten_bit_clip"])
def test_progressive_frames_pass_through_deinterlacing_bit_for_bit(request, fixture):
    path = request.getfixturevalue(fixture)
    info = probe(path)
    plain = list(decode_batches(info, batch_size=5))
    filtered = list(decode_batches(info, batch_size=5, deinterlace=True))
    assert [b.pts for b in filtered] == [b.pts for b in plain]
    for ours, theirs in zip(filtered, plain):
        assert all(np.array_equal(a, b) for a, b in zip(ours.planes, theirs.planes))


@pytest.mark.parametrize("first_segment", [1, 3, 9])
def test_a_resumed_render_deinterlaces_exactly_like_an_uninterrupted_one(long_interlaced, first_segment):
    info = probe(long_interlaced)
    segmentation = Segmentation(start_pts=info.start_pts, time_base=info.time_base, seconds=Fraction(2, 5))
    whole = list(decode_batches(info, batch_size=4, segmentation=segmentation, deinterlace=True))
    first_index = sum(len(b) for b in whole if b.segment < first_segment)
    resumed = list(
        decode_batches(
            info,
            batch_size=4,
            segmentation=segmentation,
            first_segment=first_segment,
            first_index=first_index,
            deinterlace=True,
        )
    )
    expected = [b for b in whole if b.segment >= first_segment]
    assert [b.pts for b in resumed] == [b.pts for b in expected]
    assert [b.first_index for b in resumed] == [b.first_index for b in expected]
    for ours, theirs in zip(resumed, expected):
        assert all(np.array_equal(a, b) for a, b in zip(ours.planes, theirs.planes))


@pytest.mark.parametrize("index", [0, 1, 37, 60, 99])
def test_a_single_frame_found_by_seeking_is_deinterlaced_as_in_the_whole_run(long_interlaced, index):
    """What ``vidsr frames`` does: seek to one frame and take it."""
    info = probe(long_interlaced)
    lumas, pts = decoded(long_interlaced, deinterlace=True)
    with open_input(long_interlaced) as container:
        stream = video_stream(container, info.video_index)
        frame = next(frames_from(container, stream, info, pts[index], deinterlace=True))
    assert frame.pts == pts[index]
    assert np.array_equal(frame.to_ndarray()[:32], lumas[index])
