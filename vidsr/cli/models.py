"""`vidsr models` and `vidsr interpolate`: the models there are, and blending two of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from vidsr.cli import console

if TYPE_CHECKING:
    from vidsr.models import ModelInfo

__all__ = ["interpolate", "models"]


def models() -> None:
    """List the embedded models and the files in the models folder, with what each needs."""
    with console.user_errors():
        with console.loading():
            from rich.table import Table

            from vidsr.models import REAL_ESRGAN_CREDIT, list_models, models_dir

            console.tune_process_for_networks()
        entries = list_models()
    table = Table(
        title="vidsr models",
        caption=f"Embedded: {REAL_ESRGAN_CREDIT}. Your models folder: {models_dir()}",
        caption_justify="left",
    )
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("architecture")
    table.add_column("scale", justify="right")
    table.add_column("params", justify="right")
    table.add_column("size", justify="right")
    table.add_column("runs with")
    table.add_column("good for / source")
    for entry in entries:
        table.add_row(*_model_row(entry))
    console.stdout.print(table)
    from vidsr.upscale import describe_vulkan_devices  # torch and ncnn load only for this command

    for line in describe_vulkan_devices():
        console.stdout.print(escape(line), soft_wrap=True)


def _model_row(entry: ModelInfo) -> tuple[str, ...]:
    if entry.error:
        return (entry.name, "", "", "", "", "", f"[red]unusable:[/] {escape(entry.error)}")
    embedded = entry.source.startswith("embedded")
    about = entry.summary if embedded else "\n".join(filter(None, (entry.source, entry.description)))
    return (
        entry.name,
        entry.architecture or "",
        f"x{entry.scale}" if entry.scale else "",
        f"{entry.params / 1e6:.2f} M" if entry.params else "",
        f"{entry.size_mb:.1f} MB" if entry.size_mb is not None else "",
        entry.needs.replace("; ", "\n"),
        escape(about),
    )


def interpolate(
    first: Annotated[str, typer.Argument(help="Model A (alpha 0): a name or a path.", show_default=False)],
    second: Annotated[str, typer.Argument(help="Model B (alpha 1): a name or a path.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .safetensors file to write.", show_default=False)],
    alpha: Annotated[float, typer.Option(help="0 gives A, 1 gives B; ESRGAN's paper uses 0.8 towards the GAN model.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Blend two models' weights (ESRGAN network interpolation) into a new model file."""
    with console.user_errors():
        with console.loading():
            from vidsr.models import write_interpolated

            console.tune_process_for_networks()
        model = write_interpolated(first, second, alpha, output, force=force)
    console.stderr.print(f"wrote {output}: {model.source}", soft_wrap=True)
