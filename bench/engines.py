"""The engines side by side: torch on the CPU, ncnn on the CPU, ncnn on each Vulkan device.

For each model, one run prints, per engine and device: the network's time for one frame (through
vidsr's runner, after one frame of warm-up, the median of ``--repeat``), its speed relative to
torch fp32 on the CPU, and its fidelity to torch fp32 (PSNR on a real frame: the sample clip
resized to the size asked). Times drift on a shared machine; the ratios, measured in one run, are
the result. The CPU and the Vulkan devices are named in the header.

With ``--ncnn-options``, ncnn's CPU options side by side, each against vidsr's own settings (the
engine alone on one frame, the variants taking turns ``--repeat`` times, best of each): OpenMP
block time, Winograd and sgemm convolutions, the packed layout, light mode, one thread, and two
frames at once on one thread each.

    python bench/engines.py                                             # the two issue sizes
    python bench/engines.py --model realesrgan-x4plus-anime --size 64x36 --repeat 1
    python bench/engines.py --ncnn-options --no-vulkan                  # ncnn's CPU options
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import torch

from vidsr.models import LoadedModel, resolve_model
from vidsr.upscale import Upscaler, describe_vulkan_devices, vulkan_devices
from vidsr.upscale.ncnn_engine import NcnnEngine
from vidsr.upscale.policy import default_precision

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"
CPU = torch.device("cpu")
DEFAULT_CASES = (("realesr-animevideov3", "320x180"), ("realesrgan-x4plus", "160x90"))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def sample_frame(width: int, height: int) -> torch.Tensor:
    """The sample clip's middle frame, resized bicubically: 1 x 3 x H x W in 0..1."""
    with av.open(str(SAMPLE)) as source:
        frames = list(source.decode(video=0))
    picture = frames[len(frames) // 2].reformat(width=width, height=height, format="rgb24", interpolation="BICUBIC")
    return torch.from_numpy(picture.to_ndarray()).permute(2, 0, 1)[None].float() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def time_engine(upscaler: Upscaler, frame: torch.Tensor, repeat: int) -> tuple[float, torch.Tensor]:
    """Median seconds of ``repeat`` frames after one of warm-up, and the output."""
    output = upscaler.upscale_rgb(frame)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        output = upscaler.upscale_rgb(frame)
        times.append(time.perf_counter() - started)
    return statistics.median(times), output


def candidates(model: LoadedModel, *, vulkan: bool = True) -> list[tuple[str, str, torch.device, str]]:
    """(label, engine, device, precision): torch fp32 first (the reference), then the rest."""
    rows = [("torch fp32", "torch", CPU, "fp32")]
    torch_default = default_precision(CPU, model)
    if torch_default != "fp32":
        rows.append((f"torch {torch_default} (its default here)", "torch", CPU, torch_default))
    rows.append(("ncnn fp32", "ncnn", CPU, "fp32"))
    for device in vulkan_devices() if vulkan else ():
        on = torch.device("vulkan", device.index)
        for precision in ("fp16", "fp32"):
            rows.append((f"ncnn {precision} vulkan:{device.index}", "ncnn", on, precision))
    return rows


def bench(model_name: str, size: str, repeat: int, *, vulkan: bool = True) -> None:
    width, height = (int(side) for side in size.split("x"))
    frame = sample_frame(width, height)
    model = resolve_model(model_name)
    print(f"\n{model_name} at {width}x{height} (one frame, median of {repeat} after one warm-up)")
    print(f"  {'engine':<34} {'s/frame':>9} {'vs torch fp32':>14} {'PSNR vs torch fp32':>19}")
    reference_seconds, reference = None, None
    for label, engine, device, precision in candidates(model, vulkan=vulkan):
        copied = dataclasses.replace(model, module=copy.deepcopy(model.module))
        upscaler = Upscaler(copied, device=device, precision=precision, engine=engine)  # type: ignore[arg-type]
        seconds, output = time_engine(upscaler, frame, repeat)
        if reference is None:
            reference_seconds, reference = seconds, output
        assert reference_seconds is not None
        speed = reference_seconds / seconds
        fidelity = psnr(output, reference)
        shown = "reference" if output is reference else ("identical" if math.isinf(fidelity) else f"{fidelity:.1f} dB")
        print(f"  {label:<34} {seconds:>9.3f} {speed:>13.2f}x {shown:>19}", flush=True)
        del upscaler


NCNN_VARIANTS: tuple[tuple[str, dict[str, int | bool]], ...] = (
    ("vidsr's settings", {}),
    ("openmp_blocktime 0", {"openmp_blocktime": 0}),
    ("no Winograd convolution", {"use_winograd_convolution": False}),
    ("no sgemm convolution", {"use_sgemm_convolution": False}),
    ("no packed layout", {"use_packing_layout": False}),
    ("lightmode off", {"lightmode": False}),
    ("1 thread", {"num_threads": 1}),
    ("vidsr's settings, again (the noise)", {}),
)


def ncnn_options(model_name: str, size: str, repeat: int) -> None:
    """ncnn's CPU options, each against vidsr's settings, on the engine alone (no runner)."""
    width, height = (int(side) for side in size.split("x"))
    frame = sample_frame(width, height)
    model = resolve_model(model_name)
    runs: dict[str, Callable[[], object]] = {}
    for label, options in NCNN_VARIANTS[:-1]:
        engine = NcnnEngine(model, gpu=None, options=options)
        runs[label] = functools.partial(engine, frame)
    pair = [NcnnEngine(model, gpu=None, options={"num_threads": 1}) for _ in range(2)]
    runs["2 frames at once, 1 thread each"] = functools.partial(two_at_once, pair, frame)
    runs[NCNN_VARIANTS[-1][0]] = runs[NCNN_VARIANTS[0][0]]  # last in each round, as the first is first
    best = dict.fromkeys(runs, math.inf)
    for run in runs.values():
        run()  # warm-up
    for _ in range(repeat):
        for label, run in runs.items():
            started = time.perf_counter()
            run()
            best[label] = min(best[label], time.perf_counter() - started)
    best["2 frames at once, 1 thread each"] /= 2  # per frame
    reference = best["vidsr's settings"]
    print(f"\n{model_name} at {width}x{height} on ncnn's CPU path: s per frame, best of {repeat} taking turns")
    for label, seconds in best.items():
        print(f"  {label:<34} {seconds:>9.3f} {reference / seconds:>9.2f}x", flush=True)


def two_at_once(engines: list[NcnnEngine], frame: torch.Tensor) -> None:
    """One frame on each engine, in two threads (ncnn lets go of the GIL while it computes)."""
    threads = [threading.Thread(target=engine, args=(frame,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="a model (repeatable); default: the issue's two cases")
    parser.add_argument("--size", default=None, help="WxH input size for every --model (default: per case)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-vulkan", action="store_true", help="the CPU only (llvmpipe takes minutes a frame)")
    parser.add_argument("--ncnn-options", action="store_true", help="ncnn's CPU options instead of the engines")
    arguments = parser.parse_args()
    print(f"CPU: {cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), torch threads {torch.get_num_threads()}")
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    for line in describe_vulkan_devices():
        print(line)
    cases = [(m, arguments.size or "64x36") for m in arguments.model] if arguments.model else DEFAULT_CASES
    if arguments.size and not arguments.model:
        cases = [(m, arguments.size) for m, _ in DEFAULT_CASES]
    for model_name, size in cases:
        if arguments.ncnn_options:
            ncnn_options(model_name, size, arguments.repeat)
        else:
            bench(model_name, size, arguments.repeat, vulkan=not arguments.no_vulkan)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
