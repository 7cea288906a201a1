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
from vidsr.upscale.policy import DTYPES, Precision, default_precision, select_device
from vidsr.upscale.vulkan import ncnn_installed, vulkan_device, vulkan_devices

__all__ = [
    "ENGINES",
    "Engine",
    "EngineChoice",
    "EngineName",
    "TorchEngine",
    "choose_engine",
    "compiled_torch_network",
    "create_engine",
    "device_label",
    "measure_engines",
]

EngineName = Literal["torch", "ncnn"]
ENGINES: tuple[str, ...] = ("auto", "torch", "ncnn")


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
    or with ``auto`` on the first Vulkan GPU (not a software one), else the CPU. ``--engine auto``
    is torch on CUDA or MPS and wherever ``--device`` names a torch device; where torch would run
    on the CPU and there is a Vulkan GPU, the faster of the two for this model, measured once per
    process (``measure_engines``). ncnn on the CPU is never auto's choice: on CPUs with bf16 torch
    runs the light models 4x faster in bf16, and elsewhere the two are within a few percent
    (bench/engines.py), not worth a choice that could differ from run to run. A Vulkan device that
    is a CPU (llvmpipe) is never auto's either. A model ncnn cannot take stays on torch.
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
    gpus = [gpu for gpu in vulkan_devices() if gpu.is_gpu]
    if not gpus or model.architecture not in EXPORTABLE_ARCHITECTURES:
        return EngineChoice("torch", chosen)
    candidates = (EngineChoice("torch", chosen), EngineChoice("ncnn", torch.device("vulkan", gpus[0].index)))
    return _fastest(model, candidates, precision)


def _ncnn_choice(asked: str, chosen: torch.device, model: LoadedModel) -> EngineChoice:
    if not ncnn_installed():
        from vidsr.upscale.vulkan import ncnn_module

        ncnn_module()  # raises, saying how to install it
    check_ncnn_runs(model)
    if asked == "auto":
        gpus = [gpu for gpu in vulkan_devices() if gpu.is_gpu]
        return EngineChoice("ncnn", torch.device("vulkan", gpus[0].index) if gpus else torch.device("cpu"))
    if chosen.type != "cpu":
        raise SettingsError(f"--engine ncnn runs on --device cpu or vulkan[:N], not {asked}")
    return EngineChoice("ncnn", chosen)


def _fastest(model: LoadedModel, candidates: tuple[EngineChoice, ...], precision: Precision) -> EngineChoice:
    timings = measure_engines(model, candidates, precision=precision)
    best = min(timings, key=lambda choice: timings[choice])
    said = ", ".join(f"{choice.engine} on {choice.device} {time * 1e3:.0f} ms" for choice, time in timings.items())
    return EngineChoice(best.engine, best.device, f"measured a {_PROBE_SIDE}-pixel frame: {said}")


_PROBE_SIDE = 64
_measured: dict[tuple[str, EngineChoice, str], float] = {}


def measure_engines(
    model: LoadedModel, candidates: tuple[EngineChoice, ...], *, precision: Precision = "fp32"
) -> dict[EngineChoice, float]:
    """Seconds each candidate takes for one frame of ``_PROBE_SIDE`` pixels square (after one
    run that warms it up), measured once per process for each model: a fresh copy of the model
    on each engine (the torch engine takes a module over), in ``precision`` on torch and in
    each device's own on ncnn (fp16 on a Vulkan device that stores it)."""
    timings: dict[EngineChoice, float] = {}
    for candidate in candidates:
        key = (model.content_hash, candidate, precision)
        if key not in _measured:
            ncnn_precision = default_precision(candidate.device, model, engine="ncnn")
            own = precision if candidate.engine == "torch" else ncnn_precision
            _measured[key] = _time_one_frame(model, candidate, own)
        timings[candidate] = _measured[key]
    return timings


def _time_one_frame(model: LoadedModel, candidate: EngineChoice, precision: Precision) -> float:
    copied = dataclasses.replace(model, module=copy.deepcopy(model.module))
    engine = create_engine(copied, engine=candidate.engine, device=candidate.device, precision=precision)
    side = -(-max(_PROBE_SIDE, model.min_size) // model.size_multiple) * model.size_multiple
    images = torch.rand(1, model.in_channels, side, side, device=engine.tensor_device)
    with torch.inference_mode():
        engine(images)  # warm-up: kernels chosen, pipelines built
        started = time.perf_counter()
        engine(images)
        if engine.tensor_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started
