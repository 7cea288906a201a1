"""What a video holds and what upscaling it would take: streams, exact frame count, an estimate.

The frame count is exact: taken from the header when it proves a constant frame rate,
otherwise counted from the packet headers (the file is read once, without decoding).
The time estimate runs a few real frames from the middle of the video through the chosen
model on the chosen device; it is an estimate, and says how it was made.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import torch

from vidsr.decode import frames_from
from vidsr.frames import Timeline, frame_to_rgb
from vidsr.probe import VideoInfo, open_input, probe
from vidsr.upscale import UpscaleOptions, create_upscaler

FRAMES_TIMED = 3  # frames timed at least for the estimate, after one untimed warm-up frame
MAX_FRAMES_TIMED = 12  # fast models: keep timing up to this many frames ...
TIMING_SECONDS = 1.0  # ... until this much time is measured (one stall then weighs less)
TIMING_CROP = 256  # frames larger than this square are timed on a centre crop and scaled by area

_PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
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
class Estimate:
    """How long the upscale would take here: ``seconds_per_frame`` measured on
    ``frames_timed`` real frames (``timed_on`` says how), times ``frames``."""

    model: str
    device: str
    precision: str  # fp32, bf16 or fp16: what the network computes in
    output_width: int
    output_height: int
    frames: int
    frames_timed: int
    timed_on: str
    seconds_per_frame: float
    seconds: float


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

    def as_dict(self) -> dict:
        """Plain JSON-ready data."""
        return asdict(self)


def describe(
    path: Path,
    *,
    upscale: UpscaleOptions = UpscaleOptions(),
    estimate: bool = True,
    frames_timed: int = FRAMES_TIMED,
) -> MediaReport:
    """Everything ``vidsr info`` shows. Raises InputError for bad input, ModelError and
    SettingsError from the model options (only when ``estimate``)."""
    info = probe(path)
    upscaler = create_upscaler(upscale, bit_depth=info.bit_depth) if estimate else None
    with open_input(path) as container:
        stream = container.streams[info.video_index]
        timeline = Timeline.proven_constant(stream, info) or Timeline.read(container, stream, info)
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
        measured = _estimate(container, stream, info, video.frames, upscaler, frames_timed) if upscaler else None
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
    )


def _estimate(container, stream, info: VideoInfo, frames: int, upscaler, frames_timed: int) -> Estimate:
    """Time frames from the middle (after one untimed warm-up) through ``upscaler``: at least
    ``frames_timed``, and more while they add up to under TIMING_SECONDS (fast models)."""
    middle = info.start_pts + int(Fraction(info.duration) / 2 / info.time_base)
    crop, area_factor, timed_on = _timing_crop(info.width, info.height)
    timings: list[float] = []
    last = None
    with torch.inference_mode():
        for frame in _repeat_last(frames_from(container, stream, info, middle)):
            rgb = crop(frame_to_rgb(frame, info.colour)[0]).to(upscaler.device)
            started = time.perf_counter()
            upscaler.upscale_rgb(rgb).cpu()
            if last is not None:  # the first call allocates and warms caches: not timed
                timings.append(time.perf_counter() - started)
            last = frame
            enough = len(timings) >= frames_timed and sum(timings) >= TIMING_SECONDS
            if enough or len(timings) >= max(frames_timed, MAX_FRAMES_TIMED):
                break
    per_frame = statistics.median(timings) * area_factor
    width, height = upscaler.output_size(info.width, info.height)
    return Estimate(
        model=upscaler.model.name,
        device=upscaler.device.type,
        precision=_PRECISION_NAMES.get(upscaler.dtype, str(upscaler.dtype)),
        output_width=width,
        output_height=height,
        frames=frames,
        frames_timed=len(timings),
        timed_on=timed_on,
        seconds_per_frame=per_frame,
        seconds=per_frame * frames,
    )


def _repeat_last(frames):
    """The frames, then the last one again for ever: a short video still gives enough to time."""
    frame = None
    for frame in frames:
        yield frame
    while frame is not None:
        yield frame


def _timing_crop(width: int, height: int):
    """Large frames are timed on a centre crop: the networks' cost grows with the area."""
    crop_width, crop_height = min(width, TIMING_CROP), min(height, TIMING_CROP)
    if (crop_width, crop_height) == (width, height):
        return (lambda rgb: rgb), 1.0, f"whole {width}x{height} frames"
    left, top = (width - crop_width) // 2, (height - crop_height) // 2

    def crop(rgb: torch.Tensor) -> torch.Tensor:
        return rgb[..., top : top + crop_height, left : left + crop_width]

    return crop, width * height / (crop_width * crop_height), f"{crop_width}x{crop_height} centre crops, scaled by area"
