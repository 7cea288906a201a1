"""The ESRGAN family (RRDBNet): every layout its files come in, read onto one generalised network.

ESRGAN-family weights come in three naming schemes for one network (see models/README.md):

* the original ESRGAN ``nn.Sequential`` (``model.0``, ``model.1.sub.N.RDB1.conv1.0``, then the
  tail convs at indices 3s for upsampling stage s (3s - 1 with the pixel-shuffle upsampler), 3n+2
  for the HR conv, 3n+4 for the last);
* the ESRGAN repository's and KAIR's (``RRDB_trunk``, ``trunk_conv``, ``upconvN``, ``HRconv``);
* BasicSR / Real-ESRGAN's (``body.N.rdb1.conv1``, ``conv_body``, ``conv_upN``, ``conv_hr``),

which is the one vidsr's network uses. The number of upsampling stages comes from the keys, so
x1, x2, x4 and x8 files all map onto one RRDBNet; the convs' widths tell ESRGAN's nearest
upsampler from its pixel shuffle, and the first conv's width Real-ESRGAN's pixel-unshuffle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidsr.errors import ModelError
from vidsr.models.arch.rrdbnet import RRDBNet, default_upsample_stages, unshuffle_factor
from vidsr.models.architectures.base import Hyperparameters, Traits, count_indexed, shape

__all__ = ["ESRGAN"]


@dataclass(frozen=True)
class ESRGANFamily:
    """RRDBNet under BasicSR's names: ESRGAN, ESRGAN+, BSRGAN, Real-ESRGAN x1/x2/x4/x8."""

    name: str = "RRDBNet"
    layouts: tuple[str, ...] = (
        "ESRGAN original (model.0 / model.1.sub.N.RDB1, x1/x2/x4/x8, ESRGAN+)",
        "ESRGAN repo and KAIR/BSRGAN (conv_first / RRDB_trunk.N.RDB1 / trunk_conv / upconvN)",
        "BasicSR / Real-ESRGAN RRDBNet (body.N.rdb1 / conv_upN, bare or in params_ema / params)",
    )

    def canonicalise(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "model.0.weight" in tensors and any(key.startswith("model.1.sub.") for key in tensors):
            return _rename_original_esrgan(tensors)
        if any(key.startswith("RRDB_trunk.") for key in tensors):
            return _rename_esrgan_repo(tensors)
        return tensors

    def detect(self, state: Mapping[str, torch.Tensor]) -> bool:
        return "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state

    def hyperparameters(self, state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> Hyperparameters:
        num_feat, first_in_ch = shape(state, "conv_first.weight")[:2]
        num_out_ch = shape(state, "conv_last.weight")[0]
        stages = count_indexed(state, "conv_up")
        upsampler, factor = _upsampler(state, num_feat, stages)
        # Real-ESRGAN's x2 and x1 pixel-unshuffle the input, multiplying its channels by 4 or 16
        # (so a 4-channel x4 network with 1 channel out reads as a grey x2: the tensors are the same).
        unshuffle = next(
            (f for f in (4, 2) if first_in_ch == num_out_ch * f * f and f <= factor**stages and factor == 2), 1
        )
        scale = factor**stages // unshuffle
        hyperparameters: Hyperparameters = {
            "num_in_ch": first_in_ch // (unshuffle * unshuffle),
            "num_out_ch": num_out_ch,
            "scale": scale,
            "num_feat": num_feat,
            "num_block": count_indexed(state, "body."),
            "num_grow_ch": shape(state, "body.0.rdb1.conv1.weight")[0],
        }
        # Only what differs from BasicSR's layout is named, so BasicSR files keep their old description.
        if stages != default_upsample_stages(scale):
            hyperparameters["num_upsample"] = stages
        if "body.0.rdb1.conv1x1.weight" in state:
            hyperparameters["plus"] = True
        if upsampler != "nearest":
            hyperparameters["upsampler"] = upsampler
        return hyperparameters

    def build(self, hyperparameters: Mapping[str, Any]) -> nn.Module:
        return RRDBNet(**hyperparameters)

    def traits(self, hyperparameters: Mapping[str, Any]) -> Traits:
        """fp16 and bf16 both run; bf16 is not the CPU default: its fidelity depends on the weights
        (the trunk's error grows with depth; one model measured 44 dB on one CPU and 50 dB on another,
        models/README.md), so only a model measured with bench/precision.py gets it, through its card
        in vidsr.models.zoo. The first and last convs stay in fp32 at reduced precision: a fraction of
        the arithmetic, and the input is then never rounded to 8 significant bits (bench/precision.py)."""
        unshuffle = _unshuffle(hyperparameters)
        return Traits(
            scale=hyperparameters["scale"],
            in_channels=hyperparameters["num_in_ch"],
            out_channels=hyperparameters["num_out_ch"],
            size_multiple=unshuffle,
            min_size=unshuffle,
            supports_half=True,
            supports_bf16=True,
            bf16_by_default=False,
            fp32_layers=("conv_first", "conv_last"),
        )

    def describe(self, hyperparameters: Mapping[str, Any], hints: Mapping[str, str]) -> str:
        kind = "ESRGAN+ " if hyperparameters.get("plus") else ""
        text = (
            f"{kind}RRDBNet x{hyperparameters['scale']}: {hyperparameters['num_block']} blocks, "
            f"{hyperparameters['num_feat']} features, growth {hyperparameters['num_grow_ch']}"
        )
        upsampler = hyperparameters.get("upsampler", "nearest")
        unshuffle = _unshuffle(hyperparameters)
        if unshuffle > 1:
            text += f", pixel-unshuffle {unshuffle}"
        if upsampler != "nearest":
            text += ", pixel-shuffle upsampler"
        notes: list[str] = []
        if hyperparameters.get("num_upsample") == 1 and unshuffle == 1 and upsampler == "nearest":
            notes.append(
                "one upsampling stage, read as x2: an x3 ESRGAN file with the nearest upsampler has the same tensors "
                "and is not supported"
            )
        return "; ".join([text, *notes])

    def hints(self, hyperparameters: Mapping[str, Any]) -> dict[str, str]:
        return {}  # the tensors say everything


ESRGAN = ESRGANFamily()


def _unshuffle(hyperparameters: Mapping[str, Any]) -> int:
    return unshuffle_factor(
        hyperparameters["scale"], hyperparameters.get("num_upsample"), hyperparameters.get("upsampler", "nearest")
    )


def _upsampler(state: Mapping[str, torch.Tensor], num_feat: int, stages: int) -> tuple[str, int]:
    """(upsampler, enlargement per stage), told by the upsampling convs' width: a nearest stage's
    conv keeps the features, a pixel-shuffle x2 (x3) stage's makes 4 (9) times as many."""
    if stages == 0:
        return "nearest", 2
    widths = sorted({shape(state, f"conv_up{stage}.weight")[0] for stage in range(1, stages + 1)})
    if widths == [num_feat]:
        return "nearest", 2
    if widths == [4 * num_feat]:
        return "pixelshuffle", 2
    if widths == [9 * num_feat] and stages == 1:
        return "pixelshuffle", 3
    raise ModelError(
        f"This RRDBNet's upsampling convs make {', '.join(map(str, widths))} channels from {num_feat}: "
        "neither ESRGAN's nearest upsampler (as many) nor its pixel shuffle (4x, or 9x in one x3 stage)"
    )


# ---------------------------------------------------------------------------- original ESRGAN

_OLD_RDB_CONV = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")
_OLD_RDB_CONV1X1 = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv1x1\.weight")  # ESRGAN+
_OLD_TRUNK_CONV = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)")
_OLD_TOP_LEVEL = re.compile(r"model\.(\d+)\.(weight|bias)")


def _rename_original_esrgan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ESRGAN's nn.Sequential indices onto BasicSR names.

    ``model.0`` is conv_first, ``model.1.sub`` the trunk (its last entry conv_body); after it,
    only convs own tensors, at 3s for upsampling stage s = 1..n, 3n+2 (HR conv), 3n+4 (last).
    """
    renamed: dict[str, torch.Tensor] = {}
    tail: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if match := _OLD_RDB_CONV.fullmatch(key):
            block, rdb, conv, kind = match.groups()
            renamed[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif match := _OLD_RDB_CONV1X1.fullmatch(key):
            block, rdb = match.groups()
            renamed[f"body.{block}.rdb{rdb}.conv1x1.weight"] = value
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
    """Stage s's conv sits at 3s with ESRGAN's nearest upsampler (upsample, conv, act) and at 3s - 1
    with its pixel shuffle (conv, shuffle, act); the convs' widths tell the two apart later."""
    indices = sorted(tail)
    stages = len(indices) - 2
    ending = [3 * stages + 2, 3 * stages + 4]
    nearest = [3 * stage for stage in range(1, stages + 1)] + ending
    shuffle = [3 * stage - 1 for stage in range(1, stages + 1)] + ending
    if stages < 0 or indices not in (nearest, shuffle):
        raise ModelError(
            f"This ESRGAN model's convs after the trunk sit at model.{indices}, not where ESRGAN's "
            "upsamplers put them (nearest: 3, 6, ...; pixel shuffle: 2, 5, ...; then the HR and last conv)"
        )
    names = [f"conv_up{stage}" for stage in range(1, stages + 1)] + ["conv_hr", "conv_last"]
    return {
        f"{name}.{kind}": value
        for name, index in zip(names, indices, strict=True)
        for kind, value in tail[index].items()
    }


# ---------------------------------------------------------------------------- ESRGAN repo / KAIR

_ESRGAN_REPO_RENAMES = (
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\."), r"body.\1.rdb\2."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv(\d+)\."), r"conv_up\1."),  # KAIR's BSRGAN x2 has upconv1 only
    (re.compile(r"^HRconv\."), "conv_hr."),
)


def _rename_esrgan_repo(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in _ESRGAN_REPO_RENAMES:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed
