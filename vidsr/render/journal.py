"""The resume journal: which segments of a render are finished, and what job they belong to.

Plain JSON, replaced atomically (temp file, fsync, rename, fsync of the folder), so after a
crash or power loss at any instant it holds either the old state or the new one. A segment
counts as finished only once its file is on disk and the journal names it. One writer: the
process that drives the render (workers elsewhere only hand it segment bytes). The job is a
typed :class:`~vidsr.render.identity.JobIdentity`; the journal grows with the segments that hold
frames, not with the video's duration (a run of empty segments is one record).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vidsr.durable import atomic_write
from vidsr.errors import VidsrError
from vidsr.render.identity import JobIdentity, identity_from_json, identity_to_json

__all__ = ["JOURNAL_VERSION", "Journal", "SegmentRecord", "read_journal", "segment_file_name", "write_journal"]

# 3: a typed job identity, and runs of empty segments in one record; 4: settings.reuse (a journal
# of 3 was rendered without reuse, and would resume with different frames after the resume point)
JOURNAL_VERSION = 4


def segment_file_name(index: int) -> str:
    """The name of segment ``index``'s file in the work folder."""
    return f"segment-{index:06d}.nut"


@dataclass(frozen=True)
class SegmentRecord:
    """One finished segment: its file (none for a segment with no frames), the source frames it
    holds, and how many segments after it are known to hold none (its decoder saw the next frame
    that far ahead, or the end of the stream): a sparse timeline costs one record, not thousands."""

    index: int
    file: str | None
    frames: int
    first_pts: int | None
    last_pts: int | None
    size: int
    empty_after: int = 0

    @property
    def covers(self) -> range:
        return range(self.index, self.index + 1 + self.empty_after)


@dataclass
class Journal:
    """What a render is (``job``), how many segments it has, and which of them are finished.

    Segments finish in any order (several workers, or a slow one behind quick ones), so the
    journal holds a set of them, not a prefix; ``segments`` is kept sorted by index.
    """

    job: JobIdentity
    segment_count: int
    segments: list[SegmentRecord] = field(default_factory=list[SegmentRecord])

    @property
    def frames_done(self) -> int:
        return sum(segment.frames for segment in self.segments)

    @property
    def done(self) -> set[int]:
        return {index for segment in self.segments for index in segment.covers if index < self.segment_count}

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
        done = self.done
        return done == set(range(len(done)))

    def record(self, segment: SegmentRecord) -> None:
        """Add a finished segment (replacing an earlier record of the same index)."""
        others = [s for s in self.segments if s.index != segment.index]
        self.segments = sorted([*others, segment], key=lambda s: s.index)

    def forget(self, index: int) -> None:
        self.segments = [s for s in self.segments if s.index != index]

    def to_json(self) -> str:
        payload = {
            "vidsr_journal": JOURNAL_VERSION,
            "job": identity_to_json(self.job),
            "segment_count": self.segment_count,
            "segments": [asdict(s) for s in self.segments],
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Journal:
        payload = json.loads(text)
        version = payload.get("vidsr_journal")
        if version != JOURNAL_VERSION:
            raise OldJournalError(version)
        count = int(payload["segment_count"])
        segments = [SegmentRecord(**entry) for entry in payload["segments"]]
        indices = [s.index for s in segments]
        if indices != sorted(set(indices)) or any(not 0 <= index < count for index in indices):
            raise ValueError("its segments are out of order or out of range")
        return cls(job=identity_from_json(payload["job"]), segment_count=count, segments=segments)


class OldJournalError(ValueError):
    """A journal of another vidsr version's format."""

    def __init__(self, version: object) -> None:
        super().__init__(f"journal version {version!r}, expected {JOURNAL_VERSION}")
        self.version = version


def read_journal(path: Path) -> Journal | None:
    """The journal at ``path``, None if there is none; VidsrError if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Journal.from_json(text)
    except OldJournalError as exc:
        raise VidsrError(
            f"the resume journal {path} was written by another version of vidsr (format {exc.version!r}, "
            f"this one reads {JOURNAL_VERSION}); run again with --restart to start over"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise VidsrError(
            f"the resume journal {path} is damaged ({exc}); run again with --restart to start over"
        ) from None


def write_journal(path: Path, journal: Journal) -> None:
    """Replace the journal atomically and durably."""
    atomic_write(path, lambda handle: handle.write(journal.to_json().encode("utf-8")))
