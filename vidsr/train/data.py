"""Training data: HR pictures from image folders and videos, LR made from them, augmentation.

The HR side is a list of :class:`Picture` (an image file, or a frame sampled from a video),
split once into training and held-out pictures. Batches are cut from random places of random
training pictures, flipped and rotated, and degraded into their LR partners here, on the CPU,
with every random choice drawn from one ``torch.Generator`` so that a resumed run draws exactly
what an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.nn import functional as F

from vidsr.errors import InputError, SettingsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".mpg", ".mpeg", ".wmv", ".flv")
Degradation = Literal["bicubic", "classic", "second-order"]
DEGRADATIONS: tuple[Degradation, ...] = ("bicubic", "classic", "second-order")

# Decoded images kept in memory between patches; beyond this the least recently used is dropped
# and read again from disk when next drawn (video frames are always in memory: they have no file).
IMAGE_CACHE_BYTES = 1 << 30
_DECODE_BATCH = 8


@dataclass(frozen=True)
class Picture:
    """One HR picture: RGB uint8, 3 x H x W once loaded.

    ``label`` says where it came from (``path`` or ``path@frame N``) for messages and reports.
    """

    label: str
    width: int
    height: int
    load: Callable[[], torch.Tensor]


@dataclass(frozen=True)
class TrainingPictures:
    """The pictures to train on and the held-out ones to validate on.

    ``held_out`` is False when there were too few pictures to hold any out: validation then
    uses (other patches of) the training pictures, and says so.
    ``fingerprint`` changes when any source file or the sampling changes; resume compares it.
    """

    train: tuple[Picture, ...]
    validation: tuple[Picture, ...]
    held_out: bool
    fingerprint: str
    sources: tuple[str, ...]


def collect_pictures(
    paths: Sequence[Path],
    *,
    min_size: int,
    frames_per_video: int = 100,
    val_fraction: float = 0.1,
) -> TrainingPictures:
    """Find the HR pictures in ``paths`` (image files, videos, or folders of either).

    Folders are searched recursively for files with image or video suffixes. From each video,
    ``frames_per_video`` frames evenly spread over its length are kept. Of each video the last
    ``val_fraction`` of its frames (a contiguous stretch, so neighbouring frames do not leak into
    training), and of the images every 1/``val_fraction``-th, are held out for validation.

    Raises InputError for a missing path, a folder with no pictures, an unreadable image or
    video, or a picture smaller than ``min_size`` (the HR patch) on either side.
    """
    if not paths:
        raise InputError("no training data given: pass --data with image folders, images or videos")
    images: list[Path] = []
    videos: list[Path] = []
    for path in map(Path, paths):
        found_images, found_videos = _files_in(path)
        images += found_images
        videos += found_videos
    groups: list[tuple[str, list[Picture]]] = []
    if images:
        groups.append(("images", [_image_picture(path, min_size) for path in images]))
    for video in videos:
        groups.append(("video", _video_pictures(video, min_size, frames_per_video)))
    train, validation = _split(groups, val_fraction)
    held_out = bool(validation)
    if not held_out:
        validation = list(train)
    sources = tuple(str(path) for path in (*images, *videos))
    return TrainingPictures(
        train=tuple(train),
        validation=tuple(validation),
        held_out=held_out,
        fingerprint=_fingerprint([*images, *videos], frames_per_video, val_fraction),
        sources=sources,
    )


def _files_in(path: Path) -> tuple[list[Path], list[Path]]:
    if not path.exists():
        raise InputError(f"training data not found: {path}")
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return [path], []
        return [], [path]  # anything else is tried as a video; probe says if it is not one
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    if not images and not videos:
        raise InputError(
            f"no images or videos in {path}: training reads {', '.join(IMAGE_SUFFIXES)} images "
            f"and {', '.join(VIDEO_SUFFIXES[:5])}... videos"
        )
    return images, videos


def _too_small(label: str, width: int, height: int, min_size: int) -> InputError:
    return InputError(
        f"{label} is {width}x{height}, smaller than the {min_size}x{min_size} HR patch; "
        f"remove it or pass a smaller --patch"
    )


# ---------------------------------------------------------------------------- images


class _ImageCache:
    """Decoded images by path, least recently used dropped beyond ``capacity`` bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[Path, torch.Tensor] = OrderedDict()
        self.size = 0

    def get(self, path: Path) -> torch.Tensor:
        if path in self.entries:
            self.entries.move_to_end(path)
            return self.entries[path]
        image = read_image(path)
        self.entries[path] = image
        self.size += image.numel()
        while self.size > self.capacity and len(self.entries) > 1:
            _, dropped = self.entries.popitem(last=False)
            self.size -= dropped.numel()
        return image


