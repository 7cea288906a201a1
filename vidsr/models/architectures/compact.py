"""Real-ESRGAN's SRVGGNetCompact (``body.N``), with PReLU, ReLU or LeakyReLU activations.

PReLU leaves its slopes in the file; ReLU and LeakyReLU(0.1) leave no tensors at all, so a
safetensors file may name its activation in its metadata (``act_type``), or vidsr assumes ReLU
and says so in the description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import isqrt
from typing import Any

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.arch.compact import ActType, SRVGGNetCompact
from vidsr.models.architectures.base import Hyperparameters, Traits, count_indexed, shape

__all__ = ["ACT_TYPE_HINT", "ASSUMED_COMPACT_ACTIVATION", "COMPACT"]

# A safetensors metadata key vidsr honours where the tensors cannot tell: the activation of a
# compact model without PReLU weights ("relu" or "leakyrelu").
ACT_TYPE_HINT = "act_type"
# ReLU and LeakyReLU(0.1) leave no tensors. Assumed: ReLU. Were the truth LeakyReLU, ReLU drops a
# tenth of each negative activation; the other way round it would let through activations a ReLU
# network never had to keep small, an error without bound.
ASSUMED_COMPACT_ACTIVATION: ActType = "relu"


@dataclass(frozen=True)
class CompactFamily:
    """A stack of 3x3 convs at input resolution, a pixel shuffle, the nearest enlargement added back."""

    name: str = "SRVGGNetCompact"
    layouts: tuple[str, ...] = ("Real-ESRGAN SRVGGNetCompact (body.N)",)

    def canonicalise(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return tensors  # every published file uses Real-ESRGAN's names

    def detect(self, state: Mapping[str, torch.Tensor]) -> bool:
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

    def hyperparameters(self, state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> Hyperparameters:
        num_feat, num_in_ch = shape(state, "body.0.weight")[:2]
        last_index = count_indexed(state, "body.") - 1
        if last_index < 2 or last_index % 2:
            raise ModelError(
                f"This compact model's last layer is body.{last_index}; SRVGGNetCompact ends on a conv at an even index"
            )
        act_type = _activation(state, hints)
        # Real-ESRGAN assumes out channels == in channels; the last conv feeds a pixel shuffle.
        num_out_ch = num_in_ch
        shuffle_channels = shape(state, f"body.{last_index}.weight")[0]
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

    def build(self, hyperparameters: Mapping[str, Any]) -> nn.Module:
        return SRVGGNetCompact(**hyperparameters)

    def traits(self, hyperparameters: Mapping[str, Any]) -> Traits:
        """fp16 and bf16 run; bf16 is the default only where a model card measured it (zoo.py).
        The first and the last conv stay in fp32 at reduced precision (bench/precision.py)."""
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

    def describe(self, hyperparameters: Mapping[str, Any], hints: Mapping[str, str]) -> str:
        act = hyperparameters["act_type"]
        text = (
            f"SRVGGNetCompact x{hyperparameters['upscale']}: {hyperparameters['num_conv']} convs, "
            f"{hyperparameters['num_feat']} features, {act}"
        )
        if act != "prelu" and ACT_TYPE_HINT not in hints:
            text += (
                "; activation assumed ReLU (ReLU and LeakyReLU leave no weights; "
                "act_type=leakyrelu in the safetensors metadata says otherwise)"
            )
        return text

    def hints(self, hyperparameters: Mapping[str, Any]) -> dict[str, str]:
        act_type = hyperparameters.get("act_type")
        return {ACT_TYPE_HINT: str(act_type)} if act_type else {}


COMPACT = CompactFamily()


def _activation(state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> ActType:
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
