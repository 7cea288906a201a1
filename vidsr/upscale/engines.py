"""Engines: what runs the network on a batch of images, torch or ncnn, behind one small interface.

The runner (:class:`vidsr.upscale.runner.Upscaler`) owns everything around the network, for
both engines alike: padding, grey models, tiles and their cross-fade, batches split and tiles
shrunk when memory runs out, passes above the model's scale, colour. An engine only maps a
padded float32 batch (B x C x H x W, on ``tensor_device``) to the network's output, and raises
:class:`vidsr.upscale.memory.DeviceOutOfMemory` (or torch's own) when its device is full.

- ``torch``: the model's module on the CPU, CUDA or MPS, in the precision chosen, channels-last,
  optionally through torch.compile.
- ``ncnn`` (``pip install 'vidsr[ncnn]'``): the network written as ncnn files
  (:mod:`vidsr.models.ncnn_export`), on the CPU in fp32 or on a Vulkan device (any GPU: AMD,
  Intel, NVIDIA, Apple through MoltenVK) in fp16 where it stores fp16. Frames stay on the CPU
  for torch's part of the work.

:func:`choose_engine` turns ``--engine`` and ``--device`` into an :class:`EngineChoice`; for
``auto`` see its docstring.
"""

# Strict typing, less the unknown-type checks: torch types Module.eval() and torch.compile only in part.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from vidsr.errors import SettingsError
from vidsr.models import LoadedModel
from vidsr.models.ncnn_export import EXPORTABLE_ARCHITECTURES
from vidsr.upscale.memory import is_out_of_memory
from vidsr.upscale.ncnn_engine import NcnnEngine
from vidsr.upscale.policy import DTYPES, Precision, arithmetic_per_output_pixel, default_precision, select_device
from vidsr.upscale.vulkan import VulkanDevice, most_capable, ncnn_installed, vulkan_device, vulkan_devices

__all__ = [
    "ENGINES",
    "MEASURED_MIN_ARITHMETIC",
    "Engine",
    "EngineChoice",
    "EngineName",
    "TorchEngine",
    "choose_engine",
    "compiled_torch_network",
    "create_engine",
    "device_label",
    "engines_timed",
    "measure_engines",
]

EngineName = Literal["torch", "ncnn"]
ENGINES: tuple[str, ...] = ("auto", "torch", "ncnn")
# FLOP per output pixel from which --engine auto times ncnn against torch fp32 on the CPU: the
# embedded models (realesr-animevideov3 77 k, realesrgan-x4plus 2.2 M) and users' real ones are
# above, the small nets of tests and toy models (0.6 to 38 k) below.
MEASURED_MIN_ARITHMETIC = 50e3


class Engine(Protocol):
    """Runs one model's network on padded float32 batches."""

    @property
    def name(self) -> EngineName: ...

    @property
    def tensor_device(self) -> torch.device:
        """Where the runner keeps frames, tiles and colour work for this engine."""
        ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """B x C x H x W float32 in 0..1 on ``tensor_device`` → the network's output there (any
        float dtype, any layout; the runner crops and converts)."""
        ...

    def release_memory(self) -> None:
        """Give back what a failed pass left cached, before a smaller one."""
        ...


@dataclass(frozen=True)
class EngineChoice:
    """The engine and the device it runs on (``cpu``, ``cuda:N``, ``mps``, ``vulkan:N``); ``reason``
    says, for ``--engine auto``, how it was decided ("" where there was nothing to decide)."""

    engine: EngineName
    device: torch.device
    reason: str = ""


def device_label(device: torch.device) -> str:
    """The device as messages name it: "the CPU", "the GPU", "vulkan:0 (llvmpipe ...)"."""
    if device.type == "vulkan":
        index = device.index or 0
        return f"vulkan:{index} ({vulkan_device(index).name})"
    return {"cpu": "the CPU", "cuda": "the GPU", "mps": "the GPU"}.get(device.type, f"the {device.type} device")


