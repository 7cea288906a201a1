"""How much memory a frame takes through a network, how much there is, and the tile that fits.

A 12-megapixel photo through realesrgan-x4plus untiled needs about 110 GB at once (the x4 stages
hold 64 channels at output size); a 1080p frame about 19 GB. Rather than find out by crashing,
the runner plans: the network's activation bytes per input pixel are *measured* once (one forward
pass on a tiny input, every tensor alive at each layer boundary counted), the device's free memory
is read, and frames that would not fit are cut into the largest tiles that do.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from vidsr.models import LoadedModel
from vidsr.upscale.vulkan import vulkan_device

__all__ = [
    "DeviceOutOfMemory",
    "MemoryNeed",
    "activation_bytes_per_pixel",
    "format_bytes",
    "free_memory",
    "is_out_of_memory",
    "largest_tile_that_fits",
    "memory_need",
    "tile_for_free_memory",
    "tiled_need",
]

HEADROOM = 0.75  # of the free memory, the most a frame may plan to use: the rest is for everything else
# Convolution kernels allocate workspaces and reorder buffers beside their tensors: the peak RSS of
# realesrgan-x4plus on the CPU measured 1.0-1.2 times the tensors counted (1-2 threads, 128-256 px).
_WORKSPACE = 1.5


def activation_bytes_per_pixel(model: LoadedModel, dtype: torch.dtype = torch.float32) -> float:
    """Bytes alive at once, per input pixel, when the network runs in ``dtype``: the most that
    the tensors entering and leaving its layers add up to at any layer boundary, measured on a
    tiny input (these networks are convolutional: it grows with the area and nothing else)."""
    side = 8 * model.size_multiple
    module = model.module
    weight = next(module.parameters())
    peak = _peak_live_bytes(
        module, torch.zeros(1, model.in_channels, side, side, dtype=weight.dtype, device=weight.device)
    )
    # Scaled from the dtype most weights are in, not the first one's: an Upscaler keeps the first
    # layer in fp32 and the trunk in fp16/bf16, and scaling by the first layer's halved the
    # measured (already half-width) trunk again (realesrgan-x4plus in bf16: 3174 B/px, not 6348).
    return peak / (side * side) * dtype.itemsize / _dtype_of_most_weights(module).itemsize


def _dtype_of_most_weights(module: torch.nn.Module) -> torch.dtype:
    counts: dict[torch.dtype, int] = {}
    for parameter in module.parameters():
        counts[parameter.dtype] = counts.get(parameter.dtype, 0) + parameter.numel()
    return max(counts, key=lambda dtype: counts[dtype])


def _peak_live_bytes(module: torch.nn.Module, images: torch.Tensor) -> int:
    alive: dict[int, tuple[weakref.ReferenceType[torch.Tensor], int]] = {}
    peak = 0

    def note(tensors: Iterable[object]) -> None:
        nonlocal peak
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                alive[storage.data_ptr()] = (weakref.ref(tensor), storage.nbytes())
        for key, (reference, _) in list(alive.items()):
            if reference() is None:
                del alive[key]
        peak = max(peak, sum(size for _, size in alive.values()))

    hooks = [layer.register_forward_pre_hook(lambda layer, inputs: note(inputs)) for layer in module.modules()]
    hooks += [
        layer.register_forward_hook(lambda layer, inputs, output: note((*inputs, output))) for layer in module.modules()
    ]
    try:
        with torch.inference_mode():
            module(images)
    finally:
        for hook in hooks:
            hook.remove()
    return peak


@dataclass(frozen=True)
class MemoryNeed:
    """What running ``batch`` frames of ``width`` x ``height`` through the network takes, in bytes."""

    network: float  # the network's activations (with a margin for workspaces)
    output: float  # the float32 result at output size, and the copy the colour conversion makes

    @property
    def total(self) -> float:
        return self.network + self.output


def memory_need(
    width: int, height: int, *, batch: int, scale: int, per_pixel: float, output_scale: float | None = None
) -> MemoryNeed:
    """The memory one network pass over whole frames needs."""
    out = output_scale or scale
    return MemoryNeed(
        network=_WORKSPACE * per_pixel * width * height * batch,
        output=2 * 3 * 4 * width * height * out * out * batch,
    )


def largest_tile_that_fits(
    width: int, height: int, *, batch: int, scale: int, per_pixel: float, overlap: int, budget: float, smallest: int
) -> int | None:
    """0 if whole frames fit in ``budget`` bytes, else the largest tile side (input pixels) whose
    pass fits beside the full-size result the tiles are blended into; None if not even
    ``smallest`` does (the frame cannot be upscaled on this device)."""
    if memory_need(width, height, batch=batch, scale=scale, per_pixel=per_pixel).total <= budget:
        return 0

    def fits(tile: int) -> bool:
        need = tiled_need(width, height, tile, batch=batch, scale=scale, per_pixel=per_pixel, overlap=overlap)
        return need <= budget

    if not fits(smallest):
        return None
    fitting, too_large = smallest, max(width, height)  # a tile as large as the frame is whole frames
    while too_large - fitting > 1:  # the need only grows with the tile: bisect
        middle = (fitting + too_large) // 2
        fitting, too_large = (middle, too_large) if fits(middle) else (fitting, middle)
    return fitting


def tiled_need(width: int, height: int, tile: int, *, batch: int, scale: int, per_pixel: float, overlap: int) -> float:
    """The memory a pass in ``tile``-pixel tiles needs: the full-size result the tiles are blended
    into (its weights, and the division that ends the blend, in float32), and one window's pass."""
    blended = 2 * (3 + 1) * 4 * width * height * scale * scale * batch
    window = min(tile + 2 * overlap, width), min(tile + 2 * overlap, height)
    return blended + memory_need(*window, batch=batch, scale=scale, per_pixel=per_pixel).total


