"""How faithful each precision is, for each embedded model, against fp32 on real frames.

For every model and precision variant, prints per image and at worst: the PSNR (dB) and the
largest error (8-bit levels) of the 8-bit output against the fp32 output, and the network's time
over all images as a ratio to fp32's, measured side by side in this run. The model's default
precision on a CPU with native bf16 is marked. Variants, all run through vidsr's Upscaler:

  fp32       the reference
  bf16       as vidsr runs bf16: bf16 weights and activations, the descriptor's fp32 layers (the
             first and last conv) in fp32, so the frame is never rounded to bf16
  bf16-all   every layer in bf16, the input too (vidsr before the descriptor's fp32 layers)
  autocast   fp32 weights, torch.autocast(cpu, bfloat16): convs in bf16, the rest as it comes

``--trace MODEL`` shows where bf16's error enters an RRDBNet: for each stage (first conv, each
RRDB block, trunk sum, upsampling, last conv) the error that stage adds on its own (run in bf16
on the fp32 stage's input) and the error carried so far (the whole bf16 chain), both relative to
the fp32 activations; then the output fidelity of fixes at a small cost: residual sums kept in
fp32 around bf16 convs, and the first blocks in fp32.

bf16 needs AVX512-BF16 or AMX to be fast and to use oneDNN's bf16 kernels; elsewhere torch
emulates it (slowly), and its numbers may differ from native ones: say which CPU they came from.
Images: three whole frames of samples/sample.mp4 (160x90) and, resized to 160 pixels on the long
side (Lanczos), scikit-image's photographs coffee, chelsea and rocket, its colorwheel and logo, and
a synthetic cartoon (flat fills, dark outlines). scikit-image: ``pip install 'vidsr[samples]'``.

    python bench/precision.py                                  # every embedded model, every variant
    python bench/precision.py --model realesr-animevideov3 --images sample_f00 cartoon
    python bench/precision.py --trace realesrgan-x4plus --images cartoon colorwheel
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from fidelity import THRESHOLD_DB, cartoon, fidelity, stage_errors, to_tensor
from PIL import Image

from vidsr.models import EMBEDDED, resolve_model
from vidsr.models.arch import RRDBNet
from vidsr.models.arch.rrdbnet import RESIDUAL_SCALE
from vidsr.upscale import Upscaler, cpu_has_native_bf16
from vidsr.upscale.policy import default_precision

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp4"
CPU = torch.device("cpu")
LONG_SIDE = 160
VARIANTS = ("fp32", "bf16", "bf16-all", "autocast")


# ---------------------------------------------------------------------------- images


def sample_frames(indices: tuple[int, ...] = (0, 24, 47)) -> dict[str, np.ndarray]:
    frames: dict[str, np.ndarray] = {}
    with av.open(str(SAMPLE)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in indices:
                frames[f"sample_f{index:02d}"] = frame.to_ndarray(format="rgb24")
    return frames


def fit(image: np.ndarray, long_side: int = LONG_SIDE) -> np.ndarray:
    height, width = image.shape[:2]
    factor = long_side / max(height, width)
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def cartoon_image() -> np.ndarray:
    """The synthetic cartoon (flat fills, dark outlines), drawn at 4x and resized."""
    return fit(np.asarray(cartoon()))


def load_images(names: list[str] | None) -> dict[str, np.ndarray]:
    from skimage import data  # the samples extra

    logo = data.logo().astype(np.float32) / 255
    on_white = logo[..., :3] * logo[..., 3:] + (1 - logo[..., 3:])
    images = {
        **sample_frames(),
        "coffee": fit(data.coffee()),
        "chelsea": fit(data.chelsea()),
        "rocket": fit(data.rocket()),
        "colorwheel": fit(data.colorwheel()),
        "logo": fit(np.round(on_white * 255).astype(np.uint8)),
        "cartoon": cartoon_image(),
    }
    if names:
        unknown = set(names) - images.keys()
        if unknown:
            raise SystemExit(f"unknown images {sorted(unknown)}; choose from {sorted(images)}")
        images = {name: images[name] for name in names}
    return images


# ---------------------------------------------------------------------------- variants


def run_variant(model_name: str, variant: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's network as vidsr runs it in ``variant``: RGB 0..1 in, RGB 0..1 out."""
    model = resolve_model(model_name)
    if variant == "bf16-all":
        model = replace(model, fp32_layers=())
    precision = "fp32" if variant in ("fp32", "autocast") else "bf16"
    upscaler = Upscaler(model, device=CPU, precision=precision)
    autocast = variant == "autocast"

    def run(rgb: torch.Tensor) -> torch.Tensor:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.inference_mode(), context:
            return upscaler.upscale_rgb(rgb)

    return run