class TorchEngine:
    """The model's module on a torch device: moved there in place, in ``precision`` (the layers the
    model keeps in fp32 stay fp32), channels-last, optionally compiled (a compiler failure is told
    to ``warn`` and the module runs as it is)."""

    name: EngineName = "torch"

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: torch.device,
        precision: Precision,
        compile: bool = False,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        dtype = DTYPES[precision]
        self._dtype = dtype
        self.tensor_device = device
        # torch's stubs leave memory_format out of Module.to's overloads; it is accepted all the same.
        self.network: torch.nn.Module = model.module.to(  # pyright: ignore[reportCallIssue]
            device=device, dtype=dtype, memory_format=torch.channels_last
        ).eval()
        reduced = dtype != torch.float32
        for name in model.fp32_layers if reduced else ():
            self.network.get_submodule(name).float()
        # A network that keeps its first layer in fp32 casts for itself: its input is never rounded.
        self._input_dtype = torch.float32 if reduced and model.fp32_layers else dtype
        self._compiled = compiled_torch_network(self.network) if compile else None
        self._warn = warn

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with exact_fp32(self.tensor_device, self._dtype):
            return self._run(images)

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        network_input = images.to(self._input_dtype).contiguous(memory_format=torch.channels_last)
        if self._compiled is not None:
            try:
                return self._compiled(network_input)
            except Exception as exc:  # a compiler fails in many ways; the network below re-raises its own errors
                if is_out_of_memory(exc):
                    raise  # the device's limit, not the compiler's: split and tile as uncompiled
                self._compiled = None
                cause = getattr(exc, "inner_exception", None) or exc
                reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                self._warn(f"torch.compile failed ({reason[:160]}); running the network uncompiled")
        return self.network(network_input)

    def release_memory(self) -> None:
        if self.tensor_device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.tensor_device.type == "mps":
            torch.mps.empty_cache()


@contextlib.contextmanager
def exact_fp32(device: torch.device, dtype: torch.dtype) -> Generator[None, None, None]:
    """fp32 means fp32: cuDNN computes fp32 convolutions in TF32 by default on NVIDIA GPUs since
    Ampere (10 bits of mantissa: fp16's), which would make ``--precision fp32`` on a GPU no more
    exact than fp16. Switched off around the network only, and put back as it was."""
    if device.type != "cuda" or dtype != torch.float32:
        yield
        return
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = allowed


