"""The render layer: the only place that wires the stages into a resumable video render.

``plan_job`` decides everything before the first frame; ``SegmentRenderer`` renders one segment
(decode → upscale → encode) wherever it runs; an executor runs segments (in this process, or on
a Ray cluster); ``upscale_video`` drives it all, journaling finished segments in a work folder,
then joins them with the input's other streams. It imports the media, models and upscale
layers; nothing but the command line imports it.
"""

from __future__ import annotations

from vidsr.errors import RenderInterrupted
from vidsr.render.executor import Activity, Backend, Executor, InProcessBackend, InProcessExecutor, WorkerDevice
from vidsr.render.pipeline import Progress, RenderResult, upscale_video
from vidsr.render.plan import DEFAULT_SEGMENT_SECONDS, RenderPlan, UpscaleJob, default_batch, plan_job
from vidsr.render.segments import RenderedSegment, SegmentRenderer

__all__ = [
    "DEFAULT_SEGMENT_SECONDS",
    "Activity",
    "Backend",
    "Executor",
    "InProcessBackend",
    "InProcessExecutor",
    "Progress",
    "RenderInterrupted",
    "RenderPlan",
    "RenderResult",
    "RenderedSegment",
    "SegmentRenderer",
    "UpscaleJob",
    "default_batch",
    "plan_job",
    "upscale_video",
    "WorkerDevice",
]
