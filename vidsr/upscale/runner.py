"""The network stage: runs a model on batches of frames, from source planes to output planes.

It owns the network's device, dtype and memory layout, batching, tiling, scales the model does
not have natively, and memory: frames the device's free memory cannot hold whole are cut into
the largest tiles it can (:mod:`vidsr.upscale.memory`), and running out all the same is recovered
from, on the CPU as on a GPU, in smaller batches, then smaller tiles. The rest of the pipeline only
sees integer planes in and integer planes out. The choices it is given (device, precision,
compile) come from :mod:`vidsr.upscale.policy`; what the network needs (padding, channels, the
layers kept in fp32, tiles) comes from the model's descriptor, :class:`vidsr.models.LoadedModel`.
"""

# Strict typing, less the unknown-type checks: torch types Module.eval() and torch.compile only in part.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
import torch.nn.functional as F

from vidsr.choices import MAX_SCALE, MIN_SCALE, UpscaleOptions
from vidsr.errors import ModelError, PrecisionOverflow, SettingsError, VidsrError
from vidsr.models import LoadedModel, choose_model
from vidsr.planes import ColourSpec, FrameBatch, OutputBatch, PlaneLayout
from vidsr.timecode import show_time
from vidsr.upscale.colour import TensorPlanes, planes_to_rgb, planes_to_tensors, rgb_to_planes, tensors_to_planes
from vidsr.upscale.engines import (
    Engine,
    EngineName,
    TorchEngine,
    choose_engine,
    compiled_torch_network,
    create_engine,
    device_label,
)
from vidsr.upscale.memory import (
    HEADROOM,
    activation_bytes_per_pixel,
    format_bytes,
    free_memory,
    is_out_of_memory,
    memory_need,
    tile_for_free_memory,
    tiled_need,
)
from vidsr.upscale.policy import DTYPES, Precision, choose_precision, select_device
from vidsr.upscale.reuse import FrameReuse
from vidsr.upscale.tiling import DEFAULT_OVERLAP, run_tiled

__all__ = [
    "MAX_SCALE",
    "MIN_SCALE",
    "UpscaleOptions",
    "Upscaler",
    "VideoPlanes",
    "check_scale",
    "check_tile",
    "compiled_network",
    "TileChoice",
    "choose_tile",
    "create_upscaler",
    "all_finite",
    "checks_every_output",
    "network_passes",
    "resize",
    "round_up",
]

# Grey networks see this luma of the RGB frame: ITU-R BT.601's weights, the ones Pillow's
# convert("L") and OpenCV's RGB2GRAY use, so what grey models were trained on.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


# Each tile is processed with DEFAULT_OVERLAP pixels of its neighbours on every side, so a tile of
# t pixels costs (t + 64)² / t² of its own area: 9 times at 32, over 4000 times at 1 (--tile 1
# would run for days). Below 32 the context is nearly all the work.
MIN_TILE = DEFAULT_OVERLAP
MAX_TILE = 16384  # larger than any frame vidsr reads: that is --tile 0, whole frames


def check_tile(tile: int) -> int:
    """``tile`` if it is 0 (whole frames) or a sensible tile size; SettingsError saying why otherwise."""
    if tile == 0 or MIN_TILE <= tile <= MAX_TILE:
        return tile
    if tile < 0:
        raise SettingsError(f"--tile {tile}: give a tile size in pixels, or 0 for whole frames")
    if tile < MIN_TILE:
        raise SettingsError(
            f"--tile {tile}: each tile is processed with {DEFAULT_OVERLAP} pixels of its neighbours on every side, "
            f"so a tile under {MIN_TILE} pixels costs over 9 times the work of whole frames; "
            f"give {MIN_TILE} to {MAX_TILE}, or 0 for whole frames"
        )
    raise SettingsError(
        f"--tile {tile}: that is more than any frame; give {MIN_TILE} to {MAX_TILE}, or 0 for whole frames"
    )


def check_scale(scale: float) -> float:
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise SettingsError(f"--scale {scale:g}: choose a scale from {MIN_SCALE:g} to {MAX_SCALE:g}")
    return float(scale)


