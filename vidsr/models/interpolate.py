"""ESRGAN's network interpolation (paper, section 3.4): blend the weights of two models.

θ = (1 − α) θ_A + α θ_B, tensor by tensor. Between a PSNR-oriented model (A) and a GAN model
(B) of the same architecture, α is a knob from fewer artefacts to more texture that needs no
retraining. Any two checkpoints whose canonical tensors match in names and shapes can be
blended, whatever layout each file was saved in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save

from vidsr.durable import atomic_write
from vidsr.errors import ModelError
from vidsr.models.loader import LoadedModel, detect_and_build, file_hints
from vidsr.models.zoo import resolve_model

_DIFFERENCES_SHOWN = 5


def interpolate_state_dicts(
    first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 − alpha) * first + alpha * second for every tensor; ModelError naming those that differ."""
    if not 0.0 <= alpha <= 1.0:
        raise ModelError(f"--alpha {alpha}: choose a value from 0 (the first model) to 1 (the second)")
    check_compatible(first, second)
    if alpha == 0.0:
        return {name: tensor.clone() for name, tensor in first.items()}
    if alpha == 1.0:
        return {name: tensor.clone() for name, tensor in second.items()}
    blended: dict[str, torch.Tensor] = {}
    for name, tensor in first.items():
        mixed = torch.lerp(tensor.double(), second[name].double(), alpha)
        blended[name] = mixed.to(tensor.dtype)
    return blended


def check_compatible(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    differences = [f"{name} only in the first" for name in sorted(first.keys() - second.keys())]
    differences += [f"{name} only in the second" for name in sorted(second.keys() - first.keys())]
    differences += [
        f"{name} {tuple(first[name].shape)} vs {tuple(second[name].shape)}"
        for name in sorted(first.keys() & second.keys())
        if first[name].shape != second[name].shape
    ]
    if differences:
        shown = "; ".join(differences[:_DIFFERENCES_SHOWN])
        more = f"; and {len(differences) - _DIFFERENCES_SHOWN} more" if len(differences) > _DIFFERENCES_SHOWN else ""
        raise ModelError(f"the two models have different architectures or shapes: {shown}{more}")


def interpolate_models(first: str, second: str, alpha: float) -> LoadedModel:
    """The blend of two models given as names or paths, ready to upscale with."""
    model_a, model_b = resolve_model(first), resolve_model(second)
    if model_a.architecture != model_b.architecture:
        raise ModelError(
            f"{model_a.name} is {model_a.architecture} and {model_b.name} is {model_b.architecture}; "
            "only models of one architecture can be interpolated"
        )
    state = interpolate_state_dicts(_weights(model_a), _weights(model_b), alpha)
    return detect_and_build(
        state,
        name=f"{model_a.name}+{model_b.name}@{alpha:g}",
        source=f"interpolated: (1-{alpha:g})·{model_a.name} + {alpha:g}·{model_b.name}",
        hints=file_hints(model_a),  # what the tensors cannot tell (a compact model's activation), from the first
    )


def write_interpolated(first: str, second: str, alpha: float, output: Path, *, force: bool = False) -> LoadedModel:
    """Blend two models and save the result as safetensors (BasicSR names) at ``output``."""
    if output.exists() and not force:
        raise ModelError(f"{output} already exists; use --force to overwrite it")
    if output.suffix != ".safetensors":
        raise ModelError(f"{output}: interpolated models are written as .safetensors")
    model = interpolate_models(first, second, alpha)
    data = save(_weights(model), metadata={"vidsr_source": model.source, **file_hints(model)})
    atomic_write(output, lambda handle: handle.write(data))
    return model


def _weights(model: LoadedModel) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().contiguous() for name, tensor in model.module.state_dict().items()}
