"""A GPU's first five minutes: does vidsr compute the right frames on this device, and how fast?

One command, no network, media it makes itself. Prints a table per section and writes them as JSON:

  parity     each embedded model on the device in its default precision against the CPU in fp32,
             on a synthetic frame with outlines, gradients, texture and grain (goal: 45 dB in 8 bits);
             below the goal, where the error enters the RRDB trunk (as bench/precision.py --trace)
  render     whole renders on the device, checked as the tests check a CPU one: every frame at its
             source timestamp, audio packets bit-exact, colour tags and colours, 10-bit kept
  memory     a GPU capped (torch.cuda.set_per_process_memory_fraction) below what a 1080p
             realesrgan-x4plus frame needs: the batch still completes, split then tiled, within 50 dB
             of untiled; on the CPU a child process whose address space is capped likewise
  speed      model-only and end-to-end fps per model and size; batch 1/2/4, fp16 (bf16 on a CPU) and
             fp32, compile on and off; the network's GPU busy time over wall time (CUDA events), and
             where the rest goes (decoder and encoder alone); NVENC against libx264 where there is NVENC
  cluster    --cluster local, one worker per GPU, gives what one process gives
  vulkan     the same on Vulkan devices, where this vidsr has an ncnn engine
  published  figures others published for these models, with their GPU and source: never ours

What a section cannot do here it skips, saying why in one line. A check that fails (a wrong frame, a
lost audio packet, a render that does not complete) makes the exit code 1; a parity under the goal is
reported with its trace and counts as failed too.

    python bench/device_check.py                       # the first GPU (or MPS, or the CPU)
    python bench/device_check.py --device cuda:1 --json gpu1.json
    python bench/device_check.py --quick               # tiny sizes, one model: CI, a CPU, a first look
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np
import torch
from fidelity import CPU, THRESHOLD_DB, fidelity, realistic_picture, stage_errors, to_tensor, where_error_enters
from precision import cpu_name
from rich.console import Console
from rich.table import Table

from vidsr.errors import VidsrError
from vidsr.media import EncodeSettings, VideoWriter, decode_batches, probe
from vidsr.models import EMBEDDED, LoadedModel, choose_model, resolve_model
from vidsr.models.arch import RRDBNet
from vidsr.planes import ColourSpec, OutputBatch
from vidsr.render import InProcessBackend, InProcessExecutor, UpscaleJob, upscale_video
from vidsr.upscale import (
    DTYPES,
    Precision,
    UpscaleOptions,
    Upscaler,
    arithmetic_per_output_pixel,
    cpu_has_native_bf16,
    select_device,
)
from vidsr.upscale.memory import activation_bytes_per_pixel, memory_need, tiled_need
from vidsr.upscale.policy import default_precision
from vidsr.upscale.vulkan import NCNN_INSTALL, VulkanDevice, fp16_storage_works, ncnn_installed, vulkan_devices

ROOT = Path(__file__).resolve().parent.parent
TILED_DB = 50.0  # what tiles must keep of the untiled result (README: "within 50 dB")
QUICK_MODEL = "realesr-animevideov3"
SIZES = {"480p": (640, 480), "720p": (1280, 720), "1080p": (1920, 1080)}  # the published anchors' sizes
CPU_SIZES = {"180p": (320, 180), "360p": (640, 360)}  # what a CPU finishes in minutes
QUICK_SIZES = {"36p": (64, 36), "72p": (128, 72)}
CPU_ROOM_BYTES = 250 * 2**20  # what the capped child may map beyond what it has mapped once warmed up
CPU_CAPPED_FRAME = (384, 288)  # needs about 400 MB whole through capped_cpu's network: over the room
console = Console(highlight=False)
if not console.is_terminal:
    console.width = 160  # a log or CI: tables whole rather than wrapped at 80 columns


def test_media() -> ModuleType:
    """tests/media.py: the tests' own clip writer and readers, so a render is read here as they read it."""
    sys.path.insert(0, str(ROOT / "tests"))
    import media

    return media


media = test_media()


# ---------------------------------------------------------------------------- the report


