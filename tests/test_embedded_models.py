"""Each embedded Real-ESRGAN model upscales a real clip end to end through the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from media import ClipSpec, area_downscale, audio_packets, decode_video, psnr, write_clip
from test_upscale_video import vidsr

from vidsr.models.zoo import EMBEDDED


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """Four 32x24 frames with audio: small enough for the 23-block model on a CPU."""
    return write_clip(tmp_path_factory.mktemp("tiny") / "tiny clip.mp4", ClipSpec(width=32, height=24, frames=4))


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_model_upscales_a_clip(name, tiny_clip, tmp_path):
    output = tmp_path / f"{name}.mp4"
    result = vidsr(tiny_clip, output, "--model", name, "--quiet")
    assert result.exit_code == 0, result.output

    source, upscaled = decode_video(tiny_clip), decode_video(output)
    assert (upscaled.width, upscaled.height) == (128, 96)
    assert upscaled.times == pytest.approx(source.times, abs=1e-6)
    assert audio_packets(output) == audio_packets(tiny_clip)
    for before, after in zip(source.frames, upscaled.frames):
        # A GAN-trained model redraws detail (about 22-24 dB on this synthetic pattern), but it
        # draws the same picture: far closer to the source than to the source moved 3 pixels.
        downscaled_back = area_downscale(after, 4)
        assert psnr(downscaled_back, before) > 19.0
        assert psnr(after, _bicubic(before, 4)) > 19.0
        assert psnr(downscaled_back, before) > psnr(downscaled_back, np.roll(before, 3, axis=1)) + 6.0


def _bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    enlarged = F.interpolate(tensor, scale_factor=scale, mode="bicubic", align_corners=False)
    return enlarged[0].permute(1, 2, 0).clamp(0, 1).numpy()
