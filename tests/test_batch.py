"""Batches: a folder or several files in one command, each output a render of that file alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from media import ClipSpec, write_clip

OLD = time.time() - 3600  # inputs written an hour ago: not "still being written"


def vidsr(*args: object, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vidsr", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def clip(path: Path, frames: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, ClipSpec(frames=frames))
    os.utime(path, (OLD, OLD))
    return path


def frames_of(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
        return [f.pts for f in decoded], [f.to_ndarray(format="rgb24") for f in decoded]


def assert_same_video(a: Path, b: Path) -> None:
    a_pts, a_frames = frames_of(a)
    b_pts, b_frames = frames_of(b)
    assert a_pts == b_pts
    assert all(np.array_equal(x, y) for x, y in zip(a_frames, b_frames, strict=True))


def test_a_folder_keeps_its_tree_and_odd_names_and_a_broken_file_does_not_stop_the_rest(tmp_path, nearest_model):
    source = tmp_path / "in"
    clip(source / "a clip.mp4")
    broken = source / "b broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    os.utime(broken, (OLD, OLD))
    clip(source / "sub dir" / "été 夏.mkv")
    (source / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    table = tmp_path / "table.json"

    run = vidsr(source, out, "--model", nearest_model, "--json", table)

    assert run.returncode == 1, run.stderr
    assert (out / "a clip.mp4").is_file() and (out / "sub dir" / "été 夏.mkv").is_file()
    assert not (out / "b broken.mp4").exists() and not (out / "notes.txt").exists()
    rows = {Path(r["file"]).name: r for r in json.loads(table.read_text())}
    assert set(rows) == {"a clip.mp4", "b broken.mp4", "été 夏.mkv"}
    assert rows["a clip.mp4"]["result"] == "done" and rows["a clip.mp4"]["frames"] == 6
    assert rows["b broken.mp4"]["result"] == "failed" and "b broken.mp4" in rows["b broken.mp4"]["note"]
    assert "Traceback" not in run.stderr
    assert frames_of(out / "a clip.mp4")[1][0].shape == (192, 256, 3)


def test_complete_outputs_are_skipped_and_force_renders_them_again(tmp_path, nearest_model):
    one, two = clip(tmp_path / "one.mp4"), clip(tmp_path / "two.mp4")
    out = tmp_path / "out"
    assert vidsr(one, two, f"{out}/", "--model", nearest_model).returncode == 0
    first = (out / "one.mp4").stat().st_mtime_ns
    table = tmp_path / "t.json"

    again = vidsr(one, two, f"{out}/", "--model", nearest_model, "--json", table)
    assert again.returncode == 0
    assert [r["result"] for r in json.loads(table.read_text())] == ["skipped", "skipped"]
    assert "complete already" in again.stderr
    assert (out / "one.mp4").stat().st_mtime_ns == first

    forced = vidsr(one, two, f"{out}/", "--model", nearest_model, "--force", "--json", table)
    assert forced.returncode == 0
    assert [r["result"] for r in json.loads(table.read_text())] == ["done", "done"]


def test_a_batch_killed_mid_file_resumes_and_every_output_equals_a_render_of_that_file_alone(tmp_path, nearest_model):
    source = tmp_path / "in"
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        clip(source / name, frames=24)
    out = tmp_path / "out"
    settings = ("--model", nearest_model, "--segment-seconds", "0.25", "--batch", "1")

    killed = vidsr(source, out, *settings, VIDSR_TEST_KILL_AT="journal-written:1")  # in a.mp4, segment 1 of 4
    assert killed.returncode == -signal.SIGKILL
    table = tmp_path / "t.json"
    resumed = vidsr(source, out, *settings, "--json", table)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["result"] for r in json.loads(table.read_text())] == ["resumed", "done", "done"]
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        alone = tmp_path / f"alone-{name}"
        assert vidsr(source / name, alone, *settings).returncode == 0
        assert_same_video(out / name, alone)


def test_a_folder_with_no_video_is_one_line(tmp_path, nearest_model):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("hello")
    run = vidsr(tmp_path / "in", tmp_path / "out", "--model", nearest_model)
    assert run.returncode == 1
    assert "no video in" in run.stderr and "Traceback" not in run.stderr


def test_a_symlink_loop_ends_and_the_output_folder_inside_the_input_is_not_scanned(tmp_path, nearest_model):
    source = tmp_path / "in"
    clip(source / "sub" / "x.mp4")
    (source / "sub" / "loop").symlink_to(source, target_is_directory=True)
    out = source / "upscaled"
    table = tmp_path / "t.json"
    for _ in range(2):  # the second run must not find the first run's outputs as inputs
        run = vidsr(source, out, "--model", nearest_model, "--json", table)
        assert run.returncode == 0, run.stderr
        assert [Path(r["file"]).name for r in json.loads(table.read_text())] == ["x.mp4"]
    assert "symlink loop" in run.stderr
    assert (out / "sub" / "x.mp4").is_file()


def test_the_input_folder_as_output_folder_is_refused(tmp_path, nearest_model):
    clip(tmp_path / "in" / "x.mp4")
    run = vidsr(tmp_path / "in", tmp_path / "in", "--model", nearest_model)
    assert run.returncode == 1 and "is the input folder" in run.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, nearest_model):
    clip(tmp_path / "in" / "x.mp4")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        run = vidsr(tmp_path / "in", locked / "out", "--model", nearest_model)
    finally:
        locked.chmod(0o700)
    assert run.returncode == 1 and "cannot create the output folder" in run.stderr


def test_a_file_still_being_written_is_skipped_and_said(tmp_path, nearest_model):
    source = tmp_path / "in"
    clip(source / "ready.mp4")
    growing = clip(source / "growing.mp4")
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            with growing.open("ab") as handle:
                handle.write(b"\0" * 64)
            time.sleep(0.05)

    writer = threading.Thread(target=append)
    writer.start()
    table = tmp_path / "t.json"
    try:
        run = vidsr(source, tmp_path / "out", "--model", nearest_model, "--json", table)
    finally:
        stop.set()
        writer.join()
    rows = {Path(r["file"]).name: r for r in json.loads(table.read_text())}
    assert rows["ready.mp4"]["result"] == "done"
    assert rows["growing.mp4"]["result"] == "skipped" and "still being written" in rows["growing.mp4"]["note"]
    assert run.returncode == 0


def test_container_and_glob_choose(tmp_path, nearest_model):
    source = tmp_path / "in"
    clip(source / "a.mp4")
    clip(source / "b.mov")
    out = tmp_path / "out"
    run = vidsr(source, out, "--model", nearest_model, "--glob", "*.mp4", "--container", "mkv")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv"]
    with av.open(str(out / "a.mkv")) as container:
        assert "matroska" in container.format.name


def test_one_file_into_one_file_is_not_a_batch(tmp_path, nearest_model):
    from vidsr.cli.batch import is_batch

    source = clip(tmp_path / "a.mp4")
    (tmp_path / "folder").mkdir()
    assert not is_batch([str(source), str(tmp_path / "b.mp4"), "--model", str(nearest_model)])
    assert is_batch([str(source), str(tmp_path / "folder")])
    assert is_batch([str(source), str(tmp_path / "new") + "/"])
    assert is_batch([str(source), str(source), str(tmp_path / "x")])
    assert is_batch([str(tmp_path), str(tmp_path / "o"), "--scale", "2"])
