"""What spreading a render over Ray workers costs and gives, measured side by side in one run.

Renders one clip of many segments (32 by default) four ways, interleaved so that machine noise hits
all of them alike:

    one process, one torch thread            the baseline
    Ray, 1 worker of 1 CPU                   the same work as a Ray task per segment: the overhead
    Ray, N workers of 1 CPU (N = the cores)  the speed-up, and the tail (the last segments have fewer
                                             workers busy than there are)

and prints the per-segment overhead of Ray (start-up apart), the speed-up of N workers over one,
and how much of the N-worker run the tail took. Ray starts once, outside the timings (its start-up
is printed on its own). Then a short model of a 2-hour film on G GPUs.

    python bench/cluster.py [--seconds 12] [--segments 32] [--model realesr-animevideov3] [--size 80x48]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import av  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from vidsr.render import Activity, Progress, UpscaleJob, upscale_video  # noqa: E402
from vidsr.render.ray_executor import RayBackend  # noqa: E402
from vidsr.upscale import UpscaleOptions  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"


def make_input(path: Path, seconds: float, width: int, height: int) -> Path:
    """The sample resized and played forwards and backwards in turn, keyframes every 2 s."""
    with av.open(str(SAMPLE)) as source:
        frames = [f.reformat(width=width, height=height, format="yuv420p") for f in source.decode(video=0)]
    cycle = [f.to_ndarray() for f in frames]
    cycle += cycle[-2:0:-1]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24, options={"crf": "16", "preset": "fast", "g": "48"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * 24)):
            frame = av.VideoFrame.from_ndarray(cycle[index % len(cycle)], format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


class TailWatch:
    """When the last segment started: from then on fewer workers are busy than there are."""

    def __init__(self, segments: int) -> None:
        self.segments = segments
        self.tail_started: float | None = None

    def __call__(self, progress: Progress) -> None:
        busy = [a for a in progress.workers if isinstance(a, Activity) and a.segment is not None]
        waiting = progress.segments_total - progress.segments_done - len(busy)
        if self.tail_started is None and progress.segments_total and waiting <= 0 and busy:
            self.tail_started = time.perf_counter()


def render(source: Path, output: Path, args: argparse.Namespace, workers: int | None) -> tuple[float, float]:
    """Seconds for the render, and seconds of it spent in the tail (Ray runs only)."""
    job = UpscaleJob(
        input=source,
        output=output,
        upscale=UpscaleOptions(models=(args.model,), device="cpu"),
        segment_seconds=args.seconds / args.segments,
        force=True,
    )
    watch = TailWatch(args.segments)
    started = time.perf_counter()
    if workers is None:
        upscale_video(job)
    else:
        upscale_video(job, backend=RayBackend("auto", worker_cpus=1), on_progress=watch)
    finished = time.perf_counter()
    tail = finished - watch.tail_started if watch.tail_started else 0.0
    return finished - started, tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--segments", type=int, default=32)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--size", default="80x48")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    cores = os.cpu_count() or 1
    torch.set_num_threads(1)  # the in-process baseline: one thread, as each Ray worker has

    started = time.perf_counter()
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    times: dict[str, list[float]] = {"one process": [], "ray 1": [], f"ray {cores}": []}
    tails: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        source = make_input(Path(folder) / "input.mp4", args.seconds, width, height)
        for _ in range(args.rounds):
            times["one process"].append(render(source, Path(folder) / "a.mp4", args, None)[0])
            ray.shutdown()  # one worker: a Ray of one CPU
            ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
            times["ray 1"].append(render(source, Path(folder) / "b.mp4", args, 1)[0])
            ray.shutdown()
            ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
            seconds, tail = render(source, Path(folder) / "c.mp4", args, cores)
            times[f"ray {cores}"].append(seconds)
            tails.append(tail)
    ray.shutdown()

    best = {name: min(values) for name, values in times.items()}
    frames = round(args.seconds * 24)
    print(f"{args.model}, {width}x{height} -> x4, {frames} frames in {args.segments} segments, {cores} cores")
    print(f"ray.init: {ray_start:.1f} s (not in the timings below)")
    for name, seconds in best.items():
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"  {name:<14} {seconds:7.1f} s  {frames / seconds:6.2f} fps   (runs: {runs})")
    overhead = (best["ray 1"] - best["one process"]) / args.segments
    print(f"Ray's overhead per segment (1 worker against one process): {overhead * 1000:.0f} ms")
    speedup = best["ray 1"] / best[f"ray {cores}"]
    print(f"speed-up of {cores} workers over 1: {speedup:.2f}x (ideal {cores}x)")
    tail = statistics.median(tails)
    print(f"tail (last segments, fewer workers busy than there are): {tail:.1f} s of the {cores}-worker run")
    print()
    print("A 2-hour film on G GPUs, segments of 6 s: 1200 segments; each GPU renders 1200/G of them.")
    print("  wall time = per-GPU time / G + the tail (at most one segment's render time) + start-up")
    print("  e.g. RRDB-23 at 1080p, 1 fps a GPU: 172,800 frames = 48 h on one GPU; 8 GPUs: 6 h + one")
    print("  segment (144 frames, 2.4 min) of tail + about a minute of start-up and model loading.")


if __name__ == "__main__":
    main()
