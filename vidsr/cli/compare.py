"""`vidsr compare INPUT -o PAGE.html`: a page to choose a model with your eyes, and its render command.

The upscale options are `vidsr upscale`'s own parameters (so none is missing or differs here):
those that shape the pictures (size, tile, device, precision, stream, deinterlacing) apply to the
page, and every option given goes into the ready-to-copy render command of each model. The
inspection library is imported inside the command (torch and PyAV load only when it runs).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vidsr.cli import console
from vidsr.cli import render as render_cli
from vidsr.cli.cluster import cluster_options

__all__ = ["compare"]

# `vidsr upscale` parameters that a comparison has no use for: its own paths, the model (here
# repeatable, one per candidate, so no interpolation), the render's work folder, and every option
# of where it runs (a page is made here; a cluster's options without --cluster are refused).
_NOT_FOR_COMPARE = frozenset(
    {"input", "output", "model", "alpha", "force", "segment_seconds", "restart", "keep_work", "quiet"}
) | frozenset(inspect.signature(cluster_options).parameters)


def compare(
    input: Path,
    page: Path,
    model: list[str] | None,
    at: list[str] | None,
    clip: float | None,
    force: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Write one HTML page (open it in any browser, from disk) comparing models at chosen moments:
    a before/after slider with pixel-exact zoom, each model's speed here, its time for the whole
    video and the command that renders it. Default: five moments, every embedded model."""
    from vidsr.cli.inspect import planned_render
    from vidsr.cli.options import deinterlace_choice
    from vidsr.inspect.compare_page import CompareJob, write_compare_page
    from vidsr.inspect.timeline import Selection
    from vidsr.media import parse_time
    from vidsr.upscale import UpscaleOptions

    say = console.quiet if quiet else console.inform
    with console.user_errors():
        job = CompareJob(
            input=input,
            page=page,
            models=tuple(model or ()),
            selection=Selection(at=tuple(parse_time(text) for text in at or ())),
            clip_seconds=clip,
            upscale=UpscaleOptions(
                scale=options["scale"], tile=options["tile"], device=options["device"], precision=options["precision"]
            ),
            width=options["width"],
            height=options["height"],
            force=force,
            stream=options["stream"],
            deinterlace=deinterlace_choice(options["deinterlace"]),
            accept_truncated=options["accept_truncated"],
            render_options=render_options(options),
            plan=lambda upscale: planned_render(input, upscale, options["stream"]),
        )
        written = write_compare_page(job, inform=say, warn=console.warn)
    say(
        escape(
            f"wrote {written.page} ({len(written.moments)} moments, {len(written.models)} models; "
            f"pictures in {written.assets.name}/)"
        )
    )


def render_options(values: dict[str, Any]) -> tuple[str, ...]:
    """The upscale options given (those not at their default), as a user would type them."""
    typed: list[str] = []
    for parameter in _borrowed():
        value = values[parameter.name]
        if value == parameter.default:
            continue
        flag = "--" + parameter.name.replace("_", "-")
        if isinstance(value, bool):
            typed.append(flag if value else "--no-" + parameter.name.replace("_", "-"))
        else:
            typed.extend((flag, f"{value:g}" if isinstance(value, float) else str(value)))
    return tuple(typed)


def _borrowed() -> list[inspect.Parameter]:
    upscale = inspect.signature(render_cli.upscale, eval_str=True).parameters.values()
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in upscale if p.name not in _NOT_FOR_COMPARE]


def _signature() -> inspect.Signature:
    def keyword(name: str, default: Any, annotation: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    own = [
        inspect.Parameter(
            "input",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[Path, typer.Argument(help="The video to look at.", show_default=False)],
        ),
        keyword(
            "page",
            ...,
            Annotated[
                Path,
                typer.Option(
                    "--output", "-o", help="The page to write (PAGE.html, pictures in PAGE_files/).", show_default=False
                ),
            ],
        ),
        keyword(
            "model",
            None,
            Annotated[
                list[str] | None,
                typer.Option(
                    "--model",
                    "-m",
                    help="A model to compare (embedded name, models-folder file or path); repeatable. "
                    "Default: every embedded model.",
                    show_default=False,
                ),
            ],
        ),
        keyword(
            "at",
            None,
            Annotated[
                list[str] | None,
                typer.Option(
                    "--at",
                    help="A moment: seconds (75.5), mm:ss or hh:mm:ss.ms; repeatable. "
                    "Default: five spread over the video.",
                    show_default=False,
                ),
            ],
        ),
        keyword(
            "clip",
            None,
            Annotated[
                float | None,
                typer.Option(
                    "--clip",
                    help="Also this many seconds around each moment as videos, played side by side in step.",
                    min=0.1,
                    show_default=False,
                ),
            ],
        ),
        keyword("force", False, Annotated[bool, typer.Option("--force", "-f", help="Replace the page if it exists.")]),
        keyword("quiet", False, Annotated[bool, typer.Option("--quiet", "-q", help="No messages but errors.")]),
    ]
    return inspect.Signature([*own, *_borrowed()])


compare.__signature__ = _signature()  # pyright: ignore[reportFunctionMemberAccess]
