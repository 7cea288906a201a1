"""Any architecture spandrel knows, for weight files vidsr's own loader does not recognise.

Optional: ``pip install 'vidsr[spandrel]'``. spandrel never opens the file: vidsr reads it
(weights-only torch.load or safetensors, NaN and infinity refused) and hands the tensors to
``ModelLoader.load_from_state_dict``. spandrel's ModelDescriptor becomes a LoadedModel: scale,
channels, fp16/bf16 support, size requirements and tiling advice carry over; bf16 is never the
default for these (vidsr has not measured them), and no layer is kept in fp32 (the network's
insides are spandrel's).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.descriptor import LoadedModel, Tiling
from vidsr.models.layouts import preview

__all__ = ["SpandrelNetwork", "available", "load"]

_REFUSED_PURPOSES = {
    "FaceSR": "a face restoration model, which needs aligned face crops; vidsr upscales whole frames",
    "Inpainting": "an inpainting model, which needs a mask; vidsr upscales whole frames",
}
_TILING: dict[int, Tiling] = {1: "supported", 2: "discouraged", 3: "internal"}  # spandrel's ModelTiling values


def available() -> bool:
    """Whether spandrel can be imported (without importing it)."""
    return importlib.util.find_spec("spandrel") is not None


class SpandrelNetwork(nn.Module):
    """A spandrel model as a plain module: ``forward`` is the descriptor's call (its own way of
    running the network, padding and clamping to 0..1). The network is registered as ``module``,
    so its state dict reads like a DataParallel checkpoint, which the loaders unwrap."""

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.module: nn.Module = descriptor.model
        self._descriptor = descriptor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self._descriptor(x)
        return output


def load(tensors: dict[str, torch.Tensor], *, name: str, source: str, content_hash: str) -> LoadedModel:
    """A LoadedModel for ``tensors`` (already read safely and checked), through spandrel.

    Raises ModelError if spandrel does not know the layout, cannot load it, or it is a kind of
    model that does not upscale frames (face restoration, inpainting).
    """
    spandrel: Any = importlib.import_module("spandrel")
    state = spandrel.canonicalize_state_dict(dict(tensors))
    try:
        descriptor: Any = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise ModelError(
            f"Unrecognised model layout in {name} (keys: {preview(tensors)}): neither vidsr nor "
            f"spandrel {spandrel.__version__} knows this architecture"
        ) from None
    except Exception as error:  # an architecture's loader fails in its own ways on odd files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"spandrel could not load {name}: {reason[:200]}") from None
    purpose = str(descriptor.purpose)
    if purpose in _REFUSED_PURPOSES:
        raise ModelError(f"{name} is {_REFUSED_PURPOSES[purpose]}")
    network = SpandrelNetwork(descriptor)
    network.requires_grad_(False)
    network.eval()
    requirements = descriptor.size_requirements
    architecture = str(descriptor.architecture.name)
    tiling = _TILING.get(int(descriptor.tiling.value), "supported")
    tags = ", ".join(str(tag) for tag in descriptor.tags)
    description = f"{architecture} x{descriptor.scale} ({tags}) via spandrel {spandrel.__version__}"
    if tiling != "supported":
        description += f"; spandrel advises against tiles (tiling {tiling}): whole frames"
    return LoadedModel(
        module=network,
        name=name,
        architecture=architecture,
        scale=int(descriptor.scale),
        in_channels=int(descriptor.input_channels),
        out_channels=int(descriptor.output_channels),
        size_multiple=int(requirements.multiple_of),
        supports_half=bool(descriptor.supports_half),
        content_hash=content_hash,
        source=source,
        params=sum(parameter.numel() for parameter in network.parameters()),
        hyperparameters=dict(getattr(descriptor.model, "hyperparameters", {}) or {}),
        supports_bf16=bool(descriptor.supports_bfloat16),
        bf16_by_default=False,
        min_size=max(1, int(requirements.minimum)),
        square=bool(requirements.square),
        tiling=tiling,
        description=description,
    )
