"""Scores for validation and reports: PSNR, SSIM, and the bicubic enlargement every upscaler must beat."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of N x C x H x W in 0..1."""
    mse = (output - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per image of N x C x H x W in 0..1 (Wang et al. 2004: 11x11 Gaussian window, σ 1.5,
    valid area only, averaged over channels)."""
    coords = torch.arange(11, dtype=torch.float64) - 5
    gauss = torch.exp(-(coords**2) / (2 * 1.5**2))
    window = torch.outer(gauss, gauss)
    window = (window / window.sum()).to(output.dtype)
    channels = output.shape[1]
    kernel = window.expand(channels, 1, 11, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(output), blur(target)
    var_x = blur(output * output) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(output * target) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def upscale_bicubic(images: torch.Tensor, scale: int) -> torch.Tensor:
    """The reference every upscaler must beat: plain bicubic enlargement, clamped to 0..1."""
    if scale == 1:
        return images.clone()
    return F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
