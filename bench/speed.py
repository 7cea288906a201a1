"""How fast vidsr is on this machine, what each lever is worth, and where the CPU time goes.

Prints, from one run:
- model-only fps for the fp32 NCHW baseline and each optimisation (channels_last, bf16, batch
  size, torch.compile), and the network as vidsr runs it (its default precision and batch);
- a naive per-frame loop written the way Real-ESRGAN's video script works (decode → numpy →
  fp32 tensor → model → numpy → encode, one frame at a time, nothing overlapped);
- vidsr end to end with its defaults and with x264's medium preset, the speed-up over the naive
  loop, and the efficiency (end-to-end fps over model-only fps at vidsr's settings);
- the CPU budget of one frame: core-milliseconds of the network, the colour conversion and the
  encoder at each preset, and the efficiency they allow when they share the cores;
- peak RSS of a short render and of one ten times as long;
- with ``--engines``, the engine columns: for each embedded model (or each ``--engine-case``),
  torch on the CPU, ncnn on the CPU, ncnn on each Vulkan GPU and ``--engine auto`` (what it chose,
  and what its measurement cost) side by side, model-only and end to end, each against the naive
  loop (``--engines --quick``: that table alone, at a tiny size, in a few minutes).
- with ``--engines --emulate-avx2``, each model's engine rows again from a child process that sees
  this CPU without AVX-512, AMX and bf16 (bench/avx2_cpu.c, loaded with LD_PRELOAD, answers CPUID
  itself), which is how torch, oneDNN and ncnn all choose their kernels: the engines as they run
  on an AVX2 CPU such as an EPYC, measured here. (``ONEDNN_MAX_CPU_ISA=AVX2`` alone would move
  oneDNN, and vidsr's bf16 detection with it, but not ATen or ncnn.) Needs a C compiler and a CPU
  that can make CPUID fault (the "cpuid_fault" flag: Intel since Ivy Bridge, most VMs).
Times drift on a shared machine; the ratios, measured in one run, are the result.

The naive loop is Real-ESRGAN's inference_realesrgan_video.py as it runs on the CPU: with its
defaults (no tiles, no pre-padding) and ``--fp32`` (its default is fp16, which the CPU does not
do usefully), the same arithmetic as its RealESRGANer.enhance (to float, /255, the network in fp32
NCHW one frame at a time under no_grad, clamp, x255, round). It differs in the plumbing: the script
decodes and encodes in two ffmpeg processes joined by pipes (bgr24 in, libx264 at x264's defaults
out), which overlap the network; here PyAV decodes and encodes in the process (libx264 medium,
crf 18, its own threads), and the BGR flips are left out. As published the script does not run on
a CPU-only torch at all: ``torch.cuda.synchronize`` after each frame raises; this is it without.

    python bench/speed.py                      # realesr-animevideov3 at 320x180 -> 1280x720
    python bench/speed.py --model realesrgan-x4plus --size 160x90 --frames 12
    python bench/speed.py --engines --quick    # the engine table alone: 48x32, 4 frames
    python bench/speed.py --engines --engines-only --emulate-avx2 --frames 6 \\
        --engine-case realesr-animevideov3:320x180 --engine-case realesrgan-x4plus:160x90
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.media import EncodeSettings, decode_batches, pix_fmt_layout, probe
from vidsr.models import EMBEDDED, resolve_model
from vidsr.render import UpscaleJob, default_batch, upscale_video
from vidsr.upscale import (
    UpscaleOptions,
    Upscaler,
    VideoPlanes,
    arithmetic_per_output_pixel,
    choose_engine,
    cpu_has_native_bf16,
    describe_vulkan_devices,
    vulkan_devices,
)
from vidsr.upscale.colour import planes_to_rgb, planes_to_tensors, rgb_to_planes
from vidsr.upscale.policy import choose_precision, default_precision, select_device
from vidsr.upscale.process import keep_large_buffers_in_heap

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"
CPU = torch.device("cpu")


def make_input(path: Path, *, width: int, height: int, frames: int) -> Path:
    """The sample clip, resized (bicubic) to the benchmark size and played forwards and back."""
    with av.open(str(SAMPLE)) as source:
        pictures = [
            f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
            for f in source.decode(video=0)
        ]
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


class Timed:
    """Wall time and CPU time (all threads) of a block: fps, and core-ms a frame."""

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def __enter__(self) -> Timed:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fps = self.frames / (time.perf_counter() - self._wall)
        self.core_ms = 1000 * (time.process_time() - self._cpu) / self.frames


def rgb_batches(clip: Path, frames: int, batch: int) -> list[torch.Tensor]:
    with av.open(str(clip)) as container:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    tensors = [torch.from_numpy(image).permute(2, 0, 1).float().div(255) for image in images]
    return [torch.stack(tensors[i : i + batch]) for i in range(0, len(tensors), batch)]


def model_only(
    model_name: str,
    clip: Path,
    frames: int,
    *,
    channels_last: bool,
    dtype: torch.dtype,
    batch: int,
    compiled: bool = False,
) -> tuple[Timed, float]:
    """The bare network on RGB tensors in memory; returns the timing and the seconds spent compiling."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    network = resolve_model(model_name).module.to(dtype=dtype, memory_format=layout)
    batches = [b.to(dtype).contiguous(memory_format=layout) for b in rgb_batches(clip, frames, batch)]
    run: Callable[[torch.Tensor], torch.Tensor] = network
    with torch.inference_mode():
        started = time.perf_counter()
        if compiled:
            run = torch.compile(network, options={"freezing": True})
        run(batches[0])  # warm-up (and compilation)
        compile_seconds = time.perf_counter() - started if compiled else 0.0
        with Timed(sum(len(b) for b in batches)) as timed:
            for images in batches:
                run(images)
    return timed, compile_seconds


