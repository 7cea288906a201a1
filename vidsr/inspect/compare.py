"""Pictures for looking: a labelled side-by-side of source and upscaled, and turning upright."""

# Strict typing, less the unknown-type checks: Pillow's and numpy's stubs leave parts of these calls untyped.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false, reportUnknownVariableType=false

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

__all__ = ["comparison", "upright"]


def upright(rgb: torch.Tensor, rotation: int) -> torch.Tensor:
    """A picture (... x H x W) turned as the video's display matrix says, as players show it:
    ``rotation`` is FFmpeg's angle, in degrees counterclockwise."""
    quarter_turns = round(rotation / 90) % 4
    return torch.rot90(rgb, quarter_turns, dims=(-2, -1)) if quarter_turns else rgb


_GAP = 8  # pixels between the two panels
_PADDING = 4


def comparison(
    source: torch.Tensor, upscaled: torch.Tensor, *, left: list[str], right: list[str], caption: str
) -> torch.Tensor:
    """Side by side: ``source`` enlarged bicubically to the model's output size, then ``upscaled``.

    Both panels sit at the bottom; above each, its label lines and ``caption``. Returns
    RGB 0..1 (1 x 3 x H x W) for an 8-bit PNG.
    """
    height, width = upscaled.shape[-2:]
    bicubic = F.interpolate(source.float(), size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    font = ImageFont.load_default()
    line_height = _text_height(font) + 2
    label_height = _PADDING * 2 + line_height * (max(len(left), len(right)) + 1)
    canvas = Image.new("RGB", (width * 2 + _GAP, height + label_height), (24, 24, 24))
    for x, panel, lines in ((0, bicubic, left), (width + _GAP, upscaled, right)):
        pixels = (panel[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        canvas.paste(Image.fromarray(pixels), (x, label_height))
        draw = ImageDraw.Draw(canvas)
        for row, text in enumerate([*lines, caption]):
            draw.text((x + _PADDING, _PADDING + row * line_height), text, fill=(240, 240, 240), font=font)
    array = np.asarray(canvas, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _text_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    _, top, _, bottom = font.getbbox("Ag0:")
    return int(bottom - min(top, 0))
