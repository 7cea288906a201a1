"""A render's identity: what a resume must match, what it may differ in, what it keeps.

The journal records a :class:`JobIdentity` of three parts, each a frozen dataclass:

- what must match to resume: the input's fingerprint, the model's hash, and :class:`OutputSettings`,
  every setting that changes the output's bytes (a new setting is one field there: its place in
  the journal, the comparison and the message that names it come with it);
- what may differ and is said: the :class:`SoftwareStack` that computed it (frames made before
  and after a resume on another one may differ in their last bits);
- what the first run chose for its machine and a resume keeps: :class:`MachineChoices` (the tile
  chosen from the free memory, the precision, the engine and its device), so the frames before
  and after are made alike.

:func:`vidsr.render.resume.open_job` compares them and says what it finds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeVar, cast

from vidsr.errors import VidsrError
from vidsr.media import VideoInfo
from vidsr.upscale.engines import EngineName
from vidsr.upscale.policy import Precision

__all__ = [
    "InputFingerprint",
    "JobChangedError",
    "JobIdentity",
    "MachineChoices",
    "ModelIdentity",
    "OutputSettings",
    "SoftwareStack",
    "differences",
    "identity_from_json",
    "identity_to_json",
]

_FINGERPRINT_BYTES = 1 << 20  # how much of the input's head and tail is hashed


class JobChangedError(VidsrError):
    """The interrupted render was of another input, model or settings."""


@dataclass(frozen=True)
class InputFingerprint:
    """Enough about the input to notice it was replaced or edited: size, mtime, a hash of its head
    and tail, and its stream layout. Hashing all of a 50 GB film would take minutes."""

    size: int
    mtime_ns: int
    head_tail_sha256: str
    streams: tuple[str, ...]

    @classmethod
    def of(cls, info: VideoInfo) -> InputFingerprint:
        stat = info.path.stat()
        digest = hashlib.sha256()
        with info.path.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_BYTES))
            if stat.st_size > _FINGERPRINT_BYTES:
                handle.seek(max(_FINGERPRINT_BYTES, stat.st_size - _FINGERPRINT_BYTES))
                digest.update(handle.read(_FINGERPRINT_BYTES))
        streams = [f"video {info.codec} {info.width}x{info.height} {info.pix_fmt}"]
        streams += [f"{s.kind} {s.codec}" for s in info.others]
        return cls(stat.st_size, stat.st_mtime_ns, digest.hexdigest(), tuple(streams))


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str  # of the weights: a renderer that loads the model again (on another machine) checks it
    scale: int


@dataclass(frozen=True)
class OutputSettings:
    """Every setting that changes what the render writes; a resume must match each of them.

    Adding a setting is adding a field here (and filling it in ``plan_job``): the journal, the
    comparison and the message that names a change ("settings.crf: 18 → 20") follow from it.
    """

    stream: int  # the input's video stream upscaled
    size: tuple[int, int]  # (width, height) of every output frame
    sample_aspect_ratio: Fraction  # of the output's pixels: the source's display shape kept
    pix_fmt: str
    colour: str  # the matrix and range frames are converted with, "bt709 limited"
    deinterlace: bool
    accept_truncated: bool
    tile: int  # as asked: 0 for whole frames, or tiles as memory allows (what memory chose is a MachineChoice)
    precision: str  # as asked: auto, fp32, bf16 or fp16 (what auto chose is a MachineChoice)
    device: str  # the device type that renders: "cpu", "cuda", "mps" or "vulkan"
    engine: str  # as asked: auto, torch or ncnn (what auto chose is a MachineChoice)
    compiled: bool
    reuse: bool  # tiles whose source did not change keep their output (vidsr.upscale.reuse)
    codec: str
    crf: int
    preset: str  # resolved: never "auto"
    encoder_threads: int
    segment_seconds: Fraction
    segments: int
    vidsr: str


@dataclass(frozen=True)
class SoftwareStack:
    """What computed the frames: a resume on another stack is allowed, and said."""

    torch: str
    media: dict[str, str]  # PyAV, FFmpeg and its libraries, the encoders' builds


@dataclass(frozen=True)
class MachineChoices:
    """What the first run chose for its machine rather than was asked for: a resume keeps it."""

    tile: int  # 0: whole frames
    precision: Precision
    engine: EngineName = "torch"  # what runs the network: torch or ncnn
    device: str = "cpu"  # where it runs, "cpu", "cuda:0", "vulkan:0": --engine auto's measured choice is kept


@dataclass(frozen=True)
class JobIdentity:
    input: InputFingerprint
    model: ModelIdentity
    settings: OutputSettings
    stack: SoftwareStack
    chosen: MachineChoices

    def must_match(self) -> dict[str, object]:
        """The parts a resume must match, by name."""
        return {"input": self.input, "model": self.model, "settings": self.settings}


def differences(recorded: object, current: object, prefix: str = "") -> list[str]:
    """What differs between two values of one dataclass (or mapping), field by field:
    ["settings.crf: 18 → 20", ...]."""
    old_text, new_text = _short(recorded), _short(current)
    if dataclasses.is_dataclass(recorded) and dataclasses.is_dataclass(current):
        names = [f.name for f in dataclasses.fields(recorded)]
        pairs = [(name, getattr(recorded, name), getattr(current, name)) for name in names]
    elif isinstance(recorded, Mapping) and isinstance(current, Mapping):
        old, new = cast(Mapping[str, object], recorded), cast(Mapping[str, object], current)
        pairs = [(name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new))]
    else:
        return [] if recorded == current else [f"{prefix.rstrip('.')}: {old_text} → {new_text}"]
    changes: list[str] = []
    for name, old_value, new_value in pairs:
        if old_value != new_value:
            changes += differences(old_value, new_value, f"{prefix}{name}.")
    return changes


def _short(value: object) -> str:
    plain = _plain(value)
    text = plain if isinstance(plain, str) else json.dumps(plain)
    return text if len(text) <= 24 else text[:12] + "…" + text[-8:]


# ---- to and from the journal's JSON


def identity_to_json(identity: JobIdentity) -> dict[str, Any]:
    return cast(dict[str, Any], _plain(identity))


def identity_from_json(payload: object) -> JobIdentity:
    """The identity a journal recorded; ValueError if it is not one."""
    return _typed(JobIdentity, payload)


def _plain(value: object) -> object:
    """JSON-ready: dataclasses as objects, tuples as lists, fractions as "num/den"."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in cast(Mapping[object, object], value).items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in cast(tuple[object, ...], value)]
    if isinstance(value, Fraction):
        return str(value)
    return value


