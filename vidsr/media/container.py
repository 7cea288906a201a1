"""Opening and closing media files, with every way that can fail turned into a VidsrError."""

# Strict typing, less the unknown-type checks: PyAV types add_stream() only in part.
# pyright: reportUnknownMemberType=false

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import av
import av.container
import av.error
import av.video.stream

from vidsr.errors import InputError, OutputError

__all__ = [
    "accepts_video_codec",
    "close_output",
    "failure_reason",
    "format_accepts",
    "muxer_for",
    "open_input",
    "open_output",
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


def muxer_for(path: Path) -> str:
    """The name of the FFmpeg muxer that writes files named like ``path`` (from its extension);
    OutputError if there is none. Asked in a folder of its own: nothing beside ``path`` is touched."""
    with tempfile.TemporaryDirectory(prefix="vidsr-muxer-") as folder:
        try:
            container = av.open(str(Path(folder) / f"probe{path.suffix}"), mode="w")
        except (ValueError, av.error.FFmpegError):
            raise OutputError(
                f"output {path}: FFmpeg knows no container for '{path.suffix}' (try .mp4 or .mkv)"
            ) from None
        name = container.format.name
        container.close()
    return name


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


def failure_reason(exc: BaseException) -> str:
    """The operating system's or FFmpeg's own words for a failure ("No space left on device")."""
    return getattr(exc, "strerror", None) or str(exc)
