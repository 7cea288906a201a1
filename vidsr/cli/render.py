"""`vidsr upscale` (and `vidsr INPUT OUTPUT`): the video render, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidsr.cli import console
from vidsr.cli.options import AcceptTruncatedOption, DeinterlaceOption, StreamOption, deinterlace_choice
from vidsr.errors import SettingsError
from vidsr.media import EncodeSettings
from vidsr.models import DEFAULT_MODEL
from vidsr.render import DEFAULT_SEGMENT_SECONDS, Backend, InProcessBackend, UpscaleJob, upscale_video
from vidsr.render import Progress as RenderProgress
from vidsr.upscale import UpscaleOptions

__all__ = ["upscale"]


@contextmanager
def progress_bar(enabled: bool) -> Generator[Callable[[RenderProgress], None], None, None]:
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
        TextColumn("{task.fields[workers]}"),
    )
    with Progress(*columns, console=console.stderr, transient=False) as bar:
        task = bar.add_task("upscale", total=None, fps=0.0, workers="")

        def update(progress: RenderProgress) -> None:
            bar.update(
                task,
                completed=progress.frames_done,
                total=progress.frames_total,
                fps=progress.fps,
                workers=_workers_text(progress),
            )

        yield update


def _workers_text(progress: RenderProgress) -> str:
    """With a cluster: segments done and what the busy workers are on, "seg 7/30 · s8 40f, s9 12f"."""
    if progress.segments_total < 2 or not progress.workers:
        return ""
    busy = [f"s{a.segment} {a.frames}f" for a in progress.workers if a.segment is not None]
    return f"seg {progress.segments_done}/{progress.segments_total}" + (" · " + ", ".join(busy) if busy else "")


def upscale(
    input: Annotated[Path, typer.Argument(help="The video to upscale.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Where to write the result (.mp4, .mkv, .mov).", show_default=False)],
    scale: Annotated[
        float | None, typer.Option(help="Output scale from 1 to 16 (1.5, 2, 3, 8, 16...); default: the model's own.")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Output width instead of a scale (the height follows the aspect).")
    ] = None,
    height: Annotated[
        int | None, typer.Option(help="Output height instead of a scale (the width follows the aspect).")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="An embedded model, a file in the models folder, or a path; twice to interpolate."
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="With two --model: 0 gives the first, 1 the second.")] = None,
    tile: Annotated[
        int, typer.Option(help="Process frames in tiles of this many pixels (less memory); 0: whole frames.", min=0)
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda[:N], mps or vulkan[:N] (ncnn's).")] = "auto",
    engine: Annotated[
        str, typer.Option(help="auto, torch or ncnn (pip install 'vidsr[ncnn]': the CPU or any Vulkan GPU).")
    ] = "auto",
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
    pix_fmt: Annotated[
        str | None, typer.Option(help="Output pixel format; default yuv420p (10-bit for 10-bit input).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite OUTPUT if it exists.")] = False,
    segment_seconds: Annotated[
        float, typer.Option(help="Seconds of video per segment: the most work a resume redoes.", min=0.1)
    ] = DEFAULT_SEGMENT_SECONDS,
    restart: Annotated[
        bool, typer.Option(help="Discard an interrupted render of OUTPUT instead of resuming it.")
    ] = False,
    keep_work: Annotated[bool, typer.Option(help="Keep the encoded segments after OUTPUT is written.")] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Render on a Ray cluster (pip install 'vidsr[ray]'): local (every GPU or core of this machine), "
            "auto (RAY_ADDRESS, or a cluster started here), HOST:PORT or ray://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    worker_cpus: Annotated[
        int | None,
        typer.Option(help="With --cluster: CPUs per renderer (default: a GPU's share, or a whole node).", min=1),
    ] = None,
    stream: StreamOption = None,
    deinterlace: DeinterlaceOption = "auto",
    accept_truncated: AcceptTruncatedOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no messages but errors.")] = False,
) -> None:
    """Upscale a video; audio, subtitles and chapters are kept. Same as `vidsr INPUT OUTPUT`."""
    say = console.quiet if quiet else console.inform
    with (
        console.user_errors(),
        console.stop_on_sigterm(),
        progress_bar(enabled=not quiet and console.stderr.is_terminal) as on_progress,
    ):
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
                engine=engine,
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
            stream=stream,
            deinterlace=deinterlace_choice(deinterlace),
            accept_truncated=accept_truncated,
        )
        backend = _backend(cluster, worker_cpus)
        try:
            result = upscale_video(job, on_progress=on_progress, warn=console.warn, inform=say, backend=backend)
        finally:
            backend.close()
    rendered = result.frames - result.frames_resumed
    workers = f" ({result.workers} workers)" if result.workers > 1 else ""
    say(
        f"wrote {result.output}: {_frames(result.frames)} at {result.width}x{result.height} "
        f"with {result.model} on {result.device}{workers}, {result.encoder}; "
        f"{_frames(rendered)} in {result.seconds:.1f} s "
        f"({rendered / max(result.seconds, 1e-9):.2f} fps)"
        + (f", {result.frames_resumed} from the interrupted run" if result.frames_resumed else "")
    )


def _backend(cluster: str | None, worker_cpus: int | None) -> Backend:
    """This process, or a Ray cluster (imported only when asked for: Ray is an optional extra)."""
    if cluster is None:
        if worker_cpus is not None:
            raise SettingsError("--worker-cpus is for --cluster")
        return InProcessBackend()
    from vidsr.render.ray_executor import RayBackend

    return RayBackend(cluster, worker_cpus=worker_cpus)


def _frames(count: int) -> str:
    return "1 frame" if count == 1 else f"{count} frames"
