"""The hidden folder beside an output where a render keeps its journal and encoded segments.

It holds encoded video only, never raw frames. One process at a time may use it: an OS
file lock, which the kernel releases when its process dies, however it dies, so a
crashed render never blocks the next one.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import IO

from vidsr.durable import atomic_write
from vidsr.errors import OutputError
from vidsr.render.journal import Journal, read_journal, segment_file_name, write_journal


class OutputBusyError(OutputError):
    """Another vidsr holds this output's lock: it is rendering it now (a batch skips the file)."""


class WorkFolder:
    """``.NAME.vidsr/`` beside the output ``NAME``: lock, journal, segment files."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.with_name(f".{output.name}.vidsr")
        self.journal_path = self.path / "journal.json"
        self._lock_handle: IO[str] | None = None

    def has_journal(self) -> bool:
        """Whether an earlier render left work here (a bare folder is only someone's lock)."""
        return self.journal_path.is_file()

    def acquire(self) -> None:
        """Create the folder if needed and take its lock; OutputError if another vidsr holds it."""
        try:
            self.path.mkdir(exist_ok=True)
            handle = (self.path / "lock").open("a+", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot create the work folder {self.path}: {exc.strerror or exc}") from None
        if not _try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise OutputBusyError(
                f"another vidsr (process {holder}) is rendering {self.output}; wait for it to finish or stop it"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def release(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the descriptor drops the lock
            self._lock_handle = None

    def read_journal(self) -> Journal | None:
        return read_journal(self.journal_path)

    def write_journal(self, journal: Journal) -> None:
        write_journal(self.journal_path, journal)

    def segment_path(self, index: int) -> Path:
        return self.path / segment_file_name(index)

    def commit_segment(self, index: int, data: bytes) -> Path:
        """Write a finished segment's bytes durably under its final name (temp file, fsync,
        rename, fsync of the folder): after a crash it is there whole, or not at all."""
        target = self.segment_path(index)
        try:
            atomic_write(target, lambda handle: handle.write(data))
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        return target

    def discard_unrecorded(self, journal: Journal) -> list[Path]:
        """Delete segment files the journal does not name (a kill can leave them); return them."""
        recorded = {segment.file for segment in journal.segments}
        candidates = [*self.path.glob("segment-*"), *self.path.glob(".segment-*")]  # .tmp: a kill mid-write
        stray = [p for p in candidates if p.name not in recorded]
        for path in stray:
            path.unlink(missing_ok=True)
        return stray

    def clear(self) -> None:
        """Remove everything but the lock (for --restart)."""
        for entry in self.path.iterdir():
            if entry.name != "lock":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def remove(self) -> None:
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)


if sys.platform == "win32":
    import msvcrt

    def _try_lock(handle: IO[str]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

else:
    import fcntl

    def _try_lock(handle: IO[str]) -> bool:
        """An exclusive lock that the kernel drops when this process dies, however it dies."""
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False
