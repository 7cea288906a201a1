"""Reuse of unchanged tiles across time, measured: the same clips rendered with and without it.

Makes its own clips from a pristine 1280x720 picture (a cartoon: flat fills, dark outlines, a
textured backdrop), area-downscaled to 320x180 and encoded with libx264 crf 20:
  twos / threes   a character redrawn every 2nd / 3rd frame in front of a still backdrop
  grain           a still picture under fresh film grain (σ 6 levels) in every frame: nothing static
  fade            the picture fading to black, 0.4 % a frame
  moving          a small white square moving 1 pixel a frame over the still picture
  noisy still     live action: a still shot with sensor noise (σ 3 levels)
  noisy still crf 14 the same, encoded finely enough that the noise survives
and prints, side by side from one run, with and without reuse: end-to-end fps (and its ratio by
wall time and by this process's CPU time, fairer on a shared machine), the share of tiles reused,
the network's work (input pixels it saw, context included, over those of every frame whole),
PSNR to the pristine frames, PSNR to the whole-frame render (mean and worst frame), static-region
shimmer (the change of fine detail between frames where the truth stood still) over that of a
bicubic enlargement of the same source, and tOF
(TecoGAN's temporal error: the mean difference between the motion of the output and of the
ground truth; the motion here is block matching, 8-pixel blocks searched ±6 pixels on quarter-size
luma, not Farneback, to keep OpenCV out).

The speed columns time renders with the default encode (libx264 crf 18), the fastest of --repeat
rounds run interleaved (the machine may be shared). Every picture column
compares renders of the same clip encoded losslessly (x264 crf 0, in the default render's own
yuv420p: the decoded pictures are the planes the pipeline made, bit for bit): two lossy encodes of
slightly different pictures differ by the encoder's own noise (about 43 dB at crf 18 here), which
would hide what reuse changes.

    python bench/temporal.py [--model realesr-animevideov3] [--frames 48] [--noise-blend 0.5] [--tile 64]
                             [--adopt-margin 1] [--tiles-whole] [--repeat 3] [--clip twos ...]
                             [--thresholds | --profile]

``--thresholds`` prints instead the measurements behind vidsr.upscale.reuse.ChangeTest.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from vidsr.media import EncodeSettings
from vidsr.render import UpscaleJob, segments, upscale_video
from vidsr.upscale import UpscaleOptions
from vidsr.upscale.reuse import BLOCK, REUSE_TILE, ChangeTest, FrameReuse, _block_sums, _grid_spans  # pyright: ignore[reportPrivateUsage]

SCALE = 4
HIGH = (720, 1280)  # the pristine frames (height, width)
LOW = (HIGH[0] // SCALE, HIGH[1] // SCALE)
FPS = 24
LOSSLESS = EncodeSettings(crf=0, preset="ultrafast")  # yuv420p like the default: its planes exactly

Picture = np.ndarray  # H x W x 3 float32, 0..1


# ---- the pristine pictures ----------------------------------------------------------------------


def backdrop(height: int, width: int) -> Picture:
    """Soft gradients, a brick texture and a few hard-edged shapes: detail at every scale."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.stack((0.45 + 0.2 * y / height, 0.6 + 0.1 * x / width, 0.85 - 0.2 * y / height), axis=-1)
    bricks = ((y // 24) % 2 * 40 + x) % 80 < 76
    mortar = (y % 24) < 3
    wall = np.where((bricks & ~mortar)[..., None], [0.7, 0.35, 0.25], [0.85, 0.8, 0.75]).astype(np.float32)
    image = np.where((y > height * 0.55)[..., None], wall, sky)
    for cx, cy, r, colour in ((200, 150, 60, (1.0, 0.9, 0.3)), (1000, 200, 90, (0.9, 0.95, 1.0))):
        disc = (x - cx) ** 2 + (y - cy) ** 2
        image = np.where((disc < r * r)[..., None], colour, image)
        image = np.where(((disc >= r * r) & (disc < (r + 4) ** 2))[..., None], (0.1, 0.1, 0.15), image)
    return image.astype(np.float32)


def character(image: Picture, drawing: int) -> Picture:
    """A round character with outlines, a new pose in each drawing (it walks and bobs)."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = 300 + 36 * drawing, 380 + 20 * np.sin(drawing)
    out = image.copy()
    for dx, dy, rx, ry, colour in ((0, 0, 110, 150, (0.95, 0.5, 0.6)), (0, -170, 70, 70, (1.0, 0.85, 0.7))):
        inside = ((x - cx - dx) / rx) ** 2 + ((y - cy - dy) / ry) ** 2
        out = np.where((inside < 1.08)[..., None], (0.08, 0.05, 0.1), out)
        out = np.where((inside < 1.0)[..., None], colour, out)
    eye = ((x - cx - 25) ** 2 + (y - cy + 180) ** 2) < 100
    return np.where(eye[..., None], (0.0, 0.0, 0.0), out).astype(np.float32)


def square(image: Picture, index: int) -> Picture:
    out = image.copy()
    left, top = (400 + SCALE * index), 200
    out[top : top + 6 * SCALE, left : left + 6 * SCALE] = 1.0
    return out


@dataclass(frozen=True)
class Clip:
    name: str
    truth: Callable[[int], Picture]  # the pristine frame at HIGH
    grain: float = 0.0  # levels of fresh noise added to each low-resolution frame
    crf: int = 20
    static: Callable[[int], np.ndarray] | None = None  # HIGH bool mask: ground truth unchanged since the frame before


def clips() -> list[Clip]:
    still = backdrop(*HIGH)
    still_with_character = character(still, 0)

    def unchanged_everywhere(index: int) -> np.ndarray:
        return np.ones(HIGH, dtype=bool)

    def held(every: int) -> Clip:
        return Clip(f"{'twos' if every == 2 else 'threes'}", lambda i: character(still, i // every))

    return [
        held(2),
        held(3),
        Clip("grain", lambda i: still_with_character, grain=6.0, static=unchanged_everywhere),
        Clip("fade", lambda i: still_with_character * (1 - 0.004 * i)),
        Clip("moving", lambda i: square(still_with_character, i)),
        Clip("noisy still", lambda i: still_with_character, grain=3.0, static=unchanged_everywhere),
        Clip("noisy still crf 14", lambda i: still_with_character, grain=3.0, crf=14, static=unchanged_everywhere),
    ]


def low(picture: Picture) -> Picture:
    height, width = LOW
    return picture.reshape(height, SCALE, width, SCALE, 3).mean(axis=(1, 3))


def write_clip(path: Path, clip: Clip, frames: int, *, crf: int = 20, keyint: int = 250) -> Path:
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=FPS, options={"crf": str(crf), "preset": "medium", "g": str(keyint)}
        )
        stream.width, stream.height, stream.pix_fmt = LOW[1], LOW[0], "yuv420p"
        for index in range(frames):
            picture = low(clip.truth(index)) * 255
            if clip.grain:
                picture = picture + rng.normal(0, clip.grain, picture.shape)
            rgb = np.clip(np.round(picture), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace=1)
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decoded(path: Path) -> Iterator[Picture]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0


# ---- measures -----------------------------------------------------------------------------------


def psnr(a: Picture, b: Picture) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def luma(picture: Picture) -> np.ndarray:
    return picture @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def static_mask(truth: Callable[[int], Picture], index: int) -> np.ndarray:
    """Where the pristine picture did not change since the frame before, 16 pixels clear of change."""
    changed = np.abs(truth(index) - truth(index - 1)).max(axis=-1) > 0
    grown = torch.from_numpy(changed.astype(np.float32))[None, None]
    grown = F.max_pool2d(F.max_pool2d(grown, (33, 1), stride=1, padding=(16, 0)), (1, 33), stride=1, padding=(0, 16))
    return grown[0, 0].numpy() == 0


def high_pass(image: np.ndarray) -> np.ndarray:
    """Fine detail: the luma less its 5x5 mean."""
    tensor = torch.from_numpy(image)[None, None]
    blurred = F.avg_pool2d(F.pad(tensor, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return (tensor - blurred)[0, 0].numpy()


def shimmer(frames: list[Picture], clip: Clip) -> float:
    """Mean change of fine detail between consecutive frames where the truth stood still (levels)."""
    total, count = 0.0, 0
    for index in range(1, len(frames)):
        mask = clip.static(index) if clip.static else static_mask(clip.truth, index)
        if not mask.any():
            continue
        change = np.abs(high_pass(luma(frames[index])) - high_pass(luma(frames[index - 1]))) * 255
        total += float(change[mask].sum())
        count += int(mask.sum())
    return total / count if count else float("nan")


def block_flow(before: np.ndarray, after: np.ndarray, block: int = 16, search: int = 8) -> np.ndarray:
    """Motion of each ``block``-pixel block from ``before`` to ``after`` (2 x h x w, pixels), by
    the least mean absolute difference over shifts of up to ``search`` pixels."""
    a = torch.from_numpy(before)[None, None]
    b = F.pad(torch.from_numpy(after)[None, None], (search,) * 4, mode="replicate")
    height, width = before.shape
    best = torch.full((height // block, width // block), float("inf"))
    flow = torch.zeros(2, height // block, width // block)
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            shifted = b[..., search + dy : search + dy + height, search + dx : search + dx + width]
            cost = F.avg_pool2d((shifted - a).abs(), block)[0, 0]
            cost = cost + 1e-4 * (abs(dx) + abs(dy))  # ties (flat areas) to no motion
            better = cost < best
            best = torch.where(better, cost, best)
            flow[0][better], flow[1][better] = float(dx), float(dy)
    return flow.numpy()


def tof(frames: list[Picture], truth: Callable[[int], Picture]) -> float:
    """TecoGAN's tOF with block-matching motion on quarter-size luma: mean |motion(out) - motion(truth)|."""

    def quarter(picture: Picture) -> np.ndarray:
        image = luma(picture)
        return image.reshape(image.shape[0] // 4, 4, image.shape[1] // 4, 4).mean(axis=(1, 3))

    errors = []
    for index in range(1, len(frames), 2):  # every 2nd pair: the search is slow
        output = block_flow(quarter(frames[index - 1]), quarter(frames[index]), block=8, search=6)
        reference = block_flow(quarter(truth(index - 1)), quarter(truth(index)), block=8, search=6)
        errors.append(float(np.abs(output - reference).mean()))
    return float(np.mean(errors)) * 4  # in full-size pixels


def bicubic(picture: Picture) -> Picture:
    tensor = torch.from_numpy(picture).permute(2, 0, 1)[None]
    enlarged = F.interpolate(tensor, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(0, 1)
    return enlarged[0].permute(1, 2, 0).numpy()


# ---- the runs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    fps: float  # frames over wall time
    cpu_fps: float  # frames over the CPU time of this process (all threads): fairer on a shared machine
    reused: float
    work: float  # the network's input pixels over those of every frame whole (deterministic)
    frames: list[Picture]


def render(
    source: Path, output: Path, model: str, reuse: bool, test: ChangeTest, tile: int, encode: EncodeSettings
) -> Run:
    job = UpscaleJob(
        input=source, output=output, upscale=UpscaleOptions(models=(model,)), force=True, reuse=reuse, encode=encode
    )
    # The segment renderer makes its reuse state with the defaults; a bench may try others.
    segments.FrameReuse = functools.partial(FrameReuse, tile=tile, test=test)  # type: ignore[misc]
    started, cpu_started = time.perf_counter(), time.process_time()
    result = upscale_video(job)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    segments.FrameReuse = FrameReuse  # type: ignore[misc]
    reuse_count = result.reuse
    work = reuse_count.work
    return Run(result.frames / seconds, result.frames / cpu_seconds, reuse_count.share, work, list(decoded(output)))


def compare(
    model: str, frames: int, others: list[tuple[str, ChangeTest]], tile: int, only: list[str], repeat: int
) -> None:
    size = f"{LOW[1]}x{LOW[0]} -> {HIGH[1]}x{HIGH[0]}"
    print(f"{model}, {size}, {frames} frames a clip, libx264 crf 20 unless said; CPU: {cpu_name()}")
    print(f"load average before: {load_average()}")
    print(
        f"speed: renders encoded as by default (crf 18), the fastest of {repeat} interleaved; "
        "pictures: renders encoded losslessly (crf 0); 'crf 18': PSNR to the whole render, both default-encoded"
    )
    print(
        f"{'clip':18} {'render':15} {'fps':>5} {'speed':>6} {'by CPU':>7} {'reused':>7} {'network':>7} {'PSNR':>6} "
        f"{'vs whole':>8} {'worst':>6} {'crf 18':>6} {'shimmer':>8} {'tOF':>6}"
    )
    variants = [("whole", False, ChangeTest()), ("reuse", True, ChangeTest())]
    variants += [(name, True, test) for name, test in others]
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips():
            if only and clip.name not in only:
                continue
            source = write_clip(Path(folder) / f"{clip.name}.mp4", clip, frames, crf=clip.crf)
            truths = [clip.truth(i) for i in range(frames)]
            clip = replace(clip, truth=truths.__getitem__)
            bicubic_shimmer = shimmer([bicubic(p) for p in decoded(source)], clip)
            rounds = [
                [
                    render(source, Path(folder) / f"{n}.mkv", model, reuse, test, tile, EncodeSettings())
                    for n, reuse, test in variants
                ]
                for _ in range(repeat)
            ]  # interleaved: each variant's fastest round, the one the machine's other work disturbed least
            timed = [max(runs, key=lambda run: run.fps) for runs in zip(*rounds)]
            cpu_best = [max(run.cpu_fps for run in runs) for runs in zip(*rounds)]
            timed = [replace(run, cpu_fps=cpu) for run, cpu in zip(timed, cpu_best)]
            exact = [
                render(source, Path(folder) / f"{n}-lossless.mkv", model, reuse, test, tile, LOSSLESS)
                for n, reuse, test in variants
            ]
            for (name, _, _), run, lossless in zip(variants, timed, exact):
                fidelity = [psnr(a, b) for a, b in zip(lossless.frames, exact[0].frames)]
                encoded = [psnr(a, b) for a, b in zip(run.frames, timed[0].frames)]
                print(
                    f"{clip.name:18} {name:15} {run.fps:5.2f} {run.fps / timed[0].fps:5.2f}x "
                    f"{run.cpu_fps / timed[0].cpu_fps:6.2f}x {run.reused * 100:6.0f}% {run.work * 100:6.0f}% "
                    f"{np.mean([psnr(f, t) for f, t in zip(lossless.frames, truths)]):6.2f} "
                    f"{np.mean(fidelity):8.1f} {min(fidelity):6.1f} {np.mean(encoded):6.1f} "
                    f"{shimmer(lossless.frames, clip) / bicubic_shimmer:7.2f}x {tof(lossless.frames, clip.truth):6.3f}",
                    flush=True,
                )
    print(f"load average after: {load_average()}")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# ---- where the time goes ------------------------------------------------------------------------


class StageTimer:
    """Wall and thread CPU seconds spent inside wrapped functions, by stage (each stage timed in
    the thread it runs in: decode and encode in their own, the rest in the upscaling thread; the
    network's thread CPU leaves out torch's other worker threads)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._restore: list[tuple[object, str, object]] = []

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.wall[stage] = self.wall.get(stage, 0.0) + wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu

    def wrap(self, owner: object, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: object, **kwargs: object) -> object:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - wall, time.thread_time() - cpu)

        self._restore.append((owner, name, original))
        setattr(owner, name, timed)

    def wrap_generator(self, owner: object, name: str, stage: str) -> None:
        """Time each item a generator function yields (the work between two items is the stage's)."""
        original = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> Iterator[object]:
            items = iter(original(*args, **kwargs))
            while True:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self.add(stage, time.perf_counter() - wall, time.thread_time() - cpu)
                yield item

        self._restore.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()


def profile(model: str, frames: int, names: list[str]) -> None:
    """Where the time of a render goes, with and without reuse, stage by stage."""
    from vidsr.media import encode as encode_module
    from vidsr.upscale import reuse as reuse_module
    from vidsr.upscale import runner

    print(f"{model}, {frames} frames; CPU: {cpu_name()}; load average before: {load_average()}")
    stages = (
        (segments, "decode_batches", "decode", True),
        (runner, "planes_to_tensors", "colour in", False),
        (runner, "planes_to_rgb", "colour in", False),
        (runner.Upscaler, "_network_pass", "network", False),
        (reuse_module.PassReuse, "_decide", "reuse: change test", False),
        (reuse_module.PassReuse, "_compose", "reuse: cross-fade", False),
        (runner, "rgb_to_planes", "colour out", False),
        (runner, "tensors_to_planes", "colour out", False),
        (encode_module.VideoWriter, "write", "encode", False),
        (encode_module.VideoWriter, "close", "encode", False),
    )
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips():
            if clip.name not in names:
                continue
            source = write_clip(Path(folder) / f"{clip.name}.mp4", clip, frames, crf=clip.crf)
            for reuse in (False, True, False, True):  # interleaved, twice: the machine's load moves
                timer = StageTimer()
                for owner, name, stage, generator in stages:
                    (timer.wrap_generator if generator else timer.wrap)(owner, name, stage)
                try:
                    output = Path(folder) / "out.mkv"
                    job = UpscaleJob(
                        input=source, output=output, upscale=UpscaleOptions(models=(model,)), force=True, reuse=reuse
                    )
                    wall, cpu = time.perf_counter(), time.process_time()
                    upscale_video(job)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                finally:
                    timer.restore()
                parts = ", ".join(f"{stage} {timer.wall[stage]:.2f}/{timer.cpu[stage]:.2f}" for stage in timer.wall)
                print(
                    f"{clip.name} {'reuse' if reuse else 'whole'}: {wall:.2f} s wall, {cpu:.2f} s CPU "
                    f"(load {load_average()}); stages, wall/thread CPU s: {parts}",
                    flush=True,
                )


# ---- the thresholds -----------------------------------------------------------------------------


def worst_window(frame: Picture, reference: Picture) -> tuple[float, float, float]:
    """Over the reuse grid's windows: the largest mean absolute difference, |signed mean| and
    worst 8x8 block mean, in levels (as vidsr.upscale.reuse compares them)."""
    current = torch.from_numpy(frame).permute(2, 0, 1)
    previous = torch.from_numpy(reference).permute(2, 0, 1)
    signed, absolute, counts = _block_sums(current, previous)
    worst = (0.0, 0.0, 0.0)
    for rows in _grid_spans(frame.shape[0], REUSE_TILE):
        for cols in _grid_spans(frame.shape[1], REUSE_TILE):
            r = slice(rows.start // BLOCK, -(-rows.stop // BLOCK))
            c = slice(cols.start // BLOCK, -(-cols.stop // BLOCK))
            pixels = counts[r, c].sum()
            stats = (
                absolute[r, c].sum() / pixels,
                abs(signed[r, c].sum()) / pixels,
                float((absolute[r, c] / np.maximum(counts[r, c], 1)).max()),
            )
            worst = (max(worst[0], stats[0]), max(worst[1], stats[1]), max(worst[2], stats[2]))
    return worst


def thresholds() -> None:
    test = ChangeTest()
    limits = f"{test.mean} / {test.signed_mean} / {test.block_mean}"
    print(f"worst window (mean |d| / |signed mean| / {BLOCK}x{BLOCK} block), levels; changed if > {limits}")
    still = character(backdrop(*HIGH), 0)
    cases: list[tuple[str, Clip, int, int, int]] = [
        ("still, between keyframes, crf 18", Clip("s", lambda i: still), 18, 12, 5),
        ("still, between keyframes, crf 28", Clip("s", lambda i: still), 28, 12, 5),
        ("still, after a keyframe, crf 18", Clip("s", lambda i: still), 18, 12, 12),
        ("still, after a keyframe, crf 23", Clip("s", lambda i: still), 23, 12, 12),
        ("still, after a keyframe, crf 28", Clip("s", lambda i: still), 28, 12, 12),
        ("sensor noise σ 3, crf 20", Clip("n", lambda i: still, grain=3.0), 20, 250, 5),
        ("sensor noise σ 3, crf 14", Clip("n", lambda i: still, grain=3.0), 14, 250, 5),
        ("grain σ 6, crf 20", Clip("g", lambda i: still, grain=6.0), 20, 250, 5),
        ("fade 0.4 %/frame, after 1 frame", Clip("f", lambda i: still * (1 - 0.004 * i)), 20, 250, 1),
        ("fade 0.4 %/frame, after 3 frames", Clip("f", lambda i: still * (1 - 0.004 * i)), 20, 250, 3),
        ("fade 0.4 %/frame, after 8 frames", Clip("f", lambda i: still * (1 - 0.004 * i)), 20, 250, 8),
        ("6x6 white square moved 1 px", Clip("m", lambda i: square(still, i)), 20, 250, 1),
    ]
    with tempfile.TemporaryDirectory() as folder:
        for name, clip, crf, keyint, later in cases:
            source = write_clip(Path(folder) / "t.mp4", clip, later + 1, crf=crf, keyint=keyint)
            pictures = list(decoded(source))
            mean, signed, block = worst_window(pictures[later], pictures[0])
            verdict = "changed" if mean > test.mean or signed > test.signed_mean or block > test.block_mean else "kept"
            print(f"  {name:36} {mean:5.2f} / {signed:5.2f} / {block:5.1f}   {verdict}")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} vCPUs"
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3, help="timed renders of each variant, the fastest counts")
    parser.add_argument("--thresholds", action="store_true", help="the measurements behind the change test")
    parser.add_argument("--tile", type=int, default=REUSE_TILE, help="reuse tile (a multiple of 8)")
    parser.add_argument("--clip", action="append", default=[], help="only this clip (repeatable)")
    parser.add_argument("--profile", action="store_true", help="where the time goes, stage by stage (--clip)")
    parser.add_argument(
        "--noise-blend", type=float, action="append", default=[], help="also render with this ChangeTest.noise_blend"
    )
    parser.add_argument(
        "--adopt-margin", type=int, action="append", default=[], help="also render with this ChangeTest.adopt_margin"
    )
    parser.add_argument("--tiles-whole", action="store_true", help="also render taking in whole tiles (no blocks)")
    args = parser.parse_args()
    if args.thresholds:
        thresholds()
    elif args.profile:
        profile(args.model, args.frames, args.clip or ["threes"])
    else:
        others = [(f"reuse blend {blend:g}", ChangeTest(noise_blend=blend)) for blend in args.noise_blend]
        others += [(f"reuse margin {margin}", ChangeTest(adopt_margin=margin)) for margin in args.adopt_margin]
        others += [("reuse tiles whole", ChangeTest(adopt_blocks=False))] if args.tiles_whole else []
        compare(args.model, args.frames, others, args.tile, args.clip, args.repeat)


if __name__ == "__main__":
    main()
