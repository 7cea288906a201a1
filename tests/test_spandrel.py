"""The spandrel extra: architectures vidsr does not know, loaded with vidsr's own safety.

Skipped where spandrel is not installed (the main CI venv); .ci/spandrel runs them in a venv with
torch 2.14.1 + torchvision 0.29.1 + vidsr[spandrel,test], where VIDSR_REQUIRE_SPANDREL=1 makes
a missing spandrel fail instead of skip. The networks are random, made by spandrel's own
architecture classes, saved as safetensors like the files users download.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from media import decode_video
from PIL import Image
from reference_nets import OldESRGAN
from safetensors.torch import save_file
from test_upscale_video import render
from typer.testing import CliRunner

from vidsr.cli.app import app
from vidsr.errors import ModelError
from vidsr.models.loader import detect_and_build, load_model_file

if os.environ.get("VIDSR_REQUIRE_SPANDREL"):
    spandrel: Any = importlib.import_module("spandrel")  # CI for the extra: absent is a failure
else:
    spandrel = pytest.importorskip("spandrel", reason="the spandrel extra is not installed")

runner = CliRunner()


def save(network: torch.nn.Module, path: Path) -> Path:
    save_file({key: value.contiguous() for key, value in network.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def span_x4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    network = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4).eval()
    return save(network, tmp_path_factory.mktemp("spandrel") / "span-x4.safetensors")


@pytest.fixture(scope="module")
def realplksr_x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spandrel.architectures.PLKSR import RealPLKSR

    torch.manual_seed(1)
    network = RealPLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7).eval()
    return save(network, tmp_path_factory.mktemp("spandrel") / "realplksr-x2.safetensors")


def image(height: int = 10, width: int = 14) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize(("fixture", "architecture", "scale"), [("span_x4", "SPAN", 4), ("realplksr_x2", "PLKSR", 2)])
def test_an_architecture_vidsr_does_not_know_loads_through_spandrel(
    request: pytest.FixtureRequest, fixture: str, architecture: str, scale: int
) -> None:
    path: Path = request.getfixturevalue(fixture)
    model = load_model_file(path)
    assert (model.architecture, model.scale, model.in_channels, model.out_channels) == (architecture, scale, 3, 3)
    assert f"via spandrel {spandrel.__version__}" in model.description
    assert not model.bf16_by_default and model.fp32_layers == ()
    descriptor = spandrel.ModelLoader().load_from_file(path).eval()
    with torch.inference_mode():
        torch.testing.assert_close(model.module(image()), descriptor(image()), rtol=0, atol=1e-6)


def test_spandrel_is_handed_tensors_and_never_opens_the_file(span_x4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("spandrel opened the file itself")

    monkeypatch.setattr(spandrel.ModelLoader, "load_from_file", refuse)
    monkeypatch.setattr(spandrel.ModelLoader, "load_state_dict_from_file", refuse)
    assert load_model_file(span_x4).architecture == "SPAN"


def test_weights_with_nan_are_refused_before_spandrel_sees_them(span_x4: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(span_x4))
    state["conv_cat.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ModelError, match="'conv_cat.weight' holds NaN"):
        load_model_file(tmp_path / "broken.safetensors")


def test_what_spandrel_does_not_know_either_is_one_clear_line() -> None:
    with pytest.raises(ModelError, match=f"neither vidsr nor spandrel {spandrel.__version__} knows"):
        detect_and_build({"encoder.weight": torch.zeros(4, 3, 3, 3)}, name="odd", source="t")


@pytest.mark.parametrize(("fixture", "scale"), [("span_x4", 4), ("realplksr_x2", 2)])
def test_vidsr_image_upscales_at_the_models_own_scale(
    request: pytest.FixtureRequest, fixture: str, scale: int, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(photo)
    model = str(request.getfixturevalue(fixture))
    result = runner.invoke(app, ["image", str(photo), str(tmp_path / "big.png"), "--model", model, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "big.png").size == (16 * scale, 12 * scale)


@pytest.mark.parametrize(("fixture", "scale"), [("span_x4", 4), ("realplksr_x2", 2)])
def test_vidsr_renders_a_video_at_the_models_own_scale(
    request: pytest.FixtureRequest, fixture: str, scale: int, clip: Path, tmp_path: Path
) -> None:
    output = render(clip, tmp_path / "out.mp4", request.getfixturevalue(fixture), "--device", "cpu")
    source, result = decode_video(clip), decode_video(output)
    assert (result.width, result.height) == (source.width * scale, source.height * scale)
    assert len(result.times) == len(source.times)


# ---------------------------------------------------------------- vidsr's own layouts agree with spandrel's


@pytest.mark.parametrize(
    "arguments",
    [
        {"scale": 4, "plus": True},
        {"scale": 8},
        {"scale": 1},
        {"scale": 4, "shuffle_factor": 2, "in_nc": 12},
    ],
    ids=["ESRGAN+ x4", "x8", "x1", "x2 pixel-unshuffle"],
)
def test_esrgan_files_made_by_spandrels_class_load_natively_with_the_same_output(arguments: dict) -> None:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(3)
    network = ESRGAN(num_filters=8, num_blocks=2, **arguments).eval()
    model = detect_and_build(network.state_dict(), name="esrgan", source="t")
    assert model.architecture == "RRDBNet"  # vidsr's own loader, not the spandrel fallback
    reference = spandrel.ModelLoader().load_from_state_dict(network.state_dict()).eval()
    assert (model.scale, model.size_multiple > 1) == (reference.scale, "shuffle_factor" in arguments)
    with torch.inference_mode():
        # spandrel's call clamps to 0..1, as vidsr's upscaler does after the network
        torch.testing.assert_close(model.module(image(8, 12)).clamp(0, 1), reference(image(8, 12)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pixel_shuffle_esrgan_made_by_spandrels_class_loads_natively_at_its_scale(scale: int) -> None:
    """spandrel's ESRGAN class builds the pixel-shuffle upsampler (its loader does not detect it):
    vidsr reads the file's tensors and computes what that network computes."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(5)
    network = ESRGAN(num_filters=8, num_blocks=2, scale=scale, upsampler="pixel_shuffle").eval()
    model = detect_and_build(network.state_dict(), name="ps", source="t")
    assert (model.architecture, model.scale, model.hyperparameters["upsampler"]) == ("RRDBNet", scale, "pixelshuffle")
    with torch.inference_mode():
        torch.testing.assert_close(model.module(image(8, 12)), network(image(8, 12)), rtol=0, atol=1e-5)


def test_spandrel_reads_vidsrs_reference_old_esrgan_the_same_way() -> None:
    torch.manual_seed(4)
    network = OldESRGAN(stages=3, plus=True, gc=32).eval()
    model = detect_and_build(network.state_dict(), name="x8+", source="t")
    reference = spandrel.ModelLoader().load_from_state_dict(network.state_dict()).eval()
    assert model.scale == reference.scale == 8
    with torch.inference_mode():
        torch.testing.assert_close(model.module(image(6, 6)).clamp(0, 1), reference(image(6, 6)), rtol=0, atol=1e-5)
