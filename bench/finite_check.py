"""What the per-batch NaN/infinity check costs where the network's output is already on the CPU.

The ncnn engine returns its frames as CPU fp32 tensors (from the CPU, and from a Vulkan device
after its download), so with fp16 on Vulkan the check of every batch is CPU work the pipeline
pays per frame. This prints, per output size, in one run: the check (each candidate reduction),
the rest of ``Upscaler._forward``'s work after the network (crop, float32 layout, clamp), the
whole per-batch CPU work around the network (that, plus the colour conversions in and out), and
the network itself on ncnn's CPU path for the smallest size, with the check's share of each.
Times drift on a shared machine; the ratios, measured in one run, are the result.

    python bench/finite_check.py
    python bench/finite_check.py --sizes 1920x1080 --repeat 20
    python bench/finite_check.py --threads 1 --repeat 40      # steadier on a shared machine
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidsr.media.encode import pix_fmt_layout
from vidsr.models import resolve_model
from vidsr.planes import ColourSpec
from vidsr.upscale import Upscaler
from vidsr.upscale.colour import planes_to_rgb, planes_to_tensors, rgb_to_planes, tensors_to_planes
from vidsr.upscale.runner import all_finite

BT709 = ColourSpec("bt709", full_range=False)
LAYOUT = pix_fmt_layout("yuv420p")
CHECKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "isfinite().all()": lambda output: torch.isfinite(output).all(),
    "sum().isfinite()": lambda output: torch.isfinite(output.sum(dtype=torch.float32)),
    "aminmax": lambda output: torch.isfinite(torch.stack(torch.aminmax(output))).all(),
    "vidsr's all_finite": all_finite,
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


Work = Callable[[torch.Tensor], object]


def best_ms(works: dict[str, Work], output: torch.Tensor, repeat: int) -> dict[str, float]:
    """Each work's best time in milliseconds over ``repeat`` rounds, the works taking turns (so a
    busy moment of the shared machine falls on all alike), each on a fresh copy of ``output``
    made outside the clock (the clamp works in place), after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in works}
    for round in range(repeat + 1):
        for name, work in works.items():
            copy = output.clone()
            started = time.perf_counter()
            work(copy)
            if round:
                times[name].append(time.perf_counter() - started)
    return {name: min(spent) * 1000 for name, spent in times.items()}


def network_output(width: int, height: int, batch: int) -> torch.Tensor:
    """What ncnn hands back: contiguous fp32 frames, values about 0..1 with a little overshoot."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, height, width, generator=generator) * 1.1 - 0.05


def after_network(output: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``_forward``'s work after the network, as it runs (crop, float32 planar, clamp)."""
    cropped = output[..., :height, :width]
    cropped = cropped.to(torch.float32, memory_format=torch.contiguous_format)
    return cropped.clamp_(0.0, 1.0)


def colour_work(output: torch.Tensor, input_planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The colour conversions of one batch on the CPU: source planes to RGB, RGB to output planes."""
    planes_to_rgb(planes_to_tensors(input_planes, LAYOUT), LAYOUT, BT709)
    tensors_to_planes(rgb_to_planes(output.clamp_(0.0, 1.0), LAYOUT, BT709), LAYOUT)


def source_planes(width: int, height: int, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    luma = rng.integers(16, 236, (batch, height, width), dtype=np.uint8)
    chroma = rng.integers(16, 241, (2, batch, height // 2, width // 2), dtype=np.uint8)
    return luma, chroma[0], chroma[1]


def ncnn_network_ms(model_name: str, width: int, height: int, repeat: int) -> float:
    """One frame through the model on ncnn's CPU path, as the runner calls the engine."""
    upscaler = Upscaler(resolve_model(model_name), device=torch.device("cpu"), precision="fp32", engine="ncnn")
    frame = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    return best_ms({"network": upscaler.engine}, frame, repeat)["network"]


def measure_size(width: int, height: int, args: argparse.Namespace, *, with_network: bool) -> None:
    """One output size: the checks beside the rest of the per-batch work, printed."""
    output = network_output(width, height, args.batch)
    planes = source_planes(width // args.scale, height // args.scale, args.batch)
    works: dict[str, Work] = {
        **CHECKS,
        "rest": lambda copy: after_network(copy, height, width),
        "colour": lambda copy: colour_work(copy, planes),
    }
    checks = best_ms(works, output, args.repeat)
    rest, colour = checks.pop("rest"), checks.pop("colour")
    ours = checks["vidsr's all_finite"]
    print(f"\n{width}x{height} output ({width // args.scale}x{height // args.scale} source):")
    print(f"  _forward after the network (crop, fp32 layout, clamp_): {rest:8.2f} ms")
    print(f"  + colour conversions in and out:                        {rest + colour:8.2f} ms")
    for name, ms in checks.items():
        print(f"  check {name:<20} {ms:8.2f} ms  = {ms / rest:5.2f}x the rest of _forward, "
              f"{ms / (rest + colour):6.1%} of the per-batch CPU work")  # fmt: skip
    if with_network:
        repeat = max(3, args.repeat // 5)
        network = ncnn_network_ms(args.model, width // args.scale, height // args.scale, repeat)
        print(f"  {args.model} on ncnn's CPU path: {network:8.1f} ms; the check is {ours / network:.2%} of it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1280x720,1920x1080,3840x2160", help="output sizes, WxH,...")
    parser.add_argument("--scale", type=int, default=4, help="the network's scale (source = output / scale)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--model", default="realesr-animevideov3", help="for the network's time at the first size")
    parser.add_argument("--threads", type=int, default=0, help="torch's threads (0: as it starts; 1 is steadier)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}, torch threads {torch.get_num_threads()}, batch {args.batch}, best of {args.repeat}")
    sizes = [[int(side) for side in size.split("x")] for size in args.sizes.split(",")]
    with torch.inference_mode():
        for index, (width, height) in enumerate(sizes):
            measure_size(width, height, args, with_network=index == 0)


if __name__ == "__main__":
    main()
