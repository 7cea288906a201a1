"""What may be written where: the checks made before any work, and the output's temporary name."""

from __future__ import annotations

import os
from pathlib import Path

from vidsr.errors import OutputError, SettingsError
from vidsr.media import accepts_video_codec, check_output_container, count_video_packets, output_format_name

__all__ = ["check_complete", "check_container", "check_paths", "partial_path"]


def check_paths(source: Path, output: Path, *, force: bool) -> None:
    """Refuse, before any work, an output that would overwrite the input or an existing file."""
    if output.exists() or output.is_symlink():
        if source.exists() and output.exists() and os.path.samefile(source, output):
            raise OutputError(f"output {output} is the input file; choose another name")
        if output.is_dir():
            raise OutputError(f"output {output} is a folder; give a file name such as {output / 'upscaled.mp4'}")
        if not force:
            raise OutputError(f"output {output} already exists; use --force to overwrite it")
    elif source.resolve() == output.resolve():
        raise OutputError(f"output {output} is the input file; choose another name")
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")
    if not output.suffix:
        raise OutputError(f"output {output} has no extension; vidsr picks the container from it (.mp4, .mkv, .mov)")


def check_container(output: Path, codec_name: str) -> None:
    """Refuse, before any work, an output extension FFmpeg has no muxer for, one that cannot keep
    each frame's timestamp (AVI), or one that cannot hold the chosen video codec. Writes nothing."""
    check_output_container(output)
    format_name = output_format_name(output)
    if format_name is not None and not accepts_video_codec(format_name, codec_name):
        raise SettingsError(
            f"a {output.suffix} file cannot hold {codec_name} video; choose another --codec or extension"
        )


def partial_path(output: Path) -> Path:
    """The temporary name the output is written under; it keeps the extension FFmpeg reads."""
    return output.with_name(f".{output.stem}.partial{output.suffix}")


def check_complete(output: Path, frames: int) -> None:
    """Read back what was written before it takes the output's name: a short file never does."""
    written = count_video_packets(output)
    if written != frames:
        raise OutputError(f"{output} holds {written} of {frames} frames after writing; is the disk full?")
