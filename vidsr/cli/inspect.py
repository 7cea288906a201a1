"""The looking commands: `vidsr frames`, `vidsr image`, `vidsr info`.

Thin commands over :mod:`vidsr.inspect`: its frames, images and info modules.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from vidsr.choices import UpscaleOptions
from vidsr.cli import console
from vidsr.cli.options import (
    AcceptTruncatedOption,
    DeinterlaceOption,
    StreamOption,
    deinterlace_choice,
    upscale_options,
    with_options,
)
from vidsr.errors import SettingsError

if TYPE_CHECKING:
    from rich.table import Table

    from vidsr.inspect import MediaReport, PlannedRender, VideoFacts

__all__ = ["frames", "image", "info"]


@with_options("upscale", upscale_options)
def frames(
    input: Annotated[Path, typer.Argument(help="Any video, an upscaled one included.", show_default=False)],
    outdir: Annotated[Path, typer.Argument(help="Folder for the PNGs (created if needed).", show_default=False)],
    *,
    at: Annotated[
        list[str] | None,
        typer.Option(
            "--at",
            help="A time from the first frame: seconds (75.5), mm:ss (1:15.5) or hh:mm:ss.ms; repeatable. "
            "The frame written is the one on screen then: the last that starts at or before it.",
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        list[int] | None,
        typer.Option("--index", help="A frame number, 0 first; repeatable.", min=0, show_default=False),
    ] = None,
    every: Annotated[str | None, typer.Option(help="A frame every this many seconds (within --start/--end).")] = None,
    count: Annotated[
        int | None, typer.Option(help="This many frames, evenly spread (within --start/--end).", min=1)
    ] = None,
    start: Annotated[str | None, typer.Option(help="Range start; alone with --end: every frame in the range.")] = None,
    end: Annotated[str | None, typer.Option(help="Range end (exclusive); default: the end of the video.")] = None,
    upscaled: Annotated[bool, typer.Option("--upscaled", help="Also write the model's output.")] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="Also write source (bicubic) and model output side by side, labelled.")
    ] = False,
    upscale: UpscaleOptions,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite frames written before.")] = False,
    stream: StreamOption = None,
    deinterlace: DeinterlaceOption = "auto",
    accept_truncated: AcceptTruncatedOption = False,
) -> None:
    """Write chosen frames of a video as PNGs, exactly as decoded (16-bit for 10-bit video);
    with no selection, a handful spread over the video. Found by seeking: fast anywhere in a long file."""

    with console.user_errors():
        deinterlacing = deinterlace_choice(deinterlace)
        with console.loading():
            from vidsr.inspect import FramesJob, Selection, WrittenFrame, extract_frames
            from vidsr.media import parse_time, show_time

            console.tune_process_for_networks()

        def optional_time(text: str | None) -> Fraction | None:
            return parse_time(text) if text is not None else None

        def report(done: WrittenFrame) -> None:
            extras = [path.name for path in (done.upscaled, done.compare) if path is not None]
            console.stderr.print(
                escape(
                    f"frame {done.index} at {show_time(done.seconds)}: {done.source}"
                    + "".join(f", {e}" for e in extras)
                ),
                soft_wrap=True,
            )

        selection = Selection(
            at=tuple(parse_time(text) for text in at or ()),
            index=tuple(index or ()),
            every=optional_time(every),
            count=count,
            start=optional_time(start),
            end=optional_time(end),
        )
        job = FramesJob(
            input=input,
            output_dir=outdir,
            selection=selection,
            upscaled=upscaled,
            compare=compare,
            upscale=upscale,
            force=force,
            stream=stream,
            deinterlace=deinterlacing,
            accept_truncated=accept_truncated,
        )
        written = extract_frames(job, on_frame=report, warn=console.warn)
    console.stderr.print(escape(f"wrote {len(written)} frame(s) to {outdir}"), soft_wrap=True)


@with_options("upscale", upscale_options)
def image(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="INPUT... OUTPUT: images or folders (PNG, JPEG, WebP), then the output.", show_default=False
        ),
    ],
    *,
    upscale: UpscaleOptions,
    format: Annotated[
        str | None, typer.Option("--format", help="png, jpg or webp for an output folder; default png.")
    ] = None,
    transparency: Annotated[
        str, typer.Option(help="Enlarge an alpha channel with the model (edges match the colour) or bicubic (faster).")
    ] = "model",
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
) -> None:
    """Upscale images: one file to one file (format from its name), or files and folders into a
    folder, keeping sub-folders. Alpha, 16-bit PNG and EXIF orientation are kept."""

    with console.user_errors():
        if len(paths) < 2:
            raise SettingsError("give at least one input and an output: vidsr image INPUT... OUTPUT")
        if transparency not in ("model", "bicubic"):
            raise SettingsError(f"--transparency {transparency}: choose model or bicubic")
        with console.loading():
            from vidsr.inspect import ImageJob, ImageResult, upscale_images

            console.tune_process_for_networks()

        def report(result: ImageResult) -> None:
            if result.error:
                console.stderr.print(f"[yellow]failed:[/] {escape(f'{result.source}: {result.error}')}", soft_wrap=True)
            else:
                console.stderr.print(
                    escape(f"{result.source} -> {result.output} ({result.width}x{result.height})"), soft_wrap=True
                )

        job = ImageJob(
            inputs=tuple(paths[:-1]),
            output=paths[-1],
            upscale=upscale,
            force=force,
            format=format,
            transparency=transparency,
        )
        results = upscale_images(job, on_image=report, warn=console.warn)
    console.stderr.print(f"wrote {len(results)} image(s)", soft_wrap=True)


@with_options("upscale", upscale_options)
def info(
    input: Annotated[Path, typer.Argument(help="The video to describe.", show_default=False)],
    *,
    upscale: UpscaleOptions,
    estimate: Annotated[bool, typer.Option(help="Time a few frames through the model for an ETA.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    stream: StreamOption = None,
) -> None:
    """Show the streams (codec, size, frame rate, exact frame count, colour, audio, subtitles)
    and estimate the upscale's time and output size by timing a few real frames."""
    with console.user_errors():
        with console.loading():
            from vidsr.inspect import describe

            console.tune_process_for_networks()
        planned = planned_render(input, upscale, stream) if estimate else None
        report = describe(input, render=planned, stream=stream)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    console.stdout.print(_info_table(report))


