"""Upscale still images: one file to one file, or files and folders into a folder.

Pillow reads and writes 8-bit images; 16-bit PNGs go through FFmpeg's PNG codec (PyAV),
because Pillow reads a 48-bit RGB PNG as 8-bit. Every file is written under a temporary
name beside its target and renamed into place, and a file that fails does not stop the
others: the failures are summed up in one error at the end.
"""

# Strict typing, less the unknown-type checks: Pillow's, PyAV's and numpy's stubs leave parts of these calls untyped.
# pyright: reportUnknownArgumentType=false, reportUnknownMemberType=false, reportUnknownVariableType=false

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from vidsr.errors import InputError, OutputError, VidsrError
from vidsr.upscale import UpscaleOptions, Upscaler, create_upscaler

# What vidsr reads and writes, by file name ending; the output format follows the output name.
FORMAT_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
OUTPUT_FORMATS = ("png", "jpg", "webp")
TransparencyUpscaler = Literal["model", "bicubic"]

_EXIF_ORIENTATION = 0x0112
_JPEG_QUALITY = 95
_WEBP_QUALITY = 95


class ImagesFailed(VidsrError):
    """Some images could not be upscaled; the others were written."""


@dataclass(frozen=True)
class Picture:
    """An image in memory, oriented as it is meant to be seen.

    ``rgb`` is float32 H x W x 3 in 0..1; ``alpha`` float32 H x W in 0..1 or None;
    ``bits`` is 8 or 16, the precision the source held (and a PNG output keeps).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bits: int
    icc_profile: bytes | None = None

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


@dataclass(frozen=True)
class ImageJob:
    """What ``vidsr image`` was asked to do.

    ``output`` is a file when there is one input file and the output name ends in an
    image suffix; otherwise it is a folder, and ``format`` (default png) names what goes in it.
    ``transparency`` says how an alpha channel is enlarged: through the model as a grey
    image (default: its edges then match the sharpened colour edges, as Real-ESRGAN's own
    inference does) or bicubic (half the time, softer edges).
    """

    inputs: tuple[Path, ...]
    output: Path
    upscale: UpscaleOptions = UpscaleOptions()
    force: bool = False
    format: str | None = None
    transparency: TransparencyUpscaler = "model"


@dataclass(frozen=True)
class ImageResult:
    """One image done (``error`` None) or failed (``error`` says why; nothing was written)."""

    source: Path
    output: Path
    width: int = 0
    height: int = 0
    error: str | None = None


# ---------------------------------------------------------------------------- the job


def upscale_images(
    job: ImageJob,
    *,
    on_image: Callable[[ImageResult], None] | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> list[ImageResult]:
    """Upscale every image of ``job``; returns one result per image. ``warn`` hears what the user
    should know (a picture too large for memory upscaled in tiles).

    Raises InputError/OutputError before any work for a missing input, an unusable output
    name, outputs that already exist (without ``force``) or two inputs that would write the
    same file; ImagesFailed after the others are written if any image failed.
    """
    plan = plan_outputs(job.inputs, job.output, job.format)
    if not job.force:
        refuse_existing([target for _, target in plan])
    upscalers = {8: _create_upscaler(job, bits=8, warn=warn)}  # now: a bad model name stops before any work
    results = []
    for source, target in plan:
        try:
            picture = read_image(source)
            if picture.bits not in upscalers:
                upscalers[picture.bits] = _create_upscaler(job, bits=picture.bits, warn=warn)
            picture = upscale_picture(picture, upscalers[picture.bits], transparency=job.transparency)
            save_image(target, picture)
            result = ImageResult(source, target, picture.width, picture.height)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
            result = ImageResult(source, target, error=_describe(exc))
        results.append(result)
        if on_image is not None:
            on_image(result)
    failed = [r for r in results if r.error]
    if failed:
        listed = "; ".join(f"{r.source}: {r.error}" for r in failed[:3]) + ("; ..." if len(failed) > 3 else "")
        raise ImagesFailed(f"{len(failed)} of {len(results)} images failed ({listed})")
    return results


def _create_upscaler(job: ImageJob, *, bits: int, warn: Callable[[str], None]) -> Upscaler:
    """The automatic precision depends on the source's depth (16-bit images are not computed in bf16)."""
    return create_upscaler(job.upscale, bit_depth=bits, warn=warn)


