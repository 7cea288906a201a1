"""The command line's shape: no sub-command word for the main job, help everywhere, the models list."""

from __future__ import annotations

import subprocess
import sys

import pytest
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
