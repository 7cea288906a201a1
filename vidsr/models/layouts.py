"""Weight files' containers, whatever the architecture: unwrap training checkpoints, drop prefixes.

Renaming one architecture's older layouts onto its own names is that family's business
(``canonicalise`` in ``vidsr.models.architectures``; ESRGAN's three naming schemes are in
``esrgan.py``); ``vidsr.models.loader.canonicalize`` does both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch

from vidsr.errors import ModelError

__all__ = ["flat_tensors", "preview"]

# Training checkpoints nest the weights; the first of these keys found is unwrapped
# (params_ema before params: the EMA weights are the ones Real-ESRGAN publishes).
_WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net")
_COMMON_PREFIXES = ("module.", "netG.")  # DataParallel, and BasicSR-era generator checkpoints
_KEYS_SHOWN_IN_ERRORS = 8


def flat_tensors(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, unwrapped and without common prefixes, under the file's own names."""
    tensors = _tensors_only(_unwrap(state))
    for prefix in _COMMON_PREFIXES:
        while tensors and all(key.startswith(prefix) for key in tensors):
            tensors = {key[len(prefix) :]: value for key, value in tensors.items()}
    return tensors


def preview(keys: Any) -> str:
    """The first few names of ``keys``, for error messages."""
    names = list(keys)
    shown = ", ".join(str(name) for name in names[:_KEYS_SHOWN_IN_ERRORS])
    more = f", ... ({len(names)} keys)" if len(names) > _KEYS_SHOWN_IN_ERRORS else ""
    return shown + more


def _unwrap(state: Any) -> Mapping[str, Any]:
    if not isinstance(state, Mapping):
        raise ModelError(f"The file holds a {type(state).__name__}, not a dictionary of weights")
    mapping = cast(Mapping[str, Any], state)
    while True:
        inner: Any = next((mapping[key] for key in _WRAPPER_KEYS if isinstance(mapping.get(key), Mapping)), None)
        if inner is None and len(mapping) == 1:
            inner = next(iter(mapping.values()))  # a single wrapper of any name, as spandrel unwraps too
        if not isinstance(inner, Mapping):
            return mapping
        mapping = cast(Mapping[str, Any], inner)


def _tensors_only(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    tensors = {str(key): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ModelError(f"The file holds no weight tensors (keys: {preview(state)})")
    return tensors
