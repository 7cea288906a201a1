"""Two vidsr processes on one OUTPUT, the second started while the first is at each phase: the
second never touches the first's temporary output or work folder, and one correct OUTPUT results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import decode_video

from vidsr.render.workfolder import WorkFolder


def start(source: Path, output: Path, model: Path, **env: str) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "vidsr",
        str(source),
        str(output),
        "--model",
        str(model),
        "--segment-seconds",
        "0.5",
    ]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the first vidsr never reached the point"
        time.sleep(0.02)


@pytest.mark.parametrize("phase", ["locked", "finalizing"])
def test_a_second_vidsr_while_the_first_holds_the_output_refuses_and_disturbs_nothing(
    phase, clip, nearest_model, tmp_path
):
    output = tmp_path / "out.mp4"
    release = tmp_path / "go"
    first = start(clip, output, nearest_model, VIDSR_TEST_PAUSE_AT=f"{phase}:{release}")
    wait_for(release.with_name("go.reached"), first)
    work = WorkFolder(output)
    before = sorted(p.name for p in work.path.iterdir())

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidsr",
            str(clip),
            str(output),
            "--model",
            str(nearest_model),
            "--segment-seconds",
            "0.5",
        ],
        capture_output=True,
        text=True,
    )
    assert second.returncode == 1
    assert f"another vidsr (process {first.pid}) is rendering" in second.stderr
    assert sorted(p.name for p in work.path.iterdir()) == before  # its work folder, untouched

    release.touch()
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert len(decode_video(output).times) == 24
    assert not work.path.exists()


def test_two_that_planned_at_once_give_one_output_and_one_clear_refusal(clip, nearest_model, tmp_path):
    """Both checked OUTPUT before either took the lock: the second to get it finds OUTPUT written."""
    output = tmp_path / "out.mp4"
    release = tmp_path / "go"
    first = start(clip, output, nearest_model, VIDSR_TEST_PAUSE_AT=f"planned:{release}")
    wait_for(release.with_name("go.reached"), first)
    second = start(clip, output, nearest_model)
    _, second_errors = second.communicate(timeout=300)
    assert second.returncode == 0, second_errors  # the second took the lock first, and finished
    written = output.stat().st_mtime_ns

    release.touch()
    _, first_errors = first.communicate(timeout=300)
    assert first.returncode == 1
    assert "already exists; use --force" in first_errors
    assert output.stat().st_mtime_ns == written  # not overwritten
    assert not WorkFolder(output).path.exists()  # and no trace left
