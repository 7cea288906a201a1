"""ncnn and its Vulkan devices: whether ncnn is installed, which devices it sees, what they can do.

ncnn (``pip install 'vidsr[ncnn]'``) is optional: nothing here imports it before it is asked a
question, and its absence is one line (:data:`NCNN_INSTALL`). Its Python module says a device's
name, kind and heap budget, not whether it stores fp16: that is probed once per device by
running a one-layer network on a value fp16 cannot hold. ncnn prints every device it finds to
stderr when it first looks; that is kept off the user's terminal.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vidsr.errors import SettingsError

__all__ = [
    "NCNN_INSTALL",
    "VulkanDevice",
    "describe_vulkan_devices",
    "fp16_storage_works",
    "most_capable",
    "ncnn_installed",
    "ncnn_module",
    "preferred_vulkan_device",
    "vulkan_device",
    "vulkan_devices",
]

NCNN_INSTALL = "pip install 'vidsr[ncnn]'"
VulkanKind = Literal["discrete GPU", "integrated GPU", "virtual GPU", "CPU"]
# VkPhysicalDeviceType as ncnn's GpuInfo.type() gives it.
_KINDS: dict[int, VulkanKind] = {0: "discrete GPU", 1: "integrated GPU", 2: "virtual GPU", 3: "CPU"}
_MEGABYTE = 1 << 20


@dataclass(frozen=True)
class VulkanDevice:
    """One Vulkan device ncnn can run on. ``kind`` "CPU" is a software rasteriser (Mesa's
    llvmpipe): correct and slow, for tests, never chosen by ``--engine auto``."""

    index: int
    name: str
    kind: VulkanKind
    heap_budget: int  # bytes ncnn may allocate on it

    @property
    def is_gpu(self) -> bool:
        return self.kind != "CPU"

    def describe(self) -> str:
        return f"vulkan:{self.index} {self.name} ({self.kind}, {self.heap_budget // _MEGABYTE} MB)"


def ncnn_installed() -> bool:
    try:
        ncnn_module()
    except SettingsError:
        return False
    return True


def ncnn_module() -> Any:
    """The ncnn Python module; SettingsError saying how to install it where it is missing."""
    try:
        return importlib.import_module("ncnn")
    except ImportError:
        raise SettingsError(f"the ncnn engine needs the ncnn package: {NCNN_INSTALL}") from None


@functools.cache
def vulkan_devices() -> tuple[VulkanDevice, ...]:
    """The Vulkan devices ncnn sees, in its order; () without ncnn or without a Vulkan driver."""
    if not ncnn_installed():
        return ()
    ncnn = ncnn_module()
    with _quiet_stderr():
        count = int(ncnn.get_gpu_count())
    devices: list[VulkanDevice] = []
    for index in range(count):
        info = ncnn.get_gpu_info(index)
        budget = int(ncnn.get_gpu_device(index).get_heap_budget()) * _MEGABYTE
        kind = _KINDS.get(int(info.type()), "virtual GPU")
        devices.append(VulkanDevice(index, str(info.device_name()), kind, budget))
    return tuple(devices)


def vulkan_device(index: int) -> VulkanDevice:
    """Device ``index``; SettingsError (with what there is) where ncnn or the device is missing."""
    ncnn_module()
    devices = vulkan_devices()
    if not devices:
        raise SettingsError(
            "--device vulkan: ncnn finds no Vulkan device (install your GPU's Vulkan driver, or Mesa's "
            "mesa-vulkan-drivers for a software one)"
        )
    if not 0 <= index < len(devices):
        last = len(devices) - 1
        raise SettingsError(f"--device vulkan:{index}: there is {_count(len(devices))}, vulkan:0 to vulkan:{last}")
    return devices[index]


def preferred_vulkan_device() -> VulkanDevice:
    """The device ``--device vulkan`` means: the first discrete GPU, else the first integrated or
    virtual one, and a software device (llvmpipe) only where there is no GPU. Mesa installs
    llvmpipe beside radv and anv, and ncnn may list it first: rendering there would take the CPU."""
    vulkan_device(0)  # SettingsError where ncnn or every device is missing
    return most_capable(vulkan_devices())


def most_capable(devices: tuple[VulkanDevice, ...]) -> VulkanDevice:
    """The first device of the best kind, in ncnn's order among equals."""
    rank = {kind: place for place, kind in enumerate(_KINDS.values())}
    return min(devices, key=lambda device: (rank[device.kind], device.index))


def describe_vulkan_devices() -> list[str]:
    """One line per Vulkan device for ``vidsr models`` / ``vidsr info``, or one line saying why none."""
    if not ncnn_installed():
        return [f"Vulkan: not used (the ncnn engine is not installed: {NCNN_INSTALL})"]
    devices = vulkan_devices()
    if not devices:
        return ["Vulkan: no device found (no Vulkan driver); the ncnn engine runs on the CPU"]
    return [f"Vulkan: {device.describe()}" for device in devices]


@functools.cache
def fp16_storage_works(index: int) -> bool:
    """Whether device ``index`` stores fp16: a value fp16 cannot hold (1 + 2^-12) comes back
    rounded through a one-layer network with fp16 storage on, and exact where ncnn fell back to fp32."""
    ncnn = ncnn_module()
    net = ncnn.Net()
    net.opt.use_vulkan_compute = True
    for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
        setattr(net.opt, flag, True)
    net.set_vulkan_device(index)
    # out = in + 0 (BinaryOp ADD with a scalar): nothing but a round trip through the device's storage.
    if net.load_param_mem("7767517\n2 2\nInput in0 0 1 in0\nBinaryOp add 1 1 in0 out0 0=0 1=1 2=0.0\n") != 0:
        return False
    net.load_model(ncnn.DataReaderFromEmpty())
    value = np.float32(1.0 + 2.0**-12)
    pixels = np.full((8, 4, 4), value, dtype=np.float32)  # kept alive until extract returns
    extractor = net.create_extractor()
    extractor.input("in0", ncnn.Mat(pixels))
    status, output = extractor.extract("out0")
    result = np.array(output)
    del extractor
    net.clear()
    return status == 0 and bool(np.all(result != value)) and bool(np.allclose(result, 1.0, atol=1e-3))


def _count(devices: int) -> str:
    return "1 Vulkan device" if devices == 1 else f"{devices} Vulkan devices"


@contextlib.contextmanager
def _quiet_stderr() -> Generator[None, None, None]:
    """File descriptor 2 to /dev/null for a moment: ncnn's C++ prints its device report there."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
