"""Train and fine-tune upscalers with ESRGAN's recipe (PSNR stage, then RaGAN + perceptual stage).

``train(TrainConfig(...))`` runs or resumes a stage into a folder and exports the EMA weights as an
ordinary model file. The pieces are usable on their own: patch sampling (``data``), the
degradations (``degradations``), the VGG19 feature extractor (``vgg``), the losses (``losses``),
the discriminators.
"""

from __future__ import annotations

from vidsr.train.checkpoint import export_weights
from vidsr.train.data import (
    PatchSampler,
    Picture,
    TrainingPictures,
    collect_pictures,
    read_video_frames,
)
from vidsr.train.degradations import (
    DEGRADATIONS,
    Degradation,
    bicubic_downscale,
    blur_kernel,
    degrade,
    filter2d,
    sinc_kernel,
)
from vidsr.train.discriminator import (
    UNetDiscriminatorSN,
    VGGStyleDiscriminator,
    build_discriminator,
)
from vidsr.train.losses import (
    PerceptualLoss,
    l1_loss,
    ragan_discriminator_loss,
    ragan_generator_loss,
)
from vidsr.train.metrics import psnr, ssim, upscale_bicubic
from vidsr.train.trainer import (
    CHECKPOINT_NAME,
    WEIGHTS_NAME,
    TrainConfig,
    TrainProgress,
    TrainResult,
    Validation,
    learning_rate_at,
    train,
)
from vidsr.train.vgg import VGG19_CONV_INDEX, VGG19Features, load_vgg19

__all__ = [
    "CHECKPOINT_NAME",
    "DEGRADATIONS",
    "VGG19_CONV_INDEX",
    "WEIGHTS_NAME",
    "Degradation",
    "PatchSampler",
    "PerceptualLoss",
    "Picture",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainingPictures",
    "UNetDiscriminatorSN",
    "VGG19Features",
    "VGGStyleDiscriminator",
    "Validation",
    "bicubic_downscale",
    "blur_kernel",
    "build_discriminator",
    "collect_pictures",
    "degrade",
    "export_weights",
    "filter2d",
    "l1_loss",
    "learning_rate_at",
    "load_vgg19",
    "psnr",
    "ragan_discriminator_loss",
    "ragan_generator_loss",
    "read_video_frames",
    "sinc_kernel",
    "ssim",
    "train",
    "upscale_bicubic",
]
