"""The `vidsr` console script: Ctrl-C is one line and exit code 130 from the first instant.

This module imports only the standard library, so its handler is in place before torch, PyAV
and Typer load (seconds, on a cold start); a Ctrl-C then needs no traceback and no teardown.
Once the command line is loaded, the commands' own handling takes over (a render stops within
its batch and says how to resume).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["main"]

_INTERRUPTED = b"interrupted\n"


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    os.write(2, _INTERRUPTED)  # async-signal-safe
    os._exit(128 + signum)  # 130 for SIGINT, 143 for SIGTERM: nothing has been written yet


def main(argv: Sequence[str] | None = None) -> None:
    previous = {
        number: signal.signal(number, _interrupted_while_starting) for number in (signal.SIGINT, signal.SIGTERM)
    }
    from vidsr.cli.app import main as run_command  # torch, PyAV, Typer: the slow part

    for number, handler in previous.items():
        signal.signal(number, handler)
    try:
        run_command(argv)
    except KeyboardInterrupt:  # between the commands' own handling and the edges of the program
        os.write(2, _INTERRUPTED)
        sys.exit(130)
    except Exception as error:  # a bug: every problem vidsr knows of is one line already
        if os.environ.get("VIDSR_DEBUG"):
            raise
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        sys.stderr.write(
            f"error: vidsr failed unexpectedly ({type(error).__name__}: {first_line}); this is a bug in vidsr: "
            "please report it with the command, and run it again with VIDSR_DEBUG=1 for the details\n"
        )
        sys.exit(1)
