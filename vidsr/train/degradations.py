"""How training makes an LR picture from an HR one: the paper's bicubic, or synthetic real-world damage.

``second-order`` follows Real-ESRGAN (Wang et al. 2021, section 3): blur, resize, noise and JPEG,
twice, then a sinc filter. Its blur kernels come in Real-ESRGAN's six shapes (isotropic or not,
Gaussian, generalised Gaussian, plateau) and sometimes a 2-D sinc, whose ringing and overshoot
are what sharpening and compression leave around edges in real footage. Every random choice comes
from the caller's ``torch.Generator``, so a resumed training run draws what an uninterrupted one would.
"""

# Strict typing, less the unknown-type checks: Pillow's, numpy's and torch's stubs leave parts of these calls untyped.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false, reportUnknownVariableType=false

from __future__ import annotations

import io
import math
from typing import Literal

import torch
from torch.nn import functional as F

from vidsr.train.config import Degradation

KernelShape = Literal["gaussian", "generalized", "plateau"]


def bicubic_downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Float images (N x 3 x H x W, 0..1) shrunk by ``scale`` with antialiased bicubic, clamped.

    H and W must be multiples of ``scale``. Antialiasing makes this MATLAB ``imresize``-like,
    the downscaling the ESRGAN paper trains and tests with.
    """
    if scale == 1:
        return images.clone()
    height, width = images.shape[-2:]
    out = F.interpolate(
        images, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False
    )
    return out.clamp_(0.0, 1.0)


def degrade(hr: torch.Tensor, scale: int, kind: Degradation, generator: torch.Generator) -> torch.Tensor:
    """The LR partner of one HR patch (1 x 3 x H x W, 0..1), of size H/scale x W/scale."""
    size = (hr.shape[-2] // scale, hr.shape[-1] // scale)
    if kind == "bicubic":
        return bicubic_downscale(hr, scale)
    if kind == "classic":
        image = hr
        if _chance(generator, 0.5):
            image = gaussian_blur(image, sigma_x=_uniform(generator, 0.2, 2.0))
        image = bicubic_downscale(image, scale)
        if _chance(generator, 0.5):
            image = _gaussian_noise(image, _uniform(generator, 1.0, 10.0) / 255, generator)
        if _chance(generator, 0.5):
            image = jpeg(image, quality=int(_uniform(generator, 50, 95)))
        return image
    return _second_order(hr, size, generator)


def _second_order(hr: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Real-ESRGAN's high-order degradation: blur, random resize, noise, JPEG; then once more,
    milder; then the resize to the LR size and a sinc filter, before or after the last JPEG."""
    image = filter2d(hr, _random_kernel(generator, sigma=(0.2, 3.0)))
    image = _random_resize(image, generator, scale_range=(0.15, 1.5))
    image = _random_noise(image, generator, sigma=(1.0, 30.0), poisson=(0.05, 3.0))
    image = jpeg(image, quality=int(_uniform(generator, 30, 95)))
    if _chance(generator, 0.8):
        image = filter2d(image, _random_kernel(generator, sigma=(0.2, 1.5)))
    image = _random_resize(image, generator, scale_range=(0.3, 1.2), base=size)
    image = _random_noise(image, generator, sigma=(1.0, 25.0), poisson=(0.05, 2.5))
    final_sinc = _final_sinc(generator)
    quality = int(_uniform(generator, 30, 95))
    if _chance(generator, 0.5):
        image = filter2d(_resize(image, size, _random_mode(generator)), final_sinc)
        return jpeg(image.clamp(0.0, 1.0), quality=quality)
    image = jpeg(image.clamp(0.0, 1.0), quality=quality)
    return filter2d(_resize(image, size, _random_mode(generator)), final_sinc).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------- kernels


