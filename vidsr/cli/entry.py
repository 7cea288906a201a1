"""The `vidsr` console script: Ctrl-C is one line and exit code 130 from the first instant.

This module imports only the standard library, so its handler is in place before Typer loads;
a Ctrl-C then needs no traceback and no teardown. Torch and PyAV load later, inside the command
that needs them (``vidsr --help`` and usage errors never load them), under the same handler.
Once a command runs, its own handling takes over (a render stops within its batch and says
how to resume).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from vidsr.cli.starting import INTERRUPTED, ending_at_once_on_signals

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    with ending_at_once_on_signals():
        from vidsr.cli.app import main as run_command  # Typer and Rich; the commands load the rest
    try:
        run_command(argv)
    except KeyboardInterrupt:  # between the commands' own handling and the edges of the program
        os.write(2, INTERRUPTED)
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
