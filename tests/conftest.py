"""Named media and model fixtures, made once per session with PyAV and torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from media import ClipSpec, nearest_compact_model, random_rrdb_model, write_clip, write_srt  # noqa: E402

from vidsr.models.arch import RRDBNet  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path_factory, monkeypatch):
    """Keep the model cache and models folder of the tests away from the user's own."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("VIDSR_CACHE_DIR", os.environ.get("VIDSR_TEST_CACHE_DIR", str(cache)))
    monkeypatch.setenv("VIDSR_MODELS_DIR", str(tmp_path_factory.getbasetemp() / "no-models"))


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media) -> Path:
    """1 s, 64x48, 24 fps H.264 + AAC stereo, BT.709 tagged."""
    return write_clip(media / "clip.mp4")


@pytest.fixture(scope="session")
def vfr_clip(media) -> Path:
    """Variable frame rate: every third frame lasts three times as long."""
    return write_clip(media / "vfr clip.mp4", ClipSpec(vfr=True, frames=18))


@pytest.fixture(scope="session")
def ten_bit_clip(media) -> Path:
    """10-bit 4:2:0, BT.709, with gradients finer than 8 bits can hold."""
    return write_clip(media / "ten-bit.mkv", ClipSpec(pix_fmt="yuv420p10le", frames=12))


@pytest.fixture(scope="session")
def rich_mkv(media) -> Path:
    """An mkv with two audio streams (AAC stereo, Opus mono), subtitles, chapters and rotation."""
    spec = ClipSpec(
        frames=24,
        audio=["aac", "libopus"],
        subtitles=write_srt(media / "subs.srt"),
        chapters=True,
        rotation=90,
    )
    return write_clip(media / "rich.mkv", spec)


@pytest.fixture(scope="session")
def sd_untagged_clip(media) -> Path:
    """An SD clip with no colour tags: it must be read as BT.601."""
    return write_clip(media / "untagged.mp4", ClipSpec(matrix=None, frames=6))


@pytest.fixture(scope="session")
def nearest_model(media) -> Path:
    return nearest_compact_model(media / "nearest-x4.safetensors")


@pytest.fixture(scope="session")
def rrdb_x2_model(media) -> Path:
    return random_rrdb_model(media / "tiny-rrdb-x2.pth", scale=2)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Path:
    """6 s, 96x64, 24 fps with audio: long enough to be killed in the middle of (12 segments of 0.5 s)."""
    return write_clip(tmp_path_factory.mktemp("long") / "long clip.mp4", ClipSpec(width=96, height=64, frames=144))


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory) -> Path:
    """A small random RRDBNet: slow enough (a few seconds for the clip) to be interrupted."""
    torch.manual_seed(0)
    network = RRDBNet(num_feat=24, num_block=1, num_grow_ch=12, scale=4)
    path = tmp_path_factory.mktemp("models") / "slow-rrdb.pth"
    torch.save({"params_ema": network.state_dict()}, path)
    return path


# The settings of a render that a test watches from outside to kill a worker or a node while it is
# in the middle of a segment: segments of 2 s, every frame through the network (--no-reuse). The
# driver looks at its workers twice a second; with reuse, a 0.5 s segment of long_clip can end
# between two looks, and the test would see no worker in the middle of one.
WATCHED_RENDER = ("--batch", "1", "--segment-seconds", "2", "--no-reuse")


@pytest.fixture(scope="session")
def watched_reference(long_clip, slow_model, tmp_path_factory) -> Path:
    """The uninterrupted one-process render of ``long_clip`` with WATCHED_RENDER's settings."""
    output = tmp_path_factory.mktemp("watched") / "reference.mp4"
    command = [sys.executable, "-m", "vidsr", str(long_clip), str(output), "--model", str(slow_model)]
    finished = subprocess.run([*command, *WATCHED_RENDER], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    return output


@pytest.fixture(scope="session")
def long_reference(long_clip, slow_model, tmp_path_factory) -> Path:
    """The uninterrupted one-process render of ``long_clip`` (segments of 0.5 s) by the real command:
    every resumed, interrupted or cluster render of it must equal this."""
    output = tmp_path_factory.mktemp("reference") / "reference.mp4"
    command = [sys.executable, "-m", "vidsr", str(long_clip), str(output), "--model", str(slow_model)]
    finished = subprocess.run(
        [*command, "--batch", "1", "--segment-seconds", "0.5"], capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr
    return output
