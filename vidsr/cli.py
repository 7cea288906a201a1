"""The command line: thin commands over the library, one red line for every user error.

``vidsr INPUT OUTPUT`` works without a sub-command word: :func:`main` routes anything
that is not a known command to ``upscale``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vidsr.encode import EncodeSettings
from vidsr.errors import VidsrError
from vidsr.interpolate import write_interpolated
from vidsr.pipeline import DEFAULT_SEGMENT_SECONDS, RenderInterrupted, UpscaleJob, upscale_video
from vidsr.pipeline import Progress as RenderProgress
from vidsr.upscale import UpscaleOptions
from vidsr.zoo import DEFAULT_MODEL, REAL_ESRGAN_CREDIT, ModelInfo, list_models, models_dir

app = typer.Typer(
    name="vidsr",
    help="Upscale videos with ESRGAN-family networks: streaming, audio kept. `vidsr INPUT OUTPUT` upscales a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

COMMANDS = ("upscale", "models", "interpolate", "frames", "image", "info", "train")


@contextmanager
def user_errors() -> Iterator[None]:
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
def progress_bar(enabled: bool) -> Iterator[callable]:
    """A Rich bar on a terminal; nothing at all otherwise (logs stay clean)."""
    if not enabled:
        yield lambda progress: None
        return
    columns = (
        TextColumn("[bold]upscaling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames  {task.fields[fps]:.2f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task("upscale", total=None, fps=0.0)

        def update(progress: RenderProgress) -> None:
            bar.update(task, completed=progress.frames_done, total=progress.frames_total, fps=progress.fps)

        yield update


@app.command(help="Upscale a video; audio, subtitles and chapters are kept. Same as `vidsr INPUT OUTPUT`.")
def upscale(
    input: Annotated[Path, typer.Argument(help="The video to upscale.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Where to write the result (.mp4, .mkv, .mov).", show_default=False)],
    scale: Annotated[
        float | None, typer.Option(help="Output scale from 1 to 16 (1.5, 2, 3, 8, 16...); default: the model's own.")
    ] = None,
    width: Annotated[int | None, typer.Option(help="Output width instead of a scale (the height follows the aspect).")] = None,
    height: Annotated[int | None, typer.Option(help="Output height instead of a scale (the width follows the aspect).")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="An embedded model, a file in the models folder, or a path; twice to interpolate."),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="With two --model: 0 gives the first, 1 the second.")] = None,
    tile: Annotated[int, typer.Option(help="Process frames in tiles of this many pixels (less memory); 0: whole frames.", min=0)] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto, fp32, bf16 (CPUs with bf16) or fp16 (GPUs); auto picks the fastest faithful one.")
    ] = "auto",
    batch: Annotated[int, typer.Option(help="Frames per network call; 0 chooses for the device.", min=0)] = 0,
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="Run the network through torch.compile (needs a C++ compiler); default: for long renders "
            "with heavy models on the CPU, where it is 5-9 % faster.",
            show_default=False,
        ),
    ] = None,
    codec: Annotated[str, typer.Option(help="Video encoder (libx264, libx265, libsvtav1, h264_nvenc...).")] = "libx264",
    crf: Annotated[int, typer.Option(help="Constant quality; lower is better and bigger.", min=0, max=63)] = 18,
    preset: Annotated[
        str,
        typer.Option(
            help="Encoder speed preset (ultrafast ... veryslow for x264/x265, 0-13 for SVT-AV1); auto: medium, "
            "or faster presets for light models, whose speed the encoder would otherwise hold back."
        ),
    ] = "auto",
    pix_fmt: Annotated[str | None, typer.Option(help="Output pixel format; default yuv420p (10-bit for 10-bit input).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite OUTPUT if it exists.")] = False,
    segment_seconds: Annotated[
        float, typer.Option(help="Seconds of video per segment: the most work a resume redoes.", min=0.1)
    ] = DEFAULT_SEGMENT_SECONDS,
    restart: Annotated[bool, typer.Option(help="Discard an interrupted render of OUTPUT instead of resuming it.")] = False,
    keep_work: Annotated[bool, typer.Option(help="Keep the encoded segments after OUTPUT is written.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no messages but errors.")] = False,
) -> None:
    job = UpscaleJob(
        input=input,
        output=output,
        upscale=UpscaleOptions(
            models=tuple(model or [DEFAULT_MODEL]),
            alpha=alpha,
            scale=scale,
            tile=tile,
            device=device,
            precision=precision,
        ),
        width=width,
        height=height,
        batch=batch,
        compile=compile,
        encode=EncodeSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt),
        force=force,
        segment_seconds=segment_seconds,
        restart=restart,
        keep_work=keep_work,
    )
    inform = _quiet if quiet else _inform
    with user_errors(), stop_on_sigterm(), progress_bar(enabled=not quiet and stderr.is_terminal) as on_progress:
        result = upscale_video(job, on_progress=on_progress, warn=_warn, inform=inform)
    rendered = result.frames - result.frames_resumed
    inform(
        f"wrote {result.output}: {result.frames} frames at {result.width}x{result.height} "
        f"with {result.model} on {result.device}, {result.encoder}; {rendered} frames in {result.seconds:.1f} s "
        f"({rendered / max(result.seconds, 1e-9):.2f} fps)"
        + (f", {result.frames_resumed} from the interrupted run" if result.frames_resumed else "")
    )


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM (kill, a closing terminal, a service stop) like Ctrl-C: stop cleanly, resumable."""
    def interrupt(signum, frame):
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