def upscaler_for(model_name: str, clip: Path, engine: str = "torch", device: torch.device = CPU) -> Upscaler:
    """The network as vidsr runs it on this machine: default precision (the engine's on ``device``),
    channels_last on torch."""
    info = probe(clip)
    model = resolve_model(model_name)
    return Upscaler(
        model,
        device=device,
        engine="ncnn" if engine == "ncnn" else "torch",
        precision=default_precision(device, model, bit_depth=info.bit_depth, engine=engine),
        video=VideoPlanes(
            source_colour=info.colour,
            output_size=(info.width * model.scale, info.height * model.scale),
            output_colour=info.colour,
            output_layout=pix_fmt_layout("yuv420p"),
        ),
    )


def vidsr_settings_model_only(
    model_name: str, clip: Path, frames: int, engine: str = "torch", device: torch.device = CPU
) -> tuple[Timed, Timed, Timed]:
    """The network with vidsr's precision and batch, and the colour conversion on either side."""
    info = probe(clip)
    upscaler = upscaler_for(model_name, clip, engine, device)
    batches = [b for _, b in zip(range(frames), decode_batches(info, batch_size=default_batch("cpu")))]
    frames = sum(len(b) for b in batches)
    with torch.inference_mode():
        planes = [planes_to_tensors(b.planes, b.layout) for b in batches]
        with Timed(frames) as colour_in:
            rgbs = [planes_to_rgb(p, batches[0].layout, info.colour) for p in planes]
        upscaler.upscale_rgb(rgbs[0])  # warm-up
        with Timed(frames) as network:
            outputs = [upscaler.upscale_rgb(rgb) for rgb in rgbs]
        with Timed(frames) as colour_out:
            for rgb in outputs:
                rgb_to_planes(rgb, pix_fmt_layout("yuv420p"), info.colour)
    return network, colour_in, colour_out


def encoder_core_ms(video: Path, preset: str) -> float:
    """CPU time x264 spends on one frame of ``video`` (already upscaled) at ``preset``."""
    with av.open(str(video)) as container:
        frames = [f.reformat(format="yuv420p") for f in container.decode(video=0)]
    for frame in frames:
        frame.pict_type = av.video.frame.PictureType.NONE
    with av.open("/dev/null", "w", format="nut") as sink, Timed(len(frames)) as timed:
        stream = sink.add_stream("libx264", rate=24, options={"crf": "18", "preset": preset})
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for frame in frames:
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode())
    return timed.core_ms


def naive_loop_fps(clip: Path, output: Path, model_name: str) -> float:
    """Real-ESRGAN's inference_realesrgan_video.py, in-process: fp32, NCHW, one frame at a time
    (how it differs: the module's docstring)."""
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


def vidsr_run(
    clip: Path, output: Path, model_name: str, preset: str = "auto", engine: str = "auto", device: str = "auto"
) -> tuple[float, str]:
    """End-to-end fps of a real render, and the encoder it used."""
    job = UpscaleJob(
        input=clip,
        output=output,
        upscale=UpscaleOptions(models=(model_name,), engine=engine, device=device),
        encode=EncodeSettings(preset=preset),
        force=True,
    )
    started = time.perf_counter()
    result = upscale_video(job)
    return result.frames / (time.perf_counter() - started), result.encoder


