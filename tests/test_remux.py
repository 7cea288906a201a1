"""Joining separately encoded segments: decode timestamps valid across the joins."""

from __future__ import annotations

from vidsr.media.remux import DtsSchedule


def x264_like(first: int, frames: int, step: int = 10) -> list[int]:
    """Presentation times in decode order for an IDR then groups of P B B (two reordered frames)."""
    order = [0]
    for start in range(1, frames, 3):
        group = [i for i in (start + 2, start, start + 1) if i < frames]
        order += group
    return [first + i * step for i in order]


def schedule(segments: list[list[int]]) -> list[int]:
    plan = DtsSchedule(segments)
    return [plan.next_dts() for segment in segments for _ in segment]


def test_dts_rises_strictly_and_never_passes_pts_across_joins():
    segments = [x264_like(0, 10), x264_like(100, 10), x264_like(200, 7)]
    pts = [p for segment in segments for p in segment]
    dts = schedule(segments)
    assert all(a < b for a, b in zip(dts, dts[1:]))
    assert all(d <= p for d, p in zip(dts, pts))


def test_the_delay_is_the_deepest_reordering_of_any_segment():
    assert DtsSchedule([x264_like(0, 10)]).delay == 1
    assert DtsSchedule([[0, 10, 20], [30, 40, 50]]).delay == 0
    assert DtsSchedule([[0, 30, 10, 20]]).delay == 1  # P B B
    assert DtsSchedule([[0, 40, 20, 10, 30]]).delay == 2  # P, then a B that others reference: a pyramid


def test_without_reordering_dts_equals_pts():
    segments = [[0, 10, 20], [30, 45, 50]]  # variable frame rate, no B-frames
    assert schedule(segments) == [0, 10, 20, 30, 45, 50]


def test_the_first_frames_get_decode_times_before_the_first_pts():
    dts = schedule([x264_like(1000, 7)])
    assert dts[0] < 1000 and dts[0] == 1000 - 10  # one frame interval before, as an encoder writes
