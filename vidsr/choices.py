"""The user's choice of network and how to run it: a plain value every layer may take.

The command line builds it from its options and the inspect, render and upscale layers take
it; it lives here, apart from the upscale layer that acts on it, so that building it (and
showing its limits in ``--help``) loads neither torch nor PyAV.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidsr.defaults import DEFAULT_MODEL

__all__ = ["MAX_SCALE", "MIN_SCALE", "UpscaleOptions"]

MIN_SCALE, MAX_SCALE = 1.0, 16.0  # the output scales vidsr gives (checked by vidsr.upscale.check_scale)


@dataclass(frozen=True)
class UpscaleOptions:
    """The user's choice of network and how to run it, shared by every command that upscales."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)  # one, or two to interpolate between with ``alpha``
    alpha: float | None = None
    scale: float | None = None  # None: the model's own
    tile: int = 0
    device: str = "auto"  # auto, cpu, cuda[:N], mps or vulkan[:N]
    precision: str = "auto"
    engine: str = "auto"  # auto, torch or ncnn: what runs the network
