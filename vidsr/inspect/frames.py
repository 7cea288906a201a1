"""Look at a video before rendering it: chosen frames as PNGs, optionally upscaled and compared.

Frames are found by seeking, never by decoding from the start (see :mod:`vidsr.inspect.timeline`
for which frame a time or a number means).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream
import torch

from vidsr.errors import OutputError
from vidsr.inspect.compare import comparison, upright
from vidsr.inspect.images import Picture, refuse_existing, save_image
from vidsr.inspect.timeline import FrameRef, PredictionMissed, Selection, Timeline, decode_at, reading_limits, resolve
from vidsr.media import VideoInfo, frame_planes, name_time, open_input, probe, show_time, video_stream
from vidsr.planes import ColourSpec
from vidsr.upscale import UpscaleOptions, Upscaler, create_upscaler
from vidsr.upscale.colour import planes_to_rgb, planes_to_tensors

__all__ = ["FramesJob", "WrittenFrame", "extract_frames", "frame_names", "frame_to_rgb"]


@dataclass(frozen=True)
class FramesJob:
    """What ``vidsr frames`` was asked to do."""

    input: Path
    output_dir: Path
    selection: Selection = Selection()
    upscaled: bool = False
    compare: bool = False
    upscale: UpscaleOptions = UpscaleOptions()
    force: bool = False
    stream: int | None = None  # the input's video stream; None: the one a player shows
    deinterlace: bool | None = None  # None: when the input is interlaced, as a render does
    accept_truncated: bool = False  # take frames from a cut-off input instead of refusing it


@dataclass(frozen=True)
class WrittenFrame:
    """The files written for one frame (``upscaled``/``compare`` None when not asked for)."""

    index: int
    seconds: float
    source: Path
    upscaled: Path | None = None
    compare: Path | None = None


FrameCallback = Callable[[WrittenFrame], None]


def extract_frames(
    job: FramesJob, *, on_frame: FrameCallback | None = None, warn: Callable[[str], None] | None = None
) -> list[WrittenFrame]:
    """Write the selected frames of ``job.input`` into ``job.output_dir``; ``on_frame`` hears of
    each, ``warn`` of a cut-off input taken with ``accept_truncated``.

    Raises InputError for bad input, SettingsError for a selection outside the video,
    OutputError if an output exists (without ``force``) or the folder cannot be made,
    ModelError for an unknown model (only with ``upscaled`` or ``compare``).
    """
    info = probe(job.input, stream=job.stream, accept_truncated=job.accept_truncated)
    duration = (
        Fraction(info.available_duration)
        if info.available_duration > 0
        else Fraction(max(info.frames, 1)) / (info.frame_rate or 1)
    )
    if info.truncation is not None and warn is not None:
        warn(info.truncation.warning())
    upscaler = None
    if job.upscaled or job.compare:  # a bad model or option is refused before anything is written
        upscaler = create_upscaler(job.upscale, bit_depth=info.bit_depth, warn=warn or (lambda message: None))
    _prepare_folder(job.output_dir)
    with open_video(info, job.deinterlace) as video:
        container, stream = video.container, video.stream
        timeline = Timeline.proven_constant(stream, info)
        if timeline is not None:
            try:
                return _extract(job, video, resolve(job.selection, timeline, duration), upscaler, on_frame)
            except PredictionMissed:
                pass  # the header's promise did not hold: count the frames instead
        until_pts, until_count = reading_limits(job.selection, info, duration)
        timeline = Timeline.read(container, stream, info, until_pts=until_pts, until_count=until_count)
        return _extract(job, video, resolve(job.selection, timeline, duration), upscaler, on_frame)


@dataclass(frozen=True)
class OpenVideo:
    """The input, open: its container, video stream, what the probe found, and whether to deinterlace."""

    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    info: VideoInfo
    deinterlace: bool


@contextmanager
def open_video(info: VideoInfo, deinterlace: bool | None) -> Generator[OpenVideo, None, None]:
    """The probed input opened for reading frames (``deinterlace`` None: when it is interlaced)."""
    with open_input(info.path) as container:
        stream = video_stream(container, info.video_index)
        stream.thread_type = "AUTO"
        yield OpenVideo(container, stream, info, info.interlaced if deinterlace is None else deinterlace)


def _prepare_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file; give a folder for the frames")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None


def frame_names(ref: FrameRef) -> tuple[str, str, str]:
    """File names for a frame: the source, the model's output, the comparison."""
    stem = f"frame_{ref.index:06d}_t{name_time(ref.seconds)}"
    return f"{stem}.png", f"{stem}_upscaled.png", f"{stem}_compare.png"


