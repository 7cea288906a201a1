"""Several videos in one command: find them, map each to its output, render them one after the other.

    find_batch (walk IN_DIR or take the files, extension prefilter, probe) ─► BatchItem per file
        ─► run_batch: for each, skip (complete, busy, still growing) or ``upscale_video`` ─► FileResult

Every file is an ordinary render of its own (its own journal and lock beside its output), so a
batch killed at any point and run again skips the finished outputs, resumes the interrupted one
from its journal and renders the rest; each output equals a render of that file alone. Two
batches on one folder never render the same file twice: a file whose output another vidsr holds
is skipped and said. A broken file gets its one-line error in its row and the batch goes on.
"""

from __future__ import annotations

import fnmatch
import os
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
    return BatchItem(source, output, frames=info.frames)


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
    warn: Notify = _quiet,
    inform: Notify = _quiet,
    settle_seconds: float = SETTLE_SECONDS,
) -> list[FileResult]:
    """Render ``items`` one after the other with ``template``'s settings, one row per file.

    Ctrl-C (RenderInterrupted) stops the batch; every other problem of a file is its row's. The
    backend (a cluster connection) is used for every file and is not closed here.
    """
    backend = backend or InProcessBackend()
    results: list[FileResult] = []
    for index, item in enumerate(items):
        if on_file_start is not None:
            on_file_start(index, item)
        result = _render_one(item, template, backend, on_progress, warn, inform, settle_seconds)
        results.append(result)
        if on_file_done is not None:
            on_file_done(result)
    return results


def _render_one(
    item: BatchItem,
    template: UpscaleJob,
    backend: Backend,
    on_progress: Callable[[Progress], None] | None,
    warn: Notify,
    inform: Notify,
    settle_seconds: float,
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
        rendered = upscale_video(job, on_progress=on_progress, warn=warn, inform=inform, backend=backend)
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
