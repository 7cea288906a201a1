"""Load a weight file into a ready-to-run network: canonicalise → detect → build → load.

The layout is detected from which keys exist and hyper-parameters are read from tensor
shapes (as spandrel does), never from the file name. Files are read with
``torch.load(weights_only=True)`` or safetensors: a pickle that would run code is refused.
"""

# Strict typing, less the unknown-type checks: safetensors types load_file() only in part.
# pyright: reportUnknownVariableType=false

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import isqrt
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.arch import RRDBNet, SRVGGNetCompact

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
SUPPORTED_SUFFIXES = TORCH_SUFFIXES + SAFETENSORS_SUFFIXES

SUPPORTED_LAYOUTS = (
    "ESRGAN original (model.0 / model.1.sub.N.RDB1)",
    "ESRGAN repo (conv_first / RRDB_trunk.N.RDB1 / trunk_conv)",
    "BasicSR / Real-ESRGAN RRDBNet (body.N.rdb1, bare or in params_ema / params)",
    "Real-ESRGAN SRVGGNetCompact (body.N with PReLU)",
)

# Training checkpoints nest the weights; the first of these keys found is unwrapped
# (params_ema before params: the EMA weights are the ones Real-ESRGAN publishes).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net")
_DATA_PARALLEL_PREFIX = "module."
_KEYS_SHOWN_IN_ERRORS = 8


@dataclass(frozen=True)
class LoadedModel:
    """A network ready to run, plus what a caller needs to know to feed it.

    ``module`` is in eval mode, fp32, on the CPU, with gradients off; it takes and returns
    float RGB NCHW in 0..1. Input H and W must be multiples of ``size_multiple``.
    """

    module: nn.Module
    name: str
    architecture: str
    scale: int
    in_channels: int
    out_channels: int
    size_multiple: int
    supports_half: bool
    content_hash: str
    source: str
    params: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)


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


# ---------------------------------------------------------------------------- canonicalise


