"""Validation scores: PSNR and SSIM on known images, bicubic as the reference to beat."""

from __future__ import annotations

import math

import pytest
import torch

from vidsr.train.degradations import bicubic_downscale
from vidsr.train.metrics import psnr, ssim, upscale_bicubic


def test_psnr_of_a_known_error():
    target = torch.full((2, 3, 8, 8), 0.5)
    assert psnr(target + 0.1, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)  # MSE 0.01


def test_ssim_is_one_for_equal_images_and_falls_with_noise():
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim(images, images).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    noisy = (images + 0.2 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(noisy, images) < 0.9).all()


def test_bicubic_round_trip_of_a_smooth_image_is_close():
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = torch.stack((x, y, 0.5 + 0.4 * torch.sin(2 * math.pi * x * y)))[None]
    back = upscale_bicubic(bicubic_downscale(smooth, 4), 4)
    assert back.shape == smooth.shape
    assert psnr(back, smooth).item() > 30
