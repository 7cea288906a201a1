"""`vidsr compare`: one page that shows, at chosen moments, what each model makes of a video.

The moments are found as `vidsr frames` finds them (:mod:`vidsr.inspect.timeline`), upscaled as
stored and turned upright, and written as PNGs into ``PAGE_files/`` beside the page; with
``clip_seconds``, a few seconds around each moment as short H.264 videos too. Each model's speed
and whole-video time are measured as `vidsr info` measures them. The page itself is written
last and atomically (:mod:`vidsr.inspect.compare_html`), so a page on disk always has its files.
"""

# Strict typing, less the unknown-type checks: PyAV types add_stream_from_template() and mux() only in part.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import torch
import torch.nn.functional as F

from vidsr.errors import OutputError, SettingsError
from vidsr.inspect.compare import upright
from vidsr.inspect.compare_html import ClipFiles, ModelCard, Moment, PageData, SourceFacts, page_html
from vidsr.inspect.frames import OpenVideo, frame_to_rgb, open_video
from vidsr.inspect.images import Picture, save_image
from vidsr.inspect.info import PlannedRender, describe
from vidsr.inspect.timeline import FrameRef, PredictionMissed, Selection, Timeline, decode_at, reading_limits, resolve
from vidsr.media import (
    EncodeSettings,
    VideoInfo,
    VideoWriter,
    close_output,
    display_aspect_ratio,
    frames_from,
    open_output,
    pix_fmt_layout,
    probe,
    show_time,
)
from vidsr.models import EMBEDDED
from vidsr.planes import OutputBatch
from vidsr.upscale import UpscaleOptions, Upscaler, create_upscaler
from vidsr.upscale.colour import rgb_to_planes, tensors_to_planes

__all__ = ["CompareJob", "ComparePage", "assets_folder", "default_models", "write_compare_page"]

CLIP_CRF = 16  # the clips are for looking closely: compression artefacts must not be mistaken for the model's
CLIP_PRESET = "veryfast"


@dataclass(frozen=True)
class CompareJob:
    """What ``vidsr compare`` was asked to do.

    ``upscale`` holds how every model runs (scale, tile, device, precision); its ``models`` is
    replaced by each of ``models`` in turn. ``render_options`` are the options, as typed, that a
    render of the whole video takes: they go into each model's ready-to-copy command line.
    ``plan`` gives the render a model would run as (planned by the render layer, which this one
    may not import: the command line hands it over), so its time is timed as `vidsr info` times it.
    """

    input: Path
    page: Path
    models: tuple[str, ...] = ()  # empty: default_models(); the first model's scale sizes them all
    selection: Selection = Selection()
    clip_seconds: float | None = None
    upscale: UpscaleOptions = UpscaleOptions()
    width: int | None = None  # a target size instead of a scale, as `vidsr upscale --width/--height`
    height: int | None = None
    force: bool = False
    stream: int | None = None
    deinterlace: bool | None = None
    accept_truncated: bool = False
    render_options: tuple[str, ...] = ()
    plan: Callable[[UpscaleOptions], PlannedRender] | None = None  # None: no estimate


@dataclass(frozen=True)
class ComparePage:
    """What was written: the page, its files' folder, and what it shows."""

    page: Path
    assets: Path
    moments: tuple[Moment, ...]
    models: tuple[ModelCard, ...]


Say = Callable[[str], None]


def _ignore(message: str) -> None:
    del message


def default_models() -> tuple[str, ...]:
    """The embedded models, fastest first (keys 1, 2, 3 on the page). Each suits 8-bit and deeper
    video alike: deeper video runs them in fp32 (see ``choose_precision``), so none is left out."""
    return tuple(reversed(EMBEDDED))


def assets_folder(page: Path) -> Path:
    """``PAGE_files/`` beside ``PAGE.html``, as browsers name the files of a saved page."""
    return page.with_name(f"{page.stem}_files")


