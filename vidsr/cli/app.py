"""The `vidsr` command: one Typer app that gathers the command modules.

``vidsr INPUT OUTPUT`` works without a sub-command word: :func:`main` routes anything that is
not a known command to ``upscale``. Each command lives in a module of its own group and imports
only :mod:`vidsr.cli.console` and :mod:`vidsr.cli.options`, never this module, so nothing
imports back up.

Defining the commands loads no torch, PyAV, NumPy or Ray (``tests/test_startup.py`` keeps it so):
``vidsr --help``, ``vidsr COMMAND --help`` and a usage error answer at once; each command
loads what it runs on in its body, and those that run a network set up the process for it
there (:func:`vidsr.cli.console.tune_process_for_networks`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from vidsr.cli import batch, compare, inspect, models, render, train

__all__ = ["COMMANDS", "app", "main", "with_default_command"]

app = typer.Typer(
    name="vidsr",
    help="Upscale videos with ESRGAN-family networks: streaming, audio kept. `vidsr INPUT OUTPUT` upscales a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(render.upscale)
app.command()(models.models)
app.command()(models.interpolate)
app.command()(inspect.frames)
app.command()(inspect.image)
app.command()(inspect.info)
app.command()(train.train)
app.command()(batch.batch)
app.command()(compare.compare)

COMMANDS = ("upscale", "models", "interpolate", "frames", "image", "info", "train", "batch", "compare")


def with_default_command(args: Sequence[str]) -> list[str]:
    """``vidsr IN OUT ...`` → ``vidsr upscale IN OUT ...``; known commands and --help pass through."""
    args = list(args)
    if not args or args[0] in COMMANDS or args[0] in ("-h", "--help"):
        return args
    return ["batch" if batch.is_batch(args) else "upscale", *args]


def main(argv: Sequence[str] | None = None) -> None:
    args = with_default_command(sys.argv[1:] if argv is None else argv)
    app(args=args, prog_name="vidsr")