def create_upscaler(
    options: UpscaleOptions = UpscaleOptions(),
    *,
    bit_depth: int = 8,
    warn: Callable[[str], None] = lambda message: None,
) -> Upscaler:
    """An Upscaler for RGB work (images, inspection frames, estimates); ``bit_depth`` is the
    source's, which the automatic precision depends on; ``warn`` hears what the user should
    know (frames upscaled in tiles because whole ones do not fit)."""
    loaded = choose_model(options.models, options.alpha)
    torch_precision = choose_precision(options.precision, select_device(options.device), loaded, bit_depth=bit_depth)
    choice = choose_engine(options.engine, options.device, loaded, precision=torch_precision)
    return Upscaler(
        loaded,
        device=choice.device,
        precision=choose_precision(options.precision, choice.device, loaded, bit_depth=bit_depth, engine=choice.engine),
        scale=options.scale,
        tile=options.tile,
        warn=warn,
        engine=choice.engine,
    )


@dataclass(frozen=True)
class VideoPlanes:
    """What a video's frames are on the way in and out, for :meth:`Upscaler.upscale`: how to read
    the source planes, and the size, colour and layout of the output planes."""

    source_colour: ColourSpec
    output_size: tuple[int, int]  # (width, height) of every output frame
    output_colour: ColourSpec
    output_layout: PlaneLayout
    time_base: Fraction | None = None  # the unit of the frames' pts, to name a frame by its time (None: unnamed)
    start_pts: int = 0  # the first frame's pts: time 0:00:00 in what a message says


