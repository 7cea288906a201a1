"""What a loaded network needs and tolerates: the descriptor every part of vidsr feeds it by.

Modelled on spandrel's ModelDescriptor: a model states its scale, channels, the precisions it
runs in, its size requirements and tiling advice, instead of callers assuming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from torch import nn

__all__ = ["LoadedModel", "Needs", "Tiling", "channels_text", "describe_needs"]

Tiling = Literal["supported", "discouraged", "internal"]


@dataclass(frozen=True)
class LoadedModel:
    """A network ready to run, plus what a caller needs to know to feed it (spandrel's
    ModelDescriptor, for vidsr's pipeline).

    ``module`` is in eval mode, fp32, on the CPU, with gradients off; it takes and returns
    float NCHW in 0..1 with ``in_channels`` / ``out_channels`` channels (3: RGB, 1: grey).
    Input H and W must be multiples of ``size_multiple`` and at least ``min_size``; the
    upscaler pads to that and crops back.

    Precision: ``supports_half`` (fp16) and ``supports_bf16`` say whether the network runs in
    them at all; ``bf16_by_default`` whether bf16 is faithful enough (≥ 45 dB of fp32, with
    margin) to be the default on CPUs with native bf16. When running in either, the layers named
    in ``fp32_layers`` stay in float32 and the input is given in float32 (the network casts).
    ``preferred_tile`` is the tile side (input pixels) to use when the user asks for none;
    0 means whole frames. ``description`` says what was read from the file and assumed.
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
    supports_bf16: bool = True
    bf16_by_default: bool = False
    min_size: int = 1
    preferred_tile: int = 0
    fp32_layers: tuple[str, ...] = ()
    square: bool = False  # the input must be square too (padded to it)
    tiling: Tiling = "supported"  # "discouraged" / "internal": tiles only as a last resort
    description: str = ""


def channels_text(in_channels: int, out_channels: int) -> str:
    def name(channels: int) -> str:
        return {1: "grey", 3: "RGB"}.get(channels, f"{channels}-channel")

    return f"{name(in_channels)} in, {name(out_channels)} out"


class Needs(Protocol):
    """The part of a descriptor ``describe_needs`` reads (a LoadedModel, or traits known before loading)."""

    @property
    def in_channels(self) -> int: ...
    @property
    def out_channels(self) -> int: ...
    @property
    def supports_half(self) -> bool: ...
    @property
    def supports_bf16(self) -> bool: ...
    @property
    def bf16_by_default(self) -> bool: ...
    @property
    def size_multiple(self) -> int: ...
    @property
    def min_size(self) -> int: ...
    @property
    def preferred_tile(self) -> int: ...


def describe_needs(model: Needs) -> str:
    """What ``vidsr models`` and ``vidsr info`` show: channels, precisions, size requirements, tiles."""
    precisions = ["fp32", *(["bf16"] if model.supports_bf16 else []), *(["fp16"] if model.supports_half else [])]
    cpu_default = "bf16 on CPUs with native bf16" if model.bf16_by_default and model.supports_bf16 else "fp32"
    parts = [channels_text(model.in_channels, model.out_channels), f"{'/'.join(precisions)} (CPU: {cpu_default})"]
    if model.size_multiple > 1 or model.min_size > 1:
        parts.append(f"sides padded to multiples of {model.size_multiple}, at least {model.min_size}")
    parts.append(f"tiles of {model.preferred_tile} px" if model.preferred_tile else "whole frames")
    return "; ".join(parts)
