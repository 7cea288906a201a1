"""What a video holds and what upscaling it would take: streams, exact frame count, an estimate.

The frame count is exact: taken from the header when it proves a constant frame rate,
otherwise counted from the packet headers (the file is read once, without decoding).
The time estimate runs a few real frames from the middle of the video through the model, and
their output through the encoder, exactly as a render would: device, precision, tiles, batch,
output size and encoder preset are the render's own plan (:class:`PlannedRender`, which the
command line makes with the render layer's ``plan_job``: this layer may not import that one).
The encoder's CPU time is shared with the network on a CPU. It is an estimate, and says how it
was made.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.video.stream
import torch

from vidsr.inspect.frames import frame_to_rgb
from vidsr.inspect.timeline import Timeline
from vidsr.media import (
    EncodeSettings,
    VideoInfo,
    VideoWriter,
    display_aspect_ratio,
    frames_from,
    open_input,
    output_pix_fmt,
    probe,
    video_stream,
)
from vidsr.models import LoadedModel, describe_needs
from vidsr.planes import OutputBatch
from vidsr.upscale import EngineName, Precision, Upscaler, VideoPlanes, select_device
from vidsr.upscale.colour import rgb_to_planes, tensors_to_planes
from vidsr.upscale.reuse import ReuseCount, work_needed
from vidsr.upscale.tiling import DEFAULT_OVERLAP, spans

FRAMES_TIMED = 3  # frames timed at least for the estimate, after one untimed warm-up frame
MAX_FRAMES_TIMED = 12  # fast models: keep timing up to this many frames ...
TIMING_SECONDS = 1.0  # ... until this much time is measured (one stall then weighs less)
TIMING_CROP = 256  # frames larger than this square are timed on a centre crop and scaled by area

_PRIMARIES = {
    1: "bt709",
    2: "unspecified",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
_TRANSFERS = {
    1: "bt709",
    2: "unspecified",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    13: "srgb",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084 (PQ)",
    18: "arib-std-b67 (HLG)",
}


@dataclass(frozen=True)
class VideoFacts:
    """The video stream. ``frame_rate`` is the average (frames per second); ``variable``
    says whether frame durations differ (by more than one tick of the time base)."""

    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    frame_rate: float | None
    variable: bool
    frames: int
    duration: float
    matrix: str
    range: str  # "limited" | "full"
    primaries: str
    transfer: str
    colour_tagged: bool  # False: matrix and range are vidsr's guess for untagged video
    rotation: int
    sample_aspect_ratio: str  # the shape of a stored pixel, "1" for square, "32/27" for NTSC 16:9 DVD
    display_aspect_ratio: str  # the shape of the picture as shown, "16/9"
    interlaced: bool
    field_order: str  # "progressive", "tff", "bff" or "unknown"


@dataclass(frozen=True)
class AudioFacts:
    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class OtherFacts:
    """A subtitle, data or attachment stream."""

    index: int
    kind: str
    codec: str
    language: str | None


@dataclass(frozen=True)
class PlannedRender:
    """What a render of the video would run with, as the render's planning decided it: the
    estimate times frames exactly so (the command line makes it from ``plan_job``'s plan)."""

    model: LoadedModel
    device: str  # the device the render runs on: "cpu", "cuda:1", "vulkan:0"
    engine: EngineName  # what runs the network there: torch or ncnn
    precision: Precision
    tile: int  # 0: whole frames
    batch: int  # frames per network call
    video: VideoPlanes  # the output size, pixel layout and colour
    deinterlace: bool
    encode: EncodeSettings  # the encoder, the preset chosen for the model, the pixel format
    reuse: bool  # unchanged tiles keep their output (the estimate measures how many there are)


@dataclass(frozen=True)
class Estimate:
    """How long the upscale would take here: ``seconds_per_frame`` measured on
    ``frames_timed`` real frames (``timed_on`` says how), times ``frames``.

    ``seconds_per_frame`` is the network's time, plus on a CPU the encoder's CPU time spread
    over the cores the two share (``encoder_share`` of the network's); with a GPU, the slower
    of the two.
    """

    model: str
    model_needs: str  # channels, precisions, size requirements, tiles (the model's descriptor)
    model_description: str  # the network as read from its file, and what vidsr assumed
    device: str
    precision: str  # fp32, bf16 or fp16: what the network computes in
    encoder: str  # what a render with the default settings encodes with, e.g. "libx264 veryfast"
    output_width: int
    output_height: int
    frames: int
    frames_timed: int
    timed_on: str
    network_seconds_per_frame: float
    encoder_share: float  # the encoder's CPU time over the network's
    seconds_per_frame: float
    seconds: float
    network_work: float = 1.0  # with reuse, the network's work over every frame's whole (measured)
    reuse_frames: int = 0  # consecutive frames the reuse decisions were measured on (0: reuse off)


@dataclass(frozen=True)
class MediaReport:
    path: str
    container: str
    size_bytes: int
    duration: float
    video: VideoFacts
    audio: tuple[AudioFacts, ...]
    others: tuple[OtherFacts, ...]
    chapters: int
    estimate: Estimate | None
    videos_left_out: tuple[str, ...] = ()  # the other video streams and why they are not the video
    truncation: str | None = None  # the input is cut off: what is missing

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)


