"""Choices about how to run a network: which device, which precision, whether to compile.

Pure decisions from the hardware, the model and the job; nothing here changes the process.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch

from vidsr.errors import SettingsError
from vidsr.models import LoadedModel
from vidsr.upscale.vulkan import fp16_storage_works, preferred_vulkan_device, vulkan_device

__all__ = [
    "COMPILE_MIN_ARITHMETIC",
    "COMPILE_MIN_WORK",
    "PRECISIONS",
    "DeviceName",
    "Precision",
    "NATIVE_BF16_CAPABILITY",
    "arithmetic_per_output_pixel",
    "check_cuda_bf16",
    "choose_precision",
    "cpu_has_native_bf16",
    "default_precision",
    "select_device",
    "should_compile",
]

DeviceName = Literal["auto", "cpu", "cuda", "mps", "vulkan"]  # and "cuda:N", "vulkan:N"
Precision = Literal["fp32", "fp16", "bf16"]
DTYPES: dict[Precision, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_of(dtype: torch.dtype) -> Precision:
    """The name of a network dtype, as --precision spells it."""
    return next(name for name, known in DTYPES.items() if known == dtype)


PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


def select_device(name: str) -> torch.device:
    """The device for ``name``: "auto" (CUDA, then Apple's MPS, then the CPU), "cpu", "cuda" (the
    current GPU), "cuda:N" (GPU N of those CUDA shows this process), "mps" or "vulkan[:N]" (ncnn's,
    see :mod:`vidsr.upscale.vulkan`); SettingsError in one line for a device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, colon, index_text = name.partition(":")
    numbered = kind in ("cuda", "vulkan") and index_text.isdigit()
    if kind not in ("cpu", "cuda", "mps", "vulkan") or (colon and not numbered):
        raise SettingsError(
            f"unknown device {name!r}: choose auto, cpu, cuda, cuda:N (a GPU's number), mps or vulkan[:N]"
        )
    index = int(index_text) if colon else None
    if kind == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"--device {name}: no CUDA GPU is available to this torch build (try --device cpu)")
    if kind == "cuda" and index is not None and index >= (count := torch.cuda.device_count()):
        gpus = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise SettingsError(f"--device {name}: this machine has {count} CUDA GPU{'s' * (count != 1)} ({gpus})")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SettingsError(f"--device {name}: Apple's Metal backend is not available here (try --device cpu)")
    if kind == "vulkan":
        device = vulkan_device(index) if index is not None else preferred_vulkan_device()  # SettingsError if absent
        return torch.device("vulkan", device.index)
    return torch.device(kind, index) if index is not None else torch.device(kind)


def default_precision(
    device: torch.device,
    model: LoadedModel,
    *,
    bit_depth: int = 8,
    native_bf16: bool | None = None,
    engine: str = "torch",
) -> Precision:
    """The fastest precision that keeps the output faithful, as the model's descriptor allows.

    fp16 on CUDA for models that support it, 10-bit sources too: fp16 holds 11 significant
    bits, so every 10-bit code reaches the network exactly (tests/test_device.py). bf16 on CPUs
    with native bf16 dot products, only for models whose descriptor says bf16 holds there
    (``bf16_by_default``: at least 45 dB of fp32 with margin, bench/precision.py), and not for
    sources above 8 bits: bf16 holds 8 significant bits, which would be the 8-bit detour 10-bit
    video must not take. fp32 everywhere else. ``native_bf16`` says whether the CPUs that will
    run the network have bf16 in hardware (None: this one's). The ncnn engine: fp16 on Vulkan
    devices that store it, fp32 on the CPU.
    """
    if device.type == "cuda" and model.supports_half:
        return "fp16"
    if device.type == "vulkan":
        return "fp16" if model.supports_half and fp16_storage_works(device.index or 0) else "fp32"
    if engine == "ncnn":
        return "fp32"  # ncnn on the CPU: fp32 (its bf16 is not measured against torch's)
    if device.type == "cpu" and bit_depth <= 8 and model.bf16_by_default and model.supports_bf16:
        native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
        if native:
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
            flag_lines = (line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags"))
            no_flags: list[str] = []
            flags = next(flag_lines, no_flags)
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(
    name: str,
    device: torch.device,
    model: LoadedModel,
    *,
    bit_depth: int = 8,
    native_bf16: bool | None = None,
    engine: str = "torch",
) -> Precision:
    """The user's --precision, or the default for this device, model, source depth and engine."""
    if name == "auto":
        return default_precision(device, model, bit_depth=bit_depth, native_bf16=native_bf16, engine=engine)
    if name not in PRECISIONS:
        raise SettingsError(f"--precision {name}: choose one of {', '.join(PRECISIONS)}")
    if engine == "ncnn" or device.type == "vulkan":
        return _ncnn_precision(name, device, model)
    if name == "fp16" and device.type == "cpu":
        raise SettingsError("--precision fp16 is for GPUs; on the CPU use bf16 or fp32")
    if (name == "fp16" and not model.supports_half) or (name == "bf16" and not model.supports_bf16):
        raise SettingsError(f"--precision {name}: {model.name} does not run in {name}; use fp32")
    if name == "bf16" and device.type == "cuda" and torch.cuda.is_available() and not torch.version.hip:
        gpu, capability = torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)
        check_cuda_bf16(gpu, capability, fp16_works=model.supports_half)
    return name  # type: ignore[return-value]


