"""Decode a video stream into batches of integer planes, each frame with its source timestamp."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.error
import av.video.stream
import numpy as np

from vidsr.errors import InputError
from vidsr.media.container import failure_reason, open_input, rewind, seek_before, video_stream
from vidsr.media.deinterlace import Deinterlacer
from vidsr.media.frame_arrays import frame_planes
from vidsr.media.probe import VideoInfo
from vidsr.media.truncation import Truncation
from vidsr.planes import FrameBatch, PlaneLayout, Planes
from vidsr.timecode import show_time

TruncationCallback = Callable[[Truncation], None]


@dataclass(frozen=True)
class Segmentation:
    """Cuts a stream into segments of ``seconds`` of presentation time, from its first frame.

    Boundaries depend only on timestamps, so every run of the same job cuts in the same places.
    """

    start_pts: int
    time_base: Fraction
    seconds: Fraction

    def index_of(self, pts: int) -> int:
        tb, length = self.time_base, self.seconds
        return (pts - self.start_pts) * tb.numerator * length.denominator // (tb.denominator * length.numerator)

    def first_pts_of(self, index: int) -> int:
        """The smallest pts that belongs to segment ``index``."""
        return self.start_pts + math.ceil(index * self.seconds / self.time_base)


class _BatchBuilder:
    """Collects frames into preallocated arrays, so a batch is built with one copy a plane."""

    def __init__(
        self, layout: PlaneLayout, width: int, height: int, capacity: int, first_index: int, segment: int
    ) -> None:
        self.layout = layout
        self.first_index = first_index
        self.segment = segment
        self.planes = tuple(
            np.empty((capacity, *size), dtype=layout.dtype) for size in layout.plane_sizes(width, height)
        )
        self.pts: list[int] = []

    def add(self, planes: Planes, pts: int) -> None:
        slot = len(self.pts)
        for target, plane in zip(self.planes, planes):
            target[slot] = plane
        self.pts.append(pts)

    def full(self) -> bool:
        return len(self.pts) == len(self.planes[0])

    def build(self) -> FrameBatch:
        count = len(self.pts)
        first, second, third = (plane[:count] for plane in self.planes)
        return FrameBatch(
            planes=(first, second, third),
            pts=tuple(self.pts),
            layout=self.layout,
            first_index=self.first_index,
            segment=self.segment,
        )


def decode_batches(
    info: VideoInfo,
    *,
    batch_size: int,
    segmentation: Segmentation | None = None,
    first_segment: int = 0,
    last_segment: int | None = None,
    first_index: int = 0,
    decoder_threads: int = 0,
    deinterlace: bool = False,
    accept_truncated: bool = False,
    on_truncated: TruncationCallback | None = None,
    on_next_segment: Callable[[int | None], None] | None = None,
) -> Iterator[FrameBatch]:
    """Yield the video of ``info`` in batches of up to ``batch_size`` frames, from the start of
    ``first_segment`` on (seeking there, frame-exactly, instead of decoding what comes before),
    to the end of ``last_segment`` (None: to the end of the stream).

    ``first_index`` is the number of frames before that point. ``deinterlace`` rebuilds
    interlaced frames whole (pass ``info.interlaced``); a resumed run gives the same frames as
    an uninterrupted one. Raises InputError if the stream is corrupt mid-way or changes resolution.

    A video that stops short of its stated length where probe could not tell (its end could not
    be read ahead) raises InputError once decoding gets there, saying how much is missing; with
    ``accept_truncated`` the frames there are are given and ``on_truncated`` hears of it. A cut
    the probe found and accepted (``info.truncated_at``) is not reported again.

    ``on_next_segment`` hears, once the frames run out, which segment the next frame belongs to
    (None: the stream ended): segments in between hold no frame, which a sparse timeline (a
    camera that records on motion) has thousands of.
    """
    with open_input(info.path) as container:
        stream = video_stream(container, info.video_index)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = decoder_threads
        start_pts = segmentation.first_pts_of(first_segment) if segmentation and first_segment else None
        builder: _BatchBuilder | None = None
        frames_seen = first_index
        last_pts: int | None = None
        frames = frames_from(
            container,
            stream,
            info,
            start_pts,
            deinterlace=deinterlace,
            accept_truncated=accept_truncated,
            on_truncated=on_truncated,
        )
        for frame in frames:
            _check_size(frame, info)
            pts = _presentation_pts(frame, last_pts)
            last_pts = pts
            segment = segmentation.index_of(pts) if segmentation else 0
            if last_segment is not None and segment > last_segment:
                if on_next_segment is not None:
                    on_next_segment(segment)
                break
            if builder is not None and (builder.full() or builder.segment != segment):
                yield builder.build()
                builder = None
            planes, layout = frame_planes(frame)
            if builder is None:
                builder = _BatchBuilder(layout, info.width, info.height, batch_size, frames_seen, segment)
            builder.add(planes, pts)
            frames_seen += 1
        else:
            if on_next_segment is not None:
                on_next_segment(None)
        if builder is not None and builder.pts:
            yield builder.build()


def _check_size(frame: av.VideoFrame, info: VideoInfo) -> None:
    if (frame.width, frame.height) != (info.width, info.height):
        raise InputError(
            f"{info.path}: the resolution changes from {info.width}x{info.height} to "
            f"{frame.width}x{frame.height} at {show_time(frame.time)}; vidsr cannot upscale that yet"
        )


_SEEK_MARGINS_SECONDS = (2, 15, 120)  # how far before the target to seek, tried in turn


def frames_from(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    start_pts: int | None,
    *,
    deinterlace: bool = False,
    accept_truncated: bool = False,
    on_truncated: TruncationCallback | None = None,
) -> Generator[av.VideoFrame, None, None]:
    """Frames with pts >= ``start_pts`` (all frames if None), found by seeking; with
    ``deinterlace``, interlaced frames rebuilt whole (see Deinterlacer), at their own pts.

    A seek lands on a keyframe at or before its target, but an index can be coarse: if the
    first frame decoded is already past ``start_pts``, seek again from further back, and in
    the end decode from the start, so no frame is ever skipped. Deinterlacing needs a frame
    before the first one wanted, so that it is rebuilt exactly as in a run from the start.

    A video that stops short of its length where only decoding can tell (see ``decode_batches``)
    raises InputError at the end, or with ``accept_truncated`` is reported to ``on_truncated``.
    """
    end = _EndCheck(info, accept_truncated, on_truncated)
    deinterlacer = Deinterlacer(info.time_base) if deinterlace else None
    if start_pts is None:
        frames = _decoded_frames(container, stream, info, end)
        yield from deinterlacer.frames(frames) if deinterlacer else frames
        return
    needs_earlier = deinterlace and start_pts > info.start_pts
    for margin in (*_SEEK_MARGINS_SECONDS, None):
        if margin is None:
            rewind(container, stream)
        elif not seek_before(container, stream, start_pts - int(margin / info.time_base)):
            continue
        frames = _decoded_frames(container, stream, info, end)
        first = next(frames, None)
        if first is None:
            continue
        if margin is not None and not _landed_before(first, start_pts, strictly=needs_earlier):
            continue  # landed after the target (or on it, with no neighbour for the deinterlacer)
        chained = itertools.chain((first,), frames)
        if deinterlacer is not None:
            deinterlacer.reset()
            chained = deinterlacer.frames(chained)
        for frame in chained:
            if frame.pts is None or frame.pts >= start_pts:
                yield frame
        return


def _landed_before(first: av.VideoFrame, start_pts: int, *, strictly: bool) -> bool:
    if first.pts is None:
        return True
    return first.pts < start_pts if strictly else first.pts <= start_pts


@dataclass(frozen=True)
class _EndCheck:
    """Whether decoding reached the end the file states, and what to do when it did not."""

    info: VideoInfo
    accept_truncated: bool
    on_truncated: TruncationCallback | None

    def check(self, video_seconds: float) -> None:
        info = self.info
        rate = float(info.frame_rate) if info.frame_rate else None
        # Loose: probe already compared the packets with the stated length, closely.
        tolerance = max(0.5, 3.0 / rate) if rate else 0.5
        if video_seconds >= info.available_duration - tolerance:
            return
        truncation = Truncation(info.path, video_seconds, info.duration)
        if not self.accept_truncated:
            raise InputError(truncation.refusal())
        if self.on_truncated is not None:
            self.on_truncated(truncation)


def _decoded_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, info: VideoInfo, end: _EndCheck
) -> Generator[av.VideoFrame, None, None]:
    """Every frame, then a check that decoding reached the end the file states.

    A read or decode error after which the file has no more packets is where its data stops (a
    cut file), judged by that check; an error with more to come is damage, an InputError.
    """
    start = float(stream.start_time * info.time_base) if stream.start_time is not None else 0.0
    video_end = start
    try:
        for frame in container.decode(stream):
            if frame.pts is not None:
                video_end = max(video_end, _frame_end(frame, info))
            yield frame
    except av.error.FFmpegError as exc:
        if _more_packets(container, stream):
            raise InputError(
                f"{info.path} is corrupt near {show_time(video_end - start)}: {failure_reason(exc)}"
            ) from None
    end.check(video_end - start)


def _frame_end(frame: av.VideoFrame, info: VideoInfo) -> float:
    """Seconds where a frame stops being shown: its pts plus its duration (or one frame)."""
    pts = frame.pts or 0
    if frame.duration:
        return float((pts + frame.duration) * info.time_base)
    step = 1 / info.frame_rate if info.frame_rate else Fraction(0)
    return float(pts * info.time_base + step)


def _more_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    try:
        return any(packet.size for packet in itertools.islice(container.demux(stream), 8))
    except av.error.FFmpegError:
        return False


def _presentation_pts(frame: av.VideoFrame, last_pts: int | None) -> int:
    """The frame's own pts; only a missing or non-increasing one is patched, minimally."""
    pts = frame.pts
    if last_pts is None:
        return pts if pts is not None else 0
    if pts is None or pts <= last_pts:
        step = frame.duration or 1
        return last_pts + max(int(step), 1)
    return pts
