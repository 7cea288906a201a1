"""File layouts → BasicSR names: unwrap training checkpoints, drop prefixes, rename old ESRGAN layouts.

ESRGAN-family weights come in three naming schemes for one network (see models/README.md):

* the original ESRGAN ``nn.Sequential`` (``model.0``, ``model.1.sub.N.RDB1.conv1.0``, then the
  tail convs at indices 3s for upsampling stage s (3s - 1 with the pixel-shuffle upsampler), 3n+2
  for the HR conv, 3n+4 for the last);
* the ESRGAN repository's and KAIR's (``RRDB_trunk``, ``trunk_conv``, ``upconvN``, ``HRconv``);
* BasicSR / Real-ESRGAN's (``body.N.rdb1.conv1``, ``conv_body``, ``conv_upN``, ``conv_hr``),

which is the one vidsr's networks use. The number of upsampling stages comes from the keys,
so x1, x2, x4 and x8 files all map onto one generalised RRDBNet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import torch

from vidsr.errors import ModelError

__all__ = ["canonicalize", "flat_tensors", "preview"]

# Training checkpoints nest the weights; the first of these keys found is unwrapped
# (params_ema before params: the EMA weights are the ones Real-ESRGAN publishes).
_WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net")
_COMMON_PREFIXES = ("module.", "netG.")  # DataParallel, and BasicSR-era generator checkpoints
_KEYS_SHOWN_IN_ERRORS = 8


def canonicalize(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the weights under BasicSR / Real-ESRGAN names, whatever the file's layout.

    Unwraps training-checkpoint wrappers (params_ema, params, state_dict, ...), drops
    non-tensor metadata, strips ``module.`` prefixes and renames the old ESRGAN layouts.
    Idempotent; other architectures' tensors pass through unrenamed. Raises ModelError if
    there are no tensors or an old-layout file has a tail vidsr cannot map.
    """
    return rename_to_basicsr(flat_tensors(state))


def flat_tensors(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, unwrapped and without common prefixes, under the file's own names."""
    tensors = _tensors_only(_unwrap(state))
    for prefix in _COMMON_PREFIXES:
        while tensors and all(key.startswith(prefix) for key in tensors):
            tensors = {key[len(prefix) :]: value for key, value in tensors.items()}
    return tensors


def rename_to_basicsr(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "model.0.weight" in tensors and any(key.startswith("model.1.sub.") for key in tensors):
        return _rename_original_esrgan(tensors)
    if any(key.startswith("RRDB_trunk.") for key in tensors):
        return _rename_esrgan_repo(tensors)
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
