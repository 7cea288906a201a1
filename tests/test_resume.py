"""Resume: a render killed at any instant continues where it stopped, and the result equals an
uninterrupted render. Real processes, real kills (SIGKILL, SIGINT), real files.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from media import ClipSpec, audio_packets, with_default_sigint, write_clip

from vidsr.render.workfolder import WorkFolder

SEGMENT = "0.5"  # seconds: the 6 s clip makes 12 segments (long_clip, slow_model, long_reference: conftest.py)


def command(source: Path, output: Path, model: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "vidsr", str(source), str(output),
        "--model", str(model), "--batch", "1", "--segment-seconds", SEGMENT, *extra,
    ]  # fmt: skip


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def decoded(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.pts for f in frames], [f.to_ndarray() for f in frames]


def assert_same_render(result: Path, reference: Path) -> None:
    result_pts, result_frames = decoded(result)
    reference_pts, reference_frames = decoded(reference)
    assert result_pts == reference_pts
    assert len(result_frames) == len(reference_frames) == 144
    for got, expected in zip(result_frames, reference_frames):
        assert np.array_equal(got, expected)
    assert audio_packets(result) == audio_packets(reference)


def journal_of(output: Path) -> dict:
    return json.loads(WorkFolder(output).journal_path.read_text())


@pytest.mark.parametrize(
    "kill_at",
    [
        "frame:3:4",  # in the middle of segment 3 (after encoding the batch that starts at its frame 4)
        "segment-committed:2",  # segment 2's file is durable, but the journal does not name it yet
        "journal-written:4",  # right after the journal records segment 4
    ],
)
def test_a_render_killed_at_a_named_point_resumes_to_the_same_result(
    kill_at, long_clip, slow_model, long_reference, tmp_path
):
    output = tmp_path / "out.mp4"
    killed = run(command(long_clip, output, slow_model), VIDSR_TEST_KILL_AT=kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert not output.exists()
    done_before = len(journal_of(output)["segments"])

    resumed = run(command(long_clip, output, slow_model))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} segment" in resumed.stderr and "resuming at frame" in resumed.stderr
    assert_same_render(output, long_reference)
    assert not WorkFolder(output).path.exists()  # removed once the output is in place


def test_a_segment_file_the_journal_does_not_name_is_redone(long_clip, slow_model, tmp_path):
    output = tmp_path / "out.mp4"
    run(command(long_clip, output, slow_model), VIDSR_TEST_KILL_AT="segment-committed:2")
    work = WorkFolder(output)
    assert work.segment_path(2).exists()
    assert [s["index"] for s in journal_of(output)["segments"]] == [0, 1]

    resumed = run(command(long_clip, output, slow_model))
    assert "resuming at frame 24 of 144 (17 %), 2 segments done; discarded 1 unfinished segment file" in resumed.stderr


def test_kills_at_random_moments_never_lose_finished_work(long_clip, slow_model, long_reference, tmp_path):
    """SIGKILL from outside at random times, again and again, then let it finish."""
    output = tmp_path / "out.mp4"
    chance = random.Random(1234)
    segments_seen = []
    for _ in range(4):
        process = subprocess.Popen(command(long_clip, output, slow_model), stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(1.5, 3.5))  # startup takes about 1.5 s, the render a few more
        process.kill()
        process.wait()
        if output.exists():
            break
        segments_seen.append(len(journal_of(output)["segments"]) if WorkFolder(output).journal_path.exists() else 0)
    assert segments_seen == sorted(segments_seen)  # progress is never lost
    if not output.exists():
        finished = run(command(long_clip, output, slow_model))
        assert finished.returncode == 0, finished.stderr
    assert_same_render(output, long_reference)


def test_ctrl_c_stops_promptly_says_how_to_resume_and_exits_130(long_clip, slow_model, long_reference, tmp_path):
    output = tmp_path / "out.mp4"
    process = subprocess.Popen(
        command(long_clip, output, slow_model), stderr=subprocess.PIPE, text=True, preexec_fn=with_default_sigint
    )
    journal = WorkFolder(output).journal_path
    while not (journal.exists() and json.loads(journal.read_text())["segments"]):
        assert process.poll() is None, "the render ended before it could be interrupted"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    assert not output.exists()

    resumed = run(command(long_clip, output, slow_model))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_render(output, long_reference)


def test_sigterm_stops_like_ctrl_c(long_clip, slow_model, tmp_path):
    output = tmp_path / "out.mp4"
    process = subprocess.Popen(
        command(long_clip, output, slow_model), stderr=subprocess.PIPE, text=True, preexec_fn=with_default_sigint
    )
    journal = WorkFolder(output).journal_path
    while not (journal.exists() and json.loads(journal.read_text())["segments"]):
        assert process.poll() is None
        time.sleep(0.02)
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "run the same command again to resume" in stderr


@pytest.fixture
def interrupted(long_clip, slow_model, tmp_path) -> Path:
    """An output whose render was killed after three segments."""
    output = tmp_path / "out.mp4"
    run(command(long_clip, output, slow_model), VIDSR_TEST_KILL_AT="journal-written:2")
    assert len(journal_of(output)["segments"]) == 3
    return output


def test_changed_settings_are_refused_with_what_changed(interrupted, long_clip, slow_model):
    refused = run(command(long_clip, interrupted, slow_model, "--crf", "20"))
    assert refused.returncode == 1
    assert "settings.crf: 18 → 20" in refused.stderr
    assert "--restart" in refused.stderr
    assert len(journal_of(interrupted)["segments"]) == 3  # the finished work is still there


def test_restart_starts_over(interrupted, long_clip, slow_model):
    restarted = run(command(long_clip, interrupted, slow_model, "--crf", "20", "--restart"))
    assert restarted.returncode == 0, restarted.stderr
    assert "resuming" not in restarted.stderr
    assert interrupted.exists()


def test_a_changed_input_is_refused(interrupted, long_clip, slow_model, tmp_path):
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(long_clip.read_bytes())
    # Same command, but the file at that path is now another video.
    changed = write_clip(tmp_path / "other.mp4", ClipSpec(width=96, height=64, frames=144, fps=24, audio=[]))
    os.replace(changed, long_clip.with_name("swap.mp4"))
    refused = run(command(long_clip.with_name("swap.mp4"), interrupted, slow_model))
    assert refused.returncode == 1
    assert "input." in refused.stderr and "different job" in refused.stderr


def test_a_damaged_journal_gets_a_clear_message_and_a_way_forward(interrupted, long_clip, slow_model):
    WorkFolder(interrupted).journal_path.write_text('{"vidsr_journal": 1, "job": ')
    refused = run(command(long_clip, interrupted, slow_model))
    assert refused.returncode == 1
    assert "journal" in refused.stderr and "damaged" in refused.stderr and "--restart" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run(command(long_clip, interrupted, slow_model, "--restart")).returncode == 0


def test_a_second_vidsr_on_the_same_output_refuses(long_clip, slow_model, tmp_path):
    output = tmp_path / "out.mp4"
    first = WorkFolder(output)
    first.acquire()  # this test process is the first vidsr, holding the lock
    try:
        second = run(command(long_clip, output, slow_model))
        assert second.returncode == 1
        assert f"another vidsr (process {os.getpid()}) is rendering" in second.stderr
    finally:
        first.release()


def test_a_lock_left_by_a_killed_vidsr_does_not_block(interrupted, long_clip, slow_model):
    assert (WorkFolder(interrupted).path / "lock").exists()  # the dead process's lock file is still there
    resumed = run(command(long_clip, interrupted, slow_model))
    assert resumed.returncode == 0, resumed.stderr


def test_keep_work_keeps_the_segments(long_clip, slow_model, tmp_path):
    output = tmp_path / "out.mp4"
    assert run(command(long_clip, output, slow_model, "--keep-work")).returncode == 0
    segments = sorted(WorkFolder(output).path.glob("segment-*.nut"))
    assert len(segments) == 12
