"""`--cluster --device cuda`: CUDA workers are planned on one of them, as Vulkan workers are.

The usual Ray cluster is a head node without a GPU, where the driver runs, and GPU nodes; the
precision, the tile (from the GPU's free memory) and the engine are the GPU's to choose, so a task
holding one of Ray's ``GPU`` makes them. This machine has no GPU: its nodes declare one to Ray
(``num_gpus=1``), which Ray counts and hands out (setting ``CUDA_VISIBLE_DEVICES``) without
looking for one, and torch there finds no CUDA. So the choice fails, and how it fails is the
proof of where it ran: on the GPU node, in a task that Ray gave GPU 0, not on the driver (whose
refusal would be "no CUDA GPU is available to this torch build").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written on the test machine

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

import torch  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA plans and renders on it")

ANSWERED_BY_RAYS_GPU_0 = "declares GPUs to Ray (this task was given 0, CUDA_VISIBLE_DEVICES=0)"


def vidsr(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The command, in an environment that hides no GPU from it (as a driver's would not)."""
    command = [sys.executable, "-m", "vidsr", *map(str, args)]
    environment = {name: value for name, value in os.environ.items() if name != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run(command, capture_output=True, text=True, env={**environment, **env}, timeout=600)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1, result.stderr
    assert message.startswith("error: ")
    return message


@pytest.fixture(scope="module")
def head_without_gpu_and_a_gpu_node():
    """A head node with neither CPUs nor GPUs for tasks (the driver's), and a node declaring a
    GPU: the planning task fits on that node only."""
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False, "object_store_memory": 80 << 20},
    )
    cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=80 << 20)
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


@pytest.mark.parametrize(
    "device", [("--device", "cuda"), ("--device", "auto", "--worker-gpus", "0.5")], ids=["cuda", "auto-half-gpu"]
)
def test_the_device_choices_are_made_by_a_task_holding_a_gpu_not_by_the_driver(
    device, head_without_gpu_and_a_gpu_node, clip, nearest_model, tmp_path
):
    """--device cuda, and auto on a cluster with GPUs (here with half a GPU a renderer): the
    driver, without CUDA, does not choose; a task that Ray gave GPU 0 does, and says in one line
    that its node has no usable CUDA. Nothing is rendered, and no work folder is left."""
    output = tmp_path / "out.mp4"
    cluster = ("--cluster", "auto", "--model", nearest_model)
    message = one_line_error(vidsr(clip, output, *cluster, *device, RAY_ADDRESS=head_without_gpu_and_a_gpu_node))
    assert ANSWERED_BY_RAYS_GPU_0 in message
    assert "finds no CUDA device there" in message
    assert not output.exists() and not any(tmp_path.iterdir())


def test_a_cluster_without_gpus_refuses_device_cuda_in_one_line(clip, nearest_model, tmp_path):
    """This machine's own cluster (--cluster local) counts the GPUs it has: none."""
    result = vidsr(clip, tmp_path / "out.mp4", "--model", nearest_model, "--device", "cuda", "--cluster", "local")
    assert one_line_error(result) == "error: --device cuda: the Ray cluster has no GPU (try --device cpu)"
