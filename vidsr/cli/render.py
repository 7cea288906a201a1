"""`vidsr upscale` (and `vidsr INPUT OUTPUT`): the video render, with a progress bar.

:func:`render_options` holds the options of a video render and
:func:`~vidsr.cli.cluster.cluster_options` where it runs, two groups the batch form shares; the
render library (torch, PyAV, Ray) is imported in the command's body, once the options are good.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidsr.choices import UpscaleOptions
from vidsr.cli import console
from vidsr.cli.cluster import ClusterChoice, cluster_options
from vidsr.cli.options import (
    AcceptTruncatedOption,
    DeinterlaceOption,
    QuietOption,
    StreamOption,
    deinterlace_choice,
    upscale_options,
    with_options,
)
from vidsr.defaults import DEFAULT_SEGMENT_SECONDS

if TYPE_CHECKING:
    from vidsr.render import Progress as RenderProgress
    from vidsr.render import UpscaleJob

__all__ = ["JobFor", "QuietOption", "render_options", "upscale"]

JobFor = Callable[[Path, Path], "UpscaleJob"]  # a render's settings, made into the job for an input and an output


@with_options("upscale", upscale_options)
def render_options(
    upscale: UpscaleOptions,
    width: Annotated[
        int | None, typer.Option(help="Output width instead of a scale (the height follows the aspect).")
    ] = None,
    height: Annotated[
        int | None, typer.Option(help="Output height instead of a scale (the width follows the aspect).")
    ] = None,
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
    stream: StreamOption = None,
    deinterlace: DeinterlaceOption = "auto",
    accept_truncated: AcceptTruncatedOption = False,
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse/--no-reuse",
            help="Keep the output of tiles whose source did not change (held drawings, still backgrounds) "
            "instead of computing them again; --no-reuse computes every frame whole.",
        ),
    ] = True,
) -> JobFor:
    """The options of a video render (`vidsr upscale` and the batch form): one parameter and one
    line below per setting of :class:`~vidsr.render.UpscaleJob`."""
    deinterlacing = deinterlace_choice(deinterlace)

    def job_for(input: Path, output: Path) -> UpscaleJob:
        from vidsr.media import EncodeSettings
        from vidsr.render import UpscaleJob

        return UpscaleJob(
            input=input,
            output=output,
            upscale=upscale,
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
            deinterlace=deinterlacing,
            accept_truncated=accept_truncated,
            reuse=reuse,
        )

    return job_for


@contextmanager
def progress_bar(enabled: bool) -> Generator[Callable[[RenderProgress], None], None, None]:
    """A Rich bar on a terminal; nothing at all otherwise (logs stay clean)."""
    if not enabled:
        yield lambda progress: None
        return
    with console.progress_with_eta(
        "upscaling",
        "frames  {task.fields[fps]:.2f} fps",
        "{task.fields[reuse]}",
        "{task.fields[workers]}",
        terminal=console.stderr,
    ) as bar:
        task = bar.add_task("upscale", total=None, fps=0.0, reuse="", workers="")

        def update(progress: RenderProgress) -> None:
            bar.update(
                task,
                completed=progress.frames_done,
                total=progress.frames_total,
                fps=progress.fps,
                reuse=progress.reuse.describe(),
                workers=_workers_text(progress),
            )

        yield update


def _workers_text(progress: RenderProgress) -> str:
    """With a cluster: segments done and what the busy workers are on, "seg 7/30 · s8 40f, s9 12f"."""
    if progress.segments_total < 2 or not progress.workers:
        return ""
    busy = [f"s{a.segment} {a.frames}f" for a in progress.workers if a.segment is not None]
    return f"seg {progress.segments_done}/{progress.segments_total}" + (" · " + ", ".join(busy) if busy else "")


@with_options("job", render_options)
@with_options("where", cluster_options)
def upscale(
    input: Annotated[Path, typer.Argument(help="The video to upscale.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Where to write the result (.mp4, .mkv, .mov).", show_default=False)],
    job: JobFor,
    where: ClusterChoice,
    quiet: QuietOption = False,
) -> None:
    """Upscale a video; audio, subtitles and chapters are kept. Same as `vidsr INPUT OUTPUT`."""
    say = console.quiet if quiet else console.inform
    with console.user_errors(), console.stop_on_sigterm():
        with console.loading():
            from vidsr.render import upscale_video

            console.tune_process_for_networks()
        backend = where.open_backend()
        try:
            with progress_bar(enabled=not quiet and console.stderr.is_terminal) as on_progress:
                result = upscale_video(
                    job(input, output), on_progress=on_progress, warn=console.warn, inform=say, backend=backend
                )
        finally:
            backend.close()
    rendered = result.frames - result.frames_resumed
    workers = f" ({result.workers} workers)" if result.workers > 1 else ""
    say(
        f"wrote {result.output}: {_frames(result.frames)} at {result.width}x{result.height} "
        f"with {result.model} on {result.device}{workers}, {result.encoder}; "
        f"{_frames(rendered)} in {result.seconds:.1f} s "
        f"({rendered / max(result.seconds, 1e-9):.2f} fps"
        + (f", {result.reuse.describe()}" if result.reuse.tiles else "")
        + ")"
        + (f", {result.frames_resumed} from the interrupted run" if result.frames_resumed else "")
    )


def _frames(count: int) -> str:
    return "1 frame" if count == 1 else f"{count} frames"
