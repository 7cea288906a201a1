"""`--cluster --device cuda`: CUDA workers are planned on one of them, as Vulkan workers are.

The usual Ray cluster is a head node without a GPU, where the driver runs, and GPU nodes; the
precision, the tile (from the GPU's free memory) and the engine are the GPU's to choose, so a task
holding one of Ray's ``GPU`` makes them. This machine has no GPU: its nodes declare one to Ray
(``num_gpus=1``), which Ray counts and hands out (setting ``CUDA_VISIBLE_DEVICES``) without
looking for one, and torch there finds no CUDA. So the choice fails, and how it fails is the
proof of where it ran: on the GPU node, in a task that Ray gave GPU 0, not on the driver (whose
refusal would be "no CUDA GPU is available to this torch build").

Which GPU a task renders on is decided without torch's CUDA (Ray's IDs, CUDA_VISIBLE_DEVICES), so
nodes declaring two GPUs show it here, with the real deciding code in tasks made as vidsr makes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written on the test machine

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
scheduling_strategies = pytest.importorskip("ray.util.scheduling_strategies")
NodeAffinitySchedulingStrategy = scheduling_strategies.NodeAffinitySchedulingStrategy

import torch  # noqa: E402

from vidsr.render import UpscaleJob, plan_job  # noqa: E402
from vidsr.render.plan import DeviceQuestion  # noqa: E402
from vidsr.render.ray_executor import (  # noqa: E402
    CUDA_GPUS,
    VULKAN_RESOURCE,
    RayBackend,
    _this_tasks_device,  # pyright: ignore[reportPrivateUsage]
    planning_task,
    segment_task_options,
)
from vidsr.upscale import UpscaleOptions, vulkan_devices  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA plans and renders on it")

ANSWERED_BY_RAYS_GPU_0 = "declares GPUs to Ray (this task was given 0, CUDA_VISIBLE_DEVICES=0)"


def vidsr(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The command, without a CUDA_VISIBLE_DEVICES of its own: only a task Ray gives a GPU has one."""
    command = [sys.executable, "-m", "vidsr", *map(str, args)]
    environment = {name: value for name, value in os.environ.items() if name != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run(command, capture_output=True, text=True, env={**environment, **env}, timeout=600)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1, result.stderr
    assert message.startswith("error: ")
    return message


@pytest.fixture(scope="module")
def gpu_nodes():
    """A head node with neither CPUs nor GPUs for tasks (the driver's), a node declaring a CUDA
    GPU (the planning task for CUDA fits there only) and one declaring a Vulkan device."""
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False, "object_store_memory": 80 << 20},
    )
    cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=80 << 20)
    cluster.add_node(num_cpus=1, num_gpus=0, resources={VULKAN_RESOURCE: 1}, object_store_memory=80 << 20)
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


@pytest.mark.parametrize(
    "device", [("--device", "cuda"), ("--device", "auto", "--worker-gpus", "0.5")], ids=["cuda", "auto-half-gpu"]
)
def test_the_device_choices_are_made_by_a_task_holding_a_gpu_not_by_the_driver(
    device, gpu_nodes, clip, nearest_model, tmp_path
):
    """--device cuda, and auto on a cluster with GPUs (here with half a GPU a renderer): the
    driver, without CUDA, does not choose; a task that Ray gave GPU 0 does, and says in one line
    that its node has no usable CUDA. Nothing is rendered, and no work folder is left."""
    output = tmp_path / "out.mp4"
    cluster = ("--cluster", "auto", "--model", nearest_model)
    message = one_line_error(vidsr(clip, output, *cluster, *device, RAY_ADDRESS=gpu_nodes))
    assert ANSWERED_BY_RAYS_GPU_0 in message
    assert "finds no CUDA device there" in message
    assert not output.exists() and not any(tmp_path.iterdir())


def test_a_cluster_without_gpus_refuses_device_cuda_in_one_line(clip, nearest_model, tmp_path):
    """This machine's own cluster (--cluster local) counts the GPUs it has: none."""
    result = vidsr(clip, tmp_path / "out.mp4", "--model", nearest_model, "--device", "cuda", "--cluster", "local")
    assert one_line_error(result) == "error: --device cuda: the Ray cluster has no GPU (try --device cpu)"


def test_the_files_of_a_batch_that_agree_on_model_and_size_are_planned_by_one_task(
    gpu_nodes, clip, nearest_model, tmp_path
):
    """The next file of a batch is planned while the current one's segments hold every GPU: a task
    for it would wait for a GPU to answer what was answered already. Shown on Vulkan, whose
    llvmpipe answers here (the mechanism is CUDA's too): the next file's question is answered by
    the backend itself (the very answer, not a copy back from a worker), another size's is asked."""
    if not vulkan_devices():
        pytest.skip("no Vulkan device (mesa-vulkan-drivers gives llvmpipe)")
    upscale = UpscaleOptions(models=(str(nearest_model),), device="vulkan")
    job = UpscaleJob(input=clip, output=tmp_path / "first.mp4", upscale=upscale)
    plan, _ = plan_job(replace(job, upscale=replace(upscale, device="cpu")))  # the input's facts, the model's hash
    first = DeviceQuestion(job, plan.info, plan.settings.size, plan.model)
    next_file = replace(
        first,
        job=replace(job, input=tmp_path / "second.mp4", output=tmp_path / "second_x4.mp4"),
        info=replace(plan.info, path=tmp_path / "second.mp4"),
    )
    larger = replace(first, size=(2 * plan.settings.size[0], 2 * plan.settings.size[1]))
    backend = RayBackend(gpu_nodes)
    try:
        choose = backend.worker_device("vulkan").choose
        assert choose is not None
        answer = choose(first)
        assert answer.engine.engine == "ncnn" and answer.engine.device.type == "vulkan"
        assert choose(next_file) is answer
        assert choose(larger) is not answer
    finally:
        backend.close()
        ray.shutdown()


