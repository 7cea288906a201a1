"""Where a video's frames are, and which of them a user asked for.

Which frame is "at" a time is the one on screen then: the last frame whose timestamp is at or
before it (with half a millisecond of slack, so a time copied from a file name, rounded to the
millisecond, finds that same frame again).

Frame numbers need to know how many frames come before. When the file's header proves a
constant frame rate (a frame count and a duration that agree exactly, as MP4 and MOV
state them) they are computed, and every decoded frame is checked against the prediction.
Otherwise (Matroska, variable frame rate) they are counted from the packet headers up to
the last frame wanted: no decoding, but the file is read up to there.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.container
import av.video.stream

from vidsr.errors import InputError, SettingsError
from vidsr.media import VideoInfo, frames_from, rewind, show_time

__all__ = [
    "DEFAULT_COUNT",
    "TIME_SLACK",
    "FrameRef",
    "PredictionMissed",
    "Selection",
    "Timeline",
    "decode_at",
    "reading_limits",
    "resolve",
]

DEFAULT_COUNT = 5  # frames written when nothing is selected, spread over the video
SEEK_AHEAD_SECONDS = 3  # the next wanted frame is further ahead than this: seek, don't decode forward
TIME_SLACK = Fraction(1, 2000)  # half a millisecond: times in file names are rounded to the millisecond
_REORDER_SLACK_PACKETS = 32  # packets read past the target: more than any codec reorders (H.264: 16)


@dataclass(frozen=True, order=True)
class FrameRef:
    """One frame: its number (0 = first), its pts, and its time from the first frame (seconds)."""

    pts: int
    index: int
    seconds: Fraction = field(compare=False)


class Timeline:
    """Where a video's frames are: computed from a proven constant rate, or read from packets.

    ``frame_pts`` (read) holds the sorted timestamps of the first frames, possibly not all
    of them (``complete`` says); ``step`` (constant) is the pts between two frames, and then
    ``frame_pts`` is empty.
    """

    def __init__(
        self,
        info: VideoInfo,
        *,
        step: int | None = None,
        frame_pts: list[int] | None = None,
        complete: bool = True,
    ) -> None:
        self.info = info
        self.time_base = info.time_base
        self.start_pts = info.start_pts
        self.step = step
        self.frame_pts: list[int] = frame_pts or []
        self.complete = complete

    @property
    def constant(self) -> bool:
        return self.step is not None

    @property
    def frames(self) -> int:
        """How many frames the video has (or how many were read, if not ``complete``)."""
        return self.info.frames if self.step is not None else len(self.frame_pts)

    @classmethod
    def proven_constant(cls, stream: av.video.stream.VideoStream, info: VideoInfo) -> Timeline | None:
        """A computed timeline if the header proves a constant rate: frames x step == duration."""
        rate = stream.base_rate
        if not (info.frames_exact and rate and stream.duration and info.frames):
            return None
        step = 1 / (Fraction(rate) * info.time_base)
        if step.denominator != 1 or stream.frames * step != stream.duration:
            return None
        return cls(info, step=int(step))

    @classmethod
    def read(
        cls,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        info: VideoInfo,
        *,
        until_pts: int | None = None,
        until_count: int | None = None,
    ) -> Timeline:
        """Timestamps from the packet headers (demuxing only), far enough to hold the frame at
        ``until_pts`` and ``until_count`` frames; to the end of the file if neither is given."""
        rewind(container, stream)
        found: list[int] = []
        past_target = 0
        complete = True
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None or pts < info.start_pts:
                continue
            found.append(pts)
            if past_target or (
                (until_pts is None or pts > until_pts) and (until_count is None or len(found) >= until_count)
            ):
                past_target += 1  # B-frames come out of order: read on a little before sorting
                if past_target > _REORDER_SLACK_PACKETS:
                    complete = False
                    break
        rewind(container, stream)
        return cls(info, frame_pts=sorted(found), complete=complete)

    def seconds_of(self, pts: int) -> Fraction:
        return (pts - self.start_pts) * self.time_base

    def at_index(self, index: int) -> FrameRef:
        if index < 0 or (self.complete and index >= self.frames):
            raise SettingsError(f"--index {index}: the video has {self.frames} frames (0 to {self.frames - 1})")
        pts = self.start_pts + index * self.step if self.step is not None else self.frame_pts[index]
        return FrameRef(pts, index, self.seconds_of(pts))

    def at_time(self, seconds: Fraction) -> FrameRef:
        """The frame on screen at ``seconds`` from the first frame."""
        limit = self.start_pts + math.floor((seconds + TIME_SLACK) / self.time_base)
        if self.step is not None:
            index = min((limit - self.start_pts) // self.step, self.frames - 1)
        else:
            index = bisect.bisect_right(self.frame_pts, limit) - 1
        return self.at_index(max(index, 0))

    def between(self, start: Fraction, end: Fraction) -> list[FrameRef]:
        """Every frame whose time is in [start, end)."""
        first = self.at_time(start)
        if first.seconds + TIME_SLACK < start:
            first_index = first.index + 1
        else:
            first_index = first.index
        refs: list[FrameRef] = []
        for index in range(first_index, self.frames):
            ref = self.at_index(index)
            if ref.seconds >= end:
                break
            refs.append(ref)
        return refs


@dataclass(frozen=True)
class Selection:
    """Which frames to write; everything given is combined. Nothing given: DEFAULT_COUNT frames.

    ``at`` are times from the first frame; ``every`` and ``count`` work within
    ``start``..``end`` (default: the whole video); ``start``/``end`` alone select every frame
    in that range; ``index`` are frame numbers from 0.
    """

    at: tuple[Fraction, ...] = ()
    index: tuple[int, ...] = ()
    every: Fraction | None = None
    count: int | None = None
    start: Fraction | None = None
    end: Fraction | None = None

    @property
    def empty(self) -> bool:
        given = (self.every, self.count, self.start, self.end)
        return not self.at and not self.index and all(value is None for value in given)

    def times(self, duration: Fraction) -> list[Fraction]:
        """The times asked for (excluding a plain range), checked against ``duration``."""
        for moment in self.at:
            if moment >= duration:
                raise SettingsError(f"--at {show_time(moment)} is past the end of the video ({show_time(duration)})")
        start, end = self.range(duration)
        times = list(self.at)
        if self.every is not None:
            if self.every <= 0:
                raise SettingsError("--every must be more than 0 seconds")
            steps = math.ceil((end - start) / self.every)
            times.extend(start + k * self.every for k in range(steps))
        count = DEFAULT_COUNT if self.empty else self.count
        if count is not None:
            if count < 1:
                raise SettingsError("--count must be at least 1")
            times.extend(start + (k + Fraction(1, 2)) * (end - start) / count for k in range(count))
        return times

    def range(self, duration: Fraction) -> tuple[Fraction, Fraction]:
        start = self.start or Fraction(0)
        end = min(self.end, duration) if self.end is not None else duration
        if start >= duration:
            raise SettingsError(f"--start {show_time(start)} is past the end of the video ({show_time(duration)})")
        if end <= start:
            raise SettingsError(f"--end {show_time(end)} must come after --start {show_time(start)}")
        return start, end

    @property
    def plain_range(self) -> bool:
        """--start/--end without --every or --count: every frame in the range."""
        return (self.start is not None or self.end is not None) and self.every is None and self.count is None


def resolve(selection: Selection, timeline: Timeline, duration: Fraction) -> list[FrameRef]:
    """The selected frames, in order, each once."""
    refs = {timeline.at_time(moment) for moment in selection.times(duration)}
    refs.update(timeline.at_index(index) for index in selection.index)
    if selection.plain_range:
        refs.update(timeline.between(*selection.range(duration)))
    return sorted(refs)


def reading_limits(selection: Selection, info: VideoInfo, duration: Fraction) -> tuple[int | None, int | None]:
    """How far a packet scan must read: up to this pts, and this many frames (None: no limit)."""
    times = selection.times(duration)
    if selection.plain_range:
        times.append(selection.range(duration)[1])
    until_pts = info.start_pts + math.ceil((max(times) + TIME_SLACK) / info.time_base) if times else None
    until_count = max(selection.index) + 1 if selection.index else None
    return until_pts, until_count


class PredictionMissed(Exception):
    """A decoded frame is not where the computed timeline said: fall back to reading packets."""


def decode_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    refs: list[FrameRef],
    *,
    deinterlace: bool = False,
) -> Iterator[tuple[FrameRef, av.VideoFrame]]:
    """Decode exactly the frames ``refs`` (sorted by pts): seek to far ones, decode forward to near ones;
    with ``deinterlace``, rebuilt whole as a render's would be (the same frames, at the same times).

    Raises PredictionMissed if a decoded frame's pts is not the one expected.
    """
    ahead = int(SEEK_AHEAD_SECONDS / info.time_base)
    frames: Iterator[av.VideoFrame] | None = None
    position: int | None = None
    try:
        for ref in refs:
            if frames is None or position is None or ref.pts - position > ahead:
                if frames is not None:
                    frames.close()
                # A frame past a cut is refused below by name; the frames there are are whole.
                frames = frames_from(container, stream, info, ref.pts, deinterlace=deinterlace, accept_truncated=True)
            frame = next((f for f in frames if f.pts is None or f.pts >= ref.pts), None)
            if frame is None:
                raise InputError(f"{info.path}: the video ends before {show_time(ref.seconds)} (frame {ref.index})")
            if frame.pts is not None and frame.pts != ref.pts:
                raise PredictionMissed
            position = frame.pts
            yield ref, frame
    finally:
        if frames is not None:
            frames.close()