def compare_variants(model_name: str, variants: tuple[str, ...], images: dict[str, np.ndarray]) -> None:
    model = resolve_model(model_name)
    default = default_precision(CPU, model, native_bf16=True)
    print(f"\n== {model_name}: {model.description}")
    print(f"   default on a CPU with native bf16: {default}; the bf16 variant keeps {model.fp32_layers} in fp32")
    runners = {variant: run_variant(model_name, variant) for variant in ("fp32", *variants) if variant in VARIANTS}
    warm_up = torch.rand(1, 3, 16, 16)
    for run in runners.values():
        run(warm_up)
    seconds = dict.fromkeys(runners, 0.0)
    worst: dict[str, tuple[float, float, float]] = {variant: (float("inf"),) * 2 + (0.0,) for variant in runners}
    tested = [variant for variant in runners if variant != "fp32"]
    print(f"   {'':12} {'fp32':>7}" + "".join(f"{variant:>22}" for variant in tested))
    print(f"   {'image':12} {'seconds':>7}" + f"{'dB / 8-bit dB / max':>22}" * len(tested))
    for image_name, image in images.items():
        rgb = to_tensor(image)
        outputs: dict[str, torch.Tensor] = {}
        image_seconds = 0.0
        for variant, run in runners.items():
            started = time.perf_counter()
            outputs[variant] = run(rgb)
            elapsed = time.perf_counter() - started
            seconds[variant] += elapsed
            image_seconds = elapsed if variant == "fp32" else image_seconds
        cells = ""
        for variant in tested:
            exact, psnr8, largest = fidelity(outputs["fp32"], outputs[variant])
            before = worst[variant]
            worst[variant] = (min(before[0], exact), min(before[1], psnr8), max(before[2], largest))
            cells += f"{exact:10.1f} /{psnr8:5.1f} /{largest:3.0f}"
        print(f"   {image_name:12} {image_seconds:>7.1f}{cells}")
    print(
        f"   {'worst':12} {'':>7}" + "".join(f"{w[0]:10.1f} /{w[1]:5.1f} /{w[2]:3.0f}" for w in map(worst.get, tested))
    )
    print(
        f"   {'time / fp32':12} {seconds['fp32']:>6.0f}s"
        + "".join(f"{seconds[v] / seconds['fp32']:21.2f}x" for v in tested)
    )
    for variant in tested:
        exact, psnr8, largest = worst[variant]
        verdict = "holds" if psnr8 >= THRESHOLD_DB else "FAILS"
        print(
            f"   {variant}: worst {psnr8:.1f} dB in 8 bits ({exact:.1f} unrounded), max {largest:.0f} levels: {verdict}"
        )


# ---------------------------------------------------------------------------- where the error enters


def trace(model_name: str, images: dict[str, np.ndarray]) -> None:
    model = resolve_model(model_name)
    if not isinstance(model.module, RRDBNet):
        raise SystemExit(f"--trace follows RRDBNet's stages; {model_name} is {model.architecture}")
    full = model.module.eval()
    for image_name, image in images.items():
        rgb = to_tensor(image)
        print(f"\n== {model_name} on {image_name}: error relative to the fp32 activations (rms)")
        print(f"   {'stage':10} {'fp32 rms':>9} {'added here':>11} {'carried':>9}")
        for row in stage_errors(full, rgb, torch.bfloat16):
            print(f"   {row.stage:10} {row.fp32_rms:9.3f} {row.added:11.2e} {row.carried:9.2e}")
        print("   output fidelity against fp32 of bf16 with fixes:")
        with torch.inference_mode():
            reference = full(rgb).clamp(0, 1)
            for label, run in fixes(full).items():
                exact, psnr8, largest = fidelity(reference, run(rgb))
                print(f"     {label:52} {exact:5.1f} dB, {psnr8:5.1f} dB in 8 bits, max {largest:3.0f} levels")