class Upscaler:
    """Runs one model on batches of frames, from source planes (or RGB) to output planes (or RGB).

    The network runs in an engine (:mod:`vidsr.upscale.engines`): torch takes the model's module
    over (moved to the device, dtype and layout it runs in, in place; the layers the model keeps
    in fp32 stay fp32); ncnn runs it on the CPU or a Vulkan device from files written from it.
    Everything else (padding, tiles, memory, passes, colour) is the runner's, for both alike.

    Grey networks work on colour frames: a grey input is the frame's luma (``GREY_WEIGHTS``),
    and a grey output becomes the luma of the result, whose colour comes from a bicubic
    enlargement of the frame (a grey frame stays exactly the network's output).

    Args:
        model: the loaded network and what it supports.
        device: where the network runs (cpu, cuda[:N], mps, or vulkan[:N] with ncnn); the colour
            conversion runs there too, or on the CPU for ncnn (``self.device`` is where tensors live).
        precision: the dtype the network computes in.
        scale: the output scale of RGB work, any value from 1 to 16; None for the model's own.
        tile: cut frames into tiles of this size (pixels, input side) with blended overlaps; 0: the
            model's preferred tile, or if it has none, whole frames where the device's free memory
            holds them and the largest tiles that fit where it does not (``warn`` is told once).
        video: the planes ``upscale`` reads and writes (None: RGB work only).
        compile: run the network through torch.compile (see ``should_compile``); if that fails,
            ``warn`` is told and the network runs as it is.
        engine: torch or ncnn (a vulkan device is always ncnn's).
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: torch.device,
        precision: Precision,
        scale: float | None = None,
        tile: int = 0,
        video: VideoPlanes | None = None,
        compile: bool = False,
        warn: Callable[[str], None] = lambda message: None,
        engine: EngineName = "torch",
    ) -> None:
        _check_channels(model)
        self.model = model
        self.dtype = DTYPES[precision]
        self.output_scale = check_scale(scale) if scale is not None else float(model.scale)
        check_tile(tile)
        if tile and model.tiling != "supported":
            warn(f"{model.name} works best on whole frames (tiling {model.tiling}); --tile {tile} may show seams")
        self.tile = tile or model.preferred_tile
        self.video = video
        self.engine: Engine = create_engine(
            model, engine=engine, device=device, precision=precision, compile=compile, warn=warn
        )
        self.runs_on = device  # where the network runs: its memory is what tiles are planned for
        self.device = self.engine.tensor_device  # where frames, tiles and colour work live
        self._warn = warn
        self._every_output = checks_every_output(self.dtype)
        self._output_checked = False  # the first output's check is taken (see _finite_flag)
        self._finite: list[torch.Tensor] = []  # flags on the device, of the outputs since the last _finite_flag
        self._per_pixel: float | None = None  # activation bytes per input pixel, measured when first needed
        self._plans: dict[tuple[int, int, int], int | None] = {}  # (batch, height, width) -> planned tile
        self._told_tiles = False

    @property
    def network(self) -> torch.nn.Module:
        """The torch engine's module (tests and benchmarks wrap it); AttributeError on ncnn."""
        if not isinstance(self.engine, TorchEngine):
            raise AttributeError("the ncnn engine runs no torch module")
        return self.engine.network

    @network.setter
    def network(self, module: torch.nn.Module) -> None:
        if not isinstance(self.engine, TorchEngine):
            raise AttributeError("the ncnn engine runs no torch module")
        self.engine.network = module

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an input of this size comes out at."""
        return round(width * self.output_scale), round(height * self.output_scale)

    def upscale(self, batch: FrameBatch, reuse: FrameReuse | None = None) -> OutputBatch:
        """Upscale every frame of ``batch``; planes come back on the CPU. With ``reuse`` (the state
        of the frames before, in this run of consecutive frames), unchanged tiles are kept."""
        video = self.video
        if video is None:
            raise ValueError("this Upscaler was made for RGB work: give it video= to upscale planes")
        with torch.inference_mode():
            first, second, third = (
                _to_device(plane, self.device) for plane in planes_to_tensors(batch.planes, batch.layout)
            )
            rgb = planes_to_rgb((first, second, third), batch.layout, video.source_colour)
            upscaled = self._upscale_rgb(rgb, video.output_size, reuse)
            finite = self._finite_flag()  # None when no network ran (every tile kept) or nothing needs checking
            kept = reuse.kept_planes(len(batch)) if reuse is not None else None
            if kept is not None:  # every frame is the last one again: its planes, not a second conversion
                arrays, landed = kept, _landed_already
                finite = finite.cpu() if finite is not None else None
            else:
                planes = rgb_to_planes(upscaled, video.output_layout, video.output_colour)
                out_planes, finite, landed = _to_host(planes, finite)
                arrays = tensors_to_planes(out_planes, video.output_layout)
                if reuse is not None:
                    reuse.planes = arrays
            wait = landed if finite is None else self._checked_on_landing(landed, finite, batch)
        return OutputBatch(
            planes=arrays, pts=batch.pts, first_index=batch.first_index, segment=batch.segment, wait=wait
        )

    def upscale_rgb(
        self, rgb: torch.Tensor, size: tuple[int, int] | None = None, reuse: FrameReuse | None = None
    ) -> torch.Tensor:
        """RGB 0..1 (B x 3 x H x W, on the device) to the output scale, or to ``size``
        (width, height) exactly; float32 on the device.

        Below the model's scale the network's output is downscaled with antialiasing; above
        it the network runs again on its own output (x16 = x4 twice), then downscales. With
        ``reuse``, each pass keeps the tiles whose input did not change (:mod:`vidsr.upscale.reuse`).
        The network's output is checked for NaN and infinity before this returns (RGB work is
        read back at once, so waiting for the check here costs nothing).
        """
        result = self._upscale_rgb(rgb, size, reuse)
        finite = self._finite_flag()
        if finite is not None:
            self._raise_unless_finite(finite)
        return result

    def _upscale_rgb(
        self, rgb: torch.Tensor, size: tuple[int, int] | None = None, reuse: FrameReuse | None = None
    ) -> torch.Tensor:
        """``upscale_rgb`` with the network's outputs only noted in ``self._finite``, not yet read."""
        self._finite.clear()  # what a call that failed part-way noted is no part of these frames
        height, width = rgb.shape[-2:]
        target_width, target_height = size or self.output_size(width, height)
        result, unchanged = rgb, [False] * len(rgb)
        for index in range(self.passes_for(max(target_width / width, target_height / height))):
            if reuse is None:
                result = self._network_pass(result)
                continue
            state = reuse.pass_state(index, growth=self.model.scale**index)
            result, kept = state.run(result, self._network_pass, self.model.scale)
            unchanged = kept if index == 0 else [a and b for a, b in zip(unchanged, kept)]
        if reuse is not None:
            reuse.unchanged = all(unchanged)
        if result.shape[-2:] == (target_height, target_width):
            return result
        final = reuse.final if reuse is not None else None
        if all(unchanged) and final is not None and final.shape[-2:] == (target_height, target_width):
            return final.expand(len(rgb), -1, -1, -1)  # the resize of the very same pixels as before
        result = resize(result, target_width, target_height)
        if reuse is not None:
            reuse.final = result[-1:]
        return result

    def passes_for(self, scale: float) -> int:
        """How many times the network runs to reach ``scale`` (at least once: it is the model)."""
        return network_passes(self.model.scale, scale)

    def _network_pass(self, rgb: torch.Tensor) -> torch.Tensor:
        """One run of the network at its native scale, in the batches and tiles the free memory
        allows; on running out of memory all the same, in smaller batches, then smaller tiles."""
        tile = self._tile_for(rgb)
        if tile is not None and (result := self._attempt(rgb, tile)) is not None:
            return result
        shape = _shape(rgb)
        if len(rgb) > 1:
            self._plans[shape] = None  # later batches of this size split straight away
            return self._in_halves(rgb)
        tile = tile or max(shape[1:])
        while tile > MIN_TILE:
            tile = max(MIN_TILE, tile // 2)
            if (result := self._attempt(rgb, tile)) is not None:
                self._plans[shape] = tile  # later frames of this size start from the tile that worked
                return result
        raise self._too_large(rgb)

    def _attempt(self, rgb: torch.Tensor, tile: int) -> torch.Tensor | None:
        """The pass in ``tile``-pixel tiles (0: whole frames); None if the device ran out of memory."""
        checked = len(self._finite)
        try:
            return self._forward_tiled(rgb, tile)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
        del self._finite[checked:]  # the failed pass's outputs are not the frames': their retry is checked
        # Released outside the handler: the error's traceback holds the tensors of the failed pass.
        self.engine.release_memory()
        return None

    def _in_halves(self, rgb: torch.Tensor) -> torch.Tensor:
        half = len(rgb) // 2
        return torch.cat((self._network_pass(rgb[:half]), self._network_pass(rgb[half:])))

    def _tile_for(self, rgb: torch.Tensor) -> int | None:
        """The tile for a pass over ``rgb`` (0: whole frames; None: split the batch first): what
        worked for batches of its shape before, else the user's or the model's tile, else planned
        from the free memory (see ``_plan``). Kept per shape, so the frames of a render are cut alike."""
        shape = _shape(rgb)
        if shape not in self._plans:
            self._plans[shape] = self.tile or self._plan(rgb)
        return self._plans[shape]

    def _plan(self, rgb: torch.Tensor) -> int | None:
        """0 where the batch fits the free memory whole; None where it does not and can be split;
        for one frame the largest tile that fits (the user told once), or SettingsError where not
        even ``MIN_TILE`` does."""
        batch, _, height, width = rgb.shape
        per_pixel = self._activation_bytes_per_pixel()
        if batch > 1:  # split before tiling: smaller batches cost nothing, tiles cost their overlaps
            padded_height, padded_width = self._padded_size(height, width)
            whole = memory_need(padded_width, padded_height, batch=batch, scale=self.model.scale, per_pixel=per_pixel)
            return 0 if whole.total <= HEADROOM * free_memory(self.runs_on) else None
        choice = _tile_from_memory(self.model, self.runs_on, width, height, per_pixel=per_pixel)
        if choice.tile and not self._told_tiles:
            self._told_tiles = True
            self._warn(choice.message)
        return choice.tile

    def _padded_size(self, height: int, width: int) -> tuple[int, int]:
        model = self.model
        return padded_size(height, width, multiple=model.size_multiple, minimum=model.min_size, square=model.square)

    def _activation_bytes_per_pixel(self) -> float:
        if self._per_pixel is None:
            self._per_pixel = activation_bytes_per_pixel(self.model, self.dtype)
        return self._per_pixel

    def _too_large(self, rgb: torch.Tensor) -> SettingsError:
        height, width = rgb.shape[-2:]
        per_pixel = self._activation_bytes_per_pixel()
        return _too_large(self.model, self.runs_on, width, height, per_pixel, free_memory(self.runs_on))

    def _forward_tiled(self, rgb: torch.Tensor, tile: int) -> torch.Tensor:
        if not tile or max(rgb.shape[-2:]) <= tile:
            return self._forward(rgb)
        return run_tiled(self._forward, rgb, scale=self.model.scale, tile=tile, overlap=DEFAULT_OVERLAP)

    def _forward(self, rgb: torch.Tensor) -> torch.Tensor:
        model = self.model
        height, width = rgb.shape[-2:]
        padded = pad_to_requirements(rgb, multiple=model.size_multiple, minimum=model.min_size, square=model.square)
        if model.in_channels == 1:
            padded = grey(padded)
        output = self.engine(padded)
        scale = model.scale
        # Planar float32 from here on: the colour conversion reads whole planes (measured 20 % less CPU).
        cropped = output[..., : height * scale, : width * scale]
        cropped = cropped.to(torch.float32, memory_format=torch.contiguous_format)
        if self._every_output or not self._output_checked:
            self._finite.append(all_finite(cropped))  # on the device: read where the batch is waited for
        if model.out_channels == 1:
            cropped = colour_from(rgb, cropped, scale)
        return cropped.clamp_(0.0, 1.0)

    def _finite_flag(self) -> torch.Tensor | None:
        """Whether every output noted since the last call was finite: a bool on the device, read
        by whoever waits for the frames anyway (reading it here would stall a GPU's pipeline);
        None when nothing was noted."""
        flags, self._finite = self._finite, []
        if not flags:
            return None
        self._output_checked = True  # the first output's check is in hand: fp32 and bf16 need no other
        return flags[0] if len(flags) == 1 else torch.stack(flags).all()

    def _checked_on_landing(
        self, landed: Callable[[], None], finite: torch.Tensor, batch: FrameBatch
    ) -> Callable[[], None]:
        """``landed``, then the batch's check, on the flag ``_to_host`` copied with the planes:
        the encoder waits for those anyway, so the GPU is never stalled for the check."""

        def wait() -> None:
            landed()
            self._raise_unless_finite(finite, batch)

        return wait

    def _raise_unless_finite(self, finite: torch.Tensor, batch: FrameBatch | None = None) -> None:
        """VidsrError in one line if ``finite`` is False: NaN or infinity would otherwise be encoded
        as black or white frames without a word (a half-precision overflow on a GPU looks just like
        damaged weights). Names the frames of ``batch`` where there is one."""
        if bool(finite):
            return
        where = device_label(self.runs_on) + (_frames_of(batch, self.video) if batch is not None else "")
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.dtype)
        if precision:
            raise PrecisionOverflow(
                f"{self.model.name} gives NaN or infinite values in {precision} on {where} "
                "(its values overflow that precision); run again with --precision fp32"
            )
        raise VidsrError(
            f"{self.model.name} gives NaN or infinite values even in fp32 on {where}; the model is unusable"
        )