def _describe(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image vidsr can read (PNG, JPEG or WebP)"
    if isinstance(exc, (OSError, SyntaxError, av.error.FFmpegError)):
        return f"broken or truncated image ({exc})"
    return str(exc) or type(exc).__name__


def plan_outputs(inputs: tuple[Path, ...], output: Path, format: str | None = None) -> list[tuple[Path, Path]]:
    """(source, target) pairs: a folder input's images keep their sub-folders under ``output``."""
    if not inputs:
        raise InputError("no input images given")
    for source in inputs:
        if not source.exists():
            raise InputError(f"input not found: {source}")
    if format is not None and format.lower().lstrip(".") not in ("png", "jpg", "jpeg", "webp"):
        raise OutputError(f"--format {format}: choose png, jpg or webp")
    single = len(inputs) == 1 and inputs[0].is_file() and not output.is_dir()
    if single and output.suffix.lower() in FORMAT_BY_SUFFIX:
        plan = [(inputs[0], output)]
    elif single and output.suffix:
        raise OutputError(f"cannot write {output.name}: name it .png, .jpg or .webp (or give a folder)")
    else:
        if output.exists() and not output.is_dir():
            raise OutputError(f"{output} is a file: several images or a folder need an output folder")
        suffix = "." + (format or "png").lower().lstrip(".")
        plan = list(_folder_plan(inputs, output, suffix))
    _refuse_collisions(plan)
    return plan


def _folder_plan(inputs: tuple[Path, ...], output: Path, suffix: str) -> Iterator[tuple[Path, Path]]:
    for source in inputs:
        if source.is_file():
            yield source, output / (source.stem + suffix)
            continue
        images = [path for path in _images_in(source) if not _is_inside(path, output)]
        if not images:
            raise InputError(f"no PNG, JPEG or WebP images in the folder {source}")
        for path in images:
            yield path, (output / path.relative_to(source)).with_suffix(suffix)


def _images_in(folder: Path) -> list[Path]:
    """Image files under ``folder`` by suffix, hidden files and folders left out, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(root) / name
            for name in sorted(files)
            if not name.startswith(".") and Path(name).suffix.lower() in FORMAT_BY_SUFFIX
        )
    return found


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _refuse_collisions(plan: list[tuple[Path, Path]]) -> None:
    seen: dict[Path, Path] = {}
    for source, target in plan:
        key = target.resolve()
        if key == source.resolve():
            raise OutputError(f"{target} is the input itself; choose another output name")
        if key in seen:
            raise OutputError(f"{seen[key]} and {source} would both be written to {target}")
        seen[key] = source


def refuse_existing(targets: list[Path]) -> None:
    """Raise OutputError naming the outputs that exist already (use --force to replace them)."""
    existing = [target for target in targets if target.exists()]
    if existing:
        shown = ", ".join(str(path) for path in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise OutputError(f"{len(existing)} output(s) already exist ({shown}); use --force to overwrite")


# ---------------------------------------------------------------------------- reading


def read_image(path: Path) -> Picture:
    """Read a PNG, JPEG or WebP file, EXIF orientation applied.

    16-bit PNGs keep 16 bits; grey becomes RGB; palette and grey+alpha keep their alpha.
    Raises what Pillow or FFmpeg raise for a broken file.
    """
    with Image.open(path) as image:
        image.load()
        orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
        icc_profile = image.info.get("icc_profile")
        if image.format == "PNG" and _png_bit_depth(path) == 16:
            rgb, alpha = _read_png16(path.read_bytes())
            bits = 16
        else:
            rgb, alpha = _pillow_pixels(image)
            bits = 8
    rgb = orient(rgb, orientation)
    alpha = orient(alpha, orientation) if alpha is not None else None
    alpha = None if alpha is None else np.ascontiguousarray(alpha)
    return Picture(rgb=np.ascontiguousarray(rgb), alpha=alpha, bits=bits, icc_profile=icc_profile)


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 else 8  # IHDR's bit depth byte


def _read_png16(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    codec = av.CodecContext.create("png", "r")
    frames = codec.decode(av.Packet(data))
    if not frames:
        raise OSError("the PNG has no image data")
    frame = frames[0]
    has_alpha = frame.format.name.startswith(("ya", "rgba"))
    pixels = frame.reformat(format="rgba64le" if has_alpha else "rgb48le").to_ndarray().astype(np.float32) / 65535.0
    return pixels[..., :3], (pixels[..., 3] if has_alpha else None)


def _pillow_pixels(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    converted = image.convert("RGBA" if has_alpha else "RGB")
    pixels = np.asarray(converted, dtype=np.float32) / 255.0
    return pixels[..., :3], (pixels[..., 3] if has_alpha else None)


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (H x W [x C]) the way EXIF ``orientation`` (1-8) says they are shown."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, k=-1)  # 90 degrees clockwise
    if orientation == 7:
        return pixels.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(pixels, k=1)
    return pixels


# ---------------------------------------------------------------------------- upscaling


def upscale_picture(picture: Picture, upscaler: Upscaler, *, transparency: TransparencyUpscaler = "model") -> Picture:
    """Upscale the colour with the model, and the alpha channel as ``transparency`` says."""
    with torch.inference_mode():
        rgb = torch.from_numpy(picture.rgb).permute(2, 0, 1)[None].to(upscaler.device)
        upscaled = upscaler.upscale_rgb(rgb)
        height, width = upscaled.shape[-2:]
        enlarged_alpha = None
        if picture.alpha is not None:
            grey = torch.from_numpy(picture.alpha)[None, None].to(upscaler.device)
            if transparency == "model":
                enlarged_alpha = upscaler.upscale_rgb(grey.expand(1, 3, -1, -1)).mean(dim=1)
            else:
                enlarged_alpha = F.interpolate(grey, size=(height, width), mode="bicubic", align_corners=False)[:, 0]
            enlarged_alpha = enlarged_alpha.clamp(0.0, 1.0)[0].cpu().numpy()
        return Picture(
            rgb=upscaled[0].permute(1, 2, 0).cpu().numpy(),
            alpha=enlarged_alpha,
            bits=picture.bits,
            icc_profile=picture.icc_profile,
        )


# ---------------------------------------------------------------------------- writing


def save_image(path: Path, picture: Picture) -> None:
    """Write ``picture`` atomically in the format its name says; PNG keeps 16 bits.

    JPEG cannot hold transparency: a picture with alpha is refused rather than flattened.
    """
    image_format = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if image_format is None:
        raise OutputError(f"cannot write {path.name}: name it .png, .jpg or .webp")
    if image_format == "JPEG" and picture.alpha is not None:
        raise OutputError(f"{path.name}: JPEG cannot hold the transparency; write .png or .webp")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if image_format == "PNG" and picture.bits > 8:
            temporary.write_bytes(_encode_png16(picture))
        else:
            _pillow_image(picture).save(temporary, format=image_format, **_save_options(image_format, picture))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _quantised(picture: Picture, max_code: int, dtype: type[np.unsignedinteger[Any]]) -> np.ndarray:
    channels = [picture.rgb] if picture.alpha is None else [picture.rgb, picture.alpha[..., None]]
    pixels = np.concatenate(channels, axis=-1)
    return np.ascontiguousarray(np.clip(np.rint(pixels * max_code), 0, max_code).astype(dtype))


def _pillow_image(picture: Picture) -> Image.Image:
    return Image.fromarray(_quantised(picture, 255, np.uint8))


def _save_options(image_format: str, picture: Picture) -> dict[str, Any]:
    options: dict[str, Any] = {"icc_profile": picture.icc_profile} if picture.icc_profile else {}
    if image_format == "JPEG":
        options.update(quality=_JPEG_QUALITY, subsampling=0)
    elif image_format == "WEBP":
        options.update(quality=_WEBP_QUALITY)
    return options


def _encode_png16(picture: Picture) -> bytes:
    """A 48-bit RGB or 64-bit RGBA PNG file, by FFmpeg's PNG encoder."""
    pixels = _quantised(picture, 65535, np.uint16)
    has_alpha = picture.alpha is not None
    frame = av.VideoFrame.from_ndarray(pixels, format="rgba64le" if has_alpha else "rgb48le")
    big_endian = "rgba64be" if has_alpha else "rgb48be"
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = picture.width, picture.height, big_endian
    codec.time_base = Fraction(1, 1)
    packets = codec.encode(frame.reformat(format=big_endian)) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)
