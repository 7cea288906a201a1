"""The render layer: the only place that wires the stages into a resumable video render.

``upscale_video`` probes, plans, and runs decode → upscale → encode per segment, journaling
finished segments in a work folder, then joins them with the input's other streams. It imports
the media, models and upscale layers; nothing but the command line imports it.
"""

from __future__ import annotations

from vidsr.render.pipeline import (
    DEFAULT_SEGMENT_SECONDS,
    Progress,
    RenderInterrupted,
    RenderResult,
    UpscaleJob,
    upscale_video,
)

__all__ = ["DEFAULT_SEGMENT_SECONDS", "Progress", "RenderInterrupted", "RenderResult", "UpscaleJob", "upscale_video"]
