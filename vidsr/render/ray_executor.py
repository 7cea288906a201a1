"""Segments rendered on the workers of a Ray cluster (the optional extra ``vidsr[ray]``).

Ray Core does the scheduling: one task per segment, each taking a GPU (or a share of a node's
CPUs), in worker processes that keep the network loaded from one segment to the next, and task
retries so a lost worker or node costs one segment, rendered again elsewhere. The segment bytes
come back through the object store to this process, which alone writes the work folder and the
journal; a lost driver is the journal's business: the same command resumes. Every worker reads
the input itself, from a path they all see.
"""

# Strict typing, less the unknown-type checks: Ray types its remote handles only in part.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
# pyright: reportUnknownParameterType=false, reportUnknownLambdaType=false, reportMissingTypeStubs=false

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import gc
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from vidsr.errors import SettingsError, VidsrError
from vidsr.models import LoadedModel
from vidsr.render.executor import Activity, Backend, Executor, WorkerDevice
from vidsr.render.plan import DeviceChoices, DeviceQuestion, RenderPlan, choose_for_this_device
from vidsr.render.segments import RenderedSegment, SegmentRenderer
from vidsr.upscale import ReuseCount

NOTHING_REUSED = ReuseCount()

__all__ = [
    "CUDA_GPUS",
    "OBJECT_STORE_BYTES",
    "VULKAN_GPUS",
    "VULKAN_RESOURCE",
    "GpuKind",
    "RayBackend",
    "planning_task",
    "segment_task_options",
]

# Ray knows CUDA GPUs, not Vulkan devices: each node declares its Vulkan devices as this custom
# resource (a local cluster started here does so by itself; elsewhere `ray start --resources
# '{"vulkan_gpu": N}'`), and a segment task on --device vulkan takes one (or --worker-gpus of one).
VULKAN_RESOURCE = "vulkan_gpu"


@dataclass(frozen=True)
class GpuKind:
    """GPUs of one kind that workers render on: the device type a plan names, and the resource
    Ray counts them as on each node (its own ``GPU`` for CUDA, ``vulkan_gpu`` for Vulkan). Both
    kinds are used alike: the render planned by a task on one of them, a segment task per GPU
    (or --worker-gpus of one)."""

    device: Literal["cuda", "vulkan"]
    resource: str

    def request(self, share: float) -> dict[str, Any]:
        """The options of a Ray task that takes ``share`` of one such GPU."""
        return {"num_gpus": share} if self.resource == "GPU" else {"resources": {self.resource: share}}


CUDA_GPUS = GpuKind("cuda", "GPU")
VULKAN_GPUS = GpuKind("vulkan", VULKAN_RESOURCE)
_GPU_KINDS = {gpus.device: gpus for gpus in (CUDA_GPUS, VULKAN_GPUS)}  # by the device type a plan names

# The object store only carries encoded segments (a few MB each) and the weights once: a small
# store is plenty, and Ray spills to disk beyond it. Ray's own minimum is 75 MiB.
OBJECT_STORE_BYTES = 512 * 1024 * 1024
TASK_RETRIES = 4  # a segment whose worker dies more often than this (a real fault, not bad luck) fails the render
_POLL_SECONDS = 0.5  # how often the driver looks at the workers' activity while it waits
_BOARD_SECONDS = 10.0  # how long the board may take to answer (a busy machine): progress is a courtesy
_STARTUP_SECONDS = 120.0  # the most a question to the cluster may take
# The most planning on a GPU node may take: a worker process started, torch imported, the model
# loaded (converted for ncnn, the first time on that node) and the device probed; minutes on a busy node.
_PLANNING_SECONDS = 600.0

# Ray gives a task its CUDA GPU by setting CUDA_VISIBLE_DEVICES to it, in a worker process it reuses
# from task to task, and so from GPU to GPU; but torch stays bound to the GPU it started on, and the
# renderer's network with it: two renderers could end up on one GPU while another idled. With this
# variable in a segment task's runtime_env (which Ray merges into a job's), Ray leaves the worker's
# CUDA_VISIBLE_DEVICES as its node has it (ray/_private/accelerators/nvidia_gpu.py), and the task
# renders on the GPU Ray gave it by torch's number for it (_cuda_device_given_by_ray).
_KEEP_THE_NODES_CUDA_VIEW = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"


