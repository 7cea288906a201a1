"""`vidsr IN_DIR OUT_DIR` and `vidsr a.mp4 b.mkv OUT_DIR/`: a batch, with every option of `vidsr upscale`.

The render's options are :func:`vidsr.cli.render.render_options` and
:func:`vidsr.cli.cluster.cluster_options`, the same groups `vidsr upscale` takes, so none is
missing here. The render library is imported inside the command (torch and PyAV load only when
a batch runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from vidsr.cli import console
from vidsr.cli.cluster import ClusterChoice, cluster_options
from vidsr.cli.options import QuietOption, with_options
from vidsr.cli.render import JobFor, render_options

if TYPE_CHECKING:
    from rich.table import Table

    from vidsr.render.batch import BatchItem, BatchProgress, FileResult

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


@with_options("job", render_options)
@with_options("where", cluster_options)
def batch(
    paths: Annotated[list[Path], typer.Argument(help="INPUT... OUT_DIR: videos or folders, then the output folder.")],
    *,
    glob: Annotated[str | None, typer.Option(help="Only files matching this pattern ('*.mkv', 'season1/*').")] = None,
    container: Annotated[str | None, typer.Option(help="Write every output as this container (mkv, mp4, mov).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the result table as JSON here.")] = None,
    job: JobFor,
    where: ClusterChoice,
    quiet: QuietOption = False,
) -> None:
    """Upscale every video under IN_DIR (sub-folders kept) or several files into OUT_DIR; finished
    outputs are skipped, an interrupted one resumes, a broken file does not stop the rest."""
    say = console.quiet if quiet else console.inform
    with console.user_errors(), console.stop_on_sigterm():
        if len(paths) < 2:
            raise typer.BadParameter("give the inputs, then the output folder: vidsr IN_DIR OUT_DIR")
        with console.loading():
            from vidsr.render.batch import find_batch, run_batch

            console.tune_process_for_networks()
        *inputs, out_dir = paths
        template = job(Path(), Path())
        items = find_batch(
            inputs,
            out_dir,
            glob=glob,
            container=container,
            stream=template.stream,
            accept_truncated=template.accept_truncated,
            warn=console.warn,
        )
        backend = where.open_backend()
        try:

            def started(index: int, item: BatchItem) -> None:
                say(f"[{index + 1}/{len(items)}] {item.source} -> {item.output}")

            def done(result: FileResult) -> None:
                if result.result in ("skipped", "failed"):
                    say(f"{result.result}: {result.source}: {result.note}")

            with progress_view(enabled=not quiet and console.stderr.is_terminal) as on_progress:
                results = run_batch(
                    items,
                    template,
                    backend=backend,
                    on_file_start=started,
                    on_file_done=done,
                    on_batch_progress=on_progress,
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


@contextmanager
def progress_view(enabled: bool) -> Generator[Callable[[BatchProgress], None], None, None]:
    """Two bars on a terminal, the batch's (files, frames, speed, ETA) over the current file's;
    nothing at all otherwise (logs keep the per-file lines and the table)."""
    if not enabled:
        yield lambda progress: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames  {task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console.stderr, transient=False) as bars:
        whole = bars.add_task("batch", total=None, info="")
        current = bars.add_task("", total=None, info="", visible=False)

        def update(progress: BatchProgress) -> None:
            bars.update(
                whole,
                description=escape(batch_label(progress)),
                completed=progress.frames_done,
                total=progress.frames_total or None,
                info=batch_info(progress),
            )
            file = progress.file
            bars.update(
                current,
                visible=progress.current is not None,
                description=escape(f"  {progress.current.name}" if progress.current else ""),
                completed=file.frames_done if file else 0,
                total=file.frames_total if file else None,
                info=f"{file.fps:.2f} fps" if file else "",
            )

        yield update


def batch_label(progress: BatchProgress) -> str:
    """ "files 2/5": the files finished (rendered, skipped or failed) of the batch."""
    return f"files {progress.files_done}/{progress.files_total}"


def batch_info(progress: BatchProgress) -> str:
    """ "2.31 fps  ETA 1:02:03", or "ETA …" until a speed has been measured."""
    if progress.eta_seconds is None:
        return "ETA …"
    return f"{progress.fps:.2f} fps  ETA {clock(progress.eta_seconds)}"


def clock(seconds: float) -> str:
    """Whole seconds as "2:05" or "1:02:05"."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _row(result: FileResult) -> dict[str, Any]:
    return {
        "file": str(result.source),
        "output": str(result.output),
        "frames": result.frames,
        "seconds": round(result.seconds, 3),
        "tiles_reused": round(result.tiles_reused, 4),
        "result": result.result,
        "note": result.note,
    }


def _table(results: list[FileResult]) -> Table:
    from rich.table import Table

    table = Table(title=f"{len(results)} file(s)")
    for column in ("file", "frames", "time", "result"):
        table.add_column(column)
    colours = {"done": "green", "resumed": "green", "skipped": "yellow", "failed": "red"}
    for r in results:
        outcome = f"[{colours[r.result]}]{r.result}[/]" + (f" {escape(r.note)}" if r.note else "")
        table.add_row(escape(str(r.source)), str(r.frames), f"{r.seconds:.1f} s", outcome)
    return table
