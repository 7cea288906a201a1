"""Load a weight file into a ready-to-run network: canonicalise → detect → build → load → describe.

The layout is detected from which keys exist and hyper-parameters are read from tensor
shapes (as spandrel does), never from the file name. Files are read with
``torch.load(weights_only=True)`` or safetensors: a pickle that would run code is refused.
Weights holding NaN or infinity are refused too. A layout vidsr does not know goes to spandrel
(the optional ``vidsr[spandrel]`` extra), given the tensors vidsr has already read safely.

What the network needs is stated in the :class:`LoadedModel` it comes back as: scale, channels,
precisions, size requirements, tiles; and what vidsr had to assume, in ``description``.
"""

# Strict typing, less the unknown-type checks: safetensors types load_file() and safe_open() only in part.
# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from math import isqrt
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.arch import RRDBNet, SRVGGNetCompact
from vidsr.models.arch.compact import ActType
from vidsr.models.arch.rrdbnet import default_upsample_stages, unshuffle_factor
from vidsr.models.descriptor import LoadedModel, channels_text, describe_needs
from vidsr.models.layouts import canonicalize, flat_tensors, preview, rename_to_basicsr
from vidsr.models.spandrel_adapter import available as spandrel_available
from vidsr.models.spandrel_adapter import load as load_with_spandrel

__all__ = [
    "SPANDREL_INSTALL",
    "SUPPORTED_LAYOUTS",
    "SUPPORTED_SUFFIXES",
    "LoadedModel",
    "build_network",
    "canonicalize",
    "content_hash",
    "describe_needs",
    "detect_and_build",
    "load_model_file",
    "load_state_dict_file",
    "native_traits",
    "read_hints",
]

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
SUPPORTED_SUFFIXES = TORCH_SUFFIXES + SAFETENSORS_SUFFIXES

SUPPORTED_LAYOUTS = (
    "ESRGAN original (model.0 / model.1.sub.N.RDB1, x1/x2/x4/x8, ESRGAN+)",
    "ESRGAN repo and KAIR/BSRGAN (conv_first / RRDB_trunk.N.RDB1 / trunk_conv / upconvN)",
    "BasicSR / Real-ESRGAN RRDBNet (body.N.rdb1 / conv_upN, bare or in params_ema / params)",
    "Real-ESRGAN SRVGGNetCompact (body.N)",
)
SPANDREL_INSTALL = "pip install 'vidsr[spandrel]'"

# A safetensors metadata key vidsr honours where the tensors cannot tell: the activation of a
# compact model without PReLU weights ("relu" or "leakyrelu").
ACT_TYPE_HINT = "act_type"
# ReLU and LeakyReLU(0.1) leave no tensors. Assumed: ReLU. Were the truth LeakyReLU, ReLU drops a
# tenth of each negative activation; the other way round it would let through activations a ReLU
# network never had to keep small, an error without bound.
ASSUMED_COMPACT_ACTIVATION: ActType = "relu"


@dataclass(frozen=True)
class Traits:
    """What an architecture needs and tolerates, before any weights are read."""

    scale: int
    in_channels: int
    out_channels: int
    size_multiple: int
    supports_half: bool
    supports_bf16: bool
    bf16_by_default: bool
    fp32_layers: tuple[str, ...]
    min_size: int = 1
    preferred_tile: int = 0


