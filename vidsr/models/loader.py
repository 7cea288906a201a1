"""Load a weight file into a ready-to-run network: canonicalise → detect → build → load → describe.

Each architecture family knows its own layouts, detection, hyper-parameters and needs
(``vidsr.models.architectures``); the loader walks that registry in order and the first family
that recognises the tensors builds the network. Hyper-parameters come from tensor shapes (as
spandrel does), never from the file name. Weights holding NaN or infinity are refused. A layout
no family knows goes to spandrel (the optional ``vidsr[spandrel]`` extra), given the tensors
vidsr has already read safely (``vidsr.models.files``).

What the network needs is stated in the :class:`LoadedModel` it comes back as: scale, channels,
precisions, size requirements, tiles; and what vidsr had to assume, in ``description``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.architectures import REGISTRY, Architecture, Traits
from vidsr.models.descriptor import LoadedModel, describe_needs
from vidsr.models.files import SUPPORTED_SUFFIXES, load_state_dict_file, read_hints
from vidsr.models.layouts import flat_tensors, preview
from vidsr.models.spandrel_adapter import available as spandrel_available
from vidsr.models.spandrel_adapter import load as load_with_spandrel

__all__ = [
    "SPANDREL_INSTALL",
    "SUPPORTED_LAYOUTS",
    "SUPPORTED_SUFFIXES",
    "LoadedModel",
    "Traits",
    "build_network",
    "canonicalize",
    "content_hash",
    "describe_needs",
    "detect_and_build",
    "file_hints",
    "load_model_file",
    "load_state_dict_file",
    "native_traits",
    "read_hints",
]

SUPPORTED_LAYOUTS = REGISTRY.layouts()  # vidsr's own families; one registered later is in REGISTRY.layouts()
SPANDREL_INSTALL = "pip install 'vidsr[spandrel]'"


def load_model_file(path: Path) -> LoadedModel:
    """Load any supported weight file; its name is the file name without extension."""
    path = Path(path)
    state = load_state_dict_file(path)
    return detect_and_build(state, name=path.stem, source=str(path), hints=read_hints(path))


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
    canonical = {key: value.detach().to(torch.float32).contiguous() for key, value in _renamed(tensors).items()}
    hints = dict(hints or {})
    for architecture in REGISTRY:
        if architecture.detect(canonical):
            return _load_native(architecture, canonical, name=name, source=source, hints=hints)
    return _load_with_spandrel(tensors, name=name, source=source)


def canonicalize(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The weights under their family's own names (BasicSR's for ESRGAN), whatever the file's layout.

    Unwraps training-checkpoint wrappers (params_ema, params, state_dict, ...), drops non-tensor
    metadata, strips ``module.`` prefixes and lets every family rename its older layouts.
    Idempotent; tensors no family claims pass through unrenamed. Raises ModelError if there are
    no tensors or an old-layout file has a tail vidsr cannot map.
    """
    return _renamed(flat_tensors(state))


def _renamed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for architecture in REGISTRY:
        tensors = architecture.canonicalise(tensors)
    return tensors


def _load_native(
    architecture: Architecture, state: dict[str, torch.Tensor], *, name: str, source: str, hints: dict[str, str]
) -> LoadedModel:
    hyperparameters = architecture.hyperparameters(state, hints)
    module = _build_and_load(architecture, hyperparameters, state, name=name)
    traits = architecture.traits(hyperparameters)
    return LoadedModel(
        module=module,
        name=name,
        architecture=architecture.name,
        scale=traits.scale,
        in_channels=traits.in_channels,
        out_channels=traits.out_channels,
        size_multiple=traits.size_multiple,
        supports_half=traits.supports_half,
        content_hash=content_hash(state),
        source=source,
        params=sum(parameter.numel() for parameter in module.parameters()),
        hyperparameters=dict(hyperparameters),
        supports_bf16=traits.supports_bf16,
        bf16_by_default=traits.bf16_by_default,
        min_size=traits.min_size,
        preferred_tile=traits.preferred_tile,
        fp32_layers=traits.fp32_layers,
        description=architecture.describe(hyperparameters, hints),
    )


def _build_and_load(
    architecture: Architecture, hyperparameters: dict[str, Any], state: dict[str, torch.Tensor], *, name: str
) -> nn.Module:
    # Built on the meta device and given the loaded tensors: no time spent on random init.
    try:
        with torch.device("meta"):
            module = architecture.build(hyperparameters)
    except ValueError as error:
        raise ModelError(f"{name}: {error}") from None
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        first_problem = str(error).strip().splitlines()[1:2] or [str(error)]
        raise ModelError(
            f"The weights in {name} do not fit a {architecture.name} {hyperparameters}: {first_problem[0].strip()}"
        ) from None
    module.requires_grad_(False)
    return module.eval()


def build_network(architecture: str, hyperparameters: Mapping[str, Any], *, device: str = "cpu") -> nn.Module:
    """Construct an untrained network; ``device="meta"`` makes one without allocating weights."""
    with torch.device(device):
        return REGISTRY.named(architecture).build(hyperparameters)


def native_traits(architecture: str, hyperparameters: Mapping[str, Any]) -> Traits:
    """What one of vidsr's own networks needs and tolerates, from its hyper-parameters alone."""
    return REGISTRY.named(architecture).traits(hyperparameters)


def file_hints(model: LoadedModel) -> dict[str, str]:
    """The metadata a file of ``model``'s weights needs where its tensors cannot tell (a compact
    model's activation); {} for a network vidsr does not build itself."""
    if model.architecture not in REGISTRY.names():
        return {}
    return REGISTRY.named(model.architecture).hints(model.hyperparameters)


def refuse_non_finite(tensors: Mapping[str, torch.Tensor], *, name: str) -> None:
    """ModelError naming the first tensor (in file order) that holds a NaN or an infinity."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(
                f"{name}: the weight {key!r} holds NaN or infinite values; the file is damaged "
                "(or was saved after training diverged) and was not loaded"
            )


def content_hash(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over sorted names, dtypes, shapes and bytes: the same weights give the same hash."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _load_with_spandrel(tensors: dict[str, torch.Tensor], *, name: str, source: str) -> LoadedModel:
    """A layout none of vidsr's families knows, through spandrel if it is installed."""
    if not spandrel_available():
        raise ModelError(
            f"Unrecognised model layout in {name} (keys: {preview(tensors)}); vidsr reads "
            f"{', '.join(_layout_names())} files itself, and other architectures with spandrel: {SPANDREL_INSTALL}"
        )
    return load_with_spandrel(tensors, name=name, source=source, content_hash=content_hash(tensors))


def _layout_names() -> list[str]:
    """The layouts' names without their key examples: "ESRGAN original", ..., "Real-ESRGAN SRVGGNetCompact"."""
    return [layout.split(" (", 1)[0] for layout in REGISTRY.layouts()]
