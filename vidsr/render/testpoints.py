"""Points where the tests stop or hold vidsr, to prove a render survives a kill at any instant.

Set by environment variables only the tests use; each check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["kill_point", "pause_point"]


def kill_point(name: str) -> None:
    """Die here, as kill -9 would, when VIDSR_TEST_KILL_AT names this point: "segment-committed:2"
    (a segment file is durable but not journaled), "journal-written:2", or "frame:3:4" (in segment
    3, after encoding the batch that starts at its frame 4)."""
    if os.environ.get("VIDSR_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str) -> None:
    """Tests hold vidsr at a named point to race a second one against it, or to act on a cluster
    worker in the middle of a segment: with VIDSR_TEST_PAUSE_AT=locked:/some/file (or
    frame:1:6:/some/file, a point of ``kill_point``'s) it creates /some/file.reached there and
    waits for /some/file (an absolute path without a colon)."""
    point, _, release = os.environ.get("VIDSR_TEST_PAUSE_AT", "").rpartition(":")
    if point != name or not release:
        return
    Path(f"{release}.reached").touch()
    deadline = time.monotonic() + 120
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