# ---------------------------------------------------------------------------- reading files


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """Read a .pth/.pt/.ckpt (weights-only torch.load) or .safetensors file onto the CPU.

    Raises ModelError if the file is missing, unreadable, not a weights file, or a pickle
    that contains arbitrary Python objects (which is refused without running it).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    if suffix in TORCH_SUFFIXES:
        return _load_torch(path)
    raise ModelError(
        f"Cannot load {path.name}: unknown model file type {suffix or '(none)'!r}; "
        f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def read_hints(path: Path) -> dict[str, str]:
    """The metadata of a .safetensors file (where a file can say what its tensors cannot); {} otherwise."""
    if Path(path).suffix.lower() not in SAFETENSORS_SUFFIXES:
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = cast("dict[str, str] | None", handle.metadata())
    except Exception:  # the tensors were read already; unreadable metadata is no metadata
        return {}
    return dict(metadata or {})


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelError(f"Cannot read {path}: not a valid safetensors file ({error})") from None


def _load_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" in str(error).lower():
            raise ModelError(
                f"Refused to load {path}: the file contains arbitrary Python objects, not just "
                "weights, and was not loaded (it could run code). If you trust it, re-save its "
                "state_dict as .safetensors."
            ) from None
        raise ModelError(f"Cannot read {path}: not a PyTorch weights file") from None
    except Exception as error:  # torch.load fails in many ways on foreign or damaged files
        raise ModelError(f"Cannot read {path}: not a PyTorch weights file ({error})") from None


# ---------------------------------------------------------------------------- detect and build


def detect_and_build(
    state: Mapping[str, Any], *, name: str, source: str, hints: Mapping[str, str] | None = None
) -> LoadedModel:
    """Detect the architecture of a state dict, build it and load the weights.

    Accepts raw or canonical state dicts; ``hints`` is the file's metadata (see ``read_hints``).
    Raises ModelError for weights holding NaN or infinity (naming the first such tensor), an
    unknown layout without spandrel (saying how to install it), or weights that do not fit.
    """
    tensors = flat_tensors(state)
    refuse_non_finite(tensors, name=name)
    canonical = {
        key: value.detach().to(torch.float32).contiguous() for key, value in rename_to_basicsr(tensors).items()
    }
    hints = dict(hints or {})
    if _is_basicsr_rrdbnet(canonical):
        architecture, hyperparameters = "RRDBNet", _rrdbnet_hyperparameters(canonical)
    elif _is_compact(canonical):
        architecture, hyperparameters = "SRVGGNetCompact", _compact_hyperparameters(canonical, hints)
    else:
        return _load_with_spandrel(tensors, name=name, source=source)
    module = _build_and_load(architecture, hyperparameters, canonical, name=name)
    traits = native_traits(architecture, hyperparameters)
    return LoadedModel(
        module=module,
        name=name,
        architecture=architecture,
        scale=traits.scale,
        in_channels=traits.in_channels,
        out_channels=traits.out_channels,
        size_multiple=traits.size_multiple,
        supports_half=traits.supports_half,
        content_hash=content_hash(canonical),
        source=source,
        params=sum(parameter.numel() for parameter in module.parameters()),
        hyperparameters=dict(hyperparameters),
        supports_bf16=traits.supports_bf16,
        bf16_by_default=traits.bf16_by_default,
        min_size=traits.min_size,
        preferred_tile=traits.preferred_tile,
        fp32_layers=traits.fp32_layers,
        description=describe_native(architecture, hyperparameters, hints),
    )


def refuse_non_finite(tensors: Mapping[str, torch.Tensor], *, name: str) -> None:
    """ModelError naming the first tensor (in file order) that holds a NaN or an infinity."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(
                f"{name}: the weight {key!r} holds NaN or infinite values; the file is damaged "
                "(or was saved after training diverged) and was not loaded"
            )


def _is_basicsr_rrdbnet(state: Mapping[str, torch.Tensor]) -> bool:
    return "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state


def _is_compact(state: Mapping[str, torch.Tensor]) -> bool:
    """``body.N`` only: convs (4-D) at even N, and PReLU slopes (1-D) or nothing at odd N."""
    if "body.0.weight" not in state:
        return False
    for key, tensor in state.items():
        index, _, kind = key.removeprefix("body.").partition(".")
        if not key.startswith("body.") or not index.isdigit():
            return False
        if kind == "weight" and tensor.ndim != (4 if int(index) % 2 == 0 else 1):
            return False
    return True


