"""Several videos in one command: find them, map each to its output, render them.

    find_batch (walk IN_DIR or take the files, extension prefilter, probe) ─► BatchItem per file
        ─► run_batch: for each, skip (complete, busy, still growing) or ``upscale_video`` ─► FileResult

Every file is an ordinary render of its own (its own journal and lock beside its output), so a
batch killed at any point and run again skips the finished outputs, resumes the interrupted one
from its journal and renders the rest; each output equals a render of that file alone. Two
batches on one folder never render the same file twice: a file whose output another vidsr holds
is skipped and said. A broken file gets its one-line error in its row and the batch goes on.

In this process the files are rendered one after the other. On a cluster the workers would sit
idle at the tail of each file (its last segments out, nothing else to do) and while the next
file is planned, so a backend may ask (``files_at_once`` above one, RayBackend does) that the
next file start as soon as the current one has no segment left to submit: each file keeps its
own driver, an unchanged ``upscale_video`` in a thread of its own, and the drivers share the
backend (each with an executor of its own; Ray runs the next file's segments behind the current
one's). Several whole drivers rather than one executor serving several jobs: every guarantee of
a render (its plan, lock, journal, durable commits, finalize, its error as one row) stays in the
one code path that already has it, and the batch only decides when a driver may start. A Ctrl-C
reaches the main thread; it tells the drivers, whose next progress report stops their render as
a Ctrl-C would, each keeping its journal, and waits for all of them to end.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from vidsr.errors import InputError, OutputError, RenderInterrupted, VidsrError
from vidsr.media import probe
from vidsr.render.executor import Backend, InProcessBackend
from vidsr.render.pipeline import Progress, UpscaleJob, upscale_video
from vidsr.render.workfolder import OutputBusyError

__all__ = [
    "VIDEO_SUFFIXES",
    "BatchItem",
    "BatchProgress",
    "BatchTracker",
    "FileRendering",
    "FileResult",
    "Outcome",
    "find_batch",
    "run_batch",
]

# What a folder scan considers at all; the probe then decides. Prefiltering by name keeps a scan of
# a folder with thousands of photos and subtitles to a directory listing (a probe opens the file
# and decodes its first frame: milliseconds each).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .wmv .flv .ts .m2ts .mts .mpg .mpeg .vob .3gp .ogv .mxf .dv .y4m .nut".split()
)
# A file modified this recently may still be downloading or copying: it is skipped, and said.
SETTLE_SECONDS = 5.0

Outcome = Literal["done", "resumed", "skipped", "failed"]


@dataclass(frozen=True)
class BatchItem:
    """One input and the output it maps to; ``error`` is why it cannot be rendered, found while looking."""

    source: Path
    output: Path
    frames: int = 0  # the probe's count (an estimate where the container stores none)
    error: str = ""
    pixels: int = 0  # of one frame: the network's work per frame grows with it

    @property
    def work(self) -> int:
        """The file's share of a batch's work, in pixels through the network."""
        return self.frames * max(self.pixels, 1)


@dataclass(frozen=True)
class FileResult:
    """One row of the batch's table."""

    source: Path
    output: Path
    result: Outcome
    frames: int = 0
    seconds: float = 0.0
    note: str = ""  # why it was skipped or failed (one line), or what was resumed
    tiles_reused: float = 0.0  # the share of the network's tiles reuse kept (0..1) in this run


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch is: files, the current file's render, and the whole batch's frames and ETA.

    The totals count the files this run will render: those with an error, or whose output is
    complete already (without --force), are left out from the start; a file skipped or failed
    on the way leaves them when it ends. ``eta_seconds`` is the work left (frames weighted by
    their size, so a 1080p file counts for more than a 480p one) over the speed measured in this
    run so far; None until something has been measured.
    """

    files_done: int
    files_total: int
    current: Path | None  # the file being rendered, None between files and at the end
    file: Progress | None  # the current file's render, None until its first report
    frames_done: int  # of the files to render: frames finished, resumed ones included
    frames_total: int
    fps: float  # frames this run rendered, per second of rendering
    eta_seconds: float | None
    rendering: tuple[FileRendering, ...] = ()  # every file being rendered now: several where a cluster overlaps them


@dataclass(frozen=True)
class FileRendering:
    """One of the files a batch is rendering now, and its last report (None until its first)."""

    source: Path
    progress: Progress | None


FileStarted = Callable[[int, BatchItem], None]
FileDone = Callable[[FileResult], None]
Notify = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def find_batch(
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    glob: str | None = None,
    container: str | None = None,
    stream: int | None = None,
    accept_truncated: bool = False,
    warn: Notify = _quiet,
) -> list[BatchItem]:
    """The files to render, each with its output under ``out_dir``, in a stable order.

    A folder contributes every video under it (following symlinked folders, each real folder
    once, so a symlink loop ends), its sub-folders kept under ``out_dir``; ``out_dir`` inside it is
    left out of the scan. ``glob`` (matched against the path inside the folder, or the name) chooses
    among the files; without it only names with a video extension are looked at. Every candidate
    is probed; one that cannot be read keeps its error for its row. Raises InputError for a missing
    input or a folder with no video, OutputError for an output folder that is the input folder,
    cannot be written, or two inputs that would share one output.
    """
    if not inputs:
        raise InputError("no input videos given")
    check_output_folder(out_dir)
    suffix = _container_suffix(container)
    pairs: list[tuple[Path, Path]] = []
    for source in inputs:
        if not source.exists():
            raise InputError(f"input not found: {source}")
        if source.is_dir():
            pairs.extend(_folder_pairs(source, out_dir, glob, warn))
        else:
            pairs.append((source, out_dir / source.name))
    if not pairs:
        raise InputError(f"no video in {', '.join(str(p) for p in inputs)}" + (f" matching {glob}" if glob else ""))
    pairs = [(source, target.with_suffix(suffix) if suffix else target) for source, target in pairs]
    _refuse_collisions(pairs)
    return [_probed(source, target, stream, accept_truncated) for source, target in pairs]


def check_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` if needed; OutputError, before any work, if it is a file or cannot be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is a file: several videos or a folder need an output folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out_dir} is not writable")


def _container_suffix(container: str | None) -> str:
    if container is None:
        return ""
    name = container.lower().lstrip(".")
    if not name or "/" in name or os.sep in name:
        raise OutputError(f"--container {container}: give an extension such as mkv, mp4 or mov")
    return "." + name


def _folder_pairs(folder: Path, out_dir: Path, glob: str | None, warn: Notify) -> Iterator[tuple[Path, Path]]:
    if os.path.realpath(folder) == os.path.realpath(out_dir):
        raise OutputError(f"the output folder {out_dir} is the input folder; choose another one")
    for path in _files_under(folder, exclude=Path(os.path.realpath(out_dir)), warn=warn):
        relative = path.relative_to(folder)
        if _chosen(relative, glob):
            yield path, out_dir / relative


def _chosen(relative: Path, glob: str | None) -> bool:
    if glob is None:
        return relative.suffix.lower() in VIDEO_SUFFIXES
    return fnmatch.fnmatch(relative.as_posix(), glob) or fnmatch.fnmatch(relative.name, glob)


def _files_under(folder: Path, *, exclude: Path, warn: Notify) -> list[Path]:
    """Regular files under ``folder``, sorted, hidden ones and vidsr's work folders left out.

    Symlinked folders are followed, but each real folder is visited once: a link back up (a
    loop) is skipped with a warning instead of walking forever.
    """
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.stat(root)
        key = (real.st_dev, real.st_ino)
        if key in visited:
            warn(f"{root} leads back to a folder already scanned (a symlink loop); skipping it")
            dirs[:] = []
            continue
        visited.add(key)
        if os.path.realpath(root) == str(exclude):
            dirs[:] = []  # the output folder inside the input folder: never scanned
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if not name.startswith("."))
    return [path for path in found if path.is_file()]


def _refuse_collisions(pairs: list[tuple[Path, Path]]) -> None:
    seen: dict[str, Path] = {}
    for source, target in pairs:
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise OutputError(f"{seen[key]} and {source} would both be written to {target}")
        seen[key] = source


def _probed(source: Path, output: Path, stream: int | None, accept_truncated: bool) -> BatchItem:
    """The item with the probe's frame count, or with the probe's one-line error."""
    try:
        info = probe(source, stream=stream, accept_truncated=accept_truncated)
    except VidsrError as exc:
        return BatchItem(source, output, error=_one_line(exc))
    except OSError as exc:
        return BatchItem(source, output, error=f"{source}: {exc.strerror or exc}")
    return BatchItem(source, output, frames=info.frames, pixels=info.width * info.height)


def still_growing(path: Path, *, settle_seconds: float = SETTLE_SECONDS, check_seconds: float = 0.2) -> bool:
    """Whether ``path`` looks like a file still being written: modified in the last ``settle_seconds``,
    or changing in size or time over a short check."""
    before = path.stat()
    if time.time() - before.st_mtime < settle_seconds:
        return True
    time.sleep(check_seconds)
    after = path.stat()
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def run_batch(
    items: Sequence[BatchItem],
    template: UpscaleJob,
    *,
    backend: Backend | None = None,
    on_file_start: FileStarted | None = None,
    on_file_done: FileDone | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_batch_progress: Callable[[BatchProgress], None] | None = None,
    warn: Notify = _quiet,
    inform: Notify = _quiet,
    settle_seconds: float = SETTLE_SECONDS,
) -> list[FileResult]:
    """Render ``items`` with ``template``'s settings, one row per file, in the items' order.

    One after the other, or overlapped where the backend renders several files at once (see the
    module's docstring). ``on_progress`` hears each file's render as `vidsr upscale` reports it;
    ``on_batch_progress`` the whole batch's, at each file's start and end and with each of its
    reports; the callbacks are called one at a time. Ctrl-C (RenderInterrupted) stops the batch;
    every other problem of a file is its row's. The backend (a cluster connection) is used for
    every file and is not closed here.
    """
    backend = backend or InProcessBackend()
    tracker = BatchTracker(items, force=template.force)
    heard = threading.Lock()  # the tracker and the callbacks hear one driver at a time
    stopping = threading.Event()  # set when the batch stops: the drivers' next report stops them

    def start(index: int, item: BatchItem) -> None:
        with heard:
            if on_file_start is not None:
                on_file_start(index, item)
            if on_batch_progress is not None:
                on_batch_progress(tracker.file_started(item))

    def render(item: BatchItem, on_all_submitted: Callable[[], None] | None) -> FileResult:
        def report(progress: Progress) -> None:
            if stopping.is_set():
                raise KeyboardInterrupt  # this render stops as on a Ctrl-C: journal kept, executor cancelled
            with heard:
                if on_progress is not None:
                    on_progress(progress)
                if on_batch_progress is not None:
                    on_batch_progress(tracker.file_progress(progress, item))

        return _render_one(item, template, backend, report, warn, inform, settle_seconds, on_all_submitted)

    def finish(result: FileResult) -> None:
        with heard:
            if on_file_done is not None:
                on_file_done(result)
            tracker.file_done(result)
            if on_batch_progress is not None:
                on_batch_progress(tracker.snapshot())

    if backend.files_at_once <= 1:
        results: list[FileResult] = []
        for index, item in enumerate(items):
            start(index, item)
            results.append(render(item, None))
            finish(results[-1])
        return results
    _ask_workers_here(backend, template)
    return _overlapped(items, backend.files_at_once, start, render, finish, stopping)


def _ask_workers_here(backend: Backend, template: UpscaleJob) -> None:
    """Ask the backend its workers' device in this thread, before any driver thread does: a cluster
    connects with its first question, and Ray connects as it should (and without a warning about
    its signal handler) only from the main thread. A problem is left for each file's render to
    report in its row, as it would one file after the other."""
    try:
        backend.worker_device(template.upscale.device)
    except VidsrError:
        pass


def _overlapped(
    items: Sequence[BatchItem],
    files_at_once: int,
    start: Callable[[int, BatchItem], None],
    render: Callable[[BatchItem, Callable[[], None] | None], FileResult],
    finish: Callable[[FileResult], None],
    stopping: threading.Event,
) -> list[FileResult]:
    """Each file's render in a driver thread of its own, the next one started once the one before
    has no segment left to submit (or has ended), at most ``files_at_once`` running."""
    results: list[FileResult | None] = [None] * len(items)
    failures: list[BaseException] = []
    slots = threading.Semaphore(files_at_once)
    ended: list[threading.Event] = []  # one per driver started, set as its very last step

    def drive(index: int, item: BatchItem, may_follow: threading.Event, done: threading.Event) -> None:
        try:
            result = render(item, may_follow.set)
            results[index] = result
            finish(result)
        except BaseException as error:  # RenderInterrupted when stopping; anything else stops the batch
            failures.append(error)
            stopping.set()  # the other files in flight stop now, each keeping its journal
        finally:
            may_follow.set()
            slots.release()
            done.set()

    previous: threading.Event | None = None
    try:
        for index, item in enumerate(items):
            if previous is not None:
                previous.wait()
            slots.acquire()
            if failures:
                slots.release()
                break
            start(index, item)
            previous, done = threading.Event(), threading.Event()
            ended.append(done)
            name = f"vidsr batch file {index}"
            threading.Thread(target=drive, args=(index, item, previous, done), name=name).start()
        _wait_for_all(ended)
    except KeyboardInterrupt:
        stopping.set()
        _wait_for_all(ended)
        raise _interrupted(items, failures) from None
    if failures:
        stopping.set()
        _wait_for_all(ended)
        raise failures[0]
    return [result for result in results if result is not None]


def _wait_for_all(ended: list[threading.Event]) -> None:
    """Until every driver has ended. Not ``Thread.join``: a join that a Ctrl-C interrupts marks the
    thread as ended while it still runs (CPython 3.11, the bpo-45274 handling in
    ``_wait_for_tstate_lock``), and every later join returns at once: the batch would stop with a
    render still going and holding its output's lock. An event's wait can be interrupted safely."""
    for done in ended:
        done.wait()


def _interrupted(items: Sequence[BatchItem], failures: list[BaseException]) -> RenderInterrupted:
    """One message for the files that were stopped, each saying what it keeps."""
    said = [str(error) for error in failures if isinstance(error, RenderInterrupted)]
    if not said:
        return RenderInterrupted("batch interrupted; run the same command again to go on")
    return RenderInterrupted("; ".join(said))


@dataclass
class _Running:
    """A file being rendered: its last report, and when its render ran (this process's clock)."""

    item: BatchItem
    last: Progress | None = None
    span: tuple[float, float] | None = None


class BatchTracker:
    """Sums a batch's progress from its files' reports; speed counts only what this run rendered.

    Several files may be rendering at once (on a cluster): their frames add up, and the seconds of
    rendering are the time at least one of them was rendering, not the sum of theirs.
    """

    def __init__(self, items: Sequence[BatchItem], *, force: bool) -> None:
        self.to_render = {id(item) for item in items if _will_render(item, force=force)}
        self.files_total = len(items)
        self.files_done = 0
        self.frames_total = sum(item.frames for item in items if id(item) in self.to_render)
        self.work_total = sum(item.work for item in items if id(item) in self.to_render)
        self.frames_finished = 0  # of files that ended, and their work
        self.work_finished = 0
        self.rendered_work = 0  # rendered by this run in files that ended, and when it was rendering
        self.rendered_frames = 0
        self.spans: list[tuple[float, float]] = []
        self.running: dict[Path, _Running] = {}  # by output, in the order the files started

    def file_started(self, item: BatchItem) -> BatchProgress:
        self.running[item.output] = _Running(item)
        return self.snapshot()

    def file_progress(self, progress: Progress, item: BatchItem | None = None) -> BatchProgress:
        """``item``'s report (default: the file started last)."""
        running = self.running[item.output] if item is not None else next(reversed(self.running.values()))
        now = time.perf_counter()
        running.last, running.span = progress, (now - progress.elapsed, now)
        return self.snapshot()

    def file_done(self, result: FileResult) -> None:
        running = self.running.pop(result.output, None)
        self.files_done += 1
        if running is None:
            return
        item, last = running.item, running.last
        if id(item) in self.to_render:
            if result.result in ("done", "resumed"):
                self.frames_finished += item.frames
                self.work_finished += item.work
            else:  # skipped or failed on the way: no longer part of the work
                self.frames_total -= item.frames
                self.work_total -= item.work
        if last is not None and running.span is not None:
            rendered = last.frames_done - last.frames_at_start
            self.rendered_frames += rendered
            self.rendered_work += rendered * max(item.pixels, 1)
            self.spans.append(running.span)

    def snapshot(self) -> BatchProgress:
        frames_done, work_done = self.frames_finished, self.work_finished
        rendered_frames, rendered_work, spans = self.rendered_frames, self.rendered_work, list(self.spans)
        for running in self.running.values():
            last, pixels = running.last, max(running.item.pixels, 1)
            if last is None or running.span is None:
                continue
            frames_done += last.frames_done
            work_done += last.frames_done * pixels
            rendered_frames += last.frames_done - last.frames_at_start
            rendered_work += (last.frames_done - last.frames_at_start) * pixels
            spans.append(running.span)
        seconds = _covered(spans)
        speed = rendered_work / seconds if seconds > 0 and rendered_work > 0 else None
        first = next(iter(self.running.values()), None)  # the file that started first: it ends first
        return BatchProgress(
            files_done=self.files_done,
            files_total=self.files_total,
            current=first.item.source if first is not None else None,
            file=first.last if first is not None else None,
            frames_done=min(frames_done, self.frames_total),
            frames_total=self.frames_total,
            fps=rendered_frames / seconds if seconds > 0 else 0.0,
            eta_seconds=max(self.work_total - work_done, 0) / speed if speed else None,
            rendering=tuple(FileRendering(r.item.source, r.last) for r in self.running.values()),
        )


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of ``spans`` was going on."""
    total, reach = 0.0, float("-inf")
    for begin, end in sorted(spans):
        if end > reach:
            total += end - max(begin, reach)
            reach = end
    return total


def _will_render(item: BatchItem, *, force: bool) -> bool:
    """What is known before the batch starts: a file with an error or a complete output is not work."""
    return not item.error and (force or not item.output.exists())


def _render_one(
    item: BatchItem,
    template: UpscaleJob,
    backend: Backend,
    on_progress: Callable[[Progress], None] | None,
    warn: Notify,
    inform: Notify,
    settle_seconds: float,
    on_all_submitted: Callable[[], None] | None = None,
) -> FileResult:
    def row(result: Outcome, note: str = "", frames: int = 0, seconds: float = 0.0, reused: float = 0.0) -> FileResult:
        return FileResult(
            item.source, item.output, result, frames=frames, seconds=seconds, note=note, tiles_reused=reused
        )

    if item.output.exists() and not template.force:
        return row("skipped", "complete already (--force renders it again)", frames=item.frames)
    try:
        if still_growing(item.source, settle_seconds=settle_seconds):
            return row("skipped", f"{item.source} is still being written; run the batch again once it is complete")
    except OSError as exc:
        return row("failed", f"{item.source}: {exc.strerror or exc}")
    if item.error:
        return row("failed", item.error)
    try:
        item.output.parent.mkdir(parents=True, exist_ok=True)
        job = replace(template, input=item.source, output=item.output)
        rendered = upscale_video(
            job, on_progress=on_progress, warn=warn, inform=inform, backend=backend, on_all_submitted=on_all_submitted
        )
    except RenderInterrupted:
        raise
    except OutputBusyError as exc:
        return row("skipped", _one_line(exc))
    except VidsrError as exc:
        if item.output.exists() and not template.force:  # another vidsr finished it meanwhile
            return row("skipped", "complete already (rendered by another vidsr meanwhile)", frames=item.frames)
        return row("failed", _one_line(exc))
    except OSError as exc:
        return row("failed", f"{item.source}: {exc.strerror or exc}")
    except Exception as exc:  # a file the libraries choke on must not take the rest of the batch down
        return row("failed", f"{item.source}: {type(exc).__name__}: {_one_line(exc)}")
    if rendered.frames_resumed:
        return row(
            "resumed",
            f"{rendered.frames_resumed} frames from the interrupted run",
            frames=rendered.frames,
            seconds=rendered.seconds,
            reused=rendered.reuse.share,
        )
    return row("done", frames=rendered.frames, seconds=rendered.seconds, reused=rendered.reuse.share)


def _one_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