def write_compare_page(job: CompareJob, *, inform: Say | None = None, warn: Say | None = None) -> ComparePage:
    """Write the comparison page of ``job``; ``inform`` hears of each step, ``warn`` of what the
    user should know (a cut-off input, tiles).

    Raises InputError for bad input, SettingsError for moments outside the video, ModelError for
    an unknown model, OutputError if the page exists (without ``force``) or cannot be written.
    """
    say = inform or _ignore
    caution = warn or _ignore
    info = probe(job.input, stream=job.stream, accept_truncated=job.accept_truncated)
    if info.truncation is not None:
        caution(info.truncation.warning())
    names = job.models or default_models()
    upscalers = [  # bad models and options are refused before anything is written
        create_upscaler(replace(job.upscale, models=(name,)), bit_depth=info.bit_depth, warn=caution) for name in names
    ]
    _refuse_existing_page(job)
    size = output_size(info, job.upscale.scale, job.width, job.height, upscalers[0])
    with open_video(info, job.deinterlace) as video:
        frames = _moment_frames(job, video)  # moments outside the video are refused before the slow work
        cards = tuple(_model_card(job, info, name, size, say) for name in names)
        moments = _write_pictures(job, video, frames, upscalers, size, say)
    data = PageData(
        title=job.input.name,
        source=_source_facts(info),
        output_width=upright_size(size, info.rotation)[0],
        output_height=upright_size(size, info.rotation)[1],
        models=cards,
        moments=moments,
        clip_seconds=job.clip_seconds,
    )
    assets = assets_folder(job.page)
    page_html(data, job.page, assets.name)
    return ComparePage(page=job.page, assets=assets, moments=moments, models=cards)


def _refuse_existing_page(job: CompareJob) -> None:
    if job.page.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"{job.page}: name the page .html")
    if job.page.exists() and not job.force:
        raise OutputError(f"{job.page} exists; use --force to replace it")
    assets = assets_folder(job.page)
    if assets.exists() and not job.force:  # a folder of that name is replaced whole: never without asking
        raise OutputError(f"{assets} exists; use --force to replace it with the page's pictures")
    if job.page.exists() and job.page.resolve() == job.input.resolve():
        raise OutputError(f"{job.page} is the input")


def _publish(building: Path, assets: Path) -> None:
    """The new files in place of the old (the page that names them is written after)."""
    try:
        if assets.exists():
            shutil.rmtree(assets)
        building.rename(assets)
    except OSError as exc:
        raise OutputError(f"cannot write {assets}: {exc.strerror or exc}") from None


def output_size(
    info: VideoInfo, scale: float | None, width: int | None, height: int | None, upscaler: Upscaler
) -> tuple[int, int]:
    """The (width, height) of every model's frames, as stored: from --width/--height (of the
    picture as shown, one following the aspect), else the scale; even, as a 4:2:0 render's."""
    if scale is not None and (width or height):
        raise SettingsError("--scale and --width/--height both set the size: choose one")
    if width and height:
        size = (width, height)
    elif width or height:
        shown = float(display_aspect_ratio(info.width, info.height, info.sample_aspect_ratio))
        size = (width, round(width / shown)) if width else (round((height or 0) * shown), height or 0)
    elif scale is not None:
        size = (round(info.width * scale), round(info.height * scale))
    else:
        size = upscaler.output_size(info.width, info.height)
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def _source_facts(info: VideoInfo) -> SourceFacts:
    rate = float(info.frame_rate) if info.frame_rate else None
    return SourceFacts(
        width=info.width,
        height=info.height,
        frame_rate=rate,
        frames=info.frames,
        duration=show_time(info.available_duration),
        rotation=info.rotation,
    )


# ---------------------------------------------------------------------------------- models


def _model_card(job: CompareJob, info: VideoInfo, name: str, size: tuple[int, int], say: Say) -> ModelCard:
    """``name`` timed on real frames of this video, as `vidsr info` times it."""
    say(f"timing {name}")
    if job.plan is None:
        raise SettingsError("vidsr compare needs the render's plan to time each model")
    render = job.plan(replace(job.upscale, models=(name,)))
    estimate = describe(job.input, render=render, stream=job.stream).estimate
    assert estimate is not None  # describe() estimates when given a render
    width, height = upright_size(size, info.rotation)
    return ModelCard(
        name=name,
        label=Path(name).stem if Path(name).suffix else name,
        seconds_per_frame=estimate.seconds_per_frame,
        whole_video_seconds=estimate.seconds,
        frames=estimate.frames,
        device=estimate.device,
        precision=estimate.precision,
        output_width=width,
        output_height=height,
        command=render_command(job, name),
    )


