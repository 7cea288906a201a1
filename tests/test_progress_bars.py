"""What the render's and the training's bars show on a terminal: one bar, kept when done, with the
counts, the speed or the losses, and the time left."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from vidsr.cli import console
from vidsr.cli import render as render_cli
from vidsr.cli import train as train_cli
from vidsr.render import Activity, Progress
from vidsr.train.trainer import TrainProgress, Validation
from vidsr.upscale.reuse import ReuseCount


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=200, color_system=None)


def last_drawn(screen: Console) -> str:
    """The bar as it was left on the screen: the last of its redraws, without the terminal codes."""
    written = screen.file.getvalue()  # pyright: ignore[reportAttributeAccessIssue]
    assert isinstance(written, str)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written)
    return [line for line in re.split(r"[\r\n]", text) if line.strip()][-1]


def test_the_render_bar_shows_frames_speed_time_left_reuse_and_the_workers(monkeypatch: pytest.MonkeyPatch):
    screen = terminal()
    monkeypatch.setattr(console, "stderr", screen)
    with render_cli.progress_bar(enabled=True) as on_progress:
        on_progress(
            Progress(
                frames_done=12,
                frames_total=48,
                elapsed=4.0,
                segments_done=1,
                segments_total=4,
                workers=(Activity(worker="a", segment=2, frames=5), Activity(worker="b", segment=None, frames=0)),
                reuse=ReuseCount(tiles=10, reused=6),
            )
        )
    last = last_drawn(screen)
    assert "upscaling" in last and "12/48" in last and "frames  3.00 fps" in last and "ETA" in last
    assert "60 % of tiles reused" in last and "seg 1/4 · s2 5f" in last


def test_the_training_bar_starts_where_a_resumed_run_is_and_shows_the_losses():
    screen = terminal()
    validation = Validation(step=100, psnr=28.5, ssim=0.9, bicubic_psnr=26.25, bicubic_ssim=0.8)
    with train_cli._progress_bar(screen, enabled=True) as on_progress:  # pyright: ignore[reportPrivateUsage]
        on_progress(
            TrainProgress(
                step=120,
                steps=400,
                resumed_from=100,
                losses={"l1": 0.0321},
                learning_rate=2e-4,
                seconds=1.0,
                validation=validation,
                checkpointed=False,
            )
        )
    last = last_drawn(screen)
    assert "training" in last and "120/400" in last and "ETA" in last
    assert "l1 0.0321  lr 2.0e-04  val 28.50 dB (bicubic 26.25)" in last
