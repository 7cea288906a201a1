"""Frames as arrays: the planes of a PyAV frame as numpy views, and back.

The decoder reads frames into planes with these, the encoder writes planes into frames, and
the inspection commands read single frames the same way, so there is one reading of a frame.
"""

# Strict typing, less the unknown-type checks: numpy's reshape() overloads are typed only in part.
# pyright: reportUnknownMemberType=false

from __future__ import annotations

import av
import av.video.plane
import numpy as np

from vidsr.planes import PlaneLayout, Planes

__all__ = ["frame_layout", "frame_planes", "plane_array", "plane_rows", "repack"]


def frame_layout(frame_format: av.VideoFormat) -> tuple[PlaneLayout, str | None]:
    """How vidsr reads frames of this format, and the format to convert to first (None: as is).

    Planar YUV is read as it comes. Everything else is repacked by swscale into the
    planar format closest to it: RGB-like formats into planar GBR, packed or
    semi-planar YUV (nv12, p010, ...) into planar YUV with the same subsampling.
    """
    bits = max(component.bits for component in frame_format.components)
    if frame_format.is_rgb or frame_format.has_palette:
        target = "gbrp" if bits <= 8 else "gbrp16le"
        return PlaneLayout(kind="gbr", bit_depth=8 if bits <= 8 else 16, chroma_shift=(0, 0)), target
    shift = _chroma_shift(frame_format)
    depth, suffix = _planar_depth(bits)
    if shift not in _SUBSAMPLING_NAMES:
        shift = (0, 0)  # exotic subsampling (4:1:1, 4:4:0): let swscale make it 4:4:4
    target = f"yuv{_SUBSAMPLING_NAMES[shift]}p{suffix}"
    layout = PlaneLayout(kind="yuv", bit_depth=depth, chroma_shift=shift)
    # yuvj* formats are the same planes in full range; the range is in the ColourSpec.
    readable_as_is = frame_format.name.replace("yuvj", "yuv", 1) == target
    return layout, None if readable_as_is else target


_SUBSAMPLING_NAMES = {(1, 1): "420", (1, 0): "422", (0, 0): "444"}


def _chroma_shift(frame_format: av.VideoFormat) -> tuple[int, int]:
    if len(frame_format.components) < 3:
        return (1, 1)  # grey: any subsampling will do, the chroma planes are flat
    width = frame_format.chroma_width(64)
    height = frame_format.chroma_height(64)
    return ((64 // width).bit_length() - 1, (64 // height).bit_length() - 1)


def _planar_depth(bits: int) -> tuple[int, str]:
    for depth, suffix in ((8, ""), (10, "10le"), (12, "12le")):
        if bits <= depth:
            return depth, suffix
    return 16, "16le"


def plane_rows(plane: av.video.plane.VideoPlane, dtype: np.dtype) -> np.ndarray:
    """All of a plane's memory as rows of samples, line padding included; writable, no copy."""
    buffer = memoryview(plane)  # pyright: ignore[reportArgumentType]  # a VideoPlane is a buffer; its stub omits it
    return np.frombuffer(buffer, dtype=dtype).reshape(-1, plane.line_size // dtype.itemsize)


def plane_array(plane: av.video.plane.VideoPlane, height: int, width: int, dtype: np.dtype) -> np.ndarray:
    """A (height, width) view of one plane, dropping the line padding FFmpeg adds."""
    return plane_rows(plane, dtype)[:height, :width]


def frame_planes(frame: av.VideoFrame) -> tuple[Planes, PlaneLayout]:
    """One decoded frame as three (rows, columns) plane arrays, read as the decoder reads them
    (repacked first where the format is not planar); views into the frame, copy to keep them."""
    layout, convert_to = frame_layout(frame.format)
    if convert_to is not None:
        frame = repack(frame, convert_to)
    sizes = layout.plane_sizes(frame.width, frame.height)
    first, second, third = (
        plane_array(plane, rows, columns, layout.dtype) for plane, (rows, columns) in zip(frame.planes, sizes)
    )
    return (first, second, third), layout


def repack(frame: av.VideoFrame, target: str) -> av.VideoFrame:
    """Repack a frame into the planar format vidsr reads, keeping every sample value."""
    if frame.format.name.startswith("gray"):
        # Grey is full range by FFmpeg's convention: copy Y as it is, not squeezed into 16..235.
        return frame.reformat(format=target, src_color_range=2, dst_color_range=2)
    return frame.reformat(format=target)