def describe(
    path: Path,
    *,
    render: PlannedRender | None = None,
    frames_timed: int = FRAMES_TIMED,
    stream: int | None = None,
) -> MediaReport:
    """Everything ``vidsr info`` shows, of the video ``stream`` (None: the one a player shows);
    with ``render``, the estimate of that render's time. Raises InputError for bad input. A
    cut-off input is described, with what is missing, not refused."""
    info = probe(path, stream=stream, accept_truncated=True)
    with open_input(path) as container:
        chosen = video_stream(container, info.video_index)
        timeline = Timeline.proven_constant(chosen, info) or Timeline.read(container, chosen, info)
        video = _video_facts(info, timeline)
        audio = tuple(
            AudioFacts(
                s.index,
                s.codec_context.name,
                s.codec_context.channels,
                s.codec_context.sample_rate,
                s.metadata.get("language"),
            )
            for s in container.streams.audio
        )
        measured = _estimate(container, chosen, info, video.frames, render, frames_timed) if render else None
    return MediaReport(
        path=str(path),
        container=info.container,
        size_bytes=path.stat().st_size,
        duration=info.duration,
        video=video,
        audio=audio,
        others=tuple(OtherFacts(s.index, s.kind, s.codec, s.language) for s in info.others if s.kind != "audio"),
        chapters=info.chapters,
        estimate=measured,
        videos_left_out=tuple(video.describe() for video in info.videos_left_out),
        truncation=info.truncation.warning() if info.truncation is not None else None,
    )


def _video_facts(info: VideoInfo, timeline: Timeline) -> VideoFacts:
    variable = False
    if not timeline.constant and len(timeline.frame_pts) > 2:
        steps = [b - a for a, b in zip(timeline.frame_pts, timeline.frame_pts[1:])]
        variable = max(steps) - min(steps) > 1
    return VideoFacts(
        index=info.video_index,
        codec=info.codec,
        width=info.width,
        height=info.height,
        pix_fmt=info.pix_fmt,
        bit_depth=info.bit_depth,
        frame_rate=float(info.frame_rate) if info.frame_rate else None,
        variable=variable,
        frames=timeline.frames,
        duration=info.duration,
        matrix=info.colour.matrix,
        range="full" if info.colour.full_range else "limited",
        primaries=_PRIMARIES.get(info.colour.primaries, f"code {info.colour.primaries}"),
        transfer=_TRANSFERS.get(info.colour.transfer, f"code {info.colour.transfer}"),
        colour_tagged=info.colour_tagged,
        rotation=info.rotation,
        sample_aspect_ratio=str(info.sample_aspect_ratio),
        display_aspect_ratio=str(display_aspect_ratio(info.width, info.height, info.sample_aspect_ratio)),
        interlaced=info.interlaced,
        field_order=info.field_order,
    )


def _estimate(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    frames: int,
    render: PlannedRender,
    frames_timed: int,
) -> Estimate:
    """Time frames from the middle (after one untimed warm-up call) through the render's network,
    ``render.batch`` frames a call: at least ``frames_timed``, and more while they add up to under
    TIMING_SECONDS (fast models); then the render's encoder on what came out.

    Uncompiled: where the plan compiles the network (long CPU renders) the render is a few
    per cent faster than this says."""
    middle = info.start_pts + int(Fraction(info.duration) / 2 / info.time_base)
    crop, timed_on = _timing_crop(info.width, info.height)
    output_width, output_height = render.video.output_size
    crop_size = (round(crop.width * output_width / info.width), round(crop.height * output_height / info.height))
    device = select_device(render.device)
    upscaler = Upscaler(render.model, device=device, precision=render.precision, tile=render.tile, engine=render.engine)
    frame_factor = _processed_pixels(info.width, info.height, render.tile) / _processed_pixels(
        crop.width, crop.height, render.tile
    )
    timings: list[float] = []  # seconds per frame of each timed call
    network_cpu = 0.0
    outputs: list[torch.Tensor] = []
    warmed_up = False
    with torch.inference_mode():
        frames_of_calls = _batches(_frames_from_the_middle(container, stream, info, middle, render), render.batch)
        for batch in frames_of_calls:
            rgb = torch.cat([crop.of(frame_to_rgb(frame, info.colour)[0]) for frame in batch]).to(upscaler.device)
            started, started_cpu = time.perf_counter(), time.process_time()
            upscaled = upscaler.upscale_rgb(rgb, crop_size).cpu()
            if warmed_up:  # the first call allocates and warms caches: not timed
                timings.extend([(time.perf_counter() - started) / len(batch)] * len(batch))
                network_cpu += time.process_time() - started_cpu
                outputs.extend(upscaled[index : index + 1] for index in range(len(upscaled)))
            warmed_up = True
            enough = len(timings) >= frames_timed and sum(timings) >= TIMING_SECONDS
            if enough or len(timings) >= max(frames_timed, MAX_FRAMES_TIMED):
                break
    work = _reuse_work(container, stream, info, middle, render) if render.reuse else ReuseCount()
    network = statistics.median(timings) * frame_factor * work.work
    encoder_cpu = _encoder_cpu_seconds(outputs, info, render) / len(outputs) * frame_factor
    encoder_share = encoder_cpu / max(network_cpu / len(outputs) * frame_factor, 1e-9)
    if device.type == "cpu":  # the encoder shares the CPU with the network
        per_frame = network * (1.0 + encoder_share)
    else:
        per_frame = max(network, encoder_cpu / (os.cpu_count() or 1))
    return Estimate(
        model=render.model.name,
        model_needs=describe_needs(render.model),
        model_description=render.model.description,
        device=render.device + (f" ({render.engine})" if render.engine != "torch" else ""),
        precision=render.precision,
        encoder=f"{render.encode.codec} {render.encode.preset}",
        output_width=output_width,
        output_height=output_height,
        frames=frames,
        frames_timed=len(timings),
        timed_on=timed_on,
        network_seconds_per_frame=network,
        encoder_share=encoder_share,
        seconds_per_frame=per_frame,
        seconds=per_frame * frames,
        network_work=work.work,
        reuse_frames=work.frames,
    )


