"""The versions of the media libraries, for the job description a resume is checked against.

The same settings give a different file with another x264 or FFmpeg, so a render records them.
"""

# Strict typing, less the unknown-type checks: PyAV types add_stream(), encode() and mux() only in part.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false

from __future__ import annotations

import functools
import io
import re
from fractions import Fraction

import av
import av.error
import av.video.stream

__all__ = ["media_versions"]

# Each x26x encoder writes its version into the first frame's SEI: "x264 - core 165 r3222 b35605a"
# or "x265 (build 216) - 4.2+1-e444744"; nothing else in PyAV says which build it is.
_ENCODER_BANNERS = {  # encoder: (pattern, how to show its groups)
    "libx264": (re.compile(rb"x264 - (core \d+(?: r\d+ [0-9a-f]+)?)"), "{0}"),
    "libx265": (re.compile(rb"x265 \(build (\d+)\) - ([^:\x00]+)"), "{1} (build {0})"),
}


@functools.cache
def media_versions() -> dict[str, str]:
    """PyAV's and FFmpeg's versions, each FFmpeg library's, and libx264's and libx265's builds where
    this PyAV has them: {"pyav": "18.1.0", "ffmpeg": "8.1.2", "libavcodec": "62.28.102", ...,
    "libx264": "core 165"}. Encodes one tiny frame per encoder the first time (milliseconds)."""
    versions = {"pyav": av.__version__, "ffmpeg": av.ffmpeg_version_info}
    for library, (major, minor, micro) in sorted(av.library_versions.items()):
        versions[library] = f"{major}.{minor}.{micro}"
    for encoder, (banner, shown) in _ENCODER_BANNERS.items():
        found = _encoder_banner(encoder, banner, shown)
        if found is not None:
            versions[encoder] = found
    return versions


def _encoder_banner(encoder: str, banner: re.Pattern[bytes], shown: str) -> str | None:
    if encoder not in av.codecs_available:
        return None
    buffer = io.BytesIO()
    container = av.open(buffer, mode="w", format="nut")
    try:
        options = {"preset": "ultrafast"}
        if encoder == "libx265":
            options["x265-params"] = "log-level=none"  # or it prints its settings on the terminal
        stream = container.add_stream(encoder, rate=1, options=options)
        if not isinstance(stream, av.video.stream.VideoStream):
            return None
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        frame = av.VideoFrame(64, 64, "yuv420p")
        frame.pts, frame.time_base = 0, Fraction(1)
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    except (av.error.FFmpegError, ValueError):
        return None
    finally:
        container.close()
    found = banner.search(buffer.getvalue())
    if found is None:
        return None
    return shown.format(*(group.decode("ascii", "replace").strip() for group in found.groups()))
