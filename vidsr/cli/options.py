"""Options more than one command shares, with one help text and one parser each."""

from __future__ import annotations

from typing import Annotated

import typer

from vidsr.errors import SettingsError

__all__ = ["AcceptTruncatedOption", "DeinterlaceOption", "StreamOption", "deinterlace_choice"]

StreamOption = Annotated[
    int | None,
    typer.Option(
        help="The input's video stream (see vidsr info); default: the one a player shows.", show_default=False
    ),
]
DeinterlaceOption = Annotated[
    str,
    typer.Option(help="auto: rebuild whole frames (bwdif) when the input is interlaced; on; off: keep the fields."),
]
AcceptTruncatedOption = Annotated[
    bool,
    typer.Option(help="Use what there is of a cut-off input (with a warning) instead of refusing it."),
]

_DEINTERLACE_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def deinterlace_choice(choice: str) -> bool | None:
    """--deinterlace auto|on|off as a job's setting (None: when the input is interlaced)."""
    if choice not in _DEINTERLACE_CHOICES:
        raise SettingsError(f"--deinterlace {choice!r} is not a choice: auto, on or off")
    return _DEINTERLACE_CHOICES[choice]
