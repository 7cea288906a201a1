"""Look at a video before rendering it: chosen frames as PNGs, optionally upscaled and compared.

Frames are found by seeking, never by decoding from the start. Which frame is "at" a time
is the one on screen then: the last frame whose timestamp is at or before it (with half a
millisecond of slack, so a time copied from a file name, rounded to the millisecond,
finds that same frame again).

Frame numbers need to know how many frames come before. When the file's header proves a
constant frame rate (a frame count and a duration that agree exactly, as MP4 and MOV
state them) they are computed, and every decoded frame is checked against the prediction.
Otherwise (Matroska, variable frame rate) they are counted from the packet headers up to
the last frame wanted: no decoding, but the file is read up to there.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from vidsr.colour import ColourSpec, planes_to_rgb
from vidsr.decode import frame_layout, frames_from, plane_array, repack
from vidsr.errors import InputError, OutputError, SettingsError
from vidsr.images import Picture, refuse_existing, save_image
from vidsr.probe import VideoInfo, open_input, probe
from vidsr.upscale import UpscaleOptions, create_upscaler

DEFAULT_COUNT = 5  # frames written when nothing is selected, spread over the video
SEEK_AHEAD_SECONDS = 3  # the next wanted frame is further ahead than this: seek, don't decode forward
TIME_SLACK = Fraction(1, 2000)  # half a millisecond: times in file names are rounded to the millisecond
_REORDER_SLACK_PACKETS = 32  # packets read past the target: more than any codec reorders (H.264: 16)

_TIME_PATTERN = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)$")


def parse_time(text: str) -> Fraction:
    """Seconds ("75", "75.5") or [hh:]mm:ss[.ms] ("1:15.5", "0:01:15") as an exact Fraction."""
    match = _TIME_PATTERN.match(text.strip())
    if not match:
        raise SettingsError(f"{text!r} is not a time: give seconds (75.5), mm:ss (1:15.5) or hh:mm:ss.ms (0:01:15.500)")
    hours, minutes, seconds = match.groups()
    if hours is not None or minutes is not None:
        if float(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
            raise SettingsError(f"{text!r} is not a time: minutes and seconds go up to 59")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + Fraction(seconds)


def name_time(seconds: Fraction | float) -> str:
    """A time as h-mm-ss.mmm, rounded to the millisecond: file-name safe everywhere (no colons)."""
    millis = round(Fraction(seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours}-{minutes:02d}-{whole:02d}.{millis:03d}"


def show_time(seconds: Fraction | float) -> str:
    return name_time(seconds).replace("-", ":")


# ---------------------------------------------------------------------------- where frames are


@dataclass(frozen=True, order=True)
class FrameRef:
    """One frame: its number (0 = first), its pts, and its time from the first frame (seconds)."""

    pts: int
    index: int
    seconds: Fraction = field(compare=False)


class Timeline:
    """Where a video's frames are: computed from a proven constant rate, or read from packets.

    ``frame_pts`` (read) holds the sorted timestamps of the first frames, possibly not all
    of them (``complete`` says); ``step`` (constant) is the pts between two frames.
    """

    def __init__(
        self,
        info: VideoInfo,
        time_base: Fraction,
        *,
        step: int | None = None,
        frame_pts: list[int] | None = None,
        complete: bool = True,
    ) -> None:
        self.info = info
        self.time_base = time_base
        self.start_pts = info.start_pts
        self.step = step
        self.frame_pts = frame_pts
        self.complete = complete

    @property
    def constant(self) -> bool:
        return self.step is not None

    @property
    def frames(self) -> int:
        """How many frames the video has (or how many were read, if not ``complete``)."""
        return self.info.frames if self.step is not None else len(self.frame_pts)

    @classmethod
    def proven_constant(cls, stream, info: VideoInfo) -> Timeline | None:
        """A computed timeline if the header proves a constant rate: frames x step == duration."""
        rate = stream.base_rate
        if not (info.frames_exact and rate and stream.duration and info.frames):
            return None
        step = 1 / (Fraction(rate) * stream.time_base)
        if step.denominator != 1 or stream.frames * step != stream.duration:
            return None
        return cls(info, stream.time_base, step=int(step))

    @classmethod
    def read(
        cls, container, stream, info: VideoInfo, *, until_pts: int | None = None, until_count: int | None = None
    ) -> Timeline:
        """Timestamps from the packet headers (demuxing only), far enough to hold the frame at
        ``until_pts`` and ``until_count`` frames; to the end of the file if neither is given."""
        container.seek(0)
        found: list[int] = []
        past_target = 0
        complete = True
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None or pts < info.start_pts:
                continue
            found.append(pts)
            if past_target or (
                (until_pts is None or pts > until_pts) and (until_count is None or len(found) >= until_count)
            ):
                past_target += 1  # B-frames come out of order: read on a little before sorting
                if past_target > _REORDER_SLACK_PACKETS:
                    complete = False
                    break
        container.seek(0)
        return cls(info, stream.time_base, frame_pts=sorted(found), complete=complete)

    def seconds_of(self, pts: int) -> Fraction:
        return (pts - self.start_pts) * self.time_base

    def at_index(self, index: int) -> FrameRef:
        if index < 0 or (self.complete and index >= self.frames):
            raise SettingsError(f"--index {index}: the video has {self.frames} frames (0 to {self.frames - 1})")
        pts = self.start_pts + index * self.step if self.step is not None else self.frame_pts[index]
        return FrameRef(pts, index, self.seconds_of(pts))

    def at_time(self, seconds: Fraction) -> FrameRef:
        """The frame on screen at ``seconds`` from the first frame."""
        limit = self.start_pts + math.floor((seconds + TIME_SLACK) / self.time_base)
        if self.step is not None:
            index = min((limit - self.start_pts) // self.step, self.frames - 1)
        else:
            index = bisect.bisect_right(self.frame_pts, limit) - 1
        return self.at_index(max(index, 0))

    def between(self, start: Fraction, end: Fraction) -> list[FrameRef]:
        """Every frame whose time is in [start, end)."""
        first = self.at_time(start)
        if first.seconds + TIME_SLACK < start:
            first_index = first.index + 1
        else:
            first_index = first.index
        refs = []
        for index in range(first_index, self.frames):
            ref = self.at_index(index)
            if ref.seconds >= end:
                break
            refs.append(ref)
        return refs


# ---------------------------------------------------------------------------- what to write


@dataclass(frozen=True)
class Selection:
    """Which frames to write; everything given is combined. Nothing given: DEFAULT_COUNT frames.

    ``at`` are times from the first frame; ``every`` and ``count`` work within
    ``start``..``end`` (default: the whole video); ``start``/``end`` alone select every frame
    in that range; ``index`` are frame numbers from 0.
    """

    at: tuple[Fraction, ...] = ()
    index: tuple[int, ...] = ()
    every: Fraction | None = None
    count: int | None = None
    start: Fraction | None = None
    end: Fraction | None = None

    @property
    def empty(self) -> bool:
        given = (self.every, self.count, self.start, self.end)
        return not self.at and not self.index and all(value is None for value in given)

    def times(self, duration: Fraction) -> list[Fraction]:
        """The times asked for (excluding a plain range), checked against ``duration``."""
        for moment in self.at:
            if moment >= duration:
                raise SettingsError(f"--at {show_time(moment)} is past the end of the video ({show_time(duration)})")
        start, end = self.range(duration)
        times = list(self.at)
        if self.every is not None:
            if self.every <= 0:
                raise SettingsError("--every must be more than 0 seconds")
            steps = math.ceil((end - start) / self.every)
            times.extend(start + k * self.every for k in range(steps))
        count = DEFAULT_COUNT if self.empty else self.count
        if count is not None:
            if count < 1:
                raise SettingsError("--count must be at least 1")
            times.extend(start + (k + Fraction(1, 2)) * (end - start) / count for k in range(count))
        return times

    def range(self, duration: Fraction) -> tuple[Fraction, Fraction]:
        start = self.start or Fraction(0)
        end = min(self.end, duration) if self.end is not None else duration
        if start >= duration:
            raise SettingsError(f"--start {show_time(start)} is past the end of the video ({show_time(duration)})")
        if end <= start:
            raise SettingsError(f"--end {show_time(end)} must come after --start {show_time(start)}")
        return start, end

    @property
    def plain_range(self) -> bool:
        """--start/--end without --every or --count: every frame in the range."""
        return (self.start is not None or self.end is not None) and self.every is None and self.count is None


def resolve(selection: Selection, timeline: Timeline, duration: Fraction) -> list[FrameRef]:
    """The selected frames, in order, each once."""
    refs = {timeline.at_time(moment) for moment in selection.times(duration)}
    refs.update(timeline.at_index(index) for index in selection.index)
    if selection.plain_range:
        refs.update(timeline.between(*selection.range(duration)))
    return sorted(refs)


def _reading_limits(selection: Selection, info: VideoInfo, duration: Fraction) -> tuple[int | None, int | None]:
    """How far a packet scan must read: up to this pts, and this many frames (None: no limit)."""
    times = selection.times(duration)
    if selection.plain_range:
        times.append(selection.range(duration)[1])
    until_pts = info.start_pts + math.ceil((max(times) + TIME_SLACK) / info.time_base) if times else None
    until_count = max(selection.index) + 1 if selection.index else None
    return until_pts, until_count


# ---------------------------------------------------------------------------- the job


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


@dataclass(frozen=True)
class WrittenFrame:
    """The files written for one frame (``upscaled``/``compare`` None when not asked for)."""

    index: int
    seconds: float
    source: Path
    upscaled: Path | None = None
    compare: Path | None = None


class _PredictionMissed(Exception):
    """A decoded frame is not where the computed timeline said: fall back to reading packets."""


FrameCallback = Callable[[WrittenFrame], None]


def extract_frames(job: FramesJob, *, on_frame: FrameCallback | None = None) -> list[WrittenFrame]:
    """Write the selected frames of ``job.input`` into ``job.output_dir``; ``on_frame`` hears of each.

    Raises InputError for bad input, SettingsError for a selection outside the video,
    OutputError if an output exists (without ``force``) or the folder cannot be made,
    ModelError for an unknown model (only with ``upscaled`` or ``compare``).
    """
    info = probe(job.input)
    duration = Fraction(info.duration) if info.duration > 0 else Fraction(max(info.frames, 1)) / (info.frame_rate or 1)
    _prepare_folder(job.output_dir)
    upscaler = None
    if job.upscaled or job.compare:
        upscaler = create_upscaler(job.upscale, bit_depth=info.bit_depth)
    with open_input(info.path) as container:
        stream = container.streams[info.video_index]
        stream.thread_type = "AUTO"
        video = _Video(container, stream, info)
        timeline = Timeline.proven_constant(stream, info)
        if timeline is not None:
            try:
                return _extract(job, video, resolve(job.selection, timeline, duration), upscaler, on_frame)
            except _PredictionMissed:
                pass  # the header's promise did not hold: count the frames instead
        until_pts, until_count = _reading_limits(job.selection, info, duration)
        timeline = Timeline.read(container, stream, info, until_pts=until_pts, until_count=until_count)
        return _extract(job, video, resolve(job.selection, timeline, duration), upscaler, on_frame)


@dataclass(frozen=True)
class _Video:
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    info: VideoInfo


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


def _extract(job: FramesJob, video: _Video, refs: list[FrameRef], upscaler, on_frame) -> list[WrittenFrame]:
    if not job.force:
        refuse_existing([path for ref in refs for path in _targets(job, ref) if path is not None])
    written: list[WrittenFrame] = []
    try:
        for ref, frame in decode_at(video.container, video.stream, video.info, refs):
            written.append(_write_frame(job, ref, frame, video.info, upscaler))
            if on_frame is not None:
                on_frame(written[-1])
    except _PredictionMissed:
        for done in written:  # their names carry computed frame numbers that proved wrong
            for path in (done.source, done.upscaled, done.compare):
                if path is not None:
                    path.unlink(missing_ok=True)
        raise
    return written


def _targets(job: FramesJob, ref: FrameRef) -> tuple[Path, Path | None, Path | None]:
    source, upscaled, compare = (job.output_dir / name for name in frame_names(ref))
    return source, upscaled if job.upscaled else None, compare if job.compare else None


def _write_frame(job: FramesJob, ref: FrameRef, frame: av.VideoFrame, info: VideoInfo, upscaler) -> WrittenFrame:
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


def upright(rgb: torch.Tensor, rotation: int) -> torch.Tensor:
    """A picture (... x H x W) turned as the video's display matrix says, as players show it:
    ``rotation`` is FFmpeg's angle, in degrees counterclockwise."""
    quarter_turns = round(rotation / 90) % 4
    return torch.rot90(rgb, quarter_turns, dims=(-2, -1)) if quarter_turns else rgb


