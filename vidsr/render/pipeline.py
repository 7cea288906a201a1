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
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidsr.durable import sync_folder
from vidsr.errors import OutputError, VidsrError
from vidsr.media import check_encode_settings, finalize
from vidsr.models import LoadedModel
from vidsr.render.executor import Activity, Executor, InProcessExecutor
from vidsr.render.journal import JobChangedError, Journal, describe_changes
from vidsr.render.output import check_complete, check_container, check_paths, partial_path
from vidsr.render.plan import CHOSEN, DEFAULT_SEGMENT_SECONDS, STACK, RenderPlan, UpscaleJob, plan_job
from vidsr.render.segments import RenderedSegment
from vidsr.render.workfolder import WorkFolder

__all__ = [
    "DEFAULT_SEGMENT_SECONDS",
    "Backend",
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


class RenderInterrupted(VidsrError):
    """Ctrl-C (or SIGTERM) stopped the render; the message says how to resume."""


ProgressCallback = Callable[[Progress], None]
Notify = Callable[[str], None]
ActivityCallback = Callable[[Activity], None]


class Backend:
    """Where segments are rendered: this process. A cluster backend (``vidsr.render.ray_executor``)
    says which device its workers have, and hands out an executor that uses them."""

    name = "this process"

    def worker_device(self, requested: str) -> tuple[str | None, bool | None]:
        """The workers' device type and whether their CPUs have native bf16 (None: as this
        process would choose for ``--device requested``)."""
        return None, None

    def executor(
        self, plan: RenderPlan, model: LoadedModel, *, warn: Notify, on_activity: ActivityCallback
    ) -> Executor:
        return InProcessExecutor(plan, model, warn=warn, on_activity=on_activity)

    def close(self) -> None:
        """Let go of what the backend holds (a cluster connection it started)."""


def _quiet(message: str) -> None:
    pass


def upscale_video(
    job: UpscaleJob,
    *,
    on_progress: ProgressCallback | None = None,
    warn: Notify = _quiet,
    inform: Notify = _quiet,
    backend: Backend | None = None,
) -> RenderResult:
    """Upscale ``job.input`` into ``job.output``, resuming an interrupted render of the same job.

    OUTPUT appears only when complete: it is written under a temporary name beside it and
    renamed into place. Raises VidsrError with a user-facing message.
    """
    backend = backend or Backend()
    check_paths(job.input, job.output, force=job.force)
    check_container(job.output, job.encode.codec)
    check_encode_settings(job.encode)
    device, native_bf16 = backend.worker_device(job.upscale.device)
    plan, model = plan_job(job, device=device, native_bf16=native_bf16)
    _say_what_the_plan_changes(plan, model, warn, inform)

    _test_pause_point("planned")
    work = WorkFolder(job.output)
    work.acquire()  # from here on this process owns OUTPUT's work folder and temporary name
    work_existed = work.has_journal()
    try:
        check_paths(job.input, job.output, force=job.force)  # again: another vidsr may have finished it meanwhile
    except BaseException:
        work.remove() if not work_existed else work.release()
        raise
    _test_pause_point("locked")
    journal: Journal | None = None
    partial = partial_path(job.output)
    started = time.perf_counter()
    workers = 1
    try:
        journal = open_journal(work, plan, restart=job.restart, inform=inform)
        plan = keep_what_was_chosen(plan, journal, inform)
        if plan.tile_message:
            warn(plan.tile_message)
        frames_resumed = journal.frames_done
        if not journal.complete:
            if plan.compile:
                inform("compiling the network for this machine (half a minute the first time, then cached)")
            tracker = _ProgressTracker(plan, journal, started, on_progress)
            executor = backend.executor(plan, model, warn=warn, on_activity=tracker.activity)
            workers = executor.workers
            try:
                render_missing(executor, work, journal, tracker)
            except BaseException:
                executor.cancel_all()
                raise
            finally:
                executor.close()
        if journal.frames_done == 0:
            raise OutputError(f"{plan.info.path}: no video frame could be decoded")
        parts = [work.path / s.file for s in journal.segments if s.file is not None]
        _test_pause_point("finalizing")
        finalize(parts, plan.info, partial, warn=warn, sample_aspect_ratio=plan.sample_aspect_ratio)
        check_complete(partial, journal.frames_done)
        os.replace(partial, job.output)
        sync_folder(job.output.parent)
    except KeyboardInterrupt:
        raise RenderInterrupted(_interrupted_message(journal, plan)) from None
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
        width=plan.size[0],
        height=plan.size[1],
        seconds=time.perf_counter() - started,
        model=plan.model_name,
        device=plan.device,
        encoder=f"{plan.encode.codec} {plan.encode.preset}",
        workers=workers,
    )


