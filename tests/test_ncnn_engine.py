"""The ncnn engine (--engine ncnn, --device vulkan): the same frames as torch, through the same runner.

Vulkan runs on whatever device ncnn finds; in CI that is Mesa's llvmpipe (a Vulkan device on the
CPU, mesa-vulkan-drivers), slow, so frames are tiny and each embedded model runs once.
"""

from __future__ import annotations

import copy
import dataclasses
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from media import ClipSpec, decode_video, psnr, write_clip
from PIL import Image
from reference_nets import OldESRGAN, ReferenceCompact
from test_upscale_video import vidsr

from vidsr.errors import SettingsError, VidsrError
from vidsr.models import LoadedModel, choose_model
from vidsr.models.loader import detect_and_build
from vidsr.render.identity import MachineChoices
from vidsr.render.plan import UpscaleJob, plan_job
from vidsr.upscale import UpscaleOptions, Upscaler, choose_engine, vulkan_devices
from vidsr.upscale.engines import EngineChoice, measure_engines
from vidsr.upscale.memory import DeviceOutOfMemory
from vidsr.upscale.ncnn_engine import NcnnEngine

CPU = torch.device("cpu")
VULKAN = torch.device("vulkan", 0)
needs_vulkan = pytest.mark.skipif(
    not vulkan_devices(), reason="no Vulkan device (apt-get install mesa-vulkan-drivers gives llvmpipe)"
)
FP32_DB, FP16_DB = 50.0, 45.0  # the tolerances against torch fp32


def tensor_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr(a.numpy(), b.numpy())


def user_network(family: str) -> LoadedModel:
    """A random-weight file of each family as a user would have it: RRDB x2 (pixel-unshuffle), compact x4."""
    torch.manual_seed(5)
    network = OldESRGAN(unshuffle=2) if family == "RRDBNet" else ReferenceCompact(act="prelu")
    return detect_and_build(dict(network.state_dict()), name=f"user {family}", source="test")


def fresh(model: LoadedModel) -> LoadedModel:
    """A copy whose module no Upscaler has taken over."""
    return dataclasses.replace(model, module=copy.deepcopy(model.module))


def torch_fp32(model: LoadedModel, frames: torch.Tensor, **options: int) -> torch.Tensor:
    return Upscaler(fresh(model), device=CPU, precision="fp32", **options).upscale_rgb(frames)


FRAMES = torch.rand(2, 3, 24, 31, generator=torch.Generator().manual_seed(2))  # odd width: padding for x2


# ---------------------------------------------------------------- the runner on ncnn


@pytest.mark.parametrize("family", ["RRDBNet", "SRVGGNetCompact"])
def test_users_networks_on_ncnn_cpu_equal_torch(family: str) -> None:
    model = user_network(family)
    output = Upscaler(fresh(model), device=CPU, precision="fp32", engine="ncnn").upscale_rgb(FRAMES)
    assert tensor_psnr(output, torch_fp32(model, FRAMES)) >= FP32_DB


@needs_vulkan
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_users_networks_on_vulkan_equal_torch(precision: str) -> None:
    model = user_network("RRDBNet")
    output = Upscaler(fresh(model), device=VULKAN, precision=precision, engine="ncnn").upscale_rgb(FRAMES)  # type: ignore[arg-type]
    assert tensor_psnr(output, torch_fp32(model, FRAMES)) >= (FP32_DB if precision == "fp32" else FP16_DB)


def test_tiles_on_ncnn_equal_whole_frames_on_torch() -> None:
    model = user_network("SRVGGNetCompact")
    frame = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(4))
    tiled = Upscaler(fresh(model), device=CPU, precision="fp32", engine="ncnn", tile=32).upscale_rgb(frame)
    assert tensor_psnr(tiled, torch_fp32(model, frame)) >= FP32_DB


def test_grey_networks_run_on_ncnn_as_on_torch() -> None:
    torch.manual_seed(6)
    model = detect_and_build(dict(OldESRGAN(in_nc=1, out_nc=1).state_dict()), name="grey", source="test")
    output = Upscaler(fresh(model), device=CPU, precision="fp32", engine="ncnn").upscale_rgb(FRAMES)
    assert tensor_psnr(output, torch_fp32(model, FRAMES)) >= FP32_DB


def test_ncnn_options_change_how_not_what_it_computes() -> None:
    """bench/engines.py sets ncnn's own options: another convolution algorithm, the same frames."""
    model = user_network("SRVGGNetCompact")
    padded = FRAMES[:, :, :24, :28]
    plain = NcnnEngine(model, gpu=None)(padded)
    direct = NcnnEngine(model, gpu=None, options={"use_winograd_convolution": False, "num_threads": 1})(padded)
    assert plain.shape == direct.shape == (2, 3, 96, 112)
    assert tensor_psnr(direct, plain) >= FP32_DB
    with pytest.raises(VidsrError, match="no option 'use_magic'"):
        NcnnEngine(model, gpu=None, options={"use_magic": True})


