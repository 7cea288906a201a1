"""Stopping while vidsr loads: one line and the signal's exit code, at once.

Loading Typer, then torch and PyAV (seconds on a cold start) writes nothing, so a Ctrl-C or a
SIGTERM then needs no clean-up: the process ends where it is, with no traceback and no
teardown of half-imported libraries. Standard library only: the console script installs this
before anything else loads, and each command again while it loads the libraries it runs on.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator
from contextlib import contextmanager
from types import FrameType

__all__ = ["INTERRUPTED", "ending_at_once_on_signals"]

INTERRUPTED = b"interrupted\n"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _end_at_once(signum: int, frame: FrameType | None) -> None:
    os.write(2, INTERRUPTED)  # async-signal-safe
    os._exit(128 + signum)  # 130 for SIGINT, 143 for SIGTERM: nothing has been written yet


@contextmanager
def ending_at_once_on_signals() -> Generator[None, None, None]:
    """Within: Ctrl-C and SIGTERM end the process at once (see the module); after: as before.

    A signal inherited as ignored stays ignored (a background job's Ctrl-C is not its own);
    off the main thread (a test runner's worker) nothing changes."""
    try:
        previous = {
            number: signal.signal(number, _end_at_once)
            for number in _SIGNALS
            if signal.getsignal(number) is not signal.SIG_IGN
        }
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