def render_missing(executor: Executor, work: WorkFolder, journal: Journal, tracker: _ProgressTracker) -> None:
    """Submit every segment the journal lacks; commit each as it comes back, in any order."""
    for index in journal.missing:
        executor.submit(index)
    while executor.pending():
        for segment in executor.wait_any():
            commit_segment(work, journal, segment)
            tracker.segment_done(segment)


def commit_segment(work: WorkFolder, journal: Journal, segment: RenderedSegment) -> None:
    """Make a finished segment durable, then record it: a kill between the two loses only it."""
    record = segment.record
    if record.file is not None:
        work.commit_segment(record.index, segment.data)
    _test_kill_point("segment-committed", record.index)
    journal.record(record)
    work.write_journal(journal)
    _test_kill_point("journal-written", record.index)


def _test_pause_point(name: str) -> None:
    """Tests hold vidsr at a named point to race a second one against it: with
    VIDSR_TEST_PAUSE_AT=locked:/some/file it creates /some/file.reached there and waits for /some/file."""
    point, _, release = os.environ.get("VIDSR_TEST_PAUSE_AT", "").partition(":")
    if point != name or not release:
        return
    Path(f"{release}.reached").touch()
    deadline = time.monotonic() + 120
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _test_kill_point(name: str, segment: int) -> None:
    """Tests kill vidsr at exact points: VIDSR_TEST_KILL_AT=segment-committed:2 (a segment file is
    durable but not journaled) or journal-written:2; see also vidsr.render.segments."""
    if os.environ.get("VIDSR_TEST_KILL_AT") == f"{name}:{segment}":
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _ProgressTracker:
    """Frames done: those of the journaled segments plus what the workers report of theirs."""

    plan: RenderPlan
    journal: Journal
    started: float
    on_progress: ProgressCallback | None
    frames_at_start: int = 0
    in_flight: dict[str, Activity] = field(default_factory=dict[str, Activity])

    def __post_init__(self) -> None:
        self.frames_at_start = self.journal.frames_done

    def activity(self, activity: Activity) -> None:
        self.in_flight[activity.worker] = activity
        self._report()

    def segment_done(self, segment: RenderedSegment) -> None:
        for worker, activity in list(self.in_flight.items()):
            if activity.segment == segment.record.index:
                self.in_flight[worker] = Activity(worker, None, 0)
        self._report()

    def _report(self) -> None:
        if self.on_progress is None:
            return
        flying = sum(a.frames for a in self.in_flight.values() if a.segment is not None)
        done = self.journal.frames_done + flying
        self.on_progress(
            Progress(
                frames_done=done,
                frames_total=max(self.plan.info.frames, done),
                elapsed=time.perf_counter() - self.started,
                frames_at_start=self.frames_at_start,
                segments_done=len(self.journal.segments),
                segments_total=self.journal.segment_count,
                workers=tuple(self.in_flight.values()),
            )
        )


def open_journal(work: WorkFolder, plan: RenderPlan, *, restart: bool, inform: Notify) -> Journal:
    """The journal to continue: the recorded one if it is of this job, a new one otherwise."""
    description = plan.description
    journal = None if restart else work.read_journal()
    if restart:
        work.clear()
    if journal is not None:
        recorded, current = _without_stack(journal.job), _without_stack(description)
        if recorded != current:
            changes = "; ".join(describe_changes(recorded, current))
            raise JobChangedError(
                f"{work.output} has an interrupted render of a different job ({changes}); "
                "run it with the earlier input and settings to resume, or add --restart to start over"
            )
        stack_changes = describe_changes(journal.job.get(STACK, {}), description[STACK], prefix=f"{STACK}.")
        if stack_changes:
            inform_stack = "; ".join(stack_changes[:4])
            inform(
                f"resuming on another software stack ({inform_stack}): frames made before and after may differ "
                "in the last bits (--restart renders it all on this one)"
            )
            journal.job = {**description, CHOSEN: journal.job.get(CHOSEN, description[CHOSEN])}
    journal = journal or Journal(job=description, segment_count=plan.segment_count)
    _drop_damaged_segments(work, journal, inform)
    stray = work.discard_unrecorded(journal)
    if journal.segments:
        discarded = f"; discarded {len(stray)} unfinished segment file(s)" if stray else ""
        inform(_resume_message(journal, plan) + discarded)
    work.write_journal(journal)
    return journal