@app.command(help="List the embedded models and the files in the models folder.")
def models() -> None:
    with user_errors():
        entries = list_models()
    table = Table(
        title="vidsr models",
        caption=f"Embedded: {REAL_ESRGAN_CREDIT}. Your models folder: {models_dir()}",
        caption_justify="left",
    )
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("architecture")
    table.add_column("scale", justify="right")
    table.add_column("params", justify="right")
    table.add_column("size", justify="right")
    table.add_column("good for / source")
    for entry in entries:
        table.add_row(*_model_row(entry))
    stdout.print(table)


def _model_row(entry: ModelInfo) -> tuple[str, ...]:
    if entry.error:
        return (entry.name, "", "", "", "", f"[red]unusable:[/] {entry.error}")
    embedded = entry.source.startswith("embedded")
    return (
        entry.name,
        entry.architecture or "",
        f"x{entry.scale}" if entry.scale else "",
        f"{entry.params / 1e6:.2f} M" if entry.params else "",
        f"{entry.size_mb:.1f} MB" if entry.size_mb is not None else "",
        entry.summary if embedded else entry.source,
    )


@app.command(help="Blend two models' weights (ESRGAN network interpolation) into a new model file.")
def interpolate(
    first: Annotated[str, typer.Argument(help="Model A (alpha 0): a name or a path.", show_default=False)],
    second: Annotated[str, typer.Argument(help="Model B (alpha 1): a name or a path.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .safetensors file to write.", show_default=False)],
    alpha: Annotated[float, typer.Option(help="0 gives A, 1 gives B; ESRGAN's paper uses 0.8 towards the GAN model.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    with user_errors():
        model = write_interpolated(first, second, alpha, output, force=force)
    stderr.print(f"wrote {output}: {model.source}", soft_wrap=True)


def _warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def _inform(message: str) -> None:
    stderr.print(escape(message), soft_wrap=True)


def _quiet(message: str) -> None:
    pass


# `frames`, `image`, `info` and `train` live in their own modules; registered here so they
# share the app, its error handling and the routing of `vidsr INPUT OUTPUT`.
from vidsr import cli_inspect, cli_train  # noqa: E402

app.command()(cli_inspect.frames)
app.command()(cli_inspect.image)
app.command()(cli_inspect.info)
app.command("train")(cli_train.train)


def with_default_command(args: Sequence[str]) -> list[str]:
    """``vidsr IN OUT ...`` → ``vidsr upscale IN OUT ...``; known commands and --help pass through."""
    args = list(args)
    if not args or args[0] in COMMANDS or args[0] in ("-h", "--help"):
        return args
    return ["upscale", *args]


def main(argv: Sequence[str] | None = None) -> None:
    args = with_default_command(sys.argv[1:] if argv is None else argv)
    app(args=args, prog_name="vidsr")
