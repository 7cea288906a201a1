"""Run a network on overlapping tiles and blend them back without seams.

A frame too large for the device is cut into tiles. Each tile is processed with extra
context around it, and neighbouring outputs are cross-faded over the shared margin with
weights that fall to zero where a tile's context runs out, so tile edges, where the
network sees least, never decide a pixel alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

DEFAULT_OVERLAP = 32  # input pixels of context shared by neighbouring tiles


@dataclass(frozen=True)
class Span:
    """A window [start, stop) along one axis, and which of its ends border another tile."""

    start: int
    stop: int
    blend_before: bool
    blend_after: bool


def spans(length: int, tile: int, overlap: int) -> list[Span]:
    """Windows covering ``length``: cores of at most ``tile`` each widened by ``overlap`` on
    sides that have a neighbour (clamped to the frame)."""
    count = max(1, -(-length // tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    windows: list[Span] = []
    for index in range(count):
        first, last = index == 0, index == count - 1
        start = edges[index] if first else max(0, edges[index] - overlap)
        stop = edges[index + 1] if last else min(length, edges[index + 1] + overlap)
        windows.append(Span(start, stop, blend_before=not first, blend_after=not last))
    return windows


def ramp(span: Span, overlap: int, scale: int, device: torch.device) -> torch.Tensor:
    """1-D blending weights in output pixels.

    Towards a neighbour, the outer half of the overlap is context only (weight 0), the next
    ``overlap`` pixels fade in, and the rest counts fully: where two tiles meet, each decides
    the pixels it has more context for, and they cross-fade where they have about as much.
    """
    size = (span.stop - span.start) * scale
    distance = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    context_only, fade = overlap * scale / 2, max(overlap * scale, 1)
    weights = torch.ones(size, device=device)
    if span.blend_before:
        weights = torch.minimum(weights, ((distance - context_only) / fade).clamp(0, 1))
    if span.blend_after:
        weights = torch.minimum(weights, ((distance.flip(0) - context_only) / fade).clamp(0, 1))
    return weights + _NEVER_ZERO


_NEVER_ZERO = 1e-6  # where clamped windows leave a pixel with no full weight, it still averages


def run_tiled(
    network: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
) -> torch.Tensor:
    """``network(images)`` computed tile by tile (every frame of the batch at once).

    ``network`` maps B x C x h x w to B x C x h*scale x w*scale, in float32.
    """
    batch, channels, height, width = images.shape
    output = torch.zeros(batch, channels, height * scale, width * scale, device=images.device)
    total_weight = torch.zeros(1, 1, height * scale, width * scale, device=images.device)
    for rows in spans(height, tile, overlap):
        row_weights = ramp(rows, overlap, scale, images.device)
        for cols in spans(width, tile, overlap):
            window = images[..., rows.start : rows.stop, cols.start : cols.stop]
            weights = row_weights[:, None] * ramp(cols, overlap, scale, images.device)[None, :]
            target = (
                slice(None),
                slice(None),
                slice(rows.start * scale, rows.stop * scale),
                slice(cols.start * scale, cols.stop * scale),
            )
            output[target] += network(window) * weights
            total_weight[target] += weights
    return output / total_weight
