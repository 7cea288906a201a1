"""vidsr's networks written as ncnn files compute, in ncnn on the CPU, what torch computes in fp32."""

from __future__ import annotations

from pathlib import Path

import ncnn
import numpy as np
import pytest
import torch
from reference_nets import OldESRGAN, ReferenceCompact

from vidsr.errors import ModelError
from vidsr.models import interpolate_models
from vidsr.models.loader import LoadedModel, detect_and_build
from vidsr.models.ncnn import parse_param
from vidsr.models.ncnn_export import NcnnFiles, export_ncnn, ncnn_graph

MAX_ABS_DIFF = 1e-5  # on the 0..1 scale: fp32 in both, only the order of the sums differs (measured ~1e-7)

# Every layout the ESRGAN and compact families read, as their authors built them (random weights).
NETWORKS = {
    "ESRGAN x4 (nearest upsampler)": lambda: OldESRGAN(),
    "Real-ESRGAN x2 (pixel-unshuffle 2)": lambda: OldESRGAN(unshuffle=2),
    "Real-ESRGAN x1 (pixel-unshuffle 4)": lambda: OldESRGAN(unshuffle=4),
    "ESRGAN x8 (three stages)": lambda: OldESRGAN(stages=3, nb=1),
    "ESRGAN+ x4": lambda: OldESRGAN(plus=True),
    "ESRGAN x4 pixel shuffle": lambda: OldESRGAN(upsample_mode="pixelshuffle"),
    "ESRGAN x3 pixel shuffle": lambda: OldESRGAN(upsample_mode="pixelshuffle", factor=3, stages=1),
    "grey ESRGAN x4": lambda: OldESRGAN(in_nc=1, out_nc=1),
    "compact PReLU x4": lambda: ReferenceCompact(act="prelu"),
    "compact ReLU x2": lambda: ReferenceCompact(act="relu", upscale=2),
    "compact LeakyReLU x4": lambda: ReferenceCompact(act="leakyrelu"),
}


def loaded(network: torch.nn.Module, *, seed: int = 0) -> LoadedModel:
    """``network`` as vidsr loads it; a compact one's activation named as its file's metadata would."""
    hints: dict[str, str] = {}
    if isinstance(network, ReferenceCompact) and not isinstance(network.body[1], torch.nn.PReLU):
        hints = {"act_type": "leakyrelu" if isinstance(network.body[1], torch.nn.LeakyReLU) else "relu"}
    return detect_and_build(dict(network.state_dict()), name=f"net{seed}", source="test", hints=hints)


def run_ncnn_cpu(files: NcnnFiles, image: torch.Tensor) -> torch.Tensor:
    """One C x H x W image through ncnn on the CPU in fp32."""
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    for option in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, option, False)
    assert net.load_param(str(files.param)) == 0 and net.load_model(str(files.bin)) == 0
    extractor = net.create_extractor()
    pixels = np.ascontiguousarray(image.numpy())  # ncnn.Mat does not keep it alive: this name does
    extractor.input(files.input_blob, ncnn.Mat(pixels))
    status, output = extractor.extract(files.output_blob)
    assert status == 0
    return torch.from_numpy(np.array(output))


@pytest.mark.parametrize("layout", NETWORKS)
def test_every_layout_runs_in_ncnn_as_in_torch(layout: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = loaded(NETWORKS[layout]())
    image = torch.rand(model.in_channels, 24, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model.module(image[None])[0]
    output = run_ncnn_cpu(export_ncnn(model, tmp_path), image)
    assert output.shape == expected.shape
    assert float((output - expected).abs().max()) < MAX_ABS_DIFF


def test_an_interpolated_model_runs_its_blended_weights(tmp_path: Path) -> None:
    files = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}.pth"
        torch.save(OldESRGAN().state_dict(), path)
        files.append(str(path))
    blended = interpolate_models(files[0], files[1], 0.3)
    image = torch.rand(3, 16, 20)
    with torch.inference_mode():
        expected = blended.module(image[None])[0]
    assert float((run_ncnn_cpu(export_ncnn(blended, tmp_path / "out"), image) - expected).abs().max()) < MAX_ABS_DIFF


def test_the_files_are_cached_by_weights_and_rewritten_for_others(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = loaded(ReferenceCompact(act="prelu"))
    first = export_ncnn(model, tmp_path)
    written = first.param.stat().st_mtime_ns
    assert export_ncnn(model, tmp_path) == first and first.param.stat().st_mtime_ns == written
    torch.manual_seed(1)
    assert export_ncnn(loaded(ReferenceCompact(act="prelu")), tmp_path).param != first.param
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".bin", ".bin", ".param", ".param"]


def test_the_graph_reads_back_with_vidsrs_own_ncnn_parser() -> None:
    """One input, one output, and a Split wherever two layers read one blob (ncnn needs it)."""
    param_text, _ = ncnn_graph(loaded(OldESRGAN(plus=True)))
    graph = parse_param(param_text)
    readers: dict[str, int] = {}
    for layer in graph.layers:
        for blob in layer.inputs:
            readers[blob] = readers.get(blob, 0) + 1
    assert max(readers.values()) == 1
    assert any(layer.type == "Split" for layer in graph.layers)


def test_a_network_vidsr_does_not_write_is_refused_in_one_line() -> None:
    model = loaded(ReferenceCompact(act="prelu"))
    foreign = LoadedModel(**{**model.__dict__, "module": torch.nn.Identity(), "architecture": "SwinIR"})
    with pytest.raises(ModelError, match="ncnn engine runs RRDBNet and SRVGGNetCompact"):
        ncnn_graph(foreign)
