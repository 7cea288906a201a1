"""How close one output is to another, and where a reduced precision's error enters an RRDBNet.

Shared by ``bench/precision.py`` (bf16 on the CPU) and ``bench/device_check.py`` (a GPU's fp16, or
whatever a device runs by default): the same PSNR, the same 8-bit rounding, the same stage trace.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from vidsr.models.arch import RRDBNet

CPU = torch.device("cpu")
THRESHOLD_DB = 45.0  # the fidelity a default precision must keep against fp32 (8-bit PSNR)


def levels(output: torch.Tensor, *, rounded: bool = True) -> torch.Tensor:
    """The 8-bit values a render would encode (or, unrounded, on the same 0..255 scale)."""
    scaled = output.float().clamp(0, 1) * 255
    return scaled.round() if rounded else scaled


def psnr_of(difference: torch.Tensor) -> float:
    mse = float(difference.double().pow(2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def fidelity(reference: torch.Tensor, test: torch.Tensor) -> tuple[float, float, float]:
    """PSNR (dB) before rounding to 8 bits, PSNR of the 8-bit values, and their largest difference
    (levels), of ``test`` against ``reference``. Rounding alone costs two outputs that differ by a
    hair some single-level flips: 8-bit PSNRs of nearly equal outputs sit near 55-60 dB, where the
    unrounded PSNR still tells variants apart."""
    reference, test = reference.detach().float().cpu(), test.detach().float().cpu()
    exact = psnr_of(levels(reference, rounded=False) - levels(test, rounded=False))
    difference = levels(reference) - levels(test)
    return exact, psnr_of(difference), float(difference.abs().max())


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 to 1 x 3 x H x W float 0..1."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


def cartoon(width: int = 640, height: int = 360) -> Image.Image:
    """A cel-like picture: a sky gradient, flat fills and 8-pixel dark outlines (at 640x360)."""
    sky = np.linspace([70, 150, 240], [210, 235, 255], height).astype(np.uint8)[:, None, :].repeat(width, 1)
    picture = Image.fromarray(sky)
    draw = ImageDraw.Draw(picture)
    ink, line = (20, 16, 28), 8
    draw.rectangle((0, 250, width, height), fill=(70, 165, 60), outline=ink, width=line)
    draw.ellipse((470, 30, 580, 140), fill=(255, 220, 30), outline=ink, width=line)
    draw.polygon([(40, 260), (170, 70), (300, 260)], fill=(140, 100, 180), outline=ink, width=line)
    draw.rectangle((330, 160, 440, 290), fill=(225, 80, 60), outline=ink, width=line)
    draw.polygon([(315, 165), (385, 95), (455, 165)], fill=(110, 55, 35), outline=ink, width=line)
    draw.ellipse((120, 200, 190, 330), fill=(255, 205, 185), outline=ink, width=line)
    draw.ellipse((138, 235, 152, 250), fill=(0, 0, 0))
    draw.ellipse((160, 235, 174, 250), fill=(0, 0, 0))
    draw.rectangle((540, 220, 620, 340), fill=(255, 255, 255), outline=ink, width=line)
    return picture


def realistic_picture(width: int, height: int, *, seed: int = 0) -> np.ndarray:
    """A frame with what real footage has and a flat test pattern lacks: hard outlines and flat
    fills (``cartoon``), smooth gradients, a fine periodic texture, a patch of film grain and
    thin dark lines like text. uint8, H x W x 3, the same for the same arguments."""
    base = np.asarray(cartoon().resize((width, height), Image.Resampling.LANCZOS)).astype(np.float64)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    texture = 18 * np.sin(x * 1.9) * np.cos(y * 1.3)  # a weave finer than the outlines
    grain = np.random.default_rng(seed).normal(0, 10, (height, width, 3))
    right, lower = slice(width // 2, None), slice(height // 2, None)
    base[lower, right] += texture[lower, right, None]
    base[: height // 2, : width // 3] += grain[: height // 2, : width // 3]
    for row in range(height // 8, height // 3, max(2, height // 24)):  # lines of "text"
        base[row, width // 2 : width // 2 + width // 3] = 25
    return np.clip(np.round(base), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- where the error enters


def rrdb_stages(network: RRDBNet) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """RRDBNet as a chain of stages; the trunk sum needs the head's output, kept by the closure."""
    kept: dict[str, torch.Tensor] = {}

    def head(x: torch.Tensor) -> torch.Tensor:
        if network.unshuffle > 1:
            x = F.pixel_unshuffle(x, network.unshuffle)
        kept["head"] = network.conv_first(x)
        return kept["head"]

    def trunk_sum(body: torch.Tensor) -> torch.Tensor:
        return kept["head"].to(body.dtype) + network.conv_body(body)

    def upsample(conv: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda feat: network.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))

    stages: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [("head", head)]
    stages += [(f"block{index:02d}", block) for index, block in enumerate(network.body)]
    stages.append(("trunk_sum", trunk_sum))
    stages += [(f"up{index + 1}", upsample(conv)) for index, conv in enumerate(network.upsampling_convs)]
    stages.append(("hr", lambda feat: network.lrelu(network.conv_hr(feat))))
    stages.append(("last", network.conv_last))
    return stages