_image_cache = _ImageCache(IMAGE_CACHE_BYTES)


def read_image(path: Path) -> torch.Tensor:
    """An image file as RGB uint8, 3 x H x W. Raises InputError if Pillow cannot decode it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise InputError(f"cannot read image {path}: {error}; remove it from the training data") from None
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(rgb.height, rgb.width, 3).permute(2, 0, 1)


def _image_picture(path: Path, min_size: int) -> Picture:
    # Decoded in full once here (and cached), so a damaged file is refused before training, not hours into it.
    image = _image_cache.get(path)
    height, width = image.shape[1:]
    if min(width, height) < min_size:
        raise _too_small(str(path), width, height, min_size)
    return Picture(label=str(path), width=width, height=height, load=lambda: _image_cache.get(path))


# ---------------------------------------------------------------------------- videos


def _video_pictures(path: Path, min_size: int, frames_per_video: int) -> list[Picture]:
    from vidsr.probe import probe

    info = probe(path)
    if min(info.width, info.height) < min_size:
        raise _too_small(str(path), info.width, info.height, min_size)
    frames = read_video_frames(path, count=frames_per_video)
    return [
        Picture(label=f"{path}@frame {index}", width=info.width, height=info.height, load=lambda f=frame: f)
        for index, frame in frames
    ]


def read_video_frames(path: Path, *, count: int) -> list[tuple[int, torch.Tensor]]:
    """Up to ``count`` frames evenly spread over the video, as (frame index, RGB uint8 3 x H x W).

    Frames are converted with the stream's own matrix and range, as the upscaler reads them.
    The whole stream is decoded once (sequentially: exact, and no seeking to trust).
    Raises InputError if the file is not a readable video.
    """
    from vidsr.colour import planes_to_rgb
    from vidsr.decode import decode_batches
    from vidsr.probe import probe

    info = probe(path)
    total = max(info.frames, 1)
    wanted = _evenly_spaced(total, count)
    kept: list[tuple[int, torch.Tensor]] = []
    for batch in decode_batches(info, batch_size=_DECODE_BATCH):
        picks = [i for i in range(len(batch)) if batch.first_index + i in wanted]
        if not picks:
            continue
        planes = tuple(torch.from_numpy(plane[picks].astype("int32")) for plane in batch.planes)
        rgb = planes_to_rgb(planes, batch.layout, info.colour)
        codes = (rgb * 255).round_().to(torch.uint8)
        kept += [(batch.first_index + i, codes[n]) for n, i in enumerate(picks)]
    if not kept:
        raise InputError(f"{path} has no decodable video frames to train on")
    return kept


def _evenly_spaced(total: int, count: int) -> set[int]:
    if count >= total:
        return set(range(total))
    return {math.floor(i * total / count) for i in range(count)}


# ---------------------------------------------------------------------------- split and fingerprint


def _split(groups: list[tuple[str, list[Picture]]], val_fraction: float) -> tuple[list[Picture], list[Picture]]:
    train: list[Picture] = []
    validation: list[Picture] = []
    for kind, group in groups:
        held = min(len(group) - 1, max(1, math.floor(len(group) * val_fraction))) if val_fraction > 0 else 0
        if held <= 0:
            train += group
            continue
        if kind == "images":
            # Evenly spaced images, so each part of a sorted folder (each episode) is represented.
            chosen = {math.floor((k + 0.5) * len(group) / held) for k in range(held)}
        else:
            chosen = set(range(len(group) - held, len(group)))  # the end of the video, contiguous
        validation += [picture for k, picture in enumerate(group) if k in chosen]
        train += [picture for k, picture in enumerate(group) if k not in chosen]
    return train, validation


def _fingerprint(files: Sequence[Path], frames_per_video: int, val_fraction: float) -> str:
    digest = hashlib.sha256(f"{frames_per_video}\0{val_fraction}\0".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- patches


def bicubic_downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Float images (N x 3 x H x W, 0..1) shrunk by ``scale`` with antialiased bicubic, clamped.

    H and W must be multiples of ``scale``. Antialiasing makes this MATLAB ``imresize``-like,
    the downscaling the ESRGAN paper trains and tests with.
    """
    if scale == 1:
        return images.clone()
    height, width = images.shape[-2:]
    out = F.interpolate(images, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0)


