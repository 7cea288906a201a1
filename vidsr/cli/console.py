"""What every command shares: the consoles, one red line per user error, signals, messages.

Commands import this module; it imports no command, so nothing imports back up. Like the
commands' modules it loads neither torch nor PyAV: a command loads them in its body, within
:func:`loading`, once its options are known to be good.
"""

from __future__ import annotations

import signal
from collections.abc import Generator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from vidsr.cli.starting import ending_at_once_on_signals
from vidsr.errors import RenderInterrupted, VidsrError

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "inform",
    "loading",
    "progress_with_eta",
    "quiet",
    "stderr",
    "stdout",
    "stop_on_sigterm",
    "tune_process_for_networks",
    "user_errors",
    "warn",
]

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


@contextmanager
def loading() -> Generator[None, None, None]:
    """Where a command imports the libraries it runs on (torch, PyAV: seconds on a cold start).

    Nothing has been written yet, so Ctrl-C or SIGTERM there ends the process at once with one
    line and the signal's exit code, as while vidsr itself starts."""
    with ending_at_once_on_signals():
        yield


def tune_process_for_networks() -> None:
    """For every command that loads torch: the process-wide settings networks run best with
    (steady malloc thresholds, torch.compile's kernel cache). Loads torch."""
    from vidsr.models import cache_dir
    from vidsr.upscale import tune_process_for_rendering

    tune_process_for_rendering(cache_dir() / "torch-compile")


def progress_with_eta(doing: str, measures: str, *extras: str, terminal: Console) -> Progress:
    """A long job's bar on ``terminal``, kept there when done: "doing" in bold, the bar, done/total,
    ``measures``, the time elapsed, "ETA" and the time left, then ``extras``. ``measures`` and
    ``extras`` are Rich ``TextColumn`` templates of the task's fields ("{task.fields[fps]:.2f} fps").
    The render and the training share it; Rich's progress module loads only when a bar is shown."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"[bold]{doing}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(measures),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        *(TextColumn(extra) for extra in extras),
    )
    return Progress(*columns, console=terminal, transient=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def inform(message: str) -> None:
    stderr.print(escape(message), soft_wrap=True)


def quiet(message: str) -> None:
    pass