def _without_stack(description: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resume: not the software stack, nor what was chosen for a machine."""
    return {key: value for key, value in description.items() if key not in (STACK, CHOSEN)}


def keep_what_was_chosen(plan: RenderPlan, journal: Journal, inform: Notify) -> RenderPlan:
    """``plan`` with the choices the interrupted run made for its machine (the tile, chosen from its
    free memory), so a resume cuts frames as the frames before it were cut."""
    recorded = journal.job.get(CHOSEN, {})
    tile = recorded.get("tile", plan.tile)
    if tile == plan.tile:
        return plan
    inform(f"keeping the interrupted run's {f'tiles of {tile} pixels' if tile else 'whole frames'}")
    return replace(plan, tile=tile, tile_message="", description={**plan.description, CHOSEN: recorded})


def _resume_message(journal: Journal, plan: RenderPlan) -> str:
    done, total = journal.frames_done, max(plan.info.frames, journal.frames_done, 1)
    share = f"{100 * done / total:.0f} %"
    if journal.done_from_start:
        return f"resuming at frame {done} of {total} ({share}), {_count(len(journal.segments), 'segment')} done"
    return (
        f"resuming with {done} of {total} frames done ({share}), "
        f"{len(journal.segments)} of {journal.segment_count} segments"
    )


def _drop_damaged_segments(work: WorkFolder, journal: Journal, inform: Notify) -> None:
    """Forget recorded segments whose files are gone or damaged: they are rendered again."""
    for segment in list(journal.segments):
        if segment.file is None:
            continue
        path = work.path / segment.file
        if not path.is_file() or path.stat().st_size != segment.size:
            inform(f"segment {segment.index} is missing or damaged; rendering it again")
            journal.forget(segment.index)


def _interrupted_message(journal: Journal | None, plan: RenderPlan) -> str:
    if journal is None or not journal.segments:
        return "interrupted before the first segment was finished; nothing to resume"
    done, total = journal.frames_done, max(plan.info.frames, journal.frames_done)
    kept = _count(len(journal.segments), "segment")
    if journal.done_from_start:
        return f"interrupted after frame {done} of {total} ({kept} kept); run the same command again to resume"
    return (
        f"interrupted with {done} of {total} frames done ({kept} of {journal.segment_count} kept); "
        "run the same command again to resume"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _say_what_the_plan_changes(plan: RenderPlan, model: LoadedModel, warn: Notify, inform: Notify) -> None:
    """Nothing the user did not ask for happens in silence: left-out streams, a cut-off input,
    deinterlacing, extra network passes."""
    info = plan.info
    for video in info.videos_left_out:
        warn(f"{video.describe()} is left out of the output: only stream {info.video_index} is upscaled (--stream N)")
    if info.truncation is not None:
        warn(info.truncation.warning())
    if plan.deinterlace:
        order = {"tff": "top field first", "bff": "bottom field first"}.get(info.field_order, "field order unknown")
        inform(
            f"the input is interlaced ({order}): deinterlacing it before upscaling (--no-deinterlace keeps the fields)"
        )
    elif info.interlaced:
        warn("the input is interlaced and --no-deinterlace was given: the network sees combed frames")
    _warn_about_extra_passes(plan, model, warn)


def _warn_about_extra_passes(plan: RenderPlan, model: LoadedModel, warn: Notify) -> None:
    passes = plan.network_passes(model.scale)
    if passes > 1:
        native = model.scale
        work = sum(native ** (2 * n) for n in range(passes))
        warn(
            f"{plan.size[0]}x{plan.size[1]} is beyond {model.name}'s x{native}: it runs {passes} times per frame, "
            f"the later passes on the enlarged frames (about {work}x the work of one pass)"
        )