def _rrdbnet_hyperparameters(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    num_feat, first_in_ch = _shape(state, "conv_first.weight")[:2]
    num_out_ch = _shape(state, "conv_last.weight")[0]
    stages = _count_indexed(state, "conv_up")
    upsampler, factor = _upsampler(state, num_feat, stages)
    # Real-ESRGAN's x2 and x1 pixel-unshuffle the input, multiplying its channels by 4 or 16
    # (so a 4-channel x4 network with 1 channel out reads as a grey x2: the tensors are the same).
    unshuffle = next(
        (f for f in (4, 2) if first_in_ch == num_out_ch * f * f and f <= factor**stages and factor == 2), 1
    )
    scale = factor**stages // unshuffle
    hyperparameters: dict[str, Any] = {
        "num_in_ch": first_in_ch // (unshuffle * unshuffle),
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": num_feat,
        "num_block": _count_indexed(state, "body."),
        "num_grow_ch": _shape(state, "body.0.rdb1.conv1.weight")[0],
    }
    # Only what differs from BasicSR's layout is named, so BasicSR files keep their old description.
    if stages != default_upsample_stages(scale):
        hyperparameters["num_upsample"] = stages
    if "body.0.rdb1.conv1x1.weight" in state:
        hyperparameters["plus"] = True
    if upsampler != "nearest":
        hyperparameters["upsampler"] = upsampler
    return hyperparameters


def _upsampler(state: Mapping[str, torch.Tensor], num_feat: int, stages: int) -> tuple[str, int]:
    """(upsampler, enlargement per stage), told by the upsampling convs' width: a nearest stage's
    conv keeps the features, a pixel-shuffle x2 (x3) stage's makes 4 (9) times as many."""
    if stages == 0:
        return "nearest", 2
    widths = sorted({_shape(state, f"conv_up{stage}.weight")[0] for stage in range(1, stages + 1)})
    if widths == [num_feat]:
        return "nearest", 2
    if widths == [4 * num_feat]:
        return "pixelshuffle", 2
    if widths == [9 * num_feat] and stages == 1:
        return "pixelshuffle", 3
    raise ModelError(
        f"This RRDBNet's upsampling convs make {', '.join(map(str, widths))} channels from {num_feat}: "
        "neither ESRGAN's nearest upsampler (as many) nor its pixel shuffle (4x, or 9x in one x3 stage)"
    )


def _compact_hyperparameters(state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> dict[str, Any]:
    num_feat, num_in_ch = _shape(state, "body.0.weight")[:2]
    last_index = _count_indexed(state, "body.") - 1
    if last_index < 2 or last_index % 2:
        raise ModelError(
            f"This compact model's last layer is body.{last_index}; SRVGGNetCompact ends on a conv at an even index"
        )
    act_type = _compact_activation(state, hints)
    # Real-ESRGAN assumes out channels == in channels; the last conv feeds a pixel shuffle.
    num_out_ch = num_in_ch
    shuffle_channels = _shape(state, f"body.{last_index}.weight")[0]
    upscale = isqrt(shuffle_channels // num_out_ch)
    if upscale < 1 or upscale * upscale * num_out_ch != shuffle_channels:
        raise ModelError(
            f"Compact model's last conv has {shuffle_channels} channels, which is not "
            f"{num_out_ch} x a square scale; the file is not a supported SRVGGNetCompact"
        )
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_conv": (last_index - 2) // 2,
        "upscale": upscale,
        "act_type": act_type,
    }


def _compact_activation(state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> ActType:
    """PReLU leaves its slopes at the odd indices; ReLU and LeakyReLU leave nothing, so the file's
    ``act_type`` metadata decides, or vidsr assumes ReLU (and says so in the description)."""
    has_slopes = "body.1.weight" in state
    hint = hints.get(ACT_TYPE_HINT, "").strip().lower()
    if hint and hint not in ("prelu", "relu", "leakyrelu"):
        raise ModelError(f"act_type {hint!r} in the file's metadata: vidsr knows prelu, relu and leakyrelu")
    if has_slopes:
        if hint and hint != "prelu":
            raise ModelError(f"The file's metadata says act_type {hint!r}, but its tensors hold PReLU slopes")
        return "prelu"
    if hint == "prelu":
        raise ModelError("The file's metadata says act_type 'prelu', but it holds no PReLU slopes (body.1.weight)")
    if hint in ("relu", "leakyrelu"):
        return "relu" if hint == "relu" else "leakyrelu"
    return ASSUMED_COMPACT_ACTIVATION


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ModelError(f"Model file is incomplete: {key!r} is missing")
    return tuple(state[key].shape)


def _count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Entries of an indexed family: ``body.N.*`` counts N + 1 (from 0), ``conv_upN.*`` counts N
    (from 1); 0 if there is none. A gap shows up when the weights are loaded, as a missing key."""
    indices = [
        int(head) for key in state if key.startswith(prefix) and (head := key[len(prefix) :].split(".", 1)[0]).isdigit()
    ]
    if not indices:
        return 0
    return max(indices) + (1 if prefix.endswith(".") else 0)


_BUILDERS = {"RRDBNet": RRDBNet, "SRVGGNetCompact": SRVGGNetCompact}


def build_network(architecture: str, hyperparameters: Mapping[str, Any], *, device: str = "cpu") -> nn.Module:
    """Construct an untrained network; ``device="meta"`` makes one without allocating weights."""
    with torch.device(device):
        return _BUILDERS[architecture](**hyperparameters)


def _build_and_load(
    architecture: str, hyperparameters: dict[str, Any], state: dict[str, torch.Tensor], *, name: str
) -> nn.Module:
    # Built on the meta device and given the loaded tensors: no time spent on random init.
    try:
        module = build_network(architecture, hyperparameters, device="meta")
    except ValueError as error:
        raise ModelError(f"{name}: {error}") from None
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        first_problem = str(error).strip().splitlines()[1:2] or [str(error)]
        raise ModelError(
            f"The weights in {name} do not fit a {architecture} {hyperparameters}: {first_problem[0].strip()}"
        ) from None
    module.requires_grad_(False)
    return module.eval()


# ---------------------------------------------------------------------------- what a network needs


def native_traits(architecture: str, hyperparameters: Mapping[str, Any]) -> Traits:
    """What one of vidsr's own networks needs and tolerates, from its hyper-parameters alone.

    Both run in fp16 and bf16. bf16 is the CPU default for neither: its fidelity depends on the
    weights (the RRDB trunk's error grows with depth, and one model measured 44 dB on one CPU
    and 50 dB on another, models/README.md), so only a model measured with bench/precision.py
    gets it, through its card in vidsr.models.zoo; nobody measured the user's file.
    The first and last convs stay in fp32 at reduced precision: a fraction of the arithmetic,
    and the input is then never rounded to 8 significant bits (bench/precision.py).
    """
    if architecture == "RRDBNet":
        unshuffle = unshuffle_factor(
            hyperparameters["scale"], hyperparameters.get("num_upsample"), hyperparameters.get("upsampler", "nearest")
        )
        return Traits(
            scale=hyperparameters["scale"],
            in_channels=hyperparameters["num_in_ch"],
            out_channels=hyperparameters["num_out_ch"],
            size_multiple=unshuffle,
            min_size=unshuffle,
            supports_half=True,
            supports_bf16=True,
            bf16_by_default=False,
            fp32_layers=("conv_first", "conv_last"),
        )
    if architecture == "SRVGGNetCompact":
        last = 2 * hyperparameters["num_conv"] + 2
        return Traits(
            scale=hyperparameters["upscale"],
            in_channels=hyperparameters["num_in_ch"],
            out_channels=hyperparameters["num_out_ch"],
            size_multiple=1,
            supports_half=True,
            supports_bf16=True,
            bf16_by_default=False,
            fp32_layers=("body.0", f"body.{last}"),
        )
    raise ModelError(f"vidsr has no network called {architecture}")


def describe_native(architecture: str, hyperparameters: Mapping[str, Any], hints: Mapping[str, str]) -> str:
    """One line: the network as read from the file, then anything vidsr had to assume."""
    notes: list[str] = []
    if architecture == "RRDBNet":
        scale, stages = hyperparameters["scale"], hyperparameters.get("num_upsample")
        kind = "ESRGAN+ " if hyperparameters.get("plus") else ""
        text = (
            f"{kind}RRDBNet x{scale}: {hyperparameters['num_block']} blocks, {hyperparameters['num_feat']} "
            f"features, growth {hyperparameters['num_grow_ch']}"
        )
        upsampler = hyperparameters.get("upsampler", "nearest")
        unshuffle = unshuffle_factor(scale, stages, upsampler)
        if unshuffle > 1:
            text += f", pixel-unshuffle {unshuffle}"
        if upsampler != "nearest":
            text += ", pixel-shuffle upsampler"
        if stages == 1 and unshuffle == 1 and upsampler == "nearest":
            notes.append(
                "one upsampling stage, read as x2: an x3 ESRGAN file with the nearest upsampler has the same tensors "
                "and is not supported"
            )
    else:
        act = hyperparameters["act_type"]
        text = (
            f"SRVGGNetCompact x{hyperparameters['upscale']}: {hyperparameters['num_conv']} convs, "
            f"{hyperparameters['num_feat']} features, {act}"
        )
        if act != "prelu" and ACT_TYPE_HINT not in hints:
            notes.append(
                "activation assumed ReLU (ReLU and LeakyReLU leave no weights; "
                "act_type=leakyrelu in the safetensors metadata says otherwise)"
            )
    text += f"; {channels_text(hyperparameters['num_in_ch'], hyperparameters['num_out_ch'])}"
    return "; ".join([text, *notes])


def content_hash(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over sorted names, dtypes, shapes and bytes: the same weights give the same hash."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def load_model_file(path: Path) -> LoadedModel:
    """Load any supported weight file; its name is the file name without extension."""
    path = Path(path)
    state = load_state_dict_file(path)
    return detect_and_build(state, name=path.stem, source=str(path), hints=read_hints(path))


# ---------------------------------------------------------------------------- other architectures


def _load_with_spandrel(tensors: dict[str, torch.Tensor], *, name: str, source: str) -> LoadedModel:
    """A layout vidsr's own loader does not know, through spandrel if it is installed."""
    if not spandrel_available():
        raise ModelError(
            f"Unrecognised model layout in {name} (keys: {preview(tensors)}); vidsr reads ESRGAN and "
            f"SRVGGNetCompact files itself, and other architectures with spandrel: {SPANDREL_INSTALL}"
        )
    return load_with_spandrel(tensors, name=name, source=source, content_hash=content_hash(tensors))
