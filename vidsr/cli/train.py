"""``vidsr train``: a thin command over :func:`vidsr.train.train`, with a Rich bar showing the losses."""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from vidsr.cli import console
from vidsr.cli.options import QuietOption
from vidsr.train.config import TrainConfig

if TYPE_CHECKING:
    from vidsr.train.trainer import TrainProgress, TrainResult

_DEFAULTS = TrainConfig(data=(), out=Path())


def train(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data", help="Image folder, image, video, or folder of videos; repeat for more.", show_default=False
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for checkpoint.pt and model.safetensors.", show_default=False)
    ],
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from", help="Model to fine-tune (embedded name, models-folder name or path); default: a fresh RRDBNet."
        ),
    ] = None,
    stage: Annotated[
        Literal["psnr", "gan"], typer.Option(help="psnr: L1 only. gan: perceptual + RaGAN + L1.")
    ] = "psnr",
    scale: Annotated[
        int | None, typer.Option(help="Scale of a fresh RRDBNet (4, 2, 1); default: the model's own, or 4.")
    ] = None,
    steps: Annotated[
        int, typer.Option(help="Training steps in all (a resumed run counts the earlier ones).", min=1)
    ] = _DEFAULTS.steps,
    batch: Annotated[int, typer.Option(help="Patches per step.", min=1)] = _DEFAULTS.batch,
    patch: Annotated[int, typer.Option(help="HR patch side in pixels.", min=16)] = _DEFAULTS.patch,
    blocks: Annotated[int, typer.Option(help="RRDB blocks of a fresh RRDBNet.", min=1)] = _DEFAULTS.blocks,
    features: Annotated[int, typer.Option(help="Trunk channels of a fresh RRDBNet.", min=2)] = _DEFAULTS.features,
    degradation: Annotated[
        Literal["bicubic", "classic", "second-order"],
        typer.Option(
            help="How LR patches are made: bicubic (paper), classic (+ blur, noise, JPEG), second-order (Real-ESRGAN)."
        ),
    ] = _DEFAULTS.degradation,
    vgg: Annotated[
        Path | None,
        typer.Option(
            help="torchvision-format VGG19 weights (vgg19-dcbb9e9d.pth) for the gan stage's perceptual loss.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    no_perceptual: Annotated[
        bool, typer.Option("--no-perceptual", help="Train the gan stage without the perceptual loss (no VGG19 needed).")
    ] = False,
    discriminator: Annotated[
        Literal["vgg", "unet"],
        typer.Option(help="vgg: ESRGAN's (patch a multiple of 32). unet: Real-ESRGAN's, spectral norm."),
    ] = _DEFAULTS.discriminator,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Initial learning rate; default 2e-4 (psnr) or 1e-4 (gan).", min=1e-12)
    ] = None,
    frames_per_video: Annotated[
        int, typer.Option(help="Frames sampled evenly across each video.", min=1)
    ] = _DEFAULTS.frames_per_video,
    val_every: Annotated[
        int, typer.Option(help="Steps between validations on held-out patches.", min=1)
    ] = _DEFAULTS.val_every,
    checkpoint_every: Annotated[
        int, typer.Option(help="Steps between checkpoints (also every 10 minutes).", min=1)
    ] = _DEFAULTS.checkpoint_every,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N (GPU N) or mps.")] = _DEFAULTS.device,
    precision: Annotated[
        str, typer.Option(help="auto, fp32 or bf16 (mixed precision); auto: bf16 where the hardware has it.")
    ] = _DEFAULTS.precision,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights and of every random draw.")] = _DEFAULTS.seed,
    restart: Annotated[bool, typer.Option(help="Start over instead of continuing the run in --out.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Train or fine-tune an ESRGAN-family model; run the same command again to continue."""
    config = TrainConfig(
        data=tuple(data),
        out=out,
        from_model=from_model,
        stage=stage,
        scale=scale,
        steps=steps,
        batch=batch,
        patch=patch,
        blocks=blocks,
        features=features,
        degradation=degradation,
        vgg=vgg,
        perceptual=not no_perceptual,
        discriminator=discriminator,
        learning_rate=lr,
        frames_per_video=frames_per_video,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        device=device,
        precision=precision,
        seed=seed,
        restart=restart,
    )
    with (
        console.user_errors(),
        console.stop_on_sigterm(),
    ):
        with console.loading():
            from vidsr.train.trainer import train as run_training

            console.tune_process_for_networks()
        with _progress_bar(console.stderr, enabled=not quiet and console.stderr.is_terminal) as on_progress:
            result = run_training(config, on_progress=on_progress)
    if not quiet:
        console.stderr.print(escape(_summary(result)), soft_wrap=True)


def _summary(result: TrainResult) -> str:
    latest = result.history[-1] if result.history else None
    scores = ""
    if latest:
        scores = (
            f"; held-out PSNR {latest.psnr:.2f} dB, SSIM {latest.ssim:.4f} "
            f"(bicubic {latest.bicubic_psnr:.2f} dB, {latest.bicubic_ssim:.4f})"
        )
    if latest and not result.held_out:
        scores += " [too few pictures to hold any out: scored on training pictures]"
    resumed = f", resumed at step {result.resumed_from}" if result.resumed_from else ""
    return f"wrote {result.weights}: {result.architecture} after {result.steps} steps{resumed}{scores}"


@contextmanager
def _progress_bar(terminal: Console, *, enabled: bool) -> Generator[Callable[[TrainProgress], None], None, None]:
    """A Rich bar with steps, losses and the latest validation on a terminal; nothing otherwise."""
    if not enabled:
        yield lambda progress: None
        return
    with console.progress_with_eta("training", "{task.fields[losses]}", terminal=terminal) as bar:
        task = bar.add_task("train", total=None, losses="")

        def update(progress: TrainProgress) -> None:
            if bar.tasks[task].total is None:  # the first call: start the bar where a resumed run is
                bar.reset(task, total=progress.steps, completed=progress.step)
            bar.update(task, completed=progress.step, losses=_losses_text(progress))

        yield update


def _losses_text(progress: TrainProgress) -> str:
    parts = [f"{name} {value:.4f}" for name, value in progress.losses.items()]
    parts.append(f"lr {progress.learning_rate:.1e}")
    if progress.validation is not None:
        parts.append(f"val {progress.validation.psnr:.2f} dB (bicubic {progress.validation.bicubic_psnr:.2f})")
    return "  ".join(parts)