def augment(patch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random one of the 8 flips and 90-degree rotations of a C x H x W (square) patch."""
    choice = int(torch.randint(8, (1,), generator=generator))
    if choice & 1:
        patch = patch.flip(-1)
    if choice & 2:
        patch = patch.flip(-2)
    if choice & 4:
        patch = patch.transpose(-1, -2)
    return patch


class PatchSampler:
    """Random (LR, HR) training pairs from pictures, degraded as ``degradation`` says.

    Args:
        pictures: where HR patches are cut from.
        patch: HR patch side in pixels (a multiple of ``scale``).
        scale: HR side / LR side.
        degradation: ``bicubic`` (the paper), ``classic`` (blur, noise and JPEG, each at random)
            or ``second-order`` (Real-ESRGAN's: those twice, with random resizes between).
        augment: random flips and rotations of the HR patch.
    """

    def __init__(
        self,
        pictures: Sequence[Picture],
        *,
        patch: int,
        scale: int,
        degradation: Degradation = "bicubic",
        augment: bool = True,
    ) -> None:
        if degradation not in DEGRADATIONS:
            raise SettingsError(f"unknown degradation {degradation!r}; use one of {', '.join(DEGRADATIONS)}")
        if patch % scale:
            raise SettingsError(f"--patch {patch} is not a multiple of --scale {scale}")
        self.pictures = list(pictures)
        self.patch = patch
        self.scale = scale
        self.degradation = degradation
        self.augment = augment

    def hr_patch(self, generator: torch.Generator) -> torch.Tensor:
        """One random HR patch, float 0..1, 3 x patch x patch."""
        picture = self.pictures[int(torch.randint(len(self.pictures), (1,), generator=generator))]
        top = int(torch.randint(picture.height - self.patch + 1, (1,), generator=generator))
        left = int(torch.randint(picture.width - self.patch + 1, (1,), generator=generator))
        crop = picture.load()[:, top : top + self.patch, left : left + self.patch]
        if self.augment:
            crop = augment(crop, generator)
        return crop.float().div_(255.0)

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` pairs: LR (N x 3 x p/s x p/s) and HR (N x 3 x p x p), float 0..1."""
        hr = torch.stack([self.hr_patch(generator) for _ in range(size)])
        lr = torch.cat([degrade(patch[None], self.scale, self.degradation, generator) for patch in hr])
        return lr, hr


# ---------------------------------------------------------------------------- degradations


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
    """Real-ESRGAN's high-order degradation (Wang et al. 2021), without the sinc filter:
    blur, random resize, noise, JPEG; then once more, milder, ending at the LR size."""
    image = _random_blur(hr, generator, sigma=(0.2, 3.0))
    image = _random_resize(image, generator, scale_range=(0.15, 1.5))
    image = _random_noise(image, generator, sigma=(1.0, 30.0), poisson=(0.05, 3.0))
    image = jpeg(image, quality=int(_uniform(generator, 30, 95)))
    if _chance(generator, 0.8):
        image = _random_blur(image, generator, sigma=(0.2, 1.5))
    image = _random_resize(image, generator, scale_range=(0.3, 1.2), base=size)
    image = _random_noise(image, generator, sigma=(1.0, 25.0), poisson=(0.05, 2.5))
    image = _resize(image, size, _random_mode(generator))
    return jpeg(image.clamp(0.0, 1.0), quality=int(_uniform(generator, 30, 95)))


def gaussian_blur(image: torch.Tensor, *, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0) -> torch.Tensor:
    """Blur N x C x H x W with an (optionally anisotropic, rotated) Gaussian; borders reflected."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    radius = min(max(1, math.ceil(3 * max(sigma_x, sigma_y))), 10)  # Real-ESRGAN's kernels reach 21x21
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * x + sin * y, -sin * x + cos * y
    kernel = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    kernel = (kernel / kernel.sum()).to(image.dtype)
    channels = image.shape[1]
    # Reflection needs more pixels than the radius; tiny images (deep in second order) replicate.
    padded = F.pad(image, (radius,) * 4, mode="reflect" if min(image.shape[-2:]) > radius else "replicate")
    return F.conv2d(padded, kernel.expand(channels, 1, -1, -1), groups=channels)


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


def _random_blur(image: torch.Tensor, generator: torch.Generator, *, sigma: tuple[float, float]) -> torch.Tensor:
    sigma_x = _uniform(generator, *sigma)
    if _chance(generator, 0.5):  # anisotropic half the time, as Real-ESRGAN
        return gaussian_blur(
            image, sigma_x=sigma_x, sigma_y=_uniform(generator, *sigma), angle=_uniform(generator, 0, math.pi)
        )
    return gaussian_blur(image, sigma_x=sigma_x)


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
