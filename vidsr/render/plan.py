"""Planning a render: everything decided before the first frame, for the device that will run it.

``plan_job`` turns what the user asked for (:class:`UpscaleJob`) into a :class:`RenderPlan`: the
probed input, the model and its hash, the output size and pixel format, the precision, the
encoder preset, whether to compile, and the segments. A plan is plain, picklable data, so the
process that renders a segment may be another one than the process that planned it (a Ray
worker with a GPU the driver does not have); what it renders depends on the plan alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from vidsr import __version__
from vidsr.errors import SettingsError
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
from vidsr.render.journal import input_fingerprint
from vidsr.upscale import (
    MAX_SCALE,
    MIN_SCALE,
    TileChoice,
    UpscaleOptions,
    VideoPlanes,
    arithmetic_per_output_pixel,
    automatic_tile,
    check_scale,
    check_tile,
    choose_precision,
    network_passes,
    select_device,
    should_compile,
)
from vidsr.upscale.policy import Precision

__all__ = ["DEFAULT_SEGMENT_SECONDS", "RenderPlan", "UpscaleJob", "default_batch", "plan_job", "plan_output_size"]

DEFAULT_SEGMENT_SECONDS = 6.0  # the most work a resume redoes; see bench/segment_cost.py for its cost


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


@dataclass(frozen=True)
class RenderPlan:
    """What every segment of one render is made with; the same plan gives the same output anywhere
    the device type and the software stack are the same.

    ``model_hash`` is the content hash of the network's weights: a renderer that loads the model
    again (on another machine) checks it. ``description`` is what the journal records and a
    resume must match.
    """

    info: VideoInfo
    models: tuple[str, ...]
    alpha: float | None
    model_name: str
    model_hash: str
    device: str  # the device type that renders: "cpu", "cuda" or "mps"
    precision: Precision
    tile: int  # the user's, the model's, or chosen from the free memory (kept by a resume: see CHOSEN)
    tile_message: str  # why frames are tiled when the user did not ask for it, else ""
    size: tuple[int, int]  # (width, height) of every output frame
    pix_fmt: str
    sample_aspect_ratio: Fraction  # of the output's pixels: the source's display shape kept
    deinterlace: bool
    accept_truncated: bool
    encode: EncodeSettings  # with the preset resolved
    compile: bool
    batch: int
    segmentation: Segmentation
    segment_count: int  # the last segment is open-ended: it runs to the end of the stream
    description: dict[str, Any]

    @property
    def video(self) -> VideoPlanes:
        """How frames come in and go out as planes."""
        return VideoPlanes(
            source_colour=self.info.colour,
            output_size=self.size,
            output_colour=self.info.colour,
            output_layout=pix_fmt_layout(self.pix_fmt),
        )

    def network_passes(self, native_scale: int) -> int:
        """How many times a network of ``native_scale`` runs per frame (more than once beyond it)."""
        return network_passes(native_scale, max(self.size[0] / self.info.width, self.size[1] / self.info.height))


def plan_job(
    job: UpscaleJob, *, device: str | None = None, native_bf16: bool | None = None
) -> tuple[RenderPlan, LoadedModel]:
    """Probe the input, load the model and decide everything a render needs, for ``device`` (the
    type of device the renderers have; None: this machine's, as ``--device`` chooses). Also returns
    the loaded model, so a renderer in this process need not load it again.

    ``native_bf16`` says whether the renderers' CPUs compute bf16 in hardware (None: this one's);
    it only matters on the CPU. Raises InputError, ModelError or SettingsError before any work.
    """
    if job.segment_seconds <= 0:
        raise SettingsError("--segment-seconds must be more than 0")
    check_tile(job.upscale.tile)
    info = probe(job.input, stream=job.stream, accept_truncated=job.accept_truncated)
    model = choose_model(job.upscale.models, job.upscale.alpha)
    pix_fmt = output_pix_fmt(job.encode, info.bit_depth)
    size = plan_output_size(info, model, job, pix_fmt_layout(pix_fmt))
    sample_aspect_ratio = output_sample_aspect_ratio(info.width, info.height, info.sample_aspect_ratio, *size)
    device_type = device or select_device(job.upscale.device).type
    precision = choose_precision(
        job.upscale.precision, torch.device(device_type), model, bit_depth=info.bit_depth, native_bf16=native_bf16
    )
    tile = plan_tile(job, model, info, size, device_type, precision)
    arithmetic = arithmetic_per_output_pixel(model)
    compile_network = should_compile(
        job.compile,
        torch.device(device_type),
        arithmetic=arithmetic,
        output_pixels=size[0] * size[1],
        frames=info.frames,
        tile=tile.tile,
    )
    encode = with_automatic_preset(job.encode, arithmetic)
    seconds = Fraction(job.segment_seconds).limit_denominator(1000)
    segmentation = Segmentation(start_pts=info.start_pts, time_base=info.time_base, seconds=seconds)
    plan = RenderPlan(
        info=info,
        models=job.upscale.models,
        alpha=job.upscale.alpha,
        model_name=model.name,
        model_hash=model.content_hash,
        device=device_type,
        precision=precision,
        tile=tile.tile,
        tile_message=tile.message,
        size=size,
        pix_fmt=pix_fmt,
        sample_aspect_ratio=sample_aspect_ratio,
        deinterlace=info.interlaced if job.deinterlace is None else job.deinterlace,
        accept_truncated=job.accept_truncated,
        encode=encode,
        compile=compile_network,
        batch=job.batch or default_batch(device_type),
        segmentation=segmentation,
        segment_count=segment_count(info.available_duration, seconds),
        description={},
    )
    return replace(plan, description=describe_plan(plan, model)), model


def plan_tile(
    job: UpscaleJob, model: LoadedModel, info: VideoInfo, size: tuple[int, int], device_type: str, precision: str
) -> TileChoice:
    """The user's --tile, else the model's preferred tile, else whole frames where the device's free
    memory holds the largest pass whole and the largest tiles that fit where it does not. Decided
    once for the whole render, so every segment is cut alike. Planned for this machine's memory;
    a device type this machine lacks (a CPU driver for GPU workers) is left to the renderers."""
    chosen = job.upscale.tile or model.preferred_tile
    if chosen or device_type != select_device(job.upscale.device).type:
        return TileChoice(chosen)
    passes = network_passes(model.scale, max(size[0] / info.width, size[1] / info.height))
    growth = model.scale ** (passes - 1)  # the last pass runs on the earlier passes' output
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return automatic_tile(model, torch.device(device_type), info.width * growth, info.height * growth, dtype=dtype)


def segment_count(duration: float, seconds: Fraction) -> int:
    """How many segments of ``seconds`` the probed duration holds, without decoding: the last is
    open-ended (a duration that is short of the truth loses nothing), and a duration that is too
    long gives segments that come back empty."""
    return max(1, math.ceil(Fraction(duration).limit_denominator(1_000_000) / seconds))


def describe_plan(plan: RenderPlan, model: LoadedModel) -> dict[str, Any]:
    """Everything that changes the output: a resume must match it exactly."""
    colour = plan.info.colour
    return {
        "input": input_fingerprint(plan.info),
        "model": {"name": model.name, "sha256": model.content_hash, "scale": model.scale},
        "settings": {
            "stream": plan.info.video_index,
            "size": f"{plan.size[0]}x{plan.size[1]}",
            "sample_aspect_ratio": str(plan.sample_aspect_ratio),
            "deinterlace": plan.deinterlace,
            "accept_truncated": plan.accept_truncated,
            "tile": plan.tile if not plan.tile_message else 0,  # what was asked for (0: whole, or as memory allows)
            "codec": plan.encode.codec,
            "crf": plan.encode.crf,
            "preset": plan.encode.preset,
            "encoder_threads": plan.encode.threads,
            "pix_fmt": plan.pix_fmt,
            "device": plan.device,
            "precision": plan.precision,
            "compiled": plan.compile,
            "colour": f"{colour.matrix} {'full' if colour.full_range else 'limited'}",
            "segment_seconds": str(plan.segmentation.seconds),
            "segments": plan.segment_count,
            "vidsr": __version__,
        },
        # What computed it: a resume on another stack is allowed, and said (its frames may differ
        # from the earlier ones in the last bits); see pipeline.open_journal.
        STACK: {"torch": torch.__version__, **media_versions()},
        # What was chosen for this machine rather than asked for: a resume keeps it (see
        # pipeline.open_journal), so frames before and after are made alike.
        CHOSEN: {"tile": plan.tile},
    }


STACK = "stack"
CHOSEN = "chosen"


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
    width, height = _round_up(width, 1 << shift_x), _round_up(height, 1 << shift_y)
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


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