def planned_render(input: Path, upscale: UpscaleOptions, stream: int | None) -> PlannedRender:
    """What a render of ``input`` with the default settings would run with, planned by the render
    layer itself (``plan_job``), for `vidsr info`'s estimate: the inspect layer may not import
    the render layer, so the command line, above both, hands the plan over."""
    from vidsr.inspect import PlannedRender
    from vidsr.render import UpscaleJob, plan_job

    job = UpscaleJob(input=input, output=Path(os.devnull), upscale=upscale, stream=stream, accept_truncated=True)
    plan, model = plan_job(job)
    return PlannedRender(
        model=model,
        device=plan.device,
        engine=plan.engine,
        reuse=plan.settings.reuse,
        precision=plan.precision,
        tile=plan.tile.tile,
        batch=plan.batch,
        video=plan.video,
        deinterlace=plan.settings.deinterlace,
        encode=plan.encode,
    )


def _shape(video: VideoFacts) -> str:
    """ "progressive, square pixels" or "interlaced (top field first), pixels 32:27, shown 16:9"."""
    scan = (
        "progressive"
        if not video.interlaced
        else f"interlaced ({_FIELD_ORDERS.get(video.field_order, 'order unknown')})"
    )
    if video.sample_aspect_ratio == "1":
        return f"{scan}, square pixels"
    pixels, shown = (ratio.replace("/", ":") for ratio in (video.sample_aspect_ratio, video.display_aspect_ratio))
    return f"{scan}, pixels {pixels}, shown {shown}"


_FIELD_ORDERS = {"tff": "top field first", "bff": "bottom field first"}


def _info_table(report: MediaReport) -> Table:
    from rich.table import Table

    from vidsr.media import show_time

    video = report.video
    table = Table(title=escape(report.path), show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("container", f"{report.container}, {report.size_bytes / 1e6:.1f} MB, {show_time(report.duration)}")
    rate = "variable" if video.variable else "constant"
    fps = f"{video.frame_rate:.3f} fps ({rate})" if video.frame_rate else rate
    table.add_row(
        f"video #{video.index}",
        f"{video.codec} {video.width}x{video.height} {video.pix_fmt} ({video.bit_depth}-bit), {fps}, "
        f"{video.frames} frames, {show_time(video.duration)}",
    )
    table.add_row("shape", _shape(video))
    if report.truncation:
        table.add_row("[red]truncated[/]", escape(report.truncation))
    for left_out in report.videos_left_out:
        table.add_row("left out", escape(f"{left_out}: not upscaled (--stream N chooses another)"))
    guess = "" if video.colour_tagged else " (untagged: guessed)"
    table.add_row(
        "colour",
        f"{video.matrix}, {video.range} range{guess}; primaries {video.primaries}, transfer {video.transfer}"
        + (f"; rotation {video.rotation}" if video.rotation else ""),
    )
    for audio in report.audio:
        table.add_row(
            f"audio #{audio.index}",
            f"{audio.codec}, {audio.channels} ch, {audio.sample_rate} Hz"
            + (f", {audio.language}" if audio.language else ""),
        )
    for other in report.others:
        table.add_row(f"{other.kind} #{other.index}", other.codec + (f", {other.language}" if other.language else ""))
    if report.chapters:
        table.add_row("chapters", str(report.chapters))
    if report.estimate:
        estimate = report.estimate
        table.add_row("output", f"{estimate.output_width}x{estimate.output_height} with {estimate.model}")
        table.add_row("model", escape("; ".join(filter(None, (estimate.model_description, estimate.model_needs)))))
        table.add_row(
            "estimate",
            f"about {show_time(estimate.seconds)} on {estimate.device} in {estimate.precision}, encoding with "
            f"{estimate.encoder}; an estimate, not a promise",
        )
        table.add_row(
            "timed",
            f"{estimate.seconds_per_frame:.3f} s a frame: the network {estimate.network_seconds_per_frame:.3f} s, "
            f"the encoder's CPU time {100 * estimate.encoder_share:.0f} % of the network's; "
            f"on {estimate.frames_timed} {estimate.timed_on}"
            + (
                f"; with reuse the network does {100 * estimate.network_work:.0f} % of the work of every frame whole "
                f"(measured on {estimate.reuse_frames} frames from the middle)"
                if estimate.reuse_frames
                else ""
            ),
        )
    from vidsr.upscale import describe_vulkan_devices

    table.add_row("vulkan", escape("\n".join(line.removeprefix("Vulkan: ") for line in describe_vulkan_devices())))
    return table