REUSE_FRAMES_MEASURED = 12  # consecutive frames from the middle whose reuse decisions are made


def _reuse_work(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    middle: int,
    render: PlannedRender,
) -> ReuseCount:
    """The network's work with reuse on frames from the middle, decided as the render decides
    (without the network: only which tiles changed). Conservative: the first of these frames
    counts whole, as each segment's first does, and segments hold many more frames."""
    decoded = frames_from(container, stream, info, middle, deinterlace=render.deinterlace, accept_truncated=True)
    sample = [frame_to_rgb(frame, info.colour)[0][0] for frame in itertools.islice(decoded, REUSE_FRAMES_MEASURED)]
    if len(sample) < 2:  # nothing to reuse from: every frame whole
        return ReuseCount()
    with torch.inference_mode():
        return work_needed(sample, render.model.scale)


def _processed_pixels(width: int, height: int, tile: int) -> int:
    """The input pixels the network processes for a ``width`` x ``height`` frame: the frame, or
    in tiles, each with the context it shares with its neighbours."""
    if not tile:
        return width * height

    def covered(length: int) -> int:
        return sum(span.stop - span.start for span in spans(length, tile, DEFAULT_OVERLAP))

    return covered(width) * covered(height)


def _encoder_cpu_seconds(outputs: list[torch.Tensor], info: VideoInfo, render: PlannedRender) -> float:
    """CPU time (all threads) the render's encoder spends on ``outputs`` (RGB, 1 x 3 x H x W), flushed."""
    settings, layout = render.encode, render.video.output_layout
    height, width = (side - side % 2 for side in outputs[0].shape[-2:])  # 4:2:0 wants even sizes
    planes = [rgb_to_planes(rgb[..., :height, :width], layout, render.video.output_colour) for rgb in outputs]
    started = time.process_time()
    writer = VideoWriter(
        Path(os.devnull),  # only the encoder's work is wanted
        width=width,
        height=height,
        time_base=info.time_base,
        frame_rate=info.frame_rate,
        settings=settings,
        pix_fmt=output_pix_fmt(settings, info.bit_depth),  # the plan's: it names one
        colour=render.video.output_colour,
    )
    for index, frame_planes in enumerate(planes):
        writer.write(OutputBatch(planes=tensors_to_planes(frame_planes, layout), pts=(index,), first_index=index))
    writer.close()
    return time.process_time() - started


def _frames_from_the_middle(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    middle: int,
    render: PlannedRender,
) -> Iterator[av.VideoFrame]:
    """Frames from the middle on, then the last one again for ever (a short video still gives
    enough to time); from the start when no frame begins after the middle (a video of one frame,
    or a few long ones). Decoded as the render would: deinterlaced or not (its cost timed too),
    a cut-off input as it is."""
    frame = None
    for start in (middle, info.start_pts):
        for frame in frames_from(container, stream, info, start, deinterlace=render.deinterlace, accept_truncated=True):
            yield frame
        if frame is not None:
            break
    while frame is not None:
        yield frame


def _batches(frames: Iterator[av.VideoFrame], size: int) -> Iterator[list[av.VideoFrame]]:
    """The frames in lists of ``size``, the network's calls (the frames go on for ever)."""
    while True:
        yield list(itertools.islice(frames, size))


@dataclass(frozen=True)
class _Crop:
    """The centre of a frame that is timed: large frames are timed on a crop, as the networks'
    cost grows with the area."""

    left: int
    top: int
    width: int
    height: int

    def of(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb[..., self.top : self.top + self.height, self.left : self.left + self.width]


def _timing_crop(width: int, height: int) -> tuple[_Crop, str]:
    """The crop to time and how to say it."""
    crop_width, crop_height = min(width, TIMING_CROP), min(height, TIMING_CROP)
    crop = _Crop((width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height)
    if (crop_width, crop_height) == (width, height):
        return crop, f"whole {width}x{height} frames"
    return crop, f"{crop_width}x{crop_height} centre crops, scaled by area"
