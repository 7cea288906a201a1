"""ESRGAN's losses: L1, the perceptual loss on VGG19 features, and the relativistic average GAN.

With C the discriminator's raw output (logits), σ the sigmoid, and E a mean over the batch
(and, for a U-Net discriminator, over its pixels), the relativistic average discriminator is

    D_Ra(a, b) = σ(C(a) − E[C(b)])

and the paper's two losses (ESRGAN, eqs. 1 and 2) are

    L_D = −E_real[log D_Ra(real, fake)] − E_fake[log(1 − D_Ra(fake, real))]
    L_G = −E_real[log(1 − D_Ra(real, fake))] − E_fake[log D_Ra(fake, real)]

The generator's total in the GAN stage is L_percep + λ·L_G + η·L1 with λ = 5e-3, η = 1e-2.
(BasicSR halves both GAN losses inside its code; these are the paper's, unhalved.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from vidsr.train.vgg import VGG19Features


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: the PSNR stage's only loss and the GAN stage's content loss."""
    return F.l1_loss(output, target)


def ragan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D: the discriminator learns that real images are more realistic than fake ones *on average*.

    Pass ``fake_logits`` of detached generator output, so this loss trains only the discriminator.
    """
    real_vs_fake = real_logits - fake_logits.mean()
    fake_vs_real = fake_logits - real_logits.mean()
    # −log σ(x) = BCE(x, 1) and −log(1 − σ(x)) = BCE(x, 0), computed stably from logits.
    return F.binary_cross_entropy_with_logits(
        real_vs_fake, torch.ones_like(real_vs_fake)
    ) + F.binary_cross_entropy_with_logits(fake_vs_real, torch.zeros_like(fake_vs_real))


def ragan_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G: the symmetric counterpart; the generator gains from both real and fake logits.

    ``real_logits`` may be detached (the discriminator is not trained by this loss); the
    gradient reaches the generator through ``fake_logits`` in both terms.
    """
    real_vs_fake = real_logits - fake_logits.mean()
    fake_vs_real = fake_logits - real_logits.mean()
    return F.binary_cross_entropy_with_logits(
        real_vs_fake, torch.zeros_like(real_vs_fake)
    ) + F.binary_cross_entropy_with_logits(fake_vs_real, torch.ones_like(fake_vs_real))


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between VGG19 features (before activation) of output and target.

    Args:
        vgg: the feature extractor; its ``layers`` must include every key of ``layer_weights``.
        layer_weights: ESRGAN uses ``{"conv5_4": 1.0}``; Real-ESRGAN conv1_2..conv5_4 with
            0.1, 0.1, 1, 1, 1.
    """

    def __init__(self, vgg: VGG19Features, *, layer_weights: Mapping[str, float]) -> None:
        super().__init__()
        missing = set(layer_weights) - set(vgg.layers)
        if missing:
            raise ValueError(f"the VGG extractor does not produce {sorted(missing)}")
        self.vgg = vgg
        self.layer_weights = dict(layer_weights)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output_features = self.vgg(output)
        with torch.no_grad():
            target_features = self.vgg(target)
        losses = [  # in fp32 even when the features were computed in bf16 (autocast)
            weight * F.l1_loss(output_features[name].float(), target_features[name].float())
            for name, weight in self.layer_weights.items()
        ]
        return torch.stack(losses).sum()
