"""What a training run is asked to do: :class:`TrainConfig` and the choices it names.

Plain values, no torch: the command line reads its defaults from here to show them in its
help, which must not wait for torch to load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "ADVERSARIAL_WEIGHT",
    "DEGRADATIONS",
    "PERCEPTUAL_WEIGHT",
    "PIXEL_WEIGHT",
    "Degradation",
    "DiscriminatorKind",
    "Stage",
    "TrainConfig",
]

Stage = Literal["psnr", "gan"]
Degradation = Literal["bicubic", "classic", "second-order"]
DEGRADATIONS: tuple[Degradation, ...] = ("bicubic", "classic", "second-order")
DiscriminatorKind = Literal["vgg", "unet"]

# The paper's weights for the GAN stage (ESRGAN section 4.1).
PERCEPTUAL_WEIGHT = 1.0
ADVERSARIAL_WEIGHT = 5e-3  # λ
PIXEL_WEIGHT = 1e-2  # η


@dataclass
class TrainConfig:
    """One training run. Paths and the model are what the CLI passes; the rest has the paper's defaults."""

    data: tuple[Path, ...]  # image files, videos, or folders of either
    out: Path  # checkpoint.pt and model.safetensors go here
    from_model: str | None = None  # anything resolve_model accepts; None: a fresh RRDBNet
    stage: Stage = "psnr"
    scale: int | None = None  # None: the --from model's own, or 4 for a fresh RRDBNet
    steps: int = 5000  # generator updates in all, counting those of an interrupted run
    batch: int = 16  # patches per update (paper: 16)
    patch: int = 128  # HR patch side in pixels (paper: 128)
    blocks: int = 23  # RRDB blocks of a fresh RRDBNet (paper: 23)
    features: int = 64  # trunk channels of a fresh RRDBNet (paper: 64; growth is half of it)
    degradation: Degradation = "bicubic"  # bicubic (paper) | classic | second-order (Real-ESRGAN)
    augment: bool = True  # random flips and 90-degree rotations
    frames_per_video: int = 100  # frames sampled evenly across each video
    val_fraction: float = 0.1  # share of pictures held out for validation
    val_patches: int = 16  # fixed held-out patches scored at each validation
    val_every: int = 500  # steps between validations (also at the start and the end)
    checkpoint_every: int = 100  # steps between checkpoints ...
    checkpoint_minutes: float = 10.0  # ... or minutes, whichever comes first
    learning_rate: float | None = None  # None: 2e-4 for psnr, 1e-4 for gan
    ema_decay: float = 0.999  # Real-ESRGAN's; warmed up over the first steps (see _ema_decay)
    vgg: Path | None = None  # torchvision-format VGG19 state dict, needed by the gan stage ...
    perceptual: bool = True  # ... unless this is False
    perceptual_layers: dict[str, float] = field(default_factory=lambda: {"conv5_4": 1.0})
    perceptual_weight: float = PERCEPTUAL_WEIGHT  # 1
    adversarial_weight: float = ADVERSARIAL_WEIGHT  # λ = 5e-3
    pixel_weight: float = PIXEL_WEIGHT  # η = 1e-2 (the gan stage; the psnr stage is L1 alone)
    discriminator: DiscriminatorKind = "vgg"  # vgg (ESRGAN) | unet (Real-ESRGAN, spectral norm)
    discriminator_features: int = 64
    device: str = "auto"  # auto (cuda if available, else cpu), cpu, cuda, mps
    precision: str = "auto"  # auto | fp32 | bf16 (mixed: weights and optimiser stay fp32); see training_precision
    seed: int = 0  # initial weights of a fresh network and every random draw of the data
    restart: bool = False  # ignore OUT/checkpoint.pt and start over
