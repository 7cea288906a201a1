"""Degradations: how training makes LR pictures, from the paper's bicubic to Real-ESRGAN's second order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from media import pattern

from vidsr.train.degradations import bicubic_downscale, blur_kernel, degrade, filter2d, sinc_kernel


def frequency_response(kernel: torch.Tensor, size: int = 128) -> torch.Tensor:
    """|H| of a kernel on a size x size grid of frequencies, zero frequency at [0, 0]."""
    return torch.fft.fft2(kernel.double(), s=(size, size)).abs()


def radial_gain(kernel: torch.Tensor, omega: float, size: int = 128) -> float:
    """The kernel's gain at ``omega`` radians per pixel along the horizontal axis."""
    return float(frequency_response(kernel, size)[0, round(omega / (2 * math.pi) * size)])


@pytest.mark.parametrize("cutoff", [math.pi / 3, math.pi / 2, 2 * math.pi / 3])
def test_a_sinc_kernel_keeps_frequencies_below_its_cutoff_and_removes_those_above(cutoff):
    kernel = sinc_kernel(21, cutoff)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
    passband = [radial_gain(kernel, f * cutoff) for f in (0.2, 0.4, 0.6, 0.8)]
    stopband = [radial_gain(kernel, min(f * cutoff, 0.98 * math.pi)) for f in (1.25, 1.5, 2.0)]
    assert all(0.8 < gain < 1.2 for gain in passband), passband  # 21 taps ripple (Gibbs), as they should
    assert all(gain < 0.1 for gain in stopband), stopband


def test_a_sinc_filter_rings_beside_edges_where_a_gaussian_does_not():
    """The point of the sinc in Real-ESRGAN: the over- and undershoot real footage has at edges."""
    edge = torch.zeros(1, 1, 32, 32)
    edge[..., 16:] = 0.8
    ringing = filter2d(edge, sinc_kernel(21, math.pi / 3))
    smooth = filter2d(edge, blur_kernel(21, sigma_x=2.0))
    assert ringing.max() > 0.8 + 0.02 and ringing.min() < -0.02
    assert smooth.max() <= 0.8 + 1e-6 and smooth.min() >= -1e-6


def test_blur_kernels_are_normalised_and_a_generalised_gaussian_of_beta_one_is_the_gaussian():
    gaussian = blur_kernel(21, sigma_x=2.0, sigma_y=1.0, angle=0.5)
    for shape, beta in (("gaussian", 1.0), ("generalized", 0.5), ("generalized", 4.0), ("plateau", 1.5)):
        assert blur_kernel(21, sigma_x=2.0, shape=shape, beta=beta).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(blur_kernel(21, sigma_x=2.0, sigma_y=1.0, angle=0.5, shape="generalized", beta=1.0), gaussian)


def test_an_anisotropic_kernel_blurs_most_along_its_angle():
    """sigma_x 3 along 90 degrees (vertical): vertical detail goes, horizontal detail stays."""
    kernel = blur_kernel(21, sigma_x=3.0, sigma_y=0.3, angle=math.pi / 2)
    stripes_across = torch.zeros(1, 1, 32, 32)
    stripes_across[..., ::4, :] = 1.0  # they vary vertically
    stripes_along = stripes_across.transpose(-1, -2)
    assert filter2d(stripes_across, kernel).std() < 0.3 * filter2d(stripes_along, kernel).std()


def test_a_plateau_kernel_is_flatter_on_top_and_wider_than_a_gaussian():
    gaussian = blur_kernel(21, sigma_x=2.0)
    plateau = blur_kernel(21, sigma_x=2.0, shape="plateau", beta=2.0)
    assert plateau[10, 11] / plateau[10, 10] > gaussian[10, 11] / gaussian[10, 10]
    assert plateau[10, 18] > gaussian[10, 18]


@pytest.mark.parametrize("kind", ["classic", "second-order"])
def test_degradations_make_a_different_lr_of_the_right_size(kind):
    hr = torch.from_numpy(pattern(0, 64, 64)).permute(2, 0, 1)[None].float() / 255
    results = [degrade(hr, 4, kind, torch.Generator().manual_seed(seed)) for seed in range(6)]
    plain = bicubic_downscale(hr, 4)
    for lr in results:
        assert lr.shape == (1, 3, 16, 16)
        assert 0 <= lr.min() and lr.max() <= 1
    assert any((lr - plain).abs().mean() > 0.005 for lr in results)
    # Same generator state, same degradation: resumed runs draw what uninterrupted ones would.
    assert torch.equal(results[2], degrade(hr, 4, kind, torch.Generator().manual_seed(2)))


def test_second_order_is_harsher_than_classic_on_average():
    hr = torch.from_numpy(pattern(3, 64, 64)).permute(2, 0, 1)[None].float() / 255
    plain = bicubic_downscale(hr, 4)

    def mean_error(kind):
        return np.mean(
            [(degrade(hr, 4, kind, torch.Generator().manual_seed(s)) - plain).abs().mean().item() for s in range(12)]
        )

    assert mean_error("second-order") > mean_error("classic")
