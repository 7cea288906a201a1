"""Every ESRGAN-family layout, the spandrel way: random networks built by their own code, saved as
.pth and .safetensors, detected, loaded, and run against the network that made them.

The references (tests/reference_nets.py) are independent of vidsr's networks: ESRGAN's original
Sequential generator, whose state dict the newer layouts' names are derived from, and
Real-ESRGAN's SRVGGNetCompact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from media import ClipSpec, write_clip
from reference_nets import OldESRGAN, ReferenceCompact, State, to_new_names
from safetensors.torch import save_file

from vidsr.errors import ModelError
from vidsr.models.loader import LoadedModel, detect_and_build, load_model_file

# name: (OldESRGAN arguments, scale, in channels, out channels, size multiple)
RRDB_CASES: dict[str, tuple[dict[str, int | bool | str], int, int, int, int]] = {
    "x1": ({"stages": 0}, 1, 3, 3, 1),
    "x2": ({"stages": 1}, 2, 3, 3, 1),
    "x4": ({"stages": 2}, 4, 3, 3, 1),
    "x8": ({"stages": 3}, 8, 3, 3, 1),
    "x2 pixel-unshuffle (12-channel first conv)": ({"stages": 2, "unshuffle": 2}, 2, 3, 3, 2),
    "x1 pixel-unshuffle (48-channel first conv)": ({"stages": 2, "unshuffle": 4}, 1, 3, 3, 4),
    "ESRGAN+ x4": ({"plus": True}, 4, 3, 3, 1),
    "ESRGAN+ x2": ({"plus": True, "stages": 1}, 2, 3, 3, 1),
    "grey x4": ({"in_nc": 1, "out_nc": 1}, 4, 1, 1, 1),
    "grey x2 pixel-unshuffle (4-channel first conv)": ({"in_nc": 1, "out_nc": 1, "unshuffle": 2}, 2, 1, 1, 2),
    "grey x1 pixel-unshuffle (16-channel first conv)": ({"in_nc": 1, "out_nc": 1, "unshuffle": 4}, 1, 1, 1, 4),
    "grey in, RGB out x2": ({"in_nc": 1, "out_nc": 3, "stages": 1}, 2, 1, 3, 1),
    "12 filters, 3 blocks, growth 6": ({"nf": 12, "nb": 3, "gc": 6}, 4, 3, 3, 1),
    "pixel-shuffle x2": ({"stages": 1, "upsample_mode": "pixelshuffle"}, 2, 3, 3, 1),
    "pixel-shuffle x3": ({"stages": 1, "upsample_mode": "pixelshuffle", "factor": 3}, 3, 3, 3, 1),
    "pixel-shuffle x4": ({"upsample_mode": "pixelshuffle"}, 4, 3, 3, 1),
    "pixel-shuffle x8, ESRGAN+": ({"stages": 3, "upsample_mode": "pixelshuffle", "plus": True}, 8, 3, 3, 1),
    "pixel-shuffle x1 (unshuffle 2)": ({"upsample_mode": "pixelshuffle", "stages": 1, "unshuffle": 2}, 1, 3, 3, 2),
}
# How a file names the same weights: ESRGAN's original Sequential, BasicSR (bare or as Real-ESRGAN
# publishes it), and the ESRGAN repository's / KAIR's names (BSRGAN x2 has upconv1 only).
STYLES = ("original", "basicsr", "basicsr params_ema", "esrgan repo / KAIR")
SUFFIXES = (".pth", ".safetensors")
IMAGE_SIZE = (8, 12)  # multiples of 4: every pixel-unshuffle takes it


def reference_esrgan(case: str, seed: int = 0) -> OldESRGAN:
    torch.manual_seed(seed)
    return OldESRGAN(**RRDB_CASES[case][0]).eval()  # type: ignore[arg-type]


def in_style(state: State, style: str) -> dict:
    if style == "original":
        return dict(state)
    if style == "esrgan repo / KAIR":
        return to_new_names(state, style="repo")
    renamed = to_new_names(state, style="basicsr")
    return {"params_ema": renamed} if style == "basicsr params_ema" else renamed


def save(payload: dict, path: Path, metadata: dict[str, str] | None = None) -> Path:
    if path.suffix == ".safetensors":
        if set(payload) == {"params_ema"}:
            payload = payload["params_ema"]  # safetensors files are flat
        save_file({key: value.contiguous() for key, value in payload.items()}, str(path), metadata=metadata)
    else:
        torch.save(payload, path)
    return path


def outputs_of(reference: torch.nn.Module, loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    channels = loaded.in_channels
    image = torch.rand(1, channels, *IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return reference(image), loaded.module(image)


# ---------------------------------------------------------------- ESRGAN family


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", RRDB_CASES)
def test_every_esrgan_layout_loads_and_computes_what_its_own_network_computes(
    tmp_path: Path, case: str, style: str, suffix: str
) -> None:
    reference = reference_esrgan(case)
    _, scale, in_channels, out_channels, multiple = RRDB_CASES[case]
    loaded = load_model_file(save(in_style(reference.state_dict(), style), tmp_path / f"model{suffix}"))
    assert loaded.architecture == "RRDBNet"
    assert (loaded.scale, loaded.in_channels, loaded.out_channels) == (scale, in_channels, out_channels)
    assert loaded.size_multiple == loaded.min_size == multiple
    expected, actual = outputs_of(reference, loaded)
    assert actual.shape == (1, out_channels, IMAGE_SIZE[0] * scale, IMAGE_SIZE[1] * scale)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "case", ["x2", "ESRGAN+ x4", "grey x2 pixel-unshuffle (4-channel first conv)", "x8", "pixel-shuffle x3"]
)
def test_one_network_in_every_layout_and_file_type_is_one_model(tmp_path: Path, case: str) -> None:
    """Equal weights give equal outputs and one content hash, whichever layout the file uses."""
    reference = reference_esrgan(case)
    models = [
        load_model_file(save(in_style(reference.state_dict(), style), tmp_path / f"{index}{suffix}"))
        for index, (style, suffix) in enumerate((style, suffix) for style in STYLES for suffix in SUFFIXES)
    ]
    assert len({model.content_hash for model in models}) == 1
    assert len({tuple(sorted(model.hyperparameters.items())) for model in models}) == 1
    first = outputs_of(reference, models[0])[1]
    assert all(torch.equal(outputs_of(reference, model)[1], first) for model in models[1:])


def test_basicsr_files_keep_their_hyperparameters_and_other_layouts_name_what_differs() -> None:
    real_esrgan_x2 = reference_esrgan("x2 pixel-unshuffle (12-channel first conv)").state_dict()
    basicsr_x2 = detect_and_build(to_new_names(real_esrgan_x2, style="basicsr"), name="a", source="t")
    assert basicsr_x2.hyperparameters == {
        "num_in_ch": 3, "num_out_ch": 3, "scale": 2, "num_feat": 8, "num_block": 2, "num_grow_ch": 4,
    }  # fmt: skip
    old_x2 = detect_and_build(reference_esrgan("x2").state_dict(), name="b", source="t")
    assert old_x2.hyperparameters["num_upsample"] == 1 and old_x2.size_multiple == 1
    plus = detect_and_build(reference_esrgan("ESRGAN+ x4").state_dict(), name="c", source="t")
    assert plus.hyperparameters["plus"] is True
    assert plus.description.startswith("ESRGAN+ RRDBNet x4")


def test_x3_with_the_nearest_upsampler_cannot_be_told_from_x2_and_the_model_says_so() -> None:
    """ESRGAN's nearest x3 is one nearest-x3 stage: the same tensors as x2's one nearest-x2 stage."""
    loaded = detect_and_build(reference_esrgan("x2").state_dict(), name="maybe-x3", source="t")
    assert loaded.scale == 2
    assert "read as x2" in loaded.description and "x3" in loaded.description


def test_the_pixel_shuffle_upsampler_is_named_and_x3_by_it_needs_no_guess() -> None:
    loaded = detect_and_build(reference_esrgan("pixel-shuffle x3").state_dict(), name="x3", source="t")
    assert loaded.scale == 3 and loaded.hyperparameters["upsampler"] == "pixelshuffle"
    assert "pixel-shuffle upsampler" in loaded.description and "read as" not in loaded.description


def test_upsampling_convs_of_neither_upsampler_are_refused_naming_the_widths() -> None:
    state = reference_esrgan("x4").state_dict()  # nf 8: an upsampling conv to 16 channels is neither 8, 32 nor 72
    state["model.3.weight"], state["model.3.bias"] = torch.zeros(16, 8, 3, 3), torch.zeros(16)
    with pytest.raises(ModelError, match="make 8, 16 channels from 8"):
        detect_and_build(state, name="odd", source="t")


def test_convs_where_no_esrgan_upsampler_puts_them_are_refused_saying_where() -> None:
    state = reference_esrgan("x4").state_dict()
    moved = {key.replace("model.6.", "model.7."): value for key, value in state.items()}
    with pytest.raises(ModelError, match=r"model\.\[3, 7, 8, 10\]"):
        detect_and_build(moved, name="ps", source="t")


# ---------------------------------------------------------------- SRVGGNetCompact


def reference_compact(act: str, *, upscale: int = 4, channels: int = 3, num_conv: int = 2) -> ReferenceCompact:
    torch.manual_seed(7)
    return ReferenceCompact(num_in_ch=channels, upscale=upscale, num_conv=num_conv, act=act).eval()


COMPACT_CASES = {
    "prelu x4": ({"act": "prelu"}, None),
    "prelu x2, 5 convs": ({"act": "prelu", "upscale": 2, "num_conv": 5}, None),
    "prelu x1": ({"act": "prelu", "upscale": 1}, None),
    "prelu grey x2": ({"act": "prelu", "upscale": 2, "channels": 1}, None),
    "relu (assumed)": ({"act": "relu"}, None),
    "leakyrelu (from the file's act_type)": ({"act": "leakyrelu"}, {"act_type": "leakyrelu"}),
    "relu (from the file's act_type)": ({"act": "relu", "upscale": 2}, {"act_type": "relu"}),
}


@pytest.mark.parametrize("wrapper", ["bare", "params", "module. prefix"])
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("case", COMPACT_CASES)
def test_every_compact_layout_loads_and_computes_what_its_own_network_computes(
    tmp_path: Path, case: str, suffix: str, wrapper: str
) -> None:
    arguments, metadata = COMPACT_CASES[case]
    if metadata and suffix != ".safetensors":
        pytest.skip("only safetensors files carry metadata")
    reference = reference_compact(**arguments)  # type: ignore[arg-type]
    state = reference.state_dict()
    payload: dict = {"module." + key: value for key, value in state.items()} if wrapper == "module. prefix" else state
    payload = {"params": payload} if wrapper == "params" and suffix == ".pth" else payload
    loaded = load_model_file(save(payload, tmp_path / f"compact{suffix}", metadata))
    assert loaded.architecture == "SRVGGNetCompact"
    assert loaded.scale == arguments.get("upscale", 4)
    assert loaded.in_channels == loaded.out_channels == arguments.get("channels", 3)
    assert loaded.hyperparameters["act_type"] == arguments["act"]
    expected, actual = outputs_of(reference, loaded)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def test_a_compact_model_without_slopes_or_a_hint_is_assumed_relu_and_says_so(tmp_path: Path) -> None:
    leaky = reference_compact("leakyrelu")
    loaded = load_model_file(save(leaky.state_dict(), tmp_path / "unhinted.safetensors"))
    assert loaded.hyperparameters["act_type"] == "relu"
    assert "assumed ReLU" in loaded.description and "act_type" in loaded.description
    hinted = load_model_file(save(leaky.state_dict(), tmp_path / "hinted.safetensors", {"act_type": "leakyrelu"}))
    assert "assumed" not in hinted.description
    expected, actual = outputs_of(leaky, hinted)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("act", "hint", "message"),
    [("prelu", "relu", "PReLU slopes"), ("relu", "prelu", "no PReLU slopes"), ("relu", "gelu", "vidsr knows")],
)
def test_an_act_type_hint_that_contradicts_the_tensors_is_refused(
    tmp_path: Path, act: str, hint: str, message: str
) -> None:
    path = save(reference_compact(act).state_dict(), tmp_path / "odd.safetensors", {"act_type": hint})
    with pytest.raises(ModelError, match=message):
        load_model_file(path)


# ---------------------------------------------------------------- through the commands


def layout_files(folder: Path) -> list[tuple[str, Path, int]]:
    """One file per case above, (name, path, scale): the ESRGAN cases in the file layouts in turn,
    .pth and .safetensors alternating, the compact cases with their hints."""
    files = []
    for number, case in enumerate(RRDB_CASES):
        style, suffix = STYLES[number % len(STYLES)], SUFFIXES[number % 2]
        state = in_style(reference_esrgan(case).state_dict(), style)
        files.append((case, save(state, folder / f"esrgan {number}{suffix}"), RRDB_CASES[case][1]))
    for number, (case, (arguments, metadata)) in enumerate(COMPACT_CASES.items()):
        path = save(reference_compact(**arguments).state_dict(), folder / f"compact {number}.safetensors", metadata)  # type: ignore[arg-type]
        files.append((case, path, int(arguments.get("upscale", 4))))
    return files


def test_every_layout_upscales_a_photo_and_a_video_at_its_own_scale(tmp_path: Path) -> None:
    """`vidsr image` and `vidsr` with each file: the size its scale gives, every frame, colour or grey.

    25 files through two commands each: the clip is the smallest that still has audio, several
    frames and a size every pixel-unshuffle takes, so the test is about layouts, not compute."""
    import av
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from vidsr.cli.app import app, with_default_command

    clip = write_clip(tmp_path / "clip.mp4", ClipSpec(width=32, height=24, frames=6))
    runner = CliRunner()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(photo)
    for number, (case, model, scale) in enumerate(layout_files(tmp_path)):
        picture = tmp_path / f"photo {number}.png"
        result = runner.invoke(app, ["image", str(photo), str(picture), "--model", str(model)])
        assert result.exit_code == 0, (case, result.output)
        assert Image.open(picture).size == (32 * scale, 24 * scale), case

        video = tmp_path / f"video {number}.mp4"
        arguments = [str(clip), str(video), "--model", str(model), "--quiet", "--preset", "ultrafast"]
        result = runner.invoke(app, with_default_command(arguments))
        assert result.exit_code == 0, (case, result.output)
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (32 * scale, 24 * scale), case
            assert sum(1 for _ in container.decode(stream)) == 6, case
