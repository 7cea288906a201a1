"""Named media and model fixtures, made once per session with PyAV and torch."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WorkerHold:
    """A point in the middle of a segment of ``long_clip`` (segment 1, after encoding its frame 6
    of 12) where the Ray workers of a test's cluster wait while a test holds them: a test that
    kills a worker or a node there finds it in the middle of that segment however late the
    driver's look at the workers comes, and lets the segment's second run through. Let go (its
    release file exists) unless a test holds it, so every other render passes straight through.
    The workers inherit it from their raylet: give ``environment`` to the process that starts it."""

    release: Path
    segment: int = 1
    frame: int = 6

    @property
    def environment(self) -> dict[str, str]:
        return {"VIDSR_TEST_PAUSE_AT": f"frame:{self.segment}:{self.frame}:{self.release}"}

    @property
    def reached(self) -> Path:
        """Made by a worker when it gets to the point (whether held or not)."""
        return self.release.with_name(f"{self.release.name}.reached")

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Workers wait at the point during the block, until ``let_go`` (at the latest, its end)."""
        self.reached.unlink(missing_ok=True)
        self.release.unlink(missing_ok=True)
        try:
            yield
        finally:
            self.let_go()

    def let_go(self) -> None:
        self.release.touch()


@pytest.fixture(scope="module")
def worker_hold(tmp_path_factory) -> WorkerHold:
    hold = WorkerHold(tmp_path_factory.mktemp("hold") / "release")
    hold.let_go()
    return hold


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
