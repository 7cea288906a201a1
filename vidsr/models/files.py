"""Weight files as vidsr reads them: weights-only torch.load or safetensors, never a pickle that runs code.

Which architecture the tensors are is the loader's business (``vidsr.models.loader``); this
module only opens files and reads what their metadata says where tensors cannot.
"""

# Strict typing, less the unknown-type checks: safetensors types load_file() and safe_open() only in part.
# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, cast

import torch

from vidsr.errors import ModelError

__all__ = ["SAFETENSORS_SUFFIXES", "SUPPORTED_SUFFIXES", "TORCH_SUFFIXES", "load_state_dict_file", "read_hints"]

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
SUPPORTED_SUFFIXES = TORCH_SUFFIXES + SAFETENSORS_SUFFIXES


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