# The tasks and the actor below run in Ray's workers, which cannot import this test file by name.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

NODE_SEES = "3,5"  # the CUDA_VISIBLE_DEVICES of one node (its GPUs 3 and 5): Ray's IDs for them are "3", "5"
ROUNDS = 8  # of two tasks at once


@pytest.fixture(scope="module")
def two_gpu_nodes():
    """Two nodes declaring two CUDA GPUs each, beside a head without CPUs or GPUs: one whose
    environment names its GPUs (CUDA_VISIBLE_DEVICES=3,5), one whose does not (Ray's IDs are
    then 0 and 1). By the value of their CUDA_VISIBLE_DEVICES, their node IDs."""
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False, "object_store_memory": 80 << 20},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # neither node inherits this process's
        listed = cluster.add_node(
            num_cpus=2, num_gpus=2, env_vars={"CUDA_VISIBLE_DEVICES": NODE_SEES}, object_store_memory=80 << 20
        )
        unlisted = cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=80 << 20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield {NODE_SEES: listed.node_id, None: unlisted.node_id}
    ray.shutdown()
    cluster.shutdown()


class Pairs:
    """Where the tasks meet two by two: a task waits for the other one running beside it, so the
    two hold their GPUs at the same time. Says which round (pair) a task was in."""

    def __init__(self) -> None:
        self.arrived = 0
        self.lock = threading.Lock()
        self.both = threading.Barrier(2, timeout=300)  # against a hang, not a measure

    def meet(self) -> int:
        with self.lock:
            pair, self.arrived = self.arrived // 2, self.arrived + 1
        self.both.wait()
        return pair


@dataclass(frozen=True)
class TaskSaw:
    device: str  # the device it decided to render (or plan) on
    given: str  # Ray's ID of the GPU it was given
    cuda_visible_devices: str | None
    pair: int


def device_of_a_task(pairs: object) -> TaskSaw:
    """What a task renders on (its plan says "cuda:0", as the planning task named it), as it decides
    in a segment task and in the planning task; it holds it until its pair has decided too."""
    with _this_tasks_device("cuda:0") as device:
        pair = ray.get(pairs.meet.remote())  # pyright: ignore[reportAttributeAccessIssue]
        (given,) = ray.get_gpu_ids()
        return TaskSaw(device, str(given), os.environ.get("CUDA_VISIBLE_DEVICES"), pair)


@pytest.mark.parametrize("node_sees", [NODE_SEES, None], ids=["gpus-listed", "gpus-unlisted"])
def test_each_cuda_segment_task_renders_on_the_gpu_ray_gave_it_in_a_process_whose_view_stays_the_nodes(
    node_sees, two_gpu_nodes
):
    """Ray reuses a worker process from GPU to GPU, but torch stays on the GPU it started on: so
    a segment task keeps its node's CUDA_VISIBLE_DEVICES (every task, however many its process
    ran), and renders on torch's number for the GPU Ray gave it (its place in that list, or Ray's
    ID where the node lists none). Two tasks running at once are on two GPUs. The tasks are made
    with the options the executor gives its CUDA segment tasks, on one node."""
    on_the_node = NodeAffinitySchedulingStrategy(two_gpu_nodes[node_sees], soft=False)
    task = ray.remote(device_of_a_task).options(**segment_task_options(1, CUDA_GPUS), scheduling_strategy=on_the_node)
    pairs = ray.remote(num_cpus=0, max_concurrency=2)(Pairs).remote()
    seen: list[TaskSaw] = ray.get([task.remote(pairs) for _ in range(2 * ROUNDS)], timeout=600)

    gpus = node_sees.split(",") if node_sees else ["0", "1"]
    for saw in seen:
        assert saw.cuda_visible_devices == node_sees
        assert saw.device == f"cuda:{gpus.index(saw.given)}"
    devices_of_each_pair: dict[int, set[str]] = defaultdict(set)
    for saw in seen:
        devices_of_each_pair[saw.pair].add(saw.device)
    assert list(devices_of_each_pair.values()) == [{"cuda:0", "cuda:1"}] * ROUNDS


def test_the_planning_task_keeps_rays_view_of_its_one_gpu_which_torch_calls_cuda_0(two_gpu_nodes):
    """The planning task's process ends with it, so Ray's CUDA_VISIBLE_DEVICES may stay (the one
    GPU it gave the task, by the node's name for it: "3" or "5", or "0" or "1"), and the same rule
    names that GPU cuda:0."""
    task = planning_task(device_of_a_task, CUDA_GPUS, 1.0)
    pairs = ray.remote(num_cpus=0, max_concurrency=2)(Pairs).remote()
    seen: list[TaskSaw] = ray.get([task.remote(pairs) for _ in range(2)], timeout=600)

    assert {saw.given for saw in seen} <= {"3", "5", "0", "1"}
    assert {(saw.device, saw.cuda_visible_devices == saw.given) for saw in seen} == {("cuda:0", True)}
