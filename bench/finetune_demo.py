"""Fine-tune a model on one clip and score it on held-out frames of that clip, against bicubic.

The frames of the clip are the HR images; LR images are their bicubic (antialiased) x4
reductions, as in training. The last fifth of the clip (a contiguous stretch) is held out:
it is never trained on, and is where PSNR is measured, on whole frames, before and after.

    python bench/finetune_demo.py [--clip samples/sample.mp4] [--model realesr-animevideov3]
                                  [--minutes 20] [--steps N] [--precision auto|fp32|bf16] [--out DIR]

Prints one table (PSNR on RGB and on luma, SSIM), the steps run and the wall time. Run it
under ``nice -n 19`` on a shared machine. Rerunning with the same --out continues the run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vidsr.models.zoo import resolve_model
from vidsr.train import TrainConfig, train
from vidsr.train.data import collect_pictures
from vidsr.train.degradations import bicubic_downscale
from vidsr.train.metrics import psnr, ssim, upscale_bicubic

ROOT = Path(__file__).resolve().parent.parent
VAL_FRACTION = 0.2
CALIBRATION_STEPS = 30
# BT.601 luma weights, for the luma PSNR most SR papers report.
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def held_out_frames(clip: Path, patch: int) -> tuple[torch.Tensor, int, int]:
    """The clip's held-out frames (N x 3 x H x W, 0..1, cropped to multiples of 4), the same
    split the trainer makes; also the numbers of training and held-out frames."""
    pictures = collect_pictures([clip], min_size=patch, frames_per_video=10**6, val_fraction=VAL_FRACTION)
    frames = torch.stack([picture.load() for picture in pictures.validation]).float() / 255
    height, width = (frames.shape[-2] // 4) * 4, (frames.shape[-1] // 4) * 4
    return frames[..., :height, :width], len(pictures.train), len(pictures.validation)


@torch.no_grad()
def scores(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float]:
    output = (output.clamp(0, 1) * 255).round() / 255
    luma_out, luma_target = (output * LUMA).sum(1, keepdim=True), (target * LUMA).sum(1, keepdim=True)
    return (
        psnr(output, target).mean().item(),
        psnr(luma_out, luma_target).mean().item(),
        ssim(output, target).mean().item(),
    )


@torch.no_grad()
def run_model(spec: str, lr: torch.Tensor) -> torch.Tensor:
    module = resolve_model(spec).module
    return torch.cat([module(frame[None]) for frame in lr])


def calibrate(config: TrainConfig) -> float:
    """CPU seconds (all threads) per training step (a throwaway run in a temporary folder).

    CPU time rather than wall time: it hardly changes when other work shares the machine."""
    with tempfile.TemporaryDirectory() as scratch:
        probe = TrainConfig(**{**config.__dict__, "out": Path(scratch), "steps": CALIBRATION_STEPS, "val_every": 10**9})
        marks: list[float] = []
        train(probe, on_progress=lambda progress: marks.append(time.process_time()))
    return (marks[-2] - marks[5]) / (len(marks) - 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=ROOT / "samples" / "sample.mp4")
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--minutes", type=float, default=20.0, help="CPU minutes of training (all threads)")
    parser.add_argument("--steps", type=int, default=None, help="steps to train (default: what --minutes buys)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=80)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    # One thread by default: on a shared 2-core machine, two threads of these small convs spend
    # much of their CPU time waiting for each other (measured: about 2x the CPU time per step).
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (mixed precision)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    hr, train_frames, val_frames = held_out_frames(args.clip, args.patch)
    lr = bicubic_downscale(hr, 4)
    out = args.out or Path(tempfile.mkdtemp(prefix="vidsr-finetune-"))
    config = TrainConfig(
        data=(args.clip,),
        out=out,
        from_model=args.model,
        stage="psnr",
        batch=args.batch,
        patch=args.patch,
        frames_per_video=10**6,
        val_fraction=VAL_FRACTION,
        val_every=1000,
        checkpoint_every=1000,
        precision=args.precision,
    )
    seconds_per_step = calibrate(config)
    config.steps = args.steps or max(100, round(args.minutes * 60 / seconds_per_step))
    print(
        f"{args.clip.name}: {train_frames} training frames, {val_frames} held-out frames "
        f"({hr.shape[-1]}x{hr.shape[-2]} HR, {lr.shape[-1]}x{lr.shape[-2]} LR); "
        f"{seconds_per_step * 1000:.0f} CPU ms/step "
        f"-> {config.steps} steps of {args.batch} x {args.patch}px patches, into {out}",
        flush=True,
    )

    before = run_model(args.model, lr)
    started, cpu_started = time.monotonic(), time.process_time()
    result = train(config)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    after = run_model(str(result.weights), lr)  # the exported file, loaded as any model file is

    rows = [
        ("bicubic", scores(upscale_bicubic(lr, 4), hr)),
        (f"{args.model} (before)", scores(before, hr)),
        (f"fine-tuned, {result.steps} steps (after)", scores(after, hr)),
    ]
    print(f"\nPSNR / SSIM on the {val_frames} held-out frames of {args.clip.name}, x4 from bicubic-reduced frames:")
    print(f"{'':38} {'PSNR RGB':>9} {'PSNR Y':>8} {'SSIM':>7}")
    for name, (rgb, luma, structure) in rows:
        print(f"{name:38} {rgb:8.2f}  {luma:7.2f}  {structure:6.4f}")
    steps_run = max(result.steps - result.resumed_from, 1)
    print(
        f"\ntrained {result.steps - result.resumed_from} steps in {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU min "
        f"({wall / steps_run * 1000:.0f} ms/step wall, torch threads: {torch.get_num_threads()}); "
        f"weights: {result.weights}"
    )
    last = result.history[-1]
    print(f"trainer's own validation (held-out patches): {last.psnr:.2f} dB vs bicubic {last.bicubic_psnr:.2f} dB")


if __name__ == "__main__":
    main()
