"""`vidsr IN_DIR OUT_DIR` and `vidsr a.mp4 b.mkv OUT_DIR/`: a batch, with every option of `vidsr upscale`.

The render library is imported inside the functions (torch and PyAV load only when a batch runs).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vidsr.cli import console
from vidsr.cli import render as render_cli

if TYPE_CHECKING:
    from vidsr.render.batch import FileResult

__all__ = ["batch", "is_batch"]


def is_batch(args: Sequence[str]) -> bool:
    """Whether ``vidsr ARGS`` (no command word) names a batch: a folder input, more than two paths,
    or one file into an OUTPUT that ends with "/" or is a folder. Options are told from paths by
    the upscale command's own parser."""
    import typer.main

    parsing = typer.Typer()
    parsing.command()(batch)  # the batch's parser: every upscale option, any number of paths
    command = typer.main.get_command(parsing)
    parser = command.make_parser(command.make_context("vidsr", ["x", "y"], resilient_parsing=True))
    try:
        values, _, _ = parser.parse_args(list(args))
    except Exception:  # let the real command say what is wrong
        return False
    positional = [str(p) for p in values.get("paths") or ()]
    if len(positional) > 2:
        return True
    if len(positional) < 2:
        return False
    source, output = Path(positional[0]), positional[1]
    return source.is_dir() or output.endswith(("/", "\\")) or Path(output).is_dir()


def batch(
    paths: list[Path],
    glob: str | None,
    container: str | None,
    json_path: Path | None,
    **options: Any,
) -> None:
    """Upscale every video under IN_DIR (sub-folders kept) or several files into OUT_DIR; finished
    outputs are skipped, an interrupted one resumes, a broken file does not stop the rest."""
    from vidsr.render.batch import find_batch, run_batch

    quiet = bool(options["quiet"])
    say = console.quiet if quiet else console.inform
    with console.user_errors(), console.stop_on_sigterm():
        if len(paths) < 2:
            raise typer.BadParameter("give the inputs, then the output folder: vidsr IN_DIR OUT_DIR")
        *inputs, out_dir = paths
        template = _template(options)
        items = find_batch(
            inputs,
            out_dir,
            glob=glob,
            container=container,
            stream=template.stream,
            accept_truncated=template.accept_truncated,
            warn=console.warn,
        )
        backend = render_cli._backend(options["cluster"], options["worker_cpus"])  # pyright: ignore[reportPrivateUsage]
        try:

            def started(index: int, item: Any) -> None:
                say(f"[{index + 1}/{len(items)}] {item.source} -> {item.output}")

            def done(result: FileResult) -> None:
                if result.result in ("skipped", "failed"):
                    say(f"{result.result}: {result.source}: {result.note}")

            with render_cli.progress_bar(enabled=not quiet and console.stderr.is_terminal) as on_progress:
                results = run_batch(
                    items,
                    template,
                    backend=backend,
                    on_file_start=started,
                    on_file_done=done,
                    on_progress=on_progress,
                    warn=console.warn,
                    inform=say,
                )
        finally:
            backend.close()
    if not quiet:
        console.stderr.print(_table(results))
    if json_path is not None:
        json_path.write_text(json.dumps([_row(r) for r in results], indent=2, ensure_ascii=False) + "\n")
    if any(r.result == "failed" for r in results):
        raise typer.Exit(1)


def _template(options: dict[str, Any]) -> Any:
    from vidsr.cli.options import deinterlace_choice
    from vidsr.media import EncodeSettings
    from vidsr.models import DEFAULT_MODEL
    from vidsr.render import UpscaleJob
    from vidsr.upscale import UpscaleOptions

    return UpscaleJob(
        input=Path(),
        output=Path(),
        upscale=UpscaleOptions(
            models=tuple(options["model"] or [DEFAULT_MODEL]),
            alpha=options["alpha"],
            scale=options["scale"],
            tile=options["tile"],
            device=options["device"],
            precision=options["precision"],
            engine=options["engine"],
        ),
        width=options["width"],
        height=options["height"],
        batch=options["batch"],
        compile=options["compile"],
        encode=EncodeSettings(
            codec=options["codec"], crf=options["crf"], preset=options["preset"], pix_fmt=options["pix_fmt"]
        ),
        force=options["force"],
        segment_seconds=options["segment_seconds"],
        restart=options["restart"],
        keep_work=options["keep_work"],
        stream=options["stream"],
        deinterlace=deinterlace_choice(options["deinterlace"]),
        accept_truncated=options["accept_truncated"],
    )


def _row(result: FileResult) -> dict[str, Any]:
    return {
        "file": str(result.source),
        "output": str(result.output),
        "frames": result.frames,
        "seconds": round(result.seconds, 3),
        "result": result.result,
        "note": result.note,
    }


def _table(results: list[FileResult]) -> Table:
    table = Table(title=f"{len(results)} file(s)")
    for column in ("file", "frames", "time", "result"):
        table.add_column(column)
    colours = {"done": "green", "resumed": "green", "skipped": "yellow", "failed": "red"}
    for r in results:
        outcome = f"[{colours[r.result]}]{r.result}[/]" + (f" {escape(r.note)}" if r.note else "")
        table.add_row(escape(str(r.source)), str(r.frames), f"{r.seconds:.1f} s", outcome)
    return table


def _signature() -> inspect.Signature:
    """The batch's own parameters, then every option of `vidsr upscale` (so none is missing here)."""
    own = [
        inspect.Parameter(
            "paths",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[
                list[Path], typer.Argument(help="INPUT... OUT_DIR: videos or folders, then the output folder.")
            ],
        ),
        inspect.Parameter(
            "glob",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None, typer.Option(help="Only files matching this pattern ('*.mkv', 'season1/*').")
            ],
        ),
        inspect.Parameter(
            "container",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None, typer.Option(help="Write every output as this container (mkv, mp4, mov).")
            ],
        ),
        inspect.Parameter(
            "json_path",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[Path | None, typer.Option("--json", help="Write the result table as JSON here.")],
        ),
    ]
    upscale = list(inspect.signature(render_cli.upscale, eval_str=True).parameters.values())[2:]
    return inspect.Signature([*own, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in upscale)])


batch.__signature__ = _signature()  # pyright: ignore[reportFunctionMemberAccess]
