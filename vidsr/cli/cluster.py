"""`--cluster`, `--worker-cpus`, `--worker-gpus`: where a video render runs, as one checked value.

:func:`cluster_options` is an option group (see :mod:`vidsr.cli.options`) that `vidsr upscale`
and the batch form take; it gives a :class:`ClusterChoice`, which refuses a bad combination as
it is made, so the refusal is one line before torch or Ray loads. Ray is imported only when the
choice opens a cluster's backend: it is an optional extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from vidsr.errors import SettingsError

if TYPE_CHECKING:
    from vidsr.render import Backend

__all__ = ["ClusterChoice", "cluster_options"]


@dataclass(frozen=True)
class ClusterChoice:
    """This process (``address`` None), or a Ray cluster and what each of its renderers takes.

    Raises SettingsError, in one line, for worker sizes without a cluster or a GPU share a
    renderer cannot have (it runs on one device: a whole one or a fraction of one)."""

    address: str | None = None  # local, auto, HOST:PORT or ray://HOST:PORT
    worker_cpus: int | None = None  # None: a GPU's share of its node, or a whole node
    worker_gpus: float | None = None  # 1 or a fraction; None: 1

    def __post_init__(self) -> None:
        for name, given in (("--worker-cpus", self.worker_cpus), ("--worker-gpus", self.worker_gpus)):
            if self.address is None and given is not None:
                raise SettingsError(f"{name} is for --cluster")
        if self.worker_gpus is not None and self.worker_gpus <= 0:
            raise SettingsError("--worker-gpus must be more than 0 (0.5: two renderers on each GPU)")
        if self.worker_gpus is not None and self.worker_gpus > 1:
            raise SettingsError(
                f"--worker-gpus {self.worker_gpus:g}: a renderer runs on one GPU; give 1, or a fraction such as 0.5 "
                "for two renderers on each GPU"
            )

    def open_backend(self) -> Backend:
        """The backend renders run on; the caller closes it. Loads the render library (and Ray)."""
        if self.address is None:
            from vidsr.render import InProcessBackend

            return InProcessBackend()
        from vidsr.render.ray_executor import RayBackend

        return RayBackend(self.address, worker_cpus=self.worker_cpus, worker_gpus=self.worker_gpus)


def cluster_options(
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Render on a Ray cluster (pip install 'vidsr\\[ray]'): local (every GPU or core of this machine), "
            "auto (RAY_ADDRESS, or a cluster started here), HOST:PORT or ray://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    worker_cpus: Annotated[
        int | None,
        typer.Option(help="With --cluster: CPUs per renderer (default: a GPU's share, or a whole node).", min=1),
    ] = None,
    worker_gpus: Annotated[
        float | None,
        typer.Option(
            help="With --cluster: GPUs per renderer, 1 or a fraction (0.5: two renderers share each GPU); "
            "with --device vulkan, of each node's vulkan_gpu resource.",
            show_default=False,
        ),
    ] = None,
) -> ClusterChoice:
    """The options of where a video render runs (`vidsr upscale` and the batch form)."""
    return ClusterChoice(address=cluster, worker_cpus=worker_cpus, worker_gpus=worker_gpus)