def render_command(job: CompareJob, model: str) -> tuple[str, ...]:
    """The command that renders the whole video with ``model``, beside the input."""
    stem = Path(model).stem if Path(model).suffix else model
    output = job.input.with_name(f"{job.input.stem}_{stem}{job.input.suffix or '.mkv'}")
    return ("vidsr", str(job.input), str(output), "--model", model, *job.render_options)


def upright_size(size: tuple[int, int], rotation: int) -> tuple[int, int]:
    """A stored (width, height) as shown: swapped by a quarter turn."""
    return (size[1], size[0]) if round(rotation / 90) % 2 else size


# --------------------------------------------------------------------------------- moments


def _write_pictures(
    job: CompareJob,
    video: OpenVideo,
    frames: list[tuple[FrameRef, av.VideoFrame]],
    upscalers: list[Upscaler],
    size: tuple[int, int],
    say: Say,
) -> tuple[Moment, ...]:
    """Every moment's pictures (and clips) into a folder of their own, then in place of ``PAGE_files/``."""
    assets = assets_folder(job.page)
    building = assets.with_name(f".{assets.name}.partial")
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot create {building}: {exc.strerror or exc}") from None
    moments: list[Moment] = []
    try:
        for number, (ref, frame) in enumerate(frames):
            say(f"moment {number + 1}: frame {ref.index} at {show_time(ref.seconds)}")
            stored = frame_to_rgb(frame, video.info.colour)[0]
            moment = _write_stills(number, ref, stored, video.info, upscalers, size, building)
            if job.clip_seconds:
                clips = _write_clips(number, ref, job.clip_seconds, video, upscalers, size, building)
                moment = replace(moment, clips=clips)
            moments.append(moment)
        _publish(building, assets)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return tuple(moments)


def _moment_frames(job: CompareJob, video: OpenVideo) -> list[tuple[FrameRef, av.VideoFrame]]:
    """The chosen frames, found as `vidsr frames` finds them (computed timeline
    when the header proves it, counted packets when not, or when the computation misses). Kept as
    decoded (a 4K frame is 12 MB in 4:2:0, 100 MB as float RGB) until its turn comes."""
    container, stream, info, deinterlace = video.container, video.stream, video.info, video.deinterlace
    duration = (
        Fraction(info.available_duration)
        if info.available_duration > 0
        else Fraction(max(info.frames, 1)) / (info.frame_rate or 1)
    )

    def decoded(timeline: Timeline) -> list[tuple[FrameRef, av.VideoFrame]]:
        refs = resolve(job.selection, timeline, duration)
        return list(decode_at(container, stream, info, refs, deinterlace=deinterlace))

    timeline = Timeline.proven_constant(stream, info)
    if timeline is not None:
        try:
            return decoded(timeline)
        except PredictionMissed:
            pass
    until_pts, until_count = reading_limits(job.selection, info, duration)
    return decoded(Timeline.read(container, stream, info, until_pts=until_pts, until_count=until_count))