_T = TypeVar("_T")


def _typed(kind: type[_T], payload: object) -> _T:
    """``payload`` (parsed JSON) as an instance of the dataclass ``kind``, every field checked."""
    if not isinstance(payload, dict):
        raise ValueError(f"{kind.__name__} is not an object")
    fields = cast(dict[str, object], payload)
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(cast(Any, kind))]
    if set(fields) != set(names):
        raise ValueError(f"{kind.__name__} has fields {sorted(fields)}, expected {sorted(names)}")
    return kind(**{name: _value(hints[name], fields[name], f"{kind.__name__}.{name}") for name in names})


def _value(hint: Any, raw: object, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _typed(cast(type[Any], hint), raw)
    if origin is Literal:
        if raw not in args:
            raise ValueError(f"{where} is {raw!r}, not one of {args}")
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise ValueError(f"{where} is not a list")
        items = cast(list[object], raw)
        kinds = [args[0]] * len(items) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) != len(items):
            raise ValueError(f"{where} has {len(items)} items, expected {len(kinds)}")
        return tuple(_value(k, item, where) for k, item in zip(kinds, items))
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in cast(dict[str, object], raw).values()):
            raise ValueError(f"{where} is not an object of strings")
        return dict(cast(dict[str, str], raw))
    if hint is Fraction:
        if not isinstance(raw, str):
            raise ValueError(f"{where} is not a fraction")
        return Fraction(raw)
    check = _SCALARS.get(hint)
    if check is None or not check(raw):
        raise ValueError(f"{where} is {raw!r}, not a {getattr(hint, '__name__', hint)}")
    return raw


_SCALARS: dict[object, Callable[[object], bool]] = {
    int: lambda raw: isinstance(raw, int) and not isinstance(raw, bool),
    bool: lambda raw: isinstance(raw, bool),
    str: lambda raw: isinstance(raw, str),
    float: lambda raw: isinstance(raw, int | float) and not isinstance(raw, bool),
}