def peak_rss_mb(clip: Path, output: Path, model_name: str) -> float:
    """A real `vidsr` process's peak resident memory (ru_maxrss of the child)."""
    code = (
        "import resource, sys; from vidsr.cli.app import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(clip), str(output), "--model", model_name, "--force", "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(completed.stdout.strip().splitlines()[-1]) / 1024


def model_variants() -> list[tuple[str, dict]]:
    variants = [
        ("fp32 NCHW batch 1 (baseline)", dict(channels_last=False, dtype=torch.float32, batch=1)),
        ("fp32 channels_last batch 1", dict(channels_last=True, dtype=torch.float32, batch=1)),
    ]
    if cpu_has_native_bf16():
        variants += [
            (f"bf16 channels_last batch {batch}", dict(channels_last=True, dtype=torch.bfloat16, batch=batch))
            for batch in (1, 2, 4)
        ]
    fastest = variants[-3][1] if cpu_has_native_bf16() else variants[1][1]
    variants.append(("  + torch.compile (freezing)", dict(fastest, compiled=True)))
    return variants


def engine_columns(*, software_vulkan: bool) -> list[tuple[str, str, torch.device]]:
    """(label, engine, device): torch on the CPU, ncnn on the CPU, ncnn on each Vulkan GPU (and on
    Vulkan devices that are CPUs, llvmpipe, with ``software_vulkan``: a correctness path, minutes
    a frame for the heavy models)."""
    columns = [("torch cpu", "torch", CPU), ("ncnn cpu", "ncnn", CPU)]
    columns += [
        (f"ncnn vulkan:{d.index}", "ncnn", torch.device("vulkan", d.index))
        for d in vulkan_devices()
        if d.is_gpu or software_vulkan
    ]
    return columns


@dataclass(frozen=True)
class EngineRows:
    """One model's engine table from one process (this CPU as it is, or emulated without AVX-512)."""

    model: str
    size: str
    cpu: str  # how the process saw the CPU: torch's capability, bf16, threads
    naive_fps: float
    labels: list[str]
    precisions: list[str]
    network_fps: list[float]
    whole_fps: list[float]
    auto: str  # what --engine auto chose, and how
    auto_fps: float
    auto_probe_seconds: float  # the first-frame cost of auto's measurement (once per process)


def cpu_as_seen() -> str:
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{isa}, bf16 {'yes' if cpu_has_native_bf16() else 'no'}, {torch.get_num_threads()} threads"


def engine_rows(
    model_name: str, folder: Path, *, width: int, height: int, frames: int, software_vulkan: bool
) -> EngineRows:
    """Every engine for one model: model-only fps (vidsr's runner, the engine's default precision),
    end-to-end fps (a whole render), and --engine auto's choice and its render."""
    clip = make_input(folder / f"engines-{model_name}.mp4", width=width, height=height, frames=frames)
    columns = engine_columns(software_vulkan=software_vulkan)
    model = resolve_model(model_name)
    naive = naive_loop_fps(clip, folder / "engines-naive.mp4", model_name)
    precisions, network, whole = [], [], []
    for _, engine, device in columns:
        precisions.append(default_precision(device, model, engine=engine))
        network.append(vidsr_settings_model_only(model_name, clip, frames, engine, device)[0].fps)
        device_name = "cpu" if device.type == "cpu" else f"vulkan:{device.index}"
        fps, _ = vidsr_run(clip, folder / "engines.mp4.out.mp4", model_name, engine=engine, device=device_name)
        whole.append(fps)
    # auto's measurement, timed here once; the render below reuses it (once per process, as vidsr)
    started = time.perf_counter()
    torch_precision = choose_precision("auto", select_device("auto"), model)
    choice = choose_engine("auto", "auto", model, precision=torch_precision)
    probe = time.perf_counter() - started
    auto_fps, _ = vidsr_run(clip, folder / "engines-auto.mp4", model_name)
    said = f"{choice.engine} on {choice.device}" + (f" ({choice.reason})" if choice.reason else "")
    return EngineRows(
        model_name, f"{width}x{height}", cpu_as_seen(), naive, [c[0] for c in columns],
        precisions, network, whole, said, auto_fps, probe,
    )  # fmt: skip


def print_engine_rows(runs: list[EngineRows], frames: int) -> None:
    """Each model's rows from each process (as this CPU is, emulated without AVX-512) one under the other."""
    for model_name in dict.fromkeys(r.model for r in runs):
        for rows in (r for r in runs if r.model == model_name):
            print(f"\n{rows.model} at {rows.size} -> x4, {frames} frames; CPU as torch sees it: {rows.cpu}")
            print(
                f"  naive loop (Real-ESRGAN's video script's way, torch fp32 frame by frame): {rows.naive_fps:.2f} fps"
            )
            print(f"{'':<34}" + "".join(f"{label:>16}" for label in rows.labels) + f"{'auto':>16}")
            print(f"{'  precision':<34}" + "".join(f"{p:>16}" for p in rows.precisions))
            print(f"{'  model only fps':<34}" + "".join(f"{fps:>16.2f}" for fps in rows.network_fps))
            whole = [*rows.whole_fps, rows.auto_fps]
            print(f"{'  end to end fps':<34}" + "".join(f"{fps:>16.2f}" for fps in whole))
            print(
                f"{'  end to end over the naive loop':<34}"
                + "".join(f"{fps / rows.naive_fps:>15.2f}x" for fps in whole)
            )
            print(f"  auto chose {rows.auto}; its measurement took {rows.auto_probe_seconds:.2f} s, once per process")


def engine_table(
    cases: list[tuple[str, int, int]], folder: Path, *, frames: int, software_vulkan: bool, emulate_avx2: bool
) -> None:
    """The engine table for each (model, width, height), in this process; with ``emulate_avx2``
    also in a child process on this CPU emulated without AVX-512, bf16 and AMX (bench/avx2_cpu.c),
    each model's rows from both printed together."""
    print(f"\nEngines; CPU: {cpu_name()}, load average {os.getloadavg()[0]:.1f} at the start")
    for line in describe_vulkan_devices():
        print(f"  {line}")
    runs: list[EngineRows] = []
    for model_name, width, height in cases:
        runs.append(
            engine_rows(model_name, folder, width=width, height=height, frames=frames, software_vulkan=software_vulkan)
        )
        if emulate_avx2:
            runs.append(emulated_engine_rows(model_name, width, height, frames, folder))
        print_engine_rows(runs[-1 - emulate_avx2 :], frames)
    print(f"  load average {os.getloadavg()[0]:.1f} at the end")


def emulated_engine_rows(model_name: str, width: int, height: int, frames: int, folder: Path) -> EngineRows:
    """``engine_rows`` in a child process whose CPU has no AVX-512, bf16 or AMX: CPUID answered by
    bench/avx2_cpu.c (LD_PRELOAD), for torch, oneDNN and ncnn alike."""
    library = folder / "avx2_cpu.so"
    if not library.exists():
        source = Path(__file__).with_name("avx2_cpu.c")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    result = folder / f"emulated-{model_name}.json"
    environment = {
        **os.environ,
        "LD_PRELOAD": str(library),
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD",
    }
    command = [
        sys.executable, __file__, "--engine-rows-json", str(result), "--model", model_name,
        "--size", f"{width}x{height}", "--frames", str(frames),
    ]  # fmt: skip
    subprocess.run(command, env=environment, check=True)
    rows = EngineRows(**json.loads(result.read_text()))
    return dataclasses.replace(rows, cpu=f"emulated without AVX-512/AMX: {rows.cpu}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--rss-size", default="160x90", help="input size of the peak-RSS renders")
    parser.add_argument("--rss-model", default="realesr-animevideov3", help="model of the peak-RSS renders")
    parser.add_argument("--engines", action="store_true", help="add the engine table (every embedded model)")
    parser.add_argument("--quick", action="store_true", help="with --engines: that table alone, 48x32, 4 frames")
    parser.add_argument(
        "--engines-only", action="store_true", help="with --engines: that table alone, at --engine-case sizes"
    )
    parser.add_argument(
        "--engine-case",
        action="append",
        metavar="MODEL:WxH",
        help="a model and input size for the engine table (repeatable; default: every embedded model at --size)",
    )
    parser.add_argument(
        "--emulate-avx2",
        action="store_true",
        help="with --engines: each model's rows again on this CPU emulated without AVX-512, bf16 and AMX",
    )
    parser.add_argument("--llvmpipe", action="store_true", help="with --engines: also ncnn on software Vulkan")
    parser.add_argument("--engine-rows-json", type=Path, help=argparse.SUPPRESS)  # the emulated child's answer
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    keep_large_buffers_in_heap()  # as vidsr does; the baselines get the same allocator
    if args.engine_rows_json:
        with tempfile.TemporaryDirectory() as folder_name:
            rows = engine_rows(
                args.model, Path(folder_name), width=width, height=height, frames=args.frames, software_vulkan=False
            )
        args.engine_rows_json.write_text(json.dumps(dataclasses.asdict(rows)))
        return
    cases = [
        (name, *(int(v) for v in size.split("x")))
        for name, size in (case.split(":") for case in args.engine_case or [f"{m}:{args.size}" for m in EMBEDDED])
    ]
    if args.engines and (args.quick or args.engines_only):
        with tempfile.TemporaryDirectory() as folder_name:
            if args.quick:
                cases = [(name, 48, 32) for name in EMBEDDED]
            engine_table(
                cases,  # type: ignore[arg-type]
                Path(folder_name),
                frames=4 if args.quick else args.frames,
                software_vulkan=args.quick or args.llvmpipe,
                emulate_avx2=args.emulate_avx2,
            )
        return
    sample_frames = max(4, args.frames // 4)

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        clip = make_input(folder / "input.mp4", width=width, height=height, frames=args.frames)
        rows: list[tuple[str, float, str]] = []
        for name, settings in model_variants():
            try:
                timed, compile_seconds = model_only(args.model, clip, sample_frames, **settings)
            except Exception as exc:  # torch.compile needs a C++ compiler; report, do not stop
                rows.append((f"model: {name}", float("nan"), f"unavailable: {type(exc).__name__}"))
                continue
            rows.append(
                (f"model: {name}", timed.fps, f"compiled in {compile_seconds:.1f} s" if compile_seconds else "")
            )
        network, colour_in, colour_out = vidsr_settings_model_only(args.model, clip, sample_frames)
        rows.append(("model: as vidsr runs it (its defaults)", network.fps, ""))
        naive = naive_loop_fps(clip, folder / "naive.mp4", args.model)
        rows.append(("naive per-frame loop (the reference's way)", naive, ""))
        end_to_end, encoder = max(vidsr_run(clip, folder / "vidsr.mp4", args.model) for _ in range(2))
        rows.append((f"vidsr end to end, defaults ({encoder})", end_to_end, ""))
        medium, _ = vidsr_run(clip, folder / "medium.mp4", args.model, preset="medium")
        rows.append(("vidsr end to end, --preset medium", medium, ""))

        baseline = rows[0][1]
        print(
            f"{args.model}, {width}x{height} -> x4, {torch.get_num_threads()} torch threads, "
            f"native bf16: {cpu_has_native_bf16()}"
        )
        print(f"{'':<52}{'fps':>8}{'x baseline':>12}")
        for name, fps, remark in rows:
            print(f"{name:<52}{fps:8.2f}{fps / baseline:12.2f}  {remark}")
        print(f"vidsr over the naive loop: {end_to_end / naive:.2f}x")
        flops = arithmetic_per_output_pixel(resolve_model(args.model)) * width * height * 16
        best = max(fps for name, fps, _ in rows if name.startswith("model:") and not math.isnan(fps))
        print(
            f"model arithmetic: {flops / 1e9:.0f} GFLOP a frame; {network.fps * flops / 1e9:.0f} GFLOP/s "
            f"as vidsr runs it, best {best * flops / 1e9:.0f}"
        )
        print(
            f"efficiency (end to end / model only, both at vidsr's settings): defaults {end_to_end / network.fps:.2f}, "
            f"--preset medium {medium / network.fps:.2f}"
        )

        print("CPU budget of one frame (core-ms) and the efficiency it allows when every stage shares the cores:")
        others = colour_in.core_ms + colour_out.core_ms
        print(
            f"  network {network.core_ms:.1f}; colour conversion {others:.1f} "
            f"(of it, to the output's YUV {colour_out.core_ms:.1f})"
        )
        for preset in ("medium", "faster", "veryfast", "ultrafast"):
            encoder_ms = encoder_core_ms(folder / "vidsr.mp4", preset)
            ceiling = network.core_ms / (network.core_ms + others + encoder_ms)
            print(f"  x264 {preset:<9} {encoder_ms:5.1f}  -> at most {ceiling:.2f}")

        rss_width, rss_height = (int(v) for v in args.rss_size.split("x"))
        short = make_input(folder / "short.mp4", width=rss_width, height=rss_height, frames=48)
        long = make_input(folder / "long.mp4", width=rss_width, height=rss_height, frames=480)
        short_rss = peak_rss_mb(short, folder / "short out.mp4", args.rss_model)
        long_rss = peak_rss_mb(long, folder / "long out.mp4", args.rss_model)
        print(
            f"peak RSS, {args.rss_model} at {args.rss_size}: "
            f"48 frames {short_rss:.0f} MB, 480 frames {long_rss:.0f} MB "
            f"({long_rss / short_rss:.3f}x; target within 5 %)"
        )
        if args.engines:
            engine_table(
                cases,  # type: ignore[arg-type]
                folder,
                frames=sample_frames,
                software_vulkan=args.llvmpipe,
                emulate_avx2=args.emulate_avx2,
            )


if __name__ == "__main__":
    main()
