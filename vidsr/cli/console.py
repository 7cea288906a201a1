"""What every command shares: the consoles, one red line per user error, signals, messages.

Commands import this module; it imports no command, so nothing imports back up.
"""

from __future__ import annotations

import signal
from collections.abc import Generator
from contextlib import contextmanager
from types import FrameType

import typer
from rich.console import Console
from rich.markup import escape

from vidsr.errors import RenderInterrupted, VidsrError

__all__ = ["inform", "quiet", "stderr", "stdout", "stop_on_sigterm", "user_errors", "warn"]

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


@contextmanager
def user_errors() -> Generator[None, None, None]:
    """Turn the library's errors into one red line and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except RenderInterrupted as exc:
        stderr.print(f"[yellow]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(130) from None
    except VidsrError as exc:
        stderr.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


@contextmanager
def stop_on_sigterm() -> Generator[None, None, None]:
    """Treat SIGTERM (kill, a closing terminal, a service stop) like Ctrl-C: stop cleanly, resumable."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. under a test runner's worker): leave it be
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def inform(message: str) -> None:
    stderr.print(escape(message), soft_wrap=True)


def quiet(message: str) -> None:
    pass