# Ampere (compute capability 8.0) and later compute bf16 in hardware. Before it, bf16 tensors still
# work (torch.cuda.is_bf16_supported() says True, counting emulation), but nothing computes in bf16:
# at best fp32's speed with bf16's 8 significant bits, while fp16 keeps 11 and fp32 24. That is what
# is_bf16_supported(including_emulation=False) asks, for the current GPU only; this asks the one the
# network runs on. (ROCm's GPUs are not asked: torch says every one of them supports bf16.)
NATIVE_BF16_CAPABILITY = (8, 0)


def check_cuda_bf16(gpu: str, capability: tuple[int, int], *, fp16_works: bool = True) -> None:
    """SettingsError in one line where ``--precision bf16`` is asked of a CUDA GPU (its name and
    compute capability) that has no bf16 in hardware; ``fp16_works``: the model runs in fp16."""
    if capability >= NATIVE_BF16_CAPABILITY:
        return
    instead = "fp16 or fp32" if fp16_works else "fp32"
    raise SettingsError(
        f"--precision bf16: {gpu} (compute capability {capability[0]}.{capability[1]}) has no bf16 in hardware, "
        f"only Ampere (8.0) and later GPUs do; use {instead}"
    )


def _ncnn_precision(name: str, device: torch.device, model: LoadedModel) -> Precision:
    if name == "fp32":
        return "fp32"
    if name == "bf16" or device.type != "vulkan":
        raise SettingsError(f"--precision {name}: the ncnn engine runs fp32 on the CPU and fp16 or fp32 on Vulkan")
    if not model.supports_half:
        raise SettingsError(f"--precision fp16: {model.name} does not run in fp16; use fp32")
    if not fp16_storage_works(device.index or 0):
        raise SettingsError(f"--precision fp16: {device} does not store fp16; use fp32")
    return "fp16"


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


def arithmetic_per_output_pixel(model: LoadedModel) -> float:
    """Floating-point operations the network spends on each output pixel (two per multiply-add
    of every convolution), counted by running it on a tiny input (milliseconds; the meta device
    would need no arithmetic but takes most of a second to start).

    It is what tells a light network (realesr-animevideov3: 77 kFLOP a pixel) from a heavy one
    (realesrgan-x4plus: 2.2 MFLOP), and so how much the encoder's share of the CPU matters.
    """
    side = max(8 * model.size_multiple, -(-model.min_size // model.size_multiple) * model.size_multiple)
    total = 0

    def count(conv: torch.nn.Conv2d, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1] * output.numel()

    module = model.module
    convolutions = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [conv.register_forward_hook(count) for conv in convolutions]
    try:
        weight = next(module.parameters())  # an Upscaler may have moved the network already
        dtype = torch.float32 if model.fp32_layers else weight.dtype  # such a network casts for itself
        with torch.inference_mode():
            module(torch.zeros(1, model.in_channels, side, side, dtype=dtype, device=weight.device))
    finally:
        for hook in hooks:
            hook.remove()
    return total / (side * model.scale) ** 2
