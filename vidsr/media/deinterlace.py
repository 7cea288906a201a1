"""Interlaced video: which field comes first, and frames made whole before the network sees them.

An interlaced frame holds two fields, the even lines and the odd lines, filmed a field apart
(1/50 s for PAL). Anything that moves shows as combs, and an upscaler sharpens the combs. FFmpeg's
bwdif filter rebuilds each frame from its fields and their neighbours in time, one frame out for
each frame in, at the same timestamp, so nothing else in the pipeline changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Literal

import av
import av.error
import av.filter
import av.video.stream

__all__ = ["Deinterlacer", "FieldOrder", "field_order"]

FieldOrder = Literal["progressive", "tff", "bff", "unknown"]

# FFmpeg's AVFieldOrder: 1 progressive; 2 top coded and shown first; 3 bottom/bottom; 4 top coded,
# bottom shown first; 5 bottom coded, top shown first. What matters for showing is the display order.
_FIELD_ORDERS: dict[int, FieldOrder] = {1: "progressive", 2: "tff", 3: "bff", 4: "bff", 5: "tff"}


def field_order(stream: av.video.stream.VideoStream, first_frame: av.VideoFrame) -> tuple[FieldOrder, bool]:
    """The field order of a stream and whether it is interlaced, read after decoding its first frame.

    The decoder's field order comes from the bitstream (H.264, MPEG-2); a frame flagged interlaced
    whose stream states no order is interlaced in an "unknown" order. Codecs that cannot code
    fields (VP9, AV1, ...) state nothing and flag nothing: progressive.
    """
    order = _FIELD_ORDERS.get(int(stream.codec_context.field_order or 0))
    if order in ("tff", "bff"):
        return order, True
    if first_frame.interlaced_frame:
        return "unknown", True
    return "progressive", False


class Deinterlacer:
    """bwdif over a stream of decoded frames: every interlaced frame is rebuilt from its fields,
    progressive frames pass through unchanged, and each frame keeps its own pts.

    Frames go in by ``push`` (or ``frames``), in decode output order; ``flush`` at the end gives
    back the frame bwdif holds as look-ahead. After a seek, ``reset`` and push from the new place:
    the first frame after a reset has no earlier neighbour, so start one frame or more before
    the first frame wanted, and its output matches an uninterrupted run.
    """

    def __init__(self, time_base: Fraction) -> None:
        """``time_base``: the stream's, which the frames' pts are in and are given back in."""
        self.time_base = time_base
        self._graph: av.filter.Graph | None = None

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """Feed one frame; returns the frames ready (none for the first, then one each)."""
        if self._graph is None:
            self._graph = self._graph_for(frame)
        self._graph.vpush(frame)
        return self._ready(self._graph)

    def flush(self) -> list[av.VideoFrame]:
        """The frames still held, at the end of the stream; the next push starts afresh."""
        graph, self._graph = self._graph, None
        if graph is None:
            return []
        graph.vpush(None)
        return self._ready(graph)

    def reset(self) -> None:
        """Forget the frames held (after a seek): the next push starts a new run."""
        self._graph = None

    def frames(self, frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """Every frame of ``frames``, deinterlaced, in order, flushed at the end."""
        for frame in frames:
            yield from self.push(frame)
        yield from self.flush()

    def _graph_for(self, frame: av.VideoFrame) -> av.filter.Graph:
        """buffer → bwdif → buffersink, described from the first frame (size, format, colour tags)."""
        graph = av.filter.Graph()
        source = graph.add(
            "buffer",
            video_size=f"{frame.width}x{frame.height}",
            pix_fmt=frame.format.name,
            time_base=f"{self.time_base.numerator}/{self.time_base.denominator}",
            pixel_aspect="1/1",  # bwdif does not look at it, and vidsr carries the SAR itself
            colorspace=str(int(frame.colorspace)),
            range=str(int(frame.color_range)),
        )
        # send_frame: one frame out per frame in, at its own time; interlaced: only frames flagged
        # interlaced are touched (progressive ones pass bit for bit); parity=auto: the frame's own flag.
        bwdif = graph.add("bwdif", mode="send_frame", parity="auto", deint="interlaced")
        graph.link_nodes(source, bwdif, graph.add("buffersink")).configure()
        return graph

    def _ready(self, graph: av.filter.Graph) -> list[av.VideoFrame]:
        ready: list[av.VideoFrame] = []
        while True:
            try:
                frame = graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):  # wants more input / all out
                return ready
            ready.append(self._in_stream_time(frame))

    def _in_stream_time(self, frame: av.VideoFrame) -> av.VideoFrame:
        """bwdif counts in half the input's time base (for its field rate); back to the stream's."""
        if frame.pts is not None and frame.time_base is not None and frame.time_base != self.time_base:
            frame.pts = round(frame.pts * frame.time_base / self.time_base)
        frame.time_base = self.time_base
        return frame
