"""--engine auto on the CPU: torch or ncnn, whichever runs this network faster on this machine,
timed once where torch would run fp32, recorded in the job and kept by a resume.

The networks are random-weight SRVGGNetCompact of the embedded compact model's real size (64
features, 16 convolutions: as heavy per pixel as realesr-animevideov3), each test its own weights,
so that each starts from a network this process has not timed. Which engine wins is this
machine's business; the tests check what was timed, what was recorded and what a resume keeps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from media import ClipSpec, write_clip
from safetensors.torch import save_file

from vidsr.models import choose_model
from vidsr.models.arch import SRVGGNetCompact
from vidsr.render.plan import UpscaleJob, plan_job
from vidsr.upscale import UpscaleOptions, choose_engine, vulkan_devices
from vidsr.upscale.engines import MEASURED_MIN_ARITHMETIC, engines_timed
from vidsr.upscale.policy import arithmetic_per_output_pixel
from vidsr.upscale.vulkan import ncnn_installed

pytestmark = pytest.mark.skipif(not ncnn_installed(), reason="the ncnn engine is not installed")
NO_VULKAN_GPU = not any(device.is_gpu for device in vulkan_devices())


def compact_file(tmp_path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    network = SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4)
    path = tmp_path / f"compact-{seed}.safetensors"
    save_file({name: value.contiguous() for name, value in network.state_dict().items()}, str(path))
    return path


def job(tmp_path: Path, seed: int, **upscale: str) -> UpscaleJob:
    clip = tmp_path / "clip.mp4"
    if not clip.exists():
        write_clip(clip, ClipSpec(width=32, height=24, frames=2, audio=[]))
    options = UpscaleOptions(models=(str(compact_file(tmp_path, seed)),), **upscale)  # type: ignore[arg-type]
    return UpscaleJob(input=clip, output=tmp_path / "out.mp4", upscale=options)


def test_the_test_network_is_heavy_enough_to_be_timed(tmp_path: Path) -> None:
    model = choose_model((str(compact_file(tmp_path, 1)),), None)
    assert arithmetic_per_output_pixel(model) >= MEASURED_MIN_ARITHMETIC


def test_where_torch_runs_fp32_auto_times_both_engines_once_and_records_the_faster(tmp_path: Path) -> None:
    before = engines_timed()
    plan, _ = plan_job(job(tmp_path, 2), native_bf16=False)  # a CPU without bf16: torch runs fp32
    assert engines_timed() - before == 2 + (not NO_VULKAN_GPU)
    if NO_VULKAN_GPU:
        assert (plan.engine, plan.device) in {("torch", "cpu"), ("ncnn", "cpu")}
    assert "torch on cpu" in plan.engine_reason and "ncnn on cpu" in plan.engine_reason
    assert (plan.identity.chosen.engine, plan.identity.chosen.device) == (plan.engine, plan.device)
    assert plan.precision == "fp32"

    again, _ = plan_job(job(tmp_path, 2), native_bf16=False)  # the same network, later in the process
    assert engines_timed() - before == 2 + (not NO_VULKAN_GPU)
    assert (again.engine, again.device) == (plan.engine, plan.device)


def test_a_resume_keeps_the_recorded_engine_without_timing(tmp_path: Path) -> None:
    first, _ = plan_job(job(tmp_path, 3), native_bf16=False)
    recorded = first.identity.chosen
    for engine in ("torch", "ncnn"):  # whichever this machine measured: the journal's choice wins
        before = engines_timed()
        resumed, _ = plan_job(job(tmp_path, 4), native_bf16=False, kept=dataclasses.replace(recorded, engine=engine))
        assert (resumed.engine, resumed.device) == (engine, recorded.device)
        assert engines_timed() == before


@pytest.mark.skipif(not NO_VULKAN_GPU, reason="a Vulkan GPU is timed against torch whatever its precision")
def test_where_torch_runs_bf16_it_is_chosen_without_timing(tmp_path: Path) -> None:
    before = engines_timed()
    plan, _ = plan_job(job(tmp_path, 5, precision="bf16"))
    assert (plan.engine, plan.device, plan.precision, plan.engine_reason) == ("torch", "cpu", "bf16", "")
    assert engines_timed() == before


def test_a_named_device_or_a_light_network_is_torch_without_timing(tmp_path: Path) -> None:
    heavy = choose_model((str(compact_file(tmp_path, 6)),), None)
    torch.manual_seed(6)
    light_network = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    light_path = tmp_path / "light.safetensors"
    save_file({name: value.contiguous() for name, value in light_network.state_dict().items()}, str(light_path))
    light = choose_model((str(light_path),), None)
    before = engines_timed()
    assert choose_engine("auto", "cpu", heavy).engine == "torch"
    if NO_VULKAN_GPU:
        assert choose_engine("auto", "auto", light) == choose_engine("torch", "auto", light)
    assert engines_timed() == before