def segment_task_options(cpus: int, gpus: GpuKind | None, share: float = 1.0) -> dict[str, Any]:
    """The Ray options of a segment task: ``cpus`` CPUs, and ``share`` of one of ``gpus`` (None:
    CPUs only), in a worker process whose CUDA view stays its node's (see above)."""
    options: dict[str, Any] = {
        "num_cpus": cpus,
        "max_retries": TASK_RETRIES,  # a worker or node lost: the segment is rendered again elsewhere
        "retry_exceptions": False,  # a render that fails (bad input, full disk) fails the same everywhere
    }
    if gpus is not None:
        options.update(gpus.request(share))  # numbered by _this_tasks_device
    if gpus == CUDA_GPUS:
        options["runtime_env"] = {"env_vars": {_KEEP_THE_NODES_CUDA_VIEW: "1"}}
    return options


def planning_task(function: Callable[..., Any], gpus: GpuKind, share: float) -> Any:
    """``function`` as the Ray task that plans a render on ``share`` of one of ``gpus``: in a
    worker process that exits when it has answered (``max_calls=1``, see
    RayBackend._choose_on_a_gpu_node), and so keeps Ray's own CUDA_VISIBLE_DEVICES (its GPU only)."""
    import ray

    return ray.remote(num_cpus=1, max_calls=1)(function).options(max_retries=TASK_RETRIES, **gpus.request(share))


