"""The one module that wires the stages: probe, decode, upscale, encode, journal, finalize.

    decode thread ──queue──► upscale (this thread, on the device) ──queue──► encode thread
        ─► one file per segment ─► journal ─► finalize (join + audio, subtitles, chapters) ─► rename

The render is cut into segments of a few seconds, each encoded into its own file. A segment
counts once its file is durable and the journal names it, so a render killed at any instant
resumes from its first unfinished segment when the same command runs again.
"""

# Strict typing, less the unknown-type checks: PyAV types add_stream() only in part.
# pyright: reportUnknownMemberType=false

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.error
import av.video.stream

from vidsr import __version__
from vidsr.durable import sync_folder
from vidsr.errors import OutputError, SettingsError, VidsrError
from vidsr.media import (
    EncodeSettings,
    Segmentation,
    VideoInfo,
    VideoWriter,
    count_video_packets,
    decode_batches,
    finalize,
    format_accepts,
    output_pix_fmt,
    pix_fmt_layout,
    probe,
    with_automatic_preset,
)
from vidsr.models import LoadedModel, choose_model
from vidsr.planes import OutputBatch, PlaneLayout
from vidsr.render.journal import JobChangedError, Journal, SegmentRecord, describe_changes, input_fingerprint
from vidsr.render.stages import Prefetcher, Sink
from vidsr.render.workfolder import WorkFolder
from vidsr.upscale import (
    MAX_SCALE,
    MIN_SCALE,
    UpscaleOptions,
    Upscaler,
    VideoPlanes,
    arithmetic_per_output_pixel,
    check_scale,
    choose_precision,
    select_device,
    should_compile,
)

DECODE_QUEUE_BATCHES = 4  # decoded batches waiting for the network
ENCODE_QUEUE_BATCHES = 4  # upscaled batches waiting for the encoder
DEFAULT_SEGMENT_SECONDS = 6.0  # the most work a resume redoes; see bench/segment_cost.py for its cost


@dataclass(frozen=True)
class UpscaleJob:
    """Everything that decides what ``upscale_video`` writes, and how it treats earlier work."""

    input: Path
    output: Path
    upscale: UpscaleOptions = field(default_factory=UpscaleOptions)  # model(s), scale, tile, device, precision
    width: int | None = None  # a target size instead of a scale; one of the two keeps the aspect
    height: int | None = None
    batch: int = 0  # 0: chosen for the device
    compile: bool | None = None  # torch.compile the network; None: when it repays (see should_compile)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    force: bool = False
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    restart: bool = False  # discard an interrupted render of this output instead of resuming it
    keep_work: bool = False  # keep the segment files after the output is written


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int  # an estimate when the container does not store a count
    elapsed: float  # seconds since this run started rendering
    frames_at_start: int = 0  # frames already done by earlier runs

    @property
    def fps(self) -> float:
        rendered = self.frames_done - self.frames_at_start
        return rendered / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class RenderResult:
    output: Path
    frames: int
    frames_resumed: int  # of ``frames``, how many earlier runs had already done
    width: int
    height: int
    seconds: float
    model: str
    device: str
    encoder: str  # codec and preset, e.g. "libx264 veryfast"


class RenderInterrupted(VidsrError):
    """Ctrl-C (or SIGTERM) stopped the render; the message says how to resume."""