def blur_kernel(
    size: int,
    *,
    sigma_x: float,
    sigma_y: float | None = None,
    angle: float = 0.0,
    shape: KernelShape = "gaussian",
    beta: float = 1.0,
) -> torch.Tensor:
    """A normalised ``size`` x ``size`` blur kernel (``size`` odd), rotated by ``angle`` radians.

    With d² the squared Mahalanobis distance from the centre: a Gaussian is exp(-d²/2); a
    generalised Gaussian exp(-(d²)^β / 2), sharper-shouldered for β > 1 and heavier-tailed
    for β < 1; a plateau 1 / (1 + (d²)^β), flat on top.
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    radius = size // 2
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * x + sin * y, -sin * x + cos * y
    distance = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    if shape == "gaussian":
        kernel = torch.exp(-0.5 * distance)
    elif shape == "generalized":
        kernel = torch.exp(-0.5 * distance.pow(beta))
    else:
        kernel = 1.0 / (1.0 + distance.pow(beta))
    return (kernel / kernel.sum()).float()


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """A normalised circular low-pass filter: the 2-D sinc (Airy pattern) that keeps spatial
    frequencies below ``cutoff`` radians per pixel (π keeps everything a grid can hold).

    Cut off at ``size`` pixels, it rings: bright and dark fringes beside edges, as sharpening
    and lossy compression leave them.
    """
    radius = size // 2
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    r = torch.hypot(x, y)
    kernel = cutoff * torch.special.bessel_j1(cutoff * r) / (2 * math.pi * r)
    kernel[radius, radius] = cutoff**2 / (4 * math.pi)  # the limit at r = 0
    return (kernel / kernel.sum()).float()


def filter2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of N x C x H x W with one kernel; borders reflected."""
    radius = kernel.shape[-1] // 2
    channels = image.shape[1]
    # Reflection needs more pixels than the radius; tiny images (deep in second order) replicate.
    padded = F.pad(image, (radius,) * 4, mode="reflect" if min(image.shape[-2:]) > radius else "replicate")
    return F.conv2d(padded, kernel.to(image.dtype).expand(channels, 1, -1, -1), groups=channels)


def gaussian_blur(
    image: torch.Tensor, *, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0
) -> torch.Tensor:
    """Blur N x C x H x W with an (optionally anisotropic, rotated) Gaussian reaching 3 sigma."""
    radius = min(max(1, math.ceil(3 * max(sigma_x, sigma_y or sigma_x))), 10)  # Real-ESRGAN's kernels reach 21x21
    return filter2d(image, blur_kernel(2 * radius + 1, sigma_x=sigma_x, sigma_y=sigma_y, angle=angle))


# Real-ESRGAN's mix of kernel shapes, (shape, anisotropic) -> probability.
_KERNEL_MIX: tuple[tuple[KernelShape, bool, float], ...] = (
    ("gaussian", False, 0.45),
    ("gaussian", True, 0.25),
    ("generalized", False, 0.12),
    ("generalized", True, 0.03),
    ("plateau", False, 0.12),
    ("plateau", True, 0.03),
)
_BETA_RANGE: dict[KernelShape, tuple[float, float]] = {
    "gaussian": (1.0, 1.0),
    "generalized": (0.5, 4.0),
    "plateau": (1.0, 2.0),
}
_SINC_CHANCE = 0.1  # of a blur being a sinc instead
_FINAL_SINC_CHANCE = 0.8
_SIZES = tuple(range(7, 22, 2))  # Real-ESRGAN's kernel sizes, 7x7 to 21x21


def _random_kernel(generator: torch.Generator, *, sigma: tuple[float, float]) -> torch.Tensor:
    size = _SIZES[int(torch.randint(len(_SIZES), (1,), generator=generator))]
    if _chance(generator, _SINC_CHANCE):
        lowest = math.pi / 3 if size < 13 else math.pi / 5  # a large kernel can hold a lower cutoff
        return sinc_kernel(size, _uniform(generator, lowest, math.pi))
    shape, anisotropic = _random_shape(generator)
    sigma_x = _uniform(generator, *sigma)
    sigma_y = _uniform(generator, *sigma) if anisotropic else sigma_x
    angle = _uniform(generator, 0.0, math.pi) if anisotropic else 0.0
    beta = _uniform(generator, *_BETA_RANGE[shape])
    return blur_kernel(size, sigma_x=sigma_x, sigma_y=sigma_y, angle=angle, shape=shape, beta=beta)