def fixes(full: RRDBNet) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """bf16 variants of one RRDBNet that keep more of it in fp32, least cost first."""
    low = copy.deepcopy(full).to(torch.bfloat16)

    def mixed(*, ends: bool, residual32: bool, fp32_blocks: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            if full.unshuffle > 1:
                x = F.pixel_unshuffle(x, full.unshuffle)
            head = full.conv_first(x) if ends else low.conv_first(x.to(torch.bfloat16)).float()
            body = head if residual32 else head.to(torch.bfloat16)
            for index, (block32, block16) in enumerate(zip(full.body, low.body)):
                if index < fp32_blocks:
                    body = block32(body.float()) if residual32 else block32(body.float()).to(torch.bfloat16)
                elif residual32:
                    body = _block_residual32(block16, body)
                else:
                    body = block16(body)
            if residual32:
                feat = (head.float() + low.conv_body(body.to(torch.bfloat16)).float()).to(torch.bfloat16)
            else:
                feat = head.to(torch.bfloat16) + low.conv_body(body.to(torch.bfloat16))
            for conv in low.upsampling_convs:
                feat = low.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
            feat = low.lrelu(low.conv_hr(feat))
            return (full.conv_last(feat.float()) if ends else low.conv_last(feat).float()).clamp(0, 1)

        return run

    return {
        "bf16 everywhere": mixed(ends=False, residual32=False, fp32_blocks=0),
        "first and last conv fp32 (vidsr's bf16)": mixed(ends=True, residual32=False, fp32_blocks=0),
        "+ residual sums fp32 around bf16 convs": mixed(ends=True, residual32=True, fp32_blocks=0),
        "+ residual sums fp32, first 2 blocks fp32": mixed(ends=True, residual32=True, fp32_blocks=2),
        "first and last conv fp32, first 2 blocks fp32": mixed(ends=True, residual32=False, fp32_blocks=2),
    }


def _block_residual32(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One RRDB with its four residual sums (three dense blocks and its own) in fp32 and its
    convolutions in bf16: the fp32 stream is rounded only where a conv reads it."""
    x = x.float()
    out = x
    for rdb in (block.rdb1, block.rdb2, block.rdb3):  # type: ignore[union-attr]
        out = out + RESIDUAL_SCALE * _dense_features(rdb, out.to(torch.bfloat16)).float()
    return x + RESIDUAL_SCALE * out


def _dense_features(rdb: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A dense block's conv5 output (what it adds, before the 0.2 scale)."""
    x1 = rdb.lrelu(rdb.conv1(x))
    x2 = rdb.lrelu(rdb.conv2(torch.cat((x, x1), 1)))
    x3 = rdb.lrelu(rdb.conv3(torch.cat((x, x1, x2), 1)))
    x4 = rdb.lrelu(rdb.conv4(torch.cat((x, x1, x2, x3), 1)))
    return rdb.conv5(torch.cat((x, x1, x2, x3, x4), 1))


# ---------------------------------------------------------------------------- main


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv: Iterator[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=list(EMBEDDED), help="embedded models (default: all)")
    parser.add_argument("--variant", nargs="*", default=list(VARIANTS[1:]), choices=VARIANTS[1:])
    parser.add_argument("--images", nargs="*", help="image names (default: all)")
    parser.add_argument("--trace", metavar="MODEL", help="where bf16's error enters this RRDBNet model")
    args = parser.parse_args(list(argv) if argv is not None else None)
    torch.manual_seed(0)
    print(
        f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}"
        + ("" if cpu_has_native_bf16() else " (bf16 here is emulated: slow, and its numbers may differ from native)")
    )
    images = load_images(args.images)
    if args.trace:
        trace(args.trace, images)
        return
    for model_name in args.model:
        compare_variants(model_name, tuple(args.variant), images)


if __name__ == "__main__":
    main()
