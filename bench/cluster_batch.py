"""What overlapping a batch's files on a cluster gives: the same batch three ways, side by side.

A batch of short files (each a few segments) is where the tail of each file costs most: its last
segments keep fewer workers busy than there are, and between two files every worker waits for the
next file's planning. Renders one batch, interleaved so that machine noise hits all alike:

    one process                the in-process batch, files one after the other
    Ray, one file at a time    every core a worker, each file's tail and the next one's start idle
    Ray, overlapped            as --cluster does it (RayBackend.files_at_once): the next file is
                               planned while the current one renders, its segments queued behind

and prints the wall time of each, the ratio of the last two, the CPU and the load average (the
machine may be shared). Ray starts once, outside the timings. With as many workers as cores the
gain can only come from the workers' idle time; the driver's own work (planning, committing,
finalizing each file) takes CPU from them.

    python bench/cluster_batch.py [--files 4] [--seconds 1.5] [--segments 3] [--size 80x48]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import make_input  # noqa: E402

from vidsr.render import UpscaleJob  # noqa: E402
from vidsr.render.batch import find_batch, run_batch  # noqa: E402
from vidsr.render.executor import Backend, InProcessBackend  # noqa: E402
from vidsr.render.ray_executor import RayBackend  # noqa: E402
from vidsr.upscale import UpscaleOptions  # noqa: E402


class OneFileAtATime(RayBackend):
    """The cluster, a batch's files one after the other."""

    files_at_once = 1


def render(sources: list[Path], out: Path, job: UpscaleJob, backend: Backend) -> float:
    items = find_batch(sources, out)
    started = time.perf_counter()
    results = run_batch(items, job, backend=backend, settle_seconds=0)
    assert all(r.result == "done" for r in results), results
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--size", default="80x48")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    cores = os.cpu_count() or 1
    torch.set_num_threads(1)  # the in-process baseline: one thread, as each Ray worker has
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    job = UpscaleJob(
        input=Path(),
        output=Path(),
        upscale=UpscaleOptions(models=(args.model,), device="cpu"),
        segment_seconds=args.seconds / args.segments,
        force=True,
    )
    ways: dict[str, Backend] = {
        "one process": InProcessBackend(),
        "ray, one file at a time": OneFileAtATime("auto", worker_cpus=1),
        f"ray, {RayBackend.files_at_once} files at once": RayBackend("auto", worker_cpus=1),
    }
    overlapped = list(ways)[-1]
    times: dict[str, list[float]] = {name: [] for name in ways}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "in").mkdir()
        first = make_input(Path(folder) / "in" / "0.mp4", args.seconds, width, height)
        sources = [first] + [_copy(first, Path(folder) / "in" / f"{n}.mp4") for n in range(1, args.files)]
        render(sources[:1], Path(folder) / "warm", job, ways[overlapped])  # workers up, model loaded
        for _ in range(args.rounds):
            for name, backend in ways.items():
                times[name].append(render(sources, Path(folder) / name.replace(" ", "_"), job, backend))
    load_after = os.getloadavg()
    for backend in ways.values():
        backend.close()
    ray.shutdown()
    frames = round(args.seconds * 24) * args.files
    print(f"{args.model}, {width}x{height} -> x4, {args.files} files of {args.segments} segments, {frames} frames")
    print(f"{_cpu_name()}, {cores} cores, {cores} Ray workers of 1 CPU")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    best = {name: min(values) for name, values in times.items()}
    for name, seconds in best.items():
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"  {name:<24} {seconds:6.1f} s  {frames / seconds:6.2f} fps   (runs: {runs})")
    ratio = best["ray, one file at a time"] / best[overlapped]
    print(f"{overlapped} over one file at a time: {ratio:.2f}x faster")


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "CPU")


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


if __name__ == "__main__":
    main()