TileSource = Literal["asked", "model", "kept", "memory", "elsewhere"]


@dataclass(frozen=True)
class TileChoice:
    """The tile frames are cut into (0: whole frames), where the choice came from, and what the
    user should hear of it ("" when nothing): the one tile decision of a render, made before the
    first frame so every segment is cut alike."""

    tile: int
    source: TileSource
    message: str = ""


def choose_tile(
    model: LoadedModel,
    device: torch.device,
    width: int,
    height: int,
    *,
    asked: int = 0,
    kept: int | None = None,
    dtype: torch.dtype = torch.float32,
    local: bool = True,
) -> TileChoice:
    """The tile for ``width`` x ``height`` frames (the input of the network's last pass): the
    user's ``asked`` tile, else the model's preferred one, else the ``kept`` choice of an
    interrupted run (so frames after a resume are cut as those before it), else whole frames
    where the device's free memory holds them and the largest tiles that fit where it does not.
    A device this machine does not have (``local`` False: a CPU driver for GPU workers) is left
    to its renderers, which tile by themselves where they must."""
    check_tile(asked)
    if asked:
        return TileChoice(asked, "asked")
    if model.preferred_tile:
        return TileChoice(model.preferred_tile, "model")
    if not local:
        return TileChoice(kept or 0, "kept" if kept is not None else "elsewhere")
    fresh = _tile_from_memory(model, device, width, height, dtype=dtype)
    if kept is None or kept == fresh.tile:
        return fresh
    kept_what = f"tiles of {kept} pixels" if kept else "whole frames"
    return TileChoice(kept, "kept", f"keeping the interrupted run's {kept_what}")


