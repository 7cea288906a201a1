"""How long `vidsr compare` takes, and where the time goes: timing each model (as `vidsr info`
times it) against upscaling the moments' frames, on a drawn 640x272 clip (hard edges, thin
lines, text: what the models differ on).

Prints, from one run: the wall time and CPU time of the whole page, each phase's wall time and
share, the page's size on disk, and the CPU.

    python bench/compare_page.py [--model realesr-animevideov3 --model realesrgan-x4plus-anime] [--clip 0]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidsr.inspect.compare_page import CompareJob, write_compare_page

WIDTH, HEIGHT, FPS, SECONDS = 640, 272, 24, 10


def drawn_scene() -> Image.Image:
    """A cartoon street at three times the clip's size: sky, hills, houses with windows, text."""
    width, height = WIDTH * 3, HEIGHT * 3
    ramp = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array([70, 130, 220]) * (1 - ramp) + np.array([250, 200, 160]) * ramp).astype(np.uint8)
    scene = Image.fromarray(np.ascontiguousarray(np.broadcast_to(sky, (height, width, 3))))
    draw = ImageDraw.Draw(scene)
    draw.ellipse((1500, 60, 1700, 260), fill=(255, 220, 90), outline=(200, 120, 40), width=8)
    for k in range(6):
        left = k * 380 - 100
        peak = (left + 250, 330 + 40 * (k % 3))
        draw.polygon([(left, 700), peak, (left + 520, 700)], fill=(60 + 20 * k, 140, 70), outline=(20, 50, 20), width=6)
    draw.rectangle((0, 640, width, height), fill=(90, 160, 80))
    for k in range(9):
        x = 80 + k * 205
        draw.rectangle((x, 470, x + 150, 640), fill=(200 - 10 * k, 90 + 12 * k, 80), outline=(30, 20, 20), width=6)
        draw.polygon([(x - 15, 470), (x + 75, 400), (x + 165, 470)], fill=(120, 40, 40), outline=(30, 20, 20), width=6)
        for window in (x + 20, x + 90):
            draw.rectangle((window, 500, window + 40, 540), fill=(250, 240, 170), outline=(30, 20, 20), width=4)
    for i in range(0, 400, 12):
        draw.line((1400 + i, 700, 1400 + i, 800), fill=(250, 250, 250) if (i // 12) % 2 else (40, 40, 40), width=5)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 40)
    except OSError:
        font = ImageFont.load_default()
    draw.text((120, 180), "fine text, thin lines and hard edges", fill=(20, 20, 40), font=font)
    return scene


def make_clip(path: Path) -> Path:
    """A slow pan over the scene, each frame Lanczos-downscaled to 640x272."""
    scene = drawn_scene()
    frames = SECONDS * FPS
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            ease = (1 - np.cos(np.pi * index / (frames - 1))) / 2
            left = int(ease * (scene.width - WIDTH * 2))
            crop = scene.crop((left, HEIGHT // 2, left + WIDTH * 2, HEIGHT // 2 + HEIGHT * 2))
            picture = np.asarray(crop.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="repeatable; default the two anime models")
    parser.add_argument("--clip", type=float, default=0.0, help="seconds of clip around each moment (0: none)")
    args = parser.parse_args()
    models = tuple(args.model or ("realesr-animevideov3", "realesrgan-x4plus-anime"))
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder) / "street.mp4")
        marks: list[tuple[float, str]] = []
        job = CompareJob(input=clip, page=Path(folder) / "page.html", models=models, clip_seconds=args.clip or None)
        started, started_cpu = time.perf_counter(), time.process_time()
        written = write_compare_page(job, inform=lambda message: marks.append((time.perf_counter(), message)))
        wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        size = sum(path.stat().st_size for path in written.assets.iterdir()) + written.page.stat().st_size
    marks.append((started + wall, "end"))
    shape = f"{len(models)} models x {len(written.moments)} moments, {WIDTH}x{HEIGHT} clip"
    print(f"vidsr compare, {shape}, on {cpu_name()}")
    print(f"  whole page: {wall:.1f} s wall, {cpu:.1f} s CPU (all threads), {size / 1e6:.1f} MB on disk")
    print(f"  before the first phase (probe, decoding the moments): {marks[0][0] - started:.1f} s")
    for (at, message), (until, _) in zip(marks, marks[1:]):
        print(f"  {message:<48} {until - at:6.1f} s  {100 * (until - at) / wall:4.0f} %")
    for card in written.models:
        timed = f"{card.seconds_per_frame:.3f} s a frame timed, {card.whole_video_seconds:.0f} s estimated"
        print(f"  {card.name}: {timed}")


if __name__ == "__main__":
    main()
