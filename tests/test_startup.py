"""`vidsr --help`, every command's help and every usage error answer at once: no torch, PyAV,
NumPy or Ray is loaded until a command knows it will run.

Each case runs the real console script's entry in a fresh interpreter and reads, after the
command is done, which of those libraries are in ``sys.modules``. No timings: the modules
loaded are what makes start-up slow, and they are exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

HEAVY = ("torch", "av", "numpy", "ray")

# Runs `vidsr ARGS` as the console script does, then says how it ended and what it loaded.
PROBE = f"""
import json, sys
from vidsr.cli.entry import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else 1
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
sys.stderr.write("\\n" + json.dumps({{"code": code, "loaded": loaded}}) + "\\n")
"""


@dataclass(frozen=True)
class Ran:
    code: int
    loaded: list[str]
    output: str  # stdout and stderr, less the probe's own line


def vidsr(*args: str) -> Ran:
    wide_terminal = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    process = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=wide_terminal, timeout=120
    )
    *said, probe_line = process.stderr.rstrip("\n").split("\n")
    ended = json.loads(probe_line)
    return Ran(code=ended["code"], loaded=ended["loaded"], output=process.stdout + "\n".join(said))


COMMANDS = ("upscale", "frames", "image", "info", "models", "interpolate", "train", "batch", "compare")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_commands_help_loads_none_of_the_heavy_libraries(command):
    ran = vidsr(command, "--help")
    assert ran.code == 0
    assert f"Usage: vidsr {command}" in ran.output
    assert ran.loaded == []


def test_the_top_level_help_names_every_command_and_loads_nothing_heavy():
    ran = vidsr("--help")
    assert ran.code == 0
    assert all(command in ran.output for command in COMMANDS)
    assert ran.loaded == []


def test_the_help_of_vidsr_input_output_is_the_renders(tmp_path):
    ran = vidsr(str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--help")
    assert ran.code == 0
    assert "Usage: vidsr upscale" in ran.output
    assert "--model" in ran.output and "--crf" in ran.output
    assert "pip install 'vidsr[ray]'" in ran.output  # the extra's name is not taken for markup
    assert ran.loaded == []


def test_the_help_of_the_batch_form_is_the_batchs(tmp_path):
    ran = vidsr(str(tmp_path), str(tmp_path / "out") + "/", "--help")
    assert ran.code == 0
    assert "Usage: vidsr batch" in ran.output
    assert "--glob" in ran.output and "--model" in ran.output and "--crf" in ran.output
    assert ran.loaded == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("upscale",), "Missing argument 'input'"),
        (("in.mp4",), "Missing argument 'output'"),
        (("in.mp4", "out.mp4", "--crf", "99"), "--crf"),
        (("in.mp4", "out.mp4", "--no-such-option"), "No such option: --no-such-option"),
        (("frames", "in.mp4"), "Missing argument 'outdir'"),
        (("info", "in.mp4", "--tile", "-1"), "--tile"),
        (("train", "--out", "runs"), "Missing option '--data'"),
        (("interpolate", "a.pth", "b.pth"), "Missing option '--output'"),
    ],
    ids=["no-input", "no-output", "crf-range", "unknown-option", "frames-no-outdir", "tile-range", "train", "interp"],
)
def test_a_usage_error_is_exit_2_and_loads_nothing_heavy(args, said):
    ran = vidsr(*args)
    assert ran.code == 2
    assert said in ran.output
    assert "Traceback" not in ran.output
    assert ran.loaded == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("in.mp4", "out.mp4", "--deinterlace", "sideways"), "--deinterlace 'sideways' is not a choice"),
        (("in.mp4", "out.mp4", "--worker-cpus", "2"), "--worker-cpus is for --cluster"),
        (("in.mp4", "out.mp4", "--worker-gpus", "0.5"), "--worker-gpus is for --cluster"),
        (("in.mp4", "out.mp4", "--cluster", "local", "--worker-gpus", "0"), "--worker-gpus must be more than 0"),
        (("in.mp4", "out.mp4", "--cluster", "local", "--worker-gpus", "2"), "a renderer runs on one GPU"),
        (("image", "one.png"), "give at least one input and an output"),
    ],
    ids=["deinterlace", "worker-cpus", "worker-gpus", "worker-gpus-zero", "worker-gpus-two", "image-no-output"],
)
def test_a_refusal_the_options_alone_decide_is_one_line_before_anything_heavy_loads(args, said):
    ran = vidsr(*args)
    assert ran.code == 1
    [line] = ran.output.strip().splitlines()
    assert line.startswith("error: ") and said in line
    assert ran.loaded == []


def test_a_device_a_cluster_cannot_honour_is_refused_before_ray_loads(tmp_path):
    """A cluster gives each worker its own device: naming one is refused before a cluster starts."""
    source = tmp_path / "in.mp4"
    source.write_bytes(b"not read: the device is refused first")
    ran = vidsr(str(source), str(tmp_path / "out.mp4"), "--device", "vulkan:0", "--cluster", "local")
    assert ran.code == 1
    [line] = ran.output.strip().splitlines()
    assert line == (
        "error: --device vulkan:0 picks one Vulkan device; a cluster gives each worker its own: use --device vulkan"
    )
    assert "ray" not in ran.loaded


def test_a_command_that_runs_loads_what_it_runs_on():
    """The probe sees a heavy library when one is loaded: `vidsr models` reads weight files with torch."""
    ran = vidsr("models")
    assert ran.code == 0
    assert "realesrgan-x4plus" in ran.output
    assert "torch" in ran.loaded
