"""Half precision overflowing late in a render is refused where it enters, never encoded in silence.

fp16 tops out at 65504. A network can stay below it on every dark frame and pass it on the first
bright one (a flash, a white title card): +inf would be clamped to white and NaN turned into
whatever the colour conversion makes of it. The network here is a real SRVGGNetCompact whose
weights are all positive, so its activations grow with the frame's brightness: black frames give
0 everywhere, white ones about 97000 in the trunk (fine in fp32 and bf16, infinite in fp16; torch
keeps the first and last layers in fp32, so the trunk is where fp16 overflows, as in RRDB trunks).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import decode_video
from reference_nets import ReferenceCompact
from safetensors.torch import save_file
from test_upscale_video import vidsr

from vidsr.errors import SettingsError, VidsrError
from vidsr.models import LoadedModel
from vidsr.models.loader import detect_and_build
from vidsr.planes import ColourSpec, FrameBatch, PlaneLayout
from vidsr.render.workfolder import WorkFolder
from vidsr.upscale import Upscaler, vulkan_devices
from vidsr.upscale.policy import check_cuda_bf16
from vidsr.upscale.runner import VideoPlanes

FPS, DARK_FRAMES, BRIGHT_FRAMES = 8, 12, 4  # the overflow enters at 1.5 s (frame 12), in the fourth 0.5 s segment
FP16_TOP = 65504.0
needs_vulkan = pytest.mark.skipif(
    not vulkan_devices(), reason="no Vulkan device (apt-get install mesa-vulkan-drivers gives llvmpipe)"
)


def bright_overflow_network() -> ReferenceCompact:
    """Every bias 0, every weight 1 but the trunk's, 100: the trunk's activations are 27 x 36 x 100
    = 97200 times the frame's brightness, 0 on black."""
    network = ReferenceCompact(num_feat=4, num_conv=1, upscale=2, act="prelu")
    with torch.no_grad():
        for layer in network.modules():
            if isinstance(layer, torch.nn.Conv2d):
                assert layer.bias is not None
                layer.weight.fill_(1.0)
                layer.bias.zero_()
        trunk = network.body[2]
        assert isinstance(trunk, torch.nn.Conv2d)
        trunk.weight.mul_(100.0)
    return network


