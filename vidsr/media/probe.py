"""What is in a media file, read once before any work starts, with clear errors for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.error
import av.stream
import av.video.stream

from vidsr.errors import InputError
from vidsr.media.aspect import SQUARE, source_sample_aspect_ratio
from vidsr.media.container import failure_reason, open_input
from vidsr.media.deinterlace import FieldOrder, field_order
from vidsr.media.streams import LeftOutVideo, choose_video_stream
from vidsr.media.timecode import show_time
from vidsr.planes import ColourSpec, Matrix

# FFmpeg's AVColorSpace values that name a matrix vidsr converts with.
_MATRIX_BY_COLORSPACE: dict[int, Matrix] = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG
_UNSPECIFIED = 2


@dataclass(frozen=True)
class StreamSummary:
    """One non-video stream that rides along into the output."""

    index: int
    kind: str  # "audio" | "subtitle" | "data" | "attachment"
    codec: str
    language: str | None


@dataclass(frozen=True)
class VideoInfo:
    """The facts about an input that the rest of the pipeline plans with."""

    path: Path
    container: str
    video_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    start_pts: int  # the first frame's pts: where segment 0 begins
    frame_rate: Fraction | None
    frames: int
    frames_exact: bool
    duration: float
    colour: ColourSpec
    colour_tagged: bool
    rotation: int
    others: tuple[StreamSummary, ...]
    chapters: int
    videos_left_out: tuple[LeftOutVideo, ...] = ()  # cover art, still tracks, other angles: not upscaled
    sample_aspect_ratio: Fraction = SQUARE  # the shape of a stored pixel (4:3 for 16:9 shown from 4:3 stored)
    field_order: FieldOrder = "progressive"  # of the first frame; "unknown": flagged interlaced, no order stated
    interlaced: bool = False  # decode with deinterlace=True to rebuild whole frames

    @property
    def audio(self) -> tuple[StreamSummary, ...]:
        return tuple(s for s in self.others if s.kind == "audio")

    @property
    def subtitles(self) -> tuple[StreamSummary, ...]:
        return tuple(s for s in self.others if s.kind == "subtitle")


def probe(path: Path, *, stream: int | None = None) -> VideoInfo:
    """Read the streams of ``path``; raise InputError if it has no decodable video.

    The video is the stream a player would show (see ``choose_video_stream``), or the stream
    at index ``stream`` when given (SettingsError if that is not a video stream).
    """
    with open_input(path) as container:
        video, left_out = choose_video_stream(container, path, stream)
        if video.time_base is None:
            raise InputError(f"{path}: its video stream has no time base, so its frames have no times")
        first_frame = _first_frame(container, video, path)
        context = video.codec_context
        pix_fmt = first_frame.format.name
        frame_rate = video.average_rate or video.guessed_rate
        fields, interlaced = field_order(video, first_frame)
        duration = _duration_seconds(container, video)
        _check_not_truncated(container, video, duration, path)
        frames_exact = bool(video.frames)
        frames = video.frames or (round(duration * frame_rate) if frame_rate else 0)
        colour, tagged = effective_colour(
            colorspace=context.colorspace or first_frame.colorspace,
            color_range=context.color_range or first_frame.color_range,
            primaries=context.color_primaries,
            transfer=context.color_trc,
            pix_fmt=pix_fmt,
            width=video.width,
            height=video.height,
        )
        return VideoInfo(
            path=path,
            container=container.format.name,
            video_index=video.index,
            codec=context.name,
            width=video.width,
            height=video.height,
            pix_fmt=pix_fmt,
            bit_depth=max(component.bits for component in first_frame.format.components),
            time_base=video.time_base,
            start_pts=first_frame.pts or 0,
            frame_rate=Fraction(frame_rate) if frame_rate else None,
            frames=frames,
            frames_exact=frames_exact,
            duration=duration,
            colour=colour,
            colour_tagged=tagged,
            rotation=int(first_frame.rotation or 0),
            others=tuple(_summaries(container, video.index)),
            chapters=len(container.chapters()),
            videos_left_out=left_out,
            sample_aspect_ratio=source_sample_aspect_ratio(video),
            field_order=fields,
            interlaced=interlaced,
        )


def _first_frame(
    container: av.container.InputContainer, video: av.video.stream.VideoStream, path: Path
) -> av.VideoFrame:
    try:
        for frame in container.decode(video):
            return frame
    except av.error.FFmpegError as exc:
        raise InputError(
            f"{path} is corrupt: its first video frame cannot be decoded ({failure_reason(exc)})"
        ) from None
    raise InputError(f"{path} has a video stream with no decodable frames (empty or truncated)")


def _duration_seconds(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> float:
    """The video stream's own duration where the file states it, else the whole file's."""
    if video.disposition & av.stream.Disposition.attached_pic:
        return 0.0  # one picture: the file's duration is its audio's
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    tagged = video.metadata.get("DURATION")  # Matroska writes it per stream
    if tagged:
        hours, minutes, seconds = tagged.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def truncation_tolerance(frame_rate: float | None) -> float:
    """How far short of its stated duration a video may end before it counts as cut off."""
    return max(0.5, 3.0 / frame_rate) if frame_rate else 0.5


def _check_not_truncated(
    container: av.container.InputContainer, video: av.video.stream.VideoStream, duration: float, path: Path
) -> None:
    """Look at the last seconds of the video: a cut-off file is refused before any work."""
    if duration <= 0:
        return
    time_base = video.time_base or Fraction(1, av.time_base)  # probe refused a stream without one
    start = float(video.start_time * time_base) if video.start_time is not None else 0.0
    try:
        container.seek(int((start + max(0.0, duration - 2.0)) / time_base), stream=video, backward=True)
        ends = [
            float((packet.pts + (packet.duration or 0)) * packet.time_base)
            for packet in container.demux(video)
            if packet.pts is not None
        ]
    except av.error.FFmpegError:
        return  # not seekable: the decoder checks the end instead
    finally:
        container.seek(0)
    video_end = max(ends, default=start) - start
    rate = video.average_rate or video.guessed_rate
    if video_end < duration - truncation_tolerance(float(rate) if rate else None):
        raise InputError(
            f"{path} is truncated: its video stops at {show_time(video_end)} "
            f"but the file says it lasts {show_time(duration)}"
        )


def _summaries(container: av.container.InputContainer, video_index: int) -> Iterator[StreamSummary]:
    for stream in container.streams:
        if stream.index == video_index or stream.type == "video":
            continue
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        yield StreamSummary(stream.index, stream.type, codec, stream.metadata.get("language"))


def effective_colour(
    *,
    colorspace: int,
    color_range: int,
    primaries: int,
    transfer: int,
    pix_fmt: str,
    width: int,
    height: int,
) -> tuple[ColourSpec, bool]:
    """The colour interpretation to use, and whether it came from tags rather than a guess.

    Untagged video follows the common player convention: BT.709 for HD, BT.601 for SD.
    """
    matrix = _MATRIX_BY_COLORSPACE.get(int(colorspace or 0))
    tagged = matrix is not None
    if matrix is None:
        matrix = "bt709" if width >= 1280 or height >= 720 else "bt601"
    if int(color_range or 0) in (1, 2):
        full_range = int(color_range) == _FULL_RANGE
    else:  # untagged: FFmpeg's conventions, JPEG-style yuvj and grey are full range
        full_range = pix_fmt.startswith(("yuvj", "gray"))
    spec = ColourSpec(
        matrix=matrix,
        full_range=full_range,
        primaries=int(primaries or _UNSPECIFIED),
        transfer=int(transfer or _UNSPECIFIED),
    )
    return spec, tagged
