"""A batch's progress: files done of the total, the current file's render, and one ETA for the whole batch
from the speed this run measured, with frames weighted by their size. No timing is asserted: the
renders are real, and the ETA arithmetic is checked on reports whose times are given."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import ClipSpec, write_clip

from vidsr.cli.batch import batch_info, batch_label, clock
from vidsr.render import UpscaleJob
from vidsr.render.batch import BatchItem, BatchProgress, BatchTracker, FileResult, find_batch, run_batch
from vidsr.render.pipeline import Progress
from vidsr.upscale import UpscaleOptions

OLD = time.time() - 3600  # inputs written an hour ago: not "still being written"


def clip(path: Path, frames: int, width: int = 64, height: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, ClipSpec(frames=frames, width=width, height=height))
    os.utime(path, (OLD, OLD))
    return path


def test_a_batch_reports_files_and_frames_and_ends_with_nothing_left(tmp_path, nearest_model):
    source = tmp_path / "in"
    first, second = clip(source / "a.mp4", frames=6), clip(source / "b.mp4", frames=12)
    clip(source / "c.mp4", frames=24)
    (source / "d.mp4").write_bytes(b"not a video" * 50)
    os.utime(source / "d.mp4", (OLD, OLD))
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.mp4").write_bytes(b"finished before")  # complete already: skipped, so not part of the work
    template = UpscaleJob(input=Path(), output=Path(), upscale=UpscaleOptions(models=(str(nearest_model),)))
    seen: list[BatchProgress] = []

    results = run_batch(find_batch([source], out), template, on_batch_progress=seen.append)

    assert [r.result for r in results] == ["done", "done", "skipped", "failed"]
    start = seen[0]
    assert (start.files_done, start.files_total, start.current, start.file) == (0, 4, first, None)
    assert (start.frames_done, start.frames_total, start.eta_seconds) == (0, 18, None)
    assert all(p.frames_total == 18 for p in seen)
    assert [p.frames_done for p in seen] == sorted(p.frames_done for p in seen)
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)
    on_second = [p for p in seen if p.current == second and p.file is not None]
    assert on_second and all(p.file.frames_total == 12 and p.files_done == 1 for p in on_second)
    measured = [p for p in seen if p.eta_seconds is not None]
    assert measured and all(p.eta_seconds >= 0 and p.fps > 0 for p in measured)
    end = seen[-1]
    assert (end.files_done, end.current, end.frames_done, end.eta_seconds) == (4, None, 18, 0)


def report(frames_done: int, total: int, elapsed: float, at_start: int = 0) -> Progress:
    return Progress(frames_done=frames_done, frames_total=total, elapsed=elapsed, frames_at_start=at_start)


def test_the_eta_weighs_frames_by_size_and_counts_only_what_this_run_rendered(tmp_path):
    small = BatchItem(tmp_path / "small.mp4", tmp_path / "o1.mp4", frames=100, pixels=640 * 360)
    large = BatchItem(tmp_path / "large.mp4", tmp_path / "o2.mp4", frames=100, pixels=1280 * 720)
    tracker = BatchTracker([small, large], force=False)

    tracker.file_started(small)
    half = tracker.file_progress(report(60, 100, elapsed=4.0, at_start=20))  # 20 frames from an interrupted run
    assert half.fps == pytest.approx(10.0)  # 40 frames rendered in 4 s: the resumed ones are not speed
    # 40 small frames left, then 100 frames of four times the pixels: 440 small frames at 10 a second.
    assert half.eta_seconds == pytest.approx(44.0)
    tracker.file_done(FileResult(small.source, small.output, "resumed", frames=100, seconds=8.0))
    between = tracker.file_started(large)
    assert (between.files_done, between.frames_done, between.frames_total) == (1, 100, 200)
    assert between.eta_seconds == pytest.approx(40.0)  # its last report: 40 frames rendered in 4 s


def test_a_file_skipped_on_the_way_leaves_the_total(tmp_path):
    items = [BatchItem(tmp_path / f"{name}.mp4", tmp_path / f"out-{name}.mp4", frames=50) for name in "ab"]
    tracker = BatchTracker(items, force=False)
    tracker.file_started(items[0])
    tracker.file_done(FileResult(items[0].source, items[0].output, "skipped", note="another vidsr holds it"))
    assert tracker.snapshot().frames_total == 50 and tracker.snapshot().frames_done == 0


def test_the_batch_line_says_files_speed_and_eta():
    progress = BatchProgress(
        files_done=2, files_total=5, current=None, file=None, frames_done=10, frames_total=99, fps=2.5, eta_seconds=3723
    )
    assert batch_label(progress) == "files 2/5"
    assert batch_info(progress) == "2.50 fps  ETA 1:02:03"
    assert batch_info(BatchProgress(0, 5, None, None, 0, 99, 0.0, None)) == "ETA …"
    assert clock(125.4) == "2:05"


def test_the_final_table_names_every_file_and_its_result(tmp_path, nearest_model):
    done_before, broken = clip(tmp_path / "one.mp4", frames=6), tmp_path / "two.mp4"
    broken.write_bytes(b"not a video" * 50)
    os.utime(broken, (OLD, OLD))
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.mp4").write_bytes(b"finished before")
    command = [sys.executable, "-m", "vidsr", str(done_before), str(broken), f"{out}/", "--model", str(nearest_model)]
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert run.returncode == 1  # a file failed
    table = run.stderr[run.stderr.index("2 file(s)") :]
    one, two = (next(line for line in table.splitlines() if name in line) for name in ("one.mp4", "two.mp4"))
    assert "skipped" in one and "complete already" in one
    assert "failed" in two and "Traceback" not in run.stderr