def bright_overflow_model() -> LoadedModel:
    return detect_and_build(dict(bright_overflow_network().state_dict()), name="bright-overflow", source="test")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The network as a user's file."""
    path = tmp_path_factory.mktemp("model") / "bright-overflow.safetensors"
    save_file({key: value.contiguous() for key, value in bright_overflow_network().state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def dark_then_bright(tmp_path_factory) -> Path:
    """2 s at 8 fps, 32x24: black frames, then white ones from frame 12 (1.5 s) on."""
    path = tmp_path_factory.mktemp("clip") / "dark then bright.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "10", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for index in range(DARK_FRAMES + BRIGHT_FRAMES):
            level = 0 if index < DARK_FRAMES else 255
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), level, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# ---------------------------------------------------------------- the whole render


@needs_vulkan
def test_an_overflow_that_enters_on_a_later_frame_stops_the_render_there(dark_then_bright, model_file, tmp_path):
    """On ncnn's Vulkan fp16 (llvmpipe here): the first frames are fine, frame 12 is not. The render
    stops with one line naming it, writes no output, and its journal keeps only the segments
    before: a rerun redoes the poisoned one instead of resuming past it. The way out it names works."""
    output = tmp_path / "out.mp4"
    common = (
        dark_then_bright,
        output,
        "--model",
        model_file,
        "--device",
        "vulkan",
        "--batch",
        "1",
        "--segment-seconds",
        "0.5",
    )
    result = vidsr(*common, "--precision", "fp16")
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    assert "bright-overflow gives NaN or infinite values in fp16 on vulkan:0" in message
    assert message.endswith("at 0:00:01.500 (its values overflow that precision); run again with --precision fp32 "
                            "--restart (the 3 segments done were made in fp16)")  # fmt: skip
    assert not output.exists()
    journal = json.loads(WorkFolder(output).journal_path.read_text())
    assert [segment["index"] for segment in journal["segments"]] == [0, 1, 2]

    assert vidsr(*common, "--precision", "fp32", "--restart", "--quiet").exit_code == 0
    frames = decode_video(output).frames
    assert len(frames) == DARK_FRAMES + BRIGHT_FRAMES
    assert frames[DARK_FRAMES - 1].max() < 0.05 and frames[DARK_FRAMES].min() > 0.95  # black, then white


# ---------------------------------------------------------------- the runner


def upscaler(precision: str) -> Upscaler:
    model = bright_overflow_model()
    fresh = dataclasses.replace(model, module=copy.deepcopy(model.module))
    video = VideoPlanes(
        source_colour=ColourSpec("bt709", full_range=True),
        output_size=(16, 16),
        output_colour=ColourSpec("bt709", full_range=True),
        output_layout=PlaneLayout("yuv", 8, (0, 0)),
        time_base=Fraction(1, 10),
    )
    return Upscaler(fresh, device=torch.device("cpu"), precision=precision, video=video)  # type: ignore[arg-type]


def grey_batch(level: int, first_index: int, frames: int = 2) -> FrameBatch:
    luma = np.full((frames, 8, 8), level, np.uint8)
    chroma = np.full((frames, 8, 8), 128, np.uint8)
    return FrameBatch(
        planes=(luma, chroma, chroma.copy()),
        pts=tuple(range(first_index, first_index + frames)),
        layout=PlaneLayout("yuv", 8, (0, 0)),
        first_index=first_index,
    )


def test_torch_fp16_checks_every_batch_where_its_frames_are_waited_for():
    """Torch's fp16 (CPU kernels here; the same runner code on a GPU): ``upscale`` does not read
    the flag, so a GPU is never stalled for it; ``wait``, which the encoder calls before reading
    the planes anyway, raises for the batch that overflowed and names its frames."""
    half = upscaler("fp16")
    for first in (0, 2):
        half.upscale(grey_batch(0, first)).wait()  # dark: fine
    bright = half.upscale(grey_batch(255, 4))  # returns: the check is not read here
    with pytest.raises(VidsrError, match=r"in fp16 on the CPU in the frames from 0:00:00.400 to 0:00:00.500 "):
        bright.wait()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fp32_and_bf16_hold_what_overflows_fp16(precision):
    """Why only fp16 checks every batch: bf16 has fp32's exponent, and the bright frame that
    overflows fp16 stays finite in both (only the first output is checked, for broken weights)."""
    frame = torch.ones(1, 3, 8, 8)
    runner = upscaler(precision)
    with torch.inference_mode():
        raw = runner.engine(frame)
    assert torch.isfinite(raw).all() and raw.max() > 2 * FP16_TOP
    assert torch.equal(runner.upscale_rgb(frame), torch.ones(1, 3, 16, 16))  # white, as it should be


# ---------------------------------------------------------------- bf16 on CUDA GPUs without it


@pytest.mark.parametrize(
    ("gpu", "capability", "fp16_works", "refused"),
    [
        ("Tesla V100-SXM2-16GB", (7, 0), True, "use fp16 or fp32"),
        ("NVIDIA GeForce GTX 1080 Ti", (6, 1), False, "use fp32"),
        ("NVIDIA A100-SXM4-40GB", (8, 0), True, None),
        ("NVIDIA GeForce RTX 4090", (8, 9), True, None),
    ],
)
def test_bf16_is_refused_on_cuda_gpus_without_it_in_hardware(gpu, capability, fp16_works, refused):
    if refused is None:
        check_cuda_bf16(gpu, capability, fp16_works=fp16_works)
        return
    major, minor = capability
    with pytest.raises(SettingsError) as raised:
        check_cuda_bf16(gpu, capability, fp16_works=fp16_works)
    message = str(raised.value)
    assert message.startswith(f"--precision bf16: {gpu} (compute capability {major}.{minor}) has no bf16")
    assert message.endswith(refused) and "\n" not in message
