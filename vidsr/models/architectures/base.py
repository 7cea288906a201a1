"""What every architecture family tells the loader: the ``Architecture`` protocol and its ``Traits``.

One family is one module under ``vidsr.models.architectures`` (as in spandrel's
``architectures/<Name>/__init__.py``): it renames its old file layouts onto its own names,
recognises its tensors, reads its hyper-parameters from their shapes, builds its network and
says what that network needs. The loader only walks the registry in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from vidsr.errors import ModelError

__all__ = ["Architecture", "Hyperparameters", "Traits", "count_indexed", "shape"]

# The keyword arguments of the network's constructor, as read from a file (and recorded as JSON).
Hyperparameters = dict[str, Any]


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


class Architecture(Protocol):
    """One family of networks vidsr runs itself. Every method is given canonical tensors:
    float32, contiguous, after every registered family's ``canonicalise``."""

    @property
    def name(self) -> str:
        """The network's name, as ``LoadedModel.architecture`` and the model cards say it."""
        ...

    @property
    def layouts(self) -> tuple[str, ...]:
        """One line per file layout it reads, for messages and the docs."""
        ...

    def canonicalise(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors under this family's own names if they are in one of its older layouts;
        anything else unchanged (idempotent). ModelError for a layout of its own it cannot map."""
        ...

    def detect(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Whether these tensors are this family's (from which keys exist, never the file name)."""
        ...

    def hyperparameters(self, state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> Hyperparameters:
        """The constructor's arguments, read from tensor shapes (``hints``: the file's metadata, for
        what the tensors cannot tell). ModelError if the shapes fit no network of the family."""
        ...

    def build(self, hyperparameters: Mapping[str, Any]) -> nn.Module:
        """An untrained network (the caller picks the device, ``meta`` included)."""
        ...

    def traits(self, hyperparameters: Mapping[str, Any]) -> Traits:
        """What the network needs and tolerates, from its hyper-parameters alone."""
        ...

    def describe(self, hyperparameters: Mapping[str, Any], hints: Mapping[str, str]) -> str:
        """One line for ``vidsr models`` / ``info``: the network as read, then what was assumed."""
        ...

    def hints(self, hyperparameters: Mapping[str, Any]) -> dict[str, str]:
        """The metadata a file written from this network needs, where its tensors cannot tell."""
        ...


def shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    """The shape of ``state[key]``; ModelError saying the file is incomplete if it is missing."""
    if key not in state:
        raise ModelError(f"Model file is incomplete: {key!r} is missing")
    return tuple(state[key].shape)


def count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Entries of an indexed family: ``body.N.*`` counts N + 1 (from 0), ``conv_upN.*`` counts N
    (from 1); 0 if there is none. A gap shows up when the weights are loaded, as a missing key."""
    indices = [
        int(head) for key in state if key.startswith(prefix) and (head := key[len(prefix) :].split(".", 1)[0]).isdigit()
    ]
    if not indices:
        return 0
    return max(indices) + (1 if prefix.endswith(".") else 0)
