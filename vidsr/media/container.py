"""Opening and closing media files, with every way that can fail turned into a VidsrError."""

# Strict typing, less the unknown-type checks: PyAV types add_stream() only in part.
# pyright: reportUnknownMemberType=false

from __future__ import annotations

import io
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import av
import av.container
import av.error
import av.stream
import av.video.stream

from vidsr.errors import InputError, OutputError

__all__ = [
    "accepts_video_codec",
    "check_output_container",
    "close_output",
    "container_refusal",
    "failure_reason",
    "format_accepts",
    "open_input",
    "open_output",
    "output_format_name",
    "rewind",
    "seek_before",
    "video_stream",
]


@contextmanager
def open_input(path: Path) -> Generator[av.container.InputContainer, None, None]:
    """Open a media file for reading, turning every way that can fail into an InputError."""
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video: {path}")
    try:
        container = av.open(str(path), mode="r")
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except av.error.FFmpegError as exc:
        raise InputError(
            f"{path} is not a media file vidsr can read, or it is truncated ({failure_reason(exc)})"
        ) from None
    try:
        yield container
    finally:
        container.close()


def open_output(
    path: Path | IO[bytes], format_name: str | None, options: dict[str, str] | None = None
) -> av.container.OutputContainer:
    """Open a media file (or an in-memory file) for writing; OutputError if it cannot be created."""
    target = str(path) if isinstance(path, Path) else path
    try:
        return av.open(target, mode="w", format=format_name, options=options or {})
    except PermissionError:
        raise OutputError(f"cannot write {path}: permission denied") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise OutputError(f"cannot write {path}: {failure_reason(exc)}") from None


def close_output(container: av.container.OutputContainer, path: Path | IO[bytes]) -> None:
    """Close a container being written; a failed final write (a full disk) is an OutputError."""
    try:
        container.close()
    except (OSError, av.error.FFmpegError) as exc:
        raise OutputError(f"cannot write {path}: {failure_reason(exc)}") from None


# Muxers that cannot keep a timestamp for each frame, and why. vidsr's promise is every frame at its
# own time with the sound in sync; these would break it without an error anywhere.
_NO_TIMESTAMPS = {
    "avi": "AVI keeps no timestamps, only a frame rate, so variable frame rate, B-frames and the sync "
    "with the sound would be lost (players show frames late)",
    "h264": "a raw H.264 stream keeps no timestamps and no sound",
    "hevc": "a raw HEVC stream keeps no timestamps and no sound",
    "obu": "a raw AV1 stream keeps no timestamps and no sound",
}


def container_refusal(format_name: str) -> str | None:
    """Why vidsr will not write the muxer ``format_name`` (FFmpeg's name, as ``container.format.name``),
    or None if it can. AVI and raw elementary streams cannot keep each frame's timestamp."""
    return _NO_TIMESTAMPS.get(format_name)


def output_format_name(path: Path) -> str | None:
    """The muxer FFmpeg picks for ``path`` from its extension ("matroska" for .mkv), or None if it
    knows none. Nothing is written: the name is asked of FFmpeg with an in-memory file."""
    buffer = io.BytesIO()
    buffer.name = path.name  # FFmpeg guesses the muxer from the name of a file object
    try:
        container = av.open(buffer, mode="w")
    except (ValueError, av.error.FFmpegError):
        return None
    try:
        return container.format.name
    finally:
        container.close()


def check_output_container(path: Path) -> None:
    """Refuse, before any work, an output whose extension FFmpeg has no muxer for, or a muxer that
    cannot keep timestamps (AVI): one line saying why and what to write instead. Writes nothing."""
    format_name = output_format_name(path)
    if format_name is None:
        raise OutputError(f"output {path}: FFmpeg knows no container for '{path.suffix}' (try .mp4 or .mkv)")
    refusal = container_refusal(format_name)
    if refusal is not None:
        raise OutputError(f"output {path}: {refusal}; write .mkv or .mp4 instead")


def accepts_video_codec(format_name: str, codec_name: str) -> bool:
    """Whether a ``format_name`` file can hold video encoded with ``codec_name``."""

    def add_video(probe: av.container.OutputContainer) -> None:
        stream = probe.add_stream(codec_name, rate=24)
        if not isinstance(stream, av.video.stream.VideoStream):
            raise ValueError(f"{codec_name} is not a video codec")
        stream.width, stream.height = 64, 64

    return format_accepts(format_name, add_video)


def format_accepts(format_name: str, add_stream: Callable[[av.container.OutputContainer], object]) -> bool:
    """Whether FFmpeg's muxer for ``format_name`` takes a stream, asked by writing a header in memory.

    ``supported_codecs`` cannot answer this for formats without a codec table (MPEG-TS says
    it holds only MPEG-2), so the muxer itself is asked.
    """
    container = av.open(io.BytesIO(), mode="w", format=format_name)
    try:
        add_stream(container)
        container.start_encoding()
        return True
    except (ValueError, av.error.FFmpegError):
        return False
    finally:
        try:
            container.close()
        except (ValueError, av.error.FFmpegError):
            pass


def video_stream(container: av.container.InputContainer, index: int) -> av.video.stream.VideoStream:
    """The video stream at ``index`` (as probed), typed as one."""
    stream = container.streams[index]
    if not isinstance(stream, av.video.stream.VideoStream):
        raise TypeError(f"stream {index} of {container.name} is {stream.type}, not video")
    return stream


def seek_before(container: av.container.InputContainer, stream: av.stream.Stream, pts: int) -> bool:
    """Seek to the keyframe at or before ``pts`` (never before the stream's own start); False if
    the file cannot seek there, so the caller can try from further back or rewind."""
    if stream.start_time is not None:
        pts = max(pts, stream.start_time)
    try:
        container.seek(pts, stream=stream, backward=True)
    except av.error.FFmpegError:
        return False
    return True


def rewind(container: av.container.InputContainer, stream: av.stream.Stream) -> None:
    """Back to the first packet of ``stream``.

    Not ``container.seek(0)``: Matroska without an index (a cut file, or one written to a pipe)
    refuses any target before the video's own start with "Operation not permitted", and a video
    can start at 10 s. Seeking to the stream's own start works there. InputError if even that fails.
    """
    if not seek_before(container, stream, stream.start_time or 0):
        raise InputError(f"{container.name}: cannot go back to the start of its video to read it again")


def failure_reason(exc: BaseException) -> str:
    """The operating system's or FFmpeg's own words for a failure ("No space left on device")."""
    return getattr(exc, "strerror", None) or str(exc)
