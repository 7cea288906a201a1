"""Options more than one command shares, each typed once: one help text and one parser.

Two kinds:

* single options (``StreamOption``, ``QuietOption``...): ``Annotated`` aliases that a command
  names as a parameter's type;
* option groups: a function whose parameters are options and whose result is the value the
  library takes. :func:`upscale_options` gives an :class:`~vidsr.choices.UpscaleOptions`. A
  command takes a group as one parameter with :func:`with_options`; Typer sees each option.

Where a new option goes:

* the network stage's (a field of ``UpscaleOptions``): a parameter of :func:`upscale_options`;
  `vidsr upscale`, `frames`, `image`, `info` and the batch form all have it then;
* a video render's (a field of ``UpscaleJob``): a parameter of
  :func:`vidsr.cli.render.render_options`; `vidsr upscale` and the batch form have it then;
* where a video render runs (a field of :class:`~vidsr.cli.cluster.ClusterChoice`): a parameter
  of :func:`vidsr.cli.cluster.cluster_options`; `vidsr upscale` and the batch form have it then;
* one command's own: a parameter of that command.

Nothing here loads torch or PyAV: ``--help`` and usage errors must be instant.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from vidsr.choices import MAX_SCALE, MIN_SCALE, UpscaleOptions
from vidsr.cli import console
from vidsr.defaults import DEFAULT_MODEL
from vidsr.errors import SettingsError

__all__ = [
    "AcceptTruncatedOption",
    "DeinterlaceOption",
    "QuietOption",
    "StreamOption",
    "deinterlace_choice",
    "upscale_options",
    "with_options",
]

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
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no messages but errors.")]

Made = TypeVar("Made")

_DEINTERLACE_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def deinterlace_choice(choice: str) -> bool | None:
    """--deinterlace auto|on|off as a job's setting (None: when the input is interlaced)."""
    if choice not in _DEINTERLACE_CHOICES:
        raise SettingsError(f"--deinterlace {choice!r} is not a choice: auto, on or off")
    return _DEINTERLACE_CHOICES[choice]


def upscale_options(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help=f"An embedded model (default {DEFAULT_MODEL}), a models-folder file or a path; twice to interpolate.",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="With two --model: 0 gives the first, 1 the second.")] = None,
    scale: Annotated[
        float | None,
        typer.Option(
            help=f"Output scale from {MIN_SCALE:g} to {MAX_SCALE:g} (1.5, 2, 3, 8, 16...); default: the model's own."
        ),
    ] = None,
    tile: Annotated[
        int, typer.Option(help="Process frames in tiles of this many pixels (less memory); 0: whole frames.", min=0)
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N (GPU N), mps or vulkan[:N] (ncnn's).")] = "auto",
    engine: Annotated[
        str, typer.Option(help="auto, torch or ncnn (pip install 'vidsr\\[ncnn]': the CPU or any Vulkan GPU).")
    ] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto, fp32, bf16 (CPUs with bf16) or fp16 (GPUs); auto picks the fastest faithful one.")
    ] = "auto",
) -> UpscaleOptions:
    """The options of every command that upscales: which network, and how to run it."""
    return UpscaleOptions(
        models=tuple(model) if model else (DEFAULT_MODEL,),
        alpha=alpha,
        scale=scale,
        tile=tile,
        device=device,
        precision=precision,
        engine=engine,
    )


def with_options(name: str, group: Callable[..., object]) -> Callable[[Callable[..., Made]], Callable[..., Made]]:
    """A command whose parameter ``name`` receives what ``group`` makes of its options.

    Typer reads a command's options from its signature: the command's is shown with the
    parameter ``name`` replaced by ``group``'s parameters, in its place. A call gathers their
    values, calls ``group`` with them (a refusal is one red line, as in any command) and
    passes the result as ``name``. Groups nest: a group may itself take one with this.
    """

    def decorate(command: Callable[..., Made]) -> Callable[..., Made]:
        own = inspect.signature(command, eval_str=True)
        options = list(inspect.signature(group, eval_str=True).parameters.values())
        clashes = {option.name for option in options} & set(own.parameters)
        if name not in own.parameters or clashes:
            raise TypeError(f"{command.__name__} must take {name!r} and none of {sorted(clashes)}")
        shown: list[inspect.Parameter] = []
        for parameter in own.parameters.values():
            shown.extend(options if parameter.name == name else [parameter])
        shown = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) for parameter in shown]

        def run(**values: Any) -> Made:
            chosen = {option.name: values.pop(option.name) for option in options}
            with console.user_errors():
                grouped = group(**chosen)
            return command(**values, **{name: grouped})

        run.__signature__ = own.replace(parameters=shown)  # pyright: ignore[reportFunctionMemberAccess]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in shown}
        run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
        run.__module__ = command.__module__
        return run

    return decorate