def _extract(
    job: FramesJob, video: OpenVideo, refs: list[FrameRef], upscaler: Upscaler | None, on_frame: FrameCallback | None
) -> list[WrittenFrame]:
    if not job.force:
        refuse_existing([path for ref in refs for path in _targets(job, ref) if path is not None])
    written: list[WrittenFrame] = []
    try:
        for ref, frame in decode_at(video.container, video.stream, video.info, refs, deinterlace=video.deinterlace):
            written.append(_write_frame(job, ref, frame, video.info, upscaler))
            if on_frame is not None:
                on_frame(written[-1])
    except PredictionMissed:
        for done in written:  # their names carry computed frame numbers that proved wrong
            for path in (done.source, done.upscaled, done.compare):
                if path is not None:
                    path.unlink(missing_ok=True)
        raise
    return written


def _targets(job: FramesJob, ref: FrameRef) -> tuple[Path, Path | None, Path | None]:
    source, upscaled, compare = (job.output_dir / name for name in frame_names(ref))
    return source, upscaled if job.upscaled else None, compare if job.compare else None


def _write_frame(
    job: FramesJob, ref: FrameRef, frame: av.VideoFrame, info: VideoInfo, upscaler: Upscaler | None
) -> WrittenFrame:
    source_path, upscaled_path, compare_path = _targets(job, ref)
    stored, bits = frame_to_rgb(frame, info.colour)
    rgb = upright(stored, info.rotation)
    save_image(source_path, _picture(rgb, bits))
    if upscaler is not None:
        with torch.inference_mode():  # upscaled as stored, as the video render does, then turned
            upscaled = upright(upscaler.upscale_rgb(stored.to(upscaler.device)).cpu(), info.rotation)
        if upscaled_path is not None:
            save_image(upscaled_path, _picture(upscaled, bits))
        if compare_path is not None:
            model = _model_label(upscaler, rgb, upscaled)
            caption = f"{show_time(ref.seconds)}  frame {ref.index}"
            image = comparison(rgb, upscaled, left=["source, bicubic"], right=[model], caption=caption)
            save_image(compare_path, _picture(image, 8))
    return WrittenFrame(ref.index, float(ref.seconds), source_path, upscaled_path, compare_path)


def _model_label(upscaler: Upscaler, source: torch.Tensor, upscaled: torch.Tensor) -> str:
    factor = upscaled.shape[-1] / source.shape[-1]
    return f"{upscaler.model.name} x{factor:g}"


def _picture(rgb: torch.Tensor, bits: int) -> Picture:
    return Picture(rgb=rgb[0].permute(1, 2, 0).contiguous().numpy(), alpha=None, bits=bits)


def frame_to_rgb(frame: av.VideoFrame, colour: ColourSpec) -> tuple[torch.Tensor, int]:
    """A decoded frame as RGB 0..1 (1 x 3 x H x W, float32) by vidsr's own conversion, and
    the bits per sample of the source (8, or more for 10-bit and deeper video)."""
    planes, layout = frame_planes(frame)
    first, second, third = (plane[None] for plane in planes_to_tensors(planes, layout))
    rgb = planes_to_rgb((first, second, third), layout, colour)
    return rgb, (8 if layout.bit_depth <= 8 else 16)