def _model_label(upscaler, source: torch.Tensor, upscaled: torch.Tensor) -> str:
    factor = upscaled.shape[-1] / source.shape[-1]
    return f"{upscaler.model.name} x{factor:g}"


def _picture(rgb: torch.Tensor, bits: int) -> Picture:
    return Picture(rgb=rgb[0].permute(1, 2, 0).contiguous().numpy(), alpha=None, bits=bits)


def decode_at(container, stream, info: VideoInfo, refs: list[FrameRef]) -> Iterator[tuple[FrameRef, av.VideoFrame]]:
    """Decode exactly the frames ``refs`` (sorted by pts): seek to far ones, decode forward to near ones.

    Raises _PredictionMissed if a decoded frame's pts is not the one expected.
    """
    ahead = int(SEEK_AHEAD_SECONDS / stream.time_base)
    frames: Iterator[av.VideoFrame] | None = None
    position: int | None = None
    try:
        for ref in refs:
            if frames is None or position is None or ref.pts - position > ahead:
                if frames is not None:
                    frames.close()
                frames = frames_from(container, stream, info, ref.pts)
            frame = next((f for f in frames if f.pts is None or f.pts >= ref.pts), None)
            if frame is None:
                raise InputError(f"{info.path}: the video ends before {show_time(ref.seconds)} (frame {ref.index})")
            if frame.pts is not None and frame.pts != ref.pts:
                raise _PredictionMissed
            position = frame.pts
            yield ref, frame
    finally:
        if frames is not None:
            frames.close()