def _random_shape(generator: torch.Generator) -> tuple[KernelShape, bool]:
    roll = _uniform(generator, 0.0, 1.0)
    for shape, anisotropic, probability in _KERNEL_MIX:
        if roll < probability:
            return shape, anisotropic
        roll -= probability
    return _KERNEL_MIX[-1][0], _KERNEL_MIX[-1][1]


def _final_sinc(generator: torch.Generator) -> torch.Tensor:
    """The last filter of second order: a 21x21 sinc, or (one time in five) none at all."""
    if _chance(generator, _FINAL_SINC_CHANCE):
        return sinc_kernel(21, _uniform(generator, math.pi / 3, math.pi))
    return torch.ones(1, 1)


# ---------------------------------------------------------------------------- the other damage


def jpeg(image: torch.Tensor, *, quality: int) -> torch.Tensor:
    """Round-trip each image of N x 3 x H x W through Pillow's JPEG encoder at ``quality``."""
    from PIL import Image

    out = []
    for single in image:
        codes = (single.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        buffer = io.BytesIO()
        Image.fromarray(codes).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            rgb = decoded.convert("RGB")
            array = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(rgb.height, rgb.width, 3)
        out.append(array.permute(2, 0, 1).float() / 255)
    return torch.stack(out)


_MODES = ("area", "bilinear", "bicubic")


def _random_mode(generator: torch.Generator) -> str:
    return _MODES[int(torch.randint(len(_MODES), (1,), generator=generator))]


def _resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    corners = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(image, size=size, mode=mode, **corners).clamp_(0.0, 1.0)


def _random_resize(
    image: torch.Tensor,
    generator: torch.Generator,
    *,
    scale_range: tuple[float, float],
    base: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Up (20 %), down (70 %) or keep (10 %) the size, as Real-ESRGAN; ``base`` is the size scaled."""
    roll = _uniform(generator, 0, 1)
    if roll < 0.2:
        factor = _uniform(generator, 1.0, scale_range[1])
    elif roll < 0.9:
        factor = _uniform(generator, scale_range[0], 1.0)
    else:
        factor = 1.0
    height, width = base or image.shape[-2:]
    size = (max(2, round(height * factor)), max(2, round(width * factor)))
    return _resize(image, size, _random_mode(generator))


def _random_noise(
    image: torch.Tensor, generator: torch.Generator, *, sigma: tuple[float, float], poisson: tuple[float, float]
) -> torch.Tensor:
    if _chance(generator, 0.5):
        return _gaussian_noise(image, _uniform(generator, *sigma) / 255, generator)
    # Poisson (shot) noise: brighter pixels get more; ``scale`` sets the photon count.
    scale = _uniform(generator, *poisson)
    photons = 10 ** (2 * (1 - scale / 3) + 1)  # scale 0 -> 1000 levels, 3 -> 10
    noisy = torch.poisson(image.clamp(0, 1) * photons, generator=generator) / photons
    return noisy.clamp_(0.0, 1.0)


def _gaussian_noise(image: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    grey = _chance(generator, 0.4)  # luminance-only noise 40 % of the time, as Real-ESRGAN
    shape = (image.shape[0], 1, *image.shape[-2:]) if grey else image.shape
    noise = torch.randn(shape, generator=generator) * sigma
    return (image + noise).clamp_(0.0, 1.0)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))


def _chance(generator: torch.Generator, probability: float) -> bool:
    return float(torch.rand(1, generator=generator)) < probability
