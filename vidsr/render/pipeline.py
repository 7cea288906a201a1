"""The render of a video, driven from here: plan, journal, segments, finalize.

    plan_job ─► journal: which segments are finished ─► executor: render the missing ones
        ─► each finished segment: bytes made durable, then journaled
        ─► finalize (join + audio, subtitles, chapters) ─► check ─► rename

The render is cut into segments of a few seconds, each encoded into its own file. A segment
counts once its file is durable and the journal names it, so a render stopped at any instant
(Ctrl-C, a crash, kill -9, a power cut, a lost cluster worker) resumes with exactly the missing
segments when the same command runs again. This process is the journal's only writer; the
segments may be rendered here or on the workers of a cluster.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vidsr.durable import sync_file, sync_folder
from vidsr.errors import OutputError, PrecisionOverflow, RenderInterrupted
from vidsr.media import check_encode_settings, finalize
from vidsr.models import LoadedModel
from vidsr.render.executor import Activity, Backend, Executor, InProcessBackend
from vidsr.render.journal import Journal
from vidsr.render.output import check_complete, check_container, check_paths, partial_path
from vidsr.render.plan import DEFAULT_SEGMENT_SECONDS, RenderPlan, UpscaleJob, plan_job
from vidsr.render.resume import interrupted_message, open_job, recorded_choices
from vidsr.render.segments import RenderedSegment
from vidsr.render.testpoints import kill_point, pause_point
from vidsr.render.workfolder import WorkFolder
from vidsr.upscale import ReuseCount

__all__ = [
    "DEFAULT_SEGMENT_SECONDS",
    "Progress",
    "RenderInterrupted",
    "RenderResult",
    "UpscaleJob",
    "upscale_video",
]


@dataclass(frozen=True)
class Progress:
    frames_done: int  # finished segments' frames, and those of segments in flight so far
    frames_total: int  # an estimate when the container does not store a count
    elapsed: float  # seconds since this run started rendering
    frames_at_start: int = 0  # frames already done by earlier runs
    segments_done: int = 0
    segments_total: int = 0
    workers: tuple[Activity, ...] = ()  # what each worker is on, where the backend says
    reuse: ReuseCount = ReuseCount()  # network work saved by reuse in this run (nothing counted when off)

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
    workers: int = 1
    reuse: ReuseCount = ReuseCount()  # network work saved by reuse in this run (nothing counted when off)


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
    backend: Backend | None = None,
    on_all_submitted: Callable[[], None] | None = None,
) -> RenderResult:
    """Upscale ``job.input`` into ``job.output``, resuming an interrupted render of the same job.

    OUTPUT appears only when complete: it is written under a temporary name beside it, made
    durable and renamed into place. Raises VidsrError with a user-facing message.
    ``on_all_submitted`` hears once that every missing segment is with the executor (a batch
    starts its next file then, so the workers it leaves idle get work).
    """
    backend = backend or InProcessBackend()
    check_paths(job.input, job.output, force=job.force)
    check_container(job.output, job.encode.codec)
    check_encode_settings(job.encode)
    work = WorkFolder(job.output)
    workers = backend.worker_device(job.upscale.device)
    kept = recorded_choices(work, restart=job.restart)  # an interrupted run's machine choices are kept
    plan, model = plan_job(
        job, device=workers.type, native_bf16=workers.native_bf16, kept=kept, choose_elsewhere=workers.choose
    )
    _say_what_the_plan_changes(plan, model, warn, inform)

    pause_point("planned")
    work.acquire()  # from here on this process owns OUTPUT's work folder and temporary name
    work_existed = work.has_journal()
    try:
        check_paths(job.input, job.output, force=job.force)  # again: another vidsr may have finished it meanwhile
    except BaseException:
        work.remove() if not work_existed else work.release()
        raise
    pause_point("locked")
    journal: Journal | None = None
    partial = partial_path(job.output)
    started = time.perf_counter()
    frames_resumed, worker_count = 0, 1
    tracker: _ProgressTracker | None = None
    try:
        journal = open_job(work, plan, restart=job.restart, inform=inform)
        frames_resumed = journal.frames_done
        if not journal.complete:
            if plan.settings.compiled:
                inform("compiling the network for this machine (half a minute the first time, then cached)")
            tracker = _ProgressTracker(plan, journal, started, on_progress)
            executor = backend.executor(plan, model, warn=warn, on_activity=tracker.activity)
            worker_count = executor.workers
            try:
                render_missing(executor, work, journal, tracker, on_all_submitted)
            except BaseException:
                executor.cancel_all()
                raise
            finally:
                executor.close()
        if journal.frames_done == 0:
            raise OutputError(f"{plan.info.path}: no video frame could be decoded")
        parts = [work.path / s.file for s in journal.segments if s.file is not None]
        pause_point("finalizing")
        finalize(parts, plan.info, partial, warn=warn, sample_aspect_ratio=plan.settings.sample_aspect_ratio)
        check_complete(partial, journal.frames_done)
        sync_file(partial)  # its data on disk before the rename that the work folder's removal follows
        os.replace(partial, job.output)
        sync_folder(job.output.parent)
    except KeyboardInterrupt:
        raise RenderInterrupted(interrupted_message(journal, plan)) from None
    except BaseException as error:
        if not work_existed and (journal is None or not journal.segments):
            work.remove()  # nothing worth resuming: leave no trace
        if isinstance(error, PrecisionOverflow) and journal is not None and journal.segments:
            raise _restart_in_fp32(error, plan, len(journal.segments)) from None
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
        width=plan.settings.size[0],
        height=plan.settings.size[1],
        seconds=time.perf_counter() - started,
        model=plan.model.name,
        device=plan.device if plan.engine == "torch" else f"{plan.device} (ncnn)",
        encoder=f"{plan.settings.codec} {plan.settings.preset}",
        workers=worker_count,
        reuse=tracker.reuse_done if tracker is not None else ReuseCount(),
    )


def render_missing(
    executor: Executor,
    work: WorkFolder,
    journal: Journal,
    tracker: _ProgressTracker,
    on_all_submitted: Callable[[], None] | None = None,
) -> None:
    """Render every segment the journal lacks, as many at a time as the executor has room for, and
    commit each as it comes back, in any order. A segment found empty with a run of empty ones
    after it finishes those too, so they are never submitted. ``on_all_submitted`` is called once,
    when nothing is left to submit."""
    waiting = deque(journal.missing)
    while waiting or executor.pending():
        while waiting and executor.pending() < executor.capacity:
            index = waiting.popleft()
            if index not in journal.done:
                executor.submit(index)
        if not waiting and on_all_submitted is not None:
            on_all_submitted()
            on_all_submitted = None
        if not executor.pending():
            continue
        for segment in executor.wait_any():
            commit_segment(work, journal, segment)
            tracker.segment_done(segment)
        done = journal.done
        waiting = deque(index for index in waiting if index not in done)


def commit_segment(work: WorkFolder, journal: Journal, segment: RenderedSegment) -> None:
    """Make a finished segment durable, then record it: a kill between the two loses only it."""
    record = segment.record
    if record.file is not None:
        work.commit_segment(record.index, segment.data)
    kill_point(f"segment-committed:{record.index}")
    journal.record(record)
    work.write_journal(journal)
    kill_point(f"journal-written:{record.index}")


@dataclass
class _ProgressTracker:
    """Frames done: those of the journaled segments plus what the workers report of theirs."""

    plan: RenderPlan
    journal: Journal
    started: float
    on_progress: ProgressCallback | None
    frames_at_start: int = 0
    in_flight: dict[str, Activity] = field(default_factory=dict[str, Activity])
    reuse_done: ReuseCount = ReuseCount()  # of the segments finished in this run

    def __post_init__(self) -> None:
        self.frames_at_start = self.journal.frames_done

    def activity(self, activity: Activity) -> None:
        self.in_flight[activity.worker] = activity
        self._report()

    def segment_done(self, segment: RenderedSegment) -> None:
        self.reuse_done += segment.reuse
        for worker, activity in list(self.in_flight.items()):
            if activity.segment == segment.record.index:
                self.in_flight[worker] = Activity(worker, None, 0)
        self._report()

    def _report(self) -> None:
        if self.on_progress is None:
            return
        busy = [a for a in self.in_flight.values() if a.segment is not None]
        flying = sum(a.frames for a in busy)
        reuse = self.reuse_done
        for activity in busy:
            reuse += activity.reuse
        done = self.journal.frames_done + flying
        self.on_progress(
            Progress(
                frames_done=done,
                frames_total=max(self.plan.info.frames, done),
                elapsed=time.perf_counter() - self.started,
                frames_at_start=self.frames_at_start,
                segments_done=len(self.journal.done),
                segments_total=self.journal.segment_count,
                workers=tuple(self.in_flight.values()),
                reuse=reuse,
            )
        )


def _restart_in_fp32(error: PrecisionOverflow, plan: RenderPlan, done: int) -> PrecisionOverflow:
    """The overflow's way out, where the journal keeps segments made in the precision that
    overflowed: a resume keeps a render's precision, so fp32 means starting over."""
    return PrecisionOverflow(
        f"{error} --restart (the {done} segment{'s' * (done != 1)} done were made in {plan.precision})"
    )


