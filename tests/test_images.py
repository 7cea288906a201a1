"""`vidsr image`: photos in, bigger photos out, with their transparency, depth and orientation.

The model is a real SRVGGNetCompact that enlarges by nearest neighbour, so every output can be
checked pixel for pixel: it must be its input with each pixel repeated 4x4.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from vidsr.cli.app import app

runner = CliRunner()


def vidsr_image(*args: str | Path, model: Path, precision: str = "fp32"):
    """fp32 by default: the exact checks need it (bf16, automatic on some CPUs, rounds 8-bit values)."""
    options = ["--model", str(model), "--device", "cpu", "--precision", precision]
    return runner.invoke(app, ["image", *(str(a) for a in args), *options])


def ok(result) -> None:
    assert result.exit_code == 0, result.output


def nearest_x4(pixels: np.ndarray) -> np.ndarray:
    return pixels.repeat(4, axis=0).repeat(4, axis=1)


def photo(width: int = 24, height: int = 16, *, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def save(path: Path, pixels: np.ndarray, **options) -> Path:
    Image.fromarray(pixels).save(path, **options)
    return path


def png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit RGB(A) PNG written by hand (zlib + chunks), independent of Pillow and FFmpeg."""
    height, width, channels = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = 6 if channels == 4 else 2
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def read16(path: Path) -> tuple[str, np.ndarray]:
    """Pixel format and samples of a PNG, read by FFmpeg (Pillow reads 48-bit PNGs as 8-bit)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    wide = "rgba64le" if "a" in frame.format.name.replace("rgb", "") else "rgb48le"
    return frame.format.name, frame.reformat(format=wide).to_ndarray()


def test_one_photo_becomes_one_bigger_photo(tmp_path, nearest_model):
    source = save(tmp_path / "photo.png", photo())
    ok(vidsr_image(source, tmp_path / "big.png", model=nearest_model))
    result = Image.open(tmp_path / "big.png")
    assert (result.format, result.mode, result.size) == ("PNG", "RGB", (96, 64))
    assert np.array_equal(np.asarray(result), nearest_x4(photo()))


@pytest.mark.parametrize(("name", "image_format"), [("big.jpg", "JPEG"), ("big.webp", "WEBP"), ("big.PNG", "PNG")])
def test_the_output_format_follows_the_output_name(tmp_path, nearest_model, name, image_format):
    source = save(tmp_path / "photo.jpg", photo(), quality=95)
    ok(vidsr_image(source, tmp_path / name, model=nearest_model))
    with Image.open(tmp_path / name) as result:
        assert (result.format, result.size) == (image_format, (96, 64))


def test_transparency_is_kept_and_enlarged_by_the_model(tmp_path, nearest_model):
    pixels = photo(channels=4, seed=3)
    ok(vidsr_image(save(tmp_path / "logo.png", pixels), tmp_path / "big logo.png", model=nearest_model))
    result = Image.open(tmp_path / "big logo.png")
    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result), nearest_x4(pixels))


def test_transparency_can_be_enlarged_bicubically_instead(tmp_path, nearest_model):
    pixels = photo(channels=4, seed=3)
    pixels[..., 3] = 255
    pixels[4:12, 6:18, 3] = 0
    source = save(tmp_path / "logo.png", pixels)
    ok(vidsr_image(source, tmp_path / "big.png", "--transparency", "bicubic", model=nearest_model))
    result = np.asarray(Image.open(tmp_path / "big.png"))
    assert np.array_equal(result[..., :3], nearest_x4(pixels[..., :3]))
    alpha = result[..., 3].astype(int)
    assert alpha[0, 0] == 255 and alpha[32, 48] == 0  # far from the edge: unchanged
    assert 0 < alpha[16, 24] < 255 or 0 < alpha[15, 24] < 255  # at the edge: smooth, not blocky


def test_sixteen_bit_pngs_stay_sixteen_bit_to_the_last_bit(tmp_path, nearest_model):
    rng = np.random.default_rng(5)
    for channels, expected_format in ((3, "rgb48be"), (4, "rgba64be")):
        pixels = rng.integers(0, 65536, (10, 14, channels), dtype=np.uint16)
        source = png16(tmp_path / f"deep {channels}.png", pixels)
        output = tmp_path / f"deep {channels} x4.png"
        ok(vidsr_image(source, output, model=nearest_model, precision="auto"))  # auto must be faithful to 16 bits
        pixel_format, samples = read16(output)
        assert pixel_format == expected_format
        assert np.array_equal(samples, nearest_x4(pixels))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_viewers_show_it(tmp_path, nearest_model, orientation):
    pixels = photo(20, 12, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = save(tmp_path / "phone.jpg", pixels, exif=exif, quality=100, subsampling=0)
    ok(vidsr_image(source, tmp_path / "upright.png", model=nearest_model))
    with Image.open(source) as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "upright.png")), nearest_x4(shown))


def test_a_folder_is_mirrored_and_a_broken_image_does_not_stop_the_rest(tmp_path, nearest_model):
    source = tmp_path / "LR"
    (source / "holiday snaps").mkdir(parents=True)
    save(source / "first.png", photo(seed=1))
    save(source / "holiday snaps" / "ñandú en la playa.jpg", photo(seed=2), quality=95)
    save(source / "holiday snaps" / "sunset.webp", photo(seed=3), lossless=True)
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    (source / "notes.txt").write_text("not an image, not touched")
    result = vidsr_image(source, tmp_path / "results", model=nearest_model)
    assert result.exit_code == 1
    assert "1 of 4 images failed" in result.output and "broken.png" in result.output
    written = sorted(str(p.relative_to(tmp_path / "results")) for p in (tmp_path / "results").rglob("*") if p.is_file())
    assert written == ["first.png", "holiday snaps/sunset.png", "holiday snaps/ñandú en la playa.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "results" / "first.png")), nearest_x4(photo(seed=1)))
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "results" / "holiday snaps" / "sunset.png")), nearest_x4(photo(seed=3))
    )


def test_several_images_go_into_a_folder_in_the_format_asked(tmp_path, nearest_model):
    a = save(tmp_path / "a b.png", photo(seed=1))
    c = save(tmp_path / "c.jpg", photo(seed=2), quality=95)
    ok(vidsr_image(a, c, tmp_path / "out", "--format", "webp", model=nearest_model))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a b.webp", "c.webp"]


def test_existing_outputs_are_refused_without_force_and_replaced_with_it(tmp_path, nearest_model):
    source = save(tmp_path / "photo.png", photo())
    target = tmp_path / "big.png"
    target.write_bytes(b"precious")
    result = vidsr_image(source, target, model=nearest_model)
    assert result.exit_code == 1 and "already exist" in result.output and "--force" in result.output
    assert target.read_bytes() == b"precious"
    ok(vidsr_image(source, target, "--force", model=nearest_model))
    assert Image.open(target).size == (96, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "photo.png"]  # no temporary files left


def test_two_inputs_that_would_write_the_same_file_are_refused_before_any_work(tmp_path, nearest_model):
    a = save(tmp_path / "shot.png", photo(seed=1))
    b = save(tmp_path / "shot.jpg", photo(seed=2))
    result = vidsr_image(a, b, tmp_path / "out", model=nearest_model)
    assert result.exit_code == 1 and "would both be written to" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("make_args", "fragment"),
    [
        (lambda d: [d / "missing.png", d / "out.png"], "input not found"),
        (lambda d: [d / "photo.png", d / "out.tiff"], "name it .png, .jpg or .webp"),
        (lambda d: [d / "photo.png", d / "photo.png"], "is the input itself"),
        (lambda d: [d / "photo.png"], "give at least one input and an output"),
        (lambda d: [d / "photo.png", d / "out.png", "--model", "no-such-model"], "Unknown model"),
    ],
    ids=["missing", "unknown-format", "same-file", "no-output", "unknown-model"],
)
def test_bad_requests_get_one_clear_line(tmp_path, make_args, fragment):
    save(tmp_path / "photo.png", photo())
    result = runner.invoke(app, ["image", *(str(a) for a in make_args(tmp_path))])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output
