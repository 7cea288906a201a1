"""Adding an architecture is one module: a family registered through the registry loads from its
file through the loader, ``vidsr image`` and the Upscaler, like vidsr's own ESRGAN and compact."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from math import isqrt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from vidsr.cli.app import app
from vidsr.errors import ModelError
from vidsr.models import REGISTRY, Traits, describe_needs, load_model_file
from vidsr.models.loader import canonicalize
from vidsr.upscale import Upscaler

runner = CliRunner()


class ShuffleNet(nn.Module):
    """The smallest real upscaler: one conv to ``scale**2`` times the channels, then a pixel shuffle."""

    def __init__(self, *, channels: int = 3, scale: int = 2) -> None:
        super().__init__()
        self.shuffle_head = nn.Conv2d(channels, channels * scale * scale, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.shuffle_head(x))


@dataclass(frozen=True)
class ShuffleFamily:
    """Everything vidsr needs to know about ShuffleNet, in one object: what a new module would hold."""

    name: str = "ShuffleNet"
    layouts: tuple[str, ...] = ("ShuffleNet (shuffle_head), or its first release's (head)",)

    def canonicalise(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if tensors.keys() == {"head.weight", "head.bias"}:  # the first release's name for the conv
            return {f"shuffle_{key}": value for key, value in tensors.items()}
        return tensors

    def detect(self, state: Mapping[str, torch.Tensor]) -> bool:
        return state.keys() == {"shuffle_head.weight", "shuffle_head.bias"}

    def hyperparameters(self, state: Mapping[str, torch.Tensor], hints: Mapping[str, str]) -> dict[str, Any]:
        out_channels, channels = state["shuffle_head.weight"].shape[:2]
        return {"channels": channels, "scale": isqrt(out_channels // channels)}

    def build(self, hyperparameters: Mapping[str, Any]) -> nn.Module:
        return ShuffleNet(**hyperparameters)

    def traits(self, hyperparameters: Mapping[str, Any]) -> Traits:
        channels = hyperparameters["channels"]
        return Traits(
            scale=hyperparameters["scale"],
            in_channels=channels,
            out_channels=channels,
            size_multiple=1,
            supports_half=False,
            supports_bf16=True,
            bf16_by_default=False,
            fp32_layers=(),
        )

    def describe(self, hyperparameters: Mapping[str, Any], hints: Mapping[str, str]) -> str:
        return f"ShuffleNet x{hyperparameters['scale']}"

    def hints(self, hyperparameters: Mapping[str, Any]) -> dict[str, str]:
        return {}


@pytest.fixture
def shuffle_family() -> Iterator[ShuffleFamily]:
    family = ShuffleFamily()
    REGISTRY.register(family)
    yield family
    REGISTRY.unregister(family.name)


@pytest.fixture
def shuffle_file(tmp_path: Path) -> tuple[Path, ShuffleNet]:
    """A ShuffleNet x2 saved under its first release's names, by DataParallel (``module.``)."""
    torch.manual_seed(0)
    network = ShuffleNet().eval()
    path = tmp_path / "shuffle-x2.safetensors"
    old_names = {f"module.{key.removeprefix('shuffle_')}": value for key, value in network.state_dict().items()}
    save_file(old_names, path)
    return path, network


def test_a_registered_family_loads_its_file_through_the_loader(
    shuffle_family: ShuffleFamily, shuffle_file: tuple[Path, ShuffleNet]
) -> None:
    path, reference = shuffle_file
    model = load_model_file(path)
    assert (model.architecture, model.scale, model.in_channels, model.out_channels) == ("ShuffleNet", 2, 3, 3)
    assert model.hyperparameters == {"channels": 3, "scale": 2}
    assert model.description == "ShuffleNet x2"
    assert describe_needs(model).startswith("RGB in, RGB out; fp32/bf16 (CPU: fp32)")  # its traits, not ESRGAN's
    image = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = reference(image).clamp(0, 1)
    output = Upscaler(model, device=torch.device("cpu"), precision="fp32").upscale_rgb(image)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-6)


def test_a_registered_familys_old_layout_is_renamed_by_canonicalize(
    shuffle_family: ShuffleFamily, shuffle_file: tuple[Path, ShuffleNet]
) -> None:
    _, reference = shuffle_file
    old = {f"module.{key.removeprefix('shuffle_')}": value for key, value in reference.state_dict().items()}
    assert canonicalize(old).keys() == reference.state_dict().keys()


def test_vidsr_image_upscales_with_a_registered_family(
    shuffle_family: ShuffleFamily, shuffle_file: tuple[Path, ShuffleNet], tmp_path: Path
) -> None:
    path, _ = shuffle_file
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(photo)
    big = tmp_path / "big.png"
    result = runner.invoke(app, ["image", str(photo), str(big), "--model", str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(big).size == (28, 20)


def test_without_its_family_the_same_file_is_one_clear_line(shuffle_file: tuple[Path, ShuffleNet]) -> None:
    path, _ = shuffle_file
    with pytest.raises(ModelError, match="shuffle-x2"):
        load_model_file(path)


def test_a_family_goes_where_it_is_registered_and_only_once(shuffle_family: ShuffleFamily) -> None:
    assert REGISTRY.names()[-1] == "ShuffleNet"
    REGISTRY.unregister("ShuffleNet")
    REGISTRY.register(shuffle_family, before="SRVGGNetCompact")
    assert REGISTRY.names() == ("RRDBNet", "ShuffleNet", "SRVGGNetCompact")
    assert shuffle_family.layouts[0] in REGISTRY.layouts()
    with pytest.raises(ValueError, match="registered already"):
        REGISTRY.register(ShuffleFamily())
