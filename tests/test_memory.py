"""Memory: a frame too large to run whole is tiled, one too large for any tile is refused in one line.

The limits are real. The tests marked "under a cap" run vidsr in a child python whose address
space is capped with RLIMIT_AS, so torch's CPU allocator fails there the way it does on a full
machine. RLIMIT_AS counts virtual address space, which torch reserves generously: a child that has
imported torch, vidsr and pytest maps about 600 MB (VmSize) with one OpenMP thread, 700 MB with
two (thread stacks, malloc arenas), while only about 240 MB of it is resident. A cap set as a fixed
number would fit one build of torch and not the next; so the child caps itself, once imported and
warmed up, at what it has mapped then plus ``ROOM``. That leaves every child the same room whatever
torch reserves, and vidsr's work (the measuring pass, the tiles, the blend) all happens inside it.
One OpenMP thread: on a shared 2-core machine a second one spins at barriers and runs 10x slower.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from media import ClipSpec, psnr, write_clip
from PIL import Image

from vidsr.errors import SettingsError
from vidsr.models import choose_model
from vidsr.models.arch import RRDBNet, SRVGGNetCompact
from vidsr.models.loader import detect_and_build
from vidsr.upscale import Upscaler
from vidsr.upscale.memory import (
    HEADROOM,
    activation_bytes_per_pixel,
    is_out_of_memory,
    largest_tile_that_fits,
    memory_need,
    tiled_need,
)

CPU = torch.device("cpu")
HERE = Path(__file__).resolve().parent
ROOM = 250 * 2**20  # what a capped child may map beyond what it has mapped once warmed up
# A real RRDBNet small enough to run in seconds, whose x4 stages (16 channels at output size)
# make a 384x288 frame need about 400 MB whole: it cannot run whole under the cap, and can in tiles.
TOO_LARGE_WHOLE = (384, 288)
# Blending 1024x768 frames x4 needs about 400 MB whatever the tile: no tile fits under the cap.
TOO_LARGE_FOR_ANY_TILE = (1024, 768)
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")


@pytest.fixture(scope="module")
def tiny_rrdb(tmp_path_factory) -> Path:
    torch.manual_seed(5)
    network = RRDBNet(num_feat=16, num_block=1, num_grow_ch=8, scale=4)
    path = tmp_path_factory.mktemp("memory") / "tiny-rrdb-x4.pth"
    torch.save({"params_ema": network.state_dict()}, path)
    return path


# ---- under a cap -----------------------------------------------------------------------------------


@linux_only
def test_a_frame_too_large_to_run_whole_is_upscaled_in_tiles(tiny_rrdb, tmp_path):
    """Under the cap the whole frame really does not fit; vidsr says once that it tiles, exits
    cleanly, and its tiles give what the whole frame gives where memory is plenty."""
    width, height = TOO_LARGE_WHOLE
    frame = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    torch.save(frame, tmp_path / "frame.pt")
    child = run_capped(upscale_under_cap, tiny_rrdb, tmp_path / "frame.pt", tmp_path / "tiled.pt")
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.splitlines()[-1])
    assert report["whole"] == "out of memory"
    assert len(report["told"]) == 1 and "tiles of" in report["told"][0], report["told"]
    with torch.inference_mode():
        untiled = upscaler_for(tiny_rrdb).upscale_rgb(frame)
    tiled = torch.load(tmp_path / "tiled.pt")
    assert tiled.shape == untiled.shape == (1, 3, height * 4, width * 4)
    assert psnr(tiled.numpy(), untiled.numpy()) >= 45.0


@linux_only
def test_a_frame_that_fits_in_no_tile_is_refused_in_one_line(tiny_rrdb, tmp_path):
    """`vidsr image` under the cap: exit 1, no traceback, a line naming the frame, what it needs
    even in the smallest tiles, and what is free; nothing written."""
    width, height = TOO_LARGE_FOR_ANY_TILE
    picture = tmp_path / "large.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(picture)
    output = tmp_path / "large-x4.png"
    command = ["image", picture, output, "--model", tiny_rrdb, "--device", "cpu", "--precision", "fp32"]
    child = run_capped(vidsr_under_cap, *command)
    assert child.returncode == 1, child.stderr
    assert "Traceback" not in child.stderr
    lines = child.stderr.strip().splitlines()
    assert all(line.startswith(("failed:", "error:")) for line in lines), lines
    refusal = re.search(
        rf"a {width}x{height} frame needs about ([\d.]+ [MG]B) of memory even in 32-pixel tiles "
        r"and the CPU has ([\d.]+ [MG]B) free",
        lines[-1],
    )
    assert refusal, lines[-1]
    need, free = (megabytes(amount) for amount in refusal.groups())
    assert need > free
    assert not output.exists()


@linux_only
def test_the_cpu_allocators_error_is_running_out_of_memory_and_other_errors_are_not():
    """On the CPU torch raises a plain RuntimeError, not OutOfMemoryError, when an allocation fails."""
    child = run_capped(allocate_under_cap, 4 * ROOM)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.splitlines()[-1])
    assert report["type"] == "RuntimeError" and "DefaultCPUAllocator" in report["message"]
    assert report["out_of_memory"]
    with pytest.raises(RuntimeError) as mismatch:
        F.conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(8, 4, 3, 3))  # 3 channels into a 4-channel conv
    assert not is_out_of_memory(mismatch.value)
    assert not is_out_of_memory(ValueError("can't allocate memory"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))


# ---- planning ---------------------------------------------------------------------------------------


def test_a_12_megapixel_photo_through_the_default_model(monkeypatch):
    """Whole it needs over 100 GB; with 8 GB free it is cut into the largest tiles that fit, and
    the user told once; with 2 GB free not even 32-pixel tiles fit (the x4 result alone is 2.3 GB),
    and it is refused before any work."""
    photo = torch.zeros(1, 1, 1, 1).expand(1, 3, 3000, 4000)  # the shape, without the memory
    told: list[str] = []
    upscaler = Upscaler(choose_model(("realesrgan-x4plus",), None), device=CPU, precision="fp32", warn=told.append)
    per_pixel = activation_bytes_per_pixel(upscaler.model)
    assert memory_need(4000, 3000, batch=1, scale=4, per_pixel=per_pixel).total > 100e9

    monkeypatch.setattr("vidsr.upscale.runner.free_memory", lambda device: 8 * 10**9)
    tile = upscaler._tile_for(photo)
    assert tile is not None and 128 <= tile < 4000
    assert tiled_need(4000, 3000, tile, batch=1, scale=4, per_pixel=per_pixel, overlap=32) <= 8e9
    assert tiled_need(4000, 3000, tile + 1, batch=1, scale=4, per_pixel=per_pixel, overlap=32) > 8e9
    assert upscaler._tile_for(photo) == tile and len(told) == 1 and f"tiles of {tile} pixels" in told[0]

    monkeypatch.setattr("vidsr.upscale.runner.free_memory", lambda device: 2 * 10**9)
    upscaler = Upscaler(upscaler.model, device=CPU, precision="fp32")
    with pytest.raises(SettingsError, match=r"a 4000x3000 frame needs about 6\.\d GB .* has 2\.0 GB free"):
        upscaler._tile_for(photo)


def test_a_batch_that_does_not_fit_whole_is_split_before_any_frame_is_tiled(monkeypatch):
    """Smaller batches cost nothing, tiles cost their overlaps: frames that fit alone run alone, whole."""
    torch.manual_seed(3)
    model = detect_and_build(SRVGGNetCompact(num_feat=8, num_conv=2).state_dict(), name="compact", source="test")
    frames = torch.rand(4, 3, 40, 56)
    with torch.inference_mode():
        expected = Upscaler(model, device=CPU, precision="fp32").upscale_rgb(frames)
    one_frame = memory_need(56, 40, batch=1, scale=4, per_pixel=activation_bytes_per_pixel(model)).total
    monkeypatch.setattr("vidsr.upscale.runner.free_memory", lambda device: int(1.5 * one_frame / HEADROOM))
    told: list[str] = []
    upscaler = Upscaler(model, device=CPU, precision="fp32", warn=told.append)
    shapes = record_calls(upscaler)
    with torch.inference_mode():
        result = upscaler.upscale_rgb(frames)
    assert [shape for shape in shapes if shape[-2:] == (40, 56)] == [(1, 3, 40, 56)] * 4 and not told
    assert torch.allclose(result, expected, atol=1e-6)


def test_the_largest_tile_that_fits_is_found_not_a_power_of_two():
    need = dict(batch=1, scale=4, per_pixel=9000.0, overlap=32)
    budget = tiled_need(4000, 3000, 300, **need)
    assert largest_tile_that_fits(4000, 3000, **need, budget=budget, smallest=32) == 300
    assert largest_tile_that_fits(4000, 3000, **need, budget=budget - 1, smallest=32) == 299
    assert largest_tile_that_fits(4000, 3000, **need, budget=tiled_need(4000, 3000, 31, **need), smallest=32) is None
    assert largest_tile_that_fits(64, 48, **need, budget=1e12, smallest=32) == 0  # whole frames


# ---- helpers ------------------------------------------------------------------------------------------


def upscaler_for(model: Path | str, **options) -> Upscaler:
    return Upscaler(choose_model((str(model),), None), device=CPU, precision="fp32", **options)


def record_calls(upscaler: Upscaler) -> list[tuple[int, ...]]:
    """The input shapes the network is run on from now on."""
    shapes: list[tuple[int, ...]] = []
    upscaler.network.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
    return shapes


def megabytes(amount: str) -> float:
    number, unit = amount.split()
    return float(number) * (1000 if unit == "GB" else 1)


def run_capped(function: Callable[..., None], *args: object) -> subprocess.CompletedProcess[str]:
    """``function(*args)`` of this module in a child python (one OpenMP thread), its arguments as strings."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); "
        f"import test_memory; test_memory.{function.__name__}(*sys.argv[1:])"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *(str(arg) for arg in args)],
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def cap_address_space() -> None:
    """Warm up torch's allocator and convolutions, then cap this process at what it maps now plus ``ROOM``."""
    F.conv2d(torch.rand(1, 3, 32, 32), torch.rand(8, 3, 3, 3), padding=1)
    with open("/proc/self/status", encoding="ascii") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (mapped + ROOM, resource.getrlimit(resource.RLIMIT_AS)[1]))


