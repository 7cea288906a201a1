"""Who renders the segments: the one interface the pipeline drives, and the in-process backend.

A :class:`Backend` is where segments are rendered: it says which device its workers have (the
plan is made for it) and hands out an :class:`Executor` for one plan. The pipeline submits the
segments the journal lacks, as many at a time as the executor has room for, waits for any of
them to finish, commits each and records it; on Ctrl-C it cancels the rest.
:class:`InProcessBackend` renders them here, one after the other (vidsr without a cluster, and
what the tests use); ``vidsr.render.ray_executor`` spreads them over the workers of a Ray
cluster. Either way a segment is rendered by :class:`~vidsr.render.segments.SegmentRenderer`,
and what the workers are doing reaches the pipeline through ``on_activity``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vidsr.models import LoadedModel
from vidsr.render.plan import ChooseForDevice, RenderPlan
from vidsr.render.segments import RenderedSegment, SegmentRenderer
from vidsr.upscale import ReuseCount

__all__ = ["Activity", "Backend", "Executor", "InProcessBackend", "InProcessExecutor", "WorkerDevice"]


@dataclass(frozen=True)
class Activity:
    """What one worker is doing: the segment it renders (None: idle) and the frames of it done so far."""

    worker: str
    segment: int | None
    frames: int
    pid: int | None = None  # the worker's process, where it has one of its own
    node: str | None = None  # the cluster node it runs on
    reuse: ReuseCount = ReuseCount()  # the network work reuse saved in the segment so far


ActivityCallback = Callable[[Activity], None]
Notify = Callable[[str], None]


@dataclass(frozen=True)
class WorkerDevice:
    """The device type the workers render on and whether their CPUs compute bf16 in hardware
    (None for either: as this process would choose), and who chooses the engine, precision and
    tile for their device where this process cannot (None: it does, see ``plan_job``)."""

    type: str | None = None
    native_bf16: bool | None = None
    choose: ChooseForDevice | None = None


class Executor(Protocol):
    """Renders submitted segments somewhere; results come back in whatever order they finish."""

    @property
    def workers(self) -> int: ...

    @property
    def capacity(self) -> int:
        """How many segments may be submitted and not yet back: enough to keep every worker busy,
        few enough that a Ctrl-C has little to cancel."""
        ...

    def submit(self, index: int) -> None:
        """Start (or queue) segment ``index``."""
        ...

    def pending(self) -> int:
        """How many submitted segments have not come back yet."""
        ...

    def wait_any(self) -> list[RenderedSegment]:
        """Block until at least one submitted segment is finished, and return those that are;
        a segment that failed for good raises its error here."""
        ...

    def cancel_all(self) -> None:
        """Stop every segment in flight and forget the queued ones (after Ctrl-C or an error)."""
        ...

    def close(self) -> None: ...


class Backend(ABC):
    """Where the segments of a render are rendered."""

    name: str
    # How many files of a batch may be rendering at once: more than one where the workers would
    # otherwise wait at the tail of each file (a cluster); one here, where nothing would gain.
    files_at_once: int = 1

    @abstractmethod
    def worker_device(self, requested: str) -> WorkerDevice:
        """The workers' device for ``--device requested``."""

    @abstractmethod
    def executor(
        self, plan: RenderPlan, model: LoadedModel, *, warn: Notify, on_activity: ActivityCallback
    ) -> Executor:
        """An executor for ``plan`` (``model`` is its network, loaded here already)."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing
        """Let go of what the backend holds (a cluster connection it started)."""


class InProcessBackend(Backend):
    """This process, on the device ``--device`` chooses."""

    name = "this process"

    def worker_device(self, requested: str) -> WorkerDevice:
        return WorkerDevice()

    def executor(
        self, plan: RenderPlan, model: LoadedModel, *, warn: Notify, on_activity: ActivityCallback
    ) -> Executor:
        return InProcessExecutor(plan, model, warn=warn, on_activity=on_activity)


class InProcessExecutor:
    """Renders each segment in this process, in the order submitted, when it is waited for.

    The network stays loaded across segments; inside a segment, decoding and encoding run in
    their own threads beside the network. ``on_activity`` hears of the frames done as they go.
    """

    def __init__(
        self,
        plan: RenderPlan,
        model: LoadedModel | None = None,
        *,
        warn: Notify | None = None,
        on_activity: ActivityCallback | None = None,
    ) -> None:
        self._renderer = SegmentRenderer(plan, model, warn=warn)
        self._queue: deque[int] = deque()
        self._on_activity = on_activity

    @property
    def workers(self) -> int:
        return 1

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, index: int) -> None:
        self._queue.append(index)

    def pending(self) -> int:
        return len(self._queue)

    def wait_any(self) -> list[RenderedSegment]:
        index = self._queue.popleft()
        report = self._on_activity

        def on_frames(frames: int, reuse: ReuseCount) -> None:
            if report is not None:
                report(Activity("this process", index, frames, reuse=reuse))

        return [self._renderer.render(index, on_frames=on_frames)]

    def cancel_all(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self._queue.clear()