def compiled_torch_network(network: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` through torch.compile with its weights frozen in (oneDNN prepacks them)."""
    return torch.compile(network, options={"freezing": True})


def create_engine(
    model: LoadedModel,
    *,
    engine: EngineName,
    device: torch.device,
    precision: Precision,
    compile: bool = False,
    warn: Callable[[str], None] = lambda message: None,
) -> Engine:
    """The engine that runs ``model`` on ``device`` (a ``vulkan`` device is always ncnn's)."""
    if engine == "ncnn" or device.type == "vulkan":
        check_ncnn_runs(model)
        gpu = (device.index or 0) if device.type == "vulkan" else None
        return NcnnEngine(model, gpu=gpu, fp16=precision == "fp16")
    return TorchEngine(model, device=device, precision=precision, compile=compile, warn=warn)


def check_ncnn_runs(model: LoadedModel) -> None:
    """SettingsError, in one line, for a model the ncnn engine cannot take (spandrel's architectures)."""
    if model.architecture not in EXPORTABLE_ARCHITECTURES:
        raise SettingsError(
            f"{model.name} is a {model.architecture}, which stays on torch: the ncnn engine runs "
            f"{' and '.join(EXPORTABLE_ARCHITECTURES)} (use --engine torch or auto)"
        )


def choose_engine(engine: str, device: str, model: LoadedModel, *, precision: Precision = "fp32") -> EngineChoice:
    """``--engine`` and ``--device`` as an engine and a device, or SettingsError in one line.

    ``--device vulkan[:N]`` is ncnn's. ``--engine ncnn`` runs on ``--device cpu``, a Vulkan device,
    or with ``auto`` on the best Vulkan GPU (discrete first; never a software one), else the CPU. ``--engine auto``
    is torch on CUDA or MPS and wherever ``--device`` names a device. Where torch would run on the
    CPU (``--device auto`` without CUDA or MPS), auto takes the fastest of torch and ncnn for this
    model, measured once per process (``measure_engines``) among:

    - torch on the CPU, in ``precision`` (what it would run);
    - ncnn on the best Vulkan GPU, if there is one (a Vulkan device that is a CPU, llvmpipe, never);
    - ncnn on the CPU, only where torch would run fp32, for networks of at least
      ``MEASURED_MIN_ARITHMETIC`` per output pixel. Where torch runs bf16 (CPUs with bf16 in
      hardware, for the models whose bf16 is faithful) it wins by far and is not timed: on a
      2-core Sapphire Rapids Xeon (AMX) torch bf16 runs realesr-animevideov3 2.8x faster than
      torch fp32, and ncnn's fp32 measured 0.36-0.87x torch fp32 there (bench/engines.py). On CPUs
      without bf16 the two fp32 paths are close and which wins depends on the CPU and its load
      (ncnn 1.38x torch for animevideov3 and 1.04x for x4plus on a 2-core AVX2 EPYC; 0.84-1.13x
      for animevideov3 on the same Xeon made to look like an AVX2 CPU, bench/avx2_cpu.c, loaded
      by other jobs), hence the measurement.
      Lighter networks (test nets, tiny user models) stay on torch: on the probe's frame their
      time is per-layer overhead, not arithmetic, so it would not predict real frames, and the
      network is a minor share of their frames' time next to colour conversion and encoding.

    The choice is recorded in the job (MachineChoices), so a resume keeps it even where another
    measurement would choose otherwise (the two engines' fp32 frames differ by rounding, > 50 dB).
    A model ncnn cannot take, or a machine without ncnn, stays on torch.
    """
    if engine not in ENGINES:
        raise SettingsError(f"--engine {engine!r}: choose {', '.join(ENGINES)}")
    chosen = select_device(device)
    if chosen.type == "vulkan":
        if engine == "torch":
            raise SettingsError(f"--device {device} runs on the ncnn engine; --engine torch runs cpu, cuda or mps")
        vulkan_device(chosen.index or 0)
        check_ncnn_runs(model)
        return EngineChoice("ncnn", chosen)
    if engine == "ncnn":
        return _ncnn_choice(device, chosen, model)
    if engine == "torch" or device != "auto" or chosen.type != "cpu":
        return EngineChoice("torch", chosen)
    if model.architecture not in EXPORTABLE_ARCHITECTURES or not ncnn_installed():
        return EngineChoice("torch", chosen)
    candidates = [EngineChoice("torch", chosen)]
    gpu = _best_vulkan_gpu()
    if gpu is not None:
        candidates.append(EngineChoice("ncnn", torch.device("vulkan", gpu.index)))
    if precision == "fp32" and arithmetic_per_output_pixel(model) >= MEASURED_MIN_ARITHMETIC:
        candidates.append(EngineChoice("ncnn", chosen))
    if len(candidates) == 1:
        return candidates[0]
    return _fastest(model, tuple(candidates), precision)


def _ncnn_choice(asked: str, chosen: torch.device, model: LoadedModel) -> EngineChoice:
    if not ncnn_installed():
        from vidsr.upscale.vulkan import ncnn_module

        ncnn_module()  # raises, saying how to install it
    check_ncnn_runs(model)
    if asked == "auto":
        gpu = _best_vulkan_gpu()
        return EngineChoice("ncnn", torch.device("vulkan", gpu.index) if gpu else torch.device("cpu"))
    if chosen.type != "cpu":
        raise SettingsError(f"--engine ncnn runs on --device cpu or vulkan[:N], not {asked}")
    return EngineChoice("ncnn", chosen)


def _best_vulkan_gpu() -> VulkanDevice | None:
    """A discrete GPU before an integrated one; None where the only Vulkan devices are software."""
    gpus = tuple(device for device in vulkan_devices() if device.is_gpu)
    return most_capable(gpus) if gpus else None


def _fastest(model: LoadedModel, candidates: tuple[EngineChoice, ...], precision: Precision) -> EngineChoice:
    timings = measure_engines(model, candidates, precision=precision)
    best = min(timings, key=lambda choice: timings[choice])
    said = ", ".join(f"{choice.engine} on {choice.device} {time * 1e3:.0f} ms" for choice, time in timings.items())
    return EngineChoice(best.engine, best.device, f"measured a {_probe_side(model)}-pixel frame: {said}")


# The probe frame: small frames favour ncnn, whose per-layer overhead is lower than torch's (on the
# Xeon made to look like an AVX2 CPU, bench/avx2_cpu.c: x4plus measured ncnn 1.22x torch fp32 at 32
# pixels, 1.00x at 64, 0.79-0.84x at 96 to 160x90). So the probe carries enough arithmetic for the
# overhead not to count (realesr-animevideov3: 128 pixels, 20 GFLOP), but no more than a 64-pixel
# frame of a heavy network (x4plus: 150 GFLOP, a few seconds a run), which keeps it cheap.
_PROBE_ARITHMETIC = 20e9
_PROBE_SIDES = (64, 128)


def _probe_side(model: LoadedModel) -> int:
    flop_per_input_pixel = arithmetic_per_output_pixel(model) * model.scale**2
    side = min(max(math.sqrt(_PROBE_ARITHMETIC / flop_per_input_pixel), _PROBE_SIDES[0]), _PROBE_SIDES[1])
    return math.ceil(max(side, model.min_size) / model.size_multiple) * model.size_multiple


_measured: dict[tuple[str, EngineChoice, str], float] = {}


def engines_timed() -> int:
    """How many one-frame timings this process has made (``measure_engines``): what tells, in
    tests, that a choice was measured or taken without measuring."""
    return len(_measured)


def measure_engines(
    model: LoadedModel, candidates: tuple[EngineChoice, ...], *, precision: Precision = "fp32"
) -> dict[EngineChoice, float]:
    """Seconds each candidate takes for one frame of ``_probe_side`` pixels square, measured once
    per process for each model: a fresh copy of the model on each engine (the torch engine takes a
    module over), in ``precision`` on torch and in each device's own on ncnn (fp16 on a Vulkan
    device that stores it). Each engine runs the frame once to warm up (kernels chosen, pipelines
    built), then the engines take turns ``_PROBE_ROUNDS`` times and each keeps its best time: on a
    shared machine a burst of load then slows both alike rather than the one that happened to run."""
    missing = [c for c in candidates if (model.content_hash, c, precision) not in _measured]
    if missing:
        for candidate, seconds in _time_one_frame(model, tuple(missing), precision).items():
            _measured[(model.content_hash, candidate, precision)] = seconds
    return {candidate: _measured[(model.content_hash, candidate, precision)] for candidate in candidates}


_PROBE_ROUNDS = 2


def _time_one_frame(
    model: LoadedModel, candidates: tuple[EngineChoice, ...], precision: Precision
) -> dict[EngineChoice, float]:
    engines: dict[EngineChoice, Engine] = {}
    for candidate in candidates:
        own = precision if candidate.engine == "torch" else default_precision(candidate.device, model, engine="ncnn")
        copied = dataclasses.replace(model, module=copy.deepcopy(model.module))
        engines[candidate] = create_engine(copied, engine=candidate.engine, device=candidate.device, precision=own)
    side = _probe_side(model)
    images = torch.rand(1, model.in_channels, side, side)
    best = dict.fromkeys(candidates, float("inf"))
    with torch.inference_mode():
        for engine in engines.values():
            engine(images.to(engine.tensor_device))
        for _ in range(_PROBE_ROUNDS):
            for candidate, engine in engines.items():
                best[candidate] = min(best[candidate], _seconds(engine, images.to(engine.tensor_device)))
    return best


def _seconds(engine: Engine, images: torch.Tensor) -> float:
    started = time.perf_counter()
    engine(images)
    if engine.tensor_device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started