# What the capped children run (module functions, so the child imports them as the tests do).


def upscale_under_cap(model: str, frame: str, output: str) -> None:
    told: list[str] = []
    upscaler = upscaler_for(model, warn=told.append)
    image = torch.load(frame)
    cap_address_space()
    with torch.inference_mode():
        torch.save(upscaler.upscale_rgb(image), output)
        try:
            upscaler._forward(image)  # the whole frame in one pass, unplanned
            whole = "fits"
        except RuntimeError as error:
            whole = "out of memory" if is_out_of_memory(error) else str(error)
    print(json.dumps({"told": told, "whole": whole}))  # noqa: T201 - the child's report to the test


def vidsr_under_cap(*argv: str) -> None:
    import vidsr.inspect  # noqa: F401 - what `vidsr image` runs on, loaded before the cap as torch is
    from vidsr.cli.entry import main

    cap_address_space()
    main(list(argv))


def allocate_under_cap(size: str) -> None:
    cap_address_space()
    try:
        torch.empty(int(size), dtype=torch.uint8)
    except RuntimeError as error:
        report = {"type": type(error).__name__, "message": str(error), "out_of_memory": is_out_of_memory(error)}
        print(json.dumps(report))  # noqa: T201 - the child's report to the test


# ---- a video render decides its tiles once --------------------------------------------------------