def _tile_from_memory(
    model: LoadedModel,
    device: torch.device,
    width: int,
    height: int,
    *,
    dtype: torch.dtype = torch.float32,
    per_pixel: float | None = None,
) -> TileChoice:
    """Whole frames where a ``width`` x ``height`` frame fits the free memory of ``device`` whole
    (with ``HEADROOM``), else the largest tile that fits; SettingsError where not even ``MIN_TILE``
    does. ``per_pixel``: the network's activation bytes per input pixel, measured if not given."""
    per_pixel = activation_bytes_per_pixel(model, dtype) if per_pixel is None else per_pixel
    padded_height, padded_width = padded_size(
        height, width, multiple=model.size_multiple, minimum=model.min_size, square=model.square
    )
    free = free_memory(device)
    tile = tile_for_free_memory(
        padded_width,
        padded_height,
        batch=1,
        scale=model.scale,
        per_pixel=per_pixel,
        overlap=DEFAULT_OVERLAP,
        free=free,
        smallest=MIN_TILE,
    )
    if tile is None:
        raise _too_large(model, device, width, height, per_pixel, free)
    if not tile:
        return TileChoice(0, "memory")
    whole = memory_need(width, height, batch=1, scale=model.scale, per_pixel=per_pixel).total
    seams = f"; {model.name} works best on whole frames and may show seams" if model.tiling != "supported" else ""
    return TileChoice(
        tile,
        "memory",
        f"a {width}x{height} frame needs about {format_bytes(whole)} of memory whole and {_device_name(device)} "
        f"has {format_bytes(free)} free: upscaling in tiles of {tile} pixels{seams}",
    )