def test_ncnn_running_out_of_memory_recovers_in_smaller_tiles() -> None:
    """A real allocation failure: the process's address space capped below what a whole 600x600
    frame needs in a wide network (ncnn returns -100), not below what its tiles need. (On a Vulkan
    device the same -100 goes the same way; llvmpipe, asked for buffers over its 1 GB heap, crashes
    instead, so the planner keeps passes within the heap budget.)"""
    torch.manual_seed(0)
    wide = ReferenceCompact(num_feat=128, num_conv=2, upscale=2, act="prelu")
    model = detect_and_build(dict(wide.state_dict()), name="wide", source="test")
    frame = torch.rand(1, 3, 600, 600, generator=torch.Generator().manual_seed(1))
    expected = torch_fp32(model, frame)
    upscaler = Upscaler(model, device=CPU, precision="fp32", engine="ncnn", tile=600)
    upscaler.upscale_rgb(torch.rand(1, 3, 40, 40))  # threads started, pools made, before the cap
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + 200 * 2**20, hard))
    try:
        with pytest.raises(DeviceOutOfMemory):
            upscaler.engine(frame)
        upscaler.engine.release_memory()
        result = upscaler.upscale_rgb(frame)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert 32 <= upscaler._plans[(1, 600, 600)] < 600  # pyright: ignore[reportPrivateUsage]
    assert tensor_psnr(result, expected) >= FP32_DB


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


# ---------------------------------------------------------------- choosing the engine


def test_auto_stays_on_torch_without_a_vulkan_gpu_and_names_its_device() -> None:
    model = user_network("SRVGGNetCompact")
    if not any(device.is_gpu for device in vulkan_devices()):
        assert choose_engine("auto", "auto", model).engine == "torch"
    assert choose_engine("ncnn", "cpu", model) == EngineChoice("ncnn", CPU)
    assert choose_engine("auto", "cpu", model).engine == "torch"


def test_wrong_pairs_of_engine_and_device_are_one_line_errors() -> None:
    model = user_network("SRVGGNetCompact")
    with pytest.raises(SettingsError, match="--engine"):
        choose_engine("tensorrt", "auto", model)
    foreign = dataclasses.replace(model, architecture="SwinIR")
    with pytest.raises(SettingsError, match="SwinIR, which stays on torch"):
        choose_engine("ncnn", "cpu", foreign)
    assert choose_engine("auto", "auto", foreign).engine == "torch"
    with pytest.raises(SettingsError, match="--device vulkan"):
        choose_engine("ncnn", "vulkan:7", model)
    if vulkan_devices():
        with pytest.raises(SettingsError, match="ncnn engine"):
            choose_engine("torch", "vulkan", model)


def test_engines_are_measured_once_per_process_and_model() -> None:
    model = user_network("SRVGGNetCompact")
    candidates = (EngineChoice("torch", CPU), EngineChoice("ncnn", CPU))
    first = measure_engines(model, candidates)
    assert set(first) == set(candidates) and all(seconds > 0 for seconds in first.values())
    assert measure_engines(model, candidates) == first


def test_a_resume_keeps_the_engine_auto_chose(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", ClipSpec(width=32, height=24, frames=2, audio=[]))
    path = tmp_path / "user.pth"
    torch.manual_seed(5)
    torch.save(ReferenceCompact(act="prelu").state_dict(), path)
    job = UpscaleJob(input=clip, output=tmp_path / "out.mp4", upscale=UpscaleOptions(models=(str(path),)))
    fresh_plan, _ = plan_job(job)
    assert fresh_plan.identity.chosen.engine == "torch" or any(device.is_gpu for device in vulkan_devices())
    kept, _ = plan_job(job, kept=MachineChoices(tile=0, precision="fp32", engine="ncnn", device="cpu"))
    assert (kept.engine, kept.device, kept.settings.engine) == ("ncnn", "cpu", "auto")


# ---------------------------------------------------------------- through the command line


def write_user_file(tmp_path: Path, family: str) -> Path:
    path = tmp_path / f"{family}.pth"
    torch.manual_seed(5)
    torch.save((OldESRGAN(unshuffle=2) if family == "RRDBNet" else ReferenceCompact(act="prelu")).state_dict(), path)
    return path


def upscale_image(tmp_path: Path, model: str, *options: str) -> np.ndarray:
    source = tmp_path / "photo.png"
    if not source.exists():
        rng = np.random.default_rng(3)
        smooth = np.linspace(0, 255, 32 * 24 * 3).reshape(24, 32, 3)
        Image.fromarray(np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)).save(source)
    target = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}.png"
    result = vidsr("image", source, target, "--model", model, *options)
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(target), dtype=np.float64) / 255


# Each embedded model once: on Vulkan where the fp16 path has most to lose (the RRDB trunk), on the
# CPU for the rest. The 23-block x4plus stays off llvmpipe here (a minute there); bench/engines.py
# measures its Vulkan parity, models/README.md has the numbers.
EMBEDDED_RUNS = {
    "realesr-animevideov3 on Vulkan": ("realesr-animevideov3", ("--device", "vulkan"), FP16_DB),
    "realesrgan-x4plus-anime on Vulkan": ("realesrgan-x4plus-anime", ("--device", "vulkan:0"), FP16_DB),
    "realesrgan-x4plus on ncnn's CPU": ("realesrgan-x4plus", ("--engine", "ncnn", "--device", "cpu"), FP32_DB),
}


