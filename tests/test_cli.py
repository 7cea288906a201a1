"""The command line's shape: no sub-command word for the main job, help everywhere, the models list."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import with_default_sigint
from typer.testing import CliRunner

from vidsr.cli.app import app, with_default_command

runner = CliRunner()


@pytest.mark.parametrize(
    ("typed", "routed"),
    [
        (["in.mp4", "out.mp4"], ["upscale", "in.mp4", "out.mp4"]),
        (["--force", "in.mp4", "out.mp4"], ["upscale", "--force", "in.mp4", "out.mp4"]),
        (["models"], ["models"]),
        (["upscale", "a", "b"], ["upscale", "a", "b"]),
        (["--help"], ["--help"]),
        ([], []),
    ],
)
def test_input_output_needs_no_sub_command_word(typed, routed):
    assert with_default_command(typed) == routed


def test_help_names_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("upscale", "models", "interpolate", "frames", "image", "info", "train"):
        assert command in result.output


def test_upscale_help_lists_the_options_users_look_for():
    result = runner.invoke(app, ["upscale", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--scale", "--model", "--device", "--batch", "--codec", "--crf", "--preset", "--force"):
        assert option in result.output


def test_models_lists_the_embedded_models_with_credit():
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3"):
        assert name in result.output
    assert "Real-ESRGAN (BSD-3-Clause, Xintao Wang et al.)" in result.output


def test_python_dash_m_is_the_same_command():
    process = subprocess.run([sys.executable, "-m", "vidsr", "--help"], capture_output=True, text=True)
    assert process.returncode == 0
    assert "models" in process.stdout


def mapped(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc to see what is loading")
@pytest.mark.parametrize("loading", ["libtorch", "libavcodec"])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopped_while_starting_it_says_one_line_and_exits_with_the_signals_code(stop, loading, clip, tmp_path):
    """Start-up (torch, PyAV) takes a second or more: a Ctrl-C then is one line, no traceback."""
    output = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "vidsr", clip, output, "--model", "realesr-animevideov3"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=with_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not mapped(process.pid, loading) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + stop  # 130 for Ctrl-C, 143 for SIGTERM
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith("interrupted") or "run the same command again" in stderr
    assert not output.exists()