def frame_to_rgb(frame: av.VideoFrame, colour: ColourSpec) -> tuple[torch.Tensor, int]:
    """A decoded frame as RGB 0..1 (1 x 3 x H x W, float32) by vidsr's own conversion, and
    the bits per sample of the source (8, or more for 10-bit and deeper video)."""
    layout, convert_to = frame_layout(frame.format)
    if convert_to is not None:
        frame = repack(frame, convert_to)
    dtype = np.uint8 if layout.bit_depth <= 8 else np.dtype("<u2")
    shift_x, shift_y = layout.chroma_shift
    height, width = frame.height, frame.width
    chroma = (-(-height >> shift_y), -(-width >> shift_x)) if layout.kind == "yuv" else (height, width)
    planes = []
    for plane, (rows, columns) in zip(frame.planes, ((height, width), chroma, chroma)):
        samples = plane_array(plane, rows, columns, dtype)
        samples = samples.astype(np.int32) if layout.bit_depth > 8 else np.array(samples)
        planes.append(torch.from_numpy(samples)[None])
    rgb = planes_to_rgb(tuple(planes), layout, colour)
    return rgb, (8 if layout.bit_depth <= 8 else 16)


# ---------------------------------------------------------------------------- the comparison


_GAP = 8  # pixels between the two panels
_PADDING = 4


