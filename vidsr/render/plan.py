"""Planning a render: everything decided before the first frame, for the device that will run it.

``plan_job`` turns what the user asked for (:class:`UpscaleJob`) into a :class:`RenderPlan`: the
probed input, the model and its hash, the output size and pixel format, the precision, the
encoder preset, whether to compile, and the segments. A plan is plain, picklable data, so the
process that renders a segment may be another one than the process that planned it (a Ray
worker with a GPU the driver does not have); what it renders depends on the plan alone.

The choices that depend on the renderers' device (engine, precision, tile: :class:`DeviceChoices`)
can be made elsewhere: ``plan_job`` asks a :data:`ChooseForDevice` with a :class:`DeviceQuestion`,
and :func:`choose_for_this_device` answers it where the device is (a cluster driver without a
Vulkan device has a Ray task on a node with one answer it).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from vidsr import __version__
from vidsr.defaults import DEFAULT_SEGMENT_SECONDS
from vidsr.errors import ModelError, SettingsError
from vidsr.media import (
    EncodeSettings,
    Segmentation,
    VideoInfo,
    display_aspect_ratio,
    media_versions,
    output_pix_fmt,
    output_sample_aspect_ratio,
    pix_fmt_layout,
    probe,
    with_automatic_preset,
)
from vidsr.models import LoadedModel, choose_model
from vidsr.planes import PlaneLayout
from vidsr.render.identity import (
    InputFingerprint,
    JobIdentity,
    MachineChoices,
    ModelIdentity,
    OutputSettings,
    SoftwareStack,
)
from vidsr.upscale import (
    DTYPES,
    MAX_SCALE,
    MIN_SCALE,
    EngineChoice,
    EngineName,
    Precision,
    TileChoice,
    UpscaleOptions,
    VideoPlanes,
    arithmetic_per_output_pixel,
    check_scale,
    check_tile,
    choose_engine,
    choose_precision,
    choose_tile,
    network_passes,
    round_up,
    select_device,
    should_compile,
)

__all__ = [
    "DEFAULT_SEGMENT_SECONDS",
    "ChooseForDevice",
    "DeviceChoices",
    "DeviceQuestion",
    "RenderPlan",
    "UpscaleJob",
    "choose_for_this_device",
    "default_batch",
    "plan_job",
    "plan_output_size",
]


@dataclass(frozen=True)
class UpscaleJob:
    """Everything that decides what ``upscale_video`` writes, and how it treats earlier work."""

    input: Path
    output: Path
    upscale: UpscaleOptions = field(default_factory=UpscaleOptions)  # model(s), scale, tile, device, precision
    width: int | None = None  # a target size instead of a scale; one of the two keeps the aspect
    height: int | None = None
    batch: int = 0  # 0: chosen for the device
    compile: bool | None = None  # torch.compile the network; None: when it repays (see should_compile)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    force: bool = False
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    restart: bool = False  # discard an interrupted render of this output instead of resuming it
    keep_work: bool = False  # keep the segment files after the output is written
    stream: int | None = None  # the input's video stream to upscale; None: the one a player shows
    deinterlace: bool | None = None  # None: when the input is interlaced
    accept_truncated: bool = False  # render what there is of a cut-off input instead of refusing it
    reuse: bool = True  # keep the output of tiles whose source did not change (vidsr.upscale.reuse)


@dataclass(frozen=True)
class RenderPlan:
    """What every segment of one render is made with; the same plan gives the same output anywhere
    the device type and the software stack are the same.

    Its parts are the job's identity (:mod:`vidsr.render.identity`): ``settings`` must match for a
    resume, ``tile`` and ``precision`` are what was chosen for the machine (and a resume keeps).
    """

    info: VideoInfo
    input: InputFingerprint
    models: tuple[str, ...]  # as the user named them: a renderer elsewhere loads them again
    alpha: float | None
    model: ModelIdentity  # its hash: a renderer that loads the model again checks it
    settings: OutputSettings
    tile: TileChoice
    precision: Precision
    batch: int
    engine: EngineName = "torch"
    device: str = "cpu"  # where the network runs: "cpu", "cuda:1", "vulkan:0" (settings.device is its type)
    engine_reason: str = ""  # how --engine auto decided, where it measured

    @property
    def identity(self) -> JobIdentity:
        """What the journal records of this render."""
        choices = MachineChoices(tile=self.tile.tile, precision=self.precision, engine=self.engine, device=self.device)
        return JobIdentity(self.input, self.model, self.settings, software_stack(), choices)

    @property
    def encode(self) -> EncodeSettings:
        settings = self.settings
        return EncodeSettings(
            codec=settings.codec,
            crf=settings.crf,
            preset=settings.preset,
            pix_fmt=settings.pix_fmt,
            threads=settings.encoder_threads,
        )

    @property
    def segmentation(self) -> Segmentation:
        info = self.info
        return Segmentation(start_pts=info.start_pts, time_base=info.time_base, seconds=self.settings.segment_seconds)

    @property
    def video(self) -> VideoPlanes:
        """How frames come in and go out as planes."""
        return VideoPlanes(
            source_colour=self.info.colour,
            output_size=self.settings.size,
            output_colour=self.info.colour,
            output_layout=pix_fmt_layout(self.settings.pix_fmt),
            time_base=self.info.time_base,
            start_pts=self.info.start_pts,
        )

    def network_passes(self, native_scale: int) -> int:
        """How many times a network of ``native_scale`` runs per frame (more than once beyond it)."""
        width, height = self.settings.size
        return network_passes(native_scale, max(width / self.info.width, height / self.info.height))


@dataclass(frozen=True)
class DeviceChoices:
    """What a plan chooses for the device that renders (the journal's :class:`MachineChoices`, with
    how each was decided): the engine and its device, the precision, the tile."""

    engine: EngineChoice
    precision: Precision
    tile: TileChoice


@dataclass(frozen=True)
class DeviceQuestion:
    """All that choosing for a device needs, as plain data a process elsewhere can answer (it loads
    the job's model again: ``model`` is the hash it must have)."""

    job: UpscaleJob
    info: VideoInfo
    size: tuple[int, int]  # the output frame size
    model: ModelIdentity
    native_bf16: bool | None = None  # whether the renderers' CPUs compute bf16 in hardware (None: the answerer's)
    kept: MachineChoices | None = None  # what an interrupted run chose: a resume keeps it


# Answers a DeviceQuestion where the renderers' device is (a Ray task on a cluster node).
ChooseForDevice = Callable[[DeviceQuestion], DeviceChoices]


def plan_job(
    job: UpscaleJob,
    *,
    device: str | None = None,
    native_bf16: bool | None = None,
    kept: MachineChoices | None = None,
    choose_elsewhere: ChooseForDevice | None = None,
) -> tuple[RenderPlan, LoadedModel]:
    """Probe the input, load the model and decide everything a render needs, for ``device`` (the
    type of device the renderers have; None: this machine's, as ``--device`` chooses). Also returns
    the loaded model, so a renderer in this process need not load it again.

    ``native_bf16`` says whether the renderers' CPUs compute bf16 in hardware (None: this one's);
    it only matters on the CPU. ``kept``: what an interrupted run of this job chose for its machine,
    which a resume keeps. ``choose_elsewhere``: who makes the device's choices where this process
    lacks the device (a Vulkan device on the cluster's nodes only); None: here. Raises InputError,
    ModelError or SettingsError before any work.
    """
    if job.segment_seconds <= 0:
        raise SettingsError("--segment-seconds must be more than 0")
    check_tile(job.upscale.tile)
    info = probe(job.input, stream=job.stream, accept_truncated=job.accept_truncated)
    model = choose_model(job.upscale.models, job.upscale.alpha)
    pix_fmt = output_pix_fmt(job.encode, info.bit_depth)
    size = plan_output_size(info, model, job, pix_fmt_layout(pix_fmt))
    identity = ModelIdentity(name=model.name, sha256=model.content_hash, scale=model.scale)
    if choose_elsewhere is not None:
        chosen = choose_elsewhere(DeviceQuestion(job, info, size, identity, native_bf16, kept))
    else:
        chosen = _device_choices(job, model, info, size, device, native_bf16, kept)
    engine, precision, tile = chosen.engine, chosen.precision, chosen.tile
    device_type = engine.device.type
    arithmetic = arithmetic_per_output_pixel(model)
    if job.compile and engine.engine != "torch":
        raise SettingsError("--compile is torch's: the ncnn engine runs without it")
    compile_network = engine.engine == "torch" and should_compile(
        job.compile,
        engine.device,
        arithmetic=arithmetic,
        output_pixels=size[0] * size[1],
        frames=info.frames,
        tile=tile.tile,
    )
    encode = with_automatic_preset(job.encode, arithmetic)
    seconds = Fraction(job.segment_seconds).limit_denominator(1000)
    colour = info.colour
    settings = OutputSettings(
        stream=info.video_index,
        size=size,
        sample_aspect_ratio=output_sample_aspect_ratio(info.width, info.height, info.sample_aspect_ratio, *size),
        pix_fmt=pix_fmt,
        colour=f"{colour.matrix} {'full' if colour.full_range else 'limited'}",
        deinterlace=info.interlaced if job.deinterlace is None else job.deinterlace,
        accept_truncated=job.accept_truncated,
        tile=job.upscale.tile,
        precision=job.upscale.precision,
        device=device_type,
        engine=job.upscale.engine,
        compiled=compile_network,
        reuse=job.reuse,
        codec=encode.codec,
        crf=encode.crf,
        preset=encode.preset,
        encoder_threads=encode.threads,
        segment_seconds=seconds,
        segments=segment_count(info.available_duration, seconds),
        vidsr=__version__,
    )
    plan = RenderPlan(
        info=info,
        input=InputFingerprint.of(info),
        models=job.upscale.models,
        alpha=job.upscale.alpha,
        model=identity,
        settings=settings,
        tile=tile,
        precision=precision,
        batch=job.batch or default_batch(device_type),
        engine=engine.engine,
        device=str(engine.device),
        engine_reason=engine.reason,
    )
    return plan, model


def choose_for_this_device(question: DeviceQuestion) -> DeviceChoices:
    """The answer to ``question`` from the process that has the device (``--device`` of the job
    as this machine has it): the job's model loaded here and checked against the planned hash,
    then the same choices a render in one process makes."""
    job = question.job
    model = choose_model(job.upscale.models, job.upscale.alpha)
    if model.content_hash != question.model.sha256:
        raise ModelError(
            f"{model.name} on {os.uname().nodename} is not the model the render is planned with "
            f"(weights {model.content_hash[:12]}, planned {question.model.sha256[:12]}); "
            "give every machine the same file"
        )
    return _device_choices(job, model, question.info, question.size, None, question.native_bf16, question.kept)


def _device_choices(
    job: UpscaleJob,
    model: LoadedModel,
    info: VideoInfo,
    size: tuple[int, int],
    device: str | None,
    native_bf16: bool | None,
    kept: MachineChoices | None,
) -> DeviceChoices:
    """The engine, precision and tile for ``device`` (a device type; None: this machine's, as
    ``--device`` chooses), decided here."""
    local_type = select_device(job.upscale.device).type
    local = device is None or device == local_type
    engine = _plan_engine(job, model, info, device if not local else None, native_bf16, kept)
    precision = _plan_precision(job, model, info, engine, native_bf16, kept)
    tile = _plan_tile(job, model, info, size, engine.device, precision, local=local, kept=kept)
    return DeviceChoices(engine, precision, tile)


def _plan_engine(
    job: UpscaleJob,
    model: LoadedModel,
    info: VideoInfo,
    remote: str | None,
    native_bf16: bool | None,
    kept: MachineChoices | None,
) -> EngineChoice:
    """What runs the network, and on which device: for renderers elsewhere (``remote``: their device
    type; GPU workers choose for themselves, see ``choose_for_this_device``), ncnn where asked, else
    torch; here, what an interrupted run chose where it
    was left to ``auto`` (so frames on both sides of a resume are made alike), else ``choose_engine``."""
    asked = job.upscale
    if remote is not None:
        engine: EngineName = "ncnn" if asked.engine == "ncnn" else "torch"
        return EngineChoice(engine, torch.device(remote))
    if kept is not None and asked.engine == "auto" and asked.device == "auto":
        reason = "kept from the interrupted run" if kept.engine != "torch" else ""
        return EngineChoice(kept.engine, select_device(kept.device), reason)
    torch_precision = choose_precision(
        asked.precision, select_device(asked.device), model, bit_depth=info.bit_depth, native_bf16=native_bf16
    )
    return choose_engine(asked.engine, asked.device, model, precision=torch_precision)


def _plan_precision(
    job: UpscaleJob,
    model: LoadedModel,
    info: VideoInfo,
    engine: EngineChoice,
    native_bf16: bool | None,
    kept: MachineChoices | None,
) -> Precision:
    """The user's --precision, else what an interrupted run chose (frames alike on both sides of a
    resume), else the fastest faithful one for the renderers' device and engine."""
    if kept is not None and job.upscale.precision == "auto":
        return kept.precision
    return choose_precision(
        job.upscale.precision,
        engine.device,
        model,
        bit_depth=info.bit_depth,
        native_bf16=native_bf16,
        engine=engine.engine,
    )


def _plan_tile(
    job: UpscaleJob,
    model: LoadedModel,
    info: VideoInfo,
    size: tuple[int, int],
    device: torch.device,
    precision: Precision,
    *,
    local: bool,
    kept: MachineChoices | None,
) -> TileChoice:
    """The render's one tile choice (see ``choose_tile``), for the input of the network's last pass."""
    passes = network_passes(model.scale, max(size[0] / info.width, size[1] / info.height))
    growth = model.scale ** (passes - 1)  # the last pass runs on the earlier passes' output
    return choose_tile(
        model,
        device,
        info.width * growth,
        info.height * growth,
        asked=job.upscale.tile,
        kept=kept.tile if kept is not None else None,
        dtype=DTYPES[precision],
        local=local,
    )


def segment_count(duration: float, seconds: Fraction) -> int:
    """How many segments of ``seconds`` the probed duration holds, without decoding: the last is
    open-ended (a duration that is short of the truth loses nothing), and a duration that is too
    long gives segments that come back empty."""
    return max(1, math.ceil(Fraction(duration).limit_denominator(1_000_000) / seconds))


@functools.cache
def software_stack() -> SoftwareStack:
    """What computes the frames in this process (a resume on another stack is said)."""
    return SoftwareStack(torch=torch.__version__, media=media_versions())


def default_batch(device_type: str) -> int:
    """Frames per network call: one on the CPU, where bigger batches are no faster (bench/speed.py:
    12.9, 12.8 and 12.6 fps at batch 1, 2 and 4 for realesr-animevideov3), more on a GPU."""
    return 4 if device_type == "cuda" else 1


def plan_output_size(info: VideoInfo, model: LoadedModel, job: UpscaleJob, layout: PlaneLayout) -> tuple[int, int]:
    """The output frame size from --scale or --width/--height, rounded to what the pixel
    format can hold (even sizes for 4:2:0)."""
    if job.upscale.scale is not None and (job.width or job.height):
        raise SettingsError("--scale and --width/--height both set the size: choose one")
    if job.width or job.height:  # sized from the picture as shown: an anamorphic source's display shape
        shown = display_aspect_ratio(info.width, info.height, info.sample_aspect_ratio)
        width, height = _fill_in_aspect(job.width, job.height, float(shown))
    else:
        scale = check_scale(job.upscale.scale) if job.upscale.scale is not None else float(model.scale)
        width, height = round(info.width * scale), round(info.height * scale)
    shift_x, shift_y = layout.chroma_shift
    width, height = round_up(width, 1 << shift_x), round_up(height, 1 << shift_y)
    effective = max(width / info.width, height / info.height)
    if not MIN_SCALE <= effective <= MAX_SCALE:
        raise SettingsError(
            f"{width}x{height} is x{effective:.2f} of {info.width}x{info.height}; "
            f"vidsr enlarges from x{MIN_SCALE:g} to x{MAX_SCALE:g}"
        )
    return width, height


def _fill_in_aspect(width: int | None, height: int | None, aspect: float) -> tuple[int, int]:
    """(width, height) with the one not given (None or 0) following ``aspect`` (width / height)."""
    if width and height:
        return width, height
    if width:
        return width, round(width / aspect)
    if height:
        return round(height * aspect), height
    raise ValueError("give a width, a height or both")