def _too_large(
    model: LoadedModel, device: torch.device, width: int, height: int, per_pixel: float, free: int
) -> SettingsError:
    """What to say when not even the smallest tiles of a frame fit in the device's memory."""
    need = tiled_need(width, height, MIN_TILE, batch=1, scale=model.scale, per_pixel=per_pixel, overlap=DEFAULT_OVERLAP)
    return SettingsError(
        f"a {width}x{height} frame needs about {format_bytes(need)} of memory even in {MIN_TILE}-pixel tiles "
        f"and {_device_name(device)} has {format_bytes(free)} free; free some memory or use a device with more"
    )


def checks_every_output(dtype: torch.dtype) -> bool:
    """Whether every output of a network computing in ``dtype`` is checked for NaN and infinity,
    or only the first. fp16 tops out at 65504: an RRDB trunk on a bright frame (a flash, a white
    title card after dark ones) can pass it long after the first frames were fine. bf16 has fp32's
    exponent (up to 3.4e38), which only broken weights reach, and those show on the first output;
    a network's output cannot become NaN later from finite frames without overflowing first."""
    return dtype == torch.float16


def all_finite(output: torch.Tensor) -> torch.Tensor:
    """Whether every value of ``output`` is finite: a bool on ``output``'s device, not read here.

    One reduction: a sum is NaN or infinite when any value is (inf - inf is NaN), and a sum of
    finite values reaches fp32's 3.4e38 only from values far beyond any picture's (fp16's top,
    65504, would take 5e33 of them). ``isfinite().all()`` says the same in two passes, the first
    writing a bool per value: 10 to 60 times slower on the CPU (bench/finite_check.py)."""
    return torch.isfinite(output.sum(dtype=torch.float32))


def network_passes(native_scale: int, scale: float) -> int:
    """How many times a network of ``native_scale`` runs to reach ``scale``: once up to its own
    scale, then again on its own output (x16 = x4 twice)."""
    passes, reached = 1, native_scale
    while reached < scale - 1e-6 and native_scale > 1:
        passes, reached = passes + 1, reached * native_scale
    return passes