def _say_what_the_plan_changes(plan: RenderPlan, model: LoadedModel, warn: Notify, inform: Notify) -> None:
    """Nothing the user did not ask for happens in silence: left-out streams, a cut-off input,
    deinterlacing, extra network passes."""
    info = plan.info
    for video in info.videos_left_out:
        warn(f"{video.describe()} is left out of the output: only stream {info.video_index} is upscaled (--stream N)")
    if info.truncation is not None:
        warn(info.truncation.warning())
    if plan.settings.deinterlace:
        order = {"tff": "top field first", "bff": "bottom field first"}.get(info.field_order, "field order unknown")
        inform(
            f"the input is interlaced ({order}): deinterlacing it before upscaling (--no-deinterlace keeps the fields)"
        )
    elif info.interlaced:
        warn("the input is interlaced and --no-deinterlace was given: the network sees combed frames")
    _warn_about_extra_passes(plan, model, warn)
    if plan.tile.message:  # frames tiled to fit the memory, or as an interrupted run cut them
        (inform if plan.tile.source == "kept" else warn)(plan.tile.message)
    if plan.engine_reason:  # --engine auto measured, or kept an interrupted run's choice
        inform(f"running {plan.engine} on {plan.device}: {plan.engine_reason}")


def _warn_about_extra_passes(plan: RenderPlan, model: LoadedModel, warn: Notify) -> None:
    passes = plan.network_passes(model.scale)
    if passes > 1:
        native = model.scale
        work = sum(native ** (2 * n) for n in range(passes))
        warn(
            f"{plan.settings.size[0]}x{plan.settings.size[1]} is beyond {model.name}'s x{native}: "
            f"it runs {passes} times per frame, "
            f"the later passes on the enlarged frames (about {work}x the work of one pass)"
        )
