"""How fast vidsr is on this machine, and what each lever is worth, measured side by side.

Prints one table from one run:
- model-only fps for the fp32 NCHW baseline and each optimisation (channels_last, bf16, batch);
- a naive per-frame loop written the way Real-ESRGAN's video script works (decode → numpy →
  fp32 tensor → model → numpy → encode, one frame at a time, nothing overlapped);
- vidsr end to end with its defaults, its speed-up over the naive loop, and its efficiency
  (end-to-end fps over the best model-only fps);
- peak RSS of a short render and of one ten times as long.
Times drift on a shared machine; the ratios, measured in one run, are the result.

    python bench/speed.py                      # realesr-animevideov3 at 320x180 -> 1280x720
    python bench/speed.py --model realesrgan-x4plus --size 160x90 --frames 12
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.pipeline import UpscaleJob, upscale_video
from vidsr.upscale import UpscaleOptions, cpu_has_native_bf16, keep_large_buffers_in_heap
from vidsr.zoo import resolve_model

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"


def make_input(path: Path, *, width: int, height: int, frames: int) -> Path:
    """The sample clip, resized (bicubic) to the benchmark size and played forwards and back."""
    with av.open(str(SAMPLE)) as source:
        pictures = [f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC") for f in source.decode(video=0)]
    cycle = [p.to_ndarray() for p in pictures]
    cycle += cycle[-2:0:-1]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24, options={"crf": "18", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(cycle[index % len(cycle)], format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def decoded_rgb(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def model_only_fps(model_name: str, frames: list[np.ndarray], *, channels_last: bool, dtype: torch.dtype, batch: int) -> float:
    network = resolve_model(model_name).module.to(dtype=dtype)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(memory_format=layout)
    tensors = [torch.from_numpy(f).permute(2, 0, 1).float().div(255) for f in frames]
    batches = [torch.stack(tensors[i : i + batch]).to(dtype).contiguous(memory_format=layout) for i in range(0, len(tensors), batch)]
    with torch.inference_mode():
        network(batches[0])  # warm-up
        started = time.perf_counter()
        for images in batches:
            network(images)
    return len(tensors) / (time.perf_counter() - started)


def naive_loop_fps(clip: Path, output: Path, model_name: str) -> float:
    """Real-ESRGAN's inference_realesrgan_video.py, in-process: fp32, NCHW, one frame at a time."""
    network = resolve_model(model_name).module
    started = time.perf_counter()
    frames = 0
    with av.open(str(clip)) as source, av.open(str(output), "w") as sink:
        in_stream = source.streams.video[0]
        out_stream = sink.add_stream("libx264", rate=24, options={"crf": "18", "preset": "medium"})
        out_stream.pix_fmt = "yuv420p"
        for frame in source.decode(in_stream):
            image = frame.to_ndarray(format="rgb24")
            tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255).unsqueeze(0)
            with torch.no_grad():
                result = network(tensor)
            array = result.squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
            if frames == 0:
                out_stream.height, out_stream.width = array.shape[:2]
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            picture.pts, picture.time_base = frame.pts, frame.time_base
            sink.mux(out_stream.encode(picture))
            frames += 1
        sink.mux(out_stream.encode())
    return frames / (time.perf_counter() - started)


def vidsr_fps(clip: Path, output: Path, model_name: str, **settings) -> float:
    job = UpscaleJob(input=clip, output=output, upscale=UpscaleOptions(models=(model_name,)), force=True, **settings)
    started = time.perf_counter()
    result = upscale_video(job)
    return result.frames / (time.perf_counter() - started)


def peak_rss_mb(clip: Path, output: Path, model_name: str) -> float:
    """A real `vidsr` process's peak resident memory (ru_maxrss of the child)."""
    code = (
        "import resource, sys; from vidsr.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(clip), str(output), "--model", model_name, "--force", "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(completed.stdout.strip().splitlines()[-1]) / 1024


def network_flops(model_name: str, width: int, height: int) -> float:
    """Floating-point operations of one frame through the network (2 per multiply-add of every
    convolution), counted by running it once on an input of the benchmark size."""
    network = resolve_model(model_name).module
    total = 0

    def count(module: torch.nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += 2 * kernel * output.numel()

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        network(torch.zeros(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--rss-size", default="160x90", help="input size of the peak-RSS renders")
    parser.add_argument("--rss-model", default="realesr-animevideov3", help="model of the peak-RSS renders")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    keep_large_buffers_in_heap()  # as vidsr does; the baselines get the same allocator

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        clip = make_input(folder / "input.mp4", width=width, height=height, frames=args.frames)
        frames = decoded_rgb(clip)[: max(8, args.frames // 4)]
        variants = [
            ("model: fp32 NCHW batch 1 (baseline)", dict(channels_last=False, dtype=torch.float32, batch=1)),
            ("model: fp32 channels_last batch 1", dict(channels_last=True, dtype=torch.float32, batch=1)),
        ]
        if cpu_has_native_bf16():
            variants += [
                ("model: bf16 channels_last batch 1", dict(channels_last=True, dtype=torch.bfloat16, batch=1)),
                ("model: bf16 channels_last batch 4", dict(channels_last=True, dtype=torch.bfloat16, batch=4)),
            ]
        model_rows = [(name, model_only_fps(args.model, frames, **kw)) for name, kw in variants]
        rows += model_rows
        naive = naive_loop_fps(clip, folder / "naive.mp4", args.model)
        rows.append(("naive per-frame loop (the reference's way)", naive))
        end_to_end = max(vidsr_fps(clip, folder / "vidsr.mp4", args.model) for _ in range(2))
        rows.append(("vidsr end to end, defaults", end_to_end))
        baseline = model_rows[0][1]
        best_model = max(fps for _, fps in model_rows)

        print(f"{args.model}, {width}x{height} -> x4, {torch.get_num_threads()} torch threads, native bf16: {cpu_has_native_bf16()}")
        print(f"{'':<46}{'fps':>8}{'x baseline':>12}")
        for name, fps in rows:
            print(f"{name:<46}{fps:8.2f}{fps / baseline:12.2f}")
        print(f"vidsr over the naive loop: {end_to_end / naive:.2f}x")
        flops = network_flops(args.model, width, height)
        print(f"model arithmetic: {flops / 1e9:.0f} GFLOP a frame; best model-only {best_model * flops / 1e9:.0f} GFLOP/s")
        print(f"efficiency (end to end / best model-only): {end_to_end / best_model:.2f}")

        rss_width, rss_height = (int(v) for v in args.rss_size.split("x"))
        short = make_input(folder / "short.mp4", width=rss_width, height=rss_height, frames=48)
        long = make_input(folder / "long.mp4", width=rss_width, height=rss_height, frames=480)
        short_rss = peak_rss_mb(short, folder / "short out.mp4", args.rss_model)
        long_rss = peak_rss_mb(long, folder / "long out.mp4", args.rss_model)
        print(
            f"peak RSS, {args.rss_model} at {args.rss_size}: 48 frames {short_rss:.0f} MB, 480 frames {long_rss:.0f} MB "
            f"({long_rss / short_rss:.3f}x; target within 5 %)"
        )


if __name__ == "__main__":
    main()