def compiled_network(network: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` through torch.compile with its weights frozen in (oneDNN prepacks them).
    Where the kernels are cached is the process's setting (:func:`vidsr.upscale.process.use_compile_cache`)."""
    return compiled_torch_network(network)


def resize(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bicubic resize with antialiasing (a downscale filters instead of dropping pixels)."""
    antialias = images.device.type != "mps"  # MPS has no antialiased bicubic
    resized = F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)
    return resized.clamp_(0.0, 1.0)


def pad_to_requirements(
    images: torch.Tensor, *, multiple: int = 1, minimum: int = 1, square: bool = False
) -> torch.Tensor:
    """Pad height and width (at the bottom and right) up to at least ``minimum`` and a multiple of
    ``multiple``, and to a square if asked: by reflection as far as the frame allows, then by
    repeating the edge (pixel-unshuffle and window-attention models need it)."""
    height, width = images.shape[-2:]
    target_height, target_width = padded_size(height, width, multiple=multiple, minimum=minimum, square=square)
    pad_bottom, pad_right = target_height - height, target_width - width
    if not (pad_bottom or pad_right):
        return images
    reflect_bottom, reflect_right = min(pad_bottom, height - 1), min(pad_right, width - 1)
    if reflect_bottom or reflect_right:
        images = F.pad(images, (0, reflect_right, 0, reflect_bottom), mode="reflect")
    if pad_bottom > reflect_bottom or pad_right > reflect_right:
        images = F.pad(images, (0, pad_right - reflect_right, 0, pad_bottom - reflect_bottom), mode="replicate")
    return images


def padded_size(
    height: int, width: int, *, multiple: int = 1, minimum: int = 1, square: bool = False
) -> tuple[int, int]:
    """The (height, width) ``pad_to_requirements`` pads a frame of this size to."""
    target_height, target_width = (round_up(max(side, minimum), multiple) for side in (height, width))
    if square:
        return max(target_height, target_width), max(target_height, target_width)
    return target_height, target_width


def round_up(value: int, multiple: int) -> int:
    """The least multiple of ``multiple`` that is at least ``value``."""
    return -(-value // multiple) * multiple


def grey(rgb: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W RGB to B x 1 x H x W luma (``GREY_WEIGHTS``)."""
    weights = torch.tensor(GREY_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


def colour_from(rgb: torch.Tensor, luma: torch.Tensor, scale: int) -> torch.Tensor:
    """RGB at ``scale`` times ``rgb``'s size whose luma is ``luma`` (a grey network's output) and
    whose colour is that of ``rgb`` enlarged bicubically. The same offset is added to the three
    channels, so a grey frame gives ``luma`` in each of them exactly."""
    enlarged = F.interpolate(rgb, scale_factor=scale, mode="bicubic", align_corners=False) if scale > 1 else rgb
    return enlarged + (luma - grey(enlarged))


def _check_channels(model: LoadedModel) -> None:
    """vidsr feeds RGB or grey networks; anything else cannot be fed from a frame."""
    for side, channels in (("takes", model.in_channels), ("gives", model.out_channels)):
        if channels not in (1, 3):
            raise ModelError(f"{model.name} {side} {channels}-channel images; vidsr runs RGB (3) and grey (1) models")


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host to device; on CUDA through pinned memory, so the copy overlaps the GPU's work. Only
    there: from pageable memory a non-blocking copy gains nothing, and to MPS it may read the source
    after it is released (pytorch/pytorch#139550, #189690: silently wrong frames)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _to_host(
    planes: TensorPlanes, flag: torch.Tensor | None = None
) -> tuple[TensorPlanes, torch.Tensor | None, Callable[[], None]]:
    """Planes (and the batch's finite ``flag``, if any) to the CPU, and what to call before reading
    them. From CUDA the copies are queued (into pinned memory) behind the network's work instead
    of waited for here, the flag's before the event that says they have landed."""
    if planes[0].device.type != "cuda":
        first, second, third = (plane.cpu() for plane in planes)
        return (first, second, third), flag.cpu() if flag is not None else None, _landed_already
    first, second, third = (plane.to("cpu", non_blocking=True) for plane in planes)
    flag = flag.to("cpu", non_blocking=True) if flag is not None else None
    landed = torch.cuda.Event()
    # On the planes' own GPU's stream: recorded on the current device's instead (cuda:0 while the
    # work is on cuda:1), the event would complete at once and the encoder read unfinished copies.
    landed.record(torch.cuda.current_stream(planes[0].device))
    return (first, second, third), flag, landed.synchronize


def _landed_already() -> None:
    pass


def _frames_of(batch: FrameBatch, video: VideoPlanes | None) -> str:
    """Where ``batch`` is in the video, as a player shows it: " at 0:01:02.480", or " in the frames
    from 0:01:02.480 to 0:01:02.600"; "" where the time base is not known. (By time, not number:
    a segment's decoder starts where it seeks to and does not count the frames before.)"""
    if video is None or video.time_base is None:
        return ""
    first, last = (show_time((pts - video.start_pts) * video.time_base) for pts in (batch.pts[0], batch.pts[-1]))
    return f" at {first}" if len(batch) == 1 else f" in the frames from {first} to {last}"


def _device_name(device: torch.device) -> str:
    return device_label(device)


def _shape(rgb: torch.Tensor) -> tuple[int, int, int]:
    """(batch, height, width): what a pass's memory depends on."""
    return len(rgb), rgb.shape[-2], rgb.shape[-1]
