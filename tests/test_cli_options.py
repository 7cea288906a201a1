"""Options several commands share are typed once: every command that upscales has every upscale
option, the batch form has every option of a render, and a group of options is one function."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer
import typer.main
from typer.testing import CliRunner

from vidsr.choices import UpscaleOptions
from vidsr.cli.app import app
from vidsr.cli.cluster import cluster_options
from vidsr.cli.options import upscale_options, with_options
from vidsr.cli.render import render_options
from vidsr.defaults import DEFAULT_MODEL


def options_of(command: str) -> set[str]:
    group = typer.main.get_command(app)  # a Typer group: its commands by name
    return {param.name for param in group.commands[command].params if param.name}


def test_every_command_that_upscales_has_every_upscale_option():
    upscale = set(inspect.signature(upscale_options).parameters)
    assert upscale == {"model", "alpha", "scale", "tile", "device", "precision", "engine"}
    for command in ("upscale", "frames", "image", "info", "batch"):
        assert upscale <= options_of(command), command


def test_the_batch_form_has_every_option_of_a_render():
    assert set(inspect.signature(render_options).parameters) <= options_of("batch")
    assert options_of("upscale") - {"input", "output"} <= options_of("batch")


def test_an_option_group_gives_its_options_to_a_command_and_the_command_one_value():
    """What adding a shared option takes: a parameter of the group; each command has it then."""
    received: list[tuple[str, UpscaleOptions]] = []

    def with_a_new_option(
        upscale: UpscaleOptions,
        sharpen: Annotated[float, typer.Option(help="A setting that did not exist.")] = 0.0,
    ) -> tuple[float, UpscaleOptions]:
        return sharpen, upscale

    grouped = with_options("upscale", upscale_options)(with_a_new_option)

    @with_options("chosen", grouped)
    def command(name: Annotated[str, typer.Argument()], chosen: tuple[float, UpscaleOptions]) -> None:
        received.append((name, chosen))

    one_command = typer.Typer()
    one_command.command()(command)
    result = CliRunner().invoke(one_command, ["clip", "--sharpen", "0.5", "--scale", "2", "-m", "a", "-m", "b"])
    assert result.exit_code == 0, result.output
    assert received == [("clip", (0.5, UpscaleOptions(models=("a", "b"), scale=2.0)))]

    result = CliRunner().invoke(one_command, ["clip"])
    assert received[-1] == ("clip", (0.0, UpscaleOptions(models=(DEFAULT_MODEL,))))
    help_text = CliRunner().invoke(one_command, ["--help"], env={"COLUMNS": "200"}).output
    assert "A setting that did not exist." in help_text and "--precision" in help_text


def test_a_refusal_of_a_group_is_one_red_line():
    result = CliRunner().invoke(app, ["upscale", "in.mp4", "out.mp4", "--deinterlace", "sideways"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: --deinterlace 'sideways' is not a choice: auto, on or off"


def test_a_comparison_takes_no_option_of_where_a_render_runs():
    """A page is made on this machine, and the render command it writes for each model must run:
    a cluster's sizes without --cluster are refused, so none of the cluster's options is borrowed."""
    assert set(inspect.signature(cluster_options).parameters) == {"cluster", "worker_cpus", "worker_gpus"}
    assert not set(inspect.signature(cluster_options).parameters) & options_of("compare")