def _write_stills(
    number: int,
    ref: FrameRef,
    stored: torch.Tensor,
    info: VideoInfo,
    upscalers: list[Upscaler],
    size: tuple[int, int],
    folder: Path,
) -> Moment:
    stem = f"m{number + 1}_frame{ref.index}"
    source = f"{stem}_source.png"
    bicubic = f"{stem}_bicubic.png"
    _save(folder / source, upright(stored, info.rotation))
    enlarged = F.interpolate(stored, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
    _save(folder / bicubic, upright(enlarged, info.rotation))
    outputs: list[str] = []
    for position, upscaler in enumerate(upscalers):
        name = f"{stem}_model{position + 1}.png"
        with torch.inference_mode():
            upscaled = upscaler.upscale_rgb(stored.to(upscaler.device), size).cpu()
        _save(folder / name, upright(upscaled, info.rotation))
        outputs.append(name)
    return Moment(
        index=ref.index,
        seconds=float(ref.seconds),
        time=show_time(ref.seconds),
        source=source,
        bicubic=bicubic,
        outputs=tuple(outputs),
    )


def _save(path: Path, rgb: torch.Tensor) -> None:
    """An 8-bit PNG: what every browser shows the same (deeper sources are rounded for the page only)."""
    save_image(path, Picture(rgb=rgb[0].permute(1, 2, 0).contiguous().numpy(), alpha=None, bits=8))


# ----------------------------------------------------------------------------------- clips


def _write_clips(
    number: int,
    ref: FrameRef,
    seconds: float,
    video: OpenVideo,
    upscalers: list[Upscaler],
    size: tuple[int, int],
    folder: Path,
) -> ClipFiles:
    """``seconds`` of video centred on ``ref`` (as far as the video allows): the source at its own
    size and each model's output, as H.264 MP4 that starts at 0 so the page can play them in step."""
    container, stream, info, deinterlace = video.container, video.stream, video.info, video.deinterlace
    start = max(Fraction(0), ref.seconds - Fraction(seconds) / 2)
    start_pts = info.start_pts + int(start / info.time_base)
    end_pts = start_pts + int(Fraction(seconds) / info.time_base)
    source_size = (info.width - info.width % 2, info.height - info.height % 2)
    writers = [_ClipWriter(source_size, info)] + [_ClipWriter(size, info) for _ in upscalers]
    frames = frames_from(container, stream, info, start_pts, deinterlace=deinterlace, accept_truncated=True)
    try:
        for frame in _until(frames, end_pts):
            stored = frame_to_rgb(frame, info.colour)[0]
            writers[0].write(stored, frame.pts)
            for writer, upscaler in zip(writers[1:], upscalers):
                with torch.inference_mode():
                    writer.write(upscaler.upscale_rgb(stored.to(upscaler.device), size).cpu(), frame.pts)
    finally:
        frames.close()
    names = [f"m{number + 1}_clip_source.mp4"] + [f"m{number + 1}_clip_model{k + 1}.mp4" for k in range(len(upscalers))]
    for writer, name in zip(writers, names):
        writer.save(folder / name)
    first_pts = writers[0].first_pts if writers[0].first_pts is not None else ref.pts
    offset = float((ref.pts - first_pts) * info.time_base)  # the clips start at their first frame
    return ClipFiles(source=names[0], outputs=tuple(names[1:]), start=show_time(start), offset=offset)


def _until(frames: Iterator[av.VideoFrame], end_pts: int) -> Iterator[av.VideoFrame]:
    for frame in frames:
        if frame.pts is not None and frame.pts >= end_pts:
            return
        yield frame


class _ClipWriter:
    """One clip: frames (stored RGB) encoded by vidsr's encoder into memory, then put in an MP4
    upright (the display matrix a player honours), timestamps from 0."""

    def __init__(self, size: tuple[int, int], info: VideoInfo) -> None:
        self.size = size
        self.info = info
        self.layout = pix_fmt_layout("yuv420p")  # what every browser decodes: 8-bit 4:2:0
        self.buffer = io.BytesIO()
        self.writer: VideoWriter | None = None
        self.first_pts: int | None = None
        self.frames = 0

    def write(self, rgb: torch.Tensor, pts: int | None) -> None:
        width, height = self.size
        rgb = upright(rgb[..., :height, :width], self.info.rotation)
        if self.writer is None:
            self.writer = VideoWriter(
                self.buffer,
                width=rgb.shape[-1],
                height=rgb.shape[-2],
                time_base=self.info.time_base,
                frame_rate=self.info.frame_rate,
                settings=EncodeSettings(codec="libx264", crf=CLIP_CRF, preset=CLIP_PRESET, pix_fmt="yuv420p"),
                pix_fmt="yuv420p",
                colour=self.info.colour,
            )
        pts = pts if pts is not None else (self.first_pts or 0) + self.frames
        self.first_pts = pts if self.first_pts is None else self.first_pts
        planes = tensors_to_planes(rgb_to_planes(rgb, self.layout, self.info.colour), self.layout)
        batch = OutputBatch(planes=planes, pts=(pts - self.first_pts,), first_index=self.frames)
        self.writer.write(batch)
        self.frames += 1

    def save(self, path: Path) -> None:
        """The encoded frames remuxed, without re-encoding, into an MP4 that starts playing at once."""
        if self.writer is None:
            raise OutputError(f"no frames for {path.name}")
        self.writer.close()
        self.buffer.seek(0)
        source = av.open(self.buffer, mode="r")
        target = open_output(path, "mp4", {"movflags": "+faststart"})
        try:
            video = source.streams.video[0]
            out = target.add_stream_from_template(video)
            for packet in source.demux(video):
                if packet.size == 0:
                    continue
                packet.stream = out
                target.mux(packet)
        finally:
            source.close()
            close_output(target, path)
