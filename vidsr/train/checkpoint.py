"""The files of a training run: the resumable checkpoint, the exported model, the folder's lock.

``checkpoint.pt`` is a plain dict of tensors and primitive containers, written to a temporary
name, fsynced and renamed, and read back with ``torch.load(weights_only=True)``: nothing in it
can run code. The exported model is safetensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

import torch
from torch import nn

from vidsr.durable import atomic_write
from vidsr.errors import OutputError, SettingsError, VidsrError


def export_weights(module: nn.Module, path: Path, *, metadata: Mapping[str, str] | None = None) -> Path:
    """Write a network's state dict as safetensors, atomically: an ordinary vidsr model file."""
    from safetensors.torch import save

    tensors = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    data = save(tensors, metadata=dict(metadata or {}))
    atomic_write(path, lambda handle: handle.write(data))
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # weights_only: tensors and plain containers only; nothing in the file can run code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on damaged files
        raise SettingsError(f"cannot read the checkpoint {path} ({error}); pass --restart to start over") from None


def prepare_out(out: Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder for the checkpoint and the model")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error.strerror or error}") from None
    return out


class OutLock:
    """One training process per ``out`` folder (an OS lock, released however the process ends)."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".lock"
        self.handle: IO[str] | None = None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return
        self.handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise OutputError(f"another vidsr is training into {self.path.parent}; wait for it or stop it") from None

    def __exit__(self, *exc_info: object) -> None:
        if self.handle is not None:
            self.handle.close()


def plain(value: Any) -> Any:
    """JSON-like copy (str, int, float, bool, None, lists, dicts): what a weights-only checkpoint holds."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in cast(Mapping[Any, Any], value).items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in cast(Sequence[Any], value)]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise VidsrError(f"cannot record {type(value).__name__} in a checkpoint")


def describe_changes(recorded: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    changes: list[str] = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            nested = cast(Mapping[str, Any], old), cast(Mapping[str, Any], new)
            changes += describe_changes(*nested, prefix=f"{prefix}{key}.")
        elif old != new:
            if key == "from_hash":
                changes.append("the --from model's weights: changed")
            elif key == "data":
                changes.append("data: changed (files added, removed or modified)")
            else:
                changes.append(f"{prefix}{key}: {old} → {new}")
    return changes
