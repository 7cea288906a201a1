"""Embedded ncnn models: vidsr's conversion computes what ncnn computes on the original files."""

from __future__ import annotations

import os
from pathlib import Path

import ncnn
import numpy as np
import pytest
import torch

from vidsr.errors import ModelError
from vidsr.models import ncnn as vidsr_ncnn
from vidsr.models.loader import LoadedModel, build_network, detect_and_build

# (ncnn stem, architecture, hyper-parameters, test input H x W): the 23-block model gets a small input.
EMBEDDED_CASES = {
    "REALESRGAN_X4PLUS_UP4X": ("RRDBNet", {"num_block": 23}, (16, 16)),
    "REALESRGAN_X4PLUSANIME_UP4X": ("RRDBNet", {"num_block": 6}, (20, 24)),
    "REALESRGAN_ANIMAVIDEOV3_UP4X": ("SRVGGNetCompact", {"num_conv": 16}, (20, 24)),
}
MAX_ABS_DIFF = 1e-4  # on the 0..1 scale; ncnn in fp32 and torch differ only by summation order
SMALLEST = "REALESRGAN_ANIMAVIDEOV3_UP4X"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VIDSR_CACHE_DIR", str(cache))
    return cache


def smooth_noisy_image(height: int, width: int) -> np.ndarray:
    """A smooth colour gradient plus noise, in 0..1, CHW float32."""
    rows, cols = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    smooth = np.stack([rows, cols, (rows + cols) / 2]) * 0.8 + 0.1
    noise = np.random.default_rng(0).normal(0, 0.05, smooth.shape)
    return np.clip(smooth + noise, 0, 1).astype(np.float32)


def convert_embedded(stem: str) -> LoadedModel:
    architecture, hyperparameters, _ = EMBEDDED_CASES[stem]
    target = build_network(architecture, hyperparameters, device="meta")
    return detect_and_build(vidsr_ncnn.load_embedded_state(stem, target), name=stem, source="test")


def run_ncnn_fp32(stem: str, image: np.ndarray) -> np.ndarray:
    param_path, bin_path = vidsr_ncnn.embedded_model_files(stem)
    graph = vidsr_ncnn.parse_param(param_path.read_text())
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    for option in (
        "use_fp16_packed",
        "use_fp16_storage",
        "use_fp16_arithmetic",
        "use_bf16_storage",
        "use_bf16_packed",
    ):
        setattr(net.opt, option, False)
    net.opt.num_threads = os.cpu_count() or 1
    assert net.load_param(str(param_path)) == 0
    assert net.load_model(str(bin_path)) == 0
    extractor = net.create_extractor()
    extractor.input(graph.input_blob, ncnn.Mat(np.ascontiguousarray(image)))
    status, output = extractor.extract(graph.output_blob)
    assert status == 0
    return np.array(output)


@pytest.mark.parametrize("stem", list(EMBEDDED_CASES))
def test_converted_model_matches_ncnn_on_the_original_files(stem: str) -> None:
    height, width = EMBEDDED_CASES[stem][2]
    image = smooth_noisy_image(height, width)
    model = convert_embedded(stem)
    with torch.inference_mode():
        ours = model.module(torch.from_numpy(image)[None])[0].numpy()
    theirs = run_ncnn_fp32(stem, image)
    assert ours.shape == theirs.shape == (3, height * 4, width * 4)
    assert np.abs(ours - theirs).max() <= MAX_ABS_DIFF
    # The graphs have no 0..255 scaling: a 0..1 input gives a 0..1-ish picture.
    assert 0.0 <= float(np.median(theirs)) <= 1.0


@pytest.mark.parametrize("stem", list(EMBEDDED_CASES))
def test_hyperparameters_are_detected_from_the_converted_weights(stem: str) -> None:
    architecture, expected, _ = EMBEDDED_CASES[stem]
    model = convert_embedded(stem)
    assert model.architecture == architecture
    assert model.scale == 4
    assert expected.items() <= model.hyperparameters.items()


def test_conversion_is_cached_and_the_cache_is_reused(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = convert_embedded(SMALLEST)
    cached_files = list(private_cache.glob("ncnn/*.safetensors"))
    assert [path.name.startswith(SMALLEST) for path in cached_files] == [True]

    def conversion_must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(vidsr_ncnn, "convert", conversion_must_not_run)
    second = convert_embedded(SMALLEST)
    assert second.content_hash == first.content_hash
    assert not list(private_cache.glob("ncnn/*.tmp")), "no temporary file is left behind"


def test_a_damaged_cache_file_is_rebuilt(private_cache: Path) -> None:
    expected_hash = convert_embedded(SMALLEST).content_hash
    (cached_file,) = private_cache.glob("ncnn/*.safetensors")
    cached_file.write_bytes(b"truncated")
    assert convert_embedded(SMALLEST).content_hash == expected_hash
    assert cached_file.stat().st_size > 1_000_000


def test_the_cache_key_changes_when_the_package_files_change(tmp_path: Path) -> None:
    param_path, bin_path = vidsr_ncnn.embedded_model_files(SMALLEST)
    copies = []
    for original in (param_path, bin_path):
        copy = tmp_path / original.name
        copy.write_bytes(original.read_bytes())
        copies.append(copy)
    before = vidsr_ncnn.cache_path(SMALLEST, *copies)
    os.utime(copies[1], ns=(0, copies[1].stat().st_mtime_ns + 1_000_000_000))
    assert vidsr_ncnn.cache_path(SMALLEST, *copies) != before


def test_a_truncated_bin_is_a_model_error() -> None:
    param_path, bin_path = vidsr_ncnn.embedded_model_files(SMALLEST)
    graph = vidsr_ncnn.parse_param(param_path.read_text())
    target = build_network("SRVGGNetCompact", {}, device="meta")
    with pytest.raises(ModelError, match="truncated"):
        vidsr_ncnn.convert(graph, bin_path.read_bytes()[:-1000], target, origin=bin_path.name)


def test_weights_that_do_not_fit_the_target_network_are_a_model_error() -> None:
    param_path, bin_path = vidsr_ncnn.embedded_model_files(SMALLEST)
    graph = vidsr_ncnn.parse_param(param_path.read_text())
    narrower = build_network("SRVGGNetCompact", {"num_feat": 32}, device="meta")
    with pytest.raises(ModelError, match=r"does not match|needs"):
        vidsr_ncnn.convert(graph, bin_path.read_bytes(), narrower, origin=bin_path.name)


def test_param_files_are_parsed_with_their_blob_names_and_fused_activations() -> None:
    param_path, _ = vidsr_ncnn.embedded_model_files("REALESRGAN_X4PLUSANIME_UP4X")
    graph = vidsr_ncnn.parse_param(param_path.read_text())
    assert (graph.input_blob, graph.output_blob) == ("data", "output")
    convolutions = [layer for layer in graph.layers if layer.type == "Convolution"]
    assert len(convolutions) == 6 * 15 + 6
    # LeakyReLU(0.2) is fused into the convolutions (activation type 2 with its slope).
    assert convolutions[1].int_param(9, 0) == 2 and float(convolutions[1].params[10][0]) == pytest.approx(0.2)


def test_a_file_that_is_not_a_param_file_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="magic"):
        vidsr_ncnn.parse_param("hello\n")
