"""The network stage: device, precision, memory layout, batching and out-of-memory recovery.

Everything that touches the model lives here, so the rest of the pipeline only sees
integer planes in and integer planes out.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.colour import ColourSpec, PlaneLayout, planes_to_rgb, rgb_to_planes
from vidsr.decode import FrameBatch
from vidsr.errors import SettingsError, VidsrError
from vidsr.loader import LoadedModel
from vidsr.tiling import DEFAULT_OVERLAP, run_tiled
from vidsr.zoo import DEFAULT_MODEL

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "fp16", "bf16"]


def select_device(name: str) -> torch.device:
    """The torch device for ``name``; "auto" prefers CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingsError("--device cuda: no CUDA GPU is available to this torch build (try --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SettingsError("--device mps: Apple's Metal backend is not available here (try --device cpu)")
    if name not in ("cpu", "cuda", "mps"):
        raise SettingsError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    return torch.device(name)


MIN_SCALE, MAX_SCALE = 1.0, 16.0


def check_scale(scale: float) -> float:
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise SettingsError(f"--scale {scale:g}: choose a scale from {MIN_SCALE:g} to {MAX_SCALE:g}")
    return float(scale)


@dataclass(frozen=True)
class UpscaleOptions:
    """The user's choice of network and how to run it, shared by every command that upscales."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)  # one, or two to interpolate between with ``alpha``
    alpha: float | None = None
    scale: float | None = None  # None: the model's own
    tile: int = 0
    device: str = "auto"
    precision: str = "auto"


def create_upscaler(options: UpscaleOptions = UpscaleOptions(), *, bit_depth: int = 8) -> Upscaler:
    """An Upscaler for RGB work (images, inspection frames, estimates); ``bit_depth`` is the
    source's, which the automatic precision depends on."""
    from vidsr.interpolate import choose_model

    loaded = choose_model(options.models, options.alpha)
    torch_device = select_device(options.device)
    return Upscaler(
        loaded,
        device=torch_device,
        precision=choose_precision(options.precision, torch_device, loaded, bit_depth=bit_depth),
        scale=options.scale,
        tile=options.tile,
    )


def default_precision(device: torch.device, model: LoadedModel, *, bit_depth: int = 8) -> Precision:
    """The fastest precision that keeps the output faithful.

    fp16 on CUDA. bf16 on CPUs with native bf16 dot products: measured within 52-56 dB of fp32
    with the three embedded models on real frames, and 1.9x as fast (bench/speed.py). Not for
    sources above 8 bits, though: bf16 holds 8 significant bits, which would be the 8-bit detour
    10-bit video must not take. fp32 everywhere else.
    """
    if device.type == "cuda" and model.supports_half:
        return "fp16"
    if device.type == "cpu" and bit_depth <= 8 and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), not by emulation,
    which would make bf16 slower than fp32."""
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


def choose_precision(name: str, device: torch.device, model: LoadedModel, *, bit_depth: int = 8) -> Precision:
    """The user's --precision, or the default for this device, model and source depth."""
    if name == "auto":
        return default_precision(device, model, bit_depth=bit_depth)
    if name not in PRECISIONS:
        raise SettingsError(f"--precision {name}: choose one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type == "cpu":
        raise SettingsError("--precision fp16 is for GPUs; on the CPU use bf16 or fp32")
    return name  # type: ignore[return-value]


def _already_there() -> None:
    pass


@dataclass(frozen=True)
class OutputBatch:
    """Upscaled frames as integer planes in the output layout, with the source timestamps.

    ``wait`` returns once the planes hold their samples: at once on the CPU; on CUDA when the
    copy from the GPU has landed, so the GPU can take the next batch before this one is read.
    """

    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    pts: tuple[int, ...]
    first_index: int
    segment: int = 0
    wait: Callable[[], None] = _already_there

    def __len__(self) -> int:
        return len(self.pts)


class Upscaler:
    """Runs one model on batches of frames, from source planes (or RGB) to output planes (or RGB).

    It takes the model's module over: the module is moved to the device, dtype and layout it
    runs in, in place.

    Args:
        model: the loaded network and what it supports.
        device: where the network and the colour conversion run.
        precision: the dtype the network computes in.
        scale: the output scale, any value from 1 to 16; None for the model's own.
        size: the exact (width, height) of every output frame, overriding ``scale`` (video).
        tile: cut frames into tiles of this size (pixels, input side) with blended overlaps; 0: whole frames.
        source_colour / output_colour: how to read the input planes and write the output ones (video).
        output_layout: bit depth and subsampling of the output planes (video).
        compile: run the network through torch.compile (see ``should_compile``); if that fails,
            ``warn`` is told and the network runs as it is.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: torch.device,
        precision: Precision,
        scale: float | None = None,
        size: tuple[int, int] | None = None,
        tile: int = 0,
        source_colour: ColourSpec | None = None,
        output_colour: ColourSpec | None = None,
        output_layout: PlaneLayout | None = None,
        compile: bool = False,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.model = model
        self.device = device
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.output_scale = check_scale(scale) if scale is not None else float(model.scale)
        self.size = size
        if tile < 0:
            raise SettingsError(f"--tile {tile}: give a tile size in pixels, or 0 for whole frames")
        self.tile = tile
        self.source_colour = source_colour
        self.output_colour = output_colour
        self.output_layout = output_layout
        self.network = model.module.to(device=device, dtype=self.dtype, memory_format=torch.channels_last).eval()
        self._compiled = compiled_network(self.network) if compile else None
        self._warn = warn
        if device.type == "cpu":
            keep_large_buffers_in_heap()

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an input of this size comes out at."""
        return round(width * self.output_scale), round(height * self.output_scale)

    def upscale(self, batch: FrameBatch) -> OutputBatch:
        """Upscale every frame of ``batch``; planes come back on the CPU."""
        with torch.inference_mode():
            planes = tuple(_to_device(_to_tensor(p, batch.layout), self.device) for p in batch.planes)
            rgb = planes_to_rgb(planes, batch.layout, self.source_colour)
            upscaled = self.upscale_rgb(rgb, self.size)
            out_planes, wait = _to_host(rgb_to_planes(upscaled, self.output_layout, self.output_colour))
            arrays = tuple(_to_numpy(p, self.output_layout) for p in out_planes)
        return OutputBatch(planes=arrays, pts=batch.pts, first_index=batch.first_index, segment=batch.segment, wait=wait)

    def upscale_rgb(self, rgb: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """RGB 0..1 (B x 3 x H x W, on the device) to the output scale, or to ``size``
        (width, height) exactly; float32 on the device.

        Below the model's scale the network's output is downscaled with antialiasing; above
        it the network runs again on its own output (x16 = x4 twice), then downscales.
        """
        height, width = rgb.shape[-2:]
        target_width, target_height = size or self.output_size(width, height)
        result = rgb
        for _ in range(self.passes_for(max(target_width / width, target_height / height))):
            result = self._network_pass(result)
        if result.shape[-2:] != (target_height, target_width):
            result = resize(result, target_width, target_height)
        return result

    def passes_for(self, scale: float) -> int:
        """How many times the network runs to reach ``scale`` (at least once: it is the model)."""
        passes, reached = 1, self.model.scale
        while reached < scale - 1e-6 and self.model.scale > 1:
            passes, reached = passes + 1, reached * self.model.scale
        return passes

    def _network_pass(self, rgb: torch.Tensor) -> torch.Tensor:
        """One run of the network at its native scale; on out-of-memory, smaller batches, then tiles."""
        try:
            return self._forward_tiled(rgb, self.tile)
        except torch.OutOfMemoryError:
            _release_cached_memory(self.device)
        if len(rgb) > 1:
            half = len(rgb) // 2
            return torch.cat((self._network_pass(rgb[:half]), self._network_pass(rgb[half:])))
        tile = self.tile or max(rgb.shape[-2:])
        while tile > _SMALLEST_AUTOMATIC_TILE:
            tile //= 2
            try:
                return self._forward_tiled(rgb, tile)
            except torch.OutOfMemoryError:
                _release_cached_memory(self.device)
        raise VidsrError(
            f"the {self.device.type} device ran out of memory even on {tile}-pixel tiles of a "
            f"{rgb.shape[-1]}x{rgb.shape[-2]} frame; try --device cpu or a smaller model"
        )

    def _forward_tiled(self, rgb: torch.Tensor, tile: int) -> torch.Tensor:
        if not tile or max(rgb.shape[-2:]) <= tile:
            return self._forward(rgb)
        return run_tiled(self._forward, rgb, scale=self.model.scale, tile=tile, overlap=DEFAULT_OVERLAP)

    def _forward(self, rgb: torch.Tensor) -> torch.Tensor:
        height, width = rgb.shape[-2:]
        padded = _pad_to_multiple(rgb, self.model.size_multiple)
        network_input = padded.to(self.dtype).contiguous(memory_format=torch.channels_last)
        output = self._run_network(network_input)
        scale = self.model.scale
        # Planar float32 from here on: the colour conversion reads whole planes (measured 20 % less CPU).
        cropped = output[..., : height * scale, : width * scale]
        return cropped.to(torch.float32, memory_format=torch.contiguous_format).clamp_(0.0, 1.0)

    def _run_network(self, images: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(images)
            except torch.OutOfMemoryError:
                raise  # the device's limit, not the compiler's: split and tile as uncompiled
            except Exception as exc:  # a compiler fails in many ways; the network below re-raises its own errors
                self._compiled = None
                cause = getattr(exc, "inner_exception", None) or exc
                reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                self._warn(f"torch.compile failed ({reason[:160]}); running the network uncompiled")
        return self.network(images)


_SMALLEST_AUTOMATIC_TILE = 32

# torch.compile is worth it when it saves more than it costs. Measured for realesrgan-x4plus in bf16
# on the CPU: +5 to +9 % (1.71 -> 1.79 and 1.72 -> 1.88 fps), for 30 s of compiling the first time
# and 10 s once cached. For realesr-animevideov3, +0 to 3 % (within noise): its convolutions already
# run in oneDNN and there is little else to fuse.
COMPILE_MIN_ARITHMETIC = 500e3  # FLOP per output pixel: the RRDB models, not the compact ones
COMPILE_MIN_WORK = 5e14  # FLOP in the whole render: about ten minutes of this CPU's bf16 network time


def should_compile(
    choice: bool | None, device: torch.device, *, arithmetic: float, output_pixels: int, frames: int, tile: int
) -> bool:
    """The user's ``--compile/--no-compile``, or on the CPU, for a heavy network, untiled (tiles
    come in several shapes, each compiled anew), in a render long enough to repay the compiling."""
    if choice is not None:
        return choice
    work = arithmetic * output_pixels * frames
    return device.type == "cpu" and not tile and arithmetic >= COMPILE_MIN_ARITHMETIC and work >= COMPILE_MIN_WORK


def compiled_network(network: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` through torch.compile with its weights frozen in (oneDNN prepacks them);
    the compiled kernels are cached in vidsr's cache folder, so the next render starts faster."""
    from vidsr.ncnn import cache_dir

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "torch-compile"))
    return torch.compile(network, options={"freezing": True})


def arithmetic_per_output_pixel(model: LoadedModel) -> float:
    """Floating-point operations the network spends on each output pixel (two per multiply-add
    of every convolution), counted by running it on a tiny input (milliseconds; the meta device
    would need no arithmetic but takes most of a second to start).

    It is what tells a light network (realesr-animevideov3: 77 kFLOP a pixel) from a heavy one
    (realesrgan-x4plus: 2.2 MFLOP), and so how much the encoder's share of the CPU matters.
    """
    side = 8 * model.size_multiple
    total = 0

    def count(conv: torch.nn.Conv2d, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1] * output.numel()

    module = model.module
    convolutions = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [conv.register_forward_hook(count) for conv in convolutions]
    try:
        weight = next(module.parameters())  # an Upscaler may have moved the network already
        with torch.inference_mode():
            module(torch.zeros(1, model.in_channels, side, side, dtype=weight.dtype, device=weight.device))
    finally:
        for hook in hooks:
            hook.remove()
    return total / (side * model.scale) ** 2


def resize(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bicubic resize with antialiasing (a downscale filters instead of dropping pixels)."""
    antialias = images.device.type != "mps"  # MPS has no antialiased bicubic
    resized = F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)
    return resized.clamp_(0.0, 1.0)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest glibc accepts on 64-bit
_TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_large_buffers_in_heap() -> bool:
    """Stop glibc from giving every activation buffer its own fresh mmap.

    A network allocates and frees buffers of many MB per frame. glibc's default threshold
    adapts to the history of frees, so one process serves them from the heap and the next
    maps and page-faults them anew on every call: measured 4.2 against 6.5 fps for
    realesr-animevideov3 at 320x180, from run to run of the same command. Fixed thresholds
    make it the fast case every time. A no-op off glibc; returns whether it applied.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False


def _pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad height and width up to a multiple (pixel-unshuffle models need it)."""
    height, width = images.shape[-2:]
    pad_bottom, pad_right = -height % multiple, -width % multiple
    if not (pad_bottom or pad_right):
        return images
    return F.pad(images, (0, pad_right, 0, pad_bottom), mode="reflect")


def _to_tensor(plane: np.ndarray, layout: PlaneLayout) -> torch.Tensor:
    """A plane array as a tensor torch can compute with (it has no full uint16)."""
    if plane.dtype == np.uint8:
        return torch.from_numpy(plane)
    if layout.bit_depth <= 15:
        return torch.from_numpy(plane.view(np.int16))
    return torch.from_numpy(plane.astype(np.int32))


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host to device; on CUDA through pinned memory, so the copy overlaps the GPU's work."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _to_host(planes: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], Callable[[], None]]:
    """Planes to the CPU, and what to call before reading them. From CUDA the copies are queued
    (into pinned memory) behind the network's work instead of waited for here."""
    if planes[0].device.type != "cuda":
        return tuple(plane.cpu() for plane in planes), _already_there
    host = tuple(plane.to("cpu", non_blocking=True) for plane in planes)
    landed = torch.cuda.Event()
    landed.record()
    return host, landed.synchronize


def _to_numpy(plane: torch.Tensor, layout: PlaneLayout) -> np.ndarray:
    """A host plane as the unsigned array the encoder takes; a view, so it may be made before
    the samples land. (Above 15 bits torch has no unsigned type to view: vidsr writes at most 10.)"""
    array = plane.numpy()
    if layout.bit_depth <= 8:
        return array
    if array.dtype == np.int32:
        raise ValueError("output planes deeper than 15 bits are not supported")
    return array.view(np.uint16)


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