class RayBackend(Backend):
    """A Ray cluster to render on: ``local`` (start one on this machine, every core and GPU),
    ``auto`` (the cluster ``RAY_ADDRESS`` names, or one started with ``ray start`` here), or an
    address (``HOST:PORT``, or ``ray://HOST:PORT`` through Ray Client). Connects when first asked.
    A batch keeps two files going at once on it: the next file's segments, queued behind the
    current one's, fill the workers that its tail leaves idle."""

    # bench/cluster_batch.py, 4 files of 3 segments, 2 workers of 1 CPU on a 2-vCPU Xeon (Sapphire
    # Rapids), load average 2-8: two at once 1.9-2.3 s, one at a time 2.8-3.0 s (1.3-1.5x), three at
    # once 2.2 s. Two is enough: segments run in the order submitted, a third file would only queue.
    files_at_once = 2

    def __init__(self, address: str, *, worker_cpus: int | None = None, worker_gpus: float | None = None) -> None:
        self.address = address
        self.worker_cpus = worker_cpus
        self.worker_gpus = worker_gpus  # GPUs (CUDA or Vulkan) per renderer, 1 or a fraction; None: 1
        self.name = f"Ray ({address})"
        self._ray: Any = None
        self._started_here = False
        self._native_bf16_of: dict[str, bool] = {}  # by node ID: each node's answer, asked once
        self._chosen_for: dict[tuple[object, ...], DeviceChoices] = {}  # by what a choice depends on
        self._board: Any = None  # the progress board every render on this backend posts to

    # ---- the cluster

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():  # a program that runs Ray already
            self._ray = sys.modules["ray"]
            return self._ray
        # Read when ray is imported: nothing phones home, and token authentication (Ray's default for
        # new clusters) is asked for explicitly; set RAY_AUTH_MODE=disabled for a cluster without it.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        try:
            import ray
        except ImportError:
            raise SettingsError("--cluster needs Ray: pip install 'vidsr[ray]'") from None
        try:
            if self.address == "local":
                ray.init(
                    address="local",
                    resources=_local_vulkan_resources(),
                    object_store_memory=OBJECT_STORE_BYTES,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
                self._started_here = True
                _keep_token_private()
            else:
                address = None if self.address == "auto" and os.environ.get("RAY_ADDRESS") else self.address
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise VidsrError(f"--cluster {self.address}: cannot reach the Ray cluster ({reason[:200]})") from None
        self._ray = ray
        return ray

    def worker_device(self, requested: str) -> WorkerDevice:
        _check_cluster_device(requested)  # before connecting: a usage error starts no cluster
        ray = self._connect()
        gpus = _gpus_to_render_on(requested, ray.cluster_resources())
        if gpus is not None:
            # Planned on one of the GPUs: this process may have none (a laptop, a head node without
            # a GPU), and the engine, precision and tile are the GPU's to choose.
            return WorkerDevice(gpus.device, None, choose=functools.partial(self._choose_on_a_gpu_node, gpus))
        if self.worker_gpus is not None:
            raise SettingsError(
                "--worker-gpus: the workers render on CPUs (the cluster has no GPU, or --device cpu); "
                "size them with --worker-cpus"
            )
        return WorkerDevice("cpu", self._all_nodes_have_native_bf16())

    def _choose_on_a_gpu_node(self, gpus: GpuKind, question: DeviceQuestion) -> DeviceChoices:
        """The engine, precision and tile, chosen by a task on a node with a free GPU of the
        workers' kind, once for the whole render (the journal records them: every segment, and a
        resume, uses them).

        The task's worker process exits once it has answered (``max_calls=1``): what it took on
        the GPU to answer (a CUDA context of a few hundred MB, ncnn's Vulkan device) is memory the
        tile it chose counts on for the renderers, and a process's CUDA stays bound to the GPU it
        first used, which Ray may not give its next task.

        Asked once for the files of a batch that agree on what the choice depends on (the usual
        batch: one model, one frame size): the cluster is then busy with the current file, whose
        segments hold every GPU, and a task for the next file's plan would wait for one (and hold
        it while its process starts) to answer what it answered before."""
        key = (gpus, self._gpus_per_renderer, *_what_the_choice_depends_on(question))
        if key not in self._chosen_for:
            self._chosen_for[key] = self._ask_a_gpu_node(gpus, question)
        return self._chosen_for[key]

    def _ask_a_gpu_node(self, gpus: GpuKind, question: DeviceQuestion) -> DeviceChoices:
        ray = self._ray
        task = planning_task(_choose_on_this_node, gpus, self._gpus_per_renderer)
        from ray.exceptions import GetTimeoutError, RayTaskError

        answer = task.remote(question, gpus.device)
        try:
            return cast(DeviceChoices, ray.get(answer, timeout=_PLANNING_SECONDS))
        except RayTaskError as error:  # the choice itself failed: no such model there, a bad --precision...
            raise _cause_of(error) from None
        except GetTimeoutError:  # not cancelled (see RayExecutor.cancel_all): it ends with this driver
            raise VidsrError(
                f"--cluster {self.address}: no node with a free {gpus.resource} planned the render "
                f"in {_PLANNING_SECONDS:.0f} s (are its GPUs busy with other work?)"
            ) from None

    @property
    def _gpus_per_renderer(self) -> float:
        return self.worker_gpus or 1.0

    def _all_nodes_have_native_bf16(self) -> bool:
        """bf16 only where every node computes it in hardware: the plan is the same for all.

        Each node is asked once (a task on it) and its answer kept: a CPU does not change, and in a
        batch the next file is planned while the workers render the current one, when the question
        waits for a worker process (Ray starts a new one for it: seconds of a busy machine's CPU, and
        a worker that loads the network anew) and holds back the next file's segments."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU")]
        unknown = [node for node in nodes if node not in self._native_bf16_of]
        if unknown:
            probe = ray.remote(num_cpus=0)(_native_bf16)
            answers = [
                probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
                for node in unknown
            ]
            self._native_bf16_of.update(zip(unknown, ray.get(answers, timeout=_STARTUP_SECONDS), strict=True))
        return bool(nodes) and all(self._native_bf16_of[node] for node in nodes)

    def executor(
        self,
        plan: RenderPlan,
        model: LoadedModel,
        *,
        warn: Callable[[str], None],
        on_activity: Callable[[Activity], None],
    ) -> Executor:
        ray = self._connect()
        board = self._progress_board()
        gpus = _GPU_KINDS.get(plan.settings.device)
        cpus, count = self._gpu_shape(gpus.resource) if gpus is not None else self._cpu_shape()
        return RayExecutor(
            ray,
            plan,
            cpus=cpus,
            gpus=gpus,
            gpu_share=self._gpus_per_renderer,
            workers=count,
            board=board,
            on_activity=on_activity,
        )

    def _progress_board(self) -> Any:
        """The board, started with the first render: one actor for every file of a batch, since an
        actor is a process of its own that imports vidsr (and torch), a second of CPU each time,
        taken from the workers when the next file of a batch starts beside the current one."""
        if self._board is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # Beside this process: a node lost with its workers does not take the board with it.
            here = NodeAffinitySchedulingStrategy(self._ray.get_runtime_context().get_node_id(), soft=True)
            self._board = self._ray.remote(num_cpus=0)(_ProgressBoard).options(scheduling_strategy=here).remote()
        return self._board

    def _gpu_shape(self, resource: str) -> tuple[int, int]:
        """(CPUs, how many at once) of segment tasks on GPUs (Ray's ``GPU``, or ``vulkan_gpu``): a
        renderer per ``--worker-gpus`` of a GPU (one each by default, two on each with 0.5), each
        with its share of its node's CPUs (the smallest node's share, or ``--worker-cpus``)."""
        alive = [n["Resources"] for n in self._ray.nodes() if n["Alive"]]
        per_node = [
            (int(r.get("CPU", 0)), renderers)
            for r in alive
            if (renderers := _renderers_on(float(r.get(resource, 0)), self._gpus_per_renderer))
        ]
        if not per_node:
            raise SettingsError(
                f"--worker-gpus {self._gpus_per_renderer:g}: no node of the cluster has that much {resource}"
            )
        cpus = self.worker_cpus or max(1, min(node_cpus // renderers for node_cpus, renderers in per_node))
        return cpus, sum(renderers for _, renderers in per_node)

    def _cpu_shape(self) -> tuple[int, int]:
        """(CPUs, how many at once) of the segment tasks on CPUs: shares of ``worker_cpus`` (default:
        a whole node, the smallest one, so every node takes at least one)."""
        ray = self._ray
        alive = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        node_cpus = [c for c in (int(r.get("CPU", 0)) for r in alive) if c > 0]
        if not node_cpus:
            raise VidsrError(f"--cluster {self.address}: the Ray cluster has no worker with a CPU")
        cpus = self.worker_cpus or min(node_cpus)
        count = sum(c // cpus for c in node_cpus)
        if count == 0:
            raise SettingsError(
                f"--worker-cpus {cpus}: no node of the cluster has that many CPUs ({max(node_cpus)} at most)"
            )
        return cpus, count

    def close(self) -> None:
        if self._board is not None and self._ray is not None and self._ray.is_initialized():
            self._ray.kill(self._board)
        self._board = None
        if self._ray is not None and self._started_here:
            self._ray.shutdown()
        self._ray = None


def _local_vulkan_resources() -> dict[str, float] | None:
    """This machine's Vulkan devices that renderers take, as Ray's custom resource (only an
    explicit --device vulkan uses them)."""
    devices = len(_vulkan_devices_to_render_on())
    return {VULKAN_RESOURCE: float(devices)} if devices else None


def _vulkan_devices_to_render_on() -> list[int]:
    """The indices of this node's Vulkan devices a renderer takes: its GPUs, or where it has none
    (a machine without a GPU, a test) its software devices. Mesa's package installs llvmpipe
    beside the GPU's own driver, and a segment rendered on it would take as long as on the CPU."""
    from vidsr.upscale import vulkan_devices

    devices = vulkan_devices()
    return [device.index for device in devices if device.is_gpu] or [device.index for device in devices]


def _gpus_to_render_on(requested: str, resources: dict[str, float]) -> GpuKind | None:
    """The GPUs ``--device`` renders on, of a cluster with ``resources`` (None: its CPUs), or
    SettingsError in one line where it has none of the kind asked for. Only an explicit
    ``--device vulkan`` renders on Vulkan devices (``auto`` takes CUDA GPUs where there are any,
    else CPUs: a cluster does not measure, and a software Vulkan device such as llvmpipe is no GPU)."""
    if requested == "vulkan":
        if not resources.get(VULKAN_RESOURCE, 0):
            raise SettingsError(
                f"--device vulkan: the Ray cluster has no {VULKAN_RESOURCE} resource (start its nodes with "
                f"ray start --resources '{{\"{VULKAN_RESOURCE}\": N}}', N their Vulkan devices)"
            )
        return VULKAN_GPUS
    has_cuda = int(resources.get(CUDA_GPUS.resource, 0)) > 0
    if requested == "cuda" and not has_cuda:
        raise SettingsError("--device cuda: the Ray cluster has no GPU (try --device cpu)")
    return CUDA_GPUS if has_cuda and requested in ("auto", "cuda") else None


def _what_the_choice_depends_on(question: DeviceQuestion) -> tuple[object, ...]:
    """The parts of ``question`` that its answer depends on (see ``_device_choices`` in
    :mod:`vidsr.render.plan`): the model and how to run it, the input's frame size and depth, the
    output size, the CPUs' bf16, and an interrupted run's choices; not which file it is."""
    info = question.info
    asked = (question.job.upscale, question.model, question.size, question.native_bf16, question.kept)
    return (*asked, info.width, info.height, info.bit_depth)


def _choose_on_this_node(question: DeviceQuestion, kind: str) -> DeviceChoices:
    """A Ray task holding a GPU of ``kind``: the render's device choices, made on the device a
    renderer of this node takes.

    Unlike the segment tasks, this one keeps Ray's own CUDA_VISIBLE_DEVICES (its GPU only, which
    torch calls cuda:0): its process renders nothing and ends with the task (``max_calls=1``)."""
    if kind == "cuda":
        _check_cuda_is_usable_here()
    asked = question.job.upscale
    with _this_tasks_device(kind) as device:
        job = dataclasses.replace(question.job, upscale=dataclasses.replace(asked, device=device))
        return choose_for_this_device(dataclasses.replace(question, job=job))


def _check_cuda_is_usable_here() -> None:
    """SettingsError, in one line, where the node declares GPUs to Ray that its torch cannot use."""
    import ray
    import torch

    if not torch.cuda.is_available():
        given = ", ".join(str(gpu) for gpu in ray.get_gpu_ids()) or "none"
        raise SettingsError(
            f"{os.uname().nodename} declares GPUs to Ray (this task was given {given}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}) but torch {torch.__version__} "
            "finds no CUDA device there (a CPU-only torch, or no NVIDIA driver?)"
        )


def _check_cluster_device(requested: str) -> None:
    """SettingsError, in one line, for a ``--device`` a cluster cannot honour: Ray hands each
    worker its own GPU, so none can be picked by number."""
    if requested == "mps":
        raise SettingsError("--device mps is for one Mac; a cluster renders on cuda, vulkan or cpu")
    kind, _, number = requested.partition(":")
    if number and kind in ("cuda", "vulkan"):
        raise SettingsError(
            f"--device {requested} picks one {'GPU' if kind == 'cuda' else 'Vulkan device'}; a cluster gives "
            f"each worker its own: use --device {kind}"
        )


def _renderers_on(gpus: float, per_renderer: float) -> int:
    """How many renderers of ``per_renderer`` GPUs a node with ``gpus`` holds (as Ray counts:
    0.5 twice is one GPU, exactly)."""
    return math.floor(gpus / per_renderer + 1e-9)


def _cause_of(error: Exception) -> BaseException:
    """The exception a Ray task raised (a VidsrError travels whole), or its first line."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else VidsrError(str(error).splitlines()[0])


def _keep_token_private() -> None:
    """Ray writes the token of a new local cluster readable by every user of the machine."""
    token = Path.home() / ".ray" / "auth_token"
    try:
        token.chmod(0o600)
    except OSError:
        pass


def _native_bf16() -> bool:
    from vidsr.upscale import cpu_has_native_bf16

    return cpu_has_native_bf16()


# One renderer per worker process, kept between tasks: the network is loaded once per process,
# however many segments the process renders (Ray reuses its worker processes).
_RENDERERS: dict[object, SegmentRenderer] = {}


def _render_task(plan: RenderPlan, index: int, cpus: int, progress: Any, render: str) -> RenderedSegment:
    """A Ray task: render one segment with this process's renderer for ``plan`` (made on first use,
    from the plan's model names: embedded models, or files at the same path on every machine; the
    plan's hash refuses any other weights), on the GPU this task was given (if any)."""
    import torch

    torch.set_num_threads(cpus)  # Ray's OMP_NUM_THREADS alone does not set torch's pool
    with _this_tasks_device(plan.device) as device:
        return _render_with(dataclasses.replace(plan, device=device), index, cpus, progress, render)


def _render_with(plan: RenderPlan, index: int, cpus: int, progress: Any, render: str) -> RenderedSegment:
    key = (plan.model, plan.settings, plan.tile.tile, plan.precision, plan.engine, plan.device, plan.video)
    if key not in _RENDERERS:
        _let_go_of_the_renderer()
        _RENDERERS[key] = SegmentRenderer(plan, decoder_threads=cpus)
    # The network is the key's; the input is this task's. Two files of a batch with the same
    # settings share the network, never the plan: each segment is read from its own file.
    _RENDERERS[key].plan = plan
    import ray

    node = ray.get_runtime_context().get_node_id()
    worker = f"{os.uname().nodename}:{os.getpid()}"

    def report(frames: int, reuse: ReuseCount = NOTHING_REUSED) -> None:
        progress.report.remote(render, worker, index, frames, os.getpid(), node, reuse)  # fire and forget

    report(0)
    try:
        return _RENDERERS[key].render(index, on_frames=report)
    finally:
        progress.report.remote(render, worker, None, 0, os.getpid(), node)


@contextlib.contextmanager
def _this_tasks_device(device: str) -> Generator[str, None, None]:
    """The device a Ray task renders (or plans) on, for a plan on ``device`` (a device type, or a
    device of it numbered elsewhere): the GPU Ray gave the task, for CUDA; a Vulkan device no other
    task of this node uses meanwhile; any other device as it is."""
    kind = device.partition(":")[0]
    if kind == "cuda":
        index = _cuda_device_given_by_ray()
        with _on_cuda_device(index):
            yield f"cuda:{index}"
    elif kind == "vulkan":
        with _own_vulkan_device() as index:
            yield f"vulkan:{index}"
    else:
        yield device


def _cuda_device_given_by_ray() -> int:
    """torch's number for the GPU Ray gave this task: the place of Ray's ID for it in
    CUDA_VISIBLE_DEVICES as this process has it (its node's list for a segment task, IDs or UUIDs;
    the one ID Ray set for the planning task), or the ID itself where the variable is not set
    (then Ray numbers the node's GPUs as CUDA does)."""
    import ray

    given = [str(gpu) for gpu in ray.get_gpu_ids()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    order = [gpu.strip() for gpu in visible.split(",")] if visible is not None else None
    if len(given) == 1 and order is None and given[0].isdigit():
        return int(given[0])
    if len(given) == 1 and order is not None and given[0] in order:
        return order.index(given[0])
    raise VidsrError(
        f"{os.uname().nodename}: Ray gave this task the GPUs [{', '.join(given)}], not one of "
        f"CUDA_VISIBLE_DEVICES={visible if visible is not None else '(unset)'}"
    )


@contextlib.contextmanager
def _on_cuda_device(index: int) -> Generator[None, None, None]:
    """CUDA GPU ``index`` as this process's current one (what torch allocates on unless told
    otherwise), capped to this task's share of it (--worker-gpus 0.5: half): the tile chosen once
    for every renderer then fits each of those that share a GPU, and the planning task, capped
    alike, chooses it from that share (vidsr.upscale.memory.free_memory honours the cap). Where
    torch has no CUDA, nothing: the renderer says so in one line."""
    import torch

    if not torch.cuda.is_available():
        yield
        return
    import ray

    share = float(ray.get_runtime_context().get_assigned_resources().get(CUDA_GPUS.resource, 1.0))
    with torch.cuda.device(index):
        if share < 1:  # before the network loads (the first task of a renderer) and on every GPU it is given
            torch.cuda.set_per_process_memory_fraction(share, index)
        yield


def _let_go_of_the_renderer() -> None:
    """Another render's network, or one on another GPU (Ray gives a worker process whichever is
    free), let go of before the next loads: with what torch keeps cached of it on a GPU, which the
    renderer now given that GPU may need."""
    if not _RENDERERS:
        return
    _RENDERERS.clear()
    import torch

    if torch.cuda.is_initialized():
        gc.collect()  # a network held in a reference cycle is not freed by the clear alone
        torch.cuda.empty_cache()


_held_device: int | None = None  # the Vulkan device this worker process rendered on last


@contextlib.contextmanager
def _own_vulkan_device() -> Generator[int, None, None]:
    """A Vulkan device of this node that no other task on it uses meanwhile.

    Ray counts custom resources but numbers none, so the tasks of a node share out its devices
    themselves, by lock files: a device has a slot for each task its share of ``vulkan_gpu`` lets
    on it (one; two with --worker-gpus 0.5), and Ray runs no more tasks on a node than its devices
    have slots, so one is always free. A worker tries the device it used last first: its network
    stays loaded there."""
    global _held_device
    import ray

    share = float(ray.get_runtime_context().get_assigned_resources().get(VULKAN_RESOURCE, 1.0))
    slots = max(1, _renderers_on(1.0, share))
    devices = _vulkan_devices_to_render_on()
    if not devices:
        raise SettingsError(f"{os.uname().nodename} declares {VULKAN_RESOURCE} but ncnn finds no Vulkan device there")
    order = sorted(((d, slot) for d in devices for slot in range(slots)), key=lambda d: d[0] != _held_device)
    for device, slot in order:
        name = f"vidsr-vulkan-{device}.lock" if slot == 0 else f"vidsr-vulkan-{device}-{slot}.lock"
        lock = open(Path(tempfile.gettempdir()) / name, "a+b")  # noqa: SIM115 - held below
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        try:
            _held_device = device
            yield device
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        return
    raise VidsrError(f"every Vulkan device of {os.uname().nodename} is taken by another vidsr worker")


class _ProgressBoard:
    """An actor without a CPU of its own where workers post what they are on, for each render
    (several files of a batch at once); each render's driver reads its own."""

    def __init__(self) -> None:
        self.boards: dict[str, dict[str, Activity]] = {}

    def report(
        self,
        render: str,
        worker: str,
        segment: int | None,
        frames: int,
        pid: int,
        node: str,
        reuse: ReuseCount = NOTHING_REUSED,
    ) -> None:
        self.boards.setdefault(render, {})[worker] = Activity(worker, segment, frames, pid, node, reuse)

    def snapshot(self, render: str) -> list[Activity]:
        return sorted(self.boards.get(render, {}).values(), key=lambda activity: activity.worker)

    def forget(self, render: str) -> None:
        self.boards.pop(render, None)


class RayExecutor:
    """Renders submitted segments as Ray tasks, ``workers`` at a time.

    Tasks, not actors: a task holds its CPU or GPU only while it runs, so a segment lost with a
    worker or a whole node is retried by Ray on whatever node has room. (A restarted actor needs a
    free slot of its own: on a fully used cluster it never gets one, and its segment waits forever;
    measured with ray.cluster_utils.Cluster, two one-CPU nodes, one removed.) The network still
    loads once per worker process, which Ray reuses from task to task.
    """

    def __init__(
        self,
        ray: Any,
        plan: RenderPlan,
        *,
        cpus: int,
        gpus: GpuKind | None,
        gpu_share: float = 1.0,
        workers: int,
        board: Any,
        on_activity: Callable[[Activity], None] | None = None,
    ) -> None:
        self._ray = ray
        # By value, not ray.put: a task's object-store arguments are part of the queue Ray puts it in,
        # so each file of a batch would get a queue of its own and Ray would run the files' segments
        # side by side; inlined (a plan is a few kB), every file's segments share one queue, first
        # submitted first run, and the next file's fill the workers the current one's tail leaves.
        self._plan = plan
        self._render = uuid.uuid4().hex  # this render's name on the board
        self._cpus = cpus
        self._workers = workers
        self._task = ray.remote(_render_task).options(**segment_task_options(cpus, gpus, gpu_share))
        self._board = board
        self._in_flight: dict[Any, int] = {}
        self._on_activity = on_activity
        self._last_poll = 0.0
        self._asked: Any = None  # the board's answer to the last question, until it is heard

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def capacity(self) -> int:
        """Every worker busy and one more segment queued for each, no more: what is in flight is
        what a Ctrl-C has to cancel."""
        return 2 * self._workers

    def submit(self, index: int) -> None:
        self._in_flight[self._task.remote(self._plan, index, self._cpus, self._board, self._render)] = index

    def pending(self) -> int:
        return len(self._in_flight)

    def wait_any(self) -> list[RenderedSegment]:
        from ray.exceptions import RayTaskError

        while True:
            ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=_POLL_SECONDS)
            if not ready:
                self._poll_activity()
                continue
            index = self._in_flight.pop(ready[0])
            try:
                segment = cast(RenderedSegment, self._ray.get(ready[0]))
            except RayTaskError as error:  # the render itself failed: bad input, a full disk, ...
                cause = error.cause if isinstance(error.cause, BaseException) else None
                raise (cause or VidsrError(str(error).splitlines()[0])) from None
            except Exception as error:  # the worker died more often than Ray retries
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise VidsrError(
                    f"segment {index} was lost with its worker {TASK_RETRIES + 1} times ({reason[:160]}); "
                    "the finished segments are kept: run the same command again to resume"
                ) from None
            return [segment]

    def _poll_activity(self) -> None:
        """Ask the board, and hear its answer at a later poll if it is not there yet: a board still
        starting (seconds on a busy machine) never holds up collecting and submitting segments."""
        if self._on_activity is None:
            return
        now = time.monotonic()
        if self._asked is None or now - self._last_poll > _BOARD_SECONDS:  # none asked, or no answer: ask
            if now - self._last_poll < _POLL_SECONDS:
                return
            self._asked, self._last_poll = self._board.snapshot.remote(self._render), now
        ready, _ = self._ray.wait([self._asked], timeout=0)
        if not ready:
            return
        answer, self._asked = ready[0], None
        try:
            board = self._ray.get(answer, timeout=_BOARD_SECONDS)
        except Exception:  # progress is a courtesy: a board that fails never stops the render
            return
        for activity in board:
            self._on_activity(activity)

    def cancel_all(self) -> None:
        """Forget the segments in flight: their results are never collected.

        Not ``ray.cancel``: on a segment finishing at that moment (after a Ctrl-C, the one that
        started beside the one just committed, every time), Ray 2.60 aborts this process in a failed
        internal check ("Tried to complete task that was not pending"), with ``force`` or without.
        The tasks stop when this driver disconnects (Ray kills a finished job's workers), which a
        Ctrl-C or an error does next; a program that embeds vidsr and goes on lets them run out,
        at most two segments a worker."""
        self._in_flight.clear()

    def close(self) -> None:
        self.cancel_all()
        self._board.forget.remote(self._render)  # the backend keeps the board for the next render
