"""The render layer: the only place that wires the stages into a resumable video render.

``plan_job`` decides everything before the first frame; ``SegmentRenderer`` renders one segment
(decode → upscale → encode) wherever it runs; an executor runs segments (in this process, or on
a Ray cluster); ``upscale_video`` drives it all, journaling finished segments in a work folder,
then joins them with the input's other streams. It imports the media, models and upscale
layers; nothing but the command line imports it.
"""

from __future__ import annotations

from vidsr.render.executor import Activity, Executor, InProcessExecutor
from vidsr.render.pipeline import Backend, Progress, RenderInterrupted, RenderResult, upscale_video
from vidsr.render.plan import DEFAULT_SEGMENT_SECONDS, RenderPlan, UpscaleJob, default_batch, plan_job
from vidsr.render.segments import RenderedSegment, SegmentRenderer, render_segment

__all__ = [
    "DEFAULT_SEGMENT_SECONDS",
    "Activity",
    "Backend",
    "Executor",
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
    "render_segment",
    "upscale_video",
]
