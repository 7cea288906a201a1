"""The one module that wires the stages: probe, decode, upscale, encode, finalize.

    decode thread ──queue──► upscale (this thread, on the device) ──queue──► encode thread
        ─► work file ─► finalize (stream copy + audio, subtitles, chapters) ─► atomic rename
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error

from vidsr.decode import decode_batches
from vidsr.encode import EncodeSettings, VideoWriter, output_pix_fmt, pix_fmt_layout
from vidsr.errors import OutputError, SettingsError
from vidsr.loader import LoadedModel
from vidsr.probe import VideoInfo, probe
from vidsr.remux import count_video_packets, finalize, format_accepts
from vidsr.stages import Prefetcher, Sink
from vidsr.upscale import Upscaler, default_precision, select_device
from vidsr.zoo import DEFAULT_MODEL, resolve_model

DECODE_QUEUE_BATCHES = 4  # decoded batches waiting for the network
ENCODE_QUEUE_BATCHES = 4  # upscaled batches waiting for the encoder


@dataclass(frozen=True)
class UpscaleJob:
    """Everything that decides what ``upscale_video`` writes."""

    input: Path
    output: Path
    model: str = DEFAULT_MODEL
    scale: int | None = None  # None: the model's native scale
    device: str = "auto"
    batch: int = 0  # 0: chosen for the device
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    force: bool = False


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int  # an estimate when the container does not store a count
    elapsed: float

    @property
    def fps(self) -> float:
        return self.frames_done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class RenderResult:
    output: Path
    frames: int
    width: int
    height: int
    seconds: float
    model: str
    device: str


ProgressCallback = Callable[[Progress], None]
Warn = Callable[[str], None]


def upscale_video(
    job: UpscaleJob,
    *,
    on_progress: ProgressCallback | None = None,
    warn: Warn = lambda message: None,
) -> RenderResult:
    """Upscale ``job.input`` into ``job.output``; raises VidsrError with a user-facing message.

    OUTPUT appears only when complete: it is written under a temporary name beside it
    and renamed into place.
    """
    check_paths(job.input, job.output, force=job.force)
    check_container(job.output, job.encode.codec)
    info = probe(job.input)
    model = resolve_model(job.model)
    check_scale(job.scale, model)
    device = select_device(job.device)
    pix_fmt = output_pix_fmt(job.encode, info.bit_depth)
    upscaler = Upscaler(
        model,
        device=device,
        precision=default_precision(device, model),
        source_colour=info.colour,
        output_colour=info.colour,
        output_layout=pix_fmt_layout(pix_fmt),
    )
    work = work_folder(job.output)
    partial = partial_path(job.output)
    started = time.perf_counter()
    try:
        work.mkdir(parents=True, exist_ok=True)
        video_part = work / "video.nut"
        frames = _render(info, upscaler, job, pix_fmt, video_part, on_progress, started)
        finalize([video_part], info, partial, warn=warn)
        check_complete(partial, frames)
        os.replace(partial, job.output)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return RenderResult(
        output=job.output,
        frames=frames,
        width=info.width * model.scale,
        height=info.height * model.scale,
        seconds=time.perf_counter() - started,
        model=model.name,
        device=device.type,
    )


def _render(
    info: VideoInfo,
    upscaler: Upscaler,
    job: UpscaleJob,
    pix_fmt: str,
    video_part: Path,
    on_progress: ProgressCallback | None,
    started: float,
) -> int:
    """Run decode → upscale → encode into ``video_part``; returns the number of frames."""
    writer = VideoWriter(
        video_part,
        width=info.width * upscaler.scale,
        height=info.height * upscaler.scale,
        time_base=info.time_base,
        frame_rate=info.frame_rate,
        settings=job.encode,
        pix_fmt=pix_fmt,
        colour=upscaler.output_colour,
    )
    batch_size = job.batch or default_batch(upscaler.device.type)
    decoded = Prefetcher(decode_batches(info, batch_size=batch_size), depth=DECODE_QUEUE_BATCHES, name="vidsr-decode")
    encoder = Sink(writer.write, depth=ENCODE_QUEUE_BATCHES, name="vidsr-encode")
    frames_done = 0
    try:
        for batch in decoded:
            encoder.put(upscaler.upscale(batch))
            frames_done += len(batch)
            if on_progress is not None:
                total = max(info.frames, frames_done)
                on_progress(Progress(frames_done, total, time.perf_counter() - started))
        encoder.finish()
        writer.close()
    except BaseException:
        encoder.abort()
        writer.abort()
        raise
    finally:
        decoded.close()
    if frames_done == 0:
        raise OutputError(f"{info.path}: no video frame could be decoded")
    return frames_done


def check_complete(output: Path, frames: int) -> None:
    """Read back what was written before it takes the output's name: a short file never does."""
    written = count_video_packets(output)
    if written != frames:
        raise OutputError(f"{output} holds {written} of {frames} frames after writing; is the disk full?")


def default_batch(device_type: str) -> int:
    """Frames per network call: one on the CPU (bigger batches only thrash its caches), more on a GPU."""
    return 4 if device_type == "cuda" else 1


def check_scale(scale: int | None, model: LoadedModel) -> None:
    if scale is not None and scale != model.scale:
        raise SettingsError(
            f"--scale {scale}: {model.name} upscales x{model.scale} only; "
            f"choose a x{scale} model or leave --scale out"
        )


def check_paths(source: Path, output: Path, *, force: bool) -> None:
    """Refuse, before any work, an output that would overwrite the input or an existing file."""
    if output.exists() or output.is_symlink():
        if source.exists() and output.exists() and os.path.samefile(source, output):
            raise OutputError(f"output {output} is the input file; choose another name")
        if output.is_dir():
            raise OutputError(f"output {output} is a folder; give a file name such as {output / 'upscaled.mp4'}")
        if not force:
            raise OutputError(f"output {output} already exists; use --force to overwrite it")
    elif source.resolve() == output.resolve():
        raise OutputError(f"output {output} is the input file; choose another name")
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")
    if not output.suffix:
        raise OutputError(f"output {output} has no extension; vidsr picks the container from it (.mp4, .mkv, .mov)")


def check_container(output: Path, codec_name: str) -> None:
    """Refuse, before any work, an output extension FFmpeg has no muxer for, or one that
    cannot hold the chosen video codec."""
    probe_path = partial_path(output)
    try:
        container = av.open(str(probe_path), mode="w")
    except (ValueError, av.error.FFmpegError):
        raise OutputError(f"output {output}: FFmpeg knows no container for '{output.suffix}' (try .mp4 or .mkv)") from None
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    format_name = container.format.name
    container.close()
    probe_path.unlink(missing_ok=True)

    def add_video(probe: av.container.OutputContainer) -> None:
        stream = probe.add_stream(codec_name, rate=24)
        stream.width, stream.height = 64, 64

    if not format_accepts(format_name, add_video):
        raise SettingsError(f"a {output.suffix} file cannot hold {codec_name} video; choose another --codec or extension")


def work_folder(output: Path) -> Path:
    """Where a render keeps its encoded work files: a hidden folder beside the output."""
    return output.with_name(f".{output.name}.vidsr")


def partial_path(output: Path) -> Path:
    """The temporary name the output is written under; it keeps the extension FFmpeg reads."""
    return output.with_name(f".{output.stem}.partial{output.suffix}")
