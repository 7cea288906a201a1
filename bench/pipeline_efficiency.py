"""How much of the network's speed survives the whole pipeline (decode, colour, encode, mux).

Prints, from one run on the same frames: model-only fps (the network alone on tensors already in
memory), end-to-end fps (``vidsr INPUT OUTPUT``), and their ratio, the pipeline's efficiency.
Ratios, not absolute times, are what to compare between machines and runs.

    python bench/pipeline_efficiency.py [--model realesr-animevideov3] [--frames 48] [--size 320x180]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import torch

from vidsr.colour import planes_to_rgb
from vidsr.decode import decode_batches
from vidsr.pipeline import UpscaleJob, default_batch, upscale_video
from vidsr.probe import probe
from vidsr.upscale import UpscaleOptions, Upscaler, default_precision, select_device
from vidsr.zoo import resolve_model

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"


def make_input(path: Path, *, width: int, height: int, frames: int) -> Path:
    """The sample clip, enlarged (bicubic) to the benchmark size and looped to ``frames`` frames."""
    with av.open(str(SAMPLE)) as source:
        pictures = [f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC") for f in source.decode(video=0)]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24, options={"crf": "18", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            picture = pictures[index % len(pictures)]
            frame = av.VideoFrame.from_ndarray(picture.to_ndarray(), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def model_only_fps(clip: Path, model_name: str, device_name: str) -> float:
    """The network alone, on frames already decoded and converted to RGB tensors on the device."""
    info = probe(clip)
    device = select_device(device_name)
    model = resolve_model(model_name)
    upscaler = Upscaler(
        model,
        device=device,
        precision=default_precision(device, model, bit_depth=info.bit_depth),
        source_colour=info.colour,
        output_colour=info.colour,
        output_layout=None,  # unused: only upscale_rgb runs here
    )
    batch_size = default_batch(device.type)
    inputs = []
    for batch in decode_batches(info, batch_size=batch_size):
        planes = tuple(torch.from_numpy(p).to(device) for p in batch.planes)
        inputs.append(planes_to_rgb(planes, batch.layout, info.colour))
    with torch.inference_mode():
        for rgb in inputs[:2]:
            upscaler.upscale_rgb(rgb)  # warm-up: first-call allocations and kernel selection
        started = time.perf_counter()
        frames = 0
        for rgb in inputs:
            upscaler.upscale_rgb(rgb)
            frames += len(rgb)
    return frames / (time.perf_counter() - started)


def end_to_end_fps(clip: Path, model_name: str, device_name: str, output: Path) -> float:
    options = UpscaleOptions(models=(model_name,), device=device_name)
    job = UpscaleJob(input=clip, output=output, upscale=options, force=True)
    started = time.perf_counter()
    result = upscale_video(job)
    return result.frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as folder:
        clip = make_input(Path(folder) / "input.mp4", width=width, height=height, frames=args.frames)
        model_runs, pipeline_runs = [], []
        for _ in range(args.rounds):  # interleaved, best of each: noise hits both sides alike
            model_runs.append(model_only_fps(clip, args.model, args.device))
            pipeline_runs.append(end_to_end_fps(clip, args.model, args.device, Path(folder) / "output.mp4"))
        model_fps, pipeline_fps = max(model_runs), max(pipeline_runs)

    print(
        f"{args.model}, {width}x{height} -> x4, {args.frames} frames, torch threads {torch.get_num_threads()}, "
        f"best of {args.rounds} interleaved rounds"
    )
    print(f"{'':<14}{'runs (fps)':>8}  " + "  ".join(f"{v:.2f}" for v in model_runs) + " | " + "  ".join(f"{v:.2f}" for v in pipeline_runs))
    print(f"{'model only':<14}{model_fps:8.2f} fps")
    print(f"{'end to end':<14}{pipeline_fps:8.2f} fps")
    print(f"{'efficiency':<14}{pipeline_fps / model_fps:8.2f}   (end-to-end fps / model-only fps; target >= 0.9)")


if __name__ == "__main__":
    main()
