"""`--cluster local --device vulkan`: Ray workers on Vulkan devices, counted as Ray's custom resource
``vulkan_gpu``, give what one process on the same device gives. Runs on Mesa's llvmpipe where there
is no GPU: an explicit --device vulkan takes a software device, --device auto never does.

A driver without a Vulkan device (a laptop, a head node) is a vidsr process whose Vulkan loader
finds no driver (``VK_ICD_FILENAMES`` naming none): it plans through a worker of a Ray started
here, whose processes see llvmpipe, as nodes started with `ray start --resources` do.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written on the test machine

ray = pytest.importorskip("ray")
pytest.importorskip("ncnn")

from test_cluster import assert_same_output  # noqa: E402

from vidsr.errors import ModelError  # noqa: E402
from vidsr.models.arch import SRVGGNetCompact  # noqa: E402
from vidsr.render import UpscaleJob, plan_job  # noqa: E402
from vidsr.render.identity import MachineChoices  # noqa: E402
from vidsr.render.plan import DeviceQuestion, choose_for_this_device  # noqa: E402
from vidsr.render.ray_executor import VULKAN_RESOURCE  # noqa: E402
from vidsr.render.workfolder import WorkFolder  # noqa: E402
from vidsr.upscale import UpscaleOptions, vulkan_devices  # noqa: E402

pytestmark = pytest.mark.skipif(not vulkan_devices(), reason="no Vulkan device (mesa-vulkan-drivers gives llvmpipe)")


def vidsr(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vidsr", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600)


def random_compact_model(path: Path) -> Path:
    """A tiny SRVGGNetCompact with random weights: every pixel of its output is the network's."""
    torch.manual_seed(1)
    network = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    save_file({name: value.contiguous() for name, value in network.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return random_compact_model(tmp_path_factory.mktemp("vulkan") / "compact.safetensors")


def on_vulkan(model: Path) -> tuple[str | Path, ...]:
    return ("--model", model, "--device", "vulkan", "--segment-seconds", "0.5")


def test_choices_made_where_the_device_is_are_those_made_here_and_keep_an_interrupted_runs(clip, model, tmp_path):
    """What a Vulkan worker answers the driver (here in this process, without Ray): the same engine,
    precision and tile a plan made here has; an interrupted run's tile and precision kept; and
    weights other than the planned ones refused."""
    job = UpscaleJob(
        input=clip, output=tmp_path / "out.mp4", upscale=UpscaleOptions(models=(str(model),), device="vulkan")
    )
    here, _ = plan_job(job)
    elsewhere, _ = plan_job(job, device="vulkan", choose_elsewhere=choose_for_this_device)
    assert elsewhere.identity == here.identity
    interrupted = MachineChoices(tile=40, precision="fp32", engine="ncnn", device="vulkan:0")
    resumed, _ = plan_job(job, device="vulkan", kept=interrupted, choose_elsewhere=choose_for_this_device)
    assert resumed.identity.chosen == interrupted
    other_weights = dataclasses.replace(here.model, sha256="0" * 64)
    with pytest.raises(ModelError, match="not the model the render is planned with"):
        choose_for_this_device(DeviceQuestion(job, here.info, here.settings.size, other_weights))


@pytest.fixture(scope="module")
def alone(clip, model, tmp_path_factory) -> Path:
    """The render in one process on this machine's Vulkan device."""
    output = tmp_path_factory.mktemp("vulkan") / "alone.mp4"
    one = vidsr(clip, output, *on_vulkan(model))
    assert one.returncode == 0, one.stderr
    return output


def test_vulkan_workers_give_what_one_process_on_vulkan_gives(clip, model, alone, tmp_path):
    spread = tmp_path / "spread.mp4"
    clustered = vidsr(clip, spread, *on_vulkan(model), "--cluster", "local")
    assert clustered.returncode == 0, clustered.stderr
    assert "vulkan:0" in clustered.stderr  # the result line names the device the workers rendered on
    assert_same_output(spread, alone)


@pytest.fixture(scope="module")
def vulkan_node():
    """A Ray of this machine whose node declares its Vulkan device, as `ray start --resources
    '{"vulkan_gpu": 1}'` does; its worker processes see llvmpipe whatever the driver sees."""
    ray.init(
        address="local",
        num_cpus=2,
        resources={VULKAN_RESOURCE: 1},
        object_store_memory=100 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_a_driver_without_vulkan_plans_on_a_vulkan_worker_and_shares_its_device(
    clip, model, alone, vulkan_node, tmp_path
):
    """A driver without a Vulkan device or ncnn: the worker chooses precision and tile for its
    device (llvmpipe stores fp16, which the driver cannot know), the journal keeps that choice for
    a resume, and --worker-gpus 0.5 puts two renderers on the one device: the output is still the
    one-process render's."""
    no_vulkan = {"VK_ICD_FILENAMES": str(tmp_path / "no-such-driver.json")}
    here = vidsr(clip, tmp_path / "here.mp4", *on_vulkan(model), **no_vulkan)
    assert here.returncode == 1 and "finds no Vulkan device" in here.stderr  # the driver has none
    blocker = tmp_path / "no_ncnn"  # nor the ncnn package: the driver never runs the network
    blocker.mkdir()
    (blocker / "ncnn.py").write_text("raise ImportError('no ncnn here')\n")
    no_ncnn = {"PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    spread = tmp_path / "spread.mp4"
    cluster = ("--cluster", "auto", "--worker-gpus", "0.5", "--keep-work")
    clustered = vidsr(clip, spread, *on_vulkan(model), *cluster, RAY_ADDRESS=vulkan_node, **no_vulkan, **no_ncnn)
    assert clustered.returncode == 0, clustered.stderr
    assert "on vulkan:0 (ncnn) (2 workers)" in clustered.stderr
    assert_same_output(spread, alone)
    journal = WorkFolder(spread).read_journal()
    assert journal is not None
    assert (journal.job.chosen.engine, journal.job.chosen.precision) == ("ncnn", "fp16")
