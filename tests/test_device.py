"""Which device a render runs on, and what a GPU's precision keeps (checked here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidsr.cli.app import app, with_default_command
from vidsr.errors import SettingsError
from vidsr.upscale import select_device
from vidsr.upscale.engines import exact_fp32
from vidsr.upscale.memory import is_out_of_memory
from vidsr.upscale.vulkan import VulkanDevice, most_capable, vulkan_devices


def test_cpu_and_auto_are_devices_everywhere():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:one", "cuda:-1", "cpu:0", "mps:1", "CUDA", "cuda:0:1"])
def test_a_misspelt_device_is_refused_naming_the_choices(name):
    with pytest.raises(SettingsError, match=r"choose auto, cpu, cuda, cuda:N \(a GPU's number\), mps or vulkan\[:N\]"):
        select_device(name)


def test_a_gpu_by_number_is_accepted_where_it_exists():
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match="no CUDA GPU"):
            select_device("cuda:0")
        return
    count = torch.cuda.device_count()
    assert select_device(f"cuda:{count - 1}") == torch.device(f"cuda:{count - 1}")
    with pytest.raises(SettingsError, match=f"this machine has {count} CUDA GPU"):
        select_device(f"cuda:{count}")


def test_a_missing_gpu_number_is_one_line_on_the_command_line(clip, nearest_model, tmp_path):
    command = [str(clip), str(tmp_path / "out.mp4"), "--model", str(nearest_model), "--device", "cuda:99"]
    result = CliRunner().invoke(app, with_default_command(command))
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.startswith("error: --device cuda:99") and len(message.splitlines()) == 1, message
    assert not (tmp_path / "out.mp4").exists()


def test_fp32_on_a_gpu_is_not_tf32_and_the_setting_is_put_back():
    before = torch.backends.cudnn.allow_tf32
    with exact_fp32(torch.device("cuda"), torch.float32):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before
    with exact_fp32(torch.device("cuda"), torch.float16):
        assert torch.backends.cudnn.allow_tf32 == before  # fp16 is fp16 either way


def test_every_ten_bit_code_survives_fp16():
    """Why a GPU's fp16 may take 10-bit video (bf16, 8 significant bits, may not): the network's
    input holds every code exactly."""
    codes = np.arange(1024)
    through_fp16 = torch.tensor(codes / 1023.0, dtype=torch.float32).half().float()
    assert np.array_equal((through_fp16 * 1023).round().numpy().astype(np.int64), codes)
    through_bf16 = torch.tensor(codes / 1023.0, dtype=torch.float32).bfloat16().float()
    assert not np.array_equal((through_bf16 * 1023).round().numpy().astype(np.int64), codes)


def test_apples_gpu_running_out_of_memory_is_recovered_from_like_the_others():
    """Some torch versions raise it as a plain RuntimeError: the runner must still split and tile."""
    full = RuntimeError("MPS backend out of memory (MPS allocated: 7.64 GiB, other allocations: 68.91 GiB)")
    assert is_out_of_memory(full)
    assert not is_out_of_memory(RuntimeError("MPS backend does not support this operator"))


def test_an_unnumbered_vulkan_device_is_a_gpu_before_a_software_one():
    """Mesa installs llvmpipe beside radv and anv, and ncnn may list it first."""
    llvmpipe = VulkanDevice(0, "llvmpipe (LLVM 15.0.6, 256 bits)", "CPU", 1 << 30)
    integrated = VulkanDevice(1, "Intel(R) UHD Graphics 620", "integrated GPU", 1 << 30)
    discrete = VulkanDevice(2, "AMD Radeon RX 6600 (RADV NAVI23)", "discrete GPU", 8 << 30)
    second_discrete = VulkanDevice(3, "AMD Radeon RX 6600 (RADV NAVI23)", "discrete GPU", 8 << 30)
    assert most_capable((llvmpipe, integrated, discrete, second_discrete)) == discrete
    assert most_capable((llvmpipe, integrated)) == integrated
    assert most_capable((llvmpipe,)) == llvmpipe


def test_vulkan_without_a_number_selects_the_preferred_device():
    devices = vulkan_devices()
    if not devices:
        with pytest.raises(SettingsError, match="ncnn"):
            select_device("vulkan")
        return
    assert select_device("vulkan") == torch.device("vulkan", most_capable(devices).index)
