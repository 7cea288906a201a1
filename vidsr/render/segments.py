"""Rendering one segment: decode its frames, upscale them, encode them into bytes.

The same code renders every segment wherever it runs: in this process (one segment after the
other) or in a Ray worker, so a render spread over many machines cannot drift from one made
on one. A :class:`SegmentRenderer` loads the network once and renders many segments.

    decode thread ──queue──► upscale (this thread, on the device) ──queue──► encode thread ─► bytes
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from vidsr.errors import ModelError
from vidsr.media import VideoWriter, decode_batches
from vidsr.models import LoadedModel, choose_model
from vidsr.planes import FrameBatch, OutputBatch
from vidsr.render.journal import SegmentRecord, segment_file_name
from vidsr.render.plan import RenderPlan
from vidsr.render.stages import Prefetcher, Sink
from vidsr.render.testpoints import kill_point, pause_point
from vidsr.upscale import FrameReuse, ReuseCount, Upscaler, select_device

__all__ = ["RenderedSegment", "SegmentRenderer"]

DECODE_QUEUE_BATCHES = 4  # decoded batches waiting for the network
ENCODE_QUEUE_BATCHES = 4  # upscaled batches waiting for the encoder

FramesCallback = Callable[[int, ReuseCount], None]  # frames of the segment finished so far, the tiles reused
Notify = Callable[[str], None]


@dataclass(frozen=True)
class RenderedSegment:
    """A finished segment: its encoded bytes (empty when no frame falls in it), its record, and
    the network work reuse saved (nothing counted when reuse is off)."""

    data: bytes
    record: SegmentRecord
    reuse: ReuseCount = ReuseCount()


class SegmentRenderer:
    """Renders segments of one plan, with the network loaded once.

    ``model`` is the plan's network when this process already has it; otherwise the renderer
    loads it from the plan's model names (which must name the same files here) and refuses
    weights whose hash is not the plan's.
    """

    def __init__(
        self,
        plan: RenderPlan,
        model: LoadedModel | None = None,
        *,
        warn: Notify | None = None,
        decoder_threads: int = 0,
    ) -> None:
        loaded = model if model is not None else choose_model(plan.models, plan.alpha)
        if loaded.content_hash != plan.model.sha256:
            raise ModelError(
                f"{loaded.name} here is not the model the render was planned with "
                f"(weights {loaded.content_hash[:12]}, planned {plan.model.sha256[:12]}); "
                "give every machine the same file"
            )
        self.plan = plan
        self.decoder_threads = decoder_threads  # 0: FFmpeg's choice; a cluster worker uses its share of the CPUs
        self.upscaler = Upscaler(
            loaded,
            device=select_device(plan.device),
            engine=plan.engine,
            precision=plan.precision,
            tile=plan.tile.tile,
            video=plan.video,
            compile=plan.settings.compiled,
            warn=warn or _quiet,
        )

    def render(self, index: int, *, on_frames: FramesCallback | None = None) -> RenderedSegment:
        """Decode, upscale and encode segment ``index``; raises VidsrError for bad input or output."""
        plan = self.plan
        encoded = _EncodedSegment(plan, index)
        batches = decode_batches(
            plan.info,
            batch_size=plan.batch,
            segmentation=plan.segmentation,
            first_segment=index,
            last_segment=None if index == plan.settings.segments - 1 else index,  # the last one runs to the end
            decoder_threads=self.decoder_threads,
            deinterlace=plan.settings.deinterlace,
            accept_truncated=plan.settings.accept_truncated,
            on_next_segment=encoded.next_frame_in,
        )
        decoded: Prefetcher[FrameBatch] | None = None
        encoder: Sink[OutputBatch] | None = None
        try:  # the threads start inside it, so whatever stops the render also stops them
            decoded = Prefetcher(batches, depth=DECODE_QUEUE_BATCHES, name="vidsr-decode")
            encoder = Sink(encoded.write, depth=ENCODE_QUEUE_BATCHES, name="vidsr-encode")
            frames = 0
            # Reuse starts afresh in every segment (its first frame is computed whole), so a
            # segment renders the same bytes wherever and whenever it runs: resumes, clusters.
            # Not primed with the frame before the segment: that frame's output here would not be
            # the one the previous segment wrote (made from older references), so the step at the
            # boundary would stay what it is (at most what any tile computed anew shows: noise
            # under the ChangeTest), for one more network frame and a seek per segment.
            reuse = FrameReuse() if plan.settings.reuse else None
            for batch in decoded:
                encoder.put(self.upscaler.upscale(batch, reuse))
                frames += len(batch)
                if on_frames is not None:
                    on_frames(frames, reuse.count if reuse is not None else ReuseCount())
            encoder.finish()
        except BaseException:
            if encoder is not None:
                encoder.abort()
            encoded.abort()
            raise
        finally:
            if decoded is not None:
                decoded.close()
        return encoded.finish(reuse.count if reuse is not None else ReuseCount())


class _EncodedSegment:
    """The encoder's side of one segment, in the encode thread: frames into NUT bytes in memory."""

    def __init__(self, plan: RenderPlan, index: int) -> None:
        self.plan = plan
        self.index = index
        self.buffer = io.BytesIO()
        self.writer: VideoWriter | None = None
        self.pts: list[int] = []
        self.empty_after = 0

    def next_frame_in(self, segment: int | None) -> None:
        """The decoder saw the next frame in ``segment`` (None: no more frames): the segments in
        between hold none (the last one is open-ended: a frame beyond it is still its own)."""
        last = self.plan.settings.segments - 1
        following = last + 1 if segment is None else min(segment, last)
        self.empty_after = max(0, following - self.index - 1)

    def write(self, batch: OutputBatch) -> None:
        if self.writer is None:  # opened with the first frame: a segment with none stays empty
            plan, settings = self.plan, self.plan.settings
            self.writer = VideoWriter(
                self.buffer,
                width=settings.size[0],
                height=settings.size[1],
                time_base=plan.info.time_base,
                frame_rate=plan.info.frame_rate,
                settings=plan.encode,
                pix_fmt=settings.pix_fmt,
                colour=plan.info.colour,
                sample_aspect_ratio=settings.sample_aspect_ratio,
            )
        self.writer.write(batch)
        self.pts.extend(batch.pts)
        kill_point(f"frame:{self.index}:{batch.first_index}")
        pause_point(f"frame:{self.index}:{batch.first_index}")

    def finish(self, reuse: ReuseCount) -> RenderedSegment:
        if self.writer is not None:
            self.writer.close()
        data = self.buffer.getvalue()
        record = SegmentRecord(
            index=self.index,
            file=segment_file_name(self.index) if self.pts else None,
            frames=len(self.pts),
            first_pts=self.pts[0] if self.pts else None,
            last_pts=self.pts[-1] if self.pts else None,
            size=len(data),
            empty_after=self.empty_after,
        )
        return RenderedSegment(data, record, reuse)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _quiet(message: str) -> None:
    pass
