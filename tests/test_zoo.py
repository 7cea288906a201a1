"""The model catalogue: embedded names, the user's models folder, and helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vidsr.errors import ModelError
from vidsr.models import DEFAULT_MODEL
from vidsr.models.arch import SRVGGNetCompact
from vidsr.models.zoo import EMBEDDED, list_models, models_dir, resolve_model


@pytest.fixture(autouse=True)
def private_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty models folder and a private cache, so tests never touch the user's own."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("VIDSR_MODELS_DIR", str(folder))
    monkeypatch.setenv("VIDSR_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def write_tiny_model(path: Path) -> SRVGGNetCompact:
    torch.manual_seed(0)
    network = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).eval()
    if path.suffix == ".safetensors":
        save_file(network.state_dict(), str(path))
    else:
        torch.save({"params": network.state_dict()}, path)
    return network


def test_the_default_model_is_embedded() -> None:
    assert DEFAULT_MODEL == "realesrgan-x4plus"
    assert set(EMBEDDED) == {"realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3"}


@pytest.mark.parametrize(
    ("name", "architecture", "params"),
    [
        ("realesr-animevideov3", "SRVGGNetCompact", 621_424),
        ("realesrgan-x4plus-anime", "RRDBNet", 4_467_779),
        ("realesrgan-x4plus", "RRDBNet", 16_697_987),
    ],
)
def test_embedded_models_resolve_by_name_with_credit(name: str, architecture: str, params: int) -> None:
    model = resolve_model(name)
    assert (model.name, model.architecture, model.scale, model.params) == (name, architecture, 4, params)
    assert "Real-ESRGAN" in model.source and "BSD-3-Clause" in model.source and "Xintao Wang" in model.source
    with torch.inference_mode():
        assert model.module(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)


def test_each_resolve_gives_an_independent_module() -> None:
    first = resolve_model("realesr-animevideov3")
    second = resolve_model("realesr-animevideov3")
    first.module.half()
    with torch.no_grad():
        next(first.module.parameters()).zero_()
    assert all(parameter.dtype == torch.float32 for parameter in second.module.parameters())
    assert next(second.module.parameters()).abs().sum() > 0
    assert resolve_model("realesr-animevideov3").content_hash == second.content_hash


def test_models_dir_follows_the_environment(private_folders: Path) -> None:
    assert models_dir() == private_folders


@pytest.mark.parametrize("file_name", ["my-2x.pth", "my-2x.safetensors"])
def test_a_file_dropped_into_the_models_folder_is_listed_and_resolvable(private_folders: Path, file_name: str) -> None:
    path = private_folders / file_name
    write_tiny_model(path)
    listed = {info.name: info for info in list_models()}
    assert listed["my-2x"].architecture == "SRVGGNetCompact"
    assert listed["my-2x"].scale == 2
    assert listed["my-2x"].error is None
    assert listed["my-2x"].source == str(path)
    for spec in ("my-2x", file_name, str(path)):
        assert resolve_model(spec).scale == 2


def test_unknown_name_lists_the_available_names(private_folders: Path) -> None:
    write_tiny_model(private_folders / "mine.pth")
    with pytest.raises(ModelError) as caught:
        resolve_model("no-such-model")
    message = str(caught.value)
    assert "no-such-model" in message
    assert all(name in message for name in EMBEDDED)
    assert "mine" in message


def test_list_models_survives_a_broken_file(private_folders: Path) -> None:
    (private_folders / "broken.pth").write_bytes(b"not a model at all")
    write_tiny_model(private_folders / "good.safetensors")
    (private_folders / "notes.txt").write_text("ignored: not a model file type")
    listed = {info.name: info for info in list_models()}
    assert set(listed) == {*EMBEDDED, "broken", "good"}
    assert listed["broken"].error and "broken.pth" in listed["broken"].error
    assert listed["good"].error is None


def test_list_models_describes_embedded_models_without_loading_them() -> None:
    listed = {info.name: info for info in list_models()}
    x4plus = listed["realesrgan-x4plus"]
    assert (x4plus.architecture, x4plus.scale, x4plus.params) == ("RRDBNet", 4, 16_697_987)
    assert x4plus.size_mb == pytest.approx(33.4, abs=0.1)  # the fp16 ncnn weights
    assert "Real-ESRGAN" in x4plus.source
    assert "fast" in listed["realesr-animevideov3"].summary
