"""Is the whole video there? Where a file says its video ends, and where its packets really end.

A download or copy cut short leaves a file that opens and plays but stops early. MP4 with its
index at the front (faststart) and Matroska keep saying how long they are, so comparing that
with the last packet tells a cut file before any work. Each muxer states the end differently,
so it is read per muxer, always measured from the video's own start (a video may start at 10 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
import av.container
import av.error
import av.stream
import av.video.stream

from vidsr.media.container import open_input, rewind, seek_before
from vidsr.timecode import show_time

__all__ = ["StatedLength", "Truncation", "find_truncation", "stated_length", "stream_start_seconds"]

_SECONDS_READ_AT_THE_END = 2.0  # how far before the stated end to start reading packets
# A stream's own stated length matches its last packet to within rounding and an unrecorded last
# frame duration; a container-wide one may include a longer audio track.
_OWN_SLACK_SECONDS, _OWN_SLACK_FRAMES = 0.1, 2.5
_CONTAINER_SLACK_SECONDS, _CONTAINER_SLACK_FRAMES = 0.5, 3.0


@dataclass(frozen=True)
class StatedLength:
    """How long the file says its video is, from the video's own start, and how far short of that
    the packets may end before the file counts as cut off."""

    start: float  # seconds on the stream's clock where the video starts
    seconds: float
    tolerance: float


@dataclass(frozen=True)
class Truncation:
    """A video that stops before the length its file states."""

    path: Path
    video_seconds: float  # the video there is, from its start
    stated_seconds: float  # the length the file states

    @property
    def missing_seconds(self) -> float:
        return self.stated_seconds - self.video_seconds

    def _what(self) -> str:
        return (
            f"{self.path} is truncated: its video stops at {show_time(self.video_seconds)} of "
            f"{show_time(self.stated_seconds)} ({self.missing_seconds:.3f} s missing)"
        )

    def refusal(self) -> str:
        """The error, with the way on."""
        return f"{self._what()}; add --accept-truncated to render what is there"

    def warning(self) -> str:
        """The warning when the user accepted it."""
        return f"{self._what()}; rendering what is there"


def stream_start_seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return _container_start(container, 0.0)


def stated_length(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> StatedLength | None:
    """The length the file states for ``stream``; None where it states none (a still picture,
    a file written to a pipe).

    MP4, MOV, MPEG-TS and most others give the stream a duration from its start. Matroska gives
    none; its per-stream DURATION tag is the absolute end when FFmpeg wrote the file (the largest
    timestamp plus duration) but the length when mkvmerge did (it marks its tags with
    _STATISTICS_TAGS). A Matroska or NUT file's own duration is the absolute end when FFmpeg
    ("Lavf") wrote it. Other formats' container duration runs from the container's start.
    """
    if stream.disposition & av.stream.Disposition.attached_pic:
        return None
    start = stream_start_seconds(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    frame = float(1 / rate) if rate else 0.0
    own = max(_OWN_SLACK_SECONDS, _OWN_SLACK_FRAMES * frame)
    loose = max(_CONTAINER_SLACK_SECONDS, _CONTAINER_SLACK_FRAMES * frame)
    matroska = "matroska" in container.format.name
    if stream.duration is not None and stream.time_base is not None and not matroska:
        return StatedLength(start, float(stream.duration * stream.time_base), own)
    tag = stream.metadata.get("DURATION")
    if tag:
        value = _tag_seconds(tag)
        is_length = "_STATISTICS_TAGS" in stream.metadata or value <= start
        return StatedLength(start, value if is_length else value - start, own)
    if container.duration is None:
        return None
    value = container.duration / av.time_base
    if matroska or container.format.name == "nut":
        written_by_ffmpeg = _writer(container).startswith("Lavf")
        is_length = (matroska and not written_by_ffmpeg) or value <= start
        return StatedLength(start, value if is_length else value - start, loose)
    return StatedLength(start, _container_start(container, start) + value - start, loose)


def find_truncation(path: Path, stream_index: int, stated: StatedLength | None) -> Truncation | None:
    """Read the packets at the end of the video (in a container of its own) and compare their
    end with ``stated``; a Truncation if the video stops more than the tolerance short."""
    if stated is None or stated.seconds <= 0:
        return None
    end = packets_end(path, stream_index, stated.start + stated.seconds)
    if end is None:
        return None
    video_seconds = max(0.0, end - stated.start)
    if video_seconds >= stated.seconds - stated.tolerance:
        return None
    return Truncation(path, video_seconds, stated.seconds)


def packets_end(path: Path, stream_index: int, stated_end: float) -> float | None:
    """Seconds (on the stream's clock) where the last packet of the stream ends: read from a
    little before ``stated_end``, or from the start if the file cannot seek there. A read error
    is where the file's data stops."""
    with open_input(path) as container:
        stream = container.streams[stream_index]
        time_base = stream.time_base
        if time_base is None:
            return None
        near_end = int((stated_end - _SECONDS_READ_AT_THE_END) / time_base)
        if seek_before(container, stream, near_end):
            end = _last_packet_end(container, stream)
            if end is not None:
                return end
        rewind(container, stream)
        return _last_packet_end(container, stream)


def _last_packet_end(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    end: float | None = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = packet_end if end is None else max(end, packet_end)
    except av.error.FFmpegError:
        pass  # the data stops here
    return end


def _container_start(container: av.container.InputContainer, otherwise: float) -> float:
    start = cast("int | None", container.start_time)  # None when unknown, whatever the stub says
    return start / av.time_base if start is not None else otherwise


def _tag_seconds(text: str) -> float:
    """Matroska's "00:00:10.000000000"."""
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _writer(container: av.container.InputContainer) -> str:
    metadata = container.metadata
    return metadata.get("encoder") or metadata.get("ENCODER") or ""