ProgressCallback = Callable[[Progress], None]
Notify = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def upscale_video(
    job: UpscaleJob,
    *,
    on_progress: ProgressCallback | None = None,
    warn: Notify = _quiet,
    inform: Notify = _quiet,
) -> RenderResult:
    """Upscale ``job.input`` into ``job.output``, resuming an interrupted render of the same job.

    OUTPUT appears only when complete: it is written under a temporary name beside it and
    renamed into place. Raises VidsrError with a user-facing message.
    """
    check_paths(job.input, job.output, force=job.force)
    check_container(job.output, job.encode.codec)
    if job.segment_seconds <= 0:
        raise SettingsError("--segment-seconds must be more than 0")
    info = probe(job.input)
    model = choose_model(job.upscale.models, job.upscale.alpha)
    pix_fmt = output_pix_fmt(job.encode, info.bit_depth)
    size = plan_output_size(info, model, job, pix_fmt_layout(pix_fmt))
    device = select_device(job.upscale.device)
    precision = choose_precision(job.upscale.precision, device, model, bit_depth=info.bit_depth)
    arithmetic = arithmetic_per_output_pixel(model)
    compile_network = should_compile(
        job.compile,
        device,
        arithmetic=arithmetic,
        output_pixels=size[0] * size[1],
        frames=info.frames,
        tile=job.upscale.tile,
    )
    job = replace(job, encode=with_automatic_preset(job.encode, arithmetic), compile=compile_network)
    video = VideoPlanes(
        source_colour=info.colour, output_size=size, output_colour=info.colour, output_layout=pix_fmt_layout(pix_fmt)
    )
    description = describe_job(job, info, model, precision, pix_fmt, size)

    work = WorkFolder(job.output)
    work_existed = work.exists()
    work.acquire()
    journal: Journal | None = None
    partial = partial_path(job.output)
    started = time.perf_counter()
    try:
        journal = open_journal(work, description, restart=job.restart, inform=inform, info=info)
        frames_resumed = journal.frames_done
        if not journal.complete:
            upscaler = Upscaler(
                model,
                device=device,
                precision=precision,
                tile=job.upscale.tile,
                video=video,
                compile=compile_network,
                warn=warn,
            )
            if compile_network:
                inform("compiling the network for this machine (half a minute the first time, then cached)")
            _warn_about_extra_passes(upscaler, info, size, warn)
            _render(info, upscaler, video, job, pix_fmt, work, journal, on_progress, started)
        finalize([work.path / s.file for s in journal.segments], info, partial, warn=warn)
        check_complete(partial, journal.frames_done)
        os.replace(partial, job.output)
        sync_folder(job.output.parent)
    except KeyboardInterrupt:
        raise RenderInterrupted(_interrupted_message(job, journal, info)) from None
    except BaseException:
        if not work_existed and (journal is None or not journal.segments):
            work.remove()  # nothing worth resuming: leave no trace
        raise
    finally:
        partial.unlink(missing_ok=True)
        work.release()
    if not job.keep_work:
        work.remove()
    return RenderResult(
        output=job.output,
        frames=journal.frames_done,
        frames_resumed=frames_resumed,
        width=size[0],
        height=size[1],
        seconds=time.perf_counter() - started,
        model=model.name,
        device=device.type,
        encoder=f"{job.encode.codec} {job.encode.preset}",
    )


def describe_job(
    job: UpscaleJob, info: VideoInfo, model: LoadedModel, precision: str, pix_fmt: str, size: tuple[int, int]
) -> dict[str, Any]:
    """Everything that changes the output: a resume must match it exactly."""
    colour = info.colour
    return {
        "input": input_fingerprint(info),
        "model": {"name": model.name, "sha256": model.content_hash},
        "settings": {
            "size": f"{size[0]}x{size[1]}",
            "tile": job.upscale.tile,
            "codec": job.encode.codec,
            "crf": job.encode.crf,
            "preset": job.encode.preset,
            "pix_fmt": pix_fmt,
            "precision": precision,
            "compiled": job.compile,
            "colour": f"{colour.matrix} {'full' if colour.full_range else 'limited'}",
            "segment_seconds": str(Fraction(job.segment_seconds).limit_denominator(1000)),
            "vidsr": __version__,
        },
    }


def open_journal(
    work: WorkFolder, description: dict[str, Any], *, restart: bool, inform: Notify, info: VideoInfo
) -> Journal:
    """The journal to continue: the recorded one if it is of this job, a new one otherwise."""
    journal = None if restart else work.read_journal()
    if restart:
        work.clear()
    if journal is not None and journal.job != description:
        changes = "; ".join(describe_changes(journal.job, description))
        raise JobChangedError(
            f"{work.output} has an interrupted render of a different job ({changes}); "
            "run it with the earlier input and settings to resume, or add --restart to start over"
        )
    journal = journal or Journal(job=description)
    _drop_missing_segments(work, journal, inform)
    stray = work.discard_unrecorded(journal)
    if journal.segments:
        total = max(info.frames, journal.frames_done)
        inform(
            f"resuming at frame {journal.frames_done} of {total} ({100 * journal.frames_done / total:.0f} %), "
            f"{_count(len(journal.segments), 'segment')} done"
            + (f"; discarded {len(stray)} unfinished segment file(s)" if stray else "")
        )
    work.write_journal(journal)
    return journal


