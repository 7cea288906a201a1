"""Which video stream of a file is "the video": the one a player would show.

A file can hold more than one picture stream: cover art (an MP3 or M4A picture, a Matroska
attachment), a one-frame PNG or JPEG track left by a remux, thumbnails, a second angle. FFmpeg
lists them in any order, so "the first video stream" is sometimes a still picture, and upscaling
it would turn a film into one frame. The choice here follows players and the ffmpeg command:
never a picture that does not move if anything moves, then the stream marked default, then
the largest picture, then the longest, then the lowest index.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.error
import av.stream
import av.video.stream

from vidsr.errors import InputError, SettingsError
from vidsr.media.container import open_input

__all__ = ["LeftOutVideo", "choose_video_stream"]

_Disposition = av.stream.Disposition
_PACKETS_SCANNED = 200  # enough to see every stream of a normal file move; a still track has one packet


@dataclass(frozen=True)
class LeftOutVideo:
    """A video stream of the input that vidsr does not upscale, and why (for a warning)."""

    index: int
    codec: str
    width: int
    height: int
    reason: str  # "cover art", "a still image (one frame)", "not the default video stream", ...

    def describe(self) -> str:
        """ "stream 0 (mjpeg 600x600, cover art)": how a warning or ``vidsr info`` names it."""
        return f"stream {self.index} ({self.codec} {self.width}x{self.height}, {self.reason})"


def choose_video_stream(
    container: av.container.InputContainer, path: Path, requested: int | None = None
) -> tuple[av.video.stream.VideoStream, tuple[LeftOutVideo, ...]]:
    """The main video stream of ``container`` and the other video streams, each with why it was
    left out. ``requested`` (a stream index the user gave) overrides the choice.

    Raises InputError if there is no video to upscale (none, or only cover art), SettingsError
    if ``requested`` is not a video stream of the file.
    """
    videos = list(container.streams.video)
    if requested is not None:
        chosen = _requested_stream(container, videos, requested, path)
        return chosen, tuple(_left_out(stream, "not the stream asked for") for stream in videos if stream is not chosen)
    candidates = [stream for stream in videos if not _still_by_disposition(stream)]
    if not candidates:
        raise InputError(_no_video_message(container, path))
    multi_frame = _moves(candidates, path)
    chosen = max(candidates, key=lambda stream: _rank(stream, multi_frame))
    left_out = tuple(
        _left_out(stream, _why_not(stream, chosen, multi_frame)) for stream in videos if stream is not chosen
    )
    return chosen, left_out


def _rank(stream: av.video.stream.VideoStream, multi_frame: dict[int, bool]) -> tuple[bool, bool, int, float, int]:
    """Moving first, then the default flag (it beats size, as in players and the ffmpeg command),
    then the picture area, then the length, then the lowest index."""
    return (
        multi_frame[stream.index],
        bool(stream.disposition & _Disposition.default),
        stream.codec_context.width * stream.codec_context.height,
        _stated_seconds(stream),
        -stream.index,
    )


def _still_by_disposition(stream: av.stream.Stream) -> bool:
    return bool(stream.disposition & (_Disposition.attached_pic | _Disposition.timed_thumbnails))


def _frames_at_least_two(path: Path, streams: list[av.video.stream.VideoStream]) -> dict[int, bool]:
    """Whether each stream has more than one frame: the header's frame count where it has one
    (MP4), else packets among the first few hundred (Matroska counts nothing).

    The packets are read from a container of their own, so the caller's is not moved (a seek
    back to the start can fail on a damaged Matroska file).
    """
    counts = {stream.index: stream.frames for stream in streams}
    if all(count > 0 for count in counts.values()):
        return {index: count > 1 for index, count in counts.items()}
    seen = dict.fromkeys(counts, 0)
    try:
        with open_input(path) as scan:
            for packet in itertools.islice(scan.demux(), _PACKETS_SCANNED):
                if packet.size and packet.stream.index in seen:
                    seen[packet.stream.index] += 1
    except av.error.FFmpegError:
        pass  # a damaged file: what was counted so far decides
    return {index: (counts[index] or seen[index]) > 1 for index in counts}


def _moves(streams: list[av.video.stream.VideoStream], path: Path) -> dict[int, bool]:
    """Whether each stream is moving video: more than one frame and not flagged a still image."""
    counted = _frames_at_least_two(path, streams) if len(streams) > 1 else {streams[0].index: True}
    return {s.index: counted[s.index] and not s.disposition & _Disposition.still_image for s in streams}


def _stated_seconds(stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _why_not(
    stream: av.video.stream.VideoStream, chosen: av.video.stream.VideoStream, multi_frame: dict[int, bool]
) -> str:
    disposition = stream.disposition
    if disposition & _Disposition.attached_pic:
        return "cover art"
    if disposition & _Disposition.timed_thumbnails:
        return "thumbnails"
    if disposition & _Disposition.still_image:
        return "a still image"
    if not multi_frame.get(stream.index, False):
        return "a still image (one frame)"
    if chosen.disposition & _Disposition.default and not disposition & _Disposition.default:
        return f"not the default video stream ({chosen.index} is)"
    chosen_area = chosen.codec_context.width * chosen.codec_context.height
    if stream.codec_context.width * stream.codec_context.height < chosen_area:
        return f"smaller than stream {chosen.index}"
    return f"a second video stream (vidsr upscales stream {chosen.index})"


def _left_out(stream: av.video.stream.VideoStream, reason: str) -> LeftOutVideo:
    context = stream.codec_context
    return LeftOutVideo(stream.index, context.name, context.width, context.height, reason)


def _requested_stream(
    container: av.container.InputContainer,
    videos: list[av.video.stream.VideoStream],
    requested: int,
    path: Path,
) -> av.video.stream.VideoStream:
    for stream in videos:
        if stream.index == requested:
            return stream
    listed = ", ".join(f"{s.index} ({s.codec_context.name} {s.width}x{s.height})" for s in videos) or "none"
    if 0 <= requested < len(container.streams):
        what = f"stream {requested} of {path} is {container.streams[requested].type}, not video"
    else:
        what = f"{path} has no stream {requested}"
    raise SettingsError(f"{what}; its video streams: {listed}")


def _no_video_message(container: av.container.InputContainer, path: Path) -> str:
    kinds = sorted({"cover art" if _still_by_disposition(s) else s.type for s in container.streams})
    return f"{path} has no video stream (found: {', '.join(kinds) or 'no streams'})"