def relative_rms(reference: torch.Tensor, test: torch.Tensor) -> float:
    difference = (test.float() - reference.float()).pow(2).mean().sqrt()
    return float(difference / reference.float().pow(2).mean().sqrt().clamp_min(1e-12))


@dataclass(frozen=True)
class StageError:
    """One stage of an RRDBNet run in a reduced precision, against the fp32 activations."""

    stage: str
    fp32_rms: float  # the size of the fp32 activations
    added: float  # relative rms error of this stage alone (reduced, on the fp32 stage's input)
    carried: float  # relative rms error of the whole reduced chain so far
    peak: float  # the largest magnitude the reduced chain reached (fp16 overflows at 65504)


def stage_errors(
    network: RRDBNet, rgb: torch.Tensor, dtype: torch.dtype, device: torch.device = CPU
) -> list[StageError]:
    """Where ``dtype``'s error enters ``network`` (kept as it is: fp32) on ``rgb`` (1 x 3 x H x W),
    the reduced copy run on ``device`` and compared stage by stage on the CPU in fp32."""
    full = network.eval()
    low = copy.deepcopy(full).to(device=device, dtype=dtype)
    rows: list[StageError] = []
    with torch.inference_mode():
        exact, chained = rgb.float(), rgb.to(device=device, dtype=dtype)
        for (name, exact_stage), (_, low_stage) in zip(rrdb_stages(full), rrdb_stages(low)):
            alone = low_stage(exact.to(device=device, dtype=dtype)).float().cpu()
            chained = low_stage(chained)
            exact = exact_stage(exact)
            chained_cpu = chained.float().cpu()
            rows.append(
                StageError(
                    stage=name,
                    fp32_rms=float(exact.pow(2).mean().sqrt()),
                    added=relative_rms(exact, alone),
                    carried=relative_rms(exact, chained_cpu),
                    peak=float(chained_cpu.abs().max()),
                )
            )
    return rows


def where_error_enters(rows: list[StageError]) -> str:
    """One line: the first stage whose own error is the largest jump, and any non-finite value."""
    broken = next((row for row in rows if not np.isfinite(row.carried) or not np.isfinite(row.peak)), None)
    if broken is not None:
        return f"values stop being finite at {broken.stage} (peak {broken.peak:.3g}): the precision overflows there"
    worst = max(rows, key=lambda row: row.added)
    last = rows[-1]
    return (
        f"the largest error a stage adds on its own is at {worst.stage} ({worst.added:.2e} relative rms); "
        f"carried to the output: {last.carried:.2e}"
    )
