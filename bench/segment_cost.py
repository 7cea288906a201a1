"""What resumability costs: a segmented render against one continuous encode, same settings.

Prints, from one run: wall-time ratio and file-size ratio of segmented over continuous
(targets <= 1.05 and <= 1.03), file sizes for other segment lengths, and how much work a
resume redoes after kills at random moments. Runs are interleaved (A B A B) so that machine
noise hits both sides alike.

    python bench/segment_cost.py [--seconds 30] [--model realesr-animevideov3] [--kills 4]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from vidsr.render import DEFAULT_SEGMENT_SECONDS, UpscaleJob, upscale_video
from vidsr.render.workfolder import WorkFolder
from vidsr.upscale import UpscaleOptions

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"
CONTINUOUS = 1e9  # one segment for the whole video: an ordinary continuous encode


def make_input(path: Path, seconds: float) -> Path:
    """The sample played forwards and backwards in turn (continuous motion, no cuts)."""
    with av.open(str(SAMPLE)) as source:
        pictures = [frame.to_ndarray() for frame in source.decode(video=0)]
        width, height = source.streams.video[0].width, source.streams.video[0].height
    cycle = pictures + pictures[-2:0:-1]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24, options={"crf": "16", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * 24)):
            frame = av.VideoFrame.from_ndarray(cycle[index % len(cycle)], format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def render(source: Path, output: Path, model: str, segment_seconds: float) -> tuple[float, int]:
    job = UpscaleJob(
        input=source,
        output=output,
        upscale=UpscaleOptions(models=(model,)),
        force=True,
        segment_seconds=segment_seconds,
    )
    started = time.perf_counter()
    upscale_video(job)
    return time.perf_counter() - started, output.stat().st_size


def redo_after_kills(source: Path, output: Path, model: str, kills: int, uninterrupted: float) -> tuple[float, int]:
    """Kill a real vidsr process at random moments, resume until done; return the extra wall time
    per kill and the kills that landed mid-render."""
    chance = random.Random(2026)
    command = [sys.executable, "-m", "vidsr", str(source), str(output), "--model", model, "--quiet"]
    total, landed = 0.0, 0
    for _ in range(kills):
        started = time.perf_counter()
        process = subprocess.Popen(command)
        time.sleep(chance.uniform(3.0, max(3.5, uninterrupted / kills)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        total += time.perf_counter() - started
        if output.exists():
            break  # it finished before the kill
        landed += 1
    if not output.exists():
        started = time.perf_counter()
        subprocess.run(command, check=True)
        total += time.perf_counter() - started
    return (total - uninterrupted) / max(landed, 1), landed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--kills", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        source = make_input(folder / "input.mp4", args.seconds)
        render(source, folder / "warmup.mp4", args.model, CONTINUOUS)  # conversion cache, first-call costs
        print("rendering; this takes a few minutes", file=sys.stderr)
        times = {CONTINUOUS: [], DEFAULT_SEGMENT_SECONDS: []}
        sizes = {}
        for _ in range(2):
            for length in times:
                seconds, sizes[length] = render(source, folder / "out.mp4", args.model, length)
                times[length].append(seconds)
        for length in (2.0, 10.0):
            _, sizes[length] = render(source, folder / "out.mp4", args.model, length)

        continuous = min(times[CONTINUOUS])
        segmented = min(times[DEFAULT_SEGMENT_SECONDS])
        print(f"{args.model}, {args.seconds:.0f} s at 160x90 -> x4, best of 2 interleaved runs each")
        print(f"{'continuous':<22}{continuous:8.2f} s {sizes[CONTINUOUS] / 1e6:8.3f} MB")
        for length in sorted(s for s in sizes if s != CONTINUOUS):
            timing = f"{min(times[length]):8.2f} s" if length in times else " " * 10
            ratio = sizes[length] / sizes[CONTINUOUS]
            print(f"{f'segments of {length:g} s':<22}{timing} {sizes[length] / 1e6:8.3f} MB   size x{ratio:.3f}")
        print(
            f"wall-time ratio (segments of {DEFAULT_SEGMENT_SECONDS:g} s / continuous): "
            f"{segmented / continuous:.3f}   target <= 1.05"
        )
        print(
            f"file-size ratio (segments of {DEFAULT_SEGMENT_SECONDS:g} s / continuous): "
            f"{sizes[DEFAULT_SEGMENT_SECONDS] / sizes[CONTINUOUS]:.3f}   target <= 1.03"
        )

        output = folder / "killed.mp4"
        redo, landed = redo_after_kills(source, output, args.model, args.kills, segmented)
        print(
            f"resume: {landed} kills at random moments cost {redo:.2f} s of extra wall time each "
            f"(startup + the unfinished segment; a {DEFAULT_SEGMENT_SECONDS:g} s segment renders in "
            f"{segmented * DEFAULT_SEGMENT_SECONDS / args.seconds:.2f} s)"
        )
        assert not WorkFolder(output).exists()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