def canonicalize(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the weights under BasicSR / Real-ESRGAN names, whatever the file's layout.

    Unwraps training-checkpoint wrappers (params_ema, params, state_dict, ...), drops
    non-tensor metadata, strips DataParallel ``module.`` prefixes and renames the old
    ESRGAN layouts. Idempotent. Raises ModelError if there are no tensors.
    """
    tensors = _strip_data_parallel_prefix(_tensors_only(_unwrap(state)))
    if _is_original_esrgan(tensors):
        return _rename_original_esrgan(tensors)
    if _is_esrgan_repo(tensors):
        return _rename_esrgan_repo(tensors)
    return tensors


def _unwrap(state: Any) -> Mapping[str, Any]:
    if not isinstance(state, Mapping):
        raise ModelError(f"The file holds a {type(state).__name__}, not a dictionary of weights")
    mapping = cast(Mapping[str, Any], state)
    while True:
        inner = next((mapping[key] for key in _WRAPPER_KEYS if isinstance(mapping.get(key), Mapping)), None)
        if inner is None:
            return mapping
        mapping = cast(Mapping[str, Any], inner)


def _tensors_only(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    tensors = {str(key): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ModelError(f"The file holds no weight tensors (keys: {_preview(state)})")
    return tensors


def _strip_data_parallel_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    while state and all(key.startswith(_DATA_PARALLEL_PREFIX) for key in state):
        state = {key[len(_DATA_PARALLEL_PREFIX) :]: value for key, value in state.items()}
    return state


def _is_original_esrgan(state: Mapping[str, Any]) -> bool:
    return "model.0.weight" in state and any(key.startswith("model.1.sub.") for key in state)


def _is_esrgan_repo(state: Mapping[str, Any]) -> bool:
    return any(key.startswith("RRDB_trunk.") for key in state)


_OLD_RDB_CONV = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")
_OLD_TRUNK_CONV = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)")
_OLD_TOP_LEVEL = re.compile(r"model\.(\d+)\.(weight|bias)")


def _rename_original_esrgan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ESRGAN's nn.Sequential indices onto BasicSR names.

    x4 is ``model.0`` conv_first, ``model.1.sub`` the trunk (its last entry conv_body),
    then conv convs at 3 and 6 (after each upsample), 8 (HR conv) and 10 (last conv).
    """
    renamed: dict[str, torch.Tensor] = {}
    tail: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if match := _OLD_RDB_CONV.fullmatch(key):
            block, rdb, conv, kind = match.groups()
            renamed[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif match := _OLD_TRUNK_CONV.fullmatch(key):
            renamed[f"conv_body.{match.group(2)}"] = value
        elif (match := _OLD_TOP_LEVEL.fullmatch(key)) and match.group(1) == "0":
            renamed[f"conv_first.{match.group(2)}"] = value
        elif match := _OLD_TOP_LEVEL.fullmatch(key):
            tail.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            raise ModelError(f"Unexpected key {key!r} in an original-ESRGAN model file")
    renamed.update(_rename_original_tail(tail))
    return renamed


def _rename_original_tail(tail: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    indices = sorted(tail)
    upsampling_convs = len(indices) - 2
    if upsampling_convs != 2:
        raise ModelError(
            f"This ESRGAN model has {max(upsampling_convs, 0)} upsampling stages "
            f"(scale {2 ** max(upsampling_convs, 0)}x); vidsr supports the x4 layout "
            "(and x2/x1 with pixel-unshuffle)"
        )
    names = ["conv_up1", "conv_up2", "conv_hr", "conv_last"]
    return {
        f"{name}.{kind}": value
        for name, index in zip(names, indices, strict=True)
        for kind, value in tail[index].items()
    }


_ESRGAN_REPO_RENAMES = (
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\."), r"body.\1.rdb\2."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv1\."), "conv_up1."),
    (re.compile(r"^upconv2\."), "conv_up2."),
    (re.compile(r"^HRconv\."), "conv_hr."),
)


def _rename_esrgan_repo(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in _ESRGAN_REPO_RENAMES:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


# ---------------------------------------------------------------------------- detect and build


def detect_and_build(state: Mapping[str, Any], *, name: str, source: str) -> LoadedModel:
    """Detect the architecture of a state dict, build it and load the weights.

    Accepts raw or canonical state dicts. Raises ModelError for an unknown layout (naming
    the keys found and the layouts supported) or weights that do not fit the detected network.
    """
    canonical = {key: value.detach().to(torch.float32).contiguous() for key, value in canonicalize(state).items()}
    if _is_basicsr_rrdbnet(canonical):
        architecture, hyperparameters = "RRDBNet", _rrdbnet_hyperparameters(canonical)
    elif _is_compact(canonical):
        architecture, hyperparameters = "SRVGGNetCompact", _compact_hyperparameters(canonical)
    else:
        raise ModelError(
            f"Unrecognised model layout in {name}: found keys {_preview(canonical)}. "
            f"Supported layouts: {'; '.join(SUPPORTED_LAYOUTS)}"
        )
    module = _build_and_load(architecture, hyperparameters, canonical, name=name)
    return _describe(module, architecture, hyperparameters, canonical, name=name, source=source)


def _is_basicsr_rrdbnet(state: Mapping[str, torch.Tensor]) -> bool:
    return "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state


def _is_compact(state: Mapping[str, torch.Tensor]) -> bool:
    first = state.get("body.0.weight")
    return first is not None and first.ndim == 4


def _rrdbnet_hyperparameters(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    num_feat, first_in_ch = _shape(state, "conv_first.weight")[:2]
    num_out_ch = _shape(state, "conv_last.weight")[0]
    # Scales 2 and 1 pixel-unshuffle the input, multiplying its channels by 4 or 16.
    if first_in_ch == num_out_ch * 16:
        scale, num_in_ch = 1, first_in_ch // 16
    elif first_in_ch == num_out_ch * 4:
        scale, num_in_ch = 2, first_in_ch // 4
    else:
        scale, num_in_ch = 4, first_in_ch
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": num_feat,
        "num_block": _count_indexed(state, "body."),
        "num_grow_ch": _shape(state, "body.0.rdb1.conv1.weight")[0],
    }


def _compact_hyperparameters(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    num_feat, num_in_ch = _shape(state, "body.0.weight")[:2]
    last_index = _count_indexed(state, "body.") - 1
    if "body.1.weight" not in state:
        raise ModelError(
            "This compact model has no PReLU weights, so its activation cannot be told from "
            "the file; vidsr supports Real-ESRGAN's PReLU compact models"
        )
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
        "act_type": "prelu",
    }


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ModelError(f"Model file is incomplete: {key!r} is missing")
    return tuple(state[key].shape)


def _count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of entries of an indexed container such as ``body.N.*`` (highest N + 1)."""
    indices = {int(key[len(prefix) :].split(".", 1)[0]) for key in state if key.startswith(prefix)}
    return max(indices) + 1


_BUILDERS = {"RRDBNet": RRDBNet, "SRVGGNetCompact": SRVGGNetCompact}


def build_network(architecture: str, hyperparameters: Mapping[str, Any], *, device: str = "cpu") -> nn.Module:
    """Construct an untrained network; ``device="meta"`` makes one without allocating weights."""
    with torch.device(device):
        return _BUILDERS[architecture](**hyperparameters)


def _build_and_load(
    architecture: str, hyperparameters: dict[str, Any], state: dict[str, torch.Tensor], *, name: str
) -> nn.Module:
    # Built on the meta device and given the loaded tensors: no time spent on random init.
    module = build_network(architecture, hyperparameters, device="meta")
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        first_problem = str(error).strip().splitlines()[1:2] or [str(error)]
        raise ModelError(
            f"The weights in {name} do not fit a {architecture} {hyperparameters}: {first_problem[0].strip()}"
        ) from None
    module.requires_grad_(False)
    return module.eval()


def _describe(
    module: nn.Module,
    architecture: str,
    hyperparameters: dict[str, Any],
    state: Mapping[str, torch.Tensor],
    *,
    name: str,
    source: str,
) -> LoadedModel:
    return LoadedModel(
        module=module,
        name=name,
        architecture=architecture,
        scale=int(hyperparameters["scale"] if "scale" in hyperparameters else hyperparameters["upscale"]),
        in_channels=hyperparameters["num_in_ch"],
        out_channels=hyperparameters["num_out_ch"],
        size_multiple=getattr(module, "unshuffle", 1),
        supports_half=True,
        content_hash=content_hash(state),
        source=source,
        params=sum(parameter.numel() for parameter in module.parameters()),
        hyperparameters=dict(hyperparameters),
    )


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
    return detect_and_build(load_state_dict_file(path), name=path.stem, source=str(path))


def _preview(keys: Any) -> str:
    names = list(keys)
    shown = ", ".join(str(name) for name in names[:_KEYS_SHOWN_IN_ERRORS])
    more = f", ... ({len(names)} keys)" if len(names) > _KEYS_SHOWN_IN_ERRORS else ""
    return shown + more
