"""The resume journal: which segments of a render are finished, and what job they belong to.

Plain JSON, replaced atomically (temp file, fsync, rename, fsync of the folder), so after a
crash or power loss at any instant it holds either the old state or the new one. A segment
counts as finished only once its file is on disk and the journal names it. One writer: the
process that drives the render (workers elsewhere only hand it segment bytes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from vidsr.durable import atomic_write
from vidsr.errors import VidsrError
from vidsr.media import VideoInfo

JOURNAL_VERSION = 2
_FINGERPRINT_BYTES = 1 << 20  # how much of the input's head and tail is hashed


class JobChangedError(VidsrError):
    """The interrupted render was of another input, model or settings."""


@dataclass(frozen=True)
class SegmentRecord:
    """One finished segment: its file (none for a segment with no frames) and the source frames it holds."""

    index: int
    file: str | None
    frames: int
    first_pts: int | None
    last_pts: int | None
    size: int


@dataclass
class Journal:
    """What a render is (``job``), how many segments it has, and which of them are finished.

    Segments finish in any order (several workers, or a slow one behind quick ones), so the
    journal holds a set of them, not a prefix; ``segments`` is kept sorted by index.
    """

    job: dict[str, Any]
    segment_count: int
    segments: list[SegmentRecord] = field(default_factory=list)

    @property
    def frames_done(self) -> int:
        return sum(segment.frames for segment in self.segments)

    @property
    def done(self) -> set[int]:
        return {segment.index for segment in self.segments}

    @property
    def missing(self) -> list[int]:
        """The segments still to render, in order."""
        done = self.done
        return [index for index in range(self.segment_count) if index not in done]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def done_from_start(self) -> bool:
        """Whether the finished segments are exactly the first few (as one process renders them)."""
        return self.done == set(range(len(self.segments)))

    def record(self, segment: SegmentRecord) -> None:
        """Add a finished segment (replacing an earlier record of the same index)."""
        others = [s for s in self.segments if s.index != segment.index]
        self.segments = sorted([*others, segment], key=lambda s: s.index)

    def forget(self, index: int) -> None:
        self.segments = [s for s in self.segments if s.index != index]

    def to_json(self) -> str:
        payload = {
            "vidsr_journal": JOURNAL_VERSION,
            "job": self.job,
            "segment_count": self.segment_count,
            "segments": [asdict(s) for s in self.segments],
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Journal:
        payload = json.loads(text)
        if payload.get("vidsr_journal") != JOURNAL_VERSION:
            raise ValueError(f"journal version {payload.get('vidsr_journal')!r}, expected {JOURNAL_VERSION}")
        count = int(payload["segment_count"])
        segments = [SegmentRecord(**entry) for entry in payload["segments"]]
        indices = [s.index for s in segments]
        if indices != sorted(set(indices)) or any(not 0 <= index < count for index in indices):
            raise ValueError("its segments are out of order or out of range")
        return cls(job=payload["job"], segment_count=count, segments=segments)


def input_fingerprint(info: VideoInfo) -> dict[str, Any]:
    """Enough about the input to notice it was replaced or edited: size, mtime, a hash of its
    head and tail, and its stream layout. Hashing all of a 50 GB film would take minutes."""
    path = info.path
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BYTES))
        if stat.st_size > _FINGERPRINT_BYTES:
            handle.seek(max(_FINGERPRINT_BYTES, stat.st_size - _FINGERPRINT_BYTES))
            digest.update(handle.read(_FINGERPRINT_BYTES))
    streams = [f"video {info.codec} {info.width}x{info.height} {info.pix_fmt}"]
    streams += [f"{s.kind} {s.codec}" for s in info.others]
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "head_tail_sha256": digest.hexdigest(),
        "streams": streams,
    }


def describe_changes(recorded: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two job descriptions, e.g. "settings.crf: 18 → 20"."""
    changes: list[str] = []
    for key in sorted(set(recorded) | set(current)):
        name = f"{prefix}{key}"
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += describe_changes(cast(dict[str, Any], old), cast(dict[str, Any], new), prefix=f"{name}.")
        elif old != new:
            changes.append(f"{name}: {_short(old)} → {_short(new)}")
    return changes


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "…" + text[-8:]


def read_journal(path: Path) -> Journal | None:
    """The journal at ``path``, None if there is none; VidsrError if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Journal.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise VidsrError(
            f"the resume journal {path} is damaged ({exc}); run again with --restart to start over"
        ) from None


def write_journal(path: Path, journal: Journal) -> None:
    """Replace the journal atomically and durably."""
    atomic_write(path, lambda handle: handle.write(journal.to_json().encode("utf-8")))
