"""What is in a media file, read once before any work starts, with clear errors for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.error
import av.video.stream

from vidsr.errors import InputError
from vidsr.media.aspect import SQUARE, source_sample_aspect_ratio
from vidsr.media.container import failure_reason, open_input
from vidsr.media.deinterlace import FieldOrder, field_order
from vidsr.media.streams import LeftOutVideo, choose_video_stream
from vidsr.media.truncation import Truncation, find_truncation, stated_length
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
    duration: float  # the length the file states, from the video's own start
    colour: ColourSpec
    colour_tagged: bool
    rotation: int
    others: tuple[StreamSummary, ...]
    chapters: int
    videos_left_out: tuple[LeftOutVideo, ...] = ()  # cover art, still tracks, other angles: not upscaled
    sample_aspect_ratio: Fraction = SQUARE  # the shape of a stored pixel (4:3 for 16:9 shown from 4:3 stored)
    field_order: FieldOrder = "progressive"  # of the first frame; "unknown": flagged interlaced, no order stated
    interlaced: bool = False  # decode with deinterlace=True to rebuild whole frames
    truncated_at: float | None = None  # a cut-off file accepted: the seconds of video there are

    @property
    def available_duration(self) -> float:
        """The seconds of video there are to render: ``duration``, or less for a cut-off file."""
        return self.truncated_at if self.truncated_at is not None else self.duration

    @property
    def truncation(self) -> Truncation | None:
        """What is missing from a cut-off file accepted with ``accept_truncated`` (for its warning)."""
        if self.truncated_at is None:
            return None
        return Truncation(self.path, self.truncated_at, self.duration)

    @property
    def audio(self) -> tuple[StreamSummary, ...]:
        return tuple(s for s in self.others if s.kind == "audio")

    @property
    def subtitles(self) -> tuple[StreamSummary, ...]:
        return tuple(s for s in self.others if s.kind == "subtitle")


def probe(path: Path, *, stream: int | None = None, accept_truncated: bool = False) -> VideoInfo:
    """Read the streams of ``path``; raise InputError if it has no decodable video.

    The video is the stream a player would show (see ``choose_video_stream``), or the stream
    at index ``stream`` when given (SettingsError if that is not a video stream). A video that
    stops before the length its file states is refused (InputError, saying how much is missing),
    unless ``accept_truncated``: then ``truncated_at`` says how much there is, for a warning.
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
        duration, truncation = _length(path, container, video, accept_truncated)
        frames, frames_exact = _frame_count(video, Fraction(frame_rate) if frame_rate else None, duration, truncation)
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
            truncated_at=truncation.video_seconds if truncation is not None else None,
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


def _length(
    path: Path, container: av.container.InputContainer, video: av.video.stream.VideoStream, accept_truncated: bool
) -> tuple[float, Truncation | None]:
    """The video's stated length in seconds (0 if the file states none), and its truncation if cut
    off; a cut-off file is refused here, before any work, unless ``accept_truncated``."""
    stated = stated_length(container, video)
    truncation = find_truncation(path, video.index, stated)
    if truncation is not None and not accept_truncated:
        raise InputError(truncation.refusal())
    return (stated.seconds if stated is not None else 0.0), truncation


def _frame_count(
    video: av.video.stream.VideoStream, frame_rate: Fraction | None, duration: float, truncation: Truncation | None
) -> tuple[int, bool]:
    """Frames, and whether that is a count (MP4 states it) rather than duration x rate."""
    if truncation is not None:  # the header's count is of frames that are not there
        return (round(truncation.video_seconds * frame_rate) if frame_rate else 0), False
    if video.frames:
        return video.frames, True
    return (round(duration * frame_rate) if frame_rate else 0), False


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
