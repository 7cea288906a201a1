"""The plain data that crosses stages: frames as integer planes with their timestamps.

The decoder produces :class:`FrameBatch`, the network stage turns it into :class:`OutputBatch`,
the encoder consumes that; :class:`PlaneLayout` and :class:`ColourSpec` say how to read the
samples. Every layer may import this module, so no stage imports another to name its data.
It needs numpy only: the media layer stays usable without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["ColourSpec", "FrameBatch", "Matrix", "OutputBatch", "PlaneLayout", "Planes"]

Matrix = Literal["bt601", "bt709", "bt2020"]
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ColourSpec:
    """How a video's samples map to RGB: the matrix, the range, and the tags carried along.

    ``primaries`` and ``transfer`` are FFmpeg enum values; vidsr does not convert between
    them (the network sees gamma-encoded RGB, as it was trained), it only keeps them.
    """

    matrix: Matrix
    full_range: bool
    primaries: int = 2  # 2 = unspecified
    transfer: int = 2


@dataclass(frozen=True)
class PlaneLayout:
    """The shape of a frame's planes: what they hold and how chroma is subsampled.

    ``kind`` is "yuv" for Y, Cb, Cr planes and "gbr" for FFmpeg's planar G, B, R.
    ``chroma_shift`` is (log2 horizontal, log2 vertical) subsampling: (1, 1) is 4:2:0.
    """

    kind: Literal["yuv", "gbr"]
    bit_depth: int
    chroma_shift: tuple[int, int] = (1, 1)

    @property
    def dtype(self) -> np.dtype:
        """The array type of one sample as FFmpeg stores it: uint8, or little-endian uint16 above 8 bits."""
        return np.dtype(np.uint8) if self.bit_depth <= 8 else np.dtype("<u2")

    @property
    def max_code(self) -> int:
        return (1 << self.bit_depth) - 1

    def plane_sizes(self, width: int, height: int) -> tuple[tuple[int, int], ...]:
        """(rows, columns) of each plane of a ``width`` x ``height`` frame; odd sizes round chroma up."""
        if self.kind != "yuv":
            return ((height, width),) * 3
        shift_x, shift_y = self.chroma_shift
        chroma = (-(-height >> shift_y), -(-width >> shift_x))
        return (height, width), chroma, chroma


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive decoded frames in presentation order.

    ``planes`` are three arrays of shape (frames, plane height, plane width) in ``layout.dtype``;
    ``pts`` are the source timestamps in the stream's time base. A batch never spans two segments.
    """

    planes: Planes
    pts: tuple[int, ...]
    layout: PlaneLayout
    first_index: int
    segment: int = 0

    def __len__(self) -> int:
        return len(self.pts)


def _already_there() -> None:
    pass


@dataclass(frozen=True)
class OutputBatch:
    """Upscaled frames as integer planes in the output layout, with the source timestamps.

    ``wait`` returns once the planes hold their samples: at once on the CPU; on a GPU when the
    copy from the device has landed, so the device can take the next batch before this one is read.
    """

    planes: Planes
    pts: tuple[int, ...]
    first_index: int
    segment: int = 0
    wait: Callable[[], None] = _already_there

    def __len__(self) -> int:
        return len(self.pts)