def _drop_missing_segments(work: WorkFolder, journal: Journal, inform: Notify) -> None:
    """Forget recorded segments whose files are gone or damaged, and everything after them."""
    for position, segment in enumerate(journal.segments):
        path = work.path / segment.file
        if not path.is_file() or path.stat().st_size != segment.size:
            inform(f"segment {segment.index} is missing or damaged; redoing from there")
            del journal.segments[position:]
            journal.complete = False
            return


def _interrupted_message(job: UpscaleJob, journal: Journal | None, info: VideoInfo) -> str:
    if journal is None or not journal.segments:
        return "interrupted before the first segment was finished; nothing to resume"
    return (
        f"interrupted after frame {journal.frames_done} of {max(info.frames, journal.frames_done)} "
        f"({_count(len(journal.segments), 'segment')} kept); run the same command again to resume"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _render(
    info: VideoInfo,
    upscaler: Upscaler,
    video: VideoPlanes,
    job: UpscaleJob,
    pix_fmt: str,
    work: WorkFolder,
    journal: Journal,
    on_progress: ProgressCallback | None,
    started: float,
) -> None:
    """Run decode → upscale → encode for every segment the journal does not have yet."""

    def open_writer(path: Path) -> VideoWriter:
        return VideoWriter(
            path,
            width=video.output_size[0],
            height=video.output_size[1],
            time_base=info.time_base,
            frame_rate=info.frame_rate,
            settings=job.encode,
            pix_fmt=pix_fmt,
            colour=video.output_colour,
        )

    segmentation = Segmentation(
        start_pts=info.start_pts,
        time_base=info.time_base,
        seconds=Fraction(job.segment_seconds).limit_denominator(1000),
    )
    batches = decode_batches(
        info,
        batch_size=job.batch or default_batch(upscaler.device.type),
        segmentation=segmentation,
        first_segment=journal.next_segment,
        first_index=journal.frames_done,
    )
    decoded = Prefetcher(batches, depth=DECODE_QUEUE_BATCHES, name="vidsr-decode")
    segments = SegmentWriter(work, journal, open_writer)
    encoder = Sink(segments.write, depth=ENCODE_QUEUE_BATCHES, name="vidsr-encode")
    frames_at_start = frames_done = journal.frames_done
    try:
        for batch in decoded:
            encoder.put(upscaler.upscale(batch))
            frames_done += len(batch)
            if on_progress is not None:
                total = max(info.frames, frames_done)
                on_progress(Progress(frames_done, total, time.perf_counter() - started, frames_at_start))
        encoder.finish()
        segments.finish()
    except BaseException:
        encoder.abort()
        segments.abort()
        raise
    finally:
        decoded.close()
    if journal.frames_done == 0:
        raise OutputError(f"{info.path}: no video frame could be decoded")


class SegmentWriter:
    """Encodes each segment into its own file; a finished one is made durable, then journaled.

    Runs in the encode thread. The order of a commit is what makes a kill at any instant safe:
    encoder flushed → file fsynced and renamed → journal replaced atomically.
    """

    def __init__(self, work: WorkFolder, journal: Journal, open_writer: Callable[[Path], VideoWriter]) -> None:
        self.work = work
        self.journal = journal
        self.open_writer = open_writer
        self.writer: VideoWriter | None = None
        self.index = -1
        self.pts: list[int] = []

    def write(self, batch: OutputBatch) -> None:
        if self.writer is not None and batch.segment != self.index:
            self._commit()
        if self.writer is None:
            self.index = batch.segment
            self.pts = []
            self.writer = self.open_writer(self.work.in_progress_path(self.index))
        self.writer.write(batch)
        self.pts.extend(batch.pts)
        _test_kill_point("frame", batch.first_index)

    def finish(self) -> None:
        if self.writer is not None:
            self._commit()
        self.journal.complete = True
        self.work.write_journal(self.journal)

    def abort(self) -> None:
        """Stop without committing; the unfinished segment file is discarded by the next run."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

    def _commit(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        path = self.work.commit_segment(self.index)
        _test_kill_point("segment-committed", self.index)
        record = SegmentRecord(
            index=self.index,
            file=path.name,
            frames=len(self.pts),
            first_pts=self.pts[0],
            last_pts=self.pts[-1],
            size=path.stat().st_size,
        )
        self.journal.segments.append(record)
        self.work.write_journal(self.journal)
        _test_kill_point("journal-written", self.index)


def _test_kill_point(name: str, segment: int) -> None:
    """Tests kill vidsr at exact points: VIDSR_TEST_KILL_AT=segment-committed:2 (a segment file is
    durable but not journaled), journal-written:2, or frame:30 (mid-segment, after encoding the
    batch that starts at frame 30)."""
    if os.environ.get("VIDSR_TEST_KILL_AT") == f"{name}:{segment}":
        os.kill(os.getpid(), signal.SIGKILL)


def check_complete(output: Path, frames: int) -> None:
    """Read back what was written before it takes the output's name: a short file never does."""
    written = count_video_packets(output)
    if written != frames:
        raise OutputError(f"{output} holds {written} of {frames} frames after writing; is the disk full?")


def default_batch(device_type: str) -> int:
    """Frames per network call: one on the CPU, where bigger batches are no faster (bench/speed.py:
    12.9, 12.8 and 12.6 fps at batch 1, 2 and 4 for realesr-animevideov3), more on a GPU."""
    return 4 if device_type == "cuda" else 1


def plan_output_size(info: VideoInfo, model: LoadedModel, job: UpscaleJob, layout: PlaneLayout) -> tuple[int, int]:
    """The output frame size from --scale or --width/--height, rounded to what the pixel
    format can hold (even sizes for 4:2:0)."""
    if job.upscale.scale is not None and (job.width or job.height):
        raise SettingsError("--scale and --width/--height both set the size: choose one")
    if job.width or job.height:
        width, height = _fill_in_aspect(job.width, job.height, info.width / info.height)
    else:
        scale = check_scale(job.upscale.scale) if job.upscale.scale is not None else float(model.scale)
        width, height = round(info.width * scale), round(info.height * scale)
    shift_x, shift_y = layout.chroma_shift
    width, height = _round_up(width, 1 << shift_x), _round_up(height, 1 << shift_y)
    effective = max(width / info.width, height / info.height)
    if not MIN_SCALE <= effective <= MAX_SCALE:
        raise SettingsError(
            f"{width}x{height} is x{effective:.2f} of {info.width}x{info.height}; "
            f"vidsr enlarges from x{MIN_SCALE:g} to x{MAX_SCALE:g}"
        )
    return width, height


def _fill_in_aspect(width: int | None, height: int | None, aspect: float) -> tuple[int, int]:
    """(width, height) with the one not given (None or 0) following ``aspect`` (width / height)."""
    if width and height:
        return width, height
    if width:
        return width, round(width / aspect)
    if height:
        return round(height * aspect), height
    raise ValueError("give a width, a height or both")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _warn_about_extra_passes(upscaler: Upscaler, info: VideoInfo, size: tuple[int, int], warn: Notify) -> None:
    passes = upscaler.passes_for(max(size[0] / info.width, size[1] / info.height))
    if passes > 1:
        native = upscaler.model.scale
        work = sum(native ** (2 * n) for n in range(passes))
        warn(
            f"{size[0]}x{size[1]} is beyond {upscaler.model.name}'s x{native}: it runs {passes} times per frame, "
            f"the later passes on the enlarged frames (about {work}x the work of one pass)"
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
        raise OutputError(
            f"output {output}: FFmpeg knows no container for '{output.suffix}' (try .mp4 or .mkv)"
        ) from None
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    format_name = container.format.name
    container.close()
    probe_path.unlink(missing_ok=True)

    def add_video(probe: av.container.OutputContainer) -> None:
        stream = probe.add_stream(codec_name, rate=24)
        if not isinstance(stream, av.video.stream.VideoStream):
            raise ValueError(f"{codec_name} is not a video codec")
        stream.width, stream.height = 64, 64

    if not format_accepts(format_name, add_video):
        raise SettingsError(
            f"a {output.suffix} file cannot hold {codec_name} video; choose another --codec or extension"
        )


def partial_path(output: Path) -> Path:
    """The temporary name the output is written under; it keeps the extension FFmpeg reads."""
    return output.with_name(f".{output.stem}.partial{output.suffix}")
