"""The network stage: colour conversion, tiling, the runner, and the choices of how to run.

``Upscaler`` takes integer planes (or RGB) to upscaled planes (or RGB), its network run by an
engine (``engines``: torch, or ncnn on the CPU or a Vulkan device); ``policy`` chooses the
device, precision and compilation; ``process`` holds the process-wide settings a program may
opt into. Imports the models layer and the shared plane types, never the media layer.
"""

from __future__ import annotations

from vidsr.upscale.engines import ENGINES, EngineChoice, EngineName, choose_engine, device_label
from vidsr.upscale.policy import (
    DTYPES,
    Precision,
    arithmetic_per_output_pixel,
    choose_precision,
    cpu_has_native_bf16,
    precision_of,
    select_device,
    should_compile,
)
from vidsr.upscale.process import tune_process_for_rendering
from vidsr.upscale.reuse import FrameReuse, ReuseCount
from vidsr.upscale.runner import (
    MAX_SCALE,
    MIN_SCALE,
    TileChoice,
    UpscaleOptions,
    Upscaler,
    VideoPlanes,
    check_scale,
    check_tile,
    choose_tile,
    create_upscaler,
    network_passes,
    resize,
    round_up,
)
from vidsr.upscale.vulkan import NCNN_INSTALL, VulkanDevice, describe_vulkan_devices, vulkan_devices

__all__ = [
    "DTYPES",
    "FrameReuse",
    "ReuseCount",
    "ENGINES",
    "NCNN_INSTALL",
    "EngineChoice",
    "EngineName",
    "VulkanDevice",
    "choose_engine",
    "describe_vulkan_devices",
    "device_label",
    "vulkan_devices",
    "Precision",
    "MAX_SCALE",
    "MIN_SCALE",
    "UpscaleOptions",
    "Upscaler",
    "TileChoice",
    "VideoPlanes",
    "arithmetic_per_output_pixel",
    "check_scale",
    "check_tile",
    "choose_tile",
    "choose_precision",
    "cpu_has_native_bf16",
    "create_upscaler",
    "network_passes",
    "precision_of",
    "resize",
    "round_up",
    "select_device",
    "should_compile",
    "tune_process_for_rendering",
]
