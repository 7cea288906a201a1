"""Train and fine-tune upscalers with ESRGAN's recipe (PSNR stage, then RaGAN + perceptual stage).

``train(TrainConfig(...))`` runs or resumes a stage into a folder and exports the EMA weights as an
ordinary model file. The pieces are usable on their own, each from its module: patch sampling
(``data``), the degradations (``degradations``), the VGG19 feature extractor (``vgg``), the
losses (``losses``), the discriminators (``discriminator``), the scores (``metrics``), the loop
(``trainer``).

This package's own namespace is light on purpose: :class:`TrainConfig` is plain values (the
command line shows its defaults in ``vidsr train --help`` without loading torch), and
:func:`train` loads the trainer, and torch with it, when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidsr.train.config import DEGRADATIONS, Degradation, DiscriminatorKind, Stage, TrainConfig

if TYPE_CHECKING:
    from vidsr.train.trainer import ProgressCallback, TrainResult

__all__ = ["DEGRADATIONS", "Degradation", "DiscriminatorKind", "Stage", "TrainConfig", "train"]


def train(config: TrainConfig, *, on_progress: ProgressCallback | None = None) -> TrainResult:
    """Run (or continue) the training ``config`` describes; see :func:`vidsr.train.trainer.train`."""
    from vidsr.train.trainer import train as run_training

    return run_training(config, on_progress=on_progress)