@pytest.mark.parametrize("run", EMBEDDED_RUNS)
def test_embedded_models_through_vidsr_image_equal_torch(run: str, tmp_path: Path) -> None:
    model, options, tolerance = EMBEDDED_RUNS[run]
    if "vulkan" in " ".join(options) and not vulkan_devices():
        pytest.skip("no Vulkan device (apt-get install mesa-vulkan-drivers gives llvmpipe)")
    reference = upscale_image(tmp_path, model, "--engine", "torch", "--precision", "fp32")
    assert psnr(upscale_image(tmp_path, model, *options), reference) >= tolerance


@pytest.mark.parametrize("family", ["RRDBNet", "SRVGGNetCompact"])
def test_a_users_file_through_vidsr_image_on_ncnn(family: str, tmp_path: Path) -> None:
    path = str(write_user_file(tmp_path, family))
    reference = upscale_image(tmp_path, path, "--engine", "torch", "--precision", "fp32")
    assert psnr(upscale_image(tmp_path, path, "--engine", "ncnn", "--device", "cpu"), reference) >= FP32_DB
    if vulkan_devices():
        assert psnr(upscale_image(tmp_path, path, "--device", "vulkan"), reference) >= FP16_DB


@pytest.fixture(scope="module")
def small_clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ncnn-clips")
    eight = write_clip(folder / "clip.mp4", ClipSpec(width=32, height=24, frames=3))
    ten = write_clip(folder / "ten.mkv", ClipSpec(width=32, height=24, frames=3, pix_fmt="yuv420p10le"))
    return eight, ten


def render(source: Path, output: Path, *options: str | Path) -> list[np.ndarray]:
    """Encoded losslessly (x264 at --crf 0): the comparison sees the network's frames, not the
    encoder's different choices for inputs that differ in a few last bits."""
    result = vidsr(source, output, "--quiet", "--crf", "0", *options)
    assert result.exit_code == 0, result.output
    return decode_video(output).frames


@pytest.mark.parametrize(("family", "depth"), [("RRDBNet", 8), ("SRVGGNetCompact", 10)])
def test_a_video_on_ncnn_equals_torch(family: str, depth: int, small_clips, tmp_path: Path) -> None:
    path = write_user_file(tmp_path, family)
    source = small_clips[0 if depth == 8 else 1]
    reference = render(source, tmp_path / f"torch{source.suffix}", "--model", path, "--engine", "torch")
    frames = render(source, tmp_path / f"ncnn{source.suffix}", "--model", path, "--engine", "ncnn", "--device", "cpu")
    assert min(psnr(a, b) for a, b in zip(frames, reference)) >= FP32_DB


@needs_vulkan
def test_an_embedded_model_renders_a_video_on_vulkan(small_clips, tmp_path: Path) -> None:
    clip, _ = small_clips
    model = ("--model", "realesr-animevideov3")
    reference = render(clip, tmp_path / "torch.mp4", *model, "--engine", "torch", "--precision", "fp32")
    result = vidsr(clip, tmp_path / "vulkan.mp4", *model, "--crf", "0", "--device", "vulkan")
    assert result.exit_code == 0, result.output
    assert "vulkan:0 (ncnn)" in result.output
    frames = decode_video(tmp_path / "vulkan.mp4").frames
    assert len(frames) == len(reference) == 3
    assert min(psnr(a, b) for a, b in zip(frames, reference)) >= FP16_DB


def test_bad_engine_choices_on_the_command_line_are_one_line(small_clips, tmp_path: Path) -> None:
    clip, _ = small_clips
    result = vidsr(clip, tmp_path / "out.mp4", "--model", "realesr-animevideov3", "--engine", "tensorrt")
    assert result.exit_code == 1 and "--engine 'tensorrt': choose auto, torch, ncnn" in result.output
    assert "Traceback" not in result.output
    if vulkan_devices():
        result = vidsr(clip, tmp_path / "out.mp4", "--engine", "torch", "--device", "vulkan")
        assert result.exit_code == 1 and "runs on the ncnn engine" in result.output


def test_vidsr_models_lists_the_vulkan_devices() -> None:
    result = vidsr("models")
    assert result.exit_code == 0
    names = [device.name for device in vulkan_devices()] or ["no device found"]
    assert all(name in result.output for name in names) and "Vulkan:" in result.output


def test_choose_model_gives_the_same_network_to_both_engines() -> None:
    """The embedded weights the ncnn engine exports are the ones torch runs (no second path)."""
    model = choose_model(("realesr-animevideov3",), None)
    frame = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(7))
    output = Upscaler(fresh(model), device=CPU, precision="fp32", engine="ncnn").upscale_rgb(frame)
    assert tensor_psnr(output, torch_fp32(model, frame)) >= 80.0
