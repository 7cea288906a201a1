"""The inspection layer: looking at a video or a picture without rendering a whole video.

``extract_frames`` writes chosen frames as PNGs (optionally upscaled and compared), ``describe``
reports what a file holds and estimates a render (as the render layer planned it: the command
line passes that plan in as a :class:`PlannedRender`), ``upscale_images`` upscales still
pictures. Imports the media, models and upscale layers; never the render layer.
"""

from __future__ import annotations

from vidsr.inspect.frames import FramesJob, WrittenFrame, extract_frames, frame_to_rgb
from vidsr.inspect.images import ImageJob, ImageResult, upscale_images
from vidsr.inspect.info import MediaReport, PlannedRender, VideoFacts, describe
from vidsr.inspect.timeline import Selection, Timeline

__all__ = [
    "FramesJob",
    "ImageJob",
    "ImageResult",
    "MediaReport",
    "PlannedRender",
    "Selection",
    "Timeline",
    "VideoFacts",
    "WrittenFrame",
    "describe",
    "extract_frames",
    "frame_to_rgb",
    "upscale_images",
]
