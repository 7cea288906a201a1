"""The models layer's entry point: the model the user asked for, by name or path, or two blended."""

from __future__ import annotations

from vidsr.errors import ModelError
from vidsr.models.descriptor import LoadedModel
from vidsr.models.interpolate import interpolate_models
from vidsr.models.zoo import resolve_model

__all__ = ["choose_model"]


def choose_model(models: tuple[str, ...], alpha: float | None) -> LoadedModel:
    """The model the user asked for: one name or path, or two blended with ``alpha``."""
    if len(models) == 1:
        if alpha is not None:
            raise ModelError("--alpha blends two models: give --model twice (the first at alpha 0, the second at 1)")
        return resolve_model(models[0])
    if len(models) == 2:
        if alpha is None:
            raise ModelError("two --model options are blended: add --alpha (0 = the first, 1 = the second)")
        return interpolate_models(models[0], models[1], alpha)
    raise ModelError(f"{len(models)} --model options: give one, or two to interpolate between")