def test_a_video_too_large_for_memory_is_tiled_by_the_plan_and_said(tiny_rrdb, tmp_path, monkeypatch):
    """The tile is decided once, for the whole render, so every segment is cut alike; the job
    description records what the user asked for (whole frames) apart from what memory chose."""
    from typer.testing import CliRunner

    from vidsr.cli.app import app, with_default_command
    from vidsr.render import UpscaleJob
    from vidsr.render.plan import plan_job
    from vidsr.upscale import UpscaleOptions

    clip = write_clip(tmp_path / "wide.mp4", ClipSpec(width=320, height=240, frames=6))
    model = choose_model((str(tiny_rrdb),), None)
    per_pixel = activation_bytes_per_pixel(model)
    whole = memory_need(320, 240, batch=1, scale=4, per_pixel=per_pixel).total
    smallest_tiles = tiled_need(320, 240, 32, batch=1, scale=4, per_pixel=per_pixel, overlap=32)
    assert smallest_tiles < whole
    free = int((smallest_tiles + whole) / 2 / HEADROOM)  # room for tiles, not for the whole frame
    monkeypatch.setattr("vidsr.upscale.runner.free_memory", lambda device: free)
    job = UpscaleJob(input=clip, output=tmp_path / "out.mp4", upscale=UpscaleOptions(models=(str(tiny_rrdb),)))
    plan, _ = plan_job(job, device="cpu")
    tile = plan.tile.tile
    assert 32 <= tile < 320 and f"tiles of {tile} pixels" in plan.tile.message
    assert plan.identity.settings.tile == 0 and plan.identity.chosen.tile == tile

    result = CliRunner().invoke(
        app, with_default_command([str(clip), str(tmp_path / "out.mp4"), "--model", str(tiny_rrdb)])
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(f"tiles of {tile} pixels") == 1
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6


def test_a_resume_keeps_the_tiles_the_interrupted_run_chose(clip, nearest_model, tmp_path):
    """On a machine with more memory now, frames after the resume are still cut as before it."""
    from vidsr.render import UpscaleJob
    from vidsr.render.identity import MachineChoices
    from vidsr.render.plan import plan_job
    from vidsr.upscale import UpscaleOptions

    job = UpscaleJob(input=clip, output=tmp_path / "out.mp4", upscale=UpscaleOptions(models=(str(nearest_model),)))
    fresh, _ = plan_job(job, device="cpu")
    assert fresh.tile.tile == 0 and fresh.tile.message == ""  # plenty of memory here
    kept, _ = plan_job(job, device="cpu", kept=MachineChoices(tile=40, precision=fresh.precision))
    assert kept.tile.tile == 40 and kept.identity.chosen.tile == 40
    assert kept.tile.message == "keeping the interrupted run's tiles of 40 pixels"
    assert kept.identity.must_match() == fresh.identity.must_match()  # the same job, cut as before
    same, _ = plan_job(job, device="cpu", kept=MachineChoices(tile=0, precision=fresh.precision))
    assert same.tile.message == ""  # nothing to say when the choice would be the same anyway
