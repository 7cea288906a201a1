"""`--cluster local --device vulkan`: Ray workers on Vulkan devices, counted as Ray's custom resource
``vulkan_gpu``, give what one process on the same device gives. Runs on Mesa's llvmpipe where there
is no GPU: an explicit --device vulkan takes a software device, --device auto never does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written on the test machine

pytest.importorskip("ray")
pytest.importorskip("ncnn")

from test_cluster import assert_same_output  # noqa: E402

from vidsr.models.arch import SRVGGNetCompact  # noqa: E402
from vidsr.upscale import vulkan_devices  # noqa: E402

pytestmark = pytest.mark.skipif(not vulkan_devices(), reason="no Vulkan device (mesa-vulkan-drivers gives llvmpipe)")


def vidsr(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vidsr", *map(str, args)], capture_output=True, text=True, timeout=600)


def random_compact_model(path: Path) -> Path:
    """A tiny SRVGGNetCompact with random weights: every pixel of its output is the network's."""
    torch.manual_seed(1)
    network = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    save_file({name: value.contiguous() for name, value in network.state_dict().items()}, str(path))
    return path


def test_vulkan_workers_give_what_one_process_on_vulkan_gives(clip, tmp_path):
    model = random_compact_model(tmp_path / "compact.safetensors")
    common = ("--model", model, "--device", "vulkan", "--segment-seconds", "0.5")
    alone, spread = tmp_path / "alone.mp4", tmp_path / "spread.mp4"
    one = vidsr(clip, alone, *common)
    assert one.returncode == 0, one.stderr
    clustered = vidsr(clip, spread, *common, "--cluster", "local")
    assert clustered.returncode == 0, clustered.stderr
    assert "vulkan:0" in clustered.stderr  # the result line names the device the workers rendered on
    assert_same_output(spread, alone)
