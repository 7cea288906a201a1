"""Training data: HR pictures from image folders and videos, LR made from them, augmentation.

The HR side is a list of :class:`Picture` (an image file, or a frame sampled from a video),
split once into training and held-out pictures. Batches are cut from random places of random
training pictures, flipped and rotated, and degraded into their LR partners here, on the CPU,
with every random choice drawn from one ``torch.Generator`` so that a resumed run draws exactly
what an uninterrupted one would have.
"""

# Strict typing, less the unknown-type checks: Pillow's and torch's stubs leave parts of these calls untyped.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false, reportUnknownVariableType=false

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidsr.errors import InputError, SettingsError
from vidsr.media import decode_batches, probe
from vidsr.train.config import DEGRADATIONS, Degradation
from vidsr.train.degradations import degrade
from vidsr.upscale.colour import planes_to_rgb, planes_to_tensors

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".mpg", ".mpeg", ".wmv", ".flv")

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
    return (
        torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(rgb.height, rgb.width, 3).permute(2, 0, 1)
    )


def _image_picture(path: Path, min_size: int) -> Picture:
    # Decoded in full once here (and cached), so a damaged file is refused before training, not hours into it.
    image = _image_cache.get(path)
    height, width = image.shape[1:]
    if min(width, height) < min_size:
        raise _too_small(str(path), width, height, min_size)
    return Picture(label=str(path), width=width, height=height, load=lambda: _image_cache.get(path))


# ---------------------------------------------------------------------------- videos


def _video_pictures(path: Path, min_size: int, frames_per_video: int) -> list[Picture]:
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
    info = probe(path)
    total = max(info.frames, 1)
    wanted = _evenly_spaced(total, count)
    kept: list[tuple[int, torch.Tensor]] = []
    for batch in decode_batches(info, batch_size=_DECODE_BATCH):
        picks = [i for i in range(len(batch)) if batch.first_index + i in wanted]
        if not picks:
            continue
        first, second, third = (plane[picks] for plane in batch.planes)
        rgb = planes_to_rgb(planes_to_tensors((first, second, third), batch.layout), batch.layout, info.colour)
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
            or ``second-order`` (Real-ESRGAN's: those twice, with random resizes between, then
            a sinc filter); see ``vidsr.train.degradations``.
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
        self.degradation: Degradation = degradation
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