@dataclass
class Section:
    """One part of the report: a table, lines under it, a skip reason or the checks that failed."""

    name: str
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line each: what did not run here, and why
    failed: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def skip(self, line: str) -> None:
        self.skipped.append(line)

    def fail(self, line: str) -> None:
        self.failed.append(line)

    def show(self) -> None:
        console.rule(f"[bold]{self.title}")
        if self.rows:
            table = Table(*self.columns, show_edge=False, pad_edge=False)
            for row in self.rows:
                table.add_row(*(_cell(row.get(column)) for column in self.columns))
            console.print(table)
        for line in self.notes:
            console.print(f"  {line}")
        for line in self.skipped:
            console.print(f"  [yellow]skipped:[/] {line}")
        for line in self.failed:
            console.print(f"  [red]FAILED:[/] {line}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


@contextmanager
def guarded(section: Section, what: str) -> Iterator[None]:
    """A part that raises is a failed check with its reason, and the rest of the run goes on."""
    try:
        yield
    except Exception as error:  # the check reports every failure; it must not stop at the first
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        section.fail(f"{what}: {type(error).__name__}: {reason[:300]}")
        if os.environ.get("VIDSR_CHECK_TRACEBACKS"):
            traceback.print_exc()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def fresh_model(name: str) -> LoadedModel:
    """The model with a module of its own: an Upscaler moves its module in place."""
    model = resolve_model(name)
    return dataclasses.replace(model, module=copy.deepcopy(model.module))


def machine(device: torch.device) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "pyav": av.__version__,
        "load_average": round(os.getloadavg()[0], 1),  # a shared machine's speeds are worth less: say so
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        facts |= {
            "gpu": properties.name,
            "gpu_memory_gb": round(properties.total_memory / 1e9, 1),
            "compute_capability": f"{properties.major}.{properties.minor}",
            "gpus": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return facts


# ---------------------------------------------------------------------------- parity


def parity(device: torch.device, models: list[str], quick: bool) -> Section:
    section = Section(
        "parity",
        f"Parity: each model on {device} in its default precision against the CPU in fp32 "
        f"(goal {THRESHOLD_DB:.0f} dB in 8 bits)",
        ["model", "device", "precision", "8-bit dB", "unrounded dB", "max levels", "verdict"],
    )
    width, height = (96, 64) if quick else (320, 180)
    rgb = to_tensor(realistic_picture(width, height))
    section.notes.append(f"frame: {width}x{height}, outlines, gradients, a fine weave, film grain and thin lines")
    for name in models:
        with guarded(section, f"parity of {name}"):
            precision = default_precision(device, resolve_model(name))
            reference = run_upscaler(fresh_model(name), CPU, "fp32", rgb)
            if device.type == "cpu" and precision == "fp32":
                output = reference  # the same computation: nothing to compare
            else:
                output = run_upscaler(fresh_model(name), device, precision, rgb)
            exact, psnr8, largest = fidelity(reference, output)
            holds = psnr8 >= THRESHOLD_DB
            section.add(
                model=name,
                device=str(device),
                precision=precision,
                **{"8-bit dB": psnr8, "unrounded dB": exact, "max levels": largest},
                verdict="holds" if holds else "BELOW GOAL",
            )
            if not holds:
                section.fail(f"{name} in {precision} on {device}: {psnr8:.1f} dB, under {THRESHOLD_DB:.0f}")
                trace_error(section, name, rgb, DTYPES[precision], device)
    return section


def run_upscaler(model: LoadedModel, device: torch.device, precision: Precision, rgb: torch.Tensor) -> torch.Tensor:
    upscaler = Upscaler(
        model, device=device, precision=precision, engine="ncnn" if device.type == "vulkan" else "torch"
    )
    with torch.inference_mode():
        return upscaler.upscale_rgb(rgb.to(upscaler.device)).cpu()  # a Vulkan device's frames stay on the CPU


def trace_error(section: Section, name: str, rgb: torch.Tensor, dtype: torch.dtype, device: torch.device) -> None:
    """Where the reduced precision's error enters an RRDBNet, stage by stage (bench/precision.py --trace)."""
    module = resolve_model(name).module
    if not isinstance(module, RRDBNet):
        section.notes.append(f"{name}: not an RRDBNet; no stage trace")
        return
    rows = stage_errors(module, rgb, dtype, device)
    section.notes.append(f"{name}: {where_error_enters(rows)}")
    section.notes.append("   stage       fp32 rms  added here    carried   peak |x|")
    section.notes += [
        f"   {r.stage:10} {r.fp32_rms:9.3f} {r.added:11.2e} {r.carried:10.2e} {r.peak:10.3g}" for r in rows
    ]
    section.rows[-1]["trace"] = [dataclasses.asdict(row) for row in rows]


# ---------------------------------------------------------------------------- whole renders


OptionsFor = Callable[[str], UpscaleOptions]  # a model (name or path) to the options a render uses


def render_check(
    device: torch.device, work: Path, quick: bool, options_for: OptionsFor | None = None, where: str = ""
) -> Section:
    section = Section(
        "render",
        f"Whole renders on {where or device}, checked as the tests check a CPU one",
        ["clip", "frames", "timestamps", "size", "audio", "colour tags", "colour dB", "depth", "seconds"],
    )
    options_for = options_for or (lambda model: UpscaleOptions(models=(model,), device=str(device)))
    nearest = media.nearest_compact_model(work / "nearest-x4.safetensors")
    section.notes.append(
        "model: a real SRVGGNetCompact whose residual branch is zero (a nearest-neighbour x4), so the "
        "output downscaled back must match the source: colour errors show"
    )
    size = (64, 48) if quick else (160, 96)
    clips = {
        "8-bit mp4, AAC": (media.ClipSpec(width=size[0], height=size[1]), ".mp4"),
        "10-bit mkv, 2 audio": (
            media.ClipSpec(width=size[0], height=size[1], pix_fmt="yuv420p10le", audio=["aac", "libopus"]),
            ".mkv",
        ),
        "VFR mp4, BT.601 full": (
            media.ClipSpec(width=size[0], height=size[1], vfr=True, matrix="bt601", full_range=True),
            ".mp4",
        ),
    }
    for label, (spec, suffix) in clips.items():
        with guarded(section, f"render of {label}"):
            source = media.write_clip(work / f"source-{len(section.rows)}{suffix}", spec)
            output = work / f"rendered-{len(section.rows)}{suffix}"
            job = UpscaleJob(input=source, output=output, upscale=options_for(str(nearest)), segment_seconds=0.4)
            started = time.perf_counter()
            upscale_video(job)
            check_render(
                section, label, source, output, deep="10" in spec.pix_fmt, seconds=time.perf_counter() - started
            )
    return section


def check_render(section: Section, label: str, source: Path, output: Path, *, deep: bool, seconds: float) -> None:
    before, after = media.decode_video(source), media.decode_video(output)
    frames_ok = len(after.times) == len(before.times)
    times_ok = frames_ok and max(abs(a - b) for a, b in zip(after.times, before.times)) < 1e-6
    size_ok = (after.width, after.height) == (before.width * 4, before.height * 4)
    audio_ok = media.audio_packets(output) == media.audio_packets(source)
    tags_ok = (after.colorspace, after.color_range) == (before.colorspace, before.color_range)
    colour_db = min(media.psnr(media.area_downscale(o, 4), s) for s, o in zip(before.frames, after.frames))
    depth_ok = not deep or (after.pix_fmt == "yuv420p10le" and keeps_ten_bits(output))
    section.add(
        clip=label,
        frames=f"{len(after.times)}/{len(before.times)}",
        timestamps="same" if times_ok else "DIFFER",
        size=f"{after.width}x{after.height}",
        audio="bit-exact" if audio_ok else "DIFFERS",
        **{"colour tags": "kept" if tags_ok else "CHANGED", "colour dB": colour_db},
        depth=(after.pix_fmt if depth_ok else f"LOST ({after.pix_fmt})") if deep else after.pix_fmt,
        seconds=seconds,
    )
    checks = {
        "every frame": frames_ok,
        "timestamps": times_ok,
        "size": size_ok,
        "audio": audio_ok,
        "colour tags": tags_ok,
        "colours (> 33 dB)": colour_db > 33.0,
        "10 bits": depth_ok,
    }
    for what, ok in checks.items():
        if not ok:
            section.fail(f"{label}: {what}")


def keeps_ten_bits(path: Path) -> bool:
    """A 10-bit output holds values between the 8-bit steps (an 8-bit detour leaves multiples of 4)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        luma = np.frombuffer(frame.planes[0], np.uint16).reshape(-1, frame.planes[0].line_size // 2)
    return bool(np.any(luma[: frame.height, : frame.width] % 4 != 0))


# ---------------------------------------------------------------------------- out of memory


def memory_check(device: torch.device, work: Path, quick: bool) -> Section:
    section = Section(
        "memory",
        f"Out of memory on {device}: the frames still come out, within {TILED_DB:.0f} dB of untiled",
        ["model", "frames", "limit", "whole needs", "what vidsr did", "dB vs untiled", "seconds"],
    )
    if device.type == "cuda":
        with guarded(section, "capped GPU"):
            capped_gpu(section, device, quick)
    elif device.type == "cpu":
        with guarded(section, "capped CPU"):
            capped_cpu(section, work)
    else:
        section.skip(f"{device.type} has no per-process memory cap to set")
    return section


def capped_gpu(section: Section, device: torch.device, quick: bool) -> None:
    """Two frames at once under a cap below what one needs whole: the batch is split, then tiled."""
    name = "realesrgan-x4plus"
    width, height = (640, 480) if quick else SIZES["1080p"]
    model = resolve_model(name)
    precision = default_precision(device, model)
    per_pixel = activation_bytes_per_pixel(model, DTYPES[precision])
    whole = memory_need(width, height, batch=1, scale=4, per_pixel=per_pixel).total
    tiled = tiled_need(width, height, 128, batch=1, scale=4, per_pixel=per_pixel, overlap=32)
    total = torch.cuda.get_device_properties(device).total_memory
    limit = max(0.4 * whole, 3 * tiled)
    frames = torch.stack([to_tensor(realistic_picture(width, height, seed=seed))[0] for seed in (1, 2)])
    told: list[str] = []
    gc.collect()  # the earlier sections' networks and their cached blocks would count against the cap
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
    try:
        started = time.perf_counter()
        capped = Upscaler(fresh_model(name), device=device, precision=precision, warn=told.append)
        with torch.inference_mode():
            result = capped.upscale_rgb(frames.to(device)).cpu()
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated(device)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    reference_told: list[str] = []
    untiled = Upscaler(fresh_model(name), device=device, precision=precision, warn=reference_told.append)
    with torch.inference_mode():
        references = [untiled.upscale_rgb(frame[None].to(device)).cpu() for frame in frames]
    worst = min(fidelity(reference, result[index : index + 1])[1] for index, reference in enumerate(references))
    section.add(
        model=f"{name} {precision}",
        frames=f"2 x {width}x{height}",
        limit=f"{limit / 1e9:.1f} GB" + (" (all the GPU has)" if limit >= total else ""),
        **{"whole needs": f"{whole / 1e9:.1f} GB", "dB vs untiled": worst, "seconds": seconds},
        **{"what vidsr did": f"batch of 2 split; {told[0] if told else 'each frame whole'}; peak {peak / 1e9:.2f} GB"},
    )
    if reference_told:
        section.notes.append(f"the reference itself was tiled on this GPU: {reference_told[0]}")
    if worst < TILED_DB:
        section.fail(f"tiled under the cap: {worst:.1f} dB of untiled, under {TILED_DB:.0f}")


def capped_cpu(section: Section, work: Path) -> None:
    """A child process caps its own address space, as tests/test_memory.py does, and upscales a
    frame that does not fit whole under the cap; its result is compared with this process's.

    The network is a real RRDBNet small enough for seconds (16 features, one block, random
    weights): its x4 stages make a 384x288 frame need about 400 MB whole, and the blend of its
    tiles about 30 MB. An embedded model's whole frame needs only about twice its tiles' blend,
    too narrow a gap for an address-space cap to fall in reliably."""
    model_path = work / "tiny-rrdb-x4.pth"
    torch.manual_seed(5)
    torch.save({"params_ema": RRDBNet(num_feat=16, num_block=1, num_grow_ch=8, scale=4).state_dict()}, model_path)
    width, height = CPU_CAPPED_FRAME
    picture = work / "capped-frame.npy"
    np.save(picture, realistic_picture(width, height, seed=3))
    result_path = work / "capped-result.npy"
    started = time.perf_counter()
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--capped-child",
            str(model_path),
            str(picture),
            str(result_path),
            str(CPU_ROOM_BYTES),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # one thread: a second spins at barriers on a shared CPU
    )
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        section.fail(f"the capped child exited {child.returncode}: {child.stderr.strip().splitlines()[-1:]}")
        return
    report = json.loads(child.stdout.strip().splitlines()[-1])
    reference = run_upscaler(choose_model((str(model_path),), None), CPU, "fp32", to_tensor(np.load(picture)))
    worst = fidelity(reference, torch.from_numpy(np.load(result_path)))[1]
    section.add(
        model="RRDBNet 16 features, 1 block (random) fp32",
        frames=f"1 x {width}x{height}",
        limit=f"{CPU_ROOM_BYTES / 2**20:.0f} MiB address space",
        **{"whole needs": f"{report['whole'] / 2**20:.0f} MiB", "dB vs untiled": worst, "seconds": seconds},
        **{"what vidsr did": report["told"][0] if report["told"] else "ran whole"},
    )
    if not report["told"]:
        section.fail("the capped frame was not tiled: the cap did not bite")
    if worst < TILED_DB:
        section.fail(f"tiled under the cap: {worst:.1f} dB of untiled, under {TILED_DB:.0f}")


def capped_child(model_path: str, picture: str, result: str, room: str) -> None:
    """The child of ``capped_cpu``: warmed up, it caps its address space at what it maps plus ``room``."""
    model = choose_model((model_path,), None)
    told: list[str] = []
    upscaler = Upscaler(model, device=CPU, precision="fp32", warn=told.append)
    rgb = to_tensor(np.load(picture))
    with torch.inference_mode():
        upscaler.upscale_rgb(torch.rand(1, 3, 16, 16))  # warm-up: the kernels, the measuring pass
        per_pixel = activation_bytes_per_pixel(model)
        whole = memory_need(rgb.shape[-1], rgb.shape[-2], batch=1, scale=model.scale, per_pixel=per_pixel).total
        status = Path("/proc/self/status").read_text().splitlines()
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (mapped + int(room), resource.RLIM_INFINITY))
        output = upscaler.upscale_rgb(rgb)
    np.save(result, output.numpy())
    print(json.dumps({"told": told, "whole": whole}))


# ---------------------------------------------------------------------------- speed


@dataclass
class Budget:
    """Seconds left for the speed section; a measurement estimated to overrun it is skipped and said."""

    seconds: float
    per_measurement: float
    started: float = field(default_factory=time.perf_counter)
    flop_rate: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, precision) -> FLOP/s seen

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.started)

    def estimate(self, model: str, precision: str, flops: float) -> float | None:
        # A model not measured yet is estimated at the slowest rate seen (another model's, in this
        # precision where there is one): cautious.
        same = [rate for (_, seen), rate in self.flop_rate.items() if seen == precision]
        rate = self.flop_rate.get((model, precision)) or min(same or self.flop_rate.values(), default=0.0)
        return flops / rate if rate else None

    def too_long(self, model: str, precision: str, flops: float) -> str | None:
        estimate = self.estimate(model, precision, flops)
        if estimate is None:
            return None
        if estimate > self.per_measurement:
            return f"about {estimate:.0f} s, over the {self.per_measurement:.0f} s a measurement may take"
        if estimate > self.left():
            return f"about {estimate:.0f} s, more than the {max(self.left(), 0):.0f} s left"
        return None


@dataclass(frozen=True)
class Timing:
    frames: int
    wall: float  # seconds
    busy: float  # seconds the device spent between the network calls' start and end (CUDA events); CPU: wall
    told: str  # what the Upscaler said (tiles)
    events: bool  # whether ``busy`` came from CUDA events

    @property
    def fps(self) -> float:
        return self.frames / self.wall


def busy_share(timing: Timing) -> str:
    """The GPU's busy share of the wall time; on a CPU there are no events to tell it by."""
    return f"{timing.busy / timing.wall:.0%}" if timing.events else "n/a"


def time_network(
    name: str,
    device: torch.device,
    size: tuple[int, int],
    *,
    batch: int,
    precision: Precision,
    compile: bool = False,
    seconds: float,
) -> tuple[Timing, float]:
    """Model-only: ``upscale_rgb`` on frames already on the device, as vidsr runs the network (its
    layout, its fp32 layers, its tiles where memory needs them). Returns the timing and the seconds
    the first call took (compiling, cuDNN's first choices)."""
    told: list[str] = []
    upscaler = Upscaler(fresh_model(name), device=device, precision=precision, compile=compile, warn=told.append)
    width, height = size
    frames = torch.stack([to_tensor(realistic_picture(width, height, seed=seed))[0] for seed in range(batch)])
    frames = frames.to(device)
    with torch.inference_mode():
        started = time.perf_counter()
        upscaler.upscale_rgb(frames)
        synchronize(device)
        first_call = time.perf_counter() - started
        events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        calls = 0
        started = time.perf_counter()
        while calls == 0 or (time.perf_counter() - started < seconds and calls < 50):
            if device.type == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record(torch.cuda.current_stream(device))
                upscaler.upscale_rgb(frames)
                end.record(torch.cuda.current_stream(device))
                events.append((begin, end))
                end.synchronize()  # the loop's clock must see the GPU's progress, not only the launches
            else:
                upscaler.upscale_rgb(frames)
                synchronize(device)
            calls += 1
        synchronize(device)
        wall = time.perf_counter() - started
    busy = sum(begin.elapsed_time(end) for begin, end in events) / 1000 if events else wall
    return Timing(calls * batch, wall, busy, told[0] if told else "", bool(events)), first_call


class MeteredBackend(InProcessBackend):
    """This process, with the seconds the network stage spends (CUDA events on a GPU) counted.
    The renderer is vidsr's own; only its ``upscale`` is wrapped, to record around each call."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.stage_seconds = 0.0

    def executor(self, plan: Any, model: LoadedModel, *, warn: Any, on_activity: Any) -> InProcessExecutor:
        executor = InProcessExecutor(plan, model, warn=warn, on_activity=on_activity)
        upscaler: Upscaler = executor._renderer.upscaler  # noqa: SLF001 - a bench looks inside
        upscale = upscaler.upscale

        def metered(batch: Any, reuse: Any = None) -> OutputBatch:
            started = time.perf_counter()
            if self.device.type == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record(torch.cuda.current_stream(self.device))
                result = upscale(batch, reuse)
                end.record(torch.cuda.current_stream(self.device))
                self.events.append((begin, end))
            else:
                result = upscale(batch, reuse)
            self.stage_seconds += time.perf_counter() - started
            return result

        upscaler.upscale = metered  # type: ignore[method-assign]
        return executor

    def gpu_busy(self) -> float | None:
        if not self.events:
            return None
        synchronize(self.device)
        return sum(begin.elapsed_time(end) for begin, end in self.events) / 1000


def make_clip(path: Path, size: tuple[int, int], frames: int) -> Path:
    """An 8-bit H.264 clip of moving realistic pictures (a pan over a larger frame), video only."""
    width, height = size
    large = realistic_picture(width + frames * 2, height + frames, seed=7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "18", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1
        for index in range(frames):
            crop = np.ascontiguousarray(large[index : index + height, 2 * index : 2 * index + width])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(format="yuv420p", dst_colorspace=1)
            frame.pts, frame.time_base = index, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decoder_fps(clip: Path) -> float:
    info = probe(clip)
    started = time.perf_counter()
    frames = sum(len(batch) for batch in decode_batches(info, batch_size=4))
    return frames / (time.perf_counter() - started)


def encoder_fps(clip: Path, output: Path, codec: str, preset: str, scale: int = 4, frames: int = 24) -> float:
    """The encoder alone, on the clip's first ``frames`` enlarged (bicubic) to the output size
    (a few: 4K frames held in memory are 12 MB each)."""
    info = probe(clip)
    width, height = info.width * scale, info.height * scale
    with av.open(str(clip)) as container:
        decoded = [f for _, f in zip(range(frames), container.decode(video=0))]
    planes = [split_planes(f.reformat(width=width, height=height, format="yuv420p")) for f in decoded]
    writer = VideoWriter(
        output,
        width=width,
        height=height,
        time_base=info.time_base,
        frame_rate=info.frame_rate,
        settings=EncodeSettings(codec=codec, preset=preset),
        pix_fmt="yuv420p",
        colour=ColourSpec(matrix="bt709", full_range=False),
    )
    started = time.perf_counter()
    for index, frame_planes in enumerate(planes):
        writer.write(OutputBatch(planes=tuple(p[None] for p in frame_planes), pts=(index,), first_index=index))
    writer.close()
    return len(planes) / (time.perf_counter() - started)


def split_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height, width = frame.height, frame.width
    whole = frame.to_ndarray()  # yuv420p: Y rows, then U and V rows of half width, packed
    y = whole[:height]
    chroma = whole[height:].reshape(2, height // 2, width // 2)
    return y, chroma[0], chroma[1]


def time_render(
    name: str, device: torch.device, clip: Path, output: Path, *, codec: str = "libx264", batch: int = 0
) -> tuple[float, float | None, float, str]:
    """End to end through vidsr's render (decode, network, encode, segments, remux): fps, the GPU's
    busy share of the wall time, the network stage's share, and the encoder used."""
    backend = MeteredBackend(device)
    job = UpscaleJob(
        input=clip,
        output=output,
        upscale=UpscaleOptions(models=(name,), device=str(device)),
        batch=batch,
        compile=False,
        encode=EncodeSettings(codec=codec),
        force=True,
    )
    started = time.perf_counter()
    result = upscale_video(job, backend=backend)
    wall = time.perf_counter() - started
    busy = backend.gpu_busy()
    return (
        result.frames / wall,
        (busy / wall if busy is not None else None),
        backend.stage_seconds / wall,
        result.encoder,
    )


def speed(device: torch.device, work: Path, models: list[str], quick: bool) -> Section:
    section = Section(
        "speed",
        f"Speed on {device}: model-only and end to end, measured side by side in this run",
        ["model", "size", "batch", "precision", "compile", "model fps", "busy", "end-to-end fps", "stage", "note"],
    )
    gpu = device.type == "cuda"
    sizes = QUICK_SIZES if quick else SIZES if device.type != "cpu" else CPU_SIZES
    budget = Budget(seconds=60 if quick else 200, per_measurement=20 if quick else 45)
    seconds = 0.5 if quick else 2.0
    section.notes.append(
        "model fps: upscale_rgb on frames already on the device; busy: the device's time inside the network "
        "calls over wall time (CUDA events)"
    )
    section.notes.append(
        "end-to-end: vidsr's whole render of a clip (decode, colour, network, copies, encode, remux); "
        "stage: the network stage's share of its wall time (the rest: waiting for the decoder or encoder)"
    )
    reduced: Precision = "fp16" if device.type in ("cuda", "mps") else "bf16"
    # The light model first: its numbers are cheap, and its speed bounds the heavy ones' estimates.
    arithmetic_of = {name: arithmetic_per_output_pixel(resolve_model(name)) for name in models}
    for order, name in enumerate(sorted(models, key=arithmetic_of.__getitem__)):
        model = resolve_model(name)
        arithmetic = arithmetic_of[name]
        precision = default_precision(device, model)
        batch = 4 if gpu else 1
        for label, size in sizes.items():
            flops = arithmetic * size[0] * size[1] * 16
            if reason := budget.too_long(name, precision, flops * batch * 2):
                section.skip(f"{name} at {label}: {reason}")
                continue
            with guarded(section, f"{name} at {label}"):
                timing, _ = time_network(name, device, size, batch=batch, precision=precision, seconds=seconds)
                budget.flop_rate[(name, precision)] = flops * timing.fps
                row = dict(model=name, size=label, batch=batch, precision=precision, compile="off")
                row |= {"model fps": timing.fps, "busy": busy_share(timing), "note": timing.told}
                frames = max(8, min(96, round(timing.fps * (2 if quick else 6))))
                if reason := budget.too_long(name, precision, flops * frames * 1.5):
                    row["note"] = f"end to end skipped: {reason}"
                else:
                    clip = make_clip(work / f"speed-{name}-{label}.mp4", size, frames)
                    fps, busy, stage, encoder = time_render(name, device, clip, work / f"speed-{name}-{label}-out.mp4")
                    row |= {"end-to-end fps": fps, "stage": f"{stage:.0%}", "note": encoder}
                    if busy is not None:
                        row["busy"] = f"{row['busy']} / {busy:.0%} e2e"
                    decode = decoder_fps(clip)
                    encode = encoder_fps(clip, work / "encoder-alone.nut", "libx264", encoder.split()[-1])
                    section.notes.append(
                        f"{name} {label}: decoder alone {decode:.0f} fps, {encoder} alone {encode:.1f} fps, "
                        f"network alone {timing.fps:.1f} fps, all together {fps:.1f} fps"
                    )
                section.add(**row)
        if order == 0:
            levers(section, device, budget, reduced, quick, seconds)
    nvenc(section, device, work, quick)
    return section


def levers(
    section: Section, device: torch.device, budget: Budget, reduced: Precision, quick: bool, seconds: float
) -> None:
    """Batch 1/2/4 x reduced precision and fp32, and compile on and off, for the light model at one size."""
    name = QUICK_MODEL
    label, size = (
        ("72p", QUICK_SIZES["72p"])
        if quick
        else ("720p", SIZES["720p"])
        if device.type != "cpu"
        else ("180p", CPU_SIZES["180p"])
    )
    model = resolve_model(name)
    flops = arithmetic_per_output_pixel(model) * size[0] * size[1] * 16
    precisions: list[Precision] = ["fp32"]
    if device.type == "cpu" and not (cpu_has_native_bf16() and model.supports_bf16):
        section.skip("bf16: this CPU computes it by emulation, slower than fp32")
    elif (reduced == "fp16" and model.supports_half) or (reduced == "bf16" and model.supports_bf16):
        precisions.insert(0, reduced)
    for precision in precisions:
        for batch in (1, 2, 4):
            if reason := budget.too_long(name, precision, flops * batch * 3):
                section.skip(f"levers, {name} {label} batch {batch} {precision}: {reason}")
                continue
            with guarded(section, f"{name} batch {batch} {precision}"):
                timing, _ = time_network(name, device, size, batch=batch, precision=precision, seconds=seconds)
                section.add(
                    model=name,
                    size=label,
                    batch=batch,
                    precision=precision,
                    compile="off",
                    **{"model fps": timing.fps, "busy": busy_share(timing), "note": "lever"},
                )
    if quick:
        section.skip("compile on: torch.compile takes 30 s and more the first time (run without --quick)")
        return
    if budget.left() < 90:
        section.skip(f"compile on: {max(budget.left(), 0):.0f} s left of the speed budget; compiling takes 30-90 s")
        return
    precision = default_precision(device, model)
    batch = 4 if device.type == "cuda" else 1
    with guarded(section, f"{name} compiled"):
        timing, first_call = time_network(
            name, device, size, batch=batch, precision=precision, compile=True, seconds=seconds
        )
        section.add(
            model=name,
            size=label,
            batch=batch,
            precision=precision,
            compile="on",
            **{
                "model fps": timing.fps,
                "busy": busy_share(timing),
                "note": f"first call {first_call:.0f} s",
            },
        )


def nvenc(section: Section, device: torch.device, work: Path, quick: bool) -> None:
    if "h264_nvenc" not in av.codecs_available:
        section.skip("NVENC: this PyAV build has no h264_nvenc")
        return
    if device.type != "cuda":
        section.skip("NVENC: no NVIDIA GPU in use")
        return
    size = QUICK_SIZES["72p"] if quick else SIZES["720p"]
    clip = make_clip(work / "nvenc.mp4", size, 24 if quick else 72)
    for codec in ("libx264", "h264_nvenc"):
        with guarded(section, f"end to end with {codec}"):
            fps, busy, stage, encoder = time_render(QUICK_MODEL, device, clip, work / f"nvenc-{codec}.mp4", codec=codec)
            section.add(
                model=QUICK_MODEL,
                size="72p" if quick else "720p",
                batch=4,
                precision=default_precision(device, resolve_model(QUICK_MODEL)),
                compile="off",
                **{
                    "end-to-end fps": fps,
                    "busy": f"{busy:.0%} e2e" if busy is not None else "",
                    "stage": f"{stage:.0%}",
                },
                note=encoder,
            )


# ---------------------------------------------------------------------------- many devices


def cluster_check(device: torch.device, work: Path, quick: bool) -> Section:
    section = Section(
        "cluster",
        "--cluster local: one worker per GPU gives what one process gives",
        ["workers", "frames", "same frames", "same audio", "same bytes", "one process s", "cluster s"],
    )
    # As the tests do: this check's own short-lived local Ray, no token file. With token auth, two
    # local Rays started at once on one machine were seen to reject each other's token here.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray  # noqa: F401 - only whether it is there
    except ImportError:
        section.skip("Ray is not installed (pip install 'vidsr[ray]')")
        return section

    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and gpus < 2:
        section.skip("one GPU: --cluster local would run one worker, which is one process with Ray's overhead")
        return section
    if device.type == "mps":
        section.skip("MPS: a cluster renders on cuda or cpu")
        return section
    if quick and not gpus:
        section.skip(
            "--quick on a CPU: a local Ray's one worker took 75 s against 22 s in one process on a loaded "
            "2-core machine (measured), more than --quick may spend; run without --quick"
        )
        return section
    cpus = os.cpu_count() or 1
    with guarded(section, "cluster local"):
        same = one_process_against_cluster(
            section, work, "cluster", "cuda" if gpus else "cpu", worker_cpus=None if gpus else cpus
        )
        if not same:
            section.fail("the cluster's output differs from one process's")
        if not gpus:
            section.notes.append(
                f"the CPU: one worker of {cpus} CPUs (what --quick can show; a GPU box runs one per GPU)"
            )
    return section


def decoded_frames(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray().tobytes()) for f in container.decode(video=0)]


def vulkan_section(work: Path, models: list[str], quick: bool) -> Section:
    """Every Vulkan device ncnn sees, through vidsr's ncnn engine: parity of each model in fp16
    (where the device stores it) and fp32 against torch on the CPU in fp32, at small sizes with
    ``quick``. A software device (Mesa's llvmpipe) is checked as a GPU is: correct, slow."""
    section = Section(
        "vulkan",
        "Vulkan through the ncnn engine: each model against torch on the CPU in fp32",
        ["model", "device", "precision", "8-bit dB", "unrounded dB", "max levels", "seconds with load", "verdict"],
    )
    devices = vulkan_devices_here(section)
    width, height = (48, 32) if quick else (320, 180)
    rgb = to_tensor(realistic_picture(width, height))
    section.notes.append(f"frame: {width}x{height}; " + "; ".join(device.describe() for device in devices))
    for name in models:
        reference: torch.Tensor | None = None
        with guarded(section, f"{name} on the CPU in fp32 (the reference)"):
            reference = run_upscaler(fresh_model(name), CPU, "fp32", rgb)
        for device in devices if reference is not None else ():
            for precision in vulkan_precisions(device.index, name):
                with guarded(section, f"{name} on vulkan:{device.index} in {precision}"):
                    started = time.perf_counter()
                    output = run_upscaler(fresh_model(name), torch.device("vulkan", device.index), precision, rgb)
                    seconds = time.perf_counter() - started
                    exact, psnr8, largest = fidelity(reference, output)  # pyright: ignore[reportArgumentType]
                    goal = THRESHOLD_DB if precision == "fp16" else NCNN_FP32_DB
                    section.add(
                        model=name,
                        device=f"vulkan:{device.index}",
                        precision=precision,
                        **{
                            "8-bit dB": psnr8,
                            "unrounded dB": exact,
                            "max levels": largest,
                            "seconds with load": seconds,
                        },
                        verdict="holds" if psnr8 >= goal else "BELOW GOAL",
                    )
                    if psnr8 < goal:
                        section.fail(
                            f"{name} on vulkan:{device.index} in {precision}: {psnr8:.1f} dB, under {goal:.0f}"
                        )
    section.notes.append(f"goals: {THRESHOLD_DB:.0f} dB in fp16, {NCNN_FP32_DB:.0f} dB in fp32 (issue 21)")
    return section


NCNN_FP32_DB = 50.0  # ncnn's fp32 against torch's fp32: the same arithmetic in another order


def vulkan_devices_here(section: Section) -> list[VulkanDevice]:
    """The Vulkan devices, or none with the reason skipped in ``section``."""
    if not ncnn_installed():
        section.skip(f"the ncnn package is not installed ({NCNN_INSTALL})")
        return []
    devices = list(vulkan_devices())
    if not devices:
        section.skip("no Vulkan device (install a driver; mesa-vulkan-drivers gives a CPU one, llvmpipe)")
    return devices


def vulkan_precisions(index: int, name: str) -> list[Precision]:
    """fp16 where the device stores it and the model runs in it, and fp32."""
    half = resolve_model(name).supports_half and fp16_storage_works(index)
    return ["fp16", "fp32"] if half else ["fp32"]


def vulkan_render(work: Path, quick: bool) -> Section:
    """Whole renders on the first Vulkan device (``--device vulkan``), checked as on a torch device."""
    devices = vulkan_devices_here(Section("vulkan-render", ""))
    if not devices:
        section = Section("vulkan-render", "Whole renders on Vulkan")
        section.skip("no Vulkan device here (see the Vulkan section)")
        return section

    def on_vulkan(model: str) -> UpscaleOptions:
        return UpscaleOptions(models=(model,), device="vulkan:0", engine="ncnn")

    folder = work / "vulkan-render"  # apart from the torch renders' files of the same names
    folder.mkdir(exist_ok=True)
    section = render_check(CPU, folder, quick, options_for=on_vulkan, where=f"vulkan:0 ({devices[0].name})")
    section.name = "vulkan-render"
    return section


def one_process_against_cluster(section: Section, work: Path, name: str, device: str, worker_cpus: int | None) -> bool:
    """A 2 s clip rendered on ``device`` in one process and on ``--cluster local``, the row added to
    ``section``; whether the two outputs have the same frames and audio."""
    from vidsr.render.ray_executor import RayBackend

    clip = media.write_clip(work / f"{name}.mp4", media.ClipSpec(width=64, height=48, frames=48))
    nearest = media.nearest_compact_model(work / f"nearest-{name}.safetensors")
    options = UpscaleOptions(models=(str(nearest),), device=device)
    jobs = {
        kind: UpscaleJob(input=clip, output=work / f"{name}-{kind}.mp4", upscale=options, segment_seconds=0.5)
        for kind in ("alone", "spread")
    }
    started = time.perf_counter()
    upscale_video(jobs["alone"])
    alone_seconds = time.perf_counter() - started
    started = time.perf_counter()
    backend = RayBackend("local", worker_cpus=worker_cpus)
    try:
        result = upscale_video(jobs["spread"], backend=backend)
    finally:
        backend.close()
    spread_seconds = time.perf_counter() - started
    alone, spread = jobs["alone"].output, jobs["spread"].output
    same_frames = decoded_frames(alone) == decoded_frames(spread)
    same_audio = media.audio_packets(alone) == media.audio_packets(spread)
    section.add(
        workers=result.workers,
        frames=result.frames,
        **{
            "same frames": same_frames,
            "same audio": same_audio,
            "same bytes": alone.read_bytes() == spread.read_bytes(),
        },
        **{"one process s": alone_seconds, "cluster s": spread_seconds},
    )
    return same_frames and same_audio


def vulkan_cluster(work: Path, quick: bool) -> Section:
    """--cluster local --device vulkan (one worker per Vulkan device, Ray's resource vulkan_gpu)
    against one process on --device vulkan."""
    section = Section(
        "vulkan-cluster",
        "--cluster local --device vulkan: one worker per Vulkan device gives what one process gives",
        ["workers", "frames", "same frames", "same audio", "same bytes", "one process s", "cluster s"],
    )
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not vulkan_devices_here(section):
        return section
    try:
        import ray  # noqa: F401 - only whether it is there
    except ImportError:
        section.skip("Ray is not installed (pip install 'vidsr[ray]')")
        return section
    if quick:
        section.skip("--quick: a local Ray costs more than --quick may spend (tests/test_cluster_vulkan.py checks it)")
        return section

    with guarded(section, "cluster local on vulkan"):
        same = one_process_against_cluster(section, work, "vulkan", "vulkan", worker_cpus=None)
        if not same:
            section.fail("the Vulkan cluster's output differs from one process's")
    return section


# ---------------------------------------------------------------------------- published figures


@dataclass(frozen=True)
class Anchor:
    """A speed someone else published: shown beside ours, labelled as theirs."""

    model: str
    gpu: str
    size: str
    fps: float
    what: str
    source: str


ANCHORS = (
    Anchor(
        "realesr-animevideov3",
        "V100",
        "480p",
        65.9,
        "PyTorch, model time only, input 640x480",
        ("https://github.com/xinntao/Real-ESRGAN/blob/master/docs/anime_comparisons.md"),
    ),
    Anchor(
        "realesr-animevideov3",
        "V100",
        "720p",
        22.6,
        "PyTorch, model time only, input 1280x720",
        ("https://github.com/xinntao/Real-ESRGAN/blob/master/docs/anime_comparisons.md"),
    ),
    Anchor(
        "realesr-animevideov3",
        "V100",
        "1080p",
        10.0,
        'PyTorch, model time only, input 1920x1080 ("1921")',
        ("https://github.com/xinntao/Real-ESRGAN/blob/master/docs/anime_comparisons.md"),
    ),
)


def published(speed_section: Section, device: torch.device, gpu_name: str) -> Section:
    section = Section(
        "published",
        "Published figures (NOT measured here: someone else's GPU and code), beside ours",
        ["model", "size", "published fps", "their GPU", "what they measured", "our model fps", "our device"],
    )
    ours = {
        (row["model"], row["size"]): row.get("model fps") for row in speed_section.rows if row.get("note") != "lever"
    }
    for anchor in ANCHORS:
        section.add(
            model=anchor.model,
            size=anchor.size,
            **{"published fps": anchor.fps, "their GPU": anchor.gpu, "what they measured": anchor.what},
            **{"our model fps": ours.get((anchor.model, anchor.size)), "our device": gpu_name},
        )
    section.notes.append(f"source: {ANCHORS[0].source}")
    section.notes.append("no TensorRT figure for these models is cited here: none was found with its source")
    return section


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one model: a few minutes on a CPU")
    parser.add_argument("--json", type=Path, help="write the report here as JSON")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument("--capped-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.capped_child:
        capped_child(*args.capped_child)
        return 0
    try:
        device = select_device(args.device)
    except VidsrError as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # what torch defaults to (new tensors, events) is this GPU too
    started = time.perf_counter()
    facts = machine(device)
    console.print(" · ".join(f"{key} {value}" for key, value in facts.items()))
    models = [QUICK_MODEL] if args.quick else list(EMBEDDED)
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="vidsr-device-check-") as folder:
        work = Path(folder)
        steps: list[Callable[[], Section]] = [
            lambda: parity(device, list(EMBEDDED), args.quick),
            lambda: render_check(device, work, args.quick),
            lambda: memory_check(device, work, args.quick),
            lambda: speed(device, work, models, args.quick),
            lambda: cluster_check(device, work, args.quick),
            lambda: vulkan_section(work, list(EMBEDDED), args.quick),
            lambda: vulkan_render(work, args.quick),
            lambda: vulkan_cluster(work, args.quick),
        ]
        for step in steps:
            section = step()
            section.show()
            sections.append(section)
    gpu_name = facts.get("gpu", facts["cpu"])
    anchors = published(sections[3], device, gpu_name)
    anchors.show()
    sections.append(anchors)
    failed = [f"{s.name}: {line}" for s in sections for line in s.failed]
    seconds = time.perf_counter() - started
    console.rule()
    verdict = f"[red]{len(failed)} check(s) failed[/]" if failed else "[green]every check passed[/]"
    console.print(f"{verdict} in {seconds:.0f} s on {device} ({gpu_name})")
    if args.json:
        report = {
            "machine": facts,
            "seconds": seconds,
            "failed": failed,
            "sections": [dataclasses.asdict(s) for s in sections],
        }
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