def tile_for_free_memory(
    width: int, height: int, *, batch: int, scale: int, per_pixel: float, overlap: int, free: float, smallest: int
) -> int | None:
    """The tile for a pass when ``free`` bytes are free (see ``largest_tile_that_fits``): planned
    within ``HEADROOM`` of it, and only where nothing fits that, within all of it (the estimates
    carry margins of their own, and refusing costs the user the frame)."""
    for budget in (HEADROOM * free, free):
        tile = largest_tile_that_fits(
            width,
            height,
            batch=batch,
            scale=scale,
            per_pixel=per_pixel,
            overlap=overlap,
            budget=budget,
            smallest=smallest,
        )
        if tile is not None:
            return tile
    return None


def format_bytes(size: float) -> str:
    """``size`` for a message: "850 MB", "6.4 GB"."""
    return f"{size / 1e6:.0f} MB" if size < 1e9 else f"{size / 1e9:.1f} GB"


def free_memory(device: torch.device) -> int:
    """Bytes this process can still allocate on ``device``: on a GPU what the driver says is free
    (plus what torch holds unused); on the CPU the least of the memory available to the system,
    the cgroup's limit (containers) and this process's address-space limit."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = torch.cuda.memory_allocated(device)
        room = free + torch.cuda.memory_reserved(device) - allocated
        # A cap set with torch.cuda.set_per_process_memory_fraction (a GPU shared with other work)
        # is not in the driver's count: without it, frames would be planned whole and refused.
        return max(min(room, int(_memory_fraction(device) * total) - allocated), 0)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    if device.type == "vulkan":  # ncnn's heap budget for the device (Vulkan says no more than that)
        return vulkan_device(device.index or 0).heap_budget
    return min(_available_ram(), _cgroup_room(), _address_space_room())


def _memory_fraction(device: torch.device) -> float:
    """The share of the GPU this process may allocate (1.0 where torch cannot say: before 2.6)."""
    getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    return float(getter(device)) if getter is not None else 1.0


def _available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: the out-of-memory recovery is the safety net


def _cgroup_room() -> int:
    try:
        limit = open("/sys/fs/cgroup/memory.max", encoding="ascii").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current", encoding="ascii").read())
    except (OSError, ValueError):
        return 1 << 62
    return 1 << 62 if limit == "max" else max(int(limit) - used, 0)


def _address_space_room() -> int:
    try:
        import resource

        limit, _ = resource.getrlimit(resource.RLIMIT_AS)
        if limit == resource.RLIM_INFINITY:
            return 1 << 62
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return max(limit - int(line.split()[1]) * 1024, 0)
    except (ImportError, OSError, ValueError):
        pass
    return 1 << 62


class DeviceOutOfMemory(RuntimeError):
    """An engine other than torch could not allocate (ncnn's -100, on the CPU or a Vulkan device)."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means the device ran out of memory: torch's OutOfMemoryError on a GPU; on
    the CPU a RuntimeError from its allocator ("DefaultCPUAllocator: can't allocate ..."); on Apple's
    GPU, in the torch versions that raise it as a plain RuntimeError, "MPS backend out of memory";
    another engine's :class:`DeviceOutOfMemory`."""
    if isinstance(error, torch.OutOfMemoryError | DeviceOutOfMemory):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "DefaultCPUAllocator" in text
        or "can't allocate memory" in text
        or "not enough memory" in text
        or "MPS backend out of memory" in text
    )