def comparison(
    source: torch.Tensor, upscaled: torch.Tensor, *, left: list[str], right: list[str], caption: str
) -> torch.Tensor:
    """Side by side: ``source`` enlarged bicubically to the model's output size, then ``upscaled``.

    Both panels sit at the bottom; above each, its label lines and ``caption``. Returns
    RGB 0..1 (1 x 3 x H x W) for an 8-bit PNG.
    """
    height, width = upscaled.shape[-2:]
    bicubic = F.interpolate(source.float(), size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    font = ImageFont.load_default()
    line_height = _text_height(font) + 2
    label_height = _PADDING * 2 + line_height * (max(len(left), len(right)) + 1)
    canvas = Image.new("RGB", (width * 2 + _GAP, height + label_height), (24, 24, 24))
    for x, panel, lines in ((0, bicubic, left), (width + _GAP, upscaled, right)):
        pixels = (panel[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        canvas.paste(Image.fromarray(pixels), (x, label_height))
        draw = ImageDraw.Draw(canvas)
        for row, text in enumerate([*lines, caption]):
            draw.text((x + _PADDING, _PADDING + row * line_height), text, fill=(240, 240, 240), font=font)
    array = np.asarray(canvas, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _text_height(font) -> int:
    left, top, right, bottom = font.getbbox("Ag0:")
    return int(bottom - min(top, 0))
