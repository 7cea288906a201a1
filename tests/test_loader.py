"""Loading weight files: every supported layout round-trips to the same network and hash."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vidsr.errors import ModelError
from vidsr.models.arch import RRDBNet, SRVGGNetCompact
from vidsr.models.loader import LoadedModel, canonicalize, detect_and_build, load_model_file, load_state_dict_file

TINY_RRDB = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 2, "num_grow_ch": 4}
TINY_COMPACT = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 3, "act_type": "prelu"}

State = dict[str, torch.Tensor]


def tiny_rrdbnet(scale: int) -> RRDBNet:
    torch.manual_seed(scale)
    return RRDBNet(scale=scale, **TINY_RRDB).eval()


def tiny_compact(upscale: int) -> SRVGGNetCompact:
    torch.manual_seed(10 + upscale)
    network = SRVGGNetCompact(upscale=upscale, **TINY_COMPACT).eval()
    with torch.no_grad():  # distinct slopes per layer, so a misplaced PReLU would show
        for module in network.body:
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.0, 0.5)
    return network


# ---------------------------------------------------------------- layout converters (BasicSR → other)


def to_original_esrgan(state: State) -> State:
    """BasicSR names → the original ESRGAN nn.Sequential names (model.0, model.1.sub.N.RDB1...)."""
    num_block = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("body."))
    tail = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}", "conv_up1": "model.3",
            "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}  # fmt: skip
    converted = {}
    for key, value in state.items():
        if match := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)", key):
            block, rdb, conv, kind = match.groups()
            converted[f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0.{kind}"] = value
        else:
            name, kind = key.rsplit(".", 1)
            converted[f"{tail[name]}.{kind}"] = value
    return converted


def to_esrgan_repo(state: State) -> State:
    """BasicSR names → the ESRGAN repo's RRDBNet_arch names (RRDB_trunk, trunk_conv, upconv1, HRconv)."""
    renames = [
        (r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."),
        (r"^conv_body\.", "trunk_conv."),
        (r"^conv_up1\.", "upconv1."),
        (r"^conv_up2\.", "upconv2."),
        (r"^conv_hr\.", "HRconv."),
    ]
    converted = {}
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        converted[key] = value
    return converted


def in_params_ema(state: State) -> dict:
    return {"params_ema": state}


def in_params(state: State) -> dict:
    return {"params": state, "iter": 5000}


def with_module_prefix(state: State) -> State:
    return {f"module.{key}": value for key, value in state.items()}


def basicsr(state: State) -> State:
    return dict(state)


RRDB_LAYOUTS: dict[str, Callable[[State], dict]] = {
    "basicsr": basicsr,
    "params_ema": in_params_ema,
    "params": in_params,
    "module_prefix": with_module_prefix,
    "params_ema_module_prefix": lambda state: in_params_ema(with_module_prefix(state)),
    "original_esrgan": to_original_esrgan,
    "esrgan_repo": to_esrgan_repo,
}
COMPACT_LAYOUTS: dict[str, Callable[[State], dict]] = {
    "basicsr": basicsr,
    "params": in_params,
    "module_prefix": with_module_prefix,
}


# safetensors files are flat name → tensor maps, so only the unwrapped layouts exist in that format.
WRAPPED_LAYOUTS = {"params_ema", "params", "params_ema_module_prefix"}


def file_variants(layouts: dict[str, Callable[[State], dict]]) -> list[tuple[str, str]]:
    flat = [(layout, ".safetensors") for layout in layouts if layout not in WRAPPED_LAYOUTS]
    return [(layout, ".pth") for layout in layouts] + flat


def save(payload: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file(payload, str(path))
    else:
        torch.save(payload, path)
    return path


def same_outputs(reference: torch.nn.Module, loaded: LoadedModel, size: tuple[int, int] = (8, 12)) -> bool:
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return torch.equal(reference(image), loaded.module(image))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(("layout", "suffix"), file_variants(RRDB_LAYOUTS))
@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_round_trips_through_every_layout(tmp_path: Path, layout: str, suffix: str, scale: int) -> None:
    reference = tiny_rrdbnet(scale)
    loaded = load_model_file(save(RRDB_LAYOUTS[layout](reference.state_dict()), tmp_path / f"tiny{suffix}"))
    assert loaded.architecture == "RRDBNet"
    assert loaded.scale == scale
    assert loaded.size_multiple == {4: 1, 2: 2, 1: 4}[scale]
    assert loaded.hyperparameters == {**TINY_RRDB, "scale": scale}
    assert same_outputs(reference, loaded)


@pytest.mark.parametrize(("layout", "suffix"), file_variants(COMPACT_LAYOUTS))
@pytest.mark.parametrize("upscale", [4, 2])
def test_compact_round_trips_through_every_layout(tmp_path: Path, layout: str, suffix: str, upscale: int) -> None:
    reference = tiny_compact(upscale)
    loaded = load_model_file(save(COMPACT_LAYOUTS[layout](reference.state_dict()), tmp_path / f"tiny{suffix}"))
    assert loaded.architecture == "SRVGGNetCompact"
    assert loaded.scale == upscale
    assert loaded.size_multiple == 1
    assert loaded.hyperparameters == {**TINY_COMPACT, "upscale": upscale}
    assert same_outputs(reference, loaded)


def test_content_hash_depends_on_the_weights_not_the_file_layout(tmp_path: Path) -> None:
    state = tiny_rrdbnet(4).state_dict()
    hashes = {
        load_model_file(save(convert(state), tmp_path / f"{layout}.pth")).content_hash
        for layout, convert in RRDB_LAYOUTS.items()
    }
    hashes.add(load_model_file(save(state, tmp_path / "flat.safetensors")).content_hash)
    assert len(hashes) == 1
    other_weights = tiny_rrdbnet(2).state_dict()
    assert detect_and_build(other_weights, name="x2", source="test").content_hash not in hashes


def test_content_hash_changes_when_one_weight_changes() -> None:
    state = tiny_compact(4).state_dict()
    before = detect_and_build(state, name="a", source="test").content_hash
    state = {key: value.clone() for key, value in state.items()}
    state["body.2.bias"][0] += 1e-3
    assert detect_and_build(state, name="b", source="test").content_hash != before


def test_loaded_module_is_ready_for_inference(tmp_path: Path) -> None:
    reference = tiny_rrdbnet(4)
    loaded = load_model_file(save(reference.state_dict(), tmp_path / "ready.pth"))
    parameters = list(loaded.module.parameters())
    assert not loaded.module.training
    assert all(not parameter.requires_grad for parameter in parameters)
    assert all(parameter.dtype == torch.float32 and parameter.device.type == "cpu" for parameter in parameters)
    assert loaded.params == sum(parameter.numel() for parameter in reference.parameters())
    assert loaded.name == "ready"
    assert loaded.source == str(tmp_path / "ready.pth")
    assert loaded.supports_half and loaded.supports_bf16
    assert (loaded.in_channels, loaded.out_channels) == (3, 3)
    assert loaded.description == "RRDBNet x4: 2 blocks, 8 features, growth 4"  # channels: describe_needs


def test_fp16_files_load_as_fp32(tmp_path: Path) -> None:
    half_state = {key: value.half() for key, value in tiny_compact(4).state_dict().items()}
    loaded = load_model_file(save(half_state, tmp_path / "half.safetensors"))
    assert all(parameter.dtype == torch.float32 for parameter in loaded.module.parameters())
    assert torch.equal(loaded.module.state_dict()["body.0.weight"], half_state["body.0.weight"].float())


def test_canonicalize_gives_basicsr_names_for_old_layouts() -> None:
    state = tiny_rrdbnet(4).state_dict()
    for convert in RRDB_LAYOUTS.values():
        assert canonicalize(convert(state)).keys() == state.keys()


# ---------------------------------------------------------------- refusals


def test_unknown_layout_names_the_keys_found_and_the_supported_layouts(tmp_path: Path) -> None:
    path = save({"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)}, tmp_path / "odd.pth")
    with pytest.raises(ModelError) as caught:
        load_model_file(path)
    message = str(caught.value)
    assert "encoder.weight" in message and "decoder.bias" in message
    assert "ESRGAN" in message and "SRVGGNetCompact" in message


def test_weights_that_do_not_fit_the_detected_network_are_refused() -> None:
    state = tiny_rrdbnet(4).state_dict()
    del state["conv_hr.weight"]
    with pytest.raises(ModelError, match="conv_hr"):
        detect_and_build(state, name="broken", source="test")


class _WritesMarkerWithOsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _WritesMarkerWithOpen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("payload_class", [_WritesMarkerWithOsSystem, _WritesMarkerWithOpen])
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, payload_class: type, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"conv_first.weight": torch.zeros(1), "exploit": payload_class(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ModelError, match="arbitrary Python objects") as caught:
        load_model_file(path)
    assert "not loaded" in str(caught.value)
    assert not marker.exists()


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model_file(tmp_path / "nowhere.pth")


@pytest.mark.parametrize("name", ["garbage.pth", "garbage.safetensors"])
def test_a_file_that_is_not_weights_is_a_model_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a model\n" * 10)
    with pytest.raises(ModelError, match="Cannot read"):
        load_state_dict_file(path)


def test_an_unknown_file_type_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"\0")
    with pytest.raises(ModelError, match=r"\.safetensors"):
        load_state_dict_file(path)


def test_a_file_without_a_dictionary_of_weights_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a dictionary"):
        load_model_file(save([torch.zeros(3)], tmp_path / "list.pth"))  # type: ignore[arg-type]


def test_an_unknown_layout_without_spandrel_says_how_to_get_it_in_one_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("spandrel") is not None:
        pytest.skip("spandrel is installed here: unknown layouts go to it (tests/test_spandrel.py)")
    path = save({"encoder.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "other-architecture.safetensors")
    with pytest.raises(ModelError) as caught:
        load_model_file(path)
    message = str(caught.value)
    assert "pip install 'vidsr[spandrel]'" in message and "\n" not in message


def test_a_single_wrapper_of_any_name_and_a_netg_prefix_are_unwrapped() -> None:
    state = tiny_compact(4).state_dict()
    wrapped = {"generator": {f"netG.{key}": value for key, value in state.items()}}
    assert canonicalize(wrapped).keys() == state.keys()
